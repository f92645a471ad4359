//! Play over the shared RTMP and SRT listeners, through the real server: a
//! stream fed by an ffmpeg RTMP push is played by ffmpeg (RTMP, SRT with
//! both stream id forms) and by many in-process RTMP players.

mod common;

#[path = "common/rtmp_player.rs"]
mod rtmp_player;

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use common::media::{Kill, Source, probe_streams, wait_status};
use common::{Server, call, config};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

/// ffmpeg pushing `seconds` of 25 fps H.264 + AAC to `rtmp://addr/live/key`.
fn push(rtmp: SocketAddr, key: &str, size: &str, seconds: u32) -> Kill {
    push_pattern(rtmp, key, size, seconds, "testsrc")
}

fn push_pattern(rtmp: SocketAddr, key: &str, size: &str, seconds: u32, pattern: &str) -> Kill {
    Source {
        url: &format!("rtmp://{rtmp}/live/{key}"),
        size,
        seconds,
        gop: 25,
        preset: "ultrafast",
        pattern,
    }
    .spawn()
}

/// Decode `seconds` of `url` with ffmpeg; returns (video frames, audio frames).
async fn decode(url: &str, seconds: u32) -> Result<(usize, usize), String> {
    framemd5(url, seconds, &[]).await
}

/// Play `seconds` of `url` with ffmpeg writing a framemd5 list of both
/// tracks (`codec`: extra output options, e.g. `-c copy` for packets without
/// decoding); returns (video, audio) lines. Fails when ffmpeg does not end
/// by itself within 40 s.
async fn framemd5(url: &str, seconds: u32, codec: &[&str]) -> Result<(usize, usize), String> {
    let child = tokio::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-loglevel", "error"])
        .args(["-i", url, "-t", &seconds.to_string()])
        .args(["-map", "0:v:0", "-map", "0:a:0"])
        .args(codec)
        .args(["-f", "framemd5", "-"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| e.to_string())?;
    let out = tokio::time::timeout(Duration::from_secs(40), child.wait_with_output())
        .await
        .map_err(|_| format!("{url}: the player hung (no end after 40 s)"))?
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "{url}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let count = |p: &str| text.lines().filter(|l| l.starts_with(p)).count();
    Ok((count("0,"), count("1,")))
}

fn check_probe(v: &Value, url: &str) {
    let streams = v["streams"].as_array().cloned().unwrap_or_default();
    let video = streams
        .iter()
        .find(|s| s["codec_type"] == "video")
        .unwrap_or_else(|| panic!("{url}: no video in {v}"));
    let audio = streams
        .iter()
        .find(|s| s["codec_type"] == "audio")
        .unwrap_or_else(|| panic!("{url}: no audio in {v}"));
    assert_eq!(video["codec_name"], "h264", "{url}");
    assert_eq!(
        (video["width"].as_u64(), video["height"].as_u64()),
        (Some(640), Some(360)),
        "{url}"
    );
    assert_eq!(audio["codec_name"], "aac", "{url}");
    assert_eq!(audio["sample_rate"], "48000", "{url}");
}

async fn server() -> (Server, SocketAddr, SocketAddr, tempfile::TempDir) {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TEST_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("off")),
        )
        .with_test_writer()
        .try_init();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let app = open_streamer::App::bind(config(dir.path(), ""))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let rtmp = app.rtmp_addr().unwrap_or_else(|| panic!("rtmp listener"));
    let srt = app.srt_addr().unwrap_or_else(|| panic!("srt listener"));
    (common::serve(app), rtmp, srt, dir)
}

async fn create(s: &Server, code: &str, key: &str, protocols: Value) {
    let body = json!({
        "inputs": [{"url": format!("rtmp://0.0.0.0:1935/live/{key}"), "priority": 0}],
        "protocols": protocols,
    });
    let (st, b) = call(s, Method::PUT, &format!("/streams/{code}"), Some(body)).await;
    assert_eq!(st, 201, "{b}");
    let (st, b) = call(s, Method::POST, &format!("/streams/{code}/start"), None).await;
    assert_eq!(st, 200, "{b}");
}

/// ffprobe / ffmpeg play the RTMP and SRT outputs and decode both tracks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_plays_rtmp_and_srt() {
    let (s, rtmp, srt, _dir) = server().await;
    create(&s, "demo", "demo-key", json!({"rtmp": true, "srt": true})).await;
    let _pub = push(rtmp, "demo-key", "640x360", 40);
    wait_status(&s, "demo", Duration::from_secs(15), |d| {
        d["status"] == "active"
    })
    .await;

    let rtmp_url = format!("rtmp://{rtmp}/live/demo");
    let srt_url = format!("srt://{srt}?streamid=live/demo");
    // The SRT access-control form (ffmpeg passes it verbatim).
    let srt_ac = format!("srt://{srt}?streamid=#!::r=live/demo,m=request");
    for url in [&rtmp_url, &srt_url, &srt_ac] {
        let v = probe_streams(url, &[])
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        check_probe(&v, url);
        let (video, audio) = decode(url, 3).await.unwrap_or_else(|e| panic!("{e}"));
        // 3 s at 25 fps; 48 kHz AAC is ~47 frames/s.
        assert!(video >= 60, "{url}: {video} video frames decoded");
        assert!(audio >= 100, "{url}: {audio} audio frames decoded");
    }
    s.stop().await;
}

/// Ten SRT players of a 720p stream, started together, all play to the end.
///
/// A 720p keyframe is over 30 SRT payloads; the SRT library's default send
/// buffer (32 packets) overflowed on such a burst and the connection stalled
/// for good while the socket kept accepting data (docs/DESIGN.md, SRT play).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_srt_players_of_a_720p_stream_play_to_the_end() {
    let (s, rtmp, srt, _dir) = server().await;
    create(&s, "big", "big-key", json!({"srt": true})).await;
    let _pub = push_pattern(rtmp, "big-key", "1280x720", 60, "testsrc2");
    wait_status(&s, "big", Duration::from_secs(15), |d| {
        d["status"] == "active"
    })
    .await;
    let url = format!("srt://{srt}?streamid=live/big");
    let players = (0..10).map(|_| framemd5(&url, 6, &["-c", "copy"]));
    let results = futures_util::future::join_all(players).await;
    for (i, r) in results.into_iter().enumerate() {
        let (video, audio) = r.unwrap_or_else(|e| panic!("player {i}: {e}"));
        // 6 s at 25 fps; 48 kHz AAC is ~47 frames/s.
        assert!(video >= 140, "player {i}: {video} video packets in 6 s");
        assert!(audio >= 250, "player {i}: {audio} audio packets in 6 s");
    }
    s.stop().await;
}

/// Malformed AMF on the RTMP port: after a valid handshake, a command
/// message whose AMF0 body is garbage.
async fn malformed_amf(rtmp: SocketAddr) -> Result<(), String> {
    let mut sock = tokio::net::TcpStream::connect(rtmp)
        .await
        .map_err(|e| e.to_string())?;
    let mut c0c1 = vec![3u8];
    c0c1.extend(std::iter::repeat_n(7u8, 1536));
    sock.write_all(&c0c1).await.map_err(|e| e.to_string())?;
    let mut s0s1s2 = vec![0u8; 1 + 1536 * 2];
    sock.read_exact(&mut s0s1s2)
        .await
        .map_err(|e| e.to_string())?;
    // C2 echoes S1.
    sock.write_all(&s0s1s2[1..1537])
        .await
        .map_err(|e| e.to_string())?;
    // fmt 0, csid 3, ts 0, length 20, type 20 (AMF0 command), stream 0.
    let mut msg = vec![0x03, 0, 0, 0, 0, 0, 20, 20, 0, 0, 0, 0];
    msg.extend([
        0x02, 0x00, 0x07, b'c', b'o', b'n', b'n', b'e', b'c', b't', 0x00, 0x3F,
    ]);
    msg.extend([0x11, 0xEE, 0x05, 0xFF, 0x0A, 0xFF, 0xFF, 0xFF]);
    sock.write_all(&msg).await.map_err(|e| e.to_string())?;
    // The server answers with a close, not a hang.
    let mut rest = Vec::new();
    match tokio::time::timeout(Duration::from_secs(10), sock.read_to_end(&mut rest)).await {
        Ok(_) => Ok(()),
        Err(_) => Err("server kept a connection with malformed AMF open".into()),
    }
}

/// Bad play requests get clean refusals while a player of another stream
/// keeps receiving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_play_requests_are_refused_cleanly() {
    let (s, rtmp, srt, _dir) = server().await;
    create(&s, "on", "on-key", json!({"rtmp": true, "srt": true})).await;
    create(&s, "off", "off-key", json!({"hls": false})).await;
    let _pub = push(rtmp, "on-key", "320x240", 30);
    let _pub2 = push(rtmp, "off-key", "320x240", 30);
    wait_status(&s, "on", Duration::from_secs(15), |d| {
        d["status"] == "active"
    })
    .await;
    wait_status(&s, "off", Duration::from_secs(15), |d| {
        d["status"] == "active"
    })
    .await;

    let stop = CancellationToken::new();
    let good = tokio::spawn(rtmp_player::play(rtmp, "live", "on", stop.clone(), None));
    tokio::time::sleep(Duration::from_secs(1)).await;

    // protocols.rtmp false, unknown stream, unknown SRT stream id, SRT off.
    for (app, key) in [("live", "off"), ("live", "nope"), ("live", "")] {
        let p = rtmp_player::play(rtmp, app, key, CancellationToken::new(), None).await;
        assert!(!p.accepted, "{key}: {p:?}");
        assert!(p.video.is_empty(), "{key}");
        assert!(
            p.end.contains("NetStream.Play.StreamNotFound")
                || p.end == "eof"
                || p.end.starts_with("error"),
            "{key}: {}",
            p.end
        );
    }
    for sid in [
        "live/nope",
        "live/off",
        "%23%21%3A%3Ar%3Dlive%2Fnope%2Cm%3Drequest",
    ] {
        let url = format!("srt://{srt}?streamid={sid}&connect_timeout=3000000");
        assert!(
            probe_streams(&url, &[]).await.is_err(),
            "{sid} must be refused"
        );
    }
    malformed_amf(rtmp).await.unwrap_or_else(|e| panic!("{e}"));
    // Garbage instead of a handshake.
    let mut sock = tokio::net::TcpStream::connect(rtmp)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    sock.write_all(&[0xFFu8; 4000])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut sink = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(20), sock.read_to_end(&mut sink)).await;
    assert!(closed.is_ok(), "garbage handshake closed");

    // Switching RTMP play off disconnects the player; the stream runs on.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let body = json!({
        "inputs": [{"url": "rtmp://0.0.0.0:1935/live/on-key", "priority": 0}],
        "protocols": {"rtmp": false, "srt": true},
    });
    let (st, b) = call(&s, Method::PUT, "/streams/on", Some(body)).await;
    assert_eq!(st, 200, "{b}");
    let played = tokio::time::timeout(Duration::from_secs(10), good)
        .await
        .unwrap_or_else(|_| panic!("player not disconnected by protocols.rtmp=false"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(played.accepted);
    assert!(
        played.video.len() > 25,
        "kept receiving: {}",
        played.video.len()
    );
    assert_eq!(played.end, "eof");
    // SRT play of the same stream still works (the push kept running).
    let url = format!("srt://{srt}?streamid=live/on");
    let (video, _) = decode(&url, 2).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(video >= 40);
    stop.cancel();
    s.stop().await;
}

/// Many RTMP players of one stream: each receives every frame the
/// publisher sent, in order; a player that stops reading delays nobody.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_rtmp_players_get_every_frame() {
    const PLAYERS: usize = 200;
    const SECONDS: u32 = 12;
    let (s, rtmp, _srt, _dir) = server().await;
    create(&s, "fan", "fan-key", json!({"rtmp": true})).await;
    wait_status(&s, "fan", Duration::from_secs(5), |d| {
        d["inputs"][0]["status"] == "connecting"
    })
    .await;
    // Players join before the publisher starts: they must get all of it.
    let stop = CancellationToken::new();
    let mut players = Vec::new();
    for _ in 0..PLAYERS {
        players.push(tokio::spawn(rtmp_player::play(
            rtmp,
            "live",
            "fan",
            stop.clone(),
            None,
        )));
    }
    let stalled = tokio::spawn(rtmp_player::play(
        rtmp,
        "live",
        "fan",
        stop.clone(),
        Some(5),
    ));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let publisher = push(rtmp, "fan-key", "320x240", SECONDS);
    let mut publisher = publisher;
    let done = tokio::task::spawn_blocking(move || {
        let status = publisher.0.wait();
        (status, publisher)
    });
    let (status, _p) = done.await.unwrap_or_else(|e| panic!("{e}"));
    assert!(status.is_ok_and(|s| s.success()), "publisher failed");
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.cancel();
    let sent = (SECONDS * 25) as usize;
    let mut results = Vec::new();
    for p in players {
        results.push(p.await.unwrap_or_else(|e| panic!("{e}")));
    }
    let stalled = stalled.await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(stalled.end, "stalled");
    for (i, p) in results.iter().enumerate() {
        assert!(p.accepted, "player {i}: {}", p.end);
        assert_eq!(p.end, "cancelled", "player {i}");
        assert_eq!(p.video_headers, 1, "player {i}");
        assert_eq!(p.audio_headers, 1, "player {i}");
        assert!(
            p.video.first().is_some_and(|v| v.1),
            "player {i} starts at a keyframe"
        );
        // Every frame: the publisher's count (the TS demux holds back only
        // the very last frame), 40 ms apart, never a gap.
        assert!(
            p.video.len() + 1 >= sent && p.video.len() <= sent,
            "player {i}: {} of {sent} frames",
            p.video.len()
        );
        for w in p.video.windows(2) {
            assert!(
                w[1].0 > w[0].0 && w[1].0 - w[0].0 <= 41,
                "player {i}: gap {} → {}",
                w[0].0,
                w[1].0
            );
        }
        // Never held up: no silence longer than a second between frames.
        let worst = p
            .video
            .windows(2)
            .map(|w| w[1].2.duration_since(w[0].2))
            .max()
            .unwrap_or_default();
        assert!(
            worst < Duration::from_secs(1),
            "player {i} waited {worst:?}"
        );
        assert_eq!(p.video.len(), results[0].video.len(), "player {i}");
    }
    s.stop().await;
}

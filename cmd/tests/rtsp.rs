//! Play over RTSP, through the real server: a stream fed by ffmpeg (MPEG-TS
//! over UDP: H.264 + AAC, and H.265 + AAC) is played by ffprobe/ffmpeg (TCP
//! interleaved and UDP), by GStreamer's `rtspsrc`, and by many in-process
//! RTSP players; bad requests get clean answers.

mod common;

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::media::{Kill, probe_streams};
use common::{Server, call, config};
use os_rtsp::rtp::RtpHeader;
use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

fn init_log() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TEST_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("off")),
        )
        .with_test_writer()
        .try_init();
}

async fn server() -> (Server, SocketAddr, tempfile::TempDir) {
    server_with("udp").await
}

/// A server whose RTSP listener offers `transport` (`tcp` | `udp`).
async fn server_with(transport: &str) -> (Server, SocketAddr, tempfile::TempDir) {
    init_log();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut c = config(dir.path(), "");
    c.listeners.rtsp.transport = transport.into();
    let app = open_streamer::App::bind(c)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let rtsp = app.rtsp_addr().unwrap_or_else(|| panic!("rtsp listener"));
    (common::serve(app), rtsp, dir)
}

fn free_udp_port() -> u16 {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    s.local_addr()
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("{e}"))
}

/// A stream with a UDP MPEG-TS input on a free port; returns the port.
async fn create(s: &Server, code: &str, protocols: Value) -> u16 {
    let port = free_udp_port();
    let body = json!({
        "inputs": [{"url": format!("udp://127.0.0.1:{port}"), "priority": 0}],
        "protocols": protocols,
    });
    let (st, b) = call(s, Method::PUT, &format!("/streams/{code}"), Some(body)).await;
    assert_eq!(st, 201, "{b}");
    let (st, b) = call(s, Method::POST, &format!("/streams/{code}/start"), None).await;
    assert_eq!(st, 200, "{b}");
    port
}

/// ffmpeg sending `seconds` of 25 fps video (`codec`: libx264 / libx265) +
/// 48 kHz AAC as MPEG-TS to `udp://127.0.0.1:port`, keyframe every second.
fn feed(port: u16, codec: &str, size: &str, seconds: u32) -> Kill {
    feed_with(
        port,
        codec,
        &format!("testsrc=size={size}:rate=25"),
        seconds,
    )
}

/// As [`feed`], with any lavfi video source.
fn feed_with(port: u16, codec: &str, video: &str, seconds: u32) -> Kill {
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-hide_banner", "-nostdin", "-loglevel", "error", "-re"])
        .args(["-f", "lavfi", "-i", video])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args(["-t", &seconds.to_string()])
        .args(["-c:v", codec, "-preset", "ultrafast", "-pix_fmt", "yuv420p"]);
    if codec == "libx265" {
        cmd.args(["-x265-params", "keyint=25:min-keyint=25:log-level=error"]);
    } else {
        cmd.args(["-g", "25", "-keyint_min", "25", "-sc_threshold", "0"]);
    }
    let child = cmd
        .args(["-c:a", "aac", "-ac", "2", "-f", "mpegts"])
        .arg(format!("udp://127.0.0.1:{port}?pkt_size=1316"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("ffmpeg is required (apt-get install -y ffmpeg): {e}"));
    Kill(child)
}

async fn wait_active(s: &Server, code: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        let (_, b) = call(s, Method::GET, &format!("/streams/{code}/status"), None).await;
        if b["data"]["status"] == "active" {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("{code} did not become active");
}

/// ffprobe over RTSP with `transport` (`tcp`, `udp`, or "" for ffmpeg's default).
async fn probe(url: &str, transport: &str) -> Result<Value, String> {
    let mut args = vec!["-timeout", "10000000"];
    if !transport.is_empty() {
        args.extend(["-rtsp_transport", transport]);
    }
    probe_streams(url, &args).await
}

/// Decode `seconds` of `url` with ffmpeg; returns (video frames, audio frames).
async fn decode(url: &str, transport: &str, seconds: u32) -> Result<(usize, usize), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let file = dir.path().join("frames.txt");
    let child = tokio::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-loglevel", "warning"])
        .args(["-rtsp_transport", transport, "-timeout", "10000000"])
        .args(["-i", url, "-t", &seconds.to_string()])
        .args(["-map", "0:v:0", "-map", "0:a:0", "-f", "framemd5", "-y"])
        .arg(&file)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| e.to_string())?;
    let out = tokio::time::timeout(Duration::from_secs(40), child.wait_with_output())
        .await
        .map_err(|_| format!("{url}: ffmpeg did not finish"))?
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "{url} ({transport}): {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let text = std::fs::read_to_string(&file).map_err(|e| e.to_string())?;
    if std::env::var_os("RTSP_TEST_DEBUG").is_some() {
        eprintln!(
            "{}\n{}",
            String::from_utf8_lossy(&out.stderr),
            text.lines()
                .filter(|l| !l.starts_with('#'))
                .take(400)
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    // Tracks aligned from the first packet on (RTP-Info, then sender
    // reports): no timestamp jumps for the muxer to repair.
    let stderr = String::from_utf8_lossy(&out.stderr);
    if stderr.contains("Non-monotonous") {
        return Err(format!("{url} ({transport}): timestamps jump: {stderr}"));
    }
    let count = |p: &str| text.lines().filter(|l| l.starts_with(p)).count();
    Ok((count("0,"), count("1,")))
}

fn check_probe(v: &Value, url: &str, video_codec: &str, size: (u64, u64)) {
    let streams = v["streams"].as_array().cloned().unwrap_or_default();
    let video = streams
        .iter()
        .find(|s| s["codec_type"] == "video")
        .unwrap_or_else(|| panic!("{url}: no video in {v}"));
    let audio = streams
        .iter()
        .find(|s| s["codec_type"] == "audio")
        .unwrap_or_else(|| panic!("{url}: no audio in {v}"));
    assert_eq!(video["codec_name"], video_codec, "{url}");
    assert_eq!(
        (video["width"].as_u64(), video["height"].as_u64()),
        (Some(size.0), Some(size.1)),
        "{url}"
    );
    assert_eq!(audio["codec_name"], "aac", "{url}");
    assert_eq!(audio["sample_rate"], "48000", "{url}");
    assert_eq!(audio["channels"], 2, "{url}");
}

/// GStreamer `rtspsrc` plays `url`, depayloads and decodes both tracks;
/// returns its verbose output (negotiated caps).
/// Play `url` with GStreamer's `rtspsrc` until 40 decoded video frames of
/// `width`x`height` and 60 decoded 48 kHz stereo audio buffers reached their
/// sinks (EOS). The decoders' outputs pass capsfilters, so another size or
/// format fails negotiation instead of reaching EOS: the check does not
/// depend on what `-v` happens to print.
async fn gstreamer(
    url: &str,
    protocols: &str,
    video_depay: &str,
    video_dec: &str,
    (width, height): (u32, u32),
) {
    let protocols_arg = if protocols.is_empty() {
        String::new()
    } else {
        format!("protocols={protocols}")
    };
    let pipeline = format!(
        "rtspsrc location={url} {protocols_arg} latency=200 name=src \
         src. ! queue ! {video_depay} ! {video_dec} \
         ! video/x-raw,width={width},height={height} ! fakesink num-buffers=40 \
         src. ! queue ! rtpmp4gdepay ! avdec_aac \
         ! audio/x-raw,rate=48000,channels=2 ! fakesink num-buffers=60"
    );
    let out = tokio::process::Command::new("gst-launch-1.0")
        .arg("-v")
        .args(pipeline.split_whitespace())
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(40), out)
        .await
        .unwrap_or_else(|_| panic!("{url}: gst-launch-1.0 did not finish"))
        .unwrap_or_else(|e| {
            panic!("gst-launch-1.0 is required (apt-get install -y gstreamer1.0-tools gstreamer1.0-rtsp gstreamer1.0-libav): {e}")
        });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{url} ({protocols}): {text}");
    assert!(text.contains("Got EOS"), "{url}: no EOS: {text}");
}

/// ffprobe/ffmpeg (TCP and UDP) and GStreamer play H.264 + AAC.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_and_gstreamer_play_h264_aac() {
    let (s, rtsp, _dir) = server().await;
    let port = create(&s, "cam", json!({"rtsp": true})).await;
    let _feed = feed(port, "libx264", "640x360", 60);
    wait_active(&s, "cam").await;
    let url = format!("rtsp://{rtsp}/live/cam");
    for transport in ["tcp", "udp"] {
        let v = probe(&url, transport)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        check_probe(&v, &url, "h264", (640, 360));
        let (video, audio) = decode(&url, transport, 3)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        // 3 s at 25 fps; 48 kHz AAC is ~47 frames/s.
        assert!(video >= 60, "{transport}: {video} video frames decoded");
        assert!(audio >= 100, "{transport}: {audio} audio frames decoded");
    }
    for protocols in ["tcp", "udp"] {
        gstreamer(&url, protocols, "rtph264depay", "avdec_h264", (640, 360)).await;
    }
    s.stop().await;
}

/// With `listeners.rtsp.transport: tcp` (the default) a UDP-only SETUP is
/// refused with 461 and clients that try UDP first fall back to TCP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_only_listener_makes_clients_fall_back() {
    let (s, rtsp, _dir) = server_with("tcp").await;
    let port = create(&s, "tcponly", json!({"rtsp": true})).await;
    let _feed = feed(port, "libx264", "320x240", 60);
    wait_active(&s, "tcponly").await;
    let url = format!("rtsp://{rtsp}/live/tcponly");
    let v = probe(&url, "").await.unwrap_or_else(|e| panic!("{e}"));
    check_probe(&v, &url, "h264", (320, 240));
    assert!(probe(&url, "udp").await.is_err(), "UDP-only must fail");
    gstreamer(&url, "", "rtph264depay", "avdec_h264", (320, 240)).await;
    let mut c = Client::connect(rtsp).await;
    let r = c
        .request("DESCRIBE", &url, &[])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status, 200);
    let r = c
        .request(
            "SETUP",
            &format!("{url}/trackID=0"),
            &[("Transport", "RTP/AVP;unicast;client_port=5000-5001")],
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status, 461);
    s.stop().await;
}

/// H.265 + AAC: the SDP carries sprop-vps/sps/pps; ffmpeg and GStreamer decode it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_and_gstreamer_play_h265() {
    let (s, rtsp, _dir) = server().await;
    let port = create(&s, "hevc", json!({"rtsp": true})).await;
    let _feed = feed(port, "libx265", "320x240", 60);
    wait_active(&s, "hevc").await;
    let url = format!("rtsp://{rtsp}/live/hevc");
    for transport in ["tcp", "udp"] {
        let v = probe(&url, transport)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        check_probe(&v, &url, "hevc", (320, 240));
        let (video, audio) = decode(&url, transport, 3)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(video >= 60, "{transport}: {video} video frames decoded");
        assert!(audio >= 100, "{transport}: {audio} audio frames decoded");
    }
    gstreamer(&url, "tcp", "rtph265depay", "avdec_h265", (320, 240)).await;
    s.stop().await;
}

// ---------------------------------------------------------------------------
// An in-process RTSP client (TCP interleaved).

struct Client {
    sock: TcpStream,
    buf: Vec<u8>,
    cseq: u32,
    session: Option<String>,
}

impl Client {
    async fn connect(addr: SocketAddr) -> Self {
        Self::connect_with(addr, None).await
    }

    /// Connect with an explicit receive buffer size (a small one makes a
    /// reader that stops reading push back on the server quickly).
    async fn connect_with(addr: SocketAddr, recv_buffer: Option<u32>) -> Self {
        let socket = tokio::net::TcpSocket::new_v4().unwrap_or_else(|e| panic!("socket: {e}"));
        if let Some(size) = recv_buffer {
            socket
                .set_recv_buffer_size(size)
                .unwrap_or_else(|e| panic!("SO_RCVBUF: {e}"));
        }
        let sock = socket
            .connect(addr)
            .await
            .unwrap_or_else(|e| panic!("connect: {e}"));
        Self {
            sock,
            buf: Vec::new(),
            cseq: 0,
            session: None,
        }
    }

    /// Read until a response is complete (interleaved frames before it are dropped).
    async fn response(&mut self) -> Result<os_rtsp::Response, String> {
        loop {
            while let Some((_, n)) = os_rtsp::parse_interleaved(&self.buf) {
                self.buf.drain(..n);
            }
            if self.buf.first() != Some(&b'$') {
                match os_rtsp::parse_response(&self.buf) {
                    Ok(Some((r, n))) => {
                        self.buf.drain(..n);
                        return Ok(r);
                    }
                    Ok(None) => {}
                    Err(e) => return Err(format!("bad response: {e}")),
                }
            }
            let mut tmp = [0u8; 8192];
            let n = tokio::time::timeout(Duration::from_secs(20), self.sock.read(&mut tmp))
                .await
                .map_err(|_| "no response".to_string())?
                .map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("connection closed".into());
            }
            self.buf.extend_from_slice(&tmp[..n]);
        }
    }

    async fn send_raw(&mut self, data: &[u8]) -> Result<(), String> {
        self.sock.write_all(data).await.map_err(|e| e.to_string())
    }

    async fn request(
        &mut self,
        method: &str,
        uri: &str,
        headers: &[(&str, &str)],
    ) -> Result<os_rtsp::Response, String> {
        self.cseq += 1;
        let mut text = format!("{method} {uri} RTSP/1.0\r\nCSeq: {}\r\n", self.cseq);
        if let Some(s) = &self.session {
            text.push_str(&format!("Session: {s}\r\n"));
        }
        for (k, v) in headers {
            text.push_str(&format!("{k}: {v}\r\n"));
        }
        text.push_str("\r\n");
        self.send_raw(text.as_bytes()).await?;
        let r = self.response().await?;
        if r.get("CSeq") != Some(&self.cseq.to_string()) {
            return Err(format!("CSeq mismatch: {r:?}"));
        }
        if let Some(s) = r.get("Session") {
            self.session = Some(s.split(';').next().unwrap_or_default().to_string());
        }
        Ok(r)
    }

    /// DESCRIBE, SETUP every track (interleaved 0-1, 2-3), PLAY.
    async fn start(&mut self, url: &str) -> Result<os_rtsp::Response, String> {
        let d = self
            .request("DESCRIBE", url, &[("Accept", "application/sdp")])
            .await?;
        if d.status != 200 {
            return Err(format!("DESCRIBE: {}", d.status));
        }
        let sdp = String::from_utf8_lossy(&d.body).to_string();
        let base = d.get("Content-Base").unwrap_or(url).to_string();
        let controls: Vec<String> = sdp
            .lines()
            .filter_map(|l| l.strip_prefix("a=control:"))
            .filter(|c| *c != "*")
            .map(str::to_string)
            .collect();
        for (i, c) in controls.iter().enumerate() {
            let t = format!("RTP/AVP/TCP;unicast;interleaved={}-{}", i * 2, i * 2 + 1);
            let r = self
                .request("SETUP", &format!("{base}{c}"), &[("Transport", &t)])
                .await?;
            if r.status != 200 {
                return Err(format!("SETUP: {}", r.status));
            }
        }
        self.request("PLAY", url, &[("Range", "npt=0.000-")]).await
    }
}

#[derive(Debug, Default)]
struct Played {
    accepted: bool,
    end: String,
    /// Video frames: (RTP timestamp, keyframe, arrival).
    video: Vec<(u32, bool, Instant)>,
    audio: usize,
    /// Sequence number gaps seen (video, audio).
    gaps: usize,
    sender_reports: usize,
    /// Bytes received after PLAY.
    bytes: usize,
}

/// Play `url` until `stop`; `stall` = never read after PLAY.
async fn play(addr: SocketAddr, url: String, stop: CancellationToken, stall: bool) -> Played {
    let mut out = Played::default();
    let mut c = Client::connect_with(addr, stall.then_some(4096)).await;
    match c.start(&url).await {
        Ok(r) if r.status == 200 => out.accepted = true,
        Ok(r) => {
            out.end = format!("PLAY {}", r.status);
            return out;
        }
        Err(e) => {
            out.end = e;
            return out;
        }
    }
    if stall {
        stop.cancelled().await;
        // What the server managed to queue before it gave up on us.
        let mut total = c.buf.len();
        let mut tmp = vec![0u8; 64 << 10];
        out.end = loop {
            match tokio::time::timeout(Duration::from_millis(500), c.sock.read(&mut tmp)).await {
                Ok(Ok(0)) => break "stalled, then closed by the server".into(),
                Ok(Ok(n)) => total += n,
                Ok(Err(e)) => break format!("stalled, then {e}"),
                Err(_) => break "stalled".into(),
            }
        };
        out.bytes = total;
        return out;
    }
    let mut last_seq: [Option<u16>; 2] = [None, None];
    let mut frame_key = false;
    let mut buf = std::mem::take(&mut c.buf);
    let mut tmp = vec![0u8; 64 << 10];
    loop {
        let mut at = 0;
        while let Some((f, n)) = os_rtsp::parse_interleaved(&buf[at..]) {
            at += n;
            match f.channel {
                0 | 2 => {
                    let Some(h) = RtpHeader::parse(&f.data) else {
                        out.gaps += 1;
                        continue;
                    };
                    let k = usize::from(f.channel / 2);
                    if let Some(prev) = last_seq[k]
                        && h.sequence != prev.wrapping_add(1)
                    {
                        out.gaps += 1;
                    }
                    last_seq[k] = Some(h.sequence);
                    if k == 0 {
                        let pl = &f.data[h.payload_offset..];
                        let t = pl.first().map_or(0, |b| b & 0x1F);
                        let nal = if t == 28 {
                            pl.get(1).map_or(0, |b| b & 0x1F)
                        } else {
                            t
                        };
                        frame_key |= nal == 5 || nal == 7;
                        if h.marker {
                            out.video.push((h.timestamp, frame_key, Instant::now()));
                            frame_key = false;
                        }
                    } else if h.marker {
                        out.audio += 1;
                    }
                }
                1 | 3
                    if os_rtsp::rtcp::packets(&f.data)
                        .first()
                        .is_some_and(|p| p.0 == 200) =>
                {
                    out.sender_reports += 1;
                }
                _ => {}
            }
        }
        let n = tokio::select! {
            () = stop.cancelled() => {
                out.end = "cancelled".into();
                return out;
            }
            r = c.sock.read(&mut tmp) => match r {
                Ok(0) => { out.end = "closed".into(); return out; }
                Ok(n) => n,
                Err(e) => { out.end = e.to_string(); return out; }
            }
        };
        buf.drain(..at);
        out.bytes += n;
        buf.extend_from_slice(&tmp[..n]);
    }
}

/// 200 RTSP players of one stream, TCP interleaved: each receives every
/// packet from its join point on (no sequence gap, every frame 40 ms after
/// the previous one, all end on the same last frame); a player that stops
/// reading delays nobody.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_rtsp_players_get_every_frame() {
    const PLAYERS: usize = 200;
    const SECONDS: u32 = 14;
    let (s, rtsp, _dir) = server().await;
    let port = create(&s, "fan", json!({"rtsp": true})).await;
    // Noise makes the picture hard to compress (~2 Mbit/s): enough bytes
    // that a reader that stops reading fills its socket buffers early.
    let mut publisher = feed_with(
        port,
        "libx264",
        "testsrc=size=320x240:rate=25,noise=alls=50:allf=t+u",
        SECONDS,
    );
    wait_active(&s, "fan").await;
    let url = format!("rtsp://{rtsp}/live/fan");
    let stop = CancellationToken::new();
    let stalled = tokio::spawn(play(rtsp, url.clone(), stop.clone(), true));
    let mut players = Vec::new();
    for _ in 0..PLAYERS {
        players.push(tokio::spawn(play(rtsp, url.clone(), stop.clone(), false)));
    }
    let done = tokio::task::spawn_blocking(move || {
        let status = publisher.0.wait();
        (status, publisher)
    });
    let (status, _p) = done.await.unwrap_or_else(|e| panic!("{e}"));
    assert!(status.is_ok_and(|s| s.success()), "publisher failed");
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.cancel();
    let mut results = Vec::new();
    for p in players {
        results.push(p.await.unwrap_or_else(|e| panic!("{e}")));
    }
    let stalled = stalled.await.unwrap_or_else(|e| panic!("{e}"));
    assert!(stalled.accepted, "stalled player: {}", stalled.end);
    // The stalled reader really pushed back: the server could not hand it
    // the stream (it skipped ahead or gave up on it) while the others got all.
    let full = results[0].bytes;
    eprintln!(
        "stalled reader: {} ({} bytes of {full})",
        stalled.end, stalled.bytes
    );
    assert!(
        stalled.bytes < full / 2,
        "stalled reader was not held back: {} of {full} bytes",
        stalled.bytes
    );
    let last = results[0].video.last().map(|v| v.0);
    for (i, p) in results.iter().enumerate() {
        assert!(p.accepted, "player {i}: {}", p.end);
        assert_eq!(p.end, "cancelled", "player {i}");
        assert_eq!(p.gaps, 0, "player {i}: RTP sequence gaps");
        assert!(
            p.video.first().is_some_and(|v| v.1),
            "player {i} starts at a keyframe"
        );
        assert!(
            p.video.len() >= 25 * 8,
            "player {i}: only {} frames",
            p.video.len()
        );
        assert!(
            p.audio >= 47 * 8,
            "player {i}: only {} audio frames",
            p.audio
        );
        for w in p.video.windows(2) {
            assert_eq!(
                w[1].0.wrapping_sub(w[0].0),
                3600,
                "player {i}: frame step {} → {}",
                w[0].0,
                w[1].0
            );
        }
        assert_eq!(p.video.last().map(|v| v.0), last, "player {i}: last frame");
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
        assert!(
            p.sender_reports >= 2,
            "player {i}: {} sender reports",
            p.sender_reports
        );
    }
    s.stop().await;
}

/// Garbage, half requests, huge headers, bad CSeq, unknown sessions and
/// methods out of order: clean RTSP errors or a disconnect, and a player
/// of the same stream keeps playing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_clean_answers() {
    let (s, rtsp, _dir) = server().await;
    let port = create(&s, "bad", json!({"rtsp": true})).await;
    let _feed = feed(port, "libx264", "320x240", 60);
    wait_active(&s, "bad").await;
    let url = format!("rtsp://{rtsp}/live/bad");
    let stop = CancellationToken::new();
    let witness = tokio::spawn(play(rtsp, url.clone(), stop.clone(), false));

    // Garbage: 400, then the server closes.
    let mut c = Client::connect(rtsp).await;
    c.send_raw(b"\x16\x03\x01\x02\x00garbage\r\n\r\n")
        .await
        .unwrap_or_default();
    let r = c.response().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status, 400);
    assert!(c.response().await.is_err(), "closed after garbage");

    // HTTP on the RTSP port.
    let mut c = Client::connect(rtsp).await;
    c.send_raw(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap_or_default();
    assert_eq!(c.response().await.map(|r| r.status), Ok(400));

    // Huge header: 400 and closed, without the server buffering it all.
    let mut c = Client::connect(rtsp).await;
    let huge = format!(
        "OPTIONS * RTSP/1.0\r\nCSeq: 1\r\nX-Big: {}",
        "a".repeat(64 << 10)
    );
    let _ = c.send_raw(huge.as_bytes()).await;
    assert_eq!(c.response().await.map(|r| r.status), Ok(400));

    // Missing and non-numeric CSeq: 400, the connection stays usable.
    let mut c = Client::connect(rtsp).await;
    c.send_raw(format!("OPTIONS {url} RTSP/1.0\r\n\r\n").as_bytes())
        .await
        .unwrap_or_default();
    assert_eq!(c.response().await.map(|r| r.status), Ok(400));
    c.send_raw(format!("OPTIONS {url} RTSP/1.0\r\nCSeq: abc\r\n\r\n").as_bytes())
        .await
        .unwrap_or_default();
    assert_eq!(c.response().await.map(|r| r.status), Ok(400));
    let r = c
        .request("OPTIONS", &url, &[])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status, 200);
    assert!(r.get("Public").is_some_and(|p| p.contains("DESCRIBE")));

    // Methods out of order and unknown sessions.
    let r = c
        .request("PLAY", &url, &[])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status, 455, "PLAY before SETUP");
    let r = c
        .request("PAUSE", &url, &[("Session", "DEADBEEF")])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status, 454, "unknown session");
    let r = c
        .request("TEARDOWN", &url, &[("Session", "DEADBEEF")])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status, 454);
    let r = c
        .request(
            "SETUP",
            &format!("{url}/trackID=0"),
            &[
                ("Transport", "RTP/AVP/TCP;unicast;interleaved=0-1"),
                ("Session", "NOPE"),
            ],
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status, 454);
    let r = c
        .request(
            "SETUP",
            &format!("{url}/trackID=9"),
            &[("Transport", "RTP/AVP/TCP;unicast;interleaved=0-1")],
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status, 404, "no such track");
    let r = c
        .request(
            "SETUP",
            &format!("{url}/trackID=0"),
            &[("Transport", "RTP/SAVP;multicast")],
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status, 461, "unsupported transport");
    let r = c
        .request("RECORD", &url, &[])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status, 405);
    let r = c
        .request("FROB", &url, &[])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status, 501);
    let r = c
        .request("DESCRIBE", &format!("rtsp://{rtsp}/live/nope"), &[])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status, 404, "unknown stream");
    let r = c
        .request("DESCRIBE", &format!("rtsp://{rtsp}/elsewhere"), &[])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status, 404, "unknown path");
    c.send_raw(b"OPTIONS * RTSP/2.0\r\nCSeq: 99\r\n\r\n")
        .await
        .unwrap_or_default();
    assert_eq!(c.response().await.map(|r| r.status), Ok(505));

    // A full session on the same connection still works: SETUP, PLAY,
    // PAUSE, keepalive, TEARDOWN.
    let r = c.start(&url).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status, 200);
    assert!(
        r.get("RTP-Info")
            .is_some_and(|i| i.contains("seq=") && i.contains("rtptime=")),
        "{r:?}"
    );
    assert!(r.get("Range").is_some());
    let r = c
        .request("PAUSE", &url, &[])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status, 200);
    let r = c
        .request("GET_PARAMETER", &url, &[])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status, 200);
    assert!(r.get("Session").is_some_and(|s| s.contains("timeout=60")));
    let r = c
        .request("TEARDOWN", &url, &[])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status, 200);

    // Half a request, then the peer goes away: nothing breaks.
    let mut c = Client::connect(rtsp).await;
    c.send_raw(b"DESCRIBE rtsp://x/live/bad RTSP/1.0\r\nCSe")
        .await
        .unwrap_or_default();
    drop(c);

    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.cancel();
    let w = witness.await.unwrap_or_else(|e| panic!("{e}"));
    assert!(w.accepted, "{}", w.end);
    assert_eq!(w.end, "cancelled");
    assert_eq!(w.gaps, 0);
    assert!(w.video.len() > 25, "witness got {} frames", w.video.len());
    s.stop().await;
}

/// `protocols.rtsp: false` → 404; switching it on with PUT admits players
/// without touching the other outputs; switching it off disconnects them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtsp_follows_the_stream_flag() {
    let (s, rtsp, _dir) = server().await;
    let port = create(&s, "tog", json!({"rtsp": false, "hls": true})).await;
    let _feed = feed(port, "libx264", "320x240", 60);
    wait_active(&s, "tog").await;
    let url = format!("rtsp://{rtsp}/live/tog");
    let mut c = Client::connect(rtsp).await;
    let r = c
        .request("DESCRIBE", &url, &[])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status, 404, "rtsp off");

    let (_, cur) = call(&s, Method::GET, "/streams/tog", None).await;
    let mut body = cur["data"].clone();
    body["protocols"]["rtsp"] = json!(true);
    let (st, b) = call(&s, Method::PUT, "/streams/tog", Some(body.clone())).await;
    assert_eq!(st, 200, "{b}");
    let reload = &b["reload"];
    assert_eq!(reload["restarted"], json!(["rtsp"]), "{b}");
    let kept: Vec<&str> = reload["kept"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    assert!(kept.contains(&"inputs") && kept.contains(&"hls"), "{b}");
    assert!(reload.get("deferred").is_none(), "{b}");

    let stop = CancellationToken::new();
    let player = tokio::spawn(play(rtsp, url.clone(), stop.clone(), false));
    tokio::time::sleep(Duration::from_secs(3)).await;
    body["protocols"]["rtsp"] = json!(false);
    let (st, b) = call(&s, Method::PUT, "/streams/tog", Some(body)).await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["reload"]["restarted"], json!(["rtsp"]), "{b}");
    let p = tokio::time::timeout(Duration::from_secs(10), player)
        .await
        .unwrap_or_else(|_| panic!("player not disconnected"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(p.accepted, "{}", p.end);
    assert_eq!(p.end, "closed", "disconnected when rtsp is switched off");
    assert!(p.video.len() > 25);
    stop.cancel();
    let mut c = Client::connect(rtsp).await;
    let r = c
        .request("DESCRIBE", &url, &[])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status, 404, "rtsp off again");
    // The input kept running throughout.
    let (_, st) = call(&s, Method::GET, "/streams/tog/status", None).await;
    assert_eq!(st["data"]["status"], "active", "{st}");
    s.stop().await;
}

/// `POST /config` moves the RTSP listener at runtime (and switches it to
/// UDP); `GET /config` shows where it listens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtsp_listener_moves_at_runtime() {
    let (s, rtsp, _dir) = server_with("tcp").await;
    let (st, b) = call(&s, Method::GET, "/config", None).await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["data"]["listeners"]["rtsp"], rtsp.to_string());
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        l.local_addr().map(|a| a.port()).unwrap_or(0)
    };
    let (st, b) = call(
        &s,
        Method::POST,
        "/config",
        Some(json!({"listeners": {"rtsp": {"port": port, "transport": "udp"}}})),
    )
    .await;
    assert_eq!(st, 200, "{b}");
    let moved: SocketAddr = format!("127.0.0.1:{port}")
        .parse()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(b["data"]["listeners"]["rtsp"], moved.to_string());
    let mut c = Client::connect(moved).await;
    let r = c
        .request("OPTIONS", &format!("rtsp://{moved}/live/x"), &[])
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status, 200);
    // The old port is closed.
    let deadline = Instant::now() + Duration::from_secs(3);
    while TcpStream::connect(rtsp).await.is_ok() {
        assert!(Instant::now() < deadline, "old rtsp listener still accepts");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    s.stop().await;
}

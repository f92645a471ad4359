//! Push-out through the real server to a local nginx-rtmp, over RTMP and
//! over RTMPS (nginx `stream` TLS in front of nginx-rtmp, a CA and a leaf
//! certificate made by the test with openssl). The destination is killed and
//! brought back: the push reconnects by itself and the status counts it.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::media::{Kill, Source, free_port, wait_status};
use common::{call, config};
use reqwest::Method;
use serde_json::json;

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("openssl is required: {e}"));
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA and a leaf certificate for 127.0.0.1 signed by it.
fn make_certs(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "leaf.key",
            "-out",
            "leaf.csr",
        ],
    );
    std::fs::write(
        dir.join("ext.cnf"),
        "basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
            "-out",
            "leaf.pem",
        ],
    );
}

/// nginx-rtmp on `rtmp_port`, and (when `tls_port`) a TLS front on it.
fn nginx(prefix: &Path, rtmp_port: u16, tls_port: Option<u16>) -> Kill {
    for sub in ["logs", "tmp"] {
        std::fs::create_dir_all(prefix.join(sub)).unwrap_or_else(|e| panic!("{e}"));
    }
    let rtmp_mod = "/usr/lib/nginx/modules/ngx_rtmp_module.so";
    let stream_mod = "/usr/lib/nginx/modules/ngx_stream_module.so";
    assert!(
        Path::new(rtmp_mod).exists(),
        "nginx-rtmp is required (apt-get install -y nginx libnginx-mod-rtmp)"
    );
    let mut conf = format!("load_module {rtmp_mod};\n");
    if tls_port.is_some() {
        assert!(
            Path::new(stream_mod).exists(),
            "nginx stream is required (apt-get install -y libnginx-mod-stream)"
        );
        conf += &format!("load_module {stream_mod};\n");
    }
    conf += "daemon off;\nmaster_process off;\nworker_processes 1;\nuser root;\npid tmp/nginx.pid;\n\
             error_log logs/error.log warn;\nevents { worker_connections 256; }\n";
    conf += &format!(
        "rtmp {{ server {{ listen 127.0.0.1:{rtmp_port}; chunk_size 4096;\n\
         application live {{ live on; record off; }} }} }}\n"
    );
    if let Some(tls) = tls_port {
        conf += &format!(
            "stream {{ server {{ listen 127.0.0.1:{tls} ssl;\n\
             ssl_certificate {dir}/leaf.pem; ssl_certificate_key {dir}/leaf.key;\n\
             proxy_pass 127.0.0.1:{rtmp_port}; }} }}\n",
            dir = prefix.display()
        );
    }
    std::fs::write(prefix.join("nginx.conf"), conf).unwrap_or_else(|e| panic!("{e}"));
    let child = Command::new("nginx")
        .arg("-p")
        .arg(format!("{}/", prefix.display()))
        .arg("-c")
        .arg(prefix.join("nginx.conf"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("nginx: {e}"));
    // Wait until it listens.
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", rtmp_port)).is_err() {
        assert!(Instant::now() < deadline, "nginx did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    Kill(child)
}

/// ffmpeg pushing `seconds` of 640x360 H.264 + AAC to `rtmp://addr/live/key`.
fn push_source(rtmp: SocketAddr, key: &str, seconds: u32) -> Kill {
    Source {
        url: &format!("rtmp://{rtmp}/live/{key}"),
        size: "640x360",
        seconds,
        gop: 25,
        preset: "ultrafast",
        pattern: "testsrc",
    }
    .spawn()
}

/// Decode 2 s of `url`: (video frames, audio frames, "codec,width,height").
async fn decode(url: &str) -> (usize, usize, String) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let file = dir.path().join("frames.txt");
    let child = tokio::process::Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-nostdin",
            "-loglevel",
            "error",
            "-i",
            url,
            "-t",
            "2",
        ])
        .args(["-map", "0:v:0", "-map", "0:a:0", "-f", "framemd5", "-y"])
        .arg(&file)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{url}: ffmpeg did not finish"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        out.status.success(),
        "{url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&file).unwrap_or_default();
    let count = |p: &str| text.lines().filter(|l| l.starts_with(p)).count();
    let probe = tokio::process::Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0"])
        .args([
            "-show_entries",
            "stream=codec_name,width,height",
            "-of",
            "csv=p=0",
            url,
        ])
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let probe = tokio::time::timeout(Duration::from_secs(30), probe)
        .await
        .unwrap_or_else(|_| panic!("{url}: ffprobe did not finish"))
        .unwrap_or_else(|e| panic!("{e}"));
    (
        count("0,"),
        count("1,"),
        String::from_utf8_lossy(&probe.stdout).trim().to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_out_to_nginx_rtmp_and_rtmps_reconnects() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let ngx = dir.path().join("nginx");
    std::fs::create_dir_all(&ngx).unwrap_or_else(|e| panic!("{e}"));
    make_certs(&ngx);
    let (ng_rtmp, ng_tls) = (free_port(), free_port());
    let nginx_proc = nginx(&ngx, ng_rtmp, Some(ng_tls));

    let mut cfg = config(dir.path(), "");
    cfg.publisher.push.ca_file = ngx.join("ca.pem").display().to_string();
    let app = open_streamer::App::bind(cfg)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let rtmp = app.rtmp_addr().unwrap_or_else(|| panic!("rtmp listener"));
    let s = common::serve(app);
    let body = json!({
        "inputs": [{"url": "rtmp://0.0.0.0:1935/live/src-key", "priority": 0}],
        "push": [
            {"url": format!("rtmp://127.0.0.1:{ng_rtmp}/live/plain"), "retry_timeout_sec": 1},
            {"url": format!("rtmps://127.0.0.1:{ng_tls}/live/secure"), "retry_timeout_sec": 1},
            {"url": format!("rtmp://127.0.0.1:{ng_rtmp}/live/off"), "enabled": false}
        ]
    });
    let (st, b) = call(&s, Method::PUT, "/streams/src", Some(body.clone())).await;
    assert_eq!(st, 201, "{b}");
    assert_eq!(
        call(&s, Method::POST, "/streams/src/start", None).await.0,
        200
    );
    let _source = push_source(rtmp, "src-key", 60);

    let status = wait_status(&s, "src", Duration::from_secs(20), |d| {
        d["push"].as_array().is_some_and(|p| {
            p.len() == 2
                && p.iter().all(|x| {
                    x["state"] == "active" && x["bytes_sent"].as_u64().unwrap_or(0) > 50_000
                })
        })
    })
    .await;
    assert_eq!(status["push"][0]["reconnects"], 0);
    for name in ["plain", "secure"] {
        let url = format!("rtmp://127.0.0.1:{ng_rtmp}/live/{name}");
        let (v, a, probe) = decode(&url).await;
        assert_eq!(probe, "h264,640,360", "{url}");
        // 2 s from the next keyframe on (nginx has no GOP cache).
        assert!(v >= 25, "{url}: {v} video frames");
        assert!(a >= 40, "{url}: {a} audio frames");
    }

    // Kill the destination: both pushes fail and retry; bring it back.
    drop(nginx_proc);
    let status = wait_status(&s, "src", Duration::from_secs(20), |d| {
        d["push"].as_array().is_some_and(|p| {
            p.iter()
                .all(|x| x["state"] != "active" && x["last_error"].is_object())
        })
    })
    .await;
    assert_eq!(
        status["status"], "active",
        "the stream itself keeps running"
    );
    let _nginx2 = nginx(&ngx, ng_rtmp, Some(ng_tls));
    let status = wait_status(&s, "src", Duration::from_secs(30), |d| {
        d["push"].as_array().is_some_and(|p| {
            p.iter()
                .all(|x| x["state"] == "active" && x["reconnects"].as_u64().unwrap_or(0) >= 1)
        })
    })
    .await;
    assert!(status["push"][1]["last_error"]["message"].is_string());
    let (v, _, probe) = decode(&format!("rtmp://127.0.0.1:{ng_rtmp}/live/secure")).await;
    assert_eq!(probe, "h264,640,360");
    assert!(v >= 25, "{v} video frames after the reconnect");

    // Removing one destination leaves the other one untouched.
    let before = status["push"][0]["bytes_sent"].as_u64().unwrap_or(0);
    let mut body = body;
    body["push"] = json!([body["push"][0].clone()]);
    let (st, b) = call(&s, Method::PUT, "/streams/src", Some(body)).await;
    assert_eq!(st, 200, "{b}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (_, b) = call(&s, Method::GET, "/streams/src/status", None).await;
    let push = b["data"]["push"].as_array().cloned().unwrap_or_default();
    assert_eq!(push.len(), 1, "{b:#}");
    assert_eq!(push[0]["state"], "active");
    assert_eq!(
        push[0]["reconnects"], status["push"][0]["reconnects"],
        "not restarted"
    );
    assert!(push[0]["bytes_sent"].as_u64().unwrap_or(0) > before);
    s.stop().await;
}

/// A destination that refuses TLS with an unknown CA reports a clean error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtmps_with_untrusted_certificate_is_reported() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let ngx = dir.path().join("nginx");
    std::fs::create_dir_all(&ngx).unwrap_or_else(|e| panic!("{e}"));
    make_certs(&ngx);
    let (ng_rtmp, ng_tls) = (free_port(), free_port());
    let _nginx = nginx(&ngx, ng_rtmp, Some(ng_tls));
    // No ca_file: the test CA is not trusted.
    let app = open_streamer::App::bind(config(dir.path(), ""))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let rtmp = app.rtmp_addr().unwrap_or_else(|| panic!("rtmp listener"));
    let s = common::serve(app);
    let body = json!({
        "inputs": [{"url": "rtmp://0.0.0.0:1935/live/k", "priority": 0}],
        "push": [{"url": format!("rtmps://127.0.0.1:{ng_tls}/live/x"), "retry_timeout_sec": 1}]
    });
    assert_eq!(call(&s, Method::PUT, "/streams/u", Some(body)).await.0, 201);
    assert_eq!(
        call(&s, Method::POST, "/streams/u/start", None).await.0,
        200
    );
    let _source = push_source(rtmp, "k", 20);
    let status = wait_status(&s, "u", Duration::from_secs(20), |d| {
        d["status"] == "active"
            && d["push"][0]["last_error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("tls"))
    })
    .await;
    assert_ne!(status["push"][0]["state"], "active");
    s.stop().await;
}

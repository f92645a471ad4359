//! os-load against a real RTMP server: nginx-rtmp on a loopback port, an
//! ffmpeg publisher (test pattern, real time), a few readers of which one
//! stalls. Fails, naming the packages, when nginx's RTMP module or ffmpeg
//! is missing (`make test` installs them).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use os_load::summary::Summary;

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

const MODULE: &str = "/usr/lib/nginx/modules/ngx_rtmp_module.so";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("{e}"))
}

fn require_peers() {
    let ok = Path::new(MODULE).exists()
        && Command::new("nginx").arg("-v").output().is_ok()
        && Command::new("ffmpeg").arg("-version").output().is_ok();
    assert!(
        ok,
        "this test needs nginx with its RTMP module and ffmpeg: apt-get install -y nginx libnginx-mod-rtmp ffmpeg"
    );
}

#[test]
fn rtmp_readers_of_nginx_rtmp() {
    require_peers();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    for sub in ["logs", "tmp"] {
        std::fs::create_dir_all(dir.path().join(sub)).unwrap_or_else(|e| panic!("{e}"));
    }
    let port = free_port();
    let conf = format!(
        "load_module {MODULE};\nmaster_process off;\ndaemon off;\nuser root;\n\
         pid tmp/nginx.pid;\nerror_log logs/error.log warn;\nevents {{ worker_connections 1024; }}\n\
         rtmp {{ server {{ listen 127.0.0.1:{port}; application live {{ live on; record off; }} }} }}\n"
    );
    std::fs::write(dir.path().join("nginx.conf"), conf).unwrap_or_else(|e| panic!("{e}"));
    let _nginx = Kill(
        Command::new("nginx")
            .arg("-p")
            .arg(format!("{}/", dir.path().display()))
            .arg("-c")
            .arg(dir.path().join("nginx.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("nginx: {e}")),
    );
    std::thread::sleep(Duration::from_millis(500));
    let url = format!("rtmp://127.0.0.1:{port}/live/t");
    let _publisher = Kill(
        Command::new("ffmpeg")
            .args(["-hide_banner", "-nostdin", "-loglevel", "error", "-re"])
            .args(["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25"])
            .args([
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-tune",
                "zerolatency",
            ])
            .args(["-g", "25", "-bf", "0", "-f", "flv", &url])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("ffmpeg: {e}")),
    );
    std::thread::sleep(Duration::from_secs(2));
    let out = Command::new(env!("CARGO_BIN_EXE_os-load"))
        .args(["rtmp", "--url", &url, "--readers", "5", "--stall", "1"])
        .args(["--warmup", "2", "--seconds", "3", "--ramp-ms", "200"])
        .output()
        .unwrap_or_else(|e| panic!("os-load: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stderr.contains("window start") && stderr.contains("window end"));
    let s: Summary =
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!((s.readers, s.stalled, s.connected), (5, 1, 5), "{stdout}");
    assert_eq!(s.receiving, 4, "{stdout}");
    assert_eq!(s.ends.get("stalled"), Some(&1), "{stdout}");
    assert_eq!(s.ends.get("cancelled"), Some(&4), "{stdout}");
    // 3 s at 25 fps per fast reader; allow for a loaded machine.
    assert!(s.per_reader.frames_min >= 40, "{stdout}");
    assert!(s.per_reader.frames_max <= 80, "{stdout}");
    assert!(s.per_reader.bytes_min > 0, "{stdout}");
    assert!(s.bytes >= 4 * s.per_reader.bytes_min, "{stdout}");
    let lat = &s.latency_ms;
    assert_eq!(lat.samples, s.frames, "{stdout}");
    assert!(
        lat.p50.is_some() && lat.p50 <= lat.p95 && lat.p95 <= lat.max,
        "{stdout}"
    );
    assert_eq!(lat.baseline, "all readers", "{stdout}");
}

//! Swagger UI renders the operations list in a real headless Chromium,
//! with no internet access (assets are vendored into the binary).

mod common;

use std::process::Command;
use std::time::Duration;

use common::{config, start};

fn chromium() -> String {
    for candidate in ["chromium", "chromium-browser", "google-chrome"] {
        if Command::new(candidate)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
        {
            return candidate.to_string();
        }
    }
    panic!(
        "Chromium is required for this test: apt-get install -y chromium (make test installs it)"
    );
}

fn headless(browser: &str, profile: &std::path::Path) -> Command {
    let mut cmd = Command::new(browser);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        "--virtual-time-budget=10000",
        "--window-size=1280,1600",
    ]);
    cmd.arg(format!("--user-data-dir={}", profile.display()));
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swagger_ui_lists_the_operations() {
    let browser = chromium();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let s = start(config(dir.path(), "")).await;
    let url = s.url("/swagger/");
    let profile = dir.path().join("profile");

    let dom = {
        let mut cmd = headless(&browser, &profile);
        cmd.arg("--dump-dom").arg(&url);
        tokio::task::spawn_blocking(move || cmd.output())
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|e| panic!("running chromium: {e}"))
    };
    let html = String::from_utf8_lossy(&dom.stdout);
    // Rendered by swagger-ui's JavaScript from /swagger/openapi.json.
    for needle in [
        "opblock-summary-path",
        "/streams/{code}/start",
        "/streams/{code}/status",
        "/healthz",
        "open-streamer",
    ] {
        assert!(
            html.contains(needle),
            "{needle:?} not rendered; DOM was:\n{html:.2000}"
        );
    }

    let shot = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("swagger-ui.png");
    let _ = std::fs::remove_file(&shot);
    let mut cmd = headless(&browser, &profile);
    cmd.arg(format!("--screenshot={}", shot.display()))
        .arg(&url);
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|e| panic!("running chromium: {e}"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let png = std::fs::read(&shot).unwrap_or_else(|e| panic!("{}: {e}", shot.display()));
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 20_000,
        "screenshot too small: {} bytes",
        png.len()
    );
    eprintln!("screenshot: {}", shot.display());
    tokio::time::sleep(Duration::from_millis(10)).await;
    s.stop().await;
}

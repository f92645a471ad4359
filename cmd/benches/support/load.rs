//! Running the `os-load` client (package `os-load`) from a benchmark, and
//! the network-namespace check for peers that bind every address.
//!
//! The binary: `$OS_LOAD_BIN` if set, else the bench builds it once with
//! `cargo build --release -p os-load --target-dir <target>` (the target
//! directory the bench binary itself runs from: `<target>/release/deps/`),
//! which is a no-op when it is up to date, and runs
//! `<target>/release/os-load`. A failed build panics with cargo's output.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub use os_load::summary::Summary;

/// The `os-load` binary (built once per bench process).
pub fn binary() -> PathBuf {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(build).clone()
}

fn build() -> PathBuf {
    if let Some(p) = std::env::var_os("OS_LOAD_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("current_exe: {e}"));
    // <target>/release/deps/<bench>-<hash>
    let target = exe
        .ancestors()
        .nth(3)
        .unwrap_or_else(|| panic!("{} is not under <target>/release/deps", exe.display()))
        .to_path_buf();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    println!("building os-load (cargo build --release -p os-load)");
    let out = Command::new(cargo)
        .args(["build", "--release", "-p", "os-load", "--target-dir"])
        .arg(&target)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .unwrap_or_else(|e| panic!("cargo build -p os-load: {e}"));
    assert!(
        out.status.success(),
        "cargo build -p os-load failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bin = target.join("release").join("os-load");
    assert!(bin.exists(), "{} missing after the build", bin.display());
    bin
}

/// Whether this process runs in a network namespace other than the init
/// process's: `/proc/self/ns/net` differs from `/proc/1/ns/net`. When the
/// latter cannot be read (no permission on pid 1), the namespace counts as
/// its own only if its sole network interface is loopback (a namespace
/// made with `ip netns add`), so a listener on every address reaches
/// nothing outside it.
pub fn in_own_netns() -> bool {
    match (
        std::fs::read_link("/proc/self/ns/net"),
        std::fs::read_link("/proc/1/ns/net"),
    ) {
        (Ok(a), Ok(b)) => a != b,
        _ => only_loopback(&std::fs::read_to_string("/proc/self/net/dev").unwrap_or_default()),
    }
}

/// Whether a `/proc/net/dev` table lists `lo` and nothing else.
pub fn only_loopback(dev: &str) -> bool {
    let names: Vec<&str> = dev
        .lines()
        .filter_map(|l| l.split_once(':').map(|(n, _)| n.trim()))
        .collect();
    names == ["lo"]
}

/// How to run a bench inside a throwaway network namespace.
pub fn netns_hint(bench: &str) -> String {
    format!(
        "ip netns add osbench && ip -n osbench link set lo up && \
         ip netns exec osbench cargo bench -p open-streamer --bench {bench}; ip netns del osbench"
    )
}

/// One `os-load` run and the server processes' figures over its window.
#[derive(Debug, Clone)]
pub struct Measured {
    pub summary: Summary,
    /// User+system CPU seconds of `pids` over the window.
    pub cpu_s: f64,
    /// RSS of `pids` at the end of the window, MiB.
    pub rss_mib: f64,
}

impl Measured {
    /// Server CPU seconds per GB the readers received.
    pub fn cpu_per_gb(&self) -> f64 {
        if self.summary.bytes == 0 {
            return f64::NAN;
        }
        self.cpu_s / (self.summary.bytes as f64 / 1e9)
    }
}

/// Run `os-load <proto> --url <url> <extra...>`, sampling `pids` (CPU,
/// RSS) when it reports its window start and end. The open-files limit is
/// raised to the hard limit first (through `sh -c ulimit`). `None`, with
/// the tool's error output, when it fails.
pub fn run(proto: &str, url: &str, extra: &[String], pids: &[u32]) -> Option<Measured> {
    let bin = binary();
    let mut child = super::Proc(
        Command::new("sh")
            .arg("-c")
            .arg(r#"ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec "$0" "$@""#)
            .arg(&bin)
            .args([proto, "--url", url])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e}", bin.display())),
    );
    let stderr = child.0.stderr.take()?;
    let mut start = None;
    let mut end = None;
    let mut errors = String::new();
    for line in BufReader::new(stderr).lines().map_while(Result::ok) {
        if line.ends_with("window start") {
            start = super::sample_all(pids);
        } else if line.ends_with("window end") {
            end = super::sample_all(pids);
        } else {
            errors.push_str(&line);
            errors.push('\n');
        }
    }
    let mut stdout = String::new();
    child.0.stdout.take()?.read_to_string(&mut stdout).ok()?;
    let status = child.0.wait().ok()?;
    let summary: Option<Summary> = stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok());
    let (Some(summary), true) = (summary, status.success()) else {
        println!("os-load failed ({status}): {errors}");
        return None;
    };
    if !errors.is_empty() {
        print!("os-load: {errors}");
    }
    let odd: Vec<String> = summary
        .ends
        .iter()
        .filter(|(why, _)| !matches!(why.as_str(), "cancelled" | "stalled"))
        .map(|(why, n)| format!("{n} x {why}"))
        .collect();
    if !odd.is_empty() {
        println!("{url}: players ended early: {}", odd.join(", "));
    }
    let (Some((c0, _)), Some((c1, rss_kib))) = (start, end) else {
        println!("server process gone during the window");
        return None;
    };
    Some(Measured {
        summary,
        cpu_s: c1 - c0,
        rss_mib: rss_kib as f64 / 1024.0,
    })
}

/// `xiu` binary: `$XIU_BIN`, else `.tools/xiu/bin/xiu` in the workspace.
pub fn xiu_binary() -> Option<PathBuf> {
    let p = std::env::var_os("XIU_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.tools/xiu/bin/xiu"));
    p.exists().then_some(p)
}

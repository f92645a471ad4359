//! `os-load`: many readers of one live stream in one process.
//!
//! ```text
//! os-load rtmp --url rtmp://127.0.0.1:1935/live/fan --readers 1000 --warmup 5 --seconds 20 [--stall 1]
//! os-load rtsp --url rtsp://127.0.0.1:8554/live/fan --readers 100
//! os-load srt  --url 'srt://127.0.0.1:9000?streamid=live/fan' --readers 100
//! ```
//!
//! Readers connect spread over `--ramp-ms`, then counting starts after
//! `--warmup` seconds (from the start) and lasts `--seconds`. `window
//! start` / `window end` lines on stderr mark the window (for a harness
//! sampling the server's CPU over the same interval). At the end ONE JSON
//! line (see `os_load::summary::Summary`) is printed on stdout.
//!
//! Every reader is a socket: for 1,000 readers the open-files limit must
//! allow it (`ulimit -n 4096` or more); the tool says so when it is lower.

use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use os_load::account::{Reader, Window};
use os_load::{Kind, Plan, rtmp, rtsp, srt, summary};
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Proto {
    Rtmp,
    Rtsp,
    Srt,
}

#[derive(Debug, Parser)]
#[command(
    name = "os-load",
    about = "Many readers of one live stream; prints one JSON summary line"
)]
struct Args {
    /// Transport.
    #[arg(value_enum)]
    proto: Proto,
    /// rtmp://host:port/app/key, rtsp://host:port/path or srt://host:port?streamid=..
    #[arg(long)]
    url: String,
    /// Readers (fast readers plus `--stall` stalled ones).
    #[arg(long, default_value_t = 100)]
    readers: usize,
    /// Seconds from the start before counting (connect + GOP burst).
    #[arg(long, default_value_t = 5.0)]
    warmup: f64,
    /// Counting window, seconds.
    #[arg(long, default_value_t = 20.0)]
    seconds: f64,
    /// Readers (out of `--readers`) that stop reading after their first
    /// video frame and keep the connection open.
    #[arg(long, default_value_t = 0)]
    stall: usize,
    /// Nominal video frame interval, ms (RTMP loss accounting).
    #[arg(long, default_value_t = 40.0)]
    frame_ms: f64,
    /// Spread the connects over this many ms.
    #[arg(long, default_value_t = 1000)]
    ramp_ms: u64,
    /// A reader gives up after this many seconds without data.
    #[arg(long, default_value_t = 10)]
    idle: u64,
    /// Runtime worker threads (default: available CPUs).
    #[arg(long)]
    threads: Option<usize>,
}

/// Soft limit of open files, from /proc/self/limits.
fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

fn main() {
    let args = Args::parse();
    if let Err(e) = run(&args) {
        eprintln!("os-load: {e}");
        std::process::exit(2);
    }
}

fn run(args: &Args) -> Result<(), String> {
    if args.stall > args.readers {
        return Err("--stall is larger than --readers".into());
    }
    if !(args.warmup >= 0.0 && args.seconds > 0.0 && args.frame_ms > 0.0) {
        return Err("--warmup, --seconds and --frame-ms must be positive".into());
    }
    if let Some(limit) = open_files_limit() {
        let need = args.readers as u64 + 64;
        if limit < need {
            eprintln!(
                "os-load: open-files limit {limit} is below {need}; raise it (ulimit -n {})",
                need.next_power_of_two()
            );
        }
    }
    let kind = match args.proto {
        Proto::Rtmp => Kind::Rtmp,
        Proto::Rtsp => Kind::Rtsp,
        Proto::Srt => Kind::Srt,
    };
    // Validate the URL once, before starting readers.
    match kind {
        Kind::Rtmp => {
            rtmp::parse_url(&args.url)?;
        }
        Kind::Srt => {
            srt::parse_url(&args.url)?;
        }
        Kind::Rtsp => {
            url::Url::parse(&args.url).map_err(|e| format!("{}: {e}", args.url))?;
        }
    }
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if let Some(t) = args.threads {
        rt.worker_threads(t.max(1));
    }
    let rt = rt.enable_all().build().map_err(|e| e.to_string())?;
    let epoch = Instant::now();
    let start = epoch + Duration::from_secs_f64(args.warmup);
    let plan = Plan {
        epoch,
        window: Window {
            start,
            end: start + Duration::from_secs_f64(args.seconds),
        },
        frame_ms: args.frame_ms,
        stop: CancellationToken::new(),
        idle: Duration::from_secs(args.idle.max(1)),
    };
    let readers = rt.block_on(drive(args, kind, plan))?;
    let s = summary::summarize(
        kind.name(),
        &args.url,
        args.seconds,
        match kind {
            Kind::Rtmp => "frames",
            Kind::Rtsp => "RTP packets",
            Kind::Srt => "TS packets",
        },
        &readers,
    );
    let line = serde_json::to_string(&s).map_err(|e| e.to_string())?;
    println!("{line}");
    rt.shutdown_timeout(Duration::from_secs(1));
    Ok(())
}

async fn drive(args: &Args, kind: Kind, plan: Plan) -> Result<Vec<Reader>, String> {
    let n = args.readers;
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let plan = plan.clone();
        let url = args.url.clone();
        // The last `stall` readers are the stalled ones.
        let stall = i >= n - args.stall;
        let delay = Duration::from_millis(args.ramp_ms * i as u64 / n.max(1) as u64);
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            match kind {
                Kind::Rtmp => match rtmp::parse_url(&url) {
                    Ok((addr, app, key)) => rtmp::play(&addr, &app, &key, &plan, stall).await,
                    Err(e) => failed(e),
                },
                Kind::Srt => match srt::parse_url(&url) {
                    Ok((addr, id, latency)) => {
                        srt::play(&addr, id.as_deref(), latency, &plan, stall).await
                    }
                    Err(e) => failed(e),
                },
                Kind::Rtsp => rtsp::play(&url, &plan, stall).await,
            }
        }));
    }
    tokio::time::sleep_until(plan.window.start.into()).await;
    eprintln!("os-load: window start");
    tokio::time::sleep_until(plan.window.end.into()).await;
    eprintln!("os-load: window end");
    plan.stop.cancel();
    let mut out = Vec::with_capacity(n);
    for t in tasks {
        out.push(
            t.await
                .unwrap_or_else(|e| failed(format!("reader task: {e}"))),
        );
    }
    Ok(out)
}

fn failed(e: String) -> Reader {
    Reader {
        end: format!("error: {e}"),
        ..Reader::default()
    }
}

//! Render the benchmark report from a results file.
//!
//! ```text
//! os-bench-report --results FILE --out FILE [--title TEXT] [--note TEXT]...
//!     [--version NAME=VALUE]... [--run NAME|STATUS|SECONDS|FIGURES|LOG]...
//! ```
//!
//! `--run` lists a scenario the suite ran: its status ("ok" or why it
//! failed), its duration, how many figures it printed, and its log, whose
//! last lines are shown when it failed. The machine (CPU, cores, RAM, kernel) is read from /proc.

use std::process::ExitCode;

use os_bench::report::{Header, Run, machine, render, utc_date};

const USAGE: &str = "usage: os-bench-report --results FILE --out FILE [--title TEXT] \
                     [--note TEXT]... [--version NAME=VALUE]... [--run NAME|STATUS|SECONDS|FIGURES|LOG]...";

fn log_tail(path: &str, lines: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("(no log: {e})"),
    }
}

fn main() -> ExitCode {
    let mut results = None;
    let mut out = None;
    let mut header = Header {
        title: "Benchmarks".into(),
        machine: machine(),
        ..Header::default()
    };
    let mut runs = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let Some(value) = args.next() else {
            eprintln!("{flag} needs a value\n{USAGE}");
            return ExitCode::from(2);
        };
        match flag.as_str() {
            "--results" => results = Some(value),
            "--out" => out = Some(value),
            "--title" => header.title = value,
            "--note" => header.notes.push(value),
            "--version" => {
                let (k, v) = value.split_once('=').unwrap_or((value.as_str(), ""));
                header.versions.push((k.to_string(), v.to_string()));
            }
            "--run" => {
                let parts: Vec<&str> = value.splitn(5, '|').collect();
                let [name, status, seconds, figures, log] = parts[..] else {
                    eprintln!("--run wants NAME|STATUS|SECONDS|FIGURES|LOG, got {value}");
                    return ExitCode::from(2);
                };
                runs.push(Run {
                    name: name.to_string(),
                    status: status.to_string(),
                    seconds: seconds.parse().unwrap_or(f64::NAN),
                    figures: figures.parse().ok(),
                    log_tail: if status == "ok" {
                        String::new()
                    } else {
                        log_tail(log, 15)
                    },
                });
            }
            _ => {
                eprintln!("unknown argument {flag}\n{USAGE}");
                return ExitCode::from(2);
            }
        }
    }
    let (Some(results), Some(out)) = (results, out) else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    // A missing results file means no scenario produced a figure.
    let text = std::fs::read_to_string(&results).unwrap_or_default();
    let figures = os_bench::parse(&text);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    header.date_utc = utc_date(now);
    let doc = render(&header, &runs, &figures);
    if let Err(e) = std::fs::write(&out, doc) {
        eprintln!("cannot write {out}: {e}");
        return ExitCode::FAILURE;
    }
    println!(
        "{out}: {} figures, {} scenarios run",
        figures.len(),
        runs.len()
    );
    ExitCode::SUCCESS
}

//! Benchmark figures.
//!
//! Every loopback benchmark reports what it measured as [`Figure`]s through
//! [`emit`]: one JSON object per line, printed to stdout behind a
//! [`LINE_PREFIX`] and, when `BENCH_RESULTS` names a file, appended to it.
//! The suite (`make bench`) collects those lines from every scenario and
//! renders the report from them, so a figure in the report is always one a
//! benchmark printed in the same run.
//!
//! A benchmark runs its subjects alternately — ours, then each peer, trial
//! after trial — and gives each figure its `trial` number; a ratio to a peer
//! is computed per trial (both measured back to back), then summarised.

use std::io::Write;

pub mod report;

use serde::{Deserialize, Serialize};

/// Printed before each figure's JSON on stdout.
pub const LINE_PREFIX: &str = "BENCH-FIGURE ";

/// Environment variable naming the JSON-lines file figures are appended to.
pub const RESULTS_ENV: &str = "BENCH_RESULTS";

/// The subject name of our own server in figures.
pub const OURS: &str = "open-streamer";

/// Which direction is an improvement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Better {
    Lower,
    Higher,
}

/// A target a figure is checked against in the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Goal {
    /// Our median ratio to `peer` must be at most (`Better::Lower`) or at
    /// least (`Better::Higher`) `ratio`.
    Ratio { peer: String, ratio: f64 },
    /// Our median value must be at most / at least `value` (in the figure's unit).
    Absolute { value: f64 },
}

/// One measured value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Figure {
    /// Scenario, e.g. "RTMP fan-out".
    pub scenario: String,
    /// Case within the scenario, e.g. "500 players".
    pub case: String,
    /// What was measured, e.g. "CPU s per GB delivered".
    pub metric: String,
    /// Unit of `value`, e.g. "s/GB".
    pub unit: String,
    /// Who was measured: [`OURS`], "nginx-rtmp", "xiu", "ffmpeg", …
    pub subject: String,
    /// Trial number, from 1; equal numbers were measured back to back.
    pub trial: u32,
    pub value: f64,
    pub better: Better,
    /// Set on our figure only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub goal: Option<Goal>,
}

impl Figure {
    /// A figure without a goal.
    pub fn new(
        scenario: impl Into<String>,
        case: impl Into<String>,
        metric: impl Into<String>,
        unit: impl Into<String>,
        better: Better,
    ) -> Self {
        Self {
            scenario: scenario.into(),
            case: case.into(),
            metric: metric.into(),
            unit: unit.into(),
            subject: OURS.to_owned(),
            trial: 1,
            value: f64::NAN,
            better,
            goal: None,
        }
    }

    /// The same figure with a goal.
    pub fn goal(mut self, goal: Goal) -> Self {
        self.goal = Some(goal);
        self
    }

    /// A measured value of this figure: `subject` in trial `trial`.
    pub fn value(&self, subject: &str, trial: u32, value: f64) -> Self {
        Self {
            subject: subject.to_owned(),
            trial,
            value,
            goal: if subject == OURS {
                self.goal.clone()
            } else {
                None
            },
            ..self.clone()
        }
    }
}

/// Print `figure` (stdout, prefixed) and append it to `$BENCH_RESULTS`.
/// A non-finite value is skipped: it means "not measured".
pub fn emit(figure: &Figure) {
    if !figure.value.is_finite() {
        return;
    }
    let Ok(line) = serde_json::to_string(figure) else {
        return;
    };
    println!("{LINE_PREFIX}{line}");
    if let Some(path) = std::env::var_os(RESULTS_ENV) {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path);
        match file {
            Ok(mut f) => {
                if let Err(e) = writeln!(f, "{line}") {
                    eprintln!("cannot append to {}: {e}", path.to_string_lossy());
                }
            }
            Err(e) => eprintln!("cannot open {}: {e}", path.to_string_lossy()),
        }
    }
}

/// Parse figures from JSON lines (either bare, or stdout lines carrying
/// [`LINE_PREFIX`]); other lines are ignored.
pub fn parse(text: &str) -> Vec<Figure> {
    text.lines()
        .filter_map(|l| {
            let l = l.strip_prefix(LINE_PREFIX).unwrap_or(l).trim();
            serde_json::from_str(l).ok()
        })
        .collect()
}

/// Number of trials a benchmark runs: `BENCH_RUNS`, default 3, at least 1.
pub fn runs() -> u32 {
    std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3u32)
        .max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_round_trip_through_lines() {
        let f = Figure::new(
            "RTMP fan-out",
            "500 players",
            "CPU per GB",
            "s/GB",
            Better::Lower,
        )
        .goal(Goal::Ratio {
            peer: "nginx-rtmp".into(),
            ratio: 0.6,
        });
        let ours = f.value(OURS, 2, 3.25);
        let peer = f.value("nginx-rtmp", 2, 4.5);
        assert_eq!(peer.goal, None);
        let text = format!(
            "noise\n{LINE_PREFIX}{}\n{}\n",
            serde_json::to_string(&ours).unwrap_or_default(),
            serde_json::to_string(&peer).unwrap_or_default()
        );
        assert_eq!(parse(&text), vec![ours, peer]);
    }
}

//! The suite report: statistics over trials, goal checks, and the markdown
//! `make bench` writes to `docs/BENCHMARKS.md`.
//!
//! Figures are grouped by scenario (in the order they first appear in the
//! results), then by case and metric. For every subject the values over its
//! trials are summarised as min / median / max; for every peer, the ratio
//! ours / peer is computed per trial (both measured back to back) and
//! summarised the same way. A goal is checked on the median.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::{Better, Figure, Goal, OURS};

/// min / median / max of a set of values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub min: f64,
    pub median: f64,
    pub max: f64,
    pub count: usize,
}

/// Summary of the finite values in `values`; `None` when there are none.
/// The median of an even count is the mean of the two middle values.
pub fn summarize(values: &[f64]) -> Option<Summary> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    Some(Summary {
        min: v[0],
        median,
        max: v[n - 1],
        count: n,
    })
}

/// Outcome of checking a goal against a median.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Met,
    /// Missed; `by` is how far off the median is, in the goal's terms
    /// (a fraction of the target, e.g. 0.25 = 25 %).
    Missed {
        by: f64,
    },
    /// Could not be checked (e.g. no figures of the goal's peer).
    NotChecked(String),
}

/// Whether `median` meets `target` in direction `better`.
pub fn check(median: f64, target: f64, better: Better) -> Verdict {
    if !median.is_finite() || !target.is_finite() {
        return Verdict::NotChecked("no value".into());
    }
    let met = match better {
        Better::Lower => median <= target,
        Better::Higher => median >= target,
    };
    if met {
        return Verdict::Met;
    }
    let by = if target == 0.0 {
        f64::INFINITY
    } else {
        ((median - target) / target).abs()
    };
    Verdict::Missed { by }
}

/// Everything measured for one case + metric.
#[derive(Debug, Clone)]
pub struct Row {
    pub case: String,
    pub metric: String,
    pub unit: String,
    pub better: Better,
    pub goal: Option<Goal>,
    /// Per subject (ours first, then peers in order of appearance): trial → value.
    pub subjects: Vec<(String, BTreeMap<u32, f64>)>,
}

impl Row {
    fn values(&self, subject: &str) -> Option<&BTreeMap<u32, f64>> {
        self.subjects
            .iter()
            .find(|(s, _)| s == subject)
            .map(|(_, v)| v)
    }

    /// Number of distinct trials any subject of this row was measured in.
    pub fn trials(&self) -> usize {
        let mut t: Vec<u32> = self
            .subjects
            .iter()
            .flat_map(|(_, v)| v.keys().copied())
            .collect();
        t.sort_unstable();
        t.dedup();
        t.len()
    }

    /// Summary of `subject`'s values over its trials.
    pub fn summary(&self, subject: &str) -> Option<Summary> {
        let v: Vec<f64> = self.values(subject)?.values().copied().collect();
        summarize(&v)
    }

    /// Ratios ours / `peer` of the trials both were measured in.
    pub fn ratios(&self, peer: &str) -> Vec<f64> {
        let (Some(ours), Some(theirs)) = (self.values(OURS), self.values(peer)) else {
            return Vec::new();
        };
        ours.iter()
            .filter_map(|(t, o)| theirs.get(t).map(|p| o / p))
            .filter(|r| r.is_finite())
            .collect()
    }

    /// The goal's verdict and the median it was checked on.
    pub fn verdict(&self) -> Option<(Verdict, Option<f64>)> {
        let goal = self.goal.as_ref()?;
        Some(match goal {
            Goal::Ratio { peer, ratio } => match summarize(&self.ratios(peer)) {
                Some(s) => (check(s.median, *ratio, self.better), Some(s.median)),
                None => (
                    Verdict::NotChecked(format!("no paired trials with {peer}")),
                    None,
                ),
            },
            Goal::Absolute { value } => match self.summary(OURS) {
                Some(s) => (check(s.median, *value, self.better), Some(s.median)),
                None => (Verdict::NotChecked("no figure of ours".into()), None),
            },
        })
    }
}

/// One scenario: its rows in order of appearance.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    pub rows: Vec<Row>,
}

impl Scenario {
    /// Subjects in this scenario, ours first.
    pub fn subjects(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for r in &self.rows {
            for (s, _) in &r.subjects {
                if !out.contains(s) {
                    out.push(s.clone());
                }
            }
        }
        out.sort_by_key(|s| s != OURS);
        out
    }
}

/// Group figures by scenario, then case + metric, keeping first-appearance
/// order. A later figure for the same subject and trial replaces the earlier.
pub fn group(figures: &[Figure]) -> Vec<Scenario> {
    let mut scenarios: Vec<Scenario> = Vec::new();
    for f in figures.iter().filter(|f| f.value.is_finite()) {
        let si = match scenarios.iter().position(|s| s.name == f.scenario) {
            Some(i) => i,
            None => {
                scenarios.push(Scenario {
                    name: f.scenario.clone(),
                    rows: Vec::new(),
                });
                scenarios.len() - 1
            }
        };
        let rows = &mut scenarios[si].rows;
        let ri = match rows
            .iter()
            .position(|r| r.case == f.case && r.metric == f.metric)
        {
            Some(i) => i,
            None => {
                rows.push(Row {
                    case: f.case.clone(),
                    metric: f.metric.clone(),
                    unit: f.unit.clone(),
                    better: f.better,
                    goal: None,
                    subjects: Vec::new(),
                });
                rows.len() - 1
            }
        };
        let row = &mut rows[ri];
        if f.subject == OURS && f.goal.is_some() {
            row.goal = f.goal.clone();
        }
        match row.subjects.iter_mut().find(|(s, _)| *s == f.subject) {
            Some((_, v)) => {
                v.insert(f.trial, f.value);
            }
            None => {
                let mut v = BTreeMap::new();
                v.insert(f.trial, f.value);
                row.subjects.push((f.subject.clone(), v));
            }
        }
    }
    for s in &mut scenarios {
        for r in &mut s.rows {
            r.subjects.sort_by_key(|(name, _)| name != OURS);
        }
    }
    scenarios
}

/// A number with about three significant digits.
pub fn num(v: f64) -> String {
    if !v.is_finite() {
        return "—".into();
    }
    let a = v.abs();
    if a >= 100.0 || a == 0.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else if a >= 0.01 {
        format!("{v:.3}")
    } else {
        format!("{v:.2e}")
    }
}

/// The cell of a summary; `trials` is how many trials the row has, so a
/// subject measured in fewer says so.
fn triple(s: &Summary, trials: usize) -> String {
    let mut c = if s.count == 1 {
        format!("**{}**", num(s.median))
    } else {
        format!("{} / **{}** / {}", num(s.min), num(s.median), num(s.max))
    };
    if s.count < trials {
        let _ = write!(c, " ({} of {trials} trials)", s.count);
    }
    c
}

fn goal_text(goal: &Goal, better: Better, unit: &str) -> String {
    let op = match better {
        Better::Lower => "≤",
        Better::Higher => "≥",
    };
    match goal {
        Goal::Ratio { peer, ratio } => format!("{op} {}× {peer}", num(*ratio)),
        Goal::Absolute { value } => format!("{op} {} {unit}", num(*value)),
    }
}

/// The goal cell: target and verdict.
pub fn goal_cell(row: &Row) -> String {
    let Some(goal) = &row.goal else {
        return String::new();
    };
    let target = goal_text(goal, row.better, &row.unit);
    match row.verdict() {
        Some((Verdict::Met, _)) => format!("{target}: met"),
        Some((Verdict::Missed { by }, Some(median))) => {
            let off = match goal {
                Goal::Ratio { .. } => format!("{}×", num(median)),
                Goal::Absolute { .. } => format!("{} {}", num(median), row.unit),
            };
            format!("{target}: **MISSED** by {:.0} % ({off})", by * 100.0)
        }
        Some((Verdict::Missed { by }, None)) => {
            format!("{target}: **MISSED** by {:.0} %", by * 100.0)
        }
        Some((Verdict::NotChecked(why), _)) => format!("{target}: not checked ({why})"),
        None => target,
    }
}

/// How one scenario of the suite ran.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    /// The scenario's name in the suite (e.g. "rtmp_ingest").
    pub name: String,
    /// "ok", or why it failed ("exit 101", "timeout after 900 s", "missing").
    pub status: String,
    pub seconds: f64,
    /// Figures it printed, when known.
    pub figures: Option<usize>,
    /// Last lines of its log, shown when it failed.
    pub log_tail: String,
}

/// Header facts: date, machine, versions, notes.
#[derive(Debug, Clone, Default)]
pub struct Header {
    pub title: String,
    pub date_utc: String,
    /// (name, value), e.g. ("CPU", "AMD EPYC 7B13, 2 cores").
    pub machine: Vec<(String, String)>,
    pub versions: Vec<(String, String)>,
    pub notes: Vec<String>,
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// Render the whole report.
pub fn render(header: &Header, runs: &[Run], figures: &[Figure]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# {}\n", header.title);
    let _ = writeln!(
        out,
        "Generated by `build/bench.sh` on {} UTC from the figures the benchmarks printed in \
         that run; do not edit by hand. What the figures mean, how each scenario measures, and \
         the design behind them: [PERFORMANCE.md](PERFORMANCE.md).\n",
        header.date_utc
    );
    for n in &header.notes {
        let _ = writeln!(out, "{n}\n");
    }
    let _ = writeln!(out, "| machine | |\n|---|---|");
    for (k, v) in &header.machine {
        let _ = writeln!(out, "| {} | {} |", cell(k), cell(v));
    }
    let _ = writeln!(out, "\n| version | |\n|---|---|");
    for (k, v) in &header.versions {
        let _ = writeln!(out, "| {} | {} |", cell(k), cell(v));
    }
    let _ = writeln!(
        out,
        "\nCells are min / **median** / max over trials (one bold value: a single trial). \
         A ratio is ours / peer, computed per trial from figures measured back to back, then \
         summarised. Goals are checked on the median.\n"
    );

    if !runs.is_empty() {
        let _ = writeln!(out, "## Scenarios run\n");
        let _ = writeln!(
            out,
            "| scenario | result | figures | time |\n|---|---|---:|---:|"
        );
        for r in runs {
            let result = match (r.status.as_str(), r.figures) {
                ("ok", Some(0)) => "ok, but it printed no figures".to_string(),
                ("ok", _) => "ok".to_string(),
                (why, _) => format!("**failed**: {}", cell(why)),
            };
            let _ = writeln!(
                out,
                "| {} | {result} | {} | {:.0} s |",
                cell(&r.name),
                r.figures.map_or("—".to_string(), |n| n.to_string()),
                r.seconds
            );
        }
        let _ = writeln!(out);
        for r in runs.iter().filter(|r| r.status != "ok") {
            let _ = writeln!(
                out,
                "`{}` failed ({}); last lines of its log:\n\n```text\n{}\n```\n",
                r.name,
                r.status,
                r.log_tail.trim_end()
            );
        }
    }

    for s in group(figures) {
        let subjects = s.subjects();
        let peers: Vec<&String> = subjects.iter().filter(|p| *p != OURS).collect();
        let _ = writeln!(out, "## {}\n", s.name);
        let mut head = String::from("| case | metric |");
        let mut rule = String::from("|---|---|");
        for sub in &subjects {
            let _ = write!(head, " {} |", cell(sub));
            rule.push_str("---:|");
        }
        for p in &peers {
            let _ = write!(head, " ours / {} |", cell(p));
            rule.push_str("---:|");
        }
        head.push_str(" goal |");
        rule.push_str("---|");
        let _ = writeln!(out, "{head}\n{rule}");
        for r in &s.rows {
            let arrow = match r.better {
                Better::Lower => "lower is better",
                Better::Higher => "higher is better",
            };
            let mut line = format!(
                "| {} | {} ({}; {arrow}) |",
                cell(&r.case),
                cell(&r.metric),
                cell(&r.unit)
            );
            for sub in &subjects {
                let c = r
                    .summary(sub)
                    .map(|x| triple(&x, r.trials()))
                    .unwrap_or_default();
                let _ = write!(line, " {c} |");
            }
            for p in &peers {
                let c = summarize(&r.ratios(p))
                    .map(|x| triple(&x, r.trials()))
                    .unwrap_or_default();
                let _ = write!(line, " {c} |");
            }
            let _ = write!(line, " {} |", cell(&goal_cell(r)));
            let _ = writeln!(out, "{line}");
        }
        let _ = writeln!(out);
    }
    out
}

/// `YYYY-MM-DD HH:MM` (UTC) of a Unix time in seconds.
pub fn utc_date(unix_secs: i64) -> String {
    let days = unix_secs.div_euclid(86_400);
    let secs = unix_secs.rem_euclid(86_400);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}",
        secs / 3600,
        (secs % 3600) / 60
    )
}

/// CPU model, cores, RAM and kernel of this machine, from /proc.
pub fn machine() -> Vec<(String, String)> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .and_then(|r| r.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get().to_string())
        .unwrap_or_else(|_| "unknown".into());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let ram = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kib| kib.parse::<f64>().ok())
        .map(|kib| format!("{:.1} GiB", kib / 1024.0 / 1024.0))
        .unwrap_or_else(|| "unknown".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "unknown".into());
    vec![
        ("CPU".into(), model),
        ("cores".into(), cores),
        ("RAM".into(), ram),
        ("kernel".into(), kernel),
        ("load average when rendered".into(), load),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fig(case: &str, better: Better, goal: Option<Goal>) -> Figure {
        let f = Figure::new("S", case, "m", "u", better);
        match goal {
            Some(g) => f.goal(g),
            None => f,
        }
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        let s = summarize(&[3.0, 1.0, 2.0]).unwrap_or_else(|| panic!("none"));
        assert_eq!((s.min, s.median, s.max, s.count), (1.0, 2.0, 3.0, 3));
        let s = summarize(&[4.0, 1.0, 3.0, 2.0]).unwrap_or_else(|| panic!("none"));
        assert_eq!((s.min, s.median, s.max), (1.0, 2.5, 4.0));
        let s = summarize(&[5.0, f64::NAN]).unwrap_or_else(|| panic!("none"));
        assert_eq!((s.median, s.count), (5.0, 1));
        assert_eq!(summarize(&[]), None);
        assert_eq!(summarize(&[f64::NAN]), None);
    }

    #[test]
    fn goal_check_both_directions() {
        assert_eq!(check(0.9, 1.0, Better::Lower), Verdict::Met);
        assert_eq!(check(1.0, 1.0, Better::Lower), Verdict::Met);
        assert_eq!(
            check(1.25, 1.0, Better::Lower),
            Verdict::Missed { by: 0.25 }
        );
        assert_eq!(check(1.1, 0.9, Better::Higher), Verdict::Met);
        assert_eq!(check(0.9, 0.9, Better::Higher), Verdict::Met);
        match check(0.45, 0.9, Better::Higher) {
            Verdict::Missed { by } => assert!((by - 0.5).abs() < 1e-12),
            v => panic!("{v:?}"),
        }
        assert!(matches!(
            check(f64::NAN, 1.0, Better::Lower),
            Verdict::NotChecked(_)
        ));
    }

    #[test]
    fn ratios_are_per_trial_and_higher_is_checked_on_their_median() {
        let f = fig(
            "c",
            Better::Higher,
            Some(Goal::Ratio {
                peer: "nginx".into(),
                ratio: 0.9,
            }),
        );
        let figures = vec![
            f.value(OURS, 1, 80.0),
            f.value("nginx", 1, 100.0),
            f.value(OURS, 2, 200.0),
            f.value("nginx", 2, 100.0),
            f.value(OURS, 3, 50.0),
            f.value("nginx", 3, 100.0),
            // Trial 4: the peer was not measured; not paired.
            f.value(OURS, 4, 1000.0),
        ];
        let s = group(&figures);
        assert_eq!(s.len(), 1);
        let row = &s[0].rows[0];
        let mut r = row.ratios("nginx");
        r.sort_by(f64::total_cmp);
        assert_eq!(r, vec![0.5, 0.8, 2.0]);
        // Median ratio 0.8 < 0.9: missed by 11 %.
        match row.verdict() {
            Some((Verdict::Missed { by }, Some(m))) => {
                assert_eq!(m, 0.8);
                assert!((by - 0.1 / 0.9).abs() < 1e-9);
            }
            v => panic!("{v:?}"),
        }
        // Ours over 4 trials: median of 50, 80, 200, 1000 = 140.
        let ours = row.summary(OURS).unwrap_or_else(|| panic!("none"));
        assert_eq!(ours.median, 140.0);
        assert!(goal_cell(row).contains("**MISSED** by 11 % (0.800×)"));
        // The peer was measured in 3 of the row's 4 trials, and so is the ratio.
        let text = render(&Header::default(), &[], &figures);
        assert!(
            text.contains("| 100 / **100** / 100 (3 of 4 trials) |"),
            "{text}"
        );
        assert!(
            text.contains("| 0.500 / **0.800** / 2.00 (3 of 4 trials) |"),
            "{text}"
        );
    }

    #[test]
    fn missing_peer_is_not_checked_and_absolute_goals_use_our_median() {
        let f = fig(
            "c",
            Better::Lower,
            Some(Goal::Ratio {
                peer: "xiu".into(),
                ratio: 1.0,
            }),
        );
        let g = fig("d", Better::Lower, Some(Goal::Absolute { value: 8.0 }));
        let figures = vec![
            f.value(OURS, 1, 1.0),
            g.value(OURS, 1, 7.0),
            g.value(OURS, 2, 9.0),
            g.value(OURS, 3, 7.5),
        ];
        let s = group(&figures);
        let rows = &s[0].rows;
        assert!(matches!(
            rows[0].verdict(),
            Some((Verdict::NotChecked(_), None))
        ));
        assert!(goal_cell(&rows[0]).contains("not checked"));
        assert_eq!(rows[1].verdict(), Some((Verdict::Met, Some(7.5))));
        assert!(goal_cell(&rows[1]).ends_with("met"));
        let text = render(&Header::default(), &[], &figures);
        assert!(text.contains("| d | m (u; lower is better) | 7.00 / **7.50** / 9.00 |"));
    }

    #[test]
    fn failed_runs_are_listed_with_their_log() {
        let runs = vec![
            Run {
                name: "a".into(),
                status: "ok".into(),
                seconds: 3.0,
                figures: Some(0),
                log_tail: String::new(),
            },
            Run {
                name: "b".into(),
                status: "exit 101".into(),
                seconds: 1.0,
                figures: None,
                log_tail: "thread 'main' panicked".into(),
            },
        ];
        let text = render(&Header::default(), &runs, &[]);
        assert!(text.contains("| a | ok, but it printed no figures | 0 | 3 s |"));
        assert!(text.contains("| b | **failed**: exit 101 | — | 1 s |"));
        assert!(text.contains("thread 'main' panicked"));
    }

    #[test]
    fn utc_dates() {
        assert_eq!(utc_date(0), "1970-01-01 00:00");
        assert_eq!(utc_date(951_782_400), "2000-02-29 00:00");
        assert_eq!(utc_date(1_795_276_650), "2026-11-21 15:57");
    }
}

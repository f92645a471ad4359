//! Process figures from `/proc/self` (Linux; elsewhere they are absent).

/// CPU seconds, resident bytes, open fds, threads.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct ProcessSample {
    pub cpu_seconds: Option<f64>,
    pub resident_bytes: Option<u64>,
    pub open_fds: Option<u64>,
    pub threads: Option<u64>,
}

/// Kernel clock ticks per second as /proc reports them (USER_HZ, fixed at
/// 100 in the Linux user-space ABI).
const USER_HZ: f64 = 100.0;

pub(crate) fn sample() -> ProcessSample {
    let mut s = ProcessSample::default();
    if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
        s.cpu_seconds = cpu_seconds(&stat);
    }
    if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
        for line in status.lines() {
            if let Some(v) = line.strip_prefix("VmRSS:") {
                s.resident_bytes = kb(v).map(|k| k * 1024);
            } else if let Some(v) = line.strip_prefix("Threads:") {
                s.threads = v.trim().parse().ok();
            }
        }
    }
    if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
        s.open_fds = Some(dir.count() as u64);
    }
    s
}

/// utime + stime (fields 14 and 15) of a `/proc/<pid>/stat` line. The
/// command name (field 2) may contain spaces and parentheses: fields are
/// counted after its last `)`.
fn cpu_seconds(stat: &str) -> Option<f64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    // After ")" come field 3 (state) onwards; utime is field 14.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / USER_HZ)
}

fn kb(v: &str) -> Option<u64> {
    v.split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn stat_line_with_odd_command_name() {
        let line = "4242 (a b) c)) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 3 0 100 1000 10";
        assert_eq!(cpu_seconds(line), Some(3.0));
        assert_eq!(cpu_seconds("garbage"), None);
    }

    #[test]
    fn own_process_is_sampled() {
        let s = sample();
        assert!(s.resident_bytes.unwrap() > 1024 * 1024);
        assert!(s.threads.unwrap() >= 1);
        assert!(s.open_fds.unwrap() >= 3);
        assert!(s.cpu_seconds.unwrap() >= 0.0);
    }
}

//! Readings of a process from `/proc` and of the two HTTP endpoints.

use crate::process::http_get;

/// Peak memory and CPU time of one process so far.
pub struct ProcSample {
    /// `VmHWM` from `/proc/PID/status`: the peak resident set size.
    pub peak_rss_kib: u64,
    /// `utime` from `/proc/PID/stat`, in seconds.
    pub user_seconds: f64,
    /// `stime` from `/proc/PID/stat`, in seconds.
    pub system_seconds: f64,
}

impl ProcSample {
    pub fn read(pid: u32) -> Result<Self, String> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .map_err(|err| format!("cannot read /proc/{pid}/status: {err}"))?;
        let peak_rss_kib = status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|value| value.split_whitespace().next())
            .and_then(|kib| kib.parse().ok())
            .ok_or_else(|| format!("no VmHWM in /proc/{pid}/status"))?;

        // Fields after the `(comm)` one, which may contain spaces: state is
        // field 3 of proc(5), so utime (14) and stime (15) are at 11 and 12.
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map_err(|err| format!("cannot read /proc/{pid}/stat: {err}"))?;
        let after_comm = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        let fields: Vec<&str> = after_comm.split_whitespace().collect();
        let ticks = |index: usize| -> Result<f64, String> {
            fields
                .get(index)
                .and_then(|value| value.parse::<f64>().ok())
                .ok_or_else(|| format!("malformed /proc/{pid}/stat"))
        };
        let per_second = clock_ticks_per_second();

        Ok(Self {
            peak_rss_kib,
            user_seconds: ticks(11)? / per_second,
            system_seconds: ticks(12)? / per_second,
        })
    }

    pub fn cpu_seconds(&self) -> f64 {
        self.user_seconds + self.system_seconds
    }
}

/// Returns `getconf CLK_TCK`, or 100 (the usual Linux value) when it fails.
fn clock_ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|output| String::from_utf8(output.stdout).ok())
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(100.0)
}

/// Sums every sample of `name` whose label set contains `label`.
pub fn metric_sum(text: &str, name: &str, label: &str) -> f64 {
    text.lines()
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter(|line| line.contains(label))
        .filter_map(|line| line.rsplit(' ').next())
        .filter_map(|value| value.parse::<f64>().ok())
        .sum()
}

/// Counts the simulator's logged requests to `path` that arrived between
/// `from_ms` and `to_ms` (epoch milliseconds, both included).
pub fn api_search_calls(
    sim_url: &str,
    path: &str,
    from_ms: i64,
    to_ms: i64,
) -> Result<usize, String> {
    let log = http_get(sim_url, "/__sim/requests")?;
    let mut calls = 0;
    for line in log.lines().filter(|line| !line.is_empty()) {
        let entry: serde_json::Value = serde_json::from_str(line)
            .map_err(|err| format!("invalid /__sim/requests line: {err}"))?;
        let time_ms = entry["time_ms"].as_i64().unwrap_or_default();
        if entry["path"] == path && (from_ms..=to_ms).contains(&time_ms) {
            calls += 1;
        }
    }
    Ok(calls)
}

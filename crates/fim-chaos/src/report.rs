//! The run's report and verdict: faults injected, ids served, per sink the
//! ids received, lost and duplicated, API calls against the budget, and
//! memory.

use crate::Options;
use crate::run::{ApiCall, Outcome, SinkResult};

/// Time after a storm ends, in milliseconds, during which blocked calls
/// still count as caused by it. The forwarder honours the storm's wait (at
/// most the storm's 5 s window) and may send its next call just after it.
const STORM_GRACE_MS: i64 = 6_000;

/// Prints the report; returns whether the run passed.
pub fn print(options: &Options, outcome: &Outcome) -> bool {
    let mut failures = Vec::new();

    println!();
    println!("== fim-chaos report");
    println!(
        "seed                {} (replay: scripts/chaos.sh --seed {}{})",
        outcome.seed,
        outcome.seed,
        if options.quick {
            " --quick".to_owned()
        } else {
            format!(" --duration {}", options.duration)
        }
    );
    println!("work dir            {}", outcome.work_dir.display());
    println!("fault phase         {:.1} s", outcome.phase_s);
    match outcome.drained_s {
        Some(at) => println!(
            "drained             every sink complete {:.1} s after the phase ended",
            at - outcome.phase_s
        ),
        None => println!("drained             no: the drain limit passed first"),
    }

    print_faults(outcome);
    print_sinks(outcome, &mut failures);
    print_budget(options, outcome, &mut failures);
    print_memory(options, outcome, &mut failures);

    println!();
    if outcome.unexpected_exits.is_empty() {
        println!("forwarder exits     none besides the injected SIGKILLs");
    }
    for exit in &outcome.unexpected_exits {
        println!("forwarder exit      {exit}");
        failures.push(exit.clone());
    }
    match outcome.shutdown_code {
        Some(0) => println!("final SIGTERM       exit code 0"),
        Some(code) => {
            println!("final SIGTERM       exit code {code}");
            failures.push(format!("the forwarder exited with code {code} on SIGTERM"));
        }
        None => {
            println!("final SIGTERM       no exit in time; killed");
            failures.push("the forwarder did not exit on SIGTERM in time".to_owned());
        }
    }

    println!();
    if failures.is_empty() {
        println!("PASSED");
        true
    } else {
        println!("FAILED (seed {}):", outcome.seed);
        for failure in &failures {
            println!("  - {failure}");
        }
        false
    }
}

fn print_faults(outcome: &Outcome) {
    println!();
    println!(
        "faults injected     {} of {} planned",
        outcome.faults.len(),
        outcome.planned
    );
    println!("  start s   end s  fault                       peak VmRSS  note");
    for fault in &outcome.faults {
        println!(
            "  {:>7.1} {:>7.1}  {:<26}  {:>6.1} MiB  {}",
            fault.start_s,
            fault.end_s,
            fault.kind.name(),
            fault.peak_kib as f64 / 1024.0,
            fault.note
        );
    }
}

fn print_sinks(outcome: &Outcome, failures: &mut Vec<String>) {
    println!();
    println!(
        "ids served          {} (events and ignored events)",
        outcome.served.len()
    );
    println!(
        "  sink            received      lost  duplicated  unexpected  dead-lettered  idempotent"
    );
    for sink in &outcome.sinks {
        let tally = Tally::of(outcome, sink);
        println!(
            "  {:<14} {:>9} {:>9} {:>11} {:>11} {:>14}  {}",
            sink.name,
            tally.received,
            tally.lost.len(),
            tally.duplicated,
            tally.unexpected,
            sink.dead_lettered,
            if sink.idempotent { "yes" } else { "no" }
        );
        if sink.rejected_resends > 0 {
            println!(
                "  {:<14} {} resends rejected as already stored (409 on create)",
                "", sink.rejected_resends
            );
        }
        if !tally.lost.is_empty() {
            let mut sample: Vec<&String> = tally.lost.iter().take(10).collect();
            sample.sort();
            failures.push(format!(
                "{}: {} records lost, such as {sample:?}",
                sink.name,
                tally.lost.len()
            ));
        }
        if sink.idempotent && tally.duplicated > 0 {
            failures.push(format!(
                "{}: {} duplicates reached an idempotent sink",
                sink.name, tally.duplicated
            ));
        }
        if !sink.unreadable.is_empty() {
            failures.push(format!(
                "{}: {} lines without a readable record, first: {:?}",
                sink.name,
                sink.unreadable.len(),
                sink.unreadable[0]
            ));
        }
    }
}

/// Per-sink counts against the served ids.
struct Tally {
    received: usize,
    lost: Vec<String>,
    duplicated: u64,
    unexpected: usize,
}

impl Tally {
    fn of(outcome: &Outcome, sink: &SinkResult) -> Self {
        let lost = outcome
            .served
            .iter()
            .filter(|id| !sink.counts.contains_key(*id))
            .cloned()
            .collect();
        let duplicated = sink
            .counts
            .values()
            .map(|count| u64::from(count.saturating_sub(1)))
            .sum();
        let unexpected = sink
            .counts
            .keys()
            .filter(|id| !outcome.served.contains(*id))
            .count();
        Self {
            received: sink.counts.len(),
            lost,
            duplicated,
            unexpected,
        }
    }
}

fn print_budget(options: &Options, outcome: &Outcome, failures: &mut Vec<String>) {
    let window_ms = i64::try_from(options.budget_window).unwrap_or(i64::MAX / 1000) * 1000;
    let mut times: Vec<i64> = outcome.calls.iter().map(|call| call.at_ms).collect();
    times.sort_unstable();
    let (busiest, busiest_end_ms) = busiest_window(&times, window_ms);

    let storms: Vec<(i64, i64)> = outcome
        .faults
        .iter()
        .filter(|fault| fault.kind.is_storm())
        .map(|fault| {
            (
                (fault.start_s * 1000.0) as i64,
                (fault.end_s * 1000.0) as i64 + STORM_GRACE_MS,
            )
        })
        .collect();
    let in_storm = |call: &ApiCall| {
        storms
            .iter()
            .any(|(start, end)| (*start..=*end).contains(&call.at_ms))
    };
    let blocked_in_storms = outcome
        .calls
        .iter()
        .filter(|call| call.blocked && in_storm(call))
        .count();
    let blocked_outside: Vec<&ApiCall> = outcome
        .calls
        .iter()
        .filter(|call| call.blocked && !in_storm(call))
        .collect();
    let count_fault = |name: &str| {
        outcome
            .calls
            .iter()
            .filter(|call| call.fault.as_deref() == Some(name))
            .count()
    };
    let unauthorized = outcome
        .calls
        .iter()
        .filter(|call| call.status == 401)
        .count();

    println!();
    println!(
        "API calls           {} in total; budget {} per {} s",
        outcome.calls.len(),
        options.budget_calls,
        options.budget_window
    );
    let in_busiest =
        |call: &&ApiCall| call.at_ms > busiest_end_ms - window_ms && call.at_ms <= busiest_end_ms;
    let busiest_unauthorized = outcome
        .calls
        .iter()
        .filter(in_busiest)
        .filter(|call| call.status == 401)
        .count();
    println!(
        "  busiest window    {busiest} calls ({busiest_unauthorized} answered 401), ending {:.1} s \
         into the phase",
        busiest_end_ms as f64 / 1000.0
    );
    println!("  blocked, storms   {blocked_in_storms} (409/429 during injected storms)");
    println!(
        "  blocked, other    {} (409/429 caused by the limits outside storms)",
        blocked_outside.len()
    );
    println!(
        "  injected          {} 5xx, {} cut-off bodies, {} resets; {} answered 401",
        count_fault("error"),
        count_fault("truncated"),
        count_fault("reset"),
        unauthorized
    );
    if busiest > options.budget_calls as usize {
        failures.push(format!(
            "{busiest} API calls in {} s, over the budget of {}; every call is in {}",
            options.budget_window,
            options.budget_calls,
            outcome.work_dir.join("sim-requests.ndjson").display()
        ));
    }
    if !blocked_outside.is_empty() {
        let first: Vec<String> = blocked_outside
            .iter()
            .take(5)
            .map(|call| format!("{} at {:.1} s", call.status, call.at_ms as f64 / 1000.0))
            .collect();
        failures.push(format!(
            "{} calls blocked by the API limits outside injected storms, first: {}",
            blocked_outside.len(),
            first.join(", ")
        ));
    }
}

/// Returns the maximum number of calls in any window `(t - window, t]` and its end `t`.
fn busiest_window(sorted_ms: &[i64], window_ms: i64) -> (usize, i64) {
    let mut best = (0, 0);
    let mut first = 0;
    for (index, &time) in sorted_ms.iter().enumerate() {
        while sorted_ms[first] + window_ms <= time {
            first += 1;
        }
        let count = index + 1 - first;
        if count > best.0 {
            best = (count, time);
        }
    }
    best
}

fn print_memory(options: &Options, outcome: &Outcome, failures: &mut Vec<String>) {
    let peak = outcome
        .memory
        .iter()
        .map(|(_, kib)| *kib)
        .max()
        .unwrap_or(0);
    let peak_at = outcome
        .memory
        .iter()
        .find(|(_, kib)| *kib == peak)
        .map_or(0.0, |(at, _)| *at);
    let bound_kib = options.memory_bound_mib * 1024;
    println!();
    println!(
        "memory              peak VmRSS {:.1} MiB at {peak_at:.1} s ({} samples, one a second); bound {} MiB",
        peak as f64 / 1024.0,
        outcome.memory.len(),
        options.memory_bound_mib
    );
    if outcome.memory.is_empty() {
        failures.push("no memory sample of the forwarder was taken".to_owned());
    }
    if peak > bound_kib {
        failures.push(format!(
            "peak VmRSS {:.1} MiB over the bound of {} MiB",
            peak as f64 / 1024.0,
            options.memory_bound_mib
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::busiest_window;

    #[test]
    fn busiest_window_counts_half_open_window() {
        // With a 1000 ms window, 0 leaves the window at 1000.
        assert_eq!(busiest_window(&[0, 500, 999, 1000], 1000), (3, 999));
    }

    #[test]
    fn busiest_window_of_no_calls_is_zero() {
        assert_eq!(busiest_window(&[], 1000), (0, 0));
    }
}

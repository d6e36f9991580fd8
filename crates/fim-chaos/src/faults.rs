//! The faults a run injects and their seeded schedule.
//!
//! Faults come in rounds: each round is every kind once, in an order drawn
//! from the seed, with a drawn pause before each fault and a drawn length.
//! Faults never overlap, so the memory and effects of each outage are
//! measured separately. The same seed and duration give the same schedule.

use std::time::Duration;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// SIGKILL of the forwarder; it is started again when the fault ends.
    ForwarderKill,
    /// nats-server stopped, then started on the same port and store.
    NatsRestart,
    /// tansu stopped, then started on the same port (see `kafka.rs`).
    KafkaRestart,
    /// syslog-ng stopped, then started on the same port.
    SyslogRestart,
    /// The simulator's rate limit cut to 1 call per 5 s, and blocked calls
    /// rejected with 409 and `X-RateLimit-ToWait-Sec`.
    ConflictStorm,
    /// As `ConflictStorm`, rejected with 429 and `Retry-After`.
    TooManyRequestsStorm,
    /// 20% of API calls fail with 500, 502 or 503.
    ServerErrors,
    /// 20% of API calls return 200 with the JSON body cut in half.
    TruncatedBodies,
    /// 20% of API calls end in a TCP reset.
    ConnectionResets,
    /// Every token issued so far made invalid, once a second, so tokens
    /// run out between the pages of a search.
    TokenExpiry,
    /// The state directory's file system filled up, so checkpoint writes
    /// fail with ENOSPC.
    DiskFull,
}

impl FaultKind {
    pub const ALL: [FaultKind; 11] = [
        FaultKind::ForwarderKill,
        FaultKind::NatsRestart,
        FaultKind::KafkaRestart,
        FaultKind::SyslogRestart,
        FaultKind::ConflictStorm,
        FaultKind::TooManyRequestsStorm,
        FaultKind::ServerErrors,
        FaultKind::TruncatedBodies,
        FaultKind::ConnectionResets,
        FaultKind::TokenExpiry,
        FaultKind::DiskFull,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FaultKind::ForwarderKill => "forwarder SIGKILL",
            FaultKind::NatsRestart => "nats-server restart",
            FaultKind::KafkaRestart => "kafka broker restart",
            FaultKind::SyslogRestart => "syslog-ng restart",
            FaultKind::ConflictStorm => "409 storm",
            FaultKind::TooManyRequestsStorm => "429 storm (Retry-After)",
            FaultKind::ServerErrors => "20% 5xx",
            FaultKind::TruncatedBodies => "20% cut-off JSON",
            FaultKind::ConnectionResets => "20% connection resets",
            FaultKind::TokenExpiry => "expired tokens",
            FaultKind::DiskFull => "state disk full",
        }
    }

    /// Returns whether the fault is an injected storm of blocked calls, so
    /// 409 and 429 responses during it do not count against the forwarder.
    pub fn is_storm(self) -> bool {
        matches!(
            self,
            FaultKind::ConflictStorm | FaultKind::TooManyRequestsStorm
        )
    }
}

/// One fault of the schedule, in time from the start of the fault phase.
#[derive(Debug, Clone, Copy)]
pub struct PlannedFault {
    pub kind: FaultKind,
    pub at: Duration,
    pub length: Duration,
}

/// Ranges the schedule draws from, in milliseconds.
#[derive(Debug, Clone, Copy)]
pub struct Pacing {
    pub pause_ms: (u64, u64),
    pub length_ms: (u64, u64),
}

impl Pacing {
    /// Dense enough for every kind to fit once in 60 s.
    pub const QUICK: Pacing = Pacing {
        pause_ms: (500, 1_500),
        length_ms: (2_000, 3_500),
    };
    /// Longer outages, so buffers fill and backlogs build up.
    pub const FULL: Pacing = Pacing {
        pause_ms: (2_000, 10_000),
        length_ms: (3_000, 20_000),
    };
}

/// Draws the schedule of faults that end within `phase`.
pub fn schedule(seed: u64, phase: Duration, pacing: Pacing) -> Vec<PlannedFault> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut planned = Vec::new();
    let mut clock = Duration::ZERO;
    'rounds: loop {
        let mut kinds = FaultKind::ALL;
        kinds.shuffle(&mut rng);
        for kind in kinds {
            let pause =
                Duration::from_millis(rng.random_range(pacing.pause_ms.0..=pacing.pause_ms.1));
            let length =
                Duration::from_millis(rng.random_range(pacing.length_ms.0..=pacing.length_ms.1));
            let at = clock + pause;
            if at + length > phase {
                break 'rounds;
            }
            planned.push(PlannedFault { kind, at, length });
            clock = at + length;
        }
    }
    planned
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quick_schedule_has_every_kind() {
        let planned = schedule(7, Duration::from_secs(60), Pacing::QUICK);
        for kind in FaultKind::ALL {
            assert!(
                planned.iter().any(|fault| fault.kind == kind),
                "{} missing from {planned:?}",
                kind.name()
            );
        }
    }

    #[test]
    fn schedule_faults_do_not_overlap() {
        let planned = schedule(3, Duration::from_secs(600), Pacing::FULL);
        for pair in planned.windows(2) {
            assert!(pair[0].at + pair[0].length <= pair[1].at, "{pair:?}");
        }
        let last = planned.last().expect("at least one fault");
        assert!(last.at + last.length <= Duration::from_secs(600));
    }

    #[test]
    fn schedule_repeats_for_a_seed() {
        let first = schedule(11, Duration::from_secs(120), Pacing::QUICK);
        let second = schedule(11, Duration::from_secs(120), Pacing::QUICK);
        let kinds = |planned: &[PlannedFault]| {
            planned
                .iter()
                .map(|fault| (fault.kind, fault.at, fault.length))
                .collect::<Vec<_>>()
        };
        assert_eq!(kinds(&first), kinds(&second));
    }
}

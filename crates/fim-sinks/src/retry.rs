//! Waits between retries: exponential backoff with jitter, for as long as
//! the process runs.

use std::time::Duration;

use rand::Rng;

/// Exponential backoff: `initial`, doubling up to `max`, each wait drawn
/// between half and all of that ("equal jitter") so sinks that failed
/// together do not retry together.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    failures: u32,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max: max.max(initial),
            failures: 0,
        }
    }

    /// Returns the wait before the next attempt and counts a failure.
    pub fn next_wait(&mut self) -> Duration {
        let ceiling = self
            .initial
            .saturating_mul(1 << self.failures.min(20))
            .min(self.max);
        self.failures = self.failures.saturating_add(1);
        ceiling.mul_f64(rand::rng().random_range(0.5..=1.0))
    }

    /// Starts over after a success.
    pub fn reset(&mut self) {
        self.failures = 0;
    }

    pub fn failures(&self) -> u32 {
        self.failures
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new(Duration::from_millis(200), Duration::from_secs(30))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_max() {
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(4));
        let waits: Vec<Duration> = (0..5).map(|_| backoff.next_wait()).collect();
        let ceilings = [1, 2, 4, 4, 4];
        for (wait, ceiling) in waits.iter().zip(ceilings) {
            assert!(
                *wait <= Duration::from_secs(ceiling),
                "{wait:?} over {ceiling}s"
            );
            assert!(
                *wait >= Duration::from_millis(ceiling * 500),
                "{wait:?} under half of {ceiling}s"
            );
        }
    }

    #[test]
    fn reset_starts_over() {
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        backoff.next_wait();
        backoff.next_wait();
        backoff.reset();
        assert!(backoff.next_wait() <= Duration::from_secs(1));
    }
}

//! The Qualys API limits: a rolling window of N calls per W seconds and a
//! cap on calls running at once, both reported on every response.

use std::collections::VecDeque;

use crate::config::RateLimit;

/// Calls admitted in the current window and calls running now.
#[derive(Debug, Default)]
pub struct Limiter {
    /// Admission times (epoch ms) of the calls inside the rolling window,
    /// oldest first.
    admitted: VecDeque<i64>,
    running: usize,
}

/// The `X-RateLimit-*` and `X-Concurrency-Limit-*` values of one response.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LimitHeaders {
    pub rate: Option<RateHeaders>,
    pub concurrency: Option<ConcurrencyHeaders>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateHeaders {
    pub limit: u32,
    pub window_sec: u64,
    pub remaining: u32,
    pub to_wait_sec: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConcurrencyHeaders {
    pub limit: usize,
    pub running: usize,
}

impl LimitHeaders {
    /// Header names and values in the order the API sends them.
    pub fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut pairs = Vec::new();
        if let Some(rate) = &self.rate {
            pairs.push(("X-RateLimit-Limit", rate.limit.to_string()));
            pairs.push(("X-RateLimit-Window-Sec", rate.window_sec.to_string()));
            pairs.push(("X-RateLimit-Remaining", rate.remaining.to_string()));
            pairs.push(("X-RateLimit-ToWait-Sec", rate.to_wait_sec.to_string()));
        }
        if let Some(concurrency) = &self.concurrency {
            pairs.push(("X-Concurrency-Limit-Limit", concurrency.limit.to_string()));
            pairs.push((
                "X-Concurrency-Limit-Running",
                concurrency.running.to_string(),
            ));
        }
        pairs
    }
}

/// The limiter's decision on one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// The call may run; call [`Limiter::finish`] when it ends.
    Admitted(LimitHeaders),
    /// The call is rejected; the client must wait `wait_sec` seconds.
    Blocked {
        headers: LimitHeaders,
        wait_sec: u64,
    },
}

impl Limiter {
    /// Decides whether a call arriving at `now_ms` may run.
    pub fn admit(&mut self, now_ms: i64, rate: RateLimit, concurrency_limit: usize) -> Admission {
        let window_ms = i64::try_from(rate.window.as_millis()).unwrap_or(i64::MAX);
        while self
            .admitted
            .front()
            .is_some_and(|&time| time.saturating_add(window_ms) <= now_ms)
        {
            self.admitted.pop_front();
        }

        let rate_full = !rate.is_unlimited() && self.admitted.len() >= rate.calls as usize;
        let concurrency_full = concurrency_limit > 0 && self.running >= concurrency_limit;
        if rate_full || concurrency_full {
            let wait_sec = if rate_full {
                self.wait_sec(now_ms, window_ms)
            } else {
                // A running call ends soon; one second is the finest unit
                // the header can express.
                1
            };
            let mut headers = self.headers(rate, concurrency_limit, now_ms, window_ms);
            if let Some(rate_headers) = &mut headers.rate {
                rate_headers.to_wait_sec = wait_sec;
            }
            return Admission::Blocked { headers, wait_sec };
        }

        if !rate.is_unlimited() {
            self.admitted.push_back(now_ms);
        }
        self.running += 1;
        Admission::Admitted(self.headers(rate, concurrency_limit, now_ms, window_ms))
    }

    /// Calls admitted and not yet finished.
    pub fn running(&self) -> usize {
        self.running
    }

    /// Ends a call that [`Limiter::admit`] admitted.
    pub fn finish(&mut self) {
        self.running = self.running.saturating_sub(1);
    }

    fn headers(
        &self,
        rate: RateLimit,
        concurrency_limit: usize,
        now_ms: i64,
        window_ms: i64,
    ) -> LimitHeaders {
        let rate_headers = (!rate.is_unlimited()).then(|| {
            let used = u32::try_from(self.admitted.len()).unwrap_or(u32::MAX);
            let remaining = rate.calls.saturating_sub(used);
            RateHeaders {
                limit: rate.calls,
                window_sec: rate.window.as_secs(),
                remaining,
                to_wait_sec: if remaining == 0 {
                    self.wait_sec(now_ms, window_ms)
                } else {
                    0
                },
            }
        });
        let concurrency = (concurrency_limit > 0).then_some(ConcurrencyHeaders {
            limit: concurrency_limit,
            running: self.running,
        });
        LimitHeaders {
            rate: rate_headers,
            concurrency,
        }
    }

    /// Whole seconds until the oldest call leaves the window, rounded up so
    /// a client that waits exactly this long is admitted.
    fn wait_sec(&self, now_ms: i64, window_ms: i64) -> u64 {
        let Some(&oldest) = self.admitted.front() else {
            return 0;
        };
        let wait_ms = oldest
            .saturating_add(window_ms)
            .saturating_sub(now_ms)
            .max(0);
        u64::try_from(wait_ms).unwrap_or(0).div_ceil(1000).max(1)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn limit(calls: u32, seconds: u64) -> RateLimit {
        RateLimit {
            calls,
            window: Duration::from_secs(seconds),
        }
    }

    #[test]
    fn blocks_after_limit_until_oldest_leaves_window() {
        let mut limiter = Limiter::default();
        for at in [0, 100, 200] {
            assert!(matches!(
                limiter.admit(at, limit(3, 10), 0),
                Admission::Admitted(_)
            ));
            limiter.finish();
        }
        let Admission::Blocked { wait_sec, .. } = limiter.admit(1_500, limit(3, 10), 0) else {
            panic!("fourth call in the window was admitted");
        };
        // The first call leaves the window at 10 000 ms: 8.5 s from now, so 9.
        assert_eq!(wait_sec, 9);
        assert!(matches!(
            limiter.admit(10_000, limit(3, 10), 0),
            Admission::Admitted(_)
        ));
    }

    #[test]
    fn remaining_counts_down() {
        let mut limiter = Limiter::default();
        let Admission::Admitted(headers) = limiter.admit(0, limit(3, 10), 0) else {
            panic!("blocked");
        };
        assert_eq!(headers.rate.unwrap().remaining, 2);
    }

    #[test]
    fn concurrency_cap_blocks_until_finish() {
        let mut limiter = Limiter::default();
        assert!(matches!(
            limiter.admit(0, RateLimit::NONE, 1),
            Admission::Admitted(_)
        ));
        assert!(matches!(
            limiter.admit(1, RateLimit::NONE, 1),
            Admission::Blocked { .. }
        ));
        limiter.finish();
        assert!(matches!(
            limiter.admit(2, RateLimit::NONE, 1),
            Admission::Admitted(_)
        ));
    }

    #[test]
    fn unlimited_sends_no_rate_headers() {
        let mut limiter = Limiter::default();
        let Admission::Admitted(headers) = limiter.admit(0, RateLimit::NONE, 0) else {
            panic!("blocked");
        };
        assert!(headers.pairs().is_empty());
    }
}

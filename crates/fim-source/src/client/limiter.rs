//! The client-side API budget shared by every stream of one subscription:
//! a concurrency cap, a `governor` token bucket that spaces calls, and an
//! exact rolling window that keeps this client under `calls` per `per`.
//! Responses correct all three: `X-RateLimit-*` and
//! `X-Concurrency-Limit-Limit` report the server's view, and a 409 or 429
//! closes the gate for the time it names.

use std::collections::VecDeque;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use rand::Rng;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::config::RateLimitConfig;

/// Rate-limit headers of one response.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LimitReport {
    pub limit: Option<u32>,
    pub window_sec: Option<u64>,
    pub remaining: Option<u32>,
    pub to_wait_sec: Option<u64>,
    pub concurrency_limit: Option<usize>,
}

impl LimitReport {
    pub fn from_headers(headers: &reqwest::header::HeaderMap) -> Self {
        fn number<T: std::str::FromStr>(
            headers: &reqwest::header::HeaderMap,
            name: &str,
        ) -> Option<T> {
            headers.get(name)?.to_str().ok()?.trim().parse().ok()
        }
        Self {
            limit: number(headers, "x-ratelimit-limit"),
            window_sec: number(headers, "x-ratelimit-window-sec"),
            remaining: number(headers, "x-ratelimit-remaining"),
            to_wait_sec: number(headers, "x-ratelimit-towait-sec"),
            concurrency_limit: number(headers, "x-concurrency-limit-limit"),
        }
    }
}

/// The shared budget.
#[derive(Debug)]
pub struct ApiLimiter {
    /// Caps calls in flight; permits are added or forgotten when the API
    /// reports a different cap.
    concurrency: Arc<Semaphore>,
    state: Mutex<WindowState>,
    max_wait: Duration,
}

#[derive(Debug)]
struct WindowState {
    calls: u32,
    per: Duration,
    burst: u32,
    /// Spaces calls evenly; rebuilt when the window settings change.
    bucket: Arc<DefaultDirectRateLimiter>,
    /// Start times of the calls inside the rolling window, oldest first.
    /// Padded with the current time when the server reports more calls used
    /// than this client made (another client on the same subscription).
    sent: VecDeque<Instant>,
    /// No call starts before this instant (set by 409/429 and by a
    /// response reporting no calls left).
    closed_until: Option<Instant>,
    concurrency_limit: usize,
}

/// A running call's place under the concurrency cap; dropping it frees it.
#[derive(Debug)]
pub struct CallPermit {
    _permit: OwnedSemaphorePermit,
}

impl ApiLimiter {
    pub fn new(config: &RateLimitConfig) -> Self {
        Self {
            concurrency: Arc::new(Semaphore::new(config.concurrency)),
            state: Mutex::new(WindowState {
                calls: config.calls,
                per: config.per,
                burst: config.burst,
                bucket: Arc::new(bucket(config.calls, config.per, config.burst)),
                sent: VecDeque::new(),
                closed_until: None,
                concurrency_limit: config.concurrency,
            }),
            max_wait: config.max_wait,
        }
    }

    /// Waits until a call may start: a concurrency slot, a bucket token, a
    /// place in the rolling window and an open gate. Returns the permit to
    /// hold while the call runs and the time spent waiting.
    pub async fn acquire(&self) -> (CallPermit, Duration) {
        let started = Instant::now();
        let permit = loop {
            // The semaphore is never closed, so acquiring fails only if it
            // were; wait and try again rather than panic.
            match self.concurrency.clone().acquire_owned().await {
                Ok(permit) => break permit,
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        };

        let clock = DefaultClock::default();
        loop {
            // Checked rather than awaited with `until_ready`, so every wait is
            // a tokio sleep that shutdown can cancel.
            let bucket = self.lock().bucket.clone();
            if let Err(not_until) = bucket.check() {
                tokio::time::sleep(not_until.wait_time_from(clock.now())).await;
                continue;
            }

            let wait = {
                let mut state = self.lock();
                let now = Instant::now();
                state.expire(now);
                if let Some(until) = state.closed_until.filter(|until| *until > now) {
                    Some(until - now)
                } else if state.sent.len() >= state.calls as usize {
                    state
                        .sent
                        .front()
                        .map(|oldest| (*oldest + state.per).saturating_duration_since(now))
                } else {
                    state.sent.push_back(now);
                    None
                }
            };
            match wait {
                None => break,
                Some(wait) => tokio::time::sleep(wait.max(Duration::from_millis(1))).await,
            }
        }
        (CallPermit { _permit: permit }, started.elapsed())
    }

    /// Applies what a response reported about the server's limits.
    pub fn observe(&self, report: &LimitReport) {
        let mut state = self.lock();
        let now = Instant::now();

        if let (Some(limit), Some(window_sec)) = (report.limit, report.window_sec)
            && limit > 0
            && window_sec > 0
        {
            let per = Duration::from_secs(window_sec);
            if limit != state.calls || per != state.per {
                tracing::info!(
                    configured_calls = state.calls,
                    configured_window_sec = state.per.as_secs(),
                    server_calls = limit,
                    server_window_sec = window_sec,
                    "adopting the rate limit the API reports"
                );
                state.calls = limit;
                state.per = per;
                state.bucket = Arc::new(bucket(limit, per, state.burst));
            }
        }

        if let (Some(limit), Some(remaining)) = (report.limit, report.remaining) {
            state.expire(now);
            // Calls the server counts that this client did not make (another
            // client of the subscription) take places in the window. When
            // they leave it is unknown: the server's wait when it gives one,
            // else half a window from now.
            // NOTE: half a window is an estimate; a wrong one costs a 409,
            // which the retry rules absorb.
            let used_on_server = limit.saturating_sub(remaining) as usize;
            let leaves_in = match report.to_wait_sec.filter(|seconds| *seconds > 0) {
                Some(seconds) => Duration::from_secs(seconds),
                None => state.per / 2,
            };
            let sent_at = (now + leaves_in).checked_sub(state.per).unwrap_or(now);
            while state.sent.len() < used_on_server {
                // Kept in time order: padding goes before later real calls.
                let at = state.sent.partition_point(|sent| *sent <= sent_at);
                state.sent.insert(at, sent_at);
            }
            if remaining == 0 {
                let wait = Duration::from_secs(report.to_wait_sec.unwrap_or(0).max(1));
                state.close_for(now, wait.min(self.max_wait));
            }
        }

        if let Some(limit) = report.concurrency_limit.filter(|limit| *limit > 0)
            && limit != state.concurrency_limit
        {
            tracing::info!(
                previous = state.concurrency_limit,
                server = limit,
                "adopting the concurrency limit the API reports"
            );
            if limit > state.concurrency_limit {
                self.concurrency
                    .add_permits(limit - state.concurrency_limit);
            } else {
                self.concurrency
                    .forget_permits(state.concurrency_limit - limit);
            }
            state.concurrency_limit = limit;
        }
    }

    /// Closes the gate after a 409 or 429 for `wait` (capped at `max_wait`)
    /// plus a little jitter, so streams given the same wait do not
    /// all call at once. Returns the wait applied.
    pub fn blocked(&self, wait: Duration) -> Duration {
        let capped = wait.min(self.max_wait);
        let jitter_ms = rand::rng().random_range(0..=capped.as_millis().min(1000) as u64 / 10 + 50);
        let total = capped + Duration::from_millis(jitter_ms);
        self.lock().close_for(Instant::now(), total);
        total
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, WindowState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl WindowState {
    fn expire(&mut self, now: Instant) {
        while self
            .sent
            .front()
            .is_some_and(|sent| *sent + self.per <= now)
        {
            self.sent.pop_front();
        }
    }

    fn close_for(&mut self, now: Instant, wait: Duration) {
        let until = now + wait;
        if self.closed_until.is_none_or(|current| current < until) {
            self.closed_until = Some(until);
        }
    }
}

/// Builds a bucket refilled at `calls` per `per`, holding up to `burst` calls.
fn bucket(calls: u32, per: Duration, burst: u32) -> DefaultDirectRateLimiter {
    let calls = calls.max(1);
    let period = (per / calls).max(Duration::from_nanos(1));
    let burst = NonZeroU32::new(burst.clamp(1, calls)).unwrap_or(NonZeroU32::MIN);
    let quota = Quota::with_period(period)
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
        .allow_burst(burst);
    RateLimiter::direct(quota)
}

#[cfg(test)]
mod tests {
    // The bucket runs on the real clock, so these tests use short real
    // windows instead of paused tokio time.
    use super::*;

    fn config(calls: u32, per: Duration, burst: u32, concurrency: usize) -> RateLimitConfig {
        RateLimitConfig {
            calls,
            per,
            burst,
            concurrency,
            max_wait: Duration::from_secs(3600),
        }
    }

    #[tokio::test]
    async fn window_holds_calls_until_oldest_leaves() {
        let limiter = ApiLimiter::new(&config(3, Duration::from_secs(1), 3, 10));
        for _ in 0..3 {
            let (_permit, waited) = limiter.acquire().await;
            assert!(waited < Duration::from_millis(100), "waited {waited:?}");
        }
        let (_permit, waited) = limiter.acquire().await;
        assert!(waited >= Duration::from_millis(900), "waited {waited:?}");
    }

    #[tokio::test]
    async fn zero_remaining_closes_the_gate() {
        let limiter = ApiLimiter::new(&config(300, Duration::from_secs(3600), 10, 2));
        limiter.observe(&LimitReport {
            limit: Some(300),
            window_sec: Some(3600),
            remaining: Some(0),
            to_wait_sec: Some(1),
            concurrency_limit: None,
        });
        let (_permit, waited) = limiter.acquire().await;
        assert!(waited >= Duration::from_secs(1), "waited {waited:?}");
    }

    #[tokio::test]
    async fn blocked_waits_at_least_the_time_given() {
        let limiter = ApiLimiter::new(&config(300, Duration::from_secs(3600), 10, 2));
        let applied = limiter.blocked(Duration::from_secs(1));
        assert!(applied >= Duration::from_secs(1));
        let (_permit, waited) = limiter.acquire().await;
        assert!(waited >= Duration::from_secs(1), "waited {waited:?}");
    }

    #[test]
    fn blocked_wait_is_capped() {
        let mut settings = config(300, Duration::from_secs(3600), 10, 2);
        settings.max_wait = Duration::from_secs(5);
        let limiter = ApiLimiter::new(&settings);
        let applied = limiter.blocked(Duration::from_secs(600));
        assert!(applied < Duration::from_secs(6), "applied {applied:?}");
    }

    #[tokio::test]
    async fn server_usage_pads_the_window() {
        let limiter = ApiLimiter::new(&config(5, Duration::from_secs(1), 5, 10));
        limiter.observe(&LimitReport {
            limit: Some(5),
            window_sec: Some(1),
            remaining: Some(1),
            to_wait_sec: Some(0),
            concurrency_limit: None,
        });
        let (_first, waited) = limiter.acquire().await;
        assert!(waited < Duration::from_millis(100), "waited {waited:?}");
        // The other client's calls are taken to leave half a window later.
        let (_second, waited) = limiter.acquire().await;
        assert!(waited >= Duration::from_millis(450), "waited {waited:?}");
    }

    #[tokio::test]
    async fn concurrency_follows_the_server() {
        let limiter = ApiLimiter::new(&config(300, Duration::from_secs(3600), 300, 1));
        limiter.observe(&LimitReport {
            concurrency_limit: Some(3),
            ..LimitReport::default()
        });
        let (_a, _) = limiter.acquire().await;
        let (_b, _) = limiter.acquire().await;
        let (_c, _) = limiter.acquire().await;
        assert_eq!(limiter.concurrency.available_permits(), 0);
    }
}

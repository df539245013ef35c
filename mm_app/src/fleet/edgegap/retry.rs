//! Retry with exponential backoff and full jitter, and a client-side rate limiter that stays below
//! Edgegap's published limits (deployments 40/s, status 20/s, list 10/s).

use std::time::{Duration, Instant};

/// Backoff between attempts.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// First delay.
    pub base: Duration,
    /// Largest delay.
    pub max: Duration,
    /// Attempts in total (the first included).
    pub attempts: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            base: Duration::from_millis(200),
            max: Duration::from_secs(10),
            attempts: 6,
        }
    }
}

impl Backoff {
    /// The delay before attempt `attempt` (1 = the first retry): a random point in
    /// `[0, min(max, base * 2^attempt)]`, or `retry_after` when the server asked for it.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>, random: f64) -> Duration {
        if let Some(wait) = retry_after {
            return wait.min(self.max);
        }
        let ceiling = self
            .base
            .saturating_mul(1u32 << attempt.min(16))
            .min(self.max);
        ceiling.mul_f64(random.clamp(0.0, 1.0))
    }
}

/// Deployment and session creations: Edgegap allows 40/s; Bevygap sends 30/s after a burst of 8.
pub const DEPLOY_LIMIT: (f64, f64) = (30.0, 8.0);

/// Status reads: Edgegap allows 20/s; Bevygap sends 15/s after a burst of 4.
pub const STATUS_LIMIT: (f64, f64) = (15.0, 4.0);

/// A token bucket: at most `per_second` calls per second after a burst of `burst`. A burst plus
/// one second of refill stays below the limit, so even a sliding one-second window never sees more.
#[derive(Debug)]
pub struct RateLimit {
    per_second: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
    /// How many processes share the budget (each takes its part).
    share: f64,
}

impl RateLimit {
    /// A full bucket of `burst` refilled at `per_second`.
    pub fn new(per_second: f64, burst: f64) -> Self {
        let per_second = per_second.max(0.1);
        let burst = burst.max(1.0);
        Self {
            per_second,
            burst,
            tokens: burst,
            last: Instant::now(),
            share: 1.0,
        }
    }

    /// Takes this process's part of a budget shared by `processes` (several matchmakers on one
    /// Edgegap account): the rate and burst are divided between them (a burst of at least one).
    pub fn share_among(&mut self, processes: usize) {
        self.share = processes.max(1) as f64;
        self.tokens = self.tokens.min(self.burst());
    }

    fn rate(&self) -> f64 {
        self.per_second / self.share
    }

    fn burst(&self) -> f64 {
        (self.burst / self.share).max(1.0)
    }

    /// How long to wait before the next call is allowed at `now`; takes the token.
    pub fn reserve(&mut self, now: Instant) -> Duration {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate()).min(self.burst());
        self.last = now;
        self.tokens -= 1.0;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.rate())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_capped_and_honours_retry_after() {
        let b = Backoff::default();
        assert_eq!(b.delay(1, None, 1.0), Duration::from_millis(400));
        assert_eq!(b.delay(3, None, 1.0), Duration::from_millis(1600));
        assert_eq!(b.delay(30, None, 1.0), Duration::from_secs(10));
        assert_eq!(b.delay(3, None, 0.0), Duration::ZERO);
        assert_eq!(
            b.delay(1, Some(Duration::from_secs(2)), 0.5),
            Duration::from_secs(2)
        );
    }

    #[test]
    fn the_rate_limit_spaces_calls_below_edgegaps_limits() {
        let mut limit = RateLimit::new(STATUS_LIMIT.0, STATUS_LIMIT.1);
        let now = Instant::now();
        let waits: Vec<Duration> = (0..20).map(|_| limit.reserve(now)).collect();
        assert!(
            waits[..4].iter().all(|w| w.is_zero()),
            "a burst of 4 passes"
        );
        assert!(waits[4] > Duration::ZERO, "the 5th waits");
        // The 20th call is due 16/15 s after the first: never 20 calls within one second.
        assert!(waits[19] > Duration::from_secs(1), "{:?}", waits[19]);
    }

    #[test]
    fn processes_sharing_a_budget_each_take_their_part() {
        // Three matchmakers on one account: together still below Edgegap's 40 deploys/s.
        let mut limit = RateLimit::new(DEPLOY_LIMIT.0, DEPLOY_LIMIT.1);
        limit.share_among(3);
        let now = Instant::now();
        let waits: Vec<Duration> = (0..13).map(|_| limit.reserve(now)).collect();
        assert!(waits[..2].iter().all(|w| w.is_zero()), "a burst of 8/3");
        assert!(waits[2] > Duration::ZERO);
        // 10 calls/s each: the 13th is due 11/10 s later, so 3 × 12 calls never fit in a second.
        assert!(waits[12] > Duration::from_secs(1), "{:?}", waits[12]);
    }
}

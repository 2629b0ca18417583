//! In-memory rate limits (per instance: with n instances a user gets n times the budget, which
//! the README says).
//!
//! Each limiter is a GCRA ("generic cell rate algorithm"): per key one instant, the theoretical
//! arrival time. It allows `count` events in a burst and then one per `per / count`, the same
//! long-run rate as "count per period" without the double burst of fixed windows.
//!
//! It stays hand-written rather than `governor`'s keyed GCRA because natter's limits refund:
//! every room-code guess spends a unit up front and a right one gets it back, so guesses sent
//! in parallel cannot all pass a check made before any of them failed; and a post refused
//! because its author is not a member spends nothing. `governor` (0.10) can only spend cells,
//! never give one back (its issue #186 asks for that).

use std::{
    collections::HashMap,
    hash::Hash,
    sync::Arc,
    time::{Duration, Instant},
};

use parking_lot::Mutex;

use crate::config::RateLimit;

/// One budget, e.g. "20 posts per 10 s per user".
#[derive(Debug)]
pub struct Limiter<K> {
    /// Time one event costs.
    interval: Duration,
    /// How far ahead of now the arrival time may run: the burst allowance.
    tolerance: Duration,
    /// A blocking mutex: held only for a map lookup, never across an `.await`.
    state: Mutex<HashMap<K, Instant>>,
}

impl<K: Eq + Hash + Clone> Limiter<K> {
    /// A limiter allowing `rate` per key.
    pub fn new(rate: RateLimit) -> Self {
        let interval = rate.per / rate.count;
        Self {
            interval,
            tolerance: rate.per.saturating_sub(interval),
            state: Mutex::new(HashMap::new()),
        }
    }

    /// Spends one unit of `key`'s budget, or says how long until one is free.
    pub fn check(&self, key: &K) -> Result<(), Duration> {
        self.check_at(key, Instant::now())
    }

    fn check_at(&self, key: &K, now: Instant) -> Result<(), Duration> {
        let mut state = self.state.lock();
        let tat = state.get(key).copied().filter(|t| *t > now).unwrap_or(now);
        let ahead = tat - now;
        if ahead > self.tolerance {
            return Err(ahead - self.tolerance);
        }
        if state.len() > 100_000 {
            // Keep memory bounded under a flood of distinct keys: forget whoever is idle.
            state.retain(|_, t| *t > now);
        }
        // Config caps periods at a week, so this cannot overflow; checked anyway, because a
        // limiter must never turn a request into a panic.
        let next = tat.checked_add(self.interval).unwrap_or(tat);
        state.insert(key.clone(), next);
        Ok(())
    }

    /// Gives back one unit `check` spent (for "failed joins": every attempt spends one up
    /// front, so parallel attempts cannot all pass, and a success gets it back).
    pub fn refund(&self, key: &K) {
        let mut state = self.state.lock();
        if let Some(tat) = state.get_mut(key) {
            *tat = tat.checked_sub(self.interval).unwrap_or(*tat);
        }
    }

    /// Forgets keys whose budget is full again.
    pub fn sweep(&self) {
        let now = Instant::now();
        let mut state = self.state.lock();
        state.retain(|_, t| *t > now);
    }
}

/// Open live connections per key on this instance (sockets and streams per person, streams
/// per session), at most `cap` each: one person's tabs or scripts cannot hold the instance's
/// file descriptors.
#[derive(Debug)]
pub struct SocketCap<K = i64> {
    cap: u32,
    open: Arc<Mutex<HashMap<K, u32>>>,
}

/// One open connection, counted against its key until dropped.
#[derive(Debug)]
pub struct SocketSlot<K: Hash + Eq = i64> {
    open: Arc<Mutex<HashMap<K, u32>>>,
    key: K,
}

impl<K: Hash + Eq + Clone> SocketCap<K> {
    /// At most `cap` connections per key.
    pub fn new(cap: u32) -> Self {
        Self {
            cap,
            open: Arc::default(),
        }
    }

    /// A slot for one more of `key`'s connections, unless it has `cap` open already.
    pub fn take(&self, key: &K) -> Option<SocketSlot<K>> {
        let mut open = self.open.lock();
        let count = open.entry(key.clone()).or_insert(0);
        if *count >= self.cap {
            return None;
        }
        *count += 1;
        Some(SocketSlot {
            open: self.open.clone(),
            key: key.clone(),
        })
    }

    /// Whether `key` has all its connections open.
    pub fn is_full(&self, key: &K) -> bool {
        self.open.lock().get(key).is_some_and(|n| *n >= self.cap)
    }
}

impl<K: Hash + Eq> Drop for SocketSlot<K> {
    fn drop(&mut self) {
        let mut open = self.open.lock();
        if let Some(count) = open.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.key);
            }
        }
    }
}

/// A wait in words for people, rounded up: "1 second", "40 seconds", "3 minutes", "2 hours".
pub fn wait_in_words(wait: Duration) -> String {
    let secs = retry_after_secs(wait);
    let (n, unit) = match secs {
        0..=90 => (secs, "second"),
        91..=5400 => (secs.div_ceil(60), "minute"),
        _ => (secs.div_ceil(3600), "hour"),
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

/// Seconds for a `Retry-After` header: rounded up, at least 1.
pub fn retry_after_secs(wait: Duration) -> u64 {
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0).max(u64::from(wait.is_zero()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_the_burst_then_refuses_until_time_passes() {
        let limiter = Limiter::new(RateLimit::new(3, Duration::from_secs(3)));
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(limiter.check_at(&1, t0).is_ok());
        }
        let wait = limiter.check_at(&1, t0).unwrap_err();
        assert_eq!(wait, Duration::from_secs(1));
        // Another key has its own budget.
        assert!(limiter.check_at(&2, t0).is_ok());
        // One interval later one more is allowed.
        assert!(limiter.check_at(&1, t0 + Duration::from_secs(1)).is_ok());
        assert!(limiter.check_at(&1, t0 + Duration::from_secs(1)).is_err());
    }

    #[test]
    fn a_refund_gives_back_what_check_spent() {
        let limiter = Limiter::new(RateLimit::new(2, Duration::from_secs(60)));
        for _ in 0..10 {
            assert!(limiter.check(&"k").is_ok());
            limiter.refund(&"k");
        }
        assert!(limiter.check(&"k").is_ok());
        assert!(limiter.check(&"k").is_ok());
        assert!(limiter.check(&"k").is_err());
        limiter.refund(&"nobody");
    }

    #[test]
    fn a_socket_slot_is_given_back_when_dropped() {
        let cap = SocketCap::new(2);
        let (a, b) = (cap.take(&1).unwrap(), cap.take(&1).unwrap());
        assert!(cap.take(&1).is_none() && cap.is_full(&1));
        assert!(cap.take(&2).is_some(), "another person has their own cap");
        drop(a);
        assert!(!cap.is_full(&1));
        let _c = cap.take(&1).unwrap();
        drop(b);
        assert_eq!(cap.open.lock().get(&1), Some(&1));
        drop(_c);
        assert!(cap.open.lock().is_empty(), "nobody's count is kept at zero");
    }

    #[test]
    fn waits_read_in_the_unit_that_fits() {
        let words = |ms| wait_in_words(Duration::from_millis(ms));
        assert_eq!(words(1), "1 second");
        assert_eq!(words(40_000), "40 seconds");
        assert_eq!(words(90_000), "90 seconds");
        assert_eq!(words(91_000), "2 minutes");
        assert_eq!(words(3_596_000), "60 minutes");
        assert_eq!(words(5_401_000), "2 hours");
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1500)), 2);
        assert_eq!(retry_after_secs(Duration::from_secs(2)), 2);
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
    }
}

//! Each sender's rate: evenly spaced sends, never more than the rate in any second.
//!
//! Two rules, both in memory (`sender_leases` makes one process the only one sending for a
//! sender):
//! - Spacing: a `governor` limiter (GCRA) at the sender's rate with a burst of two. The
//!   second cell absorbs a late wake-up: with a burst of one, every wait that the timer
//!   and the scheduler overshoot is lost for good (about 5–10% of the rate at 130/s on a
//!   loaded 2-core machine, BENCHMARKS.md), while with two the next send makes it up.
//! - Ceiling: a send also waits until the send `rate` sends before it is `WINDOW` old, so
//!   no window of that length ever holds more than `rate` sends, however the sends
//!   bunched up while catching up. GCRA cannot say this for a burst above one, so it is a
//!   log of the last `rate` send times.
//!
//! `WINDOW` is a little longer than a second: a provider sees our sends with the network's
//! jitter, and 10 ms of slack keeps a second there within the rate too. So a sender
//! averages at most 99% of its rate and, with the spacing above, not much less.

use std::collections::{HashMap, VecDeque};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

/// No sliding window of this length holds more than a sender's rate of sends.
const WINDOW: Duration = Duration::from_millis(1010);
/// Sends the spacing limiter lets through back to back (see the module comment).
const BURST: NonZeroU32 = NonZeroU32::new(2).unwrap();

/// Per-sender pacing, created on first use with the account's configured rate.
#[derive(Default)]
pub(crate) struct SenderLimits {
    senders: Mutex<HashMap<String, Arc<SenderPace>>>,
}

impl SenderLimits {
    pub(crate) fn get(&self, account_id: &str, per_second: u32) -> Arc<SenderPace> {
        let mut map = self.senders.lock().unwrap_or_else(PoisonError::into_inner);
        map.entry(account_id.to_owned())
            .or_insert_with(|| Arc::new(SenderPace::new(per_second)))
            .clone()
    }
}

/// One sender's limiter and the times of its last `rate` sends.
pub(crate) struct SenderPace {
    spacing: DefaultDirectRateLimiter,
    rate: usize,
    recent: Mutex<VecDeque<Instant>>,
}

impl SenderPace {
    fn new(per_second: u32) -> Self {
        let rate = NonZeroU32::new(per_second.max(1)).unwrap_or(NonZeroU32::MIN);
        // A rate of one a second keeps a burst of one: two back to back would be its whole
        // second's worth at once.
        let burst = if rate.get() > 1 {
            BURST
        } else {
            NonZeroU32::MIN
        };
        Self {
            spacing: RateLimiter::direct(Quota::per_second(rate).allow_burst(burst)),
            rate: usize::try_from(rate.get()).unwrap_or(usize::MAX),
            recent: Mutex::new(VecDeque::with_capacity(
                usize::try_from(rate.get()).unwrap_or(0).min(4096),
            )),
        }
    }

    /// Waits until one more send keeps both rules; counts it as sent at the returned time.
    pub(crate) async fn until_ready(&self) -> Instant {
        self.spacing.until_ready().await;
        loop {
            let now = Instant::now();
            match self.take_slot(now) {
                None => return now,
                Some(wait) => tokio::time::sleep(wait).await,
            }
        }
    }

    /// Counts a send at `now` when the window allows it (`None`); otherwise how long until
    /// the oldest send in the window leaves it.
    fn take_slot(&self, now: Instant) -> Option<Duration> {
        let mut recent = self.recent.lock().unwrap_or_else(PoisonError::into_inner);
        if recent.len() >= self.rate {
            let frees_at = recent[0] + WINDOW;
            if now < frees_at {
                return Some(frees_at - now);
            }
            recent.pop_front();
        }
        recent.push_back(now);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The most sends in any half-open window `[t, t + len)` starting at a send.
    fn busiest(times: &[Instant], len: Duration) -> usize {
        (0..times.len())
            .map(|i| {
                times[i..]
                    .iter()
                    .take_while(|t| **t < times[i] + len)
                    .count()
            })
            .max()
            .unwrap_or(0)
    }

    #[test]
    fn the_window_refuses_one_send_more_than_the_rate() {
        let pace = SenderPace::new(3);
        let t0 = Instant::now();
        for ms in [0, 1, 2] {
            assert_eq!(pace.take_slot(t0 + Duration::from_millis(ms)), None);
        }
        // The fourth send waits until the first is a whole window old.
        assert_eq!(
            pace.take_slot(t0 + Duration::from_millis(500)),
            Some(WINDOW - Duration::from_millis(500))
        );
        assert_eq!(pace.take_slot(t0 + WINDOW), None);
        assert_eq!(
            pace.take_slot(t0 + WINDOW),
            Some(Duration::from_millis(1)),
            "the second send leaves the window 1 ms later"
        );
    }

    // Wall-clock, but it asserts only an upper bound that a slow machine cannot break: a
    // busy host only spreads sends out. Without the window, the burst of two puts 51 sends
    // in the first second at 50/s whenever the timer is punctual.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_sends_never_exceed_the_rate_in_any_second() {
        let pace = Arc::new(SenderLimits::default().get("acc", 50));
        let times = Arc::new(Mutex::new(Vec::new()));
        let tasks: Vec<_> = (0..4)
            .map(|_| {
                let (pace, times) = (pace.clone(), times.clone());
                tokio::spawn(async move {
                    for _ in 0..20 {
                        let at = pace.until_ready().await;
                        times.lock().unwrap().push(at);
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        let mut times = times.lock().unwrap().clone();
        times.sort_unstable();
        assert_eq!(times.len(), 80);
        assert!(busiest(&times, Duration::from_secs(1)) <= 50);
        assert!(busiest(&times, WINDOW) <= 50);
    }

    #[test]
    fn a_rate_of_one_keeps_a_burst_of_one() {
        let pace = SenderPace::new(1);
        assert!(pace.spacing.check().is_ok());
        assert!(pace.spacing.check().is_err());
        let pace = SenderPace::new(10);
        assert!(pace.spacing.check().is_ok());
        assert!(pace.spacing.check().is_ok());
        assert!(pace.spacing.check().is_err());
    }
}

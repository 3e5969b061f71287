//! Per-recipient pacing (`Capabilities::recipient_pacing`; Meta: about one message per 6 s
//! to one person, bursts up to 45).
//!
//! Checked without waiting: a worker never sleeps for a recipient. When a recipient is not
//! ready the delivery engine reschedules the outbox entry for the moment it will be, releases
//! its lease and does not count an attempt. The key is the conversation, which is exactly one
//! (sender, recipient) pair.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use switchboard_core::Pacing;

/// How often idle keys are dropped so memory stays bounded by recently active recipients.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

type Limiter = DefaultKeyedRateLimiter<String>;

pub(crate) struct RecipientPacer {
    /// One keyed limiter per distinct pacing (in practice one per channel).
    limiters: Mutex<HashMap<(Duration, u32), Arc<Limiter>>>,
    last_prune: Mutex<Instant>,
    clock: DefaultClock,
}

impl Default for RecipientPacer {
    fn default() -> Self {
        Self {
            limiters: Mutex::default(),
            last_prune: Mutex::new(Instant::now()),
            clock: DefaultClock::default(),
        }
    }
}

impl RecipientPacer {
    /// `None` when a message to `conversation_id` may go now (and counts it), otherwise how
    /// long until it may.
    pub(crate) fn check(&self, pacing: Pacing, conversation_id: &str) -> Option<Duration> {
        let limiter = {
            let mut map = self.limiters.lock().unwrap_or_else(PoisonError::into_inner);
            map.entry((pacing.interval, pacing.burst))
                .or_insert_with(|| Arc::new(RateLimiter::keyed(quota(pacing))))
                .clone()
        };
        self.prune_if_due();
        match limiter.check_key(&conversation_id.to_owned()) {
            Ok(()) => None,
            Err(not_until) => Some(not_until.wait_time_from(self.clock.now())),
        }
    }

    fn prune_if_due(&self) {
        {
            let mut last = self
                .last_prune
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if last.elapsed() < PRUNE_EVERY {
                return;
            }
            *last = Instant::now();
        }
        let limiters: Vec<_> = self
            .limiters
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect();
        for l in limiters {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.limiters
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .map(|l| l.len())
            .sum()
    }
}

fn quota(pacing: Pacing) -> Quota {
    let burst = NonZeroU32::new(pacing.burst).unwrap_or(NonZeroU32::MIN);
    Quota::with_period(pacing.interval.max(Duration::from_millis(1)))
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
        .allow_burst(burst)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_goes_then_the_recipient_waits_about_one_interval() {
        let pacer = RecipientPacer::default();
        let p = Pacing {
            interval: Duration::from_secs(6),
            burst: 3,
        };
        for _ in 0..3 {
            assert_eq!(pacer.check(p, "cnv_a"), None);
        }
        let wait = pacer.check(p, "cnv_a").expect("fourth message waits");
        assert!(
            wait > Duration::from_secs(5) && wait <= Duration::from_secs(6),
            "{wait:?}"
        );
        // Another recipient is not held up.
        assert_eq!(pacer.check(p, "cnv_b"), None);
        assert_eq!(pacer.tracked(), 2);
    }
}

//! The outbox entries this process has claimed and not finished.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use crate::store::entity::outbox;

/// Outbox entries this process has claimed and not finished.
///
/// A process claims for a sender at most what the sender's rate lets it send in half a
/// lease (`Delivery::claim_cap`), so a claimed entry is sent before its lease needs renewing.
/// And it never claims an entry it is still delivering: if a slow outcome write outlasts
/// the lease, the other round must not send the entry a second time.
#[derive(Default)]
pub(crate) struct Claimed {
    state: Mutex<ClaimedState>,
}

#[derive(Default)]
struct ClaimedState {
    per_sender: HashMap<String, usize>,
    entries: std::collections::HashSet<String>,
}

impl ClaimedState {
    fn give_back(&mut self, account_id: &str, n: usize) {
        if let Some(c) = self.per_sender.get_mut(account_id) {
            *c = c.saturating_sub(n);
            if *c == 0 {
                self.per_sender.remove(account_id);
            }
        }
    }
}

impl Claimed {
    fn state(&self) -> std::sync::MutexGuard<'_, ClaimedState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Reserves up to `cap` minus what is claimed already; returns the reservation.
    pub(crate) fn reserve(&self, account_id: &str, cap: usize) -> usize {
        let mut state = self.state();
        let n = state.per_sender.entry(account_id.to_owned()).or_default();
        let room = cap.saturating_sub(*n);
        *n += room;
        room
    }

    pub(crate) fn give_back(&self, account_id: &str, n: usize) {
        self.state().give_back(account_id, n);
    }

    pub(crate) fn in_flight(&self, message_id: &str) -> bool {
        self.state().entries.contains(message_id)
    }

    /// An entry's delivery ended: its place and its in-flight mark go.
    fn finish(&self, account_id: &str, message_id: &str) {
        let mut state = self.state();
        state.entries.remove(message_id);
        state.give_back(account_id, 1);
    }

    pub(crate) fn track(&self, entries: &[outbox::Model]) {
        let mut state = self.state();
        state
            .entries
            .extend(entries.iter().map(|e| e.message_id.clone()));
    }
}

/// Gives an entry's place in `Claimed` back when its delivery ends, however it ends.
pub(crate) struct ClaimedEntry<'a> {
    pub(crate) claimed: &'a Claimed,
    pub(crate) account_id: String,
    pub(crate) message_id: String,
}

impl Drop for ClaimedEntry<'_> {
    fn drop(&mut self) {
        self.claimed.finish(&self.account_id, &self.message_id);
    }
}

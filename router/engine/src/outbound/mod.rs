//! Outbound: `send()` accepts a message into the outbox; the delivery engine claims due
//! entries, paces them per sender and recipient, sends them through the channel's adapter
//! and records the outcome; reconciliation asks providers about outcomes that never came,
//! and about prices they fill in after the fact (`prices.rs`).

mod accept;
mod claimed;
pub mod delivery;
pub(crate) mod fallback;
mod outcomes;
mod pacing;
mod prices;
pub(crate) mod queue;
pub mod read_receipts;
pub mod reconcile;
mod request;
pub mod send;
mod send_commit;

pub use send_commit::SendCommitStats;
mod sender_leases;
mod sender_rate;

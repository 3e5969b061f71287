//! The inbound pipeline: resolve account → verify → parse → one transaction (webhook event,
//! contact, conversation, message or status) → commit → acknowledge → notify.
//!
//! Invariant: nothing is stored before the signature is verified, and a webhook is
//! acknowledged only after its transaction committed. Redeliveries hit the unique
//! (channel, event key) of `webhook_events` and change nothing, yet are acknowledged.

mod batch;
mod items;
mod job;
pub mod pipeline;
pub mod writer;

#[doc(hidden)]
pub use batch::lookup_statement;

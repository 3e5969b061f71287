//! Signed outgoing webhooks: every committed event of a tenant with a `notify_url` is POSTed
//! there as JSON, signed `X-Switchboard-Signature: sha256=<hex HMAC-SHA256 of the body>` with
//! the tenant's notify secret.
//!
//! - Durable: the notification row is written in the same transaction as the event, so an
//!   event is never committed without its notification (nor the reverse).
//! - At least once: a row is deleted only after a 2xx answer. Failures retry with
//!   exponential backoff and full jitter (capped by `DeliveryConfig::max_backoff`) for as
//!   long as the tenant keeps the URL; a crash mid-POST resends after the lease. Receivers
//!   de-duplicate with the event `id` (also in `X-Switchboard-Event-Id`).
//! - In order per conversation: a row is claimable only when no older row of its
//!   conversation is waiting, the same rule as the outbox.

pub(crate) mod notifier;
pub(crate) mod queue;
pub mod signing;

//! `switchboard-router`: the engine. [`Router`] is a thin front over its components:
//! `inbound` (resolve → verify → parse → one group-committed write), `outbound` (send,
//! delivery, rates, leases, pacing, reconciliation), `media`, `notify` (outgoing webhooks),
//! `records` (contacts, conversations, statuses, reads), `tenancy` (tenants, keys,
//! accounts, adapters) and `store` (connections, entities, the durable lease queue,
//! credential encryption). ARCHITECTURE.md maps them.
//!
//! Architecture invariant: nothing here knows a provider's wire format, serves HTTP or reads
//! configuration; adapters are reached only through `switchboard_core::ChannelAdapter`. The
//! HTTP surface is `switchboard-http`; the `switchboard` binary's wiring
//! (`switchboard-server`) is the one place that names concrete adapters.

pub mod config;
pub mod error;
pub mod events;
pub mod ids;
pub mod inbound;
pub mod media;
pub mod notify;
pub mod outbound;
pub mod records;
pub mod router;
pub mod store;
pub mod templates;
pub mod tenancy;

pub use config::DeliveryConfig;
pub use error::{Result, RouterError};
pub use events::RouterEvent;
pub use inbound::pipeline::WebhookAck;
pub use inbound::writer::BatchStats;
pub use outbound::send::{FallbackTarget, SendAccepted, SendRequest};
pub use router::{Router, RouterBuilder};
pub use store::Store;
pub use tenancy::tenants::{NewApiKey, Principal, Role};

//! `switchboard-router`: the engine. The [`Router`] (send, the inbound pipeline, the
//! delivery engine) and persistence over sea-orm.
//!
//! Architecture invariant: nothing here knows a provider's wire format, serves HTTP or reads
//! configuration; adapters are reached only through `switchboard_core::ChannelAdapter`. The
//! HTTP surface is `switchboard-http`; the `switchboard` binary's wiring
//! (`switchboard-server`) is the one place that names concrete adapters.

pub mod accounts;
pub mod contacts;
mod conversations;
pub mod crypto;
pub mod delivery;
pub mod error;
pub mod events;
pub mod ids;
pub mod inbound;
pub mod media;
pub mod notify;
mod pacing;
pub mod queries;
mod reconcile;
pub mod registry;
pub mod router;
pub mod send;
mod sender_leases;
mod sender_rate;
mod statuses;
pub mod store;
pub mod tenants;
mod wake;

pub use error::{Result, RouterError};
pub use events::RouterEvent;
pub use inbound::{BatchStats, WebhookAck};
pub use router::{DeliveryConfig, Router, RouterBuilder};
pub use send::{SendAccepted, SendRequest};
pub use store::Store;
pub use tenants::{NewApiKey, Principal, Role};

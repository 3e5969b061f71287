//! `switchboard-router`: the [`Router`] (send, the inbound pipeline, the delivery engine),
//! persistence over sea-orm, the HTTP server (axum) and the `switchboard` binary.
//!
//! Architecture invariant: nothing here knows a provider's wire format; adapters are
//! reached only through `switchboard_core::ChannelAdapter`. The binary's wiring
//! (`main.rs`) is the one place that names concrete adapters.

pub mod accounts;
pub mod config;
pub mod contacts;
mod conversations;
pub mod crypto;
pub mod delivery;
pub mod error;
pub mod events;
pub mod http;
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
pub mod telemetry;
pub mod tenants;
pub mod wiring;

pub use error::{Result, RouterError};
pub use events::RouterEvent;
pub use inbound::{BatchStats, WebhookAck};
pub use router::{DeliveryConfig, Router, RouterBuilder};
pub use send::{SendAccepted, SendRequest};
pub use store::Store;
pub use tenants::{NewApiKey, Principal, Role};

//! Who is who: tenants and their API keys, their connected provider accounts, and the
//! channel adapters this build knows.

pub mod account_state;
pub mod accounts;
pub mod registry;
pub mod sessions;
pub mod tenants;

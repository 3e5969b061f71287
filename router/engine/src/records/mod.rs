//! What Switchboard knows of its conversations: contacts, conversations, message statuses,
//! and the read side of the product API.

pub mod contacts;
pub(crate) mod conversations;
pub mod inbox;
pub mod queries;
pub(crate) mod statuses;
pub mod usage;

//! `switchboard-core`: the vocabulary every other Switchboard crate speaks.
//!
//! It holds the canonical messaging model (contacts, content, inbound events, statuses,
//! outbound messages), E.164 phone numbers, the [`ChannelAdapter`] trait that each provider
//! crate implements, and one error taxonomy ([`ChannelError`]) whose predicates tell the
//! router whether to retry, wait or give up.
//!
//! Architecture invariant: this crate does no I/O and knows nothing of axum, sea-orm, reqwest
//! or any provider's wire format. Adapters convert provider payloads into these types
//! explicitly; nothing here derives a provider's JSON.

pub mod adapter;
pub mod channel;
pub mod content;
pub mod error;
pub mod event;
#[cfg(feature = "testing")]
pub mod fake_server;
pub mod identity;
pub mod interactive;
pub mod media;
pub mod outbound;
pub mod phone;
pub mod status;
pub mod templates;
#[cfg(feature = "testing")]
pub mod testing;

pub use adapter::{
    AccountContext, AccountSetup, Capabilities, ChannelAdapter, CommonSettings, CredentialField,
    Credentials, DecodeMemo, HandshakeReply, HealthReport, HealthStatus, KeyRule, MAX_ROUTING_KEYS,
    Pacing, WebhookReply, WebhookRequest, WebhookRoutes, check_declared_credentials, spells_nul,
};
pub use channel::ChannelId;
pub use content::{
    ContactAddress, ContactCard, ContactEmail, ContactName, ContactOrg, ContactPhone, ContactUrl,
    Content, Header, InteractiveKind, InteractiveReply, Location, MediaItem, MediaKind, Reaction,
    SystemNotice, Template, TemplateButton, Unsupported,
};
pub use error::{
    ChannelError, ErrorKind, Exchange, WebhookError, error_with_sources, retry_after_header,
};
pub use event::{
    Direction, EventKind, Forwarded, InboundEvent, InboundMessage, OptChange, ParseProblem,
    ParsedWebhook, Pricing, ProviderError, ProviderNotification, Referral, StatusUpdate,
};
pub use identity::{Bsuid, ContactIdentity, IdentityError};
pub use interactive::{
    CtaUrl, FlowAction, FlowActionKind, InteractiveMessage, InteractiveType, ListRow, ListSection,
    ReplyButton,
};
pub use media::{FetchedMedia, MediaLimit};
pub use outbound::{OutboundMessage, Recipient, SendReceipt};
pub use phone::{PhoneError, PhoneNumber, PhoneParser};
pub use secrecy;
pub use status::MessageStatus;
pub use templates::{
    ProviderTemplate, SubmittedButton, SubmittedHeader, TemplateMismatch, TemplateSubmission,
    TemplateVariable,
};

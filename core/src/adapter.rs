//! The [`ChannelAdapter`] trait: everything the router needs from a provider.
//!
//! Adapters are stateless apart from an HTTP client and their configuration (API base URL,
//! public URL); per-account credentials are passed in with every call. The router drives the
//! webhook path in this order, and trusts nothing before `verify_webhook` succeeded:
//!
//! 1. [`ChannelAdapter::routing_keys`]: which accounts the (untrusted) body names;
//! 2. [`ChannelAdapter::verify_webhook`]: the signature, with that account's secret;
//! 3. [`ChannelAdapter::parse_webhook`]: canonical events;
//! 4. [`ChannelAdapter::webhook_reply`]: what the provider expects back.
//!
//! Whatever differs per channel is declared here, and the router reads it: the channel id
//! (its webhook path is `/webhooks/<id>`), [`Capabilities`] (service window included), the
//! [`CredentialField`]s accounts are connected with, and the headers kept out of logs.

use std::any::Any;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::channel::ChannelId;
use crate::content::{Content, MediaItem, MediaKind};
use crate::error::{ChannelError, ErrorKind, WebhookError};
use crate::event::{ParsedWebhook, ProviderError, StatusUpdate};
use crate::interactive::InteractiveType;
use crate::media::{DEFAULT_MEDIA_LIMIT, FetchedMedia, MediaLimit};
use crate::outbound::{OutboundMessage, SendReceipt};
use crate::phone::PhoneNumber;

/// A webhook request exactly as it arrived. Signatures are computed over these bytes, so
/// nothing here is decoded or re-encoded.
#[derive(Clone, Debug)]
pub struct WebhookRequest {
    pub method: http::Method,
    /// The raw request path, percent-encoding kept (`/webhooks/twilio-whatsapp`).
    pub path: String,
    /// The raw query string without the `?`, as received.
    pub query: Option<String>,
    pub headers: http::HeaderMap,
    pub body: Bytes,
    /// What the adapter decoded from the body or query ([`WebhookRequest::decoded`]).
    pub memo: DecodeMemo,
}

/// The value an adapter decoded from a request, kept with the request: routing, verifying
/// and parsing each read the decoded body, and decoding a Twilio form three times was about
/// 8% of the server's CPU (BENCHMARKS.md, "Session 11"). It is keyed by the method and
/// the identity (address and length) of the body and query buffers, so a request whose
/// body or query is replaced after a decode is decoded again, never answered stale.
#[derive(Clone, Default)]
pub struct DecodeMemo(OnceLock<(DecodeInputs, Arc<dyn Any + Send + Sync>)>);

impl fmt::Debug for DecodeMemo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.get().is_some() {
            "DecodeMemo(decoded)"
        } else {
            "DecodeMemo(empty)"
        })
    }
}

/// What a decode read: the method, and the body's and query's buffers.
#[derive(Clone, PartialEq, Eq)]
struct DecodeInputs {
    method: http::Method,
    body: (usize, usize),
    query: Option<(usize, usize)>,
}

/// Whether `bytes` hold U+0000 or spell it: a NUL byte, `%00` (percent-encoded, as in a
/// URL or a form) or `\u0000` (JSON). One pass: this runs on every webhook.
pub fn spells_nul(bytes: &[u8]) -> bool {
    bytes.iter().enumerate().any(|(i, &b)| match b {
        0 => true,
        b'%' => bytes.get(i + 1..i + 3) == Some(&b"00"[..]),
        b'\\' => bytes.get(i + 1..i + 6) == Some(&b"u0000"[..]),
        _ => false,
    })
}

impl WebhookRequest {
    /// `decode(self)`, computed once per request and shared by every later call with the
    /// same `T` (see [`DecodeMemo`]).
    pub fn decoded<T: Any + Send + Sync>(&self, decode: impl FnOnce(&Self) -> T) -> Arc<T> {
        let inputs = DecodeInputs {
            method: self.method.clone(),
            body: (self.body.as_ptr().addr(), self.body.len()),
            query: self.query.as_ref().map(|q| (q.as_ptr().addr(), q.len())),
        };
        if let Some((read, value)) = self.memo.0.get()
            && *read == inputs
            && let Ok(value) = Arc::clone(value).downcast::<T>()
        {
            return value;
        }
        let value = Arc::new(decode(self));
        // The first decode is kept (`set` refuses the others): another type, or replaced
        // inputs, are decoded each time.
        self.memo
            .0
            .set((inputs, Arc::clone(&value) as Arc<dyn Any + Send + Sync>))
            .ok();
        value
    }

    /// Whether anything parsed from this request may hold U+0000: the path, query or body
    /// holds a NUL byte or its form (`%00`) or JSON (`\u0000`) spelling. Usually not, so the
    /// parsed events need no cleaning ([`crate::ParsedWebhook::strip_nul_chars`]).
    pub fn may_carry_nul(&self) -> bool {
        spells_nul(self.path.as_bytes())
            || self
                .query
                .as_deref()
                .is_some_and(|q| spells_nul(q.as_bytes()))
            || spells_nul(&self.body)
    }

    /// A header's value, when present and valid UTF-8 (names are case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The raw path and query, as the client requested them.
    pub fn path_and_query(&self) -> String {
        match &self.query {
            Some(q) => format!("{}?{q}", self.path),
            None => self.path.clone(),
        }
    }
}

/// Secret account credentials (tokens, app secrets) by name. Debug never shows values; the
/// router stores them encrypted and passes them in decrypted for each call.
#[derive(Clone, Default)]
pub struct Credentials {
    fields: BTreeMap<String, SecretString>,
}

impl Credentials {
    /// Reads a flat JSON object of strings.
    ///
    /// # Errors
    /// A message naming the first field that is not a string, or if `value` is not an object.
    pub fn from_json(value: &serde_json::Value) -> Result<Self, String> {
        let obj = value
            .as_object()
            .ok_or_else(|| "credentials must be a JSON object of strings".to_owned())?;
        let mut fields = BTreeMap::new();
        for (k, v) in obj {
            let s = v
                .as_str()
                .ok_or_else(|| format!("credential {k:?} must be a string"))?;
            fields.insert(k.clone(), SecretString::from(s.to_owned()));
        }
        Ok(Self { fields })
    }

    /// Adds or replaces one credential.
    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.fields
            .insert(name.into(), SecretString::from(value.into()));
    }

    /// A credential's value.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(|s| s.expose_secret())
    }

    /// A credential that must be present and non-empty.
    ///
    /// # Errors
    /// [`ChannelError`] of kind `Invalid` naming the missing field.
    pub fn require(&self, name: &str) -> Result<&str, ChannelError> {
        self.get(name)
            .filter(|v| !v.trim().is_empty())
            .ok_or_else(|| ChannelError::invalid(format!("credential {name:?} is required")))
    }

    /// The names present, never the values.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.fields.keys().map(String::as_str)
    }

    /// The plaintext JSON, for the router to encrypt. Handle with care.
    pub fn expose_json(&self) -> serde_json::Value {
        serde_json::Value::Object(
            self.fields
                .iter()
                .map(|(k, v)| (k.clone(), serde_json::Value::from(v.expose_secret())))
                .collect(),
        )
    }

    /// Every secret value, for redacting them from text that is about to be stored or logged.
    pub fn secret_values(&self) -> impl Iterator<Item = &str> {
        self.fields.values().map(|v| v.expose_secret())
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.fields.keys().map(|k| (k, "[REDACTED]")))
            .finish()
    }
}

/// Most distinct routing keys one webhook may name. Keys are read before the signature is
/// checked, so this bounds the look-ups an unauthenticated request can cost; no provider's
/// webhook names more accounts (Meta batches at most 1000 updates in one POST, each change
/// naming one phone number).
pub const MAX_ROUTING_KEYS: usize = 1000;

/// How the router turns a webhook's routing keys into the accounts it is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyRule {
    /// Every key names an account the webhook may carry events for: each is resolved and
    /// each resolved account verified (Meta batches entries for several numbers).
    EveryKey,
    /// The webhook is for one account: the first key, in order, that names a connected
    /// account whose secret signed the webhook. Later keys are not resolved, which saves
    /// a look-up of a key that is usually nobody's (Twilio names `To` and `From`; one of
    /// them is the customer).
    FirstSigned,
}

/// Whom a webhook is for, read before its signature is checked (untrusted, bounded).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WebhookRoutes {
    /// The routing keys it names, as [`ChannelAdapter::routing_keys`] reads them.
    pub keys: Vec<String>,
    /// Whether it also carries items addressed to no routing key: notifications about the
    /// provider account as a whole (Meta's account-level fields name a business account,
    /// not a number). The router then also verifies it against every active account of
    /// the channel (each distinct secret once), hands every account that verified to
    /// [`ChannelAdapter::parse_webhook`], and the adapter attributes those items among
    /// them.
    pub channel_wide: bool,
}

/// A connected provider account, as the router hands it to an adapter.
#[derive(Clone, Debug)]
pub struct AccountContext {
    pub account_id: String,
    pub tenant_id: String,
    /// The business number.
    pub address: PhoneNumber,
    /// The key webhooks name this account by (see [`ChannelAdapter::routing_keys`]).
    pub routing_key: String,
    pub credentials: Credentials,
}

/// What an adapter makes of an operator's request to connect an account.
#[derive(Clone, Debug)]
pub struct AccountSetup {
    pub routing_key: String,
    /// The credentials to store, normalized.
    pub credentials: Credentials,
}

/// The provider's subscription handshake, answered by the adapter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HandshakeReply {
    /// Answer 200 with this plain body.
    Accept(String),
    /// Answer 403.
    Reject,
    /// This channel has no handshake.
    NotSupported,
}

/// What a provider expects back from an accepted webhook.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookReply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Bytes,
}

/// Per-recipient pacing: at most one message per `interval` on average, bursts of `burst`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pacing {
    pub interval: Duration,
    pub burst: u32,
}

/// What a channel can carry and how fast.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Capabilities {
    /// Longest text body, in characters (Unicode scalar values).
    pub max_text_chars: usize,
    /// Longest media caption, in characters.
    pub max_caption_chars: usize,
    /// Media items one provider message can carry; the router splits longer lists into
    /// several messages, in order.
    pub max_media_per_message: usize,
    pub media_kinds: &'static [MediaKind],
    pub templates: bool,
    /// Whether a template send may fill in header and button parameters (on Twilio every
    /// value of a template is a content variable).
    pub template_components: bool,
    /// The interactive message types the channel carries.
    pub interactive: &'static [InteractiveType],
    /// Whether it carries contact cards.
    pub contacts: bool,
    pub reactions: bool,
    pub locations: bool,
    pub reply_context: bool,
    /// Whether a recipient may be addressed by BSUID alone.
    pub send_to_bsuid: bool,
    /// Whether an inbound message can be marked read at the provider
    /// ([`ChannelAdapter::mark_read`]).
    pub read_receipts: bool,
    /// Whether marking read can also show the person a typing indicator.
    pub typing_indicator: bool,
    /// The provider's default per-sender throughput, messages per second.
    pub default_rate_per_second: u32,
    /// The provider's per-recipient pacing, when it has one.
    pub recipient_pacing: Option<Pacing>,
    /// How long after a contact's last message the channel accepts free-form messages to
    /// them (WhatsApp's customer-service window); after it, only templates. `None`: the
    /// channel has no such window (SMS), and free-form messages are always accepted.
    pub service_window: Option<Duration>,
}

impl Capabilities {
    /// The first part of `content` this channel cannot carry, named as the API names it
    /// (`"template"`, `"interactive list"`, `"contacts"`, `"3 media items"`…), or `None`
    /// when it carries all of it.
    pub fn unsupported_part(&self, content: &Content) -> Option<String> {
        if let Some(t) = &content.template {
            if !self.templates {
                return Some("template".into());
            }
            if !self.template_components {
                if t.header.is_some() {
                    return Some("template header".into());
                }
                if !t.buttons.is_empty() {
                    return Some("template buttons".into());
                }
            }
        }
        if let Some(i) = &content.interactive_message
            && !self.interactive.contains(&i.kind)
        {
            return Some(format!("interactive {}", i.kind.as_str()));
        }
        if !content.contacts.is_empty() && !self.contacts {
            return Some("contacts".into());
        }
        if content.location.is_some() && !self.locations {
            return Some("location".into());
        }
        if content.reaction.is_some() && !self.reactions {
            return Some("reaction".into());
        }
        if let Some(m) = content
            .media
            .iter()
            .find(|m| !self.media_kinds.contains(&m.kind))
        {
            return Some(format!("{} media", m.kind.as_str()));
        }
        if content.media.len() > self.max_media_per_message.max(1) {
            return Some(format!("{} media items", content.media.len()));
        }
        if content
            .text
            .as_ref()
            .is_some_and(|t| t.chars().count() > self.max_text_chars)
        {
            return Some("text length".into());
        }
        None
    }

    /// Whether free-form messages may be sent now, `now_ms` and `last_inbound_ms` (when the
    /// contact last wrote, if ever) in Unix milliseconds: always on a channel without a
    /// service window.
    pub fn service_window_open(&self, last_inbound_ms: Option<i64>, now_ms: i64) -> bool {
        match self.service_window {
            None => true,
            Some(window) => {
                let window_ms = i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
                last_inbound_ms.is_some_and(|t| now_ms.saturating_sub(t) < window_ms)
            }
        }
    }
}

/// One credential an account of a channel is connected with, as the channel declares it:
/// `POST /v1/accounts` refuses names a channel does not declare and required ones that are
/// missing, and the OpenAPI document lists them per channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CredentialField {
    /// The key in the account's `credentials` object.
    pub name: &'static str,
    /// Whether the value is a secret (a token or signing key) rather than an identifier.
    /// Every credential is stored encrypted and never echoed either way.
    pub secret: bool,
    /// Whether an account cannot be connected without it.
    pub required: bool,
    /// A short description for the API's documentation: what it is and where to find it.
    pub description: &'static str,
}

/// Checks a `credentials` object against a channel's declared fields: every name is
/// declared, and every required field is present and not blank. Values are left to the
/// adapter's [`ChannelAdapter::connect_account`].
///
/// # Errors
/// A message naming the unknown or missing field, and the names the channel declares.
pub fn check_declared_credentials(
    channel: &ChannelId,
    fields: &[CredentialField],
    credentials: &serde_json::Map<String, serde_json::Value>,
) -> Result<(), String> {
    let declared = || fields.iter().map(|f| f.name).collect::<Vec<_>>().join(", ");
    if let Some(unknown) = credentials
        .keys()
        .find(|name| !fields.iter().any(|f| f.name == name.as_str()))
    {
        return Err(format!(
            "credential {unknown:?} is not one of {channel}'s: {}",
            declared()
        ));
    }
    let blank = |v: &serde_json::Value| v.as_str().is_some_and(|s| s.trim().is_empty());
    if let Some(missing) = fields
        .iter()
        .filter(|f| f.required)
        .find(|f| credentials.get(f.name).is_none_or(blank))
    {
        return Err(format!(
            "credential {:?} is required for {channel} (its credentials: {})",
            missing.name,
            declared()
        ));
    }
    Ok(())
}

/// How an account looks from the provider's side.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    Up,
    Degraded,
    Down,
}

impl HealthStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Up => "up",
            Self::Degraded => "degraded",
            Self::Down => "down",
        }
    }
}

/// The result of a health check against the provider.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HealthReport {
    pub status: HealthStatus,
    pub latency: Duration,
    pub checked_at: DateTime<Utc>,
    /// The provider's reason (account status, quality rating, error), never a secret.
    pub detail: Option<String>,
    /// The sender's quality rating as the provider reported it (Meta `quality_rating`:
    /// `GREEN`, `YELLOW`, `RED`, `UNKNOWN`, `NA`), when the check read one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality: Option<String>,
    /// The sender's messaging limit tier as the provider reported it (Meta
    /// `messaging_limit_tier`, e.g. `TIER_2K`), when the check read one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messaging_limit: Option<String>,
}

impl HealthReport {
    /// The provider could not be reached (no connection, no answer in time): `down`, with
    /// the detail `unreachable: <why>`, in the same words on every channel so monitors can
    /// match one phrase.
    pub fn unreachable(latency: Duration, why: impl fmt::Display) -> Self {
        Self {
            status: HealthStatus::Down,
            latency,
            checked_at: Utc::now(),
            detail: Some(format!("unreachable: {why}")),
            quality: None,
            messaging_limit: None,
        }
    }
}

/// The server's settings an adapter may be built with besides its own (which it declares
/// as flags behind its `clap` feature): the same for every channel.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CommonSettings {
    /// The base URL providers call, without a trailing slash (`https://sb.example.com`);
    /// a channel's webhooks arrive under it at `/webhooks/<channel id>`.
    pub public_url: String,
}

impl CommonSettings {
    pub fn new(public_url: impl Into<String>) -> Self {
        Self {
            public_url: public_url.into(),
        }
    }
}

/// A messaging provider, seen from the router.
#[async_trait]
pub trait ChannelAdapter: Send + Sync + 'static {
    /// The channel this adapter serves.
    fn channel(&self) -> &ChannelId;

    /// What the channel can carry.
    fn capabilities(&self) -> &Capabilities;

    /// The credentials an account of this channel is connected with.
    fn credential_fields(&self) -> &'static [CredentialField];

    /// Request headers that carry secrets on this channel's webhooks (its signature
    /// header), in lower case: the HTTP layer keeps them out of logs, with `Authorization`
    /// and `Cookie`.
    fn sensitive_headers(&self) -> &'static [&'static str];

    /// Checks an account's address and credentials for shape (no network) and derives the key
    /// webhooks will name it by.
    ///
    /// # Errors
    /// [`ChannelError`] of kind `Invalid` saying which field is missing or malformed.
    fn connect_account(
        &self,
        address: &PhoneNumber,
        credentials: &serde_json::Value,
    ) -> Result<AccountSetup, ChannelError>;

    /// The routing keys a webhook names, in order of preference. Untrusted: the body has
    /// not been verified yet. Several keys are normal (Meta batches entries for several
    /// numbers; Twilio names both `To` and `From`). The keys are distinct, and at most
    /// [`MAX_ROUTING_KEYS`]: the work here must stay bounded whatever the body names.
    ///
    /// # Errors
    /// [`WebhookError::Malformed`] when the body is not this provider's format or names more
    /// than [`MAX_ROUTING_KEYS`] keys.
    fn routing_keys(&self, request: &WebhookRequest) -> Result<Vec<String>, WebhookError>;

    /// [`ChannelAdapter::routing_keys`], and whether the webhook also carries items for the
    /// channel's accounts as a whole ([`WebhookRoutes::channel_wide`]). The default names
    /// keys only; a channel with account-level notifications reads both in one pass.
    ///
    /// # Errors
    /// As [`ChannelAdapter::routing_keys`].
    fn webhook_routes(&self, request: &WebhookRequest) -> Result<WebhookRoutes, WebhookError> {
        Ok(WebhookRoutes {
            keys: self.routing_keys(request)?,
            channel_wide: false,
        })
    }

    /// Which of a webhook's routing keys name the accounts it is for (see [`KeyRule`]).
    fn key_rule(&self) -> KeyRule {
        KeyRule::EveryKey
    }

    /// Verifies the signature with `account`'s secret, in constant time.
    ///
    /// # Errors
    /// [`WebhookError::MissingSignature`] or [`WebhookError::BadSignature`].
    fn verify_webhook(
        &self,
        request: &WebhookRequest,
        account: &AccountContext,
    ) -> Result<(), WebhookError>;

    /// The secret an account's webhooks are signed with, when it alone decides
    /// [`ChannelAdapter::verify_webhook`]: accounts that share it (the numbers of one Meta
    /// app) verify a webhook alike, so the router checks each distinct secret once, however
    /// many of its accounts a webhook names. `None`, the default, has every account checked.
    fn webhook_secret<'a>(&self, _account: &'a AccountContext) -> Option<&'a str> {
        None
    }

    /// Parses a verified webhook into canonical events. `accounts` are the verified accounts
    /// it names; every event's routing key is one of theirs. A malformed item becomes a
    /// [`crate::ParseProblem`], not an error.
    ///
    /// # Errors
    /// [`WebhookError::Malformed`] only when nothing in the body is readable.
    fn parse_webhook(
        &self,
        request: &WebhookRequest,
        accounts: &[&AccountContext],
    ) -> Result<ParsedWebhook, WebhookError>;

    /// The answer to an accepted (or duplicate) webhook.
    fn webhook_reply(&self) -> WebhookReply;

    /// Answers a subscription handshake (Meta's GET) against the channel's active accounts.
    fn answer_handshake(
        &self,
        _request: &WebhookRequest,
        _accounts: &[AccountContext],
    ) -> HandshakeReply {
        HandshakeReply::NotSupported
    }

    /// Sends one message.
    ///
    /// # Errors
    /// [`ChannelError`]; its predicates say whether to retry, wait, or fail.
    async fn send(
        &self,
        account: &AccountContext,
        message: &OutboundMessage,
    ) -> Result<SendReceipt, ChannelError>;

    /// Checks, without a request, what the provider would refuse in `content` beyond what
    /// [`Capabilities`] declares (its own rules: Twilio's `ContentVariables`, a Flow it names
    /// only by id), so the router can refuse a message before queueing it. `content` is one
    /// message as the router splits it, its media resolved. The default accepts everything.
    ///
    /// # Errors
    /// `Invalid` (the request is wrong) or `Unsupported` (the channel cannot carry it),
    /// saying why.
    fn check_content(&self, _content: &Content) -> Result<(), ChannelError> {
        Ok(())
    }

    /// Checks the account against the provider (credentials valid, sender active, quality),
    /// with latency. Never fails: a failure is a `Down` report with the reason.
    async fn check_health(&self, account: &AccountContext) -> HealthReport;

    /// Asks the provider for a message's current status (reconciliation).
    ///
    /// # Errors
    /// [`ChannelError`]; `Unsupported` by default.
    async fn fetch_status(
        &self,
        _account: &AccountContext,
        _provider_message_id: &str,
    ) -> Result<Option<StatusUpdate>, ChannelError> {
        Err(ChannelError::unsupported(format!(
            "{} cannot fetch message statuses",
            self.channel()
        )))
    }

    /// Whether [`fetch_status`](Self::fetch_status) reports a final message's price in its
    /// `pricing` (`price`, `currency`), so the router asks for it after a final status
    /// until the provider has filled it in. `false` by default.
    fn prices_on_fetch(&self) -> bool {
        false
    }

    /// What the provider's error on a `failed` or `undelivered` status means, in the terms
    /// of [`ChannelError`]: [`ErrorKind::Unreachable`] (or `OutsideWindow`) makes the router
    /// fall back to the message's next channel. The channel's error table decides; by
    /// default every such error is `Permanent` (no fallback).
    fn status_error_kind(&self, _error: &ProviderError) -> ErrorKind {
        ErrorKind::Permanent
    }

    /// How many provider messages (SMS segments) this content is billed as, where the
    /// channel counts text that way; `None` (the default) where it does not. The message
    /// view shows it as `segments`.
    fn text_segments(&self, _content: &Content) -> Option<u32> {
        None
    }

    /// What this channel accepts for one media kind: the provider's documented size limit
    /// and, for sending, its MIME types. Inbound downloads are checked for size only.
    fn media_limit(&self, _kind: MediaKind) -> MediaLimit {
        DEFAULT_MEDIA_LIMIT
    }

    /// Downloads an inbound media item with the account's credentials, reading at most
    /// `max_bytes` (more is an error, not a truncation) and checking what the provider
    /// declared (size, checksum).
    ///
    /// # Errors
    /// [`ChannelError`]: transient ones are worth retrying; `Permanent` (gone, 404, checksum
    /// mismatch, too large) is not. `Unsupported` by default.
    async fn fetch_media(
        &self,
        _account: &AccountContext,
        _item: &MediaItem,
        _max_bytes: u64,
    ) -> Result<FetchedMedia, ChannelError> {
        Err(ChannelError::unsupported(format!(
            "{} cannot download media",
            self.channel()
        )))
    }

    /// Uploads a file to the provider's media store and returns the provider's media id,
    /// for channels that send media by id. Channels that fetch a public link instead keep
    /// the default, and the router sends them a signed URL.
    ///
    /// # Errors
    /// [`ChannelError`]; `Unsupported` by default.
    async fn upload_media(
        &self,
        _account: &AccountContext,
        _bytes: Bytes,
        _mime_type: &str,
        _filename: Option<&str>,
    ) -> Result<String, ChannelError> {
        Err(ChannelError::unsupported(format!(
            "{} cannot upload media",
            self.channel()
        )))
    }

    /// Lists the account's message templates at the provider, every page.
    /// `business_account_id` is the provider's business account when the router learned
    /// it from the account's webhooks (Meta's WABA id); a credential naming it wins.
    ///
    /// # Errors
    /// [`ChannelError`]; `Unsupported` by default.
    async fn list_templates(
        &self,
        _account: &AccountContext,
        _business_account_id: Option<&str>,
    ) -> Result<Vec<crate::ProviderTemplate>, ChannelError> {
        Err(ChannelError::unsupported(format!(
            "{} has no template catalog",
            self.channel()
        )))
    }

    /// Submits a new template for approval (Meta: created on the business account;
    /// Twilio: a Content resource and its WhatsApp approval request) and returns it as the
    /// provider answered, its status included. `submission` has passed
    /// [`crate::TemplateSubmission::check`].
    ///
    /// # Errors
    /// [`ChannelError`]; `Unsupported` by default.
    async fn submit_template(
        &self,
        _account: &AccountContext,
        _business_account_id: Option<&str>,
        _submission: &crate::TemplateSubmission,
    ) -> Result<crate::ProviderTemplate, ChannelError> {
        Err(ChannelError::unsupported(format!(
            "{} cannot submit templates",
            self.channel()
        )))
    }

    /// Marks an inbound message (and those before it) as read at the provider and, with
    /// `typing`, shows the person a typing indicator where the channel has one
    /// (`Capabilities::read_receipts`, `Capabilities::typing_indicator`).
    ///
    /// # Errors
    /// [`ChannelError`]; `Unsupported` by default.
    async fn mark_read(
        &self,
        _account: &AccountContext,
        _provider_message_id: &str,
        _typing: bool,
    ) -> Result<(), ChannelError> {
        Err(ChannelError::unsupported(format!(
            "{} cannot mark messages as read",
            self.channel()
        )))
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_request_is_decoded_once_and_again_when_its_body_or_query_changes() {
        use super::WebhookRequest;
        use std::sync::atomic::{AtomicUsize, Ordering};
        let decodes = AtomicUsize::new(0);
        let len = |req: &WebhookRequest| {
            decodes.fetch_add(1, Ordering::Relaxed);
            req.body.len() + req.query.as_ref().map_or(0, String::len)
        };
        let mut req = WebhookRequest {
            method: http::Method::POST,
            path: "/webhooks/x".into(),
            query: None,
            headers: http::HeaderMap::new(),
            body: bytes::Bytes::from(b"a=1".to_vec()),
            memo: Default::default(),
        };
        assert_eq!(*req.decoded(len), 3);
        assert_eq!(*req.decoded(len), 3);
        assert_eq!(*req.clone().decoded(len), 3, "a clone shares the decode");
        assert_eq!(decodes.load(Ordering::Relaxed), 1);
        // Another type is decoded, not mistaken for the kept one.
        assert_eq!(*req.decoded(|r| r.path.clone()), "/webhooks/x");
        // A replaced body or query is read again, never answered from the memo.
        req.body = bytes::Bytes::from(b"a=1&b=22".to_vec());
        assert_eq!(*req.decoded(len), 8);
        req.query = Some("q".into());
        assert_eq!(*req.decoded(len), 9);
        assert_eq!(decodes.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn nul_is_found_in_every_spelling_and_nowhere_else() {
        use super::spells_nul;
        for yes in [&b"a\0b"[..], b"x=%00", b"{\"t\":\"\\u0000\"}", b"%00"] {
            assert!(spells_nul(yes), "{yes:?}");
        }
        for no in [&b"plain"[..], b"%0", b"%20%30", b"\\u00", b"\\u0001", b""] {
            assert!(!spells_nul(no), "{no:?}");
        }
    }

    use super::*;

    #[test]
    fn credentials_never_debug_their_values() {
        let c = Credentials::from_json(&serde_json::json!({"auth_token": "s3cr3t"})).unwrap();
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("s3cr3t"), "{dbg}");
        assert_eq!(c.get("auth_token"), Some("s3cr3t"));
        assert!(c.require("missing").is_err());
        assert!(Credentials::from_json(&serde_json::json!({"n": 1})).is_err());
        assert!(Credentials::from_json(&serde_json::json!("x")).is_err());
    }

    const FIELDS: &[CredentialField] = &[
        CredentialField {
            name: "id",
            secret: false,
            required: true,
            description: "the account's id",
        },
        CredentialField {
            name: "token",
            secret: true,
            required: true,
            description: "the API token",
        },
        CredentialField {
            name: "region",
            secret: false,
            required: false,
            description: "where the account lives",
        },
    ];

    fn check(value: serde_json::Value) -> Result<(), String> {
        let channel = ChannelId::new_static("pigeon");
        check_declared_credentials(&channel, FIELDS, value.as_object().unwrap())
    }

    #[test]
    fn declared_credentials_refuse_unknown_names_and_missing_required_ones() {
        assert_eq!(check(serde_json::json!({"id": "1", "token": "t"})), Ok(()));
        assert_eq!(
            check(serde_json::json!({"id": "1", "token": "t", "region": "eu"})),
            Ok(())
        );
        let unknown = check(serde_json::json!({"id": "1", "token": "t", "tokn": "t"})).unwrap_err();
        assert_eq!(
            unknown,
            "credential \"tokn\" is not one of pigeon's: id, token, region"
        );
        let missing = check(serde_json::json!({"id": "1"})).unwrap_err();
        assert!(
            missing.starts_with("credential \"token\" is required for pigeon"),
            "{missing}"
        );
        // Blank is missing; a value of the wrong type is the adapter's to refuse.
        assert!(check(serde_json::json!({"id": "1", "token": "  "})).is_err());
        assert_eq!(check(serde_json::json!({"id": 1, "token": "t"})), Ok(()));
    }

    #[test]
    fn a_channel_without_a_service_window_is_always_open() {
        let mut caps = Capabilities {
            max_text_chars: 160,
            max_caption_chars: 0,
            max_media_per_message: 0,
            media_kinds: &[],
            templates: false,
            template_components: false,
            interactive: &[],
            contacts: false,
            reactions: false,
            locations: false,
            reply_context: false,
            send_to_bsuid: false,
            read_receipts: false,
            typing_indicator: false,
            default_rate_per_second: 1,
            recipient_pacing: None,
            service_window: None,
        };
        assert!(caps.service_window_open(None, 0));
        assert!(caps.service_window_open(Some(0), i64::MAX));
        caps.service_window = Some(Duration::from_secs(60));
        assert!(caps.service_window_open(Some(1_000), 60_999));
        assert!(!caps.service_window_open(Some(1_000), 61_000));
        assert!(!caps.service_window_open(None, 0));
    }
}

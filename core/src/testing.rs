//! A fake channel for router tests (feature `testing`), in the style of lettre's
//! `StubTransport`: it records what it was asked to send and can be told to fail.
//!
//! Its webhook format is canonical JSON: `{"routing_key": "...", "events": [InboundEvent…]}`,
//! signed by putting the account's `secret` credential in `x-fake-signature`.

use std::collections::VecDeque;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::Utc;

use crate::adapter::{
    AccountContext, AccountSetup, Capabilities, ChannelAdapter, CredentialField, Credentials,
    HandshakeReply, HealthReport, HealthStatus, KeyRule, WebhookReply, WebhookRequest,
};
use crate::channel::ChannelId;
use crate::content::MediaKind;
use crate::error::{ChannelError, WebhookError};
use crate::event::{InboundEvent, ParseProblem, ParsedWebhook, StatusUpdate};
use crate::fake_server::Shared;
use crate::interactive::InteractiveType;
use crate::outbound::{OutboundMessage, SendReceipt};
use crate::phone::PhoneNumber;
use crate::status::MessageStatus;

/// The header carrying the fake signature.
pub const SIGNATURE_HEADER: &str = "x-fake-signature";

/// The fake's one credential: `secret`, which also signs its webhooks.
pub const CREDENTIAL_FIELDS: &[CredentialField] = &[CredentialField {
    name: "secret",
    secret: true,
    required: true,
    description: "signs the fake's webhooks (sent as x-fake-signature)",
}];

/// The provider error code the fake's statuses and errors use for a recipient it cannot
/// reach (`ChannelAdapter::status_error_kind` answers `Unreachable` for it).
pub const UNREACHABLE_CODE: &str = "unreachable";

/// The 24-hour window of the WhatsApp channels the fake stands in for.
pub const SERVICE_WINDOW: Duration = Duration::from_secs(24 * 60 * 60);

#[derive(Default)]
struct State {
    sent: Vec<(String, OutboundMessage)>,
    outcomes: VecDeque<Result<SendReceipt, ChannelError>>,
    health: Option<HealthReport>,
    statuses: Vec<(String, StatusUpdate)>,
    counter: u64,
    in_flight: usize,
    most_in_flight: usize,
    verifications: u64,
    reads: Vec<(String, String, bool)>,
}

/// A channel adapter that talks to nobody.
#[derive(Clone)]
pub struct FakeAdapter {
    channel: ChannelId,
    capabilities: Capabilities,
    send_delay: Duration,
    key_rule: KeyRule,
    state: Shared<State>,
}

impl FakeAdapter {
    /// A fake channel named `fake`.
    pub fn new() -> Self {
        Self::named(ChannelId::new_static("fake"))
    }

    pub fn named(channel: ChannelId) -> Self {
        Self {
            channel,
            capabilities: Capabilities {
                max_text_chars: 4096,
                max_caption_chars: 1024,
                max_media_per_message: 1,
                media_kinds: &[
                    MediaKind::Image,
                    MediaKind::Video,
                    MediaKind::Audio,
                    MediaKind::Document,
                    MediaKind::Sticker,
                ],
                templates: true,
                template_components: true,
                interactive: &InteractiveType::ALL,
                contacts: true,
                reactions: true,
                locations: true,
                reply_context: true,
                send_to_bsuid: true,
                read_receipts: true,
                typing_indicator: true,
                default_rate_per_second: 80,
                recipient_pacing: None,
                service_window: Some(SERVICE_WINDOW),
            },
            send_delay: Duration::ZERO,
            key_rule: KeyRule::EveryKey,
            state: Shared::default(),
        }
    }

    #[must_use]
    pub fn with_capabilities(mut self, capabilities: Capabilities) -> Self {
        self.capabilities = capabilities;
        self
    }

    /// Every send takes this long (to test concurrency and timeouts).
    #[must_use]
    pub fn with_send_delay(mut self, delay: Duration) -> Self {
        self.send_delay = delay;
        self
    }

    /// How the router reads this fake's routing keys (every key by default).
    #[must_use]
    pub fn with_key_rule(mut self, rule: KeyRule) -> Self {
        self.key_rule = rule;
        self
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock()
    }

    /// The next send answers with `error` (queued after earlier scripted outcomes).
    pub fn fail_next(&self, error: ChannelError) {
        self.state().outcomes.push_back(Err(error));
    }

    /// The next send answers with `receipt`.
    pub fn succeed_next(&self, receipt: SendReceipt) {
        self.state().outcomes.push_back(Ok(receipt));
    }

    /// The most sends that were in progress at the same moment (counted when sends take
    /// time, see `with_send_delay`).
    pub fn most_concurrent_sends(&self) -> usize {
        self.state().most_in_flight
    }

    /// What was sent, with the account id it was sent from, in order.
    /// How many times a webhook signature was checked.
    pub fn verifications(&self) -> u64 {
        self.state().verifications
    }

    pub fn sent(&self) -> Vec<(String, OutboundMessage)> {
        self.state().sent.clone()
    }

    /// The read receipts asked for, in order: account id, provider message id, and whether
    /// a typing indicator was asked for too.
    pub fn reads(&self) -> Vec<(String, String, bool)> {
        self.state().reads.clone()
    }

    /// Health checks answer `report` from now on.
    pub fn set_health(&self, report: HealthReport) {
        self.state().health = Some(report);
    }

    /// `fetch_status` answers `status` for `provider_message_id`.
    pub fn set_provider_status(&self, provider_message_id: &str, status: StatusUpdate) {
        self.state()
            .statuses
            .push((provider_message_id.to_owned(), status));
    }

    /// A webhook body carrying `events` for the account known by `routing_key`.
    pub fn webhook_body(routing_key: &str, events: &[InboundEvent]) -> Bytes {
        Bytes::from(
            serde_json::to_vec(&serde_json::json!({
                "routing_key": routing_key,
                "events": events,
            }))
            .unwrap_or_default(),
        )
    }

    /// A webhook to `/webhooks/fake` carrying `events` for the account known by
    /// `routing_key`, signed with `secret` (`None`: unsigned).
    pub fn webhook(
        routing_key: &str,
        events: &[InboundEvent],
        secret: Option<&str>,
    ) -> WebhookRequest {
        let mut headers = http::HeaderMap::new();
        if let Some(value) = secret.and_then(|s| http::HeaderValue::from_str(s).ok()) {
            headers.insert(SIGNATURE_HEADER, value);
        }
        WebhookRequest {
            method: http::Method::POST,
            path: "/webhooks/fake".into(),
            query: None,
            headers,
            body: Self::webhook_body(routing_key, events),
            memo: Default::default(),
        }
    }

    /// Credentials for a fake account whose webhooks are signed with `secret`.
    pub fn credentials(secret: &str) -> serde_json::Value {
        serde_json::json!({ "secret": secret })
    }
}

impl Default for FakeAdapter {
    fn default() -> Self {
        Self::new()
    }
}

fn body_json(request: &WebhookRequest) -> Result<serde_json::Value, WebhookError> {
    serde_json::from_slice(&request.body)
        .map_err(|e| WebhookError::malformed("fake", format!("invalid JSON: {e}")))
}

#[async_trait]
impl ChannelAdapter for FakeAdapter {
    fn channel(&self) -> &ChannelId {
        &self.channel
    }

    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    fn credential_fields(&self) -> &'static [CredentialField] {
        CREDENTIAL_FIELDS
    }

    fn sensitive_headers(&self) -> &'static [&'static str] {
        &[SIGNATURE_HEADER]
    }

    fn connect_account(
        &self,
        address: &PhoneNumber,
        credentials: &serde_json::Value,
    ) -> Result<AccountSetup, ChannelError> {
        let credentials = Credentials::from_json(credentials).map_err(ChannelError::invalid)?;
        credentials.require("secret")?;
        Ok(AccountSetup {
            routing_key: address.to_string(),
            credentials,
        })
    }

    fn routing_keys(&self, request: &WebhookRequest) -> Result<Vec<String>, WebhookError> {
        let body = body_json(request)?;
        let key = body
            .get("routing_key")
            .and_then(|k| k.as_str())
            .ok_or_else(|| WebhookError::malformed("fake", "routing_key is missing"))?;
        Ok(vec![key.to_owned()])
    }

    fn key_rule(&self) -> KeyRule {
        self.key_rule
    }

    fn webhook_secret<'a>(&self, account: &'a AccountContext) -> Option<&'a str> {
        account.credentials.get("secret")
    }

    fn verify_webhook(
        &self,
        request: &WebhookRequest,
        account: &AccountContext,
    ) -> Result<(), WebhookError> {
        self.state().verifications += 1;
        let given = request
            .header(SIGNATURE_HEADER)
            .ok_or(WebhookError::MissingSignature)?;
        // Test double: a plain comparison is fine here; real adapters compare in constant time.
        if Some(given) == account.credentials.get("secret") {
            Ok(())
        } else {
            Err(WebhookError::BadSignature)
        }
    }

    fn parse_webhook(
        &self,
        request: &WebhookRequest,
        accounts: &[&AccountContext],
    ) -> Result<ParsedWebhook, WebhookError> {
        let body = body_json(request)?;
        let items = body
            .get("events")
            .and_then(|e| e.as_array())
            .ok_or_else(|| WebhookError::malformed("fake", "events must be an array"))?;
        let mut parsed = ParsedWebhook::default();
        for item in items {
            match serde_json::from_value::<InboundEvent>(item.clone()) {
                Ok(ev) if accounts.iter().any(|a| a.routing_key == ev.routing_key) => {
                    parsed.events.push(ev);
                }
                Ok(ev) => parsed.problems.push(ParseProblem {
                    routing_key: Some(ev.routing_key),
                    detail: "event for an account that did not verify".into(),
                    raw: item.clone(),
                }),
                Err(e) => parsed.problems.push(ParseProblem {
                    routing_key: None,
                    detail: e.to_string(),
                    raw: item.clone(),
                }),
            }
        }
        Ok(parsed)
    }

    fn webhook_reply(&self) -> WebhookReply {
        WebhookReply {
            status: 200,
            content_type: "text/plain",
            body: Bytes::from_static(b"ok"),
        }
    }

    fn answer_handshake(
        &self,
        request: &WebhookRequest,
        accounts: &[AccountContext],
    ) -> HandshakeReply {
        let query = request.query.as_deref().unwrap_or("");
        let token = query.strip_prefix("token=").unwrap_or("");
        if accounts
            .iter()
            .any(|a| a.credentials.get("secret") == Some(token))
        {
            HandshakeReply::Accept("challenge".into())
        } else {
            HandshakeReply::Reject
        }
    }

    async fn send(
        &self,
        account: &AccountContext,
        message: &OutboundMessage,
    ) -> Result<SendReceipt, ChannelError> {
        if !self.send_delay.is_zero() {
            {
                let mut state = self.state();
                state.in_flight += 1;
                state.most_in_flight = state.most_in_flight.max(state.in_flight);
            }
            tokio::time::sleep(self.send_delay).await;
            self.state().in_flight -= 1;
        }
        let mut state = self.state();
        state
            .sent
            .push((account.account_id.clone(), message.clone()));
        state.counter += 1;
        let n = state.counter;
        state.outcomes.pop_front().unwrap_or_else(|| {
            Ok(SendReceipt {
                provider_message_id: format!("fake-{n}"),
                status: MessageStatus::Accepted,
                recipient_wa_id: None,
                recipient_bsuid: None,
                exchange: None,
            })
        })
    }

    async fn check_health(&self, _account: &AccountContext) -> HealthReport {
        self.state().health.clone().unwrap_or(HealthReport {
            status: HealthStatus::Up,
            latency: Duration::from_millis(1),
            checked_at: Utc::now(),
            detail: None,
            quality: None,
            messaging_limit: None,
        })
    }

    fn status_error_kind(&self, error: &crate::event::ProviderError) -> crate::error::ErrorKind {
        if error.code == UNREACHABLE_CODE {
            crate::error::ErrorKind::Unreachable
        } else {
            crate::error::ErrorKind::Permanent
        }
    }

    async fn fetch_status(
        &self,
        _account: &AccountContext,
        provider_message_id: &str,
    ) -> Result<Option<StatusUpdate>, ChannelError> {
        Ok(self
            .state()
            .statuses
            .iter()
            .rev()
            .find(|(id, _)| id == provider_message_id)
            .map(|(_, s)| s.clone()))
    }

    async fn mark_read(
        &self,
        account: &AccountContext,
        provider_message_id: &str,
        typing: bool,
    ) -> Result<(), ChannelError> {
        self.state().reads.push((
            account.account_id.clone(),
            provider_message_id.to_owned(),
            typing,
        ));
        Ok(())
    }
}

/// An inbound text from `contact` to the account known by `routing_key`, keyed (and
/// provider-id'd) by `key`.
pub fn inbound_text(
    routing_key: &str,
    key: &str,
    contact: crate::identity::ContactIdentity,
    text: &str,
) -> InboundEvent {
    InboundEvent {
        routing_key: routing_key.into(),
        event_key: key.into(),
        kind: crate::event::EventKind::Message(crate::event::InboundMessage {
            provider_message_id: key.into(),
            direction: crate::event::Direction::Inbound,
            contact,
            timestamp: Utc::now(),
            content: crate::content::Content::text(text),
            reply_to: None,
            forwarded: None,
            referral: None,
            opt: crate::event::OptChange::default(),
        }),
        raw: serde_json::json!({"id": key}),
    }
}

//! `switchboard-twilio`: Twilio's two channel adapters, [`TwilioWhatsApp`]
//! (`twilio-whatsapp`) and [`TwilioSms`] (`twilio-sms`, SMS and MMS), over one Messages
//! API, webhook form, signature, error table and fake.
//!
//! What it knows: Twilio's wire format (as Twilio documents it), one module each, laid out
//! like the Meta adapter's:
//! - `config`: [`TwilioConfig`] (and, with the `clap` feature, `TwilioSettings`: its
//!   `switchboard serve` flags), the channel id [`CHANNEL`], credential shapes and the
//!   status-callback URLs;
//! - `wire`: the form shape ([`Form`]), the JSON error body and the status vocabulary;
//! - [`signature`]: `X-Twilio-Signature` validation exactly as Twilio's SDKs do it;
//! - `webhook`: inbound-message and status-callback forms parsed into canonical events;
//! - `send`: the Messages API (`POST …/Messages.json`, form-encoded with basic auth) and
//!   message status look-ups;
//! - [`content_api`]: interactive messages and locations as Content API resources, created
//!   on the fly and cached (protocols/twilio.md §9);
//! - `typing`: WhatsApp typing indicators, which also mark a message read;
//! - `errors`: Twilio's error codes and what each means for retrying;
//! - `media`, `health`: media downloads and limits, account health;
//! - `sms`: the SMS channel's declarations and opt-out keywords; [`segments`]: GSM-7 and
//!   UCS-2 segment counting.
//!
//! What it does not know: databases, queues, retries, HTTP serving or routing. The router
//! serves the webhook path, looks accounts up by [`routing key`](ChannelAdapter::routing_keys)
//! (the business number in E.164), stores events and decides whether to retry by asking
//! the returned [`ChannelError`]. The adapter holds no state but its configuration and one
//! HTTP client; credentials (`account_sid`, `auth_token`) come with every call and never
//! appear in logs, errors or stored exchanges.
//!
//! Feature `testing` adds [`testing::FakeTwilio`], a local fake of the Twilio REST API, and
//! helpers that sign fake webhooks.

mod config;
pub mod content_api;
mod errors;
mod health;
mod media;
pub mod segments;
mod send;
pub mod signature;
mod sms;
mod templates;
mod typing;
mod webhook;
mod wire;

#[cfg(feature = "testing")]
pub mod testing;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use switchboard_core::{
    AccountContext, AccountSetup, Capabilities, ChannelAdapter, ChannelError, ChannelId, Content,
    CredentialField, Credentials, FetchedMedia, InteractiveType, KeyRule, MediaItem, MediaKind,
    MediaLimit, OutboundMessage, ParsedWebhook, PhoneNumber, SendReceipt, StatusUpdate,
    WebhookError, WebhookReply, WebhookRequest,
};

#[cfg(feature = "clap")]
pub use config::TwilioSettings;
pub use config::{
    CHANNEL, CRED_ACCOUNT_SID, CRED_AUTH_TOKEN, CRED_MESSAGING_SERVICE_SID, CREDENTIAL_FIELDS,
    DEFAULT_API_BASE, DEFAULT_CONTENT_API_BASE, DEFAULT_MESSAGING_API_BASE,
    DEFAULT_SMS_WEBHOOK_PATH, DEFAULT_WEBHOOK_PATH, Dialect, SMS_CHANNEL, TwilioConfig,
};
pub use send::{Sender, build_form, build_form_as, build_form_with, content_resource};
pub use sms::{OPT_IN_KEYWORDS, OPT_OUT_KEYWORDS, TwilioSms, opt_change};
pub use webhook::{EMPTY_TWIML, parse_form};
pub use wire::Form;

static MEDIA_KINDS: [MediaKind; 4] = [
    MediaKind::Image,
    MediaKind::Video,
    MediaKind::Audio,
    MediaKind::Document,
];

/// The interactive messages Twilio WhatsApp carries, each as a content resource
/// ([`content_api`]); a location request has no Twilio content type.
static INTERACTIVE: [InteractiveType; 4] = [
    InteractiveType::Buttons,
    InteractiveType::List,
    InteractiveType::CtaUrl,
    InteractiveType::Flow,
];

/// What Twilio WhatsApp carries.
pub fn capabilities() -> Capabilities {
    Capabilities {
        max_text_chars: send::MAX_BODY_CHARS,
        max_caption_chars: send::MAX_BODY_CHARS,
        max_media_per_message: 1,
        media_kinds: &MEDIA_KINDS,
        templates: true,
        template_components: false,
        interactive: &INTERACTIVE,
        contacts: false,
        reactions: false,
        // As a `twilio/location` content resource.
        locations: true,
        reply_context: false,
        send_to_bsuid: true,
        // Twilio marks a message read only together with a typing indicator (`typing.rs`).
        read_receipts: false,
        typing_indicator: true,
        default_rate_per_second: 80,
        recipient_pacing: None,
        // WhatsApp's customer-service window.
        service_window: Some(Duration::from_secs(24 * 60 * 60)),
    }
}

/// The Twilio WhatsApp adapter.
#[derive(Clone, Debug)]
pub struct TwilioWhatsApp {
    config: TwilioConfig,
    http: reqwest::Client,
    capabilities: Capabilities,
    /// The Content SIDs of the interactive messages and locations it sent.
    contents: Arc<content_api::ContentCache>,
}

impl TwilioWhatsApp {
    /// An adapter with one HTTP client (timeouts from `config`, a User-Agent).
    pub fn new(config: TwilioConfig) -> Self {
        let http = http_client(&config, "switchboard-twilio/");
        Self {
            config,
            http,
            capabilities: capabilities(),
            contents: Arc::default(),
        }
    }

    pub fn config(&self) -> &TwilioConfig {
        &self.config
    }
}

/// One HTTP client for an adapter: timeouts from `config`, a User-Agent `{agent}{version}`.
pub(crate) fn http_client(config: &TwilioConfig, agent: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(config.request_timeout)
        .connect_timeout(config.request_timeout.min(Duration::from_secs(10)))
        .user_agent(format!("{agent}{}", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_else(|e| {
            tracing::error!(error = %e, "could not build the Twilio HTTP client; using defaults");
            reqwest::Client::new()
        })
}

/// Checks Twilio credentials for shape: `account_sid` (`AC` + 32 letters and digits), a
/// non-empty `auth_token` and an optional `messaging_service_sid` (`MG` + 32 hexadecimal
/// digits). Returns them trimmed, other fields dropped.
///
/// # Errors
/// `Invalid`, naming the field.
pub fn check_credentials(credentials: &serde_json::Value) -> Result<Credentials, ChannelError> {
    let given = Credentials::from_json(credentials).map_err(ChannelError::invalid)?;
    let sid = given.require(CRED_ACCOUNT_SID)?.trim();
    if !config::is_sid(sid, "AC") {
        return Err(ChannelError::invalid(
            "credential \"account_sid\" must be a Twilio account SID: AC followed by 32 letters and digits (34 characters)",
        ));
    }
    let token = given.require(CRED_AUTH_TOKEN)?.trim();
    let mut out = Credentials::default();
    out.insert(CRED_ACCOUNT_SID, sid);
    out.insert(CRED_AUTH_TOKEN, token);
    if let Some(service) = given
        .get(CRED_MESSAGING_SERVICE_SID)
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        if !config::is_messaging_service_sid(service) {
            return Err(ChannelError::invalid(
                "credential \"messaging_service_sid\" must be a Twilio Messaging Service SID: MG followed by 32 hexadecimal digits (34 characters)",
            ));
        }
        out.insert(CRED_MESSAGING_SERVICE_SID, service);
    }
    Ok(out)
}

#[async_trait]
impl ChannelAdapter for TwilioWhatsApp {
    fn channel(&self) -> &ChannelId {
        &CHANNEL
    }

    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    fn credential_fields(&self) -> &'static [CredentialField] {
        CREDENTIAL_FIELDS
    }

    fn sensitive_headers(&self) -> &'static [&'static str] {
        &[signature::SIGNATURE_HEADER]
    }

    fn connect_account(
        &self,
        address: &PhoneNumber,
        credentials: &serde_json::Value,
    ) -> Result<AccountSetup, ChannelError> {
        Ok(AccountSetup {
            routing_key: address.to_string(),
            credentials: check_credentials(credentials)?,
        })
    }

    fn routing_keys(&self, request: &WebhookRequest) -> Result<Vec<String>, WebhookError> {
        webhook::routing_keys(request)
    }

    /// A Twilio webhook is one message or status of one account: the business is `To` or
    /// `From`, whichever of them (in `webhook::routing_keys`' order) is connected and
    /// signed it; the other is the customer, whose number need not be looked up.
    fn key_rule(&self) -> KeyRule {
        KeyRule::FirstSigned
    }

    fn verify_webhook(
        &self,
        request: &WebhookRequest,
        account: &AccountContext,
    ) -> Result<(), WebhookError> {
        webhook::verify(&self.config, request, account)
    }

    fn parse_webhook(
        &self,
        request: &WebhookRequest,
        accounts: &[&AccountContext],
    ) -> Result<ParsedWebhook, WebhookError> {
        webhook::parse(&self.config, request, accounts)
    }

    fn webhook_reply(&self) -> WebhookReply {
        webhook::reply()
    }

    async fn send(
        &self,
        account: &AccountContext,
        message: &OutboundMessage,
    ) -> Result<SendReceipt, ChannelError> {
        send::send(
            &self.http,
            &self.config,
            Dialect::WhatsApp,
            Some(&self.contents),
            account,
            message,
        )
        .await
    }

    fn check_content(&self, content: &Content) -> Result<(), ChannelError> {
        send::check_content(Dialect::WhatsApp, content)
    }

    /// Twilio's Typing Indicators resource marks the message read and shows the indicator;
    /// it has no call that only marks read (`typing.rs`).
    async fn list_templates(
        &self,
        account: &AccountContext,
        _business_account_id: Option<&str>,
    ) -> Result<Vec<switchboard_core::ProviderTemplate>, ChannelError> {
        templates::list(&self.http, &self.config, account).await
    }

    async fn submit_template(
        &self,
        account: &AccountContext,
        _business_account_id: Option<&str>,
        submission: &switchboard_core::TemplateSubmission,
    ) -> Result<switchboard_core::ProviderTemplate, ChannelError> {
        templates::submit(&self.http, &self.config, account, submission).await
    }

    async fn mark_read(
        &self,
        account: &AccountContext,
        provider_message_id: &str,
        typing: bool,
    ) -> Result<(), ChannelError> {
        if !typing {
            return Err(ChannelError::unsupported(
                "Twilio WhatsApp cannot mark a message read without showing a typing indicator: send {\"typing\":true} to do both",
            ));
        }
        typing::show(&self.http, &self.config, account, provider_message_id).await
    }

    async fn check_health(&self, account: &AccountContext) -> switchboard_core::HealthReport {
        health::check_health(&self.http, &self.config, account).await
    }

    /// Twilio fills in `price` and `price_unit` some time after a message is final
    /// (twilio.md §10).
    fn prices_on_fetch(&self) -> bool {
        true
    }

    async fn fetch_status(
        &self,
        account: &AccountContext,
        provider_message_id: &str,
    ) -> Result<Option<StatusUpdate>, ChannelError> {
        send::fetch_status(&self.http, &self.config, account, provider_message_id).await
    }

    fn status_error_kind(
        &self,
        error: &switchboard_core::ProviderError,
    ) -> switchboard_core::ErrorKind {
        errors::status_error_kind(&error.code)
    }

    fn media_limit(&self, kind: MediaKind) -> MediaLimit {
        media::media_limit(kind)
    }

    async fn fetch_media(
        &self,
        account: &AccountContext,
        item: &MediaItem,
        max_bytes: u64,
    ) -> Result<FetchedMedia, ChannelError> {
        media::fetch(&self.http, &self.config, account, item, max_bytes).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn adapter() -> TwilioWhatsApp {
        TwilioWhatsApp::new(TwilioConfig::default())
    }

    #[test]
    fn connect_account_checks_credentials() {
        let addr = PhoneNumber::parse("+14155238886").unwrap();
        let setup = adapter()
            .connect_account(
                &addr,
                &json!({"account_sid": " AC00000000000000000000000000000001 ", "auth_token": "t", "x": "y"}),
            )
            .unwrap();
        assert_eq!(setup.routing_key, "+14155238886");
        assert_eq!(
            setup.credentials.get("account_sid"),
            Some("AC00000000000000000000000000000001")
        );
        assert_eq!(setup.credentials.get("auth_token"), Some("t"));
        assert_eq!(setup.credentials.names().count(), 2);

        for bad in [
            json!({"auth_token": "t"}),
            json!({"account_sid": "AC123", "auth_token": "t"}),
            json!({"account_sid": "SM00000000000000000000000000000001", "auth_token": "t"}),
            json!({"account_sid": "AC00000000000000000000000000000001"}),
            json!({"account_sid": "AC00000000000000000000000000000001", "auth_token": " "}),
            json!({"account_sid": 1, "auth_token": "t"}),
            json!("nope"),
        ] {
            let e = adapter().connect_account(&addr, &bad).unwrap_err();
            assert_eq!(e.kind(), switchboard_core::ErrorKind::Invalid, "{bad}");
        }
    }

    #[test]
    fn capabilities_and_channel() {
        let a = adapter();
        assert_eq!(a.channel().as_str(), "twilio-whatsapp");
        let c = a.capabilities();
        assert_eq!(c.max_text_chars, 1600);
        assert_eq!(c.max_media_per_message, 1);
        assert!(c.templates && c.locations && c.send_to_bsuid);
        assert!(!c.reactions && !c.reply_context && !c.contacts && !c.template_components);
        assert_eq!(
            c.interactive,
            [
                InteractiveType::Buttons,
                InteractiveType::List,
                InteractiveType::CtaUrl,
                InteractiveType::Flow
            ]
        );
        assert!(!c.read_receipts && c.typing_indicator);
        assert_eq!(c.default_rate_per_second, 80);
        assert_eq!(c.service_window, Some(Duration::from_secs(24 * 60 * 60)));
    }

    #[test]
    fn declares_its_credentials_and_its_signature_header() {
        let a = adapter();
        let fields: Vec<_> = a
            .credential_fields()
            .iter()
            .map(|f| (f.name, f.secret, f.required))
            .collect();
        assert_eq!(
            fields,
            [
                ("account_sid", false, true),
                ("auth_token", true, true),
                ("messaging_service_sid", false, false)
            ]
        );
        assert_eq!(a.sensitive_headers(), ["x-twilio-signature"]);
        // What connect_account requires is what is declared required.
        let addr = PhoneNumber::parse("+14155238886").unwrap();
        for field in a.credential_fields().iter().filter(|f| f.required) {
            let mut creds =
                json!({"account_sid": "AC00000000000000000000000000000001", "auth_token": "t"});
            creds.as_object_mut().unwrap().remove(field.name);
            assert!(a.connect_account(&addr, &creds).is_err(), "{}", field.name);
        }
    }
}

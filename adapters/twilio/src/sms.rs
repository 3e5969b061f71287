//! The `twilio-sms` channel: SMS and MMS over the same Messages API, webhooks and
//! signature as WhatsApp, with bare E.164 addresses and SMS's own rules.
//!
//! What differs from WhatsApp, and only here or in [`Dialect`]:
//! - no service window; texts up to 1,600 characters, counted in segments
//!   ([`crate::segments`]); up to ten media items (MMS), 5 MB;
//! - no templates, locations, reactions or BSUID recipients;
//! - opt-out follows Twilio's keywords: `OptOutType` when Twilio's Advanced Opt-Out sets
//!   it, else a body that is exactly one keyword (any case): STOP and its synonyms opt
//!   out, START and its synonyms opt back in, anything else (HELP too) changes nothing.

use async_trait::async_trait;
use switchboard_core::{
    AccountContext, AccountSetup, Capabilities, ChannelAdapter, ChannelError, ChannelId, Content,
    CredentialField, EventKind, FetchedMedia, KeyRule, MediaItem, MediaKind, MediaLimit, OptChange,
    OutboundMessage, ParsedWebhook, PhoneNumber, SendReceipt, StatusUpdate, WebhookError,
    WebhookReply, WebhookRequest,
};

use crate::config::{CREDENTIAL_FIELDS, Dialect, SMS_CHANNEL, TwilioConfig};
use crate::{check_credentials, health, media, segments, send, signature, webhook};

/// Keywords that opt a contact out of a sender (Twilio's defaults on long codes).
pub const OPT_OUT_KEYWORDS: &[&str] = &[
    "STOP",
    "STOPALL",
    "UNSUBSCRIBE",
    "CANCEL",
    "END",
    "QUIT",
    "REVOKE",
    "OPTOUT",
];
/// Keywords that opt a contact back in.
pub const OPT_IN_KEYWORDS: &[&str] = &["START", "YES", "UNSTOP"];

static MEDIA_KINDS: [MediaKind; 4] = [
    MediaKind::Image,
    MediaKind::Video,
    MediaKind::Audio,
    MediaKind::Document,
];

/// What Twilio SMS carries.
pub fn capabilities() -> Capabilities {
    Capabilities {
        max_text_chars: send::MAX_BODY_CHARS,
        max_caption_chars: send::MAX_BODY_CHARS,
        max_media_per_message: send::MAX_MMS_MEDIA,
        media_kinds: &MEDIA_KINDS,
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
        // Twilio queues what exceeds a number's own rate (1 segment a second on a US long
        // code, more on toll-free and short codes), so this paces only Switchboard's side.
        default_rate_per_second: 10,
        recipient_pacing: None,
        service_window: None,
    }
}

/// What an inbound SMS does to its contact's opt-out: `OptOutType` (`STOP`, `START`,
/// `HELP`) when Twilio set it, else the body read as one keyword.
pub fn opt_change(opt_out_type: Option<&str>, body: Option<&str>) -> OptChange {
    let word = opt_out_type
        .filter(|t| !t.trim().is_empty())
        .or(body)
        .map(str::trim)
        .unwrap_or("");
    let is = |list: &[&str]| list.iter().any(|k| word.eq_ignore_ascii_case(k));
    if is(OPT_OUT_KEYWORDS) {
        OptChange::OptOut
    } else if is(OPT_IN_KEYWORDS) {
        OptChange::OptIn
    } else {
        OptChange::Unchanged
    }
}

/// The shared webhook code's refusal, naming this channel.
fn as_sms(e: WebhookError) -> WebhookError {
    match e {
        WebhookError::Malformed { detail, .. } => {
            WebhookError::malformed(SMS_CHANNEL.as_str(), detail)
        }
        other => other,
    }
}

/// The Twilio SMS adapter.
#[derive(Clone, Debug)]
pub struct TwilioSms {
    config: TwilioConfig,
    http: reqwest::Client,
    capabilities: Capabilities,
}

impl TwilioSms {
    /// An adapter with one HTTP client. `config.webhook_path` should be the SMS path
    /// ([`crate::DEFAULT_SMS_WEBHOOK_PATH`], as `TwilioSettings::sms_config` sets it):
    /// status callbacks come back under it.
    pub fn new(config: TwilioConfig) -> Self {
        Self {
            http: crate::http_client(&config, "switchboard-twilio-sms/"),
            config,
            capabilities: capabilities(),
        }
    }

    pub fn config(&self) -> &TwilioConfig {
        &self.config
    }
}

#[async_trait]
impl ChannelAdapter for TwilioSms {
    fn channel(&self) -> &ChannelId {
        &SMS_CHANNEL
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
        webhook::routing_keys(request).map_err(as_sms)
    }

    /// As on WhatsApp: the business is `To` or `From`, whichever signed it.
    fn key_rule(&self) -> KeyRule {
        KeyRule::FirstSigned
    }

    fn verify_webhook(
        &self,
        request: &WebhookRequest,
        account: &AccountContext,
    ) -> Result<(), WebhookError> {
        webhook::verify(&self.config, request, account).map_err(as_sms)
    }

    /// Twilio's form parsed as for WhatsApp (the fields SMS lacks are simply absent), with
    /// each inbound message's opt-out read by SMS's keyword rules.
    fn parse_webhook(
        &self,
        request: &WebhookRequest,
        accounts: &[&AccountContext],
    ) -> Result<ParsedWebhook, WebhookError> {
        let mut parsed = webhook::parse(&self.config, request, accounts).map_err(as_sms)?;
        for event in &mut parsed.events {
            if let EventKind::Message(m) = &mut event.kind {
                let field = |k: &str| event.raw.get(k).and_then(|v| v.as_str());
                m.opt = opt_change(field("OptOutType"), field("Body"));
            }
        }
        Ok(parsed)
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
            Dialect::Sms,
            None,
            account,
            message,
        )
        .await
    }

    fn check_content(&self, content: &Content) -> Result<(), ChannelError> {
        send::check_content(Dialect::Sms, content)
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

    fn media_limit(&self, kind: MediaKind) -> MediaLimit {
        media::mms_media_limit(kind)
    }

    async fn fetch_media(
        &self,
        account: &AccountContext,
        item: &MediaItem,
        max_bytes: u64,
    ) -> Result<FetchedMedia, ChannelError> {
        media::fetch(&self.http, &self.config, account, item, max_bytes).await
    }

    /// The text's SMS segments (its caption's, with media); an MMS without text is one
    /// message.
    fn text_segments(&self, content: &Content) -> Option<u32> {
        let text = content
            .text
            .as_deref()
            .or_else(|| content.media.first().and_then(|m| m.caption.as_deref()));
        match text {
            Some(t) => Some(segments::count(t).max(1)),
            None if !content.media.is_empty() => Some(1),
            None => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn adapter() -> TwilioSms {
        TwilioSms::new(TwilioConfig {
            webhook_path: crate::DEFAULT_SMS_WEBHOOK_PATH.into(),
            ..TwilioConfig::default()
        })
    }

    #[test]
    fn capabilities_and_declarations() {
        let a = adapter();
        assert_eq!(a.channel().as_str(), "twilio-sms");
        let c = a.capabilities();
        assert_eq!(c.service_window, None);
        assert_eq!(c.max_text_chars, 1600);
        assert_eq!(c.max_media_per_message, 10);
        assert!(!c.templates && !c.locations && !c.send_to_bsuid && !c.reactions);
        assert_eq!(a.sensitive_headers(), ["x-twilio-signature"]);
        let names: Vec<_> = a.credential_fields().iter().map(|f| f.name).collect();
        assert_eq!(
            names,
            ["account_sid", "auth_token", "messaging_service_sid"]
        );
        assert_eq!(a.media_limit(MediaKind::Image).max_bytes, 5 * 1024 * 1024);
    }

    #[test]
    fn connect_checks_the_messaging_service_sid() {
        let addr = PhoneNumber::parse("+14155238886").unwrap();
        let ok = adapter()
            .connect_account(
                &addr,
                &json!({"account_sid": "AC00000000000000000000000000000001", "auth_token": "t",
                        "messaging_service_sid": " MG0123456789abcdef0123456789abcdef "}),
            )
            .unwrap();
        assert_eq!(
            ok.credentials.get("messaging_service_sid"),
            Some("MG0123456789abcdef0123456789abcdef")
        );
        for bad in [
            "MG123",
            "XX0123456789abcdef0123456789abcdef",
            "MG0123456789abcdef0123456789abcdeg",
        ] {
            let e = adapter()
                .connect_account(
                    &addr,
                    &json!({"account_sid": "AC00000000000000000000000000000001", "auth_token": "t",
                            "messaging_service_sid": bad}),
                )
                .unwrap_err();
            assert_eq!(e.kind(), switchboard_core::ErrorKind::Invalid, "{bad}");
        }
    }

    #[test]
    fn keywords_opt_out_and_in_and_nothing_else_does() {
        for k in [
            "STOP",
            "stop",
            " sToP ",
            "Unsubscribe",
            "END",
            "quit",
            "STOPALL",
            "revoke",
            "OPTOUT",
            "cancel",
        ] {
            assert_eq!(opt_change(None, Some(k)), OptChange::OptOut, "{k}");
        }
        for k in ["START", "start", "Yes", "UNSTOP"] {
            assert_eq!(opt_change(None, Some(k)), OptChange::OptIn, "{k}");
        }
        for k in ["HELP", "info", "Stop please", "hello", ""] {
            assert_eq!(opt_change(None, Some(k)), OptChange::Unchanged, "{k}");
        }
        assert_eq!(opt_change(None, None), OptChange::Unchanged);
        // Twilio's Advanced Opt-Out names the keyword it matched, in any language.
        assert_eq!(opt_change(Some("STOP"), Some("arrête")), OptChange::OptOut);
        assert_eq!(opt_change(Some("START"), Some("ja")), OptChange::OptIn);
        assert_eq!(opt_change(Some("HELP"), Some("stop")), OptChange::Unchanged);
    }

    fn sms_adapter_at(public_url: &str) -> TwilioSms {
        TwilioSms::new(TwilioConfig {
            public_url: public_url.into(),
            webhook_path: crate::DEFAULT_SMS_WEBHOOK_PATH.into(),
            ..TwilioConfig::default()
        })
    }

    #[test]
    fn inbound_sms_and_mms_and_status_callbacks_parse_with_bare_numbers() {
        use crate::testing::{self, TEST_ACCOUNT_SID as SID, TEST_AUTH_TOKEN as TOKEN};
        let public = "https://sb.example.com";
        let a = sms_adapter_at(public);
        let account = testing::account(SID, TOKEN, "+14155550100");
        let parse = |path: &str, form: &[(String, String)]| {
            let req = testing::signed_webhook_request(public, path, None, TOKEN, form);
            assert_eq!(a.routing_keys(&req).unwrap()[0], "+14155550100");
            a.verify_webhook(&req, &account).unwrap();
            a.parse_webhook(&req, &[&account]).unwrap()
        };
        let form =
            testing::inbound_sms_form(SID, "+31612345678", "+14155550100", "stop", "SM1", None);
        let parsed = parse("/webhooks/twilio-sms", &form);
        let EventKind::Message(m) = &parsed.events[0].kind else {
            panic!("{parsed:?}")
        };
        assert_eq!(m.contact.phone.as_ref().unwrap().as_str(), "+31612345678");
        assert!(m.contact.wa_id.is_none() && m.contact.profile_name.is_none());
        assert_eq!(m.content.text.as_deref(), Some("stop"));
        assert_eq!(m.opt, OptChange::OptOut);

        let mut mms =
            testing::inbound_sms_form(SID, "+31612345678", "+14155550100", "look", "MM2", None);
        mms.retain(|(k, _)| k != "NumMedia");
        for (k, v) in [
            ("NumMedia", "2"),
            ("MediaUrl0", "https://api.twilio.com/m/0"),
            ("MediaContentType0", "image/jpeg"),
            ("MediaUrl1", "https://api.twilio.com/m/1"),
            ("MediaContentType1", "video/mp4"),
        ] {
            mms.push((k.into(), v.into()));
        }
        let parsed = parse("/webhooks/twilio-sms", &mms);
        let EventKind::Message(m) = &parsed.events[0].kind else {
            panic!("{parsed:?}")
        };
        let kinds: Vec<_> = m.content.media.iter().map(|i| i.kind).collect();
        assert_eq!(kinds, [MediaKind::Image, MediaKind::Video]);
        assert_eq!(m.opt, OptChange::Unchanged);

        let status = testing::sms_status_form(
            SID,
            "+14155550100",
            "+31612345678",
            "SM3",
            "delivered",
            None,
        );
        let parsed = parse("/webhooks/twilio-sms/status/msg_1", &status);
        let EventKind::Status(update) = &parsed.events[0].kind else {
            panic!("{parsed:?}")
        };
        assert_eq!(update.status, switchboard_core::MessageStatus::Delivered);
        assert_eq!(update.message_ref.as_deref(), Some("msg_1"));

        // Refusals name this channel.
        let req = WebhookRequest {
            method: http::Method::POST,
            path: "/webhooks/twilio-sms".into(),
            query: None,
            headers: http::HeaderMap::new(),
            body: bytes::Bytes::from_static(b"To=%2B1"),
            memo: Default::default(),
        };
        let err = a.parse_webhook(&req, &[&account]).unwrap_err();
        assert!(err.to_string().contains("twilio-sms"), "{err}");
    }

    #[test]
    fn segments_of_text_caption_and_bare_media() {
        let a = adapter();
        let text = |t: &str| Content {
            text: Some(t.into()),
            ..Content::default()
        };
        assert_eq!(a.text_segments(&text("hi")), Some(1));
        assert_eq!(a.text_segments(&text(&"a".repeat(161))), Some(2));
        assert_eq!(a.text_segments(&text(&"ж".repeat(71))), Some(2));
        assert_eq!(a.text_segments(&Content::default()), None);
    }
}

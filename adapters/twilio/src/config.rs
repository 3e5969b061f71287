//! Adapter configuration (where Twilio's API is, where Twilio reaches us, the URLs built
//! from both; as `switchboard serve` flags behind the `clap` feature) and the static facts
//! about the channel: its id and credential shapes.

use std::time::Duration;

#[cfg(feature = "clap")]
use switchboard_core::CommonSettings;
use switchboard_core::{AccountContext, ChannelError, ChannelId, CredentialField};

/// The Twilio WhatsApp channel's id.
pub static CHANNEL: ChannelId = ChannelId::new_static("twilio-whatsapp");
/// The Twilio SMS/MMS channel's id.
pub static SMS_CHANNEL: ChannelId = ChannelId::new_static("twilio-sms");

/// Which of Twilio's two channels over the one Messages API: they differ in how addresses
/// are spelled (`whatsapp:+…` or bare E.164), in what they carry and in their rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    WhatsApp,
    Sms,
}

impl Dialect {
    pub fn channel(self) -> &'static ChannelId {
        match self {
            Self::WhatsApp => &CHANNEL,
            Self::Sms => &SMS_CHANNEL,
        }
    }

    /// The prefix of this channel's addresses in `To` and `From`.
    pub fn address_prefix(self) -> &'static str {
        match self {
            Self::WhatsApp => "whatsapp:",
            Self::Sms => "",
        }
    }

    /// The channel's name in error messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::WhatsApp => "Twilio WhatsApp",
            Self::Sms => "Twilio SMS",
        }
    }
}

/// Credential: the account SID (`AC` + 32 letters and digits), the basic-auth user.
pub const CRED_ACCOUNT_SID: &str = "account_sid";
/// Credential: the auth token, the basic-auth password and the webhook signing key.
pub const CRED_AUTH_TOKEN: &str = "auth_token";
/// Credential (optional): a Messaging Service SID (`MG` + 32 hexadecimal digits) that
/// sends instead of the fixed number: Twilio picks the sender from the service's pool.
pub const CRED_MESSAGING_SERVICE_SID: &str = "messaging_service_sid";

/// The credentials an account is connected with.
pub const CREDENTIAL_FIELDS: &[CredentialField] = &[
    CredentialField {
        name: CRED_ACCOUNT_SID,
        secret: false,
        required: true,
        description: "the Twilio account SID: AC followed by 32 letters and digits (Twilio Console)",
    },
    CredentialField {
        name: CRED_AUTH_TOKEN,
        secret: true,
        required: true,
        description: "the account's auth token: the REST API password and the key of X-Twilio-Signature",
    },
    CredentialField {
        name: CRED_MESSAGING_SERVICE_SID,
        secret: false,
        required: false,
        description: "a Messaging Service SID (MG followed by 32 hexadecimal digits) to send through instead of the account's number",
    },
];

/// The default Twilio REST API base.
pub const DEFAULT_API_BASE: &str = "https://api.twilio.com";
/// The default base of Twilio's Content API (protocols/twilio.md §9).
pub const DEFAULT_CONTENT_API_BASE: &str = "https://content.twilio.com";
/// The default base of Twilio's Messaging API v2, where the Typing Indicators resource is
/// (`typing.rs`).
pub const DEFAULT_MESSAGING_API_BASE: &str = "https://messaging.twilio.com";
/// The default path the router serves Twilio webhooks on.
pub const DEFAULT_WEBHOOK_PATH: &str = "/webhooks/twilio-whatsapp";
/// The default path the router serves Twilio SMS webhooks on.
pub const DEFAULT_SMS_WEBHOOK_PATH: &str = "/webhooks/twilio-sms";

/// How the adapter reaches Twilio and how Twilio reaches the router.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TwilioConfig {
    /// Twilio's REST API base, without a trailing slash (tests point it at `FakeTwilio`).
    pub api_base: String,
    /// Twilio's Content API base: interactive messages and locations are sent as content
    /// resources created there (`content_api.rs`).
    pub content_api_base: String,
    /// Twilio's Messaging API v2 base: typing indicators (`typing.rs`).
    pub messaging_api_base: String,
    /// The public base URL Twilio calls (`https://sb.example.com`). Signatures are checked
    /// against this plus the raw request path and query, never against the `Host` header,
    /// because proxies rewrite Host and scheme.
    pub public_url: String,
    /// The path webhooks arrive on; status callbacks use `{webhook_path}/status/{message id}`.
    pub webhook_path: String,
    /// Total timeout of one REST call (connect, send, response).
    pub request_timeout: Duration,
}

impl Default for TwilioConfig {
    fn default() -> Self {
        Self {
            api_base: DEFAULT_API_BASE.to_owned(),
            content_api_base: DEFAULT_CONTENT_API_BASE.to_owned(),
            messaging_api_base: DEFAULT_MESSAGING_API_BASE.to_owned(),
            public_url: String::new(),
            webhook_path: DEFAULT_WEBHOOK_PATH.to_owned(),
            request_timeout: Duration::from_secs(15),
        }
    }
}

/// The channel's own settings: flags (and environment variables) of `switchboard serve`,
/// which the server's wiring flattens into its configuration.
#[cfg(feature = "clap")]
#[derive(Clone, Debug, PartialEq, Eq, clap::Args)]
pub struct TwilioSettings {
    /// Twilio REST base URL.
    #[arg(long, env = "SWITCHBOARD_TWILIO_API_BASE", default_value = DEFAULT_API_BASE)]
    pub twilio_api_base: String,
    /// Twilio Content API base URL (interactive messages and locations on WhatsApp are sent
    /// as content resources created there).
    #[arg(
        long,
        env = "SWITCHBOARD_TWILIO_CONTENT_API_BASE",
        default_value = DEFAULT_CONTENT_API_BASE
    )]
    pub twilio_content_api_base: String,
    /// Twilio Messaging API (v2) base URL: WhatsApp typing indicators.
    #[arg(
        long,
        env = "SWITCHBOARD_TWILIO_MESSAGING_API_BASE",
        default_value = DEFAULT_MESSAGING_API_BASE
    )]
    pub twilio_messaging_api_base: String,
}

#[cfg(feature = "clap")]
impl TwilioSettings {
    /// The adapter's configuration: these settings, with the server's public URL (which
    /// Twilio's signatures cover).
    pub fn config(&self, common: &CommonSettings) -> TwilioConfig {
        TwilioConfig {
            api_base: self.twilio_api_base.clone(),
            content_api_base: self.twilio_content_api_base.clone(),
            messaging_api_base: self.twilio_messaging_api_base.clone(),
            public_url: common.public_url.clone(),
            ..TwilioConfig::default()
        }
    }

    /// The SMS adapter's configuration: [`Self::config`] with the SMS webhook path.
    pub fn sms_config(&self, common: &CommonSettings) -> TwilioConfig {
        TwilioConfig {
            webhook_path: DEFAULT_SMS_WEBHOOK_PATH.to_owned(),
            ..self.config(common)
        }
    }
}

impl TwilioConfig {
    /// `api_base` without a trailing slash.
    pub(crate) fn api_base(&self) -> &str {
        self.api_base.trim_end_matches('/')
    }

    /// `content_api_base` without a trailing slash.
    pub(crate) fn content_api_base(&self) -> &str {
        self.content_api_base.trim_end_matches('/')
    }

    /// `messaging_api_base` without a trailing slash.
    pub(crate) fn messaging_api_base(&self) -> &str {
        self.messaging_api_base.trim_end_matches('/')
    }

    /// `public_url` without a trailing slash.
    pub(crate) fn public_base(&self) -> &str {
        self.public_url.trim_end_matches('/')
    }

    /// `webhook_path` with exactly one leading slash and no trailing slash.
    pub(crate) fn webhook_path(&self) -> String {
        let p = self.webhook_path.trim_matches('/');
        format!("/{p}")
    }

    /// The status callback URL for one outbound message.
    pub fn status_callback_url(&self, message_id: &str) -> String {
        format!(
            "{}{}/status/{}",
            self.public_base(),
            self.webhook_path(),
            percent_encode_segment(message_id)
        )
    }

    /// Switchboard's message id from a status callback path `{webhook_path}/status/{id}`.
    pub fn message_ref(&self, path: &str) -> Option<String> {
        let prefix = format!("{}/status/", self.webhook_path());
        let id = path.strip_prefix(prefix.as_str())?;
        if id.is_empty() || id.contains('/') {
            return None;
        }
        percent_decode(id)
    }

    /// The URL Twilio signed for a request with this raw path and query.
    pub fn signed_url(&self, raw_path: &str, raw_query: Option<&str>) -> String {
        match raw_query {
            Some(q) => format!("{}{raw_path}?{q}", self.public_base()),
            None => format!("{}{raw_path}", self.public_base()),
        }
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters (for one path segment).
pub(crate) fn percent_encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decodes `%XX` escapes; `None` on a malformed escape or invalid UTF-8.
pub(crate) fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The account SID and auth token an account's credentials must hold.
pub(crate) fn credentials(account: &AccountContext) -> Result<(&str, &str), ChannelError> {
    let sid = account.credentials.require(CRED_ACCOUNT_SID)?;
    let token = account.credentials.require(CRED_AUTH_TOKEN)?;
    Ok((sid, token))
}

/// The account's Messaging Service SID, when it sends through one.
pub(crate) fn messaging_service(account: &AccountContext) -> Option<&str> {
    account
        .credentials
        .get(CRED_MESSAGING_SERVICE_SID)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// Whether `s` is a Messaging Service SID: `MG` and 32 hexadecimal digits.
pub(crate) fn is_messaging_service_sid(s: &str) -> bool {
    s.len() == 34 && s.starts_with("MG") && s[2..].bytes().all(|b| b.is_ascii_hexdigit())
}

/// Whether `s` is a Twilio SID of the given prefix (`AC`, `SM`, …): safe in a URL path.
pub(crate) fn is_sid(s: &str, prefix: &str) -> bool {
    s.len() == 34 && s.starts_with(prefix) && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_joined_without_double_slashes() {
        let c = TwilioConfig {
            public_url: "https://sb.example.com/".into(),
            webhook_path: "webhooks/twilio-whatsapp/".into(),
            ..TwilioConfig::default()
        };
        assert_eq!(
            c.status_callback_url("msg 1/2"),
            "https://sb.example.com/webhooks/twilio-whatsapp/status/msg%201%2F2"
        );
        assert_eq!(
            c.signed_url("/webhooks/twilio-whatsapp", Some("a=1")),
            "https://sb.example.com/webhooks/twilio-whatsapp?a=1"
        );
        assert_eq!(c.signed_url("/x", None), "https://sb.example.com/x");
        assert_eq!(
            TwilioConfig::default().request_timeout,
            Duration::from_secs(15)
        );
    }

    #[cfg(feature = "clap")]
    #[test]
    fn settings_are_flags_with_the_contract_names_and_defaults() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            twilio: TwilioSettings,
        }
        let common = CommonSettings::new("https://sb.example.com");
        let config = Cli::parse_from(["x"]).twilio.config(&common);
        assert_eq!(config.api_base, DEFAULT_API_BASE);
        assert_eq!(config.public_url, "https://sb.example.com");
        assert_eq!(config.content_api_base, DEFAULT_CONTENT_API_BASE);
        assert_eq!(config.content_api_base, "https://content.twilio.com");
        assert_eq!(config.messaging_api_base, "https://messaging.twilio.com");
        let parsed = Cli::parse_from([
            "x",
            "--twilio-api-base",
            "http://127.0.0.1:9",
            "--twilio-content-api-base",
            "http://127.0.0.1:8",
            "--twilio-messaging-api-base",
            "http://127.0.0.1:7",
        ]);
        let config = parsed.twilio.config(&common);
        assert_eq!(config.api_base, "http://127.0.0.1:9");
        assert_eq!(config.content_api_base, "http://127.0.0.1:8");
        assert_eq!(config.messaging_api_base, "http://127.0.0.1:7");
        assert_eq!(
            parsed.twilio.sms_config(&common).content_api_base,
            "http://127.0.0.1:8"
        );
        let command = <Cli as clap::CommandFactory>::command();
        for (flag, env) in [
            ("twilio-api-base", "SWITCHBOARD_TWILIO_API_BASE"),
            (
                "twilio-content-api-base",
                "SWITCHBOARD_TWILIO_CONTENT_API_BASE",
            ),
            (
                "twilio-messaging-api-base",
                "SWITCHBOARD_TWILIO_MESSAGING_API_BASE",
            ),
        ] {
            let arg = command
                .get_arguments()
                .find(|a| a.get_long() == Some(flag))
                .unwrap();
            assert_eq!(arg.get_env().and_then(|e| e.to_str()), Some(env));
        }
    }

    #[test]
    fn message_ref_paths() {
        let c = TwilioConfig::default();
        assert_eq!(
            c.message_ref("/webhooks/twilio-whatsapp/status/abc")
                .as_deref(),
            Some("abc")
        );
        assert_eq!(
            c.message_ref("/webhooks/twilio-whatsapp/status/")
                .as_deref(),
            None
        );
        assert_eq!(c.message_ref("/webhooks/twilio-whatsapp/status/a/b"), None);
        assert_eq!(c.message_ref("/webhooks/twilio-whatsapp/status/%zz"), None);
        assert_eq!(c.message_ref("/webhooks/twilio-whatsapp/status/%+1"), None);
        assert_eq!(c.message_ref("/webhooks/twilio-whatsapp"), None);
        assert_eq!(
            percent_decode(&percent_encode_segment("a b/é~")).as_deref(),
            Some("a b/é~")
        );
    }
}

//! Adapter configuration (as `switchboard serve` flags behind the `clap` feature) and the
//! static facts about the channel (its id, capabilities, credential names).

use std::time::Duration;

#[cfg(feature = "clap")]
use switchboard_core::CommonSettings;
use switchboard_core::{
    Capabilities, ChannelId, CredentialField, InteractiveType, MediaKind, Pacing,
};

/// This channel's id.
pub static CHANNEL: ChannelId = ChannelId::new_static("meta-whatsapp");

/// Credential: the business number's Graph id; also the account's routing key.
pub const CRED_PHONE_NUMBER_ID: &str = "phone_number_id";
/// Credential: a system-user or business token, sent as `Authorization: Bearer`.
pub const CRED_ACCESS_TOKEN: &str = "access_token";
/// Credential: the Meta app secret, the HMAC key of `X-Hub-Signature-256`.
pub const CRED_APP_SECRET: &str = "app_secret";
/// Credential: the string Meta echoes in the subscription handshake.
pub const CRED_VERIFY_TOKEN: &str = "verify_token";
/// Credential (optional): the WhatsApp Business Account id that owns the number, where its
/// templates live (meta.md §13.3); learned from the account's webhooks when not given.
pub const CRED_WABA_ID: &str = "waba_id";

/// The credentials an account is connected with.
pub const CREDENTIAL_FIELDS: &[CredentialField] = &[
    CredentialField {
        name: CRED_PHONE_NUMBER_ID,
        secret: false,
        required: true,
        description: "the business number's Graph id: digits, not the number (WhatsApp Manager, Phone numbers)",
    },
    CredentialField {
        name: CRED_ACCESS_TOKEN,
        secret: true,
        required: true,
        description: "a system-user or business access token, sent as Authorization: Bearer",
    },
    CredentialField {
        name: CRED_APP_SECRET,
        secret: true,
        required: true,
        description: "the Meta app's secret, the key of X-Hub-Signature-256",
    },
    CredentialField {
        name: CRED_VERIFY_TOKEN,
        secret: true,
        required: true,
        description: "the verify token entered in the app's webhook settings, echoed in the subscription handshake",
    },
    CredentialField {
        name: CRED_WABA_ID,
        secret: false,
        required: false,
        description: "the WhatsApp Business Account id (digits) whose templates the number sends; learned from its webhooks when not given",
    },
];

/// The default Graph API base.
pub const DEFAULT_GRAPH_BASE: &str = "https://graph.facebook.com";
/// The default Graph API version.
pub const DEFAULT_API_VERSION: &str = "v25.0";

/// Where and how the adapter talks to the Graph API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetaConfig {
    /// Scheme and host, no trailing slash (tests point it at a `FakeGraph`).
    pub graph_base: String,
    /// The Graph API version path segment, e.g. `v25.0`.
    pub api_version: String,
    /// Whole-request timeout for every Graph call.
    pub request_timeout: Duration,
}

impl Default for MetaConfig {
    fn default() -> Self {
        Self {
            graph_base: DEFAULT_GRAPH_BASE.to_owned(),
            api_version: DEFAULT_API_VERSION.to_owned(),
            request_timeout: Duration::from_secs(15),
        }
    }
}

/// The channel's own settings: flags (and environment variables) of `switchboard serve`,
/// which the server's wiring flattens into its configuration.
#[cfg(feature = "clap")]
#[derive(Clone, Debug, PartialEq, Eq, clap::Args)]
pub struct MetaSettings {
    /// Meta Graph API base URL.
    #[arg(long, env = "SWITCHBOARD_META_GRAPH_BASE", default_value = DEFAULT_GRAPH_BASE)]
    pub meta_graph_base: String,
    /// Meta Graph API version.
    #[arg(long, env = "SWITCHBOARD_META_API_VERSION", default_value = DEFAULT_API_VERSION)]
    pub meta_api_version: String,
}

#[cfg(feature = "clap")]
impl MetaSettings {
    /// The adapter's configuration. Nothing of the server's common settings is needed:
    /// Meta's signatures cover the body only.
    pub fn config(&self, _common: &CommonSettings) -> MetaConfig {
        MetaConfig {
            graph_base: self.meta_graph_base.clone(),
            api_version: self.meta_api_version.clone(),
            ..MetaConfig::default()
        }
    }
}

impl MetaConfig {
    /// `{graph_base}/{api_version}/{node}`; `node` must already be validated (digits).
    pub(crate) fn node_url(&self, node: &str) -> String {
        format!(
            "{}/{}/{node}",
            self.graph_base.trim_end_matches('/'),
            self.api_version.trim_matches('/')
        )
    }

    /// The send and mark-as-read endpoint of a phone number.
    pub(crate) fn messages_url(&self, phone_number_id: &str) -> String {
        format!("{}/messages", self.node_url(phone_number_id))
    }
}

const MEDIA_KINDS: &[MediaKind] = &[
    MediaKind::Image,
    MediaKind::Video,
    MediaKind::Audio,
    MediaKind::Document,
    MediaKind::Sticker,
];

/// What the Cloud API carries.
pub(crate) fn capabilities() -> Capabilities {
    Capabilities {
        max_text_chars: 4096,
        max_caption_chars: 1024,
        max_media_per_message: 1,
        media_kinds: MEDIA_KINDS,
        templates: true,
        template_components: true,
        interactive: &InteractiveType::ALL,
        contacts: true,
        reactions: true,
        locations: true,
        reply_context: true,
        // The `recipient` field (protocols/meta.md §12.1).
        send_to_bsuid: true,
        read_receipts: true,
        typing_indicator: true,
        default_rate_per_second: 80,
        // "1 message every 6 seconds to the same WhatsApp user", bursts of 45.
        recipient_pacing: Some(Pacing {
            interval: Duration::from_secs(6),
            burst: 45,
        }),
        // The customer-service window: free-form messages only within 24 hours of the
        // user's last message.
        service_window: Some(Duration::from_secs(24 * 60 * 60)),
    }
}

/// Whether `s` is a plausible Graph node id (non-empty ASCII digits), safe to put in a path.
pub(crate) fn is_graph_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 32 && s.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MetaCloud;
    use switchboard_core::{ChannelAdapter, PhoneNumber};

    #[test]
    fn declares_its_credentials_signature_header_and_service_window() {
        let a = MetaCloud::default();
        let fields: Vec<_> = a
            .credential_fields()
            .iter()
            .map(|f| (f.name, f.secret, f.required))
            .collect();
        assert_eq!(
            fields,
            [
                ("phone_number_id", false, true),
                ("access_token", true, true),
                ("app_secret", true, true),
                ("verify_token", true, true),
                ("waba_id", false, false),
            ]
        );
        assert_eq!(a.sensitive_headers(), ["x-hub-signature-256"]);
        assert_eq!(
            a.capabilities().service_window,
            Some(Duration::from_secs(24 * 60 * 60))
        );
        // What connect_account requires is what is declared required.
        let addr = PhoneNumber::parse("+14155238886").unwrap();
        let complete = serde_json::json!({"phone_number_id": "106540352242922",
            "access_token": "EAAG", "app_secret": "s", "verify_token": "v"});
        assert!(a.connect_account(&addr, &complete).is_ok());
        for field in a.credential_fields().iter().filter(|f| f.required) {
            let mut creds = complete.clone();
            creds.as_object_mut().unwrap().remove(field.name);
            assert!(a.connect_account(&addr, &creds).is_err(), "{}", field.name);
        }
        // The optional WABA id is digits, trimmed.
        let mut with_waba = complete.clone();
        with_waba["waba_id"] = serde_json::json!(" 102290129340398 ");
        let setup = a.connect_account(&addr, &with_waba).unwrap();
        assert_eq!(setup.credentials.get("waba_id"), Some("102290129340398"));
        with_waba["waba_id"] = serde_json::json!("my-waba");
        let refused = a.connect_account(&addr, &with_waba).unwrap_err();
        assert!(
            refused.message().contains("waba_id"),
            "{}",
            refused.message()
        );
    }

    #[cfg(feature = "clap")]
    #[test]
    fn settings_are_flags_with_the_contract_names_and_defaults() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            meta: MetaSettings,
        }
        let common = CommonSettings::default();
        assert_eq!(
            Cli::parse_from(["x"]).meta.config(&common),
            MetaConfig::default()
        );
        let parsed = Cli::parse_from([
            "x",
            "--meta-graph-base",
            "http://127.0.0.1:9",
            "--meta-api-version",
            "v1.0",
        ]);
        let config = parsed.meta.config(&common);
        assert_eq!(config.graph_base, "http://127.0.0.1:9");
        assert_eq!(config.api_version, "v1.0");
        let command = <Cli as clap::CommandFactory>::command();
        let env = |long: &str| {
            command
                .get_arguments()
                .find(|a| a.get_long() == Some(long))
                .and_then(|a| a.get_env())
                .and_then(|e| e.to_str())
                .map(str::to_owned)
        };
        assert_eq!(
            env("meta-graph-base").as_deref(),
            Some("SWITCHBOARD_META_GRAPH_BASE")
        );
        assert_eq!(
            env("meta-api-version").as_deref(),
            Some("SWITCHBOARD_META_API_VERSION")
        );
    }
}

//! Adapter configuration and the static facts about the channel (its id, capabilities,
//! credential names).

use std::time::Duration;

use switchboard_core::{Capabilities, ChannelId, MediaKind, Pacing};

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
            graph_base: "https://graph.facebook.com".to_owned(),
            api_version: "v25.0".to_owned(),
            request_timeout: Duration::from_secs(15),
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
        reactions: true,
        locations: true,
        reply_context: true,
        // The send-side BSUID field is not confirmed in Meta's reference.
        send_to_bsuid: false,
        default_rate_per_second: 80,
        // "1 message every 6 seconds to the same WhatsApp user", bursts of 45.
        recipient_pacing: Some(Pacing {
            interval: Duration::from_secs(6),
            burst: 45,
        }),
    }
}

/// Whether `s` is a plausible Graph node id (non-empty ASCII digits), safe to put in a path.
pub(crate) fn is_graph_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 32 && s.bytes().all(|b| b.is_ascii_digit())
}

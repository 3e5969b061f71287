//! Adapter configuration: where Twilio's API is and where Twilio reaches us.

use std::time::Duration;

/// The default Twilio REST API base.
pub const DEFAULT_API_BASE: &str = "https://api.twilio.com";
/// The default path the router serves Twilio webhooks on.
pub const DEFAULT_WEBHOOK_PATH: &str = "/webhooks/twilio-whatsapp";

/// How the adapter reaches Twilio and how Twilio reaches the router.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TwilioConfig {
    /// Twilio's REST API base, without a trailing slash (tests point it at `FakeTwilio`).
    pub api_base: String,
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
            public_url: String::new(),
            webhook_path: DEFAULT_WEBHOOK_PATH.to_owned(),
            request_timeout: Duration::from_secs(15),
        }
    }
}

impl TwilioConfig {
    /// `api_base` without a trailing slash.
    pub(crate) fn api_base(&self) -> &str {
        self.api_base.trim_end_matches('/')
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
            crate::webhook::percent_encode_segment(message_id)
        )
    }

    /// The URL Twilio signed for a request with this raw path and query.
    pub fn signed_url(&self, raw_path: &str, raw_query: Option<&str>) -> String {
        match raw_query {
            Some(q) => format!("{}{raw_path}?{q}", self.public_base()),
            None => format!("{}{raw_path}", self.public_base()),
        }
    }
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
}

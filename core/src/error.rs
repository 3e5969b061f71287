//! One error taxonomy for every channel, in the style of lettre and reqwest: an opaque error
//! with predicates. The router decides retry, wait or fail by asking the error
//! (`is_transient`, `is_rate_limited`, `is_ambiguous`, `is_permanent`, `retry_after`), never
//! by matching provider codes; the adapters own their code tables.

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// What kind of failure a [`ChannelError`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorKind {
    /// Retry later with backoff (connection failure before the request was sent, 503, a
    /// provider code documented as temporary).
    Transient,
    /// Retry after the provider's `retry_after`, or with backoff when it gave none.
    RateLimited,
    /// The request may have been processed (a 5xx or a timeout after it was sent): resending
    /// blindly could deliver the message twice.
    Ambiguous,
    /// Never retry this message (bad number, rejected template, …).
    Permanent,
    /// Never retry on this channel: the recipient cannot be reached on it (not a user of
    /// the channel, number not active there). Another channel may reach them, so the
    /// router falls back to the message's next channel when it has one.
    Unreachable,
    /// Free-form content outside the channel's customer-service window: send a template.
    OutsideWindow,
    /// The recipient opted out of messages from this sender.
    OptedOut,
    /// The account's credentials were refused: fix the account, then retry.
    Auth,
    /// Switchboard refused the request before sending it (too long, wrong media, …).
    Invalid,
    /// The adapter cannot do this.
    Unsupported,
}

impl ErrorKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Transient => "transient",
            Self::RateLimited => "rate_limited",
            Self::Ambiguous => "ambiguous",
            Self::Permanent => "permanent",
            Self::Unreachable => "unreachable",
            Self::OutsideWindow => "outside_service_window",
            Self::OptedOut => "opted_out",
            Self::Auth => "auth",
            Self::Invalid => "invalid",
            Self::Unsupported => "unsupported",
        }
    }
}

impl ErrorKind {
    /// Whether another channel may deliver what this kind of failure refused: the recipient
    /// is unreachable here ([`Self::Unreachable`]) or the window is closed
    /// ([`Self::OutsideWindow`]).
    pub const fn reachable_elsewhere(self) -> bool {
        matches!(self, Self::Unreachable | Self::OutsideWindow)
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One HTTP exchange with a provider, secrets already redacted by the adapter, kept with a
/// send attempt so a failed send is never a mystery.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Exchange {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    /// The request as sent, secrets redacted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<serde_json::Value>,
    /// The response body (JSON when it was JSON, else a string), truncated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<serde_json::Value>,
}

impl Exchange {
    /// Longest non-JSON response text kept, in characters.
    pub const MAX_RAW_RESPONSE: usize = 4096;

    /// A provider's response body as [`Exchange::response`] keeps it: the JSON when it
    /// parses, else the text (lossy UTF-8), cut at [`Exchange::MAX_RAW_RESPONSE`]
    /// characters and marked `…[truncated]` when cut.
    pub fn response_body(body: &[u8]) -> serde_json::Value {
        serde_json::from_slice(body).unwrap_or_else(|_| {
            let text = String::from_utf8_lossy(body);
            let mut kept: String = text.chars().take(Self::MAX_RAW_RESPONSE).collect();
            if text.chars().count() > Self::MAX_RAW_RESPONSE {
                kept.push_str("…[truncated]");
            }
            serde_json::Value::String(kept)
        })
    }
}

/// An error from a channel adapter.
pub struct ChannelError {
    inner: Box<Inner>,
}

struct Inner {
    kind: ErrorKind,
    message: String,
    provider_code: Option<String>,
    retry_after: Option<Duration>,
    exchange: Option<Exchange>,
    source: Option<BoxError>,
}

impl ChannelError {
    /// An error of `kind` with a human-readable message.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            inner: Box::new(Inner {
                kind,
                message: message.into(),
                provider_code: None,
                retry_after: None,
                exchange: None,
                source: None,
            }),
        }
    }

    pub fn transient(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Transient, message)
    }

    pub fn rate_limited(message: impl Into<String>, retry_after: Option<Duration>) -> Self {
        Self::new(ErrorKind::RateLimited, message).with_retry_after(retry_after)
    }

    pub fn ambiguous(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Ambiguous, message)
    }

    pub fn permanent(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Permanent, message)
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Invalid, message)
    }

    pub fn unsupported(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unsupported, message)
    }

    /// Keeps the provider's own error code (Twilio `21211`, Meta `131047`).
    #[must_use]
    pub fn with_provider_code(mut self, code: impl Into<String>) -> Self {
        self.inner.provider_code = Some(code.into());
        self
    }

    #[must_use]
    pub fn with_retry_after(mut self, retry_after: Option<Duration>) -> Self {
        self.inner.retry_after = retry_after;
        self
    }

    #[must_use]
    pub fn with_exchange(mut self, exchange: Exchange) -> Self {
        self.inner.exchange = Some(exchange);
        self
    }

    #[must_use]
    pub fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.inner.source = Some(source.into());
        self
    }

    pub fn kind(&self) -> ErrorKind {
        self.inner.kind
    }

    pub fn message(&self) -> &str {
        &self.inner.message
    }

    pub fn provider_code(&self) -> Option<&str> {
        self.inner.provider_code.as_deref()
    }

    /// How long the provider asked us to wait, when it said.
    pub fn retry_after(&self) -> Option<Duration> {
        self.inner.retry_after
    }

    pub fn exchange(&self) -> Option<&Exchange> {
        self.inner.exchange.as_ref()
    }

    /// Takes the exchange out (to store it) without cloning.
    pub fn take_exchange(&mut self) -> Option<Exchange> {
        self.inner.exchange.take()
    }

    /// Safe to retry with backoff: the provider did not process the request.
    pub fn is_transient(&self) -> bool {
        matches!(
            self.inner.kind,
            ErrorKind::Transient | ErrorKind::RateLimited
        )
    }

    pub fn is_rate_limited(&self) -> bool {
        self.inner.kind == ErrorKind::RateLimited
    }

    /// The provider may have processed the request; do not resend blindly.
    pub fn is_ambiguous(&self) -> bool {
        self.inner.kind == ErrorKind::Ambiguous
    }

    /// Retrying this message cannot help.
    pub fn is_permanent(&self) -> bool {
        !self.is_transient() && !self.is_ambiguous()
    }

    pub fn is_auth(&self) -> bool {
        self.inner.kind == ErrorKind::Auth
    }

    /// The recipient cannot be reached on this channel (see [`ErrorKind::Unreachable`]).
    pub fn is_unreachable(&self) -> bool {
        self.inner.kind == ErrorKind::Unreachable
    }

    /// Another channel may deliver what this one refused: the recipient is unreachable
    /// here, or the channel's service window is closed. The router's fallback asks this.
    pub fn reachable_elsewhere(&self) -> bool {
        self.inner.kind.reachable_elsewhere()
    }

    pub fn is_outside_window(&self) -> bool {
        self.inner.kind == ErrorKind::OutsideWindow
    }

    pub fn is_opted_out(&self) -> bool {
        self.inner.kind == ErrorKind::OptedOut
    }
}

impl fmt::Debug for ChannelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("ChannelError");
        d.field("kind", &self.inner.kind)
            .field("message", &self.inner.message);
        if let Some(code) = &self.inner.provider_code {
            d.field("provider_code", code);
        }
        if let Some(ra) = &self.inner.retry_after {
            d.field("retry_after", ra);
        }
        if let Some(src) = &self.inner.source {
            d.field("source", src);
        }
        d.finish()
    }
}

impl fmt::Display for ChannelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.inner.kind, self.inner.message)?;
        if let Some(code) = &self.inner.provider_code {
            write!(f, " (provider code {code})")?;
        }
        Ok(())
    }
}

impl StdError for ChannelError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.inner
            .source
            .as_ref()
            .map(|e| e.as_ref() as &(dyn StdError + 'static))
    }
}

/// Why a webhook was refused. Each maps to the HTTP status api.md fixes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookError {
    #[error("the signature header is missing")]
    MissingSignature,
    #[error("the signature does not match")]
    BadSignature,
    #[error("the body is not a valid {channel} webhook: {detail}")]
    Malformed {
        channel: &'static str,
        detail: String,
    },
    #[error("no connected account owns this webhook")]
    UnknownAccount,
}

impl WebhookError {
    pub fn malformed(channel: &'static str, detail: impl Into<String>) -> Self {
        Self::Malformed {
            channel,
            detail: detail.into(),
        }
    }

    /// The HTTP status to answer with: 403, 400 or 404.
    pub fn http_status(&self) -> u16 {
        match self {
            Self::MissingSignature | Self::BadSignature => 403,
            Self::Malformed { .. } => 400,
            Self::UnknownAccount => 404,
        }
    }
}

/// `err` followed by each of its sources, joined with ": " ("error sending request: client
/// error (Connect): dns error: failed to lookup address information: …"). HTTP clients
/// put the cause (DNS, refused connection, TLS) in the source chain and print only the top
/// error: without the chain an operator reads "error sending request" and nothing else.
/// A source whose text its parent already shows is skipped.
pub fn error_with_sources(err: &(dyn StdError + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !cause_text.is_empty() && !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// A `Retry-After` header in whole seconds, the form providers send; the HTTP-date form
/// and anything unreadable count as absent, so the caller falls back to its backoff.
pub fn retry_after_header(headers: &http::HeaderMap) -> Option<Duration> {
    headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Layer(&'static str, Option<Box<Layer>>);

    impl fmt::Display for Layer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
    }

    impl StdError for Layer {
        fn source(&self) -> Option<&(dyn StdError + 'static)> {
            self.1.as_deref().map(|l| l as &(dyn StdError + 'static))
        }
    }

    #[test]
    fn response_bodies_are_json_or_cut_text() {
        assert_eq!(
            Exchange::response_body(br#"{"code": 1}"#),
            serde_json::json!({"code": 1})
        );
        assert_eq!(
            Exchange::response_body(b"<html>busy</html>"),
            serde_json::json!("<html>busy</html>")
        );
        let exact = "é".repeat(Exchange::MAX_RAW_RESPONSE);
        assert_eq!(
            Exchange::response_body(exact.as_bytes()),
            serde_json::json!(exact)
        );
        let long = "é".repeat(Exchange::MAX_RAW_RESPONSE + 1);
        let serde_json::Value::String(kept) = Exchange::response_body(long.as_bytes()) else {
            panic!("text must stay a string");
        };
        assert_eq!(kept, format!("{exact}…[truncated]"));
        assert_eq!(
            Exchange::response_body(&[0xff, b'a']),
            serde_json::json!("\u{fffd}a")
        );
    }

    #[test]
    fn retry_after_header_reads_whole_seconds_only() {
        let with = |value: &str| {
            let mut headers = http::HeaderMap::new();
            headers.insert(
                http::header::RETRY_AFTER,
                http::HeaderValue::from_str(value).unwrap(),
            );
            retry_after_header(&headers)
        };
        assert_eq!(with("7"), Some(Duration::from_secs(7)));
        assert_eq!(with(" 30 "), Some(Duration::from_secs(30)));
        assert_eq!(with("0"), Some(Duration::ZERO));
        assert_eq!(with("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(with("-1"), None);
        assert_eq!(with("1.5"), None);
        assert_eq!(retry_after_header(&http::HeaderMap::new()), None);
    }

    #[test]
    fn an_error_is_shown_with_its_causes() {
        let err = Layer(
            "error sending request",
            Some(Box::new(Layer(
                "client error (Connect)",
                Some(Box::new(Layer(
                    "dns error",
                    Some(Box::new(Layer("Name or service not known", None))),
                ))),
            ))),
        );
        assert_eq!(
            error_with_sources(&err),
            "error sending request: client error (Connect): dns error: Name or service not known"
        );
        // A cause its parent already prints is not repeated.
        let err = Layer(
            "timed out: operation timed out",
            Some(Box::new(Layer("operation timed out", None))),
        );
        assert_eq!(error_with_sources(&err), "timed out: operation timed out");
    }

    #[test]
    fn predicates_partition_the_kinds() {
        let t = ChannelError::transient("503");
        assert!(t.is_transient() && !t.is_permanent() && !t.is_ambiguous());
        let r = ChannelError::rate_limited("429", Some(Duration::from_secs(3)));
        assert!(r.is_transient() && r.is_rate_limited());
        assert_eq!(r.retry_after(), Some(Duration::from_secs(3)));
        let a = ChannelError::ambiguous("500 on create");
        assert!(a.is_ambiguous() && !a.is_transient() && !a.is_permanent());
        let p = ChannelError::permanent("bad number").with_provider_code("21211");
        assert!(p.is_permanent() && !p.is_transient());
        assert_eq!(p.provider_code(), Some("21211"));
        assert_eq!(p.to_string(), "permanent: bad number (provider code 21211)");
        let w = ChannelError::new(ErrorKind::OutsideWindow, "template needed");
        assert!(w.is_permanent() && w.is_outside_window() && w.reachable_elsewhere());
        let u = ChannelError::new(ErrorKind::Unreachable, "not on WhatsApp");
        assert!(u.is_permanent() && u.is_unreachable() && u.reachable_elsewhere());
        assert!(!p.reachable_elsewhere() && !t.reachable_elsewhere());
        assert!(!ChannelError::new(ErrorKind::Auth, "401").reachable_elsewhere());
    }

    #[test]
    fn source_chain_is_kept() {
        let io = std::io::Error::new(std::io::ErrorKind::TimedOut, "timed out");
        let e = ChannelError::transient("connect").with_source(io);
        assert!(e.source().is_some());
    }

    #[test]
    fn webhook_errors_map_to_statuses() {
        assert_eq!(WebhookError::BadSignature.http_status(), 403);
        assert_eq!(WebhookError::MissingSignature.http_status(), 403);
        assert_eq!(WebhookError::malformed("meta", "x").http_status(), 400);
        assert_eq!(WebhookError::UnknownAccount.http_status(), 404);
    }
}

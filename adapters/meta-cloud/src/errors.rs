//! Meta's error codes → [`ChannelError`], and transport failures.
//!
//! Classification is by the envelope's `error.code`, never by HTTP status or message text:
//! Meta says so, and the same code arrives with different statuses over time.

use std::time::Duration;

use serde_json::Value;
use switchboard_core::{ChannelError, ErrorKind, Exchange};

use crate::wire;

/// The class of a Graph error code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Class {
    Auth,
    RateLimited,
    /// 131056: too many messages to one recipient; back off for that pair only.
    PairRateLimited,
    Transient,
    OutsideWindow,
    OptedOut,
    /// The recipient cannot be reached on WhatsApp: another channel may reach them.
    Unreachable,
    Permanent,
}

/// The class of a Graph error code; unknown codes are permanent (never retry blindly).
pub(crate) fn classify_code(code: u64) -> Class {
    match code {
        0 | 190 => Class::Auth,
        4 | 80007 | 130429 => Class::RateLimited,
        131056 => Class::PairRateLimited,
        1 | 2 | 131000 | 131016 | 131057 | 133004 => Class::Transient,
        131047 => Class::OutsideWindow,
        131050 => Class::OptedOut,
        // "Unable to deliver message": not a WhatsApp number, terms not accepted, old app.
        131026 => Class::Unreachable,
        // 131062: an authentication template sent to a BSUID; they go to phone numbers only
        // (protocols/meta.md §12.1). Sending it again to the BSUID fails again.
        131062 => Class::Permanent,
        // 131021, 131008, 131009, 132000–132016, 100, 130472, 130497, 131051,
        // 131053 and everything undocumented.
        _ => Class::Permanent,
    }
}

/// What the error code of a `failed` status means: the class of the same table as kinds.
pub(crate) fn status_error_kind(code: &str) -> ErrorKind {
    match code
        .trim()
        .parse::<u64>()
        .map_or(Class::Permanent, classify_code)
    {
        Class::Auth => ErrorKind::Auth,
        Class::RateLimited | Class::PairRateLimited => ErrorKind::RateLimited,
        Class::Transient => ErrorKind::Transient,
        Class::OutsideWindow => ErrorKind::OutsideWindow,
        Class::OptedOut => ErrorKind::OptedOut,
        Class::Unreachable => ErrorKind::Unreachable,
        Class::Permanent => ErrorKind::Permanent,
    }
}

/// A readable one-line summary of a Graph error (code, message, details, subcode, trace id).
pub(crate) fn describe(e: &wire::GraphError) -> String {
    let mut s = format!(
        "Meta error {}: {}",
        e.code.as_deref().unwrap_or("unknown"),
        e.message.as_deref().unwrap_or("(no message)")
    );
    if let Some(d) = e.error_data.as_ref().and_then(|d| d.details.as_deref()) {
        s.push_str(" — ");
        s.push_str(d);
    }
    if let Some(sub) = &e.error_subcode {
        s.push_str(&format!(" [subcode {sub}]"));
    }
    if let Some(t) = &e.fbtrace_id {
        s.push_str(&format!(" [fbtrace_id {t}]"));
    }
    s
}

/// The error for a Graph error envelope.
pub(crate) fn from_graph_error(
    e: &wire::GraphError,
    retry_after: Option<Duration>,
    exchange: Exchange,
) -> ChannelError {
    let text = describe(e);
    let code_str = e.code.clone().unwrap_or_else(|| "unknown".to_owned());
    let class = e
        .code
        .as_deref()
        .and_then(|c| c.trim().parse::<u64>().ok())
        .map_or(Class::Permanent, classify_code);
    let err = match class {
        Class::Auth => ChannelError::new(ErrorKind::Auth, text),
        Class::RateLimited => ChannelError::rate_limited(text, retry_after),
        // Only this recipient is throttled; Meta asks for 4^X s backoff, not a fixed wait.
        Class::PairRateLimited => {
            ChannelError::rate_limited(format!("pair rate limit: {text}"), None)
        }
        Class::Transient => ChannelError::transient(text),
        Class::OutsideWindow => ChannelError::new(ErrorKind::OutsideWindow, text),
        Class::OptedOut => ChannelError::new(ErrorKind::OptedOut, text),
        Class::Unreachable => ChannelError::new(ErrorKind::Unreachable, text),
        Class::Permanent => ChannelError::permanent(text),
    };
    err.with_provider_code(code_str).with_exchange(exchange)
}

/// Parses a Graph error envelope from a response body.
pub(crate) fn graph_error(body: &[u8]) -> Option<wire::GraphError> {
    serde_json::from_slice::<wire::GraphErrorEnvelope>(body)
        .ok()
        .map(|env| env.error)
}

/// The error for a non-success response: by envelope code when there is one, else by
/// HTTP status.
pub(crate) fn from_response(
    status: u16,
    retry_after: Option<Duration>,
    body: &[u8],
    exchange: Exchange,
) -> ChannelError {
    if let Some(e) = graph_error(body) {
        return from_graph_error(&e, retry_after, exchange);
    }
    let err = match status {
        429 => ChannelError::rate_limited("HTTP 429 from the Graph API", retry_after),
        // The request reached Meta: it may have been processed.
        408 | 500..=599 => ChannelError::ambiguous(format!(
            "HTTP {status} from the Graph API without an error envelope"
        )),
        401 | 403 => ChannelError::new(
            ErrorKind::Auth,
            format!("HTTP {status} from the Graph API without an error envelope"),
        ),
        _ => ChannelError::permanent(format!(
            "HTTP {status} from the Graph API without an error envelope"
        )),
    };
    err.with_exchange(exchange)
}

/// The error for a request that got no response. The URL is stripped: it is ours, but
/// nothing about a request needs to travel into logs.
pub(crate) fn from_transport(e: reqwest::Error, request: Option<Value>) -> ChannelError {
    let exchange = Exchange {
        http_status: None,
        request,
        response: None,
    };
    let e = e.without_url();
    let cause = switchboard_core::error_with_sources(&e);
    let err = if e.is_connect() {
        // Nothing was sent.
        ChannelError::transient(format!("could not connect to the Graph API: {cause}"))
    } else if e.is_builder() {
        ChannelError::permanent(format!("could not build the Graph request: {cause}"))
    } else if e.is_timeout() {
        ChannelError::ambiguous(format!(
            "the Graph API did not answer in time; the message may have been sent: {cause}"
        ))
    } else {
        ChannelError::ambiguous(format!(
            "the Graph request failed after it was sent; the message may have been sent: {cause}"
        ))
    };
    err.with_exchange(exchange).with_source(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err_for(code: u64) -> ChannelError {
        let body = format!(
            r#"{{"error":{{"message":"(#{code}) x","type":"OAuthException","code":{code},"error_data":{{"messaging_product":"whatsapp","details":"d"}},"error_subcode":2494055,"fbtrace_id":"Az8"}}}}"#
        );
        from_response(400, None, body.as_bytes(), Exchange::default())
    }

    #[test]
    fn code_table() {
        for code in [0, 190] {
            assert!(err_for(code).is_auth(), "{code}");
        }
        for code in [4, 80007, 130429, 131056] {
            assert!(err_for(code).is_rate_limited(), "{code}");
        }
        for code in [1, 2, 131000, 131016, 131057, 133004] {
            let e = err_for(code);
            assert!(e.is_transient() && !e.is_rate_limited(), "{code}");
        }
        assert!(err_for(131047).is_outside_window());
        assert!(err_for(131050).is_opted_out());
        assert!(err_for(131026).is_unreachable());
        assert_eq!(status_error_kind("131026"), ErrorKind::Unreachable);
        assert_eq!(status_error_kind("131047"), ErrorKind::OutsideWindow);
        assert_eq!(status_error_kind("131021"), ErrorKind::Permanent);
        assert_eq!(status_error_kind("131000"), ErrorKind::Transient);
        assert_eq!(status_error_kind("131062"), ErrorKind::Permanent);
        let e = err_for(131062);
        assert!(e.is_permanent() && !e.is_transient() && !e.reachable_elsewhere());
        for code in [
            131021, 131008, 131009, 132000, 132001, 132016, 100, 130472, 130497, 131051, 131053,
            131049, 131062, 999_999,
        ] {
            let e = err_for(code);
            assert_eq!(e.kind(), ErrorKind::Permanent, "{code}");
        }
    }

    #[test]
    fn details_are_kept() {
        let e = err_for(131056);
        assert_eq!(e.provider_code(), Some("131056"));
        assert!(e.message().contains("pair rate limit"), "{}", e.message());
        assert!(e.message().contains("subcode 2494055"));
        assert!(e.message().contains("fbtrace_id Az8"));
        assert!(e.message().contains("— d"));
        assert_eq!(e.retry_after(), None);
    }

    #[test]
    fn without_envelope_the_status_decides() {
        let ra = Some(Duration::from_secs(7));
        let e = from_response(429, ra, b"slow down", Exchange::default());
        assert!(e.is_rate_limited());
        assert_eq!(e.retry_after(), ra);
        assert!(from_response(502, None, b"<html>", Exchange::default()).is_ambiguous());
        assert!(from_response(401, None, b"", Exchange::default()).is_auth());
        assert_eq!(
            from_response(404, None, b"", Exchange::default()).kind(),
            ErrorKind::Permanent
        );
        // The envelope beats the status: a 500 carrying 131000 is a plain transient error.
        let body = br#"{"error":{"code":131000,"message":"x"}}"#;
        assert_eq!(
            from_response(500, None, body, Exchange::default()).kind(),
            ErrorKind::Transient
        );
    }
}

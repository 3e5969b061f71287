//! Twilio's error codes and HTTP statuses, classified into [`ChannelError`] kinds.
//!
//! Sources: Twilio's error pages. The router never matches codes; it asks
//! the error's predicates, so this table is the only place Twilio codes mean anything.

use std::time::Duration;

use switchboard_core::{ChannelError, ErrorKind, Exchange};

use crate::wire::TwilioErrorBody;

/// The kind a Twilio error code always means, whatever the HTTP status; `None` when the
/// code is not in the table (the HTTP status decides).
pub fn classify_code(code: u32) -> Option<ErrorKind> {
    Some(match code {
        // Never processed, always safe to retry (20429 page); channel and account limits.
        20429 | 63017 | 63018 | 63038 => ErrorKind::RateLimited,
        // "Try again a few times with exponential back-off"; "Try sending the message again".
        20503 | 30500 => ErrorKind::Transient,
        // A POST that failed inside Twilio may still have been processed (20500 page).
        20500 => ErrorKind::Ambiguous,
        20003 => ErrorKind::Auth,
        21610 => ErrorKind::OptedOut,
        63016 => ErrorKind::OutsideWindow,
        // The recipient cannot be reached on this channel (63003: no such address on it, e.g.
        // not a WhatsApp user; 63024: invalid recipient, not on WhatsApp or terms not
        // accepted): another channel may reach them.
        63003 | 63024 => ErrorKind::Unreachable,
        // 21655: the ContentSid is invalid; 21656: the ContentVariables are (§9.4).
        21211 | 21408 | 21614 | 21617 | 21620 | 21655 | 21656 | 21658 | 63007 | 63014 | 63021
        | 63032 | 63049 => ErrorKind::Permanent,
        _ => return None,
    })
}

/// What the error code of a `failed`/`undelivered` status means (the codes arrive there
/// as on a create): the table's kind, `Permanent` for codes not in it.
pub fn status_error_kind(code: &str) -> ErrorKind {
    code.trim()
        .parse::<u32>()
        .ok()
        .and_then(classify_code)
        .unwrap_or(ErrorKind::Permanent)
}

/// The kind an HTTP status means when the code did not decide. `create` says whether the
/// request created something (a 5xx on a create may have sent the message).
pub fn classify_http(status: u16, create: bool) -> ErrorKind {
    match status {
        429 => ErrorKind::RateLimited,
        401 | 403 => ErrorKind::Auth,
        503 => ErrorKind::Transient,
        500..=599 if create => ErrorKind::Ambiguous,
        500..=599 => ErrorKind::Transient,
        400..=499 => ErrorKind::Permanent,
        // A 1xx/3xx or an unexpected 2xx: we cannot tell what happened.
        _ if create => ErrorKind::Ambiguous,
        _ => ErrorKind::Transient,
    }
}

/// Builds the error for a non-success response. Twilio's code (when the body has one) is
/// kept verbatim; `retry_after` comes from the `Retry-After` header.
pub fn error_from_response(
    http_status: u16,
    body: &TwilioErrorBody,
    retry_after: Option<Duration>,
    create: bool,
    exchange: Exchange,
) -> ChannelError {
    error_from_response_of("Twilio", http_status, body, retry_after, create, exchange)
}

/// [`error_from_response`] of one of Twilio's APIs, named `api` in the message (the
/// Content API and the Messaging API answer in the same error shape).
pub fn error_from_response_of(
    api: &str,
    http_status: u16,
    body: &TwilioErrorBody,
    retry_after: Option<Duration>,
    create: bool,
    exchange: Exchange,
) -> ChannelError {
    let kind = body
        .code
        .and_then(classify_code)
        // 20500 on a read is a plain server error.
        .map(|k| {
            if k == ErrorKind::Ambiguous && !create {
                ErrorKind::Transient
            } else {
                k
            }
        })
        .unwrap_or_else(|| classify_http(http_status, create));
    let what = body.message.as_deref().unwrap_or("no error message");
    let message = match body.code {
        Some(code) => format!("{api} answered HTTP {http_status}, error {code}: {what}"),
        None => format!("{api} answered HTTP {http_status}: {what}"),
    };
    let mut err = ChannelError::new(kind, message).with_exchange(exchange);
    if kind == ErrorKind::RateLimited {
        err = err.with_retry_after(retry_after);
    }
    if let Some(code) = body.code {
        err = err.with_provider_code(code.to_string());
    }
    err
}

/// Classifies a transport failure. A connection that never opened means the request was
/// not sent (transient); anything after that on a create may have sent it (ambiguous).
pub fn error_from_transport(err: reqwest::Error, create: bool) -> ChannelError {
    let err = err.without_url();
    let kind = if err.is_connect() || !create {
        ErrorKind::Transient
    } else {
        ErrorKind::Ambiguous
    };
    ChannelError::new(kind, describe_transport(&err)).with_source(err)
}

/// What went wrong on the way to Twilio, with the cause ("could not connect to Twilio:
/// error sending request: …: dns error: …"). Strip the URL first (`without_url`): nothing
/// about a request needs to travel into logs.
pub(crate) fn describe_transport(err: &reqwest::Error) -> String {
    let what = if err.is_connect() {
        "could not connect to Twilio"
    } else if err.is_timeout() {
        "Twilio did not answer in time"
    } else {
        "the exchange with Twilio failed"
    };
    format!("{what}: {}", switchboard_core::error_with_sources(err))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(status: u16, code: Option<u32>, retry: Option<u64>) -> ChannelError {
        error_from_response(
            status,
            &TwilioErrorBody {
                code,
                message: Some("msg".into()),
                ..Default::default()
            },
            retry.map(Duration::from_secs),
            true,
            Exchange::default(),
        )
    }

    #[test]
    fn the_code_table() {
        let cases: &[(u16, u32, ErrorKind)] = &[
            (429, 20429, ErrorKind::RateLimited),
            (400, 63017, ErrorKind::RateLimited),
            (400, 63018, ErrorKind::RateLimited),
            (400, 63038, ErrorKind::RateLimited),
            (503, 20503, ErrorKind::Transient),
            (400, 30500, ErrorKind::Transient),
            (500, 20500, ErrorKind::Ambiguous),
            (401, 20003, ErrorKind::Auth),
            (400, 21610, ErrorKind::OptedOut),
            (400, 63016, ErrorKind::OutsideWindow),
            (400, 21211, ErrorKind::Permanent),
            (400, 21408, ErrorKind::Permanent),
            (400, 21614, ErrorKind::Permanent),
            (400, 21617, ErrorKind::Permanent),
            (400, 21620, ErrorKind::Permanent),
            (400, 21655, ErrorKind::Permanent),
            (400, 21656, ErrorKind::Permanent),
            (400, 21658, ErrorKind::Permanent),
            (400, 63003, ErrorKind::Unreachable),
            (400, 63007, ErrorKind::Permanent),
            (400, 63014, ErrorKind::Permanent),
            (400, 63021, ErrorKind::Permanent),
            (400, 63024, ErrorKind::Unreachable),
            (400, 63032, ErrorKind::Permanent),
            // Unknown codes fall back to the HTTP status.
            (400, 21999, ErrorKind::Permanent),
            (500, 12345, ErrorKind::Ambiguous),
        ];
        for &(status, code, kind) in cases {
            let e = err(status, Some(code), None);
            assert_eq!(e.kind(), kind, "{code}");
            assert_eq!(e.provider_code(), Some(code.to_string().as_str()));
        }
    }

    #[test]
    fn status_codes_use_the_same_table() {
        assert_eq!(status_error_kind("63003"), ErrorKind::Unreachable);
        assert_eq!(status_error_kind("63024"), ErrorKind::Unreachable);
        assert_eq!(status_error_kind("63016"), ErrorKind::OutsideWindow);
        assert_eq!(status_error_kind("63007"), ErrorKind::Permanent);
        assert_eq!(status_error_kind("30008"), ErrorKind::Permanent);
        assert_eq!(status_error_kind("x"), ErrorKind::Permanent);
    }

    #[test]
    fn http_statuses_without_a_code() {
        assert_eq!(
            err(429, None, Some(7)).retry_after(),
            Some(Duration::from_secs(7))
        );
        assert!(err(429, None, None).is_rate_limited());
        assert!(err(500, None, None).is_ambiguous());
        assert!(err(502, None, None).is_ambiguous());
        assert_eq!(err(503, None, None).kind(), ErrorKind::Transient);
        assert!(err(401, None, None).is_auth());
        assert_eq!(err(404, None, None).kind(), ErrorKind::Permanent);
        assert!(err(404, None, None).provider_code().is_none());
        assert_eq!(classify_http(500, false), ErrorKind::Transient);
        assert_eq!(classify_http(302, true), ErrorKind::Ambiguous);
    }

    #[test]
    fn retry_after_is_only_kept_for_rate_limits() {
        assert_eq!(err(400, Some(21211), Some(7)).retry_after(), None);
        assert_eq!(
            err(429, Some(20429), Some(7)).retry_after(),
            Some(Duration::from_secs(7))
        );
    }

    #[test]
    fn message_names_status_and_code() {
        let e = err(400, Some(21211), None);
        assert_eq!(e.message(), "Twilio answered HTTP 400, error 21211: msg");
    }
}

//! `X-Hub-Signature-256`: HMAC-SHA256 of the exact raw body bytes, keyed with the app secret.
//!
//! The body is never re-serialized before hashing: Meta's wire form escapes non-ASCII as
//! `\uXXXX` and `/` as `\/`, so a re-encoded body has a different signature.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use switchboard_core::WebhookError;

/// The header Meta signs POSTs with (lowercase, as `http::HeaderMap` stores names).
pub const SIGNATURE_HEADER: &str = "x-hub-signature-256";

const PREFIX: &str = "sha256=";

type HmacSha256 = Hmac<Sha256>;

fn mac(app_secret: &[u8], body: &[u8]) -> Option<HmacSha256> {
    // HMAC accepts keys of any length, so this never fails in practice.
    let mut mac = HmacSha256::new_from_slice(app_secret).ok()?;
    mac.update(body);
    Some(mac)
}

/// The full header value (`sha256=<lowercase hex>`) for `body`.
pub fn sign(app_secret: &[u8], body: &[u8]) -> String {
    match mac(app_secret, body) {
        Some(mac) => format!("{PREFIX}{}", hex::encode(mac.finalize().into_bytes())),
        None => String::new(),
    }
}

/// Checks a header value against `body`, in constant time.
///
/// # Errors
/// [`WebhookError::MissingSignature`] when `header` is `None`; [`WebhookError::BadSignature`]
/// for a wrong prefix, bad hex, or a mismatch.
pub fn verify(app_secret: &[u8], body: &[u8], header: Option<&str>) -> Result<(), WebhookError> {
    let header = header.ok_or(WebhookError::MissingSignature)?.trim();
    let hex_part = header
        .strip_prefix(PREFIX)
        .ok_or(WebhookError::BadSignature)?;
    let tag = hex::decode(hex_part).map_err(|_| WebhookError::BadSignature)?;
    let mac = mac(app_secret, body).ok_or(WebhookError::BadSignature)?;
    mac.verify_slice(&tag)
        .map_err(|_| WebhookError::BadSignature)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"router_test_app_secret";

    #[test]
    fn vector_b() {
        let sig = "sha256=0329a06b62cd16b33eb6792be8c60b158d89a2ee3a876fce9a881ebb488c0914";
        assert_eq!(sign(b"secret", b"test"), sig);
        assert_eq!(verify(b"secret", b"test", Some(sig)), Ok(()));
        assert_eq!(
            verify(b"secret", b"tesT", Some(sig)),
            Err(WebhookError::BadSignature)
        );
    }

    #[test]
    fn vector_d_only_matches_the_raw_escaped_bytes() {
        let escaped = br#"{"text":{"body":"caf\u00e9 \/ menu"}}"#;
        assert_eq!(escaped.len(), 37);
        let reserialized = r#"{"text":{"body":"café / menu"}}"#.as_bytes();
        assert_eq!(reserialized.len(), 32);
        let sig_escaped = "sha256=7a62b08865a9e92415770a4302f60c7bdce769f2ed9fc0c41ac897a1716fbe02";
        let sig_utf8 = "sha256=393497e46bdee4d2788c09e1c877a83a63062e60f78678d3e54ed41e86411510";
        assert_eq!(sign(SECRET, escaped), sig_escaped);
        assert_eq!(sign(SECRET, reserialized), sig_utf8);
        assert_eq!(verify(SECRET, escaped, Some(sig_escaped)), Ok(()));
        assert_eq!(
            verify(SECRET, reserialized, Some(sig_escaped)),
            Err(WebhookError::BadSignature)
        );
    }

    #[test]
    fn header_shape_errors() {
        let body = b"{}";
        let good = sign(SECRET, body);
        assert_eq!(
            verify(SECRET, body, None),
            Err(WebhookError::MissingSignature)
        );
        let hex_only = good.trim_start_matches(PREFIX);
        for bad in [
            hex_only.to_owned(),
            format!("sha1={hex_only}"),
            format!("SHA256={hex_only}"),
            "sha256=zz".to_owned(),
            "sha256=".to_owned(),
            format!("{good}00"),
            String::new(),
        ] {
            assert_eq!(
                verify(SECRET, body, Some(&bad)),
                Err(WebhookError::BadSignature),
                "{bad}"
            );
        }
        // Uppercase hex digits are the same bytes.
        let upper = format!("{PREFIX}{}", hex_only.to_ascii_uppercase());
        assert_eq!(verify(SECRET, body, Some(&upper)), Ok(()));
        assert_eq!(
            verify(b"other secret", body, Some(&good)),
            Err(WebhookError::BadSignature)
        );
    }
}

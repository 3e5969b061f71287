//! `X-Twilio-Signature`: pure functions, shared by webhook verification and the `testing`
//! helpers that sign fake webhooks.
//!
//! The algorithm is the one Twilio's official SDKs implement (python, node, php):
//! the full URL Twilio requested, then every POST parameter as `name` + `value`, sorted by
//! name in byte order with each name's values sorted and de-duplicated; HMAC-SHA1 keyed with
//! the auth token; standard base64. Because Twilio's backend is inconsistent about ports,
//! a signature is valid if it matches any candidate URL: as given, with the port removed,
//! or with the scheme's default port added ([`url_candidates`]).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

type HmacSha1 = Hmac<Sha1>;

/// The header Twilio puts the signature in (header lookup is case-insensitive).
pub const SIGNATURE_HEADER: &str = "x-twilio-signature";

/// The query parameter carrying the SHA-256 of a JSON body.
pub const BODY_SHA256_PARAM: &str = "bodySHA256";

/// The parameters as signed: sorted by name (byte order), each name's values sorted and
/// de-duplicated, concatenated as `name` + `value` without delimiters.
pub fn params_suffix<K: AsRef<str>, V: AsRef<str>>(params: &[(K, V)]) -> String {
    let mut pairs: Vec<(&str, &str)> = params
        .iter()
        .map(|(k, v)| (k.as_ref(), v.as_ref()))
        .collect();
    // Tuple order is name first, then value, both bytewise: exactly the SDKs' order, and
    // never name+value concatenated (`Reason` sorts before `ReasonConferenceEnded`).
    pairs.sort_unstable();
    pairs.dedup();
    let len = pairs.iter().map(|(k, v)| k.len() + v.len()).sum();
    let mut out = String::with_capacity(len);
    for (k, v) in pairs {
        out.push_str(k);
        out.push_str(v);
    }
    out
}

fn keyed(auth_token: &str) -> Option<HmacSha1> {
    HmacSha1::new_from_slice(auth_token.as_bytes()).ok()
}

/// The signature Twilio would send for `url` (used exactly as given) and `params`.
pub fn compute_signature<K: AsRef<str>, V: AsRef<str>>(
    auth_token: &str,
    url: &str,
    params: &[(K, V)],
) -> String {
    let Some(mut mac) = keyed(auth_token) else {
        return String::new();
    };
    mac.update(url.as_bytes());
    mac.update(params_suffix(params).as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

/// Whether `signature` is Twilio's signature of `params` for any candidate of `url`
/// (see [`url_candidates`]). Compares in constant time (`Mac::verify_slice`).
pub fn validate_signature<K: AsRef<str>, V: AsRef<str>>(
    auth_token: &str,
    url: &str,
    params: &[(K, V)],
    signature: &str,
) -> bool {
    let signature = signature.trim();
    if signature.is_empty() || auth_token.is_empty() {
        return false;
    }
    let Ok(tag) = STANDARD.decode(signature) else {
        return false;
    };
    let Some(mac) = keyed(auth_token) else {
        return false;
    };
    let suffix = params_suffix(params);
    url_candidates(url).iter().any(|candidate| {
        let mut m = mac.clone();
        m.update(candidate.as_bytes());
        m.update(suffix.as_bytes());
        m.verify_slice(&tag).is_ok()
    })
}

/// Validates a JSON-body webhook: the URL's `bodySHA256` query parameter must be the
/// lowercase hex SHA-256 of the raw body, and the signature is over the URL alone.
/// A URL without `bodySHA256` is invalid.
pub fn validate_json_body(auth_token: &str, url: &str, body: &[u8], signature: &str) -> bool {
    let Some(expected) = body_sha256_param(url) else {
        return false;
    };
    let actual = sha256_hex(body);
    let hash_ok: bool = actual
        .as_bytes()
        .ct_eq(expected.to_ascii_lowercase().as_bytes())
        .into();
    hash_ok && validate_signature::<&str, &str>(auth_token, url, &[], signature)
}

/// The lowercase hex SHA-256 of `body`, as Twilio puts it in `bodySHA256`.
pub fn sha256_hex(body: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = Sha256::digest(body);
    let mut out = String::with_capacity(64);
    for b in digest.iter() {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0x0f)]));
    }
    out
}

fn body_sha256_param(url: &str) -> Option<String> {
    let without_fragment = url.split('#').next().unwrap_or(url);
    let (_, query) = without_fragment.split_once('?')?;
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == BODY_SHA256_PARAM)
        .map(|(_, v)| v.into_owned())
}

/// The URLs a signature may have been computed over, first the URL as given.
///
/// `#fragment` (Twilio's connection overrides) and `user:pass@` are never signed, so they
/// are removed first. Then: as given; with the port removed; with the default port (`:443`
/// for https, `:80` for http) added when there was none. Finally, as twilio-node does, each
/// is also tried with the query's `'` and `%27` swapped, because URL libraries disagree on
/// percent-encoding the apostrophe.
pub fn url_candidates(url: &str) -> Vec<String> {
    let url = url.split('#').next().unwrap_or(url);
    let mut base = Vec::with_capacity(3);
    match split_url(url) {
        Some(parts) => {
            base.push(parts.join(parts.port));
            base.push(parts.join(None));
            if parts.port.is_none()
                && let Some(default) = parts.default_port()
            {
                base.push(parts.join(Some(default)));
            }
        }
        None => base.push(url.to_owned()),
    }
    let mut out: Vec<String> = Vec::with_capacity(base.len() * 2);
    for u in base {
        let quoted = swap_query_apostrophes(&u);
        push_unique(&mut out, u);
        if let Some(q) = quoted {
            push_unique(&mut out, q);
        }
    }
    out
}

fn push_unique(out: &mut Vec<String>, s: String) {
    if !out.contains(&s) {
        out.push(s);
    }
}

/// The URL with its query's `'` written as `%27`, or `%27` as `'`; `None` when the query
/// has neither.
fn swap_query_apostrophes(url: &str) -> Option<String> {
    let (head, query) = url.split_once('?')?;
    let swapped = if query.contains('\'') {
        query.replace('\'', "%27")
    } else if query.contains("%27") {
        query.replace("%27", "'")
    } else {
        return None;
    };
    Some(format!("{head}?{swapped}"))
}

struct UrlParts<'a> {
    scheme: &'a str,
    host: &'a str,
    port: Option<&'a str>,
    rest: &'a str,
}

impl UrlParts<'_> {
    fn join(&self, port: Option<&str>) -> String {
        match port {
            Some(p) => format!("{}://{}:{p}{}", self.scheme, self.host, self.rest),
            None => format!("{}://{}{}", self.scheme, self.host, self.rest),
        }
    }

    fn default_port(&self) -> Option<&'static str> {
        if self.scheme.eq_ignore_ascii_case("https") {
            Some("443")
        } else if self.scheme.eq_ignore_ascii_case("http") {
            Some("80")
        } else {
            None
        }
    }
}

/// Splits `scheme://[userinfo@]host[:port]rest` without normalizing anything (a URL
/// library would re-encode the path and query, and the signature is over the raw bytes).
fn split_url(url: &str) -> Option<UrlParts<'_>> {
    let (scheme, after) = url.split_once("://")?;
    let end = after.find(['/', '?']).unwrap_or(after.len());
    let (authority, rest) = after.split_at(end);
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    let (host, port) = if host_port.starts_with('[') {
        // IPv6 literal: the port follows the closing bracket.
        match host_port.find(']') {
            Some(i) => {
                let (h, p) = host_port.split_at(i + 1);
                (h, p.strip_prefix(':'))
            }
            None => (host_port, None),
        }
    } else {
        match host_port.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (host_port, None),
        }
    };
    let port = port.filter(|p| !p.is_empty());
    Some(UrlParts {
        scheme,
        host,
        port,
        rest,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "12345";
    const U: &str = "https://mycompany.com/myapp.php?foo=1&bar=2";
    const P: [(&str, &str); 5] = [
        ("CallSid", "CA1234567890ABCDE"),
        ("Digits", "1234"),
        ("From", "+14158675309"),
        ("To", "+18005551212"),
        ("Caller", "+14158675309"),
    ];

    #[test]
    fn v1_basic_and_its_preimage() {
        assert_eq!(
            format!("{U}{}", params_suffix(&P)),
            "https://mycompany.com/myapp.php?foo=1&bar=2CallSidCA1234567890ABCDECaller+14158675309Digits1234From+14158675309To+18005551212"
        );
        assert_eq!(
            compute_signature(TOKEN, U, &P),
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        );
        assert!(validate_signature(
            TOKEN,
            U,
            &P,
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        ));
    }

    #[test]
    fn v1_validates_when_the_request_url_has_a_port() {
        // Port stripped: a signature over the port-less URL matches a `:1234` request URL.
        let with_port = "https://mycompany.com:1234/myapp.php?foo=1&bar=2";
        assert!(validate_signature(
            TOKEN,
            with_port,
            &P,
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        ));
    }

    #[test]
    fn v2_signed_with_443_validates_the_portless_url() {
        let signed = "https://mycompany.com:443/myapp.php?foo=1&bar=2";
        assert_eq!(
            compute_signature(TOKEN, signed, &P),
            "kvajT1Ptam85bY51eRf/AJRuM3w="
        );
        assert!(validate_signature(
            TOKEN,
            U,
            &P,
            "kvajT1Ptam85bY51eRf/AJRuM3w="
        ));
        assert!(validate_signature(
            TOKEN,
            signed,
            &P,
            "kvajT1Ptam85bY51eRf/AJRuM3w="
        ));
    }

    #[test]
    fn v3_signed_with_80_validates_the_portless_http_url() {
        let signed = "http://mycompany.com:80/myapp.php?foo=1&bar=2";
        assert_eq!(
            compute_signature(TOKEN, signed, &P),
            "0ZXoZLH/DfblKGATFgpif+LLRf4="
        );
        assert!(validate_signature(
            TOKEN,
            "http://mycompany.com/myapp.php?foo=1&bar=2",
            &P,
            "0ZXoZLH/DfblKGATFgpif+LLRf4="
        ));
    }

    #[test]
    fn v4_non_default_port_as_given() {
        let url = "http://mycompany.com:1234/myapp.php?foo=1&bar=2";
        assert_eq!(
            compute_signature(TOKEN, url, &P),
            "Zmvh+3yNM1Phv2jhDCwEM3q5ebU="
        );
        assert!(validate_signature(
            TOKEN,
            url,
            &P,
            "Zmvh+3yNM1Phv2jhDCwEM3q5ebU="
        ));
        // ... and not for a different non-default port.
        let other = "http://mycompany.com:4321/myapp.php?foo=1&bar=2";
        assert!(!validate_signature(
            TOKEN,
            other,
            &P,
            "Zmvh+3yNM1Phv2jhDCwEM3q5ebU="
        ));
    }

    #[test]
    fn v6_repeated_keys_are_sorted_and_deduplicated() {
        let params = [
            ("Sid", "CA123"),
            ("SidAccount", "AC123"),
            ("Digits", "5678"),
            ("Digits", "1234"),
            ("Digits", "1234"),
        ];
        assert_eq!(
            format!("{U}{}", params_suffix(&params)),
            "https://mycompany.com/myapp.php?foo=1&bar=2Digits1234Digits5678SidCA123SidAccountAC123"
        );
        assert_eq!(
            compute_signature(TOKEN, U, &params),
            "IK+Dwps556ElfBT0I3Rgjkr1wJU="
        );
        assert!(validate_signature(
            TOKEN,
            U,
            &params,
            "IK+Dwps556ElfBT0I3Rgjkr1wJU="
        ));
        // The signature without de-duplication must not be accepted.
        assert!(!validate_signature(
            TOKEN,
            U,
            &params,
            "tM//N+MVWOh7+ol2z8YCNxSY0Eg="
        ));
    }

    #[test]
    fn sorting_is_by_name_alone_in_byte_order() {
        let params = [
            ("ReasonConferenceEnded", "test"),
            ("Reason", "Participant"),
            ("callSid", "c"),
            ("CALLSID", "a"),
            ("CallSid", "b"),
        ];
        assert_eq!(
            params_suffix(&params),
            "CALLSIDaCallSidbReasonParticipantReasonConferenceEndedtestcallSidc"
        );
    }

    #[test]
    fn v8_body_sha256() {
        let body = br#"{"property": "value", "boolean": true}"#;
        assert_eq!(
            sha256_hex(body),
            "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620"
        );
        assert_eq!(
            sha256_hex(b"{}"),
            "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2&bodySHA256=0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620";
        assert_eq!(
            compute_signature::<&str, &str>(TOKEN, url, &[]),
            "a9nBmqA0ju/hNViExpshrM61xv4="
        );
        assert!(validate_json_body(
            TOKEN,
            url,
            body,
            "a9nBmqA0ju/hNViExpshrM61xv4="
        ));
        // A body that does not hash to bodySHA256 fails even with the right signature.
        assert!(!validate_json_body(
            TOKEN,
            url,
            b"{}",
            "a9nBmqA0ju/hNViExpshrM61xv4="
        ));
        // A JSON body whose URL has no bodySHA256 is rejected.
        assert!(!validate_json_body(
            TOKEN,
            U,
            body,
            &compute_signature::<&str, &str>(TOKEN, U, &[])
        ));
    }

    #[test]
    fn v36_docs_example() {
        let url = "https://example.com/myapp.php?foo=1&bar=2";
        let params = [
            ("Digits", "1234"),
            ("To", "+18005551212"),
            ("From", "+14158675310"),
            ("Caller", "+14158675310"),
            ("CallSid", "CA1234567890ABCDE"),
        ];
        assert_eq!(
            compute_signature(TOKEN, url, &params),
            "L/OH5YylLD5NRKLltdqwSvS0BnU="
        );
        assert!(validate_signature(
            TOKEN,
            url,
            &params,
            "L/OH5YylLD5NRKLltdqwSvS0BnU="
        ));
    }

    #[test]
    fn node_webhook_vectors_ports_and_apostrophes() {
        let none: [(&str, &str); 0] = [];
        let t = "s3cr3t";
        let plain = "https://example.com/path?test=param";
        let with_443 = "https://example.com:443/path?test=param";
        assert_eq!(
            compute_signature(t, plain, &none),
            "loLgTitFAoWx57yy5oEU4Hlddzw="
        );
        assert_eq!(
            compute_signature(t, with_443, &none),
            "IdwMFypqvNxti3YgvWWmfcNL26M="
        );
        assert!(validate_signature(
            t,
            with_443,
            &none,
            "loLgTitFAoWx57yy5oEU4Hlddzw="
        ));
        assert!(validate_signature(
            t,
            plain,
            &none,
            "IdwMFypqvNxti3YgvWWmfcNL26M="
        ));

        let quote = "https://example.com/path?test=param'WithQuote";
        let pct = "https://example.com/path?test=param%27WithQuote";
        assert_eq!(
            compute_signature(t, quote, &none),
            "GfI7onHX/KQ2k1oVS3cUTVk4IEw="
        );
        assert_eq!(
            compute_signature(t, pct, &none),
            "HkuXLxVQ7zHv9LmGpzlLuGaxhJY="
        );
        assert!(validate_signature(
            t,
            pct,
            &none,
            "GfI7onHX/KQ2k1oVS3cUTVk4IEw="
        ));
        assert!(validate_signature(
            t,
            quote,
            &none,
            "HkuXLxVQ7zHv9LmGpzlLuGaxhJY="
        ));

        let other = "https://example.com/path?test=param2";
        assert!(!validate_signature(
            t,
            other,
            &none,
            "loLgTitFAoWx57yy5oEU4Hlddzw="
        ));
    }

    fn whatsapp_params() -> Vec<(&'static str, &'static str)> {
        vec![
            ("AccountSid", "ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"),
            ("ApiVersion", "2010-04-01"),
            ("Body", "Hello from WhatsApp"),
            ("From", "whatsapp:+14155550100"),
            ("MessageSid", "SMXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"),
            ("NumMedia", "0"),
            ("NumSegments", "1"),
            ("ProfileName", "Jane Doe"),
            ("SmsMessageSid", "SMXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"),
            ("SmsSid", "SMXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"),
            ("SmsStatus", "received"),
            ("To", "whatsapp:+14155238886"),
            ("WaId", "14155550100"),
        ]
    }

    #[test]
    fn self_derived_whatsapp_vector_and_its_443_variant() {
        let p = whatsapp_params();
        let url = "https://example.com/twilio/whatsapp";
        let url443 = "https://example.com:443/twilio/whatsapp";
        assert_eq!(
            compute_signature(TOKEN, url, &p),
            "8Vd1+1SEB3pe9ke7RjhhHfG+HMg="
        );
        assert_eq!(
            compute_signature(TOKEN, url443, &p),
            "qyuJXn/HBvn0D7aT0SHyalNHHR8="
        );
        assert!(validate_signature(
            TOKEN,
            url,
            &p,
            "qyuJXn/HBvn0D7aT0SHyalNHHR8="
        ));
        assert!(validate_signature(
            TOKEN,
            url443,
            &p,
            "8Vd1+1SEB3pe9ke7RjhhHfG+HMg="
        ));
        // Any changed value breaks it.
        let mut tampered = p.clone();
        tampered[2] = ("Body", "Hello from WhatsApp!");
        assert!(!validate_signature(
            TOKEN,
            url,
            &tampered,
            "8Vd1+1SEB3pe9ke7RjhhHfG+HMg="
        ));
        // So does the wrong token.
        assert!(!validate_signature(
            "54321",
            url,
            &p,
            "8Vd1+1SEB3pe9ke7RjhhHfG+HMg="
        ));
    }

    #[test]
    fn negatives_are_rejected() {
        for bad in [
            "WRONG_SIGNATURE",
            "FAIL",
            "NOTRSOYDt4T1cUTdK1PDd93/VVr8B8=",
            "",
            "   ",
            "RSOYDt4T1cUTdK1PDd93/VVr8B8",
            "kvajT1Ptam85bY51eRf/AJRuM3w=", // right format, other URL's signature
        ] {
            assert!(
                !validate_signature(TOKEN, "https://other.com/myapp.php?foo=1&bar=2", &P, bad),
                "{bad:?}"
            );
        }
        assert!(!validate_signature(TOKEN, U, &P, "WRONG_SIGNATURE"));
        assert!(!validate_signature(
            "",
            U,
            &P,
            "RSOYDt4T1cUTdK1PDd93/VVr8B8="
        ));
    }

    #[test]
    fn fragments_and_userinfo_are_never_signed() {
        let sig = compute_signature(TOKEN, U, &P);
        assert!(validate_signature(
            TOKEN,
            "https://user:pass@mycompany.com/myapp.php?foo=1&bar=2#rc=2&ct=1000",
            &P,
            &sig
        ));
    }

    #[test]
    fn candidates() {
        assert_eq!(
            url_candidates("https://a.com/x?y=1"),
            vec!["https://a.com/x?y=1", "https://a.com:443/x?y=1"]
        );
        assert_eq!(
            url_candidates("http://a.com:8080/x"),
            vec!["http://a.com:8080/x", "http://a.com/x"]
        );
        assert_eq!(
            url_candidates("https://[::1]:8443/x"),
            vec!["https://[::1]:8443/x", "https://[::1]/x"]
        );
        assert_eq!(url_candidates("not a url"), vec!["not a url"]);
        assert_eq!(
            url_candidates("https://a.com"),
            vec!["https://a.com", "https://a.com:443"]
        );
    }
}

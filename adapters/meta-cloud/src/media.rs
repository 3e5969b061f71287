//! Media download and upload and Meta's per-kind limits.
//!
//! Download is two steps: `GET /{version}/{media-id}` answers the file's short-lived URL
//! (5 minutes), MIME type, SHA-256 and size; then `GET <url>` with the same bearer token.
//! A 404 on the second step means the URL expired: that is transient (the next attempt
//! asks for a fresh URL); a failure of the first step (the id is unknown or older than
//! Meta's 7 days) is not. The bytes are checked against the declared size and checksum.
//!
//! Upload is `POST /{version}/{phone-number-id}/media`, multipart, answering `{"id"}`; the
//! body is built here by hand (three parts) rather than pulling in reqwest's multipart.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::{Bytes, BytesMut};
use serde_json::Value;
use sha2::{Digest, Sha256};
use switchboard_core::media::{MB, MediaLimit, mime_essence};
use switchboard_core::{
    AccountContext, ChannelError, ErrorKind, Exchange, FetchedMedia, MediaItem, MediaKind,
    retry_after_header,
};

use crate::config::{MetaConfig, is_graph_id};
use crate::errors;
use crate::send::account_keys;

/// Downloads and uploads may be large and slow; the API timeout does not fit them.
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(120);

/// Meta's media table. Stickers: 500 KB (animated; static ones are 100 KB,
/// which Meta enforces itself).
pub(crate) fn media_limit(kind: MediaKind) -> MediaLimit {
    match kind {
        MediaKind::Image => MediaLimit {
            max_bytes: 5 * MB,
            mime_types: &["image/jpeg", "image/png"],
        },
        MediaKind::Video => MediaLimit {
            max_bytes: 16 * MB,
            mime_types: &["video/mp4", "video/3gpp"],
        },
        MediaKind::Audio => MediaLimit {
            max_bytes: 16 * MB,
            mime_types: &[
                "audio/aac",
                "audio/amr",
                "audio/mpeg",
                "audio/mp4",
                "audio/ogg",
            ],
        },
        MediaKind::Sticker => MediaLimit {
            max_bytes: 500 * 1024,
            mime_types: &["image/webp"],
        },
        _ => MediaLimit {
            max_bytes: 100 * MB,
            mime_types: &[
                "text/plain",
                "application/pdf",
                "application/vnd.ms-excel",
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                "application/msword",
                "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
                "application/vnd.ms-powerpoint",
                "application/vnd.openxmlformats-officedocument.presentationml.presentation",
            ],
        },
    }
}

/// The media node: where to download and what to expect.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
struct MediaNode {
    url: Option<String>,
    mime_type: Option<String>,
    sha256: Option<String>,
    #[serde(deserialize_with = "crate::wire::string_or_number")]
    file_size: Option<String>,
}

/// A checksum as Meta writes it: base64 in webhooks, hex in some media-node answers.
fn decode_sha256(s: &str) -> Option<Vec<u8>> {
    let s = s.trim();
    if s.len() == 64
        && let Ok(b) = hex::decode(s)
    {
        return Some(b);
    }
    STANDARD.decode(s).ok().filter(|b| b.len() == 32)
}

pub(crate) async fn fetch(
    client: &reqwest::Client,
    config: &MetaConfig,
    account: &AccountContext,
    item: &MediaItem,
    max_bytes: u64,
) -> Result<FetchedMedia, ChannelError> {
    let (phone_number_id, token) = account_keys(account)?;
    let media_id = item
        .provider_media_id
        .as_deref()
        .filter(|id| is_graph_id(id))
        .ok_or_else(|| ChannelError::permanent("the media item has no valid Meta media id"))?;
    let node_url = format!(
        "{}?phone_number_id={phone_number_id}",
        config.node_url(media_id)
    );
    let resp = client
        .get(&node_url)
        .bearer_auth(token)
        .send()
        .await
        .map_err(|e| retryable(errors::from_transport(e, None)))?;
    let status = resp.status().as_u16();
    let retry_after = retry_after_header(resp.headers());
    let body = resp
        .bytes()
        .await
        .map_err(|e| retryable(errors::from_transport(e, None)))?;
    if !(200..300).contains(&status) || errors::graph_error(&body).is_some() {
        let exchange = Exchange {
            http_status: Some(status),
            request: None,
            response: Some(Exchange::response_body(&body)),
        };
        return Err(retryable(errors::from_response(
            status,
            retry_after,
            &body,
            exchange,
        )));
    }
    let node: MediaNode = serde_json::from_slice(&body).unwrap_or_default();
    let url = node
        .url
        .filter(|u| u.starts_with("https://") || u.starts_with("http://"))
        .ok_or_else(|| ChannelError::transient("the media node has no download URL"))?;
    let declared_size = node.file_size.and_then(|s| s.parse::<u64>().ok());
    if declared_size.is_some_and(|n| n > max_bytes) {
        return Err(too_large(max_bytes));
    }

    let mut resp = client
        .get(&url)
        .bearer_auth(token)
        .timeout(TRANSFER_TIMEOUT)
        .send()
        .await
        .map_err(|e| retryable(errors::from_transport(e, None)))?;
    let status = resp.status().as_u16();
    if !(200..300).contains(&status) {
        let kind = match status {
            // The 5-minute URL expired: a fresh one is one attempt away.
            404 | 408 | 500..=599 => ErrorKind::Transient,
            429 => ErrorKind::RateLimited,
            401 | 403 => ErrorKind::Auth,
            _ => ErrorKind::Permanent,
        };
        return Err(
            ChannelError::new(kind, format!("the media download answered HTTP {status}"))
                .with_provider_code(format!("http_{status}")),
        );
    }
    let served = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(mime_essence)
        .filter(|m| !m.is_empty());
    if resp.content_length().is_some_and(|n| n > max_bytes) {
        return Err(too_large(max_bytes));
    }
    let mut buf = BytesMut::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| retryable(errors::from_transport(e, None)))?
    {
        if (buf.len() + chunk.len()) as u64 > max_bytes {
            return Err(too_large(max_bytes));
        }
        buf.extend_from_slice(&chunk);
    }
    let bytes: Bytes = buf.freeze();
    if let Some(n) = declared_size
        && n != bytes.len() as u64
    {
        // A cut-off transfer: worth another try.
        return Err(ChannelError::transient(format!(
            "the media download has {} bytes; Meta declared {n}",
            bytes.len()
        )));
    }
    // The node's checksum, else the webhook's: either must match when given.
    let expected = node
        .sha256
        .as_deref()
        .or(item.sha256.as_deref())
        .filter(|s| !s.trim().is_empty());
    if let Some(expected) = expected {
        let actual = Sha256::digest(&bytes);
        match decode_sha256(expected) {
            Some(e) if e.as_slice() == actual.as_slice() => {}
            Some(_) => {
                return Err(ChannelError::transient(
                    "the media download does not match Meta's SHA-256",
                )
                .with_provider_code("sha256_mismatch"));
            }
            None => tracing::debug!("Meta's media checksum is unreadable; not checked."),
        }
    }
    let mime_type = node
        .mime_type
        .as_deref()
        .map(mime_essence)
        .filter(|m| !m.is_empty())
        .or_else(|| item.mime_type.as_deref().map(mime_essence))
        .or(served)
        .unwrap_or_else(|| "application/octet-stream".to_owned());
    Ok(FetchedMedia {
        bytes,
        mime_type,
        filename: item.filename.clone(),
    })
}

/// A download is a read: "may have been processed" means nothing here, so retry.
fn retryable(err: ChannelError) -> ChannelError {
    if err.is_ambiguous() {
        ChannelError::transient(err.message().to_owned())
    } else {
        err
    }
}

fn too_large(max_bytes: u64) -> ChannelError {
    ChannelError::permanent(format!(
        "the media is larger than this kind's limit of {max_bytes} bytes"
    ))
    .with_provider_code("media_too_large")
}

/// A filename safe inside a quoted multipart header.
fn header_safe(name: &str) -> String {
    name.chars()
        .filter(|c| !c.is_control() && *c != '"' && *c != '\\')
        .take(200)
        .collect()
}

/// The multipart body of an upload and its boundary. The boundary is derived from the
/// file's own hash, so it cannot occur in the file by accident.
pub(crate) fn multipart_body(bytes: &[u8], mime: &str, filename: &str) -> (String, Vec<u8>) {
    let boundary = format!("switchboard-{}", hex::encode(&Sha256::digest(bytes)[..16]));
    let mut out = Vec::with_capacity(bytes.len() + 512);
    let mut text = |s: &str| out.extend_from_slice(s.as_bytes());
    text(&format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"messaging_product\"\r\n\r\nwhatsapp\r\n"
    ));
    text(&format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"type\"\r\n\r\n{mime}\r\n"
    ));
    text(&format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{}\"\r\nContent-Type: {mime}\r\n\r\n",
        header_safe(filename)
    ));
    out.extend_from_slice(bytes);
    out.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (boundary, out)
}

pub(crate) async fn upload(
    client: &reqwest::Client,
    config: &MetaConfig,
    account: &AccountContext,
    bytes: Bytes,
    mime_type: &str,
    filename: Option<&str>,
) -> Result<String, ChannelError> {
    let (phone_number_id, token) = account_keys(account)?;
    let mime = mime_essence(mime_type);
    if mime.is_empty() || !mime.contains('/') || mime.chars().any(|c| c.is_control()) {
        return Err(ChannelError::invalid("the media has no valid MIME type"));
    }
    let name = filename.map_or_else(
        || format!("file.{}", switchboard_core::media::extension_for(&mime)),
        header_safe,
    );
    let (boundary, body) = multipart_body(&bytes, &mime, &name);
    let url = format!("{}/media", config.node_url(phone_number_id));
    let request_summary = serde_json::json!({
        "messaging_product": "whatsapp", "type": mime, "file": {"filename": name, "bytes": bytes.len()}
    });
    let resp = client
        .post(&url)
        .bearer_auth(token)
        .timeout(TRANSFER_TIMEOUT)
        .header(
            reqwest::header::CONTENT_TYPE,
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(body)
        .send()
        .await
        .map_err(|e| errors::from_transport(e, Some(request_summary.clone())))?;
    let status = resp.status().as_u16();
    let retry_after = retry_after_header(resp.headers());
    let answer = resp
        .bytes()
        .await
        .map_err(|e| errors::from_transport(e, Some(request_summary.clone())))?;
    let exchange = Exchange {
        http_status: Some(status),
        request: Some(request_summary),
        response: Some(Exchange::response_body(&answer)),
    };
    if !(200..300).contains(&status) || errors::graph_error(&answer).is_some() {
        return Err(errors::from_response(
            status,
            retry_after,
            &answer,
            exchange,
        ));
    }
    serde_json::from_slice::<Value>(&answer)
        .ok()
        .and_then(|v| match v.get("id")? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        })
        .filter(|id| is_graph_id(id))
        .ok_or_else(|| {
            ChannelError::ambiguous("the Graph API accepted the upload but returned no media id")
                .with_exchange(exchange)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_follow_meta_documentation() {
        assert_eq!(media_limit(MediaKind::Document).max_bytes, 100 * MB);
        assert_eq!(media_limit(MediaKind::Sticker).max_bytes, 500 * 1024);
        assert!(media_limit(MediaKind::Video).allows_mime("video/3gpp"));
        assert!(!media_limit(MediaKind::Image).allows_mime("image/webp"));
    }

    #[test]
    fn checksums_are_read_as_hex_or_base64() {
        let digest = Sha256::digest(b"abc");
        assert_eq!(
            decode_sha256(&hex::encode(digest)).as_deref(),
            Some(digest.as_slice())
        );
        assert_eq!(
            decode_sha256(&STANDARD.encode(digest)).as_deref(),
            Some(digest.as_slice())
        );
        assert_eq!(decode_sha256("nope"), None);
    }

    #[test]
    fn multipart_bodies_carry_the_three_fields() {
        let (boundary, body) = multipart_body(b"\x89PNG", "image/png", "a\"b.png");
        let text = String::from_utf8_lossy(&body);
        assert!(text.starts_with(&format!("--{boundary}\r\n")));
        assert!(text.contains("name=\"messaging_product\"\r\n\r\nwhatsapp\r\n"));
        assert!(
            text.contains("filename=\"ab.png\"\r\nContent-Type: image/png\r\n\r\n\u{FFFD}PNG\r\n")
        );
        assert!(text.ends_with(&format!("--{boundary}--\r\n")));
    }
}

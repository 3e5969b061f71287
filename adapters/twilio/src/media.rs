//! Inbound media downloads.
//!
//! `MediaUrl{N}` points at Twilio's API (`…/Messages/MM…/Media/ME…`), which may require
//! basic auth (a Console setting) and usually redirects to a short-lived CDN link. The
//! account's credentials are sent only to the configured API host; reqwest drops the
//! `Authorization` header when a redirect leaves that host, so the CDN never sees them.
//!
//! Outbound media needs no upload: Twilio fetches a public `MediaUrl`, which the router
//! signs (so `upload_media` keeps its `Unsupported` default).

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use switchboard_core::media::{MB, MediaLimit, mime_essence};
use switchboard_core::{
    AccountContext, ChannelError, ErrorKind, FetchedMedia, MediaItem, MediaKind, retry_after_header,
};

use crate::config::{TwilioConfig, credentials};
use crate::errors::error_from_transport;

/// Downloads may be large and slow; the 15 s API timeout does not fit them.
const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(120);

/// Twilio's WhatsApp limits: 16 MB per message, images 5 MB; JPEG/PNG
/// images, MP4 video, OGG/AMR/3GP/AAC/MPEG audio, PDF/DOC/DOCX/PPTX/XLSX documents.
pub fn media_limit(kind: MediaKind) -> MediaLimit {
    match kind {
        MediaKind::Image => MediaLimit {
            max_bytes: 5 * MB,
            mime_types: &["image/jpeg", "image/png"],
        },
        MediaKind::Video => MediaLimit {
            max_bytes: 16 * MB,
            mime_types: &["video/mp4"],
        },
        MediaKind::Audio => MediaLimit {
            max_bytes: 16 * MB,
            mime_types: &[
                "audio/ogg",
                "audio/amr",
                "audio/3gpp",
                "audio/aac",
                "audio/mpeg",
            ],
        },
        MediaKind::Document => MediaLimit {
            max_bytes: 16 * MB,
            mime_types: &[
                "application/pdf",
                "application/msword",
                "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
                "application/vnd.openxmlformats-officedocument.presentationml.presentation",
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            ],
        },
        // Stickers only arrive inbound (image/webp); Twilio sends none.
        _ => MediaLimit {
            max_bytes: 16 * MB,
            mime_types: &[],
        },
    }
}

/// Twilio's MMS limits: 5 MB per message; JPEG/PNG/GIF images are formatted for the
/// handset, other types (video, audio, PDF, vCard) are passed through as they are.
pub fn mms_media_limit(kind: MediaKind) -> MediaLimit {
    let mime_types: &'static [&'static str] = match kind {
        MediaKind::Image => &["image/jpeg", "image/png", "image/gif"],
        MediaKind::Video => &["video/mp4", "video/3gpp"],
        MediaKind::Audio => &[
            "audio/mpeg",
            "audio/mp4",
            "audio/amr",
            "audio/3gpp",
            "audio/ogg",
        ],
        MediaKind::Document => &["application/pdf", "text/vcard", "text/x-vcard"],
        _ => &[],
    };
    MediaLimit {
        max_bytes: 5 * MB,
        mime_types,
    }
}

/// `scheme://host:port` of a URL, for comparing where credentials may go.
fn origin(url: &str) -> Option<(String, String, Option<u16>)> {
    let u = url::Url::parse(url).ok()?;
    Some((
        u.scheme().to_owned(),
        u.host_str()?.to_ascii_lowercase(),
        u.port_or_known_default(),
    ))
}

/// Downloads one `MediaUrl`.
pub(crate) async fn fetch(
    http: &reqwest::Client,
    config: &TwilioConfig,
    account: &AccountContext,
    item: &MediaItem,
    max_bytes: u64,
) -> Result<FetchedMedia, ChannelError> {
    let url = item
        .url
        .as_deref()
        .filter(|u| !u.is_empty())
        .ok_or_else(|| ChannelError::invalid("the media item has no MediaUrl"))?;
    let target = origin(url)
        .filter(|(scheme, _, _)| scheme == "https" || scheme == "http")
        .ok_or_else(|| ChannelError::permanent("the MediaUrl is not an http(s) URL"))?;
    let mut request = http
        .get(url)
        .timeout(DOWNLOAD_TIMEOUT)
        .header(http::header::ACCEPT, "*/*");
    if origin(config.api_base()).as_ref() == Some(&target) {
        let (sid, token) = credentials(account)?;
        request = request.basic_auth(sid, Some(token));
    }
    let mut resp = request
        .send()
        .await
        .map_err(|e| error_from_transport(e, false))?;
    let status = resp.status().as_u16();
    if !(200..300).contains(&status) {
        let kind = match status {
            429 => ErrorKind::RateLimited,
            401 | 403 => ErrorKind::Auth,
            404 | 410 => ErrorKind::Permanent,
            500..=599 => ErrorKind::Transient,
            _ => ErrorKind::Permanent,
        };
        let what = if matches!(status, 404 | 410) {
            "the media is gone from Twilio (deleted, or the URL is wrong)".to_owned()
        } else {
            format!("Twilio answered HTTP {status} to the media download")
        };
        let mut err = ChannelError::new(kind, what).with_provider_code(format!("http_{status}"));
        if kind == ErrorKind::RateLimited {
            err = err.with_retry_after(retry_after_header(resp.headers()));
        }
        return Err(err);
    }
    let served = resp
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(mime_essence)
        .filter(|m| !m.is_empty());
    let declared = item
        .mime_type
        .as_deref()
        .map(mime_essence)
        .filter(|m| !m.is_empty());
    // Generic types say nothing; a specific one that contradicts MediaContentType does.
    if let (Some(d), Some(s)) = (&declared, &served)
        && d != s
        && s != "application/octet-stream"
        && s != "binary/octet-stream"
    {
        return Err(ChannelError::permanent(format!(
            "Twilio declared {d} but served {s}"
        )));
    }
    if resp.content_length().is_some_and(|n| n > max_bytes) {
        return Err(too_large(max_bytes));
    }
    let mut buf = BytesMut::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| error_from_transport(e, false))?
    {
        if (buf.len() + chunk.len()) as u64 > max_bytes {
            return Err(too_large(max_bytes));
        }
        buf.extend_from_slice(&chunk);
    }
    let bytes: Bytes = buf.freeze();
    Ok(FetchedMedia {
        bytes,
        mime_type: declared
            .or(served)
            .unwrap_or_else(|| "application/octet-stream".to_owned()),
        filename: item.filename.clone(),
    })
}

fn too_large(max_bytes: u64) -> ChannelError {
    ChannelError::permanent(format!(
        "the media is larger than this kind's limit of {max_bytes} bytes"
    ))
    .with_provider_code("media_too_large")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_follow_twilio_documentation() {
        assert_eq!(media_limit(MediaKind::Image).max_bytes, 5 * MB);
        assert!(media_limit(MediaKind::Image).allows_mime("image/png"));
        assert!(!media_limit(MediaKind::Image).allows_mime("image/gif"));
        assert!(media_limit(MediaKind::Audio).allows_mime("audio/ogg; codecs=opus"));
        assert_eq!(media_limit(MediaKind::Document).max_bytes, 16 * MB);
    }

    #[test]
    fn origins_compare_scheme_host_and_port() {
        assert_eq!(
            origin("https://api.twilio.com/2010-04-01/x"),
            origin("https://API.twilio.com:443")
        );
        assert_ne!(
            origin("https://api.twilio.com/x"),
            origin("https://mms.twiliocdn.com/x")
        );
        assert_ne!(
            origin("http://127.0.0.1:1/x"),
            origin("http://127.0.0.1:2/x")
        );
    }
}

//! Media bytes as adapters hand them over, and the per-kind limits a channel documents.
//!
//! Downloads are held in memory ([`bytes::Bytes`]): the largest item any provider carries is
//! 100 MB (a Meta document), which is acceptable per item for a router; streaming to disk
//! would be the next step if limits grow.

use bytes::Bytes;

/// One downloaded media item.
#[derive(Clone, PartialEq, Eq)]
pub struct FetchedMedia {
    pub bytes: Bytes,
    /// The provider's MIME type (essence, lowercase), e.g. `image/jpeg`.
    pub mime_type: String,
    pub filename: Option<String>,
}

impl std::fmt::Debug for FetchedMedia {
    // Media bytes are personal data: never printed, only counted.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FetchedMedia")
            .field("len", &self.bytes.len())
            .field("mime_type", &self.mime_type)
            .field("filename", &self.filename)
            .finish()
    }
}

/// What a channel accepts for one media kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MediaLimit {
    pub max_bytes: u64,
    /// MIME type essences accepted for sending; empty means any.
    pub mime_types: &'static [&'static str],
}

impl MediaLimit {
    /// Whether `mime` (parameters ignored, any case) is accepted.
    pub fn allows_mime(&self, mime: &str) -> bool {
        let essence = mime_essence(mime);
        self.mime_types.is_empty() || self.mime_types.iter().any(|m| *m == essence)
    }

    /// Whether a MIME type and size are both accepted.
    pub fn allows(&self, mime: &str, size: u64) -> bool {
        size <= self.max_bytes && self.allows_mime(mime)
    }
}

/// One megabyte as providers count it (10^6 bytes would be stricter; both providers publish
/// "MB" and reject by binary size in practice, so the binary value is used).
pub const MB: u64 = 1024 * 1024;

/// The default limit of a channel that documents none: WhatsApp's common 16 MB, any type.
pub const DEFAULT_MEDIA_LIMIT: MediaLimit = MediaLimit {
    max_bytes: 16 * MB,
    mime_types: &[],
};

/// A MIME type without parameters, trimmed and lowercase (`Image/JPEG; q=1` → `image/jpeg`).
pub fn mime_essence(mime: &str) -> String {
    mime.split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// A file extension for a MIME type, for stored file names and downloads.
pub fn extension_for(mime: &str) -> &'static str {
    match mime_essence(mime).as_str() {
        "image/jpeg" => "jpg",
        "image/png" => "png",
        "image/webp" => "webp",
        "video/mp4" => "mp4",
        "video/3gpp" | "audio/3gpp" => "3gp",
        "audio/aac" => "aac",
        "audio/amr" => "amr",
        "audio/mpeg" => "mp3",
        "audio/mp4" => "m4a",
        "audio/ogg" => "ogg",
        "application/pdf" => "pdf",
        "text/plain" => "txt",
        _ => "bin",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mime_matching_ignores_case_and_parameters() {
        let l = MediaLimit {
            max_bytes: 10,
            mime_types: &["audio/ogg"],
        };
        assert!(l.allows("Audio/OGG; codecs=opus", 10));
        assert!(!l.allows("audio/ogg", 11));
        assert!(!l.allows("audio/mpeg", 1));
        assert!(DEFAULT_MEDIA_LIMIT.allows_mime("application/x-anything"));
        let f = FetchedMedia {
            bytes: Bytes::from_static(b"secret"),
            mime_type: "text/plain".into(),
            filename: None,
        };
        assert!(!format!("{f:?}").contains("secret"));
    }
}

//! Media settings and the states of a media row.

use std::time::Duration;

/// The id prefix of stored media.
pub const MEDIA: &str = "med";

pub const PENDING: &str = "pending";
pub const STORED: &str = "stored";
pub const FAILED: &str = "failed";

/// How long a signed public URL stays valid. Twilio fetches `MediaUrl` when it processes
/// the message, and may hold a message in its queue for up to 4 hours.
pub const PUBLIC_URL_TTL: Duration = Duration::from_secs(6 * 60 * 60);

/// Meta keeps uploaded media 30 days; a cached upload older than this is
/// uploaded again.
pub(crate) const UPLOAD_REUSE_MS: i64 = 29 * 24 * 60 * 60 * 1000;

/// Fetcher settings.
#[derive(Clone, Debug)]
pub struct MediaConfig {
    /// Downloads before an item is marked failed.
    pub max_attempts: i32,
    /// First retry delay; doubles per attempt (full jitter), capped by `max_backoff`.
    pub base_backoff: Duration,
    pub max_backoff: Duration,
    /// How long a claimed item stays leased to this process.
    pub lease: Duration,
    /// Items fetched per round (concurrently).
    pub batch: u64,
}

impl Default for MediaConfig {
    fn default() -> Self {
        // 20 attempts, 2 s doubling to a 1 h cap: several hours of provider outage are
        // survived, well inside Meta's 7-day media-id lifetime.
        Self {
            max_attempts: 20,
            base_backoff: Duration::from_secs(2),
            max_backoff: Duration::from_secs(60 * 60),
            lease: Duration::from_secs(300),
            batch: 16,
        }
    }
}

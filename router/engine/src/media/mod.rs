//! Media that is never lost.
//!
//! Provider links do not last (Meta's download URLs expire in minutes and its media ids in
//! 7 days; Twilio's media can be deleted), so every inbound media item is downloaded and
//! kept:
//!
//! - The webhook transaction writes one `media` row per item (`pending`), beside the
//!   message; the webhook is answered without waiting for any download.
//! - The fetcher ( ([`fetch::MediaFetcher`]), run with the delivery engine) claims due
//!   rows with a lease (like the outbox), downloads through the channel's adapter with the
//!   provider's per-kind size limit, and stores the bytes in the [`MediaStore`]. A transient
//!   failure is retried with exponential backoff and full jitter; a permanent one (404,
//!   too large, gone) or the last attempt marks the row `failed` with the reason. The
//!   message itself is never touched.
//! - The API serves stored bytes to the owning tenant (`GET /v1/media/{id}`) and takes
//!   uploads (`POST /v1/media`) that `send()` can reference by id. At delivery an upload
//!   becomes a provider media id (channels that upload: Meta; cached per account so a retry
//!   does not upload again) or a signed, expiring public URL (channels that fetch links:
//!   Twilio).
//!
//! Bytes are held in memory per item (at most 100 MB, Meta's document limit) and are never
//! logged.

pub mod config;
pub mod fetch;
pub mod library;
pub(crate) mod queue;
#[cfg(feature = "s3")]
pub mod s3;
pub(crate) mod signer;
pub mod storage;
pub mod view;

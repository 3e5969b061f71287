//! Media in an S3-compatible object store (feature `s3`): [`S3MediaStore`], with the local
//! store's layout (`ab/cd/<sha256>`) under an optional prefix.

use std::fmt;
use std::io;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::list::{PaginatedListOptions, PaginatedListStore};
use object_store::path::Path;
use object_store::{BackoffConfig, ClientOptions, ObjectStoreExt, PutPayload, RetryConfig};
use switchboard_core::secrecy::{ExposeSecret, SecretString};

use crate::media::storage::{MediaBody, MediaStore, media_key_parts};

/// Where the bucket is and how to sign for it.
#[derive(Clone)]
pub struct S3Settings {
    pub bucket: String,
    /// Keys go under `<prefix>/`; `None` or empty: at the bucket's root.
    pub prefix: Option<String>,
    /// An S3-compatible server's URL (`https://minio.example:9000`), addressed path-style
    /// (`<endpoint>/<bucket>/<key>`). `None`: AWS, virtual-hosted style.
    pub endpoint: Option<String>,
    pub region: String,
    /// Static credentials; both or neither. Neither: the instance's role (EC2 metadata).
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<SecretString>,
    /// Allows an `http://` endpoint; off, only HTTPS is spoken.
    pub allow_http: bool,
}

impl fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Settings")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "[redacted]"),
            )
            .field("allow_http", &self.allow_http)
            .finish()
    }
}

/// Media bytes as objects in a bucket. `put` is one PUT (S3 has the object whole or not at
/// all, so a crash never leaves a partial object under a key) and skips a key already
/// stored; `get` streams the object's body as it arrives.
#[derive(Debug)]
pub struct S3MediaStore {
    store: AmazonS3,
    /// The same bucket with one quick attempt per request, for [`Self::check_reachable`].
    probe: AmazonS3,
    bucket: String,
    prefix: Option<Path>,
}

impl S3MediaStore {
    /// Builds the client (no request is made: see [`Self::check_reachable`]).
    ///
    /// # Errors
    /// Settings the client refuses (a malformed endpoint, half the credentials).
    pub fn new(settings: &S3Settings) -> io::Result<Self> {
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(&settings.bucket)
            .with_region(&settings.region);
        if let Some(endpoint) = &settings.endpoint {
            builder = builder
                .with_endpoint(endpoint)
                .with_virtual_hosted_style_request(false);
        }
        if let Some(id) = &settings.access_key_id {
            builder = builder.with_access_key_id(id);
        }
        if let Some(secret) = &settings.secret_access_key {
            builder = builder.with_secret_access_key(secret.expose_secret());
        }
        // A media item may stream to a slow client for longer than any whole-request
        // timeout: bound the connect and each read instead, so a stalled server still fails.
        // (Client options are given whole: `allow_http` is one of them.)
        let options = ClientOptions::new()
            .with_allow_http(settings.allow_http)
            .with_timeout_disabled()
            .with_connect_timeout(Duration::from_secs(5))
            .with_read_timeout(Duration::from_secs(30));
        let build = |builder: AmazonS3Builder| {
            builder.build().map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("S3 bucket {}: {e}", settings.bucket),
                )
            })
        };
        // A few quick retries: the fetcher retries a failed put with its own backoff, and a
        // client reading media should hear of an outage in seconds, not minutes.
        let store = build(
            builder
                .clone()
                .with_client_options(options.clone())
                .with_retry(RetryConfig {
                    backoff: BackoffConfig::default(),
                    max_retries: 3,
                    retry_timeout: Duration::from_secs(30),
                }),
        )?;
        let probe = build(
            builder
                .with_client_options(options.with_read_timeout(Duration::from_secs(5)))
                .with_retry(RetryConfig {
                    backoff: BackoffConfig::default(),
                    max_retries: 1,
                    retry_timeout: Duration::from_secs(10),
                }),
        )?;
        let prefix = settings
            .prefix
            .as_deref()
            .map(|p| p.trim_matches('/'))
            .filter(|p| !p.is_empty())
            .map(Path::from);
        Ok(Self {
            store,
            probe,
            bucket: settings.bucket.clone(),
            prefix,
        })
    }

    /// One cheap request (a listing of at most one key under the prefix) proving that the
    /// bucket exists, answers, and takes these credentials: a start-up check. (A read of a
    /// missing key would not do: S3 answers 404 alike for a missing bucket.)
    ///
    /// # Errors
    /// What the store answered, or why it could not be reached.
    pub async fn check_reachable(&self) -> io::Result<()> {
        let prefix = self.prefix.as_ref().map(|p| format!("{p}/"));
        let one = PaginatedListOptions {
            max_keys: Some(1),
            ..PaginatedListOptions::default()
        };
        match self.probe.list_paginated(prefix.as_deref(), one).await {
            Ok(_) => Ok(()),
            Err(e) => Err(io::Error::other(format!(
                "S3 bucket {} is not reachable: {e}",
                self.bucket
            ))),
        }
    }

    /// The object's key: `<prefix>/ab/cd/<sha256>`.
    fn key(&self, sha256: &str) -> io::Result<Path> {
        let [a, b, name] = media_key_parts(sha256)?;
        let base = self.prefix.clone().unwrap_or_default();
        Ok(base.join(a).join(b).join(name))
    }

    fn error(&self, action: &str, key: &Path, e: object_store::Error) -> io::Error {
        io::Error::other(format!(
            "S3 bucket {}: {action} {key} failed: {e}",
            self.bucket
        ))
    }
}

#[async_trait]
impl MediaStore for S3MediaStore {
    async fn put(&self, sha256: &str, bytes: Bytes) -> io::Result<()> {
        let key = self.key(sha256)?;
        // Content-addressed: an object under this key already holds these bytes.
        match self.store.head(&key).await {
            Ok(_) => return Ok(()),
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(self.error("checking", &key, e)),
        }
        self.store
            .put(&key, PutPayload::from(bytes))
            .await
            .map_err(|e| self.error("storing", &key, e))?;
        Ok(())
    }

    async fn get(&self, sha256: &str) -> io::Result<Option<MediaBody>> {
        let key = self.key(sha256)?;
        let found = match self.store.get(&key).await {
            Ok(found) => found,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(self.error("reading", &key, e)),
        };
        let len = found.meta.size;
        let bucket = self.bucket.clone();
        let stream = found.into_stream().map(move |chunk| {
            chunk.map_err(|e| {
                io::Error::other(format!("S3 bucket {bucket}: reading {key} failed: {e}"))
            })
        });
        Ok(Some(MediaBody {
            len,
            stream: stream.boxed(),
        }))
    }
}

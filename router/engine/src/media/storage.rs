//! Where media bytes live: the [`MediaStore`] trait and the local directory store.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use futures::stream::BoxStream;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A stored item's bytes as a stream, with its length.
pub struct MediaBody {
    pub len: u64,
    pub stream: BoxStream<'static, io::Result<Bytes>>,
}

impl MediaBody {
    /// Reads the whole body (for an upload to a provider).
    ///
    /// # Errors
    /// The storage's I/O error.
    pub async fn collect(mut self) -> io::Result<Bytes> {
        let mut buf = BytesMut::with_capacity(usize::try_from(self.len).unwrap_or(0));
        while let Some(chunk) = self.stream.next().await {
            buf.extend_from_slice(&chunk?);
        }
        Ok(buf.freeze())
    }
}

/// Where media bytes live, keyed by the hex SHA-256 of the bytes (content-addressed, so a
/// retried write or the same file twice is stored once). Implemented by [`LocalMediaStore`]
/// and, with feature `s3`, `media::s3::S3MediaStore`; given to
/// [`crate::RouterBuilder::media_store`].
#[async_trait]
pub trait MediaStore: Send + Sync + 'static {
    /// Stores `bytes` under `sha256` (lowercase hex of the bytes). Durable when it returns.
    async fn put(&self, sha256: &str, bytes: Bytes) -> io::Result<()>;

    /// The bytes stored under `sha256`, or `None`.
    async fn get(&self, sha256: &str) -> io::Result<Option<MediaBody>>;
}

/// The default store: files under a directory, `ab/cd/<sha256>`, written to a temporary
/// file, fsynced, then renamed, so a crash never leaves a partial file under a key.
#[derive(Clone, Debug)]
pub struct LocalMediaStore {
    dir: PathBuf,
}

impl LocalMediaStore {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, sha256: &str) -> io::Result<PathBuf> {
        let [a, b, name] = media_key_parts(sha256)?;
        Ok(self.dir.join(a).join(b).join(name))
    }
}

#[async_trait]
impl MediaStore for LocalMediaStore {
    async fn put(&self, sha256: &str, bytes: Bytes) -> io::Result<()> {
        let path = self.path(sha256)?;
        if tokio::fs::try_exists(&path).await? {
            return Ok(());
        }
        let parent = path
            .parent()
            .ok_or_else(|| io::Error::other("media path has no parent"))?;
        tokio::fs::create_dir_all(parent).await?;
        let tmp = parent.join(format!(".{sha256}.{}.tmp", uuid::Uuid::new_v4().simple()));
        let mut file = tokio::fs::File::create(&tmp).await?;
        let written = async {
            file.write_all(&bytes).await?;
            file.sync_all().await
        }
        .await;
        drop(file);
        if let Err(e) = written {
            // Best effort: a leftover temporary file is harmless.
            if let Err(rm) = tokio::fs::remove_file(&tmp).await {
                tracing::debug!(error = %rm, "Could not remove a temporary media file.");
            }
            return Err(e);
        }
        tokio::fs::rename(&tmp, &path).await
    }

    async fn get(&self, sha256: &str) -> io::Result<Option<MediaBody>> {
        let path = self.path(sha256)?;
        let file = match tokio::fs::File::open(&path).await {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let len = file.metadata().await?.len();
        let stream = futures::stream::unfold(Some(file), |state| async move {
            let mut file = state?;
            let mut buf = vec![0u8; 64 * 1024];
            match file.read(&mut buf).await {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    Some((Ok(Bytes::from(buf)), Some(file)))
                }
                Err(e) => Some((Err(e), None)),
            }
        });
        Ok(Some(MediaBody {
            len,
            stream: stream.boxed(),
        }))
    }
}

/// A key's place in every store's layout, `ab/cd/<sha256>`: its first two hex pairs, then
/// the key. Keys come from our own hashing, but a path is only ever built from 64 hex digits.
pub(crate) fn media_key_parts(sha256: &str) -> io::Result<[&str; 3]> {
    if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "a media key is 64 hex digits",
        ));
    }
    Ok([&sha256[..2], &sha256[2..4], sha256])
}

/// Shared handle type of the store.
pub type SharedMediaStore = Arc<dyn MediaStore>;

/// Every byte is hashed once, here; the digest names the stored file.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_local_store_is_content_addressed_and_refuses_odd_keys() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalMediaStore::new(dir.path());
        let bytes = Bytes::from_static(b"hello media");
        let key = sha256_hex(&bytes);
        store.put(&key, bytes.clone()).await.unwrap();
        store.put(&key, bytes.clone()).await.unwrap();
        let got = store.get(&key).await.unwrap().unwrap();
        assert_eq!(got.len, bytes.len() as u64);
        assert_eq!(got.collect().await.unwrap(), bytes);
        assert!(store.get(&"0".repeat(64)).await.unwrap().is_none());
        assert!(store.get("../etc/passwd").await.is_err());
    }
}

//! A real S3-compatible server for the tests: moto in server mode (PyPI
//! `moto[server]`), a child process on a free loopback port, killed when dropped.

use std::io::Read;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use object_store::ObjectStoreExt;
use object_store::aws::AmazonS3Builder;
use sha2::{Digest, Sha256};
use switchboard_router::media::s3::{S3MediaStore, S3Settings};
use switchboard_router::media::storage::{LocalMediaStore, SharedMediaStore};
use tokio::process::{Child, Command};

use crate::support::binary::free_port;

/// moto accepts any credentials; these are the ones every test signs with.
pub const ACCESS_KEY_ID: &str = "sb-test-access-key";
pub const SECRET_ACCESS_KEY: &str = "sb-test-secret-key";
const INSTALL: &str = "install it with `pip install 'moto[server]'`";

/// A running `moto_server`.
pub struct Moto {
    /// Killed on drop.
    _child: Child,
    /// `http://127.0.0.1:<port>`.
    pub endpoint: String,
    http: reqwest::Client,
    _log: tempfile::NamedTempFile,
}

impl Moto {
    /// Starts `moto_server` on a free port and waits until it answers. Fails (never skips)
    /// when moto is not installed.
    pub async fn start() -> Self {
        let port = free_port();
        let log = tempfile::NamedTempFile::new().unwrap();
        let mut child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log.reopen().unwrap())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run moto_server ({e}): {INSTALL}"));
        let endpoint = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                let mut said = String::new();
                drop(log.reopen().unwrap().read_to_string(&mut said));
                panic!("moto_server exited ({status}); {INSTALL}. It said:\n{said}");
            }
            if http
                .get(format!("{endpoint}/moto-api/"))
                .send()
                .await
                .is_ok()
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "moto_server did not answer on {endpoint} within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Self {
            _child: child,
            endpoint,
            http,
            _log: log,
        }
    }

    /// Creates `bucket` (moto takes unsigned requests).
    pub async fn create_bucket(&self, bucket: &str) {
        let r = self
            .http
            .put(format!("{}/{bucket}", self.endpoint))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "create bucket {bucket}: {r:?}");
    }

    /// The settings of a store on `bucket` of this server.
    pub fn settings(&self, bucket: &str, prefix: Option<&str>) -> S3Settings {
        S3Settings {
            bucket: bucket.to_owned(),
            prefix: prefix.map(str::to_owned),
            endpoint: Some(self.endpoint.clone()),
            region: "us-east-1".to_owned(),
            access_key_id: Some(ACCESS_KEY_ID.to_owned()),
            secret_access_key: Some(SECRET_ACCESS_KEY.to_owned().into()),
            allow_http: true,
        }
    }

    /// The object at `key` of `bucket`, read with a client of its own (signed: moto refuses
    /// anonymous reads), not through the store under test; `None` when there is none.
    pub async fn object(&self, bucket: &str, key: &str) -> Option<Vec<u8>> {
        let client = AmazonS3Builder::new()
            .with_bucket_name(bucket)
            .with_region("us-east-1")
            .with_endpoint(&self.endpoint)
            .with_allow_http(true)
            .with_access_key_id(ACCESS_KEY_ID)
            .with_secret_access_key(SECRET_ACCESS_KEY)
            .build()
            .unwrap();
        match client.get(&object_store::path::Path::from(key)).await {
            Ok(found) => Some(found.bytes().await.unwrap().to_vec()),
            Err(object_store::Error::NotFound { .. }) => None,
            Err(e) => panic!("GET {bucket}/{key}: {e}"),
        }
    }
}

/// Where a test's media bytes go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MediaBackend {
    Local,
    S3,
}

impl MediaBackend {
    pub const ALL: [Self; 2] = [Self::Local, Self::S3];
}

/// A media store for one test, and what keeps it alive: a temporary directory, or a moto
/// server with the bucket `media` (keys under the prefix `sb`).
pub struct TestMedia {
    pub store: SharedMediaStore,
    held: Held,
}

enum Held {
    Dir(tempfile::TempDir),
    Moto(Box<Moto>),
}

pub const BUCKET: &str = "media";
pub const PREFIX: &str = "sb";

impl TestMedia {
    pub async fn new(backend: MediaBackend) -> Self {
        match backend {
            MediaBackend::Local => {
                let dir = tempfile::tempdir().unwrap();
                Self {
                    store: Arc::new(LocalMediaStore::new(dir.path())),
                    held: Held::Dir(dir),
                }
            }
            MediaBackend::S3 => {
                let moto = Moto::start().await;
                moto.create_bucket(BUCKET).await;
                let store = S3MediaStore::new(&moto.settings(BUCKET, Some(PREFIX))).unwrap();
                store.check_reachable().await.unwrap();
                Self {
                    store: Arc::new(store),
                    held: Held::Moto(Box::new(moto)),
                }
            }
        }
    }

    /// The bytes kept for `bytes`' digest, read from the directory or the bucket itself at
    /// the layout's key (`ab/cd/<sha256>`), not through the store.
    pub async fn kept(&self, bytes: &[u8]) -> Option<Vec<u8>> {
        let sha = hex::encode(Sha256::digest(bytes));
        let key = format!("{}/{}/{sha}", &sha[..2], &sha[2..4]);
        match &self.held {
            Held::Dir(dir) => std::fs::read(dir.path().join(key)).ok(),
            Held::Moto(moto) => moto.object(BUCKET, &format!("{PREFIX}/{key}")).await,
        }
    }
}

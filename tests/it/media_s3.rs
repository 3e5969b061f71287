//! Media in an S3-compatible object store: `S3MediaStore` against a real S3 server (moto,
//! started by the test), and the `switchboard` binary refusing to start on a bucket it
//! cannot reach. The media suite (`media.rs`) runs end to end on this store too.

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use sha2::{Digest, Sha256};
use switchboard_router::media::s3::S3MediaStore;
use switchboard_router::media::storage::MediaStore;

use crate::support::binary::{self, free_port};
use crate::support::s3::{ACCESS_KEY_ID, Moto, SECRET_ACCESS_KEY};

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// `ab/cd/<sha256>`, the local store's layout.
fn layout_key(sha: &str) -> String {
    format!("{}/{}/{sha}", &sha[..2], &sha[2..4])
}

#[tokio::test]
async fn the_s3_store_round_trips_bytes_under_the_local_layout() {
    let moto = Moto::start().await;
    moto.create_bucket("media").await;
    for prefix in [Some("tenants/acme/"), None] {
        let store = S3MediaStore::new(&moto.settings("media", prefix)).unwrap();
        store.check_reachable().await.unwrap();
        let bytes = Bytes::from(format!("hello media {prefix:?}"));
        let sha = sha256_hex(&bytes);
        assert!(store.get(&sha).await.unwrap().is_none(), "not stored yet");

        store.put(&sha, bytes.clone()).await.unwrap();
        // Content-addressed: a second put of the same key is fine and changes nothing.
        store.put(&sha, bytes.clone()).await.unwrap();
        let got = store.get(&sha).await.unwrap().expect("stored");
        assert_eq!(got.len, bytes.len() as u64);
        assert_eq!(got.collect().await.unwrap(), bytes);

        // In the bucket at the layout's key, under the prefix without doubled slashes.
        let key = match prefix {
            Some(_) => format!("tenants/acme/{}", layout_key(&sha)),
            None => layout_key(&sha),
        };
        assert_eq!(
            moto.object("media", &key).await.as_deref(),
            Some(&bytes[..]),
            "{key}"
        );
        // A missing key is None; a key that is not a digest is refused before any request.
        assert!(store.get(&"0".repeat(64)).await.unwrap().is_none());
        let odd = store.get("../../etc/passwd").await.err().expect("refused");
        assert_eq!(odd.kind(), std::io::ErrorKind::InvalidInput);
        assert!(store.put("AB", bytes.clone()).await.is_err());
    }
}

#[tokio::test]
async fn a_large_item_streams_out_of_s3_in_pieces() {
    let moto = Moto::start().await;
    moto.create_bucket("big").await;
    let store = S3MediaStore::new(&moto.settings("big", None)).unwrap();
    let bytes: Bytes = (0..24 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect::<Vec<u8>>()
        .into();
    let sha = sha256_hex(&bytes);
    store.put(&sha, bytes.clone()).await.unwrap();

    let body = store.get(&sha).await.unwrap().expect("stored");
    assert_eq!(body.len, bytes.len() as u64);
    // Streamed as it arrives: many pieces, none of them the whole item, in order.
    let mut stream = body.stream;
    let (mut pieces, mut largest, mut got) = (0usize, 0usize, Vec::with_capacity(bytes.len()));
    while let Some(piece) = stream.next().await {
        let piece = piece.unwrap();
        pieces += 1;
        largest = largest.max(piece.len());
        got.extend_from_slice(&piece);
    }
    assert!(pieces > 10, "{pieces} pieces");
    assert!(largest < bytes.len() / 4, "largest piece {largest} bytes");
    assert!(got == bytes, "the bytes came back different");
}

#[tokio::test]
async fn an_unreachable_store_is_an_error_naming_the_bucket_not_a_missing_item() {
    // Nothing listens on this port.
    let endpoint = format!("http://127.0.0.1:{}", free_port());
    let moto_shaped = switchboard_router::media::s3::S3Settings {
        bucket: "media".to_owned(),
        prefix: None,
        endpoint: Some(endpoint),
        region: "us-east-1".to_owned(),
        access_key_id: Some(ACCESS_KEY_ID.to_owned()),
        secret_access_key: Some(SECRET_ACCESS_KEY.to_owned().into()),
        allow_http: true,
    };
    // The secret never shows in the settings' Debug.
    let debug = format!("{moto_shaped:?}");
    assert!(!debug.contains(SECRET_ACCESS_KEY), "{debug}");
    let store = S3MediaStore::new(&moto_shaped).unwrap();
    let started = Instant::now();
    let sha = "ab".repeat(32);
    let read = store.get(&sha).await.err().expect("an error, not None");
    assert!(read.to_string().contains("S3 bucket media"), "{read}");
    let write = store.put(&sha, Bytes::from_static(b"x")).await.unwrap_err();
    assert!(write.to_string().contains("S3 bucket media"), "{write}");
    let check = store.check_reachable().await.unwrap_err();
    assert!(check.to_string().contains("not reachable"), "{check}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "an outage is reported within seconds, took {:?}",
        started.elapsed()
    );
}

/// `switchboard serve` with `SWITCHBOARD_MEDIA_STORE=s3`: an unreachable endpoint or a
/// bucket that does not exist stops the start with a message saying so; a plain-HTTP
/// endpoint needs `SWITCHBOARD_S3_ALLOW_HTTP`; the bucket that exists serves.
#[tokio::test]
async fn the_binary_starts_only_on_a_bucket_it_can_reach() {
    let moto = Moto::start().await;
    moto.create_bucket("media").await;
    let dir = tempfile::tempdir().unwrap();
    let db = binary::sqlite_url(dir.path());
    let listen = format!("127.0.0.1:{}", free_port());
    let unreachable = format!("http://127.0.0.1:{}", free_port());
    let s3 = |endpoint: &str, bucket: &str, allow_http: &str| -> Vec<(String, String)> {
        [
            ("SWITCHBOARD_LISTEN", listen.as_str()),
            ("SWITCHBOARD_MEDIA_STORE", "s3"),
            ("SWITCHBOARD_S3_ENDPOINT", endpoint),
            ("SWITCHBOARD_S3_BUCKET", bucket),
            ("SWITCHBOARD_S3_ALLOW_HTTP", allow_http),
            ("SWITCHBOARD_S3_ACCESS_KEY_ID", ACCESS_KEY_ID),
            ("SWITCHBOARD_S3_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY),
            ("SWITCHBOARD_LOG", "debug"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    };
    let refused = |envs: Vec<(String, String)>| {
        let db = db.clone();
        let dir = dir.path().to_owned();
        async move {
            let envs: Vec<(&str, &str)> =
                envs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let out = binary::cli(&db, &dir, &["serve"], &envs).await;
            assert!(!out.status.success(), "started with {envs:?}");
            String::from_utf8_lossy(&out.stderr).into_owned()
        }
    };

    let said = refused(s3(&unreachable, "media", "true")).await;
    assert!(
        said.contains("error: S3 bucket media is not reachable"),
        "{said}"
    );
    let said = refused(s3(&moto.endpoint, "no-such-bucket", "true")).await;
    assert!(
        said.contains("error: S3 bucket no-such-bucket is not reachable"),
        "{said}"
    );
    let said = refused(s3(&moto.endpoint, "media", "false")).await;
    assert!(said.contains("SWITCHBOARD_S3_ALLOW_HTTP"), "{said}");
    let mut missing_bucket = s3(&moto.endpoint, "", "true");
    missing_bucket.retain(|(k, _)| k != "SWITCHBOARD_S3_BUCKET");
    let said = refused(missing_bucket).await;
    assert!(said.contains("SWITCHBOARD_S3_BUCKET is required"), "{said}");

    // The reachable bucket: the server starts, keeps an upload in the bucket and serves it
    // back, and its debug log holds no secret.
    let key = binary::create_tenant(&db, dir.path(), "acme").await;
    let log = dir.path().join("serve.log");
    let envs = s3(&moto.endpoint, "media", "true");
    let envs: Vec<(&str, &str)> = envs
        .iter()
        .filter(|(k, _)| k != "SWITCHBOARD_LISTEN")
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let server = binary::Server::start_logging_to(&db, dir.path(), &envs, &log).await;
    let http = reqwest::Client::new();
    let doc = b"%PDF-1.4 kept in S3".repeat(200);
    let up = http
        .post(format!("{}/v1/media?filename=kept.pdf", server.base_url))
        .bearer_auth(&key)
        .header("content-type", "application/pdf")
        .body(doc.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(up.status().as_u16(), 201);
    let up: serde_json::Value = up.json().await.unwrap();
    let in_bucket = moto.object("media", &layout_key(&sha256_hex(&doc))).await;
    assert_eq!(in_bucket.as_deref(), Some(&doc[..]));
    let back = http
        .get(format!(
            "{}/v1/media/{}",
            server.base_url,
            up["id"].as_str().unwrap()
        ))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(back.status().as_u16(), 200);
    assert_eq!(back.bytes().await.unwrap(), doc);
    assert!(server.stop().await.success());
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("Media are kept in S3."), "{logged}");
    assert!(!logged.contains(SECRET_ACCESS_KEY), "{logged}");
}

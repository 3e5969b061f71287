//! Media that is never lost. The real Twilio and Meta adapters against their fake
//! servers, the router's HTTP app on loopback, on SQLite and PostgreSQL.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use switchboard_http as http;
use switchboard_meta_cloud::testing::{self as meta, FakeGraph};
use switchboard_router::Router;
use switchboard_router::media::config::MediaConfig;
use switchboard_router::media::storage::LocalMediaStore;
use switchboard_router::store::entity::messages;
use switchboard_twilio::testing::{self as twilio, FakeTwilio, TEST_ACCOUNT_SID, TEST_AUTH_TOKEN};

use crate::support::providers::{
    APP_SECRET, META_DISPLAY, META_TOKEN, PERSON, PERSON_WA, PNID, PUBLIC, TWILIO_NUMBER,
    TWILIO_PATH, builder, connect_both, fakes, receive_meta, set,
};
use crate::support::s3::{MediaBackend, TestMedia};
use crate::support::{TestDb, on_each_backend};

struct Env {
    router: Router,
    key: String,
    base: String,
    http: reqwest::Client,
    twilio: FakeTwilio,
    graph: FakeGraph,
    media: TestMedia,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Env {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Runs `scenario` with each media store (the local directory, an S3 bucket on moto), each
/// on every database backend.
async fn on_each_store<F, Fut>(scenario: F)
where
    F: Fn(Arc<TestDb>, MediaBackend) -> Fut,
    Fut: Future<Output = ()>,
{
    for media in MediaBackend::ALL {
        eprintln!("-- media in {media:?}");
        on_each_backend(|db| scenario(db, media)).await;
    }
}

async fn env(db: &TestDb, media: MediaBackend) -> Env {
    let (twilio, graph) = fakes().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let media = TestMedia::new(media).await;
    let router = builder(db, &twilio, &graph)
        .await
        .media_store(media.store.clone())
        .media(MediaConfig {
            base_backoff: Duration::from_millis(5),
            max_backoff: Duration::from_millis(20),
            ..MediaConfig::default()
        })
        // Signed links point at this in-process server, where the fake Twilio fetches them.
        .public_url(base.clone())
        .build();
    let app = http::app(http::AppState::new(router.clone(), None));
    let server = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    let created = router.tenants().create("acme").await.unwrap();
    connect_both(&router, &created.tenant_id, APP_SECRET).await;
    Env {
        router,
        key: created.key,
        base,
        http: reqwest::Client::new(),
        twilio,
        graph,
        media,
        server,
    }
}

/// A Twilio inbound message from PERSON with these media URLs and types.
async fn twilio_inbound(e: &Env, sid: &str, media: &[(String, &str)]) {
    let mut form = twilio::inbound_text_form(TEST_ACCOUNT_SID, PERSON, TWILIO_NUMBER, "look", sid);
    set(&mut form, "NumMedia", &media.len().to_string());
    for (i, (url, ct)) in media.iter().enumerate() {
        set(&mut form, &format!("MediaUrl{i}"), url);
        set(&mut form, &format!("MediaContentType{i}"), ct);
    }
    let req = twilio::signed_webhook_request(PUBLIC, TWILIO_PATH, None, TEST_AUTH_TOKEN, &form);
    e.router
        .receive_webhook("twilio-whatsapp", req)
        .await
        .unwrap();
}

/// Runs fetch rounds until nothing is pending (or 10 s pass).
async fn fetch_all(e: &Env) {
    for _ in 0..400 {
        let claimed = e.router.media_fetcher().fetch_due().await.unwrap();
        let pending = media_rows(e).await.iter().any(|m| m["state"] == "pending");
        if claimed == 0 && !pending {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("media still pending after 10 s");
}

/// The media of every message, as `GET /v1/messages/{id}` shows it.
async fn media_rows(e: &Env) -> Vec<Value> {
    use sea_orm::{EntityTrait, QueryOrder};
    let ids: Vec<String> = messages::Entity::find()
        .order_by_asc(messages::Column::Id)
        .all(e.router.store().conn())
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.id)
        .collect();
    let mut out = Vec::new();
    for id in ids {
        let (_, view) = get(e, &format!("/v1/messages/{id}"), &e.key).await;
        out.extend(view["media"].as_array().cloned().unwrap_or_default());
    }
    out
}

async fn get(e: &Env, path: &str, key: &str) -> (u16, Value) {
    let r = e
        .http
        .get(format!("{}{path}", e.base))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn get_bytes(e: &Env, path: &str, key: &str) -> (u16, Option<String>, Vec<u8>) {
    let r = e
        .http
        .get(format!("{}{path}", e.base))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (status, ct, r.bytes().await.unwrap().to_vec())
}

async fn upload(e: &Env, bytes: Vec<u8>, mime: &str, query: &str) -> (u16, Value) {
    let r = e
        .http
        .post(format!("{}/v1/media{query}", e.base))
        .bearer_auth(&e.key)
        .header("content-type", mime)
        .body(bytes)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn image(n: u8, len: usize) -> Vec<u8> {
    let mut v = vec![0x89, b'P', b'N', b'G', n];
    v.extend((0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(n)));
    v
}

fn meta_document(media_id: &str, bytes: &[u8]) -> String {
    meta::envelope(&[(
        PNID,
        META_DISPLAY,
        "messages",
        json!({
            "contacts": [{"profile": {"name": "Sheena"}, "wa_id": PERSON_WA}],
            "messages": [{"from": PERSON_WA, "id": "wamid.doc1", "timestamp": chrono::Utc::now().timestamp().to_string(),
                "type": "document", "document": {"id": media_id, "mime_type": "application/pdf",
                "sha256": FakeGraph::sha256_base64(bytes), "filename": "invoice.pdf", "caption": "invoice"}}],
        }),
    )])
}

#[tokio::test]
async fn inbound_twilio_images_and_a_meta_document_are_stored_and_served_back_identical() {
    on_each_store(|db, media| async move {
        let e = env(&db, media).await;
        let msid = "MM00000000000000000000000000000001";
        let images: Vec<Vec<u8>> = (1..=3).map(|n| image(n, 2000 * usize::from(n))).collect();
        let media: Vec<(String, &str)> = images
            .iter()
            .map(|b| {
                (
                    e.twilio.add_media(TEST_ACCOUNT_SID, msid, b, "image/jpeg"),
                    "image/jpeg",
                )
            })
            .collect();
        twilio_inbound(&e, msid, &media).await;

        let pdf = b"%PDF-1.7 fake invoice".repeat(500);
        e.graph
            .add_media("778899", META_TOKEN, &pdf, "application/pdf");
        let body = meta_document("778899", &pdf);
        receive_meta(&e.router, &body).await;

        // Acknowledged before any download: the items show as pending.
        let before = media_rows(&e).await;
        assert_eq!(before.len(), 4);
        assert!(before.iter().all(|m| m["state"] == "pending"), "{before:?}");

        fetch_all(&e).await;
        let after = media_rows(&e).await;
        assert!(after.iter().all(|m| m["state"] == "stored"), "{after:?}");
        let expected: Vec<(&[u8], &str)> = images
            .iter()
            .map(|b| (b.as_slice(), "image/jpeg"))
            .chain([(pdf.as_slice(), "application/pdf")])
            .collect();
        for (row, (bytes, ct)) in after.iter().zip(expected) {
            let id = row["id"].as_str().unwrap();
            let (status, got_ct, got) = get_bytes(&e, &format!("/v1/media/{id}"), &e.key).await;
            assert_eq!(status, 200);
            assert_eq!(got_ct.as_deref(), Some(ct));
            assert_eq!(got, bytes, "{id}");
            assert_eq!(row["size"], bytes.len());
            // Kept in the store at the layout's key (in S3: the bucket, read from moto).
            assert_eq!(e.media.kept(bytes).await.as_deref(), Some(bytes), "{id}");
        }
        // Twilio's media was fetched with basic auth and through its redirect.
        let reqs = e.twilio.requests();
        let media_get = reqs.iter().find(|r| r.path.contains("/Media/ME")).unwrap();
        assert_eq!(media_get.basic_user.as_deref(), Some(TEST_ACCOUNT_SID));
        assert!(
            reqs.iter().any(|r| r.path.starts_with("/cdn/")),
            "the 307 was followed"
        );
        // The message content names its stored copies.
        let first_msg = after[0]["id"].as_str().unwrap().to_owned();
        // Two conversations (Twilio's and Meta's person); which is newest depends on the
        // clock, so look through both.
        let convs = get(&e, "/v1/conversations", &e.key).await.1;
        let mut listed = Vec::new();
        for conv in convs["data"].as_array().unwrap() {
            let conv = conv["id"].as_str().unwrap();
            let msgs = get(&e, &format!("/v1/conversations/{conv}/messages"), &e.key)
                .await
                .1;
            listed.extend(msgs["data"].as_array().unwrap().iter().cloned());
        }
        assert!(
            listed.iter().any(
                |m| m["content"]["media"][0]["media_id"] == first_msg.as_str()
                    && m["content"]["media"][0]["media_state"] == "stored"
            ),
            "{listed:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn a_fetch_that_fails_twice_is_retried_and_a_404_fails_with_the_message_intact() {
    on_each_store(|db, media| async move {
        let e = env(&db, media).await;
        let msid = "MM00000000000000000000000000000002";
        let bytes = image(9, 4000);
        let url = e.twilio.add_media(TEST_ACCOUNT_SID, msid, &bytes, "image/png");
        e.twilio.fail_media(&[500, 503]);
        twilio_inbound(&e, msid, &[(url, "image/png")]).await;
        fetch_all(&e).await;
        let rows = media_rows(&e).await;
        assert_eq!(rows[0]["state"], "stored", "{rows:?}");
        assert_eq!(rows[0]["attempts"], 3);
        let id = rows[0]["id"].as_str().unwrap();
        assert_eq!(get_bytes(&e, &format!("/v1/media/{id}"), &e.key).await.2, bytes);

        // A URL Twilio no longer has: 404, failed for good, the message untouched.
        let msid2 = "MM00000000000000000000000000000003";
        let gone = format!(
            "{}/2010-04-01/Accounts/{TEST_ACCOUNT_SID}/Messages/{msid2}/Media/ME0000000000000000000000000000dead",
            e.twilio.base_url()
        );
        twilio_inbound(&e, msid2, &[(gone, "image/png")]).await;
        fetch_all(&e).await;
        let rows = media_rows(&e).await;
        let failed = &rows[1];
        assert_eq!(failed["state"], "failed");
        assert_eq!(failed["attempts"], 1);
        assert!(failed["failure_reason"].as_str().unwrap().contains("gone"), "{failed}");
        let fid = failed["id"].as_str().unwrap();
        let (status, body) = get(&e, &format!("/v1/media/{fid}"), &e.key).await;
        assert_eq!(status, 409);
        assert_eq!(body["error"]["code"], "media_not_stored");
        let (_, msgs) = get(&e, "/v1/conversations", &e.key).await;
        let conv = msgs["data"][0]["id"].as_str().unwrap().to_owned();
        let listed = get(&e, &format!("/v1/conversations/{conv}/messages"), &e.key).await.1;
        let m = &listed["data"][1];
        assert_eq!(m["status"], "received");
        assert!(m["content"].to_string().contains("look"), "{m}");
        assert_eq!(m["content"]["media"][0]["media_state"], "failed");
    })
    .await;
}

#[tokio::test]
async fn uploads_are_checked_and_only_the_owning_tenant_reads_media() {
    on_each_store(|db, media| async move {
        let e = env(&db, media).await;
        let auth = format!("Bearer {}", e.key);
        let upload_headers = |mime| [("authorization", auth.as_str()), ("content-type", mime)];
        // Within the upload route's overall limit, so the body is read, then refused.
        let (status, body) = upload(&e, vec![0xFF; 6 * 1024 * 1024], "image/jpeg", "").await;
        assert_eq!(status, 413, "{body}");
        assert_eq!(body["error"]["code"], "media_too_large");
        let (status, body) = upload(&e, b"GIF89a".to_vec(), "image/gif", "").await;
        assert_eq!(status, 415, "{body}");
        assert_eq!(body["error"]["code"], "unsupported_media_type");
        // Over the largest limit of all: refused before it is read.
        let (status, _) = crate::support::post_oversized(
            &e.base,
            "/v1/media",
            &upload_headers("application/pdf"),
            101 * 1024 * 1024,
        )
        .await;
        assert_eq!(status, 413);
        // Webhooks keep their 1 MiB limit.
        let (status, _) = crate::support::post_oversized(
            &e.base,
            "/webhooks/twilio-whatsapp",
            &[("content-type", "application/x-www-form-urlencoded")],
            2 * 1024 * 1024,
        )
        .await;
        assert_eq!(status, 413);

        let doc = b"%PDF-1.4 contract".repeat(100);
        let (status, up) =
            upload(&e, doc.clone(), "application/pdf", "?filename=contract.pdf").await;
        assert_eq!(status, 201, "{up}");
        assert_eq!(up["kind"], "document");
        assert_eq!(up["state"], "stored");
        let id = up["id"].as_str().unwrap();
        assert_eq!(
            get_bytes(&e, &format!("/v1/media/{id}"), &e.key).await.2,
            doc
        );

        let other = e.router.tenants().create("other").await.unwrap();
        let (status, body) = get(&e, &format!("/v1/media/{id}"), &other.key).await;
        assert_eq!(status, 404, "{body}");
        // Nor send it.
        let r = e
            .http
            .post(format!("{}/v1/messages", e.base))
            .bearer_auth(&other.key)
            .json(&json!({"to": PERSON, "media": [{"media_id": id}]}))
            .send()
            .await
            .unwrap();
        assert!(matches!(r.status().as_u16(), 400 | 404), "{}", r.status());
        // The public route needs a valid signature.
        let (status, _, _) =
            get_bytes(&e, &format!("/media/{id}?expires=99999999999&sig=00"), "").await;
        assert_eq!(status, 404);
    })
    .await;
}

#[tokio::test]
async fn a_stored_image_goes_to_twilio_by_signed_url_and_to_meta_by_uploaded_id() {
    on_each_store(|db, media| async move {
        let e = env(&db, media).await;
        // Open the service window on both channels.
        twilio_inbound(&e, "SM00000000000000000000000000000009", &[]).await;
        let hello = meta::envelope(&[(
            PNID,
            META_DISPLAY,
            "messages",
            json!({
                "contacts": [{"profile": {"name": "Sheena"}, "wa_id": PERSON_WA}],
                "messages": [{"from": PERSON_WA, "id": "wamid.hello", "timestamp": chrono::Utc::now().timestamp().to_string(), "type": "text", "text": {"body": "hi"}}],
            }),
        )]);
        receive_meta(&e.router, &hello).await;

        let png = image(7, 30_000);
        let (status, up) = upload(&e, png.clone(), "image/png", "").await;
        assert_eq!(status, 201, "{up}");
        let id = up["id"].as_str().unwrap().to_owned();

        for channel in ["twilio-whatsapp", "meta-whatsapp"] {
            let r = e
                .http
                .post(format!("{}/v1/messages", e.base))
                .bearer_auth(&e.key)
                .json(&json!({"to": PERSON, "channel": channel, "media": [{"media_id": id, "caption": "your photo"}]}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status().as_u16(), 202, "{}", r.text().await.unwrap());
        }
        for _ in 0..100 {
            e.router.delivery().deliver_due().await.unwrap();
            if !e.twilio.fetched_media().is_empty() && !e.graph.uploads().is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let fetched = e.twilio.fetched_media();
        assert_eq!(fetched.len(), 1, "{fetched:?}");
        assert!(fetched[0].url.starts_with(&format!("{}/media/{id}?expires=", e.base)));
        assert_eq!(fetched[0].status, 200);
        assert_eq!(fetched[0].content_type.as_deref(), Some("image/png"));
        assert_eq!(fetched[0].bytes.as_ref(), png.as_slice());
        let twilio_send = e
            .twilio
            .requests()
            .into_iter()
            .find(|r| r.path.ends_with("/Messages.json"))
            .unwrap();
        assert_eq!(twilio_send.form_value("Body"), Some("your photo"));

        let uploads = e.graph.uploads();
        assert_eq!(uploads.len(), 1);
        assert_eq!(uploads[0].bytes.as_ref(), png.as_slice());
        assert_eq!(uploads[0].mime_type, "image/png");
        let send = e
            .graph
            .requests()
            .into_iter()
            .find(|r| r.path.ends_with("/messages"))
            .unwrap();
        let body = send.body.unwrap();
        assert_eq!(body["image"]["id"], uploads[0].media_id.as_str(), "{body}");
        assert!(body["image"].get("link").is_none());

        // A tampered or expired link serves nothing.
        let tampered = fetched[0].url.replace("sig=", "sig=0");
        assert_eq!(e.http.get(tampered).send().await.unwrap().status().as_u16(), 404);

        // A send naming stored media by id, with an idempotency key, answers its replay
        // with the same message (the request is compared as the client sent it).
        let keyed = json!({"to": PERSON, "channel": "twilio-whatsapp",
            "media": [{"media_id": id}], "idempotency_key": "media-once"});
        let mut answers = Vec::new();
        for _ in 0..2 {
            let r = e
                .http
                .post(format!("{}/v1/messages", e.base))
                .bearer_auth(&e.key)
                .json(&keyed)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let body: serde_json::Value = r.json().await.unwrap();
            assert_eq!(status, 202, "{body}");
            answers.push(body["id"].clone());
        }
        assert_eq!(answers[0], answers[1]);
    })
    .await;
}

/// Sends `body` to `path` in five pieces 150 ms apart over a raw connection; returns the
/// answer's status code.
async fn slow_post(
    addr: std::net::SocketAddr,
    path: &str,
    key: &str,
    ct: &str,
    body: &[u8],
) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: sb\r\nAuthorization: Bearer {key}\r\nContent-Type: {ct}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    for piece in body.chunks(body.len().div_ceil(5)) {
        tokio::time::sleep(Duration::from_millis(150)).await;
        // A server that already answered may have closed its side: stop writing then.
        if conn.write_all(piece).await.is_err() {
            break;
        }
    }
    let mut answer = Vec::new();
    drop(conn.read_to_end(&mut answer).await);
    let text = String::from_utf8_lossy(&answer);
    text.split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0)
}

/// A media upload may take longer than the request timeout that bounds every other route (a
/// 100 MB file on a slow link); any other request whose body comes that slowly gets a 408.
#[tokio::test]
async fn a_slow_upload_outlives_the_timeout_that_ends_other_slow_requests() {
    on_each_backend(|db| async move {
        let (twilio, graph) = fakes().await;
        let media_dir = tempfile::tempdir().unwrap();
        let router = builder(&db, &twilio, &graph)
            .await
            .media_store(Arc::new(LocalMediaStore::new(media_dir.path())))
            .build();
        let key = router.tenants().create("acme").await.unwrap().key;
        let state = http::AppState::new(router, None)
            .with_timeouts(Duration::from_millis(300), Duration::from_secs(30));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            axum::serve(listener, http::app(state)).await.unwrap();
        });
        // 750 ms in all, over the 300 ms request timeout.
        let uploaded = slow_post(addr, "/v1/media", &key, "image/png", &image(3, 4_000)).await;
        let send = json!({"to": PERSON, "content": {"text": "hello"}}).to_string();
        let sent = slow_post(
            addr,
            "/v1/messages",
            &key,
            "application/json",
            send.as_bytes(),
        )
        .await;
        server.abort();
        assert_eq!(uploaded, 201);
        assert_eq!(sent, 408);
    })
    .await;
}

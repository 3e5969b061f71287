//! The HTTP surface against slow, half-open, oversized and malformed clients: the header
//! read timeout, the connection bound, the open-files limit, uploads refused while
//! streaming, and the JSON error shape of every refusal (api.md, "Errors").
//!
//! Most tests drive the real `switchboard serve` over raw sockets (`SWITCHBOARD_TEST_BIN`
//! names another build of it, such as a release binary).

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchboard_core::{Content, MessageStatus};
use switchboard_http as http;
use switchboard_router::{Router, RouterError, SendRequest};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::Command;

use crate::support::binary::{self, Server};
use crate::support::fake::{inbound_from, receive};
use crate::support::{TestDb, fake_router, fake_site, on_each_backend, post_oversized};

const PERSON: &str = "+31612345678";
const MB: usize = 1024 * 1024;

/// The `switchboard` binary under test.
/// A SQLite database in a fresh directory, with a tenant; its admin key.
struct Site {
    dir: tempfile::TempDir,
    url: String,
    key: String,
}

async fn site() -> Site {
    let dir = tempfile::tempdir().unwrap();
    let url = binary::sqlite_url(dir.path());
    let key = binary::create_tenant(&url, dir.path(), "acme").await;
    Site { dir, url, key }
}

/// A `switchboard` (or other) command with a clean environment, logging warnings only.
fn clean_command(program: &Path, db_url: &str, dir: &Path) -> Command {
    let mut cmd = binary::command_for(program, db_url, dir);
    cmd.env("SWITCHBOARD_LOG", "warn");
    cmd
}

/// `switchboard serve` on `site` with `envs`; with `open_files`, started under that soft
/// open-files limit (as a shell's `ulimit -S -n` leaves it).
async fn serve(site: &Site, envs: &[(&str, &str)], open_files: Option<u64>) -> Server {
    let port = binary::free_port();
    let bin = binary::path();
    let mut cmd = match open_files {
        Some(n) => {
            let mut cmd = clean_command(Path::new("sh"), &site.url, site.dir.path());
            cmd.arg("-c")
                .arg(format!("ulimit -S -n {n} && exec \"$0\" serve"))
                .arg(&bin);
            cmd
        }
        None => {
            let mut cmd = clean_command(&bin, &site.url, site.dir.path());
            cmd.arg("serve");
            cmd
        }
    };
    cmd.env("SWITCHBOARD_LISTEN", format!("127.0.0.1:{port}"))
        .envs(envs.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    let server = Server {
        child: cmd.spawn().expect("spawn switchboard serve"),
        base_url: format!("http://127.0.0.1:{port}"),
        port,
    };
    server.wait_healthy(Duration::from_secs(30)).await;
    server
}

/// A raw HTTP answer.
struct Answer {
    status: u16,
    head: String,
    body: String,
}

impl Answer {
    fn parse(raw: &[u8]) -> Self {
        let text = String::from_utf8_lossy(raw).into_owned();
        let (head, body) = text
            .split_once("\r\n\r\n")
            .unwrap_or_else(|| panic!("not an HTTP answer: {text:?}"));
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no status: {text:?}"));
        Self {
            status,
            head: head.to_owned(),
            body: body.to_owned(),
        }
    }

    /// Asserts the status and the JSON error shape with `code`.
    #[track_caller]
    fn expect_error(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "{}\n\n{}", self.head, self.body);
        let json: Value = serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("{status}: body is not JSON ({e}): {:?}", self.body));
        assert_eq!(json["error"]["code"], code, "{}", self.body);
        assert!(
            json["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{}",
            self.body
        );
        assert!(
            self.head
                .to_ascii_lowercase()
                .contains("content-type: application/json"),
            "{}",
            self.head
        );
    }
}

async fn connect(server: &Server) -> TcpStream {
    TcpStream::connect(("127.0.0.1", server.port))
        .await
        .expect("connect")
}

/// Writes `request` (which should ask `Connection: close`) and reads the whole answer.
async fn exchange(server: &Server, request: &[u8]) -> Answer {
    let mut stream = connect(server).await;
    stream.write_all(request).await.expect("write request");
    read_answer(&mut stream).await
}

async fn read_answer(stream: &mut TcpStream) -> Answer {
    let mut raw = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw)).await;
    assert!(read.is_ok(), "no answer within 10 s");
    Answer::parse(&raw)
}

fn get(path: &str, key: Option<&str>) -> Vec<u8> {
    let auth = key.map_or(String::new(), |k| format!("Authorization: Bearer {k}\r\n"));
    format!("GET {path} HTTP/1.1\r\nHost: sb\r\n{auth}Connection: close\r\n\r\n").into_bytes()
}

/// `/health` on a new connection; the status, or `None` when it does not answer in 5 s.
async fn health_status(server: &Server) -> Option<u16> {
    tokio::time::timeout(Duration::from_secs(5), async {
        let mut stream = TcpStream::connect(("127.0.0.1", server.port)).await.ok()?;
        stream.write_all(&get("/health", None)).await.ok()?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.ok()?;
        Some(Answer::parse(&raw).status)
    })
    .await
    .ok()
    .flatten()
}

/// Opens `n` connections that each send half a request's headers and then nothing.
async fn half_sent(server: &Server, n: usize) -> Vec<TcpStream> {
    let mut held = Vec::with_capacity(n);
    for i in 0..n {
        let mut stream = tokio::time::timeout(Duration::from_secs(5), connect(server))
            .await
            .unwrap_or_else(|_| panic!("connection {i} was not accepted within 5 s"));
        stream
            .write_all(b"GET /health HTTP/1.1\r\nHost: sb\r\n")
            .await
            .expect("write half a request");
        held.push(stream);
    }
    held
}

async fn metrics(server: &Server) -> String {
    let answer = exchange(server, &get("/metrics", None)).await;
    assert_eq!(answer.status, 200);
    answer.body
}

// ---- slow and half-open clients -------------------------------------------------------

#[tokio::test]
async fn health_answers_while_thousands_of_half_sent_requests_are_held() {
    // This process holds one end of every connection too.
    rlimit::increase_nofile_limit(8192).unwrap();
    let site = site().await;
    // Started under a soft limit of 1024 open files, which 2,000 connections exceed unless
    // the server raises it to the hard limit.
    let server = serve(
        &site,
        &[("SWITCHBOARD_HEADER_READ_TIMEOUT_MS", "120000")],
        Some(1024),
    )
    .await;
    let held = half_sent(&server, 2_000).await;
    assert_eq!(health_status(&server).await, Some(200));
    let limits =
        std::fs::read_to_string(format!("/proc/{}/limits", server.child.id().unwrap())).unwrap();
    let open_files = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap()
        .split_whitespace()
        .skip(3)
        .take(2)
        .collect::<Vec<_>>();
    assert_eq!(
        open_files[0], open_files[1],
        "soft limit raised to the hard one"
    );

    // The half-sent requests are still held open, not answered.
    let mut held = held;
    let mut byte = [0u8; 1];
    assert!(
        tokio::time::timeout(Duration::from_millis(200), held[0].read(&mut byte))
            .await
            .is_err(),
        "a half-sent request was answered or closed"
    );
    // A shutdown waits for requests in flight, so for half-sent ones up to the header
    // timeout: they go first.
    drop(held);
    assert!(server.stop().await.success());
}

#[tokio::test]
async fn a_client_dribbling_headers_is_cut_off_after_the_header_timeout() {
    let site = site().await;
    let server = serve(
        &site,
        &[("SWITCHBOARD_HEADER_READ_TIMEOUT_MS", "500")],
        None,
    )
    .await;
    let stream = connect(&server).await;
    let (mut read, mut write) = stream.into_split();
    let closed = tokio::spawn(async move {
        let mut sink = Vec::new();
        read.read_to_end(&mut sink).await.ok();
    });
    write
        .write_all(b"GET /health HTTP/1.1\r\nHost: sb\r\n")
        .await
        .unwrap();
    // One header line every 200 ms, for 10 s unless the server hangs up first.
    let mut lines = 0;
    while !closed.is_finished() && lines < 50 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if write
            .write_all(format!("X-Slow-{lines}: y\r\n").as_bytes())
            .await
            .is_err()
        {
            break;
        }
        lines += 1;
    }
    assert!(
        lines < 50,
        "the connection was still open after 10 s of dribbled headers"
    );
    tokio::time::timeout(Duration::from_secs(5), closed)
        .await
        .expect("the server closed the connection")
        .unwrap();
    assert_eq!(health_status(&server).await, Some(200));
    assert!(server.stop().await.success());
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_header_timeout() {
    let site = site().await;
    let server = serve(
        &site,
        &[("SWITCHBOARD_HEADER_READ_TIMEOUT_MS", "500")],
        None,
    )
    .await;
    let mut stream = connect(&server).await;
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: sb\r\n\r\n")
        .await
        .unwrap();
    // The answer, then nothing more: the server closes the idle connection.
    let mut raw = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw)).await;
    assert!(
        read.is_ok(),
        "an idle keep-alive connection stayed open 10 s"
    );
    assert_eq!(Answer::parse(&raw).status, 200);
    assert!(server.stop().await.success());
}

#[tokio::test]
async fn connections_over_the_bound_are_refused_with_503_and_served_again_once_they_go() {
    let site = site().await;
    let server = serve(
        &site,
        &[
            ("SWITCHBOARD_MAX_CONNECTIONS", "20"),
            ("SWITCHBOARD_HEADER_READ_TIMEOUT_MS", "120000"),
        ],
        None,
    )
    .await;
    let held = half_sent(&server, 20).await;
    // Over the bound: answered at once, before sending anything, and closed.
    let mut over = connect(&server).await;
    read_answer(&mut over)
        .await
        .expect_error(503, "too_many_connections");
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(10);
    while health_status(&server).await != Some(200) {
        assert!(
            Instant::now() < deadline,
            "not served again after the held connections closed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let text = metrics(&server).await;
    assert!(
        text.contains(r#"switchboard_http_refusals_total{status="503"}"#),
        "{text}"
    );
    assert!(
        text.contains("# HELP switchboard_http_refusals_total"),
        "{text}"
    );
    assert!(server.stop().await.success());
}

// ---- uploads ----------------------------------------------------------------------------

#[tokio::test]
async fn an_upload_declaring_more_than_its_kinds_limit_is_413_before_its_body_is_sent() {
    let site = site().await;
    let server = serve(&site, &[], None).await;
    let auth = format!("Bearer {}", site.key);
    // The image limit is 5 MB; nothing of the 99 MB body is sent.
    let (status, body) = post_oversized(
        &server.base_url,
        "/v1/media",
        &[("Authorization", &auth), ("Content-Type", "image/png")],
        99_000_000,
    )
    .await;
    assert_eq!(status, 413, "{body}");
    let json: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["error"]["code"], "media_too_large", "{body}");
    assert!(server.stop().await.success());
}

#[tokio::test]
async fn a_chunked_upload_is_refused_once_it_passes_the_limit_without_reading_the_rest() {
    let site = site().await;
    let server = serve(&site, &[], None).await;
    let stream = connect(&server).await;
    let (mut read, mut write) = stream.into_split();
    let head = format!(
        "POST /v1/media HTTP/1.1\r\nHost: sb\r\nAuthorization: Bearer {}\r\nContent-Type: image/png\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        site.key
    );
    write.write_all(head.as_bytes()).await.unwrap();
    // 6 MB of a body that never ends (no last chunk): only an answer before the end helps.
    let writer = tokio::spawn(async move {
        let chunk = vec![0x42u8; 64 * 1024];
        for _ in 0..(6 * MB / chunk.len()) {
            let framed = [format!("{:x}\r\n", chunk.len()).as_bytes(), &chunk, b"\r\n"].concat();
            if write.write_all(&framed).await.is_err() {
                return;
            }
        }
        // Keep the request open: the server must not wait for the rest.
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(write);
    });
    let mut raw = Vec::new();
    let answered = tokio::time::timeout(Duration::from_secs(10), read.read_to_end(&mut raw)).await;
    writer.abort();
    assert!(answered.is_ok(), "no answer before the body ended");
    Answer::parse(&raw).expect_error(413, "media_too_large");
    let text = metrics(&server).await;
    assert!(
        text.contains(r#"switchboard_http_refusals_total{status="413"}"#),
        "{text}"
    );
    assert!(server.stop().await.success());
}

#[tokio::test]
async fn an_upload_at_its_kinds_limit_is_stored() {
    let site = site().await;
    let server = serve(&site, &[], None).await;
    let client = reqwest::Client::new();
    let upload = |size: usize| {
        client
            .post(format!("{}/v1/media", server.base_url))
            .bearer_auth(&site.key)
            .header("content-type", "image/png")
            .body(vec![7u8; size])
            .send()
    };
    let stored = upload(5 * MB).await.unwrap();
    assert_eq!(stored.status(), 201);
    let stored: Value = stored.json().await.unwrap();
    assert_eq!(stored["size"], 5 * MB);
    assert_eq!(stored["kind"], "image");
    // One byte more is refused from its Content-Length (the body is not sent: the server
    // answers and closes without reading it).
    let (status, body) = post_oversized(
        &server.base_url,
        "/v1/media",
        &[
            ("Authorization", &format!("Bearer {}", site.key)),
            ("Content-Type", "image/png"),
        ],
        5 * MB + 1,
    )
    .await;
    assert_eq!(status, 413, "{body}");
    assert!(server.stop().await.success());
}

// ---- the error shape --------------------------------------------------------------------

#[tokio::test]
async fn every_refusal_answers_in_the_json_error_shape() {
    let site = site().await;
    let server = serve(&site, &[], None).await;
    let key = site.key.as_str();

    // tower-http's 413 from a declared Content-Length over 1 MiB.
    let (status, body) = post_oversized(
        &server.base_url,
        "/v1/messages",
        &[
            ("Authorization", &format!("Bearer {key}")),
            ("Content-Type", "application/json"),
        ],
        2 * MB,
    )
    .await;
    assert_eq!(status, 413, "{body}");
    let json: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body:?}"));
    assert_eq!(json["error"]["code"], "body_too_large", "{body}");
    // A webhook's body over 1 MiB.
    let (status, body) = post_oversized(
        &server.base_url,
        "/webhooks/twilio-whatsapp",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        2 * MB,
    )
    .await;
    assert_eq!(status, 413, "{body}");
    assert!(
        serde_json::from_str::<Value>(&body).unwrap()["error"]["code"].is_string(),
        "{body}"
    );

    // hyper's own answers: a URI over 64 KiB, headers over its buffer, an unparsable line.
    let cursor = "c".repeat(70_000);
    exchange(
        &server,
        &get(&format!("/v1/conversations?cursor={cursor}"), Some(key)),
    )
    .await
    .expect_error(414, "uri_too_long");
    let big_header = format!(
        "GET /v1/conversations HTTP/1.1\r\nHost: sb\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "h".repeat(600_000)
    );
    exchange(&server, big_header.as_bytes())
        .await
        .expect_error(431, "headers_too_large");
    exchange(&server, b"NOT HTTP AT ALL\r\n\r\n")
        .await
        .expect_error(400, "bad_request");

    // Routing misses, wherever they are.
    for (method, path, status, code) in [
        ("GET", "/v1/nothing-here", 404, "route_not_found"),
        ("GET", "/nothing-here", 404, "route_not_found"),
        ("DELETE", "/v1/messages", 405, "method_not_allowed"),
        ("GET", "/v1/media", 405, "method_not_allowed"),
        ("POST", "/health", 405, "method_not_allowed"),
        (
            "PUT",
            "/webhooks/twilio-whatsapp",
            405,
            "method_not_allowed",
        ),
    ] {
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: sb\r\nAuthorization: Bearer {key}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        let answer = exchange(&server, request.as_bytes()).await;
        assert_eq!(answer.status, status, "{method} {path}: {}", answer.body);
        answer.expect_error(status, code);
    }
    // A webhook refusal: Meta's handshake with a wrong verify token.
    let answer = exchange(
        &server,
        &get(
            "/webhooks/meta-whatsapp?hub.mode=subscribe&hub.verify_token=wrong&hub.challenge=1",
            None,
        ),
    )
    .await;
    assert!(answer.status >= 400, "{}", answer.status);
    let json: Value = serde_json::from_str(&answer.body)
        .unwrap_or_else(|e| panic!("{}: {e}: {:?}", answer.status, answer.body));
    assert!(json["error"]["code"].is_string(), "{}", answer.body);

    let text = metrics(&server).await;
    assert!(
        text.contains(r#"switchboard_http_refusals_total{status="413"} 2"#),
        "{text}"
    );
    assert!(server.stop().await.success());
}

/// An in-process server with a 200 ms request timeout over the fake channel.
async fn in_process(router: Router) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("{}", listener.local_addr().unwrap());
    let state = http::AppState::new(router, None)
        .with_timeouts(Duration::from_millis(200), Duration::from_millis(200));
    let app = http::app(state);
    let task = tokio::spawn(async move {
        http::serve(
            listener,
            app,
            http::ServeLimits::default(),
            std::future::pending(),
        )
        .await
        .unwrap();
    });
    (base, task)
}

#[tokio::test]
async fn a_request_not_finished_in_time_is_408_in_the_error_shape() {
    let db = TestDb::sqlite().await;
    let (router, _fake) = fake_router(&db).await;
    let key = router.tenants().create("acme").await.unwrap().key;
    let (addr, task) = in_process(router).await;
    let mut stream = TcpStream::connect(&addr).await.unwrap();
    // The body is announced and never sent.
    let head = format!(
        "POST /v1/messages HTTP/1.1\r\nHost: sb\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nContent-Length: 100\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    read_answer(&mut stream)
        .await
        .expect_error(408, "request_timeout");
    task.abort();
}

// ---- send() validation ------------------------------------------------------------------

/// A router over the fake channel with a connected sender, and a person inside the window;
/// the tenant's id and admin key.
async fn sender(db: &TestDb) -> (Router, String, String) {
    let site = fake_site(db.store().await, |b| b).await;
    receive(&site.router, &[inbound_from("in-1", PERSON, "hi")]).await;
    (site.router, site.tenant, site.admin_key)
}

/// `+31612345678` as a person might type it: `+31 6 1234 5678`.
fn respell(e164: &str) -> String {
    let (country, rest) = e164.split_at(3);
    format!("{country} {} {} {}", &rest[..1], &rest[1..5], &rest[5..])
}

fn text_to(text: &str, key: Option<&str>) -> SendRequest {
    SendRequest {
        to: PERSON.into(),
        content: Content::text(text),
        idempotency_key: key.map(str::to_owned),
        ..Default::default()
    }
}

#[tokio::test]
async fn empty_or_whitespace_text_is_refused_with_empty_text() {
    on_each_backend(|db| async move {
        let (router, tenant, _) = sender(&db).await;
        for blank in ["", "   ", "\n\t "] {
            let err = router
                .send(&tenant, text_to(blank, None))
                .await
                .expect_err("blank text refused");
            assert_eq!(err.code(), "empty_text", "{blank:?}");
            assert_eq!(err.http_status(), 400);
        }
        assert!(router.send(&tenant, text_to(" hi ", None)).await.is_ok());
    })
    .await;
}

#[tokio::test]
async fn reusing_an_idempotency_key_with_another_request_is_409() {
    on_each_backend(|db| async move {
        let (router, tenant, _) = sender(&db).await;
        let first = router
            .send(&tenant, text_to("your order shipped", Some("order-42")))
            .await
            .unwrap();
        let again = router
            .send(&tenant, text_to("your order shipped", Some("order-42")))
            .await
            .unwrap();
        assert_eq!(
            again.id, first.id,
            "the same request answers the first message"
        );
        let respelled = SendRequest {
            to: respell(PERSON),
            ..text_to("your order shipped", Some("order-42"))
        };
        let again = router.send(&tenant, respelled).await.unwrap();
        assert_eq!(
            again.id, first.id,
            "the same recipient spelled another way is the same request"
        );
        for other in [
            text_to("your order was cancelled", Some("order-42")),
            SendRequest {
                reply_to: Some(first.id.clone()),
                ..text_to("your order shipped", Some("order-42"))
            },
        ] {
            let err = router.send(&tenant, other).await.expect_err("409");
            assert!(matches!(err, RouterError::Conflict { .. }), "{err:?}");
            assert_eq!(err.code(), "idempotency_key_reused");
            assert_eq!(err.http_status(), 409);
        }
        // Nothing more was queued, and the first message is untouched.
        let queued = router
            .send(&tenant, text_to("a new one", Some("order-43")))
            .await
            .unwrap();
        assert_ne!(queued.id, first.id);
        let view = router
            .records()
            .get_message(&tenant, &first.id)
            .await
            .unwrap();
        assert_eq!(view.status, MessageStatus::Queued.as_str());
    })
    .await;
}

/// The 409 over HTTP, in the error shape.
#[tokio::test]
async fn an_idempotency_key_reused_over_http_is_409_in_the_error_shape() {
    let db = TestDb::sqlite().await;
    let (router, _, key) = sender(&db).await;
    let (addr, task) = in_process(router).await;
    let client = reqwest::Client::new();
    let send = |text: &str| {
        client
            .post(format!("http://{addr}/v1/messages"))
            .bearer_auth(&key)
            .json(&json!({"to": PERSON, "text": text, "idempotency_key": "k-1"}))
            .send()
    };
    assert_eq!(send("one").await.unwrap().status(), 202);
    assert_eq!(send("one").await.unwrap().status(), 202);
    let reused = send("two").await.unwrap();
    assert_eq!(reused.status(), 409);
    let body: Value = reused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "idempotency_key_reused", "{body}");
    task.abort();
}

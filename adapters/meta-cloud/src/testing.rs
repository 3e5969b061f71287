//! Test doubles (feature `testing`): [`FakeGraph`], a fake Graph API on 127.0.0.1, and
//! builders for signed webhook bodies.
//!
//! The fake checks every message and mark-as-read body against Meta's documented shapes and
//! limits (`checks.rs`) and refuses a wrong one as Meta does; [`FakeGraph::sent_messages`],
//! [`FakeGraph::read_receipts`] and [`FakeGraph::refusals`] show what it accepted and refused.
//!
//! ```ignore
//! let graph = FakeGraph::start().await;
//! graph.add_number("106540352242922", "token");
//! let meta = MetaCloud::new(graph.config());
//! let acct = account("106540352242922", "+15550783881", "token", "secret", "verify");
//! let receipt = meta.send(&acct, &msg).await?;
//! assert_eq!(graph.requests()[0].bearer.as_deref(), Some("token"));
//!
//! let body = inbound_text("106540352242922", "15550783881", "16505551234", "wamid.1", "hi");
//! let req = webhook_request(&body, Some("secret"));
//! ```

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use switchboard_core::fake_server::{self, LoopbackServer};
use switchboard_core::{AccountContext, Credentials, PhoneNumber, WebhookRequest};

use crate::config::{
    CRED_ACCESS_TOKEN, CRED_APP_SECRET, CRED_PHONE_NUMBER_ID, CRED_VERIFY_TOKEN, MetaConfig,
};
use crate::signature::{self, SIGNATURE_HEADER};

mod checks;

pub use checks::Refusal;

/// The unix timestamp every builder stamps on its items (fixed, so bodies and their
/// signatures are reproducible).
pub const TIMESTAMP: &str = "1749416383";
/// The WABA id the builders put in `entry[].id`.
pub const WABA_ID: &str = "102290129340398";

/// One request the fake received.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordedRequest {
    pub method: String,
    /// e.g. `/v25.0/106540352242922/messages`.
    pub path: String,
    pub query: Option<String>,
    /// The token from `Authorization: Bearer …`.
    pub bearer: Option<String>,
    /// The body, when it was JSON.
    pub body: Option<Value>,
}

#[derive(Default)]
struct State {
    numbers: HashMap<String, String>,
    wa_ids: HashMap<String, String>,
    scripted: VecDeque<(u16, Value)>,
    delay: Duration,
    health: Option<Value>,
    requests: Vec<RecordedRequest>,
    media: HashMap<String, FakeMedia>,
    gone_media: Vec<String>,
    media_failures: VecDeque<u16>,
    uploads: Vec<Upload>,
    sent: Vec<Value>,
    read_receipts: Vec<Value>,
    refusals: Vec<Refusal>,
    authentication_templates: Vec<String>,
    /// WABA id → (token, its templates as Graph lists them).
    wabas: HashMap<String, (String, Vec<Value>)>,
}

/// A media object the fake serves: `GET /{version}/{id}` then `GET /fake-media/{id}`.
#[derive(Clone)]
struct FakeMedia {
    bytes: Bytes,
    mime_type: String,
    token: String,
}

/// A file uploaded to `POST /{version}/{phone_number_id}/media`.
#[derive(Clone, PartialEq, Eq)]
pub struct Upload {
    pub phone_number_id: String,
    /// The id the fake answered (downloadable like any other media).
    pub media_id: String,
    /// The `type` field.
    pub mime_type: String,
    /// The `file` part's `Content-Type` and filename.
    pub file_mime_type: Option<String>,
    pub filename: Option<String>,
    pub bytes: Bytes,
}

impl std::fmt::Debug for Upload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upload")
            .field("phone_number_id", &self.phone_number_id)
            .field("media_id", &self.media_id)
            .field("mime_type", &self.mime_type)
            .field("len", &self.bytes.len())
            .finish_non_exhaustive()
    }
}

type Shared = fake_server::Shared<State>;

/// A fake Graph API: `POST /{version}/{phone_number_id}/messages` (send and mark-as-read)
/// and `GET /{version}/{phone_number_id}` (health fields). Stops when dropped.
pub struct FakeGraph {
    server: LoopbackServer,
    state: Shared,
}

impl FakeGraph {
    /// Starts the server on an ephemeral port of 127.0.0.1.
    ///
    /// # Panics
    /// If no loopback port can be bound (a broken test environment).
    pub async fn start() -> Self {
        let state = Shared::default();
        let shared = state.clone();
        let app = Router::new().fallback(move |method, uri, headers, body| {
            handle(shared.clone(), method, uri, headers, body)
        });
        let server = LoopbackServer::start("FakeGraph", |listener| async move {
            axum::serve(listener, app).await
        })
        .await;
        Self { server, state }
    }

    /// Serves `templates` (Graph's `data[]` items, §13.1) at
    /// `GET /{version}/{waba_id}/message_templates` to `token`, paged by `limit` and
    /// `after`; replaces what the WABA listed before (so a test can remove one).
    pub fn set_templates(&self, waba_id: &str, token: &str, templates: Vec<Value>) {
        self.state
            .lock()
            .wabas
            .insert(waba_id.to_owned(), (token.to_owned(), templates));
    }

    /// `http://127.0.0.1:{port}`, for [`MetaConfig::graph_base`].
    pub fn base_url(&self) -> String {
        self.server.base_url()
    }

    /// A [`MetaConfig`] pointing at this fake, with a 2 s request timeout.
    pub fn config(&self) -> MetaConfig {
        MetaConfig {
            graph_base: self.base_url(),
            request_timeout: Duration::from_secs(2),
            ..MetaConfig::default()
        }
    }

    /// Accepts `token` for `phone_number_id`. Requests for unknown numbers or with another
    /// token get the code-190 `OAuthException`.
    pub fn add_number(&self, phone_number_id: &str, token: &str) {
        self.state
            .lock()
            .numbers
            .insert(phone_number_id.to_owned(), token.to_owned());
    }

    /// Answers sends to `input` (digits, with or without `+`) with `wa_id` in
    /// `contacts[].wa_id`, e.g. Brazil's ninth digit.
    pub fn map_wa_id(&self, input: &str, wa_id: &str) {
        self.state
            .lock()
            .wa_ids
            .insert(input.trim_start_matches('+').to_owned(), wa_id.to_owned());
    }

    /// The next request (any endpoint) gets this answer instead of the normal one, its body
    /// unchecked. Queue several to script a sequence.
    pub fn respond_next(&self, status: u16, body: Value) {
        self.state.lock().scripted.push_back((status, body));
    }

    /// Waits this long before answering each request (for timeouts and slow health).
    pub fn set_delay(&self, delay: Duration) {
        self.state.lock().delay = delay;
    }

    /// The phone-number node returned by `GET /{version}/{id}` (an `id` field is added).
    pub fn set_health(&self, node: Value) {
        self.state.lock().health = Some(node);
    }

    /// Every request so far, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state.lock().requests.clone()
    }

    /// Forgets the recorded requests.
    pub fn clear_requests(&self) {
        self.state.lock().requests.clear();
    }

    /// The bodies of the messages the fake accepted (`POST …/messages` other than
    /// mark-as-read), oldest first.
    pub fn sent_messages(&self) -> Vec<Value> {
        self.state.lock().sent.clone()
    }

    /// The mark-as-read bodies the fake accepted, oldest first.
    pub fn read_receipts(&self) -> Vec<Value> {
        self.state.lock().read_receipts.clone()
    }

    /// Why the fake refused each `POST …/messages` body it found wrong, oldest first.
    pub fn refusals(&self) -> Vec<Refusal> {
        self.state.lock().refusals.clone()
    }

    /// Marks template `name` as an authentication template: sending it to a BSUID fails with
    /// 131062, as at Meta (protocols/meta.md §12.1).
    pub fn authentication_template(&self, name: &str) {
        self.state
            .lock()
            .authentication_templates
            .push(name.to_owned());
    }

    /// Serves `bytes` as media `media_id` to callers with `token`.
    pub fn add_media(&self, media_id: &str, token: &str, bytes: &[u8], mime_type: &str) {
        self.state.lock().media.insert(
            media_id.to_owned(),
            FakeMedia {
                bytes: Bytes::copy_from_slice(bytes),
                mime_type: mime_type.to_owned(),
                token: token.to_owned(),
            },
        );
    }

    /// `GET /{version}/{media_id}` answers 404 (code 100), as for an expired media id.
    pub fn media_gone(&self, media_id: &str) {
        self.state.lock().gone_media.push(media_id.to_owned());
    }

    /// The next downloads (`GET /fake-media/…`) answer these statuses, in order.
    pub fn fail_media_downloads(&self, statuses: &[u16]) {
        self.state.lock().media_failures.extend(statuses);
    }

    /// Every upload so far, oldest first.
    pub fn uploads(&self) -> Vec<Upload> {
        self.state.lock().uploads.clone()
    }

    /// The base64 SHA-256 of `bytes`, as Meta writes it in webhooks.
    pub fn sha256_base64(bytes: &[u8]) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(Sha256::digest(bytes))
    }
}

fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if needle.is_empty() || haystack.len() < needle.len() {
        return None;
    }
    (from..=haystack.len() - needle.len()).find(|&i| &haystack[i..i + needle.len()] == needle)
}

/// The parts of a `multipart/form-data` body: (headers text, content) each.
fn multipart_parts(content_type: &str, body: &[u8]) -> Vec<(String, Bytes)> {
    let Some(boundary) = content_type
        .split(';')
        .filter_map(|p| p.trim().strip_prefix("boundary="))
        .next()
    else {
        return Vec::new();
    };
    let delim = format!("--{}", boundary.trim_matches('"'));
    let mut parts = Vec::new();
    let mut pos = match find(body, delim.as_bytes(), 0) {
        Some(p) => p + delim.len(),
        None => return parts,
    };
    loop {
        if body[pos..].starts_with(b"--") {
            break;
        }
        let start = pos + 2; // CRLF after the delimiter
        let Some(next) = find(body, format!("\r\n{delim}").as_bytes(), start) else {
            break;
        };
        let part = &body[start.min(next)..next];
        if let Some(split) = find(part, b"\r\n\r\n", 0) {
            parts.push((
                String::from_utf8_lossy(&part[..split]).into_owned(),
                Bytes::copy_from_slice(&part[split + 4..]),
            ));
        }
        pos = next + 2 + delim.len();
    }
    parts
}

fn header_param(headers: &str, name: &str) -> Option<String> {
    let key = format!("{name}=\"");
    let i = headers.find(&key)? + key.len();
    let end = headers[i..].find('"')?;
    Some(headers[i..i + end].to_owned())
}

/// The media endpoints; `None` when the request is for something else.
fn media_route(
    state: &Shared,
    method: &Method,
    path: &str,
    bearer: Option<&str>,
    headers: &HeaderMap,
    body: &Bytes,
) -> Option<Response> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let mut s = state.lock();
    match (method, segments.as_slice()) {
        (&Method::GET, ["fake-media", id]) => {
            if let Some(status) = s.media_failures.pop_front() {
                return Some(reply(status, json!({"error": "scripted media failure"})));
            }
            let m = s.media.get(*id)?.clone();
            if bearer != Some(m.token.as_str()) {
                return Some(reply(401, oauth_error()));
            }
            Some(([(axum::http::header::CONTENT_TYPE, m.mime_type)], m.bytes).into_response())
        }
        (&Method::GET, [version, id]) if version.starts_with('v') => {
            if s.gone_media.iter().any(|g| g == id) {
                return Some(reply(
                    404,
                    error_envelope(100, "Unsupported get request. Object does not exist"),
                ));
            }
            let m = s.media.get(*id)?.clone();
            if bearer != Some(m.token.as_str()) {
                return Some(reply(401, oauth_error()));
            }
            let host = headers
                .get(axum::http::header::HOST)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("127.0.0.1");
            Some(reply(
                200,
                json!({
                    "messaging_product": "whatsapp",
                    "url": format!("http://{host}/fake-media/{id}"),
                    "mime_type": m.mime_type,
                    "sha256": hex::encode(Sha256::digest(&m.bytes)),
                    "file_size": m.bytes.len(),
                    "id": id,
                }),
            ))
        }
        (&Method::POST, [version, number, "media"]) if version.starts_with('v') => {
            if s.numbers.get(*number).map(String::as_str) != bearer || bearer.is_none() {
                return Some(reply(401, oauth_error()));
            }
            let content_type = headers
                .get(axum::http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let parts = multipart_parts(content_type, body);
            let field = |name: &str| {
                parts
                    .iter()
                    .find(|(h, _)| header_param(h, "name").as_deref() == Some(name))
            };
            let (Some((_, product)), Some((_, ty)), Some((file_headers, file))) =
                (field("messaging_product"), field("type"), field("file"))
            else {
                return Some(reply(
                    400,
                    error_envelope(100, "Param file, type and messaging_product are required"),
                ));
            };
            if product.as_ref() != b"whatsapp" {
                return Some(reply(
                    400,
                    error_envelope(100, "Invalid parameter: messaging_product"),
                ));
            }
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let media_id = format!("9{:015}", n);
            let mime_type = String::from_utf8_lossy(ty).into_owned();
            let file_mime_type = file_headers
                .lines()
                .find_map(|l| l.strip_prefix("Content-Type: "))
                .map(str::to_owned);
            let token = bearer.unwrap_or_default().to_owned();
            s.media.insert(
                media_id.clone(),
                FakeMedia {
                    bytes: file.clone(),
                    mime_type: mime_type.clone(),
                    token,
                },
            );
            s.uploads.push(Upload {
                phone_number_id: (*number).to_owned(),
                media_id: media_id.clone(),
                mime_type,
                file_mime_type,
                filename: header_param(file_headers, "filename"),
                bytes: file.clone(),
            });
            Some(reply(200, json!({"id": media_id})))
        }
        _ => None,
    }
}

/// A Graph error envelope as Meta sends it.
pub fn error_envelope(code: u32, message: &str) -> Value {
    envelope_with_details(code, message, message)
}

/// A Graph error envelope: `(#code) title` as the message, `details` in `error_data`.
fn envelope_with_details(code: u32, title: &str, details: &str) -> Value {
    json!({"error": {
        "message": format!("(#{code}) {title}"),
        "type": "OAuthException",
        "code": code,
        "error_data": {"messaging_product": "whatsapp", "details": details},
        "fbtrace_id": "AFakeTraceId",
    }})
}

/// Checks a `POST …/messages` body and answers as Meta does: a send response, a read
/// confirmation, or a 400 with the error envelope.
fn messages_post(state: &Shared, body: Option<Value>) -> Response {
    let Some(body) = body else {
        return reply(
            400,
            error_envelope(100, "Invalid parameter: body is not JSON"),
        );
    };
    let is_read = body.get("status").is_some();
    let checked = if is_read {
        checks::mark_read(&body).map(|()| None)
    } else {
        checks::send(&body).map(Some)
    };
    let mut s = state.lock();
    let send = match checked {
        Err(refusal) => {
            let answer = envelope_with_details(refusal.code, refusal.title, &refusal.details);
            s.refusals.push(refusal);
            return reply(400, answer);
        }
        Ok(None) => {
            s.read_receipts.push(body);
            return reply(200, json!({"success": true}));
        }
        Ok(Some(send)) => send,
    };
    if send.to_field == "recipient"
        && send
            .template
            .as_ref()
            .is_some_and(|t| s.authentication_templates.contains(t))
    {
        return reply(
            400,
            envelope_with_details(
                131_062,
                "Business-scoped user ID recipients not supported",
                "You can only send authentication messages to recipients' phone numbers, \
                 not their business-scoped user IDs.",
            ),
        );
    }
    let contact = if send.to_field == "recipient" {
        // §12.2: the BSUID echoed, no wa_id.
        json!({"input": send.to, "wa_id": "", "user_id": send.to})
    } else {
        let digits = send.to.trim_start_matches('+');
        let wa_id = s
            .wa_ids
            .get(digits)
            .cloned()
            .unwrap_or_else(|| digits.to_owned());
        json!({"input": send.to, "wa_id": wa_id})
    };
    s.sent.push(body);
    reply(
        200,
        json!({
            "messaging_product": "whatsapp",
            "contacts": [contact],
            "messages": [{"id": new_wamid()}],
        }),
    )
}

fn oauth_error() -> Value {
    json!({"error": {
        "message": "Invalid OAuth access token - Cannot parse access token",
        "type": "OAuthException",
        "code": 190,
        "fbtrace_id": "AFakeTraceId",
    }})
}

fn reply(status: u16, body: Value) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, axum::Json(body)).into_response()
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A fresh `wamid.` id (unique per process; not a real wamid encoding).
fn new_wamid() -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let digest = Sha256::digest(format!("{n}:{nanos}:{}", std::process::id()).as_bytes());
    format!("wamid.{}", hex::encode(&digest[..16]))
}

async fn handle(
    state: Shared,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    let json_body: Option<Value> = serde_json::from_slice(&body).ok();
    let path = uri.path().to_owned();
    let delay = {
        let mut s = state.lock();
        s.requests.push(RecordedRequest {
            method: method.to_string(),
            path: path.clone(),
            query: uri.query().map(str::to_owned),
            bearer: bearer.clone(),
            body: json_body.clone(),
        });
        s.delay
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if let Some(resp) = media_route(&state, &method, &path, bearer.as_deref(), &headers, &body) {
        return resp;
    }
    if let Some(resp) = templates_route(
        &state,
        &method,
        &path,
        uri.query(),
        bearer.as_deref(),
        json_body.as_ref(),
    ) {
        return resp;
    }
    let (scripted, token_ok, health) = {
        let mut s = state.lock();
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let number = segments.get(1).copied().unwrap_or("");
        let token_ok = match (s.numbers.get(number), &bearer) {
            (Some(expected), Some(given)) => expected == given,
            _ => false,
        };
        (s.scripted.pop_front(), token_ok, s.health.clone())
    };
    if let Some((status, body)) = scripted {
        return reply(status, body);
    }
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let versioned = segments.first().is_some_and(|v| v.starts_with('v'));
    match (method, segments.as_slice()) {
        (_, [_, _, ..]) if !versioned => reply(
            400,
            error_envelope(2500, "Unknown path components: no API version"),
        ),
        (_, [_, _, ..]) if !token_ok => reply(401, oauth_error()),
        (Method::POST, [_, _, "messages"]) => messages_post(&state, json_body),
        (Method::GET, [_, id]) => {
            let mut node = health.unwrap_or_else(|| {
                json!({
                    "health_status": {"can_send_message": "AVAILABLE", "entities": [
                        {"entity_type": "PHONE_NUMBER", "id": id, "can_send_message": "AVAILABLE"}
                    ]},
                    "quality_rating": "GREEN",
                    "messaging_limit_tier": "TIER_2K",
                    "status": "CONNECTED",
                    "name_status": "APPROVED",
                    "throughput": {"level": "STANDARD"},
                    "display_phone_number": "+1 555-078-3881",
                    "verified_name": "Fake Business",
                })
            });
            if let Some(obj) = node.as_object_mut() {
                obj.insert("id".to_owned(), Value::from(*id));
            }
            reply(200, node)
        }
        _ => reply(
            400,
            error_envelope(100, "Unsupported request - method type or path"),
        ),
    }
}

/// `GET /{version}/{waba_id}/message_templates?limit=&after=` (meta.md §13.1): a page of
/// `data` with `paging.cursors` and, while more follow, `paging.next`.
fn templates_route(
    state: &Shared,
    method: &Method,
    path: &str,
    query: Option<&str>,
    bearer: Option<&str>,
    body: Option<&Value>,
) -> Option<Response> {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let [version, waba, "message_templates"] = segments.as_slice() else {
        return None;
    };
    if *method == Method::POST {
        return Some(create_template(state, waba, bearer, body));
    }
    if method != Method::GET {
        return None;
    }
    let s = state.lock();
    let Some((token, templates)) = s.wabas.get(*waba) else {
        return Some(reply(
            400,
            error_envelope(100, "Unsupported get request. Object does not exist"),
        ));
    };
    if bearer != Some(token.as_str()) {
        return Some(reply(401, oauth_error()));
    }
    let pairs: HashMap<String, String> =
        url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let limit = match pairs.get("limit").map(|l| l.parse::<usize>()) {
        None => 25,
        Some(Ok(l)) if (1..=1000).contains(&l) => l,
        Some(_) => return Some(reply(400, error_envelope(100, "Invalid parameter: limit"))),
    };
    let start = match pairs
        .get("after")
        .map(|a| a.strip_prefix("cursor-").map(str::parse::<usize>))
    {
        None => 0,
        Some(Some(Ok(n))) if n <= templates.len() => n,
        Some(_) => return Some(reply(400, error_envelope(100, "Invalid parameter: after"))),
    };
    let end = (start + limit).min(templates.len());
    let mut paging =
        json!({"cursors": {"before": format!("cursor-{start}"), "after": format!("cursor-{end}")}});
    if end < templates.len() {
        paging["next"] = Value::from(format!(
            "https://graph.facebook.com/{version}/{waba}/message_templates?limit={limit}&after=cursor-{end}"
        ));
    }
    Some(reply(
        200,
        json!({"data": templates[start..end], "paging": paging}),
    ))
}

/// `POST /{version}/{waba_id}/message_templates`: checks the create body against the
/// shapes of §13.1-§13.2 (name, language, category, `parameter_format`, a BODY with a
/// sample per placeholder, known component and button types), then lists the template as
/// `PENDING` and answers `{"id","status","category"}`.
fn create_template(
    state: &Shared,
    waba: &str,
    bearer: Option<&str>,
    body: Option<&Value>,
) -> Response {
    let mut s = state.lock();
    let Some((token, templates)) = s.wabas.get_mut(waba) else {
        return reply(
            400,
            error_envelope(100, "Unsupported post request. Object does not exist"),
        );
    };
    if bearer != Some(token.as_str()) {
        return reply(401, oauth_error());
    }
    let invalid = |why: &str| {
        reply(
            400,
            error_envelope(100, &format!("Invalid parameter: {why}")),
        )
    };
    let Some(body) = body else {
        return invalid("the body is not JSON");
    };
    if let Err(why) = checks::template_create(body) {
        return invalid(&why);
    }
    if templates
        .iter()
        .any(|t| t["name"] == body["name"] && t["language"] == body["language"])
    {
        return reply(
            400,
            error_envelope(2_388_024, "Content in this language already exists"),
        );
    }
    let id = format!("{}", 9_000_000_000_u64 + templates.len() as u64);
    let mut listed = body.clone();
    listed["id"] = json!(id);
    listed["status"] = json!("PENDING");
    listed["parameter_format"] = json!(
        body["parameter_format"]
            .as_str()
            .unwrap_or("positional")
            .to_ascii_uppercase()
    );
    templates.push(listed);
    reply(
        200,
        json!({"id": id, "status": "PENDING", "category": body["category"]}),
    )
}

/// A `message_template_status_update` webhook for the WABA [`WABA_ID`] (meta.md §14.2).
pub fn template_status_update(
    template_id: u64,
    name: &str,
    language: &str,
    event: &str,
    reason: &str,
) -> String {
    json!({"object": "whatsapp_business_account", "entry": [{"id": WABA_ID, "time": 1_751_247_548,
        "changes": [{"field": "message_template_status_update", "value": {
            "event": event, "message_template_id": template_id, "message_template_name": name,
            "message_template_language": language, "reason": reason,
            "message_template_category": "UTILITY"}}]}]})
    .to_string()
}

/// A Graph `data[]` template item (§13.1): positional body `text` with `examples`.
pub fn graph_template(
    id: &str,
    name: &str,
    language: &str,
    status: &str,
    body: &str,
    examples: &[&str],
) -> Value {
    let mut body_component = json!({"type": "BODY", "text": body});
    if !examples.is_empty() {
        body_component["example"] = json!({"body_text": [examples]});
    }
    json!({"id": id, "name": name, "language": language, "status": status,
        "category": "UTILITY", "parameter_format": "POSITIONAL", "components": [body_component]})
}

/// The full `X-Hub-Signature-256` value (`sha256=…`) for `body`.
pub fn sign(app_secret: &str, body: &[u8]) -> String {
    signature::sign(app_secret.as_bytes(), body)
}

/// A signed POST as the router would receive it (`path` `/webhooks/meta-whatsapp`). Pass
/// `None` to leave the signature header out.
///
/// # Panics
/// Never for the values it builds (static header names, hex signatures).
pub fn webhook_request(body: &str, app_secret: Option<&str>) -> WebhookRequest {
    let mut headers = HeaderMap::new();
    headers.insert(
        "content-type",
        axum::http::HeaderValue::from_static("application/json"),
    );
    if let Some(secret) = app_secret
        && let Ok(v) = sign(secret, body.as_bytes()).parse()
    {
        headers.insert(SIGNATURE_HEADER, v);
    }
    WebhookRequest {
        method: Method::POST,
        path: "/webhooks/meta-whatsapp".to_owned(),
        query: None,
        headers,
        body: Bytes::copy_from_slice(body.as_bytes()),
        memo: Default::default(),
    }
}

/// The GET handshake Meta sends (values are percent-encoded here).
pub fn handshake_request(mode: &str, verify_token: &str, challenge: &str) -> WebhookRequest {
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("hub.mode", mode)
        .append_pair("hub.challenge", challenge)
        .append_pair("hub.verify_token", verify_token)
        .finish();
    WebhookRequest {
        method: Method::GET,
        path: "/webhooks/meta-whatsapp".to_owned(),
        query: Some(query),
        headers: HeaderMap::new(),
        body: Bytes::new(),
        memo: Default::default(),
    }
}

/// An account as the router would pass it in.
///
/// # Panics
/// If `display_number` is not a valid phone number (a bug in the test).
pub fn account(
    phone_number_id: &str,
    display_number: &str,
    access_token: &str,
    app_secret: &str,
    verify_token: &str,
) -> AccountContext {
    let mut credentials = Credentials::default();
    credentials.insert(CRED_PHONE_NUMBER_ID, phone_number_id);
    credentials.insert(CRED_ACCESS_TOKEN, access_token);
    credentials.insert(CRED_APP_SECRET, app_secret);
    credentials.insert(CRED_VERIFY_TOKEN, verify_token);
    AccountContext {
        account_id: format!("acct_{phone_number_id}"),
        tenant_id: "tenant_test".to_owned(),
        address: PhoneNumber::parse(display_number).expect("test display number"),
        routing_key: phone_number_id.to_owned(),
        credentials,
    }
}

/// Wraps change values into a compact envelope: `changes` is `(phone_number_id,
/// display_number, field, value-without-metadata)`; each becomes its own entry.
pub fn envelope(changes: &[(&str, &str, &str, Value)]) -> String {
    let entries: Vec<Value> = changes
        .iter()
        .map(|(pnid, display, field, value)| {
            let mut value = value.clone();
            if let Some(obj) = value.as_object_mut() {
                obj.insert("messaging_product".to_owned(), "whatsapp".into());
                obj.insert(
                    "metadata".to_owned(),
                    json!({"display_phone_number": display, "phone_number_id": pnid}),
                );
            }
            json!({"id": WABA_ID, "changes": [{"value": value, "field": field}]})
        })
        .collect();
    json!({"object": "whatsapp_business_account", "entry": entries}).to_string()
}

/// An inbound text message from `from_wa_id` (digits, no `+`).
pub fn inbound_text(
    phone_number_id: &str,
    display_number: &str,
    from_wa_id: &str,
    wamid: &str,
    text: &str,
) -> String {
    let value = json!({
        "contacts": [{"profile": {"name": "Test User"}, "wa_id": from_wa_id}],
        "messages": [{
            "from": from_wa_id, "id": wamid, "timestamp": TIMESTAMP,
            "type": "text", "text": {"body": text},
        }],
    });
    envelope(&[(phone_number_id, display_number, "messages", value)])
}

fn status_item(wamid: &str, status: &str, recipient: &str, error_code: Option<u32>) -> Value {
    let mut item = json!({
        "id": wamid, "status": status, "timestamp": TIMESTAMP, "recipient_id": recipient,
    });
    if let Some(code) = error_code {
        item["errors"] = json!([{
            "code": code,
            "title": format!("Error {code}"),
            "message": format!("Error {code}"),
            "error_data": {"details": format!("Fake failure with code {code}")},
        }]);
    }
    item
}

/// A status webhook for `wamid` (`sent`, `delivered`, `read`, `played`, `failed`),
/// `recipient` a wa_id; `error_code` adds an `errors[]` item.
pub fn status(
    phone_number_id: &str,
    wamid: &str,
    status: &str,
    recipient: &str,
    error_code: Option<u32>,
) -> String {
    let value = json!({"statuses": [status_item(wamid, status, recipient, error_code)]});
    envelope(&[(phone_number_id, "15550783881", "messages", value)])
}

/// Several statuses in one change: `(wamid, status, recipient wa_id)`.
pub fn statuses(phone_number_id: &str, items: &[(&str, &str, &str)]) -> String {
    let list: Vec<Value> = items
        .iter()
        .map(|(w, s, r)| status_item(w, s, r, None))
        .collect();
    envelope(&[(
        phone_number_id,
        "15550783881",
        "messages",
        json!({"statuses": list}),
    )])
}

/// A coexistence echo: the business wrote `text` to `to_wa_id` from the WhatsApp Business
/// app (`field = smb_message_echoes`).
pub fn echo(
    phone_number_id: &str,
    display_number: &str,
    to_wa_id: &str,
    wamid: &str,
    text: &str,
) -> String {
    let value = json!({
        "message_echoes": [{
            "from": display_number, "to": to_wa_id, "id": wamid, "timestamp": TIMESTAMP,
            "type": "text", "text": {"body": text},
        }],
    });
    envelope(&[(phone_number_id, display_number, "smb_message_echoes", value)])
}

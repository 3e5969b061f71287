//! Test doubles (feature `testing`): [`FakeTwilio`], a local fake of the Twilio REST API
//! (Messages, Content API, Typing Indicators), and helpers that build and sign webhooks the
//! way Twilio does.
//!
//! ```ignore
//! let fake = FakeTwilio::start().await;
//! fake.add_account(SID, TOKEN);
//! let adapter = TwilioWhatsApp::new(TwilioConfig { api_base: fake.base_url(), ..Default::default() });
//! // ... adapter.send(..) ...
//! let reqs = fake.requests();
//! assert_eq!(reqs[0].form_value("To"), Some("whatsapp:+31612345678"));
//!
//! let form = inbound_text_form(SID, "+31612345678", "+14155238886", "hi", "SM…");
//! let body = form_body(&form);
//! let sig = sign_form(TOKEN, "https://sb.example.com/webhooks/twilio-whatsapp", &form);
//! // POST body with `X-Twilio-Signature: sig` and content type form-urlencoded.
//! ```

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use switchboard_core::fake_server::{self, LoopbackServer};
use switchboard_core::{AccountContext, Credentials, PhoneNumber, WebhookRequest};

use crate::config::{CRED_ACCOUNT_SID, CRED_AUTH_TOKEN};
use crate::signature::{SIGNATURE_HEADER, compute_signature};

mod content;

/// An account SID in Twilio's shape, for tests.
pub const TEST_ACCOUNT_SID: &str = "AC00000000000000000000000000000001";
/// An auth token for tests.
pub const TEST_AUTH_TOKEN: &str = "test-auth-token-0001";
/// An approved template (`twilio/text`, "Your appointment is coming up on {{1}} at {{2}}")
/// every account of a [`FakeTwilio`] has: send it as `template.name`.
pub const TEST_TEMPLATE_SID: &str = "HXb5b62575e6e4ff6129ad7c8efe1f983e";

/// A connected account as the router hands it to the adapter: `business_number` is its
/// address and routing key.
///
/// # Panics
/// If `business_number` is not a valid E.164 number.
pub fn account(account_sid: &str, auth_token: &str, business_number: &str) -> AccountContext {
    let mut credentials = Credentials::default();
    credentials.insert(CRED_ACCOUNT_SID, account_sid);
    credentials.insert(CRED_AUTH_TOKEN, auth_token);
    AccountContext {
        account_id: format!("acct_{account_sid}"),
        tenant_id: "tenant_test".to_owned(),
        address: PhoneNumber::parse(business_number).expect("test business number"),
        routing_key: business_number.to_owned(),
        credentials,
    }
}

/// Signs a form webhook as Twilio would: `url` is the full public URL Twilio called
/// (scheme, host, path and query).
pub fn sign_form<K: AsRef<str>, V: AsRef<str>>(
    auth_token: &str,
    url: &str,
    params: &[(K, V)],
) -> String {
    compute_signature(auth_token, url, params)
}

/// Encodes pairs as an `application/x-www-form-urlencoded` body, in order.
pub fn form_body<K: AsRef<str>, V: AsRef<str>>(params: &[(K, V)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        s.append_pair(k.as_ref(), v.as_ref());
    }
    s.finish()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// A realistic inbound text message form, as Twilio posts it. `from` and `to` are E.164
/// (`+31612345678`); the `whatsapp:` prefix and `WaId` are added.
pub fn inbound_text_form(
    account_sid: &str,
    from: &str,
    to: &str,
    body: &str,
    message_sid: &str,
) -> Vec<(String, String)> {
    let from_wa = format!("whatsapp:{from}");
    let to_wa = format!("whatsapp:{to}");
    let wa_id = from.trim_start_matches('+');
    pairs(&[
        ("SmsMessageSid", message_sid),
        ("NumMedia", "0"),
        ("ProfileName", "Test User"),
        ("MessageType", "text"),
        ("SmsSid", message_sid),
        ("WaId", wa_id),
        ("SmsStatus", "received"),
        ("Body", body),
        ("To", &to_wa),
        ("NumSegments", "1"),
        ("ReferralNumMedia", "0"),
        ("MessageSid", message_sid),
        ("AccountSid", account_sid),
        ("From", &from_wa),
        ("ApiVersion", "2010-04-01"),
    ])
}

/// A realistic inbound SMS form, as Twilio posts it: bare E.164 addresses, the number's
/// geography, no WhatsApp fields. `opt_out_type` is Advanced Opt-Out's `OptOutType`.
pub fn inbound_sms_form(
    account_sid: &str,
    from: &str,
    to: &str,
    body: &str,
    message_sid: &str,
    opt_out_type: Option<&str>,
) -> Vec<(String, String)> {
    let segments = crate::segments::count(body).max(1).to_string();
    let mut form = pairs(&[
        ("ToCountry", "US"),
        ("ToState", "CA"),
        ("SmsMessageSid", message_sid),
        ("NumMedia", "0"),
        ("ToCity", ""),
        ("FromZip", ""),
        ("SmsSid", message_sid),
        ("FromState", ""),
        ("SmsStatus", "received"),
        ("FromCity", ""),
        ("Body", body),
        ("FromCountry", "NL"),
        ("To", to),
        ("ToZip", ""),
        ("NumSegments", &segments),
        ("MessageSid", message_sid),
        ("AccountSid", account_sid),
        ("From", from),
        ("ApiVersion", "2010-04-01"),
    ]);
    if let Some(t) = opt_out_type {
        form.push(("OptOutType".into(), t.into()));
    }
    form
}

/// A realistic SMS status callback form (bare E.164 addresses); `error_code` as in
/// [`status_form`].
pub fn sms_status_form(
    account_sid: &str,
    business: &str,
    recipient: &str,
    message_sid: &str,
    status: &str,
    error_code: Option<&str>,
) -> Vec<(String, String)> {
    let mut form = pairs(&[
        ("SmsSid", message_sid),
        ("SmsStatus", status),
        ("MessageStatus", status),
        ("To", recipient),
        ("MessageSid", message_sid),
        ("AccountSid", account_sid),
        ("From", business),
        ("ApiVersion", "2010-04-01"),
    ]);
    if let Some(code) = error_code {
        form.push(("ErrorCode".into(), code.into()));
    }
    form
}

/// A realistic status callback form: `business` is the sender (E.164), `recipient` the
/// person, `status` Twilio's `MessageStatus` (`sent`, `delivered`, `read`, `failed`, …).
/// For `failed`/`undelivered` pass an `error_code` (e.g. `Some("63016")`).
pub fn status_form(
    account_sid: &str,
    business: &str,
    recipient: &str,
    message_sid: &str,
    status: &str,
    error_code: Option<&str>,
) -> Vec<(String, String)> {
    let from_wa = format!("whatsapp:{business}");
    let to_wa = format!("whatsapp:{recipient}");
    let mut form = pairs(&[
        ("ChannelPrefix", "whatsapp"),
        ("ApiVersion", "2010-04-01"),
        ("MessageStatus", status),
        ("SmsSid", message_sid),
        ("SmsStatus", status),
        ("ChannelInstallSid", "XE00000000000000000000000000000001"),
        ("To", &to_wa),
        ("From", &from_wa),
        ("MessageSid", message_sid),
        ("StructuredMessage", "false"),
        ("AccountSid", account_sid),
        ("ChannelToAddress", recipient),
    ]);
    if status == "read" {
        form.push(("EventType".into(), "READ".into()));
    }
    if let Some(code) = error_code {
        form.push(("ErrorCode".into(), code.into()));
        form.push(("ChannelStatusMessage".into(), format!("error {code}")));
    }
    form
}

/// A signed POST webhook as the router receives it: `public_url` is the configured public
/// base (`https://sb.example.com`), `path` the raw path, `query` the raw query.
pub fn signed_webhook_request<K: AsRef<str>, V: AsRef<str>>(
    public_url: &str,
    path: &str,
    query: Option<&str>,
    auth_token: &str,
    params: &[(K, V)],
) -> WebhookRequest {
    let base = public_url.trim_end_matches('/');
    let url = match query {
        Some(q) => format!("{base}{path}?{q}"),
        None => format!("{base}{path}"),
    };
    let mut headers = http::HeaderMap::new();
    headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/x-www-form-urlencoded"),
    );
    if let Ok(v) = http::HeaderValue::from_str(&sign_form(auth_token, &url, params)) {
        headers.insert(SIGNATURE_HEADER, v);
    }
    WebhookRequest {
        method: http::Method::POST,
        path: path.to_owned(),
        query: query.map(str::to_owned),
        headers,
        body: bytes::Bytes::from(form_body(params)),
        memo: Default::default(),
    }
}

/// One request FakeTwilio received.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    pub method: String,
    /// The path, e.g. `/2010-04-01/Accounts/AC…/Messages.json`.
    pub path: String,
    pub query: Option<String>,
    /// Basic-auth user (the account SID), when given.
    pub basic_user: Option<String>,
    /// Basic-auth password (the auth token), when given.
    pub basic_password: Option<String>,
    /// Header names lowercase, values as sent (lossy UTF-8).
    pub headers: Vec<(String, String)>,
    /// The decoded form, in order, repeated keys kept (empty for a JSON body).
    pub form: Vec<(String, String)>,
    /// The body as sent (lossy UTF-8).
    pub body: String,
}

impl RecordedRequest {
    /// The first value of a form field.
    pub fn form_value(&self, name: &str) -> Option<&str> {
        self.form
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a form field, in order.
    pub fn form_values(&self, name: &str) -> Vec<&str> {
        self.form
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The body as JSON, when it is JSON (the Content API's requests).
    pub fn json(&self) -> Option<Value> {
        serde_json::from_str(&self.body).ok()
    }

    /// Whether this is a request to the Content API (`/v1/Content…`, `/v2/Content…`).
    pub fn is_content_api(&self) -> bool {
        self.path.starts_with("/v1/Content") || self.path.starts_with("/v2/Content")
    }

    /// A header's value (name case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Which requests a scripted answer or a held answer is for: a method and a path prefix;
/// `None`, any request to the REST APIs.
#[derive(Clone, Debug)]
struct Route {
    method: String,
    path_prefix: String,
}

fn route_matches(route: Option<&Route>, method: &Method, path: &str) -> bool {
    route.is_none_or(|r| {
        r.method.eq_ignore_ascii_case(method.as_str()) && path.starts_with(&r.path_prefix)
    })
}

/// A scripted answer for the next request (of a route).
#[derive(Clone, Debug)]
struct Scripted {
    route: Option<Route>,
    status: u16,
    body: Value,
    headers: Vec<(String, String)>,
}

#[derive(Default)]
struct State {
    accounts: HashMap<String, String>,
    account_status: String,
    requests: Vec<RecordedRequest>,
    scripted: VecDeque<Scripted>,
    delay: Duration,
    messages: HashMap<String, Value>,
    counter: u64,
    /// Media by `ME…` SID: bytes and content type.
    media: HashMap<String, (Bytes, String)>,
    media_failures: VecDeque<u16>,
    fetched: Vec<FetchedMedia>,
    /// `http://127.0.0.1:{port}`, for the URLs the Content API answers with.
    base_url: String,
    contents: content::Contents,
    /// Requests whose answer is held back this long after they were handled.
    holds: VecDeque<(Route, Duration)>,
}

/// A `MediaUrl` FakeTwilio fetched after a send, as Twilio does before delivering.
#[derive(Clone)]
pub struct FetchedMedia {
    pub url: String,
    /// The HTTP status of the fetch (0 when it could not connect).
    pub status: u16,
    pub content_type: Option<String>,
    pub bytes: Bytes,
}

impl std::fmt::Debug for FetchedMedia {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FetchedMedia")
            .field("url", &self.url)
            .field("status", &self.status)
            .field("content_type", &self.content_type)
            .field("len", &self.bytes.len())
            .finish()
    }
}

type Shared = fake_server::Shared<State>;

/// A fake Twilio REST API on `127.0.0.1`, speaking the documented JSON:
/// `POST /2010-04-01/Accounts/{sid}/Messages.json`, `GET /2010-04-01/Accounts/{sid}.json`
/// and `GET /2010-04-01/Accounts/{sid}/Messages/{sid}.json`; the Content API
/// (`POST /v1/Content`, `GET /v1/Content/{sid}`, `GET /v2/Content`) and
/// `POST /v2/Indicators/Typing.json` (see `testing/content.rs` for what each checks); with
/// basic auth checked against the accounts added. Serve all three bases from it
/// ([`FakeTwilio::config`]). A message naming a `ContentSid` must name a content the account
/// has ([`TEST_TEMPLATE_SID`], [`FakeTwilio::add_content`], or one created through the
/// API), without `Body` or `MediaUrl`, with `ContentVariables` a JSON object of valid
/// values (§9.4). The server stops when the value is dropped.
pub struct FakeTwilio {
    server: LoopbackServer,
    state: Shared,
}

impl FakeTwilio {
    /// Starts the server on an ephemeral port with one account:
    /// [`TEST_ACCOUNT_SID`] / [`TEST_AUTH_TOKEN`], status `active`.
    ///
    /// # Panics
    /// If no loopback port can be bound (a broken test environment).
    pub async fn start() -> Self {
        let state = Shared::new(State {
            account_status: "active".into(),
            ..State::default()
        });
        state
            .lock()
            .accounts
            .insert(TEST_ACCOUNT_SID.into(), TEST_AUTH_TOKEN.into());
        let app_state = state.clone();
        let app = Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let state = app_state.clone();
                async move { handle(state, method, uri, headers, body).await }
            },
        );
        let server = LoopbackServer::start("FakeTwilio", |listener| async move {
            axum::serve(listener, app).await
        })
        .await;
        {
            let mut st = state.lock();
            st.base_url = server.base_url();
            let base = st.base_url.clone();
            st.contents.add(
                &base,
                None,
                Some(TEST_TEMPLATE_SID),
                false,
                &json!({
                    "friendly_name": "appointment_reminder",
                    "language": "en",
                    "variables": {"1": "12/1", "2": "3pm"},
                    "types": {"twilio/text": {"body": "Your appointment is coming up on {{1}} at {{2}}"}},
                }),
            );
        }
        content::set_approval(&state, TEST_TEMPLATE_SID, "approved", "");
        Self { server, state }
    }

    /// `http://127.0.0.1:{port}`, to use as [`crate::TwilioConfig::api_base`] (and as the
    /// Content and Messaging API bases).
    pub fn base_url(&self) -> String {
        self.server.base_url()
    }

    /// An adapter configuration with every Twilio API base on this fake, the public URL
    /// `https://sb.example.com` and a 5-second timeout.
    pub fn config(&self) -> crate::TwilioConfig {
        crate::TwilioConfig {
            api_base: self.base_url(),
            content_api_base: self.base_url(),
            messaging_api_base: self.base_url(),
            public_url: "https://sb.example.com".into(),
            request_timeout: Duration::from_secs(5),
            ..crate::TwilioConfig::default()
        }
    }

    /// Adds a content resource (an approved template, or one "created earlier") to
    /// `account_sid` and returns its new `HX` SID. `request` is a `POST /v1/Content` body
    /// (`friendly_name`, `language`, `variables`, `types`); it is not checked.
    pub fn add_content(&self, account_sid: &str, request: &Value) -> String {
        let mut st = self.state.lock();
        let base = st.base_url.clone();
        st.contents
            .add(&base, Some(account_sid), None, false, request)
    }

    /// Sets the WhatsApp approval of content `sid` (`approved`, `rejected`, `paused`, …, with
    /// Meta's reason for a rejection), as `GET /v1/ContentAndApprovals` and
    /// `GET /v1/Content/{sid}/ApprovalRequests` show it. False when no content has that SID.
    pub fn set_approval(&self, sid: &str, status: &str, rejection_reason: &str) -> bool {
        content::set_approval(&self.state, sid, status, rejection_reason)
    }

    /// Removes content `sid` (deleted at Twilio). False when no content has that SID.
    pub fn remove_content(&self, sid: &str) -> bool {
        let mut st = self.state.lock();
        let before = st.contents.stored.len();
        st.contents
            .stored
            .retain(|c| c.resource["sid"].as_str() != Some(sid));
        st.contents.stored.len() != before
    }

    /// Every content resource the fake holds (the seeded template first), as the API shows
    /// them.
    pub fn contents(&self) -> Vec<Value> {
        let st = self.state.lock();
        st.contents
            .stored
            .iter()
            .map(|c| c.resource.clone())
            .collect()
    }

    /// The content resources created through `POST /v1/Content`, in order.
    pub fn created_contents(&self) -> Vec<Value> {
        let st = self.state.lock();
        st.contents
            .stored
            .iter()
            .filter(|c| c.created)
            .map(|c| c.resource.clone())
            .collect()
    }

    /// Pages of `GET /v2/Content` hold at most this many items from now on (50 by default).
    pub fn set_content_page_size(&self, size: usize) {
        self.state.lock().contents.page_size = size.max(1);
    }

    /// The requests to the Content API, in order.
    pub fn content_requests(&self) -> Vec<RecordedRequest> {
        self.requests()
            .into_iter()
            .filter(RecordedRequest::is_content_api)
            .collect()
    }

    /// The typing indicators requested (`POST /v2/Indicators/Typing.json`), in order.
    pub fn typing_requests(&self) -> Vec<RecordedRequest> {
        self.requests()
            .into_iter()
            .filter(|r| r.path == "/v2/Indicators/Typing.json")
            .collect()
    }

    /// Accepts basic auth `sid:token` from now on.
    pub fn add_account(&self, sid: &str, token: &str) {
        self.state.lock().accounts.insert(sid.into(), token.into());
    }

    /// The `status` the account resource reports (`active`, `suspended`, `closed`).
    pub fn set_account_status(&self, status: &str) {
        self.state.lock().account_status = status.into();
    }

    /// Stores media of an inbound message and returns its `MediaUrl`:
    /// `{base}/2010-04-01/Accounts/{account_sid}/Messages/{message_sid}/Media/ME…`. A GET
    /// with the account's basic auth answers 307 to `/cdn/ME…`, which serves the bytes
    /// (like Twilio's redirect to its CDN).
    pub fn add_media(
        &self,
        account_sid: &str,
        message_sid: &str,
        bytes: &[u8],
        content_type: &str,
    ) -> String {
        let mut st = self.state.lock();
        st.counter += 1;
        let me = format!("ME{:032x}", st.counter);
        st.media.insert(
            me.clone(),
            (Bytes::copy_from_slice(bytes), content_type.to_owned()),
        );
        format!(
            "{}/2010-04-01/Accounts/{account_sid}/Messages/{message_sid}/Media/{me}",
            self.base_url()
        )
    }

    /// The next media requests (`…/Media/ME…`) answer these statuses, in order.
    pub fn fail_media(&self, statuses: &[u16]) {
        self.state.lock().media_failures.extend(statuses);
    }

    /// The `MediaUrl`s fetched after sends, oldest first.
    pub fn fetched_media(&self) -> Vec<FetchedMedia> {
        self.state.lock().fetched.clone()
    }

    /// Delays every answer (after recording the request), to provoke client timeouts.
    pub fn set_delay(&self, delay: Duration) {
        self.state.lock().delay = delay;
    }

    /// Answers the next request (any route) with this status, JSON body and headers
    /// instead of the normal behaviour. Calls queue up in order.
    pub fn respond_next(&self, status: u16, body: Value, headers: &[(&str, &str)]) {
        self.script(None, status, body, headers);
    }

    /// Answers the next request with Twilio's error body
    /// `{"code","message","more_info","status"}`.
    pub fn respond_error_next(&self, status: u16, code: u32, message: &str) {
        self.respond_next(status, error_json(status, code, message), &[]);
    }

    /// [`FakeTwilio::respond_next`] for the next request with this method whose path starts
    /// with `path_prefix` (e.g. `("POST", "/v1/Content")`); other requests pass.
    pub fn respond_next_to(
        &self,
        method: &str,
        path_prefix: &str,
        status: u16,
        body: Value,
        headers: &[(&str, &str)],
    ) {
        let route = Route {
            method: method.to_owned(),
            path_prefix: path_prefix.to_owned(),
        };
        self.script(Some(route), status, body, headers);
    }

    /// [`FakeTwilio::respond_error_next`] for the next request of a route (see
    /// [`FakeTwilio::respond_next_to`]).
    pub fn respond_error_next_to(
        &self,
        method: &str,
        path_prefix: &str,
        status: u16,
        code: u32,
        message: &str,
    ) {
        self.respond_next_to(
            method,
            path_prefix,
            status,
            error_json(status, code, message),
            &[],
        );
    }

    /// Handles the next request of a route normally (a create creates), then holds its
    /// answer back for `delay`: a client that times out never learns what happened.
    pub fn hold_next_answer_to(&self, method: &str, path_prefix: &str, delay: Duration) {
        let route = Route {
            method: method.to_owned(),
            path_prefix: path_prefix.to_owned(),
        };
        self.state.lock().holds.push_back((route, delay));
    }

    fn script(&self, route: Option<Route>, status: u16, body: Value, headers: &[(&str, &str)]) {
        self.state.lock().scripted.push_back(Scripted {
            route,
            status,
            body,
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        });
    }

    /// Changes a created message's status (for `fetch_status` tests); returns false when
    /// no such message was created.
    pub fn set_message_status(&self, sid: &str, status: &str) -> bool {
        let mut st = self.state.lock();
        match st.messages.get_mut(sid) {
            Some(m) => {
                m["status"] = Value::String(status.into());
                true
            }
            None => false,
        }
    }

    /// Sets a created message's `price` and `price_unit` as Twilio fills them in once the
    /// message is final (twilio.md §10: a negative decimal string, e.g. `"-0.00750"`;
    /// `None` leaves `price` null). Returns false when no such message was created.
    pub fn set_message_price(&self, sid: &str, price: Option<&str>, unit: &str) -> bool {
        let mut st = self.state.lock();
        match st.messages.get_mut(sid) {
            Some(m) => {
                m["price"] = price.map_or(Value::Null, |p| Value::String(p.into()));
                m["price_unit"] = Value::String(unit.into());
                true
            }
            None => false,
        }
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state.lock().requests.clone()
    }

    /// The SIDs of the messages created so far, in order.
    pub fn created_message_sids(&self) -> Vec<String> {
        created_in_order(&self.state)
    }
}

fn created_in_order(state: &Shared) -> Vec<String> {
    let st = state.lock();
    let mut v: Vec<(u64, String)> = st
        .messages
        .iter()
        .filter_map(|(sid, m)| Some((m.get("_seq")?.as_u64()?, sid.clone())))
        .collect();
    v.sort();
    v.into_iter().map(|(_, s)| s).collect()
}

/// Twilio's 2010 API error body.
pub fn error_json(status: u16, code: u32, message: &str) -> Value {
    json!({
        "code": code,
        "message": message,
        "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
        "status": status,
    })
}

fn basic_auth(headers: &HeaderMap) -> (Option<String>, Option<String>) {
    let Some(encoded) = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
    else {
        return (None, None);
    };
    let Some(decoded) = STANDARD
        .decode(encoded.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
    else {
        return (None, None);
    };
    match decoded.split_once(':') {
        Some((u, p)) => (Some(u.to_owned()), Some(p.to_owned())),
        None => (Some(decoded), None),
    }
}

fn json_response(status: u16, body: &Value, headers: &[(String, String)]) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = (
        code,
        [(
            http::header::CONTENT_TYPE,
            "application/json; charset=utf-8",
        )],
        body.to_string(),
    )
        .into_response();
    for (k, v) in headers {
        if let (Ok(k), Ok(v)) = (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            resp.headers_mut().insert(k, v);
        }
    }
    resp
}

fn rfc2822_now() -> String {
    chrono::Utc::now()
        .format("%a, %d %b %Y %H:%M:%S +0000")
        .to_string()
}

async fn handle(
    state: Shared,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (user, password) = basic_auth(&headers);
    let form: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
    let recorded = RecordedRequest {
        method: method.to_string(),
        path: uri.path().to_owned(),
        query: uri.query().map(str::to_owned),
        basic_user: user.clone(),
        basic_password: password.clone(),
        headers: headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        form: form.clone(),
        body: String::from_utf8_lossy(&body).into_owned(),
    };
    let is_media = uri.path().starts_with("/cdn/") || uri.path().contains("/Media/ME");
    let (delay, scripted, hold) = {
        let mut st = state.lock();
        st.requests.push(recorded);
        // Scripted answers are for the REST API, not for media downloads.
        let scripted = if is_media {
            None
        } else {
            st.scripted
                .iter()
                .position(|s| route_matches(s.route.as_ref(), &method, uri.path()))
                .and_then(|i| st.scripted.remove(i))
        };
        let hold = st
            .holds
            .iter()
            .position(|(r, _)| route_matches(Some(r), &method, uri.path()))
            .and_then(|i| st.holds.remove(i))
            .map(|(_, d)| d);
        (st.delay, scripted, hold)
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if let Some(s) = scripted {
        return json_response(s.status, &s.body, &s.headers);
    }
    let response = route(
        &state, &method, &uri, &headers, &body, &form, user, password,
    )
    .await;
    if let Some(hold) = hold {
        tokio::time::sleep(hold).await;
    }
    response
}

/// The normal answer to a request.
#[allow(clippy::too_many_arguments)]
async fn route(
    state: &Shared,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
    form: &[(String, String)],
    user: Option<String>,
    password: Option<String>,
) -> Response {
    let state = state.clone();
    let path = uri.path();
    if path.starts_with("/v1/Content")
        || path.starts_with("/v2/Content")
        || path.starts_with("/v2/Indicators/")
    {
        // These APIs name no account in the path: basic auth names it.
        let account = {
            let st = state.lock();
            user.filter(|u| {
                password.is_some() && st.accounts.get(u).map(String::as_str) == password.as_deref()
            })
        };
        let Some(account) = account else {
            return json_response(401, &error_json(401, 20003, "Authenticate"), &[]);
        };
        let content_type = headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        return content::handle(
            &state,
            &account,
            method.as_str(),
            path,
            uri.query(),
            content_type,
            body,
        );
    }
    if let Some(me) = path.strip_prefix("/cdn/") {
        let found = state.lock().media.get(me).cloned();
        return match found {
            Some((bytes, ct)) => ([(http::header::CONTENT_TYPE, ct)], bytes).into_response(),
            None => json_response(404, &error_json(404, 20404, "Not found"), &[]),
        };
    }
    let Some(rest) = path.strip_prefix("/2010-04-01/Accounts/") else {
        return json_response(
            404,
            &error_json(404, 20404, "The requested resource was not found"),
            &[],
        );
    };
    let segments: Vec<&str> = rest.split('/').collect();
    let sid = segments
        .first()
        .map(|s| s.trim_end_matches(".json"))
        .unwrap_or("");

    // Basic auth must name the account in the path with its token.
    let authorized = {
        let st = state.lock();
        user.as_deref() == Some(sid)
            && password.is_some()
            && st.accounts.get(sid).map(String::as_str) == password.as_deref()
    };
    if !authorized {
        return json_response(401, &error_json(401, 20003, "Authenticate"), &[]);
    }

    match (method.as_str(), segments.as_slice()) {
        ("GET", [account]) if account.ends_with(".json") => {
            let status = state.lock().account_status.clone();
            let body = json!({
                "sid": sid,
                "friendly_name": "Switchboard test account",
                "status": status,
                "type": "Full",
                "owner_account_sid": sid,
                "auth_token": "[redacted by FakeTwilio]",
                "date_created": "Thu, 24 Aug 2023 05:01:45 +0000",
                "date_updated": "Thu, 24 Aug 2023 05:01:45 +0000",
                "uri": format!("/2010-04-01/Accounts/{sid}.json"),
                "subresource_uris": {},
            });
            json_response(200, &body, &[])
        }
        ("GET", [_, "Messages", _, "Media", me]) => {
            let mut st = state.lock();
            if let Some(status) = st.media_failures.pop_front() {
                return json_response(status, &error_json(status, 20404, "scripted failure"), &[]);
            }
            if st.media.contains_key(*me) {
                (
                    StatusCode::TEMPORARY_REDIRECT,
                    [(http::header::LOCATION, format!("/cdn/{me}"))],
                )
                    .into_response()
            } else {
                json_response(
                    404,
                    &error_json(404, 20404, "The requested resource was not found"),
                    &[],
                )
            }
        }
        ("POST", [_, "Messages.json"]) => {
            let resp = create_message(&state, sid, form);
            if resp.status().is_success() {
                for (_, url) in form.iter().filter(|(k, _)| k == "MediaUrl") {
                    let state = state.clone();
                    let url = url.clone();
                    // Twilio fetches MediaUrl itself, without credentials, after accepting.
                    tokio::spawn(async move {
                        let fetched = fetch_media_url(&url).await;
                        state.lock().fetched.push(fetched);
                    });
                }
            }
            resp
        }
        ("GET", [_, "Messages", message]) if message.ends_with(".json") => {
            let msid = message.trim_end_matches(".json");
            let found = state.lock().messages.get(msid).cloned();
            match found {
                Some(mut m) => {
                    if let Some(o) = m.as_object_mut() {
                        o.remove("_seq");
                    }
                    json_response(200, &m, &[])
                }
                None => json_response(
                    404,
                    &error_json(
                        404,
                        20404,
                        &format!(
                            "The requested resource /2010-04-01/Accounts/{sid}/Messages/{msid}.json was not found"
                        ),
                    ),
                    &[],
                ),
            }
        }
        _ => json_response(
            404,
            &error_json(404, 20404, "The requested resource was not found"),
            &[],
        ),
    }
}

async fn fetch_media_url(url: &str) -> FetchedMedia {
    let failed = |status| FetchedMedia {
        url: url.to_owned(),
        status,
        content_type: None,
        bytes: Bytes::new(),
    };
    let Ok(resp) = reqwest::get(url).await else {
        return failed(0);
    };
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    match resp.bytes().await {
        Ok(bytes) => FetchedMedia {
            url: url.to_owned(),
            status,
            content_type,
            bytes,
        },
        Err(_) => failed(status),
    }
}

fn create_message(state: &Shared, account_sid: &str, form: &[(String, String)]) -> Response {
    if let Some(refused) = content::check_message_content(state, account_sid, form) {
        return refused;
    }
    let get = |k: &str| {
        form.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    };
    let Some(to) = get("To") else {
        return json_response(
            400,
            &error_json(400, 21604, "A 'To' phone number is required."),
            &[],
        );
    };
    if get("From").is_none() && get("MessagingServiceSid").is_none() {
        return json_response(
            400,
            &error_json(400, 21603, "A 'From' phone number is required."),
            &[],
        );
    }
    if get("Body").is_none() && get("MediaUrl").is_none() && get("ContentSid").is_none() {
        return json_response(
            400,
            &error_json(
                400,
                21619,
                "A text message body or media urls must be specified.",
            ),
            &[],
        );
    }
    let mut st = state.lock();
    st.counter += 1;
    let seq = st.counter;
    let sid = format!("SM{seq:032x}");
    let now = rfc2822_now();
    let num_media = form.iter().filter(|(k, _)| k == "MediaUrl").count();
    // As the API answers: through a Messaging Service no sender is picked yet (`from` is
    // null, `num_segments` "0", status `accepted`); an SMS body counts its segments; a
    // WhatsApp message is one.
    let service = get("MessagingServiceSid");
    let sms = !to.starts_with("whatsapp:");
    let num_segments = match (service, get("Body")) {
        (Some(_), _) => 0,
        (None, Some(body)) if sms => crate::segments::count(body).max(1),
        (None, _) => 1,
    };
    let status = if service.is_some() {
        "accepted"
    } else {
        "queued"
    };
    let message = json!({
        "account_sid": account_sid,
        "api_version": "2010-04-01",
        "body": get("Body").unwrap_or(""),
        "date_created": now,
        "date_sent": null,
        "date_updated": now,
        "direction": "outbound-api",
        "error_code": null,
        "error_message": null,
        "from": get("From"),
        "messaging_service_sid": get("MessagingServiceSid"),
        "num_media": num_media.to_string(),
        "num_segments": num_segments.to_string(),
        "price": null,
        "price_unit": "USD",
        "sid": sid,
        "status": status,
        "subresource_uris": {
            "media": format!("/2010-04-01/Accounts/{account_sid}/Messages/{sid}/Media.json")
        },
        "to": to,
        "uri": format!("/2010-04-01/Accounts/{account_sid}/Messages/{sid}.json"),
    });
    let mut stored = message.clone();
    stored["_seq"] = json!(seq);
    st.messages.insert(sid, stored);
    json_response(201, &message, &[])
}

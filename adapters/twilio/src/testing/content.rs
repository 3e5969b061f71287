//! FakeTwilio's Content API (protocols/twilio.md §9) and Typing Indicators resource
//! (`typing.rs` of the adapter), and the checks the Messages API makes of a message that
//! names content (`ContentSid`, `ContentVariables`, §9.4, §9.6).
//!
//! Every request body is checked the way the documents describe it, and a wrong one is
//! answered with Twilio's error body, status 400:
//! - `POST /v1/Content`: a JSON object of `friendly_name`, `language` (required), `variables`
//!   (an object of strings) and `types` (required, at least one known type); each type's
//!   required fields and only its known fields (§9.3), with WhatsApp's limits where the
//!   adapter relies on them (at most 3 quick replies of at most 20 characters; a list of 1
//!   to 10 items, each item at most 24 characters, its description at most 72). Types the
//!   adapter never creates (`twilio/catalog`, `twilio/carousel`, `twilio/flows`,
//!   `twilio/schedule`) are known but only checked to be objects. Errors use code 20001.
//! - `GET /v2/Content?ContentName=…`: `ContentName` is a regular expression at Twilio; the
//!   fake matches it as a literal substring, which is the same for names of letters, digits
//!   and `_`. Pages of [`super::FakeTwilio::set_content_page_size`] items (50 by default) with
//!   `meta.next_page_url` carrying a `PageToken`.
//! - `POST /v2/Indicators/Typing.json`: form fields `channel` (`whatsapp`) and `messageId`
//!   (`^(SM|MM)[0-9a-fA-F]{32}$`); answers `{"success": true}`.

use axum::response::Response;
use serde_json::{Map, Value, json};

use super::{Shared, error_json, json_response};

/// A content resource the fake holds.
#[derive(Clone, Debug)]
pub(super) struct StoredContent {
    /// The account it belongs to; `None`: every account has it (a seeded template).
    pub(super) owner: Option<String>,
    /// Created through `POST /v1/Content` (not seeded by the test).
    pub(super) created: bool,
    /// The resource as the API answers it.
    pub(super) resource: Value,
    /// Its WhatsApp approval as `approval_requests` shows it (twilio.md §9.5).
    pub(super) approval: Value,
}

/// The approval of content never submitted (§9.5: empty strings, `unsubmitted`).
fn unsubmitted() -> Value {
    json!({"name": "", "category": "", "content_type": "", "status": "unsubmitted",
        "rejection_reason": "", "allow_category_change": true, "flows": null})
}

impl StoredContent {
    fn visible_to(&self, account_sid: &str) -> bool {
        self.owner.as_deref().is_none_or(|o| o == account_sid)
    }

    fn sid(&self) -> &str {
        self.resource["sid"].as_str().unwrap_or("")
    }
}

/// The content resources and the paging of their lists.
#[derive(Debug)]
pub(super) struct Contents {
    pub(super) stored: Vec<StoredContent>,
    pub(super) page_size: usize,
    counter: u64,
}

impl Default for Contents {
    fn default() -> Self {
        Self {
            stored: Vec::new(),
            page_size: 50,
            counter: 0,
        }
    }
}

impl Contents {
    /// Adds a resource and returns its SID: `sid` when given, else a fresh `HX` + 32 hex.
    pub(super) fn add(
        &mut self,
        base_url: &str,
        owner: Option<&str>,
        sid: Option<&str>,
        created: bool,
        request: &Value,
    ) -> String {
        self.counter += 1;
        let sid = sid.map_or_else(
            || format!("HX{:08x}{:024x}", 0xc0de_u32, self.counter),
            str::to_owned,
        );
        let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
        let url = format!("{base_url}/v1/Content/{sid}");
        let resource = json!({
            "sid": sid,
            "account_sid": owner.unwrap_or(super::TEST_ACCOUNT_SID),
            "friendly_name": request.get("friendly_name").cloned().unwrap_or(json!("")),
            "language": request["language"],
            "variables": request.get("variables").cloned().unwrap_or(json!({})),
            "types": request["types"],
            "url": url,
            "date_created": now,
            "date_updated": now,
            "links": {
                "approval_create": format!("{url}/ApprovalRequests/whatsapp"),
                "approval_fetch": format!("{url}/ApprovalRequests"),
            },
        });
        self.stored.push(StoredContent {
            owner: owner.map(str::to_owned),
            created,
            resource,
            approval: unsubmitted(),
        });
        sid
    }

    /// The resource `sid` of `account_sid`, to change.
    pub(super) fn find_mut(&mut self, account_sid: &str, sid: &str) -> Option<&mut StoredContent> {
        self.stored
            .iter_mut()
            .find(|c| c.sid() == sid && c.visible_to(account_sid))
    }

    /// The resource `sid`, when `account_sid` has it.
    pub(super) fn find(&self, account_sid: &str, sid: &str) -> Option<&StoredContent> {
        self.stored
            .iter()
            .find(|c| c.sid() == sid && c.visible_to(account_sid))
    }
}

fn bad_request(message: &str) -> Response {
    json_response(400, &error_json(400, 20001, message), &[])
}

fn not_found(path: &str) -> Response {
    json_response(
        404,
        &error_json(
            404,
            20404,
            &format!("The requested resource {path} was not found"),
        ),
        &[],
    )
}

/// Serves the Content API and the typing resource for an authenticated `account_sid`.
pub(super) fn handle(
    state: &Shared,
    account_sid: &str,
    method: &str,
    path: &str,
    query: Option<&str>,
    content_type: Option<&str>,
    body: &[u8],
) -> Response {
    match (method, path) {
        ("POST", "/v1/Content") => create(state, account_sid, content_type, body),
        ("GET", "/v2/Content") => list(state, account_sid, query, "/v2/Content"),
        ("GET", "/v1/ContentAndApprovals") => {
            list(state, account_sid, query, "/v1/ContentAndApprovals")
        }
        ("POST", _)
            if path.starts_with("/v1/Content/") && path.ends_with("/ApprovalRequests/whatsapp") =>
        {
            let sid = &path["/v1/Content/".len()..path.len() - "/ApprovalRequests/whatsapp".len()];
            submit_approval(state, account_sid, sid, path, content_type, body)
        }
        ("GET", _) if path.starts_with("/v1/Content/") && path.ends_with("/ApprovalRequests") => {
            let sid = &path["/v1/Content/".len()..path.len() - "/ApprovalRequests".len()];
            let st = state.lock();
            match st.contents.find(account_sid, sid) {
                Some(c) => {
                    let mut whatsapp = c.approval.clone();
                    whatsapp["type"] = json!("whatsapp");
                    let body = json!({"sid": sid, "account_sid": account_sid, "whatsapp": whatsapp,
                        "url": format!("{}{path}", st.base_url)});
                    json_response(200, &body, &[])
                }
                None => not_found(path),
            }
        }
        ("GET", _) if path.starts_with("/v1/Content/") => {
            let sid = &path["/v1/Content/".len()..];
            let st = state.lock();
            match st.contents.find(account_sid, sid) {
                Some(c) => json_response(200, &c.resource, &[]),
                None => not_found(path),
            }
        }
        ("POST", "/v2/Indicators/Typing.json") => typing(content_type, body),
        _ => not_found(path),
    }
}

fn create(state: &Shared, account_sid: &str, content_type: Option<&str>, body: &[u8]) -> Response {
    if !content_type.is_some_and(|t| t.starts_with("application/json")) {
        return bad_request("The Content API takes a JSON body (Content-Type: application/json)");
    }
    let Ok(request) = serde_json::from_slice::<Value>(body) else {
        return bad_request("The request body is not JSON");
    };
    if let Err(why) = check_create(&request) {
        return bad_request(&why);
    }
    let mut st = state.lock();
    let base = st.base_url.clone();
    let sid = st
        .contents
        .add(&base, Some(account_sid), None, true, &request);
    let resource = st
        .contents
        .find(account_sid, &sid)
        .map(|c| c.resource.clone())
        .unwrap_or_default();
    json_response(201, &resource, &[])
}

/// `POST /v1/Content/{sid}/ApprovalRequests/whatsapp` with `{"name","category"}`, both
/// required (§9.5): the approval becomes `received`, answered as the API's `createApproval`.
fn submit_approval(
    state: &Shared,
    account_sid: &str,
    sid: &str,
    path: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> Response {
    if !content_type.is_some_and(|t| t.starts_with("application/json")) {
        return bad_request("The Content API takes a JSON body (Content-Type: application/json)");
    }
    let Ok(request) = serde_json::from_slice::<Value>(body) else {
        return bad_request("The request body is not JSON");
    };
    let name = request["name"].as_str().filter(|n| !n.is_empty());
    let category = request["category"].as_str().filter(|c| !c.is_empty());
    let (Some(name), Some(category)) = (name, category) else {
        return bad_request("Missing required parameter name or category in the post body");
    };
    if request
        .as_object()
        .is_some_and(|o| o.keys().any(|k| k != "name" && k != "category"))
    {
        return bad_request("Unknown parameter in the approval request");
    }
    let mut st = state.lock();
    let Some(content) = st.contents.find_mut(account_sid, sid) else {
        return not_found(path);
    };
    let content_type = content.resource["types"]
        .as_object()
        .and_then(|t| t.keys().next().cloned())
        .unwrap_or_default();
    content.approval = json!({"name": name, "category": category, "content_type": content_type,
        "status": "received", "rejection_reason": "", "allow_category_change": true, "flows": null});
    json_response(201, &content.approval, &[])
}

/// Sets the WhatsApp approval status (and rejection reason) of `sid`, as Meta's review would.
pub(super) fn set_approval(
    state: &Shared,
    sid: &str,
    status: &str,
    rejection_reason: &str,
) -> bool {
    let mut st = state.lock();
    let Some(c) = st.contents.stored.iter_mut().find(|c| c.sid() == sid) else {
        return false;
    };
    if c.approval["name"] == "" {
        c.approval["name"] = c.resource["friendly_name"].clone();
        c.approval["category"] = json!("UTILITY");
    }
    c.approval["status"] = json!(status);
    c.approval["rejection_reason"] = json!(rejection_reason);
    true
}

fn list(state: &Shared, account_sid: &str, query: Option<&str>, list_path: &str) -> Response {
    let with_approvals = list_path == "/v1/ContentAndApprovals";
    let params: Vec<(String, String)> = form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .into_owned()
        .collect();
    let param = |k: &str| {
        params
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    };
    let st = state.lock();
    let page_size = param("PageSize")
        .and_then(|s| s.parse::<usize>().ok())
        .unwrap_or(50)
        .clamp(1, 1000)
        .min(st.contents.page_size);
    let offset = match param("PageToken") {
        None => 0,
        Some(t) => match t.strip_prefix("PT").and_then(|n| n.parse::<usize>().ok()) {
            Some(n) => n,
            None => return bad_request("Invalid PageToken"),
        },
    };
    let name = param("ContentName");
    let matching: Vec<Value> = st
        .contents
        .stored
        .iter()
        .filter(|c| c.visible_to(account_sid))
        .filter(|c| {
            name.is_none_or(|n| {
                c.resource["friendly_name"]
                    .as_str()
                    .is_some_and(|f| f.contains(n))
            })
        })
        .map(|c| {
            let mut item = c.resource.clone();
            if with_approvals {
                item["approval_requests"] = c.approval.clone();
            }
            item
        })
        .collect();
    let page: Vec<Value> = matching
        .iter()
        .skip(offset)
        .take(page_size)
        .cloned()
        .collect();
    let page_number = offset / page_size;
    let page_url = |token: Option<usize>, number: usize| {
        let mut q = form_urlencoded::Serializer::new(String::new());
        if let Some(n) = name {
            q.append_pair("ContentName", n);
        }
        q.append_pair("PageSize", &page_size.to_string());
        q.append_pair("Page", &number.to_string());
        if let Some(t) = token {
            q.append_pair("PageToken", &format!("PT{t}"));
        }
        format!("{}{list_path}?{}", st.base_url, q.finish())
    };
    let next = (offset + page_size < matching.len())
        .then(|| page_url(Some(offset + page_size), page_number + 1));
    let previous = (offset > 0).then(|| {
        page_url(
            Some(offset.saturating_sub(page_size)),
            page_number.saturating_sub(1),
        )
    });
    let body = json!({
        "contents": page,
        "meta": {
            "page": page_number,
            "page_size": page_size,
            "first_page_url": page_url(None, 0),
            "previous_page_url": previous,
            "url": page_url((offset > 0).then_some(offset), page_number),
            "next_page_url": next,
            "key": "contents",
        },
    });
    json_response(200, &body, &[])
}

fn typing(content_type: Option<&str>, body: &[u8]) -> Response {
    if !content_type.is_some_and(|t| t.starts_with("application/x-www-form-urlencoded")) {
        return bad_request("The request body must be form-encoded");
    }
    let form: Vec<(String, String)> = form_urlencoded::parse(body).into_owned().collect();
    let get = |k: &str| {
        form.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    };
    if get("channel") != Some("whatsapp") {
        return bad_request("Invalid channel: channel must be whatsapp");
    }
    let message_id = get("messageId").unwrap_or("");
    let valid = message_id.len() == 34
        && (message_id.starts_with("SM") || message_id.starts_with("MM"))
        && message_id[2..].bytes().all(|b| b.is_ascii_hexdigit());
    if !valid {
        return bad_request("Invalid messageId: must match ^(SM|MM)[0-9a-fA-F]{32}$");
    }
    json_response(200, &json!({"success": true}), &[])
}

/// What the Messages API says of `ContentSid` and `ContentVariables` in a create form, or
/// `None` when they are fine (or absent).
pub(super) fn check_message_content(
    state: &Shared,
    account_sid: &str,
    form: &[(String, String)],
) -> Option<Response> {
    let get = |k: &str| {
        form.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    };
    let Some(content_sid) = get("ContentSid") else {
        return get("ContentVariables")
            .is_some()
            .then(|| bad_request("ContentVariables is only valid with a ContentSid"));
    };
    if get("Body").is_some() || get("MediaUrl").is_some() {
        return Some(bad_request(
            "A message with a ContentSid takes no Body or MediaUrl",
        ));
    }
    if state
        .lock()
        .contents
        .find(account_sid, content_sid)
        .is_none()
    {
        return Some(json_response(
            400,
            &error_json(400, 21655, "The ContentSid is Invalid"),
            &[],
        ));
    }
    let vars = get("ContentVariables")?;
    let invalid = || {
        Some(json_response(
            400,
            &error_json(400, 21656, "The ContentVariables Parameter is invalid"),
            &[],
        ))
    };
    let Ok(Value::Object(map)) = serde_json::from_str::<Value>(vars) else {
        return invalid();
    };
    if map.len() > 100 {
        return invalid();
    }
    for (key, value) in &map {
        let Some(value) = value.as_str() else {
            return invalid();
        };
        let key_ok = (1..=16).contains(&key.chars().count()) && !key.contains(' ');
        let value_ok = !value.is_empty()
            && value.chars().count() <= 1600
            && !value.contains(['\n', '\t'])
            && !value.contains("     ");
        if !key_ok || !value_ok {
            return invalid();
        }
    }
    None
}

/// What a `twilio/*` or `whatsapp/*` type may hold: its required fields and every field.
struct TypeShape {
    name: &'static str,
    required: &'static [&'static str],
    fields: &'static [&'static str],
}

/// The types of §9.3 the fake checks field by field; the rest of the known types are only
/// checked to be objects.
const SHAPES: &[TypeShape] = &[
    TypeShape {
        name: "twilio/text",
        required: &["body"],
        fields: &["body"],
    },
    TypeShape {
        name: "twilio/media",
        required: &["media"],
        fields: &["body", "media"],
    },
    TypeShape {
        name: "twilio/location",
        required: &["latitude", "longitude"],
        fields: &["latitude", "longitude", "label", "id", "address"],
    },
    TypeShape {
        name: "twilio/quick-reply",
        required: &["body", "actions"],
        fields: &["body", "actions"],
    },
    TypeShape {
        name: "twilio/call-to-action",
        required: &["body", "actions"],
        fields: &["body", "actions"],
    },
    TypeShape {
        name: "twilio/list-picker",
        required: &["body", "button", "items"],
        fields: &["body", "button", "items"],
    },
    TypeShape {
        name: "twilio/card",
        required: &["title"],
        fields: &["title", "subtitle", "media", "actions"],
    },
    TypeShape {
        name: "whatsapp/card",
        required: &["body"],
        fields: &["body", "footer", "media", "header_text", "actions"],
    },
    TypeShape {
        name: "whatsapp/authentication",
        required: &["actions"],
        fields: &[
            "actions",
            "add_security_recommendation",
            "code_expiration_minutes",
        ],
    },
    TypeShape {
        name: "whatsapp/flows",
        required: &["body", "button_text", "flow_id"],
        fields: &[
            "body",
            "button_text",
            "subtitle",
            "media_url",
            "flow_id",
            "flow_token",
            "flow_first_page_id",
            "is_flow_first_page_endpoint",
        ],
    },
];

const OTHER_TYPES: &[&str] = &[
    "twilio/catalog",
    "twilio/carousel",
    "twilio/flows",
    "twilio/schedule",
];

/// Checks a `POST /v1/Content` body (see the module documentation).
///
/// # Errors
/// What is wrong, in the words the fake answers with.
pub(super) fn check_create(request: &Value) -> Result<(), String> {
    let Some(obj) = request.as_object() else {
        return Err("The request body must be a JSON object".into());
    };
    if let Some(unknown) = obj
        .keys()
        .find(|k| !["friendly_name", "language", "variables", "types"].contains(&k.as_str()))
    {
        return Err(format!("Unknown parameter {unknown:?}"));
    }
    if obj
        .get("language")
        .and_then(Value::as_str)
        .is_none_or(|l| l.trim().is_empty())
    {
        return Err("Missing required parameter language".into());
    }
    if obj.get("friendly_name").is_some_and(|f| !f.is_string()) {
        return Err("friendly_name must be a string".into());
    }
    if let Some(vars) = obj.get("variables") {
        let strings = vars
            .as_object()
            .is_some_and(|m| m.values().all(Value::is_string));
        if !strings {
            return Err("variables must be an object of strings".into());
        }
    }
    let Some(types) = obj.get("types").and_then(Value::as_object) else {
        return Err("Missing required parameter types".into());
    };
    if types.is_empty() {
        return Err("types must name at least one content type".into());
    }
    for (name, fields) in types {
        let Some(fields) = fields.as_object() else {
            return Err(format!("types.{name} must be an object"));
        };
        match SHAPES.iter().find(|s| s.name == name) {
            Some(shape) => check_type(shape, fields)?,
            None if OTHER_TYPES.contains(&name.as_str()) => {}
            None => return Err(format!("Unknown content type {name:?}")),
        }
    }
    Ok(())
}

fn check_type(shape: &TypeShape, fields: &Map<String, Value>) -> Result<(), String> {
    let name = shape.name;
    if let Some(missing) = shape.required.iter().find(|f| !fields.contains_key(**f)) {
        return Err(format!("types.{name}.{missing} is required"));
    }
    if let Some(unknown) = fields.keys().find(|k| !shape.fields.contains(&k.as_str())) {
        return Err(format!("types.{name} has no field {unknown:?}"));
    }
    let text = |field: &str, max: usize| -> Result<(), String> {
        match fields.get(field) {
            None => Ok(()),
            Some(Value::String(s)) if !s.trim().is_empty() && s.chars().count() <= max => Ok(()),
            Some(_) => Err(format!(
                "types.{name}.{field} must be a non-empty string of at most {max} characters"
            )),
        }
    };
    let array = |field: &str, min: usize, max: usize| -> Result<&Vec<Value>, String> {
        match fields.get(field).and_then(Value::as_array) {
            Some(a) if (min..=max).contains(&a.len()) => Ok(a),
            _ => Err(format!(
                "types.{name}.{field} must be an array of {min} to {max} items"
            )),
        }
    };
    text("body", 1600)?;
    match name {
        "twilio/media" => {
            let media = array("media", 1, 10)?;
            if !media.iter().all(|m| m.as_str().is_some_and(is_url)) {
                return Err(format!("types.{name}.media must hold URLs"));
            }
        }
        "twilio/location" => {
            let coordinate = |field: &str, max: f64| {
                fields
                    .get(field)
                    .and_then(Value::as_f64)
                    .is_some_and(|v| (-max..=max).contains(&v))
            };
            if !coordinate("latitude", 90.0) || !coordinate("longitude", 180.0) {
                return Err(format!(
                    "types.{name} needs a latitude from -90 to 90 and a longitude from -180 to 180"
                ));
            }
            text("label", 1000)?;
            text("address", 1000)?;
        }
        "twilio/quick-reply" => check_actions(name, array("actions", 1, 3)?, &["QUICK_REPLY"])?,
        "twilio/call-to-action" => check_actions(
            name,
            array("actions", 1, 2)?,
            &[
                "URL",
                "PHONE_NUMBER",
                "COPY_CODE",
                "VOICE_CALL",
                "VOICE_CALL_REQUEST",
            ],
        )?,
        "twilio/list-picker" => {
            text("body", 1024)?;
            text("button", 20)?;
            for item in array("items", 1, 10)? {
                let Some(item) = item.as_object() else {
                    return Err(format!("types.{name}.items must hold objects"));
                };
                let s = |k: &str| item.get(k).and_then(Value::as_str);
                let fits = |k: &str, max: usize| {
                    s(k).is_some_and(|v| !v.is_empty() && v.chars().count() <= max)
                };
                if let Some(unknown) = item
                    .keys()
                    .find(|k| !["id", "item", "description"].contains(&k.as_str()))
                {
                    return Err(format!("types.{name}.items[] has no field {unknown:?}"));
                }
                if !fits("id", 200) || !fits("item", 24) {
                    return Err(format!(
                        "types.{name}.items[] needs an id (at most 200 characters) and an item (at most 24)"
                    ));
                }
                if item.contains_key("description") && !fits("description", 72) {
                    return Err(format!(
                        "types.{name}.items[].description has at most 72 characters"
                    ));
                }
            }
        }
        "whatsapp/card" => {
            text("body", 1024)?;
            text("footer", 60)?;
            text("header_text", 60)?;
            if fields.contains_key("header_text") && fields.contains_key("media") {
                return Err(format!("types.{name} has header_text or media, not both"));
            }
            if fields.contains_key("media") {
                let media = array("media", 1, 1)?;
                if !media.iter().all(|m| m.as_str().is_some_and(is_url)) {
                    return Err(format!("types.{name}.media must hold one URL"));
                }
            }
            if fields.contains_key("actions") {
                check_actions(
                    name,
                    array("actions", 1, 3)?,
                    &["QUICK_REPLY", "URL", "PHONE_NUMBER"],
                )?;
            }
        }
        "whatsapp/flows" => {
            text("body", 1024)?;
            text("button_text", 30)?;
            text("subtitle", 80)?;
            text("flow_id", 200)?;
            text("flow_token", 1000)?;
            text("flow_first_page_id", 200)?;
            if fields
                .get("media_url")
                .is_some_and(|m| !m.as_str().is_some_and(is_url))
            {
                return Err(format!("types.{name}.media_url must be a URL"));
            }
            if fields
                .get("is_flow_first_page_endpoint")
                .is_some_and(|v| !v.is_boolean())
            {
                return Err(format!(
                    "types.{name}.is_flow_first_page_endpoint must be a boolean"
                ));
            }
        }
        _ => {}
    }
    Ok(())
}

/// Checks actions: each of a known `type` (default `QUICK_REPLY`), a title of at most 20
/// characters, and the field its type needs.
fn check_actions(name: &str, actions: &[Value], types: &[&str]) -> Result<(), String> {
    let mut quick_replies = 0;
    for action in actions {
        let Some(action) = action.as_object() else {
            return Err(format!("types.{name}.actions must hold objects"));
        };
        if let Some(unknown) = action
            .keys()
            .find(|k| !["type", "title", "id", "url", "phone", "code"].contains(&k.as_str()))
        {
            return Err(format!("types.{name}.actions[] has no field {unknown:?}"));
        }
        let s = |k: &str| action.get(k).and_then(Value::as_str);
        let kind = s("type").unwrap_or("QUICK_REPLY");
        if !types.contains(&kind) {
            return Err(format!(
                "types.{name}.actions[].type {kind:?} is not one of {types:?}"
            ));
        }
        if !s("title").is_some_and(|t| !t.trim().is_empty() && t.chars().count() <= 20) {
            return Err(format!(
                "types.{name}.actions[].title is required, at most 20 characters"
            ));
        }
        let needs = match kind {
            "URL" => Some("url"),
            "PHONE_NUMBER" => Some("phone"),
            "COPY_CODE" => Some("code"),
            _ => None,
        };
        if let Some(field) = needs
            && s(field).is_none_or(str::is_empty)
        {
            return Err(format!(
                "types.{name}.actions[] of type {kind} needs {field}"
            ));
        }
        if kind == "URL" && !s("url").is_some_and(is_url) {
            return Err(format!("types.{name}.actions[].url must be a URL"));
        }
        if kind == "QUICK_REPLY" {
            quick_replies += 1;
            if s("id").is_some_and(|id| id.chars().count() > 256) {
                return Err(format!(
                    "types.{name}.actions[].id has at most 256 characters"
                ));
            }
        }
    }
    if quick_replies > 3 {
        return Err(format!("types.{name} has at most 3 quick replies"));
    }
    Ok(())
}

fn is_url(s: &str) -> bool {
    url::Url::parse(s).is_ok_and(|u| matches!(u.scheme(), "http" | "https"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn create(types: Value) -> Result<(), String> {
        check_create(&json!({"friendly_name": "x", "language": "en", "types": types}))
    }

    #[test]
    fn create_bodies_are_checked_against_the_types_schema() {
        assert_eq!(
            create(
                json!({"twilio/quick-reply": {"body": "b", "actions": [{"type": "QUICK_REPLY", "title": "Yes", "id": "y"}]}})
            ),
            Ok(())
        );
        assert_eq!(
            create(
                json!({"twilio/location": {"latitude": 1.5, "longitude": -2.0, "label": "Here"}})
            ),
            Ok(())
        );
        let items = |n: usize| -> Vec<Value> {
            (0..n)
                .map(|i| json!({"id": format!("i{i}"), "item": "Item"}))
                .collect()
        };
        assert_eq!(
            create(
                json!({"twilio/list-picker": {"body": "b", "button": "Open", "items": items(10)}})
            ),
            Ok(())
        );
        for (types, why) in [
            (
                json!({"twilio/buttons": {"body": "b"}}),
                "Unknown content type",
            ),
            (
                json!({"twilio/quick-reply": {"body": "b"}}),
                "actions is required",
            ),
            (
                json!({"twilio/quick-reply": {"body": "b", "actions": [{"title": "a"}, {"title": "b"}, {"title": "c"}, {"title": "d"}]}}),
                "1 to 3",
            ),
            (
                json!({"twilio/quick-reply": {"body": "b", "actions": [{"title": "x".repeat(21)}]}}),
                "at most 20",
            ),
            (
                json!({"twilio/list-picker": {"body": "b", "button": "Open", "items": items(11)}}),
                "1 to 10",
            ),
            (
                json!({"twilio/list-picker": {"body": "b", "button": "Open", "items": [{"id": "1", "item": "x".repeat(25)}]}}),
                "at most 24",
            ),
            (
                json!({"twilio/list-picker": {"body": "b", "button": "Open", "items": [{"id": "1", "item": "x", "description": "d".repeat(73)}]}}),
                "at most 72",
            ),
            (
                json!({"twilio/location": {"latitude": 91, "longitude": 0}}),
                "latitude",
            ),
            (
                json!({"twilio/call-to-action": {"body": "b", "actions": [{"type": "URL", "title": "Go"}]}}),
                "needs url",
            ),
            (
                json!({"whatsapp/card": {"body": "b", "header_text": "h", "media": ["https://x.test/a.png"]}}),
                "not both",
            ),
            (
                json!({"whatsapp/flows": {"body": "b", "button_text": "Go"}}),
                "flow_id is required",
            ),
            (
                json!({"twilio/text": {"body": "b", "colour": "red"}}),
                "no field",
            ),
            (json!({}), "at least one"),
        ] {
            let e = create(types.clone()).unwrap_err();
            assert!(e.contains(why), "{types}: {e}");
        }
        let no_language = check_create(&json!({"types": {"twilio/text": {"body": "b"}}}));
        assert!(no_language.unwrap_err().contains("language"));
        let unknown = check_create(
            &json!({"language": "en", "type": {}, "types": {"twilio/text": {"body": "b"}}}),
        );
        assert!(unknown.unwrap_err().contains("Unknown parameter"));
    }
}

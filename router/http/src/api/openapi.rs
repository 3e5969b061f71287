//! The OpenAPI 3.1 document of every route the server answers, served at `GET /openapi.json`.
//!
//! Built in Rust rather than kept as a file so the schemas sit next to the handlers; the
//! end-to-end tests request every documented operation against the real app, and check the
//! set of documented operations against the contract in api.md. What differs per channel
//! (channel ids, credential fields, signature headers, webhook answers, media limits,
//! service windows) is read from the registered adapters, never written here.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use bytes::Bytes;
use serde_json::{Value, json};
use switchboard_core::{ChannelAdapter, MediaKind};
use switchboard_router::tenancy::registry::AdapterRegistry;

use crate::AppState;

pub(crate) async fn serve(State(state): State<AppState>) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        state.openapi.clone(),
    )
}

/// The document for these channels, serialized once per app.
pub(crate) fn serialized(adapters: &AdapterRegistry) -> Bytes {
    Bytes::from(serde_json::to_vec(&document(adapters)).unwrap_or_default())
}

/// The document for these channels.
pub fn document(adapters: &AdapterRegistry) -> Value {
    build(&adapters.iter().cloned().collect::<Vec<_>>())
}

/// The registered adapters, in channel id order.
type Channels = [Arc<dyn ChannelAdapter>];

/// `` `a`: x; `b`: y `` for each channel's entry, skipping channels without one.
fn per_channel(
    channels: &Channels,
    entry: impl Fn(&dyn ChannelAdapter) -> Option<String>,
) -> String {
    channels
        .iter()
        .filter_map(|a| Some(format!("`{}`: {}", a.channel(), entry(a.as_ref())?)))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The channel ids as a JSON Schema string, enumerated when there are any.
fn channel_schema(channels: &Channels) -> Value {
    let ids: Vec<&str> = channels.iter().map(|a| a.channel().as_str()).collect();
    if ids.is_empty() {
        json!({"type": "string"})
    } else {
        json!({"type": "string", "enum": ids})
    }
}

/// The schema name of a channel's credentials object.
fn credentials_schema_name(channel: &str) -> String {
    format!("Credentials.{channel}")
}

/// A channel's credentials as a JSON Schema object, from its declared fields.
fn credentials_schema(adapter: &dyn ChannelAdapter) -> Value {
    let fields = adapter.credential_fields();
    let properties: serde_json::Map<String, Value> = fields
        .iter()
        .map(|f| {
            let mut property = json!({"type": "string", "minLength": 1, "writeOnly": true,
                "description": f.description});
            if f.secret {
                property["format"] = json!("password");
            }
            (f.name.to_owned(), property)
        })
        .collect();
    let required: Vec<&str> = fields
        .iter()
        .filter(|f| f.required)
        .map(|f| f.name)
        .collect();
    json!({
        "type": "object",
        "title": format!("{} credentials", adapter.channel()),
        "description": format!("what a `{}` account is connected with; names not listed are refused (`invalid_credentials`), and values are never returned", adapter.channel()),
        "required": required,
        "additionalProperties": false,
        "properties": properties
    })
}

fn size_text(bytes: u64) -> String {
    const KB: u64 = 1024;
    const MB: u64 = 1024 * KB;
    match bytes {
        b if b >= MB && b % MB == 0 => format!("{} MB", b / MB),
        b if b >= KB && b % KB == 0 => format!("{} KB", b / KB),
        b => format!("{b} bytes"),
    }
}

fn duration_text(d: Duration) -> String {
    let secs = d.as_secs();
    match secs {
        s if s >= 3600 && s % 3600 == 0 => format!("{} h", s / 3600),
        s if s >= 60 && s % 60 == 0 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

/// Each media kind's upload limit and types per channel that sends it.
fn media_limits_text(channels: &Channels) -> String {
    [
        MediaKind::Image,
        MediaKind::Video,
        MediaKind::Audio,
        MediaKind::Document,
        MediaKind::Sticker,
    ]
    .into_iter()
    .filter_map(|kind| {
        let limits: Vec<String> = channels
            .iter()
            .filter(|a| a.capabilities().media_kinds.contains(&kind))
            .map(|a| {
                let limit = a.media_limit(kind);
                let size = size_text(limit.max_bytes);
                if limit.mime_types.is_empty() {
                    format!("`{}` {size}", a.channel())
                } else {
                    format!("`{}` {size}: {}", a.channel(), limit.mime_types.join(", "))
                }
            })
            .collect();
        (!limits.is_empty()).then(|| format!("{} ({})", kind.as_str(), limits.join("; ")))
    })
    .collect::<Vec<_>>()
    .join("; ")
}

fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn json_content(schema: Value) -> Value {
    json!({"application/json": {"schema": schema}})
}

fn ok(description: &str, schema: Value) -> Value {
    json!({"description": description, "content": json_content(schema)})
}

fn error(description: &str) -> Value {
    json!({"description": description, "content": json_content(schema_ref("Error"))})
}

fn body(schema: &str) -> Value {
    json!({"required": true, "content": json_content(schema_ref(schema))})
}

fn path_param(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "path", "required": true, "description": description, "schema": {"type": "string"}})
}

fn page_params() -> Value {
    json!([
        {"name": "limit", "in": "query", "required": false, "description": "rows per page, 1 to 200",
         "schema": {"type": "integer", "minimum": 1, "maximum": 200, "default": 50}},
        {"name": "cursor", "in": "query", "required": false,
         "description": "the next_cursor of the previous page", "schema": {"type": "string"}}
    ])
}

/// Errors every authenticated operation can answer, merged into its responses.
fn with_auth_errors(mut responses: Value) -> Value {
    if let Some(map) = responses.as_object_mut() {
        map.insert(
            "401".into(),
            error("missing or invalid API key (`unauthorized`)"),
        );
        map.insert(
            "503".into(),
            error("the database is unavailable (`database_unavailable`), or the server is at its connection limit (`too_many_connections`)"),
        );
        map.insert(
            "408".into(),
            error("the request was not completed in time (`request_timeout`)"),
        );
        map.insert("414".into(), error("the URI is too long (`uri_too_long`)"));
    }
    responses
}

fn operation(id: &str, tag: &str, summary: &str, responses: Value) -> Value {
    json!({"operationId": id, "tags": [tag], "summary": summary, "responses": with_auth_errors(responses)})
}

fn paths(channels: &Channels) -> Value {
    let admin = || error("the key is not an admin key (`forbidden`)");
    let invalid = |codes: &str| error(&format!("invalid request ({codes})"));
    let mut connect = operation(
        "connectAccount",
        "accounts",
        "Connect a provider account (admin key); credentials are validated per channel and never echoed",
        json!({
            "201": ok("the connected account", schema_ref("Account")),
            "400": invalid("`invalid_json`, `unknown_channel`, `invalid_address`, `invalid_credentials` (a name the channel does not declare, a required one missing, or a value it refuses), `invalid_rate`"),
            "403": admin(),
            "409": error("the number is already connected on this channel (`account_exists`)")
        }),
    );
    connect["requestBody"] = body("AccountCreate");
    let mut create_key = operation(
        "createApiKey",
        "keys",
        "Create an API key (admin key); the key is shown once",
        json!({
            "201": ok("the new key", schema_ref("NewApiKey")),
            "400": invalid("`invalid_json`, `invalid_role`, `invalid_name`"),
            "403": admin()
        }),
    );
    create_key["requestBody"] = body("ApiKeyCreate");
    let mut set_notifications = operation(
        "setNotifications",
        "notifications",
        "Send signed event notifications to this URL (admin key); answers the signing secret once",
        json!({
            "200": ok("the URL and its signing secret", json!({
                "type": "object",
                "required": ["url", "secret"],
                "properties": {"url": {"type": "string"}, "secret": {"type": "string"}}
            })),
            "400": invalid("`invalid_json`, `invalid_notify_url`"),
            "403": admin()
        }),
    );
    set_notifications["requestBody"] = json!({
        "required": true,
        "content": {"application/json": {"schema": {
            "type": "object", "required": ["url"], "additionalProperties": false,
            "properties": {"url": {"type": "string", "format": "uri"}}
        }}}
    });
    let clear_notifications = operation(
        "clearNotifications",
        "notifications",
        "Stop sending event notifications (admin key)",
        json!({"204": {"description": "notifications are off"}, "403": admin()}),
    );
    let mut send = operation(
        "sendMessage",
        "messages",
        "Send a message; it is queued and delivered by the delivery engine",
        json!({
            "202": ok("accepted for delivery", schema_ref("SendAccepted")),
            "400": invalid("`invalid_json`, `invalid_recipient`, `empty_message`, `empty_text`, `text_too_long`, `conflicting_content` (more than one kind of content), `invalid_interactive` (over WhatsApp's limits: 1–3 buttons of at most 20 characters, at most 10 list rows…), `invalid_contacts`, `invalid_template`, `invalid_media_kind`, `no_sender`, `sender_ambiguous`, `idempotency_key_mismatch`, `message_not_sent`, and for `fallback`: `unknown_channel`, `invalid_from`, `invalid_fallback`…"),
            "404": error("`to` (a contact id), `reply_to` or `reaction.message_id` names nothing of this tenant (`not_found`)"),
            "409": error("the idempotency key was first used with another request (`idempotency_key_reused`); the same request again answers the first message"),
            "413": error("the body is over 1 MiB (`body_too_large`)"),
            "422": error(&format!("free-form message outside the channel's customer-service window (`outside_service_window`; {}) or the contact opted out (`opted_out`); content the channel (or a `fallback` channel, without a `text` alternative) cannot carry (`unsupported_content`, naming the channel and the part; {}); a template the sending account's synced catalog does not have in that language (`template_not_found`), has but not approved (`template_not_approved`), or whose variables or media header the send does not match (`template_variables_mismatch`) — an account whose catalog was never synced sends unchecked, noted `template_not_checked` in the message's status history", service_windows_text(channels), carried_text(channels)))
        }),
    );
    send["requestBody"] = body("SendRequest");
    send["parameters"] = json!([{
        "name": "Idempotency-Key", "in": "header", "required": false,
        "description": "same as the body's idempotency_key (they must agree when both are given)",
        "schema": {"type": "string", "maxLength": 200}
    }]);

    let mut read = operation(
        "markMessageRead",
        "messages",
        "Mark an inbound message (and those before it) read at the provider; with `typing`, also show a typing indicator",
        json!({
            "204": {"description": "the provider took the read receipt"},
            "400": invalid("`invalid_json`, `not_inbound` (a message the business sent)"),
            "404": error("no such message for this tenant (`not_found`)"),
            "409": error("the account the message came to is disconnected (`account_disconnected`)"),
            "422": error(&format!("the channel has no read receipts or no typing indicator (`unsupported_content`; {})", per_channel(channels, |a| {
                let c = a.capabilities();
                Some(match (c.read_receipts, c.typing_indicator) {
                    (true, true) => "read and typing".to_owned(),
                    (true, false) => "read only".to_owned(),
                    (false, true) => "only with typing".to_owned(),
                    (false, false) => "neither".to_owned(),
                })
            }))),
            "502": error("the provider refused or could not be reached (`provider_error`, or `provider_auth_failed` when it refused the credentials)")
        }),
    );
    read["requestBody"] = json!({"required": false, "content": {"application/json": {"schema": {
        "type": "object", "additionalProperties": false, "properties": {
            "typing": {"type": "boolean", "default": false, "description": "also show a typing indicator (dismissed by the reply or after about 25 s)"}}}}}});

    let mut paths = json!({
        "/v1/accounts": {
            "post": connect,
            "get": operation("listAccounts", "accounts", "The tenant's accounts, active and disconnected (admin key)", json!({
                "200": ok("the accounts (one page)", json!({"type": "object", "required": ["data", "next_cursor"],
                    "properties": {"data": {"type": "array", "items": schema_ref("Account")}, "next_cursor": {"type": "null"}}})),
                "403": admin()
            }))
        },
        "/v1/accounts/{id}": {
            "delete": operation("disconnectAccount", "accounts", "Disconnect an account (soft: its history stays; admin key)", json!({
                "200": ok("the disconnected account", schema_ref("Account")),
                "403": admin(),
                "404": error("no such account for this tenant (`not_found`)")
            }))
        },
        "/v1/accounts/{id}/verify": {
            "post": operation("verifyAccount", "accounts", "Check an account's credentials against its provider (admin key)", json!({
                "200": ok("the health report", schema_ref("Verification")),
                "403": admin(),
                "404": error("no such account for this tenant (`not_found`)")
            }))
        },
        "/v1/accounts/{id}/templates/sync": {
            "post": operation("syncTemplates", "templates", "Fetch the account's templates from its provider now, in the background (also done on connect, periodically and on the provider's template webhooks; admin key)", json!({
                "202": ok("the sync started", json!({"type": "object", "required": ["account_id", "status"],
                    "properties": {"account_id": {"type": "string"}, "status": {"type": "string", "enum": ["syncing"]}}})),
                "403": admin(),
                "404": error("no such account for this tenant (`not_found`)")
            }))
        },
        "/v1/templates": {
            "get": operation("listTemplates", "templates", "The tenant's templates from every connected account's synced catalog", json!({
                "200": ok("the templates (one page)", json!({"type": "object", "required": ["data", "next_cursor"],
                    "properties": {"data": {"type": "array", "items": schema_ref("Template")}, "next_cursor": {"type": "null"}}})),
                "400": invalid("`invalid_query` (an unknown parameter)")
            })),
            "post": {
                "operationId": "submitTemplate", "tags": ["templates"],
                "summary": "Submit a new template for approval to the account's provider (Meta: created on the WhatsApp Business Account; Twilio: a Content resource and its WhatsApp approval request; admin key). Tracked to approved or rejected by Meta's webhook or the periodic sync",
                "requestBody": body("TemplateSubmission"),
                "responses": with_auth_errors(json!({
                    "201": ok("the template, its status as the provider answered", schema_ref("Template")),
                    "400": invalid("`invalid_json`, `invalid_template` (a name not of lower-case letters, digits and _, an unknown category, placeholders with gaps or mixed, a placeholder without an example, a button missing what it needs, or what the channel cannot express)"),
                    "403": admin(),
                    "404": error("no such account for this tenant (`not_found`)"),
                    "422": error("the channel has no templates (`unsupported_content`) or the provider refused the template (`template_refused`)")
                }))
            }
        },
        "/v1/keys": {
            "post": create_key,
            "get": operation("listApiKeys", "keys", "The tenant's API keys, revoked ones included; never their secrets (admin key)", json!({
                "200": ok("the keys (one page)", json!({"type": "object", "required": ["data", "next_cursor"],
                    "properties": {"data": {"type": "array", "items": schema_ref("ApiKey")}, "next_cursor": {"type": "null"}}})),
                "403": admin()
            }))
        },
        "/v1/keys/{id}": {
            "delete": operation("revokeApiKey", "keys", "Revoke an API key: requests with it answer 401 from now on (admin key)", json!({
                "200": ok("the revoked key", schema_ref("ApiKey")),
                "403": admin(),
                "404": error("no such key for this tenant (`not_found`)")
            }))
        },
        "/v1/notifications": {"put": set_notifications, "delete": clear_notifications},
        "/v1/messages": {"post": send},
        "/v1/messages/{id}/read": {"post": read},
        "/v1/messages/{id}": {
            "get": operation("getMessage", "messages", "A message with its status history and delivery attempts", json!({
                "200": ok("the message", schema_ref("Message")),
                "404": error("no such message for this tenant (`not_found`)")
            }))
        },
        "/v1/conversations": {
            "get": operation("listConversations", "conversations", "Conversations, most recent activity first", json!({
                "200": ok("one page", schema_ref("ConversationPage")),
                "400": invalid("`invalid_limit`, `invalid_cursor`, `invalid_query`")
            }))
        },
        "/v1/conversations/{id}/messages": {
            "get": operation("listConversationMessages", "conversations", "A conversation's messages, oldest first", json!({
                "200": ok("one page", schema_ref("MessagePage")),
                "400": invalid("`invalid_limit`, `invalid_cursor`, `invalid_query`"),
                "404": error("no such conversation for this tenant (`not_found`)")
            }))
        },
        "/v1/contacts": {
            "get": operation("findContact", "contacts", "Look a contact up by any spelling of its number (or its BSUID)", json!({
                "200": ok("the contact", schema_ref("Contact")),
                "400": invalid("`missing_phone`, `invalid_phone`"),
                "404": error("no such contact for this tenant (`not_found`)")
            }))
        },
        "/v1/usage": {
            "get": operation("getUsage", "usage", "Messages and, where providers report prices, their cost per currency, summed per channel, account, pricing category or day", json!({
                "200": ok("the sums, ordered by key", json!({"type": "object", "required": ["data"], "properties": {
                    "data": {"type": "array", "items": schema_ref("Usage")}}})),
                "400": invalid("`invalid_range`, `invalid_group_by`, `invalid_query`")
            }))
        },
    });
    for (path, op, name, description) in [
        ("/v1/accounts/{id}", "delete", "id", "account id"),
        ("/v1/accounts/{id}/verify", "post", "id", "account id"),
        (
            "/v1/accounts/{id}/templates/sync",
            "post",
            "id",
            "account id",
        ),
        (
            "/v1/keys/{id}",
            "delete",
            "id",
            "API key id (`key_…`), not the key",
        ),
        ("/v1/messages/{id}", "get", "id", "message id"),
        (
            "/v1/messages/{id}/read",
            "post",
            "id",
            "id of an inbound message",
        ),
        (
            "/v1/conversations/{id}/messages",
            "get",
            "id",
            "conversation id",
        ),
    ] {
        paths[path][op]["parameters"] = json!([path_param(name, description)]);
    }
    for path in ["/v1/conversations", "/v1/conversations/{id}/messages"] {
        let params = paths[path]["get"]["parameters"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        paths[path]["get"]["parameters"] = Value::Array(
            params
                .into_iter()
                .chain(page_params().as_array().cloned().unwrap_or_default())
                .collect(),
        );
    }
    paths["/v1/usage"]["get"]["parameters"] = json!([
        {"name": "from", "in": "query", "required": false, "schema": {"type": "string"},
         "description": "RFC 3339 time or date (UTC), inclusive; default 30 days before `to`"},
        {"name": "to", "in": "query", "required": false, "schema": {"type": "string"},
         "description": "RFC 3339 time (exclusive) or date (its whole day included); default now"},
        {"name": "group_by", "in": "query", "required": false,
         "schema": {"type": "string", "enum": ["channel", "account", "category", "day"], "default": "channel"}}
    ]);
    paths["/v1/templates"]["get"]["parameters"] = json!([
        {"name": "account_id", "in": "query", "required": false, "description": "only this account's", "schema": {"type": "string"}},
        {"name": "status", "in": "query", "required": false, "description": "only this status (`approved`, `pending`, `rejected`, `paused`, `disabled`, Twilio's `unsubmitted` and `received`…), any case", "schema": {"type": "string"}},
        {"name": "name", "in": "query", "required": false, "description": "only this name (Twilio: the Content SID)", "schema": {"type": "string"}}
    ]);
    paths["/v1/contacts"]["get"]["parameters"] = json!([{
        "name": "phone", "in": "query", "required": true,
        "description": "a number in any spelling (`+31 6 1234 5678`, `whatsapp:+31612345678`, `0031612345678`, `31612345678`) or a BSUID",
        "schema": {"type": "string"}
    }]);
    let mut upload = operation(
        "uploadMedia",
        "media",
        "Upload a file to send later by `media_id` (raw body; Content-Type is the file's MIME type), within the largest limit of the channels that send its kind",
        json!({
            "201": ok("the stored file", schema_ref("Media")),
            "400": invalid("`invalid_media_kind`, `empty_media`, `invalid_query`"),
            "413": error("larger than the kind's limit (`media_too_large`)"),
            "415": error("a type no enabled channel sends for this kind (`unsupported_media_type`)")
        }),
    );
    upload["description"] = json!(format!(
        "Limits and types per kind and channel: {}.",
        media_limits_text(channels)
    ));
    upload["parameters"] = json!([
        {"name": "filename", "in": "query", "required": false, "description": "the file's name (documents show it)", "schema": {"type": "string"}},
        {"name": "kind", "in": "query", "required": false, "description": "image, video, audio, document or sticker; default from the MIME type", "schema": {"type": "string"}}
    ]);
    upload["requestBody"] = json!({"required": true, "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}}});
    paths["/v1/media"] = json!({"post": upload});
    let binary = json!({"description": "the bytes, with the stored Content-Type", "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}}});
    let mut get_media = operation(
        "getMedia",
        "media",
        "The bytes of a stored media item (inbound or uploaded) of this tenant",
        json!({
            "200": binary.clone(),
            "404": error("no such media for this tenant (`not_found`)"),
            "409": error("still being fetched, or the fetch failed (`media_not_stored`, with the reason)")
        }),
    );
    get_media["parameters"] = json!([path_param("id", "media id (`med_…`)")]);
    paths["/v1/media/{id}"] = json!({"get": get_media});
    paths["/media/{id}"] = json!({"get": {
        "operationId": "getSignedMedia",
        "tags": ["media"],
        "summary": "A media item behind a signed, expiring URL (what channels that fetch outbound media by link download); no API key",
        "security": [],
        "parameters": [
            path_param("id", "media id (`med_…`)"),
            {"name": "expires", "in": "query", "required": true, "description": "Unix seconds", "schema": {"type": "integer"}},
            {"name": "sig", "in": "query", "required": true, "description": "HMAC-SHA256 signature (hex)", "schema": {"type": "string"}}
        ],
        "responses": {
            "200": binary,
            "404": error("unknown id, bad or expired signature (`not_found`)")
        }
    }});
    for (path, item) in unauthenticated_paths(channels) {
        paths[path] = item;
    }
    paths
}

/// What each channel carries beyond text and media.
fn carried_text(channels: &Channels) -> String {
    per_channel(channels, |a| {
        let c = a.capabilities();
        let mut kinds = Vec::new();
        for (carried, kind) in [
            (c.templates, "templates"),
            (
                c.template_components,
                "template header and button parameters",
            ),
            (!c.interactive.is_empty(), "interactive"),
            (c.contacts, "contacts"),
            (c.locations, "locations"),
            (c.reactions, "reactions"),
            (c.reply_context, "reply_to"),
            (c.send_to_bsuid, "BSUID recipients"),
        ] {
            if carried {
                kinds.push(kind);
            }
        }
        Some(if kinds.is_empty() {
            "text and media only".to_owned()
        } else {
            kinds.join(", ")
        })
    })
}

/// The interactive types each channel carries.
fn carried_interactive_text(channels: &Channels) -> String {
    per_channel(channels, |a| {
        let kinds = a.capabilities().interactive;
        Some(if kinds.is_empty() {
            "none".to_owned()
        } else {
            kinds
                .iter()
                .map(|k| k.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        })
    })
}

/// `` `a`: 24 h; `b`: none `` for every channel.
fn service_windows_text(channels: &Channels) -> String {
    per_channel(channels, |a| {
        Some(
            a.capabilities()
                .service_window
                .map_or_else(|| "none".to_owned(), duration_text),
        )
    })
}

/// Provider webhooks (signed, no API key), monitors, and this document.
fn unauthenticated_paths(channels: &Channels) -> Vec<(&'static str, Value)> {
    let no_auth = json!([]);
    let mut channel = path_param("channel", "the channel's id");
    channel["schema"] = channel_schema(channels);
    let replies = per_channel(channels, |a| {
        Some(a.webhook_reply().content_type.to_owned())
    });
    let signatures = per_channel(channels, |a| {
        let headers = a.sensitive_headers();
        (!headers.is_empty()).then(|| headers.join(", "))
    });
    let webhook_responses = json!({
        "200": {"description": format!("stored (or a duplicate); the body is what the provider expects ({replies}). Notifications about a provider account as a whole (template, quality and account updates, and fields a provider adds later) are verified with the secrets of the channel's connected accounts and stored for the accounts they concern; messages and statuses of group chats are stored the same way, never filed into a participant's 1:1 conversation nor opening its service window")},
        "400": error("not the provider's format (`malformed_webhook`)"),
        "403": error("missing or bad signature (`bad_signature`); nothing stored"),
        "404": error("no connected account owns the number (for a notification about a provider account as a whole: the channel has no connected account), or unknown channel"),
        "413": {"description": "body over 1 MiB"},
        "503": error("the database is unavailable; the provider should retry")
    });
    let raw_body = json!({"required": true, "content": {
        "application/x-www-form-urlencoded": {"schema": {"type": "object", "additionalProperties": {"type": "string"}}},
        "application/json": {"schema": {"type": "object"}}
    }});
    vec![
        (
            "/webhooks/{channel}",
            json!({
                "parameters": [channel.clone()],
                "post": {"operationId": "receiveWebhook", "tags": ["webhooks"], "security": no_auth,
                    "summary": format!("Inbound messages and status callbacks from a provider, verified by its signature header ({signatures})"),
                    "requestBody": raw_body, "responses": webhook_responses},
                "get": {"operationId": "webhookHandshake", "tags": ["webhooks"], "security": no_auth,
                    "summary": "Subscription handshake, on channels whose provider confirms the webhook URL with a GET: a connected account's verify token in the query, the challenge answered",
                    "responses": {
                        "200": {"description": "the challenge, as text/plain", "content": {"text/plain": {"schema": {"type": "string"}}}},
                        "403": {"description": "the verify token matches no connected account"},
                        "405": {"description": "the channel has no handshake"}
                    }}
            }),
        ),
        (
            "/webhooks/{channel}/{rest}",
            json!({
                "parameters": [channel, path_param("rest", "any sub-path, e.g. `status/{message_id}`: status callbacks carrying Switchboard's message id (may contain `/`)")],
                "post": {"operationId": "receiveWebhookSubPath", "tags": ["webhooks"], "security": no_auth,
                    "summary": "Webhooks on a sub-path (status callbacks naming their message); handled like POST /webhooks/{channel}",
                    "requestBody": raw_body, "responses": webhook_responses}
            }),
        ),
        (
            "/health",
            json!({"get": {"operationId": "health", "tags": ["monitors"], "security": no_auth,
            "summary": "Liveness and database reachability",
            "responses": {
                "200": ok("up", json!({"type": "object", "required": ["status"], "properties": {"status": {"const": "ok"}}})),
                "503": {"description": "the database cannot be reached"}
            }}}),
        ),
        (
            "/health/channels",
            json!({"get": {"operationId": "channelHealth", "tags": ["monitors"], "security": no_auth,
            "summary": "Every active account checked against its provider (cached briefly)",
            "responses": {
                "200": ok("all up", schema_ref("ChannelHealth")),
                "503": ok("some account degraded or down", schema_ref("ChannelHealth"))
            }}}),
        ),
        (
            "/metrics",
            json!({"get": {"operationId": "metrics", "tags": ["monitors"], "security": no_auth,
            "summary": "Prometheus metrics",
            "responses": {
                "200": {"description": "Prometheus text format", "content": {"text/plain": {"schema": {"type": "string"}}}},
                "404": {"description": "metrics are not enabled in this process"}
            }}}),
        ),
        (
            "/openapi.json",
            json!({"get": {"operationId": "openapi", "tags": ["meta"], "security": no_auth,
            "summary": "This document",
            "responses": {"200": ok("the OpenAPI document", json!({"type": "object"}))}}}),
        ),
    ]
}

fn nullable(ty: &str) -> Value {
    json!({"type": [ty, "null"]})
}

fn schemas(channels: &Channels) -> Value {
    let time = json!({"type": "string", "format": "date-time"});
    let nullable_time = json!({"type": ["string", "null"], "format": "date-time"});
    let media_kind =
        json!({"type": "string", "enum": ["image", "video", "audio", "document", "sticker"]});
    let mut map = serde_json::Map::new();
    map.insert("Error".into(), json!({"type": "object", "required": ["error"], "properties": {"error": {
            "type": "object", "required": ["code", "message"],
            "properties": {"code": {"type": "string", "description": "stable snake_case code"}, "message": {"type": "string"}}}}}));
    let credential_names = per_channel(channels, |a| {
        Some(
            a.credential_fields()
                .iter()
                .map(|f| f.name)
                .collect::<Vec<_>>()
                .join(", "),
        )
    });
    let mut account_create = json!({"type": "object", "required": ["channel", "address", "credentials"], "additionalProperties": false, "properties": {
            "channel": channel_schema(channels),
            "address": {"type": "string", "description": "the business number, any spelling"},
            "credentials": {"type": "object", "additionalProperties": {"type": "string"},
                "description": format!("the channel's credentials ({credential_names})")},
            "rate_per_second": {"type": "integer", "minimum": 1, "maximum": 10000}}});
    // One variant per channel: its id, and its credentials' own schema.
    if !channels.is_empty() {
        account_create["oneOf"] = channels
            .iter()
            .map(|a| {
                json!({"properties": {
                    "channel": {"const": a.channel().as_str()},
                    "credentials": schema_ref(&credentials_schema_name(a.channel().as_str()))
                }})
            })
            .collect();
    }
    map.insert("AccountCreate".into(), account_create);
    for adapter in channels {
        map.insert(
            credentials_schema_name(adapter.channel().as_str()),
            credentials_schema(adapter.as_ref()),
        );
    }
    map.insert("Account".into(), json!({"type": "object", "required": ["id", "channel", "address", "active", "credential_names", "created_at", "quality", "messaging_limit", "restrictions", "updated_at"], "properties": {
            "id": {"type": "string"}, "channel": {"type": "string"}, "address": {"type": "string", "description": "E.164"},
            "active": {"type": "boolean"}, "rate_per_second": nullable("integer"),
            "credential_names": {"type": "array", "items": {"type": "string"}, "description": "names only; values are never returned"},
            "created_at": time, "disconnected_at": nullable_time,
            "quality": {"type": "string", "enum": ["green", "yellow", "red", "unknown"], "description": "the sender's quality rating as the provider reports it"},
            "messaging_limit": {"type": ["string", "null"], "description": "the provider's messaging limit tier (Meta: TIER_250 … TIER_UNLIMITED)"},
            "restrictions": {"type": "array", "description": "restrictions and bans the provider reports", "items": {"type": "object", "required": ["type", "source"], "properties": {
                "type": {"type": "string", "description": "e.g. RESTRICTED_BIZ_INITIATED_MESSAGING, DISABLED, SCHEDULED_FOR_DISABLE"},
                "until": {"type": "string", "description": "when it ends or takes effect, as the provider wrote it"},
                "source": {"type": "string", "enum": ["ban", "restriction", "alert"], "description": "what reported it"}}}},
            "updated_at": {"type": ["string", "null"], "format": "date-time", "description": "when the provider last reported a change"}}}));
    map.insert("Usage".into(), json!({"type": "object", "required": ["key", "inbound", "outbound", "cost"], "properties": {
            "key": {"type": ["string", "null"], "description": "channel, account id, pricing category (null: none reported) or day (YYYY-MM-DD, UTC)"},
            "inbound": {"type": "integer"}, "outbound": {"type": "integer"},
            "cost": {"type": "array", "items": {"type": "object", "required": ["currency", "amount"], "properties": {
                "currency": {"type": "string", "description": "ISO 4217"},
                "amount": {"type": "string", "description": "exact decimal, e.g. \"0.2250\" (Twilio's negative prices count as their magnitude)"}}}}}}));
    map.insert("Template".into(), json!({"type": "object",
        "required": ["id", "account_id", "channel", "provider_id", "name", "language", "category", "status", "quality", "rejection_reason", "components", "variables", "updated_at", "synced_at"],
        "properties": {
            "id": {"type": "string"}, "account_id": {"type": "string"}, "channel": {"type": "string"},
            "provider_id": {"type": "string", "description": "Meta's template id; Twilio's Content SID"},
            "name": {"type": "string", "description": "what a send names (Twilio: the Content SID)"},
            "language": {"type": "string"},
            "category": nullable("string"), "status": {"type": "string", "description": "the provider's status, lower case"},
            "quality": nullable("string"), "rejection_reason": nullable("string"),
            "components": {"description": "the provider's components (Meta) or content types (Twilio), as it lists them"},
            "variables": {"type": "array", "items": {"type": "object", "required": ["key", "example"],
                "properties": {"key": {"type": "string"}, "example": nullable("string")}}},
            "updated_at": time.clone(), "synced_at": time.clone()}}));
    map.insert("TemplateSubmission".into(), json!({"type": "object",
        "required": ["account_id", "name", "language", "category", "body"], "additionalProperties": false,
        "properties": {
            "account_id": {"type": "string"},
            "name": {"type": "string", "pattern": "^[a-z0-9_]{1,512}$"},
            "language": {"type": "string", "description": "e.g. `en_US`"},
            "category": {"type": "string", "description": "`marketing`, `utility` or `authentication`, any case"},
            "body": {"type": "string", "description": "`{{1}}`, `{{2}}`… or `{{name}}` placeholders, at most 1024 characters"},
            "header": {"type": "object", "required": ["type", "text"], "additionalProperties": false,
                "properties": {"type": {"type": "string", "enum": ["text"]}, "text": {"type": "string", "maxLength": 60}}},
            "footer": {"type": "string", "maxLength": 60},
            "buttons": {"type": "array", "maxItems": 10, "items": {"type": "object", "required": ["type"], "additionalProperties": false,
                "properties": {"type": {"type": "string", "enum": ["quick_reply", "url", "phone_number", "copy_code"]},
                    "text": {"type": "string"}, "url": {"type": "string"}, "phone_number": {"type": "string"},
                    "example": {"type": "string", "description": "`copy_code`: the sample code"}}}},
            "examples": {"type": "object", "additionalProperties": {"type": "string"}, "description": "a sample for each placeholder, by key"}}}));
    map.insert("Verification".into(), json!({"type": "object", "required": ["account_id", "status", "latency_ms", "checked_at"], "properties": {
            "account_id": {"type": "string"}, "status": {"type": "string", "enum": ["up", "degraded", "down"]},
            "latency_ms": {"type": "integer"}, "checked_at": time, "detail": nullable("string")}}));
    map.insert("ChannelHealth".into(), json!({"type": "object", "required": ["status", "accounts"], "properties": {
            "status": {"type": "string", "enum": ["up", "degraded", "down"]},
            "accounts": {"type": "array", "items": {"type": "object", "properties": {
                "account_id": {"type": "string"}, "channel": {"type": "string"}, "address": {"type": "string"},
                "status": {"type": "string", "enum": ["up", "degraded", "down"]}, "latency_ms": {"type": "integer"},
                "checked_at": time, "detail": nullable("string")}}}}}));
    map.insert(
        "ApiKeyCreate".into(),
        json!({"type": "object", "additionalProperties": false, "properties": {
            "role": {"type": "string", "enum": ["agent", "admin"], "default": "agent",
                "description": "agent: send and read; admin: also accounts and keys"},
            "name": {"type": "string", "maxLength": 200}}}),
    );
    map.insert(
        "NewApiKey".into(),
        json!({"type": "object", "required": ["id", "tenant_id", "role", "key"], "properties": {
            "id": {"type": "string"}, "tenant_id": {"type": "string"},
            "role": {"type": "string", "enum": ["agent", "admin"]},
            "key": {"type": "string", "description": "shown only here; stored hashed"}}}),
    );
    map.insert(
        "ApiKey".into(),
        json!({"type": "object", "required": ["id", "role", "prefix", "created_at", "revoked_at"], "properties": {
            "id": {"type": "string"}, "role": {"type": "string", "enum": ["agent", "admin"]},
            "name": nullable("string"),
            "prefix": {"type": "string", "description": "the key's first characters, to tell keys apart"},
            "created_at": time, "revoked_at": nullable_time}}),
    );
    map.insert("SendRequest".into(), json!({"type": "object", "required": ["to"], "additionalProperties": false,
        "description": "exactly one kind of content: `text` (with or without `media`), `location`, `contacts`, `reaction`, `interactive` or `template`; when `fallback` is given, `text` beside another kind is only the plain alternative for the fallback channels",
        "properties": {
            "to": {"type": "string", "description": "a number in any spelling, a WhatsApp business-scoped user id (BSUID), or a contact id (`ctc_…`); a contact known by number and BSUID is sent to by the number"},
            "text": {"type": "string", "pattern": "\\S", "description": "not empty nor only whitespace (`empty_text`)"},
            "channel": {"type": "string", "description": "default: the channel the contact last wrote to"},
            "from": {"type": "string", "description": "a connected address; default: the one the contact last wrote to"},
            "media": {"type": "array", "items": {"type": "object", "additionalProperties": false,
                "oneOf": [{"required": ["url"]}, {"required": ["media_id"]}], "properties": {
                "url": {"type": "string", "format": "uri"},
                "media_id": {"type": "string", "description": "an upload of this tenant (`POST /v1/media`), instead of `url`; its kind and type come from the upload"},
                "kind": {"allOf": [media_kind], "description": "default: from the URL's extension, else image"},
                "caption": {"type": "string"}, "filename": {"type": "string"}, "mime_type": {"type": "string"}}}},
            "template": {"type": "object", "required": ["name"], "additionalProperties": false, "properties": {
                "name": {"type": "string", "description": "the template's id at the channel's provider (its name, or its content id where the provider names templates by id)"},
                "language": {"type": "string"},
                "variables": {"type": "object", "additionalProperties": {"type": "string"},
                    "description": "keys are positions (`\"1\"`) or names (`\"first_name\"`), as the template defines them"},
                "header": {"allOf": [schema_ref("Header")], "description": "the header's parameter: text, media or a location"},
                "buttons": {"type": "array", "maxItems": 10, "items": {"type": "object", "required": ["index", "type"], "additionalProperties": false,
                    "oneOf": [{"properties": {"type": {"const": "quick_reply"}}, "required": ["payload"]},
                              {"properties": {"type": {"enum": ["url", "copy_code"]}}, "required": ["text"]}],
                    "properties": {
                        "index": {"type": "integer", "minimum": 0, "maximum": 9, "description": "the button's position in the template"},
                        "type": {"type": "string", "enum": ["quick_reply", "url", "copy_code"]},
                        "payload": {"type": "string", "description": "quick_reply: comes back with the person's tap"},
                        "text": {"type": "string", "description": "url: the suffix of the template's URL; copy_code: the code"}}}}}},
            "location": {"type": "object", "required": ["latitude", "longitude"], "additionalProperties": false, "properties": {
                "latitude": {"type": "number"}, "longitude": {"type": "number"},
                "name": {"type": "string"}, "address": {"type": "string"}}},
            "contacts": {"type": "array", "minItems": 1, "maxItems": 257, "items": schema_ref("ContactCard")},
            "interactive": schema_ref("Interactive"),
            "reaction": {"type": "object", "required": ["message_id"], "additionalProperties": false, "properties": {
                "message_id": {"type": "string", "description": "the id of the message reacted to"},
                "emoji": {"type": "string", "description": "absent or empty removes the reaction"}}},
            "reply_to": {"type": "string", "description": "a message id; the reply quotes it where the channel carries a reply's context (else `422 unsupported_content`)"},
            "idempotency_key": {"type": "string", "minLength": 1, "maxLength": 200},
            "fallback": {"type": "array", "maxItems": 8, "description": "channels to send on next, in order, when the recipient cannot be reached on the current one (the channel's error says so at send time or on a `failed`/`undelivered` status within the fallback window), or when the first channel's window is closed at send time; the message keeps its id and its `channel` becomes the one that sends it. Beside a `template`, `location`, `contacts`, `interactive` or `reaction`, `text` is the plain alternative for fallback channels that cannot carry that kind (the kind goes out without it)",
                "items": {"type": "object", "required": ["channel"], "additionalProperties": false, "properties": {
                    "channel": {"type": "string"},
                    "from": {"type": "string", "description": "a connected address on that channel; default: the one the contact last wrote to, or the only one"}}}}}}));
    map.insert("SendAccepted".into(), json!({"type": "object", "required": ["id", "status", "channel", "conversation_id"], "properties": {
            "id": {"type": "string"}, "status": {"type": "string"}, "channel": {"type": "string"},
            "conversation_id": {"type": "string"},
            "parts": {"type": "array", "items": {"type": "string"},
                "description": "further message ids when the media did not fit one message, in delivery order"},
            "segments": {"type": "integer", "description": "the SMS segments the message is billed as, on channels that count them"}}}));
    map.insert("Content".into(), json!({"type": "object", "description": "canonical content; absent parts are omitted", "properties": {
            "text": {"type": "string"},
            "media": {"type": "array", "items": {"type": "object", "required": ["kind"], "properties": {
                "kind": media_kind, "url": {"type": "string"}, "provider_media_id": {"type": "string"},
                "mime_type": {"type": "string"}, "caption": {"type": "string"}, "filename": {"type": "string"},
                "media_id": {"type": "string", "description": "Switchboard's stored copy (`GET /v1/media/{id}`); on send, an uploaded file (`POST /v1/media`) instead of `url`"},
                "media_state": {"type": "string", "enum": ["pending", "stored", "failed"], "description": "inbound only"}}}},
            "location": {"type": "object"}, "template": {"type": "object"},
            "interactive": {"type": "object", "description": "a person's answer to an interactive element: kind (`button_reply`, `list_reply`, `template_button`, `flow_reply`), id, title, description, data"},
            "interactive_message": {"allOf": [schema_ref("Interactive")], "description": "an interactive message the business sent (the `interactive` field of the send request)"},
            "reaction": {"type": "object"}, "contacts": {"type": "array", "items": schema_ref("ContactCard")},
            "edit_of": {"type": "string"}, "revoke_of": {"type": "string"}, "system": schema_ref("SystemNotice"),
            "unsupported": schema_ref("Unsupported")}}));
    map.insert("SystemNotice".into(), json!({"type": "object", "required": ["kind"],
            "description": "a notice from the platform, not the person writing: it neither opens the service window nor changes an opt-out. A number change moves the contact to `new_wa_id` (the old number stays an alias); a user-id change adds `new_user_id`",
            "properties": {
            "kind": {"type": "string", "examples": ["user_changed_number", "user_changed_user_id"]},
            "body": {"type": "string"},
            "new_wa_id": {"type": "string", "description": "the person's new WhatsApp number, digits"},
            "new_user_id": {"type": "string", "description": "the person's new business-scoped user id (BSUID)"}}}));
    map.insert("Unsupported".into(), json!({"type": "object", "required": ["provider_type"],
            "description": "content Switchboard does not model, or whose provider object was missing or unreadable: kept, never dropped",
            "properties": {
            "provider_type": {"type": "string", "description": "the provider's type, e.g. `poll_creation`, or `image` for an image message without its image"},
            "detail": {"type": "string", "description": "what could not be read, or the provider's errors in words"},
            "errors": {"type": "array", "description": "the errors the provider attached to the message",
                "items": {"type": "object", "required": ["code"], "properties": {
                    "code": {"type": "string"}, "message": {"type": "string"}, "details": {"type": "string"}}}}}}));
    map.insert("Message".into(), json!({"type": "object",
            "required": ["id", "conversation_id", "channel", "direction", "status", "content", "created_at"], "properties": {
            "id": {"type": "string"}, "conversation_id": {"type": "string"}, "account_id": {"type": "string"},
            "channel": {"type": "string"},
            "direction": {"type": "string", "enum": ["inbound", "outbound", "echo"]},
            "status": {"type": "string", "examples": ["received", "queued", "accepted", "sent", "delivered", "read", "failed", "undelivered"]},
            "error_code": nullable("string"), "error_message": nullable("string"),
            "provider_message_id": nullable("string"), "content": schema_ref("Content"),
            "reply_to": {"type": ["string", "null"], "description": "the provider id of the message replied to"},
            "referral": {"type": ["object", "null"], "description": "the click-to-WhatsApp ad an inbound message came from, when the provider sent one",
                "properties": {
                "source_type": {"type": "string", "examples": ["ad", "post"]}, "source_id": {"type": "string"},
                "source_url": {"type": "string"}, "headline": {"type": "string"}, "body": {"type": "string"},
                "media_type": {"type": "string"}, "media_url": {"type": "string"}, "media_id": {"type": "string"},
                "thumbnail_url": {"type": "string"},
                "ctwa_clid": {"type": "string", "description": "the click-to-WhatsApp click id"},
                "welcome_message": {"type": "string"}}},
            "pricing": {"type": ["object", "null"], "description": "how the provider says an outbound message is billed, from whichever status report carried it (a later report replaces it only when it carries pricing too)",
                "properties": {
                "billable": {"type": "boolean"},
                "category": {"type": "string", "examples": ["marketing", "utility", "authentication", "service", "referral_conversion"]},
                "model": {"type": "string", "examples": ["PMP", "CBP"]},
                "type": {"type": "string", "examples": ["regular", "free_customer_service", "free_entry_point"]},
                "price": {"type": "string", "description": "where the provider reports it"},
                "currency": {"type": "string", "description": "ISO 4217, with `price`"}}},
            "created_at": time, "updated_at": time,
            "status_history": {"type": "array", "description": "GET /v1/messages/{id} only", "items": {"type": "object", "properties": {
                "status": {"type": "string"}, "error_code": nullable("string"), "error_message": nullable("string"),
                "at": time, "received_at": time}}},
            "attempts": {"type": "array", "description": "GET /v1/messages/{id} only, in the order made", "items": {"type": "object", "properties": {
                "channel": {"type": "string", "description": "the channel of this attempt: a message that fell back has attempts on several"},
                "attempt": {"type": "integer", "description": "counted per channel"}, "started_at": time, "latency_ms": {"type": "integer"},
                "outcome": {"type": "string"}, "http_status": nullable("integer"),
                "error_code": nullable("string"), "error_message": nullable("string"),
                "request": {"description": "the provider request, secrets redacted"},
                "response": {"description": "the provider response, truncated"}}}},
            "media": {"type": "array", "description": "inbound media as stored, in item order", "items": schema_ref("Media")},
            "segments": {"type": "integer", "description": "the SMS segments the text is billed as, on channels that count them"}}}));
    map.insert("Media".into(), json!({"type": "object", "required": ["id", "kind", "state"], "properties": {
            "id": {"type": "string"}, "index": {"type": "integer"}, "kind": media_kind.clone(),
            "state": {"type": "string", "enum": ["pending", "stored", "failed"]},
            "mime_type": nullable("string"), "filename": nullable("string"), "size": nullable("integer"),
            "sha256": {"type": ["string", "null"], "description": "hex SHA-256 of the stored bytes"},
            "failure_reason": {"type": ["string", "null"], "description": "why the fetch failed (or the last retry's reason while pending)"},
            "attempts": {"type": "integer"}, "created_at": time}}));
    map.insert("Conversation".into(), json!({"type": "object", "required": ["id", "contact", "account_id", "channel", "last_message_at"], "properties": {
            "id": {"type": "string"},
            "contact": {"type": "object", "properties": {"id": {"type": "string"}, "phone": nullable("string"), "profile_name": nullable("string")}},
            "account_id": {"type": "string"}, "channel": {"type": "string"},
            "last_message_at": time, "last_inbound_at": nullable_time,
            "service_window_open": {"type": "boolean", "description": "whether a free-form message may be sent now: the contact wrote within the channel's customer-service window, or the channel has none"}, "opted_out": {"type": "boolean"}, "created_at": time}}));
    map.insert("Contact".into(), json!({"type": "object", "required": ["id", "phones", "channels"], "properties": {
            "id": {"type": "string"}, "phone": {"type": ["string", "null"], "description": "primary number, E.164"},
            "phones": {"type": "array", "items": {"type": "string"}}, "bsuid": nullable("string"),
            "profile_name": nullable("string"), "username": nullable("string"),
            "channels": {"type": "array", "items": {"type": "string"}}, "created_at": time}}));
    map.insert("Header".into(), json!({"type": "object", "required": ["type"], "additionalProperties": false,
        "description": "a template's or an interactive message's header; a location only in templates, media not in lists or location requests",
        "oneOf": [
            {"properties": {"type": {"const": "text"}}, "required": ["text"]},
            {"properties": {"type": {"enum": ["image", "video", "document"]}}, "oneOf": [{"required": ["url"]}, {"required": ["media_id"]}]},
            {"properties": {"type": {"const": "location"}}, "required": ["latitude", "longitude"]}],
        "properties": {
            "type": {"type": "string", "enum": ["text", "image", "video", "document", "location"]},
            "text": {"type": "string", "maxLength": switchboard_core::interactive::limits::HEADER_TEXT},
            "url": {"type": "string", "format": "uri"}, "media_id": {"type": "string", "description": "an upload of this tenant"},
            "filename": {"type": "string"},
            "latitude": {"type": "number"}, "longitude": {"type": "number"}, "name": {"type": "string"}, "address": {"type": "string"}}}));
    let typed = |kind: &str, required: &[&str]| json!({"properties": {"type": {"const": kind}}, "required": required});
    map.insert("Interactive".into(), json!({"type": "object", "required": ["type", "body"], "additionalProperties": false,
        "description": format!("an interactive message, checked against WhatsApp's limits before it is queued (`invalid_interactive`); the same body on every channel that carries it ({})", carried_interactive_text(channels)),
        "oneOf": [typed("buttons", &["buttons"]), typed("list", &["button", "sections"]), typed("cta_url", &["url"]), typed("flow", &["flow"]), typed("location_request", &[])],
        "properties": {
            "type": {"type": "string", "enum": switchboard_core::InteractiveType::ALL.map(switchboard_core::InteractiveType::as_str)},
            "header": {"allOf": [schema_ref("Header")], "description": "buttons, cta_url, flow: text, image, video or document; list: text only; location_request: none"},
            "body": {"type": "string", "minLength": 1, "maxLength": switchboard_core::interactive::limits::LIST_BODY, "description": "at most 1024 characters (4096 in a list)"},
            "footer": {"type": "string", "maxLength": switchboard_core::interactive::limits::FOOTER},
            "buttons": {"type": "array", "minItems": 1, "maxItems": switchboard_core::interactive::limits::BUTTONS, "items": {"type": "object", "required": ["id", "title"], "additionalProperties": false, "properties": {
                "id": {"type": "string", "maxLength": switchboard_core::interactive::limits::BUTTON_ID, "description": "comes back with the person's tap"},
                "title": {"type": "string", "maxLength": switchboard_core::interactive::limits::BUTTON_TITLE, "description": "unique in the message"}}}},
            "button": {"type": "string", "maxLength": switchboard_core::interactive::limits::LIST_BUTTON, "description": "list: the label of the button that opens it"},
            "sections": {"type": "array", "minItems": 1, "maxItems": switchboard_core::interactive::limits::SECTIONS, "description": "list: at most 10 rows across all sections; a title on each when there are several",
                "items": {"type": "object", "required": ["rows"], "additionalProperties": false, "properties": {
                    "title": {"type": "string", "maxLength": switchboard_core::interactive::limits::SECTION_TITLE},
                    "rows": {"type": "array", "minItems": 1, "items": {"type": "object", "required": ["id", "title"], "additionalProperties": false, "properties": {
                        "id": {"type": "string", "maxLength": switchboard_core::interactive::limits::ROW_ID},
                        "title": {"type": "string", "maxLength": switchboard_core::interactive::limits::ROW_TITLE},
                        "description": {"type": "string", "maxLength": switchboard_core::interactive::limits::ROW_DESCRIPTION}}}}}}},
            "url": {"type": "object", "required": ["display_text", "url"], "additionalProperties": false, "properties": {
                "display_text": {"type": "string", "maxLength": switchboard_core::interactive::limits::CTA_DISPLAY_TEXT},
                "url": {"type": "string", "format": "uri", "description": "http or https"}}},
            "flow": {"type": "object", "required": ["cta"], "additionalProperties": false,
                "oneOf": [{"required": ["id"]}, {"required": ["name"]}], "properties": {
                "id": {"type": "string"}, "name": {"type": "string"},
                "cta": {"type": "string", "maxLength": switchboard_core::interactive::limits::FLOW_CTA},
                "token": {"type": "string", "description": "comes back with the completed Flow"},
                "action": {"type": "string", "enum": ["navigate", "data_exchange"], "default": "navigate"},
                "screen": {"type": "string", "description": "navigate: the first screen"},
                "data": {"type": "object", "minProperties": 1, "description": "navigate: the first screen's data"}}}}}));
    let typed_list = |fields: &[&str]| -> Value {
        let props: serde_json::Map<String, Value> = fields
            .iter()
            .map(|f| ((*f).to_owned(), json!({"type": "string"})))
            .collect();
        json!({"type": "array", "items": {"type": "object", "additionalProperties": false, "properties": props}})
    };
    map.insert("ContactCard".into(), json!({"type": "object", "required": ["name"], "additionalProperties": false,
        "description": "a contact card with the vCard fields as Meta names them",
        "properties": {
            "name": {"type": "object", "required": ["formatted_name"], "additionalProperties": false, "properties": {
                "formatted_name": {"type": "string", "minLength": 1}, "first_name": {"type": "string"}, "last_name": {"type": "string"},
                "middle_name": {"type": "string"}, "suffix": {"type": "string"}, "prefix": {"type": "string"}}},
            "phones": typed_list(&["phone", "type", "wa_id"]),
            "emails": typed_list(&["email", "type"]),
            "addresses": typed_list(&["street", "city", "state", "zip", "country", "country_code", "type"]),
            "org": {"type": "object", "additionalProperties": false, "properties": {
                "company": {"type": "string"}, "department": {"type": "string"}, "title": {"type": "string"}}},
            "urls": typed_list(&["url", "type"]),
            "birthday": {"type": "string", "format": "date", "description": "YYYY-MM-DD"}}}));
    map.insert("ConversationPage".into(), page_schema("Conversation"));
    map.insert("MessagePage".into(), page_schema("Message"));
    Value::Object(map)
}

fn page_schema(item: &str) -> Value {
    json!({"type": "object", "required": ["data", "next_cursor"], "properties": {
        "data": {"type": "array", "items": schema_ref(item)},
        "next_cursor": {"type": ["string", "null"], "description": "null on the last page"}}})
}

fn build(channels: &Channels) -> Value {
    let ids: Vec<String> = channels
        .iter()
        .map(|a| format!("`{}`", a.channel()))
        .collect();
    let ids = if ids.is_empty() {
        "none".to_owned()
    } else {
        ids.join(", ")
    };
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Switchboard",
            "version": env!("CARGO_PKG_VERSION"),
            "description": format!("A unified messaging router. Channels: {ids}. Errors are {{\"error\":{{\"code\",\"message\"}}}}; another tenant's ids answer 404.")
        },
        "security": [{"bearer": []}],
        "tags": [
            {"name": "accounts"}, {"name": "templates"}, {"name": "keys"}, {"name": "messages"}, {"name": "conversations"},
            {"name": "contacts"}, {"name": "usage"}, {"name": "webhooks"}, {"name": "monitors"}, {"name": "meta"}
        ],
        "paths": paths(channels),
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description": "an API key (`sbk_…`)"}},
            "schemas": schemas(channels)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use switchboard_core::ChannelId;
    use switchboard_core::testing::FakeAdapter;

    fn registry(adapters: Vec<FakeAdapter>) -> AdapterRegistry {
        let mut registry = AdapterRegistry::new();
        for adapter in adapters {
            registry.register(Arc::new(adapter));
        }
        registry
    }

    /// Every `$ref` resolves and every `{param}` of a path is declared.
    #[test]
    fn references_resolve_and_path_parameters_are_declared() {
        let doc = document(&registry(vec![FakeAdapter::new()]));
        fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
            match v {
                Value::Object(m) => {
                    if let Some(Value::String(r)) = m.get("$ref") {
                        out.push(r);
                    }
                    m.values().for_each(|v| refs(v, out));
                }
                Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
                _ => {}
            }
        }
        let mut found = Vec::new();
        refs(&doc, &mut found);
        assert!(found.len() > 20);
        for r in found {
            let name = r.strip_prefix("#/components/schemas/").unwrap();
            assert!(
                doc["components"]["schemas"].get(name).is_some(),
                "dangling {r}"
            );
        }
        for (path, item) in doc["paths"].as_object().unwrap() {
            let params: Vec<&str> = path
                .split('/')
                .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
                .collect();
            for (method, op) in item
                .as_object()
                .unwrap()
                .iter()
                .filter(|(k, _)| *k != "parameters")
            {
                assert!(
                    op["responses"].as_object().is_some_and(|r| !r.is_empty()),
                    "{method} {path}"
                );
                for p in &params {
                    let declared = item["parameters"]
                        .as_array()
                        .into_iter()
                        .chain(op["parameters"].as_array())
                        .flatten()
                        .any(|d| d["name"] == *p && d["in"] == "path");
                    assert!(declared, "{method} {path} does not declare {p}");
                }
            }
        }
    }

    /// Channel ids, credential fields and the other per-channel facts come from the
    /// registered adapters.
    #[test]
    fn channels_and_their_credentials_come_from_the_adapters() {
        let mut no_window = FakeAdapter::named(ChannelId::new_static("fake-sms"))
            .capabilities()
            .clone();
        no_window.service_window = None;
        let doc = document(&registry(vec![
            FakeAdapter::new(),
            FakeAdapter::named(ChannelId::new_static("fake-sms")).with_capabilities(no_window),
        ]));
        let schemas = &doc["components"]["schemas"];
        let create = &schemas["AccountCreate"];
        assert_eq!(
            create["properties"]["channel"]["enum"],
            json!(["fake", "fake-sms"])
        );
        let variants: Vec<&Value> = create["oneOf"].as_array().unwrap().iter().collect();
        assert_eq!(variants.len(), 2);
        assert_eq!(variants[0]["properties"]["channel"]["const"], "fake");
        assert_eq!(
            variants[0]["properties"]["credentials"]["$ref"],
            "#/components/schemas/Credentials.fake"
        );
        let fields = switchboard_core::testing::CREDENTIAL_FIELDS;
        for channel in ["fake", "fake-sms"] {
            let credentials = &schemas[format!("Credentials.{channel}")];
            assert_eq!(credentials["additionalProperties"], false, "{channel}");
            assert_eq!(
                credentials["required"],
                json!(
                    fields
                        .iter()
                        .filter(|f| f.required)
                        .map(|f| f.name)
                        .collect::<Vec<_>>()
                )
            );
            for field in fields {
                let property = &credentials["properties"][field.name];
                assert_eq!(property["description"], field.description);
                assert_eq!(
                    property["format"] == "password",
                    field.secret,
                    "{}",
                    field.name
                );
            }
        }
        let webhook = &doc["paths"]["/webhooks/{channel}"];
        assert_eq!(
            webhook["parameters"][0]["schema"]["enum"],
            json!(["fake", "fake-sms"])
        );
        let summary = webhook["post"]["summary"].as_str().unwrap();
        assert!(summary.contains("`fake`: x-fake-signature"), "{summary}");
        let windows = doc["paths"]["/v1/messages"]["post"]["responses"]["422"]["description"]
            .as_str()
            .unwrap();
        assert!(
            windows.contains("`fake`: 24 h; `fake-sms`: none"),
            "{windows}"
        );
    }
}

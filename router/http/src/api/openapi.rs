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
            "400": invalid("`invalid_json`, `invalid_recipient`, `empty_message`, `empty_text`, `text_too_long`, `unsupported_media`, `invalid_media_kind`, `no_sender`, `sender_ambiguous`, `idempotency_key_mismatch`, `message_not_sent`, and for `fallback`: `unknown_channel`, `invalid_from`, `invalid_fallback`…"),
            "404": error("`reply_to` or `reaction.message_id` names no message of this tenant (`not_found`)"),
            "409": error("the idempotency key was first used with another request (`idempotency_key_reused`); the same request again answers the first message"),
            "413": error("the body is over 1 MiB (`body_too_large`)"),
            "422": error(&format!("free-form message outside the channel's customer-service window (`outside_service_window`; {}) or the contact opted out (`opted_out`); content a `fallback` channel cannot carry without a `text` alternative (`unsupported_content`, naming the channel and the part)", service_windows_text(channels)))
        }),
    );
    send["requestBody"] = body("SendRequest");
    send["parameters"] = json!([{
        "name": "Idempotency-Key", "in": "header", "required": false,
        "description": "same as the body's idempotency_key (they must agree when both are given)",
        "schema": {"type": "string", "maxLength": 200}
    }]);

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
    });
    for (path, op, name, description) in [
        ("/v1/accounts/{id}", "delete", "id", "account id"),
        ("/v1/accounts/{id}/verify", "post", "id", "account id"),
        (
            "/v1/keys/{id}",
            "delete",
            "id",
            "API key id (`key_…`), not the key",
        ),
        ("/v1/messages/{id}", "get", "id", "message id"),
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
    map.insert("Account".into(), json!({"type": "object", "required": ["id", "channel", "address", "active", "credential_names", "created_at"], "properties": {
            "id": {"type": "string"}, "channel": {"type": "string"}, "address": {"type": "string", "description": "E.164"},
            "active": {"type": "boolean"}, "rate_per_second": nullable("integer"),
            "credential_names": {"type": "array", "items": {"type": "string"}, "description": "names only; values are never returned"},
            "created_at": time, "disconnected_at": nullable_time}}));
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
    map.insert("SendRequest".into(), json!({"type": "object", "required": ["to"], "additionalProperties": false, "properties": {
            "to": {"type": "string", "description": "a number in any spelling, or a BSUID"},
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
                "variables": {"type": "object", "additionalProperties": {"type": "string"}}}},
            "location": {"type": "object", "required": ["latitude", "longitude"], "properties": {
                "latitude": {"type": "number"}, "longitude": {"type": "number"},
                "name": {"type": "string"}, "address": {"type": "string"}, "url": {"type": "string"}}},
            "reaction": {"type": "object", "required": ["message_id"], "additionalProperties": false, "properties": {
                "message_id": {"type": "string", "description": "the id of the message reacted to"},
                "emoji": {"type": "string", "description": "absent or empty removes the reaction"}}},
            "reply_to": {"type": "string", "description": "a message id"},
            "idempotency_key": {"type": "string", "minLength": 1, "maxLength": 200},
            "fallback": {"type": "array", "maxItems": 8, "description": "channels to send on next, in order, when the recipient cannot be reached on the current one (the channel's error says so at send time or on a `failed`/`undelivered` status within the fallback window), or when the first channel's window is closed at send time; the message keeps its id and its `channel` becomes the one that sends it. Beside a `template`, `text` is the plain alternative for fallback channels that cannot carry the template (the template goes out without it)",
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
            "interactive": {"type": "object", "description": "a button or list reply: kind, id, title"},
            "reaction": {"type": "object"}, "contacts": {"type": "array", "items": {"type": "object"}},
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
            {"name": "accounts"}, {"name": "keys"}, {"name": "messages"}, {"name": "conversations"},
            {"name": "contacts"}, {"name": "webhooks"}, {"name": "monitors"}, {"name": "meta"}
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

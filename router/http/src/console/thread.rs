//! A conversation: its messages, and the reply box (free text and attachments inside the
//! service window; the account's approved templates outside it).

use axum::extract::{Multipart, Path, Query, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use bytes::{Bytes, BytesMut};
use maud::{Markup, html};
use serde::Deserialize;
use switchboard_core::{Content, MediaItem, MediaKind};
use switchboard_router::outbound::send::SendRequest;
use switchboard_router::records::queries::{ConversationView, MessageView};
use switchboard_router::templates::{TemplateFilter, TemplateView};
use switchboard_router::tenancy::sessions::{OperatorSession, random_token};

use super::layout::{self, error_page, page_response, shell};
use super::render;
use super::session::{ConsoleForm, Signed, csrf_refusal};
use crate::AppState;

/// Messages a thread page shows: the newest ones, or those before `?before=`.
const THREAD_MESSAGES: u64 = 100;

/// A thread page's query: `before`, a message id, shows the messages before it (a page of
/// earlier messages).
#[derive(Deserialize, Default)]
pub(super) struct ThreadQuery {
    before: Option<String>,
}

impl ThreadQuery {
    fn before(&self) -> Option<&str> {
        self.before.as_deref().filter(|b| !b.is_empty())
    }
}

/// `path` (a thread page or its messages), showing the messages before message `before`
/// when given.
fn thread_url(path: &str, before: Option<&str>) -> String {
    match before {
        Some(before) => {
            let query = form_urlencoded::Serializer::new(String::new())
                .append_pair("before", before)
                .finish();
            format!("{path}?{query}")
        }
        None => path.to_owned(),
    }
}

/// Everything a thread page shows.
struct Thread {
    conversation: ConversationView,
    messages: Vec<MessageView>,
    /// The page shows the messages before this one.
    before: Option<String>,
    older: bool,
    /// Delivery attempts of the failed messages shown, by message id.
    attempts: Vec<(
        String,
        Vec<switchboard_router::records::queries::AttemptView>,
    )>,
}

async fn read(
    state: &AppState,
    session: &OperatorSession,
    id: &str,
    before: Option<&str>,
) -> Result<Thread, Response> {
    let tenant = &session.principal.tenant_id;
    let records = state.router.records();
    let fail = |e: switchboard_router::error::RouterError| layout::router_error(&e);
    let conversation = records.get_conversation(tenant, id).await.map_err(fail)?;
    let (messages, older) = records
        .recent_messages(tenant, id, before, THREAD_MESSAGES)
        .await
        .map_err(fail)?;
    let mut attempts = Vec::new();
    for m in messages
        .iter()
        .filter(|m| matches!(m.status.as_str(), "failed" | "undelivered"))
    {
        let full = records.get_message(tenant, &m.id).await.map_err(fail)?;
        attempts.push((m.id.clone(), full.attempts.unwrap_or_default()));
    }
    see(state, session, &conversation).await;
    Ok(Thread {
        conversation,
        messages,
        before: before.map(str::to_owned),
        older,
        attempts,
    })
}

/// The person is looking at the conversation: its messages are no longer unread, and the
/// newest one they had not seen is marked read at the provider where the channel has read
/// receipts (in the background: the page does not wait for the provider). Failures only
/// log: seeing a page must not fail because a provider is slow.
async fn see(state: &AppState, session: &OperatorSession, conversation: &ConversationView) {
    let tenant = session.principal.tenant_id.clone();
    let unread = match state
        .router
        .records()
        .mark_seen(&tenant, &conversation.id)
        .await
    {
        Ok(unread) => unread,
        Err(e) => {
            tracing::warn!(error = %e, "Could not record a conversation as seen.");
            return;
        }
    };
    let has_receipts = state
        .router
        .adapters()
        .get(&conversation.channel)
        .is_some_and(|a| a.capabilities().read_receipts);
    if let (Some(message_id), true) = (unread, has_receipts) {
        let router = state.router.clone();
        tokio::spawn(async move {
            if let Err(e) = router
                .read_receipts()
                .mark_read(&tenant, &message_id, false)
                .await
            {
                tracing::info!(error = %e, message_id, "Marking a message read at the provider failed.");
            }
        });
    }
}

fn messages(thread: &Thread) -> Markup {
    let c = &thread.conversation;
    let before = thread.before.as_deref();
    let path = format!("/console/conversations/{}", c.id);
    html! {
        section #thread-messages data-fragment=(thread_url(&format!("{path}/messages"), before))
            data-window=(if c.service_window_open { "open" } else { "closed" }) aria-live="polite" {
            @if let (true, Some(first)) = (thread.older, thread.messages.first()) {
                p.older { a #earlier href=(thread_url(&path, Some(&first.id))) { "Earlier messages" } }
            }
            @if thread.messages.is_empty() {
                p #no-messages { "No messages yet." }
            }
            ol #messages {
                @for m in &thread.messages {
                    @let attempts = thread.attempts.iter().find(|(id, _)| *id == m.id).map(|(_, a)| a.as_slice());
                    (render::message(m, attempts))
                }
            }
            @if before.is_some() {
                p.newer { a #newest href=(path) { "Newest messages" } }
            }
        }
    }
}

/// Fields for one template's variables, and its send button.
fn template_form(c: &ConversationView, session: &OperatorSession, t: &TemplateView) -> Markup {
    let preview = template_body(&t.components);
    let media_header = template_media_header(&t.components);
    html! {
        form.template method="post" action=(format!("/console/conversations/{}/template", c.id)) data-template=(t.name) {
            input type="hidden" name="csrf" value=(session.csrf_token);
            input type="hidden" name="idempotency" value=(random_token("console_"));
            input type="hidden" name="template" value=(t.name);
            input type="hidden" name="language" value=(t.language);
            fieldset {
                legend { strong { (t.name) } " · " (t.language) @if let Some(cat) = &t.category { " · " (cat.to_lowercase()) } }
                @if let Some(body) = preview { p.template-body { (body) } }
                @if let Some(kind) = media_header {
                    @let id = format!("tpl-{}-{}-header", t.name, t.language);
                    input type="hidden" name="header_kind" value=(kind);
                    label for=(id) { "Link to the " (kind.to_lowercase()) " for the header" }
                    input id=(id) type="url" name="header_url" required;
                }
                @for v in &t.variables {
                    @let id = format!("tpl-{}-{}-{}", t.name, t.language, v.key);
                    label for=(id) { "{{" (v.key) "}}" }
                    input id=(id) type="text" name=(format!("var.{}", v.key)) required placeholder=[v.example.as_deref()];
                }
                button.template-send type="submit" { "Send template" }
            }
        }
    }
}

/// The body text of a stored template (Meta's `BODY` component, or the `body` of a Twilio
/// content type), for people to see what they send.
fn template_body(components: &serde_json::Value) -> Option<String> {
    if let Some(list) = components.as_array() {
        return list.iter().find_map(|c| {
            let kind = c.get("type")?.as_str()?;
            kind.eq_ignore_ascii_case("body")
                .then(|| c.get("text")?.as_str().map(str::to_owned))
                .flatten()
        });
    }
    components
        .as_object()?
        .values()
        .find_map(|v| v.get("body")?.as_str().map(str::to_owned))
}

/// The kind of a template's media header (`IMAGE`, `VIDEO`, `DOCUMENT`), if it has one.
fn template_media_header(components: &serde_json::Value) -> Option<String> {
    components.as_array()?.iter().find_map(|c| {
        let is_header = c.get("type")?.as_str()?.eq_ignore_ascii_case("header");
        let format = c.get("format")?.as_str()?.to_uppercase();
        (is_header && matches!(format.as_str(), "IMAGE" | "VIDEO" | "DOCUMENT")).then_some(format)
    })
}

async fn composer(state: &AppState, session: &OperatorSession, c: &ConversationView) -> Markup {
    if c.opted_out {
        return html! {
            p #opted-out role="status" { "This contact opted out: Switchboard sends them nothing until they write again or opt back in." }
        };
    }
    if c.service_window_open {
        return html! {
            form #reply method="post" enctype="multipart/form-data" action=(format!("/console/conversations/{}/reply", c.id)) {
                input type="hidden" name="csrf" value=(session.csrf_token);
                input type="hidden" name="idempotency" value=(random_token("console_"));
                label for="reply-text" { "Reply" }
                textarea #reply-text name="text" rows="3" placeholder="Write a reply…" {}
                div.row {
                    label for="reply-file" { "Attachment" }
                    input #reply-file type="file" name="attachment";
                    button #reply-send type="submit" { "Send" }
                }
            }
        };
    }
    let filter = TemplateFilter {
        account_id: Some(c.account_id.clone()),
        status: Some("approved".to_owned()),
        name: None,
    };
    let templates = match state
        .router
        .templates()
        .list(&session.principal.tenant_id, &filter)
        .await
    {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(error = %e, "Could not list templates for a thread.");
            Vec::new()
        }
    };
    html! {
        section #templates aria-labelledby="templates-title" {
            h2 #templates-title { "Outside the service window" }
            p { "The contact has not written in the last 24 hours, so only an approved template can start the conversation again." }
            @if templates.is_empty() {
                p #no-templates { "This number has no approved templates. Submit one with POST /v1/templates, or sync them from the provider." }
            }
            @for t in &templates { (template_form(c, session, t)) }
        }
    }
}

/// `GET /console/conversations/{id}`.
pub(super) async fn page(
    State(state): State<AppState>,
    Signed(session): Signed,
    Path(id): Path<String>,
    Query(q): Query<ThreadQuery>,
) -> Response {
    let thread = match read(&state, &session, &id, q.before()).await {
        Ok(t) => t,
        Err(refused) => return with_session(refused, &session),
    };
    let c = &thread.conversation;
    let name = c
        .contact
        .profile_name
        .clone()
        .or_else(|| c.contact.phone.clone())
        .unwrap_or_else(|| "Unknown contact".to_owned());
    let body = html! {
        main.thread data-conversation=(c.id) {
            header.thread-head {
                a.back href="/console/" { "← Inbox" }
                h1 #contact-name { (name) }
                p.small {
                    span.contact-phone { (c.contact.phone.as_deref().unwrap_or("")) }
                    " · " span.channel { (c.channel) }
                    " · " span #window-state { "Service window " (if c.service_window_open { "open" } else { "closed" }) }
                }
            }
            (messages(&thread))
            (composer(&state, &session, c).await)
        }
    };
    page_response(
        StatusCode::OK,
        &shell(&name, Some(&session), "thread", body),
    )
}

/// An error page that still shows the signed-in navigation.
fn with_session(refused: Response, session: &OperatorSession) -> Response {
    let status = refused.status();
    if status == StatusCode::NOT_FOUND {
        return error_page(
            status,
            Some(session),
            "Not found",
            "There is no such conversation in this workspace.",
        );
    }
    refused
}

/// `GET /console/conversations/{id}/messages`: the messages alone (the script's refresh).
pub(super) async fn fragment(
    State(state): State<AppState>,
    Signed(session): Signed,
    Path(id): Path<String>,
    Query(q): Query<ThreadQuery>,
) -> Response {
    match read(&state, &session, &id, q.before()).await {
        Ok(thread) => {
            let mut response = layout::fragment_response(&messages(&thread));
            let window = if thread.conversation.service_window_open {
                "open"
            } else {
                "closed"
            };
            response
                .headers_mut()
                .insert("x-service-window", HeaderValue::from_static(window));
            response
        }
        Err(refused) => refused,
    }
}

/// Sends `content` in the conversation, from its account to its contact, and goes back to
/// the thread; a refusal is a page saying why. `upload`, the form's attachment stored for
/// this send, is discarded unless the send took it.
async fn send(
    state: &AppState,
    session: &OperatorSession,
    conversation_id: &str,
    content: Content,
    idempotency: Option<String>,
    upload: Option<&str>,
) -> Response {
    let (sent, response) = try_send(state, session, conversation_id, content, idempotency).await;
    if let (false, Some(upload)) = (sent, upload)
        && let Err(e) = state
            .router
            .media()
            .discard_unsent_upload(&session.principal.tenant_id, upload)
            .await
    {
        tracing::warn!(error = %e, "Could not discard the attachment of a reply not sent.");
    }
    response
}

/// [`send`]: whether the message was accepted, and the answer.
async fn try_send(
    state: &AppState,
    session: &OperatorSession,
    conversation_id: &str,
    content: Content,
    idempotency: Option<String>,
) -> (bool, Response) {
    let tenant = &session.principal.tenant_id;
    let refused = |e: switchboard_router::error::RouterError| refusal(session, conversation_id, &e);
    let conversation = match state
        .router
        .records()
        .get_conversation(tenant, conversation_id)
        .await
    {
        Ok(c) => c,
        Err(e) => return (false, with_session(layout::router_error(&e), session)),
    };
    let account = match state
        .router
        .accounts()
        .account_view(tenant, &conversation.account_id)
        .await
    {
        Ok(a) => a,
        Err(e) => return (false, refused(e)),
    };
    let request = SendRequest {
        to: conversation.contact.id.clone(),
        channel: Some(conversation.channel.clone()),
        from: Some(account.address),
        content,
        reply_to: None,
        idempotency_key: idempotency.filter(|k| !k.is_empty()),
        fallback: Vec::new(),
    };
    let thread =
        || Redirect::to(&format!("/console/conversations/{conversation_id}")).into_response();
    match state.router.send(tenant, request).await {
        Ok(_) => (true, thread()),
        // Each form carries its own key: a key used already means this form was sent
        // before (a double click, a resent page), and that first message stands.
        Err(e) if e.code() == "idempotency_key_reused" => (false, thread()),
        Err(e) => (false, refused(e)),
    }
}

/// Why a reply was not sent, with the way back to the conversation.
fn refusal(
    session: &OperatorSession,
    conversation_id: &str,
    e: &switchboard_router::error::RouterError,
) -> Response {
    let status = crate::webhooks::error_response(e).status();
    if status.is_server_error() {
        return layout::router_error(e);
    }
    let body = html! {
        main.error-page {
            h1 { "Not sent" }
            p role="alert" { (e.to_string()) " (" code { (e.code()) } ")" }
            p { a href=(format!("/console/conversations/{conversation_id}")) { "Back to the conversation" } }
        }
    };
    page_response(status, &shell("Not sent", Some(session), "none", body))
}

/// An attachment read from the reply form.
struct Attachment {
    target: switchboard_router::media::library::UploadTarget,
    mime: String,
    filename: Option<String>,
    bytes: Bytes,
}

/// `POST /console/conversations/{id}/reply` (multipart): text and/or one attachment. Only
/// a signed-in session gets this far; the file is bounded by its kind's limit while it is
/// read, and stored only once the CSRF token has been checked.
pub(super) async fn reply(
    State(state): State<AppState>,
    Signed(session): Signed,
    Path(id): Path<String>,
    mut form: Multipart,
) -> Response {
    let bad = |detail: String| {
        error_page(
            StatusCode::BAD_REQUEST,
            Some(&session),
            "Bad request",
            &detail,
        )
    };
    let (mut csrf, mut text, mut idempotency) = (String::new(), String::new(), None);
    let mut attachment: Option<Attachment> = None;
    loop {
        let mut field = match form.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(e) => return bad(format!("The form could not be read: {}", e.body_text())),
        };
        let name = field.name().unwrap_or("").to_owned();
        if name != "attachment" {
            let value = match field.text().await {
                Ok(v) => v,
                Err(e) => return bad(format!("The form could not be read: {}", e.body_text())),
            };
            match name.as_str() {
                "csrf" => csrf = value,
                "text" => text = value,
                "idempotency" => idempotency = Some(value),
                _ => {}
            }
            continue;
        }
        // No file chosen: browsers still send the part, with an empty name and body.
        let filename = field
            .file_name()
            .filter(|f| !f.is_empty())
            .map(str::to_owned);
        let Some(filename) = filename else { continue };
        let mime = field
            .content_type()
            .unwrap_or("application/octet-stream")
            .to_owned();
        let target = match state.router.media().upload_target(&mime, None) {
            Ok(t) => t,
            Err(e) => return refusal(&session, &id, &e),
        };
        let mut buf = BytesMut::new();
        loop {
            match field.chunk().await {
                Ok(Some(chunk)) => {
                    if (buf.len() + chunk.len()) as u64 > target.max_bytes {
                        return refusal(&session, &id, &target.too_large(None));
                    }
                    buf.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) => return bad(format!("The file could not be read: {}", e.body_text())),
            }
        }
        attachment = Some(Attachment {
            target,
            mime,
            filename: Some(filename),
            bytes: buf.freeze(),
        });
    }
    if let Some(refused) = csrf_refusal(&session, &csrf) {
        return refused;
    }
    let text = text.trim();
    let mut content = Content::default();
    let mut upload = None;
    if let Some(a) = attachment {
        let stored = match state
            .router
            .media()
            .store_upload(
                &session.principal.tenant_id,
                &a.target,
                a.bytes,
                a.filename.as_deref(),
            )
            .await
        {
            Ok(v) => v,
            Err(e) => return refusal(&session, &id, &e),
        };
        // Kind and type come from the stored upload (checked by `send`).
        let mut item = MediaItem::from_url(MediaKind::Document, String::new());
        item.url = None;
        upload = Some(stored.id.clone());
        item.media_id = Some(stored.id);
        item.filename = a.filename;
        item.mime_type = Some(a.mime);
        content.media.push(item);
    } else if text.is_empty() {
        return bad("Write a reply or choose a file to send.".to_owned());
    }
    if !text.is_empty() {
        content.text = Some(text.to_owned());
    }
    send(
        &state,
        &session,
        &id,
        content,
        idempotency,
        upload.as_deref(),
    )
    .await
}

/// `POST /console/conversations/{id}/template`: sends an approved template with the
/// variables filled in on the thread page.
pub(super) async fn send_template(
    State(state): State<AppState>,
    Signed(session): Signed,
    Path(id): Path<String>,
    ConsoleForm(fields): ConsoleForm<Vec<(String, String)>>,
) -> Response {
    let field = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    if let Some(refused) = csrf_refusal(&session, &field("csrf").unwrap_or_default()) {
        return refused;
    }
    let Some(name) = field("template").filter(|n| !n.is_empty()) else {
        return error_page(
            StatusCode::BAD_REQUEST,
            Some(&session),
            "Bad request",
            "Choose a template to send.",
        );
    };
    let mut template = switchboard_core::Template {
        name,
        language: field("language").filter(|l| !l.is_empty()),
        ..switchboard_core::Template::default()
    };
    for (key, value) in &fields {
        if let Some(variable) = key.strip_prefix("var.") {
            template
                .variables
                .insert(variable.to_owned(), value.clone());
        }
    }
    if let Some(url) = field("header_url").filter(|u| !u.trim().is_empty()) {
        let kind = field("header_kind")
            .and_then(|k| MediaKind::parse(&k.to_lowercase()))
            .unwrap_or(MediaKind::Image);
        template.header = Some(switchboard_core::Header::Media(MediaItem::from_url(
            kind, url,
        )));
    }
    let content = Content {
        template: Some(template),
        ..Content::default()
    };
    send(&state, &session, &id, content, field("idempotency"), None).await
}

/// `GET /console/media/{id}`: a stored file of the session's tenant (images in a thread).
pub(super) async fn media(
    State(state): State<AppState>,
    Signed(session): Signed,
    Path(id): Path<String>,
) -> Response {
    match state
        .router
        .media()
        .content(&session.principal.tenant_id, &id)
        .await
    {
        Ok((row, body)) => crate::api::media::stream_response(&row, body),
        Err(e) => layout::router_error(&e),
    }
}

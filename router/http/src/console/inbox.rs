//! The inbox: the tenant's conversations, newest activity first, with search.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;
use switchboard_router::records::inbox::InboxEntry;
use switchboard_router::records::queries::{Page, PageRequest};

use super::layout::{self, page_response, shell, time};
use super::render;
use super::session::Signed;
use crate::AppState;

/// Conversations per page: enough to fill a screen, few enough to load at once.
const PAGE_SIZE: u64 = 50;

#[derive(Deserialize, Default)]
pub(super) struct InboxQuery {
    q: Option<String>,
    cursor: Option<String>,
}

impl InboxQuery {
    fn search(&self) -> Option<&str> {
        self.q.as_deref().map(str::trim).filter(|q| !q.is_empty())
    }

    /// The query string that reads this list again (what the script re-fetches).
    fn fragment_url(&self) -> String {
        let mut url = form_urlencoded::Serializer::new(String::new());
        if let Some(q) = self.search() {
            url.append_pair("q", q);
        }
        if let Some(c) = self.cursor.as_deref().filter(|c| !c.is_empty()) {
            url.append_pair("cursor", c);
        }
        format!("/console/fragments/inbox?{}", url.finish())
    }
}

async fn read(
    state: &AppState,
    tenant_id: &str,
    q: &InboxQuery,
) -> Result<Page<InboxEntry>, Response> {
    let request = PageRequest {
        limit: Some(PAGE_SIZE),
        cursor: q.cursor.clone(),
    };
    state
        .router
        .records()
        .inbox(tenant_id, q.search(), &request)
        .await
        .map_err(|e| layout::router_error(&e))
}

fn entry(e: &InboxEntry) -> Markup {
    let c = &e.conversation;
    let name = c
        .contact
        .profile_name
        .clone()
        .or_else(|| c.contact.phone.clone())
        .unwrap_or_else(|| "Unknown contact".to_owned());
    html! {
        li.conversation data-id=(c.id) {
            a href=(format!("/console/conversations/{}", c.id)) {
                span.line {
                    span.contact-name { (name) }
                    @if e.unread > 0 {
                        span.unread aria-label=(format!("{} unread", e.unread)) { (e.unread) }
                    }
                }
                span.line.small {
                    span.contact-phone { (c.contact.phone.as_deref().unwrap_or("")) }
                    span.channel { (c.channel) }
                    (time(&c.last_message_at))
                }
                span.preview { (e.last_message.as_ref().map(render::preview).unwrap_or_default()) }
            }
        }
    }
}

/// The list, as the page shows it and the script re-fetches it.
fn list(q: &InboxQuery, page: &Page<InboxEntry>) -> Markup {
    html! {
        section #inbox-list data-fragment=(q.fragment_url()) aria-live="polite" {
            @if page.data.is_empty() {
                p #no-conversations {
                    @if q.search().is_some() { "No conversation matches that search." }
                    @else { "No conversations yet. They appear here as soon as someone writes to one of your numbers." }
                }
            } @else {
                ul #conversations {
                    @for e in &page.data { (entry(e)) }
                }
            }
            @if let Some(next) = &page.next_cursor {
                @let mut url = form_urlencoded::Serializer::new(String::new());
                @let _ = q.search().map(|s| url.append_pair("q", s));
                @let href = format!("/console/?{}", url.append_pair("cursor", next).finish());
                p { a #older rel="next" href=(href) { "Older conversations" } }
            }
        }
    }
}

/// `GET /console/`.
pub(super) async fn page(
    State(state): State<AppState>,
    Signed(session): Signed,
    Query(q): Query<InboxQuery>,
) -> Response {
    let entries = match read(&state, &session.principal.tenant_id, &q).await {
        Ok(p) => p,
        Err(refused) => return refused,
    };
    let body = html! {
        main.inbox {
            h1 { "Inbox" }
            form #search method="get" action="/console/" role="search" {
                label for="search-q" { "Search by name or number" }
                input #search-q type="search" name="q" value=[q.search()] autocomplete="off";
                button type="submit" { "Search" }
            }
            (list(&q, &entries))
        }
    };
    page_response(
        StatusCode::OK,
        &shell("Inbox", Some(&session), "inbox", body),
    )
}

/// `GET /console/fragments/inbox`: the list alone.
pub(super) async fn fragment(
    State(state): State<AppState>,
    Signed(session): Signed,
    Query(q): Query<InboxQuery>,
) -> Response {
    match read(&state, &session.principal.tenant_id, &q).await {
        Ok(entries) => layout::fragment_response(&list(&q, &entries)),
        Err(refused) => refused,
    }
}

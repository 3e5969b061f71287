//! The page shell every console page shares, its error pages and its security headers.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};

use super::assets;
use switchboard_router::error::RouterError;
use switchboard_router::tenancy::sessions::OperatorSession;
use switchboard_router::tenancy::tenants::Role;

/// No inline script or style, nothing from elsewhere, no framing; forms post here only.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; img-src 'self'; media-src 'self'; connect-src 'self'; \
    form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// A whole page. `live` names what the script keeps up to date (`inbox`, `thread` or
/// `none`).
pub(super) fn shell(
    title: &str,
    session: Option<&OperatorSession>,
    live: &str,
    main: Markup,
) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Switchboard" }
                link rel="stylesheet" href=(assets::CSS.url());
                script src=(assets::JS.url()) defer {}
            }
            body data-live=(live) {
                a.skip href="#main" { "Skip to content" }
                @if let Some(session) = session {
                    (nav(session))
                }
                div #main { (main) }
            }
        }
    }
}

fn nav(session: &OperatorSession) -> Markup {
    html! {
        nav #nav aria-label="Console" {
            a #nav-inbox href="/console/" { "Inbox" }
            @if session.principal.role == Role::Admin {
                a #nav-accounts href="/console/accounts" { "Accounts" }
            }
            span.role { (session.principal.role.as_str()) }
            form #sign-out method="post" action="/console/sign-out" {
                input type="hidden" name="csrf" value=(session.csrf_token);
                button #sign-out-submit type="submit" { "Sign out" }
            }
        }
    }
}

/// An HTML response with the console's headers: private, never cached (pages show
/// customers' messages), not framed, no other origin's content.
pub(super) fn page_response(status: StatusCode, markup: &Markup) -> Response {
    let mut response = (status, markup.clone().into_string()).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    secure(h);
    response
}

/// The headers every console answer carries.
pub(super) fn secure(h: &mut axum::http::HeaderMap) {
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
}

/// An error page: what went wrong, in words, and a way back.
pub(super) fn error_page(
    status: StatusCode,
    session: Option<&OperatorSession>,
    title: &str,
    detail: &str,
) -> Response {
    let body = html! {
        main.error-page {
            h1 { (title) }
            p { (detail) }
            p { a href="/console/" { "Back to the inbox" } }
        }
    };
    page_response(status, &shell(title, session, "none", body))
}

/// The page for an engine error: its own status for what the request did wrong, 503 for
/// what the server could not do (logged once here).
pub(super) fn router_error(e: &RouterError) -> Response {
    let status = crate::webhooks::error_response(e).status();
    if status.is_server_error() {
        tracing::error!(code = e.code(), error = %e, "A console request failed.");
    }
    let title = match status {
        StatusCode::NOT_FOUND => "Not found",
        StatusCode::FORBIDDEN => "Not allowed",
        s if s.is_server_error() => "Unavailable",
        _ => "Could not do that",
    };
    let detail = if status.is_server_error() {
        "Switchboard cannot reach its database right now. Try again in a moment.".to_owned()
    } else {
        e.to_string()
    };
    error_page(status, None, title, &detail)
}

/// `2026-12-07 14:03 UTC` (the script shows it in the reader's own time zone).
pub(super) fn time(rfc3339: &str) -> Markup {
    let shown = chrono::DateTime::parse_from_rfc3339(rfc3339)
        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|_| rfc3339.to_owned());
    html! { time datetime=(rfc3339) { (shown) } }
}

/// A part of a page the script swaps in, with the page's headers.
pub(super) fn fragment_response(markup: &Markup) -> Response {
    page_response(StatusCode::OK, markup)
}

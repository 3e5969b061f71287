//! The operator console: a web inbox for people, served under `/console/` by the same
//! binary (api.md, "Operator console").
//!
//! Server-rendered HTML (`maud`, escaped by default) with one embedded stylesheet and one
//! small script; every page works without the script, which only adds live updates: it
//! listens to `/console/events` (Server-Sent Events) and re-fetches the part of the page an
//! event changes. A reload always shows the truth from the database.
//!
//! - `session.rs`: sign-in with an API key, the session cookie, CSRF checks.
//! - `layout.rs`: the page shell, error pages, security headers.
//! - `inbox.rs`, `thread.rs`, `accounts.rs`: the pages; `render.rs`: how a message looks.
//! - `events.rs`: the event stream; `assets.rs`: the stylesheet and script.

mod accounts;
mod assets;
mod events;
mod inbox;
mod layout;
mod render;
mod session;
mod thread;

use axum::Router as AxumRouter;
use axum::routing::{get, post};
use tower_http::compression::CompressionLayer;

use crate::AppState;

pub use events::StreamCloser;

/// Largest console form: a reply with one attachment (the largest media kind's limit,
/// documents at 100 MB, is checked again when the file is stored).
pub(crate) const MAX_FORM_BYTES: usize = 100 * 1024 * 1024 + 64 * 1024;

/// Every console route but the reply (which takes attachments: [`upload_routes`]). Pages,
/// fragments and assets are gzipped for browsers that ask (an inbox page is mostly
/// repeated markup); stored files and the event stream are not (files are mostly
/// compressed already, and a compressed stream would hold events back).
pub(crate) fn routes() -> AxumRouter<AppState> {
    let pages = AxumRouter::new()
        .route("/console", get(session::to_console))
        .route("/console/", get(inbox::page))
        .route(
            "/console/sign-in",
            get(session::sign_in_page).post(session::sign_in),
        )
        .route("/console/sign-out", post(session::sign_out))
        .route("/console/fragments/inbox", get(inbox::fragment))
        .route("/console/conversations/{id}", get(thread::page))
        .route(
            "/console/conversations/{id}/messages",
            get(thread::fragment),
        )
        .route(
            "/console/conversations/{id}/template",
            post(thread::send_template),
        )
        .route(
            "/console/accounts",
            get(accounts::page).post(accounts::connect),
        )
        .route("/console/accounts/{id}/verify", post(accounts::verify))
        .route(
            "/console/accounts/{id}/disconnect",
            post(accounts::disconnect),
        )
        .route("/console/assets/{file}", get(assets::serve))
        .layer(CompressionLayer::new().gzip(true));
    AxumRouter::new()
        .merge(pages)
        .route("/console/media/{id}", get(thread::media))
        .route("/console/events", get(events::stream))
}

/// The reply form, which carries an attachment.
pub(crate) fn upload_routes() -> AxumRouter<AppState> {
    AxumRouter::new().route("/console/conversations/{id}/reply", post(thread::reply))
}

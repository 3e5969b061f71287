//! `GET /console/events`: the session tenant's committed events as Server-Sent Events,
//! which the page's script turns into a re-fetch of what changed.
//!
//! A page hears every process's changes: this process's as they commit and, on PostgreSQL,
//! the other processes' on the same database through the engine's relay
//! (`switchboard_router::events::relay`, running with the workers).
//! Streams end when the server begins to stop ([`StreamCloser`]), so a graceful shutdown
//! does not wait for browsers to leave.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::{Stream, StreamExt};
use serde::Deserialize;
use switchboard_router::events::{Change, ChangeKind};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::watch;

use super::layout;
use super::session::Signed;
use crate::AppState;

/// Ends every open event stream when the server begins to stop.
#[derive(Clone, Debug)]
pub struct StreamCloser {
    closed: watch::Sender<bool>,
}

impl Default for StreamCloser {
    fn default() -> Self {
        Self {
            closed: watch::channel(false).0,
        }
    }
}

impl StreamCloser {
    pub fn close(&self) {
        self.closed.send_replace(true);
    }

    async fn closed(mut rx: watch::Receiver<bool>) {
        // An error means the sender is gone: nothing will close the stream but the client.
        if rx.wait_for(|closed| *closed).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

#[derive(Deserialize)]
pub(super) struct StreamQuery {
    /// Only this conversation's events (a thread page).
    conversation: Option<String>,
}

/// The change's name and data for the page, when it concerns `conversation` (or any
/// conversation when `None`).
fn to_event(change: &Change, conversation: Option<&str>) -> Option<Event> {
    let name = match change.kind {
        ChangeKind::Message => "message",
        ChangeKind::Status => "status",
        ChangeKind::Account => "account",
        ChangeKind::Resync => return Some(resync()),
    };
    if let Some(wanted) = conversation
        && (change.kind == ChangeKind::Account || change.subject != wanted)
    {
        return None;
    }
    let data = serde_json::json!({"conversation_id": change.subject});
    Some(Event::default().event(name).data(data.to_string()))
}

/// Tells the page it may have missed changes: it reloads what it shows.
fn resync() -> Event {
    Event::default().event("resync").data("{}")
}

/// `GET /console/events`.
pub(super) async fn stream(
    State(state): State<AppState>,
    Signed(session): Signed,
    Query(q): Query<StreamQuery>,
) -> Response {
    let tenant = session.principal.tenant_id;
    let events = state.router.changes();
    let closed = StreamCloser::closed(state.stream_closer.closed.subscribe());
    let stream = futures::stream::unfold(events, move |mut events| {
        let tenant = tenant.clone();
        let conversation = q.conversation.clone();
        async move {
            loop {
                match events.recv().await {
                    Ok(e) if e.concerns(&tenant) => {
                        if let Some(event) = to_event(&e, conversation.as_deref()) {
                            return Some((Ok::<_, Infallible>(event), events));
                        }
                    }
                    Ok(_) => {}
                    // Missed events: the page reloads what it shows.
                    Err(RecvError::Lagged(_)) => {
                        return Some((Ok(resync()), events));
                    }
                    Err(RecvError::Closed) => return None,
                }
            }
        }
    });
    let stream: std::pin::Pin<Box<dyn Stream<Item = Result<Event, Infallible>> + Send>> =
        Box::pin(stream.take_until(closed));
    let mut response = Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response();
    layout::secure(response.headers_mut());
    response
}

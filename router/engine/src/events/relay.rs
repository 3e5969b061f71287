//! Carries [`Change`]s between the processes on one PostgreSQL database, so that a console
//! page hears what any of them stored, whichever process serves the page (README, "Several
//! instances"). On SQLite one process serves a file's consoles: there is nothing to carry.
//!
//! - Out: this process's committed events, as changes, gathered for [`GATHER`] and sent with
//!   `pg_notify` on [`CHANNEL`], each notification under PostgreSQL's 8,000-byte payload
//!   limit. Gathering bounds the statements this costs under load (a few per `GATHER`), not
//!   one per webhook.
//! - In: a `LISTEN` connection of its own (outside the store's pool); another process's
//!   changes go to this process's live views ([`super::EventBus::changes`]).
//!
//! Delivery is best effort, like the views it feeds; nothing durable passes here. What may
//! have been lost becomes a resync, on which the views reload: a listening connection that
//! was lost, or events this process fell too far behind to send.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use sea_orm::sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use sea_orm::{ConnectionTrait, DatabaseBackend, Statement};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::watch;

use super::{Change, EventBus, RouterEvent};
use crate::store::Store;

/// The PostgreSQL notification channel.
pub const CHANNEL: &str = "switchboard_changes";

/// How long the relay gathers this process's changes before it sends them.
const GATHER: Duration = Duration::from_millis(50);

/// The most one notification carries: PostgreSQL refuses payloads of 8,000 bytes or more.
const MAX_PAYLOAD: usize = 7_900;

/// How long the listener waits before connecting again, at most.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// One notification: who sent it, and what changed there.
#[derive(Debug, Serialize, Deserialize)]
struct Notice {
    /// The sending process ([`Relay::origin`]): a process ignores its own.
    #[serde(rename = "o")]
    origin: String,
    #[serde(rename = "c")]
    changes: Vec<Change>,
}

/// The relay of one process (see the module documentation).
pub(crate) struct Relay {
    store: Store,
    events: Arc<EventBus>,
    origin: String,
}

impl Relay {
    pub(crate) fn new(store: Store, events: Arc<EventBus>) -> Self {
        Self {
            store,
            events,
            origin: crate::ids::new_id("prc"),
        }
    }

    /// Relays until `shutdown` turns true; returns at once on SQLite.
    pub(crate) async fn run(&self, shutdown: watch::Receiver<bool>) {
        if self.store.backend() != DatabaseBackend::Postgres {
            return;
        }
        let options = self
            .store
            .conn()
            .get_postgres_connection_pool()
            .connect_options();
        tokio::join!(self.send(shutdown.clone()), self.listen(&options, shutdown));
    }

    /// Sends this process's changes, [`GATHER`]ed, until shutdown.
    async fn send(&self, mut shutdown: watch::Receiver<bool>) {
        let mut events = self.events.subscribe();
        loop {
            let first = tokio::select! {
                () = stopping(&mut shutdown) => return,
                first = events.recv() => first,
            };
            let mut gathered = Gathered::default();
            match first {
                Ok(event) => gathered.add(&event),
                Err(RecvError::Lagged(_)) => gathered.missed = true,
                Err(RecvError::Closed) => return,
            }
            tokio::select! {
                () = stopping(&mut shutdown) => {}
                () = tokio::time::sleep(GATHER) => {}
            }
            loop {
                match events.try_recv() {
                    Ok(event) => gathered.add(&event),
                    Err(TryRecvError::Lagged(_)) => gathered.missed = true,
                    Err(TryRecvError::Empty | TryRecvError::Closed) => break,
                }
            }
            for payload in gathered.payloads(&self.origin) {
                let notify = Statement::from_sql_and_values(
                    DatabaseBackend::Postgres,
                    "SELECT pg_notify($1, $2)",
                    [CHANNEL.into(), payload.into()],
                );
                if let Err(e) = self.store.conn().execute_raw(notify).await {
                    tracing::warn!(error = %e, "Could not tell other processes of changes.");
                    break;
                }
            }
        }
    }

    /// Hears the other processes' changes until shutdown, connecting again whenever the
    /// connection is lost.
    async fn listen(&self, options: &PgConnectOptions, mut shutdown: watch::Receiver<bool>) {
        // A pool of one connection of its own (the store's options, outside its pool):
        // listening holds it for good.
        let own = PgPoolOptions::new()
            .max_connections(1)
            .connect_lazy_with(options.clone());
        let mut backoff = Duration::from_millis(100);
        let mut connected_before = false;
        loop {
            let connect = async {
                let mut listener = PgListener::connect_with(&own).await?;
                listener.listen(CHANNEL).await?;
                Ok::<_, sea_orm::sqlx::Error>(listener)
            };
            let connected = tokio::select! {
                () = stopping(&mut shutdown) => return,
                connected = connect => connected,
            };
            let mut listener = match connected {
                Ok(listener) => listener,
                Err(e) => {
                    tracing::warn!(error = %e, "Cannot listen for other processes' changes; trying again.");
                    tokio::select! {
                        () = stopping(&mut shutdown) => return,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            };
            backoff = Duration::from_millis(100);
            if connected_before {
                // Whatever was sent while no connection listened is lost.
                self.events.publish_changes([Change::resync_all()]);
            }
            connected_before = true;
            loop {
                let next = tokio::select! {
                    () = stopping(&mut shutdown) => return,
                    next = listener.try_recv() => next,
                };
                match next {
                    Ok(Some(notification)) => self.heard(notification.payload()),
                    // The connection was lost; the listener connects again on the next call.
                    Ok(None) => self.events.publish_changes([Change::resync_all()]),
                    Err(e) => {
                        tracing::warn!(error = %e, "Lost the connection that hears other processes' changes.");
                        break;
                    }
                }
            }
        }
    }

    /// A notification on [`CHANNEL`]: another process's changes reach this one's views. Any
    /// other payload (something else notifying on the channel) is ignored.
    fn heard(&self, payload: &str) {
        // This process's own notices come back too: known by their first bytes (`origin` is
        // the notice's first field), they are not parsed.
        if payload
            .strip_prefix("{\"o\":\"")
            .and_then(|rest| rest.strip_prefix(self.origin.as_str()))
            .is_some_and(|rest| rest.starts_with('"'))
        {
            return;
        }
        match serde_json::from_str::<Notice>(payload) {
            Ok(notice) if notice.origin != self.origin => {
                self.events.publish_changes(notice.changes);
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(error = %e, "Ignored a notification that is not a change."),
        }
    }
}

/// Resolves once `shutdown` is true, or its sender is gone.
async fn stopping(shutdown: &mut watch::Receiver<bool>) {
    // An error means the sender is gone, which stops the workers too.
    shutdown.wait_for(|stop| *stop).await.ok();
}

/// This process's changes of one gathering, each once, in order.
#[derive(Default)]
struct Gathered {
    changes: Vec<Change>,
    seen: HashSet<Change>,
    /// Events were missed: the others resync instead.
    missed: bool,
}

impl Gathered {
    fn add(&mut self, event: &RouterEvent) {
        let change = Change::of(event);
        if self.seen.insert(change.clone()) {
            self.changes.push(change);
        }
    }

    /// The notifications' payloads, each under [`MAX_PAYLOAD`] bytes.
    fn payloads(self, origin: &str) -> Vec<String> {
        let changes = if self.missed {
            vec![Change::resync_all()]
        } else {
            self.changes
        };
        let mut payloads = Vec::new();
        let mut notice = Notice {
            origin: origin.to_owned(),
            changes: Vec::new(),
        };
        // The notice's own bytes, then each change's and its comma.
        let empty = serde_json::to_string(&notice).map_or(0, |s| s.len());
        let mut size = empty;
        for change in changes {
            let len = serde_json::to_string(&change).map_or(0, |s| s.len()) + 1;
            if !notice.changes.is_empty() && size + len > MAX_PAYLOAD {
                payloads.extend(serde_json::to_string(&notice).ok());
                notice.changes.clear();
                size = empty;
            }
            size += len;
            notice.changes.push(change);
        }
        if !notice.changes.is_empty() {
            payloads.extend(serde_json::to_string(&notice).ok());
        }
        payloads
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_core::MessageStatus;

    fn status(conversation: usize) -> RouterEvent {
        RouterEvent::StatusChanged {
            tenant_id: "ten_1".into(),
            message_id: format!("msg_{conversation}"),
            conversation_id: format!("cnv_{conversation:040}"),
            status: MessageStatus::Delivered,
        }
    }

    #[test]
    fn payloads_stay_under_the_limit_and_carry_each_change_once() {
        let mut gathered = Gathered::default();
        for i in 0..1_000 {
            gathered.add(&status(i));
            gathered.add(&status(i));
        }
        let payloads = gathered.payloads("prc_1");
        assert!(payloads.len() > 1, "{}", payloads.len());
        let mut heard = Vec::new();
        for payload in &payloads {
            assert!(payload.len() < MAX_PAYLOAD, "{}", payload.len());
            let notice: Notice = serde_json::from_str(payload).unwrap();
            assert_eq!(notice.origin, "prc_1");
            heard.extend(notice.changes.into_iter().map(|c| c.subject));
        }
        let expected: Vec<String> = (0..1_000).map(|i| format!("cnv_{i:040}")).collect();
        assert_eq!(heard, expected);
    }

    #[test]
    fn missed_events_are_one_resync_for_every_tenant() {
        let mut gathered = Gathered::default();
        gathered.add(&status(1));
        gathered.missed = true;
        let payloads = gathered.payloads("prc_1");
        assert_eq!(payloads.len(), 1);
        let notice: Notice = serde_json::from_str(&payloads[0]).unwrap();
        assert_eq!(notice.changes, vec![Change::resync_all()]);
        assert!(notice.changes[0].concerns("ten_1") && notice.changes[0].concerns("ten_2"));
    }

    #[test]
    fn a_process_knows_its_own_notices_without_parsing_them() {
        let payload = &Gathered {
            changes: vec![Change::of(&status(1))],
            ..Gathered::default()
        }
        .payloads("prc_1")[0];
        assert!(payload.starts_with("{\"o\":\"prc_1\","), "{payload}");
    }

    #[test]
    fn nothing_gathered_sends_nothing() {
        assert!(Gathered::default().payloads("prc_1").is_empty());
    }
}

//! Monitors: liveness with the database, per-account channel health, Prometheus metrics.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router as AxumRouter};
use serde_json::json;
use switchboard_core::{HealthReport, HealthStatus};

use super::AppState;
use switchboard_router::tenancy::accounts::AccountView;

/// How long channel health results are reused, so monitors polling every few seconds do not
/// hammer providers.
const CHANNEL_HEALTH_TTL: Duration = Duration::from_secs(30);

#[derive(Clone, Default)]
pub(crate) struct ChannelHealthCache {
    last: Arc<Mutex<Option<(Instant, serde_json::Value, bool)>>>,
    /// Each account's status at the last check, so a change is logged once, not every poll.
    statuses: Arc<Mutex<HashMap<String, HealthStatus>>>,
}

impl ChannelHealthCache {
    /// The body of the last `/health/channels` check, however old (the console shows it).
    pub(crate) fn last_report(&self) -> Option<serde_json::Value> {
        self.last
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map(|(_, body, _)| body.clone())
    }

    /// Records this check's statuses and returns the accounts whose status changed since the
    /// last one (a new account counts as changed unless it is up).
    fn changes<'a>(
        &self,
        reports: &'a [(AccountView, HealthReport)],
    ) -> Vec<&'a (AccountView, HealthReport)> {
        let mut statuses = self.statuses.lock().unwrap_or_else(PoisonError::into_inner);
        let previous = std::mem::take(&mut *statuses);
        reports
            .iter()
            .filter(|(account, report)| {
                statuses.insert(account.id.clone(), report.status);
                match previous.get(&account.id) {
                    Some(before) => *before != report.status,
                    None => report.status != HealthStatus::Up,
                }
            })
            .collect()
    }

    /// Logs each account whose status changed since the last check: `warn` when it is no
    /// longer up (with the reason), `info` when it is up again. A monitor polling an
    /// account that stays down adds nothing to the log.
    fn log_changes(&self, reports: &[(AccountView, HealthReport)]) {
        for (account, report) in self.changes(reports) {
            let detail = report.detail.as_deref().unwrap_or("");
            if report.status == HealthStatus::Up {
                tracing::info!(account_id = %account.id, channel = %account.channel, "Channel account is up again.");
            } else {
                tracing::warn!(
                    account_id = %account.id,
                    channel = %account.channel,
                    status = report.status.as_str(),
                    detail,
                    "Channel account is not up."
                );
            }
        }
    }
}

pub(super) fn routes() -> AxumRouter<AppState> {
    AxumRouter::new()
        .route("/health", get(health))
        .route("/health/channels", get(channels))
        .route("/metrics", get(metrics))
}

/// How long `/health` waits for the database before it answers 503: monitors time out too.
const DATABASE_PING_WITHIN: Duration = Duration::from_secs(1);

async fn health(State(state): State<AppState>) -> Response {
    let store = state.router.store();
    let unavailable = |detail: &str| {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "unavailable", "detail": detail})),
        )
            .into_response()
    };
    if !store.ping(DATABASE_PING_WITHIN).await {
        unavailable("the database cannot be reached")
    } else if store.writes_failing() {
        unavailable("writes to the database fail")
    } else {
        (StatusCode::OK, Json(json!({"status": "ok"}))).into_response()
    }
}

async fn channels(State(state): State<AppState>) -> Response {
    let cached = state
        .health_cache
        .last
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
        .filter(|(at, _, _)| at.elapsed() < CHANNEL_HEALTH_TTL);
    let (body, all_up) = match cached {
        Some((_, body, up)) => (body, up),
        None => {
            let (body, up) = check_all(&state).await;
            *state
                .health_cache
                .last
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some((Instant::now(), body.clone(), up));
            (body, up)
        }
    };
    let status = if all_up {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

async fn check_all(state: &AppState) -> (serde_json::Value, bool) {
    let reports = match state.router.accounts().check_all().await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "Could not read the accounts to check their channels.");
            return (
                json!({"status": "down", "detail": e.to_string(), "accounts": []}),
                false,
            );
        }
    };
    state.health_cache.log_changes(&reports);
    let mut worst = HealthStatus::Up;
    let accounts: Vec<serde_json::Value> = reports
        .into_iter()
        .map(|(account, report)| {
            worst = match (worst, report.status) {
                (HealthStatus::Down, _) | (_, HealthStatus::Down) => HealthStatus::Down,
                (HealthStatus::Degraded, _) | (_, HealthStatus::Degraded) => HealthStatus::Degraded,
                _ => HealthStatus::Up,
            };
            json!({
                "account_id": account.id,
                "channel": account.channel,
                "address": account.address,
                "status": report.status.as_str(),
                "latency_ms": u64::try_from(report.latency.as_millis()).unwrap_or(u64::MAX),
                // The API's timestamp format (`created_at` and the rest).
                "checked_at": switchboard_router::ids::rfc3339(report.checked_at.timestamp_millis()),
                "detail": report.detail,
            })
        })
        .collect();
    (
        json!({"status": worst.as_str(), "accounts": accounts}),
        worst == HealthStatus::Up,
    )
}

async fn metrics(State(state): State<AppState>) -> Response {
    if let Ok(depth) = state.router.delivery().queue_depth().await {
        #[allow(clippy::cast_precision_loss)]
        metrics::gauge!("switchboard_queue_depth").set(depth as f64);
    }
    if let Ok(accounts) = state.router.accounts().reported_states().await {
        for (account, reported) in accounts {
            let labels = [("account_id", account.id), ("channel", account.channel)];
            metrics::gauge!("switchboard_account_quality", &labels)
                .set(f64::from(reported.quality.gauge()));
            #[allow(clippy::cast_precision_loss)]
            metrics::gauge!("switchboard_account_restrictions", &labels)
                .set(reported.restrictions.len() as f64);
        }
    }
    match &state.metrics {
        Some(handle) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            handle.render(),
        )
            .into_response(),
        None => super::errors::json_error(
            StatusCode::NOT_FOUND,
            "metrics_disabled",
            "metrics are not enabled in this process",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(id: &str, status: HealthStatus) -> (AccountView, HealthReport) {
        (
            AccountView {
                id: id.to_owned(),
                channel: "fake".into(),
                address: "+14155238886".into(),
                active: true,
                rate_per_second: None,
                credential_names: Vec::new(),
                created_at: String::new(),
                disconnected_at: None,
                state: Default::default(),
            },
            HealthReport {
                status,
                latency: Duration::ZERO,
                checked_at: chrono::Utc::now(),
                detail: None,
                quality: None,
                messaging_limit: None,
            },
        )
    }

    fn changed(cache: &ChannelHealthCache, reports: &[(AccountView, HealthReport)]) -> Vec<String> {
        cache
            .changes(reports)
            .into_iter()
            .map(|(a, r)| format!("{} {}", a.id, r.status.as_str()))
            .collect()
    }

    #[test]
    fn only_changes_of_state_are_reported() {
        let cache = ChannelHealthCache::default();
        let (up, down) = (HealthStatus::Up, HealthStatus::Down);
        // First check: an account that is up says nothing, one that is down does.
        assert_eq!(
            changed(&cache, &[report("a", up), report("b", down)]),
            ["b down"]
        );
        // Polled again and again while nothing changes: nothing.
        for _ in 0..3 {
            assert!(changed(&cache, &[report("a", up), report("b", down)]).is_empty());
        }
        assert_eq!(
            changed(
                &cache,
                &[report("a", HealthStatus::Degraded), report("b", up)]
            ),
            ["a degraded", "b up"]
        );
        // A disconnected account is forgotten: back and down, it is news again.
        assert!(changed(&cache, &[report("a", HealthStatus::Degraded)]).is_empty());
        assert_eq!(changed(&cache, &[report("b", down)]), ["b down"]);
    }
}

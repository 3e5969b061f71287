//! Monitors: liveness with the database, per-account channel health, Prometheus metrics.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router as AxumRouter};
use serde_json::json;
use switchboard_core::HealthStatus;

use super::AppState;

/// How long channel health results are reused, so monitors polling every few seconds do not
/// hammer providers.
const CHANNEL_HEALTH_TTL: Duration = Duration::from_secs(30);

#[derive(Clone, Default)]
pub(crate) struct ChannelHealthCache {
    last: Arc<Mutex<Option<(Instant, serde_json::Value, bool)>>>,
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
    let reports = match state.router.check_all_accounts().await {
        Ok(r) => r,
        Err(e) => {
            return (
                json!({"status": "down", "detail": e.to_string(), "accounts": []}),
                false,
            );
        }
    };
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
                "checked_at": report.checked_at.to_rfc3339(),
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
    if let Ok(depth) = state.router.queue_depth().await {
        #[allow(clippy::cast_precision_loss)]
        metrics::gauge!("switchboard_queue_depth").set(depth as f64);
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

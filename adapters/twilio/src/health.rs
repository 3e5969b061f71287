//! Account health: `GET /2010-04-01/Accounts/{sid}.json`.
//!
//! `Up` when the account is `active`; `Down` when the credentials are refused or the
//! account is `suspended`/`closed` (the account must be fixed) or Twilio cannot be reached
//! (`unreachable: …` with the cause, as on every channel: nothing can be sent); `Degraded`
//! when Twilio is slow (over 2 s) or erroring (429, 5xx).

use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::Value;
use switchboard_core::{AccountContext, HealthReport, HealthStatus};

use crate::config::{TwilioConfig, credentials, is_sid};
use crate::errors::describe_transport;
use crate::send::{error_body, get};

/// A health check slower than this is `Degraded`.
pub const SLOW_HEALTH_CHECK: Duration = Duration::from_secs(2);

pub(crate) async fn check_health(
    http: &reqwest::Client,
    config: &TwilioConfig,
    account: &AccountContext,
) -> HealthReport {
    let started = Instant::now();
    let report = |status, detail: String| HealthReport {
        status,
        latency: started.elapsed(),
        checked_at: Utc::now(),
        detail: Some(detail),
        quality: None,
        messaging_limit: None,
    };
    let (sid, token) = match credentials(account) {
        Ok(c) => c,
        Err(e) => return report(HealthStatus::Down, e.message().to_owned()),
    };
    if !is_sid(sid, "AC") {
        return report(
            HealthStatus::Down,
            "account_sid is not a Twilio account SID".into(),
        );
    }
    let url = format!("{}/2010-04-01/Accounts/{sid}.json", config.api_base());
    let answer = match get(http, &url, sid, token).await {
        Ok(a) => a,
        Err(e) => {
            return HealthReport::unreachable(
                started.elapsed(),
                describe_transport(&e.without_url()),
            );
        }
    };
    let latency = started.elapsed();
    let code_msg = || {
        let b = error_body(&answer.body);
        match b.code {
            Some(code) => format!(
                "HTTP {}, error {code}: {}",
                answer.status,
                b.message.unwrap_or_default()
            ),
            None => format!("HTTP {}", answer.status),
        }
    };
    let (status, detail) = match answer.status {
        200..=299 => {
            let account_status = answer
                .body
                .get("status")
                .and_then(Value::as_str)
                .unwrap_or("unknown");
            match account_status {
                "active" if latency > SLOW_HEALTH_CHECK => (
                    HealthStatus::Degraded,
                    format!("account active, but Twilio took {} ms", latency.as_millis()),
                ),
                "active" => (HealthStatus::Up, "account active".to_owned()),
                other => (HealthStatus::Down, format!("account {other}")),
            }
        }
        401 | 403 => (
            HealthStatus::Down,
            format!("credentials refused ({})", code_msg()),
        ),
        429 | 500..=599 => (
            HealthStatus::Degraded,
            format!("Twilio error ({})", code_msg()),
        ),
        _ => (
            HealthStatus::Down,
            format!("unexpected answer ({})", code_msg()),
        ),
    };
    HealthReport {
        status,
        latency,
        checked_at: Utc::now(),
        detail: Some(detail),
        quality: None,
        messaging_limit: None,
    }
}

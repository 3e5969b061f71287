//! Health: the phone-number node's `health_status`, quality rating, messaging limit tier
//! and status (§7.1, §7.2); the rating and tier also go back in the report for the account.
//!
//! BLOCKED, refused credentials, other 4xx and an unreachable Graph API (`unreachable: …`,
//! as on every channel) are `Down`; LIMITED, YELLOW/RED quality,
//! 5xx and slow answers are `Degraded`. The detail carries Meta's reason, never the token.

use std::time::{Duration, Instant};

use chrono::Utc;
use switchboard_core::{AccountContext, HealthReport, HealthStatus};

use crate::config::MetaConfig;
use crate::errors::{self, Class};
use crate::send::account_keys;
use crate::wire;

/// Fields read from the phone-number node.
pub(crate) const FIELDS: &str = "health_status,quality_rating,messaging_limit_tier,status,throughput,name_status,display_phone_number,verified_name";
/// Slower than this is degraded even when Meta says all is well.
const SLOW: Duration = Duration::from_secs(2);

fn report(status: HealthStatus, latency: Duration, detail: String) -> HealthReport {
    HealthReport {
        status,
        latency,
        checked_at: Utc::now(),
        detail: Some(detail),
        quality: None,
        messaging_limit: None,
    }
}

pub(crate) async fn check(
    client: &reqwest::Client,
    config: &MetaConfig,
    account: &AccountContext,
) -> HealthReport {
    let (phone_number_id, token) = match account_keys(account) {
        Ok(k) => k,
        Err(e) => return report(HealthStatus::Down, Duration::ZERO, e.to_string()),
    };
    let started = Instant::now();
    let sent = client
        // `fields` is a constant of safe characters, so no query encoder is needed.
        .get(format!(
            "{}?fields={FIELDS}",
            config.node_url(phone_number_id)
        ))
        .bearer_auth(token)
        .send()
        .await;
    let resp = match sent {
        Ok(r) => r,
        Err(e) => {
            let e = e.without_url();
            let what = if e.is_timeout() {
                "the Graph API did not answer in time"
            } else {
                "could not connect to the Graph API"
            };
            return HealthReport::unreachable(
                started.elapsed(),
                format!("{what}: {}", switchboard_core::error_with_sources(&e)),
            );
        }
    };
    let status = resp.status().as_u16();
    let body = resp.bytes().await.unwrap_or_default();
    let latency = started.elapsed();
    if !(200..300).contains(&status) {
        return from_error(status, &body, latency);
    }
    match serde_json::from_slice::<wire::PhoneNode>(&body) {
        Ok(node) => from_node(&node, latency),
        Err(e) => report(
            HealthStatus::Degraded,
            latency,
            format!("unreadable phone number node: {e}"),
        ),
    }
}

fn from_error(status: u16, body: &[u8], latency: Duration) -> HealthReport {
    let envelope = errors::graph_error(body);
    let class = envelope
        .as_ref()
        .and_then(|e| e.code.as_deref()?.parse::<u64>().ok())
        .map(errors::classify_code);
    let detail = envelope.as_ref().map_or_else(
        || format!("HTTP {status} from the Graph API"),
        errors::describe,
    );
    let health = match class {
        Some(Class::Auth) => HealthStatus::Down,
        Some(Class::RateLimited | Class::PairRateLimited | Class::Transient) => {
            HealthStatus::Degraded
        }
        _ if status >= 500 || status == 429 => HealthStatus::Degraded,
        _ => HealthStatus::Down,
    };
    let detail = if class == Some(Class::Auth) {
        format!("credentials refused: {detail}")
    } else {
        detail
    };
    report(health, latency, detail)
}

fn from_node(node: &wire::PhoneNode, latency: Duration) -> HealthReport {
    let health = node.health_status.as_ref();
    let can_send = health
        .and_then(|h| h.can_send_message.as_deref())
        .unwrap_or("UNKNOWN");
    let quality = node.quality_rating.as_deref().unwrap_or("UNKNOWN");
    let mut parts = vec![
        format!("can_send_message={can_send}"),
        format!("quality={quality}"),
    ];
    if let Some(s) = &node.status {
        parts.push(format!("status={s}"));
    }
    if let Some(s) = &node.name_status {
        parts.push(format!("name_status={s}"));
    }
    if let Some(level) = node.throughput.as_ref().and_then(|t| t.level.as_deref()) {
        parts.push(format!("throughput={level}"));
    }
    // Meta's reasons: additional_info for LIMITED entities, errors for BLOCKED ones.
    for entity in health.map(|h| h.entities.as_slice()).unwrap_or_default() {
        let name = entity.entity_type.as_deref().unwrap_or("ENTITY");
        for info in &entity.additional_info {
            parts.push(format!("{name}: {info}"));
        }
        for e in &entity.errors {
            let mut s = format!(
                "{name} error {}: {}",
                e.error_code.as_deref().unwrap_or("?"),
                e.error_description.as_deref().unwrap_or("")
            );
            if let Some(fix) = &e.possible_solution {
                s.push_str(&format!(" (fix: {fix})"));
            }
            parts.push(s);
        }
    }
    let mut status = match can_send {
        "BLOCKED" => HealthStatus::Down,
        "LIMITED" => HealthStatus::Degraded,
        _ => HealthStatus::Up,
    };
    if status == HealthStatus::Up && matches!(quality, "YELLOW" | "RED") {
        status = HealthStatus::Degraded;
    }
    if status == HealthStatus::Up && latency > SLOW {
        status = HealthStatus::Degraded;
        parts.push(format!("slow: {} ms", latency.as_millis()));
    }
    HealthReport {
        quality: node.quality_rating.clone(),
        messaging_limit: node.messaging_limit_tier.clone(),
        ..report(status, latency, parts.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(json: &str) -> wire::PhoneNode {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn quality_and_latency_degrade() {
        let n =
            node(r#"{"health_status":{"can_send_message":"AVAILABLE"},"quality_rating":"YELLOW"}"#);
        assert_eq!(from_node(&n, Duration::ZERO).status, HealthStatus::Degraded);
        let n = node(r#"{"health_status":{"can_send_message":"AVAILABLE"},"quality_rating":"NA"}"#);
        assert_eq!(from_node(&n, Duration::ZERO).status, HealthStatus::Up);
        let slow = from_node(&n, Duration::from_secs(3));
        assert_eq!(slow.status, HealthStatus::Degraded);
        assert!(slow.detail.unwrap().contains("slow"));
    }

    #[test]
    fn errors_map_to_down_or_degraded() {
        let auth = br#"{"error":{"message":"Invalid OAuth access token","type":"OAuthException","code":190}}"#;
        assert_eq!(
            from_error(401, auth, Duration::ZERO).status,
            HealthStatus::Down
        );
        assert_eq!(
            from_error(503, b"", Duration::ZERO).status,
            HealthStatus::Degraded
        );
        assert_eq!(
            from_error(404, b"", Duration::ZERO).status,
            HealthStatus::Down
        );
    }
}

//! The HELP text of every metric `/metrics` serves, in one place. Prometheus tooling
//! (`promtool check metrics`) expects a `# HELP` line for each metric; a metric recorded
//! anywhere in the router must be described here (a test checks the sources).

use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};

/// Every metric: (name, kind, help). Labels are named in the help.
pub const METRICS: &[(&str, MetricKind, &str)] = &[
    (
        "switchboard_webhooks_received_total",
        MetricKind::Counter,
        "Provider webhooks accepted and stored (by channel).",
    ),
    (
        "switchboard_webhooks_duplicate_total",
        MetricKind::Counter,
        "Accepted webhooks that were redeliveries of events already stored (by channel).",
    ),
    (
        "switchboard_webhooks_rejected_total",
        MetricKind::Counter,
        "Provider webhooks refused (by channel and reason: signature, format, unknown number, ...).",
    ),
    (
        "switchboard_messages_sent_total",
        MetricKind::Counter,
        "Outbound messages the provider accepted (by channel).",
    ),
    (
        "switchboard_fallbacks_total",
        MetricKind::Counter,
        "Outbound messages sent on to their next fallback channel because the recipient could not be reached on the previous one (by from and to channel).",
    ),
    (
        "switchboard_read_receipts_total",
        MetricKind::Counter,
        "Inbound messages marked read at the provider (by channel, and whether a typing indicator was shown).",
    ),
    (
        "switchboard_messages_failed_total",
        MetricKind::Counter,
        "Outbound messages that finally failed (by channel).",
    ),
    (
        "switchboard_messages_retried_total",
        MetricKind::Counter,
        "Outbound sends rescheduled after a transient provider error (by channel).",
    ),
    (
        "switchboard_send_latency_seconds",
        MetricKind::Histogram,
        "Duration of each provider send request (by channel).",
    ),
    (
        "switchboard_rate_limit_waits_total",
        MetricKind::Counter,
        "Sends delayed to keep a sender within its rate (by channel).",
    ),
    (
        "switchboard_recipient_paced_total",
        MetricKind::Counter,
        "Sends rescheduled to keep within the provider's per-recipient pacing (by channel).",
    ),
    (
        "switchboard_queue_depth",
        MetricKind::Gauge,
        "Outbound messages waiting in the outbox, read at each scrape.",
    ),
    (
        "switchboard_account_quality",
        MetricKind::Gauge,
        "Each active account's quality rating as its provider reports it (by account_id, channel): 3 green, 2 yellow, 1 red, 0 unknown; read at each scrape.",
    ),
    (
        "switchboard_account_restrictions",
        MetricKind::Gauge,
        "Restrictions and bans the provider reports on each active account (by account_id, channel); read at each scrape.",
    ),
    (
        "switchboard_prices_collected_total",
        MetricKind::Counter,
        "Final messages whose price was fetched from the provider and stored (by channel).",
    ),
    (
        "switchboard_media_stored_total",
        MetricKind::Counter,
        "Inbound media items fetched from the provider and stored (by channel).",
    ),
    (
        "switchboard_media_failed_total",
        MetricKind::Counter,
        "Inbound media items that could not be fetched or stored.",
    ),
    (
        "switchboard_statuses_reconciled_total",
        MetricKind::Counter,
        "Stuck messages whose status was asked from the provider and applied (by channel).",
    ),
    (
        "switchboard_inbound_batch_splits_total",
        MetricKind::Counter,
        "Inbound webhook batches that failed as a whole and whose webhooks were stored again one at a time.",
    ),
    (
        "switchboard_http_refusals_total",
        MetricKind::Counter,
        "HTTP refusals by status: 408 (request not finished in time), 413 (body over the limit), 503 (connection over SWITCHBOARD_MAX_CONNECTIONS).",
    ),
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricKind {
    Counter,
    Gauge,
    Histogram,
}

/// Registers the description of every metric with the installed recorder; call once
/// after installing it.
pub fn describe_metrics() {
    for &(name, kind, help) in METRICS {
        match kind {
            MetricKind::Counter => describe_counter!(name, Unit::Count, help),
            MetricKind::Gauge => describe_gauge!(name, Unit::Count, help),
            MetricKind::Histogram => describe_histogram!(name, Unit::Seconds, help),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    /// Every `counter!`/`gauge!`/`histogram!` name used in the sources under `dir`.
    fn recorded_names(dir: &Path, out: &mut Vec<(String, MetricKind)>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                recorded_names(&path, out);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for (macro_name, kind) in [
                ("counter!(", MetricKind::Counter),
                ("gauge!(", MetricKind::Gauge),
                ("histogram!(", MetricKind::Histogram),
            ] {
                for (at, _) in text.match_indices(macro_name) {
                    if text[..at].ends_with("describe_") {
                        continue;
                    }
                    let rest = text[at + macro_name.len()..].trim_start();
                    let name = rest
                        .strip_prefix('"')
                        .and_then(|quoted| quoted.split('"').next())
                        .unwrap_or_default();
                    let is_name = !name.is_empty()
                        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                    if is_name {
                        out.push((name.to_owned(), kind));
                    }
                }
            }
        }
    }

    #[test]
    fn every_recorded_metric_is_described() {
        let mut used = Vec::new();
        // The engine and the HTTP surface record metrics; both crates sit beside this one.
        let router_dir = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        for crate_dir in ["engine", "http", "server"] {
            recorded_names(&router_dir.join(crate_dir).join("src"), &mut used);
        }
        assert!(
            used.iter()
                .any(|(n, _)| n == "switchboard_messages_sent_total"),
            "the scan found the metrics: {used:?}"
        );
        for (name, kind) in used {
            assert!(
                METRICS.iter().any(|&(n, k, _)| n == name && k == kind),
                "{name} ({kind:?}) is recorded but not described in telemetry::METRICS"
            );
        }
    }
}

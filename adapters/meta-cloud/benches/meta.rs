//! Webhook hot path: signature checks and parses per second, for a 1-message delivery and a
//! 100-status delivery; and reading the routing keys of hostile bodies naming many numbers.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::{Value, json};
use switchboard_core::{ChannelAdapter, MAX_ROUTING_KEYS};
use switchboard_meta_cloud::testing::{account, inbound_text, statuses, webhook_request};
use switchboard_meta_cloud::{MetaCloud, MetaConfig};

const PNID: &str = "106540352242922";
const SECRET: &str = "router_test_app_secret";

fn bench(c: &mut Criterion) {
    let meta = MetaCloud::new(MetaConfig::default());
    let acct = account(PNID, "+15550783881", "token", SECRET, "verify");
    let ids: Vec<String> = (0..100).map(|i| format!("wamid.bench{i:03}")).collect();
    let items: Vec<(&str, &str, &str)> = ids
        .iter()
        .map(|id| (id.as_str(), "delivered", "16505551234"))
        .collect();
    let cases = [
        (
            "1-message",
            inbound_text(
                PNID,
                "15550783881",
                "16505551234",
                "wamid.bench",
                "Hello there",
            ),
        ),
        ("100-status", statuses(PNID, &items)),
    ];
    for (name, body) in &cases {
        let req = webhook_request(body, Some(SECRET));
        let mut g = c.benchmark_group(*name);
        // One element = one webhook delivery.
        g.throughput(Throughput::Elements(1));
        g.bench_function("verify", |b| {
            b.iter(|| meta.verify_webhook(black_box(&req), &acct))
        });
        g.bench_function("routing_keys", |b| {
            b.iter(|| meta.routing_keys(black_box(&req)))
        });
        g.bench_function("parse", |b| {
            b.iter(|| meta.parse_webhook(black_box(&req), &[&acct]))
        });
        g.finish();
    }
}

/// Unsigned bodies naming many phone_number_ids, as a hostile client sends them: reading their
/// routing keys (the work done before any signature is checked) at the bound and past it.
fn hostile(c: &mut Criterion) {
    let meta = MetaCloud::new(MetaConfig::default());
    let mut g = c.benchmark_group("hostile");
    g.throughput(Throughput::Elements(1));
    for ids in [MAX_ROUTING_KEYS, 5_000] {
        let changes: Vec<Value> = (0..ids)
            .map(|i| json!({"changes": [{"value": {"metadata": {"phone_number_id": format!("9{i:014}")}}}]}))
            .collect();
        let body = json!({"object": "whatsapp_business_account", "entry": changes}).to_string();
        let req = webhook_request(&body, None);
        g.bench_function(format!("routing_keys/{ids}-ids"), |b| {
            b.iter(|| meta.routing_keys(black_box(&req)))
        });
    }
    g.finish();
}

criterion_group!(benches, bench, hostile);
criterion_main!(benches);

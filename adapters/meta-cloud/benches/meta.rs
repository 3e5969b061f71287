//! Webhook hot path: signature checks and parses per second, for a 1-message delivery and a
//! 100-status delivery.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use switchboard_core::ChannelAdapter;
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

criterion_group!(benches, bench);
criterion_main!(benches);

//! One webhook through `Router::receive_webhook` (resolve, verify, parse, one transaction,
//! commit) on a SQLite temp file with `synchronous=FULL`: the per-webhook cost with no
//! concurrency, so no group commit to amortize it. `new_contact` creates a contact and a
//! conversation; `known_contact` takes the fast paths; `redelivery` hits the event key.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::Utc;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use switchboard_core::testing::{FakeAdapter, SIGNATURE_HEADER};
use switchboard_core::{
    ContactIdentity, Content, Direction, EventKind, InboundEvent, InboundMessage, PhoneNumber,
    WebhookRequest,
};
use switchboard_router::crypto::CredentialCipher;
use switchboard_router::store::SqliteSync;
use switchboard_router::{Router, Store};

const SECRET: &str = "bench-secret";
const BUSINESS: &str = "+14155238886";

fn webhook(key: &str, from: &str) -> WebhookRequest {
    let event = InboundEvent {
        routing_key: BUSINESS.into(),
        event_key: key.into(),
        kind: EventKind::Message(InboundMessage {
            provider_message_id: key.into(),
            direction: Direction::Inbound,
            contact: ContactIdentity::from_phone(PhoneNumber::parse(from).expect("a number")),
            timestamp: Utc::now(),
            content: Content::text("hello"),
            reply_to: None,
            forwarded: None,
            referral: None,
        }),
        raw: serde_json::json!({"id": key}),
    };
    let mut headers = http::HeaderMap::new();
    headers.insert(SIGNATURE_HEADER, SECRET.parse().expect("a header value"));
    WebhookRequest {
        method: http::Method::POST,
        path: "/webhooks/fake".into(),
        query: None,
        headers,
        body: FakeAdapter::webhook_body(BUSINESS, &[event]),
    }
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("a runtime");
    let dir = tempfile::tempdir().expect("a temp dir");
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("bench.db").display()
    );
    let router = rt.block_on(async {
        let store = Store::connect(&url, SqliteSync::Full)
            .await
            .expect("sqlite");
        store.migrate().await.expect("migrations");
        let cipher =
            CredentialCipher::from_base64(&CredentialCipher::generate_key()).expect("a key");
        let router = Router::builder(store, cipher)
            .adapter(Arc::new(FakeAdapter::new()))
            .build();
        let tenant = router
            .create_tenant("bench")
            .await
            .expect("tenant")
            .tenant_id;
        router
            .connect_account(
                &tenant,
                "fake",
                BUSINESS,
                &FakeAdapter::credentials(SECRET),
                None,
            )
            .await
            .expect("account");
        router
    });
    let seq = AtomicU64::new(0);
    let mut g = c.benchmark_group("inbound");
    g.throughput(Throughput::Elements(1));
    g.bench_function("new_contact", |b| {
        b.to_async(&rt).iter(|| {
            let n = seq.fetch_add(1, Ordering::Relaxed);
            let req = webhook(
                &format!("new-{n}"),
                &format!("+316{:08}", 10_000_000 + n % 80_000_000),
            );
            let router = router.clone();
            async move { router.receive_webhook("fake", req).await.expect("stored") }
        });
    });
    g.bench_function("known_contact", |b| {
        b.to_async(&rt).iter(|| {
            let n = seq.fetch_add(1, Ordering::Relaxed);
            let req = webhook(&format!("known-{n}"), "+31611111111");
            let router = router.clone();
            async move { router.receive_webhook("fake", req).await.expect("stored") }
        });
    });
    g.bench_function("redelivery", |b| {
        b.to_async(&rt).iter(|| {
            let req = webhook("known-0", "+31611111111");
            let router = router.clone();
            async move {
                router
                    .receive_webhook("fake", req)
                    .await
                    .expect("acknowledged")
            }
        });
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

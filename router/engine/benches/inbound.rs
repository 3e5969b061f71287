//! One webhook through `Router::receive_webhook` (resolve, verify, parse, one transaction,
//! commit) on a SQLite temp file with `synchronous=FULL`: the per-webhook cost with no
//! concurrency, so no group commit to amortize it. `new_contact` creates a contact and a
//! conversation; `known_contact` takes the fast paths; `redelivery` hits the event key.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use switchboard_core::testing::{self, FakeAdapter};
use switchboard_core::{ContactIdentity, PhoneNumber, WebhookRequest};
use switchboard_router::store::SqliteSync;
use switchboard_router::store::crypto::CredentialCipher;
use switchboard_router::{Router, Store};

const SECRET: &str = "bench-secret";
const BUSINESS: &str = "+14155238886";

fn webhook(key: &str, from: &str) -> WebhookRequest {
    let from = ContactIdentity::from_phone(PhoneNumber::parse(from).expect("a number"));
    let event = testing::inbound_text(BUSINESS, key, from, "hello");
    FakeAdapter::webhook(BUSINESS, &[event], Some(SECRET))
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
            .tenants()
            .create("bench")
            .await
            .expect("tenant")
            .tenant_id;
        router
            .accounts()
            .connect(
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

//! Delivery engine throughput: messages delivered per second through the real Twilio adapter
//! to FakeTwilio on loopback, and the per-sender rate achieved against the configured limit,
//! on SQLite (always) and PostgreSQL (when `SWITCHBOARD_TEST_POSTGRES_URL` is set).
//!
//! `cargo bench -p switchboard-tests --bench delivery` (env `DELIVERY_BENCH_MESSAGES`,
//! default 4000).

use std::sync::Arc;
use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, Database, EntityTrait, PaginatorTrait};
use switchboard_core::{Content, Template};
use switchboard_router::store::SqliteSync;
use switchboard_router::store::crypto::CredentialCipher;
use switchboard_router::store::entity::{outbox, send_attempts};
use switchboard_router::{Router, SendRequest, Store};
use switchboard_twilio::testing::FakeTwilio;
use switchboard_twilio::{TwilioConfig, TwilioWhatsApp};

const SENDERS: usize = 4;

struct Db {
    url: String,
    drop_pg: Option<(String, String)>,
    _dir: Option<tempfile::TempDir>,
}

async fn databases() -> Vec<(&'static str, Db)> {
    let dir = tempfile::tempdir().unwrap();
    let mut out = vec![(
        "SQLite",
        Db {
            url: format!(
                "sqlite://{}?mode=rwc",
                dir.path().join("bench.db").display()
            ),
            drop_pg: None,
            _dir: Some(dir),
        },
    )];
    if let Ok(admin) = std::env::var("SWITCHBOARD_TEST_POSTGRES_URL")
        && !admin.is_empty()
    {
        let name = format!("sbbench_{}", uuid::Uuid::new_v4().simple());
        let conn = Database::connect(admin.as_str()).await.unwrap();
        conn.execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        conn.close().await.unwrap();
        let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
        out.push((
            "PostgreSQL",
            Db {
                url: format!("{base}/{name}"),
                drop_pg: Some((admin.clone(), name)),
                _dir: None,
            },
        ));
    }
    out
}

/// The most sends in any 1-second window (both ends inclusive).
fn busiest_second(mut t: Vec<i64>) -> usize {
    t.sort_unstable();
    let (mut best, mut lo) = (0, 0);
    for hi in 0..t.len() {
        while t[hi] - t[lo] > 1_000 {
            lo += 1;
        }
        best = best.max(hi - lo + 1);
    }
    best
}

/// Accepts `n` templates spread over the senders, runs the engine until the outbox is
/// empty; returns (seconds, per-sender send times).
async fn run(router: &Router, tenant: &str, senders: &[String], n: usize) -> (f64, Vec<i64>) {
    for i in 0..n {
        let req = SendRequest {
            to: format!("+316125{:05}", i % 1000),
            from: Some(senders[i % senders.len()].clone()),
            content: Content {
                template: Some(Template {
                    name: "HXb5b62575e6e4ff6129ad7c8efe1f983e".into(),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        router.send(tenant, req).await.unwrap();
    }
    let t0 = chrono::Utc::now().timestamp_millis();
    let (stop, rx) = tokio::sync::watch::channel(false);
    let engine = {
        let router = router.clone();
        tokio::spawn(async move { router.run_workers(rx).await })
    };
    let started = Instant::now();
    while outbox::Entity::find()
        .count(router.store().conn())
        .await
        .unwrap()
        > 0
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = started.elapsed().as_secs_f64();
    stop.send(true).unwrap();
    engine.await.unwrap();
    let times = send_attempts::Entity::find()
        .all(router.store().conn())
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.started_at)
        .filter(|t| *t >= t0)
        .collect();
    (took, times)
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::var("DELIVERY_BENCH_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4000);
    for (name, db) in databases().await {
        let twilio = FakeTwilio::start().await;
        let store = Store::connect(&db.url, SqliteSync::Full).await.unwrap();
        store.migrate().await.unwrap();
        let cipher = CredentialCipher::from_base64(&CredentialCipher::generate_key()).unwrap();
        let router = Router::builder(store, cipher)
            .adapter(Arc::new(TwilioWhatsApp::new(TwilioConfig {
                api_base: twilio.base_url(),
                public_url: "https://sb.example.com".into(),
                ..TwilioConfig::default()
            })))
            .build();
        let tenant = router.tenants().create("bench").await.unwrap().tenant_id;
        let mut fast = Vec::new();
        let mut limited = Vec::new();
        for s in 0..SENDERS + 1 {
            let sid = format!("AC{:032}", 500 + s);
            twilio.add_account(&sid, "tok");
            let number = format!("+1415523{:04}", 7000 + s);
            // Four senders with a limit far above what the engine reaches; one at 50/s.
            let rate = if s < SENDERS { 10_000 } else { 50 };
            router
                .accounts()
                .connect(
                    &tenant,
                    "twilio-whatsapp",
                    &number,
                    &serde_json::json!({"account_sid": sid, "auth_token": "tok"}),
                    Some(rate),
                )
                .await
                .unwrap();
            if s < SENDERS {
                fast.push(number);
            } else {
                limited.push(number);
            }
        }

        let (took, _) = run(&router, &tenant, &fast, n).await;
        println!(
            "{name}: {n} messages over {SENDERS} senders delivered in {took:.2} s = {:.0} messages/s",
            n as f64 / took
        );
        let m = 500;
        let (took, times) = run(&router, &tenant, &limited, m).await;
        let span = (times.iter().max().unwrap() - times.iter().min().unwrap()) as f64 / 1000.0;
        println!(
            "{name}: one sender limited to 50/s: {m} messages in {took:.2} s, {:.1}/s between first and last send, busiest 1-s window {} sends",
            (m - 1) as f64 / span,
            busiest_second(times)
        );
        router.store().clone().close().await.unwrap();
        if let Some((admin, name)) = db.drop_pg {
            let conn = Database::connect(admin.as_str()).await.unwrap();
            conn.execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .await
                .unwrap();
        }
    }
}

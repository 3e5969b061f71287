//! `switchboard-bench`: the load tool (see BENCHMARKS.md).
//!
//! It drives a *running* `switchboard serve` over HTTP/1.1 keep-alive from another process:
//! sets up a tenant with one Twilio and one Meta account directly on the server's database
//! (same `SWITCHBOARD_DATABASE_URL` and `SWITCHBOARD_ENCRYPTION_KEY`), sends signed inbound
//! webhooks (distinct and redelivered) for many contacts, prints throughput and latency, and
//! checks the database: every acknowledged webhook stored exactly once. The same load is
//! first run against a do-nothing axum endpoint served by the tool itself on loopback (on
//! its own 2-thread runtime, like the server), so figures read as a fraction of what the
//! machine can do. Every loop is bounded by a request count and a time limit; load only
//! ever targets the given loopback URL.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand};
use rand::{Rng, SeedableRng};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QuerySelect};
use serde_json::json;
use switchboard_meta_cloud::{MetaCloud, MetaConfig, testing as meta};
use switchboard_router::store::SqliteSync;
use switchboard_router::store::crypto::CredentialCipher;
use switchboard_router::store::entity::{messages, webhook_events};
use switchboard_router::tenancy::registry::AdapterRegistry;
use switchboard_router::{Router, Store};
use switchboard_twilio::{TwilioConfig, TwilioWhatsApp, testing as twilio};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const TWILIO_PATH: &str = "/webhooks/twilio-whatsapp";
const META_PATH: &str = "/webhooks/meta-whatsapp";
/// A request slower than this is counted in the run's slow-request timeline (the p99
/// target in BENCHMARKS.md is 10 ms).
const SLOW_MS: u64 = 10;
/// Warm-up webhooks' keys start here, far above any measured plan's.
const WARM_UP_KEYS: u32 = 1 << 30;

#[derive(Parser)]
#[command(
    name = "switchboard-bench",
    about = "Load, crash and soak tests for Switchboard"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Inbound webhooks against a running server (plus the no-op ceiling).
    Inbound(InboundArgs),
    /// Kill -9 a server it starts itself, at random moments under inbound load; restart;
    /// repeat; then check nothing acknowledged was lost and nothing was stored twice.
    Crash(CrashArgs),
    /// Sends through `POST /v1/messages` of a running server whose provider API bases point
    /// at a loopback fake provider this tool serves; measures delivery rate, latency and
    /// each sender's rate, and checks every accepted send reached the fake exactly once.
    Outbound(OutboundArgs),
    /// Kill -9 a server it starts itself while it accepts and delivers sends; restart;
    /// repeat; then check no accepted send was lost and count the duplicates.
    CrashOutbound(CrashOutboundArgs),
}

#[derive(Args, Clone)]
struct Target {
    /// The server's base URL (loopback only); several, comma-separated, for instances
    /// sharing one database: the connections are spread over them in turn (give the same
    /// `--public-url` every instance was started with).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    server: String,
    /// The URL Twilio signatures are computed over (the server's SWITCHBOARD_PUBLIC_URL).
    #[arg(long)]
    public_url: Option<String>,
    /// The server's database (the tool creates its tenant and accounts there).
    #[arg(long, env = "SWITCHBOARD_DATABASE_URL")]
    database_url: String,
    /// The server's credential key (base64, 32 bytes).
    #[arg(long, env = "SWITCHBOARD_ENCRYPTION_KEY", hide_env_values = true)]
    encryption_key: String,
}

#[derive(Args, Clone)]
struct Load {
    /// Concurrent HTTP/1.1 keep-alive connections.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Webhooks to send (an upper bound).
    #[arg(long, default_value_t = 20_000)]
    requests: usize,
    /// Target webhooks per second; 0 = flat out.
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Stop after this many seconds even if requests remain.
    #[arg(long, default_value_t = 60.0)]
    max_seconds: f64,
    /// Share of webhooks that redeliver an earlier one (same bytes, same signature).
    #[arg(long, default_value_t = 0.1)]
    duplicate_ratio: f64,
    /// Distinct contacts (senders) the messages come from.
    #[arg(long, default_value_t = 10_000)]
    contacts: u32,
    /// Share of webhooks that are Meta's (the rest are Twilio's).
    #[arg(long, default_value_t = 0.5)]
    meta_share: f64,
    /// Per-request timeout, seconds.
    #[arg(long, default_value_t = 10.0)]
    timeout: f64,
    /// Print RSS of this PID every few seconds during the run (soak).
    #[arg(long)]
    watch_pid: Option<u32>,
}

#[derive(Args)]
struct InboundArgs {
    #[command(flatten)]
    target: Target,
    #[command(flatten)]
    load: Load,
    /// Skip the no-op ceiling run.
    #[arg(long)]
    no_ceiling: bool,
    /// Webhooks sent to the server before the measured run, at the same rate and not
    /// counted (its connections, caches and prepared statements warm up); they are in the
    /// database check.
    #[arg(long, default_value_t = 0)]
    warm_up: usize,
}

#[derive(Args)]
struct CrashArgs {
    /// The `switchboard` binary to start (it gets SWITCHBOARD_* from this environment).
    #[arg(long)]
    server_bin: PathBuf,
    /// Listen address for the server it starts.
    #[arg(long, default_value = "127.0.0.1:18181")]
    listen: SocketAddr,
    #[arg(long, env = "SWITCHBOARD_DATABASE_URL")]
    database_url: String,
    #[arg(long, env = "SWITCHBOARD_ENCRYPTION_KEY", hide_env_values = true)]
    encryption_key: String,
    /// How many times to kill -9 the server.
    #[arg(long, default_value_t = 20)]
    kills: usize,
    #[arg(long, default_value_t = 16)]
    connections: usize,
    #[arg(long, default_value_t = 0.2)]
    duplicate_ratio: f64,
    /// Longest time under load before a kill, milliseconds (the kill moment is uniform in
    /// 50..this).
    #[arg(long, default_value_t = 1500)]
    max_run_ms: u64,
}

fn main() -> Result<(), BoxError> {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        match cli.command {
            Cmd::Inbound(a) => inbound(a).await,
            Cmd::Crash(a) => crash(a).await,
            Cmd::Outbound(a) => outbound(a).await,
            Cmd::CrashOutbound(a) => crash_outbound(a).await,
        }
    })
}

/// What the tool created on the server's database.
struct Setup {
    run: u32,
    twilio_account: String,
    twilio_address: String,
    twilio_sid: String,
    twilio_token: String,
    meta_account: String,
    meta_address: String,
    meta_pnid: String,
    meta_secret: String,
}

async fn open_router(database_url: &str, key: &str, public_url: &str) -> Result<Router, BoxError> {
    let store = Store::connect(database_url, SqliteSync::Full).await?;
    store.migrate().await?;
    let mut adapters = AdapterRegistry::new();
    adapters.register(Arc::new(TwilioWhatsApp::new(TwilioConfig {
        public_url: public_url.to_owned(),
        ..Default::default()
    })));
    adapters.register(Arc::new(MetaCloud::new(MetaConfig::default())));
    Ok(Router::builder(store, CredentialCipher::from_base64(key)?)
        .adapters(adapters)
        .build())
}

/// Creates a tenant and two accounts with fresh numbers (numbers are unique per channel
/// across tenants, so a random one is retried on conflict).
async fn setup(router: &Router) -> Result<Setup, BoxError> {
    let mut rng = rand::rng();
    let run: u32 = rng.random();
    let tenant = router.tenants().create(&format!("bench-{run:08x}")).await?;
    let twilio_sid = format!("AC{run:08x}{:024x}", 1u8);
    let twilio_token = format!("bench-token-{run:08x}");
    let meta_pnid = format!("9{run:010}");
    let meta_secret = format!("bench-secret-{run:08x}");
    let mut connect = async |channel: &str, creds: serde_json::Value| -> Result<_, BoxError> {
        for _ in 0..20 {
            // 650-253 is a valid US range; the last four digits are random.
            let address = format!("+1650253{:04}", rng.random_range(0..10_000));
            match router
                .accounts()
                .connect(&tenant.tenant_id, channel, &address, &creds, None)
                .await
            {
                Ok(v) => return Ok((v.id, address)),
                Err(e) if e.code() == "account_exists" => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err("no free business number after 20 tries".into())
    };
    let (twilio_account, twilio_address) = connect(
        "twilio-whatsapp",
        json!({"account_sid": twilio_sid, "auth_token": twilio_token}),
    )
    .await?;
    let (meta_account, meta_address) = connect(
        "meta-whatsapp",
        json!({"phone_number_id": meta_pnid, "access_token": "bench", "app_secret": meta_secret, "verify_token": "bench"}),
    )
    .await?;
    Ok(Setup {
        run,
        twilio_account,
        twilio_address,
        twilio_sid,
        twilio_token,
        meta_account,
        meta_address,
        meta_pnid,
        meta_secret,
    })
}

/// One webhook, ready to send.
struct Prepared {
    path: &'static str,
    content_type: &'static str,
    sig_header: &'static str,
    signature: String,
    body: String,
}

/// The request plan: which distinct message each request carries (redeliveries repeat an
/// earlier one) and on which channel.
struct Plan {
    keys: Vec<u32>,
    meta_share: f64,
    contacts: u32,
    /// The first contact's number (a warm-up writes from numbers of its own).
    first_contact: u32,
}

impl Plan {
    fn new(load: &Load, seed: u64) -> Self {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut keys = Vec::with_capacity(load.requests);
        let mut distinct = 0u32;
        for _ in 0..load.requests {
            if distinct > 0 && rng.random_bool(load.duplicate_ratio.clamp(0.0, 1.0)) {
                // Redeliver a recent one: that is when providers retry.
                let lo = distinct.saturating_sub(2_000);
                keys.push(rng.random_range(lo..distinct));
            } else {
                keys.push(distinct);
                distinct += 1;
            }
        }
        Self {
            keys,
            meta_share: load.meta_share,
            contacts: load.contacts.max(1),
            first_contact: 10_000_000,
        }
    }

    /// `requests` distinct webhooks whose keys and contacts none of the measured plan
    /// uses, so a warm-up creates nothing the measured run finds.
    fn warm_up(requests: usize, meta_share: f64) -> Self {
        Self {
            keys: (0..requests).map(|k| WARM_UP_KEYS + k as u32).collect(),
            meta_share,
            contacts: 1_000,
            first_contact: 90_000_000,
        }
    }

    fn is_meta(&self, key: u32) -> bool {
        // A fixed pseudo-random split, so a redelivery goes to the same channel.
        let h = key.wrapping_mul(2_654_435_761) as f64 / f64::from(u32::MAX);
        h < self.meta_share
    }
}

fn twilio_sid(run: u32, key: u32) -> String {
    format!("SM{run:08x}{key:024x}")
}

fn wamid(run: u32, key: u32) -> String {
    format!("wamid.bench{run:08x}{key:010}")
}

fn prepare(s: &Setup, plan: &Plan, public_url: &str, key: u32) -> Prepared {
    let contact = key % plan.contacts;
    let from = format!("+316{:08}", plan.first_contact + contact);
    let text = format!("bench message {key}");
    if plan.is_meta(key) {
        let body = meta::inbound_text(
            &s.meta_pnid,
            s.meta_address.trim_start_matches('+'),
            from.trim_start_matches('+'),
            &wamid(s.run, key),
            &text,
        );
        Prepared {
            path: META_PATH,
            content_type: "application/json",
            sig_header: "x-hub-signature-256",
            signature: meta::sign(&s.meta_secret, body.as_bytes()),
            body,
        }
    } else {
        let form = twilio::inbound_text_form(
            &s.twilio_sid,
            &from,
            &s.twilio_address,
            &text,
            &twilio_sid(s.run, key),
        );
        Prepared {
            path: TWILIO_PATH,
            content_type: "application/x-www-form-urlencoded",
            sig_header: "x-twilio-signature",
            signature: twilio::sign_form(
                &s.twilio_token,
                &format!("{public_url}{TWILIO_PATH}"),
                &form,
            ),
            body: twilio::form_body(&form),
        }
    }
}

/// What one load run measured.
#[derive(Default)]
struct Outcome {
    sent: usize,
    elapsed: Duration,
    /// Microseconds per request (from its scheduled start when paced).
    latencies: Vec<u64>,
    /// Requests slower than `SLOW_MS`, counted by the second of the run they were due in:
    /// shows whether a tail is spread out (load) or bunched (a stall, the warm-up).
    slow_by_second: BTreeMap<u64, usize>,
    statuses: BTreeMap<u16, usize>,
    transport_errors: usize,
    /// Distinct message keys acknowledged with 2xx.
    acked: HashSet<u32>,
}

impl Outcome {
    fn ok(&self) -> usize {
        self.statuses
            .iter()
            .filter(|(s, _)| (200..300).contains(*s))
            .map(|(_, n)| n)
            .sum()
    }

    fn throughput(&self) -> f64 {
        self.ok() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    fn pct(&mut self, p: f64) -> f64 {
        if self.latencies.is_empty() {
            return 0.0;
        }
        self.latencies.sort_unstable();
        let i = ((p / 100.0) * (self.latencies.len() - 1) as f64).round() as usize;
        self.latencies[i] as f64 / 1000.0
    }

    fn report(&mut self, label: &str) -> serde_json::Value {
        let v = json!({
            "label": label,
            "sent": self.sent,
            "ok": self.ok(),
            "seconds": self.elapsed.as_secs_f64(),
            "per_second": self.throughput(),
            "p50_ms": self.pct(50.0),
            "p90_ms": self.pct(90.0),
            "p99_ms": self.pct(99.0),
            "max_ms": self.pct(100.0),
            "statuses": self.statuses,
            "transport_errors": self.transport_errors,
            "slow_by_second": self.slow_by_second,
        });
        println!(
            "{label:>10}: {} sent, {} ok in {:.2}s = {:.0}/s; latency ms p50 {:.2} p90 {:.2} p99 {:.2} max {:.2}; statuses {:?}; transport errors {}",
            v["sent"],
            v["ok"],
            self.elapsed.as_secs_f64(),
            self.throughput(),
            v["p50_ms"].as_f64().unwrap_or(0.0),
            v["p90_ms"].as_f64().unwrap_or(0.0),
            v["p99_ms"].as_f64().unwrap_or(0.0),
            v["max_ms"].as_f64().unwrap_or(0.0),
            self.statuses,
            self.transport_errors,
        );
        if !self.slow_by_second.is_empty() {
            let spread: Vec<String> = self
                .slow_by_second
                .iter()
                .map(|(s, n)| format!("{s}s:{n}"))
                .collect();
            println!(
                "{:>10}  slower than {SLOW_MS} ms, by second of the run: {}",
                "",
                spread.join(" ")
            );
        }
        v
    }
}

/// Sends the plan to `base` (one URL, or several comma-separated: connection `i` goes to
/// the `i`-th in turn) over `load.connections` keep-alive connections.
async fn drive(
    base: &str,
    setup: &Arc<Setup>,
    plan: &Arc<Plan>,
    public_url: &str,
    load: &Load,
    stop: Option<Arc<AtomicBool>>,
) -> Outcome {
    let next = Arc::new(AtomicUsize::new(0));
    // Every connection is opened (one `GET /health` each) before the clock starts: TCP
    // handshakes and cold clients are the load generator's warm-up, not the server's.
    let connections = load.connections.max(1);
    let ready = Arc::new(tokio::sync::Barrier::new(connections + 1));
    let (go_tx, go_rx) = tokio::sync::watch::channel::<Option<Instant>>(None);
    let bases: Vec<String> = base
        .split(',')
        .map(|b| b.trim().trim_end_matches('/').to_owned())
        .collect();
    let mut workers = Vec::new();
    for worker in 0..connections {
        let (next, setup, plan, stop) = (next.clone(), setup.clone(), plan.clone(), stop.clone());
        let (ready, mut go) = (ready.clone(), go_rx.clone());
        let (base, public_url) = (bases[worker % bases.len()].clone(), public_url.to_owned());
        let (rate, timeout, max_seconds) = (load.rate, load.timeout, load.max_seconds);
        workers.push(tokio::spawn(async move {
            // One client per worker, one idle connection: exactly one keep-alive
            // connection each.
            let client = reqwest::Client::builder()
                .http1_only()
                .pool_max_idle_per_host(1)
                .timeout(Duration::from_secs_f64(timeout))
                .build()
                .expect("a plain HTTP client");
            if let Ok(r) = client.get(format!("{base}/health")).send().await {
                drop(r.bytes().await);
            }
            ready.wait().await;
            let Some(start) = go.wait_for(Option::is_some).await.ok().and_then(|s| *s) else {
                return Outcome::default();
            };
            let deadline = start + Duration::from_secs_f64(max_seconds);
            let mut out = Outcome::default();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= plan.keys.len()
                    || Instant::now() >= deadline
                    || stop.as_ref().is_some_and(|s| s.load(Ordering::Relaxed))
                {
                    break;
                }
                let key = plan.keys[i];
                let req = prepare(&setup, &plan, &public_url, key);
                let scheduled = if rate > 0.0 {
                    let at = start + Duration::from_secs_f64(i as f64 / rate);
                    tokio::time::sleep_until(at.into()).await;
                    at
                } else {
                    Instant::now()
                };
                out.sent += 1;
                let res = client
                    .post(format!("{base}{}", req.path))
                    .header("content-type", req.content_type)
                    .header(req.sig_header, &req.signature)
                    .body(req.body)
                    .send()
                    .await;
                match res {
                    Ok(r) => {
                        let status = r.status().as_u16();
                        // Read the body so the connection is reused; a body error
                        // counts as a transport error below.
                        if r.bytes().await.is_err() {
                            out.transport_errors += 1;
                            continue;
                        }
                        let latency = scheduled.elapsed();
                        out.latencies.push(latency.as_micros() as u64);
                        if latency > Duration::from_millis(SLOW_MS) {
                            let second = scheduled.duration_since(start).as_secs();
                            *out.slow_by_second.entry(second).or_default() += 1;
                        }
                        *out.statuses.entry(status).or_default() += 1;
                        if (200..300).contains(&status) {
                            out.acked.insert(key);
                        }
                    }
                    Err(_) => out.transport_errors += 1,
                }
            }
            out
        }));
    }
    ready.wait().await;
    let start = Instant::now();
    go_tx.send_replace(Some(start));
    let watcher = load.watch_pid.map(|pid| {
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(5)).await;
                println!(
                    "  t={:>5.0}s rss_kb={}",
                    start.elapsed().as_secs_f64(),
                    rss_kb(pid).unwrap_or(0)
                );
            }
        })
    });
    let mut total = Outcome::default();
    for w in workers {
        if let Ok(o) = w.await {
            total.sent += o.sent;
            total.latencies.extend(o.latencies);
            for (second, n) in o.slow_by_second {
                *total.slow_by_second.entry(second).or_default() += n;
            }
            for (s, n) in o.statuses {
                *total.statuses.entry(s).or_default() += n;
            }
            total.transport_errors += o.transport_errors;
            total.acked.extend(o.acked);
        }
    }
    total.elapsed = start.elapsed();
    if let Some(w) = watcher {
        w.abort();
    }
    total
}

fn rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// A do-nothing webhook endpoint on loopback, on its own 2-thread runtime (like the
/// server's on this 2-core machine). Returns its base URL.
fn start_noop() -> Result<String, BoxError> {
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    std_listener.set_nonblocking(true)?;
    let addr = std_listener.local_addr()?;
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(std_listener).expect("listener");
            let app = axum::Router::new()
                .route(
                    "/webhooks/{channel}",
                    axum::routing::post(|_body: axum::body::Bytes| async { "" }),
                )
                .route("/health", axum::routing::get(|| async { "" }));
            if let Err(e) = axum::serve(listener, app).await {
                eprintln!("no-op server stopped: {e}");
            }
        });
    });
    Ok(format!("http://{addr}"))
}

async fn wait_healthy(base: &str, within: Duration) -> bool {
    let client = reqwest::Client::new();
    let until = Instant::now() + within;
    while Instant::now() < until {
        if let Ok(r) = client.get(format!("{base}/health")).send().await
            && r.status().is_success()
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    false
}

/// Checks the database: every acknowledged key stored once, nothing stored twice.
/// Returns the number of problems.
async fn check_db(
    store: &Store,
    s: &Setup,
    plan: &Plan,
    acked: &HashSet<u32>,
) -> Result<usize, BoxError> {
    let db = store.conn();
    let mut stored_ids: Vec<String> = Vec::new();
    let mut events = 0;
    for account in [&s.twilio_account, &s.meta_account] {
        let ids: Vec<Option<String>> = messages::Entity::find()
            .select_only()
            .column(messages::Column::ProviderMessageId)
            .filter(messages::Column::AccountId.eq(account.as_str()))
            .into_tuple()
            .all(db)
            .await?;
        stored_ids.extend(ids.into_iter().flatten());
        events += webhook_events::Entity::find()
            .filter(webhook_events::Column::AccountId.eq(account.as_str()))
            .count(db)
            .await?;
    }
    let unique: HashSet<&String> = stored_ids.iter().collect();
    let dup_rows = stored_ids.len() - unique.len();
    let lost: Vec<u32> = acked
        .iter()
        .copied()
        .filter(|&k| {
            let id = if plan.is_meta(k) {
                wamid(s.run, k)
            } else {
                twilio_sid(s.run, k)
            };
            !unique.contains(&id)
        })
        .collect();
    let events_mismatch = usize::from(events as usize != stored_ids.len());
    println!(
        "  db check: {} acknowledged distinct webhooks; {} messages stored ({} stored but not acknowledged); {} webhook_events; lost {}; duplicate rows {}",
        acked.len(),
        stored_ids.len(),
        unique.len().saturating_sub(acked.len()),
        events,
        lost.len(),
        dup_rows
    );
    if events_mismatch > 0 {
        println!(
            "  db check: webhook_events ({events}) != messages ({})",
            stored_ids.len()
        );
    }
    Ok(lost.len() + dup_rows + events_mismatch)
}

async fn inbound(a: InboundArgs) -> Result<(), BoxError> {
    let server = a.target.server.trim_end_matches('/').to_owned();
    let public_url = a
        .target
        .public_url
        .clone()
        .unwrap_or_else(|| server.split(',').next().unwrap_or_default().to_owned());
    for one in server.split(',') {
        if !wait_healthy(one.trim(), Duration::from_secs(10)).await {
            return Err(format!("{one}/health is not healthy").into());
        }
    }
    let router = open_router(
        &a.target.database_url,
        &a.target.encryption_key,
        &public_url,
    )
    .await?;
    let setup = Arc::new(setup(&router).await?);
    let plan = Arc::new(Plan::new(&a.load, u64::from(setup.run)));
    let distinct = plan.keys.iter().max().map_or(0, |m| m + 1);
    println!(
        "run {:08x}: {} webhooks ({} distinct), {} connections, rate {}, {} contacts, meta share {}",
        setup.run,
        plan.keys.len(),
        distinct,
        a.load.connections,
        if a.load.rate > 0.0 {
            format!("{}/s", a.load.rate)
        } else {
            "flat out".into()
        },
        a.load.contacts,
        a.load.meta_share
    );
    let mut summary = json!({"run": format!("{:08x}", setup.run)});
    let mut ceiling_rate = None;
    if !a.no_ceiling {
        let noop = start_noop()?;
        let mut c = drive(&noop, &setup, &plan, &public_url, &a.load, None).await;
        ceiling_rate = Some(c.throughput());
        summary["ceiling"] = c.report("no-op");
    }
    let mut warm_acked = HashSet::new();
    if a.warm_up > 0 {
        let warm = Arc::new(Plan::warm_up(a.warm_up, a.load.meta_share));
        let w = drive(&server, &setup, &warm, &public_url, &a.load, None).await;
        println!(
            "   warm-up: {} sent, {} ok in {:.2}s (not counted)",
            w.sent,
            w.ok(),
            w.elapsed.as_secs_f64()
        );
        warm_acked = w.acked;
    }
    let mut o = drive(&server, &setup, &plan, &public_url, &a.load, None).await;
    summary["server"] = o.report("server");
    if let Some(c) = ceiling_rate {
        let ratio = o.throughput() / c.max(1e-9);
        println!("  ratio to the no-op ceiling: {:.1}%", ratio * 100.0);
        summary["ratio_to_ceiling"] = json!(ratio);
    }
    let mut acked = std::mem::take(&mut o.acked);
    acked.extend(warm_acked);
    let problems = check_db(router.store(), &setup, &plan, &acked).await?;
    summary["db_problems"] = json!(problems);
    println!("RESULT {summary}");
    router.store().clone().close().await?;
    if problems > 0 {
        return Err(format!("{problems} database problems").into());
    }
    Ok(())
}

fn spawn_server(a: &CrashArgs) -> Result<Child, BoxError> {
    Ok(Command::new(&a.server_bin)
        .arg("serve")
        .env("SWITCHBOARD_DATABASE_URL", &a.database_url)
        .env("SWITCHBOARD_ENCRYPTION_KEY", &a.encryption_key)
        .env("SWITCHBOARD_LISTEN", a.listen.to_string())
        .env("SWITCHBOARD_PUBLIC_URL", format!("http://{}", a.listen))
        .env("SWITCHBOARD_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?)
}

async fn crash(a: CrashArgs) -> Result<(), BoxError> {
    if !a.listen.ip().is_loopback() {
        return Err("the crash test only targets loopback".into());
    }
    let base = format!("http://{}", a.listen);
    let router = open_router(&a.database_url, &a.encryption_key, &base).await?;
    let setup = Arc::new(setup(&router).await?);
    // Enough requests for every round; each round stops at its kill.
    let load = Load {
        connections: a.connections,
        requests: 2_000_000,
        rate: 0.0,
        max_seconds: 30.0,
        duplicate_ratio: a.duplicate_ratio,
        contacts: 1_000,
        meta_share: 0.5,
        timeout: 5.0,
        watch_pid: None,
    };
    let plan = Arc::new(Plan::new(&load, u64::from(setup.run)));
    let mut acked = HashSet::new();
    let mut offset = 0usize;
    let mut rng = rand::rng();
    for round in 1..=a.kills {
        let mut child = spawn_server(&a)?;
        if !wait_healthy(&base, Duration::from_secs(20)).await {
            child.kill()?;
            return Err(format!("round {round}: the server did not become healthy").into());
        }
        // Each round continues the plan where the previous one stopped, and also resends
        // part of the previous round (redeliveries of what may or may not have committed).
        let start = offset.saturating_sub(200);
        let sub = Arc::new(Plan {
            keys: plan.keys[start..].to_vec(),
            meta_share: plan.meta_share,
            contacts: plan.contacts,
            first_contact: plan.first_contact,
        });
        let stop = Arc::new(AtomicBool::new(false));
        let kill_after = Duration::from_millis(rng.random_range(50..a.max_run_ms.max(51)));
        let pid = child.id();
        let killer = {
            let stop = stop.clone();
            tokio::spawn(async move {
                tokio::time::sleep(kill_after).await;
                // SIGKILL: no shutdown path runs.
                if child.kill().is_err() || child.wait().is_err() {
                    eprintln!("could not kill the server (it had already stopped)");
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
                stop.store(true, Ordering::Relaxed);
            })
        };
        let o = drive(&base, &setup, &sub, &base, &load, Some(stop)).await;
        killer.await?;
        offset = start + o.sent;
        println!(
            "round {round:>2}: pid {pid} killed after {} ms; {} sent, {} acknowledged, {} transport errors",
            kill_after.as_millis(),
            o.sent,
            o.ok(),
            o.transport_errors
        );
        acked.extend(o.acked);
    }
    let problems = check_db(router.store(), &setup, &plan, &acked).await?;
    println!(
        "RESULT {}",
        json!({"kills": a.kills, "acknowledged": acked.len(), "problems": problems})
    );
    router.store().clone().close().await?;
    if problems > 0 {
        return Err(format!("{problems} problems after {} kills", a.kills).into());
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Outbound: a loopback fake provider, sends through the API, per-sender rate accounting.
// ---------------------------------------------------------------------------------------

#[derive(Args, Clone)]
struct SendLoad {
    /// Twilio sender accounts.
    #[arg(long, default_value_t = 8)]
    twilio_senders: usize,
    /// Meta sender accounts.
    #[arg(long, default_value_t = 8)]
    meta_senders: usize,
    /// Each sender's configured `rate_per_second`.
    #[arg(long, default_value_t = 150)]
    sender_rate: i32,
    /// Distinct recipients (each sender cycles through them).
    #[arg(long, default_value_t = 5_000)]
    contacts: u32,
    /// Concurrent HTTP/1.1 keep-alive connections submitting sends.
    #[arg(long, default_value_t = 32)]
    connections: usize,
}

#[derive(Args)]
struct OutboundArgs {
    #[command(flatten)]
    target: Target,
    #[command(flatten)]
    load: SendLoad,
    /// Sends to submit.
    #[arg(long, default_value_t = 20_000)]
    messages: usize,
    /// Where the fake provider listens; start the server with SWITCHBOARD_TWILIO_API_BASE and
    /// SWITCHBOARD_META_GRAPH_BASE set to `http://<this>`.
    #[arg(long, default_value = "127.0.0.1:18099")]
    fake_listen: SocketAddr,
    /// Hold every sender's lease while submitting, so the whole backlog is waiting when
    /// delivery starts: measures the delivery engine alone (and each sender's rate).
    #[arg(long)]
    backlog: bool,
    /// Give up waiting for deliveries after this many seconds.
    #[arg(long, default_value_t = 300.0)]
    max_seconds: f64,
}

#[derive(Args)]
struct CrashOutboundArgs {
    /// The `switchboard` binary to start (it gets SWITCHBOARD_* from this environment).
    #[arg(long)]
    server_bin: PathBuf,
    #[arg(long, default_value = "127.0.0.1:18182")]
    listen: SocketAddr,
    #[arg(long, default_value = "127.0.0.1:18198")]
    fake_listen: SocketAddr,
    #[arg(long, env = "SWITCHBOARD_DATABASE_URL")]
    database_url: String,
    #[arg(long, env = "SWITCHBOARD_ENCRYPTION_KEY", hide_env_values = true)]
    encryption_key: String,
    #[arg(long, default_value_t = 20)]
    kills: usize,
    #[command(flatten)]
    load: SendLoad,
    /// Longest time under load before a kill, milliseconds (uniform in 50..this).
    #[arg(long, default_value_t = 1500)]
    max_run_ms: u64,
    /// The servers' outbox lease (SWITCHBOARD_DELIVERY_LEASE_MS): how soon a killed
    /// process's claimed sends are taken over.
    #[arg(long, default_value_t = 2000)]
    lease_ms: u64,
    /// How long the servers wait for a status before resending a send in doubt after a
    /// crash (SWITCHBOARD_DELIVERY_IN_DOUBT_GRACE_MS).
    #[arg(long, default_value_t = 10_000)]
    in_doubt_grace_ms: u64,
    /// The fake provider reports no statuses (nothing proves a send in doubt arrived).
    #[arg(long)]
    no_status_reports: bool,
}

/// One sender account created by the tool.
struct Sender {
    account_id: String,
    channel: &'static str,
    address: String,
    /// How the fake recognizes it: Twilio's `From`, Meta's phone number id.
    fake_key: String,
    rate: i32,
}

struct OutSetup {
    api_key: String,
    senders: Vec<Sender>,
}

/// One request that reached the fake provider.
struct Arrival {
    message_id: String,
    sender: String,
    /// Microseconds since the tool's clock origin.
    at_us: u64,
}

struct FakeState {
    origin: Instant,
    seq: AtomicUsize,
    log: Mutex<Vec<Arrival>>,
    /// Where status reports go, when the fake sends them.
    reports: Option<StatusReports>,
}

/// The auth token of the tool's Twilio senders.
const BENCH_TWILIO_TOKEN: &str = "bench-token";
/// The app secret of the tool's Meta senders.
const BENCH_META_SECRET: &str = "bench-secret";

/// Status reports the fake provider sends for every message it accepted, as the providers
/// do: `sent` after 0.5 s and `delivered` 2 s later, each echoing our message id (Twilio: to
/// the StatusCallback URL, signed with the auth token; Meta: to the server's webhook with
/// `biz_opaque_callback_data`, signed with the app secret). A report the server does not
/// take (it was killed) is retried every second for 30 s by Meta, never by Twilio.
struct StatusReports {
    meta_webhook: String,
    client: reqwest::Client,
}

/// One status report: where, its body, its signature header.
struct Report {
    url: String,
    content_type: &'static str,
    signature: (&'static str, String),
    body: String,
    retries: usize,
}

impl StatusReports {
    fn new(server: &str) -> Self {
        Self {
            meta_webhook: format!("{server}{META_PATH}"),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .expect("a plain HTTP client"),
        }
    }

    /// Sends `reports(status)` for `sent`, then `delivered`, in the background.
    fn spawn(&self, reports: impl Fn(&str) -> Report + Send + 'static) {
        let client = self.client.clone();
        tokio::spawn(async move {
            for (after, status) in [(500, "sent"), (2_000, "delivered")] {
                tokio::time::sleep(Duration::from_millis(after)).await;
                let r = reports(status);
                tokio::spawn(post_report(client.clone(), r));
            }
        });
    }
}

async fn post_report(client: reqwest::Client, r: Report) {
    for attempt in 0..=r.retries {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let res = client
            .post(&r.url)
            .header("content-type", r.content_type)
            .header(r.signature.0, &r.signature.1)
            .body(r.body.clone())
            .send()
            .await;
        if res.is_ok_and(|x| x.status().is_success()) {
            return;
        }
    }
}

impl FakeState {
    fn record(&self, message_id: String, sender: String) {
        let at_us = self.origin.elapsed().as_micros() as u64;
        self.log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(Arrival {
                message_id,
                sender,
                at_us,
            });
    }

    fn count(&self) -> usize {
        self.log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }
}

/// Serves a minimal Twilio Messages API and Meta Graph send endpoint on `addr`, on its own
/// 2-thread runtime: each success answer is the documented body with a fresh id.
///
/// With `reports_to` (the server's base URL) it also reports each message's status back,
/// see `StatusReports`.
fn start_fake_provider(
    addr: SocketAddr,
    origin: Instant,
    reports_to: Option<&str>,
) -> Result<Arc<FakeState>, BoxError> {
    use axum::extract::{Path as P, State};
    use axum::routing::post;
    let std_listener = std::net::TcpListener::bind(addr)?;
    std_listener.set_nonblocking(true)?;
    let state = Arc::new(FakeState {
        origin,
        seq: AtomicUsize::new(0),
        log: Mutex::new(Vec::new()),
        reports: reports_to.map(StatusReports::new),
    });
    let twilio = async |State(st): State<Arc<FakeState>>,
                        P(account): P<String>,
                        axum::Form(form): axum::Form<Vec<(String, String)>>| {
        let get = |k: &str| {
            form.iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        let callback = get("StatusCallback");
        let id = callback.rsplit('/').next().unwrap_or_default().to_owned();
        let from = get("From");
        st.record(id, from.trim_start_matches("whatsapp:").to_owned());
        let n = st.seq.fetch_add(1, Ordering::Relaxed);
        let sid = format!("SM{:032x}", n);
        if let Some(reports) = &st.reports {
            let (account, sid) = (account.clone(), sid.clone());
            let business = from.trim_start_matches("whatsapp:").to_owned();
            let recipient = get("To").trim_start_matches("whatsapp:").to_owned();
            reports.spawn(move |status| {
                let form = twilio::status_form(&account, &business, &recipient, &sid, status, None);
                Report {
                    signature: (
                        "x-twilio-signature",
                        twilio::sign_form(BENCH_TWILIO_TOKEN, &callback, &form),
                    ),
                    url: callback.clone(),
                    content_type: "application/x-www-form-urlencoded",
                    body: twilio::form_body(&form),
                    retries: 0,
                }
            });
        }
        (
            axum::http::StatusCode::CREATED,
            axum::Json(json!({
                "account_sid": account, "api_version": "2010-04-01", "body": "",
                "direction": "outbound-api", "error_code": null, "error_message": null,
                "from": from, "to": get("To"), "num_media": "0", "num_segments": "1",
                "sid": sid, "status": "queued",
                "uri": format!("/2010-04-01/Accounts/{account}/Messages/{sid}.json"),
            })),
        )
    };
    let meta = async |State(st): State<Arc<FakeState>>,
                      P((_version, pnid)): P<(String, String)>,
                      axum::Json(body): axum::Json<serde_json::Value>| {
        let id = body["biz_opaque_callback_data"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        st.record(id.clone(), pnid.clone());
        let n = st.seq.fetch_add(1, Ordering::Relaxed);
        let to = body["to"].as_str().unwrap_or_default().to_owned();
        if let Some(reports) = &st.reports {
            let url = reports.meta_webhook.clone();
            let wamid = format!("wamid.bench{n:020}");
            let recipient = to.trim_start_matches('+').to_owned();
            reports.spawn(move |status| {
                let timestamp = chrono::Utc::now().timestamp().to_string();
                let body = meta::envelope(&[(
                    &pnid,
                    "15550783881",
                    "messages",
                    json!({"statuses": [{
                        "id": wamid, "status": status, "timestamp": timestamp,
                        "recipient_id": recipient, "biz_opaque_callback_data": id,
                    }]}),
                )]);
                Report {
                    signature: (
                        "x-hub-signature-256",
                        meta::sign(BENCH_META_SECRET, body.as_bytes()),
                    ),
                    url: url.clone(),
                    content_type: "application/json",
                    body,
                    retries: 30,
                }
            });
        }
        axum::Json(json!({
            "messaging_product": "whatsapp",
            "contacts": [{"input": to, "wa_id": to.trim_start_matches('+')}],
            "messages": [{"id": format!("wamid.bench{n:020}")}],
        }))
    };
    let app = axum::Router::new()
        .route("/2010-04-01/Accounts/{account}/Messages.json", post(twilio))
        .route("/{version}/{pnid}/messages", post(meta))
        .with_state(state.clone());
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(std_listener).expect("listener");
            if let Err(e) = axum::serve(listener, app).await {
                eprintln!("fake provider stopped: {e}");
            }
        });
    });
    Ok(state)
}

/// Creates a tenant (its admin key sends) and the sender accounts.
async fn setup_senders(router: &Router, load: &SendLoad) -> Result<OutSetup, BoxError> {
    let mut rng = rand::rng();
    let run: u32 = rng.random();
    let tenant = router
        .tenants()
        .create(&format!("bench-out-{run:08x}"))
        .await?;
    let mut senders = Vec::new();
    let total = load.twilio_senders + load.meta_senders;
    for i in 0..total {
        let twilio = i < load.twilio_senders;
        let (channel, creds, key) = if twilio {
            let sid = format!("AC{run:08x}{i:024x}");
            (
                "twilio-whatsapp",
                json!({"account_sid": sid, "auth_token": BENCH_TWILIO_TOKEN}),
                None,
            )
        } else {
            let pnid = format!("8{run:010}{i:03}");
            (
                "meta-whatsapp",
                json!({"phone_number_id": pnid, "access_token": "bench", "app_secret": BENCH_META_SECRET, "verify_token": "bench"}),
                Some(pnid),
            )
        };
        let mut made = None;
        for _ in 0..50 {
            let address = format!("+1650253{:04}", rng.random_range(0..10_000));
            match router
                .accounts()
                .connect(
                    &tenant.tenant_id,
                    channel,
                    &address,
                    &creds,
                    Some(load.sender_rate),
                )
                .await
            {
                Ok(v) => {
                    made = Some((v.id, address));
                    break;
                }
                Err(e) if e.code() == "account_exists" => continue,
                Err(e) => return Err(e.into()),
            }
        }
        let (account_id, address) = made.ok_or("no free business number after 50 tries")?;
        senders.push(Sender {
            account_id,
            channel,
            fake_key: key.unwrap_or_else(|| address.clone()),
            address,
            rate: load.sender_rate,
        });
    }
    Ok(OutSetup {
        api_key: tenant.key,
        senders,
    })
}

fn send_body(setup: &OutSetup, contacts: u32, i: usize) -> serde_json::Value {
    let s = &setup.senders[i % setup.senders.len()];
    let contact = (i / setup.senders.len()) as u32 % contacts.max(1);
    let name = if s.channel == "twilio-whatsapp" {
        "HXb5b62575e6e4ff6129ad7c8efe1f983e"
    } else {
        "hello_world"
    };
    json!({
        "to": format!("+316{:08}", 20_000_000 + contact),
        "channel": s.channel,
        "from": s.address,
        "template": {"name": name, "language": "en_US"},
    })
}

/// What a submission run got back.
#[derive(Default)]
struct Submitted {
    /// Accepted message id → microseconds (tool clock) when the 202 arrived.
    accepted: HashMap<String, u64>,
    statuses: BTreeMap<u16, usize>,
    transport_errors: usize,
    first_us: u64,
    last_us: u64,
}

/// Submits sends `range` over `load.connections` keep-alive connections until done or `stop`.
async fn submit(
    base: &str,
    setup: &Arc<OutSetup>,
    load: &SendLoad,
    range: std::ops::Range<usize>,
    origin: Instant,
    stop: Option<Arc<AtomicBool>>,
) -> Submitted {
    let next = Arc::new(AtomicUsize::new(range.start));
    let end = range.end;
    let started = origin.elapsed().as_micros() as u64;
    let mut workers = Vec::new();
    for _ in 0..load.connections.max(1) {
        let (next, setup, stop) = (next.clone(), setup.clone(), stop.clone());
        let base = base.to_owned();
        let contacts = load.contacts;
        workers.push(tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .http1_only()
                .pool_max_idle_per_host(1)
                .timeout(Duration::from_secs(10))
                .build()
                .expect("a plain HTTP client");
            let mut out = Submitted::default();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= end || stop.as_ref().is_some_and(|s| s.load(Ordering::Relaxed)) {
                    break;
                }
                let res = client
                    .post(format!("{base}/v1/messages"))
                    .bearer_auth(&setup.api_key)
                    .json(&send_body(&setup, contacts, i))
                    .send()
                    .await;
                let Ok(r) = res else {
                    out.transport_errors += 1;
                    continue;
                };
                let status = r.status().as_u16();
                let Ok(body) = r.json::<serde_json::Value>().await else {
                    out.transport_errors += 1;
                    continue;
                };
                *out.statuses.entry(status).or_default() += 1;
                if status == 202
                    && let Some(id) = body["id"].as_str()
                {
                    out.accepted
                        .insert(id.to_owned(), origin.elapsed().as_micros() as u64);
                } else if out.statuses[&status] <= 3 {
                    eprintln!("  send refused: {status} {body}");
                }
            }
            out
        }));
    }
    let mut total = Submitted {
        first_us: started,
        ..Default::default()
    };
    for w in workers {
        if let Ok(o) = w.await {
            total.accepted.extend(o.accepted);
            for (s, n) in o.statuses {
                *total.statuses.entry(s).or_default() += n;
            }
            total.transport_errors += o.transport_errors;
        }
    }
    total.last_us = origin.elapsed().as_micros() as u64;
    total
}

fn percentile_ms(sorted_us: &[u64], p: f64) -> f64 {
    if sorted_us.is_empty() {
        return 0.0;
    }
    let i = ((p / 100.0) * (sorted_us.len() - 1) as f64).round() as usize;
    sorted_us[i] as f64 / 1000.0
}

/// The most arrivals in any half-open 1-second window `[t, t + 1 s)`.
fn busiest_window(sorted_us: &[u64]) -> usize {
    let (mut best, mut lo) = (0, 0);
    for hi in 0..sorted_us.len() {
        while sorted_us[hi] - sorted_us[lo] >= 1_000_000 {
            lo += 1;
        }
        best = best.max(hi - lo + 1);
    }
    best
}

/// Waits until every accepted id reached the fake, no arrival came for `idle`, or `within`.
async fn wait_arrivals(
    fake: &FakeState,
    want: &HashMap<String, u64>,
    idle: Duration,
    within: Duration,
) {
    let until = Instant::now() + within;
    let (mut last_count, mut last_change) = (usize::MAX, Instant::now());
    while Instant::now() < until {
        let count = fake.count();
        if count != last_count {
            last_count = count;
            last_change = Instant::now();
        }
        if count >= want.len() {
            let got: HashSet<String> = fake
                .log
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .iter()
                .map(|a| a.message_id.clone())
                .collect();
            if want.keys().all(|k| got.contains(k)) {
                return;
            }
        }
        if last_change.elapsed() > idle {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Exactly-once check of the arrivals against the accepted ids: (missing, duplicate
/// arrivals, arrivals of ids never accepted).
fn exactly_once(fake: &FakeState, accepted: &HashMap<String, u64>) -> (Vec<String>, usize, usize) {
    let log = fake
        .log
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for a in log.iter() {
        *counts.entry(a.message_id.as_str()).or_default() += 1;
    }
    let missing: Vec<String> = accepted
        .keys()
        .filter(|k| !counts.contains_key(k.as_str()))
        .cloned()
        .collect();
    let duplicates = counts.values().map(|n| n - 1).sum();
    let unknown = counts
        .keys()
        .filter(|k| !accepted.contains_key(**k))
        .count();
    (missing, duplicates, unknown)
}

async fn hold_leases(router: &Router, setup: &OutSetup, hold: bool) -> Result<(), BoxError> {
    use sea_orm::ConnectionTrait;
    let db = router.store().conn();
    if hold {
        let until = chrono::Utc::now().timestamp_millis() + 3_600_000;
        for s in &setup.senders {
            db.execute_unprepared(&format!(
                "INSERT INTO sender_leases (account_id, holder, expires_at) VALUES ('{}', 'switchboard-bench', {until})",
                s.account_id
            ))
            .await?;
        }
    } else {
        db.execute_unprepared("DELETE FROM sender_leases WHERE holder = 'switchboard-bench'")
            .await?;
    }
    Ok(())
}

async fn outbound(a: OutboundArgs) -> Result<(), BoxError> {
    if !a.fake_listen.ip().is_loopback() {
        return Err("the fake provider only listens on loopback".into());
    }
    let server = a.target.server.trim_end_matches('/').to_owned();
    let origin = Instant::now();
    let fake = start_fake_provider(a.fake_listen, origin, None)?;
    if !wait_healthy(&server, Duration::from_secs(10)).await {
        return Err(format!("{server}/health is not healthy").into());
    }
    let router = open_router(&a.target.database_url, &a.target.encryption_key, &server).await?;
    let setup = Arc::new(setup_senders(&router, &a.load).await?);
    println!(
        "outbound: {} sends over {} senders ({} Twilio + {} Meta) at {}/s each ({}/s in all), {} contacts, {} connections{}",
        a.messages,
        setup.senders.len(),
        a.load.twilio_senders,
        a.load.meta_senders,
        a.load.sender_rate,
        a.load.sender_rate as usize * setup.senders.len(),
        a.load.contacts,
        a.load.connections,
        if a.backlog { ", backlog first" } else { "" }
    );
    if a.backlog {
        hold_leases(&router, &setup, true).await?;
    }
    let sub = submit(&server, &setup, &a.load, 0..a.messages, origin, None).await;
    let submit_s = (sub.last_us - sub.first_us) as f64 / 1e6;
    println!(
        "  submitted: {} accepted in {:.2}s = {:.0}/s; statuses {:?}; transport errors {}",
        sub.accepted.len(),
        submit_s,
        sub.accepted.len() as f64 / submit_s.max(1e-9),
        sub.statuses,
        sub.transport_errors
    );
    let released_us = origin.elapsed().as_micros() as u64;
    if a.backlog {
        hold_leases(&router, &setup, false).await?;
    }
    wait_arrivals(
        &fake,
        &sub.accepted,
        Duration::from_secs(20),
        Duration::from_secs_f64(a.max_seconds),
    )
    .await;
    // Late duplicates would arrive now.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (missing, duplicates, unknown) = exactly_once(&fake, &sub.accepted);

    let log = std::mem::take(
        &mut *fake
            .log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );
    let mut times: Vec<u64> = log.iter().map(|x| x.at_us).collect();
    times.sort_unstable();
    let (first, last) = (
        times.first().copied().unwrap_or(0),
        times.last().copied().unwrap_or(0),
    );
    let delivered_s = (last - first) as f64 / 1e6;
    let delivered_rate = (times.len().saturating_sub(1)) as f64 / delivered_s.max(1e-9);
    let mut latencies: Vec<u64> = log
        .iter()
        .filter_map(|x| {
            sub.accepted
                .get(&x.message_id)
                .map(|t| x.at_us.saturating_sub(*t))
        })
        .collect();
    latencies.sort_unstable();
    println!(
        "  delivered: {} arrivals in {:.2}s (first to last) = {:.0}/s{}; latency accept→provider ms p50 {:.1} p90 {:.1} p99 {:.1} max {:.1}",
        times.len(),
        delivered_s,
        delivered_rate,
        if a.backlog {
            format!(
                "; first arrival {:.0} ms after the release",
                (first.saturating_sub(released_us)) as f64 / 1000.0
            )
        } else {
            String::new()
        },
        percentile_ms(&latencies, 50.0),
        percentile_ms(&latencies, 90.0),
        percentile_ms(&latencies, 99.0),
        percentile_ms(&latencies, 100.0),
    );
    let mut by_sender: HashMap<&str, Vec<u64>> = HashMap::new();
    for x in log.iter() {
        by_sender
            .entry(x.sender.as_str())
            .or_default()
            .push(x.at_us);
    }
    let mut per_sender = Vec::new();
    let (mut worst_ratio, mut best_ratio, mut over_limit) = (f64::MAX, 0.0f64, 0);
    for s in &setup.senders {
        let mut t = by_sender.remove(s.fake_key.as_str()).unwrap_or_default();
        t.sort_unstable();
        let span = (t.last().copied().unwrap_or(0) - t.first().copied().unwrap_or(0)) as f64 / 1e6;
        let achieved = t.len().saturating_sub(1) as f64 / span.max(1e-9);
        let ratio = achieved / f64::from(s.rate);
        let busiest = busiest_window(&t);
        worst_ratio = worst_ratio.min(ratio);
        best_ratio = best_ratio.max(ratio);
        if busiest > s.rate as usize {
            over_limit += 1;
        }
        println!(
            "    {:<16} {:>6} sends in {:>6.2}s = {:>7.1}/s of {}/s ({:>5.1}%), busiest 1-s window {}",
            s.channel,
            t.len(),
            span,
            achieved,
            s.rate,
            ratio * 100.0,
            busiest
        );
        per_sender.push(json!({"channel": s.channel, "sends": t.len(), "achieved": achieved, "ratio": ratio, "busiest_window": busiest}));
    }
    println!(
        "  senders: achieved/configured {:.1}% .. {:.1}%; {} sender(s) above the limit in some 1-s window",
        worst_ratio * 100.0,
        best_ratio * 100.0,
        over_limit
    );
    println!(
        "  exactly once: {} accepted, {} missing, {} duplicate arrivals, {} arrivals never accepted",
        sub.accepted.len(),
        missing.len(),
        duplicates,
        unknown
    );
    for m in missing.iter().take(20) {
        println!("    missing {m}");
    }
    let summary = json!({
        "accepted": sub.accepted.len(),
        "accepted_per_second": sub.accepted.len() as f64 / submit_s.max(1e-9),
        "delivered": times.len(),
        "delivered_per_second": delivered_rate,
        "p50_ms": percentile_ms(&latencies, 50.0),
        "p99_ms": percentile_ms(&latencies, 99.0),
        "sender_ratio_min": worst_ratio,
        "sender_ratio_max": best_ratio,
        "senders_over_limit": over_limit,
        "missing": missing.len(),
        "duplicates": duplicates,
        "per_sender": per_sender,
    });
    println!("RESULT {summary}");
    router.store().clone().close().await?;
    if !missing.is_empty() || duplicates > 0 {
        return Err(format!("{} missing, {duplicates} duplicates", missing.len()).into());
    }
    Ok(())
}

fn spawn_outbound_server(a: &CrashOutboundArgs) -> Result<Child, BoxError> {
    let fake = format!("http://{}", a.fake_listen);
    Ok(Command::new(&a.server_bin)
        .arg("serve")
        .env("SWITCHBOARD_DATABASE_URL", &a.database_url)
        .env("SWITCHBOARD_ENCRYPTION_KEY", &a.encryption_key)
        .env("SWITCHBOARD_LISTEN", a.listen.to_string())
        .env("SWITCHBOARD_PUBLIC_URL", format!("http://{}", a.listen))
        .env("SWITCHBOARD_TWILIO_API_BASE", &fake)
        .env("SWITCHBOARD_META_GRAPH_BASE", &fake)
        .env("SWITCHBOARD_DELIVERY_LEASE_MS", a.lease_ms.to_string())
        .env(
            "SWITCHBOARD_DELIVERY_IN_DOUBT_GRACE_MS",
            a.in_doubt_grace_ms.to_string(),
        )
        .env("SWITCHBOARD_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?)
}

async fn crash_outbound(a: CrashOutboundArgs) -> Result<(), BoxError> {
    if !a.listen.ip().is_loopback() || !a.fake_listen.ip().is_loopback() {
        return Err("the crash test only targets loopback".into());
    }
    let base = format!("http://{}", a.listen);
    let origin = Instant::now();
    let fake = start_fake_provider(
        a.fake_listen,
        origin,
        (!a.no_status_reports).then_some(base.as_str()),
    )?;
    let router = open_router(&a.database_url, &a.encryption_key, &base).await?;
    let setup = Arc::new(setup_senders(&router, &a.load).await?);
    let mut accepted: HashMap<String, u64> = HashMap::new();
    let mut offset = 0usize;
    let mut rng = rand::rng();
    let mut in_flight_bound = 0usize;
    for round in 1..=a.kills {
        let mut child = spawn_outbound_server(&a)?;
        if !wait_healthy(&base, Duration::from_secs(20)).await {
            child.kill()?;
            return Err(format!("round {round}: the server did not become healthy").into());
        }
        let stop = Arc::new(AtomicBool::new(false));
        let kill_after = Duration::from_millis(rng.random_range(50..a.max_run_ms.max(51)));
        let pid = child.id();
        let before = fake.count();
        let killer = {
            let stop = stop.clone();
            tokio::spawn(async move {
                tokio::time::sleep(kill_after).await;
                if child.kill().is_err() || child.wait().is_err() {
                    eprintln!("could not kill the server (it had already stopped)");
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
                stop.store(true, Ordering::Relaxed);
            })
        };
        let sub = submit(
            &base,
            &setup,
            &a.load,
            offset..offset + 1_000_000,
            origin,
            Some(stop),
        )
        .await;
        killer.await?;
        offset += sub.statuses.values().sum::<usize>() + sub.transport_errors;
        // At most this many sends are in flight at a kill (README "Delivery").
        in_flight_bound += usize::try_from(switchboard_router::DeliveryConfig::default().batch)
            .unwrap_or(usize::MAX / 4)
            * switchboard_router::outbound::delivery::ROUNDS_IN_FLIGHT;
        println!(
            "round {round:>2}: pid {pid} killed after {} ms; {} accepted; {} arrivals at the fake this round; statuses {:?}; transport errors {}",
            kill_after.as_millis(),
            sub.accepted.len(),
            fake.count() - before,
            sub.statuses,
            sub.transport_errors
        );
        accepted.extend(sub.accepted);
    }
    // A last server delivers what is left (after the dead processes' leases expire).
    let mut child = spawn_outbound_server(&a)?;
    if !wait_healthy(&base, Duration::from_secs(20)).await {
        child.kill()?;
        return Err("the final server did not become healthy".into());
    }
    wait_arrivals(
        &fake,
        &accepted,
        Duration::from_secs(15),
        Duration::from_secs(300),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    child.kill()?;
    child.wait()?;
    let (missing, duplicates, unknown) = exactly_once(&fake, &accepted);
    println!(
        "  {} kills: {} sends accepted; {} lost (never reached the provider); {} duplicate arrivals (bound {}); {} arrivals never accepted (killed between commit and answer)",
        a.kills,
        accepted.len(),
        missing.len(),
        duplicates,
        in_flight_bound,
        unknown
    );
    for m in missing.iter().take(20) {
        println!("    missing {m}");
    }
    println!(
        "RESULT {}",
        json!({"kills": a.kills, "accepted": accepted.len(), "lost": missing.len(), "duplicates": duplicates, "unacknowledged_delivered": unknown})
    );
    router.store().clone().close().await?;
    if !missing.is_empty() {
        return Err(format!("{} accepted sends lost", missing.len()).into());
    }
    Ok(())
}

//! The `switchboard` binary: `serve`, `migrate`, `tenant create NAME`, `tenant list`,
//! `key list TENANT_ID`, `key revoke KEY_ID`.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
use switchboard_core::PhoneParser;
use switchboard_http as http;
use switchboard_router::media::s3::S3MediaStore;
use switchboard_router::media::storage::{LocalMediaStore, SharedMediaStore};
use switchboard_router::tenancy::tenants::{self, Tenants};
use switchboard_router::{Router, Store};
use switchboard_server::config::{
    Cli, Command, Config, KeyCommand, LogArgs, LogFormat, MediaStoreKind, StoreArgs, TenantCommand,
};
use switchboard_server::shutdown::shutdown_signal;
use switchboard_server::{telemetry, wiring};
use tracing_subscriber::EnvFilter;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// mimalloc instead of glibc's malloc: a webhook allocates and frees many small buffers on
/// two threads, and glibc's arenas spent 15% of the server's CPU on it (BENCHMARKS.md,
/// "Session 11").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse_with_env_summary();
    init_tracing(cli.log());
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "Switchboard stopped.");
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(config: &LogArgs) {
    let filter = EnvFilter::try_new(&config.log).unwrap_or_else(|_| EnvFilter::new("info"));
    // Logs go to stderr: stdout is reserved for command output (the API key).
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match config.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

/// The database, migrated: what every command starts with.
async fn open_store(store: &StoreArgs) -> Result<Store, BoxError> {
    let store = store.connect().await?;
    store.migrate().await?;
    Ok(store)
}

/// The router `serve` runs, after checking that the encryption key opens the credentials
/// already stored: a wrong key stops the start with a clear message instead of failing
/// every request that needs an account.
async fn open(config: &Config) -> Result<Router, BoxError> {
    let cipher = config.cipher()?;
    let store = open_store(&config.store).await?;
    let phones = match &config.default_region {
        Some(region) => PhoneParser::with_region(region)?,
        None => PhoneParser::default(),
    };
    let router = Router::builder(store, cipher)
        .adapters(wiring::builtin_adapters(&config.channels, &config.common()))
        .phone_parser(phones)
        .delivery(config.delivery())
        .media_store(open_media_store(config).await?)
        .public_url(config.public_url())
        .build();
    router.accounts().check_encryption_key().await?;
    Ok(router)
}

/// Where media bytes go: the media directory, or the S3 bucket once one request proved it
/// answers to these credentials (a wrong bucket, endpoint or key stops the start with what
/// the store said, instead of failing every media item later).
async fn open_media_store(config: &Config) -> Result<SharedMediaStore, BoxError> {
    Ok(match config.media_store {
        MediaStoreKind::Local => Arc::new(LocalMediaStore::new(config.media_dir())),
        MediaStoreKind::S3 => {
            let settings = config.s3.settings()?;
            let store = S3MediaStore::new(&settings)?;
            store.check_reachable().await?;
            tracing::info!(
                bucket = %settings.bucket,
                prefix = settings.prefix.as_deref().unwrap_or(""),
                endpoint = settings.endpoint.as_deref().unwrap_or("AWS"),
                "Media are kept in S3."
            );
            Arc::new(store)
        }
    })
}

async fn run(cli: Cli) -> Result<(), BoxError> {
    if let Command::Serve(config) = cli.command {
        return serve(*config).await;
    }
    let store = open_store(cli.store()).await?;
    let output = admin_command(&store, &cli.command).await;
    store.close().await?;
    for line in output? {
        println!("{line}");
    }
    Ok(())
}

/// A command other than `serve`, on a migrated database: the lines it prints on stdout.
async fn admin_command(
    store: &Store,
    command: &Command,
) -> Result<Vec<String>, switchboard_router::RouterError> {
    let tenants = Tenants::new(store.clone());
    Ok(match command {
        // `serve` is run before this is reached; `migrate` only needed `open_store`.
        Command::Serve(_) | Command::Migrate(_) => {
            tracing::info!("Migrations applied.");
            Vec::new()
        }
        Command::Tenant(TenantCommand::Create { name, .. }) => {
            vec![tenants.create(name).await?.key]
        }
        Command::Tenant(TenantCommand::List { .. }) => tenants
            .list()
            .await?
            .into_iter()
            .map(|tenant| format!("{}\t{}", tenant.id, tenant.name))
            .collect(),
        Command::Key(KeyCommand::List { tenant_id, .. }) => tenants
            .list_api_keys(tenant_id)
            .await?
            .iter()
            .map(key_line)
            .collect(),
        Command::Key(KeyCommand::Revoke { key_id, .. }) => {
            vec![key_line(&tenants.revoke_api_key(None, key_id).await?)]
        }
    })
}

/// One key per line, tab-separated: id, role, `active` or `revoked <time>`, name.
fn key_line(key: &tenants::ApiKeyView) -> String {
    let state = match &key.revoked_at {
        Some(at) => format!("revoked {at}"),
        None => "active".to_owned(),
    };
    format!(
        "{}\t{}\t{state}\t{}",
        key.id,
        key.role.as_str(),
        key.name.as_deref().unwrap_or("")
    )
}

async fn serve(config: Config) -> Result<(), BoxError> {
    let started = Instant::now();
    // Before anything answers: a stop asked for from now on is a clean stop.
    let shutdown = shutdown_signal()?;
    let metrics = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full("switchboard_send_latency_seconds".into()),
            &[
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ],
        )?
        .install_recorder()?;
    telemetry::describe_metrics();
    let upkeep = metrics.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(5)).await;
            upkeep.run_upkeep();
        }
    });

    // Every connection is a file descriptor: take all the process may have.
    let limits = match http::raise_open_files_limit() {
        Ok(open_files) => config.serve_limits().within_open_files(open_files),
        Err(e) => {
            tracing::warn!(error = %e, "Could not raise the open-files limit.");
            config.serve_limits()
        }
    };
    let router = open(&config).await?;
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let delivery = {
        let router = router.clone();
        tokio::spawn(async move { router.run_workers(stop_rx).await })
    };
    tracing::info!(
        listen = %listener.local_addr()?,
        public_url = %config.public_url(),
        channels = ?router.adapters(),
        max_connections = limits.max_connections,
        header_read_timeout_ms = limits.header_read_timeout.as_millis(),
        startup_ms = started.elapsed().as_millis(),
        "Switchboard is serving."
    );
    let state = http::AppState::new(router.clone(), Some(metrics));
    let streams = state.stream_closer();
    let app = http::app(state);
    // Open console event streams would hold a graceful shutdown forever: end them first.
    let shutdown = async move {
        shutdown.await;
        streams.close();
    };
    http::serve(listener, app, limits, shutdown).await?;
    tracing::info!("HTTP stopped; finishing deliveries in flight.");
    // The engine stops after its in-flight sends; a send error means it already ended.
    if stop_tx.send(true).is_ok()
        && let Err(e) = delivery.await
    {
        tracing::warn!(error = %e, "The delivery engine ended abnormally.");
    }
    router.store().clone().close().await?;
    tracing::info!("Switchboard stopped cleanly.");
    Ok(())
}

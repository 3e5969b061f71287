//! The `switchboard` binary: `serve`, `migrate`, `tenant create NAME`.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
use switchboard_core::PhoneParser;
use switchboard_router::config::{Cli, Command, Config, LogFormat, TenantCommand};
use switchboard_router::{Router, Store, http, wiring};
use tracing_subscriber::EnvFilter;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(&cli.config);
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "Switchboard stopped.");
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(config: &Config) {
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

async fn open(config: &Config) -> Result<Router, BoxError> {
    let cipher = config.cipher()?;
    let store = Store::connect(&config.database_url, config.sqlite_sync()).await?;
    store.migrate().await?;
    let phones = match &config.default_region {
        Some(region) => PhoneParser::with_region(region)?,
        None => PhoneParser::default(),
    };
    Ok(Router::builder(store, cipher)
        .adapters(wiring::builtin_adapters(config))
        .phone_parser(phones)
        .delivery(config.delivery())
        .media_store(std::sync::Arc::new(
            switchboard_router::media::LocalMediaStore::new(config.media_dir()),
        ))
        .public_url(config.public_url())
        .build())
}

async fn run(cli: Cli) -> Result<(), BoxError> {
    let config = cli.config;
    match cli.command {
        Command::Migrate => {
            let store = Store::connect(&config.database_url, config.sqlite_sync()).await?;
            store.migrate().await?;
            tracing::info!("Migrations applied.");
            store.close().await?;
            Ok(())
        }
        Command::Tenant(TenantCommand::Create { name }) => {
            let router = open(&config).await?;
            let key = router.create_tenant(&name).await?;
            println!("{}", key.key);
            router.store().clone().close().await?;
            Ok(())
        }
        Command::Serve => serve(config).await,
    }
}

async fn serve(config: Config) -> Result<(), BoxError> {
    let started = Instant::now();
    let metrics = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full("switchboard_send_latency_seconds".into()),
            &[
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ],
        )?
        .install_recorder()?;
    http::describe_metrics();
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
        tokio::spawn(async move { router.run_delivery(stop_rx).await })
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
    let app = http::app(http::AppState::new(router.clone(), Some(metrics)));
    http::serve(listener, app, limits, shutdown_signal()).await?;
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

async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
    tracing::info!("Shutdown signal received.");
}

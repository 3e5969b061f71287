//! Configuration: environment variables, overridden by flags (api.md fixes the names).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::crypto::{CredentialCipher, CryptoError};
use crate::store::SqliteSync;

/// Switchboard: a unified WhatsApp messaging router (Twilio and Meta Cloud API).
#[derive(Debug, Parser)]
#[command(
    name = "switchboard",
    version,
    about = "Switchboard: a unified WhatsApp messaging router (Twilio and Meta Cloud API).",
    long_about = None
)]
pub struct Cli {
    #[command(flatten)]
    pub config: Config,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run migrations, then serve HTTP and the delivery engine.
    Serve,
    /// Apply pending migrations and exit.
    Migrate,
    /// Manage tenants.
    #[command(subcommand)]
    Tenant(TenantCommand),
}

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Create a tenant; prints its first admin API key on stdout (one line).
    Create {
        /// The tenant's name.
        name: String,
    },
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum SqliteSyncArg {
    #[default]
    Full,
    Normal,
}

/// Every setting, from the environment or flags.
#[derive(Clone, Debug, Args)]
pub struct Config {
    /// SQLite file (`sqlite://file.db?mode=rwc`) or `postgres://…`.
    #[arg(
        long,
        env = "SWITCHBOARD_DATABASE_URL",
        default_value = "sqlite://switchboard.db?mode=rwc",
        global = true
    )]
    pub database_url: String,
    /// HTTP listen address.
    #[arg(
        long,
        env = "SWITCHBOARD_LISTEN",
        default_value = "127.0.0.1:8080",
        global = true
    )]
    pub listen: SocketAddr,
    /// The base URL providers call (Twilio signs the full URL it called). Default: `http://<listen>`.
    #[arg(long, env = "SWITCHBOARD_PUBLIC_URL", global = true)]
    pub public_url: Option<String>,
    /// Base64 32-byte key for credentials at rest. Without it, SQLite uses a key file
    /// beside the database (created on first start); PostgreSQL refuses to start.
    #[arg(
        long,
        env = "SWITCHBOARD_ENCRYPTION_KEY",
        hide_env_values = true,
        global = true
    )]
    pub encryption_key: Option<String>,
    /// Twilio REST base URL.
    #[arg(
        long,
        env = "SWITCHBOARD_TWILIO_API_BASE",
        default_value = "https://api.twilio.com",
        global = true
    )]
    pub twilio_api_base: String,
    /// Meta Graph API base URL.
    #[arg(
        long,
        env = "SWITCHBOARD_META_GRAPH_BASE",
        default_value = "https://graph.facebook.com",
        global = true
    )]
    pub meta_graph_base: String,
    /// Meta Graph API version.
    #[arg(
        long,
        env = "SWITCHBOARD_META_API_VERSION",
        default_value = "v25.0",
        global = true
    )]
    pub meta_api_version: String,
    /// ISO region for phone numbers written without a country code (e.g. NL).
    #[arg(long, env = "SWITCHBOARD_DEFAULT_REGION", global = true)]
    pub default_region: Option<String>,
    /// Tracing filter (e.g. `info`, `switchboard_router=debug`).
    #[arg(long, env = "SWITCHBOARD_LOG", default_value = "info", global = true)]
    pub log: String,
    /// Log format.
    #[arg(long, env = "SWITCHBOARD_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
    /// SQLite fsync policy: `full` survives power loss, `normal` only process crashes.
    #[arg(long, env = "SWITCHBOARD_SQLITE_SYNCHRONOUS", value_enum, default_value_t = SqliteSyncArg::Full, global = true)]
    pub sqlite_synchronous: SqliteSyncArg,
    /// How long a claimed outbox entry stays leased to one process (milliseconds). After a
    /// crash its entries are resent when the lease expires; a lease must outlast the slowest
    /// send. Default 30000.
    #[arg(long, env = "SWITCHBOARD_DELIVERY_LEASE_MS", global = true)]
    pub delivery_lease_ms: Option<u64>,
    /// How long a message whose send may have begun before a crash waits for a provider
    /// status proving it arrived before it is sent again (milliseconds). Default 120000.
    #[arg(long, env = "SWITCHBOARD_DELIVERY_IN_DOUBT_GRACE_MS", global = true)]
    pub delivery_in_doubt_grace_ms: Option<u64>,
    /// Where media files are kept. Default: `<sqlite file>.media` beside the SQLite
    /// database, or `./switchboard-media` with PostgreSQL.
    #[arg(long, env = "SWITCHBOARD_MEDIA_DIR", global = true)]
    pub media_dir: Option<PathBuf>,
}

impl Config {
    /// The base URL providers call.
    pub fn public_url(&self) -> String {
        self.public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.listen))
            .trim_end_matches('/')
            .to_owned()
    }

    /// Delivery engine settings: defaults with the configured overrides.
    pub fn delivery(&self) -> crate::router::DeliveryConfig {
        let mut d = crate::router::DeliveryConfig::default();
        if let Some(ms) = self.delivery_lease_ms {
            d.lease = std::time::Duration::from_millis(ms.max(1));
        }
        if let Some(ms) = self.delivery_in_doubt_grace_ms {
            d.in_doubt_grace = std::time::Duration::from_millis(ms);
        }
        d
    }

    /// The media directory: configured, else beside the SQLite file, else `./switchboard-media`.
    pub fn media_dir(&self) -> PathBuf {
        if let Some(dir) = &self.media_dir {
            return dir.clone();
        }
        match self.sqlite_path() {
            Some(db) => {
                let mut name = db.file_name().map(|n| n.to_os_string()).unwrap_or_default();
                name.push(".media");
                db.with_file_name(name)
            }
            None => PathBuf::from("switchboard-media"),
        }
    }

    pub fn sqlite_sync(&self) -> SqliteSync {
        match self.sqlite_synchronous {
            SqliteSyncArg::Full => SqliteSync::Full,
            SqliteSyncArg::Normal => SqliteSync::Normal,
        }
    }

    pub fn is_postgres(&self) -> bool {
        self.database_url.starts_with("postgres:") || self.database_url.starts_with("postgresql:")
    }

    /// The SQLite database file, when the database is a SQLite file.
    pub fn sqlite_path(&self) -> Option<PathBuf> {
        let rest = self.database_url.strip_prefix("sqlite:")?;
        let rest = rest.trim_start_matches("//");
        let path = rest.split('?').next().unwrap_or("");
        (!path.is_empty() && !path.contains(":memory:")).then(|| PathBuf::from(path))
    }

    /// The credential cipher, per api.md: the configured key; else on SQLite a key file
    /// beside the database (created with a warning); on PostgreSQL an error.
    ///
    /// # Errors
    /// [`ConfigError`] saying what is missing or wrong.
    pub fn cipher(&self) -> Result<CredentialCipher, ConfigError> {
        if let Some(key) = &self.encryption_key {
            return Ok(CredentialCipher::from_base64(key)?);
        }
        if self.is_postgres() {
            return Err(ConfigError::MissingKey);
        }
        match self.sqlite_path() {
            Some(db) => {
                let mut name = db.file_name().map(|n| n.to_os_string()).unwrap_or_default();
                name.push(".key");
                let path = db.with_file_name(name);
                let (cipher, created) = CredentialCipher::from_key_file(&path)?;
                if created {
                    tracing::warn!(
                        path = %path.display(),
                        "SWITCHBOARD_ENCRYPTION_KEY is not set: generated a key file beside the database. Back it up; without it stored credentials cannot be read."
                    );
                }
                Ok(cipher)
            }
            // An in-memory database lives as long as the process; so may its key.
            None => Ok(CredentialCipher::from_base64(
                &CredentialCipher::generate_key(),
            )?),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "SWITCHBOARD_ENCRYPTION_KEY is required with PostgreSQL (base64 of 32 random bytes, e.g. `openssl rand -base64 32`)"
    )]
    MissingKey,
    #[error(transparent)]
    Crypto(#[from] CryptoError),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(args).unwrap()
    }

    #[test]
    fn defaults_match_the_contract() {
        let cli = parse(&["switchboard", "serve"]);
        let c = cli.config;
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.public_url(), "http://127.0.0.1:8080");
        assert_eq!(c.sqlite_path(), Some(PathBuf::from("switchboard.db")));
        assert_eq!(c.media_dir(), PathBuf::from("switchboard.db.media"));
        assert!(!c.is_postgres());
    }

    #[test]
    fn flags_work_after_the_subcommand() {
        let cli = parse(&[
            "switchboard",
            "serve",
            "--listen",
            "127.0.0.1:9",
            "--public-url",
            "https://x.example/",
        ]);
        assert_eq!(cli.config.listen.to_string(), "127.0.0.1:9");
        assert_eq!(cli.config.public_url(), "https://x.example");
        let cli = parse(&["switchboard", "tenant", "create", "acme"]);
        assert!(
            matches!(cli.command, Command::Tenant(TenantCommand::Create { ref name }) if name == "acme")
        );
    }

    #[test]
    fn postgres_without_a_key_is_refused() {
        let cli = parse(&["switchboard", "serve", "--database-url", "postgres://x/y"]);
        assert!(matches!(cli.config.cipher(), Err(ConfigError::MissingKey)));
    }
}

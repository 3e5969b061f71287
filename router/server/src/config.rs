//! Configuration: environment variables, overridden by flags (api.md fixes the names).
//!
//! Each command takes only the settings it uses, so its `--help` lists only those: the
//! database and logging settings are shared ([`StoreArgs`], [`LogArgs`]), the server's are
//! [`Config`]. `switchboard --help` lists every variable and the commands that read it.
//! Channels' own settings are theirs: [`Config`] flattens them from the wiring
//! ([`crate::wiring::ChannelSettings`]), and names no provider here.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};

use switchboard_core::CommonSettings;
use switchboard_core::secrecy::SecretString;
use switchboard_router::media::s3::S3Settings;
use switchboard_router::store::SqliteSync;
use switchboard_router::store::crypto::{CredentialCipher, CryptoError};

use crate::wiring::ChannelSettings;

/// Switchboard: a unified messaging router.
#[derive(Debug, Parser)]
#[command(
    name = "switchboard",
    version,
    about = "Switchboard: a unified messaging router.",
    long_about = None
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// Parses the command line, exiting with clap's message on a bad one. `--help` at the top
    /// ends with every environment variable and the commands that read it.
    pub fn parse_with_env_summary() -> Self {
        let command = Self::command();
        let summary = env_summary(&command);
        let matches = command.after_help(summary).get_matches();
        Self::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
    }

    /// The logging settings of whichever command runs.
    pub fn log(&self) -> &LogArgs {
        &self.store().log
    }

    /// The database settings of whichever command runs.
    pub fn store(&self) -> &StoreArgs {
        match &self.command {
            Command::Serve(c) => &c.store,
            Command::Migrate(s)
            | Command::Tenant(
                TenantCommand::Create { store: s, .. } | TenantCommand::List { store: s },
            )
            | Command::Key(
                KeyCommand::List { store: s, .. } | KeyCommand::Revoke { store: s, .. },
            ) => s,
        }
    }
}

/// The top-level help's epilogue: one line per variable, its flag and the commands that
/// read it (or "every command").
fn env_summary(root: &clap::Command) -> String {
    /// (variable, flag, commands), in the order first met.
    type Vars = Vec<(String, String, Vec<String>)>;
    fn walk(cmd: &clap::Command, path: &str, vars: &mut Vars, leaves: &mut usize) {
        if !path.is_empty() && !cmd.has_subcommands() {
            *leaves += 1;
        }
        for arg in cmd.get_arguments() {
            let (Some(env), Some(flag)) = (arg.get_env(), arg.get_long()) else {
                continue;
            };
            let env = env.to_string_lossy().into_owned();
            match vars.iter_mut().find(|(e, _, _)| *e == env) {
                Some((_, _, used_by)) => used_by.push(path.to_owned()),
                None => vars.push((env, format!("--{flag}"), vec![path.to_owned()])),
            }
        }
        for sub in cmd.get_subcommands() {
            let sub_path = if path.is_empty() {
                sub.get_name().to_owned()
            } else {
                format!("{path} {}", sub.get_name())
            };
            walk(sub, &sub_path, vars, leaves);
        }
    }
    let (mut vars, mut leaves) = (Vars::new(), 0);
    walk(root, "", &mut vars, &mut leaves);
    let width = vars
        .iter()
        .map(|(e, f, _)| e.len() + f.len())
        .max()
        .unwrap_or(0)
        + 3;
    let mut text = String::from(
        "Configuration: environment variables, each overridden by its flag given after the \
         command (`switchboard serve --listen 0.0.0.0:8080`). `switchboard <command> --help` \
         describes them.\n",
    );
    for (env, flag, used_by) in vars {
        let pad = width - env.len() - flag.len();
        let used_by = if used_by.len() == leaves {
            "every command".to_owned()
        } else {
            used_by.join(", ")
        };
        text.push_str(&format!("  {env} ({flag}){:pad$}{used_by}\n", ""));
    }
    text
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run migrations, then serve HTTP and the delivery engine.
    Serve(Box<Config>),
    /// Apply pending migrations and exit.
    Migrate(StoreArgs),
    /// Manage tenants.
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// Manage API keys.
    #[command(subcommand)]
    Key(KeyCommand),
}

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Create a tenant; prints its first admin API key on stdout (one line).
    Create {
        /// The tenant's name.
        name: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List tenants: one line each, its id and name, oldest first.
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// List a tenant's API keys (never their secrets): id, role, state, name.
    List {
        /// The tenant's id (`ten_…`, from `switchboard tenant list`).
        tenant_id: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Revoke an API key: requests with it are refused (401) from now on.
    Revoke {
        /// The key's id (`key_…`, from `switchboard key list`), not its secret.
        key_id: String,
        #[command(flatten)]
        store: StoreArgs,
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

/// Logging: every command.
#[derive(Clone, Debug, Args)]
pub struct LogArgs {
    /// Tracing filter (e.g. `info`, `switchboard_router=debug`).
    #[arg(long, env = "SWITCHBOARD_LOG", default_value = "info")]
    pub log: String,
    /// Log format.
    #[arg(long, env = "SWITCHBOARD_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// The database: every command.
#[derive(Clone, Debug, Args)]
pub struct StoreArgs {
    /// SQLite file (`sqlite://file.db`, created if missing) or `postgres://…`.
    #[arg(
        long,
        env = "SWITCHBOARD_DATABASE_URL",
        default_value = "sqlite://switchboard.db?mode=rwc"
    )]
    pub database_url: String,
    /// SQLite fsync policy: `full` survives power loss, `normal` only process crashes.
    #[arg(long, env = "SWITCHBOARD_SQLITE_SYNCHRONOUS", value_enum, default_value_t = SqliteSyncArg::Full)]
    pub sqlite_synchronous: SqliteSyncArg,
    #[command(flatten)]
    pub log: LogArgs,
}

impl StoreArgs {
    /// The URL to connect with: a SQLite file without an explicit `mode` is opened
    /// read-write and created if missing (`mode=rwc`), as the default URL is, instead of
    /// failing with "unable to open database file" on a first start.
    pub fn connect_url(&self) -> String {
        let url = self.database_url.trim();
        if !url.starts_with("sqlite:") || url.contains(":memory:") {
            return url.to_owned();
        }
        match url.split_once('?') {
            Some((_, query)) if query.split('&').any(|p| p.starts_with("mode=")) => url.to_owned(),
            Some((path, "")) => format!("{path}?mode=rwc"),
            Some(_) => format!("{url}&mode=rwc"),
            None => format!("{url}?mode=rwc"),
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
        let rest = self.database_url.trim().strip_prefix("sqlite:")?;
        let rest = rest.trim_start_matches("//");
        let path = rest.split('?').next().unwrap_or("");
        (!path.is_empty() && !path.contains(":memory:")).then(|| PathBuf::from(path))
    }

    /// Connects to the database (without migrating).
    ///
    /// # Errors
    /// The database's error.
    pub async fn connect(&self) -> Result<switchboard_router::Store, sea_orm::DbErr> {
        switchboard_router::Store::connect(&self.connect_url(), self.sqlite_sync()).await
    }
}

/// `serve`: the database, the credentials key, the server and its channels.
#[derive(Clone, Debug, Args)]
pub struct Config {
    #[command(flatten)]
    pub store: StoreArgs,
    /// HTTP listen address.
    #[arg(long, env = "SWITCHBOARD_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// The base URL providers call (signatures over the URL are checked against it, not the
    /// Host header). Default: `http://<listen>`.
    #[arg(long, env = "SWITCHBOARD_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Base64 32-byte key for credentials at rest. Without it, SQLite uses a key file
    /// beside the database (created on first start); PostgreSQL refuses to start.
    #[arg(long, env = "SWITCHBOARD_ENCRYPTION_KEY", hide_env_values = true)]
    pub encryption_key: Option<SecretSetting>,
    /// Each channel's own settings, as its adapter declares them.
    #[command(flatten)]
    pub channels: ChannelSettings,
    /// ISO region for phone numbers written without a country code (e.g. NL).
    #[arg(long, env = "SWITCHBOARD_DEFAULT_REGION")]
    pub default_region: Option<String>,
    /// How long a claimed outbox entry stays leased to one process (milliseconds). After a
    /// crash its entries are resent when the lease expires; a lease must outlast the slowest
    /// send. Default 30000.
    #[arg(long, env = "SWITCHBOARD_DELIVERY_LEASE_MS")]
    pub delivery_lease_ms: Option<u64>,
    /// How long a message whose send may have begun before a crash waits for a provider
    /// status proving it arrived before it is sent again (milliseconds). Default 120000.
    #[arg(long, env = "SWITCHBOARD_DELIVERY_IN_DOUBT_GRACE_MS", global = true)]
    pub delivery_in_doubt_grace_ms: Option<u64>,
    /// How long after a message is queued on a channel a `failed`/`undelivered` status
    /// saying the recipient cannot be reached there still sends it on its next fallback
    /// channel (milliseconds). Default 86400000 (24 hours).
    #[arg(long, env = "SWITCHBOARD_FALLBACK_WINDOW_MS")]
    pub fallback_window_ms: Option<u64>,
    /// How often every active account's template catalog is synced with its provider
    /// (milliseconds). Default 21600000 (6 hours).
    #[arg(long, env = "SWITCHBOARD_TEMPLATE_SYNC_EVERY_MS", value_parser = clap::value_parser!(u64).range(1000..))]
    pub template_sync_every_ms: Option<u64>,
    /// Where media files are kept. Default: `<sqlite file>.media` beside the SQLite
    /// database, or `./switchboard-media` with PostgreSQL.
    #[arg(long, env = "SWITCHBOARD_MEDIA_DIR")]
    pub media_dir: Option<PathBuf>,
    /// Where media bytes are kept: `local` (the media directory) or `s3` (an S3-compatible
    /// bucket, the `SWITCHBOARD_S3_*` settings).
    #[arg(long, env = "SWITCHBOARD_MEDIA_STORE", value_enum, default_value_t = MediaStoreKind::Local)]
    pub media_store: MediaStoreKind,
    #[command(flatten)]
    pub s3: S3Args,
    // HTTP listener limits (router/http/src/serve.rs).
    /// Connections served at once; one more is answered 503 and closed. Lowered to what the
    /// open-files limit holds.
    #[arg(long, env = "SWITCHBOARD_MAX_CONNECTIONS", default_value_t = switchboard_http::DEFAULT_MAX_CONNECTIONS as u64, value_parser = clap::value_parser!(u64).range(1..), global = true)]
    pub max_connections: u64,
    /// Milliseconds a client has to send a request's headers, and that a keep-alive
    /// connection may stay idle between requests. Default 10000.
    #[arg(long, env = "SWITCHBOARD_HEADER_READ_TIMEOUT_MS", value_parser = clap::value_parser!(u64).range(1..), global = true)]
    pub header_read_timeout_ms: Option<u64>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum MediaStoreKind {
    #[default]
    Local,
    S3,
}

/// The S3-compatible bucket media is kept in with `SWITCHBOARD_MEDIA_STORE=s3`.
#[derive(Clone, Args)]
pub struct S3Args {
    /// The bucket (required with `SWITCHBOARD_MEDIA_STORE=s3`; it must exist).
    #[arg(long, env = "SWITCHBOARD_S3_BUCKET")]
    pub s3_bucket: Option<String>,
    /// Keys go under this prefix (`<prefix>/ab/cd/<sha256>`). Default: the bucket's root.
    #[arg(long, env = "SWITCHBOARD_S3_PREFIX")]
    pub s3_prefix: Option<String>,
    /// An S3-compatible server's URL (MinIO, Ceph, R2…), addressed path-style. Default: AWS.
    #[arg(long, env = "SWITCHBOARD_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,
    /// The bucket's region.
    #[arg(long, env = "SWITCHBOARD_S3_REGION", default_value = "us-east-1")]
    pub s3_region: String,
    /// Access key id; with the secret key. Without both: the instance's role (EC2 metadata).
    #[arg(long, env = "SWITCHBOARD_S3_ACCESS_KEY_ID", hide_env_values = true)]
    pub s3_access_key_id: Option<String>,
    /// Secret access key; never logged.
    #[arg(long, env = "SWITCHBOARD_S3_SECRET_ACCESS_KEY", hide_env_values = true)]
    pub s3_secret_access_key: Option<String>,
    /// Allow an `http://` endpoint (a server on a private network); off, only HTTPS.
    #[arg(long, env = "SWITCHBOARD_S3_ALLOW_HTTP")]
    pub s3_allow_http: bool,
}

impl std::fmt::Debug for S3Args {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redacted = |v: &Option<String>| v.as_ref().map(|_| "[redacted]");
        f.debug_struct("S3Args")
            .field("s3_bucket", &self.s3_bucket)
            .field("s3_prefix", &self.s3_prefix)
            .field("s3_endpoint", &self.s3_endpoint)
            .field("s3_region", &self.s3_region)
            .field("s3_access_key_id", &redacted(&self.s3_access_key_id))
            .field(
                "s3_secret_access_key",
                &redacted(&self.s3_secret_access_key),
            )
            .field("s3_allow_http", &self.s3_allow_http)
            .finish()
    }
}

impl S3Args {
    /// The engine's settings, checked: a bucket, both keys or neither, and an `http://`
    /// endpoint only when allowed.
    ///
    /// # Errors
    /// [`ConfigError::S3`] naming the setting to fix.
    pub fn settings(&self) -> Result<S3Settings, ConfigError> {
        let bad = |why: &str| Err(ConfigError::S3(why.to_owned()));
        let Some(bucket) = self.s3_bucket.clone().filter(|b| !b.trim().is_empty()) else {
            return bad("SWITCHBOARD_S3_BUCKET is required with SWITCHBOARD_MEDIA_STORE=s3");
        };
        if self.s3_access_key_id.is_some() != self.s3_secret_access_key.is_some() {
            return bad(
                "set both SWITCHBOARD_S3_ACCESS_KEY_ID and SWITCHBOARD_S3_SECRET_ACCESS_KEY, or neither (the instance's role)",
            );
        }
        if let Some(endpoint) = &self.s3_endpoint {
            let scheme = endpoint
                .split_once("://")
                .map(|(s, _)| s.to_ascii_lowercase());
            match scheme.as_deref() {
                Some("https") => {}
                Some("http") if self.s3_allow_http => {}
                Some("http") => {
                    return bad(
                        "SWITCHBOARD_S3_ENDPOINT is plain http://: set SWITCHBOARD_S3_ALLOW_HTTP=true to allow it, or use https://",
                    );
                }
                _ => return bad("SWITCHBOARD_S3_ENDPOINT must be an https:// (or http://) URL"),
            }
        }
        Ok(S3Settings {
            bucket,
            prefix: self.s3_prefix.clone(),
            endpoint: self.s3_endpoint.clone(),
            region: self.s3_region.clone(),
            access_key_id: self.s3_access_key_id.clone(),
            secret_access_key: self.s3_secret_access_key.clone().map(SecretString::from),
            allow_http: self.s3_allow_http,
        })
    }
}

impl Config {
    /// The HTTP listener's limits.
    pub fn serve_limits(&self) -> switchboard_http::ServeLimits {
        switchboard_http::ServeLimits {
            max_connections: usize::try_from(self.max_connections).unwrap_or(usize::MAX),
            header_read_timeout: self.header_read_timeout_ms.map_or(
                switchboard_http::DEFAULT_HEADER_READ_TIMEOUT,
                std::time::Duration::from_millis,
            ),
        }
    }
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

    /// What every channel may be built with besides its own settings.
    pub fn common(&self) -> CommonSettings {
        CommonSettings::new(self.public_url())
    }

    /// Delivery engine settings: defaults with the configured overrides.
    pub fn delivery(&self) -> switchboard_router::DeliveryConfig {
        let mut d = switchboard_router::DeliveryConfig::default();
        if let Some(ms) = self.delivery_lease_ms {
            d.lease = std::time::Duration::from_millis(ms.max(1));
        }
        if let Some(ms) = self.delivery_in_doubt_grace_ms {
            d.in_doubt_grace = std::time::Duration::from_millis(ms);
        }
        if let Some(ms) = self.fallback_window_ms {
            d.fallback_window = std::time::Duration::from_millis(ms);
        }
        if let Some(ms) = self.template_sync_every_ms {
            d.template_sync_every = std::time::Duration::from_millis(ms);
        }
        d
    }

    /// The media directory: configured, else beside the SQLite file, else `./switchboard-media`.
    pub fn media_dir(&self) -> PathBuf {
        if let Some(dir) = &self.media_dir {
            return dir.clone();
        }
        match self.store.sqlite_path() {
            Some(db) => {
                let mut name = db.file_name().map(|n| n.to_os_string()).unwrap_or_default();
                name.push(".media");
                db.with_file_name(name)
            }
            None => PathBuf::from("switchboard-media"),
        }
    }

    /// The credential cipher, per api.md: the configured key; else on SQLite a key file
    /// beside the database (created with a warning); on PostgreSQL an error.
    ///
    /// # Errors
    /// [`ConfigError`] saying what is missing or wrong.
    pub fn cipher(&self) -> Result<CredentialCipher, ConfigError> {
        if let Some(key) = &self.encryption_key {
            return CredentialCipher::from_base64(&key.0).map_err(ConfigError::BadKey);
        }
        if self.store.is_postgres() {
            return Err(ConfigError::MissingKey);
        }
        match self.store.sqlite_path() {
            Some(db) => {
                let mut name = db.file_name().map(|n| n.to_os_string()).unwrap_or_default();
                name.push(".key");
                let path = db.with_file_name(name);
                let (cipher, created) =
                    CredentialCipher::from_key_file(&path).map_err(|e| match e {
                        CryptoError::KeyFile { .. } => ConfigError::Crypto(e),
                        bad_key => ConfigError::BadKeyFile {
                            path: path.display().to_string(),
                            source: bad_key,
                        },
                    })?;
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
    #[error(
        "SWITCHBOARD_ENCRYPTION_KEY is not usable: {0} (make one with `openssl rand -base64 32`)"
    )]
    BadKey(#[source] CryptoError),
    #[error("the key file {path} is not usable: {source}")]
    BadKeyFile { path: String, source: CryptoError },
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    #[error("media store: {0}")]
    S3(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(args).unwrap()
    }

    fn serve_config(args: &[&str]) -> Config {
        match parse(args).command {
            Command::Serve(c) => *c,
            other => panic!("not serve: {other:?}"),
        }
    }

    #[test]
    fn a_configuration_never_shows_its_encryption_key() {
        let key = CredentialCipher::generate_key();
        let c = serve_config(&["switchboard", "serve", "--encryption-key", &key]);
        let shown = format!("{c:?}");
        assert!(!shown.contains(&key), "{shown}");
        assert!(shown.contains("[REDACTED]"), "{shown}");
        assert!(c.cipher().is_ok(), "the key itself is still used");
    }

    #[test]
    fn defaults_match_the_contract() {
        let c = serve_config(&["switchboard", "serve"]);
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.public_url(), "http://127.0.0.1:8080");
        assert_eq!(c.store.sqlite_path(), Some(PathBuf::from("switchboard.db")));
        assert_eq!(c.media_dir(), PathBuf::from("switchboard.db.media"));
        assert!(!c.store.is_postgres());
        assert_eq!(c.store.connect_url(), "sqlite://switchboard.db?mode=rwc");
    }

    #[test]
    fn flags_work_after_the_subcommand() {
        let c = serve_config(&[
            "switchboard",
            "serve",
            "--listen",
            "127.0.0.1:9",
            "--public-url",
            "https://x.example/",
        ]);
        assert_eq!(c.listen.to_string(), "127.0.0.1:9");
        assert_eq!(c.public_url(), "https://x.example");
        let cli = parse(&["switchboard", "tenant", "create", "acme"]);
        assert!(
            matches!(cli.command, Command::Tenant(TenantCommand::Create { ref name, .. }) if name == "acme")
        );
    }

    #[test]
    fn commands_refuse_flags_they_do_not_use() {
        // `tenant create` does not listen: `--listen` is not one of its flags.
        assert!(
            Cli::try_parse_from(["switchboard", "tenant", "create", "a", "--listen", "x"]).is_err()
        );
        let cli = parse(&[
            "switchboard",
            "tenant",
            "create",
            "a",
            "--database-url",
            "sqlite://t.db",
        ]);
        let Command::Tenant(TenantCommand::Create { store, .. }) = cli.command else {
            panic!("tenant create")
        };
        assert_eq!(store.database_url, "sqlite://t.db");
    }

    #[test]
    fn a_sqlite_url_without_a_mode_creates_the_file() {
        let url = |u: &str| {
            serve_config(&["switchboard", "serve", "--database-url", u])
                .store
                .connect_url()
        };
        assert_eq!(url("sqlite://a.db"), "sqlite://a.db?mode=rwc");
        assert_eq!(url("sqlite:a.db?"), "sqlite:a.db?mode=rwc");
        assert_eq!(
            url("sqlite://a.db?cache=shared"),
            "sqlite://a.db?cache=shared&mode=rwc"
        );
        // An explicit mode is the operator's choice.
        assert_eq!(url("sqlite://a.db?mode=ro"), "sqlite://a.db?mode=ro");
        assert_eq!(url("sqlite::memory:"), "sqlite::memory:");
        assert_eq!(url("postgres://h/db"), "postgres://h/db");
    }

    #[test]
    fn the_top_level_help_lists_every_variable_and_its_commands() {
        let summary = env_summary(&Cli::command());
        for var in [
            "SWITCHBOARD_DATABASE_URL",
            "SWITCHBOARD_LISTEN",
            "SWITCHBOARD_ENCRYPTION_KEY",
            "SWITCHBOARD_LOG_FORMAT",
            "SWITCHBOARD_MEDIA_DIR",
            "SWITCHBOARD_MEDIA_STORE",
            "SWITCHBOARD_S3_BUCKET",
            "SWITCHBOARD_S3_SECRET_ACCESS_KEY",
        ] {
            assert!(summary.contains(var), "{var} missing from:\n{summary}");
        }
        let line = |var: &str| {
            summary
                .lines()
                .find(|l| l.trim_start().starts_with(&format!("{var} ")))
                .unwrap_or_default()
                .to_owned()
        };
        assert!(line("SWITCHBOARD_LISTEN").ends_with(" serve"), "{summary}");
        assert!(
            line("SWITCHBOARD_DATABASE_URL").ends_with(" every command"),
            "{summary}"
        );
    }

    #[test]
    fn media_stay_local_unless_s3_is_chosen_and_s3_settings_are_checked() {
        let c = serve_config(&["switchboard", "serve"]);
        assert_eq!(c.media_store, MediaStoreKind::Local);
        let s3 = |extra: &[&str]| {
            let mut args = vec!["switchboard", "serve", "--media-store", "s3"];
            args.extend_from_slice(extra);
            serve_config(&args).s3.settings()
        };
        let refused = |extra: &[&str]| match s3(extra) {
            Err(ConfigError::S3(why)) => why,
            other => panic!("accepted {extra:?}: {other:?}"),
        };
        assert!(refused(&[]).contains("SWITCHBOARD_S3_BUCKET is required"));
        assert!(
            refused(&["--s3-bucket", "b", "--s3-access-key-id", "AKIA"])
                .contains("SWITCHBOARD_S3_SECRET_ACCESS_KEY")
        );
        let plain = ["--s3-bucket", "b", "--s3-endpoint", "http://minio:9000"];
        assert!(refused(&plain).contains("SWITCHBOARD_S3_ALLOW_HTTP"));
        assert!(refused(&["--s3-bucket", "b", "--s3-endpoint", "minio:9000"]).contains("https://"));

        let ok = s3(&[
            "--s3-bucket",
            "b",
            "--s3-prefix",
            "sb",
            "--s3-endpoint",
            "http://minio:9000",
            "--s3-allow-http",
            "--s3-access-key-id",
            "AKIA-ID",
            "--s3-secret-access-key",
            "very-secret",
        ])
        .unwrap();
        assert_eq!(ok.bucket, "b");
        assert_eq!(ok.prefix.as_deref(), Some("sb"));
        assert_eq!(ok.region, "us-east-1");
        assert!(ok.allow_http);
        // Neither the engine's settings nor the command line's show the secret.
        let c = serve_config(&[
            "switchboard",
            "serve",
            "--s3-access-key-id",
            "AKIA-ID",
            "--s3-secret-access-key",
            "very-secret",
        ]);
        for debug in [format!("{ok:?}"), format!("{c:?}")] {
            assert!(!debug.contains("very-secret"), "{debug}");
            assert!(debug.contains("[redacted]"), "{debug}");
        }
    }

    #[test]
    fn postgres_without_a_key_is_refused() {
        let c = serve_config(&["switchboard", "serve", "--database-url", "postgres://x/y"]);
        assert!(matches!(c.cipher(), Err(ConfigError::MissingKey)));
    }
}

/// A setting whose value is a secret (the encryption key): read like any string, never
/// shown by `Debug`, so a logged configuration cannot leak it.
#[derive(Clone)]
pub struct SecretSetting(pub String);

impl std::str::FromStr for SecretSetting {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_owned()))
    }
}

impl std::fmt::Debug for SecretSetting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[REDACTED]")
    }
}

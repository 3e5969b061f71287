//! Connected provider accounts: connecting, listing, disconnecting, and resolving the
//! account a webhook or an outbox entry belongs to (decrypted credentials, cached briefly).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseBackend, EntityTrait, QueryFilter, QueryOrder,
};
use serde::Serialize;
use switchboard_core::{AccountContext, Credentials, HealthReport, PhoneNumber, PhoneParser};

use crate::error::{Result, RouterError};
use crate::events::{EventBus, RouterEvent};
use crate::ids::{self, now_ms};
use crate::store::Store;
use crate::store::crypto::{CredentialCipher, CryptoError};
use crate::store::entity::channel_accounts;
use crate::store::is_unique_violation;
use crate::store::json_rows::{self, Col};
use crate::tenancy::account_state::{self, AccountState};
use crate::tenancy::registry::AdapterRegistry;

/// How long a resolved account is trusted before it is read again, so a disconnect made by
/// another process takes effect within this time.
const CACHE_TTL: Duration = Duration::from_secs(10);

/// An account as the API shows it: never its credentials.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AccountView {
    pub id: String,
    pub channel: String,
    pub address: String,
    pub active: bool,
    /// Messages per second this sender may send (the channel's default when not set).
    pub rate_per_second: Option<i32>,
    /// Credential names present (values are never returned).
    pub credential_names: Vec<String>,
    pub created_at: String,
    pub disconnected_at: Option<String>,
    /// What the provider reports about it: `quality`, `messaging_limit`, `restrictions`,
    /// `updated_at`.
    #[serde(flatten)]
    pub state: AccountState,
}

/// A resolved account: decrypted context plus what the router needs beside it.
#[derive(Debug)]
pub(crate) struct Account {
    pub(crate) ctx: AccountContext,
    pub(crate) channel: String,
    pub(crate) rate_per_second: Option<i32>,
}

/// A cached look-up: the account (or its absence) and when it was read.
type Cached<T> = (T, Instant);
/// (channel, routing key).
type RouteKey = (String, String);
/// Every active account of one channel.
type ChannelAccounts = Arc<[Arc<Account>]>;

/// How many routing keys' look-ups are kept. Routing reads the keys of a webhook before its
/// signature is checked, and a key that names no account is cached too (a customer's own
/// number, on every message they send); the bound keeps unauthenticated traffic with
/// ever-new keys from growing the cache, and its eviction keeps the keys seen often.
const ROUTE_CACHE_ITEMS: usize = 65_536;

pub(crate) struct AccountCache {
    by_route: quick_cache::sync::Cache<RouteKey, Cached<Option<Arc<Account>>>>,
    by_id: RwLock<HashMap<String, Cached<Arc<Account>>>>,
    /// Every active account of a channel, for channel-wide webhooks. Keyed by channels that
    /// have an adapter only (the caller checks), so it cannot grow with what webhooks name.
    by_channel: RwLock<HashMap<String, Cached<ChannelAccounts>>>,
    /// Channels' account lists read from the database (cache misses).
    channel_reads: AtomicU64,
    /// Routing keys read from the database (cache misses).
    route_reads: AtomicU64,
    /// Database queries that read them.
    route_queries: AtomicU64,
}

impl Default for AccountCache {
    fn default() -> Self {
        Self {
            by_route: quick_cache::sync::Cache::new(ROUTE_CACHE_ITEMS),
            by_id: RwLock::default(),
            by_channel: RwLock::default(),
            channel_reads: AtomicU64::new(0),
            route_reads: AtomicU64::new(0),
            route_queries: AtomicU64::new(0),
        }
    }
}

impl AccountCache {
    fn route(&self, channel: &str, key: &str) -> Option<Option<Arc<Account>>> {
        self.by_route
            .get(&(channel.to_owned(), key.to_owned()))
            .filter(|(_, at)| at.elapsed() < CACHE_TTL)
            .map(|(a, _)| a)
    }

    fn put_route(&self, channel: &str, key: &str, account: Option<Arc<Account>>) {
        self.by_route.insert(
            (channel.to_owned(), key.to_owned()),
            (account, Instant::now()),
        );
    }

    fn id(&self, id: &str) -> Option<Arc<Account>> {
        let map = self.by_id.read().unwrap_or_else(PoisonError::into_inner);
        map.get(id)
            .filter(|(_, at)| at.elapsed() < CACHE_TTL)
            .map(|(a, _)| a.clone())
    }

    fn put_id(&self, account: Arc<Account>) {
        let mut map = self.by_id.write().unwrap_or_else(PoisonError::into_inner);
        map.insert(account.ctx.account_id.clone(), (account, Instant::now()));
    }

    fn channel(&self, channel: &str) -> Option<ChannelAccounts> {
        let map = self
            .by_channel
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        map.get(channel)
            .filter(|(_, at)| at.elapsed() < CACHE_TTL)
            .map(|(a, _)| a.clone())
    }

    fn put_channel(&self, channel: &str, accounts: ChannelAccounts) {
        let mut map = self
            .by_channel
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        map.insert(channel.to_owned(), (accounts, Instant::now()));
    }

    pub(crate) fn clear(&self) {
        self.by_route.clear();
        self.by_id
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        self.by_channel
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

/// The connected accounts: connecting and disconnecting them, and resolving the account a
/// webhook or an outbox entry belongs to. Owns the account cache.
pub struct Accounts {
    store: Store,
    events: Arc<EventBus>,
    cipher: CredentialCipher,
    adapters: AdapterRegistry,
    phones: PhoneParser,
    cache: AccountCache,
}

fn aad(tenant_id: &str, account_id: &str, channel: &str) -> String {
    format!("{tenant_id}|{account_id}|{channel}")
}

fn view(
    row: &channel_accounts::Model,
    credential_names: Vec<String>,
    state: AccountState,
) -> AccountView {
    AccountView {
        id: row.id.clone(),
        channel: row.channel.clone(),
        address: row.address.clone(),
        active: row.active,
        rate_per_second: row.rate_per_second,
        credential_names,
        created_at: ids::rfc3339(row.created_at),
        disconnected_at: row.disconnected_at.map(ids::rfc3339),
        state,
    }
}

impl Accounts {
    pub(crate) fn new(
        store: Store,
        events: Arc<EventBus>,
        cipher: CredentialCipher,
        adapters: AdapterRegistry,
        phones: PhoneParser,
    ) -> Self {
        Self {
            store,
            events,
            cipher,
            adapters,
            phones,
            cache: AccountCache::default(),
        }
    }

    /// Connects a provider account for `tenant_id`: validates the address and credentials
    /// with the channel's adapter, stores the credentials encrypted.
    ///
    /// # Errors
    /// `unknown_channel`, `invalid_address`, `invalid_credentials` (400), `account_exists`
    /// (409) when the number is already connected, or a database error.
    pub async fn connect(
        &self,
        tenant_id: &str,
        channel: &str,
        address: &str,
        credentials: &serde_json::Value,
        rate_per_second: Option<i32>,
    ) -> Result<AccountView> {
        let adapter = self.adapters.get(channel).ok_or_else(|| {
            RouterError::invalid("unknown_channel", format!("no channel named {channel:?}"))
        })?;
        // The names the channel declares, before the adapter checks the values.
        let declared = credentials.as_object().ok_or_else(|| {
            RouterError::invalid("invalid_credentials", "credentials must be a JSON object")
        })?;
        switchboard_core::check_declared_credentials(
            adapter.channel(),
            adapter.credential_fields(),
            declared,
        )
        .map_err(|message| RouterError::invalid("invalid_credentials", message))?;
        let address = self
            .phones
            .parse(address)
            .map_err(|e| RouterError::invalid("invalid_address", e.to_string()))?;
        let setup = adapter
            .connect_account(&address, credentials)
            .map_err(|e| RouterError::invalid("invalid_credentials", e.message().to_owned()))?;
        if let Some(rate) = rate_per_second
            && !(1..=10_000).contains(&rate)
        {
            return Err(RouterError::invalid(
                "invalid_rate",
                "rate_per_second must be between 1 and 10000",
            ));
        }
        let id = ids::new_id(ids::ACCOUNT);
        let plaintext = serde_json::to_vec(&setup.credentials.expose_json()).unwrap_or_default();
        let sealed = self.cipher.seal(&plaintext, &aad(tenant_id, &id, channel));
        let row = channel_accounts::ActiveModel {
            id: Set(id),
            tenant_id: Set(tenant_id.to_owned()),
            channel: Set(channel.to_owned()),
            address: Set(address.to_string()),
            routing_key: Set(setup.routing_key),
            credentials_enc: Set(sealed),
            active: Set(true),
            rate_per_second: Set(rate_per_second),
            created_at: Set(now_ms()),
            disconnected_at: Set(None),
        };
        let row = channel_accounts::Entity::insert(row)
            .exec_with_returning(self.store.write_conn())
            .await
            .map_err(|e| {
                if is_unique_violation(&e) {
                    RouterError::Conflict {
                        code: "account_exists",
                        message: format!(
                            "{address} is already connected on {channel} (here or in another tenant)"
                        ),
                    }
                } else {
                    e.into()
                }
            })?;
        self.clear_cache();
        Ok(view(
            &row,
            setup.credentials.names().map(str::to_owned).collect(),
            AccountState::default(),
        ))
    }

    /// The tenant's accounts, active and disconnected, oldest first.
    ///
    /// # Errors
    /// A database error.
    pub async fn list(&self, tenant_id: &str) -> Result<Vec<AccountView>> {
        let rows = channel_accounts::Entity::find()
            .filter(channel_accounts::Column::TenantId.eq(tenant_id))
            .order_by_asc(channel_accounts::Column::Id)
            .all(self.store.conn())
            .await?;
        let mut states = account_state::read(
            self.store.conn(),
            rows.iter().map(|r| r.id.clone()).collect(),
        )
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let names = self
                .decrypt(&row)
                .map(|c| c.names().map(str::to_owned).collect())
                .unwrap_or_default();
            let state = states.remove(&row.id).unwrap_or_default();
            out.push(view(&row, names, state));
        }
        Ok(out)
    }

    /// Disconnects an account (soft: its history stays, webhooks for it answer 404).
    ///
    /// # Errors
    /// `not_found` for another tenant's or an unknown id; a database error.
    pub async fn disconnect(&self, tenant_id: &str, account_id: &str) -> Result<AccountView> {
        let row = self.account_row(tenant_id, account_id).await?;
        let mut am: channel_accounts::ActiveModel = row.clone().into();
        am.active = Set(false);
        am.disconnected_at = Set(Some(row.disconnected_at.unwrap_or_else(now_ms)));
        let row = sea_orm::ActiveModelTrait::update(am, self.store.write_conn()).await?;
        self.clear_cache();
        let state = account_state::read(self.store.conn(), vec![row.id.clone()])
            .await?
            .remove(&row.id)
            .unwrap_or_default();
        Ok(view(&row, Vec::new(), state))
    }

    /// Checks an account's credentials against its provider.
    ///
    /// # Errors
    /// `not_found`; a database or decryption error.
    pub async fn verify(&self, tenant_id: &str, account_id: &str) -> Result<HealthReport> {
        let row = self.account_row(tenant_id, account_id).await?;
        let ctx = self.context(&row)?;
        let adapter = self
            .adapters
            .get(&row.channel)
            .ok_or(RouterError::NotFound("channel"))?;
        let report = adapter.check_health(&ctx).await;
        let known = account_state::read(self.store.conn(), vec![row.id.clone()])
            .await?
            .remove(&row.id)
            .unwrap_or_default();
        self.record_health(&row, &report, &known).await;
        Ok(report)
    }

    /// Every active account's channel and reported state (nothing reported: the default),
    /// for the metrics scrape.
    ///
    /// # Errors
    /// A database error.
    pub async fn reported_states(&self) -> Result<Vec<(AccountView, AccountState)>> {
        let rows = channel_accounts::Entity::find()
            .filter(channel_accounts::Column::Active.eq(true))
            .order_by_asc(channel_accounts::Column::Id)
            .all(self.store.conn())
            .await?;
        let mut states = account_state::read(
            self.store.conn(),
            rows.iter().map(|r| r.id.clone()).collect(),
        )
        .await?;
        Ok(rows
            .iter()
            .map(|row| {
                let state = states.remove(&row.id).unwrap_or_default();
                (view(row, Vec::new(), state.clone()), state)
            })
            .collect())
    }

    /// Keeps what a health check read about the sender (quality rating, limit tier) in its
    /// state, telling the product when that changed. Returns the state after it, or `None`
    /// when the check read neither or the write failed (logged: the check's answer stands).
    /// `known` is the state read before the check: when the reading changes nothing, nothing
    /// is written (monitors poll every few seconds).
    async fn record_health(
        &self,
        row: &channel_accounts::Model,
        report: &HealthReport,
        known: &AccountState,
    ) -> Option<AccountState> {
        if report.quality.is_none() && report.messaging_limit.is_none() {
            return None;
        }
        let read = (report.quality.as_deref(), report.messaging_limit.as_deref());
        if !known.with_health(read.0, read.1).differs(known) {
            return Some(known.clone());
        }
        let stored = async {
            let txn = self.store.write_txn().await?;
            let (state, changed) = account_state::report(&txn, &row.tenant_id, &row.id, |s| {
                s.with_health(report.quality.as_deref(), report.messaging_limit.as_deref())
            })
            .await?;
            let events: Vec<RouterEvent> = changed
                .then(|| RouterEvent::account_state_changed(&row.tenant_id, &row.id, &state))
                .into_iter()
                .collect();
            crate::notify::queue::enqueue_known(&txn, &events, &HashMap::new()).await?;
            txn.commit().await?;
            Ok::<_, sea_orm::DbErr>((state, events))
        }
        .await;
        match stored {
            Ok((state, events)) => {
                self.events.publish(events);
                Some(state)
            }
            Err(e) => {
                tracing::warn!(account_id = %row.id, error = %e, "Could not store what the health check read about the account.");
                None
            }
        }
    }

    /// The tenant's account `account_id`.
    ///
    /// # Errors
    /// `not_found` for another tenant's or an unknown id; a database error.
    pub async fn account_view(&self, tenant_id: &str, account_id: &str) -> Result<AccountView> {
        let row = self.account_row(tenant_id, account_id).await?;
        let names = self
            .decrypt(&row)
            .map(|c| c.names().map(str::to_owned).collect())
            .unwrap_or_default();
        let state = account_state::read(self.store.conn(), vec![row.id.clone()])
            .await?
            .remove(&row.id)
            .unwrap_or_default();
        Ok(view(&row, names, state))
    }

    pub(crate) async fn account_row(
        &self,
        tenant_id: &str,
        account_id: &str,
    ) -> Result<channel_accounts::Model> {
        channel_accounts::Entity::find_by_id(account_id.to_owned())
            .filter(channel_accounts::Column::TenantId.eq(tenant_id))
            .one(self.store.conn())
            .await?
            .ok_or(RouterError::NotFound("account"))
    }

    /// Checks that the configured encryption key opens the credentials already stored, by
    /// opening the newest account's (connected or not). A server started with another key
    /// would otherwise answer every webhook and send for those accounts with an error.
    ///
    /// # Errors
    /// [`CryptoError::WrongKey`](CryptoError::WrongKey) when it does not; a
    /// database error.
    pub async fn check_encryption_key(&self) -> Result<()> {
        let newest = channel_accounts::Entity::find()
            .order_by_desc(channel_accounts::Column::CreatedAt)
            .order_by_desc(channel_accounts::Column::Id)
            .one(self.store.conn())
            .await?;
        match newest {
            Some(row)
                if self
                    .cipher
                    .open(
                        &row.credentials_enc,
                        &aad(&row.tenant_id, &row.id, &row.channel),
                    )
                    .is_err() =>
            {
                Err(CryptoError::WrongKey { account_id: row.id }.into())
            }
            _ => Ok(()),
        }
    }

    fn decrypt(&self, row: &channel_accounts::Model) -> Result<Credentials> {
        let plain = self.cipher.open(
            &row.credentials_enc,
            &aad(&row.tenant_id, &row.id, &row.channel),
        )?;
        let json: serde_json::Value =
            serde_json::from_slice(&plain).map_err(|_| CryptoError::Decrypt)?;
        Credentials::from_json(&json).map_err(|_| CryptoError::Decrypt.into())
    }

    pub(crate) fn context(&self, row: &channel_accounts::Model) -> Result<AccountContext> {
        Ok(AccountContext {
            account_id: row.id.clone(),
            tenant_id: row.tenant_id.clone(),
            address: PhoneNumber::from_trusted_e164(row.address.clone()),
            routing_key: row.routing_key.clone(),
            credentials: self.decrypt(row)?,
        })
    }

    fn resolved(&self, row: &channel_accounts::Model) -> Result<Arc<Account>> {
        Ok(Arc::new(Account {
            ctx: self.context(row)?,
            channel: row.channel.clone(),
            rate_per_second: row.rate_per_second,
        }))
    }

    /// The active accounts a webhook's routing keys name, in the keys' order (`None` for a
    /// key that names none). The keys the cache cannot answer are read in ONE query, so a
    /// webhook costs at most one round trip however many keys it names; the keys are
    /// untrusted, and their number is bounded by the caller ([`MAX_ROUTING_KEYS`]). They are
    /// bound as one JSON array ([`json_rows`]), so the query has one SQL text whatever their
    /// number: a stream of webhooks naming ever other numbers of keys does not fill the
    /// statement caches with one-off texts.
    ///
    /// [`MAX_ROUTING_KEYS`]: switchboard_core::MAX_ROUTING_KEYS
    pub(crate) async fn resolve_routes(
        &self,
        channel: &str,
        routing_keys: &[String],
    ) -> Result<Vec<Option<Arc<Account>>>> {
        let cache = &self.cache;
        let mut resolved: Vec<Option<Option<Arc<Account>>>> = routing_keys
            .iter()
            .map(|key| cache.route(channel, key))
            .collect();
        let missing: Vec<&str> = routing_keys
            .iter()
            .zip(&resolved)
            .filter(|(_, hit)| hit.is_none())
            .map(|(key, _)| key.as_str())
            .collect();
        if !missing.is_empty() {
            cache.route_queries.fetch_add(1, Ordering::Relaxed);
            cache.route_reads.fetch_add(
                u64::try_from(missing.len()).unwrap_or(u64::MAX),
                Ordering::Relaxed,
            );
            let backend = self.store.backend();
            // Each key is one probe of the unique index on active (channel, routing_key).
            // PostgreSQL plans a plain join as a scan of every account; LIMIT 1 in a lateral
            // subquery (one row at most anyway) keeps it probing. SQLite probes either way.
            let account_of_key = match backend {
                DatabaseBackend::Postgres => {
                    "CROSS JOIN LATERAL (SELECT * FROM channel_accounts a \
                     WHERE a.channel = k.c0 AND a.routing_key = k.c1 AND a.active LIMIT 1) a"
                }
                _ => {
                    "JOIN channel_accounts a \
                     ON a.channel = k.c0 AND a.routing_key = k.c1 AND a.active"
                }
            };
            let sql = format!(
                "SELECT a.* FROM ({}) k {account_of_key}",
                json_rows::select(backend, &[Col::Text, Col::Text])
            );
            let wanted: Vec<(&str, &str)> = missing.iter().map(|key| (channel, *key)).collect();
            let rows = channel_accounts::Entity::find()
                .from_raw_sql(json_rows::statement(backend, &sql, &wanted)?)
                .all(self.store.conn())
                .await?;
            let mut by_key = HashMap::with_capacity(rows.len());
            for row in &rows {
                by_key.insert(row.routing_key.as_str(), self.resolved(row)?);
            }
            for (key, slot) in routing_keys.iter().zip(&mut resolved) {
                if slot.is_none() {
                    let account = by_key.get(key.as_str()).cloned();
                    cache.put_route(channel, key, account.clone());
                    *slot = Some(account);
                }
            }
        }
        Ok(resolved.into_iter().map(Option::flatten).collect())
    }

    /// Forgets every resolved account: after a change, and in tests.
    pub(crate) fn clear_cache(&self) {
        self.cache.clear();
    }

    /// How many webhook routing keys were read from the database since this router started
    /// (look-ups the route cache could not answer): for operators watching that cache, and
    /// for tests.
    pub fn route_reads(&self) -> u64 {
        self.cache.route_reads.load(Ordering::Relaxed)
    }

    /// How many database queries read those routing keys: at most one per look-up, however
    /// many keys a webhook names.
    pub fn route_queries(&self) -> u64 {
        self.cache.route_queries.load(Ordering::Relaxed)
    }

    /// An account by id (active or not), for delivering its outbox entries.
    pub(crate) async fn by_id(&self, account_id: &str) -> Result<Arc<Account>> {
        if let Some(hit) = self.cache.id(account_id) {
            return Ok(hit);
        }
        let row = channel_accounts::Entity::find_by_id(account_id.to_owned())
            .one(self.store.conn())
            .await?
            .ok_or(RouterError::NotFound("account"))?;
        let account = self.resolved(&row)?;
        self.cache.put_id(account.clone());
        Ok(account)
    }

    /// Every active account of a registered channel, for a webhook addressed to the channel's
    /// accounts as a whole (`WebhookRoutes::channel_wide`). Read before the webhook's
    /// signature is checked, so it is cached like the routes: unsigned traffic costs at
    /// most one read per channel every [`CACHE_TTL`].
    pub(crate) async fn active_accounts(&self, channel: &str) -> Result<ChannelAccounts> {
        if let Some(hit) = self.cache.channel(channel) {
            return Ok(hit);
        }
        self.cache.channel_reads.fetch_add(1, Ordering::Relaxed);
        let rows = channel_accounts::Entity::find()
            .filter(channel_accounts::Column::Channel.eq(channel))
            .filter(channel_accounts::Column::Active.eq(true))
            .order_by_asc(channel_accounts::Column::Id)
            .all(self.store.conn())
            .await?;
        let accounts: ChannelAccounts = rows
            .iter()
            .map(|r| self.resolved(r))
            .collect::<Result<Vec<_>>>()?
            .into();
        self.cache.put_channel(channel, accounts.clone());
        Ok(accounts)
    }

    /// How many times a channel's active accounts were read from the database for a
    /// channel-wide webhook (look-ups the cache could not answer): for tests and operators.
    pub fn channel_reads(&self) -> u64 {
        self.cache.channel_reads.load(Ordering::Relaxed)
    }

    /// Every active account of a channel (for the subscription handshake).
    pub(crate) async fn active(&self, channel: &str) -> Result<Vec<AccountContext>> {
        let rows = channel_accounts::Entity::find()
            .filter(channel_accounts::Column::Channel.eq(channel))
            .filter(channel_accounts::Column::Active.eq(true))
            .all(self.store.conn())
            .await?;
        rows.iter().map(|r| self.context(r)).collect()
    }
}

impl Accounts {
    /// Checks every active account of every tenant against its provider, concurrently.
    ///
    /// # Errors
    /// A database error.
    pub async fn check_all(&self) -> Result<Vec<(AccountView, HealthReport)>> {
        let rows = channel_accounts::Entity::find()
            .filter(channel_accounts::Column::Active.eq(true))
            .order_by_asc(channel_accounts::Column::Id)
            .all(self.store.conn())
            .await?;
        let mut states = account_state::read(
            self.store.conn(),
            rows.iter().map(|r| r.id.clone()).collect(),
        )
        .await?;
        let checks = rows.into_iter().map(|row| {
            let state = states.remove(&row.id).unwrap_or_default();
            async move {
                let mut report = match (self.context(&row), self.adapters.get(&row.channel)) {
                    (Ok(ctx), Some(adapter)) => adapter.check_health(&ctx).await,
                    (Err(e), _) => down(e.to_string()),
                    (_, None) => down("the channel is not enabled in this build".into()),
                };
                let state = self
                    .record_health(&row, &report, &state)
                    .await
                    .unwrap_or(state);
                degrade_at_risk(&mut report, &state);
                (view(&row, Vec::new(), state), report)
            }
        });
        Ok(futures::future::join_all(checks).await)
    }
}

/// An account the provider reports at risk (yellow or red quality, a restriction or ban)
/// is at best `degraded`, and the reason joins the check's own detail.
fn degrade_at_risk(report: &mut HealthReport, state: &AccountState) {
    let Some(risk) = state.risk() else { return };
    if report.status == switchboard_core::HealthStatus::Up {
        report.status = switchboard_core::HealthStatus::Degraded;
    }
    report.detail = Some(match report.detail.take() {
        Some(detail) => format!("{detail}; {risk}"),
        None => risk,
    });
}

fn down(detail: String) -> HealthReport {
    HealthReport {
        status: switchboard_core::HealthStatus::Down,
        latency: Duration::ZERO,
        checked_at: chrono::Utc::now(),
        detail: Some(detail),
        quality: None,
        messaging_limit: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Routing keys arrive before any signature is checked: a stream of ever-new keys must
    /// neither grow the cache past its bound nor push out a key that is used all the time.
    #[test]
    fn the_route_cache_is_bounded_and_keeps_the_keys_in_use() {
        let cache = AccountCache::default();
        cache.put_route("twilio-whatsapp", "+14155238886", None);
        for i in 0..4 * ROUTE_CACHE_ITEMS {
            if i % 64 == 0 {
                assert!(
                    matches!(cache.route("twilio-whatsapp", "+14155238886"), Some(None)),
                    "the business's key is still cached after {i} junk keys"
                );
            }
            cache.put_route("twilio-whatsapp", &format!("+1{i:010}"), None);
        }
        assert!(cache.by_route.len() <= ROUTE_CACHE_ITEMS + ROUTE_CACHE_ITEMS / 10);
        assert!(cache.route("twilio-whatsapp", "+19999999999").is_none());
    }
}

//! The inbound pipeline's front: the channel's adapter, the accounts a webhook names and
//! signed, parsing, then the group commit ([`crate::inbound::writer`]).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use switchboard_core::{
    ChannelAdapter, EventKind, HandshakeReply, KeyRule, MAX_ROUTING_KEYS, WebhookError,
    WebhookReply, WebhookRequest, WebhookRoutes,
};

use crate::error::{Result, RouterError};
use crate::events::EventBus;
use crate::inbound::job::Job;
use crate::inbound::writer::{BatchStats, Batcher};
use crate::store::Store;
use crate::templates::Templates;
use crate::tenancy::accounts::{Account, Accounts};
use crate::tenancy::registry::AdapterRegistry;

/// What happened to an accepted webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookAck {
    /// The answer the provider expects.
    pub reply: WebhookReply,
    /// Events stored for the first time.
    pub stored: usize,
    /// Events already stored by an earlier delivery.
    pub duplicates: usize,
    /// Items that could not be understood (kept in `webhook_problems`).
    pub problems: usize,
}

/// Checks a webhook's signature against the accounts it may be for, each distinct secret
/// once ([`ChannelAdapter::webhook_secret`]).
struct Verification<'a> {
    adapter: &'a dyn ChannelAdapter,
    request: &'a WebhookRequest,
    /// Whether any connected account was named at all.
    named: bool,
    seen: HashSet<String>,
    by_secret: HashMap<String, std::result::Result<(), WebhookError>>,
    verified: Vec<Arc<Account>>,
    first_error: Option<WebhookError>,
}

impl<'a> Verification<'a> {
    fn new(adapter: &'a dyn ChannelAdapter, request: &'a WebhookRequest) -> Self {
        Self {
            adapter,
            request,
            named: false,
            seen: HashSet::new(),
            by_secret: HashMap::new(),
            verified: Vec::new(),
            first_error: None,
        }
    }

    /// Checks the webhook against `acc` (once per account); whether its secret signed it.
    fn account(&mut self, acc: Arc<Account>) -> bool {
        self.named = true;
        if !self.seen.insert(acc.ctx.account_id.clone()) {
            return false;
        }
        let verdict = match self.adapter.webhook_secret(&acc.ctx) {
            Some(secret) => self
                .by_secret
                .entry(secret.to_owned())
                .or_insert_with(|| self.adapter.verify_webhook(self.request, &acc.ctx))
                .clone(),
            None => self.adapter.verify_webhook(self.request, &acc.ctx),
        };
        match verdict {
            Ok(()) => {
                self.verified.push(acc);
                true
            }
            Err(e) => {
                self.first_error.get_or_insert(e);
                false
            }
        }
    }

    /// The accounts that verified; `UnknownAccount` when none was named, else the first
    /// verification error when none verified.
    fn outcome(self) -> Result<Vec<Arc<Account>>> {
        if !self.named {
            return Err(WebhookError::UnknownAccount.into());
        }
        if self.verified.is_empty() {
            return Err(self
                .first_error
                .unwrap_or(WebhookError::BadSignature)
                .into());
        }
        Ok(self.verified)
    }
}

/// Takes providers' webhooks in: verifies, parses and stores them. Owns the group commit.
pub struct Inbound {
    store: Store,
    adapters: AdapterRegistry,
    accounts: Arc<Accounts>,
    events: Arc<EventBus>,
    batcher: Batcher,
    templates: Arc<Templates>,
}

impl Inbound {
    pub(crate) fn new(
        store: Store,
        adapters: AdapterRegistry,
        accounts: Arc<Accounts>,
        events: Arc<EventBus>,
        templates: Arc<Templates>,
    ) -> Self {
        Self {
            store,
            adapters,
            accounts,
            events,
            batcher: Batcher::default(),
            templates,
        }
    }

    /// Runs a provider's webhook through the inbound pipeline.
    ///
    /// # Errors
    /// [`RouterError::Webhook`] (400/403/404) when the webhook is refused, `unknown_channel`
    /// for a channel with no adapter, a database error (503) when it could not be stored —
    /// then nothing was stored and the provider should retry.
    pub async fn receive_webhook(
        &self,
        channel: &str,
        request: WebhookRequest,
    ) -> Result<WebhookAck> {
        let (adapter, job) = self.verify_and_parse(channel, &request).await?;

        // A deadlock or serialization failure between concurrent webhooks (PostgreSQL) is
        // retried: the whole transaction is idempotent thanks to the event keys.
        let (ack_counts, events, queued) = self
            .store
            .retry_conflicts("webhook", || self.batcher.store(self.store.clone(), &job))
            .await?;
        self.events
            .publish_queued(events, queued.notifications, queued.media);
        self.sync_templates_named_by(&job);
        let (stored, duplicates) = ack_counts;
        Ok(WebhookAck {
            reply: adapter.webhook_reply(),
            stored,
            duplicates,
            problems: job.parsed.problems.len(),
        })
    }

    /// Queues a catalog sync of each account a template notification of the webhook
    /// concerns (its row already shows the change; the sync brings the rest).
    fn sync_templates_named_by(&self, job: &Job) {
        let mut synced = std::collections::BTreeSet::new();
        for event in &job.parsed.events {
            let EventKind::Notification(n) = &event.kind else {
                continue;
            };
            if !crate::templates::is_template_kind(&n.kind) {
                continue;
            }
            for account in job
                .accounts
                .iter()
                .filter(|a| a.ctx.routing_key == event.routing_key)
            {
                if synced.insert(account.ctx.account_id.clone()) {
                    self.templates
                        .queue_sync(&account.ctx.tenant_id, &account.ctx.account_id);
                }
            }
        }
    }

    /// Everything before the write: the channel's adapter, and the webhook verified by the
    /// accounts it names and parsed into what to store.
    async fn verify_and_parse(
        &self,
        channel: &str,
        request: &WebhookRequest,
    ) -> Result<(Arc<dyn ChannelAdapter>, Job)> {
        let adapter = self
            .adapters
            .get(channel)
            .ok_or(RouterError::NotFound("channel"))?
            .clone();
        let routes = adapter.webhook_routes(request)?;
        let accounts = self
            .signed_accounts(channel, &routes, adapter.as_ref(), request)
            .await?;
        let contexts: Vec<&switchboard_core::AccountContext> =
            accounts.iter().map(|a| &a.ctx).collect();
        let mut parsed = adapter.parse_webhook(request, &contexts)?;
        if request.may_carry_nul() {
            parsed.strip_nul_chars();
        }
        let job = Job::new(channel, adapter.clone(), accounts, parsed);
        Ok((adapter, job))
    }

    /// The accounts a webhook is for: the connected accounts its routing keys name (all of
    /// them, or the first, as `rule` says) whose secret signed it, and, when it also carries
    /// items for the channel's accounts as a whole ([`WebhookRoutes::channel_wide`]), every
    /// active account of the channel whose secret signed it. Every account must prove the
    /// body was signed with its own secret; events for an account whose secret did not sign
    /// it are dropped by the adapter, and the adapter attributes channel-wide items only
    /// among the accounts returned here, so an account of a tenant whose secret did not
    /// sign the webhook never gets one.
    ///
    /// The keys are untrusted, so the work is bounded before anything is verified: at most
    /// [`MAX_ROUTING_KEYS`] keys, read in one query (two for `FirstSigned`: the first key
    /// alone, as it is usually the one, then the rest), the channel's accounts read from a
    /// cache, and the signature checked once per distinct secret
    /// ([`ChannelAdapter::webhook_secret`]) rather than once per account.
    ///
    /// # Errors
    /// `malformed_webhook` for more than [`MAX_ROUTING_KEYS`] keys; `UnknownAccount` when no
    /// key names a connected account (and, for a channel-wide webhook, the channel has none);
    /// otherwise the first verification error when none signed it.
    async fn signed_accounts(
        &self,
        channel: &str,
        routes: &WebhookRoutes,
        adapter: &dyn ChannelAdapter,
        request: &WebhookRequest,
    ) -> Result<Vec<Arc<Account>>> {
        let keys = routes.keys.as_slice();
        let rule = adapter.key_rule();
        if keys.len() > MAX_ROUTING_KEYS {
            return Err(RouterError::invalid(
                "malformed_webhook",
                format!(
                    "the webhook names {} accounts; no {channel} webhook names more than {MAX_ROUTING_KEYS}",
                    keys.len()
                ),
            ));
        }
        let (first, rest) = match rule {
            KeyRule::FirstSigned => keys.split_at(keys.len().min(1)),
            KeyRule::EveryKey => keys.split_at(0),
        };
        let mut check = Verification::new(adapter, request);
        for batch in [first, rest] {
            if batch.is_empty() {
                continue;
            }
            for acc in self
                .accounts
                .resolve_routes(channel, batch)
                .await?
                .into_iter()
                .flatten()
            {
                if check.account(acc) && rule == KeyRule::FirstSigned {
                    return Ok(check.verified);
                }
            }
        }
        if routes.channel_wide {
            for acc in self.accounts.active_accounts(channel).await?.iter() {
                check.account(acc.clone());
            }
        }
        check.outcome()
    }

    /// How the inbound group commit has gone since this router started.
    pub fn batch_stats(&self) -> &BatchStats {
        &self.batcher.stats
    }

    /// Answers a provider's subscription handshake (Meta's GET).
    ///
    /// # Errors
    /// `not_found` for an unknown channel; a database error.
    pub async fn answer_handshake(
        &self,
        channel: &str,
        request: &WebhookRequest,
    ) -> Result<HandshakeReply> {
        let adapter = self
            .adapters
            .get(channel)
            .ok_or(RouterError::NotFound("channel"))?;
        let accounts = self.accounts.active(channel).await?;
        Ok(adapter.answer_handshake(request, &accounts))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering::Relaxed;

    use sea_orm::{EntityTrait, PaginatorTrait};
    use switchboard_core::testing::{self, FakeAdapter};
    use switchboard_core::{ContactIdentity, PhoneNumber, PhoneParser, WebhookRequest};

    use super::*;
    use sea_orm::DbErr;
    use tokio::sync::{Notify, oneshot};

    use crate::inbound::writer::{Queued, commit_batch};
    use crate::store::SqliteSync;
    use crate::store::crypto::CredentialCipher;
    use crate::store::entity::{messages, webhook_events};
    use crate::store::turn::WriterTurn;
    use crate::tenancy::tenants::Tenants;

    const BUSINESS: &str = "+14155238886";
    const SECRET: &str = "batch-secret";

    /// Routes naming `keys` only.
    fn keyed(keys: &[String]) -> WebhookRoutes {
        WebhookRoutes {
            keys: keys.to_vec(),
            channel_wide: false,
        }
    }

    fn webhook(key: &str, from: &str) -> WebhookRequest {
        let from = ContactIdentity::from_phone(PhoneNumber::parse(from).unwrap());
        let event = testing::inbound_text(BUSINESS, key, from, "hi");
        FakeAdapter::webhook(BUSINESS, &[event], Some(SECRET))
    }

    /// The inbound pipeline and what it needs, on a fresh SQLite file, with one fake
    /// account connected.
    struct Fixture {
        inbound: Inbound,
        accounts: Arc<Accounts>,
        tenants: Tenants,
        store: Store,
    }

    async fn fixture(dir: &tempfile::TempDir) -> Fixture {
        let url = format!("sqlite://{}/inbound.db?mode=rwc", dir.path().display());
        let store = Store::connect(&url, SqliteSync::Full).await.unwrap();
        store.migrate().await.unwrap();
        let cipher = CredentialCipher::from_base64(&CredentialCipher::generate_key()).unwrap();
        let mut adapters = AdapterRegistry::new();
        adapters.register(Arc::new(FakeAdapter::new()));
        let phones = PhoneParser::with_region("NL").unwrap();
        let events = Arc::new(EventBus::new(
            Arc::new(Notify::new()),
            Arc::new(Notify::new()),
            Arc::new(Notify::new()),
        ));
        let accounts = Arc::new(Accounts::new(
            store.clone(),
            events.clone(),
            cipher,
            adapters.clone(),
            phones,
        ));
        let templates = Arc::new(Templates::new(
            store.clone(),
            adapters.clone(),
            accounts.clone(),
            std::time::Duration::from_secs(3600),
        ));
        let inbound = Inbound::new(store.clone(), adapters, accounts.clone(), events, templates);
        let tenants = Tenants::new(store.clone());
        let tenant = tenants.create("acme").await.unwrap().tenant_id;
        accounts
            .connect(
                &tenant,
                "fake",
                BUSINESS,
                &FakeAdapter::credentials(SECRET),
                None,
            )
            .await
            .unwrap();
        Fixture {
            inbound,
            accounts,
            tenants,
            store,
        }
    }

    /// Whatever an adapter hands over, the keys read before verification are bounded, and
    /// read in one query (two for `FirstSigned`, whose first key is read alone).
    #[tokio::test]
    async fn routing_keys_are_bounded_and_read_in_one_query() {
        let dir = tempfile::tempdir().unwrap();
        let f = fixture(&dir).await;
        let unknown: Vec<String> = (0..=MAX_ROUTING_KEYS)
            .map(|i| format!("+3161{i:07}"))
            .collect();
        let every_key = FakeAdapter::new();
        let first_signed = FakeAdapter::new().with_key_rule(KeyRule::FirstSigned);
        let request = FakeAdapter::webhook(BUSINESS, &[], Some(SECRET));
        let counts = || (f.accounts.route_queries(), f.accounts.route_reads());

        let err = f
            .inbound
            .signed_accounts("fake", &keyed(&unknown), &every_key, &request)
            .await
            .unwrap_err();
        assert_eq!((err.code(), err.http_status()), ("malformed_webhook", 400));
        assert_eq!(counts(), (0, 0), "nothing is read past the bound");

        let mut keys = unknown[..MAX_ROUTING_KEYS - 1].to_vec();
        keys.push(BUSINESS.to_owned());
        let signed = f
            .inbound
            .signed_accounts("fake", &keyed(&keys), &every_key, &request)
            .await
            .unwrap();
        assert_eq!(signed.len(), 1);
        assert_eq!(counts(), (1, MAX_ROUTING_KEYS as u64));

        // FirstSigned: the first key alone, then the rest together.
        let keys = [BUSINESS.to_owned(), unknown[MAX_ROUTING_KEYS].clone()];
        f.accounts.clear_cache();
        let before = counts();
        f.inbound
            .signed_accounts("fake", &keyed(&keys), &first_signed, &request)
            .await
            .unwrap();
        assert_eq!((counts().0 - before.0, counts().1 - before.1), (1, 1));
        let keys = [unknown[MAX_ROUTING_KEYS].clone(), BUSINESS.to_owned()];
        f.accounts.clear_cache();
        let before = counts();
        f.inbound
            .signed_accounts("fake", &keyed(&keys), &first_signed, &request)
            .await
            .unwrap();
        assert_eq!((counts().0 - before.0, counts().1 - before.1), (2, 2));
    }

    /// A webhook naming several accounts that share a secret has it checked once; each of
    /// them is still verified, and an account with another secret is not.
    #[tokio::test]
    async fn a_signature_is_checked_once_per_distinct_secret() {
        let dir = tempfile::tempdir().unwrap();
        let f = fixture(&dir).await;
        let tenant = f.tenants.create("globex").await.unwrap().tenant_id;
        let shared = ["+31201234567", "+31201234568", "+31201234569"];
        for (number, secret) in shared
            .iter()
            .map(|n| (n, SECRET))
            .chain([(&"+31201234560", "other")])
        {
            f.accounts
                .connect(
                    &tenant,
                    "fake",
                    number,
                    &FakeAdapter::credentials(secret),
                    None,
                )
                .await
                .unwrap();
        }
        let adapter = FakeAdapter::new();
        let request = FakeAdapter::webhook(BUSINESS, &[], Some(SECRET));
        let keys: Vec<String> = [BUSINESS, "+31201234560"]
            .into_iter()
            .chain(shared)
            .map(str::to_owned)
            .collect();
        let verified = f
            .inbound
            .signed_accounts("fake", &keyed(&keys), &adapter, &request)
            .await
            .unwrap();
        let mut routed: Vec<&str> = verified
            .iter()
            .map(|a| a.ctx.routing_key.as_str())
            .collect();
        routed.sort_unstable();
        assert_eq!(routed, [BUSINESS, shared[0], shared[1], shared[2]]);
        assert_eq!(adapter.verifications(), 2, "one check per distinct secret");
    }

    /// When a batch fails, nothing of it stays and each of its webhooks is stored again as a
    /// batch of one: the good ones exactly once and answered as if the batch had worked, the
    /// bad one failing alone with nothing of it stored.
    #[tokio::test]
    async fn a_failed_batch_is_rolled_back_and_its_webhooks_retried_alone() {
        let dir = tempfile::tempdir().unwrap();
        let f = fixture(&dir).await;
        let stats = f.inbound.batch_stats();
        // A lone webhook goes by the batch path too.
        f.inbound
            .receive_webhook("fake", webhook("E0", "+31612345600"))
            .await
            .unwrap();
        assert_eq!(stats.batched.load(Relaxed), 1);

        *stats.poisoned_key.lock().unwrap() = Some("BAD".into());
        let mut queued = Vec::new();
        let mut answers = Vec::new();
        for (key, from) in [
            ("E1", "+31612345601"),
            ("E2", "+31612345602"),
            ("E1", "+31612345601"),
            ("E0", "+31612345600"),
            ("BAD", "+31612345609"),
            ("E3", "+31612345600"),
        ] {
            let (_, job) = f
                .inbound
                .verify_and_parse("fake", &webhook(key, from))
                .await
                .unwrap();
            let (reply, answer) = oneshot::channel();
            queued.push(Queued { job, reply });
            answers.push(answer);
        }
        // One batch, as a writer task takes it.
        commit_batch(&f.store, stats, queued, &mut WriterTurn::default()).await;
        let mut outcomes = Vec::new();
        for answer in answers {
            match answer.await.expect("every webhook is answered") {
                Ok((counts, events, _)) => outcomes.push(Some((counts, events.len()))),
                Err(e) => {
                    assert_eq!(e, DbErr::Custom("batch failpoint".into()));
                    outcomes.push(None);
                }
            }
        }
        assert_eq!(
            outcomes,
            [
                Some(((1, 0), 1)),
                Some(((1, 0), 1)),
                Some(((0, 1), 0)),
                Some(((0, 1), 0)),
                None,
                Some(((1, 0), 1)),
            ]
        );
        assert_eq!(stats.split_batches.load(Relaxed), 1);
        assert_eq!(stats.retried_alone.load(Relaxed), 5);
        assert_eq!(
            stats.batched.load(Relaxed),
            1,
            "no webhook of the failed batch counts as batched"
        );

        let db = f.store.conn();
        assert_eq!(messages::Entity::find().count(db).await.unwrap(), 4);
        assert_eq!(webhook_events::Entity::find().count(db).await.unwrap(), 4);
        assert_eq!(
            crate::store::entity::contacts::Entity::find()
                .count(db)
                .await
                .unwrap(),
            3,
            "nothing of the bad webhook stayed"
        );

        // Through the pipeline: the bad webhook is refused with a 503, the other answered.
        let acks = futures::future::join_all(
            [("E4", "+31612345604"), ("BAD", "+31612345609")]
                .map(|(key, from)| f.inbound.receive_webhook("fake", webhook(key, from))),
        )
        .await;
        assert_eq!(acks[0].as_ref().unwrap().stored, 1);
        let refused = acks[1].as_ref().unwrap_err();
        assert_eq!(refused.http_status(), 503, "{refused}");

        // Once it can be stored, it is, for the first time.
        *stats.poisoned_key.lock().unwrap() = None;
        let ack = f
            .inbound
            .receive_webhook("fake", webhook("BAD", "+31612345609"))
            .await
            .unwrap();
        assert_eq!((ack.stored, ack.duplicates), (1, 0));
        assert_eq!(messages::Entity::find().count(db).await.unwrap(), 6);
    }

    /// A pipeline whose writer tasks ended with their runtime still stores a webhook, alone,
    /// before acknowledging it.
    #[test]
    fn a_webhook_is_stored_alone_when_the_writer_tasks_are_gone() {
        let dir = tempfile::tempdir().unwrap();
        let runtime = || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
        };
        let first = runtime();
        let f = first.block_on(fixture(&dir));
        // Starts the writer tasks on the first runtime, then ends them with it.
        first
            .block_on(
                f.inbound
                    .receive_webhook("fake", webhook("E0", "+31612345600")),
            )
            .unwrap();
        drop(first);

        runtime().block_on(async {
            let ack = f
                .inbound
                .receive_webhook("fake", webhook("E1", "+31612345601"))
                .await
                .unwrap();
            assert_eq!((ack.stored, ack.duplicates), (1, 0));
            let stats = f.inbound.batch_stats();
            assert_eq!(stats.batched.load(Relaxed), 2);
            let db = f.store.conn();
            assert_eq!(messages::Entity::find().count(db).await.unwrap(), 2);
            assert_eq!(webhook_events::Entity::find().count(db).await.unwrap(), 2);
        });
    }
}

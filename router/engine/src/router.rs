//! The [`Router`]: the front product code, the HTTP server and the binary use. It builds
//! the engine's components, wires them together and hands them out; it holds no logic of
//! its own.

use std::sync::Arc;

use switchboard_core::{ChannelAdapter, PhoneParser};
use tokio::sync::{Notify, broadcast, watch};

use crate::config::DeliveryConfig;
use crate::error::Result;
use crate::events::relay::Relay;
use crate::events::{Change, EventBus, RouterEvent};
use crate::inbound::pipeline::{Inbound, WebhookAck};
use crate::media::config::MediaConfig;
use crate::media::fetch::MediaFetcher;
use crate::media::library::MediaLibrary;
use crate::media::signer::UrlSigner;
use crate::media::storage::{LocalMediaStore, MediaStore, SharedMediaStore};
use crate::notify::notifier::Notifier;
use crate::outbound::delivery::Delivery;
use crate::outbound::read_receipts::ReadReceipts;
use crate::outbound::reconcile::Reconciler;
use crate::outbound::send::{SendAccepted, SendRequest, Sending};
use crate::records::queries::Records;
use crate::store::Store;
use crate::store::crypto::CredentialCipher;
use crate::templates::Templates;
use crate::tenancy::accounts::Accounts;
use crate::tenancy::registry::AdapterRegistry;
use crate::tenancy::sessions::OperatorSessions;
use crate::tenancy::tenants::Tenants;

/// The engine's components, built once.
struct Components {
    store: Store,
    adapters: AdapterRegistry,
    phones: PhoneParser,
    events: Arc<EventBus>,
    relay: Relay,
    accounts: Arc<Accounts>,
    tenants: Tenants,
    sessions: OperatorSessions,
    records: Records,
    media: Arc<MediaLibrary>,
    inbound: Inbound,
    sending: Sending,
    delivery: Delivery,
    reconciler: Reconciler,
    read_receipts: ReadReceipts,
    fetcher: MediaFetcher,
    notifier: Notifier,
    templates: Arc<Templates>,
    /// Where providers and browsers reach this service (`SWITCHBOARD_PUBLIC_URL`).
    public_url: Option<String>,
}

/// Switchboard's router. Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct Router {
    parts: Arc<Components>,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router")
            .field("adapters", &self.parts.adapters)
            .finish_non_exhaustive()
    }
}

/// Builds a [`Router`].
pub struct RouterBuilder {
    store: Store,
    cipher: CredentialCipher,
    adapters: AdapterRegistry,
    phones: PhoneParser,
    delivery: DeliveryConfig,
    media_store: Option<SharedMediaStore>,
    media: MediaConfig,
    public_url: Option<String>,
}

impl RouterBuilder {
    pub fn new(store: Store, cipher: CredentialCipher) -> Self {
        Self {
            store,
            cipher,
            adapters: AdapterRegistry::new(),
            phones: PhoneParser::default(),
            delivery: DeliveryConfig::default(),
            media_store: None,
            media: MediaConfig::default(),
            public_url: None,
        }
    }

    /// Where media bytes are kept. Default: a [`LocalMediaStore`] in the
    /// system's temporary directory, fit for tests only; the binary configures a durable
    /// directory (`SWITCHBOARD_MEDIA_DIR`).
    #[must_use]
    pub fn media_store(mut self, store: std::sync::Arc<dyn MediaStore>) -> Self {
        self.media_store = Some(store);
        self
    }

    /// Media fetcher settings (retries, backoff).
    #[must_use]
    pub fn media(mut self, media: MediaConfig) -> Self {
        self.media = media;
        self
    }

    /// The public base URL (`SWITCHBOARD_PUBLIC_URL`): signed media links for channels
    /// that fetch media by URL (Twilio) are built on it.
    #[must_use]
    pub fn public_url(mut self, url: impl Into<String>) -> Self {
        self.public_url = Some(url.into().trim_end_matches('/').to_owned());
        self
    }

    /// Registers a channel adapter.
    #[must_use]
    pub fn adapter(mut self, adapter: Arc<dyn ChannelAdapter>) -> Self {
        self.adapters.register(adapter);
        self
    }

    /// Registers every adapter of `registry`.
    #[must_use]
    pub fn adapters(mut self, registry: AdapterRegistry) -> Self {
        self.adapters = registry;
        self
    }

    /// Parses numbers written without a country code as numbers of this region.
    #[must_use]
    pub fn phone_parser(mut self, phones: PhoneParser) -> Self {
        self.phones = phones;
        self
    }

    #[must_use]
    pub fn delivery(mut self, delivery: DeliveryConfig) -> Self {
        self.delivery = delivery;
        self
    }

    pub fn build(self) -> Router {
        self.phones.warm_up();
        let worker_id = crate::ids::new_id("wrk");
        let wake_delivery = Arc::new(Notify::new());
        let wake_notify = Arc::new(Notify::new());
        let wake_media = Arc::new(Notify::new());
        let events = Arc::new(EventBus::new(
            wake_notify.clone(),
            wake_media.clone(),
            wake_delivery.clone(),
        ));
        let media_store: SharedMediaStore = self.media_store.unwrap_or_else(|| {
            Arc::new(LocalMediaStore::new(
                std::env::temp_dir().join("switchboard-media"),
            ))
        });
        let signer = UrlSigner::new(self.cipher.derive_key("switchboard/media-url/v1"));
        let accounts = Arc::new(Accounts::new(
            self.store.clone(),
            events.clone(),
            self.cipher.clone(),
            self.adapters.clone(),
            self.phones,
        ));
        let templates = Arc::new(Templates::new(
            self.store.clone(),
            self.adapters.clone(),
            accounts.clone(),
            self.delivery.template_sync_every,
        ));
        let media = Arc::new(MediaLibrary::new(
            self.store.clone(),
            self.adapters.clone(),
            media_store.clone(),
            signer,
            self.public_url.clone(),
        ));
        let parts = Components {
            tenants: Tenants::new(self.store.clone()),
            sessions: OperatorSessions::new(self.store.clone()),
            records: Records::new(
                self.store.clone(),
                self.adapters.clone(),
                self.phones,
                media.clone(),
            ),
            inbound: Inbound::new(
                self.store.clone(),
                self.adapters.clone(),
                accounts.clone(),
                events.clone(),
                templates.clone(),
            ),
            sending: Sending::new(
                self.store.clone(),
                self.adapters.clone(),
                accounts.clone(),
                self.phones,
                media.clone(),
                events.clone(),
                self.delivery.fallback_window,
                wake_delivery.clone(),
                templates.clone(),
            ),
            delivery: Delivery::new(
                self.store.clone(),
                self.adapters.clone(),
                accounts.clone(),
                media.clone(),
                events.clone(),
                self.delivery.clone(),
                worker_id.clone(),
                wake_delivery,
            ),
            reconciler: Reconciler {
                store: self.store.clone(),
                adapters: self.adapters.clone(),
                accounts: accounts.clone(),
                events: events.clone(),
                config: self.delivery.clone(),
            },
            read_receipts: ReadReceipts::new(
                self.store.clone(),
                self.adapters.clone(),
                accounts.clone(),
            ),
            fetcher: MediaFetcher {
                store: self.store.clone(),
                accounts: accounts.clone(),
                adapters: self.adapters.clone(),
                media_store,
                config: self.media,
                workers: self.delivery.clone(),
                worker_id: worker_id.clone(),
                wake: wake_media,
            },
            notifier: Notifier::new(
                self.store.clone(),
                self.cipher,
                self.delivery,
                worker_id,
                wake_notify,
            ),
            relay: Relay::new(self.store.clone(), events.clone()),
            store: self.store,
            adapters: self.adapters,
            phones: self.phones,
            events,
            accounts,
            media,
            templates,
            public_url: self.public_url,
        };
        Router {
            parts: Arc::new(parts),
        }
    }
}

impl Router {
    pub fn builder(store: Store, cipher: CredentialCipher) -> RouterBuilder {
        RouterBuilder::new(store, cipher)
    }

    /// Accepts a message for delivery (see [`Sending::send`]).
    ///
    /// # Errors
    /// As [`Sending::send`].
    pub async fn send(&self, tenant_id: &str, request: SendRequest) -> Result<SendAccepted> {
        self.parts.sending.send(tenant_id, request).await
    }

    /// Runs a provider's webhook through the inbound pipeline (see
    /// [`Inbound::receive_webhook`]).
    ///
    /// # Errors
    /// As [`Inbound::receive_webhook`].
    pub async fn receive_webhook(
        &self,
        channel: &str,
        request: switchboard_core::WebhookRequest,
    ) -> Result<WebhookAck> {
        self.parts.inbound.receive_webhook(channel, request).await
    }

    /// Runs the background workers until `shutdown` turns true: delivery, status
    /// reconciliation, notifications, media fetching, template syncs and, on PostgreSQL, the
    /// relay of changes between processes. In-flight work finishes first.
    pub async fn run_workers(&self, shutdown: watch::Receiver<bool>) {
        let p = &self.parts;
        tokio::join!(
            p.relay.run(shutdown.clone()),
            p.delivery.run(shutdown.clone()),
            p.reconciler.run(shutdown.clone()),
            p.notifier.run(shutdown.clone()),
            p.fetcher.run(shutdown.clone()),
            p.templates.run(shutdown)
        );
    }

    /// A stream of committed changes (inbound messages, echoes, status changes). A slow
    /// subscriber that falls more than 4,096 events behind sees `Lagged` and should re-read
    /// from the API.
    pub fn subscribe(&self) -> broadcast::Receiver<RouterEvent> {
        self.parts.events.subscribe()
    }

    /// What changed, for live views: this process's committed events and, on PostgreSQL
    /// while [`Router::run_workers`] runs, every other process's on the same database
    /// ([`crate::events::relay`]). A subscriber that falls more than 4,096 changes behind
    /// sees `Lagged` and should reload what it shows.
    pub fn changes(&self) -> broadcast::Receiver<Change> {
        self.parts.events.changes()
    }

    pub fn store(&self) -> &Store {
        &self.parts.store
    }

    pub fn adapters(&self) -> &AdapterRegistry {
        &self.parts.adapters
    }

    pub fn phone_parser(&self) -> &PhoneParser {
        &self.parts.phones
    }

    pub fn accounts(&self) -> &Accounts {
        &self.parts.accounts
    }

    pub fn tenants(&self) -> &Tenants {
        &self.parts.tenants
    }

    /// Where providers and browsers reach this service, without a trailing `/`, when
    /// configured (the webhook URLs to paste into providers' consoles start with it).
    pub fn public_url(&self) -> Option<&str> {
        self.parts.public_url.as_deref()
    }

    /// Sessions of people signed in with an API key (the operator console).
    pub fn sessions(&self) -> &OperatorSessions {
        &self.parts.sessions
    }

    pub fn records(&self) -> &Records {
        &self.parts.records
    }

    pub fn media(&self) -> &MediaLibrary {
        &self.parts.media
    }

    pub fn media_fetcher(&self) -> &MediaFetcher {
        &self.parts.fetcher
    }

    pub fn inbound(&self) -> &Inbound {
        &self.parts.inbound
    }

    /// `send()` itself (its group commit's statistics: [`Sending::commit_stats`]).
    pub fn sending(&self) -> &Sending {
        &self.parts.sending
    }

    pub fn delivery(&self) -> &Delivery {
        &self.parts.delivery
    }

    pub fn reconciler(&self) -> &Reconciler {
        &self.parts.reconciler
    }

    pub fn read_receipts(&self) -> &ReadReceipts {
        &self.parts.read_receipts
    }

    /// The template catalog and its sync.
    pub fn templates(&self) -> &Arc<Templates> {
        &self.parts.templates
    }

    pub fn notifications(&self) -> &Notifier {
        &self.parts.notifier
    }
}

//! The [`Router`]: the one object product code, the HTTP server and the delivery engine use.

use std::sync::Arc;
use std::time::Duration;

use switchboard_core::{ChannelAdapter, PhoneParser};
use tokio::sync::{Notify, broadcast};

use crate::accounts::AccountCache;
use crate::crypto::CredentialCipher;
use crate::events::RouterEvent;
use crate::registry::AdapterRegistry;
use crate::store::Store;

/// Delivery engine settings.
#[derive(Clone, Debug)]
pub struct DeliveryConfig {
    /// How long a claimed outbox entry stays leased to this process.
    pub lease: Duration,
    /// Entries claimed per round.
    pub batch: u64,
    /// Transient failures before a message fails for good.
    pub max_attempts: i32,
    /// First retry delay; doubles per attempt (full jitter), capped by `max_backoff`.
    pub base_backoff: Duration,
    pub max_backoff: Duration,
    /// How often a worker looks again while work is due that it could not take (held by
    /// another process, or waiting for an older message to the same contact).
    pub poll_interval: Duration,
    /// Longest sleep of a worker with nothing due: work of this process wakes it at once
    /// and a retry at its due time, so this only bounds how late it sees work that another
    /// process queued. Looking only reads.
    pub idle_poll: Duration,
    /// Outbound messages without a final status for this long are asked about
    /// (`ChannelAdapter::fetch_status`).
    pub reconcile_after: Duration,
    /// How often the engine looks for such messages.
    pub reconcile_every: Duration,
    /// How long a status for a message not known here is kept for its message to appear
    /// (the send's answer may come after the status); then it is deleted. A status for a
    /// message sent by another system on the same number never finds one.
    pub pending_statuses_kept: Duration,
    /// How long an entry whose send may have begun in a process that died (claimed, lease
    /// expired, outcome never recorded) waits for a provider status naming it before it is
    /// sent again. A status that arrives meanwhile proves the provider has the message, and
    /// it is not resent (see `delivery`).
    pub in_doubt_grace: Duration,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            lease: Duration::from_secs(30),
            batch: 256,
            max_attempts: 8,
            base_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(300),
            poll_interval: Duration::from_millis(250),
            idle_poll: Duration::from_secs(2),
            reconcile_after: Duration::from_secs(15 * 60),
            reconcile_every: Duration::from_secs(60),
            pending_statuses_kept: Duration::from_secs(7 * 24 * 60 * 60),
            in_doubt_grace: Duration::from_secs(120),
        }
    }
}

pub(crate) struct Inner {
    pub(crate) store: Store,
    pub(crate) cipher: CredentialCipher,
    pub(crate) adapters: AdapterRegistry,
    pub(crate) phones: PhoneParser,
    pub(crate) accounts: AccountCache,
    pub(crate) events: broadcast::Sender<RouterEvent>,
    pub(crate) worker_id: String,
    pub(crate) delivery: DeliveryConfig,
    pub(crate) wake_delivery: Notify,
    /// Wakes the notification worker (events were committed).
    pub(crate) wake_notify: Notify,
    /// Wakes the media fetcher (inbound messages were committed).
    pub(crate) wake_media: Notify,
    pub(crate) limits: crate::sender_rate::SenderLimits,
    /// The senders this process may deliver for (see `sender_leases`).
    pub(crate) holds: crate::sender_leases::SenderHolds,
    /// Outbox entries claimed and not finished, per sender.
    pub(crate) claimed: crate::delivery::Claimed,
    /// Group commit of inbound webhooks.
    pub(crate) batcher: crate::inbound::Batcher,
    pub(crate) pacer: crate::pacing::RecipientPacer,
    /// Media bytes (see `media`).
    pub(crate) media_store: crate::media::SharedMediaStore,
    pub(crate) media_signer: crate::media::UrlSigner,
    pub(crate) media: crate::media::MediaConfig,
    /// The base URL providers reach this router at, for signed media links.
    pub(crate) public_url: Option<String>,
}

/// Switchboard's router. Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct Router {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router")
            .field("adapters", &self.inner.adapters)
            .field("worker_id", &self.inner.worker_id)
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
    media_store: Option<crate::media::SharedMediaStore>,
    media: crate::media::MediaConfig,
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
            media: crate::media::MediaConfig::default(),
            public_url: None,
        }
    }

    /// Where media bytes are kept. Default: a [`crate::media::LocalMediaStore`] in the
    /// system's temporary directory, fit for tests only; the binary configures a durable
    /// directory (`SWITCHBOARD_MEDIA_DIR`).
    #[must_use]
    pub fn media_store(mut self, store: std::sync::Arc<dyn crate::media::MediaStore>) -> Self {
        self.media_store = Some(store);
        self
    }

    /// Media fetcher settings (retries, backoff).
    #[must_use]
    pub fn media(mut self, media: crate::media::MediaConfig) -> Self {
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
        let (events, _) = broadcast::channel(4096);
        let media_signer =
            crate::media::UrlSigner::new(self.cipher.derive_key("switchboard/media-url/v1"));
        Router {
            inner: Arc::new(Inner {
                store: self.store,
                cipher: self.cipher,
                adapters: self.adapters,
                phones: self.phones,
                accounts: AccountCache::default(),
                events,
                worker_id: crate::ids::new_id("wrk"),
                delivery: self.delivery,
                wake_delivery: Notify::new(),
                wake_notify: Notify::new(),
                wake_media: Notify::new(),
                limits: crate::sender_rate::SenderLimits::default(),
                holds: crate::sender_leases::SenderHolds::default(),
                claimed: crate::delivery::Claimed::default(),
                batcher: crate::inbound::Batcher::default(),
                pacer: crate::pacing::RecipientPacer::default(),
                media_signer,
                media_store: self.media_store.unwrap_or_else(|| {
                    Arc::new(crate::media::LocalMediaStore::new(
                        std::env::temp_dir().join("switchboard-media"),
                    ))
                }),
                media: self.media,
                public_url: self.public_url,
            }),
        }
    }
}

impl Router {
    pub fn builder(store: Store, cipher: CredentialCipher) -> RouterBuilder {
        RouterBuilder::new(store, cipher)
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub fn adapters(&self) -> &AdapterRegistry {
        &self.inner.adapters
    }

    pub fn phone_parser(&self) -> &PhoneParser {
        &self.inner.phones
    }

    /// A stream of committed changes (inbound messages, echoes, status changes). A slow
    /// subscriber that falls more than 4,096 events behind sees `Lagged` and should re-read
    /// from the API.
    pub fn subscribe(&self) -> broadcast::Receiver<RouterEvent> {
        self.inner.events.subscribe()
    }

    /// Hands committed events to subscribers, and wakes the workers that may have work
    /// from them (queued notifications, inbound media to fetch).
    pub(crate) fn publish(&self, events: Vec<RouterEvent>) {
        if events.is_empty() {
            return;
        }
        self.inner.wake_notify.notify_one();
        if events
            .iter()
            .any(|e| matches!(e, RouterEvent::MessageReceived { .. }))
        {
            self.inner.wake_media.notify_one();
        }
        for e in events {
            // An error only means nobody subscribes right now.
            if self.inner.events.send(e).is_err() {
                break;
            }
        }
    }
}

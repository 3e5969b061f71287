//! `switchboard-meta-cloud`: the Meta WhatsApp Cloud API channel (`meta-whatsapp`).
//!
//! What it knows: Meta's wire formats and rules, as Meta documents them:
//! the GET subscription handshake, `X-Hub-Signature-256` over the raw body, the
//! `whatsapp_business_account` webhook envelope (messages of every documented type,
//! statuses, account-level errors, coexistence echoes, 2026 BSUID and username fields), the
//! Graph API send (every content kind: text, media, location, reaction, contacts, templates
//! with header, body and button parameters, interactive messages; to a phone number or a
//! BSUID) and mark-as-read (with the typing indicator) calls, Meta's error codes and what they mean for a retry,
//! and the phone-number node's health fields.
//!
//! What it does not know: databases, queues, retries, HTTP serving, or which accounts exist.
//! The router hands it raw requests and decrypted account credentials, and stores what it
//! returns. It holds no state beyond one HTTP client and its [`MetaConfig`].
//!
//! Account credentials: `phone_number_id` (digits; also the routing key), `access_token`,
//! `app_secret` and `verify_token`.
//!
//! Webhook subscriptions other than `messages` and `smb_message_echoes` (account, number and
//! template updates, history sync, app state sync, …) are accepted and handed to the router
//! as provider notifications, attributed to the accounts they concern; so are the messages
//! and statuses of group chats.
//!
//! Feature `testing` adds [`testing`]: a fake Graph API server and webhook builders.

mod body;
mod config;
mod errors;
mod health;
mod interactive;
mod media;
mod send;
pub mod signature;
mod template;
mod templates;
mod webhook;
mod wire;

#[cfg(feature = "testing")]
pub mod testing;

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use switchboard_core::{
    AccountContext, AccountSetup, Capabilities, ChannelAdapter, ChannelError, ChannelId,
    CredentialField, Credentials, FetchedMedia, HandshakeReply, HealthReport, MediaItem, MediaKind,
    MediaLimit, OutboundMessage, ParsedWebhook, PhoneNumber, SendReceipt, WebhookError,
    WebhookReply, WebhookRequest, WebhookRoutes,
};

#[cfg(feature = "clap")]
pub use config::MetaSettings;
pub use config::{
    CHANNEL, CRED_ACCESS_TOKEN, CRED_APP_SECRET, CRED_PHONE_NUMBER_ID, CRED_VERIFY_TOKEN,
    CRED_WABA_ID, CREDENTIAL_FIELDS, DEFAULT_API_VERSION, DEFAULT_GRAPH_BASE, MetaConfig,
};

/// The Meta Cloud API adapter.
#[derive(Clone, Debug)]
pub struct MetaCloud {
    config: MetaConfig,
    client: reqwest::Client,
    capabilities: Capabilities,
}

impl MetaCloud {
    /// An adapter with one HTTP client (timeouts, a `User-Agent`: Meta's media hosts refuse
    /// requests without one).
    pub fn new(config: MetaConfig) -> Self {
        let connect_timeout = config.request_timeout.min(Duration::from_secs(5));
        let client = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .connect_timeout(connect_timeout)
            .user_agent(concat!("switchboard-meta-cloud/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_else(|e| {
                // Only a broken TLS setup gets here; a default client still works or fails
                // per request, which health checks report.
                tracing::error!(error = %e, "Could not build the Meta HTTP client; using defaults.");
                reqwest::Client::default()
            });
        Self {
            config,
            client,
            capabilities: config::capabilities(),
        }
    }

    /// The configuration in use.
    pub fn config(&self) -> &MetaConfig {
        &self.config
    }
}

impl Default for MetaCloud {
    fn default() -> Self {
        Self::new(MetaConfig::default())
    }
}

#[async_trait]
impl ChannelAdapter for MetaCloud {
    fn channel(&self) -> &ChannelId {
        &CHANNEL
    }

    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    fn credential_fields(&self) -> &'static [CredentialField] {
        CREDENTIAL_FIELDS
    }

    fn sensitive_headers(&self) -> &'static [&'static str] {
        &[signature::SIGNATURE_HEADER]
    }

    fn connect_account(
        &self,
        _address: &PhoneNumber,
        credentials: &serde_json::Value,
    ) -> Result<AccountSetup, ChannelError> {
        let given = Credentials::from_json(credentials).map_err(ChannelError::invalid)?;
        let mut normalized = given.clone();
        for name in [
            CRED_PHONE_NUMBER_ID,
            CRED_ACCESS_TOKEN,
            CRED_APP_SECRET,
            CRED_VERIFY_TOKEN,
        ] {
            let value = given.require(name)?.trim();
            normalized.insert(name, value);
        }
        let phone_number_id = given.require(CRED_PHONE_NUMBER_ID)?.trim().to_owned();
        if !config::is_graph_id(&phone_number_id) {
            return Err(ChannelError::invalid(
                "credential \"phone_number_id\" must be the number's Graph id: digits only \
                 (WhatsApp Manager → Phone numbers), not the phone number itself",
            ));
        }
        if let Some(waba) = given.get(CRED_WABA_ID) {
            let waba = waba.trim();
            if !config::is_graph_id(waba) {
                return Err(ChannelError::invalid(
                    "credential \"waba_id\" must be the WhatsApp Business Account id: digits only",
                ));
            }
            normalized.insert(CRED_WABA_ID, waba);
        }
        Ok(AccountSetup {
            routing_key: phone_number_id,
            credentials: normalized,
        })
    }

    fn routing_keys(&self, request: &WebhookRequest) -> Result<Vec<String>, WebhookError> {
        Ok(webhook::routes(&request.body)?.keys)
    }

    /// Account-level fields (§14) name no phone_number_id: such a webhook is for every
    /// account whose app secret signed it.
    fn webhook_routes(&self, request: &WebhookRequest) -> Result<WebhookRoutes, WebhookError> {
        webhook::routes(&request.body)
    }

    fn verify_webhook(
        &self,
        request: &WebhookRequest,
        account: &AccountContext,
    ) -> Result<(), WebhookError> {
        webhook::verify(request, account)
    }

    /// The app secret: Meta signs with the app's, so every number of one app verifies alike.
    fn webhook_secret<'a>(&self, account: &'a AccountContext) -> Option<&'a str> {
        webhook::app_secret(account)
    }

    fn parse_webhook(
        &self,
        request: &WebhookRequest,
        accounts: &[&AccountContext],
    ) -> Result<ParsedWebhook, WebhookError> {
        webhook::parse(&request.body, accounts)
    }

    fn webhook_reply(&self) -> WebhookReply {
        WebhookReply {
            status: 200,
            content_type: "text/plain",
            body: Bytes::from_static(b"OK"),
        }
    }

    fn answer_handshake(
        &self,
        request: &WebhookRequest,
        accounts: &[AccountContext],
    ) -> HandshakeReply {
        webhook::handshake(request, accounts)
    }

    async fn send(
        &self,
        account: &AccountContext,
        message: &OutboundMessage,
    ) -> Result<SendReceipt, ChannelError> {
        send::send(&self.client, &self.config, account, message).await
    }

    async fn check_health(&self, account: &AccountContext) -> HealthReport {
        health::check(&self.client, &self.config, account).await
    }

    async fn list_templates(
        &self,
        account: &AccountContext,
        business_account_id: Option<&str>,
    ) -> Result<Vec<switchboard_core::ProviderTemplate>, ChannelError> {
        templates::list(&self.client, &self.config, account, business_account_id).await
    }

    async fn submit_template(
        &self,
        account: &AccountContext,
        business_account_id: Option<&str>,
        submission: &switchboard_core::TemplateSubmission,
    ) -> Result<switchboard_core::ProviderTemplate, ChannelError> {
        templates::submit(
            &self.client,
            &self.config,
            account,
            business_account_id,
            submission,
        )
        .await
    }

    async fn mark_read(
        &self,
        account: &AccountContext,
        provider_message_id: &str,
        typing: bool,
    ) -> Result<(), ChannelError> {
        send::mark_read(
            &self.client,
            &self.config,
            account,
            provider_message_id,
            typing,
        )
        .await
    }

    fn status_error_kind(
        &self,
        error: &switchboard_core::ProviderError,
    ) -> switchboard_core::ErrorKind {
        errors::status_error_kind(&error.code)
    }

    fn media_limit(&self, kind: MediaKind) -> MediaLimit {
        media::media_limit(kind)
    }

    async fn fetch_media(
        &self,
        account: &AccountContext,
        item: &MediaItem,
        max_bytes: u64,
    ) -> Result<FetchedMedia, ChannelError> {
        media::fetch(&self.client, &self.config, account, item, max_bytes).await
    }

    async fn upload_media(
        &self,
        account: &AccountContext,
        bytes: Bytes,
        mime_type: &str,
        filename: Option<&str>,
    ) -> Result<String, ChannelError> {
        media::upload(
            &self.client,
            &self.config,
            account,
            bytes,
            mime_type,
            filename,
        )
        .await
    }
}

//! sea-orm entities, one module per table (see the migrations crate for the schema and
//! why ids are text, timestamps integer milliseconds and JSON text).
#![allow(missing_docs)]

pub mod tenants {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "tenants")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub name: String,
        pub notify_url: Option<String>,
        pub notify_secret_enc: Option<String>,
        pub created_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod api_keys {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "api_keys")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub tenant_id: String,
        pub key_hash: String,
        pub prefix: String,
        pub role: String,
        pub name: Option<String>,
        pub created_at: i64,
        pub revoked_at: Option<i64>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod channel_accounts {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "channel_accounts")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub tenant_id: String,
        pub channel: String,
        pub address: String,
        pub routing_key: String,
        pub credentials_enc: String,
        pub active: bool,
        pub rate_per_second: Option<i32>,
        pub created_at: i64,
        pub disconnected_at: Option<i64>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod contacts {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "contacts")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub tenant_id: String,
        pub e164: Option<String>,
        pub bsuid: Option<String>,
        pub profile_name: Option<String>,
        pub username: Option<String>,
        pub created_at: i64,
        pub updated_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod contact_identities {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "contact_identities")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub kind: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub value: String,
        pub contact_id: String,
        pub created_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod conversations {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "conversations")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub tenant_id: String,
        pub contact_id: String,
        pub account_id: String,
        pub channel: String,
        pub last_message_at: i64,
        /// `last_message_at`'s minute ([`crate::records::conversations::minute_of`]): what
        /// the inbox's index orders by, so that it moves once a minute, not per message.
        pub last_message_minute: i64,
        pub last_inbound_at: Option<i64>,
        pub opted_out_at: Option<i64>,
        pub created_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod messages {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "messages")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub tenant_id: String,
        pub conversation_id: String,
        pub account_id: String,
        pub channel: String,
        pub direction: String,
        pub status: String,
        pub status_rank: i16,
        pub provider_message_id: Option<String>,
        pub content: String,
        pub reply_to: Option<String>,
        pub error_code: Option<String>,
        pub error_message: Option<String>,
        pub raw: Option<String>,
        pub idempotency_key: Option<String>,
        /// SHA-256 of the request first sent with `idempotency_key` (send.rs).
        pub request_hash: Option<String>,
        pub provider_timestamp: Option<i64>,
        /// The channels still to fall back to, as JSON (`outbound::fallback::Fallback`).
        pub fallback: Option<String>,
        pub created_at: i64,
        pub updated_at: i64,
        /// The click-to-WhatsApp ad an inbound message came from, as JSON
        /// (`switchboard_core::Referral`).
        pub referral: Option<String>,
        /// How the provider says an outbound message is billed, as JSON
        /// (`switchboard_core::Pricing`).
        pub pricing: Option<String>,
        /// The first message of the send this one is part of (its own id for the first);
        /// null for inbound messages and sends stored before `m20261211_000001`.
        pub part_of: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod message_status_events {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "message_status_events")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub message_id: String,
        pub status: String,
        pub error_code: Option<String>,
        pub error_message: Option<String>,
        pub raw: Option<String>,
        pub provider_timestamp: Option<i64>,
        pub received_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod pending_statuses {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "pending_statuses")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub channel: String,
        pub provider_message_id: String,
        pub status: String,
        pub error_code: Option<String>,
        pub error_message: Option<String>,
        pub raw: Option<String>,
        pub provider_timestamp: Option<i64>,
        pub received_at: i64,
        /// The status's pricing, as JSON (`switchboard_core::Pricing`).
        pub pricing: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// What a provider reported that is not a 1:1 message or status: account-level
/// notifications (Meta's template, quality, account fields) and group-chat items, one row
/// per (item, account it concerns). `kind` is the provider's name for it (Meta's webhook
/// field, or `group_message` / `group_status`), `raw` the payload as it came.
pub mod provider_notifications {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "provider_notifications")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub tenant_id: String,
        pub account_id: String,
        pub channel: String,
        pub kind: String,
        /// The business account (Meta's WABA id) or the group it is about.
        pub entity_id: Option<String>,
        pub event_key: String,
        pub raw: String,
        pub provider_timestamp: Option<i64>,
        pub received_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// The template catalog: one row per template an account's provider lists.
pub mod templates {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "templates")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub tenant_id: String,
        pub account_id: String,
        pub channel: String,
        pub provider_id: String,
        pub name: String,
        pub language: String,
        pub category: Option<String>,
        pub status: String,
        pub quality: Option<String>,
        pub rejection_reason: Option<String>,
        pub components: String,
        pub variables: String,
        pub header_media: Option<String>,
        pub updated_at: i64,
        pub synced_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// When each account's template catalog was last synced.
pub mod template_catalogs {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "template_catalogs")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub account_id: String,
        pub tenant_id: String,
        pub synced_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod webhook_events {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "webhook_events")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub channel: String,
        pub event_key: String,
        pub tenant_id: String,
        pub account_id: String,
        pub kind: String,
        pub received_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod webhook_problems {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "webhook_problems")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub channel: String,
        pub tenant_id: Option<String>,
        pub account_id: Option<String>,
        pub kind: String,
        pub detail: String,
        pub raw: Option<String>,
        pub received_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod outbox {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "outbox")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub message_id: String,
        pub tenant_id: String,
        pub account_id: String,
        pub conversation_id: String,
        pub attempts: i32,
        pub next_attempt_at: i64,
        pub locked_by: Option<String>,
        pub locked_until: Option<i64>,
        pub ambiguous: bool,
        pub created_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod send_attempts {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "send_attempts")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub message_id: String,
        pub attempt: i32,
        pub started_at: i64,
        pub latency_ms: i32,
        pub outcome: String,
        pub http_status: Option<i32>,
        pub error_code: Option<String>,
        pub error_message: Option<String>,
        pub request: Option<String>,
        pub response: Option<String>,
        /// The channel of this attempt (null on rows from before fallback existed).
        pub channel: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod media {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "media")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub tenant_id: String,
        pub message_id: Option<String>,
        pub item_index: i32,
        pub origin: String,
        pub kind: String,
        pub mime_type: Option<String>,
        pub filename: Option<String>,
        pub size: Option<i64>,
        pub sha256: Option<String>,
        pub account_id: Option<String>,
        pub provider_url: Option<String>,
        pub provider_media_id: Option<String>,
        pub provider_sha256: Option<String>,
        pub state: String,
        pub failure_reason: Option<String>,
        pub attempts: i32,
        pub next_attempt_at: Option<i64>,
        pub locked_by: Option<String>,
        pub locked_until: Option<i64>,
        pub created_at: i64,
        pub updated_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod media_uploads {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "media_uploads")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub media_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub account_id: String,
        pub provider_media_id: String,
        pub uploaded_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// What a provider reports about an account (migration `m20261207_000004_accounts`).
pub mod account_state {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "account_state")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub account_id: String,
        pub tenant_id: String,
        pub quality: Option<String>,
        pub messaging_limit: Option<String>,
        /// JSON list of `Restriction`s.
        pub restrictions: String,
        pub updated_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// A signed-in console browser (migration `m20261208_000001_console`).
pub mod console_sessions {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "console_sessions")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub token_hash: String,
        pub tenant_id: String,
        pub key_id: String,
        pub csrf_token: String,
        pub created_at: i64,
        pub expires_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {
        #[sea_orm(
            belongs_to = "super::api_keys::Entity",
            from = "Column::KeyId",
            to = "super::api_keys::Column::Id"
        )]
        ApiKey,
    }

    impl Related<super::api_keys::Entity> for Entity {
        fn to() -> RelationDef {
            Relation::ApiKey.def()
        }
    }

    impl ActiveModelBehavior for ActiveModel {}
}

/// The newest message of a conversation seen in the console (migration
/// `m20261208_000001_console`).
pub mod console_seen {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "console_seen")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub conversation_id: String,
        pub tenant_id: String,
        pub seen_message_id: String,
        pub seen_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

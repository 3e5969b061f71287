//! The initial schema.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

fn fk(from: &'static str, col: &'static str, to: &'static str) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .from(from, col)
        .to(to, "id")
        .on_delete(ForeignKeyAction::Cascade)
        .to_owned()
}

fn index(name: &'static str, table: &'static str, cols: &[&'static str]) -> IndexCreateStatement {
    let mut idx = Index::create();
    idx.name(name).table(table).if_not_exists();
    for c in cols {
        idx.col(*c);
    }
    idx.to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table("tenants")
                .if_not_exists()
                .col(text("id").primary_key())
                .col(text("name"))
                // Where the product receives signed event notifications (optional).
                .col(text_null("notify_url"))
                .col(text_null("notify_secret_enc"))
                .col(big_integer("created_at"))
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table("api_keys")
                .if_not_exists()
                .col(text("id").primary_key())
                .col(text("tenant_id"))
                // SHA-256 of the whole key; the key itself is never stored.
                .col(text_uniq("key_hash"))
                .col(text("prefix"))
                .col(text("role"))
                .col(text_null("name"))
                .col(big_integer("created_at"))
                .col(big_integer_null("revoked_at"))
                .foreign_key(&mut fk("api_keys", "tenant_id", "tenants"))
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table("channel_accounts")
                .if_not_exists()
                .col(text("id").primary_key())
                .col(text("tenant_id"))
                .col(text("channel"))
                .col(text("address"))
                .col(text("routing_key"))
                // AEAD ciphertext of the credentials JSON, bound to tenant and account.
                .col(text("credentials_enc"))
                .col(boolean("active"))
                .col(integer_null("rate_per_second"))
                .col(big_integer("created_at"))
                .col(big_integer_null("disconnected_at"))
                .foreign_key(&mut fk("channel_accounts", "tenant_id", "tenants"))
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table("contacts")
                .if_not_exists()
                .col(text("id").primary_key())
                .col(text("tenant_id"))
                .col(text_null("e164"))
                .col(text_null("bsuid"))
                .col(text_null("profile_name"))
                .col(text_null("username"))
                .col(big_integer("created_at"))
                .col(big_integer("updated_at"))
                .foreign_key(&mut fk("contacts", "tenant_id", "tenants"))
                .to_owned(),
        )
        .await?;

        // Every way a contact is known: `phone` (E.164, several for one person when a
        // provider reports a different wa_id) and `bsuid`. Unique per tenant, so one
        // identity can only ever name one contact.
        m.create_table(
            Table::create()
                .table("contact_identities")
                .if_not_exists()
                .col(text("tenant_id"))
                .col(text("kind"))
                .col(text("value"))
                .col(text("contact_id"))
                .col(big_integer("created_at"))
                .primary_key(Index::create().col("tenant_id").col("kind").col("value"))
                .foreign_key(&mut fk("contact_identities", "contact_id", "contacts"))
                .to_owned(),
        )
        .await?;

        // One conversation per contact and business account (sender).
        m.create_table(
            Table::create()
                .table("conversations")
                .if_not_exists()
                .col(text("id").primary_key())
                .col(text("tenant_id"))
                .col(text("contact_id"))
                .col(text("account_id"))
                .col(text("channel"))
                .col(big_integer("last_message_at"))
                // Opens the 24-hour customer-service window.
                .col(big_integer_null("last_inbound_at"))
                .col(big_integer_null("opted_out_at"))
                .col(big_integer("created_at"))
                .foreign_key(&mut fk("conversations", "contact_id", "contacts"))
                .foreign_key(&mut fk("conversations", "account_id", "channel_accounts"))
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table("messages")
                .if_not_exists()
                .col(text("id").primary_key())
                .col(text("tenant_id"))
                .col(text("conversation_id"))
                .col(text("account_id"))
                .col(text("channel"))
                .col(text("direction"))
                .col(text("status"))
                .col(small_integer("status_rank"))
                .col(text_null("provider_message_id"))
                .col(text("content"))
                .col(text_null("reply_to"))
                .col(text_null("error_code"))
                .col(text_null("error_message"))
                .col(text_null("raw"))
                .col(text_null("idempotency_key"))
                .col(big_integer_null("provider_timestamp"))
                .col(big_integer("created_at"))
                .col(big_integer("updated_at"))
                .foreign_key(&mut fk("messages", "conversation_id", "conversations"))
                .to_owned(),
        )
        .await?;

        // Every status a message went through, in arrival order, with the raw payload.
        m.create_table(
            Table::create()
                .table("message_status_events")
                .if_not_exists()
                .col(big_pk_auto("id"))
                .col(text("message_id"))
                .col(text("status"))
                .col(text_null("error_code"))
                .col(text_null("error_message"))
                .col(text_null("raw"))
                .col(big_integer_null("provider_timestamp"))
                .col(big_integer("received_at"))
                .foreign_key(&mut fk("message_status_events", "message_id", "messages"))
                .to_owned(),
        )
        .await?;

        // Statuses that arrived before their message's provider id was known; applied when
        // the send's receipt records it.
        m.create_table(
            Table::create()
                .table("pending_statuses")
                .if_not_exists()
                .col(big_pk_auto("id"))
                .col(text("channel"))
                .col(text("provider_message_id"))
                .col(text("status"))
                .col(text_null("error_code"))
                .col(text_null("error_message"))
                .col(text_null("raw"))
                .col(big_integer_null("provider_timestamp"))
                .col(big_integer("received_at"))
                .to_owned(),
        )
        .await?;

        // One row per provider event ever accepted: the unique key makes redeliveries no-ops.
        m.create_table(
            Table::create()
                .table("webhook_events")
                .if_not_exists()
                .col(big_pk_auto("id"))
                .col(text("channel"))
                .col(text("event_key"))
                .col(text("tenant_id"))
                .col(text("account_id"))
                .col(text("kind"))
                .col(big_integer("received_at"))
                .to_owned(),
        )
        .await?;

        // Items a provider sent that could not be understood, and account-level errors it
        // reported: kept with their raw payload, never silently dropped.
        m.create_table(
            Table::create()
                .table("webhook_problems")
                .if_not_exists()
                .col(big_pk_auto("id"))
                .col(text("channel"))
                .col(text_null("tenant_id"))
                .col(text_null("account_id"))
                .col(text("kind"))
                .col(text("detail"))
                .col(text_null("raw"))
                .col(big_integer("received_at"))
                .to_owned(),
        )
        .await?;

        // Messages waiting to be delivered. Claimed with a lease so a crashed worker's
        // messages are taken over when the lease expires.
        m.create_table(
            Table::create()
                .table("outbox")
                .if_not_exists()
                .col(text("message_id").primary_key())
                .col(text("tenant_id"))
                .col(text("account_id"))
                .col(text("conversation_id"))
                .col(integer("attempts"))
                .col(big_integer("next_attempt_at"))
                .col(text_null("locked_by"))
                .col(big_integer_null("locked_until"))
                // Set when an attempt ended in an ambiguous outcome: not resent blindly.
                .col(boolean("ambiguous"))
                .col(big_integer("created_at"))
                .foreign_key(&mut fk("outbox", "message_id", "messages"))
                .to_owned(),
        )
        .await?;

        m.create_table(
            Table::create()
                .table("send_attempts")
                .if_not_exists()
                .col(big_pk_auto("id"))
                .col(text("message_id"))
                .col(integer("attempt"))
                .col(big_integer("started_at"))
                .col(integer("latency_ms"))
                .col(text("outcome"))
                .col(integer_null("http_status"))
                .col(text_null("error_code"))
                .col(text_null("error_message"))
                .col(text_null("request"))
                .col(text_null("response"))
                .foreign_key(&mut fk("send_attempts", "message_id", "messages"))
                .to_owned(),
        )
        .await?;

        let unique =
            |name, table, cols: &[&'static str]| index(name, table, cols).unique().to_owned();
        for stmt in [
            unique(
                "ux_webhook_events_key",
                "webhook_events",
                &["channel", "event_key"],
            ),
            unique(
                "ux_messages_provider_id",
                "messages",
                &["channel", "provider_message_id"],
            ),
            unique(
                "ux_messages_idempotency",
                "messages",
                &["tenant_id", "idempotency_key"],
            ),
            unique(
                "ux_conversations_pair",
                "conversations",
                &["tenant_id", "contact_id", "account_id"],
            ),
            unique("ux_contacts_e164", "contacts", &["tenant_id", "e164"]),
            unique("ux_contacts_bsuid", "contacts", &["tenant_id", "bsuid"]),
            index("ix_api_keys_tenant", "api_keys", &["tenant_id"]),
            index(
                "ix_accounts_tenant",
                "channel_accounts",
                &["tenant_id", "channel"],
            ),
            index(
                "ix_identities_contact",
                "contact_identities",
                &["contact_id"],
            ),
            index(
                "ix_conversations_recent",
                "conversations",
                &["tenant_id", "last_message_at", "id"],
            ),
            index("ix_conversations_contact", "conversations", &["contact_id"]),
            index(
                "ix_messages_conversation",
                "messages",
                &["conversation_id", "id"],
            ),
            index(
                "ix_status_events_message",
                "message_status_events",
                &["message_id", "id"],
            ),
            index(
                "ix_pending_statuses_key",
                "pending_statuses",
                &["channel", "provider_message_id"],
            ),
            index("ix_outbox_due", "outbox", &["next_attempt_at"]),
            index(
                "ix_outbox_conversation",
                "outbox",
                &["conversation_id", "created_at"],
            ),
            index(
                "ix_send_attempts_message",
                "send_attempts",
                &["message_id", "attempt"],
            ),
        ] {
            m.create_index(stmt).await?;
        }

        // Partial unique indexes (same SQL on both backends): an active business number
        // belongs to one account per tenant, and a webhook routing key names one active
        // account in the whole installation, so a webhook can never reach two tenants.
        let db = m.get_connection();
        db.execute_unprepared(
            "CREATE UNIQUE INDEX IF NOT EXISTS ux_accounts_active_address \
             ON channel_accounts (tenant_id, channel, address) WHERE active",
        )
        .await?;
        db.execute_unprepared(
            "CREATE UNIQUE INDEX IF NOT EXISTS ux_accounts_active_routing \
             ON channel_accounts (channel, routing_key) WHERE active",
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for t in [
            "send_attempts",
            "outbox",
            "webhook_problems",
            "webhook_events",
            "pending_statuses",
            "message_status_events",
            "messages",
            "conversations",
            "contact_identities",
            "contacts",
            "channel_accounts",
            "api_keys",
            "tenants",
        ] {
            m.drop_table(Table::drop().table(t).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}

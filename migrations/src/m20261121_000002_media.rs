//! Media that is never lost: inbound items are downloaded from the provider and kept;
//! uploads wait to be sent.
//!
//! - `media`: one row per stored or to-be-stored item. Inbound rows name their message and
//!   the item's index in it, and the provider reference to fetch (`provider_url` /
//!   `provider_media_id`, with the receiving account); the fetcher claims them with a lease
//!   like the outbox. `sha256` is the hex digest of the stored bytes, which is also the
//!   storage key (content-addressed, so identical files are stored once).
//! - `media_uploads`: the provider's media id of an item uploaded for one account (Meta),
//!   so a retried send does not upload again.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table("media")
                .if_not_exists()
                .col(text("id").primary_key())
                .col(text("tenant_id"))
                // Null for uploads.
                .col(text_null("message_id"))
                .col(integer("item_index"))
                // `inbound` (fetched from a provider) or `upload`.
                .col(text("origin"))
                .col(text("kind"))
                .col(text_null("mime_type"))
                .col(text_null("filename"))
                .col(big_integer_null("size"))
                .col(text_null("sha256"))
                .col(text_null("account_id"))
                .col(text_null("provider_url"))
                .col(text_null("provider_media_id"))
                // The provider's checksum as it sent it (checked by the adapter).
                .col(text_null("provider_sha256"))
                // `pending`, `stored` or `failed`.
                .col(text("state"))
                .col(text_null("failure_reason"))
                .col(integer("attempts"))
                .col(big_integer_null("next_attempt_at"))
                .col(text_null("locked_by"))
                .col(big_integer_null("locked_until"))
                .col(big_integer("created_at"))
                .col(big_integer("updated_at"))
                .to_owned(),
        )
        .await?;
        for (name, cols, unique) in [
            ("ix_media_due", &["state", "next_attempt_at"][..], false),
            (
                "ux_media_message_item",
                &["message_id", "item_index"][..],
                true,
            ),
        ] {
            let mut idx = Index::create();
            idx.name(name).table("media").if_not_exists();
            if unique {
                idx.unique();
            }
            for c in cols {
                idx.col(*c);
            }
            m.create_index(idx.to_owned()).await?;
        }
        m.create_table(
            Table::create()
                .table("media_uploads")
                .if_not_exists()
                .col(text("media_id"))
                .col(text("account_id"))
                .col(text("provider_media_id"))
                .col(big_integer("uploaded_at"))
                .primary_key(Index::create().col("media_id").col("account_id"))
                .to_owned(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for t in ["media_uploads", "media"] {
            m.drop_table(Table::drop().table(t).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}

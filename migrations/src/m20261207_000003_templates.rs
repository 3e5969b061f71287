//! The template catalog (issue 18): `templates`, one row per template a connected account's
//! provider lists (Meta's message templates, Twilio's Content resources with their
//! WhatsApp approval), unique per (account, provider id); and `template_catalogs`, when
//! each account's catalog was last synced (an account without a row was never synced, so
//! its template sends are not checked).

use sea_orm_migration::{prelude::*, schema::*};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261207_000003_templates"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let account_fk = |table: &'static str| {
            ForeignKey::create()
                .from(table, "account_id")
                .to("channel_accounts", "id")
                .on_delete(ForeignKeyAction::Cascade)
                .to_owned()
        };
        m.create_table(
            Table::create()
                .table("templates")
                .if_not_exists()
                .col(text("id").primary_key())
                .col(text("tenant_id"))
                .col(text("account_id"))
                .col(text("channel"))
                .col(text("provider_id"))
                .col(text("name"))
                .col(text("language"))
                .col(text_null("category"))
                .col(text("status"))
                .col(text_null("quality"))
                .col(text_null("rejection_reason"))
                // The provider's components, as JSON.
                .col(text("components"))
                // `[{"key","example"}]`, as JSON.
                .col(text("variables"))
                // The header kind a send must fill in (`image`, `video`, `document`,
                // `location`), when it has one.
                .col(text_null("header_media"))
                .col(big_integer("updated_at"))
                .col(big_integer("synced_at"))
                .foreign_key(&mut account_fk("templates"))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("template_catalogs")
                .if_not_exists()
                .col(text("account_id").primary_key())
                .col(text("tenant_id"))
                .col(big_integer("synced_at"))
                .foreign_key(&mut account_fk("template_catalogs"))
                .to_owned(),
        )
        .await?;
        for index in [
            Index::create()
                .name("ux_templates_account_provider_id")
                .table("templates")
                .col("account_id")
                .col("provider_id")
                .unique()
                .if_not_exists()
                .to_owned(),
            // A send's look-up, and `GET /v1/templates?name=`.
            Index::create()
                .name("ix_templates_account_name")
                .table("templates")
                .col("account_id")
                .col("name")
                .col("language")
                .if_not_exists()
                .to_owned(),
            Index::create()
                .name("ix_templates_tenant")
                .table("templates")
                .col("tenant_id")
                .col("name")
                .if_not_exists()
                .to_owned(),
        ] {
            m.create_index(index).await?;
        }
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for table in ["template_catalogs", "templates"] {
            m.drop_table(Table::drop().table(table).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}

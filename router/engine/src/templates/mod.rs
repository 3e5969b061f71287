//! The template catalog (api.md "Templates"): each connected account's templates as its
//! provider lists them (`ChannelAdapter::list_templates`), kept in `templates` and synced
//! on connect, on demand, periodically and at once when a template webhook arrives; read by
//! `GET /v1/templates` and by `send()`, which checks a template send against it.

mod notifications;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect,
};
use serde::Serialize;
use switchboard_core::{
    ErrorKind, ProviderTemplate, Template, TemplateMismatch, TemplateSubmission, TemplateVariable,
};
use tokio::sync::{Notify, watch};

use crate::error::{Result, RouterError};
use crate::ids::{self, now_ms};
use crate::store::Store;
use crate::store::entity::{
    channel_accounts, provider_notifications, template_catalogs, templates,
};
use crate::tenancy::accounts::Accounts;
use crate::tenancy::registry::AdapterRegistry;

pub(crate) use notifications::{apply_notification, is_template_kind};

/// Id prefix of a catalog row.
const TEMPLATE: &str = "tpl";

/// A template as `GET /v1/templates` shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TemplateView {
    pub id: String,
    pub account_id: String,
    pub channel: String,
    /// The provider's id (Meta's template id, Twilio's Content SID).
    pub provider_id: String,
    pub name: String,
    pub language: String,
    pub category: Option<String>,
    pub status: String,
    pub quality: Option<String>,
    pub rejection_reason: Option<String>,
    pub components: serde_json::Value,
    pub variables: Vec<TemplateVariable>,
    pub updated_at: String,
    pub synced_at: String,
}

/// `GET /v1/templates` filters.
#[derive(Clone, Debug, Default)]
pub struct TemplateFilter {
    pub account_id: Option<String>,
    pub status: Option<String>,
    pub name: Option<String>,
}

/// What one sync found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyncReport {
    /// Templates the provider listed.
    pub listed: usize,
    /// Rows removed because the provider no longer lists them.
    pub removed: u64,
}

/// What the catalog says about a template send (see [`Templates::check_send`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SendCheck {
    /// The template is approved and the send fits it.
    Fits,
    /// The account's catalog was never synced: the send goes out unchecked.
    NeverSynced,
}

/// The catalog and its sync. Cheap to share behind an `Arc`.
pub struct Templates {
    store: Store,
    adapters: AdapterRegistry,
    accounts: Arc<Accounts>,
    interval: Duration,
    /// Accounts with a sync running, so a burst of webhooks starts one; `true`: asked for
    /// again meanwhile.
    running: Mutex<HashMap<String, bool>>,
    /// Accounts (tenant, account) waiting for the worker's next sync.
    queued: Mutex<BTreeSet<(String, String)>>,
    wake: Notify,
}

fn view(row: templates::Model) -> TemplateView {
    TemplateView {
        components: serde_json::from_str(&row.components).unwrap_or(serde_json::Value::Null),
        variables: serde_json::from_str(&row.variables).unwrap_or_default(),
        id: row.id,
        account_id: row.account_id,
        channel: row.channel,
        provider_id: row.provider_id,
        name: row.name,
        language: row.language,
        category: row.category,
        status: row.status,
        quality: row.quality,
        rejection_reason: row.rejection_reason,
        updated_at: ids::rfc3339(row.updated_at),
        synced_at: ids::rfc3339(row.synced_at),
    }
}

fn provider_template(row: &templates::Model) -> ProviderTemplate {
    ProviderTemplate {
        provider_id: row.provider_id.clone(),
        name: row.name.clone(),
        language: row.language.clone(),
        category: row.category.clone(),
        status: row.status.clone(),
        quality: row.quality.clone(),
        rejection_reason: row.rejection_reason.clone(),
        components: serde_json::Value::Null,
        variables: serde_json::from_str(&row.variables).unwrap_or_default(),
        header_media: row.header_media.clone(),
    }
}

impl Templates {
    pub(crate) fn new(
        store: Store,
        adapters: AdapterRegistry,
        accounts: Arc<Accounts>,
        interval: Duration,
    ) -> Self {
        Self {
            store,
            adapters,
            accounts,
            interval,
            running: Mutex::new(HashMap::new()),
            queued: Mutex::new(BTreeSet::new()),
            wake: Notify::new(),
        }
    }

    /// Fetches the account's templates from its provider now and replaces its catalog with
    /// them: new ones added, changed ones updated, ones the provider no longer lists removed.
    ///
    /// # Errors
    /// `not_found` for another tenant's or an unknown account; the provider's error
    /// (`Unsupported` for a channel without templates); a database error.
    pub async fn sync(&self, tenant_id: &str, account_id: &str) -> Result<SyncReport> {
        let row = self.accounts.account_row(tenant_id, account_id).await?;
        let adapter = self
            .adapters
            .get(&row.channel)
            .ok_or(RouterError::NotFound("channel"))?
            .clone();
        let ctx = self.accounts.context(&row)?;
        let learned = self.learned_business_account(account_id).await?;
        let listed = adapter.list_templates(&ctx, learned.as_deref()).await?;
        let removed = self.store_catalog(&row, &listed).await?;
        tracing::info!(
            account_id,
            listed = listed.len(),
            removed,
            "Synced the account's template catalog."
        );
        Ok(SyncReport {
            listed: listed.len(),
            removed,
        })
    }

    /// Starts a sync of the account in the background; while one runs, it runs once more
    /// when it ends instead. A failure is logged (the periodic sync tries again).
    pub fn request_sync(self: &Arc<Self>, tenant_id: &str, account_id: &str) {
        {
            let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(again) = running.get_mut(account_id) {
                // The running sync may have listed before what asked for this one: it runs
                // once more when it ends.
                *again = true;
                return;
            }
            running.insert(account_id.to_owned(), false);
        }
        let this = self.clone();
        let (tenant_id, account_id) = (tenant_id.to_owned(), account_id.to_owned());
        tokio::spawn(async move {
            loop {
                match this.sync(&tenant_id, &account_id).await {
                    Ok(_) => {}
                    Err(RouterError::Channel(e)) if e.kind() == ErrorKind::Unsupported => {}
                    Err(e) => tracing::warn!(
                        account_id = %account_id,
                        error = %e,
                        "Could not sync the account's template catalog."
                    ),
                }
                let mut running = this.running.lock().unwrap_or_else(PoisonError::into_inner);
                if running.get(&account_id).copied().unwrap_or(false) {
                    running.insert(account_id.clone(), false);
                } else {
                    running.remove(&account_id);
                    break;
                }
            }
        });
    }

    /// Queues a sync of the account for the template worker ([`Templates::run`]): what a
    /// new account and a template webhook ask for. Without running workers, nothing syncs.
    pub fn queue_sync(&self, tenant_id: &str, account_id: &str) {
        self.queued
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert((tenant_id.to_owned(), account_id.to_owned()));
        self.wake.notify_one();
    }

    /// The template worker: syncs queued accounts as they are queued, and every active
    /// account every `interval`, until `shutdown` turns true.
    pub(crate) async fn run(self: &Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let mut next_pass = tokio::time::Instant::now() + self.interval;
        loop {
            let periodic = tokio::select! {
                () = tokio::time::sleep_until(next_pass) => true,
                () = self.wake.notified() => false,
                changed = shutdown.changed() => if changed.is_err() { break } else { false },
            };
            if *shutdown.borrow() {
                break;
            }
            let queued =
                std::mem::take(&mut *self.queued.lock().unwrap_or_else(PoisonError::into_inner));
            for (tenant_id, account_id) in queued {
                self.request_sync(&tenant_id, &account_id);
            }
            if !periodic {
                continue;
            }
            next_pass = tokio::time::Instant::now() + self.interval;
            match channel_accounts::Entity::find()
                .filter(channel_accounts::Column::Active.eq(true))
                .all(self.store.conn())
                .await
            {
                Ok(rows) => {
                    for row in rows {
                        self.request_sync(&row.tenant_id, &row.id);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "Could not list accounts to sync templates."),
            }
        }
    }

    /// Submits a new template for approval through the account's provider and adds it to
    /// the account's catalog as the provider answered (usually pending); the webhook (Meta)
    /// or the next sync (Twilio) tracks it to approved or rejected.
    ///
    /// # Errors
    /// `400 invalid_template` for what WhatsApp's review would refuse or the channel cannot
    /// express; `not_found`; `422 unsupported_content` for a channel without templates;
    /// `422 template_refused` when the provider refuses it; other provider errors (502); a
    /// database error.
    pub async fn submit(
        &self,
        tenant_id: &str,
        account_id: &str,
        submission: &TemplateSubmission,
    ) -> Result<TemplateView> {
        submission
            .check()
            .map_err(|why| RouterError::invalid("invalid_template", why))?;
        let row = self.accounts.account_row(tenant_id, account_id).await?;
        let adapter = self
            .adapters
            .get(&row.channel)
            .ok_or(RouterError::NotFound("channel"))?
            .clone();
        let ctx = self.accounts.context(&row)?;
        let learned = self.learned_business_account(account_id).await?;
        let created = adapter
            .submit_template(&ctx, learned.as_deref(), submission)
            .await
            .map_err(|e| match e.kind() {
                ErrorKind::Invalid => RouterError::invalid("invalid_template", e.message()),
                ErrorKind::Unsupported => RouterError::UnsupportedContent(e.message().to_owned()),
                ErrorKind::Permanent => RouterError::Unprocessable {
                    code: "template_refused",
                    message: format!("the provider refused the template: {}", e.message()),
                },
                _ => RouterError::Channel(e),
            })?;
        let txn = self.store.write_txn().await?;
        self.upsert(&txn, &row, &created, now_ms()).await?;
        txn.commit().await?;
        let stored = templates::Entity::find()
            .filter(templates::Column::AccountId.eq(account_id))
            .filter(templates::Column::ProviderId.eq(created.provider_id.as_str()))
            .one(self.store.conn())
            .await?
            .ok_or(RouterError::NotFound("template"))?;
        Ok(view(stored))
    }

    /// The business account id (Meta's WABA id) the account's stored provider
    /// notifications name, newest first; group items name a group, not the account.
    async fn learned_business_account(&self, account_id: &str) -> Result<Option<String>> {
        let row = provider_notifications::Entity::find()
            .filter(provider_notifications::Column::AccountId.eq(account_id))
            .filter(provider_notifications::Column::EntityId.is_not_null())
            .filter(
                provider_notifications::Column::Kind.is_not_in(["group_message", "group_status"]),
            )
            .order_by_desc(provider_notifications::Column::Id)
            .limit(1)
            .one(self.store.conn())
            .await?;
        Ok(row.and_then(|r| r.entity_id))
    }

    /// Writes the listed templates as the account's catalog, in one transaction; returns
    /// how many rows the provider no longer lists were removed.
    async fn store_catalog(
        &self,
        account: &channel_accounts::Model,
        listed: &[ProviderTemplate],
    ) -> Result<u64> {
        let now = now_ms();
        let txn = self.store.write_txn().await?;
        let existing: HashMap<String, templates::Model> = templates::Entity::find()
            .filter(templates::Column::AccountId.eq(account.id.as_str()))
            .all(&txn)
            .await?
            .into_iter()
            .map(|r| (r.provider_id.clone(), r))
            .collect();
        let mut seen = BTreeSet::new();
        for t in listed {
            if !seen.insert(t.provider_id.clone()) {
                continue;
            }
            let old = existing.get(&t.provider_id);
            self.upsert_over(&txn, account, t, old, now).await?;
        }
        let gone: Vec<String> = existing
            .keys()
            .filter(|k| !seen.contains(*k))
            .cloned()
            .collect();
        let mut removed = 0;
        for chunk in gone.chunks(500) {
            removed += templates::Entity::delete_many()
                .filter(templates::Column::AccountId.eq(account.id.as_str()))
                .filter(templates::Column::ProviderId.is_in(chunk.iter().cloned()))
                .exec(&txn)
                .await?
                .rows_affected;
        }
        template_catalogs::Entity::insert(template_catalogs::ActiveModel {
            account_id: Set(account.id.clone()),
            tenant_id: Set(account.tenant_id.clone()),
            synced_at: Set(now),
        })
        .on_conflict(
            OnConflict::column(template_catalogs::Column::AccountId)
                .update_column(template_catalogs::Column::SyncedAt)
                .to_owned(),
        )
        .exec_without_returning(&txn)
        .await?;
        txn.commit().await?;
        Ok(removed)
    }

    /// Writes one template of the account, keeping the row's id and, when nothing changed,
    /// its `updated_at`.
    async fn upsert<C: ConnectionTrait>(
        &self,
        db: &C,
        account: &channel_accounts::Model,
        t: &ProviderTemplate,
        now: i64,
    ) -> Result<()> {
        let old = templates::Entity::find()
            .filter(templates::Column::AccountId.eq(account.id.as_str()))
            .filter(templates::Column::ProviderId.eq(t.provider_id.as_str()))
            .one(db)
            .await?;
        self.upsert_over(db, account, t, old.as_ref(), now).await
    }

    async fn upsert_over<C: ConnectionTrait>(
        &self,
        db: &C,
        account: &channel_accounts::Model,
        t: &ProviderTemplate,
        old: Option<&templates::Model>,
        now: i64,
    ) -> Result<()> {
        let components = t.components.to_string();
        let variables = serde_json::to_string(&t.variables).unwrap_or_else(|_| "[]".into());
        let (id, updated_at) = match old {
            Some(old) => {
                let same = old.name == t.name
                    && old.language == t.language
                    && old.category == t.category
                    && old.status == t.status
                    && old.quality == t.quality
                    && old.rejection_reason == t.rejection_reason
                    && old.components == components
                    && old.variables == variables
                    && old.header_media == t.header_media;
                (old.id.clone(), if same { old.updated_at } else { now })
            }
            None => (ids::new_id(TEMPLATE), now),
        };
        let row = templates::ActiveModel {
            id: Set(id),
            tenant_id: Set(account.tenant_id.clone()),
            account_id: Set(account.id.clone()),
            channel: Set(account.channel.clone()),
            provider_id: Set(t.provider_id.clone()),
            name: Set(t.name.clone()),
            language: Set(t.language.clone()),
            category: Set(t.category.clone()),
            status: Set(t.status.clone()),
            quality: Set(t.quality.clone()),
            rejection_reason: Set(t.rejection_reason.clone()),
            components: Set(components),
            variables: Set(variables),
            header_media: Set(t.header_media.clone()),
            updated_at: Set(updated_at),
            synced_at: Set(now),
        };
        templates::Entity::insert(row)
            .on_conflict(
                OnConflict::columns([templates::Column::AccountId, templates::Column::ProviderId])
                    .update_columns([
                        templates::Column::Name,
                        templates::Column::Language,
                        templates::Column::Category,
                        templates::Column::Status,
                        templates::Column::Quality,
                        templates::Column::RejectionReason,
                        templates::Column::Components,
                        templates::Column::Variables,
                        templates::Column::HeaderMedia,
                        templates::Column::UpdatedAt,
                        templates::Column::SyncedAt,
                    ])
                    .to_owned(),
            )
            .exec_without_returning(db)
            .await?;
        Ok(())
    }

    /// The tenant's templates, by account then name and language.
    ///
    /// # Errors
    /// A database error.
    pub async fn list(
        &self,
        tenant_id: &str,
        filter: &TemplateFilter,
    ) -> Result<Vec<TemplateView>> {
        let mut q = templates::Entity::find().filter(templates::Column::TenantId.eq(tenant_id));
        if let Some(a) = &filter.account_id {
            q = q.filter(templates::Column::AccountId.eq(a.as_str()));
        }
        if let Some(s) = &filter.status {
            q = q.filter(templates::Column::Status.eq(s.to_ascii_lowercase()));
        }
        if let Some(n) = &filter.name {
            q = q.filter(templates::Column::Name.eq(n.as_str()));
        }
        let rows = q
            .order_by_asc(templates::Column::AccountId)
            .order_by_asc(templates::Column::Name)
            .order_by_asc(templates::Column::Language)
            .all(self.store.conn())
            .await?;
        Ok(rows.into_iter().map(view).collect())
    }

    /// Checks a template send from `account_id` against its catalog. The template is found
    /// by its provider id (Twilio sends name the Content SID) or by name, in the send's
    /// language when it gives one.
    ///
    /// # Errors
    /// `422` `template_not_found`, `template_not_approved` or
    /// `template_variables_mismatch`; a database error.
    pub(crate) async fn check_send(&self, account_id: &str, send: &Template) -> Result<SendCheck> {
        let synced = template_catalogs::Entity::find_by_id(account_id.to_owned())
            .one(self.store.conn())
            .await?;
        if synced.is_none() {
            return Ok(SendCheck::NeverSynced);
        }
        let rows = templates::Entity::find()
            .filter(templates::Column::AccountId.eq(account_id))
            .filter(
                Condition::any()
                    .add(templates::Column::Name.eq(send.name.as_str()))
                    .add(templates::Column::ProviderId.eq(send.name.as_str())),
            )
            .all(self.store.conn())
            .await?;
        let in_language: Vec<&templates::Model> = rows
            .iter()
            .filter(|r| {
                r.provider_id == send.name
                    || send
                        .language
                        .as_deref()
                        .is_none_or(|l| same_language(l, &r.language))
            })
            .collect();
        // Of several (no language given), an approved one decides.
        let Some(row) = in_language
            .iter()
            .find(|r| r.status == switchboard_core::templates::APPROVED)
            .or_else(|| in_language.first())
        else {
            let language = send
                .language
                .as_deref()
                .map_or_else(String::new, |l| format!(" in language {l}"));
            return Err(RouterError::Unprocessable {
                code: "template_not_found",
                message: format!(
                    "the sending account has no template {:?}{language} (GET /v1/templates lists its catalog)",
                    send.name
                ),
            });
        };
        match switchboard_core::templates::check_send(&provider_template(row), send) {
            Ok(()) => Ok(SendCheck::Fits),
            Err(TemplateMismatch::NotApproved(status)) => Err(RouterError::Unprocessable {
                code: "template_not_approved",
                message: format!(
                    "template {:?} ({}) is {status}, not approved: only approved templates can be sent",
                    send.name, row.language
                ),
            }),
            Err(TemplateMismatch::Variables(why)) => Err(RouterError::Unprocessable {
                code: "template_variables_mismatch",
                message: why,
            }),
        }
    }
}

/// Whether two language codes name the same language: Meta writes `en_US` in its catalog
/// and `en-US` in its webhooks (meta.md §13.2, §14.2).
fn same_language(a: &str, b: &str) -> bool {
    a.replace('-', "_")
        .eq_ignore_ascii_case(&b.replace('-', "_"))
}

#[cfg(test)]
mod tests {
    use super::same_language;

    #[test]
    fn language_codes_compare_across_spellings() {
        assert!(same_language("en_US", "en-us"));
        assert!(!same_language("en", "en_US"));
    }
}

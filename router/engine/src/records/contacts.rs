//! Contact identity: every identity that arrives together names one contact.
//!
//! A contact is known by phone numbers (E.164; a person can have two when a provider
//! reports a `wa_id` that differs from the number written to) and by BSUIDs. The table
//! `contact_identities` is unique per (tenant, kind, value), so the database guarantees an
//! identity names at most one contact. When one event names identities that so far
//! belonged to two contacts (first seen by BSUID, later with the phone number), the two
//! are merged into the older one, conversations and messages included.

use sea_orm::sea_query::{Expr, OnConflict, Query};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, QueryFilter,
    QueryOrder,
};
use serde::Serialize;
use switchboard_core::{Bsuid, ContactIdentity, PhoneNumber, SystemNotice};

use crate::ids::{self, now_ms};
use crate::store::entity::{contact_identities, contacts, conversations, messages, outbox};

pub(crate) const PHONE: &str = "phone";
pub(crate) const BSUID: &str = "bsuid";

/// A contact as the API shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ContactView {
    pub id: String,
    /// The primary number, E.164.
    pub phone: Option<String>,
    /// Every number the contact is known by.
    pub phones: Vec<String>,
    pub bsuid: Option<String>,
    pub profile_name: Option<String>,
    pub username: Option<String>,
    /// Channels the contact has conversations on.
    pub channels: Vec<String>,
    pub created_at: String,
}

pub(crate) fn identity_keys(ident: &ContactIdentity) -> Vec<(&'static str, String)> {
    let mut keys: Vec<(&'static str, String)> =
        ident.phones().map(|p| (PHONE, p.to_string())).collect();
    if let Some(b) = &ident.bsuid {
        keys.push((BSUID, b.to_string()));
    }
    keys
}

/// Finds or creates the contact `ident` names, linking every identity in it; returns its id,
/// or `None` when `ident` names nobody.
pub(crate) async fn upsert<C: ConnectionTrait>(
    db: &C,
    tenant_id: &str,
    ident: &ContactIdentity,
) -> Result<Option<String>, DbErr> {
    Ok(upsert_tracked(db, tenant_id, ident)
        .await?
        .map(|(id, _)| id))
}

/// [`upsert`], also saying whether contacts were merged (which makes every contact id read
/// before it possibly stale).
pub(crate) async fn upsert_tracked<C: ConnectionTrait>(
    db: &C,
    tenant_id: &str,
    ident: &ContactIdentity,
) -> Result<Option<(String, bool)>, DbErr> {
    let keys = identity_keys(ident);
    if keys.is_empty() {
        return Ok(None);
    }
    let now = now_ms();
    let (mut owners, known) = owners_of_counted(db, tenant_id, &keys).await?;
    // Hot path (a known contact writing again): every identity already names the same
    // contact, so there is nothing to link or merge; only the names may need a refresh.
    if owners.len() == 1 && known == keys.len() {
        let keep = owners.swap_remove(0);
        refresh(db, &keep, ident, now).await?;
        return Ok(Some((keep, false)));
    }
    let mut merged = false;
    let mut created = None;
    if owners.is_empty() {
        // Create, then claim identities: a concurrent creator (PostgreSQL) wins the
        // identity rows and we merge into it below instead of failing the transaction.
        // The row starts filled in, so a sole winner needs no refresh.
        let id = ids::new_id(ids::CONTACT);
        let e164 = ident
            .phone
            .as_ref()
            .or(ident.wa_id.as_ref())
            .map(ToString::to_string);
        let bsuid = ident.bsuid.as_ref().map(ToString::to_string);
        // A concurrent creator's committed row holds the number (or BSUID) already: its
        // unique index would fail this whole transaction, so the insert does nothing and
        // that contact is the owner (PostgreSQL waits for the creator to commit first).
        let inserted = contacts::Entity::insert(contacts::ActiveModel {
            id: Set(id.clone()),
            tenant_id: Set(tenant_id.to_owned()),
            e164: Set(e164.clone()),
            bsuid: Set(bsuid.clone()),
            profile_name: Set(ident.profile_name.clone()),
            username: Set(ident.username.clone()),
            created_at: Set(now),
            updated_at: Set(now),
        })
        .on_conflict(OnConflict::new().do_nothing().to_owned())
        .try_insert()
        .exec_without_returning(db)
        .await?;
        if matches!(
            inserted,
            sea_orm::TryInsertResult::Conflicted | sea_orm::TryInsertResult::Inserted(0)
        ) {
            owners = holders_of(db, tenant_id, e164.as_deref(), bsuid.as_deref()).await?;
            if owners.is_empty() {
                return Err(DbErr::RecordNotFound(
                    "the contact a concurrent insert created".into(),
                ));
            }
        } else {
            created = Some(id.clone());
            owners.push(id);
        }
    }
    let keep = if owners.len() == 1 {
        owners[0].clone()
    } else {
        oldest(db, &owners).await?
    };
    link(db, tenant_id, &keep, &keys, now).await?;
    for other in owners.iter().filter(|o| **o != keep) {
        merge(db, &keep, other).await?;
        merged = true;
    }
    // Someone may have claimed an identity between our read and our insert.
    let after = owners_of(db, tenant_id, &keys).await?;
    let keep = if after.len() > 1 || after.first().is_some_and(|o| *o != keep) {
        let winner = oldest(db, &after).await?;
        for other in after
            .iter()
            .chain(std::iter::once(&keep))
            .filter(|o| **o != winner)
        {
            merge(db, &winner, other).await?;
            merged = true;
        }
        winner
    } else {
        keep
    };
    if created.as_deref() != Some(keep.as_str()) {
        refresh(db, &keep, ident, now).await?;
    }
    Ok(Some((keep, merged)))
}

async fn owners_of<C: ConnectionTrait>(
    db: &C,
    tenant_id: &str,
    keys: &[(&'static str, String)],
) -> Result<Vec<String>, DbErr> {
    Ok(owners_of_counted(db, tenant_id, keys).await?.0)
}

/// The distinct owners of `keys`, and how many of the keys are known at all.
async fn owners_of_counted<C: ConnectionTrait>(
    db: &C,
    tenant_id: &str,
    keys: &[(&'static str, String)],
) -> Result<(Vec<String>, usize), DbErr> {
    let mut any = Condition::any();
    for (kind, value) in keys {
        any = any.add(
            Condition::all()
                .add(contact_identities::Column::Kind.eq(*kind))
                .add(contact_identities::Column::Value.eq(value.as_str())),
        );
    }
    let rows = contact_identities::Entity::find()
        .filter(contact_identities::Column::TenantId.eq(tenant_id))
        .filter(any)
        .all(db)
        .await?;
    let known = rows.len();
    let mut owners: Vec<String> = rows.into_iter().map(|r| r.contact_id).collect();
    owners.sort();
    owners.dedup();
    Ok((owners, known))
}

/// The contacts whose own columns hold `e164` or `bsuid` (what the unique indexes on
/// `contacts` guard), oldest first.
async fn holders_of<C: ConnectionTrait>(
    db: &C,
    tenant_id: &str,
    e164: Option<&str>,
    bsuid: Option<&str>,
) -> Result<Vec<String>, DbErr> {
    let mut any = Condition::any();
    if let Some(e164) = e164 {
        any = any.add(contacts::Column::E164.eq(e164));
    }
    if let Some(bsuid) = bsuid {
        any = any.add(contacts::Column::Bsuid.eq(bsuid));
    }
    let rows = contacts::Entity::find()
        .filter(contacts::Column::TenantId.eq(tenant_id))
        .filter(any)
        .order_by_asc(contacts::Column::CreatedAt)
        .order_by_asc(contacts::Column::Id)
        .all(db)
        .await?;
    Ok(rows.into_iter().map(|r| r.id).collect())
}

/// The contact created first (ids are time-ordered).
async fn oldest<C: ConnectionTrait>(db: &C, ids: &[String]) -> Result<String, DbErr> {
    let row = contacts::Entity::find()
        .filter(contacts::Column::Id.is_in(ids.iter().cloned()))
        .order_by_asc(contacts::Column::CreatedAt)
        .order_by_asc(contacts::Column::Id)
        .one(db)
        .await?;
    row.map(|r| r.id)
        .ok_or_else(|| DbErr::RecordNotFound("contact".into()))
}

async fn link<C: ConnectionTrait>(
    db: &C,
    tenant_id: &str,
    contact_id: &str,
    keys: &[(&'static str, String)],
    now: i64,
) -> Result<(), DbErr> {
    let rows = keys
        .iter()
        .map(|(kind, value)| contact_identities::ActiveModel {
            tenant_id: Set(tenant_id.to_owned()),
            kind: Set((*kind).to_owned()),
            value: Set(value.clone()),
            contact_id: Set(contact_id.to_owned()),
            created_at: Set(now),
        });
    contact_identities::Entity::insert_many(rows)
        .on_conflict_do_nothing_on([
            contact_identities::Column::TenantId,
            contact_identities::Column::Kind,
            contact_identities::Column::Value,
        ])
        .exec(db)
        .await?;
    Ok(())
}

/// Moves everything of `other` to `keep` and deletes `other`.
async fn merge<C: ConnectionTrait>(db: &C, keep: &str, other: &str) -> Result<(), DbErr> {
    contact_identities::Entity::update_many()
        .col_expr(contact_identities::Column::ContactId, Expr::value(keep))
        .filter(contact_identities::Column::ContactId.eq(other))
        .exec(db)
        .await?;
    let theirs = conversations::Entity::find()
        .filter(conversations::Column::ContactId.eq(other))
        .all(db)
        .await?;
    for conv in theirs {
        let ours = conversations::Entity::find()
            .filter(conversations::Column::ContactId.eq(keep))
            .filter(conversations::Column::AccountId.eq(conv.account_id.as_str()))
            .one(db)
            .await?;
        match ours {
            Some(ours) => {
                messages::Entity::update_many()
                    .col_expr(
                        messages::Column::ConversationId,
                        Expr::value(ours.id.as_str()),
                    )
                    .filter(messages::Column::ConversationId.eq(conv.id.as_str()))
                    .exec(db)
                    .await?;
                outbox::Entity::update_many()
                    .col_expr(
                        outbox::Column::ConversationId,
                        Expr::value(ours.id.as_str()),
                    )
                    .filter(outbox::Column::ConversationId.eq(conv.id.as_str()))
                    .exec(db)
                    .await?;
                let mut am: conversations::ActiveModel = ours.clone().into();
                let last_message_at = ours.last_message_at.max(conv.last_message_at);
                am.last_message_at = Set(last_message_at);
                am.last_message_minute =
                    Set(crate::records::conversations::minute_of(last_message_at));
                am.last_inbound_at = Set(ours.last_inbound_at.max(conv.last_inbound_at));
                sea_orm::ActiveModelTrait::update(am, db).await?;
                conversations::Entity::delete_by_id(conv.id)
                    .exec(db)
                    .await?;
            }
            None => {
                conversations::Entity::update_many()
                    .col_expr(conversations::Column::ContactId, Expr::value(keep))
                    .filter(conversations::Column::Id.eq(conv.id.as_str()))
                    .exec(db)
                    .await?;
            }
        }
    }
    let gone = contacts::Entity::find_by_id(other.to_owned())
        .one(db)
        .await?;
    contacts::Entity::delete_by_id(other.to_owned())
        .exec(db)
        .await?;
    if let Some(gone) = gone {
        let kept = contacts::Entity::find_by_id(keep.to_owned())
            .one(db)
            .await?;
        if let Some(kept) = kept {
            let mut am: contacts::ActiveModel = kept.clone().into();
            am.e164 = Set(kept.e164.or(gone.e164));
            am.bsuid = Set(kept.bsuid.or(gone.bsuid));
            am.profile_name = Set(kept.profile_name.or(gone.profile_name));
            am.username = Set(kept.username.or(gone.username));
            sea_orm::ActiveModelTrait::update(am, db).await?;
        }
    }
    Ok(())
}

/// Fills the contact's primary number, BSUID and names from the latest event.
pub(crate) async fn refresh<C: ConnectionTrait>(
    db: &C,
    contact_id: &str,
    ident: &ContactIdentity,
    now: i64,
) -> Result<(), DbErr> {
    let Some(row) = contacts::Entity::find_by_id(contact_id.to_owned())
        .one(db)
        .await?
    else {
        return Ok(());
    };
    refresh_row(db, row, ident, now).await?;
    Ok(())
}

/// [`refresh`] on a contact row already read; returns the row as it is now.
pub(crate) async fn refresh_row<C: ConnectionTrait>(
    db: &C,
    row: contacts::Model,
    ident: &ContactIdentity,
    now: i64,
) -> Result<contacts::Model, DbErr> {
    let e164 = row.e164.clone().or_else(|| {
        ident
            .phone
            .as_ref()
            .or(ident.wa_id.as_ref())
            .map(ToString::to_string)
    });
    let bsuid = row
        .bsuid
        .clone()
        .or_else(|| ident.bsuid.as_ref().map(ToString::to_string));
    let profile_name = ident.profile_name.clone().or(row.profile_name.clone());
    let username = ident.username.clone().or(row.username.clone());
    if e164 == row.e164
        && bsuid == row.bsuid
        && profile_name == row.profile_name
        && username == row.username
    {
        return Ok(row);
    }
    let mut am: contacts::ActiveModel = row.into();
    am.e164 = Set(e164);
    am.bsuid = Set(bsuid);
    am.profile_name = Set(profile_name);
    am.username = Set(username);
    am.updated_at = Set(now);
    sea_orm::ActiveModelTrait::update(am, db).await
}

/// What a platform notice about the person does to their contact: a number change
/// (`SystemNotice::new_wa_id`) or BSUID change (`new_user_id`) gives the contact the new
/// identity as its primary one and keeps the old as an alias, so its history stays on one
/// contact and late reports naming the old identity still find it.
///
/// A new identity that already names another contact of the tenant is not taken from it:
/// whether two contacts are one person is not a notice's to decide (merging them is a
/// separate matter). The notice stays stored, this contact keeps what it had, and a warning
/// names both contacts.
pub(crate) async fn apply_notice<C: ConnectionTrait>(
    db: &C,
    tenant_id: &str,
    contact_id: &str,
    notice: &SystemNotice,
) -> Result<(), DbErr> {
    let phone = notice
        .new_wa_id
        .as_deref()
        .and_then(|w| PhoneNumber::from_wa_id(w).ok())
        .map(|p| (PHONE, p.to_string()));
    let bsuid = notice
        .new_user_id
        .as_deref()
        .and_then(|b| Bsuid::parse(b).ok())
        .map(|b| (BSUID, b.to_string()));
    for (kind, value) in phone.into_iter().chain(bsuid) {
        move_to(db, tenant_id, contact_id, kind, &value).await?;
    }
    Ok(())
}

/// Makes `value` the contact's primary identity of `kind`, linking it first; the old one
/// stays linked. Nothing changes when `value` names another contact.
async fn move_to<C: ConnectionTrait>(
    db: &C,
    tenant_id: &str,
    contact_id: &str,
    kind: &'static str,
    value: &str,
) -> Result<(), DbErr> {
    let now = now_ms();
    link(db, tenant_id, contact_id, &[(kind, value.to_owned())], now).await?;
    let owner = find_by_identity(db, tenant_id, kind, value).await?;
    if owner.as_deref() != Some(contact_id) {
        tracing::warn!(
            contact_id,
            other_contact_id = owner.as_deref().unwrap_or(""),
            kind,
            "A number change names an identity another contact has; the contact keeps its own."
        );
        return Ok(());
    }
    let column = if kind == PHONE {
        contacts::Column::E164
    } else {
        contacts::Column::Bsuid
    };
    // The primary columns are unique per tenant too: never take one another row still
    // shows, whatever its identities say (a failed statement would fail the webhook).
    let taken = Query::select()
        .expr(Expr::value(1))
        .from(contacts::Entity)
        .and_where(contacts::Column::TenantId.eq(tenant_id))
        .and_where(column.eq(value))
        .and_where(contacts::Column::Id.ne(contact_id))
        .to_owned();
    contacts::Entity::update_many()
        .col_expr(column, Expr::value(value))
        .col_expr(contacts::Column::UpdatedAt, Expr::value(now))
        .filter(contacts::Column::Id.eq(contact_id))
        .filter(sea_orm::sea_query::ExprTrait::not(Expr::exists(taken)))
        .exec(db)
        .await?;
    Ok(())
}

/// The contact a phone number or BSUID names, if known.
pub(crate) async fn find_by_identity<C: ConnectionTrait>(
    db: &C,
    tenant_id: &str,
    kind: &str,
    value: &str,
) -> Result<Option<String>, DbErr> {
    Ok(contact_identities::Entity::find()
        .filter(contact_identities::Column::TenantId.eq(tenant_id))
        .filter(contact_identities::Column::Kind.eq(kind))
        .filter(contact_identities::Column::Value.eq(value))
        .one(db)
        .await?
        .map(|r| r.contact_id))
}

/// A contact with its identities and channels.
pub(crate) async fn view<C: ConnectionTrait>(
    db: &C,
    tenant_id: &str,
    contact_id: &str,
) -> Result<Option<ContactView>, DbErr> {
    let Some(row) = contacts::Entity::find_by_id(contact_id.to_owned())
        .filter(contacts::Column::TenantId.eq(tenant_id))
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    let idents = contact_identities::Entity::find()
        .filter(contact_identities::Column::ContactId.eq(contact_id))
        .order_by_asc(contact_identities::Column::CreatedAt)
        .all(db)
        .await?;
    let mut channels: Vec<String> = conversations::Entity::find()
        .filter(conversations::Column::ContactId.eq(contact_id))
        .all(db)
        .await?
        .into_iter()
        .map(|c| c.channel)
        .collect();
    channels.sort();
    channels.dedup();
    Ok(Some(ContactView {
        id: row.id,
        phone: row.e164,
        phones: idents
            .iter()
            .filter(|i| i.kind == PHONE)
            .map(|i| i.value.clone())
            .collect(),
        bsuid: row.bsuid,
        profile_name: row.profile_name,
        username: row.username,
        channels,
        created_at: ids::rfc3339(row.created_at),
    }))
}

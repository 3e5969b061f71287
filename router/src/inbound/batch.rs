//! The group commit's batch path: a batch of webhooks stored with per-batch statements
//! instead of per-webhook ones, inside the one transaction of the group commit.
//!
//! - Event keys: one multi-row `INSERT … ON CONFLICT DO NOTHING RETURNING` claims every
//!   event of the batch; an event whose key came back is new, any other one (an earlier
//!   delivery, or the same key earlier in this batch) is a duplicate.
//! - Contacts: one read of every identity the batch names; a message whose identities all
//!   name one known contact takes it (names refreshed from one read of those contacts);
//!   any other message goes through [`contacts::upsert_tracked`] in batch order. A merge
//!   drops everything read so far, so no later message uses a merged-away id.
//! - Conversations: one multi-row upsert (`ON CONFLICT DO UPDATE`, timestamps only moving
//!   forward) creates or touches every conversation of the batch and returns the rows.
//! - Messages: one multi-row `INSERT … ON CONFLICT DO NOTHING RETURNING id`.
//! - Statuses, problems and the rest: per event, in order, as the one-by-one path does.
//! - Notifications: one enqueue for the whole batch, in event order.
//!
//! The result is the same as storing the webhooks one after another in one transaction;
//! any error rolls the batch back and the caller stores each webhook on its own.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseBackend, DbErr, EntityTrait,
    QueryFilter, Statement, TryInsertResult,
};
use switchboard_core::{Direction, EventKind, InboundEvent, InboundMessage, MessageStatus};

use super::{Job, Stored, opt_keyword, problem, store_other};
use crate::accounts::Account;
use crate::events::RouterEvent;
use crate::ids::{self, now_ms};
use crate::store::entity::{
    contact_identities as identities, contacts as contact_rows, conversations, messages,
    webhook_events,
};
use crate::{contacts, conversations as convs};

/// Rows per multi-row statement: far below SQLite's (32,766) and PostgreSQL's (65,535)
/// parameter limits even for the 18 columns of a message.
const CHUNK: usize = 256;

/// One routed event of the batch.
struct Item<'a> {
    job: usize,
    index: usize,
    account: &'a Arc<Account>,
    event: &'a InboundEvent,
}

fn returned<T>(result: TryInsertResult<Vec<T>>) -> Vec<T> {
    match result {
        TryInsertResult::Inserted(rows) => rows,
        _ => Vec::new(),
    }
}

/// Stores every job inside the caller's transaction; returns one result per job.
pub(super) async fn store_jobs<C: ConnectionTrait>(
    db: &C,
    jobs: &[Job],
) -> Result<Vec<Stored>, DbErr> {
    let mut counts = vec![(0usize, 0usize); jobs.len()];
    let mut notify: Vec<(usize, usize, RouterEvent)> = Vec::new();

    // Route: an event for an account that did not verify is only a problem.
    let mut routed = Vec::new();
    for (job_index, job) in jobs.iter().enumerate() {
        for (index, event) in job.parsed.events.iter().enumerate() {
            match job
                .accounts
                .iter()
                .find(|a| a.ctx.routing_key == event.routing_key)
            {
                Some(account) => routed.push(Item {
                    job: job_index,
                    index,
                    account,
                    event,
                }),
                None => {
                    problem(
                        db,
                        &job.channel,
                        None,
                        "unrouted_event",
                        "event for an account that did not verify",
                        &event.raw,
                    )
                    .await?;
                }
            }
        }
    }

    // Claim the event keys.
    let now = now_ms();
    let mut claimed: HashSet<(String, String)> = HashSet::new();
    for chunk in routed.chunks(CHUNK) {
        let rows = chunk.iter().map(|it| webhook_events::ActiveModel {
            channel: Set(jobs[it.job].channel.clone()),
            event_key: Set(it.event.event_key.clone()),
            tenant_id: Set(it.account.ctx.tenant_id.clone()),
            account_id: Set(it.account.ctx.account_id.clone()),
            kind: Set(super::kind_name(&it.event.kind).to_owned()),
            received_at: Set(now),
            ..Default::default()
        });
        let inserted = webhook_events::Entity::insert_many(rows)
            .on_conflict_do_nothing_on([
                webhook_events::Column::Channel,
                webhook_events::Column::EventKey,
            ])
            .exec_with_returning_many(db)
            .await?;
        claimed.extend(
            returned(inserted)
                .into_iter()
                .map(|r| (r.channel, r.event_key)),
        );
    }
    let mut fresh = Vec::new();
    for it in routed {
        // The first occurrence of a key in the batch is the one stored.
        if claimed.remove(&(jobs[it.job].channel.clone(), it.event.event_key.clone())) {
            counts[it.job].0 += 1;
            fresh.push(it);
        } else {
            counts[it.job].1 += 1;
        }
    }

    // Messages.
    let msgs: Vec<(&Item<'_>, &InboundMessage)> = fresh
        .iter()
        .filter_map(|it| match &it.event.kind {
            EventKind::Message(m) => Some((it, m)),
            _ => None,
        })
        .collect();
    if !msgs.is_empty() {
        store_messages(db, jobs, &msgs, &mut counts, &mut notify).await?;
    }

    // Everything else, per event, in order.
    for it in &fresh {
        if matches!(it.event.kind, EventKind::Message(_)) {
            continue;
        }
        if let Some(ev) = store_other(db, &jobs[it.job].channel, it.account, it.event).await? {
            notify.push((it.job, it.index, ev));
        }
    }
    for job in jobs {
        for p in &job.parsed.problems {
            let account = p
                .routing_key
                .as_deref()
                .and_then(|k| job.accounts.iter().find(|a| a.ctx.routing_key == k));
            problem(
                db,
                &job.channel,
                account,
                "parse_problem",
                &p.detail,
                &p.raw,
            )
            .await?;
        }
    }

    notify.sort_by_key(|(job, index, _)| (*job, *index));
    let events: Vec<RouterEvent> = notify.iter().map(|(_, _, e)| e.clone()).collect();
    crate::notify::enqueue(db, &events).await?;
    let mut per_job: Vec<Vec<RouterEvent>> = vec![Vec::new(); jobs.len()];
    for (job, _, ev) in notify {
        per_job[job].push(ev);
    }
    Ok(counts.into_iter().zip(per_job).collect())
}

/// Resolves each message's contact (`None`: the message names nobody).
async fn resolve_contacts<C: ConnectionTrait>(
    db: &C,
    msgs: &[(&Item<'_>, &InboundMessage)],
) -> Result<Vec<Option<String>>, DbErr> {
    let keys: Vec<Vec<(&'static str, String)>> = msgs
        .iter()
        .map(|(_, m)| contacts::identity_keys(&m.contact))
        .collect();
    // Who owns each identity of the batch, read once.
    let mut owners: HashMap<(String, String, String), String> = HashMap::new();
    let wanted: BTreeSet<(&str, &'static str, &str)> = msgs
        .iter()
        .zip(&keys)
        .flat_map(|((it, _), keys)| {
            keys.iter()
                .map(|(kind, value)| (it.account.ctx.tenant_id.as_str(), *kind, value.as_str()))
        })
        .collect();
    let wanted: Vec<_> = wanted.into_iter().collect();
    read_owners(db, &wanted, &mut owners).await?;
    let sole_owner = |owners: &HashMap<(String, String, String), String>,
                      tenant: &str,
                      keys: &[(&'static str, String)]|
     -> Option<String> {
        let mut found: Option<&String> = None;
        for (kind, value) in keys {
            let owner = owners.get(&(tenant.to_owned(), (*kind).to_owned(), value.clone()))?;
            if found.is_some_and(|f| f != owner) {
                return None;
            }
            found = Some(owner);
        }
        found.cloned()
    };
    // The known contacts' rows, read once, for the name refresh.
    let known: BTreeSet<String> = msgs
        .iter()
        .zip(&keys)
        .filter_map(|((it, _), k)| sole_owner(&owners, &it.account.ctx.tenant_id, k))
        .collect();
    let mut rows: HashMap<String, contact_rows::Model> = HashMap::new();
    let known: Vec<String> = known.into_iter().collect();
    for chunk in known.chunks(CHUNK) {
        for row in contact_rows::Entity::find()
            .filter(contact_rows::Column::Id.is_in(chunk.iter().cloned()))
            .all(db)
            .await?
        {
            rows.insert(row.id.clone(), row);
        }
    }

    let created = create_new_contacts(db, msgs, &keys, &mut owners, &mut rows).await?;

    let mut merged_any = false;
    let mut out = Vec::with_capacity(msgs.len());
    for (((it, m), keys), created) in msgs.iter().zip(&keys).zip(created) {
        let tenant = &it.account.ctx.tenant_id;
        if keys.is_empty() {
            out.push(None);
            continue;
        }
        if created.is_some() {
            out.push(created);
            continue;
        }
        if let Some(id) = sole_owner(&owners, tenant, keys) {
            // Known contact: every identity already names it; only the names may change.
            match rows.remove(&id) {
                Some(row) => {
                    let row = contacts::refresh_row(db, row, &m.contact, now_ms()).await?;
                    rows.insert(id.clone(), row);
                }
                None => contacts::refresh(db, &id, &m.contact, now_ms()).await?,
            }
            out.push(Some(id));
            continue;
        }
        match contacts::upsert_tracked(db, tenant, &m.contact).await? {
            None => out.push(None),
            Some((id, merged)) => {
                if merged {
                    // Ids read before may name merged-away contacts: forget them all.
                    merged_any = true;
                    owners.clear();
                    rows.clear();
                } else {
                    for (kind, value) in keys {
                        owners.insert(
                            (tenant.clone(), (*kind).to_owned(), value.clone()),
                            id.clone(),
                        );
                    }
                    rows.remove(&id);
                }
                out.push(Some(id));
            }
        }
    }
    if merged_any {
        // A merge moved identities away from contacts resolved before it, and deleted those
        // contacts: every message's identities now name one contact each; read them again.
        let mut now_owned = HashMap::new();
        read_owners(db, &wanted, &mut now_owned).await?;
        for ((it, _), (keys, id)) in msgs.iter().zip(keys.iter().zip(out.iter_mut())) {
            if let (Some(id), Some((kind, value))) = (id.as_mut(), keys.first()) {
                let key = (
                    it.account.ctx.tenant_id.clone(),
                    (*kind).to_owned(),
                    value.clone(),
                );
                *id = now_owned
                    .get(&key)
                    .cloned()
                    .ok_or_else(|| DbErr::RecordNotFound("contact identity".into()))?;
            }
        }
    }
    Ok(out)
}

/// Creates, in a few multi-row statements, the contacts of the messages that name only
/// identities nobody owns and that no earlier message of the batch names either: creating
/// those first gives the same result as creating them in batch order, because no earlier
/// message touches their identities. Returns, per message, the contact created for it.
///
/// A concurrent writer (PostgreSQL) may claim one of those identities first; such a message
/// gets `None` here, its unused contact row is removed, and it goes through
/// [`contacts::upsert_tracked`] like any other.
async fn create_new_contacts<C: ConnectionTrait>(
    db: &C,
    msgs: &[(&Item<'_>, &InboundMessage)],
    keys: &[Vec<(&'static str, String)>],
    owners: &mut HashMap<(String, String, String), String>,
    rows: &mut HashMap<String, contact_rows::Model>,
) -> Result<Vec<Option<String>>, DbErr> {
    let now = now_ms();
    let mut seen: HashSet<(String, &'static str, &str)> = HashSet::new();
    let mut planned: Vec<Option<contact_rows::Model>> = Vec::with_capacity(msgs.len());
    for ((it, m), keys) in msgs.iter().zip(keys) {
        let tenant = &it.account.ctx.tenant_id;
        let untouched = !keys.is_empty()
            && keys.iter().all(|(kind, value)| {
                !owners.contains_key(&(tenant.clone(), (*kind).to_owned(), value.clone()))
                    && !seen.contains(&(tenant.clone(), *kind, value.as_str()))
            });
        for (kind, value) in keys {
            seen.insert((tenant.clone(), *kind, value.as_str()));
        }
        planned.push(untouched.then(|| {
            let ident = &m.contact;
            contact_rows::Model {
                id: ids::new_id(ids::CONTACT),
                tenant_id: tenant.clone(),
                e164: ident
                    .phone
                    .as_ref()
                    .or(ident.wa_id.as_ref())
                    .map(ToString::to_string),
                bsuid: ident.bsuid.as_ref().map(ToString::to_string),
                profile_name: ident.profile_name.clone(),
                username: ident.username.clone(),
                created_at: now,
                updated_at: now,
            }
        }));
    }
    let new_rows: Vec<&contact_rows::Model> = planned.iter().flatten().collect();
    if new_rows.is_empty() {
        return Ok(vec![None; msgs.len()]);
    }
    for chunk in new_rows.chunks(CHUNK) {
        contact_rows::Entity::insert_many(chunk.iter().map(|r| contact_rows::ActiveModel {
            id: Set(r.id.clone()),
            tenant_id: Set(r.tenant_id.clone()),
            e164: Set(r.e164.clone()),
            bsuid: Set(r.bsuid.clone()),
            profile_name: Set(r.profile_name.clone()),
            username: Set(r.username.clone()),
            created_at: Set(r.created_at),
            updated_at: Set(r.updated_at),
        }))
        .exec_without_returning(db)
        .await?;
    }
    let links: Vec<identities::ActiveModel> = planned
        .iter()
        .zip(keys)
        .filter_map(|(row, keys)| row.as_ref().map(|row| (row, keys)))
        .flat_map(|(row, keys)| {
            keys.iter().map(|(kind, value)| identities::ActiveModel {
                tenant_id: Set(row.tenant_id.clone()),
                kind: Set((*kind).to_owned()),
                value: Set(value.clone()),
                contact_id: Set(row.id.clone()),
                created_at: Set(now),
            })
        })
        .collect();
    let mut claimed: HashMap<(String, String, String), String> = HashMap::new();
    for chunk in links.chunks(CHUNK) {
        let inserted = identities::Entity::insert_many(chunk.iter().cloned())
            .on_conflict_do_nothing_on([
                identities::Column::TenantId,
                identities::Column::Kind,
                identities::Column::Value,
            ])
            .exec_with_returning_many(db)
            .await?;
        for r in returned(inserted) {
            claimed.insert((r.tenant_id, r.kind, r.value), r.contact_id);
        }
    }
    let mut out = Vec::with_capacity(msgs.len());
    for (row, keys) in planned.into_iter().zip(keys) {
        let Some(row) = row else {
            out.push(None);
            continue;
        };
        let owned = |(kind, value): &(&'static str, String)| {
            claimed.get(&(row.tenant_id.clone(), (*kind).to_owned(), value.clone()))
                == Some(&row.id)
        };
        if keys.iter().all(owned) {
            for (kind, value) in keys {
                owners.insert(
                    (row.tenant_id.clone(), (*kind).to_owned(), value.clone()),
                    row.id.clone(),
                );
            }
            out.push(Some(row.id.clone()));
            rows.insert(row.id.clone(), row);
        } else {
            // Lost a race for an identity: upsert settles it (merging a partly linked row).
            if !keys.iter().any(owned) {
                contact_rows::Entity::delete_by_id(row.id.clone())
                    .exec(db)
                    .await?;
            }
            out.push(None);
        }
    }
    Ok(out)
}

/// Reads who owns each of `wanted` (tenant, kind, value) into `owners`, with a join against
/// a `VALUES` list: one index probe on the whole key per identity on both backends, whatever
/// the planner's statistics say (`value IN (…)` or an `OR` of terms sharing tenant and kind
/// can end up, on a freshly filled PostgreSQL table, as a filter over every identity of the
/// tenant).
async fn read_owners<C: ConnectionTrait>(
    db: &C,
    wanted: &[(&str, &'static str, &str)],
    owners: &mut HashMap<(String, String, String), String>,
) -> Result<(), DbErr> {
    let backend = db.get_database_backend();
    for chunk in wanted.chunks(CHUNK) {
        let mut sql = String::from(
            "SELECT ci.tenant_id, ci.kind, ci.value, ci.contact_id FROM contact_identities ci \
             JOIN (VALUES ",
        );
        let mut values: Vec<sea_orm::Value> = Vec::with_capacity(chunk.len() * 3);
        for (i, (tenant, kind, value)) in chunk.iter().enumerate() {
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push('(');
            for j in 0..3 {
                if j > 0 {
                    sql.push_str(", ");
                }
                match backend {
                    DatabaseBackend::Postgres => sql.push_str(&format!("${}", i * 3 + j + 1)),
                    _ => sql.push('?'),
                }
            }
            sql.push(')');
            values.extend([(*tenant).into(), (*kind).into(), (*value).into()]);
        }
        sql.push_str(
            ") AS v ON ci.tenant_id = v.column1 AND ci.kind = v.column2 AND ci.value = v.column3",
        );
        let rows = db
            .query_all_raw(Statement::from_sql_and_values(backend, sql, values))
            .await?;
        for r in rows {
            owners.insert(
                (
                    r.try_get("", "tenant_id")?,
                    r.try_get("", "kind")?,
                    r.try_get("", "value")?,
                ),
                r.try_get("", "contact_id")?,
            );
        }
    }
    Ok(())
}

/// A conversation of the batch: (tenant, contact, account).
type ConvKey = (String, String, String);

async fn store_messages<C: ConnectionTrait>(
    db: &C,
    jobs: &[Job],
    msgs: &[(&Item<'_>, &InboundMessage)],
    counts: &mut [(usize, usize)],
    notify: &mut Vec<(usize, usize, RouterEvent)>,
) -> Result<(), DbErr> {
    let contact_ids = resolve_contacts(db, msgs).await?;
    let now = now_ms();

    // Create or touch every conversation of the batch in one upsert per chunk.
    struct Touch {
        channel: String,
        last_message_at: i64,
        last_inbound_at: Option<i64>,
    }
    let mut touches: BTreeMap<ConvKey, Touch> = BTreeMap::new();
    let mut at_of = Vec::with_capacity(msgs.len());
    for ((it, m), contact) in msgs.iter().zip(&contact_ids) {
        // A provider clock ahead of ours must not stretch the service window.
        let at = m.timestamp.timestamp_millis().min(now);
        at_of.push(at);
        let Some(contact) = contact else { continue };
        let inbound = m.direction == Direction::Inbound;
        let key = (
            it.account.ctx.tenant_id.clone(),
            contact.clone(),
            it.account.ctx.account_id.clone(),
        );
        let t = touches.entry(key).or_insert_with(|| Touch {
            channel: it.account.channel.clone(),
            last_message_at: at,
            last_inbound_at: None,
        });
        t.last_message_at = t.last_message_at.max(at);
        if inbound {
            t.last_inbound_at = Some(t.last_inbound_at.map_or(at, |x| x.max(at)));
        }
    }
    let mut convs: HashMap<ConvKey, conversations::Model> = HashMap::new();
    let touches: Vec<(ConvKey, Touch)> = touches.into_iter().collect();
    for chunk in touches.chunks(CHUNK) {
        let rows = chunk.iter().map(
            |((tenant, contact, account), t)| conversations::ActiveModel {
                id: Set(ids::new_id(ids::CONVERSATION)),
                tenant_id: Set(tenant.clone()),
                contact_id: Set(contact.clone()),
                account_id: Set(account.clone()),
                channel: Set(t.channel.clone()),
                last_message_at: Set(t.last_message_at),
                last_inbound_at: Set(t.last_inbound_at),
                opted_out_at: Set(None),
                created_at: Set(now),
            },
        );
        let upsert = OnConflict::columns([
            conversations::Column::TenantId,
            conversations::Column::ContactId,
            conversations::Column::AccountId,
        ])
        .value(
            conversations::Column::LastMessageAt,
            Expr::cust(
                "CASE WHEN excluded.last_message_at > conversations.last_message_at \
                 THEN excluded.last_message_at ELSE conversations.last_message_at END",
            ),
        )
        .value(
            conversations::Column::LastInboundAt,
            Expr::cust(
                "CASE WHEN conversations.last_inbound_at IS NULL \
                 OR excluded.last_inbound_at > conversations.last_inbound_at \
                 THEN excluded.last_inbound_at ELSE conversations.last_inbound_at END",
            ),
        )
        .to_owned();
        for row in conversations::Entity::insert_many(rows)
            .on_conflict(upsert)
            .exec_with_returning(db)
            .await?
        {
            convs.insert(
                (
                    row.tenant_id.clone(),
                    row.contact_id.clone(),
                    row.account_id.clone(),
                ),
                row,
            );
        }
    }

    // Opt-outs, in message order: STOP opts out; any other inbound message opts back in.
    let mut opted: HashMap<String, (Option<i64>, bool)> = HashMap::new();
    let mut conv_of: Vec<Option<String>> = Vec::with_capacity(msgs.len());
    for ((it, m), contact) in msgs.iter().zip(&contact_ids) {
        let Some(contact) = contact else {
            conv_of.push(None);
            continue;
        };
        let key = (
            it.account.ctx.tenant_id.clone(),
            contact.clone(),
            it.account.ctx.account_id.clone(),
        );
        let conv = convs
            .get(&key)
            .ok_or_else(|| DbErr::RecordNotFound("conversation".into()))?;
        if m.direction == Direction::Inbound {
            let state = opted
                .entry(conv.id.clone())
                .or_insert((conv.opted_out_at, false));
            match opt_keyword(m) {
                Some(true) => *state = (Some(now_ms()), true),
                _ if state.0.is_some() => *state = (None, true),
                _ => {}
            }
        }
        conv_of.push(Some(conv.id.clone()));
    }
    for (conv, (at, dirty)) in &opted {
        if *dirty {
            convs::set_opted_out(db, conv, *at).await?;
        }
    }

    // The messages, in one insert per chunk.
    let mut planned = Vec::with_capacity(msgs.len());
    for (((it, m), conv), at) in msgs.iter().zip(&conv_of).zip(&at_of) {
        let Some(conv) = conv else {
            problem(
                db,
                &jobs[it.job].channel,
                Some(it.account),
                "unknown_contact",
                "message names no phone number or BSUID",
                &it.event.raw,
            )
            .await?;
            continue;
        };
        planned.push((it, *m, conv, ids::new_id(ids::MESSAGE), *at));
    }
    let mut inserted: HashSet<String> = HashSet::new();
    for chunk in planned.chunks(CHUNK) {
        let rows = chunk.iter().map(|(it, m, conv, id, at)| {
            let content = serde_json::to_string(&m.content).unwrap_or_else(|_| "{}".into());
            messages::ActiveModel {
                id: Set(id.clone()),
                tenant_id: Set(it.account.ctx.tenant_id.clone()),
                conversation_id: Set((*conv).clone()),
                account_id: Set(it.account.ctx.account_id.clone()),
                channel: Set(it.account.channel.clone()),
                direction: Set(m.direction.as_str().to_owned()),
                status: Set(MessageStatus::Received.as_str().to_owned()),
                status_rank: Set(MessageStatus::Received.rank()),
                provider_message_id: Set(Some(m.provider_message_id.clone())),
                content: Set(content),
                reply_to: Set(m.reply_to.clone()),
                error_code: Set(None),
                error_message: Set(None),
                raw: Set(Some(it.event.raw.to_string())),
                idempotency_key: Set(None),
                provider_timestamp: Set(Some(*at)),
                created_at: Set(now),
                updated_at: Set(now),
            }
        });
        let done = messages::Entity::insert_many(rows)
            .on_conflict_do_nothing_on([
                messages::Column::Channel,
                messages::Column::ProviderMessageId,
            ])
            .exec_with_returning_keys(db)
            .await?;
        if let TryInsertResult::Inserted(keys) = done {
            inserted.extend(keys);
        }
    }
    for (it, m, conv, id, _) in planned {
        if !inserted.contains(&id) {
            // Same provider message id already stored (under another event key).
            counts[it.job].0 -= 1;
            counts[it.job].1 += 1;
            continue;
        }
        let tenant_id = &it.account.ctx.tenant_id;
        crate::media::enqueue_inbound(db, tenant_id, &it.account.ctx.account_id, &id, &m.content)
            .await?;
        notify.push((
            it.job,
            it.index,
            RouterEvent::MessageReceived {
                tenant_id: tenant_id.clone(),
                message_id: id,
                conversation_id: conv.clone(),
                direction: m.direction,
            },
        ));
    }
    Ok(())
}

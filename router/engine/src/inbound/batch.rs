//! The group commit's batch path, the only way inbound webhooks are written: a batch of
//! webhooks (a lone webhook is a batch of one) stored with per-batch statements instead of
//! per-webhook ones, inside the one transaction of the group commit. Each
//! statement takes the batch's rows as one JSON array ([`json_rows`]), so its SQL text is
//! the same for every batch size and is prepared once per connection.
//!
//! - Event keys: one multi-row `INSERT … ON CONFLICT DO NOTHING RETURNING` claims every
//!   event of the batch; an event whose key came back is new, any other one (an earlier
//!   delivery, or the same key earlier in this batch) is a duplicate. Each key comes back
//!   with whether its tenant subscribes to notifications, which saves the notification
//!   queue its own look-up.
//! - Contacts: one read of every identity the batch names, with its owner's row; a message
//!   whose identities all name one known contact takes it (names refreshed from that row);
//!   any other message goes through [`contacts::upsert_tracked`] in batch order. A merge
//!   drops everything read so far, so no later message uses a merged-away id.
//! - Conversations: one multi-row upsert (`ON CONFLICT DO UPDATE`, timestamps only moving
//!   forward) creates or touches every conversation of the batch and returns the rows.
//! - Messages: one multi-row `INSERT … ON CONFLICT DO NOTHING RETURNING id`, with their
//!   referral. Only the person writing ([`is_person_writing`]: not an echo, not a
//!   platform's notice) opens the window or changes an opt-out; a notice of a number or
//!   BSUID change moves its contact ([`contacts::apply_notice`]).
//! - Provider notifications (account-level, group chats): one multi-row insert; those that
//!   report an account's quality, limit or restrictions update its `account_state`.
//! - Statuses, problems and the rest: per event, in order.
//! - Notifications: one enqueue for the whole batch, in event order.
//!
//! The result is the same as storing the webhooks one after another in one transaction;
//! any error rolls the batch back, and the caller stores each of its webhooks again as a
//! batch of one.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use sea_orm::{ConnectionTrait, DatabaseBackend, DbErr, EntityTrait, FromQueryResult, QueryResult};
use switchboard_core::{
    Direction, EventKind, InboundEvent, InboundMessage, MessageStatus, ProviderNotification,
};

use crate::events::RouterEvent;
use crate::ids::{self, now_ms};
use crate::inbound::items::{kind_name, opt_keyword, problem, store_other};
use crate::inbound::job::{Job, QueuedWork, Stored};
use crate::records::{contacts, conversations};
use crate::store::entity;
use crate::store::json_rows::{self, Col::*};
use crate::tenancy::account_state;
use crate::tenancy::accounts::Account;

/// One routed event of the batch.
struct Item<'a> {
    job: usize,
    index: usize,
    account: &'a Arc<Account>,
    event: &'a InboundEvent,
}

/// Stores every job inside the caller's transaction; returns one result per job.
pub(super) async fn store_jobs<C: ConnectionTrait>(
    db: &C,
    jobs: &[Job],
) -> Result<Vec<Stored>, DbErr> {
    let mut counts = vec![(0usize, 0usize); jobs.len()];
    let mut notify: Vec<(usize, usize, RouterEvent)> = Vec::new();
    let mut queued = QueuedWork::default();

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
    let backend = db.get_database_backend();
    let keys: Vec<(&str, &str, &str, &str, &str, i64)> = routed
        .iter()
        .map(|it| {
            (
                jobs[it.job].channel.as_str(),
                it.event.event_key.as_str(),
                it.account.ctx.tenant_id.as_str(),
                it.account.ctx.account_id.as_str(),
                kind_name(&it.event.kind),
                now,
            )
        })
        .collect();
    let mut claimed: HashSet<(String, String)> = HashSet::new();
    // Whether each tenant of a new event subscribes to notifications.
    let mut subscribed: HashMap<String, bool> = HashMap::new();
    if !keys.is_empty() {
        let sql = format!(
            "INSERT INTO webhook_events (channel, event_key, tenant_id, account_id, kind, received_at) \
             {} ON CONFLICT (channel, event_key) DO NOTHING RETURNING channel, event_key, tenant_id, \
             EXISTS (SELECT 1 FROM tenants t WHERE t.id = webhook_events.tenant_id \
             AND t.notify_url IS NOT NULL) AS notify",
            json_rows::select(backend, &[Text, Text, Text, Text, Text, BigInt])
        );
        for r in db
            .query_all_raw(json_rows::statement(backend, &sql, &keys)?)
            .await?
        {
            claimed.insert((r.try_get("", "channel")?, r.try_get("", "event_key")?));
            subscribed.insert(
                r.try_get("", "tenant_id")?,
                crate::store::flag(&r, "notify")?,
            );
        }
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
        queued.media = store_messages(db, jobs, &msgs, &mut counts, &mut notify).await?;
    }

    // Provider notifications, in one insert.
    let notes: Vec<(&Item<'_>, &ProviderNotification)> = fresh
        .iter()
        .filter_map(|it| match &it.event.kind {
            EventKind::Notification(n) => Some((it, n)),
            _ => None,
        })
        .collect();
    if !notes.is_empty() {
        store_notifications(db, jobs, &notes).await?;
        // The few that report an account's quality, limit or restrictions update it at once.
        for (it, n) in &notes {
            if !account_state::STATE_KINDS.contains(&n.kind.as_str()) {
                continue;
            }
            let (tenant, account) = (&it.account.ctx.tenant_id, &it.account.ctx.account_id);
            let (state, changed) = account_state::report(db, tenant, account, |state| {
                state.apply(&n.kind, &it.event.raw)
            })
            .await?;
            if changed {
                let ev = RouterEvent::account_state_changed(tenant, account, &state);
                notify.push((it.job, it.index, ev));
            }
        }
    }

    // Everything else, per event, in order.
    for it in &fresh {
        if matches!(
            it.event.kind,
            EventKind::Message(_) | EventKind::Notification(_)
        ) {
            continue;
        }
        let job = &jobs[it.job];
        if let Some(ev) =
            store_other(db, &job.channel, job.adapter.as_ref(), it.account, it.event).await?
        {
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
    queued.notifications = crate::notify::queue::enqueue_known(db, &events, &subscribed).await?;
    let mut per_job: Vec<Vec<RouterEvent>> = vec![Vec::new(); jobs.len()];
    for (job, _, ev) in notify {
        per_job[job].push(ev);
    }
    Ok(counts
        .into_iter()
        .zip(per_job)
        .map(|(counts, events)| (counts, events, queued))
        .collect())
}

/// Stores the batch's new provider notifications (account-level notifications, group-chat
/// items) in one insert: kept as they came for the account each names, never filed into a
/// conversation. Their keys were claimed in `webhook_events` like every event's, so each
/// is new here; the table's own unique key is a second guard.
async fn store_notifications<C: ConnectionTrait>(
    db: &C,
    jobs: &[Job],
    notes: &[(&Item<'_>, &ProviderNotification)],
) -> Result<(), DbErr> {
    let now = now_ms();
    let backend = db.get_database_backend();
    let rows: Vec<_> = notes
        .iter()
        .map(|(it, n)| {
            (
                &it.account.ctx.tenant_id,
                &it.account.ctx.account_id,
                &jobs[it.job].channel,
                &n.kind,
                &n.entity_id,
                &it.event.event_key,
                it.event.raw.to_string(),
                n.timestamp.map(|t| t.timestamp_millis()),
                now,
            )
        })
        .collect();
    let sql = format!(
        "INSERT INTO provider_notifications (tenant_id, account_id, channel, kind, entity_id, \
         event_key, raw, provider_timestamp, received_at) {} \
         ON CONFLICT (channel, event_key) DO NOTHING",
        json_rows::select(
            backend,
            &[Text, Text, Text, Text, Text, Text, Text, BigInt, BigInt]
        )
    );
    db.execute_raw(json_rows::statement(backend, &sql, &rows)?)
        .await?;
    // A template's status, quality or category change shows in the catalog at once.
    for (it, n) in notes {
        if crate::templates::is_template_kind(&n.kind) {
            crate::templates::apply_notification(
                db,
                &it.account.ctx.account_id,
                &n.kind,
                &it.event.raw,
            )
            .await?;
        }
    }
    Ok(())
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
    // The owners' rows come with them, for the name refresh of known contacts.
    let mut rows: HashMap<String, entity::contacts::Model> = HashMap::new();
    read_owners(db, &wanted, &mut owners, Some(&mut rows)).await?;
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
        read_owners(db, &wanted, &mut now_owned, None).await?;
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
/// A concurrent writer (PostgreSQL) may create a contact with the same number or BSUID, or
/// claim one of those identities, first; such a message gets `None` here, its contact row
/// is not inserted or its unused row is removed, and it goes through
/// [`contacts::upsert_tracked`] like any other.
async fn create_new_contacts<C: ConnectionTrait>(
    db: &C,
    msgs: &[(&Item<'_>, &InboundMessage)],
    keys: &[Vec<(&'static str, String)>],
    owners: &mut HashMap<(String, String, String), String>,
    rows: &mut HashMap<String, entity::contacts::Model>,
) -> Result<Vec<Option<String>>, DbErr> {
    let now = now_ms();
    let mut seen: HashSet<(String, &'static str, &str)> = HashSet::new();
    let mut planned: Vec<Option<entity::contacts::Model>> = Vec::with_capacity(msgs.len());
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
            entity::contacts::Model {
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
    let new_rows: Vec<&entity::contacts::Model> = planned.iter().flatten().collect();
    if new_rows.is_empty() {
        return Ok(vec![None; msgs.len()]);
    }
    let backend = db.get_database_backend();
    let contact_values: Vec<_> = new_rows
        .iter()
        .map(|r| {
            (
                &r.id,
                &r.tenant_id,
                &r.e164,
                &r.bsuid,
                &r.profile_name,
                &r.username,
                r.created_at,
                r.updated_at,
            )
        })
        .collect();
    // A row whose number (or BSUID) another transaction's contact took since the look-up
    // is not inserted: its unique index would fail the whole batch. Upsert settles it.
    let sql = format!(
        "INSERT INTO contacts (id, tenant_id, e164, bsuid, profile_name, username, created_at, updated_at) {} \
         ON CONFLICT DO NOTHING RETURNING id",
        json_rows::select(
            backend,
            &[Text, Text, Text, Text, Text, Text, BigInt, BigInt]
        )
    );
    let mut inserted: HashSet<String> = HashSet::with_capacity(new_rows.len());
    for r in db
        .query_all_raw(json_rows::statement(backend, &sql, &contact_values)?)
        .await?
    {
        inserted.insert(r.try_get::<String>("", "id")?);
    }
    let planned: Vec<Option<entity::contacts::Model>> = planned
        .into_iter()
        .map(|row| row.filter(|r| inserted.contains(&r.id)))
        .collect();
    let links: Vec<(&str, &str, &str, &str, i64)> = planned
        .iter()
        .zip(keys)
        .filter_map(|(row, keys)| row.as_ref().map(|row| (row, keys)))
        .flat_map(|(row, keys)| {
            keys.iter().map(move |(kind, value)| {
                (
                    row.tenant_id.as_str(),
                    *kind,
                    value.as_str(),
                    row.id.as_str(),
                    now,
                )
            })
        })
        .collect();
    let sql = format!(
        "INSERT INTO contact_identities (tenant_id, kind, value, contact_id, created_at) {} \
         ON CONFLICT (tenant_id, kind, value) DO NOTHING RETURNING tenant_id, kind, value, contact_id",
        json_rows::select(backend, &[Text, Text, Text, Text, BigInt])
    );
    let mut claimed: HashMap<(String, String, String), String> = HashMap::new();
    for r in db
        .query_all_raw(json_rows::statement(backend, &sql, &links)?)
        .await?
    {
        let (identity, owner) = owned_identity(&r)?;
        claimed.insert(identity, owner);
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
                entity::contacts::Entity::delete_by_id(row.id.clone())
                    .exec(db)
                    .await?;
            }
            out.push(None);
        }
    }
    Ok(out)
}

/// The batch's look-up by key, as [`owners_sql`] builds it (for the test that checks its
/// query plan).
#[doc(hidden)]
pub fn lookup_statement(backend: DatabaseBackend) -> String {
    owners_sql(backend)
}

/// How [`owners_sql`] names the owning contact's columns.
const CONTACT_PREFIX: &str = "c_";

/// Who owns each (tenant, kind, value) of the bound array, with the owner's contact row
/// (columns prefixed [`CONTACT_PREFIX`]): one probe of the identities' primary key and
/// one of the contacts' per element. SQLite plans the plain joins that way; PostgreSQL
/// guesses 100 elements and would hash-join scans of every identity and contact, so there
/// each element looks itself up in a `LATERAL` subquery whose `LIMIT` keeps it from being
/// flattened into such a join.
fn owners_sql(backend: DatabaseBackend) -> String {
    let keys = json_rows::select(backend, &[Text, Text, Text]);
    let contact = "c.id AS c_id, c.tenant_id AS c_tenant_id, c.e164 AS c_e164, \
                   c.bsuid AS c_bsuid, c.profile_name AS c_profile_name, \
                   c.username AS c_username, c.created_at AS c_created_at, \
                   c.updated_at AS c_updated_at";
    match backend {
        DatabaseBackend::Postgres => format!(
            "SELECT o.* FROM ({keys}) AS v CROSS JOIN LATERAL (SELECT ci.tenant_id, ci.kind, \
             ci.value, ci.contact_id, {contact} FROM contact_identities ci \
             JOIN contacts c ON c.id = ci.contact_id WHERE ci.tenant_id = v.c0 \
             AND ci.kind = v.c1 AND ci.value = v.c2 LIMIT 1) AS o"
        ),
        _ => format!(
            "SELECT ci.tenant_id, ci.kind, ci.value, ci.contact_id, {contact} FROM ({keys}) AS v \
             JOIN contact_identities ci ON ci.tenant_id = v.c0 AND ci.kind = v.c1 AND ci.value = v.c2 \
             JOIN contacts c ON c.id = ci.contact_id"
        ),
    }
}

/// An identity row read back: ((tenant, kind, value), contact id).
fn owned_identity(r: &QueryResult) -> Result<((String, String, String), String), DbErr> {
    Ok((
        (
            r.try_get("", "tenant_id")?,
            r.try_get("", "kind")?,
            r.try_get("", "value")?,
        ),
        r.try_get("", "contact_id")?,
    ))
}

/// Reads who owns each of `wanted` (tenant, kind, value) into `owners`, and the owning
/// contacts' rows into `rows` when asked: one statement either way.
async fn read_owners<C: ConnectionTrait>(
    db: &C,
    wanted: &[(&str, &'static str, &str)],
    owners: &mut HashMap<(String, String, String), String>,
    mut rows: Option<&mut HashMap<String, entity::contacts::Model>>,
) -> Result<(), DbErr> {
    if wanted.is_empty() {
        return Ok(());
    }
    let backend = db.get_database_backend();
    let sql = owners_sql(backend);
    for r in db
        .query_all_raw(json_rows::statement(backend, &sql, wanted)?)
        .await?
    {
        let (identity, owner) = owned_identity(&r)?;
        if let Some(rows) = rows.as_deref_mut()
            && !rows.contains_key(&owner)
        {
            rows.insert(
                owner.clone(),
                entity::contacts::Model::from_query_result(&r, CONTACT_PREFIX)?,
            );
        }
        owners.insert(identity, owner);
    }
    Ok(())
}

/// A conversation of the batch: (tenant, contact, account).
type ConvKey = (String, String, String);

/// Stores the batch's new messages; whether any of them queued media to fetch.
async fn store_messages<C: ConnectionTrait>(
    db: &C,
    jobs: &[Job],
    msgs: &[(&Item<'_>, &InboundMessage)],
    counts: &mut [(usize, usize)],
    notify: &mut Vec<(usize, usize, RouterEvent)>,
) -> Result<bool, DbErr> {
    let mut media_queued = false;
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
        let inbound = is_person_writing(m);
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
    let mut convs: HashMap<ConvKey, entity::conversations::Model> = HashMap::new();
    let touches: Vec<(ConvKey, Touch)> = touches.into_iter().collect();
    if !touches.is_empty() {
        let backend = db.get_database_backend();
        let ids: Vec<String> = touches
            .iter()
            .map(|_| ids::new_id(ids::CONVERSATION))
            .collect();
        let values: Vec<_> = touches
            .iter()
            .zip(&ids)
            .map(|(((tenant, contact, account), t), id)| {
                (
                    id,
                    tenant,
                    contact,
                    account,
                    &t.channel,
                    t.last_message_at,
                    conversations::minute_of(t.last_message_at),
                    t.last_inbound_at,
                    now,
                )
            })
            .collect();
        // The timestamps only move forward, whatever order batches commit in. The update
        // leaves `last_message_minute` out: a column it assigns would rewrite that column's
        // index entry for every message, even to the same value (SQLite maintains an index
        // whose columns an UPDATE assigns). The few conversations whose minute moved are
        // updated next.
        let sql = format!(
            "INSERT INTO conversations (id, tenant_id, contact_id, account_id, channel, \
             last_message_at, last_message_minute, last_inbound_at, created_at) {} \
             ON CONFLICT (tenant_id, contact_id, account_id) DO UPDATE SET \
             last_message_at = CASE WHEN excluded.last_message_at > conversations.last_message_at \
             THEN excluded.last_message_at ELSE conversations.last_message_at END, \
             last_inbound_at = CASE WHEN conversations.last_inbound_at IS NULL \
             OR excluded.last_inbound_at > conversations.last_inbound_at \
             THEN excluded.last_inbound_at ELSE conversations.last_inbound_at END \
             RETURNING *",
            json_rows::select(
                backend,
                &[Text, Text, Text, Text, Text, BigInt, BigInt, BigInt, BigInt]
            )
        );
        let mut new_minutes: Vec<(String, i64)> = Vec::new();
        for mut row in entity::conversations::Entity::find()
            .from_raw_sql(json_rows::statement(backend, &sql, &values)?)
            .all(db)
            .await?
        {
            let minute = conversations::minute_of(row.last_message_at);
            if row.last_message_minute != minute {
                row.last_message_minute = minute;
                new_minutes.push((row.id.clone(), minute));
            }
            convs.insert(
                (
                    row.tenant_id.clone(),
                    row.contact_id.clone(),
                    row.account_id.clone(),
                ),
                row,
            );
        }
        if !new_minutes.is_empty() {
            let sql = format!(
                "UPDATE conversations SET last_message_minute = k.c1 FROM ({}) AS k \
                 WHERE conversations.id = k.c0",
                json_rows::select(backend, &[Text, BigInt])
            );
            db.execute_raw(json_rows::statement(backend, &sql, &new_minutes)?)
                .await?;
        }
    }

    // Opt-outs, in message order, as each message's channel declared (`opt_keyword`).
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
        if is_person_writing(m) {
            let state = opted
                .entry(conv.id.clone())
                .or_insert((conv.opted_out_at, false));
            match opt_keyword(m) {
                Some(true) => *state = (Some(now_ms()), true),
                Some(false) if state.0.is_some() => *state = (None, true),
                _ => {}
            }
        }
        conv_of.push(Some(conv.id.clone()));
    }
    for (conv, (at, dirty)) in &opted {
        if *dirty {
            conversations::set_opted_out(db, conv, *at).await?;
        }
    }

    // The messages, in one insert per chunk.
    let mut planned = Vec::with_capacity(msgs.len());
    for ((((it, m), conv), at), contact) in msgs.iter().zip(&conv_of).zip(&at_of).zip(&contact_ids)
    {
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
        planned.push((it, *m, conv, ids::new_id(ids::MESSAGE), *at, contact));
    }
    let mut inserted: HashSet<String> = HashSet::new();
    if !planned.is_empty() {
        let backend = db.get_database_backend();
        let mut values = Vec::with_capacity(planned.len());
        for (it, m, conv, id, at, _) in &planned {
            // Rendered when the job was made (`Job::new`), off this serial path.
            let texts = jobs[it.job]
                .texts
                .get(it.index)
                .and_then(Option::as_ref)
                .ok_or_else(|| DbErr::Custom("a message event without its texts".into()))?;
            values.push((
                id,
                &it.account.ctx.tenant_id,
                *conv,
                &it.account.ctx.account_id,
                &it.account.channel,
                m.direction.as_str(),
                MessageStatus::Received.as_str(),
                MessageStatus::Received.rank(),
                &m.provider_message_id,
                &texts.content,
                &m.reply_to,
                &texts.raw,
                *at,
                now,
                now,
                &texts.referral,
            ));
        }
        let sql = format!(
            "INSERT INTO messages (id, tenant_id, conversation_id, account_id, channel, direction, \
             status, status_rank, provider_message_id, content, reply_to, raw, provider_timestamp, \
             created_at, updated_at, referral) {} \
             ON CONFLICT (channel, provider_message_id) DO NOTHING RETURNING id",
            json_rows::select(
                backend,
                &[
                    Text, Text, Text, Text, Text, Text, Text, SmallInt, Text, Text, Text, Text,
                    BigInt, BigInt, BigInt, Text
                ]
            )
        );
        for r in db
            .query_all_raw(json_rows::statement(backend, &sql, &values)?)
            .await?
        {
            inserted.insert(r.try_get("", "id")?);
        }
    }
    for (it, m, conv, id, _, contact) in planned {
        if !inserted.contains(&id) {
            // Same provider message id already stored (under another event key).
            counts[it.job].0 -= 1;
            counts[it.job].1 += 1;
            continue;
        }
        let tenant_id = &it.account.ctx.tenant_id;
        if let (Some(notice), Some(contact)) = (&m.content.system, contact) {
            contacts::apply_notice(db, tenant_id, contact, notice).await?;
        }
        media_queued |= crate::media::queue::enqueue_inbound(
            db,
            tenant_id,
            &it.account.ctx.account_id,
            &id,
            &m.content,
        )
        .await?;
        notify.push((
            it.job,
            it.index,
            RouterEvent::MessageReceived {
                tenant_id: tenant_id.clone(),
                message_id: id,
                conversation_id: conv.clone(),
                direction: m.direction,
                referral: m.referral.clone().map(Box::new),
            },
        ));
    }
    Ok(media_queued)
}

/// Whether a message is the person writing: an inbound message that is not a platform's
/// notice ([`switchboard_core::SystemNotice`], e.g. a number change). Only that opens or
/// extends the service window and reads as consent or an opt-out; an echo or a notice is
/// stored in the conversation all the same.
fn is_person_writing(m: &InboundMessage) -> bool {
    m.direction == Direction::Inbound && m.content.system.is_none()
}

//! Notifications waiting to be POSTed: written in the transaction that commits their
//! events, claimed by the notifier.

use std::collections::{BTreeSet, HashMap, HashSet};

use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QuerySelect,
};

use crate::events::RouterEvent;
use crate::ids::{self, now_ms};
use crate::store::entity::tenants;
use crate::store::queue::LeaseQueue;

/// Notification rows, in order per conversation.
pub(crate) const NOTIFY_QUEUE: LeaseQueue = LeaseQueue {
    table: "notifications",
    key: "id",
    order_by: "id",
    only: "1 = 1",
    in_order_per: Some("conversation_id"),
};

pub(crate) mod rows {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "notifications")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub tenant_id: String,
        pub conversation_id: String,
        pub payload: String,
        pub attempts: i32,
        pub next_attempt_at: i64,
        pub locked_by: Option<String>,
        pub locked_until: Option<i64>,
        pub last_error: Option<String>,
        pub created_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Queues `events` for the tenants that want notifications; call inside the transaction
/// that commits the events.
pub(crate) async fn enqueue<C: ConnectionTrait>(
    db: &C,
    events: &[RouterEvent],
) -> std::result::Result<(), DbErr> {
    enqueue_known(db, events, &HashMap::new()).await.map(drop)
}

/// [`enqueue`], told already whether some tenants subscribe (`known`: tenant id → has a
/// notification URL, read in the caller's transaction); the others are looked up. Whether
/// it queued any notification.
pub(crate) async fn enqueue_known<C: ConnectionTrait>(
    db: &C,
    events: &[RouterEvent],
    known: &HashMap<String, bool>,
) -> std::result::Result<bool, DbErr> {
    if events.is_empty() {
        return Ok(false);
    }
    let mut subscribed: HashSet<&str> = HashSet::new();
    let mut unknown: BTreeSet<&str> = BTreeSet::new();
    for tenant in events.iter().map(RouterEvent::tenant_id) {
        match known.get(tenant) {
            Some(true) => {
                subscribed.insert(tenant);
            }
            Some(false) => {}
            None => {
                unknown.insert(tenant);
            }
        }
    }
    let looked_up: Vec<String> = if unknown.is_empty() {
        Vec::new()
    } else {
        tenants::Entity::find()
            .select_only()
            .column(tenants::Column::Id)
            .filter(tenants::Column::Id.is_in(unknown))
            .filter(tenants::Column::NotifyUrl.is_not_null())
            .into_tuple::<String>()
            .all(db)
            .await?
    };
    subscribed.extend(looked_up.iter().map(String::as_str));
    if subscribed.is_empty() {
        return Ok(false);
    }
    let now = now_ms();
    let rows: Vec<rows::ActiveModel> = events
        .iter()
        .filter(|e| subscribed.contains(e.tenant_id()))
        .map(|e| {
            let mut payload = serde_json::to_value(e).unwrap_or_default();
            if let Some(o) = payload.as_object_mut() {
                o.insert("id".into(), ids::new_id("evt").into());
                o.insert("created_at".into(), ids::rfc3339(now).into());
            }
            rows::ActiveModel {
                tenant_id: Set(e.tenant_id().to_owned()),
                conversation_id: Set(e.conversation_id().to_owned()),
                payload: Set(payload.to_string()),
                attempts: Set(0),
                next_attempt_at: Set(now),
                locked_by: Set(None),
                locked_until: Set(None),
                last_error: Set(None),
                created_at: Set(now),
                ..Default::default()
            }
        })
        .collect();
    if rows.is_empty() {
        return Ok(false);
    }
    rows::Entity::insert_many(rows)
        .exec_without_returning(db)
        .await?;
    Ok(true)
}

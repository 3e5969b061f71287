//! Conversations: one per contact and business account (sender).

use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter};

use crate::ids::{self, now_ms};
use crate::store::entity::conversations;

/// The minute of a conversation's `last_message_at`, kept in `last_message_minute`
/// beside it (migration `m20261209_000001_conversation_minute`): the inbox's index is on
/// the minute, so a message moves it only when it starts a new minute for its conversation.
pub(crate) fn minute_of(last_message_at: i64) -> i64 {
    last_message_at.div_euclid(switchboard_migrations::MESSAGE_MINUTE_MS)
}

/// The id of the conversation of `contact_id` with `account_id`, created if new; its
/// activity timestamps moved forward to `at` (and `last_inbound_at` too for inbound
/// messages). Only the id is returned: the row's other columns are whatever the forward-only
/// update left, which another writer may have moved after this one read them.
pub(crate) async fn touch<C: ConnectionTrait>(
    db: &C,
    tenant_id: &str,
    contact_id: &str,
    account_id: &str,
    channel: &str,
    at: i64,
    inbound: bool,
) -> Result<String, DbErr> {
    // Most messages belong to an existing conversation: look first, insert only if absent
    // (one statement fewer per message than insert-then-read).
    let existing = find(db, tenant_id, contact_id, account_id).await?;
    let row = match existing {
        Some(row) => row,
        None => create(db, tenant_id, contact_id, account_id, channel, at, inbound).await?,
    };
    let newer_message = at > row.last_message_at;
    let newer_inbound = inbound && row.last_inbound_at.is_none_or(|t| at > t);
    if !newer_message && !newer_inbound {
        return Ok(row.id);
    }
    use conversations::Column as C;
    let mut update = conversations::Entity::update_many().filter(C::Id.eq(row.id.as_str()));
    // Forward only, in the statement itself: on PostgreSQL another writer may have moved
    // the row since `row` was read. The minute moves with the time it is the minute of.
    if newer_message {
        let newer = Expr::col(C::LastMessageAt).lt(at);
        update = update
            .col_expr(
                C::LastMessageAt,
                Expr::case(newer.clone(), at)
                    .finally(Expr::col(C::LastMessageAt))
                    .into(),
            )
            .col_expr(
                C::LastMessageMinute,
                Expr::case(newer, minute_of(at))
                    .finally(Expr::col(C::LastMessageMinute))
                    .into(),
            );
    }
    if newer_inbound {
        let newer = Expr::col(C::LastInboundAt)
            .is_null()
            .or(Expr::col(C::LastInboundAt).lt(at));
        update = update.col_expr(
            C::LastInboundAt,
            Expr::case(newer, at)
                .finally(Expr::col(C::LastInboundAt))
                .into(),
        );
    }
    update.exec(db).await?;
    Ok(row.id)
}

/// The conversation of `contact_id` with `account_id`, when there is one.
pub(crate) async fn find<C: ConnectionTrait>(
    db: &C,
    tenant_id: &str,
    contact_id: &str,
    account_id: &str,
) -> Result<Option<conversations::Model>, DbErr> {
    conversations::Entity::find()
        .filter(conversations::Column::TenantId.eq(tenant_id))
        .filter(conversations::Column::ContactId.eq(contact_id))
        .filter(conversations::Column::AccountId.eq(account_id))
        .one(db)
        .await
}

/// Inserts the conversation unless a concurrent writer did, then reads it back.
async fn create<C: ConnectionTrait>(
    db: &C,
    tenant_id: &str,
    contact_id: &str,
    account_id: &str,
    channel: &str,
    at: i64,
    inbound: bool,
) -> Result<conversations::Model, DbErr> {
    conversations::Entity::insert(conversations::ActiveModel {
        id: Set(ids::new_id(ids::CONVERSATION)),
        tenant_id: Set(tenant_id.to_owned()),
        contact_id: Set(contact_id.to_owned()),
        account_id: Set(account_id.to_owned()),
        channel: Set(channel.to_owned()),
        last_message_at: Set(at),
        last_message_minute: Set(minute_of(at)),
        last_inbound_at: Set(inbound.then_some(at)),
        opted_out_at: Set(None),
        created_at: Set(now_ms()),
    })
    .on_conflict_do_nothing_on([
        conversations::Column::TenantId,
        conversations::Column::ContactId,
        conversations::Column::AccountId,
    ])
    .exec_without_returning(db)
    .await?;
    find(db, tenant_id, contact_id, account_id)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound("conversation".into()))
}

/// Marks the conversation opted out (`Some(now)`) or back in (`None`).
pub(crate) async fn set_opted_out<C: ConnectionTrait>(
    db: &C,
    conversation_id: &str,
    opted_out_at: Option<i64>,
) -> Result<(), DbErr> {
    conversations::Entity::update_many()
        .col_expr(conversations::Column::OptedOutAt, Expr::value(opted_out_at))
        .filter(conversations::Column::Id.eq(conversation_id))
        .exec(db)
        .await?;
    Ok(())
}

//! What a provider reports about an account (issue 18): its quality rating, messaging limit
//! tier, and restrictions or bans. Kept in `account_state` (one row per account the provider
//! has reported on), updated at once from Meta's account-level notifications
//! (protocols/meta.md §14) in the transaction that stores them, shown in `GET /v1/accounts`,
//! and turning the account's channel health `degraded` while it is at risk.

use std::collections::HashMap;

use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ids::now_ms;
use crate::store::entity::account_state;

/// The notification kinds (Meta webhook fields, §14.1) that change an account's state.
pub(crate) const STATE_KINDS: [&str; 3] = [
    "phone_number_quality_update",
    "account_update",
    "account_alerts",
];

/// A restriction or ban the provider reported, in its words.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Restriction {
    /// Meta's `restriction_type` (e.g. `RESTRICTED_BIZ_INITIATED_MESSAGING`), `DISABLED`
    /// / `SCHEDULED_FOR_DISABLE` for a business account ban (`DISABLED_UPDATE`), or the
    /// `alert_type` of an active critical `account_alerts` alert.
    #[serde(rename = "type")]
    pub kind: String,
    /// When it ends or takes effect, as the provider wrote it, when it said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    /// What reported it, so each report replaces only its own kind.
    pub source: RestrictionSource,
}

/// What reported a restriction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RestrictionSource {
    /// `account_update` `DISABLED_UPDATE`.
    Ban,
    /// `account_update` `ACCOUNT_RESTRICTION`.
    Restriction,
    /// `account_alerts`.
    Alert,
}

/// An account's reported state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct AccountState {
    /// `green`, `yellow`, `red` or `unknown`.
    pub quality: Quality,
    /// The provider's messaging limit tier (Meta: `TIER_250` … `TIER_UNLIMITED`).
    pub messaging_limit: Option<String>,
    pub restrictions: Vec<Restriction>,
    /// When the provider last reported a change (RFC 3339), or `None` when it never did.
    pub updated_at: Option<String>,
}

/// A quality rating (Meta `quality_rating`, §7.1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Quality {
    Green,
    Yellow,
    Red,
    #[default]
    Unknown,
}

impl Quality {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Green => "green",
            Self::Yellow => "yellow",
            Self::Red => "red",
            Self::Unknown => "unknown",
        }
    }

    /// Reads a provider's rating leniently: Meta's `GREEN`/`YELLOW`/`RED`, our own lower-case
    /// names; anything else (`UNKNOWN`, `NA`, values Meta adds later) is unknown (§7.1 marks
    /// the value set UNSURE).
    pub fn parse(s: &str) -> Self {
        match s.to_ascii_lowercase().as_str() {
            "green" | "high" => Self::Green,
            "yellow" | "medium" => Self::Yellow,
            "red" | "low" => Self::Red,
            _ => Self::Unknown,
        }
    }

    /// 3 green, 2 yellow, 1 red, 0 unknown: the metric's value.
    pub const fn gauge(self) -> u8 {
        match self {
            Self::Green => 3,
            Self::Yellow => 2,
            Self::Red => 1,
            Self::Unknown => 0,
        }
    }
}

impl AccountState {
    /// Why the account is at risk, when it is: yellow or red quality, or any restriction.
    /// `/health/channels` turns an account that is otherwise up `degraded` with this reason.
    pub fn risk(&self) -> Option<String> {
        let mut reasons = Vec::new();
        if matches!(self.quality, Quality::Yellow | Quality::Red) {
            reasons.push(format!("quality rating is {}", self.quality.as_str()));
        }
        for r in &self.restrictions {
            reasons.push(match &r.until {
                Some(until) => format!("restricted: {} ({until})", r.kind),
                None => format!("restricted: {}", r.kind),
            });
        }
        (!reasons.is_empty()).then(|| reasons.join("; "))
    }

    fn from_row(row: &account_state::Model) -> Self {
        Self {
            quality: row
                .quality
                .as_deref()
                .map(Quality::parse)
                .unwrap_or_default(),
            messaging_limit: row.messaging_limit.clone(),
            restrictions: serde_json::from_str(&row.restrictions).unwrap_or_default(),
            updated_at: Some(crate::ids::rfc3339(row.updated_at)),
        }
    }

    /// The state after the provider's notification `kind` with payload `value` (the
    /// change's `value`, §14.1). Unknown events and odd shapes change nothing: Meta adds
    /// events, and a notification is never refused.
    pub(crate) fn apply(&self, kind: &str, value: &Value) -> Self {
        let mut next = self.clone();
        let text = |v: &Value, name: &str| {
            v.get(name)
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        let event = text(value, "event").unwrap_or_default();
        match kind {
            "phone_number_quality_update" => {
                // `max_daily_conversations_per_business` replaces `current_limit` (removed
                // in February 2026, §14.1).
                if let Some(limit) = text(value, "max_daily_conversations_per_business")
                    .or_else(|| text(value, "current_limit"))
                {
                    next.messaging_limit = Some(limit);
                }
                // Meta's earlier event list for this field reports a number flagged for low
                // quality and its recovery; the late-2025 list (§14.1) carries limits only.
                match event.as_str() {
                    "FLAGGED" => next.quality = Quality::Red,
                    "UNFLAGGED" => next.quality = Quality::Green,
                    _ => {}
                }
            }
            "account_update" => match event.as_str() {
                // `ban_info{waba_ban_state: DISABLE|REINSTATE|SCHEDULE_FOR_DISABLE}`.
                "DISABLED_UPDATE" => {
                    let ban = value.get("ban_info").unwrap_or(&Value::Null);
                    let date = text(ban, "waba_ban_date");
                    let kind = match text(ban, "waba_ban_state").as_deref() {
                        Some("DISABLE") => Some("DISABLED"),
                        Some("SCHEDULE_FOR_DISABLE") => Some("SCHEDULED_FOR_DISABLE"),
                        Some("REINSTATE") => None,
                        _ => return next,
                    };
                    next.restrictions
                        .retain(|r| r.source != RestrictionSource::Ban);
                    if let Some(kind) = kind {
                        next.restrictions.push(Restriction {
                            kind: kind.to_owned(),
                            until: date,
                            source: RestrictionSource::Ban,
                        });
                    }
                }
                // `restriction_info[{restriction_type, expiration}]`: the account's current
                // messaging restrictions, replacing the ones reported before; an empty list
                // lifts them.
                "ACCOUNT_RESTRICTION" => {
                    let Some(list) = value.get("restriction_info").and_then(Value::as_array) else {
                        return next;
                    };
                    next.restrictions
                        .retain(|r| r.source != RestrictionSource::Restriction);
                    for item in list {
                        if let Some(kind) = text(item, "restriction_type") {
                            let until = match item.get("expiration") {
                                Some(Value::Number(n)) => Some(n.to_string()),
                                Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
                                _ => None,
                            };
                            next.restrictions.push(Restriction {
                                kind,
                                until,
                                source: RestrictionSource::Restriction,
                            });
                        }
                    }
                }
                _ => {}
            },
            // `alert_info{alert_severity, alert_status, alert_type, alert_description}`
            // (§14.1; the value sets are not in the document): an active critical alert
            // counts as a restriction until an alert of its type says otherwise.
            "account_alerts" => {
                let info = value.get("alert_info").unwrap_or(&Value::Null);
                let Some(alert) = text(info, "alert_type") else {
                    return next;
                };
                let active = text(info, "alert_status")
                    .is_some_and(|s| s.eq_ignore_ascii_case("ACTIVE"))
                    && text(info, "alert_severity")
                        .is_some_and(|s| s.eq_ignore_ascii_case("CRITICAL"));
                let is_it =
                    |r: &Restriction| r.source == RestrictionSource::Alert && r.kind == alert;
                let known = next.restrictions.iter().any(is_it);
                if active && !known {
                    next.restrictions.push(Restriction {
                        kind: alert,
                        until: None,
                        source: RestrictionSource::Alert,
                    });
                } else if !active {
                    next.restrictions.retain(|r| !is_it(r));
                }
            }
            _ => {}
        }
        next
    }

    /// The state after a health check read the sender's rating and limit tier (§7.1): each
    /// replaces the stored one when the check read it. An `UNKNOWN`/`NA` rating says the
    /// number is not rated now, which tells nothing against a rating a webhook reported.
    pub(crate) fn with_health(&self, quality: Option<&str>, limit: Option<&str>) -> Self {
        let mut next = self.clone();
        if let Some(q) = quality.map(Quality::parse)
            && q != Quality::Unknown
        {
            next.quality = q;
        }
        if let Some(limit) = limit.map(str::trim).filter(|l| !l.is_empty()) {
            next.messaging_limit = Some(limit.to_owned());
        }
        next
    }

    /// Whether what the product is told about (quality, limit, restrictions) differs.
    pub(crate) fn differs(&self, other: &Self) -> bool {
        self.quality != other.quality
            || self.messaging_limit != other.messaging_limit
            || self.restrictions != other.restrictions
    }
}

/// The reported state of each of `account_ids` that has one.
///
/// # Errors
/// A database error.
pub(crate) async fn read<C: ConnectionTrait>(
    db: &C,
    account_ids: Vec<String>,
) -> Result<HashMap<String, AccountState>, DbErr> {
    if account_ids.is_empty() {
        return Ok(HashMap::new());
    }
    Ok(account_state::Entity::find()
        .filter(account_state::Column::AccountId.is_in(account_ids))
        .all(db)
        .await?
        .iter()
        .map(|row| (row.account_id.clone(), AccountState::from_row(row)))
        .collect())
}

/// Stores `state` for the account (creating its row the first time).
async fn write<C: ConnectionTrait>(
    db: &C,
    tenant_id: &str,
    account_id: &str,
    state: &AccountState,
    at: i64,
) -> Result<(), DbErr> {
    let row = account_state::ActiveModel {
        account_id: Set(account_id.to_owned()),
        tenant_id: Set(tenant_id.to_owned()),
        quality: Set(Some(state.quality.as_str().to_owned())),
        messaging_limit: Set(state.messaging_limit.clone()),
        restrictions: Set(
            serde_json::to_string(&state.restrictions).unwrap_or_else(|_| "[]".into())
        ),
        updated_at: Set(at),
    };
    account_state::Entity::insert(row)
        .on_conflict(
            OnConflict::column(account_state::Column::AccountId)
                .update_columns([
                    account_state::Column::Quality,
                    account_state::Column::MessagingLimit,
                    account_state::Column::Restrictions,
                    account_state::Column::UpdatedAt,
                ])
                .to_owned(),
        )
        .exec_without_returning(db)
        .await?;
    Ok(())
}

/// Applies one account's reported change: stores the new state when it differs. Returns
/// the state after it, and whether it changed (the product is told then).
///
/// # Errors
/// A database error.
pub(crate) async fn report<C: ConnectionTrait>(
    db: &C,
    tenant_id: &str,
    account_id: &str,
    change: impl FnOnce(&AccountState) -> AccountState,
) -> Result<(AccountState, bool), DbErr> {
    let before = read(db, vec![account_id.to_owned()])
        .await?
        .remove(account_id)
        .unwrap_or_default();
    let mut after = change(&before);
    if !after.differs(&before) {
        return Ok((before, false));
    }
    let now = now_ms();
    write(db, tenant_id, account_id, &after, now).await?;
    after.updated_at = Some(crate::ids::rfc3339(now));
    Ok((after, true))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_limit_change_sets_the_tier_and_prefers_the_business_level_field() {
        let s = AccountState::default().apply(
            "phone_number_quality_update",
            &json!({"display_phone_number": "15550783881", "event": "THROUGHPUT_UPGRADE",
                    "current_limit": "TIER_UNLIMITED"}),
        );
        assert_eq!(s.messaging_limit.as_deref(), Some("TIER_UNLIMITED"));
        assert_eq!(s.quality, Quality::Unknown);
        let s = s.apply(
            "phone_number_quality_update",
            &json!({"event": "UPGRADE", "current_limit": "TIER_2K",
                    "max_daily_conversations_per_business": "TIER_10K"}),
        );
        assert_eq!(s.messaging_limit.as_deref(), Some("TIER_10K"));
        assert!(s.risk().is_none());
    }

    #[test]
    fn a_flagged_number_is_red_until_unflagged() {
        let s = AccountState::default().apply(
            "phone_number_quality_update",
            &json!({"event": "FLAGGED", "current_limit": "TIER_250"}),
        );
        assert_eq!(s.quality, Quality::Red);
        assert_eq!(s.risk().as_deref(), Some("quality rating is red"));
        let s = s.apply(
            "phone_number_quality_update",
            &json!({"event": "UNFLAGGED"}),
        );
        assert_eq!(s.quality, Quality::Green);
        assert!(s.risk().is_none());
    }

    #[test]
    fn a_ban_is_a_restriction_until_reinstated() {
        let ban = |state: &str| {
            json!({"event": "DISABLED_UPDATE",
                   "ban_info": {"waba_ban_state": state, "waba_ban_date": "April 17, 2025"}})
        };
        let s = AccountState::default().apply("account_update", &ban("SCHEDULE_FOR_DISABLE"));
        assert_eq!(s.restrictions[0].kind, "SCHEDULED_FOR_DISABLE");
        let s = s.apply("account_update", &ban("DISABLE"));
        assert_eq!(
            s.restrictions,
            [Restriction {
                kind: "DISABLED".into(),
                until: Some("April 17, 2025".into()),
                source: RestrictionSource::Ban,
            }]
        );
        assert_eq!(
            s.risk().as_deref(),
            Some("restricted: DISABLED (April 17, 2025)")
        );
        let s = s.apply("account_update", &ban("REINSTATE"));
        assert!(s.restrictions.is_empty());
        // An unknown ban state changes nothing.
        assert_eq!(s.apply("account_update", &ban("SOMETHING")), s);
    }

    #[test]
    fn restrictions_replace_the_earlier_ones_and_an_empty_list_lifts_them() {
        let s = AccountState::default().apply(
            "account_update",
            &json!({"event": "ACCOUNT_RESTRICTION", "restriction_info": [
                {"restriction_type": "RESTRICTED_BIZ_INITIATED_MESSAGING", "expiration": 1751247548},
                {"restriction_type": "RESTRICTED_CUSTOMER_INITIATED_MESSAGING"}]}),
        );
        assert_eq!(s.restrictions.len(), 2);
        assert_eq!(s.restrictions[0].until.as_deref(), Some("1751247548"));
        let s = s.apply(
            "account_update",
            &json!({"event": "ACCOUNT_RESTRICTION", "restriction_info": []}),
        );
        assert!(s.restrictions.is_empty());
    }

    #[test]
    fn an_active_critical_alert_is_a_restriction_until_its_type_is_reported_otherwise() {
        let alert = |status: &str, severity: &str| {
            json!({"entity_type": "PHONE_NUMBER", "entity_id": "106540352242922",
                   "alert_info": {"alert_severity": severity, "alert_status": status,
                                  "alert_type": "OBA_APPROVED", "alert_description": "…"}})
        };
        let s = AccountState::default().apply("account_alerts", &alert("ACTIVE", "INFORMATIONAL"));
        assert!(s.restrictions.is_empty(), "not critical");
        let s = s.apply("account_alerts", &alert("ACTIVE", "CRITICAL"));
        assert_eq!(s.restrictions[0].kind, "OBA_APPROVED");
        // The same alert again adds nothing.
        assert_eq!(s.apply("account_alerts", &alert("ACTIVE", "CRITICAL")), s);
        // A restriction report neither keeps nor drops it.
        let s = s.apply(
            "account_update",
            &json!({"event": "ACCOUNT_RESTRICTION", "restriction_info": []}),
        );
        assert_eq!(s.restrictions.len(), 1);
        let s = s.apply("account_alerts", &alert("RESOLVED", "CRITICAL"));
        assert!(s.restrictions.is_empty());
        // No alert_type: nothing to go by.
        let odd = json!({"alert_info": {"alert_status": "ACTIVE", "alert_severity": "CRITICAL"}});
        assert!(
            AccountState::default()
                .apply("account_alerts", &odd)
                .restrictions
                .is_empty()
        );
    }

    #[test]
    fn other_notifications_and_odd_shapes_change_nothing() {
        let s = AccountState::default();
        for (kind, value) in [
            ("account_update", json!({"event": "PARTNER_ADDED"})),
            ("account_update", json!({"event": "DISABLED_UPDATE"})),
            (
                "account_update",
                json!({"event": "ACCOUNT_RESTRICTION", "restriction_info": "x"}),
            ),
            ("phone_number_quality_update", json!({"current_limit": 5})),
            ("phone_number_quality_update", json!([])),
            (
                "message_template_status_update",
                json!({"event": "APPROVED"}),
            ),
        ] {
            assert!(!s.apply(kind, &value).differs(&s), "{kind} {value}");
        }
    }

    #[test]
    fn a_health_check_replaces_the_rating_and_tier_it_read_and_keeps_the_rest() {
        let flagged = AccountState::default().apply(
            "phone_number_quality_update",
            &json!({"event": "FLAGGED", "current_limit": "TIER_250"}),
        );
        let s = flagged.with_health(Some("YELLOW"), Some("TIER_2K"));
        assert_eq!(s.quality, Quality::Yellow);
        assert_eq!(s.messaging_limit.as_deref(), Some("TIER_2K"));
        // Not rated, or nothing read: what was reported stays.
        assert_eq!(flagged.with_health(Some("NA"), None), flagged);
        assert_eq!(flagged.with_health(None, Some(" ")), flagged);
    }

    #[test]
    fn quality_is_read_leniently() {
        assert_eq!(Quality::parse("GREEN"), Quality::Green);
        assert_eq!(Quality::parse("YELLOW"), Quality::Yellow);
        assert_eq!(Quality::parse("RED"), Quality::Red);
        assert_eq!(Quality::parse("NA"), Quality::Unknown);
        assert_eq!(Quality::parse("UNKNOWN"), Quality::Unknown);
    }
}

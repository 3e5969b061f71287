//! `GET /v1/usage` (issue 18): a tenant's messages and what providers say they cost, summed
//! per channel, account, pricing category or day, in one aggregate query on either backend.
//!
//! Costs are summed exactly in integer micro-units of each currency: the database turns each
//! message's `pricing.price` (as the provider spelled it; Twilio's are negative, twilio.md
//! §10, and count as their magnitude) into micro-units, sums them per currency, and they are
//! written back as decimal strings with at least four decimals (`"0.2250"`). Meta's
//! webhooks carry no amounts (protocols/meta.md §17.1), so Meta messages add counts only.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement};
use serde::Serialize;

use crate::error::{Result, RouterError};

/// What the sums are grouped by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupBy {
    Channel,
    Account,
    /// The provider's pricing category (Meta `pricing.category`); `null` when none said.
    Category,
    /// The UTC day a message was stored, `YYYY-MM-DD`.
    Day,
}

impl GroupBy {
    /// `channel` (the default when absent), `account`, `category` or `day`.
    ///
    /// # Errors
    /// `invalid_group_by` for anything else.
    pub fn parse(s: Option<&str>) -> Result<Self> {
        match s {
            None | Some("channel") => Ok(Self::Channel),
            Some("account") => Ok(Self::Account),
            Some("category") => Ok(Self::Category),
            Some("day") => Ok(Self::Day),
            Some(other) => Err(RouterError::invalid(
                "invalid_group_by",
                format!("group_by must be channel, account, category or day, not {other:?}"),
            )),
        }
    }

    /// The SQL expression of the key (only constants of this file: nothing is inlined
    /// from the request).
    fn key_sql(self, backend: DbBackend) -> &'static str {
        match (self, backend) {
            (Self::Channel, _) => "channel",
            (Self::Account, _) => "account_id",
            (Self::Category, DbBackend::Postgres) => "(pricing::jsonb ->> 'category')",
            (Self::Category, _) => "(pricing ->> '$.category')",
            (Self::Day, DbBackend::Postgres) => {
                "to_char(to_timestamp(created_at / 1000) AT TIME ZONE 'UTC', 'YYYY-MM-DD')"
            }
            (Self::Day, _) => "strftime('%Y-%m-%d', created_at / 1000, 'unixepoch')",
        }
    }
}

/// The time range: `from` inclusive, `to` exclusive, Unix milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Range {
    pub from: i64,
    pub to: i64,
}

/// How far back `from` reaches when absent.
const DEFAULT_DAYS: i64 = 30;

impl Range {
    /// Reads `from` and `to`: RFC 3339 instants, or dates (`2026-12-01`, UTC; a `to` date
    /// includes its whole day). `to` defaults to now, `from` to 30 days before `to`.
    ///
    /// # Errors
    /// `invalid_range` for an unreadable value or `from` not before `to`.
    pub fn parse(from: Option<&str>, to: Option<&str>) -> Result<Self> {
        let to = match to {
            Some(t) => instant(t, "to", true)?,
            None => Utc::now().timestamp_millis() + 1,
        };
        let from = match from {
            Some(f) => instant(f, "from", false)?,
            None => to - DEFAULT_DAYS * 86_400_000,
        };
        if from >= to {
            return Err(RouterError::invalid(
                "invalid_range",
                "from must be before to",
            ));
        }
        Ok(Self { from, to })
    }
}

/// `value` as Unix milliseconds: an RFC 3339 instant, or a date's first millisecond (the
/// next day's, for an inclusive end).
fn instant(value: &str, name: &str, end_of_date: bool) -> Result<i64> {
    let value = value.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(value) {
        return Ok(t.timestamp_millis());
    }
    if let Ok(d) = NaiveDate::parse_from_str(value, "%Y-%m-%d") {
        let d = if end_of_date { d.succ_opt() } else { Some(d) };
        if let Some(start) = d.and_then(|d| d.and_hms_opt(0, 0, 0)) {
            return Ok(start.and_utc().timestamp_millis());
        }
    }
    Err(RouterError::invalid(
        "invalid_range",
        format!("{name} must be an RFC 3339 time or a date (YYYY-MM-DD), not {value:?}"),
    ))
}

/// One group's sums.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct UsageRow {
    /// The channel, account id, pricing category or day; `null` for messages without one
    /// (a category nobody reported).
    pub key: Option<String>,
    pub inbound: i64,
    pub outbound: i64,
    /// Per currency, where providers reported prices.
    pub cost: Vec<Cost>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Cost {
    /// ISO 4217, upper case.
    pub currency: String,
    /// A decimal string, e.g. `"0.2250"`.
    pub amount: String,
}

/// The SQL turning a message's price into integer micro-units of its currency (magnitude:
/// Twilio's prices are negative).
fn micro_sql(backend: DbBackend) -> &'static str {
    match backend {
        DbBackend::Postgres => {
            "ROUND(ABS(NULLIF(pricing::jsonb ->> 'price', '')::numeric) * 1000000)::bigint"
        }
        // A price has far fewer digits than a double keeps, so rounding the scaled value
        // gives its micro-units exactly.
        _ => "CAST(ROUND(ABS(CAST(pricing ->> '$.price' AS REAL)) * 1000000) AS INTEGER)",
    }
}

fn currency_sql(backend: DbBackend) -> &'static str {
    match backend {
        DbBackend::Postgres => "UPPER(pricing::jsonb ->> 'currency')",
        _ => "UPPER(pricing ->> '$.currency')",
    }
}

/// The aggregate: one row per (key, currency).
fn usage_sql(backend: DbBackend, group: GroupBy) -> String {
    let (p1, p2, p3) = match backend {
        DbBackend::Postgres => ("$1", "$2", "$3"),
        _ => ("?", "?", "?"),
    };
    format!(
        "SELECT group_key, currency, SUM(inbound) AS inbound, SUM(outbound) AS outbound, \
         CAST(SUM(micro) AS BIGINT) AS micro FROM (SELECT {key} AS group_key, \
         CASE WHEN pricing IS NULL THEN NULL ELSE {currency} END AS currency, \
         CASE WHEN direction = 'inbound' THEN 1 ELSE 0 END AS inbound, \
         CASE WHEN direction = 'outbound' THEN 1 ELSE 0 END AS outbound, \
         CASE WHEN pricing IS NULL THEN NULL ELSE {micro} END AS micro \
         FROM messages WHERE tenant_id = {p1} AND created_at >= {p2} AND created_at < {p3} \
         AND direction IN ('inbound', 'outbound')) AS m \
         GROUP BY group_key, currency ORDER BY group_key, currency",
        key = group.key_sql(backend),
        currency = currency_sql(backend),
        micro = micro_sql(backend),
    )
}

/// `micro` micro-units as a decimal string with at least four decimals.
fn amount(micro: i64) -> String {
    let whole = micro / 1_000_000;
    let mut frac = format!("{:06}", micro % 1_000_000);
    while frac.len() > 4 && frac.ends_with('0') {
        frac.pop();
    }
    format!("{whole}.{frac}")
}

/// The tenant's usage in `range`, grouped by `group`, ordered by key.
///
/// # Errors
/// A database error.
pub(crate) async fn sum<C: ConnectionTrait>(
    db: &C,
    tenant_id: &str,
    group: GroupBy,
    range: Range,
) -> std::result::Result<Vec<UsageRow>, DbErr> {
    let backend = db.get_database_backend();
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            backend,
            usage_sql(backend, group),
            [tenant_id.into(), range.from.into(), range.to.into()],
        ))
        .await?;
    let mut out: BTreeMap<Option<String>, UsageRow> = BTreeMap::new();
    for r in rows {
        let key: Option<String> = r.try_get("", "group_key")?;
        let currency: Option<String> = r.try_get("", "currency")?;
        let inbound: i64 = r.try_get::<Option<i64>>("", "inbound")?.unwrap_or(0);
        let outbound: i64 = r.try_get::<Option<i64>>("", "outbound")?.unwrap_or(0);
        let micro: Option<i64> = r.try_get("", "micro")?;
        let row = out.entry(key.clone()).or_insert_with(|| UsageRow {
            key,
            inbound: 0,
            outbound: 0,
            cost: Vec::new(),
        });
        row.inbound += inbound;
        row.outbound += outbound;
        if let (Some(currency), Some(micro)) = (currency, micro) {
            row.cost.push(Cost {
                currency,
                amount: amount(micro),
            });
        }
    }
    Ok(out.into_values().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_written_exactly_with_at_least_four_decimals() {
        assert_eq!(amount(225_000), "0.2250");
        assert_eq!(amount(7_500), "0.0075");
        assert_eq!(amount(1), "0.000001");
        assert_eq!(amount(12_345_678), "12.345678");
        assert_eq!(amount(0), "0.0000");
    }

    #[test]
    fn ranges_take_instants_and_dates_and_refuse_the_rest() {
        let r = Range::parse(Some("2026-12-01"), Some("2026-12-01")).unwrap();
        assert_eq!(r.to - r.from, 86_400_000, "a to date includes its day");
        let r = Range::parse(
            Some("2026-12-01T10:00:00Z"),
            Some("2026-12-01T12:00:00+01:00"),
        )
        .unwrap();
        assert_eq!(r.to - r.from, 3_600_000);
        for (from, to) in [
            (Some("yesterday"), None),
            (None, Some("2026-13-01")),
            (Some("2026-12-02"), Some("2026-12-01")),
            (Some("2026-12-01T10:00:00Z"), Some("2026-12-01T10:00:00Z")),
        ] {
            let e = Range::parse(from, to).unwrap_err();
            assert!(
                matches!(
                    e,
                    RouterError::Invalid {
                        code: "invalid_range",
                        ..
                    }
                ),
                "{from:?} {to:?}"
            );
        }
        assert!(Range::parse(None, None).is_ok());
    }

    #[test]
    fn group_by_defaults_to_channel_and_refuses_the_unknown() {
        assert_eq!(GroupBy::parse(None).unwrap(), GroupBy::Channel);
        assert_eq!(GroupBy::parse(Some("day")).unwrap(), GroupBy::Day);
        assert!(GroupBy::parse(Some("Channel")).is_err());
    }
}

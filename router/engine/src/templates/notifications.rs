//! Meta's template webhooks (meta.md §14.1), applied to the catalog row they name inside
//! the webhook's own transaction: status, quality and category changes show at once; the
//! sync they also trigger brings the rest (components, a template new to the catalog).

use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter};
use serde_json::Value;

use crate::ids::now_ms;
use crate::store::entity::templates;

const STATUS: &str = "message_template_status_update";
const QUALITY: &str = "message_template_quality_update";
const CATEGORY: &str = "template_category_update";
const COMPONENTS: &str = "message_template_components_update";

/// Whether a notification of this kind changes an account's templates.
pub(crate) fn is_template_kind(kind: &str) -> bool {
    matches!(kind, STATUS | QUALITY | CATEGORY | COMPONENTS)
}

/// The column changes a notification's `value` makes.
fn changes(kind: &str, value: &Value) -> Vec<(templates::Column, Option<String>)> {
    let lower = |v: &Value| v.as_str().map(str::to_ascii_lowercase);
    match kind {
        STATUS => {
            let Some(event) = lower(&value["event"]) else {
                return Vec::new();
            };
            match event.as_str() {
                // A flagged template stays approved (§13.2); the sync reads its quality.
                "flagged" => Vec::new(),
                // A reinstated template is approved again.
                "reinstated" => vec![
                    (templates::Column::Status, Some("approved".to_owned())),
                    (templates::Column::RejectionReason, None),
                ],
                "rejected" => {
                    let reason = value["rejection_info"]["reason"]
                        .as_str()
                        .or_else(|| value["reason"].as_str())
                        .filter(|r| !r.is_empty() && *r != "NONE")
                        .map(str::to_owned);
                    vec![
                        (templates::Column::Status, Some(event)),
                        (templates::Column::RejectionReason, reason),
                    ]
                }
                _ => vec![
                    (templates::Column::Status, Some(event)),
                    (templates::Column::RejectionReason, None),
                ],
            }
        }
        QUALITY => lower(&value["new_quality_score"])
            .map(|q| vec![(templates::Column::Quality, Some(q))])
            .unwrap_or_default(),
        // Only a change already made names the previous category; the other shape
        // announces one for the next 24 hours (§14.1).
        CATEGORY if value.get("previous_category").is_some() => lower(&value["new_category"])
            .map(|c| vec![(templates::Column::Category, Some(c))])
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// Applies a template notification to the account's row of the template it names
/// (`message_template_id`, a number in Meta's payload). A template not in the catalog yet
/// is left to the sync.
pub(crate) async fn apply_notification<C: ConnectionTrait>(
    db: &C,
    account_id: &str,
    kind: &str,
    value: &Value,
) -> Result<u64, DbErr> {
    let template_id = match &value["message_template_id"] {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        _ => return Ok(0),
    };
    let changes = changes(kind, value);
    if changes.is_empty() {
        return Ok(0);
    }
    let mut update = templates::Entity::update_many()
        .col_expr(templates::Column::UpdatedAt, Expr::value(now_ms()));
    for (column, to) in changes {
        update = update.col_expr(column, Expr::value(to));
    }
    Ok(update
        .filter(templates::Column::AccountId.eq(account_id))
        .filter(templates::Column::ProviderId.eq(template_id))
        .exec(db)
        .await?
        .rows_affected)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The changes with each column by name.
    fn named(kind: &str, value: &Value) -> Vec<(String, Option<String>)> {
        changes(kind, value)
            .into_iter()
            .map(|(c, v)| (format!("{c:?}"), v))
            .collect()
    }

    fn change(column: &str, to: &str) -> (String, Option<String>) {
        (column.to_owned(), Some(to.to_owned()))
    }

    #[test]
    fn each_template_webhook_names_its_change() {
        assert_eq!(
            named(STATUS, &json!({"event": "APPROVED", "reason": "NONE"})),
            [
                change("Status", "approved"),
                ("RejectionReason".into(), None)
            ]
        );
        assert_eq!(
            named(
                STATUS,
                &json!({"event": "REJECTED", "reason": "INVALID_FORMAT"})
            ),
            [
                change("Status", "rejected"),
                change("RejectionReason", "INVALID_FORMAT")
            ]
        );
        assert_eq!(
            named(
                STATUS,
                &json!({"event": "REJECTED", "reason": "NONE",
                "rejection_info": {"reason": "Parameters next to each other"}})
            )[1],
            change("RejectionReason", "Parameters next to each other")
        );
        assert!(named(STATUS, &json!({"event": "FLAGGED"})).is_empty());
        assert_eq!(
            named(STATUS, &json!({"event": "REINSTATED"}))[0],
            change("Status", "approved")
        );
        assert_eq!(
            named(QUALITY, &json!({"new_quality_score": "YELLOW"})),
            [change("Quality", "yellow")]
        );
        assert!(
            named(
                CATEGORY,
                &json!({"new_category": "MARKETING", "correct_category": "MARKETING"})
            )
            .is_empty()
        );
        assert_eq!(
            named(
                CATEGORY,
                &json!({"new_category": "MARKETING", "previous_category": "UTILITY"})
            ),
            [change("Category", "marketing")]
        );
        assert!(named(COMPONENTS, &json!({})).is_empty());
        assert!(is_template_kind(COMPONENTS) && !is_template_kind("account_update"));
    }
}

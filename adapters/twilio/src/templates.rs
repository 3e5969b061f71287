//! The template catalog: `GET /v1/ContentAndApprovals`, every page by `meta.next_page_url`,
//! each Content resource with its WhatsApp approval (twilio.md §9.1, §9.5), read into
//! [`ProviderTemplate`]s. A send names a template by its Content SID, so that is its name.

use std::collections::BTreeMap;

use serde_json::Value;
use switchboard_core::{
    AccountContext, ChannelError, Exchange, ProviderTemplate, retry_after_header,
    templates::variables_with_examples,
};

use crate::config::{TwilioConfig, credentials};
use crate::content_api::{API, is_content_sid, same_api_under};
use crate::errors::{error_from_response_of, error_from_transport};
use crate::send::{error_body, get};

/// Pages read at most in one listing (1,000 a page: far beyond WhatsApp's 6,000 approved).
const MAX_PAGES: usize = 50;
/// Items asked for per page (the API's maximum, §9.1).
const PAGE_SIZE: u32 = 1000;

/// Lists every Content resource of the account with its WhatsApp approval.
pub(crate) async fn list(
    http: &reqwest::Client,
    config: &TwilioConfig,
    account: &AccountContext,
) -> Result<Vec<ProviderTemplate>, ChannelError> {
    let (sid, token) = credentials(account)?;
    let base = config.content_api_base();
    let mut url = format!("{base}/v1/ContentAndApprovals?PageSize={PAGE_SIZE}");
    let mut out = Vec::new();
    for _ in 0..MAX_PAGES {
        let answer = get(http, &url, sid, token)
            .await
            .map_err(|e| error_from_transport(e, false))?;
        let exchange = Exchange {
            http_status: Some(answer.status),
            request: None,
            response: Some(answer.body.clone()),
        };
        if !(200..300).contains(&answer.status) {
            return Err(error_from_response_of(
                API,
                answer.status,
                &error_body(&answer.body),
                retry_after_header(&answer.headers),
                false,
                exchange,
            ));
        }
        let Some(contents) = answer.body["contents"].as_array() else {
            return Err(ChannelError::transient(format!(
                "{API} listed contents without a `contents` array"
            ))
            .with_exchange(exchange));
        };
        out.extend(contents.iter().filter_map(from_content));
        match answer.body["meta"]["next_page_url"].as_str() {
            Some(next) if !next.is_empty() => {
                url = same_api_under(base, next, "/v1/ContentAndApprovals")?;
            }
            _ => return Ok(out),
        }
    }
    Err(ChannelError::transient(format!(
        "{API} listed more than {MAX_PAGES} pages of contents"
    )))
}

/// One item of `contents[]`; `None` without a Content SID.
pub(crate) fn from_content(item: &Value) -> Option<ProviderTemplate> {
    let sid = item["sid"].as_str().filter(|s| is_content_sid(s))?;
    let types = item.get("types").cloned().unwrap_or(Value::Null);
    // Every type of one resource carries the same text; the first with a body is read.
    let body = types
        .as_object()
        .and_then(|t| t.values().find_map(|v| v["body"].as_str()))
        .unwrap_or_default()
        .to_owned();
    let examples: BTreeMap<String, String> = item["variables"]
        .as_object()
        .map(|vars| {
            vars.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default();
    let approval = &item["approval_requests"];
    let non_empty = |v: &Value| v.as_str().filter(|s| !s.is_empty()).map(str::to_owned);
    Some(ProviderTemplate {
        provider_id: sid.to_owned(),
        name: sid.to_owned(),
        language: non_empty(&item["language"]).unwrap_or_else(|| "und".to_owned()),
        category: non_empty(&approval["category"]).map(|c| c.to_ascii_lowercase()),
        status: non_empty(&approval["status"])
            .map_or_else(|| "unsubmitted".to_owned(), |s| s.to_ascii_lowercase()),
        quality: None,
        rejection_reason: non_empty(&approval["rejection_reason"]),
        components: types,
        variables: variables_with_examples(&body, &examples),
        // A Content resource carries its media; a send gives no header.
        header_media: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_item_reads_its_approval_and_samples() {
        let t = from_content(&json!({
            "sid": "HXb5b62575e6e4ff6129ad7c8efe1f983e", "friendly_name": "order_followup",
            "language": "en", "variables": {"1": "Jane", "2": "860198"},
            "types": {"twilio/text": {"body": "Hi {{1}}, did order {{2}} arrive?"}},
            "approval_requests": {"name": "order_followup", "category": "UTILITY",
                "content_type": "twilio/text", "status": "rejected",
                "rejection_reason": "INVALID_FORMAT", "allow_category_change": true}}))
        .unwrap();
        assert_eq!(t.name, "HXb5b62575e6e4ff6129ad7c8efe1f983e");
        assert_eq!(t.status, "rejected");
        assert_eq!(t.category.as_deref(), Some("utility"));
        assert_eq!(t.rejection_reason.as_deref(), Some("INVALID_FORMAT"));
        assert_eq!(t.variables.len(), 2);
        assert_eq!(t.variables[1].example.as_deref(), Some("860198"));
    }

    #[test]
    fn an_unsubmitted_item_has_empty_approval_fields() {
        let t = from_content(
            &json!({"sid": "HXaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "language": "en",
            "types": {"twilio/text": {"body": "plain"}},
            "approval_requests": {"name": "", "category": "", "content_type": "",
                "status": "unsubmitted", "rejection_reason": ""}}),
        )
        .unwrap();
        assert_eq!(t.status, "unsubmitted");
        assert_eq!(t.category, None);
        assert_eq!(t.rejection_reason, None);
        assert!(from_content(&json!({"sid": "nope"})).is_none());
    }
}

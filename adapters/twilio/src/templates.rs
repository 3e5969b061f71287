//! The template catalog: `GET /v1/ContentAndApprovals`, every page by `meta.next_page_url`,
//! each Content resource with its WhatsApp approval (twilio.md §9.1, §9.5), read into
//! [`ProviderTemplate`]s. A send names a template by its Content SID, so that is its name.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use switchboard_core::{
    AccountContext, ChannelError, ProviderTemplate, TemplateSubmission,
    templates::variables_with_examples,
};

use crate::config::{TwilioConfig, credentials};
use crate::content_api::{API, is_content_sid, same_api_under};
use crate::errors::error_from_transport;
use crate::send::{get, read};

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
            .map_err(|e| error_from_transport(e, false))?
            .accepted(API, None)?;
        let Some(contents) = answer.body["contents"].as_array() else {
            return Err(ChannelError::transient(format!(
                "{API} listed contents without a `contents` array"
            ))
            .with_exchange(answer.exchange(None)));
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

/// Submits a template: creates the Content resource (`POST /v1/Content`, §9.2) and asks
/// for WhatsApp's approval (`POST /v1/Content/{sid}/ApprovalRequests/whatsapp`, §9.5).
/// Returns the content with the approval as Twilio answered it.
pub(crate) async fn submit(
    http: &reqwest::Client,
    config: &TwilioConfig,
    account: &AccountContext,
    submission: &TemplateSubmission,
) -> Result<ProviderTemplate, ChannelError> {
    let (sid, token) = credentials(account)?;
    let base = config.content_api_base();
    let create = create_request(submission)?;
    let content = post(
        http,
        &format!("{base}/v1/Content"),
        sid,
        token,
        &create,
        true,
    )
    .await?;
    let content_sid = content["sid"]
        .as_str()
        .filter(|s| is_content_sid(s))
        .ok_or_else(|| ChannelError::transient(format!("{API} created content without a SID")))?
        .to_owned();
    let approval_request =
        json!({"name": submission.name, "category": submission.category.to_ascii_uppercase()});
    let approval = post(
        http,
        &format!("{base}/v1/Content/{content_sid}/ApprovalRequests/whatsapp"),
        sid,
        token,
        &approval_request,
        true,
    )
    .await?;
    let mut item = content;
    item["approval_requests"] = approval;
    from_content(&item)
        .ok_or_else(|| ChannelError::transient(format!("{API} answered unreadable content")))
}

/// The `POST /v1/Content` body for a submission (§9.2-§9.3): `twilio/text` without
/// buttons, `twilio/quick-reply` or `twilio/call-to-action` with them, `whatsapp/card`
/// with a header or footer.
pub(crate) fn create_request(s: &TemplateSubmission) -> Result<Value, ChannelError> {
    let actions: Vec<Value> = s
        .buttons
        .iter()
        .map(|b| match b.kind.as_str() {
            "url" => json!({"type": "URL", "title": b.text, "url": b.url}),
            "phone_number" => json!({"type": "PHONE_NUMBER", "title": b.text, "phone": b.phone_number}),
            "copy_code" => json!({"type": "COPY_CODE",
                "title": if b.text.is_empty() { "Copy code" } else { b.text.as_str() }, "code": b.example}),
            _ => json!({"type": "QUICK_REPLY", "title": b.text, "id": b.text}),
        })
        .collect();
    let quick = s.buttons.iter().filter(|b| b.kind == "quick_reply").count();
    let (kind, mut fields) = if s.header.is_some() || s.footer.is_some() {
        if s.buttons.iter().any(|b| b.kind == "copy_code") {
            return Err(ChannelError::invalid(
                "Twilio's whatsapp/card (a template with a header or footer) has no copy_code button",
            ));
        }
        ("whatsapp/card", json!({"body": s.body}))
    } else if actions.is_empty() {
        ("twilio/text", json!({"body": s.body}))
    } else if quick == actions.len() {
        ("twilio/quick-reply", json!({"body": s.body}))
    } else if quick == 0 {
        ("twilio/call-to-action", json!({"body": s.body}))
    } else {
        return Err(ChannelError::invalid(
            "Twilio's content types do not mix quick_reply with url, phone_number or copy_code buttons",
        ));
    };
    if let Some(h) = &s.header {
        fields["header_text"] = json!(h.text);
    }
    if let Some(f) = &s.footer {
        fields["footer"] = json!(f);
    }
    if !actions.is_empty() {
        fields["actions"] = Value::Array(actions);
    }
    Ok(json!({
        "friendly_name": s.name,
        "language": s.language,
        "variables": s.examples,
        "types": {kind: fields},
    }))
}

/// One authenticated JSON POST to the Content API: the 2xx body, or the classified error.
async fn post(
    http: &reqwest::Client,
    url: &str,
    sid: &str,
    token: &str,
    body: &Value,
    create: bool,
) -> Result<Value, ChannelError> {
    let sent = http
        .post(url)
        .basic_auth(sid, Some(token))
        .header(http::header::ACCEPT, "application/json")
        .json(body)
        .send()
        .await;
    let answer = match sent {
        Ok(resp) => read(resp).await,
        Err(e) => Err(e),
    }
    .map_err(|e| error_from_transport(e, create))?;
    Ok(answer.accepted(API, Some(body))?.body)
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

//! The template catalog: `GET /{waba_id}/message_templates`, every page (meta.md §13.1),
//! read into [`ProviderTemplate`]s; and submission, `POST /{waba_id}/message_templates`.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use switchboard_core::{
    AccountContext, ChannelError, Exchange, ProviderTemplate, TemplateSubmission, TemplateVariable,
};

use crate::config::{CRED_WABA_ID, MetaConfig, is_graph_id};
use crate::errors;
use crate::send::account_keys;

/// Pages read at most in one listing: 100 templates a page covers Meta's 6,000 per WABA.
const MAX_PAGES: usize = 100;
/// Templates asked for per page.
const PAGE_SIZE: u32 = 100;

/// The account's WABA id: its `waba_id` credential, else the one learned from its webhooks.
fn waba_id<'a>(
    account: &'a AccountContext,
    learned: Option<&'a str>,
) -> Result<&'a str, ChannelError> {
    let id = account
        .credentials
        .get(CRED_WABA_ID)
        .or(learned)
        .ok_or_else(|| {
            ChannelError::invalid(
                "the account's WhatsApp Business Account id is not known yet: set the waba_id \
             credential, or wait for the account's first webhook",
            )
        })?;
    if !is_graph_id(id) {
        return Err(ChannelError::invalid(
            "the WhatsApp Business Account id must be digits",
        ));
    }
    Ok(id)
}

/// Lists every template of the account's WABA, following `paging.cursors.after` while
/// Meta gives a `paging.next` (§13.1).
pub(crate) async fn list(
    client: &reqwest::Client,
    config: &MetaConfig,
    account: &AccountContext,
    learned_waba_id: Option<&str>,
) -> Result<Vec<ProviderTemplate>, ChannelError> {
    let (_, token) = account_keys(account)?;
    let waba = waba_id(account, learned_waba_id)?;
    let base = format!("{}/message_templates", config.node_url(waba));
    let mut templates = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let mut url = url::Url::parse(&base)
            .map_err(|e| ChannelError::permanent(format!("bad Graph URL: {e}")))?;
        url.query_pairs_mut()
            .append_pair("limit", &PAGE_SIZE.to_string());
        if let Some(cursor) = &after {
            url.query_pairs_mut().append_pair("after", cursor);
        }
        let page = get_json(client, url.as_str(), token).await?;
        let Some(items) = page["data"].as_array() else {
            return Err(ChannelError::transient(
                "the Graph API listed templates without a `data` array",
            ));
        };
        templates.extend(items.iter().filter_map(from_graph));
        let next_cursor = page["paging"]["cursors"]["after"].as_str();
        match (page["paging"]["next"].as_str(), next_cursor) {
            (Some(_), Some(cursor)) if !items.is_empty() => after = Some(cursor.to_owned()),
            _ => return Ok(templates),
        }
    }
    Err(ChannelError::transient(format!(
        "the Graph API listed more than {MAX_PAGES} pages of templates"
    )))
}

/// Creates the template on the account's WABA: `POST /{waba_id}/message_templates`
/// (meta.md §13.1-§13.2), and returns it as Meta answered (`id`, `status`, `category`).
pub(crate) async fn submit(
    client: &reqwest::Client,
    config: &MetaConfig,
    account: &AccountContext,
    learned_waba_id: Option<&str>,
    submission: &TemplateSubmission,
) -> Result<ProviderTemplate, ChannelError> {
    let (_, token) = account_keys(account)?;
    let waba = waba_id(account, learned_waba_id)?;
    let body = create_body(submission);
    let url = format!("{}/message_templates", config.node_url(waba));
    let (_, bytes) = crate::send::post_json(client, &url, token, &body).await?;
    let answer: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let Some(id) = answer["id"].as_str() else {
        return Err(ChannelError::transient(
            "the Graph API created a template without answering its id",
        ));
    };
    let mut created = body.clone();
    created["id"] = Value::from(id);
    created["status"] = answer["status"].clone();
    if let Some(category) = answer["category"].as_str() {
        created["category"] = Value::from(category);
    }
    from_graph(&created).ok_or_else(|| ChannelError::transient("unreadable created template"))
}

/// The create request: components from the body, header, footer, buttons and samples,
/// in the shapes Meta lists them (§13.1), `parameter_format` in lower case (§13.2).
pub(crate) fn create_body(s: &TemplateSubmission) -> Value {
    let mut components = Vec::new();
    if let Some(h) = &s.header {
        components.push(json!({"type": "HEADER", "format": "TEXT", "text": h.text}));
    }
    let keys = s.placeholders();
    let positional = s.is_positional();
    let mut body = json!({"type": "BODY", "text": s.body});
    if !keys.is_empty() {
        body["example"] = if positional {
            let mut ordered: Vec<(u32, &str)> = keys
                .iter()
                .filter_map(|k| Some((k.parse().ok()?, s.examples.get(k)?.as_str())))
                .collect();
            ordered.sort_unstable();
            json!({"body_text": [ordered.into_iter().map(|(_, v)| v).collect::<Vec<_>>()]})
        } else {
            json!({"body_text_named_params": keys.iter().map(|k| json!({
                "param_name": k, "example": s.examples.get(k).cloned().unwrap_or_default()
            })).collect::<Vec<_>>()})
        };
    }
    components.push(body);
    if let Some(f) = &s.footer {
        components.push(json!({"type": "FOOTER", "text": f}));
    }
    if !s.buttons.is_empty() {
        let buttons: Vec<Value> = s
            .buttons
            .iter()
            .map(|b| match b.kind.as_str() {
                "url" => json!({"type": "URL", "text": b.text, "url": b.url}),
                "phone_number" => {
                    json!({"type": "PHONE_NUMBER", "text": b.text, "phone_number": b.phone_number})
                }
                "copy_code" => json!({"type": "COPY_CODE", "example": b.example}),
                _ => json!({"type": "QUICK_REPLY", "text": b.text}),
            })
            .collect();
        components.push(json!({"type": "BUTTONS", "buttons": buttons}));
    }
    json!({
        "name": s.name,
        "language": s.language,
        "category": s.category.to_ascii_uppercase(),
        "parameter_format": if positional { "positional" } else { "named" },
        "components": components,
    })
}

/// One authenticated GET, classified like a send's answer.
async fn get_json(client: &reqwest::Client, url: &str, token: &str) -> Result<Value, ChannelError> {
    let resp = client
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .map_err(|e| errors::from_transport(e, None))?;
    let status = resp.status().as_u16();
    let retry_after = switchboard_core::retry_after_header(resp.headers());
    let bytes = resp
        .bytes()
        .await
        .map_err(|e| errors::from_transport(e, None))?;
    let exchange = Exchange {
        http_status: Some(status),
        request: None,
        response: Some(Exchange::response_body(&bytes)),
    };
    if !(200..300).contains(&status) {
        return Err(errors::from_response(status, retry_after, &bytes, exchange));
    }
    serde_json::from_slice(&bytes).map_err(|e| {
        ChannelError::transient(format!("the Graph API answered unreadable JSON: {e}"))
            .with_exchange(exchange)
    })
}

/// One item of `data[]`; `None` when it lacks an id, a name or a language.
pub(crate) fn from_graph(item: &Value) -> Option<ProviderTemplate> {
    let components = item
        .get("components")
        .cloned()
        .unwrap_or(Value::Array(vec![]));
    let of_type = |t: &str| {
        components.as_array().and_then(|cs| {
            cs.iter().find(|c| {
                c["type"]
                    .as_str()
                    .is_some_and(|ct| ct.eq_ignore_ascii_case(t))
            })
        })
    };
    let body = of_type("BODY");
    let text = body.and_then(|b| b["text"].as_str()).unwrap_or_default();
    let examples = body.map(body_examples).unwrap_or_default();
    let header_media = of_type("HEADER")
        .and_then(|h| h["format"].as_str())
        .map(str::to_ascii_lowercase)
        .filter(|f| matches!(f.as_str(), "image" | "video" | "document" | "location"));
    let lower = |v: &Value| v.as_str().map(str::to_ascii_lowercase);
    Some(ProviderTemplate {
        provider_id: item["id"].as_str()?.to_owned(),
        name: item["name"].as_str()?.to_owned(),
        language: item["language"].as_str()?.to_owned(),
        category: lower(&item["category"]),
        status: lower(&item["status"]).unwrap_or_else(|| "unknown".to_owned()),
        quality: lower(&item["quality_score"]["score"]),
        rejection_reason: item["rejected_reason"]
            .as_str()
            .filter(|r| *r != "NONE")
            .map(str::to_owned),
        variables: switchboard_core::templates::placeholders(text)
            .into_iter()
            .map(|key| TemplateVariable {
                example: examples.get(&key).cloned(),
                key,
            })
            .collect(),
        components,
        header_media,
    })
}

/// The body's samples by key: `body_text_named_params` or the first row of `body_text`.
fn body_examples(body: &Value) -> BTreeMap<String, String> {
    let example = &body["example"];
    let mut out = BTreeMap::new();
    for p in example["body_text_named_params"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if let (Some(k), Some(v)) = (p["param_name"].as_str(), p["example"].as_str()) {
            out.insert(k.to_owned(), v.to_owned());
        }
    }
    let rows = example["body_text"].as_array();
    let first = rows.and_then(|r| r.first()).and_then(Value::as_array);
    for (i, v) in first.into_iter().flatten().enumerate() {
        if let Some(v) = v.as_str() {
            out.insert((i + 1).to_string(), v.to_owned());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_named_template_reads_with_its_examples_and_media_header() {
        let t = from_graph(&json!({
            "name": "reservation_confirmation", "parameter_format": "NAMED",
            "components": [
                {"type": "HEADER", "format": "IMAGE", "example": {"header_handle": ["https://x"]}},
                {"type": "BODY", "text": "For {{number_of_guests}} on {{day}}",
                 "example": {"body_text_named_params": [
                    {"param_name": "number_of_guests", "example": "4"},
                    {"param_name": "day", "example": "Saturday"}]}}],
            "language": "en_US", "status": "APPROVED", "category": "UTILITY",
            "quality_score": {"score": "GREEN", "date": 1}, "id": "1387372356726668"}))
        .unwrap();
        assert_eq!(t.status, "approved");
        assert_eq!(t.category.as_deref(), Some("utility"));
        assert_eq!(t.quality.as_deref(), Some("green"));
        assert_eq!(t.header_media.as_deref(), Some("image"));
        assert_eq!(t.variables[0].key, "number_of_guests");
        assert_eq!(t.variables[1].example.as_deref(), Some("Saturday"));
    }

    #[test]
    fn a_positional_rejected_template_keeps_its_reason() {
        let t = from_graph(&json!({"name": "promo", "language": "en", "id": "9",
            "status": "REJECTED", "rejected_reason": "PROMOTIONAL",
            "components": [{"type": "BODY", "text": "Use {{1}} for {{2}}% off",
                            "example": {"body_text": [["SUMMER20", "10"]]}}]}))
        .unwrap();
        assert_eq!(t.rejection_reason.as_deref(), Some("PROMOTIONAL"));
        assert_eq!(t.variables[1].example.as_deref(), Some("10"));
        assert_eq!(t.header_media, None);
        assert!(from_graph(&json!({"name": "x", "language": "en"})).is_none());
    }
}

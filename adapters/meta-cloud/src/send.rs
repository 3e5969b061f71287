//! Sending: [`OutboundMessage`] → Graph JSON, the response → [`SendReceipt`], and
//! mark-as-read.
//!
//! Everything that Switchboard can refuse by itself (too long, two media items, no phone
//! number) is refused before any request is made, as [`ChannelError::invalid`].

use serde_json::{Map, Value, json};
use switchboard_core::{
    AccountContext, ChannelError, Content, Exchange, Header, MediaItem, MediaKind, MessageStatus,
    OutboundMessage, PhoneNumber, SendReceipt, Template, retry_after_header,
};

use crate::config::{CRED_ACCESS_TOKEN, CRED_PHONE_NUMBER_ID, MetaConfig, is_graph_id};
use crate::errors;
use crate::wire;

pub(crate) const MAX_TEXT_CHARS: usize = 4096;
pub(crate) const MAX_CAPTION_CHARS: usize = 1024;

/// The account's phone number id and token, checked for shape.
pub(crate) fn account_keys(account: &AccountContext) -> Result<(&str, &str), ChannelError> {
    let id = account
        .credentials
        .get(CRED_PHONE_NUMBER_ID)
        .unwrap_or(&account.routing_key);
    if !is_graph_id(id) {
        return Err(ChannelError::invalid(
            "the account's phone_number_id must be digits",
        ));
    }
    let token = account.credentials.require(CRED_ACCESS_TOKEN)?;
    Ok((id, token))
}

fn too_long(what: &str, s: &str, max: usize) -> Result<(), ChannelError> {
    let n = s.chars().count();
    if n > max {
        return Err(ChannelError::invalid(format!(
            "{what} is {n} characters; Meta allows at most {max}"
        )));
    }
    Ok(())
}

/// `{"link": …}` or `{"id": …}` (the id wins: Meta recommends it over links).
fn media_ref(item: &MediaItem) -> Result<Map<String, Value>, ChannelError> {
    let mut obj = Map::new();
    if let Some(id) = item.provider_media_id.as_deref().filter(|s| !s.is_empty()) {
        obj.insert("id".into(), id.into());
    } else if let Some(url) = item.url.as_deref().filter(|s| !s.is_empty()) {
        obj.insert("link".into(), url.into());
    } else {
        return Err(ChannelError::invalid(
            "a media item needs a url or a provider media id",
        ));
    }
    if item.kind == MediaKind::Document
        && let Some(f) = item.filename.as_deref().filter(|s| !s.is_empty())
    {
        obj.insert("filename".into(), f.into());
    }
    Ok(obj)
}

fn has_other_parts(c: &Content) -> bool {
    c.text.is_some()
        || !c.media.is_empty()
        || c.location.is_some()
        || c.reaction.is_some()
        || c.template.is_some()
}

fn media_message(content: &Content) -> Result<(&'static str, Value), ChannelError> {
    if content.media.len() > 1 {
        return Err(ChannelError::invalid(format!(
            "Meta carries one media item per message, got {} (the router splits them)",
            content.media.len()
        )));
    }
    let Some(item) = content.media.first() else {
        return Err(ChannelError::invalid("no media item"));
    };
    let kind = match item.kind {
        MediaKind::Image => "image",
        MediaKind::Video => "video",
        MediaKind::Audio => "audio",
        MediaKind::Document => "document",
        MediaKind::Sticker => "sticker",
        other => {
            return Err(ChannelError::unsupported(format!(
                "Meta cannot send media of kind {other:?}"
            )));
        }
    };
    let mut obj = media_ref(item)?;
    // The message text doubles as the caption when the item has none.
    let caption = match (item.caption.as_deref(), content.text.as_deref()) {
        (Some(c), Some(t)) if c != t => {
            return Err(ChannelError::invalid(
                "a media message cannot carry both a caption and a different text",
            ));
        }
        (Some(c), _) | (None, Some(c)) => Some(c),
        (None, None) => None,
    };
    if let Some(caption) = caption.filter(|c| !c.is_empty()) {
        if matches!(item.kind, MediaKind::Audio | MediaKind::Sticker) {
            return Err(ChannelError::invalid(format!(
                "Meta does not allow a caption on {kind}"
            )));
        }
        too_long("the caption", caption, MAX_CAPTION_CHARS)?;
        obj.insert("caption".into(), caption.into());
    }
    Ok((kind, Value::Object(obj)))
}

/// Body parameters in key order: numerically for `{{1}}…{{10}}` templates, else as named
/// parameters (`parameter_name`).
fn body_parameters(t: &Template) -> Vec<Value> {
    let all_numeric = t
        .variables
        .keys()
        .all(|k| !k.is_empty() && k.bytes().all(|b| b.is_ascii_digit()));
    let mut vars: Vec<(&String, &String)> = t.variables.iter().collect();
    if all_numeric {
        vars.sort_by(|a, b| {
            let na = a.0.trim_start_matches('0');
            let nb = b.0.trim_start_matches('0');
            na.len().cmp(&nb.len()).then(na.cmp(nb))
        });
        vars.iter()
            .map(|(_, v)| json!({"type": "text", "text": v}))
            .collect()
    } else {
        vars.iter()
            .map(|(k, v)| json!({"type": "text", "parameter_name": k, "text": v}))
            .collect()
    }
}

fn template_message(t: &Template) -> Result<Value, ChannelError> {
    if t.name.trim().is_empty() {
        return Err(ChannelError::invalid("the template needs a name"));
    }
    let language = t
        .language
        .as_deref()
        .filter(|l| !l.trim().is_empty())
        .ok_or_else(|| ChannelError::invalid("Meta templates need a language code (e.g. en_US)"))?;
    let mut components = Vec::new();
    match &t.header {
        None => {}
        Some(Header::Text(text)) => components.push(json!({
            "type": "header",
            "parameters": [{"type": "text", "text": text}],
        })),
        Some(Header::Media(media)) => {
            let kind = match media.kind {
                MediaKind::Image => "image",
                MediaKind::Video => "video",
                MediaKind::Document => "document",
                other => {
                    return Err(ChannelError::invalid(format!(
                        "a template header cannot be {other:?}"
                    )));
                }
            };
            components.push(json!({
                "type": "header",
                "parameters": [{"type": kind, kind: Value::Object(media_ref(media)?)}],
            }));
        }
        Some(Header::Location(l)) => {
            let mut location = json!({"latitude": l.latitude, "longitude": l.longitude});
            if let Some(n) = &l.name {
                location["name"] = n.as_str().into();
            }
            if let Some(a) = &l.address {
                location["address"] = a.as_str().into();
            }
            components.push(json!({
                "type": "header",
                "parameters": [{"type": "location", "location": location}],
            }));
        }
    }
    if !t.variables.is_empty() {
        components.push(json!({"type": "body", "parameters": body_parameters(t)}));
    }
    for b in &t.buttons {
        let param = if b.sub_type == "quick_reply" {
            json!({"type": "payload", "payload": b.value})
        } else {
            json!({"type": "text", "text": b.value})
        };
        components.push(json!({
            "type": "button",
            "sub_type": b.sub_type,
            "index": b.index.to_string(),
            "parameters": [param],
        }));
    }
    let mut obj = json!({"name": t.name, "language": {"code": language}});
    if !components.is_empty() {
        obj["components"] = Value::Array(components);
    }
    Ok(obj)
}

/// The JSON body for `POST /{phone_number_id}/messages`.
///
/// # Errors
/// [`ChannelError`] of kind `Invalid` or `Unsupported` for anything Meta would refuse.
pub(crate) fn build_body(msg: &OutboundMessage) -> Result<Value, ChannelError> {
    let to = msg.to.phone.as_ref().ok_or_else(|| {
        ChannelError::invalid(
            "Meta needs the recipient's phone number (sending to a BSUID alone is not supported)",
        )
    })?;
    let c = &msg.content;
    if c.interactive.is_some()
        || !c.contacts.is_empty()
        || c.edit_of.is_some()
        || c.revoke_of.is_some()
        || c.system.is_some()
        || c.unsupported.is_some()
    {
        return Err(ChannelError::unsupported(format!(
            "Meta adapter cannot send {} content",
            c.kind()
        )));
    }
    let mut body = json!({
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to.as_str(),
    });
    let mut allow_context = true;
    let (kind, payload) = if let Some(t) = &c.template {
        let mut rest = c.clone();
        rest.template = None;
        if has_other_parts(&rest) {
            return Err(ChannelError::invalid(
                "a template message cannot carry text, media, a location or a reaction",
            ));
        }
        ("template", template_message(t)?)
    } else if let Some(r) = &c.reaction {
        if c.text.is_some() || !c.media.is_empty() || c.location.is_some() {
            return Err(ChannelError::invalid(
                "a reaction cannot carry other content",
            ));
        }
        // A reaction cannot be a contextual reply; it names its message itself.
        allow_context = false;
        (
            "reaction",
            json!({"message_id": r.message_id, "emoji": r.emoji.as_deref().unwrap_or("")}),
        )
    } else if !c.media.is_empty() {
        if c.location.is_some() {
            return Err(ChannelError::invalid(
                "media and a location need separate messages",
            ));
        }
        media_message(c)?
    } else if let Some(l) = &c.location {
        if c.text.is_some() {
            return Err(ChannelError::invalid(
                "a location message cannot carry text (use name and address)",
            ));
        }
        let mut obj = json!({"latitude": l.latitude, "longitude": l.longitude});
        if let Some(n) = &l.name {
            obj["name"] = n.as_str().into();
        }
        if let Some(a) = &l.address {
            obj["address"] = a.as_str().into();
        }
        ("location", obj)
    } else if let Some(text) = &c.text {
        if text.trim().is_empty() {
            return Err(ChannelError::invalid("the text is empty"));
        }
        too_long("the text", text, MAX_TEXT_CHARS)?;
        let preview = text.contains("http://") || text.contains("https://");
        ("text", json!({"preview_url": preview, "body": text}))
    } else {
        return Err(ChannelError::invalid("the message has no content"));
    };
    body["type"] = kind.into();
    body[kind] = payload;
    if allow_context && let Some(reply_to) = msg.reply_to.as_deref().filter(|s| !s.is_empty()) {
        body["context"] = json!({"message_id": reply_to});
    }
    // Echoed back on every status webhook, so a status can find its message even when the
    // send response was lost.
    body["biz_opaque_callback_data"] = msg.id.as_str().into();
    Ok(body)
}

/// One authenticated JSON POST, classified: a 2xx body, or the [`ChannelError`].
pub(crate) async fn post_json(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    body: &Value,
) -> Result<(u16, bytes::Bytes), ChannelError> {
    let resp = client
        .post(url)
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .map_err(|e| errors::from_transport(e, Some(body.clone())))?;
    let status = resp.status().as_u16();
    let retry_after = retry_after_header(resp.headers());
    let bytes = resp
        .bytes()
        .await
        .map_err(|e| errors::from_transport(e, Some(body.clone())))?;
    let exchange = Exchange {
        http_status: Some(status),
        request: Some(body.clone()),
        response: Some(Exchange::response_body(&bytes)),
    };
    if !(200..300).contains(&status) {
        return Err(errors::from_response(status, retry_after, &bytes, exchange));
    }
    // A 2xx that carries an error envelope is still an error.
    if let Some(e) = errors::graph_error(&bytes) {
        return Err(errors::from_graph_error(&e, retry_after, exchange));
    }
    Ok((status, bytes))
}

/// Sends one message.
pub(crate) async fn send(
    client: &reqwest::Client,
    config: &MetaConfig,
    account: &AccountContext,
    msg: &OutboundMessage,
) -> Result<SendReceipt, ChannelError> {
    let (phone_number_id, token) = account_keys(account)?;
    let body = build_body(msg)?;
    let url = config.messages_url(phone_number_id);
    let (status, bytes) = post_json(client, &url, token, &body).await?;
    let exchange = Exchange {
        http_status: Some(status),
        request: Some(body),
        response: Some(Exchange::response_body(&bytes)),
    };
    let parsed: wire::SendResponse = serde_json::from_slice(&bytes).unwrap_or_default();
    let Some(id) = parsed
        .messages
        .first()
        .and_then(|m| m.id.clone())
        .filter(|id| !id.is_empty())
    else {
        // Meta said yes but gave no id: it may send the message, and we cannot track it.
        return Err(ChannelError::ambiguous(
            "the Graph API accepted the message but returned no message id",
        )
        .with_exchange(exchange));
    };
    let sent_to = msg.to.phone.as_ref();
    let recipient_wa_id = parsed
        .contacts
        .first()
        .and_then(|c| c.wa_id.as_deref())
        .and_then(|w| PhoneNumber::from_wa_id(w).ok())
        .filter(|w| Some(w) != sent_to);
    Ok(SendReceipt {
        provider_message_id: id,
        // 200 only means accepted (also for `held_for_quality_assessment` and `paused`);
        // status webhooks report the rest.
        status: MessageStatus::Accepted,
        recipient_wa_id,
        exchange: Some(exchange),
    })
}

/// Marks an inbound message as read.
pub(crate) async fn mark_read(
    client: &reqwest::Client,
    config: &MetaConfig,
    account: &AccountContext,
    wamid: &str,
    typing: bool,
) -> Result<(), ChannelError> {
    if wamid.trim().is_empty() {
        return Err(ChannelError::invalid("the message id is empty"));
    }
    let (phone_number_id, token) = account_keys(account)?;
    let mut body = json!({"messaging_product": "whatsapp", "status": "read", "message_id": wamid});
    if typing {
        // The only indicator type there is (protocols/meta.md §11).
        body["typing_indicator"] = json!({"type": "text"});
    }
    let url = config.messages_url(phone_number_id);
    let (status, bytes) = post_json(client, &url, token, &body).await?;
    let ok = serde_json::from_slice::<Value>(&bytes)
        .ok()
        .and_then(|v| v.get("success")?.as_bool())
        == Some(true);
    if ok {
        Ok(())
    } else {
        Err(
            ChannelError::permanent("the Graph API did not confirm the read receipt")
                .with_exchange(Exchange {
                    http_status: Some(status),
                    request: Some(body),
                    response: Some(Exchange::response_body(&bytes)),
                }),
        )
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use switchboard_core::{Location, Reaction, Recipient, TemplateButton};

    use super::*;

    fn msg(content: Content) -> OutboundMessage {
        OutboundMessage {
            id: "msg_1".into(),
            to: Recipient::phone(PhoneNumber::parse("+16505551234").unwrap()),
            content,
            reply_to: None,
        }
    }

    #[test]
    fn text_body_with_preview_and_context() {
        let mut m = msg(Content::text("see https://example.com"));
        m.reply_to = Some("wamid.orig".into());
        assert_eq!(
            build_body(&m).unwrap(),
            json!({
                "messaging_product": "whatsapp",
                "recipient_type": "individual",
                "to": "+16505551234",
                "type": "text",
                "text": {"preview_url": true, "body": "see https://example.com"},
                "context": {"message_id": "wamid.orig"},
                "biz_opaque_callback_data": "msg_1",
            })
        );
        let plain = build_body(&msg(Content::text("hi"))).unwrap();
        assert_eq!(plain["text"]["preview_url"], json!(false));
    }

    #[test]
    fn limits_are_checked_in_characters() {
        assert!(build_body(&msg(Content::text("é".repeat(4096)))).is_ok());
        let e = build_body(&msg(Content::text("a".repeat(4097)))).unwrap_err();
        assert_eq!(e.kind(), switchboard_core::ErrorKind::Invalid);
        let mut item = MediaItem::from_url(MediaKind::Image, "https://x/a.jpg");
        item.caption = Some("c".repeat(1025));
        let c = Content {
            media: vec![item],
            ..Content::default()
        };
        assert!(build_body(&msg(c)).is_err());
    }

    #[test]
    fn media_rules() {
        let two = Content {
            media: vec![
                MediaItem::from_url(MediaKind::Image, "https://x/1.jpg"),
                MediaItem::from_url(MediaKind::Image, "https://x/2.jpg"),
            ],
            ..Content::default()
        };
        assert!(build_body(&msg(two)).is_err());
        // Text becomes the caption.
        let c = Content {
            text: Some("look".into()),
            media: vec![MediaItem::from_provider_id(MediaKind::Video, "123")],
            ..Content::default()
        };
        let b = build_body(&msg(c)).unwrap();
        assert_eq!(b["type"], "video");
        assert_eq!(b["video"], json!({"id": "123", "caption": "look"}));
        // No caption on stickers.
        let c = Content {
            text: Some("x".into()),
            media: vec![MediaItem::from_provider_id(MediaKind::Sticker, "9")],
            ..Content::default()
        };
        assert!(build_body(&msg(c)).is_err());
    }

    #[test]
    fn template_components() {
        let mut variables = BTreeMap::new();
        for i in 1..=10 {
            variables.insert(i.to_string(), format!("v{i}"));
        }
        let t = Template {
            name: "order_update".into(),
            language: Some("en_US".into()),
            variables,
            header: Some(Header::Text("Hi".into())),
            buttons: vec![TemplateButton {
                index: 0,
                sub_type: "quick_reply".into(),
                value: "STOP".into(),
            }],
        };
        let b = build_body(&msg(Content {
            template: Some(t),
            ..Content::default()
        }))
        .unwrap();
        let comps = &b["template"]["components"];
        assert_eq!(comps[0]["type"], "header");
        let body_params = comps[1]["parameters"].as_array().unwrap();
        // {{10}} comes after {{9}}, not after {{1}}.
        let texts: Vec<&str> = body_params
            .iter()
            .map(|p| p["text"].as_str().unwrap())
            .collect();
        assert_eq!(texts[1], "v2");
        assert_eq!(texts[9], "v10");
        assert_eq!(
            comps[2],
            json!({"type": "button", "sub_type": "quick_reply", "index": "0",
                   "parameters": [{"type": "payload", "payload": "STOP"}]})
        );
        // Named variables become named parameters.
        let named = Template {
            name: "n".into(),
            language: Some("en".into()),
            variables: BTreeMap::from([("first_name".to_owned(), "Ann".to_owned())]),
            ..Template::default()
        };
        let b = build_body(&msg(Content {
            template: Some(named),
            ..Content::default()
        }))
        .unwrap();
        assert_eq!(
            b["template"]["components"][0]["parameters"][0],
            json!({"type": "text", "parameter_name": "first_name", "text": "Ann"})
        );
        // No language: refused before sending.
        let no_lang = Template {
            name: "n".into(),
            ..Template::default()
        };
        assert!(
            build_body(&msg(Content {
                template: Some(no_lang),
                ..Content::default()
            }))
            .is_err()
        );
    }

    #[test]
    fn reaction_and_location_and_refusals() {
        let mut m = msg(Content {
            reaction: Some(Reaction {
                message_id: "wamid.x".into(),
                emoji: None,
            }),
            ..Content::default()
        });
        m.reply_to = Some("wamid.x".into());
        let b = build_body(&m).unwrap();
        assert_eq!(b["reaction"], json!({"message_id": "wamid.x", "emoji": ""}));
        assert!(b.get("context").is_none());
        let b = build_body(&msg(Content {
            location: Some(Location {
                latitude: 1.5,
                longitude: -2.0,
                name: Some("HQ".into()),
                address: None,
                url: None,
            }),
            ..Content::default()
        }))
        .unwrap();
        assert_eq!(
            b["location"],
            json!({"latitude": 1.5, "longitude": -2.0, "name": "HQ"})
        );
        assert!(build_body(&msg(Content::default())).is_err());
        let mut bsuid_only = msg(Content::text("hi"));
        bsuid_only.to.phone = None;
        assert!(build_body(&bsuid_only).is_err());
        let revoke = Content {
            revoke_of: Some("wamid.y".into()),
            ..Content::default()
        };
        assert_eq!(
            build_body(&msg(revoke)).unwrap_err().kind(),
            switchboard_core::ErrorKind::Unsupported
        );
    }
}

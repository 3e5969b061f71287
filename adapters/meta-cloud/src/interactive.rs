//! [`InteractiveMessage`] → the `interactive` object of a send (protocols/meta.md §10.2–10.4):
//! reply buttons (`button`), a `list`, a `cta_url` link, a `location_request_message` and a
//! `flow`, each with Meta's field names.

use serde_json::{Map, Value, json};
use switchboard_core::{
    ChannelError, FlowAction, FlowActionKind, Header, InteractiveMessage, InteractiveType,
};

use crate::body::{header_media, put};

/// A Flow's message version: the only one Meta accepts (§10.4).
const FLOW_MESSAGE_VERSION: &str = "3";
/// Meta's `flow_token` when the sender gives none (§10.4).
const DEFAULT_FLOW_TOKEN: &str = "unused";
/// The screen a navigate Flow opens when the sender gives data but no screen (§10.4).
const FIRST_ENTRY_SCREEN: &str = "FIRST_ENTRY_SCREEN";

/// Meta's name for each type.
fn meta_type(kind: InteractiveType) -> &'static str {
    match kind {
        InteractiveType::Buttons => "button",
        InteractiveType::List => "list",
        InteractiveType::CtaUrl => "cta_url",
        InteractiveType::Flow => "flow",
        InteractiveType::LocationRequest => "location_request_message",
    }
}

fn header(h: &Header) -> Result<Value, ChannelError> {
    match h {
        Header::Text(text) => Ok(json!({"type": "text", "text": text})),
        Header::Media(item) => header_media(item),
        Header::Location(_) => Err(ChannelError::invalid(
            "an interactive message's header cannot be a location",
        )),
    }
}

fn flow_parameters(flow: &FlowAction) -> Value {
    let mut p = Map::new();
    p.insert("flow_message_version".into(), FLOW_MESSAGE_VERSION.into());
    put(&mut p, "flow_id", flow.id.as_ref());
    put(&mut p, "flow_name", flow.name.as_ref());
    p.insert("flow_cta".into(), flow.cta.as_str().into());
    let token = flow.token.as_deref().unwrap_or(DEFAULT_FLOW_TOKEN);
    p.insert("flow_token".into(), token.into());
    let action = match flow.action {
        FlowActionKind::Navigate => "navigate",
        FlowActionKind::DataExchange => "data_exchange",
    };
    p.insert("flow_action".into(), action.into());
    // The first screen and its data apply to navigate only; without either, Meta opens the
    // Flow's first screen.
    if flow.action == FlowActionKind::Navigate && (flow.screen.is_some() || flow.data.is_some()) {
        let mut payload = Map::new();
        let screen = flow.screen.as_deref().unwrap_or(FIRST_ENTRY_SCREEN);
        payload.insert("screen".into(), screen.into());
        if let Some(data) = &flow.data {
            payload.insert("data".into(), data.clone());
        }
        p.insert("flow_action_payload".into(), Value::Object(payload));
    }
    Value::Object(p)
}

fn action(m: &InteractiveMessage) -> Result<Value, ChannelError> {
    let missing =
        |what: &str| ChannelError::invalid(format!("a {} message needs `{what}`", m.kind.as_str()));
    Ok(match m.kind {
        InteractiveType::Buttons => {
            let buttons: Vec<Value> = m
                .buttons
                .iter()
                .map(|b| json!({"type": "reply", "reply": {"id": b.id, "title": b.title}}))
                .collect();
            json!({"buttons": buttons})
        }
        InteractiveType::List => {
            let sections: Vec<Value> = m
                .sections
                .iter()
                .map(|s| {
                    let rows: Vec<Value> = s
                        .rows
                        .iter()
                        .map(|r| {
                            let mut row = Map::new();
                            row.insert("id".into(), r.id.as_str().into());
                            row.insert("title".into(), r.title.as_str().into());
                            put(&mut row, "description", r.description.as_ref());
                            Value::Object(row)
                        })
                        .collect();
                    let mut section = Map::new();
                    put(&mut section, "title", s.title.as_ref());
                    section.insert("rows".into(), Value::Array(rows));
                    Value::Object(section)
                })
                .collect();
            let button = m.button.as_deref().ok_or_else(|| missing("button"))?;
            json!({"button": button, "sections": sections})
        }
        InteractiveType::CtaUrl => {
            let url = m.url.as_ref().ok_or_else(|| missing("url"))?;
            json!({"name": "cta_url",
                   "parameters": {"display_text": url.display_text, "url": url.url}})
        }
        InteractiveType::LocationRequest => json!({"name": "send_location"}),
        InteractiveType::Flow => {
            let flow = m.flow.as_ref().ok_or_else(|| missing("flow"))?;
            json!({"name": "flow", "parameters": flow_parameters(flow)})
        }
    })
}

/// The `interactive` object, after the message passed WhatsApp's limits
/// ([`InteractiveMessage::check`]).
///
/// # Errors
/// [`ChannelError::invalid`] with what is wrong.
pub(crate) fn payload(m: &InteractiveMessage) -> Result<Value, ChannelError> {
    m.check().map_err(ChannelError::invalid)?;
    let mut obj = Map::new();
    obj.insert("type".into(), meta_type(m.kind).into());
    if let Some(h) = &m.header {
        obj.insert("header".into(), header(h)?);
    }
    obj.insert("body".into(), json!({"text": m.body}));
    if let Some(footer) = &m.footer {
        obj.insert("footer".into(), json!({"text": footer}));
    }
    obj.insert("action".into(), action(m)?);
    Ok(Value::Object(obj))
}

#[cfg(test)]
mod tests {
    use switchboard_core::ErrorKind;

    use super::*;

    fn parse(v: Value) -> InteractiveMessage {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn reply_buttons_with_an_image_header_by_id() {
        let m = parse(json!({"type": "buttons",
            "header": {"type": "image", "provider_media_id": "2762702990552401"},
            "body": "Hi Pablo!", "footer": "Lucky Shrub",
            "buttons": [{"id": "change-button", "title": "Change"},
                        {"id": "cancel-button", "title": "Cancel"}]}));
        assert_eq!(
            payload(&m).unwrap(),
            json!({
                "type": "button",
                "header": {"type": "image", "image": {"id": "2762702990552401"}},
                "body": {"text": "Hi Pablo!"},
                "footer": {"text": "Lucky Shrub"},
                "action": {"buttons": [
                    {"type": "reply", "reply": {"id": "change-button", "title": "Change"}},
                    {"type": "reply", "reply": {"id": "cancel-button", "title": "Cancel"}}]},
            })
        );
    }

    #[test]
    fn a_list_keeps_its_sections_rows_and_optional_parts() {
        let m = parse(
            json!({"type": "list", "header": {"type": "text", "text": "Shipping"},
            "body": "Which option?", "button": "Options",
            "sections": [
                {"title": "ASAP", "rows": [
                    {"id": "express", "title": "Express", "description": "Next day"},
                    {"id": "priority", "title": "Priority"}]},
                {"title": "Later", "rows": [{"id": "ground", "title": "Ground"}]}]}),
        );
        assert_eq!(
            payload(&m).unwrap(),
            json!({
                "type": "list",
                "header": {"type": "text", "text": "Shipping"},
                "body": {"text": "Which option?"},
                "action": {"button": "Options", "sections": [
                    {"title": "ASAP", "rows": [
                        {"id": "express", "title": "Express", "description": "Next day"},
                        {"id": "priority", "title": "Priority"}]},
                    {"title": "Later", "rows": [{"id": "ground", "title": "Ground"}]}]},
            })
        );
    }

    #[test]
    fn cta_url_and_location_request() {
        let m = parse(json!({"type": "cta_url",
            "header": {"type": "document", "url": "https://x.test/menu.pdf", "filename": "menu.pdf"},
            "body": "See dates", "footer": "Subject to change",
            "url": {"display_text": "See Dates", "url": "https://www.luckyshrub.com?id=1"}}));
        assert_eq!(
            payload(&m).unwrap(),
            json!({
                "type": "cta_url",
                "header": {"type": "document",
                           "document": {"link": "https://x.test/menu.pdf", "filename": "menu.pdf"}},
                "body": {"text": "See dates"},
                "footer": {"text": "Subject to change"},
                "action": {"name": "cta_url", "parameters": {
                    "display_text": "See Dates", "url": "https://www.luckyshrub.com?id=1"}},
            })
        );
        let m = parse(json!({"type": "location_request", "body": "Where to pick you up?"}));
        assert_eq!(
            payload(&m).unwrap(),
            json!({"type": "location_request_message", "body": {"text": "Where to pick you up?"},
                   "action": {"name": "send_location"}})
        );
    }

    #[test]
    fn flows_default_their_token_and_carry_a_payload_only_to_navigate() {
        let m = parse(
            json!({"type": "flow", "header": {"type": "text", "text": "Book"},
            "body": "Book a table", "footer": "f",
            "flow": {"id": "123456", "cta": "Book!", "screen": "START", "data": {"party": 2}}}),
        );
        assert_eq!(
            payload(&m).unwrap()["action"],
            json!({"name": "flow", "parameters": {
                "flow_message_version": "3", "flow_id": "123456", "flow_cta": "Book!",
                "flow_token": "unused", "flow_action": "navigate",
                "flow_action_payload": {"screen": "START", "data": {"party": 2}}}})
        );
        let m = parse(json!({"type": "flow", "body": "b",
            "flow": {"name": "signup", "cta": "Sign up", "token": "tok-1", "action": "data_exchange"}}));
        assert_eq!(
            payload(&m).unwrap()["action"]["parameters"],
            json!({"flow_message_version": "3", "flow_name": "signup", "flow_cta": "Sign up",
                   "flow_token": "tok-1", "flow_action": "data_exchange"})
        );
        let m = parse(json!({"type": "flow", "body": "b",
            "flow": {"id": "1", "cta": "Go", "data": {"k": "v"}}}));
        assert_eq!(
            payload(&m).unwrap()["action"]["parameters"]["flow_action_payload"],
            json!({"screen": "FIRST_ENTRY_SCREEN", "data": {"k": "v"}})
        );
        let m = parse(json!({"type": "flow", "body": "b", "flow": {"id": "1", "cta": "Go"}}));
        assert!(
            payload(&m).unwrap()["action"]["parameters"]
                .get("flow_action_payload")
                .is_none()
        );
    }

    #[test]
    fn over_the_limits_is_refused_before_building() {
        let m = parse(json!({"type": "buttons", "body": "b", "buttons": [
            {"id": "1", "title": "1"}, {"id": "2", "title": "2"},
            {"id": "3", "title": "3"}, {"id": "4", "title": "4"}]}));
        let e = payload(&m).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Invalid);
        assert!(e.message().contains("1 to 3 buttons"), "{}", e.message());
        let m = parse(json!({"type": "buttons", "body": "b",
            "header": {"type": "image", "url": ""}, "buttons": [{"id": "1", "title": "1"}]}));
        assert!(
            payload(&m)
                .unwrap_err()
                .message()
                .contains("url or a provider media id")
        );
    }
}

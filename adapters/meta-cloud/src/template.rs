//! [`Template`] → the `template` object of a send (protocols/meta.md §5.2, §13.4): the
//! language, and components for the header, the body's parameters (positional or named)
//! and the buttons' parameters.

use std::collections::HashSet;

use serde_json::{Value, json};
use switchboard_core::{ChannelError, Header, Template, TemplateButton};

use crate::body::{header_media, location};

/// Button positions Meta numbers `"0"` to `"9"`.
const MAX_BUTTON_INDEX: u32 = 9;

fn is_position(key: &str) -> bool {
    !key.is_empty() && key.bytes().all(|b| b.is_ascii_digit())
}

/// The body's parameters: `{{1}}…{{n}}` in numeric order, or named parameters
/// (`parameter_name`) when the template names its placeholders.
fn body_parameters(t: &Template) -> Result<Vec<Value>, ChannelError> {
    if t.variables.keys().any(|k| k.trim().is_empty()) {
        return Err(ChannelError::invalid(
            "a template variable has an empty key",
        ));
    }
    let positional = t.variables.keys().filter(|k| is_position(k)).count();
    if positional == 0 {
        return Ok(t
            .variables
            .iter()
            .map(|(name, text)| json!({"type": "text", "parameter_name": name, "text": text}))
            .collect());
    }
    if positional != t.variables.len() {
        return Err(ChannelError::invalid(
            "template variables are either all positions (\"1\", \"2\", …) or all names",
        ));
    }
    let mut numbered: Vec<(u64, &String)> = t
        .variables
        .iter()
        .map(|(k, v)| (k.parse::<u64>().unwrap_or(u64::MAX), v))
        .collect();
    numbered.sort_by_key(|(n, _)| *n);
    // Positional values are matched by order alone: a gap would shift every later value.
    for (expected, (n, _)) in (1_u64..).zip(&numbered) {
        if *n != expected {
            return Err(ChannelError::invalid(format!(
                "template variables by position are numbered 1 to {} without gaps",
                numbered.len()
            )));
        }
    }
    Ok(numbered
        .into_iter()
        .map(|(_, text)| json!({"type": "text", "text": text}))
        .collect())
}

fn header_component(header: &Header) -> Result<Value, ChannelError> {
    let parameter = match header {
        Header::Text(text) => {
            if text.trim().is_empty() {
                return Err(ChannelError::invalid("the template's header text is empty"));
            }
            json!({"type": "text", "text": text})
        }
        Header::Media(item) => header_media(item)?,
        Header::Location(l) => json!({"type": "location", "location": location(l)}),
    };
    Ok(json!({"type": "header", "parameters": [parameter]}))
}

fn button_component(b: &TemplateButton) -> Result<Value, ChannelError> {
    if b.index > MAX_BUTTON_INDEX {
        return Err(ChannelError::invalid(format!(
            "template button index {} is out of range 0 to {MAX_BUTTON_INDEX}",
            b.index
        )));
    }
    if b.value.trim().is_empty() {
        return Err(ChannelError::invalid(format!(
            "template button {} needs a value",
            b.index
        )));
    }
    let parameter = match b.sub_type.as_str() {
        "quick_reply" => json!({"type": "payload", "payload": b.value}),
        "url" => json!({"type": "text", "text": b.value}),
        "copy_code" => json!({"type": "coupon_code", "coupon_code": b.value}),
        other => {
            return Err(ChannelError::invalid(format!(
                "template button {} is of type {other:?}; one of {} can be filled in",
                b.index,
                TemplateButton::SUB_TYPES.join(", ")
            )));
        }
    };
    Ok(json!({
        "type": "button",
        "sub_type": b.sub_type,
        "index": b.index.to_string(),
        "parameters": [parameter],
    }))
}

/// The `template` object.
///
/// # Errors
/// [`ChannelError::invalid`] for a template Meta would refuse (no name or language,
/// variables that mix positions and names or skip a position, a button out of range).
pub(crate) fn payload(t: &Template) -> Result<Value, ChannelError> {
    if t.name.trim().is_empty() {
        return Err(ChannelError::invalid("the template needs a name"));
    }
    let language = t
        .language
        .as_deref()
        .filter(|l| !l.trim().is_empty())
        .ok_or_else(|| ChannelError::invalid("Meta templates need a language code (e.g. en_US)"))?;
    let mut components = Vec::new();
    if let Some(header) = &t.header {
        components.push(header_component(header)?);
    }
    if !t.variables.is_empty() {
        components.push(json!({"type": "body", "parameters": body_parameters(t)?}));
    }
    let mut indexes = HashSet::new();
    for b in &t.buttons {
        if !indexes.insert(b.index) {
            return Err(ChannelError::invalid(format!(
                "template button {} is given twice",
                b.index
            )));
        }
        components.push(button_component(b)?);
    }
    let mut obj = json!({"name": t.name, "language": {"code": language}});
    if !components.is_empty() {
        obj["components"] = Value::Array(components);
    }
    Ok(obj)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use switchboard_core::{ErrorKind, Location, MediaItem, MediaKind};

    use super::*;

    fn template(variables: &[(&str, &str)]) -> Template {
        Template {
            name: "order_update".into(),
            language: Some("en_US".into()),
            variables: variables
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<BTreeMap<_, _>>(),
            ..Template::default()
        }
    }

    fn button(index: u32, sub_type: &str, value: &str) -> TemplateButton {
        TemplateButton {
            index,
            sub_type: sub_type.into(),
            value: value.into(),
        }
    }

    #[test]
    fn positions_go_in_numeric_order_so_ten_follows_nine() {
        let vars: Vec<(String, String)> =
            (1..=10).map(|i| (i.to_string(), format!("v{i}"))).collect();
        let pairs: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let b = payload(&template(&pairs)).unwrap();
        let texts: Vec<&str> = b["components"][0]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["text"].as_str().unwrap())
            .collect();
        assert_eq!(
            texts,
            ["v1", "v2", "v3", "v4", "v5", "v6", "v7", "v8", "v9", "v10"]
        );
        assert!(
            b["components"][0]["parameters"][0]
                .get("parameter_name")
                .is_none()
        );
    }

    #[test]
    fn names_become_named_parameters() {
        let b = payload(&template(&[
            ("first_name", "Jessica"),
            ("order_number", "SKBUP2"),
        ]))
        .unwrap();
        assert_eq!(
            b,
            json!({"name": "order_update", "language": {"code": "en_US"}, "components": [
                {"type": "body", "parameters": [
                    {"type": "text", "parameter_name": "first_name", "text": "Jessica"},
                    {"type": "text", "parameter_name": "order_number", "text": "SKBUP2"}]}]})
        );
    }

    #[test]
    fn mixed_or_gapped_variables_are_refused() {
        let mixed = payload(&template(&[("1", "a"), ("name", "b")])).unwrap_err();
        assert_eq!(mixed.kind(), ErrorKind::Invalid);
        assert!(
            mixed.message().contains("all positions"),
            "{}",
            mixed.message()
        );
        let gap = payload(&template(&[("1", "a"), ("3", "c")])).unwrap_err();
        assert!(gap.message().contains("without gaps"), "{}", gap.message());
        let from_zero = payload(&template(&[("0", "a")])).unwrap_err();
        assert!(from_zero.message().contains("without gaps"));
    }

    #[test]
    fn headers_of_every_kind() {
        let mut t = template(&[]);
        t.header = Some(Header::Text("Hi".into()));
        assert_eq!(
            payload(&t).unwrap()["components"][0],
            json!({"type": "header", "parameters": [{"type": "text", "text": "Hi"}]})
        );
        let mut doc = MediaItem::from_provider_id(MediaKind::Document, "4490");
        doc.filename = Some("invoice.pdf".into());
        t.header = Some(Header::Media(doc));
        assert_eq!(
            payload(&t).unwrap()["components"][0]["parameters"][0],
            json!({"type": "document", "document": {"id": "4490", "filename": "invoice.pdf"}})
        );
        t.header = Some(Header::Location(Location {
            latitude: 37.48,
            longitude: -122.15,
            name: Some("HQ".into()),
            address: Some("1 Hacker Way".into()),
            url: None,
        }));
        assert_eq!(
            payload(&t).unwrap()["components"][0]["parameters"][0],
            json!({"type": "location", "location": {"latitude": 37.48, "longitude": -122.15,
                   "name": "HQ", "address": "1 Hacker Way"}})
        );
        t.header = Some(Header::Media(MediaItem::from_url(
            MediaKind::Audio,
            "https://x/a.ogg",
        )));
        assert_eq!(payload(&t).unwrap_err().kind(), ErrorKind::Invalid);
    }

    #[test]
    fn buttons_take_their_documented_parameter_types() {
        let mut t = template(&[]);
        t.buttons = vec![
            button(0, "quick_reply", "STOP_PROMOS"),
            button(1, "url", "860198"),
            button(2, "copy_code", "SUMMER20"),
        ];
        assert_eq!(
            payload(&t).unwrap()["components"],
            json!([
                {"type": "button", "sub_type": "quick_reply", "index": "0",
                 "parameters": [{"type": "payload", "payload": "STOP_PROMOS"}]},
                {"type": "button", "sub_type": "url", "index": "1",
                 "parameters": [{"type": "text", "text": "860198"}]},
                {"type": "button", "sub_type": "copy_code", "index": "2",
                 "parameters": [{"type": "coupon_code", "coupon_code": "SUMMER20"}]},
            ])
        );
        for (buttons, words) in [
            (vec![button(10, "url", "x")], "out of range"),
            (vec![button(0, "phone_number", "x")], "one of quick_reply"),
            (
                vec![button(0, "url", "a"), button(0, "url", "b")],
                "given twice",
            ),
            (vec![button(0, "quick_reply", " ")], "needs a value"),
        ] {
            t.buttons = buttons;
            let e = payload(&t).unwrap_err();
            assert!(e.message().contains(words), "{}", e.message());
        }
    }

    #[test]
    fn name_and_language_are_required() {
        let mut t = template(&[]);
        t.language = None;
        assert!(payload(&t).unwrap_err().message().contains("language"));
        let mut t = template(&[]);
        t.name = " ".into();
        assert!(payload(&t).unwrap_err().message().contains("name"));
    }
}

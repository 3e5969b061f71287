//! Interactive messages a business sends: reply buttons, lists, a call-to-action link, a
//! WhatsApp Flow, a location request.
//!
//! The JSON form is the API's (`POST /v1/messages`, field `interactive`), and the same body
//! works on every channel that carries interactive messages. [`InteractiveMessage::check`]
//! holds WhatsApp's limits (protocols/meta.md §10.1), which Twilio's Content API inherits
//! (protocols/twilio.md §9.3): a message over them is refused before it is queued.

use serde::{Deserialize, Serialize};

use crate::content::Header;

/// What kind of interactive message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InteractiveType {
    /// Up to three reply buttons.
    Buttons,
    /// A menu of rows in sections, opened by one button.
    List,
    /// One button that opens a URL.
    CtaUrl,
    /// A button that opens a WhatsApp Flow.
    Flow,
    /// A button that asks the person to share their location.
    LocationRequest,
}

impl InteractiveType {
    pub const ALL: [Self; 5] = [
        Self::Buttons,
        Self::List,
        Self::CtaUrl,
        Self::Flow,
        Self::LocationRequest,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Buttons => "buttons",
            Self::List => "list",
            Self::CtaUrl => "cta_url",
            Self::Flow => "flow",
            Self::LocationRequest => "location_request",
        }
    }
}

/// An interactive message to send.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InteractiveMessage {
    #[serde(rename = "type")]
    pub kind: InteractiveType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<Header>,
    pub body: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub footer: Option<String>,
    /// `buttons`: the reply buttons.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub buttons: Vec<ReplyButton>,
    /// `list`: the label of the button that opens the list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub button: Option<String>,
    /// `list`: its sections.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sections: Vec<ListSection>,
    /// `cta_url`: the link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<CtaUrl>,
    /// `flow`: the Flow to open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow: Option<FlowAction>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplyButton {
    /// Comes back in the person's reply.
    pub id: String,
    pub title: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListSection {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    pub rows: Vec<ListRow>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListRow {
    /// Comes back in the person's reply.
    pub id: String,
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CtaUrl {
    pub display_text: String,
    pub url: String,
}

/// Whether a Flow opens on a screen (`navigate`) or asks the business's endpoint first.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlowActionKind {
    #[default]
    Navigate,
    DataExchange,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlowAction {
    /// The Flow's id; or give `name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The button's label.
    pub cta: String,
    /// Comes back with the completed Flow, to correlate it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    #[serde(default)]
    pub action: FlowActionKind,
    /// `navigate`: the first screen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub screen: Option<String>,
    /// `navigate`: data for the first screen (a non-empty object).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
}

/// WhatsApp's limits (protocols/meta.md §10.1).
pub mod limits {
    pub const HEADER_TEXT: usize = 60;
    pub const BODY: usize = 1024;
    pub const LIST_BODY: usize = 4096;
    pub const FOOTER: usize = 60;
    pub const BUTTONS: usize = 3;
    pub const BUTTON_ID: usize = 256;
    pub const BUTTON_TITLE: usize = 20;
    pub const LIST_BUTTON: usize = 20;
    pub const SECTIONS: usize = 10;
    pub const SECTION_TITLE: usize = 24;
    pub const ROWS: usize = 10;
    pub const ROW_ID: usize = 200;
    pub const ROW_TITLE: usize = 24;
    pub const ROW_DESCRIPTION: usize = 72;
    pub const CTA_DISPLAY_TEXT: usize = 20;
    /// Meta advises 30 characters or less for a Flow's button.
    pub const FLOW_CTA: usize = 30;
}

fn at_most(what: &str, s: &str, max: usize) -> Result<(), String> {
    let n = s.chars().count();
    if n > max {
        return Err(format!(
            "{what} has {n} characters; at most {max} are allowed"
        ));
    }
    Ok(())
}

fn required(what: &str, s: &str, max: usize) -> Result<(), String> {
    if s.trim().is_empty() {
        return Err(format!("{what} is required"));
    }
    at_most(what, s, max)
}

fn not_for(kind: InteractiveType, what: &str, present: bool) -> Result<(), String> {
    if present {
        return Err(format!("{what} is not part of a {} message", kind.as_str()));
    }
    Ok(())
}

impl InteractiveMessage {
    /// Checks the message against WhatsApp's limits and its type's required parts.
    ///
    /// # Errors
    /// What is wrong, in words for the API's error message.
    pub fn check(&self) -> Result<(), String> {
        let kind = self.kind;
        let body_max = if kind == InteractiveType::List {
            limits::LIST_BODY
        } else {
            limits::BODY
        };
        required("body", &self.body, body_max)?;
        if let Some(footer) = &self.footer {
            // A location request shows its body and the button only (protocols/meta.md §10.4).
            not_for(kind, "a footer", kind == InteractiveType::LocationRequest)?;
            required("footer", footer, limits::FOOTER)?;
        }
        match &self.header {
            None => {}
            Some(Header::Text(text)) => {
                not_for(kind, "a header", kind == InteractiveType::LocationRequest)?;
                required("header text", text, limits::HEADER_TEXT)?;
            }
            Some(Header::Media(_)) => {
                if matches!(
                    kind,
                    InteractiveType::List | InteractiveType::LocationRequest
                ) {
                    return Err(format!(
                        "a {} message's header can only be text",
                        kind.as_str()
                    ));
                }
            }
            Some(Header::Location(_)) => {
                return Err("an interactive message's header cannot be a location".into());
            }
        }
        not_for(
            kind,
            "buttons",
            kind != InteractiveType::Buttons && !self.buttons.is_empty(),
        )?;
        not_for(
            kind,
            "button",
            kind != InteractiveType::List && self.button.is_some(),
        )?;
        not_for(
            kind,
            "sections",
            kind != InteractiveType::List && !self.sections.is_empty(),
        )?;
        not_for(
            kind,
            "url",
            kind != InteractiveType::CtaUrl && self.url.is_some(),
        )?;
        not_for(
            kind,
            "flow",
            kind != InteractiveType::Flow && self.flow.is_some(),
        )?;
        match kind {
            InteractiveType::Buttons => self.check_buttons(),
            InteractiveType::List => self.check_list(),
            InteractiveType::CtaUrl => {
                let url = self.url.as_ref().ok_or("a cta_url message needs `url`")?;
                required(
                    "url.display_text",
                    &url.display_text,
                    limits::CTA_DISPLAY_TEXT,
                )?;
                let parsed = http::Uri::try_from(url.url.as_str()).ok();
                let web = parsed.as_ref().is_some_and(|u| {
                    matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some()
                });
                if !web {
                    return Err(format!("url.url {:?} is not an http or https URL", url.url));
                }
                Ok(())
            }
            InteractiveType::Flow => {
                let flow = self.flow.as_ref().ok_or("a flow message needs `flow`")?;
                flow.check()
            }
            InteractiveType::LocationRequest => Ok(()),
        }
    }

    fn check_buttons(&self) -> Result<(), String> {
        if self.buttons.is_empty() || self.buttons.len() > limits::BUTTONS {
            return Err(format!(
                "a buttons message has 1 to {} buttons, not {}",
                limits::BUTTONS,
                self.buttons.len()
            ));
        }
        let mut titles = std::collections::HashSet::new();
        for (i, b) in self.buttons.iter().enumerate() {
            required(&format!("buttons[{i}].id"), &b.id, limits::BUTTON_ID)?;
            if b.id.trim() != b.id {
                return Err(format!("buttons[{i}].id must not start or end with spaces"));
            }
            required(
                &format!("buttons[{i}].title"),
                &b.title,
                limits::BUTTON_TITLE,
            )?;
            if !titles.insert(b.title.as_str()) {
                return Err(format!("button title {:?} is used twice", b.title));
            }
        }
        Ok(())
    }

    fn check_list(&self) -> Result<(), String> {
        let button = self
            .button
            .as_deref()
            .ok_or("a list message needs `button`")?;
        required("button", button, limits::LIST_BUTTON)?;
        if self.sections.is_empty() || self.sections.len() > limits::SECTIONS {
            return Err(format!(
                "a list has 1 to {} sections, not {}",
                limits::SECTIONS,
                self.sections.len()
            ));
        }
        let rows: usize = self.sections.iter().map(|s| s.rows.len()).sum();
        if rows == 0 || rows > limits::ROWS {
            return Err(format!(
                "a list has 1 to {} rows across its sections, not {rows}",
                limits::ROWS
            ));
        }
        let mut ids = std::collections::HashSet::new();
        for (i, section) in self.sections.iter().enumerate() {
            match &section.title {
                Some(t) => required(&format!("sections[{i}].title"), t, limits::SECTION_TITLE)?,
                None if self.sections.len() > 1 => {
                    return Err(format!(
                        "sections[{i}].title is required when a list has several sections"
                    ));
                }
                None => {}
            }
            if section.rows.is_empty() {
                return Err(format!("sections[{i}] has no rows"));
            }
            for (j, row) in section.rows.iter().enumerate() {
                let at = format!("sections[{i}].rows[{j}]");
                required(&format!("{at}.id"), &row.id, limits::ROW_ID)?;
                required(&format!("{at}.title"), &row.title, limits::ROW_TITLE)?;
                if let Some(d) = &row.description {
                    at_most(&format!("{at}.description"), d, limits::ROW_DESCRIPTION)?;
                }
                if !ids.insert(row.id.as_str()) {
                    return Err(format!("row id {:?} is used twice", row.id));
                }
            }
        }
        Ok(())
    }
}

impl FlowAction {
    fn check(&self) -> Result<(), String> {
        match (&self.id, &self.name) {
            (Some(id), None) if !id.trim().is_empty() => {}
            (None, Some(name)) if !name.trim().is_empty() => {}
            _ => return Err("a flow has exactly one of `id` and `name`".into()),
        }
        required("flow.cta", &self.cta, limits::FLOW_CTA)?;
        if self.action == FlowActionKind::DataExchange
            && (self.screen.is_some() || self.data.is_some())
        {
            return Err("`screen` and `data` apply only to a flow with action navigate".into());
        }
        if let Some(data) = &self.data
            && data.as_object().is_none_or(serde_json::Map::is_empty)
        {
            return Err("flow.data must be a non-empty object".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: serde_json::Value) -> InteractiveMessage {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn buttons_within_the_limits_pass_and_over_them_fail() {
        let ok = parse(json!({"type": "buttons", "body": "Pick one",
            "buttons": [{"id": "a", "title": "Yes"}, {"id": "b", "title": "No"}]}));
        assert_eq!(ok.check(), Ok(()));
        let four = parse(json!({"type": "buttons", "body": "x", "buttons": [
            {"id": "1", "title": "1"}, {"id": "2", "title": "2"},
            {"id": "3", "title": "3"}, {"id": "4", "title": "4"}]}));
        assert!(four.check().unwrap_err().contains("1 to 3 buttons"));
        let long = parse(json!({"type": "buttons", "body": "x",
            "buttons": [{"id": "a", "title": "x".repeat(21)}]}));
        assert!(
            long.check()
                .unwrap_err()
                .contains("buttons[0].title has 21")
        );
        let twice = parse(json!({"type": "buttons", "body": "x",
            "buttons": [{"id": "a", "title": "Same"}, {"id": "b", "title": "Same"}]}));
        assert!(twice.check().unwrap_err().contains("used twice"));
        let spaced = parse(json!({"type": "buttons", "body": "x",
            "buttons": [{"id": " a", "title": "A"}]}));
        assert!(spaced.check().unwrap_err().contains("spaces"));
    }

    #[test]
    fn lists_count_rows_across_sections() {
        let rows = |n: usize| -> Vec<serde_json::Value> {
            (0..n)
                .map(|i| json!({"id": format!("r{i}"), "title": "t"}))
                .collect()
        };
        let ok = parse(json!({"type": "list", "body": "b", "button": "Open",
            "sections": [{"title": "A", "rows": rows(5)}, {"title": "B", "rows": [{"id": "x", "title": "y"}]}]}));
        assert_eq!(ok.check(), Ok(()));
        let eleven = parse(json!({"type": "list", "body": "b", "button": "Open",
            "sections": [{"title": "A", "rows": rows(11)}]}));
        assert!(eleven.check().unwrap_err().contains("1 to 10 rows"));
        let no_button =
            parse(json!({"type": "list", "body": "b", "sections": [{"rows": rows(1)}]}));
        assert!(no_button.check().unwrap_err().contains("needs `button`"));
        let untitled = parse(json!({"type": "list", "body": "b", "button": "Open",
            "sections": [{"rows": rows(1)}, {"title": "B", "rows": [{"id": "z", "title": "z"}]}]}));
        assert!(untitled.check().unwrap_err().contains("title is required"));
        let media_header = parse(json!({"type": "list", "body": "b", "button": "Open",
            "header": {"type": "image", "url": "https://x.test/a.png"},
            "sections": [{"rows": rows(1)}]}));
        assert!(media_header.check().unwrap_err().contains("only be text"));
    }

    #[test]
    fn parts_of_another_type_are_refused() {
        let m = parse(json!({"type": "cta_url", "body": "b",
            "url": {"display_text": "Open", "url": "https://x.test"},
            "buttons": [{"id": "a", "title": "A"}]}));
        assert!(m.check().unwrap_err().contains("not part of a cta_url"));
        let bad_url = parse(json!({"type": "cta_url", "body": "b",
            "url": {"display_text": "Open", "url": "javascript:alert(1)"}}));
        assert!(bad_url.check().is_err());
    }

    #[test]
    fn flows_name_one_flow_and_navigate_with_data() {
        let ok = parse(
            json!({"type": "flow", "body": "b", "flow": {"id": "123", "cta": "Book!",
            "screen": "FIRST", "data": {"product": "x"}}}),
        );
        assert_eq!(ok.check(), Ok(()));
        let both = parse(json!({"type": "flow", "body": "b",
            "flow": {"id": "1", "name": "n", "cta": "Go"}}));
        assert!(both.check().unwrap_err().contains("exactly one"));
        let exchange = parse(json!({"type": "flow", "body": "b",
            "flow": {"name": "n", "cta": "Go", "action": "data_exchange", "screen": "S"}}));
        assert!(exchange.check().unwrap_err().contains("navigate"));
        let empty = parse(json!({"type": "flow", "body": "b",
            "flow": {"name": "n", "cta": "Go", "data": {}}}));
        assert!(empty.check().unwrap_err().contains("non-empty"));
    }

    #[test]
    fn a_location_request_has_no_header_or_footer() {
        let ok = parse(json!({"type": "location_request", "body": "Where are you?"}));
        assert_eq!(ok.check(), Ok(()));
        let footer = parse(json!({"type": "location_request", "body": "b", "footer": "f"}));
        assert!(footer.check().unwrap_err().contains("a footer"));
        let header = parse(json!({"type": "location_request", "body": "b",
            "header": {"type": "text", "text": "h"}}));
        assert!(header.check().unwrap_err().contains("a header"));
    }

    #[test]
    fn unknown_fields_and_types_do_not_parse() {
        assert!(
            serde_json::from_value::<InteractiveMessage>(json!({"type": "carousel", "body": "b"}))
                .is_err()
        );
        assert!(
            serde_json::from_value::<InteractiveMessage>(
                json!({"type": "buttons", "body": "b", "buttonz": []})
            )
            .is_err()
        );
    }
}

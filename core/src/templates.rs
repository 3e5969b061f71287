//! Message templates as a provider's catalog lists them (Meta's message templates, Twilio's
//! Content resources with their WhatsApp approval), in one canonical shape, and the checks
//! a template send must pass against it (api.md "Templates").

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::content::{Header, Template};

/// The status that may be sent outside the service window (meta.md §13.2, twilio.md §9.5).
pub const APPROVED: &str = "approved";

/// One template in a provider's catalog.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProviderTemplate {
    /// The provider's id: Meta's template id, Twilio's Content SID (`HX…`).
    pub provider_id: String,
    /// The name a send uses: Meta's template name; Twilio's Content SID (sends name it).
    pub name: String,
    pub language: String,
    /// `marketing`, `utility`, `authentication` (lower case), when known.
    pub category: Option<String>,
    /// The provider's status in lower case: `approved`, `pending`, `rejected`, `paused`,
    /// `disabled`, … (Twilio adds `unsubmitted` and `received`).
    pub status: String,
    /// `green`, `yellow`, `red` or `unknown`, when the provider rates it.
    pub quality: Option<String>,
    pub rejection_reason: Option<String>,
    /// The components as the provider describes them (Meta's `components`, Twilio's `types`).
    pub components: serde_json::Value,
    /// The body's placeholders in order of first appearance, with the provider's samples.
    pub variables: Vec<TemplateVariable>,
    /// The header's kind when it needs a parameter at send time: `image`, `video`,
    /// `document` or `location`.
    pub header_media: Option<String>,
}

/// A placeholder of a template's body: `1`, `2`… (positional) or a name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateVariable {
    pub key: String,
    pub example: Option<String>,
}

impl ProviderTemplate {
    /// Whether it may be sent (only approved templates may, meta.md §13.2).
    #[must_use]
    pub fn is_approved(&self) -> bool {
        self.status == APPROVED
    }
}

/// The placeholders of a template text, `{{1}}` or `{{name}}`, in order of first
/// appearance, each once. Text between braces that is not a key (spaces, empty) is not a
/// placeholder (twilio.md §9.4).
#[must_use]
pub fn placeholders(text: &str) -> Vec<String> {
    let mut keys: Vec<String> = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else { break };
        let key = after[..end].trim();
        let is_key = !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if is_key && !keys.iter().any(|k| k == key) {
            keys.push(key.to_owned());
        }
        rest = &after[end + 2..];
    }
    keys
}

/// The variables of `body` with samples taken from `examples` by key.
#[must_use]
pub fn variables_with_examples(
    body: &str,
    examples: &BTreeMap<String, String>,
) -> Vec<TemplateVariable> {
    placeholders(body)
        .into_iter()
        .map(|key| TemplateVariable {
            example: examples.get(&key).cloned(),
            key,
        })
        .collect()
}

/// Why a template send does not fit the catalog's template (api.md "Templates").
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TemplateMismatch {
    /// The template is in the catalog but not approved (its status).
    NotApproved(String),
    /// The variables or header do not match the template's.
    Variables(String),
}

/// Checks a send's parameters against the template it names.
///
/// # Errors
/// [`TemplateMismatch`] saying why.
pub fn check_send(template: &ProviderTemplate, send: &Template) -> Result<(), TemplateMismatch> {
    if !template.is_approved() {
        return Err(TemplateMismatch::NotApproved(template.status.clone()));
    }
    let expected: Vec<&str> = template.variables.iter().map(|v| v.key.as_str()).collect();
    let given: Vec<&str> = send.variables.keys().map(String::as_str).collect();
    let missing: Vec<&str> = expected
        .iter()
        .copied()
        .filter(|k| !send.variables.contains_key(*k))
        .collect();
    let unknown: Vec<&str> = given
        .iter()
        .copied()
        .filter(|k| !expected.contains(k))
        .collect();
    if !missing.is_empty() || !unknown.is_empty() {
        let mut why = format!(
            "template {} expects variables [{}]",
            template.name,
            expected.join(", ")
        );
        if !missing.is_empty() {
            why.push_str(&format!("; missing [{}]", missing.join(", ")));
        }
        if !unknown.is_empty() {
            why.push_str(&format!("; not in the template [{}]", unknown.join(", ")));
        }
        return Err(TemplateMismatch::Variables(why));
    }
    if let Some(kind) = &template.header_media {
        let fits = match &send.header {
            Some(Header::Media(item)) => item.kind.as_str() == kind,
            Some(Header::Location(_)) => kind == "location",
            _ => false,
        };
        if !fits {
            return Err(TemplateMismatch::Variables(format!(
                "template {} needs a {kind} header",
                template.name
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(vars: &[&str], header_media: Option<&str>, status: &str) -> ProviderTemplate {
        ProviderTemplate {
            provider_id: "1".into(),
            name: "order_update".into(),
            language: "en_US".into(),
            category: Some("utility".into()),
            status: status.into(),
            quality: None,
            rejection_reason: None,
            components: serde_json::json!([]),
            variables: vars
                .iter()
                .map(|k| TemplateVariable {
                    key: (*k).into(),
                    example: None,
                })
                .collect(),
            header_media: header_media.map(str::to_owned),
        }
    }

    fn send(vars: &[(&str, &str)]) -> Template {
        Template {
            name: "order_update".into(),
            language: Some("en_US".into()),
            variables: vars
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            header: None,
            buttons: vec![],
        }
    }

    #[test]
    fn placeholders_are_positional_or_named_in_order_once() {
        assert_eq!(placeholders("Hi {{1}}, order {{2}} ({{1}})"), ["1", "2"]);
        assert_eq!(
            placeholders("{{first_name}} at {{ day }} {{}} {{a b}} {{x"),
            ["first_name", "day"]
        );
        assert!(placeholders("no variables").is_empty());
    }

    #[test]
    fn examples_attach_by_key() {
        let ex = BTreeMap::from([("1".to_owned(), "Ana".to_owned())]);
        let v = variables_with_examples("Hi {{1}} {{2}}", &ex);
        assert_eq!(v[0].example.as_deref(), Some("Ana"));
        assert_eq!(v[1].example, None);
    }

    #[test]
    fn a_send_must_match_the_approved_templates_variables_and_header() {
        let t = template(&["1", "2"], None, "approved");
        assert!(check_send(&t, &send(&[("1", "a"), ("2", "b")])).is_ok());
        assert!(matches!(
            check_send(&t, &send(&[("1", "a")])),
            Err(TemplateMismatch::Variables(w)) if w.contains("missing [2]")
        ));
        assert!(matches!(
            check_send(&t, &send(&[("1", "a"), ("2", "b"), ("x", "c")])),
            Err(TemplateMismatch::Variables(w)) if w.contains("not in the template [x]")
        ));
        let pending = template(&[], None, "pending");
        assert_eq!(
            check_send(&pending, &send(&[])),
            Err(TemplateMismatch::NotApproved("pending".into()))
        );
        let image = template(&[], Some("image"), "approved");
        assert!(matches!(
            check_send(&image, &send(&[])),
            Err(TemplateMismatch::Variables(w)) if w.contains("image header")
        ));
    }
}

/// A new template to submit for approval (api.md `POST /v1/templates`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateSubmission {
    pub name: String,
    pub language: String,
    /// `marketing`, `utility` or `authentication`, any case.
    pub category: String,
    /// The body, with `{{1}}`… or `{{name}}` placeholders.
    pub body: String,
    /// A text header: `{"type":"text","text":…}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<SubmittedHeader>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub footer: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub buttons: Vec<SubmittedButton>,
    /// A sample for every placeholder, by key.
    #[serde(default)]
    pub examples: BTreeMap<String, String>,
}

/// A submitted template's header. Only text: a media header's sample must first be
/// uploaded to the provider, which the router does not do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubmittedHeader {
    #[serde(rename = "type")]
    pub kind: String,
    pub text: String,
}

/// A submitted template's button.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubmittedButton {
    /// `quick_reply`, `url`, `phone_number` or `copy_code`.
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_number: Option<String>,
    /// `copy_code`: the sample code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub example: Option<String>,
}

/// The categories a template may be submitted in (meta.md §13.2).
pub const CATEGORIES: [&str; 3] = ["marketing", "utility", "authentication"];

impl TemplateSubmission {
    /// The category in lower case.
    #[must_use]
    pub fn category(&self) -> String {
        self.category.to_ascii_lowercase()
    }

    /// The body's placeholders, in order.
    #[must_use]
    pub fn placeholders(&self) -> Vec<String> {
        placeholders(&self.body)
    }

    /// Whether the placeholders are positional (`{{1}}`…); named otherwise.
    #[must_use]
    pub fn is_positional(&self) -> bool {
        self.placeholders()
            .iter()
            .all(|k| k.bytes().all(|b| b.is_ascii_digit()))
    }

    /// What WhatsApp's review needs (meta.md §13.2, twilio.md §9.4): a name of lower-case
    /// letters, digits and `_`; a known category; a body; placeholders all positional and
    /// numbered 1..n without gaps, or all named; a sample for each; at most 10 buttons of
    /// known kinds with what each needs.
    ///
    /// # Errors
    /// What is wrong, in words.
    pub fn check(&self) -> Result<(), String> {
        let name_ok = !self.name.is_empty()
            && self.name.len() <= 512
            && self
                .name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !name_ok {
            return Err("name must be 1 to 512 lower-case letters, digits or _".into());
        }
        if self.language.trim().is_empty() || self.language.len() > 16 {
            return Err("language must be a code such as en_US".into());
        }
        if !CATEGORIES.contains(&self.category().as_str()) {
            return Err("category must be marketing, utility or authentication".into());
        }
        if self.body.trim().is_empty() || self.body.chars().count() > 1024 {
            return Err("body must have 1 to 1024 characters".into());
        }
        let keys = self.placeholders();
        let numeric: Vec<u32> = keys.iter().filter_map(|k| k.parse().ok()).collect();
        if !numeric.is_empty() && numeric.len() != keys.len() {
            return Err("placeholders must be all positional ({{1}}) or all named".into());
        }
        let mut sorted = numeric.clone();
        sorted.sort_unstable();
        if sorted.iter().enumerate().any(|(i, n)| *n as usize != i + 1) {
            return Err("positional placeholders must be numbered 1, 2, 3… without gaps".into());
        }
        if let Some(k) = keys.iter().find(|k| !self.examples.contains_key(*k)) {
            return Err(format!("examples must give a sample for {{{{{k}}}}}"));
        }
        if let Some(k) = self.examples.keys().find(|k| !keys.contains(k)) {
            return Err(format!("examples names {k:?}, which the body does not use"));
        }
        if let Some(h) = &self.header {
            if h.kind != "text" {
                return Err("header must be {\"type\":\"text\",\"text\":…}".into());
            }
            if h.text.trim().is_empty() || h.text.chars().count() > 60 {
                return Err("header text must have 1 to 60 characters".into());
            }
        }
        if self
            .footer
            .as_ref()
            .is_some_and(|f| f.trim().is_empty() || f.chars().count() > 60)
        {
            return Err("footer must have 1 to 60 characters".into());
        }
        if self.buttons.len() > 10 {
            return Err("at most 10 buttons".into());
        }
        for b in &self.buttons {
            let needs = match b.kind.as_str() {
                "quick_reply" => None,
                "url" => b.url.is_none().then_some("url"),
                "phone_number" => b.phone_number.is_none().then_some("phone_number"),
                "copy_code" => b.example.is_none().then_some("example"),
                other => {
                    return Err(format!(
                        "button type {other:?} is not quick_reply, url, phone_number or copy_code"
                    ));
                }
            };
            if let Some(field) = needs {
                return Err(format!("a {} button needs its {field}", b.kind));
            }
            if b.kind != "copy_code" && (b.text.trim().is_empty() || b.text.chars().count() > 25) {
                return Err("a button's text must have 1 to 25 characters".into());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod submission_tests {
    use super::*;

    fn submission(body: &str, examples: &[(&str, &str)]) -> TemplateSubmission {
        TemplateSubmission {
            name: "order_update".into(),
            language: "en_US".into(),
            category: "UTILITY".into(),
            body: body.into(),
            header: None,
            footer: None,
            buttons: vec![],
            examples: examples
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    #[test]
    fn a_submission_is_checked_as_whatsapps_review_would() {
        assert!(
            submission("Hi {{1}}, order {{2}}", &[("1", "Ana"), ("2", "7")])
                .check()
                .is_ok()
        );
        assert!(
            submission("Hi {{first_name}}", &[("first_name", "Ana")])
                .check()
                .is_ok()
        );
        for (s, why) in [
            (
                submission("Hi {{1}} {{3}}", &[("1", "a"), ("3", "c")]),
                "without gaps",
            ),
            (
                submission("Hi {{1}} {{name}}", &[("1", "a"), ("name", "c")]),
                "all positional",
            ),
            (submission("Hi {{1}}", &[]), "sample for {{1}}"),
            (submission("Hi", &[("1", "a")]), "does not use"),
            (submission(" ", &[]), "body"),
        ] {
            assert!(s.check().unwrap_err().contains(why), "{s:?}");
        }
        let mut bad = submission("Hi", &[]);
        bad.name = "Order Update".into();
        assert!(bad.check().unwrap_err().contains("lower-case"));
        bad.name = "ok".into();
        bad.category = "transactional".into();
        assert!(bad.check().unwrap_err().contains("category"));
        bad.category = "marketing".into();
        bad.buttons = vec![SubmittedButton {
            kind: "url".into(),
            text: "Track".into(),
            url: None,
            phone_number: None,
            example: None,
        }];
        assert!(bad.check().unwrap_err().contains("needs its url"));
    }
}

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

//! Twilio's Content API (protocols/twilio.md §9): what Twilio WhatsApp sends as a content
//! resource, and those resources, created on the fly and found again.
//!
//! Twilio has no free-form interactive message or location on the Messages API: a message
//! names a content resource (`ContentSid`, §9.6) created beforehand. One
//! [`InteractiveMessage`] (the body that also works on Meta) maps to one content type:
//! - `buttons` → `twilio/quick-reply`, or `whatsapp/card` when it has a header or footer
//!   (`header_text` or `media`, `footer`; the buttons as `QUICK_REPLY` actions);
//! - `list` → `twilio/list-picker`: the sections' rows flattened into `items`
//!   (`id`, `item`, `description`). The list-picker has no header, footer or section
//!   titles, so a list with a header or footer is refused; section titles are not shown;
//! - `cta_url` → `twilio/call-to-action` with one `URL` action, or `whatsapp/card` with a
//!   header or footer;
//! - `flow` → `whatsapp/flows` (`flow_id`, `button_text`, `flow_token`,
//!   `flow_first_page_id`, `is_flow_first_page_endpoint`, the footer as `subtitle`, a media
//!   header as `media_url`). Twilio names a Flow by id only, and has no first-screen data
//!   and no text header for it: those are refused;
//! - `location_request` is not carried (it is left out of `Capabilities::interactive`).
//!
//! A location maps to `twilio/location` (`latitude`, `longitude`, its name as `label`,
//! `address`).
//!
//! Every resource gets `language` "en" (required by the API, §9.2; session messages are not
//! reviewed by language). Inside the service window none of these needs approval (§9.6).
//!
//! Caching: equal content makes equal resources, so a resource is named after the hash of
//! what it holds (`switchboard_<hash>`). [`ContentCache`] keeps SIDs in memory per Twilio
//! account; on a miss it first looks the name up (`GET /v2/Content?ContentName=…`, following
//! `meta.next_page_url`, §9.1) and creates the resource only when none exists, so a restart
//! or a second process finds what an earlier one created. Concurrent sends of one content
//! in one process wait for a single look-up; two processes missing at the same instant may
//! each create one, which is harmless (both resources are the same; later look-ups take the
//! first found).
//!
//! Errors: the Content API answers in the 2010 API's error shape; 4xx are permanent, 429 is
//! a rate limit, 5xx and transport failures are transient. None is ambiguous: no message
//! was sent yet, and a retry looks the resource up before creating it again.

use std::fmt;

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use switchboard_core::{
    ChannelError, Exchange, Header, InteractiveMessage, InteractiveType, Location, MediaItem,
};

use crate::config::TwilioConfig;
use crate::errors::error_from_transport;
use crate::send::{get, read};

/// The `language` of every resource Switchboard creates.
pub const LANGUAGE: &str = "en";
/// The prefix of the `friendly_name` of every resource Switchboard creates.
pub const NAME_PREFIX: &str = "switchboard_";
/// Bumped when the mapping changes in a way that must not reuse earlier resources.
const HASH_VERSION: &str = "switchboard-content-1";
/// Content SIDs kept in memory, across accounts.
const CACHE_ENTRIES: usize = 10_000;
/// Pages of a name look-up read before giving up on finding it (a name matches one
/// resource, or a few when two processes raced to create it).
const MAX_LOOKUP_PAGES: usize = 20;
/// How the Content API is named in errors.
pub(crate) const API: &str = "Twilio's Content API";

/// What one content resource holds: its one content type and that type's fields. Equal
/// specs are equal resources, so the hash of a spec names its resource.
#[derive(Clone, PartialEq)]
pub struct ContentSpec {
    content_type: &'static str,
    /// The create request without `friendly_name`: `{"language","types"}`.
    body: Value,
    digest: [u8; 32],
}

impl fmt::Debug for ContentSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ContentSpec")
            .field("content_type", &self.content_type)
            .field("name", &self.friendly_name())
            .finish_non_exhaustive()
    }
}

impl ContentSpec {
    fn new(content_type: &'static str, fields: Value) -> Self {
        let mut types = Map::new();
        types.insert(content_type.to_owned(), fields);
        let body = json!({"language": LANGUAGE, "types": types});
        let digest = Sha256::digest(format!("{HASH_VERSION}\n{body}").as_bytes()).into();
        Self {
            content_type,
            body,
            digest,
        }
    }

    /// The content type, e.g. `twilio/quick-reply`.
    pub fn content_type(&self) -> &'static str {
        self.content_type
    }

    /// The type's fields, as sent.
    pub fn fields(&self) -> &Value {
        &self.body["types"][self.content_type]
    }

    /// The resource's name: [`NAME_PREFIX`] and 128 bits of the hash, in hexadecimal.
    pub fn friendly_name(&self) -> String {
        let hex: String = self.digest[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        format!("{NAME_PREFIX}{hex}")
    }

    /// The body of `POST /v1/Content` (§9.2).
    pub fn create_request(&self) -> Value {
        let mut body = self.body.clone();
        body["friendly_name"] = Value::String(self.friendly_name());
        body
    }

    /// Whether a listed resource is this spec's: its name, and its type present.
    fn is_resource(&self, resource: &Value) -> bool {
        resource["friendly_name"].as_str() == Some(self.friendly_name().as_str())
            && resource["types"].get(self.content_type).is_some()
    }
}

fn unsupported(what: &str) -> ChannelError {
    ChannelError::unsupported(format!("{} cannot send {what}", crate::CHANNEL))
}

/// A header's media as Twilio takes it: a public URL.
fn media_url(item: &MediaItem) -> Result<&str, ChannelError> {
    item.url
        .as_deref()
        .filter(|u| !u.is_empty())
        .ok_or_else(|| {
            ChannelError::invalid("Twilio sends a header's media by public URL; this one has none")
        })
}

/// The content resource of an interactive message.
///
/// # Errors
/// `Invalid` when the message breaks WhatsApp's limits; `Unsupported` for what Twilio's
/// content types cannot carry (see the module documentation).
pub fn interactive_spec(m: &InteractiveMessage) -> Result<ContentSpec, ChannelError> {
    m.check().map_err(ChannelError::invalid)?;
    let plain = m.header.is_none() && m.footer.is_none();
    match m.kind {
        InteractiveType::Buttons => {
            let actions: Vec<Value> = m
                .buttons
                .iter()
                .map(|b| json!({"type": "QUICK_REPLY", "title": b.title, "id": b.id}))
                .collect();
            if plain {
                Ok(ContentSpec::new(
                    "twilio/quick-reply",
                    json!({"body": m.body, "actions": actions}),
                ))
            } else {
                card(m, actions)
            }
        }
        InteractiveType::List => {
            if !plain {
                return Err(unsupported(
                    "a list with a header or footer: Twilio's list-picker has neither",
                ));
            }
            let items: Vec<Value> = m
                .sections
                .iter()
                .flat_map(|s| &s.rows)
                .map(|r| {
                    let mut item = json!({"id": r.id, "item": r.title});
                    if let Some(d) = &r.description {
                        item["description"] = Value::String(d.clone());
                    }
                    item
                })
                .collect();
            Ok(ContentSpec::new(
                "twilio/list-picker",
                json!({"body": m.body, "button": m.button, "items": items}),
            ))
        }
        InteractiveType::CtaUrl => {
            let url = m
                .url
                .as_ref()
                .ok_or_else(|| ChannelError::invalid("a cta_url message needs `url`"))?;
            let actions = vec![json!({"type": "URL", "title": url.display_text, "url": url.url})];
            if plain {
                Ok(ContentSpec::new(
                    "twilio/call-to-action",
                    json!({"body": m.body, "actions": actions}),
                ))
            } else {
                card(m, actions)
            }
        }
        InteractiveType::Flow => flow(m),
        InteractiveType::LocationRequest => Err(unsupported(
            "a location request: Twilio has no content type for it",
        )),
    }
}

/// `whatsapp/card`: the body with its header (text or media), footer and actions.
fn card(m: &InteractiveMessage, actions: Vec<Value>) -> Result<ContentSpec, ChannelError> {
    let mut fields = json!({"body": m.body, "actions": actions});
    if let Some(footer) = &m.footer {
        fields["footer"] = Value::String(footer.clone());
    }
    match &m.header {
        None => {}
        Some(Header::Text(text)) => fields["header_text"] = Value::String(text.clone()),
        Some(Header::Media(item)) => fields["media"] = json!([media_url(item)?]),
        Some(Header::Location(_)) => {
            return Err(ChannelError::invalid(
                "an interactive message's header cannot be a location",
            ));
        }
    }
    Ok(ContentSpec::new("whatsapp/card", fields))
}

/// `whatsapp/flows`.
fn flow(m: &InteractiveMessage) -> Result<ContentSpec, ChannelError> {
    let flow = m
        .flow
        .as_ref()
        .ok_or_else(|| ChannelError::invalid("a flow message needs `flow`"))?;
    let Some(id) = flow.id.as_deref() else {
        return Err(unsupported(
            "a Flow named by `name`: Twilio's whatsapp/flows names a Flow by its `id`",
        ));
    };
    if flow.data.is_some() {
        return Err(unsupported(
            "a Flow's first-screen `data`: Twilio's whatsapp/flows has no field for it",
        ));
    }
    let mut fields = json!({"body": m.body, "button_text": flow.cta, "flow_id": id});
    if let Some(token) = &flow.token {
        fields["flow_token"] = Value::String(token.clone());
    }
    if let Some(screen) = &flow.screen {
        fields["flow_first_page_id"] = Value::String(screen.clone());
    }
    if flow.action == switchboard_core::FlowActionKind::DataExchange {
        fields["is_flow_first_page_endpoint"] = Value::Bool(true);
    }
    if let Some(footer) = &m.footer {
        fields["subtitle"] = Value::String(footer.clone());
    }
    match &m.header {
        None => {}
        Some(Header::Media(item)) => fields["media_url"] = Value::String(media_url(item)?.into()),
        Some(Header::Text(_)) => {
            return Err(unsupported(
                "a Flow with a text header: Twilio's whatsapp/flows takes a media header only",
            ));
        }
        Some(Header::Location(_)) => {
            return Err(ChannelError::invalid(
                "an interactive message's header cannot be a location",
            ));
        }
    }
    Ok(ContentSpec::new("whatsapp/flows", fields))
}

/// The content resource of a location: `twilio/location`.
///
/// # Errors
/// `Invalid` for coordinates that are not a place on Earth.
pub fn location_spec(l: &Location) -> Result<ContentSpec, ChannelError> {
    let on_earth = l.latitude.is_finite()
        && l.longitude.is_finite()
        && (-90.0..=90.0).contains(&l.latitude)
        && (-180.0..=180.0).contains(&l.longitude);
    if !on_earth {
        return Err(ChannelError::invalid(
            "a location needs a latitude from -90 to 90 and a longitude from -180 to 180",
        ));
    }
    let mut fields = json!({"latitude": l.latitude, "longitude": l.longitude});
    if let Some(name) = l.name.as_deref().filter(|n| !n.trim().is_empty()) {
        fields["label"] = Value::String(name.to_owned());
    }
    if let Some(address) = l.address.as_deref().filter(|a| !a.trim().is_empty()) {
        fields["address"] = Value::String(address.to_owned());
    }
    Ok(ContentSpec::new("twilio/location", fields))
}

/// Most `ContentVariables` one message may carry (§9.4).
pub const MAX_VARIABLES: usize = 100;
/// Longest variable key, in characters (§9.4).
pub const MAX_VARIABLE_KEY: usize = 16;
/// Longest variable value, in characters (§9.4).
pub const MAX_VARIABLE_VALUE: usize = 1600;

/// Checks a template's variables against Twilio's rules for `ContentVariables` (§9.4): at
/// most 100; keys of 1 to 16 characters without spaces; values not blank, at most 1,600
/// characters, without a newline, a tab or more than four consecutive spaces (what error
/// 21656 refuses).
///
/// # Errors
/// `Invalid`, naming the variable and the rule.
pub fn check_variables<'a>(
    variables: impl ExactSizeIterator<Item = (&'a String, &'a String)>,
) -> Result<(), ChannelError> {
    let invalid = |why: String| Err(ChannelError::invalid(why));
    if variables.len() > MAX_VARIABLES {
        return invalid(format!(
            "a Twilio template takes at most {MAX_VARIABLES} variables, not {}",
            variables.len()
        ));
    }
    for (key, value) in variables {
        let key_chars = key.chars().count();
        if key_chars == 0 || key_chars > MAX_VARIABLE_KEY {
            return invalid(format!(
                "template variable name {key:?} must have 1 to {MAX_VARIABLE_KEY} characters"
            ));
        }
        if key.chars().any(char::is_whitespace) {
            return invalid(format!(
                "template variable name {key:?} must not contain spaces"
            ));
        }
        if value.trim().is_empty() {
            return invalid(format!(
                "template variable {key:?} is empty; Twilio refuses empty values"
            ));
        }
        let value_chars = value.chars().count();
        if value_chars > MAX_VARIABLE_VALUE {
            return invalid(format!(
                "template variable {key:?} has {value_chars} characters; Twilio allows at most {MAX_VARIABLE_VALUE}"
            ));
        }
        if value.contains(['\n', '\r', '\t']) {
            return invalid(format!(
                "template variable {key:?} contains a newline or a tab, which Twilio refuses"
            ));
        }
        if value.contains("     ") {
            return invalid(format!(
                "template variable {key:?} contains more than four consecutive spaces, which Twilio refuses"
            ));
        }
    }
    Ok(())
}

/// Whether `s` is a Content SID: `HX` and 32 hexadecimal digits (§9.1).
pub fn is_content_sid(s: &str) -> bool {
    s.len() == 34 && s.starts_with("HX") && s[2..].bytes().all(|b| b.is_ascii_hexdigit())
}

/// Content SIDs by Twilio account and content hash, in memory; a miss is looked up by name
/// at Twilio, then created (see the module documentation).
pub(crate) struct ContentCache {
    sids: quick_cache::sync::Cache<(String, [u8; 32]), String>,
}

impl fmt::Debug for ContentCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ContentCache")
            .field("entries", &self.sids.len())
            .finish()
    }
}

impl Default for ContentCache {
    fn default() -> Self {
        Self {
            sids: quick_cache::sync::Cache::new(CACHE_ENTRIES),
        }
    }
}

/// One account's Content API: where, and with which credentials.
pub(crate) struct ContentApi<'a> {
    pub(crate) http: &'a reqwest::Client,
    pub(crate) config: &'a TwilioConfig,
    pub(crate) account_sid: &'a str,
    pub(crate) auth_token: &'a str,
}

impl ContentCache {
    /// The SID of the account's resource holding `spec`: remembered, found by name, or
    /// created.
    ///
    /// # Errors
    /// The Content API's, classified (never ambiguous).
    pub(crate) async fn sid(
        &self,
        api: &ContentApi<'_>,
        spec: &ContentSpec,
    ) -> Result<String, ChannelError> {
        let key = (api.account_sid.to_owned(), spec.digest);
        self.sids
            .get_or_insert_async(&key, async {
                match api.find(spec).await? {
                    Some(sid) => Ok(sid),
                    None => api.create(spec).await,
                }
            })
            .await
    }

    /// Forgets the account's resource for `spec` (Twilio no longer knows it).
    pub(crate) fn forget(&self, account_sid: &str, spec: &ContentSpec) {
        self.sids.remove(&(account_sid.to_owned(), spec.digest));
    }
}

impl ContentApi<'_> {
    /// The SID of an existing resource with the spec's name, reading
    /// `GET /v2/Content?ContentName=…` page by page.
    async fn find(&self, spec: &ContentSpec) -> Result<Option<String>, ChannelError> {
        let base = self.config.content_api_base();
        let name = spec.friendly_name();
        // `ContentName` is a regular expression; the name is letters, digits and `_`, so it
        // matches itself (and any name containing it: the exact name is checked below).
        let mut url = format!("{base}/v2/Content?ContentName={name}");
        for _ in 0..MAX_LOOKUP_PAGES {
            let answer = get(self.http, &url, self.account_sid, self.auth_token)
                .await
                .map_err(|e| error_from_transport(e, false))?;
            if !(200..300).contains(&answer.status) {
                return Err(answer.refusal(API, None));
            }
            let Some(contents) = answer.body["contents"].as_array() else {
                return Err(ChannelError::transient(format!(
                    "{API} listed contents without a `contents` array"
                ))
                .with_exchange(answer.exchange(None)));
            };
            if let Some(sid) = contents
                .iter()
                .filter(|c| spec.is_resource(c))
                .find_map(|c| c["sid"].as_str().filter(|s| is_content_sid(s)))
            {
                return Ok(Some(sid.to_owned()));
            }
            match answer.body["meta"]["next_page_url"].as_str() {
                Some(next) if !next.is_empty() => url = same_api(base, next)?,
                _ => return Ok(None),
            }
        }
        tracing::warn!(
            name = %name,
            "Twilio listed more than {MAX_LOOKUP_PAGES} pages of contents by one name; creating it"
        );
        Ok(None)
    }

    /// Creates the resource: `POST /v1/Content` (§9.2).
    async fn create(&self, spec: &ContentSpec) -> Result<String, ChannelError> {
        let url = format!("{}/v1/Content", self.config.content_api_base());
        let request = spec.create_request();
        let sent = self
            .http
            .post(&url)
            .basic_auth(self.account_sid, Some(self.auth_token))
            .header(http::header::ACCEPT, "application/json")
            .json(&request)
            .send()
            .await;
        let answer = match sent {
            Ok(resp) => read(resp).await,
            Err(e) => Err(e),
        }
        .map_err(|e| {
            error_from_transport(e, false).with_exchange(Exchange {
                http_status: None,
                request: Some(request.clone()),
                response: None,
            })
        })?;
        if !(200..300).contains(&answer.status) {
            return Err(answer.refusal(API, Some(request)));
        }
        match answer.body["sid"].as_str().filter(|s| is_content_sid(s)) {
            Some(sid) => {
                tracing::debug!(
                    content_sid = sid,
                    content_type = spec.content_type,
                    "created a Twilio content resource"
                );
                Ok(sid.to_owned())
            }
            // A retry finds it by name if it was created.
            None => Err(ChannelError::transient(format!(
                "{API} answered HTTP {} without a content SID",
                answer.status
            ))
            .with_exchange(answer.exchange(Some(request)))),
        }
    }
}

/// The next page of a list on the configured API: the path and query of
/// `meta.next_page_url` on `base`, so credentials never go to another host (§9.1: follow
/// the URL Twilio gives, never build one).
pub(crate) fn same_api(base: &str, next: &str) -> Result<String, ChannelError> {
    same_api_under(base, next, "/v2/Content")
}

/// [`same_api`] for a list under `prefix` (`/v1/ContentAndApprovals`, …).
pub(crate) fn same_api_under(base: &str, next: &str, prefix: &str) -> Result<String, ChannelError> {
    let parsed = url::Url::parse(next).map_err(|_| {
        ChannelError::transient(format!("{API} gave a next page URL that is not a URL"))
    })?;
    if !parsed.path().starts_with(prefix) {
        return Err(ChannelError::transient(format!(
            "{API} gave a next page URL outside {prefix}"
        )));
    }
    Ok(match parsed.query() {
        Some(q) => format!("{base}{}?{q}", parsed.path()),
        None => format!("{base}{}", parsed.path()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: Value) -> InteractiveMessage {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn buttons_are_a_quick_reply_and_with_a_header_a_card() {
        let plain = interactive_spec(&parse(json!({"type": "buttons", "body": "Pick",
            "buttons": [{"id": "y", "title": "Yes"}, {"id": "n", "title": "No"}]})))
        .unwrap();
        assert_eq!(plain.content_type(), "twilio/quick-reply");
        assert_eq!(
            plain.create_request(),
            json!({"friendly_name": plain.friendly_name(), "language": "en", "types": {
                "twilio/quick-reply": {"body": "Pick", "actions": [
                    {"type": "QUICK_REPLY", "title": "Yes", "id": "y"},
                    {"type": "QUICK_REPLY", "title": "No", "id": "n"}]}}})
        );
        let card = interactive_spec(&parse(json!({"type": "buttons", "body": "Pick",
            "header": {"type": "image", "url": "https://x.test/a.png"}, "footer": "f",
            "buttons": [{"id": "y", "title": "Yes"}]})))
        .unwrap();
        assert_eq!(card.content_type(), "whatsapp/card");
        assert_eq!(
            card.fields(),
            &json!({"body": "Pick", "footer": "f", "media": ["https://x.test/a.png"],
                "actions": [{"type": "QUICK_REPLY", "title": "Yes", "id": "y"}]})
        );
        let titled = interactive_spec(&parse(json!({"type": "buttons", "body": "Pick",
            "header": {"type": "text", "text": "Hi"}, "buttons": [{"id": "y", "title": "Yes"}]})))
        .unwrap();
        assert_eq!(titled.fields()["header_text"], "Hi");
        let no_url = interactive_spec(&parse(json!({"type": "buttons", "body": "Pick",
            "header": {"type": "image", "media_id": "med_1"}, "buttons": [{"id": "y", "title": "Yes"}]})))
        .unwrap_err();
        assert_eq!(no_url.kind(), switchboard_core::ErrorKind::Invalid);
    }

    #[test]
    fn lists_flatten_their_sections_and_refuse_a_header() {
        let list = interactive_spec(&parse(json!({"type": "list", "body": "Menu", "button": "Open",
            "sections": [{"title": "A", "rows": [{"id": "1", "title": "One", "description": "first"}]},
                         {"title": "B", "rows": [{"id": "2", "title": "Two"}]}]})))
        .unwrap();
        assert_eq!(
            list.fields(),
            &json!({"body": "Menu", "button": "Open", "items": [
                {"id": "1", "item": "One", "description": "first"}, {"id": "2", "item": "Two"}]})
        );
        let headed = interactive_spec(&parse(json!({"type": "list", "body": "Menu", "button": "Open",
            "header": {"type": "text", "text": "H"}, "sections": [{"rows": [{"id": "1", "title": "One"}]}]})))
        .unwrap_err();
        assert_eq!(headed.kind(), switchboard_core::ErrorKind::Unsupported);
        assert!(headed.message().contains("header or footer"), "{headed}");
    }

    #[test]
    fn links_flows_and_location_requests() {
        let link = interactive_spec(&parse(json!({"type": "cta_url", "body": "See",
            "url": {"display_text": "Open", "url": "https://x.test/p"}})))
        .unwrap();
        assert_eq!(link.content_type(), "twilio/call-to-action");
        assert_eq!(
            link.fields()["actions"],
            json!([{"type": "URL", "title": "Open", "url": "https://x.test/p"}])
        );
        let footed = interactive_spec(&parse(
            json!({"type": "cta_url", "body": "See", "footer": "f",
            "url": {"display_text": "Open", "url": "https://x.test/p"}}),
        ))
        .unwrap();
        assert_eq!(footed.content_type(), "whatsapp/card");
        let flow = interactive_spec(&parse(
            json!({"type": "flow", "body": "Book", "footer": "f",
            "flow": {"id": "123", "cta": "Go", "token": "t1", "screen": "FIRST"}}),
        ))
        .unwrap();
        assert_eq!(
            flow.fields(),
            &json!({"body": "Book", "button_text": "Go", "flow_id": "123", "flow_token": "t1",
                "flow_first_page_id": "FIRST", "subtitle": "f"})
        );
        let exchange = interactive_spec(&parse(json!({"type": "flow", "body": "Book",
            "flow": {"id": "123", "cta": "Go", "action": "data_exchange"}})))
        .unwrap();
        assert_eq!(exchange.fields()["is_flow_first_page_endpoint"], true);
        for refused in [
            json!({"type": "flow", "body": "Book", "flow": {"name": "booking", "cta": "Go"}}),
            json!({"type": "flow", "body": "Book", "flow": {"id": "1", "cta": "Go", "data": {"a": 1}}}),
            json!({"type": "flow", "body": "Book", "header": {"type": "text", "text": "H"},
                "flow": {"id": "1", "cta": "Go"}}),
            json!({"type": "location_request", "body": "Where are you?"}),
        ] {
            let e = interactive_spec(&parse(refused.clone())).unwrap_err();
            assert_eq!(
                e.kind(),
                switchboard_core::ErrorKind::Unsupported,
                "{refused}"
            );
        }
        let by_name = interactive_spec(&parse(
            json!({"type": "flow", "body": "Book", "flow": {"name": "booking", "cta": "Go"}}),
        ))
        .unwrap_err();
        assert!(by_name.message().contains("by its `id`"), "{by_name}");
        // Over WhatsApp's limits: invalid, whatever the channel.
        let four = interactive_spec(&parse(json!({"type": "buttons", "body": "x", "buttons": [
            {"id": "1", "title": "1"}, {"id": "2", "title": "2"},
            {"id": "3", "title": "3"}, {"id": "4", "title": "4"}]})))
        .unwrap_err();
        assert_eq!(four.kind(), switchboard_core::ErrorKind::Invalid);
    }

    #[test]
    fn locations_keep_name_and_address_and_stay_on_earth() {
        let spec = location_spec(&Location {
            latitude: 37.78789,
            longitude: -122.391664,
            name: Some("Twilio".into()),
            address: Some("375 Beale St".into()),
            url: None,
        })
        .unwrap();
        assert_eq!(
            spec.fields(),
            &json!({"latitude": 37.78789, "longitude": -122.391664, "label": "Twilio",
                "address": "375 Beale St"})
        );
        for (lat, lng) in [(91.0, 0.0), (0.0, -180.5), (f64::NAN, 0.0)] {
            let bad = Location {
                latitude: lat,
                longitude: lng,
                name: None,
                address: None,
                url: None,
            };
            assert!(location_spec(&bad).is_err(), "{lat},{lng}");
        }
    }

    #[test]
    fn equal_content_has_one_name_and_different_content_another() {
        let a = || {
            interactive_spec(&parse(json!({"type": "buttons", "body": "Pick",
            "buttons": [{"id": "y", "title": "Yes"}]})))
            .unwrap()
        };
        assert_eq!(a().friendly_name(), a().friendly_name());
        let name = a().friendly_name();
        assert!(name.starts_with("switchboard_"), "{name}");
        assert_eq!(name.len(), "switchboard_".len() + 32);
        let b = interactive_spec(&parse(json!({"type": "buttons", "body": "Pick",
            "buttons": [{"id": "y", "title": "Yes!"}]})))
        .unwrap();
        assert_ne!(b.friendly_name(), name);
    }

    #[test]
    fn variables_follow_twilios_rules() {
        let check = |pairs: &[(&str, &str)]| {
            let map: std::collections::BTreeMap<String, String> = pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            check_variables(map.iter()).map_err(|e| e.message().to_owned())
        };
        assert_eq!(check(&[("1", "Jane"), ("first_name", "a    b")]), Ok(()));
        let long_key = "k".repeat(17);
        let long_value = "v".repeat(1601);
        for (pairs, why) in [
            (vec![("", "x")], "1 to 16 characters"),
            (vec![(long_key.as_str(), "x")], "1 to 16 characters"),
            (vec![("first name", "x")], "spaces"),
            (vec![("1", "")], "empty"),
            (vec![("1", "  ")], "empty"),
            (vec![("1", long_value.as_str())], "1601 characters"),
            (vec![("1", "a\nb")], "newline"),
            (vec![("1", "a\tb")], "tab"),
            (vec![("1", "a     b")], "four consecutive spaces"),
        ] {
            let e = check(&pairs).unwrap_err();
            assert!(e.contains(why), "{pairs:?}: {e}");
        }
        let many: Vec<(String, String)> =
            (0..101).map(|i| (i.to_string(), "x".to_owned())).collect();
        let many: std::collections::BTreeMap<_, _> = many.into_iter().collect();
        assert!(
            check_variables(many.iter())
                .unwrap_err()
                .message()
                .contains("at most 100")
        );
        assert!(check_variables(many.iter().take(100)).is_ok());
    }

    #[test]
    fn next_pages_stay_on_the_configured_api() {
        assert_eq!(
            same_api(
                "http://127.0.0.1:9",
                "https://content.twilio.com/v2/Content?ContentName=x&PageSize=50&Page=1&PageToken=PT1"
            )
            .unwrap(),
            "http://127.0.0.1:9/v2/Content?ContentName=x&PageSize=50&Page=1&PageToken=PT1"
        );
        assert!(same_api("http://127.0.0.1:9", "https://evil.test/steal").is_err());
        assert!(same_api("http://127.0.0.1:9", "not a url").is_err());
        assert!(is_content_sid("HX0123456789abcdef0123456789ABCDEF"));
        assert!(!is_content_sid("HX0123"));
        assert!(!is_content_sid("HX0123456789abcdef0123456789abcdeg"));
    }
}

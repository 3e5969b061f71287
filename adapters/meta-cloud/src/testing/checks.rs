//! What [`super::FakeGraph`] checks in a `POST /{phone_number_id}/messages` body before it
//! accepts it: the documented shapes, field names and limits of every message kind Switchboard
//! sends (protocols/meta.md §5.2, §10, §11, §12.1, §13.4) and of mark-as-read. A wrong body is
//! answered as Meta answers it: HTTP 400 with the Graph error envelope, code 131008 for a
//! missing parameter, 100 for an unknown parameter or a wrong type, 131009 for a value out of
//! range (§5.4, §6).
//!
//! Written from the documents, not from the adapter's code, so a body the adapter gets wrong
//! is refused here. Where Meta is lenient and the adapter has one right way, the fake is
//! strict: `to` is E.164 with `+` (§5.1 recommends it), and a body names `to` or
//! `recipient`, not both (Meta takes `to` then, §12.1; api.md sends to the number).

use std::collections::HashSet;
use std::fmt::Display;

use serde_json::{Map, Value};

/// Why the fake refused a body: the Graph error code, its title and the details.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub code: u32,
    pub title: &'static str,
    pub details: String,
}

impl Refusal {
    fn missing(path: &str) -> Self {
        Self {
            code: 131_008,
            title: "Required parameter is missing",
            details: format!("Required parameter is missing: {path}"),
        }
    }

    fn invalid(path: &str, why: impl Display) -> Self {
        Self {
            code: 100,
            title: "Invalid parameter",
            details: format!("Invalid parameter: {path} {why}"),
        }
    }

    fn value(path: &str, why: impl Display) -> Self {
        Self {
            code: 131_009,
            title: "Parameter value is not valid",
            details: format!("Parameter value is not valid: {path} {why}"),
        }
    }
}

type Check<T = ()> = Result<T, Refusal>;

/// A JSON object being checked, with its path for the error details.
struct Obj<'a> {
    path: String,
    map: &'a Map<String, Value>,
}

impl<'a> Obj<'a> {
    fn new(path: String, v: &'a Value) -> Check<Self> {
        match v.as_object() {
            Some(map) => Ok(Self { path, map }),
            None => Err(Refusal::invalid(&path, "must be an object")),
        }
    }

    fn at(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// Refuses any field not in `keys`.
    fn only(&self, keys: &[&str]) -> Check {
        match self.map.keys().find(|k| !keys.contains(&k.as_str())) {
            Some(k) => Err(Refusal::invalid(&self.at(k), "is not a parameter here")),
            None => Ok(()),
        }
    }

    fn has(&self, key: &str) -> bool {
        self.map.contains_key(key)
    }

    fn req(&self, key: &str) -> Check<&'a Value> {
        self.map
            .get(key)
            .ok_or_else(|| Refusal::missing(&self.at(key)))
    }

    fn str(&self, key: &str) -> Check<&'a str> {
        self.req(key)?
            .as_str()
            .ok_or_else(|| Refusal::invalid(&self.at(key), "must be a string"))
    }

    fn opt_str(&self, key: &str) -> Check<Option<&'a str>> {
        match self.map.get(key) {
            None => Ok(None),
            Some(_) => self.str(key).map(Some),
        }
    }

    /// A required, non-blank string of at most `max` characters.
    fn text(&self, key: &str, max: usize) -> Check<&'a str> {
        let s = self.str(key)?;
        within(&self.at(key), s, max)?;
        Ok(s)
    }

    fn opt_text(&self, key: &str, max: usize) -> Check<Option<&'a str>> {
        match self.map.get(key) {
            None => Ok(None),
            Some(_) => self.text(key, max).map(Some),
        }
    }

    /// A required string, one of `allowed`.
    fn one_of(&self, key: &str, allowed: &[&str]) -> Check<&'a str> {
        let s = self.str(key)?;
        if allowed.contains(&s) {
            Ok(s)
        } else {
            Err(Refusal::invalid(
                &self.at(key),
                format!("must be one of {}, not {s:?}", allowed.join(", ")),
            ))
        }
    }

    fn opt_one_of(&self, key: &str, allowed: &[&str]) -> Check<Option<&'a str>> {
        match self.map.get(key) {
            None => Ok(None),
            Some(_) => self.one_of(key, allowed).map(Some),
        }
    }

    fn obj(&self, key: &str) -> Check<Obj<'a>> {
        Obj::new(self.at(key), self.req(key)?)
    }

    fn opt_obj(&self, key: &str) -> Check<Option<Obj<'a>>> {
        match self.map.get(key) {
            None => Ok(None),
            Some(v) => Obj::new(self.at(key), v).map(Some),
        }
    }

    /// A required array of `min` to `max` objects.
    fn objects(&self, key: &str, min: usize, max: usize) -> Check<Vec<Obj<'a>>> {
        let path = self.at(key);
        let items = self
            .req(key)?
            .as_array()
            .ok_or_else(|| Refusal::invalid(&path, "must be an array"))?;
        if items.len() < min || items.len() > max {
            return Err(Refusal::value(
                &path,
                format!("has {} items; {min} to {max} are allowed", items.len()),
            ));
        }
        items
            .iter()
            .enumerate()
            .map(|(i, v)| Obj::new(format!("{path}[{i}]"), v))
            .collect()
    }

    fn opt_objects(&self, key: &str, max: usize) -> Check<Vec<Obj<'a>>> {
        if self.has(key) {
            self.objects(key, 0, max)
        } else {
            Ok(Vec::new())
        }
    }

    /// A required number within `min..=max`.
    fn number(&self, key: &str, min: f64, max: f64) -> Check<f64> {
        let n = self
            .req(key)?
            .as_f64()
            .ok_or_else(|| Refusal::invalid(&self.at(key), "must be a number"))?;
        if !(min..=max).contains(&n) {
            return Err(Refusal::value(
                &self.at(key),
                format!("{n} is outside {min} to {max}"),
            ));
        }
        Ok(n)
    }

    /// Only string fields, each optional, from `keys`.
    fn strings(&self, keys: &[&str]) -> Check {
        self.only(keys)?;
        for key in keys {
            self.opt_str(key)?;
        }
        Ok(())
    }
}

/// Non-blank and at most `max` characters.
fn within(path: &str, s: &str, max: usize) -> Check {
    if s.trim().is_empty() {
        return Err(Refusal::value(path, "must not be empty"));
    }
    let n = s.chars().count();
    if n > max {
        return Err(Refusal::value(
            path,
            format!("has {n} characters; at most {max} are allowed"),
        ));
    }
    Ok(())
}

fn web_url(path: &str, s: &str) -> Check {
    match url::Url::parse(s) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(()),
        _ => Err(Refusal::value(path, format!("{s:?} is not an http(s) URL"))),
    }
}

/// Meta's limits (protocols/meta.md §5.2, §10.1, §10.5), as documented.
mod limit {
    pub const TEXT: usize = 4096;
    pub const CAPTION: usize = 1024;
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
    pub const FLOW_CTA: usize = 30;
    pub const CONTACTS: usize = 257;
    /// Placeholder names, ids and payloads have no documented limit; a bound for sanity.
    pub const ANY: usize = 4096;
}

const MESSAGE_TYPES: [&str; 11] = [
    "text",
    "image",
    "video",
    "audio",
    "document",
    "sticker",
    "location",
    "reaction",
    "contacts",
    "template",
    "interactive",
];

/// What a message body asks for, once it passed the checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct CheckedSend {
    /// `to` or `recipient`, and its value.
    pub to_field: &'static str,
    pub to: String,
    /// The template's name, for a template message.
    pub template: Option<String>,
}

/// Checks a mark-as-read body (§5.2, §11).
pub(super) fn mark_read(body: &Value) -> Check {
    let top = Obj::new(String::new(), body)?;
    top.only(&[
        "messaging_product",
        "status",
        "message_id",
        "typing_indicator",
    ])?;
    top.one_of("messaging_product", &["whatsapp"])?;
    top.one_of("status", &["read"])?;
    top.text("message_id", limit::ANY)?;
    if let Some(typing) = top.opt_obj("typing_indicator")? {
        typing.only(&["type"])?;
        typing.one_of("type", &["text"])?;
    }
    Ok(())
}

/// Checks a message body and says what it sends.
pub(super) fn send(body: &Value) -> Check<CheckedSend> {
    let top = Obj::new(String::new(), body)?;
    top.one_of("messaging_product", &["whatsapp"])?;
    let kind = top.one_of("type", &MESSAGE_TYPES)?;
    top.only(&[
        "messaging_product",
        "recipient_type",
        "to",
        "recipient",
        "type",
        "context",
        "biz_opaque_callback_data",
        kind,
    ])?;
    top.opt_one_of("recipient_type", &["individual"])?;
    let (to_field, to) = match (top.has("to"), top.has("recipient")) {
        (true, true) => {
            return Err(Refusal::invalid(
                "recipient",
                "is given with to; send one of them",
            ));
        }
        (false, false) => return Err(Refusal::missing("to")),
        (true, false) => {
            let to = top.str("to")?;
            let e164 = to.strip_prefix('+').is_some_and(|digits| {
                (7..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
            });
            if !e164 {
                return Err(Refusal::value(
                    "to",
                    format!("{to:?} is not an E.164 number"),
                ));
            }
            ("to", to)
        }
        (false, true) => {
            let bsuid = top.str("recipient")?;
            if !is_bsuid(bsuid) {
                return Err(Refusal::value(
                    "recipient",
                    format!("{bsuid:?} is not a business-scoped user id"),
                ));
            }
            ("recipient", bsuid)
        }
    };
    if let Some(context) = top.opt_obj("context")? {
        if kind == "reaction" {
            return Err(Refusal::invalid(
                "context",
                "is not allowed: a reaction cannot be a contextual reply",
            ));
        }
        context.only(&["message_id"])?;
        context.text("message_id", limit::ANY)?;
    }
    top.opt_str("biz_opaque_callback_data")?;
    let mut template = None;
    match kind {
        "text" => text(&top.obj("text")?)?,
        "image" | "video" | "audio" | "document" | "sticker" => media(&top.obj(kind)?, kind)?,
        "location" => location(&top.obj("location")?)?,
        "reaction" => {
            let r = top.obj("reaction")?;
            r.only(&["message_id", "emoji"])?;
            r.text("message_id", limit::ANY)?;
            // An empty emoji removes the reaction.
            r.str("emoji")?;
        }
        "contacts" => contacts(&top)?,
        "template" => template = Some(self::template(&top.obj("template")?)?),
        _ => interactive(&top.obj("interactive")?)?,
    }
    Ok(CheckedSend {
        to_field,
        to: to.to_owned(),
        template,
    })
}

/// Two capital letters, a dot, then letters, digits and dots (§18: opaque, up to 256).
fn is_bsuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 4
        && b.len() <= 256
        && b[0].is_ascii_uppercase()
        && b[1].is_ascii_uppercase()
        && b[2] == b'.'
        && b[3..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'.')
}

fn text(t: &Obj<'_>) -> Check {
    t.only(&["body", "preview_url"])?;
    t.text("body", limit::TEXT)?;
    if let Some(v) = t.map.get("preview_url")
        && !v.is_boolean()
    {
        return Err(Refusal::invalid(&t.at("preview_url"), "must be a boolean"));
    }
    Ok(())
}

/// A media object: exactly one of `id` and `link`, a caption where the kind takes one, a
/// filename on documents (§5.2).
fn media(m: &Obj<'_>, kind: &str) -> Check {
    let mut allowed = vec!["id", "link"];
    if !matches!(kind, "audio" | "sticker") {
        allowed.push("caption");
    }
    if kind == "document" {
        allowed.push("filename");
    }
    m.only(&allowed)?;
    media_source(m)?;
    m.opt_text("caption", limit::CAPTION)?;
    m.opt_text("filename", limit::ANY)?;
    Ok(())
}

fn media_source(m: &Obj<'_>) -> Check {
    match (m.has("id"), m.has("link")) {
        (true, true) => Err(Refusal::invalid(
            &m.at("link"),
            "is given with id; send one",
        )),
        (false, false) => Err(Refusal::missing(&m.at("id"))),
        (true, false) => m.text("id", limit::ANY).map(drop),
        (false, true) => web_url(&m.at("link"), m.str("link")?),
    }
}

/// A header's media: `{"type": kind, kind: {"id"|"link", "filename" for documents}}`.
fn header_media(h: &Obj<'_>, kind: &str) -> Check {
    h.only(&["type", kind])?;
    let m = h.obj(kind)?;
    let mut allowed = vec!["id", "link"];
    if kind == "document" {
        allowed.push("filename");
    }
    m.only(&allowed)?;
    media_source(&m)?;
    m.opt_text("filename", limit::ANY)?;
    Ok(())
}

fn location(l: &Obj<'_>) -> Check {
    l.only(&["latitude", "longitude", "name", "address"])?;
    l.number("latitude", -90.0, 90.0)?;
    l.number("longitude", -180.0, 180.0)?;
    l.opt_str("name")?;
    l.opt_str("address")?;
    Ok(())
}

/// A contacts message (§10.5): 1 to 257 cards, each with `name.formatted_name`.
fn contacts(top: &Obj<'_>) -> Check {
    for card in top.objects("contacts", 1, limit::CONTACTS)? {
        card.only(&[
            "addresses",
            "birthday",
            "emails",
            "name",
            "org",
            "phones",
            "urls",
        ])?;
        let name = card.obj("name")?;
        name.strings(&[
            "formatted_name",
            "first_name",
            "last_name",
            "middle_name",
            "suffix",
            "prefix",
        ])?;
        name.text("formatted_name", limit::ANY)?;
        for phone in card.opt_objects("phones", limit::ANY)? {
            phone.strings(&["phone", "type", "wa_id"])?;
        }
        for email in card.opt_objects("emails", limit::ANY)? {
            email.strings(&["email", "type"])?;
        }
        for address in card.opt_objects("addresses", limit::ANY)? {
            address.strings(&[
                "street",
                "city",
                "state",
                "zip",
                "country",
                "country_code",
                "type",
            ])?;
        }
        if let Some(org) = card.opt_obj("org")? {
            org.strings(&["company", "department", "title"])?;
        }
        for url in card.opt_objects("urls", limit::ANY)? {
            url.strings(&["url", "type"])?;
        }
        if let Some(birthday) = card.opt_str("birthday")?
            && (birthday.len() != 10
                || chrono::NaiveDate::parse_from_str(birthday, "%Y-%m-%d").is_err())
        {
            return Err(Refusal::value(
                &card.at("birthday"),
                format!("{birthday:?} is not YYYY-MM-DD"),
            ));
        }
    }
    Ok(())
}

/// A template message (§5.2, §13.4); answers its name.
fn template(t: &Obj<'_>) -> Check<String> {
    t.only(&["name", "language", "components"])?;
    let name = t.text("name", limit::ANY)?;
    let language = t.obj("language")?;
    language.only(&["code", "policy"])?;
    language.text("code", limit::ANY)?;
    language.opt_one_of("policy", &["deterministic"])?;
    let mut seen = HashSet::new();
    let mut indexes = HashSet::new();
    for c in t.opt_objects("components", limit::ANY)? {
        let kind = c.one_of("type", &["header", "body", "button"])?;
        if kind != "button" && !seen.insert(kind) {
            return Err(Refusal::value(
                &c.at("type"),
                format!("a template has one {kind} component"),
            ));
        }
        match kind {
            "header" => {
                c.only(&["type", "parameters"])?;
                let p = c.objects("parameters", 1, 1)?;
                template_header(&p[0])?;
            }
            "body" => {
                c.only(&["type", "parameters"])?;
                let params = c.objects("parameters", 1, limit::ANY)?;
                let named = params.iter().filter(|p| p.has("parameter_name")).count();
                if named != 0 && named != params.len() {
                    return Err(Refusal::value(
                        &c.at("parameters"),
                        "mixes named and positional parameters",
                    ));
                }
                for p in &params {
                    body_parameter(p)?;
                }
            }
            _ => {
                c.only(&["type", "sub_type", "index", "parameters"])?;
                let index = c.str("index")?;
                if index.len() != 1 || !index.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(Refusal::value(
                        &c.at("index"),
                        format!("{index:?} is not a button position \"0\" to \"9\""),
                    ));
                }
                if !indexes.insert(index) {
                    return Err(Refusal::value(
                        &c.at("index"),
                        format!("button {index} is given twice"),
                    ));
                }
                let sub_type = c.one_of(
                    "sub_type",
                    &["quick_reply", "url", "copy_code", "catalog", "flow", "mpm"],
                )?;
                let p = c.objects("parameters", 1, 1)?;
                button_parameter(&p[0], sub_type)?;
            }
        }
    }
    Ok(name.to_owned())
}

fn template_header(p: &Obj<'_>) -> Check {
    match p.one_of("type", &["text", "image", "video", "document", "location"])? {
        "text" => {
            p.only(&["type", "text"])?;
            p.text("text", limit::ANY).map(drop)
        }
        "location" => {
            p.only(&["type", "location"])?;
            location(&p.obj("location")?)
        }
        media => header_media(p, media),
    }
}

fn body_parameter(p: &Obj<'_>) -> Check {
    match p.one_of("type", &["text", "currency", "date_time"])? {
        "text" => {
            p.only(&["type", "text", "parameter_name"])?;
            p.text("text", limit::ANY)?;
            if let Some(name) = p.opt_text("parameter_name", limit::ANY)?
                && !name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            {
                return Err(Refusal::value(
                    &p.at("parameter_name"),
                    "has only lowercase letters, digits and underscores",
                ));
            }
            Ok(())
        }
        other => {
            p.only(&["type", other, "parameter_name"])?;
            p.obj(other).map(drop)
        }
    }
}

/// The one parameter of a template button, of the type its sub-type takes (§13.4).
fn button_parameter(p: &Obj<'_>, sub_type: &str) -> Check {
    let (ty, field) = match sub_type {
        "quick_reply" => ("payload", "payload"),
        "url" => ("text", "text"),
        "copy_code" => ("coupon_code", "coupon_code"),
        // Not sent by Switchboard: any object.
        _ => return Ok(()),
    };
    p.one_of("type", &[ty])?;
    p.only(&["type", field])?;
    p.text(field, limit::ANY).map(drop)
}

/// An interactive message (§10.1–10.4).
fn interactive(i: &Obj<'_>) -> Check {
    let kind = i.one_of(
        "type",
        &[
            "button",
            "list",
            "cta_url",
            "flow",
            "location_request_message",
        ],
    )?;
    // A location request shows its body and the button only.
    if kind == "location_request_message" {
        i.only(&["type", "body", "action"])?;
    } else {
        i.only(&["type", "header", "body", "footer", "action"])?;
    }
    let body = i.obj("body")?;
    body.only(&["text"])?;
    let body_max = if kind == "list" {
        limit::LIST_BODY
    } else {
        limit::BODY
    };
    body.text("text", body_max)?;
    if let Some(footer) = i.opt_obj("footer")? {
        footer.only(&["text"])?;
        footer.text("text", limit::FOOTER)?;
    }
    if let Some(header) = i.opt_obj("header")? {
        let types: &[&str] = if kind == "list" {
            &["text"]
        } else {
            &["text", "image", "video", "document"]
        };
        match header.one_of("type", types)? {
            "text" => {
                header.only(&["type", "text"])?;
                header.text("text", limit::HEADER_TEXT)?;
            }
            media => header_media(&header, media)?,
        }
    }
    let action = i.obj("action")?;
    match kind {
        "button" => reply_buttons(&action),
        "list" => list(&action),
        "cta_url" => {
            action.only(&["name", "parameters"])?;
            action.one_of("name", &["cta_url"])?;
            let p = action.obj("parameters")?;
            p.only(&["display_text", "url"])?;
            p.text("display_text", limit::CTA_DISPLAY_TEXT)?;
            web_url(&p.at("url"), p.str("url")?)
        }
        "flow" => flow(&action),
        _ => {
            action.only(&["name"])?;
            action.one_of("name", &["send_location"]).map(drop)
        }
    }
}

fn reply_buttons(action: &Obj<'_>) -> Check {
    action.only(&["buttons"])?;
    let mut titles = HashSet::new();
    for b in action.objects("buttons", 1, limit::BUTTONS)? {
        b.only(&["type", "reply"])?;
        b.one_of("type", &["reply"])?;
        let reply = b.obj("reply")?;
        reply.only(&["id", "title"])?;
        reply.text("id", limit::BUTTON_ID)?;
        let title = reply.text("title", limit::BUTTON_TITLE)?;
        if !titles.insert(title) {
            return Err(Refusal::value(
                &reply.at("title"),
                format!("{title:?} is used twice"),
            ));
        }
    }
    Ok(())
}

fn list(action: &Obj<'_>) -> Check {
    action.only(&["button", "sections"])?;
    action.text("button", limit::LIST_BUTTON)?;
    let sections = action.objects("sections", 1, limit::SECTIONS)?;
    let several = sections.len() > 1;
    let mut ids = HashSet::new();
    let mut rows = 0;
    for s in &sections {
        s.only(&["title", "rows"])?;
        if several {
            s.text("title", limit::SECTION_TITLE)?;
        } else {
            s.opt_text("title", limit::SECTION_TITLE)?;
        }
        for r in s.objects("rows", 1, limit::ROWS)? {
            rows += 1;
            r.only(&["id", "title", "description"])?;
            let id = r.text("id", limit::ROW_ID)?;
            r.text("title", limit::ROW_TITLE)?;
            if r.has("description") {
                let d = r.str("description")?;
                if d.chars().count() > limit::ROW_DESCRIPTION {
                    return Err(Refusal::value(
                        &r.at("description"),
                        format!("is over {} characters", limit::ROW_DESCRIPTION),
                    ));
                }
            }
            if !ids.insert(id) {
                return Err(Refusal::value(&r.at("id"), format!("{id:?} is used twice")));
            }
        }
    }
    if rows > limit::ROWS {
        return Err(Refusal::value(
            &action.at("sections"),
            format!("has {rows} rows; at most {} are allowed", limit::ROWS),
        ));
    }
    Ok(())
}

fn flow(action: &Obj<'_>) -> Check {
    action.only(&["name", "parameters"])?;
    action.one_of("name", &["flow"])?;
    let p = action.obj("parameters")?;
    p.only(&[
        "flow_message_version",
        "flow_token",
        "flow_id",
        "flow_name",
        "flow_cta",
        "flow_action",
        "flow_action_payload",
        "mode",
    ])?;
    if p.str("flow_message_version")? != "3" {
        return Err(Refusal::value(
            &p.at("flow_message_version"),
            "must be \"3\"",
        ));
    }
    match (p.has("flow_id"), p.has("flow_name")) {
        (true, true) => {
            return Err(Refusal::invalid(
                &p.at("flow_name"),
                "is given with flow_id; send one of them",
            ));
        }
        (false, false) => return Err(Refusal::missing(&p.at("flow_id"))),
        (true, false) => p.text("flow_id", limit::ANY).map(drop)?,
        (false, true) => p.text("flow_name", limit::ANY).map(drop)?,
    }
    p.text("flow_cta", limit::FLOW_CTA)?;
    p.opt_text("flow_token", limit::ANY)?;
    p.opt_one_of("mode", &["draft", "published"])?;
    let action_kind = p
        .opt_one_of("flow_action", &["navigate", "data_exchange"])?
        .unwrap_or("navigate");
    if let Some(payload) = p.opt_obj("flow_action_payload")? {
        if action_kind != "navigate" {
            return Err(Refusal::value(
                &p.at("flow_action_payload"),
                "applies to flow_action navigate only",
            ));
        }
        payload.only(&["screen", "data"])?;
        payload.text("screen", limit::ANY)?;
        if let Some(data) = payload.map.get("data")
            && data.as_object().is_none_or(serde_json::Map::is_empty)
        {
            return Err(Refusal::value(
                &payload.at("data"),
                "must be a non-empty object",
            ));
        }
    }
    Ok(())
}

/// A template create body (meta.md §13.1-§13.2): `name` of lower-case letters, digits and
/// `_`; `language`; `category` MARKETING, UTILITY or AUTHENTICATION; `parameter_format`
/// `positional` or `named` in lower case; components of known types with one BODY whose
/// every placeholder has a sample; buttons of known types with what each needs.
pub(super) fn template_create(body: &Value) -> Result<(), String> {
    let obj = body.as_object().ok_or("the body is not an object")?;
    for key in obj.keys() {
        if ![
            "name",
            "language",
            "category",
            "parameter_format",
            "components",
        ]
        .contains(&key.as_str())
        {
            return Err(format!("unknown field {key}"));
        }
    }
    let name = body["name"].as_str().ok_or("name is required")?;
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err("name must be lower-case letters, digits and _".into());
    }
    body["language"]
        .as_str()
        .filter(|l| !l.is_empty())
        .ok_or("language is required")?;
    if !matches!(
        body["category"].as_str(),
        Some("MARKETING" | "UTILITY" | "AUTHENTICATION")
    ) {
        return Err("category must be MARKETING, UTILITY or AUTHENTICATION".into());
    }
    let format = body["parameter_format"].as_str().unwrap_or("positional");
    if !matches!(format, "positional" | "named") {
        return Err("parameter_format must be positional or named".into());
    }
    let components = body["components"]
        .as_array()
        .ok_or("components is required")?;
    let mut bodies = 0;
    for c in components {
        match c["type"].as_str() {
            Some("BODY") => {
                bodies += 1;
                let text = c["text"].as_str().ok_or("BODY needs text")?;
                let keys = switchboard_core::templates::placeholders(text);
                if keys.is_empty() {
                    continue;
                }
                let given = if format == "named" {
                    c["example"]["body_text_named_params"]
                        .as_array()
                        .map_or(0, |p| {
                            p.iter()
                                .filter(|p| {
                                    p["param_name"]
                                        .as_str()
                                        .is_some_and(|n| keys.iter().any(|k| k == n))
                                        && p["example"].as_str().is_some()
                                })
                                .count()
                        })
                } else {
                    c["example"]["body_text"][0].as_array().map_or(0, Vec::len)
                };
                if given != keys.len() {
                    return Err(format!(
                        "BODY has {} parameters but {given} examples",
                        keys.len()
                    ));
                }
            }
            Some("HEADER") => {
                if c["format"] == "TEXT" && c["text"].as_str().is_none() {
                    return Err("a TEXT HEADER needs text".into());
                }
            }
            Some("FOOTER") => {
                c["text"].as_str().ok_or("FOOTER needs text")?;
            }
            Some("BUTTONS") => {
                for b in c["buttons"].as_array().ok_or("BUTTONS needs buttons")? {
                    let needs = match b["type"].as_str() {
                        Some("QUICK_REPLY") => "text",
                        Some("URL") => "url",
                        Some("PHONE_NUMBER") => "phone_number",
                        Some("COPY_CODE") => "example",
                        _ => return Err(format!("unknown button type {}", b["type"])),
                    };
                    if b[needs].as_str().is_none() {
                        return Err(format!("a {} button needs {needs}", b["type"]));
                    }
                }
            }
            _ => return Err(format!("unknown component type {}", c["type"])),
        }
    }
    if bodies != 1 {
        return Err("a template needs one BODY component".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn base(kind: &str, payload: Value) -> Value {
        json!({"messaging_product": "whatsapp", "recipient_type": "individual",
               "to": "+16505551234", "type": kind, kind: payload})
    }

    fn code(body: &Value) -> u32 {
        send(body).unwrap_err().code
    }

    #[test]
    fn the_documented_examples_pass() {
        // protocols/meta.md §10.2, §10.3, §10.4, §10.5, §13.4, §12.1.
        for body in [
            base(
                "interactive",
                json!({"type": "button",
                "header": {"type": "image", "image": {"id": "2762702990552401"}},
                "body": {"text": "Hi Pablo!"}, "footer": {"text": "Lucky Shrub"},
                "action": {"buttons": [
                    {"type": "reply", "reply": {"id": "change-button", "title": "Change"}},
                    {"type": "reply", "reply": {"id": "cancel-button", "title": "Cancel"}}]}}),
            ),
            base(
                "interactive",
                json!({"type": "list",
                "header": {"type": "text", "text": "Choose Shipping Option"},
                "body": {"text": "Which shipping option do you prefer?"},
                "action": {"button": "Shipping Options", "sections": [
                    {"title": "I want it ASAP!", "rows": [
                        {"id": "priority_express", "title": "Priority Mail Express",
                         "description": "Next Day to 2 Days"}]},
                    {"title": "I can wait a bit", "rows": [
                        {"id": "media_mail", "title": "Media Mail"}]}]}}),
            ),
            base(
                "interactive",
                json!({"type": "cta_url",
                "header": {"type": "image", "image": {"link": "https://www.luckyshrub.com/a.png"}},
                "body": {"text": "Tap the button below to see available dates."},
                "action": {"name": "cta_url", "parameters": {
                    "display_text": "See Dates", "url": "https://www.luckyshrub.com?clickID=kq"}},
                "footer": {"text": "Dates subject to change."}}),
            ),
            base(
                "interactive",
                json!({"type": "location_request_message",
                "body": {"text": "Let's start with your pickup."},
                "action": {"name": "send_location"}}),
            ),
            base(
                "interactive",
                json!({"type": "flow",
                "header": {"type": "text", "text": "Flow message header"},
                "body": {"text": "Flow message body"},
                "footer": {"text": "Flow message footer"},
                "action": {"name": "flow", "parameters": {
                    "flow_message_version": "3", "flow_token": "AQAAAAACS5FpgQ_cAAAAAD0QI3s.",
                    "flow_id": "123456", "flow_cta": "Book!", "flow_action": "navigate",
                    "flow_action_payload": {"screen": "<SCREEN_NAME>",
                                            "data": {"product_name": "name"}}}}}),
            ),
            base(
                "contacts",
                json!([{
                "addresses": [{"street": "1 Lucky Shrub Way", "city": "Menlo Park", "state": "CA",
                    "zip": "94025", "country": "United States", "country_code": "US",
                    "type": "Office"}],
                "birthday": "1999-01-23",
                "emails": [{"email": "bjohnson@luckyshrub.com", "type": "Work"}],
                "name": {"formatted_name": "Barbara J. Johnson", "first_name": "Barbara",
                    "last_name": "Johnson", "middle_name": "Joana", "suffix": "Esq.",
                    "prefix": "Dr."},
                "org": {"company": "Lucky Shrub", "department": "Legal", "title": "Lead Counsel"},
                "phones": [{"phone": "+16505559999", "type": "Home", "wa_id": "19175559999"}],
                "urls": [{"url": "https://www.luckyshrub.com", "type": "Company"}]}]),
            ),
            base(
                "template",
                json!({"name": "order_update", "language": {"code": "en_US"},
                "components": [
                    {"type": "header", "parameters": [
                        {"type": "image", "image": {"link": "https://example.com/banner.jpg"}}]},
                    {"type": "body", "parameters": [{"type": "text", "text": "Pablo"},
                        {"type": "currency", "currency": {"fallback_value": "$10.00",
                            "code": "USD", "amount_1000": 10000}}]},
                    {"type": "button", "sub_type": "quick_reply", "index": "0",
                     "parameters": [{"type": "payload", "payload": "STOP_PROMOS"}]},
                    {"type": "button", "sub_type": "url", "index": "1",
                     "parameters": [{"type": "text", "text": "860198"}]},
                    {"type": "button", "sub_type": "copy_code", "index": "2",
                     "parameters": [{"type": "coupon_code", "coupon_code": "SUMMER20"}]}]}),
            ),
            json!({"messaging_product": "whatsapp", "recipient_type": "individual",
                   "recipient": "US.13491208655302741918", "type": "text",
                   "text": {"body": "Your order has shipped."}}),
        ] {
            assert_eq!(send(&body).map(drop), Ok(()), "{body}");
        }
        let bsuid = json!({"messaging_product": "whatsapp", "recipient": "US.1349", "type": "text",
                           "text": {"body": "x"}});
        assert_eq!(send(&bsuid).unwrap().to_field, "recipient");
    }

    #[test]
    fn wrong_bodies_get_meta_codes() {
        // Missing: 131008.
        assert_eq!(
            code(&json!({"messaging_product": "whatsapp", "type": "text", "text": {"body": "x"}})),
            131_008
        );
        assert_eq!(code(&base("text", json!({}))), 131_008);
        // Unknown field, wrong type, wrong enum: 100.
        assert_eq!(code(&base("text", json!({"body": "x", "bdy": "y"}))), 100);
        assert_eq!(code(&base("text", json!({"body": 5}))), 100);
        assert_eq!(code(&base("carousel", json!({}))), 100);
        let mut both = base("text", json!({"body": "x"}));
        both["recipient"] = json!("US.1");
        assert_eq!(code(&both), 100);
        let mut other_object = base("text", json!({"body": "x"}));
        other_object["image"] = json!({"id": "1"});
        assert_eq!(code(&other_object), 100);
        let mut product = base("text", json!({"body": "x"}));
        product["messaging_product"] = json!("messenger");
        assert_eq!(code(&product), 100);
        // Out of range: 131009.
        assert_eq!(
            code(&base("text", json!({"body": "x".repeat(4097)}))),
            131_009
        );
        let mut no_plus = base("text", json!({"body": "x"}));
        no_plus["to"] = json!("16505551234");
        assert_eq!(code(&no_plus), 131_009);
    }

    #[test]
    fn interactive_limits_are_meta_s() {
        let buttons = |n: usize, title: &str| {
            let list: Vec<Value> = (0..n)
                .map(|i| {
                    json!({"type": "reply", "reply": {"id": format!("b{i}"),
                                "title": format!("{title}{i}")}})
                })
                .collect();
            base(
                "interactive",
                json!({"type": "button", "body": {"text": "b"},
                                        "action": {"buttons": list}}),
            )
        };
        assert!(send(&buttons(3, "t")).is_ok());
        assert_eq!(code(&buttons(4, "t")), 131_009);
        assert_eq!(code(&buttons(0, "t")), 131_009);
        assert_eq!(
            code(&buttons(1, &"x".repeat(20))),
            131_009,
            "21 with the digit"
        );
        let rows = |n: usize| -> Vec<Value> {
            (0..n)
                .map(|i| json!({"id": format!("r{i}"), "title": "t"}))
                .collect()
        };
        let list = |sections: Value| {
            base(
                "interactive",
                json!({"type": "list", "body": {"text": "b"},
                "action": {"button": "Open", "sections": sections}}),
            )
        };
        assert!(send(&list(json!([{"rows": rows(10)}]))).is_ok());
        assert_eq!(
            code(&list(json!([{"title": "A", "rows": rows(6)},
                              {"title": "B", "rows": [{"id": "x", "title": "y"}, {"id": "z", "title": "w"},
                                                      {"id": "v", "title": "u"}, {"id": "s", "title": "q"},
                                                      {"id": "p", "title": "o"}]}]))),
            131_009,
            "11 rows across sections"
        );
        assert_eq!(
            code(&list(
                json!([{"rows": rows(1)}, {"title": "B", "rows": [{"id": "x", "title": "y"}]}])
            )),
            131_008,
            "several sections need titles"
        );
        assert_eq!(
            code(&list(json!([{"title": "x".repeat(25), "rows": rows(1)}]))),
            131_009
        );
        assert_eq!(
            code(&list(
                json!([{"rows": [{"id": "r", "title": "t", "description": "d".repeat(73)}]}])
            )),
            131_009
        );
        let media_header = base(
            "interactive",
            json!({"type": "list",
            "header": {"type": "image", "image": {"id": "1"}}, "body": {"text": "b"},
            "action": {"button": "Open", "sections": [{"rows": rows(1)}]}}),
        );
        assert_eq!(code(&media_header), 100);
        let long_header = base(
            "interactive",
            json!({"type": "button",
            "header": {"type": "text", "text": "h".repeat(61)}, "body": {"text": "b"},
            "action": {"buttons": [{"type": "reply", "reply": {"id": "a", "title": "A"}}]}}),
        );
        assert_eq!(code(&long_header), 131_009);
        let cta = |text: &str| {
            base(
                "interactive",
                json!({"type": "cta_url", "body": {"text": "b"},
            "action": {"name": "cta_url", "parameters": {"display_text": text, "url": "https://x.test"}}}),
            )
        };
        assert!(send(&cta("See Dates")).is_ok());
        assert_eq!(code(&cta(&"d".repeat(21))), 131_009);
        let footer_on_location = base(
            "interactive",
            json!({"type": "location_request_message",
            "body": {"text": "b"}, "footer": {"text": "f"}, "action": {"name": "send_location"}}),
        );
        assert_eq!(code(&footer_on_location), 100);
    }

    #[test]
    fn flows_name_one_flow_at_version_three() {
        let flow = |params: Value| {
            base(
                "interactive",
                json!({"type": "flow", "body": {"text": "b"},
            "action": {"name": "flow", "parameters": params}}),
            )
        };
        assert!(
            send(&flow(
                json!({"flow_message_version": "3", "flow_name": "n", "flow_cta": "Go"})
            ))
            .is_ok()
        );
        assert_eq!(
            code(&flow(
                json!({"flow_message_version": "3", "flow_id": "1", "flow_name": "n", "flow_cta": "Go"})
            )),
            100
        );
        assert_eq!(
            code(&flow(
                json!({"flow_message_version": "3", "flow_cta": "Go"})
            )),
            131_008
        );
        assert_eq!(
            code(&flow(
                json!({"flow_message_version": "2", "flow_id": "1", "flow_cta": "Go"})
            )),
            131_009
        );
        assert_eq!(
            code(&flow(
                json!({"flow_message_version": 3, "flow_id": "1", "flow_cta": "Go"})
            )),
            100
        );
        assert_eq!(
            code(&flow(
                json!({"flow_message_version": "3", "flow_id": "1", "flow_cta": "Go",
                "flow_action": "data_exchange", "flow_action_payload": {"screen": "S"}})
            )),
            131_009
        );
    }

    #[test]
    fn templates_need_a_language_code_and_string_button_indexes() {
        let t = |template: Value| base("template", template);
        assert_eq!(code(&t(json!({"name": "n"}))), 131_008);
        assert_eq!(code(&t(json!({"name": "n", "language": {}}))), 131_008);
        assert_eq!(code(&t(json!({"name": "n", "language": "en"}))), 100);
        let button = |index: Value, param: Value| {
            t(json!({"name": "n", "language": {"code": "en"},
            "components": [{"type": "button", "sub_type": "copy_code", "index": index,
                            "parameters": [param]}]}))
        };
        assert!(
            send(&button(
                json!("2"),
                json!({"type": "coupon_code", "coupon_code": "S"})
            ))
            .is_ok()
        );
        assert_eq!(
            code(&button(
                json!(2),
                json!({"type": "coupon_code", "coupon_code": "S"})
            )),
            100
        );
        assert_eq!(
            code(&button(
                json!("10"),
                json!({"type": "coupon_code", "coupon_code": "S"})
            )),
            131_009
        );
        assert_eq!(
            code(&button(json!("0"), json!({"type": "text", "text": "S"}))),
            100
        );
        let mixed = t(
            json!({"name": "n", "language": {"code": "en"}, "components": [{"type": "body",
            "parameters": [{"type": "text", "text": "a", "parameter_name": "x"}, {"type": "text", "text": "b"}]}]}),
        );
        assert_eq!(code(&mixed), 131_009);
    }

    #[test]
    fn contacts_need_a_formatted_name() {
        assert_eq!(
            code(&base("contacts", json!([{"name": {"first_name": "A"}}]))),
            131_008
        );
        assert_eq!(code(&base("contacts", json!([]))), 131_009);
        assert_eq!(
            code(&base(
                "contacts",
                json!([{"name": {"formatted_name": "A"}, "nickname": "a"}])
            )),
            100
        );
        assert_eq!(
            code(&base(
                "contacts",
                json!([{"name": {"formatted_name": "A"}, "birthday": "23/01/1999"}])
            )),
            131_009
        );
    }

    #[test]
    fn mark_read_bodies() {
        let ok = json!({"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.1",
                        "typing_indicator": {"type": "text"}});
        assert_eq!(mark_read(&ok), Ok(()));
        let mut wrong = ok.clone();
        wrong["typing_indicator"] = json!({"type": "audio"});
        assert_eq!(mark_read(&wrong).unwrap_err().code, 100);
        let mut wrong = ok.clone();
        wrong["status"] = json!("delivered");
        assert_eq!(mark_read(&wrong).unwrap_err().code, 100);
        let mut wrong = ok;
        wrong.as_object_mut().unwrap().remove("message_id");
        assert_eq!(mark_read(&wrong).unwrap_err().code, 131_008);
    }
}

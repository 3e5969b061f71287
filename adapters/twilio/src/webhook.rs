//! Twilio's webhooks: routing keys, signature verification, and parsing inbound messages
//! and status callbacks into canonical events.
//!
//! Decisions where Twilio's documentation is silent:
//! - One form is one event. A form that names no connected account, an unknown
//!   `MessageStatus`, or a sender that is neither a phone number nor a BSUID becomes a
//!   [`ParseProblem`] carrying the raw form, never an error or a panic.
//! - A bad single field drops only that field (the raw form keeps it): an unreadable
//!   `WaId` or `ExternalUserId` is left out of the contact; unreadable coordinates turn the
//!   location into [`Unsupported`] `location`, so the message is still stored.
//! - The media caption is `Body`: with media, `Body` becomes the first item's caption
//!   rather than `text`. A button or list reply whose `Body` repeats its title has no
//!   `text`. A message with nothing readable becomes [`Unsupported`] with Twilio's
//!   `MessageType`.
//! - Twilio sends no event time, so events are stamped with the time of parsing.

use std::sync::Arc;

use chrono::Utc;
use serde_json::Value;
use switchboard_core::{
    AccountContext, Bsuid, ContactIdentity, Content, Direction, EventKind, Forwarded, InboundEvent,
    InboundMessage, InteractiveKind, InteractiveReply, Location, MediaItem, MediaKind,
    ParseProblem, ParsedWebhook, PhoneNumber, ProviderError, Referral, StatusUpdate, Unsupported,
    WebhookError, WebhookReply, WebhookRequest,
};

use crate::config::{CHANNEL, CRED_ACCOUNT_SID, CRED_AUTH_TOKEN, TwilioConfig};
use crate::signature::{SIGNATURE_HEADER, validate_json_body, validate_signature};
use crate::wire::{Form, map_status};

/// The TwiML answer Twilio expects: an empty `<Response>` (no reply message).
pub const EMPTY_TWIML: &str = r#"<?xml version="1.0" encoding="UTF-8"?><Response></Response>"#;

/// Fields without which a form is not a Twilio messaging webhook.
const REQUIRED: [&str; 4] = ["AccountSid", "From", "To", "MessageSid"];

/// The form a request carries: the query of a GET, the body otherwise. Decoded once per
/// request: routing, verifying and parsing all read it.
fn request_form(req: &WebhookRequest) -> Arc<Form> {
    req.decoded(|req| {
        if req.method == http::Method::GET {
            Form::parse(req.query.as_deref().unwrap_or("").as_bytes())
        } else {
            Form::parse(&req.body)
        }
    })
}

fn is_json(req: &WebhookRequest) -> bool {
    req.header("content-type").is_some_and(|ct| {
        ct.trim_start()
            .to_ascii_lowercase()
            .starts_with("application/json")
    })
}

/// The form, checked for the fields every Twilio messaging webhook has.
fn checked_form(req: &WebhookRequest) -> Result<Arc<Form>, WebhookError> {
    if is_json(req) {
        return Err(WebhookError::malformed(
            CHANNEL.as_str(),
            "Twilio messaging webhooks are forms, not JSON",
        ));
    }
    let form = request_form(req);
    let missing: Vec<&str> = REQUIRED
        .iter()
        .copied()
        .filter(|k| form.get_nonempty(k).is_none())
        .collect();
    if !missing.is_empty() {
        return Err(WebhookError::malformed(
            CHANNEL.as_str(),
            format!("the form lacks {}", missing.join(", ")),
        ));
    }
    Ok(form)
}

/// A `To`/`From` value: a phone number, a BSUID, or neither.
enum Address {
    Phone(PhoneNumber),
    Bsuid(Bsuid),
    Unreadable,
}

fn strip_channel(value: &str) -> &str {
    let v = value.trim();
    v.get(..9)
        .filter(|p| p.eq_ignore_ascii_case("whatsapp:"))
        .map_or(v, |_| &v[9..])
}

fn address(value: &str) -> Address {
    let bare = strip_channel(value);
    if Bsuid::looks_like(bare) {
        return Bsuid::parse(bare).map_or(Address::Unreadable, Address::Bsuid);
    }
    PhoneNumber::parse(bare).map_or(Address::Unreadable, Address::Phone)
}

fn phone_of(value: Option<&str>) -> Option<PhoneNumber> {
    match address(value?) {
        Address::Phone(p) => Some(p),
        _ => None,
    }
}

/// The E.164 numbers a webhook names, business first: `From` for status callbacks, `To`
/// otherwise. BSUIDs are skipped (accounts are keyed by their number).
///
/// # Errors
/// [`WebhookError::Malformed`] when the body is not a Twilio form or names no number.
pub fn routing_keys(req: &WebhookRequest) -> Result<Vec<String>, WebhookError> {
    let form = checked_form(req)?;
    let to = phone_of(form.get("To"));
    let from = phone_of(form.get("From"));
    let ordered = if form.is_status_callback() {
        [from, to]
    } else {
        [to, from]
    };
    let mut keys: Vec<String> = Vec::with_capacity(2);
    for p in ordered.into_iter().flatten() {
        let k = p.to_string();
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    if keys.is_empty() {
        return Err(WebhookError::malformed(
            CHANNEL.as_str(),
            "neither To nor From is a phone number",
        ));
    }
    Ok(keys)
}

/// Verifies `X-Twilio-Signature` with the account's `auth_token`, over the configured public
/// URL plus the raw path and query; then checks that the form's `AccountSid` is the
/// account's. Nothing but the form pairs is read before the signature passes.
///
/// # Errors
/// `MissingSignature`, `BadSignature`, or `UnknownAccount` when a correctly signed form
/// names another Twilio account.
pub fn verify(
    config: &TwilioConfig,
    req: &WebhookRequest,
    account: &AccountContext,
) -> Result<(), WebhookError> {
    let Some(header) = req.headers.get(SIGNATURE_HEADER) else {
        return Err(WebhookError::MissingSignature);
    };
    let signature = header.to_str().map_err(|_| WebhookError::BadSignature)?;
    let token = account
        .credentials
        .get(CRED_AUTH_TOKEN)
        .filter(|t| !t.is_empty())
        .ok_or(WebhookError::BadSignature)?;
    let url = config.signed_url(&req.path, req.query.as_deref());

    if is_json(req) {
        if !validate_json_body(token, &url, &req.body, signature) {
            return Err(WebhookError::BadSignature);
        }
        let sid = serde_json::from_slice::<Value>(&req.body)
            .ok()
            .and_then(|v| v.get("AccountSid")?.as_str().map(str::to_owned));
        return check_account_sid(sid.as_deref(), account);
    }

    let form = request_form(req);
    // A GET's parameters are in the query, which is part of the signed URL already.
    let ok = if req.method == http::Method::GET {
        validate_signature::<&str, &str>(token, &url, &[], signature)
    } else {
        validate_signature(token, &url, form.pairs(), signature)
    };
    if !ok {
        return Err(WebhookError::BadSignature);
    }
    check_account_sid(form.get("AccountSid"), account)
}

fn check_account_sid(sid: Option<&str>, account: &AccountContext) -> Result<(), WebhookError> {
    match (sid, account.credentials.get(CRED_ACCOUNT_SID)) {
        (Some(got), Some(want)) if got == want => Ok(()),
        _ => Err(WebhookError::UnknownAccount),
    }
}

/// The reply Twilio expects to an accepted webhook.
pub fn reply() -> WebhookReply {
    WebhookReply {
        status: 200,
        content_type: "text/xml",
        body: bytes::Bytes::from_static(EMPTY_TWIML.as_bytes()),
    }
}

/// Parses a verified webhook into one event (or one problem).
///
/// # Errors
/// [`WebhookError::Malformed`] when the body is not a Twilio messaging form.
pub fn parse(
    config: &TwilioConfig,
    req: &WebhookRequest,
    accounts: &[&AccountContext],
) -> Result<ParsedWebhook, WebhookError> {
    let form = checked_form(req)?;
    Ok(parse_form(config, &req.path, &form, accounts))
}

/// [`parse`] for an already-decoded form (also used by the benchmark).
pub fn parse_form(
    config: &TwilioConfig,
    path: &str,
    form: &Form,
    accounts: &[&AccountContext],
) -> ParsedWebhook {
    let raw = form.to_json();
    let to = form.get("To").unwrap_or("");
    let from = form.get("From").unwrap_or("");
    let to_phone = phone_of(Some(to));
    let from_phone = phone_of(Some(from));
    let owner = |p: &Option<PhoneNumber>| {
        p.as_ref()
            .and_then(|p| accounts.iter().find(|a| a.address == *p).copied())
    };
    let mut out = ParsedWebhook::default();
    let problem = |routing_key: Option<String>, detail: String, raw: Value| ParseProblem {
        routing_key,
        detail,
        raw,
    };
    let message_sid = form.get("MessageSid").unwrap_or("").to_owned();

    if form.is_status_callback() {
        let Some(account) = owner(&from_phone).or_else(|| owner(&to_phone)) else {
            out.problems.push(problem(
                None,
                "status callback for no connected account".into(),
                raw,
            ));
            return out;
        };
        match status_update(config, path, form) {
            Ok(update) => {
                let mut event_key =
                    format!("{message_sid}:{}", form.get("MessageStatus").unwrap_or(""));
                if let Some(ev) = form.get_nonempty("EventType") {
                    event_key.push(':');
                    event_key.push_str(ev);
                }
                out.events.push(InboundEvent {
                    routing_key: account.routing_key.clone(),
                    event_key,
                    kind: EventKind::Status(update),
                    raw,
                });
            }
            Err(detail) => {
                out.problems
                    .push(problem(Some(account.routing_key.clone()), detail, raw))
            }
        }
        return out;
    }

    let (account, direction, person) = if let Some(a) = owner(&to_phone) {
        (a, Direction::Inbound, from)
    } else if let Some(a) = owner(&from_phone) {
        (a, Direction::Echo, to)
    } else {
        out.problems.push(problem(
            to_phone.map(|p| p.to_string()),
            "message for no connected account".into(),
            raw,
        ));
        return out;
    };
    match inbound_message(form, direction, person) {
        Ok(message) => out.events.push(InboundEvent {
            routing_key: account.routing_key.clone(),
            event_key: message_sid,
            kind: EventKind::Message(message),
            raw,
        }),
        Err(detail) => out
            .problems
            .push(problem(Some(account.routing_key.clone()), detail, raw)),
    }
    out
}

/// The person of a message: `person` is `From` (inbound) or `To` (echo).
fn contact(form: &Form, direction: Direction, person: &str) -> Result<ContactIdentity, String> {
    let mut c = ContactIdentity::default();
    match address(person) {
        Address::Phone(p) => c.phone = Some(p),
        Address::Bsuid(b) => c.bsuid = Some(b),
        Address::Unreadable => {}
    }
    // Profile name and WaId describe the sender, which is the business in an echo.
    if direction == Direction::Inbound {
        c.profile_name = form.get_nonempty("ProfileName").map(str::to_owned);
        c.wa_id = form
            .get_nonempty("WaId")
            .and_then(|w| PhoneNumber::from_wa_id(w).ok());
    }
    if c.bsuid.is_none() {
        c.bsuid = form
            .get_nonempty("ExternalUserId")
            .and_then(|b| Bsuid::parse(b).ok());
    }
    if c.is_known() {
        Ok(c)
    } else {
        Err("the sender is neither a phone number nor a business-scoped user id".to_owned())
    }
}

fn inbound_message(
    form: &Form,
    direction: Direction,
    person: &str,
) -> Result<InboundMessage, String> {
    let contact = contact(form, direction, person)?;
    Ok(InboundMessage {
        provider_message_id: form.get("MessageSid").unwrap_or("").to_owned(),
        direction,
        contact,
        timestamp: Utc::now(),
        content: content(form),
        reply_to: form
            .get_nonempty("OriginalRepliedMessageSid")
            .map(str::to_owned),
        forwarded: forwarded(form),
        referral: referral(form),
        opt: switchboard_core::OptChange::ByKeyword,
    })
}

fn is_true(v: Option<&str>) -> bool {
    v.is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

fn forwarded(form: &Form) -> Option<Forwarded> {
    let frequently = is_true(form.get("FrequentlyForwarded"));
    (frequently || is_true(form.get("Forwarded"))).then_some(Forwarded { frequently })
}

fn referral(form: &Form) -> Option<Referral> {
    let f = |k: &str| form.get_nonempty(k).map(str::to_owned);
    let r = Referral {
        source_type: f("ReferralSourceType"),
        source_id: f("ReferralSourceId"),
        source_url: f("ReferralSourceUrl"),
        headline: f("ReferralHeadline"),
        body: f("ReferralBody"),
        media_type: f("ReferralMediaContentType"),
        media_url: f("ReferralMediaUrl"),
        media_id: f("ReferralMediaId"),
        thumbnail_url: None,
        ctwa_clid: f("ReferralCtwaClid"),
        welcome_message: None,
    };
    (r != Referral::default()).then_some(r)
}

fn content(form: &Form) -> Content {
    let mut c = Content {
        media: media(form),
        ..Content::default()
    };
    let body = form.get_nonempty("Body").map(str::to_owned);

    match (
        form.get_nonempty("Latitude"),
        form.get_nonempty("Longitude"),
    ) {
        (None, None) => {}
        (lat, lon) => match coordinates(lat, lon) {
            Some((latitude, longitude)) => {
                c.location = Some(Location {
                    latitude,
                    longitude,
                    name: form.get_nonempty("Label").map(str::to_owned),
                    address: form.get_nonempty("Address").map(str::to_owned),
                    url: None,
                });
            }
            None => {
                c.unsupported = Some(Unsupported {
                    provider_type: "location".into(),
                    detail: Some("unreadable Latitude/Longitude".into()),
                    errors: Vec::new(),
                });
            }
        },
    }

    c.interactive = interactive(form);
    match (&mut c, body) {
        (_, None) => {}
        (c, Some(body)) if !c.media.is_empty() => {
            if let Some(first) = c.media.first_mut() {
                first.caption = Some(body);
            }
        }
        (c, Some(body)) => {
            let repeats_title = c
                .interactive
                .as_ref()
                .is_some_and(|i| i.title.as_deref() == Some(body.as_str()));
            if !repeats_title {
                c.text = Some(body);
            }
        }
    }

    if c.is_empty() {
        c.unsupported = Some(Unsupported {
            provider_type: form
                .get_nonempty("MessageType")
                .unwrap_or("unknown")
                .to_owned(),
            detail: None,
            errors: Vec::new(),
        });
    }
    c
}

fn coordinates(lat: Option<&str>, lon: Option<&str>) -> Option<(f64, f64)> {
    let lat: f64 = lat?.trim().parse().ok()?;
    let lon: f64 = lon?.trim().parse().ok()?;
    ((-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon)).then_some((lat, lon))
}

/// `MediaUrl{N}` items in the order of N (not of the form), with `MediaContentType{N}`.
fn media(form: &Form) -> Vec<MediaItem> {
    let mut indexed: Vec<(usize, &str)> = form
        .pairs()
        .iter()
        .filter_map(|(k, v)| {
            let n = k.strip_prefix("MediaUrl")?;
            let n: usize = n.parse().ok()?;
            (!v.trim().is_empty()).then_some((n, v.as_str()))
        })
        .collect();
    indexed.sort_by_key(|(n, _)| *n);
    indexed.dedup_by_key(|(n, _)| *n);
    indexed
        .into_iter()
        .map(|(n, url)| {
            let mime = form
                .get_nonempty(&format!("MediaContentType{n}"))
                .map(str::to_owned);
            let kind = mime
                .as_deref()
                .map_or(MediaKind::Document, MediaKind::from_mime);
            MediaItem {
                mime_type: mime,
                ..MediaItem::from_url(kind, url)
            }
        })
        .collect()
}

fn json_or_string(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.to_owned()))
}

fn str_field(v: &Value, k: &str) -> Option<String> {
    v.get(k).and_then(Value::as_str).map(str::to_owned)
}

/// Button, list and Flow replies. `FlowData` wins over `InteractiveData`, which wins over
/// the plain `ButtonPayload`/`ButtonText` of a quick reply.
fn interactive(form: &Form) -> Option<InteractiveReply> {
    let payload = form.get_nonempty("ButtonPayload").map(str::to_owned);
    let button_text = form.get_nonempty("ButtonText").map(str::to_owned);

    if let Some(flow) = form.get_nonempty("FlowData") {
        return Some(InteractiveReply {
            kind: InteractiveKind::FlowReply,
            id: payload,
            title: button_text,
            description: None,
            data: Some(json_or_string(flow)),
        });
    }
    if let Some(data) = form.get_nonempty("InteractiveData") {
        let value = json_or_string(data);
        // Accept Meta's shape (`{"type":"list_reply","list_reply":{id,title,description}}`)
        // and a flat `{id,title,description}`; anything else is kept as data.
        let ty = value.get("type").and_then(Value::as_str).unwrap_or("");
        let (kind, inner) = if let Some(inner) = value.get("list_reply") {
            (InteractiveKind::ListReply, inner)
        } else if let Some(inner) = value.get("button_reply") {
            (InteractiveKind::ButtonReply, inner)
        } else if let Some(inner) = value.get("nfm_reply") {
            (InteractiveKind::FlowReply, inner)
        } else if ty == "list_reply" || value.get("description").is_some() {
            (InteractiveKind::ListReply, &value)
        } else {
            (InteractiveKind::ButtonReply, &value)
        };
        return Some(InteractiveReply {
            kind,
            id: str_field(inner, "id").or(payload),
            title: str_field(inner, "title").or(button_text),
            description: str_field(inner, "description"),
            data: Some(value.clone()),
        });
    }
    if payload.is_some() || button_text.is_some() {
        return Some(InteractiveReply {
            kind: InteractiveKind::TemplateButton,
            id: payload,
            title: button_text,
            description: None,
            data: None,
        });
    }
    None
}

fn status_update(config: &TwilioConfig, path: &str, form: &Form) -> Result<StatusUpdate, String> {
    let raw_status = form.get("MessageStatus").unwrap_or("");
    let status =
        map_status(raw_status).ok_or_else(|| format!("unknown MessageStatus {raw_status:?}"))?;
    let error = form.get_nonempty("ErrorCode").map(|code| {
        let channel = form.get_nonempty("ChannelStatusMessage").map(str::to_owned);
        let twilio = form.get_nonempty("ErrorMessage").map(str::to_owned);
        let (message, details) = match (channel, twilio) {
            (Some(c), Some(t)) if c != t => (Some(c), Some(t)),
            (c, t) => (c.or(t), None),
        };
        ProviderError {
            code: code.trim().to_owned(),
            message,
            details,
        }
    });
    let recipient = {
        let mut c = ContactIdentity::default();
        match address(form.get("To").unwrap_or("")) {
            Address::Phone(p) => c.phone = Some(p),
            Address::Bsuid(b) => c.bsuid = Some(b),
            Address::Unreadable => {}
        }
        if c.bsuid.is_none() {
            c.bsuid = form
                .get_nonempty("ExternalUserId")
                .and_then(|b| Bsuid::parse(b).ok());
        }
        c.is_known().then_some(c)
    };
    Ok(StatusUpdate {
        provider_message_id: form.get("MessageSid").unwrap_or("").to_owned(),
        message_ref: config.message_ref(path),
        status,
        timestamp: Utc::now(),
        error,
        recipient,
        pricing: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signature::compute_signature;
    use switchboard_core::MessageStatus;

    const SID: &str = "AC00000000000000000000000000000001";
    const TOKEN: &str = "tok";
    const BUSINESS: &str = "+14155238886";
    const PERSON: &str = "+31612345678";
    const MSG: &str = "SM00000000000000000000000000000001";

    fn config() -> TwilioConfig {
        TwilioConfig {
            public_url: "https://sb.example.com".into(),
            ..TwilioConfig::default()
        }
    }

    fn account() -> AccountContext {
        crate::testing::account(SID, TOKEN, BUSINESS)
    }

    fn base(extra: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = [
            ("AccountSid", SID),
            ("ApiVersion", "2010-04-01"),
            ("From", "whatsapp:+31612345678"),
            ("To", "whatsapp:+14155238886"),
            ("MessageSid", MSG),
            ("SmsStatus", "received"),
            ("NumSegments", "1"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        for (k, val) in extra {
            v.retain(|(key, _)| key != k);
            v.push(((*k).to_owned(), (*val).to_owned()));
        }
        v
    }

    fn request(path: &str, pairs: &[(String, String)], sign: bool) -> WebhookRequest {
        let mut body = form_urlencoded::Serializer::new(String::new());
        for (k, v) in pairs {
            body.append_pair(k, v);
        }
        let mut headers = http::HeaderMap::new();
        headers.insert(
            "content-type",
            http::HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        if sign {
            let url = format!("https://sb.example.com{path}");
            let sig = compute_signature(TOKEN, &url, pairs);
            headers.insert(SIGNATURE_HEADER, http::HeaderValue::from_str(&sig).unwrap());
        }
        WebhookRequest {
            method: http::Method::POST,
            path: path.into(),
            query: None,
            headers,
            body: bytes::Bytes::from(body.finish()),
            memo: Default::default(),
        }
    }

    fn parse_one(pairs: &[(String, String)]) -> InboundEvent {
        parse_at("/webhooks/twilio-whatsapp", pairs)
    }

    fn parse_at(path: &str, pairs: &[(String, String)]) -> InboundEvent {
        let acc = account();
        let parsed = parse(&config(), &request(path, pairs, false), &[&acc]).unwrap();
        assert!(parsed.problems.is_empty(), "{:?}", parsed.problems);
        assert_eq!(parsed.events.len(), 1);
        parsed.events.into_iter().next().unwrap()
    }

    fn message(pairs: &[(String, String)]) -> InboundMessage {
        match parse_one(pairs).kind {
            EventKind::Message(m) => m,
            other => panic!("not a message: {other:?}"),
        }
    }

    fn status(path: &str, pairs: &[(String, String)]) -> (InboundEvent, StatusUpdate) {
        let ev = parse_at(path, pairs);
        match ev.kind.clone() {
            EventKind::Status(s) => (ev, s),
            other => panic!("not a status: {other:?}"),
        }
    }

    #[test]
    fn verify_accepts_a_signed_form_and_rejects_tampering() {
        let pairs = base(&[("Body", "hi")]);
        let acc = account();
        let req = request("/webhooks/twilio-whatsapp", &pairs, true);
        assert_eq!(verify(&config(), &req, &acc), Ok(()));

        let mut tampered = req.clone();
        tampered.body = bytes::Bytes::from(String::from_utf8_lossy(&req.body).replace("hi", "ho"));
        assert_eq!(
            verify(&config(), &tampered, &acc),
            Err(WebhookError::BadSignature)
        );

        let mut unsigned = req.clone();
        unsigned.headers.remove(SIGNATURE_HEADER);
        assert_eq!(
            verify(&config(), &unsigned, &acc),
            Err(WebhookError::MissingSignature)
        );

        for bad in [
            "",
            "WRONG_SIGNATURE",
            "FAIL",
            "NOTRSOYDt4T1cUTdK1PDd93/VVr8B8=",
        ] {
            let mut r = req.clone();
            r.headers
                .insert(SIGNATURE_HEADER, http::HeaderValue::from_str(bad).unwrap());
            assert_eq!(
                verify(&config(), &r, &acc),
                Err(WebhookError::BadSignature),
                "{bad:?}"
            );
        }

        // The Host header is never used: only the configured public URL.
        let other_host = TwilioConfig {
            public_url: "https://evil.example.com".into(),
            ..config()
        };
        assert_eq!(
            verify(&other_host, &req, &acc),
            Err(WebhookError::BadSignature)
        );

        // The wrong token fails.
        let mut wrong = account();
        wrong.credentials.insert("auth_token", "other");
        assert_eq!(
            verify(&config(), &req, &wrong),
            Err(WebhookError::BadSignature)
        );
    }

    #[test]
    fn verify_checks_the_account_sid_after_the_signature() {
        let pairs = base(&[("AccountSid", "AC99999999999999999999999999999999")]);
        let req = request("/webhooks/twilio-whatsapp", &pairs, true);
        assert_eq!(
            verify(&config(), &req, &account()),
            Err(WebhookError::UnknownAccount)
        );
    }

    #[test]
    fn verify_signs_the_raw_query() {
        let pairs = base(&[("Body", "hi")]);
        let mut req = request("/webhooks/twilio-whatsapp", &pairs, false);
        req.query = Some("tenant=a%20b".into());
        let sig = compute_signature(
            TOKEN,
            "https://sb.example.com/webhooks/twilio-whatsapp?tenant=a%20b",
            &pairs,
        );
        req.headers
            .insert(SIGNATURE_HEADER, http::HeaderValue::from_str(&sig).unwrap());
        assert_eq!(verify(&config(), &req, &account()), Ok(()));
    }

    #[test]
    fn verify_json_bodies_need_body_sha256() {
        let body = br#"{"AccountSid":"AC00000000000000000000000000000001"}"#;
        let hash = crate::signature::sha256_hex(body);
        let mut headers = http::HeaderMap::new();
        headers.insert(
            "content-type",
            http::HeaderValue::from_static("application/json"),
        );
        let url = format!("https://sb.example.com/wh?bodySHA256={hash}");
        let sig = compute_signature::<&str, &str>(TOKEN, &url, &[]);
        headers.insert(SIGNATURE_HEADER, http::HeaderValue::from_str(&sig).unwrap());
        let mut req = WebhookRequest {
            method: http::Method::POST,
            path: "/wh".into(),
            query: Some(format!("bodySHA256={hash}")),
            headers,
            body: bytes::Bytes::from_static(body),
            memo: Default::default(),
        };
        assert_eq!(verify(&config(), &req, &account()), Ok(()));
        req.query = None;
        let sig = compute_signature::<&str, &str>(TOKEN, "https://sb.example.com/wh", &[]);
        req.headers
            .insert(SIGNATURE_HEADER, http::HeaderValue::from_str(&sig).unwrap());
        assert_eq!(
            verify(&config(), &req, &account()),
            Err(WebhookError::BadSignature)
        );
    }

    #[test]
    fn routing_keys_put_the_business_first() {
        let inbound = request("/w", &base(&[]), false);
        assert_eq!(routing_keys(&inbound).unwrap(), vec![BUSINESS, PERSON]);
        let st = base(&[
            ("From", "whatsapp:+14155238886"),
            ("To", "whatsapp:+31612345678"),
            ("MessageStatus", "delivered"),
        ]);
        assert_eq!(
            routing_keys(&request("/w", &st, false)).unwrap(),
            vec![BUSINESS, PERSON]
        );
        let received = base(&[("MessageStatus", "received")]);
        assert_eq!(
            routing_keys(&request("/w", &received, false)).unwrap()[0],
            BUSINESS
        );
        let bsuid = base(&[("From", "whatsapp:US.13491208655302741918")]);
        assert_eq!(
            routing_keys(&request("/w", &bsuid, false)).unwrap(),
            vec![BUSINESS]
        );
    }

    #[test]
    fn routing_keys_reject_what_is_not_a_twilio_form() {
        for body in ["", "{\"a\":1}", "garbage", "From=whatsapp%3A%2B31612345678"] {
            let req = WebhookRequest {
                method: http::Method::POST,
                path: "/w".into(),
                query: None,
                headers: http::HeaderMap::new(),
                body: bytes::Bytes::from(body),
                memo: Default::default(),
            };
            let err = routing_keys(&req).unwrap_err();
            assert!(matches!(err, WebhookError::Malformed { .. }), "{body}");
            assert_eq!(err.http_status(), 400);
        }
        let unreadable = base(&[("From", "whatsapp:nope"), ("To", "whatsapp:nope")]);
        assert!(routing_keys(&request("/w", &unreadable, false)).is_err());
    }

    #[test]
    fn text_message() {
        let m = message(&base(&[
            ("Body", "Hello from WhatsApp"),
            ("ProfileName", "Jane Doe"),
            ("WaId", "31612345678"),
            ("NumMedia", "0"),
        ]));
        assert_eq!(m.direction, Direction::Inbound);
        assert_eq!(m.provider_message_id, MSG);
        assert_eq!(m.content.text.as_deref(), Some("Hello from WhatsApp"));
        assert_eq!(m.contact.phone.as_ref().unwrap().as_str(), PERSON);
        assert_eq!(m.contact.wa_id.as_ref().unwrap().as_str(), PERSON);
        assert_eq!(m.contact.profile_name.as_deref(), Some("Jane Doe"));
        assert_eq!(m.contact.phones().count(), 1);
        assert!(m.reply_to.is_none() && m.forwarded.is_none() && m.referral.is_none());
        let ev = parse_one(&base(&[("Body", "x")]));
        assert_eq!(ev.event_key, MSG);
        assert_eq!(ev.routing_key, BUSINESS);
    }

    #[test]
    fn three_media_in_index_order_with_caption() {
        let m = message(&base(&[
            ("NumMedia", "3"),
            ("Body", "look"),
            ("MediaUrl2", "https://api.twilio.com/m/2"),
            ("MediaContentType2", "application/pdf"),
            ("MediaUrl0", "https://api.twilio.com/m/0"),
            ("MediaContentType0", "image/jpeg"),
            ("MediaContentType1", "audio/ogg"),
            ("MediaUrl1", "https://api.twilio.com/m/1"),
        ]));
        let urls: Vec<_> = m
            .content
            .media
            .iter()
            .map(|x| x.url.clone().unwrap())
            .collect();
        assert_eq!(
            urls,
            [
                "https://api.twilio.com/m/0",
                "https://api.twilio.com/m/1",
                "https://api.twilio.com/m/2"
            ]
        );
        let kinds: Vec<_> = m.content.media.iter().map(|x| x.kind).collect();
        assert_eq!(
            kinds,
            [MediaKind::Image, MediaKind::Audio, MediaKind::Document]
        );
        assert_eq!(m.content.media[0].mime_type.as_deref(), Some("image/jpeg"));
        assert_eq!(m.content.media[0].caption.as_deref(), Some("look"));
        assert!(m.content.text.is_none());
    }

    #[test]
    fn location() {
        let m = message(&base(&[
            ("Latitude", "37.7879277"),
            ("Longitude", "-122.3937508"),
            ("Address", "375 Beale St, San Francisco"),
            ("Label", "Twilio HQ"),
        ]));
        let loc = m.content.location.unwrap();
        assert!((loc.latitude - 37.787_927_7).abs() < 1e-9);
        assert!((loc.longitude + 122.393_750_8).abs() < 1e-9);
        assert_eq!(loc.name.as_deref(), Some("Twilio HQ"));
        assert_eq!(loc.address.as_deref(), Some("375 Beale St, San Francisco"));
    }

    #[test]
    fn bad_coordinates_keep_the_message() {
        for (lat, lon) in [("north", "1"), ("91", "0"), ("NaN", "0"), ("1", "")] {
            let m = message(&base(&[("Latitude", lat), ("Longitude", lon)]));
            assert!(m.content.location.is_none());
            assert_eq!(m.content.unsupported.unwrap().provider_type, "location");
        }
    }

    #[test]
    fn quick_reply_button() {
        let m = message(&base(&[
            ("Body", "Konfirmasi"),
            ("ButtonPayload", "{verifyEmail:asd@asd.com}"),
            ("ButtonText", "Konfirmasi"),
            ("ButtonType", "REPLY"),
            ("MessageType", "button"),
        ]));
        let i = m.content.interactive.unwrap();
        assert_eq!(i.kind, InteractiveKind::TemplateButton);
        assert_eq!(i.id.as_deref(), Some("{verifyEmail:asd@asd.com}"));
        assert_eq!(i.title.as_deref(), Some("Konfirmasi"));
        assert!(m.content.text.is_none(), "Body repeats the title");
    }

    #[test]
    fn interactive_list_and_flow_data() {
        let list = message(&base(&[(
            "InteractiveData",
            r#"{"type":"list_reply","list_reply":{"id":"opt-2","title":"Two","description":"the second"}}"#,
        )]));
        let i = list.content.interactive.unwrap();
        assert_eq!(i.kind, InteractiveKind::ListReply);
        assert_eq!(i.id.as_deref(), Some("opt-2"));
        assert_eq!(i.title.as_deref(), Some("Two"));
        assert_eq!(i.description.as_deref(), Some("the second"));
        assert!(i.data.is_some());

        let button = message(&base(&[(
            "InteractiveData",
            r#"{"type":"button_reply","button_reply":{"id":"yes","title":"Yes"}}"#,
        )]));
        assert_eq!(
            button.content.interactive.unwrap().kind,
            InteractiveKind::ButtonReply
        );

        let flow = message(&base(&[(
            "FlowData",
            r#"{"screen_0_name":"Jane","flow_token":"t"}"#,
        )]));
        let f = flow.content.interactive.unwrap();
        assert_eq!(f.kind, InteractiveKind::FlowReply);
        assert_eq!(f.data.unwrap()["screen_0_name"], "Jane");

        // Not JSON: kept as a string, no error.
        let junk = message(&base(&[("InteractiveData", "{not json")]));
        assert_eq!(
            junk.content.interactive.unwrap().data,
            Some(Value::String("{not json".into()))
        );
    }

    #[test]
    fn reply_forwarded_and_referral() {
        let m = message(&base(&[
            ("Body", "re"),
            ("OriginalRepliedMessageSender", "whatsapp:+14155238886"),
            (
                "OriginalRepliedMessageSid",
                "MM5cc44eecf7dab0d48d4529d0fa4af44d",
            ),
            ("Forwarded", "true"),
            ("FrequentlyForwarded", "false"),
            ("ReferralNumMedia", "0"),
            ("ReferralSourceType", "ad"),
            ("ReferralSourceId", "120"),
            ("ReferralSourceUrl", "https://fb.me/x"),
            ("ReferralHeadline", "Sale"),
            ("ReferralBody", "50% off"),
            ("ReferralMediaContentType", "image/jpeg"),
            ("ReferralMediaUrl", "https://m/x.jpg"),
            ("ReferralMediaId", "ME0123456789"),
            ("ReferralCtwaClid", "clid-1"),
        ]));
        assert_eq!(
            m.reply_to.as_deref(),
            Some("MM5cc44eecf7dab0d48d4529d0fa4af44d")
        );
        assert_eq!(m.forwarded, Some(Forwarded { frequently: false }));
        let r = m.referral.unwrap();
        assert_eq!(r.source_type.as_deref(), Some("ad"));
        assert_eq!(r.source_id.as_deref(), Some("120"));
        assert_eq!(r.source_url.as_deref(), Some("https://fb.me/x"));
        assert_eq!(r.headline.as_deref(), Some("Sale"));
        assert_eq!(r.body.as_deref(), Some("50% off"));
        assert_eq!(r.media_type.as_deref(), Some("image/jpeg"));
        assert_eq!(r.media_url.as_deref(), Some("https://m/x.jpg"));
        assert_eq!(r.ctwa_clid.as_deref(), Some("clid-1"));
        assert_eq!(r.media_id.as_deref(), Some("ME0123456789"));

        let freq = message(&base(&[("Body", "x"), ("FrequentlyForwarded", "true")]));
        assert_eq!(freq.forwarded, Some(Forwarded { frequently: true }));
        let not = message(&base(&[
            ("Body", "x"),
            ("Forwarded", "false"),
            ("ReferralNumMedia", "0"),
        ]));
        assert!(not.forwarded.is_none() && not.referral.is_none());
    }

    #[test]
    fn bsuid_sender() {
        let m = message(&base(&[
            ("Body", "hi"),
            ("From", "whatsapp:US.13491208655302741918"),
            ("ExternalUserId", "whatsapp:US.13491208655302741918"),
        ]));
        assert!(m.contact.phone.is_none());
        assert_eq!(m.contact.bsuid.unwrap().as_str(), "US.13491208655302741918");

        let both = message(&base(&[
            ("Body", "hi"),
            ("ExternalUserId", "whatsapp:ID.4566546130240823"),
        ]));
        assert_eq!(both.contact.phone.unwrap().as_str(), PERSON);
        assert_eq!(both.contact.bsuid.unwrap().as_str(), "ID.4566546130240823");
    }

    #[test]
    fn echo_from_the_business() {
        let m = message(&base(&[
            ("From", "whatsapp:+14155238886"),
            ("To", "whatsapp:+31612345678"),
            ("Body", "typed on the phone"),
            ("ProfileName", "Business"),
        ]));
        assert_eq!(m.direction, Direction::Echo);
        assert_eq!(m.contact.phone.unwrap().as_str(), PERSON);
        assert!(m.contact.profile_name.is_none());
    }

    #[test]
    fn unknown_params_are_kept_in_raw() {
        let ev = parse_one(&base(&[
            ("Body", "x"),
            ("SomethingNew", "42"),
            ("Repeated", "a"),
        ]));
        let mut pairs = base(&[("Body", "x")]);
        pairs.push(("Repeated".into(), "a".into()));
        pairs.push(("Repeated".into(), "b".into()));
        let ev2 = parse_one(&pairs);
        assert_eq!(ev.raw["SomethingNew"], "42");
        assert_eq!(ev.raw["Body"], "x");
        assert_eq!(ev2.raw["Repeated"], serde_json::json!(["a", "b"]));
    }

    #[test]
    fn empty_message_becomes_unsupported() {
        let m = message(&base(&[("MessageType", "sticker_pack"), ("Body", "")]));
        assert_eq!(m.content.unsupported.unwrap().provider_type, "sticker_pack");
    }

    #[test]
    fn unreadable_sender_is_a_problem_not_an_error() {
        let acc = account();
        let pairs = base(&[("From", "whatsapp:nobody"), ("Body", "x")]);
        let parsed = parse(&config(), &request("/w", &pairs, false), &[&acc]).unwrap();
        assert!(parsed.events.is_empty());
        assert_eq!(parsed.problems.len(), 1);
        assert_eq!(parsed.problems[0].routing_key.as_deref(), Some(BUSINESS));
        assert_eq!(parsed.problems[0].raw["From"], "whatsapp:nobody");

        // A form for no connected account.
        let other = base(&[("To", "whatsapp:+16505551234")]);
        let parsed = parse(&config(), &request("/w", &other, false), &[&acc]).unwrap();
        assert!(parsed.events.is_empty() && parsed.problems.len() == 1);
    }

    fn status_pairs(st: &str, extra: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut e = vec![
            ("From", "whatsapp:+14155238886"),
            ("To", "whatsapp:+31612345678"),
            ("MessageStatus", st),
            ("SmsStatus", st),
            ("ChannelToAddress", "+3161234XXXX"),
        ];
        e.extend_from_slice(extra);
        base(&e)
    }

    #[test]
    fn every_status_maps() {
        let cases = [
            ("queued", MessageStatus::Accepted),
            ("accepted", MessageStatus::Accepted),
            ("scheduled", MessageStatus::Accepted),
            ("sending", MessageStatus::Sending),
            ("sent", MessageStatus::Sent),
            ("delivered", MessageStatus::Delivered),
            ("partially_delivered", MessageStatus::Delivered),
            ("undelivered", MessageStatus::Undelivered),
            ("failed", MessageStatus::Failed),
            ("read", MessageStatus::Read),
            ("canceled", MessageStatus::Canceled),
        ];
        for (raw, want) in cases {
            let (ev, s) = status("/webhooks/twilio-whatsapp", &status_pairs(raw, &[]));
            assert_eq!(s.status, want, "{raw}");
            assert_eq!(ev.event_key, format!("{MSG}:{raw}"));
            assert_eq!(ev.routing_key, BUSINESS);
            assert_eq!(s.provider_message_id, MSG);
            assert_eq!(s.recipient.unwrap().phone.unwrap().as_str(), PERSON);
            assert!(s.message_ref.is_none());
            assert!(s.error.is_none());
        }
    }

    #[test]
    fn read_with_event_type_and_message_ref() {
        let (ev, s) = status(
            "/webhooks/twilio-whatsapp/status/msg%201",
            &status_pairs("read", &[("EventType", "READ")]),
        );
        assert_eq!(ev.event_key, format!("{MSG}:read:READ"));
        assert_eq!(s.message_ref.as_deref(), Some("msg 1"));
    }

    #[test]
    fn failure_carries_code_and_messages() {
        let (_, s) = status(
            "/webhooks/twilio-whatsapp/status/m1",
            &status_pairs(
                "undelivered",
                &[
                    ("ErrorCode", "63016"),
                    ("ChannelStatusMessage", "Outside window"),
                    ("ErrorMessage", "Failed to send freeform message"),
                ],
            ),
        );
        let e = s.error.unwrap();
        assert_eq!(e.code, "63016");
        assert_eq!(e.message.as_deref(), Some("Outside window"));
        assert_eq!(
            e.details.as_deref(),
            Some("Failed to send freeform message")
        );
        let (_, s) = status("/w", &status_pairs("failed", &[("ErrorCode", "30008")]));
        assert_eq!(
            s.error.unwrap(),
            ProviderError {
                code: "30008".into(),
                message: None,
                details: None
            }
        );
    }

    #[test]
    fn unknown_status_is_a_problem() {
        let acc = account();
        let parsed = parse(
            &config(),
            &request("/w", &status_pairs("exploded", &[]), false),
            &[&acc],
        )
        .unwrap();
        assert!(parsed.events.is_empty());
        assert!(parsed.problems[0].detail.contains("exploded"));
    }

    #[test]
    fn reply_is_empty_twiml() {
        let r = reply();
        assert_eq!(r.status, 200);
        assert_eq!(r.content_type, "text/xml");
        assert_eq!(
            &r.body[..],
            br#"<?xml version="1.0" encoding="UTF-8"?><Response></Response>"#
        );
    }

    #[test]
    fn no_input_panics() {
        let acc = account();
        let inputs: [&[u8]; 6] = [
            b"%",
            b"AccountSid=&From=&To=&MessageSid=",
            b"AccountSid=a&From=%FF%FE&To=%00&MessageSid=x&NumMedia=-1&MediaUrl99999999999999999999=x",
            b"AccountSid=a&From=whatsapp%3A%2B31612345678&To=whatsapp%3A%2B14155238886&MessageSid=x&MessageStatus=%F0",
            b"AccountSid=a&From=whatsapp%3A%2B31612345678&To=whatsapp%3A%2B14155238886&MessageSid=x&Latitude=1e999&Longitude=-1e999",
            b"&&&===&&",
        ];
        for body in inputs {
            let req = WebhookRequest {
                method: http::Method::POST,
                path: "/webhooks/twilio-whatsapp/status/%".into(),
                query: None,
                headers: http::HeaderMap::new(),
                body: bytes::Bytes::from_static(body),
                memo: Default::default(),
            };
            assert!(routing_keys(&req).map_or(true, |k| k.len() <= 2));
            assert!(verify(&config(), &req, &acc).is_err(), "unsigned");
            if let Ok(p) = parse(&config(), &req, &[&acc]) {
                assert_eq!(p.events.len() + p.problems.len(), 1);
            }
        }
    }
}

//! Outbound messages as Twilio Messages API form fields, and the API's
//! answer as a [`SendReceipt`].
//!
//! Decisions:
//! - Text over 1,600 characters is refused, not split: a message is never delivered in
//!   surprising pieces; the caller decides how to shorten it.
//! - One media item per message on WhatsApp, up to ten on MMS; the router splits longer
//!   lists.
//! - A template (`ContentSid`) carries its own text and media, so text or media beside it
//!   is refused rather than silently dropped.
//! - Interactive messages and locations on WhatsApp are content resources
//!   (`content_api.rs`), created or found before the message names them by `ContentSid`.
//!   Those content types have no free text, so text beside one is refused (the router
//!   keeps a fallback's plain alternative out of them).
//! - `reply_to` is ignored: Twilio has no reply context for outbound WhatsApp
//!   (`Capabilities::reply_context` is false).

use chrono::{DateTime, Utc};
use serde_json::Value;
use switchboard_core::{
    AccountContext, ChannelError, ContactIdentity, Content, Exchange, MediaItem, MediaKind,
    MessageStatus, OutboundMessage, PhoneNumber, Pricing, ProviderError, SendReceipt, StatusUpdate,
    retry_after_header,
};

use crate::config::{Dialect, TwilioConfig, credentials, is_sid, messaging_service};
use crate::content_api::{
    ContentApi, ContentCache, ContentSpec, check_variables, interactive_spec, is_content_sid,
    location_spec,
};
use crate::errors::{error_from_response, error_from_response_of, error_from_transport};
use crate::wire::{Form, TwilioErrorBody, map_status};

/// Twilio's `Body` limit, in characters.
pub const MAX_BODY_CHARS: usize = 1600;

/// The form fields of one Messages API create call, in order. Nothing secret is in here.
///
/// # Errors
/// `Invalid` when the message cannot be expressed for Twilio (too long, several media,
/// no recipient, bad template SID), `Unsupported` for content Twilio cannot send.
pub fn build_form(
    config: &TwilioConfig,
    from: &PhoneNumber,
    msg: &OutboundMessage,
) -> Result<Vec<(String, String)>, ChannelError> {
    build_form_as(Dialect::WhatsApp, config, Sender::Number(from), msg)
}

/// Who a message is sent from: the account's number, or its Messaging Service (Twilio then
/// picks the number from the service's pool).
#[derive(Clone, Copy, Debug)]
pub enum Sender<'a> {
    Number(&'a PhoneNumber),
    Service(&'a str),
}

/// Twilio MMS carries up to ten media items per message.
pub const MAX_MMS_MEDIA: usize = 10;

/// [`build_form`] for either channel and either kind of sender.
///
/// # Errors
/// As [`build_form`]; on SMS also templates, locations and BSUID recipients. A message
/// sent as a content resource (an interactive message, a location) needs
/// [`build_form_with`] and the resource's SID.
pub fn build_form_as(
    dialect: Dialect,
    config: &TwilioConfig,
    sender: Sender<'_>,
    msg: &OutboundMessage,
) -> Result<Vec<(String, String)>, ChannelError> {
    build_form_with(dialect, config, sender, msg, None)
}

/// What Twilio carries of `content`, checked without a request: `Unsupported` for what the
/// channel cannot send, `Invalid` for what Twilio would refuse (length, media without a
/// URL, a template name that is not a Content SID, `ContentVariables` against §9.4, an
/// interactive message over WhatsApp's limits). `Some` names the content resource the
/// message is sent as (an interactive message or a location on WhatsApp, §9.6).
///
/// # Errors
/// As said.
pub fn content_resource(
    dialect: Dialect,
    c: &Content,
) -> Result<Option<ContentSpec>, ChannelError> {
    let channel = dialect.channel();
    let unsupported = |what: &str| {
        Err(ChannelError::unsupported(format!(
            "{channel} cannot send {what}"
        )))
    };
    let sms = dialect == Dialect::Sms;
    if sms && c.template.is_some() {
        return unsupported("templates");
    }
    if sms && c.location.is_some() {
        return unsupported("locations");
    }
    if sms && c.interactive_message.is_some() {
        return unsupported("interactive messages");
    }
    if c.reaction.is_some() {
        return unsupported("reactions");
    }
    if !c.contacts.is_empty() {
        return unsupported("contact cards");
    }
    if c.interactive.is_some() {
        return unsupported("interactive replies");
    }
    if c.edit_of.is_some() || c.revoke_of.is_some() {
        return unsupported("edits or deletions");
    }
    if c.system.is_some() || c.unsupported.is_some() {
        return unsupported("this kind of content");
    }
    if let Some(t) = &c.template {
        if c.text.is_some()
            || !c.media.is_empty()
            || c.location.is_some()
            || c.interactive_message.is_some()
        {
            return Err(ChannelError::invalid(
                "a Twilio template (ContentSid) carries its own text and media: send text, media or location separately",
            ));
        }
        if !is_content_sid(&t.name) {
            return Err(ChannelError::invalid(format!(
                "a Twilio template name must be a Content SID: HX followed by 32 hexadecimal digits, got {:?}",
                t.name
            )));
        }
        if t.header.is_some() || !t.buttons.is_empty() {
            return unsupported(
                "template header or button parameters (Twilio templates take variables only)",
            );
        }
        check_variables(t.variables.iter())?;
        return Ok(None);
    }
    // These content types have no free text; the router keeps a fallback's plain
    // alternative out of them, so text here would be lost: refused.
    if let Some(m) = &c.interactive_message {
        if c.text.is_some() || !c.media.is_empty() || c.location.is_some() {
            return Err(ChannelError::invalid(
                "an interactive message carries its own body and header: send text, media or a location separately",
            ));
        }
        return interactive_spec(m).map(Some);
    }
    if let Some(l) = &c.location {
        if c.text.is_some() || !c.media.is_empty() {
            return Err(ChannelError::invalid(
                "Twilio sends a location as a content resource, which carries no text or media: give the place a `name` and `address` instead",
            ));
        }
        return location_spec(l).map(Some);
    }
    let max_media = if sms { MAX_MMS_MEDIA } else { 1 };
    if c.media.len() > max_media {
        return Err(ChannelError::invalid(format!(
            "{} carries at most {max_media} media item(s) per message, got {}",
            dialect.name(),
            c.media.len()
        )));
    }
    for m in &c.media {
        if !matches!(
            m.kind,
            MediaKind::Image | MediaKind::Video | MediaKind::Audio | MediaKind::Document
        ) {
            return unsupported(&format!("{} media", m.kind.as_str()));
        }
        if m.url.as_deref().is_none_or(str::is_empty) {
            return Err(ChannelError::invalid(
                "Twilio sends media by public URL; this media item has none",
            ));
        }
    }
    match text_body(&c.text, &c.media)? {
        Some(b) => {
            let n = b.chars().count();
            if n > MAX_BODY_CHARS {
                return Err(ChannelError::invalid(format!(
                    "text is {n} characters; {} allows at most {MAX_BODY_CHARS} (Switchboard refuses rather than splitting)",
                    dialect.name()
                )));
            }
        }
        None if c.media.is_empty() => {
            return Err(ChannelError::invalid("the message has no content to send"));
        }
        None => {}
    }
    Ok(None)
}

/// [`content_resource`] before the router queues a message
/// (`ChannelAdapter::check_content`): media named by Switchboard id (`media_id`) get their
/// public URL only at delivery, so they are checked as if they had one.
///
/// # Errors
/// As [`content_resource`].
pub fn check_content(dialect: Dialect, content: &Content) -> Result<(), ChannelError> {
    let mut checked = content.clone();
    for m in checked.media_items_mut() {
        if m.url.is_none() && m.media_id.is_some() {
            m.url = Some("https://media.switchboard.invalid/pending".to_owned());
        }
    }
    content_resource(dialect, &checked).map(|_| ())
}

/// The `Body` of a text or media message: the first item's caption or the text, which must
/// agree (one `Body` serves every item).
fn text_body(text: &Option<String>, media: &[MediaItem]) -> Result<Option<String>, ChannelError> {
    match media.first() {
        Some(m) => match (&m.caption, text) {
            (Some(cap), Some(text)) if cap != text => Err(ChannelError::invalid(
                "media with both a caption and a different text: Twilio has one Body",
            )),
            (cap, text) => Ok(cap.clone().or_else(|| text.clone())),
        },
        None => Ok(text.clone()),
    }
}

/// [`build_form_as`] with the SID of the content resource the message is sent as, when
/// [`content_resource`] names one: the form then carries `ContentSid` and no `Body` or
/// `MediaUrl` (§9.6).
///
/// # Errors
/// As [`build_form_as`]; `Invalid` when a content resource is needed and `content_sid` is
/// not a Content SID.
pub fn build_form_with(
    dialect: Dialect,
    config: &TwilioConfig,
    sender: Sender<'_>,
    msg: &OutboundMessage,
    content_sid: Option<&str>,
) -> Result<Vec<(String, String)>, ChannelError> {
    let c = &msg.content;
    let resource = content_resource(dialect, c)?;
    let sms = dialect == Dialect::Sms;
    let prefix = dialect.address_prefix();
    let to = match (&msg.to.phone, &msg.to.bsuid) {
        (Some(p), _) => format!("{prefix}{p}"),
        (None, Some(b)) if !sms => format!("{prefix}{b}"),
        (None, Some(_)) => {
            return Err(ChannelError::invalid(
                "an SMS recipient needs a phone number (a BSUID is a WhatsApp address)",
            ));
        }
        (None, None) => {
            return Err(ChannelError::invalid(
                "the recipient has neither a phone number nor a BSUID",
            ));
        }
    };
    let mut form = vec![("To".to_owned(), to)];
    match sender {
        Sender::Number(from) => form.push(("From".to_owned(), format!("{prefix}{from}"))),
        Sender::Service(sid) => form.push(("MessagingServiceSid".to_owned(), sid.to_owned())),
    }

    if let Some(t) = &c.template {
        form.push(("ContentSid".to_owned(), t.name.clone()));
        if !t.variables.is_empty() {
            let vars = serde_json::to_string(&t.variables).map_err(|e| {
                ChannelError::invalid(format!("template variables are not JSON: {e}"))
            })?;
            form.push(("ContentVariables".to_owned(), vars));
        }
    } else if let Some(spec) = resource {
        let sid = content_sid.filter(|s| is_content_sid(s)).ok_or_else(|| {
            ChannelError::invalid(format!(
                "{} is sent as a Content API resource ({}): its Content SID is needed",
                c.kind(),
                spec.content_type()
            ))
        })?;
        form.push(("ContentSid".to_owned(), sid.to_owned()));
    } else {
        if let Some(b) = text_body(&c.text, &c.media)? {
            form.push(("Body".to_owned(), b));
        }
        for m in &c.media {
            if let Some(url) = &m.url {
                form.push(("MediaUrl".to_owned(), url.clone()));
            }
        }
    }
    if !config.public_url.is_empty() {
        form.push((
            "StatusCallback".to_owned(),
            config.status_callback_url(&msg.id),
        ));
    }
    Ok(form)
}

/// The form as stored in the attempt history (repeated keys become arrays).
pub fn form_json(form: &[(String, String)]) -> Value {
    Form::from_pairs(form.to_vec()).to_json()
}

/// Reads a Message resource: its SID and mapped status.
///
/// An unknown status is taken as `Accepted`: Twilio did accept the message.
pub fn receipt_fields(body: &Value) -> Option<(String, MessageStatus)> {
    let sid = body.get("sid")?.as_str()?.to_owned();
    let status = body
        .get("status")
        .and_then(Value::as_str)
        .and_then(map_status)
        .unwrap_or(MessageStatus::Accepted);
    Some((sid, status))
}

/// Builds the receipt for a 2xx answer; `None` when the body has no SID.
pub fn receipt(body: &Value, exchange: Exchange) -> Option<SendReceipt> {
    let (sid, status) = receipt_fields(body)?;
    Some(SendReceipt {
        provider_message_id: sid,
        status,
        recipient_wa_id: None,
        recipient_bsuid: None,
        exchange: Some(exchange),
    })
}

/// A response: status, headers and the body as [`Exchange::response_body`] keeps it.
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) headers: http::HeaderMap,
    pub(crate) body: Value,
}

impl Answer {
    /// The exchange, for the attempt history.
    pub(crate) fn exchange(&self, request: Option<Value>) -> Exchange {
        Exchange {
            http_status: Some(self.status),
            request,
            response: Some(self.body.clone()),
        }
    }

    /// `api`'s refusal (a non-2xx answer to a request that sends no message), classified.
    pub(crate) fn refusal(&self, api: &str, request: Option<Value>) -> ChannelError {
        error_from_response_of(
            api,
            self.status,
            &error_body(&self.body),
            retry_after_header(&self.headers),
            false,
            self.exchange(request),
        )
    }

    /// Itself when `api` answered 2xx, else its refusal.
    pub(crate) fn accepted(self, api: &str, request: Option<&Value>) -> Result<Self, ChannelError> {
        if (200..300).contains(&self.status) {
            Ok(self)
        } else {
            Err(self.refusal(api, request.cloned()))
        }
    }
}

pub(crate) async fn read(resp: reqwest::Response) -> Result<Answer, reqwest::Error> {
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let bytes = resp.bytes().await?;
    let body = Exchange::response_body(&bytes);
    Ok(Answer {
        status,
        headers,
        body,
    })
}

/// `GET url` with basic auth, asking for JSON, read into an [`Answer`].
pub(crate) async fn get(
    http: &reqwest::Client,
    url: &str,
    sid: &str,
    token: &str,
) -> Result<Answer, reqwest::Error> {
    let resp = http
        .get(url)
        .basic_auth(sid, Some(token))
        .header(http::header::ACCEPT, "application/json")
        .send()
        .await?;
    read(resp).await
}

pub(crate) fn error_body(body: &Value) -> TwilioErrorBody {
    serde_json::from_value(body.clone()).unwrap_or_default()
}

pub(crate) async fn send(
    http: &reqwest::Client,
    config: &TwilioConfig,
    dialect: Dialect,
    contents: Option<&ContentCache>,
    account: &AccountContext,
    msg: &OutboundMessage,
) -> Result<SendReceipt, ChannelError> {
    let (sid, token) = credentials(account)?;
    if !is_sid(sid, "AC") {
        return Err(ChannelError::invalid(
            "credential \"account_sid\" is not a Twilio account SID",
        ));
    }
    let sender = match messaging_service(account) {
        Some(service) => Sender::Service(service),
        None => Sender::Number(&account.address),
    };
    let resource = content_resource(dialect, &msg.content)?;
    let content_api = ContentApi {
        http,
        config,
        account_sid: sid,
        auth_token: token,
    };
    let content_sid = match (&resource, contents) {
        (Some(spec), Some(cache)) => Some(cache.sid(&content_api, spec).await?),
        (Some(spec), None) => {
            return Err(ChannelError::unsupported(format!(
                "{} cannot send {}",
                dialect.channel(),
                spec.content_type()
            )));
        }
        (None, _) => None,
    };
    let form = build_form_with(dialect, config, sender, msg, content_sid.as_deref())?;
    let request_json = form_json(&form);
    let url = format!(
        "{}/2010-04-01/Accounts/{sid}/Messages.json",
        config.api_base()
    );
    let result = http
        .post(&url)
        .basic_auth(sid, Some(token))
        .header(http::header::ACCEPT, "application/json")
        .form(&form)
        .send()
        .await;
    let resp = match result {
        Ok(r) => r,
        Err(e) => {
            return Err(error_from_transport(e, true).with_exchange(Exchange {
                http_status: None,
                request: Some(request_json),
                response: None,
            }));
        }
    };
    let answer = match read(resp).await {
        Ok(a) => a,
        // The status line arrived, so Twilio had the request: ambiguous.
        Err(e) => return Err(error_from_transport(e, true)),
    };
    let exchange = Exchange {
        http_status: Some(answer.status),
        request: Some(request_json),
        response: Some(answer.body.clone()),
    };
    if (200..300).contains(&answer.status) {
        return receipt(&answer.body, exchange.clone()).ok_or_else(|| {
            ChannelError::ambiguous("Twilio accepted the request but its answer has no message SID")
                .with_exchange(exchange)
        });
    }
    tracing::debug!(
        http_status = answer.status,
        account_id = %account.account_id,
        "Twilio refused a message"
    );
    let error = error_from_response(
        answer.status,
        &error_body(&answer.body),
        retry_after_header(&answer.headers),
        true,
        exchange,
    );
    // A remembered content resource that Twilio no longer knows (deleted since): forget it,
    // and let the retry find or create it again.
    if let (Some(spec), Some(cache)) = (&resource, contents)
        && error.provider_code() == Some(INVALID_CONTENT_SID)
    {
        cache.forget(sid, spec);
        let mut error = error;
        let exchange = error.take_exchange();
        let mut retry = ChannelError::transient(format!(
            "{} (the content resource is created again on retry)",
            error.message()
        ))
        .with_provider_code(INVALID_CONTENT_SID);
        if let Some(exchange) = exchange {
            retry = retry.with_exchange(exchange);
        }
        return Err(retry);
    }
    Err(error)
}

/// Twilio's error when a message names a Content SID it does not know.
const INVALID_CONTENT_SID: &str = "21655";

pub(crate) async fn fetch_status(
    http: &reqwest::Client,
    config: &TwilioConfig,
    account: &AccountContext,
    message_sid: &str,
) -> Result<Option<StatusUpdate>, ChannelError> {
    let (sid, token) = credentials(account)?;
    if !is_sid(sid, "AC") {
        return Err(ChannelError::invalid(
            "credential \"account_sid\" is not a Twilio account SID",
        ));
    }
    if !(is_sid(message_sid, "SM") || is_sid(message_sid, "MM")) {
        return Err(ChannelError::invalid(
            "a Twilio message SID is SM or MM followed by 32 letters and digits",
        ));
    }
    let url = format!(
        "{}/2010-04-01/Accounts/{sid}/Messages/{message_sid}.json",
        config.api_base()
    );
    let answer = get(http, &url, sid, token)
        .await
        .map_err(|e| error_from_transport(e, false))?;
    if answer.status == 404 {
        return Ok(None);
    }
    let exchange = Exchange {
        http_status: Some(answer.status),
        request: None,
        response: Some(answer.body.clone()),
    };
    if !(200..300).contains(&answer.status) {
        return Err(error_from_response(
            answer.status,
            &error_body(&answer.body),
            retry_after_header(&answer.headers),
            false,
            exchange,
        ));
    }
    Ok(Some(message_status(&answer.body, message_sid)?))
}

/// A Message resource as a status update.
pub(crate) fn message_status(
    body: &Value,
    message_sid: &str,
) -> Result<StatusUpdate, ChannelError> {
    let s = |k: &str| body.get(k).and_then(Value::as_str);
    let raw = s("status").unwrap_or("");
    let status = map_status(raw).ok_or_else(|| {
        ChannelError::permanent(format!("Twilio reported an unknown message status {raw:?}"))
    })?;
    let timestamp = s("date_updated")
        .and_then(|d| DateTime::parse_from_rfc2822(d).ok())
        .map_or_else(Utc::now, |d| d.with_timezone(&Utc));
    let error = body
        .get("error_code")
        .filter(|c| !c.is_null())
        .map(|c| ProviderError {
            code: c.as_str().map_or_else(|| c.to_string(), str::to_owned),
            message: s("error_message").map(str::to_owned),
            details: None,
        });
    let recipient = s("to")
        .and_then(|to| PhoneNumber::parse(to).ok())
        .map(ContactIdentity::from_phone);
    Ok(StatusUpdate {
        provider_message_id: s("sid").unwrap_or(message_sid).to_owned(),
        message_ref: None,
        status,
        timestamp,
        error,
        recipient,
        pricing: message_price(body),
    })
}

/// `-0.00750`, `1`, `0.5`: what a price may look like (anything else is not kept, so sums
/// never meet an unreadable amount).
fn is_decimal(s: &str) -> bool {
    let digits = s.strip_prefix('-').unwrap_or(s);
    let (whole, frac) = digits.split_once('.').unwrap_or((digits, "0"));
    !whole.is_empty()
        && !frac.is_empty()
        && whole.len() <= 12
        && frac.len() <= 12
        && whole.bytes().all(|b| b.is_ascii_digit())
        && frac.bytes().all(|b| b.is_ascii_digit())
}

/// The message's price once Twilio has filled it in (twilio.md §10): `price` as Twilio
/// spells it (a negative decimal string, `"-0.00750"`) and `price_unit` upper-cased (the
/// description says lower case, the example upper). `None` while `price` is null.
fn message_price(body: &Value) -> Option<Pricing> {
    let price = body
        .get("price")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|p| is_decimal(p))?;
    Some(Pricing {
        price: Some(price.to_owned()),
        currency: body
            .get("price_unit")
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(str::to_ascii_uppercase),
        ..Pricing::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_core::{
        Bsuid, Content, ErrorKind, Location, MediaItem, Reaction, Recipient, Template,
    };

    fn config() -> TwilioConfig {
        TwilioConfig {
            public_url: "https://sb.example.com".into(),
            ..TwilioConfig::default()
        }
    }

    fn from() -> PhoneNumber {
        PhoneNumber::parse("+14155238886").unwrap()
    }

    fn msg(content: Content) -> OutboundMessage {
        OutboundMessage {
            id: "m-1".into(),
            to: Recipient::phone(PhoneNumber::parse("+31612345678").unwrap()),
            content,
            reply_to: None,
        }
    }

    fn get<'a>(form: &'a [(String, String)], k: &str) -> Option<&'a str> {
        form.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn text() {
        let f = build_form(&config(), &from(), &msg(Content::text("hi"))).unwrap();
        assert_eq!(
            f,
            vec![
                ("To".to_owned(), "whatsapp:+31612345678".to_owned()),
                ("From".into(), "whatsapp:+14155238886".into()),
                ("Body".into(), "hi".into()),
                (
                    "StatusCallback".into(),
                    "https://sb.example.com/webhooks/twilio-whatsapp/status/m-1".into()
                ),
            ]
        );
    }

    #[test]
    fn sms_forms_use_bare_numbers_and_carry_up_to_ten_media() {
        let sms = |m: &OutboundMessage| {
            build_form_as(Dialect::Sms, &config(), Sender::Number(&from()), m)
        };
        let f = sms(&msg(Content::text("hi"))).unwrap();
        assert_eq!(get(&f, "To"), Some("+31612345678"));
        assert_eq!(get(&f, "From"), Some("+14155238886"));
        assert_eq!(get(&f, "Body"), Some("hi"));
        let media = |n: usize| Content {
            text: Some("look".into()),
            media: (0..n)
                .map(|i| MediaItem::from_url(MediaKind::Image, format!("https://x/{i}.jpg")))
                .collect(),
            ..Content::default()
        };
        let f = sms(&msg(media(10))).unwrap();
        assert_eq!(f.iter().filter(|(k, _)| k == "MediaUrl").count(), 10);
        assert_eq!(get(&f, "Body"), Some("look"));
        assert_eq!(sms(&msg(media(11))).unwrap_err().kind(), ErrorKind::Invalid);
        // What SMS cannot carry.
        let template = Content {
            template: Some(Template {
                name: SID.into(),
                ..Template::default()
            }),
            ..Content::default()
        };
        assert_eq!(
            sms(&msg(template)).unwrap_err().kind(),
            ErrorKind::Unsupported
        );
        let mut to_bsuid = msg(Content::text("hi"));
        to_bsuid.to = Recipient {
            phone: None,
            bsuid: Some(Bsuid::parse("US.13491208655302741918").unwrap()),
        };
        assert_eq!(sms(&to_bsuid).unwrap_err().kind(), ErrorKind::Invalid);
        let long = sms(&msg(Content::text("a".repeat(1601)))).unwrap_err();
        assert!(long.to_string().contains("Twilio SMS"), "{long}");
    }

    #[test]
    fn a_messaging_service_replaces_from_on_both_channels() {
        let service = "MG0123456789abcdef0123456789abcdef";
        for (dialect, to) in [
            (Dialect::Sms, "+31612345678"),
            (Dialect::WhatsApp, "whatsapp:+31612345678"),
        ] {
            let f = build_form_as(
                dialect,
                &config(),
                Sender::Service(service),
                &msg(Content::text("hi")),
            )
            .unwrap();
            assert_eq!(get(&f, "MessagingServiceSid"), Some(service));
            assert_eq!(get(&f, "From"), None);
            assert_eq!(get(&f, "To"), Some(to));
        }
    }

    #[test]
    fn bsuid_recipient() {
        let mut m = msg(Content::text("hi"));
        m.to = Recipient {
            phone: None,
            bsuid: Some(Bsuid::parse("US.13491208655302741918").unwrap()),
        };
        let f = build_form(&config(), &from(), &m).unwrap();
        assert_eq!(get(&f, "To"), Some("whatsapp:US.13491208655302741918"));
        m.to = Recipient {
            phone: None,
            bsuid: None,
        };
        assert_eq!(
            build_form(&config(), &from(), &m).unwrap_err().kind(),
            ErrorKind::Invalid
        );
    }

    #[test]
    fn length_limit_counts_characters() {
        let ok = "é".repeat(1600);
        assert!(build_form(&config(), &from(), &msg(Content::text(ok))).is_ok());
        let e = build_form(&config(), &from(), &msg(Content::text("a".repeat(1601)))).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Invalid);
        assert!(e.message().contains("1600"), "{}", e.message());
    }

    #[test]
    fn media_with_caption_and_limits() {
        let mut item = MediaItem::from_url(MediaKind::Image, "https://x/a.jpg");
        item.caption = Some("cap".into());
        let c = Content {
            media: vec![item.clone()],
            ..Content::default()
        };
        let f = build_form(&config(), &from(), &msg(c)).unwrap();
        assert_eq!(get(&f, "MediaUrl"), Some("https://x/a.jpg"));
        assert_eq!(get(&f, "Body"), Some("cap"));

        let two = Content {
            media: vec![item.clone(), item.clone()],
            ..Content::default()
        };
        assert_eq!(
            build_form(&config(), &from(), &msg(two))
                .unwrap_err()
                .kind(),
            ErrorKind::Invalid
        );

        let no_url = Content {
            media: vec![MediaItem::from_provider_id(MediaKind::Image, "123")],
            ..Content::default()
        };
        assert_eq!(
            build_form(&config(), &from(), &msg(no_url))
                .unwrap_err()
                .kind(),
            ErrorKind::Invalid
        );

        let sticker = Content {
            media: vec![MediaItem::from_url(MediaKind::Sticker, "https://x/s.webp")],
            ..Content::default()
        };
        assert_eq!(
            build_form(&config(), &from(), &msg(sticker))
                .unwrap_err()
                .kind(),
            ErrorKind::Unsupported
        );
    }

    const SID: &str = "HX0123456789abcdef0123456789abcdef";

    #[test]
    fn template() {
        let mut t = Template {
            name: SID.into(),
            ..Template::default()
        };
        t.variables.insert("1".into(), "12/1".into());
        t.variables.insert("2".into(), "3pm".into());
        let c = Content {
            template: Some(t.clone()),
            ..Content::default()
        };
        let f = build_form(&config(), &from(), &msg(c)).unwrap();
        assert_eq!(get(&f, "ContentSid"), Some(SID));
        assert_eq!(
            get(&f, "ContentVariables"),
            Some(r#"{"1":"12/1","2":"3pm"}"#)
        );
        assert_eq!(get(&f, "Body"), None);
        assert_eq!(get(&f, "MediaUrl"), None);

        let bad = Content {
            template: Some(Template {
                name: "welcome".into(),
                ..Template::default()
            }),
            ..Content::default()
        };
        assert_eq!(
            build_form(&config(), &from(), &msg(bad))
                .unwrap_err()
                .kind(),
            ErrorKind::Invalid
        );
        let mixed = Content {
            template: Some(t),
            text: Some("x".into()),
            ..Content::default()
        };
        assert_eq!(
            build_form(&config(), &from(), &msg(mixed))
                .unwrap_err()
                .kind(),
            ErrorKind::Invalid
        );
    }

    #[test]
    fn template_variables_are_checked_before_sending() {
        let with = |key: &str, value: &str| Content {
            template: Some(Template {
                name: SID.into(),
                variables: [(key.to_owned(), value.to_owned())].into(),
                ..Template::default()
            }),
            ..Content::default()
        };
        let ok = build_form(&config(), &from(), &msg(with("first_name", "Jane"))).unwrap();
        assert_eq!(
            get(&ok, "ContentVariables"),
            Some(r#"{"first_name":"Jane"}"#)
        );
        for (key, value) in [
            ("1", ""),
            ("1", "two\nlines"),
            ("1", "a     b"),
            ("a_very_long_variable", "x"),
        ] {
            let e = build_form(&config(), &from(), &msg(with(key, value))).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Invalid, "{key}={value:?}");
            assert!(e.message().contains("template variable"), "{e}");
        }
        let short = Content {
            template: Some(Template {
                name: "HX123".into(),
                ..Template::default()
            }),
            ..Content::default()
        };
        let e = build_form(&config(), &from(), &msg(short)).unwrap_err();
        assert!(e.message().contains("32 hexadecimal digits"), "{e}");
    }

    fn place() -> Location {
        Location {
            latitude: 37.78789,
            longitude: -122.391664,
            name: Some("Twilio".into()),
            address: Some("375 Beale St".into()),
            url: None,
        }
    }

    #[test]
    fn a_location_is_sent_as_its_content_resource() {
        let c = Content {
            location: Some(place()),
            ..Content::default()
        };
        let spec = content_resource(Dialect::WhatsApp, &c).unwrap().unwrap();
        assert_eq!(spec.content_type(), "twilio/location");
        // Without the resource's SID there is nothing to send.
        let e = build_form(&config(), &from(), &msg(c.clone())).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Invalid);
        let f = build_form_with(
            Dialect::WhatsApp,
            &config(),
            Sender::Number(&from()),
            &msg(c),
            Some(SID),
        )
        .unwrap();
        assert_eq!(get(&f, "ContentSid"), Some(SID));
        for absent in ["Body", "MediaUrl", "PersistentAction", "ContentVariables"] {
            assert_eq!(get(&f, absent), None, "{absent}");
        }
        for text_or_media in [
            Content {
                location: Some(place()),
                text: Some("We are here".into()),
                ..Content::default()
            },
            Content {
                location: Some(place()),
                media: vec![MediaItem::from_url(MediaKind::Image, "https://x/a.jpg")],
                ..Content::default()
            },
        ] {
            assert_eq!(
                content_resource(Dialect::WhatsApp, &text_or_media)
                    .unwrap_err()
                    .kind(),
                ErrorKind::Invalid
            );
        }
    }

    #[test]
    fn interactive_messages_are_content_resources_on_whatsapp_only() {
        let buttons: switchboard_core::InteractiveMessage = serde_json::from_value(
            serde_json::json!({"type": "buttons", "body": "Pick", "buttons": [{"id": "y", "title": "Yes"}]}),
        )
        .unwrap();
        let c = Content {
            interactive_message: Some(buttons),
            ..Content::default()
        };
        let spec = content_resource(Dialect::WhatsApp, &c).unwrap().unwrap();
        assert_eq!(spec.content_type(), "twilio/quick-reply");
        let f = build_form_with(
            Dialect::WhatsApp,
            &config(),
            Sender::Number(&from()),
            &msg(c.clone()),
            Some(SID),
        )
        .unwrap();
        assert_eq!(get(&f, "ContentSid"), Some(SID));
        assert_eq!(get(&f, "Body"), None);
        assert_eq!(
            content_resource(Dialect::Sms, &c).unwrap_err().kind(),
            ErrorKind::Unsupported
        );
        for beside in [
            Content {
                location: Some(place()),
                ..c.clone()
            },
            Content {
                text: Some("also this".into()),
                ..c
            },
        ] {
            assert_eq!(
                content_resource(Dialect::WhatsApp, &beside)
                    .unwrap_err()
                    .kind(),
                ErrorKind::Invalid
            );
        }
    }

    #[test]
    fn media_named_by_switchboard_id_pass_the_check_before_queueing() {
        let mut item = MediaItem::from_url(MediaKind::Image, "");
        item.url = None;
        item.media_id = Some("med_1".into());
        let c = Content {
            media: vec![item.clone()],
            ..Content::default()
        };
        assert!(check_content(Dialect::WhatsApp, &c).is_ok());
        // At delivery it must have its URL.
        assert_eq!(
            content_resource(Dialect::WhatsApp, &c).unwrap_err().kind(),
            ErrorKind::Invalid
        );
        let card: switchboard_core::InteractiveMessage =
            serde_json::from_value(serde_json::json!({
            "type": "buttons", "body": "b", "header": {"type": "image", "media_id": "med_1"},
            "buttons": [{"id": "y", "title": "Yes"}]}))
            .unwrap();
        let c = Content {
            interactive_message: Some(card),
            ..Content::default()
        };
        assert!(check_content(Dialect::WhatsApp, &c).is_ok());
        let neither = Content {
            media: vec![MediaItem::from_provider_id(MediaKind::Image, "123")],
            ..Content::default()
        };
        assert!(check_content(Dialect::WhatsApp, &neither).is_err());
    }

    #[test]
    fn unsupported_content() {
        let c = Content {
            reaction: Some(Reaction {
                message_id: "SM1".into(),
                emoji: Some("👍".into()),
            }),
            ..Content::default()
        };
        assert_eq!(
            build_form(&config(), &from(), &msg(c)).unwrap_err().kind(),
            ErrorKind::Unsupported
        );
        assert_eq!(
            build_form(&config(), &from(), &msg(Content::default()))
                .unwrap_err()
                .kind(),
            ErrorKind::Invalid
        );
    }

    #[test]
    fn receipt_reads_sid_and_status() {
        let body = serde_json::json!({"sid": "SM1", "status": "queued"});
        let r = receipt(&body, switchboard_core::Exchange::default()).unwrap();
        assert_eq!(r.provider_message_id, "SM1");
        assert_eq!(r.status, MessageStatus::Accepted);
        assert!(receipt(&serde_json::json!({"status": "queued"}), Default::default()).is_none());
        assert_eq!(
            form_json(&[("A".into(), "1".into()), ("A".into(), "2".into())]),
            serde_json::json!({"A": ["1", "2"]})
        );
    }
}

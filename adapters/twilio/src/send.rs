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
//! - `reply_to` is ignored: Twilio has no reply context for outbound WhatsApp
//!   (`Capabilities::reply_context` is false).

use chrono::{DateTime, Utc};
use serde_json::Value;
use switchboard_core::{
    AccountContext, ChannelError, ContactIdentity, Exchange, MediaKind, MessageStatus,
    OutboundMessage, PhoneNumber, ProviderError, SendReceipt, StatusUpdate, retry_after_header,
};

use crate::config::{Dialect, TwilioConfig, credentials, is_sid, messaging_service};
use crate::errors::{error_from_response, error_from_transport};
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
/// As [`build_form`]; on SMS also templates, locations and BSUID recipients.
pub fn build_form_as(
    dialect: Dialect,
    config: &TwilioConfig,
    sender: Sender<'_>,
    msg: &OutboundMessage,
) -> Result<Vec<(String, String)>, ChannelError> {
    let c = &msg.content;
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
        if c.text.is_some() || !c.media.is_empty() || c.location.is_some() {
            return Err(ChannelError::invalid(
                "a Twilio template (ContentSid) carries its own text and media: send text, media or location separately",
            ));
        }
        if !t.name.starts_with("HX") {
            return Err(ChannelError::invalid(format!(
                "a Twilio template name must be a Content SID starting with HX, got {:?}",
                t.name
            )));
        }
        if t.header.is_some() || !t.buttons.is_empty() {
            return unsupported(
                "template header or button parameters (Twilio templates take variables only)",
            );
        }
        form.push(("ContentSid".to_owned(), t.name.clone()));
        if !t.variables.is_empty() {
            let vars = serde_json::to_string(&t.variables).map_err(|e| {
                ChannelError::invalid(format!("template variables are not JSON: {e}"))
            })?;
            form.push(("ContentVariables".to_owned(), vars));
        }
    } else {
        let max_media = if sms { MAX_MMS_MEDIA } else { 1 };
        if c.media.len() > max_media {
            return Err(ChannelError::invalid(format!(
                "{} carries at most {max_media} media item(s) per message, got {}",
                dialect.name(),
                c.media.len()
            )));
        }
        // The caption rules below read the first item: one Body serves every item.
        let media = c.media.first();
        if media.is_some() && c.location.is_some() {
            return Err(ChannelError::invalid(
                "a location and media cannot share one Twilio message",
            ));
        }
        let body = match media {
            Some(m) => match (&m.caption, &c.text) {
                (Some(cap), Some(text)) if cap != text => {
                    return Err(ChannelError::invalid(
                        "media with both a caption and a different text: Twilio has one Body",
                    ));
                }
                (cap, text) => cap.clone().or_else(|| text.clone()),
            },
            None => c.text.clone(),
        };
        let body = match (&c.location, body) {
            (Some(loc), None) => Some(
                loc.name
                    .clone()
                    .or_else(|| loc.address.clone())
                    .unwrap_or_else(|| format!("{},{}", loc.latitude, loc.longitude)),
            ),
            (_, body) => body,
        };
        if let Some(b) = &body {
            let n = b.chars().count();
            if n > MAX_BODY_CHARS {
                return Err(ChannelError::invalid(format!(
                    "text is {n} characters; {} allows at most {MAX_BODY_CHARS} (Switchboard refuses rather than splitting)",
                    dialect.name()
                )));
            }
        }
        if body.is_none() && media.is_none() {
            return Err(ChannelError::invalid("the message has no content to send"));
        }
        if let Some(b) = body {
            form.push(("Body".to_owned(), b));
        }
        for m in c.media.iter().take(max_media) {
            if !matches!(
                m.kind,
                MediaKind::Image | MediaKind::Video | MediaKind::Audio | MediaKind::Document
            ) {
                return unsupported(&format!("{} media", m.kind.as_str()));
            }
            let Some(url) = m.url.as_deref().filter(|u| !u.is_empty()) else {
                return Err(ChannelError::invalid(
                    "Twilio sends media by public URL; this media item has none",
                ));
            };
            form.push(("MediaUrl".to_owned(), url.to_owned()));
        }
        if let Some(loc) = &c.location {
            if !(loc.latitude.is_finite() && loc.longitude.is_finite()) {
                return Err(ChannelError::invalid("location coordinates must be finite"));
            }
            let label = loc.name.as_deref().or(loc.address.as_deref()).unwrap_or("");
            form.push((
                "PersistentAction".to_owned(),
                format!("geo:{},{}|{label}", loc.latitude, loc.longitude),
            ));
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
    let form = build_form_as(dialect, config, sender, msg)?;
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
    Err(error_from_response(
        answer.status,
        &error_body(&answer.body),
        retry_after_header(&answer.headers),
        true,
        exchange,
    ))
}

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
        pricing: None,
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
                name: "HXabc".into(),
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

    #[test]
    fn template() {
        let mut t = Template {
            name: "HXabc".into(),
            ..Template::default()
        };
        t.variables.insert("1".into(), "12/1".into());
        t.variables.insert("2".into(), "3pm".into());
        let c = Content {
            template: Some(t.clone()),
            ..Content::default()
        };
        let f = build_form(&config(), &from(), &msg(c)).unwrap();
        assert_eq!(get(&f, "ContentSid"), Some("HXabc"));
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
    fn location() {
        let c = Content {
            location: Some(Location {
                latitude: 37.78789,
                longitude: -122.391664,
                name: Some("Twilio".into()),
                address: None,
                url: None,
            }),
            ..Content::default()
        };
        let f = build_form(&config(), &from(), &msg(c)).unwrap();
        assert_eq!(
            get(&f, "PersistentAction"),
            Some("geo:37.78789,-122.391664|Twilio")
        );
        assert_eq!(get(&f, "Body"), Some("Twilio"));
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

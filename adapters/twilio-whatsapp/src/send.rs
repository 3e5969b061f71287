//! Outbound messages as Twilio Messages API form fields (twilio.md §4), and the API's
//! answer as a [`SendReceipt`].
//!
//! Decisions:
//! - Text over 1,600 characters is refused, not split: a message is never delivered in
//!   surprising pieces; the caller decides how to shorten it.
//! - One media item per message (WhatsApp's rule); the router splits longer lists.
//! - A template (`ContentSid`) carries its own text and media, so text or media beside it
//!   is refused rather than silently dropped.
//! - `reply_to` is ignored: Twilio has no reply context for outbound WhatsApp
//!   (`Capabilities::reply_context` is false).

use serde_json::Value;
use switchboard_core::{
    ChannelError, MediaKind, MessageStatus, OutboundMessage, PhoneNumber, SendReceipt,
};

use crate::config::TwilioConfig;
use crate::webhook::{Form, map_status};

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
    let c = &msg.content;
    let unsupported = |what: &str| {
        Err(ChannelError::unsupported(format!(
            "twilio-whatsapp cannot send {what}"
        )))
    };
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

    let to = match (&msg.to.phone, &msg.to.bsuid) {
        (Some(p), _) => format!("whatsapp:{p}"),
        (None, Some(b)) => format!("whatsapp:{b}"),
        (None, None) => {
            return Err(ChannelError::invalid(
                "the recipient has neither a phone number nor a BSUID",
            ));
        }
    };
    let mut form = vec![
        ("To".to_owned(), to),
        ("From".to_owned(), format!("whatsapp:{from}")),
    ];

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
        if t.header_text.is_some() || t.header_media.is_some() || !t.buttons.is_empty() {
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
        if c.media.len() > 1 {
            return Err(ChannelError::invalid(format!(
                "Twilio WhatsApp carries one media item per message, got {}",
                c.media.len()
            )));
        }
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
                    "text is {n} characters; Twilio WhatsApp allows at most {MAX_BODY_CHARS} (Switchboard refuses rather than splitting)"
                )));
            }
        }
        if body.is_none() && media.is_none() {
            return Err(ChannelError::invalid("the message has no content to send"));
        }
        if let Some(b) = body {
            form.push(("Body".to_owned(), b));
        }
        if let Some(m) = media {
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
pub fn receipt(body: &Value, exchange: switchboard_core::Exchange) -> Option<SendReceipt> {
    let (sid, status) = receipt_fields(body)?;
    Some(SendReceipt {
        provider_message_id: sid,
        status,
        recipient_wa_id: None,
        exchange: Some(exchange),
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

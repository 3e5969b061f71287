//! [`OutboundMessage`] → the JSON body of `POST /{phone_number_id}/messages`
//! (protocols/meta.md §5.2, §10, §12.1, §13.4).
//!
//! Everything Switchboard can refuse by itself (too long, two kinds of content in one
//! message, no recipient) is refused here, before any request is made, as
//! [`ChannelError::invalid`]; content this channel cannot carry at all is
//! [`ChannelError::unsupported`].

use serde_json::{Map, Value, json};
use switchboard_core::{
    ChannelError, ContactCard, Content, InteractiveMessage, Location, MediaItem, MediaKind,
    OutboundMessage, Reaction, Recipient, Template,
};

use crate::{interactive, template};

pub(crate) const MAX_TEXT_CHARS: usize = 4096;
pub(crate) const MAX_CAPTION_CHARS: usize = 1024;

pub(crate) fn too_long(what: &str, s: &str, max: usize) -> Result<(), ChannelError> {
    let n = s.chars().count();
    if n > max {
        return Err(ChannelError::invalid(format!(
            "{what} is {n} characters; Meta allows at most {max}"
        )));
    }
    Ok(())
}

/// Inserts `value` under `key` when it is given.
pub(crate) fn put(obj: &mut Map<String, Value>, key: &str, value: Option<&String>) {
    if let Some(v) = value {
        obj.insert(key.to_owned(), v.as_str().into());
    }
}

/// `{"link": …}` or `{"id": …}` (the id wins: Meta recommends it over links), with a
/// document's `filename`.
pub(crate) fn media_ref(item: &MediaItem) -> Result<Map<String, Value>, ChannelError> {
    let mut obj = Map::new();
    if let Some(id) = item.provider_media_id.as_deref().filter(|s| !s.is_empty()) {
        obj.insert("id".into(), id.into());
    } else if let Some(url) = item.url.as_deref().filter(|s| !s.is_empty()) {
        obj.insert("link".into(), url.into());
    } else {
        return Err(ChannelError::invalid(
            "a media item needs a url or a provider media id",
        ));
    }
    if item.kind == MediaKind::Document
        && let Some(f) = item.filename.as_deref().filter(|s| !s.is_empty())
    {
        obj.insert("filename".into(), f.into());
    }
    Ok(obj)
}

/// A header's media, which Meta takes as an image, a video or a document only:
/// (`type`, `{"type": …, "<type>": {"id"|"link"}}`).
pub(crate) fn header_media(item: &MediaItem) -> Result<Value, ChannelError> {
    let kind = match item.kind {
        MediaKind::Image => "image",
        MediaKind::Video => "video",
        MediaKind::Document => "document",
        other => {
            return Err(ChannelError::invalid(format!(
                "a header can be an image, a video or a document, not {}",
                other.as_str()
            )));
        }
    };
    Ok(json!({"type": kind, kind: Value::Object(media_ref(item)?)}))
}

pub(crate) fn location(l: &Location) -> Value {
    let mut obj = Map::new();
    obj.insert("latitude".into(), l.latitude.into());
    obj.insert("longitude".into(), l.longitude.into());
    put(&mut obj, "name", l.name.as_ref());
    put(&mut obj, "address", l.address.as_ref());
    Value::Object(obj)
}

fn media_message(content: &Content) -> Result<(&'static str, Value), ChannelError> {
    if content.media.len() > 1 {
        return Err(ChannelError::invalid(format!(
            "Meta carries one media item per message, got {} (the router splits them)",
            content.media.len()
        )));
    }
    let Some(item) = content.media.first() else {
        return Err(ChannelError::invalid("no media item"));
    };
    let kind = match item.kind {
        MediaKind::Image => "image",
        MediaKind::Video => "video",
        MediaKind::Audio => "audio",
        MediaKind::Document => "document",
        MediaKind::Sticker => "sticker",
        other => {
            return Err(ChannelError::unsupported(format!(
                "Meta cannot send media of kind {other:?}"
            )));
        }
    };
    let mut obj = media_ref(item)?;
    // The message text doubles as the caption when the item has none.
    let caption = match (item.caption.as_deref(), content.text.as_deref()) {
        (Some(c), Some(t)) if c != t => {
            return Err(ChannelError::invalid(
                "a media message cannot carry both a caption and a different text",
            ));
        }
        (Some(c), _) | (None, Some(c)) => Some(c),
        (None, None) => None,
    };
    if let Some(caption) = caption.filter(|c| !c.is_empty()) {
        if matches!(item.kind, MediaKind::Audio | MediaKind::Sticker) {
            return Err(ChannelError::invalid(format!(
                "Meta does not allow a caption on {kind}"
            )));
        }
        too_long("the caption", caption, MAX_CAPTION_CHARS)?;
        obj.insert("caption".into(), caption.into());
    }
    Ok((kind, Value::Object(obj)))
}

fn text_message(text: &str) -> Result<Value, ChannelError> {
    if text.trim().is_empty() {
        return Err(ChannelError::invalid("the text is empty"));
    }
    too_long("the text", text, MAX_TEXT_CHARS)?;
    let preview = text.contains("http://") || text.contains("https://");
    Ok(json!({"preview_url": preview, "body": text}))
}

/// One card of a contacts message, with the vCard fields as Meta names them (§10.5);
/// checked by `ContactCard::check_all` first.
fn contact_card(card: &ContactCard) -> Value {
    let name = &card.name;
    let mut name_obj = Map::new();
    name_obj.insert("formatted_name".into(), name.formatted_name.as_str().into());
    put(&mut name_obj, "first_name", name.first_name.as_ref());
    put(&mut name_obj, "last_name", name.last_name.as_ref());
    put(&mut name_obj, "middle_name", name.middle_name.as_ref());
    put(&mut name_obj, "suffix", name.suffix.as_ref());
    put(&mut name_obj, "prefix", name.prefix.as_ref());
    let mut obj = Map::new();
    obj.insert("name".into(), Value::Object(name_obj));
    let list = |items: Vec<Map<String, Value>>| {
        Value::Array(items.into_iter().map(Value::Object).collect())
    };
    if !card.phones.is_empty() {
        let phones = card.phones.iter().map(|p| {
            let mut o = Map::new();
            put(&mut o, "phone", p.phone.as_ref());
            put(&mut o, "type", p.kind.as_ref());
            put(&mut o, "wa_id", p.wa_id.as_ref());
            o
        });
        obj.insert("phones".into(), list(phones.collect()));
    }
    if !card.emails.is_empty() {
        let emails = card.emails.iter().map(|e| {
            let mut o = Map::new();
            put(&mut o, "email", e.email.as_ref());
            put(&mut o, "type", e.kind.as_ref());
            o
        });
        obj.insert("emails".into(), list(emails.collect()));
    }
    if !card.addresses.is_empty() {
        let addresses = card.addresses.iter().map(|a| {
            let mut o = Map::new();
            put(&mut o, "street", a.street.as_ref());
            put(&mut o, "city", a.city.as_ref());
            put(&mut o, "state", a.state.as_ref());
            put(&mut o, "zip", a.zip.as_ref());
            put(&mut o, "country", a.country.as_ref());
            put(&mut o, "country_code", a.country_code.as_ref());
            put(&mut o, "type", a.kind.as_ref());
            o
        });
        obj.insert("addresses".into(), list(addresses.collect()));
    }
    if let Some(org) = &card.org {
        let mut o = Map::new();
        put(&mut o, "company", org.company.as_ref());
        put(&mut o, "department", org.department.as_ref());
        put(&mut o, "title", org.title.as_ref());
        obj.insert("org".into(), Value::Object(o));
    }
    if !card.urls.is_empty() {
        let urls = card.urls.iter().map(|u| {
            let mut o = Map::new();
            put(&mut o, "url", u.url.as_ref());
            put(&mut o, "type", u.kind.as_ref());
            o
        });
        obj.insert("urls".into(), list(urls.collect()));
    }
    if let Some(birthday) = &card.birthday {
        obj.insert("birthday".into(), birthday.as_str().into());
    }
    Value::Object(obj)
}

fn contacts_message(cards: &[ContactCard]) -> Result<Value, ChannelError> {
    ContactCard::check_all(cards).map_err(ChannelError::invalid)?;
    Ok(Value::Array(cards.iter().map(contact_card).collect()))
}

/// The recipient field: `to` with the phone number when there is one (it takes
/// precedence at Meta, and api.md sends to a number when both are known), else
/// `recipient` with the BSUID (§12.1).
fn recipient(to: &Recipient) -> Result<(&'static str, &str), ChannelError> {
    match (&to.phone, &to.bsuid) {
        (Some(phone), _) => Ok(("to", phone.as_str())),
        (None, Some(bsuid)) => Ok(("recipient", bsuid.as_str())),
        (None, None) => Err(ChannelError::invalid(
            "the message has neither a phone number nor a BSUID to send to",
        )),
    }
}

/// The part that makes a message's kind.
enum Part<'a> {
    Template(&'a Template),
    Interactive(&'a InteractiveMessage),
    Reaction(&'a Reaction),
    Contacts(&'a [ContactCard]),
    Location(&'a Location),
    /// One media item, the text as its caption.
    Media,
    Text(&'a str),
}

impl<'a> Part<'a> {
    /// As the API names the part.
    fn name(&self) -> &'static str {
        match self {
            Self::Template(_) => "template",
            Self::Interactive(_) => "interactive",
            Self::Reaction(_) => "reaction",
            Self::Contacts(_) => "contacts",
            Self::Location(_) => "location",
            Self::Media => "media",
            Self::Text(_) => "text",
        }
    }

    /// The one part of `c`; two kinds in one message are refused (text rides along with
    /// media as its caption, but with anything else it is a second kind).
    fn of(c: &'a Content) -> Result<Self, ChannelError> {
        let mut parts: Vec<Self> = [
            c.template.as_ref().map(Self::Template),
            c.interactive_message.as_ref().map(Self::Interactive),
            c.reaction.as_ref().map(Self::Reaction),
            (!c.contacts.is_empty()).then_some(Self::Contacts(&c.contacts)),
            c.location.as_ref().map(Self::Location),
            (!c.media.is_empty()).then_some(Self::Media),
        ]
        .into_iter()
        .flatten()
        .collect();
        if let Some(text) = &c.text
            && !matches!(parts.as_slice(), [Self::Media])
        {
            parts.push(Self::Text(text));
        }
        if parts.len() > 1 {
            let names: Vec<&str> = parts.iter().map(Self::name).collect();
            return Err(ChannelError::invalid(format!(
                "a Meta message carries one kind of content, not {}",
                names.join(" and ")
            )));
        }
        parts
            .pop()
            .ok_or_else(|| ChannelError::invalid("the message has no content"))
    }
}

/// The JSON body for `POST /{phone_number_id}/messages`.
///
/// # Errors
/// [`ChannelError`] of kind `Invalid` or `Unsupported` for anything Meta would refuse.
pub(crate) fn build(msg: &OutboundMessage) -> Result<Value, ChannelError> {
    let c = &msg.content;
    if c.interactive.is_some()
        || c.edit_of.is_some()
        || c.revoke_of.is_some()
        || c.system.is_some()
        || c.unsupported.is_some()
    {
        return Err(ChannelError::unsupported(format!(
            "Meta adapter cannot send {} content",
            c.kind()
        )));
    }
    let part = Part::of(c)?;
    let (type_name, payload) = match &part {
        Part::Template(t) => ("template", template::payload(t)?),
        Part::Interactive(m) => ("interactive", interactive::payload(m)?),
        Part::Reaction(r) => {
            if r.message_id.trim().is_empty() {
                return Err(ChannelError::invalid(
                    "a reaction needs the id of the message it reacts to",
                ));
            }
            // An empty emoji removes the reaction.
            let emoji = r.emoji.as_deref().unwrap_or("");
            (
                "reaction",
                json!({"message_id": r.message_id, "emoji": emoji}),
            )
        }
        Part::Contacts(cards) => ("contacts", contacts_message(cards)?),
        Part::Location(l) => ("location", location(l)),
        Part::Media => media_message(c)?,
        Part::Text(text) => ("text", text_message(text)?),
    };
    let (to_field, to) = recipient(&msg.to)?;
    let mut body = Map::new();
    body.insert("messaging_product".into(), "whatsapp".into());
    body.insert("recipient_type".into(), "individual".into());
    body.insert(to_field.into(), to.into());
    body.insert("type".into(), type_name.into());
    body.insert(type_name.into(), payload);
    // A reaction names its message itself and cannot be a contextual reply (§5.2).
    if !matches!(part, Part::Reaction(_))
        && let Some(reply_to) = msg.reply_to.as_deref().filter(|s| !s.is_empty())
    {
        body.insert("context".into(), json!({"message_id": reply_to}));
    }
    // Echoed back on every status webhook, so a status can find its message even when the
    // send response was lost.
    body.insert("biz_opaque_callback_data".into(), msg.id.as_str().into());
    Ok(Value::Object(body))
}

#[cfg(test)]
mod tests {
    use switchboard_core::{
        Bsuid, ContactAddress, ContactEmail, ContactName, ContactOrg, ContactPhone, ContactUrl,
        ErrorKind, PhoneNumber,
    };

    use super::*;

    fn msg(content: Content) -> OutboundMessage {
        OutboundMessage {
            id: "msg_1".into(),
            to: Recipient::phone(PhoneNumber::parse("+16505551234").unwrap()),
            content,
            reply_to: None,
        }
    }

    #[test]
    fn text_body_with_preview_and_context() {
        let mut m = msg(Content::text("see https://example.com"));
        m.reply_to = Some("wamid.orig".into());
        assert_eq!(
            build(&m).unwrap(),
            json!({
                "messaging_product": "whatsapp",
                "recipient_type": "individual",
                "to": "+16505551234",
                "type": "text",
                "text": {"preview_url": true, "body": "see https://example.com"},
                "context": {"message_id": "wamid.orig"},
                "biz_opaque_callback_data": "msg_1",
            })
        );
        let plain = build(&msg(Content::text("hi"))).unwrap();
        assert_eq!(plain["text"]["preview_url"], json!(false));
    }

    #[test]
    fn limits_are_checked_in_characters() {
        assert!(build(&msg(Content::text("é".repeat(4096)))).is_ok());
        let e = build(&msg(Content::text("a".repeat(4097)))).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Invalid);
        let mut item = MediaItem::from_url(MediaKind::Image, "https://x/a.jpg");
        item.caption = Some("c".repeat(1025));
        let c = Content {
            media: vec![item],
            ..Content::default()
        };
        assert!(build(&msg(c)).is_err());
    }

    #[test]
    fn media_rules() {
        let two = Content {
            media: vec![
                MediaItem::from_url(MediaKind::Image, "https://x/1.jpg"),
                MediaItem::from_url(MediaKind::Image, "https://x/2.jpg"),
            ],
            ..Content::default()
        };
        assert!(build(&msg(two)).is_err());
        // Text becomes the caption.
        let c = Content {
            text: Some("look".into()),
            media: vec![MediaItem::from_provider_id(MediaKind::Video, "123")],
            ..Content::default()
        };
        let b = build(&msg(c)).unwrap();
        assert_eq!(b["type"], "video");
        assert_eq!(b["video"], json!({"id": "123", "caption": "look"}));
        // No caption on stickers.
        let c = Content {
            text: Some("x".into()),
            media: vec![MediaItem::from_provider_id(MediaKind::Sticker, "9")],
            ..Content::default()
        };
        assert!(build(&msg(c)).is_err());
    }

    #[test]
    fn a_bsuid_alone_goes_in_recipient_and_a_phone_wins_over_it() {
        let bsuid = Bsuid::parse("US.13491208655302741918").unwrap();
        let mut m = msg(Content::text("hi"));
        m.to = Recipient {
            phone: None,
            bsuid: Some(bsuid.clone()),
        };
        let b = build(&m).unwrap();
        assert_eq!(b["recipient"], "US.13491208655302741918");
        assert!(b.get("to").is_none(), "{b}");
        m.to.phone = Some(PhoneNumber::parse("+16505551234").unwrap());
        let b = build(&m).unwrap();
        assert_eq!(b["to"], "+16505551234");
        assert!(b.get("recipient").is_none(), "{b}");
        m.to = Recipient {
            phone: None,
            bsuid: None,
        };
        assert_eq!(build(&m).unwrap_err().kind(), ErrorKind::Invalid);
    }

    #[test]
    fn reaction_location_and_refusals() {
        let mut m = msg(Content {
            reaction: Some(Reaction {
                message_id: "wamid.x".into(),
                emoji: None,
            }),
            ..Content::default()
        });
        m.reply_to = Some("wamid.x".into());
        let b = build(&m).unwrap();
        assert_eq!(b["reaction"], json!({"message_id": "wamid.x", "emoji": ""}));
        assert!(b.get("context").is_none());
        let b = build(&msg(Content {
            location: Some(Location {
                latitude: 1.5,
                longitude: -2.0,
                name: Some("HQ".into()),
                address: None,
                url: None,
            }),
            ..Content::default()
        }))
        .unwrap();
        assert_eq!(
            b["location"],
            json!({"latitude": 1.5, "longitude": -2.0, "name": "HQ"})
        );
        assert!(build(&msg(Content::default())).is_err());
        let revoke = Content {
            revoke_of: Some("wamid.y".into()),
            ..Content::default()
        };
        assert_eq!(
            build(&msg(revoke)).unwrap_err().kind(),
            ErrorKind::Unsupported
        );
    }

    #[test]
    fn two_kinds_in_one_message_are_refused_by_name() {
        let c = Content {
            text: Some("hi".into()),
            template: Some(Template {
                name: "t".into(),
                language: Some("en".into()),
                ..Template::default()
            }),
            ..Content::default()
        };
        let e = build(&msg(c)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Invalid);
        assert!(e.message().contains("template and text"), "{}", e.message());
        let c = Content {
            location: Some(Location {
                latitude: 0.0,
                longitude: 0.0,
                name: None,
                address: None,
                url: None,
            }),
            contacts: vec![ContactCard::default()],
            ..Content::default()
        };
        let e = build(&msg(c)).unwrap_err();
        assert!(
            e.message().contains("contacts and location"),
            "{}",
            e.message()
        );
    }

    fn full_card() -> ContactCard {
        ContactCard {
            name: ContactName {
                formatted_name: "Barbara J. Johnson".into(),
                first_name: Some("Barbara".into()),
                last_name: Some("Johnson".into()),
                middle_name: Some("Joana".into()),
                suffix: Some("Esq.".into()),
                prefix: Some("Dr.".into()),
            },
            phones: vec![ContactPhone {
                phone: Some("+16505559999".into()),
                kind: Some("Home".into()),
                wa_id: Some("19175559999".into()),
            }],
            emails: vec![ContactEmail {
                email: Some("bjohnson@luckyshrub.com".into()),
                kind: Some("Work".into()),
            }],
            addresses: vec![ContactAddress {
                street: Some("1 Lucky Shrub Way".into()),
                city: Some("Menlo Park".into()),
                state: Some("CA".into()),
                zip: Some("94025".into()),
                country: Some("United States".into()),
                country_code: Some("US".into()),
                kind: Some("Office".into()),
            }],
            org: Some(ContactOrg {
                company: Some("Lucky Shrub".into()),
                department: Some("Legal".into()),
                title: Some("Lead Counsel".into()),
            }),
            urls: vec![ContactUrl {
                url: Some("https://www.luckyshrub.com".into()),
                kind: Some("Company".into()),
            }],
            birthday: Some("1999-01-23".into()),
        }
    }

    #[test]
    fn contact_cards_carry_every_vcard_field_as_meta_names_it() {
        let b = build(&msg(Content {
            contacts: vec![full_card()],
            ..Content::default()
        }))
        .unwrap();
        assert_eq!(b["type"], "contacts");
        // Meta's example (protocols/meta.md §10.5), field for field.
        assert_eq!(
            b["contacts"],
            json!([{
                "addresses": [{"street": "1 Lucky Shrub Way", "city": "Menlo Park", "state": "CA",
                    "zip": "94025", "country": "United States", "country_code": "US", "type": "Office"}],
                "birthday": "1999-01-23",
                "emails": [{"email": "bjohnson@luckyshrub.com", "type": "Work"}],
                "name": {"formatted_name": "Barbara J. Johnson", "first_name": "Barbara",
                    "last_name": "Johnson", "middle_name": "Joana", "suffix": "Esq.", "prefix": "Dr."},
                "org": {"company": "Lucky Shrub", "department": "Legal", "title": "Lead Counsel"},
                "phones": [{"phone": "+16505559999", "type": "Home", "wa_id": "19175559999"}],
                "urls": [{"url": "https://www.luckyshrub.com", "type": "Company"}],
            }])
        );
    }

    #[test]
    fn contact_cards_need_a_formatted_name_and_a_real_birthday() {
        let nameless = Content {
            contacts: vec![ContactCard::default()],
            ..Content::default()
        };
        let e = build(&msg(nameless)).unwrap_err();
        assert!(e.message().contains("formatted_name"), "{}", e.message());
        for bad in ["23-01-1999", "1999-02-30", "1999-1-2"] {
            let mut card = full_card();
            card.birthday = Some(bad.into());
            let e = build(&msg(Content {
                contacts: vec![card],
                ..Content::default()
            }))
            .unwrap_err();
            assert!(e.message().contains("YYYY-MM-DD"), "{bad}");
        }
        let many = Content {
            contacts: vec![full_card(); 258],
            ..Content::default()
        };
        assert!(build(&msg(many)).unwrap_err().message().contains("257"));
    }
}

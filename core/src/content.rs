//! What a message says, in one canonical form for every channel.
//!
//! One provider message may carry several parts (text and several media items), so
//! [`Content`] is a struct of optional parts rather than an enum. Nothing a provider sends
//! is dropped: kinds Switchboard does not model become [`Unsupported`] with the provider's
//! type kept, and the raw payload is stored beside the canonical form.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::interactive::InteractiveMessage;

/// The content of one message.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Content {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Media items, in the order the provider listed them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub media: Vec<MediaItem>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<Template>,
    /// A person's answer to an interactive element (inbound).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interactive: Option<InteractiveReply>,
    /// An interactive message the business sends: buttons, a list, a link, a Flow or a
    /// location request (the `interactive` field of `POST /v1/messages`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interactive_message: Option<InteractiveMessage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reaction: Option<Reaction>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub contacts: Vec<ContactCard>,
    /// This message edits an earlier one (its provider id); the new text is in `text`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edit_of: Option<String>,
    /// This message revokes (deletes) an earlier one (its provider id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoke_of: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<SystemNotice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unsupported: Option<Unsupported>,
}

impl Content {
    /// Plain text.
    pub fn text(body: impl Into<String>) -> Self {
        Self {
            text: Some(body.into()),
            ..Self::default()
        }
    }

    /// Whether it carries nothing at all.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// Whether it is free-form (anything but a template): only allowed inside the channel's
    /// customer-service window, on a channel that has one (`Capabilities::service_window`).
    pub fn is_free_form(&self) -> bool {
        self.template.is_none()
    }

    /// Every media item of the message, wherever it sits: the media list, a template's
    /// header, an interactive message's header. The router resolves uploads (`media_id`)
    /// in all of them alike.
    pub fn media_items_mut(&mut self) -> impl Iterator<Item = &mut MediaItem> {
        let template_header = self.template.as_mut().and_then(|t| t.header.as_mut());
        let interactive_header = self
            .interactive_message
            .as_mut()
            .and_then(|i| i.header.as_mut());
        self.media.iter_mut().chain(
            [template_header, interactive_header]
                .into_iter()
                .flatten()
                .filter_map(|h| match h {
                    Header::Media(item) => Some(item),
                    Header::Text(_) | Header::Location(_) => None,
                }),
        )
    }

    /// A short name of the main kind, for metrics and logs.
    pub fn kind(&self) -> &'static str {
        if self.template.is_some() {
            "template"
        } else if self.reaction.is_some() {
            "reaction"
        } else if self.interactive.is_some() || self.interactive_message.is_some() {
            "interactive"
        } else if !self.media.is_empty() {
            "media"
        } else if self.location.is_some() {
            "location"
        } else if !self.contacts.is_empty() {
            "contacts"
        } else if self.edit_of.is_some() {
            "edit"
        } else if self.revoke_of.is_some() {
            "revoke"
        } else if self.system.is_some() {
            "system"
        } else if self.unsupported.is_some() {
            "unsupported"
        } else if self.text.is_some() {
            "text"
        } else {
            "empty"
        }
    }
}

/// The kind of a media item.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum MediaKind {
    Image,
    Video,
    Audio,
    Document,
    Sticker,
}

impl MediaKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Image => "image",
            Self::Video => "video",
            Self::Audio => "audio",
            Self::Document => "document",
            Self::Sticker => "sticker",
        }
    }

    /// Parses `image`, `video`, `audio`, `document` or `sticker`.
    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Image,
            Self::Video,
            Self::Audio,
            Self::Document,
            Self::Sticker,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }

    /// Best guess from a MIME type (`image/webp` is taken as an image, not a sticker).
    pub fn from_mime(mime: &str) -> Self {
        let essence = mime.split(';').next().unwrap_or("").trim();
        match essence.split('/').next().unwrap_or("") {
            "image" => Self::Image,
            "video" => Self::Video,
            "audio" => Self::Audio,
            _ => Self::Document,
        }
    }
}

/// One media item: a link, a provider media id, or both.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MediaItem {
    pub kind: MediaKind,
    /// Where it can be fetched (Twilio `MediaUrl{N}`, or a public link to send).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The provider's media id (Meta `image.id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_media_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caption: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
    /// The provider's checksum, as it sent it (Meta: base64 SHA-256).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// A voice note rather than an audio file.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub voice: bool,
    /// An animated sticker.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub animated: bool,
    /// Switchboard's own media id (`med_…`): an uploaded file to send, or where the router
    /// stored an inbound item. Adapters never see it set on a message to send: the router
    /// turns it into a `url` or a `provider_media_id` first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_id: Option<String>,
}

impl MediaItem {
    /// A media item known by URL.
    pub fn from_url(kind: MediaKind, url: impl Into<String>) -> Self {
        Self {
            kind,
            url: Some(url.into()),
            provider_media_id: None,
            mime_type: None,
            caption: None,
            filename: None,
            sha256: None,
            voice: false,
            animated: false,
            media_id: None,
        }
    }

    /// A media item known by the provider's media id.
    pub fn from_provider_id(kind: MediaKind, id: impl Into<String>) -> Self {
        Self {
            url: None,
            provider_media_id: Some(id.into()),
            ..Self::from_url(kind, String::new())
        }
    }
}

/// A shared location.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Location {
    pub latitude: f64,
    pub longitude: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// A reference to a template approved at the provider.
///
/// For Twilio `name` is the Content SID (`HX…`) and `variables` become `ContentVariables`;
/// for Meta `name` and `language` are the approved template's and `variables` fill its body
/// parameters in the order of their keys.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Template {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub variables: BTreeMap<String, String>,
    /// The header parameter: text, a media item or a location.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<Header>,
    /// Button parameters (quick-reply payloads, URL suffixes, copy codes), by button index.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub buttons: Vec<TemplateButton>,
}

/// A parameter for one template button.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateButton {
    /// The button's position in the template, from 0.
    pub index: u32,
    /// `quick_reply` (a payload), `url` (a suffix for the template's URL) or `copy_code`
    /// (the code to copy).
    pub sub_type: String,
    pub value: String,
}

impl TemplateButton {
    /// The button kinds a template send can fill in.
    pub const SUB_TYPES: [&'static str; 3] = ["quick_reply", "url", "copy_code"];
}

/// The header of a template or an interactive message. Its JSON form is the API's:
/// `{"type":"text","text"}`, `{"type":"image"|"video"|"document","url"|"media_id",
/// "filename"}` or `{"type":"location","latitude","longitude","name","address"}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "HeaderFields", into = "HeaderFields")]
pub enum Header {
    Text(String),
    /// An image, video or document.
    Media(MediaItem),
    /// Template headers only.
    Location(Location),
}

/// The flat JSON form of [`Header`].
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct HeaderFields {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    media_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    provider_media_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mime_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    filename: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    latitude: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    longitude: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    address: Option<String>,
}

impl TryFrom<HeaderFields> for Header {
    type Error = String;

    fn try_from(f: HeaderFields) -> Result<Self, String> {
        let media_fields = f.url.is_some() || f.media_id.is_some() || f.provider_media_id.is_some();
        let location_fields = f.latitude.is_some() || f.longitude.is_some();
        match f.kind.as_str() {
            "text" => {
                if media_fields || location_fields || f.filename.is_some() {
                    return Err("a text header has only `text`".into());
                }
                f.text
                    .map(Header::Text)
                    .ok_or_else(|| "a text header needs `text`".into())
            }
            "image" | "video" | "document" => {
                if f.text.is_some() || location_fields {
                    return Err(format!("a {} header has `url` or `media_id`", f.kind));
                }
                if !media_fields {
                    return Err(format!("a {} header needs `url` or `media_id`", f.kind));
                }
                if f.url.is_some() && f.media_id.is_some() {
                    return Err("a header has a url or a media_id, not both".into());
                }
                let kind = MediaKind::parse(&f.kind).unwrap_or(MediaKind::Document);
                let mut item = MediaItem::from_url(kind, String::new());
                item.url = f.url;
                item.media_id = f.media_id;
                item.provider_media_id = f.provider_media_id;
                item.mime_type = f.mime_type;
                item.filename = f.filename;
                Ok(Header::Media(item))
            }
            "location" => match (f.latitude, f.longitude) {
                (Some(latitude), Some(longitude)) if f.text.is_none() && !media_fields => {
                    Ok(Header::Location(Location {
                        latitude,
                        longitude,
                        name: f.name,
                        address: f.address,
                        url: None,
                    }))
                }
                _ => Err("a location header has `latitude` and `longitude`".into()),
            },
            other => Err(format!(
                "header type {other:?} is not text, image, video, document or location"
            )),
        }
    }
}

impl From<Header> for HeaderFields {
    fn from(h: Header) -> Self {
        match h {
            Header::Text(text) => Self {
                kind: "text".into(),
                text: Some(text),
                ..Self::default()
            },
            Header::Media(m) => Self {
                kind: m.kind.as_str().into(),
                url: m.url,
                media_id: m.media_id,
                provider_media_id: m.provider_media_id,
                mime_type: m.mime_type,
                filename: m.filename,
                ..Self::default()
            },
            Header::Location(l) => Self {
                kind: "location".into(),
                latitude: Some(l.latitude),
                longitude: Some(l.longitude),
                name: l.name,
                address: l.address,
                ..Self::default()
            },
        }
    }
}

/// Which interactive element a person answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum InteractiveKind {
    /// A reply button of an interactive message.
    ButtonReply,
    /// A row of an interactive list.
    ListReply,
    /// A quick-reply button of a template.
    TemplateButton,
    /// A WhatsApp Flow response.
    FlowReply,
}

/// A person's answer to an interactive element.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InteractiveReply {
    pub kind: InteractiveKind,
    /// The id or payload the business attached to the option.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The option's visible title.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Structured data (a Flow's response JSON), as sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Value>,
}

/// A reaction to an earlier message; `emoji` is `None` when the reaction was removed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reaction {
    /// The provider id of the message reacted to.
    pub message_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emoji: Option<String>,
}

/// A contact card (vCard) shared in a message, with the fields as Meta names them
/// (protocols/meta.md §10.5); `name.formatted_name` is the one required field.
///
/// Cards stored before this shape (`{"name":"…","phones":["…"],"organization":"…"}`)
/// still read.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(from = "ContactCardFields")]
pub struct ContactCard {
    pub name: ContactName,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub phones: Vec<ContactPhone>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub emails: Vec<ContactEmail>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<ContactAddress>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<ContactOrg>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<ContactUrl>,
    /// `YYYY-MM-DD`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub birthday: Option<String>,
}

/// What a card's JSON may hold: today's fields and the earlier flat ones.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ContactCardFields {
    #[serde(default)]
    name: Option<NameOrText>,
    #[serde(default)]
    phones: Vec<PhoneOrText>,
    #[serde(default)]
    emails: Vec<ContactEmail>,
    #[serde(default)]
    addresses: Vec<ContactAddress>,
    #[serde(default)]
    org: Option<ContactOrg>,
    #[serde(default)]
    urls: Vec<ContactUrl>,
    #[serde(default)]
    birthday: Option<String>,
    /// The earlier flat form of `org.company`.
    #[serde(default)]
    organization: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum NameOrText {
    Name(ContactName),
    Text(String),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum PhoneOrText {
    Phone(ContactPhone),
    Text(String),
}

impl From<ContactCardFields> for ContactCard {
    fn from(f: ContactCardFields) -> Self {
        let name = match f.name {
            Some(NameOrText::Name(n)) => n,
            Some(NameOrText::Text(formatted_name)) => ContactName {
                formatted_name,
                ..ContactName::default()
            },
            None => ContactName::default(),
        };
        let org = f.org.or_else(|| {
            f.organization.map(|company| ContactOrg {
                company: Some(company),
                ..ContactOrg::default()
            })
        });
        Self {
            name,
            phones: f
                .phones
                .into_iter()
                .map(|p| match p {
                    PhoneOrText::Phone(p) => p,
                    PhoneOrText::Text(phone) => ContactPhone {
                        phone: Some(phone),
                        ..ContactPhone::default()
                    },
                })
                .collect(),
            emails: f.emails,
            addresses: f.addresses,
            org,
            urls: f.urls,
            birthday: f.birthday,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContactName {
    /// How the name is shown; required.
    #[serde(default)]
    pub formatted_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub middle_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suffix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContactPhone {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// `Home`, `Work`, `CELL`, …
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// The number's WhatsApp id, which makes the card offer "Message".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wa_id: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContactEmail {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContactAddress {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub street: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country_code: Option<String>,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContactOrg {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub company: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub department: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContactUrl {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

impl ContactCard {
    /// Meta's limit on cards per message (protocols/meta.md §10.5).
    pub const MAX_PER_MESSAGE: usize = 257;

    /// Checks the cards of one message: at most [`Self::MAX_PER_MESSAGE`], each with a
    /// `name.formatted_name` (the one required field) and a birthday, when given, spelled
    /// `YYYY-MM-DD` (protocols/meta.md §10.5).
    ///
    /// # Errors
    /// What is wrong, naming the card, in words for an API error message.
    pub fn check_all(cards: &[Self]) -> Result<(), String> {
        if cards.len() > Self::MAX_PER_MESSAGE {
            return Err(format!(
                "a message carries at most {} contact cards, not {}",
                Self::MAX_PER_MESSAGE,
                cards.len()
            ));
        }
        for (i, card) in cards.iter().enumerate() {
            if card.name.formatted_name.trim().is_empty() {
                return Err(format!("contacts[{i}].name.formatted_name is required"));
            }
            if let Some(b) = &card.birthday {
                let date =
                    b.len() == 10 && chrono::NaiveDate::parse_from_str(b, "%Y-%m-%d").is_ok();
                if !date {
                    return Err(format!(
                        "contacts[{i}].birthday {b:?} is not a YYYY-MM-DD date"
                    ));
                }
            }
        }
        Ok(())
    }
}

/// A notice from the platform rather than the person (e.g. the user changed number). It is
/// stored as a message of its conversation but is not the person writing: it neither opens
/// the service window nor changes an opt-out.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SystemNotice {
    /// The provider's notice type, e.g. `user_changed_number`.
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// The person's new WhatsApp id (digits), when the notice is a number change: the
    /// router moves the contact to that number and keeps the old one as an alias.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_wa_id: Option<String>,
    /// The person's new business-scoped user id, when the notice is a BSUID change: the
    /// router adds it to the contact and keeps the old one as an alias.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_user_id: Option<String>,
}

/// Content Switchboard does not model, or whose provider object was missing or unreadable;
/// kept, never dropped (the raw payload is stored beside it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unsupported {
    /// The provider's own type name (e.g. `order`, `poll_creation`, or `image` for an image
    /// message whose image object was missing).
    pub provider_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The errors the provider attached to the message (Meta's `errors[]` on an
    /// `unsupported` message: code, title, details).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<crate::event::ProviderError>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_parts_are_not_serialized() {
        let c = Content::text("hi");
        assert_eq!(serde_json::to_string(&c).unwrap(), r#"{"text":"hi"}"#);
        let back: Content = serde_json::from_str(r#"{"text":"hi"}"#).unwrap();
        assert_eq!(back, c);
        assert!(Content::default().is_empty());
        assert_eq!(c.kind(), "text");
    }

    #[test]
    fn media_kind_from_mime() {
        assert_eq!(MediaKind::from_mime("image/jpeg"), MediaKind::Image);
        assert_eq!(
            MediaKind::from_mime("audio/ogg; codecs=opus"),
            MediaKind::Audio
        );
        assert_eq!(MediaKind::from_mime("application/pdf"), MediaKind::Document);
        assert_eq!(MediaKind::parse("sticker"), Some(MediaKind::Sticker));
        assert_eq!(MediaKind::parse("gif"), None);
    }

    #[test]
    fn headers_read_and_write_the_api_shape() {
        let text: Header = serde_json::from_str(r#"{"type":"text","text":"Hi"}"#).unwrap();
        assert_eq!(text, Header::Text("Hi".into()));
        let doc: Header = serde_json::from_str(
            r#"{"type":"document","url":"https://x.test/a.pdf","filename":"a.pdf"}"#,
        )
        .unwrap();
        let Header::Media(item) = &doc else {
            panic!("{doc:?}")
        };
        assert_eq!(item.kind, MediaKind::Document);
        assert_eq!(item.filename.as_deref(), Some("a.pdf"));
        assert_eq!(
            serde_json::to_value(&doc).unwrap(),
            serde_json::json!({"type":"document","url":"https://x.test/a.pdf","filename":"a.pdf"})
        );
        let loc: Header =
            serde_json::from_str(r#"{"type":"location","latitude":1.5,"longitude":2}"#).unwrap();
        assert!(matches!(loc, Header::Location(l) if l.latitude == 1.5));
        for bad in [
            r#"{"type":"text"}"#,
            r#"{"type":"image"}"#,
            r#"{"type":"image","url":"u","media_id":"m"}"#,
            r#"{"type":"image","text":"x","url":"u"}"#,
            r#"{"type":"location","latitude":1}"#,
            r#"{"type":"gif","url":"u"}"#,
            r#"{"type":"text","text":"x","colour":"red"}"#,
        ] {
            assert!(serde_json::from_str::<Header>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn contact_cards_stored_in_the_earlier_flat_shape_still_read() {
        let old: ContactCard = serde_json::from_str(
            r#"{"name":"John Doe","phones":["+16505551234"],"organization":"Acme"}"#,
        )
        .unwrap();
        assert_eq!(old.name.formatted_name, "John Doe");
        assert_eq!(old.phones[0].phone.as_deref(), Some("+16505551234"));
        assert_eq!(old.org.and_then(|o| o.company).as_deref(), Some("Acme"));
        let card: ContactCard = serde_json::from_str(
            r#"{"name":{"formatted_name":"Ann"},"phones":[{"phone":"+1","type":"Home"}],
                "emails":[{"email":"a@x.test"}],"birthday":"1999-01-23"}"#,
        )
        .unwrap();
        let back = serde_json::to_value(&card).unwrap();
        assert_eq!(back["phones"][0]["type"], "Home");
        assert_eq!(back["name"], serde_json::json!({"formatted_name": "Ann"}));
        assert!(serde_json::from_str::<ContactCard>(r#"{"nmae":"x"}"#).is_err());
    }

    #[test]
    fn media_items_include_header_media() {
        let mut c = Content {
            media: vec![MediaItem::from_url(MediaKind::Image, "a")],
            template: Some(Template {
                name: "t".into(),
                header: Some(Header::Media(MediaItem::from_url(MediaKind::Video, "b"))),
                ..Template::default()
            }),
            ..Content::default()
        };
        let urls: Vec<_> = c
            .media_items_mut()
            .map(|m| m.url.clone().unwrap())
            .collect();
        assert_eq!(urls, ["a", "b"]);
    }

    #[test]
    fn templates_are_not_free_form() {
        let c = Content {
            template: Some(Template {
                name: "HX123".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(!c.is_free_form());
        assert!(Content::text("x").is_free_form());
    }
}

//! What a message says, in one canonical form for every channel.
//!
//! One provider message may carry several parts (text and several media items), so
//! [`Content`] is a struct of optional parts rather than an enum. Nothing a provider sends
//! is dropped: kinds Switchboard does not model become [`Unsupported`] with the provider's
//! type kept, and the raw payload is stored beside the canonical form.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interactive: Option<InteractiveReply>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reaction: Option<Reaction>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub contacts: Vec<SharedContact>,
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

    /// A short name of the main kind, for metrics and logs.
    pub fn kind(&self) -> &'static str {
        if self.template.is_some() {
            "template"
        } else if self.reaction.is_some() {
            "reaction"
        } else if self.interactive.is_some() {
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
    /// A header parameter: text, or a media item.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header_text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header_media: Option<MediaItem>,
    /// Button parameters (quick-reply payloads or URL suffixes), by button index.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub buttons: Vec<TemplateButton>,
}

/// A parameter for one template button.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateButton {
    pub index: u32,
    /// `quick_reply` (a payload) or `url` (a URL suffix).
    pub sub_type: String,
    pub value: String,
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

/// A contact card shared in a message.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SharedContact {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub phones: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization: Option<String>,
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

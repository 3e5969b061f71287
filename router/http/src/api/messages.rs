//! `POST /v1/messages` (send) and `GET /v1/messages/{id}`.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use switchboard_core::{
    ContactCard, Content, Header, InteractiveMessage, Location, MediaItem, MediaKind, Reaction,
    Template, TemplateButton,
};

use super::{ApiJson, ApiResult, Auth, OptionalApiJson};
use crate::AppState;
use switchboard_router::error::RouterError;
use switchboard_router::outbound::send::{FallbackTarget, SendAccepted, SendRequest};
use switchboard_router::records::queries::MessageView;

/// The body of `POST /v1/messages`. Unknown fields are refused, so a typo (`txt`) is a 400
/// rather than a silently empty message.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SendBody {
    to: String,
    text: Option<String>,
    channel: Option<String>,
    from: Option<String>,
    #[serde(default)]
    media: Vec<MediaBody>,
    template: Option<TemplateBody>,
    location: Option<LocationBody>,
    #[serde(default)]
    contacts: Vec<ContactCard>,
    interactive: Option<InteractiveMessage>,
    reaction: Option<ReactionBody>,
    reply_to: Option<String>,
    idempotency_key: Option<String>,
    /// Channels to send on next, in order, when the recipient cannot be reached on the first.
    #[serde(default)]
    fallback: Vec<FallbackBody>,
}

/// One fallback channel: `{"channel","from"}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FallbackBody {
    channel: String,
    from: Option<String>,
}

/// A reaction to one of the tenant's messages, named by its Switchboard id; `emoji` absent
/// or empty removes an earlier reaction.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReactionBody {
    message_id: String,
    emoji: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MediaBody {
    url: Option<String>,
    /// An upload (`POST /v1/media`) of this tenant, instead of `url`.
    media_id: Option<String>,
    kind: Option<String>,
    caption: Option<String>,
    filename: Option<String>,
    mime_type: Option<String>,
}

/// `{"latitude","longitude","name","address"}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LocationBody {
    latitude: f64,
    longitude: f64,
    name: Option<String>,
    address: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TemplateBody {
    name: String,
    language: Option<String>,
    #[serde(default)]
    variables: BTreeMap<String, String>,
    header: Option<Header>,
    #[serde(default)]
    buttons: Vec<TemplateButtonBody>,
}

/// One template button's parameter: `{"index","type":"quick_reply","payload"}` or
/// `{"index","type":"url"|"copy_code","text"}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TemplateButtonBody {
    index: u32,
    #[serde(rename = "type")]
    kind: String,
    payload: Option<String>,
    text: Option<String>,
}

impl TemplateButtonBody {
    fn into_button(self) -> Result<TemplateButton, RouterError> {
        let value = match (self.kind.as_str(), self.payload, self.text) {
            ("quick_reply", Some(payload), None) => payload,
            ("url" | "copy_code", None, Some(text)) => text,
            ("quick_reply", _, _) => {
                return Err(RouterError::invalid(
                    "invalid_template",
                    format!(
                        "template button {} (quick_reply) takes `payload`",
                        self.index
                    ),
                ));
            }
            ("url" | "copy_code", _, _) => {
                return Err(RouterError::invalid(
                    "invalid_template",
                    format!(
                        "template button {} ({}) takes `text`",
                        self.index, self.kind
                    ),
                ));
            }
            (other, _, _) => {
                return Err(RouterError::invalid(
                    "invalid_template",
                    format!("template button type {other:?} is not quick_reply, url or copy_code"),
                ));
            }
        };
        Ok(TemplateButton {
            index: self.index,
            sub_type: self.kind,
            value,
        })
    }
}

/// The media kind a URL's file extension suggests; an image when it suggests nothing.
fn kind_from_url(url: &str) -> MediaKind {
    let path = url.split(['?', '#']).next().unwrap_or("");
    let file = path.rsplit('/').next().unwrap_or("");
    let ext = file
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "mp4" | "3gp" | "3gpp" | "mov" | "m4v" => MediaKind::Video,
        "mp3" | "ogg" | "opus" | "oga" | "amr" | "m4a" | "aac" | "wav" => MediaKind::Audio,
        "pdf" | "doc" | "docx" | "xls" | "xlsx" | "ppt" | "pptx" | "txt" | "csv" | "zip"
        | "rtf" | "odt" => MediaKind::Document,
        _ => MediaKind::Image,
    }
}

fn media_item(m: MediaBody) -> Result<MediaItem, RouterError> {
    if let Some(id) = m.media_id.filter(|id| !id.trim().is_empty()) {
        if m.url.is_some() {
            return Err(RouterError::invalid(
                "invalid_media",
                "a media item has a url or a media_id, not both",
            ));
        }
        // Kind and MIME type come from the stored upload (checked by `send`).
        let mut item = MediaItem::from_url(MediaKind::Document, String::new());
        item.url = None;
        item.media_id = Some(id);
        item.caption = m.caption;
        item.filename = m.filename;
        return Ok(item);
    }
    let url = m.url.unwrap_or_default();
    if url.trim().is_empty() {
        return Err(RouterError::invalid(
            "invalid_media",
            "each media item needs a url or a media_id",
        ));
    }
    let kind = match m.kind.as_deref() {
        Some(k) => MediaKind::parse(k).ok_or_else(|| {
            RouterError::invalid(
                "invalid_media_kind",
                "kind must be image, video, audio, document or sticker",
            )
        })?,
        None => kind_from_url(&url),
    };
    let mut item = MediaItem::from_url(kind, url);
    item.caption = m.caption;
    item.filename = m.filename;
    item.mime_type = m.mime_type;
    Ok(item)
}

/// The request as `Router::send` takes it; `header_key` is the `Idempotency-Key` header and
/// `reaction` the body's reaction with the provider id of the message reacted to.
fn send_request(
    body: SendBody,
    header_key: Option<String>,
    reaction: Option<Reaction>,
) -> Result<SendRequest, RouterError> {
    let idempotency_key = match (body.idempotency_key, header_key) {
        (Some(b), Some(h)) if b != h => {
            return Err(RouterError::invalid(
                "idempotency_key_mismatch",
                "the Idempotency-Key header and the idempotency_key field differ",
            ));
        }
        (b, h) => b.or(h),
    };
    let content = Content {
        text: body.text,
        media: body
            .media
            .into_iter()
            .map(media_item)
            .collect::<Result<_, _>>()?,
        template: body
            .template
            .map(|t| -> Result<Template, RouterError> {
                Ok(Template {
                    name: t.name,
                    language: t.language,
                    variables: t.variables,
                    header: t.header,
                    buttons: t
                        .buttons
                        .into_iter()
                        .map(TemplateButtonBody::into_button)
                        .collect::<Result<_, _>>()?,
                })
            })
            .transpose()?,
        location: body.location.map(|l| Location {
            latitude: l.latitude,
            longitude: l.longitude,
            name: l.name,
            address: l.address,
            url: None,
        }),
        contacts: body.contacts,
        interactive_message: body.interactive,
        reaction,
        ..Content::default()
    };
    Ok(SendRequest {
        to: body.to,
        channel: body.channel,
        from: body.from,
        content,
        reply_to: body.reply_to,
        idempotency_key,
        fallback: body
            .fallback
            .into_iter()
            .map(|t| FallbackTarget {
                channel: t.channel,
                from: t.from,
            })
            .collect(),
    })
}

pub(super) async fn send(
    State(state): State<AppState>,
    Auth(p): Auth,
    headers: HeaderMap,
    ApiJson(mut body): ApiJson<SendBody>,
) -> ApiResult<(StatusCode, Json<SendAccepted>)> {
    let header_key = match headers.get("idempotency-key") {
        Some(v) => Some(
            v.to_str()
                .map_err(|_| {
                    RouterError::invalid(
                        "invalid_idempotency_key",
                        "Idempotency-Key must be visible ASCII",
                    )
                })?
                .to_owned(),
        ),
        None => None,
    };
    let reaction = match body.reaction.take() {
        Some(r) => Some(Reaction {
            message_id: state
                .router
                .records()
                .provider_message_id(&p.tenant_id, &r.message_id)
                .await?,
            emoji: r.emoji.filter(|e| !e.is_empty()),
        }),
        None => None,
    };
    let request = send_request(body, header_key, reaction)?;
    let accepted = state.router.send(&p.tenant_id, request).await?;
    Ok((StatusCode::ACCEPTED, Json(accepted)))
}

/// The body of `POST /v1/messages/{id}/read`: `{"typing":true}` also shows a typing
/// indicator; the body may be left out.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ReadBody {
    #[serde(default)]
    typing: bool,
}

pub(super) async fn read(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
    OptionalApiJson(body): OptionalApiJson<ReadBody>,
) -> ApiResult<StatusCode> {
    let typing = body.is_some_and(|b| b.typing);
    state
        .router
        .read_receipts()
        .mark_read(&p.tenant_id, &id, typing)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn get(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<MessageView>> {
    Ok(Json(
        state
            .router
            .records()
            .get_message(&p.tenant_id, &id)
            .await?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_kind_defaults_from_the_url_extension() {
        assert_eq!(
            kind_from_url("https://x.test/a/clip.MP4?sig=1"),
            MediaKind::Video
        );
        assert_eq!(
            kind_from_url("https://x.test/invoice.pdf#p2"),
            MediaKind::Document
        );
        assert_eq!(kind_from_url("https://x.test/note.ogg"), MediaKind::Audio);
        assert_eq!(kind_from_url("https://x.test/photo"), MediaKind::Image);
        assert_eq!(kind_from_url("https://x.test.pdf/"), MediaKind::Image);
    }

    #[test]
    fn the_idempotency_key_comes_from_the_body_or_the_header_but_they_must_agree() {
        let body = |key: Option<&str>| SendBody {
            to: "+31612345678".into(),
            text: Some("hi".into()),
            channel: None,
            from: None,
            media: Vec::new(),
            template: None,
            location: None,
            contacts: Vec::new(),
            interactive: None,
            reaction: None,
            reply_to: None,
            idempotency_key: key.map(str::to_owned),
            fallback: Vec::new(),
        };
        let from_header = send_request(body(None), Some("h".into()), None).unwrap();
        assert_eq!(from_header.idempotency_key.as_deref(), Some("h"));
        let same = send_request(body(Some("k")), Some("k".into()), None).unwrap();
        assert_eq!(same.idempotency_key.as_deref(), Some("k"));
        let err = send_request(body(Some("k")), Some("other".into()), None)
            .err()
            .unwrap();
        assert_eq!(err.code(), "idempotency_key_mismatch");
    }
}

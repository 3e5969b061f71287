//! How a message looks in the console: its content of every kind, its direction, time and
//! delivery ticks, and for a failed message the provider's error and its attempts.

use maud::{Markup, html};
use switchboard_core::{Content, InteractiveKind, MediaItem, MediaKind};
use switchboard_router::records::queries::{AttemptView, MessageView};

use super::layout::time;

/// The message's content as the core model reads it (an unreadable one shows as empty).
fn content_of(m: &MessageView) -> Content {
    serde_json::from_value(m.content.clone()).unwrap_or_default()
}

/// One line summing up a message, for the inbox.
pub(super) fn preview(m: &MessageView) -> String {
    let c = content_of(m);
    let media_word = |item: &MediaItem| match item.kind {
        MediaKind::Image => "Photo",
        MediaKind::Video => "Video",
        MediaKind::Audio if item.voice => "Voice message",
        MediaKind::Audio => "Audio",
        MediaKind::Sticker => "Sticker",
        _ => "Document",
    };
    let text = c
        .text
        .clone()
        .or_else(|| c.media.iter().find_map(|i| i.caption.clone()))
        .or_else(|| c.interactive.as_ref().and_then(|i| i.title.clone()))
        .or_else(|| c.interactive_message.as_ref().map(|i| i.body.clone()));
    let summary = match (text, c.media.first()) {
        (Some(t), Some(item)) => format!("{}: {t}", media_word(item)),
        (Some(t), None) => t,
        (None, Some(item)) => media_word(item).to_owned(),
        (None, None) => {
            if let Some(l) = &c.location {
                l.name.clone().unwrap_or_else(|| "Location".to_owned())
            } else if let Some(t) = &c.template {
                format!("Template {}", t.name)
            } else if let Some(r) = &c.reaction {
                format!("Reacted {}", r.emoji.as_deref().unwrap_or("(removed)"))
            } else if let Some(card) = c.contacts.first() {
                format!("Contact: {}", card.name.formatted_name)
            } else if c.revoke_of.is_some() {
                "Deleted a message".to_owned()
            } else if let Some(s) = &c.system {
                s.body.clone().unwrap_or_else(|| s.kind.clone())
            } else if let Some(u) = &c.unsupported {
                format!("Unsupported message ({})", u.provider_type)
            } else {
                String::new()
            }
        }
    };
    let prefix = match m.direction.as_str() {
        "inbound" => "",
        _ => "You: ",
    };
    let mut line = format!("{prefix}{summary}");
    if line.chars().count() > 120 {
        line = line.chars().take(119).collect::<String>() + "…";
    }
    line
}

/// What a status means to a person.
fn status_words(status: &str) -> &'static str {
    match status {
        "queued" | "accepted" | "sending" => "Waiting to be sent",
        "sent" => "Sent",
        "delivered" => "Delivered",
        "read" => "Read",
        "played" => "Played",
        "failed" => "Failed",
        "undelivered" => "Not delivered",
        "canceled" => "Canceled",
        _ => "Received",
    }
}

/// The ticks of an outbound message or echo: a clock while waiting, one tick sent, two
/// delivered, two blue read, a cross when it failed.
pub(super) fn ticks(status: &str) -> Markup {
    let (class, glyph) = match status {
        "sent" => ("tick sent", "✓"),
        "delivered" => ("tick delivered", "✓✓"),
        "read" | "played" => ("tick read", "✓✓"),
        "failed" | "undelivered" | "canceled" => ("tick failed", "✕"),
        _ => ("tick waiting", "🕓"),
    };
    html! {
        span class=(format!("ticks {class}")) role="img" aria-label=(status_words(status)) title=(status_words(status)) { (glyph) }
    }
}

fn media_item(item: &MediaItem, m: &MessageView, index: usize) -> Markup {
    // Inbound media is stored by Switchboard; outbound uploads name their stored file.
    let stored = m
        .media
        .iter()
        .find(|v| usize::try_from(v.index).ok() == Some(index));
    let media_id = item
        .media_id
        .clone()
        .or_else(|| stored.map(|v| v.id.clone()));
    let state = stored.map_or("stored", |v| v.state.as_str());
    let label = item
        .caption
        .clone()
        .or_else(|| item.filename.clone())
        .unwrap_or_else(|| item.kind.as_str().to_owned());
    html! {
        div.media data-kind=(item.kind.as_str()) {
            @match (media_id, state) {
                (Some(_), "pending") => { span.media-pending { "Fetching " (item.kind.as_str()) "…" } }
                (Some(_), "failed") => {
                    span.media-failed {
                        "The " (item.kind.as_str()) " could not be fetched"
                        @if let Some(reason) = stored.and_then(|v| v.failure_reason.as_deref()) { ": " (reason) }
                    }
                }
                (Some(id), _) => {
                    @let src = format!("/console/media/{id}");
                    @match item.kind {
                        MediaKind::Image | MediaKind::Sticker => { img src=(src) alt=(label) loading="lazy"; }
                        MediaKind::Video => { video src=(src) controls preload="metadata" aria-label=(label) {} }
                        MediaKind::Audio => { audio src=(src) controls preload="metadata" aria-label=(label) {} }
                        _ => {
                            a.document href=(src) download=[item.filename.as_deref()] { "📄 " (label) }
                        }
                    }
                }
                (None, _) => {
                    @if let Some(url) = &item.url {
                        a.document href=(url) rel="noopener noreferrer" target="_blank" { (item.kind.as_str()) ": " (label) }
                    } @else {
                        span { (item.kind.as_str()) }
                    }
                }
            }
        }
    }
}

fn body(m: &MessageView, c: &Content) -> Markup {
    let caption = c.media.iter().find_map(|i| i.caption.clone());
    html! {
        @if let Some(r) = &c.reaction {
            p.reaction { "Reacted " (r.emoji.as_deref().unwrap_or("(reaction removed)")) " to a message" }
        }
        @if c.revoke_of.is_some() {
            p.system { "Deleted a message" }
        }
        @for (i, item) in c.media.iter().enumerate() {
            (media_item(item, m, i))
        }
        @if let Some(text) = c.text.as_ref().or(caption.as_ref()) {
            p.text { (text) @if c.edit_of.is_some() { " " span.edited { "(edited)" } } }
        }
        @if let Some(l) = &c.location {
            div.location {
                "📍 "
                @if let Some(name) = &l.name { strong { (name) } " " }
                @if let Some(address) = &l.address { span { (address) } " " }
                a href=(format!("https://www.openstreetmap.org/?mlat={}&mlon={}#map=17/{}/{}", l.latitude, l.longitude, l.latitude, l.longitude))
                    rel="noopener noreferrer" target="_blank" { (format!("{:.5}, {:.5}", l.latitude, l.longitude)) }
            }
        }
        @if !c.contacts.is_empty() {
            ul.contacts aria-label="Shared contacts" {
                @for card in &c.contacts {
                    li {
                        "👤 " strong { (card.name.formatted_name) }
                        @for phone in &card.phones {
                            @if let Some(p) = &phone.phone { " · " (p) }
                        }
                    }
                }
            }
        }
        @if let Some(reply) = &c.interactive {
            p.interactive-reply {
                (match reply.kind {
                    InteractiveKind::ListReply => "Chose from the list: ",
                    InteractiveKind::FlowReply => "Answered the form",
                    _ => "Tapped: ",
                })
                strong { (reply.title.as_deref().or(reply.id.as_deref()).unwrap_or("")) }
            }
        }
        @if let Some(sent) = &c.interactive_message {
            div.interactive-message {
                p.text { (sent.body) }
                @if !sent.buttons.is_empty() {
                    ul.buttons { @for b in &sent.buttons { li { (b.title) } } }
                }
            }
        }
        @if let Some(t) = &c.template {
            p.template {
                "Template " strong { (t.name) }
                @if let Some(lang) = &t.language { " (" (lang) ")" }
                @for (key, value) in &t.variables { " · " (key) " = " (value) }
            }
        }
        @if let Some(s) = &c.system {
            p.system { (s.body.as_deref().unwrap_or(&s.kind)) }
        }
        @if let Some(u) = &c.unsupported {
            p.system { "A message of a type Switchboard cannot show (" (u.provider_type) ")" }
        }
        @if let Some(referral) = &m.referral {
            p.referral {
                "Came from an ad"
                @if let Some(h) = referral.get("headline").and_then(|h| h.as_str()) { ": " strong { (h) } }
            }
        }
    }
}

fn attempts_table(attempts: &[AttemptView]) -> Markup {
    html! {
        details.attempts {
            summary { "Delivery attempts (" (attempts.len()) ")" }
            table {
                thead { tr { th scope="col" { "#" } th scope="col" { "Channel" } th scope="col" { "When" } th scope="col" { "Outcome" } th scope="col" { "Provider said" } } }
                tbody {
                    @for a in attempts {
                        tr {
                            td { (a.attempt) }
                            td { (a.channel) }
                            td { (time(&a.started_at)) }
                            td { (a.outcome) @if let Some(s) = a.http_status { " (HTTP " (s) ")" } }
                            td {
                                @if let Some(code) = &a.error_code { code { (code) } " " }
                                (a.error_message.as_deref().unwrap_or(""))
                            }
                        }
                    }
                }
            }
        }
    }
}

/// One message of a thread.
pub(super) fn message(m: &MessageView, attempts: Option<&[AttemptView]>) -> Markup {
    let c = content_of(m);
    let failed = matches!(m.status.as_str(), "failed" | "undelivered");
    html! {
        li.message data-id=(m.id) data-direction=(m.direction) data-status=(m.status) {
            div.bubble {
                @if m.direction == "echo" {
                    p.echo-note { "Sent from the phone" }
                }
                (body(m, &c))
                p.meta {
                    (time(&m.created_at))
                    @if m.direction != "inbound" { " " (ticks(&m.status)) }
                }
                @if failed {
                    p.error role="note" {
                        "Not delivered: "
                        (m.error_message.as_deref().unwrap_or("the provider gave no reason"))
                        @if let Some(code) = &m.error_code { " (code " (code) ")" }
                    }
                    @if let Some(attempts) = attempts.filter(|a| !a.is_empty()) {
                        (attempts_table(attempts))
                    }
                }
            }
        }
    }
}

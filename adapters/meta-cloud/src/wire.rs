//! Meta's webhook and Graph JSON, as serde structs.
//!
//! Lenient by design: unknown fields are ignored, every field is optional, and type names
//! (`type`, `status`, `field`) are plain strings so a value Meta adds tomorrow is reported,
//! not rejected. The envelope keeps items as [`serde_json::Value`] so that each item is
//! read on its own: one malformed message never loses the rest of the batch.

use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// Accepts a JSON string or number (Meta sends timestamps and codes as either) as a string.
pub(crate) fn string_or_number<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<String>, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(other) => {
            return Err(serde::de::Error::custom(format!(
                "expected a string or number, got {other}"
            )));
        }
    })
}

/// Accepts a JSON array, or treats `null` as empty.
fn vec_or_null<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

/// `{"object": "...", "entry": [...]}`.
#[derive(Debug, Deserialize)]
pub struct Envelope {
    pub object: Option<String>,
    #[serde(default, deserialize_with = "vec_or_null")]
    pub entry: Vec<Value>,
}

/// One `entry[]`: a WABA and its changes.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Entry {
    #[serde(deserialize_with = "string_or_number")]
    pub id: Option<String>,
    /// Unix seconds; account-level fields carry it (§14).
    #[serde(deserialize_with = "string_or_number")]
    pub time: Option<String>,
    #[serde(deserialize_with = "vec_or_null")]
    pub changes: Vec<Value>,
}

/// One `changes[]`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Change {
    pub field: Option<String>,
    pub value: Option<Value>,
}

/// `changes[].value` for the fields this adapter reads.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ChangeValue {
    pub metadata: Option<Metadata>,
    #[serde(deserialize_with = "vec_or_null")]
    pub contacts: Vec<Value>,
    #[serde(deserialize_with = "vec_or_null")]
    pub messages: Vec<Value>,
    #[serde(deserialize_with = "vec_or_null")]
    pub statuses: Vec<Value>,
    #[serde(deserialize_with = "vec_or_null")]
    pub errors: Vec<Value>,
    #[serde(deserialize_with = "vec_or_null")]
    pub message_echoes: Vec<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Metadata {
    #[serde(deserialize_with = "string_or_number")]
    pub display_phone_number: Option<String>,
    #[serde(deserialize_with = "string_or_number")]
    pub phone_number_id: Option<String>,
}

/// `value.contacts[]`: the person's profile and ids.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Contact {
    #[serde(deserialize_with = "string_or_number")]
    pub wa_id: Option<String>,
    pub user_id: Option<String>,
    pub parent_user_id: Option<String>,
    pub profile: Option<Profile>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Profile {
    pub name: Option<String>,
    pub username: Option<String>,
}

/// A message: `messages[]`, `message_echoes[]`, or the inner message of an `edit`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Message {
    #[serde(deserialize_with = "string_or_number")]
    pub from: Option<String>,
    pub from_user_id: Option<String>,
    pub from_parent_user_id: Option<String>,
    #[serde(deserialize_with = "string_or_number")]
    pub to: Option<String>,
    pub to_user_id: Option<String>,
    pub to_parent_user_id: Option<String>,
    pub id: Option<String>,
    #[serde(deserialize_with = "string_or_number")]
    pub timestamp: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// Set on a message of a group chat (Groups API, §15).
    #[serde(deserialize_with = "string_or_number")]
    pub group_id: Option<String>,
    pub text: Option<Text>,
    pub image: Option<Media>,
    pub video: Option<Media>,
    pub audio: Option<Media>,
    pub document: Option<Media>,
    pub sticker: Option<Media>,
    pub location: Option<Location>,
    #[serde(deserialize_with = "vec_or_null")]
    pub contacts: Vec<SharedContact>,
    pub interactive: Option<Interactive>,
    pub button: Option<Button>,
    pub reaction: Option<Reaction>,
    pub context: Option<Context>,
    pub referral: Option<Referral>,
    pub edit: Option<Edit>,
    pub revoke: Option<Revoke>,
    pub system: Option<System>,
    pub unsupported: Option<UnsupportedInfo>,
    #[serde(deserialize_with = "vec_or_null")]
    pub errors: Vec<Error>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Text {
    pub body: Option<String>,
}

/// image, video, audio, document and sticker objects.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Media {
    #[serde(deserialize_with = "string_or_number")]
    pub id: Option<String>,
    pub url: Option<String>,
    pub mime_type: Option<String>,
    pub sha256: Option<String>,
    pub caption: Option<String>,
    pub filename: Option<String>,
    pub voice: Option<bool>,
    pub animated: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Location {
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    pub name: Option<String>,
    pub address: Option<String>,
    pub url: Option<String>,
}

/// A shared contact card (protocols/meta.md §10.5).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SharedContact {
    pub name: Option<ContactName>,
    pub org: Option<ContactOrg>,
    #[serde(deserialize_with = "vec_or_null")]
    pub phones: Vec<ContactPhone>,
    #[serde(deserialize_with = "vec_or_null")]
    pub emails: Vec<ContactEmail>,
    #[serde(deserialize_with = "vec_or_null")]
    pub addresses: Vec<ContactAddress>,
    #[serde(deserialize_with = "vec_or_null")]
    pub urls: Vec<ContactUrl>,
    pub birthday: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ContactName {
    pub formatted_name: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub middle_name: Option<String>,
    pub suffix: Option<String>,
    pub prefix: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ContactOrg {
    pub company: Option<String>,
    pub department: Option<String>,
    pub title: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ContactPhone {
    pub phone: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    #[serde(deserialize_with = "string_or_number")]
    pub wa_id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ContactEmail {
    pub email: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ContactAddress {
    pub street: Option<String>,
    pub city: Option<String>,
    pub state: Option<String>,
    pub zip: Option<String>,
    pub country: Option<String>,
    pub country_code: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ContactUrl {
    pub url: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Interactive {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub button_reply: Option<Choice>,
    pub list_reply: Option<Choice>,
    pub nfm_reply: Option<FlowReply>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Choice {
    pub id: Option<String>,
    pub title: Option<String>,
    pub description: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct FlowReply {
    pub name: Option<String>,
    pub body: Option<String>,
    /// A JSON document encoded as a string.
    pub response_json: Option<String>,
}

/// A template quick-reply tap.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Button {
    pub payload: Option<String>,
    pub text: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Reaction {
    pub message_id: Option<String>,
    pub emoji: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Context {
    pub id: Option<String>,
    pub forwarded: Option<bool>,
    pub frequently_forwarded: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Referral {
    pub source_url: Option<String>,
    pub source_id: Option<String>,
    pub source_type: Option<String>,
    pub body: Option<String>,
    pub headline: Option<String>,
    pub media_type: Option<String>,
    pub image_url: Option<String>,
    pub video_url: Option<String>,
    pub thumbnail_url: Option<String>,
    pub ctwa_clid: Option<String>,
    pub welcome_message: Option<WelcomeMessage>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct WelcomeMessage {
    pub text: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Edit {
    pub original_message_id: Option<String>,
    pub message: Option<Box<Message>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Revoke {
    pub original_message_id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct System {
    pub body: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    #[serde(deserialize_with = "string_or_number")]
    pub wa_id: Option<String>,
    #[serde(deserialize_with = "string_or_number")]
    pub new_wa_id: Option<String>,
    /// The new BSUID of a `user_changed_user_id` notice (§16).
    pub user_id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct UnsupportedInfo {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// Not documented; read in case Meta names the edited or revoked message here.
    pub original_message_id: Option<String>,
}

/// An error object in `statuses[].errors`, `messages[].errors` or `value.errors`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Error {
    #[serde(deserialize_with = "string_or_number")]
    pub code: Option<String>,
    pub title: Option<String>,
    pub message: Option<String>,
    pub error_data: Option<ErrorData>,
    #[serde(deserialize_with = "string_or_number")]
    pub timestamp: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ErrorData {
    pub details: Option<String>,
}

/// `statuses[]`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Status {
    pub id: Option<String>,
    pub status: Option<String>,
    #[serde(deserialize_with = "string_or_number")]
    pub timestamp: Option<String>,
    #[serde(deserialize_with = "string_or_number")]
    pub recipient_id: Option<String>,
    pub recipient_type: Option<String>,
    pub recipient_user_id: Option<String>,
    pub parent_recipient_user_id: Option<String>,
    pub biz_opaque_callback_data: Option<String>,
    #[serde(deserialize_with = "vec_or_null")]
    pub errors: Vec<Error>,
    /// Group statuses name the participant (§15).
    #[serde(deserialize_with = "string_or_number")]
    pub recipient_participant_id: Option<String>,
    /// Read on its own: an unreadable pricing object must not lose the status.
    pub pricing: Option<Value>,
}

/// `statuses[].pricing` (§17.1).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Pricing {
    pub billable: Option<bool>,
    pub pricing_model: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub category: Option<String>,
}

/// What an account-level change (§14) says about the number it concerns.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct AccountLevelValue {
    pub metadata: Option<Metadata>,
    #[serde(deserialize_with = "string_or_number")]
    pub display_phone_number: Option<String>,
    pub entity_type: Option<String>,
    #[serde(deserialize_with = "string_or_number")]
    pub entity_id: Option<String>,
}

/// The Graph error envelope: `{"error": {...}}`.
#[derive(Debug, Deserialize)]
pub struct GraphErrorEnvelope {
    pub error: GraphError,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct GraphError {
    pub message: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    #[serde(deserialize_with = "string_or_number")]
    pub code: Option<String>,
    #[serde(deserialize_with = "string_or_number")]
    pub error_subcode: Option<String>,
    pub error_data: Option<GraphErrorData>,
    pub fbtrace_id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct GraphErrorData {
    pub details: Option<String>,
}

/// The send response.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SendResponse {
    #[serde(deserialize_with = "vec_or_null")]
    pub contacts: Vec<SendContact>,
    #[serde(deserialize_with = "vec_or_null")]
    pub messages: Vec<SendMessage>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SendContact {
    pub input: Option<String>,
    #[serde(deserialize_with = "string_or_number")]
    pub wa_id: Option<String>,
    /// The recipient's BSUID, on sends to a BSUID (protocols/meta.md §12.2).
    pub user_id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SendMessage {
    pub id: Option<String>,
    pub message_status: Option<String>,
}

/// The phone-number node, for health checks.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct PhoneNode {
    pub health_status: Option<HealthStatus>,
    pub quality_rating: Option<String>,
    pub messaging_limit_tier: Option<String>,
    pub status: Option<String>,
    pub name_status: Option<String>,
    pub throughput: Option<Throughput>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct HealthStatus {
    pub can_send_message: Option<String>,
    #[serde(deserialize_with = "vec_or_null")]
    pub entities: Vec<HealthEntity>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct HealthEntity {
    pub entity_type: Option<String>,
    pub can_send_message: Option<String>,
    #[serde(deserialize_with = "vec_or_null")]
    pub additional_info: Vec<String>,
    #[serde(deserialize_with = "vec_or_null")]
    pub errors: Vec<HealthError>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct HealthError {
    #[serde(deserialize_with = "string_or_number")]
    pub error_code: Option<String>,
    pub error_description: Option<String>,
    pub possible_solution: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Throughput {
    pub level: Option<String>,
}

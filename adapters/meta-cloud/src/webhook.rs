//! The webhook path: routing keys, signature check, parsing, and the GET handshake.
//!
//! Parsing reads the envelope once into [`serde_json::Value`] and then each item (entry,
//! change, message, status, error) on its own, so a malformed item becomes a
//! [`ParseProblem`] and the rest of the batch still parses. Only a body that is not the
//! `whatsapp_business_account` envelope at all is [`WebhookError::Malformed`].
//!
//! Nothing verified is refused or dropped (Meta retries anything but a 200 for days, §14.3):
//! - Fields other than `messages` and `smb_message_echoes` (template status, quality and
//!   category updates, phone number quality, account updates and alerts, user preferences,
//!   history, and fields Meta adds later) become [`ProviderNotification`]s named after the
//!   field, one per account they concern ([`account_level`]). They name a business account,
//!   not a number, so [`routes`] marks such a webhook channel-wide.
//! - Messages and statuses of group chats (`group_id`, `recipient_type: "group"`, §15)
//!   become `group_message` and `group_status` notifications, never 1:1 messages.
//! - A message whose type-specific object is missing or unreadable is [`Unsupported`]
//!   content with its type and `errors[]`; only an item without an id, a time or a sender
//!   is a [`ParseProblem`].

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde::de::DeserializeSeed;
use serde_json::Value;
use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};
use switchboard_core::{
    AccountContext, Bsuid, ContactAddress, ContactCard, ContactEmail, ContactIdentity, ContactName,
    ContactOrg, ContactPhone, ContactUrl, Content, Direction, EventKind, Forwarded, HandshakeReply,
    InboundEvent, InboundMessage, InteractiveKind, InteractiveReply, Location, MAX_ROUTING_KEYS,
    MediaItem, MediaKind, MessageStatus, OptChange, ParseProblem, ParsedWebhook, PhoneNumber,
    Pricing, ProviderError, ProviderNotification, Reaction, Referral, StatusUpdate, SystemNotice,
    Unsupported, WebhookError, WebhookRequest, WebhookRoutes,
};

use crate::config::{CHANNEL, CRED_APP_SECRET, CRED_VERIFY_TOKEN};
use crate::signature;
use crate::wire;

const OBJECT: &str = "whatsapp_business_account";
/// Meta's challenges are short numbers; anything huge is not Meta.
const MAX_CHALLENGE_LEN: usize = 1024;

fn malformed(detail: impl Into<String>) -> WebhookError {
    WebhookError::malformed(CHANNEL.as_str(), detail)
}

fn read_envelope(body: &[u8]) -> Result<wire::Envelope, WebhookError> {
    let env: wire::Envelope =
        serde_json::from_slice(body).map_err(|e| malformed(format!("not a JSON envelope: {e}")))?;
    match env.object.as_deref() {
        Some(OBJECT) => Ok(env),
        Some(other) => Err(malformed(format!(
            "object is {other:?}, expected {OBJECT:?}"
        ))),
        None => Err(malformed("no \"object\" field")),
    }
}

/// Every distinct `entry[].changes[].value.metadata.phone_number_id`, in order of
/// appearance, and whether a change names none (an account-level field, §14: the webhook
/// is then for every account whose app secret signed it).
///
/// This runs before the signature is checked, so it reads the body in one pass without
/// building a tree, and stops at the first id past [`MAX_ROUTING_KEYS`]: its work is bounded
/// whatever the body names. An entry, change, value or metadata of another shape names
/// nothing here (parsing reports it as a problem once the body is verified).
pub(crate) fn routes(body: &[u8]) -> Result<WebhookRoutes, WebhookError> {
    let mut keys = keys::Distinct::default();
    let mut de = serde_json::Deserializer::from_slice(body);
    let read = keys::Envelope(&mut keys)
        .deserialize(&mut de)
        .and_then(|object| de.end().map(|()| object));
    if keys.overflowed {
        return Err(malformed(format!(
            "names more than {MAX_ROUTING_KEYS} phone_number_ids"
        )));
    }
    match read.map_err(|e| malformed(format!("not a JSON envelope: {e}")))? {
        Some(object) if object == OBJECT => Ok(WebhookRoutes {
            keys: keys.in_order,
            channel_wide: keys.unaddressed,
        }),
        Some(other) => Err(malformed(format!(
            "object is {other:?}, expected {OBJECT:?}"
        ))),
        None => Err(malformed("no \"object\" field")),
    }
}

/// The one-pass reader behind [`routing_keys`].
mod keys {
    use std::collections::HashSet;
    use std::fmt;

    use serde::de::{
        self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor,
    };
    use switchboard_core::MAX_ROUTING_KEYS;

    /// Steps into every element of an array.
    const EACH: &str = "";
    /// Steps into every element of an array, each of which should name a key: one that
    /// names none (an account-level change) sets [`Distinct::unaddressed`].
    const EACH_ADDRESSED: &str = "*";

    /// Where an entry keeps its phone_number_ids: one per change.
    const ENTRY_PATH: &[&str] = &[
        "changes",
        EACH_ADDRESSED,
        "value",
        "metadata",
        "phone_number_id",
    ];

    /// Distinct keys in order of appearance; hashing keeps a body of many ids linear.
    #[derive(Default)]
    pub(super) struct Distinct {
        pub(super) in_order: Vec<String>,
        seen: HashSet<String>,
        /// Keys read, repeats included.
        found: usize,
        /// Set when a change named no key (an account-level field, §14).
        pub(super) unaddressed: bool,
        /// Set when the body named more than [`MAX_ROUTING_KEYS`]; reading stopped there.
        pub(super) overflowed: bool,
    }

    impl Distinct {
        fn add<E: de::Error>(&mut self, key: &str) -> Result<(), E> {
            if key.is_empty() {
                return Ok(());
            }
            self.found += 1;
            if self.seen.contains(key) {
                return Ok(());
            }
            if self.in_order.len() == MAX_ROUTING_KEYS {
                self.overflowed = true;
                return Err(E::custom("too many phone_number_ids"));
            }
            self.seen.insert(key.to_owned());
            self.in_order.push(key.to_owned());
            Ok(())
        }
    }

    /// The envelope: its `object`, and the keys of `entry` (an array or null).
    pub(super) struct Envelope<'a>(pub(super) &'a mut Distinct);

    impl<'de> DeserializeSeed<'de> for Envelope<'_> {
        type Value = Option<String>;

        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_map(self)
        }
    }

    impl<'de> Visitor<'de> for Envelope<'_> {
        type Value = Option<String>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON object")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut object = None;
            while let Some(field) = map.next_key_seed(FieldIn(&["object", "entry"]))? {
                match field {
                    Some(0) => object = map.next_value::<Option<String>>()?,
                    Some(_) => map.next_value_seed(Entries(&mut *self.0))?,
                    None => map.next_value::<IgnoredAny>().map(drop)?,
                }
            }
            Ok(object)
        }
    }

    /// `entry`: null, or an array whose elements are walked along [`ENTRY_PATH`].
    struct Entries<'a>(&'a mut Distinct);

    impl<'de> DeserializeSeed<'de> for Entries<'_> {
        type Value = ();

        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_option(self)
        }
    }

    impl<'de> Visitor<'de> for Entries<'_> {
        type Value = ();

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an array of entries")
        }

        fn visit_none<E: de::Error>(self) -> Result<(), E> {
            Ok(())
        }

        fn visit_unit<E: de::Error>(self) -> Result<(), E> {
            Ok(())
        }

        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_seq(self)
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            while seq
                .next_element_seed(Walk {
                    path: ENTRY_PATH,
                    keys: &mut *self.0,
                })?
                .is_some()
            {}
            Ok(())
        }
    }

    /// Walks one value along `path` and adds the string or number at its end; a value of
    /// another shape on the way is skipped, as `serde_json::Value::pointer` would skip it.
    struct Walk<'a> {
        path: &'static [&'static str],
        keys: &'a mut Distinct,
    }

    impl Walk<'_> {
        fn add<E: de::Error>(self, key: &str) -> Result<(), E> {
            if self.path.is_empty() {
                self.keys.add(key)
            } else {
                Ok(())
            }
        }
    }

    impl<'de> DeserializeSeed<'de> for Walk<'_> {
        type Value = ();

        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_any(self)
        }
    }

    impl<'de> Visitor<'de> for Walk<'_> {
        type Value = ();

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("any JSON value")
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
            self.add(v)
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<(), E> {
            self.add(&v.to_string())
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<(), E> {
            self.add(&v.to_string())
        }

        fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
            match serde_json::Number::from_f64(v) {
                Some(n) => self.add(&n.to_string()),
                None => Ok(()),
            }
        }

        fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
            Ok(())
        }

        fn visit_unit<E: de::Error>(self) -> Result<(), E> {
            Ok(())
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            match self.path.split_first() {
                Some((&step, rest)) if step == EACH || step == EACH_ADDRESSED => loop {
                    let before = self.keys.found;
                    let walked = seq.next_element_seed(Walk {
                        path: rest,
                        keys: &mut *self.keys,
                    })?;
                    if walked.is_none() {
                        break;
                    }
                    if step == EACH_ADDRESSED && self.keys.found == before {
                        self.keys.unaddressed = true;
                    }
                },
                _ => while seq.next_element::<IgnoredAny>()?.is_some() {},
            }
            Ok(())
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            let (name, rest) = match self.path.split_first() {
                Some((name, rest)) if *name != EACH && *name != EACH_ADDRESSED => (*name, rest),
                _ => ("", self.path),
            };
            while let Some(field) = map.next_key_seed(FieldIn(&[name]))? {
                if field.is_some() && !name.is_empty() {
                    map.next_value_seed(Walk {
                        path: rest,
                        keys: &mut *self.keys,
                    })?;
                } else {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            Ok(())
        }
    }

    /// Reads an object key as its index among `names`, without copying it.
    struct FieldIn<'a>(&'a [&'a str]);

    impl<'de> DeserializeSeed<'de> for FieldIn<'_> {
        type Value = Option<usize>;

        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_str(self)
        }
    }

    impl Visitor<'_> for FieldIn<'_> {
        type Value = Option<usize>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an object key")
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(self.0.iter().position(|name| *name == v))
        }
    }
}

/// The account's app secret, the one key of its webhooks' signatures, when it has one.
pub(crate) fn app_secret(account: &AccountContext) -> Option<&str> {
    account
        .credentials
        .get(CRED_APP_SECRET)
        .filter(|s| !s.is_empty())
}

/// Checks `X-Hub-Signature-256` with the account's app secret.
pub(crate) fn verify(
    request: &WebhookRequest,
    account: &AccountContext,
) -> Result<(), WebhookError> {
    let header = request.header(signature::SIGNATURE_HEADER);
    let Some(secret) = app_secret(account) else {
        // Without our secret nothing can be verified; refuse rather than trust.
        tracing::warn!(
            account_id = %account.account_id,
            "Meta account has no app_secret; refusing webhook."
        );
        return Err(if header.is_none() {
            WebhookError::MissingSignature
        } else {
            WebhookError::BadSignature
        });
    };
    signature::verify(secret.as_bytes(), &request.body, header)
}

/// Answers Meta's `GET ?hub.mode=subscribe&hub.verify_token=…&hub.challenge=…`.
pub(crate) fn handshake(request: &WebhookRequest, accounts: &[AccountContext]) -> HandshakeReply {
    if request.method != http::Method::GET {
        return HandshakeReply::Reject;
    }
    let query = request.query.as_deref().unwrap_or("");
    let (mut mode, mut token, mut challenge) = (None, None, None);
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        match k.as_ref() {
            "hub.mode" => mode = Some(v.into_owned()),
            "hub.verify_token" => token = Some(v.into_owned()),
            "hub.challenge" => challenge = Some(v.into_owned()),
            _ => {}
        }
    }
    let (Some(mode), Some(token), Some(challenge)) = (mode, token, challenge) else {
        return HandshakeReply::Reject;
    };
    if mode != "subscribe"
        || token.is_empty()
        || challenge.is_empty()
        || challenge.len() > MAX_CHALLENGE_LEN
    {
        return HandshakeReply::Reject;
    }
    // Compare against every account without stopping early, so timing says nothing about
    // which (or whether an earlier) account matched.
    let mut matched = Choice::from(0);
    for account in accounts {
        if let Some(expected) = account
            .credentials
            .get(CRED_VERIFY_TOKEN)
            .filter(|t| !t.is_empty())
        {
            matched |= expected.as_bytes().ct_eq(token.as_bytes());
        }
    }
    if bool::from(matched) {
        HandshakeReply::Accept(challenge)
    } else {
        HandshakeReply::Reject
    }
}

/// Collects events and problems for one delivery.
struct Out<'a> {
    accounts: &'a [&'a AccountContext],
    parsed: ParsedWebhook,
}

impl Out<'_> {
    fn problem(&mut self, routing_key: Option<&str>, detail: String, raw: &Value) {
        self.parsed.problems.push(ParseProblem {
            routing_key: routing_key.map(str::to_owned),
            detail,
            raw: raw.clone(),
        });
    }

    fn event(&mut self, routing_key: &str, event_key: String, kind: EventKind, raw: &Value) {
        self.parsed.events.push(InboundEvent {
            routing_key: routing_key.to_owned(),
            event_key,
            kind,
            raw: raw.clone(),
        });
    }
}

/// Parses a verified delivery into events for `accounts`.
pub(crate) fn parse(
    body: &[u8],
    accounts: &[&AccountContext],
) -> Result<ParsedWebhook, WebhookError> {
    let env = read_envelope(body)?;
    let mut out = Out {
        accounts,
        parsed: ParsedWebhook::default(),
    };
    for entry_v in &env.entry {
        let entry = match wire::Entry::deserialize(entry_v) {
            Ok(e) => e,
            Err(e) => {
                out.problem(None, format!("unreadable entry: {e}"), entry_v);
                continue;
            }
        };
        for change_v in &entry.changes {
            parse_change(&entry, change_v, &mut out);
        }
    }
    Ok(out.parsed)
}

/// The fields whose changes carry the messages and statuses of 1:1 conversations; every
/// other field is a notification about the account (§14), stored as it came.
const CONVERSATION_FIELDS: [&str; 2] = ["messages", "smb_message_echoes"];

fn parse_change(entry: &wire::Entry, change_v: &Value, out: &mut Out<'_>) {
    let change = match wire::Change::deserialize(change_v) {
        Ok(c) => c,
        Err(e) => return out.problem(None, format!("unreadable change: {e}"), change_v),
    };
    let Some(field) = non_empty(&change.field) else {
        return out.problem(None, "change without a field".to_owned(), change_v);
    };
    let Some(value_v) = change.value.as_ref() else {
        return out.problem(None, "change without a value".to_owned(), change_v);
    };
    if !CONVERSATION_FIELDS.contains(&field) {
        return account_level(entry, field, value_v, change_v, out);
    }
    let value = match wire::ChangeValue::deserialize(value_v) {
        Ok(v) => v,
        Err(e) => return out.problem(None, format!("unreadable change value: {e}"), change_v),
    };
    let Some(key) = value.metadata.and_then(|m| m.phone_number_id) else {
        return out.problem(
            None,
            "change without metadata.phone_number_id".to_owned(),
            change_v,
        );
    };
    if !out.accounts.iter().any(|a| a.routing_key == key) {
        return out.problem(
            Some(&key),
            format!("phone_number_id {key} is not a verified account of this delivery"),
            change_v,
        );
    }
    // contacts[] only adds names and ids; an unreadable one is skipped, the raw item keeps it.
    let contacts: Vec<wire::Contact> = value
        .contacts
        .iter()
        .filter_map(|c| wire::Contact::deserialize(c).ok())
        .collect();

    for (items, direction) in [
        (&value.messages, Direction::Inbound),
        (&value.message_echoes, Direction::Echo),
    ] {
        for item in items {
            if let Some(group) = group_of_message(item) {
                group_item(&key, "group_message", group, item, out);
                continue;
            }
            match parse_message(item, direction, &contacts) {
                Ok(msg) => out.event(
                    &key,
                    msg.provider_message_id.clone(),
                    EventKind::Message(msg),
                    item,
                ),
                Err(detail) => out.problem(Some(&key), detail, item),
            }
        }
    }
    for item in &value.statuses {
        if let Some(group) = group_of_status(item) {
            group_item(&key, "group_status", group, item, out);
            continue;
        }
        match parse_status(item, &contacts) {
            Ok(st) => {
                let event_key = format!("{}:{}", st.provider_message_id, st.status);
                out.event(&key, event_key, EventKind::Status(st), item);
            }
            Err(detail) => out.problem(Some(&key), detail, item),
        }
    }
    for item in &value.errors {
        match wire::Error::deserialize(item) {
            Ok(err) => {
                let event_key =
                    error_event_key(item, entry.id.as_deref(), &key, err.timestamp.as_deref());
                out.event(
                    &key,
                    event_key,
                    EventKind::ProviderError(provider_error(&err)),
                    item,
                );
            }
            Err(e) => out.problem(Some(&key), format!("unreadable error item: {e}"), item),
        }
    }
}

/// A string or number field of a JSON object, when not blank.
fn text_field(item: &Value, name: &str) -> Option<String> {
    match item.get(name)? {
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The group a message belongs to (`group_id`, §15), when it is a group chat's.
fn group_of_message(item: &Value) -> Option<String> {
    text_field(item, "group_id")
}

/// The group a status reports on (`recipient_type: "group"`, §15), when it is a group's.
fn group_of_status(item: &Value) -> Option<String> {
    (item.get("recipient_type").and_then(Value::as_str) == Some("group"))
        .then(|| text_field(item, "recipient_id").unwrap_or_default())
}

/// A group chat's message or status: never a 1:1 message or status (§15: a group message
/// neither files into the participant's conversation nor opens a window with them), kept as
/// a notification for the account. Its key is the wamid with what distinguishes one report
/// of it from another (status, participant), or a digest of the item when it has no wamid.
fn group_item(key: &str, kind: &str, group: String, item: &Value, out: &mut Out<'_>) {
    let parts: Vec<String> = ["id", "status", "recipient_participant_id"]
        .iter()
        .filter_map(|f| text_field(item, f))
        .collect();
    let distinct = if text_field(item, "id").is_some() {
        parts.join(":")
    } else {
        digest(&[&item.to_string()])
    };
    let timestamp = parse_timestamp(text_field(item, "timestamp").as_deref()).ok();
    out.event(
        key,
        format!("{kind}:{distinct}"),
        EventKind::Notification(ProviderNotification {
            kind: kind.to_owned(),
            entity_id: (!group.is_empty()).then_some(group),
            timestamp,
        }),
        item,
    );
}

/// The hex SHA-256 of `parts`, separated so that no two lists of parts collide.
fn digest(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for part in parts {
        h.update(part.as_bytes());
        h.update(b"\x1f");
    }
    hex::encode(h.finalize())
}

/// An account-level change (§14): one notification per account it concerns. It concerns the
/// number its `metadata.phone_number_id` names; else the number an `account_alerts`
/// `entity_id` or a `display_phone_number` names, when one of the verified accounts has it;
/// else every account whose app secret signed the delivery (the field names only the
/// business account, `entry[].id`, which accounts are not connected by). Meta gives these
/// items no id: the key is a digest of the entry and the change, so a redelivery (from
/// this app or another one subscribed to the same business account) is stored once.
fn account_level(
    entry: &wire::Entry,
    field: &str,
    value_v: &Value,
    change_v: &Value,
    out: &mut Out<'_>,
) {
    // What names a number is read leniently: an odd shape only widens the attribution.
    let info = wire::AccountLevelValue::deserialize(value_v).unwrap_or_default();
    let accounts: Vec<&AccountContext> = out.accounts.to_vec();
    let targets: Vec<&AccountContext> =
        if let Some(pnid) = info.metadata.and_then(|m| m.phone_number_id) {
            let named: Vec<_> = accounts
                .into_iter()
                .filter(|a| a.routing_key == pnid)
                .collect();
            if named.is_empty() {
                return out.problem(
                    Some(&pnid),
                    format!("phone_number_id {pnid} is not a verified account of this delivery"),
                    change_v,
                );
            }
            named
        } else {
            let by_entity = info
                .entity_id
                .as_deref()
                .filter(|_| info.entity_type.as_deref() != Some("BUSINESS"))
                .map(|id| {
                    accounts
                        .iter()
                        .copied()
                        .filter(|a| a.routing_key == id)
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default();
            let by_number = info
                .display_phone_number
                .as_deref()
                .map(|n| {
                    accounts
                        .iter()
                        .copied()
                        .filter(|a| same_number(&a.address, n))
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default();
            if !by_entity.is_empty() {
                by_entity
            } else if !by_number.is_empty() {
                by_number
            } else {
                accounts
            }
        };
    let time = entry.time.as_deref().unwrap_or("");
    let item = digest(&[
        entry.id.as_deref().unwrap_or(""),
        time,
        field,
        &value_v.to_string(),
    ]);
    let timestamp = parse_timestamp(entry.time.as_deref()).ok();
    for account in targets {
        out.event(
            &account.routing_key,
            format!("{field}:{item}:{}", account.routing_key),
            EventKind::Notification(ProviderNotification {
                kind: field.to_owned(),
                entity_id: entry.id.clone(),
                timestamp,
            }),
            value_v,
        );
    }
}

/// Whether `display` (Meta's `display_phone_number`: digits, maybe with `+`, spaces or
/// dashes) is the account's number.
fn same_number(address: &PhoneNumber, display: &str) -> bool {
    let display: String = display.chars().filter(char::is_ascii_digit).collect();
    !display.is_empty() && address.digits() == display
}

/// A key that is the same for every redelivery of the same body, and differs between
/// distinct errors (Meta gives account-level errors no id).
fn error_event_key(
    item: &Value,
    entry_id: Option<&str>,
    routing_key: &str,
    timestamp: Option<&str>,
) -> String {
    let mut h = Sha256::new();
    h.update(item.to_string().as_bytes());
    for part in [entry_id.unwrap_or(""), routing_key, timestamp.unwrap_or("")] {
        h.update(b"\x1f");
        h.update(part.as_bytes());
    }
    format!("error:{}", hex::encode(h.finalize()))
}

fn provider_error(err: &wire::Error) -> ProviderError {
    ProviderError {
        code: err.code.clone().unwrap_or_else(|| "unknown".to_owned()),
        message: err.title.clone().or_else(|| err.message.clone()),
        details: err.error_data.as_ref().and_then(|d| d.details.clone()),
    }
}

fn parse_timestamp(ts: Option<&str>) -> Result<DateTime<Utc>, String> {
    let ts = ts.ok_or("no timestamp")?;
    ts.trim()
        .parse::<i64>()
        .ok()
        .and_then(|secs| DateTime::from_timestamp(secs, 0))
        .ok_or_else(|| format!("timestamp {ts:?} is not unix seconds"))
}

fn non_empty(s: &Option<String>) -> Option<&str> {
    s.as_deref().filter(|s| !s.trim().is_empty())
}

/// Who a message or status is about, from the item's own ids plus the matching `contacts[]`.
fn identity(
    phone: Option<&str>,
    user_id: Option<&str>,
    parent_user_id: Option<&str>,
    contacts: &[wire::Contact],
) -> Result<ContactIdentity, String> {
    let mut id = ContactIdentity {
        phone: phone
            .map(|p| PhoneNumber::from_wa_id(p).map_err(|e| format!("phone {p:?}: {e}")))
            .transpose()?,
        ..ContactIdentity::default()
    };
    // A malformed user id only matters when it is the sole identity: the phone number
    // still names the person, and the raw item keeps the odd value.
    id.bsuid = match user_id.map(Bsuid::parse) {
        Some(Err(e)) if id.phone.is_none() => return Err(e.to_string()),
        Some(parsed) => parsed.ok(),
        None => None,
    };
    id.parent_bsuid = parent_user_id.and_then(|p| Bsuid::parse(p).ok());
    let matched = contacts.iter().find(|c| {
        (phone.is_some() && c.wa_id.as_deref() == phone)
            || (user_id.is_some() && c.user_id.as_deref() == user_id)
    });
    if let Some(c) = matched {
        // Usually the same string as `from`; skip re-parsing it (phone parsing dominates).
        let wa = match non_empty(&c.wa_id) {
            Some(w) if Some(w) == phone => id.phone.clone(),
            Some(w) => PhoneNumber::from_wa_id(w).ok(),
            None => None,
        };
        if id.phone.is_none() {
            id.phone = wa;
        } else if wa.is_some() && wa != id.phone {
            id.wa_id = wa;
        }
        if id.bsuid.is_none() {
            id.bsuid = non_empty(&c.user_id).and_then(|u| Bsuid::parse(u).ok());
        }
        if id.parent_bsuid.is_none() {
            id.parent_bsuid = non_empty(&c.parent_user_id).and_then(|u| Bsuid::parse(u).ok());
        }
        if let Some(profile) = &c.profile {
            id.profile_name = profile.name.clone().filter(|n| !n.is_empty());
            id.username = profile.username.clone().filter(|n| !n.is_empty());
        }
    }
    Ok(id)
}

/// The keys every message has whatever its type: all that is read of a message whose
/// type-specific object (or another optional part) is unreadable, so it is still stored,
/// as unsupported content.
const COMMON_KEYS: [&str; 10] = [
    "from",
    "from_user_id",
    "from_parent_user_id",
    "to",
    "to_user_id",
    "to_parent_user_id",
    "id",
    "timestamp",
    "type",
    "errors",
];

/// Reads a message item: whole, or else only its [`COMMON_KEYS`] (first with, then without
/// `errors`), with why the whole item was unreadable.
fn read_message(item: &Value) -> Result<(wire::Message, Option<String>), String> {
    let whole = match wire::Message::deserialize(item) {
        Ok(m) => return Ok((m, None)),
        Err(e) => e,
    };
    let Some(fields) = item.as_object() else {
        return Err(format!("unreadable message: {whole}"));
    };
    for keep in [&COMMON_KEYS[..], &COMMON_KEYS[..COMMON_KEYS.len() - 1]] {
        let slim: serde_json::Map<String, Value> = fields
            .iter()
            .filter(|(k, _)| keep.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if let Ok(m) = wire::Message::deserialize(&Value::Object(slim)) {
            return Ok((m, Some(format!("unreadable message: {whole}"))));
        }
    }
    Err(format!("unreadable message: {whole}"))
}

fn parse_message(
    item: &Value,
    direction: Direction,
    contacts: &[wire::Contact],
) -> Result<InboundMessage, String> {
    let (m, unreadable) = read_message(item)?;
    let id = non_empty(&m.id).ok_or("message without an id")?.to_owned();
    let at = |e: String| format!("message {id}: {e}");
    let timestamp = parse_timestamp(m.timestamp.as_deref()).map_err(at)?;
    let (phone, user_id, parent) = match direction {
        Direction::Echo => (&m.to, &m.to_user_id, &m.to_parent_user_id),
        _ => (&m.from, &m.from_user_id, &m.from_parent_user_id),
    };
    let (mut phone, mut user_id) = (non_empty(phone), non_empty(user_id));
    // A user known only by a BSUID (§3.8): `from` may carry the BSUID itself (the
    // November 2025 page), or be empty with the one `contacts[]` entry naming the sender
    // (`wa_id: ""` and `user_id`).
    if let Some(p) = phone.filter(|p| Bsuid::looks_like(p)) {
        user_id = user_id.or(Some(p));
        phone = None;
    }
    if phone.is_none()
        && user_id.is_none()
        && direction == Direction::Inbound
        && let [sender] = contacts
    {
        phone = non_empty(&sender.wa_id);
        user_id = non_empty(&sender.user_id);
    }
    let contact = identity(phone, user_id, non_empty(parent), contacts).map_err(at)?;
    if !contact.is_known() {
        return Err(at("no phone number or user id for the person".to_owned()));
    }
    let errors: Vec<ProviderError> = m.errors.iter().map(provider_error).collect();
    let kind = non_empty(&m.kind).unwrap_or("unknown");
    // Content that cannot be read is kept as unsupported with the provider's type and
    // errors, never dropped: the raw item is stored beside it.
    let content = match unreadable.map_or_else(|| content(&m), Err) {
        Ok(c) => c,
        Err(detail) => Content {
            unsupported: Some(Unsupported {
                provider_type: kind.to_owned(),
                detail: Some(detail),
                errors,
            }),
            ..Content::default()
        },
    };
    let context = m.context.as_ref();
    let forwarded = context.and_then(|c| {
        if c.frequently_forwarded == Some(true) {
            Some(Forwarded { frequently: true })
        } else if c.forwarded == Some(true) {
            Some(Forwarded { frequently: false })
        } else {
            None
        }
    });
    // A system notice is not the person writing: it changes no opt-out.
    let opt = if content.system.is_some() {
        OptChange::Unchanged
    } else {
        OptChange::ByKeyword
    };
    Ok(InboundMessage {
        provider_message_id: id,
        direction,
        contact,
        timestamp,
        content,
        reply_to: context.and_then(|c| non_empty(&c.id)).map(str::to_owned),
        forwarded,
        referral: m.referral.as_ref().map(referral),
        opt,
    })
}

fn referral(r: &wire::Referral) -> Referral {
    Referral {
        source_type: r.source_type.clone(),
        source_id: r.source_id.clone(),
        source_url: r.source_url.clone(),
        headline: r.headline.clone(),
        body: r.body.clone(),
        media_type: r.media_type.clone(),
        media_url: r.image_url.clone().or_else(|| r.video_url.clone()),
        media_id: None,
        thumbnail_url: r.thumbnail_url.clone(),
        ctwa_clid: r.ctwa_clid.clone(),
        welcome_message: r.welcome_message.as_ref().and_then(|w| w.text.clone()),
    }
}

fn media_item(kind: MediaKind, m: &wire::Media) -> MediaItem {
    MediaItem {
        kind,
        url: m.url.clone(),
        provider_media_id: m.id.clone(),
        mime_type: m.mime_type.clone(),
        caption: m.caption.clone(),
        filename: m.filename.clone(),
        sha256: m.sha256.clone(),
        voice: m.voice.unwrap_or(false),
        animated: m.animated.unwrap_or(false),
        media_id: None,
    }
}

fn shared_contact(c: &wire::SharedContact) -> ContactCard {
    let n = c.name.as_ref();
    let part = |f: fn(&wire::ContactName) -> &Option<String>| n.and_then(|n| f(n).clone());
    // `formatted_name` is required on send; a received card without one is named from
    // its parts, so it still reads as a person.
    let formatted_name = part(|n| &n.formatted_name)
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| {
            [part(|n| &n.first_name), part(|n| &n.last_name)]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" ")
        });
    ContactCard {
        name: ContactName {
            formatted_name,
            first_name: part(|n| &n.first_name),
            last_name: part(|n| &n.last_name),
            middle_name: part(|n| &n.middle_name),
            suffix: part(|n| &n.suffix),
            prefix: part(|n| &n.prefix),
        },
        phones: c
            .phones
            .iter()
            .map(|p| ContactPhone {
                phone: p.phone.clone(),
                kind: p.kind.clone(),
                wa_id: p.wa_id.clone(),
            })
            .collect(),
        emails: c
            .emails
            .iter()
            .map(|e| ContactEmail {
                email: e.email.clone(),
                kind: e.kind.clone(),
            })
            .collect(),
        addresses: c
            .addresses
            .iter()
            .map(|a| ContactAddress {
                street: a.street.clone(),
                city: a.city.clone(),
                state: a.state.clone(),
                zip: a.zip.clone(),
                country: a.country.clone(),
                country_code: a.country_code.clone(),
                kind: a.kind.clone(),
            })
            .collect(),
        org: c.org.as_ref().map(|o| ContactOrg {
            company: o.company.clone(),
            department: o.department.clone(),
            title: o.title.clone(),
        }),
        urls: c
            .urls
            .iter()
            .map(|u| ContactUrl {
                url: u.url.clone(),
                kind: u.kind.clone(),
            })
            .collect(),
        birthday: c.birthday.clone(),
    }
}

fn errors_detail(errors: &[wire::Error]) -> Option<String> {
    let parts: Vec<String> = errors
        .iter()
        .map(|e| {
            let mut s = format!("code {}", e.code.as_deref().unwrap_or("unknown"));
            if let Some(t) = e.title.as_ref().or(e.message.as_ref()) {
                s.push_str(": ");
                s.push_str(t);
            }
            if let Some(d) = e.error_data.as_ref().and_then(|d| d.details.as_ref()) {
                s.push_str(" (");
                s.push_str(d);
                s.push(')');
            }
            s
        })
        .collect();
    (!parts.is_empty()).then(|| parts.join("; "))
}

/// The edit's new content plus `edit_of`, from an `edit` object.
fn apply_edit(m: &wire::Message, c: &mut Content) -> Result<(), String> {
    if let Some(edit) = &m.edit {
        if let Some(inner) = edit.message.as_deref().filter(|i| i.kind.is_some()) {
            *c = content(inner)?;
        }
        c.edit_of = non_empty(&edit.original_message_id).map(str::to_owned);
    }
    if c.edit_of.is_none() {
        c.edit_of = m
            .unsupported
            .as_ref()
            .and_then(|u| non_empty(&u.original_message_id))
            .map(str::to_owned);
    }
    Ok(())
}

fn apply_revoke(m: &wire::Message, c: &mut Content) {
    c.revoke_of = m
        .revoke
        .as_ref()
        .and_then(|r| non_empty(&r.original_message_id))
        .or_else(|| {
            m.unsupported
                .as_ref()
                .and_then(|u| non_empty(&u.original_message_id))
        })
        .map(str::to_owned);
}

/// The canonical content of a message (inbound, echo, or an edit's new version).
fn content(m: &wire::Message) -> Result<Content, String> {
    let kind = non_empty(&m.kind).ok_or("message without a type")?;
    let errors = || m.errors.iter().map(provider_error).collect::<Vec<_>>();
    let mut c = Content::default();
    match kind {
        "text" => {
            let body = m.text.as_ref().and_then(|t| t.body.clone());
            c.text = Some(body.ok_or("text message without text.body")?);
        }
        "image" | "video" | "audio" | "document" | "sticker" => {
            let (mk, obj) = match kind {
                "image" => (MediaKind::Image, &m.image),
                "video" => (MediaKind::Video, &m.video),
                "audio" => (MediaKind::Audio, &m.audio),
                "document" => (MediaKind::Document, &m.document),
                _ => (MediaKind::Sticker, &m.sticker),
            };
            let obj = obj
                .as_ref()
                .ok_or_else(|| format!("{kind} message without its {kind} object"))?;
            if obj.id.is_none() && obj.url.is_none() {
                return Err(format!("{kind} without an id or url"));
            }
            c.media.push(media_item(mk, obj));
        }
        "location" => {
            let l = m
                .location
                .as_ref()
                .ok_or("location message without location")?;
            let (Some(latitude), Some(longitude)) = (l.latitude, l.longitude) else {
                return Err("location without latitude and longitude".to_owned());
            };
            c.location = Some(Location {
                latitude,
                longitude,
                name: l.name.clone(),
                address: l.address.clone(),
                url: l.url.clone(),
            });
        }
        "contacts" => {
            if m.contacts.is_empty() {
                return Err("contacts message without contacts".to_owned());
            }
            c.contacts = m.contacts.iter().map(shared_contact).collect();
        }
        "interactive" => {
            let i = m
                .interactive
                .as_ref()
                .ok_or("interactive message without interactive")?;
            let sub = i.kind.as_deref().unwrap_or("");
            let choice = |kind, ch: &Option<wire::Choice>| {
                let ch = ch
                    .as_ref()
                    .ok_or_else(|| format!("interactive {sub} without its {sub} object"))?;
                Ok::<_, String>(InteractiveReply {
                    kind,
                    id: ch.id.clone(),
                    title: ch.title.clone(),
                    description: ch.description.clone(),
                    data: None,
                })
            };
            match sub {
                "button_reply" => {
                    c.interactive = Some(choice(InteractiveKind::ButtonReply, &i.button_reply)?);
                }
                "list_reply" => {
                    c.interactive = Some(choice(InteractiveKind::ListReply, &i.list_reply)?);
                }
                "nfm_reply" => {
                    let f = i.nfm_reply.as_ref().ok_or("nfm_reply without nfm_reply")?;
                    // Keep the string when it is not JSON, rather than lose the answer.
                    let data = f.response_json.as_ref().map(|s| {
                        serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.clone()))
                    });
                    c.interactive = Some(InteractiveReply {
                        kind: InteractiveKind::FlowReply,
                        id: None,
                        title: f.name.clone(),
                        description: f.body.clone(),
                        data,
                    });
                }
                other => {
                    c.unsupported = Some(Unsupported {
                        provider_type: format!("interactive.{other}"),
                        detail: None,
                        errors: errors(),
                    });
                }
            }
        }
        "button" => {
            let b = m.button.as_ref().ok_or("button message without button")?;
            c.interactive = Some(InteractiveReply {
                kind: InteractiveKind::TemplateButton,
                id: b.payload.clone(),
                title: b.text.clone(),
                description: None,
                data: None,
            });
        }
        "reaction" => {
            let r = m
                .reaction
                .as_ref()
                .ok_or("reaction message without reaction")?;
            let message_id = non_empty(&r.message_id).ok_or("reaction without message_id")?;
            c.reaction = Some(Reaction {
                message_id: message_id.to_owned(),
                // Meta omits the emoji, or sends "", when the reaction is removed.
                emoji: non_empty(&r.emoji).map(str::to_owned),
            });
        }
        "edit" => {
            apply_edit(m, &mut c)?;
            if c.edit_of.is_none() {
                return Err("edit without original_message_id".to_owned());
            }
        }
        "revoke" => {
            apply_revoke(m, &mut c);
            if c.revoke_of.is_none() {
                return Err("revoke without original_message_id".to_owned());
            }
        }
        "system" => {
            let s = m.system.as_ref().ok_or("system message without system")?;
            // §16: `wa_id` is the new number (`from` the old one); `user_id` the new BSUID.
            c.system = Some(SystemNotice {
                kind: non_empty(&s.kind).unwrap_or("unknown").to_owned(),
                body: s.body.clone(),
                new_wa_id: non_empty(&s.new_wa_id)
                    .or_else(|| non_empty(&s.wa_id))
                    .map(str::to_owned),
                new_user_id: non_empty(&s.user_id).map(str::to_owned),
            });
        }
        "unsupported" => {
            let sub = m
                .unsupported
                .as_ref()
                .and_then(|u| non_empty(&u.kind))
                .unwrap_or("unsupported");
            // Edits and revokes may arrive this way; keep the original id when Meta names it.
            match sub {
                "edit" => apply_edit(m, &mut c)?,
                "revoke" => apply_revoke(m, &mut c),
                _ => {}
            }
            c.unsupported = Some(Unsupported {
                provider_type: sub.to_owned(),
                detail: errors_detail(&m.errors),
                errors: errors(),
            });
        }
        // `order` and anything Meta adds later: kept, with the raw item beside it.
        other => {
            c.unsupported = Some(Unsupported {
                provider_type: other.to_owned(),
                detail: errors_detail(&m.errors),
                errors: errors(),
            });
        }
    }
    Ok(c)
}

fn parse_status(item: &Value, contacts: &[wire::Contact]) -> Result<StatusUpdate, String> {
    let s = wire::Status::deserialize(item).map_err(|e| format!("unreadable status: {e}"))?;
    let id = non_empty(&s.id).ok_or("status without an id")?.to_owned();
    let status = match s.status.as_deref() {
        Some("sent") => MessageStatus::Sent,
        Some("delivered") => MessageStatus::Delivered,
        Some("read") => MessageStatus::Read,
        Some("played") => MessageStatus::Played,
        Some("failed") => MessageStatus::Failed,
        other => return Err(format!("status {id}: unknown status value {other:?}")),
    };
    let timestamp =
        parse_timestamp(s.timestamp.as_deref()).map_err(|e| format!("status {id}: {e}"))?;
    // The recipient only annotates the status (the raw item keeps it): an id that is not a
    // phone number (a group, a future format) must not lose a delivery report.
    let wa = non_empty(&s.recipient_id).filter(|_| s.recipient_type.as_deref() != Some("group"));
    let user = non_empty(&s.recipient_user_id);
    let mut recipient = identity(wa, user, non_empty(&s.parent_recipient_user_id), contacts)
        .or_else(|_| identity(None, user, None, contacts))
        .or_else(|_| identity(wa, None, None, contacts))
        .unwrap_or_default();
    // Meta reports the WhatsApp id it delivered to, which may differ from the number we sent.
    if recipient.wa_id.is_none() {
        recipient.wa_id = recipient.phone.take();
    }
    Ok(StatusUpdate {
        provider_message_id: id,
        message_ref: non_empty(&s.biz_opaque_callback_data).map(str::to_owned),
        status,
        timestamp,
        error: s.errors.first().map(provider_error),
        recipient: (recipient != ContactIdentity::default()).then_some(recipient),
        pricing: s.pricing.as_ref().and_then(pricing),
    })
}

/// `statuses[].pricing` (§17.1), when readable and not empty; an odd one only loses itself
/// (the raw status keeps it).
fn pricing(v: &Value) -> Option<Pricing> {
    let p = wire::Pricing::deserialize(v).ok()?;
    let pricing = Pricing {
        billable: p.billable,
        category: p.category,
        model: p.pricing_model,
        kind: p.kind,
        price: None,
        currency: None,
    };
    (!pricing.is_empty()).then_some(pricing)
}

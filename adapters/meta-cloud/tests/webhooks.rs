//! Webhook path tests: handshake, signatures, and parsing of every documented payload.

use serde_json::{Value, json};
use switchboard_core::MAX_ROUTING_KEYS;
use switchboard_core::{
    AccountContext, ChannelAdapter, Direction, ErrorKind, EventKind, InboundMessage,
    InteractiveKind, MediaKind, MessageStatus, OptChange, ParsedWebhook, ProviderNotification,
    StatusUpdate, WebhookError,
};
use switchboard_meta_cloud::testing::{self, account, envelope, webhook_request};
use switchboard_meta_cloud::{MetaCloud, MetaConfig};

const PNID: &str = "106540352242922";
const DISPLAY: &str = "15550783881";
const SECRET: &str = "router_test_app_secret";

fn meta() -> MetaCloud {
    MetaCloud::new(MetaConfig::default())
}

fn acct() -> AccountContext {
    account(PNID, "+15550783881", "token", SECRET, "verify-me")
}

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn parse(body: &str) -> ParsedWebhook {
    let a = acct();
    meta()
        .parse_webhook(&webhook_request(body, Some(SECRET)), &[&a])
        .expect("envelope parses")
}

/// Wraps message items (with the usual contact) into a `messages` change for PNID.
fn messages(items: Value) -> String {
    envelope(&[(
        PNID,
        DISPLAY,
        "messages",
        json!({
            "contacts": [{"profile": {"name": "Sheena Nelson"}, "wa_id": "16505551234"}],
            "messages": items,
        }),
    )])
}

fn one_message(item: Value) -> InboundMessage {
    let parsed = parse(&messages(json!([item])));
    assert!(parsed.problems.is_empty(), "{:?}", parsed.problems);
    assert_eq!(parsed.events.len(), 1);
    match &parsed.events[0].kind {
        EventKind::Message(m) => m.clone(),
        other => panic!("not a message: {other:?}"),
    }
}

fn msg(kind: &str, object: Value) -> Value {
    let mut m = json!({"from": "16505551234", "id": format!("wamid.{kind}"),
                       "timestamp": "1749416383", "type": kind});
    m[kind] = object;
    m
}

/// The notifications of a parsed webhook, with their routing keys.
fn notifications(parsed: &ParsedWebhook) -> Vec<(String, ProviderNotification)> {
    parsed
        .events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Notification(n) => Some((e.routing_key.clone(), n.clone())),
            _ => None,
        })
        .collect()
}

fn statuses_of(parsed: &ParsedWebhook) -> Vec<StatusUpdate> {
    parsed
        .events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Status(s) => Some(s.clone()),
            _ => None,
        })
        .collect()
}

// ---------------------------------------------------------------- handshake

#[test]
fn handshake_accepts_any_accounts_token_percent_decoded() {
    let other = account("999", "+15550783882", "t", "s", "a b&c=d");
    let accounts = vec![acct(), other];
    let req = testing::handshake_request("subscribe", "a b&c=d", "1158201444");
    assert!(req.query.as_deref().unwrap().contains("a+b%26c%3Dd"));
    assert_eq!(
        meta().answer_handshake(&req, &accounts),
        switchboard_core::HandshakeReply::Accept("1158201444".into())
    );
    // A literally written query, as Meta sends it.
    let mut raw = req.clone();
    raw.query = Some("hub.mode=subscribe&hub.challenge=42&hub.verify_token=verify-me".into());
    assert_eq!(
        meta().answer_handshake(&raw, &accounts),
        switchboard_core::HandshakeReply::Accept("42".into())
    );
}

#[test]
fn handshake_rejects_everything_else() {
    use switchboard_core::HandshakeReply::Reject;
    let accounts = vec![acct()];
    let m = meta();
    let cases = [
        testing::handshake_request("subscribe", "wrong", "1"),
        testing::handshake_request("subscribe", "verify-m", "1"),
        testing::handshake_request("unsubscribe", "verify-me", "1"),
        testing::handshake_request("subscribe", "verify-me", ""),
        testing::handshake_request("subscribe", "", "1"),
    ];
    for req in &cases {
        assert_eq!(
            m.answer_handshake(req, &accounts),
            Reject,
            "{:?}",
            req.query
        );
    }
    let mut missing = testing::handshake_request("subscribe", "verify-me", "1");
    missing.query = Some("hub.mode=subscribe&hub.verify_token=verify-me".into());
    assert_eq!(m.answer_handshake(&missing, &accounts), Reject);
    missing.query = None;
    assert_eq!(m.answer_handshake(&missing, &accounts), Reject);
    let mut post = testing::handshake_request("subscribe", "verify-me", "1");
    post.method = http::Method::POST;
    assert_eq!(m.answer_handshake(&post, &accounts), Reject);
    // No accounts: nothing can match.
    let ok = testing::handshake_request("subscribe", "verify-me", "1");
    assert_eq!(m.answer_handshake(&ok, &[]), Reject);
}

// ---------------------------------------------------------------- signatures

#[test]
fn vector_c_verifies_over_the_exact_bytes() {
    let body = fixture("text_vector_c.json");
    assert_eq!(body.len(), 499);
    let expected = "sha256=200e992aedf90b021f24b594758036b16e1b54e798009b26e1594a78f9fe5b60";
    assert_eq!(testing::sign(SECRET, body.as_bytes()), expected);
    let m = meta();
    let a = acct();
    let mut req = webhook_request(&body, None);
    req.headers
        .insert("X-Hub-Signature-256", expected.parse().unwrap());
    assert_eq!(m.verify_webhook(&req, &a), Ok(()));

    // One mutated byte.
    let mut mutated = req.clone();
    let mut bytes = body.clone().into_bytes();
    bytes[200] ^= 0x01;
    mutated.body = bytes.into();
    assert_eq!(
        m.verify_webhook(&mutated, &a),
        Err(WebhookError::BadSignature)
    );

    // Same JSON, reformatted with whitespace.
    let mut pretty = req.clone();
    let v: Value = serde_json::from_str(&body).unwrap();
    pretty.body = serde_json::to_vec_pretty(&v).unwrap().into();
    assert_eq!(
        m.verify_webhook(&pretty, &a),
        Err(WebhookError::BadSignature)
    );

    // Wrong secret, missing header, wrong prefix.
    let other = account(PNID, "+15550783881", "token", "another secret", "v");
    assert_eq!(
        m.verify_webhook(&req, &other),
        Err(WebhookError::BadSignature)
    );
    let unsigned = webhook_request(&body, None);
    assert_eq!(
        m.verify_webhook(&unsigned, &a),
        Err(WebhookError::MissingSignature)
    );
    let mut sha1 = req.clone();
    sha1.headers.insert(
        "x-hub-signature-256",
        expected.replace("sha256=", "sha1=").parse().unwrap(),
    );
    assert_eq!(m.verify_webhook(&sha1, &a), Err(WebhookError::BadSignature));

    let parsed = m.parse_webhook(&req, &[&a]).unwrap();
    assert_eq!(parsed.events.len(), 1);
    let ev = &parsed.events[0];
    assert_eq!(ev.routing_key, PNID);
    assert_eq!(
        ev.event_key,
        "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA="
    );
    let EventKind::Message(msg) = &ev.kind else {
        panic!("{ev:?}")
    };
    assert_eq!(msg.direction, Direction::Inbound);
    assert_eq!(
        msg.content.text.as_deref(),
        Some("Does it come in another color?")
    );
    assert_eq!(msg.contact.phone.as_ref().unwrap().as_str(), "+16505551234");
    assert_eq!(msg.contact.profile_name.as_deref(), Some("Sheena Nelson"));
    assert_eq!(msg.timestamp.timestamp(), 1_749_416_383);
    assert_eq!(ev.raw["type"], "text");
}

#[test]
fn escaped_unicode_body_only_verifies_raw_and_parses_to_utf8() {
    // The wire form Meta signs: non-ASCII as \u00e9, '/' as \/.
    let body = messages(json!([msg("text", json!({"body": "PLACEHOLDER"}))]))
        .replace("PLACEHOLDER", r"caf\u00e9 \/ menu");
    assert!(body.contains(r"caf\u00e9 \/ menu"));
    let sig = testing::sign(SECRET, body.as_bytes());
    let m = meta();
    let a = acct();
    let mut req = webhook_request(&body, None);
    req.headers
        .insert("x-hub-signature-256", sig.parse().unwrap());
    assert_eq!(m.verify_webhook(&req, &a), Ok(()));

    // Re-serialized, the same JSON no longer matches the signature.
    let reserialized =
        serde_json::to_string(&serde_json::from_str::<Value>(&body).unwrap()).unwrap();
    assert!(reserialized.contains("café / menu"));
    let mut re = req.clone();
    re.body = reserialized.into_bytes().into();
    assert_eq!(m.verify_webhook(&re, &a), Err(WebhookError::BadSignature));

    let parsed = m.parse_webhook(&req, &[&a]).unwrap();
    let EventKind::Message(msg) = &parsed.events[0].kind else {
        panic!()
    };
    assert_eq!(msg.content.text.as_deref(), Some("café / menu"));
}

#[test]
fn account_without_app_secret_refuses() {
    let body = fixture("text_vector_c.json");
    let mut a = acct();
    a.credentials.insert("app_secret", "");
    let req = webhook_request(&body, Some(SECRET));
    assert_eq!(
        meta().verify_webhook(&req, &a),
        Err(WebhookError::BadSignature)
    );
}

// ---------------------------------------------------------------- routing

#[test]
fn routing_keys_are_distinct_and_ordered() {
    let body = envelope(&[
        ("222", "15550000002", "messages", json!({"statuses": []})),
        ("111", "15550000001", "messages", json!({"messages": []})),
        ("222", "15550000002", "smb_message_echoes", json!({})),
    ]);
    let keys = meta().routing_keys(&webhook_request(&body, None)).unwrap();
    assert_eq!(keys, vec!["222".to_owned(), "111".to_owned()]);
}

/// Routing reads only `entry[].changes[].value.metadata.phone_number_id`; anything of
/// another shape on the way names nothing (parsing reports it once the body is verified).
#[test]
fn routing_keys_skip_what_is_not_a_phone_number_id() {
    let body = json!({"object": "whatsapp_business_account", "entry": [
        "not an entry",
        {"changes": null},
        {"changes": {"value": {"metadata": {"phone_number_id": "1"}}}},
        {"id": "waba", "changes": [
            7,
            {"value": {"metadata": {"phone_number_id": 106540352242922_u64}}},
            {"value": {"metadata": {"phone_number_id": ""}}},
            {"value": {"metadata": {"phone_number_id": {"nested": "2"}}}},
            {"value": {"metadata": null}},
            {"value": [{"metadata": {"phone_number_id": "3"}}]},
            {"value": {"metadata": {"display_phone_number": "4", "phone_number_id": "555"},
                       "messages": [{"id": "x", "metadata": {"phone_number_id": "6"}}]}},
        ]},
    ]});
    let keys = meta()
        .routing_keys(&webhook_request(&body.to_string(), None))
        .unwrap();
    assert_eq!(keys, vec![PNID.to_owned(), "555".to_owned()]);

    let null_entries = r#"{"entry":null,"object":"whatsapp_business_account"}"#;
    let keys = meta()
        .routing_keys(&webhook_request(null_entries, None))
        .unwrap();
    assert!(keys.is_empty());
}

/// A body naming more distinct phone_number_ids than any notification of Meta's can is not
/// Meta's: it is refused, and reading stops at the first id past the bound.
#[test]
fn routing_keys_stop_past_the_most_a_notification_can_name() {
    let change = |id: usize| json!({"value": {"metadata": {"phone_number_id": id.to_string()}}});
    let body = |ids: &mut dyn Iterator<Item = usize>| {
        let changes: Vec<Value> = ids.map(change).collect();
        json!({"object": "whatsapp_business_account", "entry": [{"changes": changes}]}).to_string()
    };
    let m = meta();
    // Repeats are one key each: the bound is on distinct ids.
    let at_bound = body(&mut (0..MAX_ROUTING_KEYS).chain(0..MAX_ROUTING_KEYS));
    let keys = m.routing_keys(&webhook_request(&at_bound, None)).unwrap();
    assert_eq!(keys.len(), MAX_ROUTING_KEYS);
    assert_eq!(keys[7], "7");

    let past = body(&mut (0..=MAX_ROUTING_KEYS));
    let err = m.routing_keys(&webhook_request(&past, None)).unwrap_err();
    assert_eq!(err.http_status(), 400);
    assert!(err.to_string().contains("more than 1000"), "{err}");

    // What follows the id past the bound is not read: not even broken JSON there matters.
    let cut = past.find(&format!("\"{MAX_ROUTING_KEYS}\"")).unwrap();
    let truncated = format!("{}\"}}}}, {{ not json", &past[..cut + 6]);
    let err = m
        .routing_keys(&webhook_request(&truncated, None))
        .unwrap_err();
    assert!(err.to_string().contains("more than 1000"), "{err}");
}

#[test]
fn non_envelopes_are_malformed() {
    let m = meta();
    for body in [
        "not json",
        "",
        "[]",
        r#"{"object":"page","entry":[]}"#,
        r#"{"entry":[]}"#,
        r#"{"object":"whatsapp_business_account","entry":{"id":1}}"#,
    ] {
        let req = webhook_request(body, None);
        let err = m.routing_keys(&req).unwrap_err();
        assert_eq!(err.http_status(), 400, "{body}");
        assert!(matches!(
            err,
            WebhookError::Malformed {
                channel: "meta-whatsapp",
                ..
            }
        ));
        assert!(m.parse_webhook(&req, &[&acct()]).is_err(), "{body}");
    }
}

// ---------------------------------------------------------------- message types

#[test]
fn image_fixture() {
    let parsed = parse(&fixture("image.json"));
    let EventKind::Message(m) = &parsed.events[0].kind else {
        panic!()
    };
    let item = &m.content.media[0];
    assert_eq!(item.kind, MediaKind::Image);
    assert_eq!(item.provider_media_id.as_deref(), Some("1003383421387256"));
    assert_eq!(item.mime_type.as_deref(), Some("image/jpeg"));
    assert_eq!(item.caption.as_deref(), Some("Taj Mahal"));
    assert_eq!(
        item.sha256.as_deref(),
        Some("SfInY0gGKTsJlUWbwxC1k+FAD0FZHvzwfpvO0zX0GUI=")
    );
    assert!(
        item.url
            .as_deref()
            .unwrap()
            .starts_with("https://lookaside.fbsbx.com/")
    );
    assert_eq!(m.timestamp.timestamp(), 1_744_344_496);
}

#[test]
fn media_kinds_and_flags() {
    let v = one_message(msg(
        "video",
        json!({"id": "v1", "mime_type": "video/mp4", "sha256": "x", "caption": "clip"}),
    ));
    assert_eq!(v.content.media[0].kind, MediaKind::Video);
    assert_eq!(v.content.media[0].caption.as_deref(), Some("clip"));

    let a = one_message(msg(
        "audio",
        json!({"id": "a1", "mime_type": "audio/ogg; codecs=opus", "voice": true}),
    ));
    assert_eq!(a.content.media[0].kind, MediaKind::Audio);
    assert!(a.content.media[0].voice);

    let d = one_message(msg(
        "document",
        json!({"id": "d1", "mime_type": "application/pdf", "filename": "filename.pdf"}),
    ));
    assert_eq!(d.content.media[0].filename.as_deref(), Some("filename.pdf"));

    let s = one_message(msg(
        "sticker",
        json!({"id": "s1", "mime_type": "image/webp", "animated": true}),
    ));
    assert_eq!(s.content.media[0].kind, MediaKind::Sticker);
    assert!(s.content.media[0].animated);
    assert!(!s.content.media[0].voice);
}

#[test]
fn location_and_contacts() {
    let l = one_message(msg(
        "location",
        json!({"latitude": 37.483, "longitude": -122.148, "name": "Facebook HQ",
               "address": "1 Hacker Way, Menlo Park, CA 94025", "url": "https://fb.com"}),
    ));
    let loc = l.content.location.unwrap();
    assert!((loc.latitude - 37.483).abs() < 1e-9);
    assert_eq!(loc.name.as_deref(), Some("Facebook HQ"));
    assert_eq!(loc.url.as_deref(), Some("https://fb.com"));

    let mut c = msg("contacts", Value::Null);
    c.as_object_mut().unwrap().remove("contacts");
    c["contacts"] = json!([{
        "name": {"formatted_name": "John Doe", "first_name": "John"},
        "org": {"company": "Acme"},
        "phones": [{"phone": "+1 (650) 555-1234", "wa_id": "16505551234", "type": "CELL"}]
    }, {"name": {"first_name": "Ann", "last_name": "Lee"}, "phones": [{"wa_id": "31612345678"}]}]);
    let c = one_message(c);
    assert_eq!(c.content.contacts.len(), 2);
    let john = &c.content.contacts[0];
    assert_eq!(john.name.formatted_name, "John Doe");
    assert_eq!(john.name.first_name.as_deref(), Some("John"));
    assert_eq!(
        john.org.as_ref().and_then(|o| o.company.as_deref()),
        Some("Acme")
    );
    assert_eq!(john.phones[0].phone.as_deref(), Some("+1 (650) 555-1234"));
    assert_eq!(john.phones[0].wa_id.as_deref(), Some("16505551234"));
    assert_eq!(john.phones[0].kind.as_deref(), Some("CELL"));
    // A card without a formatted name is named from its parts.
    assert_eq!(c.content.contacts[1].name.formatted_name, "Ann Lee");
    assert_eq!(
        c.content.contacts[1].phones[0].wa_id.as_deref(),
        Some("31612345678")
    );
}

#[test]
fn interactive_replies_and_template_buttons() {
    let mut b = msg(
        "interactive",
        json!({"type": "button_reply", "button_reply": {"id": "yes", "title": "Yes"}}),
    );
    b["context"] = json!({"from": DISPLAY, "id": "wamid.question"});
    let b = one_message(b);
    let r = b.content.interactive.unwrap();
    assert_eq!(r.kind, InteractiveKind::ButtonReply);
    assert_eq!(r.id.as_deref(), Some("yes"));
    assert_eq!(r.title.as_deref(), Some("Yes"));
    assert_eq!(b.reply_to.as_deref(), Some("wamid.question"));

    let l = one_message(msg(
        "interactive",
        json!({"type": "list_reply",
               "list_reply": {"id": "row1", "title": "Row", "description": "First row"}}),
    ));
    let r = l.content.interactive.unwrap();
    assert_eq!(r.kind, InteractiveKind::ListReply);
    assert_eq!(r.description.as_deref(), Some("First row"));

    let f = one_message(msg(
        "interactive",
        json!({"type": "nfm_reply", "nfm_reply": {"name": "flow", "body": "Sent",
               "response_json": "{\"flow_token\":\"t1\",\"size\":\"M\"}"}}),
    ));
    let r = f.content.interactive.unwrap();
    assert_eq!(r.kind, InteractiveKind::FlowReply);
    assert_eq!(r.data, Some(json!({"flow_token": "t1", "size": "M"})));

    let t = one_message(msg(
        "button",
        json!({"payload": "STOP_PROMOS", "text": "Stop"}),
    ));
    let r = t.content.interactive.unwrap();
    assert_eq!(r.kind, InteractiveKind::TemplateButton);
    assert_eq!(r.id.as_deref(), Some("STOP_PROMOS"));
    assert_eq!(r.title.as_deref(), Some("Stop"));

    // An interactive type Meta adds later is kept, not dropped.
    let u = one_message(msg("interactive", json!({"type": "call_permission_reply"})));
    assert_eq!(
        u.content.unsupported.unwrap().provider_type,
        "interactive.call_permission_reply"
    );
}

#[test]
fn reactions_and_their_removal() {
    let r = one_message(msg(
        "reaction",
        json!({"message_id": "wamid.mine", "emoji": "\u{1F62E}"}),
    ));
    let reaction = r.content.reaction.unwrap();
    assert_eq!(reaction.message_id, "wamid.mine");
    assert_eq!(reaction.emoji.as_deref(), Some("😮"));
    for removed in [
        json!({"message_id": "wamid.mine", "emoji": ""}),
        json!({"message_id": "wamid.mine"}),
    ] {
        let r = one_message(msg("reaction", removed));
        assert_eq!(r.content.reaction.unwrap().emoji, None);
    }
    // The wire form escapes the emoji as a surrogate pair.
    let body = messages(json!([msg(
        "reaction",
        json!({"message_id": "wamid.m", "emoji": "E"})
    )]))
    .replace(r#""emoji":"E""#, r#""emoji":"\ud83d\ude2e""#);
    let parsed = parse(&body);
    let EventKind::Message(m) = &parsed.events[0].kind else {
        panic!()
    };
    assert_eq!(
        m.content.reaction.as_ref().unwrap().emoji.as_deref(),
        Some("😮")
    );
}

#[test]
fn context_forwarding_and_referral() {
    let mut m = msg("text", json!({"body": "fwd"}));
    m["context"] = json!({"forwarded": true});
    let f = one_message(m);
    assert_eq!(
        f.forwarded,
        Some(switchboard_core::Forwarded { frequently: false })
    );
    assert_eq!(f.reply_to, None);

    let mut m = msg("text", json!({"body": "fwd"}));
    m["context"] = json!({"frequently_forwarded": true});
    assert_eq!(
        one_message(m).forwarded,
        Some(switchboard_core::Forwarded { frequently: true })
    );

    let mut m = msg("text", json!({"body": "from an ad"}));
    m["referral"] = json!({
        "source_url": "https://fb.me/ad", "source_id": "ad1", "source_type": "ad",
        "body": "Body", "headline": "Head", "media_type": "image",
        "image_url": "https://img", "ctwa_clid": "clid1", "welcome_message": {"text": "Hi"}
    });
    let r = one_message(m).referral.unwrap();
    assert_eq!(r.source_type.as_deref(), Some("ad"));
    assert_eq!(r.media_url.as_deref(), Some("https://img"));
    assert_eq!(r.ctwa_clid.as_deref(), Some("clid1"));
    assert_eq!(r.headline.as_deref(), Some("Head"));
}

#[test]
fn edits_and_revokes_in_both_shapes() {
    let e = one_message(msg(
        "edit",
        json!({"original_message_id": "wamid.zzzzzz",
               "message": {"type": "text", "text": {"body": "Text was edited"}}}),
    ));
    assert_eq!(e.content.edit_of.as_deref(), Some("wamid.zzzzzz"));
    assert_eq!(e.content.text.as_deref(), Some("Text was edited"));
    assert_eq!(e.content.kind(), "edit");

    let e = one_message(msg(
        "edit",
        json!({"original_message_id": "wamid.z2",
               "message": {"type": "image", "image": {"caption": "caption", "mime_type": "image/jpeg",
                                                      "sha256": "4654+8g=", "id": "65463453"}}}),
    ));
    assert_eq!(e.content.edit_of.as_deref(), Some("wamid.z2"));
    assert_eq!(e.content.media[0].caption.as_deref(), Some("caption"));

    let r = one_message(msg("revoke", json!({"original_message_id": "wamid.gone"})));
    assert_eq!(r.content.revoke_of.as_deref(), Some("wamid.gone"));

    // Meta's documented unsupported shape: the edit is kept as unsupported "edit".
    let mut u = msg("unsupported", json!({"type": "edit"}));
    u["errors"] = json!([{"code": 131051, "title": "Message type unknown",
        "message": "Message type unknown",
        "error_data": {"details": "Message type is currently not supported."}}]);
    let u = one_message(u);
    let unsupported = u.content.unsupported.as_ref().unwrap();
    assert_eq!(unsupported.provider_type, "edit");
    assert!(unsupported.detail.as_deref().unwrap().contains("131051"));
    assert_eq!(u.content.edit_of, None);

    // ... and when it names the original, edit_of is set too.
    let mut u = msg("unsupported", json!({"type": "edit"}));
    u["edit"] = json!({"original_message_id": "wamid.orig",
                       "message": {"type": "text", "text": {"body": "new"}}});
    let u = one_message(u);
    assert_eq!(u.content.edit_of.as_deref(), Some("wamid.orig"));
    assert_eq!(u.content.text.as_deref(), Some("new"));
    assert_eq!(u.content.unsupported.unwrap().provider_type, "edit");

    let u = one_message(msg(
        "unsupported",
        json!({"type": "revoke", "original_message_id": "wamid.r"}),
    ));
    assert_eq!(u.content.revoke_of.as_deref(), Some("wamid.r"));
}

#[test]
fn system_order_unsupported_and_unknown_are_kept() {
    let s = one_message(msg(
        "system",
        json!({"body": "User Sheena Nelson changed from 16505551234 to 12195555358",
               "wa_id": "12195555358", "type": "user_changed_number"}),
    ));
    let sys = s.content.system.unwrap();
    assert_eq!(sys.kind, "user_changed_number");
    assert_eq!(sys.new_wa_id.as_deref(), Some("12195555358"));
    assert_eq!(s.contact.phone.unwrap().as_str(), "+16505551234");

    let o = one_message(msg(
        "order",
        json!({"catalog_id": "c1", "product_items": [{"product_retailer_id": "p1", "quantity": 1,
               "item_price": 9.5, "currency": "USD"}]}),
    ));
    assert_eq!(o.content.unsupported.unwrap().provider_type, "order");

    let mut u = msg("unsupported", json!({"type": "poll_creation"}));
    u["errors"] = json!([{"code": 131051, "title": "Message type unknown",
                          "error_data": {"details": "Message type is currently not supported."}}]);
    let u = one_message(u);
    let un = u.content.unsupported.unwrap();
    assert_eq!(un.provider_type, "poll_creation");
    assert_eq!(
        un.detail.as_deref(),
        Some("code 131051: Message type unknown (Message type is currently not supported.)")
    );

    let g = one_message(msg("gif", json!({"id": "g"})));
    assert_eq!(g.content.unsupported.unwrap().provider_type, "gif");
}

// ---------------------------------------------------------------- identity

#[test]
fn bsuid_only_sender_and_username() {
    let body = envelope(&[(
        PNID,
        DISPLAY,
        "messages",
        json!({
            "contacts": [{"profile": {"name": "Ann", "username": "ann.codes"},
                          "user_id": "US.13491208655302741918",
                          "parent_user_id": "US.ENT.11815799212886844830",
                          "country_code": "US"}],
            "messages": [{"from_user_id": "US.13491208655302741918", "id": "wamid.b1",
                          "timestamp": "1749416383", "type": "text", "text": {"body": "hi"}}],
        }),
    )]);
    let parsed = parse(&body);
    assert!(parsed.problems.is_empty(), "{:?}", parsed.problems);
    let EventKind::Message(m) = &parsed.events[0].kind else {
        panic!()
    };
    assert_eq!(m.contact.phone, None);
    assert_eq!(
        m.contact.bsuid.as_ref().unwrap().as_str(),
        "US.13491208655302741918"
    );
    assert_eq!(
        m.contact.parent_bsuid.as_ref().unwrap().as_str(),
        "US.ENT.11815799212886844830"
    );
    assert_eq!(m.contact.username.as_deref(), Some("ann.codes"));
    assert_eq!(m.contact.profile_name.as_deref(), Some("Ann"));
}

#[test]
fn phone_and_bsuid_together() {
    let body = envelope(&[(
        PNID,
        DISPLAY,
        "messages",
        json!({
            "contacts": [{"profile": {"name": "Test Name"}, "wa_id": "972987654321",
                          "user_id": "US.13491208655302741918"}],
            "messages": [{"from": "972987654321", "from_user_id": "US.13491208655302741918",
                          "id": "wamid.b2", "timestamp": "1749416383",
                          "type": "text", "text": {"body": "hi"}}],
        }),
    )]);
    let parsed = parse(&body);
    let EventKind::Message(m) = &parsed.events[0].kind else {
        panic!()
    };
    assert_eq!(m.contact.phone.as_ref().unwrap().as_str(), "+972987654321");
    assert!(m.contact.bsuid.is_some());
    assert_eq!(m.contact.wa_id, None, "same number is not repeated");
}

// ---------------------------------------------------------------- statuses and errors

#[test]
fn documented_statuses() {
    let parsed = parse(&fixture("status_sent.json"));
    assert_eq!(parsed.events.len(), 1);
    let ev = &parsed.events[0];
    assert_eq!(
        ev.event_key,
        "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQUFERjg0NDEzNDdFODU3MUMxMAA=:sent"
    );
    let st = &statuses_of(&parsed)[0];
    assert_eq!(st.status, MessageStatus::Sent);
    assert_eq!(st.timestamp.timestamp(), 1_750_030_073);
    assert_eq!(
        st.recipient
            .as_ref()
            .unwrap()
            .wa_id
            .as_ref()
            .unwrap()
            .as_str(),
        "+16505551234"
    );
    assert_eq!(st.error, None);
    assert!(ev.raw.get("pricing").is_some());

    let parsed = parse(&fixture("status_failed.json"));
    let st = &statuses_of(&parsed)[0];
    assert_eq!(st.status, MessageStatus::Failed);
    let err = st.error.as_ref().unwrap();
    assert_eq!(err.code, "131049");
    assert_eq!(
        err.message.as_deref(),
        Some("This message was not delivered to maintain healthy ecosystem engagement.")
    );
    assert!(
        err.details
            .as_deref()
            .unwrap()
            .starts_with("In order to maintain")
    );
}

#[test]
fn status_extras_and_unknown_values() {
    let body = envelope(&[(
        PNID,
        DISPLAY,
        "messages",
        json!({
            "contacts": [{"profile": {"name": "Ann", "username": "ann.codes"},
                          "user_id": "US.13491208655302741918", "wa_id": "16505551234"}],
            "statuses": [
                {"id": "wamid.p", "status": "played", "timestamp": "1750030073",
                 "recipient_id": "16505551234", "recipient_user_id": "US.13491208655302741918",
                 "biz_opaque_callback_data": "msg_123"},
                {"id": "wamid.q", "status": "deleted", "timestamp": "1750030073",
                 "recipient_id": "16505551234"},
                {"id": "wamid.r", "status": "read", "timestamp": 1750030074,
                 "recipient_id": "not-a-number"},
            ],
        }),
    )]);
    let parsed = parse(&body);
    let sts = statuses_of(&parsed);
    assert_eq!(sts.len(), 2);
    assert_eq!(sts[0].status, MessageStatus::Played);
    assert_eq!(sts[0].message_ref.as_deref(), Some("msg_123"));
    let rcpt = sts[0].recipient.as_ref().unwrap();
    assert_eq!(
        rcpt.bsuid.as_ref().unwrap().as_str(),
        "US.13491208655302741918"
    );
    assert_eq!(rcpt.username.as_deref(), Some("ann.codes"));
    // A numeric timestamp and an unreadable recipient do not lose the status.
    assert_eq!(sts[1].status, MessageStatus::Read);
    assert_eq!(sts[1].recipient, None);
    assert_eq!(parsed.problems.len(), 1);
    assert!(
        parsed.problems[0].detail.contains("deleted"),
        "{:?}",
        parsed.problems
    );
    assert_eq!(parsed.problems[0].routing_key.as_deref(), Some(PNID));
    assert_eq!(parsed.problems[0].raw["id"], "wamid.q");
}

#[test]
fn account_level_errors_have_stable_keys() {
    let body = fixture("account_errors.json");
    let first = parse(&body);
    let again = parse(&body);
    assert_eq!(first.events.len(), 1);
    let ev = &first.events[0];
    assert!(ev.event_key.starts_with("error:"));
    assert_eq!(ev.event_key.len(), "error:".len() + 64);
    assert_eq!(ev.event_key, again.events[0].event_key);
    let EventKind::ProviderError(e) = &ev.kind else {
        panic!()
    };
    assert_eq!(e.code, "130429");
    assert_eq!(e.message.as_deref(), Some("Rate limit hit"));
    assert!(e.details.as_deref().unwrap().contains("too many messages"));
    // A different error gives a different key.
    let other = parse(&body.replace("130429", "131000"));
    assert_ne!(other.events[0].event_key, ev.event_key);
}

// ---------------------------------------------------------------- echoes

#[test]
fn echoes_are_direction_echo_to_the_user() {
    let parsed = parse(&fixture("echo.json"));
    assert_eq!(parsed.events.len(), 1);
    let EventKind::Message(m) = &parsed.events[0].kind else {
        panic!()
    };
    assert_eq!(m.direction, Direction::Echo);
    assert_eq!(m.contact.phone.as_ref().unwrap().as_str(), "+16505551234");
    assert!(
        m.content
            .text
            .as_deref()
            .unwrap()
            .starts_with("Here's the info")
    );
    assert_eq!(
        parsed.events[0].event_key,
        "wamid.HBgLMTY0NjcwNDM1OTUVAgARGBIyNDlBOEI5QUQ4NDc0N0FCNjMA"
    );

    // The BSUID-era shape (pywa outgoing_message.json, with real-looking values).
    let body = envelope(&[(
        PNID,
        DISPLAY,
        "smb_message_echoes",
        json!({
            "contacts": [{"profile": {"name": "Test Name"}, "wa_id": "972987654321",
                          "user_id": "US.13491208655302741918",
                          "parent_user_id": "US.ENT.11815799212886844830"}],
            "message_echoes": [{"from": DISPLAY, "to": "972987654321",
                "to_user_id": "US.13491208655302741918",
                "to_parent_user_id": "US.ENT.11815799212886844830",
                "id": "wamid.echo2", "timestamp": "1697043223", "type": "text",
                "text": {"body": "Test message"}}],
        }),
    )]);
    let parsed = parse(&body);
    let EventKind::Message(m) = &parsed.events[0].kind else {
        panic!()
    };
    assert_eq!(m.direction, Direction::Echo);
    assert_eq!(
        m.contact.bsuid.as_ref().unwrap().as_str(),
        "US.13491208655302741918"
    );
    assert_eq!(m.contact.profile_name.as_deref(), Some("Test Name"));
    assert_eq!(m.contact.phone.as_ref().unwrap().as_str(), "+972987654321");

    // The testing builder produces the same shape.
    let built = parse(&testing::echo(
        PNID,
        DISPLAY,
        "16505551234",
        "wamid.e3",
        "hello",
    ));
    let EventKind::Message(m) = &built.events[0].kind else {
        panic!()
    };
    assert_eq!(m.direction, Direction::Echo);
}

// ---------------------------------------------------------------- batches

#[test]
fn multi_account_batch_only_yields_verified_accounts() {
    let body = envelope(&[
        (
            PNID,
            DISPLAY,
            "messages",
            json!({
            "contacts": [{"wa_id": "16505551234", "profile": {"name": "A"}}],
            "messages": [msg("text", json!({"body": "for A"}))]}),
        ),
        (
            "777",
            "15550000007",
            "messages",
            json!({
            "messages": [msg("text", json!({"body": "for B"}))]}),
        ),
        (
            PNID,
            DISPLAY,
            "messages",
            json!({"statuses": [
            {"id": "wamid.s", "status": "delivered", "timestamp": "1", "recipient_id": "16505551234"}]}),
        ),
        (
            "888",
            "15550000008",
            "history",
            json!({"history": [{"threads": []}]}),
        ),
    ]);
    let m = meta();
    let req = webhook_request(&body, Some(SECRET));
    assert_eq!(
        m.routing_keys(&req).unwrap(),
        vec![PNID.to_owned(), "777".to_owned(), "888".to_owned()]
    );
    let a = acct();
    let parsed = m.parse_webhook(&req, &[&a]).unwrap();
    assert_eq!(parsed.events.len(), 2);
    assert!(parsed.events.iter().all(|e| e.routing_key == PNID));
    let unverified: Vec<_> = parsed
        .problems
        .iter()
        .map(|p| p.routing_key.as_deref())
        .collect();
    assert_eq!(unverified, [Some("777"), Some("888")]);

    // With every account verified, each gets its events (the history sync is a
    // notification for its number).
    let b = account("777", "+15550000007", "t", "s", "v");
    let c = account("888", "+15550000008", "t", "s", "v");
    let parsed = m.parse_webhook(&req, &[&a, &b, &c]).unwrap();
    assert_eq!(parsed.events.len(), 4);
    assert!(parsed.problems.is_empty());
    let history = parsed.events.last().unwrap();
    assert_eq!(history.routing_key, "888");
    assert!(matches!(&history.kind, EventKind::Notification(n) if n.kind == "history"));
}

#[test]
fn hundred_status_batch() {
    let ids: Vec<String> = (0..100).map(|i| format!("wamid.{i:03}")).collect();
    let kinds = ["sent", "delivered", "read", "failed"];
    let items: Vec<(&str, &str, &str)> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), kinds[i % 4], "16505551234"))
        .collect();
    let parsed = parse(&testing::statuses(PNID, &items));
    assert!(parsed.problems.is_empty());
    let sts = statuses_of(&parsed);
    assert_eq!(sts.len(), 100);
    assert_eq!(sts[99].provider_message_id, "wamid.099");
    assert_eq!(sts[99].status, MessageStatus::Failed);
    let mut keys: Vec<&str> = parsed.events.iter().map(|e| e.event_key.as_str()).collect();
    keys.sort_unstable();
    keys.dedup();
    assert_eq!(keys.len(), 100);
}

#[test]
fn a_malformed_item_does_not_lose_the_others() {
    let mut no_id = msg("text", json!({"body": "x"}));
    no_id.as_object_mut().unwrap().remove("id");
    let mut bad_ts = msg("text", json!({"body": "x"}));
    bad_ts["id"] = "wamid.badts".into();
    bad_ts["timestamp"] = "yesterday".into();
    let mut bad_phone = msg("text", json!({"body": "x"}));
    bad_phone["id"] = "wamid.badphone".into();
    bad_phone["from"] = "<WHATSAPP_USER_PHONE_NUMBER>".into();
    let mut no_sender = msg("text", json!({"body": "x"}));
    no_sender["id"] = "wamid.nosender".into();
    no_sender.as_object_mut().unwrap().remove("from");
    let mut wrong_shape = msg("text", json!({"body": "x"}));
    wrong_shape["id"] = "wamid.wrongshape".into();
    wrong_shape["text"] = json!(["not", "an", "object"]);
    let mut bad_bsuid_only = msg("text", json!({"body": "x"}));
    bad_bsuid_only["id"] = "wamid.badbsuid".into();
    bad_bsuid_only.as_object_mut().unwrap().remove("from");
    bad_bsuid_only["from_user_id"] = "not a bsuid".into();
    let mut bad_bsuid_with_phone = msg("text", json!({"body": "kept"}));
    bad_bsuid_with_phone["id"] = "wamid.kept".into();
    bad_bsuid_with_phone["from_user_id"] = "not a bsuid".into();
    let mut good1 = msg("text", json!({"body": "first"}));
    good1["id"] = "wamid.good1".into();
    let mut good2 = msg("image", json!({"id": "m1", "mime_type": "image/png"}));
    good2["id"] = "wamid.good2".into();
    let body = messages(json!([
        good1,
        no_id,
        bad_ts,
        bad_phone,
        "just a string",
        no_sender,
        wrong_shape,
        bad_bsuid_only,
        bad_bsuid_with_phone,
        good2
    ]));
    let parsed = parse(&body);
    let keys: Vec<&str> = parsed.events.iter().map(|e| e.event_key.as_str()).collect();
    assert_eq!(
        keys,
        vec![
            "wamid.good1",
            "wamid.nosender",
            "wamid.wrongshape",
            "wamid.kept",
            "wamid.good2"
        ]
    );
    // Without `from`, the change's one contact is the sender.
    let EventKind::Message(no_sender) = &parsed.events[1].kind else {
        panic!("{:?}", parsed.events[1])
    };
    assert_eq!(
        no_sender.contact.phone.as_ref().unwrap().as_str(),
        "+16505551234"
    );
    // A type-specific object of the wrong shape keeps the message, as unsupported.
    let EventKind::Message(wrong) = &parsed.events[2].kind else {
        panic!("{:?}", parsed.events[2])
    };
    let unsupported = wrong.content.unsupported.as_ref().unwrap();
    assert_eq!(unsupported.provider_type, "text");
    assert!(
        unsupported
            .detail
            .as_deref()
            .unwrap()
            .contains("unreadable"),
        "{unsupported:?}"
    );
    assert_eq!(parsed.problems.len(), 5, "{:#?}", parsed.problems);
    assert!(
        parsed
            .problems
            .iter()
            .all(|p| p.routing_key.as_deref() == Some(PNID))
    );
    assert!(parsed.problems[1].detail.contains("yesterday"));
    assert_eq!(parsed.problems[1].raw["id"], "wamid.badts");
}

#[test]
fn other_fields_naming_a_number_are_notifications_for_it() {
    let body = envelope(&[
        (
            PNID,
            DISPLAY,
            "history",
            json!({"history": [{"metadata": {"phase": 0}, "threads": []}]}),
        ),
        (
            PNID,
            DISPLAY,
            "smb_app_state_sync",
            json!({"state_sync": []}),
        ),
        (
            PNID,
            DISPLAY,
            "account_update",
            json!({"event": "VERIFIED_ACCOUNT"}),
        ),
    ]);
    let parsed = parse(&body);
    assert!(parsed.problems.is_empty(), "{:?}", parsed.problems);
    let notes = notifications(&parsed);
    let kinds: Vec<&str> = notes
        .iter()
        .map(|(key, n)| {
            assert_eq!(key, PNID);
            assert_eq!(n.entity_id.as_deref(), Some(testing::WABA_ID));
            n.kind.as_str()
        })
        .collect();
    assert_eq!(
        kinds,
        ["history", "smb_app_state_sync", "account_update"],
        "every field is kept, none dropped"
    );
    assert_eq!(parsed.events[2].raw["event"], "VERIFIED_ACCOUNT");
}

#[test]
fn unreadable_entries_and_changes_are_problems() {
    let body = json!({"object": "whatsapp_business_account", "entry": [
        "nonsense",
        {"id": "1", "changes": [{"field": "messages"}, {"field": "messages", "value": {"messages": []}}]},
        {"id": "2", "changes": [{"field": "messages", "value": {
            "metadata": {"phone_number_id": PNID}, "messages": {"not": "a list"}}}]},
    ]})
    .to_string();
    let parsed = parse(&body);
    assert!(parsed.events.is_empty());
    assert_eq!(parsed.problems.len(), 4, "{:#?}", parsed.problems);
}

// ---------------------------------------------------------------- adapter basics

#[test]
fn connect_account_checks_credentials() {
    let m = meta();
    let address = switchboard_core::PhoneNumber::parse("+15550783881").unwrap();
    let setup = m
        .connect_account(
            &address,
            &json!({"phone_number_id": " 106540352242922 ", "access_token": "s3cr3t-token",
                    "app_secret": "s3cr3t-app", "verify_token": "ver"}),
        )
        .unwrap();
    assert_eq!(setup.routing_key, PNID);
    assert_eq!(setup.credentials.get("phone_number_id"), Some(PNID));
    let dbg = format!("{setup:?}");
    assert!(!dbg.contains("s3cr3t"), "{dbg}");

    for (creds, needle) in [
        (
            json!({"access_token": "t", "app_secret": "s", "verify_token": "v"}),
            "phone_number_id",
        ),
        (
            json!({"phone_number_id": "1", "app_secret": "s", "verify_token": "v"}),
            "access_token",
        ),
        (
            json!({"phone_number_id": "1", "access_token": "t", "verify_token": "v"}),
            "app_secret",
        ),
        (
            json!({"phone_number_id": "1", "access_token": "t", "app_secret": "s", "verify_token": " "}),
            "verify_token",
        ),
        (
            json!({"phone_number_id": "+15550783881", "access_token": "t", "app_secret": "s", "verify_token": "v"}),
            "digits",
        ),
        (json!({"phone_number_id": 1}), "string"),
    ] {
        let err = m.connect_account(&address, &creds).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Invalid);
        assert!(
            err.message().contains(needle),
            "{}: {}",
            needle,
            err.message()
        );
    }
}

#[test]
fn reply_channel_and_capabilities() {
    let m = meta();
    let reply = m.webhook_reply();
    assert_eq!(
        (reply.status, reply.content_type, &reply.body[..]),
        (200, "text/plain", &b"OK"[..])
    );
    assert_eq!(m.channel().as_str(), "meta-whatsapp");
    assert_eq!(switchboard_meta_cloud::CHANNEL.as_str(), "meta-whatsapp");
    let caps = m.capabilities();
    assert_eq!(caps.max_text_chars, 4096);
    assert_eq!(caps.max_caption_chars, 1024);
    assert_eq!(caps.max_media_per_message, 1);
    assert_eq!(caps.media_kinds.len(), 5);
    assert!(caps.send_to_bsuid && caps.contacts && caps.read_receipts && caps.typing_indicator);
    assert_eq!(caps.interactive.len(), 5);
    assert_eq!(caps.default_rate_per_second, 80);
    let pacing = caps.recipient_pacing.unwrap();
    assert_eq!((pacing.interval.as_secs(), pacing.burst), (6, 45));
}

// ---------------------------------------------------------------- nothing refused, nothing dropped

/// Another number of the same Meta app (its secret signs the same webhooks).
fn other_acct() -> AccountContext {
    account(
        "106540352242999",
        "+15550000007",
        "token",
        SECRET,
        "verify-me",
    )
}

fn routes_of(body: &str) -> switchboard_core::WebhookRoutes {
    meta()
        .webhook_routes(&webhook_request(body, Some(SECRET)))
        .unwrap()
}

#[test]
fn account_level_fields_make_a_webhook_channel_wide() {
    let template = routes_of(&fixture("template_status_approved.json"));
    assert!(template.keys.is_empty());
    assert!(
        template.channel_wide,
        "no phone_number_id: for every signed account"
    );
    let quality = routes_of(&fixture("phone_number_quality_update.json"));
    assert!(quality.keys.is_empty() && quality.channel_wide);

    let text = routes_of(&fixture("image.json"));
    assert_eq!(text.keys, [PNID]);
    assert!(!text.channel_wide);
    // user_preferences carries metadata like messages: addressed to its number.
    let prefs = routes_of(&fixture("user_preferences.json"));
    assert_eq!(prefs.keys, [PNID]);
    assert!(!prefs.channel_wide);

    // Mixed: messages for a number plus an account-level change.
    let mixed = json!({"object": "whatsapp_business_account", "entry": [
        {"id": "102290129340398", "changes": [
            {"field": "messages", "value": {"metadata": {"phone_number_id": PNID}, "messages": []}},
            {"field": "account_alerts", "value": {"entity_type": "BUSINESS", "entity_id": "1"}}]}]});
    let mixed = routes_of(&mixed.to_string());
    assert_eq!(mixed.keys, [PNID]);
    assert!(mixed.channel_wide);
    // An envelope with no change at all names nobody.
    let empty = routes_of(r#"{"object":"whatsapp_business_account","entry":[]}"#);
    assert!(empty.keys.is_empty() && !empty.channel_wide);
}

#[test]
fn a_template_status_update_is_a_notification_for_every_account_that_verified() {
    let body = fixture("template_status_approved.json");
    let (a, b) = (acct(), other_acct());
    let req = webhook_request(&body, Some(SECRET));
    let parsed = meta().parse_webhook(&req, &[&a, &b]).unwrap();
    assert!(parsed.problems.is_empty(), "{:?}", parsed.problems);
    let notes = notifications(&parsed);
    let keys: Vec<&str> = notes.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, [PNID, "106540352242999"]);
    for (_, n) in &notes {
        assert_eq!(n.kind, "message_template_status_update");
        assert_eq!(n.entity_id.as_deref(), Some("102290129340398"), "the WABA");
        assert_eq!(n.timestamp.unwrap().timestamp(), 1_751_247_548);
    }
    // The value as Meta sent it, template id a number.
    assert_eq!(
        parsed.events[0].raw["message_template_id"],
        1_689_556_908_129_832_u64
    );
    assert_eq!(parsed.events[0].raw["event"], "APPROVED");
    // One key per account, the same on every redelivery, another for another update.
    assert_ne!(parsed.events[0].event_key, parsed.events[1].event_key);
    let again = meta().parse_webhook(&req, &[&a, &b]).unwrap();
    assert_eq!(again.events, parsed.events);
    let rejected = body.replace("\"APPROVED\"", "\"REJECTED\"");
    let other = meta()
        .parse_webhook(&webhook_request(&rejected, Some(SECRET)), &[&a])
        .unwrap();
    assert_ne!(other.events[0].event_key, parsed.events[0].event_key);
}

#[test]
fn a_number_quality_update_goes_to_the_account_with_that_display_number() {
    let body = fixture("phone_number_quality_update.json");
    let (a, b) = (acct(), other_acct());
    let parsed = meta()
        .parse_webhook(&webhook_request(&body, Some(SECRET)), &[&b, &a])
        .unwrap();
    let notes = notifications(&parsed);
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_eq!(
        notes[0].0, PNID,
        "15550783881 is the first account's number"
    );
    assert_eq!(notes[0].1.kind, "phone_number_quality_update");
    assert_eq!(parsed.events[0].raw["current_limit"], "TIER_UNLIMITED");

    // A number none of them has: still kept, for every account of the app.
    let unknown = body.replace("15550783881", "15559999999");
    let parsed = meta()
        .parse_webhook(&webhook_request(&unknown, Some(SECRET)), &[&a, &b])
        .unwrap();
    assert_eq!(notifications(&parsed).len(), 2);
}

#[test]
fn account_alerts_go_to_the_number_they_name() {
    let alert = |entity_type: &str, entity_id: &str| {
        json!({"object": "whatsapp_business_account", "entry": [{"id": "102290129340398",
            "time": 1_751_000_000, "changes": [{"field": "account_alerts", "value": {
                "entity_type": entity_type, "entity_id": entity_id,
                "alert_info": {"alert_severity": "WARNING", "alert_status": "ACTIVE",
                    "alert_type": "OBA_APPROVED", "alert_description": "..."}}}]}]})
        .to_string()
    };
    let (a, b) = (acct(), other_acct());
    let parse_for = |body: String| {
        meta()
            .parse_webhook(&webhook_request(&body, Some(SECRET)), &[&a, &b])
            .unwrap()
    };
    let phone = notifications(&parse_for(alert("PHONE_NUMBER", "106540352242999")));
    assert_eq!(phone.len(), 1);
    assert_eq!(phone[0].0, "106540352242999");
    assert_eq!(phone[0].1.kind, "account_alerts");
    // A business-level alert is every account's.
    assert_eq!(notifications(&parse_for(alert("BUSINESS", PNID))).len(), 2);
}

#[test]
fn user_preferences_go_to_the_number_in_their_metadata() {
    let body = fixture("user_preferences.json");
    let (a, b) = (acct(), other_acct());
    let req = webhook_request(&body, Some(SECRET));
    let parsed = meta().parse_webhook(&req, &[&b, &a]).unwrap();
    let notes = notifications(&parsed);
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0].0, PNID);
    assert_eq!(notes[0].1.kind, "user_preferences");
    assert_eq!(parsed.events[0].raw["user_preferences"][0]["value"], "stop");
    // Its number did not verify: a problem, nobody else's notification.
    let parsed = meta().parse_webhook(&req, &[&b]).unwrap();
    assert!(parsed.events.is_empty());
    assert_eq!(parsed.problems[0].routing_key.as_deref(), Some(PNID));
}

#[test]
fn fields_meta_adds_later_and_mixed_webhooks_are_kept() {
    let body = json!({"object": "whatsapp_business_account", "entry": [
        {"id": "102290129340398", "time": 1_751_000_001, "changes": [
            {"field": "business_capability_update", "value": {
                "max_daily_conversations_per_business": "TIER_10K", "max_phone_numbers_per_waba": 25}},
            {"field": "a_field_from_2027", "value": {"anything": [1, 2, 3]}}]},
        {"id": "102290129340398", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": DISPLAY, "phone_number_id": PNID},
            "contacts": [{"profile": {"name": "Sheena"}, "wa_id": "16505551234"}],
            "messages": [msg("text", json!({"body": "hello"}))]}}]}]})
    .to_string();
    let a = acct();
    let parsed = meta()
        .parse_webhook(&webhook_request(&body, Some(SECRET)), &[&a])
        .unwrap();
    assert!(parsed.problems.is_empty(), "{:?}", parsed.problems);
    let kinds: Vec<String> = notifications(&parsed)
        .into_iter()
        .map(|(_, n)| n.kind)
        .collect();
    assert_eq!(kinds, ["business_capability_update", "a_field_from_2027"]);
    assert!(matches!(parsed.events[2].kind, EventKind::Message(_)));
    // A change with no field at all is not Meta's: a problem, not a notification.
    let no_field = json!({"object": "whatsapp_business_account", "entry": [{"id": "1",
        "changes": [{"value": {"event": "X"}}]}]})
    .to_string();
    let parsed = meta()
        .parse_webhook(&webhook_request(&no_field, Some(SECRET)), &[&a])
        .unwrap();
    assert!(parsed.events.is_empty());
    assert_eq!(parsed.problems.len(), 1);
}

#[test]
fn group_messages_and_statuses_are_notifications_not_conversation_items() {
    let parsed = parse(&fixture("group_message.json"));
    assert!(parsed.problems.is_empty(), "{:?}", parsed.problems);
    let notes = notifications(&parsed);
    assert_eq!(notes.len(), 1);
    assert_eq!(parsed.events.len(), 1, "no 1:1 message");
    assert_eq!(notes[0].0, PNID);
    assert_eq!(notes[0].1.kind, "group_message");
    assert_eq!(
        notes[0].1.entity_id.as_deref(),
        Some("HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA")
    );
    assert_eq!(
        parsed.events[0].raw["text"]["body"],
        "What does everyone think about this?"
    );

    // sent to the group, then delivered to two participants (aggregated, §15).
    let group = "HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA";
    let item = |status: &str, participant: Option<&str>| {
        let mut s = json!({"id": "wamid.G1", "status": status, "timestamp": "1750030073",
            "recipient_id": group, "recipient_type": "group",
            "pricing": {"pricing_model": "PMP", "type": "regular", "category": "group_marketing"}});
        if let Some(p) = participant {
            s["recipient_participant_id"] = p.into();
        }
        s
    };
    let body = envelope(&[(
        PNID,
        DISPLAY,
        "messages",
        json!({"statuses": [item("sent", None), item("delivered", Some("16505551234")),
                            item("delivered", Some("16505551235"))]}),
    )]);
    let parsed = parse(&body);
    assert!(parsed.problems.is_empty(), "{:?}", parsed.problems);
    assert!(statuses_of(&parsed).is_empty(), "no 1:1 status");
    let notes = notifications(&parsed);
    assert_eq!(notes.len(), 3);
    assert!(
        notes
            .iter()
            .all(|(_, n)| n.kind == "group_status" && n.entity_id.as_deref() == Some(group))
    );
    let mut keys: Vec<&str> = parsed.events.iter().map(|e| e.event_key.as_str()).collect();
    keys.dedup();
    assert_eq!(keys.len(), 3, "one per participant's report: {keys:?}");
}

#[test]
fn an_unsupported_message_keeps_its_type_and_errors() {
    let mut u = msg("unsupported", json!({"type": "poll_creation"}));
    u["errors"] = json!([{"code": 131051, "title": "Message type unknown",
        "message": "Message type unknown",
        "error_data": {"details": "Message type is currently not supported."}}]);
    let u = one_message(u);
    let un = u.content.unsupported.unwrap();
    assert_eq!(un.provider_type, "poll_creation");
    assert_eq!(un.errors.len(), 1);
    assert_eq!(un.errors[0].code, "131051");
    assert_eq!(
        un.errors[0].message.as_deref(),
        Some("Message type unknown")
    );
    assert_eq!(
        un.errors[0].details.as_deref(),
        Some("Message type is currently not supported.")
    );
}

#[test]
fn a_message_whose_object_is_missing_or_unreadable_is_unsupported_not_dropped() {
    // type image with no image object, with errors Meta attached.
    let mut missing = json!({"from": "16505551234", "id": "wamid.noimage",
        "timestamp": "1749416383", "type": "image"});
    missing["errors"] = json!([{"code": 131060, "title": "This message is currently unavailable.",
        "message": "This message is currently unavailable.",
        "error_data": {"details": "This message is currently unavailable."}}]);
    // An image object of another shape, a type Meta has not documented, and no type at all.
    let unreadable = msg("image", json!("not an object"));
    let unknown = msg("hologram", json!({"id": "h1"}));
    let mut untyped = msg("text", json!({"body": "x"}));
    untyped.as_object_mut().unwrap().remove("type");
    untyped["id"] = "wamid.untyped".into();
    let no_text = msg("text", json!({}));
    let parsed = parse(&messages(json!([
        missing, unreadable, unknown, untyped, no_text
    ])));
    assert!(parsed.problems.is_empty(), "{:?}", parsed.problems);
    let got: Vec<(String, String, usize)> = parsed
        .events
        .iter()
        .map(|e| {
            let EventKind::Message(m) = &e.kind else {
                panic!("{e:?}")
            };
            assert_eq!(m.contact.phone.as_ref().unwrap().as_str(), "+16505551234");
            let un = m.content.unsupported.as_ref().expect("unsupported");
            // What could not be read is said, except for a type that is merely unknown.
            assert_eq!(
                un.detail.is_some(),
                un.provider_type != "hologram",
                "{un:?}"
            );
            (
                e.event_key.clone(),
                un.provider_type.clone(),
                un.errors.len(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("wamid.noimage".into(), "image".into(), 1),
            ("wamid.image".into(), "image".into(), 0),
            ("wamid.hologram".into(), "hologram".into(), 0),
            ("wamid.untyped".into(), "unknown".into(), 0),
            ("wamid.text".into(), "text".into(), 0),
        ]
    );
    let EventKind::Message(first) = &parsed.events[0].kind else {
        panic!()
    };
    assert_eq!(
        first.content.unsupported.as_ref().unwrap().errors[0].code,
        "131060"
    );
}

#[test]
fn a_sender_known_only_by_a_bsuid_is_a_contact() {
    const BSUID: &str = "US.13491208655302741918";
    // `from` carries the BSUID (Meta's November 2025 shape), `wa_id` is "".
    let mut by_from = msg("text", json!({"body": "hi"}));
    by_from["from"] = BSUID.into();
    by_from["id"] = "wamid.byfrom".into();
    // No `from` at all: the one contact names the sender.
    let mut by_contact = msg("text", json!({"body": "hi again"}));
    by_contact.as_object_mut().unwrap().remove("from");
    by_contact["id"] = "wamid.bycontact".into();
    let body = envelope(&[(
        PNID,
        DISPLAY,
        "messages",
        json!({
            "contacts": [{"profile": {"name": "Pablo M.", "username": "@pablomorales"},
                          "wa_id": "", "user_id": BSUID}],
            "messages": [by_from, by_contact],
        }),
    )]);
    let parsed = parse(&body);
    assert!(parsed.problems.is_empty(), "{:?}", parsed.problems);
    assert_eq!(parsed.events.len(), 2);
    for e in &parsed.events {
        let EventKind::Message(m) = &e.kind else {
            panic!()
        };
        assert_eq!(m.contact.phone, None);
        assert_eq!(m.contact.wa_id, None);
        assert_eq!(m.contact.bsuid.as_ref().unwrap().as_str(), BSUID);
        assert_eq!(m.contact.profile_name.as_deref(), Some("Pablo M."));
        assert_eq!(m.contact.username.as_deref(), Some("@pablomorales"));
    }
}

#[test]
fn number_and_bsuid_changes_are_notices_that_change_no_opt_out() {
    let parsed = parse(&fixture("user_changed_number.json"));
    assert!(parsed.problems.is_empty(), "{:?}", parsed.problems);
    let EventKind::Message(m) = &parsed.events[0].kind else {
        panic!()
    };
    assert_eq!(
        m.contact.phone.as_ref().unwrap().as_str(),
        "+16505551234",
        "the old number"
    );
    let notice = m.content.system.as_ref().unwrap();
    assert_eq!(notice.kind, "user_changed_number");
    assert_eq!(notice.new_wa_id.as_deref(), Some("12195555358"));
    assert_eq!(notice.new_user_id, None);
    assert_eq!(m.opt, OptChange::Unchanged);

    // §16, the November 2025 shape of a BSUID change: no new number.
    let changed = one_message(msg(
        "system",
        json!({"body": "User A changed from US.13491208655302741918 to US.99991208655302741918",
               "wa_id": "", "user_id": "US.99991208655302741918", "type": "user_changed_user_id"}),
    ));
    let notice = changed.content.system.unwrap();
    assert_eq!(notice.kind, "user_changed_user_id");
    assert_eq!(notice.new_wa_id, None);
    assert_eq!(
        notice.new_user_id.as_deref(),
        Some("US.99991208655302741918")
    );
    assert_eq!(changed.opt, OptChange::Unchanged);
    // A person's text is still read by keyword.
    assert_eq!(
        one_message(msg("text", json!({"body": "STOP"}))).opt,
        OptChange::ByKeyword
    );
}

#[test]
fn status_pricing_is_read_from_whichever_status_carries_it() {
    let sent = statuses_of(&parse(&fixture("status_sent.json")));
    let pricing = sent[0].pricing.clone().unwrap();
    assert_eq!(pricing.billable, Some(true));
    assert_eq!(pricing.model.as_deref(), Some("PMP"));
    assert_eq!(pricing.kind.as_deref(), Some("regular"));
    assert_eq!(pricing.category.as_deref(), Some("marketing"));

    let delivered = parse(&fixture("status_bsuid_delivered.json"));
    assert!(delivered.problems.is_empty(), "{:?}", delivered.problems);
    let st = &statuses_of(&delivered)[0];
    assert_eq!(st.status, MessageStatus::Delivered);
    assert_eq!(
        st.pricing.as_ref().unwrap().category.as_deref(),
        Some("marketing")
    );
    assert_eq!(
        st.recipient
            .as_ref()
            .unwrap()
            .bsuid
            .as_ref()
            .unwrap()
            .as_str(),
        "US.13491208655302741918"
    );

    // The pre-July-2025 shape (CBP, no type); none at all; one of another shape.
    let item = |pricing: Value| {
        let mut s = json!({"id": "wamid.P", "status": "delivered", "timestamp": "1",
                           "recipient_id": "16505551234"});
        if !pricing.is_null() {
            s["pricing"] = pricing;
        }
        s
    };
    let body = envelope(&[(
        PNID,
        DISPLAY,
        "messages",
        json!({"statuses": [
            item(json!({"billable": true, "pricing_model": "CBP", "category": "utility"})),
            item(Value::Null),
            item(json!("not an object")),
        ]}),
    )]);
    let parsed = parse(&body);
    assert!(parsed.problems.is_empty(), "{:?}", parsed.problems);
    let sts = statuses_of(&parsed);
    assert_eq!(sts.len(), 3, "an odd pricing never loses the status");
    let cbp = sts[0].pricing.clone().unwrap();
    assert_eq!((cbp.model.as_deref(), cbp.kind), (Some("CBP"), None));
    assert_eq!(sts[1].pricing, None);
    assert_eq!(sts[2].pricing, None);
}

#[test]
fn a_click_to_whatsapp_referral_is_read_whole() {
    let mut m = msg("text", json!({"body": "Can I get more info?"}));
    m["referral"] = json!({
        "source_url": "https://fb.me/3cr4Wqqkh", "source_id": "120226305854810726",
        "source_type": "ad", "body": "Summer sale", "headline": "50% off",
        "media_type": "video", "video_url": "https://scontent.xx.fbcdn.net/v.mp4",
        "thumbnail_url": "https://scontent.xx.fbcdn.net/t.jpg",
        "ctwa_clid": "ARAkLkA8rmlFeiCktEJQ-QTwRiyYHAFDLMNDBH0CD3qpjd0HR4irJ6LEkR7JwFF4XvnO2E4Nx0-eM-GABDLOPaOdRMv-_zfUQ2a",
        "welcome_message": {"text": "Hi! How can we help?"}
    });
    let r = one_message(m).referral.unwrap();
    assert_eq!(r.source_url.as_deref(), Some("https://fb.me/3cr4Wqqkh"));
    assert_eq!(r.source_id.as_deref(), Some("120226305854810726"));
    assert_eq!(r.body.as_deref(), Some("Summer sale"));
    assert_eq!(r.media_type.as_deref(), Some("video"));
    assert_eq!(
        r.media_url.as_deref(),
        Some("https://scontent.xx.fbcdn.net/v.mp4")
    );
    assert_eq!(
        r.thumbnail_url.as_deref(),
        Some("https://scontent.xx.fbcdn.net/t.jpg")
    );
    assert!(r.ctwa_clid.unwrap().starts_with("ARAkLkA8"));
    assert_eq!(r.welcome_message.as_deref(), Some("Hi! How can we help?"));
}

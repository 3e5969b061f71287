//! Fallback to a message's next channel when its recipient cannot be reached on the current
//! one: at send time (the provider's code, declared by each adapter), outside the window at
//! `send()`, and from a later `failed`/`undelivered` status within
//! `DeliveryConfig::fallback_window`; never on transient or other permanent errors. The real
//! Twilio and Meta adapters on their fakes, and a fake channel that carries less (no
//! templates, no locations). On SQLite and PostgreSQL.

use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use sea_orm::{ConnectionTrait, EntityTrait, PaginatorTrait, Statement};
use serde_json::json;
use switchboard_core::testing::FakeAdapter;
use switchboard_core::{ChannelId, Content, Location, Template};
use switchboard_meta_cloud::testing::{self as meta, FakeGraph};
use switchboard_router::records::queries::MessageView;
use switchboard_router::store::crypto::CredentialCipher;
use switchboard_router::store::entity::{messages, outbox};
use switchboard_router::{
    DeliveryConfig, FallbackTarget, Router, RouterEvent, SendAccepted, SendRequest,
};
use switchboard_twilio::testing::{self as twilio, FakeTwilio, TEST_ACCOUNT_SID, TEST_AUTH_TOKEN};
use tokio::sync::broadcast;

use crate::support::api::{self, start};
use crate::support::providers::{
    APP_SECRET, PERSON, PERSON_WA, PNID, PUBLIC, TWILIO_NUMBER, builder_with_key, connect_both,
    fakes, graph_sends, meta_inbound, receive_meta, send_text, twilio_sends,
};
use crate::support::{TestDb, on_each_backend};

/// A channel that carries less than WhatsApp: text and images only, no templates,
/// locations or reactions, and no service window (like SMS).
const SMS: &str = "fake-sms";
const SMS_NUMBER: &str = "+14155550199";

fn sms_adapter() -> FakeAdapter {
    let caps = switchboard_core::Capabilities {
        max_text_chars: 1600,
        max_caption_chars: 1600,
        max_media_per_message: 1,
        media_kinds: &[switchboard_core::MediaKind::Image],
        templates: false,
        template_components: false,
        interactive: &[],
        contacts: false,
        reactions: false,
        locations: false,
        reply_context: false,
        send_to_bsuid: false,
        read_receipts: false,
        typing_indicator: false,
        default_rate_per_second: 80,
        recipient_pacing: None,
        service_window: None,
    };
    FakeAdapter::named(ChannelId::new_static(SMS)).with_capabilities(caps)
}

struct Site {
    router: Router,
    tenant: String,
    twilio: FakeTwilio,
    graph: FakeGraph,
    sms: FakeAdapter,
    key: String,
}

/// Both WhatsApp channels on their fakes and the fake SMS channel, one account of each.
async fn site_with(db: &TestDb, config: DeliveryConfig) -> Site {
    let (twilio, graph) = fakes().await;
    let sms = sms_adapter();
    let key = CredentialCipher::generate_key();
    let router = router_on(db, &twilio, &graph, &sms, &key, config).await;
    let tenant = router.tenants().create("acme").await.unwrap().tenant_id;
    connect_both(&router, &tenant, APP_SECRET).await;
    router
        .accounts()
        .connect(
            &tenant,
            SMS,
            SMS_NUMBER,
            &FakeAdapter::credentials("sms-secret"),
            None,
        )
        .await
        .unwrap();
    Site {
        router,
        tenant,
        twilio,
        graph,
        sms,
        key,
    }
}

impl Site {
    /// `send()` for the tenant; the request must be accepted.
    async fn send(&self, request: SendRequest) -> SendAccepted {
        self.router.send(&self.tenant, request).await.unwrap()
    }
}

async fn site(db: &TestDb) -> Site {
    site_with(db, DeliveryConfig::default()).await
}

/// A router over `db` (what a restarted process builds: same database, same key).
async fn router_on(
    db: &TestDb,
    twilio: &FakeTwilio,
    graph: &FakeGraph,
    sms: &FakeAdapter,
    key: &str,
    config: DeliveryConfig,
) -> Router {
    builder_with_key(db, twilio, graph, key)
        .await
        .adapter(Arc::new(sms.clone()))
        .delivery(config)
        .build()
}

fn to(channel: &str) -> FallbackTarget {
    FallbackTarget {
        channel: channel.into(),
        from: None,
    }
}

fn text_with_fallback(channel: &str, text: &str, fallback: &[&str]) -> SendRequest {
    SendRequest {
        fallback: fallback.iter().map(|c| to(c)).collect(),
        ..send_text(PERSON, channel, text)
    }
}

async fn open_window_via_meta(s: &Site) {
    receive_meta(&s.router, &meta_inbound(PERSON_WA, "wamid.IN1", "hi")).await;
}

async fn open_both_windows(s: &Site) {
    open_window_via_twilio_site(s).await;
    open_window_via_meta(s).await;
}

async fn open_window_via_twilio_site(s: &Site) {
    let form = twilio::inbound_text_form(TEST_ACCOUNT_SID, PERSON, TWILIO_NUMBER, "hi", "SM0900");
    s.router
        .receive_webhook(
            "twilio-whatsapp",
            twilio::signed_webhook_request(
                PUBLIC,
                "/webhooks/twilio-whatsapp",
                None,
                TEST_AUTH_TOKEN,
                &form,
            ),
        )
        .await
        .unwrap();
}

async fn drain(router: &Router) {
    for _ in 0..10 {
        if router.delivery().deliver_due().await.unwrap() == 0 {
            return;
        }
    }
}

/// Both windows open, "hello" sent on Meta with Twilio WhatsApp as its fallback.
async fn sent_on_meta_with_twilio_fallback(s: &Site) -> SendAccepted {
    open_both_windows(s).await;
    s.send(text_with_fallback(
        "meta-whatsapp",
        "hello",
        &["twilio-whatsapp"],
    ))
    .await
}

async fn view(s: &Site, id: &str) -> MessageView {
    s.router.records().get_message(&s.tenant, id).await.unwrap()
}

async fn row(router: &Router, id: &str) -> messages::Model {
    messages::Entity::find_by_id(id.to_owned())
        .one(router.store().conn())
        .await
        .unwrap()
        .unwrap()
}

fn attempt_channels(v: &MessageView) -> Vec<String> {
    v.attempts
        .as_ref()
        .unwrap()
        .iter()
        .map(|a| a.channel.clone())
        .collect()
}

fn fallbacks(events: &mut broadcast::Receiver<RouterEvent>) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    while let Ok(e) = events.try_recv() {
        if let RouterEvent::MessageFallback {
            from_channel,
            to_channel,
            error_code,
            ..
        } = e
        {
            out.push((from_channel, to_channel, error_code));
        }
    }
    out
}

async fn outbox_len(router: &Router) -> u64 {
    outbox::Entity::find()
        .count(router.store().conn())
        .await
        .unwrap()
}

/// The Twilio status callback for the message `id` (sent as `sid`).
async fn twilio_status(s: &Site, id: &str, sid: &str, status: &str, code: Option<&str>) {
    let form = twilio::status_form(TEST_ACCOUNT_SID, TWILIO_NUMBER, PERSON, sid, status, code);
    let path = format!("/webhooks/twilio-whatsapp/status/{id}");
    let req = twilio::signed_webhook_request(PUBLIC, &path, None, TEST_AUTH_TOKEN, &form);
    s.router
        .receive_webhook("twilio-whatsapp", req)
        .await
        .unwrap();
}

/// Sends a text on Twilio with Meta as its fallback and delivers it on Twilio.
async fn sent_on_twilio(s: &Site) -> (SendAccepted, String) {
    let accepted = s
        .send(text_with_fallback(
            "twilio-whatsapp",
            "your order shipped",
            &["meta-whatsapp"],
        ))
        .await;
    drain(&s.router).await;
    let sid = s.twilio.created_message_sids().last().unwrap().clone();
    (accepted, sid)
}

#[tokio::test]
async fn twilio_unreachable_codes_at_send_time_fall_back_to_meta_with_one_id() {
    on_each_backend(|db| async move {
        let s = site(&db).await;
        open_both_windows(&s).await;
        for (n, code) in [63003, 63024].into_iter().enumerate() {
            let mut events = s.router.subscribe();
            s.twilio
                .respond_error_next(400, code, "Channel could not find To address");
            let accepted = s
                .send(text_with_fallback(
                    "twilio-whatsapp",
                    "your order shipped",
                    &["meta-whatsapp"],
                ))
                .await;
            assert_eq!(accepted.channel, "twilio-whatsapp");
            drain(&s.router).await;
            assert_eq!(twilio_sends(&s.twilio), n + 1);
            assert_eq!(graph_sends(&s.graph), n + 1, "{code}: sent again on Meta");
            let v = view(&s, &accepted.id).await;
            assert_eq!(v.channel, "meta-whatsapp");
            assert_eq!(v.status, "accepted");
            assert_eq!(v.error_code, None);
            assert!(
                v.provider_message_id
                    .as_deref()
                    .unwrap()
                    .starts_with("wamid.")
            );
            assert_eq!(attempt_channels(&v), ["twilio-whatsapp", "meta-whatsapp"]);
            let history = v.status_history.unwrap();
            assert!(
                history.iter().any(|h| h.status == "failed"
                    && h.error_code.as_deref() == Some(code.to_string().as_str())),
                "the failed leg stays in the history: {history:?}"
            );
            assert_eq!(
                fallbacks(&mut events),
                [(
                    "twilio-whatsapp".to_owned(),
                    "meta-whatsapp".to_owned(),
                    code.to_string()
                )]
            );
            assert_eq!(outbox_len(&s.router).await, 0);
            assert_eq!(
                crate::support::count(&s.router, messages::Entity).await,
                3 + n as u64,
                "two inbound, one outbound per send: the same message, not a second one"
            );
        }
    })
    .await;
}

#[tokio::test]
async fn meta_131026_at_send_time_falls_back_to_twilio() {
    on_each_backend(|db| async move {
        let s = site(&db).await;
        open_both_windows(&s).await;
        // Not on WhatsApp; and the provider's own "outside the window" (131047).
        for (n, code) in [131026, 131047].into_iter().enumerate() {
            s.graph
                .respond_next(400, meta::error_envelope(code, "Message Undeliverable."));
            let accepted = s
                .send(text_with_fallback(
                    "meta-whatsapp",
                    "hello",
                    &["twilio-whatsapp"],
                ))
                .await;
            drain(&s.router).await;
            let v = view(&s, &accepted.id).await;
            assert_eq!(v.channel, "twilio-whatsapp", "{code}");
            assert_eq!(v.status, "accepted");
            assert_eq!(attempt_channels(&v), ["meta-whatsapp", "twilio-whatsapp"]);
            assert_eq!(
                (graph_sends(&s.graph), twilio_sends(&s.twilio)),
                (n + 1, n + 1)
            );
        }
    })
    .await;
}

#[tokio::test]
async fn outside_the_window_send_picks_the_first_fallback_that_can_take_it() {
    on_each_backend(|db| async move {
        let s = site(&db).await;
        // Only Twilio's window is open; the fake SMS channel has none.
        open_window_via_twilio_site(&s).await;
        let mut events = s.router.subscribe();
        // Without fallback: refused as before.
        let err = s
            .router
            .send(&s.tenant, send_text(PERSON, "meta-whatsapp", "hi"))
            .await
            .unwrap_err();
        assert_eq!(err.code(), "outside_service_window");
        let accepted = s
            .send(text_with_fallback(
                "meta-whatsapp",
                "hi",
                &["twilio-whatsapp", SMS],
            ))
            .await;
        assert_eq!(accepted.channel, "twilio-whatsapp");
        assert_eq!(
            fallbacks(&mut events),
            [(
                "meta-whatsapp".to_owned(),
                "twilio-whatsapp".to_owned(),
                "outside_service_window".to_owned()
            )]
        );
        // The rest of the list stays: Twilio failing moves it on to SMS.
        s.twilio
            .respond_error_next(400, 63003, "Channel could not find To address");
        drain(&s.router).await;
        let v = view(&s, &accepted.id).await;
        assert_eq!(v.channel, SMS);
        assert_eq!(attempt_channels(&v), ["twilio-whatsapp", SMS]);
        assert_eq!(graph_sends(&s.graph), 0);
        assert_eq!(s.sms.sent().len(), 1);
        assert_eq!(s.sms.sent()[0].1.content, Content::text("hi"));

        // No fallback whose window is open either: refused.
        let err = s
            .router
            .send(
                &s.tenant,
                SendRequest {
                    to: "+16505550000".into(),
                    ..text_with_fallback("meta-whatsapp", "hi", &["twilio-whatsapp"])
                },
            )
            .await
            .unwrap_err();
        assert_eq!(err.code(), "outside_service_window");
    })
    .await;
}

#[tokio::test]
async fn later_failed_and_undelivered_statuses_fall_back() {
    on_each_backend(|db| async move {
        let s = site(&db).await;
        open_both_windows(&s).await;
        for (n, (status, code)) in [("failed", "63024"), ("undelivered", "63003")]
            .into_iter()
            .enumerate()
        {
            let (accepted, sid) = sent_on_twilio(&s).await;
            assert_eq!(
                row(&s.router, &accepted.id).await.channel,
                "twilio-whatsapp"
            );
            let mut events = s.router.subscribe();
            twilio_status(&s, &accepted.id, &sid, "sent", None).await;
            twilio_status(&s, &accepted.id, &sid, status, Some(code)).await;
            let m = row(&s.router, &accepted.id).await;
            assert_eq!(
                (m.channel.as_str(), m.status.as_str()),
                ("meta-whatsapp", "queued")
            );
            assert_eq!(m.provider_message_id, None);
            assert_eq!(
                fallbacks(&mut events),
                [(
                    "twilio-whatsapp".to_owned(),
                    "meta-whatsapp".to_owned(),
                    code.to_owned()
                )]
            );
            // The same report again (a redelivery with another key) moves nothing.
            twilio_status(&s, &accepted.id, &sid, status, Some(code)).await;
            drain(&s.router).await;
            assert_eq!(graph_sends(&s.graph), n + 1, "{status}: sent once on Meta");
            let v = view(&s, &accepted.id).await;
            assert_eq!(
                (v.channel.as_str(), v.status.as_str()),
                ("meta-whatsapp", "accepted")
            );
            assert_eq!(attempt_channels(&v), ["twilio-whatsapp", "meta-whatsapp"]);
            let history: Vec<String> = v
                .status_history
                .unwrap()
                .iter()
                .map(|h| h.status.clone())
                .collect();
            assert!(history.contains(&status.to_owned()), "{history:?}");
        }
    })
    .await;
}

#[tokio::test]
async fn a_later_meta_failure_for_an_unreachable_recipient_falls_back() {
    on_each_backend(|db| async move {
        let s = site(&db).await;
        let accepted = sent_on_meta_with_twilio_fallback(&s).await;
        drain(&s.router).await;
        let wamid = row(&s.router, &accepted.id)
            .await
            .provider_message_id
            .unwrap();
        receive_meta(
            &s.router,
            &meta::status(PNID, &wamid, "failed", PERSON_WA, Some(131026)),
        )
        .await;
        drain(&s.router).await;
        let v = view(&s, &accepted.id).await;
        assert_eq!(v.channel, "twilio-whatsapp");
        assert_eq!(attempt_channels(&v), ["meta-whatsapp", "twilio-whatsapp"]);
    })
    .await;
}

#[tokio::test]
async fn transient_and_other_permanent_errors_do_not_fall_back() {
    on_each_backend(|db| async move {
        let s = site(&db).await;
        open_both_windows(&s).await;
        // Invalid number (permanent, not "unreachable here"), and credentials refused.
        for (code, message) in [
            (21211, "Invalid 'To' Phone Number"),
            (20003, "Authenticate"),
        ] {
            let status = if code == 20003 { 401 } else { 400 };
            s.twilio.respond_error_next(status, code, message);
            let accepted = s
                .send(text_with_fallback(
                    "twilio-whatsapp",
                    "hi",
                    &["meta-whatsapp"],
                ))
                .await;
            drain(&s.router).await;
            let m = row(&s.router, &accepted.id).await;
            assert_eq!(m.channel, "twilio-whatsapp");
            assert_eq!(m.status, "failed");
            assert_eq!(m.error_code.as_deref(), Some(code.to_string().as_str()));
        }
        assert_eq!(graph_sends(&s.graph), 0);

        // A later failure that is not about reaching the recipient fails the message.
        let (accepted, sid) = {
            let accepted = s
                .send(text_with_fallback(
                    "twilio-whatsapp",
                    "third",
                    &["meta-whatsapp"],
                ))
                .await;
            let before = s.twilio.created_message_sids().len();
            let mut sid = None;
            for _ in 0..20 {
                drain(&s.router).await;
                if let Some(id) = row(&s.router, &accepted.id).await.provider_message_id {
                    sid = Some(id);
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            assert!(s.twilio.created_message_sids().len() > before);
            (accepted, sid.expect("sent on Twilio"))
        };
        twilio_status(&s, &accepted.id, &sid, "undelivered", Some("30008")).await;
        let m = row(&s.router, &accepted.id).await;
        assert_eq!(
            (m.channel.as_str(), m.status.as_str()),
            ("twilio-whatsapp", "undelivered")
        );
        assert_eq!(graph_sends(&s.graph), 0);
        // A transient error retries on the same channel.
        s.twilio
            .respond_error_next(503, 20503, "Service unavailable");
        let accepted = s
            .send(text_with_fallback(
                "twilio-whatsapp",
                "again",
                &["meta-whatsapp"],
            ))
            .await;
        s.router.delivery().deliver_due().await.unwrap();
        let m = row(&s.router, &accepted.id).await;
        assert_eq!(
            (m.channel.as_str(), m.status.as_str()),
            ("twilio-whatsapp", "queued")
        );
        let entry = outbox::Entity::find_by_id(accepted.id.clone())
            .one(s.router.store().conn())
            .await
            .unwrap()
            .expect("still queued for a retry");
        assert_eq!(entry.account_id, m.account_id);
        assert_eq!(entry.attempts, 1);
    })
    .await;
}

#[tokio::test]
async fn a_failed_status_after_the_fallback_window_only_fails_the_message() {
    on_each_backend(|db| async move {
        let s = site_with(
            &db,
            DeliveryConfig {
                fallback_window: Duration::from_millis(50),
                ..DeliveryConfig::default()
            },
        )
        .await;
        open_both_windows(&s).await;
        let (accepted, sid) = sent_on_twilio(&s).await;
        tokio::time::sleep(Duration::from_millis(120)).await;
        twilio_status(&s, &accepted.id, &sid, "failed", Some("63024")).await;
        drain(&s.router).await;
        let m = row(&s.router, &accepted.id).await;
        assert_eq!(
            (m.channel.as_str(), m.status.as_str()),
            ("twilio-whatsapp", "failed")
        );
        assert_eq!(m.error_code.as_deref(), Some("63024"));
        assert_eq!(graph_sends(&s.graph), 0);
        assert_eq!(outbox_len(&s.router).await, 0);
    })
    .await;
}

fn twilio_template() -> Content {
    Content {
        template: Some(Template {
            name: twilio::TEST_TEMPLATE_SID.into(),
            language: Some("en".into()),
            ..Template::default()
        }),
        ..Content::default()
    }
}

#[tokio::test]
async fn content_a_fallback_channel_cannot_carry_is_refused_unless_text_is_given() {
    on_each_backend(|db| async move {
        let s = site(&db).await;
        let template = SendRequest {
            to: PERSON.into(),
            channel: Some("twilio-whatsapp".into()),
            content: twilio_template(),
            fallback: vec![to(SMS)],
            ..SendRequest::default()
        };
        let err = s
            .router
            .send(&s.tenant, template.clone())
            .await
            .unwrap_err();
        assert_eq!(
            (err.code(), err.http_status()),
            ("unsupported_content", 422)
        );
        let text = err.to_string();
        assert!(text.contains(SMS) && text.contains("template"), "{text}");
        let location = SendRequest {
            content: Content {
                location: Some(Location {
                    latitude: 52.37,
                    longitude: 4.89,
                    name: None,
                    address: None,
                    url: None,
                }),
                ..Content::default()
            },
            ..template.clone()
        };
        let err = s
            .router
            .send(&s.tenant, location.clone())
            .await
            .unwrap_err();
        assert_eq!(err.code(), "unsupported_content");
        assert!(err.to_string().contains("location"), "{err}");
        // Without the fallback, the template is accepted as before.
        s.router
            .send(
                &s.tenant,
                SendRequest {
                    fallback: Vec::new(),
                    ..template.clone()
                },
            )
            .await
            .unwrap();
        drain(&s.router).await;

        // With a plain text alternative: the template goes out alone, the text on SMS.
        let mut with_text = template.clone();
        with_text.content.text = Some("Your order shipped.".into());
        s.twilio
            .respond_error_next(400, 63003, "Channel could not find To address");
        let accepted = s.send(with_text).await;
        drain(&s.router).await;
        let creates: Vec<_> = s
            .twilio
            .requests()
            .into_iter()
            .filter(|r| r.method == "POST" && r.path.ends_with("/Messages.json"))
            .collect();
        let last = creates.last().unwrap();
        assert!(last.form_value("ContentSid").is_some());
        assert_eq!(
            last.form_value("Body"),
            None,
            "the alternative is not sent with the template"
        );
        let v = view(&s, &accepted.id).await;
        assert_eq!(v.channel, SMS);
        assert_eq!(v.content, json!({"text": "Your order shipped."}));
        assert_eq!(s.sms.sent().len(), 1);
        assert_eq!(
            s.sms.sent()[0].1.content,
            Content::text("Your order shipped.")
        );

        // Text beside a location is its alternative too. Outside the WhatsApp window the
        // SMS channel takes the message at once, with the alternative.
        let mut location_with_text = location;
        location_with_text.content.text = Some("We are at the dam.".into());
        let accepted = s
            .router
            .send(&s.tenant, location_with_text.clone())
            .await
            .unwrap();
        assert_eq!(accepted.channel, SMS);
        let stored = row(&s.router, &accepted.id).await;
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&stored.content).unwrap(),
            json!({"text": "We are at the dam."})
        );
        assert_eq!(stored.fallback, None);
        // Inside it, the location goes on WhatsApp (the text is only the alternative: a
        // location carries its words in its name and address) and the text alone is kept
        // for SMS.
        open_window_via_twilio_site(&s).await;
        let accepted = s.send(location_with_text).await;
        assert_eq!(accepted.channel, "twilio-whatsapp");
        let stored = row(&s.router, &accepted.id).await;
        let content: serde_json::Value = serde_json::from_str(&stored.content).unwrap();
        assert!(content.get("text").is_none(), "{content}");
        assert!(content["location"].is_object());
        let fallback: serde_json::Value =
            serde_json::from_str(stored.fallback.as_deref().unwrap()).unwrap();
        assert_eq!(fallback["targets"][0]["channel"], SMS);
        assert_eq!(
            fallback["targets"][0]["content"],
            json!({"text": "We are at the dam."})
        );
    })
    .await;
}

#[tokio::test]
async fn idempotency_answers_the_same_message_after_a_fallback() {
    on_each_backend(|db| async move {
        let s = site(&db).await;
        open_both_windows(&s).await;
        let request = SendRequest {
            idempotency_key: Some("order-7".into()),
            ..text_with_fallback("twilio-whatsapp", "shipped", &["meta-whatsapp"])
        };
        s.twilio
            .respond_error_next(400, 63003, "Channel could not find To address");
        let first = s.send(request.clone()).await;
        drain(&s.router).await;
        let again = s.send(request.clone()).await;
        assert_eq!(again.id, first.id);
        assert_eq!(again.channel, "meta-whatsapp");
        drain(&s.router).await;
        assert_eq!((twilio_sends(&s.twilio), graph_sends(&s.graph)), (1, 1));
        // The same key with another fallback list is another request.
        let other = SendRequest {
            fallback: vec![to(SMS)],
            ..request
        };
        let err = s.router.send(&s.tenant, other).await.unwrap_err();
        assert_eq!(err.code(), "idempotency_key_reused");
    })
    .await;
}

#[tokio::test]
async fn a_restart_between_the_failure_and_the_fallback_send_loses_nothing() {
    on_each_backend(|db| async move {
        let s = site(&db).await;
        open_both_windows(&s).await;
        let (accepted, sid) = sent_on_twilio(&s).await;
        // The message falls back, then the process stops before sending it on Meta.
        twilio_status(&s, &accepted.id, &sid, "failed", Some("63003")).await;
        assert_eq!(outbox_len(&s.router).await, 1);
        drop(s.router);
        let restarted = router_on(
            &db,
            &s.twilio,
            &s.graph,
            &s.sms,
            &s.key,
            DeliveryConfig::default(),
        )
        .await;
        drain(&restarted).await;
        assert_eq!(graph_sends(&s.graph), 1);
        let m = row(&restarted, &accepted.id).await;
        assert_eq!(
            (m.channel.as_str(), m.status.as_str()),
            ("meta-whatsapp", "accepted")
        );
        assert_eq!(m.fallback, None, "no channel left");
        // Meta failing too ends it: nothing left to fall back to.
        receive_meta(
            &restarted,
            &meta::status(
                PNID,
                m.provider_message_id.as_deref().unwrap(),
                "failed",
                PERSON_WA,
                Some(131026),
            ),
        )
        .await;
        let m = row(&restarted, &accepted.id).await;
        assert_eq!(
            (m.channel.as_str(), m.status.as_str()),
            ("meta-whatsapp", "failed")
        );
        assert_eq!(outbox_len(&restarted).await, 0);
    })
    .await;
}

#[tokio::test]
async fn a_fallback_is_notified_as_an_outgoing_webhook() {
    on_each_backend(|db| async move {
        let s = site(&db).await;
        s.router
            .notifications()
            .set_notify_url(&s.tenant, Some("https://product.example/hooks"))
            .await
            .unwrap();
        open_both_windows(&s).await;
        s.twilio
            .respond_error_next(400, 63003, "Channel could not find To address");
        let accepted = s
            .send(text_with_fallback(
                "twilio-whatsapp",
                "hi",
                &["meta-whatsapp"],
            ))
            .await;
        drain(&s.router).await;
        let db_conn = s.router.store().conn();
        let rows = db_conn
            .query_all_raw(Statement::from_string(
                db_conn.get_database_backend(),
                "SELECT payload FROM notifications ORDER BY id",
            ))
            .await
            .unwrap();
        let payloads: Vec<serde_json::Value> = rows
            .iter()
            .map(|r| serde_json::from_str(&r.try_get::<String>("", "payload").unwrap()).unwrap())
            .collect();
        let fallback = payloads
            .iter()
            .find(|p| p["type"] == "message_fallback")
            .unwrap_or_else(|| panic!("no fallback notification in {payloads:?}"));
        assert_eq!(fallback["message_id"], accepted.id.as_str());
        assert_eq!(fallback["from_channel"], "twilio-whatsapp");
        assert_eq!(fallback["to_channel"], "meta-whatsapp");
        assert_eq!(fallback["error_code"], "63003");
        assert_eq!(fallback["tenant_id"], s.tenant.as_str());
    })
    .await;
}

#[tokio::test]
async fn the_api_takes_fallback_and_refuses_bad_targets() {
    on_each_backend(|db| async move {
        let api = start(&db).await;
        let second = "+14155550123";
        api.call(
            Method::POST,
            "/v1/accounts",
            Some(&api.admin),
            Some(api::connect_body(second)),
        )
        .await
        .expect(201, None);
        let body = |fallback: serde_json::Value| {
            json!({
                "to": api::ALICE,
                "from": crate::support::fake::BUSINESS,
                "template": {"name": "order_update", "language": "en_US"},
                "fallback": fallback,
            })
        };
        api.post(
            "/v1/messages",
            &api.admin,
            body(json!([{"channel": "pigeon"}])),
        )
        .await
        .expect(400, Some("unknown_channel"));
        api.post(
            "/v1/messages",
            &api.admin,
            body(json!([{"channel": "fake", "from": "not a number"}])),
        )
        .await
        .expect(400, Some("invalid_from"));
        api.post(
            "/v1/messages",
            &api.admin,
            body(json!([{"channel": "fake", "from": crate::support::fake::BUSINESS}])),
        )
        .await
        .expect(400, Some("invalid_fallback"));
        let bad_shape = api
            .post(
                "/v1/messages",
                &api.admin,
                body(json!([{"channel": "fake", "form": second}])),
            )
            .await;
        assert_eq!(bad_shape.status, 400, "{}", bad_shape.text);
        let accepted = api
            .post(
                "/v1/messages",
                &api.admin,
                body(json!([{"channel": "fake", "from": second}])),
            )
            .await
            .expect(202, None);
        let id = accepted.body["id"].as_str().unwrap();
        let stored = row(&api.router, id).await;
        assert!(
            stored
                .fallback
                .as_deref()
                .is_some_and(|f| f.contains("\"fake\"")),
            "{:?}",
            stored.fallback
        );
    })
    .await;
}

/// A failure report that comes before the send's own answer (the provider id is not known
/// yet, so it waits) still moves the message on once the answer is recorded.
#[tokio::test]
async fn a_failure_reported_before_the_send_answer_still_falls_back() {
    on_each_backend(|db| async move {
        let s = site(&db).await;
        let accepted = sent_on_meta_with_twilio_fallback(&s).await;
        let wamid = "wamid.reported-before-the-answer";
        s.graph.respond_next(
            200,
            json!({"messaging_product": "whatsapp",
                   "contacts": [{"input": PERSON, "wa_id": PERSON_WA}],
                   "messages": [{"id": wamid}]}),
        );
        // The Graph API answers slowly; the failure report for the message comes first.
        s.graph.set_delay(Duration::from_millis(800));
        let deliver = {
            let router = s.router.clone();
            tokio::spawn(async move { router.delivery().deliver_due().await.unwrap() })
        };
        tokio::time::sleep(Duration::from_millis(200)).await;
        receive_meta(
            &s.router,
            &meta::status(PNID, wamid, "failed", PERSON_WA, Some(131026)),
        )
        .await;
        assert_eq!(deliver.await.unwrap(), 1);
        s.graph.set_delay(Duration::ZERO);
        drain(&s.router).await;
        let v = view(&s, &accepted.id).await;
        assert_eq!(
            (v.channel.as_str(), v.status.as_str()),
            ("twilio-whatsapp", "accepted")
        );
        assert_eq!(attempt_channels(&v), ["meta-whatsapp", "twilio-whatsapp"]);
        assert!(
            v.status_history
                .unwrap()
                .iter()
                .any(|h| h.status == "failed" && h.error_code.as_deref() == Some("131026")),
            "the failed leg stays in the history"
        );
        assert_eq!(twilio_sends(&s.twilio), 1);
        assert_eq!(outbox_len(&s.router).await, 0);
    })
    .await;
}

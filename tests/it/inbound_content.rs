//! Inbound: nothing refused, nothing dropped (issue 17), through the real HTTP server with
//! the real Meta and Twilio adapters: Meta's account-level notifications verified by the
//! connected accounts' app secrets, answered 200 and stored once for the accounts they
//! concern; unreadable content kept as unsupported with its errors; senders known only by a
//! BSUID; group chats kept apart from 1:1 conversations; click-to-WhatsApp referrals and
//! status pricing on the message; number changes moving the contact. Built from the
//! providers' documented payloads. On SQLite and PostgreSQL.

use reqwest::Method;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder};
use serde_json::{Value, json};
use switchboard_core::{EventKind, InboundEvent, MessageStatus, Pricing, StatusUpdate};
use switchboard_meta_cloud::testing as meta;
use switchboard_router::store::entity::{conversations, messages, provider_notifications};
use switchboard_twilio::testing::{self as twilio, TEST_ACCOUNT_SID};

use crate::support::api::{self, Reply};
use crate::support::fake::BUSINESS;
use crate::support::http_site::{HttpSite, serve_acme};
use crate::support::providers::{
    APP_SECRET, META_DISPLAY, PERSON, PERSON_WA, PNID, TWILIO_NUMBER, TWILIO_PATH, builder,
    connect_both, fakes, now_ts, stored,
};
use crate::support::providers::{post_meta_webhook, post_twilio_form};
use crate::support::{TestDb, count, on_each_backend};

const FIXTURES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../adapters/meta-cloud/tests/fixtures"
);
/// Meta's example business account (`entry[].id`).
const WABA: &str = "102290129340398";
/// A second number of acme's Meta app: the same app secret signs its webhooks.
const SECOND_PNID: &str = "106540352242999";
const SECOND_NUMBER: &str = "+15550000007";
/// Globex's number, of another Meta app.
const GLOBEX_PNID: &str = "106540352242888";
const GLOBEX_NUMBER: &str = "+15550000008";
const GLOBEX_SECRET: &str = "globex-app-secret";
const BSUID: &str = "US.13491208655302741918";

fn fixture(name: &str) -> String {
    let path = format!("{FIXTURES}/{name}");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The router with both real adapters on their fakes, served on a loopback port; acme
/// with its Twilio and Meta accounts (and an admin key).
struct Env {
    site: HttpSite,
    _fakes: (
        switchboard_twilio::testing::FakeTwilio,
        switchboard_meta_cloud::testing::FakeGraph,
    ),
}

impl std::ops::Deref for Env {
    type Target = HttpSite;
    fn deref(&self) -> &HttpSite {
        &self.site
    }
}

async fn env(db: &TestDb) -> Env {
    let (twilio, graph) = fakes().await;
    let site = serve_acme(builder(db, &twilio, &graph).await.build()).await;
    connect_both(&site.router, &site.tenant, APP_SECRET).await;
    Env {
        site,
        _fakes: (twilio, graph),
    }
}

impl Env {
    /// POSTs `body` to the Meta webhook, signed with `secret` (unsigned with `None`).
    async fn meta(&self, body: &str, secret: Option<&str>) -> Reply {
        post_meta_webhook(self, body, secret).await
    }

    /// [`Env::meta`] signed with acme's app secret, which must answer 200.
    async fn meta_ok(&self, body: &str) {
        let r = self.meta(body, Some(APP_SECRET)).await;
        assert_eq!((r.status, r.text.as_str()), (200, "OK"), "{body}");
    }

    /// POSTs a Twilio form signed as Twilio signs it; it must answer 200.
    async fn twilio(&self, form: &[(String, String)]) {
        let res = post_twilio_form(self, TWILIO_PATH, form).await;
        assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    }

    async fn get(&self, path: &str) -> Value {
        self.call(Method::GET, path, None)
            .await
            .expect(200, None)
            .body
    }

    async fn message(&self, id: &str) -> Value {
        self.get(&format!("/v1/messages/{id}")).await
    }

    async fn contact(&self, phone_or_bsuid: &str) -> Value {
        self.get(&format!(
            "/v1/contacts?phone={}",
            api::encode(phone_or_bsuid)
        ))
        .await
    }

    async fn notifications(&self) -> Vec<provider_notifications::Model> {
        provider_notifications::Entity::find()
            .order_by_asc(provider_notifications::Column::Id)
            .all(self.router.store().conn())
            .await
            .unwrap()
    }

    async fn conversation_of(&self, phone_or_bsuid: &str) -> conversations::Model {
        let contact = self.contact(phone_or_bsuid).await;
        conversations::Entity::find()
            .filter(conversations::Column::ContactId.eq(contact["id"].as_str().unwrap()))
            .one(self.router.store().conn())
            .await
            .unwrap()
            .expect("a conversation")
    }

    async fn connect_meta(&self, tenant: &str, pnid: &str, number: &str, secret: &str) -> String {
        let creds = json!({"phone_number_id": pnid, "access_token": "t", "app_secret": secret,
                           "verify_token": "vt"});
        self.router
            .accounts()
            .connect(tenant, "meta-whatsapp", number, &creds, None)
            .await
            .unwrap()
            .id
    }
}

/// A `messages` change for acme's Meta number.
fn meta_messages(contacts: Value, items: Value) -> String {
    meta::envelope(&[(
        PNID,
        META_DISPLAY,
        "messages",
        json!({"contacts": contacts, "messages": items}),
    )])
}

/// A Meta text from `wa_id` at `timestamp`.
fn meta_text(wa_id: &str, wamid: &str, text: &str, timestamp: &str) -> String {
    meta_messages(
        json!([{"profile": {"name": "Sheena"}, "wa_id": wa_id}]),
        json!([{"from": wa_id, "id": wamid, "timestamp": timestamp, "type": "text",
                "text": {"body": text}}]),
    )
}

/// §16's `user_changed_number` system message, from `old` to `new` (digits), sent now.
fn number_change(old: &str, new: &str, wamid: &str) -> String {
    meta_messages(
        json!([]),
        json!([{"from": old, "id": wamid, "timestamp": now_ts(), "type": "system",
                "system": {"body": format!("User Sheena Nelson changed from {old} to {new}"),
                           "wa_id": new, "type": "user_changed_number"}}]),
    )
}

fn seconds_ago(s: i64) -> String {
    (chrono::Utc::now().timestamp() - s).to_string()
}

#[tokio::test]
async fn meta_account_level_notifications_are_verified_answered_200_and_stored_once() {
    on_each_backend(|db| async move {
        let e = env(&db).await;
        let acme_pnid_account = e.get("/v1/accounts").await["data"].as_array().unwrap().iter()
            .find(|a| a["channel"] == "meta-whatsapp").unwrap()["id"].as_str().unwrap().to_owned();
        let second = e.connect_meta(&e.tenant, SECOND_PNID, SECOND_NUMBER, APP_SECRET).await;
        let globex = e.router.tenants().create("globex").await.unwrap().tenant_id;
        let globex_account = e.connect_meta(&globex, GLOBEX_PNID, GLOBEX_NUMBER, GLOBEX_SECRET).await;

        // Meta's template-approved example names no number: for every account whose app
        // secret signed it (acme's two), never globex's.
        let template = fixture("template_status_approved.json");
        e.meta_ok(&template).await;
        let rows = e.notifications().await;
        let mut accounts: Vec<&str> = rows.iter().map(|r| r.account_id.as_str()).collect();
        accounts.sort_unstable();
        let mut want = vec![acme_pnid_account.as_str(), second.as_str()];
        want.sort_unstable();
        assert_eq!(accounts, want);
        for r in &rows {
            assert_eq!(r.tenant_id, e.tenant);
            assert_eq!(r.channel, "meta-whatsapp");
            assert_eq!(r.kind, "message_template_status_update");
            assert_eq!(r.entity_id.as_deref(), Some(WABA));
            assert_eq!(r.provider_timestamp, Some(1_751_247_548_000));
            let raw: Value = serde_json::from_str(&r.raw).unwrap();
            assert_eq!(raw["event"], "APPROVED");
            assert_eq!(raw["message_template_name"], "order_confirmation");
        }
        // Redelivered (Meta retries, other apps get copies): answered, stored once.
        e.meta_ok(&template).await;
        assert_eq!(e.notifications().await.len(), 2);

        // A number's quality update goes to the account with that display number.
        e.meta_ok(&fixture("phone_number_quality_update.json")).await;
        let rows = e.notifications().await;
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[2].kind, "phone_number_quality_update");
        assert_eq!(rows[2].account_id, acme_pnid_account);

        // Forged or unsigned: refused as before, nothing stored.
        let alert = json!({"object": "whatsapp_business_account", "entry": [{"id": WABA,
            "time": 1_751_300_000, "changes": [{"field": "account_alerts", "value": {
                "entity_type": "PHONE_NUMBER", "entity_id": GLOBEX_PNID,
                "alert_info": {"alert_severity": "CRITICAL", "alert_status": "ACTIVE",
                    "alert_type": "INCREASED_CAPABILITIES_ELIGIBILITY_FAILED",
                    "alert_description": "Your number needs attention."}}}]}]})
        .to_string();
        for secret in [Some("not-an-app-secret"), None] {
            let refused = e.meta(&alert, secret).await;
            assert_eq!(refused.status, 403, "{}", refused.text);
            assert_eq!(refused.code(), Some("bad_signature"), "{}", refused.text);
        }
        assert_eq!(e.notifications().await.len(), 3);
        // Globex's own app signs it: globex's number, and only it.
        let r = e.meta(&alert, Some(GLOBEX_SECRET)).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let rows = e.notifications().await;
        assert_eq!(rows.len(), 4);
        assert_eq!((rows[3].tenant_id.as_str(), rows[3].account_id.as_str()), (globex.as_str(), globex_account.as_str()));
        assert_eq!(rows[3].kind, "account_alerts");

        // Mixed: a message for acme's number and an account update in one webhook.
        let mut mixed: Value = serde_json::from_str(&meta_text(PERSON_WA, "wamid.MIXED", "hello", &now_ts())).unwrap();
        mixed["entry"].as_array_mut().unwrap().push(json!({"id": WABA, "time": 1_751_300_100,
            "changes": [{"field": "account_update", "value": {"event": "DISABLED_UPDATE",
                "ban_info": {"waba_ban_state": "REINSTATE", "waba_ban_date": "April 17, 2025"}}}]}));
        e.meta_ok(&mixed.to_string()).await;
        assert_eq!(stored(&e.router).await.len(), 1, "the message is stored");
        let rows = e.notifications().await;
        assert_eq!(rows.len(), 6, "and the account update, for acme's two accounts");
        assert!(rows[4..].iter().all(|r| r.kind == "account_update" && r.tenant_id == e.tenant));
    })
    .await;
}

#[tokio::test]
async fn a_channel_wide_webhook_with_no_meta_account_connected_is_404_and_cached() {
    on_each_backend(|db| async move {
        let e = env(&db).await;
        let meta_account = e.get("/v1/accounts").await["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["channel"] == "meta-whatsapp")
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        e.call(
            Method::DELETE,
            &format!("/v1/accounts/{meta_account}"),
            None,
        )
        .await
        .expect(200, None);
        let template = fixture("template_status_approved.json");
        let reads = e.router.accounts().channel_reads();
        for _ in 0..3 {
            let r = e.meta(&template, Some(APP_SECRET)).await;
            assert_eq!(r.status, 404, "{}", r.text);
        }
        assert_eq!(
            e.router.accounts().channel_reads() - reads,
            1,
            "unsigned traffic reads the channel's accounts once per cache period"
        );
        assert!(e.notifications().await.is_empty());
    })
    .await;
}

#[tokio::test]
async fn content_that_cannot_be_read_is_stored_as_unsupported_with_its_errors() {
    on_each_backend(|db| async move {
        let e = env(&db).await;
        // Meta's unsupported shape (§3.3) and an image message without its image object.
        let errors = json!([{"code": 131051, "title": "Message type unknown",
            "message": "Message type unknown",
            "error_data": {"details": "Message type is currently not supported."}}]);
        e.meta_ok(&meta_messages(
            json!([{"profile": {"name": "Sheena"}, "wa_id": PERSON_WA}]),
            json!([
                {"from": PERSON_WA, "id": "wamid.U1", "timestamp": now_ts(), "type": "unsupported",
                 "unsupported": {"type": "poll_creation"}, "errors": errors},
                {"from": PERSON_WA, "id": "wamid.U2", "timestamp": now_ts(), "type": "image"},
            ]),
        ))
        .await;
        // Twilio: a media message whose media never came.
        let mut form = twilio::inbound_text_form(
            TEST_ACCOUNT_SID,
            PERSON,
            TWILIO_NUMBER,
            "",
            "SM00000000000000000000000000000u1",
        );
        form.retain(|(k, _)| k != "MessageType");
        form.push(("MessageType".into(), "image".into()));
        e.twilio(&form).await;

        let msgs = stored(&e.router).await;
        assert_eq!(msgs.len(), 3, "nothing dropped");
        let poll = e.message(&msgs[0].id).await;
        let un = &poll["content"]["unsupported"];
        assert_eq!(un["provider_type"], "poll_creation");
        assert_eq!(
            un["errors"],
            json!([{"code": "131051", "message": "Message type unknown",
            "details": "Message type is currently not supported."}])
        );
        assert_eq!(poll["direction"], "inbound");
        let image = e.message(&msgs[1].id).await;
        assert_eq!(image["content"]["unsupported"]["provider_type"], "image");
        assert!(
            image["content"]["unsupported"]["detail"]
                .as_str()
                .unwrap()
                .contains("image")
        );
        let twilio_image = e.message(&msgs[2].id).await;
        assert_eq!(
            twilio_image["content"]["unsupported"]["provider_type"],
            "image"
        );
        assert_eq!(twilio_image["channel"], "twilio-whatsapp");
        // They are the person writing: the window is open on both channels.
        let listed = e.get("/v1/conversations").await;
        assert!(
            listed["data"]
                .as_array()
                .unwrap()
                .iter()
                .all(|c| c["service_window_open"] == true)
        );
    })
    .await;
}

#[tokio::test]
async fn a_sender_known_only_by_a_bsuid_is_a_contact_on_every_channel() {
    on_each_backend(|db| async move {
        let e = env(&db).await;
        // Meta: `from` is the BSUID, `wa_id` is "" (§3.8, §12.3).
        e.meta_ok(&meta_messages(
            json!([{"profile": {"name": "Pablo M.", "username": "@pablomorales"}, "wa_id": "", "user_id": BSUID}]),
            json!([{"from": BSUID, "id": "wamid.B1", "timestamp": now_ts(), "type": "text",
                    "text": {"body": "hi from my username"}}]),
        ))
        .await;
        // Twilio: `From=whatsapp:<BSUID>` and ExternalUserId, no WaId (twilio.md §2).
        let mut form = twilio::inbound_text_form(TEST_ACCOUNT_SID, BSUID, TWILIO_NUMBER, "hi again", "SM00000000000000000000000000000b1");
        form.retain(|(k, _)| k != "WaId");
        form.push(("ExternalUserId".into(), format!("whatsapp:{BSUID}")));
        e.twilio(&form).await;

        let contact = e.contact(BSUID).await;
        assert_eq!(contact["bsuid"], BSUID);
        assert_eq!(contact["phone"], Value::Null);
        assert_eq!(contact["username"], "@pablomorales");
        assert_eq!(contact["channels"], json!(["meta-whatsapp", "twilio-whatsapp"]), "one contact, two channels");
        let conversations = e.get("/v1/conversations").await;
        assert_eq!(conversations["data"].as_array().unwrap().len(), 2);
        for c in conversations["data"].as_array().unwrap() {
            assert_eq!(c["contact"]["id"], contact["id"]);
            assert_eq!(c["service_window_open"], true);
            let msgs = e.get(&format!("/v1/conversations/{}/messages", c["id"].as_str().unwrap())).await;
            assert_eq!(msgs["data"].as_array().unwrap().len(), 1);
        }
    })
    .await;
}

#[tokio::test]
async fn group_chats_are_kept_as_notifications_and_open_no_window() {
    on_each_backend(|db| async move {
        let e = env(&db).await;
        let group_message = fixture("group_message.json").replace("1744344496", &now_ts());
        e.meta_ok(&group_message).await;
        let group = "HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA";
        let status = |status: &str, participant: &str| {
            json!({"id": "wamid.GROUP1", "status": status, "timestamp": now_ts(),
                   "recipient_id": group, "recipient_type": "group",
                   "recipient_participant_id": participant})
        };
        let statuses = meta::envelope(&[(
            PNID,
            META_DISPLAY,
            "messages",
            json!({"statuses": [
            status("delivered", "16505551234"), status("delivered", "16505551235")]}),
        )]);
        e.meta_ok(&statuses).await;
        e.meta_ok(&statuses).await;

        assert_eq!(
            count(&e.router, messages::Entity).await,
            0,
            "not a 1:1 message"
        );
        assert_eq!(
            count(&e.router, conversations::Entity).await,
            0,
            "not filed into the participant's conversation"
        );
        let rows = e.notifications().await;
        let kinds: Vec<&str> = rows.iter().map(|r| r.kind.as_str()).collect();
        assert_eq!(
            kinds,
            ["group_message", "group_status", "group_status"],
            "stored once each"
        );
        assert!(
            rows.iter()
                .all(|r| r.entity_id.as_deref() == Some(group) && r.tenant_id == e.tenant)
        );
        let raw: Value = serde_json::from_str(&rows[0].raw).unwrap();
        assert_eq!(raw["from"], PERSON_WA);
        // The participant did not write to the business: no window with them.
        let refused = e
            .call(
                Method::POST,
                "/v1/messages",
                Some(json!({"to": PERSON, "text": "hi", "channel": "meta-whatsapp"})),
            )
            .await;
        refused.expect(422, Some("outside_service_window"));
    })
    .await;
}

#[tokio::test]
async fn referrals_are_returned_on_the_message_and_in_notifications() {
    on_each_backend(|db| async move {
        let e = env(&db).await;
        e.call(Method::PUT, "/v1/notifications", Some(json!({"url": "https://product.example/hooks"})))
            .await
            .expect(200, None);
        e.meta_ok(&meta_messages(
            json!([{"profile": {"name": "Sheena"}, "wa_id": PERSON_WA}]),
            json!([{"from": PERSON_WA, "id": "wamid.AD1", "timestamp": now_ts(), "type": "text",
                    "text": {"body": "Can I get more info?"},
                    "referral": {"source_url": "https://fb.me/3cr4Wqqkh", "source_id": "120226305854810726",
                        "source_type": "ad", "body": "Summer sale", "headline": "50% off",
                        "media_type": "image", "image_url": "https://scontent.xx.fbcdn.net/i.jpg",
                        "ctwa_clid": "ARAkLkA8rmlFeiCktEJQ", "welcome_message": {"text": "Hi!"}}}]),
        ))
        .await;
        let mut form = twilio::inbound_text_form(TEST_ACCOUNT_SID, PERSON, TWILIO_NUMBER, "From the ad", "SM00000000000000000000000000000a1");
        for (k, v) in [("ReferralSourceType", "ad"), ("ReferralSourceId", "120226305854810999"),
            ("ReferralSourceUrl", "https://fb.me/x"), ("ReferralHeadline", "Sale"), ("ReferralBody", "50% off"),
            ("ReferralMediaContentType", "image/jpeg"), ("ReferralMediaUrl", "https://m/x.jpg"),
            ("ReferralMediaId", "ME0123456789"), ("ReferralCtwaClid", "clid-1")] {
            form.push((k.into(), v.into()));
        }
        e.twilio(&form).await;
        // A message without a referral has none.
        e.meta_ok(&meta_text(PERSON_WA, "wamid.PLAIN", "plain", &now_ts())).await;

        let msgs = stored(&e.router).await;
        let meta_view = e.get(&format!("/v1/messages/{}", msgs[0].id)).await;
        assert_eq!(meta_view["referral"], json!({"source_type": "ad", "source_id": "120226305854810726",
            "source_url": "https://fb.me/3cr4Wqqkh", "headline": "50% off", "body": "Summer sale",
            "media_type": "image", "media_url": "https://scontent.xx.fbcdn.net/i.jpg",
            "ctwa_clid": "ARAkLkA8rmlFeiCktEJQ", "welcome_message": "Hi!"}));
        let twilio_view = e.get(&format!("/v1/messages/{}", msgs[1].id)).await;
        assert_eq!(twilio_view["referral"]["media_id"], "ME0123456789");
        assert_eq!(twilio_view["referral"]["ctwa_clid"], "clid-1");
        assert_eq!(twilio_view["referral"]["source_url"], "https://fb.me/x");
        let plain = e.get(&format!("/v1/messages/{}", msgs[2].id)).await;
        assert_eq!(plain["referral"], Value::Null);
        // The conversation's message list shows it too.
        let listed = e.get(&format!("/v1/conversations/{}/messages", msgs[0].conversation_id)).await;
        assert_eq!(listed["data"][0]["referral"]["source_id"], "120226305854810726");
        assert_eq!(listed["data"][1]["referral"], Value::Null);

        // And the product's notifications.
        let payloads: Vec<Value> = e.router.store().conn()
            .query_all_raw(sea_orm::Statement::from_string(e.router.store().backend(),
                "SELECT payload FROM notifications ORDER BY id"))
            .await
            .unwrap()
            .iter()
            .map(|r| serde_json::from_str(&r.try_get::<String>("", "payload").unwrap()).unwrap())
            .collect();
        assert_eq!(payloads.len(), 3);
        assert!(payloads.iter().all(|p| p["type"] == "message_received"));
        assert_eq!(payloads[0]["referral"]["source_id"], "120226305854810726");
        assert_eq!(payloads[0]["message_id"], msgs[0].id.as_str());
        assert_eq!(payloads[1]["referral"]["media_id"], "ME0123456789");
        assert!(payloads[2].get("referral").is_none(), "{}", payloads[2]);
    })
    .await;
}

#[tokio::test]
async fn a_number_change_moves_the_contact_without_opening_the_window_or_opting_in() {
    on_each_backend(|db| async move {
        let e = env(&db).await;
        const NEW: &str = "+12195555358";
        // The person opts out a minute ago, then changes number.
        e.meta_ok(&meta_text(
            PERSON_WA,
            "wamid.STOP",
            "STOP",
            &seconds_ago(60),
        ))
        .await;
        let before = e.conversation_of(PERSON).await;
        assert!(before.opted_out_at.is_some());
        let contact = e.contact(PERSON).await;
        e.meta_ok(&number_change(PERSON_WA, "12195555358", "wamid.CHANGE"))
            .await;

        // The notice is a message of the conversation…
        let msgs = e
            .get(&format!("/v1/conversations/{}/messages", before.id))
            .await;
        let msgs = msgs["data"].as_array().unwrap();
        assert_eq!(msgs.len(), 2);
        assert_eq!(msgs[1]["content"]["system"]["kind"], "user_changed_number");
        assert_eq!(msgs[1]["content"]["system"]["new_wa_id"], "12195555358");
        // …but not the person writing: the window and the opt-out are as they were.
        let after = e.conversation_of(PERSON).await;
        assert_eq!(after.id, before.id);
        assert_eq!(after.last_inbound_at, before.last_inbound_at);
        assert_eq!(after.opted_out_at, before.opted_out_at);

        // The same contact now has the new number, and the old one still finds it.
        let moved = e.contact(NEW).await;
        assert_eq!(moved["id"], contact["id"]);
        assert_eq!(moved["phone"], NEW);
        let mut phones: Vec<&str> = moved["phones"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_str().unwrap())
            .collect();
        phones.sort_unstable();
        assert_eq!(phones, [NEW, PERSON]);
        assert_eq!(e.contact(PERSON).await["id"], contact["id"]);
        // Writing from the new number continues the same conversation (and opts back in).
        e.meta_ok(&meta_text(
            "12195555358",
            "wamid.NEW1",
            "it's me",
            &now_ts(),
        ))
        .await;
        let resumed = e.conversation_of(NEW).await;
        assert_eq!(resumed.id, before.id);
        assert!(resumed.opted_out_at.is_none());
        assert_eq!(count(&e.router, conversations::Entity).await, 1);
    })
    .await;
}

#[tokio::test]
async fn a_number_change_to_another_contacts_number_keeps_both_contacts_apart() {
    on_each_backend(|db| async move {
        let e = env(&db).await;
        e.meta_ok(&meta_text("16505550002", "wamid.O1", "I'm the owner", &now_ts())).await;
        e.meta_ok(&meta_text("16505550003", "wamid.P1", "hello", &now_ts())).await;
        let owner = e.contact("+16505550002").await;
        let person = e.contact("+16505550003").await;
        e.meta_ok(&number_change("16505550003", "16505550002", "wamid.CLASH")).await;
        // Kept, in the person's conversation; nobody's number taken.
        let notice = stored(&e.router).await.pop().unwrap();
        assert_eq!(notice.conversation_id, e.conversation_of("+16505550003").await.id);
        assert_eq!(e.contact("+16505550002").await["id"], owner["id"]);
        let after = e.contact("+16505550003").await;
        assert_eq!(after["id"], person["id"]);
        assert_eq!(after["phone"], "+16505550003");
        assert_eq!(after["phones"], json!(["+16505550003"]));

        // A notice about someone who never wrote opens no window with the new number.
        e.meta_ok(&number_change("16505550004", "16505550005", "wamid.QUIET")).await;
        assert_eq!(e.contact("+16505550005").await["id"], e.contact("+16505550004").await["id"]);
        assert!(e.conversation_of("+16505550005").await.last_inbound_at.is_none());
        e.call(Method::POST, "/v1/messages", Some(json!({"to": "+16505550005", "text": "hi", "channel": "meta-whatsapp"})))
            .await
            .expect(422, Some("outside_service_window"));

        // A BSUID change (§16) adds the new BSUID; the old one still finds the contact.
        const NEW_BSUID: &str = "US.99991208655302741918";
        e.meta_ok(&meta_messages(
            json!([{"profile": {"name": "Pablo"}, "wa_id": "", "user_id": BSUID}]),
            json!([{"from": BSUID, "id": "wamid.BS1", "timestamp": now_ts(), "type": "text", "text": {"body": "hi"}}]),
        ))
        .await;
        let by_old = e.contact(BSUID).await;
        e.meta_ok(&meta_messages(
            json!([]),
            json!([{"from": BSUID, "id": "wamid.BS2", "timestamp": now_ts(), "type": "system",
                    "system": {"body": format!("User Pablo changed from {BSUID} to {NEW_BSUID}"),
                               "wa_id": "", "user_id": NEW_BSUID, "type": "user_changed_user_id"}}]),
        ))
        .await;
        let by_new = e.contact(NEW_BSUID).await;
        assert_eq!(by_new["id"], by_old["id"]);
        assert_eq!(by_new["bsuid"], NEW_BSUID);
        assert_eq!(e.contact(BSUID).await["id"], by_old["id"]);
    })
    .await;
}

/// A Meta status for `wamid` with an optional `pricing` object.
fn meta_status(wamid: &str, status: &str, pricing: Option<Value>) -> String {
    let mut item =
        json!({"id": wamid, "status": status, "timestamp": now_ts(), "recipient_id": PERSON_WA});
    if let Some(p) = pricing {
        item["pricing"] = p;
    }
    meta::envelope(&[(PNID, META_DISPLAY, "messages", json!({"statuses": [item]}))])
}

#[tokio::test]
async fn status_pricing_is_stored_on_the_message_from_whichever_status_carries_it() {
    on_each_backend(|db| async move {
        let e = env(&db).await;
        e.meta_ok(&meta_text(PERSON_WA, "wamid.IN", "hi", &now_ts()))
            .await;
        let sent = e
            .call(
                Method::POST,
                "/v1/messages",
                Some(json!({"to": PERSON, "text": "hello", "channel": "meta-whatsapp"})),
            )
            .await
            .expect(202, None);
        let id = sent.body["id"].as_str().unwrap().to_owned();
        e.router.delivery().deliver_due().await.unwrap();
        let view = e.get(&format!("/v1/messages/{id}")).await;
        let wamid = view["provider_message_id"].as_str().unwrap().to_owned();
        assert_eq!(view["pricing"], Value::Null, "nothing reported yet");

        // §3.9 (c): pricing on `sent`.
        e.meta_ok(&meta_status(
            &wamid,
            "sent",
            Some(json!({"billable": true, "pricing_model": "PMP",
            "type": "regular", "category": "marketing"})),
        ))
        .await;
        let marketing =
            json!({"billable": true, "category": "marketing", "model": "PMP", "type": "regular"});
        assert_eq!(
            e.get(&format!("/v1/messages/{id}")).await["pricing"],
            marketing
        );
        // A later report without pricing keeps it.
        e.meta_ok(&meta_status(&wamid, "read", None)).await;
        let view = e.get(&format!("/v1/messages/{id}")).await;
        assert_eq!(
            (view["status"].as_str(), &view["pricing"]),
            (Some("read"), &marketing)
        );
        // A late report with pricing replaces it, without moving the status back.
        e.meta_ok(&meta_status(
            &wamid,
            "delivered",
            Some(json!({"billable": false, "pricing_model": "PMP",
            "type": "free_customer_service", "category": "service"})),
        ))
        .await;
        let view = e.get(&format!("/v1/messages/{id}")).await;
        assert_eq!(view["status"], "read");
        assert_eq!(
            view["pricing"],
            json!({"billable": false, "category": "service", "model": "PMP",
            "type": "free_customer_service"})
        );
        let listed = e
            .get(&format!(
                "/v1/conversations/{}/messages",
                view["conversation_id"].as_str().unwrap()
            ))
            .await;
        assert_eq!(listed["data"][1]["pricing"]["category"], "service");
        assert_eq!(
            listed["data"][0]["pricing"],
            Value::Null,
            "the inbound message has none"
        );
    })
    .await;
}

#[tokio::test]
async fn pricing_on_a_status_that_came_before_its_message_is_kept() {
    on_each_backend(|db| async move {
        let api = api::start(&db).await;
        api.inbound("in-1", api::ALICE, "hi").await;
        let sent = api
            .post(
                "/v1/messages",
                &api.admin,
                api::text_message(api::ALICE, "one"),
            )
            .await
            .expect(202, None);
        let status = |key: &str, status, pricing| InboundEvent {
            routing_key: BUSINESS.into(),
            event_key: key.into(),
            kind: EventKind::Status(StatusUpdate {
                provider_message_id: "fake-1".into(),
                message_ref: None,
                status,
                timestamp: chrono::Utc::now(),
                error: None,
                recipient: None,
                pricing,
            }),
            raw: json!({"status": status.as_str()}),
        };
        // The provider reports "delivered" with its pricing before the send's answer.
        let utility = Pricing {
            billable: Some(false),
            category: Some("utility".into()),
            model: Some("PMP".into()),
            kind: Some("free_customer_service".into()),
            ..Pricing::default()
        };
        api.webhook(&[status("early", MessageStatus::Delivered, Some(utility))])
            .await;
        assert_eq!(api.deliver_all().await, 1);
        let view = api
            .get(
                &format!("/v1/messages/{}", sent.body["id"].as_str().unwrap()),
                &api.admin,
            )
            .await
            .expect(200, None)
            .body;
        assert_eq!(view["status"], "delivered");
        assert_eq!(
            view["pricing"],
            json!({"billable": false, "category": "utility", "model": "PMP",
            "type": "free_customer_service"})
        );
    })
    .await;
}

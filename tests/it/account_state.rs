//! Account state (issue 18), through the real HTTP server with the real Meta and Twilio
//! adapters on their fakes: Meta's account-level notifications (phone number quality and
//! limit, bans, restrictions) update the account at once, show in `GET /v1/accounts`, turn
//! `/health/channels` `degraded` with the reason, and tell the product; another tenant sees
//! none of it. On SQLite and PostgreSQL.

use reqwest::Method;
use sea_orm::ConnectionTrait;
use serde_json::{Value, json};
use switchboard_router::events::RouterEvent;
use switchboard_router::tenancy::account_state::Quality;

use crate::support::api::Reply;
use crate::support::http_site::{HttpSite, serve_acme};
use crate::support::providers::{
    APP_SECRET, META_DISPLAY, PNID, builder, connect_both, fakes, post_meta_webhook,
};
use crate::support::{TestDb, on_each_backend};

/// Meta's example business account (`entry[].id`).
const WABA: &str = "102290129340398";

struct Env {
    site: HttpSite,
    _twilio: switchboard_twilio::testing::FakeTwilio,
    graph: switchboard_meta_cloud::testing::FakeGraph,
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
        _twilio: twilio,
        graph,
    }
}

/// One account-level change (§14.2's envelope) from acme's business account.
fn change(field: &str, value: &Value, time: i64) -> String {
    json!({"object": "whatsapp_business_account", "entry": [{"id": WABA, "time": time,
        "changes": [{"field": field, "value": value}]}]})
    .to_string()
}

/// A phone number node that is available and not rated (§7.1's `NA`).
fn not_rated() -> Value {
    json!({"health_status": {"can_send_message": "AVAILABLE"}, "quality_rating": "NA",
           "status": "CONNECTED"})
}

/// `/health/channels`' row for the account on `channel`.
fn health_row(health: &Reply, channel: &str) -> Value {
    health.body["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["channel"] == channel)
        .unwrap_or_else(|| panic!("{}", health.text))
        .clone()
}

impl Env {
    async fn meta_ok(&self, body: &str) {
        let r = post_meta_webhook(self, body, Some(APP_SECRET)).await;
        assert_eq!((r.status, r.text.as_str()), (200, "OK"), "{body}");
    }

    async fn get(&self, path: &str, key: &str) -> Reply {
        self.call_as(Method::GET, path, Some(key), None).await
    }

    /// acme's account on `channel`, as `GET /v1/accounts` shows it.
    async fn account(&self, channel: &str) -> Value {
        let list = self
            .get("/v1/accounts", &self.admin)
            .await
            .expect(200, None);
        list.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["channel"] == channel)
            .unwrap_or_else(|| panic!("{}", list.text))
            .clone()
    }

    async fn channel_health(&self) -> Reply {
        self.call_as(Method::GET, "/health/channels", None, None)
            .await
    }
}

#[tokio::test]
async fn quality_and_limit_updates_show_on_the_account_and_a_flag_degrades_its_health() {
    on_each_backend(|db| async move {
        let e = env(&db).await;
        // Meta's node reads as not rated, so the check leaves the webhooks' word standing.
        e.graph.set_health(not_rated());
        let mut events = e.router.subscribe();
        // The product subscribes to notifications (nobody delivers them in this test).
        e.router
            .notifications()
            .set_notify_url(&e.tenant, Some("https://product.example/hooks"))
            .await
            .unwrap();
        // Nothing reported yet: quality unknown, no limit, no restrictions.
        let before = e.account("meta-whatsapp").await;
        assert_eq!(before["quality"], "unknown");
        assert!(before["messaging_limit"].is_null() && before.get("messaging_limit").is_some());
        assert_eq!(before["restrictions"], json!([]));
        assert!(before["updated_at"].is_null());

        // Meta's throughput upgrade example: a new tier, quality still unknown; healthy.
        e.meta_ok(&change(
            "phone_number_quality_update",
            &json!({"display_phone_number": META_DISPLAY, "event": "THROUGHPUT_UPGRADE",
                    "current_limit": "TIER_UNLIMITED"}),
            1_748_454_394,
        ))
        .await;
        let after = e.account("meta-whatsapp").await;
        assert_eq!(after["messaging_limit"], "TIER_UNLIMITED");
        assert!(after["updated_at"].is_string(), "{after}");
        let ev = events.recv().await.unwrap();
        match ev {
            RouterEvent::AccountStateChanged {
                account_id,
                messaging_limit,
                quality,
                ..
            } => {
                assert_eq!(account_id, after["id"].as_str().unwrap());
                assert_eq!(messaging_limit.as_deref(), Some("TIER_UNLIMITED"));
                assert_eq!(quality, Quality::Unknown);
            }
            other => panic!("{other:?}"),
        }

        // The number flagged for low quality: red, and its health says why.
        e.meta_ok(&change(
            "phone_number_quality_update",
            &json!({"display_phone_number": META_DISPLAY, "event": "FLAGGED",
                    "current_limit": "TIER_UNLIMITED"}),
            1_748_454_400,
        ))
        .await;
        assert_eq!(e.account("meta-whatsapp").await["quality"], "red");
        // The Twilio account is untouched.
        assert_eq!(e.account("twilio-whatsapp").await["quality"], "unknown");
        let health = e.channel_health().await.expect(503, None);
        assert_eq!(health.body["status"], "degraded", "{}", health.text);
        let meta_row = health.body["accounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["channel"] == "meta-whatsapp")
            .unwrap();
        assert_eq!(meta_row["status"], "degraded");
        assert!(
            meta_row["detail"]
                .as_str()
                .unwrap()
                .ends_with("; quality rating is red"),
            "{meta_row}"
        );
        let twilio_row = health.body["accounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["channel"] == "twilio-whatsapp")
            .unwrap();
        assert_eq!(twilio_row["status"], "up");

        // A redelivery of the same notification changes nothing and tells nobody again.
        e.meta_ok(&change(
            "phone_number_quality_update",
            &json!({"display_phone_number": META_DISPLAY, "event": "FLAGGED",
                    "current_limit": "TIER_UNLIMITED"}),
            1_748_454_400,
        ))
        .await;
        let flagged = events.recv().await.unwrap();
        assert!(matches!(
            flagged,
            RouterEvent::AccountStateChanged {
                quality: Quality::Red,
                ..
            }
        ));
        assert!(events.try_recv().is_err(), "no event for a redelivery");

        // Both changes are queued for the product, in order, as `account_state_changed`.
        let queued: Vec<Value> = e
            .router
            .store()
            .conn()
            .query_all_raw(sea_orm::Statement::from_string(
                e.router.store().backend(),
                "SELECT payload FROM notifications ORDER BY id",
            ))
            .await
            .unwrap()
            .iter()
            .map(|r| serde_json::from_str(&r.try_get::<String>("", "payload").unwrap()).unwrap())
            .collect();
        assert_eq!(queued.len(), 2, "{queued:?}");
        let meta_id = e.account("meta-whatsapp").await["id"].clone();
        for (q, quality) in queued.iter().zip(["unknown", "red"]) {
            assert_eq!(q["type"], "account_state_changed", "{q}");
            assert_eq!(q["account_id"], meta_id);
            assert_eq!(q["quality"], quality);
            assert_eq!(q["messaging_limit"], "TIER_UNLIMITED");
            assert_eq!(q["restrictions"], json!([]));
        }
    })
    .await;
}

#[tokio::test]
async fn a_ban_and_restrictions_show_on_the_account_until_lifted_and_another_tenant_sees_none() {
    on_each_backend(|db| async move {
        let e = env(&db).await;
        e.graph.set_health(not_rated());
        // Globex: another tenant with its own (fake) account.
        let globex = e.router.tenants().create("globex").await.unwrap();
        e.router
            .accounts()
            .connect(
                &globex.tenant_id,
                "twilio-whatsapp",
                "+14155550199",
                &json!({"account_sid": switchboard_twilio::testing::TEST_ACCOUNT_SID,
                        "auth_token": switchboard_twilio::testing::TEST_AUTH_TOKEN}),
                None,
            )
            .await
            .unwrap();

        e.meta_ok(&change(
            "account_update",
            &json!({"event": "DISABLED_UPDATE",
                    "ban_info": {"waba_ban_state": "DISABLE", "waba_ban_date": "April 17, 2025"}}),
            1_751_247_548,
        ))
        .await;
        e.meta_ok(&change(
            "account_update",
            &json!({"event": "ACCOUNT_RESTRICTION", "restriction_info": [
                {"restriction_type": "RESTRICTED_BIZ_INITIATED_MESSAGING", "expiration": 1_751_900_000}]}),
            1_751_247_549,
        ))
        .await;
        let acct = e.account("meta-whatsapp").await;
        assert_eq!(
            acct["restrictions"],
            json!([{"type": "DISABLED", "until": "April 17, 2025", "source": "ban"},
                   {"type": "RESTRICTED_BIZ_INITIATED_MESSAGING", "until": "1751900000",
                    "source": "restriction"}]),
            "{acct}"
        );
        let health = e.channel_health().await.expect(503, None);
        let meta_row = health.body["accounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["channel"] == "meta-whatsapp")
            .unwrap()
            .clone();
        assert_eq!(meta_row["status"], "degraded");
        assert!(
            meta_row["detail"].as_str().unwrap().ends_with(
                "; restricted: DISABLED (April 17, 2025); \
                 restricted: RESTRICTED_BIZ_INITIATED_MESSAGING (1751900000)"
            ),
            "{meta_row}"
        );

        // Another tenant's listing shows its own account only, with nothing reported.
        let theirs = e.get("/v1/accounts", &globex.key).await.expect(200, None);
        let data = theirs.body["data"].as_array().unwrap();
        assert_eq!(data.len(), 1, "{}", theirs.text);
        assert_eq!(data[0]["restrictions"], json!([]));
        assert_eq!(data[0]["quality"], "unknown");

        // Reinstated, and the restriction list emptied: nothing left.
        e.meta_ok(&change(
            "account_update",
            &json!({"event": "DISABLED_UPDATE",
                    "ban_info": {"waba_ban_state": "REINSTATE", "waba_ban_date": "April 18, 2025"}}),
            1_751_247_560,
        ))
        .await;
        e.meta_ok(&change(
            "account_update",
            &json!({"event": "ACCOUNT_RESTRICTION", "restriction_info": []}),
            1_751_247_561,
        ))
        .await;
        assert_eq!(e.account("meta-whatsapp").await["restrictions"], json!([]));

        // An active critical alert on the number (its phone number id names it, §14.1).
        let alert = |status: &str| {
            json!({"entity_type": "PHONE_NUMBER", "entity_id": PNID,
                   "alert_info": {"alert_severity": "CRITICAL", "alert_status": status,
                                  "alert_type": "MESSAGING_BLOCKED",
                                  "alert_description": "Messaging is blocked."}})
        };
        e.meta_ok(&change("account_alerts", &alert("ACTIVE"), 1_751_247_600))
            .await;
        assert_eq!(
            e.account("meta-whatsapp").await["restrictions"],
            json!([{"type": "MESSAGING_BLOCKED", "source": "alert"}])
        );
        e.meta_ok(&change("account_alerts", &alert("RESOLVED"), 1_751_247_700))
            .await;
        assert_eq!(e.account("meta-whatsapp").await["restrictions"], json!([]));
    })
    .await;
}

#[tokio::test]
async fn the_health_check_keeps_the_numbers_quality_and_limit_and_tells_the_product() {
    on_each_backend(|db| async move {
        let e = env(&db).await;
        let mut events = e.router.subscribe();
        e.graph.set_health(json!({
            "health_status": {"can_send_message": "AVAILABLE"},
            "quality_rating": "YELLOW", "messaging_limit_tier": "TIER_10K", "status": "CONNECTED"}));
        let health = e.channel_health().await.expect(503, None);
        let row = health_row(&health, "meta-whatsapp");
        assert_eq!(row["status"], "degraded");
        assert!(
            row["detail"]
                .as_str()
                .unwrap()
                .ends_with("; quality rating is yellow"),
            "{row}"
        );
        let acct = e.account("meta-whatsapp").await;
        assert_eq!(acct["quality"], "yellow");
        assert_eq!(acct["messaging_limit"], "TIER_10K");
        assert!(acct["updated_at"].is_string());
        match events.recv().await.unwrap() {
            RouterEvent::AccountStateChanged {
                quality,
                messaging_limit,
                ..
            } => {
                assert_eq!(quality, Quality::Yellow);
                assert_eq!(messaging_limit.as_deref(), Some("TIER_10K"));
            }
            other => panic!("{other:?}"),
        }
        // The Twilio account reports neither: nothing stored for it.
        assert_eq!(e.account("twilio-whatsapp").await["quality"], "unknown");

        // A check through `verify` that reads the same tells nobody again; one that reads
        // green clears the risk.
        let meta_id = acct["id"].as_str().unwrap().to_owned();
        e.router.accounts().verify(&e.tenant, &meta_id).await.unwrap();
        assert!(events.try_recv().is_err());
        e.graph.set_health(json!({
            "health_status": {"can_send_message": "AVAILABLE"},
            "quality_rating": "GREEN", "messaging_limit_tier": "TIER_10K"}));
        e.router.accounts().verify(&e.tenant, &meta_id).await.unwrap();
        assert_eq!(e.account("meta-whatsapp").await["quality"], "green");
        assert!(matches!(
            events.try_recv(),
            Ok(RouterEvent::AccountStateChanged {
                quality: Quality::Green,
                ..
            })
        ));
    })
    .await;
}

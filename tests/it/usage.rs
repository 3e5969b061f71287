//! Costs (issue 18), through the real HTTP server with the real Twilio and Meta adapters on
//! their fakes: Twilio's price fetched by the reconciliation loop once a message is final
//! and asked for again while Twilio still says `null` (twilio.md §10); Meta's pricing
//! category from statuses; `GET /v1/usage` summing counts and exact costs per channel,
//! account, category and day, in two currencies, for the caller's tenant only. On SQLite
//! and PostgreSQL.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use switchboard_meta_cloud::testing as meta;
use switchboard_router::DeliveryConfig;
use switchboard_twilio::testing::{self as twilio, FakeTwilio, TEST_ACCOUNT_SID};

use crate::support::api::Reply;
use crate::support::http_site::{HttpSite, serve_acme};
use crate::support::providers::{
    APP_SECRET, META_DISPLAY, PERSON, PERSON_WA, PNID, TWILIO_NUMBER, builder, connect_both, fakes,
    meta_inbound, now_ts, send_text, twilio_webhook,
};
use crate::support::{TestDb, on_each_backend};

struct Env {
    site: HttpSite,
    twilio: FakeTwilio,
    _graph: switchboard_meta_cloud::testing::FakeGraph,
}

impl std::ops::Deref for Env {
    type Target = HttpSite;
    fn deref(&self) -> &HttpSite {
        &self.site
    }
}

async fn env(db: &TestDb) -> Env {
    let (twilio, graph) = fakes().await;
    // Prices are asked for as soon as a message is final, and again at every pass.
    let router = builder(db, &twilio, &graph)
        .await
        .delivery(DeliveryConfig {
            reconcile_after: Duration::ZERO,
            ..DeliveryConfig::default()
        })
        .build();
    let site = serve_acme(router).await;
    connect_both(&site.router, &site.tenant, APP_SECRET).await;
    Env {
        site,
        twilio,
        _graph: graph,
    }
}

impl Env {
    async fn get(&self, path: &str, key: &str) -> Reply {
        self.call_as(Method::GET, path, Some(key), None).await
    }

    async fn usage(&self, query: &str) -> Value {
        self.get(&format!("/v1/usage{query}"), &self.admin)
            .await
            .expect(200, None)
            .body["data"]
            .clone()
    }

    /// Sends `text` to the person on `channel` and hands it to the provider; returns the
    /// message id and the provider's id.
    async fn send(&self, channel: &str, text: &str) -> (String, String) {
        let id = self
            .router
            .send(&self.tenant, send_text(PERSON, channel, text))
            .await
            .unwrap()
            .id;
        while self.router.delivery().deliver_due().await.unwrap() > 0 {}
        let view = self
            .get(&format!("/v1/messages/{id}"), &self.admin)
            .await
            .expect(200, None)
            .body;
        let provider_id = view["provider_message_id"].as_str().unwrap().to_owned();
        (id, provider_id)
    }

    /// How often Twilio was asked for the message `sid`.
    fn fetches_of(&self, sid: &str) -> usize {
        self.twilio
            .requests()
            .iter()
            .filter(|r| r.method == "GET" && r.path.ends_with(&format!("/Messages/{sid}.json")))
            .count()
    }

    async fn pricing(&self, id: &str) -> Value {
        self.get(&format!("/v1/messages/{id}"), &self.admin)
            .await
            .expect(200, None)
            .body["pricing"]
            .clone()
    }
}

/// A Meta status for `wamid` carrying `pricing`.
fn meta_status(wamid: &str, status: &str, pricing: &Value) -> String {
    let item = json!({"id": wamid, "status": status, "timestamp": now_ts(),
                      "recipient_id": PERSON_WA, "pricing": pricing});
    meta::envelope(&[(PNID, META_DISPLAY, "messages", json!({"statuses": [item]}))])
}

/// The Twilio and Meta conversation of the usage tests: on Twilio one message in and three
/// out, priced -0.00750 USD, -0.2175 usd and -0.0100 EUR once Twilio fills them in; on
/// Meta one in and one marketing template out (no amounts: Meta sends none).
async fn converse(e: &Env) -> Vec<String> {
    let form = twilio::inbound_text_form(TEST_ACCOUNT_SID, PERSON, TWILIO_NUMBER, "hi", "SM0900");
    e.router
        .receive_webhook("twilio-whatsapp", twilio_webhook(&form))
        .await
        .unwrap();
    let mut sent = Vec::new();
    for text in ["one", "two", "three"] {
        sent.push(e.send("twilio-whatsapp", text).await);
    }
    e.router
        .receive_webhook(
            "meta-whatsapp",
            meta::webhook_request(
                &meta_inbound(PERSON_WA, "wamid.IN1", "hola"),
                Some(APP_SECRET),
            ),
        )
        .await
        .unwrap();
    let (_, wamid) = e.send("meta-whatsapp", "promo").await;
    e.router
        .receive_webhook(
            "meta-whatsapp",
            meta::webhook_request(
                &meta_status(
                    &wamid,
                    "delivered",
                    &json!({"billable": true, "pricing_model": "PMP", "type": "regular",
                            "category": "marketing"}),
                ),
                Some(APP_SECRET),
            ),
        )
        .await
        .unwrap();

    // Twilio delivers them; the reconciliation loop learns it.
    for (_, sid) in &sent {
        assert!(e.twilio.set_message_status(sid, "delivered"));
    }
    e.router.reconciler().reconcile().await.unwrap();

    // Final, but Twilio has not priced them yet: asked, nothing stored; asked again later.
    assert_eq!(e.router.reconciler().collect_prices().await.unwrap(), 0);
    assert_eq!(e.router.reconciler().collect_prices().await.unwrap(), 0);
    for (id, sid) in &sent {
        assert_eq!(e.fetches_of(sid), 3, "one status fetch and two price asks");
        assert_eq!(e.pricing(id).await, Value::Null);
    }
    for ((_, sid), (price, unit)) in
        sent.iter()
            .zip([("-0.00750", "USD"), ("-0.2175", "usd"), ("-0.0100", "EUR")])
    {
        assert!(e.twilio.set_message_price(sid, Some(price), unit));
    }
    assert_eq!(e.router.reconciler().collect_prices().await.unwrap(), 3);
    assert_eq!(
        e.pricing(&sent[0].0).await,
        json!({"price": "-0.00750", "currency": "USD"})
    );
    assert_eq!(
        e.pricing(&sent[1].0).await,
        json!({"price": "-0.2175", "currency": "USD"})
    );
    // Priced: never asked again.
    assert_eq!(e.router.reconciler().collect_prices().await.unwrap(), 0);
    assert_eq!(e.fetches_of(&sent[0].1), 4);
    sent.into_iter().map(|(id, _)| id).collect()
}

#[tokio::test]
async fn twilio_prices_are_fetched_once_final_and_usage_sums_them_exactly_per_group() {
    on_each_backend(|db| async move {
        let e = env(&db).await;
        converse(&e).await;
        let usd_eur = json!([{"currency": "EUR", "amount": "0.0100"},
                             {"currency": "USD", "amount": "0.2250"}]);

        // Per channel (the default).
        let by_channel = e.usage("").await;
        assert_eq!(
            by_channel,
            json!([
                {"key": "meta-whatsapp", "inbound": 1, "outbound": 1, "cost": []},
                {"key": "twilio-whatsapp", "inbound": 1, "outbound": 3, "cost": usd_eur},
            ])
        );
        assert_eq!(e.usage("?group_by=channel").await, by_channel);

        // Per account: the same sums under the account ids.
        let accounts = e.get("/v1/accounts", &e.admin).await.expect(200, None).body;
        let id_of = |channel: &str| {
            accounts["data"]
                .as_array()
                .unwrap()
                .iter()
                .find(|a| a["channel"] == channel)
                .unwrap()["id"]
                .clone()
        };
        let mut by_account = e.usage("?group_by=account").await;
        by_account
            .as_array_mut()
            .unwrap()
            .sort_by_key(|r| r["outbound"].as_i64());
        assert_eq!(
            by_account,
            json!([
                {"key": id_of("meta-whatsapp"), "inbound": 1, "outbound": 1, "cost": []},
                {"key": id_of("twilio-whatsapp"), "inbound": 1, "outbound": 3, "cost": usd_eur},
            ])
        );

        // Per category: Meta's marketing message; everything without one under null.
        assert_eq!(
            e.usage("?group_by=category").await,
            json!([
                {"key": null, "inbound": 2, "outbound": 3, "cost": usd_eur},
                {"key": "marketing", "inbound": 0, "outbound": 1, "cost": []},
            ])
        );

        // Per day (UTC), in a range given as dates and as RFC 3339 times.
        let today = chrono::Utc::now().date_naive();
        let day = json!([{"key": today.format("%Y-%m-%d").to_string(), "inbound": 2,
                          "outbound": 4, "cost": usd_eur}]);
        assert_eq!(
            e.usage(&format!("?group_by=day&from={today}&to={today}"))
                .await,
            day
        );
        let from = (chrono::Utc::now() - chrono::Duration::hours(1)).to_rfc3339();
        let to = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
        assert_eq!(
            e.usage(&format!(
                "?group_by=day&from={}&to={}",
                crate::support::api::encode(&from),
                crate::support::api::encode(&to)
            ))
            .await,
            day
        );
        // A range before any of it: nothing.
        let tomorrow = today.succ_opt().unwrap();
        assert_eq!(
            e.usage(&format!("?from={tomorrow}&to={tomorrow}")).await,
            json!([])
        );
        assert_eq!(e.usage("?to=2020-01-01").await, json!([]));

        // Bad input is 400 with its code, never a 5xx.
        for (query, code) in [
            ("?from=yesterday", "invalid_range"),
            ("?to=2026-02-30", "invalid_range"),
            (
                &format!("?from={tomorrow}&to={today}") as &str,
                "invalid_range",
            ),
            // `to` defaults to now.
            (&format!("?from={tomorrow}"), "invalid_range"),
            ("?group_by=week", "invalid_group_by"),
            ("?group_by=", "invalid_group_by"),
            ("?limit=5", "invalid_query"),
        ] {
            e.get(&format!("/v1/usage{query}"), &e.admin)
                .await
                .expect(400, Some(code));
        }
        e.get("/v1/usage", "sbk_nope").await.expect(401, None);

        // Another tenant sees none of it; an agent key of this one sees it all.
        let globex = e.router.tenants().create("globex").await.unwrap();
        let theirs = e.get("/v1/usage?group_by=day", &globex.key).await;
        assert_eq!(theirs.expect(200, None).body["data"], json!([]));
        let agent = e
            .router
            .tenants()
            .create_api_key(
                &e.tenant,
                switchboard_router::tenancy::tenants::Role::Agent,
                None,
            )
            .await
            .unwrap();
        let seen = e.get("/v1/usage", &agent.key).await.expect(200, None);
        assert_eq!(seen.body["data"], by_channel);
    })
    .await;
}

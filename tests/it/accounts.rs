//! Accounts through `/v1/accounts`: connected without echoing credentials, duplicates and
//! bad numbers refused, verified, disconnected softly. On SQLite and PostgreSQL.

use reqwest::Method;
use serde_json::json;

use crate::support::api::{connect_body, start};
use crate::support::fake::SECRET;
use crate::support::on_each_backend;

#[tokio::test]
async fn accounts_connect_without_echoing_credentials_refuse_duplicates_and_bad_numbers_and_disconnect_softly()
 {
    on_each_backend(|db| async move {
        let api = start(&db).await;
        let key = api.admin.clone();
        let created = api
            .post(
                "/v1/accounts",
                &key,
                json!({"channel": "fake", "address": "+1 (415) 555-0100",
                "credentials": {"secret": "s3cr3t-value-never-echoed"}, "rate_per_second": 20}),
            )
            .await
            .expect(201, None);
        assert!(
            !created.text.contains("s3cr3t-value-never-echoed"),
            "{}",
            created.text
        );
        assert_eq!(created.body["address"], "+14155550100");
        assert_eq!(created.body["channel"], "fake");
        assert_eq!(created.body["active"], true);
        assert_eq!(created.body["rate_per_second"], 20);
        assert_eq!(created.body["credential_names"], json!(["secret"]));
        let id = created.body["id"].as_str().unwrap().to_owned();

        api.post("/v1/accounts", &key, connect_body("+14155550100"))
            .await
            .expect(409, Some("account_exists"));
        api.post("/v1/accounts", &key, connect_body("not a number"))
            .await
            .expect(400, Some("invalid_address"));
        api.post(
            "/v1/accounts",
            &key,
            json!({"channel": "carrier-pigeon", "address": "+14155550101", "credentials": {}}),
        )
        .await
        .expect(400, Some("unknown_channel"));
        api.post(
            "/v1/accounts",
            &key,
            json!({"channel": "fake", "address": "+14155550101", "credentials": {"token": "x"}}),
        )
        .await
        .expect(400, Some("invalid_credentials"));
        api.post(
            "/v1/accounts",
            &key,
            json!({"channel": "fake", "address": "+14155550101", "credentials": "x"}),
        )
        .await
        .expect(400, Some("invalid_credentials"));

        let list = api.get("/v1/accounts", &key).await.expect(200, None);
        assert_eq!(list.body["data"].as_array().unwrap().len(), 2);
        assert!(list.body["next_cursor"].is_null() && list.body.get("next_cursor").is_some());
        assert!(!list.text.contains("s3cr3t-value-never-echoed") && !list.text.contains(SECRET));

        let verified = api
            .post(&format!("/v1/accounts/{id}/verify"), &key, json!({}))
            .await
            .expect(200, None);
        assert_eq!(verified.body["status"], "up");
        assert_eq!(verified.body["account_id"], id.as_str());
        assert!(verified.body["latency_ms"].is_u64() && verified.body["checked_at"].is_string());

        let gone = api
            .call(
                Method::DELETE,
                &format!("/v1/accounts/{id}"),
                Some(&key),
                None,
            )
            .await
            .expect(200, None);
        assert_eq!(gone.body["active"], false);
        assert!(gone.body["disconnected_at"].is_string());
        let list = api.get("/v1/accounts", &key).await.expect(200, None);
        let row = list.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["id"] == id.as_str())
            .unwrap()
            .clone();
        assert_eq!(row["active"], false, "soft: still listed, inactive");
        api.call(Method::DELETE, "/v1/accounts/acc_unknown", Some(&key), None)
            .await
            .expect(404, Some("not_found"));
    })
    .await;
}

/// The channel's declared credential names are checked by the engine, so product code
/// connecting accounts through the library gets the same refusal as the API.
#[tokio::test]
async fn the_library_refuses_credentials_the_channel_does_not_declare() {
    on_each_backend(|db| async move {
        let (router, _fake) = crate::support::fake_router(&db).await;
        let tenant = router.tenants().create("acme").await.unwrap().tenant_id;
        let accounts = router.accounts();
        let unknown = accounts
            .connect(
                &tenant,
                "fake",
                "+14155550100",
                &json!({"secret": SECRET, "secert": "typo"}),
                None,
            )
            .await
            .unwrap_err();
        assert_eq!(
            (unknown.code(), unknown.http_status()),
            ("invalid_credentials", 400),
            "{unknown}"
        );
        assert!(unknown.to_string().contains("secert"), "{unknown}");
        let missing = accounts
            .connect(&tenant, "fake", "+14155550100", &json!({}), None)
            .await
            .unwrap_err();
        assert_eq!(missing.code(), "invalid_credentials", "{missing}");
        let not_an_object = accounts
            .connect(&tenant, "fake", "+14155550100", &json!(["secret"]), None)
            .await
            .unwrap_err();
        assert_eq!(not_an_object.code(), "invalid_credentials");
        assert!(accounts.list(&tenant).await.unwrap().is_empty());
    })
    .await;
}

//! Notification settings through the API: set by admins only, the signing secret answered
//! once. On SQLite and PostgreSQL.

use reqwest::Method;
use serde_json::json;

use crate::support::api::start;
use crate::support::on_each_backend;

#[tokio::test]
async fn notifications_are_set_by_admins_and_answer_the_signing_secret_once() {
    on_each_backend(|db| async move {
        let api = start(&db).await;
        let agent = api
            .post("/v1/keys", &api.admin, json!({"role": "agent"}))
            .await
            .expect(201, None)
            .body["key"]
            .as_str()
            .unwrap()
            .to_owned();
        let body = json!({"url": "https://product.example/hooks/switchboard"});
        api.call(
            Method::PUT,
            "/v1/notifications",
            Some(&agent),
            Some(body.clone()),
        )
        .await
        .expect(403, Some("forbidden"));
        api.call(
            Method::PUT,
            "/v1/notifications",
            Some(&api.admin),
            Some(json!({"url": "ftp://x"})),
        )
        .await
        .expect(400, Some("invalid_notify_url"));
        let set = api
            .call(
                Method::PUT,
                "/v1/notifications",
                Some(&api.admin),
                Some(body),
            )
            .await
            .expect(200, None)
            .body;
        assert_eq!(set["url"], "https://product.example/hooks/switchboard");
        let secret = set["secret"].as_str().unwrap();
        assert!(
            secret.starts_with("whsec_") && secret.len() > 30,
            "{secret}"
        );
        api.call(Method::DELETE, "/v1/notifications", Some(&api.admin), None)
            .await
            .expect(204, None);
    })
    .await;
}

//! Tenants are isolated: another tenant's ids answer 404 and its lists are empty. On SQLite
//! and PostgreSQL.

use reqwest::Method;
use serde_json::json;

use crate::support::api::{ALICE, encode, start, text_message};
use crate::support::on_each_backend;

#[tokio::test]
async fn another_tenant_gets_404_for_every_id_and_sees_empty_lists() {
    on_each_backend(|db| async move {
        let api = start(&db).await;
        api.inbound("in-1", ALICE, "hi").await;
        let accepted = api
            .post("/v1/messages", &api.admin, text_message(ALICE, "hello"))
            .await
            .expect(202, None);
        api.router.delivery().deliver_due().await.unwrap();
        let message_id = accepted.body["id"].as_str().unwrap().to_owned();
        let conversation_id = accepted.body["conversation_id"]
            .as_str()
            .unwrap()
            .to_owned();
        let account_id = api.account_id.clone();

        let other = api.router.tenants().create("globex").await.unwrap().key;
        // The first tenant's ids, on every route that takes one: 404, exactly like unknown ids.
        let routes = [
            (Method::GET, format!("/v1/messages/{message_id}")),
            (
                Method::GET,
                format!("/v1/conversations/{conversation_id}/messages"),
            ),
            (Method::POST, format!("/v1/accounts/{account_id}/verify")),
            (Method::DELETE, format!("/v1/accounts/{account_id}")),
            (Method::GET, format!("/v1/contacts?phone={}", encode(ALICE))),
        ];
        for (method, path) in &routes {
            let r = api
                .call(method.clone(), path, Some(&other), None)
                .await
                .expect(404, Some("not_found"));
            assert!(
                !r.text.contains(ALICE) && !r.text.contains("hello"),
                "{path}: {}",
                r.text
            );
        }
        for list in ["/v1/conversations", "/v1/accounts"] {
            let r = api.get(list, &other).await.expect(200, None);
            assert_eq!(r.body["data"], json!([]), "{list}");
        }
        // Nor can it send through the first tenant's account, or reply to its message.
        api.post("/v1/messages", &other, text_message(ALICE, "hijack"))
            .await
            .expect(400, Some("no_sender"));
        api.post(
            "/v1/messages",
            &other,
            json!({"to": ALICE, "text": "re", "reply_to": message_id}),
        )
        .await
        .expect(400, Some("no_sender"));

        // The owner still sees everything, and the DELETE above changed nothing.
        for (method, path) in routes.iter().filter(|(m, _)| *m != Method::DELETE) {
            api.call(method.clone(), path, Some(&api.admin), None)
                .await
                .expect(200, None);
        }
        let accounts = api.get("/v1/accounts", &api.admin).await.expect(200, None);
        assert_eq!(accounts.body["data"][0]["active"], true);
        assert_eq!(api.fake.sent().len(), 1);
    })
    .await;
}

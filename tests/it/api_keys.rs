//! API keys: requests without a valid key are refused, agent keys cannot manage accounts or
//! keys, keys are stored hashed. Over a real loopback socket on SQLite and PostgreSQL.

use reqwest::Method;
use sea_orm::EntityTrait;
use serde_json::json;
use switchboard_router::store::entity::api_keys;

use crate::support::api::{ALICE, connect_body, reply, start, text_message};
use crate::support::on_each_backend;

#[tokio::test]
async fn requests_without_a_valid_key_are_401_and_agent_keys_cannot_manage_accounts_or_keys() {
    on_each_backend(|db| async move {
        let api = start(&db).await;
        for key in [None, Some("sbk_not_a_real_key"), Some("")] {
            let r = api
                .call(Method::GET, "/v1/conversations", key, None)
                .await
                .expect(401, Some("unauthorized"));
            assert!(r.text.contains("unauthorized"));
        }
        // A scheme other than Bearer is no key at all.
        let res = api
            .client
            .get(format!("{}/v1/conversations", api.base))
            .header("authorization", format!("Basic {}", api.admin))
            .send()
            .await
            .unwrap();
        assert_eq!(res.headers()["www-authenticate"], "Bearer");
        reply(res).await.expect(401, Some("unauthorized"));

        let created = api
            .post(
                "/v1/keys",
                &api.admin,
                json!({"role": "agent", "name": "support desk"}),
            )
            .await
            .expect(201, None);
        assert_eq!(created.body["role"], "agent");
        let agent = created.body["key"].as_str().unwrap().to_owned();
        assert!(agent.starts_with("sbk_"));
        // Stored hashed: the key itself is in no row.
        let rows = api_keys::Entity::find()
            .all(api.router.store().conn())
            .await
            .unwrap();
        assert_eq!(rows.len(), 2);
        assert!(
            rows.iter()
                .all(|r| r.key_hash != agent && !r.key_hash.contains(&agent))
        );

        api.post("/v1/accounts", &agent, connect_body("+14155550100"))
            .await
            .expect(403, Some("forbidden"));
        api.get("/v1/accounts", &agent)
            .await
            .expect(403, Some("forbidden"));
        let verify = format!("/v1/accounts/{}/verify", api.account_id);
        api.post(&verify, &agent, json!({}))
            .await
            .expect(403, Some("forbidden"));
        let one = format!("/v1/accounts/{}", api.account_id);
        api.call(Method::DELETE, &one, Some(&agent), None)
            .await
            .expect(403, Some("forbidden"));
        api.post("/v1/keys", &agent, json!({"role": "admin"}))
            .await
            .expect(403, Some("forbidden"));
        // An agent still sends and reads.
        api.get("/v1/conversations", &agent).await.expect(200, None);
        api.inbound("in-1", ALICE, "hi").await;
        api.post("/v1/messages", &agent, text_message(ALICE, "hello"))
            .await
            .expect(202, None);
        // The account is untouched by the refused calls.
        let accounts = api.get("/v1/accounts", &api.admin).await.expect(200, None);
        assert_eq!(accounts.body["data"].as_array().unwrap().len(), 1);
        assert_eq!(accounts.body["data"][0]["active"], true);
        api.post("/v1/keys", &api.admin, json!({"role": "owner"}))
            .await
            .expect(400, Some("invalid_role"));
    })
    .await;
}

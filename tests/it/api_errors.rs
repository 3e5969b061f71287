//! Malformed bodies and unknown routes answer in api.md's error shape. On SQLite and
//! PostgreSQL.

use reqwest::Method;

use crate::support::api::{reply, start};
use crate::support::on_each_backend;

#[tokio::test]
async fn malformed_bodies_and_unknown_routes_answer_in_the_error_shape() {
    on_each_backend(|db| async move {
        let api = start(&db).await;
        let raw = |body: &'static str| {
            api.client
                .post(format!("{}/v1/messages", api.base))
                .bearer_auth(&api.admin)
                .header("content-type", "application/json")
                .body(body)
        };
        for body in [
            "{not json",
            "",
            "[]",
            r#"{"to": "+31612345678", "txt": "typo"}"#,
            r#"{"to": 31612345678}"#,
        ] {
            let r = reply(raw(body).send().await.unwrap())
                .await
                .expect(400, Some("invalid_json"));
            assert_eq!(
                r.body.as_object().unwrap().len(),
                1,
                "only `error`: {}",
                r.text
            );
        }
        // Authentication comes first: a bad key with a bad body is a 401.
        let res = api
            .client
            .post(format!("{}/v1/messages", api.base))
            .body("{")
            .send()
            .await
            .unwrap();
        reply(res).await.expect(401, Some("unauthorized"));
        api.get("/v1/nothing-here", &api.admin)
            .await
            .expect(404, Some("route_not_found"));
        api.call(Method::DELETE, "/v1/messages", Some(&api.admin), None)
            .await
            .expect(405, Some("method_not_allowed"));
        api.call(Method::GET, "/nope", None, None)
            .await
            .expect(404, Some("route_not_found"));
        assert_eq!(api.message_count().await, 0);
    })
    .await;
}

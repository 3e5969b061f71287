//! Conversations and their messages through the API: ordered and paginated without gaps or
//! repeats. On SQLite and PostgreSQL.

use std::time::Duration;

use crate::support::api::{ALICE, BOB, CAROL, start, text_message};
use crate::support::on_each_backend;

#[tokio::test]
async fn conversations_are_listed_newest_activity_first_and_paginate_without_gaps_or_repeats() {
    on_each_backend(|db| async move {
        let api = start(&db).await;
        for (i, who) in [ALICE, BOB, CAROL].into_iter().enumerate() {
            api.inbound(&format!("in-{i}"), who, "hello").await;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        api.inbound("in-again", ALICE, "me again").await; // Alice is the most recent now

        let all = api
            .get("/v1/conversations", &api.admin)
            .await
            .expect(200, None)
            .body;
        let phones: Vec<&str> = all["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["contact"]["phone"].as_str().unwrap())
            .collect();
        assert_eq!(phones, [ALICE, CAROL, BOB]);
        assert!(all["next_cursor"].is_null());
        let alice = &all["data"][0];
        assert_eq!(alice["service_window_open"], true);
        assert_eq!(alice["opted_out"], false);
        assert_eq!(alice["channel"], "fake");
        assert_eq!(alice["account_id"], api.account_id.as_str());
        assert_eq!(alice["contact"]["profile_name"], format!("person {ALICE}"));

        let pages = api.pages("/v1/conversations", 2).await;
        assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [2, 1]);
        let flat: Vec<&String> = pages.iter().flatten().collect();
        let expected: Vec<&str> = all["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_str().unwrap())
            .collect();
        assert_eq!(flat, expected);

        api.get("/v1/conversations?limit=0", &api.admin)
            .await
            .expect(400, Some("invalid_limit"));
        api.get("/v1/conversations?limit=201", &api.admin)
            .await
            .expect(400, Some("invalid_limit"));
        api.get("/v1/conversations?limit=many", &api.admin)
            .await
            .expect(400, Some("invalid_query"));
        api.get("/v1/conversations?cursor=bm9wZQ", &api.admin)
            .await
            .expect(400, Some("invalid_cursor"));
    })
    .await;
}

#[tokio::test]
async fn conversation_messages_are_oldest_first_and_paginate() {
    on_each_backend(|db| async move {
        let api = start(&db).await;
        for i in 0..4 {
            api.inbound(&format!("in-{i}"), ALICE, &format!("m{i}"))
                .await;
        }
        let accepted = api
            .post("/v1/messages", &api.admin, text_message(ALICE, "m4"))
            .await
            .expect(202, None);
        let conversation_id = accepted.body["conversation_id"]
            .as_str()
            .unwrap()
            .to_owned();
        api.inbound("in-other", BOB, "not in this conversation")
            .await;

        let path = format!("/v1/conversations/{conversation_id}/messages");
        let all = api.get(&path, &api.admin).await.expect(200, None).body;
        let texts: Vec<&str> = all["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["content"]["text"].as_str().unwrap())
            .collect();
        assert_eq!(texts, ["m0", "m1", "m2", "m3", "m4"]);
        let directions: Vec<&str> = all["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["direction"].as_str().unwrap())
            .collect();
        assert_eq!(
            directions,
            ["inbound", "inbound", "inbound", "inbound", "outbound"]
        );
        assert_eq!(all["data"][0]["status"], "received");
        assert_eq!(all["data"][0]["provider_message_id"], "in-0");
        assert!(
            all["data"][0].get("status_history").is_none(),
            "history only on GET by id"
        );

        let pages = api.pages(&path, 2).await;
        assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [2, 2, 1]);
        let flat: Vec<&String> = pages.iter().flatten().collect();
        let expected: Vec<&str> = all["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap())
            .collect();
        assert_eq!(flat, expected);

        api.get("/v1/conversations/cnv_unknown/messages", &api.admin)
            .await
            .expect(404, Some("not_found"));
    })
    .await;
}

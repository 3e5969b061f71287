//! Conversations and their messages through the API: ordered and paginated without gaps or
//! repeats. On SQLite and PostgreSQL.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use sea_orm::{ConnectionTrait, Statement};
use switchboard_migrations::{Migrator, MigratorTrait};

use crate::support::api::{ALICE, BOB, CAROL, DAVE, start, text_message};
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

/// The inbox's index is on the minute of each conversation's last message, not on the
/// message's time itself (so that it moves once a minute, not per message). Across minutes
/// and inside one, conversations are still listed by their last message's time, and pages
/// follow that order; a message that moves a conversation into a newer minute moves it up,
/// an older message does not move it back, and every row's minute is its last message's.
#[tokio::test]
async fn conversations_keep_their_order_across_minutes_and_pages() {
    on_each_backend(|db| async move {
        let api = start(&db).await;
        // An hour ago, on a minute's first millisecond.
        let hour_ago = (Utc::now().timestamp_millis() - 3_600_000) / 60_000 * 60_000;
        let at = |minute: i64, second: i64| -> DateTime<Utc> {
            Utc.timestamp_millis_opt(hour_ago + minute * 60_000 + second * 1_000)
                .unwrap()
        };
        api.inbound_at("a", ALICE, "late in minute 0", at(0, 59))
            .await;
        api.inbound_at("b", BOB, "start of minute 1", at(1, 0))
            .await;
        api.inbound_at("c", CAROL, "middle of minute 1", at(1, 30))
            .await;
        api.inbound_at("d", DAVE, "the minute before", at(-1, 10))
            .await;
        assert_eq!(
            listed(&api, "/contact/phone").await,
            [CAROL, BOB, ALICE, DAVE]
        );
        for limit in [1, 2, 3] {
            let pages: Vec<String> = api
                .pages("/v1/conversations", limit)
                .await
                .into_iter()
                .flatten()
                .collect();
            assert_eq!(pages, listed(&api, "/id").await, "pages of {limit}");
        }

        // Dave writes again two minutes later: first. Alice's delayed older message does
        // not move her conversation back.
        api.inbound_at("d2", DAVE, "minute 2", at(2, 0)).await;
        api.inbound_at("a-old", ALICE, "delivered late", at(-5, 0))
            .await;
        assert_eq!(
            listed(&api, "/contact/phone").await,
            [DAVE, CAROL, BOB, ALICE]
        );
        // A send moves its conversation to now, through the outbound path.
        api.post("/v1/messages", &api.admin, text_message(BOB, "reply"))
            .await
            .expect(202, None);
        assert_eq!(
            listed(&api, "/contact/phone").await,
            [BOB, DAVE, CAROL, ALICE]
        );

        let conn = api.router.store().conn();
        let stale = conn
            .query_one_raw(Statement::from_string(
                conn.get_database_backend(),
                "SELECT count(*) AS n FROM conversations \
                 WHERE last_message_minute <> last_message_at / 60000",
            ))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stale.try_get::<i64>("", "n").unwrap(), 0);
    })
    .await;
}

/// The migration that added `last_message_minute` fills it for the conversations a
/// database already holds, and the inbox keeps their order after it; undone, it gives the
/// old index back.
#[tokio::test]
async fn upgrading_fills_each_conversations_minute() {
    on_each_backend(|db| async move {
        let api = start(&db).await;
        for (key, who) in [("a", ALICE), ("b", BOB), ("c", CAROL)] {
            api.inbound(key, who, "hello").await;
        }
        let conn = api.router.store().conn();
        crate::migrations::undo_down_to(conn, "m20261209_000001_conversation_minute").await;
        // Before the migration: Bob's minute-old message is the newest, then Alice, Carol.
        let backend = conn.get_database_backend();
        for (who, at) in [(BOB, 1_700_000_123_456_i64), (ALICE, 1_700_000_060_000), (CAROL, 1_699_999_999_999)] {
            conn.execute_raw(Statement::from_sql_and_values(
                backend,
                match backend {
                    sea_orm::DatabaseBackend::Postgres => "UPDATE conversations SET last_message_at = $1 \
                         WHERE contact_id = (SELECT contact_id FROM contact_identities WHERE value = $2)",
                    _ => "UPDATE conversations SET last_message_at = ?1 \
                         WHERE contact_id = (SELECT contact_id FROM contact_identities WHERE value = ?2)",
                },
                [at.into(), who.into()],
            ))
            .await
            .unwrap();
        }
        Migrator::up(conn, None).await.unwrap();
        let minutes: Vec<(i64, i64)> = conn
            .query_all_raw(Statement::from_string(
                backend,
                "SELECT last_message_at, last_message_minute FROM conversations \
                 ORDER BY last_message_at",
            ))
            .await
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r.try_get::<i64>("", "last_message_at").unwrap(),
                    r.try_get::<i64>("", "last_message_minute").unwrap(),
                )
            })
            .collect();
        assert_eq!(
            minutes,
            [
                (1_699_999_999_999, 28_333_333),
                (1_700_000_060_000, 28_333_334),
                (1_700_000_123_456, 28_333_335)
            ]
        );
        assert_eq!(listed(&api, "/contact/phone").await, [BOB, ALICE, CAROL]);
    })
    .await;
}

/// The first page of the inbox (its default size): each conversation's field at the JSON
/// pointer `field` (`/contact/phone`, `/id`).
async fn listed(api: &crate::support::api::Api, field: &str) -> Vec<String> {
    let all = api
        .get("/v1/conversations", &api.admin)
        .await
        .expect(200, None)
        .body;
    all["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            c.pointer(field)
                .and_then(|v| v.as_str())
                .unwrap()
                .to_owned()
        })
        .collect()
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

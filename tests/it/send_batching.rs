//! Sends' group commit (`outbound/send_commit.rs`): on SQLite, sends queued together are
//! written in one transaction, each in a savepoint. A send refused while writing, a taken
//! idempotency key and a database error each stay the one send's own outcome.
//!
//! To queue sends together, the test holds SQLite's one writer connection in a transaction
//! of its own until every send has reached the writer task's queue, then lets go.

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use sea_orm::{ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter};
use switchboard_router::store::entity::{contacts, messages, outbox};
use switchboard_router::{Router, RouterError, SendAccepted, SendRequest};

use serde_json::json;

use crate::support::api::{ALICE as API_ALICE, start};
use crate::support::fake::{inbound_from, receive, template_to, text_to};
use crate::support::{TestDb, count, fake_setup, on_each_backend};

const ALICE: &str = "+31612345001";
const BOB: &str = "+31612345002";
const STOPPED: &str = "+31612345003";
const COLD: &str = "+31612345004";
const NEVER_WROTE: &str = "+31612345005";

/// Holds the store's writer (on SQLite its only write connection) until dropped.
async fn hold_the_writer(router: &Router) -> Option<DatabaseTransaction> {
    if router.store().backend() != sea_orm::DatabaseBackend::Sqlite {
        return None;
    }
    // SQLite's writes (and the send writer's turn) all wait for this one connection.
    Some(router.store().write_txn().await.unwrap())
}

/// Sends `requests` concurrently; on SQLite, once all are queued for the writer task (which
/// `writer` holds up), lets the writer go. Answers in the requests' order.
async fn send_together(
    router: &Router,
    tenant: &str,
    writer: Option<DatabaseTransaction>,
    requests: Vec<SendRequest>,
) -> Vec<Result<SendAccepted, RouterError>> {
    let stats = router.sending().commit_stats();
    let queued_before = stats.queued.load(Relaxed);
    let n = requests.len() as u64;
    let sends = futures::future::join_all(requests.into_iter().map(|r| router.send(tenant, r)));
    let release = async {
        if let Some(writer) = writer {
            for _ in 0..600 {
                if stats.queued.load(Relaxed) >= queued_before + n {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            assert_eq!(
                stats.queued.load(Relaxed),
                queued_before + n,
                "every send reached the writer's queue while it was held"
            );
            writer.rollback().await.unwrap();
        }
    };
    let (answers, ()) = futures::join!(sends, release);
    answers
}

#[tokio::test]
async fn sends_committed_together_each_get_their_own_answer_and_only_accepted_ones_are_kept() {
    on_each_backend(|db| async move {
        let (router, fake, tenant) = fake_setup(&db).await;
        receive(&router, &[inbound_from("in-a", ALICE, "hi")]).await;
        receive(&router, &[inbound_from("in-b", BOB, "hi")]).await;
        receive(&router, &[inbound_from("in-s", STOPPED, "STOP")]).await;
        let contacts_before = count(&router, contacts::Entity).await;
        let keyed = |text: &str| SendRequest {
            idempotency_key: Some("batch-key-1".into()),
            ..text_to(BOB, text)
        };
        let requests = vec![
            text_to(ALICE, "one"),
            text_to(STOPPED, "to someone who opted out"),
            keyed("once"),
            text_to(NEVER_WROTE, "free-form to a number that never wrote"),
            text_to(ALICE, "two"),
            keyed("once"),
            SendRequest {
                reply_to: Some("msg_0000000000000000000000000000".into()),
                ..text_to(ALICE, "a reply to nothing")
            },
            template_to(COLD),
            text_to(ALICE, "three"),
        ];
        let stats = router.sending().commit_stats();
        let writer = hold_the_writer(&router).await;
        let answers = send_together(&router, &tenant, writer, requests).await;

        let ok = |i: usize| -> &SendAccepted {
            answers[i]
                .as_ref()
                .unwrap_or_else(|e| panic!("send {i} is accepted: {e}"))
        };
        let code = |i: usize| answers[i].as_ref().map(|_| ()).unwrap_err().code();
        assert_eq!(code(1), "opted_out");
        assert_eq!(code(3), "outside_service_window");
        assert_eq!(code(6), "not_found");
        assert_eq!(
            ok(2).id,
            ok(5).id,
            "two sends with one idempotency key, in one batch, answer one message"
        );
        let accepted: std::collections::BTreeSet<&str> = [0, 2, 4, 7, 8]
            .into_iter()
            .map(|i| ok(i).id.as_str())
            .collect();
        assert_eq!(accepted.len(), 5);

        // What was refused left nothing behind; what was accepted is stored and queued.
        let outbound = messages::Entity::find()
            .filter(messages::Column::Direction.eq("outbound"))
            .all(router.store().conn())
            .await
            .unwrap();
        let stored: std::collections::BTreeSet<&str> =
            outbound.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(stored, accepted);
        assert_eq!(count(&router, outbox::Entity).await, 5);
        assert_eq!(
            count(&router, contacts::Entity).await,
            contacts_before + 1,
            "the template's new contact is kept, the refused text's is not"
        );

        if router.store().backend() == sea_orm::DatabaseBackend::Sqlite {
            assert!(
                stats.batched.load(Relaxed) >= 2,
                "sends were committed together: {stats:?}"
            );
            assert_eq!(stats.split_batches.load(Relaxed), 0, "{stats:?}");
        }
        let mut delivered = 0;
        for _ in 0..10 {
            delivered += router.delivery().deliver_due().await.unwrap();
        }
        assert_eq!(delivered, 5);
        assert_eq!(fake.sent().len(), 5, "each accepted send goes out once");
    })
    .await;
}

#[tokio::test]
async fn a_database_error_in_a_group_commit_fails_its_own_send_alone() {
    let db = TestDb::sqlite().await;
    let (router, fake, tenant) = fake_setup(&db).await;
    receive(&router, &[inbound_from("in-a", ALICE, "hi")]).await;
    // A real database error for one send's row, whichever transaction writes it.
    router
        .store()
        .write_conn()
        .execute_unprepared(
            "CREATE TRIGGER refuse_poison BEFORE INSERT ON outbox \
             WHEN (SELECT content FROM messages WHERE id = NEW.message_id) LIKE '%poison%' \
             BEGIN SELECT RAISE(ABORT, 'poisoned send'); END",
        )
        .await
        .unwrap();
    let requests = (0..6)
        .map(|i| text_to(ALICE, if i == 3 { "poison" } else { "fine" }))
        .collect();
    let stats = router.sending().commit_stats();
    let writer = hold_the_writer(&router).await;
    let answers = send_together(&router, &tenant, writer, requests).await;

    for (i, answer) in answers.iter().enumerate() {
        match (i, answer) {
            (3, Err(e)) => assert_eq!(e.http_status(), 503, "a failed write is a 503: {e}"),
            (3, Ok(a)) => panic!("the poisoned send was accepted: {a:?}"),
            (_, Err(e)) => panic!("send {i} failed with the poisoned one: {e}"),
            (_, Ok(_)) => {}
        }
    }
    assert!(
        stats.split_batches.load(Relaxed) >= 1,
        "the batch holding the poisoned send was rolled back and split: {stats:?}"
    );
    assert_eq!(count(&router, outbox::Entity).await, 5);
    let mut delivered = 0;
    for _ in 0..10 {
        delivered += router.delivery().deliver_due().await.unwrap();
    }
    assert_eq!(delivered, 5);
    assert_eq!(fake.sent().len(), 5);
}

/// A replay of a keyed send answers with its own parts only. A send written in the same
/// millisecond to the same contact (likely when sends are committed together) is not one of
/// them: it is put there by hand here, so that the test does not depend on the clock.
#[tokio::test]
async fn a_replayed_send_lists_its_own_parts_not_another_send_of_the_same_millisecond() {
    on_each_backend(|db| async move {
        let (router, _fake, tenant) = fake_setup(&db).await;
        receive(&router, &[inbound_from("in-b", BOB, "hi")]).await;
        let keyed = SendRequest {
            idempotency_key: Some("replay-1".into()),
            ..text_to(BOB, "once")
        };
        let first = router.send(&tenant, keyed.clone()).await.unwrap();
        assert!(first.parts.is_empty());
        let stored = messages::Entity::find_by_id(first.id.clone())
            .one(router.store().conn())
            .await
            .unwrap()
            .unwrap();
        let neighbour = messages::Model {
            id: format!("{}z", first.id),
            idempotency_key: None,
            request_hash: None,
            content: r#"{"text":"another send"}"#.into(),
            part_of: None,
            ..stored
        };
        messages::Entity::insert(messages::ActiveModel::from(neighbour))
            .exec_without_returning(router.store().write_conn())
            .await
            .unwrap();

        let replay = router.send(&tenant, keyed).await.unwrap();
        assert_eq!(replay.id, first.id);
        assert_eq!(
            replay.parts,
            Vec::<String>::new(),
            "the other send of the same millisecond is not a part"
        );
    })
    .await;
}

/// A send stored before `messages.part_of` existed (its rows' `part_of` null) still replays
/// with its parts, found the old way.
#[tokio::test]
async fn a_send_stored_before_part_of_still_replays_with_its_parts() {
    on_each_backend(|db| async move {
        let api = start(&db).await;
        api.inbound("in-1", API_ALICE, "send the documents").await;
        let body = json!({"to": API_ALICE, "text": "here you go", "idempotency_key": "old-split", "media": [
            {"url": "https://cdn.test/photo.jpg"},
            {"url": "https://cdn.test/contract.pdf", "filename": "contract.pdf"}
        ]});
        let accepted = api
            .post("/v1/messages", &api.admin, body.clone())
            .await
            .expect(202, None);
        assert_eq!(accepted.body["parts"].as_array().unwrap().len(), 1);
        api.router
            .store()
            .write_conn()
            .execute_unprepared("UPDATE messages SET part_of = NULL")
            .await
            .unwrap();
        let replay = api
            .post("/v1/messages", &api.admin, body)
            .await
            .expect(202, None);
        assert_eq!(replay.body["id"], accepted.body["id"]);
        assert_eq!(replay.body["parts"], accepted.body["parts"]);
    })
    .await;
}

/// Sends racing to a number nobody has written to yet create its contact once, and none of
/// them is rolled back and written again for it: the loser of the race to insert the
/// contact takes the winner's (PostgreSQL, where sends run in parallel; SQLite serializes
/// them).
#[tokio::test]
async fn sends_racing_to_a_new_number_share_one_contact_without_rolling_back() {
    let Some((_db, router, _fake, tenant)) = crate::support::postgres_fake_setup().await else {
        return;
    };
    let retried = || router.store().transactions_retried();
    let before = retried();
    let answers = futures::future::join_all(
        (0..12).map(|_| router.send(&tenant, template_to("+31612345099"))),
    )
    .await;
    for answer in &answers {
        answer.as_ref().expect("every send is accepted");
    }
    assert_eq!(count(&router, contacts::Entity).await, 1);
    assert_eq!(
        retried() - before,
        0,
        "no send's transaction was rolled back and written again for the contact's race"
    );
    assert_eq!(count(&router, messages::Entity).await, 12);
    assert_eq!(
        count(&router, outbox::Entity).await,
        12,
        "each send is queued once"
    );
}

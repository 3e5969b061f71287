//! The group commit's batch path (per-batch statements): duplicates, contacts, merges,
//! opt-outs and notifications inside one batch. Webhooks sent concurrently from one task are
//! all queued before the writer task runs, so they are stored as one batch.

use std::sync::atomic::Ordering::Relaxed;

use futures::future::join_all;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseBackend, EntityTrait, PaginatorTrait, QueryFilter,
    Statement,
};
use switchboard_core::testing::{self, FakeAdapter};
use switchboard_core::{Bsuid, ContactIdentity, InboundEvent, WebhookRequest};
use switchboard_router::store::entity::{contacts, conversations, messages, webhook_events};
use switchboard_router::{Router, WebhookAck};

use crate::support::fake::{SECRET, inbound, phone, signed};
use crate::support::{TestDb, count, fake_site, on_each_backend};

async fn setup(db: &TestDb) -> (Router, String) {
    let site = fake_site(db.store().await, |b| b).await;
    (site.router, site.tenant)
}

/// Sends every webhook at once; all must be acknowledged, in the batch they queued in: a
/// batch that failed and whose webhooks were stored again one at a time would pass the
/// counts below and hide the errors of a batch of several.
async fn send_all(router: &Router, webhooks: Vec<Vec<InboundEvent>>) -> Vec<WebhookAck> {
    send_requests(
        router,
        webhooks.iter().map(|events| signed(events)).collect(),
    )
    .await
}

/// [`send_all`] for webhooks already built.
async fn send_requests(router: &Router, webhooks: Vec<WebhookRequest>) -> Vec<WebhookAck> {
    let stats = router.inbound().batch_stats();
    let batched_before = stats.batched.load(Relaxed);
    let several = webhooks.len() > 1;
    let acks = join_all(
        webhooks
            .into_iter()
            .map(|request| router.receive_webhook("fake", request)),
    )
    .await
    .into_iter()
    .map(|r| r.expect("every webhook of the batch is acknowledged"))
    .collect();
    assert_eq!(stats.split_batches.load(Relaxed), 0, "no batch was split");
    if several {
        assert!(
            stats.batched.load(Relaxed) > batched_before,
            "the webhooks were stored by the batch path"
        );
    }
    acks
}

/// Stores a first webhook (`W0`, from +31612345600) on its own. It warms the account cache,
/// so the webhooks sent next reach the writer with no database read in between and queue
/// as one batch.
async fn warm_up(router: &Router) {
    send_all(
        router,
        vec![vec![inbound("W0", phone("+31612345600"), "0")]],
    )
    .await;
}

fn totals(acks: &[WebhookAck]) -> (usize, usize) {
    acks.iter()
        .fold((0, 0), |(s, d), a| (s + a.stored, d + a.duplicates))
}

#[tokio::test]
async fn duplicates_inside_one_batch_are_stored_once_and_all_acknowledged() {
    on_each_backend(|db| async move {
        let (router, _tenant) = setup(&db).await;
        warm_up(&router).await;
        let mut batch = Vec::new();
        for i in 0..20 {
            let ev = inbound(&format!("E{i}"), phone(&format!("+316123456{i:02}")), "hi");
            batch.push(vec![ev.clone()]);
            if i % 4 == 0 {
                // The same bytes again, inside the batch.
                batch.push(vec![ev]);
            }
        }
        // One webhook carrying an event twice, and one redelivering the warm-up webhook.
        let twice = inbound("T1", phone("+31612345699"), "twice");
        batch.push(vec![twice.clone(), twice]);
        batch.push(vec![inbound("W0", phone("+31612345600"), "0")]);
        let acks = send_all(&router, batch).await;
        assert_eq!(totals(&acks), (21, 7));
        assert_eq!(count(&router, messages::Entity).await, 22);
        assert_eq!(count(&router, webhook_events::Entity).await, 22);
        assert_eq!(count(&router, contacts::Entity).await, 21);
        assert_eq!(count(&router, conversations::Entity).await, 21);
    })
    .await;
}

/// A provider may send one message again under another event key: it is stored once, and
/// the later deliveries count as duplicates, inside one batch and across batches.
#[tokio::test]
async fn a_message_under_a_second_event_key_is_stored_once() {
    on_each_backend(|db| async move {
        let (router, _tenant) = setup(&db).await;
        warm_up(&router).await;
        let again = |provider_id: &str, event_key: &str, from: &str| {
            let mut ev = inbound(provider_id, phone(from), "again");
            ev.event_key = event_key.into();
            ev
        };
        let mut batch = Vec::new();
        for i in 0..10 {
            let from = format!("+316123458{i:02}");
            batch.push(vec![inbound(&format!("P{i}"), phone(&from), "first")]);
            if i % 3 == 0 {
                batch.push(vec![again(&format!("P{i}"), &format!("P{i}-bis"), &from)]);
            }
        }
        // The warm-up's message, under a key of its own.
        batch.push(vec![again("W0", "W0-bis", "+31612345600")]);
        let acks = send_all(&router, batch).await;
        assert_eq!(totals(&acks), (10, 5));
        assert_eq!(count(&router, messages::Entity).await, 11);
        assert_eq!(count(&router, webhook_events::Entity).await, 16);

        // Alone in its batch, too.
        let acks = send_all(&router, vec![vec![again("P5", "P5-ter", "+31612345805")]]).await;
        assert_eq!(totals(&acks), (0, 1));
        assert_eq!(count(&router, messages::Entity).await, 11);
    })
    .await;
}

#[tokio::test]
async fn a_batch_mixing_new_and_known_contacts_keeps_one_contact_and_conversation_each() {
    on_each_backend(|db| async move {
        let (router, tenant) = setup(&db).await;
        let number = |i: usize| format!("+316123457{i:02}");
        // Contacts 0..5 are known before the batch.
        for i in 0..5 {
            send_all(
                &router,
                vec![vec![inbound(&format!("K{i}"), phone(&number(i)), "a")]],
            )
            .await;
        }
        // The batch: contacts 0..10, each twice (a new contact's second message finds the
        // contact its first one created), under distinct event and provider ids.
        let batch: Vec<Vec<InboundEvent>> = (0..20)
            .map(|n| vec![inbound(&format!("B{n}"), phone(&number(n % 10)), "b")])
            .collect();
        let acks = send_all(&router, batch).await;
        assert_eq!(totals(&acks), (20, 0));
        assert_eq!(count(&router, contacts::Entity).await, 10);
        assert_eq!(count(&router, conversations::Entity).await, 10);
        assert_eq!(count(&router, messages::Entity).await, 25);
        for i in 0..10 {
            let c = router
                .records()
                .find_contact(&tenant, &number(i))
                .await
                .unwrap();
            let convs = conversations::Entity::find()
                .filter(conversations::Column::ContactId.eq(c.id.as_str()))
                .all(router.store().conn())
                .await
                .unwrap();
            assert_eq!(convs.len(), 1);
            let in_conv = messages::Entity::find()
                .filter(messages::Column::ConversationId.eq(convs[0].id.as_str()))
                .count(router.store().conn())
                .await
                .unwrap();
            assert_eq!(in_conv, if i < 5 { 3 } else { 2 });
            assert!(convs[0].last_inbound_at.is_some());
        }
    })
    .await;
}

#[tokio::test]
async fn a_merge_inside_a_batch_leaves_no_message_on_a_merged_away_contact() {
    on_each_backend(|db| async move {
        let (router, tenant) = setup(&db).await;
        let bsuid = Bsuid::parse("BR.4242").unwrap();
        let by_bsuid = ContactIdentity {
            bsuid: Some(bsuid.clone()),
            ..Default::default()
        };
        let number = "+5511912345678";
        let both = ContactIdentity {
            bsuid: Some(bsuid),
            ..phone(number)
        };
        // Two contacts, known before the batch.
        send_all(&router, vec![vec![inbound("M1", by_bsuid.clone(), "1")]]).await;
        send_all(&router, vec![vec![inbound("M2", phone(number), "2")]]).await;
        assert_eq!(count(&router, contacts::Entity).await, 2);
        // The batch reads both as known, then one webhook merges them, then more messages
        // name each old identity alone.
        let batch = vec![
            vec![inbound("M3", by_bsuid.clone(), "3")],
            vec![inbound("M4", phone(number), "4")],
            vec![inbound("M5", both, "5")],
            vec![inbound("M6", by_bsuid, "6")],
            vec![inbound("M7", phone(number), "7")],
        ];
        let acks = send_all(&router, batch).await;
        assert_eq!(totals(&acks), (5, 0));
        assert_eq!(count(&router, contacts::Entity).await, 1, "merged");
        assert_eq!(count(&router, conversations::Entity).await, 1);
        let c = router
            .records()
            .find_contact(&tenant, "BR.4242")
            .await
            .unwrap();
        assert_eq!(c.phone.as_deref(), Some(number));
        let conv = conversations::Entity::find()
            .one(router.store().conn())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(conv.contact_id, c.id);
        let in_conv = messages::Entity::find()
            .filter(messages::Column::ConversationId.eq(conv.id.as_str()))
            .count(router.store().conn())
            .await
            .unwrap();
        assert_eq!(
            in_conv, 7,
            "every message on the kept contact's conversation"
        );
    })
    .await;
}

#[tokio::test]
async fn stop_then_another_message_in_one_batch_opts_back_in() {
    on_each_backend(|db| async move {
        let (router, _tenant) = setup(&db).await;
        let who = phone("+31612345800");
        send_all(&router, vec![vec![inbound("S0", who.clone(), "hello")]]).await;
        send_all(
            &router,
            vec![
                vec![inbound("S1", who.clone(), "STOP")],
                vec![inbound("S2", phone("+31612345801"), "STOP")],
            ],
        )
        .await;
        let opted = |router: Router| async move {
            let mut rows = conversations::Entity::find()
                .all(router.store().conn())
                .await
                .unwrap();
            rows.sort_by_key(|c| c.created_at);
            rows.iter()
                .map(|c| c.opted_out_at.is_some())
                .collect::<Vec<_>>()
        };
        assert_eq!(opted(router.clone()).await, vec![true, true]);
        send_all(
            &router,
            vec![
                vec![inbound("S3", who.clone(), "STOP")],
                vec![inbound("S4", who, "actually, hi")],
            ],
        )
        .await;
        let rows = conversations::Entity::find()
            .all(router.store().conn())
            .await
            .unwrap();
        assert_eq!(
            rows.iter().filter(|c| c.opted_out_at.is_some()).count(),
            1,
            "the later message opted the first person back in"
        );
    })
    .await;
}

/// Each new event's key comes back with whether its tenant subscribes to notifications:
/// a batch holding two tenants' messages queues notifications for the subscribed tenant's
/// new messages only, and none for a redelivery.
#[tokio::test]
async fn a_batch_queues_notifications_for_subscribed_tenants_only() {
    const OTHER_BUSINESS: &str = "+14155238887";
    on_each_backend(|db| async move {
        let (router, subscribed) = setup(&db).await;
        router
            .notifications()
            .set_notify_url(&subscribed, Some("http://127.0.0.1:9/events"))
            .await
            .unwrap();
        let other = router.tenants().create("globex").await.unwrap().tenant_id;
        router
            .accounts()
            .connect(
                &other,
                "fake",
                OTHER_BUSINESS,
                &FakeAdapter::credentials(SECRET),
                None,
            )
            .await
            .unwrap();
        let for_other = |key: &str, from: &str| {
            let ev = testing::inbound_text(OTHER_BUSINESS, key, phone(from), "hi");
            FakeAdapter::webhook(OTHER_BUSINESS, &[ev], Some(SECRET))
        };
        // Both accounts' caches warm, so the batch below queues as one.
        warm_up(&router).await;
        send_requests(&router, vec![for_other("O0", "+31612345680")]).await;

        let mut batch = Vec::new();
        for i in 1..=3 {
            batch.push(signed(&[inbound(
                &format!("S{i}"),
                phone(&format!("+3161234561{i}")),
                "hi",
            )]));
            batch.push(for_other(&format!("O{i}"), &format!("+3161234568{i}")));
        }
        batch.push(signed(&[inbound("S1", phone("+31612345611"), "hi")]));
        let acks = send_requests(&router, batch).await;
        assert_eq!(totals(&acks), (6, 1));

        let queued = router
            .store()
            .conn()
            .query_all_raw(Statement::from_string(
                router.store().backend(),
                "SELECT tenant_id, COUNT(*) AS n FROM notifications GROUP BY tenant_id",
            ))
            .await
            .unwrap();
        let per_tenant: Vec<(String, i64)> = queued
            .iter()
            .map(|r| {
                (
                    r.try_get("", "tenant_id").unwrap(),
                    r.try_get("", "n").unwrap(),
                )
            })
            .collect();
        // The warm-up's message and the batch's three new ones.
        assert_eq!(per_tenant, vec![(subscribed, 4)]);
        assert!(!per_tenant.iter().any(|(t, _)| *t == other));
    })
    .await;
}

/// The batch's look-ups by key probe an index per key on both backends, whatever the
/// planner guesses about the rows of the bound JSON array: PostgreSQL, left to itself,
/// hash-joins them against a scan of every contact and identity, which grows with the
/// table.
#[tokio::test]
async fn the_batch_look_ups_probe_indexes_instead_of_scanning_tables() {
    on_each_backend(|db| async move {
        let (router, tenant) = setup(&db).await;
        let conn = router.store().conn();
        let backend = conn.get_database_backend();
        // Enough rows, with statistics, that a scan is a real choice for the planner.
        for sql in [
            format!(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000) \
                 INSERT INTO contacts (id, tenant_id, e164, created_at, updated_at) \
                 SELECT 'ct_' || i, '{tenant}', '+3161' || (1000000 + i), 0, 0 FROM n"
            ),
            format!(
                "INSERT INTO contact_identities (tenant_id, kind, value, contact_id, created_at) \
                 SELECT '{tenant}', 'phone', e164, id, 0 FROM contacts"
            ),
            "ANALYZE".to_owned(),
        ] {
            conn.execute_unprepared(&sql).await.unwrap();
        }
        let sample = format!(r#"[["{tenant}","phone","+31611000001"]]"#);
        let sql = switchboard_router::inbound::lookup_statement(backend);
        let explain = match backend {
            DatabaseBackend::Postgres => format!("EXPLAIN {sql}"),
            _ => format!("EXPLAIN QUERY PLAN {sql}"),
        };
        let plan: Vec<String> = conn
            .query_all_raw(Statement::from_sql_and_values(
                backend,
                explain,
                [sample.into()],
            ))
            .await
            .unwrap()
            .iter()
            .map(|r| match backend {
                DatabaseBackend::Postgres => r.try_get::<String>("", "QUERY PLAN").unwrap(),
                _ => r.try_get::<String>("", "detail").unwrap(),
            })
            .collect();
        assert!(
            // SQLite names a scan by table alias; only the bound array (a virtual table)
            // may be scanned.
            !plan.iter().any(|line| line.contains("Seq Scan")
                || line.starts_with("SCAN contacts")
                || line.starts_with("SCAN ci")
                || (line.starts_with("SCAN ") && !line.contains("VIRTUAL TABLE"))),
            "{sql}\n{}",
            plan.join("\n")
        );
        assert!(
            plan.iter().any(|line| line.contains("Index")
                || line.contains("USING INDEX")
                || line.contains("USING PRIMARY KEY")),
            "{sql}\n{}",
            plan.join("\n")
        );
    })
    .await;
}

/// Every value crosses the batch statements inside one JSON parameter: quotes, backslashes,
/// control characters and characters beyond the BMP come back exactly as they went in.
#[tokio::test]
async fn text_that_needs_escaping_is_stored_exactly_by_the_batch_path() {
    on_each_backend(|db| async move {
        let (router, _tenant) = setup(&db).await;
        warm_up(&router).await;
        let texts = [
            r#"quote " backslash \ slash / tab	end"#,
            "line\nbreak\r\nand \u{1F600} \u{7} \u{2028} é",
            r#"{"looks": ["like", "json"]}"#,
        ];
        let mut batch = Vec::new();
        for (i, text) in texts.iter().enumerate() {
            let mut contact = phone(&format!("+3161234570{i}"));
            contact.profile_name = Some(format!("Naïve \"{i}\" \\ \u{1F600}"));
            let mut ev = inbound(&format!("X{i}"), contact, text);
            ev.raw = serde_json::json!({"id": format!("X{i}"), "text": text});
            batch.push(vec![ev]);
        }
        send_all(&router, batch).await;
        let conn = router.store().conn();
        for (i, text) in texts.iter().enumerate() {
            let m = messages::Entity::find()
                .filter(messages::Column::ProviderMessageId.eq(format!("X{i}")))
                .one(conn)
                .await
                .unwrap()
                .expect("stored");
            let content: serde_json::Value = serde_json::from_str(&m.content).unwrap();
            assert_eq!(content["text"], *text, "content of X{i}");
            let raw: serde_json::Value = serde_json::from_str(m.raw.as_deref().unwrap()).unwrap();
            assert_eq!(raw["text"], *text, "raw of X{i}");
            let conv = conversations::Entity::find_by_id(m.conversation_id)
                .one(conn)
                .await
                .unwrap()
                .unwrap();
            let contact = contacts::Entity::find_by_id(conv.contact_id)
                .one(conn)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(
                contact.profile_name.as_deref(),
                Some(format!("Naïve \"{i}\" \\ \u{1F600}").as_str())
            );
        }
    })
    .await;
}

//! The delivery engine (idempotency, window, opt-out, retries, status truth,
//! ordering, pacing, crash safety, scale-out), on SQLite and PostgreSQL.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder};
use switchboard_core::testing::FakeAdapter;
use switchboard_core::{
    ChannelAdapter, ChannelError, Content, ErrorKind, EventKind, MessageStatus, OptChange,
    StatusUpdate, Template,
};
use switchboard_router::store::crypto::CredentialCipher;
use switchboard_router::store::entity::{messages, outbox, pending_statuses, send_attempts};
use switchboard_router::{DeliveryConfig, Router, RouterError, SendRequest};

use crate::support::fake::{
    BUSINESS, SECRET, inbound_from, signed as webhook, status as status_event, template_to, text_to,
};
use crate::support::{TestDb, on_each_backend};

const PERSON: &str = "+31612345678";

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Retries without waiting, so tests run in milliseconds.
fn quick() -> DeliveryConfig {
    DeliveryConfig {
        base_backoff: ms(1),
        max_backoff: ms(2),
        ..DeliveryConfig::default()
    }
}

struct Env {
    router: Router,
    fake: FakeAdapter,
    tenant: String,
    key: String,
}

async fn router_on(db: &TestDb, fake: &FakeAdapter, key: &str, cfg: DeliveryConfig) -> Router {
    Router::builder(
        db.store().await,
        CredentialCipher::from_base64(key).unwrap(),
    )
    .adapter(Arc::new(fake.clone()))
    .delivery(cfg)
    .build()
}

/// Connects a fake-channel sender; returns its account id.
async fn connect_fake(router: &Router, tenant: &str, number: &str, rate: Option<i32>) -> String {
    router
        .accounts()
        .connect(
            tenant,
            "fake",
            number,
            &FakeAdapter::credentials(SECRET),
            rate,
        )
        .await
        .unwrap()
        .id
}

async fn setup_with(db: &TestDb, fake: FakeAdapter, cfg: DeliveryConfig) -> Env {
    let key = CredentialCipher::generate_key();
    let router = router_on(db, &fake, &key, cfg).await;
    let tenant = router.tenants().create("acme").await.unwrap().tenant_id;
    connect_fake(&router, &tenant, BUSINESS, None).await;
    Env {
        router,
        fake,
        tenant,
        key,
    }
}

async fn setup(db: &TestDb) -> Env {
    setup_with(db, FakeAdapter::new(), quick()).await
}

/// The person writes: opens the 24-hour window (and opts back in).
async fn person_writes(env: &Env, from: &str, key: &str, text: &str) {
    env.router
        .receive_webhook("fake", webhook(&[inbound_from(key, from, text)]))
        .await
        .unwrap();
}

async fn message(router: &Router, id: &str) -> messages::Model {
    messages::Entity::find_by_id(id.to_owned())
        .one(router.store().conn())
        .await
        .unwrap()
        .expect("message stored")
}

async fn outbox_len(router: &Router) -> u64 {
    outbox::Entity::find()
        .count(router.store().conn())
        .await
        .unwrap()
}

async fn outbound_count(router: &Router) -> u64 {
    messages::Entity::find()
        .filter(messages::Column::Direction.eq("outbound"))
        .count(router.store().conn())
        .await
        .unwrap()
}

/// Runs delivery rounds until the outbox is empty (retries are due within milliseconds).
async fn drain(router: &Router) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while outbox_len(router).await > 0 {
        assert!(Instant::now() < deadline, "the outbox did not drain");
        router.delivery().deliver_due().await.unwrap();
        tokio::time::sleep(ms(3)).await;
    }
}

fn sent_ids(fake: &FakeAdapter) -> Vec<String> {
    fake.sent().into_iter().map(|(_, m)| m.id).collect()
}

#[tokio::test]
async fn the_same_idempotency_key_sends_once_even_across_a_restart() {
    on_each_backend(|db| async move {
        let env = setup(&db).await;
        person_writes(&env, PERSON, "in-1", "hi").await;
        let req = SendRequest {
            idempotency_key: Some("order-42".into()),
            ..text_to(PERSON, "your order shipped")
        };
        let first = env.router.send(&env.tenant, req.clone()).await.unwrap();
        let second = env.router.send(&env.tenant, req.clone()).await.unwrap();
        assert_eq!(first.id, second.id);
        assert_eq!(outbox_len(&env.router).await, 1);
        assert_eq!(outbound_count(&env.router).await, 1);

        // A fresh process on the same database: the key still names the first message.
        let restarted = router_on(&db, &env.fake, &env.key, quick()).await;
        let third = restarted.send(&env.tenant, req.clone()).await.unwrap();
        assert_eq!(third.id, first.id);
        drain(&restarted).await;
        let fourth = restarted.send(&env.tenant, req).await.unwrap();
        assert_eq!(fourth.id, first.id, "also after it was delivered");
        assert_eq!(fourth.status, "accepted");
        drain(&restarted).await;
        assert_eq!(sent_ids(&env.fake), vec![first.id]);
        assert_eq!(outbound_count(&restarted).await, 1);
    })
    .await;
}

/// Many first messages to one new number at once: every one is accepted, and they name one
/// contact (on PostgreSQL the contact insert races; the loser's transaction is retried).
#[tokio::test]
async fn concurrent_first_messages_to_a_new_number_are_all_accepted() {
    on_each_backend(|db| async move {
        let env = setup(&db).await;
        let sends: Vec<_> = (0..16)
            .map(|_| {
                let router = env.router.clone();
                let tenant = env.tenant.clone();
                tokio::spawn(async move { router.send(&tenant, template_to("+31687654321")).await })
            })
            .collect();
        let mut conversations = std::collections::HashSet::new();
        for s in sends {
            let accepted = s.await.unwrap().expect("accepted");
            conversations.insert(accepted.conversation_id);
        }
        assert_eq!(conversations.len(), 1, "one conversation");
        assert_eq!(outbound_count(&env.router).await, 16);
        let contacts = switchboard_router::store::entity::contacts::Entity::find()
            .filter(switchboard_router::store::entity::contacts::Column::E164.eq("+31687654321"))
            .count(env.router.store().conn())
            .await
            .unwrap();
        assert_eq!(contacts, 1, "one contact");
    })
    .await;
}

#[tokio::test]
async fn free_form_outside_the_window_is_refused_but_a_template_goes() {
    on_each_backend(|db| async move {
        let env = setup(&db).await;
        let err = env
            .router
            .send(&env.tenant, text_to(PERSON, "cold"))
            .await
            .unwrap_err();
        assert!(matches!(err, RouterError::OutsideServiceWindow), "{err}");
        assert_eq!(err.code(), "outside_service_window");
        assert_eq!(outbound_count(&env.router).await, 0);
        assert_eq!(outbox_len(&env.router).await, 0);
        env.router.delivery().deliver_due().await.unwrap();
        assert!(env.fake.sent().is_empty());

        let ok = env
            .router
            .send(&env.tenant, template_to(PERSON))
            .await
            .unwrap();
        drain(&env.router).await;
        assert_eq!(sent_ids(&env.fake), vec![ok.id.clone()]);
        let sent = &env.fake.sent()[0].1;
        assert_eq!(
            sent.content.template.as_ref().map(|t| t.name.as_str()),
            Some("order_update")
        );
        assert_eq!(message(&env.router, &ok.id).await.status, "accepted");
    })
    .await;
}

#[tokio::test]
async fn an_opt_out_reported_by_the_provider_blocks_later_sends_until_the_person_writes() {
    on_each_backend(|db| async move {
        let env = setup(&db).await;
        person_writes(&env, PERSON, "in-1", "hi").await;
        env.fake.fail_next(
            ChannelError::new(ErrorKind::OptedOut, "recipient unsubscribed")
                .with_provider_code("21610"),
        );
        let a = env
            .router
            .send(&env.tenant, text_to(PERSON, "one"))
            .await
            .unwrap();
        drain(&env.router).await;
        let row = message(&env.router, &a.id).await;
        assert_eq!(row.status, "failed");
        assert_eq!(row.error_code.as_deref(), Some("21610"));
        assert_eq!(env.fake.sent().len(), 1, "an opt-out is not retried");

        let err = env
            .router
            .send(&env.tenant, text_to(PERSON, "two"))
            .await
            .unwrap_err();
        assert!(matches!(err, RouterError::OptedOut), "{err}");
        assert_eq!(err.code(), "opted_out");
        let err = env
            .router
            .send(&env.tenant, template_to(PERSON))
            .await
            .unwrap_err();
        assert!(matches!(err, RouterError::OptedOut), "templates too: {err}");
        assert_eq!(outbound_count(&env.router).await, 1);

        person_writes(&env, PERSON, "in-2", "actually, I'm back").await;
        let b = env
            .router
            .send(&env.tenant, text_to(PERSON, "welcome back"))
            .await
            .unwrap();
        drain(&env.router).await;
        assert_eq!(sent_ids(&env.fake).last(), Some(&b.id));
    })
    .await;
}

#[tokio::test]
async fn an_inbound_stop_opts_out_and_a_later_message_opts_back_in() {
    on_each_backend(|db| async move {
        let env = setup(&db).await;
        person_writes(&env, PERSON, "in-1", "hi").await;
        env.router
            .send(&env.tenant, text_to(PERSON, "before"))
            .await
            .unwrap();
        person_writes(&env, PERSON, "in-2", " stop ").await;
        let err = env
            .router
            .send(&env.tenant, text_to(PERSON, "after stop"))
            .await
            .unwrap_err();
        assert!(matches!(err, RouterError::OptedOut), "{err}");
        person_writes(&env, PERSON, "in-3", "hello again").await;
        env.router
            .send(&env.tenant, text_to(PERSON, "reopened"))
            .await
            .unwrap();
        assert_eq!(outbound_count(&env.router).await, 2);
    })
    .await;
}

/// An inbound message with the opt change its channel declared (`InboundMessage::opt`).
async fn person_writes_declaring(env: &Env, key: &str, text: &str, opt: OptChange) {
    let mut event = inbound_from(key, PERSON, text);
    if let EventKind::Message(m) = &mut event.kind {
        m.opt = opt;
    }
    env.router
        .receive_webhook("fake", webhook(&[event]))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_channel_that_declares_its_opt_changes_is_followed() {
    on_each_backend(|db| async move {
        let env = setup(&db).await;
        let refused = |env: &Env| {
            let router = env.router.clone();
            let tenant = env.tenant.clone();
            async move {
                match router.send(&tenant, text_to(PERSON, "x")).await {
                    Err(RouterError::OptedOut) => true,
                    Err(other) => panic!("{other}"),
                    Ok(_) => false,
                }
            }
        };
        // "STOP" that the channel says changes nothing does not opt out.
        person_writes_declaring(&env, "d-1", "STOP", OptChange::Unchanged).await;
        assert!(!refused(&env).await);
        // A declared opt-out, whatever the text.
        person_writes_declaring(&env, "d-2", "arrêt", OptChange::OptOut).await;
        assert!(refused(&env).await);
        // Writing again is not consent where the channel says so.
        person_writes_declaring(&env, "d-3", "hello?", OptChange::Unchanged).await;
        assert!(refused(&env).await);
        person_writes_declaring(&env, "d-4", "START", OptChange::OptIn).await;
        assert!(!refused(&env).await);
    })
    .await;
}

#[tokio::test]
async fn two_transient_failures_are_retried_then_the_message_is_sent() {
    on_each_backend(|db| async move {
        let env = setup(&db).await;
        person_writes(&env, PERSON, "in-1", "hi").await;
        env.fake
            .fail_next(ChannelError::transient("503 from provider"));
        env.fake
            .fail_next(ChannelError::transient("connection reset"));
        let a = env
            .router
            .send(&env.tenant, text_to(PERSON, "retry me"))
            .await
            .unwrap();
        drain(&env.router).await;
        assert_eq!(sent_ids(&env.fake), vec![a.id.clone(); 3]);
        let row = message(&env.router, &a.id).await;
        assert_eq!(row.status, "accepted");
        assert_eq!(row.provider_message_id.as_deref(), Some("fake-3"));
        let attempts = send_attempts::Entity::find()
            .filter(send_attempts::Column::MessageId.eq(a.id.as_str()))
            .order_by_asc(send_attempts::Column::Attempt)
            .all(env.router.store().conn())
            .await
            .unwrap();
        let outcomes: Vec<(i32, &str)> = attempts
            .iter()
            .map(|a| (a.attempt, a.outcome.as_str()))
            .collect();
        assert_eq!(
            outcomes,
            vec![(1, "transient"), (2, "transient"), (3, "sent")]
        );
    })
    .await;
}

#[tokio::test]
async fn a_retry_after_is_honoured() {
    on_each_backend(|db| async move {
        let env = setup(&db).await;
        person_writes(&env, PERSON, "in-1", "hi").await;
        env.fake.fail_next(ChannelError::rate_limited(
            "429 too many requests",
            Some(Duration::from_secs(5)),
        ));
        let a = env
            .router
            .send(&env.tenant, text_to(PERSON, "later"))
            .await
            .unwrap();
        let before = Utc::now().timestamp_millis();
        assert_eq!(env.router.delivery().deliver_due().await.unwrap(), 1);
        let entry = outbox::Entity::find_by_id(a.id.clone())
            .one(env.router.store().conn())
            .await
            .unwrap()
            .expect("still queued");
        assert!(
            entry.next_attempt_at >= before + 5_000,
            "next attempt {} ms after the failure, retry-after was 5000",
            entry.next_attempt_at - before
        );
        assert_eq!(entry.attempts, 1);
        assert_eq!(entry.locked_by, None, "the lease is released");
        // Not claimable before then, however often the engine looks.
        for _ in 0..3 {
            assert_eq!(env.router.delivery().deliver_due().await.unwrap(), 0);
        }
        assert_eq!(env.fake.sent().len(), 1);
        assert_eq!(message(&env.router, &a.id).await.status, "queued");
    })
    .await;
}

#[tokio::test]
async fn a_permanent_failure_is_not_retried_and_keeps_the_provider_code() {
    on_each_backend(|db| async move {
        let env = setup(&db).await;
        person_writes(&env, PERSON, "in-1", "hi").await;
        env.fake.fail_next(
            ChannelError::permanent("The 'To' number is not a valid phone number")
                .with_provider_code("21211"),
        );
        let a = env
            .router
            .send(&env.tenant, text_to(PERSON, "x"))
            .await
            .unwrap();
        drain(&env.router).await;
        for _ in 0..3 {
            env.router.delivery().deliver_due().await.unwrap();
        }
        assert_eq!(env.fake.sent().len(), 1);
        let row = message(&env.router, &a.id).await;
        assert_eq!(row.status, "failed");
        assert_eq!(row.error_code.as_deref(), Some("21211"));
        assert!(
            row.error_message
                .as_deref()
                .is_some_and(|m| m.contains("not a valid phone number")),
            "{:?}",
            row.error_message
        );
    })
    .await;
}

#[tokio::test]
async fn an_ambiguous_outcome_fails_visibly_and_is_not_resent() {
    on_each_backend(|db| async move {
        let env = setup(&db).await;
        person_writes(&env, PERSON, "in-1", "hi").await;
        env.fake.fail_next(ChannelError::ambiguous(
            "timed out after the request was sent",
        ));
        let a = env
            .router
            .send(&env.tenant, text_to(PERSON, "x"))
            .await
            .unwrap();
        drain(&env.router).await;
        env.router.delivery().deliver_due().await.unwrap();
        assert_eq!(env.fake.sent().len(), 1);
        let row = message(&env.router, &a.id).await;
        assert_eq!(row.status, "failed");
        assert_eq!(row.error_code.as_deref(), Some("delivery_unknown"));
    })
    .await;
}

#[tokio::test]
async fn after_max_attempts_the_message_fails_with_the_last_error() {
    on_each_backend(|db| async move {
        let env = setup_with(
            &db,
            FakeAdapter::new(),
            DeliveryConfig {
                max_attempts: 3,
                ..quick()
            },
        )
        .await;
        person_writes(&env, PERSON, "in-1", "hi").await;
        for code in ["T1", "T2", "T3", "T4"] {
            env.fake.fail_next(
                ChannelError::transient(format!("outage {code}")).with_provider_code(code),
            );
        }
        let a = env
            .router
            .send(&env.tenant, text_to(PERSON, "x"))
            .await
            .unwrap();
        drain(&env.router).await;
        assert_eq!(env.fake.sent().len(), 3);
        let row = message(&env.router, &a.id).await;
        assert_eq!(row.status, "failed");
        assert_eq!(row.error_code.as_deref(), Some("T3"));
        let text = row.error_message.unwrap_or_default();
        assert!(
            text.contains("3 attempts") && text.contains("outage T3"),
            "{text}"
        );
    })
    .await;
}

fn permutations(items: &[MessageStatus]) -> Vec<Vec<MessageStatus>> {
    if items.len() <= 1 {
        return vec![items.to_vec()];
    }
    let mut out = Vec::new();
    for i in 0..items.len() {
        let mut rest = items.to_vec();
        let first = rest.remove(i);
        for mut p in permutations(&rest) {
            p.insert(0, first);
            out.push(p);
        }
    }
    out
}

#[tokio::test]
async fn status_regressions_are_ignored_in_every_order() {
    use MessageStatus::{Delivered, Failed, Read, Sent};
    on_each_backend(|db| async move {
        let env = setup(&db).await;
        person_writes(&env, PERSON, "in-1", "hi").await;
        let cases: Vec<(Vec<MessageStatus>, &str)> = permutations(&[Sent, Delivered, Read, Failed])
            .into_iter()
            .map(|p| (p, "read"))
            .chain(
                permutations(&[Sent, Failed])
                    .into_iter()
                    .map(|p| (p, "failed")),
            )
            .chain(
                permutations(&[Delivered, Failed])
                    .into_iter()
                    .map(|p| (p, "delivered")),
            )
            .collect();
        assert_eq!(cases.len(), 24 + 2 + 2);
        for (n, (order, expected)) in cases.iter().enumerate() {
            let a = env
                .router
                .send(&env.tenant, text_to(PERSON, &format!("case {n}")))
                .await
                .unwrap();
            drain(&env.router).await;
            let provider_id = message(&env.router, &a.id)
                .await
                .provider_message_id
                .expect("sent");
            // Each report in its own webhook, as providers send them.
            for (i, s) in order.iter().enumerate() {
                env.router
                    .receive_webhook(
                        "fake",
                        webhook(&[status_event(&format!("st-{n}-{i}"), &provider_id, None, *s)]),
                    )
                    .await
                    .unwrap();
            }
            let row = message(&env.router, &a.id).await;
            assert_eq!(row.status, *expected, "order {order:?}");
        }
    })
    .await;
}

/// A status whose message never appears (another system sent it on the same number) is
/// kept for `pending_statuses_kept`, then deleted; a younger one stays.
#[tokio::test]
async fn statuses_whose_message_never_appears_are_deleted_after_the_configured_time() {
    on_each_backend(|db| async move {
        let env = setup(&db).await;
        for (key, provider_id) in [("ghost-old", "elsewhere-1"), ("ghost-new", "elsewhere-2")] {
            env.router
                .receive_webhook(
                    "fake",
                    webhook(&[status_event(
                        key,
                        provider_id,
                        None,
                        MessageStatus::Delivered,
                    )]),
                )
                .await
                .unwrap();
        }
        let db = env.router.store().conn();
        assert_eq!(pending_statuses::Entity::find().count(db).await.unwrap(), 2);
        let kept = DeliveryConfig::default().pending_statuses_kept;
        let old = Utc::now().timestamp_millis() - i64::try_from(kept.as_millis()).unwrap() - 1_000;
        pending_statuses::Entity::update_many()
            .col_expr(
                pending_statuses::Column::ReceivedAt,
                sea_orm::sea_query::Expr::value(old),
            )
            .filter(pending_statuses::Column::ProviderMessageId.eq("elsewhere-1"))
            .exec(db)
            .await
            .unwrap();

        assert_eq!(
            env.router
                .reconciler()
                .prune_pending_statuses()
                .await
                .unwrap(),
            1
        );
        let left: Vec<String> = pending_statuses::Entity::find()
            .all(db)
            .await
            .unwrap()
            .into_iter()
            .map(|p| p.provider_message_id)
            .collect();
        assert_eq!(left, ["elsewhere-2"]);
        assert_eq!(
            env.router
                .reconciler()
                .prune_pending_statuses()
                .await
                .unwrap(),
            0
        );
    })
    .await;
}

#[tokio::test]
async fn statuses_that_arrive_before_the_provider_id_is_known_are_applied_later() {
    on_each_backend(|db| async move {
        let env = setup(&db).await;
        person_writes(&env, PERSON, "in-1", "hi").await;
        let a = env
            .router
            .send(&env.tenant, text_to(PERSON, "one"))
            .await
            .unwrap();
        // Only the provider's id (Meta style): kept pending until the receipt names it.
        env.router
            .receive_webhook(
                "fake",
                webhook(&[status_event(
                    "early-1",
                    "fake-1",
                    None,
                    MessageStatus::Delivered,
                )]),
            )
            .await
            .unwrap();
        assert_eq!(message(&env.router, &a.id).await.status, "queued");
        drain(&env.router).await;
        assert_eq!(message(&env.router, &a.id).await.status, "delivered");

        // Our own id echoed back (Twilio style): applied at once, the receipt cannot undo it.
        let b = env
            .router
            .send(&env.tenant, text_to(PERSON, "two"))
            .await
            .unwrap();
        env.router
            .receive_webhook(
                "fake",
                webhook(&[status_event(
                    "early-2",
                    "fake-2",
                    Some(&b.id),
                    MessageStatus::Sent,
                )]),
            )
            .await
            .unwrap();
        let row = message(&env.router, &b.id).await;
        assert_eq!(
            (row.status.as_str(), row.provider_message_id.as_deref()),
            ("sent", Some("fake-2"))
        );
        drain(&env.router).await;
        assert_eq!(message(&env.router, &b.id).await.status, "sent");
    })
    .await;
}

#[tokio::test]
async fn messages_to_one_contact_leave_in_order_and_different_contacts_go_in_parallel() {
    on_each_backend(|db| async move {
        let env = setup_with(&db, FakeAdapter::new().with_send_delay(ms(150)), quick()).await;
        let people = [
            "+31612345678",
            "+31612345679",
            "+31612345670",
            "+31612345671",
        ];
        for (i, p) in people.iter().enumerate() {
            person_writes(&env, p, &format!("in-{i}"), "hi").await;
        }
        let mut expected = Vec::new();
        for i in 0..6 {
            expected.push(
                env.router
                    .send(&env.tenant, text_to(PERSON, &format!("#{i}")))
                    .await
                    .unwrap()
                    .id,
            );
        }
        // Three engines racing over the same outbox.
        let workers: Vec<_> = (0..3)
            .map(|_| {
                let router = env.router.clone();
                tokio::spawn(async move { drain(&router).await })
            })
            .collect();
        for w in workers {
            w.await.unwrap();
        }
        assert_eq!(
            sent_ids(&env.fake),
            expected,
            "one contact: in send order, once each"
        );

        // One message to each of four contacts: one round sends them concurrently.
        let before = env.fake.sent().len();
        for p in people {
            env.router
                .send(&env.tenant, text_to(p, "fan out"))
                .await
                .unwrap();
        }
        assert_eq!(env.router.delivery().deliver_due().await.unwrap(), 4);
        assert_eq!(env.fake.sent().len(), before + 4);
        // Each send takes 150 ms, so the four overlap unless one waits for another (the
        // first part, one contact, never has two at once).
        assert_eq!(
            env.fake.most_concurrent_sends(),
            4,
            "four contacts' messages were not sent in parallel"
        );
    })
    .await;
}

/// Runs the engine in the background until the returned sender is dropped or set.
fn engine(
    router: &Router,
) -> (
    tokio::sync::watch::Sender<bool>,
    tokio::task::JoinHandle<()>,
) {
    let (tx, rx) = tokio::sync::watch::channel(false);
    let router = router.clone();
    (
        tx,
        tokio::spawn(async move { router.run_workers(rx).await }),
    )
}

/// Polls until `n` messages were sent; returns the time each was first seen.
async fn watch_sends(fake: &FakeAdapter, n: usize, within: Duration) -> Vec<(String, Instant)> {
    let deadline = Instant::now() + within;
    let mut seen: Vec<(String, Instant)> = Vec::new();
    while seen.len() < n {
        assert!(Instant::now() < deadline, "only {} of {n} sent", seen.len());
        let now = Instant::now();
        for id in sent_ids(fake).into_iter().skip(seen.len()) {
            seen.push((id, now));
        }
        tokio::time::sleep(ms(2)).await;
    }
    seen
}

#[tokio::test]
async fn recipient_pacing_spaces_messages_to_one_person_without_holding_up_others() {
    on_each_backend(|db| async move {
        // Long enough that a busy machine (CI runs the scale-out test alongside) cannot
        // stretch the unpaced burst past half of it.
        let interval = ms(1000);
        let mut caps = FakeAdapter::new().capabilities().clone();
        caps.recipient_pacing = Some(switchboard_core::Pacing { interval, burst: 2 });
        let fake = FakeAdapter::new().with_capabilities(caps);
        let cfg = DeliveryConfig {
            poll_interval: ms(5),
            ..quick()
        };
        let env = setup_with(&db, fake, cfg).await;
        const OTHER: &str = "+31612345679";
        person_writes(&env, PERSON, "in-1", "hi").await;
        person_writes(&env, OTHER, "in-2", "hi").await;
        let mut to_person = Vec::new();
        for i in 0..5 {
            let a = env
                .router
                .send(&env.tenant, text_to(PERSON, &format!("#{i}")))
                .await
                .unwrap();
            to_person.push(a.id);
        }
        let started = Instant::now();
        let (stop, task) = engine(&env.router);
        let first = watch_sends(&env.fake, 2, Duration::from_secs(5)).await;
        // The second goes in the next round (one contact: one entry per round), unpaced.
        assert!(
            first[1].1 - first[0].1 < interval / 2,
            "the burst of 2 goes at once: {:?} apart",
            first[1].1 - first[0].1
        );
        // While the person is paced, another recipient is served at once.
        let other = env
            .router
            .send(&env.tenant, text_to(OTHER, "not held up"))
            .await
            .unwrap();
        let asked = Instant::now();
        let seen = watch_sends(&env.fake, 6, Duration::from_secs(10)).await;
        let other_at = seen
            .iter()
            .find(|(id, _)| *id == other.id)
            .expect("other sent")
            .1;
        let person: Vec<&(String, Instant)> =
            seen.iter().filter(|(id, _)| *id != other.id).collect();
        assert!(
            other_at < person[4].1 && other_at - asked < 2 * interval,
            "another recipient waited {:?} behind the paced one",
            other_at - asked
        );
        let order: Vec<&String> = person.iter().map(|(id, _)| id).collect();
        assert_eq!(order, to_person.iter().collect::<Vec<_>>(), "order kept");
        // Tokens at t0, t0, t0+1, t0+2, t0+3 intervals (t0 after `started`), and a message
        // is sent only after it got its token: a strict lower bound.
        for (k, (_, at)) in person.iter().enumerate().skip(2) {
            let earliest = interval * u32::try_from(k - 1).unwrap();
            assert!(
                *at - started >= earliest,
                "message {k} after {:?}",
                *at - started
            );
        }
        // (No upper bound or gap check between neighbours: a send delayed by a busy machine
        // makes the next on-time send look close to it, though neither broke the pacing.)
        stop.send(true).unwrap();
        task.await.unwrap();
        // Pacing is not a failure: no attempt was counted for the waits.
        let attempts = send_attempts::Entity::find()
            .count(env.router.store().conn())
            .await
            .unwrap();
        assert_eq!(attempts, 6);
        assert_eq!(env.fake.sent().len(), 6, "each message sent once");
    })
    .await;
}

/// A process that gives a sender up (another engine joined) sends nothing more for it, not
/// even what it had claimed already, and hands those entries back at once: otherwise the
/// new holder's sends add to the old one's and the sender exceeds its rate.
#[tokio::test]
async fn a_released_sender_gets_no_more_sends_from_the_old_holder() {
    on_each_backend(|db| async move {
        const SECOND: &str = "+14155238001";
        let fake = FakeAdapter::new();
        let key = CredentialCipher::generate_key();
        let router = router_on(&db, &fake, &key, quick()).await;
        let tenant = router.tenants().create("acme").await.unwrap().tenant_id;
        let mut accounts = Vec::new();
        for number in [BUSINESS, SECOND] {
            accounts.push(connect_fake(&router, &tenant, number, Some(2)).await);
        }
        let mut ids: std::collections::HashMap<String, Vec<String>> = Default::default();
        for i in 0..8 {
            for (number, account) in [BUSINESS, SECOND].iter().zip(&accounts) {
                let mut req = template_to(&format!(
                    "+316123{:05}",
                    i * 2 + usize::from(*number == SECOND)
                ));
                req.from = Some((*number).into());
                let id = router.send(&tenant, req).await.unwrap().id;
                ids.entry(account.clone()).or_default().push(id);
            }
        }
        let sent_by = |account: &str| {
            let sent = sent_ids(&fake);
            ids[account].iter().filter(|id| sent.contains(id)).count()
        };
        let (stop, task) = engine(&router);
        let deadline = Instant::now() + Duration::from_secs(10);
        while accounts.iter().any(|a| sent_by(a) == 0) {
            assert!(Instant::now() < deadline, "both senders started");
            tokio::time::sleep(ms(10)).await;
        }
        // Another engine shows up: this one's fair share drops to one sender.
        let db_conn = router.store().conn();
        let backend = router.store().backend();
        db_conn
            .execute_raw(sea_orm::Statement::from_string(
                backend,
                format!(
                    "INSERT INTO delivery_workers (worker_id, seen_at) VALUES ('wrk_other', {})",
                    Utc::now().timestamp_millis()
                ),
            ))
            .await
            .unwrap();
        let released = loop {
            assert!(Instant::now() < deadline, "a sender was released");
            let rows = db_conn
                .query_all_raw(sea_orm::Statement::from_string(
                    backend,
                    "SELECT account_id FROM sender_leases WHERE holder = ''",
                ))
                .await
                .unwrap();
            if let Some(r) = rows.first() {
                break r.try_get::<String>("", "account_id").unwrap();
            }
            tokio::time::sleep(ms(10)).await;
        };
        // The entries it had claimed go back within a check interval (polled: a busy
        // machine may take longer); a send that had its token at the release may finish.
        let handed_back = Instant::now() + Duration::from_secs(5);
        loop {
            let still_claimed = outbox::Entity::find()
                .filter(outbox::Column::AccountId.eq(released.as_str()))
                .filter(outbox::Column::LockedBy.is_not_null())
                .count(db_conn)
                .await
                .unwrap();
            if still_claimed == 0 {
                break;
            }
            assert!(
                Instant::now() < handed_back,
                "{still_claimed} entries of the released sender are still claimed"
            );
            tokio::time::sleep(ms(20)).await;
        }
        tokio::time::sleep(ms(100)).await;
        let at_release = sent_by(&released);
        // At 2/s the old holder would have sent three more by now.
        tokio::time::sleep(ms(1_500)).await;
        assert_eq!(
            sent_by(&released),
            at_release,
            "sent after giving the sender up"
        );
        assert!(at_release < 8, "the release came before the work was done");
        // The other engine leaves: the sender is taken again and everything goes once.
        db_conn
            .execute_raw(sea_orm::Statement::from_string(
                backend,
                "DELETE FROM delivery_workers WHERE worker_id = 'wrk_other'",
            ))
            .await
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while outbox_len(&router).await > 0 {
            assert!(Instant::now() < deadline, "the outbox did not drain");
            tokio::time::sleep(ms(50)).await;
        }
        stop.send(true).unwrap();
        task.await.unwrap();
        let mut sent = sent_ids(&fake);
        assert_eq!(sent.len(), 16);
        sent.sort();
        sent.dedup();
        assert_eq!(sent.len(), 16, "each message sent once");
    })
    .await;
}

/// A process claims for one sender only what the sender's rate sends in half a lease, so
/// no claimed entry waits for its turn until its lease runs out.
#[tokio::test]
async fn a_slow_sender_is_claimed_only_as_far_as_its_rate_reaches() {
    on_each_backend(|db| async move {
        let fake = FakeAdapter::new();
        let key = CredentialCipher::generate_key();
        let cfg = DeliveryConfig {
            lease: Duration::from_secs(4),
            poll_interval: ms(10),
            ..quick()
        };
        let router = router_on(&db, &fake, &key, cfg).await;
        let tenant = router.tenants().create("acme").await.unwrap().tenant_id;
        connect_fake(&router, &tenant, BUSINESS, Some(5)).await;
        for i in 0..40 {
            router
                .send(&tenant, template_to(&format!("+316124{i:05}")))
                .await
                .unwrap();
        }
        // 5/s for half of a 4-second lease: 10 at a time.
        let cap = 10;
        let (stop, task) = engine(&router);
        let mut most = 0;
        let until = Instant::now() + Duration::from_millis(2_500);
        while Instant::now() < until {
            let claimed = outbox::Entity::find()
                .filter(outbox::Column::LockedBy.is_not_null())
                .count(router.store().conn())
                .await
                .unwrap();
            most = most.max(claimed);
            tokio::time::sleep(ms(20)).await;
        }
        stop.send(true).unwrap();
        task.await.unwrap();
        assert!(most > 0, "the engine claimed something");
        assert!(
            most <= cap,
            "{most} entries claimed at once for a sender capped at {cap}"
        );
        let mut sent = sent_ids(&fake);
        let n = sent.len();
        sent.sort();
        sent.dedup();
        assert_eq!(sent.len(), n, "nothing sent twice");
    })
    .await;
}

fn provider_status(provider_id: &str, status: MessageStatus) -> StatusUpdate {
    StatusUpdate {
        provider_message_id: provider_id.into(),
        message_ref: None,
        status,
        timestamp: Utc::now(),
        error: None,
        recipient: None,
        pricing: None,
    }
}

#[tokio::test]
async fn reconciliation_asks_the_provider_about_messages_stuck_without_an_outcome() {
    on_each_backend(|db| async move {
        let cfg = DeliveryConfig {
            reconcile_after: ms(600),
            ..quick()
        };
        let env = setup_with(&db, FakeAdapter::new(), cfg).await;
        person_writes(&env, PERSON, "in-1", "hi").await;
        let a = env
            .router
            .send(&env.tenant, text_to(PERSON, "a"))
            .await
            .unwrap();
        let b = env
            .router
            .send(&env.tenant, text_to(PERSON, "b"))
            .await
            .unwrap();
        let c = env
            .router
            .send(&env.tenant, text_to(PERSON, "c"))
            .await
            .unwrap();
        drain(&env.router).await;
        env.fake.set_provider_status(
            "fake-1",
            provider_status("fake-1", MessageStatus::Delivered),
        );
        env.fake
            .set_provider_status("fake-2", provider_status("fake-2", MessageStatus::Queued));
        // c: the provider knows nothing (None).

        // Too recent: nobody is asked yet.
        assert_eq!(env.router.reconciler().reconcile().await.unwrap(), 0);
        assert_eq!(message(&env.router, &a.id).await.status, "accepted");

        tokio::time::sleep(ms(650)).await;
        assert_eq!(
            env.router.reconciler().reconcile().await.unwrap(),
            1,
            "only a advanced"
        );
        assert_eq!(message(&env.router, &a.id).await.status, "delivered");
        assert_eq!(
            message(&env.router, &b.id).await.status,
            "accepted",
            "no regression"
        );
        assert_eq!(message(&env.router, &c.id).await.status, "accepted");
        // Asked at most once per period; a later answer is picked up by a later pass.
        env.fake
            .set_provider_status("fake-3", provider_status("fake-3", MessageStatus::Read));
        assert_eq!(env.router.reconciler().reconcile().await.unwrap(), 0);
        tokio::time::sleep(ms(650)).await;
        assert_eq!(env.router.reconciler().reconcile().await.unwrap(), 1);
        assert_eq!(message(&env.router, &c.id).await.status, "read");
        // Final or delivered messages are not asked about again.
        env.fake
            .set_provider_status("fake-1", provider_status("fake-1", MessageStatus::Read));
        tokio::time::sleep(ms(650)).await;
        assert_eq!(env.router.reconciler().reconcile().await.unwrap(), 0);
        assert_eq!(message(&env.router, &a.id).await.status, "delivered");
    })
    .await;
}

#[tokio::test]
async fn the_running_engine_reconciles_on_its_own() {
    on_each_backend(|db| async move {
        let cfg = DeliveryConfig {
            reconcile_after: ms(100),
            reconcile_every: ms(50),
            poll_interval: ms(10),
            ..quick()
        };
        let env = setup_with(&db, FakeAdapter::new(), cfg).await;
        person_writes(&env, PERSON, "in-1", "hi").await;
        env.fake.set_provider_status(
            "fake-1",
            provider_status("fake-1", MessageStatus::Delivered),
        );
        let (stop, task) = engine(&env.router);
        let a = env
            .router
            .send(&env.tenant, text_to(PERSON, "a"))
            .await
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while message(&env.router, &a.id).await.status != "delivered" {
            assert!(Instant::now() < deadline, "not reconciled");
            tokio::time::sleep(ms(20)).await;
        }
        stop.send(true).unwrap();
        task.await.unwrap();
    })
    .await;
}

/// A product endpoint on loopback: records every POST, answers 500 to the first `fail`.
struct Receiver {
    url: String,
    got: Arc<std::sync::Mutex<Vec<(bool, http::HeaderMap, String)>>>,
    _task: tokio::task::JoinHandle<()>,
}

async fn receiver(fail: usize) -> Receiver {
    let got: Arc<std::sync::Mutex<Vec<(bool, http::HeaderMap, String)>>> = Arc::default();
    let state = got.clone();
    let app = axum::Router::new().route(
        "/events",
        axum::routing::post(move |headers: http::HeaderMap, body: String| {
            let state = state.clone();
            async move {
                let mut got = state.lock().unwrap();
                let ok = got.len() >= fail;
                got.push((ok, headers, body));
                if ok {
                    http::StatusCode::NO_CONTENT
                } else {
                    http::StatusCode::INTERNAL_SERVER_ERROR
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/events", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    Receiver {
        url,
        got,
        _task: task,
    }
}

fn hmac_hex(secret: &str, body: &str) -> String {
    use hmac::{KeyInit, Mac};
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[tokio::test]
async fn events_reach_the_tenant_signed_in_order_and_despite_failures() {
    on_each_backend(|db| async move {
        let cfg = DeliveryConfig {
            poll_interval: ms(10),
            ..quick()
        };
        let env = setup_with(&db, FakeAdapter::new(), cfg).await;
        let product = receiver(2).await;
        let secret = env
            .router
            .notifications()
            .set_notify_url(&env.tenant, Some(&product.url))
            .await
            .unwrap()
            .expect("a secret");
        assert!(
            env.router
                .notifications()
                .set_notify_url(&env.tenant, Some("ftp://x"))
                .await
                .is_err()
        );
        // Queued in the event's own transaction, before any engine runs.
        person_writes(&env, PERSON, "in-1", "hi").await;
        let queued = env
            .router
            .store()
            .conn()
            .query_one_raw(sea_orm::Statement::from_string(
                env.router.store().backend(),
                "SELECT count(*) AS n FROM notifications",
            ))
            .await
            .unwrap()
            .unwrap()
            .try_get::<i64>("", "n")
            .unwrap();
        assert_eq!(queued, 1);

        let a = env
            .router
            .send(&env.tenant, text_to(PERSON, "a"))
            .await
            .unwrap();
        let (stop, task) = engine(&env.router);
        // message_received, accepted, delivered, read: 4 events, 2 failures first.
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut statuses_sent = false;
        loop {
            let ok = product.got.lock().unwrap().iter().filter(|g| g.0).count();
            if ok >= 4 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "only {ok} notifications acknowledged"
            );
            if !statuses_sent
                && message(&env.router, &a.id)
                    .await
                    .provider_message_id
                    .is_some()
            {
                statuses_sent = true;
                for (i, st) in [MessageStatus::Delivered, MessageStatus::Read]
                    .iter()
                    .enumerate()
                {
                    env.router
                        .receive_webhook(
                            "fake",
                            webhook(&[status_event(&format!("st-{i}"), "fake-1", None, *st)]),
                        )
                        .await
                        .unwrap();
                }
            }
            tokio::time::sleep(ms(10)).await;
        }
        stop.send(true).unwrap();
        task.await.unwrap();

        let got = product.got.lock().unwrap().clone();
        let mut acknowledged = Vec::new();
        for (ok, headers, body) in &got {
            let sig = headers
                .get("x-switchboard-signature")
                .and_then(|v| v.to_str().ok())
                .unwrap();
            assert_eq!(
                sig,
                hmac_hex(&secret, body),
                "signed with the tenant's secret"
            );
            assert_ne!(hmac_hex("another secret", body), sig);
            let v: serde_json::Value = serde_json::from_str(body).unwrap();
            assert_eq!(
                headers
                    .get("x-switchboard-event-id")
                    .and_then(|h| h.to_str().ok()),
                v["id"].as_str()
            );
            if *ok {
                acknowledged.push(v);
            }
        }
        let kinds: Vec<String> = acknowledged
            .iter()
            .map(|v| {
                format!(
                    "{}:{}",
                    v["type"].as_str().unwrap(),
                    v["status"].as_str().unwrap_or("")
                )
            })
            .collect();
        assert_eq!(
            kinds,
            vec![
                "message_received:",
                "status_changed:accepted",
                "status_changed:delivered",
                "status_changed:read"
            ],
            "one conversation, in order, each once"
        );
        // The two failed POSTs were the first event, retried until acknowledged.
        assert_eq!(got.len(), 6);
        assert_eq!(got[0].2, got[2].2);
    })
    .await;
}

mod real_binary {
    //! The real `switchboard serve` against FakeTwilio: crash safety and scale-out.

    use std::collections::HashMap;

    use switchboard_twilio::testing::{
        FakeTwilio, RecordedRequest, TEST_ACCOUNT_SID, TEST_AUTH_TOKEN,
    };
    use switchboard_twilio::{TwilioConfig, TwilioWhatsApp};

    use super::*;
    use crate::support::binary::Server;

    pub(super) const TEMPLATE_SID: &str = "HXb5b62575e6e4ff6129ad7c8efe1f983e";

    /// The test process's router: it connects accounts and accepts messages, never delivers.
    pub(super) async fn producer(db: &TestDb, key: &str, twilio: &FakeTwilio) -> Router {
        Router::builder(
            db.store().await,
            CredentialCipher::from_base64(key).unwrap(),
        )
        .adapter(Arc::new(TwilioWhatsApp::new(TwilioConfig {
            api_base: twilio.base_url(),
            public_url: "http://unused.invalid".into(),
            ..TwilioConfig::default()
        })))
        .build()
    }

    pub(super) fn template(to: String, from: &str) -> SendRequest {
        SendRequest {
            to,
            from: Some(from.into()),
            content: Content {
                template: Some(Template {
                    name: TEMPLATE_SID.into(),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    /// Our message id, from the StatusCallback URL the server gave Twilio.
    pub(super) fn message_id(r: &RecordedRequest) -> Option<String> {
        let cb = r.form_value("StatusCallback")?;
        Some(cb.rsplit('/').next()?.to_owned())
    }

    pub(super) fn message_posts(twilio: &FakeTwilio) -> Vec<RecordedRequest> {
        twilio
            .requests()
            .into_iter()
            .filter(|r| r.method == "POST" && r.path.ends_with("/Messages.json"))
            .collect()
    }

    pub(super) async fn wait_outbox_empty(router: &Router, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let left = outbox_len(router).await;
            if left == 0 {
                return;
            }
            assert!(Instant::now() < deadline, "{left} messages still queued");
            tokio::time::sleep(ms(100)).await;
        }
    }

    /// Crash safety. Policy: a message accepted by `send()` is delivered after a crash. An
    /// entry claimed by the dead process is taken over when its lease expires. Sends whose
    /// request reached the provider but whose outcome was not recorded before the crash are
    /// sent again after the in-doubt grace when no status proved them (at-least-once): the
    /// duplicates are bounded by the sends in flight at the crash.
    #[tokio::test]
    async fn a_crash_mid_delivery_loses_nothing_and_duplicates_at_most_the_sends_in_flight() {
        let db = TestDb::sqlite().await;
        let dir = db.dir().unwrap().to_path_buf();
        let key = CredentialCipher::generate_key();
        let twilio = FakeTwilio::start().await;
        twilio.set_delay(ms(3));
        let router = producer(&db, &key, &twilio).await;
        let tenant = router.tenants().create("acme").await.unwrap().tenant_id;
        router
            .accounts().connect(
                &tenant,
                "twilio-whatsapp",
                BUSINESS,
                &serde_json::json!({"account_sid": TEST_ACCOUNT_SID, "auth_token": TEST_AUTH_TOKEN}),
                Some(400),
            )
            .await
            .unwrap();
        const N: usize = 1000;
        let mut ids = Vec::with_capacity(N);
        for i in 0..N {
            // 200 people, 5 messages each.
            let to = format!("+316123{:05}", i % 200);
            ids.push(
                router
                    .send(&tenant, template(to, BUSINESS))
                    .await
                    .unwrap()
                    .id,
            );
        }
        let base = twilio.base_url();
        let envs = [
            ("SWITCHBOARD_ENCRYPTION_KEY", key.as_str()),
            ("SWITCHBOARD_TWILIO_API_BASE", base.as_str()),
            ("SWITCHBOARD_DELIVERY_LEASE_MS", "1000"),
            // FakeTwilio sends no status callbacks, so nothing proves a send in doubt.
            ("SWITCHBOARD_DELIVERY_IN_DOUBT_GRACE_MS", "500"),
            ("SWITCHBOARD_LOG", "warn"),
        ];
        let server = Server::start(&db.url, &dir, &envs).await;
        let deadline = Instant::now() + Duration::from_secs(60);
        while message_posts(&twilio).len() < N / 3 {
            assert!(Instant::now() < deadline, "delivery did not start");
            tokio::time::sleep(ms(5)).await;
        }
        server.kill().await;
        // Requests the dead process wrote before dying may still be read by the fake.
        let mut at_kill = message_posts(&twilio).len();
        loop {
            tokio::time::sleep(ms(200)).await;
            let now = message_posts(&twilio).len();
            if now == at_kill {
                break;
            }
            at_kill = now;
        }
        let queued_at_kill = outbox_len(&router).await;
        assert!(queued_at_kill > 0, "killed too late to prove anything");
        let server = Server::start(&db.url, &dir, &envs).await;
        wait_outbox_empty(&router, Duration::from_secs(120)).await;
        let status = server.stop().await;
        assert!(status.success(), "{status:?}");

        let mut times: HashMap<String, usize> = HashMap::new();
        for r in message_posts(&twilio) {
            *times
                .entry(message_id(&r).expect("StatusCallback"))
                .or_default() += 1;
        }
        let missing: Vec<&String> = ids.iter().filter(|id| !times.contains_key(*id)).collect();
        assert!(missing.is_empty(), "{} never reached Twilio", missing.len());
        assert_eq!(times.len(), N, "nothing but our messages");
        let duplicates: usize = times.values().map(|n| n - 1).sum();
        let batch = usize::try_from(DeliveryConfig::default().batch).unwrap()
            * switchboard_router::outbound::delivery::ROUNDS_IN_FLIGHT;
        eprintln!(
            "crash test: {at_kill} requests before SIGKILL, {queued_at_kill} still queued, \
             {duplicates} sent twice (bound: {batch} in flight)"
        );
        assert!(duplicates <= batch, "{duplicates} duplicates");
        // Only the crash may cause a duplicate: each one's first request came before the kill
        // and its second after the restart, and no message went twice after the restart.
        let posts = message_posts(&twilio);
        for (id, n) in times.iter().filter(|(_, n)| **n > 1) {
            assert_eq!(*n, 2, "{id} sent {n} times");
            let first = posts
                .iter()
                .position(|r| message_id(r).as_deref() == Some(id.as_str()))
                .unwrap();
            assert!(first < at_kill, "{id} was first sent after the restart");
        }
        let failed = messages::Entity::find()
            .filter(messages::Column::Status.eq("failed"))
            .count(router.store().conn())
            .await
            .unwrap();
        assert_eq!(failed, 0);
    }

    /// The most requests one sender made in any 1-second window (sliding, inclusive).
    pub(super) fn busiest_second(mut times_ms: Vec<i64>) -> usize {
        times_ms.sort_unstable();
        let mut best = 0;
        let mut lo = 0;
        for hi in 0..times_ms.len() {
            while times_ms[hi] - times_ms[lo] > 1_000 {
                lo += 1;
            }
            best = best.max(hi - lo + 1);
        }
        best
    }

    /// Scale-out. Policy: each sender is delivered by one process at a time (its sender
    /// lease), so that process's limiter is the sender's whole rate; outbox leases make every
    /// message go once. PostgreSQL only (SQLite is one process).
    #[tokio::test]
    async fn two_processes_on_one_postgres_deliver_each_message_once_within_each_senders_rate() {
        if !crate::support::postgres_configured() {
            return;
        }
        const SENDERS: usize = 4;
        const PER_SENDER: usize = 500;
        const RATE: i32 = 20;
        let db = crate::support::fresh_db(crate::support::Backend::Postgres).await;
        let dir = tempfile::tempdir().unwrap();
        let key = CredentialCipher::generate_key();
        let twilio = FakeTwilio::start().await;
        twilio.set_delay(ms(2));
        let router = producer(&db, &key, &twilio).await;
        let tenant = router.tenants().create("acme").await.unwrap().tenant_id;
        let mut senders = Vec::new();
        for s in 0..SENDERS {
            let sid = format!("AC{:032}", 100 + s);
            let token = format!("token-{s}");
            twilio.add_account(&sid, &token);
            let number = format!("+1415523{:04}", 8000 + s);
            router
                .accounts()
                .connect(
                    &tenant,
                    "twilio-whatsapp",
                    &number,
                    &serde_json::json!({"account_sid": sid, "auth_token": token}),
                    Some(RATE),
                )
                .await
                .unwrap();
            senders.push((sid, number));
        }
        // Accepted concurrently, senders interleaved; 100 people per sender.
        let mut tasks = Vec::new();
        for t in 0..8 {
            let router = router.clone();
            let tenant = tenant.clone();
            let senders = senders.clone();
            tasks.push(tokio::spawn(async move {
                let mut ids = Vec::new();
                for i in (t..SENDERS * PER_SENDER).step_by(8) {
                    let (_, from) = &senders[i % SENDERS];
                    let to = format!("+316124{:05}", i % 400);
                    ids.push(router.send(&tenant, template(to, from)).await.unwrap().id);
                }
                ids
            }));
        }
        let mut ids = Vec::new();
        for t in tasks {
            ids.extend(t.await.unwrap());
        }
        let base = twilio.base_url();
        let envs = [
            ("SWITCHBOARD_ENCRYPTION_KEY", key.as_str()),
            ("SWITCHBOARD_TWILIO_API_BASE", base.as_str()),
            ("SWITCHBOARD_DELIVERY_LEASE_MS", "3000"),
            ("SWITCHBOARD_LOG", "warn"),
        ];
        let started = Instant::now();
        let (a, b) = tokio::join!(
            Server::start(&db.url, dir.path(), &envs),
            Server::start(&db.url, dir.path(), &envs)
        );
        // Watch who holds the senders while they work: both processes must take part.
        let mut holders = std::collections::BTreeSet::new();
        let deadline = Instant::now() + Duration::from_secs(180);
        while outbox_len(&router).await > 0 {
            assert!(Instant::now() < deadline, "delivery did not finish");
            let rows = router
                .store()
                .conn()
                .query_all_raw(sea_orm::Statement::from_string(
                    router.store().backend(),
                    "SELECT holder FROM sender_leases WHERE holder <> ''",
                ))
                .await
                .unwrap();
            for r in rows {
                holders.insert(r.try_get::<String>("", "holder").unwrap());
            }
            tokio::time::sleep(ms(200)).await;
        }
        let took = started.elapsed();
        assert_eq!(holders.len(), 2, "both processes delivered: {holders:?}");
        assert!(a.stop().await.success());
        assert!(b.stop().await.success());

        let mut times: HashMap<String, usize> = HashMap::new();
        for r in message_posts(&twilio) {
            *times
                .entry(message_id(&r).expect("StatusCallback"))
                .or_default() += 1;
        }
        let missing = ids.iter().filter(|id| !times.contains_key(*id)).count();
        let twice: Vec<(&String, &usize)> = times.iter().filter(|(_, n)| **n > 1).collect();
        assert_eq!(missing, 0, "messages lost");
        assert!(twice.is_empty(), "sent more than once: {twice:?}");
        assert_eq!(times.len(), SENDERS * PER_SENDER);

        // Per-sender rate, from when each request was issued (send_attempts.started_at,
        // written by whichever process sent it; one machine, one clock).
        let account_of: HashMap<String, String> = messages::Entity::find()
            .all(router.store().conn())
            .await
            .unwrap()
            .into_iter()
            .map(|m| (m.id, m.account_id))
            .collect();
        let mut by_sender: HashMap<String, Vec<i64>> = HashMap::new();
        for a in send_attempts::Entity::find()
            .all(router.store().conn())
            .await
            .unwrap()
        {
            by_sender
                .entry(account_of[&a.message_id].clone())
                .or_default()
                .push(a.started_at);
        }
        assert_eq!(by_sender.len(), SENDERS);
        let limit = usize::try_from(RATE).unwrap();
        for (account, times) in by_sender {
            assert_eq!(times.len(), PER_SENDER);
            let busiest = busiest_second(times);
            eprintln!(
                "scale-out: sender {account}: busiest 1-second window {busiest} sends (limit {limit})"
            );
            // +1: a window with both ends inclusive holds rate+1 evenly spaced sends.
            assert!(
                busiest <= limit + 1,
                "{account}: {busiest} sends in one second"
            );
        }
        let per_second = (SENDERS * PER_SENDER) as f64 / took.as_secs_f64();
        eprintln!(
            "scale-out: {} messages by 2 processes in {took:?} ({per_second:.1}/s; ideal {}/s)",
            SENDERS * PER_SENDER,
            SENDERS * limit
        );
        drop(router);
        db.cleanup().await;
    }
}

#[tokio::test]
async fn a_failed_outcome_in_a_batch_does_not_lose_the_other_receipts() {
    let db = TestDb::sqlite().await;
    let env = setup(&db).await;
    let mut ids = Vec::new();
    for i in 0..10 {
        let to = format!("+3161234{:04}", 5000 + i);
        ids.push(
            env.router
                .send(&env.tenant, template_to(&to))
                .await
                .unwrap()
                .id,
        );
    }
    // Recording the outcome of one message fails (its outbox row cannot be removed).
    let bad = ids[4].clone();
    env.router
        .store()
        .conn()
        .execute_unprepared(&format!(
            "CREATE TRIGGER fail_one BEFORE DELETE ON outbox WHEN old.message_id = '{bad}' \
             BEGIN SELECT RAISE(ABORT, 'injected failure'); END"
        ))
        .await
        .unwrap();
    assert_eq!(env.router.delivery().deliver_due().await.unwrap(), 10);
    assert_eq!(sent_ids(&env.fake).len(), 10, "each was sent once");
    for id in &ids {
        let m = message(&env.router, id).await;
        let attempts = send_attempts::Entity::find()
            .filter(send_attempts::Column::MessageId.eq(id.as_str()))
            .count(env.router.store().conn())
            .await
            .unwrap();
        if *id == bad {
            assert_eq!(m.provider_message_id, None);
            assert_eq!(attempts, 0, "its attempt rolled back with its outcome");
        } else {
            assert!(m.provider_message_id.is_some(), "{id} lost its receipt");
            assert_eq!(m.status, "accepted");
            assert_eq!(attempts, 1);
        }
    }
    // Only the failed one waits (leased) for another round.
    assert_eq!(outbox_len(&env.router).await, 1);
}

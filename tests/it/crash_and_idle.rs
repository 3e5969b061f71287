//! After a crash, a send that may have reached the provider waits for a status proving it
//! before it is sent again; an idle server writes nothing. On SQLite and PostgreSQL.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use switchboard_core::testing::FakeAdapter;
use switchboard_core::{Content, MessageStatus};
use switchboard_router::crypto::CredentialCipher;
use switchboard_router::store::entity::{messages, outbox};
use switchboard_router::{DeliveryConfig, Router, SendRequest};

use crate::support::fake::{BUSINESS, SECRET, inbound_from, signed, status};
use crate::support::{TestDb, on_each_backend};

const ALICE: &str = "+31612345678";
const BOB: &str = "+31612345679";
const GRACE: Duration = Duration::from_millis(1_500);

async fn router_on(db: &TestDb, fake: &FakeAdapter, cfg: DeliveryConfig) -> (Router, String) {
    let router = Router::builder(
        db.store().await,
        CredentialCipher::from_base64(&CredentialCipher::generate_key()).unwrap(),
    )
    .adapter(Arc::new(fake.clone()))
    .delivery(cfg)
    .build();
    let tenant = router.create_tenant("acme").await.unwrap().tenant_id;
    router
        .connect_account(
            &tenant,
            "fake",
            BUSINESS,
            &FakeAdapter::credentials(SECRET),
            None,
        )
        .await
        .unwrap();
    (router, tenant)
}

async fn send_text(router: &Router, tenant: &str, to: &str, key: &str) -> String {
    router
        .receive_webhook("fake", signed(&[inbound_from(key, to, "hi")]))
        .await
        .unwrap();
    router
        .send(
            tenant,
            SendRequest {
                to: to.into(),
                content: Content::text("your order shipped"),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .id
}

/// What a process killed between claiming and recording an outcome leaves behind: its
/// entries still leased to it, the lease expired.
async fn leave_as_a_killed_process_would(router: &Router) {
    outbox::Entity::update_many()
        .col_expr(outbox::Column::LockedBy, Expr::value("dead-process"))
        .col_expr(
            outbox::Column::LockedUntil,
            Expr::value(switchboard_router::ids::now_ms() - 1),
        )
        .exec(router.store().conn())
        .await
        .unwrap();
}

fn sends_of(fake: &FakeAdapter, id: &str) -> usize {
    fake.sent().iter().filter(|(_, m)| m.id == id).count()
}

async fn in_outbox(router: &Router, id: &str) -> bool {
    outbox::Entity::find()
        .filter(outbox::Column::MessageId.eq(id))
        .count(router.store().conn())
        .await
        .unwrap()
        > 0
}

/// Policy (README "Delivery", crashes): a message whose send may have begun before a crash
/// is not sent again at once; a status naming it within the grace proves the provider has
/// it (and it is never resent); without one it is sent again after the grace, once.
#[tokio::test]
async fn a_send_in_doubt_after_a_crash_waits_for_a_status_before_it_is_resent() {
    on_each_backend(|db| async move {
        let fake = FakeAdapter::new();
        let cfg = DeliveryConfig {
            in_doubt_grace: GRACE,
            ..DeliveryConfig::default()
        };
        let (router, tenant) = router_on(&db, &fake, cfg).await;
        let reached = send_text(&router, &tenant, ALICE, "in-a").await;
        let lost = send_text(&router, &tenant, BOB, "in-b").await;
        leave_as_a_killed_process_would(&router).await;

        let recovered = Instant::now();
        router.deliver_due().await.unwrap();
        router.deliver_due().await.unwrap();
        assert!(fake.sent().is_empty(), "nothing is resent at once");
        assert!(in_outbox(&router, &reached).await && in_outbox(&router, &lost).await);

        // The provider reports the first one, echoing our id (Twilio's callback URL, Meta's
        // `biz_opaque_callback_data`), under the id it gave it before the crash.
        router
            .receive_webhook(
                "fake",
                signed(&[status(
                    "st-1",
                    "fake-before-crash",
                    Some(&reached),
                    MessageStatus::Delivered,
                )]),
            )
            .await
            .unwrap();
        assert!(
            !in_outbox(&router, &reached).await,
            "the status proves it arrived"
        );
        let row = messages::Entity::find_by_id(reached.clone())
            .one(router.store().conn())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (row.status.as_str(), row.provider_message_id.as_deref()),
            ("delivered", Some("fake-before-crash"))
        );

        // The other waits out the grace, then goes once.
        let deadline = Instant::now() + Duration::from_secs(20);
        while in_outbox(&router, &lost).await {
            assert!(Instant::now() < deadline, "the message was never resent");
            router.deliver_due().await.unwrap();
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(
            recovered.elapsed() >= GRACE,
            "resent before the grace was over"
        );
        for _ in 0..3 {
            router.deliver_due().await.unwrap();
        }
        assert_eq!(sends_of(&fake, &lost), 1, "resent exactly once");
        assert_eq!(sends_of(&fake, &reached), 0, "never resent");
        let row = messages::Entity::find_by_id(lost.clone())
            .one(router.store().conn())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(row.status, "accepted");
    })
    .await;
}

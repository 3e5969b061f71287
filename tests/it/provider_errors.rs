//! What the providers' error answers do to a send: the real Twilio and Meta adapters against
//! their fakes; permanent errors fail at once with the provider's code, rate limits are
//! retried. On SQLite and PostgreSQL.

use std::time::Duration;

use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use switchboard_meta_cloud::testing as meta;
use switchboard_router::SendRequest;
use switchboard_router::store::entity::{messages, outbox};
use switchboard_twilio::testing as twilio;

use crate::support::fake::template_to;
use crate::support::on_each_backend;
use crate::support::providers::{
    PERSON, graph_sends, meta_inbound, open_window_via_twilio, receive_meta, send_text, site,
    twilio_sends,
};

#[tokio::test]
async fn twilio_rejected_number_fails_with_21211_and_is_not_retried() {
    on_each_backend(|db| async move {
        let e = site(&db).await;
        open_window_via_twilio(&e).await;
        e.twilio
            .respond_error_next(400, 21211, "The 'To' number is not a valid phone number.");
        let accepted = e
            .router
            .send(&e.tenant, send_text(PERSON, "twilio-whatsapp", "hi"))
            .await
            .unwrap();
        e.router.delivery().deliver_due().await.unwrap();
        e.router.delivery().deliver_due().await.unwrap();
        let m = messages::Entity::find_by_id(accepted.id)
            .one(e.router.store().conn())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(m.status, "failed");
        assert_eq!(m.error_code.as_deref(), Some("21211"));
        assert_eq!(
            twilio_sends(&e.twilio),
            1,
            "a permanent error is not retried"
        );
        assert_eq!(
            outbox::Entity::find()
                .count(e.router.store().conn())
                .await
                .unwrap(),
            0
        );
    })
    .await;
}

#[tokio::test]
async fn twilio_429_is_retried_after_retry_after() {
    on_each_backend(|db| async move {
        let e = site(&db).await;
        open_window_via_twilio(&e).await;
        e.twilio.respond_next(
            429,
            twilio::error_json(429, 20429, "Too Many Requests"),
            &[("Retry-After", "1")],
        );
        let accepted = e
            .router
            .send(&e.tenant, send_text(PERSON, "twilio-whatsapp", "hi"))
            .await
            .unwrap();
        e.router.delivery().deliver_due().await.unwrap();
        let m = messages::Entity::find_by_id(accepted.id.clone())
            .one(e.router.store().conn())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(m.status, "queued", "still waiting after the 429");
        let entry = outbox::Entity::find_by_id(accepted.id.clone())
            .one(e.router.store().conn())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(entry.attempts, 1);
        assert!(
            entry.next_attempt_at > switchboard_router::ids::now_ms() + 500,
            "Retry-After honoured"
        );
        assert_eq!(
            e.router.delivery().deliver_due().await.unwrap(),
            0,
            "not before Retry-After"
        );
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert_eq!(e.router.delivery().deliver_due().await.unwrap(), 1);
        let m = messages::Entity::find_by_id(accepted.id)
            .one(e.router.store().conn())
            .await
            .unwrap()
            .unwrap();
        assert_ne!(m.status, "queued");
        assert!(m.provider_message_id.is_some());
        assert_eq!(twilio_sends(&e.twilio), 2);
    })
    .await;
}

#[tokio::test]
async fn meta_131047_fails_a_free_form_send_without_retry() {
    on_each_backend(|db| async move {
        let e = site(&db).await;
        let body = meta_inbound("16505551234", "wamid.IN2", "hi");
        receive_meta(&e.router, &body).await;
        e.graph
            .respond_next(400, meta::error_envelope(131047, "Re-engagement message"));
        let id = e
            .router
            .send(&e.tenant, send_text(PERSON, "meta-whatsapp", "hi"))
            .await
            .unwrap()
            .id;
        e.router.delivery().deliver_due().await.unwrap();
        e.router.delivery().deliver_due().await.unwrap();
        let m = messages::Entity::find_by_id(id)
            .one(e.router.store().conn())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(m.status, "failed");
        assert_eq!(m.error_code.as_deref(), Some("131047"));
        assert_eq!(graph_sends(&e.graph), 1, "not retried");
    })
    .await;
}

#[tokio::test]
async fn meta_130429_is_retried() {
    on_each_backend(|db| async move {
        let e = site(&db).await;
        let body = meta_inbound("16505551234", "wamid.IN3", "hi");
        receive_meta(&e.router, &body).await;
        e.graph
            .respond_next(400, meta::error_envelope(130429, "Rate limit hit"));
        let id = e
            .router
            .send(
                &e.tenant,
                SendRequest {
                    channel: Some("meta-whatsapp".into()),
                    ..template_to(PERSON)
                },
            )
            .await
            .unwrap()
            .id;
        e.router.delivery().deliver_due().await.unwrap();
        let entry = outbox::Entity::find_by_id(id.clone())
            .one(e.router.store().conn())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(entry.attempts, 1, "kept for a retry");
        tokio::time::sleep(Duration::from_millis(600)).await;
        e.router.delivery().deliver_due().await.unwrap();
        let m = messages::Entity::find_by_id(id)
            .one(e.router.store().conn())
            .await
            .unwrap()
            .unwrap();
        assert!(
            m.provider_message_id.is_some(),
            "sent on the retry: {}",
            m.status
        );
        assert_eq!(graph_sends(&e.graph), 2);
        let failed_in_outbox = outbox::Entity::find()
            .filter(outbox::Column::Attempts.gt(0))
            .count(e.router.store().conn())
            .await
            .unwrap();
        assert_eq!(failed_in_outbox, 0);
    })
    .await;
}

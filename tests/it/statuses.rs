//! Delivery statuses: applied even when they come before the send's answer, never moved
//! backwards, read from Twilio's status callbacks and Meta's notifications in any order. On
//! SQLite and PostgreSQL.

use sea_orm::EntityTrait;
use switchboard_core::MessageStatus;
use switchboard_meta_cloud::testing as meta;
use switchboard_router::store::entity::messages;
use switchboard_twilio::testing::{self as twilio, TEST_ACCOUNT_SID, TEST_AUTH_TOKEN};

use crate::support::fake::{inbound, phone, receive, status, text_to};
use crate::support::providers::{
    PERSON, PNID, PUBLIC, TWILIO_NUMBER, TWILIO_PATH, meta_inbound, open_window_via_twilio,
    receive_meta, send_text, site, stored,
};
use crate::support::{fake_setup, on_each_backend};

#[tokio::test]
async fn a_status_that_arrives_before_the_send_response_is_applied_when_the_id_is_known() {
    on_each_backend(|db| async move {
        let (router, _fake, tenant) = fake_setup(&db).await;
        receive(&router, &[inbound("in", phone("+31612345678"), "hi")]).await;
        let a = router
            .send(&tenant, text_to("+31612345678", "one"))
            .await
            .unwrap();
        // The provider reports "delivered" for its id fake-1 before we recorded it.
        receive(
            &router,
            &[status("early", "fake-1", None, MessageStatus::Delivered)],
        )
        .await;
        router.delivery().deliver_due().await.unwrap();
        let row = messages::Entity::find_by_id(a.id)
            .one(router.store().conn())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(row.status, "delivered");
    })
    .await;
}

#[tokio::test]
async fn twilio_status_callbacks_read_sent_delivered_end_read() {
    on_each_backend(|db| async move {
        let e = site(&db).await;
        open_window_via_twilio(&e).await;
        let accepted = e
            .router
            .send(
                &e.tenant,
                send_text(PERSON, "twilio-whatsapp", "your order shipped"),
            )
            .await
            .unwrap();
        e.router.delivery().deliver_due().await.unwrap();
        let req = e
            .twilio
            .requests()
            .into_iter()
            .find(|r| r.path.ends_with("/Messages.json"))
            .unwrap();
        let callback = req.form_value("StatusCallback").unwrap().to_owned();
        assert_eq!(
            callback,
            format!("{PUBLIC}{TWILIO_PATH}/status/{}", accepted.id)
        );
        let sid = e.twilio.created_message_sids()[0].clone();
        let path = callback.strip_prefix(PUBLIC).unwrap().to_owned();
        for status in ["read", "sent", "delivered"] {
            let form =
                twilio::status_form(TEST_ACCOUNT_SID, TWILIO_NUMBER, PERSON, &sid, status, None);
            let req = twilio::signed_webhook_request(PUBLIC, &path, None, TEST_AUTH_TOKEN, &form);
            let ack = e
                .router
                .receive_webhook("twilio-whatsapp", req)
                .await
                .unwrap();
            assert_eq!(ack.reply.content_type, "text/xml");
        }
        let m = messages::Entity::find_by_id(accepted.id)
            .one(e.router.store().conn())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(m.status, "read");
        assert_eq!(m.provider_message_id.as_deref(), Some(sid.as_str()));
    })
    .await;
}

#[tokio::test]
async fn meta_statuses_in_shuffled_order_end_at_the_highest_for_each_message() {
    on_each_backend(|db| async move {
        let e = site(&db).await;
        let body = meta_inbound("16505551234", "wamid.IN1", "hi");
        receive_meta(&e.router, &body).await;
        let mut ids = Vec::new();
        for i in 0..4 {
            ids.push(
                e.router
                    .send(
                        &e.tenant,
                        send_text(PERSON, "meta-whatsapp", &format!("m{i}")),
                    )
                    .await
                    .unwrap()
                    .id,
            );
        }
        while e.router.delivery().deliver_due().await.unwrap() > 0 {}
        let rows = stored(&e.router).await;
        let wamid = |id: &str| {
            rows.iter()
                .find(|m| m.id == id)
                .unwrap()
                .provider_message_id
                .clone()
                .unwrap()
        };
        let (w0, w1, w2, w3) = (
            wamid(&ids[0]),
            wamid(&ids[1]),
            wamid(&ids[2]),
            wamid(&ids[3]),
        );
        // One batch, shuffled; expected final: read, delivered, failed, delivered.
        let batch = meta::statuses(
            PNID,
            &[
                (&w0, "read", "16505551234"),
                (&w1, "delivered", "16505551234"),
                (&w2, "sent", "16505551234"),
                (&w0, "sent", "16505551234"),
                (&w3, "delivered", "16505551234"),
                (&w1, "sent", "16505551234"),
                (&w0, "delivered", "16505551234"),
            ],
        );
        receive_meta(&e.router, &batch).await;
        let failed = meta::status(PNID, &w2, "failed", "16505551234", Some(131026));
        receive_meta(&e.router, &failed).await;
        let late_failure = meta::status(PNID, &w3, "failed", "16505551234", Some(131000));
        receive_meta(&e.router, &late_failure).await;
        let rows = stored(&e.router).await;
        let status = |id: &str| rows.iter().find(|m| m.id == id).unwrap().status.clone();
        assert_eq!(status(&ids[0]), "read");
        assert_eq!(status(&ids[1]), "delivered");
        assert_eq!(status(&ids[2]), "failed");
        assert_eq!(
            rows.iter()
                .find(|m| m.id == ids[2])
                .unwrap()
                .error_code
                .as_deref(),
            Some("131026")
        );
        assert_eq!(
            status(&ids[3]),
            "delivered",
            "a failure never overwrites delivered"
        );
    })
    .await;
}

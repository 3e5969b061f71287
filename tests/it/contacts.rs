//! Contacts: every spelling of a number, a BSUID and a phone, and one person on two
//! channels are one contact; contacts named together merge; the API finds a contact by any
//! spelling. On SQLite and PostgreSQL.

use chrono::Utc;
use sea_orm::{EntityTrait, PaginatorTrait};
use serde_json::json;
use switchboard_core::{Bsuid, ContactIdentity, EventKind, PhoneNumber};
use switchboard_router::store::entity::{contact_identities, contacts, conversations, messages};

use crate::support::api::{ALICE, BOB, encode, start};
use crate::support::fake::{inbound, phone, receive, text_to};
use crate::support::providers::{PERSON, meta_inbound, open_window_via_twilio, receive_meta, site};
use crate::support::{count, fake_setup, on_each_backend};

#[tokio::test]
async fn every_spelling_of_a_number_lands_on_one_contact() {
    on_each_backend(|db| async move {
        let (router, _fake, tenant) = fake_setup(&db).await;
        // The person writes first (opens the window), reported as a wa_id without a plus.
        let ident = ContactIdentity {
            phone: Some(PhoneNumber::from_wa_id("31612345678").unwrap()),
            ..Default::default()
        };
        receive(&router, &[inbound("in-1", ident, "hallo")]).await;
        let spellings = [
            "whatsapp:+31 6 1234 5678",
            "+31612345678",
            "0031612345678",
            "31612345678",
            "06 12345678",
            "+31 (0)6-1234-5678",
        ];
        let mut conversations_seen = Vec::new();
        for to in spellings {
            let accepted = router
                .send(&tenant, text_to(to, "hi"))
                .await
                .unwrap_or_else(|e| panic!("{to}: {e}"));
            conversations_seen.push(accepted.conversation_id);
        }
        conversations_seen.dedup();
        assert_eq!(
            conversations_seen.len(),
            1,
            "one conversation for every spelling"
        );
        assert_eq!(count(&router, contacts::Entity).await, 1);
        assert_eq!(count(&router, conversations::Entity).await, 1);
        assert_eq!(
            count(&router, messages::Entity).await,
            1 + spellings.len() as u64
        );
        let view = router
            .records()
            .find_contact(&tenant, "06-12345678")
            .await
            .unwrap();
        assert_eq!(view.phone.as_deref(), Some("+31612345678"));
    })
    .await;
}

#[tokio::test]
async fn a_contact_first_seen_by_bsuid_then_with_its_phone_stays_one_contact() {
    on_each_backend(|db| async move {
        let (router, _fake, tenant) = fake_setup(&db).await;
        let bsuid = Bsuid::parse("US.13491208655302741918").unwrap();
        let by_bsuid = ContactIdentity {
            bsuid: Some(bsuid.clone()),
            profile_name: Some("Sam".into()),
            ..Default::default()
        };
        let both = ContactIdentity {
            phone: Some(PhoneNumber::parse("+16505551234").unwrap()),
            bsuid: Some(bsuid.clone()),
            ..Default::default()
        };
        for (i, ident) in [by_bsuid, both, phone("+16505551234")]
            .into_iter()
            .enumerate()
        {
            receive(&router, &[inbound(&format!("m{i}"), ident, "x")]).await;
        }
        assert_eq!(count(&router, contacts::Entity).await, 1);
        assert_eq!(count(&router, conversations::Entity).await, 1);
        let contact = router
            .records()
            .find_contact(&tenant, "+16505551234")
            .await
            .unwrap();
        assert_eq!(contact.bsuid.as_deref(), Some("US.13491208655302741918"));
        assert_eq!(contact.profile_name.as_deref(), Some("Sam"));
        assert_eq!(count(&router, contact_identities::Entity).await, 2);
    })
    .await;
}

#[tokio::test]
async fn two_contacts_merge_when_one_event_names_both_identities() {
    on_each_backend(|db| async move {
        let (router, _fake, tenant) = fake_setup(&db).await;
        let bsuid = Bsuid::parse("BR.98765").unwrap();
        let first = ContactIdentity {
            bsuid: Some(bsuid.clone()),
            ..Default::default()
        };
        let second = phone("+5511987654321");
        let both = ContactIdentity {
            bsuid: Some(bsuid),
            ..phone("+5511987654321")
        };
        // Minutes apart, the merged-away conversation's the newest: the kept one takes its
        // last message time, and that time's minute (the inbox's index).
        let minutes_ago = |key: &str, who: ContactIdentity, text: &str, minutes: i64| {
            let mut ev = inbound(key, who, text);
            if let EventKind::Message(m) = &mut ev.kind {
                m.timestamp = Utc::now() - chrono::Duration::minutes(minutes);
            }
            ev
        };
        receive(&router, &[minutes_ago("a", first, "1", 10)]).await;
        receive(&router, &[minutes_ago("b", second, "2", 5)]).await;
        assert_eq!(count(&router, contacts::Entity).await, 2);
        receive(&router, &[minutes_ago("c", both, "3", 8)]).await;
        assert_eq!(count(&router, contacts::Entity).await, 1, "merged");
        assert_eq!(
            count(&router, conversations::Entity).await,
            1,
            "conversations merged"
        );
        let conv = conversations::Entity::find()
            .one(router.store().conn())
            .await
            .unwrap()
            .unwrap();
        let in_conv = messages::Entity::find()
            .all(router.store().conn())
            .await
            .unwrap()
            .into_iter()
            .filter(|m| m.conversation_id == conv.id)
            .count();
        assert_eq!(in_conv, 3, "every message moved to the kept conversation");
        let newest = messages::Entity::find()
            .all(router.store().conn())
            .await
            .unwrap()
            .into_iter()
            .filter_map(|m| m.provider_timestamp)
            .max()
            .unwrap();
        assert_eq!(conv.last_message_at, newest);
        assert_eq!(conv.last_message_minute, newest / 60_000);
        let c = router
            .records()
            .find_contact(&tenant, "BR.98765")
            .await
            .unwrap();
        assert_eq!(c.phone.as_deref(), Some("+5511987654321"));
    })
    .await;
}

#[tokio::test]
async fn the_same_person_via_twilio_and_meta_is_one_contact() {
    on_each_backend(|db| async move {
        let e = site(&db).await;
        open_window_via_twilio(&e).await;
        let body = meta_inbound("16505551234", "wamid.A1", "also me");
        receive_meta(&e.router, &body).await;
        assert_eq!(count(&e.router, contacts::Entity).await, 1);
        assert_eq!(
            conversations::Entity::find()
                .count(e.router.store().conn())
                .await
                .unwrap(),
            2,
            "one conversation per sender"
        );
        let contact = e
            .router
            .records()
            .find_contact(&e.tenant, PERSON)
            .await
            .unwrap();
        assert_eq!(
            contact.channels,
            vec!["meta-whatsapp".to_owned(), "twilio-whatsapp".to_owned()]
        );
    })
    .await;
}

#[tokio::test]
async fn a_contact_is_found_by_any_spelling_of_its_number() {
    on_each_backend(|db| async move {
        let api = start(&db).await;
        api.inbound("in-1", ALICE, "hi").await;
        let mut ids = Vec::new();
        for spelling in [
            "+31612345678",
            "+31 6 1234 5678",
            "whatsapp:+31612345678",
            "0031612345678",
            "31612345678",
            "06-12345678",
        ] {
            let c = api
                .get(
                    &format!("/v1/contacts?phone={}", encode(spelling)),
                    &api.admin,
                )
                .await
                .expect(200, None)
                .body;
            assert_eq!(c["phone"], ALICE, "{spelling}");
            assert_eq!(c["phones"], json!([ALICE]));
            assert_eq!(c["channels"], json!(["fake"]));
            assert_eq!(c["profile_name"], format!("person {ALICE}"));
            ids.push(c["id"].as_str().unwrap().to_owned());
        }
        ids.dedup();
        assert_eq!(ids.len(), 1, "every spelling names one contact");

        api.get(&format!("/v1/contacts?phone={}", encode(BOB)), &api.admin)
            .await
            .expect(404, Some("not_found"));
        api.get("/v1/contacts?phone=call%20me", &api.admin)
            .await
            .expect(400, Some("invalid_phone"));
        api.get("/v1/contacts", &api.admin)
            .await
            .expect(400, Some("missing_phone"));
    })
    .await;
}

/// A webhook from a number whose contact another transaction is creating at that moment
/// (a send, another process's batch) joins that contact: the batch's insert does nothing on
/// the number's unique index instead of failing, and its transaction is not rolled back and
/// written again (`Store::transactions_retried`; PostgreSQL, as SQLite serializes writers).
#[tokio::test]
async fn a_webhook_from_a_number_being_created_elsewhere_joins_that_contact_without_a_rollback() {
    use sea_orm::{ConnectionTrait, TransactionTrait};
    let Some((_db, router, _fake, tenant)) = crate::support::postgres_fake_setup().await else {
        return;
    };
    let retried = || router.store().transactions_retried();
    let before = retried();
    // Another writer's contact for the number, inserted and not yet committed.
    let elsewhere = router.store().conn().begin().await.unwrap();
    elsewhere
        .execute_unprepared(&format!(
            "INSERT INTO contacts (id, tenant_id, e164, created_at, updated_at) \
             VALUES ('ctc_elsewhere', '{tenant}', '+31612345077', 1, 1); \
             INSERT INTO contact_identities (tenant_id, kind, value, contact_id, created_at) \
             VALUES ('{tenant}', 'phone', '+31612345077', 'ctc_elsewhere', 1)"
        ))
        .await
        .unwrap();
    let webhook = tokio::spawn({
        let router = router.clone();
        async move { receive(&router, &[inbound("W1", phone("+31612345077"), "hi")]).await }
    });
    // The webhook's batch reaches the contact's insert and waits for that transaction.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    elsewhere.commit().await.unwrap();
    let ack = webhook.await.unwrap();
    assert_eq!(ack.stored, 1);
    let stored = messages::Entity::find()
        .all(router.store().conn())
        .await
        .unwrap();
    let conversation = conversations::Entity::find_by_id(stored[0].conversation_id.clone())
        .one(router.store().conn())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(conversation.contact_id, "ctc_elsewhere");
    assert_eq!(count(&router, contacts::Entity).await, 1);
    assert_eq!(
        retried() - before,
        0,
        "the batch was not rolled back and written again"
    );
}

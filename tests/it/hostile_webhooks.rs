//! Webhooks from clients that are not the provider: whatever such a body names, the work
//! done before its signature is checked stays bounded, and real webhooks route as before.

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::json;
use switchboard_core::{MAX_ROUTING_KEYS, WebhookError};
use switchboard_meta_cloud::testing as meta;
use switchboard_router::store::entity::messages;
use switchboard_router::{Router, RouterError};
use switchboard_twilio::testing::{self as twilio, TEST_ACCOUNT_SID};

use crate::support::providers::{
    APP_SECRET, META_DISPLAY, PERSON, PNID, PUBLIC, TWILIO_NUMBER, TWILIO_PATH, site,
};
use crate::support::{TestDb, on_each_backend};

async fn router(db: &TestDb) -> (Router, String) {
    let site = site(db).await;
    (site.router, site.tenant)
}

/// A Meta notification with one change per phone_number_id, each carrying a status.
fn naming(phone_number_ids: &[String]) -> String {
    let changes: Vec<_> = phone_number_ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let status = json!({"statuses": [{
                "id": format!("wamid.{i}"), "status": "delivered",
                "timestamp": "1749416383", "recipient_id": "16505551234",
            }]});
            (id.as_str(), META_DISPLAY, "messages", status)
        })
        .collect();
    meta::envelope(&changes)
}

fn unknown_ids(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("9{i:014}")).collect()
}

async fn stored_anything(router: &Router) -> bool {
    use sea_orm::{EntityTrait, PaginatorTrait};
    use switchboard_router::store::entity::{webhook_events, webhook_problems};
    let db = router.store().conn();
    webhook_events::Entity::find().count(db).await.unwrap()
        + webhook_problems::Entity::find().count(db).await.unwrap()
        > 0
}

/// An unsigned notification naming thousands of phone_number_ids (more than Meta's 1000
/// updates a POST can carry) is not Meta's: it is refused before any of them is looked up.
#[tokio::test]
async fn a_meta_webhook_naming_thousands_of_numbers_is_refused_before_any_look_up() {
    on_each_backend(|db| async move {
        let (router, _) = router(&db).await;
        let mut ids = unknown_ids(5_000);
        ids[2_500] = PNID.to_owned();
        let body = naming(&ids);
        for secret in [None, Some("not-the-app-secret")] {
            let reads = router.accounts().route_reads();
            let err = router
                .receive_webhook("meta-whatsapp", meta::webhook_request(&body, secret))
                .await
                .unwrap_err();
            assert!(
                matches!(err, RouterError::Webhook(WebhookError::Malformed { .. })),
                "{err:?}"
            );
            assert_eq!(err.http_status(), 400);
            assert_eq!(
                router.accounts().route_reads() - reads,
                0,
                "no key is looked up"
            );
        }
        assert!(!stored_anything(&router).await);
    })
    .await;
}

/// Up to the bound, the numbers a webhook names are read in one query, however many they
/// are; an unsigned webhook naming a connected number among them is refused and stores
/// nothing, and its unknown numbers are remembered (in the bounded route cache), so sending
/// it again reads nothing.
#[tokio::test]
async fn the_numbers_of_an_unsigned_meta_webhook_are_read_in_one_query() {
    on_each_backend(|db| async move {
        let (router, _) = router(&db).await;
        let unknown = naming(&unknown_ids(MAX_ROUTING_KEYS));
        let (reads, queries) = (
            router.accounts().route_reads(),
            router.accounts().route_queries(),
        );
        let err = router
            .receive_webhook("meta-whatsapp", meta::webhook_request(&unknown, None))
            .await
            .unwrap_err();
        assert_eq!(err.http_status(), 404, "{err:?}");
        assert_eq!(router.accounts().route_queries() - queries, 1);
        assert_eq!(
            router.accounts().route_reads() - reads,
            MAX_ROUTING_KEYS as u64
        );

        let mut ids = unknown_ids(MAX_ROUTING_KEYS + 500);
        ids[MAX_ROUTING_KEYS - 1] = PNID.to_owned();
        ids.truncate(MAX_ROUTING_KEYS);
        let body = naming(&ids);
        for secret in [None, Some("not-the-app-secret"), None] {
            let (reads, queries) = (
                router.accounts().route_reads(),
                router.accounts().route_queries(),
            );
            let err = router
                .receive_webhook("meta-whatsapp", meta::webhook_request(&body, secret))
                .await
                .unwrap_err();
            assert_eq!(err.http_status(), 403, "{err:?}");
            assert!(router.accounts().route_queries() - queries <= 1);
            assert!(
                router.accounts().route_reads() - reads <= 1,
                "only PNID was not cached"
            );
        }
        assert!(!stored_anything(&router).await);
    })
    .await;
}

/// A real notification may batch several numbers: each connected one whose app secret signed
/// it gets its events (whatever tenant it is in), read in one query; a number of another app
/// or of no account gets none.
#[tokio::test]
async fn a_signed_meta_webhook_for_several_numbers_still_routes_each() {
    const GLOBEX_PNID: &str = "106540352242923";
    const OTHER_APP_PNID: &str = "106540352242924";
    on_each_backend(|db| async move {
        let (router, acme) = router(&db).await;
        let globex = router.tenants().create("globex").await.unwrap().tenant_id;
        for (tenant, number, pnid, secret) in [
            (&globex, "+15550783882", GLOBEX_PNID, APP_SECRET),
            (&globex, "+15550783883", OTHER_APP_PNID, "another-apps-secret"),
        ] {
            let creds = json!({"phone_number_id": pnid, "access_token": "t", "app_secret": secret, "verify_token": "vt"});
            router
                .accounts().connect(tenant, "meta-whatsapp", number, &creds, None)
                .await
                .unwrap();
        }
        let text = |pnid: &str, wamid: &str| {
            let value = json!({
                "contacts": [{"profile": {"name": "Sheena"}, "wa_id": "16505551234"}],
                "messages": [{"from": "16505551234", "id": wamid, "type": "text",
                    "timestamp": chrono::Utc::now().timestamp().to_string(),
                    "text": {"body": "hello"}}],
            });
            (pnid.to_owned(), value)
        };
        let changes = [
            text(PNID, "wamid.acme"),
            text("999999999999999", "wamid.nobody"),
            text(GLOBEX_PNID, "wamid.globex"),
            text(OTHER_APP_PNID, "wamid.other"),
        ];
        let changes: Vec<_> = changes
            .iter()
            .map(|(pnid, value)| (pnid.as_str(), META_DISPLAY, "messages", value.clone()))
            .collect();
        let body = meta::envelope(&changes);
        let queries = router.accounts().route_queries();
        let ack = router
            .receive_webhook("meta-whatsapp", meta::webhook_request(&body, Some(APP_SECRET)))
            .await
            .unwrap();
        assert_eq!(router.accounts().route_queries() - queries, 1);
        assert_eq!((ack.stored, ack.duplicates, ack.problems), (2, 0, 2));
        for (tenant, wamid) in [(&acme, "wamid.acme"), (&globex, "wamid.globex")] {
            let stored = messages::Entity::find()
                .filter(messages::Column::ProviderMessageId.eq(wamid))
                .one(router.store().conn())
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("{wamid} is stored"));
            assert_eq!(&stored.tenant_id, tenant);
        }
        let again = router
            .receive_webhook("meta-whatsapp", meta::webhook_request(&body, Some(APP_SECRET)))
            .await
            .unwrap();
        assert_eq!((again.stored, again.duplicates), (0, 2));
        assert_eq!(router.accounts().route_queries() - queries, 1, "the second is answered from the cache");
    })
    .await;
}

/// A Twilio webhook names one account by `To` or `From`: a form repeating them thousands of
/// times still costs at most two look-ups (the first of each; the rest are never read).
#[tokio::test]
async fn a_twilio_form_repeating_its_numbers_costs_at_most_two_look_ups() {
    on_each_backend(|db| async move {
        let (router, _) = router(&db).await;
        let mut form =
            twilio::inbound_text_form(TEST_ACCOUNT_SID, PERSON, "+16505550000", "hi", "SM1");
        for i in 0..5_000 {
            form.push(("To".into(), format!("whatsapp:+1650556{i:04}")));
            form.push(("From".into(), format!("whatsapp:+1650557{i:04}")));
        }
        form.push(("To".into(), format!("whatsapp:{TWILIO_NUMBER}")));
        for token in [Some("not-the-auth-token"), None] {
            let mut request = twilio::signed_webhook_request(
                PUBLIC,
                TWILIO_PATH,
                None,
                token.unwrap_or("x"),
                &form,
            );
            if token.is_none() {
                request.headers.remove("x-twilio-signature");
            }
            let (reads, queries) = (
                router.accounts().route_reads(),
                router.accounts().route_queries(),
            );
            let err = router
                .receive_webhook("twilio-whatsapp", request)
                .await
                .unwrap_err();
            assert_eq!(err.http_status(), 404, "{err:?}");
            assert!(router.accounts().route_queries() - queries <= 2);
            assert!(router.accounts().route_reads() - reads <= 2);
        }
        assert!(!stored_anything(&router).await);
    })
    .await;
}

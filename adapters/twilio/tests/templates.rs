//! Twilio's template catalog (`GET /v1/ContentAndApprovals`, twilio.md §9.1, §9.5) read
//! from `testing::FakeTwilio` over HTTP.

use serde_json::json;
use switchboard_core::ChannelAdapter;
use switchboard_twilio::TwilioWhatsApp;
use switchboard_twilio::testing::{
    self, FakeTwilio, TEST_ACCOUNT_SID, TEST_AUTH_TOKEN, TEST_TEMPLATE_SID,
};

fn text_content(name: &str) -> serde_json::Value {
    json!({"friendly_name": name, "language": "en", "variables": {"1": "Ana"},
        "types": {"twilio/text": {"body": "Hi {{1}}"}}})
}

#[tokio::test]
async fn every_page_is_read_with_each_items_approval() {
    let fake = FakeTwilio::start().await;
    fake.set_content_page_size(2);
    let mut sids = Vec::new();
    for i in 0..4 {
        sids.push(fake.add_content(TEST_ACCOUNT_SID, &text_content(&format!("t_{i}"))));
    }
    assert!(fake.set_approval(&sids[1], "rejected", "INVALID_FORMAT"));
    let twilio = TwilioWhatsApp::new(fake.config());
    let acct = testing::account(TEST_ACCOUNT_SID, TEST_AUTH_TOKEN, "+14155238886");
    let listed = twilio.list_templates(&acct, None).await.unwrap();
    assert_eq!(listed.len(), 5, "the seeded template and four: {listed:?}");
    let seeded = listed.iter().find(|t| t.name == TEST_TEMPLATE_SID).unwrap();
    assert_eq!(seeded.status, "approved");
    assert_eq!(seeded.variables.len(), 2);
    let rejected = listed.iter().find(|t| t.provider_id == sids[1]).unwrap();
    assert_eq!(rejected.status, "rejected");
    assert_eq!(rejected.rejection_reason.as_deref(), Some("INVALID_FORMAT"));
    let fresh = listed.iter().find(|t| t.provider_id == sids[0]).unwrap();
    assert_eq!(fresh.status, "unsubmitted");
    assert_eq!(fresh.variables[0].example.as_deref(), Some("Ana"));
    let lists: Vec<_> = fake
        .content_requests()
        .into_iter()
        .filter(|r| r.path == "/v1/ContentAndApprovals")
        .collect();
    assert_eq!(lists.len(), 3, "pages of 2, 2 and 1");
    assert!(fake.remove_content(&sids[2]));
    assert_eq!(twilio.list_templates(&acct, None).await.unwrap().len(), 4);
}

#[tokio::test]
async fn wrong_credentials_are_an_auth_error() {
    let fake = FakeTwilio::start().await;
    let twilio = TwilioWhatsApp::new(fake.config());
    let acct = testing::account(TEST_ACCOUNT_SID, "wrong", "+14155238886");
    let e = twilio.list_templates(&acct, None).await.unwrap_err();
    assert!(e.is_auth(), "{e:?}");
}

#[tokio::test]
async fn a_submission_creates_content_and_asks_for_whatsapp_approval() {
    let fake = FakeTwilio::start().await;
    let twilio = TwilioWhatsApp::new(fake.config());
    let acct = testing::account(TEST_ACCOUNT_SID, TEST_AUTH_TOKEN, "+14155238886");
    let submission: switchboard_core::TemplateSubmission = serde_json::from_value(json!({
        "name": "order_followup", "language": "en", "category": "utility",
        "body": "Hi {{1}}, did order {{2}} arrive?",
        "buttons": [{"type": "quick_reply", "text": "Yes"}, {"type": "quick_reply", "text": "No"}],
        "examples": {"1": "Jane", "2": "860198"}}))
    .unwrap();
    let created = twilio
        .submit_template(&acct, None, &submission)
        .await
        .unwrap();
    assert_eq!(created.status, "received");
    assert_eq!(created.category.as_deref(), Some("utility"));
    assert_eq!(created.variables.len(), 2);
    let requests = fake.content_requests();
    let create = requests.iter().find(|r| r.path == "/v1/Content").unwrap();
    assert_eq!(
        create.json().unwrap(),
        json!({"friendly_name": "order_followup", "language": "en",
            "variables": {"1": "Jane", "2": "860198"},
            "types": {"twilio/quick-reply": {"body": "Hi {{1}}, did order {{2}} arrive?", "actions": [
                {"type": "QUICK_REPLY", "title": "Yes", "id": "Yes"},
                {"type": "QUICK_REPLY", "title": "No", "id": "No"}]}}})
    );
    let approval = requests
        .iter()
        .find(|r| r.path.ends_with("/ApprovalRequests/whatsapp"))
        .unwrap();
    assert_eq!(
        approval.path,
        format!(
            "/v1/Content/{}/ApprovalRequests/whatsapp",
            created.provider_id
        )
    );
    assert_eq!(
        approval.json().unwrap(),
        json!({"name": "order_followup", "category": "UTILITY"})
    );
    // Meta's review approves it: the catalog shows it.
    assert!(fake.set_approval(&created.provider_id, "approved", ""));
    let listed = twilio.list_templates(&acct, None).await.unwrap();
    let found = listed
        .iter()
        .find(|t| t.provider_id == created.provider_id)
        .unwrap();
    assert_eq!(found.status, "approved");
    // Buttons Twilio cannot put in one content type are refused before any request.
    let mixed: switchboard_core::TemplateSubmission = serde_json::from_value(json!({
        "name": "mixed", "language": "en", "category": "marketing", "body": "Hi",
        "buttons": [{"type": "quick_reply", "text": "Yes"}, {"type": "url", "text": "Go", "url": "https://x.test"}]}))
    .unwrap();
    let before = fake.content_requests().len();
    let e = twilio
        .submit_template(&acct, None, &mixed)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), switchboard_core::ErrorKind::Invalid);
    assert_eq!(fake.content_requests().len(), before);
}

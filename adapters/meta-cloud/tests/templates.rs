//! The template catalog read from `FakeGraph` over HTTP (meta.md §13.1).

use switchboard_core::{ChannelAdapter, ErrorKind};
use switchboard_meta_cloud::testing::{FakeGraph, WABA_ID, account, graph_template};
use switchboard_meta_cloud::{CRED_WABA_ID, MetaCloud};

const PNID: &str = "106540352242922";
const TOKEN: &str = "EAAG-test-token";

fn many(n: usize) -> Vec<serde_json::Value> {
    (0..n)
        .map(|i| {
            graph_template(
                &format!("{}", 1000 + i),
                &format!("t_{i}"),
                "en_US",
                "APPROVED",
                "Hi {{1}}",
                &["Ana"],
            )
        })
        .collect()
}

#[tokio::test]
async fn every_page_is_read_by_its_after_cursor() {
    let graph = FakeGraph::start().await;
    graph.set_templates(WABA_ID, TOKEN, many(230));
    let meta = MetaCloud::new(graph.config());
    let acct = account(PNID, "+15550783881", TOKEN, "s", "v");
    let listed = meta.list_templates(&acct, Some(WABA_ID)).await.unwrap();
    assert_eq!(listed.len(), 230);
    assert_eq!(listed[229].name, "t_229");
    assert_eq!(listed[0].variables[0].example.as_deref(), Some("Ana"));
    let reqs = graph.requests();
    assert_eq!(reqs.len(), 3, "100 + 100 + 30");
    assert_eq!(reqs[0].path, format!("/v25.0/{WABA_ID}/message_templates"));
    assert_eq!(reqs[0].query.as_deref(), Some("limit=100"));
    assert_eq!(reqs[1].query.as_deref(), Some("limit=100&after=cursor-100"));
    assert!(reqs.iter().all(|r| r.bearer.as_deref() == Some(TOKEN)));
}

#[tokio::test]
async fn the_waba_id_credential_wins_and_an_unknown_waba_is_an_error() {
    let graph = FakeGraph::start().await;
    graph.set_templates("777", TOKEN, many(1));
    let meta = MetaCloud::new(graph.config());
    let mut acct = account(PNID, "+15550783881", TOKEN, "s", "v");
    let none = meta.list_templates(&acct, None).await.unwrap_err();
    assert_eq!(none.kind(), ErrorKind::Invalid);
    assert!(none.message().contains("waba_id"), "{}", none.message());
    let unknown = meta.list_templates(&acct, Some("888")).await.unwrap_err();
    assert!(unknown.is_permanent(), "{unknown:?}");
    acct.credentials.insert(CRED_WABA_ID, "777");
    assert_eq!(
        meta.list_templates(&acct, Some("888")).await.unwrap().len(),
        1
    );
    acct.credentials.insert(CRED_WABA_ID, TOKEN);
    assert_eq!(
        meta.list_templates(&acct, None).await.unwrap_err().kind(),
        ErrorKind::Invalid
    );
}

#[tokio::test]
async fn a_refused_token_is_an_auth_error() {
    let graph = FakeGraph::start().await;
    graph.set_templates(WABA_ID, "other", many(1));
    let meta = MetaCloud::new(graph.config());
    let acct = account(PNID, "+15550783881", TOKEN, "s", "v");
    let e = meta.list_templates(&acct, Some(WABA_ID)).await.unwrap_err();
    assert!(e.is_auth(), "{e:?}");
}

fn submission(v: serde_json::Value) -> switchboard_core::TemplateSubmission {
    serde_json::from_value(v).unwrap()
}

#[tokio::test]
async fn a_submission_is_created_on_the_waba_with_its_components_and_samples() {
    let graph = FakeGraph::start().await;
    graph.set_templates(WABA_ID, TOKEN, vec![]);
    let meta = MetaCloud::new(graph.config());
    let acct = account(PNID, "+15550783881", TOKEN, "s", "v");
    let created = meta
        .submit_template(
            &acct,
            Some(WABA_ID),
            &submission(
                serde_json::json!({"name": "order_update", "language": "en_US",
                "category": "utility", "body": "Hi {{1}}, order {{2}} shipped",
                "header": {"type": "text", "text": "Your order"}, "footer": "Lucky Shrub",
                "buttons": [{"type": "url", "text": "Track", "url": "https://x.test/t"},
                            {"type": "quick_reply", "text": "Stop"}],
                "examples": {"2": "#1042", "1": "Ana"}}),
            ),
        )
        .await
        .unwrap();
    assert_eq!(created.status, "pending");
    assert_eq!(created.name, "order_update");
    assert_eq!(created.variables[1].example.as_deref(), Some("#1042"));
    let req = graph
        .requests()
        .into_iter()
        .find(|r| r.method == "POST")
        .unwrap();
    assert_eq!(req.path, format!("/v25.0/{WABA_ID}/message_templates"));
    assert_eq!(
        req.body.unwrap(),
        serde_json::json!({"name": "order_update", "language": "en_US", "category": "UTILITY",
            "parameter_format": "positional", "components": [
                {"type": "HEADER", "format": "TEXT", "text": "Your order"},
                {"type": "BODY", "text": "Hi {{1}}, order {{2}} shipped",
                 "example": {"body_text": [["Ana", "#1042"]]}},
                {"type": "FOOTER", "text": "Lucky Shrub"},
                {"type": "BUTTONS", "buttons": [
                    {"type": "URL", "text": "Track", "url": "https://x.test/t"},
                    {"type": "QUICK_REPLY", "text": "Stop"}]}]})
    );
    // It is listed now, pending; the same name and language again is Meta's refusal.
    let listed = meta.list_templates(&acct, Some(WABA_ID)).await.unwrap();
    assert_eq!(listed[0].provider_id, created.provider_id);
    assert_eq!(listed[0].status, "pending");
    let again = meta
        .submit_template(
            &acct,
            Some(WABA_ID),
            &submission(
                serde_json::json!({"name": "order_update", "language": "en_US",
                "category": "utility", "body": "Hi"}),
            ),
        )
        .await
        .unwrap_err();
    assert!(again.is_permanent(), "{again:?}");
    // Named placeholders go as `body_text_named_params`.
    let named = meta
        .submit_template(
            &acct,
            Some(WABA_ID),
            &submission(serde_json::json!({"name": "welcome", "language": "en_US",
                "category": "MARKETING", "body": "Hello {{first_name}}",
                "examples": {"first_name": "Ana"}})),
        )
        .await
        .unwrap();
    assert_eq!(named.variables[0].key, "first_name");
    let body = graph.requests().last().unwrap().body.clone().unwrap();
    assert_eq!(body["parameter_format"], "named");
    assert_eq!(
        body["components"][0]["example"],
        serde_json::json!({"body_text_named_params": [{"param_name": "first_name", "example": "Ana"}]})
    );
}

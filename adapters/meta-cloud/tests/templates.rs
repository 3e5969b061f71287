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

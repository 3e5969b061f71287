//! The operator console (issue 19) in a real browser: headless Chromium driving the real
//! `switchboard` binary, against fake Twilio and Graph servers, on SQLite and PostgreSQL.
//! The page contract these tests follow is the console's (selectors, statuses, live
//! updates); the first test checks the browser harness alone, on a plain page, so that a
//! harness failure is told from a console failure.

use std::time::Duration;

use axum::response::Html;

use crate::support::browser::{PNG_SIGNATURE, Viewport, with_browser};

/// A form and the page it posts to, served on loopback: what the harness smoke test drives.
async fn serve_plain_page() -> (String, tokio::task::JoinHandle<()>) {
    #[derive(serde::Deserialize)]
    struct Greeting {
        name: String,
    }
    let app = axum::Router::new()
        .route(
            "/",
            axum::routing::get(|| async {
                Html(
                    "<!doctype html><title>form</title>\
                     <meta name=viewport content=\"width=device-width\">\
                     <form id=greet method=post action=/greet>\
                     <input id=name name=name><button id=send>Send</button></form>\
                     <p id=later></p>\
                     <script>setTimeout(() => { document.getElementById('later').append(\
                     Object.assign(document.createElement('span'), {id: 'late', textContent: 'late'})\
                     ) }, 300)</script>",
                )
            }),
        )
        .route(
            "/greet",
            axum::routing::post(|axum::Form(form): axum::Form<Greeting>| async move {
                let name = form
                    .name
                    .replace('&', "&amp;")
                    .replace('<', "&lt;")
                    .replace('>', "&gt;");
                Html(format!(
                    "<!doctype html><title>greeted</title><p id=greeting>Hello, {name}!</p>"
                ))
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (base, server)
}

/// The harness alone: open a page, wait for an element added later by script, fill a field,
/// submit, read the next page's text and status, run script, take a screenshot; a selector
/// that never appears fails with its name and the page's URL.
#[tokio::test]
async fn the_browser_harness_drives_chromium_through_a_plain_form() {
    let (base, server) = serve_plain_page().await;
    let shots = tempfile::tempdir().unwrap();
    with_browser(Viewport::Desktop, async |b| {
        b.goto(&format!("{base}/")).await;
        assert_eq!(b.text_of("#late").await, "late");
        b.fill("#name", "Ada <3").await;
        b.click("button#send").await;
        assert_eq!(b.text_of("p#greeting").await, "Hello, Ada <3!");
        assert_eq!(b.current_url().await, format!("{base}/greet"));
        assert_eq!(b.status().await, 200);
        assert_eq!(b.js("return 6 * 7;").await, serde_json::json!(42));
        assert_eq!(
            b.js("return window.innerWidth;").await,
            serde_json::json!(1280)
        );

        let missing = b
            .try_wait_for("#never-there", Duration::from_millis(300))
            .await
            .expect_err("a selector that is not on the page times out");
        assert!(missing.contains("`#never-there`"), "{missing}");
        assert!(missing.contains(&format!("{base}/greet")), "{missing}");
        assert!(missing.contains("Hello, Ada"), "{missing}");

        let shot = shots.path().join("greeting.png");
        b.screenshot(&shot).await;
        assert!(std::fs::read(&shot).unwrap().starts_with(PNG_SIGNATURE));
    })
    .await;
    with_browser(Viewport::Phone, async |b| {
        b.goto(&format!("{base}/")).await;
        assert_eq!(
            b.js("return window.innerWidth;").await,
            serde_json::json!(390)
        );
    })
    .await;
    server.abort();
}

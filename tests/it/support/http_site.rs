//! The HTTP app on a loopback port over a router the test built, one tenant (`acme`) with
//! its admin key, and a client that answers in api.md's shapes: what the provider tests
//! that go through `/v1/…` and `/webhooks/…` share.

use reqwest::Method;
use serde_json::{Value, json};
use switchboard_router::Router;

use super::api::{Reply, reply};

/// The app served on loopback; stops serving when dropped.
pub struct HttpSite {
    pub base: String,
    pub client: reqwest::Client,
    pub router: Router,
    /// The tenant's id (empty when served without one).
    pub tenant: String,
    /// The tenant's first admin key (empty when served without one).
    pub admin: String,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for HttpSite {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Serves `router` on a loopback port, with no tenant yet.
pub async fn serve(router: Router) -> HttpSite {
    serve_built(|_| router).await
}

/// Serves the router `build` makes knowing the site's base URL (for routers that sign links
/// to themselves), with no tenant yet.
pub async fn serve_built(build: impl FnOnce(&str) -> Router) -> HttpSite {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let router = build(&base);
    let app = switchboard_http::app(switchboard_http::AppState::new(router.clone(), None));
    let server = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    HttpSite {
        base,
        client: reqwest::Client::new(),
        router,
        tenant: String::new(),
        admin: String::new(),
        server,
    }
}

/// Serves `router` and creates the tenant `acme`.
pub async fn serve_acme(router: Router) -> HttpSite {
    let mut site = serve(router).await;
    site.create_acme().await;
    site
}

impl HttpSite {
    /// Creates the tenant `acme`: its id and admin key become the site's.
    pub async fn create_acme(&mut self) {
        let created = self.router.tenants().create("acme").await.unwrap();
        self.tenant = created.tenant_id;
        self.admin = created.key;
    }

    /// A request to the app with the admin key.
    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        self.call_as(method, path, Some(&self.admin), body).await
    }

    /// A request to the app with `key` (none: unauthenticated).
    pub async fn call_as(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(key) = key {
            req = req.bearer_auth(key);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        reply(req.send().await.unwrap()).await
    }

    /// Connects an account through `POST /v1/accounts`; its id.
    pub async fn connect(&self, channel: &str, address: &str, credentials: &Value) -> String {
        let created = self
            .call(
                Method::POST,
                "/v1/accounts",
                Some(json!({"channel": channel, "address": address, "credentials": credentials})),
            )
            .await
            .expect(201, None);
        created.body["id"].as_str().unwrap().to_owned()
    }
}

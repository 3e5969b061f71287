//! Accounts (admins only): each connected number with its health and what its provider
//! reports, the exact webhook URLs to paste into the provider's console, and a connect
//! form for every channel this build has.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use maud::{Markup, html};
use switchboard_core::HealthReport;
use switchboard_router::tenancy::accounts::AccountView;
use switchboard_router::tenancy::sessions::{OperatorSession, random_token};

use super::layout::{self, page_response, shell, time};
use super::session::{AdminSigned, ConsoleForm, CsrfOnly, csrf_refusal};
use crate::AppState;

/// What the page says after an action.
enum Notice {
    Connected {
        account: AccountView,
        verify_token: Option<String>,
    },
    Verified {
        account_id: String,
        report: HealthReport,
    },
    Disconnected(String),
    Refused(String),
}

/// Where providers reach this service: the configured public URL, else the host the
/// browser used.
fn base_url(state: &AppState, headers: &HeaderMap) -> String {
    if let Some(url) = state.router.public_url() {
        return url.to_owned();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    format!("http://{host}")
}

fn webhook_url(base: &str, channel: &str) -> String {
    format!("{base}/webhooks/{channel}")
}

/// The last `/health/channels` check's status and detail of an account, if one ran.
fn last_health(state: &AppState, account_id: &str) -> Option<(String, Option<String>)> {
    let checked = state.health_cache.last_report()?;
    let account = checked
        .get("accounts")?
        .as_array()?
        .iter()
        .find(|a| a.get("account_id").and_then(|v| v.as_str()) == Some(account_id))?;
    Some((
        account.get("status")?.as_str()?.to_owned(),
        account
            .get("detail")
            .and_then(|d| d.as_str())
            .map(str::to_owned),
    ))
}

fn notice(n: &Notice, base: &str) -> Markup {
    html! {
        div.notice role="status" {
            @match n {
                Notice::Connected { account, verify_token } => {
                    p { "Connected " strong { (account.address) } " on " (account.channel) ". Paste this into the provider's console:" }
                    p { "Webhook URL: " code.webhook-url { (webhook_url(base, &account.channel)) } }
                    @if let Some(token) = verify_token {
                        p { "Verify token: " code.verify-token { (token) } }
                    }
                }
                Notice::Verified { account_id, report } => {
                    p { "Checked " code { (account_id) } ": " strong.health { (report.status.as_str()) }
                        @if let Some(d) = &report.detail { " — " (d) }
                        " (" (report.latency.as_millis()) " ms)" }
                }
                Notice::Disconnected(id) => { p { "Disconnected " code { (id) } ". Its history stays; its webhooks now answer 404." } }
                Notice::Refused(why) => { p.error role="alert" { (why) } }
            }
        }
    }
}

fn account_row(state: &AppState, session: &OperatorSession, a: &AccountView, base: &str) -> Markup {
    let health = last_health(state, &a.id);
    html! {
        tr.account data-id=(a.id) {
            td.channel { (a.channel) }
            td.address { (a.address) }
            td.health {
                @match &health {
                    Some((status, detail)) => { span class=(format!("badge {status}")) { (status) } @if let Some(d) = detail { " " span.small { (d) } } }
                    None => { span.badge { "not checked" } }
                }
            }
            td.quality {
                span class=(format!("badge {}", a.state.quality.as_str())) { (a.state.quality.as_str()) }
                @if let Some(limit) = &a.state.messaging_limit { " " span.small { (limit) } }
                @for r in &a.state.restrictions { " " span.badge.red { (r.kind) } }
                @if let Some(at) = &a.state.updated_at { " " span.small { "reported " (time(at)) } }
            }
            td { code.webhook-url { (webhook_url(base, &a.channel)) } }
            td.actions {
                form.verify method="post" action=(format!("/console/accounts/{}/verify", a.id)) {
                    input type="hidden" name="csrf" value=(session.csrf_token);
                    button type="submit" { "Verify" }
                }
                form.disconnect method="post" action=(format!("/console/accounts/{}/disconnect", a.id)) {
                    input type="hidden" name="csrf" value=(session.csrf_token);
                    button.danger type="submit" aria-label=(format!("Disconnect {}", a.address)) { "Disconnect" }
                }
            }
        }
    }
}

fn connect_forms(state: &AppState, session: &OperatorSession, base: &str) -> Markup {
    html! {
        section #connect aria-labelledby="connect-title" {
            h2 #connect-title { "Connect a number" }
            @for adapter in state.router.adapters().iter() {
                @let channel = adapter.channel().to_string();
                form.connect method="post" action="/console/accounts" data-channel=(channel) {
                    input type="hidden" name="csrf" value=(session.csrf_token);
                    input type="hidden" name="channel" value=(channel);
                    fieldset {
                        legend { (channel) }
                        p.small { "Webhook URL to paste into the provider's console: " code.webhook-url { (webhook_url(base, &channel)) } }
                        @let address_id = format!("{channel}-address");
                        label for=(address_id) { "Business number" }
                        input id=(address_id) type="tel" name="address" required placeholder="+15551234567" autocomplete="off";
                        @for field in adapter.credential_fields() {
                            @let id = format!("{channel}-{}", field.name);
                            label for=(id) { (field.name) @if !field.required { " (optional)" } }
                            @if field.name == "verify_token" {
                                input id=(id) type="text" name=(format!("cred.{}", field.name)) required[field.required]
                                    value=(random_token("")) autocomplete="off" spellcheck="false";
                            } @else {
                                input id=(id) type=(if field.secret { "password" } else { "text" }) name=(format!("cred.{}", field.name))
                                    required[field.required] autocomplete="off" spellcheck="false";
                            }
                            p.hint { (field.description) }
                        }
                        button type="submit" { "Connect" }
                    }
                }
            }
        }
    }
}

async fn render(
    state: &AppState,
    session: &OperatorSession,
    headers: &HeaderMap,
    status: StatusCode,
    n: Option<Notice>,
) -> Response {
    let accounts = match state
        .router
        .accounts()
        .list(&session.principal.tenant_id)
        .await
    {
        Ok(a) => a,
        Err(e) => return layout::router_error(&e),
    };
    let base = base_url(state, headers);
    let active: Vec<&AccountView> = accounts.iter().filter(|a| a.active).collect();
    let body = html! {
        main.accounts {
            h1 { "Accounts" }
            @if let Some(n) = &n { (notice(n, &base)) }
            @if active.is_empty() {
                p #no-accounts { "No number is connected yet." }
            } @else {
                div.table-wrap {
                    table #accounts {
                        caption { "Connected numbers" }
                        thead { tr { th scope="col" { "Channel" } th scope="col" { "Number" } th scope="col" { "Health" } th scope="col" { "Quality" } th scope="col" { "Webhook URL" } th scope="col" { span.visually-hidden { "Actions" } } } }
                        tbody { @for a in &active { (account_row(state, session, a, &base)) } }
                    }
                }
            }
            (connect_forms(state, session, &base))
        }
    };
    page_response(status, &shell("Accounts", Some(session), "none", body))
}

/// `GET /console/accounts`.
pub(super) async fn page(
    State(state): State<AppState>,
    headers: HeaderMap,
    AdminSigned(session): AdminSigned,
) -> Response {
    render(&state, &session, &headers, StatusCode::OK, None).await
}

/// `POST /console/accounts`: connects a number from a connect form.
pub(super) async fn connect(
    State(state): State<AppState>,
    headers: HeaderMap,
    AdminSigned(session): AdminSigned,
    ConsoleForm(fields): ConsoleForm<Vec<(String, String)>>,
) -> Response {
    let field = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim().to_owned())
    };
    if let Some(refused) = csrf_refusal(&session, &field("csrf").unwrap_or_default()) {
        return refused;
    }
    let channel = field("channel").unwrap_or_default();
    let address = field("address").unwrap_or_default();
    let credentials: serde_json::Map<String, serde_json::Value> = fields
        .iter()
        .filter_map(|(k, v)| {
            let name = k.strip_prefix("cred.")?;
            let v = v.trim();
            (!v.is_empty()).then(|| (name.to_owned(), v.into()))
        })
        .collect();
    let verify_token = credentials
        .get("verify_token")
        .and_then(|v| v.as_str())
        .map(str::to_owned);
    let tenant = &session.principal.tenant_id;
    match state
        .router
        .accounts()
        .connect(tenant, &channel, &address, &credentials.into(), None)
        .await
    {
        Ok(account) => {
            state.router.templates().queue_sync(tenant, &account.id);
            let n = Notice::Connected {
                account,
                verify_token,
            };
            render(&state, &session, &headers, StatusCode::CREATED, Some(n)).await
        }
        Err(e) => {
            let status = crate::webhooks::error_response(&e).status();
            if status.is_server_error() {
                return layout::router_error(&e);
            }
            render(
                &state,
                &session,
                &headers,
                status,
                Some(Notice::Refused(e.to_string())),
            )
            .await
        }
    }
}

/// The accounts page saying what an action did, or the page for its error.
async fn after_action(
    state: &AppState,
    session: &OperatorSession,
    headers: &HeaderMap,
    outcome: Result<Notice, switchboard_router::error::RouterError>,
) -> Response {
    match outcome {
        Ok(n) => render(state, session, headers, StatusCode::OK, Some(n)).await,
        Err(e) => layout::router_error(&e),
    }
}

/// `POST /console/accounts/{id}/verify`: checks the account with its provider now.
pub(super) async fn verify(
    State(state): State<AppState>,
    headers: HeaderMap,
    AdminSigned(session): AdminSigned,
    Path(id): Path<String>,
    ConsoleForm(form): ConsoleForm<CsrfOnly>,
) -> Response {
    if let Some(refused) = csrf_refusal(&session, &form.csrf) {
        return refused;
    }
    let tenant = &session.principal.tenant_id;
    let outcome = state.router.accounts().verify(tenant, &id).await;
    let outcome = outcome.map(|report| Notice::Verified {
        account_id: id,
        report,
    });
    after_action(&state, &session, &headers, outcome).await
}

/// `POST /console/accounts/{id}/disconnect`.
pub(super) async fn disconnect(
    State(state): State<AppState>,
    headers: HeaderMap,
    AdminSigned(session): AdminSigned,
    Path(id): Path<String>,
    ConsoleForm(form): ConsoleForm<CsrfOnly>,
) -> Response {
    if let Some(refused) = csrf_refusal(&session, &form.csrf) {
        return refused;
    }
    let tenant = &session.principal.tenant_id;
    let outcome = state.router.accounts().disconnect(tenant, &id).await;
    after_action(
        &state,
        &session,
        &headers,
        outcome.map(|_| Notice::Disconnected(id)),
    )
    .await
}

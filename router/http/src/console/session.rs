//! Signing in and out, the session cookie, and CSRF checks.
//!
//! The browser never holds the API key: signing in trades it for a session whose opaque
//! token lives in an `HttpOnly`, `SameSite=Strict` cookie scoped to `/console` (`Secure`
//! when the public URL is https). Every state change is a POST carrying the session's CSRF
//! token in the form, compared in constant time; the sign-in form itself carries a token
//! matched against a short-lived cookie, so no other site can sign a browser in to its own
//! session either.

use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use cookie::{Cookie, SameSite};
use maud::html;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use subtle::ConstantTimeEq;

use super::layout::{self, error_page};
use crate::AppState;
use switchboard_router::tenancy::sessions::{OperatorSession, OperatorSessions, random_token};
use switchboard_router::tenancy::tenants::Role;

/// The session cookie.
pub(super) const SESSION_COOKIE: &str = "sb_console";
/// The sign-in form's anti-forgery cookie.
const SIGN_IN_COOKIE: &str = "sb_console_pre";
/// Every console cookie is sent to console paths only.
const COOKIE_PATH: &str = "/console";

/// The signed-in person of a console request. Without a live session a page answers a
/// redirect to the sign-in page.
pub(super) struct Signed(pub OperatorSession);

/// A signed-in admin; an agent gets the "Not allowed" page.
pub(super) struct AdminSigned(pub OperatorSession);

/// The value of cookie `name` in the request.
fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse_encoded)
        .filter_map(Result::ok)
        .find(|c| c.name() == name)
        .map(|c| c.value().to_owned())
}

fn secure_cookies(state: &AppState) -> bool {
    state
        .router
        .public_url()
        .is_some_and(|u| u.starts_with("https://"))
}

/// A `Set-Cookie` value for a console cookie; `None` clears it.
fn set_cookie(
    state: &AppState,
    name: &'static str,
    value: Option<String>,
    max_age_s: i64,
) -> HeaderValue {
    let mut c = Cookie::build((name, value.clone().unwrap_or_default()))
        .path(COOKIE_PATH)
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(secure_cookies(state))
        .max_age(cookie::time::Duration::seconds(if value.is_some() {
            max_age_s
        } else {
            0
        }))
        .build();
    if value.is_none() {
        c.make_removal();
    }
    HeaderValue::from_str(&c.encoded().to_string()).unwrap_or(HeaderValue::from_static(""))
}

impl FromRequestParts<AppState> for Signed {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let Some(token) = cookie_value(&parts.headers, SESSION_COOKIE) else {
            return Err(Redirect::to("/console/sign-in").into_response());
        };
        match state.router.sessions().resume(&token).await {
            Ok(Some(session)) => Ok(Self(session)),
            Ok(None) => Err(Redirect::to("/console/sign-in").into_response()),
            Err(e) => Err(layout::router_error(&e)),
        }
    }
}

impl FromRequestParts<AppState> for AdminSigned {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let Signed(session) = Signed::from_request_parts(parts, state).await?;
        if session.principal.role != Role::Admin {
            return Err(error_page(
                StatusCode::FORBIDDEN,
                Some(&session),
                "Not allowed",
                "Managing accounts needs an admin key; this session was opened with an agent key.",
            ));
        }
        Ok(Self(session))
    }
}

/// The refusal of a state change whose form does not carry the session's CSRF token.
pub(super) fn csrf_refusal(session: &OperatorSession, token: &str) -> Option<Response> {
    if bool::from(session.csrf_token.as_bytes().ct_eq(token.as_bytes())) {
        None
    } else {
        Some(error_page(
            StatusCode::FORBIDDEN,
            Some(session),
            "Not allowed",
            "The form was not sent from this session's page (its CSRF token did not match). Reload the page and try again.",
        ))
    }
}

/// An `application/x-www-form-urlencoded` body; an unreadable one is a 400 page, not the
/// API's JSON error.
pub(super) struct ConsoleForm<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ConsoleForm<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Response> {
        match axum::Form::<T>::from_request(req, state).await {
            Ok(axum::Form(v)) => Ok(Self(v)),
            Err(e) => Err(error_page(
                e.status(),
                None,
                "Bad request",
                &format!("The form could not be read: {}", e.body_text()),
            )),
        }
    }
}

/// `/console` → `/console/`.
pub(super) async fn to_console() -> Redirect {
    Redirect::permanent("/console/")
}

fn sign_in_form(status: StatusCode, state: &AppState, error: Option<&str>) -> Response {
    let token = random_token("");
    let body = html! {
        main #sign-in-page {
            h1 { "Switchboard" }
            p { "Sign in with an API key. An admin key can also manage accounts." }
            @if let Some(error) = error {
                p.error role="alert" { (error) }
            }
            form #sign-in method="post" action="/console/sign-in" {
                input type="hidden" name="csrf" value=(token);
                label for="api-key" { "API key" }
                input #api-key type="password" name="api_key" autocomplete="current-password"
                    required autofocus spellcheck="false" placeholder="sbk_…";
                button #sign-in-submit type="submit" { "Sign in" }
            }
        }
    };
    let mut response = layout::page_response(status, &layout::shell("Sign in", None, "none", body));
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(state, SIGN_IN_COOKIE, Some(token), 60 * 60),
    );
    response
}

/// `GET /console/sign-in`.
pub(super) async fn sign_in_page(State(state): State<AppState>) -> Response {
    sign_in_form(StatusCode::OK, &state, None)
}

#[derive(Deserialize)]
pub(super) struct SignInForm {
    #[serde(default)]
    api_key: String,
    #[serde(default)]
    csrf: String,
}

/// `POST /console/sign-in`: opens a session for a live API key.
pub(super) async fn sign_in(
    State(state): State<AppState>,
    headers: HeaderMap,
    ConsoleForm(form): ConsoleForm<SignInForm>,
) -> Response {
    let expected = cookie_value(&headers, SIGN_IN_COOKIE).unwrap_or_default();
    if expected.is_empty() || !bool::from(expected.as_bytes().ct_eq(form.csrf.as_bytes())) {
        return sign_in_form(
            StatusCode::FORBIDDEN,
            &state,
            Some("The sign-in form expired or came from another page. Try again."),
        );
    }
    match state.router.sessions().open(form.api_key.trim()).await {
        Ok(Some(opened)) => {
            let max_age = i64::try_from(OperatorSessions::LIFETIME.as_secs()).unwrap_or(i64::MAX);
            let mut response = Redirect::to("/console/").into_response();
            let headers = response.headers_mut();
            headers.append(
                header::SET_COOKIE,
                set_cookie(&state, SESSION_COOKIE, Some(opened.token), max_age),
            );
            headers.append(
                header::SET_COOKIE,
                set_cookie(&state, SIGN_IN_COOKIE, None, 0),
            );
            response
        }
        Ok(None) => sign_in_form(
            StatusCode::UNAUTHORIZED,
            &state,
            Some("That API key is not valid (unknown or revoked)."),
        ),
        Err(e) => layout::router_error(&e),
    }
}

/// A form that carries nothing but its CSRF token (a button).
#[derive(Deserialize)]
pub(super) struct CsrfOnly {
    #[serde(default)]
    pub(super) csrf: String,
}

/// `POST /console/sign-out`: ends the session and clears the cookie.
pub(super) async fn sign_out(
    State(state): State<AppState>,
    headers: HeaderMap,
    Signed(session): Signed,
    ConsoleForm(form): ConsoleForm<CsrfOnly>,
) -> Response {
    if let Some(refused) = csrf_refusal(&session, &form.csrf) {
        return refused;
    }
    if let Some(token) = cookie_value(&headers, SESSION_COOKIE)
        && let Err(e) = state.router.sessions().end(&token).await
    {
        return layout::router_error(&e);
    }
    let mut response = Redirect::to("/console/sign-in").into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(&state, SESSION_COOKIE, None, 0),
    );
    response
}

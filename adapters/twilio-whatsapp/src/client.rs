//! The HTTP side: one reqwest client, basic auth, and reading Twilio's answers.
//!
//! The auth token only ever travels in the `Authorization` header; it is never put in a
//! URL, an error message, an exchange record or a tracing field.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;
use switchboard_core::{
    AccountContext, ChannelError, ContactIdentity, Exchange, OutboundMessage, PhoneNumber,
    ProviderError, SendReceipt, StatusUpdate,
};

use crate::config::TwilioConfig;
use crate::errors::{TwilioErrorBody, error_from_response, error_from_transport, retry_after};
use crate::send::{build_form, form_json, receipt};
use crate::webhook::map_status;

/// Longest response text kept in an exchange when it is not JSON.
const MAX_RAW_RESPONSE: usize = 4096;

/// The account SID and auth token, checked for shape.
pub(crate) fn credentials(account: &AccountContext) -> Result<(&str, &str), ChannelError> {
    let sid = account.credentials.require("account_sid")?;
    let token = account.credentials.require("auth_token")?;
    Ok((sid, token))
}

/// Whether `s` is a Twilio SID of the given prefix (`AC`, `SM`, …): safe in a URL path.
pub(crate) fn is_sid(s: &str, prefix: &str) -> bool {
    s.len() == 34 && s.starts_with(prefix) && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

pub(crate) fn build_client(config: &TwilioConfig) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(config.request_timeout)
        .connect_timeout(config.request_timeout.min(Duration::from_secs(10)))
        .user_agent(concat!(
            "switchboard-twilio-whatsapp/",
            env!("CARGO_PKG_VERSION")
        ))
        .build()
        .unwrap_or_else(|e| {
            tracing::error!(error = %e, "could not build the Twilio HTTP client; using defaults");
            reqwest::Client::new()
        })
}

/// A response: status, headers and the body as JSON (or a truncated string).
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) headers: http::HeaderMap,
    pub(crate) body: Value,
}

pub(crate) async fn read(resp: reqwest::Response) -> Result<Answer, reqwest::Error> {
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let bytes = resp.bytes().await?;
    let body = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
        let text = String::from_utf8_lossy(&bytes);
        let cut: String = text.chars().take(MAX_RAW_RESPONSE).collect();
        Value::String(cut)
    });
    Ok(Answer {
        status,
        headers,
        body,
    })
}

pub(crate) fn error_body(body: &Value) -> TwilioErrorBody {
    serde_json::from_value(body.clone()).unwrap_or_default()
}

pub(crate) async fn send(
    http: &reqwest::Client,
    config: &TwilioConfig,
    account: &AccountContext,
    msg: &OutboundMessage,
) -> Result<SendReceipt, ChannelError> {
    let (sid, token) = credentials(account)?;
    if !is_sid(sid, "AC") {
        return Err(ChannelError::invalid(
            "credential \"account_sid\" is not a Twilio account SID",
        ));
    }
    let form = build_form(config, &account.address, msg)?;
    let request_json = form_json(&form);
    let url = format!(
        "{}/2010-04-01/Accounts/{sid}/Messages.json",
        config.api_base()
    );
    let result = http
        .post(&url)
        .basic_auth(sid, Some(token))
        .header(http::header::ACCEPT, "application/json")
        .form(&form)
        .send()
        .await;
    let resp = match result {
        Ok(r) => r,
        Err(e) => {
            return Err(error_from_transport(e, true).with_exchange(Exchange {
                http_status: None,
                request: Some(request_json),
                response: None,
            }));
        }
    };
    let answer = match read(resp).await {
        Ok(a) => a,
        // The status line arrived, so Twilio had the request: ambiguous.
        Err(e) => return Err(error_from_transport(e, true)),
    };
    let exchange = Exchange {
        http_status: Some(answer.status),
        request: Some(request_json),
        response: Some(answer.body.clone()),
    };
    if (200..300).contains(&answer.status) {
        return receipt(&answer.body, exchange.clone()).ok_or_else(|| {
            ChannelError::ambiguous("Twilio accepted the request but its answer has no message SID")
                .with_exchange(exchange)
        });
    }
    tracing::debug!(
        http_status = answer.status,
        account_id = %account.account_id,
        "Twilio refused a message"
    );
    Err(error_from_response(
        answer.status,
        &error_body(&answer.body),
        retry_after(&answer.headers),
        true,
        exchange,
    ))
}

pub(crate) async fn fetch_status(
    http: &reqwest::Client,
    config: &TwilioConfig,
    account: &AccountContext,
    message_sid: &str,
) -> Result<Option<StatusUpdate>, ChannelError> {
    let (sid, token) = credentials(account)?;
    if !is_sid(sid, "AC") {
        return Err(ChannelError::invalid(
            "credential \"account_sid\" is not a Twilio account SID",
        ));
    }
    if !(is_sid(message_sid, "SM") || is_sid(message_sid, "MM")) {
        return Err(ChannelError::invalid(
            "a Twilio message SID is SM or MM followed by 32 letters and digits",
        ));
    }
    let url = format!(
        "{}/2010-04-01/Accounts/{sid}/Messages/{message_sid}.json",
        config.api_base()
    );
    let result = http
        .get(&url)
        .basic_auth(sid, Some(token))
        .header(http::header::ACCEPT, "application/json")
        .send()
        .await;
    let answer = match result {
        Ok(r) => read(r).await.map_err(|e| error_from_transport(e, false))?,
        Err(e) => return Err(error_from_transport(e, false)),
    };
    if answer.status == 404 {
        return Ok(None);
    }
    let exchange = Exchange {
        http_status: Some(answer.status),
        request: None,
        response: Some(answer.body.clone()),
    };
    if !(200..300).contains(&answer.status) {
        return Err(error_from_response(
            answer.status,
            &error_body(&answer.body),
            retry_after(&answer.headers),
            false,
            exchange,
        ));
    }
    Ok(Some(message_status(&answer.body, message_sid)?))
}

/// A Message resource as a status update.
pub(crate) fn message_status(
    body: &Value,
    message_sid: &str,
) -> Result<StatusUpdate, ChannelError> {
    let s = |k: &str| body.get(k).and_then(Value::as_str);
    let raw = s("status").unwrap_or("");
    let status = map_status(raw).ok_or_else(|| {
        ChannelError::permanent(format!("Twilio reported an unknown message status {raw:?}"))
    })?;
    let timestamp = s("date_updated")
        .and_then(|d| DateTime::parse_from_rfc2822(d).ok())
        .map_or_else(Utc::now, |d| d.with_timezone(&Utc));
    let error = body
        .get("error_code")
        .filter(|c| !c.is_null())
        .map(|c| ProviderError {
            code: c.as_str().map_or_else(|| c.to_string(), str::to_owned),
            message: s("error_message").map(str::to_owned),
            details: None,
        });
    let recipient = s("to")
        .and_then(|to| PhoneNumber::parse(to).ok())
        .map(ContactIdentity::from_phone);
    Ok(StatusUpdate {
        provider_message_id: s("sid").unwrap_or(message_sid).to_owned(),
        message_ref: None,
        status,
        timestamp,
        error,
        recipient,
    })
}

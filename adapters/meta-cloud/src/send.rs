//! Sending: [`OutboundMessage`] → a Graph request (the body is built in `body.rs`), the
//! response → [`SendReceipt`], and mark-as-read with the typing indicator.

use serde_json::{Value, json};
use switchboard_core::{
    AccountContext, Bsuid, ChannelError, Exchange, MessageStatus, OutboundMessage, PhoneNumber,
    SendReceipt, retry_after_header,
};

use crate::body;
use crate::config::{CRED_ACCESS_TOKEN, CRED_PHONE_NUMBER_ID, MetaConfig, is_graph_id};
use crate::errors;
use crate::wire;

/// The account's phone number id and token, checked for shape.
pub(crate) fn account_keys(account: &AccountContext) -> Result<(&str, &str), ChannelError> {
    let id = account
        .credentials
        .get(CRED_PHONE_NUMBER_ID)
        .unwrap_or(&account.routing_key);
    if !is_graph_id(id) {
        return Err(ChannelError::invalid(
            "the account's phone_number_id must be digits",
        ));
    }
    let token = account.credentials.require(CRED_ACCESS_TOKEN)?;
    Ok((id, token))
}

/// One authenticated JSON POST, classified: a 2xx body, or the [`ChannelError`].
pub(crate) async fn post_json(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    body: &Value,
) -> Result<(u16, bytes::Bytes), ChannelError> {
    let resp = client
        .post(url)
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .map_err(|e| errors::from_transport(e, Some(body.clone())))?;
    let status = resp.status().as_u16();
    let retry_after = retry_after_header(resp.headers());
    let bytes = resp
        .bytes()
        .await
        .map_err(|e| errors::from_transport(e, Some(body.clone())))?;
    let exchange = Exchange {
        http_status: Some(status),
        request: Some(body.clone()),
        response: Some(Exchange::response_body(&bytes)),
    };
    if !(200..300).contains(&status) {
        return Err(errors::from_response(status, retry_after, &bytes, exchange));
    }
    // A 2xx that carries an error envelope is still an error.
    if let Some(e) = errors::graph_error(&bytes) {
        return Err(errors::from_graph_error(&e, retry_after, exchange));
    }
    Ok((status, bytes))
}

/// Sends one message.
pub(crate) async fn send(
    client: &reqwest::Client,
    config: &MetaConfig,
    account: &AccountContext,
    msg: &OutboundMessage,
) -> Result<SendReceipt, ChannelError> {
    let (phone_number_id, token) = account_keys(account)?;
    let body = body::build(msg)?;
    let url = config.messages_url(phone_number_id);
    let (status, bytes) = post_json(client, &url, token, &body).await?;
    let exchange = Exchange {
        http_status: Some(status),
        request: Some(body),
        response: Some(Exchange::response_body(&bytes)),
    };
    let parsed: wire::SendResponse = serde_json::from_slice(&bytes).unwrap_or_default();
    let Some(id) = parsed
        .messages
        .first()
        .and_then(|m| m.id.clone())
        .filter(|id| !id.is_empty())
    else {
        // Meta said yes but gave no id: it may send the message, and we cannot track it.
        return Err(ChannelError::ambiguous(
            "the Graph API accepted the message but returned no message id",
        )
        .with_exchange(exchange));
    };
    let contact = parsed.contacts.first();
    let sent_to = msg.to.phone.as_ref();
    // Empty when the message went to a BSUID (§12.2).
    let recipient_wa_id = contact
        .and_then(|c| c.wa_id.as_deref())
        .and_then(|w| PhoneNumber::from_wa_id(w).ok())
        .filter(|w| Some(w) != sent_to);
    // Present only when the message went to a BSUID (§12.2).
    let recipient_bsuid = contact
        .and_then(|c| c.user_id.as_deref())
        .and_then(|u| Bsuid::parse(u).ok());
    Ok(SendReceipt {
        provider_message_id: id,
        // 200 only means accepted (also for `held_for_quality_assessment` and `paused`);
        // status webhooks report the rest.
        status: MessageStatus::Accepted,
        recipient_wa_id,
        recipient_bsuid,
        exchange: Some(exchange),
    })
}

/// Marks an inbound message as read.
pub(crate) async fn mark_read(
    client: &reqwest::Client,
    config: &MetaConfig,
    account: &AccountContext,
    wamid: &str,
    typing: bool,
) -> Result<(), ChannelError> {
    if wamid.trim().is_empty() {
        return Err(ChannelError::invalid("the message id is empty"));
    }
    let (phone_number_id, token) = account_keys(account)?;
    let mut body = json!({"messaging_product": "whatsapp", "status": "read", "message_id": wamid});
    if typing {
        // The only indicator type there is (protocols/meta.md §11).
        body["typing_indicator"] = json!({"type": "text"});
    }
    let url = config.messages_url(phone_number_id);
    let (status, bytes) = post_json(client, &url, token, &body).await?;
    let ok = serde_json::from_slice::<Value>(&bytes)
        .ok()
        .and_then(|v| v.get("success")?.as_bool())
        == Some(true);
    if ok {
        Ok(())
    } else {
        Err(
            ChannelError::permanent("the Graph API did not confirm the read receipt")
                .with_exchange(Exchange {
                    http_status: Some(status),
                    request: Some(body),
                    response: Some(Exchange::response_body(&bytes)),
                }),
        )
    }
}

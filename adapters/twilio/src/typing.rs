//! WhatsApp typing indicators through Twilio's Typing Indicators resource (public beta),
//! which is also Twilio's only way to mark an inbound WhatsApp message read.
//!
//! Facts relied on (https://www.twilio.com/docs/whatsapp/api/typing-indicators-resource,
//! not covered by protocols/twilio.md):
//! - `POST https://messaging.twilio.com/v2/Indicators/Typing.json`, HTTP basic auth with
//!   the account SID and auth token, form-encoded (`application/x-www-form-urlencoded`);
//! - form fields `messageId` (required: the SID of the inbound message being answered,
//!   `SM…` or `MM…`, pattern `^(SM|MM)[0-9a-fA-F]{32}$`) and `channel` (required, `whatsapp`);
//! - sending it marks the referenced message read in the person's WhatsApp and shows the
//!   typing indicator until the reply is delivered or for 25 seconds;
//! - success answers `200` with `{"success": true}`; errors use the 2010 API's error shape.
//!
//! There is no call that marks read without the indicator, so `mark_read` without typing is
//! unsupported on Twilio (`Capabilities::read_receipts` is false, `typing_indicator` true).

use serde_json::Value;
use switchboard_core::{AccountContext, ChannelError};

use crate::config::{TwilioConfig, credentials, is_sid};
use crate::errors::error_from_transport;
use crate::send::{form_json, read};

/// How the resource is named in errors.
const API: &str = "Twilio's Typing Indicators API";

/// Whether `s` is a message SID the resource takes: `SM` or `MM` and 32 hexadecimal digits.
pub fn is_typing_message_id(s: &str) -> bool {
    s.len() == 34
        && (s.starts_with("SM") || s.starts_with("MM"))
        && s[2..].bytes().all(|b| b.is_ascii_hexdigit())
}

/// Shows the typing indicator for (and so marks read) the inbound message `message_sid`.
///
/// # Errors
/// `Invalid` for a message id that is not an inbound message SID; Twilio's errors
/// classified (a retry only shows the indicator again, so nothing is ambiguous).
pub(crate) async fn show(
    http: &reqwest::Client,
    config: &TwilioConfig,
    account: &AccountContext,
    message_sid: &str,
) -> Result<(), ChannelError> {
    let (sid, token) = credentials(account)?;
    if !is_sid(sid, "AC") {
        return Err(ChannelError::invalid(
            "credential \"account_sid\" is not a Twilio account SID",
        ));
    }
    if !is_typing_message_id(message_sid) {
        return Err(ChannelError::invalid(format!(
            "Twilio marks read by the inbound message's SID (SM or MM followed by 32 hexadecimal digits), not {message_sid:?}"
        )));
    }
    let form = [("messageId", message_sid), ("channel", "whatsapp")];
    let request = form_json(
        &form
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect::<Vec<_>>(),
    );
    let url = format!("{}/v2/Indicators/Typing.json", config.messaging_api_base());
    let sent = http
        .post(&url)
        .basic_auth(sid, Some(token))
        .header(http::header::ACCEPT, "application/json")
        .form(&form)
        .send()
        .await;
    let answer = match sent {
        Ok(resp) => read(resp).await,
        Err(e) => Err(e),
    }
    .map_err(|e| error_from_transport(e, false))?
    .accepted(API, Some(&request))?;
    if answer.body.get("success").and_then(Value::as_bool) == Some(true) {
        Ok(())
    } else {
        Err(
            ChannelError::permanent(format!("{API} did not confirm the typing indicator"))
                .with_exchange(answer.exchange(Some(request))),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_are_inbound_message_or_media_sids() {
        assert!(is_typing_message_id("SM0123456789abcdef0123456789abcdef"));
        assert!(is_typing_message_id("MM0123456789ABCDEF0123456789abcdef"));
        for bad in [
            "SM0900",
            "HX0123456789abcdef0123456789abcdef",
            "SM0123456789abcdef0123456789abcdeg",
            "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBJDQjZCMzlEQUE4OTJBMTE4RTUA",
            "",
        ] {
            assert!(!is_typing_message_id(bad), "{bad}");
        }
    }
}

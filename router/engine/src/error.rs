//! The router's errors, each with a stable snake_case code and an HTTP status, so the
//! HTTP layer maps them without knowing their causes.

use sea_orm::DbErr;
use switchboard_core::{ChannelError, WebhookError};

use crate::store::crypto::CryptoError;

/// An error from the router's public operations.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RouterError {
    /// The caller's request is wrong; the message says how.
    #[error("{message}")]
    Invalid { code: &'static str, message: String },
    /// The named thing does not exist for this tenant.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A free-form message outside the 24-hour customer-service window.
    #[error(
        "the contact has not written to this sender in the last 24 hours: only a template can be sent"
    )]
    OutsideServiceWindow,
    /// Content a channel the message may go out on cannot carry (the message names the
    /// channel and the part).
    #[error("{0}")]
    UnsupportedContent(String),
    /// The contact opted out of messages from this sender.
    #[error("the contact opted out of messages from this sender; they must write again first")]
    OptedOut,
    /// The request is well formed but cannot be done as asked (e.g. a template send the
    /// catalog refuses: `template_not_found`, `template_not_approved`,
    /// `template_variables_mismatch`).
    #[error("{message}")]
    Unprocessable { code: &'static str, message: String },
    /// The request conflicts with existing state.
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// The caller may not do this.
    #[error("this API key may not {0}")]
    Forbidden(&'static str),
    /// A webhook was refused.
    #[error(transparent)]
    Webhook(#[from] WebhookError),
    /// A provider call failed.
    #[error("provider error: {0}")]
    Channel(#[from] ChannelError),
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    /// The database failed; callers see a 503 and may retry.
    #[error("database error: {0}")]
    Database(#[from] DbErr),
}

impl crate::store::DbFailure for RouterError {
    fn db_err(&self) -> Option<&DbErr> {
        match self {
            Self::Database(e) => Some(e),
            _ => None,
        }
    }
}

impl RouterError {
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid {
            code,
            message: message.into(),
        }
    }

    /// The stable error code of the API.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Invalid { code, .. }
            | Self::Conflict { code, .. }
            | Self::Unprocessable { code, .. } => code,
            Self::NotFound(_) => "not_found",
            Self::OutsideServiceWindow => "outside_service_window",
            Self::OptedOut => "opted_out",
            Self::UnsupportedContent(_) => "unsupported_content",
            Self::Forbidden(_) => "forbidden",
            Self::Webhook(WebhookError::MissingSignature | WebhookError::BadSignature) => {
                "bad_signature"
            }
            Self::Webhook(WebhookError::UnknownAccount) => "unknown_account",
            Self::Webhook(_) => "malformed_webhook",
            Self::Channel(e) if e.is_auth() => "provider_auth_failed",
            Self::Channel(_) => "provider_error",
            Self::Crypto(_) => "credentials_unreadable",
            Self::Database(e) if crate::store::is_data_exception(e) => "invalid_input",
            Self::Database(_) => "database_unavailable",
        }
    }

    /// The HTTP status for this error.
    pub fn http_status(&self) -> u16 {
        match self {
            Self::Invalid { .. } => 400,
            Self::NotFound(_) => 404,
            Self::OutsideServiceWindow
            | Self::OptedOut
            | Self::UnsupportedContent(_)
            | Self::Unprocessable { .. } => 422,
            Self::Conflict { .. } => 409,
            Self::Forbidden(_) => 403,
            Self::Webhook(e) => e.http_status(),
            Self::Channel(_) => 502,
            Self::Crypto(_) => 500,
            // A value the database refused is the request's fault: never a 5xx for input.
            Self::Database(e) if crate::store::is_data_exception(e) => 400,
            Self::Database(_) => 503,
        }
    }
}

pub type Result<T, E = RouterError> = std::result::Result<T, E>;

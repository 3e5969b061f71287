//! Sessions of people signed in with an API key (the operator console's browsers).
//!
//! A person signs in once with an API key; the browser then holds an opaque session token
//! instead of the key. The database keeps the token's SHA-256 only, beside the key it was
//! opened with and the session's CSRF token: a session lasts [`OperatorSessions::LIFETIME`]
//! at most, ends at sign-out, and ends at once when its API key is revoked (every resume
//! reads the key's state in the same query).

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore as _;
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter};

use crate::error::Result;
use crate::ids::now_ms;
use crate::store::Store;
use crate::store::crypto::hash_api_key;
use crate::store::entity::{api_keys, console_sessions};
use crate::tenancy::tenants::{Principal, Role, Tenants};

/// A live session: who it is and the token its state-changing requests must carry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OperatorSession {
    pub principal: Principal,
    pub csrf_token: String,
    /// Unix milliseconds.
    pub expires_at: i64,
}

/// A session just opened: the token for the browser (shown this once) and the session.
#[derive(Clone)]
pub struct OpenedSession {
    pub token: String,
    pub session: OperatorSession,
}

impl std::fmt::Debug for OpenedSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenedSession")
            .field("token", &"[REDACTED]")
            .field("session", &self.session)
            .finish()
    }
}

/// Opens, resumes and ends sessions.
#[derive(Clone, Debug)]
pub struct OperatorSessions {
    store: Store,
    tenants: Tenants,
}

/// 256 random bits, base64url, after `prefix`: for tokens a browser holds (a session, a
/// sign-in form's anti-forgery token, a suggested webhook verify token).
pub fn random_token(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes))
}

impl OperatorSessions {
    /// How long a session lasts from sign-in: a working day and then some.
    pub const LIFETIME: Duration = Duration::from_secs(12 * 60 * 60);

    pub fn new(store: Store) -> Self {
        Self {
            tenants: Tenants::new(store.clone()),
            store,
        }
    }

    /// Opens a session for the holder of `api_key`; `None` when the key is not a live key.
    /// Sweeps expired sessions on the way (sign-ins are rare; the sweep is one indexed
    /// delete).
    ///
    /// # Errors
    /// A database error.
    pub async fn open(&self, api_key: &str) -> Result<Option<OpenedSession>> {
        let Some(principal) = self.tenants.authenticate(api_key).await? else {
            return Ok(None);
        };
        let now = now_ms();
        let db = self.store.write_conn();
        console_sessions::Entity::delete_many()
            .filter(console_sessions::Column::ExpiresAt.lte(now))
            .exec(db)
            .await?;
        let token = random_token("sbs_");
        let csrf_token = random_token("");
        let expires_at = now + i64::try_from(Self::LIFETIME.as_millis()).unwrap_or(i64::MAX);
        console_sessions::Entity::insert(console_sessions::ActiveModel {
            token_hash: Set(hash_api_key(&token)),
            tenant_id: Set(principal.tenant_id.clone()),
            key_id: Set(principal.key_id.clone()),
            csrf_token: Set(csrf_token.clone()),
            created_at: Set(now),
            expires_at: Set(expires_at),
        })
        .exec_without_returning(db)
        .await?;
        Ok(Some(OpenedSession {
            token,
            session: OperatorSession {
                principal,
                csrf_token,
                expires_at,
            },
        }))
    }

    /// The live session `token` names: not expired, not ended, its key not revoked.
    ///
    /// # Errors
    /// A database error.
    pub async fn resume(&self, token: &str) -> Result<Option<OperatorSession>> {
        if !token.starts_with("sbs_") || token.len() > 100 {
            return Ok(None);
        }
        let Some((session, key)) = console_sessions::Entity::find_by_id(hash_api_key(token))
            .find_also_related(api_keys::Entity)
            .one(self.store.conn())
            .await?
        else {
            return Ok(None);
        };
        let Some(key) = key.filter(|k| k.revoked_at.is_none()) else {
            return Ok(None);
        };
        if session.expires_at <= now_ms() {
            return Ok(None);
        }
        let Some(role) = Role::parse(&key.role) else {
            return Ok(None);
        };
        Ok(Some(OperatorSession {
            principal: Principal {
                tenant_id: session.tenant_id,
                key_id: session.key_id,
                role,
            },
            csrf_token: session.csrf_token,
            expires_at: session.expires_at,
        }))
    }

    /// Ends the session `token` names (nothing when there is none).
    ///
    /// # Errors
    /// A database error.
    pub async fn end(&self, token: &str) -> Result<()> {
        console_sessions::Entity::delete_by_id(hash_api_key(token))
            .exec(self.store.write_conn())
            .await?;
        Ok(())
    }
}

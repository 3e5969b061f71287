//! Tenants and their API keys. Keys are shown once, stored as SHA-256 hashes.

use std::fmt;

use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter};
use serde::Serialize;

use crate::crypto::{generate_api_key, hash_api_key};
use crate::error::{Result, RouterError};
use crate::ids::{self, now_ms};
use crate::router::Router;
use crate::store::entity::{api_keys, tenants};

/// What an API key may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything, including connecting accounts and creating keys.
    Admin,
    /// Send and read; no account or key management.
    Agent,
}

impl Role {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Agent => "agent",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "admin" => Some(Self::Admin),
            "agent" => Some(Self::Agent),
            _ => None,
        }
    }
}

/// An authenticated caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub tenant_id: String,
    pub key_id: String,
    pub role: Role,
}

impl Principal {
    /// # Errors
    /// [`RouterError::Forbidden`] unless the key is an admin key.
    pub fn require_admin(&self, action: &'static str) -> Result<()> {
        if self.role == Role::Admin {
            Ok(())
        } else {
            Err(RouterError::Forbidden(action))
        }
    }
}

/// A newly created key: the only time its secret is available.
#[derive(Clone, Serialize)]
pub struct NewApiKey {
    pub id: String,
    pub tenant_id: String,
    pub role: Role,
    pub key: String,
}

impl fmt::Debug for NewApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewApiKey")
            .field("id", &self.id)
            .field("tenant_id", &self.tenant_id)
            .field("role", &self.role)
            .field("key", &"[REDACTED]")
            .finish()
    }
}

impl Router {
    /// Creates a tenant and its first admin API key.
    ///
    /// # Errors
    /// `invalid_name` for an empty or over-long name; a database error.
    pub async fn create_tenant(&self, name: &str) -> Result<NewApiKey> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 200 {
            return Err(RouterError::invalid(
                "invalid_name",
                "a tenant name must have 1 to 200 characters",
            ));
        }
        let tenant_id = ids::new_id(ids::TENANT);
        let txn = self.inner.store.write_txn().await?;
        tenants::Entity::insert(tenants::ActiveModel {
            id: Set(tenant_id.clone()),
            name: Set(name.to_owned()),
            notify_url: Set(None),
            notify_secret_enc: Set(None),
            created_at: Set(now_ms()),
        })
        .exec_without_returning(&txn)
        .await?;
        let key = insert_key(&txn, &tenant_id, Role::Admin, Some("initial admin key")).await?;
        txn.commit().await?;
        Ok(key)
    }

    /// Creates another API key for the tenant.
    ///
    /// # Errors
    /// A database error.
    pub async fn create_api_key(
        &self,
        tenant_id: &str,
        role: Role,
        name: Option<&str>,
    ) -> Result<NewApiKey> {
        insert_key(self.inner.store.write_conn(), tenant_id, role, name).await
    }

    /// The caller an API key belongs to, if it is a live key.
    ///
    /// # Errors
    /// A database error.
    pub async fn authenticate(&self, api_key: &str) -> Result<Option<Principal>> {
        if !api_key.starts_with("sbk_") || api_key.len() > 100 {
            return Ok(None);
        }
        let row = api_keys::Entity::find()
            .filter(api_keys::Column::KeyHash.eq(hash_api_key(api_key)))
            .one(self.inner.store.conn())
            .await?;
        Ok(row.filter(|r| r.revoked_at.is_none()).and_then(|r| {
            Some(Principal {
                role: Role::parse(&r.role)?,
                tenant_id: r.tenant_id,
                key_id: r.id,
            })
        }))
    }
}

async fn insert_key<C: sea_orm::ConnectionTrait>(
    db: &C,
    tenant_id: &str,
    role: Role,
    name: Option<&str>,
) -> Result<NewApiKey> {
    let key = generate_api_key();
    let id = ids::new_id(ids::API_KEY);
    api_keys::Entity::insert(api_keys::ActiveModel {
        id: Set(id.clone()),
        tenant_id: Set(tenant_id.to_owned()),
        key_hash: Set(hash_api_key(&key)),
        prefix: Set(key.chars().take(10).collect()),
        role: Set(role.as_str().to_owned()),
        name: Set(name.map(str::to_owned)),
        created_at: Set(now_ms()),
        revoked_at: Set(None),
    })
    .exec_without_returning(db)
    .await?;
    Ok(NewApiKey {
        id,
        tenant_id: tenant_id.to_owned(),
        role,
        key,
    })
}

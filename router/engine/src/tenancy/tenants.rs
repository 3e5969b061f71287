//! Tenants and their API keys. Keys are shown once, stored as SHA-256 hashes.

use std::fmt;

use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use serde::Serialize;

use crate::error::{Result, RouterError};
use crate::ids::{self, now_ms};
use crate::store::Store;
use crate::store::crypto::{generate_api_key, hash_api_key};
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

/// A tenant as `switchboard tenant list` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TenantView {
    pub id: String,
    pub name: String,
    pub created_at: String,
}

/// An API key without its secret: what `GET /v1/keys` and `switchboard key list` show.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ApiKeyView {
    pub id: String,
    pub role: Role,
    pub name: Option<String>,
    /// The key's first characters, to tell keys apart (never enough to use one).
    pub prefix: String,
    pub created_at: String,
    pub revoked_at: Option<String>,
}

impl ApiKeyView {
    fn from_row(row: api_keys::Model) -> Self {
        Self {
            role: Role::parse(&row.role).unwrap_or(Role::Agent),
            id: row.id,
            name: row.name,
            prefix: row.prefix,
            created_at: ids::rfc3339(row.created_at),
            revoked_at: row.revoked_at.map(ids::rfc3339),
        }
    }
}

/// Tenants and their API keys. Needs only the database: the CLI manages tenants without
/// the credentials key.
#[derive(Clone, Debug)]
pub struct Tenants {
    store: Store,
}

impl Tenants {
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    /// Creates a tenant and its first admin API key.
    ///
    /// # Errors
    /// `invalid_name` for an empty or over-long name; a database error.
    pub async fn create(&self, name: &str) -> Result<NewApiKey> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 200 {
            return Err(RouterError::invalid(
                "invalid_name",
                "a tenant name must have 1 to 200 characters",
            ));
        }
        let tenant_id = ids::new_id(ids::TENANT);
        let txn = self.store.write_txn().await?;
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

    /// Every tenant, oldest first.
    ///
    /// # Errors
    /// A database error.
    pub async fn list(&self) -> Result<Vec<TenantView>> {
        Ok(tenants::Entity::find()
            .order_by_asc(tenants::Column::CreatedAt)
            .order_by_asc(tenants::Column::Id)
            .all(self.store.conn())
            .await?
            .into_iter()
            .map(|t| TenantView {
                id: t.id,
                name: t.name,
                created_at: ids::rfc3339(t.created_at),
            })
            .collect())
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
        insert_key(self.store.write_conn(), tenant_id, role, name).await
    }

    /// A tenant's API keys without their secrets, revoked ones included, oldest first.
    ///
    /// # Errors
    /// `not_found` for an unknown tenant; a database error.
    pub async fn list_api_keys(&self, tenant_id: &str) -> Result<Vec<ApiKeyView>> {
        if tenants::Entity::find_by_id(tenant_id.to_owned())
            .one(self.store.conn())
            .await?
            .is_none()
        {
            return Err(RouterError::NotFound("tenant"));
        }
        Ok(api_keys::Entity::find()
            .filter(api_keys::Column::TenantId.eq(tenant_id))
            .order_by_asc(api_keys::Column::CreatedAt)
            .order_by_asc(api_keys::Column::Id)
            .all(self.store.conn())
            .await?
            .into_iter()
            .map(ApiKeyView::from_row)
            .collect())
    }

    /// Revokes the key `key_id` (of `tenant_id` when given): it authenticates nothing from
    /// now on. Revoking a revoked key keeps its first revocation time.
    ///
    /// # Errors
    /// `not_found` when no such key (of that tenant) exists; a database error.
    pub async fn revoke_api_key(
        &self,
        tenant_id: Option<&str>,
        key_id: &str,
    ) -> Result<ApiKeyView> {
        let txn = self.store.write_txn().await?;
        let mut find = api_keys::Entity::find_by_id(key_id.to_owned());
        if let Some(tenant_id) = tenant_id {
            find = find.filter(api_keys::Column::TenantId.eq(tenant_id));
        }
        let mut row = find
            .one(&txn)
            .await?
            .ok_or(RouterError::NotFound("api key"))?;
        if row.revoked_at.is_none() {
            let at = now_ms();
            api_keys::Entity::update_many()
                .col_expr(
                    api_keys::Column::RevokedAt,
                    sea_orm::sea_query::Expr::value(at),
                )
                .filter(api_keys::Column::Id.eq(key_id))
                .exec(&txn)
                .await?;
            row.revoked_at = Some(at);
        }
        txn.commit().await?;
        Ok(ApiKeyView::from_row(row))
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
            .one(self.store.conn())
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

//! Who calls `/api/v1`: a [`Principal`], found from the bearer token. The admin token
//! (`server.admin_token`) opens every tenant; a tenant's API token (`[tenants.T.api_tokens.NAME]`)
//! opens that tenant alone, with its scope. Only SHA-256 digests of the tokens are kept here;
//! a presented token is hashed and compared with each in constant time, and each token's uses
//! are counted by its name (never its value) for `/metrics`.

use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::{Config, TokenScope};
use crate::id::{TenantId, TokenName};
use crate::metrics::Metrics;
use crate::secrets::{Place, Vault};

/// Who a request comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    /// The operator: every tenant, every action.
    Admin,
    /// A tenant's app.
    Tenant {
        /// The one tenant it opens.
        tenant: TenantId,
        /// Its token's name.
        name: TokenName,
        /// What it may do.
        scope: TokenScope,
    },
}

impl Principal {
    /// Who, as the audit trail and config versions name it: `admin`, or `<tenant>/<token name>`.
    pub fn actor(&self) -> String {
        match self {
            Principal::Admin => "admin".to_owned(),
            Principal::Tenant { tenant, name, .. } => format!("{tenant}/{name}"),
        }
    }

    /// Whether this caller is the admin or one of `tenant`'s own tokens, whatever its scope.
    pub fn owns(&self, tenant: &TenantId) -> bool {
        match self {
            Principal::Admin => true,
            Principal::Tenant { tenant: own, .. } => own == tenant,
        }
    }

    /// Whether this caller may see `tenant`'s data (a `tools` token sees none).
    pub fn sees(&self, tenant: &TenantId) -> bool {
        match self {
            Principal::Admin => true,
            Principal::Tenant {
                tenant: own, scope, ..
            } => own == tenant && scope.reads(),
        }
    }

    /// The tenant a list is limited to: a tenant token's own whatever was asked, or for the
    /// admin what it asked (`Some(None)`: every tenant). `None` when a tenant token asked for
    /// another tenant, or reads nothing: its list is empty.
    pub fn limit(&self, asked: Option<TenantId>) -> Option<Option<TenantId>> {
        match self {
            Principal::Admin => Some(asked),
            Principal::Tenant { scope, .. } if !scope.reads() => None,
            Principal::Tenant { tenant, .. } => match asked {
                Some(other) if other != *tenant => None,
                _ => Some(Some(tenant.clone())),
            },
        }
    }

    /// Whether this caller may replay deliveries and jobs and queue sync jobs.
    pub fn may_replay(&self) -> bool {
        match self {
            Principal::Admin => true,
            Principal::Tenant { scope, .. } => scope.replays(),
        }
    }

    /// Whether this caller may ask for `tenant`'s actions (the admin any tenant's; a tenant
    /// token with the `act` or `manage` scope its own).
    pub fn may_act(&self, tenant: &TenantId) -> bool {
        match self {
            Principal::Admin => true,
            Principal::Tenant {
                tenant: own, scope, ..
            } => own == tenant && scope.acts(),
        }
    }

    /// Whether this caller may list and call `tenant`'s tools.
    pub fn may_call_tools(&self, tenant: &TenantId) -> bool {
        match self {
            Principal::Admin => true,
            Principal::Tenant {
                tenant: own, scope, ..
            } => own == tenant && scope.calls_tools(),
        }
    }

    /// Whether this caller may set `tenant`'s credentials (the admin any tenant's; a tenant
    /// token with the `manage` scope its own).
    pub fn may_manage(&self, tenant: &TenantId) -> bool {
        match self {
            Principal::Admin => true,
            Principal::Tenant {
                tenant: own, scope, ..
            } => own == tenant && *scope == TokenScope::Manage,
        }
    }
}

/// One accepted token.
struct TokenEntry {
    digest: [u8; 32],
    principal: Principal,
    /// Its uses, as `hub_api_requests_total{token="admin"}` or `{token="tenant/name"}`.
    uses: metrics::Counter,
}

/// Every token `/api/v1` accepts, as digests.
#[derive(Default)]
pub struct ApiTokens {
    entries: Vec<TokenEntry>,
}

fn digest(token: &[u8]) -> [u8; 32] {
    Sha256::digest(token).into()
}

impl ApiTokens {
    /// The admin token and every tenant's API tokens of `config`, opened in `vault`.
    pub fn new(config: &Config, vault: &Vault, metrics: &Metrics) -> ApiTokens {
        let mut entries = Vec::new();
        if let Some(token) = vault.admin_token() {
            entries.push(TokenEntry {
                digest: digest(token.expose_secret()),
                principal: Principal::Admin,
                uses: metrics.api_requests("admin"),
            });
        }
        for (tenant, t) in &config.tenants {
            for (name, api_token) in &t.api_tokens {
                let place = Place::ApiToken {
                    tenant: tenant.to_string(),
                    name: name.to_string(),
                };
                let Some(token) = vault.at(&place) else {
                    continue;
                };
                entries.push(TokenEntry {
                    digest: digest(token.expose_secret()),
                    principal: Principal::Tenant {
                        tenant: tenant.clone(),
                        name: name.clone(),
                        scope: api_token.scope,
                    },
                    uses: metrics.api_requests(&format!("{tenant}/{name}")),
                });
            }
        }
        ApiTokens { entries }
    }

    /// Whether some token opens `principal` (after a reload, a session of a revoked token ends).
    pub fn knows(&self, principal: &Principal) -> bool {
        self.entries.iter().any(|e| e.principal == *principal)
    }

    /// Whether any token is configured (the API is off without one).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The caller of a request, from its `Authorization: Bearer` header (see [`find`]).
    ///
    /// [`find`]: ApiTokens::find
    pub fn caller(&self, headers: &axum::http::HeaderMap) -> Option<Principal> {
        let given = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        self.find(given)
    }

    /// The caller `token` belongs to, counting the use; `None` for an unknown token. Every
    /// entry is compared, in constant time, whichever matches.
    pub fn find(&self, token: &str) -> Option<Principal> {
        if token.is_empty() {
            return None;
        }
        let given = digest(token.as_bytes());
        let mut found = None;
        for entry in &self.entries {
            if bool::from(given.ct_eq(&entry.digest)) {
                found = Some(entry);
            }
        }
        found.map(|entry| {
            entry.uses.increment(1);
            entry.principal.clone()
        })
    }
}

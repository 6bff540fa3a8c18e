//! The audit trail: who did what, when, from where. Append-only: entries are written, read and,
//! past `server.audit_retention_days`, pruned; never changed. It names what was done (a
//! credential set, a replay), never a secret's value.

use serde::Serialize;

/// One thing done.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct AuditEntry {
    /// When (ms).
    pub at_ms: i64,
    /// Who: `admin`, `<tenant>/<token>`, `console:admin`, `file`, `cli:<user>`, `hub`.
    pub actor: String,
    /// The tenant it concerns, if one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// What: `config.version`, `credential.set`, `tenant.created`, `token.created`,
    /// `replay`, `replay.dead`, `sync`, `action`, `console.login`, `console.login_failed`.
    pub action: String,
    /// What it was done to: `version 7`, `probe.api_key`, `delivery 42`.
    pub target: String,
    /// In words.
    pub detail: String,
    /// From where: the client's address, `cli`, or empty.
    pub source: String,
}

impl AuditEntry {
    /// An entry now.
    pub fn now(actor: impl Into<String>, action: &str, target: impl Into<String>) -> AuditEntry {
        AuditEntry {
            at_ms: crate::clock::now_ms(),
            actor: actor.into(),
            tenant: None,
            action: action.to_owned(),
            target: target.into(),
            detail: String::new(),
            source: String::new(),
        }
    }

    /// Concerning `tenant`.
    #[must_use]
    pub fn tenant(mut self, tenant: impl ToString) -> AuditEntry {
        self.tenant = Some(tenant.to_string());
        self
    }

    /// With `detail`.
    #[must_use]
    pub fn detail(mut self, detail: impl Into<String>) -> AuditEntry {
        self.detail = detail.into();
        self
    }

    /// From `source`.
    #[must_use]
    pub fn source(mut self, source: impl ToString) -> AuditEntry {
        self.source = source.to_string();
        self
    }
}

/// A stored entry.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct AuditRow {
    /// Its place in the trail (newer: larger).
    pub id: i64,
    /// The entry.
    #[serde(flatten)]
    pub entry: AuditEntry,
}

/// Which entries.
#[derive(Clone, Debug, Default)]
pub struct AuditFilter {
    /// Only this tenant's.
    pub tenant: Option<String>,
    /// Only this actor's.
    pub actor: Option<String>,
    /// Only older than this id (the next page).
    pub before: Option<i64>,
    /// At most this many, newest first.
    pub limit: usize,
}

//! Changes made through the API (a tenant created, a credential set): an edit of the document
//! this hub runs, checked as `hub check` checks a file, written as a new config version on top of
//! the one it was made on, then applied here (and, on PostgreSQL, by every hub). A change that
//! does not check leaves the running version untouched.

use serde::Serialize;
use toml_edit::DocumentMut;

use super::{Change, Current, NotApplied, Reloaded};
use crate::config::Config;
use crate::config::document::FileText;
use crate::store::ConfigVersion;

/// One problem with a change, where it is (the API's `problems`, as for an action's input).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// The setting's dotted path (`tenants.acme.routes[2].action`); empty for a problem of the
    /// whole config (a connector that does not load).
    pub field: String,
    /// What is wrong.
    pub message: String,
}

/// Why a change was not applied. Nothing changed then.
#[derive(Debug)]
pub enum Refused {
    /// It was made on version `made_on`, and `newest` is newer.
    Stale {
        /// The version the change named (`If-Match`) or this hub ran.
        made_on: i64,
        /// The newest version.
        newest: i64,
    },
    /// It does not check: each problem, located.
    Invalid(Vec<Problem>),
    /// The edit itself could not be made (the request names nothing to change), in words.
    Bad(String),
    /// The hub cannot take changes now (no config file, the store failing), in words.
    Failed(String),
}

impl Current {
    /// Edits the document this hub runs with `edit`, checks the result, writes it as a new
    /// version made on `if_match` (else the version this hub runs) and applies it. `edit`'s own
    /// answer comes back with what was applied.
    ///
    /// # Errors
    /// [`Refused`]: stale, invalid, a bad edit, or a failure; nothing changed then.
    pub async fn change<T>(
        &self,
        if_match: Option<i64>,
        change: Change,
        edit: impl FnOnce(&mut DocumentMut) -> Result<T, String>,
    ) -> Result<(Reloaded, T), Refused> {
        let _one = self.reloading.lock().await;
        let Some(path) = self.path.clone() else {
            return Err(Refused::Failed(
                "this hub was not started from a config file".into(),
            ));
        };
        let store = self.hub().store.clone();
        let newest = store
            .config_versions(None, 1)
            .await
            .map_err(|e| Refused::Failed(format!("cannot read the config versions: {e}")))?
            .first()
            .map_or(0, |v| v.number);
        let (state, body) = self.versions.get();
        let made_on = if_match.or(state.running).unwrap_or(newest);
        if made_on != newest {
            return Err(Refused::Stale { made_on, newest });
        }
        let mut doc: DocumentMut = body
            .parse()
            .map_err(|e| Refused::Failed(format!("the running config is not TOML: {e}")))?;
        let answer = edit(&mut doc).map_err(Refused::Bad)?;
        let new_body = doc.to_string();
        // Checked as the file would be: the same parser, the same located errors.
        let text = if store.shared() {
            FileText::render(newest + 1, &new_body)
        } else {
            new_body.clone()
        };
        if let Err(e) = Config::from_str(&text, &path) {
            return Err(Refused::Invalid(vec![Problem {
                field: e.field().unwrap_or_default().to_owned(),
                message: e.to_string(),
            }]));
        }
        self.build(text).await.map_err(|NotApplied(problems)| {
            Refused::Invalid(
                problems
                    .into_iter()
                    .map(|message| Problem {
                        field: String::new(),
                        message,
                    })
                    .collect(),
            )
        })?;
        let number = self
            .push(Some(newest), new_body.clone(), change.clone())
            .await
            .map_err(|e| match e.0.first() {
                Some(m) if m.starts_with("the config changed meanwhile") => Refused::Stale {
                    made_on: newest,
                    newest: newest + 1,
                },
                _ => Refused::Failed(e.to_string()),
            })?;
        let written = ConfigVersion {
            number,
            applied_at_ms: crate::clock::now_ms(),
            actor: change.actor,
            reason: change.reason,
            document: new_body,
        };
        let reloaded = self
            .apply(&written)
            .await
            .map_err(|e| Refused::Failed(e.to_string()))?;
        Ok((reloaded, answer))
    }
}

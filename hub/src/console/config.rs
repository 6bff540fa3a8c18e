//! `GET /console/config` (admin): the config version this hub runs (and a newer one it could
//! not apply), the versions with who made each and why, what differs between two (sealed values
//! only said to have changed), and `POST /console/config/rollback` to make an older one the
//! newest again.

use std::sync::Arc;

use axum::Form;
use axum::extract::{Query, State};
use serde::{Deserialize, Serialize};

use super::{DonePage, Page, PageError, Viewer, render, renders, urls};
use crate::config::document::{Difference, diff};
use crate::reload::{Change, Current, VersionState};
use crate::store::ConfigVersion;

/// How many versions the page lists.
const SHOWN: usize = 50;

/// Which two versions to compare.
#[derive(Deserialize)]
pub(super) struct ConfigQuery {
    from: Option<i64>,
    to: Option<i64>,
}

#[derive(Serialize)]
struct ConfigPage {
    this_hub: VersionState,
    versions: Vec<ConfigVersion>,
    newest: Option<i64>,
    compared: Option<(i64, i64)>,
    differences: Vec<Difference>,
    nonce: String,
}
renders!(ConfigPage = "config.html");

fn admin(viewer: &Viewer) -> Result<(), PageError> {
    if viewer.own_tenant().is_some() {
        return Err(PageError::forbidden("the config's history is the admin's"));
    }
    Ok(())
}

/// `GET /console/config`.
pub(super) async fn page(
    State(current): State<Arc<Current>>,
    viewer: Viewer,
    Query(q): Query<ConfigQuery>,
) -> Page {
    admin(&viewer)?;
    let store = current.hub().store.clone();
    let versions = store.config_versions(None, SHOWN).await?;
    let newest = versions.first().map(|v| v.number);
    let (compared, differences) = match (q.from, q.to.or(newest)) {
        (Some(from), Some(to)) => {
            let get = |n| {
                let store = store.clone();
                async move {
                    store
                        .config_version(Some(n))
                        .await?
                        .filter(|v| v.number == n)
                        .ok_or_else(|| PageError::not_found(format_args!("config version {n}")))
                }
            };
            let (a, b) = (get(from).await?, get(to).await?);
            let d = diff(&a.document, &b.document).map_err(PageError::bad)?;
            (Some((from, to)), d)
        }
        _ => (None, Vec::new()),
    };
    render(
        &viewer,
        &ConfigPage {
            this_hub: current.version(),
            versions,
            newest,
            compared,
            differences,
            nonce: viewer.nonce(),
        },
    )
}

/// The rollback form.
#[derive(Deserialize)]
pub(super) struct RollbackForm {
    version: i64,
    #[serde(default)]
    reason: String,
    nonce: String,
}

/// `POST /console/config/rollback`.
pub(super) async fn rollback(
    State(current): State<Arc<Current>>,
    viewer: Viewer,
    Form(form): Form<RollbackForm>,
) -> Page {
    admin(&viewer)?;
    let back = urls::link(urls::CONFIG, &[]);
    if !viewer.spend(&form.nonce) {
        return render(
            &viewer,
            &DonePage {
                title: "Already sent",
                message: "This form was sent before: nothing was changed.".into(),
                back,
            },
        );
    }
    let change = Change::new(format!("console:{}", viewer.principal.actor()), form.reason);
    let (title, message) = match current.rollback(form.version, change).await {
        Ok(done) => (
            "Rolled back",
            format!(
                "Version {}'s config is applied again as version {}.",
                form.version,
                done.version.unwrap_or_default()
            ),
        ),
        Err(refused) => ("Not rolled back", format!("Nothing was changed: {refused}")),
    };
    render(
        &viewer,
        &DonePage {
            title,
            message,
            back,
        },
    )
}

//! Webhooks the hub registers itself. A connector whose provider has an API for it declares a
//! `register_webhooks` job (and `unregister_webhooks` to undo it): it finds or creates the
//! registration of the hub's own URL for the tenant (`route-url`), idempotently, and has the
//! host keep the signing secret, whether the provider returned it (`capture`) or the host made
//! it (`generate-credential`). The hub queues it when a tenant is connected (a consent, `hub
//! connect`) and the undo on disconnect; what the job kept is sealed into `hub.toml` here,
//! after the job's end is committed, and applied by a reload. A kept value that replaces one
//! rotates it with an hour's overlap (`previous_<name>`), so the provider's webhooks signed with
//! the old secret while the change was under way still verify.

use secrecy::{ExposeSecret as _, SecretString};

use crate::clock::now_ms;
use crate::config::edit;
use crate::id::{ConnectorId, TenantId};
use crate::reload::Current;
use crate::secrets::{self, MasterKey, Place};
use crate::state::Hub;
use crate::store::{NewJob, Task};

/// The job that registers the hub's webhooks at the provider.
pub const REGISTER: &str = "register_webhooks";
/// The job that removes them.
pub const UNREGISTER: &str = "unregister_webhooks";

/// Queues `job` (one of [`REGISTER`], [`UNREGISTER`]) for the tenant's connector when the
/// connector declares it; whether it did.
///
/// # Errors
/// When the store cannot queue it.
pub async fn queue(
    hub: &Hub,
    tenant: &TenantId,
    connector: &ConnectorId,
    job: &str,
) -> Result<bool, String> {
    let declared = hub
        .runtime
        .connector(connector.as_str())
        .is_some_and(|l| l.manifest.jobs.iter().any(|j| j.name == job));
    if !declared {
        return Ok(false);
    }
    let new = NewJob {
        tenant: tenant.clone(),
        connector: connector.clone(),
        task: Task::Job {
            name: job.to_string(),
            input: "{}".into(),
        },
        run_at_ms: now_ms(),
        idempotency_key: None,
        trace: None,
    };
    hub.store.enqueue(new).await.map_err(|e| e.to_string())?;
    Ok(true)
}

/// Seals what an invocation had the host keep into `hub.toml` as the tenant's credentials, in
/// one write each, then reloads so they verify webhooks at once.
///
/// # Errors
/// When the hub has no config file or master key, or the file cannot be written or reloaded.
pub async fn keep(
    current: &Current,
    tenant: &TenantId,
    connector: &ConnectorId,
    kept: Vec<(String, SecretString)>,
) -> Result<(), String> {
    let hub = current.hub();
    let path = current
        .config_path()
        .ok_or("the hub was not started from a config file")?
        .to_path_buf();
    let env = std::env::var("HUB_MASTER_KEY").ok();
    let key = MasterKey::load(env.as_deref(), hub.config.server.master_key_file.as_deref())
        .map_err(|e| format!("the master key cannot be loaded: {e}"))?;
    for (field, value) in &kept {
        let place = Place::Tenant {
            tenant: tenant.to_string(),
            connector: connector.to_string(),
            field: field.clone(),
        };
        if hub.vault.at(&place).is_some() {
            // A new secret for a registration that had one: the old one keeps verifying for an
            // hour, so webhooks the provider signed before the change still pass.
            let until = (chrono::Utc::now() + chrono::Duration::hours(1))
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
            edit::rotate_credential(
                &path,
                &key,
                &place,
                value.expose_secret().as_bytes(),
                &until,
            )
            .map_err(|e| e.to_string())?;
        } else {
            let sealed = secrets::seal(&key, &place, value.expose_secret().as_bytes());
            edit::set_sealed(&path, &place, &sealed).map_err(|e| e.to_string())?;
        }
    }
    drop(key);
    let change = crate::reload::Change::new(
        "registration",
        format!("credentials the provider gave {connector} of tenant {tenant} kept"),
    );
    current
        .reload_as(change)
        .await
        .map_err(|e| format!("the reload was refused: {e}"))?;
    let names: Vec<&str> = kept.iter().map(|(n, _)| n.as_str()).collect();
    tracing::info!(tenant = %tenant, connector = %connector, credentials = %names.join(", "),
        "kept the credentials the connector's provider gave (sealed into hub.toml)");
    Ok(())
}

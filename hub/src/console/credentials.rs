//! A tenant's credentials from the browser: which ones each of its connectors declares and
//! whether each is set (never a value), and a write-only form that seals a new value with the
//! master key, writes it into `hub.toml` (`toml_edit`: comments and layout kept) and reloads.
//! A reload that is refused puts the file back as it was, so what runs is what the file says.
//! Where `hub.toml` is not writable by the hub (config management, a read-only mount), the page
//! says so and shows the `hub seal` command instead.
//!
//! The admin sets any tenant's; a tenant's token with the `manage` scope its own.
//!
//! "Test" runs the connector's `check_credentials` job, when it declares one (Retell lists its
//! agents), right away and outside the queue, and shows ok or the provider's error; whatever the
//! job would write is dropped.

use std::path::Path;
use std::sync::Arc;

use axum::extract::{Form, Path as UrlPath, State};
use serde::{Deserialize, Serialize};
use zeroize::Zeroize;

use super::{Page, PageError, Viewer, render, renders, visible_tenant};
use crate::config::edit;
use crate::id::{ConnectorId, TenantId};
use crate::reload::Current;
use crate::secrets::{MasterKey, Place, seal};
use crate::state::Hub;

#[derive(Serialize)]
struct Field {
    connector: String,
    name: String,
    description: String,
    required: bool,
    /// `set`, `default` (the connector's global value), `missing` or `unset`.
    state: &'static str,
    /// While a rotation's window is open: until when the old value still verifies (ms).
    previous_until_ms: Option<i64>,
}

/// Whether the hub may replace the file at `path` (write it and rename over it in its folder).
fn writable(path: &Path) -> bool {
    let Some(dir) = path.parent().map(|d| {
        if d.as_os_str().is_empty() {
            Path::new(".")
        } else {
            d
        }
    }) else {
        return false;
    };
    let probe = dir.join(format!(".hub-write-check-{}", rand::random::<u32>()));
    let ok = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .is_ok();
    let _ = std::fs::remove_file(&probe);
    ok && std::fs::OpenOptions::new().append(true).open(path).is_ok()
}

fn fields(hub: &Hub, tenant: &TenantId) -> Vec<Field> {
    let mut out = Vec::new();
    for (connector, loaded) in hub.tenant_connectors(tenant) {
        out.extend(oauth_fields(hub, tenant, connector));
        let until = hub
            .config
            .tenants
            .get(tenant)
            .and_then(|t| t.connectors.get(connector))
            .and_then(|tc| tc.previous_until_ms)
            .filter(|until| *until > crate::clock::now_ms());
        for c in &loaded.manifest.credentials {
            let own = hub.vault.at(&place(tenant, connector, &c.name)).is_some();
            let previous = until.filter(|_| {
                hub.vault
                    .at(&place(tenant, connector, &format!("previous_{}", c.name)))
                    .is_some()
            });
            let any = hub.vault.get(tenant, connector, &c.name).is_some();
            out.push(Field {
                connector: connector.to_string(),
                name: c.name.clone(),
                description: c.description.clone(),
                required: c.required,
                previous_until_ms: previous,
                state: match (own, any) {
                    (true, _) => "set",
                    (false, true) => "default",
                    (false, false) if c.required => "missing",
                    (false, false) => "unset",
                },
            });
        }
    }
    out
}

/// The secrets of the tenant's OAuth2 credentials for a connector that its grant needs, as
/// fields the form can set (the consent flow writes the refresh token of `authorization_code`).
fn oauth_fields(hub: &Hub, tenant: &TenantId, connector: &ConnectorId) -> Vec<Field> {
    use crate::config::Grant;
    use crate::config::oauth::{Part, secret_name};
    let Some(tc) = hub
        .config
        .tenants
        .get(tenant)
        .and_then(|t| t.connectors.get(connector))
    else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (name, setting) in &tc.oauth {
        let parts: &[(Part, &str)] = match setting.grant {
            Grant::AuthorizationCode | Grant::ClientCredentials => {
                &[(Part::ClientSecret, "The OAuth client's secret.")]
            }
            Grant::RefreshToken => &[
                (Part::ClientSecret, "The OAuth client's secret."),
                (Part::RefreshToken, "A refresh token issued to this client."),
            ],
            Grant::JwtBearer => &[(
                Part::ServiceAccount,
                "A Google service-account JSON key (or seal an RSA key as the private_key).",
            )],
        };
        for (part, description) in parts {
            let field = secret_name(name, *part);
            let own = hub.vault.at(&place(tenant, connector, &field)).is_some();
            let any = hub.vault.get(tenant, connector, &field).is_some();
            out.push(Field {
                connector: connector.to_string(),
                name: field,
                description: format!("OAuth2 `{name}`: {description}"),
                required: true,
                previous_until_ms: None,
                state: match (own, any) {
                    (true, _) => "set",
                    (false, true) => "default",
                    (false, false) => "missing",
                },
            });
        }
    }
    out
}

/// The job a connector declares to check its credentials with the provider.
pub const CHECK_JOB: &str = "check_credentials";

/// The tenant's connectors that declare [`CHECK_JOB`].
fn checkable(hub: &Hub, tenant: &TenantId) -> Vec<String> {
    hub.tenant_connectors(tenant)
        .into_iter()
        .filter(|(_, l)| l.manifest.jobs.iter().any(|j| j.name == CHECK_JOB))
        .map(|(c, _)| c.to_string())
        .collect()
}

fn place(tenant: &TenantId, connector: &ConnectorId, field: &str) -> Place {
    Place::Tenant {
        tenant: tenant.to_string(),
        connector: connector.to_string(),
        field: field.to_string(),
    }
}

/// `GET /console/tenants/{t}/credentials`.
pub(super) async fn page(
    State(hub): State<Arc<Hub>>,
    State(current): State<Arc<Current>>,
    viewer: Viewer,
    UrlPath(tenant): UrlPath<String>,
) -> Page {
    let tenant = visible_tenant(&hub, &viewer, &tenant)?;
    show(&hub, &current, &viewer, &tenant, None).await
}

async fn show(
    hub: &Hub,
    current: &Current,
    viewer: &Viewer,
    tenant: &TenantId,
    outcome: Option<Outcome>,
) -> Page {
    let stored = hub
        .store
        .connections(tenant.clone())
        .await
        .map_err(|e| PageError::bad(format!("the store: {e}")))?;
    let connections = crate::admin::connections::states_of(hub, tenant, &stored);
    let may = viewer.principal.may_manage(tenant);
    let path = current.config_path().map(Path::to_path_buf);
    let writable = path.as_deref().is_some_and(writable);
    let nonce = (may && writable).then(|| viewer.nonce());
    let nonce_connect = (may && !connections.is_empty()).then(|| viewer.nonce());
    render(
        viewer,
        &CredentialsPage {
            tenant: tenant.to_string(),
            fields: fields(hub, tenant),
            connections,
            checkable: if may {
                checkable(hub, tenant)
            } else {
                Vec::new()
            },
            may,
            writable,
            nonce,
            nonce_connect,
            outcome,
            // Where the file is, the operator's business alone.
            config: path
                .filter(|_| viewer.own_tenant().is_none())
                .map(|p| p.display().to_string()),
        },
    )
}

/// What the last form did: whether it worked, in words, and what a refused reload found.
#[derive(Serialize)]
struct Outcome {
    ok: bool,
    message: String,
    problems: Vec<String>,
    /// A one-time consent link to open (or send to whoever should consent).
    link: Option<String>,
}

impl Outcome {
    fn ok(message: impl Into<String>) -> Outcome {
        Outcome {
            ok: true,
            message: message.into(),
            problems: Vec::new(),
            link: None,
        }
    }

    fn failed(message: impl Into<String>) -> Outcome {
        Outcome {
            ok: false,
            ..Outcome::ok(message)
        }
    }
}

/// `credentials.html`: which credentials are set for a tenant, the write-only form that seals
/// one (when the viewer may and the file is writable), and what the last form did.
#[derive(Serialize)]
struct CredentialsPage {
    tenant: String,
    fields: Vec<Field>,
    /// The tenant's OAuth2 connections (`admin::connections`' states).
    connections: Vec<serde_json::Value>,
    checkable: Vec<String>,
    may: bool,
    writable: bool,
    nonce: Option<String>,
    /// The Connect buttons' form nonce.
    nonce_connect: Option<String>,
    outcome: Option<Outcome>,
    /// Where the file is: shown to the admin only.
    config: Option<String>,
}
renders!(CredentialsPage = "credentials.html");

#[derive(Deserialize)]
pub(super) struct SetForm {
    nonce: String,
    connector: String,
    field: String,
    value: String,
    /// Keep the old value verifying webhooks for 24 hours (a rotation with overlap).
    #[serde(default)]
    keep_old: Option<String>,
}

impl Drop for SetForm {
    fn drop(&mut self) {
        self.value.zeroize();
    }
}

/// `POST /console/tenants/{t}/credentials`: seals, writes, reloads; shows how it went.
pub(super) async fn set(
    State(hub): State<Arc<Hub>>,
    State(current): State<Arc<Current>>,
    viewer: Viewer,
    UrlPath(tenant): UrlPath<String>,
    Form(form): Form<SetForm>,
) -> Page {
    let tenant = visible_tenant(&hub, &viewer, &tenant)?;
    if !viewer.principal.may_manage(&tenant) {
        return Err(PageError::forbidden(
            "this token may not set credentials (that takes the admin token, or a tenant token with the `manage` scope)",
        ));
    }
    let declared = fields(&hub, &tenant)
        .into_iter()
        .any(|f| f.connector == form.connector && f.name == form.field);
    let connector: ConnectorId = form
        .connector
        .parse()
        .ok()
        .filter(|_| declared)
        .ok_or_else(|| {
            PageError::bad(format!(
                "tenant {tenant} has no connector `{}` with a credential `{}`",
                form.connector, form.field
            ))
        })?;
    let value = form.value.trim();
    if value.is_empty() {
        return Err(PageError::bad(
            "the new value is empty; nothing was changed",
        ));
    }
    let Some(path) = current
        .config_path()
        .map(Path::to_path_buf)
        .filter(|p| writable(p))
    else {
        return Err(PageError::forbidden(
            "hub.toml is not writable by the hub; seal the value with `hub seal` instead",
        ));
    };
    if !viewer.spend(&form.nonce) {
        return show(
            &hub,
            &current,
            &viewer,
            &tenant,
            Some(Outcome::failed(
                "This form was sent before: nothing was changed.",
            )),
        )
        .await;
    }
    let env = std::env::var("HUB_MASTER_KEY").ok();
    let key = MasterKey::load(env.as_deref(), hub.config.server.master_key_file.as_deref())
        .map_err(|e| PageError::bad(format!("the master key cannot be loaded: {e}")))?;
    let target = place(&tenant, &connector, &form.field);
    let before = std::fs::read_to_string(&path)
        .map_err(|e| PageError::bad(format!("cannot read {}: {e}", path.display())))?;
    let rotate = form.keep_old.is_some() && hub.vault.at(&target).is_some();
    let written = if rotate {
        let until = (chrono::Utc::now() + chrono::Duration::hours(24))
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        edit::rotate_credential(&path, &key, &target, value.as_bytes(), &until)
    } else {
        edit::set_sealed(&path, &target, &seal(&key, &target, value.as_bytes()))
    };
    drop(key);
    if let Err(e) = written {
        return Err(PageError::bad(format!("{e}")));
    }
    let change = crate::reload::Change::new(
        format!("console:{}", viewer.principal.actor()),
        format!(
            "credential {connector}.{} of tenant {tenant} set",
            form.field
        ),
    )
    .tenant(&tenant);
    let outcome = match current.reload_as(change).await {
        Ok(_) => {
            tracing::info!(tenant = %tenant, connector = %connector, field = %form.field,
                "console: credential set and applied");
            let entry = crate::store::AuditEntry::now(
                format!("console:{}", viewer.principal.actor()),
                "credential.set",
                format!("{connector}.{}", form.field),
            )
            .tenant(&tenant)
            .detail("set in the console (its value is not kept here)");
            crate::audit::record(&hub.store, entry);
            let kept = if rotate {
                " The old value still verifies webhooks for 24 hours."
            } else {
                ""
            };
            Outcome::ok(format!(
                "{connector} {} for {tenant} is sealed into hub.toml and in use.{kept}",
                form.field
            ))
        }
        Err(refused) => {
            let restored = edit::write_atomic(&path, &before).is_ok();
            tracing::warn!(tenant = %tenant, connector = %connector, field = %form.field,
                "console: a credential change was refused by the reload");
            Outcome {
                problems: refused.0,
                ..Outcome::failed(if restored {
                    "The config with this value was refused; hub.toml is back as it was."
                } else {
                    "The config with this value was refused, and hub.toml could not be put back: fix it by hand."
                })
            }
        }
    };
    // The page of the hub now current: the new state of each credential.
    let now = current.hub();
    show(&now, &current, &viewer, &tenant, Some(outcome)).await
}

#[derive(Deserialize)]
pub(super) struct TestForm {
    connector: String,
}

/// `POST /console/tenants/{t}/credentials/test`: runs the connector's [`CHECK_JOB`] now.
pub(super) async fn test(
    State(hub): State<Arc<Hub>>,
    State(current): State<Arc<Current>>,
    viewer: Viewer,
    UrlPath(tenant): UrlPath<String>,
    Form(form): Form<TestForm>,
) -> Page {
    let tenant = visible_tenant(&hub, &viewer, &tenant)?;
    if !viewer.principal.may_manage(&tenant) {
        return Err(PageError::forbidden(
            "this token may not test credentials (that takes the admin token, or a tenant token with the `manage` scope)",
        ));
    }
    let connector: ConnectorId = form
        .connector
        .parse()
        .ok()
        .filter(|c: &ConnectorId| checkable(&hub, &tenant).contains(&c.to_string()))
        .ok_or_else(|| {
            PageError::bad(format!(
                "connector `{}` of tenant {tenant} declares no `{CHECK_JOB}` job",
                form.connector
            ))
        })?;
    let config = hub
        .directory
        .tenant_config(&tenant, &connector)
        .unwrap_or_default();
    let call = crate::runtime::Call {
        priority: crate::runtime::Priority::Answer,
        tenant: &tenant,
        connector: &connector,
        config,
    };
    // Effects are dropped: a check writes nothing.
    let called = hub
        .runtime
        .run_job(call, CHECK_JOB.into(), "{}".into())
        .await;
    let outcome = match called.result {
        Ok(()) => Outcome::ok(format!(
            "{connector}: the provider accepted {tenant}'s credentials."
        )),
        Err(e) => {
            tracing::info!(tenant = %tenant, connector = %connector, "console: credentials check failed: {e}");
            Outcome::failed(format!("{connector}: the check failed: {e}"))
        }
    };
    show(&hub, &current, &viewer, &tenant, Some(outcome)).await
}

#[derive(Deserialize)]
pub(super) struct ConnectForm {
    nonce: String,
    connector: String,
    credential: String,
}

/// `POST /console/tenants/{t}/connect`: a one-time consent link, opened at once (the operator
/// or the tenant's own user goes through the provider's consent page and comes back to it).
pub(super) async fn connect(
    State(hub): State<Arc<Hub>>,
    State(current): State<Arc<Current>>,
    viewer: Viewer,
    UrlPath(tenant): UrlPath<String>,
    Form(form): Form<ConnectForm>,
) -> Page {
    let tenant = visible_tenant(&hub, &viewer, &tenant)?;
    if !viewer.principal.may_manage(&tenant) {
        return Err(PageError::forbidden(
            "this token may not connect accounts (that takes the admin token, or a tenant token with the `manage` scope)",
        ));
    }
    if !viewer.spend(&form.nonce) {
        let outcome = Outcome::failed("This form was sent before: nothing was changed.");
        return show(&hub, &current, &viewer, &tenant, Some(outcome)).await;
    }
    let connector: ConnectorId = form
        .connector
        .parse()
        .map_err(|_| PageError::bad(format!("no connector `{}`", form.connector)))?;
    let by = match &viewer.principal {
        crate::auth::Principal::Admin => "console (admin)".to_string(),
        crate::auth::Principal::Tenant { name, .. } => format!("console (token {name})"),
    };
    match crate::connections::consent::link(
        &hub,
        &tenant,
        &connector,
        Some(&form.credential),
        None,
        &by,
    )
    .await
    {
        // A link, not a redirect: the console's forms may only lead back to the console (its
        // `form-action`), and the operator may rather send the link to the business's user.
        Ok(link) => {
            let outcome = Outcome {
                link: Some(link.url),
                ..Outcome::ok(format!(
                    "A one-time consent link for {tenant}'s {connector} ({}), valid for 15 minutes. Open it here, or send it to whoever should consent:",
                    link.credential
                ))
            };
            show(&hub, &current, &viewer, &tenant, Some(outcome)).await
        }
        Err(
            crate::connections::consent::Refused::NotFound(m)
            | crate::connections::consent::Refused::Invalid(m),
        ) => show(&hub, &current, &viewer, &tenant, Some(Outcome::failed(m))).await,
    }
}

#[derive(Deserialize)]
pub(super) struct DisconnectForm {
    nonce: String,
    connector: String,
    credential: String,
}

/// `POST /console/tenants/{t}/disconnect`: revokes the grant at the provider where it can,
/// forgets the tokens, and queues the removal of the provider's webhooks.
pub(super) async fn disconnect(
    State(hub): State<Arc<Hub>>,
    State(current): State<Arc<Current>>,
    viewer: Viewer,
    UrlPath(tenant): UrlPath<String>,
    Form(form): Form<DisconnectForm>,
) -> Page {
    let tenant = visible_tenant(&hub, &viewer, &tenant)?;
    if !viewer.principal.may_manage(&tenant) {
        return Err(PageError::forbidden(
            "this token may not disconnect accounts (that takes the admin token, or a tenant token with the `manage` scope)",
        ));
    }
    if !viewer.spend(&form.nonce) {
        let outcome = Outcome::failed("This form was sent before: nothing was changed.");
        return show(&hub, &current, &viewer, &tenant, Some(outcome)).await;
    }
    let key = form
        .connector
        .parse()
        .ok()
        .map(|connector| crate::store::ConnectionKey {
            tenant: tenant.clone(),
            connector,
            credential: form.credential.clone(),
        })
        .filter(|k| hub.connections.setting(k).is_some())
        .ok_or_else(|| {
            PageError::bad(format!(
                "tenant {tenant} has no OAuth2 credential `{}` of `{}`",
                form.credential, form.connector
            ))
        })?;
    let outcome = match hub.connections.disconnect(&hub, &key).await {
        Ok(revoked) => {
            let unregister = crate::connections::registration::UNREGISTER;
            let _ = crate::connections::registration::queue(
                &hub,
                &key.tenant,
                &key.connector,
                unregister,
            )
            .await;
            Outcome::ok(if revoked {
                format!(
                    "{} ({}) is disconnected: the provider revoked the grant.",
                    key.connector, key.credential
                )
            } else {
                format!(
                    "{} ({}) is disconnected: the hub forgot its tokens (the provider was not asked to revoke them, or could not be).",
                    key.connector, key.credential
                )
            })
        }
        Err(e) => Outcome::failed(format!("Not disconnected: {e}")),
    };
    show(&hub, &current, &viewer, &tenant, Some(outcome)).await
}

//! The consent flow (RFC 6749 4.1 with PKCE, RFC 7636): the API or the console asks for a
//! one-time link for a tenant's connector; whoever opens it (a user of the client business) is
//! sent to the provider's consent page with a fresh `state` (random, single use, bound to the
//! tenant and connector, expiring in minutes) and an S256 code challenge; the provider sends
//! them back to `/connect/callback` at `public_url`, where the state is spent, the code
//! exchanged with the verifier, the refresh token sealed into `hub.toml` (a backup) and into the
//! store (which every hub reads), and a plain page (or a redirect to an allowed `return_to`)
//! says how it went. Only digests of the link and the state are stored; the verifier sealed.

use std::sync::Arc;

use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore as _;
use secrecy::ExposeSecret as _;
use serde::Deserialize;
use sha2::Digest as _;
use zeroize::Zeroizing;

use super::grant::{self, Client};
use super::{source, stored_place};
use crate::clock::now_ms;
use crate::config::Grant;
use crate::config::oauth::{Part, secret_name};
use crate::id::{ConnectorId, TenantId};
use crate::reload::{Current, Shared};
use crate::runtime::{Oauth2Decl, Oauth2Grant};
use crate::secrets::{self, MasterKey, Place};
use crate::state::Hub;
use crate::store::{Connection, ConnectionKey, ConnectionWrite, Flow, FlowWrite};

/// How long a link, then its state, works.
pub const LINK_LIFETIME_MS: i64 = 15 * 60_000;

/// The public routes: `/connect/{link}` and `/connect/callback`.
pub fn router() -> axum::Router<Shared> {
    axum::Router::new()
        .route("/connect/callback", get(callback))
        .route("/connect/{link}", get(open))
}

/// Why no link.
#[derive(Debug)]
pub enum Refused {
    /// No such tenant, connector or OAuth2 credential for the tenant.
    NotFound(String),
    /// Not possible as configured or asked.
    Invalid(String),
}

/// A link for someone to consent with.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Link {
    /// Open it in a browser (once, before it expires).
    pub url: String,
    /// The OAuth2 credential it connects.
    pub credential: String,
    /// When it stops working (ms).
    pub expires_at_ms: i64,
}

fn digest(secret: &str) -> String {
    hex::encode(sha2::Sha256::digest(secret.as_bytes()))
}

fn random_token() -> Zeroizing<String> {
    let mut bytes = Zeroizing::new([0u8; 32]);
    rand::rng().fill_bytes(bytes.as_mut_slice());
    Zeroizing::new(URL_SAFE_NO_PAD.encode(bytes.as_slice()))
}

/// The connector's declaration of an OAuth2 credential that takes the consent flow, and the
/// tenant's setting for it; `credential` may be left out when there is one.
fn consentable(
    hub: &Hub,
    tenant: &TenantId,
    connector: &ConnectorId,
    credential: Option<&str>,
) -> Result<(Oauth2Decl, crate::config::OAuthSetting), Refused> {
    let tc = hub
        .config
        .tenants
        .get(tenant)
        .and_then(|t| t.connectors.get(connector))
        .ok_or_else(|| {
            Refused::NotFound(format!("tenant {tenant} uses no connector `{connector}`"))
        })?;
    let loaded = hub
        .runtime
        .connector(connector.as_str())
        .ok_or_else(|| Refused::NotFound(format!("connector `{connector}` is not loaded")))?;
    let names: Vec<&String> = tc.oauth.keys().collect();
    let name = match credential {
        Some(n) => n.to_string(),
        None if names.len() == 1 => names[0].clone(),
        None if names.is_empty() => {
            return Err(Refused::NotFound(format!(
                "tenant {tenant}'s connector `{connector}` has no OAuth2 credential configured ([tenants.{tenant}.connectors.{connector}.oauth.<name>])"
            )));
        }
        None => {
            return Err(Refused::Invalid(format!(
                "name the credential: `{connector}` has several ({})",
                names
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    };
    let setting = tc.oauth.get(&name).ok_or_else(|| {
        Refused::NotFound(format!(
            "no OAuth2 credential `{name}` for tenant {tenant}'s `{connector}`"
        ))
    })?;
    let decl = loaded
        .manifest
        .oauth2
        .iter()
        .find(|d| d.name == name)
        .ok_or_else(|| {
            Refused::NotFound(format!(
                "connector `{connector}` declares no OAuth2 credential `{name}`"
            ))
        })?;
    if setting.grant != Grant::AuthorizationCode
        || !decl.grants.contains(&Oauth2Grant::AuthorizationCode)
    {
        return Err(Refused::Invalid(format!(
            "`{name}` uses the {} grant; a consent link needs grant = \"authorization_code\"",
            setting.grant.as_str()
        )));
    }
    Ok((decl.clone(), setting.clone()))
}

/// Makes a one-time consent link (for the API and the console).
///
/// # Errors
/// [`Refused`] when the tenant's connector cannot be connected so, or `return_to` is not one
/// the tenant allows.
pub async fn link(
    hub: &Hub,
    tenant: &TenantId,
    connector: &ConnectorId,
    credential: Option<&str>,
    return_to: Option<&str>,
    by: &str,
) -> Result<Link, Refused> {
    let (decl, setting) = consentable(hub, tenant, connector, credential)?;
    if let Some(r) = return_to
        && !setting
            .return_to
            .iter()
            .any(|allowed| r.starts_with(allowed.as_str()))
    {
        return Err(Refused::Invalid(format!(
            "return_to `{r}` is not allowed: list its prefix in [tenants.{tenant}.connectors.{connector}.oauth.{}] return_to",
            decl.name
        )));
    }
    let secret = random_token();
    let flow = Flow {
        link: digest(&secret),
        tenant: tenant.clone(),
        connector: connector.clone(),
        credential: decl.name.clone(),
        return_to: return_to.map(str::to_string),
        by: by.to_string(),
        expires_at_ms: now_ms() + LINK_LIFETIME_MS,
        verifier: None,
    };
    hub.store
        .write_flow(FlowWrite::Create(flow.clone()))
        .await
        .map_err(|e| Refused::Invalid(format!("the store: {e}")))?;
    Ok(Link {
        url: format!("{}/connect/{}", hub.public_base, secret.as_str()),
        credential: decl.name,
        expires_at_ms: flow.expires_at_ms,
    })
}

fn page(status: StatusCode, title: &str, message: &str) -> Response {
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    };
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title>\
         <meta name=\"viewport\" content=\"width=device-width\"></head>\
         <body style=\"font-family:system-ui,sans-serif;max-width:36em;margin:4em auto\">\
         <h1>{t}</h1><p>{m}</p></body></html>",
        t = esc(title),
        m = esc(message)
    );
    (
        status,
        [
            (header::CACHE_CONTROL, "no-store"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::CONTENT_SECURITY_POLICY, "default-src 'none'"),
        ],
        Html(body),
    )
        .into_response()
}

fn master_key(hub: &Hub) -> Result<MasterKey, String> {
    let env = std::env::var("HUB_MASTER_KEY").ok();
    MasterKey::load(env.as_deref(), hub.config.server.master_key_file.as_deref())
        .map_err(|e| format!("the master key cannot be loaded: {e}"))
}

/// `GET /connect/{link}`: opens the link (once) and sends the user to the consent page.
async fn open(State(hub): State<Arc<Hub>>, UrlPath(secret): UrlPath<String>) -> Response {
    let gone = || {
        page(
            StatusCode::GONE,
            "This link does not work",
            "It was used already, has expired, or was never issued. Ask for a new one.",
        )
    };
    let Ok(key) = master_key(&hub) else {
        return page(
            StatusCode::SERVICE_UNAVAILABLE,
            "Cannot connect now",
            "The hub cannot seal tokens: its operator must give it the master key.",
        );
    };
    let state = random_token();
    let verifier = random_token();
    let challenge = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
    let link = digest(&secret);
    let sealed_verifier = secrets::seal(&key, &verifier_place(&link), verifier.as_bytes());
    let opened = hub
        .store
        .write_flow(FlowWrite::Open {
            link,
            state: digest(&state),
            verifier: sealed_verifier,
            now_ms: now_ms(),
        })
        .await;
    let flow = match opened {
        Ok(Some(flow)) => flow,
        Ok(None) => return gone(),
        Err(e) => {
            tracing::error!("consent link: the store: {e}");
            return page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Cannot connect now",
                "Try again in a minute.",
            );
        }
    };
    let Ok((decl, setting)) =
        consentable(&hub, &flow.tenant, &flow.connector, Some(&flow.credential))
    else {
        return gone();
    };
    let Ok(mut url) = url::Url::parse(setting.authorize_url(&decl.authorize_url)) else {
        return page(
            StatusCode::BAD_GATEWAY,
            "Cannot connect",
            "The connector's consent page is not a URL.",
        );
    };
    let scopes = setting.scopes.as_ref().unwrap_or(&decl.scopes).join(" ");
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("response_type", "code")
            .append_pair(
                "client_id",
                setting.client_id.as_deref().unwrap_or_default(),
            )
            .append_pair("redirect_uri", &redirect_uri(&hub))
            .append_pair("state", &state)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256");
        if !scopes.is_empty() {
            q.append_pair("scope", &scopes);
        }
        for (k, v) in &decl.authorize_params {
            q.append_pair(k, v);
        }
    }
    tracing::info!(tenant = %flow.tenant, connector = %flow.connector, credential = %flow.credential,
        "consent link opened: sent to the provider's consent page");
    let mut resp = Redirect::to(url.as_str()).into_response();
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    resp.headers_mut().insert(
        header::REFERRER_POLICY,
        header::HeaderValue::from_static("no-referrer"),
    );
    resp
}

/// Where the provider sends the user back.
pub fn redirect_uri(hub: &Hub) -> String {
    format!("{}/connect/callback", hub.public_base)
}

fn verifier_place(link: &str) -> Place {
    Place::Stored {
        tenant: String::new(),
        connector: String::new(),
        field: format!("consent.{link}.verifier"),
    }
}

/// The provider's redirect back.
#[derive(Deserialize)]
struct Callback {
    state: Option<String>,
    code: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

impl Drop for Callback {
    fn drop(&mut self) {
        use zeroize::Zeroize as _;
        self.code.zeroize();
    }
}

/// `GET /connect/callback`: spends the state, exchanges the code, keeps the refresh token.
async fn callback(
    State(hub): State<Arc<Hub>>,
    State(current): State<Arc<Current>>,
    Query(q): Query<Callback>,
) -> Response {
    let refused = |m: &str| page(StatusCode::BAD_REQUEST, "Not connected", m);
    let Some(state) = q.state.as_deref().filter(|s| !s.is_empty()) else {
        return refused("The provider's answer has no state: nothing was changed.");
    };
    let spent = hub
        .store
        .write_flow(FlowWrite::Spend {
            state: digest(state),
            now_ms: now_ms(),
        })
        .await;
    let flow = match spent {
        Ok(Some(flow)) => flow,
        Ok(None) => {
            return refused(
                "This answer does not belong to a consent this hub is waiting for (used, expired or forged): nothing was changed.",
            );
        }
        Err(e) => {
            tracing::error!("consent callback: the store: {e}");
            return page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Not connected",
                "The hub cannot reach its store; ask for a new link in a minute.",
            );
        }
    };
    let who = format!("{}'s {} ({})", flow.tenant, flow.connector, flow.credential);
    if let Some(error) = &q.error {
        tracing::info!(tenant = %flow.tenant, connector = %flow.connector, "consent declined at the provider: {error}");
        let detail = q.error_description.as_deref().unwrap_or("");
        return page(
            StatusCode::OK,
            "Not connected",
            &format!(
                "The consent was not given ({error}{}{detail}). Nothing was changed; ask for a new link to try again.",
                if detail.is_empty() { "" } else { ": " }
            ),
        );
    }
    let Some(code) = q.code.clone().filter(|c| !c.is_empty()) else {
        return refused(
            "The provider's answer has neither a code nor an error: nothing was changed.",
        );
    };
    let code = Zeroizing::new(code);
    match finish(&hub, &current, &flow, &code).await {
        Ok(()) => match &flow.return_to {
            Some(to) => Redirect::to(to).into_response(),
            None => page(
                StatusCode::OK,
                "Connected",
                &format!("{who} is connected. You can close this page."),
            ),
        },
        Err(why) => {
            tracing::warn!(tenant = %flow.tenant, connector = %flow.connector, "consent not completed: {why}");
            page(
                StatusCode::BAD_GATEWAY,
                "Not connected",
                &format!("{why} Nothing was changed."),
            )
        }
    }
}

/// Exchanges the code and keeps the grant: sealed in the store and in `hub.toml`.
async fn finish(hub: &Hub, current: &Current, flow: &Flow, code: &str) -> Result<(), String> {
    let (decl, setting) = consentable(hub, &flow.tenant, &flow.connector, Some(&flow.credential))
        .map_err(|_| {
        "The tenant's connector is no longer configured for this consent.".to_string()
    })?;
    let key = master_key(hub)?;
    let Some(sealed_verifier) = &flow.verifier else {
        return Err("The consent link was never opened.".into());
    };
    let verifier = secrets::open(&key, &verifier_place(&flow.link), sealed_verifier)
        .map_err(|_| "The consent's verifier does not open.".to_string())?;
    let verifier = Zeroizing::new(String::from_utf8_lossy(verifier.expose_secret()).into_owned());
    let loaded = hub
        .runtime
        .connector(flow.connector.as_str())
        .ok_or("The connector is not loaded.")?;
    let client_secret = hub.vault.get(
        &flow.tenant,
        &flow.connector,
        &secret_name(&flow.credential, Part::ClientSecret),
    );
    let client = Client {
        id: setting.client_id.as_deref(),
        secret: client_secret.map(|s| s.expose_secret()),
        auth: decl.client_auth,
    };
    let redirect = redirect_uri(hub);
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", redirect.as_str()),
        ("code_verifier", verifier.as_str()),
    ];
    let minted = grant::mint(
        hub.connections.http(),
        &loaded.policy,
        setting.token_url(&decl.token_url),
        &client,
        &form,
    )
    .await
    .map_err(|e| match e {
        grant::MintError::Revoked(m) | grant::MintError::Permanent(m) => {
            format!("The provider refused the code ({m}).")
        }
        grant::MintError::Transient(m) => {
            format!("The provider could not be reached ({m}); ask for a new link.")
        }
    })?;
    let Some(refresh) = &minted.refresh_token else {
        return Err("The provider gave no refresh token (offline access was not granted).".into());
    };
    let ckey = ConnectionKey {
        tenant: flow.tenant.clone(),
        connector: flow.connector.clone(),
        credential: flow.credential.clone(),
    };
    let before = hub.store.connection(ckey.clone()).await.ok().flatten();
    // The store first: it is what every hub reads.
    let state = Connection {
        source: source(&setting, None),
        refresh_token: Some(secrets::seal(
            &key,
            &stored_place(&ckey, "refresh_token"),
            refresh.expose_secret().as_bytes(),
        )),
        access_token: Some(secrets::seal(
            &key,
            &stored_place(&ckey, "access_token"),
            minted.access_token.expose_secret().as_bytes(),
        )),
        expires_at_ms: now_ms() + minted.expires_in_s.saturating_mul(1000),
        ..Connection::default()
    };
    hub.store
        .write_connection(ckey.clone(), ConnectionWrite::Replace(state))
        .await
        .map_err(|e| format!("The hub could not store the grant ({e})."))?;
    // Then the file, a backup a fresh store starts from.
    if let Some(path) = current.config_path() {
        let place = Place::Tenant {
            tenant: flow.tenant.to_string(),
            connector: flow.connector.to_string(),
            field: secret_name(&flow.credential, Part::RefreshToken),
        };
        let sealed = secrets::seal(&key, &place, refresh.expose_secret().as_bytes());
        match crate::config::edit::set_sealed(path, &place, &sealed) {
            Ok(()) => {
                let change = crate::reload::Change::new(
                    "consent",
                    format!("{} of tenant {} connected", flow.connector, flow.tenant),
                );
                if let Err(e) = current.reload_as(change).await {
                    tracing::warn!("after a consent, the reload was refused: {e}");
                }
            }
            Err(e) => tracing::warn!(
                "the consent's refresh token is in the store; hub.toml could not keep a copy: {e}"
            ),
        }
    }
    let now = current.hub();
    now.connections.forget(&ckey);
    // Connected: the provider's webhooks for this tenant, where the connector registers them.
    if let Err(e) = super::registration::queue(
        &now,
        &flow.tenant,
        &flow.connector,
        super::registration::REGISTER,
    )
    .await
    {
        tracing::warn!(tenant = %flow.tenant, connector = %flow.connector, "cannot queue the webhook registration: {e}");
    }
    if before.is_some_and(|b| b.failed.is_some()) {
        now.connections
            .announce(&ckey, "connection.restored", None)
            .await;
    }
    tracing::info!(tenant = %flow.tenant, connector = %flow.connector, credential = %flow.credential,
        by = %flow.by, "connected by consent");
    Ok(())
}

/// Whether a connection is usable, for lists: `connected`, `needs_reconnect` or
/// `not_connected`.
pub fn status(row: Option<&crate::store::ConnectionRow>) -> &'static str {
    match row {
        Some(r) if r.failed.is_some() => "needs_reconnect",
        Some(r) if r.refreshes > 0 => "connected",
        _ => "not_connected",
    }
}

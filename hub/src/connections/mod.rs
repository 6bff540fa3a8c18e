//! Connected accounts: the OAuth2 credentials the host holds for connectors. A connector
//! declares one (`oauth2-decl`) and names it in a request's auth; the operator fills it per
//! tenant (`[tenants.T.connectors.C.oauth.NAME]`, secrets beside the other credentials); this
//! module mints, caches and refreshes the access token and hands it to the request, so no token,
//! client secret or key ever enters a guest.
//!
//! # The token's life
//! A token is used until shortly before it expires ([`EARLY_MS`]), or until the provider
//! answers 401 to it. Then one refresh happens per credential, across every worker and every hub
//! on the store: in-process callers queue on one lock, and the hub that refreshes first takes a
//! lease in the store (a conditional update), re-reads the row (another may have just
//! refreshed), mints, and stores the sealed tokens, a rotated refresh token included, in the
//! same write that releases the lease, before anyone uses the new access token. The others wait
//! for the lease and read what it stored. A grant the provider refuses (`invalid_grant`) marks
//! the connection as needing reconnection: the tenant's app gets `connection.failed` (and
//! `connection.restored` when a refresh works again), and jobs that need it wait without spending
//! attempts (see `worker`).
//!
//! # Layout
//! - this file: [`Connections`], the tokens service;
//! - `grant`: the token endpoint's requests and answers, and the signed JWT assertion;
//! - `consent`: the consent flow (one-time link, `state`, PKCE, the callback);
//! - `registration`: webhooks the hub registers itself, and the secrets it keeps from them.

pub mod consent;
pub mod grant;
pub mod registration;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use secrecy::{ExposeSecret as _, SecretSlice, SecretString};
use serde_json::json;
use sha2::Digest as _;

use crate::clock::now_ms;
use crate::config::oauth::{Part, secret_name};
use crate::config::{Config, Grant, OAuthSetting};
use crate::id::{ConnectorId, TenantId};
use crate::runtime::outbound::{self, Policy};
use crate::runtime::{Oauth2Decl, Oauth2Grant};
use crate::secrets::{self, MasterKey, Place, Vault};
use crate::store::{Connection, ConnectionKey, ConnectionWrite, Effects, Published, Store};
use grant::{Client, MintError, Minted, ServiceAccount};

/// A token is refreshed this long before it expires.
pub const EARLY_MS: i64 = 60_000;
/// How long a refresh lease lasts (longer than any token request, `grant::TIMEOUT`): a hub
/// killed while refreshing holds the others up this long at most.
const LEASE_MS: i64 = 12_000;
/// How long a caller waits for another hub's refresh before giving up (retryable).
const WAIT_FOR_OTHERS: Duration = Duration::from_secs(12);

/// Why no access token.
#[derive(Debug)]
pub enum TokenError {
    /// The connection needs reconnecting (the provider refused the grant, or it was never
    /// connected): jobs that need it wait for it.
    NeedsReconnect(String),
    /// A passing fault (the token endpoint is down, the store is busy): try again later.
    Retryable(String),
    /// Not configured so it can work (no `oauth` table, a refused client, a bad key).
    Permanent(String),
}

impl std::fmt::Display for TokenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenError::NeedsReconnect(m) => write!(f, "needs reconnecting: {m}"),
            TokenError::Retryable(m) | TokenError::Permanent(m) => f.write_str(m),
        }
    }
}

struct Cached {
    token: SecretString,
    expires_at_ms: i64,
    source: String,
}

/// The tokens service: one per hub (rebuilt on reload; the store keeps the tokens).
pub struct Connections {
    store: Store,
    http: outbound::Client,
    vault: Arc<Vault>,
    /// The tenants' settings (none for a hub without tenants, such as `hub test-connector`).
    config: Option<Arc<Config>>,
    key: Option<Arc<MasterKey>>,
    /// This process's name on leases.
    holder: String,
    cache: Mutex<HashMap<ConnectionKey, Cached>>,
    flights: Mutex<HashMap<ConnectionKey, Arc<tokio::sync::Mutex<()>>>>,
    /// Where a connection needing reconnection is raised (and cleared when it works again).
    alerts: Option<Arc<crate::alerts::Alerts>>,
}

/// The digest of the grant in `hub.toml` a connection's tokens come from: a new consent or a
/// newly pasted refresh token (or key) supersedes the tokens stored for the old one.
pub fn source(setting: &OAuthSetting, secret: Option<&[u8]>) -> String {
    let mut h = sha2::Sha256::new();
    h.update(setting.grant.as_str());
    h.update([0]);
    h.update(setting.client_id.as_deref().unwrap_or(""));
    h.update([0]);
    h.update(setting.subject.as_deref().unwrap_or(""));
    h.update([0]);
    h.update(secret.unwrap_or_default());
    hex::encode(&h.finalize()[..16])
}

fn stored_place(key: &ConnectionKey, what: &str) -> Place {
    Place::Stored {
        tenant: key.tenant.to_string(),
        connector: key.connector.to_string(),
        field: format!("{}.{what}", key.credential),
    }
}

impl Connections {
    /// The service for `config`'s tenants. Without the master key, tokens cannot be stored and
    /// OAuth2 credentials do not work (a clear error says so).
    pub fn new(
        store: Store,
        http: outbound::Client,
        vault: Arc<Vault>,
        config: Option<Arc<Config>>,
        key: Option<Arc<MasterKey>>,
    ) -> Connections {
        Connections {
            store,
            http,
            vault,
            config,
            key,
            holder: format!("hub-{}-{:016x}", std::process::id(), rand::random::<u64>()),
            cache: Mutex::default(),
            flights: Mutex::default(),
            alerts: None,
        }
    }

    /// The same, raising an alert when a connection needs reconnecting.
    pub fn with_alerts(mut self, alerts: Arc<crate::alerts::Alerts>) -> Connections {
        self.alerts = Some(alerts);
        self
    }

    /// The store the tokens live in.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The HTTP client tokens are minted with.
    pub fn http(&self) -> &outbound::Client {
        &self.http
    }

    /// The tenant's setting for a connector's OAuth2 credential.
    pub fn setting(&self, key: &ConnectionKey) -> Option<&OAuthSetting> {
        self.config
            .as_ref()?
            .tenants
            .get(&key.tenant)?
            .connectors
            .get(&key.connector)?
            .oauth
            .get(&key.credential)
    }

    fn secret(&self, key: &ConnectionKey, part: Part) -> Option<&SecretSlice<u8>> {
        self.vault.get(
            &key.tenant,
            &key.connector,
            &secret_name(&key.credential, part),
        )
    }

    /// The secret the grant's source digest covers.
    fn grant_secret(
        &self,
        key: &ConnectionKey,
        setting: &OAuthSetting,
    ) -> Option<&SecretSlice<u8>> {
        match setting.grant {
            // The consent flow writes its grant to the store, which every hub shares: the
            // file's copy is a backup, not the source.
            Grant::AuthorizationCode => None,
            Grant::RefreshToken => self.secret(key, Part::RefreshToken),
            Grant::JwtBearer => self
                .secret(key, Part::ServiceAccount)
                .or_else(|| self.secret(key, Part::PrivateKey)),
            Grant::ClientCredentials => self.secret(key, Part::ClientSecret),
        }
    }

    fn master(&self) -> Result<&MasterKey, TokenError> {
        self.key.as_deref().ok_or_else(|| {
            TokenError::Permanent(
                "the master key is not available to seal OAuth2 tokens (set HUB_MASTER_KEY or server.master_key_file)".into(),
            )
        })
    }

    /// An access token for the credential, minting one if the cached one is near its end or is
    /// `rejected` (the provider just answered 401 to it).
    ///
    /// # Errors
    /// As [`TokenError`]; messages name the tenant, connector and credential, never a secret.
    pub async fn access_token(
        &self,
        decl: &Oauth2Decl,
        policy: &Policy,
        key: &ConnectionKey,
        rejected: Option<&str>,
    ) -> Result<SecretString, TokenError> {
        let named = |m: String| {
            format!(
                "OAuth2 credential `{}` of tenant {} ({}): {m}",
                key.credential, key.tenant, key.connector
            )
        };
        let setting = self.setting(key).ok_or_else(|| {
            TokenError::Permanent(named(format!(
                "not configured: add [tenants.{}.connectors.{}.oauth.{}] to hub.toml",
                key.tenant, key.connector, key.credential
            )))
        })?;
        let source = source(
            setting,
            self.grant_secret(key, setting).map(|s| s.expose_secret()),
        );
        let usable = |token: &str, expires_at_ms: i64| {
            expires_at_ms - EARLY_MS > now_ms() && rejected != Some(token)
        };
        if let Some(token) = self.cached(key, &source, &usable) {
            return Ok(token);
        }
        let flight = {
            let mut flights = self.flights.lock().unwrap_or_else(|p| p.into_inner());
            flights.entry(key.clone()).or_default().clone()
        };
        let _turn = flight.lock().await;
        if let Some(token) = self.cached(key, &source, &usable) {
            return Ok(token);
        }
        let result = self
            .refresh(decl, policy, key, setting, &source, &usable)
            .await;
        result.map_err(|e| match e {
            TokenError::NeedsReconnect(m) => TokenError::NeedsReconnect(named(m)),
            TokenError::Retryable(m) => TokenError::Retryable(named(m)),
            TokenError::Permanent(m) => TokenError::Permanent(named(m)),
        })
    }

    fn cached(
        &self,
        key: &ConnectionKey,
        source: &str,
        usable: &dyn Fn(&str, i64) -> bool,
    ) -> Option<SecretString> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let c = cache.get(key)?;
        (c.source == source && usable(c.token.expose_secret(), c.expires_at_ms))
            .then(|| c.token.clone())
    }

    fn remember(
        &self,
        key: &ConnectionKey,
        token: &SecretString,
        expires_at_ms: i64,
        source: &str,
    ) {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.insert(
            key.clone(),
            Cached {
                token: token.clone(),
                expires_at_ms,
                source: source.to_string(),
            },
        );
    }

    /// The stored access token, if it is for this grant and usable.
    fn stored_token(
        &self,
        key: &ConnectionKey,
        row: &Connection,
        usable: &dyn Fn(&str, i64) -> bool,
    ) -> Result<Option<SecretString>, TokenError> {
        let Some(sealed) = &row.access_token else {
            return Ok(None);
        };
        let opened = secrets::open(self.master()?, &stored_place(key, "access_token"), sealed)
            .map_err(|e| {
                TokenError::Permanent(format!("the stored access token does not open: {e}"))
            })?;
        let token = String::from_utf8(opened.expose_secret().to_vec())
            .map_err(|_| TokenError::Permanent("the stored access token is not text".into()))?;
        Ok(usable(&token, row.expires_at_ms).then(|| SecretString::from(token)))
    }

    async fn read(&self, key: &ConnectionKey) -> Result<Option<Connection>, TokenError> {
        self.store
            .connection(key.clone())
            .await
            .map_err(|e| TokenError::Retryable(format!("the store: {e}")))
    }

    async fn write(&self, key: &ConnectionKey, write: ConnectionWrite) -> Result<bool, TokenError> {
        self.store
            .write_connection(key.clone(), write)
            .await
            .map_err(|e| TokenError::Retryable(format!("the store: {e}")))
    }

    /// The slow path, under this process's turn: the store's token, or the lease and a mint.
    async fn refresh(
        &self,
        decl: &Oauth2Decl,
        policy: &Policy,
        key: &ConnectionKey,
        setting: &OAuthSetting,
        source: &str,
        usable: &dyn Fn(&str, i64) -> bool,
    ) -> Result<SecretString, TokenError> {
        let give_up = tokio::time::Instant::now() + WAIT_FOR_OTHERS;
        let row = loop {
            let row = self.read(key).await?.unwrap_or_default();
            if row.source == source {
                if let Some(why) = &row.failed {
                    return Err(TokenError::NeedsReconnect(why.clone()));
                }
                if let Some(token) = self.stored_token(key, &row, usable)? {
                    self.remember(key, &token, row.expires_at_ms, source);
                    return Ok(token);
                }
            }
            let lease = ConnectionWrite::Lease {
                holder: self.holder.clone(),
                until_ms: now_ms() + LEASE_MS,
            };
            if self.write(key, lease).await? {
                // Held: what another hub stored just before is in the row read now.
                break self.read(key).await?.unwrap_or_default();
            }
            if tokio::time::Instant::now() >= give_up {
                return Err(TokenError::Retryable(
                    "another hub has been refreshing this token for 12 s; trying again later"
                        .into(),
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let release = ConnectionWrite::Release {
            holder: self.holder.clone(),
        };
        if row.source == source {
            if let Some(why) = &row.failed {
                self.write(key, release).await?;
                return Err(TokenError::NeedsReconnect(why.clone()));
            }
            if let Some(token) = self.stored_token(key, &row, usable)? {
                self.write(key, release).await?;
                self.remember(key, &token, row.expires_at_ms, source);
                return Ok(token);
            }
        }
        let minted = self.mint(decl, policy, key, setting, source, &row).await;
        match minted {
            Ok(minted) => self.store_minted(key, source, &row, minted).await,
            Err(MintError::Revoked(why)) => {
                let failed = ConnectionWrite::Failed {
                    holder: self.holder.clone(),
                    reason: format!(
                        "the provider refused the grant ({why}); reconnect the account"
                    ),
                };
                self.write(key, failed).await?;
                if row.failed.is_none() {
                    self.announce(key, "connection.failed", Some(&why)).await;
                }
                tracing::warn!(tenant = %key.tenant, connector = %key.connector, credential = %key.credential,
                    "OAuth2 grant refused: the connection needs reconnecting ({why})");
                Err(TokenError::NeedsReconnect(format!(
                    "the provider refused the grant ({why})"
                )))
            }
            Err(MintError::Transient(m)) => {
                self.write(key, release).await?;
                Err(TokenError::Retryable(m))
            }
            Err(MintError::Permanent(m)) => {
                self.write(key, release).await?;
                Err(TokenError::Permanent(m))
            }
        }
    }

    /// Seals and stores what was minted, releasing the lease, before anyone uses it.
    async fn store_minted(
        &self,
        key: &ConnectionKey,
        source: &str,
        row: &Connection,
        minted: Minted,
    ) -> Result<SecretString, TokenError> {
        let master = self.master()?;
        let expires_at_ms = now_ms() + minted.expires_in_s.saturating_mul(1000);
        let refresh_token = match &minted.refresh_token {
            Some(rt) => Some(secrets::seal(
                master,
                &stored_place(key, "refresh_token"),
                rt.expose_secret().as_bytes(),
            )),
            // Not rotated: the one used stays current.
            None if row.source == source => row.refresh_token.clone(),
            None => None,
        };
        let state = Connection {
            source: source.to_string(),
            refresh_token,
            access_token: Some(secrets::seal(
                master,
                &stored_place(key, "access_token"),
                minted.access_token.expose_secret().as_bytes(),
            )),
            expires_at_ms,
            ..Connection::default()
        };
        let minted_write = ConnectionWrite::Minted {
            holder: self.holder.clone(),
            state,
        };
        if !self.write(key, minted_write).await? {
            return Err(TokenError::Retryable(
                "the refresh took longer than its lease; the token was not kept".into(),
            ));
        }
        if row.failed.is_some() {
            self.announce(key, "connection.restored", None).await;
        }
        self.remember(key, &minted.access_token, expires_at_ms, source);
        Ok(minted.access_token)
    }

    /// One token request for the tenant's grant.
    async fn mint(
        &self,
        decl: &Oauth2Decl,
        policy: &Policy,
        key: &ConnectionKey,
        setting: &OAuthSetting,
        source: &str,
        row: &Connection,
    ) -> Result<Minted, MintError> {
        if !declares(decl, setting.grant) {
            return Err(MintError::Permanent(format!(
                "the connector does not support the {} grant",
                setting.grant.as_str()
            )));
        }
        let client_secret = self.secret(key, Part::ClientSecret);
        let client = Client {
            id: setting.client_id.as_deref(),
            secret: client_secret.map(|s| s.expose_secret()),
            auth: decl.client_auth,
        };
        let scopes = setting.scopes.as_ref().unwrap_or(&decl.scopes).join(" ");
        let token_url = setting.token_url(&decl.token_url);
        match setting.grant {
            Grant::AuthorizationCode | Grant::RefreshToken => {
                let refresh = self.refresh_token(key, source, row)?;
                let form = [
                    ("grant_type", "refresh_token"),
                    ("refresh_token", refresh.expose_secret()),
                ];
                grant::mint(&self.http, policy, token_url, &client, &form).await
            }
            Grant::ClientCredentials => {
                let mut form = vec![("grant_type", "client_credentials")];
                if !scopes.is_empty() {
                    form.push(("scope", &scopes));
                }
                grant::mint(&self.http, policy, token_url, &client, &form).await
            }
            Grant::JwtBearer => {
                let assertion = self.assertion(key, setting, token_url, &scopes)?;
                let form = [
                    ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                    ("assertion", assertion.expose_secret()),
                ];
                let client = Client {
                    id: None,
                    secret: None,
                    auth: decl.client_auth,
                };
                grant::mint(&self.http, policy, token_url, &client, &form).await
            }
        }
    }

    /// The refresh token to present: the newest stored for this grant, else the one in
    /// `hub.toml`.
    fn refresh_token(
        &self,
        key: &ConnectionKey,
        source: &str,
        row: &Connection,
    ) -> Result<SecretString, MintError> {
        if row.source == source
            && let Some(sealed) = &row.refresh_token
        {
            let master = self
                .master()
                .map_err(|e| MintError::Permanent(e.to_string()))?;
            let opened = secrets::open(master, &stored_place(key, "refresh_token"), sealed)
                .map_err(|e| {
                    MintError::Permanent(format!("the stored refresh token does not open: {e}"))
                })?;
            return String::from_utf8(opened.expose_secret().to_vec())
                .map(SecretString::from)
                .map_err(|_| MintError::Permanent("the stored refresh token is not text".into()));
        }
        let Some(file) = self.secret(key, Part::RefreshToken) else {
            return Err(MintError::Revoked(format!(
                "not connected yet: no {} (open a consent link: POST /api/v1/tenants/{}/connections/{})",
                secret_name(&key.credential, Part::RefreshToken),
                key.tenant,
                key.connector
            )));
        };
        String::from_utf8(file.expose_secret().to_vec())
            .map(SecretString::from)
            .map_err(|_| MintError::Permanent("the refresh token is not text".into()))
    }

    /// The signed assertion of the JWT bearer grant.
    fn assertion(
        &self,
        key: &ConnectionKey,
        setting: &OAuthSetting,
        token_url: &str,
        scopes: &str,
    ) -> Result<SecretString, MintError> {
        let aud = setting.audience.as_deref().unwrap_or(token_url);
        let scope = (!scopes.is_empty()).then_some(scopes);
        let now_s = now_ms() / 1000;
        let signed = if let Some(sa) = self.secret(key, Part::ServiceAccount) {
            let sa = ServiceAccount::parse(sa.expose_secret()).map_err(MintError::Permanent)?;
            grant::assertion(
                sa.private_key.as_bytes(),
                sa.private_key_id.as_deref(),
                &sa.client_email,
                setting.subject.as_deref(),
                aud,
                scope,
                now_s,
            )
        } else if let Some(pem) = self.secret(key, Part::PrivateKey) {
            let iss = setting.client_id.as_deref().ok_or_else(|| {
                MintError::Permanent(
                    "the JWT bearer grant with a private key needs `client_id` (the issuer)".into(),
                )
            })?;
            grant::assertion(
                pem.expose_secret(),
                None,
                iss,
                setting.subject.as_deref(),
                aud,
                scope,
                now_s,
            )
        } else {
            return Err(MintError::Permanent(format!(
                "the JWT bearer grant needs {} or {}",
                secret_name(&key.credential, Part::ServiceAccount),
                secret_name(&key.credential, Part::PrivateKey)
            )));
        };
        signed.map(SecretString::from).map_err(MintError::Permanent)
    }

    /// Publishes a connection event to the tenant (and its app's endpoints).
    pub async fn announce(&self, key: &ConnectionKey, name: &str, reason: Option<&str>) {
        if let Some(alerts) = &self.alerts {
            let subject = format!("{}/{}", key.connector, key.credential);
            let cause = crate::alerts::Cause::needs_reconnect(&key.tenant, &subject);
            match name {
                "connection.failed" => alerts.raise(
                    cause,
                    format!("{}'s {subject} needs reconnecting", key.tenant),
                    reason.unwrap_or_default(),
                ),
                _ => alerts.clear(&cause),
            }
        }
        let Some(tenant) = self
            .config
            .as_ref()
            .and_then(|c| c.tenants.get(&key.tenant))
        else {
            return;
        };
        let payload = json!({
            "connector": key.connector, "credential": key.credential, "reason": reason,
        })
        .to_string();
        let events = vec![Published {
            name: name.to_string(),
            payload,
        }];
        let base = format!(
            "connection:{}:{}:{}:{}",
            key.connector,
            key.credential,
            name,
            now_ms()
        );
        let jobs =
            crate::outbox::jobs_for_events(&key.tenant, tenant, &key.connector, &base, &events);
        let effects = Effects {
            events,
            jobs,
            ..Effects::default()
        };
        if let Err(e) = self.store.apply(&key.tenant, &key.connector, effects).await {
            tracing::error!(tenant = %key.tenant, "cannot publish {name}: {e}");
        }
    }

    /// Disconnects: revokes the grant at the provider (RFC 7009) where the connector declares
    /// a revocation endpoint, then forgets the stored tokens. Whether the provider revoked it.
    ///
    /// # Errors
    /// When the store cannot forget them.
    pub async fn disconnect(
        &self,
        hub: &crate::state::Hub,
        key: &ConnectionKey,
    ) -> Result<bool, String> {
        let decl = hub.runtime.connector(key.connector.as_str()).and_then(|l| {
            Some((
                l.manifest
                    .oauth2
                    .iter()
                    .find(|d| d.name == key.credential)?
                    .clone(),
                l.policy.clone(),
            ))
        });
        let mut revoked = false;
        if let (Some((decl, policy)), Some(setting)) = (decl, self.setting(key))
            && let Some(url) = setting.revoke_url(decl.revoke_url.as_deref())
        {
            let row = self.read(key).await.ok().flatten().unwrap_or_default();
            let token = self
                .refresh_token(
                    key,
                    &source(
                        setting,
                        self.grant_secret(key, setting).map(|s| s.expose_secret()),
                    ),
                    &row,
                )
                .ok();
            if let Some(token) = token {
                let client_secret = self.secret(key, Part::ClientSecret);
                let client = Client {
                    id: setting.client_id.as_deref(),
                    secret: client_secret.map(|s| s.expose_secret()),
                    auth: decl.client_auth,
                };
                let form = [
                    ("token", token.expose_secret()),
                    ("token_type_hint", "refresh_token"),
                ];
                revoked = grant::revoke(&self.http, &policy, url, &client, &form).await;
            }
        }
        self.store
            .write_connection(key.clone(), ConnectionWrite::Delete)
            .await
            .map_err(|e| e.to_string())?;
        self.forget(key);
        tracing::info!(tenant = %key.tenant, connector = %key.connector, credential = %key.credential,
            revoked, "disconnected");
        Ok(revoked)
    }

    /// Forgets what this process cached for a credential (after a disconnect or a new grant).
    pub fn forget(&self, key: &ConnectionKey) {
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }

    /// Keys of every OAuth2 credential a tenant's connector has configured.
    pub fn configured(&self, tenant: &TenantId, connector: &ConnectorId) -> Vec<ConnectionKey> {
        self.config
            .as_ref()
            .and_then(|c| c.tenants.get(tenant))
            .and_then(|t| t.connectors.get(connector))
            .map(|c| {
                c.oauth
                    .keys()
                    .map(|name| ConnectionKey {
                        tenant: tenant.clone(),
                        connector: connector.clone(),
                        credential: name.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Whether the declaration supports a grant.
pub fn declares(decl: &Oauth2Decl, grant: Grant) -> bool {
    let wanted = match grant {
        Grant::AuthorizationCode => Oauth2Grant::AuthorizationCode,
        Grant::RefreshToken => Oauth2Grant::RefreshToken,
        Grant::JwtBearer => Oauth2Grant::JwtBearer,
        Grant::ClientCredentials => Oauth2Grant::ClientCredentials,
    };
    decl.grants.contains(&wanted)
}

/// Checks a tenant's OAuth2 setting against what it needs, for `hub check`: the secrets its
/// grant needs are sealed, and a key parses. Each problem as `(credential field, message)`.
pub fn check_setting(
    vault: &Vault,
    key: &ConnectionKey,
    setting: &OAuthSetting,
) -> Vec<(String, String)> {
    let has = |p: Part| {
        vault.get(
            &key.tenant,
            &key.connector,
            &secret_name(&key.credential, p),
        )
    };
    let mut problems = Vec::new();
    let need = |p: Part, why: &str, problems: &mut Vec<(String, String)>| {
        if has(p).is_none() {
            problems.push((secret_name(&key.credential, p), why.to_string()));
        }
    };
    match setting.grant {
        Grant::AuthorizationCode => {
            need(Part::ClientSecret, "the consent flow exchanges its code with the client secret: seal it (hub seal)", &mut problems);
        }
        Grant::RefreshToken => {
            need(Part::RefreshToken, "the refresh_token grant needs the refresh token: seal it (hub seal)", &mut problems);
        }
        Grant::ClientCredentials => {
            need(Part::ClientSecret, "the client_credentials grant needs the client secret: seal it (hub seal)", &mut problems);
        }
        Grant::JwtBearer => match (has(Part::ServiceAccount), has(Part::PrivateKey)) {
            (Some(sa), _) => {
                let parsed = ServiceAccount::parse(sa.expose_secret())
                    .and_then(|sa| grant::signing_key(sa.private_key.as_bytes()).map(|_| ()).map_err(|e| format!("its private_key is {e}")));
                if let Err(e) = parsed {
                    problems.push((secret_name(&key.credential, Part::ServiceAccount), e));
                }
            }
            (None, Some(pem)) => {
                if let Err(e) = grant::signing_key(pem.expose_secret()) {
                    problems.push((secret_name(&key.credential, Part::PrivateKey), e));
                }
            }
            (None, None) => problems.push((
                secret_name(&key.credential, Part::ServiceAccount),
                format!(
                    "the jwt_bearer grant needs a service-account JSON key here, or an RSA key as {}",
                    secret_name(&key.credential, Part::PrivateKey)
                ),
            )),
        },
    }
    problems
}

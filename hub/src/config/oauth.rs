//! `[tenants.<id>.connectors.<c>.oauth.<name>]`: how the host obtains the access token of a
//! connector's OAuth2 credential for one tenant. The table holds what is not secret (the grant,
//! the client id, the JWT subject); the secrets sit beside the connector's other credentials,
//! sealed, under names derived from the credential's ([`secret_name`]): `<name>_client_secret`,
//! `<name>_refresh_token` (which the consent flow writes), `<name>_private_key` (PEM) or
//! `<name>_service_account` (a Google service-account JSON key).

use serde::Deserialize;

use super::ConfigError;
use super::checker::Checker;

/// How the host obtains the access token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Grant {
    /// The consent flow's refresh token (`hub` writes `<name>_refresh_token`).
    AuthorizationCode,
    /// A refresh token the operator sealed as `<name>_refresh_token`.
    RefreshToken,
    /// A JWT the host signs with `<name>_private_key` or `<name>_service_account`.
    JwtBearer,
    /// The client id and `<name>_client_secret` alone.
    ClientCredentials,
}

impl Grant {
    /// The name written in `hub.toml`.
    pub fn as_str(self) -> &'static str {
        match self {
            Grant::AuthorizationCode => "authorization_code",
            Grant::RefreshToken => "refresh_token",
            Grant::JwtBearer => "jwt_bearer",
            Grant::ClientCredentials => "client_credentials",
        }
    }
}

/// The secret parts of an OAuth2 credential, each a sealed credential of its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// `<name>_client_secret`.
    ClientSecret,
    /// `<name>_refresh_token`.
    RefreshToken,
    /// `<name>_private_key`: an RSA private key, PEM (PKCS#8 or PKCS#1).
    PrivateKey,
    /// `<name>_service_account`: a Google service-account JSON key.
    ServiceAccount,
}

impl Part {
    /// Every part, for the checks that accept these names as credentials.
    pub const ALL: [Part; 4] = [
        Part::ClientSecret,
        Part::RefreshToken,
        Part::PrivateKey,
        Part::ServiceAccount,
    ];

    fn suffix(self) -> &'static str {
        match self {
            Part::ClientSecret => "client_secret",
            Part::RefreshToken => "refresh_token",
            Part::PrivateKey => "private_key",
            Part::ServiceAccount => "service_account",
        }
    }
}

/// The credential name a secret part of OAuth2 credential `name` is sealed under.
pub fn secret_name(name: &str, part: Part) -> String {
    format!("{name}_{}", part.suffix())
}

/// Whether `credential` is a secret part of one of `oauth_names`: the guest may never name it.
pub fn is_secret_part<'a>(
    credential: &str,
    mut oauth_names: impl Iterator<Item = &'a str>,
) -> bool {
    oauth_names.any(|n| Part::ALL.iter().any(|p| credential == secret_name(n, *p)))
}

/// One OAuth2 credential of a tenant's connector.
#[derive(Clone, Debug)]
pub struct OAuthSetting {
    /// How the token is obtained.
    pub grant: Grant,
    /// The OAuth client's id (a Salesforce consumer key; the JWT issuer when there is no
    /// service-account key).
    pub client_id: Option<String>,
    /// The JWT bearer grant's subject: a user to impersonate (Google) or the username
    /// (Salesforce).
    pub subject: Option<String>,
    /// The JWT bearer grant's audience, when it is not the token URL (Salesforce's
    /// `https://login.salesforce.com`).
    pub audience: Option<String>,
    /// Scopes instead of the connector's.
    pub scopes: Option<Vec<String>>,
    /// Where the consent flow may send the user back to when done (URL prefixes).
    pub return_to: Vec<String>,
    /// The tenant's own token endpoint, instead of the connector's (a Salesforce org's My
    /// Domain, or `https://test.salesforce.com/...` for a sandbox). Its origin must still be
    /// one the connector may reach.
    pub token_url: Option<String>,
    /// The tenant's own consent page, instead of the connector's.
    pub authorize_url: Option<String>,
    /// The tenant's own revocation endpoint, instead of the connector's.
    pub revoke_url: Option<String>,
}

impl OAuthSetting {
    /// Where tokens are minted: the tenant's `token_url`, else the connector's.
    pub fn token_url<'a>(&'a self, declared: &'a str) -> &'a str {
        self.token_url.as_deref().unwrap_or(declared)
    }

    /// The consent page: the tenant's `authorize_url`, else the connector's.
    pub fn authorize_url<'a>(&'a self, declared: &'a str) -> &'a str {
        self.authorize_url.as_deref().unwrap_or(declared)
    }

    /// Where a grant is revoked: the tenant's `revoke_url`, else the connector's.
    pub fn revoke_url<'a>(&'a self, declared: Option<&'a str>) -> Option<&'a str> {
        self.revoke_url.as_deref().or(declared)
    }
}

/// `[tenants.<id>.connectors.<c>.oauth.<name>]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawOAuth {
    grant: Grant,
    client_id: Option<String>,
    subject: Option<String>,
    audience: Option<String>,
    scopes: Option<Vec<String>>,
    #[serde(default)]
    return_to: Vec<String>,
    token_url: Option<String>,
    authorize_url: Option<String>,
    revoke_url: Option<String>,
}

/// Checks one table; `here` is its path.
pub(super) fn validate(
    c: &Checker<'_>,
    here: &[&str],
    raw: RawOAuth,
) -> Result<OAuthSetting, ConfigError> {
    let at = |field: &'static str| {
        let mut path = here.to_vec();
        path.push(field);
        path
    };
    if raw.grant != Grant::JwtBearer && raw.client_id.as_deref().is_none_or(str::is_empty) {
        return Err(c.value(
            &at("grant"),
            format!(
                "the {} grant needs the OAuth client's `client_id` beside it",
                raw.grant.as_str()
            ),
        ));
    }
    for (i, url) in raw.return_to.iter().enumerate() {
        let ok = url::Url::parse(url)
            .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some());
        if !ok {
            let mut path = at("return_to");
            let index = i.to_string();
            path.push(&index);
            return Err(c.value(
                &path,
                "write an http(s) URL prefix the consent flow may return to, e.g. https://crm.example.com/settings",
            ));
        }
    }
    for (field, url) in [
        ("token_url", &raw.token_url),
        ("authorize_url", &raw.authorize_url),
        ("revoke_url", &raw.revoke_url),
    ] {
        let Some(url) = url else { continue };
        let ok = url::Url::parse(url).is_ok_and(|u| {
            matches!(u.scheme(), "http" | "https")
                && u.host_str().is_some()
                && u.username().is_empty()
                && u.password().is_none()
        });
        if !ok {
            return Err(c.value(
                &at(field),
                "write the endpoint's http(s) URL, e.g. https://acme.my.salesforce.com/services/oauth2/token",
            ));
        }
    }
    Ok(OAuthSetting {
        grant: raw.grant,
        client_id: raw.client_id,
        subject: raw.subject,
        audience: raw.audience,
        scopes: raw.scopes,
        return_to: raw.return_to,
        token_url: raw.token_url,
        authorize_url: raw.authorize_url,
        revoke_url: raw.revoke_url,
    })
}

//! The token endpoint, spoken: one request per grant (RFC 6749: authorization code with PKCE,
//! refresh token, client credentials; RFC 7523: a JWT bearer assertion the host signs RS256),
//! the client authenticated as the connector declares, and the answer sorted into a token, a
//! refused grant (the connection needs reconnecting), a passing fault, or a configuration the
//! provider will never accept. Secrets go only into the request body or `Authorization` header;
//! no error message carries one.

use std::time::Duration;

use base64::Engine as _;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::runtime::Oauth2ClientAuth;
use crate::runtime::outbound::{self, Failure, Policy, Prepared};

/// How long a token request may take.
const TIMEOUT: Duration = Duration::from_secs(10);
/// Lifetime assumed when the provider does not say (`expires_in` absent).
const DEFAULT_LIFETIME_S: i64 = 3600;
/// Lifetime of a signed assertion (Salesforce takes at most 3 minutes).
const ASSERTION_LIFETIME_S: i64 = 180;

/// A minted token.
pub struct Minted {
    /// The access token.
    pub access_token: SecretString,
    /// Seconds it lives.
    pub expires_in_s: i64,
    /// A new refresh token, when the provider issued (or rotated) one.
    pub refresh_token: Option<SecretString>,
}

/// Why no token.
#[derive(Debug)]
pub enum MintError {
    /// The provider refused the grant itself (`invalid_grant`: consent revoked, password
    /// changed, token expired): only a reconnection helps.
    Revoked(String),
    /// A passing fault: the endpoint is down, slow, or answered something that is not a token
    /// answer. Try again later.
    Transient(String),
    /// The provider refused the client or the request (`invalid_client`, `invalid_scope`...):
    /// the configuration must change.
    Permanent(String),
}

/// The OAuth client as the token endpoint sees it.
pub struct Client<'a> {
    /// `client_id`.
    pub id: Option<&'a str>,
    /// `client_secret`.
    pub secret: Option<&'a [u8]>,
    /// Where they go.
    pub auth: Oauth2ClientAuth,
}

/// Asks `token_url` for a token with the grant's `form` fields.
pub async fn mint(
    http: &outbound::Client,
    policy: &Policy,
    token_url: &str,
    client: &Client<'_>,
    form: &[(&str, &str)],
) -> Result<Minted, MintError> {
    let response = send(http, policy, token_url, client, form).await?;
    answer(response.status, &response.body)
}

/// POSTs a form to an endpoint of the provider's OAuth2 server, the client authenticated.
async fn send(
    http: &outbound::Client,
    policy: &Policy,
    token_url: &str,
    client: &Client<'_>,
    form: &[(&str, &str)],
) -> Result<outbound::Response, MintError> {
    let url = url::Url::parse(token_url).map_err(|e| {
        MintError::Permanent(format!("the token URL `{token_url}` is not a URL: {e}"))
    })?;
    let secret = match client.secret {
        Some(s) => Some(Zeroizing::new(String::from_utf8(s.to_vec()).map_err(
            |_| MintError::Permanent("the client secret is not UTF-8 text".into()),
        )?)),
        None => None,
    };
    let (headers, body) = request(client, form, secret.as_deref().map(String::as_str));
    let prepared = Prepared {
        method: reqwest::Method::POST,
        url,
        headers,
        body: body.as_bytes().to_vec(),
        timeout: TIMEOUT,
    };
    http.send(policy, prepared, &["authorization".to_string()])
        .await
        .map_err(|f| match f {
            Failure::Denied(m) => {
                MintError::Permanent(format!("the token endpoint is refused: {m}"))
            }
            Failure::Timeout => {
                MintError::Transient("the token endpoint did not answer in time".into())
            }
            Failure::TooLarge => {
                MintError::Transient("the token endpoint's answer is too large".into())
            }
            Failure::Transport(m) => {
                MintError::Transient(format!("the token endpoint cannot be reached: {m}"))
            }
        })
}

/// The headers and form body of a request to the provider's OAuth2 server (the serializer is
/// not `Send`, so it lives here, never across an await).
fn request(
    client: &Client<'_>,
    form: &[(&str, &str)],
    secret: Option<&str>,
) -> (Vec<(String, String)>, Zeroizing<String>) {
    let mut body = form_urlencoded::Serializer::new(String::new());
    for (k, v) in form {
        body.append_pair(k, v);
    }
    let mut headers = vec![
        (
            "content-type".to_string(),
            "application/x-www-form-urlencoded".to_string(),
        ),
        ("accept".to_string(), "application/json".to_string()),
    ];
    match (client.auth, client.id, secret) {
        (Oauth2ClientAuth::Basic, Some(id), Some(secret)) => {
            // RFC 6749 2.3.1: each part form-encoded, then Basic.
            let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
            let pair = Zeroizing::new(format!("{}:{}", enc(id), enc(secret)));
            let b64 = base64::engine::general_purpose::STANDARD.encode(pair.as_bytes());
            headers.push(("authorization".into(), format!("Basic {b64}")));
        }
        (_, Some(id), secret) => {
            body.append_pair("client_id", id);
            if let Some(secret) = secret {
                body.append_pair("client_secret", secret);
            }
        }
        (_, None, _) => {}
    }
    (headers, Zeroizing::new(body.finish()))
}

/// Revokes a token (RFC 7009); whether the provider said it did (200).
pub async fn revoke(
    http: &outbound::Client,
    policy: &Policy,
    revoke_url: &str,
    client: &Client<'_>,
    form: &[(&str, &str)],
) -> bool {
    // A revocation endpoint answers 200 and an empty body: not a token answer, so look at the
    // status alone.
    match send(http, policy, revoke_url, client, form).await {
        Ok(r) => r.status == 200,
        Err(e) => {
            tracing::warn!("revoking at the provider failed: {e:?}");
            false
        }
    }
}

/// A token endpoint's answer (RFC 6749 5.1, 5.2).
#[derive(Deserialize)]
struct Answer {
    access_token: Option<String>,
    expires_in: Option<serde_json::Value>,
    refresh_token: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

impl Drop for Answer {
    fn drop(&mut self) {
        use zeroize::Zeroize as _;
        self.access_token.zeroize();
        self.refresh_token.zeroize();
    }
}

fn answer(status: u16, body: &[u8]) -> Result<Minted, MintError> {
    let parsed: Option<Answer> = serde_json::from_slice(body).ok();
    let Some(mut a) = parsed else {
        let what = if body.trim_ascii_start().starts_with(b"<") {
            "an HTML page"
        } else {
            "a body that is not JSON"
        };
        return Err(if status == 401 {
            MintError::Permanent(format!(
                "the token endpoint refused the client (401, {what})"
            ))
        } else {
            MintError::Transient(format!(
                "the token endpoint answered {status} with {what} ({} bytes), not a token",
                body.len()
            ))
        });
    };
    if let Some(error) = a.error.take() {
        let why = match a.error_description.take() {
            Some(d) if !d.is_empty() => {
                format!("{error}: {}", d.chars().take(200).collect::<String>())
            }
            _ => error.clone(),
        };
        return Err(match error.as_str() {
            "invalid_grant" => MintError::Revoked(why),
            "temporarily_unavailable" | "server_error" | "slow_down" => MintError::Transient(why),
            _ if status >= 500 || status == 429 => MintError::Transient(why),
            _ => MintError::Permanent(why),
        });
    }
    if !(200..300).contains(&status) {
        return Err(if status >= 500 || status == 429 {
            MintError::Transient(format!("the token endpoint answered {status}"))
        } else {
            MintError::Permanent(format!("the token endpoint answered {status}"))
        });
    }
    let Some(access) = a.access_token.take().filter(|t| !t.is_empty()) else {
        return Err(MintError::Transient(
            "the token endpoint answered without an access_token".into(),
        ));
    };
    let expires_in_s = match &a.expires_in {
        Some(serde_json::Value::Number(n)) => n.as_i64().unwrap_or(DEFAULT_LIFETIME_S),
        Some(serde_json::Value::String(s)) => s.parse().unwrap_or(DEFAULT_LIFETIME_S),
        _ => DEFAULT_LIFETIME_S,
    };
    Ok(Minted {
        access_token: SecretString::from(access),
        expires_in_s: expires_in_s.max(0),
        refresh_token: a
            .refresh_token
            .take()
            .filter(|t| !t.is_empty())
            .map(SecretString::from),
    })
}

/// A Google service-account JSON key: the parts the JWT bearer grant uses.
#[derive(Deserialize)]
pub struct ServiceAccount {
    /// The assertion's issuer.
    pub client_email: String,
    /// The RSA key, PEM.
    pub private_key: String,
    /// The key's id (the JWT header's `kid`).
    #[serde(default)]
    pub private_key_id: Option<String>,
}

impl Drop for ServiceAccount {
    fn drop(&mut self) {
        use zeroize::Zeroize as _;
        self.private_key.zeroize();
    }
}

impl ServiceAccount {
    /// Parses a service-account key file's JSON.
    ///
    /// # Errors
    /// Naming the first missing or mistyped field, never the key.
    pub fn parse(json: &[u8]) -> Result<ServiceAccount, String> {
        serde_json::from_slice(json).map_err(|e| {
            let e = e.to_string();
            let field = e
                .split('`')
                .nth(1)
                .map_or(String::new(), |f| format!(" (`{f}`)"));
            format!("not a Google service-account JSON key{field}: it needs client_email and private_key")
        })
    }
}

/// What an assertion says.
#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    sub: Option<&'a str>,
    aud: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<&'a str>,
    iat: i64,
    exp: i64,
}

/// The signing key of a PEM RSA private key.
///
/// # Errors
/// When it is not an RSA private key in PEM.
pub fn signing_key(pem: &[u8]) -> Result<jsonwebtoken::EncodingKey, String> {
    jsonwebtoken::EncodingKey::from_rsa_pem(pem)
        .map_err(|_| "not an RSA private key in PEM (-----BEGIN PRIVATE KEY----- or -----BEGIN RSA PRIVATE KEY-----)".to_string())
}

/// An RS256 assertion for the JWT bearer grant (RFC 7523 section 3).
///
/// # Errors
/// When the key does not parse or cannot sign.
pub fn assertion(
    pem: &[u8],
    kid: Option<&str>,
    iss: &str,
    sub: Option<&str>,
    aud: &str,
    scope: Option<&str>,
    now_s: i64,
) -> Result<String, String> {
    let key = signing_key(pem)?;
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = kid.map(str::to_string);
    let claims = Claims {
        iss,
        sub,
        aud,
        scope,
        iat: now_s,
        exp: now_s + ASSERTION_LIFETIME_S,
    };
    jsonwebtoken::encode(&header, &claims, &key)
        .map_err(|e| format!("cannot sign the assertion: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret as _;

    #[test]
    fn answers_sort_into_tokens_refusals_and_faults() {
        let ok = answer(
            200,
            br#"{"access_token":"at","expires_in":"120","refresh_token":"rt"}"#,
        )
        .unwrap();
        assert_eq!(ok.access_token.expose_secret(), "at");
        assert_eq!(ok.expires_in_s, 120);
        assert_eq!(ok.refresh_token.unwrap().expose_secret(), "rt");
        let no_life = answer(200, br#"{"access_token":"at"}"#).unwrap();
        assert_eq!(no_life.expires_in_s, DEFAULT_LIFETIME_S);
        assert!(matches!(
            answer(400, br#"{"error":"invalid_grant","error_description":"Token has been expired or revoked."}"#),
            Err(MintError::Revoked(m)) if m.contains("expired or revoked")
        ));
        assert!(matches!(
            answer(401, br#"{"error":"invalid_client"}"#),
            Err(MintError::Permanent(_))
        ));
        assert!(matches!(
            answer(503, br#"{"error":"temporarily_unavailable"}"#),
            Err(MintError::Transient(_))
        ));
        assert!(matches!(
            answer(500, b"<html><body>Internal error</body></html>"),
            Err(MintError::Transient(m)) if m.contains("HTML")
        ));
        assert!(matches!(
            answer(200, b"garbage"),
            Err(MintError::Transient(_))
        ));
        assert!(matches!(
            answer(200, br#"{"token_type":"Bearer"}"#),
            Err(MintError::Transient(_))
        ));
    }

    #[test]
    fn a_service_account_missing_its_key_is_named() {
        let e = ServiceAccount::parse(br#"{"client_email":"a@b"}"#)
            .err()
            .unwrap();
        assert!(e.contains("private_key"), "{e}");
        assert!(ServiceAccount::parse(b"not json").is_err());
        assert!(
            signing_key(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n").is_err()
        );
    }
}

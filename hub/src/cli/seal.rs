//! `hub seal`: sealing a credential read from stdin, and generating (and sealing) a tenant's API
//! token or an endpoint's signing secret, printed once. Part of the binary only.

use std::io::{IsTerminal, Read};
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, bail};
use hub::config::{Config, TokenScope};
use hub::secrets::{MasterKey, Place};
use secrecy::ExposeSecret;
use zeroize::Zeroizing;

/// Generates a tenant's API token, seals it, writes it (or shows where it goes), and prints the
/// token once on stdout.
pub fn seal_api_token(
    config: &Path,
    key: &MasterKey,
    tenant: String,
    name: String,
    scope: TokenScope,
    write: bool,
) -> anyhow::Result<ExitCode> {
    let place = Place::ApiToken { tenant, name };
    // A token piped in is installed as it is (to move an app's existing token); else a new one.
    let mut piped = Zeroizing::new(String::new());
    if !std::io::stdin().is_terminal() {
        std::io::stdin().read_to_string(&mut piped)?;
    }
    let piped = piped.trim();
    let token = if piped.is_empty() {
        hub::secrets::generate_api_token()
    } else {
        secrecy::SecretString::from(piped.to_string())
    };
    let sealed = hub::secrets::seal(key, &place, token.expose_secret().as_bytes());
    if write {
        hub::config::edit::set_api_token(config, &place, &sealed, scope)?;
        eprintln!(
            "wrote {place} ({} scope) in {}; the token follows, shown this once:",
            scope.as_str(),
            config.display()
        );
    } else {
        let [_, tenant, _, name, _] = place.path()[..] else {
            bail!("not an API token's place: {place}");
        };
        eprintln!(
            "add to {}:\n[tenants.{tenant}.api_tokens.{name}]\nscope = \"{}\"\ntoken = \"{sealed}\"\nthe token follows, shown this once:",
            config.display(),
            scope.as_str()
        );
    }
    println!("{}", token.expose_secret());
    Ok(ExitCode::SUCCESS)
}

/// Generates a webhook endpoint's signing secret, seals it (keeping the current one for 24 hours
/// with `rotate`), writes it (or shows where it goes), and prints the secret once on stdout.
pub fn seal_endpoint_secret(
    config_path: &Path,
    key: &MasterKey,
    tenant: String,
    name: String,
    rotate: bool,
    write: bool,
) -> anyhow::Result<ExitCode> {
    let place = Place::Endpoint {
        tenant: tenant.clone(),
        name: name.clone(),
        field: "secret".into(),
    };
    let secret = hub::secrets::generate_webhook_secret();
    let sealed = hub::secrets::seal(key, &place, secret.expose_secret().as_bytes());
    if !write {
        if rotate {
            bail!("--rotate needs --write: it re-seals the current secret in place");
        }
        eprintln!(
            "add to [tenants.{tenant}.endpoints.{name}] in {}:\nsecret = \"{sealed}\"\nthe secret follows, shown this once:",
            config_path.display()
        );
        println!("{}", secret.expose_secret());
        return Ok(ExitCode::SUCCESS);
    }
    let previous = if rotate {
        let config = Config::from_file(config_path)?;
        let vault = config.open_vault(key)?;
        let current = vault
            .at(&place)
            .with_context(|| format!("{place} has no secret to rotate"))?;
        let old_place = Place::Endpoint {
            tenant: tenant.clone(),
            name: name.clone(),
            field: "previous_secret".into(),
        };
        let old = hub::secrets::seal(key, &old_place, current.expose_secret());
        let until = (chrono::Utc::now() + chrono::Duration::hours(24))
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        Some((old, until))
    } else {
        None
    };
    hub::config::edit::set_endpoint_secret(
        config_path,
        &place,
        &sealed,
        previous.as_ref().map(|(s, u)| (s.as_str(), u.as_str())),
    )?;
    match &previous {
        Some((_, until)) => eprintln!(
            "wrote {place} in {}; the old secret signs too until {until}; the new one follows, shown this once:",
            config_path.display()
        ),
        None => eprintln!(
            "wrote {place} in {}; the secret follows, shown this once:",
            config_path.display()
        ),
    }
    println!("{}", secret.expose_secret());
    Ok(ExitCode::SUCCESS)
}

/// A credential from stdin, or a prompt when stdin is a terminal (never from argv).
pub fn read_plaintext(place: &Place) -> anyhow::Result<Zeroizing<String>> {
    let mut text = Zeroizing::new(String::new());
    if std::io::stdin().is_terminal() {
        *text = rpassword::prompt_password(format!("value for {place}: "))?;
    } else {
        std::io::stdin().read_to_string(&mut text)?;
        let trimmed = text.trim_end_matches(['\n', '\r']).len();
        text.truncate(trimmed);
    }
    if text.is_empty() {
        bail!("no value given on stdin");
    }
    Ok(text)
}

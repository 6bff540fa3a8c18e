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

/// `hub seal`'s arguments.
#[derive(clap::Args)]
pub struct Ask {
    /// Tenant id (omit for a connector's global fallback credential).
    #[arg(long)]
    pub tenant: Option<String>,
    /// Connector id.
    #[arg(long, required_unless_present_any = ["admin_token", "database_password", "api_token", "endpoint", "alerts_url", "alerts_secret"])]
    pub connector: Option<String>,
    /// Credential name, e.g. `api_key`.
    #[arg(long, required_unless_present_any = ["admin_token", "database_password", "api_token", "endpoint", "alerts_url", "alerts_secret"])]
    pub field: Option<String>,
    /// Seal the admin API token (`server.admin_token`) instead.
    #[arg(long, conflicts_with_all = ["tenant", "connector", "field", "api_token", "database_password"])]
    pub admin_token: bool,
    /// Seal the PostgreSQL password (`server.database_password`, for a `postgres://` database)
    /// instead.
    #[arg(long, conflicts_with_all = ["tenant", "connector", "field", "api_token", "endpoint"])]
    pub database_password: bool,
    /// Seal the operator's alert receiver URL (`server.alerts.url`, read from stdin: a Slack
    /// incoming webhook URL is itself a secret) instead.
    #[arg(long, conflicts_with_all = ["tenant", "connector", "field", "api_token", "endpoint", "admin_token", "database_password", "alerts_secret"])]
    pub alerts_url: bool,
    /// Seal the secret that signs alerts (`server.alerts.secret`, Standard Webhooks): a new
    /// `whsec_...` printed once, or the one piped on stdin.
    #[arg(long, conflicts_with_all = ["tenant", "connector", "field", "api_token", "endpoint", "admin_token", "database_password"])]
    pub alerts_secret: bool,
    /// Generate an API token named NAME for the tenant's app (`--tenant` required), print it
    /// once on stdout and seal it at `tenants.<tenant>.api_tokens.<NAME>`. A token piped on
    /// stdin is sealed instead of a new one.
    #[arg(long, value_name = "NAME", requires = "tenant", conflicts_with_all = ["connector", "field"])]
    pub api_token: Option<String>,
    /// Generate a signing secret (`whsec_...`) for the tenant's webhook endpoint NAME
    /// (`--tenant` required), print it once on stdout and seal it at
    /// `tenants.<tenant>.endpoints.<NAME>.secret`.
    #[arg(long, value_name = "NAME", requires = "tenant", conflicts_with_all = ["connector", "field", "api_token", "admin_token"])]
    pub endpoint: Option<String>,
    /// With `--endpoint`: keep the current secret as `previous_secret`, still signing (a
    /// second signature) for 24 hours while the app moves to the new one. With `--tenant`,
    /// `--connector` and `--field` (and `--write`): keep the current value as
    /// `previous_<field>`, still verifying webhooks for 24 hours while the provider moves
    /// to the new one (`previous_until` in the tenant's connector table).
    #[arg(long)]
    pub rotate: bool,
    /// The API token's scope: `read`; `replay` (read, replay and sync); `act` (replay, and
    /// actions and tool calls); `manage` (act, and the tenant's own credentials from the
    /// console); or `tools` (only the tenant's agent tools, over MCP).
    #[arg(long, requires = "api_token", value_parser = ["read", "replay", "act", "manage", "tools"], default_value = "read")]
    pub scope: String,
    /// Write the sealed value into the config file (comments and layout are kept).
    #[arg(long)]
    pub write: bool,
    /// With `--tenant`, `--connector`, `--field` and `--write`: make the value (32 random
    /// bytes, base64url), seal it into the file and print it once on stdout. For a secret the
    /// hub issues, such as a token in the webhook URL a provider is given (Salesforce's
    /// `outbound_token`).
    #[arg(long, requires_all = ["field", "write"], conflicts_with_all = ["rotate", "admin_token", "database_password", "alerts_url", "alerts_secret", "api_token", "endpoint"])]
    pub generate: bool,
}

/// `hub seal`: as `ask` says.
pub fn run(config: &Path, ask: Ask) -> anyhow::Result<ExitCode> {
    let Ask {
        tenant,
        connector,
        field,
        admin_token,
        database_password,
        alerts_url,
        alerts_secret,
        api_token,
        endpoint,
        rotate,
        scope,
        write,
        generate,
    } = ask;
    // Sealing needs only the key: the config is read only when the key lives in a key
    // file, so a config with values still to seal (or other errors) can be filled in.
    let key = match std::env::var("HUB_MASTER_KEY") {
        Ok(text) => MasterKey::parse(&text)?,
        Err(_) => crate::master_key(&Config::from_file(config)?)?,
    };
    if let (Some(name), Some(tenant)) = (endpoint, tenant.clone()) {
        return seal_endpoint_secret(config, &key, tenant, name, rotate, write);
    }
    if let (Some(name), Some(tenant)) = (api_token, tenant.clone()) {
        let scope = TokenScope::parse(&scope).unwrap_or_default();
        return seal_api_token(config, &key, tenant, name, scope, write);
    }
    if alerts_secret {
        return seal_alerts_secret(config, &key, write);
    }
    let place = if alerts_url {
        Place::Server {
            field: "alerts.url".into(),
        }
    } else if admin_token {
        Place::Server {
            field: "admin_token".into(),
        }
    } else if database_password {
        Place::Server {
            field: "database_password".into(),
        }
    } else {
        let (connector, field) = (connector.unwrap_or_default(), field.unwrap_or_default());
        match tenant {
            Some(tenant) => Place::Tenant {
                tenant,
                connector,
                field,
            },
            None => Place::Global { connector, field },
        }
    };
    if generate {
        let made = hub::secrets::generate_secret_token();
        let sealed = hub::secrets::seal(&key, &place, made.expose_secret().as_bytes());
        hub::config::edit::set_sealed(config, &place, &sealed)?;
        eprintln!(
            "wrote {place} in {}; the value, shown once, is on stdout",
            config.display()
        );
        println!("{}", made.expose_secret());
        return Ok(ExitCode::SUCCESS);
    }
    let plaintext = read_plaintext(&place)?;
    if rotate {
        if !write || !matches!(place, Place::Tenant { .. }) {
            bail!(
                "--rotate rotates a tenant's credential (--tenant, --connector, --field) or an endpoint's secret, with --write"
            );
        }
        let until = (chrono::Utc::now() + chrono::Duration::hours(24))
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        hub::config::edit::rotate_credential(config, &key, &place, plaintext.as_bytes(), &until)?;
        eprintln!(
            "wrote {place} in {}; the old value still verifies webhooks until {until} (previous_until); `hub reload` applies it",
            config.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let sealed = hub::secrets::seal(&key, &place, plaintext.as_bytes());
    if write {
        hub::config::edit::set_sealed(config, &place, &sealed)?;
        eprintln!("wrote {place} in {}", config.display());
    } else {
        println!("{sealed}");
    }
    Ok(ExitCode::SUCCESS)
}

/// Seals the alerts' signing secret (a new `whsec_...`, or the one piped in), writes it (or
/// prints it sealed), and prints the secret once on stdout when it made it.
fn seal_alerts_secret(config: &Path, key: &MasterKey, write: bool) -> anyhow::Result<ExitCode> {
    let place = Place::Server {
        field: "alerts.secret".into(),
    };
    let mut piped = Zeroizing::new(String::new());
    if !std::io::stdin().is_terminal() {
        std::io::stdin().read_to_string(&mut piped)?;
    }
    let piped = piped.trim();
    let secret = if piped.is_empty() {
        hub::secrets::generate_webhook_secret()
    } else {
        secrecy::SecretString::from(piped.to_string())
    };
    let sealed = hub::secrets::seal(key, &place, secret.expose_secret().as_bytes());
    if write {
        hub::config::edit::set_sealed(config, &place, &sealed)?;
        eprintln!("wrote {place} in {}", config.display());
    } else {
        eprintln!(
            "add to [server.alerts] in {}:\nsecret = \"{sealed}\"",
            config.display()
        );
    }
    if piped.is_empty() {
        eprintln!("the receiver verifies with this secret, shown this once:");
        println!("{}", secret.expose_secret());
    }
    Ok(ExitCode::SUCCESS)
}

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

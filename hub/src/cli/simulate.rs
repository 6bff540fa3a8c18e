//! `hub simulate`: the request a provider would send to one of a tenant's routes, signed with
//! the tenant's sealed credential in the route's scheme (`hub::simulate`), posted to the hub
//! (or any URL); prints the answer and the delivery id. Part of the binary only.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use hub::secrets::redact::shown;

use hub::id::{ConnectorId, TenantId};
use hub::simulate::{Body, Signer};

/// What to send.
#[derive(clap::Args)]
pub struct Ask {
    /// Tenant id.
    #[arg(long)]
    pub tenant: TenantId,
    /// Connector id.
    #[arg(long)]
    pub connector: ConnectorId,
    /// The route (default: the connector's only per-tenant route, or its bare URL's).
    #[arg(long)]
    pub route: Option<String>,
    /// The example with its event type set to NAME (where the route reads it).
    #[arg(long, value_name = "NAME", conflicts_with = "body")]
    pub event: Option<String>,
    /// Send this body instead of the example (`-` reads stdin).
    #[arg(long, value_name = "FILE")]
    pub body: Option<PathBuf>,
    /// Post here instead of the hub at server.listen. The signature is computed for the
    /// hub's URL (server.public_url), as providers sign it.
    #[arg(long)]
    pub url: Option<String>,
    /// Sign it wrong (a 401 is the expected answer).
    #[arg(long)]
    pub forge: bool,
}

pub fn simulate(config_path: &Path, ask: Ask) -> anyhow::Result<ExitCode> {
    let (config, vault) = hub::reload::load(config_path)?;
    let uses = config
        .tenants
        .get(&ask.tenant)
        .is_some_and(|t| t.connectors.contains_key(&ask.connector));
    if !uses {
        bail!(
            "tenant `{}` does not use connector `{}` in {}",
            ask.tenant,
            ask.connector,
            config_path.display()
        );
    }
    let runtime = hub::state::load_runtime(&config)?;
    let public_base = hub::state::public_base(&config);
    let directory = hub::state::Directory::from_config(&config);
    let signer = Signer {
        runtime: &runtime,
        vault: &vault,
        public_base: &public_base,
        directory: &directory,
    };
    let route = match ask.route {
        Some(r) => r,
        None => signer
            .only_route(&ask.connector)
            .map_err(anyhow::Error::msg)?,
    };
    let body = match (&ask.body, ask.event) {
        (Some(file), _) => Body::Given(read_body(file)?),
        (None, Some(event)) => Body::ExampleAs(event),
        (None, None) => Body::Example,
    };
    let webhook = signer.sign(&ask.tenant, &ask.connector, &route, &body, ask.forge)?;
    let url = match ask.url {
        Some(u) => u,
        None => {
            let mut addr = config.server.listen;
            if addr.ip().is_unspecified() {
                addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
            }
            format!("http://{addr}{}", webhook.path)
        }
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let mut request = reqwest::Client::new()
            .post(&url)
            .timeout(std::time::Duration::from_secs(60))
            .body(webhook.body.clone());
        for (k, v) in &webhook.headers {
            request = request.header(k.as_str(), v.as_str());
        }
        let answer = request
            .send()
            .await
            .with_context(|| format!("nothing answers at {url}"))?;
        let status = answer.status();
        let text = answer.text().await.unwrap_or_default();
        // A route whose path is a credential (Zapier's catch-path) is shown masked, as is an
        // answer that would echo one; `main` masks errors the same way.
        println!("POST {}", shown(&url));
        println!("{} {}", status.as_u16(), shown(text.trim()));
        let id = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v["id"].as_i64());
        if let Some(id) = id {
            println!("delivery {id}: hub deliveries --id {id}");
        }
        // A forged request is meant to be refused: that is its success.
        let expected = if ask.forge {
            status.as_u16() == 401
        } else {
            status.is_success()
        };
        Ok(if expected {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        })
    })
}

fn read_body(file: &Path) -> anyhow::Result<Vec<u8>> {
    if file.as_os_str() == "-" {
        let mut body = Vec::new();
        std::io::stdin()
            .read_to_end(&mut body)
            .context("reading the body from stdin")?;
        return Ok(body);
    }
    std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))
}

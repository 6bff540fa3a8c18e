//! The `hub` command: parses arguments, loads the config and the master key, and hands over to
//! the library. See `hub --help`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{ArgGroup, Parser, Subcommand};
use hub::config::Config;
use hub::id::{ConnectorId, TenantId};
use hub::secrets::MasterKey;
use hub::store::DeliveryState;
use secrecy::ExposeSecret;

// Subcommands of the binary that need more than a few lines (not part of the library).
mod cli;

use cli::{deliveries, migrate, new_connector, seal, simulate, test_connector, versions};

#[derive(Parser)]
#[command(
    name = "hub",
    version,
    about = "Self-hosted integration hub: verified webhooks, sandboxed connectors, durable jobs"
)]
struct Cli {
    /// The config file.
    #[arg(long, global = true, default_value = "hub.toml", env = "HUB_CONFIG")]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum ConfigAction {
    /// Checks the file as `hub check` does and writes it as the newest version (on PostgreSQL,
    /// every hub applies it within seconds; on SQLite, the running hub reloads it).
    Push {
        /// Why, kept with the version.
        #[arg(long, default_value = "")]
        reason: String,
        /// Write it even if the database has a version newer than the one the file was made on.
        #[arg(long)]
        force: bool,
    },
    /// Writes the newest version into the file (this hub's own `[server]` settings kept; edits
    /// no version holds kept as `<file>.unapplied`).
    Pull,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the hub: webhooks, workers, admin API.
    Serve,
    /// Validates the config, the master key and every connector; exits non-zero on any problem.
    Check,
    /// Applies the edited config to the running hub (as SIGHUP does): checked first; refused
    /// with every problem listed, the old config still serving.
    Reload,
    /// The config's stored versions: `push` the file as the newest, `pull` the newest into it.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Brings the store's schema up to date (as `serve` does at start) and prints its version.
    Migrate,
    /// Copies the SQLite store in `data_dir` into an empty PostgreSQL store, checking every
    /// table's row count: the one `--to` names, else the config's `server.database`.
    MigrateStore {
        /// A PostgreSQL URL, or `env:VAR` for one in an environment variable.
        #[arg(long)]
        to: Option<String>,
    },
    /// Copies the SQLite store to FILE while the hub serves (SQLite's online backup), with a
    /// manifest of its schema and rows inside; a failure leaves no file.
    Backup {
        /// The backup file to write (it must not exist).
        #[arg(long, value_name = "FILE")]
        to: std::path::PathBuf,
    },
    /// Restores a backup as the store of `server.data_dir`, which must hold none: the schema,
    /// integrity and every table's rows checked against the backup's manifest first.
    Restore {
        /// The backup file (`hub backup --to`).
        #[arg(long, value_name = "FILE")]
        from: std::path::PathBuf,
    },
    /// Prints a new random master key.
    Keygen,
    /// Seals a credential read from stdin (or a prompt) for its place in the config; or, with
    /// `--api-token`, generates a tenant's API token, prints it once and seals it.
    Seal(seal::Ask),
    /// Re-seals every value under a new master key (from HUB_NEW_MASTER_KEY, or generated and
    /// printed). The file is replaced atomically: a failure leaves the old one.
    Rekey,
    /// Prints the most recent deliveries, or one delivery with its jobs (`--id`).
    Deliveries {
        /// Show this delivery with its jobs: attempts, errors, timings, replays.
        #[arg(long, conflicts_with_all = ["tenant", "connector", "state"])]
        id: Option<i64>,
        /// With --id: write the delivery as a fixture for `hub test-connector` (its request as
        /// stored, with no secrets, and the tenant's connector config) to FILE.
        #[arg(long, value_name = "FILE", requires = "id")]
        export: Option<PathBuf>,
        /// Only this tenant.
        #[arg(long)]
        tenant: Option<TenantId>,
        /// Only this connector.
        #[arg(long)]
        connector: Option<ConnectorId>,
        /// Only this state (received, processing, done, ignored, retrying, dead).
        #[arg(long)]
        state: Option<DeliveryState>,
        /// How many.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Runs a delivery's handling again, one job, or every dead-lettered job in a set. A done or
    /// dead job is queued again with its attempts reset; its earlier state is kept as history
    /// (`hub deliveries --id`). Keys stay the same, so nothing it already did is done twice.
    #[command(group(ArgGroup::new("what").required(true).args(["delivery", "job", "dead"])))]
    Replay {
        /// A delivery id: run its handling again.
        #[arg(long)]
        delivery: Option<i64>,
        /// A job id.
        #[arg(long)]
        job: Option<i64>,
        /// Every dead-lettered job (narrowed by the options below).
        #[arg(long)]
        dead: bool,
        /// With --dead: only this tenant.
        #[arg(long, requires = "dead")]
        tenant: Option<TenantId>,
        /// With --dead: only this connector.
        #[arg(long, requires = "dead")]
        connector: Option<ConnectorId>,
        /// With --dead: only jobs queued at or after this time (RFC 3339 or ms since the epoch).
        #[arg(long, requires = "dead", value_parser = parse_time)]
        since: Option<i64>,
        /// With --dead: only jobs queued before this time (RFC 3339 or ms since the epoch).
        #[arg(long, requires = "dead", value_parser = parse_time)]
        until: Option<i64>,
    },
    /// Sends a test webhook: the request a provider would send to a tenant's route (the
    /// connector's example, or a given body), signed with the tenant's sealed credential in the
    /// route's scheme, posted to the hub (or --url); prints the answer and the delivery id.
    Simulate(simulate::Ask),
    /// Writes a new connector crate that builds as it is: manifest, handlers, native tests on
    /// a recorded webhook, fixtures for `hub test-connector`.
    NewConnector {
        /// The connector's id and crate name, e.g. `acme-crm`.
        name: String,
        /// Where to write it (default: ./NAME). Inside the hub's `plugins/` it is written as a
        /// workspace member.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// How its webhooks are verified.
        #[arg(long, value_enum, default_value = "standard-webhooks")]
        scheme: new_connector::Scheme,
        /// The hub's plugin-sdk folder (default: the one this binary was built from).
        #[arg(long)]
        sdk: Option<PathBuf>,
    },
    /// Runs a connector's .wasm through the hub's sandbox over recorded fixtures (deliveries,
    /// actions, jobs, with stand-in provider answers) and checks what each produced against
    /// its golden file NAME.out.json.
    TestConnector {
        /// The component, e.g. target/wasm32-wasip2/release/acme_crm.wasm.
        wasm: PathBuf,
        /// The folder of fixtures (NAME.json, with goldens NAME.out.json beside them).
        #[arg(long)]
        fixtures: PathBuf,
        /// Write each golden file from what the fixture produced now.
        #[arg(long)]
        update: bool,
        /// Print what each fixture produced.
        #[arg(long)]
        print: bool,
        /// Memory limit per invocation (the hub's default: 64).
        #[arg(long, default_value_t = 64)]
        memory_mb: u32,
        /// Time limit per invocation (the hub's default: 10000).
        #[arg(long, default_value_t = 10_000)]
        timeout_ms: u64,
    },
    /// Queues a connector action for a tenant; the same `--key` never acts twice.
    RunAction {
        /// Tenant id.
        #[arg(long)]
        tenant: TenantId,
        /// Connector id.
        #[arg(long)]
        connector: ConnectorId,
        /// Action name, e.g. `send_email`.
        action: String,
        /// JSON input.
        #[arg(long, default_value = "{}")]
        input: String,
        /// Idempotency key (default: a fresh one).
        #[arg(long)]
        key: Option<String>,
    },
    /// Registers the hub's webhooks for a tenant at the connector's provider (its
    /// `register_webhooks` job, run by the hub at once; idempotent), or removes them (`--undo`).
    Connect {
        /// Tenant id.
        #[arg(long)]
        tenant: TenantId,
        /// Connector id.
        #[arg(long)]
        connector: ConnectorId,
        /// Remove the registration instead (`unregister_webhooks`).
        #[arg(long)]
        undo: bool,
    },
    /// Queues a connector job for a tenant (a running hub picks it up at once).
    RunJob {
        /// Tenant id.
        #[arg(long)]
        tenant: TenantId,
        /// Connector id.
        #[arg(long)]
        connector: ConnectorId,
        /// Job name, e.g. `sync_agents`.
        job: String,
        /// JSON input.
        #[arg(long, default_value = "{}")]
        input: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let log_filter = tracing_subscriber::EnvFilter::try_from_env("HUB_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,tower_http=warn"))
        // The exported spans are not the log's.
        .add_directive("hub::trace=off".parse().expect("a valid directive"));
    tracing_subscriber::registry()
        .with(hub::telemetry::layer())
        .with(
            tracing_subscriber::fmt::layer()
                // Each line masked: no sealed value reaches the log, whatever prints it.
                .with_writer(hub::secrets::redact::LogWriter)
                .with_filter(log_filter),
        )
        .init();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", hub::secrets::redact::shown(&format!("{e:#}")));
            ExitCode::FAILURE
        }
    }
}

fn master_key(config: &Config) -> anyhow::Result<MasterKey> {
    let env = std::env::var("HUB_MASTER_KEY").ok();
    Ok(MasterKey::load(
        env.as_deref(),
        config.server.master_key_file.as_deref(),
    )?)
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Keygen => {
            println!("{}", MasterKey::generate().to_text().expose_secret());
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve => serve(&cli.config),
        Command::Check => check(&cli.config),
        Command::Reload => reload(&cli.config),
        Command::Config { action } => match action {
            ConfigAction::Push { reason, force } => versions::push(&cli.config, reason, force),
            ConfigAction::Pull => versions::pull(&cli.config),
        },
        Command::Migrate => migrate::migrate(&cli.config),
        Command::MigrateStore { to } => migrate::migrate_store(&cli.config, to),
        Command::Backup { to } => migrate::backup(&cli.config, &to),
        Command::Restore { from } => migrate::restore(&cli.config, &from),
        Command::Seal(ask) => seal::run(&cli.config, ask),
        Command::Rekey => {
            let config = Config::from_file(&cli.config)?;
            let old = master_key(&config)?;
            let (new, generated) = match std::env::var("HUB_NEW_MASTER_KEY") {
                Ok(text) => (MasterKey::parse(&text)?, false),
                Err(_) => (MasterKey::generate(), true),
            };
            let n = hub::config::edit::rekey(&cli.config, &old, &new)?;
            eprintln!("re-sealed {n} values in {}", cli.config.display());
            if generated {
                eprintln!(
                    "the new master key follows; store it where HUB_MASTER_KEY or server.master_key_file comes from:"
                );
                println!("{}", new.to_text().expose_secret());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Deliveries {
            id: Some(id),
            export: Some(file),
            ..
        } => deliveries::export_delivery(&cli.config, id, &file),
        Command::Deliveries { id: Some(id), .. } => deliveries::show_delivery(&cli.config, id),
        Command::Simulate(ask) => simulate::simulate(&cli.config, ask),
        Command::NewConnector {
            name,
            dir,
            scheme,
            sdk,
        } => new_connector::new_connector(&name, dir, scheme, sdk),
        Command::TestConnector {
            wasm,
            fixtures,
            update,
            print,
            memory_mb,
            timeout_ms,
        } => test_connector::test_connector(test_connector::Options {
            wasm,
            fixtures,
            update,
            print,
            limits: hub::fixtures::run::Limits {
                memory_mb: memory_mb.clamp(1, 1024),
                timeout: std::time::Duration::from_millis(timeout_ms.clamp(1, 600_000)),
            },
        }),
        Command::Replay {
            delivery,
            job,
            dead: _,
            tenant,
            connector,
            since,
            until,
        } => {
            let what = match (delivery, job) {
                (Some(id), _) => hub::store::Replay::Delivery(id),
                (None, Some(id)) => hub::store::Replay::Job(id),
                (None, None) => hub::store::Replay::Dead(hub::store::DeadFilter {
                    tenant,
                    connector,
                    since_ms: since,
                    until_ms: until,
                }),
            };
            deliveries::replay(&cli.config, what)
        }
        Command::Deliveries {
            id: None,
            export: _,
            tenant,
            connector,
            state,
            limit,
        } => deliveries::list(
            &cli.config,
            hub::store::DeliveryFilter {
                tenant,
                connector,
                state,
                limit,
                ..Default::default()
            },
        ),
        Command::Connect {
            tenant,
            connector,
            undo,
        } => {
            use hub::connections::registration::{REGISTER, UNREGISTER};
            let name = if undo { UNREGISTER } else { REGISTER };
            let task = hub::store::Task::Job {
                name: name.into(),
                input: "{}".into(),
            };
            deliveries::enqueue(&cli.config, tenant, connector, task, None)
        }
        Command::RunJob {
            tenant,
            connector,
            job,
            input,
        } => {
            let task = hub::store::Task::Job { name: job, input };
            deliveries::enqueue(&cli.config, tenant, connector, task, None)
        }
        Command::RunAction {
            tenant,
            connector,
            action,
            input,
            key,
        } => {
            let task = hub::store::Task::Action {
                name: action,
                input,
            };
            let key = key.map(|k| format!("action:{tenant}:{connector}:{k}"));
            deliveries::enqueue(&cli.config, tenant, connector, task, key)
        }
    }
}

/// `--since` / `--until`: RFC 3339, or milliseconds since the epoch.
fn parse_time(text: &str) -> Result<i64, String> {
    if let Ok(ms) = text.parse::<i64>() {
        return Ok(ms);
    }
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp_millis())
        .map_err(|e| format!("expected RFC 3339 (2024-05-01T12:00:00Z) or milliseconds: {e}"))
}

fn load(config_path: &Path) -> anyhow::Result<(Config, hub::secrets::Vault)> {
    hub::reload::load(config_path)
}

/// `hub reload`: checks the file here, then asks the running hub (at `server.listen`, with the
/// admin token) to apply it, and prints what it says.
fn reload(config_path: &Path) -> anyhow::Result<ExitCode> {
    let (config, vault) = load(config_path)?;
    let Some(token) = vault.admin_token() else {
        bail!(
            "`hub reload` asks the running hub over its admin API: seal server.admin_token (hub seal --admin-token --write), or send the hub SIGHUP"
        );
    };
    let token = String::from_utf8_lossy(token.expose_secret()).into_owned();
    let mut addr = config.server.listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let answer = reqwest::Client::new()
            .post(format!("http://{addr}/api/v1/reload"))
            .bearer_auth(token)
            .timeout(std::time::Duration::from_secs(120))
            .send()
            .await
            .with_context(|| format!("no hub answers at {addr} (server.listen)"))?;
        let status = answer.status();
        let body: serde_json::Value = answer.json().await.unwrap_or_default();
        if status.is_success() {
            println!(
                "reloaded: {} tenants, {} connectors",
                body["tenants"], body["connectors"]
            );
            for s in body["restart_needed"].as_array().into_iter().flatten() {
                println!(
                    "{}: changed; it takes effect after a restart",
                    s.as_str().unwrap_or("")
                );
            }
            Ok(ExitCode::SUCCESS)
        } else {
            eprintln!("{}", body["error"].as_str().unwrap_or(status.as_str()));
            Ok(ExitCode::FAILURE)
        }
    })
}

fn check(config_path: &Path) -> anyhow::Result<ExitCode> {
    let (config, vault) = load(config_path)?;
    let runtime = hub::state::load_runtime(&config)?;
    let mut problems = hub::check::check(&config, &runtime, &vault);
    if !matches!(config.server.database, hub::config::Database::Sqlite) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        problems.extend(rt.block_on(hub::database::check(&config, &vault)));
    }
    if problems.is_empty() {
        println!(
            "{}: ok ({} connectors, {} tenants, {} sealed values open)",
            config_path.display(),
            config.connectors.len(),
            config.tenants.len(),
            vault.len()
        );
        return Ok(ExitCode::SUCCESS);
    }
    for p in &problems {
        eprintln!("{p}");
    }
    Ok(ExitCode::FAILURE)
}

fn serve(config_path: &Path) -> anyhow::Result<ExitCode> {
    let (config, vault) = load(config_path)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listen = config.server.listen;
        let admin_listen = config.server.admin_listen;
        if let Some(telemetry) = &config.server.telemetry {
            hub::telemetry::start(telemetry)?;
            tracing::info!("traces go to {}", telemetry.endpoint);
        }
        let hub = hub::state::build(config, vault).await?;
        let problems = {
            let key_vault = &hub.vault;
            hub::check::check(&hub.config, &hub.runtime, key_vault)
        };
        if !problems.is_empty() {
            for p in &problems {
                tracing::error!("{p}");
            }
            bail!(
                "the config has {} problem(s); `hub check` lists them",
                problems.len()
            );
        }
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        // Tests and scripts read this line to learn the bound port when listening on :0.
        println!("listening on http://{}", listener.local_addr()?);
        let admin_listener = match admin_listen {
            None => None,
            Some(addr) => {
                let l = tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("cannot listen on {addr} (server.admin_listen)"))?;
                println!("admin surfaces on http://{}", l.local_addr()?);
                Some(l)
            }
        };
        let current = hub::reload::Current::new(hub, Some(config_path.to_path_buf()));
        current
            .adopt()
            .await
            .context("cannot reconcile hub.toml with the stored config versions")?;
        reload_on_hangup(current.clone());
        hub::server::run_current(current, listener, admin_listener, shutdown_signal()).await
    })?;
    Ok(ExitCode::SUCCESS)
}

/// SIGHUP applies the edited config, as `hub reload` does.
fn reload_on_hangup(current: std::sync::Arc<hub::reload::Current>) {
    #[cfg(unix)]
    tokio::spawn(async move {
        let Ok(mut hangups) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            return;
        };
        while hangups.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading the config");
            // The outcome is logged by the reload itself.
            let change = hub::reload::Change::new("file", "SIGHUP");
            let _ = current.reload_as(change).await;
        }
    });
    #[cfg(not(unix))]
    drop(current);
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down");
}

//! The `hub` command: parses arguments, loads the config and the master key, and hands over to
//! the library. See `hub --help`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{ArgGroup, Parser, Subcommand};
use hub::config::{Config, ConnectorId, TenantId, TokenScope};
use hub::secrets::{MasterKey, Place};
use hub::store::DeliveryState;
use secrecy::ExposeSecret;

// Subcommands of the binary that need more than a few lines (not part of the library).
#[path = "cli/new_connector.rs"]
mod new_connector;
#[path = "cli/seal.rs"]
mod seal;
#[path = "cli/simulate.rs"]
mod simulate;
#[path = "cli/test_connector.rs"]
mod test_connector;

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
enum Command {
    /// Runs the hub: webhooks, workers, admin API.
    Serve,
    /// Validates the config, the master key and every connector; exits non-zero on any problem.
    Check,
    /// Applies the edited config to the running hub (as SIGHUP does): checked first; refused
    /// with every problem listed, the old config still serving.
    Reload,
    /// Prints a new random master key.
    Keygen,
    /// Seals a credential read from stdin (or a prompt) for its place in the config; or, with
    /// `--api-token`, generates a tenant's API token, prints it once and seals it.
    Seal {
        /// Tenant id (omit for a connector's global fallback credential).
        #[arg(long)]
        tenant: Option<String>,
        /// Connector id.
        #[arg(long, required_unless_present_any = ["admin_token", "api_token", "endpoint"])]
        connector: Option<String>,
        /// Credential name, e.g. `api_key`.
        #[arg(long, required_unless_present_any = ["admin_token", "api_token", "endpoint"])]
        field: Option<String>,
        /// Seal the admin API token (`server.admin_token`) instead.
        #[arg(long, conflicts_with_all = ["tenant", "connector", "field", "api_token"])]
        admin_token: bool,
        /// Generate an API token named NAME for the tenant's app (`--tenant` required), print it
        /// once on stdout and seal it at `tenants.<tenant>.api_tokens.<NAME>`. A token piped on
        /// stdin is sealed instead of a new one.
        #[arg(long, value_name = "NAME", requires = "tenant", conflicts_with_all = ["connector", "field"])]
        api_token: Option<String>,
        /// Generate a signing secret (`whsec_...`) for the tenant's webhook endpoint NAME
        /// (`--tenant` required), print it once on stdout and seal it at
        /// `tenants.<tenant>.endpoints.<NAME>.secret`.
        #[arg(long, value_name = "NAME", requires = "tenant", conflicts_with_all = ["connector", "field", "api_token", "admin_token"])]
        endpoint: Option<String>,
        /// With `--endpoint`: keep the current secret as `previous_secret`, still signing (a
        /// second signature) for 24 hours while the app moves to the new one. With `--tenant`,
        /// `--connector` and `--field` (and `--write`): keep the current value as
        /// `previous_<field>`, still verifying webhooks for 24 hours while the provider moves
        /// to the new one (`previous_until` in the tenant's connector table).
        #[arg(long)]
        rotate: bool,
        /// The API token's scope: `read`; `replay` (read, replay and sync); or `manage` (replay,
        /// and the tenant's own credentials from the console).
        #[arg(long, requires = "api_token", value_parser = ["read", "replay", "manage"], default_value = "read")]
        scope: String,
        /// Write the sealed value into the config file (comments and layout are kept).
        #[arg(long)]
        write: bool,
    },
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
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("HUB_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,tower_http=warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
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
        Command::Seal {
            tenant,
            connector,
            field,
            admin_token,
            api_token,
            endpoint,
            rotate,
            scope,
            write,
        } => {
            // Sealing needs only the key: the config is read only when the key lives in a key
            // file, so a config with values still to seal (or other errors) can be filled in.
            let key = match std::env::var("HUB_MASTER_KEY") {
                Ok(text) => MasterKey::parse(&text)?,
                Err(_) => master_key(&Config::from_file(&cli.config)?)?,
            };
            if let (Some(name), Some(tenant)) = (endpoint, tenant.clone()) {
                return seal::seal_endpoint_secret(&cli.config, &key, tenant, name, rotate, write);
            }
            if let (Some(name), Some(tenant)) = (api_token, tenant.clone()) {
                let scope = match scope.as_str() {
                    "manage" => TokenScope::Manage,
                    "replay" => TokenScope::Replay,
                    _ => TokenScope::Read,
                };
                return seal::seal_api_token(&cli.config, &key, tenant, name, scope, write);
            }
            let place = if admin_token {
                Place::Server {
                    field: "admin_token".into(),
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
            let plaintext = seal::read_plaintext(&place)?;
            if rotate {
                if !write || !matches!(place, Place::Tenant { .. }) {
                    bail!(
                        "--rotate rotates a tenant's credential (--tenant, --connector, --field) or an endpoint's secret, with --write"
                    );
                }
                let until = (chrono::Utc::now() + chrono::Duration::hours(24))
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
                hub::config::edit::rotate_credential(
                    &cli.config,
                    &key,
                    &place,
                    plaintext.as_bytes(),
                    &until,
                )?;
                eprintln!(
                    "wrote {place} in {}; the old value still verifies webhooks until {until} (previous_until); `hub reload` applies it",
                    cli.config.display()
                );
                return Ok(ExitCode::SUCCESS);
            }
            let sealed = hub::secrets::seal(&key, &place, plaintext.as_bytes());
            if write {
                hub::config::edit::set_sealed(&cli.config, &place, &sealed)?;
                eprintln!("wrote {place} in {}", cli.config.display());
            } else {
                println!("{sealed}");
            }
            Ok(ExitCode::SUCCESS)
        }
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
        } => export_delivery(&cli.config, id, &file),
        Command::Deliveries { id: Some(id), .. } => show_delivery(&cli.config, id),
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
            replay(&cli.config, what)
        }
        Command::Deliveries {
            id: None,
            export: _,
            tenant,
            connector,
            state,
            limit,
        } => {
            let config = Config::from_file(&cli.config)?;
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async {
                let store = hub::store::Store::open(&config.server.data_dir)?;
                let rows = store
                    .deliveries(hub::store::DeliveryFilter {
                        tenant,
                        connector,
                        state,
                        limit,
                        ..Default::default()
                    })
                    .await?;
                println!(
                    "{:>7}  {:<23}  {:<16} {:<10} {:<8} {:<18} {:<9} {:>3}  NOTE",
                    "ID", "RECEIVED (UTC)", "TENANT", "CONNECTOR", "ROUTE", "EVENT", "STATE", "TRY"
                );
                for r in rows {
                    let note = r.last_error.or(r.ignored_reason).unwrap_or_default();
                    println!(
                        "{:>7}  {:<23}  {:<16} {:<10} {:<8} {:<18} {:<9} {:>3}  {}",
                        r.id,
                        format_ms(r.received_at_ms),
                        r.tenant,
                        r.connector,
                        if r.route.is_empty() { "-" } else { &r.route },
                        r.event.unwrap_or_else(|| "-".into()),
                        r.state,
                        r.attempts,
                        note.chars().take(80).collect::<String>()
                    );
                }
                anyhow::Ok(())
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::RunJob {
            tenant,
            connector,
            job,
            input,
        } => {
            let task = hub::store::Task::Job { name: job, input };
            enqueue(&cli.config, tenant, connector, task, None)
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
            enqueue(&cli.config, tenant, connector, task, key)
        }
    }
}

/// Queues a job or action in the database (a running hub picks it up at once).
fn enqueue(
    config_path: &Path,
    tenant: TenantId,
    connector: ConnectorId,
    task: hub::store::Task,
    key: Option<String>,
) -> anyhow::Result<ExitCode> {
    let config = Config::from_file(config_path)?;
    let (hub::store::Task::Job { input, .. } | hub::store::Task::Action { input, .. }) = &task
    else {
        bail!("only jobs and actions can be queued");
    };
    serde_json::from_str::<serde_json::Value>(input).context("--input is not JSON")?;
    let uses = config
        .tenants
        .get(&tenant)
        .is_some_and(|t| t.connectors.contains_key(&connector));
    if !uses {
        bail!(
            "tenant `{tenant}` does not use connector `{connector}` in {}",
            config_path.display()
        );
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let id = rt.block_on(async {
        let store = hub::store::Store::open(&config.server.data_dir)?;
        let job = hub::store::NewJob {
            tenant,
            connector,
            task,
            run_at_ms: hub::store::now_ms(),
            idempotency_key: key,
        };
        anyhow::Ok(store.enqueue(job).await?)
    })?;
    match id {
        Some(id) => println!("queued {id}"),
        None => println!("already queued under this key; not queued again"),
    }
    Ok(ExitCode::SUCCESS)
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

fn open_store(config_path: &Path) -> anyhow::Result<(tokio::runtime::Runtime, hub::store::Store)> {
    let config = Config::from_file(config_path)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let store = hub::store::Store::open(&config.server.data_dir)?;
    Ok((rt, store))
}

/// `hub replay`: queues again in the database; a running hub picks the jobs up within a second.
fn replay(config_path: &Path, what: hub::store::Replay) -> anyhow::Result<ExitCode> {
    let named = match &what {
        hub::store::Replay::Delivery(id) => format!("delivery {id}"),
        hub::store::Replay::Job(id) => format!("job {id}"),
        hub::store::Replay::Dead(_) => String::new(),
    };
    let (rt, store) = open_store(config_path)?;
    let Some(done) = rt.block_on(store.replay(what))? else {
        bail!("there is no {named}");
    };
    println!("queued {}", done.queued);
    if done.pending > 0 {
        println!("{} still queued or running; left as they are", done.pending);
    }
    if done.pruned > 0 {
        println!(
            "{} not replayed: the delivery's payload was pruned (server.retention_days)",
            done.pruned
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `hub deliveries --id N --export FILE`: the delivery as a `hub test-connector` fixture.
fn export_delivery(config_path: &Path, id: i64, file: &Path) -> anyhow::Result<ExitCode> {
    let config = Config::from_file(config_path)?;
    let (rt, store) = open_store(config_path)?;
    let Some(detail) = rt.block_on(store.delivery_detail(id))? else {
        bail!("there is no delivery {id}");
    };
    let Some(request) = store.delivery_request(id)? else {
        bail!("there is no delivery {id}");
    };
    if detail.pruned_at_ms.is_some() {
        bail!("delivery {id}'s payload was pruned (server.retention_days); nothing to export");
    }
    let d = &detail.delivery;
    let connector_config = config
        .tenants
        .get(&d.tenant)
        .and_then(|t| t.connectors.get(&d.connector))
        .map(|tc| tc.config.clone())
        .unwrap_or_default();
    let fixture =
        hub::fixtures::Fixture::from_delivery(d.tenant.as_str(), connector_config, &request);
    let text = serde_json::to_string_pretty(&fixture)? + "\n";
    std::fs::write(file, text).with_context(|| format!("cannot write {}", file.display()))?;
    println!(
        "wrote delivery {id} ({}/{}) to {}",
        d.tenant,
        d.connector,
        file.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// `hub deliveries --id`: one delivery and each of its jobs.
fn show_delivery(config_path: &Path, id: i64) -> anyhow::Result<ExitCode> {
    let (rt, store) = open_store(config_path)?;
    let Some(detail) = rt.block_on(store.delivery_detail(id))? else {
        bail!("there is no delivery {id}");
    };
    let d = &detail.delivery;
    println!(
        "delivery {}  {}/{}  route {}  event {}  identity {}",
        d.id,
        d.tenant,
        d.connector,
        if d.route.is_empty() { "-" } else { &d.route },
        d.event.as_deref().unwrap_or("-"),
        d.identity
    );
    println!(
        "state {}  attempts {}  received {}  processed {}  last attempt {}",
        d.state,
        d.attempts,
        format_ms(d.received_at_ms),
        d.processed_at_ms.map_or_else(|| "-".into(), format_ms),
        d.duration_us
            .map_or_else(|| "-".into(), |us| format!("{:.1} ms", us as f64 / 1000.0))
    );
    if let Some(e) = d.last_error.as_ref().or(d.ignored_reason.as_ref()) {
        println!("note  {e}");
    }
    match detail.pruned_at_ms {
        Some(at) => println!("payload pruned at {}", format_ms(at)),
        None => println!("payload {} bytes", d.body.as_ref().map_or(0, |b| b.len())),
    }
    println!();
    println!(
        "{:>7}  {:<24} {:<8} {:>3}  {:<23}  {:<23}  {:<23}  KEY / ERROR",
        "JOB", "TASK", "STATE", "TRY", "QUEUED (UTC)", "NEXT RUN (UTC)", "FINISHED (UTC)"
    );
    for j in &detail.jobs {
        let task = match &j.job.task {
            hub::store::Task::Delivery { .. } => "delivery".to_string(),
            hub::store::Task::Job { name, .. } => format!("job {name}"),
            hub::store::Task::Action { name, .. } => format!("action {name}"),
            hub::store::Task::Route { route, .. } => format!("route {route}"),
            hub::store::Task::Webhook { endpoint, .. } => format!("webhook {endpoint}"),
        };
        println!(
            "{:>7}  {:<24} {:<8} {:>3}  {:<23}  {:<23}  {:<23}  {}",
            j.job.id,
            format!("{}:{task}", j.job.connector),
            j.job.state,
            j.job.attempts,
            format_ms(j.created_at_ms),
            format_ms(j.job.run_at_ms),
            j.finished_at_ms.map_or_else(|| "-".into(), format_ms),
            j.idempotency_key
        );
        if let Some(e) = &j.job.last_error {
            println!(
                "{:>7}  error: {}",
                "",
                e.chars().take(200).collect::<String>()
            );
        }
        if let Some(result) = &j.result {
            println!(
                "{:>7}  result: {}",
                "",
                result.to_string().chars().take(200).collect::<String>()
            );
        }
        for r in &j.replays {
            println!(
                "{:>7}  replayed {}: was {} after {} attempt(s){}",
                "",
                format_ms(r.replayed_at_ms),
                r.state,
                r.attempts,
                r.last_error
                    .as_ref()
                    .map(|e| format!(": {}", e.chars().take(160).collect::<String>()))
                    .unwrap_or_default()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn format_ms(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{:03}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms.rem_euclid(1000)
    )
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
    let problems = hub::check::check(&config, &runtime, &vault);
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
        let hub = hub::state::build(config, vault)?;
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
        let current = hub::reload::Current::new(hub, Some(config_path.to_path_buf()));
        reload_on_hangup(current.clone());
        hub::server::run_current(current, listener, shutdown_signal()).await
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
            let _ = current.reload().await;
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

//! The commands that read or write the store directly: `hub deliveries` (list, show, export),
//! `hub replay`, `hub run-job` and `hub run-action` (queued for a running hub to pick up).

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, bail};
use hub::config::Config;
use hub::id::{ConnectorId, TenantId};

/// `hub deliveries`: the newest deliveries matching `filter`, one line each.
pub fn list(config_path: &Path, filter: hub::store::DeliveryFilter) -> anyhow::Result<ExitCode> {
    let config = Config::from_file(config_path)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let store = store(config_path, &config).await?;
        let rows = store.deliveries(filter).await?;
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

/// Queues a job or action in the database (a running hub picks it up at once).
pub fn enqueue(
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
        let store = store(config_path, &config).await?;
        let job = hub::store::NewJob {
            tenant,
            connector,
            task,
            run_at_ms: hub::clock::now_ms(),
            idempotency_key: key,
            trace: None,
        };
        anyhow::Ok(store.enqueue(job).await?)
    })?;
    match id {
        Some(id) => println!("queued {id}"),
        None => println!("already queued under this key; not queued again"),
    }
    Ok(ExitCode::SUCCESS)
}

pub fn open_store(
    config_path: &Path,
) -> anyhow::Result<(tokio::runtime::Runtime, hub::store::Store)> {
    let config = Config::from_file(config_path)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let store = rt.block_on(store(config_path, &config))?;
    Ok((rt, store))
}

/// The store the config names; the master key is asked for only when it seals the database
/// password.
pub(crate) async fn store(
    config_path: &Path,
    config: &Config,
) -> anyhow::Result<hub::store::Store> {
    let vault = match &config.server.database {
        hub::config::Database::Postgres {
            password: Some(_), ..
        } => hub::reload::load(config_path)?.1,
        _ => hub::secrets::Vault::new(),
    };
    hub::database::open(config, &vault).await
}

/// `hub replay`: queues again in the database; a running hub picks the jobs up within a second.
pub fn replay(config_path: &Path, what: hub::store::Replay) -> anyhow::Result<ExitCode> {
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
pub fn export_delivery(config_path: &Path, id: i64, file: &Path) -> anyhow::Result<ExitCode> {
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
pub fn show_delivery(config_path: &Path, id: i64) -> anyhow::Result<ExitCode> {
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
            hub::store::Task::Unreadable { .. } => "unreadable task".to_string(),
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

pub fn format_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S%.3f").to_string())
        .unwrap_or_else(|| format!("{ms} ms"))
}

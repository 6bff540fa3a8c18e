//! The processes under test: the real `hub` binary started on a generated `hub.toml` (master
//! key generated here, every credential sealed with `hub::secrets`), and the reference server
//! (this binary, `--serve-reference`). Both are started, watched through `/proc` and stopped
//! by their process id.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use base64::Engine as _;
use hub::runtime::{PoolSize, Runtime, Settings, SignatureScheme};
use hub::secrets::{MasterKey, Place, seal};
use rand::RngCore as _;
use secrecy::ExposeSecret as _;

use crate::payload::Signer;
use crate::reference::Keys;

/// What the bench needs to know about a bundled connector to configure tenants for it.
#[derive(Clone, Debug)]
pub struct ConnectorInfo {
    /// Connector id (its built-in name).
    pub id: String,
    /// Credentials a tenant must have: `(name, is a whsec_ secret)`.
    pub credentials: Vec<(String, bool)>,
    /// Config keys a tenant must set.
    pub config_keys: Vec<String>,
}

/// A bundled connector that could not be loaded: its name, and why.
pub type Unloadable = (String, String);

/// A tenant's plaintext credentials: `(connector, credential) -> secret`.
pub type Credentials = BTreeMap<(String, String), String>;

/// The connectors bundled in the `hub` binary, with what tenants must configure for each, and
/// the ones that could not be loaded (with why).
///
/// # Errors
/// When the sandbox cannot be created.
pub fn discover(cache: &Path) -> anyhow::Result<(Vec<ConnectorInfo>, Vec<Unloadable>)> {
    let mut runtime = Runtime::new(
        cache,
        &PoolSize {
            concurrency: 4,
            max_memory_bytes: 64 << 20,
        },
    )?;
    let (mut found, mut failed) = (Vec::new(), Vec::new());
    for (name, bytes) in hub::state::builtin::BUILTIN {
        let settings = Settings {
            memory_bytes: 64 << 20,
            timeout: Duration::from_secs(10),
            allow_hosts: vec![],
            stand_ins: vec![],
        };
        let Ok(id) = name.parse() else {
            failed.push((name.to_string(), "not a valid connector id".to_string()));
            continue;
        };
        let loaded = match runtime.load(id, bytes, settings) {
            Ok(l) => l,
            Err(e) => {
                failed.push((name.to_string(), e.to_string()));
                continue;
            }
        };
        let m = &loaded.manifest;
        let mut credentials: Vec<(String, bool)> = Vec::new();
        let mut add =
            |name: &str, whsec: bool| match credentials.iter_mut().find(|(n, _)| n == name) {
                Some(c) => c.1 |= whsec,
                None => credentials.push((name.to_string(), whsec)),
            };
        for r in &m.routes {
            // A scheme checked against the connector's own state (a channel token) names none.
            if !matches!(r.signature, SignatureScheme::None) && !r.credential.is_empty() {
                add(
                    &r.credential,
                    matches!(r.signature, SignatureScheme::StandardWebhooks),
                );
            }
        }
        for c in m.credentials.iter().filter(|c| c.required) {
            add(&c.name, false);
        }
        found.push(ConnectorInfo {
            id: name.to_string(),
            credentials,
            config_keys: m
                .config
                .iter()
                .filter(|c| c.required)
                .map(|c| c.name.clone())
                .collect(),
        });
    }
    Ok((found, failed))
}

fn random_text(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut b);
    hex::encode(b)
}

/// A generated deployment: master key, admin token, connectors and tenants with their secrets.
pub struct Fleet {
    /// The master key every value is sealed with.
    pub key: MasterKey,
    /// Bearer token of the admin API.
    pub admin_token: String,
    /// Connectors every tenant uses.
    pub connectors: Vec<ConnectorInfo>,
    /// Tenant ids, with `(connector, credential) -> plaintext secret`.
    pub tenants: Vec<(String, Credentials)>,
    /// `server.body_limit`.
    pub body_limit: u64,
    /// `server.workers` and every connector's `concurrency`; `None` leaves the defaults; `0`
    /// makes a hub that stores and queues but does not process.
    pub workers: Option<usize>,
    /// `server.database` as a PostgreSQL URL (no password) and the password to seal;
    /// `None`: SQLite in `data_dir`.
    pub database: Option<(String, String)>,
    /// The body of `[server.telemetry]` (where the hub exports its traces); `None`: off.
    pub telemetry: Option<String>,
}

impl Fleet {
    /// `tenants` tenants, each using every one of `connectors` with fresh secrets.
    pub fn new(connectors: &[ConnectorInfo], tenants: usize, body_limit: u64) -> Fleet {
        let tenants = (1..=tenants)
            .map(|i| {
                let mut secrets = BTreeMap::new();
                for c in connectors {
                    for (name, whsec) in &c.credentials {
                        let value = if *whsec {
                            let mut key = [0u8; 24];
                            rand::rng().fill_bytes(&mut key);
                            format!(
                                "whsec_{}",
                                base64::engine::general_purpose::STANDARD.encode(key)
                            )
                        } else {
                            format!("key_{}", random_text(14))
                        };
                        secrets.insert((c.id.clone(), name.clone()), value);
                    }
                }
                (format!("t{i:04}"), secrets)
            })
            .collect();
        Fleet {
            key: MasterKey::generate(),
            admin_token: random_text(16),
            connectors: connectors.to_vec(),
            tenants,
            body_limit,
            workers: None,
            database: None,
            telemetry: None,
        }
    }

    /// The master key's text form, for `HUB_MASTER_KEY`.
    pub fn key_text(&self) -> String {
        self.key.to_text().expose_secret().to_string()
    }

    /// `hub.toml` for a hub on `port`: default workers and limits, except a rate limit no load
    /// test reaches and the fleet's body limit.
    pub fn config_text(&self, port: u16) -> String {
        let admin = seal(
            &self.key,
            &Place::Server {
                field: "admin_token".into(),
            },
            self.admin_token.as_bytes(),
        );
        let mut out = format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\npublic_url = \"http://127.0.0.1:{port}\"\n\
             data_dir = \"data\"\nbody_limit = {}\nrate_limit = {{ per_second = 100000000, burst = 100000000 }}\n\
             admin_token = \"{admin}\"\n\n",
            self.body_limit
        );
        if let Some(n) = self.workers {
            out = out.replacen("body_limit", &format!("workers = {n}\nbody_limit"), 1);
        }
        if let Some((url, password)) = &self.database {
            let place = Place::Server {
                field: "database_password".into(),
            };
            let sealed = seal(&self.key, &place, password.as_bytes());
            out = out.replacen(
                "body_limit",
                &format!("database = \"{url}\"\ndatabase_password = \"{sealed}\"\nbody_limit"),
                1,
            );
        }
        if let Some(body) = &self.telemetry {
            out.push_str(&format!("[server.telemetry]\n{body}\n\n"));
        }
        for c in &self.connectors {
            out.push_str(&format!("[connectors.{}]\nbuiltin = true\n", c.id));
            if let Some(n) = self.workers.filter(|n| *n > 0) {
                out.push_str(&format!("concurrency = {n}\n"));
            }
            out.push('\n');
        }
        for (tenant, secrets) in &self.tenants {
            out.push_str(&format!("[tenants.{tenant}]\nname = \"Bench {tenant}\"\n"));
            for c in &self.connectors {
                out.push_str(&format!("[tenants.{tenant}.connectors.{}]\n", c.id));
                if !c.config_keys.is_empty() {
                    let items: Vec<String> = c
                        .config_keys
                        .iter()
                        .map(|k| format!("{k} = \"bench-{tenant}-{k}\""))
                        .collect();
                    out.push_str(&format!("config = {{ {} }}\n", items.join(", ")));
                }
                out.push_str(&format!(
                    "[tenants.{tenant}.connectors.{}.credentials]\n",
                    c.id
                ));
                for (name, _) in &c.credentials {
                    let place = Place::Tenant {
                        tenant: tenant.clone(),
                        connector: c.id.clone(),
                        field: name.clone(),
                    };
                    let plain = &secrets[&(c.id.clone(), name.clone())];
                    out.push_str(&format!(
                        "{name} = \"{}\"\n",
                        seal(&self.key, &place, plain.as_bytes())
                    ));
                }
            }
            out.push('\n');
        }
        out
    }

    /// Each tenant with its secret `credential` of `connector`.
    pub fn signers(&self, connector: &str, credential: &str) -> Vec<Signer> {
        self.tenants
            .iter()
            .filter_map(|(t, s)| {
                s.get(&(connector.to_string(), credential.to_string()))
                    .map(|secret| Signer {
                        tenant: t.clone(),
                        secret: secret.clone(),
                    })
            })
            .collect()
    }

    /// What the reference server verifies with: `connector -> tenant -> secret`.
    pub fn reference_keys(&self, credentials: &[(&str, &str)]) -> Keys {
        let mut keys = Keys::new();
        for (connector, credential) in credentials {
            let m = keys.entry(connector.to_string()).or_default();
            for s in self.signers(connector, credential) {
                m.insert(s.tenant, s.secret);
            }
        }
        keys
    }
}

/// A free loopback port.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Resident memory of a process, from `/proc/PID/status`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Memory {
    /// `VmRSS`, bytes.
    pub rss: u64,
    /// `VmHWM` (peak resident), bytes.
    pub peak: u64,
}

/// Reads `VmRSS` and `VmHWM` of `pid`.
pub fn memory(pid: u32) -> Memory {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap_or(0)
            * 1024
    };
    Memory {
        rss: field("VmRSS:"),
        peak: field("VmHWM:"),
    }
}

/// CPU time (user + system, all threads) `pid` has used so far, from `/proc/{pid}/stat`.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces), from field 3 (`state`) on:
    // utime and stime are fields 14 and 15, in clock ticks (USER_HZ, 100 on Linux).
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

/// Bytes the process (all its threads) has caused to be written to storage so far: `write_bytes`
/// in `/proc/PID/io` (counted when a page is dirtied, so it includes the WAL and the
/// checkpoint's copies into the database, not socket writes).
pub fn disk_written(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/io")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("write_bytes:"))
        .and_then(|v| v.trim().parse().ok())
}

/// Sends SIGTERM to a child we started and waits for it (SIGKILL after `grace`).
fn stop_child(child: &mut Child, grace: Duration) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// A client for the control requests (readiness, metrics, admin API), never through a proxy.
pub fn control_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap_or_default()
}

/// A folder with `hub.toml` and `data/`, where hubs of one fleet run one after another.
pub struct Site {
    /// The folder.
    pub dir: PathBuf,
    /// The port its hubs listen on.
    pub port: u16,
    key_text: String,
    admin_token: String,
}

impl Site {
    /// Writes the fleet's config into `dir`.
    ///
    /// # Errors
    /// When the folder cannot be written.
    pub fn new(dir: PathBuf, fleet: &Fleet) -> anyhow::Result<Site> {
        std::fs::create_dir_all(&dir)?;
        let port = free_port()?;
        std::fs::write(dir.join("hub.toml"), fleet.config_text(port))?;
        Ok(Site {
            dir,
            port,
            key_text: fleet.key_text(),
            admin_token: fleet.admin_token.clone(),
        })
    }

    /// Deletes the database, keeping (or with `cache` false, also deleting) the compile cache.
    pub fn reset(&self, keep_cache: bool) {
        let data = self.dir.join("data");
        for f in ["hub.db", "hub.db-wal", "hub.db-shm"] {
            let _ = std::fs::remove_file(data.join(f));
        }
        if !keep_cache {
            let _ = std::fs::remove_dir_all(data.join("compiled"));
        }
    }

    /// Fills the compile cache if it is empty, with one start and stop: a hub that compiled its
    /// connectors keeps the compiler's memory, and would not show what a restarted hub holds.
    ///
    /// # Errors
    /// When the hub does not start.
    pub async fn warm(&self, bin: &Path) -> anyhow::Result<()> {
        let cached = std::fs::read_dir(self.dir.join("data").join("compiled"))
            .map(|mut d| d.next().is_some())
            .unwrap_or(false);
        if !cached {
            let (hub, _) = self.start(bin).await?;
            hub.stop();
        }
        Ok(())
    }

    /// Starts `hub serve` and waits for the first 200 from `/readyz`; returns the hub and how
    /// long that took from spawn.
    ///
    /// # Errors
    /// When the hub exits or is not ready within two minutes.
    pub async fn start(&self, bin: &Path) -> anyhow::Result<(HubProc, Duration)> {
        let log_path = self.dir.join("hub.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)?;
        let client = control_client();
        let base = format!("http://127.0.0.1:{}", self.port);
        let started = Instant::now();
        let child = Command::new(bin)
            .arg("--config")
            .arg(self.dir.join("hub.toml"))
            .arg("serve")
            .env("HUB_MASTER_KEY", &self.key_text)
            .env_remove("HUB_LOG")
            .env_remove("HUB_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let mut hub = HubProc {
            child,
            base,
            client,
            admin_token: self.admin_token.clone(),
            log: log_path,
        };
        loop {
            if let Ok(Some(status)) = hub.child.try_wait() {
                bail!("hub exited with {status} during start:\n{}", hub.log_tail());
            }
            if let Ok(r) = hub.client.get(format!("{}/readyz", hub.base)).send().await
                && r.status().is_success()
            {
                return Ok((hub, started.elapsed()));
            }
            if started.elapsed() > Duration::from_secs(120) {
                let tail = hub.log_tail();
                hub.stop();
                bail!("hub not ready after 120 s:\n{tail}");
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}

/// A running `hub serve`.
pub struct HubProc {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    client: reqwest::Client,
    admin_token: String,
    log: PathBuf,
}

impl HubProc {
    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its resident memory now, and its peak so far.
    pub fn memory(&self) -> Memory {
        memory(self.pid())
    }

    /// The last lines of its log.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Jobs queued or running (`GET /readyz`).
    ///
    /// # Errors
    /// When the hub does not answer.
    pub async fn pending_jobs(&self) -> anyhow::Result<i64> {
        let v: serde_json::Value = self
            .client
            .get(format!("{}/readyz", self.base))
            .send()
            .await?
            .json()
            .await?;
        v["pending_jobs"]
            .as_i64()
            .context("no pending_jobs in /readyz")
    }

    /// One counter from `GET /metrics`.
    ///
    /// # Errors
    /// When the hub does not answer.
    pub async fn counter(&self, name: &str) -> anyhow::Result<u64> {
        let text = self
            .client
            .get(format!("{}/metrics", self.base))
            .send()
            .await?
            .text()
            .await?;
        Ok(text
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
            .unwrap_or(0))
    }

    /// How many records of `kind` a tenant has, up to the admin API's page of 1000.
    ///
    /// # Errors
    /// When the hub does not answer.
    pub async fn records(&self, tenant: &str, kind: &str) -> anyhow::Result<usize> {
        let v: serde_json::Value = self
            .client
            .get(format!(
                "{}/api/v1/tenants/{tenant}/records?kind={kind}&limit=1000",
                self.base
            ))
            .bearer_auth(&self.admin_token)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        Ok(v["records"].as_array().map_or(0, Vec::len))
    }

    /// SIGTERM, then waits (SIGKILL after 30 s).
    pub fn stop(mut self) {
        stop_child(&mut self.child, Duration::from_secs(30));
    }
}

impl Drop for HubProc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Which reference server: what it does with a verified webhook before it answers 200.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keeping {
    /// Nothing: verify only.
    Nothing,
    /// Stores it with the hub's store.
    Store,
    /// Appends it to a journal file, synced per group.
    Journal,
}

impl Keeping {
    /// Its folder under the bench's work folder, and its label in the figures.
    pub fn names(self) -> (&'static str, &'static str) {
        match self {
            Keeping::Nothing => ("reference", "reference"),
            Keeping::Store => ("reference-stored", "reference + store"),
            Keeping::Journal => ("reference-journal", "reference + journal"),
        }
    }
}

/// The reference server, a child process running this binary with `--serve-reference`.
pub struct ReferenceProc {
    child: Child,
    /// Its loopback port.
    pub port: u16,
}

impl ReferenceProc {
    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Writes its keys next to `dir` and starts it; returns once it accepts connections. What
    /// it keeps goes to a fresh `dir/store` (the hub's store) or `dir/journal`.
    ///
    /// # Errors
    /// When it cannot be started or does not listen within 10 s.
    pub async fn start(dir: &Path, keys: &Keys, keeping: Keeping) -> anyhow::Result<ReferenceProc> {
        std::fs::create_dir_all(dir)?;
        let file = dir.join("reference-keys.json");
        std::fs::write(&file, serde_json::to_vec(keys)?)?;
        let port = free_port()?;
        let mut command = Command::new(std::env::current_exe()?);
        command
            .arg("--serve-reference")
            .arg(port.to_string())
            .arg("--reference-keys")
            .arg(&file);
        let kept = |name: &str, flag: &str, command: &mut Command| {
            let place = dir.join(name);
            let _ = std::fs::remove_dir_all(&place);
            command.arg(flag).arg(place);
        };
        match keeping {
            Keeping::Nothing => {}
            Keeping::Store => kept("store", "--reference-store", &mut command),
            Keeping::Journal => kept("journal", "--reference-journal", &mut command),
        }
        let child = command.stdin(Stdio::null()).stdout(Stdio::null()).spawn()?;
        let mut r = ReferenceProc { child, port };
        let started = Instant::now();
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            if let Ok(Some(status)) = r.child.try_wait() {
                bail!("the reference server exited with {status}");
            }
            if started.elapsed() > Duration::from_secs(10) {
                stop_child(&mut r.child, Duration::from_secs(1));
                bail!("the reference server did not listen within 10 s");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(r)
    }
}

impl Drop for ReferenceProc {
    fn drop(&mut self) {
        stop_child(&mut self.child, Duration::from_secs(5));
    }
}

//! Test harness: a real `hub` process on a loopback port, with its own data folder, master key
//! and `hub.toml`, plus helpers to sign, post and wait.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hub::secrets::{MasterKey, Place, seal};
use secrecy::ExposeSecret;
use serde_json::Value;

/// The `hub` binary cargo built for these tests.
pub const HUB: &str = env!("CARGO_BIN_EXE_hub");

/// A compiled test-fixture component.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("HUB_GUEST_WASM_DIR")).join(format!("{name}.wasm"))
}

/// A free loopback port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Whether this test binary's hubs keep their state in PostgreSQL (the `e2e-postgres` binary:
/// the same suites as `e2e`, on the second backend), each hub in a fresh database on a server
/// the binary starts (`tests/postgres`).
pub fn on_postgres() -> bool {
    env!("CARGO_CRATE_NAME") == "e2e_postgres"
}

/// The admin token every test hub uses.
pub const ADMIN_TOKEN: &str = "test-admin-token-5f1c";

/// A hub's folder, key and port, before and after it runs.
pub struct TestHub {
    pub dir: tempfile::TempDir,
    pub key: MasterKey,
    pub port: u16,
    pub child: Option<Child>,
    pub client: reqwest::Client,
    /// The bearer token for `/api/v1`.
    pub admin_token: String,
    /// On PostgreSQL: the URL of this hub's database (no password).
    pub database: Option<String>,
}

impl TestHub {
    /// A new folder, key and port; nothing running yet.
    pub fn new() -> TestHub {
        TestHub {
            dir: tempfile::tempdir().unwrap(),
            key: MasterKey::generate(),
            port: free_port(),
            child: None,
            client: reqwest::Client::new(),
            admin_token: ADMIN_TOKEN.to_string(),
            database: on_postgres().then(|| {
                hub::store::postgres::testing::fresh_database_blocking().replace(
                    &format!(":{}@", hub::store::postgres::testing::PASSWORD),
                    "@",
                )
            }),
        }
    }

    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("hub.toml")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("hub.log")
    }

    pub fn key_text(&self) -> String {
        self.key.to_text().expose_secret().to_string()
    }

    /// Seals for a tenant's connector credential.
    pub fn seal_tenant(
        &self,
        tenant: &str,
        connector: &str,
        field: &str,
        plaintext: &str,
    ) -> String {
        let place = Place::Tenant {
            tenant: tenant.into(),
            connector: connector.into(),
            field: field.into(),
        };
        seal(&self.key, &place, plaintext.as_bytes())
    }

    /// The `[server]` table every test uses, admin token included.
    pub fn server_section(&self) -> String {
        let admin = seal(
            &self.key,
            &Place::Server {
                field: "admin_token".into(),
            },
            ADMIN_TOKEN.as_bytes(),
        );
        let database = match &self.database {
            Some(url) => {
                let place = Place::Server {
                    field: "database_password".into(),
                };
                let password = hub::store::postgres::testing::PASSWORD.as_bytes();
                format!(
                    "database = \"{url}\"\ndatabase_password = \"{}\"\n",
                    seal(&self.key, &place, password)
                )
            }
            None => String::new(),
        };
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\npublic_url = \"http://127.0.0.1:{port}\"\ndata_dir = \"data\"\n\
             workers = 4\nbody_limit = 65536\nrate_limit = {{ per_second = 1000, burst = 2000 }}\nadmin_token = \"{admin}\"\n{database}\n",
            port = self.port
        )
    }

    /// Writes `hub.toml`.
    pub fn write_config(&self, text: &str) {
        std::fs::write(self.config_path(), text).unwrap();
    }

    /// On PostgreSQL: this hub's database URL with its password, for a test's own session.
    pub fn database_url(&self) -> Option<String> {
        let password = hub::store::postgres::testing::PASSWORD;
        self.database
            .as_ref()
            .map(|url| url.replacen("postgres://hub@", &format!("postgres://hub:{password}@"), 1))
    }

    /// The master key a command that opens the store needs: none on SQLite; on PostgreSQL,
    /// the one that unseals `server.database_password`.
    pub fn store_key(&self) -> Option<String> {
        self.database.as_ref().map(|_| self.key_text())
    }

    /// Runs a `hub` subcommand to completion with this hub's key; (exit ok, stdout, stderr).
    pub fn command(&self, args: &[&str], key: Option<&str>) -> (bool, String, String) {
        let mut cmd = Command::new(HUB);
        cmd.arg("--config")
            .arg(self.config_path())
            .args(args)
            .env_remove("HUB_MASTER_KEY");
        if let Some(k) = key {
            cmd.env("HUB_MASTER_KEY", k);
        }
        let out = cmd.stdin(Stdio::null()).output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into(),
            String::from_utf8_lossy(&out.stderr).into(),
        )
    }

    /// Starts `hub serve` and waits until it answers `/readyz`.
    pub async fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let child = Command::new(HUB)
            .arg("--config")
            .arg(self.config_path())
            .arg("serve")
            .env("HUB_MASTER_KEY", self.key_text())
            .env("HUB_LOG", "debug,tower_http=debug,wasmtime=info,cranelift=warn,hyper=info,reqwest=info,h2=info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("hub exited with {status} during start:\n{}", self.log());
            }
            if let Ok(r) = self
                .client
                .get(format!("{}/readyz", self.base()))
                .send()
                .await
                && r.status().is_success()
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "hub did not become ready:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `kill -9`.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Everything the hub logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// POSTs to a path; (status, body).
    pub async fn post(&self, path: &str, headers: &[(&str, String)], body: &[u8]) -> (u16, String) {
        let mut req = self
            .client
            .post(format!("{}{path}", self.base()))
            .body(body.to_vec());
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.text().await.unwrap())
    }

    /// GETs an admin API path with the admin token; the JSON answer.
    pub async fn api(&self, path: &str) -> Value {
        let resp = self
            .client
            .get(format!("{}/api/v1{path}", self.base()))
            .bearer_auth(&self.admin_token)
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "GET {path}: {}", resp.status());
        resp.json().await.unwrap()
    }

    /// `GET /metrics`, as text.
    pub async fn metrics(&self) -> String {
        let resp = self
            .client
            .get(format!("{}/metrics", self.base()))
            .send()
            .await
            .unwrap();
        assert!(
            resp.status().is_success(),
            "GET /metrics: {}",
            resp.status()
        );
        resp.text().await.unwrap()
    }

    /// The tenant's records of a kind.
    pub async fn records(&self, tenant: &str, kind: &str) -> Vec<Value> {
        let v = self
            .api(&format!("/tenants/{tenant}/records?kind={kind}"))
            .await;
        v["records"].as_array().cloned().unwrap_or_default()
    }

    /// Deliveries (newest first), optionally of a tenant.
    pub async fn deliveries(&self, tenant: Option<&str>) -> Vec<Value> {
        let path = match tenant {
            Some(t) => format!("/deliveries?limit=1000&tenant={t}"),
            None => "/deliveries?limit=1000".to_string(),
        };
        self.api(&path).await["deliveries"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

impl Drop for TestHub {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Another `hub serve` on a [`TestHub`]'s folder and database: the same config with another
/// port, written to `{name}.toml`, logging to `{name}.log`. Several hubs on one database.
pub struct Sibling {
    pub port: u16,
    pub log_path: PathBuf,
    child: Child,
}

impl Sibling {
    /// Everything this process logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }
}

impl Drop for Sibling {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl TestHub {
    /// Starts a [`Sibling`] of this hub and waits until it answers `/readyz`.
    pub async fn start_sibling(&self, name: &str) -> Sibling {
        self.start_sibling_in(name, self.dir.path()).await
    }

    /// [`start_sibling`](TestHub::start_sibling) with its config and log in `dir` (its relative
    /// paths resolved there: another machine's folder).
    pub async fn start_sibling_in(&self, name: &str, dir: &std::path::Path) -> Sibling {
        let port = free_port();
        let text = std::fs::read_to_string(self.config_path())
            .unwrap()
            .replace(
                &format!("127.0.0.1:{}", self.port),
                &format!("127.0.0.1:{port}"),
            );
        let config = dir.join(format!("{name}.toml"));
        std::fs::write(&config, text).unwrap();
        let log_path = dir.join(format!("{name}.log"));
        let log = std::fs::File::create(&log_path).unwrap();
        let child = Command::new(HUB)
            .arg("--config")
            .arg(&config)
            .arg("serve")
            .env("HUB_MASTER_KEY", self.key_text())
            .env(
                "HUB_LOG",
                "debug,tower_http=info,wasmtime=info,cranelift=warn,hyper=info",
            )
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut sibling = Sibling {
            port,
            log_path,
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = sibling.child.try_wait().unwrap() {
                panic!("{name} exited with {status}:\n{}", sibling.log());
            }
            let ready = self
                .client
                .get(format!("http://127.0.0.1:{port}/readyz"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                return sibling;
            }
            assert!(Instant::now() < deadline, "{name} did not become ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Polls `check` until it returns `Some`, or panics after `secs`.
pub async fn wait_for<T, F, Fut>(secs: u64, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Milliseconds since the epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Signs a request with the provider's official SDK (`tests/signers`, Node), so tests never
/// check the hub's signing code against itself. `spec` is the JSON `tests/signers/sign.js` takes.
pub fn official_sign(spec: &Value) -> Vec<(&'static str, String)> {
    let v = node("sign.js", spec);
    v["headers"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            (
                &*Box::leak(k.clone().into_boxed_str()),
                v.as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Checks requests a provider stand-in received against the provider's API description in
/// `tests/provider-specs/` (`tests/signers/request-check.js`): each `{method, path, headers,
/// body}` must be an operation of the spec, with its required headers and a body its request
/// schema accepts. Panics listing what the spec refuses.
pub fn assert_spec_accepts(spec: &str, requests: &[Value]) {
    let spec_file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/provider-specs")
        .join(spec);
    let input = serde_json::json!({ "spec_file": spec_file, "requests": requests });
    let report = node("request-check.js", &input);
    assert_eq!(report["checked"], requests.len(), "{report}");
    assert_eq!(
        report["errors"],
        serde_json::json!([]),
        "{spec} refuses requests the hub sent"
    );
}

/// Request headers as a JSON object (`{name: value}`), as `assert_spec_accepts` takes them.
pub fn header_json(headers: &axum::http::HeaderMap) -> Value {
    headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                Value::String(v.to_str().unwrap_or_default().to_string()),
            )
        })
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// `hub connect --tenant T --connector C [--undo]`: queues the connector's webhook
/// registration (or its removal) for the running hub; panics unless it was queued.
pub fn hub_connect(hub: &TestHub, tenant: &str, connector: &str, undo: bool) {
    let mut args = vec!["connect", "--tenant", tenant, "--connector", connector];
    if undo {
        args.push("--undo");
    }
    let (ok, out, err) = hub.command(&args, Some(&hub.key_text()));
    assert!(ok && out.starts_with("queued"), "{out}{err}");
}

/// A request a provider stand-in received, as `assert_spec_accepts` takes it.
pub fn seen_request(
    method: &axum::http::Method,
    uri: &axum::http::Uri,
    headers: &axum::http::HeaderMap,
    body: Option<&Value>,
) -> Value {
    let mut request = serde_json::json!({ "method": method.as_str(), "path": uri.path(), "headers": header_json(headers) });
    if let Some(b) = body {
        request["body"] = b.clone();
    }
    request
}

/// Runs `tests/signers/SCRIPT` with node on `input` (JSON on stdin); its JSON answer.
/// Runs the official MCP TypeScript SDK's client (`tests/signers/mcp-client.js`): connects to
/// `url` with `token`, lists the tools and makes `calls`; what it got.
pub fn mcp_client(input: &Value) -> Value {
    node("mcp-client.js", input)
}

/// Verifies a JWT with an independent library (`jose`, `tests/signers/verify-jwt.js`):
/// `{jwt, public_key_pem, audience, issuer}` in, `{ok, header, claims}` or `{ok: false, error}`
/// out.
pub fn verify_jwt(input: &Value) -> Value {
    node("verify-jwt.js", input)
}

fn node(script: &str, input: &Value) -> Value {
    use std::io::Write;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/signers");
    let mut child = Command::new("node")
        .arg(script)
        .current_dir(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node runs (the test setup installs tests/signers with npm ci)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{script} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

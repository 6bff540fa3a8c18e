//! What only a hub on PostgreSQL faces: its database server going away under load.

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::hostile_kit::*;
use crate::util::*;

/// A PostgreSQL server of this test's own (`tests/postgres`), which it can stop and start.
struct Server {
    script: std::process::Child,
    said: std::io::Lines<BufReader<std::process::ChildStdout>>,
    port: u16,
}

impl Server {
    fn start() -> Server {
        let port = free_port();
        let mut script = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/postgres"))
            .arg(port.to_string())
            .arg(std::process::id().to_string())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut said = BufReader::new(script.stdout.take().unwrap()).lines();
        let ready = said.next().unwrap().unwrap();
        assert!(ready.starts_with("ready "), "tests/postgres: {ready}");
        Server { script, said, port }
    }

    /// Sends `signal` to the script and waits for it to say `answer`.
    fn signal(&mut self, signal: &str, answer: &str) {
        let sent = Command::new("kill")
            .args([signal, &self.script.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        assert_eq!(self.said.next().unwrap().unwrap(), answer);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.script.kill();
        let _ = self.script.wait();
    }
}

/// PostgreSQL stopped for 10 s while webhooks keep coming: while it is down the hub answers
/// 503 (the provider retries) and acknowledges nothing it could not commit; it stays up, and
/// once the server is back it stores and processes again without a restart. Every webhook
/// acknowledged before, during or after is stored and processed; every refused one is
/// accepted when sent again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_down_for_10_s_under_load_gets_503s_and_recovers() {
    let mut server = Server::start();
    let (mock, _) = mock_api().await;
    let mut hub = TestHub::new();
    hub.database = Some(format!("postgres://hub@127.0.0.1:{}/hub", server.port));
    hub.write_config(&config(&hub, mock, &Opts::default()));
    hub.start().await;
    let outcomes = Arc::new(Mutex::new(Vec::<(String, u16, Instant)>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let sender = {
        let (outcomes, stop) = (outcomes.clone(), stop.clone());
        let (client, url) = (
            hub.client.clone(),
            format!("{}/hooks/alpha/probe", hub.base()),
        );
        tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let id = format!("load{i}");
                let body = serde_json::to_vec(&json!({ "id": id, "op": "unknown-op" })).unwrap();
                let mut req = client.post(&url).timeout(Duration::from_secs(30));
                for (k, v) in signed(ALPHA_KEY, &body) {
                    req = req.header(k, v);
                }
                let sent = Instant::now();
                let status = req.body(body).send().await.unwrap().status().as_u16();
                outcomes.lock().unwrap().push((id, status, sent));
                i += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    server.signal("-USR1", "stopped");
    let down = Instant::now();
    let during_start = outcomes.lock().unwrap().len();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let during_end = outcomes.lock().unwrap().len();
    assert!(
        healthy(&hub).await,
        "the hub stays up while its database is down"
    );
    server.signal("-USR2", "started");
    println!("postgres down for {:?}", down.elapsed());
    // Back: the hub reconnects by itself; webhooks are stored again within a few seconds.
    let back = Instant::now();
    let first = wait_for(30, "a webhook stored after the server is back", || async {
        let o = outcomes.lock().unwrap();
        o.iter()
            .find(|(_, s, at)| *s == 200 && *at >= back)
            .map(|(_, _, at)| *at)
    })
    .await;
    println!("stored again {:?} after the server was back", first - back);
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    sender.await.unwrap();
    let outcomes: Vec<(String, u16)> = outcomes
        .lock()
        .unwrap()
        .iter()
        .map(|(id, s, _)| (id.clone(), *s))
        .collect();
    let while_down = &outcomes[during_start..during_end];
    assert!(
        while_down.iter().any(|(_, s)| *s == 503),
        "webhooks while the server is down get 503: {while_down:?}"
    );
    for (id, status) in &outcomes {
        assert!(*status == 200 || *status == 503, "{id}: {status}");
    }
    let refused: Vec<_> = outcomes.iter().filter(|(_, s)| *s == 503).collect();
    println!(
        "{} webhooks: {} acknowledged, {} refused with 503",
        outcomes.len(),
        outcomes.len() - refused.len(),
        refused.len()
    );
    // The provider retries what was refused: now it is stored.
    for (id, _) in &refused {
        let body = json!({ "id": id, "op": "unknown-op" });
        let (status, text, _) = send(&hub, "alpha", &body).await;
        assert_eq!(status, 200, "{id}: {text}");
    }
    // Every webhook, acknowledged the first time or the second, is processed.
    wait_for(90, "every webhook to be processed", || async {
        let states = states(&hub).await;
        outcomes
            .iter()
            .all(|(id, _)| {
                states
                    .get(&format!(":{id}"))
                    .is_some_and(|s| s == "ignored")
            })
            .then_some(())
    })
    .await;
    assert!(
        hub.child.as_mut().unwrap().try_wait().unwrap().is_none(),
        "the same hub process throughout"
    );
}

/// Each of alpha's deliveries' state by identity, every page of the log.
async fn states(hub: &TestHub) -> std::collections::HashMap<String, String> {
    let mut states = std::collections::HashMap::new();
    let mut path = "/deliveries?tenant=alpha&limit=500".to_string();
    loop {
        let page = hub.api(&path).await;
        for d in page["deliveries"].as_array().into_iter().flatten() {
            let identity = d["identity"].as_str().unwrap_or_default().to_string();
            states.insert(
                identity,
                d["state"].as_str().unwrap_or_default().to_string(),
            );
        }
        match page["next"].as_str() {
            Some(next) => path = next.trim_start_matches("/api/v1").to_string(),
            None => return states,
        }
    }
}

/// An install moves from SQLite to PostgreSQL: `hub migrate-store` copies its history (and says
/// how many rows of each table), the hub on PostgreSQL shows the old deliveries and records,
/// still knows the old webhooks (a provider's retry of one is a duplicate), and numbers new ones
/// after the old.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_install_moves_from_sqlite_to_postgres_with_its_history() {
    let (mock, _) = mock_api().await;
    let mut hub = TestHub::new();
    let postgres = hub.database.take();
    hub.write_config(&config(&hub, mock, &Opts::default()));
    hub.start().await;
    for i in 0..20 {
        let body = json!({ "id": format!("old{i}"), "op": "record", "kind": "call", "key": format!("k{i}"), "data": { "n": i } });
        send_ok(&hub, "alpha", body).await;
    }
    for i in 0..20 {
        settled(&hub, "alpha", &format!("old{i}"), 30).await;
    }
    hub.kill();

    hub.database = postgres;
    hub.write_config(&config(&hub, mock, &Opts::default()));
    let (ok, out, err) = hub.command(&["migrate-store"], Some(&hub.key_text()));
    assert!(ok, "{out}{err}");
    println!("{out}");
    assert!(out.contains("deliveries                 20 rows"), "{out}");
    assert!(out.contains("records                    20 rows"), "{out}");
    assert!(out.contains("every count checked"), "{out}");
    let (ok, out, err) = hub.command(&["migrate-store"], Some(&hub.key_text()));
    assert!(!ok, "a second copy is refused: {out}");
    assert!(
        err.contains("migrate-store copies into an empty database"),
        "{err}"
    );
    let (ok, out, err) = hub.command(&["migrate"], Some(&hub.key_text()));
    assert!(ok && out.contains("schema at version"), "{out}{err}");

    hub.start().await;
    let states = states(&hub).await;
    assert_eq!(states.len(), 20, "the old log is there");
    assert!(
        states.values().all(|s| s == "ignored" || s == "done"),
        "{states:?}"
    );
    let records = hub.records("alpha", "call").await;
    assert_eq!(records.len(), 20, "the old records are there");
    let (status, text, _) = send(&hub, "alpha", &json!({ "id": "old3", "op": "unknown-op" })).await;
    assert_eq!(status, 200);
    assert!(
        text.contains("duplicate"),
        "a retry of an old webhook is known: {text}"
    );
    let (status, text, _) = send(&hub, "alpha", &json!({ "id": "new", "op": "unknown-op" })).await;
    assert_eq!(status, 200, "{text}");
    let new = delivery(&hub, "alpha", "new").await.unwrap();
    assert!(
        new["id"].as_i64().unwrap() > 20,
        "new ids follow the old: {new}"
    );
}

/// A wrong password, a server that is not there, or a database that does not exist: `hub
/// check` and `hub serve` name `server.database` with its line, the server and what went wrong,
/// never the password, and `serve` exits instead of starting half a hub.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_database_is_a_located_error_at_check_and_serve() {
    let (mock, _) = mock_api().await;
    let hub = TestHub::new();
    let good = config(&hub, mock, &Opts::default());
    let url = hub.database.clone().unwrap();
    let line = good
        .lines()
        .position(|l| l.starts_with("database = "))
        .unwrap()
        + 1;
    let place = hub::secrets::Place::Server {
        field: "database_password".into(),
    };
    let wrong = hub::secrets::seal(&hub.key, &place, b"not-the-password");
    let sealed_now = good
        .lines()
        .find_map(|l| l.strip_prefix("database_password = "))
        .unwrap()
        .trim_matches('"')
        .to_string();
    let closed = free_port();
    let port = url
        .rsplit_once(':')
        .unwrap()
        .1
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let root = hub::store::postgres::testing::authority()
        .display()
        .to_string();
    let cases = [
        (
            good.replace(&sealed_now, &wrong),
            "password authentication failed",
        ),
        (
            good.replace(&format!(":{port}/"), &format!(":{closed}/")),
            &format!("127.0.0.1:{closed}") as &str,
        ),
        (
            good.replace(&url, &format!("{}_missing", url)),
            "does not exist",
        ),
        // The test server's certificate names localhost: checked against 127.0.0.1 it fails.
        (
            good.replace(
                &url,
                &format!("{url}?sslmode=verify-full&sslrootcert={root}"),
            ),
            "certificate not valid for name \"127.0.0.1\"",
        ),
        (
            good.replace(
                &url,
                &format!("{url}?sslmode=verify-ca&sslrootcert=/nonexistent.pem"),
            ),
            "sslrootcert /nonexistent.pem",
        ),
    ];
    for (text, says) in cases {
        hub.write_config(&text);
        let (ok, out, err) = hub.command(&["check"], Some(&hub.key_text()));
        assert!(!ok, "{out}");
        let here = format!("hub.toml:{line}:1: server.database: cannot open the database at");
        assert!(err.contains(&here) && err.contains(says), "{err}");
        assert!(
            !err.contains("not-the-password") && !err.contains("hub-test"),
            "{err}"
        );
        let (ok, _, err) = hub.command(&["serve"], Some(&hub.key_text()));
        assert!(!ok, "serve refuses to start");
        assert!(err.contains(&here) && err.contains(says), "{err}");
    }
    // Checked for the name it was issued to, the same server is accepted.
    let verified = url.replace("127.0.0.1", "localhost");
    hub.write_config(&good.replace(
        &url,
        &format!("{verified}?sslmode=verify-full&sslrootcert={root}"),
    ));
    let (ok, out, err) = hub.command(&["check"], Some(&hub.key_text()));
    assert!(ok, "verify-full for localhost: {out}{err}");
    hub.write_config(&good);
    let (ok, out, err) = hub.command(&["check"], Some(&hub.key_text()));
    assert!(ok, "{out}{err}");
}

#[tokio::test]
async fn two_hubs_refresh_an_expired_token_once_for_50_jobs() {
    let mut auth = None;
    let hub = crate::oauth::started(&mut auth, |s| s.refresh_delay_ms = 300).await;
    let auth = auth.unwrap();
    let sibling = hub.start_sibling("second").await;
    // 50 jobs, queued through both hubs, all needing beta's token at once.
    let ids: Vec<String> = (0..50).map(|i| format!("two-{i}")).collect();
    let (first, second) = ids.split_at(25);
    let (one, other) = (hub.base(), format!("http://127.0.0.1:{}", sibling.port));
    tokio::join!(
        crate::oauth::futures_join(&one, "beta", first),
        crate::oauth::futures_join(&other, "beta", second),
    );
    crate::oauth::api_ok(&hub, "beta", 50).await;
    assert_eq!(
        auth.state.lock().unwrap().refreshes,
        1,
        "one refresh for two hubs"
    );
    auth.expire_access_tokens();
    let ids: Vec<String> = (50..100).map(|i| format!("two-{i}")).collect();
    let (first, second) = ids.split_at(25);
    tokio::join!(
        crate::oauth::futures_join(&one, "beta", first),
        crate::oauth::futures_join(&other, "beta", second),
    );
    crate::oauth::api_ok(&hub, "beta", 100).await;
    assert_eq!(
        auth.state.lock().unwrap().refreshes,
        2,
        "one more after the 401s, for both hubs"
    );
}

/// Two hubs on one database run one config: a tenant added through the first hub's file (and
/// reload) is served by the second within seconds, which also rewrites its own `hub.toml` to
/// the new version with its own port kept; a rollback made on the second reaches the first.
#[tokio::test]
async fn two_hubs_follow_each_other_s_config_versions() {
    use crate::versions::{config, ready, reload};
    const BETA_KEY: &str = "key_beta_versions_0123456789abc";
    let mut hub = TestHub::new();
    hub.write_config(&config(&hub, "Alpha", "key_alpha_versions_0123456789ab"));
    hub.start().await;
    let second = hub.start_sibling("second").await;
    assert_eq!(
        ready(&hub, second.port).await["config_version"],
        1,
        "the same version, no new one"
    );
    let second_file = hub.dir.path().join("second.toml");
    let text = std::fs::read_to_string(&second_file).unwrap();
    assert!(text.starts_with("# hub config version 1 "), "{text}");
    assert!(text.contains(&format!("listen = \"127.0.0.1:{}\"", second.port)));

    let signed = |key: &str| {
        let body =
            serde_json::to_vec(&json!({ "id": format!("v{}", now_ms()), "op": "unknown-op" }))
                .unwrap();
        let sig = plugin_sdk::schemes::sign_retell(key.as_bytes(), &body, now_ms());
        (body, sig)
    };
    let send = |port: u16, tenant: &'static str, key: &'static str| {
        let client = hub.client.clone();
        let (body, sig) = signed(key);
        async move {
            client
                .post(format!("http://127.0.0.1:{port}/hooks/{tenant}/probe"))
                .header("x-retell-signature", sig)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(
        send(second.port, "beta", BETA_KEY).await,
        404,
        "no tenant beta yet"
    );

    // Hub one: tenant beta added to its file and reloaded.
    let mut text = std::fs::read_to_string(hub.config_path()).unwrap();
    text.push_str(&format!(
        "\n[tenants.beta]\nname = \"Beta\"\n[tenants.beta.connectors.probe.credentials]\napi_key = \"{}\"\ntoken = \"{}\"\n",
        hub.seal_tenant("beta", "probe", "api_key", BETA_KEY),
        hub.seal_tenant("beta", "probe", "token", "tok"),
    ));
    hub.write_config(&text);
    let (status, applied) = reload(&hub, hub.port).await;
    assert_eq!(
        (status, applied["version"].as_i64()),
        (200, Some(2)),
        "{applied}"
    );
    let applied_at = Instant::now();
    let mine = std::fs::read_to_string(hub.config_path()).unwrap();
    assert!(
        mine.starts_with("# hub config version 2 "),
        "the reloaded file names its version: {mine}"
    );
    wait_for(10, "the second hub runs version 2", || async {
        (ready(&hub, second.port).await["config_version"] == 2).then_some(())
    })
    .await;
    eprintln!(
        "version 2 reached the second hub in {} ms",
        applied_at.elapsed().as_millis()
    );
    assert_eq!(
        send(second.port, "beta", BETA_KEY).await,
        200,
        "beta's key verifies on the second hub"
    );
    let text = std::fs::read_to_string(&second_file).unwrap();
    assert!(text.starts_with("# hub config version 2 ") && text.contains("[tenants.beta]"));
    assert!(
        text.contains(&format!("listen = \"127.0.0.1:{}\"", second.port)),
        "its own port kept"
    );

    // The second hub rolls back to version 1: the first follows, beta is gone there.
    let rolled = hub
        .client
        .post(format!(
            "http://127.0.0.1:{}/api/v1/config/rollback",
            second.port
        ))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({ "version": 1, "reason": "beta was added by mistake" }))
        .send()
        .await
        .unwrap();
    assert_eq!(rolled.status(), 200);
    wait_for(10, "the first hub runs version 3", || async {
        (ready(&hub, hub.port).await["config_version"] == 3).then_some(())
    })
    .await;
    assert_eq!(send(hub.port, "beta", BETA_KEY).await, 404);
    let first = std::fs::read_to_string(hub.config_path()).unwrap();
    assert!(first.starts_with("# hub config version 3 ") && !first.contains("[tenants.beta]"));
    assert!(first.contains(&format!("listen = \"127.0.0.1:{}\"", hub.port)));

    for (name, log) in [("first", hub.log()), ("second", second.log())] {
        let errors: Vec<&str> = log.lines().filter(|l| l.contains("ERROR")).collect();
        assert!(errors.is_empty(), "{name}: {errors:#?}");
    }
}

/// GitOps with a database: `hub config push` writes the edited file as the newest version (the
/// running hub applies it), refuses a file made on an older version, and `hub config pull` brings
/// the newest back into the file, keeping the refused edits beside it.
#[tokio::test]
async fn hub_config_push_and_pull_keep_the_file_and_the_database_in_step() {
    let mut hub = TestHub::new();
    hub.write_config(&crate::versions::config(
        &hub,
        "Alpha",
        "key_alpha_push_0123456789abcdef",
    ));
    hub.start().await;
    let key = hub.key_text();
    let text = std::fs::read_to_string(hub.config_path()).unwrap();
    assert!(text.starts_with("# hub config version 1 "), "{text}");
    hub.write_config(&text.replace("name = \"Alpha\"", "name = \"Alpha Pushed\""));
    let (ok, out, err) = hub.command(
        &["config", "push", "--reason", "renamed in git"],
        Some(&key),
    );
    assert!(ok, "{out}{err}");
    assert!(out.contains("version 2 written"), "{out}");
    wait_for(10, "the running hub to apply version 2", || async {
        (hub.api("/config").await["running"] == 2).then_some(())
    })
    .await;
    assert_eq!(
        hub.api("/tenants").await["tenants"][0]["name"],
        "Alpha Pushed"
    );
    let newest = hub.api("/config").await["newest"].clone();
    assert_eq!(newest["reason"], "renamed in git");
    assert!(newest["actor"].as_str().unwrap().starts_with("cli:"));

    // Made on version 1 while 2 is the newest: refused, nothing written.
    let pushed = std::fs::read_to_string(hub.config_path()).unwrap();
    assert!(pushed.starts_with("# hub config version 2 "));
    let stale = pushed
        .replace("# hub config version 2 ", "# hub config version 1 ")
        .replace("name = \"Alpha Pushed\"", "name = \"Stale\"");
    hub.write_config(&stale);
    let (ok, out, err) = hub.command(&["config", "push"], Some(&key));
    assert!(!ok, "{out}");
    assert!(
        err.contains("newer than version 1") && err.contains("pull"),
        "{err}"
    );
    assert_eq!(hub.api("/config").await["running"], 2);

    // Pulled: the file holds version 2 again, the refused edit kept beside it.
    let (ok, out, err) = hub.command(&["config", "pull"], Some(&key));
    assert!(ok, "{out}{err}");
    let file = std::fs::read_to_string(hub.config_path()).unwrap();
    assert!(
        file.starts_with("# hub config version 2 ") && file.contains("Alpha Pushed"),
        "{file}"
    );
    let aside =
        std::fs::read_to_string(hub.config_path().with_extension("toml.unapplied")).unwrap();
    assert!(aside.contains("name = \"Stale\""));
}

/// A hub that cannot build the newest version (a connector's `.wasm` missing on its machine)
/// keeps serving the version it has and says why (`/readyz`, `/metrics`); once the file is
/// there it takes the version at its next look, with no restart.
#[tokio::test]
async fn a_hub_that_cannot_build_a_version_keeps_serving_and_takes_it_once_it_can() {
    use crate::versions::{config, ready, reload};
    let mut hub = TestHub::new();
    hub.write_config(&config(&hub, "Alpha", "key_alpha_missing_0123456789abc"));
    hub.start().await;
    let elsewhere = hub.dir.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let second = hub.start_sibling_in("second", &elsewhere).await;
    // Version 2 declares a connector whose `.wasm` sits beside the first hub's file only.
    std::fs::copy(fixture("probe"), hub.dir.path().join("extra.wasm")).unwrap();
    let text = std::fs::read_to_string(hub.config_path()).unwrap();
    hub.write_config(&format!(
        "{text}\n[connectors.extra]\npath = \"extra.wasm\"\n"
    ));
    let (status, applied) = reload(&hub, hub.port).await;
    assert_eq!(
        (status, applied["version"].as_i64()),
        (200, Some(2)),
        "{applied}"
    );
    let said = wait_for(
        15,
        "the second hub to report version 2 as failed",
        || async {
            let r = ready(&hub, second.port).await;
            (r["config_failed"]["version"] == 2).then_some(r)
        },
    )
    .await;
    assert_eq!(
        said["config_version"], 1,
        "it keeps serving version 1: {said}"
    );
    assert!(
        said["config_failed"]["error"]
            .as_str()
            .unwrap()
            .contains("extra.wasm"),
        "{said}"
    );
    let metrics = hub
        .client
        .get(format!("http://127.0.0.1:{}/metrics", second.port))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("hub_config_failed_version 2"));
    let webhook = hub
        .client
        .post(format!(
            "http://127.0.0.1:{}/hooks/alpha/probe",
            second.port
        ))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(
        webhook.status(),
        401,
        "still serving alpha (an unsigned webhook is refused, not 404)"
    );
    // The file arrives: version 2 is taken at the next look.
    std::fs::copy(fixture("probe"), elsewhere.join("extra.wasm")).unwrap();
    let said = wait_for(15, "the second hub to run version 2", || async {
        let r = ready(&hub, second.port).await;
        (r["config_version"] == 2).then_some(r)
    })
    .await;
    assert!(said.get("config_failed").is_none(), "{said}");
}

/// `kill -9` of a hub in the middle of applying a change leaves every hub on a whole version:
/// the version is written in one transaction or not at all, the swap is in memory, the file an
/// atomic rename; the killed hub comes back on the newest version, its file whole, and the other
/// hub runs that same version.
#[tokio::test]
async fn kill_9_during_an_apply_leaves_every_hub_on_a_whole_version() {
    use crate::versions::{config, ready};
    let mut hub = TestHub::new();
    hub.write_config(&config(&hub, "Alpha", "key_alpha_kill_0123456789abcdef"));
    hub.start().await;
    let second = hub.start_sibling("second").await;
    for round in 0..4u64 {
        let text = std::fs::read_to_string(hub.config_path()).unwrap();
        let name = text
            .lines()
            .find(|l| l.starts_with("name = "))
            .unwrap()
            .to_string();
        hub.write_config(&text.replace(&name, &format!("name = \"Alpha {round}\"")));
        // The reload is asked for, and the hub killed a few ms into it.
        let url = format!("{}/api/v1/reload", hub.base());
        let client = hub.client.clone();
        let asked = tokio::spawn(async move {
            let _ = client.post(url).bearer_auth(ADMIN_TOKEN).send().await;
        });
        tokio::time::sleep(Duration::from_millis(5 + round * 15)).await;
        hub.kill();
        let _ = asked.await;
        let file = std::fs::read_to_string(hub.config_path()).unwrap();
        assert!(
            toml::from_str::<toml::Table>(&file).is_ok(),
            "round {round}: the file is whole"
        );
        hub.start().await;
        let newest = hub.api("/config").await["newest"]["number"]
            .as_i64()
            .unwrap();
        assert_eq!(
            hub.api("/config").await["running"],
            newest,
            "round {round}: the killed hub runs the newest"
        );
        wait_for(10, "the other hub to run the newest", || async {
            (ready(&hub, second.port).await["config_version"] == newest).then_some(())
        })
        .await;
        let name_now = hub.api("/tenants").await["tenants"][0]["name"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(
            name_now,
            format!("Alpha {round}"),
            "applied before the kill, or at the restart from the edited file"
        );
        let versions = hub.api("/config/versions?limit=500").await;
        let numbers: Vec<i64> = versions["versions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["number"].as_i64().unwrap())
            .collect();
        assert!(
            numbers.windows(2).all(|w| w[0] == w[1] + 1),
            "round {round}: no gap, no double: {numbers:?}"
        );
    }
}

//! The connector author's path, as a new author walks it: `hub new-connector` -> the crate's
//! own native tests -> `.wasm` -> `hub test-connector` with golden files -> `hub check` ->
//! `hub serve` -> `hub simulate` -> a record; then `hub deliveries --export` of that delivery
//! as a fixture. And the Make connector (written with the kit) over its fixtures.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use crate::util::*;

/// A request a stand-in received: its headers and body.
type Seen = (Vec<(String, String)>, Vec<u8>);

/// The workspace root (tests run in `hub/`).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs a command to completion; panics with its output when it fails.
fn run(cmd: &mut Command, what: &str) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(out.status.success(), "{what} failed:\n{stdout}\n{stderr}");
    stdout
}

fn hub_cmd(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(HUB).args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_connector_goes_from_template_to_a_record_in_a_running_hub() {
    let mut hub = TestHub::new();
    let work = hub.dir.path().join("authoring");
    std::fs::create_dir_all(&work).unwrap();
    let crate_dir = work.join("acme-crm");
    let dir = crate_dir.to_str().unwrap();

    // The template, then the refusals that write nothing.
    let (ok, out, err) = hub_cmd(&["new-connector", "acme-crm", "--dir", dir]);
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("cargo build --release --target wasm32-wasip2"),
        "{out}"
    );
    let lib = std::fs::read_to_string(crate_dir.join("src/lib.rs")).unwrap();
    let (ok, _, err) = hub_cmd(&["new-connector", "acme-crm", "--dir", dir]);
    assert!(
        !ok && err.contains("already exists; nothing was written"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(crate_dir.join("src/lib.rs")).unwrap(),
        lib
    );
    let other = work.join("x");
    let (ok, _, err) = hub_cmd(&[
        "new-connector",
        "Acme CRM",
        "--dir",
        other.to_str().unwrap(),
    ]);
    assert!(!ok && err.contains("invalid connector id"), "{err}");
    assert!(!other.exists());

    // Its own tests and its component. The workspace's lock file pins the same versions the
    // hub was tested with, and a shared target folder keeps a second run quick; an author
    // needs neither.
    std::fs::copy(root().join("Cargo.lock"), crate_dir.join("Cargo.lock")).unwrap();
    let target = root().join("target/author-kit");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let tested = run(
        Command::new(&cargo)
            .args(["test", "--quiet"])
            .current_dir(&crate_dir)
            .env("CARGO_TARGET_DIR", &target),
        "cargo test in the new crate",
    );
    assert!(tested.contains("4 passed"), "{tested}");
    run(
        Command::new(&cargo)
            .args(["build", "--release", "--target", "wasm32-wasip2", "--quiet"])
            .current_dir(&crate_dir)
            .env("CARGO_TARGET_DIR", &target),
        "building the component",
    );
    let wasm = target.join("wasm32-wasip2/release/acme_crm.wasm");
    let wasm_text = wasm.to_str().unwrap().to_string();
    let fixtures = crate_dir.join("fixtures");
    let fixtures_text = fixtures.to_str().unwrap().to_string();

    // The real sandbox over the template's fixtures: no golden files yet, then written, then
    // checked; a changed golden file fails with a diff.
    let tc = ["test-connector", &wasm_text, "--fixtures", &fixtures_text];
    let (ok, out, _) = hub_cmd(&tc);
    assert!(!ok && out.contains("MISSING item-created.json"), "{out}");
    let (ok, out, err) = hub_cmd(&[&tc[..], &["--update"]].concat());
    assert!(ok && out.contains("wrote 3 golden files"), "{out}{err}");
    let (ok, out, err) = hub_cmd(&tc);
    assert!(
        ok && out.contains("3 fixtures: 3 passed, 0 failed"),
        "{out}{err}"
    );
    let golden = fixtures.join("notify.out.json");
    let text = std::fs::read_to_string(&golden).unwrap();
    std::fs::write(&golden, text.replace("msg_1", "msg_2")).unwrap();
    let (ok, out, _) = hub_cmd(&tc);
    assert!(
        !ok && out.contains("FAIL notify.json") && out.contains("-      \"value\": \"msg_2\""),
        "{out}"
    );
    std::fs::write(&golden, text).unwrap();
    std::fs::write(fixtures.join("broken.json"), r#"{"job": {"name": 7}}"#).unwrap();
    let (ok, _, err) = hub_cmd(&tc);
    assert!(
        !ok && err.contains("broken.json: job.name: invalid type"),
        "{err}"
    );
    std::fs::remove_file(fixtures.join("broken.json")).unwrap();
    // A fixture whose recorded signature is not the provider's fails as the hub would refuse it.
    let forged = r#"{"credentials": {"signing_secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"},
        "delivery": {"route": "", "verify": true, "headers": {"webhook-id": "msg_1",
        "webhook-timestamp": "1767225600", "webhook-signature": "v1,Zm9yZ2VkIHNpZ25hdHVyZSBieSBub2JvZHkgYXQgYWxsIQ=="},
        "body": {"id": "evt_forged", "type": "item.created", "data": {}}}}"#;
    std::fs::write(fixtures.join("forged.json"), forged).unwrap();
    let (ok, out, _) = hub_cmd(&tc);
    assert!(
        !ok && out.contains("FAIL forged.json: delivery: the signature does not verify"),
        "{out}"
    );
    std::fs::remove_file(fixtures.join("forged.json")).unwrap();

    // A hub.toml pointing at it: checked, served, sent a signed test webhook.
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let config = format!(
        r#"{server}
[connectors.acme-crm]
path = "{wasm_text}"
allow_hosts = ["https://api.example.com"]

[tenants.acme]
name = "Acme"
[tenants.acme.connectors.acme-crm.credentials]
signing_secret = "{s}"
api_key = "{k}"
"#,
        server = hub.server_section(),
        s = hub.seal_tenant("acme", "acme-crm", "signing_secret", secret),
        k = hub.seal_tenant("acme", "acme-crm", "api_key", "key_live_test"),
    );
    let key = hub.key_text();
    // A typo in a credential's name is caught before anything runs, with its line.
    let typo = hub.seal_tenant("acme", "acme-crm", "api_kye", "key_live_test");
    hub.write_config(&format!("{config}api_kye = \"{typo}\"\n"));
    let (ok, _, err) = hub.command(&["check"], Some(&key));
    assert!(
        !ok && err.contains("hub.toml:")
            && err.contains("credentials.api_kye: connector `acme-crm` declares no credential `api_kye` (it declares: signing_secret, api_key)"),
        "{err}"
    );
    hub.write_config(&config);
    let (ok, out, err) = hub.command(&["check"], Some(&key));
    assert!(ok, "{out}{err}");
    hub.start().await;
    let sim = ["simulate", "--tenant", "acme", "--connector", "acme-crm"];
    let (ok, out, err) = hub.command(&sim, Some(&key));
    assert!(ok, "{out}{err}");
    let id: i64 = out
        .lines()
        .find_map(|l| l.strip_prefix("delivery ")?.split(':').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no delivery id in: {out}"));
    let item = wait_for(20, "the simulated webhook's record", || async {
        hub.records("acme", "item").await.into_iter().next()
    })
    .await;
    assert_eq!(item["data"]["name"], "Ada Lovelace", "{item}");
    let (ok, out, err) = hub.command(&[&sim[..], &["--forge"]].concat(), Some(&key));
    assert!(
        ok && out.contains("401"),
        "a forged signature is refused: {out}{err}"
    );
    let (ok, out, _) = hub.command(
        &[&sim[..], &["--event", "item.deleted"]].concat(),
        Some(&key),
    );
    assert!(ok && out.contains("stored"), "{out}");

    // A body of one's own, posted elsewhere (`--url`): signed as the provider would sign it.
    let seen: Arc<Mutex<Option<Seen>>> = Arc::default();
    let capture = {
        let seen = seen.clone();
        axum::Router::new().route(
            "/elsewhere",
            axum::routing::post(
                move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                    let seen = seen.clone();
                    async move {
                        let headers = headers
                            .iter()
                            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
                            .collect();
                        *seen.lock().unwrap() = Some((headers, body.to_vec()));
                        "{\"status\":\"seen\"}"
                    }
                },
            ),
        )
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let elsewhere = format!("http://{}/elsewhere", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, capture).await.unwrap() });
    let own = work.join("grace.json");
    let own_body = r#"{"id":"evt_grace","type":"item.created","data":{"name":"Grace Hopper"}}"#;
    std::fs::write(&own, own_body).unwrap();
    let args = [
        &sim[..],
        &["--body", own.to_str().unwrap(), "--url", &elsewhere],
    ]
    .concat();
    let (ok, out, err) = tokio::task::block_in_place(|| hub.command(&args, Some(&key)));
    assert!(ok && out.contains("200"), "{out}{err}");
    let (headers, body) = seen.lock().unwrap().take().expect("the request arrived");
    assert_eq!(String::from_utf8(body.clone()).unwrap(), own_body);
    let request = plugin_sdk::schemes::Request {
        method: "POST",
        url: &elsewhere,
        headers: &headers,
        body: &body,
        path_token: None,
    };
    plugin_sdk::schemes::verify(
        &plugin_sdk::schemes::Scheme::StandardWebhooks,
        secret.as_bytes(),
        &request,
        &plugin_sdk::schemes::Policy::at(now_ms()),
    )
    .expect("signed with the tenant's secret");

    // That delivery, exported as a fixture, runs through test-connector as it ran in the hub.
    let exported = fixtures.join("from-the-hub.json");
    let (ok, out, err) = hub.command(
        &[
            "deliveries",
            "--id",
            &id.to_string(),
            "--export",
            exported.to_str().unwrap(),
        ],
        Some(&key),
    );
    assert!(ok, "{out}{err}");
    let fixture: Value =
        serde_json::from_str(&std::fs::read_to_string(&exported).unwrap()).unwrap();
    assert_eq!(fixture["tenant"], "acme");
    let headers = fixture["delivery"]["headers"].to_string();
    assert!(
        !headers.contains("webhook-signature") && !headers.contains(secret),
        "no signature or secret in an exported fixture: {headers}"
    );
    let (ok, out, err) = hub_cmd(&[&tc[..], &["--update", "--print"]].concat());
    assert!(ok, "{out}{err}");
    let produced = out.split("== from-the-hub.json").nth(1).unwrap_or_default();
    assert!(
        produced.contains("\"kind\": \"item\"") && produced.contains("Ada Lovelace"),
        "{out}"
    );
}

#[test]
fn the_make_connector_passes_its_fixtures_in_the_real_sandbox() {
    let fixtures = root().join("plugins/make/fixtures");
    let (ok, out, err) = hub_cmd(&[
        "test-connector",
        fixture("make").to_str().unwrap(),
        "--fixtures",
        fixtures.to_str().unwrap(),
    ]);
    assert!(
        ok && out.contains("4 fixtures: 4 passed, 0 failed"),
        "{out}{err}"
    );
}

#[test]
fn a_connector_that_loops_or_grabs_memory_in_test_connector_meets_the_hubs_limits() {
    let dir = tempfile::tempdir().unwrap();
    for (name, op) in [
        ("loop", r#"{"op": "loop"}"#),
        ("alloc", r#"{"op": "alloc", "mb": 256}"#),
        ("panic", r#"{"op": "panic"}"#),
    ] {
        std::fs::write(
            dir.path().join(format!("{name}.json")),
            format!(r#"{{"delivery": {{"body": {op}}}}}"#),
        )
        .unwrap();
    }
    let (ok, out, err) = hub_cmd(&[
        "test-connector",
        fixture("probe").to_str().unwrap(),
        "--fixtures",
        dir.path().to_str().unwrap(),
        "--update",
        "--print",
        "--timeout-ms",
        "300",
        "--memory-mb",
        "16",
    ]);
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("connector crashed: exceeded its time limit of 300 ms"),
        "{out}"
    );
    assert!(
        out.contains("connector crashed: exceeded its memory limit of 16 MiB"),
        "{out}"
    );
    assert!(out.contains("connector crashed: panicked"), "{out}");
}

/// Every scheme `hub new-connector --scheme` offers writes a crate whose own tests pass and that
/// builds into a component `hub check` accepts (the default one is walked above).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_template_scheme_builds_tests_and_checks() {
    let mut hub = TestHub::new();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let target = root().join("target/author-kit");
    for scheme in ["hmac", "token", "none"] {
        let name = format!("acme-{scheme}");
        let crate_dir = hub.dir.path().join(&name);
        let (ok, out, err) = hub_cmd(&[
            "new-connector",
            &name,
            "--dir",
            crate_dir.to_str().unwrap(),
            "--scheme",
            scheme,
        ]);
        assert!(ok, "{scheme}: {out}{err}");
        std::fs::copy(root().join("Cargo.lock"), crate_dir.join("Cargo.lock")).unwrap();
        let tested = run(
            Command::new(&cargo)
                .args(["test", "--quiet"])
                .current_dir(&crate_dir)
                .env("CARGO_TARGET_DIR", &target),
            &format!("cargo test in the {scheme} crate"),
        );
        // The template's three tests, and for a signed route its signature's.
        // (`hmac` writes the webhook route alone: no action, so no notify test.)
        let passed = match scheme {
            "token" => "4 passed",
            _ => "3 passed",
        };
        assert!(
            tested.contains(passed) && !tested.contains("FAILED"),
            "{scheme}: {tested}"
        );
        run(
            Command::new(&cargo)
                .args(["build", "--release", "--target", "wasm32-wasip2", "--quiet"])
                .current_dir(&crate_dir)
                .env("CARGO_TARGET_DIR", &target),
            &format!("building the {scheme} component"),
        );
        let wasm = target.join(format!(
            "wasm32-wasip2/release/{}.wasm",
            name.replace('-', "_")
        ));
        let credential = match scheme {
            "hmac" => Some("signing_secret"),
            "token" => Some("token"),
            _ => None,
        };
        let mut config = format!(
            "{server}\n[connectors.{name}]\npath = \"{wasm}\"\nallow_hosts = [\"https://api.example.com\"]\n\n\
             [tenants.acme]\n[tenants.acme.connectors.{name}.credentials]\n",
            server = hub.server_section(),
            wasm = wasm.display(),
        );
        if scheme != "hmac" {
            let k = hub.seal_tenant("acme", &name, "api_key", "key_live_test");
            config.push_str(&format!("api_key = \"{k}\"\n"));
        }
        if let Some(field) = credential {
            let sealed = hub.seal_tenant("acme", &name, field, "a-shared-secret");
            config.push_str(&format!("{field} = \"{sealed}\"\n"));
        }
        hub.write_config(&config);
        let (ok, out, err) = hub.command(&["check"], Some(&hub.key_text()));
        assert!(
            ok,
            "{scheme}: hub check refused the template's component: {out}{err}"
        );
        // The template's signed fixture, signed by `hub test-connector` and checked through
        // the real sandbox.
        let fixtures = crate_dir.join("fixtures");
        let tc = [
            "test-connector",
            wasm.to_str().unwrap(),
            "--fixtures",
            fixtures.to_str().unwrap(),
        ];
        let (ok, out, err) = hub_cmd(&[&tc[..], &["--update"]].concat());
        assert!(ok, "{scheme}: {out}{err}");
        let (ok, out, err) = hub_cmd(&tc);
        let all = if scheme == "hmac" {
            "1 fixture: 1 passed, 0 failed"
        } else {
            "3 fixtures: 3 passed, 0 failed"
        };
        assert!(ok && out.contains(all), "{scheme}: {out}{err}");
        if scheme == "hmac" {
            declared_hmac_end_to_end(&mut hub, &name).await;
        }
    }
}

/// The `hmac` template's route in a running hub: `hub simulate` signs a test webhook that the
/// hub verifies natively into a record; a forged one is refused; and one signed by Stripe's own
/// SDK (the template's shape is Stripe's `t=...,v1=...`) is taken.
async fn declared_hmac_end_to_end(hub: &mut TestHub, name: &str) {
    hub.start().await;
    let key = hub.key_text();
    let sim = ["simulate", "--tenant", "acme", "--connector", name];
    let (ok, out, err) = hub.command(&sim, Some(&key));
    assert!(ok && out.contains("stored"), "{out}{err}");
    wait_for(20, "the simulated webhook's record", || async {
        hub.records("acme", "item").await.into_iter().next()
    })
    .await;
    let (ok, out, err) = hub.command(&[&sim[..], &["--forge"]].concat(), Some(&key));
    assert!(
        ok && out.contains("401"),
        "a forged signature is refused: {out}{err}"
    );

    let body = r#"{"id":"evt_stripe_signed","type":"item.created","data":{"name":"Grace Hopper"}}"#;
    let headers = official_sign(&json!({
        "scheme": "stripe", "secret": "a-shared-secret", "body": body, "header": "x-signature"
    }));
    let path = format!("/hooks/acme/{name}");
    let (status, text) = hub.post(&path, &headers, body.as_bytes()).await;
    assert_eq!(status, 200, "signed by the stripe SDK: {text}");
    wait_for(20, "the Stripe-signed webhook's record", || async {
        hub.records("acme", "item")
            .await
            .into_iter()
            .find(|r| r["key"] == "evt_stripe_signed")
    })
    .await;
    let old = official_sign(&json!({
        "scheme": "stripe", "secret": "a-shared-secret", "body": body, "header": "x-signature",
        "ts": now_ms() / 1000 - 900
    }));
    let (status, text) = hub.post(&path, &old, body.as_bytes()).await;
    assert_eq!(status, 401, "replayed 15 minutes later: {text}");
    assert!(text.contains("outside the 300 s tolerance"), "{text}");
    hub.kill();
}

/// A route under a declared HMAC (the `hmac-hooks` fixture, Calendly's shape, as the `hmac`
/// template writes it): the console's *Send a test webhook*, clicked in a real browser, signs
/// the route's example with the tenant's key; the hub verifies it natively and the connector
/// keeps the booking. *Send, signed wrong* is refused with 401.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_consoles_test_button_signs_a_declared_hmac_route() {
    use fantoccini::Locator::Css;
    let mut hub = TestHub::new();
    let config = format!(
        "{server}\n[connectors.calendly]\npath = \"{wasm}\"\n\n[tenants.acme]\nname = \"Acme\"\n\
         [tenants.acme.connectors.calendly.credentials]\nsigning_key = \"{key}\"\n",
        server = hub.server_section(),
        wasm = fixture("hmac_hooks").display(),
        key = hub.seal_tenant(
            "acme",
            "calendly",
            "signing_key",
            "calendly-signing-key-0001"
        ),
    );
    hub.write_config(&config);
    hub.start().await;
    let base = hub.base();
    let b = crate::browser::Browser::start("declared-hmac").await;
    crate::console::log_in(&b, &base, &hub.admin_token).await;
    b.wait_for("table#log", 10).await;
    for (button, expect) in [
        ("data-test", "answered 200"),
        ("data-forge", "answered 401"),
    ] {
        b.client
            .goto(&format!("{base}/console/tenants/acme"))
            .await
            .unwrap();
        b.client
            .find(Css(&format!("button[{button}='calendly/']")))
            .await
            .unwrap_or_else(|e| panic!("no {button} button for the declared route: {e}"))
            .click()
            .await
            .unwrap();
        let answer = b.text("#test-answer").await;
        assert!(answer.contains(expect), "{button}: {answer}");
    }
    let booking = wait_for(20, "the test webhook's booking", || async {
        hub.records("acme", "booking").await.into_iter().next()
    })
    .await;
    assert_eq!(booking["data"]["name"], "Ada Lovelace", "{booking}");
    b.close().await;
}

//! `hub new-connector NAME`: writes a connector crate that builds as it is, from the template
//! in `cli/template/`: a manifest with one route (in the chosen signature scheme), one event with
//! an example, one action, one job; handlers; native tests on a recorded webhook; fixtures for
//! `hub test-connector`. Into an existing directory, or with a name that is not both a connector
//! id and a crate name, it writes nothing. Part of the binary only.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use hub::id::ConnectorId;

/// The signature schemes a new connector can start from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scheme {
    /// Standard Webhooks / Svix (`webhook-id`, `webhook-timestamp`, `webhook-signature`).
    StandardWebhooks,
    /// A timestamped HMAC-SHA256 in a header (Stripe's and Calendly's shape), declared: the
    /// hub verifies it natively and signs test webhooks in it.
    Hmac,
    /// A shared token in a header, compared by the hub in constant time.
    Token,
    /// No verification.
    None,
}

/// The template's files, embedded in the binary.
const CARGO_TOML: &str = include_str!("template/Cargo.toml.in");
const LIB_RS: &str = include_str!("template/lib.rs.in");
const FILES: &[(&str, &str)] = &[
    (
        "tests/webhook.json",
        include_str!("template/tests/webhook.json"),
    ),
    (
        "fixtures/notify.json",
        include_str!("template/fixtures/notify.json"),
    ),
    (
        "fixtures/notify-rate-limited.json",
        include_str!("template/fixtures/notify-rate-limited.json"),
    ),
];

/// Names a crate cannot have, though they are valid connector ids.
const RESERVED: &[&str] = &[
    "test",
    "std",
    "core",
    "alloc",
    "proc_macro",
    "proc-macro",
    "self",
    "super",
    "crate",
    "build",
];

pub fn new_connector(
    name: &str,
    dir: Option<PathBuf>,
    scheme: Scheme,
    sdk: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let id: ConnectorId = name.parse()?;
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) || RESERVED.contains(&name) {
        bail!(
            "`{name}` cannot name a crate: start it with a letter, and avoid Rust's reserved names"
        );
    }
    let dir = dir.unwrap_or_else(|| PathBuf::from(name));
    if dir.exists() {
        bail!(
            "{} already exists; nothing was written (pick another --dir)",
            dir.display()
        );
    }
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent)
        .with_context(|| format!("cannot create {}", parent.display()))?;
    let workspace = hub_workspace(&parent);
    let manifest = cargo_toml(
        name,
        workspace.is_some(),
        sdk_path(sdk, workspace.as_deref())?,
    );
    let lib = lib_rs(name, scheme);
    // `create_dir`, not `create_dir_all`: a directory made meanwhile is not written into.
    std::fs::create_dir(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let written = write_all(
        &dir,
        &manifest,
        &lib,
        &item_fixture(scheme),
        with_api(scheme),
    );
    if let Err(e) = written {
        let _ = std::fs::remove_dir_all(&dir);
        return Err(e);
    }
    let wasm_dir = if workspace.is_some() {
        "../../target"
    } else {
        "target"
    };
    let crate_name = name.replace('-', "_");
    println!("wrote connector `{id}` in {}", dir.display());
    println!();
    println!("  cd {}", dir.display());
    println!("  cargo test                                    # the handlers, natively");
    println!("  cargo build --release --target wasm32-wasip2  # the component");
    println!(
        "  hub test-connector {wasm_dir}/wasm32-wasip2/release/{crate_name}.wasm --fixtures fixtures --update"
    );
    println!();
    println!("then in hub.toml:");
    println!("  [connectors.{id}]");
    if workspace.is_some() {
        // hub/build.rs bundles every crate of plugins/ into the binary.
        println!(
            "  builtin = true                                # bundled at the hub's next build"
        );
    } else {
        println!(
            "  path = \"{}/{wasm_dir}/wasm32-wasip2/release/{crate_name}.wasm\"",
            dir.display()
        );
    }
    println!("  allow_hosts = [\"https://api.example.com\"]");
    Ok(ExitCode::SUCCESS)
}

fn write_all(dir: &Path, manifest: &str, lib: &str, item: &str, api: bool) -> anyhow::Result<()> {
    let write = |rel: &str, text: &str| -> anyhow::Result<()> {
        let path = dir.join(rel);
        if let Some(p) = path.parent() {
            std::fs::create_dir_all(p)?;
        }
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))
    };
    write("Cargo.toml", manifest)?;
    write("src/lib.rs", lib)?;
    write("fixtures/item-created.json", item)?;
    for (rel, text) in FILES {
        if !api && rel.starts_with("fixtures/notify") {
            continue;
        }
        write(rel, text)?;
    }
    Ok(())
}

/// The hub's own workspace root, when the new crate goes into its `plugins/` (a member, as the
/// bundled connectors are).
fn hub_workspace(parent: &Path) -> Option<PathBuf> {
    let parent = parent.canonicalize().ok()?;
    if parent.file_name()? != "plugins" {
        return None;
    }
    let root = parent.parent()?;
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).ok()?;
    (manifest.contains("\"plugins/*\"") && root.join("plugin-sdk/Cargo.toml").is_file())
        .then(|| root.to_path_buf())
}

/// Where the SDK is, for a crate outside the hub's workspace: `--sdk`, else the SDK beside the
/// source this binary was built from.
fn sdk_path(given: Option<PathBuf>, workspace: Option<&Path>) -> anyhow::Result<Option<PathBuf>> {
    if workspace.is_some() {
        return Ok(None);
    }
    let path = given.unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugin-sdk"));
    let path = path.canonicalize().map_err(|_| {
        anyhow::anyhow!(
            "no plugin-sdk at {}: pass --sdk with the path of the hub's plugin-sdk folder",
            path.display()
        )
    })?;
    if !path.join("Cargo.toml").is_file() {
        bail!(
            "{} is not the plugin-sdk crate (no Cargo.toml); pass --sdk with the hub's plugin-sdk folder",
            path.display()
        );
    }
    Ok(Some(path))
}

fn cargo_toml(name: &str, member: bool, sdk: Option<PathBuf>) -> String {
    let (package, dep, harness, workspace) = match sdk {
        Some(path) if !member => {
            let path = path.display().to_string().replace('\\', "/");
            (
                "version = \"0.1.0\"\nedition = \"2024\"".to_string(),
                format!(
                    "plugin-sdk = {{ path = \"{path}\", default-features = false, features = [\"guest\"] }}"
                ),
                format!(
                    "plugin-sdk = {{ path = \"{path}\", default-features = false, features = [\"harness\"] }}"
                ),
                "\n# Its own workspace, so it builds wherever it is.\n[workspace]\n".to_string(),
            )
        }
        _ => (
            "edition.workspace = true\nversion.workspace = true\nlicense.workspace = true"
                .to_string(),
            "plugin-sdk = { workspace = true, features = [\"guest\"] }".to_string(),
            "plugin-sdk = { workspace = true, features = [\"harness\"] }".to_string(),
            String::new(),
        ),
    };
    CARGO_TOML
        .replace("__NAME__", name)
        .replace("__PACKAGE__", &package)
        .replace("__SDK_HARNESS__", &harness)
        .replace("__SDK__", &dep)
        .replace("__WORKSPACE__", &workspace)
        .trim_end()
        .to_string()
        + "\n"
}

fn lib_rs(name: &str, scheme: Scheme) -> String {
    let type_name: String = name
        .split(['-', '_'])
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut c = p.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect();
    let (note, route, credentials, verify) = match scheme {
        Scheme::StandardWebhooks => (
            "Standard Webhooks signatures, verified by the hub",
            "        // Standard Webhooks (Svix): the hub verifies `webhook-signature` with `signing_secret`\n        // before any of this code runs, and stores a provider's retry once, by `webhook-id`.\n        let mut webhook = route(\"\", SignatureScheme::StandardWebhooks, \"signing_secret\");\n        webhook.identity = vec![Selector::Header(\"webhook-id\".into())];",
            "                field(\"signing_secret\", true, \"The webhook signing secret (whsec_...).\"),\n",
            "",
        ),
        Scheme::Hmac => (
            "a timestamped HMAC-SHA256 in `x-signature`, verified by the hub",
            "        // `x-signature: t=<unix s>,v1=<hex HMAC-SHA256 of \"<t>.<body>\">` (Stripe's and Calendly's\n        // shape): the hub verifies it natively, in constant time, refusing one older than 5\n        // minutes, before any of this code runs; `hub simulate`, the console and the harness\n        // sign test webhooks in it. For another shape, set HmacScheme's fields (header,\n        // prefix, part, timestamp, message, encoding). One record per event id.\n        let mut webhook = route(\n            \"\",\n            SignatureScheme::Hmac(HmacScheme::timestamped(\"x-signature\")),\n            \"signing_secret\",\n        );\n        webhook.identity = vec![Selector::Json(\"/id\".into())];",
            "                field(\"signing_secret\", true, \"The secret the provider signs webhooks with.\"),\n",
            "",
        ),
        Scheme::Token => (
            "a shared token in `x-hub-token`, compared by the hub",
            "        // A shared token in the `x-hub-token` header, compared by the hub in constant time.\n        // One record per event id.\n        let mut webhook = route(\n            \"\",\n            SignatureScheme::SharedToken(TokenLocation::Header(\"x-hub-token\".into())),\n            \"token\",\n        );\n        webhook.identity = vec![Selector::Json(\"/id\".into())];",
            "                field(\"token\", true, \"The token the provider sends in x-hub-token.\"),\n",
            "",
        ),
        Scheme::None => (
            "unverified: only for webhooks that carry nothing a forger could abuse",
            "        // No verification: only for webhooks that carry nothing a forger could abuse.\n        let mut webhook = route(\"\", SignatureScheme::None, \"\");\n        webhook.identity = vec![Selector::Json(\"/id\".into())];",
            "",
            "",
        ),
    };
    let (signing_credential, signature_tests) = signature_tests(scheme);
    regions(LIB_RS, with_api(scheme))
        .replace("__SIGNING_CREDENTIAL__", &signing_credential)
        .replace("__SIGNATURE_TESTS__", &signature_tests)
        .replace("__SCHEME_NOTE__", note)
        .replace("__ROUTE__", route)
        .replace("__CREDENTIALS__", credentials)
        .replace("__VERIFY__", verify)
        .replace("__TYPE__", &type_name)
        .replace("__CRATE__", &name.replace('-', "_"))
        .replace("__NAME__", name)
}

/// The test crate's signing credential and its tests of the route's signature: the harness
/// signs a webhook as the provider would, and checks it as the hub does; a forged one, a
/// tampered one and (for a timestamped scheme) a replayed one are refused.
fn signature_tests(scheme: Scheme) -> (String, String) {
    let (credential, secret, forged, timestamped, covers_body) = match scheme {
        Scheme::StandardWebhooks => (
            "signing_secret",
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "whsec_Zm9yZ2VkLWJ5LXNvbWVvbmUtZWxzZQ==",
            true,
            true,
        ),
        Scheme::Hmac => (
            "signing_secret",
            "test-signing-secret",
            "not-the-secret",
            true,
            true,
        ),
        Scheme::Token => ("token", "test-shared-token", "not-the-token", false, false),
        Scheme::None => return (String::new(), String::new()),
    };
    let setup = format!("\n            .credential(\"{credential}\", \"{secret}\")");
    let api_key = if with_api(scheme) {
        "\n            .credential(\"api_key\", \"key_test\")"
    } else {
        ""
    };
    let mut body = format!(
        r#"
    /// The route's signature, as the hub checks it before any of the code above runs.
    #[test]
    fn the_hub_takes_a_signed_webhook_and_refuses_a_forged_one() {{
        let mut hub = hub();
        hub.at(1_700_000_000_000);
        let good = hub.signed_webhook("", RECORDED);
        assert_eq!(hub.check_signature(&good), Ok(()));
        hub.deliver(good.clone()).unwrap();
        assert!(hub.record::<Value>("item", "evt_recorded_1").is_some());
        // Signed with another secret: refused.
        let mut forger = Harness::<__TYPE__>::new(){api_key}
            .credential("{credential}", "{forged}");
        forger.at(1_700_000_000_000);
        let forged = forger.signed_webhook("", RECORDED);
        assert!(hub.check_signature(&forged).is_err());
"#
    );
    if covers_body {
        body.push_str(
            r#"        // The body changed on the way: refused.
        let mut tampered = good.clone();
        tampered.body = RECORDED.replace("Ada", "Eve").into_bytes();
        assert!(hub.check_signature(&tampered).is_err());
"#,
        );
    }
    if timestamped {
        body.push_str(
            r#"        // The same request replayed ten minutes later: refused (a 5-minute window).
        hub.advance(600_000);
        assert!(hub.check_signature(&good).unwrap_err().contains("outside"));
"#,
        );
    }
    body.push_str("    }\n");
    (setup, body)
}

/// The recorded webhook as a fixture: signed in the route's scheme by `hub test-connector` (with
/// the fixture's stand-in credential) and checked as the hub checks it, before it is handled.
fn item_fixture(scheme: Scheme) -> String {
    let (headers, credentials, sign) = match scheme {
        Scheme::StandardWebhooks => (
            r#"{ "content-type": "application/json" }"#,
            r#"
  "credentials": { "signing_secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" },"#,
            true,
        ),
        Scheme::Hmac | Scheme::Token => (r#"{ "content-type": "application/json" }"#, "", true),
        Scheme::None => (r#"{ "content-type": "application/json" }"#, "", false),
    };
    let sign = if sign { "\n    \"sign\": true," } else { "" };
    format!(
        r#"{{
  "tenant": "acme",{credentials}
  "delivery": {{
    "route": "",{sign}
    "headers": {headers},
    "body": {{"id": "evt_recorded_1", "type": "item.created", "data": {{"name": "Ada Lovelace", "email": "ada@example.com"}}}}
  }}
}}
"#
    )
}

/// Whether the template shows the provider's API too (an action, a job, the API key): all but
/// `hmac`, whose crate is the webhook route alone, the shape most HMAC-signing providers need
/// first.
fn with_api(scheme: Scheme) -> bool {
    !matches!(scheme, Scheme::Hmac)
}

/// The template with its `//@api{ ... //@api}` regions kept (`api`) or its `//@hooks{ ...
/// //@hooks}` ones (not `api`), the marker lines dropped.
fn regions(template: &str, api: bool) -> String {
    let mut out = String::with_capacity(template.len());
    let mut inside: Option<bool> = None;
    for line in template.split_inclusive('\n') {
        match line.trim_end() {
            "//@api{" => inside = Some(api),
            "//@hooks{" => inside = Some(!api),
            "//@api}" | "//@hooks}" => inside = None,
            _ if inside.unwrap_or(true) => out.push_str(line),
            _ => {}
        }
    }
    out
}

//! Config tests: the golden example, one case per error kind, vault opening and in-place edits.

use std::path::Path;

use secrecy::ExposeSecret as _;

use super::*;
use crate::id::id;
use crate::secrets::SecretError;

const EXAMPLE: &str = include_str!("../example.toml");
/// The published test key the sealed values in `example.toml` were sealed with.
const TEST_KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

fn test_key() -> MasterKey {
    MasterKey::parse(TEST_KEY).unwrap()
}

/// 1-based line of the first line of `text` containing `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.contains(needle)).unwrap() + 1
}

fn example() -> Config {
    Config::from_str(EXAMPLE, Path::new("/etc/hub/hub.toml")).unwrap()
}

const MINIMAL: &str = "[server]\npublic_url = \"http://localhost:8080\"\n";

fn error(text: &str) -> String {
    Config::from_str(text, Path::new("hub.toml"))
        .unwrap_err()
        .to_string()
}

fn assert_error(text: &str, prefix: &str, contains: &str) {
    let msg = error(text);
    assert!(msg.starts_with(prefix), "expected {prefix:?}, got {msg:?}");
    assert!(msg.contains(contains), "expected {contains:?} in {msg:?}");
}

#[test]
fn parses_the_full_example() {
    let config = example();
    let s = &config.server;
    assert_eq!(s.listen, "127.0.0.1:8080".parse().unwrap());
    assert_eq!(s.public_url.as_str(), "http://localhost:8080/");
    assert_eq!(s.data_dir, Path::new("/etc/hub/data"));
    assert_eq!(s.body_limit, 1024 * 1024);
    assert_eq!(s.workers, 16);
    assert_eq!(
        s.rate_limit,
        RateLimit {
            per_second: 50,
            burst: 100
        }
    );
    assert_eq!(
        s.master_key_file.as_deref(),
        Some(Path::new("/etc/hub/hub.key"))
    );
    assert!(s.admin_token.is_some());

    let retell = &config.connectors["retell"];
    assert_eq!(retell.source, ConnectorSource::Builtin);
    assert_eq!(
        retell.allow_hosts[0].to_string(),
        "https://api.retellai.com"
    );
    assert_eq!(retell.memory_mb, 64);
    assert_eq!(retell.timeout, Duration::from_secs(10));
    assert!(retell.credentials.contains_key("api_key"));
    let resend = &config.connectors["resend"];
    assert_eq!(
        resend.source,
        ConnectorSource::Path("/etc/hub/plugins/resend.wasm".into())
    );

    let abc = &config.tenants["abc-healthcare"];
    assert_eq!(abc.name, "ABC Healthcare");
    assert_eq!(
        abc.connectors["retell"].config["agent_ids"],
        serde_json::json!(["agent_123"])
    );
    assert!(abc.connectors["resend"].credentials.contains_key("api_key"));
    let xyz = &config.tenants["xyz-dental"];
    assert!(xyz.connectors["retell"].credentials.is_empty());
    assert_eq!(
        xyz.connectors["retell"].config["agent_ids"][1],
        serde_json::json!("agent_789")
    );
}

#[test]
fn defaults_apply() {
    let config = Config::from_str(
        &format!("{MINIMAL}[connectors.x]\nbuiltin = true\n"),
        Path::new("/srv/hub.toml"),
    )
    .unwrap();
    assert_eq!(config.server.listen, "127.0.0.1:8080".parse().unwrap());
    assert_eq!(config.server.data_dir, Path::new("/srv/data"));
    assert_eq!(config.server.body_limit, 1024 * 1024);
    assert_eq!(config.server.rate_limit.burst, 100);
    assert!(config.server.master_key_file.is_none());
    assert_eq!(config.connectors["x"].memory_mb, 64);
    assert_eq!(
        config.connectors["x"].timeout,
        Duration::from_millis(10_000)
    );
    assert!(config.tenants.is_empty());
}

#[test]
fn locate_finds_any_path() {
    let config = example();
    let at = |path: &[&str]| {
        let l = config.locate(path);
        assert_eq!(l.file, Path::new("/etc/hub/hub.toml"));
        l.line
    };
    assert_eq!(at(&["server", "listen"]), line_of(EXAMPLE, "listen ="));
    let retell = ["tenants", "abc-healthcare", "connectors", "retell"];
    assert_eq!(
        at(&retell),
        line_of(EXAMPLE, "[tenants.abc-healthcare.connectors.retell]")
    );
    let missing = [
        "tenants",
        "abc-healthcare",
        "connectors",
        "retell",
        "credentials",
        "nope",
    ];
    assert_eq!(
        at(&missing),
        line_of(
            EXAMPLE,
            "[tenants.abc-healthcare.connectors.retell.credentials]"
        )
    );
    let dotted_key = ["tenants", "xyz-dental", "connectors", "retell", "config"];
    assert_eq!(
        at(&dotted_key),
        line_of(EXAMPLE, "connectors.retell.config =")
    );
    let l = config.locate(&["connectors", "resend", "path"]);
    assert_eq!(
        l.to_string(),
        format!(
            "/etc/hub/hub.toml:{}:1",
            line_of(EXAMPLE, "plugins/resend.wasm")
        )
    );
    assert_eq!(at(&["nothing", "here"]), 1);
}

#[test]
fn syntax_error() {
    assert_error(
        "[server]\nlisten = \n",
        "hub.toml:2:10: server.listen: ",
        "",
    );
    assert_error("[server\n", "hub.toml:1:8: ", "");
}

#[test]
fn unknown_field() {
    let text = format!("{MINIMAL}listen = \"127.0.0.1:1\"\nlisen = 1\n");
    assert_error(
        &text,
        "hub.toml:4:1: server.lisen: unknown field `lisen`",
        "expected",
    );
    let text = format!("{MINIMAL}rate_limit = {{ per_second = 1, bust = 2 }}\n");
    assert_error(
        &text,
        "hub.toml:3:32: server.rate_limit.bust: unknown field",
        "",
    );
    assert_error(
        &format!("{MINIMAL}[extra]\n"),
        "hub.toml:3:2: extra: unknown field `extra`",
        "",
    );
}

#[test]
fn missing_fields() {
    assert_error(
        "[server]\n",
        "hub.toml:1:1: server.public_url: ",
        "required",
    );
    assert_error("", "hub.toml:1:1: server: required field is missing", "");
}

#[test]
fn wrong_types_and_ranges() {
    assert_error(
        &format!("{MINIMAL}workers = \"four\"\n"),
        "hub.toml:3:11: server.workers: invalid type",
        "",
    );
    assert_error(
        &format!("{MINIMAL}workers = 2000\n"),
        "hub.toml:3:11: server.workers: must be 0 to 1024",
        "",
    );
    let paused = Config::from_str(&format!("{MINIMAL}workers = 0\n"), Path::new("hub.toml"))
        .expect("workers = 0 (store and queue only) is a valid configuration");
    assert_eq!(paused.server.workers, 0);
    assert_error(
        &format!("{MINIMAL}body_limit = 100000000\n"),
        "hub.toml:3:14: server.body_limit: must be 1 to 67108864 bytes",
        "",
    );
    assert_error(
        &format!("{MINIMAL}rate_limit = {{ per_second = 0 }}\n"),
        "hub.toml:3:29: server.rate_limit.per_second: must be 1 to",
        "",
    );
    assert_error(
        &format!("{MINIMAL}[connectors.x]\nbuiltin = true\nmemory_mb = 4096\n"),
        "hub.toml:5:13: connectors.x.memory_mb: must be 1 to 1024 MiB",
        "",
    );
}

#[test]
fn bad_listen_address() {
    assert_error(
        "[server]\nlisten = \"localhost:80\"\npublic_url = \"http://x\"\n",
        "hub.toml:2:10: server.listen: invalid listen address",
        "IP:PORT",
    );
}

#[test]
fn telemetry_names_a_collector_and_a_bad_one_is_refused_where_it_is_written() {
    let with = |section: &str| format!("{MINIMAL}[server.telemetry]\n{section}\n");
    let config = Config::from_str(
        &with("endpoint = \"http://127.0.0.1:4318\""),
        Path::new("hub.toml"),
    )
    .unwrap();
    let t = config.server.telemetry.unwrap();
    assert_eq!(t.endpoint.as_str(), "http://127.0.0.1:4318/v1/traces");
    assert_eq!((t.service_name.as_str(), t.sample_ratio), ("hub", 1.0));
    let full = "endpoint = \"https://otel.example.com/custom/v1/traces\"\nservice_name = \"hub-eu\"\nsample_ratio = 0.25";
    let t = Config::from_str(&with(full), Path::new("hub.toml"))
        .unwrap()
        .server
        .telemetry
        .unwrap();
    assert_eq!(
        t.endpoint.as_str(),
        "https://otel.example.com/custom/v1/traces"
    );
    assert_eq!((t.service_name.as_str(), t.sample_ratio), ("hub-eu", 0.25));
    assert!(
        Config::from_str(MINIMAL, Path::new("hub.toml"))
            .unwrap()
            .server
            .telemetry
            .is_none()
    );
    assert_error(
        &with("endpoint = \"grpc://x:4317\""),
        "hub.toml:4:12: server.telemetry.endpoint: ",
        "OTLP/HTTP",
    );
    assert_error(
        &with("endpoint = \"http://x\"\nsample_ratio = 2.0"),
        "hub.toml:5:16: server.telemetry.sample_ratio: ",
        "between 0 and 1",
    );
    assert_error(
        &with("endpoint = \"http://x\"\nheaders = {}"),
        "hub.toml:",
        "headers",
    );
}

#[test]
fn bad_public_url() {
    assert_error(
        "[server]\npublic_url = \"ftp://x\"\n",
        "hub.toml:2:14: server.public_url: ",
        "http or https",
    );
    assert_error(
        "[server]\npublic_url = \"http://x/?a=1\"\n",
        "hub.toml:2:14: server.public_url: ",
        "query",
    );
}

#[test]
fn bad_tenant_id() {
    let text = format!("{MINIMAL}\n[tenants.ABC]\nname = \"x\"\n");
    assert_error(
        &text,
        "hub.toml:4:10: tenants.ABC: invalid tenant id \"ABC\"",
        "lowercase ASCII letters, digits",
    );
    let text = format!("{MINIMAL}[connectors._x]\nbuiltin = true\n");
    assert_error(
        &text,
        "hub.toml:3:13: connectors._x: invalid connector id",
        "not starting with `_`",
    );
}

#[test]
fn bad_phone_country_code() {
    let text = format!("{MINIMAL}\n[tenants.abc]\nphone_country_code = \"1\"\n");
    assert_error(
        &text,
        "hub.toml:5:22: tenants.abc.phone_country_code: `1` is not a country calling code",
        "like \"+1\"",
    );
    let text = format!("{MINIMAL}\n[tenants.abc]\nphone_country_code = \"+44\"\n");
    let config = Config::from_str(&text, Path::new("hub.toml")).unwrap();
    assert_eq!(
        config.tenants["abc"].phone_country_code.as_deref(),
        Some("+44")
    );
}

#[test]
fn unknown_connector_in_tenant() {
    let text = format!(
        "{MINIMAL}[connectors.retell]\nbuiltin = true\n\n[tenants.abc]\n[tenants.abc.connectors.twilio]\n"
    );
    assert_error(
        &text,
        "hub.toml:7:25: tenants.abc.connectors.twilio: unknown connector `twilio`",
        "(declared: retell)",
    );
}

#[test]
fn plaintext_credential() {
    let text = format!(
        "{MINIMAL}[connectors.retell]\nbuiltin = true\n[tenants.abc.connectors.retell.credentials]\napi_key = \"key_live_123\"\n"
    );
    let msg = error(&text);
    assert!(
        msg.starts_with("hub.toml:6:11: tenants.abc.connectors.retell.credentials.api_key: "),
        "{msg}"
    );
    assert!(
        msg.contains("plaintext") && msg.contains("hub seal"),
        "{msg}"
    );
    assert!(!msg.contains("key_live_123"), "{msg}");
    assert_error(
        &format!("{MINIMAL}admin_token = \"hunter2\"\n"),
        "hub.toml:3:15: server.admin_token: not a sealed value",
        "",
    );
}

#[test]
fn builtin_and_path() {
    let text = format!("{MINIMAL}[connectors.x]\nbuiltin = true\npath = \"x.wasm\"\n");
    assert_error(&text, "hub.toml:5:1: connectors.x.path: ", "not both");
    let text = format!("{MINIMAL}[connectors.x]\nmemory_mb = 8\n");
    assert_error(
        &text,
        "hub.toml:3:13: connectors.x: ",
        "`builtin = true` or `path",
    );
}

#[test]
fn a_stand_in_may_replace_a_host_under_a_wildcard_origin_only() {
    let allowed = format!(
        "{MINIMAL}[connectors.x]\nbuiltin = true\nallow_hosts = [\"https://*.my.salesforce.com\"]\n\
         stand_ins = {{ \"https://acme.my.salesforce.com\" = \"http://127.0.0.1:9\" }}\n"
    );
    let config = Config::from_str(&allowed, Path::new("hub.toml")).unwrap();
    assert_eq!(
        config.connectors[&id::<ConnectorId>("x")].stand_ins.len(),
        1
    );
    let outside = allowed.replace("acme.my.salesforce.com", "my.salesforce.com.evil.com");
    assert_error(
        &outside,
        "hub.toml:6:",
        "must replace an origin listed in `allow_hosts`",
    );
}

#[test]
fn bad_allowed_host() {
    let text = format!(
        "{MINIMAL}[connectors.x]\nbuiltin = true\nallow_hosts = [\"https://a.com\", \"https://b.com/v1\"]\n"
    );
    assert_error(
        &text,
        "hub.toml:5:33: connectors.x.allow_hosts.1: ",
        "no path",
    );
}

#[test]
fn debug_hides_sealed_values() {
    let config = example();
    let debug = format!("{config:?}");
    assert!(debug.contains("Sealed(\"sealed:v1:TA0Um3\"..)"), "{debug}");
    assert!(!debug.contains("TA0Um33fRA4lrXB"), "{debug}");
}

#[test]
fn opens_the_vault() {
    let vault = example().open_vault(&test_key()).unwrap();
    let get = |t: &str, c: &str| {
        let v = vault.get(&id(t), &id(c), "api_key").unwrap();
        String::from_utf8(v.expose_secret().to_vec()).unwrap()
    };
    assert_eq!(get("abc-healthcare", "retell"), "example-retell-abc-key");
    assert_eq!(get("abc-healthcare", "resend"), "example-resend-abc-key");
    assert_eq!(get("xyz-dental", "retell"), "example-retell-global-key");
    assert!(
        vault
            .get(&id("xyz-dental"), &id("resend"), "api_key")
            .is_none()
    );
    assert_eq!(
        vault.admin_token().unwrap().expose_secret(),
        b"example-admin-token"
    );
    assert_eq!(vault.len(), 4);
}

#[test]
fn wrong_key_names_the_first_value() {
    let err = example().open_vault(&MasterKey::generate()).unwrap_err();
    assert!(matches!(
        err,
        ConfigError::Secret {
            error: SecretError::CannotOpen,
            ..
        }
    ));
    let line = line_of(EXAMPLE, "admin_token =");
    assert_eq!(
        err.to_string(),
        format!(
            "/etc/hub/hub.toml:{line}:15: server.admin_token: cannot open: wrong master key, or the value was sealed for another place"
        )
    );
}

#[test]
fn moved_value_names_its_place() {
    // The global retell key pasted into a tenant's table does not open there.
    let global = EXAMPLE
        .lines()
        .find(|l| l.starts_with("api_key = \"sealed:v1:vAV"))
        .unwrap();
    let text = format!(
        "{MINIMAL}[connectors.retell]\nbuiltin = true\n[tenants.t.connectors.retell.credentials]\n{global}\n"
    );
    let config = Config::from_str(&text, Path::new("hub.toml")).unwrap();
    let msg = config.open_vault(&test_key()).unwrap_err().to_string();
    assert!(
        msg.starts_with(
            "hub.toml:6:11: tenants.t.connectors.retell.credentials.api_key: cannot open"
        ),
        "{msg}"
    );
}

mod edits;

/// A config with Resend and Zapier declared, tenant `abc` using both, then `tenant` and `route`.
fn with_capability(tenant: &str, route: &str) -> String {
    format!(
        "{MINIMAL}[connectors.resend]\nbuiltin = true\n[connectors.zapier]\nbuiltin = true\n\n\
         [tenants.abc]\n{tenant}\n[tenants.abc.connectors.resend]\n[tenants.abc.connectors.zapier]\n\n\
         [[tenants.abc.routes]]\nname = \"mail\"\non = \"zapier:zapier.received\"\naction = \"{route}\"\n"
    )
}

#[test]
fn a_capability_route_runs_the_tenants_connector_for_it() {
    let text = with_capability("email = \"resend\"", "email:send");
    let config = Config::from_str(&text, Path::new("hub.toml")).unwrap();
    let tenant = &config.tenants["abc"];
    assert_eq!(tenant.capabilities["email"].as_str(), "resend");
    let route = &tenant.routes[0];
    assert_eq!(route.target.as_str(), "resend");
    assert!(
        matches!(route.action, RouteAction::Operation(op) if op.id == "email:send"),
        "{:?}",
        route.action
    );
    // A connector's own action still names the connector.
    let text = with_capability("", "resend:send_email");
    let config = Config::from_str(&text, Path::new("hub.toml")).unwrap();
    assert!(
        matches!(&config.tenants["abc"].routes[0].action, RouteAction::Action(a) if a == "send_email")
    );
}

#[test]
fn a_capability_route_without_the_tenants_connector_is_refused_where_it_is_written() {
    let text = with_capability("", "email:send");
    let line = line_of(&text, "action = \"email:send\"");
    assert_error(
        &text,
        &format!(
            "hub.toml:{line}:10: tenants.abc.routes.0.action: `email:send` runs the tenant's email connector, and this tenant names none"
        ),
        "add `email = \"<connector>\"` to [tenants.abc]",
    );
    let text = with_capability("email = \"resend\"", "email:fax");
    assert_error(
        &text,
        &format!(
            "hub.toml:{line}:10: tenants.abc.routes.0.action: capability `email` has no operation `fax`"
        ),
        "(it has: email:send)",
    );
    let text = with_capability("", "calendar:book");
    assert_error(
        &text,
        "hub.toml:",
        "add `calendar = \"<connector>\"` to [tenants.abc]",
    );
    let text = with_capability("", "fax:send");
    assert_error(
        &text,
        "hub.toml:",
        "this tenant does not use connector `fax` (and `fax` is no capability: email, sms, crm, calendar)",
    );
}

#[test]
fn a_capability_names_a_connector_the_tenant_uses() {
    let text = with_capability("email = \"twilio\"", "email:send");
    let line = line_of(&text, "email = \"twilio\"");
    assert_error(
        &text,
        &format!(
            "hub.toml:{line}:9: tenants.abc.email: this tenant does not use connector `twilio` (it uses: resend, zapier)"
        ),
        "add a [tenants.abc.connectors.twilio] table first",
    );
    let text = format!("{MINIMAL}[connectors.email]\nbuiltin = true\n");
    assert_error(
        &text,
        "hub.toml:3:13: connectors.email: `email` is the name of a capability",
        "give this connector another name",
    );
}

#[test]
fn the_database_is_sqlite_a_postgres_url_without_its_password_or_an_environment_variable() {
    let parse = |extra: &str| {
        Config::from_str(&format!("{MINIMAL}{extra}"), Path::new("hub.toml"))
            .unwrap()
            .server
            .database
    };
    assert_eq!(parse(""), Database::Sqlite);
    assert_eq!(parse("database = \"sqlite\"\n"), Database::Sqlite);
    assert_eq!(
        parse("database = \"postgres://hub@db.internal:5433/hub?sslmode=disable\"\n"),
        Database::Postgres {
            url: "postgres://hub@db.internal:5433/hub?sslmode=disable".into(),
            password: None,
        }
    );
    assert_eq!(
        parse("database = \"env:DATABASE_URL\"\n").describe(),
        "postgres from $DATABASE_URL"
    );
    assert_error(
        &format!("{MINIMAL}database = \"postgres://hub:hunter2@db/hub\"\n"),
        "hub.toml:3:12: server.database: the URL holds a password, in the clear",
        "server.database_password",
    );
    assert!(
        !error(&format!(
            "{MINIMAL}database = \"postgres://hub:hunter2@db/hub\"\n"
        ))
        .contains("hunter2")
    );
    assert_error(
        &format!("{MINIMAL}database = \"mysql://db/hub\"\n"),
        "hub.toml:3:12: server.database: expected \"sqlite\", a PostgreSQL URL",
        "",
    );
    assert_error(
        &format!("{MINIMAL}database = \"postgres://hub@db:notaport/hub\"\n"),
        "hub.toml:3:12: server.database: not a PostgreSQL URL",
        "",
    );
    assert_error(
        &format!("{MINIMAL}database = \"env:9 lives\"\n"),
        "hub.toml:3:12: server.database: `9 lives` is not an environment variable name",
        "",
    );
    let place = crate::secrets::Place::Server {
        field: "database_password".into(),
    };
    let sealed = crate::secrets::seal(&test_key(), &place, b"hunter2");
    assert_error(
        &format!("{MINIMAL}database_password = \"{sealed}\"\n"),
        "hub.toml:3:1: server.database_password: only a postgres:// database takes a password",
        "",
    );
}

fn with_tools(tools: &str) -> String {
    format!(
        "{MINIMAL}[connectors.twilio]\nbuiltin = true\n\n[tenants.abc]\nsms = \"twilio\"\n\
         [tenants.abc.connectors.twilio]\n\n[tenants.abc.tools]\n{tools}\n"
    )
}

#[test]
fn a_tool_is_a_builtin_or_one_lookup_or_one_action_each_error_where_it_is_written() {
    let text = with_tools(
        "lookup = \"find_contact\"\n[tenants.abc.tools.directions]\naction = \"sms:send\"\n\
         input = { to = \"{{ call.from_number }}\", body = \"12 Main St, {{ args.name | default('friend') }}\" }\n\
         deadline_ms = 3000\n",
    );
    let config = Config::from_str(&text, Path::new("hub.toml")).unwrap();
    let tools = &config.tenants["abc"].tools;
    assert_eq!(tools["lookup"].builtin, Some("find_contact"));
    assert_eq!(
        tools["lookup"].input_schema()["properties"]["phone"]["type"],
        "string"
    );
    assert_eq!(tools["directions"].deadline.as_millis(), 3000);
    assert!(!tools["directions"].args[0].required, "it has a default");

    let text = with_tools("lookup = \"find_kontact\"");
    let line = line_of(&text, "find_kontact");
    assert_error(
        &text,
        &format!("hub.toml:{line}:10: tenants.abc.tools.lookup: no built-in tool `find_kontact`"),
        "find_contact, find_contact_by_email, send_sms, send_email",
    );
    let text = with_tools(
        "[tenants.abc.tools.both]\naction = \"sms:send\"\nfind = { kind = \"contact\", by = \"phone\", value = \"x\" }",
    );
    assert_error(&text, "hub.toml:", "a tool does one thing");
    let text = with_tools("[tenants.abc.tools.mail]\naction = \"email:send\"");
    assert_error(
        &text,
        "hub.toml:",
        "this tenant names none: add `email = \"<connector>\"`",
    );
    let text = with_tools(
        "[tenants.abc.tools.x]\naction = \"sms:send\"\ninput = { body = \"{{ args.body \" }",
    );
    assert_error(&text, "hub.toml:", "the template does not parse");
    let text = with_tools(
        "[tenants.abc.tools.x]\naction = \"sms:send\"\nargs = { nme = \"typo\" }\ninput = { body = \"{{ args.name }}\" }",
    );
    assert_error(
        &text,
        "hub.toml:",
        "`nme` is described, but no template reads `args.nme`",
    );
    let text = with_tools("[tenants.abc.tools.\"two words\"]\naction = \"sms:send\"");
    assert_error(&text, "hub.toml:", "a tool's name is 1 to 64 of a-z");
    let text = with_tools(
        "[tenants.abc.tools.x]\nfind = { kind = \"contact\", by = \"fax\", value = \"x\" }",
    );
    assert_error(&text, "hub.toml:", "`by` is \"phone\" or \"email\"");
}

//! Property tests: the config parser against hostile `hub.toml` text.
//!
//! What each property proves:
//! - `any_text_is_a_config_or_a_located_error`: whatever the file holds (random text, bytes made
//!   text, cuts and splices of the shipped example), parsing never panics, and a refusal is a
//!   `hub.toml:LINE:COL: field: message` with the line inside the file.
//! - `generated_configs_are_valid_or_located`: configs built from every real field with values of
//!   every type and range (ids, origins, stand-ins, time zones, cron expressions, routes, nested
//!   tables, unknown keys) either parse into values inside their documented ranges, or fail with
//!   a located error naming a field, on a line that exists.
//! - `deep_nesting_is_refused_or_parsed_without_overflow`: arrays and inline tables nested far
//!   deeper than any real config never overflow the stack (an overflow aborts the process, so a
//!   failure here shows as a crashed test binary).

use std::path::Path;

use proptest::prelude::*;

use super::*;

const EXAMPLE: &str = include_str!("example.toml");

/// A TOML string literal holding `s`, however odd.
fn quoted(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

/// A value of any TOML type, valid or not for the field it lands on.
fn any_value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|i| i.to_string()),
        "-?[0-9]{1,30}",
        prop_oneof![
            Just("nan"),
            Just("inf"),
            Just("-inf"),
            Just("1e999"),
            Just("0.5"),
            Just("-0.0")
        ]
        .prop_map(str::to_string),
        any::<bool>().prop_map(|b| b.to_string()),
        any::<String>().prop_map(|s| quoted(&s)),
        Just("1979-05-27T07:32:00Z".to_string()),
        Just("07:32:00".to_string()),
        Just("[]".to_string()),
        Just("{}".to_string()),
        Just("[1, \"a\", { b = 2 }]".to_string()),
        Just("{ per_second = 0, burst = -1 }".to_string()),
        "\"[ -~]{0,20}\"",
        ".{0,12}",
    ]
}

/// A value for a field: mostly one of `valid` (so that later fields get checked too), sometimes
/// one of `wrong`, sometimes anything.
fn field(
    valid: &'static [&'static str],
    wrong: &'static [&'static str],
) -> impl Strategy<Value = String> {
    prop_oneof![
        20 => prop::sample::select(valid).prop_map(str::to_string),
        1 => prop::sample::select(wrong).prop_map(str::to_string),
        1 => any_value(),
    ]
}

/// A well-formed sealed value (format only: parsing does not open it).
const SEALED: &str = "\"sealed:v1:vAVaFuxkK9M-5RMLKHN-vKu3OVhjMxhtu2PUUPY0v4zO9UrOOKMOhuK3RqgcvBsYskqy2xBAFmxp20IhDcGEhvQ\"";

fn id() -> impl Strategy<Value = String> {
    prop_oneof![
        60 => "[a-z0-9][a-z0-9_-]{0,10}",
        1 => any::<String>(),
        1 => Just("x".repeat(65)),
        1 => Just("_hidden".to_string()),
        1 => Just("ABC".to_string()),
    ]
}

fn origin() -> impl Strategy<Value = String> {
    prop_oneof![
        10 => Just("https://api.example.com".to_string()),
        10 => Just("http://127.0.0.1:9000".to_string()),
        2 => "(https?|ftp|)://[a-z.]{0,10}(:[0-9]{0,6})?(/[a-z]{0,3})?(\\?q)?",
        1 => Just("https://u:p@x.com".to_string()),
        1 => any::<String>(),
    ]
}

fn cron() -> impl Strategy<Value = String> {
    let part =
        "(\\*|[0-9]{1,3}|[0-9]{1,2}-[0-9]{1,2}|\\*/[0-9]{1,2}|[0-9],[0-9]|[A-Za-z]{3}|L|\\?|#)";
    prop_oneof![
        2 => Just("0 */15 * * * *".to_string()),
        2 => Just("0 0 9 * * Mon-Fri".to_string()),
        8 => prop::collection::vec(part, 5..8).prop_map(|parts| parts.join(" ")),
        1 => any::<String>(),
    ]
}

/// One connector table.
fn connector() -> impl Strategy<Value = (String, String)> {
    let lines = (
        prop_oneof![
            10 => Just("builtin = true".to_string()),
            10 => Just("path = \"x.wasm\"".to_string()),
            1 => Just("builtin = true\npath = \"x.wasm\"".to_string()),
            1 => Just(String::new()),
            1 => any_value().prop_map(|v| format!("path = {v}")),
        ],
        prop::collection::vec(origin(), 0..3),
        prop::collection::vec((origin(), origin()), 0..2),
        field(&["64", "1", "1024"], &["0", "1025", "4294967296"]),
        field(&["10000", "1", "600000"], &["0", "600001"]),
        field(&["8", "1", "100"], &["0", "101"]),
        field(&["16", "4", "1024"], &["0", "1025"]),
        prop::collection::vec(("[a-z_]{1,8}", any_value()), 0..2).prop_map(|mut v| {
            // Usually no unknown key, so that the checks after it run.
            v.truncate(usize::from(v.len() == 2));
            v
        }),
    );
    (id(), lines).prop_map(
        |(id, (source, hosts, stand_ins, memory, timeout, attempts, concurrency, extra))| {
            let hosts: Vec<String> = hosts.iter().map(|h| quoted(h)).collect();
            let stand_ins: Vec<String> = stand_ins
                .iter()
                .map(|(from, to)| format!("{} = {}", quoted(from), quoted(to)))
                .collect();
            let mut text = format!(
                "[connectors.{}]\n{source}\nallow_hosts = [{}]\nstand_ins = {{ {} }}\nmemory_mb = {memory}\ntimeout_ms = {timeout}\nmax_attempts = {attempts}\nconcurrency = {concurrency}\n",
                quoted(&id),
                hosts.join(", "),
                stand_ins.join(", "),
            );
            for (k, v) in extra {
                text.push_str(&format!("{k} = {v}\n"));
            }
            (id, text)
        },
    )
}

/// One tenant table, using some of `connectors` (and maybe an undeclared one).
fn tenant(connectors: Vec<String>) -> impl Strategy<Value = String> {
    let known = if connectors.is_empty() {
        vec!["nope".to_string()]
    } else {
        connectors
    };
    let uses = prop::collection::vec(
        prop_oneof![20 => prop::sample::select(known.clone()), 1 => id()],
        1..3,
    );
    let route = (
        prop_oneof![20 => "\"[a-z ]{1,10}\"", 1 => any_value()],
        prop_oneof![
            20 => prop::sample::select(known.clone()).prop_map(|c| format!("{c}:some.event")),
            1 => ".{0,10}"
        ],
        proptest::option::of(prop_oneof![
            Just("event.kind != 'note'".to_string()),
            Just("{{".to_string()),
            ".{0,16}"
        ]),
        prop_oneof![
            20 => prop::sample::select(known.clone()).prop_map(|c| format!("{c}:act")),
            1 => ".{0,10}"
        ],
        prop::collection::vec(("[a-z]{1,6}", any_value()), 0..3),
    );
    let schedule = (
        prop_oneof![20 => "\"[a-z ]{1,10}\"", 1 => any_value()],
        cron(),
        prop::sample::select(known),
        field(&["\"run_once\"", "\"skip\""], &["\"later\"", "\"\""]),
    );
    (
        id(),
        proptest::option::of(field(&["\"Alpha Inc\"", "\"É \\u0000 x\""], &["\"\"", "\"  \""])),
        proptest::option::of(field(
            &["\"America/New_York\"", "\"UTC\"", "\"Europe/Paris\""],
            &["\"Mars/Olympus\"", "\"\""],
        )),
        uses,
        prop::collection::vec(any_value(), 0..2),
        prop::collection::vec(route, 0..3),
        prop::collection::vec(schedule, 0..2),
    )
        .prop_map(
            |(id, name, timezone, uses, configs, routes, schedules)| {
                let t = quoted(&id);
                let mut text = format!("[tenants.{t}]\n");
                if let Some(name) = name {
                    text.push_str(&format!("name = {name}\n"));
                }
                if let Some(tz) = timezone {
                    text.push_str(&format!("timezone = {tz}\n"));
                }
                for (i, c) in uses.iter().enumerate() {
                    let config = configs.get(i).cloned().unwrap_or_else(|| "{}".into());
                    text.push_str(&format!(
                        "[tenants.{t}.connectors.{}]\nconfig = {{ k = {config} }}\n[tenants.{t}.connectors.{}.credentials]\napi_key = {SEALED}\n",
                        quoted(c),
                        quoted(c)
                    ));
                }
                for (name, on, when, action, input) in routes {
                    text.push_str(&format!("[[tenants.{t}.routes]]\nname = {name}\non = {}\naction = {}\n", quoted(&on), quoted(&action)));
                    if let Some(when) = when {
                        text.push_str(&format!("when = {}\n", quoted(&when)));
                    }
                    let pairs: Vec<String> = input.iter().map(|(k, v)| format!("{k} = {v}")).collect();
                    text.push_str(&format!("input = {{ {} }}\n", pairs.join(", ")));
                }
                for (name, cron, connector, missed) in schedules {
                    text.push_str(&format!(
                        "[[tenants.{t}.schedules]]\nname = {name}\ncron = {}\nconnector = {}\njob = \"sync\"\nmissed = {missed}\n",
                        quoted(&cron),
                        quoted(&connector)
                    ));
                }
                text
            },
        )
}

fn server() -> impl Strategy<Value = String> {
    (
        field(
            &["\"127.0.0.1:8080\"", "\"[::]:0\""],
            &["\"localhost:80\"", "\"1.2.3.4\""],
        ),
        field(
            &["\"http://localhost:8080\"", "\"https://hooks.example.com/base/\""],
            &["\"ftp://x\"", "\"https://h?q=1\"", "\"http://\""],
        ),
        field(&["\"./data\"", "\"/abs/path\"", "\"../..\""], &["\"\""]),
        field(&["1048576", "1", "67108864"], &["0", "67108865", "-1"]),
        field(&["4", "1", "1024"], &["0", "1025"]),
        field(
            &["{ per_second = 50, burst = 100 }", "{ burst = 4294967295 }"],
            &["{ per_second = 0 }", "{ burst = 4294967296 }", "{ extra = 1 }"],
        ),
        field(&["30", "1", "36500"], &["0", "36501"]),
        proptest::option::of(field(
            &[SEALED],
            &["\"sealed:v1:AAAA\"", "\"plaintext-token\"", "\"sealed:v9:x\""],
        )),
        prop::collection::vec(("[a-z_]{1,10}", any_value()), 0..2).prop_map(|mut v| {
            v.truncate(usize::from(v.len() == 2));
            v
        }),
    )
        .prop_map(
            |(listen, url, dir, limit, workers, rate, retention, token, extra)| {
                let mut text = format!(
                    "[server]\nlisten = {listen}\npublic_url = {url}\ndata_dir = {dir}\nbody_limit = {limit}\nworkers = {workers}\nrate_limit = {rate}\nretention_days = {retention}\n"
                );
                if let Some(token) = token {
                    text.push_str(&format!("admin_token = {token}\n"));
                }
                for (k, v) in extra {
                    text.push_str(&format!("{k} = {v}\n"));
                }
                text
            },
        )
}

fn generated_config() -> impl Strategy<Value = String> {
    (server(), prop::collection::vec(connector(), 0..3))
        .prop_flat_map(|(server, connectors)| {
            let ids: Vec<String> = connectors.iter().map(|(id, _)| id.clone()).collect();
            let texts: Vec<String> = connectors.into_iter().map(|(_, t)| t).collect();
            (
                Just(server),
                Just(texts),
                prop::collection::vec(tenant(ids), 0..3),
                any::<bool>(),
            )
        })
        .prop_map(|(server, connectors, tenants, server_last)| {
            let body = connectors.join("\n") + "\n" + &tenants.join("\n");
            if server_last {
                // `[server]` after the others: order must not matter.
                format!("{body}\n{server}")
            } else {
                format!("{server}\n{body}")
            }
        })
}

/// The checks every outcome must pass.
fn check(text: &str) -> Result<(), TestCaseError> {
    let lines = text.split('\n').count();
    match Config::from_str(text, Path::new("hub.toml")) {
        Ok(config) => {
            let s = &config.server;
            prop_assert!((1..=64 * 1024 * 1024).contains(&s.body_limit));
            prop_assert!((0..=1024).contains(&s.workers));
            prop_assert!(s.rate_limit.per_second >= 1 && s.rate_limit.burst >= 1);
            prop_assert!(s.data_dir.is_absolute());
            for c in config.connectors.values() {
                prop_assert!((1..=1024).contains(&c.memory_mb));
                prop_assert!(c.timeout >= Duration::from_millis(1));
                prop_assert!(c.timeout <= Duration::from_secs(600));
                prop_assert!((1..=100).contains(&c.max_attempts));
                prop_assert!(c.concurrency >= 1 && c.tenant_concurrency >= 1);
                for (from, _) in &c.stand_ins {
                    prop_assert!(c.allow_hosts.iter().any(|a| a.covers(from)));
                }
            }
            for t in config.tenants.values() {
                for cid in t.connectors.keys() {
                    prop_assert!(config.connectors.contains_key(cid));
                }
                prop_assert!(!t.name.trim().is_empty());
            }
            // Locating anything, present or not, never fails.
            let _ = config.locate(&["tenants", "nope", "connectors", "x"]);
            let _ = config.locate(&[]);
        }
        Err(e) => {
            let message = e.to_string();
            prop_assert!(message.starts_with("hub.toml:"), "{message}");
            let location = e.location().cloned();
            prop_assert!(location.is_some(), "{message}");
            let location = location.unwrap();
            prop_assert!(
                location.line >= 1 && location.line <= lines,
                "line {} of {lines}: {message}",
                location.line
            );
            prop_assert!(location.col >= 1, "{message}");
            prop_assert!(e.field().is_some(), "{message}");
            let rest = message.splitn(4, ':').nth(3).unwrap_or("");
            prop_assert!(
                rest.trim().len() > 2,
                "the message says what is wrong: {message}"
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn any_text_is_a_config_or_a_located_error(
        text in prop_oneof![
            any::<String>(),
            prop::collection::vec(any::<u8>(), 0..400).prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
            "([\\[\\]{}=\"'.,#a-z0-9_ \\n-]{0,40}\n?){0,10}",
        ],
    ) {
        check(&text)?;
    }

    #[test]
    fn cuts_and_splices_of_the_example_are_located(
        cut in any::<prop::sample::Index>(),
        at in any::<prop::sample::Index>(),
        splice in prop_oneof![
            any_value(),
            "\n\\[[a-z.\"]{0,20}\\]\n",
            "\n[a-z_]{1,8} = .{0,10}\n",
            Just("\n[server]\n".to_string()),
            Just("\n[[tenants.abc-healthcare.routes]]\n".to_string()),
        ],
        mode in 0u8..3,
    ) {
        let chars: Vec<char> = EXAMPLE.chars().collect();
        let text: String = match mode {
            0 => chars[..cut.index(chars.len() + 1)].iter().collect(),
            1 => {
                let i = at.index(chars.len() + 1);
                chars[..i].iter().collect::<String>() + &splice + &chars[i..].iter().collect::<String>()
            }
            _ => {
                // Drop one line.
                let lines: Vec<&str> = EXAMPLE.lines().collect();
                let skip = cut.index(lines.len());
                lines.iter().enumerate().filter(|(i, _)| *i != skip).map(|(_, l)| *l).collect::<Vec<_>>().join("\n")
            }
        };
        check(&text)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn generated_configs_are_valid_or_located(text in generated_config()) {
        check(&text)?;
    }
}

#[test]
fn deep_nesting_is_refused_or_parsed_without_overflow() {
    let server = "[server]\npublic_url = \"http://localhost:8080\"\n";
    let head = "[connectors.c]\nbuiltin = true\n[tenants.t.connectors.c]\n";
    // Run on a thread with a small stack, so the depth that matters is the parser's own limit.
    let handle = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || {
            for depth in [100usize, 1_000, 20_000] {
                let arrays = format!(
                    "config = {{ a = {}{} }}\n",
                    "[".repeat(depth),
                    "]".repeat(depth)
                );
                let tables = format!("config = {}{}\n", "{ a = ".repeat(depth), "}".repeat(depth));
                for text in [arrays, tables] {
                    let text = format!("{server}{head}{text}");
                    let result = Config::from_str(&text, Path::new("hub.toml"));
                    if let Err(e) = result {
                        let message = e.to_string();
                        assert!(message.starts_with("hub.toml:"), "depth {depth}: {message}");
                    }
                }
            }
        })
        .unwrap();
    handle.join().expect("parsing deep nesting panicked");
}

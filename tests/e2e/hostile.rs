//! A hostile world, through the real binary: bad input on every surface, connectors that
//! misbehave on purpose, providers that fail, and a database that is locked or out of space.
//! Everything runs on loopback and is bounded in time; each test says what it proves.
//!
//! Figures (latencies, memory, log volume) are printed; run with `--nocapture` to see them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use plugin_sdk::schemes::sign_retell;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::util::*;

use crate::hostile_kit::*;

// ---------------------------------------------------------------- bad input

/// Oversized bodies (declared, chunked, or a lying `Content-Length`), header floods, huge URLs,
/// a million-element JSON array, JSON nested 100 000 deep, invalid UTF-8, wrong methods and
/// undecodable paths: each gets a 4xx (413, 431, 400, 401, 404, 405...) and nothing the hub could
/// not verify is stored; the hub stays healthy and keeps processing good deliveries.
#[tokio::test]
async fn hostile_bad_input_gets_a_4xx_and_the_hub_stays_up() {
    let (mock, _) = mock_api().await;
    let opts = Opts {
        body_limit: 4 << 20,
        ..Opts::default()
    };
    let hub = started(mock, &opts).await;
    let port = hub.port;
    let url = format!("{}/hooks/alpha/probe", hub.base());
    let sig = |b: &[u8]| sign_retell(ALPHA_KEY.as_bytes(), b, now_ms());

    // Over the 4 MiB limit, with a Content-Length (the hub may answer 413 and close before
    // the whole body is sent, so this is a raw exchange that reads the answer either way).
    let big = vec![b'x'; 5 << 20];
    let mut request = format!(
        "POST /hooks/alpha/probe HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\nx-retell-signature: {}\r\n\r\n",
        big.len(),
        sig(&big)
    )
    .into_bytes();
    request.extend_from_slice(&big);
    let status = raw_exchange(port, &request, Duration::from_secs(10)).await;
    assert_eq!(status, Some(413), "declared oversized body");

    // Over the limit, chunked (no Content-Length): the limit applies as it streams.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..80).map(|_| Ok(vec![b'y'; 64 << 10])).collect();
    let started = Instant::now();
    let status = hub
        .client
        .post(&url)
        .header("x-retell-signature", sig(b""))
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await
        .map(|r| r.status().as_u16());
    // The hub may answer 413 and close before the client has sent everything.
    assert!(
        matches!(status, Ok(413)) || status.is_err(),
        "chunked oversized body: {status:?}"
    );
    println!(
        "chunked 5 MiB body refused in {:?}: {status:?}",
        started.elapsed()
    );

    // Header floods: 10 000 headers, one 1 MiB header, a 200 KiB URL.
    let mut flood =
        String::from("POST /hooks/alpha/probe HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n");
    for i in 0..10_000 {
        flood.push_str(&format!("x-flood-{i}: {i}\r\n"));
    }
    flood.push_str("\r\n{}");
    let status = raw_exchange(port, flood.as_bytes(), Duration::from_secs(5)).await;
    assert_eq!(status, Some(431), "10 000 headers");
    let huge = format!(
        "POST /hooks/alpha/probe HTTP/1.1\r\nhost: x\r\nx-huge: {}\r\ncontent-length: 2\r\n\r\n{{}}",
        "h".repeat(1 << 20)
    );
    let status = raw_exchange(port, huge.as_bytes(), Duration::from_secs(5)).await;
    assert_eq!(status, Some(431), "a 1 MiB header");
    let long_url = format!(
        "POST /hooks/{}/probe HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\n{{}}",
        "t".repeat(200 << 10)
    );
    let status = raw_exchange(port, long_url.as_bytes(), Duration::from_secs(5)).await;
    assert!(
        matches!(status, Some(400..=499)),
        "a 200 KiB URL: {status:?}"
    );

    // A million-element array: unsigned it costs one MAC (401); signed it has no `/id` (400).
    let million = format!("[{}0]", "0,".repeat(999_999)).into_bytes();
    let started = Instant::now();
    let (status, _) = hub
        .post(
            "/hooks/alpha/probe",
            &[("x-retell-signature", sig(b"x"))],
            &million,
        )
        .await;
    assert_eq!(status, 401);
    let unsigned_took = started.elapsed();
    let started = Instant::now();
    let (status, text) = hub
        .post("/hooks/alpha/probe", &signed(ALPHA_KEY, &million), &million)
        .await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("/id"), "{text}");
    println!(
        "million-element array: 401 in {unsigned_took:?}, signed 400 in {:?}",
        started.elapsed()
    );

    // JSON nested 100 000 deep (serde's recursion limit, not the stack, decides), not JSON at
    // all, invalid UTF-8, an `id` that is null: a clear 400 each.
    let deep = format!(
        "{{\"id\":\"deep\",\"x\":{}{}}}",
        "[".repeat(100_000),
        "]".repeat(100_000)
    )
    .into_bytes();
    for (what, body) in [
        ("deep nesting", deep),
        ("not JSON", b"{\"id\": \"x\",".to_vec()),
        ("invalid UTF-8", vec![b'{', 0xff, 0xfe, b'}']),
        ("null id", b"{\"id\": null}".to_vec()),
        ("empty", Vec::new()),
    ] {
        let (status, text) = hub
            .post("/hooks/alpha/probe", &signed(ALPHA_KEY, &body), &body)
            .await;
        assert_eq!(status, 400, "{what}: {text}");
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        assert!(v["error"].is_string(), "{what}: a JSON error body: {text}");
    }

    // Wrong methods, undecodable and odd paths: 4xx, never a 5xx.
    for (method, path) in [
        ("GET", "/hooks/alpha/probe".to_string()),
        ("PUT", "/hooks/alpha/probe".to_string()),
        ("POST", "/hooks/%FF%FE/probe".to_string()),
        ("POST", "/hooks/alpha/probe/%00/x/y".to_string()),
        ("POST", "/hooks/../../etc/passwd".to_string()),
        ("POST", format!("/hooks/{}/probe", "a".repeat(8000))),
    ] {
        let req = format!("{method} {path} HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\n{{}}");
        let status = raw_exchange(port, req.as_bytes(), Duration::from_secs(5)).await;
        assert!(
            matches!(status, Some(400..=499)),
            "{method} {path:.40}: {status:?}"
        );
    }

    // A million-element array inside a valid delivery is stored (the provider signed it); the
    // connector that parses it hits its own memory cap, not the hub's.
    let inside = format!(
        "{{\"id\":\"million\",\"op\":\"unknown-op\",\"items\":[{}0]}}",
        "0,".repeat(999_999)
    )
    .into_bytes();
    let (status, text) = hub
        .post("/hooks/alpha/probe", &signed(ALPHA_KEY, &inside), &inside)
        .await;
    assert_eq!(status, 200, "{text}");
    let d = settled(&hub, "alpha", "million", 30).await;
    println!(
        "million-element delivery: state {}, error {}",
        d["state"], d["last_error"]
    );
    assert!(
        d["state"] == "ignored"
            || d["last_error"]
                .as_str()
                .is_some_and(|e| e.contains("memory limit")),
        "{d}"
    );

    // Nothing refused was stored; the hub is healthy and still processes good deliveries.
    let ids: Vec<String> = hub
        .deliveries(None)
        .await
        .iter()
        .map(|d| d["identity"].to_string())
        .collect();
    assert_eq!(
        ids,
        ["\":million\""],
        "only the signed, well-formed delivery is stored"
    );
    assert!(healthy(&hub).await);
    send_ok(
        &hub,
        "beta",
        json!({ "id": "after", "op": "record", "kind": "k", "key": "after", "data": {} }),
    )
    .await;
    let d = settled(&hub, "beta", "after", 20).await;
    assert_eq!(d["state"], "done", "{d}");

    // A Content-Length of 10 GB, over the limit, and no body: refused at once from the header
    // (413), not left waiting for a body that never comes.
    let started = Instant::now();
    let request = format!(
        "POST /hooks/alpha/probe HTTP/1.1\r\nhost: x\r\ncontent-length: 10000000000\r\nx-retell-signature: {}\r\n\r\n",
        sig(b"")
    );
    let status = raw_exchange(port, request.as_bytes(), Duration::from_secs(5)).await;
    assert_eq!(
        status,
        Some(413),
        "a Content-Length over the body limit must be refused without reading a body; after \
         {:?} the hub had not answered (it waits for the body, with no timeout)",
        started.elapsed()
    );
}

/// Property test over HTTP: random bodies on the signed JSON route get 200 exactly when they
/// are JSON with a non-null `/id`, else 400; random form bodies on the form route get 200
/// exactly when they carry a `Sid` field, else 400; random signatures get 401. Never a 5xx,
/// never a dropped connection; every stored delivery is then processed.
#[test]
fn hostile_random_bodies_get_2xx_or_4xx_never_5xx() {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};

    let rt = tokio::runtime::Runtime::new().unwrap();
    let hub = rt.block_on(async {
        let (mock, _) = mock_api().await;
        started(mock, &Opts::default()).await
    });

    let json_body = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..512),
        any::<String>().prop_map(String::into_bytes),
        (
            prop_oneof![
                any::<String>().prop_map(Value::from),
                any::<i64>().prop_map(Value::from),
                any::<f64>().prop_map(
                    |f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)
                ),
                any::<bool>().prop_map(Value::from),
                Just(Value::Null),
                Just(json!([1, 2])),
                Just(json!({ "nested": { "id": 1 } })),
            ],
            prop::collection::hash_map("[a-z]{1,8}", any::<String>(), 0..4),
            any::<bool>(),
        )
            .prop_map(|(id, extra, with_id)| {
                let mut map: serde_json::Map<String, Value> = extra
                    .into_iter()
                    .map(|(k, v)| (k, Value::from(v)))
                    .collect();
                map.remove("id");
                map.remove("op");
                if with_id {
                    map.insert("id".into(), id);
                }
                serde_json::to_vec(&Value::Object(map)).unwrap()
            }),
    ];
    let form_body = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..512),
        prop::collection::vec(
            (
                prop_oneof![
                    Just("Sid".to_string()),
                    Just("op".to_string()),
                    any::<String>()
                ],
                any::<String>()
            ),
            0..6
        )
        .prop_map(|pairs| {
            let mut s = form_urlencoded::Serializer::new(String::new());
            for (k, v) in &pairs {
                s.append_pair(k, v);
            }
            s.finish().into_bytes()
        }),
        "([A-Za-z%+=&]{0,6}|Sid=|%[0-9A-Fa-f]{0,2}|\u{0}|é){0,20}".prop_map(String::into_bytes),
    ];
    let config = Config {
        cases: 96,
        failure_persistence: None,
        ..Config::default()
    };

    let mut runner = TestRunner::new(config.clone());
    runner
        .run(&json_body, |body| {
            let (status, text) =
                rt.block_on(hub.post("/hooks/alpha/probe", &signed(ALPHA_KEY, &body), &body));
            let has_id = serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|v| v.pointer("/id").cloned())
                .is_some_and(|id| !id.is_null());
            prop_assert_eq!(status, if has_id { 200 } else { 400 }, "{}", text);
            Ok(())
        })
        .unwrap();

    let mut runner = TestRunner::new(config.clone());
    runner
        .run(&form_body, |body| {
            let headers = [
                ("x-probe-token", ALPHA_TOKEN.to_string()),
                (
                    "content-type",
                    "application/x-www-form-urlencoded".to_string(),
                ),
            ];
            let (status, text) = rt.block_on(hub.post("/hooks/alpha/probe/form", &headers, &body));
            let has_sid = form_urlencoded::parse(&body).any(|(k, _)| k == "Sid");
            prop_assert_eq!(status, if has_sid { 200 } else { 400 }, "{}", text);
            Ok(())
        })
        .unwrap();

    let mut runner = TestRunner::new(Config {
        cases: 32,
        ..config
    });
    runner
        .run(
            &(any::<String>(), prop::collection::vec(any::<u8>(), 0..64)),
            |(signature, body)| {
                let value = signature.replace(['\r', '\n', '\0'], "");
                let mut req = hub
                    .client
                    .post(format!("{}/hooks/alpha/probe", hub.base()))
                    .body(body);
                if let Ok(v) = reqwest::header::HeaderValue::from_str(&value) {
                    req = req.header("x-retell-signature", v);
                }
                let status = rt.block_on(req.send()).unwrap().status().as_u16();
                prop_assert_eq!(status, 401);
                Ok(())
            },
        )
        .unwrap();

    // Every stored delivery is processed: none stuck, none dead.
    rt.block_on(async {
        let deliveries = wait_for(30, "every stored delivery to be processed", || async {
            let all = hub.deliveries(None).await;
            all.iter()
                .all(|d| ["done", "ignored"].contains(&d["state"].as_str().unwrap_or("")))
                .then_some(all)
        })
        .await;
        println!(
            "{} random deliveries stored and processed",
            deliveries.len()
        );
        assert!(!deliveries.is_empty());
    });
}

/// Slowloris: 150 clients that trickle their headers a byte at a time and 50 that trickle a
/// declared body. While they hang on, other providers' deliveries are acknowledged promptly;
/// and each slow client is cut off (a 408 or a closed connection) within `SLOW_CLIENT_LIMIT`,
/// so they cannot pile up until the hub runs out of file descriptors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_slow_clients_are_cut_off_and_do_not_block_others() {
    /// How long a slow client may hold a connection: a 10 s header/body read timeout plus margin.
    const SLOW_CLIENT_LIMIT: Duration = Duration::from_secs(15);
    let (mock, _) = mock_api().await;
    let hub = started(mock, &Opts::default()).await;
    let port = hub.port;
    let started_at = Instant::now();
    let mut clients = Vec::new();
    for i in 0..200 {
        clients.push(tokio::spawn(async move {
            let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
            let head = if i < 150 {
                "POST /hooks/alpha/probe HTTP/1.1\r\nhost: x\r\n".to_string()
            } else {
                "POST /hooks/alpha/probe HTTP/1.1\r\nhost: x\r\ncontent-length: 60000\r\nx-retell-signature: v=1,d=00\r\n\r\n".to_string()
            };
            if stream.write_all(head.as_bytes()).await.is_err() {
                return Some(Duration::ZERO);
            }
            let drip: &[u8] = if i < 150 { b"x-slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" } else { b"{\"a\":\"bbbbbbbbbbbbbbbbbbbbbbbbbbbb" };
            let mut n = 0usize;
            let mut buf = [0u8; 512];
            loop {
                if started_at.elapsed() > SLOW_CLIENT_LIMIT {
                    return None; // still connected: not cut off
                }
                tokio::select! {
                    read = stream.read(&mut buf) => {
                        // A 408, or the connection closed: cut off.
                        let _ = read;
                        return Some(started_at.elapsed());
                    }
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {
                        if stream.write_all(&drip[n % drip.len()..n % drip.len() + 1]).await.is_err() {
                            return Some(started_at.elapsed());
                        }
                        n += 1;
                    }
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Meanwhile, a provider's deliveries are acknowledged promptly.
    let mut acks = Vec::new();
    for i in 0..20 {
        acks.push(
            send_ok(
                &hub,
                "beta",
                json!({ "id": format!("fast{i}"), "op": "unknown-op" }),
            )
            .await,
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (p50, p95, max) = summary(&acks);
    println!(
        "ack latency with 200 slow clients connected: p50 {p50:.1} ms, p95 {p95:.1} ms, max {max:.1} ms"
    );
    assert!(
        max < 2000.0,
        "deliveries were held up by slow clients: max {max:.1} ms"
    );

    let mut cut = Vec::new();
    let mut still_open = 0;
    for c in clients {
        match c.await.unwrap() {
            Some(t) => cut.push(t),
            None => still_open += 1,
        }
    }
    let (p50, _, max) = summary(&cut);
    println!(
        "slow clients cut off: {} (p50 {p50:.0} ms, max {max:.0} ms); still connected after {SLOW_CLIENT_LIMIT:?}: {still_open}",
        cut.len()
    );
    assert!(healthy(&hub).await);
    assert_eq!(
        still_open, 0,
        "slow clients were never cut off: the hub sets no header or body read timeout, so a few \
         thousand trickling connections hold its file descriptors indefinitely"
    );
}

// ---------------------------------------------------------------- hostile connectors

/// A flood of host calls is stopped at the host-call budget (trap, logged, retried, then dead),
/// its log volume is bounded by that budget, and what a connector buffers through host calls is
/// bounded too: 100 `kv_set`s of 4 MiB each (400 MiB, from a 32 MiB guest) must not raise the
/// hub's peak memory by more than 128 MiB (4x the guest's own cap).
#[tokio::test]
async fn hostile_host_call_floods_are_stopped_and_stay_bounded() {
    let (mock, _) = mock_api().await;
    // The default 10 s time limit: time must not be what bounds the buffering.
    let opts = Opts {
        timeout_ms: 10_000,
        ..Opts::default()
    };
    let hub = started(mock, &opts).await;

    // Calls: a million kv reads, a million 512-byte log lines.
    let log_before = hub.log().len();
    send_ok(
        &hub,
        "alpha",
        json!({ "id": "reads", "op": "flood", "call": "kv_get", "n": 1_000_000 }),
    )
    .await;
    send_ok(
        &hub,
        "alpha",
        json!({ "id": "logs", "op": "flood", "call": "log", "n": 1_000_000, "bytes": 512 }),
    )
    .await;
    for id in ["reads", "logs"] {
        let d = settled(&hub, "alpha", id, 30).await;
        let error = d["last_error"].as_str().unwrap_or("");
        assert!(error.contains("more than 10000 host calls"), "{id}: {d}");
    }
    let d = wait_for(30, "the log flood to be dead-lettered", || async {
        delivery(&hub, "alpha", "logs")
            .await
            .filter(|d| d["state"] == "dead")
    })
    .await;
    let attempts = d["attempts"].as_u64().unwrap_or(1).max(1);
    let log = hub.log();
    let grown = log.len() - log_before;
    println!(
        "log flood: {attempts} attempts wrote {} KiB of log ({} KiB per attempt)",
        grown / 1024,
        grown / 1024 / attempts as usize
    );
    assert!(
        log.contains("more than 10000 host calls"),
        "the trap is logged"
    );
    assert!(
        grown as u64 <= attempts * 10_000 * 2048,
        "log volume is bounded by the host-call budget: {grown} bytes"
    );

    // Payload: 100 x 4 MiB buffered through kv_set, then the invocation fails.
    let (rss_before, hwm_before) = memory_kib(&hub);
    send_ok(&hub, "alpha", json!({ "id": "bulk", "op": "flood", "call": "kv_set", "n": 100, "bytes": 4 << 20, "fail": true })).await;
    let d = settled(&hub, "alpha", "bulk", 30).await;
    let (rss_after, hwm_after) = memory_kib(&hub);
    println!(
        "kv_set flood (100 x 4 MiB): {}; hub RSS {} -> {} MiB, peak {} -> {} MiB",
        d["last_error"],
        rss_before / 1024,
        rss_after / 1024,
        hwm_before / 1024,
        hwm_after / 1024
    );
    assert!(healthy(&hub).await);
    assert!(
        hwm_after.saturating_sub(hwm_before) < 128 * 1024,
        "host-side buffering is unbounded: one invocation with a 32 MiB guest raised the hub's peak \
         memory by {} MiB (the host keeps every kv_set/record/event payload until the end of the \
         invocation, with no byte budget)",
        hwm_after.saturating_sub(hwm_before) / 1024
    );
}

/// Outbound tricks, each refused and logged, and never reaching the loopback stand-in: loopback
/// spelled as a declared name (`localhost`, resolved and refused), an IPv6 literal, decimal, hex,
/// short and mapped forms of 127.0.0.1, userinfo tricks, redirects to all of these, to other
/// schemes, scheme-relative ones and redirect loops. A redirect to another allowed origin
/// drops the credential; one within the origin keeps working.
#[tokio::test]
async fn hostile_outbound_tricks_are_refused_and_logged() {
    let (mock, seen) = mock_api().await;
    let hub = started(mock, &Opts::default()).await;
    let here = format!("127.0.0.1:{mock}");
    let via = |to: &str| {
        let to: String = form_urlencoded::byte_serialize(to.as_bytes()).collect();
        format!("http://allowed.test/redirect?to={to}")
    };
    let refused = [
        ("localhost", "http://localhost:1/x".to_string()),
        ("ipv6-loopback", "http://[::1]:1/x".to_string()),
        ("decimal", format!("http://2130706433:{mock}/echo")),
        ("hex", format!("http://0x7f000001:{mock}/echo")),
        ("short", format!("http://127.1:{mock}/echo")),
        ("mapped", format!("http://[::ffff:127.0.0.1]:{mock}/echo")),
        ("zero", format!("http://0:{mock}/echo")),
        ("userinfo", format!("http://allowed.test@{here}/echo")),
        (
            "userinfo-port",
            format!("http://allowed.test:80@{here}/echo"),
        ),
        ("trailing-dot", "http://localhost.:1/x".to_string()),
        ("to-loopback", via(&format!("http://{here}/echo"))),
        ("to-localhost", via("http://localhost:1/x")),
        ("to-ipv6", via("http://[::1]:1/x")),
        (
            "to-userinfo",
            via(&format!("http://allowed.test@{here}/echo")),
        ),
        ("to-scheme-relative", via(&format!("//{here}/echo"))),
        ("to-file", via("file:///etc/passwd")),
        (
            "to-metadata",
            via("http://169.254.169.254/latest/meta-data/"),
        ),
        ("loop", "http://allowed.test/loop".to_string()),
    ];
    for (key, url) in &refused {
        send_ok(&hub, "alpha", json!({ "id": format!("out-{key}"), "op": "http", "key": key, "url": url, "bearer": "api_key" })).await;
    }
    let allowed = [
        ("same-origin", via("http://allowed.test/echo")),
        ("cross-origin", via("http://second.test/echo")),
    ];
    for (key, url) in &allowed {
        send_ok(&hub, "alpha", json!({ "id": format!("out-{key}"), "op": "http", "key": key, "url": url, "bearer": "api_key" })).await;
    }
    let total = refused.len() + allowed.len();
    let records = wait_for(30, "every outbound attempt recorded", || async {
        let r = hub.records("alpha", "http").await;
        (r.len() == total).then_some(r)
    })
    .await;
    let by_key = |k: &str| records.iter().find(|r| r["key"] == k).unwrap()["data"].clone();
    for (key, _) in &refused {
        let d = by_key(key);
        println!("{key:>20}: {d}");
        assert!(d["error"].is_string(), "{key} was not refused: {d}");
        let message = d["message"].as_str().unwrap_or("");
        assert!(
            [
                "not an allowed host",
                "private or reserved",
                "redirects",
                "not allowed",
                "is not a URL"
            ]
            .iter()
            .any(|m| message.contains(m)),
            "{key}: {d}"
        );
    }
    assert_eq!(by_key("same-origin")["body"], "pong");
    assert_eq!(by_key("cross-origin")["body"], "pong");

    // What reached the stand-in: the first hop of each redirect and the two allowed targets.
    let seen = seen.lock().unwrap().clone();
    let echoes: Vec<&(String, String)> = seen.iter().filter(|(p, _)| p == "/echo").collect();
    assert_eq!(
        echoes.len(),
        2,
        "only the two allowed redirects reached /echo: {seen:?}"
    );
    let bearer = format!("Bearer {ALPHA_KEY}");
    assert!(
        echoes.iter().any(|(_, auth)| auth == &bearer)
            && echoes.iter().any(|(_, auth)| auth.is_empty()),
        "the credential stays within its origin and is dropped across origins: {echoes:?}"
    );
    let log = hub.log();
    assert!(
        log.matches("outbound request refused").count() >= 10,
        "refusals are logged"
    );
    assert!(healthy(&hub).await);
    // A name that resolves to loopback is refused by policy, like a loopback literal: that must
    // be a permanent refusal (logged as one), not a network failure to retry 8 times.
    for key in ["localhost", "to-localhost"] {
        assert_eq!(
            by_key(key)["error"],
            "permanent",
            "{key}: a DNS-time refusal surfaces as a retryable transport error: {}",
            by_key(key)
        );
    }
}

/// Tenants share a connector, keys and kinds, never data: beta asking for alpha's kv key and
/// record, or for a record by alpha's lookup, sees nothing, and writing the same kv key does not touch alpha's value; kv is also
/// scoped per connector within a tenant; the admin API shows each tenant only its own records.
#[tokio::test]
async fn hostile_a_tenant_cannot_read_another_tenants_kv_or_records() {
    let (mock, _) = mock_api().await;
    let hub = started(
        mock,
        &Opts {
            probe2: true,
            ..Opts::default()
        },
    )
    .await;
    send_ok(
        &hub,
        "alpha",
        json!({ "id": "a-kv", "op": "kv", "key": "shared", "value": "alpha-secret" }),
    )
    .await;
    let lookup = "email:owner@alpha.example";
    let rec = json!({ "id": "a-rec", "op": "record", "kind": "secret", "key": "k",
                      "data": { "owner": "alpha" }, "lookups": [lookup] });
    send_ok(&hub, "alpha", rec).await;
    for id in ["a-kv", "a-rec"] {
        assert_eq!(settled(&hub, "alpha", id, 20).await["state"], "done");
    }
    send_ok(
        &hub,
        "beta",
        json!({ "id": "b-peek", "op": "peek", "kind": "secret", "key": "shared", "lookup": lookup }),
    )
    .await;
    send_ok(
        &hub,
        "beta",
        json!({ "id": "b-peek2", "op": "peek", "kind": "secret", "key": "k", "lookup": lookup }),
    )
    .await;
    // The peeks settle before beta writes the key itself: beta's deliveries run concurrently,
    // and a peek after beta's own write would see beta's value.
    for id in ["b-peek", "b-peek2"] {
        assert_eq!(settled(&hub, "beta", id, 20).await["state"], "done");
    }
    send_ok(
        &hub,
        "beta",
        json!({ "id": "b-kv", "op": "kv", "key": "shared", "value": "beta-value" }),
    )
    .await;
    assert_eq!(settled(&hub, "beta", "b-kv", 20).await["state"], "done");
    let beta_peeks = hub.records("beta", "peek").await;
    assert_eq!(beta_peeks.len(), 2);
    for p in &beta_peeks {
        let d = &p["data"];
        assert_eq!(d["tenant"], "beta");
        assert_eq!(d["record"], Value::Null, "beta read alpha's record: {d}");
        assert_eq!(d["listed"], 0, "beta listed alpha's records: {d}");
        assert_eq!(d["kv"], Value::Null, "beta read alpha's kv: {d}");
        assert_eq!(
            d["found"],
            json!([]),
            "beta found alpha's record by its lookup: {d}"
        );
    }
    let beta_kv = hub.records("beta", "kv").await;
    assert_eq!(beta_kv[0]["data"]["before"], Value::Null, "{beta_kv:?}");

    // Alpha's own data is intact; the same tenant's other connector has its own kv.
    send_ok(
        &hub,
        "alpha",
        json!({ "id": "a-peek", "op": "peek", "kind": "secret", "key": "shared", "lookup": lookup }),
    )
    .await;
    assert_eq!(settled(&hub, "alpha", "a-peek", 20).await["state"], "done");
    let body = serde_json::to_vec(
        &json!({ "id": "p2-peek", "op": "peek", "kind": "secret", "key": "shared", "lookup": lookup }),
    )
    .unwrap();
    let (status, text) = hub
        .post("/hooks/alpha/probe2", &signed(ALPHA_KEY, &body), &body)
        .await;
    assert_eq!(status, 200, "{text}");
    let peeks = wait_for(20, "alpha's two peeks", || async {
        let r = hub.records("alpha", "peek").await;
        (r.len() == 2).then_some(r)
    })
    .await;
    let peek = |k: &str| peeks.iter().find(|r| r["key"] == k).unwrap()["data"].clone();
    assert_eq!(
        peek("a-peek")["kv"],
        "alpha-secret",
        "beta's write did not touch alpha's value"
    );
    assert_eq!(peek("a-peek")["listed"], 1);
    assert_eq!(
        peek("p2-peek")["kv"],
        Value::Null,
        "kv is scoped per connector"
    );
    // Records and their lookups are the tenant's: its other connector finds the record too.
    assert_eq!(peek("a-peek")["found"], json!(["k"]));
    assert_eq!(peek("p2-peek")["found"], json!(["k"]));
    assert!(hub.records("beta", "secret").await.is_empty());
    assert_eq!(hub.records("alpha", "secret").await.len(), 1);

    // Nor through the sandbox's memory: each invocation leaves a secret in a static and on the
    // heap; the next one, in the slot a finished instance is reset into, finds nothing.
    for (i, tenant) in ["alpha", "beta", "alpha", "beta", "beta"]
        .iter()
        .enumerate()
    {
        let id = format!("left{i}");
        let secret = format!("{tenant}-secret-{i}");
        send_ok(
            &hub,
            tenant,
            json!({ "id": id, "op": "leftover", "secret": secret }),
        )
        .await;
        assert_eq!(settled(&hub, tenant, &id, 20).await["state"], "done");
    }
    let mut seen = hub.records("alpha", "leftover").await;
    seen.extend(hub.records("beta", "leftover").await);
    assert_eq!(seen.len(), 5, "{seen:?}");
    for r in &seen {
        assert_eq!(
            r["data"]["found"], "",
            "an invocation saw an earlier one's memory: {r}"
        );
        assert!(r["data"]["wrote"].as_u64().unwrap() > 4096, "{r}");
    }
}

// ---------------------------------------------------------------- provider outages

/// What the outage stand-in saw: per path, each request's idempotency key, time and answer.
#[derive(Default)]
struct Outage {
    requests: HashMap<String, Vec<(String, Instant, &'static str)>>,
}

/// A provider stand-in on raw TCP. While `down`, by path: `timeout-*` never answers in time,
/// `fail500-*` answers 500, `busy429-*` answers 429 without `Retry-After`, `drop-*` closes the
/// connection after reading the request, `reset-*` resets it. Up, everything answers 200.
async fn outage_provider(down: Arc<AtomicBool>) -> (u16, Arc<Mutex<Outage>>) {
    let seen: Arc<Mutex<Outage>> = Arc::default();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen2 = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                continue;
            };
            let (seen, down) = (seen2.clone(), down.clone());
            tokio::spawn(async move {
                let mut got = Vec::new();
                let mut buf = [0u8; 4096];
                let head_end = loop {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                    if let Some(i) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                };
                let head = String::from_utf8_lossy(&got[..head_end]).to_string();
                let header = |name: &str| {
                    head.lines()
                        .find_map(|l| {
                            l.split_once(':')
                                .filter(|(k, _)| k.trim().eq_ignore_ascii_case(name))
                                .map(|(_, v)| v.trim().to_string())
                        })
                        .unwrap_or_default()
                };
                let length: usize = header("content-length").parse().unwrap_or(0);
                while got.len() < head_end + length {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                let path = head
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or("")
                    .trim_start_matches("/hook/")
                    .to_string();
                let is_down = down.load(Ordering::SeqCst);
                let mode = if !is_down {
                    "ok"
                } else {
                    path.split('-').next().unwrap_or("ok")
                };
                let answer: &'static str = match mode {
                    "timeout" => "timeout",
                    "fail500" => "500",
                    "busy429" => "429",
                    "drop" => "drop",
                    "reset" => "reset",
                    _ => "200",
                };
                seen.lock()
                    .unwrap()
                    .requests
                    .entry(path)
                    .or_default()
                    .push((header("idempotency-key"), Instant::now(), answer));
                let reply = |status: &str, body: &str| {
                    format!(
                        "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    )
                };
                match answer {
                    "timeout" => {
                        tokio::time::sleep(Duration::from_secs(5)).await;
                    }
                    "500" => drop(
                        stream
                            .write_all(reply("500 Internal Server Error", "down").as_bytes())
                            .await,
                    ),
                    "429" => drop(
                        stream
                            .write_all(reply("429 Too Many Requests", "slow down").as_bytes())
                            .await,
                    ),
                    "drop" => {}
                    "reset" => {
                        // Linger zero: the close sends a reset (and cannot block).
                        #[allow(deprecated)]
                        let _ = stream.set_linger(Some(Duration::ZERO));
                    }
                    _ => drop(
                        stream
                            .write_all(reply("200 OK", "{\"ok\":true}").as_bytes())
                            .await,
                    ),
                }
            });
        }
    });
    (port, seen)
}

/// A provider that times out, answers 500, answers 429, drops or resets connections for a
/// while (at least three attempts of every action), then recovers: every action is retried
/// with backoff and completes once it is back, each under one idempotency key; nothing is lost
/// or dead-lettered, ingress keeps acknowledging throughout, and the hub's memory stays flat.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_provider_outages_are_retried_until_it_recovers() {
    let down = Arc::new(AtomicBool::new(true));
    let (port, seen) = outage_provider(down.clone()).await;
    let hub = started(
        port,
        &Opts {
            route: true,
            ..Opts::default()
        },
    )
    .await;
    let (rss_before, _) = memory_kib(&hub);
    let modes = ["timeout", "fail500", "busy429", "drop", "reset"];
    let mut paths = Vec::new();
    for mode in modes {
        for i in 0..3 {
            let key = format!("{i}");
            send_ok(&hub, "alpha", json!({ "id": format!("{mode}-{i}"), "op": "record", "kind": mode, "key": key, "data": {} })).await;
            paths.push(format!("{mode}-{i}"));
        }
    }
    let count = |p: &str| seen.lock().unwrap().requests.get(p).map_or(0, Vec::len);
    let dead_route_jobs = || async {
        let mut dead = Vec::new();
        for d in hub.deliveries(Some("alpha")).await {
            let detail = hub.api(&format!("/deliveries/{}", d["id"])).await;
            for j in detail["jobs"].as_array().cloned().unwrap_or_default() {
                if j["state"] == "dead" {
                    dead.push(format!("{}: {}", d["identity"], j["last_error"]));
                }
            }
        }
        dead
    };
    // Down for at least three attempts of every action (or 20 s).
    let outage_started = Instant::now();
    while outage_started.elapsed() < Duration::from_secs(20) && !paths.iter().all(|p| count(p) >= 3)
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let outage = outage_started.elapsed();
    // Ingress still acknowledges during the outage.
    let ack = send_ok(&hub, "beta", json!({ "id": "during", "op": "unknown-op" })).await;
    down.store(false, Ordering::SeqCst);
    println!(
        "provider down for {outage:?}; attempts so far: {:?}",
        paths
            .iter()
            .map(|p| (p.clone(), count(p)))
            .collect::<Vec<_>>()
    );

    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let done = paths
            .iter()
            .filter(|p| {
                seen.lock()
                    .unwrap()
                    .requests
                    .get(p.as_str())
                    .is_some_and(|r| r.iter().any(|(_, _, a)| *a == "200"))
            })
            .count();
        if done == paths.len() {
            break;
        }
        let dead = dead_route_jobs().await;
        assert!(
            dead.is_empty(),
            "actions were dead-lettered during a provider outage ({done} of {} completed): {dead:#?}",
            paths.len()
        );
        assert!(
            Instant::now() < deadline,
            "only {done} of {} actions completed after recovery",
            paths.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    {
        let seen = seen.lock().unwrap();
        for p in &paths {
            let reqs = &seen.requests[p.as_str()];
            let mut keys: Vec<&str> = reqs.iter().map(|(k, _, _)| k.as_str()).collect();
            keys.dedup();
            assert_eq!(
                keys.len(),
                1,
                "{p} acted under one idempotency key: {reqs:?}"
            );
            assert!(!keys[0].is_empty());
            let ok = reqs.iter().filter(|(_, _, a)| *a == "200").count();
            assert_eq!(ok, 1, "{p} succeeded once and was not sent again: {reqs:?}");
        }
    }
    let log = hub.log();
    println!(
        "attempts against the timing-out provider that ended as a retryable timeout: {}, as a \
         crash (the guest ran out of time after its request timed out): {}",
        log.matches("will retry: retryable: request timed out")
            .count(),
        log.matches("will retry: connector crashed: exceeded its time limit")
            .count()
    );
    for id in ["timeout-0", "drop-0"] {
        let d = delivery(&hub, "alpha", id).await.unwrap();
        let detail = hub.api(&format!("/deliveries/{}", d["id"])).await;
        for j in detail["jobs"].as_array().unwrap() {
            if j["task"]["kind"] == "route" {
                println!(
                    "{id}: route job {} after {} attempts, last error {}",
                    j["state"], j["attempts"], j["last_error"]
                );
            }
        }
    }
    let (rss_after, _) = memory_kib(&hub);
    println!(
        "ack during outage {ack:?}; hub RSS {} -> {} MiB",
        rss_before / 1024,
        rss_after / 1024
    );
    assert!(
        rss_after < rss_before + 64 * 1024,
        "memory grew by {} MiB",
        (rss_after - rss_before) / 1024
    );
}

// ---------------------------------------------------------------- storage failures

/// Another process holds the write lock on `data/hub.db` (on PostgreSQL: a lock on the log's
/// table) for 12 s, longer than the hub's 5 s busy (lock) timeout: a delivery that cannot be stored gets 503 with `Retry-After` (never a 2xx;
/// how long it waited for that answer is printed), any delivery acknowledged meanwhile is
/// really stored, and once the lock is gone the provider's retry is accepted and everything
/// is processed (nothing was half-stored).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_locked_database_gets_503_not_an_ack() {
    let (mock, _) = mock_api().await;
    let hub = started(mock, &Opts::default()).await;
    send_ok(&hub, "alpha", json!({ "id": "before", "op": "unknown-op" })).await;

    let db = hub.dir.path().join("data/hub.db");
    let (locked_tx, locked_rx) = std::sync::mpsc::channel();
    let postgres = hub.database_url();
    let holder = std::thread::spawn(move || match postgres {
        // On PostgreSQL: another session locks the log against writes; the hub's lock timeout
        // is 5 s, as SQLite's busy timeout.
        Some(url) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async move {
                let (mut client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                    .await
                    .unwrap();
                tokio::spawn(connection);
                let tx = client.transaction().await.unwrap();
                tx.batch_execute("LOCK TABLE deliveries IN EXCLUSIVE MODE")
                    .await
                    .unwrap();
                locked_tx.send(()).unwrap();
                tokio::time::sleep(Duration::from_secs(12)).await;
                tx.rollback().await.unwrap();
            }),
        None => {
            let conn = rusqlite::Connection::open(&db).unwrap();
            // In WAL mode this takes the write lock at once; readers carry on.
            conn.execute_batch("BEGIN IMMEDIATE").unwrap();
            locked_tx.send(()).unwrap();
            std::thread::sleep(Duration::from_secs(12));
            conn.execute_batch("ROLLBACK").unwrap();
        }
    });
    locked_rx.recv().unwrap();
    let lock_started = Instant::now();

    let mut tries = Vec::new();
    for (i, at) in [0u64, 1500, 3000].into_iter().enumerate() {
        let client = hub.client.clone();
        let url = format!("{}/hooks/alpha/probe", hub.base());
        tries.push(tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(at)).await;
            let body =
                serde_json::to_vec(&json!({ "id": format!("locked{i}"), "op": "unknown-op" }))
                    .unwrap();
            let started = Instant::now();
            let mut req = client.post(url);
            for (k, v) in signed(ALPHA_KEY, &body) {
                req = req.header(k, v);
            }
            let req = req.body(body);
            let resp = req.send().await.unwrap();
            let retry_after = resp
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_string());
            (
                format!("locked{i}"),
                resp.status().as_u16(),
                retry_after,
                started.elapsed(),
            )
        }));
    }
    assert!(
        healthy(&hub).await,
        "the process stays up while the database is locked"
    );
    let mut outcomes = Vec::new();
    for t in tries {
        outcomes.push(t.await.unwrap());
    }
    holder.join().unwrap();
    println!(
        "lock held 12 s; outcomes (id, status, retry-after, latency): {outcomes:?}; lock released after {:?}",
        lock_started.elapsed()
    );
    assert_eq!(
        outcomes[0].1, 503,
        "the first delivery during the lock is refused: {outcomes:?}"
    );
    // When each queued batch of writes gave up: a batch waits one busy timeout, and writes that
    // arrive meanwhile queue behind it, then wait their own.
    for line in hub.log().lines().map(plain).filter(|l| {
        l.contains("could not store delivery")
            || l.contains("cannot claim jobs")
            || l.contains("could not record")
    }) {
        println!("  {}", line.chars().take(160).collect::<String>());
    }
    for (id, status, retry_after, _) in &outcomes {
        match status {
            503 => {
                assert!(retry_after.is_some(), "{id}: 503 carries Retry-After");
                // The provider retries: now it is stored (or, had the hub stored it after all,
                // a duplicate; either way it is processed below, so nothing was half-stored).
                let body = json!({ "id": id, "op": "unknown-op" });
                let (status, text, _) = send(&hub, "alpha", &body).await;
                assert_eq!(status, 200, "{id}: {text}");
            }
            200 => assert!(
                delivery(&hub, "alpha", id).await.is_some(),
                "{id} acknowledged but not stored"
            ),
            other => panic!("{id}: unexpected status {other}"),
        }
    }
    for (id, ..) in &outcomes {
        let d = settled(&hub, "alpha", id, 30).await;
        assert_eq!(d["state"], "ignored", "{id} processed after the lock: {d}");
    }
}

/// The data folder on a tiny tmpfs that fills up: deliveries that cannot be written get 503
/// (never a 2xx), every acknowledged one is stored, the hub stays up, and once space is freed
/// deliveries are stored and processed again. On PostgreSQL the store is elsewhere: every
/// delivery is stored and processed (`scale_out` stops the server itself). Needs root to mount a tmpfs; without it, the test
/// says so and checks nothing else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_full_disk_gets_503_not_an_ack() {
    struct Mount(std::path::PathBuf);
    impl Drop for Mount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&self.0)
                .status();
        }
    }
    let (mock, _) = mock_api().await;
    let mut hub = TestHub::new();
    let data = hub.dir.path().join("small");
    std::fs::create_dir_all(&data).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=8m", "tmpfs"])
        .arg(&data)
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        println!("cannot mount a tmpfs here (not root?): disk-full test not run");
        return;
    }
    let _mount = Mount(data.clone());
    hub.write_config(&config(
        &hub,
        mock,
        &Opts {
            data_dir: Some(data.clone()),
            ..Opts::default()
        },
    ));
    hub.start().await;
    send_ok(&hub, "alpha", json!({ "id": "before", "op": "unknown-op" })).await;

    // Fill the disk but for ~200 KiB.
    let avail = || {
        let out = std::process::Command::new("df")
            .args(["-B1", "--output=avail"])
            .arg(&data)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .nth(1)
            .and_then(|l| l.trim().parse::<u64>().ok())
            .unwrap()
    };
    let ballast = data.join("ballast");
    let fill = avail().saturating_sub(200 << 10);
    std::fs::write(&ballast, vec![0u8; fill as usize]).ok();
    println!("tmpfs free after ballast: {} KiB", avail() / 1024);

    let padding = "p".repeat(30_000);
    let mut outcomes = Vec::new();
    for i in 0..40 {
        let body = json!({ "id": format!("full{i}"), "op": "unknown-op", "pad": padding });
        let (status, text, _) = send(&hub, "alpha", &body).await;
        outcomes.push((format!("full{i}"), status));
        assert!(status == 200 || status == 503, "full{i}: {status} {text}");
        if status == 503 && outcomes.iter().filter(|(_, s)| *s == 503).count() >= 3 {
            break;
        }
    }
    println!("deliveries on a full disk: {outcomes:?}");
    if on_postgres() {
        // The store is not on this disk: a full data folder stops nothing.
        assert!(
            outcomes.iter().all(|(_, s)| *s == 200),
            "a hub on PostgreSQL stores webhooks whatever its data folder: {outcomes:?}"
        );
        for (id, _) in &outcomes {
            let d = settled(&hub, "alpha", id, 30).await;
            assert_eq!(d["state"], "ignored", "{id}: {d}");
        }
        return;
    }
    assert!(
        outcomes.iter().any(|(_, s)| *s == 503),
        "the disk never filled: {outcomes:?}"
    );
    assert!(healthy(&hub).await, "the hub stays up on a full disk");
    for (id, status) in &outcomes {
        if *status == 200 {
            assert!(
                delivery(&hub, "alpha", id).await.is_some(),
                "{id} acknowledged but not stored"
            );
        }
    }

    // Space is back: a refused delivery is stored as new and everything acknowledged is processed.
    std::fs::remove_file(&ballast).unwrap();
    let refused = outcomes.iter().find(|(_, s)| *s == 503).unwrap().0.clone();
    let (status, text, _) =
        send(&hub, "alpha", &json!({ "id": refused, "op": "unknown-op" })).await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("\"stored\""), "{text}");
    for (id, status) in outcomes.iter().filter(|(_, s)| *s == 200) {
        let d = settled(&hub, "alpha", id, 30).await;
        assert_eq!(d["state"], "ignored", "{id} ({status}): {d}");
    }
    hub.kill();
}

//! Property tests: every signature parser against hostile input.
//!
//! What each property proves:
//! - `random_requests_never_verify_nor_panic`: any headers, URL, body, method, path token, clock
//!   and tolerance, under every scheme, give an error (never a panic, never a pass by luck), and
//!   the error message never echoes the secret or a header, URL or body value.
//! - `shared_token_matches_exactly_the_secret`: a shared token passes exactly when the value in
//!   its place equals the secret (header trimmed, `Bearer ` on `authorization`, query decoded).
//! - `*_round_trip`: for arbitrary keys, bodies, URLs, params and timestamps, what the signing
//!   helper produces verifies, and changing the body (or a param) makes it fail: the parsers
//!   accept everything the providers can send, not just the known-answer vectors.
//! - `timestamps_outside_the_window_are_stale`: a correctly signed but old or future request is
//!   `Stale`, at any distance up to `u64::MAX`, never an overflow.
//! - `form_round_trip` / `form_never_panics`: the form parser inverts the encoder, and any bytes
//!   parse to something.
//! - `digits_and_windows`: the shared timestamp helpers agree with `u64::from_str` and never
//!   overflow.

use proptest::prelude::*;

use super::common::{check_window, parse_digits, query_param};
use super::*;

/// A marker that only an echoed input can put in an error message.
const MARK: &str = "\u{1F511}";

/// The names the schemes read, and the one the token tests route a shared token through.
fn known_headers() -> Vec<&'static str> {
    let mut names = HEADERS_READ.to_vec();
    names.push("x-token");
    names
}

fn header_name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(known_headers()).prop_map(str::to_string),
        1 => prop::sample::select(known_headers()).prop_map(str::to_ascii_uppercase),
        1 => "[a-zA-Z0-9-]{0,24}",
    ]
}

/// Values shaped like the real ones, broken ones, and anything at all.
fn header_value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "v=[0-9]{0,25},d=[0-9a-fA-F]{0,70}",
        " ?d=[0-9a-f]{64} ?, ?v=[0-9]{1,22} ?(,.{0,5})?",
        "(v1[a-z]?,[A-Za-z0-9+/=]{0,50} ?){0,4}",
        "[0-9]{0,25}",
        "-?[0-9]{1,20}(\\.[0-9]*)?",
        "[A-Za-z0-9+/=_-]{0,60}",
        "[0-9a-fA-F]{0,70}",
        "(Bearer|bearer|Basic|BEARER) {0,3}.{0,20}",
        "v[0-9]",
        ".{0,10}\u{1F511}.{0,10}",
    ]
}

fn headers() -> impl Strategy<Value = Vec<(String, String)>> {
    prop::collection::vec((header_name(), header_value()), 0..12)
}

fn url() -> impl Strategy<Value = String> {
    let structured = (
        "(https?|HTTPS?|ftp|)",
        "(://|:/|)",
        "([a-z0-9.-]{0,15}|\\[[0-9a-f:]{0,20}\\]|[a-z]{1,5}(:[a-z]{0,3})?@[a-z.]{0,9}|é)",
        "(:[0-9]{0,6}|:)?",
        "(/[^?#]{0,20})?",
        "(\\?([a-zA-Z0-9%+=&]|bodySHA256=|token=|%[0-9a-fA-F]{0,2}){0,12})?",
        "(#.{0,10})?",
    )
        .prop_map(|(a, b, c, d, e, f, g)| format!("{a}{b}{c}{d}{e}{f}{g}"));
    prop_oneof![
        1 => any::<String>(),
        1 => ".{0,8}\u{1F511}.{0,8}",
        4 => structured,
    ]
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..256),
        "([a-zA-Z0-9%+]{0,6}=?[a-zA-Z0-9%+\u{1F511}]{0,8}&?){0,8}".prop_map(String::into_bytes),
        any::<String>().prop_map(String::into_bytes),
    ]
}

fn scheme() -> impl Strategy<Value = Scheme> {
    prop_oneof![
        Just(Scheme::StandardWebhooks),
        Just(Scheme::Retell),
        Just(Scheme::Twilio),
        Just(Scheme::HubSpot),
        header_name().prop_map(|h| Scheme::SharedToken(TokenLocation::Header(h))),
        "[a-z]{0,6}".prop_map(|q| Scheme::SharedToken(TokenLocation::Query(q))),
        Just(Scheme::SharedToken(TokenLocation::Path)),
        Just(Scheme::EcdsaP256 {
            signature: "x-twilio-email-event-webhook-signature".into(),
            timestamp: "x-twilio-email-event-webhook-timestamp".into(),
        }),
        Just(Scheme::Basic),
    ]
}

fn policy() -> impl Strategy<Value = Policy> {
    let now = prop_oneof![
        Just(0u64),
        Just(u64::MAX),
        any::<u64>(),
        1_600_000_000_000u64..1_900_000_000_000u64,
    ];
    (now, any::<u32>()).prop_map(|(now_ms, tolerance_secs)| Policy {
        now_ms,
        tolerance_secs,
    })
}

/// Secrets that cannot appear in an error message unless echoed. `whsec_` ones are valid for
/// Standard Webhooks, so that scheme reaches its signature checks too.
fn secret() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        "S3cr3t-[A-Za-z0-9]{8,40}".prop_map(String::into_bytes),
        prop::collection::vec(any::<u8>(), 16..48)
            .prop_map(|key| { format!("whsec_{}", common::b64_encode(&key)).into_bytes() }),
    ]
}

fn check_message(err: &VerifyError, secret: &[u8]) -> Result<(), TestCaseError> {
    let text = err.to_string();
    prop_assert!(!text.trim().is_empty());
    prop_assert!(!text.contains(MARK), "echoes an input: {text}");
    let secret_text = String::from_utf8_lossy(secret);
    prop_assert!(!text.contains(&*secret_text), "echoes the secret: {text}");
    if let Some(key) = secret_text.strip_prefix("whsec_") {
        prop_assert!(!text.contains(key), "echoes the key: {text}");
    }
    Ok(())
}

/// The documented shared-token rule, written independently of the implementation.
fn token_should_pass(location: &TokenLocation, secret: &[u8], req: &Request<'_>) -> bool {
    let secret = String::from_utf8_lossy(secret);
    match location {
        TokenLocation::Header(name) => {
            let Some((_, value)) = req
                .headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
            else {
                return false;
            };
            let value = value.trim();
            let bearer = name.eq_ignore_ascii_case("authorization")
                && value.len() > 7
                && value
                    .get(..7)
                    .is_some_and(|p| p.eq_ignore_ascii_case("bearer "))
                && value.get(7..).is_some_and(|t| t.trim() == secret);
            value == secret || bearer
        }
        TokenLocation::Query(name) => {
            let before_fragment = req.url.split('#').next().unwrap_or("");
            let Some((_, query)) = before_fragment.split_once('?') else {
                return false;
            };
            form_urlencoded::parse(query.as_bytes())
                .find(|(k, _)| k == name.as_str())
                .is_some_and(|(_, v)| v == secret)
        }
        TokenLocation::Path => req.path_token == Some(&*secret),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_requests_never_verify_nor_panic(
        scheme in scheme(),
        secret in secret(),
        headers in headers(),
        url in url(),
        body in body(),
        method in prop_oneof![Just("POST".to_string()), Just("GET".to_string()), ".{0,8}"],
        path_token in proptest::option::of(header_value()),
        policy in policy(),
    ) {
        let req = Request { method: &method, url: &url, headers: &headers, body: &body, path_token: path_token.as_deref() };
        let result = verify(&scheme, &secret, &req, &policy);
        match (&scheme, result) {
            (Scheme::SharedToken(location), result) => {
                prop_assert_eq!(result.is_ok(), token_should_pass(location, &secret, &req));
                if let Err(e) = result {
                    check_message(&e, &secret)?;
                }
            }
            (_, Ok(())) => prop_assert!(false, "{} accepted a random request", scheme.name()),
            (_, Err(e)) => check_message(&e, &secret)?,
        }
        // An empty secret is refused before anything is parsed.
        prop_assert!(matches!(verify(&scheme, b"", &req, &policy), Err(VerifyError::BadSecret(_))));
    }

    #[test]
    fn shared_token_matches_exactly_the_secret(
        secret in "[ -~]{1,24}",
        variant in 0usize..7,
        other in any::<String>(),
        name in prop_oneof![Just("authorization".to_string()), Just("x-token".to_string()), "[a-z-]{1,10}"],
    ) {
        let candidate = match variant {
            0 => secret.clone(),
            1 => format!("  {secret}\t"),
            2 => format!("Bearer {secret}"),
            3 => format!("bEaReR   {secret} "),
            4 => format!("{secret}x"),
            5 => secret.chars().skip(1).collect(),
            _ => other,
        };
        let h = vec![(name.to_ascii_uppercase(), candidate.clone())];
        let req = Request { method: "POST", url: "https://h/p", headers: &h, body: b"", path_token: None };
        let location = TokenLocation::Header(name);
        let result = verify(&Scheme::SharedToken(location.clone()), secret.as_bytes(), &req, &Policy::at(0));
        prop_assert_eq!(result.is_ok(), token_should_pass(&location, secret.as_bytes(), &req), "{:?}", candidate);

        let encoded: String = form_urlencoded::byte_serialize(candidate.as_bytes()).collect();
        let url = format!("https://h/p?a=1&token={encoded}&token=other#frag");
        let req = Request { method: "POST", url: &url, headers: &[], body: b"", path_token: Some(&candidate) };
        let query = TokenLocation::Query("token".into());
        let result = verify(&Scheme::SharedToken(query.clone()), secret.as_bytes(), &req, &Policy::at(0));
        prop_assert_eq!(result.is_ok(), candidate == secret);
        let result = verify(&Scheme::SharedToken(TokenLocation::Path), secret.as_bytes(), &req, &Policy::at(0));
        prop_assert_eq!(result.is_ok(), candidate == secret);
    }

    #[test]
    fn retell_round_trip(
        key in prop::collection::vec(any::<u8>(), 1..64),
        body in prop::collection::vec(any::<u8>(), 0..512),
        now_ms in 1_000_000u64..u64::MAX / 2,
        skew_ms in -299_000i64..299_000,
        reversed in any::<bool>(),
        flip in any::<prop::sample::Index>(),
    ) {
        let ts = now_ms.saturating_add_signed(skew_ms);
        let value = sign_retell(&key, &body, ts);
        let value = if reversed {
            let (v, d) = value.split_once(',').unwrap();
            format!(" {d} , {v} ")
        } else {
            value
        };
        let h = vec![("X-Retell-Signature".to_string(), value)];
        let ok = Request { method: "POST", url: "https://h/r", headers: &h, body: &body, path_token: None };
        prop_assert_eq!(verify(&Scheme::Retell, &key, &ok, &Policy::at(now_ms)), Ok(()));
        if !body.is_empty() {
            let mut tampered = body.clone();
            tampered[flip.index(body.len())] ^= 0x01;
            let bad = Request { body: &tampered, ..ok };
            prop_assert_eq!(verify(&Scheme::Retell, &key, &bad, &Policy::at(now_ms)), Err(VerifyError::Mismatch));
        }
    }

    #[test]
    fn standard_webhooks_round_trip(
        key in prop::collection::vec(any::<u8>(), 1..64),
        id in "[!-~]{1,40}",
        body in prop::collection::vec(any::<u8>(), 0..512),
        now_s in 1u64..u64::MAX / 1000,
        skew_s in -299i64..299,
        noise in prop::collection::vec("(v1a|v2|v0),[A-Za-z0-9+/=]{0,44}", 0..3),
        svix in any::<bool>(),
        flip in any::<prop::sample::Index>(),
    ) {
        let secret = format!("whsec_{}", common::b64_encode(&key));
        let ts = now_s.saturating_add_signed(skew_s);
        let sig = sign_standard_webhooks(&secret, &id, ts, &body).unwrap();
        let mut entries = noise.clone();
        entries.insert(noise.len() / 2, sig);
        let p = if svix { "svix" } else { "webhook" };
        let h = vec![
            (format!("{p}-id"), id.clone()),
            (format!("{p}-timestamp"), ts.to_string()),
            (format!("{p}-signature"), entries.join(" ")),
        ];
        let ok = Request { method: "POST", url: "https://h/s", headers: &h, body: &body, path_token: None };
        let policy = Policy::at(now_s * 1000);
        prop_assert_eq!(verify(&Scheme::StandardWebhooks, secret.as_bytes(), &ok, &policy), Ok(()));
        if !body.is_empty() {
            let mut tampered = body.clone();
            tampered[flip.index(body.len())] ^= 0x80;
            let bad = Request { body: &tampered, ..ok };
            prop_assert_eq!(verify(&Scheme::StandardWebhooks, secret.as_bytes(), &bad, &policy), Err(VerifyError::Mismatch));
        }
    }

    #[test]
    fn twilio_form_round_trip(
        token in "[a-f0-9]{32}",
        host in "[a-z]{1,10}\\.example",
        port in proptest::option::of(1u16..=u16::MAX),
        https in any::<bool>(),
        path in "(/[a-zA-Z0-9._~-]{0,8}){0,3}",
        query in proptest::option::of("[a-zA-Z0-9]{1,5}=[a-zA-Z0-9%]{0,6}(&[a-z]{1,3}=[a-z0-9]{0,4}){0,2}"),
        params in prop::collection::vec((any::<String>(), any::<String>()), 0..10),
        shuffle in any::<prop::sample::Index>(),
        sign_with_default_port in any::<bool>(),
    ) {
        let scheme = if https { "https" } else { "http" };
        let authority = match port { Some(p) => format!("{host}:{p}"), None => host.clone() };
        let q = query.map(|q| format!("?{q}")).unwrap_or_default();
        let url = format!("{scheme}://{authority}{path}{q}");
        // Twilio's SDKs may sign with the default port spelled out; the hub accepts both.
        let signed_url = if port.is_none() && sign_with_default_port {
            let default = if https { 443 } else { 80 };
            format!("{scheme}://{host}:{default}{path}{q}")
        } else {
            url.clone()
        };
        let signature = sign_twilio(token.as_bytes(), &signed_url, &params);
        let mut sent = params.clone();
        if !sent.is_empty() {
            let n = shuffle.index(sent.len());
            sent.rotate_left(n);
        }
        let mut form = form_urlencoded::Serializer::new(String::new());
        for (k, v) in &sent {
            form.append_pair(k, v);
        }
        let body = form.finish().into_bytes();
        let h = vec![("x-twilio-signature".to_string(), signature)];
        let ok = Request { method: "POST", url: &url, headers: &h, body: &body, path_token: None };
        prop_assert_eq!(verify(&Scheme::Twilio, token.as_bytes(), &ok, &Policy::at(0)), Ok(()));
        // A changed value is a mismatch.
        let mut changed = form_urlencoded::Serializer::new(String::new());
        changed.append_pair("Injected", "1");
        for (k, v) in &sent {
            changed.append_pair(k, v);
        }
        let changed = changed.finish().into_bytes();
        let bad = Request { body: &changed, ..ok };
        prop_assert_eq!(verify(&Scheme::Twilio, token.as_bytes(), &bad, &Policy::at(0)), Err(VerifyError::Mismatch));
    }

    #[test]
    fn twilio_json_body_hash_round_trip(
        token in "[a-f0-9]{32}",
        body in prop::collection::vec(any::<u8>(), 0..512),
        upper in any::<bool>(),
        flip in any::<prop::sample::Index>(),
    ) {
        let mut digest = hex::encode(common::sha256(&[&body]));
        if upper {
            digest = digest.to_ascii_uppercase();
        }
        let url = format!("https://hub.example/hooks/t/twilio/status?bodySHA256={digest}");
        let signature = sign_twilio(token.as_bytes(), &url, &[]);
        let h = vec![("x-twilio-signature".to_string(), signature)];
        let ok = Request { method: "POST", url: &url, headers: &h, body: &body, path_token: None };
        prop_assert_eq!(verify(&Scheme::Twilio, token.as_bytes(), &ok, &Policy::at(0)), Ok(()));
        if !body.is_empty() {
            let mut tampered = body.clone();
            tampered[flip.index(body.len())] ^= 0x01;
            let bad = Request { body: &tampered, ..ok };
            prop_assert_eq!(verify(&Scheme::Twilio, token.as_bytes(), &bad, &Policy::at(0)), Err(VerifyError::Mismatch));
        }
    }

    #[test]
    fn hubspot_round_trip(
        secret in "[a-z0-9-]{8,36}",
        method in prop_oneof![Just("POST"), Just("GET"), Just("PUT")],
        uri in "https://[a-z]{1,8}\\.example(/[a-zA-Z0-9%:@!$'()*,;_.~-]{0,12}){0,3}(\\?[a-zA-Z0-9%=&:]{0,20})?",
        body in prop::collection::vec(any::<u8>(), 0..512),
        now_ms in 1_000_000u64..u64::MAX / 2,
        skew_ms in -299_000i64..299_000,
        version in 0u8..3,
        flip in any::<prop::sample::Index>(),
    ) {
        let key = secret.as_bytes();
        let ts = now_ms.saturating_add_signed(skew_ms);
        let h = match version {
            0 => vec![
                ("x-hubspot-signature-v3".to_string(), sign_hubspot_v3(key, method, &uri, &body, ts)),
                ("x-hubspot-request-timestamp".to_string(), ts.to_string()),
            ],
            1 => vec![("x-hubspot-signature".to_string(), sign_hubspot_v1(key, &body))],
            _ => vec![
                ("x-hubspot-signature".to_string(), sign_hubspot_v2(key, method, &uri, &body)),
                ("x-hubspot-signature-version".to_string(), "V2".to_string()),
            ],
        };
        let ok = Request { method, url: &uri, headers: &h, body: &body, path_token: None };
        prop_assert_eq!(verify(&Scheme::HubSpot, key, &ok, &Policy::at(now_ms)), Ok(()));
        if !body.is_empty() {
            let mut tampered = body.clone();
            tampered[flip.index(body.len())] ^= 0x01;
            let bad = Request { body: &tampered, ..ok };
            prop_assert_eq!(verify(&Scheme::HubSpot, key, &bad, &Policy::at(now_ms)), Err(VerifyError::Mismatch));
        }
    }

    #[test]
    fn timestamps_outside_the_window_are_stale(
        key in "[a-z0-9]{8,32}",
        body in prop::collection::vec(any::<u8>(), 0..64),
        ts in any::<u64>(),
        now in any::<u64>(),
        tolerance_secs in 1u32..100_000,
    ) {
        let policy = Policy { now_ms: now, tolerance_secs };
        let inside = (i128::from(now) - i128::from(ts)).abs() <= i128::from(tolerance_secs) * 1000;
        let h = vec![("x-retell-signature".to_string(), sign_retell(key.as_bytes(), &body, ts))];
        let req = Request { method: "POST", url: "https://h/r", headers: &h, body: &body, path_token: None };
        match verify(&Scheme::Retell, key.as_bytes(), &req, &policy) {
            Ok(()) => prop_assert!(inside),
            Err(VerifyError::Stale { age_secs, tolerance_secs: t }) => {
                prop_assert!(!inside);
                prop_assert_eq!(t, tolerance_secs);
                prop_assert_eq!(age_secs > 0, now > ts);
            }
            Err(other) => prop_assert!(false, "{other}"),
        }
    }

    #[test]
    fn form_round_trip(pairs in prop::collection::vec((any::<String>(), any::<String>()), 0..16)) {
        let mut s = form_urlencoded::Serializer::new(String::new());
        for (k, v) in &pairs {
            s.append_pair(k, v);
        }
        let parsed = parse_form(s.finish().as_bytes());
        prop_assert_eq!(parsed, pairs);
    }

    #[test]
    fn form_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..1024)) {
        let parsed = parse_form(&bytes);
        let separators = bytes.iter().filter(|b| **b == b'&').count();
        prop_assert!(parsed.len() <= separators + 1);
    }

    #[test]
    fn digits_and_windows(
        text in prop_oneof!["[0-9]{0,22}", "[+ -]?[0-9]{1,5}", any::<String>()],
        now in any::<u64>(),
        ts in any::<u64>(),
        unit in prop_oneof![Just(1u32), Just(1000u32), any::<u32>()],
        tolerance in any::<u32>(),
        url in url(),
        name in "[a-zA-Z]{0,6}",
    ) {
        let all_digits = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
        prop_assert_eq!(parse_digits(&text), if all_digits { text.parse().ok() } else { None });
        let inside = (i128::from(now) - i128::from(ts)).abs() <= i128::from(tolerance) * i128::from(unit);
        prop_assert_eq!(check_window(now, ts, unit, tolerance).is_ok(), inside);
        let _ = query_param(&url, &name);
    }
}

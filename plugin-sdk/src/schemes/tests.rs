//! Known-answer vectors from PROVIDERS.md, round trips, and hostile inputs.

use super::*;

fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

fn request<'a>(
    method: &'a str,
    url: &'a str,
    headers: &'a [(String, String)],
    body: &'a [u8],
) -> Request<'a> {
    Request {
        method,
        url,
        headers,
        body,
        path_token: None,
    }
}

fn form(params: &[(String, String)]) -> Vec<u8> {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (n, v) in params {
        s.append_pair(n, v);
    }
    s.finish().into_bytes()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    headers(list)
}

// ---------------------------------------------------------------- Retell

const RETELL_KEY: &[u8] = b"key_0123456789abcdef0123456789ab";
const RETELL_TS: u64 = 1_714_608_500_000;
const RETELL_BODY: &[u8] = br#"{"event":"call_ended","call":{"call_id":"c1"}}"#;
const RETELL_SIG: &str =
    "v=1714608500000,d=b69433d202aef78346908d95db800dae8716db22e09038b7329f7bdf7dd3b648";

fn retell(sig: &str, body: &[u8], now_ms: u64) -> Result<(), VerifyError> {
    let h = headers(&[("x-retell-signature", sig)]);
    verify(
        &Scheme::Retell,
        RETELL_KEY,
        &request("POST", "https://hub.example/retell", &h, body),
        &Policy::at(now_ms),
    )
}

#[test]
fn retell_known_answer() {
    assert_eq!(sign_retell(RETELL_KEY, RETELL_BODY, RETELL_TS), RETELL_SIG);
    assert_eq!(retell(RETELL_SIG, RETELL_BODY, RETELL_TS), Ok(()));
    assert_eq!(retell(RETELL_SIG, RETELL_BODY, RETELL_TS + 2_500), Ok(()));
    // Upper-case hex and the parts swapped are still the same signature.
    let swapped =
        "d=B69433D202AEF78346908D95DB800DAE8716DB22E09038B7329F7BDF7DD3B648, v=1714608500000";
    assert_eq!(retell(swapped, RETELL_BODY, RETELL_TS), Ok(()));
}

#[test]
fn retell_header_name_is_case_insensitive() {
    let h = headers(&[("X-Retell-Signature", RETELL_SIG)]);
    let req = request("POST", "https://hub.example/retell", &h, RETELL_BODY);
    assert_eq!(
        verify(&Scheme::Retell, RETELL_KEY, &req, &Policy::at(RETELL_TS)),
        Ok(())
    );
}

#[test]
fn retell_rejects_tampering_and_wrong_key() {
    let tampered = br#"{"event":"call_ended","call":{"call_id":"c2"}}"#;
    assert_eq!(
        retell(RETELL_SIG, tampered, RETELL_TS),
        Err(VerifyError::Mismatch)
    );
    // The timestamp is signed too.
    let moved = RETELL_SIG.replace("v=1714608500000", "v=1714608500001");
    assert_eq!(
        retell(&moved, RETELL_BODY, RETELL_TS),
        Err(VerifyError::Mismatch)
    );
    let h = headers(&[("x-retell-signature", RETELL_SIG)]);
    let req = request("POST", "https://hub.example/retell", &h, RETELL_BODY);
    assert_eq!(
        verify(&Scheme::Retell, b"key_other", &req, &Policy::at(RETELL_TS)),
        Err(VerifyError::Mismatch)
    );
}

#[test]
fn retell_window() {
    assert_eq!(retell(RETELL_SIG, RETELL_BODY, RETELL_TS + 300_000), Ok(()));
    assert_eq!(retell(RETELL_SIG, RETELL_BODY, RETELL_TS - 300_000), Ok(()));
    assert_eq!(
        retell(RETELL_SIG, RETELL_BODY, RETELL_TS + 300_001),
        Err(VerifyError::Stale {
            age_secs: 300,
            tolerance_secs: 300
        })
    );
    assert_eq!(
        retell(RETELL_SIG, RETELL_BODY, RETELL_TS + 3_600_000),
        Err(VerifyError::Stale {
            age_secs: 3600,
            tolerance_secs: 300
        })
    );
    assert_eq!(
        retell(RETELL_SIG, RETELL_BODY, RETELL_TS - 3_600_000),
        Err(VerifyError::Stale {
            age_secs: -3600,
            tolerance_secs: 300
        })
    );
    // A custom tolerance.
    let h = headers(&[("x-retell-signature", RETELL_SIG)]);
    let req = request("POST", "https://hub.example/retell", &h, RETELL_BODY);
    let policy = Policy {
        now_ms: RETELL_TS + 30_000,
        tolerance_secs: 10,
    };
    assert_eq!(
        verify(&Scheme::Retell, RETELL_KEY, &req, &policy),
        Err(VerifyError::Stale {
            age_secs: 30,
            tolerance_secs: 10
        })
    );
}

#[test]
fn retell_missing_and_malformed() {
    let req = request("POST", "https://hub.example/retell", &[], RETELL_BODY);
    assert_eq!(
        verify(&Scheme::Retell, RETELL_KEY, &req, &Policy::at(RETELL_TS)),
        Err(VerifyError::Missing("x-retell-signature header".into()))
    );
    for hostile in [
        "",
        "v=,d=",
        "v=99999999999999999999999,d=zz",
        "v=1714608500000,d=zz",
        "v=1714608500000,d=abc",
        "v=1714608500000,d=b69433d2",
        "v=-1,d=b69433d202aef78346908d95db800dae8716db22e09038b7329f7bdf7dd3b648",
        "v=+1714608500000,d=b69433d202aef78346908d95db800dae8716db22e09038b7329f7bdf7dd3b648",
        "b69433d202aef78346908d95db800dae8716db22e09038b7329f7bdf7dd3b648",
        "v=1714608500000",
        "d=b69433d202aef78346908d95db800dae8716db22e09038b7329f7bdf7dd3b648",
        ",,,,=,=,=",
        "v=١٢٣,d=é",
    ] {
        assert!(
            matches!(
                retell(hostile, RETELL_BODY, RETELL_TS),
                Err(VerifyError::Malformed(_))
            ),
            "{hostile:?}"
        );
    }
}

#[test]
fn retell_extreme_timestamps() {
    let sig = sign_retell(RETELL_KEY, RETELL_BODY, u64::MAX);
    assert!(matches!(
        retell(&sig, RETELL_BODY, RETELL_TS),
        Err(VerifyError::Stale { age_secs, .. }) if age_secs < 0
    ));
    let sig = sign_retell(RETELL_KEY, RETELL_BODY, 0);
    assert!(matches!(
        retell(&sig, RETELL_BODY, u64::MAX),
        Err(VerifyError::Stale { age_secs, .. }) if age_secs > 0
    ));
}

#[test]
fn retell_non_utf8_body() {
    let body = [0xff, 0xfe, 0x00, 0xc3, 0x28];
    let sig = sign_retell(RETELL_KEY, &body, RETELL_TS);
    assert_eq!(retell(&sig, &body, RETELL_TS), Ok(()));
    assert_eq!(
        retell(&sig, &body[1..], RETELL_TS),
        Err(VerifyError::Mismatch)
    );
}

// ---------------------------------------------------------------- Standard Webhooks / Svix

const SVIX_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const SVIX_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
const SVIX_TS: u64 = 1_614_265_330;
const SVIX_BODY: &[u8] = br#"{"test": 2432232314}"#;
const SVIX_SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

fn svix(prefix: &str, sig: &str, body: &[u8], now_ms: u64) -> Result<(), VerifyError> {
    let ts = SVIX_TS.to_string();
    let h = headers(&[
        (&format!("{prefix}-id"), SVIX_ID),
        (&format!("{prefix}-timestamp"), &ts),
        (&format!("{prefix}-signature"), sig),
    ]);
    verify(
        &Scheme::StandardWebhooks,
        SVIX_SECRET.as_bytes(),
        &request("POST", "https://hub.example/resend", &h, body),
        &Policy::at(now_ms),
    )
}

#[test]
fn svix_known_answer() {
    assert_eq!(
        sign_standard_webhooks(SVIX_SECRET, SVIX_ID, SVIX_TS, SVIX_BODY).as_deref(),
        Ok(SVIX_SIG)
    );
    let now = SVIX_TS * 1000;
    assert_eq!(svix("svix", SVIX_SIG, SVIX_BODY, now), Ok(()));
    assert_eq!(svix("webhook", SVIX_SIG, SVIX_BODY, now + 299_999), Ok(()));
    assert_eq!(svix("Webhook", SVIX_SIG, SVIX_BODY, now), Ok(()));
}

#[test]
fn svix_secret_without_prefix_is_the_same_key() {
    let bare = SVIX_SECRET.trim_start_matches("whsec_");
    assert_eq!(
        sign_standard_webhooks(bare, SVIX_ID, SVIX_TS, SVIX_BODY).as_deref(),
        Ok(SVIX_SIG)
    );
}

#[test]
fn svix_several_entries() {
    let now = SVIX_TS * 1000;
    let wrong = "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
    let several = format!("{wrong} {SVIX_SIG}");
    assert_eq!(svix("svix", &several, SVIX_BODY, now), Ok(()));
    // Other versions and junk entries are ignored.
    let mixed = format!("v1a,c29tZXRoaW5n  garbage v1,!!! {SVIX_SIG} v2,xyz");
    assert_eq!(svix("svix", &mixed, SVIX_BODY, now), Ok(()));
    // The right MAC under another version label does not count.
    let relabelled = SVIX_SIG.replacen("v1,", "v2,", 1);
    assert!(matches!(
        svix("svix", &relabelled, SVIX_BODY, now),
        Err(VerifyError::Malformed(_))
    ));
    assert_eq!(
        svix("svix", &format!("{wrong} {wrong}"), SVIX_BODY, now),
        Err(VerifyError::Mismatch)
    );
}

#[test]
fn svix_tampered_and_stale() {
    let now = SVIX_TS * 1000;
    assert_eq!(
        svix("svix", SVIX_SIG, br#"{"test": 2432232315}"#, now),
        Err(VerifyError::Mismatch)
    );
    assert_eq!(
        svix("svix", SVIX_SIG, SVIX_BODY, now + 301_000),
        Err(VerifyError::Stale {
            age_secs: 301,
            tolerance_secs: 300
        })
    );
    assert_eq!(
        svix("svix", SVIX_SIG, SVIX_BODY, now - 301_000),
        Err(VerifyError::Stale {
            age_secs: -301,
            tolerance_secs: 300
        })
    );
}

#[test]
fn svix_missing_headers() {
    let ts = SVIX_TS.to_string();
    let all = [
        ("svix-id", SVIX_ID),
        ("svix-timestamp", ts.as_str()),
        ("svix-signature", SVIX_SIG),
    ];
    for skip in 0..all.len() {
        let h: Vec<(String, String)> = all
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != skip)
            .map(|(_, (n, v))| (n.to_string(), v.to_string()))
            .collect();
        let req = request("POST", "https://hub.example/resend", &h, SVIX_BODY);
        let got = verify(
            &Scheme::StandardWebhooks,
            SVIX_SECRET.as_bytes(),
            &req,
            &Policy::at(SVIX_TS * 1000),
        );
        assert!(matches!(got, Err(VerifyError::Missing(_))), "{got:?}");
    }
}

#[test]
fn svix_bad_secret() {
    for secret in ["whsec_!!!not base64!!!", "whsec_", "whsec_é"] {
        assert!(matches!(
            sign_standard_webhooks(secret, SVIX_ID, SVIX_TS, SVIX_BODY),
            Err(VerifyError::BadSecret(_))
        ));
        let ts = SVIX_TS.to_string();
        let h = headers(&[
            ("svix-id", SVIX_ID),
            ("svix-timestamp", &ts),
            ("svix-signature", SVIX_SIG),
        ]);
        let req = request("POST", "https://hub.example/resend", &h, SVIX_BODY);
        let got = verify(
            &Scheme::StandardWebhooks,
            secret.as_bytes(),
            &req,
            &Policy::at(SVIX_TS * 1000),
        );
        assert!(matches!(got, Err(VerifyError::BadSecret(_))), "{got:?}");
    }
    let h = headers(&[]);
    let req = request("POST", "https://hub.example/resend", &h, SVIX_BODY);
    assert!(matches!(
        verify(
            &Scheme::StandardWebhooks,
            &[0xff, 0xfe],
            &req,
            &Policy::at(0)
        ),
        Err(VerifyError::BadSecret(_))
    ));
}

#[test]
fn svix_hostile_timestamps() {
    for ts in [
        "",
        "-1",
        "1e9",
        " 1614265330x",
        "99999999999999999999999",
        "1614265330.5",
    ] {
        let h = headers(&[
            ("webhook-id", SVIX_ID),
            ("webhook-timestamp", ts),
            ("webhook-signature", SVIX_SIG),
        ]);
        let req = request("POST", "https://hub.example/resend", &h, SVIX_BODY);
        let got = verify(
            &Scheme::StandardWebhooks,
            SVIX_SECRET.as_bytes(),
            &req,
            &Policy::at(SVIX_TS * 1000),
        );
        assert!(
            matches!(got, Err(VerifyError::Malformed(_))),
            "{ts:?}: {got:?}"
        );
    }
}

// ---------------------------------------------------------------- Twilio

const TWILIO_TOKEN: &[u8] = b"12345";
const TWILIO_URL: &str = "https://mycompany.com/myapp.php?foo=1&bar=2";
const TWILIO_SIG: &str = "0/KCTR6DLpKmkAf8muzZqo1nDgQ=";

fn twilio_params() -> Vec<(String, String)> {
    pairs(&[
        ("CallSid", "CA1234567890ABCDE"),
        ("Caller", "+12349013030"),
        ("Digits", "1234"),
        ("From", "+12349013030"),
        ("To", "+18005551212"),
    ])
}

fn twilio(method: &str, url: &str, sig: &str, body: &[u8]) -> Result<(), VerifyError> {
    let h = headers(&[("x-twilio-signature", sig)]);
    verify(
        &Scheme::Twilio,
        TWILIO_TOKEN,
        &request(method, url, &h, body),
        &Policy::at(0),
    )
}

#[test]
fn twilio_known_answer() {
    let params = twilio_params();
    assert_eq!(sign_twilio(TWILIO_TOKEN, TWILIO_URL, &params), TWILIO_SIG);
    // Param order does not matter to signing.
    let mut reversed = params.clone();
    reversed.reverse();
    assert_eq!(sign_twilio(TWILIO_TOKEN, TWILIO_URL, &reversed), TWILIO_SIG);
    // The form body, in a non-sorted order, with `+` percent-encoded.
    let body = form(&reversed);
    assert!(String::from_utf8_lossy(&body).contains("%2B1234"));
    assert_eq!(twilio("POST", TWILIO_URL, TWILIO_SIG, &body), Ok(()));
}

#[test]
fn twilio_rejects_tampering() {
    let mut params = twilio_params();
    params[2].1 = "9999".into();
    assert_eq!(
        twilio("POST", TWILIO_URL, TWILIO_SIG, &form(&params)),
        Err(VerifyError::Mismatch)
    );
    let body = form(&twilio_params());
    assert_eq!(
        twilio(
            "POST",
            "https://mycompany.com/myapp.php?foo=1&bar=3",
            TWILIO_SIG,
            &body
        ),
        Err(VerifyError::Mismatch)
    );
    let h = headers(&[]);
    let req = request("POST", TWILIO_URL, &h, &body);
    assert_eq!(
        verify(&Scheme::Twilio, TWILIO_TOKEN, &req, &Policy::at(0)),
        Err(VerifyError::Missing("x-twilio-signature header".into()))
    );
}

#[test]
fn twilio_repeated_params_sort_by_value() {
    let url = "https://hub.example/twilio";
    let params = pairs(&[("MediaUrl", "b"), ("Body", "hi"), ("MediaUrl", "a")]);
    let sig = sign_twilio(TWILIO_TOKEN, url, &params);
    // Same as signing the manually sorted concatenation.
    let sorted = pairs(&[("Body", "hi"), ("MediaUrl", "a"), ("MediaUrl", "b")]);
    assert_eq!(sign_twilio(TWILIO_TOKEN, url, &sorted), sig);
    assert_eq!(twilio("POST", url, &sig, &form(&params)), Ok(()));
}

#[test]
fn twilio_default_port_variants() {
    let body = form(&twilio_params());
    let with_port = "https://mycompany.com:443/myapp.php?foo=1&bar=2";
    // Signed without a port, received with one.
    assert_eq!(twilio("POST", with_port, TWILIO_SIG, &body), Ok(()));
    // Signed with a port, received without one.
    let sig = sign_twilio(TWILIO_TOKEN, with_port, &twilio_params());
    assert_ne!(sig, TWILIO_SIG);
    assert_eq!(twilio("POST", TWILIO_URL, &sig, &body), Ok(()));
    assert_eq!(twilio("POST", with_port, &sig, &body), Ok(()));
    // A different host is not a port variant.
    assert_eq!(
        twilio(
            "POST",
            "https://mycompany.org/myapp.php?foo=1&bar=2",
            &sig,
            &body
        ),
        Err(VerifyError::Mismatch)
    );
}

#[test]
fn twilio_json_body_sha256() {
    let body = br#"{"MessageSid":"SM123","MessageStatus":"delivered"}"#;
    let hash = hex::encode(common::sha256(&[body]));
    let url = format!("https://hub.example/twilio?bodySHA256={hash}");
    let sig = sign_twilio(TWILIO_TOKEN, &url, &[]);
    assert_eq!(twilio("POST", &url, &sig, body), Ok(()));
    // The body changed: the URL (and so the signature) still matches, the hash does not.
    let changed = br#"{"MessageSid":"SM123","MessageStatus":"failed"}"#;
    assert_eq!(
        twilio("POST", &url, &sig, changed),
        Err(VerifyError::Mismatch)
    );
    // An attacker who also swaps the hash breaks the URL signature.
    let forged_url = format!(
        "https://hub.example/twilio?bodySHA256={}",
        hex::encode(common::sha256(&[changed]))
    );
    assert_eq!(
        twilio("POST", &forged_url, &sig, changed),
        Err(VerifyError::Mismatch)
    );
    // A garbage hash is malformed.
    for bad in ["zz", "", "abcd"] {
        let url = format!("https://hub.example/twilio?bodySHA256={bad}");
        let sig = sign_twilio(TWILIO_TOKEN, &url, &[]);
        assert!(matches!(
            twilio("POST", &url, &sig, body),
            Err(VerifyError::Malformed(_))
        ));
    }
}

#[test]
fn twilio_get_signs_only_the_url() {
    let url = "https://hub.example/twilio?From=%2B1555&Body=hi";
    let sig = sign_twilio(TWILIO_TOKEN, url, &[]);
    assert_eq!(twilio("GET", url, &sig, b""), Ok(()));
}

#[test]
fn twilio_hostile_inputs() {
    for sig in ["", "!!!", "0/KCTR6DLpKmkAf8muzZqo1nDgQ=\u{0}", "é"] {
        let got = twilio("POST", TWILIO_URL, sig, b"a=b");
        assert!(
            matches!(got, Err(VerifyError::Malformed(_))),
            "{sig:?}: {got:?}"
        );
    }
    for url in [
        "",
        "://",
        "https://",
        "https://@",
        "https://[",
        "https://[::1",
        "https://h:99999999999999999999/",
        "https://é:é/é?é#é",
        "http://a?bodySHA256",
        "%%%",
    ] {
        for body in [&b""[..], &[0xff, 0x00, b'=', b'&', b'%'][..], b"a=%zz&&=&b"] {
            let got = twilio("POST", url, TWILIO_SIG, body);
            assert!(
                matches!(got, Err(VerifyError::Mismatch | VerifyError::Malformed(_))),
                "{url:?}: {got:?}"
            );
        }
    }
}

// ---------------------------------------------------------------- HubSpot

const HUBSPOT_SECRET: &[u8] = b"yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy";
const HUBSPOT_BODY: &[u8] = br#"[{"eventId":1,"subscriptionId":12345,"portalId":62515,"occurredAt":1564113600000,"subscriptionType":"contact.creation","attemptNumber":0,"objectId":123,"changeSource":"CRM","changeFlag":"NEW","appId":54321}]"#;
const HUBSPOT_V1: &str = "232db2615f3d666fe21a8ec971ac7b5402d33b9a925784df3ca654d05f4817de";
const HUBSPOT_V2: &str = "eee2dddcc73c94d699f5e395f4b9d454a069a6855fbfa152e91e88823087200e";

fn hubspot(
    method: &str,
    url: &str,
    h: &[(&str, &str)],
    body: &[u8],
    now_ms: u64,
) -> Result<(), VerifyError> {
    let h = headers(h);
    verify(
        &Scheme::HubSpot,
        HUBSPOT_SECRET,
        &request(method, url, &h, body),
        &Policy::at(now_ms),
    )
}

#[test]
fn hubspot_v1_known_answer() {
    assert_eq!(sign_hubspot_v1(HUBSPOT_SECRET, HUBSPOT_BODY), HUBSPOT_V1);
    let url = "https://hub.example/hubspot";
    let sig = [("x-hubspot-signature", HUBSPOT_V1)];
    assert_eq!(hubspot("POST", url, &sig, HUBSPOT_BODY, 0), Ok(()));
    let explicit = [
        ("x-hubspot-signature", HUBSPOT_V1),
        ("x-hubspot-signature-version", "v1"),
    ];
    assert_eq!(hubspot("POST", url, &explicit, HUBSPOT_BODY, 0), Ok(()));
    assert_eq!(
        hubspot("POST", url, &sig, &HUBSPOT_BODY[1..], 0),
        Err(VerifyError::Mismatch)
    );
}

#[test]
fn hubspot_v2_known_answer() {
    let url = "https://www.example.com/webhook_uri";
    assert_eq!(sign_hubspot_v2(HUBSPOT_SECRET, "GET", url, b""), HUBSPOT_V2);
    let sig = [
        ("x-hubspot-signature", HUBSPOT_V2),
        ("x-hubspot-signature-version", "v2"),
    ];
    assert_eq!(hubspot("GET", url, &sig, b"", 0), Ok(()));
    assert_eq!(
        hubspot("POST", url, &sig, b"", 0),
        Err(VerifyError::Mismatch)
    );
    assert_eq!(
        hubspot("GET", "https://www.example.com/other", &sig, b"", 0),
        Err(VerifyError::Mismatch)
    );
}

#[test]
fn hubspot_v3_round_trip_and_window() {
    let url = "https://hub.example/hubspot?tenant=acme";
    let ts: u64 = 1_750_000_000_000;
    let sig = sign_hubspot_v3(HUBSPOT_SECRET, "POST", url, HUBSPOT_BODY, ts);
    let ts_text = ts.to_string();
    let h = [
        ("x-hubspot-signature-v3", sig.as_str()),
        ("x-hubspot-request-timestamp", ts_text.as_str()),
        // A stale legacy signature alongside is ignored: v3 wins.
        ("x-hubspot-signature", "00"),
    ];
    assert_eq!(hubspot("POST", url, &h, HUBSPOT_BODY, ts + 1_000), Ok(()));
    assert_eq!(
        hubspot("POST", url, &h, &HUBSPOT_BODY[1..], ts),
        Err(VerifyError::Mismatch)
    );
    assert_eq!(
        hubspot("PUT", url, &h, HUBSPOT_BODY, ts),
        Err(VerifyError::Mismatch)
    );
    assert_eq!(
        hubspot("POST", url, &h, HUBSPOT_BODY, ts + 301_000),
        Err(VerifyError::Stale {
            age_secs: 301,
            tolerance_secs: 300
        })
    );
    assert_eq!(
        hubspot("POST", url, &h, HUBSPOT_BODY, ts - 600_000),
        Err(VerifyError::Stale {
            age_secs: -600,
            tolerance_secs: 300
        })
    );
    // The timestamp is signed: moving it breaks the signature.
    let later = (ts + 1).to_string();
    let moved = [
        ("x-hubspot-signature-v3", sig.as_str()),
        ("x-hubspot-request-timestamp", later.as_str()),
    ];
    assert_eq!(
        hubspot("POST", url, &moved, HUBSPOT_BODY, ts),
        Err(VerifyError::Mismatch)
    );
}

#[test]
fn hubspot_v3_decoded_uri() {
    let received = "https://hub.example/hubspot?email=a%40b.com&q=%28x%29%20y";
    let signed = "https://hub.example/hubspot?email=a@b.com&q=(x)%20y";
    let ts: u64 = 1_750_000_000_000;
    let ts_text = ts.to_string();
    for uri in [received, signed] {
        let sig = sign_hubspot_v3(HUBSPOT_SECRET, "POST", uri, b"[]", ts);
        let h = [
            ("x-hubspot-signature-v3", sig.as_str()),
            ("x-hubspot-request-timestamp", ts_text.as_str()),
        ];
        assert_eq!(hubspot("POST", received, &h, b"[]", ts), Ok(()), "{uri}");
    }
}

#[test]
fn hubspot_missing_and_malformed() {
    let url = "https://hub.example/hubspot";
    assert!(matches!(
        hubspot("POST", url, &[], b"[]", 0),
        Err(VerifyError::Missing(_))
    ));
    assert!(matches!(
        hubspot("POST", url, &[("x-hubspot-signature-v3", "AAAA")], b"[]", 0),
        Err(VerifyError::Missing(_))
    ));
    for h in [
        &[("x-hubspot-signature-v3", "")][..],
        &[
            ("x-hubspot-signature-v3", "AAAA"),
            ("x-hubspot-request-timestamp", "soon"),
        ],
        &[
            ("x-hubspot-signature-v3", "AAAA"),
            ("x-hubspot-request-timestamp", "99999999999999999999999"),
        ],
        &[
            ("x-hubspot-signature-v3", "***"),
            ("x-hubspot-request-timestamp", "1"),
        ],
        &[("x-hubspot-signature", "zz")],
        &[
            ("x-hubspot-signature", HUBSPOT_V1),
            ("x-hubspot-signature-version", "v9"),
        ],
    ] {
        let got = hubspot("POST", url, h, HUBSPOT_BODY, 0);
        assert!(
            matches!(got, Err(VerifyError::Malformed(_))),
            "{h:?}: {got:?}"
        );
    }
}

// ---------------------------------------------------------------- Shared token

const TOKEN: &[u8] = b"s3cr3t-t0ken";

fn shared(location: TokenLocation, req: &Request<'_>) -> Result<(), VerifyError> {
    verify(&Scheme::SharedToken(location), TOKEN, req, &Policy::at(0))
}

#[test]
fn shared_token_header() {
    let loc = || TokenLocation::Header("x-hub-token".into());
    let h = headers(&[("X-Hub-Token", "s3cr3t-t0ken")]);
    assert_eq!(
        shared(loc(), &request("POST", "https://h/z", &h, b"{}")),
        Ok(())
    );
    for wrong in ["s3cr3t-t0kem", "s3cr3t", "s3cr3t-t0ken-and-more", ""] {
        let h = headers(&[("x-hub-token", wrong)]);
        assert_eq!(
            shared(loc(), &request("POST", "https://h/z", &h, b"{}")),
            Err(VerifyError::Mismatch)
        );
    }
    assert_eq!(
        shared(loc(), &request("POST", "https://h/z", &[], b"{}")),
        Err(VerifyError::Missing("x-hub-token header".into()))
    );
}

#[test]
fn shared_token_bearer() {
    let loc = || TokenLocation::Header("authorization".into());
    for value in [
        "Bearer s3cr3t-t0ken",
        "bearer  s3cr3t-t0ken",
        "s3cr3t-t0ken",
    ] {
        let h = headers(&[("authorization", value)]);
        assert_eq!(
            shared(loc(), &request("POST", "https://h/z", &h, b"")),
            Ok(()),
            "{value}"
        );
    }
    let h = headers(&[("authorization", "Basic s3cr3t-t0ken")]);
    assert_eq!(
        shared(loc(), &request("POST", "https://h/z", &h, b"")),
        Err(VerifyError::Mismatch)
    );
}

#[test]
fn shared_token_query() {
    let loc = || TokenLocation::Query("token".into());
    let ok = request(
        "POST",
        "https://h/z?a=1&token=s3cr3t%2Dt0ken#frag",
        &[],
        b"",
    );
    assert_eq!(shared(loc(), &ok), Ok(()));
    let wrong = request("POST", "https://h/z?token=nope", &[], b"");
    assert_eq!(shared(loc(), &wrong), Err(VerifyError::Mismatch));
    let missing = request("POST", "https://h/z?tokens=s3cr3t-t0ken", &[], b"");
    assert_eq!(
        shared(loc(), &missing),
        Err(VerifyError::Missing("token query parameter".into()))
    );
    let fragment_only = request("POST", "https://h/z#token=s3cr3t-t0ken", &[], b"");
    assert!(matches!(
        shared(loc(), &fragment_only),
        Err(VerifyError::Missing(_))
    ));
}

#[test]
fn shared_token_path() {
    let mut req = request("POST", "https://h/hooks/zapier/s3cr3t-t0ken", &[], b"");
    req.path_token = Some("s3cr3t-t0ken");
    assert_eq!(shared(TokenLocation::Path, &req), Ok(()));
    req.path_token = Some("s3cr3t-t0ke");
    assert_eq!(
        shared(TokenLocation::Path, &req),
        Err(VerifyError::Mismatch)
    );
    req.path_token = None;
    assert!(matches!(
        shared(TokenLocation::Path, &req),
        Err(VerifyError::Missing(_))
    ));
}

// ---------------------------------------------------------------- Cross-cutting

fn all_schemes() -> Vec<Scheme> {
    vec![
        Scheme::StandardWebhooks,
        Scheme::Retell,
        Scheme::Twilio,
        Scheme::HubSpot,
        Scheme::SharedToken(TokenLocation::Header("x-token".into())),
        Scheme::SharedToken(TokenLocation::Query("token".into())),
        Scheme::SharedToken(TokenLocation::Path),
    ]
}

#[test]
fn empty_secret_is_bad_for_every_scheme() {
    let h = headers(&[("x-token", "")]);
    let mut req = request("POST", "https://h/z?token=", &h, b"");
    req.path_token = Some("");
    for scheme in all_schemes() {
        assert!(
            matches!(
                verify(&scheme, b"", &req, &Policy::at(0)),
                Err(VerifyError::BadSecret(_))
            ),
            "{}",
            scheme.name()
        );
    }
}

#[test]
fn garbage_never_passes_and_never_panics() {
    let values = [
        "",
        " ",
        "v=,d=",
        "v=99999999999999999999999,d=zz",
        "v1,",
        "v1,====",
        ",",
        "=",
        "%",
        "\u{0}",
        "é\u{200b}ü",
        "v=18446744073709551615,d=00",
        "18446744073709551616",
        "-9223372036854775808",
    ];
    let header_names: Vec<&str> = HEADERS_READ.iter().copied().chain(["x-token"]).collect();
    let urls = [
        "",
        "https://",
        "https://h:443",
        "http://[::1]:/?bodySHA256=%zz",
        "é://é",
    ];
    let bodies: [&[u8]; 3] = [b"", &[0xff, 0xfe, 0xfd], b"a=%&=b&&+%2"];
    for value in values {
        let h: Vec<(String, String)> = header_names
            .iter()
            .map(|n| (n.to_string(), value.to_string()))
            .collect();
        for url in urls {
            for body in bodies {
                let mut req = request("POST", url, &h, body);
                req.path_token = Some(value);
                for scheme in all_schemes() {
                    for now_ms in [0, RETELL_TS, u64::MAX] {
                        let policy = Policy {
                            now_ms,
                            tolerance_secs: u32::MAX,
                        };
                        assert!(
                            verify(&scheme, SVIX_SECRET.as_bytes(), &req, &policy).is_err(),
                            "{} {value:?} {url:?}",
                            scheme.name()
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn parse_form_decodes() {
    assert_eq!(
        parse_form(b"a=1+2&b=%2B%41&empty=&flag&a=%E2%9C%93"),
        pairs(&[
            ("a", "1 2"),
            ("b", "+A"),
            ("empty", ""),
            ("flag", ""),
            ("a", "\u{2713}")
        ])
    );
    assert_eq!(parse_form(b""), vec![]);
    // Invalid UTF-8 and broken escapes degrade, never fail.
    assert_eq!(parse_form(&[b'k', b'=', 0xff]), pairs(&[("k", "\u{fffd}")]));
    assert_eq!(parse_form(b"k=%zz%"), pairs(&[("k", "%zz%")]));
}

#[test]
fn error_messages_are_actionable_and_leak_nothing() {
    let h = headers(&[("x-retell-signature", "v=1,d=zz")]);
    let req = request("POST", "https://h/r", &h, b"");
    let err = verify(&Scheme::Retell, b"topsecret", &req, &Policy::at(0)).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("x-retell-signature"), "{text}");
    assert!(
        !text.contains("topsecret") && !text.contains("zz"),
        "{text}"
    );
    let stale = VerifyError::Stale {
        age_secs: -42,
        tolerance_secs: 300,
    };
    assert!(stale.to_string().contains("42 s in the future"));
    let err: Box<dyn std::error::Error> = Box::new(VerifyError::Mismatch);
    assert!(err.to_string().contains("does not match"));
    assert_eq!(
        VerifyError::Missing("x-twilio-signature header".into()).to_string(),
        "missing x-twilio-signature header"
    );
}

#[test]
fn zero_tolerance_means_default() {
    assert_eq!(
        Policy::at(5).effective_tolerance_secs(),
        DEFAULT_TOLERANCE_SECS
    );
    let p = Policy {
        now_ms: 5,
        tolerance_secs: 7,
    };
    assert_eq!(p.effective_tolerance_secs(), 7);
}

mod ecdsa_p256 {
    //! SendGrid's own known answers (sendgrid-nodejs `packages/eventwebhook/src/eventwebhook.spec.js`).
    use super::super::*;

    const PUBLIC_KEY: &str = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEEDr2LjtURuePQzplybdC+u4CwrqDqBaWjcMMsTbhdbcwHBcepxo7yAQGhHPTnlvFYPAZFceEu/1FwCM/QmGUhA==";
    const SIGNATURE: &str = "MEUCIQCtIHJeH93Y+qpYeWrySphQgpNGNr/U+UyUlBkU6n7RAwIgJTz2C+8a8xonZGi6BpSzoQsbVRamr2nlxFDWYNH2j/0=";
    const TIMESTAMP: &str = "1588788367";
    const PAYLOAD: &str =
        r#"{"category":"example_payload","event":"test_event","message_id":"message_id"}"#;
    const OTHER_KEY: &str = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEqTxd43gyp8IOEto2LdIfjRQrIbsd4SXZkLW6jDutdhXSJCWHw8REntlo7aNDthvj+y7GjUuFDb/R1NGe1OPzpA==";
    const OTHER_SIGNATURE: &str = "MEUCIQCtIHJeH93Y+qpYeWrySphQgpNGNr/U+UyUlBkU6n7RAwIgJTz2C+8a8xonZGi6BpSzoQsbVRamr2nlxFDWYNH3j/0=";
    const SIG: &str = "x-twilio-email-event-webhook-signature";
    const TS: &str = "x-twilio-email-event-webhook-timestamp";

    fn scheme() -> Scheme {
        Scheme::EcdsaP256 {
            signature: SIG.into(),
            timestamp: TS.into(),
        }
    }

    fn check(key: &str, sig: &str, ts: &str, body: &str, now_s: u64) -> Result<(), VerifyError> {
        let headers = vec![
            (SIG.to_string(), sig.to_string()),
            (TS.to_string(), ts.to_string()),
        ];
        let req = Request {
            method: "POST",
            url: "https://hub.example/hooks/t/sendgrid",
            headers: &headers,
            body: body.as_bytes(),
            path_token: None,
        };
        verify(&scheme(), key.as_bytes(), &req, &Policy::at(now_s * 1000))
    }

    #[test]
    fn sendgrids_vector_verifies() {
        assert_eq!(
            check(PUBLIC_KEY, SIGNATURE, TIMESTAMP, PAYLOAD, 1_588_788_367),
            Ok(())
        );
    }

    #[test]
    fn sendgrids_must_fail_cases_fail() {
        let now = 1_588_788_367;
        assert_eq!(
            check(OTHER_KEY, SIGNATURE, TIMESTAMP, PAYLOAD, now),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            check(PUBLIC_KEY, SIGNATURE, TIMESTAMP, "payload", now),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            check(PUBLIC_KEY, OTHER_SIGNATURE, TIMESTAMP, PAYLOAD, now),
            Err(VerifyError::Mismatch)
        );
        assert!(check(PUBLIC_KEY, SIGNATURE, "timestamp", PAYLOAD, now).is_err());
        // A re-serialized body (a space added) no longer verifies: raw bytes only.
        let spaced = PAYLOAD.replace(',', ", ");
        assert_eq!(
            check(PUBLIC_KEY, SIGNATURE, TIMESTAMP, &spaced, now),
            Err(VerifyError::Mismatch)
        );
    }

    #[test]
    fn stale_truncated_and_unparsable_inputs_are_refused_with_what_was_wrong() {
        let now = 1_588_788_367;
        assert!(matches!(
            check(PUBLIC_KEY, SIGNATURE, TIMESTAMP, PAYLOAD, now + 3600),
            Err(VerifyError::Stale { .. })
        ));
        let truncated = &SIGNATURE[..40];
        assert!(matches!(
            check(PUBLIC_KEY, truncated, TIMESTAMP, PAYLOAD, now),
            Err(VerifyError::Malformed(_))
        ));
        assert!(matches!(
            check("not a key", SIGNATURE, TIMESTAMP, PAYLOAD, now),
            Err(VerifyError::BadSecret(_))
        ));
        assert!(matches!(
            check(&PUBLIC_KEY[..60], SIGNATURE, TIMESTAMP, PAYLOAD, now),
            Err(VerifyError::BadSecret(_))
        ));
        let pem = format!("-----BEGIN PUBLIC KEY-----\n{PUBLIC_KEY}\n-----END PUBLIC KEY-----\n");
        assert_eq!(
            check(&pem, SIGNATURE, TIMESTAMP, PAYLOAD, now),
            Ok(()),
            "PEM armour is tolerated"
        );
    }

    #[test]
    fn a_key_of_our_own_signs_what_verifies() {
        let private = [7u8; 32];
        let public = ecdsa_p256_public_key(&private).unwrap();
        assert!(
            public.starts_with("MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE"),
            "{public}"
        );
        let sig = sign_ecdsa_p256(&private, "1700000000", b"[]").unwrap();
        assert_eq!(
            check(&public, &sig, "1700000000", "[]", 1_700_000_000),
            Ok(())
        );
    }
}

mod basic {
    use super::super::*;

    fn check(secret: &[u8], authorization: Option<&str>) -> Result<(), VerifyError> {
        let headers: Vec<(String, String)> = authorization
            .map(|a| vec![("authorization".to_string(), a.to_string())])
            .unwrap_or_default();
        let req = Request {
            method: "POST",
            url: "https://hub.example/hooks/t/postmark",
            headers: &headers,
            body: b"{}",
            path_token: None,
        };
        verify(&Scheme::Basic, secret, &req, &Policy::at(0))
    }

    #[test]
    fn the_right_credentials_pass_and_wrong_or_missing_ones_do_not() {
        let secret = b"postmark:s3cr3t-pw";
        assert_eq!(check(secret, Some(&basic_authorization(secret))), Ok(()));
        assert_eq!(
            check(secret, Some("basic cG9zdG1hcms6czNjcjN0LXB3")),
            Ok(())
        );
        assert_eq!(
            check(secret, Some(&basic_authorization(b"postmark:wrong"))),
            Err(VerifyError::Mismatch)
        );
        assert!(matches!(check(secret, None), Err(VerifyError::Missing(_))));
        assert!(matches!(
            check(secret, Some("Bearer abc")),
            Err(VerifyError::Malformed(_))
        ));
        assert!(matches!(
            check(secret, Some("Basic !!!")),
            Err(VerifyError::Malformed(_))
        ));
    }
}

// ---------------------------------------------------------------- XML token (Salesforce)

const OUTBOUND_NS: &str = "http://soap.sforce.com/2005/09/outbound";

fn outbound_message(org: &str) -> String {
    format!(
        r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body><notifications xmlns="{OUTBOUND_NS}"><OrganizationId>{org}</OrganizationId><Notification><Id>04l1</Id></Notification></notifications></soapenv:Body></soapenv:Envelope>"#
    )
}

fn xml_check(expected: &str) -> Scheme {
    Scheme::XmlToken(XmlToken {
        token: TokenLocation::Path,
        namespace: OUTBOUND_NS.into(),
        element: "OrganizationId".into(),
        expected: expected.into(),
    })
}

fn xml_verify(expected: &str, token: &str, body: &[u8]) -> Result<(), VerifyError> {
    let req = Request {
        path_token: Some(token),
        ..request(
            "POST",
            "https://hub.example/hooks/t/salesforce/outbound/",
            &[],
            body,
        )
    };
    verify(&xml_check(expected), b"tok", &req, &Policy::at(0))
}

#[test]
fn xml_token_needs_the_token_and_the_org() {
    let org = "00D000000000001AAA";
    let body = outbound_message(org);
    assert_eq!(xml_verify(org, "tok", body.as_bytes()), Ok(()));
    assert_eq!(
        xml_verify(org, "other", body.as_bytes()),
        Err(VerifyError::Mismatch)
    );
    assert_eq!(
        xml_verify("00D000000000002AAA", "tok", body.as_bytes()),
        Err(VerifyError::Mismatch)
    );
    // The element in another namespace (or none) is not the org id.
    let unqualified = body.replace(&format!(" xmlns=\"{OUTBOUND_NS}\""), "");
    assert!(matches!(
        xml_verify(org, "tok", unqualified.as_bytes()),
        Err(VerifyError::Missing(_))
    ));
    assert!(matches!(
        xml_verify("", "tok", body.as_bytes()),
        Err(VerifyError::BadSecret(_))
    ));
}

#[test]
fn xml_token_reads_the_body_only_for_a_caller_with_the_token() {
    let bomb = br#"<!DOCTYPE a [<!ENTITY x "xx">]><a>&x;</a>"#;
    // Without the token: refused as a bad token, the body unread.
    assert_eq!(xml_verify("org", "wrong", bomb), Err(VerifyError::Mismatch));
    for bad in [&bomb[..], b"<a><b></a>", b"not xml", b""] {
        let e = xml_verify("org", "tok", bad).unwrap_err();
        assert!(matches!(e, VerifyError::BadBody(_)), "{e:?}");
    }
}

#[test]
fn xml_token_signs_as_its_token() {
    let body = outbound_message("org1");
    let signed = sign(
        &xml_check("org1"),
        b"t/k",
        &Unsigned {
            method: "POST",
            url: "https://hub.example/hooks/t/salesforce/outbound",
            body: body.as_bytes(),
            now_ms: 0,
        },
    )
    .unwrap();
    assert_eq!(
        signed.url,
        "https://hub.example/hooks/t/salesforce/outbound/t%2Fk"
    );
    assert!(signed.headers.is_empty());
}

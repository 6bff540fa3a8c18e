//! Every signature scheme against arbitrary requests: headers, URL, body, method, path token,
//! clock and tolerance. Verification must end in `Ok` or a `VerifyError` (never a panic), and
//! the error's message must not echo the secret.
//!
//! Half the inputs are first signed correctly for their scheme (then possibly altered by the
//! fuzzer's choice of clock and extra headers), so the fuzzer also reaches the code past the
//! signature check: timestamp windows, header lists, URL variants.

#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use plugin_sdk::schemes::{self, Policy, Request, Scheme, TokenLocation};

/// Header names beyond the ones the schemes read (`schemes::HEADERS_READ`): the shared token's
/// header in these inputs, and one no scheme reads. A fuzzed header is one of the two lists' most
/// of the time, so the parsers behind them are reached without the fuzzer guessing names.
const EXTRA_NAMES: &[&str] = &["x-token", "content-type"];

fn known_name(i: u8) -> &'static str {
    let read = plugin_sdk::schemes::HEADERS_READ;
    let i = usize::from(i) % (read.len() + EXTRA_NAMES.len());
    read.get(i)
        .copied()
        .unwrap_or_else(|| EXTRA_NAMES[i - read.len()])
}

#[derive(Arbitrary, Debug)]
enum Name {
    Known(u8),
    Other(String),
}

#[derive(Arbitrary, Debug)]
struct Input {
    scheme: u8,
    secret: Vec<u8>,
    method: String,
    url: String,
    headers: Vec<(Name, String)>,
    body: Vec<u8>,
    path_token: Option<String>,
    now_ms: u64,
    signed_at_ms: u64,
    tolerance_secs: u32,
    sign: bool,
}

fn scheme(n: u8) -> Scheme {
    match n % 14 {
        0 => Scheme::StandardWebhooks,
        1 => Scheme::Retell,
        2 => Scheme::Twilio,
        3 => Scheme::HubSpot,
        4 => Scheme::SharedToken(TokenLocation::Header("x-token".into())),
        5 => Scheme::SharedToken(TokenLocation::Header("authorization".into())),
        6 => Scheme::SharedToken(TokenLocation::Query("token".into())),
        7 => Scheme::SharedToken(TokenLocation::Path),
        8 => Scheme::EcdsaP256 {
            signature: "x-twilio-email-event-webhook-signature".into(),
            timestamp: "x-twilio-email-event-webhook-timestamp".into(),
        },
        9 => Scheme::Basic,
        // Salesforce's outbound messages: a path token, then the XML body read.
        12 => Scheme::XmlToken(schemes::XmlToken {
            token: TokenLocation::Path,
            namespace: "http://soap.sforce.com/2005/09/outbound".into(),
            element: "OrganizationId".into(),
            expected: "00D000000000001AAA".into(),
        }),
        // Declared HMACs: Stripe's shape (timestamp and MACs as parts), Slack's (timestamp in
        // its own header, a prefix), Shopify's (base64 of the body).
        10 => Scheme::Hmac(schemes::Hmac {
            header: "x-token".into(),
            algorithm: schemes::Algorithm::Sha256,
            encoding: schemes::Encoding::Hex,
            part: Some("v1".into()),
            prefix: String::new(),
            timestamp: schemes::Timestamp::Part("t".into()),
            message: "{timestamp}.{body}".into(),
        }),
        11 => Scheme::Hmac(schemes::Hmac {
            header: "x-token".into(),
            algorithm: schemes::Algorithm::Sha256,
            encoding: schemes::Encoding::Hex,
            part: None,
            prefix: "v0=".into(),
            timestamp: schemes::Timestamp::Header("content-type".into()),
            message: "v0:{timestamp}:{body}".into(),
        }),
        _ => Scheme::Hmac(schemes::Hmac {
            header: "x-token".into(),
            algorithm: schemes::Algorithm::Sha512,
            encoding: schemes::Encoding::Base64,
            part: None,
            prefix: String::new(),
            timestamp: schemes::Timestamp::None,
            message: "{body}".into(),
        }),
    }
}

/// The headers a correct signature for `scheme` would add.
fn signature(scheme: &Scheme, input: &Input) -> Vec<(String, String)> {
    let key = &input.secret;
    let ms = input.signed_at_ms;
    match scheme {
        Scheme::StandardWebhooks => {
            let secret = String::from_utf8_lossy(key);
            match schemes::sign_standard_webhooks(&secret, "msg_fuzz", ms / 1000, &input.body) {
                Ok(sig) => vec![
                    ("webhook-id".into(), "msg_fuzz".into()),
                    ("webhook-timestamp".into(), (ms / 1000).to_string()),
                    ("webhook-signature".into(), sig),
                ],
                Err(_) => Vec::new(),
            }
        }
        Scheme::Retell => vec![(
            "x-retell-signature".into(),
            schemes::sign_retell(key, &input.body, ms),
        )],
        Scheme::Twilio => {
            let params = schemes::parse_form(&input.body);
            vec![(
                "x-twilio-signature".into(),
                schemes::sign_twilio(key, &input.url, &params),
            )]
        }
        Scheme::HubSpot => vec![
            (
                "x-hubspot-signature-v3".into(),
                schemes::sign_hubspot_v3(key, &input.method, &input.url, &input.body, ms),
            ),
            ("x-hubspot-request-timestamp".into(), ms.to_string()),
        ],
        Scheme::SharedToken(_) | Scheme::XmlToken(_) => Vec::new(),
        Scheme::Hmac(declared) => schemes::sign_hmac(declared, key, &input.body, ms),
        Scheme::Basic => vec![("authorization".into(), schemes::basic_authorization(key))],
        Scheme::EcdsaP256 {
            signature,
            timestamp,
        } => {
            let ts = (ms / 1000).to_string();
            match schemes::sign_ecdsa_p256(&SIGNING_KEY, &ts, &input.body) {
                Some(sig) => vec![(signature.clone(), sig), (timestamp.clone(), ts)],
                None => Vec::new(),
            }
        }
    }
}

/// The private key a signed ECDSA input is signed with; its public key is then the secret.
const SIGNING_KEY: [u8; 32] = [7; 32];

fuzz_target!(|input: Input| {
    let scheme = scheme(input.scheme);
    let mut headers = if input.sign {
        signature(&scheme, &input)
    } else {
        Vec::new()
    };
    headers.extend(input.headers.iter().map(|(name, value)| {
        let name = match name {
            Name::Known(i) => known_name(*i).to_string(),
            Name::Other(n) => n.clone(),
        };
        (name, value.clone())
    }));
    // A signed XML-token input carries the secret as its path token, so the body is read.
    let signed_token = String::from_utf8_lossy(&input.secret).into_owned();
    let path_token = match (&scheme, input.sign) {
        (Scheme::XmlToken(_), true) => Some(signed_token.as_str()),
        _ => input.path_token.as_deref(),
    };
    let req = Request {
        method: &input.method,
        url: &input.url,
        headers: &headers,
        body: &input.body,
        path_token,
    };
    let policy = Policy {
        now_ms: input.now_ms,
        tolerance_secs: input.tolerance_secs,
    };
    // A signed ECDSA input verifies with the signing key's public key; otherwise the
    // fuzzer's bytes are the secret (a key that does not parse, most often).
    let public = match (&scheme, input.sign) {
        (Scheme::EcdsaP256 { .. }, true) => schemes::ecdsa_p256_public_key(&SIGNING_KEY),
        _ => None,
    };
    let secret = public.as_ref().map_or(&input.secret[..], |p| p.as_bytes());
    if let Err(e) = schemes::verify(&scheme, secret, &req, &policy) {
        let message = e.to_string();
        if let Ok(secret) = std::str::from_utf8(secret) {
            // Short secrets may occur in the fixed wording by chance, and an XML error may
            // quote the body, which is not secret even when it holds the secret's bytes.
            let in_body = input.body.windows(secret.len().max(1)).any(|w| w == secret.as_bytes());
            assert!(
                secret.len() < 12 || in_body || !message.contains(secret),
                "the error echoes the secret: {message}"
            );
        }
    }
});

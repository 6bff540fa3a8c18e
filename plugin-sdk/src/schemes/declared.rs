//! Declared HMAC schemes: the shapes most providers sign webhooks in, described instead of
//! written. One header carries the MAC, whole (`x-shopify-hmac-sha256: <base64>`), after a
//! prefix (`x-hub-signature-256: sha256=<hex>`), or as a part of a `k=v,k=v` list with the
//! timestamp beside it (`stripe-signature: t=<unix s>,v1=<hex>`, Calendly's the same); the
//! timestamp may also have a header of its own (Slack's `x-slack-request-timestamp`). The signed
//! message is a template over the timestamp as sent and the raw body (`{timestamp}.{body}`,
//! `v0:{timestamp}:{body}`, `{body}`). Several MAC parts in one header (a provider rotating its
//! secret) are each tried.

use super::common::{b64_decode, b64_encode, check_window, ct_eq, parse_digits, required_header};
use super::{Policy, Request, VerifyError};

/// A declared HMAC scheme.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hmac {
    /// The header carrying the MAC (any case).
    pub header: String,
    /// The hash the MAC is made with.
    pub algorithm: Algorithm,
    /// How the MAC is written.
    pub encoding: Encoding,
    /// The part of a `k=v,k=v` header value holding the MAC (`v1`); `None`: the whole value.
    pub part: Option<String>,
    /// Text before the MAC in the value or part (`sha256=`, `v0=`); may be empty.
    pub prefix: String,
    /// Where the signed timestamp (unix seconds) is, if the provider signs one.
    pub timestamp: Timestamp,
    /// The signed message: `{timestamp}` (as sent) and `{body}` (the raw bytes) in a template.
    pub message: String,
}

/// A hash for a declared HMAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// HMAC-SHA1.
    Sha1,
    /// HMAC-SHA256.
    Sha256,
    /// HMAC-SHA512.
    Sha512,
}

/// How a MAC is written in its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// Lower- or upper-case hex.
    Hex,
    /// Standard base64, padding optional.
    Base64,
}

/// Where a declared HMAC's timestamp is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Timestamp {
    /// Nowhere: the MAC covers no time (no replay window).
    None,
    /// A part of the signature header (`t`).
    Part(String),
    /// A header of its own.
    Header(String),
}

impl Hmac {
    /// What is wrong with the declaration, if anything: checked where a connector is loaded, so
    /// a route cannot declare a scheme that could never verify.
    ///
    /// # Errors
    /// A sentence naming the field.
    pub fn check(&self) -> Result<(), String> {
        if self.header.trim().is_empty() {
            return Err("`header` is empty".into());
        }
        if !self.message.contains("{body}") {
            return Err("`message` must contain `{body}`: a MAC that does not cover the body proves nothing about it".into());
        }
        let rest = self
            .message
            .replace("{body}", "")
            .replace("{timestamp}", "");
        if rest.contains('{') || rest.contains('}') {
            return Err("`message` may only use `{timestamp}` and `{body}`".into());
        }
        let signs_time = self.message.contains("{timestamp}");
        match (&self.timestamp, signs_time) {
            (Timestamp::None, true) => Err("`message` uses `{timestamp}`, but `timestamp` says where none is".into()),
            (Timestamp::Part(_) | Timestamp::Header(_), false) => Err(
                "`timestamp` is given but `message` does not sign it: a replayed request would pass the window check".into(),
            ),
            (Timestamp::Part(_), _) if self.part.is_none() => {
                Err("a timestamp `part` needs the MAC in a `part` too (`t=...,v1=...`)".into())
            }
            _ => Ok(()),
        }
    }

    fn mac(&self, key: &[u8], timestamp: &str, body: &[u8]) -> Option<Vec<u8>> {
        let mut parts: Vec<&[u8]> = Vec::new();
        let mut rest = self.message.as_str();
        while !rest.is_empty() {
            let next = [("{body}", body), ("{timestamp}", timestamp.as_bytes())]
                .into_iter()
                .filter_map(|(p, v)| rest.find(p).map(|at| (at, p, v)))
                .min_by_key(|(at, ..)| *at);
            match next {
                Some((at, placeholder, value)) => {
                    parts.push(rest.get(..at)?.as_bytes());
                    parts.push(value);
                    rest = rest.get(at + placeholder.len()..)?;
                }
                None => {
                    parts.push(rest.as_bytes());
                    rest = "";
                }
            }
        }
        super::common::hmac_any(self.algorithm, key, &parts)
    }

    fn decode(&self, text: &str) -> Option<Vec<u8>> {
        let text = text.trim().strip_prefix(self.prefix.as_str())?;
        match self.encoding {
            Encoding::Hex => hex::decode(text).ok(),
            Encoding::Base64 => b64_decode(text),
        }
    }

    fn encode(&self, mac: &[u8]) -> String {
        let text = match self.encoding {
            Encoding::Hex => hex::encode(mac),
            Encoding::Base64 => b64_encode(mac),
        };
        format!("{}{text}", self.prefix)
    }
}

fn malformed(header: &str, what: &str) -> VerifyError {
    VerifyError::Malformed(format!("{header} header: {what}"))
}

/// The values of the parts named `name` in a `k=v,k=v` list.
fn parts<'a>(value: &'a str, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    value.split(',').filter_map(move |item| {
        let (k, v) = item.trim().split_once('=')?;
        (k.trim() == name).then_some(v.trim())
    })
}

pub(crate) fn verify(
    scheme: &Hmac,
    secret: &[u8],
    req: &Request<'_>,
    policy: &Policy,
) -> Result<(), VerifyError> {
    let header = scheme.header.as_str();
    let value = required_header(req, &[header])?;
    let candidates: Vec<&str> = match &scheme.part {
        Some(part) => parts(value, part).collect(),
        None => vec![value],
    };
    if candidates.is_empty() {
        let part = scheme.part.as_deref().unwrap_or_default();
        return Err(malformed(header, &format!("no `{part}=` part")));
    }
    let provided: Vec<Vec<u8>> = candidates.iter().filter_map(|c| scheme.decode(c)).collect();
    if provided.is_empty() {
        let how = match scheme.encoding {
            Encoding::Hex => "hex",
            Encoding::Base64 => "base64",
        };
        let after = if scheme.prefix.is_empty() {
            String::new()
        } else {
            format!(" after `{}`", scheme.prefix)
        };
        return Err(malformed(
            header,
            &format!("the signature is not {how}{after}"),
        ));
    }
    let timestamp = match &scheme.timestamp {
        Timestamp::None => None,
        Timestamp::Part(part) => Some(
            parts(value, part)
                .next()
                .ok_or_else(|| malformed(header, &format!("no `{part}=` timestamp part")))?,
        ),
        Timestamp::Header(name) => Some(required_header(req, &[name.as_str()])?),
    };
    let expected = scheme
        .mac(secret, timestamp.unwrap_or_default(), req.body)
        .ok_or_else(|| VerifyError::BadSecret("the MAC key was refused".into()))?;
    // Every candidate is compared, in constant time, whichever matches.
    let matched = provided
        .iter()
        .fold(false, |found, p| ct_eq(&expected, p) | found);
    if !matched {
        return Err(VerifyError::Mismatch);
    }
    let Some(timestamp) = timestamp else {
        return Ok(());
    };
    let secs = parse_digits(timestamp)
        .ok_or_else(|| malformed(header, "the timestamp is not unix seconds"))?;
    check_window(
        policy.now_ms / 1000,
        secs,
        1,
        policy.effective_tolerance_secs(),
    )
}

/// Signs a request in a declared HMAC scheme at `now_ms`: the headers to send.
#[must_use]
pub fn sign_hmac(scheme: &Hmac, secret: &[u8], body: &[u8], now_ms: u64) -> Vec<(String, String)> {
    let ts = (now_ms / 1000).to_string();
    let signed_ts = if matches!(scheme.timestamp, Timestamp::None) {
        ""
    } else {
        ts.as_str()
    };
    let mac = scheme
        .mac(secret, signed_ts, body)
        .map(|m| scheme.encode(&m))
        .unwrap_or_default();
    let value = match (&scheme.part, &scheme.timestamp) {
        (Some(part), Timestamp::Part(t)) => format!("{t}={ts},{part}={mac}"),
        (Some(part), _) => format!("{part}={mac}"),
        (None, _) => mac,
    };
    let mut headers = vec![(scheme.header.to_ascii_lowercase(), value)];
    if let Timestamp::Header(name) = &scheme.timestamp {
        headers.push((name.to_ascii_lowercase(), ts));
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::super::{Scheme, verify as verify_any};
    use super::*;

    fn request<'a>(headers: &'a [(String, String)], body: &'a [u8]) -> Request<'a> {
        Request {
            method: "POST",
            url: "https://hub.example/hooks/t/c",
            headers,
            body,
            path_token: None,
        }
    }

    fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn slack() -> Hmac {
        Hmac {
            header: "X-Slack-Signature".into(),
            algorithm: Algorithm::Sha256,
            encoding: Encoding::Hex,
            part: None,
            prefix: "v0=".into(),
            timestamp: Timestamp::Header("X-Slack-Request-Timestamp".into()),
            message: "v0:{timestamp}:{body}".into(),
        }
    }

    fn stripe_like(header: &str) -> Hmac {
        Hmac {
            header: header.into(),
            algorithm: Algorithm::Sha256,
            encoding: Encoding::Hex,
            part: Some("v1".into()),
            prefix: String::new(),
            timestamp: Timestamp::Part("t".into()),
            message: "{timestamp}.{body}".into(),
        }
    }

    fn github() -> Hmac {
        Hmac {
            header: "x-hub-signature-256".into(),
            algorithm: Algorithm::Sha256,
            encoding: Encoding::Hex,
            part: None,
            prefix: "sha256=".into(),
            timestamp: Timestamp::None,
            message: "{body}".into(),
        }
    }

    /// Slack's worked example (api.slack.com, "Verifying requests from Slack").
    #[test]
    fn slacks_published_example_verifies() {
        let body = b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
        let h = headers(&[
            ("x-slack-request-timestamp", "1531420618"),
            (
                "x-slack-signature",
                "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503",
            ),
        ]);
        let secret = b"8f742231b10e8888abcd99yyyzzz85a5";
        let at = Policy::at(1_531_420_618_000 + 60_000);
        let scheme = Scheme::Hmac(slack());
        assert_eq!(verify_any(&scheme, secret, &request(&h, body), &at), Ok(()));
        // An hour later the same request is a replay.
        let late = Policy::at(1_531_420_618_000 + 3_600_000);
        assert!(matches!(
            verify_any(&scheme, secret, &request(&h, body), &late),
            Err(VerifyError::Stale { age_secs: 3600, .. })
        ));
        // The signer gives the same header.
        let signed = sign_hmac(&slack(), secret, body, 1_531_420_618_000);
        assert!(signed.contains(&(
            "x-slack-signature".into(),
            "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503".into()
        )));
    }

    /// GitHub's example (docs.github.com, "Validating webhook deliveries").
    #[test]
    fn githubs_published_example_verifies() {
        let h = headers(&[(
            "x-hub-signature-256",
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
        )]);
        let scheme = Scheme::Hmac(github());
        let at = Policy::at(1_700_000_000_000);
        let secret = b"It's a Secret to Everybody";
        assert_eq!(
            verify_any(&scheme, secret, &request(&h, b"Hello, World!"), &at),
            Ok(())
        );
        assert_eq!(
            verify_any(&scheme, secret, &request(&h, b"Hello, World?"), &at),
            Err(VerifyError::Mismatch)
        );
    }

    #[test]
    fn a_timestamped_signature_round_trips_and_refuses_tampering_forgery_and_replay() {
        let scheme = stripe_like("Calendly-Webhook-Signature");
        let body = br#"{"event":"invitee.created"}"#;
        let now = 1_700_000_000_000;
        let signed = sign_hmac(&scheme, b"key", body, now);
        assert_eq!(signed[0].0, "calendly-webhook-signature");
        assert!(signed[0].1.starts_with("t=1700000000,v1="), "{signed:?}");
        let any = Scheme::Hmac(scheme.clone());
        let at = Policy::at(now + 1_000);
        assert_eq!(
            verify_any(&any, b"key", &request(&signed, body), &at),
            Ok(())
        );
        assert_eq!(
            verify_any(&any, b"other", &request(&signed, body), &at),
            Err(VerifyError::Mismatch),
            "forged"
        );
        assert_eq!(
            verify_any(&any, b"key", &request(&signed, b"{}"), &at),
            Err(VerifyError::Mismatch),
            "tampered"
        );
        let later = Policy::at(now + 301_000);
        assert!(matches!(
            verify_any(&any, b"key", &request(&signed, body), &later),
            Err(VerifyError::Stale { .. })
        ));
        // A provider rotating its secret sends two `v1` parts: either verifies.
        let old = sign_hmac(&scheme, b"old-key", body, now)[0].1.clone();
        let new = sign_hmac(&scheme, b"key", body, now)[0].1.clone();
        let both = format!("{old},{}", new.split_once(',').unwrap().1);
        let h = headers(&[("calendly-webhook-signature", &both)]);
        assert_eq!(verify_any(&any, b"key", &request(&h, body), &at), Ok(()));
        assert_eq!(
            verify_any(&any, b"old-key", &request(&h, body), &at),
            Ok(())
        );
    }

    #[test]
    fn a_malformed_header_says_what_is_wrong_without_echoing_it() {
        let any = Scheme::Hmac(stripe_like("x-signature"));
        let at = Policy::at(1_700_000_000_000);
        let check = |value: &str| {
            let h = headers(&[("x-signature", value)]);
            verify_any(&any, b"key", &request(&h, b"{}"), &at)
                .unwrap_err()
                .to_string()
        };
        assert!(check("t=1700000000").contains("no `v1=` part"));
        assert!(check("t=1700000000,v1=zz-secret-zz").contains("not hex"));
        assert!(!check("t=1700000000,v1=zz-secret-zz").contains("zz-secret-zz"));
        let sig = sign_hmac(
            &stripe_like("x-signature"),
            b"key",
            b"{}",
            1_700_000_000_000,
        )[0]
        .1
        .clone();
        let without_t = sig.split_once(',').unwrap().1;
        assert!(check(without_t).contains("no `t=` timestamp part"));
        let h: Vec<(String, String)> = Vec::new();
        assert_eq!(
            verify_any(&any, b"key", &request(&h, b"{}"), &at),
            Err(VerifyError::Missing("x-signature header".into()))
        );
        let shopify = Scheme::Hmac(Hmac {
            encoding: Encoding::Base64,
            prefix: String::new(),
            header: "x-shopify-hmac-sha256".into(),
            ..github()
        });
        let h = headers(&[("x-shopify-hmac-sha256", "not base64!")]);
        let e = verify_any(&shopify, b"key", &request(&h, b"{}"), &at).unwrap_err();
        assert!(e.to_string().contains("not base64"), "{e}");
    }

    #[test]
    fn a_declaration_that_could_never_verify_is_refused() {
        assert!(slack().check().is_ok() && github().check().is_ok());
        let no_body = Hmac {
            message: "{timestamp}".into(),
            ..slack()
        };
        assert!(no_body.check().unwrap_err().contains("{body}"));
        let unsigned_time = Hmac {
            message: "{body}".into(),
            ..slack()
        };
        assert!(
            unsigned_time
                .check()
                .unwrap_err()
                .contains("does not sign it")
        );
        let unknown = Hmac {
            message: "{body}{id}".into(),
            ..github()
        };
        assert!(unknown.check().unwrap_err().contains("only use"));
        let part_alone = Hmac {
            part: None,
            ..stripe_like("x")
        };
        assert!(part_alone.check().unwrap_err().contains("`part`"));
    }
}

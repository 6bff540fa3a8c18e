//! Twilio: `x-twilio-signature: base64(HMAC-SHA1(auth token, url ++ sorted params))`.

use super::common::{
    b64_decode, b64_encode, ct_eq, hmac_sha1, query_param, require_mac, required_header, sha256,
};
use super::{Request, VerifyError, parse_form};

pub(super) const HEADER: &str = "x-twilio-signature";
const BODY_HASH_PARAM: &str = "bodySHA256";

/// The HMAC-SHA1 of `url ++ name ++ value ++ ...` over already sorted params.
fn mac(token: &[u8], url: &str, sorted: &[&(String, String)]) -> Option<Vec<u8>> {
    let mut parts: Vec<&[u8]> = Vec::with_capacity(1 + 2 * sorted.len());
    parts.push(url.as_bytes());
    for (name, value) in sorted {
        parts.push(name.as_bytes());
        parts.push(value.as_bytes());
    }
    hmac_sha1(token, &parts)
}

/// Params sorted by name, then by value for repeated names.
fn sorted(params: &[(String, String)]) -> Vec<&(String, String)> {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    sorted
}

/// Signs a Twilio request: returns the `x-twilio-signature` value for `url` (exactly as
/// Twilio calls it, query included) and the POST `params` (any order; pass none for GET
/// requests and JSON bodies, whose hash rides in the URL's `bodySHA256` parameter).
#[must_use]
pub fn sign_twilio(token: &[u8], url: &str, params: &[(String, String)]) -> String {
    mac(token, url, &sorted(params))
        .map(|tag| b64_encode(&tag))
        .unwrap_or_default()
}

/// `url` split around its port: `prefix` is `scheme://[userinfo@]`, `rest` starts at the path.
struct Authority<'a> {
    prefix: &'a str,
    host: &'a str,
    port: Option<&'a str>,
    rest: &'a str,
    default_port: &'static str,
}

fn split_authority(url: &str) -> Option<Authority<'_>> {
    let (scheme, after_scheme) = url.split_once("://")?;
    let default_port = if scheme.eq_ignore_ascii_case("https") {
        "443"
    } else if scheme.eq_ignore_ascii_case("http") {
        "80"
    } else {
        return None;
    };
    let authority_len = after_scheme
        .find(['/', '?', '#'])
        .unwrap_or(after_scheme.len());
    let (authority, rest) = after_scheme.split_at_checked(authority_len)?;
    let host_start = authority.rfind('@').map_or(0, |at| at.saturating_add(1));
    let (_, host_port) = authority.split_at_checked(host_start)?;
    let prefix_len = url
        .len()
        .checked_sub(rest.len())?
        .checked_sub(host_port.len())?;
    let prefix = url.get(..prefix_len)?;
    // A port is the digits after the last `:`, unless that colon is inside an IPv6 `[...]`.
    let (host, port) = match host_port.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => (host, Some(port)),
        _ => (host_port, None),
    };
    Some(Authority {
        prefix,
        host,
        port,
        rest,
        default_port,
    })
}

/// The URLs Twilio may have signed: as given, plus (like Twilio's SDKs) with the default port
/// added when there is none, or with the port removed when there is one.
fn url_candidates(url: &str) -> Vec<String> {
    let mut candidates = vec![url.to_owned()];
    if let Some(a) = split_authority(url) {
        let variant = match a.port {
            None | Some("") => format!("{}{}:{}{}", a.prefix, a.host, a.default_port, a.rest),
            Some(_) => format!("{}{}{}", a.prefix, a.host, a.rest),
        };
        if variant != url {
            candidates.push(variant);
        }
    }
    candidates
}

pub(crate) fn verify(secret: &[u8], req: &Request<'_>) -> Result<(), VerifyError> {
    let value = required_header(req, &[HEADER])?;
    let provided = b64_decode(value)
        .ok_or_else(|| VerifyError::Malformed(format!("{HEADER} header: not base64")))?;

    let (params, body_ok) = match query_param(req.url, BODY_HASH_PARAM) {
        // A JSON body: only the URL is signed, and the URL carries the body's hash.
        Some(claimed) => {
            let claimed = hex::decode(claimed.trim())
                .ok()
                .filter(|bytes| bytes.len() == 32)
                .ok_or_else(|| {
                    VerifyError::Malformed(format!(
                        "{BODY_HASH_PARAM} query parameter: not a hex SHA-256"
                    ))
                })?;
            (Vec::new(), ct_eq(&sha256(&[req.body]), &claimed))
        }
        None if req.method.eq_ignore_ascii_case("GET") => (Vec::new(), true),
        None => (parse_form(req.body), true),
    };
    let params = sorted(&params);

    let mut matched = false;
    for url in url_candidates(req.url) {
        let expected = require_mac(mac(secret, &url, &params))?;
        matched |= ct_eq(&expected, &provided);
    }
    if matched && body_ok {
        Ok(())
    } else {
        Err(VerifyError::Mismatch)
    }
}

#[cfg(test)]
mod url_tests {
    use super::url_candidates;

    #[test]
    fn port_variants() {
        assert_eq!(
            url_candidates("https://a.example/x?y=1"),
            ["https://a.example/x?y=1", "https://a.example:443/x?y=1"]
        );
        assert_eq!(
            url_candidates("http://u:p@a.example:8080"),
            ["http://u:p@a.example:8080", "http://u:p@a.example"]
        );
        assert_eq!(
            url_candidates("https://[::1]/p"),
            ["https://[::1]/p", "https://[::1]:443/p"]
        );
        assert_eq!(
            url_candidates("https://[::1]:443/p"),
            ["https://[::1]:443/p", "https://[::1]/p"]
        );
        assert_eq!(url_candidates("ftp://a/b"), ["ftp://a/b"]);
        assert_eq!(url_candidates("not a url"), ["not a url"]);
        assert_eq!(
            url_candidates("https://é:1/ü"),
            ["https://é:1/ü", "https://é/ü"]
        );
    }
}

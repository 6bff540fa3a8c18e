//! Shared tokens: a per-tenant secret carried in a header, a query parameter or the path.

use super::common::{ct_eq, query_param, sha256};
use super::{Request, TokenLocation, VerifyError, XmlToken};

/// Whether `provided` equals `secret`, in time independent of both contents and lengths:
/// the SHA-256 digests are compared, never the raw bytes.
fn token_matches(secret: &[u8], provided: &[u8]) -> bool {
    ct_eq(&sha256(&[secret]), &sha256(&[provided]))
}

pub(crate) fn verify(
    location: &TokenLocation,
    secret: &[u8],
    req: &Request<'_>,
) -> Result<(), VerifyError> {
    let matched = match location {
        TokenLocation::Header(name) => {
            let value = req
                .header(name)
                .ok_or_else(|| VerifyError::Missing(format!("{name} header")))?;
            let whole = token_matches(secret, value.as_bytes());
            // `Authorization: Bearer <token>` carries the token after the scheme word.
            let bearer = name.eq_ignore_ascii_case("authorization")
                && value
                    .split_once(' ')
                    .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
                    .is_some_and(|(_, token)| token_matches(secret, token.trim().as_bytes()));
            whole | bearer
        }
        TokenLocation::Query(name) => {
            let value = query_param(req.url, name)
                .ok_or_else(|| VerifyError::Missing(format!("{name} query parameter")))?;
            token_matches(secret, value.as_bytes())
        }
        TokenLocation::Path => {
            let value = req
                .path_token
                .ok_or_else(|| VerifyError::Missing("token path segment".into()))?;
            token_matches(secret, value.as_bytes())
        }
    };
    if matched {
        Ok(())
    } else {
        Err(VerifyError::Mismatch)
    }
}

/// The token, then the XML body and its element (see [`XmlToken`]).
pub(crate) fn verify_xml(
    check: &XmlToken,
    secret: &[u8],
    req: &Request<'_>,
) -> Result<(), VerifyError> {
    verify(&check.token, secret, req)?;
    if check.expected.is_empty() {
        return Err(VerifyError::BadSecret(format!(
            "no value configured for the `{}` element to equal",
            check.element
        )));
    }
    let found = crate::xml::find_text(req.body, &check.namespace, &check.element)
        .map_err(|e| VerifyError::BadBody(format!("XML: {e}")))?
        .ok_or_else(|| VerifyError::Missing(format!("{} element", check.element)))?;
    if token_matches(check.expected.as_bytes(), found.as_bytes()) {
        Ok(())
    } else {
        Err(VerifyError::Mismatch)
    }
}

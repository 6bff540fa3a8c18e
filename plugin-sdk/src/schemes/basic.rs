//! HTTP Basic credentials on a webhook URL (Postmark: `https://user:password@host/...`, which
//! clients send as `Authorization: Basic base64(user:password)`). The secret is `user:password`;
//! the comparison is of SHA-256 digests, in constant time whatever the lengths.

use super::common::{b64_decode, ct_eq, sha256};
use super::{Request, VerifyError};

pub(crate) fn verify(secret: &[u8], req: &Request<'_>) -> Result<(), VerifyError> {
    let value = req
        .header("authorization")
        .ok_or_else(|| VerifyError::Missing("authorization header".into()))?;
    let (scheme, encoded) = value
        .split_once(' ')
        .ok_or_else(|| VerifyError::Malformed("authorization header: no scheme".into()))?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(VerifyError::Malformed(
            "authorization header: not Basic credentials".into(),
        ));
    }
    let provided = b64_decode(encoded.trim()).ok_or_else(|| {
        VerifyError::Malformed("authorization header: the credentials are not base64".into())
    })?;
    if ct_eq(&sha256(&[secret]), &sha256(&[&provided])) {
        Ok(())
    } else {
        Err(VerifyError::Mismatch)
    }
}

/// The `Authorization` value for `user:password`.
#[must_use]
pub fn basic_authorization(secret: &[u8]) -> String {
    format!("Basic {}", super::common::b64_encode(secret))
}

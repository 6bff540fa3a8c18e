//! ECDSA P-256 over SHA-256 of a timestamp header's bytes followed directly by the raw body,
//! the signature a base64 DER `SEQUENCE { r, s }` in another header (SendGrid's Event Webhook:
//! `X-Twilio-Email-Event-Webhook-Signature` and `-Timestamp`, unix seconds). The "secret" is
//! the provider's public key, base64 SPKI DER.

use p256::ecdsa::signature::{Signer as _, Verifier as _};
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use p256::pkcs8::DecodePublicKey as _;

use super::common::{b64_decode, b64_encode, check_window, parse_digits, required_header};
use super::{Policy, Request, VerifyError};

/// The public key of a base64 SPKI DER text (PEM armour and whitespace tolerated).
fn public_key(text: &[u8]) -> Result<VerifyingKey, VerifyError> {
    let text = std::str::from_utf8(text)
        .map_err(|_| VerifyError::BadSecret("the public key is not text".into()))?;
    let body: String = text
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .flat_map(|l| l.chars())
        .filter(|c| !c.is_whitespace())
        .collect();
    let der = b64_decode(&body)
        .ok_or_else(|| VerifyError::BadSecret("the public key is not base64".into()))?;
    VerifyingKey::from_public_key_der(&der)
        .map_err(|_| VerifyError::BadSecret("the public key is not a P-256 key in SPKI DER".into()))
}

pub(crate) fn verify(
    signature_header: &str,
    timestamp_header: &str,
    key: &[u8],
    req: &Request<'_>,
    policy: &Policy,
) -> Result<(), VerifyError> {
    let key = public_key(key)?;
    let signature = required_header(req, &[signature_header])?;
    let timestamp = required_header(req, &[timestamp_header])?;
    let der = b64_decode(signature)
        .ok_or_else(|| VerifyError::Malformed(format!("{signature_header} header: not base64")))?;
    let signature = Signature::from_der(&der).map_err(|_| {
        VerifyError::Malformed(format!(
            "{signature_header} header: not a DER ECDSA signature"
        ))
    })?;
    let ts = parse_digits(timestamp).ok_or_else(|| {
        VerifyError::Malformed(format!("{timestamp_header} header: not unix seconds"))
    })?;
    let mut message = Vec::with_capacity(timestamp.len() + req.body.len());
    message.extend_from_slice(timestamp.as_bytes());
    message.extend_from_slice(req.body);
    key.verify(&message, &signature)
        .map_err(|_| VerifyError::Mismatch)?;
    check_window(
        policy.now_ms / 1000,
        ts,
        1,
        policy.effective_tolerance_secs(),
    )
}

/// Signs as the provider would, with a P-256 private key (32 bytes): the base64 DER signature
/// of `timestamp ++ body`. For tests and fixtures; the hub holds only public keys.
#[must_use]
pub fn sign_ecdsa_p256(private_key: &[u8; 32], timestamp: &str, body: &[u8]) -> Option<String> {
    let key = SigningKey::from_bytes(private_key.into()).ok()?;
    let mut message = timestamp.as_bytes().to_vec();
    message.extend_from_slice(body);
    let signature: Signature = key.sign(&message);
    Some(b64_encode(signature.to_der().as_bytes()))
}

/// The base64 SPKI DER public key of a P-256 private key, as SendGrid shows its key.
#[must_use]
pub fn ecdsa_p256_public_key(private_key: &[u8; 32]) -> Option<String> {
    use p256::pkcs8::EncodePublicKey as _;
    let key = SigningKey::from_bytes(private_key.into()).ok()?;
    let der = key.verifying_key().to_public_key_der().ok()?;
    Some(b64_encode(der.as_bytes()))
}

//! The webhooks the bench sends: Retell `call_started` bodies of a chosen size, each with a
//! unique `call_id` and signed the way Retell signs (`plugin_sdk::schemes::sign_retell`), and,
//! when a `resend` connector exists, Resend events signed the Svix way. Nothing is ever a
//! duplicate, so every request is stored.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use plugin_sdk::schemes::{sign_retell, sign_standard_webhooks};

use crate::load::{Maker, Req};

/// A tenant's id and the secret its connector verifies with.
#[derive(Clone, Debug)]
pub struct Signer {
    /// Tenant id.
    pub tenant: String,
    /// The Retell API key, or the `whsec_...` secret.
    pub secret: String,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Words for transcripts: plain ASCII, nothing JSON must escape.
const SPEECH: &str = "Agent: Thanks for calling ABC Healthcare, how can I help you today? \
User: Hi, I would like to move my appointment on Thursday to next week if possible. \
Agent: Of course, let me check what we have available for you. ";

fn filler(len: usize) -> String {
    SPEECH.chars().cycle().take(len).collect()
}

/// A Retell `call_started` body of exactly `size` bytes (or its natural size if larger) for
/// call `call_id`. The call id must have the same length within a run so the size stays fixed.
pub fn retell_body(call_id: &str, size: usize, start_ms: u64) -> Vec<u8> {
    let head = format!(
        "{{\"event\":\"call_started\",\"call\":{{\"call_id\":\"{call_id}\",\"call_type\":\"phone_call\",\
         \"agent_id\":\"agent_7f3c2e9a1b\",\"agent_version\":3,\"call_status\":\"ongoing\",\
         \"direction\":\"inbound\",\"from_number\":\"+14155550123\",\"to_number\":\"+14155550987\",\
         \"start_timestamp\":{start_ms},\"metadata\":{{\"source\":\"hub-bench\"}},\
         \"retell_llm_dynamic_variables\":{{\"customer_name\":\"Jordan\"}},\"transcript\":\""
    );
    let tail = "\"}}";
    let pad = size.saturating_sub(head.len() + tail.len());
    let mut body = Vec::with_capacity(head.len() + pad + tail.len());
    body.extend_from_slice(head.as_bytes());
    body.extend_from_slice(filler(pad).as_bytes());
    body.extend_from_slice(tail.as_bytes());
    body
}

/// Signed Retell webhooks of `size` bytes, spread round-robin over `signers`, to
/// `/hooks/{tenant}/retell`. `tag` makes call ids unique across runs against one hub.
pub fn retell(signers: Arc<Vec<Signer>>, size: usize, tag: &str) -> Maker {
    let tag = tag.to_string();
    // The padding is built once; each request copies it around its own call id.
    let template = retell_body(&format!("{tag}-{:012}", 0), size, now_ms());
    let needle = format!("\"call_id\":\"{tag}-");
    let id_at = template
        .windows(needle.len())
        .position(|w| w == needle.as_bytes())
        .map_or(0, |i| i + needle.len() - tag.len() - 1);
    let template = Bytes::from(template);
    Arc::new(move |seq| {
        let signer = &signers[seq as usize % signers.len()];
        let mut body = template.to_vec();
        let id = format!("{tag}-{seq:012}");
        body[id_at..id_at + id.len()].copy_from_slice(id.as_bytes());
        let sig = sign_retell(signer.secret.as_bytes(), &body, now_ms());
        Req {
            path: format!("/hooks/{}/retell", signer.tenant),
            headers: vec![
                ("content-type", "application/json".into()),
                ("x-retell-signature", sig),
            ],
            body: Bytes::from(body),
        }
    })
}

/// Signed Resend (Svix / Standard Webhooks) `email.delivered` events of about 1 KB, each with
/// a unique `svix-id`, to `/hooks/{tenant}/resend`.
pub fn resend(signers: Arc<Vec<Signer>>, tag: &str) -> Maker {
    let tag = tag.to_string();
    Arc::new(move |seq| {
        let signer = &signers[seq as usize % signers.len()];
        let id = format!("msg_{tag}_{seq:012}");
        let body = format!(
            "{{\"type\":\"email.delivered\",\"created_at\":\"2025-11-20T10:00:00.000Z\",\"data\":{{\
             \"email_id\":\"{id}\",\"from\":\"Acme <onboarding@acme.example>\",\
             \"to\":[\"jordan@example.com\"],\"subject\":\"Your appointment is confirmed\",\
             \"created_at\":\"2025-11-20T09:59:58.000Z\",\"tags\":{{\"note\":\"{}\"}}}}}}",
            filler(640)
        );
        let ts = now_ms() / 1000;
        let sig =
            sign_standard_webhooks(&signer.secret, &id, ts, body.as_bytes()).unwrap_or_default();
        Req {
            path: format!("/hooks/{}/resend", signer.tenant),
            headers: vec![
                ("content-type", "application/json".into()),
                ("svix-id", id),
                ("svix-timestamp", ts.to_string()),
                ("svix-signature", sig),
            ],
            body: Bytes::from(body),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_have_the_asked_size_and_parse() {
        for size in [1024, 10 * 1024, 1 << 20] {
            let b = retell_body("run-000000000001", size, 1);
            assert_eq!(b.len(), size);
            let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
            assert_eq!(v["call"]["call_id"], "run-000000000001");
        }
    }

    #[test]
    fn each_request_has_its_own_call_id_and_a_valid_signature() {
        let signers = Arc::new(vec![Signer {
            tenant: "t1".into(),
            secret: "key_x".into(),
        }]);
        let make = retell(signers, 1024, "abc");
        let (a, b) = (make(1), make(2));
        assert_ne!(a.body, b.body);
        let v: serde_json::Value = serde_json::from_slice(&b.body).unwrap();
        assert_eq!(v["call"]["call_id"], "abc-000000000002");
        let headers: Vec<(String, String)> = b
            .headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        let req = plugin_sdk::schemes::Request {
            method: "POST",
            url: "http://x/hooks/t1/retell",
            headers: &headers,
            body: &b.body,
            path_token: None,
        };
        plugin_sdk::schemes::verify(
            &plugin_sdk::schemes::Scheme::Retell,
            b"key_x",
            &req,
            &plugin_sdk::schemes::Policy::at(now_ms()),
        )
        .unwrap();
    }
}

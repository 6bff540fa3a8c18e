//! The host's push channels (`channel-open`, `channel-keep`, `channel-close`, `channels`): a
//! connector asks a provider to push to one of its routes, and the host holds the channel, so
//! ingress accepts a push only on a held channel with its token. The host makes each token (32
//! random bytes) and keeps only its SHA-256 in the store; the plaintext lives in this
//! invocation's memory, long enough to fill `{channel-token:ID}` in the watch request and to
//! mask it where the provider echoes it, and is zeroized with the invocation.
//!
//! Channel writes go to the store at once, not with the invocation's effects: they mirror what
//! the provider already did (and its first push can beat its answer to the watch).

use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use super::bindings::hub::connector::types::{Channel, HttpError};
use super::host::{HostState, Scope};
use crate::store::{ChannelKey, ChannelWrite, HeldChannel};

/// The longest channel id (Google's limit).
const MAX_ID: usize = 64;
/// The longest topic.
const MAX_TOPIC: usize = 1024;

/// A token this invocation made for a channel it opened.
pub(super) type ChannelToken = (String, SecretString);

/// SHA-256 of a channel token, hex: what the store keeps and a push is checked against.
pub fn token_digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn key(scope: &Scope, id: &str) -> ChannelKey {
    ChannelKey {
        tenant: scope.tenant.clone(),
        connector: scope.connector.id.clone(),
        id: id.to_string(),
    }
}

fn id_problem(id: &str) -> Option<String> {
    let ok = !id.is_empty()
        && id.len() <= MAX_ID
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    (!ok).then(|| format!("channel id `{id}` must be 1 to {MAX_ID} characters of A-Z a-z 0-9 _ -"))
}

impl HostState {
    /// `channel-open`.
    pub(super) fn open_channel(
        &mut self,
        id: String,
        topic: String,
    ) -> wasmtime::Result<Result<(), String>> {
        let scope = self.scope()?;
        if let Some(problem) = id_problem(&id) {
            return Ok(Err(problem));
        }
        if topic.len() > MAX_TOPIC {
            return Ok(Err(format!(
                "a channel's topic is at most {MAX_TOPIC} bytes"
            )));
        }
        let token = crate::secrets::generate_secret_token();
        let write = ChannelWrite::Open {
            topic,
            token_sha256: token_digest(token.expose_secret()),
        };
        let services = scope.services.clone();
        let written = services
            .rt
            .block_on(services.store.write_channel(key(scope, &id), write));
        match written {
            Ok(true) => {
                self.channel_tokens.push((id, token));
                Ok(Ok(()))
            }
            Ok(false) => Ok(Err(format!("channel `{id}` is already held"))),
            Err(e) => Ok(Err(format!("could not hold channel `{id}`: {e}"))),
        }
    }

    /// `channel-keep`.
    pub(super) fn keep_channel(
        &mut self,
        id: String,
        resource: String,
        expires_ms: u64,
    ) -> wasmtime::Result<Result<(), String>> {
        let scope = self.scope()?;
        if resource.len() > MAX_TOPIC {
            return Ok(Err(format!(
                "a channel's resource id is at most {MAX_TOPIC} bytes"
            )));
        }
        let write = ChannelWrite::Keep {
            resource,
            expires_at_ms: expires_ms.min(i64::MAX as u64) as i64,
        };
        let services = scope.services.clone();
        match services
            .rt
            .block_on(services.store.write_channel(key(scope, &id), write))
        {
            Ok(true) => Ok(Ok(())),
            Ok(false) => Ok(Err(format!("channel `{id}` is not held"))),
            Err(e) => Ok(Err(format!("could not keep channel `{id}`: {e}"))),
        }
    }

    /// `channel-close`. A failure is logged (the channel then expires at the provider, and a
    /// push on it after that is dropped as on a closed one).
    pub(super) fn close_channel(&mut self, id: String) -> wasmtime::Result<()> {
        let scope = self.scope()?;
        let services = scope.services.clone();
        if let Err(e) = services.rt.block_on(
            services
                .store
                .write_channel(key(scope, &id), ChannelWrite::Close),
        ) {
            tracing::warn!(tenant = %scope.tenant, connector = %scope.connector.id, "could not close channel `{id}`: {e}");
        }
        Ok(())
    }

    /// `channels`. A store failure traps: the connector cannot tell "none" from "unknown".
    pub(super) fn held_channels(&mut self) -> wasmtime::Result<Vec<Channel>> {
        let scope = self.scope()?;
        let services = scope.services.clone();
        let held = services
            .rt
            .block_on(
                services
                    .store
                    .channels(scope.tenant.clone(), scope.connector.id.clone()),
            )
            .map_err(|e| wasmtime::Error::msg(format!("could not read the channels: {e}")))?;
        Ok(held.into_iter().map(guest_channel).collect())
    }

    /// The tokens this invocation made, for masking where a provider echoes them.
    pub(super) fn channel_secrets(&self) -> &[ChannelToken] {
        &self.channel_tokens
    }
}

fn guest_channel(c: HeldChannel) -> Channel {
    Channel {
        id: c.id,
        topic: c.topic,
        resource: c.resource,
        expires_ms: c.expires_at_ms.max(0) as u64,
        opened_ms: c.opened_at_ms.max(0) as u64,
    }
}

/// Fills `{channel-token:ID}` placeholders in a body with the tokens of the channels this
/// invocation opened. Errors name the placeholder, never a token.
pub(super) fn fill_tokens(tokens: &[ChannelToken], text: &str) -> Result<String, HttpError> {
    const OPEN: &str = "{channel-token:";
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(OPEN) {
        out.push_str(&rest[..start]);
        let after = &rest[start + OPEN.len()..];
        let Some(end) = after.find('}') else {
            return Err(HttpError::Denied(
                "the body has an unclosed {channel-token:...} placeholder".into(),
            ));
        };
        let id = &after[..end];
        let Some((_, token)) = tokens.iter().find(|(held, _)| held == id) else {
            return Err(HttpError::Denied(format!(
                "{{channel-token:{id}}}: this invocation opened no channel `{id}`"
            )));
        };
        out.push_str(token.expose_secret());
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_take_the_tokens_of_opened_channels_only() {
        let tokens = vec![("ch-1".to_string(), SecretString::from("tok-one"))];
        assert_eq!(
            fill_tokens(&tokens, r#"{"id":"ch-1","token":"{channel-token:ch-1}"}"#).unwrap(),
            r#"{"id":"ch-1","token":"tok-one"}"#
        );
        let other = fill_tokens(&tokens, "{channel-token:ch-2}").unwrap_err();
        assert!(matches!(other, HttpError::Denied(m) if m.contains("no channel `ch-2`")));
        assert!(fill_tokens(&tokens, "{channel-token:ch-1").is_err());
        assert_eq!(
            fill_tokens(&tokens, "no placeholder").unwrap(),
            "no placeholder"
        );
    }

    #[test]
    fn ids_are_what_a_header_can_carry() {
        assert!(id_problem("gcal-0f3a_9").is_none());
        assert!(id_problem("").is_some());
        assert!(id_problem(&"a".repeat(65)).is_some());
        assert!(id_problem("a b").is_some());
        assert!(id_problem("a\r\nx").is_some());
    }
}

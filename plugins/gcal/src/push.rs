//! Google's pushes on a watch channel (route `push`): an empty POST whose `X-Goog-*` headers
//! say which channel and what happened. The host has already checked, before any of this runs,
//! that the channel is one it holds for the tenant, that `X-Goog-Channel-Token` is the
//! channel's token and `X-Goog-Resource-ID` its resource; a push on a channel it no longer
//! holds was answered 200 and dropped. A delivery is identified by channel and message number,
//! so Google's retry of one is stored once.
//!
//! A push only says "something changed": `sync` (the first message of a channel, possibly
//! before Google answered the watch) is acknowledged and ignored; `exists` and `not_exists`
//! queue the `sync` job for the channel's calendar, which reads what changed.

use plugin_sdk::{Delivery, Error, Outcome, channel, enqueue_job};

use crate::sync::{SYNC, SyncInput};

/// The route's name: `/hooks/{tenant}/gcal/push`.
pub const ROUTE: &str = "push";
/// The header naming the channel.
pub const CHANNEL_ID: &str = "x-goog-channel-id";
/// The header carrying the channel's token.
pub const CHANNEL_TOKEN: &str = "x-goog-channel-token";
/// The header naming the watched resource.
pub const RESOURCE_ID: &str = "x-goog-resource-id";
/// The header numbering the channel's messages.
pub const MESSAGE_NUMBER: &str = "x-goog-message-number";
/// The header saying what happened: `sync`, `exists` or `not_exists`.
pub const RESOURCE_STATE: &str = "x-goog-resource-state";

/// Handles a push.
///
/// # Errors
/// Permanent when the sync job's input cannot be written (never, in practice).
pub fn handle(delivery: &Delivery) -> Result<Outcome, Error> {
    let state = delivery
        .header(RESOURCE_STATE)
        .map(|s| s.trim().to_ascii_lowercase())
        .unwrap_or_default();
    match state.as_str() {
        "sync" => return Ok(Outcome::ignored("sync message")),
        "exists" | "not_exists" => {}
        "" => return Ok(Outcome::ignored("a push without X-Goog-Resource-State")),
        other => {
            return Ok(Outcome::ignored(format!(
                "resource state `{}` is not one Google sends for events",
                other.chars().take(40).collect::<String>()
            )));
        }
    }
    let id = delivery.header(CHANNEL_ID).unwrap_or_default().trim();
    let Some(held) = channel::list().into_iter().find(|c| c.id == id) else {
        return Ok(Outcome::ignored(format!(
            "channel `{}` is no longer held (stopped or renewed since)",
            id.chars().take(64).collect::<String>()
        )));
    };
    let input = SyncInput {
        calendar_id: Some(held.topic),
        run: None,
    };
    enqueue_job(SYNC, &input, 0)?;
    Ok(Outcome::handled())
}

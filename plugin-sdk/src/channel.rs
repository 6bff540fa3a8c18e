//! Push channels: a provider that pushes "something changed" to a URL the connector registered
//! (Google Calendar's `watch`) proves each push with a token the subscriber chose. The host
//! holds the channels and their tokens; a route declared with
//! [`SignatureScheme::Channel`](crate::SignatureScheme::Channel) accepts a push only on a held
//! channel with its token, before any connector code runs, and drops pushes on channels it no
//! longer holds (answered 200: a stopped channel keeps sending until it expires).
//!
//! The order matters, because a provider's first push can beat its answer to the watch:
//! [`open`] before the watch request (the host makes the token and holds the channel),
//! [`token`] in the request's body (sent with [`Request::fill_body`](crate::http::Request::fill_body)),
//! then [`keep`] with the resource id and expiry the provider answered; [`close`] after stopping
//! it at the provider. Channels are written at once, not with the invocation's other effects:
//! they mirror what the provider already did.
//!
//! ```no_run
//! use plugin_sdk::{channel, http};
//! channel::open("ch-1", "primary")?;
//! let watch = serde_json::json!({
//!     "id": "ch-1",
//!     "type": "web_hook",
//!     "address": plugin_sdk::route_url("push"),
//!     "token": channel::token("ch-1"),
//! });
//! let answer: serde_json::Value = http::Request::post("https://api.example.com/watch")
//!     .json(&watch)?
//!     .fill_body()
//!     .send()?
//!     .json()?;
//! let resource = answer["resourceId"].as_str().unwrap_or_default();
//! channel::keep("ch-1", resource, 1_767_312_000_000)?;
//! # Ok::<(), plugin_sdk::Error>(())
//! ```

use crate::Error;
pub use crate::bindings::hub::connector::types::Channel;
use crate::sys as host;

/// Opens a channel: the host makes its random token and holds it at once. `id` is the
/// connector's (at most 64 characters of `A-Z a-z 0-9 _ -`, unique across its channels);
/// `topic` is what it watches, in the connector's terms (a calendar id), given back by [`list`].
///
/// # Errors
/// Permanent when the id is malformed or already held.
pub fn open(id: &str, topic: &str) -> Result<(), Error> {
    host::channel_open(id, topic).map_err(Error::permanent)
}

/// The placeholder the host replaces with channel `id`'s token in a
/// [`fill_body`](crate::http::Request::fill_body) request of the invocation that opened it.
///
/// ```
/// assert_eq!(plugin_sdk::channel::token("ch-1"), "{channel-token:ch-1}");
/// ```
pub fn token(id: &str) -> String {
    format!("{{channel-token:{id}}}")
}

/// Records what the provider answered for channel `id`: the watched resource's id (pushes must
/// then carry it) and when the channel expires (unix ms, as the provider said).
///
/// # Errors
/// Permanent when the channel is not held.
pub fn keep(id: &str, resource: &str, expires_ms: u64) -> Result<(), Error> {
    host::channel_keep(id, resource, expires_ms).map_err(Error::permanent)
}

/// Stops holding channel `id`: pushes on it are then answered 200 and dropped.
pub fn close(id: &str) {
    host::channel_close(id);
}

/// The channels the host holds for this tenant and connector, oldest first.
pub fn list() -> Vec<Channel> {
    host::channels()
}

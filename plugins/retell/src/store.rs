//! Reading and writing the `call` and `chat` records, and publishing the `call.*` events a
//! record is due, through the host. The decisions live in [`crate::merge`]; this is the glue.

use plugin_sdk::{Error, lookup, publish, records, tenant};

use crate::merge::due_events;
use crate::model::{CallRecord, ChatRecord};
use crate::normalize::{customer_number, normalize};

/// Record kind of a call.
pub const CALL: &str = "call";
/// Record kind of a chat.
pub const CHAT: &str = "chat";

/// The stored call record.
///
/// # Errors
/// Permanent if the stored record does not parse.
pub fn load_call(call_id: &str) -> Result<Option<CallRecord>, Error> {
    records::get(CALL, call_id)
}

/// Publishes the events `record` is due (unless `publish_events` is false), then stores it,
/// found by the customer's number.
/// Both are committed by the host together with the invocation, so a failed attempt leaves
/// neither behind and its retry publishes again.
///
/// # Errors
/// Permanent if the record or a payload cannot be serialized.
pub fn save_call(mut record: CallRecord, publish_events: bool) -> Result<CallRecord, Error> {
    if publish_events {
        let due = due_events(&record);
        if !due.is_empty() {
            let tenant = tenant();
            for name in due {
                publish(name, &normalize(&record, &tenant))?;
                record.published.push(name.to_string());
            }
        }
    }
    let key = record.call_id.clone();
    records::upsert(CALL, &key, &record)?;
    // Found by the customer's number, as the tenant's contacts are (`lookup::phone`).
    if let Some(phone) = customer_number(&record).as_deref().and_then(lookup::phone) {
        records::set_lookups(CALL, &key, &[Some(phone)]);
    }
    Ok(record)
}

/// The stored chat record.
///
/// # Errors
/// Permanent if the stored record does not parse.
pub fn load_chat(chat_id: &str) -> Result<Option<ChatRecord>, Error> {
    records::get(CHAT, chat_id)
}

/// Stores a chat record.
///
/// # Errors
/// Permanent if the record cannot be serialized.
pub fn save_chat(record: &ChatRecord) -> Result<(), Error> {
    records::upsert(CHAT, &record.chat_id, record)
}

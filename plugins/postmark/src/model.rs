//! The records this connector keeps are every email connector's (`plugin_sdk::email`): `email`
//! by Postmark MessageID, `suppression` by address.

pub use plugin_sdk::email::{
    EMAIL, EmailRecord, MAX_LINKS, SUPPRESSION, SuppressionRecord, bare_address,
};

//! The `check_credentials` job: one cheap call with the grant (`GET /limits`), which the
//! console's **Test** button runs; it writes nothing and says what Salesforce answered.

use plugin_sdk::{Error, info};
use serde_json::Value;

use crate::api;
use crate::config::Settings;
use crate::limits;

/// The job's name.
pub const CHECK: &str = "check_credentials";

/// Runs the job.
///
/// # Errors
/// A missing `instance_url`, or Salesforce's refusal with its own message.
pub fn run() -> Result<(), Error> {
    let settings = Settings::load()?;
    let resp = api::call("GET", format!("{}/limits", settings.data_base())).send()?;
    if let Some(e) = limits::classify(resp.status, &resp.body, &[]) {
        return Err(e);
    }
    let v: Value = api::read(&resp, "the limits read")?;
    let daily = v.get("DailyApiRequests");
    let (max, left) = (
        daily.and_then(|d| d.get("Max")).and_then(Value::as_u64),
        daily
            .and_then(|d| d.get("Remaining"))
            .and_then(Value::as_u64),
    );
    match (max, left) {
        (Some(max), Some(left)) => {
            info!("{CHECK}: the grant works; {left} of {max} daily API requests left")
        }
        _ => info!("{CHECK}: the grant works"),
    }
    Ok(())
}

//! The hub's webhook at Twilio (`register_webhooks`, `unregister_webhooks`): the tenant's
//! number (config `from`) gets its `SmsUrl` (inbound messages) pointed at the `sms` route, by
//! HTTP POST, through the IncomingPhoneNumber resource:
//! `GET /2010-04-01/Accounts/{AccountSid}/IncomingPhoneNumbers.json?PhoneNumber=...` finds the
//! number's SID, `POST .../IncomingPhoneNumbers/{Sid}.json` (a form) sets `SmsUrl`/`SmsMethod`.
//!
//! The number's `StatusCallback` is never read or written: on an IncomingPhoneNumber it is the
//! status URL of the number's *voice calls*, not of its messages. Setting it would overwrite the
//! tenant's call-status URL and send every call's `CallSid` callback to the `status` route,
//! which takes only message statuses. Message status callbacks are set per message instead
//! (`send_message` gives each its `StatusCallback`), or on a Messaging Service, by hand.
//!
//! No secret is kept: Twilio signs every webhook with the account's Auth Token, the
//! `auth_token` credential the tenant already has (it authenticates these calls too), so
//! pointing the number at the hub is the whole registration.
//!
//! Registering is idempotent: a number whose `SmsUrl` already is the hub's (by POST) is left
//! alone (no update), otherwise it is set; a `webhook` record per number SID says what the hub
//! set. A number the hub set earlier that is no longer the tenant's (`from` changed) is a second
//! registration of the hub's URL: its `SmsUrl` is cleared if it still points at the hub, and its
//! record dropped. Unregistering clears the `SmsUrl` of the tenant's number and of every
//! recorded one, each only where it still points at the hub (a URL set since by someone else is
//! kept); a number Twilio no longer has (404) is already gone.

use plugin_sdk::http::Request;
use plugin_sdk::{Error, HttpResponse, config, info, records, require_config, route_url};
use serde::{Deserialize, Serialize};

use crate::address::{is_e164, is_sid, number};
use crate::manifest::SMS_ROUTE;
use crate::plan::{ACCOUNT_SID, FROM};
use crate::send::{AUTH_TOKEN, BASE, api_error};

/// The job that points the tenant's number at the hub.
pub const REGISTER: &str = "register_webhooks";
/// The job that takes it back.
pub const UNREGISTER: &str = "unregister_webhooks";
/// The record kind kept per number the hub set (keyed by its `PN...` SID).
pub const KIND: &str = "webhook";
const TIMEOUT_MS: u32 = 15_000;
/// Pages of a number search followed at most (a full E.164 number matches one number).
const MAX_PAGES: usize = 10;

/// One IncomingPhoneNumber, as far as registering goes (`null`s read as absent). Its
/// `status_callback` (voice call status) is deliberately not read: the hub never touches it.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Number {
    sid: String,
    phone_number: Option<String>,
    sms_url: Option<String>,
    sms_method: Option<String>,
    sms_application_sid: Option<String>,
}

/// A page of `GET .../IncomingPhoneNumbers.json`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Page {
    incoming_phone_numbers: Vec<Number>,
    next_page_uri: Option<String>,
}

/// The `webhook` record: what the hub set on a number (never a secret: there is none).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Registration {
    /// The number's SID (`PN...`).
    pub sid: String,
    /// The number (E.164).
    pub phone_number: String,
    /// Its `SmsUrl`: the hub's `sms` route.
    pub sms_url: String,
}

/// The tenant's route, as Twilio is to call it.
struct HubUrls {
    sms: String,
}

fn is_post(method: Option<&str>) -> bool {
    // Twilio's default is POST; an empty method is the default.
    method.is_none_or(|m| m.is_empty() || m.eq_ignore_ascii_case("POST"))
}

impl HubUrls {
    fn current() -> HubUrls {
        HubUrls {
            sms: route_url(SMS_ROUTE),
        }
    }

    /// Whether the number already sends its messages to the hub, by POST.
    fn set_on(&self, n: &Number) -> bool {
        n.sms_url.as_deref() == Some(self.sms.as_str()) && is_post(n.sms_method.as_deref())
    }

    /// The update that points the number's messages at the hub (nothing else: not its
    /// `StatusCallback`, which is the number's voice call status URL).
    fn fields(&self) -> [(&'static str, &str); 2] {
        [("SmsUrl", &self.sms), ("SmsMethod", "POST")]
    }

    /// The update that clears the number's `SmsUrl` if it still points at the hub (empty:
    /// it does not).
    fn clearing(&self, n: &Number) -> Vec<(&'static str, &'static str)> {
        let mut f = Vec::new();
        if n.sms_url.as_deref() == Some(self.sms.as_str()) {
            f.push(("SmsUrl", ""));
        }
        f
    }
}

fn checked(resp: HttpResponse) -> Result<HttpResponse, Error> {
    if (200..300).contains(&resp.status) {
        return Ok(resp);
    }
    Err(api_error(
        resp.status,
        resp.header("retry-after"),
        &resp.body,
    ))
}

fn account() -> Result<String, Error> {
    let account: String = require_config(ACCOUNT_SID)?;
    if !is_sid(&account, "AC") {
        return Err(Error::permanent(
            "config `account_sid` is not an Account SID (AC + 32 hex digits)",
        ));
    }
    Ok(account)
}

/// The tenant's number (config `from`, without a `whatsapp:` prefix), if configured.
fn tenant_number() -> Result<Option<String>, Error> {
    let Some(from) = config::<String>(FROM)?.filter(|f| !f.trim().is_empty()) else {
        return Ok(None);
    };
    let n = number(&from);
    if !is_e164(&n) {
        return Err(Error::permanent(format!(
            "config `from` `{from}` is not an E.164 number"
        )));
    }
    Ok(Some(n))
}

fn numbers_url(account: &str) -> String {
    format!("{BASE}/2010-04-01/Accounts/{account}/IncomingPhoneNumbers.json")
}

fn number_url(account: &str, sid: &str) -> String {
    format!("{BASE}/2010-04-01/Accounts/{account}/IncomingPhoneNumbers/{sid}.json")
}

fn get(account: &str, url: String) -> Result<HttpResponse, Error> {
    Request::get(url)
        .basic(account, AUTH_TOKEN)
        .timeout_ms(TIMEOUT_MS)
        .send()
}

/// The account's IncomingPhoneNumber for `phone` (Twilio's filter also matches partial
/// numbers: only an exact one counts).
fn find(account: &str, phone: &str) -> Result<Option<Number>, Error> {
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("PhoneNumber", phone)
        .append_pair("PageSize", "50")
        .finish();
    let mut url = Some(format!("{}?{query}", numbers_url(account)));
    for _ in 0..MAX_PAGES {
        let Some(next) = url.take() else { break };
        let Page {
            incoming_phone_numbers,
            next_page_uri,
        } = checked(get(account, next)?)?.json()?;
        if let Some(n) = incoming_phone_numbers
            .into_iter()
            .find(|n| n.phone_number.as_deref() == Some(phone))
        {
            return Ok(Some(n));
        }
        url = next_page_uri
            .filter(|p| p.starts_with("/2010-04-01/"))
            .map(|p| format!("{BASE}{p}"));
    }
    Ok(None)
}

/// A number by SID; `None` when Twilio no longer has it.
fn fetch(account: &str, sid: &str) -> Result<Option<Number>, Error> {
    let resp = get(account, number_url(account, sid))?;
    if resp.status == 404 {
        return Ok(None);
    }
    checked(resp)?.json().map(Some)
}

fn update(account: &str, sid: &str, fields: &[(&str, &str)]) -> Result<HttpResponse, Error> {
    Request::post(number_url(account, sid))
        .basic(account, AUTH_TOKEN)
        .timeout_ms(TIMEOUT_MS)
        .form(fields)
        .send()
}

/// Clears the number's `SmsUrl` if it still points at the hub; a number gone (404) is fine.
fn release(account: &str, n: &Number, hub: &HubUrls) -> Result<(), Error> {
    let fields = hub.clearing(n);
    if fields.is_empty() {
        return Ok(());
    }
    let resp = update(account, &n.sid, &fields)?;
    if resp.status == 404 {
        return Ok(());
    }
    checked(resp)?;
    info!(
        "cleared the hub's SmsUrl from {} (its StatusCallback left alone)",
        n.phone_number.as_deref().unwrap_or(&n.sid)
    );
    Ok(())
}

/// Releases a recorded number by SID and forgets it.
fn release_recorded(account: &str, sid: &str, hub: &HubUrls) -> Result<(), Error> {
    if is_sid(sid, "PN")
        && let Some(n) = fetch(account, sid)?
    {
        release(account, &n, hub)?;
    }
    records::delete(KIND, sid);
    Ok(())
}

fn recorded() -> Vec<String> {
    records::list::<Registration>(KIND, 100)
        .into_iter()
        .map(|(sid, _)| sid)
        .collect()
}

/// `register_webhooks`.
///
/// # Errors
/// Permanent when `account_sid` or `from` is missing or malformed, when `from` is not a number
/// of the account, or when a TwiML App handles its messages (Twilio then ignores `SmsUrl`);
/// Twilio's refusals as for sending (429 and 5xx retry; a bad token is permanent).
pub fn register() -> Result<(), Error> {
    let account = account()?;
    let phone = tenant_number()?.ok_or_else(|| {
        Error::permanent("set config `from` (the tenant's Twilio number) to register its webhooks")
    })?;
    let hub = HubUrls::current();
    let n = find(&account, &phone)?.ok_or_else(|| {
        Error::permanent(format!(
            "{phone} (config `from`) is not a phone number of Twilio account {account}"
        ))
    })?;
    if let Some(app) = n.sms_application_sid.as_deref().filter(|a| !a.is_empty()) {
        return Err(Error::permanent(format!(
            "{phone}'s messages go to TwiML App {app}, so Twilio would ignore its SmsUrl: \
             remove the app from the number's messaging configuration, then connect again"
        )));
    }
    if hub.set_on(&n) {
        info!("{phone} already sends its incoming messages to the hub");
    } else {
        checked(update(&account, &n.sid, &hub.fields())?)?;
        info!(
            "pointed {phone}'s SmsUrl at the hub (its StatusCallback, the number's voice call \
             status URL, left alone)"
        );
    }
    for sid in recorded().into_iter().filter(|s| *s != n.sid) {
        release_recorded(&account, &sid, &hub)?;
    }
    records::upsert(
        KIND,
        &n.sid,
        &Registration {
            sid: n.sid.clone(),
            phone_number: phone,
            sms_url: hub.sms,
        },
    )
}

/// `unregister_webhooks`.
///
/// # Errors
/// As [`register`], except that a missing `from` or a number the account no longer has is not
/// an error.
pub fn unregister() -> Result<(), Error> {
    let account = account()?;
    let hub = HubUrls::current();
    let mut done = Vec::new();
    if let Some(phone) = tenant_number()?
        && let Some(n) = find(&account, &phone)?
    {
        release(&account, &n, &hub)?;
        records::delete(KIND, &n.sid);
        done.push(n.sid);
    }
    for sid in recorded().into_iter().filter(|s| !done.contains(s)) {
        release_recorded(&account, &sid, &hub)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;

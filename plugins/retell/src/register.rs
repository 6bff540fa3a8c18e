//! The hub's own webhooks at Retell (`register_webhooks`, `unregister_webhooks`). Retell has no
//! webhook resource to create: an agent sends its call events to its `webhook_url`, and a phone
//! number asks its `inbound_webhook_url` before connecting an inbound call. So registering is
//! pointing the tenant's agents (config `agent_ids`; without it, every agent of the key's
//! account) at the `""` route (`PATCH /update-agent/{agent_id}` after `GET /get-agent/{agent_id}`),
//! and, when the tenant configured `inbound_variables`, its numbers (the ones it names, or all
//! with `"*"`, bound to one of its agents) at the `inbound` route (`PATCH
//! /update-phone-number/{number}`, from `GET /v2/list-phone-numbers`).
//!
//! No secret is kept: Retell signs every webhook with the account's API key, the tenant's
//! `api_key` credential the hub already holds, so the URL is all there is to register.
//!
//! Registering is idempotent: an agent or number already pointing at the hub is left as it is;
//! one that pointed elsewhere is repointed (with a warning; the old URL is kept in the
//! `webhook` record); an agent this tenant registered before but no longer lists, and a number
//! pointing at the tenant's inbound URL that should not, are released. Each registration is a
//! `webhook` record (`agent:{id}`, `phone_number:{number}`). Unregistering clears the URL only
//! where it still points at the hub (`null`: the agent falls back to the account-level
//! webhook); an agent or number gone (404) is already what was wanted.
//!
//! Retell's answers map as the connector's other API calls (`error_for_status`): 408, 429 and
//! 5xx retry, other 4xx are permanent with Retell's message.

use plugin_sdk::http::Request;
use plugin_sdk::{Error, HttpResponse, config, info, records, route_url, warn};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::api::{self, BASE, CREDENTIAL, Page, encode};
use crate::inbound::ANY_NUMBER;
use crate::manifest::{INBOUND_ROUTE, INBOUND_VARIABLES};
use crate::webhook::AGENT_IDS;

/// The job that points the tenant's agents (and numbers) at the hub.
pub const REGISTER: &str = "register_webhooks";
/// The job that points them away again.
pub const UNREGISTER: &str = "unregister_webhooks";
/// The record kind kept for each registration (no secret: there is none).
pub const KIND: &str = "webhook";
/// A registration's target: an agent's `webhook_url`.
pub const AGENT: &str = "agent";
/// A registration's target: a number's `inbound_webhook_url`.
pub const NUMBER: &str = "phone_number";

/// Time limit of one API request.
const TIMEOUT_MS: u32 = 6_000;
/// Most pages of agents or numbers followed.
const MAX_PAGES: u32 = 20;
/// Most registration records read back.
const MAX_RECORDS: u32 = 1_000;

/// What a `webhook` record says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Registration {
    /// [`AGENT`] or [`NUMBER`].
    pub target: String,
    /// The agent id or the E.164 number.
    pub id: String,
    /// The hub URL it points at.
    pub url: String,
    /// The URL it pointed at before the hub, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaced: Option<String>,
}

/// The part of get-agent this job reads.
#[derive(Deserialize)]
struct Agent {
    #[serde(default)]
    webhook_url: Option<String>,
}

/// `GET /get-agent/{agent_id}`.
pub fn get_agent_url(agent_id: &str) -> String {
    format!("{BASE}/get-agent/{}", encode(agent_id))
}

/// `PATCH /update-agent/{agent_id}`.
pub fn update_agent_url(agent_id: &str) -> String {
    format!("{BASE}/update-agent/{}", encode(agent_id))
}

/// `PATCH /update-phone-number/{phone_number}`.
pub fn update_number_url(number: &str) -> String {
    format!("{BASE}/update-phone-number/{}", encode(number))
}

/// Whether a URL Retell holds is the hub's (a trailing slash aside).
pub fn same_url(current: Option<&str>, url: &str) -> bool {
    current.is_some_and(|c| c.trim_end_matches('/') == url.trim_end_matches('/'))
}

/// The agents that answer a number's inbound calls (`inbound_agent_id`, `inbound_agents`).
pub fn inbound_agents(number: &Value) -> Vec<&str> {
    let weighted = number
        .get("inbound_agents")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|w| w.get("agent_id").and_then(Value::as_str));
    number
        .get("inbound_agent_id")
        .and_then(Value::as_str)
        .into_iter()
        .chain(weighted)
        .collect()
}

/// Whether the hub should answer a number's inbound webhook: `inbound_variables` names it (or
/// has `"*"`) and, when the tenant lists its agents, one of them answers the number.
pub fn wants_inbound(
    table: Option<&Map<String, Value>>,
    agent_ids: Option<&[String]>,
    number: &Value,
) -> bool {
    let Some(id) = number.get("phone_number").and_then(Value::as_str) else {
        return false;
    };
    let named = table.is_some_and(|t| t.contains_key(ANY_NUMBER) || t.contains_key(id));
    let ours = match agent_ids {
        None => true,
        Some(ids) => inbound_agents(number)
            .iter()
            .any(|a| ids.iter().any(|i| i == a)),
    };
    named && ours
}

/// Sends an authenticated request; `None` when Retell answers 404 (the agent or number is
/// gone). A permanent refusal names `what` before Retell's message.
fn call(request: Request, what: &str) -> Result<Option<HttpResponse>, Error> {
    let resp = request.bearer(CREDENTIAL).timeout_ms(TIMEOUT_MS).send()?;
    if resp.status == 404 {
        return Ok(None);
    }
    resp.error_for_status().map(Some).map_err(|e| match e {
        Error::Permanent(m) => Error::Permanent(format!("{what}: {m}")),
        other => other,
    })
}

/// The agent's `webhook_url`; `None` when the agent does not exist.
fn agent_webhook(id: &str) -> Result<Option<Option<String>>, Error> {
    let Some(resp) = call(Request::get(get_agent_url(id)), &format!("get-agent {id}"))? else {
        return Ok(None);
    };
    let agent: Agent = resp.json()?;
    Ok(Some(agent.webhook_url.filter(|u| !u.is_empty())))
}

/// Sets (or, with `None`, clears) the agent's `webhook_url`; whether the agent exists.
fn set_agent_webhook(id: &str, url: Option<&str>) -> Result<bool, Error> {
    let request =
        Request::new("PATCH", update_agent_url(id)).json(&json!({ "webhook_url": url }))?;
    Ok(call(request, &format!("update-agent {id}"))?.is_some())
}

/// Sets (or clears) the number's `inbound_webhook_url`; whether the number exists.
fn set_number_webhook(number: &str, url: Option<&str>) -> Result<bool, Error> {
    let request = Request::new("PATCH", update_number_url(number))
        .json(&json!({ "inbound_webhook_url": url }))?;
    Ok(call(request, &format!("update-phone-number {number}"))?.is_some())
}

/// Every item of a paginated list.
fn list_all(fetch: fn(Option<&str>, u32) -> Result<Page, Error>) -> Result<Vec<Value>, Error> {
    let (mut cursor, mut items) = (None::<String>, Vec::new());
    for _ in 0..MAX_PAGES {
        let page = fetch(cursor.as_deref(), TIMEOUT_MS)?;
        let next = page.next_key(cursor.as_deref());
        items.extend(page.items);
        match next {
            Some(key) => cursor = Some(key),
            None => return Ok(items),
        }
    }
    warn!("stopped listing after {MAX_PAGES} pages; the rest is left as it is");
    Ok(items)
}

/// The tenant's agents: `agent_ids`, else every agent of the key's account; each once.
fn tenant_agents(agent_ids: Option<&[String]>) -> Result<Vec<String>, Error> {
    let listed: Vec<String> = match agent_ids {
        Some(ids) => ids.to_vec(),
        None => list_all(api::list_agents)?
            .iter()
            .filter_map(|a| a.get("agent_id").and_then(Value::as_str))
            .map(str::to_string)
            .collect(),
    };
    let mut out: Vec<String> = Vec::new();
    for id in listed {
        if !id.is_empty() && !out.contains(&id) {
            out.push(id);
        }
    }
    Ok(out)
}

/// Writes the `webhook` record, keeping the URL an earlier run replaced.
fn remember(target: &str, id: &str, url: &str, replaced: Option<String>) -> Result<(), Error> {
    let key = format!("{target}:{id}");
    let replaced = match replaced {
        Some(r) => Some(r),
        None => records::get::<Registration>(KIND, &key)
            .ok()
            .flatten()
            .and_then(|r| r.replaced),
    };
    let registration = Registration {
        target: target.into(),
        id: id.into(),
        url: url.into(),
        replaced,
    };
    records::upsert(KIND, &key, &registration)
}

/// Clears the agent's `webhook_url` if it still points at `url`; whether it did.
fn release_agent(id: &str, url: &str) -> Result<bool, Error> {
    match agent_webhook(id)? {
        Some(current) if same_url(current.as_deref(), url) => set_agent_webhook(id, None),
        _ => Ok(false),
    }
}

/// Points the numbers the tenant wants at the inbound route and clears the others that point
/// there (`register`: false clears them all); how many it changed.
fn sync_numbers(agent_ids: Option<&[String]>, register: bool) -> Result<usize, Error> {
    let url = route_url(INBOUND_ROUTE);
    let table: Option<Map<String, Value>> = if register {
        config(INBOUND_VARIABLES)?
    } else {
        None
    };
    let mut changed = 0;
    for number in list_all(api::list_phone_numbers)? {
        let Some(id) = number.get("phone_number").and_then(Value::as_str) else {
            continue;
        };
        let current = number
            .get("inbound_webhook_url")
            .and_then(Value::as_str)
            .filter(|u| !u.is_empty());
        let here = same_url(current, &url);
        let key = format!("{NUMBER}:{id}");
        if wants_inbound(table.as_ref(), agent_ids, &number) {
            let replaced = if here {
                None
            } else {
                if current.is_some() {
                    warn!("number {id}: its inbound webhook pointed elsewhere; now the hub's");
                }
                set_number_webhook(id, Some(&url))?;
                changed += 1;
                current.map(str::to_string)
            };
            remember(NUMBER, id, &url, replaced)?;
        } else {
            if here && set_number_webhook(id, None)? {
                changed += 1;
            }
            records::delete(KIND, &key);
        }
    }
    Ok(changed)
}

/// `register_webhooks`.
///
/// # Errors
/// Retell's refusals (429 and 5xx retry; a bad key is permanent), and permanent for an agent
/// of `agent_ids` that the key's account does not have.
pub fn register() -> Result<(), Error> {
    let agent_ids: Option<Vec<String>> = config(AGENT_IDS)?;
    let url = route_url("");
    let agents = tenant_agents(agent_ids.as_deref())?;
    let (mut pointed, mut released) = (0, 0);
    for id in &agents {
        let missing = || {
            Error::permanent(format!(
                "agent {id} (config `{AGENT_IDS}`) is not in the Retell account of this API key"
            ))
        };
        let current = agent_webhook(id)?.ok_or_else(missing)?;
        let replaced = if same_url(current.as_deref(), &url) {
            None
        } else {
            if current.is_some() {
                warn!("agent {id}: its webhook_url pointed elsewhere; now the hub's");
            }
            if !set_agent_webhook(id, Some(&url))? {
                return Err(missing());
            }
            pointed += 1;
            current
        };
        remember(AGENT, id, &url, replaced)?;
    }
    // Agents registered by an earlier run that the tenant no longer lists.
    for (key, registration) in records::list::<Registration>(KIND, MAX_RECORDS) {
        if registration.target == AGENT && !agents.contains(&registration.id) {
            if release_agent(&registration.id, &url)? {
                released += 1;
            }
            records::delete(KIND, &key);
        }
    }
    let numbers = sync_numbers(agent_ids.as_deref(), true)?;
    info!(
        "{REGISTER}: {} agents point at the hub ({pointed} changed, {released} released); {numbers} numbers changed",
        agents.len()
    );
    Ok(())
}

/// `unregister_webhooks`.
///
/// # Errors
/// As [`register`], except that a missing agent or number is already what was wanted.
pub fn unregister() -> Result<(), Error> {
    let agent_ids: Option<Vec<String>> = config(AGENT_IDS)?;
    let url = route_url("");
    let mut agents = tenant_agents(agent_ids.as_deref())?;
    for (_, registration) in records::list::<Registration>(KIND, MAX_RECORDS) {
        if registration.target == AGENT && !agents.contains(&registration.id) {
            agents.push(registration.id);
        }
    }
    let mut released = 0;
    for id in &agents {
        if release_agent(id, &url)? {
            released += 1;
        }
        records::delete(KIND, &format!("{AGENT}:{id}"));
    }
    let numbers = sync_numbers(agent_ids.as_deref(), false)?;
    info!("{UNREGISTER}: {released} agents and {numbers} numbers no longer point at the hub");
    Ok(())
}

#[cfg(test)]
mod tests;

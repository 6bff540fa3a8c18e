//! Webhooks to the app, per the Standard Webhooks spec (which Svix implements).
//!
//! When a job commits, each event it published is matched against the tenant's endpoints
//! (`[tenants.T.endpoints.NAME]`); each match becomes a durable `Task::Webhook` job, keyed by the
//! publishing job's idempotency key, the event's position and the endpoint, so a replay or
//! re-run never queues it twice. Its `webhook-id` is derived from that key: the same for every
//! attempt, so the app deduplicates. Each attempt is signed afresh (`webhook-timestamp`, and
//! `webhook-signature: v1,<base64 HMAC-SHA256 of id.timestamp.body>`, a second `v1,` signature
//! with the previous secret while a rotation lasts) and sent through the same outbound policy
//! as connectors: public addresses only, unless the operator sets `allow_private` for an app on
//! the same network. The secret is the host's alone: no connector ever sees it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use secrecy::ExposeSecret as _;
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::clock::now_ms;
use crate::config::{Config, Endpoint, TenantConfig};
use crate::id::{ConnectorId, EndpointName, TenantId};
use crate::runtime::outbound::{self, Failure, Policy, Prepared};
use crate::secrets::{Place, Vault};
use crate::store::{NewJob, Published, Task};

/// The longest one attempt may take.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(15);

/// The webhook jobs that events published by `connector` for `tenant` cause: one per event and
/// endpoint that wants it. `base` is the publishing job's idempotency key (as in
/// `routing::jobs_for_events`).
pub fn jobs_for_events(
    tenant_id: &TenantId,
    tenant: &TenantConfig,
    connector: &ConnectorId,
    base: &str,
    events: &[Published],
) -> Vec<NewJob> {
    let mut jobs = Vec::new();
    let now = now_ms();
    for (i, Published { name, payload }) in events.iter().enumerate() {
        for (endpoint, e) in &tenant.endpoints {
            if !e.events.iter().any(|p| p.matches(connector, name)) {
                continue;
            }
            jobs.push(NewJob {
                tenant: tenant_id.clone(),
                connector: connector.clone(),
                task: Task::Webhook {
                    endpoint: endpoint.to_string(),
                    event_type: format!("{connector}.{name}"),
                    payload: payload.clone(),
                    at_ms: now,
                },
                run_at_ms: now,
                idempotency_key: Some(format!("{base}:event:{i}:{name}:endpoint:{endpoint}")),
                trace: None,
            });
        }
    }
    jobs
}

/// The `webhook-id` of a webhook job: stable across its attempts and replays.
pub fn message_id(idempotency_key: &str) -> String {
    format!(
        "msg_{}",
        &hex::encode(Sha256::digest(idempotency_key.as_bytes()))[..26]
    )
}

/// How one attempt went.
#[derive(Debug)]
pub enum Sent {
    /// The app answered 2xx.
    Delivered(u16),
    /// The app answered `410 Gone`: it wants no more (the endpoint is disabled).
    Gone(String),
    /// The policy refuses the URL (a private address, a redirect there): retrying cannot help.
    Refused(String),
    /// Anything else: try again later (at least `retry_after` later, if the app said).
    Failed {
        /// What went wrong.
        error: String,
        /// The app's `Retry-After`.
        retry_after: Option<Duration>,
    },
}

/// One endpoint's policy and concurrency.
struct Target {
    policy: Policy,
    permits: Arc<Semaphore>,
}

/// Sends webhooks to the tenants' endpoints.
pub struct Outbox {
    http: outbound::Client,
    targets: HashMap<(TenantId, EndpointName), Target>,
    /// Slots for jobs of endpoints no longer in the config (they end at once).
    gone: Arc<Semaphore>,
}

impl Outbox {
    /// The endpoints of every tenant of `config`.
    ///
    /// # Errors
    /// When the HTTP client cannot be built or an endpoint's origin does not parse.
    pub fn new(config: &Config) -> anyhow::Result<Outbox> {
        let mut targets = HashMap::new();
        for (tenant, t) in &config.tenants {
            for (name, e) in &t.endpoints {
                let origin = e.url.origin().ascii_serialization();
                // A private address is reached only as an operator-named stand-in: itself.
                let stand_ins = if e.allow_private {
                    vec![(origin.clone(), origin.clone())]
                } else {
                    Vec::new()
                };
                let policy = Policy::new(
                    std::slice::from_ref(&origin),
                    std::slice::from_ref(&origin),
                    &stand_ins,
                )
                .map_err(|m| anyhow::anyhow!("endpoint {tenant}/{name}: {m}"))?;
                let permits = Arc::new(Semaphore::new(e.concurrency));
                targets.insert((tenant.clone(), name.clone()), Target { policy, permits });
            }
        }
        Ok(Outbox {
            http: outbound::Client::new()?,
            targets,
            gone: Arc::new(Semaphore::new(Semaphore::MAX_PERMITS)),
        })
    }

    /// A slot to send to the endpoint, if it has one free (an endpoint that is gone from the
    /// config always has one: its jobs end at once).
    pub fn permit(&self, tenant: &TenantId, endpoint: &str) -> Option<OwnedSemaphorePermit> {
        let permits = EndpointName::try_from(endpoint)
            .ok()
            .and_then(|name| self.targets.get(&(tenant.clone(), name)))
            .map_or(&self.gone, |target| &target.permits);
        permits.clone().try_acquire_owned().ok()
    }

    /// One attempt to deliver the event to the endpoint, signed now.
    #[allow(clippy::too_many_arguments)]
    pub async fn send(
        &self,
        vault: &Vault,
        tenant: &TenantId,
        name: &EndpointName,
        endpoint: &Endpoint,
        id: &str,
        event_type: &str,
        payload: &str,
        at_ms: i64,
    ) -> Sent {
        let Some(target) = self.targets.get(&(tenant.clone(), name.clone())) else {
            return Sent::Refused(format!("endpoint {name} is not loaded"));
        };
        let data: serde_json::Value =
            serde_json::from_str(payload).unwrap_or(serde_json::Value::Null);
        let timestamp = chrono::DateTime::from_timestamp_millis(at_ms)
            .unwrap_or_default()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let body = json!({ "type": event_type, "timestamp": timestamp, "data": data }).to_string();
        let now_secs = (now_ms() / 1000) as u64;
        let signature = match signature(vault, tenant, name, endpoint, id, now_secs, &body) {
            Ok(s) => s,
            Err(m) => return Sent::Refused(m),
        };
        let request = Prepared {
            method: reqwest::Method::POST,
            url: endpoint.url.clone(),
            headers: vec![
                ("content-type".into(), "application/json".into()),
                ("webhook-id".into(), id.to_string()),
                ("webhook-timestamp".into(), now_secs.to_string()),
                ("webhook-signature".into(), signature),
            ],
            body: body.into_bytes(),
            timeout: ATTEMPT_TIMEOUT,
        };
        match self.http.send(&target.policy, request, &[]).await {
            Ok(r) if (200..300).contains(&r.status) => Sent::Delivered(r.status),
            Ok(r) if r.status == 410 => Sent::Gone("the app answered 410 Gone".to_string()),
            Ok(r) => {
                let retry_after = r
                    .headers
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("retry-after"))
                    .and_then(|(_, v)| v.trim().parse::<u64>().ok())
                    .map(|s| Duration::from_secs(s.min(86_400)));
                let said = String::from_utf8_lossy(&r.body[..r.body.len().min(200)]).into_owned();
                Sent::Failed {
                    error: format!("the app answered {}: {said}", r.status),
                    retry_after,
                }
            }
            Err(Failure::Denied(m)) => Sent::Refused(m),
            Err(Failure::Timeout) => Sent::Failed {
                error: format!("no answer within {} s", ATTEMPT_TIMEOUT.as_secs()),
                retry_after: None,
            },
            Err(Failure::Transport(m)) => Sent::Failed {
                error: m,
                retry_after: None,
            },
            Err(Failure::TooLarge) => Sent::Failed {
                error: "the app's answer was too large".into(),
                retry_after: None,
            },
        }
    }
}

/// `v1,<sig>` with the current secret, and a second one with the previous secret while its
/// rotation window lasts.
fn signature(
    vault: &Vault,
    tenant: &TenantId,
    name: &EndpointName,
    endpoint: &Endpoint,
    id: &str,
    now_secs: u64,
    body: &str,
) -> Result<String, String> {
    let mut fields = vec!["secret"];
    if endpoint
        .previous_until_ms
        .is_some_and(|until| now_ms() < until)
    {
        fields.push("previous_secret");
    }
    let mut signatures = Vec::new();
    for field in fields {
        let place = Place::Endpoint {
            tenant: tenant.to_string(),
            name: name.to_string(),
            field: field.into(),
        };
        let Some(secret) = vault.at(&place) else {
            continue;
        };
        let secret = std::str::from_utf8(secret.expose_secret())
            .map_err(|_| format!("{place} is not text"))?;
        let signed =
            plugin_sdk::schemes::sign_standard_webhooks(secret, id, now_secs, body.as_bytes())
                .map_err(|e| format!("{place} is not a usable secret: {e}"))?;
        signatures.push(signed);
    }
    if signatures.is_empty() {
        return Err(format!(
            "endpoint {tenant}/{name} has no signing secret: hub seal --tenant {tenant} --endpoint {name} --write"
        ));
    }
    Ok(signatures.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::id;
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    use secrecy::SecretSlice;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    /// A tenant `acme` on Retell with endpoint `app` at `url` for `events`.
    fn config(url: &str, events: &str, allow_private: bool) -> Config {
        let toml = format!(
            r#"
[server]
listen = "127.0.0.1:0"
public_url = "http://hub.test"
[connectors.retell]
builtin = true
[tenants.acme.connectors.retell]
[tenants.acme.endpoints.app]
url = "{url}"
events = [{events}]
allow_private = {allow_private}
secret = "sealed:v1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
"#
        );
        Config::from_str(&toml, std::path::Path::new("/tmp/hub.toml")).unwrap()
    }

    fn vault() -> Vault {
        let mut vault = Vault::new();
        let place = Place::Endpoint {
            tenant: "acme".into(),
            name: "app".into(),
            field: "secret".into(),
        };
        vault.insert(place, SecretSlice::from(SECRET.as_bytes().to_vec()));
        vault
    }

    fn published(name: &str) -> Published {
        Published {
            name: name.into(),
            payload: "{}".into(),
        }
    }

    #[test]
    fn events_become_one_job_per_matching_endpoint_with_stable_keys() {
        let config = config("https://app.example.com/hooks", r#""retell:call.*""#, false);
        let tenant = &config.tenants[&id::<TenantId>("acme")];
        let events = [published("call.analyzed"), published("chat.ended")];
        let jobs = jobs_for_events(&id("acme"), tenant, &id("retell"), "delivery:7", &events);
        assert_eq!(jobs.len(), 1, "chat.ended is not call.*");
        let key = jobs[0].idempotency_key.clone().unwrap();
        assert_eq!(key, "delivery:7:event:0:call.analyzed:endpoint:app");
        assert!(
            matches!(&jobs[0].task, Task::Webhook { event_type, .. } if event_type == "retell.call.analyzed")
        );
        assert_eq!(
            message_id(&key),
            message_id(&key),
            "the same id on every attempt"
        );
        assert_ne!(
            message_id(&key),
            message_id("delivery:8:event:0:call.analyzed:endpoint:app")
        );
    }

    /// While a secret is rotated out, both sign (the app verifies with either); after its
    /// window only the new one does, and the old one no longer verifies.
    #[test]
    fn a_rotated_secret_signs_beside_the_new_one_until_its_window_ends() {
        const OLD: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
        let config = config("https://app.example.com/hooks", r#""*""#, false);
        let (tenant, name) = (id::<TenantId>("acme"), id::<EndpointName>("app"));
        let mut endpoint = config.tenants[&tenant].endpoints[&name].clone();
        let mut vault = vault();
        let place = Place::Endpoint {
            tenant: "acme".into(),
            name: "app".into(),
            field: "previous_secret".into(),
        };
        vault.insert(place, SecretSlice::from(OLD.as_bytes().to_vec()));
        let body = r#"{"type":"retell.call.analyzed"}"#;
        let now = now_ms();
        let verifies = |header: &str, secret: &str| {
            let headers = vec![
                ("webhook-id".to_string(), "msg_1".to_string()),
                ("webhook-timestamp".to_string(), (now / 1000).to_string()),
                ("webhook-signature".to_string(), header.to_string()),
            ];
            let request = plugin_sdk::schemes::Request {
                method: "POST",
                url: "https://app.example.com/hooks",
                headers: &headers,
                body: body.as_bytes(),
                path_token: None,
            };
            plugin_sdk::schemes::verify(
                &plugin_sdk::schemes::Scheme::StandardWebhooks,
                secret.as_bytes(),
                &request,
                &plugin_sdk::schemes::Policy::at(now as u64),
            )
            .is_ok()
        };

        endpoint.previous_until_ms = Some(now + 3_600_000);
        let during = signature(
            &vault,
            &tenant,
            &name,
            &endpoint,
            "msg_1",
            (now / 1000) as u64,
            body,
        )
        .unwrap();
        assert_eq!(during.split(' ').count(), 2, "{during}");
        assert!(during.split(' ').all(|s| s.starts_with("v1,")), "{during}");
        assert!(verifies(&during, SECRET), "the new secret verifies");
        assert!(
            verifies(&during, OLD),
            "an app still on the old secret verifies"
        );

        endpoint.previous_until_ms = Some(now - 1);
        let after = signature(
            &vault,
            &tenant,
            &name,
            &endpoint,
            "msg_1",
            (now / 1000) as u64,
            body,
        )
        .unwrap();
        assert_eq!(after.split(' ').count(), 1, "{after}");
        assert!(verifies(&after, SECRET));
        assert!(
            !verifies(&after, OLD),
            "the window is over: the old secret no longer verifies"
        );
    }

    /// A local app answering `status` (with `Retry-After: 7` on a 503), or redirecting to
    /// `redirect` when given.
    async fn app(status: u16, redirect: Option<String>) -> String {
        let app = axum::Router::new().route(
            "/hooks",
            axum::routing::post(move || {
                let redirect = redirect.clone();
                async move {
                    if let Some(to) = redirect {
                        return (StatusCode::FOUND, [("location", to)]).into_response();
                    }
                    let status = StatusCode::from_u16(status).unwrap();
                    (status, [("retry-after", "7")]).into_response()
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hooks", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        url
    }

    async fn send_to(url: &str, allow_private: bool) -> Sent {
        let config = config(url, r#""*""#, allow_private);
        let outbox = Outbox::new(&config).unwrap();
        let (tenant, name) = (id::<TenantId>("acme"), id::<EndpointName>("app"));
        let endpoint = &config.tenants[&tenant].endpoints[&name];
        outbox
            .send(
                &vault(),
                &tenant,
                &name,
                endpoint,
                "msg_1",
                "retell.call.analyzed",
                "{}",
                0,
            )
            .await
    }

    #[tokio::test]
    async fn each_answer_of_the_app_leads_where_it_should() {
        let ok = app(204, None).await;
        assert!(matches!(send_to(&ok, true).await, Sent::Delivered(204)));
        assert!(
            matches!(send_to(&ok, false).await, Sent::Refused(m) if m.contains("private")),
            "a loopback app needs allow_private"
        );
        let gone = app(410, None).await;
        assert!(matches!(send_to(&gone, true).await, Sent::Gone(_)));
        let busy = app(503, None).await;
        match send_to(&busy, true).await {
            Sent::Failed { retry_after, error } => {
                assert_eq!(retry_after, Some(Duration::from_secs(7)));
                assert!(error.contains("503"), "{error}");
            }
            other => panic!("{other:?}"),
        }
        // An allowed app that redirects elsewhere is not followed off its origin.
        let elsewhere = app(302, Some("http://10.0.0.1/steal".into())).await;
        assert!(
            matches!(send_to(&elsewhere, true).await, Sent::Refused(_)),
            "a redirect to another origin is refused"
        );
    }
}

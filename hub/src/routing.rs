//! Routes: what happens in one connector causes actions in another.
//!
//! When a job commits, each event it published is matched against the tenant's routes
//! (`[[tenants.<id>.routes]]`); every match becomes a durable `Task::Route` job for the target
//! connector, with an idempotency key derived from the triggering delivery (or job), the event's
//! position and the route name — so a replayed or re-processed delivery never acts twice. When
//! that job runs, the route's `when` condition is evaluated and its `input` templates rendered
//! (minijinja) against the event, and the target connector's action is invoked with the same
//! key, which connectors pass on to providers (`Idempotency-Key` and the like).

use minijinja::{Environment, UndefinedBehavior, Value};
use serde_json::{Map, Value as Json};

use crate::clock::now_ms;
use crate::config::{RouteRule, TenantConfig};
use crate::id::{ConnectorId, TenantId};
use crate::store::{NewJob, Published, Store, Task};

/// The route jobs that events published by `connector` for `tenant` trigger.
///
/// `base` identifies the trigger stably across re-runs: the publishing job's idempotency key
/// (`delivery:{id}` for a delivery's handling), which a replay keeps. The events table keys the
/// event itself `{base}:event:{i}:{name}` (`store::events`), so its route jobs' keys extend it.
pub fn jobs_for_events(
    tenant_id: &TenantId,
    tenant: &TenantConfig,
    connector: &ConnectorId,
    base: &str,
    events: &[Published],
) -> Vec<NewJob> {
    let mut jobs = Vec::new();
    for (i, Published { name, payload }) in events.iter().enumerate() {
        for route in tenant
            .routes
            .iter()
            .filter(|r| r.source == *connector && r.event == *name)
        {
            jobs.push(NewJob {
                tenant: tenant_id.clone(),
                connector: route.target.clone(),
                task: Task::Route {
                    route: route.name.clone(),
                    event: payload.clone(),
                },
                run_at_ms: now_ms(),
                idempotency_key: Some(format!("{base}:event:{i}:{name}:route:{}", route.name)),
                trace: None,
            });
        }
    }
    jobs
}

/// What a route job resolves to.
#[derive(Debug)]
pub enum Resolved {
    /// Run the route's action with this JSON input.
    Run {
        /// Rendered input.
        input: String,
    },
    /// The condition is false: nothing to do.
    Skip(String),
}

/// A template environment for one tenant: strict about undefined values (a typo in a template
/// is an error, not an empty string), with `record(kind, key)` to read one of the tenant's
/// records and `find(kind, "phone" | "email", value)` for the newest one that carries that
/// lookup, whichever connector stored it (a HubSpot or Zapier contact by a caller's number).
fn environment(store: Option<Records>) -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    let for_find = store.clone();
    env.add_function(
        "record",
        move |kind: String, key: Value| -> Result<Value, minijinja::Error> {
            let Some(Records { store, tenant, .. }) = &store else {
                return Ok(Value::from_object(CheckedRecord));
            };
            stored(store.record_get(tenant, &kind, &text(&key)))
        },
    );
    env.add_function(
        "find",
        move |kind: String, by: String, value: Value| -> Result<Value, minijinja::Error> {
            let lookup = match by.as_str() {
                "phone" => plugin_sdk::lookup::phone(&text(&value)),
                "email" => plugin_sdk::lookup::email(&text(&value)),
                other => {
                    return Err(minijinja::Error::new(
                        minijinja::ErrorKind::InvalidOperation,
                        format!("find({kind:?}, {other:?}, ..): records are found by \"phone\" or \"email\""),
                    ));
                }
            };
            let Some(Records {
                store,
                tenant,
                phone_code,
            }) = &for_find
            else {
                return Ok(Value::from_object(CheckedRecord));
            };
            // A value that is no phone number or email finds nothing, nor a number without its
            // country code for a tenant that gives none.
            let lookup =
                lookup.and_then(|l| plugin_sdk::lookup::resolve(&l, phone_code.as_deref()));
            let Some(lookup) = lookup else {
                return Ok(Value::from(()));
            };
            let found = store.record_find(tenant, &kind, &lookup, 1);
            stored(found.map(|rows| rows.into_iter().next().map(|(_, data, _)| data)))
        },
    );
    env
}

/// Where a route's `record()` and `find()` read: one tenant's records.
#[derive(Clone)]
pub struct Records {
    /// The database.
    pub store: Store,
    /// The tenant.
    pub tenant: TenantId,
    /// The tenant's `phone_country_code`, for `find(kind, "phone", value)`.
    pub phone_code: Option<String>,
}

/// What `record()` and `find()` answer under `hub check`, which has no database: a stand-in
/// record whose every field is another stand-in and renders as nothing, so a template that
/// reads a record's fields checks as it will run.
#[derive(Debug)]
struct CheckedRecord;

impl minijinja::value::Object for CheckedRecord {
    fn repr(self: &std::sync::Arc<Self>) -> minijinja::value::ObjectRepr {
        minijinja::value::ObjectRepr::Plain
    }

    fn get_value(self: &std::sync::Arc<Self>, _field: &Value) -> Option<Value> {
        Some(Value::from_object(CheckedRecord))
    }

    fn is_true(self: &std::sync::Arc<Self>) -> bool {
        true
    }

    fn render(self: &std::sync::Arc<Self>, _f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        Ok(())
    }
}

/// A template argument as text: a string as it is, anything else as JSON.
fn text(v: &Value) -> String {
    v.as_str()
        .map(str::to_string)
        .unwrap_or_else(|| v.to_string())
}

/// A stored record's JSON as a template value (`none` when there is none).
fn stored(
    json: Result<Option<String>, crate::store::StoreError>,
) -> Result<Value, minijinja::Error> {
    match json {
        Ok(Some(json)) => Ok(serde_json::from_str::<Json>(&json)
            .map(Value::from_serialize)
            .unwrap_or_default()),
        Ok(None) => Ok(Value::from(())),
        Err(e) => Err(minijinja::Error::new(
            minijinja::ErrorKind::InvalidOperation,
            format!("record lookup failed: {e}"),
        )),
    }
}

/// The template context: the event payload and the tenant.
fn context(tenant_id: &str, tenant_name: &str, event: &Json) -> Json {
    serde_json::json!({ "event": event, "tenant": { "id": tenant_id, "name": tenant_name } })
}

/// Evaluates the route's condition and renders its input.
///
/// # Errors
/// A message naming the template that failed (the job is then dead-lettered: retrying a broken
/// template cannot help).
pub fn resolve(
    route: &RouteRule,
    tenant_id: &TenantId,
    tenant_name: &str,
    event: &str,
    store: Option<Records>,
) -> Result<Resolved, String> {
    let event: Json =
        serde_json::from_str(event).map_err(|e| format!("event payload is not JSON: {e}"))?;
    let env = environment(store);
    let ctx = context(tenant_id.as_str(), tenant_name, &event);
    if let Some(when) = &route.when {
        let expr = env
            .compile_expression(when)
            .map_err(|e| format!("route `{}` when: {e:#}", route.name))?;
        let holds = expr
            .eval(&ctx)
            .map_err(|e| format!("route `{}` when: {e:#}", route.name))?;
        if !holds.is_true() {
            return Ok(Resolved::Skip(format!(
                "route `{}`: condition `{when}` is false",
                route.name
            )));
        }
    }
    let mut input = Map::new();
    for (key, value) in &route.input {
        let rendered = render_value(&env, &ctx, value)
            .map_err(|e| format!("route `{}` input.{key}: {e:#}", route.name))?;
        input.insert(key.clone(), rendered);
    }
    Ok(Resolved::Run {
        input: Json::Object(input).to_string(),
    })
}

/// Renders `value`'s templates against `ctx` (a tool's `{args, call, tenant}`), with `record()`
/// and `find()` reading `records`. Values in `ctx` are data: a template never runs them.
///
/// # Errors
/// The template's error, as text.
pub fn render(records: Option<Records>, ctx: &Json, value: &Json) -> Result<Json, String> {
    let env = environment(records);
    render_value(&env, ctx, value).map_err(|e| format!("{e:#}"))
}

/// Renders every string in a JSON value as a template; other values pass through. A string that
/// is exactly one `{{ expression }}` keeps the expression's type, so `payload = "{{ event }}"`
/// passes the event as an object and `"{{ event.duration_ms }}"` as a number.
fn render_value(env: &Environment<'_>, ctx: &Json, value: &Json) -> Result<Json, minijinja::Error> {
    Ok(match value {
        Json::String(s) => match sole_expression(s) {
            Some(expr) => {
                let v = env.compile_expression(expr)?.eval(ctx)?;
                if v.is_undefined() {
                    return Err(minijinja::Error::new(
                        minijinja::ErrorKind::UndefinedError,
                        format!("`{expr}` is undefined"),
                    ));
                }
                match serde_json::to_value(&v) {
                    Ok(Json::String(text)) => Json::String(text),
                    Ok(other) => other,
                    Err(_) => Json::String(v.to_string()),
                }
            }
            None => Json::String(env.render_str(s, ctx)?),
        },
        Json::Array(items) => Json::Array(
            items
                .iter()
                .map(|v| render_value(env, ctx, v))
                .collect::<Result<_, _>>()?,
        ),
        Json::Object(map) => {
            let mut out = Map::new();
            for (k, v) in map {
                out.insert(k.clone(), render_value(env, ctx, v)?);
            }
            Json::Object(out)
        }
        other => other.clone(),
    })
}

/// The expression of a template that is exactly `{{ expression }}`.
fn sole_expression(s: &str) -> Option<&str> {
    let inner = s.trim().strip_prefix("{{")?.strip_suffix("}}")?;
    (!inner.contains("{{") && !inner.contains("}}") && !inner.contains("{%")).then(|| inner.trim())
}

/// Checks a route against an example event (for `hub check`): the condition compiles and
/// evaluates, every input template renders. `record()` and `find()` answer a stand-in record
/// whose fields render as nothing.
///
/// # Errors
/// `(field, message)` for the first part that fails.
pub fn check(route: &RouteRule, example: &str) -> Result<(), (String, String)> {
    let event: Json = serde_json::from_str(example).map_err(|e| {
        (
            "on".to_string(),
            format!("the connector's example event is not JSON: {e}"),
        )
    })?;
    let env = environment(None);
    let ctx = context("example-tenant", "Example Tenant", &event);
    if let Some(when) = &route.when {
        let ok = env.compile_expression(when).and_then(|e| e.eval(&ctx));
        if let Err(e) = ok {
            return Err(("when".to_string(), format!("{e:#}")));
        }
    }
    for (key, value) in &route.input {
        render_value(&env, &ctx, value).map_err(|e| {
            (
                format!("input.{key}"),
                format!("against the example `{}` event: {e:#}", route.event),
            )
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tid(id: &str) -> TenantId {
        id.parse().unwrap()
    }

    fn cid(id: &str) -> ConnectorId {
        id.parse().unwrap()
    }

    fn route(when: Option<&str>, input: Json) -> RouteRule {
        RouteRule {
            name: "follow-up".into(),
            source: cid("retell"),
            event: "call.analyzed".into(),
            when: when.map(str::to_string),
            target: cid("resend"),
            action: crate::config::RouteAction::Action("send_email".into()),
            input: input.as_object().cloned().unwrap_or_default(),
            index: 0,
        }
    }

    #[test]
    fn renders_input_from_the_event() {
        let r = route(
            Some("event.successful and not event.in_voicemail"),
            serde_json::json!({ "to": "{{ event.customer_number }}", "subject": "Thanks, {{ tenant.name }}", "tags": [{"name": "call", "value": "{{ event.call_id }}"}], "n": 3 }),
        );
        let event =
            r#"{"call_id":"c1","customer_number":"+1555","successful":true,"in_voicemail":false}"#;
        match resolve(&r, &tid("abc"), "ABC", event, None).unwrap() {
            Resolved::Run { input } => {
                let v: Json = serde_json::from_str(&input).unwrap();
                assert_eq!(v["to"], "+1555");
                assert_eq!(v["subject"], "Thanks, ABC");
                assert_eq!(v["tags"][0]["value"], "c1");
                assert_eq!(v["n"], 3);
            }
            other => panic!("{other:?}"),
        }
        let voicemail =
            r#"{"call_id":"c1","customer_number":"+1555","successful":true,"in_voicemail":true}"#;
        assert!(matches!(
            resolve(&r, &tid("abc"), "ABC", voicemail, None).unwrap(),
            Resolved::Skip(_)
        ));
    }

    #[tokio::test]
    async fn find_reaches_another_connectors_record_by_a_lookup() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let contact = r#"{"email":"ann@x.io","firstname":"Ann"}"#;
        let effects = crate::store::Effects {
            records: vec![crate::store::RecordWrite {
                kind: "contact".into(),
                key: "151".into(),
                data: Some(contact.into()),
            }],
            lookups: vec![crate::store::LookupsSet {
                kind: "contact".into(),
                key: "151".into(),
                lookups: vec!["phone:+14155550100".into()],
            }],
            ..Default::default()
        };
        store
            .apply(&tid("abc"), &cid("hubspot"), effects)
            .await
            .unwrap();
        let r = route(
            Some("find('contact', 'phone', event.customer_number)"),
            serde_json::json!({ "to": "{{ find('contact', 'phone', event.customer_number).email }}" }),
        );
        let resolved = |number: &str| {
            let event = serde_json::json!({ "customer_number": number }).to_string();
            let records = Records {
                store: store.clone(),
                tenant: tid("abc"),
                phone_code: Some("+1".into()),
            };
            resolve(&r, &tid("abc"), "ABC", &event, Some(records)).unwrap()
        };
        match resolved("+1 (415) 555-0100") {
            Resolved::Run { input, .. } => assert_eq!(input, r#"{"to":"ann@x.io"}"#),
            other => panic!("{other:?}"),
        }
        // Written without its country code: the tenant's is `+1`.
        match resolved("(415) 555-0100") {
            Resolved::Run { input, .. } => assert_eq!(input, r#"{"to":"ann@x.io"}"#),
            other => panic!("{other:?}"),
        }
        assert!(matches!(resolved("+14155550199"), Resolved::Skip(_)));
        assert!(matches!(resolved("not a number"), Resolved::Skip(_)));
        let other_tenant = serde_json::json!({ "customer_number": "+14155550100" }).to_string();
        let xyz = Records {
            store,
            tenant: tid("xyz"),
            phone_code: None,
        };
        let found = resolve(&r, &tid("xyz"), "XYZ", &other_tenant, Some(xyz));
        assert!(matches!(found.unwrap(), Resolved::Skip(_)));

        // `hub check` knows the two ways to find a record.
        let fax = route(
            Some("find('contact', 'fax', event.customer_number)"),
            serde_json::json!({}),
        );
        let err = check(&fax, r#"{"customer_number":"+1"}"#).unwrap_err();
        assert_eq!(err.0, "when");
        assert!(
            err.1.contains(r#"found by "phone" or "email""#),
            "{}",
            err.1
        );
        check(&r, r#"{"customer_number":"+1"}"#).unwrap();
        let by_key = route(
            None,
            serde_json::json!({ "to": "{{ record('contact', event.customer_number).properties.email }}" }),
        );
        check(&by_key, r#"{"customer_number":"+1"}"#).unwrap();
    }

    /// A caller can say anything: what a tool's arguments hold is rendered as text, never run
    /// as template code, and reaches nothing the template does not name.
    #[test]
    fn arguments_are_data_never_template_code() {
        let ctx = serde_json::json!({
            "args": { "name": "{{ tenant.id }}{% for x in range(9999999) %}x{% endfor %}", "n": "{{ 7 * 7 }}" },
            "call": {},
            "tenant": { "id": "abc", "name": "ABC" },
        });
        let input =
            serde_json::json!({ "body": "Hi {{ args.name }}, {{ args.n }}", "to": "{{ args.n }}" });
        let out = render(None, &ctx, &input).unwrap();
        assert_eq!(
            out["body"],
            "Hi {{ tenant.id }}{% for x in range(9999999) %}x{% endfor %}, {{ 7 * 7 }}"
        );
        assert_eq!(out["to"], "{{ 7 * 7 }}");
    }

    #[test]
    fn a_typo_is_an_error_not_an_empty_string() {
        let r = route(
            None,
            serde_json::json!({ "to": "{{ event.custmer_number }}" }),
        );
        let err = check(&r, r#"{"customer_number":"+1"}"#).unwrap_err();
        assert_eq!(err.0, "input.to");
        let r = route(Some("event.x =="), serde_json::json!({}));
        assert_eq!(check(&r, "{}").unwrap_err().0, "when");
    }

    #[test]
    fn keys_are_stable_per_trigger_event_and_route() {
        let mut tenant = TenantConfig {
            name: "ABC".into(),
            connectors: Default::default(),
            timezone: chrono_tz::UTC,
            phone_country_code: None,
            capabilities: Default::default(),
            routes: vec![route(None, serde_json::json!({}))],
            schedules: vec![],
            api_tokens: Default::default(),
            endpoints: Default::default(),
            tools: Default::default(),
        };
        tenant.routes.push(RouteRule {
            name: "sms".into(),
            target: cid("twilio"),
            ..route(None, serde_json::json!({}))
        });
        let event = |name: &str| Published {
            name: name.into(),
            payload: "{}".into(),
        };
        let events = vec![event("call.analyzed"), event("call.ended")];
        let a = jobs_for_events(&tid("abc"), &tenant, &cid("retell"), "delivery:7", &events);
        let b = jobs_for_events(&tid("abc"), &tenant, &cid("retell"), "delivery:7", &events);
        assert_eq!(
            a.len(),
            2,
            "two routes on call.analyzed, none on call.ended"
        );
        let keys: Vec<_> = a
            .iter()
            .map(|j| j.idempotency_key.clone().unwrap())
            .collect();
        assert_eq!(
            keys,
            b.iter()
                .map(|j| j.idempotency_key.clone().unwrap())
                .collect::<Vec<_>>()
        );
        assert_ne!(keys[0], keys[1]);
        assert!(
            jobs_for_events(&tid("abc"), &tenant, &cid("twilio"), "delivery:7", &events).is_empty(),
            "source must match"
        );
    }
}

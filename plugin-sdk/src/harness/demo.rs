//! The connector the harness's own doc examples run: one route (`events`, unsigned), an event
//! (`noted`), an action (`notify`, once per key, through `https://api.example.com`) and a job
//! (`tick`, and `register_webhooks`, which keeps the secret the provider answers), touching records, lookups, kv, events, jobs, the log and outbound HTTP. Not for
//! connectors; hidden from the docs.

use serde_json::{Value, json};

use crate::*;

/// The doc examples' connector.
pub struct Demo;

impl Connector for Demo {
    fn manifest() -> Manifest {
        Manifest {
            routes: vec![route("events", SignatureScheme::Custom, "api_key")],
            events: vec![EventDecl {
                name: "noted".into(),
                description: String::new(),
                example: "{}".into(),
            }],
            actions: vec![ActionDecl {
                name: "notify".into(),
                description: String::new(),
                inputs: vec![field("text", true, "")],
                outputs: vec![field("id", true, "")],
                implements: None,
            }],
            jobs: vec![
                JobDecl {
                    name: "tick".into(),
                    description: String::new(),
                    schedule: None,
                },
                JobDecl {
                    name: "register_webhooks".into(),
                    description: String::new(),
                    schedule: None,
                },
            ],
            credentials: vec![
                field("api_key", true, ""),
                field("signing_secret", false, ""),
            ],
            outbound_hosts: vec!["https://api.example.com".into()],
            ..manifest("demo", "0.1.0")
        }
    }

    fn handle_delivery(d: Delivery) -> Result<Outcome, Error> {
        let body: Value = d.json()?;
        let id = body["id"].as_str().unwrap_or("none").to_string();
        records::upsert("note", &id, &body)?;
        records::set_lookups(
            "note",
            &id,
            &[body["email"].as_str().and_then(lookup::email)],
        );
        kv::set("last", id.as_bytes());
        publish("noted", &json!({ "id": id }))?;
        enqueue_job("tick", &json!({ "id": id }), 60_000)?;
        log(Level::Info, &format!("noted {id}"));
        Ok(Outcome::handled())
    }

    fn respond(_: Delivery) -> Result<Reply, Error> {
        Ok(Reply::new(200, "text/plain", "ok"))
    }

    fn verify(d: Delivery) -> Result<bool, Error> {
        Ok(d.header("x-ok") == Some("yes"))
    }

    fn run_action(_: String, input: String, key: String) -> Result<String, Error> {
        if let Some(id) = kv::get_string(&format!("sent:{key}")) {
            return Ok(json!({ "id": id }).to_string());
        }
        let input: Value =
            serde_json::from_str(&input).map_err(|e| Error::bad_request(e.to_string()))?;
        let sent: Value = http::Request::post("https://api.example.com/notify")
            .bearer("api_key")
            .json(&input)?
            .send()?
            .error_for_status()?
            .json()?;
        let id = sent["id"].as_str().unwrap_or_default().to_string();
        kv::set_marker(&format!("sent:{key}"), id.as_bytes());
        Ok(json!({ "id": id }).to_string())
    }

    fn run_job(name: String, input: String) -> Result<(), Error> {
        if name == "register_webhooks" {
            // The provider answers the new webhook's signing secret: the host keeps it.
            let answer: Value = http::Request::post("https://api.example.com/webhooks")
                .bearer("api_key")
                .json(&json!({ "url": route_url("events") }))?
                .capture("/secret", "signing_secret")
                .send()?
                .error_for_status()?
                .json()?;
            return records::upsert("webhook", answer["id"].as_str().unwrap_or("none"), &answer);
        }
        let input: Value =
            serde_json::from_str(&input).map_err(|e| Error::bad_request(e.to_string()))?;
        records::upsert("tick", input["id"].as_str().unwrap_or("none"), &input)
    }
}

//! Bad input over every operation `openapi.json` lists, each answer validated against the
//! document by the independent validators (`tests/signers/openapi-check.js`): no token, a
//! number parameter that is negative, not a number or past 64 bits, a path naming nothing, a
//! body that is not JSON, JSON of the wrong shape, no `Content-Type`. Every one is a 4xx with
//! the documented JSON error body and a status the document lists for the operation; unknown
//! paths and methods under `/api/v1` answer the same body.

use serde_json::{Value, json};

use crate::app::openapi_check;
use crate::chain::{shipped_hub, stand_in};
use crate::util::*;

const ADMIN: &str = "demo-admin-token";

/// A request to make: the path, the token (none: no `Authorization`), and the body with its
/// content type (none: no `Content-Type`).
type Case<'a> = (String, Option<&'a str>, Option<(&'a str, Option<&'a str>)>);

/// One request's answer, as the checker takes it, plus its content type.
async fn ask(
    hub: &TestHub,
    method: &str,
    template: &str,
    path: &str,
    token: Option<&str>,
    body: Option<(&str, Option<&str>)>,
) -> (Value, String) {
    let url = format!("{}{path}", hub.base());
    let mut req = match method {
        "get" => hub.client.get(url),
        "post" => hub.client.post(url),
        other => hub
            .client
            .request(other.to_uppercase().parse().unwrap(), url),
    };
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some((text, kind)) = body {
        req = req.body(text.to_string());
        if let Some(kind) = kind {
            req = req.header("content-type", kind);
        }
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let kind = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let text = resp.text().await.unwrap();
    let body = serde_json::from_str::<Value>(&text).unwrap_or(json!({ "not json": text }));
    let what = format!("{} {path} {body:?}", method.to_uppercase());
    (
        json!({ "method": method, "path": template, "status": status, "body": body }),
        format!("{kind}|{what}"),
    )
}

fn is_integer(schema: &Value) -> bool {
    match &schema["type"] {
        Value::String(t) => t == "integer",
        Value::Array(ts) => ts.iter().any(|t| t == "integer"),
        _ => false,
    }
}

#[tokio::test]
async fn bad_input_to_every_operation_gets_the_documented_json_error() {
    let (stand_in_port, _log) = stand_in().await;
    let hub = shipped_hub(stand_in_port).await;
    let spec: Value = hub.api("/openapi.json").await;
    let good = |name: &str| match name {
        "tenant" => "abc-healthcare",
        "endpoint" => "crm",
        _ => "1",
    };
    let mut answers = Vec::new();
    let mut kinds = Vec::new();
    let mut operations = 0;
    for (template, item) in spec["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            operations += 1;
            let params = op["parameters"].as_array().cloned().unwrap_or_default();
            let fill = |bad: Option<(&str, &str)>| {
                let mut path = template.clone();
                for p in &params {
                    let name = p["name"].as_str().unwrap();
                    if p["in"] == "path" {
                        let value = match bad {
                            Some((n, v)) if n == name => v.to_string(),
                            _ => good(name).to_string(),
                        };
                        path = path.replace(&format!("{{{name}}}"), &value);
                    }
                }
                if let Some((name, value)) = bad
                    && params
                        .iter()
                        .any(|p| p["name"] == name && p["in"] == "query")
                {
                    path = format!("{path}?{name}={value}");
                }
                path
            };
            let has_body = op.get("requestBody").is_some();
            let body = has_body.then_some(("{}", Some("application/json")));
            let mut cases: Vec<Case> = vec![(fill(None), None, body)];
            for p in &params {
                let name = p["name"].as_str().unwrap();
                let bad_values: &[&str] = if is_integer(&p["schema"]) {
                    &["-1", "abc", "99999999999999999999", "1.5"]
                } else if p["in"] == "path" {
                    &["no-such-thing"]
                } else {
                    &[]
                };
                for v in bad_values {
                    cases.push((fill(Some((name, v))), Some(ADMIN), body));
                }
            }
            if has_body {
                for bad in [
                    ("{", Some("application/json")),
                    ("[1, 2]", Some("application/json")),
                    (
                        "{\"delivery\": \"abc\", \"job\": [], \"connector\": 5}",
                        Some("application/json"),
                    ),
                    ("{}", None),
                    ("{}", Some("text/plain")),
                ] {
                    cases.push((fill(None), Some(ADMIN), Some(bad)));
                }
            }
            for (path, token, body) in cases {
                let (answer, kind) = ask(&hub, method, template, &path, token, body).await;
                answers.push(answer);
                kinds.push(kind);
            }
        }
    }
    assert!(operations >= 14, "{operations} operations");
    // Paths and methods the API does not have.
    for (method, path) in [
        ("get", "/api/v1/no-such-operation"),
        ("delete", "/api/v1/deliveries"),
    ] {
        let (answer, kind) = ask(&hub, method, path, path, Some(ADMIN), None).await;
        assert!(
            kind.starts_with("application/json") && answer["body"]["error"].is_string(),
            "{kind} {answer}"
        );
        assert!(
            [404, 405].contains(&answer["status"].as_u64().unwrap()),
            "{answer}"
        );
    }

    let mut wrong = Vec::new();
    for (answer, kind) in answers.iter().zip(&kinds) {
        let status = answer["status"].as_u64().unwrap();
        if !kind.starts_with("application/json") {
            wrong.push(format!("not JSON: {kind}"));
        }
        if !(400..500).contains(&status) {
            wrong.push(format!("{status}, not a 4xx: {kind}"));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
    let report = openapi_check(&spec, &answers);
    assert_eq!(report["spec_errors"], json!([]), "{report:#}");
    assert_eq!(
        report["answer_errors"],
        json!([]),
        "every answer is a status the document lists, with its body: {report:#}"
    );
    assert!(answers.len() >= 60, "{} answers", answers.len());
}

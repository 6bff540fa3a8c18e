//! Checks requests against a Google API discovery document (the format Google publishes its
//! APIs in, instead of OpenAPI): the method is found by its HTTP method and path template, and
//! every query parameter must be one it (or the API) declares, of the declared type and enum;
//! a JSON body must fit the method's request schema, property by property, recursively.

use serde_json::Value;

/// What is wrong with one request (empty: nothing).
pub fn problems(doc: &Value, method: &str, url: &url::Url, body: Option<&Value>) -> Vec<String> {
    let mut out = Vec::new();
    let service = format!("/{}", doc["servicePath"].as_str().unwrap_or_default());
    let Some(rel) = url.path().strip_prefix(&service) else {
        return vec![format!("{} is outside {service}", url.path())];
    };
    let Some(m) = find_method(&doc["resources"], method, rel) else {
        return vec![format!("no method for {method} {rel}")];
    };
    let here = format!("{method} {rel} ({})", m["id"].as_str().unwrap_or("?"));
    let declared = |name: &str| -> Option<&Value> {
        m["parameters"]
            .get(name)
            .filter(|p| p["location"] == "query")
            .or_else(|| doc["parameters"].get(name))
    };
    for (name, value) in url.query_pairs() {
        match declared(&name) {
            None => out.push(format!("{here}: undeclared query parameter `{name}`")),
            Some(p) => {
                if let Err(e) = fits_scalar(p, &Value::String(value.to_string()), true) {
                    out.push(format!("{here}: query `{name}`: {e}"));
                }
            }
        }
    }
    if let Some(params) = m["parameters"].as_object() {
        for (name, p) in params {
            if p["required"] == true
                && p["location"] == "query"
                && !url.query_pairs().any(|(k, _)| k == name.as_str())
            {
                out.push(format!("{here}: missing required query `{name}`"));
            }
        }
    }
    match (&m["request"]["$ref"], body) {
        (Value::String(schema), Some(b)) => {
            fits(doc, &doc["schemas"][schema.as_str()], b, schema, &mut out);
        }
        (Value::Null, Some(b)) if !b.is_null() => {
            out.push(format!("{here}: takes no body, got one"));
        }
        (Value::String(schema), None) => out.push(format!("{here}: needs a {schema} body")),
        _ => {}
    }
    out
}

fn find_method<'d>(resources: &'d Value, method: &str, rel: &str) -> Option<&'d Value> {
    for resource in resources.as_object()?.values() {
        if let Some(methods) = resource["methods"].as_object() {
            for m in methods.values() {
                if m["httpMethod"] == method
                    && matches_template(m["path"].as_str().unwrap_or_default(), rel)
                {
                    return Some(m);
                }
            }
        }
        if let Some(found) = find_method(&resource["resources"], method, rel) {
            return Some(found);
        }
    }
    None
}

fn matches_template(template: &str, path: &str) -> bool {
    let (t, p): (Vec<&str>, Vec<&str>) = (template.split('/').collect(), path.split('/').collect());
    t.len() == p.len()
        && t.iter().zip(&p).all(|(t, p)| {
            if t.starts_with('{') {
                !p.is_empty()
            } else {
                t == p
            }
        })
}

/// A scalar against its declared type; `text` when it came as text (a query value).
fn fits_scalar(p: &Value, v: &Value, text: bool) -> Result<(), String> {
    let ty = p["type"].as_str().unwrap_or("any");
    let s = v.as_str();
    match ty {
        "boolean" if text => matches!(s, Some("true" | "false"))
            .then_some(())
            .ok_or_else(|| format!("{v} is not a boolean")),
        "boolean" => v
            .is_boolean()
            .then_some(())
            .ok_or_else(|| format!("{v} is not a boolean")),
        "integer" => {
            let n = if text {
                s.and_then(|s| s.parse::<i64>().ok())
            } else {
                v.as_i64()
            };
            let Some(n) = n else {
                return Err(format!("{v} is not an integer"));
            };
            let bound = |k: &str| p[k].as_str().and_then(|b| b.parse::<i64>().ok());
            if bound("minimum").is_some_and(|min| n < min)
                || bound("maximum").is_some_and(|max| n > max)
            {
                return Err(format!("{n} is out of range"));
            }
            Ok(())
        }
        "string" => {
            let Some(s) = s else {
                return Err(format!("{v} is not a string"));
            };
            if let Some(values) = p["enum"].as_array()
                && !values.iter().any(|e| e == s)
            {
                return Err(format!("`{s}` is not one of {}", p["enum"]));
            }
            match p["format"].as_str() {
                Some("date-time") => chrono::DateTime::parse_from_rfc3339(s)
                    .map(|_| ())
                    .map_err(|e| format!("`{s}` is not RFC 3339: {e}")),
                Some("date") => chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
                    .map(|_| ())
                    .map_err(|e| format!("`{s}` is not a date: {e}")),
                Some("int64") => s
                    .parse::<i64>()
                    .map(|_| ())
                    .map_err(|_| format!("`{s}` is not an int64 in a string")),
                _ => Ok(()),
            }
        }
        _ => Ok(()),
    }
}

/// A JSON value against a schema (`$ref`, object properties, arrays, scalars).
fn fits(doc: &Value, schema: &Value, v: &Value, at: &str, out: &mut Vec<String>) {
    if let Some(name) = schema["$ref"].as_str() {
        return fits(doc, &doc["schemas"][name], v, at, out);
    }
    match schema["type"].as_str() {
        Some("object") => {
            let Some(obj) = v.as_object() else {
                return out.push(format!("{at}: {v} is not an object"));
            };
            for (k, item) in obj {
                let here = format!("{at}.{k}");
                match (
                    schema["properties"].get(k),
                    schema.get("additionalProperties"),
                ) {
                    (Some(p), _) => fits(doc, p, item, &here, out),
                    (None, Some(extra)) => fits(doc, extra, item, &here, out),
                    (None, None) => out.push(format!("{here}: not a property of the schema")),
                }
            }
        }
        Some("array") => {
            let Some(items) = v.as_array() else {
                return out.push(format!("{at}: {v} is not an array"));
            };
            for (i, item) in items.iter().enumerate() {
                fits(doc, &schema["items"], item, &format!("{at}[{i}]"), out);
            }
        }
        Some(_) => {
            if let Err(e) = fits_scalar(schema, v, false) {
                out.push(format!("{at}: {e}"));
            }
        }
        None => {}
    }
}

#[test]
fn the_checker_refuses_what_google_would() {
    let doc: Value = serde_json::from_str(
        &std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../tests/provider-specs/google_calendar_v3.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let at =
        |u: &str| url::Url::parse(&format!("https://www.googleapis.com/calendar/v3/{u}")).unwrap();
    let good = serde_json::json!({"id": "abc12", "summary": "x",
        "start": {"dateTime": "2030-03-11T09:00:00-04:00", "timeZone": "America/New_York"},
        "end": {"dateTime": "2030-03-11T09:30:00-04:00"},
        "attendees": [{"email": "a@example.com", "displayName": "A"}],
        "conferenceData": {"createRequest": {"requestId": "k1", "conferenceSolutionKey": {"type": "hangoutsMeet"}}}});
    assert_eq!(
        problems(
            &doc,
            "POST",
            &at("calendars/primary/events?conferenceDataVersion=1&sendUpdates=all"),
            Some(&good)
        ),
        Vec::<String>::new()
    );
    assert_eq!(
        problems(
            &doc,
            "GET",
            &at(
                "calendars/primary/events?maxResults=250&singleEvents=true&showDeleted=true&timeMin=2030-01-01T00:00:00Z"
            ),
            None
        ),
        Vec::<String>::new()
    );
    let bad_param = problems(
        &doc,
        "GET",
        &at("calendars/primary/events?since=2030"),
        None,
    );
    assert!(
        bad_param[0].contains("undeclared query parameter `since`"),
        "{bad_param:?}"
    );
    let bad_enum = problems(
        &doc,
        "POST",
        &at("calendars/primary/events?sendUpdates=everyone"),
        Some(&good),
    );
    assert!(bad_enum[0].contains("not one of"), "{bad_enum:?}");
    let bad_range = problems(
        &doc,
        "GET",
        &at("calendars/primary/events?maxResults=0"),
        None,
    );
    assert!(bad_range[0].contains("out of range"), "{bad_range:?}");
    let bad_time = problems(
        &doc,
        "GET",
        &at("calendars/primary/events?timeMin=tomorrow"),
        None,
    );
    assert!(bad_time[0].contains("RFC 3339"), "{bad_time:?}");
    let mut wrong = good.clone();
    wrong["start"]["when"] = serde_json::json!("9am");
    wrong["attendees"][0]["optional"] = serde_json::json!("yes");
    let body = problems(&doc, "POST", &at("calendars/primary/events"), Some(&wrong));
    assert_eq!(body.len(), 2, "{body:?}");
    assert!(problems(&doc, "POST", &at("channels/stop"), None)[0].contains("needs a Channel body"));
    assert!(problems(&doc, "PUT", &at("freeBusy"), None)[0].contains("no method"));
}

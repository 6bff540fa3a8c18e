//! Reading what a Zap sent: a JSON object, a JSON array of objects, or an
//! `application/x-www-form-urlencoded` form, as field maps; and the query string of the URL
//! it called. Pure.
//!
//! "Webhooks by Zapier" sends JSON when the Zap picks payload type `json` and a form for `form`
//! (the default). The content type decides; without one, a body that starts with `{` or `[` is
//! JSON and anything else a form.

use serde_json::{Map, Value};

/// One item's fields, by name.
pub type Fields = Map<String, Value>;

/// Most items one request may carry (a JSON array).
pub const MAX_ITEMS: usize = 100;

/// Whether a body is JSON (by its content type, else by its first byte).
pub fn is_json(content_type: Option<&str>, body: &[u8]) -> bool {
    let ct = content_type.unwrap_or_default().to_ascii_lowercase();
    if ct.contains("json") {
        return true;
    }
    if ct.contains("x-www-form-urlencoded") || ct.contains("multipart/") {
        return false;
    }
    matches!(
        body.iter().find(|b| !b.is_ascii_whitespace()),
        Some(b'{') | Some(b'[')
    )
}

/// The items of a body: one for an object or a form, one per object of an array.
///
/// # Errors
/// A message when the body is empty, malformed, or not made of objects.
pub fn items(content_type: Option<&str>, body: &[u8]) -> Result<Vec<Fields>, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err("the body is empty".into());
    }
    if !is_json(content_type, body) {
        let fields = form(body);
        if fields.is_empty() {
            return Err("the form body has no fields".into());
        }
        return Ok(vec![fields]);
    }
    let value: Value =
        serde_json::from_slice(body).map_err(|e| format!("the body is not JSON: {e}"))?;
    match value {
        Value::Object(map) => Ok(vec![map]),
        Value::Array(list) => {
            if list.len() > MAX_ITEMS {
                return Err(format!(
                    "{} items in one request; at most {MAX_ITEMS}",
                    list.len()
                ));
            }
            list.into_iter()
                .map(|item| match item {
                    Value::Object(map) => Ok(map),
                    other => Err(format!(
                        "array items must be objects, not {}",
                        type_name(&other)
                    )),
                })
                .collect()
        }
        other => Err(format!(
            "the body must be a JSON object or array, not {}",
            type_name(&other)
        )),
    }
}

/// A form body as fields; a repeated name keeps its last value.
pub fn form(body: &[u8]) -> Fields {
    form_urlencoded::parse(body)
        .into_owned()
        .map(|(k, v)| (k, Value::String(v)))
        .collect()
}

/// The query-string parameters of a URL as fields.
pub fn query(url: &str) -> Fields {
    let q = url.split_once('?').map(|(_, q)| q).unwrap_or_default();
    let q = q.split_once('#').map(|(q, _)| q).unwrap_or(q);
    form(q.as_bytes())
}

/// The first of `names` that holds a non-empty string, number or boolean, as trimmed text.
pub fn text(fields: &Fields, names: &[&str]) -> Option<String> {
    names.iter().find_map(|name| match fields.get(*name)? {
        Value::String(s) => Some(s.trim().to_string()).filter(|s| !s.is_empty()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    })
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_and_form_are_told_apart() {
        assert!(is_json(Some("application/json; charset=utf-8"), b"a=1"));
        assert!(!is_json(Some("application/x-www-form-urlencoded"), b"{}"));
        assert!(is_json(None, b"  {\"a\":1}"));
        assert!(is_json(Some("text/plain"), b"[1]"));
        assert!(!is_json(None, b"a=1&b=2"));
    }

    #[test]
    fn items_from_each_shape() {
        let one = items(Some("application/json"), br#"{"email":"a@b.c"}"#).unwrap();
        assert_eq!(
            one,
            vec![json!({"email": "a@b.c"}).as_object().cloned().unwrap()]
        );
        let many = items(None, br#"[{"id":1},{"id":2}]"#).unwrap();
        assert_eq!(many.len(), 2);
        let f = items(
            Some("application/x-www-form-urlencoded"),
            b"type=deal&id=d1&name=Big+deal&id=d2",
        )
        .unwrap();
        assert_eq!(f[0]["name"], json!("Big deal"));
        assert_eq!(f[0]["id"], json!("d2"), "last value wins");
    }

    #[test]
    fn bad_bodies_say_why() {
        assert!(items(None, b"  ").unwrap_err().contains("empty"));
        assert!(
            items(Some("application/json"), b"{")
                .unwrap_err()
                .contains("not JSON")
        );
        assert!(items(None, b"[1]").unwrap_err().contains("objects"));
        assert!(
            items(Some("application/json"), b"\"x\"")
                .unwrap_err()
                .contains("a string")
        );
        let big = format!("[{}]", vec!["{}"; MAX_ITEMS + 1].join(","));
        assert!(items(None, big.as_bytes()).unwrap_err().contains("at most"));
        assert!(items(Some("application/x-www-form-urlencoded"), b"&&").is_err());
    }

    #[test]
    fn query_and_text() {
        let q = query("https://h/hooks/t/zapier/sample?event=call.analyzed&x=%20y#frag");
        assert_eq!(q["event"], json!("call.analyzed"));
        assert_eq!(q["x"], json!(" y"));
        assert!(query("https://h/none").is_empty());
        let f = json!({"a": "  ", "b": 5, "c": " v ", "d": true, "e": null})
            .as_object()
            .cloned()
            .unwrap();
        assert_eq!(text(&f, &["a", "c"]).as_deref(), Some("v"));
        assert_eq!(text(&f, &["b"]).as_deref(), Some("5"));
        assert_eq!(text(&f, &["d"]).as_deref(), Some("true"));
        assert_eq!(text(&f, &["e", "zz"]), None);
    }
}

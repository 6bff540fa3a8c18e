//! Reads one value at a JSON pointer (RFC 6901) straight from a request body, without building
//! the document: each level is scanned for the one key or index, and everything else is skipped
//! unallocated. A webhook's identity and event type are two or three such reads of a body the
//! hub otherwise keeps as bytes.
//!
//! The whole body is still checked to be JSON exactly as `serde_json` parses it, and a repeated
//! key counts by its last occurrence, so the answers are the ones `serde_json::Value::pointer`
//! gives on the parsed document (a fuzz target, `fuzz/fuzz_targets/bodies.rs`, holds it to that).

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

/// A request body, read as JSON one pointer at a time.
pub struct Json<'a> {
    body: &'a [u8],
    /// Whether it is JSON at all; found on the first read.
    readable: std::cell::OnceCell<bool>,
}

impl<'a> Json<'a> {
    pub fn new(body: &'a [u8]) -> Self {
        Json {
            body,
            readable: std::cell::OnceCell::new(),
        }
    }

    /// The body's bytes.
    pub fn raw(&self) -> &'a [u8] {
        self.body
    }

    /// The text of the value at `pointer`, as the hub stores it in an identity: a string as
    /// its contents, any other value as compact JSON; `None` for `null`, a missing value, or a
    /// body that is not JSON.
    pub fn select(&self, pointer: &str) -> Option<String> {
        // Skipping a value checks its syntax but not its depth nor its numbers' range, so the
        // whole body is checked once first: what `serde_json` would not parse has no values.
        let readable = || serde_json::from_slice::<Valid>(self.body).is_ok();
        if !*self.readable.get_or_init(readable) {
            return None;
        }
        let value = find(self.body, pointer)?;
        match value.get().as_bytes().first()? {
            b'"' => serde_json::from_str::<String>(value.get()).ok(),
            b'n' => None,
            // Numbers, booleans, objects, arrays: as `Value::to_string` writes them.
            _ => serde_json::from_str::<serde_json::Value>(value.get())
                .ok()
                .map(|v| v.to_string()),
        }
    }
}

/// The raw value at `pointer` (`""` is the whole body).
fn find<'a>(body: &'a [u8], pointer: &str) -> Option<&'a RawValue> {
    let mut tokens = match pointer {
        "" => None,
        p => Some(p.strip_prefix('/')?.split('/')),
    };
    let mut de = serde_json::Deserializer::from_slice(body);
    let Some(first) = tokens.as_mut().and_then(Iterator::next) else {
        let whole: &RawValue = serde::Deserialize::deserialize(&mut de).ok()?;
        de.end().ok()?;
        return Some(whole);
    };
    let mut current = Step(&unescape(first)).deserialize(&mut de).ok()??;
    de.end().ok()?;
    for token in tokens.into_iter().flatten() {
        let mut de = serde_json::Deserializer::from_str(current.get());
        current = Step(&unescape(token)).deserialize(&mut de).ok()??;
    }
    Some(current)
}

/// A document `serde_json` parses (syntax, UTF-8, nesting depth, number range), read through
/// without building anything.
struct Valid;

impl<'de> serde::Deserialize<'de> for Valid {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Valid, D::Error> {
        d.deserialize_any(ValidVisitor)
    }
}

struct ValidVisitor;

impl<'de> Visitor<'de> for ValidVisitor {
    type Value = Valid;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Valid, A::Error> {
        while map.next_entry::<Valid, Valid>()?.is_some() {}
        Ok(Valid)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Valid, A::Error> {
        while seq.next_element::<Valid>()?.is_some() {}
        Ok(Valid)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Valid, E> {
        Ok(Valid)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Valid, E> {
        Ok(Valid)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Valid, E> {
        Ok(Valid)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Valid, E> {
        Ok(Valid)
    }
    fn visit_str<E>(self, _: &str) -> Result<Valid, E> {
        Ok(Valid)
    }
    fn visit_unit<E>(self) -> Result<Valid, E> {
        Ok(Valid)
    }
}

/// `~1` is `/` and `~0` is `~` inside a pointer's token.
fn unescape(token: &str) -> std::borrow::Cow<'_, str> {
    if token.contains('~') {
        token.replace("~1", "/").replace("~0", "~").into()
    } else {
        token.into()
    }
}

/// One level of the walk: the member named by the token of an object, or the element it
/// numbers of an array; `None` when there is none (or the value is neither).
struct Step<'t>(&'t str);

impl<'de> DeserializeSeed<'de> for Step<'_> {
    type Value = Option<&'de RawValue>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Step<'_> {
    type Value = Option<&'de RawValue>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        while let Some(wanted) = map.next_key_seed(KeyIs(self.0))? {
            if wanted {
                // The last of repeated keys wins, as in a parsed document.
                found = Some(map.next_value::<&'de RawValue>()?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        // RFC 6901 array indexes: decimal digits, no leading zero (other than "0" itself).
        let wanted = match self.0.as_bytes() {
            [b'0'] => Some(0),
            [b'1'..=b'9', rest @ ..] if rest.iter().all(u8::is_ascii_digit) => {
                self.0.parse::<usize>().ok()
            }
            _ => None,
        };
        let mut found = None;
        let mut index = 0usize;
        loop {
            if Some(index) == wanted {
                match seq.next_element::<&'de RawValue>()? {
                    Some(v) => found = Some(v),
                    None => break,
                }
            } else if seq.next_element::<IgnoredAny>()?.is_none() {
                break;
            }
            index += 1;
        }
        Ok(found)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}

/// Whether an object's key is the token, compared where the parser holds it (no copy).
struct KeyIs<'t>(&'t str);

impl<'de> DeserializeSeed<'de> for KeyIs<'_> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for KeyIs<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E>(self, key: &str) -> Result<bool, E> {
        Ok(key == self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::Value;

    /// What the hub did before: parse the document, then `Value::pointer`.
    fn parsed(body: &[u8], pointer: &str) -> Option<String> {
        let doc: Value = serde_json::from_slice(body).ok()?;
        match doc.pointer(pointer)? {
            Value::String(s) => Some(s.clone()),
            Value::Null => None,
            other => Some(other.to_string()),
        }
    }

    #[test]
    fn reads_what_a_parsed_document_gives() {
        let body = br#"{"event":"call_ended","call":{"call_id":"c_1","n":7,"f":1.50,"ok":true,
            "tags":["a",{"b":"x\"y"}],"nested":{ "k" : [1, 2] },"none":null},
            "a/b":"slash","m~n":"tilde","dup":1,"dup":2}"#;
        for p in [
            "",
            "/event",
            "/call/call_id",
            "/call/n",
            "/call/f",
            "/call/ok",
            "/call/tags/0",
            "/call/tags/1/b",
            "/call/tags/2",
            "/call/tags/01",
            "/call/nested",
            "/call/none",
            "/call/missing",
            "/event/deeper",
            "/a~1b",
            "/m~0n",
            "/dup",
            "event",
        ] {
            assert_eq!(Json::new(body).select(p), parsed(body, p), "pointer {p:?}");
        }
        assert_eq!(
            Json::new(body).select("/call/call_id").as_deref(),
            Some("c_1")
        );
        assert_eq!(
            Json::new(body).select("/call/tags/1/b").as_deref(),
            Some("x\"y")
        );
        assert_eq!(Json::new(body).select("/dup").as_deref(), Some("2"));
    }

    /// How deep `serde_json` nests before it refuses a document (its recursion limit, 128).
    const MAX_DEPTH: usize = 127;

    #[test]
    fn nesting_is_refused_where_a_parser_refuses_it() {
        for depth in [1, 100, MAX_DEPTH - 1, MAX_DEPTH, MAX_DEPTH + 1, 100_000] {
            let body = format!(
                "{{\"id\":\"deep\",\"s\":\"[[[\\\"[\",\"x\":{}0{}}}",
                "[".repeat(depth - 1),
                "]".repeat(depth - 1)
            );
            let ours = Json::new(body.as_bytes()).select("/id");
            assert_eq!(ours, parsed(body.as_bytes(), "/id"), "depth {depth}");
            assert_eq!(ours.is_some(), depth <= MAX_DEPTH, "depth {depth}");
        }
    }

    #[test]
    fn a_body_that_is_not_json_has_no_values() {
        for body in [
            &b"{\"id\":\"x\""[..],
            b"{\"id\":\"x\"} trailing",
            b"{\"id\":\"x\",\"rest\":[1,}",
            b"id=x",
            b"",
            b"\xff\xfe",
            // Found by the fuzzer: numbers `serde_json` refuses as out of range.
            b"{\"id\":\"x\",\"n\":7e9999996}",
            b"{\"id\":1e999,\"id\":\"x\"}",
        ] {
            assert_eq!(Json::new(body).select("/id"), None, "{body:?}");
        }
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            (-1e6f64..1e6).prop_map(Value::from),
            "[a-z~/\"\\\\é ]{0,6}".prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 32, 5, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Value::from),
                prop::collection::vec(("[a-c~/]{0,2}", inner), 0..5)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn agrees_with_value_pointer(
            doc in json_value(),
            path in prop::collection::vec("[a-c~/0-3]{0,2}", 0..4),
            pretty in any::<bool>(),
        ) {
            let body = if pretty {
                serde_json::to_vec_pretty(&doc).unwrap()
            } else {
                serde_json::to_vec(&doc).unwrap()
            };
            let pointer: String = path
                .iter()
                .map(|t| format!("/{}", t.replace('~', "~0").replace('/', "~1")))
                .collect();
            let json = Json::new(&body);
            prop_assert_eq!(json.select(&pointer), parsed(&body, &pointer));
            prop_assert_eq!(json.select("/nope/0"), parsed(&body, "/nope/0"));
        }
    }
}

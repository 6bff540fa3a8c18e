//! Request bodies as the hub reads them: form bodies (Twilio's, and the form selectors), JSON
//! selectors (identity, event type) and array splitting. Nothing may panic, and the JSON
//! pointer walk over raw bytes must give exactly what parsing the body and calling
//! `serde_json::Value::pointer` gives (the walk is an optimization, not a second meaning).

#![no_main]

use arbitrary::Arbitrary;
use hub::ingress::pointer::Json;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

#[derive(Arbitrary, Debug)]
struct Input {
    body: Vec<u8>,
    pointers: Vec<String>,
}

/// What the hub did before the walk: parse, then `Value::pointer`.
fn parsed(body: &[u8], pointer: &str) -> Option<String> {
    let doc: Value = serde_json::from_slice(body).ok()?;
    match doc.pointer(pointer)? {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

fuzz_target!(|input: Input| {
    let json = Json::new(&input.body);
    for pointer in input.pointers.iter().take(8) {
        assert_eq!(
            json.select(pointer),
            parsed(&input.body, pointer),
            "pointer {pointer:?}"
        );
    }
    // Every array item of the body's top level, as a splitting route stores them.
    if let Ok(items) = serde_json::from_slice::<Vec<&serde_json::value::RawValue>>(&input.body) {
        for item in items {
            let _ = Json::new(item.get().as_bytes()).select("/id");
        }
    }
    let form = plugin_sdk::schemes::parse_form(&input.body);
    assert!(form.len() <= input.body.len() + 1);
});

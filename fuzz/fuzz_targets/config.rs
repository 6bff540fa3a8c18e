//! The config parser against arbitrary text: it returns a config or an error (never panics),
//! and every error names the file and where in it (`hub.toml:LINE:COL: field: message`).

#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|text: &str| {
    if let Err(e) = hub::Config::from_str(text, Path::new("hub.toml")) {
        let message = e.to_string();
        assert!(
            message.starts_with("hub.toml:"),
            "an error without its place: {message}"
        );
    }
});

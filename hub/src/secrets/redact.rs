//! Masking: every sealed value's plaintext, wherever it would leave the hub, shown as `***`.
//!
//! A credential can reach a surface by paths no single caller sees: a route whose path is the
//! secret (`{credential:NAME}`, a Zapier catch URL) shown by the console's test webhook, an
//! outbound URL in an error, a provider that echoes a key back. So masking is not left to each
//! caller: a [`Redactor`] is made from the [`Vault`] and applied where text leaves the process,
//! in one place per channel: every HTTP answer (`server::router_of`), every log line
//! ([`LogWriter`]), and the CLI's output and errors ([`installed`]).
//!
//! The redactor holds each value in the forms a surface writes it (as is, percent-encoded,
//! HTML-escaped, JSON-escaped), as [`SecretSlice`]s zeroized on drop, and finds them in one
//! pass whatever their number: each [`MIN_LEN`]-byte window of the text is hashed (SipHash under
//! this process's random key) and looked up among the hashes of the forms' first bytes; only a
//! hit is compared. So no search structure keeps an unzeroized copy of a value, and an answer
//! costs the same with ten tenants or ten thousand. Values shorter than [`MIN_LEN`] bytes are
//! not masked: masking `1234` would mangle every number on a page.

use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};
use std::io::{self, Write};
use std::sync::Arc;

use arc_swap::ArcSwapOption;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use secrecy::{ExposeSecret, SecretSlice};

use super::Vault;

/// What a masked value is shown as.
pub const MASK: &str = "***";
/// The shortest value masked.
pub const MIN_LEN: usize = 8;

/// What percent-encoding leaves as is in a path segment or query value (RFC 3986 unreserved).
const ENCODED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Every sealed value of a vault, in each form a surface may write it.
#[derive(Default)]
pub struct Redactor {
    needles: Vec<SecretSlice<u8>>,
    /// The hash of each needle's first [`MIN_LEN`] bytes, to the needles that start so.
    starts: HashMap<u64, Vec<usize>, BuildHasherDefault<Hashed>>,
    keyed: RandomState,
}

/// A hasher for keys that are hashes already.
#[derive(Default)]
struct Hashed(u64);

impl Hasher for Hashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) | u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Redactor({} forms)", self.needles.len())
    }
}

impl Redactor {
    /// The redactor of every value in `vault` at least [`MIN_LEN`] bytes long.
    pub fn of(vault: &Vault) -> Redactor {
        let mut needles: Vec<SecretSlice<u8>> = Vec::new();
        for place in vault.places() {
            let Some(value) = vault.at(place) else {
                continue;
            };
            let bytes = value.expose_secret();
            if bytes.len() < MIN_LEN {
                continue;
            }
            let mut forms: Vec<Vec<u8>> = vec![bytes.to_vec()];
            if let Ok(text) = std::str::from_utf8(bytes) {
                forms.push(utf8_percent_encode(text, ENCODED).to_string().into_bytes());
                forms.push(
                    form_urlencoded::byte_serialize(bytes)
                        .collect::<String>()
                        .into_bytes(),
                );
                forms.push(minijinja::HtmlEscape(text).to_string().into_bytes());
                // Quoted by serde_json, so at least `""`: the inside is what a JSON page shows.
                let json = serde_json::to_string(text).unwrap_or_default();
                forms.push(json.trim_matches('"').as_bytes().to_vec());
            }
            for form in forms {
                if !needles.iter().any(|n| n.expose_secret() == form.as_slice()) {
                    needles.push(SecretSlice::from(form));
                } else {
                    let mut form = form;
                    zeroize::Zeroize::zeroize(&mut form);
                }
            }
        }
        let keyed = RandomState::new();
        let mut starts: HashMap<u64, Vec<usize>, BuildHasherDefault<Hashed>> = HashMap::default();
        for (i, needle) in needles.iter().enumerate() {
            let start = keyed.hash_one(&needle.expose_secret()[..MIN_LEN]);
            starts.entry(start).or_default().push(i);
        }
        Redactor {
            needles,
            starts,
            keyed,
        }
    }

    /// Whether there is nothing to mask.
    pub fn is_empty(&self) -> bool {
        self.needles.is_empty()
    }

    /// `bytes` with every form of every value replaced by [`MASK`]; borrowed when none occurs.
    pub fn redact_bytes<'a>(&self, bytes: &'a [u8]) -> Cow<'a, [u8]> {
        let mut spans: Vec<(usize, usize)> = Vec::new();
        if self.needles.is_empty() {
            return Cow::Borrowed(bytes);
        }
        for (at, window) in bytes.windows(MIN_LEN).enumerate() {
            let Some(ids) = self.starts.get(&self.keyed.hash_one(window)) else {
                continue;
            };
            for &id in ids {
                let needle = self.needles[id].expose_secret();
                if bytes[at..].starts_with(needle) {
                    spans.push((at, at + needle.len()));
                }
            }
        }
        if spans.is_empty() {
            return Cow::Borrowed(bytes);
        }
        let mut out = Vec::with_capacity(bytes.len());
        let mut at = 0;
        for (start, end) in spans {
            if end <= at {
                continue;
            }
            if start >= at {
                out.extend_from_slice(&bytes[at..start]);
                out.extend_from_slice(MASK.as_bytes());
            }
            at = end;
        }
        out.extend_from_slice(&bytes[at..]);
        Cow::Owned(out)
    }

    /// `text` with every form of every value replaced by [`MASK`].
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        match self.redact_bytes(text.as_bytes()) {
            Cow::Borrowed(_) => Cow::Borrowed(text),
            // A mask replaces whole values, each valid UTF-8 in itself, so the rest stays valid.
            Cow::Owned(bytes) => Cow::Owned(String::from_utf8_lossy(&bytes).into_owned()),
        }
    }
}

/// The redactor of the vault this process opened last: the one log lines and the CLI's output
/// go through. Empty until [`install`].
static INSTALLED: ArcSwapOption<Redactor> = ArcSwapOption::const_empty();

/// Makes `redactor` the one log lines and CLI output go through (at start and each reload).
pub fn install(redactor: Arc<Redactor>) {
    INSTALLED.store(Some(redactor));
}

/// The installed redactor (an empty one before [`install`]).
pub fn installed() -> Arc<Redactor> {
    INSTALLED.load_full().unwrap_or_default()
}

/// `text` through the installed redactor: for what the CLI prints.
pub fn shown(text: &str) -> String {
    installed().redact(text).into_owned()
}

/// Where log lines go: standard error, each line through the installed redactor.
/// `tracing_subscriber`'s formatter writes one event per writer, so a line is masked whole.
#[derive(Clone, Copy, Default)]
pub struct LogWriter;

/// One log event on its way to standard error.
pub struct LogLine(Vec<u8>);

impl Write for LogLine {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.0.is_empty() {
            return Ok(());
        }
        let line = std::mem::take(&mut self.0);
        let redactor = installed();
        io::stderr().lock().write_all(&redactor.redact_bytes(&line))
    }
}

impl Drop for LogLine {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LogLine;

    fn make_writer(&'a self) -> LogLine {
        LogLine(Vec::with_capacity(256))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::Place;

    fn vault(values: &[&str]) -> Vault {
        let mut vault = Vault::new();
        for (i, v) in values.iter().enumerate() {
            let place = Place::Tenant {
                tenant: "acme".into(),
                connector: "zapier".into(),
                field: format!("f{i}"),
            };
            vault.insert(place, SecretSlice::from(v.as_bytes().to_vec()));
        }
        vault
    }

    #[test]
    fn every_form_of_a_value_is_masked_and_nothing_else() {
        let r = Redactor::of(&vault(&["tok/en+ab=cd", "short", "zap_catch_token_0001"]));
        assert_eq!(
            r.redact("/hooks/acme/zapier/catch-path/zap_catch_token_0001-forged"),
            "/hooks/acme/zapier/catch-path/***-forged"
        );
        assert_eq!(r.redact("a tok%2Fen%2Bab%3Dcd b"), "a *** b");
        assert_eq!(r.redact("q=tok%2Fen%2Bab%3Dcd"), "q=***");
        assert_eq!(
            r.redact("<code>tok&#x2f;en+ab=cd</code>"),
            "<code>***</code>"
        );
        assert_eq!(r.redact("{\"k\":\"tok/en+ab=cd\"}"), "{\"k\":\"***\"}");
        // Too short to mask without mangling the page: left as is.
        assert_eq!(r.redact("a short text"), "a short text");
        assert!(matches!(r.redact("nothing here"), Cow::Borrowed(_)));
    }

    #[test]
    fn overlapping_and_adjacent_values_are_masked_whole() {
        let r = Redactor::of(&vault(&["abcdefgh", "efghijkl"]));
        assert_eq!(r.redact("xabcdefghijklx"), "x***x");
        assert_eq!(r.redact("abcdefghabcdefgh"), "******");
    }
}

//! How the console shows things: the templates (embedded, auto-escaped as HTML), the filters
//! they use, and the two assets. Every string a page prints goes through [`format`], which
//! escapes it and makes bidirectional-override characters visible (`⟨U+202E⟩`), so a payload
//! cannot reorder what an operator reads.

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use minijinja::value::Value;
use minijinja::{Environment, Error, Output, State};

/// The templates, each embedded at build time.
const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("templates/base.html")),
    ("login.html", include_str!("templates/login.html")),
    ("error.html", include_str!("templates/error.html")),
    ("deliveries.html", include_str!("templates/deliveries.html")),
    ("delivery.html", include_str!("templates/delivery.html")),
    ("jobs.html", include_str!("templates/jobs.html")),
    ("dead.html", include_str!("templates/dead.html")),
    ("tenants.html", include_str!("templates/tenants.html")),
    ("tenant.html", include_str!("templates/tenant.html")),
    ("records.html", include_str!("templates/records.html")),
    ("record.html", include_str!("templates/record.html")),
    ("events.html", include_str!("templates/events.html")),
    ("rejected.html", include_str!("templates/rejected.html")),
    (
        "credentials.html",
        include_str!("templates/credentials.html"),
    ),
    ("done.html", include_str!("templates/done.html")),
    ("config.html", include_str!("templates/config.html")),
    ("audit.html", include_str!("templates/audit.html")),
    ("operation.html", include_str!("templates/operation.html")),
    ("test.html", include_str!("templates/test.html")),
];

const CSS: &str = include_str!("assets/console.css");
const JS: &str = include_str!("assets/console.js");

/// The template environment.
pub struct Views {
    env: Environment<'static>,
}

impl Default for Views {
    fn default() -> Views {
        let mut env = Environment::new();
        for (name, source) in TEMPLATES {
            if let Err(e) = env.add_template(name, source) {
                // A template that does not parse is a bug of this build: the tests render each.
                tracing::error!("console template {name}: {e}");
            }
        }
        env.set_formatter(format);
        env.add_filter("time", time);
        env.add_filter("pretty", pretty);
        env.add_filter("micros", micros);
        env.add_filter("segment", segment);
        env.add_function("url", super::urls::url);
        Views { env }
    }
}

impl Views {
    /// Renders template `name` with `ctx`.
    ///
    /// # Errors
    /// When the template is missing or fails.
    pub fn render(&self, name: &str, ctx: Value) -> Result<String, Error> {
        self.env.get_template(name)?.render(ctx)
    }
}

/// `error.html`: a status and what was wrong, with a way back.
#[derive(serde::Serialize)]
struct ErrorPage<'a> {
    status: u16,
    reason: Option<&'static str>,
    message: &'a str,
}

/// The page of an error.
pub fn render_error(status: StatusCode, message: &str) -> String {
    thread_local! {
        static VIEWS: Views = Views::default();
    }
    VIEWS
        .with(|v| {
            v.render(
                "error.html",
                Value::from_serialize(ErrorPage {
                    status: status.as_u16(),
                    reason: status.canonical_reason(),
                    message,
                }),
            )
        })
        .unwrap_or_else(|_| "error".into())
}

/// Escapes as the default formatter does, after making bidi controls visible ([`visible`]).
fn format(out: &mut Output, state: &State, value: &Value) -> Result<(), Error> {
    match value.as_str().map(visible) {
        Some(std::borrow::Cow::Owned(shown)) => {
            minijinja::escape_formatter(out, state, &Value::from(shown))
        }
        _ => minijinja::escape_formatter(out, state, value),
    }
}

/// The console's one rule for text it shows, whether a template prints it or the live tail
/// sends it to the page's script: each bidi control written out as `⟨U+202E⟩`.
pub fn visible(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(is_bidi_control) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut shown = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        if is_bidi_control(c) {
            shown.push_str(&format!("⟨U+{:04X}⟩", c as u32));
        } else {
            shown.push(c);
        }
    }
    std::borrow::Cow::Owned(shown)
}

/// `value | segment`: one path segment or query value, encoded ([`super::urls::segment`]).
fn segment(value: Value) -> String {
    match value.as_str() {
        Some(s) => super::urls::segment(s),
        None => super::urls::segment(&value.to_string()),
    }
}

/// Characters that reorder the text around them.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}')
}

/// `ms | time`: a UTC time, `2026-12-01 09:30:00`.
fn time(ms: Option<i64>) -> String {
    ms.map(time_text).unwrap_or_default()
}

/// A time (ms) as the console shows it, in UTC.
pub fn time_text(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}

/// `us | micros`: a duration, `1.2 ms`.
fn micros(us: Option<i64>) -> String {
    match us {
        None => String::new(),
        Some(us) if us < 1_000 => format!("{us} µs"),
        Some(us) if us < 1_000_000 => format!("{:.1} ms", us as f64 / 1e3),
        Some(us) => format!("{:.2} s", us as f64 / 1e6),
    }
}

/// `value | pretty`: JSON, indented; a string that holds JSON is parsed first.
fn pretty(value: Value) -> String {
    let json = match value.as_str() {
        Some(s) => match serde_json::from_str::<serde_json::Value>(s) {
            Ok(v) => v,
            Err(_) => return s.to_string(),
        },
        None => match serde_json::to_value(&value) {
            Ok(v) => v,
            Err(_) => return value.to_string(),
        },
    };
    serde_json::to_string_pretty(&json).unwrap_or_default()
}

/// `GET /console/assets/{file}`.
pub async fn asset(Path(file): Path<String>) -> Response {
    let (body, kind) = match file.as_str() {
        "console.css" => (CSS, "text/css; charset=utf-8"),
        "console.js" => (JS, "text/javascript; charset=utf-8"),
        _ => return super::PageError::not_found(format_args!("asset {file}")).into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_parses() {
        let mut env = Environment::new();
        for (name, source) in TEMPLATES {
            env.add_template(name, source)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }

    #[test]
    fn strings_are_escaped_and_bidi_controls_shown() {
        let mut env = Environment::new();
        env.set_formatter(format);
        env.add_template("t.html", "{{ v }}").unwrap();
        let out = env
            .get_template("t.html")
            .unwrap()
            .render(minijinja::context! { v => "<script>alert(1)</script>\u{202E}txt" })
            .unwrap();
        assert_eq!(out, "&lt;script&gt;alert(1)&lt;&#x2f;script&gt;⟨U+202E⟩txt");
    }

    #[test]
    fn times_and_durations_read_as_such() {
        assert_eq!(time(Some(0)), "1970-01-01 00:00:00");
        assert_eq!(time(None), "");
        assert_eq!(micros(Some(1500)), "1.5 ms");
    }
}

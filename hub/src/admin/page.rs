//! Keyset pages: a list is read newest first from a position (an id, or a change number) that
//! the `next` link's opaque cursor carries, so pages do not shift while rows arrive. A cursor is
//! bound to its list, its tenant and its filters by a fingerprint of them: used with another
//! list, tenant or filter it is refused (400), and what it names is re-checked against the
//! caller's tenant anyway, so a forged one opens nothing.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use super::ApiError;

/// What a cursor is bound to: the list and every filter, tenant included.
pub(super) struct CursorScope(String);

impl CursorScope {
    /// The scope of `list` with these filters (absent ones count as empty).
    pub(super) fn of(list: &str, filters: &[Option<&str>]) -> CursorScope {
        let mut h = Sha256::new();
        h.update(list.as_bytes());
        for f in filters {
            h.update([0u8]);
            if let Some(f) = f {
                h.update([1u8]);
                h.update(f.as_bytes());
            }
        }
        CursorScope(hex::encode(&h.finalize()[..8]))
    }

    /// The cursor of `position` in this scope.
    pub(super) fn cursor(&self, position: i64) -> String {
        URL_SAFE_NO_PAD.encode(format!("v1.{}.{position}", self.0))
    }

    /// The position `cursor` carries, if it belongs to this scope.
    pub(super) fn position(&self, cursor: &str) -> Result<i64, ApiError> {
        let bad = |why: &str| ApiError::BadRequest(format!("`cursor`: {why}"));
        let text = URL_SAFE_NO_PAD
            .decode(cursor)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| bad("not a cursor this hub gave"))?;
        let mut parts = text.splitn(3, '.');
        let (Some("v1"), Some(scope), Some(position)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(bad("not a cursor this hub gave"));
        };
        if scope != self.0 {
            return Err(bad(
                "it belongs to another list, tenant or filter; start from the first page",
            ));
        }
        position
            .parse::<i64>()
            .ok()
            .filter(|p| *p >= 0)
            .ok_or_else(|| bad("not a cursor this hub gave"))
    }

    /// The position of an optional cursor.
    pub(super) fn after(&self, cursor: Option<&str>) -> Result<Option<i64>, ApiError> {
        cursor.map(|c| self.position(c)).transpose()
    }
}

/// Cuts `rows`, read one past `limit`, to the page; the position of its last row when there is
/// a next page.
pub(super) fn cut<T>(rows: &mut Vec<T>, limit: usize, position: impl Fn(&T) -> i64) -> Option<i64> {
    if rows.len() <= limit {
        return None;
    }
    rows.truncate(limit);
    rows.last().map(position)
}

/// The link to the next page: `path` with the request's own parameters and the cursor.
pub(super) fn next_link(path: &str, params: &[(&str, Option<String>)], cursor: &str) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (name, value) in params {
        if let Some(value) = value {
            query.append_pair(name, value);
        }
    }
    query.append_pair("cursor", cursor);
    format!("/api/v1{path}?{}", query.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_opens_only_its_own_list() {
        let abc = CursorScope::of("deliveries", &[Some("abc"), None]);
        let cursor = abc.cursor(42);
        assert_eq!(abc.position(&cursor).ok(), Some(42));
        for other in [
            CursorScope::of("deliveries", &[Some("xyz"), None]),
            CursorScope::of("jobs", &[Some("abc"), None]),
            CursorScope::of("deliveries", &[Some("abc"), Some("retell")]),
            CursorScope::of("deliveries", &[None, Some("abc")]),
        ] {
            assert!(other.position(&cursor).is_err());
        }
        for forged in [
            "",
            "nope",
            "djEuMTIzNDU2Nzg5MGFiY2RlZi4tMQ",
            &abc.cursor(7)[1..],
        ] {
            assert!(abc.position(forged).is_err(), "{forged}");
        }
    }
}

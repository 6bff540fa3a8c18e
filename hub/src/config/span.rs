//! Where each dotted path sits in `hub.toml`: the span index behind [`Config::locate`] and behind
//! every error's `file:line:col: field`.
//!
//! The index is built from toml's spanned [`DeTable`], parsed with recovery so that even a file
//! with a syntax error yields positions for the part that parsed.
//!
//! [`Config::locate`]: super::Config::locate

use std::cmp::Reverse;
use std::fmt;
use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// A 1-based line and column (columns count characters, not bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Pos {
    pub(crate) line: usize,
    pub(crate) col: usize,
}

impl Pos {
    pub(crate) const START: Pos = Pos { line: 1, col: 1 };
}

/// Turns byte offsets into [`Pos`].
pub(crate) struct Lines<'a> {
    text: &'a str,
    starts: Vec<usize>,
}

impl<'a> Lines<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        let starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Lines { text, starts }
    }

    pub(crate) fn pos(&self, offset: usize) -> Pos {
        let offset = offset.min(self.text.len());
        let line = self
            .starts
            .partition_point(|&start| start <= offset)
            .saturating_sub(1);
        let start = self.starts.get(line).copied().unwrap_or(0);
        let col = self
            .text
            .get(start..offset)
            .map_or(offset - start, |s| s.chars().count());
        Pos {
            line: line + 1,
            col: col + 1,
        }
    }
}

#[derive(Clone)]
struct SpanEntry {
    path: Vec<String>,
    key: Range<usize>,
    value: Range<usize>,
    key_pos: Pos,
    value_pos: Pos,
    is_table: bool,
}

/// Every key (and array element) of a document with its spans and positions.
#[derive(Clone, Default)]
pub(crate) struct SpanIndex {
    entries: Vec<SpanEntry>,
    root: Range<usize>,
}

impl fmt::Debug for SpanIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SpanIndex({} entries)", self.entries.len())
    }
}

impl SpanIndex {
    /// Parses `text` with recovery: the document (possibly partial), its index and any syntax errors.
    pub(crate) fn parse(text: &str) -> (Spanned<DeTable<'_>>, SpanIndex, Vec<toml::de::Error>) {
        let (table, errors) = DeTable::parse_recoverable(text);
        let lines = Lines::new(text);
        let mut index = SpanIndex {
            entries: Vec::new(),
            root: table.span(),
        };
        index.walk_table(&lines, table.get_ref(), &mut Vec::new());
        (table, index, errors)
    }

    fn walk_table(&mut self, lines: &Lines<'_>, table: &DeTable<'_>, path: &mut Vec<String>) {
        for (key, value) in table.iter() {
            path.push(key.get_ref().to_string());
            self.push(lines, path, key.span(), value);
            path.pop();
        }
    }

    fn push(
        &mut self,
        lines: &Lines<'_>,
        path: &mut Vec<String>,
        key: Range<usize>,
        value: &Spanned<DeValue<'_>>,
    ) {
        let span = value.span();
        self.entries.push(SpanEntry {
            path: path.clone(),
            key_pos: lines.pos(key.start),
            value_pos: lines.pos(span.start),
            key,
            value: span,
            is_table: matches!(value.get_ref(), DeValue::Table(_) | DeValue::Array(_)),
        });
        match value.get_ref() {
            DeValue::Table(table) => self.walk_table(lines, table, path),
            DeValue::Array(array) => {
                for (i, element) in array.iter().enumerate() {
                    path.push(i.to_string());
                    self.push(lines, path, element.span(), element);
                    path.pop();
                }
            }
            _ => {}
        }
    }

    fn entry(&self, path: &[&str]) -> Option<&SpanEntry> {
        self.entries.iter().find(|e| e.path == path)
    }

    /// The position of `path`'s key, or of its longest prefix present in the file.
    pub(crate) fn key_pos(&self, path: &[&str]) -> Pos {
        (0..=path.len())
            .rev()
            .find_map(|n| self.entry(&path[..n]))
            .map_or(Pos::START, |e| e.key_pos)
    }

    /// The position of `path`'s value, falling back to [`SpanIndex::key_pos`].
    pub(crate) fn value_pos(&self, path: &[&str]) -> Pos {
        self.entry(path)
            .map_or_else(|| self.key_pos(path), |e| e.value_pos)
    }

    /// The dotted path an error span points into, and the error's position.
    pub(crate) fn at(&self, lines: &Lines<'_>, span: Option<Range<usize>>) -> (Vec<String>, Pos) {
        let Some(span) = span else {
            return (Vec::new(), Pos::START);
        };
        let pos = lines.pos(span.start);
        if span == self.root {
            return (Vec::new(), pos);
        }
        let exact = self
            .entries
            .iter()
            .filter(|e| e.key == span || e.value == span)
            .max_by_key(|e| e.path.len());
        let containing = || {
            self.entries
                .iter()
                .filter(|e| e.key.contains(&span.start) || e.value.contains(&span.start))
                .min_by_key(|e| {
                    let len = |r: &Range<usize>| {
                        if r.contains(&span.start) {
                            r.len()
                        } else {
                            usize::MAX
                        }
                    };
                    (len(&e.key).min(len(&e.value)), Reverse(e.path.len()))
                })
        };
        // A syntax error past the last parsed value: attribute it to the key just before it.
        let preceding = || {
            self.entries
                .iter()
                .filter(|e| e.key.start <= span.start)
                .max_by_key(|e| (e.key.start, e.path.len()))
                .map(|e| {
                    if e.is_table || e.key_pos.line == pos.line {
                        e.path.clone()
                    } else {
                        e.path[..e.path.len().saturating_sub(1)].to_vec()
                    }
                })
        };
        let path = exact
            .or_else(containing)
            .map(|e| e.path.clone())
            .or_else(preceding)
            .unwrap_or_default();
        (path, pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::dotted;

    #[test]
    fn positions_count_characters() {
        let lines = Lines::new("a = 1\nné = 2\n");
        assert_eq!(lines.pos(0), Pos { line: 1, col: 1 });
        assert_eq!(lines.pos(6), Pos { line: 2, col: 1 });
        // "né = " is 6 bytes, 5 characters.
        assert_eq!(lines.pos(12), Pos { line: 2, col: 6 });
        assert_eq!(lines.pos(1000).line, 3);
    }

    #[test]
    fn dotted_quotes_odd_keys() {
        assert_eq!(dotted(&["tenants", "abc-1", "x_y"]), "tenants.abc-1.x_y");
        assert_eq!(dotted(&["tenants", "ABC Corp"]), "tenants.\"ABC Corp\"");
        assert_eq!(dotted(&["a.b", ""]), "\"a.b\".\"\"");
        assert_eq!(dotted::<&str>(&[]), "(top level)");
    }

    #[test]
    fn locates_keys_and_prefixes() {
        let text = "[server]\nlisten = \"x\"\n\n[tenants.abc.connectors.retell]\nconfig = { a = [1, 2] }\n";
        let (_, index, errors) = SpanIndex::parse(text);
        assert!(errors.is_empty());
        assert_eq!(
            index.key_pos(&["server", "listen"]),
            Pos { line: 2, col: 1 }
        );
        assert_eq!(
            index.value_pos(&["server", "listen"]),
            Pos { line: 2, col: 10 }
        );
        assert_eq!(
            index.key_pos(&["tenants", "abc", "connectors", "retell"]),
            Pos { line: 4, col: 25 }
        );
        let element = ["tenants", "abc", "connectors", "retell", "config", "a", "1"];
        assert_eq!(index.key_pos(&element), Pos { line: 5, col: 20 });
        // Missing keys fall back to the nearest present ancestor.
        assert_eq!(index.key_pos(&["server", "nope"]), Pos { line: 1, col: 2 });
        assert_eq!(index.key_pos(&["nope"]), Pos::START);
    }
}

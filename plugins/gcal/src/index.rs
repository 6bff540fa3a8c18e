//! The index of a calendar's held events that are not cancelled, in kv: what a full re-list
//! after a `410 Gone` is compared with, since deletions in the gap are never reported and
//! `record-list` stops at 1,000 records.
//!
//! Sixteen buckets per calendar (`index:<calendar>:<0-f>`, by a hash of the event id), each a
//! line per event: `<id>\t<end ms>\t<mark>`. The mark is the id of the full listing that last
//! returned the event (or read it), or the time it was last written otherwise: after a full
//! listing, an entry it did not mark whose end is inside the listed window may have been
//! deleted, and is read again. Buckets are read once per invocation and written back once, when
//! [`Index::flush`] is called.

use std::collections::{BTreeMap, BTreeSet};

use plugin_sdk::kv;

/// Buckets per calendar.
pub const BUCKETS: u8 = 16;

/// What the index knows of one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// When it ends (epoch ms; `i64::MAX` when unknown).
    pub end_ms: i64,
    /// The listing run that last returned it, or when it was last written.
    pub mark: i64,
}

/// A calendar's index, as this invocation sees it.
#[derive(Debug)]
pub struct Index {
    calendar: String,
    buckets: BTreeMap<u8, BTreeMap<String, Entry>>,
    dirty: BTreeSet<u8>,
}

/// The bucket of an event id (FNV-1a).
pub fn bucket_of(id: &str) -> u8 {
    let mut h: u32 = 0x811c_9dc5;
    for b in id.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    (h % u32::from(BUCKETS)) as u8
}

/// The kv key of a bucket.
pub fn bucket_key(calendar: &str, bucket: u8) -> String {
    format!("index:{calendar}:{bucket:x}")
}

fn parse(text: &str) -> BTreeMap<String, Entry> {
    text.lines()
        .filter_map(|line| {
            let mut f = line.split('\t');
            let id = f.next().filter(|s| !s.is_empty())?;
            let end_ms = f.next()?.parse().ok()?;
            let mark = f.next()?.parse().ok()?;
            Some((id.to_string(), Entry { end_ms, mark }))
        })
        .collect()
}

impl Index {
    /// The index of `calendar`, read lazily.
    pub fn new(calendar: &str) -> Index {
        Index {
            calendar: calendar.to_string(),
            buckets: BTreeMap::new(),
            dirty: BTreeSet::new(),
        }
    }

    fn bucket(&mut self, b: u8) -> &mut BTreeMap<String, Entry> {
        let calendar = &self.calendar;
        self.buckets.entry(b).or_insert_with(|| {
            kv::get_string(&bucket_key(calendar, b))
                .map(|t| parse(&t))
                .unwrap_or_default()
        })
    }

    /// Notes a held event that is not cancelled.
    pub fn put(&mut self, id: &str, end_ms: Option<i64>, mark: i64) {
        if id.is_empty() || id.contains(['\t', '\n', '\r']) {
            return;
        }
        let b = bucket_of(id);
        let entry = Entry {
            end_ms: end_ms.unwrap_or(i64::MAX),
            mark,
        };
        if self.bucket(b).insert(id.to_string(), entry) != Some(entry) {
            self.dirty.insert(b);
        }
    }

    /// Forgets an event (cancelled).
    pub fn remove(&mut self, id: &str) {
        let b = bucket_of(id);
        if self.bucket(b).remove(id).is_some() {
            self.dirty.insert(b);
        }
    }

    /// The entries of one bucket.
    pub fn entries(&mut self, bucket: u8) -> Vec<(String, Entry)> {
        self.bucket(bucket)
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect()
    }

    /// Writes the buckets this invocation changed.
    pub fn flush(&mut self) {
        for b in std::mem::take(&mut self.dirty) {
            let key = bucket_key(&self.calendar, b);
            match self.buckets.get(&b) {
                Some(entries) if !entries.is_empty() => {
                    let text: String = entries
                        .iter()
                        .map(|(id, e)| format!("{id}\t{}\t{}\n", e.end_ms, e.mark))
                        .collect();
                    kv::set(&key, text.as_bytes());
                }
                _ => kv::delete(&key),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_parse_and_junk_is_skipped() {
        let m = parse("a\t5\t7\nbad line\nb\tx\t1\n\nc\t9223372036854775807\t2\n");
        assert_eq!(m.len(), 2);
        assert_eq!(m["a"], Entry { end_ms: 5, mark: 7 });
        assert_eq!(m["c"].end_ms, i64::MAX);
        let spread: BTreeSet<u8> = (0..200).map(|i| bucket_of(&format!("ev{i}"))).collect();
        assert_eq!(spread.len(), usize::from(BUCKETS));
        assert_eq!(bucket_key("primary", 11), "index:primary:b");
    }
}

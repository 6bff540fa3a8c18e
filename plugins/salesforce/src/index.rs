//! The index of a type's held, live record ids, in kv: what a full re-list of ids is compared
//! with (`record-list` stops at 1,000 records), kept by the `sync` job alone (records an
//! outbound message or an upsert made are indexed when the sync reads them, right after).
//!
//! Thirty-two buckets per kind (`index:<kind>:<00-1f>`, by a hash of the id), each a line per
//! id: `<id>\t<mark>`, the mark being when the id was last seen to exist (written, or listed by
//! a re-list). After a re-list begun at `t`, an id whose mark is before `t` was not listed and
//! is gone. Buckets are read once per invocation and written back by [`Index::flush`].

use std::collections::{BTreeMap, BTreeSet};

use plugin_sdk::kv;

/// Buckets per kind.
pub const BUCKETS: u8 = 32;

/// A kind's index, as this invocation sees it.
#[derive(Debug)]
pub struct Index {
    kind: String,
    buckets: BTreeMap<u8, BTreeMap<String, i64>>,
    dirty: BTreeSet<u8>,
}

/// The bucket of an id (FNV-1a).
pub fn bucket_of(id: &str) -> u8 {
    let mut h: u32 = 0x811c_9dc5;
    for b in id.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    (h % u32::from(BUCKETS)) as u8
}

/// The kv key of a bucket.
pub fn bucket_key(kind: &str, bucket: u8) -> String {
    format!("index:{kind}:{bucket:02x}")
}

fn parse(text: &str) -> BTreeMap<String, i64> {
    text.lines()
        .filter_map(|line| {
            let (id, mark) = line.split_once('\t')?;
            (!id.is_empty()).then_some(())?;
            Some((id.to_string(), mark.parse().ok()?))
        })
        .collect()
}

impl Index {
    /// The index of `kind`, read lazily.
    pub fn new(kind: &str) -> Index {
        Index {
            kind: kind.to_string(),
            buckets: BTreeMap::new(),
            dirty: BTreeSet::new(),
        }
    }

    fn bucket(&mut self, b: u8) -> &mut BTreeMap<String, i64> {
        let kind = &self.kind;
        self.buckets.entry(b).or_insert_with(|| {
            kv::get_string(&bucket_key(kind, b))
                .map(|t| parse(&t))
                .unwrap_or_default()
        })
    }

    /// Notes a live id, seen at `mark` (a later mark wins).
    pub fn put(&mut self, id: &str, mark: i64) {
        if id.is_empty() || id.contains(['\t', '\n', '\r']) {
            return;
        }
        let b = bucket_of(id);
        let slot = self.bucket(b).entry(id.to_string()).or_insert(i64::MIN);
        if *slot < mark {
            *slot = mark;
            self.dirty.insert(b);
        }
    }

    /// Notes a live id seen now, unless it is indexed already (no write for a known id).
    pub fn ensure(&mut self, id: &str, now: i64) {
        let b = bucket_of(id);
        if !self.bucket(b).contains_key(id) {
            self.put(id, now);
        }
    }

    /// Forgets an id (deleted).
    pub fn remove(&mut self, id: &str) {
        let b = bucket_of(id);
        if self.bucket(b).remove(id).is_some() {
            self.dirty.insert(b);
        }
    }

    /// The ids of a bucket whose mark is before `t`.
    pub fn unseen_since(&mut self, bucket: u8, t: i64) -> Vec<String> {
        self.bucket(bucket)
            .iter()
            .filter(|(_, mark)| **mark < t)
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Writes the buckets this invocation changed.
    pub fn flush(&mut self) {
        for b in std::mem::take(&mut self.dirty) {
            let key = bucket_key(&self.kind, b);
            match self.buckets.get(&b) {
                Some(ids) if !ids.is_empty() => {
                    let text: String = ids
                        .iter()
                        .map(|(id, mark)| format!("{id}\t{mark}\n"))
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
    fn lines_parse_and_buckets_spread() {
        let m = parse("a\t5\nbad\nb\tx\n\nc\t-3\n");
        assert_eq!(m.len(), 2);
        assert_eq!((m["a"], m["c"]), (5, -3));
        let spread: BTreeSet<u8> = (0..500)
            .map(|i| bucket_of(&format!("003{i:015}")))
            .collect();
        assert_eq!(spread.len(), usize::from(BUCKETS));
        assert_eq!(bucket_key("contact", 31), "index:contact:1f");
    }
}

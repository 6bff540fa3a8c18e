//! The alert board: which causes are open, and what to send about them, as a pure function of
//! what happened and the clock (so it is tested with fixed times). The rules:
//! - a cause raised for the first time sends one alert at once;
//! - raised again while open, it is counted, not sent; once its window has passed since the
//!   last message, the count goes out as one summary ("12 more since ...");
//! - cleared while open, it sends one "resolved";
//! - at most [`Board::burst`] messages per window across all causes: past that, new causes are
//!   held open and counted, and go out as one overflow summary when the window turns, so a storm
//!   over a thousand tenants is a handful of messages, not a thousand.

use std::collections::BTreeMap;

use serde::Serialize;

/// What an alert is about: a kind and the names that make it one cause (`dead_letter` of
/// tenant `acme`'s `resend`). Two raises of the same cause are the same alert.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, utoipa::ToSchema)]
pub struct Cause {
    /// `dead_letter`, `endpoint_disabled`, `endpoint_failing`, `needs_reconnect`, `probation`,
    /// `schedule_skipping`, `queue_age`.
    pub kind: &'static str,
    /// The tenant it concerns, if one.
    pub tenant: Option<String>,
    /// What within the tenant (a connector, an endpoint, a schedule), if anything.
    pub subject: Option<String>,
}

impl Cause {
    /// `kind:tenant:subject`, the cause's stable key.
    pub fn key(&self) -> String {
        format!(
            "{}:{}:{}",
            self.kind,
            self.tenant.as_deref().unwrap_or("-"),
            self.subject.as_deref().unwrap_or("-")
        )
    }
}

/// An open cause, for the console's banner and the API.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Open {
    /// What.
    pub cause: Cause,
    /// The first sentence said about it.
    pub text: String,
    /// The latest detail (an error message).
    pub detail: String,
    /// Since when (ms).
    pub since_ms: i64,
    /// Times raised while open, the first included.
    pub count: u64,
    /// Whether a message about it went out (false while the burst limit holds it back).
    pub sent: bool,
    #[serde(skip)]
    last_sent_ms: i64,
    #[serde(skip)]
    unsent: u64,
}

/// A message to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// A new cause.
    Raised {
        /// What.
        cause: Cause,
        /// The sentence.
        text: String,
        /// The detail.
        detail: String,
    },
    /// A cause raised `more` times since the last message about it.
    Summary {
        /// What.
        cause: Cause,
        /// The sentence.
        text: String,
        /// How many more times.
        more: u64,
        /// The latest detail.
        detail: String,
    },
    /// Causes held back by the burst limit.
    Overflow {
        /// How many causes.
        causes: usize,
        /// A few of them, by key.
        examples: Vec<String>,
    },
    /// A cause cleared.
    Resolved {
        /// What.
        cause: Cause,
        /// The sentence it was raised with.
        text: String,
        /// How long it was open (ms).
        open_ms: i64,
    },
}

/// The board.
#[derive(Debug)]
pub struct Board {
    open: BTreeMap<String, Open>,
    window_ms: i64,
    burst: usize,
    /// Messages sent in the current window, and when it started.
    sent_in_window: usize,
    window_start_ms: i64,
}

impl Board {
    /// A board that sends one message per cause per `window_ms`, and at most `burst` in all.
    pub fn new(window_ms: i64, burst: usize) -> Board {
        Board {
            open: BTreeMap::new(),
            window_ms: window_ms.max(1),
            burst: burst.max(1),
            sent_in_window: 0,
            window_start_ms: 0,
        }
    }

    /// Changes the window (a reload).
    pub fn set_window(&mut self, window_ms: i64) {
        self.window_ms = window_ms.max(1);
    }

    /// The burst limit.
    pub fn burst(&self) -> usize {
        self.burst
    }

    fn turn(&mut self, now_ms: i64) {
        if now_ms - self.window_start_ms >= self.window_ms {
            self.window_start_ms = now_ms;
            self.sent_in_window = 0;
        }
    }

    fn may_send(&mut self, now_ms: i64) -> bool {
        self.turn(now_ms);
        if self.sent_in_window < self.burst {
            self.sent_in_window += 1;
            true
        } else {
            false
        }
    }

    /// `cause` happened (again).
    pub fn raise(
        &mut self,
        cause: Cause,
        text: String,
        detail: String,
        now_ms: i64,
    ) -> Option<Message> {
        let key = cause.key();
        if let Some(open) = self.open.get_mut(&key) {
            open.count += 1;
            open.unsent += 1;
            open.detail = detail;
            return None;
        }
        let sent = self.may_send(now_ms);
        self.open.insert(
            key,
            Open {
                cause: cause.clone(),
                text: text.clone(),
                detail: detail.clone(),
                since_ms: now_ms,
                count: 1,
                sent,
                last_sent_ms: now_ms,
                unsent: if sent { 0 } else { 1 },
            },
        );
        sent.then_some(Message::Raised {
            cause,
            text,
            detail,
        })
    }

    /// `cause` no longer holds. A cause never sent about resolves silently.
    pub fn clear(&mut self, cause: &Cause, now_ms: i64) -> Option<Message> {
        let open = self.open.remove(&cause.key())?;
        (open.sent && self.may_send(now_ms)).then(|| Message::Resolved {
            cause: open.cause,
            text: open.text,
            open_ms: now_ms - open.since_ms,
        })
    }

    /// Whether anything is open (a cheap check before a clear on a hot path).
    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }

    /// The summaries due at `now_ms`: each sent cause raised again and quiet for a window, and
    /// one overflow message for the causes the burst limit held back.
    pub fn tick(&mut self, now_ms: i64) -> Vec<Message> {
        self.turn(now_ms);
        let mut out = Vec::new();
        let window = self.window_ms;
        let mut held = Vec::new();
        for (key, open) in &mut self.open {
            if open.sent && open.unsent > 0 && now_ms - open.last_sent_ms >= window {
                out.push(Message::Summary {
                    cause: open.cause.clone(),
                    text: open.text.clone(),
                    more: open.unsent,
                    detail: open.detail.clone(),
                });
                open.unsent = 0;
                open.last_sent_ms = now_ms;
            } else if !open.sent {
                held.push(key.clone());
            }
        }
        let room = self.burst.saturating_sub(self.sent_in_window);
        let summaries = out.len().min(room);
        out.truncate(summaries);
        self.sent_in_window += summaries;
        if !held.is_empty() && self.sent_in_window < self.burst {
            self.sent_in_window += 1;
            for key in &held {
                if let Some(open) = self.open.get_mut(key) {
                    open.sent = true;
                    open.unsent = 0;
                    open.last_sent_ms = now_ms;
                }
            }
            out.push(Message::Overflow {
                causes: held.len(),
                examples: held.into_iter().take(5).collect(),
            });
        }
        out
    }

    /// The open causes, oldest first.
    pub fn open(&self) -> Vec<Open> {
        let mut all: Vec<Open> = self.open.values().cloned().collect();
        all.sort_by_key(|o| o.since_ms);
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dead(tenant: &str) -> Cause {
        Cause {
            kind: "dead_letter",
            tenant: Some(tenant.into()),
            subject: Some("resend".into()),
        }
    }

    const HOUR: i64 = 3_600_000;

    #[test]
    fn one_alert_then_a_summary_per_window_then_resolved() {
        let mut b = Board::new(HOUR, 20);
        let first = b.raise(dead("acme"), "jobs dead".into(), "e1".into(), 0);
        assert!(matches!(first, Some(Message::Raised { .. })));
        for i in 0..999 {
            assert_eq!(
                b.raise(dead("acme"), "jobs dead".into(), format!("e{i}"), 10 + i),
                None
            );
        }
        assert_eq!(b.tick(HOUR - 1), vec![], "not before the window has passed");
        let due = b.tick(HOUR);
        assert_eq!(due.len(), 1);
        assert!(matches!(&due[0], Message::Summary { more: 999, detail, .. } if detail == "e998"));
        assert_eq!(b.tick(2 * HOUR), vec![], "nothing new: no summary");
        assert_eq!(b.open()[0].count, 1000);
        let resolved = b.clear(&dead("acme"), 2 * HOUR + 5);
        assert!(
            matches!(resolved, Some(Message::Resolved { open_ms, .. }) if open_ms == 2 * HOUR + 5)
        );
        assert!(b.is_empty());
        assert_eq!(b.clear(&dead("acme"), 2 * HOUR + 6), None, "resolved once");
    }

    #[test]
    fn a_storm_across_many_causes_is_a_burst_then_one_overflow() {
        let mut b = Board::new(HOUR, 3);
        let sent: Vec<Message> = (0..1000)
            .filter_map(|i| b.raise(dead(&format!("t{i}")), "jobs dead".into(), String::new(), i))
            .collect();
        assert_eq!(sent.len(), 3, "the burst");
        assert_eq!(b.tick(HOUR / 2), vec![], "the window's budget is spent");
        let next = b.tick(HOUR + 1000);
        assert_eq!(next.len(), 1, "{next:?}");
        assert!(
            matches!(&next[0], Message::Overflow { causes: 997, examples } if examples.len() == 5)
        );
        assert_eq!(b.open().len(), 1000);
        // A held-back cause that clears before anything was sent about it says nothing.
        let mut quiet = Board::new(HOUR, 1);
        quiet.raise(dead("a"), "x".into(), String::new(), 0);
        quiet.raise(dead("b"), "x".into(), String::new(), 1);
        assert_eq!(quiet.clear(&dead("b"), 2), None);
    }
}

//! A tenant's figures per day: calls (direction, answered or not, duration, the post-call
//! analysis), emails (their delivery status) and text messages (theirs), from the per-day rows
//! the writer keeps as records are written (`rollup`: which fields count). Days are UTC dates.
//! Each query reads a row per day of one tenant. Also the status view's hourly counts of
//! deliveries (`activity`), which the writer keeps as deliveries are stored and end.

use std::fmt::Write as _;

use serde::Serialize;

use crate::id::{ConnectorId, TenantId};

/// Calls that started on one day.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct CallDay {
    /// `YYYY-MM-DD` (UTC).
    pub day: String,
    /// Calls in all.
    pub calls: i64,
    /// Inbound calls.
    pub inbound: i64,
    /// Outbound calls.
    pub outbound: i64,
    /// Calls that connected and did not end in voicemail.
    pub answered: i64,
    /// Calls that did not connect, failed, or reached voicemail.
    pub unanswered: i64,
    /// Mean duration of the calls that have one (seconds).
    pub avg_duration_s: Option<f64>,
    /// Calls with a post-call analysis.
    pub analyzed: i64,
    /// Analyzed calls the analysis calls successful.
    pub successful: i64,
    /// Analyzed calls by the caller's sentiment.
    pub positive: i64,
    /// See `positive`.
    pub neutral: i64,
    /// See `positive`.
    pub negative: i64,
}

/// Emails sent on one day, by where they ended.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct EmailDay {
    /// `YYYY-MM-DD` (UTC).
    pub day: String,
    /// Emails in all.
    pub emails: i64,
    /// Delivered.
    pub delivered: i64,
    /// Bounced.
    pub bounced: i64,
    /// Marked as spam by the recipient.
    pub complained: i64,
}

/// Text messages of one day, by where they ended.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct MessageDay {
    /// `YYYY-MM-DD` (UTC).
    pub day: String,
    /// Messages in all.
    pub messages: i64,
    /// Delivered.
    pub delivered: i64,
    /// Failed or undelivered.
    pub failed: i64,
}

/// A tenant's figures per day since a date, oldest day first; days without any are left out.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Analytics {
    /// Calls per day.
    pub calls: Vec<CallDay>,
    /// Emails per day.
    pub emails: Vec<EmailDay>,
    /// Text messages per day.
    pub messages: Vec<MessageDay>,
}

impl Analytics {
    /// The figures as CSV, one row per day of `days` (days without any are zeros).
    pub fn csv(&self, days: &[String]) -> String {
        let mut out = String::from(
            "day,calls,inbound,outbound,answered,unanswered,avg_duration_s,analyzed,successful,positive,neutral,negative,\
             emails,emails_delivered,emails_bounced,emails_complained,messages,messages_delivered,messages_failed\n",
        );
        for d in days {
            let c = self
                .calls
                .iter()
                .find(|c| &c.day == d)
                .cloned()
                .unwrap_or_default();
            let e = self
                .emails
                .iter()
                .find(|e| &e.day == d)
                .cloned()
                .unwrap_or_default();
            let m = self
                .messages
                .iter()
                .find(|m| &m.day == d)
                .cloned()
                .unwrap_or_default();
            let avg = c
                .avg_duration_s
                .map(|v| format!("{v:.1}"))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "{d},{},{},{},{},{},{avg},{},{},{},{},{},{},{},{},{},{},{},{}",
                c.calls,
                c.inbound,
                c.outbound,
                c.answered,
                c.unanswered,
                c.analyzed,
                c.successful,
                c.positive,
                c.neutral,
                c.negative,
                e.emails,
                e.delivered,
                e.bounced,
                e.complained,
                m.messages,
                m.delivered,
                m.failed
            );
        }
        out
    }
}

/// The first day of a window of `days` days ending today (UTC).
pub fn since_day(days: u32) -> String {
    let days = days.clamp(1, 366) as i64;
    let first = chrono::Utc::now() - chrono::Duration::days(days - 1);
    first.format("%Y-%m-%d").to_string()
}

/// Every day of the window, oldest first.
pub fn window(days: u32) -> Vec<String> {
    let days = days.clamp(1, 366) as i64;
    let today = chrono::Utc::now().date_naive();
    (0..days)
        .rev()
        .map(|back| {
            (today - chrono::Duration::days(back))
                .format("%Y-%m-%d")
                .to_string()
        })
        .collect()
}

/// One hour of one (tenant, connector)'s deliveries, as the writer counts them in `activity`
/// (in the transactions that store and end them), so a status view reads a few rows per hour
/// instead of the day's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActivityHour {
    /// Tenant id.
    pub tenant: TenantId,
    /// Connector id.
    pub connector: ConnectorId,
    /// Hours since the epoch.
    pub hour: i64,
    /// Deliveries received in that hour.
    pub received: i64,
    /// Of those, how many were dead-lettered.
    pub failed: i64,
    /// The last one's arrival (ms), if one arrived in that hour.
    pub last_received_ms: Option<i64>,
    /// When the last one handled successfully finished (ms).
    pub last_done_ms: Option<i64>,
}

/// An hour, in ms.
pub(crate) const HOUR_MS: i64 = 3_600_000;

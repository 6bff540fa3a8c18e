//! The normalized call the `call.*` hub events carry: one flat shape, the same for every
//! event, built from the merged `call` record.

use serde::Serialize;

use crate::model::CallRecord;

/// The payload of `call.started`, `call.ended` and `call.analyzed`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NormalizedCall {
    /// Retell's call id.
    pub call_id: String,
    /// The hub tenant the call belongs to.
    pub tenant: String,
    /// The Retell agent.
    pub agent_id: Option<String>,
    /// `inbound` or `outbound`.
    pub direction: Option<String>,
    /// The other party: `from_number` for inbound calls, `to_number` for outbound ones.
    pub customer_number: Option<String>,
    /// Caller number.
    pub from_number: Option<String>,
    /// Callee number.
    pub to_number: Option<String>,
    /// Retell's `call_status`.
    pub status: Option<String>,
    /// Start, epoch ms.
    pub start_timestamp: Option<i64>,
    /// End, epoch ms.
    pub end_timestamp: Option<i64>,
    /// Duration in ms.
    pub duration_ms: Option<i64>,
    /// `call_analysis.call_summary`.
    pub summary: Option<String>,
    /// `call_analysis.user_sentiment`.
    pub sentiment: Option<String>,
    /// `call_analysis.call_successful`.
    pub successful: Option<bool>,
    /// `call_analysis.in_voicemail`.
    pub in_voicemail: Option<bool>,
    /// `call_analysis.custom_analysis_data`: what the agent's post-call analysis extracted
    /// (e.g. the caller's email), always an object (empty when there is none) so routes can
    /// test `event.analysis_data.email is defined`.
    pub analysis_data: serde_json::Value,
    /// Plain-text transcript.
    pub transcript: Option<String>,
    /// Recording URL.
    pub recording_url: Option<String>,
    /// Why the call ended.
    pub disconnection_reason: Option<String>,
}

/// The customer's number: the caller of an inbound call, the callee of an outbound one.
pub fn customer_number(record: &CallRecord) -> Option<String> {
    match record.direction.as_deref() {
        Some("inbound") => record.from_number.clone(),
        Some("outbound") => record.to_number.clone(),
        _ => None,
    }
}

/// Builds the event payload for a record.
pub fn normalize(record: &CallRecord, tenant: &str) -> NormalizedCall {
    let analysis = record.call_analysis.as_ref();
    NormalizedCall {
        call_id: record.call_id.clone(),
        tenant: tenant.to_string(),
        agent_id: record.agent_id.clone(),
        direction: record.direction.clone(),
        customer_number: customer_number(record),
        from_number: record.from_number.clone(),
        to_number: record.to_number.clone(),
        status: record.call_status.clone(),
        start_timestamp: record.start_timestamp,
        end_timestamp: record.end_timestamp,
        duration_ms: record.duration_ms,
        summary: analysis.and_then(|a| a.call_summary.clone()),
        sentiment: analysis.and_then(|a| a.user_sentiment.clone()),
        successful: analysis.and_then(|a| a.call_successful),
        in_voicemail: analysis.and_then(|a| a.in_voicemail),
        analysis_data: analysis
            .and_then(|a| a.custom_analysis_data.clone())
            .filter(serde_json::Value::is_object)
            .unwrap_or_else(|| serde_json::json!({})),
        transcript: record.transcript.clone(),
        recording_url: record.recording_url.clone(),
        disconnection_reason: record.disconnection_reason.clone(),
    }
}

/// An example payload for the manifest: a call in `status`, with or without its analysis.
pub fn example(status: &str, analyzed: bool) -> String {
    let record = CallRecord {
        call_id: "call_2d8a9f1c0e5b4a7d9c3e1f6a".into(),
        call_status: Some(status.into()),
        direction: Some("inbound".into()),
        from_number: Some("+14155550100".into()),
        to_number: Some("+14155550199".into()),
        agent_id: Some("agent_7f3c2b1a9d8e".into()),
        start_timestamp: Some(1_714_608_000_000),
        end_timestamp: (status != "ongoing").then_some(1_714_608_185_000),
        duration_ms: (status != "ongoing").then_some(185_000),
        disconnection_reason: (status != "ongoing").then(|| "user_hangup".into()),
        transcript: (status != "ongoing").then(|| {
            "Agent: Hi, this is Ava from Acme Dental.\nUser: I'd like to book a cleaning.\n".into()
        }),
        recording_url: (status != "ongoing")
            .then(|| "https://dxc03zgurdly9.cloudfront.net/call.wav".into()),
        call_analysis: analyzed.then(|| crate::model::CallAnalysis {
            call_summary: Some("The caller booked a cleaning for Monday at 10am.".into()),
            in_voicemail: Some(false),
            user_sentiment: Some("Positive".into()),
            call_successful: Some(true),
            custom_analysis_data: Some(
                serde_json::json!({ "email": "jane@example.com", "first_name": "Jane" }),
            ),
            ..Default::default()
        }),
        ..Default::default()
    };
    serde_json::to_string(&normalize(&record, "acme")).unwrap_or_else(|_| "{}".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    #[test]
    fn customer_number_follows_direction() {
        let mut r = CallRecord {
            from_number: Some("+1caller".into()),
            to_number: Some("+1callee".into()),
            direction: Some("inbound".into()),
            ..Default::default()
        };
        assert_eq!(customer_number(&r).as_deref(), Some("+1caller"));
        r.direction = Some("outbound".into());
        assert_eq!(customer_number(&r).as_deref(), Some("+1callee"));
        r.direction = None;
        assert_eq!(customer_number(&r), None);
    }

    #[test]
    fn payload_has_every_documented_field() {
        let v: Value = serde_json::from_str(&example("ended", true)).unwrap();
        let keys = [
            "call_id",
            "tenant",
            "agent_id",
            "direction",
            "customer_number",
            "from_number",
            "to_number",
            "status",
            "start_timestamp",
            "end_timestamp",
            "duration_ms",
            "summary",
            "sentiment",
            "successful",
            "in_voicemail",
            "analysis_data",
            "transcript",
            "recording_url",
            "disconnection_reason",
        ];
        let obj = v.as_object().unwrap();
        assert_eq!(obj.len(), keys.len());
        for k in keys {
            assert!(obj.contains_key(k), "{k}");
        }
        assert_eq!(
            v["summary"],
            json!("The caller booked a cleaning for Monday at 10am.")
        );
        assert_eq!(v["customer_number"], json!("+14155550100"));
        assert_eq!(v["tenant"], json!("acme"));
    }

    #[test]
    fn started_example_has_no_end() {
        let v: Value = serde_json::from_str(&example("ongoing", false)).unwrap();
        assert_eq!(v["end_timestamp"], Value::Null);
        assert_eq!(v["summary"], Value::Null);
    }
}

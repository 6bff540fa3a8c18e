//! The `booking` record (one per Cal.com booking uid), its status order, the lookups it is found
//! by and the payload of the `booking.*` and `meeting.*` events. Pure.
//!
//! A reschedule makes a new booking with a new uid: the new record's `rescheduled_from` names
//! the old uid, and the old record (status `rescheduled`) names the new one in
//! `rescheduled_to`, so the chain can be walked either way.

use plugin_sdk::lookup;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The record kind.
pub const BOOKING: &str = "booking";

/// Where a booking stands. The order is the one it moves in: Cal.com never reopens a booking,
/// so a status only moves forward (`pending < accepted < cancelled | rejected < rescheduled`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Waiting for the organizer's confirmation (`BOOKING_REQUESTED`).
    Pending,
    /// Booked (`BOOKING_CREATED`, or confirmed).
    Accepted,
    /// Cancelled (`BOOKING_CANCELLED`).
    Cancelled,
    /// Declined by the organizer (`BOOKING_REJECTED`).
    Rejected,
    /// Moved to another booking (`rescheduled_to`); Cal.com shows it cancelled.
    Rescheduled,
}

impl Status {
    /// Its place in the order a booking moves in.
    pub fn rank(self) -> u8 {
        match self {
            Status::Pending => 1,
            Status::Accepted => 2,
            Status::Cancelled | Status::Rejected => 3,
            Status::Rescheduled => 4,
        }
    }

    /// Cal.com's word for a status, in a webhook (`ACCEPTED`) or the API (`accepted`); `None`
    /// for one the connector does not know (left as it was).
    pub fn parse(s: &str) -> Option<Status> {
        match s.trim().to_ascii_lowercase().as_str() {
            "pending" | "awaiting_host" | "unconfirmed" => Some(Status::Pending),
            "accepted" => Some(Status::Accepted),
            "cancelled" | "canceled" => Some(Status::Cancelled),
            "rejected" => Some(Status::Rejected),
            "rescheduled" => Some(Status::Rescheduled),
            _ => None,
        }
    }

    /// The status as records and events write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Accepted => "accepted",
            Status::Cancelled => "cancelled",
            Status::Rejected => "rejected",
            Status::Rescheduled => "rescheduled",
        }
    }
}

/// The booked event type.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EventTypeRef {
    /// Cal.com's numeric id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
    /// Its slug (`30min`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slug: Option<String>,
}

/// Someone on the booking: an attendee or the organizer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Person {
    /// Name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Email, as Cal.com wrote it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Phone number (E.164 when Cal.com has it so).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// IANA time zone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    /// The organizer's Cal.com username.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Marked absent (`BOOKING_NO_SHOW_UPDATED`, or the API's `absent`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub no_show: Option<bool>,
}

impl Person {
    /// What identifies an attendee within a booking: the lowercase email, else the phone, else
    /// the name.
    pub fn key(&self) -> String {
        if let Some(e) = self.email.as_deref().and_then(lookup::normalize_email) {
            return e;
        }
        self.phone
            .clone()
            .or_else(|| self.name.clone())
            .unwrap_or_default()
    }
}

/// What Cal.com says about a booking, every field optional: an observation carries what its
/// source told, a record what is known.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Details {
    /// Cal.com's numeric booking id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
    /// Title.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// When it starts, RFC 3339 UTC.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    /// When it ends, RFC 3339 UTC.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end: Option<String>,
    /// The event type booked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_type: Option<EventTypeRef>,
    /// The attendees.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attendees: Vec<Person>,
    /// The organizer (the host).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub organizer: Option<Person>,
    /// Where: an address, a phone number or a link, as Cal.com wrote it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// The video link (`metadata.videoCallUrl`, or a location that is a URL).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meeting_url: Option<String>,
    /// The booking this one replaced (its uid).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rescheduled_from: Option<String>,
    /// The booking that replaced this one (its uid).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rescheduled_to: Option<String>,
    /// Why it was cancelled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cancellation_reason: Option<String>,
    /// Why the organizer declined it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rejection_reason: Option<String>,
    /// The action key it was booked under, for bookings the hub made.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
}

/// The `booking` record.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BookingRecord {
    /// Cal.com's uid (the record's key).
    pub uid: String,
    /// Where it stands; unknown until a source says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    /// What is known about it.
    #[serde(flatten)]
    pub details: Details,
    /// When the Cal.com meeting started (`MEETING_STARTED`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meeting_started_at: Option<String>,
    /// When it ended (`MEETING_ENDED`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meeting_ended_at: Option<String>,
    /// The time of the newest information merged (epoch ms): older information only fills
    /// what is unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub updated_ms: Option<i64>,
    /// The status events published for it, each once.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub published: Vec<String>,
}

impl BookingRecord {
    /// An empty record for `uid`.
    pub fn new(uid: &str) -> BookingRecord {
        BookingRecord {
            uid: uid.into(),
            ..Default::default()
        }
    }

    /// The lookups the tenant's connectors find it by: each attendee's email and phone.
    pub fn lookups(&self) -> Vec<Option<String>> {
        self.details
            .attendees
            .iter()
            .flat_map(|a| {
                [
                    a.email.as_deref().and_then(lookup::email),
                    a.phone.as_deref().and_then(lookup::phone),
                ]
            })
            .collect()
    }

    /// The payload of event `event` for this booking.
    pub fn payload(&self, event: &str, tenant: &str) -> Value {
        let mut v = serde_json::to_value(self).unwrap_or_else(|_| json!({}));
        if let Some(map) = v.as_object_mut() {
            map.remove("published");
            map.remove("updated_ms");
            map.insert("event".into(), json!(event));
            map.insert("provider".into(), json!("calcom"));
            map.insert("tenant".into(), json!(tenant));
            map.insert("status".into(), json!(self.status.map(Status::as_str)));
            let absent: Vec<&str> = self
                .details
                .attendees
                .iter()
                .filter(|a| a.no_show == Some(true))
                .filter_map(|a| a.email.as_deref())
                .collect();
            map.insert("no_show".into(), json!(absent));
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jane() -> Person {
        Person {
            name: Some("Jane Roe".into()),
            email: Some("Jane@Example.com".into()),
            phone: Some("+1 (415) 555-0100".into()),
            time_zone: Some("America/New_York".into()),
            ..Default::default()
        }
    }

    #[test]
    fn statuses_read_both_spellings_and_move_forward() {
        assert_eq!(Status::parse("ACCEPTED"), Some(Status::Accepted));
        assert_eq!(Status::parse("canceled"), Some(Status::Cancelled));
        assert_eq!(Status::parse("upcoming"), None);
        assert!(Status::Pending.rank() < Status::Accepted.rank());
        assert!(Status::Accepted.rank() < Status::Cancelled.rank());
        assert_eq!(Status::Cancelled.rank(), Status::Rejected.rank());
        assert!(Status::Cancelled.rank() < Status::Rescheduled.rank());
    }

    #[test]
    fn attendees_are_found_by_email_and_phone() {
        let mut r = BookingRecord::new("bk_1");
        r.details.attendees = vec![
            jane(),
            Person {
                name: Some("No Contact".into()),
                ..Default::default()
            },
        ];
        let found: Vec<String> = r.lookups().into_iter().flatten().collect();
        assert_eq!(found, ["email:jane@example.com", "phone:+14155550100"]);
        assert_eq!(jane().key(), "jane@example.com");
    }

    #[test]
    fn the_record_is_flat_json_and_the_payload_says_more() {
        let mut r = BookingRecord::new("bk_1");
        r.status = Some(Status::Accepted);
        r.details.start = Some("2026-01-05T09:00:00Z".into());
        let mut absent = jane();
        absent.no_show = Some(true);
        r.details.attendees = vec![absent];
        r.published = vec!["booking.created".into()];
        r.updated_ms = Some(5);
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["start"], "2026-01-05T09:00:00Z");
        assert_eq!(v["status"], "accepted");
        assert!(v.get("meeting_url").is_none());
        let back: BookingRecord = serde_json::from_value(v).unwrap();
        assert_eq!(back, r);
        let p = r.payload("booking.created", "acme");
        assert_eq!(p["event"], "booking.created");
        assert_eq!(p["provider"], "calcom");
        assert_eq!(p["tenant"], "acme");
        assert_eq!(p["no_show"], json!(["Jane@Example.com"]));
        assert!(p.get("published").is_none() && p.get("updated_ms").is_none());
    }
}

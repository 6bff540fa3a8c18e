//! What the connector declares: the HMAC-signed route, the `booking.*` and `meeting.*` events
//! (with example payloads), the calendar actions, the jobs, config, credentials and its one
//! outbound host. Pure: `describe` runs without host access.

use plugin_sdk::capability::{CALENDAR_BOOK, CALENDAR_CANCEL, CALENDAR_GET_SLOTS};
use plugin_sdk::{
    ActionDecl, EventDecl, HmacScheme, JobDecl, Manifest, Route, Selector, SignatureScheme, field,
    manifest as base, operation_inputs, operation_outputs, route,
};

use crate::api::{API_KEY, ORIGIN};
use crate::book::CREATE_BOOKING;
use crate::booking::{BookingRecord, Status};
use crate::change::{CANCEL_BOOKING, RESCHEDULE_BOOKING};
use crate::event_type::{EVENT_TYPE_ID, TIME_ZONE, USERNAME};
use crate::merge::{self, EVENTS, merge};
use crate::reconcile::RECONCILE;
use crate::register::{CHECK, REGISTER, UNREGISTER};
use crate::slots::GET_SLOTS;
use crate::webhook::{EXAMPLE, observations};

/// The credential holding the webhook's signing secret.
pub const WEBHOOK_SECRET: &str = "webhook_secret";
/// The signature header: lowercase hex HMAC-SHA256 of the raw body, no prefix, no timestamp.
pub const SIGNATURE: &str = "x-cal-signature-256";

/// The one route, `/hooks/{tenant}/calcom`: Cal.com's declared HMAC (so the literal
/// `no-secret-provided` of a webhook without a secret never verifies), a delivery identified by
/// trigger, booking uid and `createdAt` together (Cal.com sends no delivery id). A payload
/// without a `uid` (a no-show update, a form) is identified by its body's hash rather than
/// refused: Cal.com never sends a refused webhook again.
pub fn routes() -> Vec<Route> {
    let mut hook = route(
        "",
        SignatureScheme::Hmac(HmacScheme::body_hex(SIGNATURE, "")),
        WEBHOOK_SECRET,
    );
    hook.identity = vec![
        Selector::Json("/triggerEvent".into()),
        Selector::Json("/payload/uid".into()),
        Selector::Json("/createdAt".into()),
    ];
    hook.identity_optional = true;
    hook.event_type = Some(Selector::Json("/triggerEvent".into()));
    hook.example = Some(EXAMPLE.into());
    vec![hook]
}

fn describe_event(name: &str) -> &'static str {
    match name {
        merge::CREATED => {
            "A booking was made (or confirmed), by the booking page, the API or `calendar:book`."
        }
        merge::RESCHEDULED => {
            "A booking replaced another (`rescheduled_from`, the old uid, now `rescheduled`)."
        }
        merge::CANCELLED => "A booking was cancelled (`cancellation_reason`).",
        merge::REQUESTED => "A booking waits for the organizer's confirmation.",
        merge::REJECTED => "The organizer declined a booking (`rejection_reason`).",
        merge::NO_SHOW => "An attendee was marked absent (`no_show` lists them).",
        merge::MEETING_STARTED => "The booking's Cal.com Video meeting started.",
        merge::MEETING_ENDED => "The booking's Cal.com Video meeting ended.",
        _ => "",
    }
}

/// An example payload of `event`: the route's example booking, moved to where the event says.
pub fn example(event: &str) -> String {
    let body: serde_json::Value =
        serde_json::from_str(&EXAMPLE.replace("{{id}}", "3f9a2c")).unwrap_or_default();
    let seen = observations(
        crate::webhook::Trigger::Created,
        Some("2026-03-02T14:00:00.000Z"),
        &body["payload"],
    )
    .unwrap_or_default();
    let mut record: BookingRecord = seen
        .first()
        .map(|s| merge(None, s).record)
        .unwrap_or_default();
    match event {
        merge::RESCHEDULED => record.details.rescheduled_from = Some("bk_2a7e91".into()),
        merge::CANCELLED => {
            record.status = Some(Status::Cancelled);
            record.details.cancellation_reason = Some("Feeling better".into());
        }
        merge::REQUESTED => record.status = Some(Status::Pending),
        merge::REJECTED => {
            record.status = Some(Status::Rejected);
            record.details.rejection_reason = Some("Fully booked that day".into());
        }
        merge::NO_SHOW => {
            if let Some(a) = record.details.attendees.first_mut() {
                a.no_show = Some(true);
            }
        }
        merge::MEETING_STARTED => record.meeting_started_at = Some("2026-03-09T14:00:20Z".into()),
        merge::MEETING_ENDED => {
            record.meeting_started_at = Some("2026-03-09T14:00:20Z".into());
            record.meeting_ended_at = Some("2026-03-09T14:27:45Z".into());
        }
        _ => {}
    }
    record.payload(event, "acme").to_string()
}

fn action(name: &str, description: &str, implements: &str) -> ActionDecl {
    ActionDecl {
        name: name.into(),
        description: description.into(),
        inputs: operation_inputs(implements),
        outputs: operation_outputs(implements),
        implements: Some(implements.into()),
    }
}

/// The actions.
pub fn actions() -> Vec<ActionDecl> {
    vec![
        action(
            GET_SLOTS,
            "The free slots of the event type (input, else config `event_type_id`) from `start` \
             (default now) to `end` (default a week later), earliest first: `{\"slots\": [{start, end}]}`.",
            CALENDAR_GET_SLOTS,
        ),
        action(
            CREATE_BOOKING,
            "Books a slot for an attendee, at most once per idempotency key (a lost answer is \
             found again, never booked twice). A taken slot fails with a message offering the \
             next free ones. Answers `{id, start, end, meeting_url}` (`id`: Cal.com's uid).",
            CALENDAR_BOOK,
        ),
        action(
            CANCEL_BOOKING,
            "Cancels a booking by uid (`reason` is shown to the attendee); once per key.",
            CALENDAR_CANCEL,
        ),
        ActionDecl {
            name: RESCHEDULE_BOOKING.into(),
            description: "Moves a booking to a new start: Cal.com makes a new booking with a new \
                          uid, which it answers; the old one becomes `rescheduled`. Once per key."
                .into(),
            inputs: vec![
                field("id", true, "The booking's uid."),
                field("start", true, "The new start (RFC 3339)."),
                field("reason", false, "Why."),
                field(
                    "rescheduled_by",
                    false,
                    "Email of who reschedules (the organizer's confirms at once).",
                ),
            ],
            outputs: vec![
                field("id", true, "The new booking's uid."),
                field("start", true, "When it starts (RFC 3339)."),
                field("end", true, "When it ends (RFC 3339)."),
                field("meeting_url", false, "The video link, if any."),
                field("rescheduled_from", true, "The old booking's uid."),
            ],
            implements: None,
        },
    ]
}

/// When `reconcile_bookings` runs unprompted for every tenant: every 10 minutes.
pub const RECONCILE_EVERY: &str = "0 */10 * * * *";

fn job(name: &str, description: &str) -> JobDecl {
    JobDecl {
        name: name.into(),
        description: description.into(),
        schedule: None,
    }
}

/// The manifest.
pub fn manifest() -> Manifest {
    Manifest {
        description: "Cal.com bookings: HMAC-signed webhooks into non-regressing `booking` \
                      records found by each attendee's email and phone, booking.* and meeting.* \
                      events, a reconcile job (Cal.com never retries a webhook), and the \
                      calendar capability (slots, book once per key, cancel) plus reschedule."
            .into(),
        routes: routes(),
        events: EVENTS
            .iter()
            .map(|name| EventDecl {
                name: (*name).into(),
                description: describe_event(name).into(),
                example: example(name),
            })
            .collect(),
        actions: actions(),
        jobs: vec![
            JobDecl {
                schedule: Some(RECONCILE_EVERY.into()),
                ..job(
                    RECONCILE,
                    "Reads the bookings created or changed since its cursor and merges them, publishing what a lost webhook would have (runs every 10 minutes by default: Cal.com never retries a webhook).",
                )
            },
            job(
                REGISTER,
                "Registers the hub's URL as a Cal.com webhook for every trigger handled (kept if there), with a signing secret the hub generates.",
            ),
            job(UNREGISTER, "Removes the hub's webhook at Cal.com."),
            job(CHECK, "Checks the API key (GET /v2/me)."),
        ],
        config: vec![
            field(
                EVENT_TYPE_ID,
                false,
                "The event type booked when an action names none: its numeric id (or a slug, with `username`).",
            ),
            field(
                USERNAME,
                false,
                "The Cal.com username owning event types named by slug.",
            ),
            field(
                TIME_ZONE,
                false,
                "IANA zone bookings and slots default to (the clinic's; default UTC).",
            ),
        ],
        credentials: vec![
            field(
                API_KEY,
                true,
                "Cal.com API key (`cal_live_...`), Settings -> Developer -> API keys.",
            ),
            field(
                WEBHOOK_SECRET,
                false,
                "The webhook's signing secret: generated and kept by `hub connect` (register_webhooks), or set by hand in Cal.com and sealed.",
            ),
        ],
        outbound_hosts: vec![ORIGIN.into()],
        ..base("calcom", env!("CARGO_PKG_VERSION"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plugin_sdk::capability::{answers, conforms, operation};

    #[test]
    fn the_route_is_cal_coms_hmac() {
        let m = manifest();
        assert_eq!(m.name, "calcom");
        let r = &m.routes[0];
        assert_eq!(
            (m.routes.len(), r.name.as_str(), r.credential.as_str()),
            (1, "", "webhook_secret")
        );
        let SignatureScheme::Hmac(h) = &r.signature else {
            panic!("declared HMAC")
        };
        assert_eq!(
            (h.header.as_str(), h.prefix.as_str(), h.message.as_str()),
            (SIGNATURE, "", "{body}")
        );
        assert!(matches!(h.timestamp, plugin_sdk::HmacTimestamp::None));
        assert!(matches!(h.encoding, plugin_sdk::MacEncoding::Hex));
        let ids: Vec<&str> = r
            .identity
            .iter()
            .map(|s| match s {
                Selector::Json(p) => p.as_str(),
                _ => "",
            })
            .collect();
        assert_eq!(ids, ["/triggerEvent", "/payload/uid", "/createdAt"]);
        assert!(r.identity_optional && !r.sync_reply);
        let example: serde_json::Value =
            serde_json::from_str(&r.example.as_ref().unwrap().replace("{{id}}", "1")).unwrap();
        assert_eq!(example["payload"]["uid"], "bk_1");
    }

    #[test]
    fn the_actions_implement_the_calendar_capability() {
        let m = manifest();
        for a in &m.actions {
            let Some(op) = a.implements.as_deref() else {
                continue;
            };
            let op = operation(op).unwrap();
            let inputs: Vec<(&str, bool)> = a
                .inputs
                .iter()
                .map(|f| (f.name.as_str(), f.required))
                .collect();
            let outputs: Vec<(&str, bool)> = a
                .outputs
                .iter()
                .map(|f| (f.name.as_str(), f.required))
                .collect();
            conforms(op, &inputs).unwrap();
            answers(op, &outputs).unwrap();
        }
        let names: Vec<&str> = m.actions.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "get_slots",
                "create_booking",
                "cancel_booking",
                "reschedule_booking"
            ]
        );
        let jobs: Vec<&str> = m.jobs.iter().map(|j| j.name.as_str()).collect();
        assert_eq!(
            jobs,
            [
                "reconcile_bookings",
                "register_webhooks",
                "unregister_webhooks",
                "check_credentials"
            ]
        );
        assert_eq!(m.outbound_hosts, ["https://api.cal.com"]);
        assert!(m.config.iter().all(|c| !c.required));
        let creds: Vec<(&str, bool)> = m
            .credentials
            .iter()
            .map(|c| (c.name.as_str(), c.required))
            .collect();
        assert_eq!(creds, [("api_key", true), ("webhook_secret", false)]);
    }

    #[test]
    fn every_event_has_a_description_and_a_full_example() {
        let m = manifest();
        assert_eq!(m.events.len(), 8);
        for e in &m.events {
            assert!(!e.description.is_empty(), "{}", e.name);
            let v: serde_json::Value = serde_json::from_str(&e.example).unwrap();
            assert_eq!(v["event"], e.name.as_str());
            assert_eq!(v["uid"], "bk_3f9a2c");
            assert_eq!(v["attendees"][0]["phone"], "+14155550100");
            assert_eq!(v["meeting_url"], "https://app.cal.com/video/bk_3f9a2c");
            assert_eq!(v["event_type"]["slug"], "check-up");
        }
        let status = |e: &str| {
            let v: serde_json::Value = serde_json::from_str(&example(e)).unwrap();
            v["status"].as_str().unwrap_or_default().to_string()
        };
        assert_eq!(status(merge::CANCELLED), "cancelled");
        assert_eq!(status(merge::CREATED), "accepted");
    }
}

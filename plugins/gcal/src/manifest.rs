//! What the connector declares: the `push` route (Google's channel pushes, checked by the host
//! against the channels it holds), the `calendar.event.*` events with example payloads, the
//! calendar actions, the jobs, config, the `google` OAuth2 credential the host holds, and its
//! two origins (the API, and Google's token endpoint, which the host calls for it). Pure:
//! `describe` runs without host access.

use plugin_sdk::capability::{CALENDAR_BOOK, CALENDAR_CANCEL, CALENDAR_GET_SLOTS};
use plugin_sdk::{
    ActionDecl, ChannelHeaders, EventDecl, FieldDecl, JobDecl, Manifest, Oauth2ClientAuth,
    Oauth2Decl, Oauth2Grant, Route, Selector, SignatureScheme, field, manifest as base, oauth2,
    operation_inputs, operation_outputs, route,
};

use crate::api::{GOOGLE, ORIGIN};
use crate::book::CREATE_EVENT;
use crate::change::{CANCEL_EVENT, UPDATE_EVENT};
use crate::channels::{RENEW_CHANNELS, WATCH_EVENTS};
use crate::config;
use crate::event::{CANCELLED, CHANGED, EventRecord, example_google};
use crate::push::{CHANNEL_ID, CHANNEL_TOKEN, MESSAGE_NUMBER, RESOURCE_ID, RESOURCE_STATE, ROUTE};
use crate::register::{CHECK, REGISTER, UNREGISTER};
use crate::slots::GET_SLOTS;
use crate::sync::SYNC;

/// Google's consent page.
pub const AUTHORIZE_URL: &str = "https://accounts.google.com/o/oauth2/v2/auth";
/// Google's token endpoint.
pub const TOKEN_URL: &str = "https://oauth2.googleapis.com/token";
/// Google's revocation endpoint (RFC 7009).
pub const REVOKE_URL: &str = "https://oauth2.googleapis.com/revoke";
/// The origin of the token and revocation endpoints.
pub const TOKEN_ORIGIN: &str = "https://oauth2.googleapis.com";
/// The scopes asked for: events (list, watch, insert, patch, delete; `channels.stop`) and
/// free/busy (`freebusy.query`), per the discovery document's scopes of each method.
pub const SCOPES: [&str; 2] = [
    "https://www.googleapis.com/auth/calendar.events",
    "https://www.googleapis.com/auth/calendar.freebusy",
];

/// The `push` route: Google's channel headers; a delivery is its channel and message number.
pub fn routes() -> Vec<Route> {
    let mut push = route(
        ROUTE,
        SignatureScheme::Channel(ChannelHeaders {
            id: CHANNEL_ID.into(),
            token: CHANNEL_TOKEN.into(),
            resource: RESOURCE_ID.into(),
        }),
        "",
    );
    push.identity = vec![
        Selector::Header(CHANNEL_ID.into()),
        Selector::Header(MESSAGE_NUMBER.into()),
    ];
    push.event_type = Some(Selector::Header(RESOURCE_STATE.into()));
    vec![push]
}

/// The `google` credential: consent (offline, so Google gives a refresh token, and always
/// asking, so it gives one again on a reconnect), a pasted refresh token, or a service
/// account's JWT.
pub fn google() -> Oauth2Decl {
    let mut g = oauth2(GOOGLE, AUTHORIZE_URL, TOKEN_URL, &SCOPES);
    g.description = "The Google account whose calendar the hub reads and books in: a user's \
                     consent, a pasted refresh token, or a service account (jwt_bearer)."
        .into();
    g.revoke_url = Some(REVOKE_URL.into());
    g.authorize_params = vec![
        ("access_type".into(), "offline".into()),
        ("prompt".into(), "consent".into()),
    ];
    g.grants = vec![
        Oauth2Grant::AuthorizationCode,
        Oauth2Grant::RefreshToken,
        Oauth2Grant::JwtBearer,
    ];
    g.client_auth = Oauth2ClientAuth::Body;
    g
}

/// An example payload of `event`.
pub fn example(event: &str) -> String {
    let mut record =
        EventRecord::from_google(&example_google(), "primary", Some("America/New_York"))
            .unwrap_or_default();
    let change = if event == CANCELLED {
        record.status = "cancelled".into();
        record.cancellation_reason = Some("Feeling better".into());
        "cancelled"
    } else {
        "created"
    };
    record.payload(event, change, "acme").to_string()
}

fn with(mut fields: Vec<FieldDecl>, more: &[(&str, &str)]) -> Vec<FieldDecl> {
    fields.extend(more.iter().map(|(n, d)| field(n, false, d)));
    fields
}

const CALENDAR_INPUT: (&str, &str) = (
    "calendar_id",
    "The calendar (default: config `calendar_id`, else `primary`).",
);
const SEND_UPDATES_INPUT: (&str, &str) = (
    "send_updates",
    "Whom Google emails: `all`, `externalOnly` or `none` (default: config `send_updates`, else `all`).",
);

/// The actions.
pub fn actions() -> Vec<ActionDecl> {
    vec![
        ActionDecl {
            name: GET_SLOTS.into(),
            description: "The calendar's free slots from `start` (default now) to `end` (default \
                          a week later, at most 31 days): every `slot_minutes` in `working_hours` \
                          on `working_days`, in the zone, minus what freeBusy says is busy. \
                          `{\"slots\": [{start, end}], \"time_zone\"}`, earliest first."
                .into(),
            inputs: with(operation_inputs(CALENDAR_GET_SLOTS), &[CALENDAR_INPUT]),
            outputs: with(
                operation_outputs(CALENDAR_GET_SLOTS),
                &[("time_zone", "The zone the slots are written in.")],
            ),
            implements: Some(CALENDAR_GET_SLOTS.into()),
        },
        ActionDecl {
            name: CREATE_EVENT.into(),
            description: "Books an appointment at most once per idempotency key: the event id is \
                          the key's, so a retry finds the event rather than making another. A \
                          busy slot is declined with the next free ones. `meet: true` adds a \
                          Google Meet."
                .into(),
            inputs: with(
                operation_inputs(CALENDAR_BOOK),
                &[
                    (
                        "end",
                        "When it ends (RFC 3339), instead of `duration_minutes`.",
                    ),
                    ("location", "Where."),
                    ("meet", "`true` for a Google Meet link."),
                    SEND_UPDATES_INPUT,
                    CALENDAR_INPUT,
                ],
            ),
            outputs: with(
                operation_outputs(CALENDAR_BOOK),
                &[
                    ("meet_link", "The Google Meet link (once Google made it)."),
                    ("html_link", "The event in Google Calendar."),
                    ("status", "`confirmed`, `tentative` or `cancelled`."),
                    ("calendar_id", "The calendar it is on."),
                ],
            ),
            implements: Some(CALENDAR_BOOK.into()),
        },
        ActionDecl {
            name: UPDATE_EVENT.into(),
            description: "Changes an event (PATCH): new times (checked against free/busy, its \
                          own time aside), title, notes, place, or an attendee added. Once per key."
                .into(),
            inputs: vec![
                field("id", true, "The event's id."),
                field("start", false, "The new start (RFC 3339)."),
                field("end", false, "The new end (RFC 3339)."),
                field("duration_minutes", false, "The new length."),
                field(
                    "time_zone",
                    false,
                    "The zone the new times are kept in (default: the event's).",
                ),
                field("title", false, "A new title."),
                field("notes", false, "A new description."),
                field("location", false, "A new place."),
                field("attendee_email", false, "An attendee to add."),
                field("attendee_name", false, "Their name."),
                field(SEND_UPDATES_INPUT.0, false, SEND_UPDATES_INPUT.1),
                field(CALENDAR_INPUT.0, false, CALENDAR_INPUT.1),
            ],
            outputs: operation_outputs(CALENDAR_BOOK)
                .into_iter()
                .chain([
                    field("meet_link", false, "The Google Meet link."),
                    field("html_link", false, "The event in Google Calendar."),
                    field("status", true, "`confirmed` or `tentative`."),
                    field("calendar_id", true, "The calendar it is on."),
                ])
                .collect(),
            implements: None,
        },
        ActionDecl {
            name: CANCEL_EVENT.into(),
            description: "Cancels (deletes) an event; one Google has deleted already counts as \
                          done. Once per key."
                .into(),
            inputs: with(
                operation_inputs(CALENDAR_CANCEL),
                &[SEND_UPDATES_INPUT, CALENDAR_INPUT],
            ),
            outputs: with(
                operation_outputs(CALENDAR_CANCEL),
                &[("status", "`cancelled`.")],
            ),
            implements: Some(CALENDAR_CANCEL.into()),
        },
    ]
}

/// When `sync` runs unprompted for every tenant, the safety net for dropped pushes: every 15
/// minutes.
pub const SYNC_EVERY: &str = "0 */15 * * * *";
/// When `renew_channels` runs unprompted: hourly, at minute 7.
pub const RENEW_EVERY: &str = "0 7 * * * *";

fn job(name: &str, description: &str) -> JobDecl {
    JobDecl {
        name: name.into(),
        description: description.into(),
        schedule: None,
    }
}

/// The config keys.
pub fn config_fields() -> Vec<FieldDecl> {
    vec![
        field(
            config::CALENDAR_ID,
            false,
            "The calendar (default `primary`, the account's own).",
        ),
        field(
            config::TIME_ZONE,
            false,
            "IANA zone of slots and new events (the clinic's; default: the calendar's own, else UTC).",
        ),
        field(
            config::SLOT_MINUTES,
            false,
            "Slot length and grid in minutes (default 30).",
        ),
        field(
            config::WORKING_HOURS,
            false,
            "Hours slots are offered in, e.g. \"09:00-17:00\" or [\"09:00-12:00\", \"13:00-17:00\"] (default 09:00-17:00).",
        ),
        field(
            config::WORKING_DAYS,
            false,
            "Days slots are offered on, e.g. [\"mon\", \"tue\", \"wed\", \"thu\", \"fri\"] (the default).",
        ),
        field(
            config::CHANNEL_TTL_SECS,
            false,
            "Lifetime asked for a push channel in seconds (default: Google's; Google may answer less).",
        ),
        field(
            config::SYNC_DAYS_BACK,
            false,
            "How many days back the first sync (and a re-list after 410) reads (default 30).",
        ),
        field(
            config::SEND_UPDATES,
            false,
            "Whom Google emails about events the hub makes, changes or cancels: all (default), externalOnly, none.",
        ),
    ]
}

/// The manifest.
pub fn manifest() -> Manifest {
    Manifest {
        description: "Google Calendar: push channels the host holds (watched, renewed before \
                      they expire, stopped), an incremental sync by syncToken into `event` \
                      records found by attendees' emails, calendar.event.changed and \
                      calendar.event.cancelled, and the calendar capability (free slots in \
                      working hours, book once per key, cancel) plus update_event."
            .into(),
        routes: routes(),
        events: vec![
            EventDecl {
                name: CHANGED.into(),
                description: "An event was created or changed (`change`: `created` or \
                              `updated`), by anyone: found by the sync, or made by an action."
                    .into(),
                example: example(CHANGED),
            },
            EventDecl {
                name: CANCELLED.into(),
                description: "An event was cancelled (deleted), once; `cancellation_reason` \
                              when the hub cancelled it."
                    .into(),
                example: example(CANCELLED),
            },
        ],
        actions: actions(),
        jobs: vec![
            JobDecl {
                schedule: Some(SYNC_EVERY.into()),
                ..job(
                    SYNC,
                    "Reads what changed in a calendar (input {calendar_id?}) by its sync token, or lists it in full; pushes queue it, and it runs every 15 minutes by default (pushes are not guaranteed).",
                )
            },
            job(
                WATCH_EVENTS,
                "Opens a push channel on a calendar's events (input {calendar_id?}) and queues its first sync.",
            ),
            JobDecl {
                schedule: Some(RENEW_EVERY.into()),
                ..job(
                    RENEW_CHANNELS,
                    "Replaces channels near their expiry (new one first, then the old stopped); runs hourly by default.",
                )
            },
            job(
                REGISTER,
                "Watches the configured calendar (a live channel is kept) and queues its first sync.",
            ),
            job(UNREGISTER, "Stops and closes every push channel."),
            job(
                CHECK,
                "Checks the grant with one read of the calendar's events.",
            ),
        ],
        config: config_fields(),
        credentials: Vec::new(),
        oauth2: vec![google()],
        outbound_hosts: vec![ORIGIN.into(), TOKEN_ORIGIN.into()],
        ..base("gcal", env!("CARGO_PKG_VERSION"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plugin_sdk::capability::{answers, conforms, operation};

    #[test]
    fn the_push_route_is_a_channel_route() {
        let m = manifest();
        assert_eq!(m.name, "gcal");
        let r = &m.routes[0];
        assert_eq!(
            (m.routes.len(), r.name.as_str(), r.credential.as_str()),
            (1, "push", "")
        );
        let SignatureScheme::Channel(h) = &r.signature else {
            panic!("a channel route")
        };
        assert_eq!(
            (h.id.as_str(), h.token.as_str(), h.resource.as_str()),
            (
                "x-goog-channel-id",
                "x-goog-channel-token",
                "x-goog-resource-id"
            )
        );
        assert!(matches!(&r.event_type, Some(Selector::Header(h)) if h == "x-goog-resource-state"));
        assert_eq!(r.identity.len(), 2);
        assert!(!r.identity_optional && !r.sync_reply && r.example.is_none());
    }

    #[test]
    fn one_oauth2_credential_and_no_other() {
        let m = manifest();
        assert!(m.credentials.is_empty());
        let g = &m.oauth2[0];
        assert_eq!((m.oauth2.len(), g.name.as_str()), (1, "google"));
        assert_eq!(g.scopes, SCOPES);
        assert_eq!(g.revoke_url.as_deref(), Some(REVOKE_URL));
        assert_eq!(
            g.authorize_params,
            [
                ("access_type".to_string(), "offline".to_string()),
                ("prompt".into(), "consent".into())
            ]
        );
        assert_eq!(g.grants.len(), 3);
        assert_eq!(
            m.outbound_hosts,
            [
                "https://www.googleapis.com",
                "https://oauth2.googleapis.com"
            ]
        );
        assert!(m.config.iter().all(|c| !c.required));
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
            ["get_slots", "create_event", "update_event", "cancel_event"]
        );
        let jobs: Vec<&str> = m.jobs.iter().map(|j| j.name.as_str()).collect();
        assert_eq!(
            jobs,
            [
                "sync",
                "watch_events",
                "renew_channels",
                "register_webhooks",
                "unregister_webhooks",
                "check_credentials"
            ]
        );
    }

    #[test]
    fn every_event_has_a_full_example() {
        let m = manifest();
        assert_eq!(m.events.len(), 2);
        for e in &m.events {
            let v: serde_json::Value = serde_json::from_str(&e.example).unwrap();
            assert_eq!(v["event"], e.name.as_str());
            assert_eq!(v["provider"], "gcal");
            assert_eq!(v["start"], "2026-03-09T10:00:00-04:00");
            assert_eq!(v["attendees"][1]["email"], "jane.roe@example.com");
        }
        let cancelled: serde_json::Value = serde_json::from_str(&example(CANCELLED)).unwrap();
        assert_eq!(cancelled["status"], "cancelled");
    }
}

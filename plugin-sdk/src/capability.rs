//! Capabilities: what a tenant does (send email, send an SMS, keep a CRM contact) apart from
//! which provider does it. A tenant names its connector for each capability once
//! (`email = "sendgrid"` in `[tenants.<id>]`); a route's `action = "email:send"` then runs that
//! connector's action for the operation, with the one input shape below whichever provider it
//! is. A connector says which operation an action performs with `implements` in its
//! `ActionDecl`; the hub checks at load
//! that such an action takes every input of the operation and requires none the operation does
//! not.
//!
//! ```
//! use plugin_sdk::capability::{operation, EMAIL_SEND};
//! let send = operation(EMAIL_SEND).unwrap();
//! assert_eq!(send.capability, "email");
//! assert!(send.inputs.iter().any(|i| i.name == "subject" && i.required));
//! assert!(operation("email:fax").is_none());
//! ```

/// `email:send`: an email (input [`crate::email::EmailInput`]).
pub const EMAIL_SEND: &str = "email:send";
/// `sms:send`: a text message.
pub const SMS_SEND: &str = "sms:send";
/// `crm:upsert_contact`: a contact created or updated by email.
pub const CRM_UPSERT_CONTACT: &str = "crm:upsert_contact";
/// `calendar:get_slots`: the free slots in a window.
pub const CALENDAR_GET_SLOTS: &str = "calendar:get_slots";
/// `calendar:book`: a booking (an appointment) in a free slot, at most once per key.
pub const CALENDAR_BOOK: &str = "calendar:book";
/// `calendar:cancel`: a booking cancelled.
pub const CALENDAR_CANCEL: &str = "calendar:cancel";

/// A capability a tenant gives one connector.
#[derive(Debug)]
pub struct Capability {
    /// Its name, also the tenant's config key (`email`).
    pub name: &'static str,
    /// What it is for.
    pub description: &'static str,
    /// What a route can ask of it.
    pub operations: &'static [Operation],
}

/// One thing a capability does: an action any connector with the capability performs.
#[derive(Debug)]
pub struct Operation {
    /// `capability:operation`, as a route writes it (`email:send`).
    pub id: &'static str,
    /// The capability (`email`).
    pub capability: &'static str,
    /// The input every implementation takes and translates for its provider.
    pub inputs: &'static [Input],
    /// What every implementation answers on success, whichever provider it is.
    pub outputs: &'static [Input],
}

/// One input field of an operation.
#[derive(Debug)]
pub struct Input {
    /// The JSON field.
    pub name: &'static str,
    /// Whether a route must give it.
    pub required: bool,
    /// What it holds.
    pub description: &'static str,
}

const fn input(name: &'static str, required: bool, description: &'static str) -> Input {
    Input {
        name,
        required,
        description,
    }
}

/// Every capability the hub knows.
pub const CAPABILITIES: &[Capability] = &[
    Capability {
        name: "email",
        description: "Send email (Resend, SendGrid, Postmark).",
        operations: &[Operation {
            id: EMAIL_SEND,
            capability: "email",
            inputs: &[
                input("to", true, "Recipient address, or a list."),
                input("subject", true, "Subject line."),
                input("html", false, "HTML body (give html, text or both)."),
                input("text", false, "Plain-text body."),
                input("cc", false, "Cc address or list."),
                input("bcc", false, "Bcc address or list."),
                input(
                    "reply_to",
                    false,
                    "Reply-to address (default: the tenant's).",
                ),
                input("tags", false, "Tags: {name: value}."),
                input("headers", false, "Extra email headers: {name: value}."),
            ],
            outputs: &[input(
                "id",
                true,
                "The provider's id for the message (Resend's id, SendGrid's X-Message-Id, Postmark's MessageID).",
            )],
        }],
    },
    Capability {
        name: "sms",
        description: "Send text messages (Twilio).",
        operations: &[Operation {
            id: SMS_SEND,
            capability: "sms",
            inputs: &[
                input("to", true, "Recipient in E.164 (+14155550100)."),
                input("body", false, "Text (give body, media_url or both)."),
                input(
                    "media_url",
                    false,
                    "Public URL of media to attach, or a list.",
                ),
            ],
            outputs: &[input(
                "id",
                true,
                "The provider's id for the message (Twilio's SID).",
            )],
        }],
    },
    Capability {
        name: "crm",
        description: "Keep contacts in the tenant's CRM (HubSpot; Salesforce later).",
        operations: &[Operation {
            id: CRM_UPSERT_CONTACT,
            capability: "crm",
            inputs: &[
                input("email", true, "The contact's email, which identifies it."),
                input("phone", false, "The contact's phone number."),
                input("firstname", false, "First name."),
                input("lastname", false, "Last name."),
                input("properties", false, "Other fields, by the CRM's own names."),
            ],
            outputs: &[input("id", true, "The CRM's id for the contact.")],
        }],
    },
    Capability {
        name: "calendar",
        description: "Bookings in the tenant's calendar (Cal.com, Google Calendar). Times are \
                      RFC 3339 with their offset; `time_zone` is an IANA name (the tenant's by \
                      default).",
        operations: &[
            Operation {
                id: CALENDAR_GET_SLOTS,
                capability: "calendar",
                inputs: &[
                    input("start", false, "From when (RFC 3339; default: now)."),
                    input(
                        "end",
                        false,
                        "Until when (RFC 3339; default: 7 days after start).",
                    ),
                    input(
                        "duration_minutes",
                        false,
                        "How long a slot is (default: the calendar's).",
                    ),
                    input(
                        "time_zone",
                        false,
                        "The zone the slots are written in (IANA).",
                    ),
                    input(
                        "event_type",
                        false,
                        "Which kind of appointment (the provider's id or slug), if the calendar has several.",
                    ),
                ],
                outputs: &[input(
                    "slots",
                    true,
                    "The free slots, earliest first: [{start, end}] in RFC 3339.",
                )],
            },
            Operation {
                id: CALENDAR_BOOK,
                capability: "calendar",
                inputs: &[
                    input("start", true, "When it starts (RFC 3339)."),
                    input(
                        "duration_minutes",
                        false,
                        "How long (default: the calendar's).",
                    ),
                    input("attendee_name", true, "Who it is for."),
                    input("attendee_email", false, "Their email address."),
                    input("attendee_phone", false, "Their phone number (E.164)."),
                    input(
                        "time_zone",
                        false,
                        "Their time zone (IANA; default: the tenant's).",
                    ),
                    input("title", false, "What it is."),
                    input("notes", false, "Anything the clinic should know."),
                    input(
                        "event_type",
                        false,
                        "Which kind of appointment, if the calendar has several.",
                    ),
                ],
                outputs: &[
                    input(
                        "id",
                        true,
                        "The provider's id for the booking (Cal.com's uid, Google's event id).",
                    ),
                    input("start", true, "When it starts (RFC 3339)."),
                    input("end", true, "When it ends (RFC 3339)."),
                    input("meeting_url", false, "The video link, if any."),
                ],
            },
            Operation {
                id: CALENDAR_CANCEL,
                capability: "calendar",
                inputs: &[
                    input(
                        "id",
                        true,
                        "The booking's id, as `calendar:book` answered it.",
                    ),
                    input("reason", false, "Why, for the attendee."),
                ],
                outputs: &[input("id", true, "The cancelled booking's id.")],
            },
        ],
    },
];

/// The capability named `name`.
pub fn capability(name: &str) -> Option<&'static Capability> {
    CAPABILITIES.iter().find(|c| c.name == name)
}

/// The operation `id` (`email:send`).
pub fn operation(id: &str) -> Option<&'static Operation> {
    CAPABILITIES
        .iter()
        .flat_map(|c| c.operations)
        .find(|o| o.id == id)
}

/// Why an action that says it implements `op` does not answer what the operation promises: an
/// output the operation requires that the action does not declare as required.
///
/// ```
/// use plugin_sdk::capability::{answers, operation, EMAIL_SEND};
/// let op = operation(EMAIL_SEND).unwrap();
/// assert!(answers(op, &[("id", true), ("duplicate", false)]).is_ok());
/// assert!(answers(op, &[("id", false)]).unwrap_err().contains("`id`"));
/// ```
pub fn answers(op: &Operation, outputs: &[(&str, bool)]) -> Result<(), String> {
    for o in op.outputs.iter().filter(|o| o.required) {
        if !outputs.iter().any(|(n, r)| *n == o.name && *r) {
            return Err(format!(
                "it implements `{}` but does not declare the required output `{}`",
                op.id, o.name
            ));
        }
    }
    Ok(())
}

/// Why an action that says it implements `op` does not: its declared inputs (name, required)
/// miss one of the operation's, or require one the operation leaves optional or lacks.
///
/// ```
/// use plugin_sdk::capability::{conforms, operation, SMS_SEND};
/// let op = operation(SMS_SEND).unwrap();
/// assert!(conforms(op, &[("to", true), ("body", false), ("media_url", false)]).is_ok());
/// assert!(conforms(op, &[("to", true), ("body", false)]).unwrap_err().contains("media_url"));
/// assert!(conforms(op, &[("to", true), ("body", true), ("media_url", false)]).is_err());
/// ```
pub fn conforms(op: &Operation, inputs: &[(&str, bool)]) -> Result<(), String> {
    for i in op.inputs {
        if !inputs.iter().any(|(n, _)| *n == i.name) {
            return Err(format!(
                "it implements `{}` but takes no input `{}`",
                op.id, i.name
            ));
        }
    }
    for (name, required) in inputs.iter().filter(|(_, r)| *r) {
        if !op
            .inputs
            .iter()
            .any(|i| i.name == *name && i.required == *required)
        {
            return Err(format!(
                "it implements `{}` but requires input `{name}`, which `{}` does not require",
                op.id, op.id
            ));
        }
    }
    Ok(())
}

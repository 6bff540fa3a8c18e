//! Which event type an action books or lists slots of, and the tenant's defaults: an action's
//! `event_type` (Cal.com's numeric id, or a slug with the tenant's `username`), else the config
//! key `event_type_id`; the zone from the input, else config `time_zone`, else UTC. Pure apart
//! from reading the config.

use plugin_sdk::{Error, config};
use serde_json::{Map, Value, json};

/// Config key: the event type booked when an action names none (an id, or a slug).
pub const EVENT_TYPE_ID: &str = "event_type_id";
/// Config key: the Cal.com username owning event types named by slug.
pub const USERNAME: &str = "username";
/// Config key: the IANA zone bookings and slots default to (the tenant's clinic's).
pub const TIME_ZONE: &str = "time_zone";

/// An event type as Cal.com's API names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventType {
    /// By numeric id (`eventTypeId`).
    Id(i64),
    /// By slug and the owner's username (`eventTypeSlug` + `username`).
    Slug {
        /// The event type's slug.
        slug: String,
        /// Its owner's username.
        username: String,
    },
}

impl EventType {
    /// Reads an event type from an input or config value: a number or a string of digits is an
    /// id, another string a slug of `username`'s. `Ok(None)` for nothing given.
    ///
    /// # Errors
    /// Permanent for a slug without a username, or a value of another shape.
    pub fn from_value(
        v: Option<&Value>,
        username: Option<&str>,
    ) -> Result<Option<EventType>, Error> {
        let text = match v {
            None | Some(Value::Null) => return Ok(None),
            Some(Value::Number(n)) => match n.as_i64() {
                Some(id) => return Ok(Some(EventType::Id(id))),
                None => return Err(Error::permanent(format!("event type `{n}` is not an id"))),
            },
            Some(Value::String(s)) => s.trim(),
            Some(other) => {
                return Err(Error::permanent(format!(
                    "event type `{other}`: give an id or a slug"
                )));
            }
        };
        if text.is_empty() {
            return Ok(None);
        }
        if let Ok(id) = text.parse::<i64>() {
            return Ok(Some(EventType::Id(id)));
        }
        match username.map(str::trim).filter(|u| !u.is_empty()) {
            Some(u) => Ok(Some(EventType::Slug {
                slug: text.to_string(),
                username: u.to_string(),
            })),
            None => Err(Error::permanent(format!(
                "event type `{text}` is a slug: set the config key `{USERNAME}` (its owner's \
                 Cal.com username), or give the numeric id"
            ))),
        }
    }

    /// The event type an action means: its own `event_type`, else the config's.
    ///
    /// # Errors
    /// Permanent when neither names one, or as [`EventType::from_value`].
    pub fn resolve(input: Option<&Value>) -> Result<EventType, Error> {
        let username: Option<String> = config(USERNAME)?;
        if let Some(t) = EventType::from_value(input, username.as_deref())? {
            return Ok(t);
        }
        let default: Option<Value> = config(EVENT_TYPE_ID)?;
        EventType::from_value(default.as_ref(), username.as_deref())?.ok_or_else(|| {
            Error::permanent(format!(
                "no event type: give `event_type`, or set the config key `{EVENT_TYPE_ID}`"
            ))
        })
    }

    /// Its query parameters for `/v2/slots`.
    pub fn query(&self) -> Vec<(&'static str, String)> {
        match self {
            EventType::Id(id) => vec![("eventTypeId", id.to_string())],
            EventType::Slug { slug, username } => vec![
                ("eventTypeSlug", slug.clone()),
                ("username", username.clone()),
            ],
        }
    }

    /// Adds it to a booking body (`CreateBookingInput_2024_08_13`).
    pub fn add_to(&self, body: &mut Map<String, Value>) {
        match self {
            EventType::Id(id) => {
                body.insert("eventTypeId".into(), json!(id));
            }
            EventType::Slug { slug, username } => {
                body.insert("eventTypeSlug".into(), json!(slug));
                body.insert("username".into(), json!(username));
            }
        }
    }
}

/// The zone to write times in: the input's, else the tenant's `time_zone`, else UTC.
///
/// # Errors
/// Permanent when the config value has the wrong shape.
pub fn time_zone(input: Option<&str>) -> Result<String, Error> {
    if let Some(tz) = input.map(str::trim).filter(|t| !t.is_empty()) {
        return Ok(tz.to_string());
    }
    let configured: Option<String> = config(TIME_ZONE)?;
    Ok(configured
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| "UTC".into()))
}

/// Minutes from a number or a string of digits (templates render numbers as text); `None` for
/// nothing or zero.
///
/// # Errors
/// Permanent for anything else.
pub fn minutes(v: Option<&Value>) -> Result<Option<i64>, Error> {
    let n = match v {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => n.as_f64(),
        Some(Value::String(s)) if s.trim().is_empty() => return Ok(None),
        Some(Value::String(s)) => s.trim().parse::<f64>().ok(),
        Some(_) => None,
    };
    match n {
        Some(m) if m.is_finite() && m >= 0.0 && m.fract() == 0.0 && m <= 10_080.0 => {
            Ok((m > 0.0).then_some(m as i64))
        }
        _ => Err(Error::permanent(
            "`duration_minutes` must be a whole number of minutes (at most a week)",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_slugs() {
        assert_eq!(
            EventType::from_value(Some(&json!(1001)), None).unwrap(),
            Some(EventType::Id(1001))
        );
        assert_eq!(
            EventType::from_value(Some(&json!(" 1001 ")), None).unwrap(),
            Some(EventType::Id(1001))
        );
        assert_eq!(EventType::from_value(Some(&json!("")), None).unwrap(), None);
        assert_eq!(EventType::from_value(None, None).unwrap(), None);
        let slug = EventType::from_value(Some(&json!("check-up")), Some("ada"))
            .unwrap()
            .unwrap();
        assert_eq!(
            slug.query(),
            vec![
                ("eventTypeSlug", "check-up".to_string()),
                ("username", "ada".to_string())
            ]
        );
        let mut body = Map::new();
        slug.add_to(&mut body);
        assert_eq!(
            Value::Object(body),
            json!({"eventTypeSlug": "check-up", "username": "ada"})
        );
        assert!(matches!(
            EventType::from_value(Some(&json!("check-up")), None),
            Err(Error::Permanent(m)) if m.contains("`username`")
        ));
        assert!(EventType::from_value(Some(&json!([1])), None).is_err());
        assert!(EventType::from_value(Some(&json!(1.5)), None).is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(minutes(Some(&json!(30))).unwrap(), Some(30));
        assert_eq!(minutes(Some(&json!("45"))).unwrap(), Some(45));
        assert_eq!(minutes(Some(&json!(null))).unwrap(), None);
        assert_eq!(minutes(Some(&json!(0))).unwrap(), None);
        for bad in [
            json!(-5),
            json!(2.5),
            json!("soon"),
            json!(20_000),
            json!({}),
        ] {
            assert!(minutes(Some(&bad)).is_err(), "{bad}");
        }
    }
}

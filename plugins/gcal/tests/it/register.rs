//! `register_webhooks`, `unregister_webhooks`, `check_credentials`.

use plugin_sdk::harness::Answer;
use serde_json::json;

use crate::util::{API, drain, google_error, hub, served};

#[test]
fn registering_twice_opens_one_channel_and_queues_one_first_sync() {
    let (mut hub, fake) = served(100);
    hub.job("register_webhooks", &json!({})).unwrap();
    assert_eq!(hub.channels().len(), 1);
    assert_eq!(hub.jobs().len(), 1);
    drain(&mut hub);
    hub.job("register_webhooks", &json!({})).unwrap();
    assert_eq!(hub.channels().len(), 1, "the live channel is kept");
    assert_eq!(fake.borrow().watches.len(), 1);
    assert!(hub.jobs().is_empty(), "synced already");
}

#[test]
fn unregistering_stops_every_channel() {
    let (mut hub, fake) = served(100);
    hub.job("register_webhooks", &json!({})).unwrap();
    hub.job("watch_events", &json!({})).unwrap();
    assert_eq!(hub.channels().len(), 2);
    fake.borrow_mut().stop_answer = Some(google_error(503, "backendError", "Backend Error"));
    assert!(
        hub.job("unregister_webhooks", &json!({}))
            .unwrap_err()
            .is_retryable()
    );
    assert_eq!(hub.channels().len(), 2, "kept for the retry");
    // The grant is gone (a disconnect): closed anyway, Google lets them expire.
    fake.borrow_mut().stop_answer = Some(google_error(401, "authError", "Invalid Credentials"));
    hub.job("unregister_webhooks", &json!({})).unwrap();
    assert!(hub.channels().is_empty());
    let stops = fake.borrow().stops.clone();
    assert!(stops.iter().all(|s| {
        s["resourceId"]
            .as_str()
            .is_some_and(|r| r.starts_with("res-"))
    }));
}

#[test]
fn check_credentials_reads_one_event_and_says_why_not() {
    let mut hub = hub();
    let probe = format!("{API}/calendars/primary/events?maxResults=1");
    hub.on(
        "GET",
        &probe,
        Answer::json(200, &json!({"kind": "calendar#events", "items": []})),
    );
    hub.job("check_credentials", &json!({})).unwrap();
    assert_eq!(hub.requests()[0].url, probe);
    hub.on(
        "GET",
        &probe,
        google_error(401, "authError", "Invalid Credentials"),
    );
    let e = hub.job("check_credentials", &json!({})).unwrap_err();
    assert!(
        e.is_permanent() && e.to_string().contains("Invalid Credentials"),
        "{e}"
    );
    // No credential at all: the host says so.
    let mut bare = plugin_sdk::harness::Harness::<gcal::Gcal>::new();
    let e = bare.job("check_credentials", &json!({})).unwrap_err();
    assert!(e.to_string().contains("google"), "{e}");
}

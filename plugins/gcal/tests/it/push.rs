//! Google's pushes on the `push` route: checked by the host against the channels it holds,
//! then a `sync` of the channel's calendar, or nothing.

use serde_json::json;

use crate::util::{drain, served};

#[test]
fn a_push_queues_a_sync_of_its_channels_calendar_and_a_sync_message_is_ignored() {
    let (mut hub, _fake) = served(100);
    hub.job("watch_events", &json!({})).unwrap();
    drain(&mut hub);
    let id = hub.channels()[0].id.clone();

    let first = hub
        .push("push", &id)
        .with_header("x-goog-resource-state", "sync")
        .with_header("x-goog-message-number", "1");
    assert_eq!(hub.check_signature(&first), Ok(()));
    let o = hub.deliver(first).unwrap();
    assert_eq!(o.ignored.as_deref(), Some("sync message"));
    assert!(hub.jobs().is_empty());

    for (n, state) in [("7", "exists"), ("9", "not_exists")] {
        let d = hub
            .push("push", &id)
            .with_header("x-goog-resource-state", state)
            .with_header("x-goog-message-number", n)
            .with_header(
                "x-goog-resource-uri",
                "https://www.googleapis.com/calendar/v3/calendars/primary/events?alt=json",
            )
            .with_header("x-goog-channel-expiration", "Thu, 08 Jan 2026 00:00:00 GMT");
        assert!(d.body.is_empty());
        assert_eq!(hub.check_signature(&d), Ok(()));
        assert!(hub.deliver(d).unwrap().ignored.is_none());
    }
    let jobs = hub.jobs();
    assert_eq!(jobs.len(), 2);
    assert_eq!(
        (jobs[0].name.as_str(), &jobs[0].input),
        ("sync", &json!({"calendar_id": "primary"}))
    );
    assert_eq!(jobs[0].run_at_ms, hub.now());
}

#[test]
fn a_push_on_a_forged_or_closed_channel_is_not_acted_on() {
    let (mut hub, _fake) = served(100);
    hub.job("watch_events", &json!({})).unwrap();
    drain(&mut hub);
    let id = hub.channels()[0].id.clone();
    let push = hub
        .push("push", &id)
        .with_header("x-goog-resource-state", "exists")
        .with_header("x-goog-message-number", "3");
    let mut forged = push.clone();
    forged.headers.retain(|(n, _)| n != "x-goog-channel-token");
    let forged = forged.with_header("x-goog-channel-token", "guessed");
    assert!(hub.check_signature(&forged).is_err());

    hub.job("unregister_webhooks", &json!({})).unwrap();
    assert!(hub.channels().is_empty());
    assert!(hub.check_signature(&push).unwrap_err().contains("not held"));
    // Had it reached the connector: nothing to sync for a channel it no longer has.
    let o = hub.deliver(push).unwrap();
    assert!(o.ignored.unwrap().contains("no longer held"));
    let odd = hub
        .webhook("push", Vec::new())
        .with_header("x-goog-channel-id", &id)
        .with_header("x-goog-resource-state", "weird");
    assert!(hub.deliver(odd).unwrap().ignored.is_some());
    assert!(hub.jobs().is_empty());
}

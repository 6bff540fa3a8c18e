//! Watch channels: opened before the watch with the host's token, kept with Google's answer,
//! renewed with overlap, a failed renewal leaving the old one working.

use serde_json::json;

use crate::util::{DAY, HOUR, T0, TOKEN, drain, google_error, served};

#[test]
fn a_watch_keeps_the_channel_with_googles_expiration_and_the_hosts_token() {
    let (hub, fake) = served(100);
    let mut hub = hub.config("channel_ttl_secs", 604_800);
    fake.borrow_mut().expires_ms = T0 + 3 * DAY;
    hub.job("watch_events", &json!({})).unwrap();

    let channels = hub.channels();
    assert_eq!(channels.len(), 1);
    let c = &channels[0];
    assert!(c.id.starts_with("gcal-") && c.id.len() == 45, "{}", c.id);
    assert_eq!(
        (c.topic.as_str(), c.resource.as_str()),
        ("primary", "res-1")
    );
    assert_eq!(
        c.expires_ms,
        (T0 + 3 * DAY) as u64,
        "Google's answer, not what was asked"
    );

    let sent = hub.requests();
    let watch = &sent[0];
    assert_eq!(
        watch.url,
        "https://www.googleapis.com/calendar/v3/calendars/primary/events/watch"
    );
    assert_eq!(
        watch.header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    let body = watch.json();
    assert_eq!(body["id"], c.id.as_str());
    assert_eq!(body["type"], "web_hook");
    assert_eq!(body["address"], "https://hub.example/hooks/acme/gcal/push");
    let token = hub.channel_token(&c.id).unwrap();
    assert_eq!(body["token"], token.as_str(), "the host's token, filled in");
    assert_eq!(body["expiration"], (T0 + 604_800_000).to_string());
    assert!(
        !hub.logs().iter().any(|(_, l)| l.contains(&token)),
        "never logged"
    );
    let jobs = hub.jobs();
    assert_eq!(
        (jobs.len(), jobs[0].name.as_str()),
        (1, "sync"),
        "the first sync"
    );
    drain(&mut hub);
    // Once synced, another watch queues no sync.
    hub.job("watch_events", &json!({"calendar_id": "primary"}))
        .unwrap();
    assert!(hub.jobs().is_empty());
    assert_eq!(hub.channels().len(), 2);
}

#[test]
fn a_failed_watch_closes_the_channel() {
    let (mut hub, fake) = served(100);
    fake.borrow_mut().watch_refusals.push(google_error(
        403,
        "forbidden",
        "The caller does not have permission",
    ));
    let e = hub.job("watch_events", &json!({})).unwrap_err();
    assert!(
        e.is_permanent() && e.to_string().contains("permission"),
        "{e}"
    );
    assert!(hub.channels().is_empty());
    assert!(hub.jobs().is_empty());
    fake.borrow_mut()
        .watch_refusals
        .push(plugin_sdk::harness::Answer::json(
            200,
            &json!({"kind": "api#channel"}),
        ));
    assert!(
        hub.job("watch_events", &json!({}))
            .unwrap_err()
            .is_permanent(),
        "no resourceId"
    );
    assert!(hub.channels().is_empty());
}

#[test]
fn renewal_opens_the_new_channel_before_stopping_the_old() {
    let (mut hub, fake) = served(100);
    fake.borrow_mut().expires_ms = T0 + 2 * DAY;
    hub.job("watch_events", &json!({})).unwrap();
    drain(&mut hub);
    let old = hub.channels()[0].clone();
    let seen = hub.requests().len();

    // Not due yet: nothing.
    hub.job("renew_channels", &json!({})).unwrap();
    assert_eq!(hub.requests().len(), seen);

    hub.advance((36 * HOUR) as u64);
    fake.borrow_mut().expires_ms = T0 + 4 * DAY;
    hub.job("renew_channels", &json!({})).unwrap();
    let calls: Vec<String> = hub.requests()[seen..]
        .iter()
        .map(|r| format!("{} {}", r.method, r.url))
        .collect();
    assert_eq!(
        calls,
        [
            "POST https://www.googleapis.com/calendar/v3/calendars/primary/events/watch",
            "POST https://www.googleapis.com/calendar/v3/channels/stop"
        ]
    );
    assert_eq!(
        fake.borrow().stops[0],
        json!({"id": old.id, "resourceId": "res-1"})
    );
    let now = hub.channels();
    assert_eq!(now.len(), 1);
    assert_ne!(now[0].id, old.id);
    assert_eq!(
        (now[0].resource.as_str(), now[0].expires_ms),
        ("res-2", (T0 + 4 * DAY) as u64)
    );
    let jobs = hub.jobs();
    assert_eq!(
        (jobs[0].name.as_str(), &jobs[0].input),
        ("sync", &json!({"calendar_id": "primary"}))
    );
}

#[test]
fn a_failed_new_watch_leaves_the_old_channel_held() {
    let (mut hub, fake) = served(100);
    fake.borrow_mut().expires_ms = T0 + 2 * DAY;
    hub.job("watch_events", &json!({})).unwrap();
    drain(&mut hub);
    let old = hub.channels()[0].clone();
    hub.advance((36 * HOUR) as u64);
    fake.borrow_mut()
        .watch_refusals
        .push(google_error(503, "backendError", "Backend Error"));
    let e = hub.job("renew_channels", &json!({})).unwrap_err();
    assert!(e.is_retryable(), "{e}");
    let ids: Vec<String> = hub.channels().into_iter().map(|c| c.id).collect();
    assert_eq!(
        ids,
        std::slice::from_ref(&old.id),
        "the old one still works"
    );
    assert!(fake.borrow().stops.is_empty(), "never stopped");

    // The retry renews; a stop answered 404 (gone already) is done too.
    fake.borrow_mut().expires_ms = T0 + 4 * DAY;
    fake.borrow_mut().stop_answer = Some(google_error(404, "notFound", "Channel not found"));
    hub.job("renew_channels", &json!({})).unwrap();
    let now = hub.channels();
    assert_eq!(now.len(), 1);
    assert_ne!(now[0].id, old.id);

    // A stop that fails leaves the old one for the next run, which only stops it.
    hub.advance((2 * DAY) as u64);
    fake.borrow_mut().expires_ms = T0 + 30 * DAY;
    fake.borrow_mut().stop_answer = Some(google_error(500, "backendError", "Backend Error"));
    assert!(
        hub.job("renew_channels", &json!({}))
            .unwrap_err()
            .is_retryable()
    );
    assert_eq!(hub.channels().len(), 2);
    let watches = fake.borrow().watches.len();
    fake.borrow_mut().stop_answer = None;
    hub.job("renew_channels", &json!({})).unwrap();
    assert_eq!(fake.borrow().watches.len(), watches, "no third channel");
    assert_eq!(hub.channels().len(), 1);
}

#[test]
fn a_short_lived_channel_is_renewed_at_every_run_one_for_one() {
    let (mut hub, fake) = served(100);
    // Google grants twenty minutes: due at once, or it would lapse before the next hourly run.
    fake.borrow_mut().expires_ms = T0 + 20 * 60_000;
    hub.job("watch_events", &json!({})).unwrap();
    hub.job("watch_events", &json!({})).unwrap();
    drain(&mut hub);
    assert_eq!(hub.channels().len(), 2);
    hub.advance(60_000);
    fake.borrow_mut().expires_ms = T0 + 21 * 60_000;
    hub.job("renew_channels", &json!({})).unwrap();
    assert_eq!(
        fake.borrow().watches.len(),
        3,
        "one new channel for the calendar"
    );
    assert_eq!(fake.borrow().stops.len(), 2, "both old ones stopped");
    let now = hub.channels();
    assert_eq!(now.len(), 1);
    assert_eq!(now[0].resource, "res-3");
    // Registering keeps the live channel.
    hub.job("register_webhooks", &json!({})).unwrap();
    assert_eq!(fake.borrow().watches.len(), 3);
}

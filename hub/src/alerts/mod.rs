//! Alerts: what an operator must hear about without looking. The hub already knows when a job
//! is dead-lettered, an app endpoint is disabled, a connected account needs reconnecting, a
//! connector goes on probation, a schedule skips its ticks or the queue falls behind; each such
//! place raises a [`Cause`] here (and clears it when it no longer holds). The [`board`] turns
//! them into few messages (one per cause per window, then a summary; a burst limit across
//! causes), the console shows the open ones as a banner, `/metrics` counts them, and, when
//! `[server.alerts]` names a URL, [`run`] posts each message there: a Standard Webhooks body
//! (`type`, `timestamp`, `data`) signed with `alerts.secret` when one is set, with a top-level
//! `text` so a Slack incoming webhook takes it as it is. A receiver that is down is retried
//! with backoff on this task alone: nothing else waits for it.
//!
//! Raising and clearing never block and never fail: they take a short lock, and a message that
//! finds the queue full is dropped and counted.

pub mod board;

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use secrecy::ExposeSecret as _;
use serde_json::json;
use tokio::sync::{Notify, watch};

use board::Board;
pub use board::{Cause, Message, Open};

use crate::clock::now_ms;
use crate::config::AlertsConfig;
use crate::metrics::Counter;
use crate::reload::Current;
use crate::runtime::outbound::{self, Failure, Policy, Prepared};
use crate::secrets::{Place, Vault};

/// Messages waiting to be sent, at most.
const QUEUE: usize = 1000;
/// How often due summaries are looked for.
const TICK: Duration = Duration::from_secs(5);
/// The longest wait between attempts at a receiver that fails.
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// One attempt's time limit.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(15);
/// How often the queue's oldest due job is looked at.
const QUEUE_CHECK: Duration = Duration::from_secs(30);
/// Messages per window across all causes.
const BURST: usize = 20;

/// The alerts of one hub process (they outlive reloads).
pub struct Alerts {
    board: Mutex<Board>,
    any_open: AtomicBool,
    queue: Mutex<VecDeque<Queued>>,
    wake: Notify,
    /// Messages delivered to the receiver.
    pub sent: Counter,
    /// Messages dropped: the queue was full, or the receiver refused them for good.
    pub dropped: Counter,
    /// Raises folded into an open cause (not sent on their own).
    pub suppressed: Counter,
}

/// A message with the id every attempt to send it carries.
struct Queued {
    id: String,
    message: Message,
    at_ms: i64,
}

impl Default for Alerts {
    fn default() -> Alerts {
        Alerts::new(Duration::from_secs(3600))
    }
}

impl Alerts {
    /// Alerts sending one message per cause per `window`.
    pub fn new(window: Duration) -> Alerts {
        Alerts {
            board: Mutex::new(Board::new(window.as_millis() as i64, BURST)),
            any_open: AtomicBool::new(false),
            queue: Mutex::new(VecDeque::new()),
            wake: Notify::new(),
            sent: Counter::default(),
            dropped: Counter::default(),
            suppressed: Counter::default(),
        }
    }

    /// Sends one message per cause per `window` from now on.
    pub fn set_window(&self, window: Duration) {
        self.board().set_window(window.as_millis() as i64);
    }

    fn board(&self) -> std::sync::MutexGuard<'_, Board> {
        self.board.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `cause` happened: `text` says what, for a person; `detail` is the latest error.
    pub fn raise(&self, cause: Cause, text: impl Into<String>, detail: impl Into<String>) {
        let message = {
            let mut board = self.board();
            let m = board.raise(cause, text.into(), detail.into(), now_ms());
            self.any_open.store(true, Ordering::Release);
            m
        };
        match message {
            Some(m) => self.enqueue(m),
            None => self.suppressed.inc(),
        }
    }

    /// `cause` no longer holds. Cheap when nothing is open (a hot path calls it).
    pub fn clear(&self, cause: &Cause) {
        if !self.any_open.load(Ordering::Acquire) {
            return;
        }
        let message = {
            let mut board = self.board();
            let m = board.clear(cause, now_ms());
            self.any_open.store(!board.is_empty(), Ordering::Release);
            m
        };
        if let Some(m) = message {
            self.enqueue(m);
        }
    }

    /// The open causes, oldest first.
    pub fn open(&self) -> Vec<Open> {
        if !self.any_open.load(Ordering::Acquire) {
            return Vec::new();
        }
        self.board().open()
    }

    /// The alert figures in Prometheus' text format, for `/metrics`.
    pub fn render_metrics(&self) -> String {
        let open = self.open().len();
        let mut out = String::new();
        for (name, help, kind, value) in [
            (
                "hub_alerts_open",
                "Alert causes raised and not yet resolved",
                "gauge",
                open as u64,
            ),
            (
                "hub_alerts_sent_total",
                "Alert messages the receiver took",
                "counter",
                self.sent.get(),
            ),
            (
                "hub_alerts_dropped_total",
                "Alert messages dropped (queue full, or refused for good)",
                "counter",
                self.dropped.get(),
            ),
            (
                "hub_alerts_suppressed_total",
                "Raises folded into an open alert instead of sent",
                "counter",
                self.suppressed.get(),
            ),
        ] {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
            ));
        }
        out
    }

    fn enqueue(&self, message: Message) {
        let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        if queue.len() >= QUEUE {
            queue.pop_front();
            self.dropped.inc();
        }
        queue.push_back(Queued {
            id: format!("alert_{:032x}", rand::random::<u128>()),
            message,
            at_ms: now_ms(),
        });
        drop(queue);
        self.wake.notify_one();
    }

    fn tick(&self) {
        let due = self.board().tick(now_ms());
        for m in due {
            self.enqueue(m);
        }
    }
}

/// The causes the hub raises, by kind.
impl Cause {
    fn of(
        kind: &'static str,
        tenant: &impl std::fmt::Display,
        subject: &impl std::fmt::Display,
    ) -> Cause {
        Cause {
            kind,
            tenant: Some(tenant.to_string()),
            subject: Some(subject.to_string()),
        }
    }

    /// A tenant's connector dead-letters jobs.
    pub fn dead_letter(
        tenant: &impl std::fmt::Display,
        connector: &impl std::fmt::Display,
    ) -> Cause {
        Cause::of("dead_letter", tenant, connector)
    }

    /// A tenant's app endpoint was disabled (it answered 410).
    pub fn endpoint_disabled(
        tenant: &impl std::fmt::Display,
        endpoint: &impl std::fmt::Display,
    ) -> Cause {
        Cause::of("endpoint_disabled", tenant, endpoint)
    }

    /// A tenant's app endpoint has failed for an hour.
    pub fn endpoint_failing(
        tenant: &impl std::fmt::Display,
        endpoint: &impl std::fmt::Display,
    ) -> Cause {
        Cause::of("endpoint_failing", tenant, endpoint)
    }

    /// A connected account needs reconnecting (`connector/credential`).
    pub fn needs_reconnect(
        tenant: &impl std::fmt::Display,
        credential: &impl std::fmt::Display,
    ) -> Cause {
        Cause::of("needs_reconnect", tenant, credential)
    }

    /// A tenant's connector is on probation (its invocations were stopped).
    pub fn probation(tenant: &impl std::fmt::Display, connector: &impl std::fmt::Display) -> Cause {
        Cause::of("probation", tenant, connector)
    }

    /// A tenant's schedule skips ticks (its previous run is still going).
    pub fn schedule_skipping(
        tenant: &impl std::fmt::Display,
        schedule: &impl std::fmt::Display,
    ) -> Cause {
        Cause::of("schedule_skipping", tenant, schedule)
    }
}

/// What a message says: the JSON body (Standard Webhooks' shape, plus Slack's `text`).
pub fn body(message: &Message, at_ms: i64) -> serde_json::Value {
    let timestamp = chrono::DateTime::from_timestamp_millis(at_ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let (kind, text, data) = match message {
        Message::Raised {
            cause,
            text,
            detail,
        } => (
            "alert.raised",
            format!(":red_circle: {text}: {detail}"),
            json!({"cause": cause, "key": cause.key(), "detail": detail}),
        ),
        Message::Summary {
            cause,
            text,
            more,
            detail,
        } => (
            "alert.summary",
            format!(
                ":large_orange_circle: {text}: {more} more since the last alert (latest: {detail})"
            ),
            json!({"cause": cause, "key": cause.key(), "more": more, "detail": detail}),
        ),
        Message::Overflow { causes, examples } => (
            "alert.overflow",
            format!(
                ":red_circle: {causes} more alerts were held back by the rate limit (e.g. {}); the console lists them",
                examples.join(", ")
            ),
            json!({"causes": causes, "examples": examples}),
        ),
        Message::Resolved {
            cause,
            text,
            open_ms,
        } => (
            "alert.resolved",
            format!(
                ":large_green_circle: resolved after {} min: {text}",
                open_ms / 60_000
            ),
            json!({"cause": cause, "key": cause.key(), "open_ms": open_ms}),
        ),
    };
    json!({"type": kind, "timestamp": timestamp, "text": text, "data": data})
}

/// Sends queued messages to the configured receiver until shutdown, and looks for due
/// summaries every few seconds. Without `[server.alerts]` messages are dropped as they come
/// (the board, the banner and the metrics still work).
pub async fn run(current: std::sync::Arc<Current>, mut shutdown: watch::Receiver<bool>) {
    let http = match outbound::Client::new() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("alerts: cannot build an HTTP client: {e}");
            return;
        }
    };
    let mut backoff = Duration::from_secs(1);
    let mut queue_checked = tokio::time::Instant::now();
    loop {
        let hub = current.hub();
        let alerts = hub.alerts.clone();
        alerts.tick();
        if queue_checked.elapsed() >= QUEUE_CHECK {
            queue_checked = tokio::time::Instant::now();
            check_queue(&hub).await;
        }
        let next = alerts
            .queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop_front();
        let Some(queued) = next else {
            tokio::select! {
                _ = alerts.wake.notified() => {}
                _ = tokio::time::sleep(TICK) => {}
                _ = shutdown.changed() => return,
            }
            continue;
        };
        let Some(config) = &hub.config.server.alerts else {
            // No receiver: nothing to send to.
            continue;
        };
        match send(&http, &hub.vault, config, &queued).await {
            Ok(()) => {
                alerts.sent.inc();
                backoff = Duration::from_secs(1);
            }
            Err(Outcome::Refused(why)) => {
                tracing::error!("alerts: the receiver refused an alert for good: {why}");
                alerts.dropped.inc();
            }
            Err(Outcome::Failed(why)) => {
                tracing::warn!(
                    "alerts: could not send an alert ({why}); trying again in {} s",
                    backoff.as_secs()
                );
                alerts
                    .queue
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push_front(queued);
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.changed() => return,
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// Raises `queue_age` while the longest-waiting due job waits longer than the configured age
/// (workers stuck, or too few for the load), clears it once the queue catches up.
async fn check_queue(hub: &crate::state::Hub) {
    let limit = hub
        .config
        .server
        .alerts
        .as_ref()
        .map_or(Duration::from_secs(900), |a| a.queue_age);
    let now = now_ms();
    let cause = Cause {
        kind: "queue_age",
        tenant: None,
        subject: None,
    };
    match hub.store.oldest_due(now).await {
        Ok(Some(due)) if now - due > limit.as_millis() as i64 => hub.alerts.raise(
            cause,
            "jobs wait too long in the queue",
            format!(
                "the oldest due job has waited {} s (limit {} s)",
                (now - due) / 1000,
                limit.as_secs()
            ),
        ),
        Ok(_) => hub.alerts.clear(&cause),
        Err(e) => tracing::warn!("alerts: cannot read the queue: {e}"),
    }
    // A dead-letter alert resolves once none of its jobs is dead any more (replayed or pruned).
    let open: Vec<Cause> = hub
        .alerts
        .open()
        .into_iter()
        .map(|o| o.cause)
        .filter(|c| c.kind == "dead_letter")
        .collect();
    if open.is_empty() {
        return;
    }
    match hub.store.dead_pairs().await {
        Ok(pairs) => {
            for cause in open {
                let still = pairs.iter().any(|(t, c)| {
                    cause.tenant.as_deref() == Some(t.as_str())
                        && cause.subject.as_deref() == Some(c.as_str())
                });
                if !still {
                    hub.alerts.clear(&cause);
                }
            }
        }
        Err(e) => tracing::warn!("alerts: cannot read the dead letters: {e}"),
    }
}

enum Outcome {
    Refused(String),
    Failed(String),
}

async fn send(
    http: &outbound::Client,
    vault: &Vault,
    config: &AlertsConfig,
    queued: &Queued,
) -> Result<(), Outcome> {
    let url_place = Place::Server {
        field: "alerts.url".into(),
    };
    let Some(url) = vault.at(&url_place) else {
        return Err(Outcome::Refused("server.alerts.url is not set".into()));
    };
    let url = std::str::from_utf8(url.expose_secret())
        .ok()
        .and_then(|u| url::Url::parse(u).ok())
        .ok_or_else(|| Outcome::Refused("server.alerts.url is not a URL".into()))?;
    let origin = url.origin().ascii_serialization();
    let stand_ins = if config.allow_private {
        vec![(origin.clone(), origin.clone())]
    } else {
        Vec::new()
    };
    let policy = Policy::new(
        std::slice::from_ref(&origin),
        std::slice::from_ref(&origin),
        &stand_ins,
    )
    .map_err(Outcome::Refused)?;
    let body = body(&queued.message, queued.at_ms).to_string();
    let now_secs = (now_ms() / 1000) as u64;
    let mut headers = vec![
        ("content-type".to_string(), "application/json".to_string()),
        ("webhook-id".to_string(), queued.id.clone()),
        ("webhook-timestamp".to_string(), now_secs.to_string()),
    ];
    let secret_place = Place::Server {
        field: "alerts.secret".into(),
    };
    if let Some(secret) = vault.at(&secret_place) {
        let secret = std::str::from_utf8(secret.expose_secret())
            .map_err(|_| Outcome::Refused("server.alerts.secret is not text".into()))?;
        let signature = plugin_sdk::schemes::sign_standard_webhooks(
            secret,
            &queued.id,
            now_secs,
            body.as_bytes(),
        )
        .map_err(|e| {
            Outcome::Refused(format!("server.alerts.secret is not a usable secret: {e}"))
        })?;
        headers.push(("webhook-signature".to_string(), signature));
    }
    let request = Prepared {
        method: reqwest::Method::POST,
        url,
        headers,
        body: body.into_bytes(),
        timeout: ATTEMPT_TIMEOUT,
    };
    match http.send(&policy, request, &[]).await {
        Ok(r) if (200..300).contains(&r.status) => Ok(()),
        Ok(r) if r.status == 410 || r.status == 404 || r.status == 400 => Err(Outcome::Refused(
            format!("the receiver answered {}", r.status),
        )),
        Ok(r) => Err(Outcome::Failed(format!(
            "the receiver answered {}",
            r.status
        ))),
        Err(Failure::Denied(m)) => Err(Outcome::Refused(m)),
        Err(Failure::Timeout) => Err(Outcome::Failed("no answer in time".into())),
        Err(Failure::Transport(m)) => Err(Outcome::Failed(m)),
        Err(Failure::TooLarge) => Ok(()),
    }
}

//! Retention: a background task that keeps the database from growing without bound.
//!
//! Every [`EVERY`], it prunes what is older than `server.retention_days`: delivery payloads
//! (the log rows stay, marked pruned), finished jobs, events and connectors' idempotency markers (see [`Store::prune_batch`] for
//! what exactly). It works in batches of [`BATCH`] rows per write transaction and pauses between
//! batches, so the writer keeps committing webhooks in between and ingress never stalls behind
//! a large backlog (the first pass on an old database, or after lowering the retention).

use std::time::Duration;

use tokio::sync::watch;

use crate::clock::now_ms;
use crate::store::{Pruned, Result, Store};

/// How often a pass runs.
pub const EVERY: Duration = Duration::from_secs(5 * 60);
/// Rows of each kind per write transaction.
pub const BATCH: usize = 500;
/// The first pass waits this long after start, past the startup rush of queued work.
const FIRST_PASS: Duration = Duration::from_secs(30);
/// Pause between batches, so other writes commit between them.
const PAUSE: Duration = Duration::from_millis(20);
const DAY_MS: i64 = 86_400_000;

/// Prunes every [`EVERY`] until `stop` turns true; the audit trail past `audit_days`.
pub async fn run(
    store: Store,
    retention_days: u64,
    audit_days: u64,
    mut stop: watch::Receiver<bool>,
) {
    let days = |d: u64| i64::try_from(d).unwrap_or(i64::MAX).saturating_mul(DAY_MS);
    let (age_ms, audit_age_ms) = (days(retention_days), days(audit_days));
    let mut wait = FIRST_PASS;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            changed = stop.changed() => if changed.is_err() || *stop.borrow() { break },
        }
        wait = EVERY;
        let cutoff = now_ms().saturating_sub(age_ms);
        let started = std::time::Instant::now();
        match prune(&store, cutoff, BATCH, &stop).await {
            Ok(p) if !p.is_empty() => tracing::info!(
                deliveries = p.deliveries,
                jobs = p.jobs,
                events = p.events,
                markers = p.markers,
                tombstones = p.tombstones,
                hours = p.hours,
                ms = started.elapsed().as_millis() as u64,
                "retention: pruned what is older than {retention_days} days"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!("retention: cannot prune (will try again): {e}"),
        }
        let audit_cutoff = now_ms().saturating_sub(audit_age_ms);
        loop {
            match store.prune_audit(audit_cutoff, BATCH).await {
                Ok(n) if n == BATCH && !*stop.borrow() => tokio::time::sleep(PAUSE).await,
                Ok(0) => break,
                Ok(n) => {
                    tracing::info!(
                        entries = n,
                        "retention: audit entries older than {audit_days} days pruned"
                    );
                    break;
                }
                Err(e) => {
                    tracing::warn!("retention: cannot prune the audit trail (will try again): {e}");
                    break;
                }
            }
        }
    }
}

/// One pass: batches until nothing older than `cutoff_ms` is left, or `stop` turns true.
///
/// # Errors
/// When a batch cannot commit; earlier batches stay pruned.
pub async fn prune(
    store: &Store,
    cutoff_ms: i64,
    batch: usize,
    stop: &watch::Receiver<bool>,
) -> Result<Pruned> {
    let batch = batch.max(1);
    let mut total = Pruned::default();
    loop {
        let p = store.prune_batch(cutoff_ms, batch).await?;
        total += p;
        let more = p.deliveries == batch
            || p.jobs == batch
            || p.events == batch
            || p.markers == batch
            || p.tombstones == batch
            || p.hours == batch;
        if !more || *stop.borrow() {
            return Ok(total);
        }
        tokio::time::sleep(PAUSE).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::id;
    use crate::store::{
        DeliveryState, Effects, JobEnd, JobFilter, JobState, NewDelivery, Published,
    };

    /// 2020-09-13T12:26:40Z: far older than any retention.
    const OLD_MS: i64 = 1_600_000_000_000;

    fn delivery(identity: &str, received_at_ms: i64) -> NewDelivery {
        NewDelivery {
            body: b"{\"secret\":\"payload\"}".to_vec(),
            received_at_ms,
            ..NewDelivery::test(identity)
        }
    }

    #[tokio::test]
    async fn old_payloads_finished_jobs_and_events_go_and_the_rest_stays() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut old = Vec::new();
        for i in 0..7 {
            old.push(delivery(&format!("old{i}"), OLD_MS + i));
        }
        let old_ids: Vec<i64> = store
            .ingest(old)
            .await
            .unwrap()
            .iter()
            .map(|i| i.id())
            .collect();
        // Old but still pending: one delivery left queued.
        let jobs = store.claim(6, 60_000).await.unwrap();
        for job in &jobs {
            let effects = Effects {
                events: vec![Published {
                    name: "e".into(),
                    payload: "{}".into(),
                }],
                ..Default::default()
            };
            let done = JobEnd::Done {
                ignored: None,
                result: None,
            };
            store.finish(job.lease(), effects, done, 1).await.unwrap();
        }
        let new = store.ingest(vec![delivery("new", now_ms())]).await.unwrap()[0].id();
        let (_stop_tx, stop) = watch::channel(false);

        // Thirty days' retention: the six finished old deliveries lose their payload, in
        // batches of four, and the status view's count of their hour goes; their jobs and
        // events are younger than that and stay.
        let cutoff = now_ms() - 30 * DAY_MS;
        let p = prune(&store, cutoff, 4, &stop).await.unwrap();
        assert_eq!(
            p,
            Pruned {
                deliveries: 6,
                jobs: 0,
                events: 0,
                markers: 0,
                tombstones: 0,
                hours: 1
            }
        );
        let pending_id = old_ids
            .iter()
            .copied()
            .find(|id| {
                !jobs
                    .iter()
                    .any(|j| j.task == crate::store::Task::Delivery { delivery_id: *id })
            })
            .unwrap();
        for id in &old_ids {
            let d = store.delivery_detail(*id).await.unwrap().unwrap();
            if *id == pending_id {
                assert!(
                    d.pruned_at_ms.is_none(),
                    "a pending delivery keeps its payload"
                );
                continue;
            }
            assert!(d.pruned_at_ms.is_some());
            assert_eq!(d.delivery.body.as_deref(), Some(""));
            assert_eq!(d.delivery.headers, Some(vec![]));
            assert_eq!(d.delivery.state, DeliveryState::Done, "the log row stays");
        }
        let kept = store.delivery_detail(new).await.unwrap().unwrap();
        assert!(kept.pruned_at_ms.is_none());
        assert!(kept.delivery.body.unwrap().contains("payload"));

        // A cutoff in the future: every finished job and every event goes; queued jobs stay.
        let p = prune(&store, now_ms() + 1_000, BATCH, &stop).await.unwrap();
        assert_eq!((p.jobs, p.events), (6, 6));
        let left = store.jobs(JobFilter::default()).await.unwrap();
        assert_eq!(left.len(), 2);
        assert!(left.iter().all(|j| j.job.state == JobState::Queued));
        assert!(store.events(id("t1"), None, 100).await.unwrap().is_empty());
        assert!(
            prune(&store, now_ms() + 1_000, BATCH, &stop)
                .await
                .unwrap()
                .is_empty(),
            "a second pass finds nothing"
        );
    }
}

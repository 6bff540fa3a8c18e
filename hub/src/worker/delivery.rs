//! `Task::Delivery`: a stored webhook handed to its connector's `handle-delivery`.

use super::{Answered, Ran, retry};
use crate::clock::now_ms;
use crate::runtime::{Call, Delivery};
use crate::state::Hub;
use crate::store::{Job, JobEnd};

/// Runs the connector on the delivery's stored request: the one its claim read, else read now.
/// A delivery that cannot be read (gone, or the database failing) is retried with backoff.
pub(super) async fn run(hub: &Hub, job: &Job, call: Call<'_>, delivery_id: i64) -> Ran {
    let read = match job.request.clone() {
        Some(request) => Ok(Ok(Some(*request))),
        None => {
            let store = hub.store.clone();
            tokio::task::spawn_blocking(move || store.delivery_request(delivery_id)).await
        }
    };
    let request = match read {
        Ok(Ok(Some(r))) => r,
        other => {
            let error = match other {
                Ok(Ok(_)) => "the delivery is gone".to_string(),
                Ok(Err(e)) => e.to_string(),
                Err(e) => e.to_string(),
            };
            return Ran::Answered(JobEnd::Retry {
                error,
                at_ms: now_ms() + retry::backoff_ms(job.attempts, None),
            });
        }
    };
    let delivery = Delivery {
        id: delivery_id.to_string(),
        route: request.route,
        method: request.method,
        url: request.url,
        headers: request.headers,
        body: request.body,
        received_at_ms: request.received_at_ms as u64,
    };
    let called = hub.runtime.handle_delivery(call, delivery).await;
    Ran::Called(called.map(|outcome| Answered {
        ignored: outcome.ignored,
        result: None,
    }))
}

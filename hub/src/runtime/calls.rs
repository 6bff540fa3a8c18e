//! The typed ways into a connector: one method per export of the WIT world, so the wasmtime
//! bindings stay inside `runtime` and callers (`ingress`, `worker`) speak the hub's nouns.

use super::{Called, ConfigMap, Delivery, Outcome, Priority, Reply, Runtime};
use crate::id::{ConnectorId, TenantId};

/// Who an invocation runs for, and on which threads.
#[derive(Clone)]
pub struct Call<'a> {
    /// Which threads run it.
    pub priority: Priority,
    /// The tenant it runs for ([`TenantId::any`] on a tenant-less route: global credentials).
    pub tenant: &'a TenantId,
    /// The connector it runs.
    pub connector: &'a ConnectorId,
    /// The tenant's config for the connector.
    pub config: ConfigMap,
}

impl Runtime {
    /// `handle-delivery`: the connector processes a stored webhook.
    pub async fn handle_delivery(&self, call: Call<'_>, delivery: Delivery) -> Called<Outcome> {
        self.invoke(call, move |store, c| {
            c.hub_connector_handler()
                .call_handle_delivery(store, &delivery)
        })
        .await
    }

    /// `run-job`: a connector job (a schedule's, a follow-up's or the operator's).
    pub async fn run_job(&self, call: Call<'_>, name: String, input: String) -> Called<()> {
        self.invoke(call, move |store, c| {
            c.hub_connector_handler().call_run_job(store, &name, &input)
        })
        .await
    }

    /// `run-action`: an action with its idempotency key; answers what the action returned.
    pub async fn run_action(
        &self,
        call: Call<'_>,
        name: String,
        input: String,
        idempotency_key: String,
    ) -> Called<String> {
        self.invoke(call, move |store, c| {
            c.hub_connector_handler()
                .call_run_action(store, &name, &input, &idempotency_key)
        })
        .await
    }

    /// `respond`: the answer to a webhook on a `sync-reply` route.
    pub async fn respond(&self, call: Call<'_>, delivery: Delivery) -> Called<Reply> {
        self.invoke(call, move |store, c| {
            c.hub_connector_handler().call_respond(store, &delivery)
        })
        .await
    }

    /// `verify`: a route's custom signature check.
    pub async fn verify(&self, call: Call<'_>, delivery: Delivery) -> Called<bool> {
        self.invoke(call, move |store, c| {
            c.hub_connector_handler().call_verify(store, &delivery)
        })
        .await
    }
}

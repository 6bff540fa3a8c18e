//! What traces cost: ingest and processing with every span exported to a local OTLP sink,
//! against the same with traces off, alternating off, on (every trace), on (10 % sampled),
//! twice, in one run.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::hubs::Site;
use crate::{Bench, payload, random_tag};

/// A collector that takes every export request and keeps only counts: the hub's cost is
/// measured, not a collector's.
struct Sink {
    port: u16,
    requests: Arc<AtomicU64>,
    bytes: Arc<AtomicU64>,
}

impl Sink {
    async fn start() -> anyhow::Result<Sink> {
        let requests = Arc::new(AtomicU64::new(0));
        let bytes = Arc::new(AtomicU64::new(0));
        let (r, b) = (requests.clone(), bytes.clone());
        let app = axum::Router::new().route(
            "/v1/traces",
            axum::routing::post(move |body: axum::body::Bytes| {
                r.fetch_add(1, Ordering::Relaxed);
                b.fetch_add(body.len() as u64, Ordering::Relaxed);
                async {
                    (
                        [("content-type", "application/x-protobuf")],
                        Vec::<u8>::new(),
                    )
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(Sink {
            port,
            requests,
            bytes,
        })
    }
}

impl Bench {
    pub(crate) async fn traces(&mut self) -> anyhow::Result<()> {
        println!(
            "\n== traces: exported to a local OTLP/HTTP sink, against off (off, all, 10 %; twice)"
        );
        let sink = Sink::start().await?;
        let signers = Arc::new(self.main.signers("retell", "api_key"));
        let variants: [(&str, Option<f64>); 3] = [
            ("traces off", None),
            ("traces on, every trace", Some(1.0)),
            ("traces on, 10 % sampled", Some(0.1)),
        ];
        let (mut ingest, mut processing) = (vec![Vec::new(); 3], vec![Vec::new(); 3]);
        for round in 0..2 {
            for (v, (label, ratio)) in variants.iter().enumerate() {
                self.main.telemetry = ratio.map(|r| {
                    format!(
                        "endpoint = \"http://127.0.0.1:{}\"\nsample_ratio = {r}",
                        sink.port
                    )
                });
                let site = Site::new(
                    self.work.path().join(format!("traces-{round}-{v}")),
                    &self.main,
                );
                self.main.telemetry = None;
                let site = site?;
                site.warm(&self.hub_bin).await?;
                let (hub, _) = site.start(&self.hub_bin).await?;
                let tag = random_tag();
                let run = self
                    .measure(
                        site.port,
                        hub.pid(),
                        payload::retell(signers.clone(), 1024, &tag),
                    )
                    .await;
                let exported = hub
                    .counter("hub_trace_spans_exported_total")
                    .await
                    .unwrap_or(0);
                let dropped = hub
                    .counter("hub_trace_spans_dropped_total")
                    .await
                    .unwrap_or(0);
                hub.stop();
                println!("   ingest, {label}: {run}");
                if ratio.is_some() {
                    println!("      spans exported {exported}, dropped (queue full) {dropped}");
                }
                ingest[v].push(run.rate);
                let p = self.drain(&site, label).await?;
                processing[v].push(p.rate());
                let _ = std::fs::remove_dir_all(&site.dir);
            }
        }
        let mean = |v: &Vec<f64>| v.iter().sum::<f64>() / v.len().max(1) as f64;
        for v in 1..3 {
            println!(
                "   {} / off: ingest {:.2}x ({:.0} vs {:.0}/s), processing {:.2}x ({:.0} vs {:.0}/s)",
                variants[v].0,
                mean(&ingest[v]) / mean(&ingest[0]),
                mean(&ingest[v]),
                mean(&ingest[0]),
                mean(&processing[v]) / mean(&processing[0]),
                mean(&processing[v]),
                mean(&processing[0]),
            );
        }
        println!(
            "   the sink took {} requests, {:.1} MB",
            sink.requests.load(Ordering::Relaxed),
            sink.bytes.load(Ordering::Relaxed) as f64 / 1e6,
        );
        Ok(())
    }
}

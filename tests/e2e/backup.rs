//! `hub backup` while the hub takes signed webhooks, and `hub restore` into an emptied data
//! directory: every webhook acknowledged before the backup began is in the restored store, the
//! restored hub finishes their jobs, and a restore over a store is refused.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;

use crate::hostile_kit::*;
use crate::util::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_under_load_restores_every_acknowledged_webhook() {
    let (mock, _) = mock_api().await;
    let mut hub = started(mock, &Opts::default()).await;
    let hub_ref = Arc::new(Mutex::new(Vec::<String>::new()));

    // Signed webhooks, one after another, each acknowledged before the next.
    let acked = hub_ref.clone();
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let url = format!("{}/hooks/alpha/probe", hub.base());
    let load = tokio::spawn(async move {
        let client = reqwest::Client::new();
        for i in 0..400 {
            if stopped.try_recv().is_ok() {
                break;
            }
            let id = format!("load{i}");
            let body =
                json!({ "id": id, "op": "record", "kind": "load", "key": id, "data": { "i": i } });
            let bytes = serde_json::to_vec(&body).unwrap();
            let mut req = client.post(&url).body(bytes.clone());
            for (k, v) in signed(ALPHA_KEY, &bytes) {
                req = req.header(k, v);
            }
            let status = req.send().await.unwrap().status();
            assert_eq!(status.as_u16(), 200, "{id}");
            acked.lock().unwrap().push(id);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    // The load runs; the backup starts while it goes on.
    wait_for(20, "the load to be under way", || async {
        (hub_ref.lock().unwrap().len() >= 20).then_some(())
    })
    .await;
    let before: Vec<String> = hub_ref.lock().unwrap().clone();
    let file = hub.dir.path().join("backup.db");
    let key = hub.key_text();
    let (ok, out, err) = hub.command(&["backup", "--to", file.to_str().unwrap()], Some(&key));
    assert!(ok, "{out}{err}");
    assert!(out.contains("deliveries") && out.contains("rows"), "{out}");
    let _ = stop.send(());
    load.await.unwrap();
    hub.kill();

    // The data directory emptied (the store moved away), the backup restored into it.
    let data = hub.dir.path().join("data");
    std::fs::rename(&data, hub.dir.path().join("data.old")).unwrap();
    let (ok, out, err) = hub.command(&["restore", "--from", file.to_str().unwrap()], Some(&key));
    assert!(
        ok && out.contains("every table's rows checked"),
        "{out}{err}"
    );
    let (ok, _, err) = hub.command(&["restore", "--from", file.to_str().unwrap()], Some(&key));
    assert!(
        !ok && err.contains("restore into a data directory without a store"),
        "{err}"
    );
    let (ok, _, err) = hub.command(&["backup", "--to", file.to_str().unwrap()], Some(&key));
    assert!(!ok && err.contains("exists: name a new file"), "{err}");

    hub.start().await;
    let stored: Vec<String> = hub
        .deliveries(Some("alpha"))
        .await
        .iter()
        .filter_map(|d| {
            d["identity"]
                .as_str()
                .map(|i| i.trim_start_matches(':').to_string())
        })
        .collect();
    for id in &before {
        assert!(
            stored.contains(id),
            "{id} was acknowledged before the backup and is missing"
        );
    }
    // The restored hub finishes what was queued: every restored delivery ends handled.
    wait_for(60, "the restored deliveries' jobs", || async {
        let rows = hub.deliveries(Some("alpha")).await;
        rows.iter().all(|d| d["state"] == "done").then_some(())
    })
    .await;
}

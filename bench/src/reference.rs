//! The ingest reference: a minimal axum server that verifies the signature and answers 200,
//! storing nothing. It runs as a child process of the bench (`hub-bench --serve-reference`),
//! like the hub, on a multi-threaded tokio runtime with one worker per core, and verifies with
//! the same native code the hub uses (`plugin_sdk::schemes::verify`), on the same headers.
//!
//! With a store directory (`--reference-store`), the same server also stores each verified
//! webhook with the hub's own durable write path (`hub::store::Store::ingest`) before it answers:
//! the least a durable server built on the hub's store can do. Between the two references and
//! the hub, the report shows what storage costs and what the hub's own request handling adds.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use hub::store::{NewDelivery, Store};
use plugin_sdk::schemes::{self, Policy, Scheme};

/// `connector -> tenant -> secret`, as the bench writes it for the child.
pub type Keys = HashMap<String, HashMap<String, String>>;

fn scheme_of(connector: &str) -> Scheme {
    match connector {
        "resend" => Scheme::StandardWebhooks,
        _ => Scheme::Retell,
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// What the handler shares.
struct Shared {
    keys: Keys,
    /// Set for the storing reference.
    store: Option<Store>,
}

async fn hook(
    State(shared): State<Arc<Shared>>,
    UrlPath((tenant, connector)): UrlPath<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, &'static str) {
    let Some(secret) = shared.keys.get(&connector).and_then(|t| t.get(&tenant)) else {
        return (StatusCode::NOT_FOUND, "{\"error\":\"not found\"}");
    };
    // The same header list the hub builds before verifying.
    let list: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let url = format!("http://127.0.0.1/hooks/{tenant}/{connector}");
    let req = schemes::Request {
        method: "POST",
        url: &url,
        headers: &list,
        body: &body,
        path_token: None,
    };
    let verified = schemes::verify(
        &scheme_of(&connector),
        secret.as_bytes(),
        &req,
        &Policy::at(now_ms()),
    );
    if verified.is_err() {
        return (
            StatusCode::UNAUTHORIZED,
            "{\"error\":\"invalid signature\"}",
        );
    }
    let Some(store) = &shared.store else {
        return (StatusCode::OK, "{\"status\":\"ok\"}");
    };
    let delivery = NewDelivery {
        // Random, as providers' ids are: the deduplication index takes them where they fall,
        // not at its end.
        identity: format!("{:016x}", rand::random::<u64>()),
        tenant,
        connector,
        route: String::new(),
        method: "POST".into(),
        event: None,
        url,
        headers: list,
        body: body.to_vec(),
        received_at_ms: now_ms() as i64,
    };
    match store.ingest(vec![delivery]).await {
        Ok(_) => (StatusCode::OK, "{\"status\":\"stored\"}"),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "{\"error\":\"not stored\"}",
        ),
    }
}

/// Serves on `127.0.0.1:port` until killed; with `store_dir`, stores what it verifies there.
///
/// # Errors
/// When the keys file cannot be read, the store cannot be opened or the port cannot be bound.
pub fn serve(port: u16, keys_file: &Path, store_dir: Option<&Path>) -> anyhow::Result<()> {
    let keys: Keys = serde_json::from_slice(
        &std::fs::read(keys_file).with_context(|| format!("reading {}", keys_file.display()))?,
    )?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let store = match store_dir {
            Some(dir) => Some(Store::open(dir).context("opening the reference's store")?),
            None => None,
        };
        let shared = Shared { keys, store };
        let app = Router::new()
            .route("/hooks/{tenant}/{connector}", post(hook))
            .layer(DefaultBodyLimit::max(64 << 20))
            .with_state(Arc::new(shared));
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        axum::serve(listener, app).await?;
        anyhow::Ok(())
    })
}

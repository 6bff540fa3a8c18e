//! The ingest reference: a minimal axum server that verifies the signature and answers 200,
//! storing nothing. It runs as a child process of the bench (`hub-bench --serve-reference`),
//! like the hub, on a multi-threaded tokio runtime with one worker per core, and verifies with
//! the same native code the hub uses (`plugin_sdk::schemes::verify`), on the same headers.
//!
//! With a store directory (`--reference-store`), the same server also stores each verified
//! webhook with the hub's own durable write path (`hub::store::Store::ingest`) before it answers:
//! the least a durable server built on the hub's store can do.
//!
//! With a journal directory (`--reference-journal`), the server instead appends each verified
//! webhook to one file and answers once a shared `fdatasync` has covered it (group commit), with
//! no database and no index: what a design that acknowledges from an append-only log, and
//! indexes later, could reach on this machine.
//!
//! Between the three references and the hub, the report shows what durability costs at the
//! least, what the store adds to that, and what the hub's own request handling adds.

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

/// Where a verified webhook goes before the answer.
enum Storage {
    /// Nowhere: the verify-only reference.
    Nothing,
    /// The hub's store.
    Store(Store),
    /// An append-only file, synced per group of webhooks.
    Journal(Journal),
}

/// What the handler shares.
struct Shared {
    keys: Keys,
    storage: Storage,
}

/// A record waiting for the journal, and who waits for it to be on disk.
type Append = (Vec<u8>, tokio::sync::oneshot::Sender<bool>);

/// An append-only file written by one thread: it takes every record waiting, writes them with
/// one `write`, syncs once, then answers all of them (group commit).
struct Journal {
    appends: std::sync::mpsc::Sender<Append>,
}

impl Journal {
    fn open(dir: &Path) -> anyhow::Result<Journal> {
        use std::io::Write as _;
        std::fs::create_dir_all(dir)?;
        let path = dir.join("journal.log");
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        let (appends, waiting) = std::sync::mpsc::channel::<Append>();
        std::thread::Builder::new()
            .name("journal".into())
            .spawn(move || {
                let mut buf = Vec::new();
                while let Ok(first) = waiting.recv() {
                    let mut group = vec![first];
                    group.extend(waiting.try_iter());
                    buf.clear();
                    let mut answers = Vec::with_capacity(group.len());
                    for (record, answer) in group {
                        buf.extend_from_slice(&(record.len() as u32).to_le_bytes());
                        buf.extend_from_slice(&record);
                        answers.push(answer);
                    }
                    let ok = file.write_all(&buf).and_then(|()| file.sync_data()).is_ok();
                    for answer in answers {
                        let _ = answer.send(ok);
                    }
                }
            })?;
        Ok(Journal { appends })
    }

    /// Appends `record`; true once it is on disk.
    async fn append(&self, record: Vec<u8>) -> bool {
        let (answer, answered) = tokio::sync::oneshot::channel();
        self.appends.send((record, answer)).is_ok() && answered.await.unwrap_or(false)
    }
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
    let store = match &shared.storage {
        Storage::Nothing => return (StatusCode::OK, "{\"status\":\"ok\"}"),
        Storage::Store(store) => store,
        Storage::Journal(journal) => {
            // What the hub would keep of it: who, which, the URL and headers, then the body.
            let mut record = serde_json::to_vec(&(
                &tenant,
                &connector,
                format!("{:016x}", rand::random::<u64>()),
                &url,
                &list,
                now_ms(),
            ))
            .unwrap_or_default();
            record.push(b'\n');
            record.extend_from_slice(&body);
            return if journal.append(record).await {
                (StatusCode::OK, "{\"status\":\"stored\"}")
            } else {
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "{\"error\":\"not stored\"}",
                )
            };
        }
    };
    // The hub finds both ids in its directory; the reference checks them as config does.
    let (Ok(tenant), Ok(connector)) = (tenant.parse(), connector.parse()) else {
        return (StatusCode::NOT_FOUND, "{\"error\":\"not found\"}");
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
        trace: None,
    };
    match store.ingest(vec![delivery]).await {
        Ok(_) => (StatusCode::OK, "{\"status\":\"stored\"}"),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "{\"error\":\"not stored\"}",
        ),
    }
}

/// Serves on `127.0.0.1:port` until killed; with `store_dir`, stores what it verifies there
/// with the hub's store; with `journal_dir`, appends it to a journal there.
///
/// # Errors
/// When the keys file cannot be read, the store or journal cannot be opened or the port cannot
/// be bound.
pub fn serve(
    port: u16,
    keys_file: &Path,
    store_dir: Option<&Path>,
    journal_dir: Option<&Path>,
) -> anyhow::Result<()> {
    let keys: Keys = serde_json::from_slice(
        &std::fs::read(keys_file).with_context(|| format!("reading {}", keys_file.display()))?,
    )?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let storage = match (store_dir, journal_dir) {
            (Some(dir), _) => {
                Storage::Store(Store::open(dir).context("opening the reference's store")?)
            }
            (None, Some(dir)) => Storage::Journal(Journal::open(dir)?),
            (None, None) => Storage::Nothing,
        };
        let shared = Shared { keys, storage };
        let app = Router::new()
            .route("/hooks/{tenant}/{connector}", post(hook))
            .layer(DefaultBodyLimit::max(64 << 20))
            .with_state(Arc::new(shared));
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        axum::serve(listener, app).await?;
        anyhow::Ok(())
    })
}

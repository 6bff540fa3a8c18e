//! One contract, two backends: every test here runs against the SQLite store and against a
//! real PostgreSQL server (started once per test process by `tests/postgres`, a fresh database
//! per test). A backend is right when these pass on it unchanged.

use super::postgres::{Postgres, testing::fresh_database};
use super::*;
use crate::clock::now_ms;
use crate::config::id;

/// `async fn name(store) { body }`: the test `name::sqlite` and `name::postgres`, the body
/// run against each store.
macro_rules! contract {
    ($(#[doc = $doc:literal])* async fn $name:ident($store:ident) $body:block) => {
        mod $name {
            use super::*;

            $(#[doc = $doc])*
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let dir = tempfile::tempdir().unwrap();
                let $store = Store::open(dir.path()).unwrap();
                $body
            }

            $(#[doc = $doc])*
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let $store = Postgres::connect(&fresh_database().await).await.unwrap();
                $body
            }
        }
    };
}

/// Runs a blocking read (a host call's) from the test's runtime thread.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

fn delivery(identity: &str) -> NewDelivery {
    NewDelivery::test(identity)
}

fn done() -> JobEnd {
    JobEnd::Done {
        ignored: None,
        result: None,
    }
}

fn put(kind: &str, key: &str, data: Option<&str>) -> Effects {
    Effects {
        records: vec![RecordWrite {
            kind: kind.into(),
            key: key.into(),
            data: data.map(String::from),
        }],
        ..Default::default()
    }
}

// The tests, by concern; each `mod` comes after the macro it uses.
mod channels;
mod ingest;
mod queue;
mod reads;
mod records;

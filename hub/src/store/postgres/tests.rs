//! What only PostgreSQL has: its connection string, its login, its schema versions.

use super::testing::{PASSWORD, fresh_database, server};
use super::*;
use crate::config::id;
use crate::store::{Ingested, NewDelivery};

fn delivery(identity: &str) -> NewDelivery {
    NewDelivery::test(identity)
}

fn refused(result: Result<Postgres>) -> String {
    match result {
        Ok(_) => panic!("the store opened"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test]
async fn a_wrong_password_or_database_or_port_is_named_without_the_password() {
    let port = server();
    let wrong = refused(
        Postgres::connect(&format!(
            "postgres://hub:not-{PASSWORD}@127.0.0.1:{port}/hub"
        ))
        .await,
    );
    assert!(wrong.contains("password authentication failed"), "{wrong}");
    assert!(wrong.contains(&format!("127.0.0.1:{port}/hub")), "{wrong}");
    assert!(
        !wrong.contains("not-hub-test"),
        "the password is never shown: {wrong}"
    );
    let missing = refused(
        Postgres::connect(&format!(
            "postgres://hub:{PASSWORD}@127.0.0.1:{port}/nowhere"
        ))
        .await,
    );
    assert!(
        missing.contains("database \"nowhere\" does not exist"),
        "{missing}"
    );
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = closed.local_addr().unwrap().port();
    drop(closed);
    let down = refused(
        Postgres::connect(&format!("postgres://hub:{PASSWORD}@127.0.0.1:{dead}/hub")).await,
    );
    assert!(down.contains(&format!("127.0.0.1:{dead}/hub")), "{down}");
    let unreadable = refused(Postgres::connect("postgres://hub@127.0.0.1:notaport/hub").await);
    assert!(
        unreadable.contains("connection string cannot be read"),
        "{unreadable}"
    );
}

#[tokio::test]
async fn a_schema_newer_than_the_hub_is_refused_and_a_known_one_is_reused() {
    let url = fresh_database().await;
    let store = Postgres::connect(&url).await.unwrap();
    assert_eq!(store.schema_version().await.unwrap(), schema::VERSION);
    store.ingest(vec![delivery("kept")]).await.unwrap();
    let again = Postgres::connect(&url).await.unwrap();
    assert_eq!(
        again.ingest(vec![delivery("kept")]).await.unwrap(),
        [Ingested::Duplicate(1)],
        "a second hub finds the first one's webhook"
    );
    store
        .client()
        .await
        .unwrap()
        .execute("UPDATE hub_schema SET version = version + 1", &[])
        .await
        .unwrap();
    let newer = refused(Postgres::connect(&url).await);
    assert!(newer.contains("newer than this hub knows"), "{newer}");
}

#[tokio::test]
async fn a_webhook_the_server_refuses_fails_alone() {
    let store = Postgres::connect(&fresh_database().await).await.unwrap();
    store
        .client()
        .await
        .unwrap()
        .batch_execute(
            "CREATE FUNCTION refuse() RETURNS trigger AS $$
             BEGIN IF NEW.identity = 'poison' THEN RAISE EXCEPTION 'refused'; END IF; RETURN NEW; END
             $$ LANGUAGE plpgsql;
             CREATE TRIGGER refuse BEFORE INSERT ON deliveries FOR EACH ROW EXECUTE FUNCTION refuse();",
        )
        .await
        .unwrap();
    let handles: Vec<_> = (0..100)
        .map(|i| {
            let s = store.clone();
            let identity = if i == 50 {
                "poison".to_string()
            } else {
                format!("id{i}")
            };
            tokio::spawn(async move { (i, s.ingest(vec![delivery(&identity)]).await) })
        })
        .collect();
    for h in handles {
        match h.await.unwrap() {
            (50, result) => {
                let e = result.expect_err("the poisoned webhook is refused");
                assert!(e.to_string().contains("refused"), "{e}");
            }
            (_, result) => assert!(matches!(result.unwrap()[0], Ingested::Stored(_))),
        }
    }
    assert_eq!(store.claim(1000, 60_000).await.unwrap().len(), 99);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_behind_a_running_transaction_is_listed_late_never_skipped() {
    use crate::store::{Effects, RecordWrite};
    let url = fresh_database().await;
    let store = Postgres::connect(&url).await.unwrap();
    let put = |key: &str| Effects {
        records: vec![RecordWrite {
            kind: "call".into(),
            key: key.into(),
            data: Some("{}".into()),
        }],
        ..Default::default()
    };
    // A writer that began first (and took its transaction id first) and commits last.
    let mut slow = store.client().await.unwrap();
    let slow = slow.transaction().await.unwrap();
    slow.execute(
        "INSERT INTO records (tenant, kind, key, data, updated_at, version, seq)
         VALUES ('t1', 'call', 'slow', '{}', 0, 1, nextval('record_seq'))",
        &[],
    )
    .await
    .unwrap();
    store
        .apply(&id("t1"), &id("c1"), put("fast"))
        .await
        .unwrap();
    let early = store.changes(id("t1"), 0, None, 100).await.unwrap();
    assert!(
        early.changes.is_empty(),
        "the committed change waits behind the running one: {:?}",
        early.changes
    );
    slow.commit().await.unwrap();
    let page = store
        .changes(id("t1"), early.latest, None, 100)
        .await
        .unwrap();
    let keys: Vec<_> = page.changes.iter().map(|c| c.key.as_str()).collect();
    assert_eq!(
        keys,
        ["slow", "fast"],
        "both, in transaction order, from the earlier cursor"
    );
}

/// Whether the store's own connections to the server are encrypted.
async fn encrypted(pg: &Postgres) -> bool {
    let client = pg.client().await.unwrap();
    client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

/// The test server speaks TLS with a certificate for `localhost` from an authority of its own:
/// each `sslmode` encrypts and checks what libpq's does, and a failed check says why.
#[tokio::test]
async fn the_server_s_certificate_is_checked_as_sslmode_says() {
    let url = fresh_database().await;
    let authority = super::testing::authority();
    let root = percent_encoding::utf8_percent_encode(
        &authority.display().to_string(),
        percent_encoding::NON_ALPHANUMERIC,
    )
    .to_string();
    let on = |host: &str, options: &str| format!("{}?{options}", url.replace("127.0.0.1", host));

    let full = Postgres::connect(&on(
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={root}"),
    ))
    .await
    .unwrap();
    assert!(encrypted(&full).await, "verify-full: encrypted");
    assert_eq!(
        full.ingest(vec![delivery("over-tls")]).await.unwrap().len(),
        1
    );

    // The certificate names localhost, not 127.0.0.1: verify-full refuses, verify-ca accepts.
    let wrong_name = refused(
        Postgres::connect(&on(
            "127.0.0.1",
            &format!("sslmode=verify-full&sslrootcert={root}"),
        ))
        .await,
    );
    assert!(
        wrong_name.contains("TLS") && wrong_name.contains("not valid for name"),
        "{wrong_name}"
    );
    let ca = Postgres::connect(&on(
        "127.0.0.1",
        &format!("sslmode=verify-ca&sslrootcert={root}"),
    ))
    .await
    .unwrap();
    assert!(encrypted(&ca).await);

    // The system does not trust this authority.
    let unknown = refused(Postgres::connect(&on("localhost", "sslmode=verify-full")).await);
    assert!(unknown.contains("UnknownIssuer"), "{unknown}");
    let missing = refused(
        Postgres::connect(&on(
            "localhost",
            "sslmode=verify-full&sslrootcert=/nonexistent/ca.pem",
        ))
        .await,
    );
    assert!(
        missing.contains("sslrootcert /nonexistent/ca.pem"),
        "{missing}"
    );

    // libpq's require and prefer encrypt without checking; disable does not encrypt.
    let require = Postgres::connect(&on("127.0.0.1", "sslmode=require"))
        .await
        .unwrap();
    assert!(encrypted(&require).await);
    let prefer = Postgres::connect(&url).await.unwrap();
    assert!(
        encrypted(&prefer).await,
        "the default (prefer) encrypts when the server offers it"
    );
    let plain = Postgres::connect(&on("127.0.0.1", "sslmode=disable"))
        .await
        .unwrap();
    assert!(!encrypted(&plain).await);
    // And channel binding (SCRAM tied to the certificate) holds over it.
    let bound = Postgres::connect(&on("127.0.0.1", "sslmode=require&channel_binding=require"))
        .await
        .unwrap();
    assert!(encrypted(&bound).await);
}

#[tokio::test]
async fn a_user_who_may_not_write_the_tables_is_refused_before_the_first_webhook() {
    let url = fresh_database().await;
    let store = Postgres::connect(&url).await.unwrap();
    let database = url.rsplit('/').next().unwrap().to_owned();
    let role = format!("reader_{database}");
    store
        .client()
        .await
        .unwrap()
        .batch_execute(&format!(
            "CREATE ROLE {role} LOGIN PASSWORD 'reader';
             GRANT USAGE ON SCHEMA public TO {role};
             GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role};"
        ))
        .await
        .unwrap();
    let reader = format!("postgres://{role}:reader@127.0.0.1:{}/{database}", server());
    let settings = || PostgresSettings::parse(&reader).unwrap();
    let checked = probe(settings()).await.unwrap_err().to_string();
    assert!(
        checked.contains(&format!(
            "user {role} may not read and write the hub's tables"
        )),
        "{checked}"
    );
    assert!(
        checked.contains(" on audit, audit_id_seq, channels, config_versions, connect_flows, ")
            && checked.contains(" more "),
        "names the tables and sequences it may not write (the privileges one by one: a \
         SELECT alone is not enough): {checked}"
    );
    let started = refused(Postgres::connect_with(settings()).await);
    assert_eq!(started, checked, "hub serve refuses as hub check does");

    store
        .client()
        .await
        .unwrap()
        .batch_execute(&format!(
            "GRANT ALL ON ALL TABLES IN SCHEMA public TO {role};
             GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role};"
        ))
        .await
        .unwrap();
    probe(settings()).await.unwrap();
    let granted = Postgres::connect_with(settings()).await.unwrap();
    assert!(matches!(
        granted.ingest(vec![delivery("granted")]).await.unwrap()[0],
        Ingested::Stored(_)
    ));
}

#[tokio::test]
async fn commits_are_synchronous_whatever_the_database_s_default() {
    let url = fresh_database().await;
    let database = url.rsplit('/').next().unwrap().to_owned();
    let first = Postgres::connect(&url).await.unwrap();
    first
        .client()
        .await
        .unwrap()
        .batch_execute(&format!(
            "ALTER DATABASE {database} SET synchronous_commit = off"
        ))
        .await
        .unwrap();
    let store = Postgres::connect(&url).await.unwrap();
    let row = store
        .client()
        .await
        .unwrap()
        .query_one("SHOW synchronous_commit", &[])
        .await
        .unwrap();
    assert_eq!(row.get::<_, &str>(0), "on");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_end_the_server_refuses_fails_alone_and_the_others_of_its_batch_commit() {
    use crate::store::{Effects, JobEnd, RecordWrite};
    let store = Postgres::connect(&fresh_database().await).await.unwrap();
    store
        .client()
        .await
        .unwrap()
        .batch_execute("ALTER TABLE records ADD CONSTRAINT refuse CHECK (data NOT LIKE '%poison%')")
        .await
        .unwrap();
    let deliveries: Vec<_> = (0..40).map(|i| delivery(&format!("id{i}"))).collect();
    store.ingest(deliveries).await.unwrap();
    let jobs = store.claim(40, 60_000).await.unwrap();
    let ends = jobs.iter().enumerate().map(|(i, job)| {
        let data = if i == 20 {
            "{\"poison\":1}".to_string()
        } else {
            format!("{{\"i\":{i}}}")
        };
        let effects = Effects {
            records: vec![RecordWrite {
                kind: "call".into(),
                key: format!("c{i}"),
                data: Some(data),
            }],
            ..Default::default()
        };
        store.finish(
            job.lease(),
            effects,
            JobEnd::Done {
                ignored: None,
                result: None,
            },
            1,
        )
    });
    let ended = futures::future::join_all(ends).await;
    for (i, end) in ended.iter().enumerate() {
        match i {
            20 => {
                let e = end.as_ref().expect_err("the refused end fails");
                assert!(e.to_string().contains("refuse"), "{e}");
            }
            _ => assert!(end.is_ok(), "end {i}: {end:?}"),
        }
    }
    for i in 0..40 {
        let stored = tokio::task::block_in_place(|| {
            store.record_get(&crate::config::id("t1"), "call", &format!("c{i}"))
        })
        .unwrap();
        assert_eq!(stored.is_some(), i != 20, "c{i}");
    }
    let left = store.job(jobs[20].id).await.unwrap().unwrap();
    assert_eq!(
        left.state,
        crate::store::JobState::Running,
        "its lease runs out and it runs again"
    );
}

//! For the hub's own tests (unit and end-to-end), not for use: a real PostgreSQL server started
//! once per test process by `tests/postgres` (a fresh cluster in a temporary directory,
//! stopped when the process ends), and a fresh database per test on it.

use std::io::BufRead as _;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The password of the test server's user `hub` (what `tests/postgres` sets).
pub const PASSWORD: &str = "hub-test";

/// The test server's port.
pub fn server() -> u16 {
    started().0
}

/// The certificate of the authority that signed the test server's (for `localhost` only).
pub fn authority() -> std::path::PathBuf {
    started().1.join("ca.crt")
}

/// The test server's port and directory, started on first use.
fn started() -> &'static (u16, std::path::PathBuf) {
    static SERVER: OnceLock<(u16, std::path::PathBuf)> = OnceLock::new();
    SERVER.get_or_init(|| {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free loopback port");
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/postgres");
        let mut child = std::process::Command::new(script)
            .arg(port.to_string())
            .arg(std::process::id().to_string())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {script}: {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .expect("tests/postgres answers");
        let dir = line
            .trim()
            .strip_prefix("ready ")
            .unwrap_or_else(|| panic!("tests/postgres did not start a server: {line:?}"));
        // The script stays until this process ends, then stops the server.
        std::mem::forget(child);
        (port, dir.into())
    })
}

/// The name of a new, empty database on the test server (blocking: from any thread).
pub fn fresh_database_blocking() -> String {
    std::thread::spawn(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
            .block_on(fresh_database())
    })
    .join()
    .expect("create a test database")
}

/// The URL of a new, empty database on the test server.
pub async fn fresh_database() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let port = server();
    let name = format!(
        "hub_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let admin = format!("postgres://hub:{PASSWORD}@127.0.0.1:{port}/hub");
    let (client, connection) = tokio_postgres::connect(&admin, tokio_postgres::NoTls)
        .await
        .expect("connect to the test server");
    let task = tokio::spawn(connection);
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create a test database");
    drop(client);
    let _ = task.await;
    format!("postgres://hub:{PASSWORD}@127.0.0.1:{port}/{name}")
}

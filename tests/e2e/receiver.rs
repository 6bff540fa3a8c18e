//! A tenant's app receiving the hub's webhooks: `tests/signers/receive.js`, which verifies each
//! with the official Svix library (Standard Webhooks) and prints what it got.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use serde_json::Value;

use crate::util::free_port;

/// The app: `tests/signers/receive.js`, verifying with the official library. Every webhook it
/// got, as it printed them.
pub(crate) struct App {
    pub(crate) port: u16,
    child: Option<Child>,
    got: Arc<Mutex<Vec<Value>>>,
    secret: String,
}

impl App {
    /// An app that verifies with `secret`.
    pub(crate) fn with_secret(secret: &str) -> App {
        App {
            port: free_port(),
            child: None,
            got: Arc::default(),
            secret: secret.to_string(),
        }
    }

    /// Starts listening (the app comes up).
    pub(crate) fn up(&mut self) {
        let script =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/signers/receive.js");
        let mut child = Command::new("node")
            .arg(script)
            .arg(self.port.to_string())
            .arg(&self.secret)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("node runs (the test setup installs tests/signers with npm ci)");
        let stdout = child.stdout.take().unwrap();
        let got = self.got.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    got.lock().unwrap().push(v);
                }
            }
        });
        // Ready once it says so.
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        stderr.read_line(&mut line).unwrap();
        assert!(line.contains("listening"), "the app did not start: {line}");
        self.child = Some(child);
    }

    /// Stops listening (the app goes down).
    pub(crate) fn down(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub(crate) fn got(&self) -> Vec<Value> {
        self.got.lock().unwrap().clone()
    }
}

impl Drop for App {
    fn drop(&mut self) {
        self.down();
    }
}

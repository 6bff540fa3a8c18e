//! A real headless Chromium (Debian's `chromium`), driven over WebDriver by its own
//! `chromedriver` on a loopback port; `tests/setup` installs both. Screenshots of each page a
//! test visits go to `target/console-screenshots/` (test artifacts, worth a look).

use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::wd::Capabilities;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use crate::util::free_port;

/// The browser binary and its driver, where Debian puts them.
const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// One browser session and its driver process.
pub struct Browser {
    pub client: Client,
    driver: Child,
    shots: PathBuf,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium. Panics (the test fails) when either is
    /// missing: the test command installs them, so a missing one is a broken setup.
    pub async fn start(test: &str) -> Browser {
        Browser::start_with(test, &[]).await
    }

    /// [`Browser::start`] with more Chromium flags (`--host-resolver-rules=...`, to reach a
    /// stand-in under a provider's declared host name).
    pub async fn start_with(test: &str, extra: &[String]) -> Browser {
        for path in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                std::path::Path::new(path).exists(),
                "{path} is missing: run the README's test command (tests/setup installs chromium and chromium-driver)"
            );
        }
        let port = free_port();
        // In a process group of its own, so the browser it starts goes down with it.
        let driver = Command::new(CHROMEDRIVER)
            .process_group(0)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting chromedriver");
        let url = format!("http://127.0.0.1:{port}");
        let mut caps = Capabilities::new();
        let mut args: Vec<String> = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--window-size=1400,1000",
            "--no-first-run",
            "--disable-extensions",
        ]
        .iter()
        .map(|a| a.to_string())
        .collect();
        args.extend(extra.iter().cloned());
        caps.insert(
            "goog:chromeOptions".into(),
            json!({ "binary": CHROMIUM, "args": args }),
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector)
                .capabilities(caps.clone())
                .connect(&url)
                .await
            {
                Ok(c) => break c,
                Err(e) => {
                    assert!(Instant::now() < deadline, "chromedriver did not start: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        };
        let shots = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../target/console-screenshots")
            .join(test);
        std::fs::create_dir_all(&shots).unwrap();
        Browser {
            client,
            driver,
            shots,
        }
    }

    /// Saves a screenshot of the page as `NAME.png`.
    pub async fn shot(&self, name: &str) {
        if let Ok(png) = self.client.screenshot().await {
            let _ = std::fs::write(self.shots.join(format!("{name}.png")), png);
        }
    }

    /// The visible text of the first element `css` finds, waiting up to 10 s for one. A page
    /// that reloads itself (the bulk replay's progress) can replace the element between finding
    /// and reading it: then it is found again.
    pub async fn text(&self, css: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let found = self.client.find(Locator::Css(css)).await;
            let read = match found {
                Ok(element) => element.text().await,
                Err(e) => Err(e),
            };
            match read {
                Ok(text) => return text,
                Err(e) if Instant::now() >= deadline => {
                    panic!("no `{css}` to read on the page: {e}")
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// The text of `css` once it contains `needle`, waiting up to 10 s: after a form is
    /// submitted, the page before it can still be the one read (then the last text read).
    pub async fn text_containing(&self, css: &str, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = self.text(css).await;
            if text.contains(needle) || Instant::now() >= deadline {
                return text;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits up to `secs` for `css` to find an element.
    pub async fn wait_for(&self, css: &str, secs: u64) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(Duration::from_secs(secs))
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("`{css}` did not appear within {secs} s: {e}"))
    }

    /// Whether an alert, confirm or prompt dialog is open.
    pub async fn dialog_open(&self) -> bool {
        self.client.get_alert_text().await.is_ok()
    }

    /// Ends the session, the browser and the driver.
    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

impl Drop for Browser {
    /// The driver's whole process group (chromedriver and the Chromium it started), even when
    /// a test failed half-way.
    fn drop(&mut self) {
        let group = format!("-{}", self.driver.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.driver.wait();
    }
}

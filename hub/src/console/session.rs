//! Who is looking at the console: a login with an API token (the admin's, or a tenant's) opens a
//! random session; the browser holds its id in an `HttpOnly`, `SameSite=Strict` cookie (`Secure`
//! when the public URL is https), and the hub keeps only the id's SHA-256 digest, so a copy of
//! the hub's memory cannot be replayed as a cookie. Sessions live in memory: a restart logs
//! everyone out. Failed logins are counted per client address; past [`MAX_FAILURES`] in
//! [`FAILURE_WINDOW`] every login from that address is refused until the window ends, so a
//! guessed token cannot be confirmed either.
//!
//! Every form carries a one-time nonce; [`Sessions::spend`] accepts each once, so a double click
//! on "replay" replays once.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use crate::auth::Principal;

/// The cookie's name.
pub const COOKIE: &str = "hub_console";
/// How long a session lasts after its last use.
pub const IDLE: Duration = Duration::from_secs(8 * 3600);
/// Failed logins from one address allowed per window.
pub const MAX_FAILURES: u32 = 10;
/// The window failed logins are counted in.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// Nonces remembered per session (older ones are refused as stale).
const NONCES: usize = 512;

/// One logged-in browser.
#[derive(Clone)]
pub struct Session {
    /// Who logged in.
    pub principal: Principal,
    last_seen: Instant,
    /// Nonces handed out and not yet spent, oldest first.
    nonces: VecDeque<String>,
}

/// Every open session, by the digest of its id; and failed logins by address.
#[derive(Default)]
pub struct Sessions {
    open: Mutex<HashMap<[u8; 32], Session>>,
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

fn digest(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

fn random_text() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

/// A login refused.
#[derive(Debug, PartialEq, Eq)]
pub enum LoginRefused {
    /// Too many failures from this address; try again after this long.
    TooMany(Duration),
    /// The token is not one the hub accepts.
    Wrong,
}

impl Sessions {
    /// Opens a session for `principal`; the id to put in the cookie.
    pub fn open(&self, principal: Principal) -> String {
        let id = random_text();
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        open.retain(|_, s| now.duration_since(s.last_seen) < IDLE);
        open.insert(
            digest(&id),
            Session {
                principal,
                last_seen: now,
                nonces: VecDeque::new(),
            },
        );
        id
    }

    /// The session of a cookie's id, refreshed; `None` when unknown or idle too long.
    pub fn get(&self, id: &str) -> Option<Session> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let key = digest(id);
        let now = Instant::now();
        let session = open.get_mut(&key)?;
        if now.duration_since(session.last_seen) >= IDLE {
            open.remove(&key);
            return None;
        }
        session.last_seen = now;
        Some(session.clone())
    }

    /// Ends a session.
    pub fn close(&self, id: &str) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.remove(&digest(id));
    }

    /// Ends every session `keep` says no to (after a reload revoked a token).
    pub fn retain(&self, keep: impl Fn(&Principal) -> bool) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.retain(|_, s| keep(&s.principal));
    }

    /// A fresh nonce for one form of this session.
    pub fn nonce(&self, id: &str) -> String {
        let nonce = random_text();
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(session) = open.get_mut(&digest(id)) {
            if session.nonces.len() >= NONCES {
                session.nonces.pop_front();
            }
            session.nonces.push_back(nonce.clone());
        }
        nonce
    }

    /// Spends a nonce: true the first time, false for one spent, stale or never handed out.
    pub fn spend(&self, id: &str, nonce: &str) -> bool {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let Some(session) = open.get_mut(&digest(id)) else {
            return false;
        };
        match session.nonces.iter().position(|n| n == nonce) {
            Some(i) => {
                session.nonces.remove(i);
                true
            }
            None => false,
        }
    }

    /// Whether `from` may try a login now.
    pub fn may_try(&self, from: IpAddr) -> Result<(), LoginRefused> {
        let failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        match failures.get(&from) {
            Some((count, since)) if *count >= MAX_FAILURES => {
                let passed = since.elapsed();
                if passed < FAILURE_WINDOW {
                    Err(LoginRefused::TooMany(FAILURE_WINDOW - passed))
                } else {
                    Ok(())
                }
            }
            _ => Ok(()),
        }
    }

    /// Counts a failed login from `from`.
    pub fn failed(&self, from: IpAddr) {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if failures.len() > 10_000 {
            failures.retain(|_, (_, since)| now.duration_since(*since) < FAILURE_WINDOW);
        }
        let entry = failures.entry(from).or_insert((0, now));
        if now.duration_since(entry.1) >= FAILURE_WINDOW {
            *entry = (0, now);
        }
        entry.0 += 1;
    }
}

/// The value of cookie `name` in a `Cookie` header.
pub fn cookie<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|pair| {
        let (k, v) = pair.trim().split_once('=')?;
        (k == name).then_some(v)
    })
}

/// The `Set-Cookie` value that opens (`Some(id)`) or clears (`None`) the session cookie.
pub fn set_cookie(id: Option<&str>, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    match id {
        Some(id) => format!(
            "{COOKIE}={id}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
            IDLE.as_secs()
        ),
        None => format!("{COOKIE}=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0{secure}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_opens_with_its_id_and_no_other() {
        let s = Sessions::default();
        let id = s.open(Principal::Admin);
        assert_eq!(s.get(&id).map(|s| s.principal), Some(Principal::Admin));
        assert!(s.get("guessed").is_none());
        s.close(&id);
        assert!(s.get(&id).is_none());
    }

    #[test]
    fn a_nonce_is_spent_once() {
        let s = Sessions::default();
        let id = s.open(Principal::Admin);
        let n = s.nonce(&id);
        assert!(s.spend(&id, &n));
        assert!(!s.spend(&id, &n), "a double click replays once");
        assert!(!s.spend(&id, "made-up"));
        let other = s.open(Principal::Admin);
        let n = s.nonce(&id);
        assert!(!s.spend(&other, &n), "another session's nonce is refused");
    }

    #[test]
    fn failed_logins_lock_out_the_address_for_the_window() {
        let s = Sessions::default();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..MAX_FAILURES {
            assert_eq!(s.may_try(ip), Ok(()));
            s.failed(ip);
        }
        assert!(matches!(s.may_try(ip), Err(LoginRefused::TooMany(_))));
        assert_eq!(s.may_try("192.0.2.2".parse().unwrap()), Ok(()));
    }

    #[test]
    fn cookies_are_found_by_name() {
        let h = "a=1; hub_console=abc; b=2";
        assert_eq!(cookie(h, COOKIE), Some("abc"));
        assert_eq!(cookie("hub_consolex=1", COOKIE), None);
        assert!(set_cookie(Some("x"), true).contains("HttpOnly; SameSite=Strict"));
        assert!(set_cookie(Some("x"), true).ends_with("; Secure"));
        assert!(!set_cookie(Some("x"), false).contains("Secure"));
    }
}

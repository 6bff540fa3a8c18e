//! The load generator: a fixed number of keep-alive HTTP/1.1 connections (hyper), each sending
//! one request after another for a fixed time or until a shared count runs out, timing each
//! request from send to the last byte of its answer. It runs in the bench process, on the same
//! cores as the server it measures, as `oha` or `wrk` would.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// One request to send: path, extra headers, body.
pub struct Req {
    /// Path and query, e.g. `/hooks/t0001/retell`.
    pub path: String,
    /// Headers besides `host` and `content-length`.
    pub headers: Vec<(&'static str, String)>,
    /// The body.
    pub body: Bytes,
}

/// Makes the request with sequence number `seq` (unique within a run).
pub type Maker = Arc<dyn Fn(u64) -> Req + Send + Sync>;

/// When a run ends.
#[derive(Clone, Copy, Debug)]
pub enum Until {
    /// Stop sending after this long (requests in flight complete).
    Elapsed(Duration),
    /// Send exactly this many requests in all.
    Count(u64),
}

/// What a run measured.
#[derive(Debug, Default)]
pub struct Outcome {
    /// 2xx answers.
    pub ok: u64,
    /// Answers that were not 2xx, by status.
    pub bad_status: std::collections::BTreeMap<u16, u64>,
    /// Requests that got no answer (connection refused, reset, closed).
    pub io_errors: u64,
    /// From the first send to the last answer.
    pub elapsed: Duration,
    /// Latency of each 2xx answer, in microseconds, sorted.
    pub latencies_us: Vec<u32>,
    /// 2xx answers in each second of the run, from its start: how the rate moves within it.
    pub per_second: Vec<u64>,
}

impl Outcome {
    /// The 2xx answers of each whole second, in thousands, e.g. `21.3 20.8 19.9`.
    pub fn per_second_text(&self) -> String {
        let whole = self.elapsed.as_secs() as usize;
        self.per_second
            .iter()
            .take(whole)
            .map(|n| format!("{:.1}", *n as f64 / 1000.0))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// 2xx answers per second.
    pub fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Every request without a 2xx answer.
    pub fn errors(&self) -> u64 {
        self.io_errors + self.bad_status.values().sum::<u64>()
    }

    /// The latency below which `q` (0..1) of the answers fall, in milliseconds.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return f64::NAN;
        }
        let i = ((self.latencies_us.len() - 1) as f64 * q).round() as usize;
        f64::from(self.latencies_us[i]) / 1000.0
    }

    /// A one-line summary of the errors, e.g. `0` or `12 (401 x 10, io x 2)`.
    pub fn error_text(&self) -> String {
        let total = self.errors();
        if total == 0 {
            return "0".into();
        }
        let mut parts: Vec<String> = self
            .bad_status
            .iter()
            .map(|(s, n)| format!("{s} x {n}"))
            .collect();
        if self.io_errors > 0 {
            parts.push(format!("io x {}", self.io_errors));
        }
        format!("{total} ({})", parts.join(", "))
    }
}

struct Shared {
    addr: SocketAddr,
    host: String,
    make: Maker,
    next: AtomicU64,
    until: Until,
    started: Instant,
    deadline: Instant,
}

#[derive(Default)]
struct Tally {
    ok: u64,
    bad_status: std::collections::BTreeMap<u16, u64>,
    io_errors: u64,
    latencies_us: Vec<u32>,
    per_second: Vec<u64>,
}

/// Runs `concurrency` connections against `addr` until `until`; must be called inside a tokio
/// runtime (the bench uses a multi-threaded one with one worker per core).
pub async fn run(addr: SocketAddr, concurrency: usize, until: Until, make: Maker) -> Outcome {
    let started = Instant::now();
    let deadline = match until {
        Until::Elapsed(d) => started + d,
        Until::Count(_) => started + Duration::from_secs(3600),
    };
    let shared = Arc::new(Shared {
        addr,
        host: addr.to_string(),
        make,
        next: AtomicU64::new(0),
        until,
        started,
        deadline,
    });
    let tasks: Vec<_> = (0..concurrency.max(1))
        .map(|_| tokio::spawn(connection(shared.clone())))
        .collect();
    let mut out = Outcome::default();
    for t in tasks {
        let Ok(t) = t.await else { continue };
        out.ok += t.ok;
        out.io_errors += t.io_errors;
        for (s, n) in t.bad_status {
            *out.bad_status.entry(s).or_default() += n;
        }
        out.latencies_us.extend(t.latencies_us);
        if out.per_second.len() < t.per_second.len() {
            out.per_second.resize(t.per_second.len(), 0);
        }
        for (total, n) in out.per_second.iter_mut().zip(t.per_second) {
            *total += n;
        }
    }
    out.elapsed = started.elapsed();
    out.latencies_us.sort_unstable();
    out
}

/// The next sequence number, or `None` when the run is over.
fn next_seq(s: &Shared) -> Option<u64> {
    match s.until {
        Until::Elapsed(_) => {
            (Instant::now() < s.deadline).then(|| s.next.fetch_add(1, Ordering::Relaxed))
        }
        Until::Count(n) => {
            let seq = s.next.fetch_add(1, Ordering::Relaxed);
            (seq < n).then_some(seq)
        }
    }
}

async fn connection(s: Arc<Shared>) -> Tally {
    let mut tally = Tally::default();
    // A request whose connection failed before it was answered is retried on a new one.
    let mut pending: Option<u64> = None;
    'connect: loop {
        if Instant::now() >= s.deadline {
            return tally;
        }
        let stream = match TcpStream::connect(s.addr).await {
            Ok(st) => st,
            Err(_) => {
                tally.io_errors += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let Ok((mut sender, conn)) =
            hyper::client::conn::http1::handshake::<_, Full<Bytes>>(TokioIo::new(stream)).await
        else {
            tally.io_errors += 1;
            continue;
        };
        tokio::spawn(conn);
        loop {
            let seq = match pending.take() {
                Some(seq) => seq,
                None => match next_seq(&s) {
                    Some(seq) => seq,
                    None => return tally,
                },
            };
            let r = (s.make)(seq);
            let mut req = Request::post(r.path.as_str()).header("host", s.host.as_str());
            for (k, v) in &r.headers {
                req = req.header(*k, v.as_str());
            }
            let Ok(req) = req.body(Full::new(r.body)) else {
                tally.io_errors += 1;
                continue;
            };
            if sender.ready().await.is_err() {
                tally.io_errors += 1;
                pending = Some(seq);
                continue 'connect;
            }
            let t = Instant::now();
            match sender.send_request(req).await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let body = resp.into_body().collect().await;
                    let us = t.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
                    match body {
                        Ok(_) if (200..300).contains(&status) => {
                            tally.ok += 1;
                            tally.latencies_us.push(us);
                            let second = s.started.elapsed().as_secs() as usize;
                            if tally.per_second.len() <= second {
                                tally.per_second.resize(second + 1, 0);
                            }
                            tally.per_second[second] += 1;
                        }
                        Ok(_) => *tally.bad_status.entry(status).or_default() += 1,
                        Err(_) => {
                            tally.io_errors += 1;
                            continue 'connect;
                        }
                    }
                }
                Err(_) => {
                    tally.io_errors += 1;
                    continue 'connect;
                }
            }
        }
    }
}

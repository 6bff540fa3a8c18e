//! What PostgreSQL itself spends around a phase of the bench: its processes' CPU (the
//! postmaster's own and reaped children's times, plus each live backend's, from `/proc`), the
//! statements and rows it ran (`pg_stat_statements`, which `tests/postgres` loads), and the WAL
//! it wrote (`pg_current_wal_lsn`). Divided by the webhooks or deliveries of the phase, these are
//! the costs a cluster is sized from (docs/scale-out.md).

use std::time::Duration;

use hub::store::postgres::testing;

/// A connection to the test server as its superuser, and its postmaster's pid.
pub struct Probe {
    client: tokio_postgres::Client,
    postmaster: u32,
}

/// Totals at one moment.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counters {
    /// CPU time of every PostgreSQL process so far.
    pub cpu: Duration,
    /// Statements executed (pg_stat_statements' `calls`, since the last reset).
    pub statements: i64,
    /// Rows they returned or changed.
    pub rows: i64,
    /// WAL position, in bytes.
    pub wal: i64,
}

/// One statement's share of a phase.
pub struct Top {
    pub query: String,
    pub calls: i64,
    pub rows: i64,
    pub ms: f64,
}

impl Probe {
    /// Connects (the server must be running: `testing::fresh_database` starts it) and loads the
    /// extension's view.
    pub async fn connect() -> anyhow::Result<Probe> {
        let dir = testing::authority()
            .parent()
            .map(|d| d.to_path_buf())
            .ok_or_else(|| anyhow::anyhow!("the test server's directory"))?;
        let pid_file = std::fs::read_to_string(dir.join("data/postmaster.pid"))?;
        let postmaster: u32 = pid_file
            .lines()
            .next()
            .and_then(|l| l.trim().parse().ok())
            .ok_or_else(|| anyhow::anyhow!("postmaster.pid has no pid"))?;
        let url = format!(
            "postgres://hub:{}@127.0.0.1:{}/hub",
            testing::PASSWORD,
            testing::server()
        );
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
        tokio::spawn(connection);
        client
            .batch_execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            .await?;
        Ok(Probe { client, postmaster })
    }

    /// Every PostgreSQL process's pid: the postmaster and its children.
    pub fn pids(&self) -> Vec<u32> {
        let mut out = vec![self.postmaster];
        out.extend(children(self.postmaster).into_iter().map(|(pid, _)| pid));
        out
    }

    /// Starts a phase: the statement counts from zero.
    pub async fn reset(&self) -> anyhow::Result<Counters> {
        self.client
            .execute("SELECT pg_stat_statements_reset()", &[])
            .await?;
        self.read().await
    }

    /// The totals now.
    pub async fn read(&self) -> anyhow::Result<Counters> {
        let row = self
            .client
            .query_one(
                "SELECT coalesce(sum(calls), 0)::int8, coalesce(sum(rows), 0)::int8,
                        pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::int8
                 FROM pg_stat_statements",
                &[],
            )
            .await?;
        Ok(Counters {
            cpu: cpu(self.postmaster),
            statements: row.get(0),
            rows: row.get(1),
            wal: row.get(2),
        })
    }

    /// The statements that took the most server time since the last reset.
    pub async fn top(&self, n: i64) -> anyhow::Result<Vec<Top>> {
        let rows = self
            .client
            .query(
                "SELECT regexp_replace(query, '\\s+', ' ', 'g'), calls, rows, total_exec_time
                 FROM pg_stat_statements WHERE query NOT LIKE '%pg_stat_statements%'
                 ORDER BY total_exec_time DESC LIMIT $1",
                &[&n],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| Top {
                query: r.get(0),
                calls: r.get(1),
                rows: r.get(2),
                ms: r.get(3),
            })
            .collect())
    }
}

/// `/proc/PID/stat`'s utime, stime, cutime, cstime (fields 14 to 17) and ppid (field 4).
fn stat(pid: u32) -> Option<(u32, [u64; 4])> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let n = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok());
    Some((n(1)? as u32, [n(11)?, n(12)?, n(13)?, n(14)?]))
}

fn children(parent: u32) -> Vec<(u32, [u64; 4])> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| Some((pid, stat(pid)?)))
        .filter(|(_, (ppid, _))| *ppid == parent)
        .map(|(pid, (_, t))| (pid, t))
        .collect()
}

/// All PostgreSQL CPU so far: the postmaster's own and its reaped children's, and each live
/// child's (USER_HZ is 100 on Linux).
fn cpu(postmaster: u32) -> Duration {
    let own = stat(postmaster).map_or(0, |(_, t)| t.iter().sum());
    let live: u64 = children(postmaster).iter().map(|(_, t)| t[0] + t[1]).sum();
    Duration::from_millis((own + live) * 10)
}

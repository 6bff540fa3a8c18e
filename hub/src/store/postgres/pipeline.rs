//! Statements sent together: tokio-postgres puts a request on the wire when its future is
//! first polled, so polling a list of them in order sends them back to back, and the server
//! runs them in that order on the one connection. A job's end is then a few round trips, not
//! one per statement (each is a wake-up of both processes on a busy machine).

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use deadpool_postgres::Transaction;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Row, Statement};

use super::super::Result;

/// One owned statement parameter.
pub(super) type Param = Box<dyn ToSql + Sync + Send>;

/// A statement with its parameters, to be sent with others.
pub(super) struct Op {
    pub(super) statement: Statement,
    pub(super) params: Vec<Param>,
}

impl Op {
    pub(super) fn new(statement: &Statement, params: Vec<Param>) -> Op {
        Op {
            statement: statement.clone(),
            params,
        }
    }
}

type Pending<'a, T> =
    Pin<Box<dyn Future<Output = std::result::Result<T, tokio_postgres::Error>> + Send + 'a>>;

/// Polls every future in list order until all are done; the first error ends it (the
/// transaction is then rolled back by its owner). List order on the first poll is send order.
async fn in_order<T>(mut pending: Vec<Pending<'_, T>>) -> Result<Vec<T>> {
    let mut done: Vec<Option<T>> = pending.iter().map(|_| None).collect();
    let mut left = pending.len();
    std::future::poll_fn(|cx| {
        for (future, out) in pending.iter_mut().zip(done.iter_mut()) {
            if out.is_some() {
                continue;
            }
            match future.as_mut().poll(cx) {
                Poll::Ready(Ok(v)) => {
                    *out = Some(v);
                    left -= 1;
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {}
            }
        }
        if left == 0 {
            Poll::Ready(Ok(()))
        } else {
            Poll::Pending
        }
    })
    .await?;
    Ok(done.into_iter().flatten().collect())
}

fn params(op: &Op) -> impl ExactSizeIterator<Item = &(dyn ToSql + Sync)> {
    op.params.iter().map(|p| p.as_ref() as &(dyn ToSql + Sync))
}

/// Runs `ops` back to back, then `query` (the next claim, say) behind them; `query`'s rows.
pub(super) async fn run(
    tx: &Transaction<'_>,
    ops: &[Op],
    query: Option<&Op>,
) -> Result<Option<Vec<Row>>> {
    let mut pending: Vec<Pending<'_, Option<Vec<Row>>>> = ops
        .iter()
        .map(|op| -> Pending<'_, Option<Vec<Row>>> {
            Box::pin(async move {
                tx.execute_raw(&op.statement, params(op)).await?;
                Ok(None)
            })
        })
        .collect();
    if let Some(op) = query {
        pending.push(Box::pin(async move {
            let rows = tx.query_raw(&op.statement, params(op)).await?;
            futures::TryStreamExt::try_collect(rows).await.map(Some)
        }));
    }
    Ok(in_order(pending).await?.into_iter().flatten().last())
}

/// Runs `queries` back to back; each one's rows.
pub(super) async fn all(tx: &Transaction<'_>, queries: &[Op]) -> Result<Vec<Vec<Row>>> {
    let pending: Vec<Pending<'_, Vec<Row>>> = queries
        .iter()
        .map(|op| -> Pending<'_, Vec<Row>> {
            Box::pin(async move {
                let rows = tx.query_raw(&op.statement, params(op)).await?;
                futures::TryStreamExt::try_collect(rows).await
            })
        })
        .collect();
    in_order(pending).await
}

//! The notification log: every emitted notification, appended in the transaction of the
//! change it reports, with a gapless offset ordered by commit.

use std::fmt::Write as _;

use sqlx::{AnyConnection, AnyExecutor, AssertSqlSafe, FromRow};

use super::Result;

/// A notification as stored in the log.
#[derive(Clone, Debug, FromRow, PartialEq)]
pub struct LoggedNotification {
    pub seq: i64,
    /// `NEW_RECORD`, `CHANGED_RECORD` or `DELETED_RECORD`.
    pub event: String,
    pub record_type: String,
    /// The Socket.IO payload as JSON, `offset` included.
    pub payload: String,
    /// The target rooms as a JSON array of room names.
    pub targets: String,
    /// The socket that must not receive it (the requester's, unless to-self).
    pub exclude_socket: Option<String>,
    pub created_at: String,
}

/// Take the next `count` offsets; returns the last. The counter row stays locked until the
/// transaction ends, so offsets are handed out in commit order and never skip.
pub async fn take_seqs(conn: &mut AnyConnection, count: i64) -> Result<i64> {
    Ok(sqlx::query_scalar("UPDATE counters SET value = value + $1 WHERE name = 'notification_seq' RETURNING value")
        .bind(count)
        .fetch_one(conn)
        .await?)
}

/// Rows of the log inserted by one statement (7 values each, well under either backend's
/// limit on bound values).
const ROWS_PER_INSERT: usize = 100;

/// Append entries to the log, a hundred rows a statement.
pub async fn append(conn: &mut AnyConnection, entries: &[LoggedNotification]) -> Result<()> {
    for chunk in entries.chunks(ROWS_PER_INSERT) {
        let mut sql = String::from(
            "INSERT INTO notification_log (seq, event, record_type, payload, targets, exclude_socket, created_at) VALUES ",
        );
        for row in 0..chunk.len() {
            let p = row * 7;
            let sep = if row == 0 { "" } else { ", " };
            write!(sql, "{sep}(${}, ${}, ${}, ${}, ${}, ${}, ${})", p + 1, p + 2, p + 3, p + 4, p + 5, p + 6, p + 7)
                .expect("writing to a String");
        }
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for n in chunk {
            query = query
                .bind(n.seq)
                .bind(&n.event)
                .bind(&n.record_type)
                .bind(&n.payload)
                .bind(&n.targets)
                .bind(&n.exclude_socket)
                .bind(&n.created_at);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

/// Up to `limit` logged notifications with an offset above `after`, in order.
pub async fn after<'c>(db: impl AnyExecutor<'c>, after: i64, limit: i64) -> Result<Vec<LoggedNotification>> {
    Ok(sqlx::query_as(
        "SELECT seq, event, record_type, payload, targets, exclude_socket, created_at \
         FROM notification_log WHERE seq > $1 ORDER BY seq LIMIT $2",
    )
    .bind(after)
    .bind(limit)
    .fetch_all(db)
    .await?)
}

/// A counter's value (`pruned_seq`, `notification_seq`).
pub async fn counter<'c>(db: impl AnyExecutor<'c>, name: &str) -> Result<i64> {
    Ok(sqlx::query_scalar("SELECT value FROM counters WHERE name = $1").bind(name).fetch_one(db).await?)
}

/// Remove entries beyond retention: all but the newest `keep` and those created before
/// `older_than`, but never one that a live node (one that recorded its position in `nodes`
/// at `live_since_ms` or later) has not emitted yet. Returns the highest offset pruned so far.
pub async fn prune(conn: &mut AnyConnection, keep: i64, older_than: &str, live_since_ms: i64) -> Result<i64> {
    let cutoff: Option<i64> = sqlx::query_scalar(
        "SELECT MAX(seq) FROM notification_log \
         WHERE (seq <= (SELECT MAX(seq) FROM notification_log) - $1 OR created_at < $2) \
           AND seq <= (SELECT COALESCE(MIN(emitted_seq), 0) FROM nodes WHERE seen_at >= $3)",
    )
    .bind(keep)
    .bind(older_than)
    .bind(live_since_ms)
    .fetch_one(&mut *conn)
    .await?;
    if let Some(cutoff) = cutoff {
        sqlx::query("DELETE FROM notification_log WHERE seq <= $1").bind(cutoff).execute(&mut *conn).await?;
        sqlx::query("UPDATE counters SET value = $1 WHERE name = 'pruned_seq' AND value < $1")
            .bind(cutoff)
            .execute(&mut *conn)
            .await?;
    }
    counter(conn, "pruned_seq").await
}

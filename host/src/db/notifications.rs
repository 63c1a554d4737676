//! The notification log: every emitted notification, appended in the transaction of the
//! change it reports, with a gapless offset ordered by commit.

use sqlx::{AnyConnection, AnyExecutor, FromRow};

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

/// Take the next offset. The counter row stays locked until the transaction ends, so
/// offsets are handed out in commit order and never skip.
pub async fn next_seq(conn: &mut AnyConnection) -> Result<i64> {
    Ok(sqlx::query_scalar("UPDATE counters SET value = value + 1 WHERE name = 'notification_seq' RETURNING value")
        .fetch_one(conn)
        .await?)
}

pub async fn append(conn: &mut AnyConnection, n: &LoggedNotification) -> Result<()> {
    sqlx::query(
        "INSERT INTO notification_log (seq, event, record_type, payload, targets, exclude_socket, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(n.seq)
    .bind(&n.event)
    .bind(&n.record_type)
    .bind(&n.payload)
    .bind(&n.targets)
    .bind(&n.exclude_socket)
    .bind(&n.created_at)
    .execute(conn)
    .await?;
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

/// The highest offset in the log, or 0 when it is empty.
pub async fn last_seq<'c>(db: impl AnyExecutor<'c>) -> Result<i64> {
    Ok(sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM notification_log").fetch_one(db).await?)
}

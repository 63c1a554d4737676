//! What several servers on one PostgreSQL database share beyond the data: the channels that
//! wake them (`LISTEN`/`NOTIFY`), each node's emitted position, and the start-up lock.
//!
//! The log stays the one ordered source: a `NOTIFY` on [`LOG_CHANNEL`] only says "the log
//! grew up to this offset", sent by a trigger in the inserting transaction, so it is delivered
//! at its commit and never for a rollback. [`CONTROL_CHANNEL`] carries the small commands of
//! `crate::cluster` (disconnect a session, move a user's sockets, serve a plugin version), also
//! sent inside the transaction of the change they follow. On SQLite (one node) both are no-ops.

use sqlx::postgres::PgListener;
use sqlx::{AnyConnection, AnyExecutor};

use super::{Dialect, Result};

/// Wakes every node's emitter; the payload is the highest offset inserted.
pub const LOG_CHANNEL: &str = "tidings_log";
/// Carries control commands between nodes (JSON, see `crate::cluster`).
pub const CONTROL_CHANNEL: &str = "tidings_control";

/// The session-level advisory lock held while a node migrates and prepares the schema, so
/// that nodes started at the same moment take turns ("TIDSTART" in ASCII).
pub(super) const START_LOCK_KEY: i64 = 0x5449_4453_5441_5254;

/// Create (or update) the trigger that sends [`LOG_CHANNEL`] for every insert into the log.
/// PostgreSQL only; run under the start-up lock.
pub(super) async fn install_log_trigger(conn: &mut AnyConnection) -> Result<()> {
    sqlx::query(
        "CREATE OR REPLACE FUNCTION tidings_log_notify() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN \
           PERFORM pg_notify('tidings_log', (SELECT MAX(seq) FROM inserted)::text); \
           RETURN NULL; \
         END $$",
    )
    .execute(&mut *conn)
    .await?;
    let exists: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM pg_trigger WHERE tgname = 'tidings_log_notify'")
        .fetch_one(&mut *conn)
        .await?;
    if exists == 0 {
        sqlx::query(
            "CREATE TRIGGER tidings_log_notify AFTER INSERT ON notification_log \
             REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT EXECUTE FUNCTION tidings_log_notify()",
        )
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Send a control command to every node, delivered when the transaction `conn` is in commits
/// (at once outside one). Nothing on SQLite.
pub async fn send_control(conn: &mut AnyConnection, dialect: Dialect, payload: &str) -> Result<()> {
    if dialect == Dialect::Postgres {
        sqlx::query("SELECT pg_notify($1, $2)").bind(CONTROL_CHANNEL).bind(payload).execute(conn).await?;
    }
    Ok(())
}

/// A connection listening on [`LOG_CHANNEL`] and [`CONTROL_CHANNEL`].
pub async fn listen(url: &str) -> Result<PgListener> {
    let mut listener = PgListener::connect(url).await?;
    listener.listen_all([LOG_CHANNEL, CONTROL_CHANNEL]).await?;
    Ok(listener)
}

/// Record that node `node` has emitted everything up to `emitted` (at `now_ms`).
pub async fn record_position<'c>(db: impl AnyExecutor<'c>, node: &str, emitted: i64, now_ms: i64) -> Result<()> {
    sqlx::query(
        "INSERT INTO nodes (id, emitted_seq, seen_at) VALUES ($1, $2, $3) \
         ON CONFLICT (id) DO UPDATE SET emitted_seq = $2, seen_at = $3",
    )
    .bind(node)
    .bind(emitted)
    .bind(now_ms)
    .execute(db)
    .await?;
    Ok(())
}

/// Forget the nodes not seen since `seen_before_ms` (stopped or dead).
pub async fn forget_nodes<'c>(db: impl AnyExecutor<'c>, seen_before_ms: i64) -> Result<()> {
    sqlx::query("DELETE FROM nodes WHERE seen_at < $1").bind(seen_before_ms).execute(db).await?;
    Ok(())
}

//! Background tasks that plugins asked for: stored in the transaction of the request that
//! asked, removed in the transaction of the run that completes them. A node claims a task for
//! a lease before it runs it, so that nodes sharing a database run each task once.

use sqlx::{AnyConnection, AnyExecutor, FromRow};

use super::Result;

#[derive(Clone, Debug, FromRow, PartialEq)]
pub struct StoredTask {
    pub id: String,
    /// The plugin's name; the version serving when the task runs runs it.
    pub plugin: String,
    pub name: String,
    pub input: String,
    /// Attempts started so far, counted before each run, so a crash counts too.
    pub attempts: i64,
    pub last_error: Option<String>,
    pub created_at: String,
}

pub async fn insert(conn: &mut AnyConnection, task: &StoredTask) -> Result<()> {
    sqlx::query(
        "INSERT INTO tasks (id, plugin, name, input, attempts, last_error, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&task.id)
    .bind(&task.plugin)
    .bind(&task.name)
    .bind(&task.input)
    .bind(task.attempts)
    .bind(&task.last_error)
    .bind(&task.created_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// The oldest tasks still to run that no node holds a claim on at `now_ms`.
pub async fn pending<'c>(db: impl AnyExecutor<'c>, limit: i64, now_ms: i64) -> Result<Vec<StoredTask>> {
    Ok(sqlx::query_as(
        "SELECT id, plugin, name, input, attempts, last_error, created_at FROM tasks \
         WHERE claimed_until IS NULL OR claimed_until < $2 ORDER BY created_at, id LIMIT $1",
    )
    .bind(limit)
    .bind(now_ms)
    .fetch_all(db)
    .await?)
}

/// Claim a task until `until_ms` and count an attempt as started; returns the new count, or
/// `None` when another node holds a claim on it at `now_ms` or it is gone. One statement, so
/// of nodes claiming at once exactly one gets it: PostgreSQL re-checks the condition of a row
/// another transaction updated, and SQLite has one writer.
pub async fn claim<'c>(db: impl AnyExecutor<'c>, id: &str, now_ms: i64, until_ms: i64) -> Result<Option<i64>> {
    Ok(sqlx::query_scalar(
        "UPDATE tasks SET attempts = attempts + 1, claimed_until = $3 \
         WHERE id = $1 AND (claimed_until IS NULL OR claimed_until < $2) RETURNING attempts",
    )
    .bind(id)
    .bind(now_ms)
    .bind(until_ms)
    .fetch_optional(db)
    .await?)
}

/// Drop every claim: at the start of a server that is alone on its database (SQLite), whose
/// claims were the previous run's.
pub async fn release_all<'c>(db: impl AnyExecutor<'c>) -> Result<()> {
    sqlx::query("UPDATE tasks SET claimed_until = NULL WHERE claimed_until IS NOT NULL").execute(db).await?;
    Ok(())
}

/// Record why an attempt failed and release the claim, so that any node tries again.
pub async fn record_error<'c>(db: impl AnyExecutor<'c>, id: &str, error: &str) -> Result<()> {
    sqlx::query("UPDATE tasks SET last_error = $2, claimed_until = NULL WHERE id = $1")
        .bind(id)
        .bind(error)
        .execute(db)
        .await?;
    Ok(())
}

/// Remove a task; `false` when it was gone already.
pub async fn remove<'c>(db: impl AnyExecutor<'c>, id: &str) -> Result<bool> {
    Ok(sqlx::query("DELETE FROM tasks WHERE id = $1").bind(id).execute(db).await?.rows_affected() == 1)
}

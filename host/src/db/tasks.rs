//! Background tasks that plugins asked for: stored in the transaction of the request that
//! asked, removed in the transaction of the run that completes them.

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

/// The oldest tasks still to run.
pub async fn pending<'c>(db: impl AnyExecutor<'c>, limit: i64) -> Result<Vec<StoredTask>> {
    Ok(sqlx::query_as(
        "SELECT id, plugin, name, input, attempts, last_error, created_at FROM tasks \
         ORDER BY created_at, id LIMIT $1",
    )
    .bind(limit)
    .fetch_all(db)
    .await?)
}

/// Count an attempt as started; returns the new count.
pub async fn start_attempt<'c>(db: impl AnyExecutor<'c>, id: &str) -> Result<i64> {
    Ok(sqlx::query_scalar("UPDATE tasks SET attempts = attempts + 1 WHERE id = $1 RETURNING attempts")
        .bind(id)
        .fetch_one(db)
        .await?)
}

pub async fn record_error<'c>(db: impl AnyExecutor<'c>, id: &str, error: &str) -> Result<()> {
    sqlx::query("UPDATE tasks SET last_error = $2 WHERE id = $1").bind(id).bind(error).execute(db).await?;
    Ok(())
}

/// Remove a task; `false` when it was gone already.
pub async fn remove<'c>(db: impl AnyExecutor<'c>, id: &str) -> Result<bool> {
    Ok(sqlx::query("DELETE FROM tasks WHERE id = $1").bind(id).execute(db).await?.rows_affected() == 1)
}

//! Sessions: server-side login sessions, looked up by the hash of the cookie token.

use sqlx::{AnyExecutor, FromRow};

use super::Result;
use super::users::UserRow;

/// A live session joined with its user.
#[derive(Clone, Debug, FromRow)]
pub struct SessionRow {
    pub session_id: String,
    pub session_created_at: String,
    pub expires_at: String,
    pub last_seen_at: String,
    #[sqlx(flatten)]
    pub user: UserRow,
}

pub async fn insert<'c>(
    db: impl AnyExecutor<'c>,
    id: &str,
    token_hash: &str,
    user_id: &str,
    now: &str,
    expires_at: &str,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO sessions (id, token_hash, user_id, created_at, last_seen_at, expires_at) \
         VALUES ($1, $2, $3, $4, $4, $5)",
    )
    .bind(id)
    .bind(token_hash)
    .bind(user_id)
    .bind(now)
    .bind(expires_at)
    .execute(db)
    .await?;
    Ok(())
}

/// The session whose token hashes to `token_hash`, if it has not expired at `now`.
pub async fn by_token_hash<'c>(db: impl AnyExecutor<'c>, token_hash: &str, now: &str) -> Result<Option<SessionRow>> {
    Ok(sqlx::query_as(
        "SELECT s.id AS session_id, s.created_at AS session_created_at, s.expires_at, s.last_seen_at, \
                u.id, u.email, u.first_name, u.last_name, u.role, u.created_at, u.updated_at \
         FROM sessions s JOIN users u ON u.id = s.user_id \
         WHERE s.token_hash = $1 AND s.expires_at > $2",
    )
    .bind(token_hash)
    .bind(now)
    .fetch_optional(db)
    .await?)
}

/// Record activity, sliding the idle expiry forward (never past `absolute_expiry`).
pub async fn touch<'c>(db: impl AnyExecutor<'c>, session_id: &str, now: &str, expires_at: &str) -> Result<()> {
    sqlx::query("UPDATE sessions SET last_seen_at = $2, expires_at = $3 WHERE id = $1")
        .bind(session_id)
        .bind(now)
        .bind(expires_at)
        .execute(db)
        .await?;
    Ok(())
}

/// Delete a session; returns whether it existed.
pub async fn delete<'c>(db: impl AnyExecutor<'c>, session_id: &str) -> Result<bool> {
    let done = sqlx::query("DELETE FROM sessions WHERE id = $1").bind(session_id).execute(db).await?;
    Ok(done.rows_affected() > 0)
}

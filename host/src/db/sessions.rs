//! Sessions: server-side login sessions, looked up by the hash of the cookie token, and the
//! [`Cache`] of those recently looked up.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

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

/// Sessions recently read, by token hash, so that a client's requests do not each read the
/// sessions table. An entry serves until the time it was put with (when its activity is due to
/// be written back, or it expires), and only while nothing may have ended or changed a session
/// since it was read: [`Cache::forget_all`] (a logout, a role change, made here or heard from
/// another node) drops every entry, and an entry read before it is never kept.
///
/// When nodes share the database, a change made through another node reaches this one as a
/// command: entries serve only while this node hears them ([`Cache::trust`]).
#[derive(Debug)]
pub struct Cache {
    /// Bumped by every [`Cache::forget_all`].
    generation: AtomicU64,
    trusted: AtomicBool,
    entries: Mutex<HashMap<String, Cached>>,
}

#[derive(Debug)]
struct Cached {
    row: SessionRow,
    /// Serves while the time is before this (ISO 8601, as stored).
    until: String,
}

impl Cache {
    /// Most entries; a full cache is emptied.
    const CAPACITY: usize = 10_000;

    /// A cache whose entries serve from the start (one server alone on its database), or
    /// once [`Cache::trust`]ed.
    pub fn new(trusted: bool) -> Cache {
        Cache { generation: AtomicU64::new(0), trusted: AtomicBool::new(trusted), entries: Mutex::default() }
    }

    /// Take before reading a session, and pass to [`Cache::put`].
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The session of `token_hash`, if it was read lately and serves at `now`.
    /// Nothing is kept while untrusted ([`Cache::put`], [`Cache::trust`]).
    pub fn get(&self, token_hash: &str, now: &str) -> Option<SessionRow> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.get(token_hash).filter(|cached| now < cached.until.as_str()).map(|cached| cached.row.clone())
    }

    /// Keep `row`, read after [`Cache::generation`] gave `generation`, to serve until `until`;
    /// nothing if a session may have changed since.
    pub fn put(&self, token_hash: String, row: SessionRow, generation: u64, until: String) {
        if !self.trusted.load(Ordering::Acquire) {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        // Under the lock, which `forget_all` takes after bumping: a later bump empties the map.
        if self.generation() != generation {
            return;
        }
        if entries.len() >= Self::CAPACITY {
            entries.clear();
        }
        entries.insert(token_hash, Cached { row, until });
    }

    /// A session may have ended or changed: read every session again.
    pub fn forget_all(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.entries.lock().unwrap_or_else(PoisonError::into_inner).clear();
    }

    /// Whether changes made through other nodes are heard; a node that did not hear them
    /// forgets what it read.
    pub fn trust(&self, trusted: bool) {
        self.trusted.store(false, Ordering::Release);
        self.forget_all();
        self.trusted.store(trusted, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(role: &str) -> SessionRow {
        SessionRow {
            session_id: "s1".into(),
            session_created_at: "2026-12-07T10:00:00.000Z".into(),
            expires_at: "2026-12-14T10:00:00.000Z".into(),
            last_seen_at: "2026-12-07T10:00:00.000Z".into(),
            user: UserRow {
                id: "u1".into(),
                email: "ada@example.com".into(),
                first_name: String::new(),
                last_name: String::new(),
                role: role.into(),
                created_at: "2026-12-07T10:00:00.000Z".into(),
                updated_at: "2026-12-07T10:00:00.000Z".into(),
            },
        }
    }

    const UNTIL: &str = "2026-12-07T10:01:00.000Z";

    #[test]
    fn an_entry_serves_until_its_time() {
        let cache = Cache::new(true);
        cache.put("h".into(), row("USER"), cache.generation(), UNTIL.into());
        assert_eq!(cache.get("h", "2026-12-07T10:00:59.999Z").map(|r| r.user.role), Some("USER".into()));
        assert!(cache.get("h", UNTIL).is_none());
        assert!(cache.get("other", "2026-12-07T10:00:30.000Z").is_none());
    }

    #[test]
    fn what_was_read_before_a_change_is_not_kept() {
        let cache = Cache::new(true);
        cache.put("h".into(), row("ADMIN"), cache.generation(), UNTIL.into());
        // A request reads the session, a role change commits and forgets, the request puts.
        let read_at = cache.generation();
        cache.forget_all();
        assert!(cache.get("h", "2026-12-07T10:00:30.000Z").is_none(), "forgotten");
        cache.put("h".into(), row("ADMIN"), read_at, UNTIL.into());
        assert!(cache.get("h", "2026-12-07T10:00:30.000Z").is_none(), "a stale read is not kept");
        cache.put("h".into(), row("USER"), cache.generation(), UNTIL.into());
        assert_eq!(cache.get("h", "2026-12-07T10:00:30.000Z").map(|r| r.user.role), Some("USER".into()));
    }

    #[test]
    fn nothing_serves_while_changes_elsewhere_may_be_missed() {
        let cache = Cache::new(false);
        cache.put("h".into(), row("USER"), cache.generation(), UNTIL.into());
        assert!(cache.get("h", "2026-12-07T10:00:30.000Z").is_none(), "not trusted yet");
        cache.trust(true);
        cache.put("h".into(), row("USER"), cache.generation(), UNTIL.into());
        assert!(cache.get("h", "2026-12-07T10:00:30.000Z").is_some());
        cache.trust(false);
        assert!(cache.get("h", "2026-12-07T10:00:30.000Z").is_none(), "no longer trusted");
        cache.trust(true);
        assert!(cache.get("h", "2026-12-07T10:00:30.000Z").is_none(), "what was kept before is forgotten");
    }
}

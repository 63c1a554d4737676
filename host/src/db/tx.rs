//! [`Tx`]: a transaction on a pooled connection that can keep its connection when it ends.

use std::ops::{Deref, DerefMut};

use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, Database};
use sqlx_core::transaction::TransactionManager;

/// sqlx's transaction bookkeeping for `Any` connections, as its `Transaction` does it (the
/// trait is in `sqlx-core`; `sqlx` does not export it).
type Manager = <Any as Database>::TransactionManager;

/// A database transaction on either backend, on a connection of one of [`super::Db`]'s pools.
///
/// It behaves like sqlx's `Transaction`: statements run on `&mut *tx`, and a transaction
/// dropped before [`Tx::commit`] or [`Tx::rollback`] is rolled back. Unlike it, a transaction
/// can end and keep its connection ([`Tx::commit_keeping`], [`Tx::rollback_keeping`]) for the
/// next one: a connection that goes back to its pool is first checked in a task of its own (a
/// round trip to the database), and a writer that begins again at once waits for that.
pub struct Tx {
    /// `None` only once the transaction has ended and given its connection away.
    conn: Option<PoolConnection<Any>>,
    open: bool,
}

impl Tx {
    /// Begin a transaction on `conn` with `statement` (such as `BEGIN IMMEDIATE`).
    pub(super) async fn begin(conn: PoolConnection<Any>, statement: &'static str) -> Result<Tx, sqlx::Error> {
        // Open from the start, as sqlx's: should `begin` fail halfway, dropping it rolls back.
        let mut tx = Tx { conn: Some(conn), open: true };
        Manager::begin(&mut tx, Some(sqlx::SqlSafeStr::into_sql_str(statement))).await?;
        Ok(tx)
    }

    /// Commit; the connection goes back to its pool.
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        self.commit_keeping().await.map(drop)
    }

    /// Roll back; the connection goes back to its pool.
    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        self.rollback_keeping().await.map(drop)
    }

    /// Commit, and hand back the connection for another transaction.
    pub async fn commit_keeping(mut self) -> Result<PoolConnection<Any>, sqlx::Error> {
        Manager::commit(&mut self).await?;
        Ok(self.end())
    }

    /// Roll back, and hand back the connection for another transaction.
    pub async fn rollback_keeping(mut self) -> Result<PoolConnection<Any>, sqlx::Error> {
        Manager::rollback(&mut self).await?;
        Ok(self.end())
    }

    fn end(mut self) -> PoolConnection<Any> {
        self.open = false;
        self.conn.take().expect("a transaction holds its connection until it ends")
    }
}

impl Deref for Tx {
    type Target = AnyConnection;

    fn deref(&self) -> &AnyConnection {
        self.conn.as_ref().expect("a transaction holds its connection until it ends")
    }
}

impl DerefMut for Tx {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        self.conn.as_mut().expect("a transaction holds its connection until it ends")
    }
}

impl Drop for Tx {
    fn drop(&mut self) {
        if self.open
            && let Some(conn) = &mut self.conn
        {
            // Queued: it runs before anything else on the connection, also before the pool
            // takes the connection back.
            Manager::start_rollback(conn);
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::db::Db;

    async fn count(db: &Db) -> i64 {
        sqlx::query_scalar("SELECT COUNT(*) FROM counters WHERE name LIKE 'tx-test-%'")
            .fetch_one(&db.pool)
            .await
            .unwrap()
    }

    async fn insert(tx: &mut super::Tx, name: &str) {
        sqlx::query("INSERT INTO counters (name, value) VALUES ($1, 0)").bind(name).execute(&mut **tx).await.unwrap();
    }

    /// A transaction that ends keeping its connection leaves it ready for the next one on the
    /// same connection; one dropped unended writes nothing and frees the writers' connection.
    #[tokio::test]
    async fn a_kept_connection_begins_again_and_a_dropped_transaction_rolls_back() {
        let dir = std::env::temp_dir().join(format!("tidings-tx-{}", uuid::Uuid::new_v4()));
        let db = Db::connect(None, &dir).await.unwrap();

        let mut tx = db.begin_write().await.unwrap();
        insert(&mut tx, "tx-test-1").await;
        let conn = tx.commit_keeping().await.unwrap();
        let mut tx = db.begin_write_on(Some(conn)).await.unwrap();
        insert(&mut tx, "tx-test-2").await;
        let conn = tx.rollback_keeping().await.unwrap();
        let mut tx = db.begin_write_on(Some(conn)).await.unwrap();
        insert(&mut tx, "tx-test-3").await;
        drop(tx);
        assert_eq!(count(&db).await, 1);

        // The writers' pool has one connection: it came back, without the dropped write.
        let mut tx = db.begin_write().await.unwrap();
        insert(&mut tx, "tx-test-3").await;
        tx.commit().await.unwrap();
        assert_eq!(count(&db).await, 2);
        std::fs::remove_dir_all(&dir).ok();
    }
}

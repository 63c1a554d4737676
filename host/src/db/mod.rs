//! The data layer: one API over two backends (SQLite by default, PostgreSQL for scale).
//!
//! Only this module contains SQL. Each submodule is one aggregate (`users`, `sessions`,
//! `records`, `notifications`) of free functions taking a connection or transaction. The
//! SQL is portable except where [`Dialect`] says otherwise (JSON field access in `records`).

pub mod cluster;
pub mod notifications;
pub mod plugins;
pub mod records;
pub mod sessions;
pub mod tasks;
mod tx;
pub mod users;

use std::path::Path;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::migrate::Migrator;
use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, AnyPool, Connection, Executor};

pub use tx::Tx;

/// The embedded migrations (`/migrations`), shared by both backends.
pub static MIGRATOR: Migrator = sqlx::migrate!("../migrations");

/// The PostgreSQL advisory lock that serializes writing transactions ("TIDINGS" in ASCII).
const WRITE_LOCK_KEY: i64 = 0x0054_4944_494e_4753;

/// Errors of the data layer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("database error: {0}")]
    Sqlx(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("{0} already exists")]
    Conflict(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

impl Error {
    /// Whether retrying the whole transaction may succeed (a serialization failure on
    /// PostgreSQL, a busy database on SQLite).
    pub fn is_transient(&self) -> bool {
        let Error::Sqlx(sqlx::Error::Database(db)) = self else { return false };
        matches!(db.code().as_deref(), Some("40001" | "40P01" | "5" | "517" | "6"))
    }

    /// Whether the database refused a value as too large for an index (PostgreSQL's btree
    /// rows are limited to about 2.7 KB): the input's fault, not the host's.
    pub fn is_value_too_large(&self) -> bool {
        let Error::Sqlx(sqlx::Error::Database(db)) = self else { return false };
        db.code().as_deref() == Some("54000")
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The SQL dialect of the connected backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// A connection pool plus what the queries need to know about its backend. Cheap to clone: one
/// reference count, however many handles it holds (requests and plugin calls clone it).
#[derive(Clone, Debug)]
pub struct Db(Arc<Shared>);

/// What a [`Db`] shares among its clones.
#[derive(Debug)]
pub struct Shared {
    pub pool: AnyPool,
    /// Where writing transactions run ([`Db::begin_write`]): on SQLite a pool of one
    /// connection, on PostgreSQL the same pool as [`Db::pool`].
    writer: AnyPool,
    pub dialect: Dialect,
    /// The element-indexed array fields, by record type.
    pub elements: records::ElementFields,
    /// How far PostgreSQL's statistics of the records lag behind ([`records::wrote`]).
    analyzed: records::Analyzed,
    /// This server's id among the nodes sharing the database (a fresh UUID per start).
    pub node: String,
    /// The PostgreSQL URL, for the connection that listens to the other nodes.
    listen_url: Option<String>,
    /// Sessions recently read (`sessions::authenticate`). Alone on SQLite, a server makes
    /// every change itself; on PostgreSQL, they serve while `cluster` hears the other nodes.
    pub sessions: sessions::Cache,
    /// Readers kept out of the pool between calls run ahead of their turn ([`Db::keep_reader`]).
    kept_readers: Mutex<Vec<PoolConnection<Any>>>,
}

impl std::ops::Deref for Db {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl Db {
    /// Open the SQLite database in `data_dir` (creating it) or the PostgreSQL database at
    /// `url`, and run the migrations.
    pub async fn connect(url: Option<&str>, data_dir: &Path) -> Result<Db> {
        sqlx::any::install_default_drivers();
        let (url, dialect) = match url {
            Some(url) if url.starts_with("postgres:") || url.starts_with("postgresql:") => {
                (url.to_owned(), Dialect::Postgres)
            }
            Some(url) if url.starts_with("sqlite:") => (url.to_owned(), Dialect::Sqlite),
            Some(other) => {
                return Err(Error::Sqlx(sqlx::Error::Configuration(
                    format!("unsupported database URL {other:?}: use postgres:// or sqlite://").into(),
                )));
            }
            None => {
                std::fs::create_dir_all(data_dir).map_err(|e| Error::Sqlx(sqlx::Error::Io(e)))?;
                let path = data_dir.join("tidings.db");
                (format!("sqlite://{}?mode=rwc", path.display()), Dialect::Sqlite)
            }
        };
        let options = AnyConnectOptions::from_str(&url)?;
        let (pool, writer) = match dialect {
            Dialect::Sqlite => {
                // Readers share a pool; writers take turns on one connection of their own.
                // Its page cache stays warm from one transaction to the next (no other
                // connection writes in between), and a writer waiting for the lock waits in
                // the pool's queue, woken as soon as it is free, instead of sleeping in
                // SQLite's busy handler.
                let pool = sqlite_pool(SQLITE_READERS).connect_with(options.clone()).await?;
                let writer = sqlite_pool(1).connect_with(options).await?;
                (pool, writer)
            }
            Dialect::Postgres => {
                let pool = AnyPoolOptions::new()
                    .max_connections(16)
                    .acquire_timeout(Duration::from_secs(10))
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            // sqlx prepares each statement once per connection, and after five
                            // runs PostgreSQL may switch to a plan made without the values.
                            // For a record query on a field that plan can be a scan of every
                            // record of the type in `id` order (its partial index looks no
                            // cheaper without the value, all the more on statistics taken
                            // when the table was small): a lookup that takes milliseconds
                            // per thousand records. Plan every run with its values instead.
                            conn.execute("SET plan_cache_mode = force_custom_plan").await?;
                            Ok(())
                        })
                    })
                    .connect_with(options)
                    .await?;
                (pool.clone(), pool)
            }
        };
        let db = Db(Arc::new(Shared {
            pool,
            writer,
            dialect,
            elements: records::ElementFields::default(),
            analyzed: records::Analyzed::default(),
            node: uuid::Uuid::new_v4().to_string(),
            listen_url: (dialect == Dialect::Postgres).then_some(url),
            sessions: sessions::Cache::new(dialect == Dialect::Sqlite),
            kept_readers: Mutex::default(),
        }));
        match dialect {
            Dialect::Sqlite => MIGRATOR.run(&db.writer).await?,
            Dialect::Postgres => {
                // Nodes started at the same moment take turns: the first migrates, the others
                // find the schema current.
                let mut conn = db.pool.acquire().await?.detach();
                let prepared = under_start_lock(&mut conn).await;
                // Closing the connection releases the lock whatever happened.
                conn.close().await.ok();
                prepared?;
                warn_unless_bytewise(&db.pool).await?;
            }
        }
        Ok(db)
    }

    /// The URL to listen to the other nodes on: PostgreSQL only (on SQLite a server is alone).
    pub fn listen_url(&self) -> Option<&str> {
        self.listen_url.as_deref()
    }

    /// Begin a transaction for a request that may write. Writers are serialized: on SQLite
    /// by `BEGIN IMMEDIATE` (the write lock up front, so a read-then-write never fails
    /// halfway), on PostgreSQL by a transaction-scoped advisory lock taken before any read.
    /// A plugin therefore reads the state as of every earlier commit, and its checks (such
    /// as "this name is free") still hold when its writes land. Readers never wait.
    pub async fn begin_write(&self) -> Result<Tx> {
        self.begin_write_on(None).await
    }

    /// [`Db::begin_write`] on `conn`, a connection of the writers' pool that an earlier
    /// transaction kept ([`Tx::commit_keeping`]), or on one from the pool.
    pub async fn begin_write_on(&self, conn: Option<PoolConnection<Any>>) -> Result<Tx> {
        let conn = match conn {
            Some(conn) => conn,
            None => self.writer.acquire().await?,
        };
        Ok(match self.dialect {
            Dialect::Sqlite => Tx::begin(conn, "BEGIN IMMEDIATE").await?,
            Dialect::Postgres => {
                let mut tx = Tx::begin(conn, "BEGIN").await?;
                sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(WRITE_LOCK_KEY).execute(&mut *tx).await?;
                tx
            }
        })
    }

    /// Begin a read-only transaction: one consistent snapshot for a GET.
    pub async fn begin_read(&self) -> Result<Tx> {
        let conn = self.pool.acquire().await?;
        Ok(match self.dialect {
            Dialect::Sqlite => Tx::begin(conn, "BEGIN").await?,
            Dialect::Postgres => Tx::begin(conn, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY").await?,
        })
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}

/// Readers in SQLite's pool. Besides GETs and session lookups, a write on a busy server runs
/// its plugin call ahead on a reader when one is free (`pipeline.rs`). Sixteen let more calls
/// run ahead (78 % at C = 32 against 44 %; on a later VM 90–92 % against 82 %) but measured no
/// faster, and slower at C = 1 (BENCHMARKS.md): eight.
const SQLITE_READERS: u32 = 8;

/// Most readers [`Db::keep_reader`] keeps: half of SQLite's pool, so that GETs and session
/// lookups always find readers in it.
const KEPT_READERS: usize = SQLITE_READERS as usize / 2;

impl Db {
    /// A reader connection if one is free now: one kept by [`Db::keep_reader`], else one from
    /// the pool.
    pub fn try_reader(&self) -> Option<PoolConnection<Any>> {
        let kept = self.kept_readers.lock().unwrap_or_else(|p| p.into_inner()).pop();
        kept.or_else(|| self.pool.try_acquire())
    }

    /// On SQLite, keep a reader that is idle (every statement on it finished, no transaction
    /// open) for the next [`Db::try_reader`], while writes keep coming. Returned to the pool,
    /// sqlx checks a connection with a round trip, on SQLite a hop to the connection's worker
    /// thread and back, which a busy pipeline would pay once per write; [`Db::release_readers`]
    /// gives them back once it is idle. On PostgreSQL (where the check is a round trip to the
    /// server) keeping them measured no faster, so they go back to the pool.
    pub fn keep_reader(&self, reader: PoolConnection<Any>) {
        if self.dialect != Dialect::Sqlite {
            return;
        }
        let mut kept = self.kept_readers.lock().unwrap_or_else(|p| p.into_inner());
        if kept.len() < KEPT_READERS {
            kept.push(reader);
        }
    }

    /// Return the readers [`Db::keep_reader`] kept to the pool.
    pub fn release_readers(&self) {
        let kept = std::mem::take(&mut *self.kept_readers.lock().unwrap_or_else(|p| p.into_inner()));
        drop(kept);
    }
}

/// The options of a pool of SQLite connections.
fn sqlite_pool(max_connections: u32) -> AnyPoolOptions {
    AnyPoolOptions::new()
        .max_connections(max_connections)
        // An embedded database cannot drop a connection; the ping before each acquire would
        // only cost a round trip to the connection's worker thread.
        .test_before_acquire(false)
        .after_connect(|conn, _| {
            Box::pin(async move {
                // WAL lets readers run beside the one writer; FULL syncs the WAL on every
                // commit, so an acknowledged write survives a power loss. Pages are read
                // through a memory map rather than copied by a read call each.
                conn.execute(
                    "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
                     PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000; \
                     PRAGMA mmap_size = 268435456;",
                )
                .await?;
                Ok(())
            })
        })
}

/// Migrate and prepare the schema holding [`cluster::START_LOCK_KEY`] on `conn`.
async fn under_start_lock(conn: &mut AnyConnection) -> Result<()> {
    sqlx::query("SELECT pg_advisory_lock($1)").bind(cluster::START_LOCK_KEY).execute(&mut *conn).await?;
    MIGRATOR.run(&mut *conn).await?;
    records::ensure_id_index(&mut *conn).await?;
    cluster::install_log_trigger(conn).await?;
    sqlx::query("SELECT pg_advisory_unlock($1)").bind(cluster::START_LOCK_KEY).execute(&mut *conn).await?;
    Ok(())
}

/// Text inside records orders in the database's collation on PostgreSQL (jsonb takes no
/// `COLLATE`); SQLite orders it by bytes. Say so when the two differ.
async fn warn_unless_bytewise(pool: &AnyPool) -> Result<()> {
    let collation: String =
        sqlx::query_scalar("SELECT datcollate::text FROM pg_database WHERE datname = current_database()")
            .fetch_one(pool)
            .await?;
    if !matches!(collation.as_str(), "C" | "POSIX" | "C.UTF-8" | "C.utf8" | "ucs_basic") {
        tracing::warn!(
            collation,
            "the database's collation is not bytewise: text fields of records order differently than on SQLite \
             (create the database with LC_COLLATE C or C.UTF-8; see docs/operating.md)"
        );
    }
    Ok(())
}

/// What `tidings db check` found.
#[derive(Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Check {
    /// SQLite's `PRAGMA integrity_check` answer (`ok`), or `n/a` on PostgreSQL.
    pub integrity: String,
    pub records: i64,
    pub notifications: i64,
    /// The offset counter equals the newest logged offset (or everything was pruned).
    pub offsets_consistent: bool,
    /// Offsets in the log have no gaps.
    pub offsets_gapless: bool,
}

impl Db {
    /// Check the database: storage integrity and the notification log's bookkeeping.
    pub async fn check(&self) -> Result<Check> {
        let integrity = match self.dialect {
            Dialect::Sqlite => sqlx::query_scalar("PRAGMA integrity_check").fetch_one(&self.pool).await?,
            Dialect::Postgres => "n/a".to_owned(),
        };
        let records: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM records").fetch_one(&self.pool).await?;
        let (notifications, min, max): (i64, Option<i64>, Option<i64>) =
            sqlx::query_as("SELECT COUNT(*), MIN(seq), MAX(seq) FROM notification_log").fetch_one(&self.pool).await?;
        let seq = notifications::counter(&self.pool, "notification_seq").await?;
        let pruned = notifications::counter(&self.pool, "pruned_seq").await?;
        Ok(Check {
            integrity,
            records,
            notifications,
            offsets_consistent: max.map_or(seq == pruned || notifications == 0, |max| max == seq),
            offsets_gapless: match (min, max) {
                (Some(min), Some(max)) => max - min + 1 == notifications,
                _ => true,
            },
        })
    }
}

/// Map a unique-constraint violation to [`Error::Conflict`] naming `what`.
pub(crate) fn conflict_on_unique(err: sqlx::Error, what: &str) -> Error {
    if let sqlx::Error::Database(db) = &err
        && db.is_unique_violation()
    {
        return Error::Conflict(what.to_owned());
    }
    Error::Sqlx(err)
}

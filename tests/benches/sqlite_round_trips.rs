//! What sqlx's worker thread costs the write path on SQLite: the committer's transaction for
//! one department create (`BEGIN IMMEDIATE`, the name check, the insert, the offset counter,
//! the log insert, `COMMIT`), run in turn
//!
//! - through the host's own [`Db`] and the committer's own calls (`records::find`,
//!   `records::apply`, `notifications::take_seqs`, `notifications::append`) on the writers'
//!   connection, kept from one transaction to the next as the committer keeps it: sqlx's
//!   `Any` driver, each statement a round trip to the connection's worker thread; and
//! - on the calling thread, with rusqlite on the same database file (the SQL those calls run,
//!   its statements prepared once, the same `journal_mode = WAL` and `synchronous = FULL`).
//!
//! At the end it checks that every create left a record, a log entry and an offset.
//!
//! Each round reports transactions a second, wall-clock time, the process's CPU time and its
//! threads' context switches per transaction. The rounds alternate, so the machine's noise
//! falls on both. The database is the host's (its migrations, fresh per run, in `$TMPDIR`).
//!
//! ```text
//! cargo bench -p integration-tests --bench sqlite_round_trips [-- --rounds 3 --transactions 2000]
//! ```

use std::time::Instant;

use host::db::Db;
use host::db::notifications::{self, LoggedNotification};
use host::db::records::{self, Condition, Op, Query, Value, Write};
use integration_tests::TempDir;
use sqlx::Any;
use sqlx::pool::PoolConnection;

// The SQL the host's functions run for these (`RUST_LOG=sqlx::query=debug` shows it): the
// rusqlite side runs the same text, the sqlx side calls the functions themselves.
/// `records::find` for the plugin's name check (`Query::new(DEPARTMENT).eq("name", name)`).
const FIND: &str = "SELECT record_type, id, data, version, created_at, updated_at FROM records \
                    WHERE record_type = 'DEPARTMENT' AND json_extract(data, '$.name') = $1 ORDER BY id ASC";
/// `records::apply` of a new record.
const INSERT: &str = "INSERT INTO records (record_type, id, data, version, created_at, updated_at) \
                      VALUES ($1, $2, $3, 1, $4, $4) ON CONFLICT (record_type, id) DO NOTHING";
/// `notifications::take_seqs`.
const TAKE_SEQ: &str = "UPDATE counters SET value = value + $1 WHERE name = 'notification_seq' RETURNING value";
/// `notifications::append` of one entry.
const LOG: &str = "INSERT INTO notification_log (seq, event, record_type, payload, targets, exclude_socket, created_at) \
                   VALUES ($1, $2, $3, $4, $5, $6, $7)";
const NOW: &str = "2026-12-08T00:00:00.000Z";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let flag = |name: &str, default: usize| -> usize {
        args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).map_or(default, |v| v.parse().unwrap())
    };
    let (rounds, transactions) = (flag("--rounds", 3), flag("--transactions", 2000));

    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let dir = TempDir::new("bench-sqlite-round-trips");
    let db = runtime.block_on(Db::connect(None, dir.path())).expect("opening the database");
    // The department plugin's indexes, as loading it makes them.
    for field in ["name", "department1_Id", "department2_Id"] {
        runtime.block_on(records::ensure_index(&db, "DEPARTMENT", field, &[])).expect("making the plugin's index");
    }
    let direct = rusqlite::Connection::open(dir.path().join("tidings.db")).unwrap();
    direct.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 5000;").unwrap();

    let mut next = 0;
    for round in 1..=rounds {
        let start = Usage::now();
        runtime.block_on(async {
            // The committer keeps the writers' connection from one batch to the next.
            let mut kept = None;
            for _ in 0..transactions {
                kept = Some(through_sqlx(&db, kept, &Department::new(next)).await);
                next += 1;
            }
        });
        start.report(&format!("round {round}: through sqlx's worker thread"), transactions);

        let start = Usage::now();
        for _ in 0..transactions {
            on_this_thread(&direct, &Department::new(next));
            next += 1;
        }
        start.report(&format!("round {round}: on the calling thread       "), transactions);
    }

    // Both sides did the whole of each create: a record, a log entry and an offset apiece.
    let count = |sql: &'static str| runtime.block_on(sqlx::query_scalar::<_, i64>(sql).fetch_one(&db.pool)).unwrap();
    let created = i64::try_from(next).unwrap();
    assert_eq!(count("SELECT COUNT(*) FROM records WHERE record_type = 'DEPARTMENT'"), created);
    assert_eq!(count("SELECT COUNT(*) FROM notification_log"), created);
    assert_eq!(count("SELECT value FROM counters WHERE name = 'notification_seq'"), created);
}

struct Department {
    id: String,
    name: String,
    data: String,
}

impl Department {
    fn new(n: usize) -> Department {
        let name = format!("Department {n:08}");
        let data = serde_json::json!({ "name": name, "description": "created by the bench" }).to_string();
        Department { id: format!("bench-{n:012}"), name, data }
    }

    /// Its `NEW_RECORD`, as the committer logs it at offset `seq`.
    fn notification(&self, seq: i64) -> LoggedNotification {
        LoggedNotification {
            seq,
            event: "NEW_RECORD".into(),
            record_type: "DEPARTMENT".into(),
            payload: self.data.clone(),
            targets: r#"["all"]"#.into(),
            exclude_socket: None,
            created_at: NOW.into(),
        }
    }
}

/// The committer's calls for one create, on the writers' connection `kept` from the last one.
async fn through_sqlx(db: &Db, kept: Option<PoolConnection<Any>>, d: &Department) -> PoolConnection<Any> {
    let mut tx = db.begin_write_on(kept).await.unwrap();
    let name_check = Query {
        record_type: "DEPARTMENT".into(),
        conditions: vec![Condition { field: "name".into(), op: Op::Eq, value: Value::Text(d.name.clone()) }],
        order_by: None,
        limit: None,
        after: None,
    };
    let found = records::find(&mut tx, db.dialect, &db.elements, &name_check).await.unwrap().unwrap();
    assert!(found.is_empty(), "every name is new");
    let write = Write::Upsert {
        record_type: "DEPARTMENT".into(),
        id: d.id.clone(),
        data: d.data.clone(),
        expected_version: None,
    };
    records::apply(&mut tx, &db.elements, &write, NOW).await.unwrap().unwrap();
    let seq = notifications::take_seqs(&mut tx, 1).await.unwrap();
    notifications::append(&mut tx, &[d.notification(seq)]).await.unwrap();
    tx.commit_keeping().await.unwrap()
}

/// The same statements on the calling thread.
fn on_this_thread(conn: &rusqlite::Connection, d: &Department) {
    let tx = rusqlite::Transaction::new_unchecked(conn, rusqlite::TransactionBehavior::Immediate).unwrap();
    let found = tx.prepare_cached(FIND).unwrap().exists([&d.name]).unwrap();
    assert!(!found, "every name is new");
    tx.prepare_cached(INSERT).unwrap().execute(rusqlite::params!["DEPARTMENT", d.id, d.data, NOW]).unwrap();
    let seq: i64 = tx.prepare_cached(TAKE_SEQ).unwrap().query_row([1_i64], |row| row.get(0)).unwrap();
    let n = d.notification(seq);
    tx.prepare_cached(LOG)
        .unwrap()
        .execute(rusqlite::params![n.seq, n.event, n.record_type, n.payload, n.targets, n.exclude_socket, n.created_at])
        .unwrap();
    tx.commit().unwrap();
}

/// The process's CPU time and its threads' context switches, from `/proc`.
struct Usage {
    at: Instant,
    cpu_ticks: u64,
    switches: u64,
}

impl Usage {
    fn now() -> Usage {
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
        // The fields after the command's closing parenthesis; utime and stime are the 12th and 13th.
        let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
        let cpu_ticks = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        let mut switches = 0;
        for task in std::fs::read_dir("/proc/self/task").unwrap() {
            let Ok(status) = std::fs::read_to_string(task.unwrap().path().join("status")) else { continue };
            for line in status.lines().filter(|l| l.contains("ctxt_switches:")) {
                switches += line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap();
            }
        }
        Usage { at: Instant::now(), cpu_ticks, switches }
    }

    fn report(&self, what: &str, transactions: usize) {
        let end = Usage::now();
        let n = transactions as f64;
        let wall = end.at.duration_since(self.at).as_secs_f64();
        // Linux counts CPU time in ticks of 1/100 s (USER_HZ).
        let cpu = (end.cpu_ticks - self.cpu_ticks) as f64 / 100.0;
        println!(
            "{what}: {:>6.0} transactions/s, {:>4.0} µs wall, {:>4.0} µs CPU, {:>5.1} thread switches a transaction",
            n / wall,
            wall * 1e6 / n,
            cpu * 1e6 / n,
            (end.switches - self.switches) as f64 / n,
        );
    }
}

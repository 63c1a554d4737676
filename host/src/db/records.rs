//! The generic record store: every plugin record type as JSON rows in `records`.
//!
//! Plugins add record types without SQL: they read through [`get`] and [`find`] (field
//! conditions compiled to JSON expressions per [`Dialect`]) and the host applies their
//! writes with [`apply`], checking the version each write expects. Fields a plugin queries
//! on are indexed by [`ensure_index`] when the plugin loads.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use sqlx::{AnyConnection, AssertSqlSafe, FromRow};

use super::{Db, Dialect, Error, Result};

/// A stored record as the store returns it.
#[derive(Clone, Debug, FromRow, PartialEq)]
pub struct StoredRecord {
    pub record_type: String,
    pub id: String,
    pub data: String,
    pub version: i64,
    pub created_at: String,
    pub updated_at: String,
}

/// A scalar to compare a field with.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
    /// For [`Op::In`] and [`Op::Contains`].
    Texts(Vec<String>),
}

impl Value {
    /// Whether a text in it holds U+0000 (see [`json_holds_nul`]).
    fn holds_nul(&self) -> bool {
        match self {
            Value::Text(text) => text.contains('\0'),
            Value::Texts(texts) => texts.iter().any(|text| text.contains('\0')),
            Value::Null | Value::Bool(_) | Value::Int(_) | Value::Float(_) => false,
        }
    }
}

/// Whether any string or key in `value` holds U+0000. PostgreSQL can neither store such text
/// (nor such JSON as `jsonb`) nor compare with it: a statement that tries fails, and aborts its
/// transaction. Records never hold it, on either backend: clients may not send it and a
/// plugin's write of it is invalid output.
pub fn json_holds_nul(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::String(s) => s.contains('\0'),
        serde_json::Value::Array(items) => items.iter().any(json_holds_nul),
        serde_json::Value::Object(fields) => fields.iter().any(|(k, v)| k.contains('\0') || json_holds_nul(v)),
        serde_json::Value::Null | serde_json::Value::Bool(_) | serde_json::Value::Number(_) => false,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    /// The field equals one of the texts.
    In,
    /// The array field holds the text, or one of the texts (needs an element index).
    Contains,
}

/// The most values one `in` or `contains` condition may list.
pub const MAX_LIST_VALUES: usize = 1_000;

#[derive(Clone, Debug)]
pub struct Condition {
    pub field: String,
    pub op: Op,
    pub value: Value,
}

#[derive(Clone, Debug)]
pub struct Query {
    pub record_type: String,
    pub conditions: Vec<Condition>,
    /// `(field, descending)`, ties broken by `id`; without it, records come in `id` order.
    /// Text compares by bytes and nulls come first in ascending order, last in descending
    /// order, on both backends.
    pub order_by: Option<(String, bool)>,
    pub limit: Option<u32>,
    /// Only the records after this position in the order: the next page of a list.
    pub after: Option<Position>,
}

/// A place in a query's order: just after the record `id` whose order field holds `value`.
#[derive(Clone, Debug, PartialEq)]
pub struct Position {
    pub value: Value,
    pub id: String,
}

/// One write requested by a plugin.
#[derive(Clone, Debug)]
pub enum Write {
    Upsert { record_type: String, id: String, data: String, expected_version: Option<i64> },
    Delete { record_type: String, id: String, expected_version: Option<i64> },
}

/// Most bytes of a record's type, id and (as `jsonb`) data for which every index entry it
/// makes is sure to fit PostgreSQL's B-tree (2,704 bytes an entry, which a longer value
/// exceeds unless it compresses well): an entry holds some of those and a few headers.
const SURELY_INDEXABLE: usize = 2_400;

/// How many times the bytes of its JSON text a value may take as `jsonb`, at most: an array
/// of one-digit numbers takes 12 bytes for each 2 of text (`0,`).
const JSONB_GROWTH: usize = 6;

impl Write {
    /// Whether this write cannot fail on PostgreSQL for a value too large for an index. SQLite
    /// has no such limit.
    pub fn surely_indexable(&self) -> bool {
        match self {
            Write::Upsert { record_type, id, data, .. } => {
                record_type.len() + id.len() + JSONB_GROWTH * data.len() <= SURELY_INDEXABLE
            }
            Write::Delete { .. } => true,
        }
    }
}

/// Errors that are the caller's (the plugin's) fault rather than the database's.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RecordError {
    #[error("invalid query: {0}")]
    InvalidQuery(String),
    #[error("{0}")]
    VersionConflict(String),
}

const COLUMNS: &str = "record_type, id, data, version, created_at, updated_at";

pub async fn get(conn: &mut AnyConnection, record_type: &str, id: &str) -> Result<Option<StoredRecord>> {
    // No id holds U+0000 (ids are checked when written), and PostgreSQL could not compare one.
    if record_type.contains('\0') || id.contains('\0') {
        return Ok(None);
    }
    let sql = AssertSqlSafe(format!("SELECT {COLUMNS} FROM records WHERE record_type = $1 AND id = $2"));
    Ok(sqlx::query_as(sql).bind(record_type).bind(id).fetch_optional(conn).await?)
}

/// Run a field query. `Ok(Err(_))` is a malformed query (the plugin's mistake).
pub async fn find(
    conn: &mut AnyConnection,
    dialect: Dialect,
    elements: &ElementFields,
    query: &Query,
) -> Result<Result<Vec<StoredRecord>, RecordError>> {
    let compiled = match compile(dialect, &elements.of(&query.record_type), query) {
        Ok(compiled) => compiled,
        Err(e) => return Ok(Err(e)),
    };
    let mut q = sqlx::query_as::<_, StoredRecord>(AssertSqlSafe(compiled.sql));
    for value in compiled.binds {
        q = match value {
            Bind::Text(s) => q.bind(s),
            Bind::Int(n) => q.bind(n),
            Bind::Float(f) => q.bind(f),
        };
    }
    Ok(Ok(q.fetch_all(conn).await?))
}

/// The host-owned times of a record just written.
#[derive(Clone, Debug, PartialEq)]
pub struct Stamp {
    pub created_at: String,
    pub updated_at: String,
}

/// Apply one write stamped with `now`; an upsert returns the record's stamp. A version
/// mismatch, a duplicate insert or an update of a missing record is
/// `Ok(Err(VersionConflict))`; the caller rolls back.
pub async fn apply(
    conn: &mut AnyConnection,
    elements: &ElementFields,
    write: &Write,
    now: &str,
) -> Result<Result<Option<Stamp>, RecordError>> {
    let mut created_at = None;
    let affected = match write {
        Write::Upsert { record_type, id, data, expected_version: None } => sqlx::query(
            "INSERT INTO records (record_type, id, data, version, created_at, updated_at) \
                 VALUES ($1, $2, $3, 1, $4, $4) ON CONFLICT (record_type, id) DO NOTHING",
        )
        .bind(record_type)
        .bind(id)
        .bind(data)
        .bind(now)
        .execute(&mut *conn)
        .await?
        .rows_affected(),
        Write::Upsert { record_type, id, data, expected_version: Some(version) } => {
            created_at = sqlx::query_scalar(
                "UPDATE records SET data = $3, version = version + 1, updated_at = $4 \
                 WHERE record_type = $1 AND id = $2 AND version = $5 RETURNING created_at",
            )
            .bind(record_type)
            .bind(id)
            .bind(data)
            .bind(now)
            .bind(*version)
            .fetch_optional(&mut *conn)
            .await?;
            u64::from(created_at.is_some())
        }
        Write::Delete { record_type, id, expected_version } => {
            sqlx::query("DELETE FROM records WHERE record_type = $1 AND id = $2 AND ($3 IS NULL OR version = $3)")
                .bind(record_type)
                .bind(id)
                .bind(*expected_version)
                .execute(&mut *conn)
                .await?
                .rows_affected()
        }
    };
    if affected == 1 {
        let (Write::Upsert { record_type, id, .. } | Write::Delete { record_type, id, .. }) = write;
        let fields = elements.of(record_type);
        if !fields.is_empty() {
            let data = match write {
                Write::Upsert { data, .. } => Some(data.as_str()),
                Write::Delete { .. } => None,
            };
            index_elements(conn, record_type, id, &fields, data).await?;
        }
        return Ok(Ok(match write {
            Write::Upsert { .. } => {
                Some(Stamp { created_at: created_at.unwrap_or_else(|| now.to_owned()), updated_at: now.to_owned() })
            }
            Write::Delete { .. } => None,
        }));
    }
    if matches!(write, Write::Delete { expected_version: None, .. }) {
        return Ok(Ok(None));
    }
    Ok(Err(RecordError::VersionConflict(match write {
        Write::Upsert { record_type, id, expected_version: None, .. } => {
            format!("{record_type} {id} already exists")
        }
        Write::Upsert { record_type, id, .. } | Write::Delete { record_type, id, .. } => {
            format!("{record_type} {id} was changed or deleted by another request")
        }
    })))
}

/// The array fields with an element index, by record type: declared by the plugins that own
/// the record types, consulted on every write and by `contains` queries.
#[derive(Clone, Debug, Default)]
pub struct ElementFields(Arc<RwLock<HashMap<String, Arc<[String]>>>>);

impl ElementFields {
    /// The element-indexed fields of `record_type`.
    pub fn of(&self, record_type: &str) -> Arc<[String]> {
        let map = self.0.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        map.get(record_type).cloned().unwrap_or_else(|| Arc::from([]))
    }

    fn set(&self, record_type: &str, fields: Vec<String>) {
        let mut map = self.0.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        map.insert(record_type.to_owned(), fields.into());
    }
}

/// Replace the element rows of one record with those of `data` (none when deleted).
async fn index_elements(
    conn: &mut AnyConnection,
    record_type: &str,
    id: &str,
    fields: &[String],
    data: Option<&str>,
) -> Result<()> {
    sqlx::query("DELETE FROM record_elements WHERE record_type = $1 AND id = $2")
        .bind(record_type)
        .bind(id)
        .execute(&mut *conn)
        .await?;
    let Some(data) = data else { return Ok(()) };
    let data: serde_json::Value = serde_json::from_str(data).map_err(|e| Error::Corrupt(e.to_string()))?;
    for field in fields {
        insert_elements(conn, record_type, field, id, &data).await?;
    }
    Ok(())
}

async fn insert_elements(
    conn: &mut AnyConnection,
    record_type: &str,
    field: &str,
    id: &str,
    data: &serde_json::Value,
) -> Result<()> {
    for element in elements_of(data, field) {
        sqlx::query(
            "INSERT INTO record_elements (record_type, field, element, id) VALUES ($1, $2, $3, $4) \
             ON CONFLICT DO NOTHING",
        )
        .bind(record_type)
        .bind(field)
        .bind(element)
        .bind(id)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// The elements of the array `data.<field>` as text: strings as they are, numbers and
/// booleans as JSON; nulls, objects and nested arrays are not indexed.
fn elements_of(data: &serde_json::Value, field: &str) -> Vec<String> {
    let Some(serde_json::Value::Array(items)) = data.get(field) else { return Vec::new() };
    items
        .iter()
        .filter_map(|item| match item {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Number(_) | serde_json::Value::Bool(_) => Some(item.to_string()),
            _ => None,
        })
        .collect()
}

/// Declare the element indexes of `record_type` (replacing earlier declarations) and build
/// the ones that were never built, from the stored records.
pub async fn ensure_element_indexes(db: &Db, record_type: &str, fields: &[String]) -> Result<()> {
    for field in fields {
        check_field(field).map_err(|e| Error::Corrupt(e.to_string()))?;
    }
    let mut tx = db.begin_write().await?;
    let built: Vec<String> = sqlx::query_scalar("SELECT field FROM record_element_fields WHERE record_type = $1")
        .bind(record_type)
        .fetch_all(&mut *tx)
        .await?;
    // A field no longer declared is not maintained from now on: forget it, so that a later
    // declaration rebuilds it.
    for stale in built.iter().filter(|f| !fields.contains(f)) {
        for table in ["record_elements", "record_element_fields"] {
            sqlx::query(AssertSqlSafe(format!("DELETE FROM {table} WHERE record_type = $1 AND field = $2")))
                .bind(record_type)
                .bind(stale)
                .execute(&mut *tx)
                .await?;
        }
    }
    let missing: Vec<&String> = fields.iter().filter(|f| !built.contains(f)).collect();
    if !missing.is_empty() {
        let stored: Vec<(String, String)> = sqlx::query_as("SELECT id, data FROM records WHERE record_type = $1")
            .bind(record_type)
            .fetch_all(&mut *tx)
            .await?;
        for field in missing {
            for (id, data) in &stored {
                let data: serde_json::Value = serde_json::from_str(data).map_err(|e| Error::Corrupt(e.to_string()))?;
                insert_elements(&mut tx, record_type, field, id, &data).await?;
            }
            sqlx::query("INSERT INTO record_element_fields (record_type, field) VALUES ($1, $2)")
                .bind(record_type)
                .bind(field)
                .execute(&mut *tx)
                .await?;
        }
    }
    tx.commit().await?;
    db.elements.set(record_type, fields.to_vec());
    Ok(())
}

/// Create the index that serves queries on `record_type`'s `field` (then `then_by`, for an
/// `eq` on `field` ordered by the next), if it is missing.
pub async fn ensure_index(db: &Db, record_type: &str, field: &str, then_by: &[String]) -> Result<()> {
    let corrupt = |e: RecordError| Error::Corrupt(e.to_string());
    // Partial, on the records of `record_type` only (`compile` names the type in each query):
    // a write changes the indexes of its own type and no other's. `id` last, so that it also
    // yields the ties' `id` order and serves paging (`compile_after`). Its columns sort as
    // `compile` orders.
    let mut keys = String::new();
    for field in std::iter::once(field).chain(then_by.iter().map(String::as_str)) {
        let key = match (db.dialect, column(field)) {
            (Dialect::Sqlite, _) => format!("({})", field_expr(db.dialect, field).map_err(corrupt)?),
            (Dialect::Postgres, Some(column)) => format!("{column} COLLATE \"C\" NULLS FIRST"),
            (Dialect::Postgres, None) => format!("({}) NULLS FIRST", field_expr(db.dialect, field).map_err(corrupt)?),
        };
        let _ = write!(keys, "{key}, ");
    }
    let fields = std::iter::once(field).chain(then_by.iter().map(String::as_str)).collect::<Vec<_>>().join("__");
    let name = index_name("records_px_", record_type, &fields);
    // Under the write lock, so that nodes loading the same plugin at once take turns
    // (concurrent `CREATE INDEX IF NOT EXISTS` of one name can fail on PostgreSQL).
    let mut tx = db.begin_write().await?;
    let existing: i64 = match db.dialect {
        Dialect::Sqlite => sqlx::query_scalar("SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND name = $1"),
        Dialect::Postgres => sqlx::query_scalar("SELECT COUNT(*) FROM pg_class WHERE relkind = 'i' AND relname = $1"),
    }
    .bind(&name)
    .fetch_one(&mut *tx)
    .await?;
    let sql = format!(
        "CREATE INDEX IF NOT EXISTS {name} ON records ({keys}{}) WHERE record_type = {}",
        id_key(db.dialect),
        text_literal(record_type)
    );
    sqlx::query(AssertSqlSafe(sql)).execute(&mut *tx).await?;
    // The indexes of this field before serve nothing now: the one on every record
    // (`records_ox_`, whose entries every write of any type paid for), and the one from
    // before orders were bytewise with nulls first.
    let mut before = vec![index_name("records_ox_", record_type, &fields)];
    if then_by.is_empty() {
        before.push(index_name("records_ix_", record_type, field));
    }
    for before in before {
        sqlx::query(AssertSqlSafe(format!("DROP INDEX IF EXISTS {before}"))).execute(&mut *tx).await?;
    }
    tx.commit().await?;
    // A new index on stored records: its expressions need statistics (see `analyze`).
    if existing == 0 {
        analyze(db).await?;
    }
    Ok(())
}

/// Gather the statistics PostgreSQL plans queries with (autovacuum does so once enough rows
/// changed); without those of the indexes' expressions, an `in` on a field reads every record
/// of the type. Nothing to do on SQLite, whose plans need none.
pub async fn analyze(db: &Db) -> Result<()> {
    if db.dialect == Dialect::Postgres {
        db.analyzed.writes.store(0, Ordering::Relaxed);
        sqlx::query("ANALYZE records").execute(&db.pool).await?;
        let rows: i64 =
            sqlx::query_scalar("SELECT CAST(reltuples AS BIGINT) FROM pg_class WHERE oid = 'records'::regclass")
                .fetch_one(&db.pool)
                .await?;
        db.analyzed.counted.store(u64::try_from(rows).unwrap_or(0), Ordering::Relaxed);
    }
    Ok(())
}

/// Fewest record writes after which [`wrote`] gathers the statistics again.
const ANALYZE_AFTER: u64 = 500;

/// How far PostgreSQL's statistics of `records` may lag behind it: this node's record writes
/// since it last gathered them ([`analyze`]), and the rows they counted then.
#[derive(Debug, Default)]
pub struct Analyzed {
    writes: AtomicU64,
    counted: AtomicU64,
    running: AtomicBool,
}

/// Note `count` record writes; once they are as many as the rows the statistics counted (at
/// least [`ANALYZE_AFTER`]), gather them again, on a task of its own. Autovacuum would too,
/// but only when its round comes (once a minute): meanwhile a table that grew from a few
/// rows is planned as if it still had them, and for a lookup by field the scan of every record
/// of the type in `id` order can cost as little as the field's index, so that which one is
/// taken comes down to the two indexes' heights. A burst of creates then turns from a lookup
/// of a fraction of a millisecond to one of milliseconds per thousand records, each.
pub fn wrote(db: &Db, count: usize) {
    if db.dialect != Dialect::Postgres || count == 0 {
        return;
    }
    let analyzed = &db.analyzed;
    let writes = analyzed.writes.fetch_add(count as u64, Ordering::Relaxed) + count as u64;
    if writes < analyzed.counted.load(Ordering::Relaxed).max(ANALYZE_AFTER)
        || analyzed.running.swap(true, Ordering::AcqRel)
    {
        return;
    }
    let db = db.clone();
    tokio::spawn(async move {
        if let Err(err) = analyze(&db).await {
            tracing::warn!(%err, "gathering the statistics of records failed");
        }
        db.analyzed.running.store(false, Ordering::Release);
    });
}

/// On PostgreSQL, the index that serves the default order (`id` by bytes) and paging by `id`;
/// the primary key's index has the database's collation. PostgreSQL only, run at start.
pub(super) async fn ensure_id_index(conn: &mut sqlx::AnyConnection) -> Result<()> {
    sqlx::query("CREATE INDEX IF NOT EXISTS records_id_bytes ON records (record_type, id COLLATE \"C\")")
        .execute(conn)
        .await?;
    Ok(())
}

/// `text` as an SQL string literal (quotes doubled), for both backends.
fn text_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

fn index_name(prefix: &str, record_type: &str, field: &str) -> String {
    let mut name = String::from(prefix);
    for c in record_type.chars().chain(['_', '_']).chain(field.chars()) {
        name.push(if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' });
    }
    // Distinct names for fields that differ only in case or punctuation.
    let hash = field.bytes().chain(record_type.bytes()).fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(b.into()));
    let _ = write!(name, "_{hash:08x}");
    name.truncate(63);
    name
}

enum Bind {
    Text(String),
    Int(i64),
    Float(f64),
}

struct Compiled {
    sql: String,
    binds: Vec<Bind>,
}

/// The host-owned columns that queries may name like fields.
fn column(field: &str) -> Option<&'static str> {
    match field {
        "id" => Some("id"),
        "createdAt" => Some("created_at"),
        "updatedAt" => Some("updated_at"),
        _ => None,
    }
}

/// Whether `field` may name a record field in a query or an index: an identifier of at most
/// 64 characters (letters, digits, `_`, not starting with a digit).
pub fn check_field(field: &str) -> Result<(), RecordError> {
    let valid = field.len() <= 64
        && field.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && field.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if valid { Ok(()) } else { Err(RecordError::InvalidQuery(format!("{field:?} is not a valid field name"))) }
}

/// The SQL expression reading `field` out of a record. Field names are restricted to
/// identifiers, so they can be spliced into SQL safely. A JSON null reads as SQL `NULL`, as
/// a missing key does, on both backends.
fn field_expr(dialect: Dialect, field: &str) -> Result<String, RecordError> {
    if let Some(column) = column(field) {
        return Ok(column.to_owned());
    }
    check_field(field)?;
    Ok(match dialect {
        Dialect::Sqlite => format!("json_extract(data, '$.{field}')"),
        Dialect::Postgres => format!("NULLIF(data::jsonb -> '{field}', 'null'::jsonb)"),
    })
}

/// `field_expr` for ordering and range comparisons: the host's text columns compare by bytes
/// on PostgreSQL too (`COLLATE "C"`, as SQLite's `BINARY`), whatever the database's locale.
/// (Text inside `data` compares as jsonb, in the database's collation: see docs/operating.md.)
fn sort_expr(dialect: Dialect, field: &str) -> Result<String, RecordError> {
    let expr = field_expr(dialect, field)?;
    Ok(match (dialect, column(field)) {
        (Dialect::Postgres, Some(_)) => format!("{expr} COLLATE \"C\""),
        _ => expr,
    })
}

/// The tie-breaker of every order, and the order of a query without one.
fn id_key(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Sqlite => "id",
        Dialect::Postgres => "id COLLATE \"C\"",
    }
}

/// `ASC`/`DESC` with nulls first when ascending and last when descending: SQLite's order,
/// which PostgreSQL (nulls count as larger there) is told explicitly.
fn direction(dialect: Dialect, descending: bool) -> &'static str {
    match (dialect, descending) {
        (Dialect::Sqlite, false) => "ASC",
        (Dialect::Sqlite, true) => "DESC",
        (Dialect::Postgres, false) => "ASC NULLS FIRST",
        (Dialect::Postgres, true) => "DESC NULLS LAST",
    }
}

/// The placeholder `$n` for comparing `field` with `value`, and what to bind to it: host
/// columns take text; record fields take SQLite values, or JSON cast to jsonb on PostgreSQL
/// (jsonb compares type-aware: numbers numerically, strings as text).
fn comparand(dialect: Dialect, field: &str, value: &Value, n: usize) -> Result<(String, Bind), RecordError> {
    match (dialect, column(field)) {
        (_, Some(_)) => {
            let Value::Text(text) = value else {
                return Err(RecordError::InvalidQuery(format!("{field} compares with text only")));
            };
            Ok((format!("${n}"), Bind::Text(text.clone())))
        }
        (Dialect::Sqlite, None) => Ok((
            format!("${n}"),
            match value {
                // json_extract yields 1/0 for true/false.
                Value::Bool(b) => Bind::Int(i64::from(*b)),
                Value::Int(i) => Bind::Int(*i),
                Value::Float(f) => Bind::Float(*f),
                Value::Text(t) => Bind::Text(t.clone()),
                Value::Null | Value::Texts(_) => {
                    return Err(RecordError::InvalidQuery("null and lists do not compare with < or >".into()));
                }
            },
        )),
        (Dialect::Postgres, None) => {
            let json = match value {
                Value::Bool(b) => serde_json::Value::Bool(*b),
                Value::Int(i) => serde_json::Value::from(*i),
                Value::Float(f) => serde_json::Number::from_f64(*f)
                    .map(serde_json::Value::Number)
                    .ok_or_else(|| RecordError::InvalidQuery("NaN and infinity cannot be compared".into()))?,
                Value::Text(t) => serde_json::Value::String(t.clone()),
                Value::Null | Value::Texts(_) => {
                    return Err(RecordError::InvalidQuery("null and lists do not compare with < or >".into()));
                }
            };
            Ok((format!("CAST(${n} AS jsonb)"), Bind::Text(json.to_string())))
        }
    }
}

fn compile(dialect: Dialect, element_fields: &[String], query: &Query) -> Result<Compiled, RecordError> {
    // The record type is written into the SQL, not bound: the field indexes are partial, one
    // record type's each, and a planner can use one only for a query that names its type.
    let nul = query.conditions.iter().any(|c| c.value.holds_nul())
        || query.after.as_ref().is_some_and(|after| after.value.holds_nul() || after.id.contains('\0'));
    if nul {
        return Err(RecordError::InvalidQuery("no text in a query may hold U+0000 (NUL)".into()));
    }
    let record_type = text_literal(&query.record_type);
    let mut sql = format!("SELECT {COLUMNS} FROM records WHERE record_type = {record_type}");
    let mut binds = Vec::new();
    for condition in &query.conditions {
        if matches!(condition.op, Op::In | Op::Contains) {
            compile_list(dialect, element_fields, &record_type, condition, &mut sql, &mut binds)?;
            continue;
        }
        if matches!(condition.value, Value::Texts(_)) {
            return Err(RecordError::InvalidQuery("a list of values goes with in or contains only".into()));
        }
        let expr = field_expr(dialect, &condition.field)?;
        let op = match condition.op {
            Op::Eq => "=",
            Op::Ne => "<>",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::In | Op::Contains => unreachable!("compiled by compile_list"),
        };
        if condition.value == Value::Null {
            // A missing key and a JSON null both read as NULL (see `field_expr`).
            let test = match condition.op {
                Op::Eq => "IS NULL",
                Op::Ne => "IS NOT NULL",
                _ => return Err(RecordError::InvalidQuery("null can only be compared with eq or ne".into())),
            };
            let _ = write!(sql, " AND {expr} {test}");
            continue;
        }
        // Order comparisons use the order's collation; equality needs none (and so keeps
        // the primary key's index).
        let expr = if matches!(condition.op, Op::Eq | Op::Ne) { expr } else { sort_expr(dialect, &condition.field)? };
        let (placeholder, bind) = comparand(dialect, &condition.field, &condition.value, binds.len() + 1)?;
        let _ = write!(sql, " AND {expr} {op} {placeholder}");
        binds.push(bind);
    }
    if let Some(after) = &query.after {
        compile_after(dialect, query.order_by.as_ref(), after, &mut sql, &mut binds)?;
    }
    let id = id_key(dialect);
    match &query.order_by {
        Some((field, descending)) => {
            let key = sort_expr(dialect, field)?;
            let _ = write!(sql, " ORDER BY {key} {}, {id} ASC", direction(dialect, *descending));
        }
        // An `in` on a field picks at most a few thousand records: let SQLite find them through
        // the field's index and sort them (`+id` is the same order, but not the primary key's),
        // rather than walk every record of the type in `id` order to test each.
        None if dialect == Dialect::Sqlite
            && query.conditions.iter().any(|c| c.op == Op::In && column(&c.field).is_none()) =>
        {
            sql.push_str(" ORDER BY +id ASC");
        }
        None => {
            let _ = write!(sql, " ORDER BY {id} ASC");
        }
    }
    if let Some(limit) = query.limit {
        let _ = write!(sql, " LIMIT {limit}");
    }
    Ok(Compiled { sql, binds })
}

/// Keep only the records after `after` in the order `ORDER BY key, id` (keyset paging):
/// `key > v OR (key = v AND id > i)`, written so that an index on `(key, id)` serves it, and
/// with nulls where the order puts them (first ascending, last descending).
fn compile_after(
    dialect: Dialect,
    order_by: Option<&(String, bool)>,
    after: &Position,
    sql: &mut String,
    binds: &mut Vec<Bind>,
) -> Result<(), RecordError> {
    let id = id_key(dialect);
    let n = binds.len() + 1;
    binds.push(Bind::Text(after.id.clone()));
    let Some((field, descending)) = order_by else {
        let _ = write!(sql, " AND {id} > ${n}");
        return Ok(());
    };
    let key = sort_expr(dialect, field)?;
    let past_the_id = format!("{id} > ${n}");
    match (&after.value, descending) {
        (Value::Null, false) => {
            let _ = write!(sql, " AND (({key} IS NULL AND {past_the_id}) OR {key} IS NOT NULL)");
        }
        (Value::Null, true) => {
            let _ = write!(sql, " AND {key} IS NULL AND {past_the_id}");
        }
        (value, descending) => {
            let (v, bind) = comparand(dialect, field, value, n + 1)?;
            binds.push(bind);
            let (from, past) = if *descending { ("<=", "<") } else { (">=", ">") };
            let keyset = format!("{key} {from} {v} AND ({key} {past} {v} OR {past_the_id})");
            if *descending {
                let _ = write!(sql, " AND (({keyset}) OR {key} IS NULL)");
            } else {
                let _ = write!(sql, " AND {keyset}");
            }
        }
    }
    Ok(())
}

/// Compile an `in` or `contains` condition: `field IN (...)`, or a lookup in the element
/// index. An empty list matches nothing.
fn compile_list(
    dialect: Dialect,
    element_fields: &[String],
    record_type: &str,
    condition: &Condition,
    sql: &mut String,
    binds: &mut Vec<Bind>,
) -> Result<(), RecordError> {
    let values = match (&condition.op, &condition.value) {
        (_, Value::Texts(values)) => values.clone(),
        (Op::Contains, Value::Text(value)) => vec![value.clone()],
        _ => return Err(RecordError::InvalidQuery("in takes a list of texts, contains a text or texts".into())),
    };
    if values.len() > MAX_LIST_VALUES {
        return Err(RecordError::InvalidQuery(format!("at most {MAX_LIST_VALUES} values in one condition")));
    }
    if values.is_empty() {
        sql.push_str(" AND 1 = 0");
        return Ok(());
    }
    let mut placeholders = String::new();
    let first = binds.len() + 1;
    let cast = |n: usize| match (dialect, condition.op, column(&condition.field)) {
        // Record fields are jsonb on PostgreSQL: compare with JSON strings.
        (Dialect::Postgres, Op::In, None) => format!("CAST(${n} AS jsonb)"),
        _ => format!("${n}"),
    };
    match condition.op {
        Op::In => {
            let expr = field_expr(dialect, &condition.field)?;
            for (i, value) in values.into_iter().enumerate() {
                let _ = write!(placeholders, "{}{}", if i == 0 { "" } else { ", " }, cast(first + i));
                binds.push(match (dialect, column(&condition.field)) {
                    (Dialect::Postgres, None) => Bind::Text(serde_json::Value::String(value).to_string()),
                    _ => Bind::Text(value),
                });
            }
            let _ = write!(sql, " AND {expr} IN ({placeholders})");
        }
        _ => {
            if !element_fields.contains(&condition.field) {
                return Err(RecordError::InvalidQuery(format!(
                    "contains needs an elements index on {}, declared by the plugin that owns the record type",
                    condition.field
                )));
            }
            binds.push(Bind::Text(condition.field.clone()));
            for (i, value) in values.into_iter().enumerate() {
                let _ = write!(placeholders, "{}${}", if i == 0 { "" } else { ", " }, first + 1 + i);
                binds.push(Bind::Text(value));
            }
            let _ = write!(
                sql,
                " AND id IN (SELECT e.id FROM record_elements e WHERE e.record_type = {record_type} AND e.field = ${first} \
                 AND e.element IN ({placeholders}))"
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(field: &str, value: Value) -> Query {
        Query {
            record_type: "T".into(),
            conditions: vec![Condition { field: field.into(), op: Op::Eq, value }],
            order_by: None,
            limit: None,
            after: None,
        }
    }

    #[test]
    fn field_names_cannot_inject_sql() {
        for bad in ["a'b", "a.b", "a b", "", "1a", "a--"] {
            assert!(compile(Dialect::Sqlite, &[], &query(bad, Value::Int(1))).is_err(), "{bad:?} accepted");
            assert!(compile(Dialect::Postgres, &[], &query(bad, Value::Int(1))).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn host_columns_compare_with_text_only() {
        assert!(compile(Dialect::Sqlite, &[], &query("createdAt", Value::Int(1))).is_err());
        let ok = compile(Dialect::Postgres, &[], &query("createdAt", Value::Text("2026".into()))).unwrap();
        assert!(ok.sql.contains("created_at = $1"), "{}", ok.sql);
    }

    #[test]
    fn list_conditions_need_lists_and_contains_needs_an_element_index() {
        let condition = |op, value| Query {
            record_type: "T".into(),
            conditions: vec![Condition { field: "tags".into(), op, value }],
            order_by: None,
            limit: None,
            after: None,
        };
        let texts = |n: usize| Value::Texts((0..n).map(|i| i.to_string()).collect());
        let indexed = ["tags".to_owned()];
        for dialect in [Dialect::Sqlite, Dialect::Postgres] {
            assert!(compile(dialect, &[], &condition(Op::Contains, Value::Text("a".into()))).is_err());
            assert!(compile(dialect, &indexed, &condition(Op::Contains, Value::Text("a".into()))).is_ok());
            assert!(compile(dialect, &indexed, &condition(Op::In, Value::Text("a".into()))).is_err());
            assert!(compile(dialect, &indexed, &condition(Op::Eq, texts(2))).is_err());
            assert!(compile(dialect, &indexed, &condition(Op::In, texts(MAX_LIST_VALUES + 1))).is_err());
            let empty = compile(dialect, &indexed, &condition(Op::In, texts(0))).unwrap();
            assert!(empty.sql.contains("1 = 0"), "an empty list matches nothing: {}", empty.sql);
        }
    }

    #[test]
    fn text_orders_by_bytes_and_nulls_first_on_both_backends() {
        let ordered = |order_by: Option<(&str, bool)>| Query {
            record_type: "T".into(),
            conditions: Vec::new(),
            order_by: order_by.map(|(field, descending)| (field.to_owned(), descending)),
            limit: None,
            after: None,
        };
        let sql = |dialect, order_by| compile(dialect, &[], &ordered(order_by)).unwrap().sql;
        assert!(sql(Dialect::Postgres, None).ends_with(r#"ORDER BY id COLLATE "C" ASC"#));
        assert!(
            sql(Dialect::Postgres, Some(("createdAt", false)))
                .ends_with(r#"ORDER BY created_at COLLATE "C" ASC NULLS FIRST, id COLLATE "C" ASC"#)
        );
        assert!(sql(Dialect::Postgres, Some(("start", true))).ends_with(
            r#"ORDER BY NULLIF(data::jsonb -> 'start', 'null'::jsonb) DESC NULLS LAST, id COLLATE "C" ASC"#
        ));
        // SQLite compares text with BINARY and puts nulls first (ascending) by itself.
        assert!(
            sql(Dialect::Sqlite, Some(("start", false)))
                .ends_with("ORDER BY json_extract(data, '$.start') ASC, id ASC")
        );
    }

    /// Pages read with `after` (the position of each page's last record) add up to the whole
    /// order: ties by id, nulls (a missing key or a JSON null) first ascending, last descending.
    #[tokio::test]
    async fn pages_add_up_to_the_whole_order() {
        sqlx::any::install_default_drivers();
        let mut conn = <AnyConnection as sqlx::Connection>::connect("sqlite::memory:").await.unwrap();
        crate::db::MIGRATOR.run(&mut conn).await.unwrap();
        let elements = ElementFields::default();
        let ranks = [Some(2), None, Some(1), Some(-1), Some(2), None, Some(3), Some(1), Some(2), None];
        let mut expected = Vec::new();
        for (i, rank) in ranks.iter().enumerate() {
            // Ids in an order unrelated to the ranks; a JSON null and a missing key alike.
            let id = format!("r{}", (i * 7) % 10);
            let data = match (rank, i % 2) {
                (Some(rank), _) => serde_json::json!({ "rank": rank }),
                (None, 0) => serde_json::json!({ "rank": null }),
                (None, _) => serde_json::json!({}),
            };
            let write = Write::Upsert {
                record_type: "T".into(),
                id: id.clone(),
                data: data.to_string(),
                expected_version: None,
            };
            apply(&mut conn, &elements, &write, "2026-01-01T00:00:00.000Z").await.unwrap().unwrap();
            expected.push((*rank, id));
        }
        for (order_by, size) in [(None, 3), (Some(false), 1), (Some(false), 4), (Some(true), 1), (Some(true), 3)] {
            let mut want = expected.clone();
            match order_by {
                None => want.sort_by(|a, b| a.1.cmp(&b.1)),
                // `None` sorts first in Rust, as null does ascending.
                Some(false) => want.sort(),
                Some(true) => want.sort_by(|a, b| match (a.0, b.0) {
                    (Some(x), Some(y)) => y.cmp(&x).then_with(|| a.1.cmp(&b.1)),
                    _ => a.0.is_none().cmp(&b.0.is_none()).then_with(|| a.1.cmp(&b.1)),
                }),
            }
            let want: Vec<String> = want.into_iter().map(|(_, id)| id).collect();
            let mut got = Vec::new();
            let mut after = None;
            loop {
                let query = Query {
                    record_type: "T".into(),
                    conditions: Vec::new(),
                    order_by: order_by.map(|descending| ("rank".to_owned(), descending)),
                    limit: Some(size),
                    after: after.take(),
                };
                let page = find(&mut conn, Dialect::Sqlite, &elements, &query).await.unwrap().unwrap();
                let Some(last) = page.last() else { break };
                let rank = serde_json::from_str::<serde_json::Value>(&last.data).unwrap()["rank"].as_i64();
                after = Some(Position { value: rank.map_or(Value::Null, Value::Int), id: last.id.clone() });
                got.extend(page.into_iter().map(|r| r.id));
            }
            assert_eq!(got, want, "order {order_by:?}, pages of {size}");
        }
    }

    #[test]
    fn index_names_are_identifiers_within_postgres_limits() {
        let name = index_name("records_px_", "EVENT_GROUP", &"x".repeat(64));
        assert!(name.len() <= 63);
        assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
        assert_ne!(index_name("records_px_", "A", "ab"), index_name("records_px_", "A", "aB"));
    }
}

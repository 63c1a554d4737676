//! The generic record store: every plugin record type as JSON rows in `records`.
//!
//! Plugins add record types without SQL: they read through [`get`] and [`find`] (field
//! conditions compiled to JSON expressions per [`Dialect`]) and the host applies their
//! writes with [`apply`], checking the version each write expects. Fields a plugin queries
//! on are indexed by [`ensure_index`] when the plugin loads.

use std::collections::HashMap;
use std::fmt::Write as _;
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
    /// `(field, descending)`; without it, records come in `id` order.
    pub order_by: Option<(String, bool)>,
    pub limit: Option<u32>,
}

/// One write requested by a plugin.
#[derive(Clone, Debug)]
pub enum Write {
    Upsert { record_type: String, id: String, data: String, expected_version: Option<i64> },
    Delete { record_type: String, id: String, expected_version: Option<i64> },
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
    let mut q = sqlx::query_as::<_, StoredRecord>(AssertSqlSafe(compiled.sql)).bind(query.record_type.clone());
    for value in compiled.binds {
        q = match value {
            Bind::Text(s) => q.bind(s),
            Bind::Int(n) => q.bind(n),
            Bind::Float(f) => q.bind(f),
        };
    }
    Ok(Ok(q.fetch_all(conn).await?))
}

/// Apply one write stamped with `now`. A version mismatch, a duplicate insert or an update
/// of a missing record is `Ok(Err(VersionConflict))`; the caller rolls back.
pub async fn apply(
    conn: &mut AnyConnection,
    elements: &ElementFields,
    write: &Write,
    now: &str,
) -> Result<Result<(), RecordError>> {
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
        Write::Upsert { record_type, id, data, expected_version: Some(version) } => sqlx::query(
            "UPDATE records SET data = $3, version = version + 1, updated_at = $4 \
                 WHERE record_type = $1 AND id = $2 AND version = $5",
        )
        .bind(record_type)
        .bind(id)
        .bind(data)
        .bind(now)
        .bind(*version)
        .execute(&mut *conn)
        .await?
        .rows_affected(),
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
        return Ok(Ok(()));
    }
    if matches!(write, Write::Delete { expected_version: None, .. }) {
        return Ok(Ok(()));
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

/// Create the index that serves queries on `record_type`'s `field`, if it is missing.
pub async fn ensure_index(db: &Db, record_type: &str, field: &str) -> Result<()> {
    let expr = field_expr(db.dialect, field).map_err(|e| Error::Corrupt(e.to_string()))?;
    let name = index_name(record_type, field);
    // On (record_type, expr) rather than partial, so that it serves queries where the record
    // type is a bound parameter; `id` last, so that it also yields the default `id` order and
    // the planner has no reason to prefer a scan of the primary key.
    let sql = format!("CREATE INDEX IF NOT EXISTS {name} ON records (record_type, ({expr}), id)");
    sqlx::query(AssertSqlSafe(sql)).execute(&db.pool).await?;
    Ok(())
}

fn index_name(record_type: &str, field: &str) -> String {
    let mut name = String::from("records_ix_");
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
/// identifiers, so they can be spliced into SQL safely.
fn field_expr(dialect: Dialect, field: &str) -> Result<String, RecordError> {
    if let Some(column) = column(field) {
        return Ok(column.to_owned());
    }
    check_field(field)?;
    Ok(match dialect {
        Dialect::Sqlite => format!("json_extract(data, '$.{field}')"),
        Dialect::Postgres => format!("(data::jsonb -> '{field}')"),
    })
}

fn compile(dialect: Dialect, element_fields: &[String], query: &Query) -> Result<Compiled, RecordError> {
    let mut sql = format!("SELECT {COLUMNS} FROM records WHERE record_type = $1");
    let mut binds = Vec::new();
    for condition in &query.conditions {
        if matches!(condition.op, Op::In | Op::Contains) {
            compile_list(dialect, element_fields, condition, &mut sql, &mut binds)?;
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
            let test = match (condition.op, dialect, column(&condition.field)) {
                (Op::Eq, Dialect::Sqlite, _) | (Op::Eq, _, Some(_)) => format!("{expr} IS NULL"),
                (Op::Ne, Dialect::Sqlite, _) | (Op::Ne, _, Some(_)) => format!("{expr} IS NOT NULL"),
                // A missing key and a JSON null both count as null.
                (Op::Eq, Dialect::Postgres, None) => format!("COALESCE({expr}, 'null'::jsonb) = 'null'::jsonb"),
                (Op::Ne, Dialect::Postgres, None) => format!("COALESCE({expr}, 'null'::jsonb) <> 'null'::jsonb"),
                _ => return Err(RecordError::InvalidQuery("null can only be compared with eq or ne".into())),
            };
            let _ = write!(sql, " AND {test}");
            continue;
        }
        let n = binds.len() + 2;
        match (dialect, column(&condition.field)) {
            // Host columns are text; only text compares with them.
            (_, Some(_)) => {
                let Value::Text(text) = &condition.value else {
                    return Err(RecordError::InvalidQuery(format!("{} compares with text only", condition.field)));
                };
                let _ = write!(sql, " AND {expr} {op} ${n}");
                binds.push(Bind::Text(text.clone()));
            }
            (Dialect::Sqlite, None) => {
                let _ = write!(sql, " AND {expr} {op} ${n}");
                binds.push(match &condition.value {
                    // json_extract yields 1/0 for true/false.
                    Value::Bool(b) => Bind::Int(i64::from(*b)),
                    Value::Int(i) => Bind::Int(*i),
                    Value::Float(f) => Bind::Float(*f),
                    Value::Text(t) => Bind::Text(t.clone()),
                    Value::Null | Value::Texts(_) => unreachable!("handled above"),
                });
            }
            (Dialect::Postgres, None) => {
                // jsonb compares type-aware: numbers numerically, strings as text.
                let _ = write!(sql, " AND {expr} {op} CAST(${n} AS jsonb)");
                let json = match &condition.value {
                    Value::Bool(b) => serde_json::Value::Bool(*b),
                    Value::Int(i) => serde_json::Value::from(*i),
                    Value::Float(f) => serde_json::Number::from_f64(*f)
                        .map(serde_json::Value::Number)
                        .ok_or_else(|| RecordError::InvalidQuery("NaN and infinity cannot be compared".into()))?,
                    Value::Text(t) => serde_json::Value::String(t.clone()),
                    Value::Null | Value::Texts(_) => unreachable!("handled above"),
                };
                binds.push(Bind::Text(json.to_string()));
            }
        }
    }
    match &query.order_by {
        Some((field, descending)) => {
            let expr = field_expr(dialect, field)?;
            let direction = if *descending { "DESC" } else { "ASC" };
            let _ = write!(sql, " ORDER BY {expr} {direction}, id ASC");
        }
        None => sql.push_str(" ORDER BY id ASC"),
    }
    if let Some(limit) = query.limit {
        let _ = write!(sql, " LIMIT {limit}");
    }
    Ok(Compiled { sql, binds })
}

/// Compile an `in` or `contains` condition: `field IN (...)`, or a lookup in the element
/// index. An empty list matches nothing.
fn compile_list(
    dialect: Dialect,
    element_fields: &[String],
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
    let first = binds.len() + 2;
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
                " AND id IN (SELECT e.id FROM record_elements e WHERE e.record_type = $1 AND e.field = ${first} \
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
        assert!(ok.sql.contains("created_at = $2"), "{}", ok.sql);
    }

    #[test]
    fn list_conditions_need_lists_and_contains_needs_an_element_index() {
        let condition = |op, value| Query {
            record_type: "T".into(),
            conditions: vec![Condition { field: "tags".into(), op, value }],
            order_by: None,
            limit: None,
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
    fn index_names_are_identifiers_within_postgres_limits() {
        let name = index_name("EVENT_GROUP", &"x".repeat(64));
        assert!(name.len() <= 63);
        assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
        assert_ne!(index_name("A", "ab"), index_name("A", "aB"));
    }
}

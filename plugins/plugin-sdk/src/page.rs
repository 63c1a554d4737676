//! Lists answered in pages: [`Query::page`] and [`Page::union`] read one page of a list, in
//! the list's order, and say where the next page starts.
//!
//! A `GET` action whose list can outgrow the host's 4 MiB body cap answers one page at a
//! time: it reads the page that starts at [`crate::Request::cursor`], returns it as a JSON
//! array, and sets [`crate::Response::next_page`] to the page's [`Page::next`]. The host calls
//! the action again for each further page, in the same read snapshot, and sends the client one
//! array. The cursor is the position of the page's last record (its order field's value and
//! its id, as JSON text); the store starts the next page just after it (keyset paging), so each
//! page costs about the same, however far into the list it is.

use std::cmp::Ordering;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::bindings::tidings::plugin::types;
use crate::store;
use crate::{FieldValue, PluginError, Query, Record, Result, StoredRecord};

/// The most bytes of stored record data one page holds: a page ends early when its records
/// reach it (it always holds at least one), so that a page of large records stays well below
/// the host's 4 MiB body cap and the 16 MiB read quota.
pub const PAGE_DATA_BYTES: usize = 1 << 20;

/// One page of a list.
#[derive(Clone, Debug)]
pub struct Page<T> {
    /// The page's records, in the list's order.
    pub records: Vec<Record<T>>,
    /// Where the next page starts; `None` on the last page. Pass it to
    /// [`crate::Response::next_page`].
    pub next: Option<String>,
}

impl Query {
    /// The page of this query's records that starts at `cursor` (`None`: the first page):
    /// at most `size` records (and about [`PAGE_DATA_BYTES`]), in the query's order.
    ///
    /// ```ignore
    /// let page = Query::new(NOTE).order_by("createdAt").page::<Note>(req.cursor(), 500)?;
    /// Ok(Response::ok(&page.records).next_page(page.next))
    /// ```
    pub fn page<T: DeserializeOwned>(self, cursor: Option<&str>, size: u32) -> Result<Page<T>> {
        Page::union([self], cursor, size)
    }
}

impl<T: DeserializeOwned> Page<T> {
    /// A page of the records that match any of `queries`, in their common order (the queries
    /// must order by the same field the same way; a record that several match comes once).
    /// For a list that one query cannot express, e.g. "my events, and every event in review".
    ///
    /// The cursor also remembers, for each query, where its next match lies (or that it has
    /// none left), so a later page reads only the queries that reach into it: a query with few
    /// matches is read to its end once, not once a page.
    pub fn union(queries: impl IntoIterator<Item = Query>, cursor: Option<&str>, size: u32) -> Result<Page<T>> {
        let size = size.max(1) as usize;
        let queries: Vec<types::Query> = queries.into_iter().map(|Query(query)| query).collect();
        let order = |q: &types::Query| q.order_by.as_ref().map(|o| (o.field.clone(), o.descending));
        let first_order = queries.first().map(order).unwrap_or_default();
        if queries.iter().any(|q| order(q) != first_order) {
            return Err(PluginError::Internal("the queries of one page must share their order".into()));
        }
        let (field, descending) = match &first_order {
            Some((field, descending)) => (Some(field.as_str()), *descending),
            None => (None, false),
        };
        let Cursor { after, mut ahead } = match cursor {
            Some(cursor) => decode(cursor, queries.len())?,
            None => Cursor { after: None, ahead: vec![Ahead::Unknown; queries.len()] },
        };

        // Read every query that may reach into this page: first those never read, then those
        // whose next match lies before the end of the page as far as it is known.
        let mut found: Vec<Found> = Vec::new();
        let mut read = vec![None; queries.len()];
        loop {
            let end = page_end(&found, size, descending);
            let due: Vec<usize> = (0..queries.len())
                .filter(|&i| read[i].is_none())
                .filter(|&i| match &ahead[i] {
                    Ahead::Unknown => true,
                    Ahead::Done => false,
                    Ahead::At(next) => end.as_ref().is_none_or(|end| compare(next, end, descending).is_le()),
                })
                .collect();
            if due.is_empty() {
                break;
            }
            for i in due {
                let mut query = queries[i].clone();
                query.after =
                    after.as_ref().map(|(value, id)| types::Position { value: field_value(value), id: id.clone() });
                // One more than the page holds: whether it exists says whether the list goes on.
                query.limit = Some(u32::try_from(size + 1).unwrap_or(u32::MAX));
                let matches = store::find(&query)?;
                read[i] = Some(matches.len());
                for stored in matches {
                    found.push(Found { key: (key_of(&stored, field)?, stored.id.clone()), stored, query: i });
                }
            }
        }

        found.sort_by(|a, b| compare(&a.key, &b.key, descending));
        found.dedup_by(|a, b| a.key.1 == b.key.1);
        let (mut taken, mut bytes) = (0, 0);
        for row in &found {
            if taken == size || (taken > 0 && bytes + row.stored.data.len() > PAGE_DATA_BYTES) {
                break;
            }
            bytes += row.stored.data.len();
            taken += 1;
        }
        let rest = found.split_off(taken);
        // Where each query read stands now: its first match left for a later page, or done.
        for (i, count) in read.iter().enumerate() {
            let Some(count) = count else { continue };
            ahead[i] = match rest.iter().find(|row| row.query == i) {
                Some(row) => Ahead::At(row.key.clone()),
                None if *count <= size => Ahead::Done,
                // Every match it read was a duplicate taken through another query.
                None => Ahead::Unknown,
            };
        }
        let more = ahead.iter().any(|a| *a != Ahead::Done);
        let next = match found.last() {
            Some(last) if more => Some(encode(&last.key, &ahead)),
            _ => None,
        };
        let records = found.into_iter().map(|row| Record::from_stored(row.stored)).collect::<Result<_>>()?;
        Ok(Page { records, next })
    }
}

/// A record read for a page: its place in the order, and the query that found it.
struct Found {
    key: Key,
    stored: StoredRecord,
    query: usize,
}

/// A place in the order: the order field's value and the id.
type Key = (Value, String);

/// Where one query of a page stands.
#[derive(Clone, Debug, PartialEq)]
enum Ahead {
    /// Not read yet.
    Unknown,
    /// No matches left.
    Done,
    /// Its next match (not sent yet) is here.
    At(Key),
}

/// What a page's cursor holds: the last record sent, and where each query stands.
#[derive(Debug, PartialEq)]
struct Cursor {
    after: Option<Key>,
    ahead: Vec<Ahead>,
}

/// The last place a page of `size` can end, from the records found so far; `None` while
/// fewer than `size` are found.
fn page_end(found: &[Found], size: usize, descending: bool) -> Option<Key> {
    let mut keys: Vec<&Key> = found.iter().map(|row| &row.key).collect();
    keys.sort_by(|a, b| compare(a, b, descending));
    keys.dedup_by(|a, b| a.1 == b.1);
    keys.get(size - 1).map(|key| (*key).clone())
}

/// The order of two places: by value (reversed when `descending`), then by id.
fn compare(a: &Key, b: &Key, descending: bool) -> Ordering {
    let by_value = compare_values(&a.0, &b.0);
    (if descending { by_value.reverse() } else { by_value }).then_with(|| a.1.cmp(&b.1))
}

/// The value a record holds in the order `field` (`null` without one).
fn key_of(stored: &StoredRecord, field: Option<&str>) -> Result<Value> {
    let value = match field {
        None => Value::Null,
        Some("id") => Value::String(stored.id.clone()),
        Some("createdAt") => Value::String(stored.created_at.clone()),
        Some("updatedAt") => Value::String(stored.updated_at.clone()),
        Some(field) => {
            let data: Value = serde_json::from_str(&stored.data).map_err(|e| {
                PluginError::Internal(format!("stored {} {} does not parse: {e}", stored.record_type, stored.id))
            })?;
            data.get(field).cloned().unwrap_or(Value::Null)
        }
    };
    match value {
        Value::Array(_) | Value::Object(_) => {
            Err(PluginError::Internal(format!("cannot page in the order of {field:?}: it holds an array or object")))
        }
        scalar => Ok(scalar),
    }
}

/// The store's order of scalars: null, then numbers (and booleans, as 0 and 1), then text
/// by bytes. (Compare a field only with values of one JSON type; see the query docs.)
fn compare_values(a: &Value, b: &Value) -> Ordering {
    fn number(v: &Value) -> Option<f64> {
        match v {
            Value::Bool(b) => Some(f64::from(u8::from(*b))),
            Value::Number(n) => n.as_f64(),
            _ => None,
        }
    }
    let rank = |v: &Value| match v {
        Value::Null => 0,
        Value::Bool(_) | Value::Number(_) => 1,
        _ => 2,
    };
    match (a, b) {
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Number(x), Value::Number(y)) if x.is_i64() && y.is_i64() => x.as_i64().cmp(&y.as_i64()),
        _ => match (number(a), number(b)) {
            (Some(x), Some(y)) => x.total_cmp(&y),
            _ => rank(a).cmp(&rank(b)),
        },
    }
}

fn field_value(value: &Value) -> FieldValue {
    match value {
        Value::Bool(b) => FieldValue::Boolean(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => FieldValue::Integer(i),
            None => FieldValue::Float(n.as_f64().unwrap_or_default()),
        },
        Value::String(s) => FieldValue::Text(s.clone()),
        _ => FieldValue::Null,
    }
}

/// A cursor as JSON text: `[value, id, ahead]`, where each query's place is `false` when it
/// is done and `[value, id]` of its next match otherwise.
fn encode(after: &Key, ahead: &[Ahead]) -> String {
    let ahead: Vec<Value> = ahead
        .iter()
        .map(|a| match a {
            Ahead::Unknown => Value::Null,
            Ahead::Done => Value::Bool(false),
            Ahead::At((value, id)) => serde_json::json!([value, id]),
        })
        .collect();
    serde_json::json!([after.0, after.1, ahead]).to_string()
}

fn decode(cursor: &str, queries: usize) -> Result<Cursor> {
    let bad = || PluginError::Internal(format!("not a page cursor: {cursor:?}"));
    let key = |v: &Value| match v.as_array().map(Vec::as_slice) {
        Some([value, Value::String(id)]) => Some((value.clone(), id.clone())),
        _ => None,
    };
    let parsed: Value = serde_json::from_str(cursor).map_err(|_| bad())?;
    let Some([value, Value::String(id), rest @ ..]) = parsed.as_array().map(Vec::as_slice) else { return Err(bad()) };
    let ahead = match rest {
        [Value::Array(ahead)] if ahead.len() == queries => ahead
            .iter()
            .map(|a| match a {
                Value::Null => Some(Ahead::Unknown),
                Value::Bool(false) => Some(Ahead::Done),
                other => key(other).map(Ahead::At),
            })
            .collect::<Option<Vec<_>>>()
            .ok_or_else(bad)?,
        // A cursor of other queries: read them all.
        _ => vec![Ahead::Unknown; queries],
    };
    Ok(Cursor { after: Some((value.clone(), id.clone())), ahead })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cursors_round_trip() {
        for value in [json!(null), json!(true), json!(-3), json!(2.5), json!("2026-01-01T00:00:00.000Z")] {
            let ahead = vec![Ahead::Done, Ahead::At((value.clone(), "b".into())), Ahead::Unknown];
            let cursor = encode(&(value.clone(), "an id".into()), &ahead);
            assert_eq!(decode(&cursor, 3).unwrap(), Cursor { after: Some((value, "an id".into())), ahead });
        }
        let other_queries = decode(&encode(&(json!(1), "a".into()), &[Ahead::Done]), 2).unwrap();
        assert_eq!(other_queries.ahead, vec![Ahead::Unknown; 2]);
        assert!(decode("not json", 1).is_err());
        assert!(decode("[1]", 1).is_err());
    }

    #[test]
    fn values_order_as_the_store_orders_them() {
        let ordered = [json!(null), json!(-1), json!(false), json!(0.5), json!(1), json!(2), json!("B"), json!("a")];
        for (i, a) in ordered.iter().enumerate() {
            for (j, b) in ordered.iter().enumerate() {
                assert_eq!(compare_values(a, b), i.cmp(&j), "{a} vs {b}");
            }
        }
        let (a, b) = ((json!(1), "b".to_owned()), (json!(2), "a".to_owned()));
        assert!(compare(&a, &b, false).is_lt() && compare(&a, &b, true).is_gt());
        assert!(compare(&(json!(1), "a".into()), &a, true).is_lt(), "ties go by id either way");
    }

    #[test]
    fn a_page_ends_at_its_size_th_distinct_record() {
        let found = |key: (i64, &str), query| Found {
            key: (json!(key.0), key.1.into()),
            stored: StoredRecord {
                record_type: "T".into(),
                id: key.1.into(),
                data: "{}".into(),
                version: 1,
                created_at: String::new(),
                updated_at: String::new(),
            },
            query,
        };
        let rows = [found((3, "c"), 0), found((1, "a"), 0), found((1, "a"), 1), found((2, "b"), 1)];
        assert_eq!(page_end(&rows, 2, false), Some((json!(2), "b".into())));
        assert_eq!(page_end(&rows, 3, false), Some((json!(3), "c".into())));
        assert_eq!(page_end(&rows, 4, false), None);
        assert_eq!(page_end(&rows, 1, true), Some((json!(3), "c".into())));
    }
}

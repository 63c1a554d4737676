//! A native test harness: `cargo test` runs a plugin's `handle` on the build machine, with a
//! store the test seeds, without a server or a WebAssembly runtime. On the machine (not on
//! `wasm32`) the SDK's reads (`get`, [`crate::Query`], [`crate::Page`]) go to this store, and
//! `log` prints to standard error.
//!
//! ```ignore
//! use plugin_sdk::testing::{self, request};
//!
//! #[test]
//! fn a_user_lists_only_their_own() {
//!     testing::seed("BOOKMARK", "a1", json!({ "ownerId": "alice", "title": "Mine" }));
//!     testing::seed("BOOKMARK", "b1", json!({ "ownerId": "bob", "title": "Bob's" }));
//!     let res = Bookmarks::handle(request("list").user("alice").build()).unwrap();
//!     assert_eq!(res.status(), 200);
//!     assert_eq!(res.body_json()[0]["id"], "a1");
//! }
//! ```
//!
//! The store is per test thread (cargo runs each test on its own thread) and starts empty.
//! It answers the host's queries as the host does (conditions, order, keyset position, limit)
//! but does not enforce grants or quotas: `tidings plugin test` runs the real runtime for that.

use std::cell::RefCell;
use std::cmp::Ordering;

use serde_json::Value;

use crate::bindings::tidings::plugin::types::{self, Actor, Comparison, Role, StoreError, StoredRecord, User};
use crate::{FieldValue, Request};

/// The instant of a record seeded without one, and of a request built without `now`.
pub const NOW: &str = "2026-01-01T00:00:00.000Z";

thread_local! {
    static RECORDS: RefCell<Vec<StoredRecord>> = const { RefCell::new(Vec::new()) };
}

/// Store a record (version 1, created and updated at [`NOW`]), replacing one with its id.
pub fn seed(record_type: &str, id: &str, data: Value) {
    seed_at(record_type, id, data, NOW);
}

/// [`seed`] with `createdAt` and `updatedAt` at `at`.
pub fn seed_at(record_type: &str, id: &str, data: Value, at: &str) {
    RECORDS.with_borrow_mut(|records| {
        records.retain(|r| !(r.record_type == record_type && r.id == id));
        records.push(StoredRecord {
            record_type: record_type.into(),
            id: id.into(),
            data: data.to_string(),
            version: 1,
            created_at: at.into(),
            updated_at: at.into(),
        });
    });
}

/// Empty this thread's store.
pub fn clear() {
    RECORDS.with_borrow_mut(Vec::clear);
}

/// A request for the action `action` (the name in the descriptor), anonymous, at [`NOW`].
pub fn request(action: &str) -> RequestBuilder {
    RequestBuilder(types::Request {
        actor: Actor::Anonymous,
        action: action.into(),
        params: Vec::new(),
        query: Vec::new(),
        body: None,
        now: NOW.into(),
        socket_id: None,
        upload: None,
        cursor: None,
    })
}

/// Builds a [`Request`] as the host would route it.
pub struct RequestBuilder(types::Request);

impl RequestBuilder {
    /// Signed in as the user `id` (session `session-<id>`).
    pub fn user(self, id: &str) -> Self {
        self.actor(id, Role::User)
    }

    /// Signed in as the ADMIN `id`.
    pub fn admin(self, id: &str) -> Self {
        self.actor(id, Role::Admin)
    }

    fn actor(mut self, id: &str, role: Role) -> Self {
        self.0.actor = Actor::User(User { id: id.into(), role, session_id: format!("session-{id}") });
        self
    }

    /// A path parameter, e.g. `.param("id", "a1")` for `/:id`.
    pub fn param(mut self, name: &str, value: &str) -> Self {
        self.0.params.push((name.into(), value.into()));
        self
    }

    pub fn query(mut self, name: &str, value: &str) -> Self {
        self.0.query.push((name.into(), value.into()));
        self
    }

    pub fn body(mut self, body: Value) -> Self {
        self.0.body = Some(body.to_string());
        self
    }

    pub fn now(mut self, now: &str) -> Self {
        self.0.now = now.into();
        self
    }

    pub fn build(self) -> Request {
        Request::from(self.0)
    }
}

pub(crate) fn get(record_type: &str, id: &str) -> Result<Option<StoredRecord>, StoreError> {
    Ok(RECORDS.with_borrow(|records| records.iter().find(|r| r.record_type == record_type && r.id == id).cloned()))
}

pub(crate) fn find(q: &types::Query) -> Result<Vec<StoredRecord>, StoreError> {
    // As the host: no record holds U+0000, and a query comparing with it is refused.
    let holds_nul = |v: &FieldValue| match v {
        FieldValue::Text(t) => t.contains('\0'),
        FieldValue::Texts(ts) => ts.iter().any(|t| t.contains('\0')),
        FieldValue::Null | FieldValue::Boolean(_) | FieldValue::Integer(_) | FieldValue::Float(_) => false,
    };
    let nul = q.conditions.iter().any(|c| holds_nul(&c.value))
        || q.after.as_ref().is_some_and(|after| holds_nul(&after.value) || after.id.contains('\0'));
    if nul {
        return Err(StoreError::InvalidQuery("no text in a query may hold U+0000 (NUL)".into()));
    }
    let mut found: Vec<StoredRecord> = RECORDS.with_borrow(|records| {
        records
            .iter()
            .filter(|r| r.record_type == q.record_type && q.conditions.iter().all(|c| holds(r, c)))
            .cloned()
            .collect()
    });
    // A record's place in the order: the order field's value (none without `order-by`), then
    // its id; a keyset position is such a place.
    let key = |r: &StoredRecord| (q.order_by.as_ref().map_or(Value::Null, |o| field(r, &o.field)), r.id.clone());
    let order = |(a, a_id): &(Value, String), (b, b_id): &(Value, String)| {
        let by_field = nulls_first(a, b);
        let by_field = if q.order_by.as_ref().is_some_and(|o| o.descending) { by_field.reverse() } else { by_field };
        by_field.then_with(|| a_id.cmp(b_id))
    };
    found.sort_by(|a, b| order(&key(a), &key(b)));
    if let Some(after) = &q.after {
        let position = (json(&after.value), after.id.clone());
        found.retain(|r| order(&key(r), &position) == Ordering::Greater);
    }
    if let Some(limit) = q.limit {
        found.truncate(limit as usize);
    }
    Ok(found)
}

/// A record's field as the host reads it: `id`, `createdAt`, `updatedAt`, or from `data`.
fn field(r: &StoredRecord, name: &str) -> Value {
    match name {
        "id" => Value::String(r.id.clone()),
        "createdAt" => Value::String(r.created_at.clone()),
        "updatedAt" => Value::String(r.updated_at.clone()),
        _ => serde_json::from_str::<Value>(&r.data).ok().and_then(|d| d.get(name).cloned()).unwrap_or(Value::Null),
    }
}

fn json(v: &FieldValue) -> Value {
    match v {
        FieldValue::Null => Value::Null,
        FieldValue::Boolean(b) => Value::Bool(*b),
        FieldValue::Integer(i) => (*i).into(),
        FieldValue::Float(f) => (*f).into(),
        FieldValue::Text(t) => Value::String(t.clone()),
        FieldValue::Texts(t) => t.iter().cloned().map(Value::String).collect(),
    }
}

/// Values of one kind compare (numbers as numbers, texts bytewise); others do not.
fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        (Value::String(x), Value::String(y)) => Some(x.as_bytes().cmp(y.as_bytes())),
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

fn nulls_first(a: &Value, b: &Value) -> Ordering {
    match (a.is_null(), b.is_null()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        (false, false) => compare(a, b).unwrap_or(Ordering::Equal),
    }
}

fn holds(r: &StoredRecord, c: &types::Condition) -> bool {
    let value = field(r, &c.field);
    let wanted = json(&c.value);
    let texts = |w: &Value| w.as_array().cloned().unwrap_or_else(|| vec![w.clone()]);
    match c.op {
        // Like SQL: a missing field (null) equals nothing but a null.
        Comparison::Eq => compare(&value, &wanted) == Some(Ordering::Equal) || (value.is_null() && wanted.is_null()),
        Comparison::Ne => compare(&value, &wanted).is_some_and(|o| o != Ordering::Equal),
        Comparison::Lt => compare(&value, &wanted) == Some(Ordering::Less),
        Comparison::Le => compare(&value, &wanted).is_some_and(|o| o != Ordering::Greater),
        Comparison::Gt => compare(&value, &wanted) == Some(Ordering::Greater),
        Comparison::Ge => compare(&value, &wanted).is_some_and(|o| o != Ordering::Less),
        Comparison::In => texts(&wanted).contains(&value),
        Comparison::Contains => {
            // The elements as the host's element index holds them: strings as they are,
            // numbers and booleans as JSON; nulls, objects and nested arrays not at all.
            let elements: Vec<String> = (value.as_array().into_iter().flatten())
                .filter_map(|item| match item {
                    Value::String(s) => Some(s.clone()),
                    Value::Number(_) | Value::Bool(_) => Some(item.to_string()),
                    Value::Null | Value::Array(_) | Value::Object(_) => None,
                })
                .collect();
            texts(&wanted).iter().any(|w| w.as_str().is_some_and(|w| elements.iter().any(|e| e == w)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Query;
    use serde_json::json;

    #[test]
    fn queries_filter_order_and_page_as_the_host_does() {
        seed_at("NOTE", "n2", json!({ "authorId": "alice", "rank": 2, "tags": ["a"] }), "2026-01-02T00:00:00.000Z");
        seed_at("NOTE", "n1", json!({ "authorId": "alice", "rank": 1, "tags": ["b"] }), "2026-01-01T12:00:00.000Z");
        seed("NOTE", "n3", json!({ "authorId": "bob", "rank": 3, "tags": [7, null, true] }));
        seed("OTHER", "x", json!({ "authorId": "alice" }));
        let ids = |q: Query| q.fetch::<Value>().unwrap().into_iter().map(|r| r.id).collect::<Vec<_>>();
        assert_eq!(ids(Query::new("NOTE").eq("authorId", "alice").order_by("rank")), ["n1", "n2"]);
        assert_eq!(ids(Query::new("NOTE").order_by_desc("rank").limit(2)), ["n3", "n2"]);
        assert_eq!(ids(Query::new("NOTE").filter("rank", Comparison::Ge, 2)), ["n2", "n3"]);
        assert_eq!(ids(Query::new("NOTE").contains("tags", "b")), ["n1"]);
        // Numbers and booleans are elements as their JSON text; nulls are not elements.
        assert_eq!(ids(Query::new("NOTE").contains_any("tags", ["7", "true"])), ["n3"]);
        assert!(ids(Query::new("NOTE").contains("tags", "null")).is_empty());
        assert_eq!(ids(Query::new("NOTE").is_in("id", ["n3", "x"])), ["n3"]);
        assert_eq!(ids(Query::new("NOTE").order_by("createdAt")), ["n3", "n1", "n2"], "seeded at NOW sorts first");
        let second_page = |q: Query| {
            let mut q = q;
            q.0.after =
                Some(types::Position { value: FieldValue::Text("2026-01-01T12:00:00.000Z".into()), id: "n1".into() });
            ids(q)
        };
        assert_eq!(second_page(Query::new("NOTE").order_by("createdAt")), ["n2"], "a keyset position on createdAt");
        assert!(crate::get::<Value>("NOTE", "n9").unwrap().is_none());
        assert!(matches!(
            Query::new("NOTE").eq("authorId", "al\u{0}ice").fetch::<Value>(),
            Err(crate::PluginError::Internal(m)) if m.contains("U+0000")
        ));
        clear();
        assert!(ids(Query::new("NOTE")).is_empty());
    }
}

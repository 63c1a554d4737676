//! Typed records and the store reads: [`Record`], [`get`] and [`Query`].

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::bindings::tidings::plugin::types;
use crate::store;
use crate::{Comparison, Condition, FieldValue, Order, PluginError, Result, StoredRecord};

/// A record of type `T`: the plugin's fields plus the host-owned id, version and timestamps.
#[derive(Clone, Debug)]
pub struct Record<T> {
    pub record_type: String,
    pub id: String,
    /// The stored version; [`crate::Response::update`] expects it unchanged at commit.
    pub version: u64,
    pub created_at: String,
    pub updated_at: String,
    pub data: T,
}

impl<T> Record<T> {
    /// A record that does not exist yet, stamped with the request time `now` exactly as
    /// the host will stamp it when the insert commits.
    pub fn new(record_type: &str, now: &str, data: T) -> Self {
        Record {
            record_type: record_type.into(),
            id: new_id(),
            version: 0,
            created_at: now.into(),
            updated_at: now.into(),
            data,
        }
    }

    /// Mark the record as modified at `now`, as the host will stamp it on update.
    pub fn touch(&mut self, now: &str) {
        self.updated_at = now.into();
    }
}

impl<T: DeserializeOwned> Record<T> {
    /// Parse a stored record's data into `T`.
    pub fn from_stored(stored: StoredRecord) -> Result<Self> {
        let data = serde_json::from_str(&stored.data).map_err(|e| {
            PluginError::Internal(format!("stored {} {} does not parse: {e}", stored.record_type, stored.id))
        })?;
        Ok(Record {
            record_type: stored.record_type,
            id: stored.id,
            version: stored.version,
            created_at: stored.created_at,
            updated_at: stored.updated_at,
            data,
        })
    }
}

impl<T: Serialize> Record<T> {
    /// The record as the HTTP API returns it: `id`, the fields, `createdAt`, `updatedAt`.
    pub fn to_json(&self) -> Value {
        let mut object = Map::new();
        object.insert("id".into(), Value::String(self.id.clone()));
        if let Value::Object(fields) = serde_json::to_value(&self.data).expect("record data serializes") {
            object.extend(fields);
        }
        object.insert("createdAt".into(), Value::String(self.created_at.clone()));
        object.insert("updatedAt".into(), Value::String(self.updated_at.clone()));
        Value::Object(object)
    }

    pub(crate) fn data_json(&self) -> String {
        serde_json::to_string(&self.data).expect("record data serializes")
    }
}

impl<T: Serialize> Serialize for Record<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> core::result::Result<S::Ok, S::Error> {
        self.to_json().serialize(s)
    }
}

/// A fresh record id: a UUID v7 string, which starts with the time it was made in
/// milliseconds and goes on at random. Ids made one after another sort in that order, so
/// the stores' indexes take new records at their end rather than on a random page each.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Read one record by id.
pub fn get<T: DeserializeOwned>(record_type: &str, id: &str) -> Result<Option<Record<T>>> {
    store::get(record_type, id)?.map(Record::from_stored).transpose()
}

/// A query over one record type:
/// `Query::new("SEMESTER").filter("start", Comparison::Le, now).order_by("start").fetch()`.
pub struct Query(pub(crate) types::Query);

impl Query {
    pub fn new(record_type: &str) -> Self {
        Query(types::Query {
            record_type: record_type.into(),
            conditions: Vec::new(),
            order_by: None,
            limit: None,
            after: None,
        })
    }

    /// Add the condition `field op value`.
    pub fn filter(mut self, field: &str, op: Comparison, value: impl Into<FieldValue>) -> Self {
        self.0.conditions.push(Condition { field: field.into(), op, value: value.into() });
        self
    }

    pub fn eq(self, field: &str, value: impl Into<FieldValue>) -> Self {
        self.filter(field, Comparison::Eq, value)
    }

    /// The field equals one of `values` (a field of strings, or `id`).
    pub fn is_in<S: Into<String>>(self, field: &str, values: impl IntoIterator<Item = S>) -> Self {
        let values = values.into_iter().map(Into::into).collect();
        self.filter(field, Comparison::In, FieldValue::Texts(values))
    }

    /// The array field holds `value`. The record type's plugin must declare
    /// [`crate::Descriptor::index_elements`] on the field.
    pub fn contains(self, field: &str, value: impl Into<String>) -> Self {
        self.filter(field, Comparison::Contains, FieldValue::Text(value.into()))
    }

    /// The array field holds at least one of `values`.
    pub fn contains_any<S: Into<String>>(self, field: &str, values: impl IntoIterator<Item = S>) -> Self {
        let values = values.into_iter().map(Into::into).collect();
        self.filter(field, Comparison::Contains, FieldValue::Texts(values))
    }

    pub fn order_by(mut self, field: &str) -> Self {
        self.0.order_by = Some(Order { field: field.into(), descending: false });
        self
    }

    pub fn order_by_desc(mut self, field: &str) -> Self {
        self.0.order_by = Some(Order { field: field.into(), descending: true });
        self
    }

    pub fn limit(mut self, limit: u32) -> Self {
        self.0.limit = Some(limit);
        self
    }

    /// Run the query and parse every record.
    pub fn fetch<T: DeserializeOwned>(self) -> Result<Vec<Record<T>>> {
        store::find(&self.0)?.into_iter().map(Record::from_stored).collect()
    }

    /// Run the query and return the first record, if any.
    pub fn first<T: DeserializeOwned>(self) -> Result<Option<Record<T>>> {
        Ok(self.limit(1).fetch()?.into_iter().next())
    }
}

impl From<&str> for FieldValue {
    fn from(s: &str) -> Self {
        FieldValue::Text(s.into())
    }
}

impl From<String> for FieldValue {
    fn from(s: String) -> Self {
        FieldValue::Text(s)
    }
}

impl From<i64> for FieldValue {
    fn from(n: i64) -> Self {
        FieldValue::Integer(n)
    }
}

impl From<i32> for FieldValue {
    fn from(n: i32) -> Self {
        FieldValue::Integer(n.into())
    }
}

impl From<f64> for FieldValue {
    fn from(f: f64) -> Self {
        FieldValue::Float(f)
    }
}

impl<T: Into<FieldValue>> From<Option<T>> for FieldValue {
    fn from(v: Option<T>) -> Self {
        v.map_or(FieldValue::Null, Into::into)
    }
}

impl From<bool> for FieldValue {
    fn from(b: bool) -> Self {
        FieldValue::Boolean(b)
    }
}

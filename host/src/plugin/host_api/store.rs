//! `tidings:plugin/store`: record reads inside the request's transaction, limited to the
//! record types the plugin's grants name and to a byte quota per call.
//!
//! A refusal (ungranted type, malformed query, quota) is a WIT `store-error` the plugin can
//! handle; a database failure is the host's fault and traps the call, remembered in
//! [`StoreState::host_error`] so the caller answers 500 rather than blaming the plugin.
//!
//! A call run ahead of its turn in the write pipeline reads on a reader connection instead,
//! and every read is kept with its answer ([`Read`]), to be asked again in the transaction
//! its result is applied in ([`StoreState::replay`]).

use std::collections::BTreeSet;
use std::sync::Arc;

use sqlx::Any;
use sqlx::pool::PoolConnection;
use wasmtime::component::{HasSelf, Linker};

use crate::db::{self, Dialect, records};
use crate::plugin::bindings::{wit, wit_store};
use crate::plugin::ctx::PluginCtx;

/// Per-call state of the store capability.
pub struct StoreState {
    /// The request's transaction; taken back by the runtime after the call.
    pub tx: Option<db::Tx>,
    /// A reader connection, for a call run ahead of its turn (then `tx` is `None`).
    pub reader: Option<PoolConnection<Any>>,
    /// The reads made and their answers, when they are kept (a call run ahead).
    pub reads: Option<Vec<Read>>,
    dialect: Dialect,
    elements: records::ElementFields,
    /// Record types this plugin may read.
    readable: Arc<BTreeSet<String>>,
    bytes_read: usize,
    max_bytes_read: usize,
    /// A database failure met during the call, if any.
    pub host_error: Option<db::Error>,
}

impl StoreState {
    pub fn new(
        tx: Option<db::Tx>,
        dialect: Dialect,
        elements: records::ElementFields,
        readable: Arc<BTreeSet<String>>,
        max_bytes_read: usize,
    ) -> Self {
        StoreState {
            tx,
            reader: None,
            reads: None,
            dialect,
            elements,
            readable,
            bytes_read: 0,
            max_bytes_read,
            host_error: None,
        }
    }

    /// Ask `reads` again, in order, in this state's transaction: whether every one has the
    /// same answer now. A call whose reads all answer the same would do the same again.
    pub async fn replay(&mut self, reads: &[Read]) -> wasmtime::Result<bool> {
        for read in reads {
            let same = match read {
                Read::Get { record_type, id, answer } => {
                    self.get_record(record_type.clone(), id.clone()).await? == *answer
                }
                Read::Find { query, answer } => self.find_records(query.clone()).await? == *answer,
            };
            if !same {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn check_readable(&self, record_type: &str) -> Result<(), wit::StoreError> {
        if self.readable.contains(record_type) {
            Ok(())
        } else {
            Err(wit::StoreError::AccessDenied(format!("record type {record_type} is not in the plugin's read grants")))
        }
    }

    fn conn(&mut self) -> wasmtime::Result<&mut sqlx::AnyConnection> {
        match (self.tx.as_mut(), self.reader.as_mut()) {
            (Some(tx), _) => Ok(&mut **tx),
            (None, Some(reader)) => Ok(&mut **reader),
            (None, None) => Err(wasmtime::format_err!("the store is not available outside a request")),
        }
    }

    /// Count `records` against the quota; `Err` once it is exceeded.
    fn charge(&mut self, records: &[records::StoredRecord]) -> Result<(), wit::StoreError> {
        self.bytes_read += records.iter().map(|r| r.data.len() + 128).sum::<usize>();
        if self.bytes_read > self.max_bytes_read {
            return Err(wit::StoreError::QuotaExceeded(format!(
                "read more than {} bytes in one call",
                self.max_bytes_read
            )));
        }
        Ok(())
    }

    fn host_failure(&mut self, err: db::Error) -> wasmtime::Error {
        let message = format!("store read failed: {err}");
        self.host_error = Some(err);
        wasmtime::format_err!(message)
    }

    async fn get_record(
        &mut self,
        record_type: String,
        id: String,
    ) -> wasmtime::Result<Answer<Option<wit::StoredRecord>>> {
        if let Err(denied) = self.check_readable(&record_type) {
            return Ok(Err(denied));
        }
        let found = match records::get(self.conn()?, &record_type, &id).await {
            Ok(found) => found,
            Err(err) => return Err(self.host_failure(err)),
        };
        if let Err(quota) = self.charge(found.as_slice()) {
            return Ok(Err(quota));
        }
        Ok(Ok(found.map(into_wit)))
    }

    async fn find_records(&mut self, q: wit::Query) -> wasmtime::Result<Answer<Vec<wit::StoredRecord>>> {
        if let Err(denied) = self.check_readable(&q.record_type) {
            return Ok(Err(denied));
        }
        let query = from_wit_query(q);
        let (dialect, elements) = (self.dialect, self.elements.clone());
        let found = match records::find(self.conn()?, dialect, &elements, &query).await {
            Ok(Ok(found)) => found,
            Ok(Err(invalid)) => return Ok(Err(wit::StoreError::InvalidQuery(invalid.to_string()))),
            Err(err) => return Err(self.host_failure(err)),
        };
        if let Err(quota) = self.charge(&found) {
            return Ok(Err(quota));
        }
        Ok(Ok(found.into_iter().map(into_wit).collect()))
    }
}

/// What a read answers the plugin.
type Answer<T> = Result<T, wit::StoreError>;

/// A read a call made, and its answer.
#[derive(Debug)]
pub enum Read {
    Get { record_type: String, id: String, answer: Answer<Option<wit::StoredRecord>> },
    Find { query: wit::Query, answer: Answer<Vec<wit::StoredRecord>> },
}

impl wit_store::Host for StoreState {
    async fn get(&mut self, record_type: String, id: String) -> wasmtime::Result<Answer<Option<wit::StoredRecord>>> {
        if self.reads.is_none() {
            return self.get_record(record_type, id).await;
        }
        let answer = self.get_record(record_type.clone(), id.clone()).await?;
        if let Some(reads) = &mut self.reads {
            reads.push(Read::Get { record_type, id, answer: answer.clone() });
        }
        Ok(answer)
    }

    async fn find(&mut self, q: wit::Query) -> wasmtime::Result<Answer<Vec<wit::StoredRecord>>> {
        if self.reads.is_none() {
            return self.find_records(q).await;
        }
        let answer = self.find_records(q.clone()).await?;
        if let Some(reads) = &mut self.reads {
            reads.push(Read::Find { query: q, answer: answer.clone() });
        }
        Ok(answer)
    }
}

pub fn add_to_linker(linker: &mut Linker<PluginCtx>) -> wasmtime::Result<()> {
    wit_store::add_to_linker::<PluginCtx, HasSelf<StoreState>>(linker, |ctx| &mut ctx.store)
}

fn into_wit(r: records::StoredRecord) -> wit::StoredRecord {
    wit::StoredRecord {
        record_type: r.record_type,
        id: r.id,
        data: r.data,
        version: u64::try_from(r.version).unwrap_or_default(),
        created_at: r.created_at,
        updated_at: r.updated_at,
    }
}

fn from_wit_query(q: wit::Query) -> records::Query {
    records::Query {
        record_type: q.record_type,
        conditions: q
            .conditions
            .into_iter()
            .map(|c| records::Condition {
                field: c.field,
                op: match c.op {
                    wit::Comparison::Eq => records::Op::Eq,
                    wit::Comparison::Ne => records::Op::Ne,
                    wit::Comparison::Lt => records::Op::Lt,
                    wit::Comparison::Le => records::Op::Le,
                    wit::Comparison::Gt => records::Op::Gt,
                    wit::Comparison::Ge => records::Op::Ge,
                    wit::Comparison::In => records::Op::In,
                    wit::Comparison::Contains => records::Op::Contains,
                },
                value: from_wit_value(c.value),
            })
            .collect(),
        order_by: q.order_by.map(|o| (o.field, o.descending)),
        limit: q.limit,
        after: q.after.map(|p| records::Position { value: from_wit_value(p.value), id: p.id }),
    }
}

fn from_wit_value(value: wit::Value) -> records::Value {
    match value {
        wit::Value::Null => records::Value::Null,
        wit::Value::Boolean(b) => records::Value::Bool(b),
        wit::Value::Integer(i) => records::Value::Int(i),
        wit::Value::Float(f) => records::Value::Float(f),
        wit::Value::Text(t) => records::Value::Text(t),
        wit::Value::Texts(t) => records::Value::Texts(t),
    }
}

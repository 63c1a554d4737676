//! The steps between the plugin runtime and the database: the output checks every plugin
//! answer passes, and applying a checked answer (writes with version checks, the
//! notification log, stored tasks) inside a transaction. [`crate::pipeline`] runs these steps
//! for every change, in group-committed batches; [`read`] runs a GET in a read snapshot.
//!
//! Plugins are pure controllers (their only inputs are the request and their reads), so a
//! transaction that the database aborts for a transient reason is simply run again.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::db::notifications::{self as log, LoggedNotification};
use crate::db::{self, Db, Dialect};
use crate::db::{records, users};
use crate::notifications::{ADMIN_ROOM, ALL_ROOM, session_room, user_room};
use crate::plugin::types::{Change, Notification, Response, Target, Write};
use crate::plugin::{self, LoadedPlugin, Runtime, types};

/// Most attempts for a transaction aborted by a transient database conflict.
const MAX_ATTEMPTS: u32 = 4;

/// Caps on what one plugin response may carry.
pub const MAX_BODY_BYTES: usize = 4 << 20;
pub const MAX_WRITES: usize = 1_000;
/// Above the default request body limit (1 MiB), so that a record built from any accepted
/// body fits; a plugin that amplifies its input past it faults.
pub const MAX_RECORD_BYTES: usize = 4 << 20;
pub const MAX_NOTIFICATIONS: usize = 1_000;
pub const MAX_TARGETS: usize = 100;
pub const MAX_TASKS: usize = 16;

/// The record fields the host owns: stamped by it, never stored from a plugin's data.
pub const HOST_FIELDS: [&str; 4] = ["id", "createdAt", "updatedAt", "version"];

/// A committed outcome: what to answer and what to emit.
#[derive(Debug)]
pub struct Outcome {
    pub status: u16,
    pub body: Option<String>,
    pub notifications: Vec<LoggedNotification>,
    /// How many background tasks the request stored.
    pub tasks: usize,
    /// A GET's list goes on after `body`, its first page: see [`crate::pages`].
    pub next: Option<crate::pages::Rest>,
}

#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    #[error(transparent)]
    Plugin(#[from] plugin::Error),
    /// A write's version check failed: someone changed the record meanwhile.
    #[error("{0}")]
    Conflict(String),
    /// The database refused a written value (too large for an index).
    #[error("{0}")]
    ValueTooLarge(String),
    #[error(transparent)]
    Db(#[from] db::Error),
    /// The host could not do the work (e.g. the write pipeline stopped). Blame: host.
    #[error("{0}")]
    Internal(String),
}

/// Run a read-only request (a GET) through `plugin` in one read snapshot. Requests that may
/// write go through the write pipeline ([`crate::pipeline`]) instead.
pub async fn read(
    db: &Db,
    runtime: &Runtime,
    plugin: &LoadedPlugin,
    req: &types::Request,
) -> Result<Outcome, DispatchError> {
    plugin.available()?;
    let mut attempt = 1;
    loop {
        match read_once(db, runtime, plugin, req).await {
            Err(DispatchError::Db(err) | DispatchError::Plugin(plugin::Error::Host(err)))
                if err.is_transient() && attempt < MAX_ATTEMPTS =>
            {
                tracing::debug!(attempt, %err, "transaction aborted; retrying");
                tokio::time::sleep(Duration::from_millis(5 << attempt)).await;
                attempt += 1;
            }
            other => return other,
        }
    }
}

async fn read_once(
    db: &Db,
    runtime: &Runtime,
    plugin: &LoadedPlugin,
    req: &types::Request,
) -> Result<Outcome, DispatchError> {
    let tx = db.begin_read().await?;
    let (result, tx) = runtime.handle(plugin, None, req, tx).await;
    let response = result?;
    let checked = check(plugin, response, req, true).map_err(|m| fault(runtime, plugin, m))?;
    runtime.record_outcome(plugin, false);
    // A paged list keeps its snapshot for the pages to come.
    let tx = match (checked.next.clone(), tx) {
        (Some(cursor), Some(tx)) => {
            let next = Some(crate::pages::Rest { cursor, tx });
            return Ok(Outcome {
                status: checked.status,
                body: checked.body,
                notifications: Vec::new(),
                tasks: 0,
                next,
            });
        }
        (Some(_), None) => return Err(fault(runtime, plugin, "the transaction was lost during the call".into())),
        (None, tx) => tx,
    };
    // Nothing to keep (`check` refused writes): end the read snapshot.
    if let Some(tx) = tx {
        tx.rollback().await.map_err(db::Error::from)?;
    }
    Ok(Outcome { status: checked.status, body: checked.body, notifications: Vec::new(), tasks: 0, next: None })
}

/// A checked response applied inside a transaction, whose notifications are not logged yet:
/// the write pipeline logs those of a whole batch at once ([`log`]), which gives them their
/// offsets.
pub struct Applied {
    /// The outcome, without its notifications.
    pub outcome: Outcome,
    /// The notifications to log, in order, each with the host's stamps on its record.
    pub notifications: Vec<CheckedNotification>,
}

impl Applied {
    /// Log the notifications now, created at `now`: the outcome of a change applied alone
    /// (the write pipeline logs a whole batch's at once instead).
    pub async fn log(self, tx: &mut db::Tx, now: &str) -> Result<Outcome, db::Error> {
        let notifications = log(tx, self.notifications.into_iter().map(|n| (n, now.to_owned())).collect()).await?;
        Ok(Outcome { notifications, ..self.outcome })
    }
}

/// Apply a checked response inside `tx` (writes with their version checks, the tasks it
/// asked for), without committing or logging its notifications; on an error the caller
/// rolls back.
pub async fn apply(
    tx: &mut db::Tx,
    db: &Db,
    plugin: &LoadedPlugin,
    checked: Checked,
    now: &str,
) -> Result<Applied, DispatchError> {
    // What the host stamped on each record written: notified copies carry the same.
    let mut stamped = HashMap::new();
    for write in &checked.writes {
        check_user_write(tx, plugin, write).await?;
        match records::apply(tx, &db.elements, write, now).await {
            Ok(applied) => {
                let stamp = applied.map_err(|e| DispatchError::Conflict(e.to_string()))?;
                let (records::Write::Upsert { record_type, id, .. } | records::Write::Delete { record_type, id, .. }) =
                    write;
                stamped.insert((record_type.as_str(), id.as_str()), stamp);
            }
            Err(err) if err.is_value_too_large() => {
                return Err(DispatchError::ValueTooLarge(
                    "a value is too large to be stored in an indexed field".into(),
                ));
            }
            Err(err) => return Err(err.into()),
        }
    }
    records::wrote(db, checked.writes.len());
    let mut notifications = checked.notifications;
    for n in &mut notifications {
        let stamp = match n.payload.get("record").and_then(|r| r.get("id")) {
            Some(Value::String(id)) => stamped.get(&(n.record_type.as_str(), id.as_str())).cloned().flatten(),
            _ => None,
        };
        if let Some(stamp) = stamp
            && let Some(Value::Object(record)) = n.payload.get_mut("record")
        {
            record.insert("createdAt".into(), stamp.created_at.clone().into());
            record.insert("updatedAt".into(), stamp.updated_at.clone().into());
        }
    }
    for task in &checked.tasks {
        let stored = db::tasks::StoredTask {
            id: uuid::Uuid::new_v4().to_string(),
            plugin: plugin.descriptor.name.clone(),
            name: task.name.clone(),
            input: task.input.clone(),
            attempts: 0,
            last_error: None,
            created_at: now.to_owned(),
        };
        db::tasks::insert(tx, &stored).await?;
    }
    let outcome = Outcome {
        status: checked.status,
        body: checked.body,
        notifications: Vec::new(),
        tasks: checked.tasks.len(),
        next: None,
    };
    Ok(Applied { outcome, notifications })
}

/// Whether [`apply`] runs one statement at most for `checked`, one that cannot fail for the
/// plugin's sake, so that it needs no savepoint in a transaction holding others' writes: a
/// version conflict is answered inside the statement, not by its failure; on SQLite a statement
/// that fails changes nothing and leaves the transaction usable; on PostgreSQL, where it would
/// abort the transaction, the record is sure to fit its indexes.
pub fn one_safe_statement(db: &Db, checked: &Checked) -> bool {
    let element_indexed = checked.writes.iter().any(|write| {
        let (records::Write::Upsert { record_type, .. } | records::Write::Delete { record_type, .. }) = write;
        !db.elements.of(record_type).is_empty()
    });
    let statements =
        checked.writes.len() + checked.tasks.len() + if element_indexed { checked.writes.len() } else { 0 };
    statements <= 1 && (db.dialect == Dialect::Sqlite || checked.writes.iter().all(records::Write::surely_indexable))
}

/// `USER` records mirror the host's accounts: a plugin (with the grant) may change the other
/// fields of an existing one, never create or delete one, nor change the account's fields.
/// Anything else is invalid output.
async fn check_user_write(tx: &mut db::Tx, plugin: &LoadedPlugin, write: &records::Write) -> Result<(), DispatchError> {
    let invalid = |message: String| DispatchError::Plugin(plugin.invalid_output(message));
    let (records::Write::Upsert { record_type, id, .. } | records::Write::Delete { record_type, id, .. }) = write;
    if record_type != users::USER_RECORD_TYPE {
        return Ok(());
    }
    let records::Write::Upsert { data, expected_version: Some(_), .. } = write else {
        return Err(invalid("USER records are created and deleted by the host only".into()));
    };
    let account = users::by_id(&mut **tx, id).await?.ok_or_else(|| invalid(format!("there is no user {id}")))?;
    let data: Value = serde_json::from_str(data).unwrap_or_default();
    let host_values = [&account.email, &account.first_name, &account.last_name, &account.role];
    for (field, expected) in users::HOST_FIELDS.iter().zip(host_values) {
        if data.get(field).and_then(Value::as_str) != Some(expected.as_str()) {
            return Err(invalid(format!("USER field {field} is the host's and cannot be changed by a plugin")));
        }
    }
    Ok(())
}

/// Append a notification to the log inside `tx`, giving it the next offset.
pub async fn append_notification(
    tx: &mut db::Tx,
    n: CheckedNotification,
    now: &str,
) -> Result<LoggedNotification, db::Error> {
    let logged = log(tx, vec![(n, now.to_owned())]).await?;
    logged.into_iter().next().ok_or_else(|| db::Error::Corrupt("a logged notification went missing".into()))
}

/// Append notifications (each with its `createdAt`) to the log inside `tx`, in order, giving
/// them the next offsets: one counter update and one insert per hundred, however many.
pub async fn log(
    tx: &mut db::Tx,
    notifications: Vec<(CheckedNotification, String)>,
) -> Result<Vec<LoggedNotification>, db::Error> {
    if notifications.is_empty() {
        return Ok(Vec::new());
    }
    let count = i64::try_from(notifications.len()).unwrap_or(i64::MAX);
    let first = log::take_seqs(tx, count).await? - count + 1;
    let entries: Vec<LoggedNotification> = notifications
        .into_iter()
        .zip(first..)
        .map(|((n, created_at), seq)| {
            let mut payload = n.payload;
            payload.insert("offset".into(), seq.into());
            LoggedNotification {
                seq,
                event: n.event.into(),
                record_type: n.record_type,
                payload: Value::Object(payload).to_string(),
                targets: Value::from(n.rooms).to_string(),
                exclude_socket: n.exclude_socket,
                created_at,
            }
        })
        .collect();
    log::append(tx, &entries).await?;
    Ok(entries)
}

/// A plugin's answer to a socket event, under the rules of any plugin output: JSON of at
/// most [`MAX_BODY_BYTES`]; anything else is a fault.
pub fn check_reply(runtime: &Runtime, plugin: &LoadedPlugin, reply: &str) -> Result<Value, DispatchError> {
    if reply.len() > MAX_BODY_BYTES {
        return Err(fault(runtime, plugin, format!("the reply has {} bytes, more than {MAX_BODY_BYTES}", reply.len())));
    }
    let value =
        serde_json::from_str(reply).map_err(|e| fault(runtime, plugin, format!("the reply is not JSON: {e}")))?;
    runtime.record_outcome(plugin, false);
    Ok(value)
}

pub(crate) fn fault(runtime: &Runtime, plugin: &LoadedPlugin, message: String) -> DispatchError {
    plugin.stats.faults.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    runtime.record_outcome(plugin, true);
    DispatchError::Plugin(plugin.invalid_output(message))
}

/// A plugin response that passed [`check`].
pub struct Checked {
    status: u16,
    body: Option<String>,
    writes: Vec<records::Write>,
    notifications: Vec<CheckedNotification>,
    pub tasks: Vec<types::Task>,
    next: Option<String>,
}

impl Checked {
    /// A checked page of a list: its body and where the list goes on.
    pub(crate) fn into_page(self) -> (Option<String>, Option<String>) {
        (self.body, self.next)
    }

    /// The status, the body, and where a list goes on.
    pub(crate) fn into_parts(self) -> (u16, Option<String>, Option<String>) {
        (self.status, self.body, self.next)
    }

    /// The writes, as they will be applied.
    pub(crate) fn writes(&self) -> &[records::Write] {
        &self.writes
    }
}

/// A notification ready for the log: the Socket.IO event, its payload without the offset,
/// and the rooms it goes to.
pub struct CheckedNotification {
    pub event: &'static str,
    pub record_type: String,
    pub payload: Map<String, Value>,
    pub rooms: Vec<String>,
    pub exclude_socket: Option<String>,
}

/// Treat the plugin's output as untrusted: check every rule of the interface before any of
/// it touches the database or a socket. Public for the benchmarks.
pub fn check(
    plugin: &LoadedPlugin,
    response: Response,
    req: &types::Request,
    read_only: bool,
) -> Result<Checked, String> {
    check_for(plugin, response, &req.actor, req.socket_id.as_deref(), read_only)
}

/// [`check`] for a given caller: who may be addressed by session, and which socket is skipped.
/// A background task has no caller (`Actor::Anonymous`, no socket).
pub fn check_for(
    plugin: &LoadedPlugin,
    response: Response,
    actor: &types::Actor,
    socket_id: Option<&str>,
    read_only: bool,
) -> Result<Checked, String> {
    if !(200..300).contains(&response.status) {
        return Err(format!("status {} is not a success status; refusals are plugin-errors", response.status));
    }
    if let Some(body) = &response.body {
        if body.len() > MAX_BODY_BYTES {
            return Err(format!("the body has {} bytes, more than {MAX_BODY_BYTES}", body.len()));
        }
        serde_json::from_str::<serde::de::IgnoredAny>(body).map_err(|e| format!("the body is not JSON: {e}"))?;
    }
    // A list in pages (see `crate::pages`): a GET's, and each page a JSON array.
    if response.next.is_some() {
        if !read_only {
            return Err("only a GET action may answer a list in pages (next)".into());
        }
        let page = response.body.as_deref().unwrap_or_default();
        serde_json::from_str::<Vec<serde::de::IgnoredAny>>(page)
            .map_err(|_| "a page of a list (a response with next) must be a JSON array".to_owned())?;
    }
    if read_only && (!response.writes.is_empty() || !response.notifications.is_empty() || !response.tasks.is_empty()) {
        return Err("a GET action may not write, notify or start tasks".into());
    }
    if response.tasks.len() > MAX_TASKS {
        return Err(format!("{} tasks, more than {MAX_TASKS}", response.tasks.len()));
    }
    for task in &response.tasks {
        if task.name.is_empty() || task.name.len() > 64 || task.name.chars().any(char::is_control) {
            return Err(format!("{:?} is not a valid task name", task.name));
        }
        if task.input.len() > MAX_RECORD_BYTES {
            return Err(format!(
                "task {} has {} bytes of input, more than {MAX_RECORD_BYTES}",
                task.name,
                task.input.len()
            ));
        }
        serde_json::from_str::<serde::de::IgnoredAny>(&task.input)
            .map_err(|e| format!("task {} input is not JSON: {e}", task.name))?;
    }
    if response.writes.len() > MAX_WRITES {
        return Err(format!("{} writes, more than {MAX_WRITES}", response.writes.len()));
    }
    if response.notifications.len() > MAX_NOTIFICATIONS {
        return Err(format!("{} notifications, more than {MAX_NOTIFICATIONS}", response.notifications.len()));
    }
    let granted = |record_type: &str| {
        if plugin.may_write(record_type) {
            Ok(())
        } else {
            Err(format!("record type {record_type} is not in the plugin's write grants"))
        }
    };
    let writes = response
        .writes
        .into_iter()
        .map(|write| match write {
            Write::Upsert(u) => {
                granted(&u.record_type)?;
                check_id(&u.id)?;
                if u.data.len() > MAX_RECORD_BYTES {
                    return Err(format!("record {} has {} bytes, more than {MAX_RECORD_BYTES}", u.id, u.data.len()));
                }
                let data = serde_json::from_str::<Value>(&u.data);
                if data.as_ref().is_ok_and(records::json_holds_nul) {
                    return Err(format!("record {} data holds U+0000 (NUL), which cannot be stored", u.id));
                }
                let Ok(Value::Object(mut data)) = data else {
                    return Err(format!("record {} data is not a JSON object", u.id));
                };
                // The host owns these; a copy in the data would only go stale.
                for owned in HOST_FIELDS {
                    data.remove(owned);
                }
                Ok(records::Write::Upsert {
                    record_type: u.record_type,
                    id: u.id,
                    data: Value::Object(data).to_string(),
                    expected_version: u.expected_version.map(version),
                })
            }
            Write::Delete(d) => {
                granted(&d.record_type)?;
                check_id(&d.id)?;
                Ok(records::Write::Delete {
                    record_type: d.record_type,
                    id: d.id,
                    expected_version: d.expected_version.map(version),
                })
            }
        })
        .collect::<Result<_, String>>()?;
    let notifications = response
        .notifications
        .into_iter()
        .map(|n| check_notification(n, actor, socket_id, &granted))
        .collect::<Result<_, String>>()?;
    Ok(Checked {
        status: response.status,
        body: response.body,
        writes,
        notifications,
        tasks: response.tasks,
        next: response.next,
    })
}

fn check_notification(
    n: Notification,
    actor: &types::Actor,
    socket_id: Option<&str>,
    granted: &impl Fn(&str) -> Result<(), String>,
) -> Result<CheckedNotification, String> {
    granted(&n.record_type)?;
    check_id(&n.id)?;
    if n.targets.is_empty() || n.targets.len() > MAX_TARGETS {
        return Err(format!("a notification needs 1 to {MAX_TARGETS} targets"));
    }
    let mut rooms = Vec::with_capacity(n.targets.len());
    for target in &n.targets {
        rooms.push(match target {
            Target::All => ALL_ROOM.to_owned(),
            Target::Admins => ADMIN_ROOM.to_owned(),
            Target::User(id) => {
                check_id(id)?;
                user_room(id)
            }
            // Session ids are not the plugin's to know beyond the caller's own: a plugin
            // may address the requesting session, never another one.
            Target::Session(id) => match actor {
                types::Actor::User(user) if &user.session_id == id => session_room(id),
                _ => return Err("a plugin may address only the caller's own session".into()),
            },
        });
    }
    let mut payload = Map::new();
    payload.insert("type".into(), Value::String(n.record_type.clone()));
    let event = match n.change {
        Change::Created => "NEW_RECORD",
        Change::Changed => "CHANGED_RECORD",
        Change::Deleted => "DELETED_RECORD",
    };
    match n.change {
        Change::Created | Change::Changed => {
            let record = n.record.as_deref().ok_or_else(|| format!("{event} for {} needs the record", n.id))?;
            if record.len() > MAX_RECORD_BYTES {
                return Err(format!("notified record {} is too large", n.id));
            }
            let record: Value =
                serde_json::from_str(record).map_err(|e| format!("notified record is not JSON: {e}"))?;
            if record.get("id").and_then(Value::as_str) != Some(n.id.as_str()) {
                return Err(format!("notified record's id does not match {}", n.id));
            }
            payload.insert("record".into(), record);
        }
        Change::Deleted => {
            payload.insert("id".into(), Value::String(n.id.clone()));
        }
    }
    Ok(CheckedNotification {
        event,
        record_type: n.record_type,
        payload,
        rooms,
        exclude_socket: if n.to_self { None } else { socket_id.map(str::to_owned) },
    })
}

fn check_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > 128 || id.chars().any(char::is_control) {
        return Err(format!("{id:?} is not a valid id"));
    }
    Ok(())
}

fn version(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

//! The oracle for plugin output: what the host may accept from a plugin that owns `NOTE` and
//! nothing else, written from the interface's rules (`wit/`, docs/security.md) rather than from
//! `dispatch.rs`. Shared by the property tests (`tests/it/properties.rs`) and the fuzz target
//! (`fuzz/fuzz_targets/plugin_output.rs`, which includes this file by path).

use host::plugin::types::{Actor, Change, Request, Response, Target, Write};
use serde_json::Value;

// The output caps as docs/security.md states them.
pub const MAX_BODY_BYTES: usize = 4 << 20;
pub const MAX_WRITES: usize = 1_000;
pub const MAX_RECORD_BYTES: usize = 4 << 20;
pub const MAX_NOTIFICATIONS: usize = 1_000;
pub const MAX_TARGETS: usize = 100;

/// `Ok` when `response` to `req` obeys every output rule, else the first rule it breaks.
pub fn obeys_every_rule(response: &Response, req: &Request, read_only: bool) -> Result<(), String> {
    if !(200..=299).contains(&response.status) {
        return Err(format!("status {}", response.status));
    }
    if let Some(body) = &response.body
        && (body.len() > MAX_BODY_BYTES || !is_json(body))
    {
        return Err(format!("body {}", short(body)));
    }
    if read_only && (!response.writes.is_empty() || !response.notifications.is_empty()) {
        return Err("a read-only action wrote or notified".into());
    }
    if response.next.is_some() {
        // Syntactically, as `is_json`: numbers need not fit an `f64`.
        let is_array =
            response.body.as_deref().is_some_and(|b| serde_json::from_str::<Vec<serde::de::IgnoredAny>>(b).is_ok());
        if !read_only || !is_array {
            return Err("a page of a list (next) from a write, or not a JSON array".into());
        }
    }
    if response.writes.len() > MAX_WRITES || response.notifications.len() > MAX_NOTIFICATIONS {
        return Err(format!("{} writes, {} notifications", response.writes.len(), response.notifications.len()));
    }
    for write in &response.writes {
        let (record_type, id) = match write {
            Write::Upsert(u) => (&u.record_type, &u.id),
            Write::Delete(d) => (&d.record_type, &d.id),
        };
        if record_type != "NOTE" {
            return Err(format!("a write of record type {record_type:?}"));
        }
        valid_id(id)?;
        if let Write::Upsert(u) = write {
            let data = serde_json::from_str(&u.data);
            let is_object = matches!(data, Ok(Value::Object(_)));
            if u.data.len() > MAX_RECORD_BYTES || !is_object || data.as_ref().is_ok_and(has_nul) {
                return Err(format!("upsert data {}", short(&u.data)));
            }
        }
    }
    for n in &response.notifications {
        if n.record_type != "NOTE" {
            return Err(format!("a notification of record type {:?}", n.record_type));
        }
        valid_id(&n.id)?;
        if !(1..=MAX_TARGETS).contains(&n.targets.len()) {
            return Err(format!("{} targets", n.targets.len()));
        }
        for target in &n.targets {
            match target {
                Target::All | Target::Admins => {}
                Target::User(id) => valid_id(id)?,
                Target::Session(id) => match &req.actor {
                    Actor::User(user) if &user.session_id == id => {}
                    _ => return Err(format!("session target {} is not the caller's", short(id))),
                },
            }
        }
        if matches!(n.change, Change::Created | Change::Changed) {
            let record = n.record.as_deref().ok_or("a created/changed notification without its record")?;
            let parsed: Value = serde_json::from_str(record).map_err(|e| format!("notified record: {e}"))?;
            if record.len() > MAX_RECORD_BYTES || parsed.get("id") != Some(&Value::from(n.id.as_str())) {
                return Err(format!("notified record {} for id {}", short(record), short(&n.id)));
            }
        }
    }
    Ok(())
}

/// Syntactically JSON (RFC 8259): numbers need not fit an `f64`.
pub fn is_json(text: &str) -> bool {
    serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok()
}

/// Whether a string or key anywhere in `value` holds U+0000, which no record may (PostgreSQL
/// cannot store it).
pub fn has_nul(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(has_nul),
        Value::Object(fields) => fields.iter().any(|(key, value)| key.contains('\0') || has_nul(value)),
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}

/// Ids: 1 to 128 characters, none of them a control character.
fn valid_id(id: &str) -> Result<(), String> {
    if (1..=128).contains(&id.chars().count()) && !id.chars().any(char::is_control) {
        Ok(())
    } else {
        Err(format!("id {}", short(id)))
    }
}

/// `text` quoted, cut after 160 characters (parts of a response may be megabytes long).
fn short(text: &str) -> String {
    match text.char_indices().nth(160) {
        None => format!("{text:?}"),
        Some((cut, _)) => format!("{:?}…({} bytes in all)", &text[..cut], text.len()),
    }
}

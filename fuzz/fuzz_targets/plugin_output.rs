//! Fuzz target over the host's checks of plugin output: a `Response` (and the request it
//! answers) built from the fuzz input goes through `dispatch::check`, which must never panic,
//! and whatever it accepts must obey every output rule.
//!
//! The plugin is the `notify-rooms` test guest (record type `NOTE`, no grants beyond it),
//! loaded once; `cargo test -p integration-tests --no-run` builds it.

#![no_main]

use std::sync::LazyLock;

#[path = "../../tests/src/output_rules.rs"]
mod output_rules;

use arbitrary::{Result, Unstructured};
use host::db::Dialect;
use host::dispatch;
use host::plugin::types::{Actor, Change, Delete, Notification, Request, Response, Role, Target, Upsert, User, Write};
use host::plugin::{Limits, LoadedPlugin, Runtime};
use libfuzzer_sys::fuzz_target;
use output_rules::{MAX_BODY_BYTES, MAX_NOTIFICATIONS, MAX_RECORD_BYTES, MAX_TARGETS, MAX_WRITES, obeys_every_rule};
use serde_json::{Value, json};

const GUEST: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/../target/test-guests/wasm32-wasip2/release/notify_rooms.wasm");

const CALLER_SESSION: &str = "caller-session";

static PLUGIN: LazyLock<LoadedPlugin> = LazyLock::new(|| {
    let bytes = std::fs::read(GUEST).unwrap_or_else(|e| {
        panic!("{GUEST}: {e}; build the test guests first: cargo test -p integration-tests --no-run")
    });
    let tokio = tokio::runtime::Builder::new_multi_thread().worker_threads(1).build().unwrap();
    tokio.block_on(async {
        // The plugin is never called here: a small instance pool keeps the reservation small.
        let limits = Limits { max_instances: 2, ..Limits::default() };
        let runtime = Runtime::new(limits, Dialect::Sqlite, Default::default(), None).expect("the engine");
        let plugin = runtime.load(bytes).await.expect("notify-rooms loads");
        assert_eq!(plugin.descriptor.record_type, "NOTE");
        assert!(plugin.descriptor.grants.write.is_empty(), "the invariants assume no write grants");
        plugin
    })
});

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok((response, req, read_only)) = input(&mut u) else { return };
    // Judged before `check` consumes it (no copy: parts may be megabytes).
    let verdict = obeys_every_rule(&response, &req, read_only);
    if dispatch::check(&PLUGIN, response, &req, read_only).is_ok()
        && let Err(broken) = verdict
    {
        panic!("check accepted output that breaks a rule: {broken}");
    }
});

// Every choice below puts the valid options first: once the input runs out, `Unstructured`
// answers the low end of each range, so short inputs build valid output, and the fuzzer reaches
// the accepting paths (and the limits) quickly.

/// True one time in `n` (false once the input runs out).
fn one_in(u: &mut Unstructured, n: u32) -> Result<bool> {
    Ok(u.int_in_range(1..=n)? == n)
}

fn input(u: &mut Unstructured) -> Result<(Response, Request, bool)> {
    let actor = if one_in(u, 5)? {
        Actor::Anonymous
    } else {
        let role = if u.arbitrary()? { Role::Admin } else { Role::User };
        Actor::User(User { id: "caller".into(), role, session_id: CALLER_SESSION.into() })
    };
    let socket_id = if u.arbitrary()? { Some(short_text(u)?) } else { None };
    let req = Request {
        actor,
        action: "create".into(),
        params: Vec::new(),
        query: Vec::new(),
        body: Some("{}".into()),
        now: "2026-01-01T00:00:00.000Z".into(),
        socket_id,
        upload: None,
        cursor: None,
    };
    let read_only = one_in(u, 4)?;
    Ok((response(u)?, req, read_only))
}

fn response(u: &mut Unstructured) -> Result<Response> {
    let status = match u.int_in_range(0..=9)? {
        0..=6 => u.int_in_range(200..=299)?,
        7 => u.int_in_range(195..=205)?,
        8 => u.int_in_range(295..=305)?,
        _ => u.arbitrary()?,
    };
    let body = match u.int_in_range(0..=11)? {
        0..=3 => None,
        4..=7 => Some(json_text(u, 3)?),
        8 => Some(format!("[{}]", "1,".repeat(u.int_in_range(0..=2000)?) + "1")),
        // Around the body cap.
        9 => Some(format!("\"{}\"", "b".repeat((MAX_BODY_BYTES - 2).saturating_add_signed(u.int_in_range(-4..=4)?)))),
        10 => Some(["1e400", "{\"a\":", "[1,]", "\"\\ud800\"", "nul", ""][u.choose_index(6)?].to_owned()),
        _ => Some(u.arbitrary()?),
    };
    let mut writes = Vec::new();
    for _ in 0..u.int_in_range(0..=4)? {
        writes.push(write(u)?);
    }
    let mut notifications = Vec::new();
    for _ in 0..u.int_in_range(0..=4)? {
        notifications.push(notification(u)?);
    }
    // Sometimes pad a list to around its cap with copies of a small valid item (copies of a
    // generated one could be a megabyte each).
    if one_in(u, 10)? {
        let copies = MAX_WRITES.saturating_add_signed(u.int_in_range(-5..=5)?).saturating_sub(writes.len());
        let padding = Write::Upsert(Upsert {
            record_type: "NOTE".into(),
            id: "padding".into(),
            data: "{}".into(),
            expected_version: None,
        });
        writes.extend(std::iter::repeat_n(padding, copies));
    }
    if one_in(u, 10)? {
        let copies =
            MAX_NOTIFICATIONS.saturating_add_signed(u.int_in_range(-5..=5)?).saturating_sub(notifications.len());
        let padding = Notification {
            change: Change::Deleted,
            record_type: "NOTE".into(),
            id: "padding".into(),
            record: None,
            targets: vec![Target::All],
            to_self: false,
        };
        notifications.extend(std::iter::repeat_n(padding, copies));
    }
    // Sometimes a page of a list: valid only from a GET, with a JSON array.
    let next = if one_in(u, 8)? { Some(short_text(u)?) } else { None };
    Ok(Response { status, body, writes, notifications, tasks: Vec::new(), next })
}

fn write(u: &mut Unstructured) -> Result<Write> {
    let record_type = record_type(u)?;
    let id = id(u)?;
    let expected_version = u.arbitrary()?;
    Ok(if u.arbitrary()? {
        let data = record(u, &id)?;
        Write::Upsert(Upsert { record_type, id, data, expected_version })
    } else {
        Write::Delete(Delete { record_type, id, expected_version })
    })
}

fn notification(u: &mut Unstructured) -> Result<Notification> {
    let change = [Change::Created, Change::Changed, Change::Deleted][u.choose_index(3)?];
    let record_type = record_type(u)?;
    let id = id(u)?;
    let record = if one_in(u, 8)? { None } else { Some(record(u, &id)?) };
    let mut targets = Vec::new();
    for _ in 0..u.int_in_range(1..=4)? {
        targets.push(target(u)?);
    }
    if one_in(u, 10)? {
        targets.clear();
    }
    if one_in(u, 10)? {
        let copies = MAX_TARGETS.saturating_add_signed(u.int_in_range(-3..=3)?).saturating_sub(targets.len());
        targets.extend(std::iter::repeat_n(Target::All, copies));
    }
    Ok(Notification { change, record_type, id, record, targets, to_self: u.arbitrary()? })
}

fn target(u: &mut Unstructured) -> Result<Target> {
    Ok(match u.int_in_range(0..=9)? {
        0..=2 => Target::All,
        3..=4 => Target::Admins,
        5..=6 => Target::Session(CALLER_SESSION.into()),
        7..=8 => Target::User(id(u)?),
        _ => Target::Session(if u.arbitrary()? { "other-session".into() } else { u.arbitrary()? }),
    })
}

fn record_type(u: &mut Unstructured) -> Result<String> {
    Ok(match u.int_in_range(0..=15)? {
        0..=9 => "NOTE".into(),
        10 => "DEPARTMENT".into(),
        11 => String::new(),
        12 => "note".into(),
        13 => "NOTE\0".into(),
        _ => u.arbitrary()?,
    })
}

/// Mostly valid ids; sometimes empty, around 128 bytes, multi-byte, with a control character,
/// or anything.
fn id(u: &mut Unstructured) -> Result<String> {
    Ok(match u.int_in_range(0..=15)? {
        0..=9 => short_text(u)?,
        10 => String::new(),
        11 => "x".repeat(u.int_in_range(120..=136)?),
        12 => "é".repeat(u.int_in_range(60..=70)?),
        13 => format!("{}{}{}", short_text(u)?, char::from(u.int_in_range(0..=0x1f)?), short_text(u)?),
        14 => ["\u{7f}", "\u{85}", "\u{9f}", "\u{2028}", "\u{200b}", " "][u.choose_index(6)?].to_owned(),
        _ => u.arbitrary()?,
    })
}

/// 1 to 40 characters from a safe alphabet.
fn short_text(u: &mut Unstructured) -> Result<String> {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:";
    let len = u.int_in_range(1..=40)?;
    (0..len).map(|_| Ok(char::from(ALPHABET[u.choose_index(ALPHABET.len())?]))).collect()
}

/// JSON text for a record: mostly an object carrying `id`, sometimes not.
fn record(u: &mut Unstructured, id: &str) -> Result<String> {
    Ok(match u.int_in_range(0..=7)? {
        0..=4 => json!({ "id": id, "field": json_value(u, 2)? }).to_string(),
        // Around the record cap.
        5 => {
            let target = MAX_RECORD_BYTES.saturating_add_signed(u.int_in_range(-8..=8)?);
            let skeleton = json!({ "id": id, "pad": "" }).to_string().len();
            json!({ "id": id, "pad": "p".repeat(target.saturating_sub(skeleton)) }).to_string()
        }
        6 => [r#"{"id":"someone-else"}"#, r#"{"id":42}"#, "{}", "[]", "null", r#"{"id":"#, r#""id""#]
            [u.choose_index(7)?]
        .to_owned(),
        _ => {
            if u.arbitrary()? {
                json_text(u, 3)?
            } else {
                u.arbitrary()?
            }
        }
    })
}

fn json_text(u: &mut Unstructured, depth: u32) -> Result<String> {
    Ok(json_value(u, depth)?.to_string())
}

fn json_value(u: &mut Unstructured, depth: u32) -> Result<Value> {
    let kinds = if depth == 0 { 5 } else { 7 };
    Ok(match u.choose_index(kinds)? {
        0 => Value::Null,
        1 => Value::from(u.arbitrary::<bool>()?),
        2 => Value::from(u.arbitrary::<i64>()?),
        3 => serde_json::Number::from_f64(u.arbitrary()?).map_or(Value::Null, Value::Number),
        4 => Value::from(u.arbitrary::<String>()?),
        5 => {
            let mut items = Vec::new();
            for _ in 0..u.int_in_range(0..=4)? {
                items.push(json_value(u, depth - 1)?);
            }
            Value::Array(items)
        }
        _ => {
            let mut object = serde_json::Map::new();
            for _ in 0..u.int_in_range(0..=4)? {
                object.insert(u.arbitrary()?, json_value(u, depth - 1)?);
            }
            Value::Object(object)
        }
    })
}

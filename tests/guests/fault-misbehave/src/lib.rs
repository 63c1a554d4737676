//! Test guest `fault-misbehave`: each action breaks one rule of the plugin interface.

use plugin_sdk::prelude::*;

struct Misbehave;
plugin_sdk::export!(Misbehave);

impl Plugin for Misbehave {
    fn describe() -> Descriptor {
        let actions = [
            "ok",
            "trap",
            "loop",
            "sleep",
            "bad-status",
            "write-other",
            "notify-other",
            "read-other",
            "conflict",
            "stale",
            "memory-bomb",
            "recurse",
            "huge-body",
            "flood",
            "other-session",
            "escalate",
            "forge",
            "fetch",
            "too-large",
            "nul-data",
            "nul-read",
        ];
        actions.iter().fold(Descriptor::new("fault-misbehave", "FAULT", "faults", "0.1.0"), |d, a| {
            d.action(a, Method::Post, &format!("/{a}"), Access::SignedIn)
        })
        // Granted, so that `escalate` meets the host's own rule on USER records.
        .reads("USER")
        .writes("USER")
        // For `too-large`: PostgreSQL refuses an index entry of more than about 2.7 KB.
        .index("label")
    }

    fn handle(req: Request) -> Result<Response> {
        let record = Record::new("FAULT", req.now(), json!({ "action": req.action() }));
        let json = record.to_json();
        let stored = Response::created(&json).insert(&record);
        match req.action() {
            "ok" => Ok(stored.notify(Notification::created("FAULT", &record.id, &json).to(Target::All))),
            "trap" => panic!("this plugin traps on purpose"),
            #[allow(clippy::empty_loop)]
            "loop" => loop {},
            // Waits in the host (a WASI timer and a block), where no epoch deadline reaches.
            "sleep" => {
                std::thread::sleep(std::time::Duration::from_secs(3));
                Ok(stored)
            }
            "bad-status" => Ok(Response::with_status(500, &json)),
            "write-other" => {
                let other = Record::new("DEPARTMENT", req.now(), json!({ "name": "smuggled" }));
                Ok(stored.insert(&other))
            }
            "notify-other" => Ok(stored.notify(Notification::deleted("DEPARTMENT", &record.id).to(Target::All))),
            "read-other" => {
                let found: Vec<Record<Value>> = Query::new("DEPARTMENT").fetch()?;
                Ok(Response::ok(&found.len()))
            }
            "conflict" => {
                let mut stale = record.clone();
                stale.version = 41;
                Ok(stored.update(&stale))
            }
            // One write only, which fails its version check: nothing to undo, nothing to notify.
            "stale" => {
                let mut stale = record.clone();
                stale.version = 41;
                Ok(Response::ok(&json)
                    .update(&stale)
                    .notify(Notification::changed("FAULT", &record.id, &json).to(Target::All)))
            }
            "memory-bomb" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "recurse" => Ok(Response::ok(&depth(0))),
            "huge-body" => Ok(Response::ok(&"x".repeat(8 << 20))),
            "flood" => Ok((0..100_000).fold(stored, |r, i| {
                r.notify(Notification::created("FAULT", &record.id, &json).to(Target::User(format!("u{i}"))))
            })),
            "other-session" => {
                let note = Notification::created("FAULT", &record.id, &json).to(Target::Session("someone-else".into()));
                Ok(stored.notify(note))
            }
            "escalate" => {
                let user = req.require_user()?;
                let mut me = get::<Value>("USER", &user.id)?.ok_or_else(|| PluginError::NotFound(user.id.clone()))?;
                me.data["role"] = json!("ADMIN");
                Ok(Response::ok(&me.to_json()).update(&me))
            }
            // Host-owned fields in the data, and forged times in the notified record.
            "forge" => {
                let forged = Record::new("FAULT", "1999-01-01T00:00:00.000Z", json!({ "version": 99, "updatedAt": "x" }));
                let json = forged.to_json();
                Ok(Response::created(&json)
                    .insert(&forged)
                    .notify(Notification::created("FAULT", &forged.id, &json).to(Target::All)))
            }
            "fetch" => Ok(Response::ok(&json!({ "outcome": fetch("https", "example.com", "/") }))),
            // One write whose indexed field PostgreSQL cannot index: 8,000 hexadecimal digits
            // that do not compress (SQLite takes it).
            "too-large" => {
                let mut state = 0x9e37_79b9_7f4a_7c15_u64;
                let label: String = (0..8000)
                    .map(|_| {
                        state ^= state << 13;
                        state ^= state >> 7;
                        state ^= state << 17;
                        char::from_digit((state % 16) as u32, 16).unwrap()
                    })
                    .collect();
                let big = Record::new("FAULT", req.now(), json!({ "action": "too-large", "label": label }));
                let json = big.to_json();
                Ok(Response::created(&json)
                    .insert(&big)
                    .notify(Notification::created("FAULT", &big.id, &json).to(Target::All)))
            }
            // A record with U+0000 in an indexed field: PostgreSQL can neither store it as
            // jsonb nor index it. Invalid output on either backend.
            "nul-data" => {
                let bad = Record::new("FAULT", req.now(), json!({ "action": "nul-data", "label": "a\u{0}b" }));
                Ok(Response::created(&bad.to_json()).insert(&bad))
            }
            // Reads naming U+0000, which PostgreSQL cannot compare; then a normal create, whose
            // record says what the reads answered.
            "nul-read" => {
                let got = get::<Value>("FAULT", "a\u{0}b").map(|found| found.is_some());
                let found = Query::new("FAULT").eq("label", "a\u{0}b").fetch::<Value>().map(|found| found.len());
                let data = json!({ "action": "nul-read", "get": format!("{got:?}"), "find": format!("{found:?}") });
                let record = Record::new("FAULT", req.now(), data);
                let json = record.to_json();
                Ok(Response::created(&json)
                    .insert(&record)
                    .notify(Notification::created("FAULT", &record.id, &json).to(Target::All)))
            }
            other => Err(PluginError::NotFound(format!("no action {other}"))),
        }
    }
}

/// Recurse without end (the optimizer cannot turn this into a loop: the result depends on the
/// depth after the call).
#[allow(unconditional_recursion)]
fn depth(n: u64) -> u64 {
    std::hint::black_box(depth(n + 1)) + n
}

/// Send `GET scheme://authority/path` through `wasi:http/outgoing-handler`; what came of it.
fn fetch(scheme: &str, authority: &str, path: &str) -> String {
    use wasip2::http::outgoing_handler;
    use wasip2::http::types::{Fields, OutgoingRequest, Scheme};
    let request = OutgoingRequest::new(Fields::new());
    let scheme = if scheme == "https" { Scheme::Https } else { Scheme::Http };
    let set = request.set_scheme(Some(&scheme)).is_ok()
        && request.set_authority(Some(authority)).is_ok()
        && request.set_path_with_query(Some(path)).is_ok();
    assert!(set, "a valid request");
    match outgoing_handler::handle(request, None) {
        Err(code) => format!("{code:?}"),
        Ok(response) => {
            response.subscribe().block();
            match response.get() {
                Some(Ok(Ok(answer))) => format!("answered {}", answer.status()),
                Some(Ok(Err(code))) => format!("{code:?}"),
                _ => "no outcome".into(),
            }
        }
    }
}

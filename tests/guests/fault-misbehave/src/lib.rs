//! Test guest `fault-misbehave`: each action breaks one rule of the plugin interface.

use plugin_sdk::prelude::*;

struct Misbehave;
plugin_sdk::export!(Misbehave);

impl Plugin for Misbehave {
    fn describe() -> Descriptor {
        let actions = ["ok", "trap", "loop", "bad-status", "write-other", "notify-other", "read-other", "conflict"];
        actions.iter().fold(Descriptor::new("fault-misbehave", "FAULT", "faults", "0.1.0"), |d, a| {
            d.action(a, Method::Post, &format!("/{a}"), Access::SignedIn)
        })
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
            other => Err(PluginError::NotFound(format!("no action {other}"))),
        }
    }
}

//! Test guest `notify-rooms`: notes whose notification goes to rooms chosen by the caller.

use plugin_sdk::prelude::*;
use serde::{Deserialize, Serialize};

struct NotifyRooms;
plugin_sdk::export!(NotifyRooms);

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Note {
    targets: Vec<String>,
    #[serde(default)]
    to_self: bool,
}

impl Plugin for NotifyRooms {
    fn describe() -> Descriptor {
        Descriptor::new("notify-rooms", "NOTE", "notes", "0.1.0")
            .action("create", Method::Post, "/", Access::SignedIn)
            // A user view: served at this absolute path, outside the collection. The relative
            // `/:id` must not catch it (`/notes` would be an id there).
            .action("mine", Method::Get, "/api/v1/user/notes", Access::SignedIn)
            .action("find", Method::Get, "/:id", Access::SignedIn)
            .socket_event("notes:count")
            .socket_event("notes:huge")
    }

    /// `notes:count` → `{count, args}`; `notes:count` with `{"fail": true}` refuses.
    /// `notes:huge` answers more than the host accepts from a plugin (a fault).
    fn on_socket_event(req: SocketRequest) -> Result<Value> {
        if req.event == "notes:huge" {
            return Ok(json!({ "blob": "x".repeat(5 << 20) }));
        }
        let args: Vec<Value> = serde_json::from_str(&req.args).map_err(|e| PluginError::InvalidInput(e.to_string()))?;
        if args.first().and_then(|a| a.get("fail")).is_some() {
            return Err(PluginError::InvalidInput("asked to fail".into()));
        }
        let count = Query::new("NOTE").fetch::<Value>()?.len();
        Ok(json!({ "count": count, "args": args.len() }))
    }

    fn handle(req: Request) -> Result<Response> {
        let user = req.require_user()?;
        match req.action() {
            "mine" => return Ok(Response::ok(&json!({ "count": Query::new("NOTE").fetch::<Value>()?.len() }))),
            "find" => return Err(PluginError::NotFound("notes are not read back".into())),
            _ => {}
        }
        let note: Note = req.body()?;
        let mut targets = Vec::new();
        for target in &note.targets {
            targets.push(match target.as_str() {
                "all" => Target::All,
                "admins" => Target::Admins,
                "my-session" => Target::Session(user.session_id.clone()),
                other => match other.split_once(':') {
                    Some(("user", id)) => Target::User(id.into()),
                    Some(("session", id)) => Target::Session(id.into()),
                    _ => return Err(PluginError::InvalidInput(format!("unknown target {other:?}"))),
                },
            });
        }
        let to_self = note.to_self;
        let record = Record::new("NOTE", req.now(), note);
        let json = record.to_json();
        let response = Response::created(&json).insert(&record);
        if targets.is_empty() {
            return Ok(response); // a quiet note: stored, not notified
        }
        let mut notification = Notification::created("NOTE", &record.id, &json);
        notification.targets = targets;
        if to_self {
            notification = notification.to_self();
        }
        Ok(response.notify(notification))
    }
}

//! Owner-scoped collections: each record belongs to the user who created it. Its owner and
//! the ADMINs see, change and delete it (anyone else gets 404); every change is notified to
//! the owner's sockets and to the admins. The records are JSON objects: whatever fields a
//! client sends are kept as they are, and fields a later version of the plugin added survive
//! a rollback to this one.
//!
//! ```ignore
//! const BOOKMARKS: Owned = Owned::new("BOOKMARK", "bookmarks");
//!
//! impl Plugin for Bookmarks {
//!     fn describe() -> Descriptor {
//!         BOOKMARKS.describe("bookmark", env!("CARGO_PKG_VERSION"))
//!     }
//!     fn handle(req: Request) -> Result<Response> {
//!         BOOKMARKS.handle(&req, |bookmark| require_text(bookmark, "title"))
//!     }
//! }
//! ```

use serde_json::{Map, Value};

use crate::{
    Access, Descriptor, Method, Notification, PluginError, Query, Record, Request, Response, Result, Target, get,
};

/// The field naming a record's owner (a user id); the host's `USER` records use the same ids.
pub const OWNER_FIELD: &str = "ownerId";

/// How many records one page of a list holds (see [`crate::Page`]).
const PAGE_SIZE: u32 = 500;

/// Fields the plugin does not take from a client: the host owns the first four, the owner is
/// the caller.
const NOT_FROM_CLIENTS: [&str; 5] = ["id", "createdAt", "updatedAt", "version", OWNER_FIELD];

/// A collection of records owned by their creators.
#[derive(Clone, Copy, Debug)]
pub struct Owned {
    pub record_type: &'static str,
    pub collection: &'static str,
}

impl Owned {
    pub const fn new(record_type: &'static str, collection: &'static str) -> Self {
        Owned { record_type, collection }
    }

    /// The descriptor of the five actions [`Owned::handle`] serves, all for signed-in users:
    /// `create` (`POST /`), `list` (`GET /`: the caller's records, every record for an ADMIN,
    /// oldest first), `find` (`GET /:id`), `update` (`PUT /:id`) and `delete` (`DELETE /:id`).
    /// Add actions of your own with [`Descriptor::action`].
    pub fn describe(&self, name: &str, version: &str) -> Descriptor {
        Descriptor::new(name, self.record_type, self.collection, version)
            .action("create", Method::Post, "/", Access::SignedIn)
            .action("list", Method::Get, "/", Access::SignedIn)
            .action("find", Method::Get, "/:id", Access::SignedIn)
            .action("update", Method::Put, "/:id", Access::SignedIn)
            .action("delete", Method::Delete, "/:id", Access::SignedIn)
            .index(OWNER_FIELD)
    }

    /// Serve the five actions. `check` is asked about a record's fields before a create or an
    /// update writes them; its error is the client's answer (and nothing is written).
    pub fn handle(&self, req: &Request, check: impl Fn(&Map<String, Value>) -> Result<()>) -> Result<Response> {
        match req.action() {
            "create" => self.create(req, &check),
            "list" => self.list(req),
            "find" => Ok(Response::ok(&self.find(req)?)),
            "update" => self.update(req, &check),
            "delete" => self.delete(req),
            other => Err(PluginError::NotFound(format!("no action {other}"))),
        }
    }

    /// `POST /` with a JSON object: a new record owned by the caller.
    pub fn create(&self, req: &Request, check: &impl Fn(&Map<String, Value>) -> Result<()>) -> Result<Response> {
        let owner = req.require_user()?.id.clone();
        let mut fields = client_fields(req.body()?)?;
        fields.insert(OWNER_FIELD.into(), Value::String(owner));
        check(&fields)?;
        let record = Record::new(self.record_type, req.now(), Value::Object(fields));
        let json = record.to_json();
        Ok(Response::created(&json)
            .insert(&record)
            .notify(self.audience(Notification::created(self.record_type, &record.id, &json), &record)))
    }

    /// `GET /`: the caller's records, or every record for an ADMIN, oldest first, in pages.
    pub fn list(&self, req: &Request) -> Result<Response> {
        let user = req.require_user()?;
        let mut query = Query::new(self.record_type);
        if !req.is_admin() {
            query = query.eq(OWNER_FIELD, user.id.as_str());
        }
        let page = query.order_by("createdAt").page::<Value>(req.cursor(), PAGE_SIZE)?;
        Ok(Response::ok(&page.records).next_page(page.next))
    }

    /// The record named by `:id` if the caller owns it or is an ADMIN; 404 otherwise.
    pub fn find(&self, req: &Request) -> Result<Record<Value>> {
        let user = req.require_user()?;
        let id = req.param("id")?;
        match get::<Value>(self.record_type, id)? {
            Some(record) if req.is_admin() || owner(&record) == Some(user.id.as_str()) => Ok(record),
            _ => Err(PluginError::NotFound(format!("{} {id} not found", self.record_type))),
        }
    }

    /// `PUT /:id` with a JSON object of the fields to change (see [`patch`]).
    pub fn update(&self, req: &Request, check: &impl Fn(&Map<String, Value>) -> Result<()>) -> Result<Response> {
        let mut record = self.find(req)?;
        let changes = client_fields(req.body()?)?;
        let Value::Object(fields) = &mut record.data else {
            return Err(PluginError::Internal(format!("{} {} is not a JSON object", self.record_type, record.id)));
        };
        patch(fields, changes);
        check(fields)?;
        record.touch(req.now());
        let json = record.to_json();
        Ok(Response::ok(&json)
            .update(&record)
            .notify(self.audience(Notification::changed(self.record_type, &record.id, &json), &record)))
    }

    /// `DELETE /:id`: 204.
    pub fn delete(&self, req: &Request) -> Result<Response> {
        let record = self.find(req)?;
        Ok(Response::no_content()
            .delete(&record)
            .notify(self.audience(Notification::deleted(self.record_type, &record.id), &record)))
    }

    /// A change goes to the record's owner and to the admins.
    fn audience(&self, notification: Notification, record: &Record<Value>) -> Notification {
        match owner(record) {
            Some(owner) => notification.to(Target::User(owner.to_owned())).to(Target::Admins),
            None => notification.to(Target::Admins),
        }
    }
}

fn owner(record: &Record<Value>) -> Option<&str> {
    record.data.get(OWNER_FIELD).and_then(Value::as_str)
}

/// A request body as record fields: a JSON object, without the fields a client may not set.
fn client_fields(body: Value) -> Result<Map<String, Value>> {
    let Value::Object(mut fields) = body else {
        return Err(PluginError::InvalidInput("the body must be a JSON object of the record's fields".into()));
    };
    for field in NOT_FROM_CLIENTS {
        fields.remove(field);
    }
    Ok(fields)
}

/// Apply `changes` to `fields` as a JSON merge patch (RFC 7396) at the top level: a field
/// set to `null` is removed, any other value replaces the field's, and fields the changes do
/// not name are kept, including those this version of the plugin does not know.
pub fn patch(fields: &mut Map<String, Value>, changes: Map<String, Value>) {
    for (field, value) in changes {
        if value.is_null() {
            fields.remove(&field);
        } else {
            fields.insert(field, value);
        }
    }
}

/// A check for [`Owned::handle`]: `field` must be a text with something besides spaces.
pub fn require_text(fields: &Map<String, Value>, field: &str) -> Result<()> {
    match fields.get(field) {
        Some(Value::String(text)) if !text.trim().is_empty() => Ok(()),
        _ => Err(PluginError::InvalidInput(format!("{field} is required: a non-empty text"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap()
    }

    #[test]
    fn a_patch_keeps_what_it_does_not_name() {
        let mut fields = object(json!({ "title": "a", "url": "u", "addedByV2": [1] }));
        patch(&mut fields, object(json!({ "title": "b", "url": null, "tag": "t" })));
        assert_eq!(Value::Object(fields), json!({ "title": "b", "addedByV2": [1], "tag": "t" }));
    }

    #[test]
    fn clients_do_not_set_host_fields_or_the_owner() {
        let fields = client_fields(json!({ "id": "x", "ownerId": "someone", "version": 3, "title": "t" })).unwrap();
        assert_eq!(Value::Object(fields), json!({ "title": "t" }));
        assert!(client_fields(json!([1])).is_err());
    }

    /// The native harness ([`crate::testing`]) runs the collection as a component would run it.
    #[test]
    fn owners_and_admins_see_a_record_and_others_get_404() {
        use crate::testing::{request, seed_at};
        let bookmarks = Owned::new("BOOKMARK", "bookmarks");
        let run = |req: Request| bookmarks.handle(&req, |fields| require_text(fields, "title"));
        seed_at("BOOKMARK", "a2", json!({ "ownerId": "alice", "title": "Second" }), "2026-01-02T00:00:00.000Z");
        seed_at("BOOKMARK", "a1", json!({ "ownerId": "alice", "title": "First" }), "2026-01-01T00:00:00.000Z");
        seed_at("BOOKMARK", "b1", json!({ "ownerId": "bob", "title": "Bob's" }), "2026-01-01T00:00:00.000Z");

        let found = run(request("find").user("alice").param("id", "a1").build()).unwrap();
        assert_eq!((found.status(), found.body_json()["title"].clone()), (200, json!("First")));
        assert!(matches!(run(request("find").user("bob").param("id", "a1").build()), Err(PluginError::NotFound(_))));
        let listed = run(request("list").user("alice").build()).unwrap().body_json();
        assert_eq!(
            listed,
            json!([
                { "id": "a1", "ownerId": "alice", "title": "First", "createdAt": "2026-01-01T00:00:00.000Z", "updatedAt": "2026-01-01T00:00:00.000Z" },
                { "id": "a2", "ownerId": "alice", "title": "Second", "createdAt": "2026-01-02T00:00:00.000Z", "updatedAt": "2026-01-02T00:00:00.000Z" },
            ])
        );
        assert_eq!(run(request("list").admin("root").build()).unwrap().body_json().as_array().unwrap().len(), 3);

        let changed = run(request("update").user("alice").param("id", "a1").body(json!({ "title": "" })).build());
        assert!(matches!(changed, Err(PluginError::InvalidInput(_))), "the check runs on update");
        let deleted = run(request("delete").admin("root").param("id", "b1").build()).unwrap();
        assert_eq!((deleted.status(), deleted.writes().len()), (204, 1));
        let targets = &deleted.notifications()[0].targets;
        assert!(matches!(targets.as_slice(), [Target::User(owner), Target::Admins] if owner == "bob"), "{targets:?}");
    }

    #[test]
    fn required_text() {
        assert!(require_text(&object(json!({ "title": "x" })), "title").is_ok());
        for bad in [json!({}), json!({ "title": "  " }), json!({ "title": 3 })] {
            assert!(require_text(&object(bad), "title").is_err());
        }
    }
}

//! `tidings plugin test [DIR]`: a plugin's JSON fixtures (`DIR/tests/*.json`) run on the real
//! runtime, with the install's checks, against a throwaway in-memory SQLite database: no
//! server, no sign-in. Each fixture seeds records, sets the clock, makes one request as a
//! given user, and states what should come of it:
//!
//! ```json
//! {
//!   "description": "the owner changes the title; the owner and the admins hear of it",
//!   "now": "2026-01-02T10:00:00.000Z",
//!   "records": [{ "type": "BOOKMARK", "id": "b1", "data": { "ownerId": "alice", "title": "Old" } }],
//!   "request": { "method": "PUT", "path": "/b1", "user": { "id": "alice" }, "body": { "title": "New" } },
//!   "status": 200,
//!   "body": { "id": "b1", "title": "New", "ownerId": "alice" },
//!   "writes": [{ "upsert": "BOOKMARK", "id": "b1", "data": { "title": "New", "ownerId": "alice" } }],
//!   "notifications": [{ "event": "CHANGED_RECORD", "type": "BOOKMARK", "record": { "id": "b1" }, "to": ["user:alice", "admin"] }]
//! }
//! ```
//!
//! What is expected is compared by [`Expected::compare`]: an object matches when each field it
//! names matches (other fields are not checked), an array when it has as many items and each
//! matches, and a text `"$name"` matches anything, the same value wherever `$name` appears in
//! the fixture (so `"id": "$id"` in the body and in the notification says they are one record).
//! `status`, `body`, `writes` and `notifications` are each checked only when given; `"body":
//! null` expects no body. Each fixture runs in a transaction of its own, rolled back after.
//! See docs/plugin-authoring.md for the whole format.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::db::{Db, Dialect, records};
use crate::dispatch::{self, DispatchError};
use crate::http::ApiError;
use crate::lifecycle::InstallError;
use crate::plugin::types::{self, Access, Actor, Role};
use crate::plugin::{LoadedPlugin, Runtime, USER_VIEWS};

/// The clock of a fixture that does not set `now`.
pub const DEFAULT_NOW: &str = "2026-01-01T00:00:00.000Z";

/// One fixture file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fixture {
    #[serde(default)]
    pub description: Option<String>,
    /// The host clock for the request (ISO 8601); [`DEFAULT_NOW`] if not given.
    #[serde(default)]
    pub now: Option<String>,
    /// Records stored before the request.
    #[serde(default)]
    pub records: Vec<Seed>,
    pub request: FixtureRequest,
    #[serde(default)]
    pub status: Option<u16>,
    #[serde(default, deserialize_with = "present")]
    pub body: Option<Value>,
    #[serde(default)]
    pub writes: Option<Vec<Value>>,
    #[serde(default)]
    pub notifications: Option<Vec<Value>>,
}

impl Fixture {
    /// What the fixture expects.
    pub fn expected(&self) -> Expected {
        Expected {
            status: self.status,
            body: self.body.clone(),
            writes: self.writes.clone(),
            notifications: self.notifications.clone(),
        }
    }
}

/// A record stored before the request; its `version` is 1 and its `createdAt` and `updatedAt`
/// are `createdAt` if given, else the fixture's `now`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Seed {
    #[serde(rename = "type")]
    pub record_type: String,
    pub id: String,
    pub data: Value,
    #[serde(default)]
    pub created_at: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FixtureRequest {
    pub method: String,
    /// Below the collection (`/`, `/b1`), or absolute (`/api/v1/bookmarks/b1`, a user view).
    pub path: String,
    /// The signed-in caller; none for an anonymous request.
    #[serde(default)]
    pub user: Option<FixtureUser>,
    /// The query string as an object of texts, or as a list of `[name, value]` pairs.
    #[serde(default)]
    pub query: Option<Value>,
    #[serde(default)]
    pub body: Option<Value>,
    /// The caller's socket (`x-metadata-socketid`).
    #[serde(default)]
    pub socket_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FixtureUser {
    pub id: String,
    /// `user` (the default) or `admin`.
    #[serde(default)]
    pub role: Option<String>,
    /// The session's id; `session-<id>` if not given.
    #[serde(default)]
    pub session_id: Option<String>,
}

/// What a fixture expects; each part is checked only when given.
#[derive(Debug, Default)]
pub struct Expected {
    pub status: Option<u16>,
    /// `Some(Value::Null)`: no body.
    pub body: Option<Value>,
    pub writes: Option<Vec<Value>>,
    pub notifications: Option<Vec<Value>>,
}

/// `"body": null` is an expectation (no body), not an absent one.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// What came of a fixture's request.
#[derive(Debug)]
pub struct Actual {
    pub status: u16,
    pub body: Value,
    pub writes: Vec<Value>,
    pub notifications: Vec<Value>,
    /// The plugin's journal during the request: log lines, output and fault reasons.
    pub journal: Vec<String>,
}

impl Expected {
    /// The differences between this and `actual`, one readable line each; empty when it
    /// matches.
    pub fn compare(&self, actual: &Actual) -> Vec<String> {
        let mut diffs = Vec::new();
        let mut bound = BTreeMap::new();
        if let Some(status) = self.status
            && status != actual.status
        {
            diffs.push(format!("status: expected {status}, got {}", actual.status));
        }
        let parts = [
            ("body", self.body.clone(), actual.body.clone()),
            ("writes", self.writes.clone().map(Value::Array), Value::Array(actual.writes.clone())),
            ("notifications", self.notifications.clone().map(Value::Array), Value::Array(actual.notifications.clone())),
        ];
        for (name, expected, actual) in parts {
            if let Some(expected) = expected {
                compare(&expected, Some(&actual), name, &mut bound, &mut diffs);
            }
        }
        diffs
    }
}

/// Compare `actual` (`None`: missing) with `expected` at `path`, pushing each difference.
fn compare(
    expected: &Value,
    actual: Option<&Value>,
    path: &str,
    bound: &mut BTreeMap<String, Value>,
    diffs: &mut Vec<String>,
) {
    let show = |v: Option<&Value>| v.map_or("nothing".to_owned(), Value::to_string);
    if let Value::String(text) = expected
        && let Some(name) = placeholder(text)
    {
        match (actual, bound.get(name)) {
            (None, _) => diffs.push(format!("{path}: expected a value for {text}, got nothing")),
            (Some(actual), Some(earlier)) if actual != earlier => {
                diffs.push(format!("{path}: expected {text} = {earlier}, got {actual}"))
            }
            (Some(actual), _) => {
                bound.insert(name.to_owned(), actual.clone());
            }
        }
        return;
    }
    match (expected, actual) {
        (Value::Object(fields), Some(Value::Object(got))) => {
            for (field, value) in fields {
                compare(value, got.get(field), &format!("{path}.{field}"), bound, diffs);
            }
        }
        (Value::Array(items), Some(Value::Array(got))) => {
            if items.len() != got.len() {
                diffs.push(format!("{path}: expected {} items, got {}: {}", items.len(), got.len(), show(actual)));
                return;
            }
            for (i, (item, got)) in items.iter().zip(got).enumerate() {
                compare(item, Some(got), &format!("{path}[{i}]"), bound, diffs);
            }
        }
        (expected, Some(actual)) if expected == actual => {}
        (expected, actual) => diffs.push(format!("{path}: expected {expected}, got {}", show(actual))),
    }
}

/// `$name` → `name`; `$$…` is a literal text starting with `$`.
fn placeholder(text: &str) -> Option<&str> {
    let name = text.strip_prefix('$')?;
    (!name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')).then_some(name)
}

/// A plugin loaded for fixtures: checked as an install would check it, on a fresh database.
pub struct Harness {
    db: Db,
    runtime: Arc<Runtime>,
    pub plugin: Arc<LoadedPlugin>,
}

impl Harness {
    /// Check `component` as an install against `bundled` would, and load it on a new
    /// in-memory database.
    pub async fn load(component: Vec<u8>, bundled: &[(&str, &[u8])]) -> anyhow::Result<Harness> {
        let url = format!("sqlite:file:tidings-plugin-test-{}?mode=memory&cache=shared", uuid::Uuid::new_v4());
        let db = Db::connect(Some(&url), Path::new(".")).await.context("opening the in-memory database")?;
        let cache = std::env::temp_dir().join("tidings-plugin-check-cache");
        let runtime = Runtime::new(Default::default(), Dialect::Sqlite, db.elements.clone(), Some(cache))
            .map_err(|e| anyhow::anyhow!("starting the plugin runtime: {e:#}"))?;
        let checked = crate::authoring::check_on(&runtime, component, bundled)
            .await
            .map_err(|refusal: InstallError| anyhow::anyhow!("an install would refuse it: {refusal}"))?;
        let plugin = Arc::new(checked.plugin);
        crate::prepare_storage(&db, &plugin).await?;
        Ok(Harness { db, runtime, plugin })
    }

    /// Run one fixture's request; the database is as before afterwards.
    pub async fn run(&self, fixture: &Fixture) -> anyhow::Result<Actual> {
        let now = fixture.now.clone().unwrap_or_else(|| DEFAULT_NOW.to_owned());
        let mut tx = self.db.begin_write().await?;
        for seed in &fixture.records {
            let Value::Object(_) = &seed.data else { bail!("record {}: data must be a JSON object", seed.id) };
            let write = records::Write::Upsert {
                record_type: seed.record_type.clone(),
                id: seed.id.clone(),
                data: seed.data.to_string(),
                expected_version: None,
            };
            let stamp = seed.created_at.as_deref().unwrap_or(&now);
            if let Err(conflict) = records::apply(&mut tx, &self.db.elements, &write, stamp).await? {
                bail!("records: {conflict}");
            }
        }
        let journal_before = self.plugin.journal.last_seq();
        let (status, body, writes, notifications) = match self.request(fixture, &now)? {
            Err(refused) => answer(refused).await,
            Ok(req) => {
                let read_only = fixture.request.method.eq_ignore_ascii_case("GET");
                let (outcome, tx_back) = self.call(req, tx, read_only, &now).await;
                tx = match tx_back {
                    Some(tx) => tx,
                    None => bail!("the plugin call lost its transaction"),
                };
                match outcome {
                    Ok((status, body, writes, notifications)) => (status, body, writes, notifications),
                    Err(err) => answer(ApiError::from(err)).await,
                }
            }
        };
        tx.rollback().await.map_err(crate::db::Error::from)?;
        let journal = self
            .plugin
            .journal
            .entries(journal_before, None)
            .into_iter()
            .map(|e| match e.error_id {
                Some(id) => format!("{} [errorId {id}] {}", e.level, e.message),
                None => format!("{} {}", e.level, e.message),
            })
            .collect();
        Ok(Actual { status, body, writes, notifications, journal })
    }

    /// The plugin request a fixture makes, or the host's own answer when the host would not
    /// call the plugin (no such route, not signed in, not an admin).
    fn request(&self, fixture: &Fixture, now: &str) -> anyhow::Result<Result<types::Request, ApiError>> {
        let r = &fixture.request;
        let method = match r.method.to_ascii_uppercase().as_str() {
            "GET" => types::Method::Get,
            "POST" => types::Method::Post,
            "PUT" => types::Method::Put,
            "PATCH" => types::Method::Patch,
            "DELETE" => types::Method::Delete,
            other => bail!("request.method {other:?}: one of GET, POST, PUT, PATCH, DELETE"),
        };
        let d = &self.plugin.descriptor;
        let (path, query_in_path) = r.path.split_once('?').unwrap_or((&r.path, ""));
        let prefix = format!("/api/v1/{}", d.collection);
        let route = if path.starts_with(USER_VIEWS) {
            self.plugin.user_view(method, path)
        } else {
            let relative = path.strip_prefix(&prefix).unwrap_or(path);
            self.plugin.route(method, if relative.is_empty() { "/" } else { relative })
        };
        let Some(route) = route else {
            return Ok(Err(if r.user.is_none() {
                ApiError::Unauthorized
            } else {
                ApiError::NotFound("no such route".into())
            }));
        };
        let role = |u: &FixtureUser| match u.role.as_deref() {
            None | Some("user") => Ok(Role::User),
            Some("admin") => Ok(Role::Admin),
            Some(other) => bail!("request.user.role {other:?}: `user` or `admin`"),
        };
        let actor = match &r.user {
            None => Actor::Anonymous,
            Some(u) => Actor::User(types::User {
                id: u.id.clone(),
                role: role(u)?,
                session_id: u.session_id.clone().unwrap_or_else(|| format!("session-{}", u.id)),
            }),
        };
        match (route.action.access, &actor) {
            (Access::Public, _) => {}
            (_, Actor::Anonymous) => return Ok(Err(ApiError::Unauthorized)),
            (Access::Admin, Actor::User(u)) if u.role != Role::Admin => {
                return Ok(Err(ApiError::Forbidden("admins only".into())));
            }
            _ => {}
        }
        let mut query: Vec<(String, String)> = form_urlencoded::parse(query_in_path.as_bytes()).into_owned().collect();
        query.extend(query_pairs(r.query.as_ref())?);
        Ok(Ok(types::Request {
            actor,
            action: route.action.name.clone(),
            params: route.params,
            query,
            body: r.body.as_ref().map(Value::to_string),
            now: now.to_owned(),
            socket_id: r.socket_id.clone(),
            upload: None,
            cursor: None,
        }))
    }

    /// Call the plugin, check its answer and apply it in `tx`, as the pipeline does. A list
    /// in pages is read to its end.
    async fn call(
        &self,
        mut req: types::Request,
        mut tx: crate::db::Tx,
        read_only: bool,
        now: &str,
    ) -> (Result<(u16, Value, Vec<Value>, Vec<Value>), DispatchError>, Option<crate::db::Tx>) {
        let mut pages: Option<(u16, Vec<Value>)> = None;
        loop {
            let (result, back) = self.runtime.handle(&self.plugin, None, &req, tx).await;
            let Some(back) = back else { return (Err(DispatchError::Internal("lost the transaction".into())), None) };
            tx = back;
            let checked = match result.map_err(DispatchError::from).and_then(|response| {
                dispatch::check(&self.plugin, response, &req, read_only)
                    .map_err(|m| dispatch::fault(&self.runtime, &self.plugin, m))
            }) {
                Ok(checked) => checked,
                Err(err) => return (Err(err), Some(tx)),
            };
            let writes = checked.writes().iter().map(write_json).collect();
            if read_only {
                let (status, body, next) = checked.into_parts();
                let body = body.map(|b| serde_json::from_str(&b).unwrap_or(Value::Null)).unwrap_or(Value::Null);
                match (next, &mut pages) {
                    (None, None) => return (Ok((status, body, Vec::new(), Vec::new())), Some(tx)),
                    (next, pages) => {
                        let (_, items) = pages.get_or_insert_with(|| (status, Vec::new()));
                        items.extend(body.as_array().into_iter().flatten().cloned());
                        if let Some(next) = next {
                            req.cursor = Some(next);
                            continue;
                        }
                        let (status, items) = pages.take().unwrap_or_default();
                        return (Ok((status, Value::Array(items), Vec::new(), Vec::new())), Some(tx));
                    }
                }
            }
            let outcome = match dispatch::apply(&mut tx, &self.db, &self.plugin, checked, now).await {
                Ok(applied) => applied.log(&mut tx, now).await.map_err(DispatchError::from),
                Err(err) => Err(err),
            };
            return match outcome {
                Ok(outcome) => {
                    let body = outcome.body.map(|b| serde_json::from_str(&b).unwrap_or(Value::Null));
                    let notifications = outcome.notifications.iter().map(notification_json).collect();
                    (Ok((outcome.status, body.unwrap_or(Value::Null), writes, notifications)), Some(tx))
                }
                Err(err) => (Err(err), Some(tx)),
            };
        }
    }
}

/// The status and body a client would get for `err`, and no writes or notifications.
async fn answer(err: ApiError) -> (u16, Value, Vec<Value>, Vec<Value>) {
    let response = err.into_response();
    let status = response.status().as_u16();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap_or_default();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null), Vec::new(), Vec::new())
}

fn query_pairs(query: Option<&Value>) -> anyhow::Result<Vec<(String, String)>> {
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    Ok(match query {
        None => Vec::new(),
        Some(Value::Object(fields)) => fields.iter().map(|(k, v)| (k.clone(), text(v))).collect(),
        Some(Value::Array(pairs)) => pairs
            .iter()
            .map(|pair| match pair.as_array().map(Vec::as_slice) {
                Some([k, v]) => Ok((text(k), text(v))),
                _ => bail!("request.query: a list of [name, value] pairs"),
            })
            .collect::<anyhow::Result<_>>()?,
        Some(_) => bail!("request.query: an object of texts or a list of [name, value] pairs"),
    })
}

fn write_json(write: &records::Write) -> Value {
    let mut out = Map::new();
    match write {
        records::Write::Upsert { record_type, id, data, expected_version } => {
            out.insert("upsert".into(), record_type.clone().into());
            out.insert("id".into(), id.clone().into());
            out.insert("data".into(), serde_json::from_str(data).unwrap_or(Value::Null));
            if let Some(v) = expected_version {
                out.insert("expectedVersion".into(), (*v).into());
            }
        }
        records::Write::Delete { record_type, id, expected_version } => {
            out.insert("delete".into(), record_type.clone().into());
            out.insert("id".into(), id.clone().into());
            if let Some(v) = expected_version {
                out.insert("expectedVersion".into(), (*v).into());
            }
        }
    }
    Value::Object(out)
}

fn notification_json(n: &crate::db::notifications::LoggedNotification) -> Value {
    let mut payload: Map<String, Value> = serde_json::from_str(&n.payload).unwrap_or_default();
    payload.remove("offset");
    let mut out = Map::new();
    out.insert("event".into(), n.event.clone().into());
    out.extend(payload);
    out.insert("to".into(), serde_json::from_str(&n.targets).unwrap_or(Value::Null));
    if let Some(socket) = &n.exclude_socket {
        out.insert("exceptSocket".into(), socket.clone().into());
    }
    Value::Object(out)
}

/// The fixture files of a project: `dir/tests/*.json`, in name order.
pub fn files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let tests = dir.join("tests");
    let entries = std::fs::read_dir(&tests).with_context(|| format!("reading {}", tests.display()))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    if files.is_empty() {
        bail!("{} holds no *.json fixtures", tests.display());
    }
    Ok(files)
}

/// Run every fixture in `files` against `harness`; returns the report and whether all passed.
pub async fn run_all(harness: &Harness, files: &[PathBuf]) -> (String, bool) {
    let mut report = String::new();
    let mut failed = 0;
    for file in files {
        let name = file.file_name().map_or_else(|| file.display().to_string(), |n| n.to_string_lossy().into_owned());
        let outcome = async {
            let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
            let fixture: Fixture = serde_json::from_str(&text).context("not a fixture")?;
            let actual = harness.run(&fixture).await?;
            anyhow::Ok((fixture, actual))
        }
        .await;
        match outcome {
            Ok((fixture, actual)) => {
                let diffs = fixture.expected().compare(&actual);
                let about = fixture.description.as_deref().map(|d| format!(": {d}")).unwrap_or_default();
                if diffs.is_empty() {
                    let _ = writeln!(report, "ok   {name}{about}");
                    continue;
                }
                failed += 1;
                let _ = writeln!(report, "FAIL {name}{about}");
                for diff in diffs {
                    let _ = writeln!(report, "     {diff}");
                }
                let _ = writeln!(report, "     the answer was {} {}", actual.status, actual.body);
                for (what, items) in [("writes", &actual.writes), ("notifications", &actual.notifications)] {
                    let _ = writeln!(report, "     {what}: {}", Value::Array(items.clone()));
                }
                for line in &actual.journal {
                    let _ = writeln!(report, "     plugin: {}", line.replace('\n', "\n             "));
                }
            }
            Err(err) => {
                failed += 1;
                let _ = writeln!(report, "FAIL {name}: {err:#}");
            }
        }
    }
    let _ = write!(report, "{} passed, {failed} failed", files.len() - failed);
    (report, failed == 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn actual(status: u16, body: Value, notifications: Vec<Value>) -> Actual {
        Actual { status, body, writes: Vec::new(), notifications, journal: Vec::new() }
    }

    /// The expectations of a fixture made of `value` and a request.
    fn expected(mut value: Value) -> Expected {
        value["request"] = json!({ "method": "GET", "path": "/" });
        serde_json::from_value::<Fixture>(value).unwrap().expected()
    }

    #[test]
    fn objects_match_on_the_fields_they_name_and_placeholders_bind_once() {
        let got = actual(
            201,
            json!({ "id": "r1", "title": "T", "createdAt": "x" }),
            vec![json!({ "event": "NEW_RECORD", "record": { "id": "r1" }, "to": ["admin"] })],
        );
        let same = expected(json!({
            "status": 201,
            "body": { "id": "$id", "title": "T" },
            "notifications": [{ "record": { "id": "$id" }, "to": ["admin"] }]
        }));
        assert_eq!(same.compare(&got), Vec::<String>::new());

        let other = actual(201, json!({ "id": "r1", "title": "T" }), vec![json!({ "record": { "id": "r2" } })]);
        assert_eq!(
            same.compare(&other),
            [
                "notifications[0].record.id: expected $id = \"r1\", got \"r2\"",
                "notifications[0].to: expected [\"admin\"], got nothing"
            ]
        );
    }

    #[test]
    fn differences_are_named_by_their_path() {
        let got = actual(400, json!({ "error": "title is required" }), Vec::new());
        let wanted = expected(json!({
            "status": 201,
            "body": { "title": "First", "tags": ["a"] },
            "writes": [{ "upsert": "BOOKMARK" }],
            "notifications": []
        }));
        assert_eq!(
            wanted.compare(&got),
            [
                "status: expected 201, got 400",
                "body.tags: expected [\"a\"], got nothing",
                "body.title: expected \"First\", got nothing",
                "writes: expected 1 items, got 0: []",
            ]
        );
        // `"body": null` expects no body; an absent body is not checked.
        assert_eq!(
            expected(json!({ "body": null })).compare(&actual(204, Value::Null, Vec::new())),
            Vec::<String>::new()
        );
        assert_eq!(expected(json!({ "body": null })).compare(&got).len(), 1);
        assert!(expected(json!({})).compare(&got).is_empty());
    }

    #[test]
    fn a_fixture_with_an_unknown_field_is_refused() {
        let typo = json!({ "request": { "method": "GET", "path": "/" }, "notification": [] });
        let err = serde_json::from_value::<Fixture>(typo).unwrap_err().to_string();
        assert!(err.contains("unknown field `notification`"), "{err}");
    }
}

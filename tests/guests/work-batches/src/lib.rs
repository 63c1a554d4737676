//! Test guest `work-batches`: batches of lines, uploaded as a file and counted by a background
//! task, plus list queries (`in`, `contains`) over the batches' tags.
//!
//! - `POST /batches` (multipart: a file, and a text field `mode`): stores a PENDING batch
//!   tagged by the form field `tags` (comma-separated) and spawns the task `count` with the
//!   file's text. Modes for the task: `ok` (count the lines; DONE), `trap` (panic), `refuse`
//!   (a plugin error). On the run with `failure` set, the batch ends ERROR with the reason.
//! - `GET /batches/tagged/:tag` (`contains`), `GET /batches/any?tags[]=..` (`contains` any),
//!   `GET /batches/by_ids?ids[]=..` (`in` on the id), `GET /batches/by_state?states[]=..`
//!   (`in` on a field).
//! - Lists in pages of `size` (`plugin_sdk::Page`), each element `{id, rank}`: `GET
//!   /batches/pages?size=&order=rank&desc=true` (every batch, by `rank` or by id), `GET
//!   /batches/union?size=&tags[]=..` (the batches with any of the tags, one query per tag, by
//!   `rank`). With `fault=trap|refuse|object|same`, every page after the first traps, refuses,
//!   answers an object, or names its own cursor as the next. `POST /batches/pages` answers a
//!   page with a next, which only a GET may.

use plugin_sdk::prelude::*;
use plugin_sdk::TaskRequest;
use serde::{Deserialize, Serialize};

struct Batches;
plugin_sdk::export!(Batches);

const BATCH: &str = "BATCH";

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Batch {
    state: String,
    tags: Vec<String>,
    filename: String,
    lines: Option<usize>,
    log: String,
}

#[derive(Serialize, Deserialize)]
struct CountInput {
    id: String,
    text: String,
    mode: String,
}

impl Plugin for Batches {
    fn describe() -> Descriptor {
        Descriptor::new("work-batches", BATCH, "batches", "0.1.0")
            .action("create", Method::Post, "/", Access::SignedIn)
            .action("tagged", Method::Get, "/tagged/:tag", Access::SignedIn)
            .action("any", Method::Get, "/any", Access::SignedIn)
            .action("by_ids", Method::Get, "/by_ids", Access::SignedIn)
            .action("by_state", Method::Get, "/by_state", Access::SignedIn)
            .action("pages", Method::Get, "/pages", Access::SignedIn)
            .action("union", Method::Get, "/union", Access::SignedIn)
            .action("post_pages", Method::Post, "/pages", Access::SignedIn)
            .index("state")
            .index("rank")
            .index_elements("tags")
    }

    fn handle(req: Request) -> Result<Response> {
        let list = |query: Query| -> Result<Response> {
            let mut ids: Vec<String> = query.fetch::<Batch>()?.into_iter().map(|b| b.id).collect();
            ids.sort();
            Ok(Response::ok(&ids))
        };
        match req.action() {
            "create" => create(&req),
            "tagged" => list(Query::new(BATCH).contains("tags", req.param("tag")?)),
            "any" => list(Query::new(BATCH).contains_any("tags", req.query_all("tags[]"))),
            "by_ids" => list(Query::new(BATCH).is_in("id", req.query_all("ids[]"))),
            "by_state" => list(Query::new(BATCH).is_in("state", req.query_all("states[]"))),
            "pages" => {
                let query = match req.query("order") {
                    Some(field) if req.query("desc") == Some("true") => Query::new(BATCH).order_by_desc(field),
                    Some(field) => Query::new(BATCH).order_by(field),
                    None => Query::new(BATCH),
                };
                pages(&req, vec![query])
            }
            "union" => {
                let tagged = |tag: &str| Query::new(BATCH).contains("tags", tag).order_by("rank");
                pages(&req, req.query_all("tags[]").map(tagged).collect())
            }
            "post_pages" => Ok(Response::ok(&json!([])).next_page(Some("more".into()))),
            other => Err(PluginError::NotFound(format!("no action {other}"))),
        }
    }

    fn run_task(req: TaskRequest) -> Result<Response> {
        let input: CountInput = serde_json::from_str(&req.input).map_err(|e| PluginError::Internal(e.to_string()))?;
        let mut batch = get::<Batch>(BATCH, &input.id)?.ok_or_else(|| PluginError::NotFound(input.id.clone()))?;
        if let Some(failure) = req.failure {
            batch.data.state = "ERROR".into();
            batch.data.log = format!("attempt {}: {failure}", req.attempt);
        } else {
            match input.mode.as_str() {
                "trap" => panic!("asked to trap"),
                "refuse" => return Err(PluginError::InvalidInput("asked to refuse".into())),
                _ => {}
            }
            batch.data.state = "DONE".into();
            batch.data.lines = Some(input.text.lines().count());
            batch.data.log = format!("attempt {}", req.attempt);
        }
        batch.touch(&req.now);
        let json = batch.to_json();
        Ok(Response::ok(&json).update(&batch).notify(Notification::changed(BATCH, &batch.id, &json).to(Target::All)))
    }
}

/// A page of the union of `queries`, or the fault `fault=` asks for on pages after the first.
fn pages(req: &Request, queries: Vec<Query>) -> Result<Response> {
    let size = req.query("size").and_then(|s| s.parse().ok()).unwrap_or(2);
    if let Some(cursor) = req.cursor() {
        match req.query("fault") {
            Some("trap") => panic!("asked to trap on a later page"),
            Some("refuse") => return Err(PluginError::NotFound("asked to refuse a later page".into())),
            Some("object") => return Ok(Response::ok(&json!({ "not": "a page" })).next_page(Some(cursor.into()))),
            Some("same") => return Ok(Response::ok(&json!([])).next_page(Some(cursor.into()))),
            _ => {}
        }
    }
    let page = Page::<Value>::union(queries, req.cursor(), size)?;
    let items: Vec<Value> = page.records.iter().map(|b| json!({ "id": b.id, "rank": b.data.get("rank") })).collect();
    Ok(Response::ok(&items).next_page(page.next))
}

fn create(req: &Request) -> Result<Response> {
    let upload = req.upload().ok_or_else(|| PluginError::InvalidInput("a file is required".into()))?;
    let text = String::from_utf8(upload.data.clone()).map_err(|_| PluginError::InvalidInput("not UTF-8".into()))?;
    let form: serde_json::Map<String, Value> = req.body().unwrap_or_default();
    let text_field = |name: &str| form.get(name).and_then(Value::as_str).unwrap_or_default().to_owned();
    let tags = text_field("tags").split(',').filter(|t| !t.is_empty()).map(str::to_owned).collect();
    let batch = Batch { state: "PENDING".into(), tags, filename: upload.filename.clone(), lines: None, log: String::new() };
    let record = Record::new(BATCH, req.now(), batch);
    let json = record.to_json();
    let input = CountInput { id: record.id.clone(), text, mode: text_field("mode") };
    Ok(Response::ok(&json)
        .insert(&record)
        .notify(Notification::created(BATCH, &record.id, &json).to(Target::All))
        .spawn("count", &input))
}

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
            .index("state")
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

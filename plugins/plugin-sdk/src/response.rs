//! [`Response`]: what a plugin answers, what it writes, and whom the host tells.

use serde::Serialize;

use crate::bindings::tidings::plugin::types::{self, Delete, Upsert};
use crate::{Notification, Record, Task, Write};

/// A successful outcome. The host applies the writes in order inside the request's
/// transaction, commits, answers with the status and body, then emits the notifications.
#[derive(Default)]
pub struct Response {
    status: u16,
    body: Option<String>,
    writes: Vec<Write>,
    notifications: Vec<Notification>,
    tasks: Vec<Task>,
    next: Option<String>,
}

impl Response {
    /// The status it answers with.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The body as JSON; `Null` when there is none.
    pub fn body_json(&self) -> serde_json::Value {
        self.body.as_deref().and_then(|b| serde_json::from_str(b).ok()).unwrap_or_default()
    }

    /// The writes, in the order the host applies them.
    pub fn writes(&self) -> &[Write] {
        &self.writes
    }

    /// The notifications, in the order the host logs them.
    pub fn notifications(&self) -> &[Notification] {
        &self.notifications
    }

    /// 200 with a JSON body.
    pub fn ok(body: &impl Serialize) -> Self {
        Self::with_status(200, body)
    }

    /// 201 with a JSON body.
    pub fn created(body: &impl Serialize) -> Self {
        Self::with_status(201, body)
    }

    /// 204 with no body.
    pub fn no_content() -> Self {
        Response { status: 204, ..Default::default() }
    }

    /// Any 2xx status with a JSON body.
    pub fn with_status(status: u16, body: &impl Serialize) -> Self {
        let body = serde_json::to_string(body).expect("a JSON value always serializes");
        Response { status, body: Some(body), ..Default::default() }
    }

    /// Insert a new record; the request fails with 409 if its id exists.
    pub fn insert<T: Serialize>(mut self, record: &Record<T>) -> Self {
        self.writes.push(Write::Upsert(Upsert {
            record_type: record.record_type.clone(),
            id: record.id.clone(),
            data: record.data_json(),
            expected_version: None,
        }));
        self
    }

    /// Update a record read earlier in this request; 409 if someone changed it since.
    pub fn update<T: Serialize>(mut self, record: &Record<T>) -> Self {
        self.writes.push(Write::Upsert(Upsert {
            record_type: record.record_type.clone(),
            id: record.id.clone(),
            data: record.data_json(),
            expected_version: Some(record.version),
        }));
        self
    }

    /// Delete a record read earlier in this request; 409 if someone changed it since.
    pub fn delete<T>(mut self, record: &Record<T>) -> Self {
        self.writes.push(Write::Delete(Delete {
            record_type: record.record_type.clone(),
            id: record.id.clone(),
            expected_version: Some(record.version),
        }));
        self
    }

    /// Run `name` in the background after the commit, with `input`; see [`crate::Plugin::run_task`].
    pub fn spawn(mut self, name: &str, input: &impl Serialize) -> Self {
        let input = serde_json::to_string(input).expect("a JSON value always serializes");
        self.tasks.push(Task { name: name.into(), input });
        self
    }

    /// Emit a notification after the commit.
    pub fn notify(mut self, notification: Notification) -> Self {
        self.notifications.push(notification);
        self
    }

    /// The body is one page of a list (a JSON array) and the list goes on at `cursor`, as
    /// [`crate::Page::next`] gives it; `None` ends the list. GET actions only: the host asks
    /// for the next page with [`crate::Request::cursor`] set and joins the pages into one
    /// array for the client.
    pub fn next_page(mut self, cursor: Option<String>) -> Self {
        self.next = cursor;
        self
    }
}

impl From<Response> for types::Response {
    fn from(r: Response) -> Self {
        types::Response {
            status: r.status,
            body: r.body,
            writes: r.writes,
            notifications: r.notifications,
            tasks: r.tasks,
            next: r.next,
        }
    }
}

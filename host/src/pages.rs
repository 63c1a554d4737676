//! Lists answered in pages. A GET action whose response sets `next` answered the first page
//! of a JSON array; [`stream`] asks the plugin for the following pages (the same action with
//! `request.cursor` set to the `next` of the page before), each on a fresh instance in the same
//! read snapshot and each checked like any output (`dispatch::check`, with its own deadline and
//! read quota), and sends the client the pages joined into one JSON array while they come. The
//! pages go through a channel of one, so at most a page or two is in memory however long the
//! list.
//!
//! The status goes out with the first page. A later page that fails (a trap, a timeout, a
//! refusal, invalid output, a database error) cannot change it any more, so the body is cut
//! instead: the connection ends without the closing `]`, and the client sees a broken body, never
//! a shorter list that parses. The failure is logged, and counted against the plugin when it is
//! the plugin's. Does not route or answer HTTP; see `http/records.rs`.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::de::IgnoredAny;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::db;
use crate::dispatch::{self, DispatchError};
use crate::plugin::{LoadedPlugin, Runtime, types};

/// Pages one list may have; a plugin that never ends its list is cut there.
pub const MAX_PAGES: usize = 100_000;
/// How long a page waits for the client to take the one before; a client that stops reading
/// is cut, so that it does not hold the read snapshot open.
const SEND_TIMEOUT: Duration = Duration::from_secs(30);

/// The rest of a paged list: where it goes on, and the read snapshot to read it in.
pub struct Rest {
    pub cursor: String,
    pub tx: db::Tx,
}

impl fmt::Debug for Rest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rest").field("cursor", &self.cursor).finish_non_exhaustive()
    }
}

/// Why a paged body was cut after its first page.
#[derive(Debug, thiserror::Error)]
#[error("the list was cut after {pages} pages: {reason}")]
pub struct Cut {
    pages: usize,
    reason: String,
}

/// The body of a paged list: `first` (a page the caller has checked) and then the rest,
/// produced by a task of its own as the client reads.
pub fn stream(
    runtime: Arc<Runtime>,
    plugin: Arc<LoadedPlugin>,
    req: types::Request,
    first: String,
    rest: Rest,
) -> ReceiverStream<Result<String, Cut>> {
    let (sender, receiver) = mpsc::channel(1);
    tokio::spawn(send_pages(runtime, plugin, req, first, rest, sender));
    ReceiverStream::new(receiver)
}

async fn send_pages(
    runtime: Arc<Runtime>,
    plugin: Arc<LoadedPlugin>,
    mut req: types::Request,
    first: String,
    rest: Rest,
    sender: mpsc::Sender<Result<String, Cut>>,
) {
    let send = async |chunk| matches!(tokio::time::timeout(SEND_TIMEOUT, sender.send(chunk)).await, Ok(Ok(())));
    let mut joined = Joined::default();
    let Rest { mut cursor, tx } = rest;
    let mut tx = Some(tx);
    let mut pages = 1;
    let mut chunk = joined.page(&first);
    let failure = loop {
        if !chunk.is_empty() && !send(Ok(chunk)).await {
            // The client went away (or stopped reading): nothing more to do.
            break None;
        }
        if pages == MAX_PAGES {
            break Some(dispatch::fault(&runtime, &plugin, format!("a list of more than {MAX_PAGES} pages")));
        }
        req.cursor = Some(cursor.clone());
        let Some(snapshot) = tx.take() else { break None };
        let (page, back) = next_page(&runtime, &plugin, &req, snapshot).await;
        tx = back;
        match page {
            Ok((body, next)) => {
                pages += 1;
                chunk = joined.page(&body);
                match next {
                    Some(next) => cursor = next,
                    None => {
                        chunk.push(']');
                        if send(Ok(chunk)).await {
                            tracing::debug!(plugin = plugin.descriptor.name, pages, "paged list sent");
                        }
                        break None;
                    }
                }
            }
            Err(err) => break Some(err),
        }
    };
    if let Some(err) = failure {
        tracing::error!(
            plugin = plugin.descriptor.name,
            action = req.action,
            pages,
            error = %err,
            "a paged list failed after its first page was sent; its body is cut"
        );
        let _ = sender.send(Err(Cut { pages, reason: err.to_string() })).await;
    }
    if let Some(tx) = tx {
        let _ = tx.rollback().await;
    }
}

/// Ask for the page at `req.cursor` and check it: the body, a JSON array, and where the list
/// goes on. The transaction comes back unless the call lost it.
async fn next_page(
    runtime: &Runtime,
    plugin: &LoadedPlugin,
    req: &types::Request,
    tx: db::Tx,
) -> (Result<(String, Option<String>), DispatchError>, Option<db::Tx>) {
    let (result, tx) = runtime.handle(plugin, None, req, tx).await;
    let checked = match result {
        Ok(response) => dispatch::check(plugin, response, req, true).map_err(|m| dispatch::fault(runtime, plugin, m)),
        // A refusal is part of normal operation for a first page, not halfway through a list.
        Err(crate::plugin::Error::Guest(refusal)) => {
            Err(dispatch::fault(runtime, plugin, format!("a later page was refused: {refusal:?}")))
        }
        // Traps and timeouts are counted by the runtime; host errors are not the plugin's.
        Err(err) => Err(err.into()),
    };
    let page = checked.and_then(|checked| {
        let (body, next) = checked.into_page();
        let Some(body) = body else {
            return Err(dispatch::fault(runtime, plugin, "a page without a body".into()));
        };
        if next.as_ref() == req.cursor.as_ref() {
            return Err(dispatch::fault(runtime, plugin, "a page whose next is its own cursor".into()));
        }
        // With `next` set, `check` made sure of this; the last page is checked here.
        if next.is_none() && serde_json::from_str::<Vec<IgnoredAny>>(&body).is_err() {
            return Err(dispatch::fault(runtime, plugin, "the last page of a list is not a JSON array".into()));
        }
        runtime.record_outcome(plugin, false);
        Ok((body, next))
    });
    if page.is_ok() && tx.is_none() {
        return (Err(dispatch::fault(runtime, plugin, "the transaction was lost during the call".into())), None);
    }
    (page, tx)
}

/// Pages (JSON arrays) joined into one array, a chunk per page.
#[derive(Default)]
struct Joined {
    opened: bool,
    elements: bool,
}

impl Joined {
    /// The text that adds `page`'s elements to the array (the opening `[` first; nothing for
    /// an empty page after the first). `page` is a JSON array.
    fn page(&mut self, page: &str) -> String {
        let inner = page.trim().strip_prefix('[').and_then(|p| p.strip_suffix(']')).unwrap_or_default().trim();
        let mut chunk = String::with_capacity(inner.len() + 2);
        if !self.opened {
            chunk.push('[');
            self.opened = true;
        }
        if !inner.is_empty() {
            if self.elements {
                chunk.push(',');
            }
            chunk.push_str(inner);
            self.elements = true;
        }
        chunk
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_join_into_one_array() {
        let mut joined = Joined::default();
        let mut body = String::new();
        for page in [" [1, 2] ", "[]", "[\n3\n]", "[ ]", "[{\"a\": [4]}]"] {
            body.push_str(&joined.page(page));
        }
        body.push(']');
        assert_eq!(serde_json::from_str::<serde_json::Value>(&body).unwrap(), serde_json::json!([1, 2, 3, {"a": [4]}]));

        let mut joined = Joined::default();
        let body = joined.page("[]") + &joined.page("[]") + "]";
        assert_eq!(body, "[]");
    }
}

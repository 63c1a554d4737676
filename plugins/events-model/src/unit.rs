//! [`Changes`]: the unit of work of one request. Reads go through it, so a step sees what
//! earlier steps of the same request changed (e.g. the second id of a `change_state`); the
//! changes are turned into writes once, at the end, so each record is written at most once
//! per response, as the host requires.

use std::collections::{BTreeMap, BTreeSet};

use plugin_sdk::{Query, Record, Response, Result, get};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::event::{Event, EventState};
use crate::group::EventGroup;
use crate::{EVENT, EVENT_GROUP};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Status {
    /// As read from the store.
    Read,
    Inserted,
    Updated,
    Deleted,
}

/// The records of one type that a request has read or changed.
pub struct Table<T> {
    record_type: &'static str,
    now: String,
    rows: BTreeMap<String, (Record<T>, Status)>,
    /// Ids in the order they were first changed: the order of the writes.
    order: Vec<String>,
}

impl<T: Clone + Serialize + DeserializeOwned> Table<T> {
    fn new(record_type: &'static str, now: &str) -> Self {
        Table { record_type, now: now.into(), rows: BTreeMap::new(), order: Vec::new() }
    }

    /// The record as this request sees it; `None` when it does not exist or was deleted.
    pub fn get(&mut self, id: &str) -> Result<Option<Record<T>>> {
        if let Some((record, status)) = self.rows.get(id) {
            return Ok((*status != Status::Deleted).then(|| record.clone()));
        }
        let Some(record) = get::<T>(self.record_type, id)? else { return Ok(None) };
        self.rows.insert(id.into(), (record.clone(), Status::Read));
        Ok(Some(record))
    }

    /// Run `query` against the store and see each result as this request does: changed
    /// records replace what the store returned, `matches` re-checks the query's conditions
    /// on them, and records this request inserted or changed into a match are added.
    pub fn find(&mut self, query: Query, matches: impl Fn(&Record<T>) -> bool) -> Result<Vec<Record<T>>> {
        let mut seen = BTreeSet::new();
        let mut found = Vec::new();
        for record in query.fetch::<T>()? {
            seen.insert(record.id.clone());
            let (current, status) =
                self.rows.entry(record.id.clone()).or_insert_with(|| (record, Status::Read)).clone();
            if status != Status::Deleted && matches(&current) {
                found.push(current);
            }
        }
        for (id, (record, status)) in &self.rows {
            if !seen.contains(id) && matches!(status, Status::Inserted | Status::Updated) && matches(record) {
                found.push(record.clone());
            }
        }
        Ok(found)
    }

    /// Store a new record (stamped with the request's time, as the host will); returns it
    /// as stored.
    pub fn insert(&mut self, mut record: Record<T>) -> Record<T> {
        record.created_at = self.now.clone();
        record.updated_at = self.now.clone();
        self.order.push(record.id.clone());
        self.rows.insert(record.id.clone(), (record.clone(), Status::Inserted));
        record
    }

    /// Store a changed record that this request read or inserted; returns it as stored.
    pub fn update(&mut self, mut record: Record<T>) -> Record<T> {
        record.touch(&self.now);
        let status = match self.rows.get(&record.id).map(|(_, s)| *s) {
            Some(Status::Inserted) => Status::Inserted,
            _ => Status::Updated,
        };
        if !self.order.contains(&record.id) {
            self.order.push(record.id.clone());
        }
        self.rows.insert(record.id.clone(), (record.clone(), status));
        record
    }

    /// Delete a record that this request read or inserted.
    pub fn delete(&mut self, record: &Record<T>) {
        match self.rows.get(&record.id).map(|(_, s)| *s) {
            Some(Status::Inserted) => {
                self.rows.remove(&record.id);
                self.order.retain(|id| *id != record.id);
            }
            _ => {
                if !self.order.contains(&record.id) {
                    self.order.push(record.id.clone());
                }
                self.rows.insert(record.id.clone(), (record.clone(), Status::Deleted));
            }
        }
    }

    fn into_writes(self, mut response: Response) -> Response {
        for id in &self.order {
            let Some((record, status)) = self.rows.get(id) else { continue };
            response = match status {
                Status::Read => response,
                Status::Inserted => response.insert(record),
                Status::Updated => response.update(record),
                Status::Deleted => response.delete(record),
            };
        }
        response
    }
}

/// The events and event groups one request reads and changes.
pub struct Changes {
    pub events: Table<Event>,
    pub groups: Table<EventGroup>,
}

impl Changes {
    /// A unit of work for a request at `now` (the request's `req.now()`).
    pub fn new(now: &str) -> Self {
        Changes { events: Table::new(EVENT, now), groups: Table::new(EVENT_GROUP, now) }
    }

    /// The request's time, which stamps every write.
    pub fn now(&self) -> &str {
        &self.events.now
    }

    /// The groups that hold `event_id` (`EventGroups.allOfEvent`).
    pub fn groups_of_event(&mut self, event_id: &str) -> Result<Vec<Record<EventGroup>>> {
        self.groups.find(Query::new(EVENT_GROUP).contains("eventIds", event_id), |g| g.data.has_event(event_id))
    }

    /// The groups `user_id` is a member of.
    pub fn groups_of_user(&mut self, user_id: &str) -> Result<Vec<Record<EventGroup>>> {
        self.groups.find(Query::new(EVENT_GROUP).contains("userIds", user_id), |g| g.data.has_member(user_id))
    }

    /// The direct children (versions) of the events `parent_ids`.
    pub fn children_of(&mut self, parent_ids: &[String]) -> Result<Vec<Record<Event>>> {
        if parent_ids.is_empty() {
            return Ok(Vec::new());
        }
        let query = Query::new(EVENT).is_in("parentId", parent_ids.iter().cloned());
        self.events.find(query, |e| e.data.parent_id.as_ref().is_some_and(|p| parent_ids.contains(p)))
    }

    /// Every descendant of `root_id` (children, their children, ...), breadth first.
    pub fn descendants_of(&mut self, root_id: &str) -> Result<Vec<Record<Event>>> {
        let mut all = Vec::new();
        let mut seen = BTreeSet::from([root_id.to_owned()]);
        let mut frontier = vec![root_id.to_owned()];
        while !frontier.is_empty() {
            let children: Vec<_> =
                self.children_of(&frontier)?.into_iter().filter(|c| seen.insert(c.id.clone())).collect();
            frontier = children.iter().map(|c| c.id.clone()).collect();
            all.extend(children);
        }
        Ok(all)
    }

    /// The events of the job `job_id` as this request sees them (soft-deleted ones
    /// included), by `createdAt`, then `id`: the order of a job's `events` wherever a job is
    /// read or announced, so that a client holding the announced job holds what a read gives.
    /// (An import creates its events in one transaction: they share `createdAt`, and `id`
    /// decides.)
    pub fn events_of_job(&mut self, job_id: &str) -> Result<Vec<Record<Event>>> {
        let query = Query::new(EVENT).eq("jobId", job_id);
        let mut events = self.events.find(query, |e| e.data.job_id.as_deref() == Some(job_id))?;
        events.sort_by(|a, b| (&a.created_at, &a.id).cmp(&(&b.created_at, &b.id)));
        Ok(events)
    }

    /// `publishedVersionIds` of each of `ids`: its PUBLISHED children by `createdAt`.
    pub fn published_versions(&mut self, ids: &[String]) -> Result<BTreeMap<String, Vec<String>>> {
        let mut children: Vec<_> =
            self.children_of(ids)?.into_iter().filter(|c| c.data.state == EventState::Published).collect();
        children.sort_by(|a, b| (&a.created_at, &a.id).cmp(&(&b.created_at, &b.id)));
        let mut versions: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for child in children {
            let parent = child.data.parent_id.clone().expect("a child has a parent");
            versions.entry(parent).or_default().push(child.id);
        }
        Ok(versions)
    }

    /// The API shapes of `events` as this request leaves them.
    pub fn api_events(&mut self, events: &[Record<Event>]) -> Result<Vec<plugin_sdk::Value>> {
        let ids: Vec<String> = events.iter().map(|e| e.id.clone()).collect();
        let versions = self.published_versions(&ids)?;
        Ok(crate::event::api_events(events, &versions))
    }

    /// Hard-delete the event `event` as the original's database did: its versions go with it
    /// (`parentId` cascades), clones forget it (`clonedFromId` is set null), and the groups
    /// drop it (the join rows go). Only the deleted event itself is announced by callers;
    /// the original's database announced none of these side effects either.
    pub fn hard_delete(&mut self, event: &Record<Event>) -> Result<()> {
        let mut doomed = self.descendants_of(&event.id)?;
        doomed.insert(0, event.clone());
        for gone in &doomed {
            for mut group in self.groups_of_event(&gone.id)? {
                group.data.remove_event(&gone.id);
                self.groups.update(group);
            }
            let clones = self.events.find(Query::new(EVENT).eq("clonedFromId", gone.id.as_str()), |e| {
                e.data.cloned_from_id.as_deref() == Some(gone.id.as_str())
            })?;
            for mut clone in clones {
                if doomed.iter().any(|d| d.id == clone.id) {
                    continue;
                }
                clone.data.cloned_from_id = None;
                self.events.update(clone);
            }
        }
        for gone in &doomed {
            self.events.delete(gone);
        }
        Ok(())
    }

    /// Add every change as a write to `response`: events first, then groups.
    pub fn into_response(self, response: Response) -> Response {
        let response = self.events.into_writes(response);
        self.groups.into_writes(response)
    }
}

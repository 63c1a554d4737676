//! `POST /events/change_state`: the review workflow of events-api's `Events.setState`
//! (`src/models/event.ts`), including registration-period windows and the version swap.
//!
//! ```text
//! DRAFT  ──author/admin──► REVIEW ──admin──► PUBLISHED   (immutable)
//!                            └─────admin──► REFUSED     (immutable)
//! ```
//!
//! A DRAFT version (one with a `parentId`) is submitted under the root of its history. When
//! an admin publishes a REVIEW version R of the published event P, the two swap contents: P
//! keeps its id (calendar subscribers keep their link) and gets R's content, and R becomes
//! the old version. The other reviews under P are refused.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use events_model::audience::{self, all_departments};
use events_model::event::{Event, EventState};
use events_model::{Changes, EVENT, REGISTRATION_PERIOD, date};
use plugin_sdk::{Notification, PluginError, Query, Record, Request, Response, Result, Role, Target, User};
use serde::Deserialize;

#[derive(Deserialize)]
struct Body {
    data: Data,
}

/// The body's `data`. The original also takes a `message` for its e-mails; Tidings sends no
/// e-mail, so it is ignored like any other unknown field.
#[derive(Deserialize)]
struct Data {
    ids: Vec<String>,
    state: EventState,
}

/// What one state change did (`setState`'s result).
struct Outcome {
    /// The changed event; for a publish with a swap, the published id with the new content.
    event: String,
    /// With a swap: the old content under its new id, now a PUBLISHED version.
    previous: Option<String>,
    /// With a swap: the other reviews of the same event, now REFUSED.
    refused: Vec<String>,
}

/// `POST /change_state` with `{data: {ids, state, message?}}`: 201 with the changed events.
/// Each changed record is announced once per room: REVIEW and REFUSED to its author and the
/// admins, PUBLISHED to everyone, all to the caller's socket too.
///
/// Deviation: the original runs the ids in parallel without a transaction, so a failure
/// after some succeeded leaves those applied and still answers the error. Here the request
/// is atomic: the first failure answers its error and nothing is changed or announced.
pub fn change_state(req: &Request) -> Result<Response> {
    let user = req.require_user()?;
    let data = req.body::<Body>()?.data;
    let mut changes = Changes::new(req.now());
    let mut outcomes = Vec::new();
    let mut seen = BTreeSet::new();
    // Each id once: a repeated id would otherwise meet its own first change.
    for id in data.ids.iter().filter(|id| seen.insert(id.as_str())) {
        outcomes.push(set_state(&mut changes, user, id, data.state, req.now())?);
    }

    let events = ids_to_records(&mut changes, outcomes.iter().map(|o| &o.event))?;
    let body = changes.api_events(&events)?;
    let mut response = Response::created(&body);
    let announced = outcomes.iter().flat_map(|o| std::iter::once(&o.event).chain(&o.previous).chain(&o.refused));
    let announced = ids_to_records(&mut changes, announced)?;
    let json = changes.api_events(&announced)?;
    for (record, json) in announced.iter().zip(&json) {
        let rooms = match record.data.state {
            EventState::Review | EventState::Refused => {
                vec![Target::User(record.data.author_id.clone()), Target::Admins]
            }
            EventState::Published => vec![Target::All],
            EventState::Draft => vec![],
        };
        for room in rooms {
            response = response.notify(Notification::changed(EVENT, &record.id, json).to(room).to_self());
        }
    }
    Ok(changes.into_response(response))
}

fn ids_to_records<'a>(changes: &mut Changes, ids: impl Iterator<Item = &'a String>) -> Result<Vec<Record<Event>>> {
    let mut records = Vec::new();
    for id in ids {
        records.push(changes.events.get(id)?.ok_or_else(|| PluginError::Internal(format!("event {id} vanished")))?);
    }
    Ok(records)
}

fn bad(message: &str) -> PluginError {
    PluginError::InvalidInput(message.into())
}

/// One event's transition (`setState`).
fn set_state(changes: &mut Changes, user: &User, id: &str, requested: EventState, now: &str) -> Result<Outcome> {
    let is_admin = matches!(user.role, Role::Admin);
    let mut event = changes.events.get(id)?.ok_or_else(|| PluginError::NotFound("Event not found".into()))?;
    if event.data.author_id != user.id && !is_admin {
        return Err(PluginError::Forbidden("Not authorized".into()));
    }
    let done = |event: String| Outcome { event, previous: None, refused: Vec::new() };
    match (event.data.state, requested) {
        (EventState::Draft, EventState::Review) => {
            if event.data.parent_id.is_some() {
                // A version is reviewed against the root of its history; no registration
                // period applies to changes of a published event.
                event.data.parent_id = Some(root_of(changes, &event)?.id);
            } else if !is_admin {
                check_registration_period(&event.data, now)?;
            }
            let (classes, class_groups) = audience::normalize(&all_departments()?, &event.data);
            event.data.classes = classes;
            event.data.class_groups = class_groups;
            event.data.state = EventState::Review;
            Ok(done(changes.events.update(event).id))
        }
        (EventState::Draft, _) => Err(bad("Draft can only be set to review")),
        (EventState::Review, _) if !is_admin => Err(PluginError::Forbidden("Forbidden".into())),
        (EventState::Review, EventState::Published) if event.data.parent_id.is_some() => swap(changes, event),
        (EventState::Review, EventState::Published | EventState::Refused) => {
            event.data.state = requested;
            Ok(done(changes.events.update(event).id))
        }
        (EventState::Review, _) => Err(bad("Review can only be set to Published or to Refused")),
        (state @ (EventState::Published | EventState::Refused), _) => {
            Err(bad(&format!("{} state is immutable", state.as_str())))
        }
    }
}

/// The ancestor of `event` without a parent.
fn root_of(changes: &mut Changes, event: &Record<Event>) -> Result<Record<Event>> {
    let mut current = event.clone();
    let mut seen = BTreeSet::new();
    while let Some(parent_id) = current.data.parent_id.clone() {
        if !seen.insert(parent_id.clone()) {
            return Err(PluginError::Internal(format!("the history of event {} has a cycle", event.id)));
        }
        current = changes.events.get(&parent_id)?.ok_or_else(|| PluginError::NotFound("Parent not found".into()))?;
    }
    Ok(current)
}

/// The fields of a `REGISTRATION_PERIOD` record that the window check needs.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RegistrationPeriod {
    start: String,
    end: String,
    event_range_start: String,
    event_range_end: String,
    #[serde(default)]
    is_open: bool,
    #[serde(default)]
    department_ids: Vec<String>,
}

impl RegistrationPeriod {
    /// Open for `event`: the event starts within the period's event range, and the period
    /// is open or `now` lies within it.
    fn admits(&self, event: &Event, now: &str) -> bool {
        let at = |text: &str| date::parse(text);
        let (Some(start), Some(range_start), Some(range_end)) =
            (at(&event.start), at(&self.event_range_start), at(&self.event_range_end))
        else {
            return false;
        };
        let in_range = range_start <= start && start <= range_end;
        let now: Option<DateTime<Utc>> = at(now);
        let running = matches!((at(&self.start), now, at(&self.end)), (Some(s), Some(n), Some(e)) if s <= n && n <= e);
        in_range && (self.is_open || running)
    }
}

/// A user may submit a new event only while a registration period for it is open: one of
/// the event's departments (its own, or those of its classes and class groups) with the
/// event's start in the period's event range. Events for linked users only are matched by
/// the event range alone. 400 `No open registration period found.` otherwise.
fn check_registration_period(event: &Event, now: &str) -> Result<()> {
    let periods = if event.has_only_linked_users() {
        Query::new(REGISTRATION_PERIOD).fetch::<RegistrationPeriod>()?
    } else {
        let departments = audience::departments_of(&all_departments()?, event);
        if departments.is_empty() {
            Vec::new()
        } else {
            Query::new(REGISTRATION_PERIOD)
                .contains_any("departmentIds", departments.iter().cloned())
                .fetch::<RegistrationPeriod>()?
                .into_iter()
                .filter(|p| p.data.department_ids.iter().any(|d| departments.contains(d)))
                .collect()
        }
    };
    if periods.iter().any(|p| p.data.admits(event, now)) {
        Ok(())
    } else {
        Err(bad("No open registration period found."))
    }
}

/// Publish the REVIEW version `review` (R) of its parent P by swapping their contents.
///
/// - R gets P's content (author, state, job, meta, audience, dates, `clonedFromId`,
///   `deletedAt`, ...) and stays P's child: the old published version.
/// - P gets R's content, PUBLISHED and without a parent; its `clonedFromId` points to R
///   when R was cloned from P (a version is), else to what R was cloned from.
/// - P gets the groups of both; R leaves its groups.
/// - Every other REVIEW below P is REFUSED.
/// - Clones of R now point to P, which holds R's content.
///
/// Deviation: the host owns `createdAt` and `updatedAt`, so they cannot be swapped as the
/// original does: both rows keep their own `createdAt`, and both get `updatedAt` = now. The
/// order of `publishedVersionIds` (by `createdAt`) is unchanged by this: each old version's
/// row was created when its edit was.
///
/// Deviation: the original leaves `affectsDepartment2` in place and keeps a row's `meta` or
/// job when the other side has none; here the whole content is swapped.
fn swap(changes: &mut Changes, review: Record<Event>) -> Result<Outcome> {
    let parent_id = review.data.parent_id.clone().expect("a version has a parent");
    let parent = changes.events.get(&parent_id)?.ok_or_else(|| PluginError::NotFound("Parent not found".into()))?;
    if parent.data.parent_id.is_some() {
        return Err(bad("Parent must be the current published version"));
    }
    let siblings: Vec<Record<Event>> = changes
        .descendants_of(&parent.id)?
        .into_iter()
        .filter(|e| e.id != review.id && e.data.state == EventState::Review)
        .collect();

    let mut old = review.clone();
    old.data = Event { parent_id: Some(parent.id.clone()), ..parent.data.clone() };
    let mut published = parent.clone();
    published.data = Event {
        parent_id: None,
        state: EventState::Published,
        cloned_from_id: review
            .data
            .cloned_from_id
            .as_ref()
            .map(|c| if *c == parent.id { review.id.clone() } else { c.clone() }),
        ..review.data.clone()
    };
    changes.events.update(old);
    changes.events.update(published);

    for mut group in changes.groups_of_event(&review.id)? {
        group.data.replace_event(&review.id, &parent.id);
        changes.groups.update(group);
    }
    for mut sibling in siblings.iter().cloned() {
        sibling.data.state = EventState::Refused;
        changes.events.update(sibling);
    }
    let clones = changes.events.find(Query::new(EVENT).eq("clonedFromId", review.id.as_str()), |e| {
        e.data.cloned_from_id.as_deref() == Some(review.id.as_str())
    })?;
    for mut clone in clones.into_iter().filter(|c| c.id != parent.id) {
        clone.data.cloned_from_id = Some(parent.id.clone());
        changes.events.update(clone);
    }
    Ok(Outcome { event: parent.id, previous: Some(review.id), refused: siblings.into_iter().map(|s| s.id).collect() })
}

//! Who may see and change which event: the model checks of events-api's
//! `src/models/event.ts` (`findModel`, `_findRecord`, `allByIds`).

use std::collections::BTreeSet;

use plugin_sdk::{PluginError, Query, Record, Result, Role, User};

use crate::event::{Event, EventState};
use crate::{Changes, EVENT};

fn is_admin(user: Option<&User>) -> bool {
    user.is_some_and(|u| matches!(u.role, Role::Admin))
}

fn not_found() -> PluginError {
    PluginError::NotFound("Event not found".into())
}

fn not_authorized() -> PluginError {
    PluginError::Forbidden("Not authorized".into())
}

/// Whether `user_id` is a member of one of the groups that hold `event_id`.
pub fn is_group_member(changes: &mut Changes, event_id: &str, user_id: &str) -> Result<bool> {
    Ok(changes.groups_of_event(event_id)?.iter().any(|g| g.data.has_member(user_id)))
}

/// The event `id` for reading (`findModel`): PUBLISHED ones for anyone, any state for the
/// author, REVIEW and REFUSED for admins; 404 when missing, 403 otherwise (group members
/// included, as in the original).
pub fn find_model(changes: &mut Changes, user: Option<&User>, id: &str) -> Result<Record<Event>> {
    let event = changes.events.get(id)?.ok_or_else(not_found)?;
    let visible = event.data.state == EventState::Published
        || user.is_some_and(|u| u.id == event.data.author_id)
        || (is_admin(user) && matches!(event.data.state, EventState::Review | EventState::Refused));
    if visible { Ok(event) } else { Err(not_authorized()) }
}

/// The event `id` for changing (`_findRecord`): a PUBLISHED one for any signed-in user
/// unless `read_write` (they may version or clone it); otherwise only for its author, a
/// member of one of its groups, or an admin. 404 when missing, 403 otherwise.
pub fn find_record(changes: &mut Changes, user: Option<&User>, id: &str, read_write: bool) -> Result<Record<Event>> {
    let event = changes.events.get(id)?.ok_or_else(not_found)?;
    if !read_write && event.data.state == EventState::Published {
        return Ok(event);
    }
    let Some(user) = user else { return Err(not_authorized()) };
    if user.id == event.data.author_id || is_admin(Some(user)) || is_group_member(changes, id, &user.id)? {
        Ok(event)
    } else {
        Err(not_authorized())
    }
}

/// Of the events `ids`, those `user` may see in a list (`allByIds`): PUBLISHED ones for
/// anyone; for a signed-in user also their own and those of their groups; for an admin also
/// every REVIEW and REFUSED one. Soft-deleted events are included, as in the original.
/// Ordered by `start`, then `id`.
pub fn all_by_ids(changes: &mut Changes, user: Option<&User>, ids: &[String]) -> Result<Vec<Record<Event>>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let wanted: BTreeSet<&String> = ids.iter().collect();
    let mut events =
        changes.events.find(Query::new(EVENT).is_in("id", ids.iter().cloned()), |e| wanted.contains(&e.id))?;
    let group_events: BTreeSet<String> = match user {
        Some(u) => changes.groups_of_user(&u.id)?.into_iter().flat_map(|g| g.data.event_ids).collect(),
        None => BTreeSet::new(),
    };
    events.retain(|e| {
        e.data.state == EventState::Published
            || user.is_some_and(|u| u.id == e.data.author_id)
            || group_events.contains(&e.id)
            || (is_admin(user) && matches!(e.data.state, EventState::Review | EventState::Refused))
    });
    events.sort_by(|a, b| (&a.data.start, &a.id).cmp(&(&b.data.start, &b.id)));
    Ok(events)
}

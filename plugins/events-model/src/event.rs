//! The `EVENT` record: [`Event`] as stored (the original's `Event` columns plus
//! `departmentIds` and `linkedUserIds`, in camelCase), its API shape ([`api_event`], the
//! original's `prepareEvent`), and the two ways of copying one (`clonedProps`): a version
//! ([`Event::version_of`]) and a clone ([`Event::clone_of`]).

use std::collections::BTreeMap;

use plugin_sdk::{PluginError, Record, Result, Value, field};
use serde::{Deserialize, Serialize};
use serde_json::Map;

use crate::date;

/// `EventState` (`prisma/schema.prisma`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum EventState {
    Draft,
    Review,
    Published,
    Refused,
}

impl EventState {
    pub fn as_str(self) -> &'static str {
        match self {
            EventState::Draft => "DRAFT",
            EventState::Review => "REVIEW",
            EventState::Published => "PUBLISHED",
            EventState::Refused => "REFUSED",
        }
    }
}

/// `EventAudience`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Audience {
    #[serde(rename = "LP")]
    Lp,
    #[serde(rename = "KLP")]
    Klp,
    #[default]
    Students,
    All,
}

/// `TeachingAffected`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum TeachingAffected {
    #[default]
    Yes,
    Partial,
    No,
}

/// An event as stored. The host adds `id`, `createdAt` and `updatedAt`; the API adds
/// `publishedVersionIds`, which is computed on read (see [`api_events`]), never stored.
/// Dates are in the [`date`] form. `departmentIds` and `linkedUserIds` are kept sorted and
/// without duplicates.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub author_id: String,
    pub start: String,
    pub end: String,
    #[serde(default)]
    pub location: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub description_long: String,
    pub state: EventState,
    #[serde(default)]
    pub cloned: bool,
    #[serde(default)]
    pub job_id: Option<String>,
    #[serde(default)]
    pub parent_id: Option<String>,
    #[serde(default)]
    pub cloned_from_id: Option<String>,
    #[serde(default)]
    pub classes: Vec<String>,
    #[serde(default)]
    pub class_groups: Vec<String>,
    #[serde(default)]
    pub audience: Audience,
    #[serde(default = "some_false")]
    pub affects_department2: Option<bool>,
    #[serde(default)]
    pub teaching_affected: TeachingAffected,
    #[serde(default)]
    pub deleted_at: Option<String>,
    #[serde(default)]
    pub meta: Option<Value>,
    #[serde(default)]
    pub department_ids: Vec<String>,
    #[serde(default)]
    pub linked_user_ids: Vec<String>,
}

fn some_false() -> Option<bool> {
    Some(false)
}

impl Event {
    /// A new DRAFT by `author_id` with the original's column defaults.
    pub fn draft(author_id: &str, start: String, end: String) -> Self {
        Event {
            author_id: author_id.into(),
            start,
            end,
            location: String::new(),
            description: String::new(),
            description_long: String::new(),
            state: EventState::Draft,
            cloned: false,
            job_id: None,
            parent_id: None,
            cloned_from_id: None,
            classes: Vec::new(),
            class_groups: Vec::new(),
            audience: Audience::default(),
            affects_department2: Some(false),
            teaching_affected: TeachingAffected::default(),
            deleted_at: None,
            meta: None,
            department_ids: Vec::new(),
            linked_user_ids: Vec::new(),
        }
    }

    /// A basic clone of `source` (`cloneModel`, `clonedProps` type `basic`): a new DRAFT by
    /// `author_id` with `cloned: true` and `clonedFromId` = the source. It copies the
    /// content and the audience, not `affectsDepartment2`, `meta`, groups or job.
    pub fn clone_of(source: &Record<Event>, author_id: &str) -> Self {
        let s = &source.data;
        Event {
            location: s.location.clone(),
            description: s.description.clone(),
            description_long: s.description_long.clone(),
            cloned: true,
            cloned_from_id: Some(source.id.clone()),
            classes: s.classes.clone(),
            class_groups: s.class_groups.clone(),
            audience: s.audience,
            teaching_affected: s.teaching_affected,
            department_ids: s.department_ids.clone(),
            linked_user_ids: s.linked_user_ids.clone(),
            ..Event::draft(author_id, s.start.clone(), s.end.clone())
        }
    }

    /// A new DRAFT version of `source` by `author_id` (`updateModel` on a non-draft,
    /// `clonedProps` type `full` without groups): the content, the audience and a copy of
    /// `meta`, with `parentId` and `clonedFromId` = the source. `cloned` is the source's.
    pub fn version_of(source: &Record<Event>, author_id: &str) -> Self {
        Event {
            cloned: source.data.cloned,
            parent_id: Some(source.id.clone()),
            meta: source.data.meta.clone(),
            ..Event::clone_of(source, author_id)
        }
    }

    /// Apply the updatable fields of an update body (`updateModel`'s `getData`): `audience,
    /// classes, description, start, end, location, classGroups, descriptionLong,
    /// teachingAffected`, plus `departmentIds` and `linkedUserIds` when given. Everything
    /// else the client sends (it sends whole records) is ignored; so is `null`, since none of
    /// these fields is nullable. 400 when a field does not fit or `start > end`.
    pub fn apply_update(&mut self, changes: &Map<String, Value>) -> Result<()> {
        if let Some(audience) = field::<Option<Audience>>(changes, "audience")?.flatten() {
            self.audience = audience;
        }
        if let Some(classes) = field::<Option<Vec<String>>>(changes, "classes")?.flatten() {
            self.classes = classes;
        }
        if let Some(description) = field::<Option<String>>(changes, "description")?.flatten() {
            self.description = description;
        }
        if let Some(start) = date::field_of(changes, "start")? {
            self.start = start;
        }
        if let Some(end) = date::field_of(changes, "end")? {
            self.end = end;
        }
        if let Some(location) = field::<Option<String>>(changes, "location")?.flatten() {
            self.location = location;
        }
        if let Some(class_groups) = field::<Option<Vec<String>>>(changes, "classGroups")?.flatten() {
            self.class_groups = class_groups;
        }
        if let Some(description_long) = field::<Option<String>>(changes, "descriptionLong")?.flatten() {
            self.description_long = description_long;
        }
        if let Some(teaching_affected) = field::<Option<TeachingAffected>>(changes, "teachingAffected")?.flatten() {
            self.teaching_affected = teaching_affected;
        }
        if let Some(department_ids) = field::<Option<Vec<String>>>(changes, "departmentIds")?.flatten() {
            self.department_ids = sorted_set(department_ids);
        }
        if let Some(linked_user_ids) = field::<Option<Vec<String>>>(changes, "linkedUserIds")?.flatten() {
            self.linked_user_ids = sorted_set(linked_user_ids);
        }
        self.check_dates()
    }

    /// The original's database check `events_start_end_check CHECK ("start" <= "end")`.
    pub fn check_dates(&self) -> Result<()> {
        if self.start > self.end {
            return Err(PluginError::InvalidInput("Start date must be before end date".into()));
        }
        Ok(())
    }

    /// Only linked users, no departments, classes or class groups: such an event's
    /// registration period is found by its event range alone.
    pub fn has_only_linked_users(&self) -> bool {
        !self.linked_user_ids.is_empty()
            && self.department_ids.is_empty()
            && self.classes.is_empty()
            && self.class_groups.is_empty()
    }
}

/// `items` sorted, without duplicates.
pub fn sorted_set(mut items: Vec<String>) -> Vec<String> {
    items.sort();
    items.dedup();
    items
}

/// The API shape of one event (`prepareEvent`): the stored fields with `id`, `createdAt`,
/// `updatedAt` and `publishedVersionIds`; `meta` is left out when it is falsy.
pub fn api_event(event: &Record<Event>, published_version_ids: &[String]) -> Value {
    let mut json = event.to_json();
    let object = json.as_object_mut().expect("a record is an object");
    if object.get("meta").is_none_or(is_falsy) {
        object.remove("meta");
    }
    object.insert("publishedVersionIds".into(), published_version_ids.into());
    json
}

/// JavaScript's falsiness, for `meta`.
fn is_falsy(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        _ => false,
    }
}

/// The API shapes of `events`, given the published versions of each (see
/// [`crate::Changes::published_versions`]).
pub fn api_events<'a>(
    events: impl IntoIterator<Item = &'a Record<Event>>,
    versions: &BTreeMap<String, Vec<String>>,
) -> Vec<Value> {
    events.into_iter().map(|e| api_event(e, versions.get(&e.id).map_or(&[], Vec::as_slice))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(data: Event) -> Record<Event> {
        Record {
            record_type: "EVENT".into(),
            id: "e1".into(),
            version: 1,
            created_at: "2024-01-01T00:00:00.000Z".into(),
            updated_at: "2024-01-01T00:00:00.000Z".into(),
            data,
        }
    }

    #[test]
    fn the_api_shape_drops_a_falsy_meta_and_adds_the_versions() {
        let mut event =
            record(Event::draft("u1", "2024-01-01T00:00:00.000Z".into(), "2024-01-02T00:00:00.000Z".into()));
        let json = api_event(&event, &["v1".into()]);
        assert!(json.get("meta").is_none());
        assert_eq!(json["publishedVersionIds"], json!(["v1"]));
        assert_eq!(json["state"], "DRAFT");
        assert_eq!(json["audience"], "STUDENTS");
        assert_eq!(json["affectsDepartment2"], false);
        event.data.meta = Some(json!({ "a": 1 }));
        assert_eq!(api_event(&event, &[])["meta"], json!({ "a": 1 }));
    }

    #[test]
    fn an_update_keeps_unknown_and_null_fields_out() {
        let mut event = Event::draft("u1", "2024-01-01T00:00:00.000Z".into(), "2024-01-02T00:00:00.000Z".into());
        let changes =
            json!({ "state": "PUBLISHED", "description": "new", "location": null, "departmentIds": ["b", "a", "b"] });
        event.apply_update(changes.as_object().unwrap()).unwrap();
        assert_eq!(event.state, EventState::Draft);
        assert_eq!(event.description, "new");
        assert_eq!(event.department_ids, ["a", "b"]);
        let bad = json!({ "start": "2024-01-03T00:00:00.000Z" });
        assert!(matches!(event.apply_update(bad.as_object().unwrap()), Err(PluginError::InvalidInput(_))));
    }
}

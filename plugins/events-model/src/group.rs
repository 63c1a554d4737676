//! The `EVENT_GROUP` record (the original's "user event group"): a named set of events
//! shared by its members. Membership (`userIds`) is the only ownership there is.

use plugin_sdk::{Record, Value};
use serde::{Deserialize, Serialize};

/// An event group as stored. `eventIds` and `userIds` stand for the original's m:n
/// relations; they are kept sorted and without duplicates, as the API returns them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventGroup {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub collection: String,
    #[serde(default = "empty_object")]
    pub meta: Value,
    #[serde(default)]
    pub event_ids: Vec<String>,
    #[serde(default)]
    pub user_ids: Vec<String>,
}

pub fn empty_object() -> Value {
    Value::Object(Default::default())
}

impl EventGroup {
    pub fn has_member(&self, user_id: &str) -> bool {
        self.user_ids.iter().any(|u| u == user_id)
    }

    pub fn has_event(&self, event_id: &str) -> bool {
        self.event_ids.iter().any(|e| e == event_id)
    }

    /// Replace `old` by `new` in `eventIds` (the version swap moves groups to the published id).
    pub fn replace_event(&mut self, old: &str, new: &str) {
        self.event_ids.retain(|e| e != old);
        self.event_ids.push(new.into());
        self.event_ids = crate::event::sorted_set(std::mem::take(&mut self.event_ids));
    }

    /// Remove `event_id` from `eventIds` (the original's join rows go with a deleted event).
    pub fn remove_event(&mut self, event_id: &str) {
        self.event_ids.retain(|e| e != event_id);
    }
}

/// The API shape (`ApiEventGroup`): the columns plus sorted `eventIds` and `userIds`.
pub fn api_group(group: &Record<EventGroup>) -> Value {
    group.to_json()
}

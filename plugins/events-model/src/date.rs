//! Dates in events-api's stored form (`js-date`: JavaScript's `toISOString`,
//! `2026-11-27T06:31:27.123Z`), kept as text in events so that the host's text comparisons
//! order them by time. This adds the two helpers the event model needs on top of `js-date`.

pub use js_date::{format, normalize, parse};
use plugin_sdk::{Result, Value};
use serde_json::Map;

/// A date field of a JSON object, in the stored form; 400 naming the field when it is not a
/// date. An absent field or `null` is `None`.
pub fn field_of(object: &Map<String, Value>, name: &str) -> Result<Option<String>> {
    Ok(js_date::field(object, name)?.map(|date| format(&date)))
}

/// `date` moved by `weeks` weeks (negative: back), in the stored form.
pub fn add_weeks(date: &str, weeks: i64) -> String {
    let date = parse(date).unwrap_or_default();
    format(&(date + chrono::Duration::weeks(weeks)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_come_in_the_stored_form() {
        let object = serde_json::json!({ "a": "2024-03-01T10:00:00+01:00", "b": null, "c": "soon" });
        let object = object.as_object().unwrap();
        assert_eq!(field_of(object, "a").unwrap().as_deref(), Some("2024-03-01T09:00:00.000Z"));
        assert_eq!(field_of(object, "b").unwrap(), None);
        assert_eq!(field_of(object, "missing").unwrap(), None);
        assert!(field_of(object, "c").is_err());
        assert_eq!(add_weeks("2024-03-01T00:00:00.000Z", -1), "2024-02-23T00:00:00.000Z");
    }
}

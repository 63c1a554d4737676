//! Dates as events-api sends and stores them: JavaScript's `toISOString` form,
//! `2026-11-27T06:31:27.123Z`, UTC with exactly three fractional digits, so that stored dates
//! compare correctly as text (the host compares query values as text).
//!
//! Shared by the bundled plugins of the events-api port. As a serde adapter:
//! `#[serde(with = "js_date")] start: DateTime<Utc>`.

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use plugin_sdk::{PluginError, Result, Value};
use serde::{Deserialize, Deserializer, Serializer, de};
use serde_json::Map;

/// An RFC 3339 date-time with any offset, or a bare `YYYY-MM-DD` (midnight UTC, as
/// JavaScript's `Date` reads it), truncated to milliseconds.
///
/// Deviation: the original passes dates to `new Date()` or to Prisma, which accept slightly
/// different sets of formats; this one set serves every route.
pub fn parse(text: &str) -> Option<DateTime<Utc>> {
    let date = match DateTime::parse_from_rfc3339(text) {
        Ok(date) => date.with_timezone(&Utc),
        Err(_) => NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?.and_hms_opt(0, 0, 0)?.and_utc(),
    };
    DateTime::from_timestamp_millis(date.timestamp_millis())
}

/// The `toISOString` form of `date`.
pub fn format(date: &DateTime<Utc>) -> String {
    date.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// `text` in the stored form, or `None` when it is not a date.
pub fn normalize(text: &str) -> Option<String> {
    parse(text).map(|d| format(&d))
}

/// The date field `name` of a JSON object (a body): `None` when absent or `null`, 400 naming
/// the field when it is not a date.
pub fn field(object: &Map<String, Value>, name: &str) -> Result<Option<DateTime<Utc>>> {
    plugin_sdk::field::<Option<String>>(object, name)?
        .flatten()
        .map(|text| {
            parse(&text).ok_or_else(|| {
                PluginError::InvalidInput(format!(
                    "{name}: expected an ISO 8601 date such as 2026-11-27T06:31:27.123Z, got {text:?}"
                ))
            })
        })
        .transpose()
}

/// Serialize in the stored form (`#[serde(with = "js_date")]`).
pub fn serialize<S: Serializer>(date: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format(date))
}

/// Deserialize any form [`parse`] accepts (`#[serde(with = "js_date")]`).
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<DateTime<Utc>, D::Error> {
    let text = String::deserialize(deserializer)?;
    parse(&text).ok_or_else(|| de::Error::custom(format!("not an ISO 8601 date: {text:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_normalized_to_milliseconds_in_utc() {
        assert_eq!(normalize("2024-03-01").as_deref(), Some("2024-03-01T00:00:00.000Z"));
        assert_eq!(normalize("2024-03-01T10:00:00+01:00").as_deref(), Some("2024-03-01T09:00:00.000Z"));
        assert_eq!(normalize("2024-03-01T10:00:00.123456Z").as_deref(), Some("2024-03-01T10:00:00.123Z"));
        assert_eq!(normalize("yesterday"), None);
    }

    #[test]
    fn fields_name_themselves_when_they_are_not_dates() {
        let body: Map<String, Value> = serde_json::from_str(r#"{"a": "2024-03-01", "b": "soon", "c": null}"#).unwrap();
        assert_eq!(field(&body, "a").unwrap().map(|d| format(&d)).as_deref(), Some("2024-03-01T00:00:00.000Z"));
        assert!(matches!(field(&body, "b"), Err(PluginError::InvalidInput(m)) if m.starts_with("b: ")));
        assert!(field(&body, "c").unwrap().is_none());
        assert!(field(&body, "missing").unwrap().is_none());
    }
}

//! Dates as events-api sends and stores them: JavaScript's `toISOString` form,
//! `2026-11-27T06:31:27.123Z`, UTC with exactly three fractional digits, so that stored
//! dates compare correctly as text (the host compares query values as text).

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use plugin_sdk::{PluginError, Result, Value, field};
use serde_json::Map;

/// An RFC 3339 date-time with any offset, or a bare `YYYY-MM-DD` (midnight UTC, as
/// JavaScript's `Date` reads it), truncated to milliseconds.
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

/// A date field of a JSON object, in the stored form; 400 naming the field when it is not a
/// date. An absent field or `null` is `None`.
pub fn field_of(object: &Map<String, Value>, name: &str) -> Result<Option<String>> {
    field::<Option<String>>(object, name)?
        .flatten()
        .map(|text| {
            normalize(&text).ok_or_else(|| {
                PluginError::InvalidInput(format!(
                    "{name}: expected an ISO 8601 date such as 2026-11-27T06:31:27.123Z, got {text:?}"
                ))
            })
        })
        .transpose()
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
    fn dates_are_normalized_to_milliseconds_in_utc() {
        assert_eq!(normalize("2024-03-01").as_deref(), Some("2024-03-01T00:00:00.000Z"));
        assert_eq!(normalize("2024-03-01T10:00:00+01:00").as_deref(), Some("2024-03-01T09:00:00.000Z"));
        assert_eq!(normalize("2024-03-01T10:00:00.123456Z").as_deref(), Some("2024-03-01T10:00:00.123Z"));
        assert_eq!(normalize("yesterday"), None);
    }
}

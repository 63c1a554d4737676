//! Who an event addresses: the pruning of its classes and class groups
//! (`normalizeAudience`, `src/models/event.helpers.ts`) and the departments it concerns
//! (the original's SQL view `view_EventsDepartments`). Both read the `DEPARTMENT` records
//! that the `department` plugin owns.
//!
//! Class names are `YYLc`: the two-digit year the class graduates in, the department's
//! letter and the class letter (`26Ga`). A class group is `YYL` (`26G`): every class of
//! that year in the departments with that letter.

use std::collections::BTreeSet;

use chrono::Datelike;
use plugin_sdk::{Query, Record, Result};
use serde::Deserialize;

use crate::DEPARTMENT;
use crate::date;
use crate::event::Event;

/// The fields of a `DEPARTMENT` record that audiences need.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Department {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub letter: String,
    #[serde(default = "four")]
    pub school_years: i64,
    #[serde(default)]
    pub class_letters: Vec<String>,
}

fn four() -> i64 {
    4
}

/// Every department (there are a handful).
pub fn all_departments() -> Result<Vec<Record<Department>>> {
    Query::new(DEPARTMENT).fetch::<Department>()
}

/// The year (two digits) of the classes that graduate at the end of the school year
/// `when` falls in; school years turn on 1 August (`currentGradeYear`).
fn grade_year(when: &str) -> i64 {
    let date = date::parse(when).unwrap_or_default();
    i64::from(date.year()) + if date.month0() < 7 { 0 } else { 1 }
}

/// `classes` and `classGroups` of `event` with what its departments already cover, what
/// is invalid and what is not in school at the event's time removed (`normalizeAudience`).
/// The kept entries stay in their order.
pub fn normalize(departments: &[Record<Department>], event: &Event) -> (Vec<String>, Vec<String>) {
    let selected = |id: &str| event.department_ids.iter().any(|d| d == id);
    let grade = grade_year(&event.start) % 100;
    let shift = if grade == grade_year(&event.end) % 100 { 0 } else { 1 };
    let year_of = |name: &str| name.get(0..2).and_then(|y| y.parse::<i64>().ok());

    let mut groups: Vec<String> = Vec::new();
    for group in &event.class_groups {
        if groups.contains(group) || group.chars().count() != 3 || !group.is_char_boundary(2) {
            continue;
        }
        let letter = &group[2..];
        let assigned: Vec<_> = departments.iter().filter(|d| d.data.letter == letter).collect();
        // Groups whose departments are all selected add nothing (nor do unknown letters).
        if assigned.iter().all(|d| selected(&d.id)) {
            continue;
        }
        let school_years = assigned.iter().map(|d| d.data.school_years).max().unwrap_or(0);
        match year_of(group) {
            Some(year) if year >= grade && year <= grade + school_years - 1 + shift => groups.push(group.clone()),
            _ => {}
        }
    }

    let mut classes: Vec<String> = Vec::new();
    for class in &event.classes {
        if classes.contains(class) || class.chars().count() != 4 || !class.is_char_boundary(2) {
            continue;
        }
        let (department_letter, class_letter) = (&class[2..3], &class[3..]);
        let Some(department) = departments
            .iter()
            .find(|d| d.data.letter == department_letter && d.data.class_letters.iter().any(|l| l == class_letter))
        else {
            continue;
        };
        if selected(&department.id) || groups.iter().any(|g| class.starts_with(g.as_str())) {
            continue;
        }
        match year_of(class) {
            Some(year) if year >= grade && year <= grade + department.data.school_years - 1 + shift => {
                classes.push(class.clone())
            }
            _ => {}
        }
    }
    (classes, groups)
}

/// The departments `event` concerns: its own, those of its classes (by letter and class
/// letter) and those of its class groups (by letter); `view_EventsDepartments`.
///
/// Deviation: the original maps classes to departments through the Untis classes, which
/// Tidings does not have (Untis is out of scope); the class name's letters are used instead.
pub fn departments_of(departments: &[Record<Department>], event: &Event) -> BTreeSet<String> {
    let mut ids: BTreeSet<String> = event.department_ids.iter().cloned().collect();
    for class in &event.classes {
        if class.chars().count() == 4 && class.is_char_boundary(2) {
            let (letter, class_letter) = (&class[2..3], &class[3..]);
            ids.extend(
                departments
                    .iter()
                    .filter(|d| d.data.letter == letter && d.data.class_letters.iter().any(|l| l == class_letter))
                    .map(|d| d.id.clone()),
            );
        }
    }
    for group in &event.class_groups {
        if group.chars().count() == 3 && group.is_char_boundary(2) {
            ids.extend(departments.iter().filter(|d| d.data.letter == group[2..]).map(|d| d.id.clone()));
        }
    }
    ids
}

/// Whether two audiences share a class: equal classes, equal class groups, or a class in
/// the other's class group.
pub fn share_a_class(a: &Event, b: &Event) -> bool {
    let in_groups = |class: &String, groups: &[String]| groups.iter().any(|g| class.starts_with(g.as_str()));
    a.classes.iter().any(|c| b.classes.contains(c) || in_groups(c, &b.class_groups))
        || b.classes.iter().any(|c| in_groups(c, &a.class_groups))
        || a.class_groups.iter().any(|g| b.class_groups.contains(g))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn department(id: &str, letter: &str, class_letters: &[&str]) -> Record<Department> {
        Record {
            record_type: DEPARTMENT.into(),
            id: id.into(),
            version: 1,
            created_at: String::new(),
            updated_at: String::new(),
            data: Department {
                name: id.into(),
                letter: letter.into(),
                school_years: 4,
                class_letters: class_letters.iter().map(|l| l.to_string()).collect(),
            },
        }
    }

    fn event(classes: &[&str], groups: &[&str], departments: &[&str]) -> Event {
        let mut event = Event::draft("u", "2025-04-08T08:00:00.000Z".into(), "2025-04-08T10:00:00.000Z".into());
        event.classes = classes.iter().map(|c| c.to_string()).collect();
        event.class_groups = groups.iter().map(|c| c.to_string()).collect();
        event.department_ids = departments.iter().map(|c| c.to_string()).collect();
        event
    }

    #[test]
    fn normalizing_prunes_what_is_covered_invalid_or_not_in_school() {
        let departments =
            [department("G", "G", &["a", "b"]), department("F", "F", &["a", "b"]), department("W", "W", &["a"])];
        // 2025-04-08: the classes of 25..=28 are in school.
        let e =
            event(&["28Ga", "26Fb", "27Fa", "24Ga", "29Ga", "25Gz", "26Wa", "x"], &["27F", "24G", "25W", "2"], &["W"]);
        let (classes, groups) = normalize(&departments, &e);
        assert_eq!(classes, ["28Ga", "26Fb"]);
        assert_eq!(groups, ["27F"]);
    }

    #[test]
    fn school_years_turn_in_august() {
        assert_eq!(grade_year("2025-07-31T23:59:59.999Z"), 2025);
        assert_eq!(grade_year("2025-08-01T00:00:00.000Z"), 2026);
    }

    #[test]
    fn classes_are_shared_directly_or_through_groups() {
        assert!(share_a_class(&event(&["26Ga"], &[], &[]), &event(&["26Ga"], &[], &[])));
        assert!(share_a_class(&event(&["26Ga"], &[], &[]), &event(&[], &["26G"], &[])));
        assert!(share_a_class(&event(&[], &["26G"], &[]), &event(&["26Gb"], &[], &[])));
        assert!(!share_a_class(&event(&["26Ga"], &[], &[]), &event(&["26Gb"], &["27G"], &[])));
    }
}

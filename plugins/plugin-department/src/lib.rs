//! The `DEPARTMENT` plugin: the school's departments (e.g. a German and a French gymnasium),
//! served under `/api/v1/departments`. It ports events-api's `src/controllers/departments.ts`
//! and `src/models/department.ts`: anyone may list departments, signed-in users read one, and
//! admins create, update and delete them; every change is broadcast to all signed-in sockets.
//! The original's rules are kept: class names (letter + class letter) stay unique across
//! departments, and a department belongs to at most two others, each link used once.

use std::collections::HashSet;

use plugin_sdk::field;
use plugin_sdk::{
    Access, Descriptor, Method, Notification, Plugin, PluginError, Query, Record, Request, Response, Result, Route,
    Target, Value, ensure, get,
};
use serde::{Deserialize, Serialize};
use serde_json::Map;

const DEPARTMENT: &str = "DEPARTMENT";
const EVENT: &str = "EVENT";

struct Departments;
plugin_sdk::export!(Departments);

/// Each action once: its route, who may call it, and what serves it. The host enforces the
/// access before the plugin runs, so the original's admin checks (in the guard and again in
/// the model) live here and nowhere else.
const ROUTES: &[Route] = &[
    Route::new("all", Method::Get, "/", Access::Public, |_| all()),
    Route::new("find", Method::Get, "/:id", Access::SignedIn, |req| Ok(Response::ok(&find(req)?))),
    Route::new("create", Method::Post, "/", Access::Admin, create),
    Route::new("update", Method::Put, "/:id", Access::Admin, update),
    Route::new("destroy", Method::Delete, "/:id", Access::Admin, destroy),
];

impl Plugin for Departments {
    fn describe() -> Descriptor {
        Descriptor::new("department", DEPARTMENT, "departments", env!("CARGO_PKG_VERSION"))
            .routes(ROUTES)
            // A department with events cannot be deleted.
            .reads(EVENT)
            // Every field this plugin queries on.
            .index("name")
            .index("department1_Id")
            .index("department2_Id")
    }

    fn handle(req: Request) -> Result<Response> {
        plugin_sdk::routes::dispatch(ROUTES, &req)
    }
}

/// A department as stored and as the API returns it (with `id`, `createdAt`, `updatedAt`
/// added by [`Record::to_json`]). Field names follow the original Prisma model.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Department {
    /// Unique across departments.
    name: String,
    description: String,
    /// The letter class names start with, e.g. `G` for `24Ga`.
    letter: String,
    school_years: i32,
    /// Used instead of `letter` in class names when set.
    display_letter: Option<String>,
    /// The letters of the classes, e.g. `a`, `b` for `24Ga`, `24Gb`.
    class_letters: Vec<String>,
    /// The (up to two) departments this one belongs to, e.g. the two halves of a bilingual
    /// department. Each department is the `department1` of at most one other, and likewise
    /// for `department2`. The original spells these with a capital `I`.
    #[serde(rename = "department1_Id")]
    department1_id: Option<String>,
    #[serde(rename = "department2_Id")]
    department2_id: Option<String>,
    color: String,
}

impl Department {
    /// A new department with the original's column defaults (`prisma/schema.prisma`).
    fn new(name: String, description: String) -> Self {
        Department {
            name,
            description,
            letter: String::new(),
            school_years: 4,
            display_letter: None,
            class_letters: Vec::new(),
            department1_id: None,
            department2_id: None,
            color: "#306cce".into(),
        }
    }

    /// Apply the fields of a `PUT` body. These are the original's updatable fields; anything
    /// else (the client sends back the whole record, `id` and timestamps included) is ignored.
    fn apply(&mut self, changes: &Map<String, Value>) -> Result<()> {
        if let Some(name) = field(changes, "name")? {
            self.name = name;
        }
        if let Some(description) = field(changes, "description")? {
            self.description = description;
        }
        if let Some(letter) = field(changes, "letter")? {
            self.letter = letter;
        }
        if let Some(school_years) = field(changes, "schoolYears")? {
            self.school_years = school_years;
        }
        // Nullable fields: an explicit `null` clears them, an absent key keeps them.
        if let Some(display_letter) = field(changes, "displayLetter")? {
            self.display_letter = display_letter;
        }
        if let Some(class_letters) = field(changes, "classLetters")? {
            self.class_letters = class_letters;
        }
        if let Some(department1_id) = field(changes, "department1_Id")? {
            self.department1_id = department1_id;
        }
        if let Some(department2_id) = field(changes, "department2_Id")? {
            self.department2_id = department2_id;
        }
        if let Some(color) = field(changes, "color")? {
            self.color = color;
        }
        Ok(())
    }

    /// The names of this department's classes without the year: prefix + class letter.
    ///
    /// Deviation: the original prefixes its own classes with `displayLetter || letter` but
    /// other departments' with `displayLetter ?? letter`; we use the first rule for both, so
    /// an empty display letter never makes the prefix empty.
    fn class_names(&self) -> impl Iterator<Item = String> + '_ {
        let prefix = match self.display_letter.as_deref() {
            Some(display_letter) if !display_letter.is_empty() => display_letter,
            _ => &self.letter,
        };
        self.class_letters.iter().map(move |letter| format!("{prefix}{letter}"))
    }

    fn belongs_to(&self, id: &str) -> bool {
        self.department1_id.as_deref() == Some(id) || self.department2_id.as_deref() == Some(id)
    }
}

/// `GET /`: every department, in creation order. The original leaves the order to the
/// database; a fixed order keeps responses stable.
fn all() -> Result<Response> {
    let departments = Query::new(DEPARTMENT).order_by("createdAt").fetch::<Department>()?;
    Ok(Response::ok(&departments))
}

/// The department named by the `:id` path parameter, or 404.
fn find(req: &Request) -> Result<Record<Department>> {
    let id = req.param("id")?;
    get(DEPARTMENT, id)?.ok_or_else(|| PluginError::NotFound(format!("Department with id {id} not found")))
}

/// `POST /` with the bare body `{name, description?}`. Like the original, every other field
/// of the body is ignored and gets its default.
fn create(req: &Request) -> Result<Response> {
    let body: Map<String, Value> = req.body()?;
    let name = field(&body, "name")?.ok_or_else(|| PluginError::InvalidInput("name is required".into()))?;
    let description = field(&body, "description")?.unwrap_or_default();

    let department = Record::new(DEPARTMENT, req.now(), Department::new(name, description));
    check_name_is_free(&department)?;

    let json = department.to_json();
    Ok(Response::created(&json)
        .insert(&department)
        .notify(Notification::created(DEPARTMENT, &department.id, &json).to(Target::All)))
}

/// `PUT /:id` with `{data: {...}}`.
fn update(req: &Request) -> Result<Response> {
    #[derive(Deserialize)]
    struct Body {
        data: Map<String, Value>,
    }

    // Deviation: the original validates the letters before it looks the department up, so
    // a bad update of a missing department gives 400 there and 404 here.
    let mut department = find(req)?;
    let changes = req.body::<Body>()?.data;
    let old_name = department.data.name.clone();
    department.data.apply(&changes)?;

    // Deviation: the original checks the letters only when the body has `classLetters` or a
    // non-empty `letter`; a new `displayLetter` renames the classes too, so it counts as well.
    if ["letter", "displayLetter", "classLetters"].iter().any(|f| changes.contains_key(*f)) {
        check_class_names(&department)?;
    }
    if changes.contains_key("department1_Id") || changes.contains_key("department2_Id") {
        check_parents(&department)?;
    }
    if department.data.name != old_name {
        check_name_is_free(&department)?;
    }

    department.touch(req.now());
    let json = department.to_json();
    Ok(Response::ok(&json)
        .update(&department)
        .notify(Notification::changed(DEPARTMENT, &department.id, &json).to(Target::All)))
}

/// `DELETE /:id`.
fn destroy(req: &Request) -> Result<Response> {
    // Deviation: the original answers 500 for a missing department (Prisma's delete throws);
    // we answer 404.
    let department = find(req)?;

    // The original refuses while Untis classes or events reference the department. Untis
    // classes are out of the port's scope; events are checked (soft-deleted ones count, as
    // their rows still reference the department).
    let has_events = Query::new(EVENT).contains("departmentIds", department.id.as_str()).first::<Value>()?.is_some();
    ensure!(!has_events, PluginError::InvalidInput("Cannot delete department with classes or events".into()));

    // The links to this department are nulled, as the original's `ON DELETE SET NULL`
    // foreign keys do. Deviation: the original does that silently in the database; we also
    // tell clients about each changed department. Departments are few: read them all.
    let mut children: Vec<Record<Department>> = Query::new(DEPARTMENT)
        .fetch::<Department>()?
        .into_iter()
        .filter(|d| d.id != department.id && d.data.belongs_to(&department.id))
        .collect();
    let mut response = Response::no_content();
    for child in &mut children {
        for link in [&mut child.data.department1_id, &mut child.data.department2_id] {
            if link.as_deref() == Some(department.id.as_str()) {
                *link = None;
            }
        }
        child.touch(req.now());
        response = response.update(child);
    }

    response = response.delete(&department).notify(Notification::deleted(DEPARTMENT, &department.id).to(Target::All));
    for child in &children {
        response = response.notify(Notification::changed(DEPARTMENT, &child.id, &child.to_json()).to(Target::All));
    }
    Ok(response)
}

/// `name` is unique. Deviation: the original has only the database's unique index, whose
/// violation surfaces as a 500; we answer 409.
fn check_name_is_free(department: &Record<Department>) -> Result<()> {
    let name = department.data.name.as_str();
    let taken =
        Query::new(DEPARTMENT).eq("name", name).fetch::<Department>()?.iter().any(|other| other.id != department.id);
    ensure!(!taken, PluginError::Conflict(format!("a department named {name:?} already exists")));
    Ok(())
}

/// A class name (prefix + class letter, e.g. `Ga`) may belong to one department only
/// (`src/models/department.helpers.ts`).
fn check_class_names(department: &Record<Department>) -> Result<()> {
    let taken: HashSet<String> = Query::new(DEPARTMENT)
        .fetch::<Department>()?
        .iter()
        .filter(|other| other.id != department.id)
        .flat_map(|other| other.data.class_names())
        .collect();
    let clashes: Vec<String> = department.data.class_names().filter(|name| taken.contains(name)).collect();
    ensure!(
        clashes.is_empty(),
        PluginError::InvalidInput(format!(
            "Unique Letters Constraint Error: invalid combinations: {}",
            clashes.join(", ")
        ))
    );
    Ok(())
}

/// The rules for `department1_Id` and `department2_Id`, checked on the department as it
/// will be stored.
fn check_parents(department: &Record<Department>) -> Result<()> {
    let data = &department.data;
    ensure!(
        data.department1_id.is_none() || data.department1_id != data.department2_id,
        PluginError::InvalidInput("Cannot belong to the same department twice".into())
    );
    for (field, parent) in [("department1_Id", &data.department1_id), ("department2_Id", &data.department2_id)] {
        let Some(parent) = parent else { continue };
        // Deviations: the original lets a department belong to itself, and a link to a
        // missing department fails on its foreign key with a 500; both are 400 here.
        ensure!(
            *parent != department.id,
            PluginError::InvalidInput(format!("{field}: a department cannot belong to itself"))
        );
        ensure!(
            get::<Department>(DEPARTMENT, parent)?.is_some(),
            PluginError::InvalidInput(format!("{field}: no department with id {parent}"))
        );
        let taken = Query::new(DEPARTMENT)
            .eq(field, parent.as_str())
            .fetch::<Department>()?
            .iter()
            .any(|other| other.id != department.id);
        ensure!(!taken, PluginError::InvalidInput("Cannot relate a department twice".into()));
    }
    Ok(())
}

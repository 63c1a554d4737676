//! The model of events-api's events and event groups, shared by the bundled `EVENT` and
//! `EVENT_GROUP` plugins (`plugins/plugin-event`, `plugins/plugin-event-group`), which both
//! read and write both record types. It holds the stored shapes and their API shapes
//! ([`event`], [`group`]), the permission rules of the original's `src/models/event.ts`
//! ([`access`]), the audience rules ([`audience`]), and [`Changes`], the unit of work through
//! which a request reads, changes and finally writes records. It holds no routes: those
//! live in the plugins.
//!
//! It is a plain library (not a `plugin-*` folder), so the host does not bundle it.

pub mod access;
pub mod audience;
pub mod date;
pub mod event;
pub mod group;
mod unit;

pub use unit::{Changes, Table};

/// The record types the two plugins touch.
pub const EVENT: &str = "EVENT";
pub const EVENT_GROUP: &str = "EVENT_GROUP";
pub const DEPARTMENT: &str = "DEPARTMENT";
pub const SEMESTER: &str = "SEMESTER";
pub const REGISTRATION_PERIOD: &str = "REGISTRATION_PERIOD";
pub const JOB: &str = "JOB";

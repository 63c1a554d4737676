//! The integration tests: one binary, a module per surface. Every test runs against a real
//! server on `127.0.0.1:0`, once on SQLite and once on PostgreSQL.

mod auth;
mod authoring;
mod event_groups;
mod events;
mod jobs;
mod operators;
mod pipeline;
mod plugins;
mod properties;
mod records;
mod registration_periods;
mod subscriptions;
mod support;
mod tidy;
mod users;
mod work;

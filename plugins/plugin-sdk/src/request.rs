//! [`Request`]: the typed view of one HTTP request routed to a plugin.

use serde::de::DeserializeOwned;

use crate::bindings::tidings::plugin::types;
use crate::{Actor, PluginError, Result, Role, User};

/// One HTTP request, as the host routed it to the plugin.
pub struct Request(types::Request);

impl From<types::Request> for Request {
    fn from(req: types::Request) -> Self {
        Request(req)
    }
}

impl Request {
    /// The name of the matched action, as declared in the descriptor.
    pub fn action(&self) -> &str {
        &self.0.action
    }

    /// The signed-in user, if any.
    pub fn user(&self) -> Option<&User> {
        match &self.0.actor {
            Actor::User(user) => Some(user),
            Actor::Anonymous => None,
        }
    }

    /// The signed-in user, or 401.
    pub fn require_user(&self) -> Result<&User> {
        self.user().ok_or_else(|| PluginError::Unauthorized("not signed in".into()))
    }

    /// The signed-in user if they are an ADMIN, 401 if anonymous, 403 otherwise.
    pub fn require_admin(&self) -> Result<&User> {
        let user = self.require_user()?;
        match user.role {
            Role::Admin => Ok(user),
            Role::User => Err(PluginError::Forbidden("admins only".into())),
        }
    }

    /// Whether the caller is a signed-in ADMIN.
    pub fn is_admin(&self) -> bool {
        self.user().is_some_and(|u| matches!(u.role, Role::Admin))
    }

    /// A path parameter, e.g. `id` for `/:id`.
    pub fn param(&self, name: &str) -> Result<&str> {
        self.0
            .params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .ok_or_else(|| PluginError::InvalidInput(format!("missing path parameter {name}")))
    }

    /// The first query-string value named `name`.
    pub fn query(&self, name: &str) -> Option<&str> {
        self.0.query.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// Every query-string value named `name`, in order (`ids[]=a&ids[]=b`).
    pub fn query_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0.query.iter().filter(move |(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The JSON body parsed into `T`; 400 when it is missing or does not fit.
    pub fn body<T: DeserializeOwned>(&self) -> Result<T> {
        let body = self.0.body.as_deref().ok_or_else(|| PluginError::InvalidInput("a JSON body is required".into()))?;
        serde_json::from_str(body).map_err(|e| PluginError::InvalidInput(format!("invalid body: {e}")))
    }

    /// The host clock at the start of the request (ISO 8601, UTC).
    pub fn now(&self) -> &str {
        &self.0.now
    }

    /// The caller's socket id from `x-metadata-socketid`, if any.
    pub fn socket_id(&self) -> Option<&str> {
        self.0.socket_id.as_deref()
    }

    /// The file of a `multipart/form-data` request, if it had one.
    pub fn upload(&self) -> Option<&crate::Upload> {
        self.0.upload.as_ref()
    }

    /// Where the page to answer starts: `None` for the first page of a list, then the
    /// `next` of the page before (see [`crate::Query::page`]).
    pub fn cursor(&self) -> Option<&str> {
        self.0.cursor.as_deref()
    }
}

/// The most characters a text field read with [`field`] may hold. Records are listed whole,
/// so unbounded text would let one record push a list past the host's response cap.
pub const MAX_TEXT_CHARS: usize = 10_000;

/// Read the optional field `name` of a JSON object into `T`: `Ok(None)` when it is absent,
/// 400 naming the field when it does not fit `T` or holds text over [`MAX_TEXT_CHARS`].
pub fn field<T: DeserializeOwned>(
    object: &serde_json::Map<String, serde_json::Value>,
    name: &str,
) -> Result<Option<T>> {
    let Some(value) = object.get(name) else { return Ok(None) };
    if longest_text(value) > MAX_TEXT_CHARS {
        return Err(PluginError::InvalidInput(format!("{name}: text is limited to {MAX_TEXT_CHARS} characters")));
    }
    T::deserialize(value).map(Some).map_err(|e| PluginError::InvalidInput(format!("{name}: {e}")))
}

fn longest_text(value: &serde_json::Value) -> usize {
    match value {
        serde_json::Value::String(s) => s.chars().count(),
        serde_json::Value::Array(items) => items.iter().map(longest_text).max().unwrap_or(0),
        serde_json::Value::Object(fields) => fields.values().map(longest_text).max().unwrap_or(0),
        _ => 0,
    }
}

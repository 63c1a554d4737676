//! Identity for both transports: users, password hashes, server-side sessions.
//!
//! The cookie carries a 256-bit random token; the database stores only its SHA-256, next to
//! a separate public session id (the session's room name). HTTP gets the session through the
//! extractors in `extract.rs`; Socket.IO through `realtime`'s connect middleware. Both call
//! [`authenticate`].

pub mod client_addr;
pub mod extract;
pub mod origin;
pub mod throttle;

use std::sync::Arc;

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use chrono::{DateTime, Duration, Utc};
use rand::RngCore;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::clock::{Clock, iso};
use crate::cluster::Command;
use crate::db::{self, Db, sessions as db_sessions, users as db_users};

/// The name of the session cookie.
pub const COOKIE_NAME: &str = "tidings_session";

/// A session ends after this long without activity…
const IDLE_TIMEOUT: Duration = Duration::days(7);
/// …and after this long in any case.
const ABSOLUTE_TIMEOUT: Duration = Duration::days(30);
/// Activity is written back at most this often.
const TOUCH_INTERVAL: Duration = Duration::minutes(1);

/// A user as the API returns it (never the password hash).
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub id: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub role: Role,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Role {
    User,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "USER",
            Role::Admin => "ADMIN",
        }
    }
}

/// A live session and its user, as of the start of the request or handshake.
#[derive(Clone, Debug)]
pub struct Session {
    /// The public session id; the name of the session's room.
    pub id: String,
    pub user: User,
    /// When it was looked up: what it says (the user's role) is as of this instant or later.
    pub read_at: std::time::Instant,
}

impl Session {
    pub fn is_admin(&self) -> bool {
        self.user.role == Role::Admin
    }
}

/// Errors of the session layer.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No session, an unknown or expired one, or wrong credentials. The message never says
    /// which part was wrong.
    #[error("unauthorized")]
    Unauthorized,
    #[error("{0}")]
    InvalidInput(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    NotFound(String),
    #[error(transparent)]
    Db(#[from] db::Error),
}

impl From<db_users::UserRow> for User {
    fn from(row: db_users::UserRow) -> Self {
        User {
            role: if row.role == "ADMIN" { Role::Admin } else { Role::User },
            id: row.id,
            email: row.email,
            first_name: row.first_name,
            last_name: row.last_name,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

/// The fields of a new user.
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewUser {
    pub email: String,
    pub password: String,
    #[serde(default = "default_role")]
    pub role: Role,
    #[serde(default)]
    pub first_name: String,
    #[serde(default)]
    pub last_name: String,
}

fn default_role() -> Role {
    Role::User
}

/// Create a user; checks the e-mail and password rules and hashes the password.
pub async fn create_user(db: &Db, clock: &Clock, new: NewUser) -> Result<User, AuthError> {
    let created = insert_user(db, clock, new, false).await?;
    created.ok_or_else(|| AuthError::Conflict("a user exists".into()))
}

/// [`create_user`]; with `only_first`, nothing (`None`) once any user exists.
async fn insert_user(db: &Db, clock: &Clock, new: NewUser, only_first: bool) -> Result<Option<User>, AuthError> {
    let email = new.email.trim();
    let valid_email = email.len() <= 254
        && email.split_once('@').is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'))
        && !email.chars().any(char::is_whitespace);
    if !valid_email {
        return Err(AuthError::InvalidInput("email must be an e-mail address".into()));
    }
    if new.password.chars().count() < 8 {
        return Err(AuthError::InvalidInput("password must have at least 8 characters".into()));
    }
    if new.password.len() > 1024 || new.first_name.len() > 256 || new.last_name.len() > 256 {
        return Err(AuthError::InvalidInput("a field is too long".into()));
    }
    let hash = hash_password(new.password).await?;
    let id = uuid::Uuid::new_v4().to_string();
    let now = iso(clock.now());
    let mut tx = db.begin_write().await?;
    if only_first && db_users::count(&mut *tx).await? > 0 {
        return Ok(None);
    }
    let row = db_users::insert(
        &mut *tx,
        db_users::NewUser {
            id: &id,
            email,
            password_hash: &hash,
            first_name: &new.first_name,
            last_name: &new.last_name,
            role: new.role.as_str(),
            now: &now,
        },
    )
    .await
    .map_err(|e| match e {
        db::Error::Conflict(_) => AuthError::Conflict("a user with this e-mail exists".into()),
        other => AuthError::Db(other),
    })?;
    db_users::mirror(&mut tx, &db.elements, &row, &now).await?;
    tx.commit().await.map_err(db::Error::from)?;
    Ok(Some(row.into()))
}

/// Check credentials and open a new session. Returns the user and the cookie token.
/// Always runs one password verification, so timing does not reveal whether the e-mail exists.
pub async fn login(db: &Db, clock: &Clock, email: &str, password: &str) -> Result<(Session, String), AuthError> {
    let read_at = std::time::Instant::now();
    let found = db_users::by_email(&db.pool, email).await?;
    let hash = found.as_ref().map(|(_, h)| h.clone());
    let ok = verify_password(password.to_owned(), hash).await;
    let Some((user, _)) = found.filter(|_| ok) else {
        return Err(AuthError::Unauthorized);
    };
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let token = hex::encode(bytes);
    let session_id = uuid::Uuid::new_v4().to_string();
    let now = clock.now();
    db_sessions::insert(&db.pool, &session_id, &token_hash(&token), &user.id, &iso(now), &iso(now + IDLE_TIMEOUT))
        .await?;
    Ok((Session { id: session_id, user: user.into(), read_at }, token))
}

/// The live session for a cookie token, if any; slides its idle expiry. A session in use is
/// read from the database about once a minute, when its activity is written back; in between
/// it is served from [`db::sessions::Cache`].
pub async fn authenticate(db: &Db, clock: &Clock, token: &str) -> Result<Option<Arc<Session>>, AuthError> {
    if token.len() != 64 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(None);
    }
    let (now, read_at) = (clock.now(), std::time::Instant::now());
    let (hash, now_iso) = (token_hash(token), iso(now));
    let generation = db.sessions.generation();
    let row = match db.sessions.get(&hash, &now_iso) {
        Some(row) => row,
        None => {
            let Some(mut row) = db_sessions::by_token_hash(&db.pool, &hash, &now_iso).await? else {
                return Ok(None);
            };
            let last_seen = match parse(&row.last_seen_at) {
                Some(last_seen) if now - last_seen <= TOUCH_INTERVAL => last_seen,
                _ => {
                    let absolute = parse(&row.session_created_at).map_or(now, |created| created + ABSOLUTE_TIMEOUT);
                    let expires = iso((now + IDLE_TIMEOUT).min(absolute));
                    db_sessions::touch(&db.pool, &row.session_id, &now_iso, &expires).await?;
                    (row.last_seen_at, row.expires_at) = (now_iso, expires);
                    now
                }
            };
            // Served from memory until its activity is due to be written back again.
            if let Some(expires) = parse(&row.expires_at) {
                db.sessions.put(hash, row.clone(), generation, iso((last_seen + TOUCH_INTERVAL).min(expires)));
            }
            row
        }
    };
    Ok(Some(Arc::new(Session { id: row.session_id, user: row.user.into(), read_at })))
}

/// Change a user's role (and its `USER` record) and log the `CHANGED_RECORD USER`
/// notification to that user in the same transaction, skipping the requester's socket
/// (`exclude_socket`, from `x-metadata-socketid`). Returns the user and the record.
pub async fn set_role(
    db: &Db,
    clock: &Clock,
    user_id: &str,
    role: Role,
    exclude_socket: Option<String>,
) -> Result<(User, serde_json::Value), AuthError> {
    let now = iso(clock.now());
    let mut tx = db.begin_write().await?;
    let row = db_users::set_role(&mut tx, user_id, role.as_str(), &now)
        .await?
        .ok_or_else(|| AuthError::NotFound(format!("no user {user_id}")))?;
    let record = db_users::mirror(&mut tx, &db.elements, &row, &now).await?;
    let user: User = row.into();
    let mut payload = serde_json::Map::new();
    payload.insert("type".into(), db_users::USER_RECORD_TYPE.into());
    payload.insert("record".into(), record.clone());
    let notification = crate::dispatch::CheckedNotification {
        event: "CHANGED_RECORD",
        record_type: "USER".into(),
        payload,
        rooms: vec![crate::notifications::user_room(&user.id)],
        exclude_socket,
    };
    crate::dispatch::append_notification(&mut tx, notification, &now).await?;
    Command::SetAdmin { user: user.id.clone(), admin: role == Role::Admin }.send(db, &mut tx).await?;
    tx.commit().await.map_err(db::Error::from)?;
    db.sessions.forget_all();
    Ok((user, record))
}

/// End a session server-side, and tell the other nodes to disconnect its sockets (the caller
/// disconnects this node's).
pub async fn logout(db: &Db, session_id: &str) -> Result<(), AuthError> {
    let mut tx = db.pool.begin().await.map_err(db::Error::from)?;
    db_sessions::delete(&mut *tx, session_id).await?;
    Command::DisconnectSession { session: session_id.to_owned() }.send(db, &mut tx).await?;
    tx.commit().await.map_err(db::Error::from)?;
    db.sessions.forget_all();
    Ok(())
}

/// Create the bootstrap admin when no user exists yet. Returns whether one was created.
/// Idempotent, also for nodes started at the same moment on one database: the check and the
/// insert are one writing transaction (writers take turns), and should another node have
/// created the same admin anyway, that is not an error.
pub async fn bootstrap_admin(db: &Db, clock: &Clock, email: &str, password: &str) -> Result<bool, AuthError> {
    if db_users::count(&db.pool).await? > 0 {
        return Ok(false);
    }
    let new = NewUser {
        email: email.into(),
        password: password.into(),
        role: Role::Admin,
        first_name: String::new(),
        last_name: String::new(),
    };
    match insert_user(db, clock, new, true).await {
        Ok(created) => Ok(created.is_some()),
        Err(AuthError::Conflict(_)) => Ok(false),
        Err(other) => Err(other),
    }
}

fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn parse(t: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(t).ok().map(|t| t.with_timezone(&Utc))
}

/// Hash with argon2id (default parameters) on the blocking pool.
async fn hash_password(password: String) -> Result<String, AuthError> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default().hash_password(password.as_bytes(), &salt).map(|h| h.to_string())
    })
    .await
    .map_err(|e| AuthError::InvalidInput(format!("hashing failed: {e}")))?
    .map_err(|e| AuthError::InvalidInput(format!("hashing failed: {e}")))
}

/// Verify against `hash`, or against a dummy hash when there is none, so both paths cost
/// the same.
async fn verify_password(password: String, hash: Option<String>) -> bool {
    static DUMMY: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default().hash_password(b"not a password", &salt).expect("hashing a constant").to_string()
    });
    tokio::task::spawn_blocking(move || {
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| DUMMY.clone());
        let Ok(parsed) = PasswordHash::new(&hash) else { return false };
        Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok() && known
    })
    .await
    .unwrap_or(false)
}

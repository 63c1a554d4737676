//! Users: the host-owned accounts that sessions belong to. Plugins never write these.

use sqlx::{AnyExecutor, FromRow};

use super::{Result, conflict_on_unique};

/// A stored user, without the password hash.
#[derive(Clone, Debug, FromRow)]
pub struct UserRow {
    pub id: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub role: String,
    pub created_at: String,
    pub updated_at: String,
}

/// A user to create; `password_hash` is a PHC string (argon2id).
pub struct NewUser<'a> {
    pub id: &'a str,
    pub email: &'a str,
    pub password_hash: &'a str,
    pub first_name: &'a str,
    pub last_name: &'a str,
    pub role: &'a str,
    pub now: &'a str,
}

const COLUMNS: &str = "id, email, first_name, last_name, role, created_at, updated_at";

/// Insert a user; a taken e-mail (in any case) is [`super::Error::Conflict`].
pub async fn insert<'c>(db: impl AnyExecutor<'c>, user: NewUser<'_>) -> Result<UserRow> {
    sqlx::query(
        "INSERT INTO users (id, email, password_hash, first_name, last_name, role, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
    )
    .bind(user.id)
    .bind(user.email)
    .bind(user.password_hash)
    .bind(user.first_name)
    .bind(user.last_name)
    .bind(user.role)
    .bind(user.now)
    .execute(db)
    .await
    .map_err(|e| conflict_on_unique(e, "a user with this e-mail"))?;
    Ok(UserRow {
        id: user.id.into(),
        email: user.email.into(),
        first_name: user.first_name.into(),
        last_name: user.last_name.into(),
        role: user.role.into(),
        created_at: user.now.into(),
        updated_at: user.now.into(),
    })
}

/// The user with this e-mail (compared case-insensitively) and their password hash.
pub async fn by_email<'c>(db: impl AnyExecutor<'c>, email: &str) -> Result<Option<(UserRow, String)>> {
    #[derive(FromRow)]
    struct WithHash {
        #[sqlx(flatten)]
        user: UserRow,
        password_hash: String,
    }
    let sql = sqlx::AssertSqlSafe(format!("SELECT {COLUMNS}, password_hash FROM users WHERE lower(email) = lower($1)"));
    let row: Option<WithHash> = sqlx::query_as(sql).bind(email).fetch_optional(db).await?;
    Ok(row.map(|r| (r.user, r.password_hash)))
}

pub async fn by_id<'c>(db: impl AnyExecutor<'c>, id: &str) -> Result<Option<UserRow>> {
    let sql = sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM users WHERE id = $1"));
    Ok(sqlx::query_as(sql).bind(id).fetch_optional(db).await?)
}

pub async fn count<'c>(db: impl AnyExecutor<'c>) -> Result<i64> {
    Ok(sqlx::query_scalar("SELECT COUNT(*) FROM users").fetch_one(db).await?)
}

/// Change a user's role; `None` when there is no such user.
pub async fn set_role(conn: &mut sqlx::AnyConnection, id: &str, role: &str, now: &str) -> Result<Option<UserRow>> {
    let done = sqlx::query("UPDATE users SET role = $2, updated_at = $3 WHERE id = $1")
        .bind(id)
        .bind(role)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    if done.rows_affected() == 0 {
        return Ok(None);
    }
    by_id(conn, id).await
}

/// The record type under which users are visible to plugins.
pub const USER_RECORD_TYPE: &str = "USER";

/// The fields of a `USER` record that mirror the account and only the host writes.
pub const HOST_FIELDS: [&str; 4] = ["email", "firstName", "lastName", "role"];

/// Mirror `user` into its `USER` record (created with the profile defaults of events-api's
/// user, or updated keeping the fields plugins own), inside the caller's transaction.
/// Returns the record as the API shows it.
pub async fn mirror(
    conn: &mut sqlx::AnyConnection,
    elements: &super::records::ElementFields,
    user: &UserRow,
    now: &str,
) -> Result<serde_json::Value> {
    use super::records::{self, Write};
    let existing = records::get(conn, USER_RECORD_TYPE, &user.id).await?;
    let mut data = match &existing {
        Some(record) => serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&record.data)
            .map_err(|e| super::Error::Corrupt(format!("USER {}: {e}", user.id)))?,
        None => serde_json::json!({
            "untisId": null,
            "notifyOnEventUpdate": false,
            "notifyAdminOnReviewRequest": false,
            "notifyAdminOnReviewDecision": false,
        })
        .as_object()
        .cloned()
        .unwrap_or_default(),
    };
    for (field, value) in HOST_FIELDS.iter().zip([&user.email, &user.first_name, &user.last_name, &user.role]) {
        data.insert((*field).to_owned(), value.clone().into());
    }
    let write = Write::Upsert {
        record_type: USER_RECORD_TYPE.into(),
        id: user.id.clone(),
        data: serde_json::Value::Object(data.clone()).to_string(),
        expected_version: existing.as_ref().map(|r| r.version),
    };
    // Users are changed by one host operation at a time; a conflict here is a database fault.
    records::apply(conn, elements, &write, now)
        .await?
        .map_err(|e| super::Error::Corrupt(format!("mirroring user {}: {e}", user.id)))?;
    let created_at = existing.map_or_else(|| now.to_owned(), |r| r.created_at);
    data.insert("id".into(), user.id.clone().into());
    data.insert("createdAt".into(), created_at.into());
    data.insert("updatedAt".into(), now.into());
    Ok(serde_json::Value::Object(data))
}

/// Mirror every user that has no `USER` record yet (users created before the mirror existed).
pub async fn mirror_missing(db: &super::Db) -> Result<()> {
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM users WHERE id NOT IN (SELECT id FROM records WHERE record_type = '{USER_RECORD_TYPE}')"
    ));
    let missing: Vec<UserRow> = sqlx::query_as(sql).fetch_all(&db.pool).await?;
    if missing.is_empty() {
        return Ok(());
    }
    let mut tx = db.begin_write().await?;
    for user in &missing {
        mirror(&mut tx, &db.elements, user, &user.updated_at).await?;
    }
    tx.commit().await?;
    Ok(())
}

//! Installed plugin versions and which one is active, per plugin name.

use sqlx::{AnyConnection, AnyExecutor, FromRow};

use super::Result;

/// One installed version, without its component bytes.
#[derive(Clone, Debug, FromRow, PartialEq)]
pub struct PluginVersion {
    pub id: String,
    pub name: String,
    pub version: String,
    pub sha256: String,
    pub installed_by: String,
    pub installed_at: String,
}

/// The active and previous version of a plugin.
#[derive(Clone, Debug, FromRow, PartialEq)]
pub struct PluginState {
    pub name: String,
    pub active_id: String,
    pub previous_id: Option<String>,
}

/// Make `v` the active version (the active one becomes the previous), storing it unless a
/// version of the same plugin with the same content is stored already. Returns the id of the
/// stored version that is now active.
pub async fn activate(conn: &mut AnyConnection, v: &PluginVersion, component_base64: &str) -> Result<String> {
    let stored: Option<String> = sqlx::query_scalar(
        "SELECT id FROM plugin_versions WHERE name = $1 AND sha256 = $2 ORDER BY installed_at LIMIT 1",
    )
    .bind(&v.name)
    .bind(&v.sha256)
    .fetch_optional(&mut *conn)
    .await?;
    let id = match stored {
        Some(id) => id,
        None => {
            insert(&mut *conn, v, component_base64).await?;
            v.id.clone()
        }
    };
    sqlx::query(
        "INSERT INTO plugin_state (name, active_id, previous_id) VALUES ($1, $2, NULL) \
         ON CONFLICT (name) DO UPDATE SET previous_id = plugin_state.active_id, active_id = $2",
    )
    .bind(&v.name)
    .bind(&id)
    .execute(conn)
    .await?;
    Ok(id)
}

async fn insert(conn: &mut AnyConnection, v: &PluginVersion, component_base64: &str) -> Result<()> {
    sqlx::query(
        "INSERT INTO plugin_versions (id, name, version, sha256, component, installed_by, installed_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&v.id)
    .bind(&v.name)
    .bind(&v.version)
    .bind(&v.sha256)
    .bind(component_base64)
    .bind(&v.installed_by)
    .bind(&v.installed_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Swap the active and previous versions; `false` when there is no previous version.
pub async fn swap_previous<'c>(db: impl AnyExecutor<'c>, name: &str) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE plugin_state SET active_id = previous_id, previous_id = active_id \
         WHERE name = $1 AND previous_id IS NOT NULL",
    )
    .bind(name)
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn states<'c>(db: impl AnyExecutor<'c>) -> Result<Vec<PluginState>> {
    Ok(sqlx::query_as("SELECT name, active_id, previous_id FROM plugin_state ORDER BY name").fetch_all(db).await?)
}

/// A version with its component (base64).
pub async fn component<'c>(db: impl AnyExecutor<'c>, id: &str) -> Result<Option<(PluginVersion, String)>> {
    #[derive(FromRow)]
    struct Row {
        #[sqlx(flatten)]
        version: PluginVersion,
        component: String,
    }
    let row: Option<Row> = sqlx::query_as(
        "SELECT id, name, version, sha256, installed_by, installed_at, component FROM plugin_versions WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(db)
    .await?;
    Ok(row.map(|r| (r.version, r.component)))
}

/// The id of the stored version of `name` with the content `sha256`, if any.
pub async fn by_sha256<'c>(db: impl AnyExecutor<'c>, name: &str, sha256: &str) -> Result<Option<String>> {
    Ok(sqlx::query_scalar(
        "SELECT id FROM plugin_versions WHERE name = $1 AND sha256 = $2 ORDER BY installed_at LIMIT 1",
    )
    .bind(name)
    .bind(sha256)
    .fetch_optional(db)
    .await?)
}

/// Each stored plugin's name and the content hash of its active version.
pub async fn active_versions<'c>(db: impl AnyExecutor<'c>) -> Result<Vec<(String, String)>> {
    Ok(sqlx::query_as(
        "SELECT s.name, v.sha256 FROM plugin_state s JOIN plugin_versions v ON v.id = s.active_id ORDER BY s.name",
    )
    .fetch_all(db)
    .await?)
}

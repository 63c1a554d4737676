//! Shared test helpers: `TestHost` (a real server on a fresh database of either backend),
//! a signed-in `Client`, and the `both_backends!` macro.

use std::path::PathBuf;

use host::Server;
use host::config::Config;
use reqwest::StatusCode;
use serde_json::{Value, json};

pub const ADMIN_EMAIL: &str = "admin@example.com";
pub const ADMIN_PASSWORD: &str = "correct horse battery";

#[derive(Clone, Copy, Debug)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Generates `sqlite::<name>` and `postgres::<name>` tests from `async fn <name>(Backend)`.
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::support::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::support::Backend::Postgres).await
                }
            )*
        }
    };
}
pub(crate) use both_backends;

/// A running server on a database of its own, with the bootstrap admin and the test guests.
pub struct TestHost {
    pub server: Server,
    pub config: Config,
    data_dir: PathBuf,
    postgres_db: Option<String>,
}

/// The PostgreSQL server the tests create their databases on.
fn postgres_admin_url() -> String {
    std::env::var("TIDINGS_TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

impl TestHost {
    pub async fn start(backend: Backend) -> TestHost {
        Self::start_with(backend, |_| {}).await
    }

    pub async fn start_with(backend: Backend, configure: impl FnOnce(&mut Config)) -> TestHost {
        let data_dir = std::env::temp_dir().join(format!("tidings-it-{}", uuid::Uuid::new_v4()));
        let plugin_dir = data_dir.join("plugins");
        std::fs::create_dir_all(&plugin_dir).unwrap();
        std::fs::copy(integration_tests::FAULT_MISBEHAVE, plugin_dir.join("fault_misbehave.wasm")).unwrap();
        std::fs::copy(integration_tests::NOTIFY_ROOMS, plugin_dir.join("notify_rooms.wasm")).unwrap();
        std::fs::copy(integration_tests::WORK_BATCHES, plugin_dir.join("work_batches.wasm")).unwrap();

        let mut config = Config::for_tests(data_dir.clone());
        config.plugin_dir = Some(plugin_dir);
        config.bootstrap_admin = Some((ADMIN_EMAIL.into(), ADMIN_PASSWORD.into()));
        let mut postgres_db = None;
        if let Backend::Postgres = backend {
            let name = format!("tidings_it_{}", uuid::Uuid::new_v4().simple());
            create_postgres_db(&name).await;
            let base = postgres_admin_url();
            let server_url = base.rsplit_once('/').map_or(base.as_str(), |(server, _)| server).to_owned();
            config.database_url = Some(format!("{server_url}/{name}"));
            postgres_db = Some(name);
        }
        configure(&mut config);
        let server = Server::start(config.clone()).await.expect("the server starts");
        TestHost { server, config, data_dir, postgres_db }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.url())
    }

    /// A client without a session.
    pub fn anonymous(&self) -> Client {
        // Every client names a socket, as events-api's web client does, so that the log
        // shows which notifications skip the requester (`toSelf`).
        let mut headers = reqwest::header::HeaderMap::new();
        let socket_id = format!("socket-{}", uuid::Uuid::new_v4().simple());
        headers.insert("x-metadata-socketid", socket_id.parse().unwrap());
        let http = reqwest::Client::builder().cookie_store(true).default_headers(headers).build().unwrap();
        Client { http, base: self.server.url() }
    }

    /// A client signed in as the bootstrap admin.
    pub async fn admin(&self) -> Client {
        let client = self.anonymous();
        client.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
        client
    }

    /// A new user with `role`, signed in.
    pub async fn user(&self, role: &str) -> (Client, Value) {
        let email = format!("{}@example.com", uuid::Uuid::new_v4().simple());
        let (status, user) = self
            .admin()
            .await
            .post("/api/v1/users", &json!({ "email": email, "password": "password123", "role": role }))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{user}");
        let client = self.anonymous();
        client.login(&email, "password123").await;
        (client, user)
    }

    /// Rows in the notification log: what was committed for emission.
    pub async fn logged_notifications(&self) -> i64 {
        sqlx::query_scalar("SELECT COUNT(*) FROM notification_log").fetch_one(&self.server.state.db.pool).await.unwrap()
    }

    /// The notification log's position now; see [`TestHost::notified_since`].
    pub async fn log_position(&self) -> i64 {
        sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM notification_log")
            .fetch_one(&self.server.state.db.pool)
            .await
            .unwrap()
    }

    /// The notifications committed after `position`, in order, in the shape events-api's
    /// tests assert: `{event, message: {type, record | id}, to: [...], toSelf}`. `to` lists
    /// the rooms: `all`, `admin`, a user id, or `session:<id>`; `toSelf` is whether the
    /// requesting socket (every test [`Client`] sends `x-metadata-socketid`) receives it too.
    pub async fn notified_since(&self, position: i64) -> Vec<Value> {
        let rows: Vec<(String, String, String, Option<String>)> = sqlx::query_as(
            "SELECT event, payload, targets, exclude_socket FROM notification_log WHERE seq > $1 ORDER BY seq",
        )
        .bind(position)
        .fetch_all(&self.server.state.db.pool)
        .await
        .unwrap();
        rows.into_iter()
            .map(|(event, payload, targets, exclude_socket)| {
                let mut message: Value = serde_json::from_str(&payload).unwrap();
                message.as_object_mut().unwrap().remove("offset");
                let rooms: Vec<String> = serde_json::from_str(&targets).unwrap();
                let to: Vec<String> =
                    rooms.into_iter().map(|r| r.strip_prefix("user:").map_or(r.clone(), str::to_owned)).collect();
                json!({ "event": event, "message": message, "to": to, "toSelf": exclude_socket.is_none() })
            })
            .collect()
    }

    /// Stored records of a type.
    pub async fn stored(&self, record_type: &str) -> i64 {
        sqlx::query_scalar("SELECT COUNT(*) FROM records WHERE record_type = $1")
            .bind(record_type)
            .fetch_one(&self.server.state.db.pool)
            .await
            .unwrap()
    }

    /// Stop the server and start it again on the same data.
    pub async fn restart(self) -> TestHost {
        self.restart_after(async |_| {}).await
    }

    /// Stop the server, run `meanwhile` on its database (as another process would find it),
    /// and start it again on the same data.
    pub async fn restart_after(self, meanwhile: impl AsyncFnOnce(&sqlx::AnyPool)) -> TestHost {
        let pool = self.server.state.db.pool.clone();
        self.server.stop().await.unwrap();
        pool.close().await;
        let db = host::db::Db::connect(self.config.database_url.as_deref(), &self.config.data_dir).await.unwrap();
        meanwhile(&db.pool).await;
        db.pool.close().await;
        let server = Server::start(self.config.clone()).await.expect("the server starts again");
        TestHost { server, ..self }
    }

    pub async fn stop(self) {
        let pool = self.server.state.db.pool.clone();
        self.server.stop().await.unwrap();
        pool.close().await;
        if let Some(name) = &self.postgres_db {
            let admin = sqlx::AnyPool::connect(&postgres_admin_url()).await.unwrap();
            sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")))
                .execute(&admin)
                .await
                .unwrap();
        }
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

async fn create_postgres_db(name: &str) {
    sqlx::any::install_default_drivers();
    let admin = sqlx::AnyPool::connect(&postgres_admin_url()).await.expect(
        "PostgreSQL is reachable at TIDINGS_TEST_POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/test)",
    );
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&admin).await.unwrap();
}

/// An HTTP client with its own cookie jar (its own session once logged in).
pub struct Client {
    pub http: reqwest::Client,
    base: String,
}

impl Client {
    pub async fn login(&self, email: &str, password: &str) {
        let (status, body) = self.post("/api/v1/auth/login", &json!({ "email": email, "password": password })).await;
        assert_eq!(status, StatusCode::OK, "login failed: {body}");
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        Self::read(self.http.get(format!("{}{path}", self.base)).send().await.unwrap()).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        Self::read(self.http.post(format!("{}{path}", self.base)).json(body).send().await.unwrap()).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        Self::read(self.http.put(format!("{}{path}", self.base)).json(body).send().await.unwrap()).await
    }

    /// `POST` a `multipart/form-data` form: text fields plus one file.
    pub async fn upload(
        &self,
        path: &str,
        fields: &[(&str, &str)],
        file: (&str, &str, Vec<u8>),
    ) -> (StatusCode, Value) {
        let (field, filename, bytes) = file;
        let mut form = reqwest::multipart::Form::new()
            .part(field.to_owned(), reqwest::multipart::Part::bytes(bytes).file_name(filename.to_owned()));
        for (name, value) in fields {
            form = form.text(name.to_string(), value.to_string());
        }
        Self::read(self.http.post(format!("{}{path}", self.base)).multipart(form).send().await.unwrap()).await
    }

    pub async fn delete(&self, path: &str) -> (StatusCode, Value) {
        Self::read(self.http.delete(format!("{}{path}", self.base)).send().await.unwrap()).await
    }

    pub async fn read(res: reqwest::Response) -> (StatusCode, Value) {
        let status = res.status();
        let text = res.text().await.unwrap();
        let body =
            if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
        (status, body)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

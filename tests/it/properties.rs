//! Property tests over bad input: arbitrary request bodies and path ids against a real server
//! (never a 5xx; every refusal is a 4xx `{"error": …}` and changes nothing), and arbitrary
//! plugin responses through `dispatch::check` (whatever it accepts obeys every output rule).
//!
//! Proptest bodies are synchronous, so each HTTP property starts one server (SQLite) on a tokio
//! runtime of its own and reuses it across cases. Inputs in failure reports are abbreviated:
//! some are megabytes long.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};

use host::db::Dialect;
use host::dispatch;
use host::plugin::types::{Actor, Change, Delete, Notification, Request, Response, Role, Target, Upsert, User, Write};
use host::plugin::{LoadedPlugin, Runtime};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestError, TestRunner};
use reqwest::StatusCode;
use reqwest::header::CONTENT_TYPE;
use serde_json::{Value, json};

use integration_tests::output_rules::{
    MAX_BODY_BYTES, MAX_NOTIFICATIONS, MAX_RECORD_BYTES, MAX_TARGETS, MAX_WRITES, has_nul, obeys_every_rule,
};

use crate::support::{Backend, Client, TestHost};

/// The server's request body limit in these tests (`Config::for_tests`).
const BODY_LIMIT: usize = 1 << 20;

// ---------------------------------------------------------------------------------------------
// HTTP: request bodies and path ids
// ---------------------------------------------------------------------------------------------

#[test]
fn malformed_bodies_are_refused_with_a_4xx_and_change_nothing() {
    let strategy = (endpoint(), content_type(), prop_oneof![raw_bytes(), almost_json(), oversized_bytes()]);
    against_a_server(Backend::Sqlite, 96, strategy, send_body);
}

#[test]
fn arbitrary_json_bodies_never_fail_the_server_and_refusals_change_nothing() {
    against_a_server(Backend::Sqlite, 128, json_bodies(), send_body);
}

/// Fields close to the 1 MiB body limit (e.g. `{"name": "a" × 1,048,400}`) are stored or
/// refused with a 4xx, never treated as a plugin fault: the host's record cap
/// (`dispatch::MAX_RECORD_BYTES`) is above the body limit. Found by this property: the cap
/// used to equal the limit, and such a body gave 502.
#[test]
fn huge_stored_fields_are_refused_with_a_4xx() {
    let endpoint = prop_oneof![
        Just(Endpoint::CreateDepartment),
        Just(Endpoint::CreateSemester),
        Just(Endpoint::UpdateDepartment),
    ];
    let strategy = (endpoint, json_content_type(), huge_string_body(&["name", "description"]));
    against_a_server(Backend::Sqlite, 64, strategy, send_body);
}

#[test]
fn huge_and_odd_path_ids_never_fail_the_server() {
    against_a_server(Backend::Sqlite, 96, (id_method(), record_path_id()), |server, (method, id)| {
        server.block_on(server.send_id(method, id))
    });
}

/// Paths that are not UTF-8 (`GET /api/v1/departments/%FF`) are refused with a JSON error.
/// Found by this property: they used to get axum's plain-text rejection.
#[test]
fn ids_that_are_not_utf8_are_refused_with_a_json_error() {
    let id = prop::collection::vec(any::<u8>(), 1..16).prop_filter("not UTF-8", |id| std::str::from_utf8(id).is_err());
    against_a_server(Backend::Sqlite, 16, (id_method(), id.prop_map(Payload)), |server, (method, id)| {
        server.block_on(server.send_id(method, id))
    });
}

/// The JSON-body property on PostgreSQL. Found by it (they used to be 500s): U+0000 in a JSON
/// string (PostgreSQL cannot store it; now 400), and an indexed field over btree's 2,704-byte
/// entry limit (now 400).
#[test]
fn arbitrary_json_bodies_never_fail_the_server_on_postgres() {
    against_a_server(Backend::Postgres, 128, json_bodies(), send_body);
}

/// The path-id property on PostgreSQL. Found by it: `GET /api/v1/departments/a%00b` used to be
/// a 500 (PostgreSQL text cannot hold U+0000); now 400.
#[test]
fn huge_and_odd_path_ids_never_fail_the_server_on_postgres() {
    against_a_server(Backend::Postgres, 96, (id_method(), record_path_id()), |server, (method, id)| {
        server.block_on(server.send_id(method, id))
    });
}

fn send_body(
    server: &Server,
    (endpoint, content_type, body): (Endpoint, ContentType, Payload),
) -> Result<(), TestCaseError> {
    server.block_on(server.send_body(endpoint, content_type, body))
}

/// Well-formed JSON of every shape: plausible, wrong types, unknown fields, deep, huge.
fn json_bodies() -> impl Strategy<Value = (Endpoint, ContentType, Payload)> {
    endpoint().prop_flat_map(|endpoint| {
        // Huge strings go to fields that no plugin stores; `huge_stored_fields_are_refused_with_a_4xx`
        // has the others.
        let huge = huge_string_body(&["email", "password", "padding"]);
        let body = prop_oneof![
            3 => plausible_body(endpoint),
            3 => shaped_body(),
            2 => any_json().prop_map(|v| Payload(v.to_string().into_bytes())),
            2 => deeply_nested(),
            2 => huge,
        ];
        (Just(endpoint), json_content_type(), body)
    })
}

fn id_method() -> impl Strategy<Value = IdMethod> {
    prop_oneof![Just(IdMethod::Get), Just(IdMethod::Put), Just(IdMethod::Delete)]
}

/// Odd ids; not empty nor a dot segment, which would name the collection or the API root.
fn record_path_id() -> impl Strategy<Value = Payload> {
    odd_id().prop_filter("a record id", |id| !matches!(id.0.as_slice(), b"" | b"." | b".."))
}

/// One server for a whole proptest run, and the admin client the cases send with.
struct Server {
    runtime: tokio::runtime::Runtime,
    host: TestHost,
    admin: Client,
    /// A department that exists before every case; refused requests must leave it alone.
    existing_id: String,
}

/// What a refused request must not change.
#[derive(Clone, Debug, PartialEq)]
struct Snapshot {
    departments: i64,
    semesters: i64,
    users: i64,
    notifications: i64,
    /// `GET /api/v1/departments/<existing id>` as the admin.
    existing: Value,
}

#[derive(Clone, Copy, Debug)]
enum Endpoint {
    CreateDepartment,
    CreateSemester,
    CreateUser,
    /// `PUT /api/v1/departments/<existing id>`.
    UpdateDepartment,
}

#[derive(Clone, Copy, Debug)]
enum ContentType {
    Json,
    JsonUtf8,
    ProblemJson,
    TextPlain,
    FormUrlEncoded,
    Missing,
}

impl ContentType {
    fn header(self) -> Option<&'static str> {
        match self {
            ContentType::Json => Some("application/json"),
            ContentType::JsonUtf8 => Some("application/json; charset=utf-8"),
            ContentType::ProblemJson => Some("application/problem+json"),
            ContentType::TextPlain => Some("text/plain"),
            ContentType::FormUrlEncoded => Some("application/x-www-form-urlencoded"),
            ContentType::Missing => None,
        }
    }

    fn is_json(self) -> bool {
        matches!(self, ContentType::Json | ContentType::JsonUtf8 | ContentType::ProblemJson)
    }
}

#[derive(Clone, Copy, Debug)]
enum IdMethod {
    Get,
    Put,
    Delete,
}

/// Bytes whose `Debug` is short: the first bytes, lossily decoded, and the length.
#[derive(Clone)]
struct Payload(Vec<u8>);

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} bytes: {:?}", self.0.len(), abbreviate(&String::from_utf8_lossy(&self.0)))
    }
}

fn abbreviate(text: &str) -> String {
    abbreviate_to(text, 160)
}

fn abbreviate_to(text: &str, shown: usize) -> String {
    match text.char_indices().nth(shown) {
        None => text.to_owned(),
        Some((cut, _)) => format!("{}…({} more chars)", &text[..cut], text[cut..].chars().count()),
    }
}

/// Start a server with one department, then run `cases` cases of `test` against it.
/// The server is stopped before a failure is reported. Plugins are never isolated here: a
/// fault would otherwise turn the following cases (and the shrinking) into 503s.
fn against_a_server<S: Strategy>(
    backend: Backend,
    cases: u32,
    strategy: S,
    test: impl Fn(&Server, S::Value) -> Result<(), TestCaseError>,
) where
    S::Value: fmt::Debug,
{
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let (host, admin, existing_id) = runtime.block_on(async {
        // Generous plugin limits: these properties are about input handling, and a loaded
        // machine must not turn a slow 1 MiB body into a timeout (504) or an isolation (503).
        let host = TestHost::start_with(backend, |c| {
            c.limits.isolate_after = u64::MAX;
            c.limits.timeout = std::time::Duration::from_secs(10);
        })
        .await;
        let admin = host.admin().await;
        let (status, existing) =
            admin.post("/api/v1/departments", &json!({ "name": "Existing", "description": "must not change" })).await;
        assert_eq!(status, StatusCode::CREATED, "{existing}");
        let id = existing["id"].as_str().unwrap().to_owned();
        (host, admin, id)
    });
    let server = Server { runtime, host, admin, existing_id };
    let config = Config { cases, max_shrink_iters: 256, failure_persistence: None, ..Config::default() };
    let result = TestRunner::new(config).run(&strategy, |value| test(&server, value));
    let Server { runtime, host, .. } = server;
    runtime.block_on(host.stop());
    match result {
        Ok(()) => {}
        Err(TestError::Fail(reason, input)) => panic!("{reason}\nminimal failing input: {input:?}"),
        Err(TestError::Abort(reason)) => panic!("aborted: {reason}"),
    }
}

impl Server {
    fn block_on<T>(&self, future: impl Future<Output = T>) -> T {
        self.runtime.block_on(future)
    }

    async fn snapshot(&self) -> Snapshot {
        let users =
            sqlx::query_scalar("SELECT COUNT(*) FROM users").fetch_one(&self.host.server.state.db.pool).await.unwrap();
        let (status, existing) = self.admin.get(&format!("/api/v1/departments/{}", self.existing_id)).await;
        assert_eq!(status, StatusCode::OK, "the existing department is readable: {existing}");
        Snapshot {
            departments: self.host.stored("DEPARTMENT").await,
            semesters: self.host.stored("SEMESTER").await,
            users,
            notifications: self.host.logged_notifications().await,
            existing,
        }
    }

    /// Send `body` to `endpoint` and check the answer against the contract.
    async fn send_body(
        &self,
        endpoint: Endpoint,
        content_type: ContentType,
        Payload(body): Payload,
    ) -> Result<(), TestCaseError> {
        let before = self.snapshot().await;
        let (method, path) = match endpoint {
            Endpoint::CreateDepartment => (reqwest::Method::POST, "/api/v1/departments".to_owned()),
            Endpoint::CreateSemester => (reqwest::Method::POST, "/api/v1/semesters".to_owned()),
            Endpoint::CreateUser => (reqwest::Method::POST, "/api/v1/users".to_owned()),
            Endpoint::UpdateDepartment => (reqwest::Method::PUT, format!("/api/v1/departments/{}", self.existing_id)),
        };
        let mut request = self.admin.http.request(method, self.admin.url(&path)).body(body.clone());
        if let Some(value) = content_type.header() {
            request = request.header(CONTENT_TYPE, value);
        }
        let response = request.send().await.map_err(|e| TestCaseError::fail(format!("no answer: {e}")))?;
        let (status, answer) = Client::read(response).await;
        let after = self.snapshot().await;
        let shown = abbreviate(&answer.to_string());

        if !status.is_success() {
            prop_assert_eq!(&after, &before, "a refused {:?} ({}) changed something: {}", endpoint, status, shown);
            let message = answer.get("error").and_then(Value::as_str);
            prop_assert!(message.is_some_and(|m| !m.trim().is_empty()), "a {status} without an error message: {shown}");
        }
        prop_assert!(!status.is_server_error(), "{endpoint:?} answered {status}: {shown}");
        // The body guards, in the order the host applies them.
        if body.len() > BODY_LIMIT {
            prop_assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "over the limit: {}", shown);
        } else if !body.is_empty() && !content_type.is_json() {
            prop_assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "not JSON by its type: {}", shown);
        } else if !body.is_empty() && serde_json::from_slice::<Value>(&body).is_err() {
            prop_assert_eq!(status, StatusCode::BAD_REQUEST, "malformed JSON: {}", shown);
        }
        if status.is_client_error() {
            return Ok(());
        }
        // Accepted: exactly the one change the endpoint makes.
        let mut expected = before.clone();
        match endpoint {
            Endpoint::CreateDepartment | Endpoint::CreateSemester | Endpoint::CreateUser => {
                prop_assert_eq!(status, StatusCode::CREATED, "{}", shown);
                prop_assert!(answer["id"].as_str().is_some_and(|id| !id.is_empty()), "created without an id: {shown}");
                match endpoint {
                    Endpoint::CreateDepartment => expected.departments += 1,
                    Endpoint::CreateSemester => expected.semesters += 1,
                    _ => expected.users += 1,
                }
                // Records are announced; users are not.
                if !matches!(endpoint, Endpoint::CreateUser) {
                    expected.notifications += 1;
                }
            }
            Endpoint::UpdateDepartment => {
                prop_assert_eq!(status, StatusCode::OK, "{}", shown);
                prop_assert_eq!(&answer["id"], &json!(self.existing_id), "updated another record: {}", shown);
                expected.notifications += 1;
                expected.existing = answer.clone();
            }
        }
        prop_assert_eq!(after, expected, "an accepted {:?} changed more or less than one record", endpoint);
        Ok(())
    }

    /// Send a request naming department `id` and check that it neither fails nor changes anything.
    async fn send_id(&self, method: IdMethod, Payload(id): Payload) -> Result<(), TestCaseError> {
        let before = self.snapshot().await;
        let url = self.admin.url(&format!("/api/v1/departments/{}", percent_encode(&id)));
        let request = match method {
            IdMethod::Get => self.admin.http.get(url),
            IdMethod::Put => self.admin.http.put(url).json(&json!({ "data": { "description": "changed" } })),
            IdMethod::Delete => self.admin.http.delete(url),
        };
        let response = request.send().await.map_err(|e| TestCaseError::fail(format!("no answer: {e}")))?;
        let (status, answer) = Client::read(response).await;
        let after = self.snapshot().await;
        let shown = abbreviate(&answer.to_string());
        prop_assert_eq!(after, before, "{:?} ({}) changed something: {}", method, status, shown);
        prop_assert!(!status.is_server_error(), "{method:?} answered {status}: {shown}");
        prop_assert!(status.is_client_error(), "no department has this id, yet {method:?} answered {status}: {shown}");
        let message = answer.get("error").and_then(Value::as_str);
        prop_assert!(message.is_some_and(|m| !m.trim().is_empty()), "a {status} without an error message: {shown}");
        Ok(())
    }
}

/// Percent-encode every byte but ASCII letters and digits, so that the server decodes the id
/// back to exactly these bytes.
fn percent_encode(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| if b.is_ascii_alphanumeric() { char::from(b).to_string() } else { format!("%{b:02X}") })
        .collect()
}

fn endpoint() -> impl Strategy<Value = Endpoint> {
    prop_oneof![
        Just(Endpoint::CreateDepartment),
        Just(Endpoint::CreateSemester),
        Just(Endpoint::CreateUser),
        Just(Endpoint::UpdateDepartment),
    ]
}

fn content_type() -> impl Strategy<Value = ContentType> {
    prop_oneof![
        6 => json_content_type(),
        1 => Just(ContentType::TextPlain),
        1 => Just(ContentType::FormUrlEncoded),
        1 => Just(ContentType::Missing),
    ]
}

fn json_content_type() -> impl Strategy<Value = ContentType> {
    prop_oneof![4 => Just(ContentType::Json), 1 => Just(ContentType::JsonUtf8), 1 => Just(ContentType::ProblemJson)]
}

/// Any bytes, mostly not UTF-8.
fn raw_bytes() -> impl Strategy<Value = Payload> {
    prop::collection::vec(any::<u8>(), 0..2048).prop_map(Payload)
}

/// JSON-looking bodies that are not JSON: invalid UTF-8 inside a string, truncation, a stray
/// byte, a lone surrogate, a trailing comma.
fn almost_json() -> impl Strategy<Value = Payload> {
    let field = prop_oneof![Just("name"), Just("email"), Just("data"), Just("start")];
    let bad = prop::collection::vec(any::<u8>(), 1..64);
    (field, bad, 0..6u8).prop_map(|(field, bad, kind)| {
        let mut out = format!("{{\"{field}\":\"").into_bytes();
        match kind {
            0 => {
                // Invalid UTF-8: continuation bytes and bytes that never occur in UTF-8.
                out.extend(bad.iter().map(|b| 0x80 | b));
                out.extend(b"\"}");
            }
            1 => out.extend(&bad), // unterminated, maybe with raw control bytes
            2 => out.extend(b"\\ud800\"}"),
            3 => out.extend(b"x\",}"),
            4 => {
                out.extend(b"x\"}");
                out.extend(&bad);
            }
            _ => out = bad.iter().map(|b| b"{}[]\":,"[usize::from(*b) % 7]).collect(),
        }
        Payload(out)
    })
}

/// Bodies around and above the size limit, JSON (padded in a field no endpoint reads) or not.
fn oversized_bytes() -> impl Strategy<Value = Payload> {
    (around_the_limit(), any::<bool>()).prop_map(|(len, json)| {
        Payload(if json {
            json!({ "name": "x", "padding": "a".repeat(len.saturating_sub(27)) }).to_string().into_bytes()
        } else {
            vec![b'x'; len]
        })
    })
}

/// Lengths up to ~1.5 MB, often within a few hundred bytes of the body limit.
fn around_the_limit() -> impl Strategy<Value = usize> {
    prop_oneof![
        1 => 0..1_500_000usize,
        2 => (BODY_LIMIT - 400)..(BODY_LIMIT + 64),
    ]
}

/// A body of the shape `endpoint` expects, often valid (so 201 or 200 and its one change),
/// sometimes with one field of a wrong type or value, or an extra field.
fn plausible_body(endpoint: Endpoint) -> impl Strategy<Value = Payload> {
    // Mostly short; sometimes a few thousand characters, longer than an index entry may be.
    let text = || prop_oneof![8 => "[A-Za-z0-9 ]{1,12}", 1 => "[A-Za-z0-9]{2000,4000}"].prop_map(Value::from);
    let date = || {
        (2020..2030i32, 1..13u32, 1..29u32).prop_map(|(y, m, d)| json!(format!("{y:04}-{m:02}-{d:02}T00:00:00.000Z")))
    };
    let fields: BoxedStrategy<Vec<(&'static str, Value)>> = match endpoint {
        Endpoint::CreateDepartment => (text(), prop::option::of(text()))
            .prop_map(|(name, description)| {
                let mut fields = vec![("name", name)];
                fields.extend(description.map(|d| ("description", d)));
                fields
            })
            .boxed(),
        Endpoint::CreateSemester => (text(), date(), date())
            .prop_map(|(name, start, end)| vec![("name", name), ("start", start), ("end", end)])
            .boxed(),
        Endpoint::CreateUser => (
            0..10_000u32,
            prop_oneof![Just("password123"), Just("short")],
            prop::sample::select(&["USER", "ADMIN", "ROOT"][..]),
        )
            .prop_map(|(n, password, role)| {
                vec![
                    ("email", json!(format!("u{n}@example.com"))),
                    ("password", json!(password)),
                    ("role", json!(role)),
                ]
            })
            .boxed(),
        Endpoint::UpdateDepartment => prop::collection::vec(
            prop_oneof![
                text().prop_map(|v| ("name", v)),
                text().prop_map(|v| ("description", v)),
                "[A-Z]{0,2}".prop_map(|v| ("letter", json!(v))),
                (1..9i32).prop_map(|v| ("schoolYears", json!(v))),
                Just(("color", json!("#ff0000"))),
                prop::collection::vec("[a-z]", 0..3).prop_map(|v| ("classLetters", json!(v))),
            ],
            0..4,
        )
        .boxed(),
    };
    let mutation = prop_oneof![
        3 => Just(None),
        1 => (any::<prop::sample::Index>(), field_value()).prop_map(|(i, v)| Some((Some(i), v))),
        1 => field_value().prop_map(|v| Some((None, v))),
    ];
    (fields, mutation).prop_map(move |(mut fields, mutation)| {
        match mutation {
            Some((Some(index), value)) if !fields.is_empty() => {
                let i = index.index(fields.len());
                fields[i].1 = value;
            }
            Some((_, value)) => fields.push(("unknownField", value)),
            None => {}
        }
        let object: serde_json::Map<String, Value> = fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        let body = match endpoint {
            Endpoint::UpdateDepartment => json!({ "data": object }),
            _ => Value::Object(object),
        };
        Payload(body.to_string().into_bytes())
    })
}

/// Objects with the fields the endpoints read, each with a value of the right or the wrong
/// type, plus fields no endpoint knows; sometimes wrapped in `{data: …}` as updates expect.
fn shaped_body() -> impl Strategy<Value = Payload> {
    let key = prop_oneof![
        Just("name".to_owned()),
        Just("description".to_owned()),
        Just("start".to_owned()),
        Just("end".to_owned()),
        Just("email".to_owned()),
        Just("password".to_owned()),
        Just("role".to_owned()),
        Just("firstName".to_owned()),
        Just("schoolYears".to_owned()),
        Just("classLetters".to_owned()),
        Just("department1_Id".to_owned()),
        Just("untisSyncDate".to_owned()),
        Just("id".to_owned()),
        Just("createdAt".to_owned()),
        Just("version".to_owned()),
        "[a-zA-Z_$]{1,12}",
    ];
    let object = prop::collection::btree_map(key, field_value(), 0..8)
        .prop_map(|fields| Value::Object(fields.into_iter().collect()));
    (object, 0..4u8).prop_map(|(object, wrap)| {
        Payload(
            match wrap {
                0 => json!({ "data": object }),
                1 => json!({ "data": object, "extra": true }),
                _ => object,
            }
            .to_string()
            .into_bytes(),
        )
    })
}

/// Plausible values (some make a valid record), wrong types and awkward strings.
fn field_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        2 => "[A-Za-z0-9 ]{1,16}".prop_map(Value::from),
        1 => (0..64u32).prop_map(|n| json!(format!("user{n}@example.com"))),
        1 => Just(json!("password123")),
        1 => prop_oneof![Just("USER"), Just("ADMIN"), Just("ROOT"), Just("")].prop_map(Value::from),
        1 => (2000..2100i32, 1..13u32, 1..29u32)
            .prop_map(|(y, m, d)| json!(format!("{y:04}-{m:02}-{d:02}T00:00:00.000Z"))),
        1 => Just(json!("2026-13-45T99:99:99Z")),
        1 => any::<String>().prop_map(Value::from),
        1 => "[\\x00-\\x1f\\u{7f}-\\u{9f}\\u{202e}\\u{feff}\"\\\\]{0,8}".prop_map(Value::from),
        1 => any::<i64>().prop_map(Value::from),
        1 => any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
        1 => any::<bool>().prop_map(Value::from),
        1 => Just(Value::Null),
        1 => any_json(),
    ]
}

/// Arbitrary JSON values, a few levels deep.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
        ".{0,24}".prop_map(Value::from),
    ];
    leaf.prop_recursive(6, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::btree_map(".{0,8}", inner, 0..8).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Arrays and objects nested up to 200 deep, at the top or under a field the endpoint reads.
fn deeply_nested() -> impl Strategy<Value = Payload> {
    let levels = prop::collection::vec(any::<bool>(), 0..=200);
    let place = prop_oneof![Just(""), Just("name"), Just("data"), Just("email")];
    (levels, place).prop_map(|(levels, place)| {
        let mut text = String::new();
        for &array in &levels {
            text.push_str(if array { "[" } else { "{\"a\":" });
        }
        text.push_str("\"leaf\"");
        for &array in levels.iter().rev() {
            text.push(if array { ']' } else { '}' });
        }
        if !place.is_empty() {
            text = format!("{{\"{place}\":{text}}}");
        }
        Payload(text.into_bytes())
    })
}

/// An object with one huge string field (one of `fields`), around and over the body limit,
/// sometimes wrapped in `{data: …}`; the string repeats a unit that may be multi-byte, escaped
/// or a control character.
fn huge_string_body(fields: &'static [&'static str]) -> impl Strategy<Value = Payload> {
    let unit = prop_oneof![Just("a"), Just("é"), Just("😀"), Just("\""), Just("\\"), Just("\n"), Just("\u{0}")];
    let field = prop::sample::select(fields);
    (field, unit, around_the_limit(), any::<bool>()).prop_map(|(field, unit, len, wrap)| {
        // `len` is the size of the whole body; aim the string at it.
        let overhead = field.len() + 8 + if wrap { 11 } else { 0 };
        let escaped = serde_json::to_string(unit).unwrap().len() - 2;
        let value = unit.repeat(len.saturating_sub(overhead) / escaped);
        let body = if wrap { json!({ "data": { field: value } }) } else { json!({ field: value }) };
        Payload(body.to_string().into_bytes())
    })
}

/// Path ids: arbitrary bytes (invalid UTF-8 included), odd characters, and ids of about 10,000
/// characters. Ids of wider characters are as long as a request line can carry: the client
/// refuses URIs over 64 KiB, which 10,000 percent-encoded 3- or 4-byte characters would be.
fn odd_id() -> impl Strategy<Value = Payload> {
    let unit = prop::sample::select(
        &["a", "é", "😀", "\u{202e}", "%", "/", "?", "#", " ", ".", "\u{0}", "\u{7f}", "'", "\"", "\\", ":", "*"][..],
    );
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..64),
        (prop::collection::vec(unit.clone(), 1..4), 0..200usize)
            .prop_map(|(units, n)| units.concat().repeat(n).into_bytes()),
        (unit, -10..=10isize).prop_map(|(unit, delta)| {
            let chars = match unit.len() {
                1 | 2 => 10_000,
                width => 60_000 / (3 * width),
            };
            unit.repeat(chars.saturating_add_signed(delta)).into_bytes()
        }),
    ]
    .prop_map(Payload)
}

// ---------------------------------------------------------------------------------------------
// The plugin boundary: `dispatch::check` on arbitrary responses
// ---------------------------------------------------------------------------------------------

const CALLER_SESSION: &str = "caller-session";

#[test]
fn check_accepts_only_output_that_obeys_every_rule() {
    let plugin = notify_rooms();
    let (accepted, refused) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let config = Config { cases: 1024, failure_persistence: None, ..Config::default() };
    let result =
        TestRunner::new(config).run(&(any_response(), request(), any::<bool>()), |(response, req, read_only)| {
            let outcome = dispatch::check(&plugin, response.0.clone(), &req, read_only);
            if outcome.is_ok() {
                accepted.fetch_add(1, Ordering::Relaxed);
                if let Err(broken) = obeys_every_rule(&response.0, &req, read_only) {
                    return Err(TestCaseError::fail(format!("check accepted output that breaks a rule: {broken}")));
                }
            } else {
                refused.fetch_add(1, Ordering::Relaxed);
            }
            Ok(())
        });
    report(result);
    // Both outcomes must be common, or the property says little.
    let (accepted, refused) = (accepted.into_inner(), refused.into_inner());
    assert!(accepted >= 100 && refused >= 100, "accepted {accepted}, refused {refused}: rebalance the strategy");
}

#[test]
fn check_accepts_output_that_obeys_every_rule() {
    let plugin = notify_rooms();
    let config = Config { cases: 256, failure_persistence: None, ..Config::default() };
    let result = TestRunner::new(config).run(
        &(valid_response(), signed_in_request(), any::<bool>()),
        |(response, req, read_only)| {
            let read_only = read_only && response.0.writes.is_empty() && response.0.notifications.is_empty();
            obeys_every_rule(&response.0, &req, read_only)
                .map_err(|e| TestCaseError::fail(format!("the strategy built invalid output: {e}")))?;
            match dispatch::check(&plugin, response.0, &req, read_only) {
                Ok(_) => Ok(()),
                Err(message) => Err(TestCaseError::fail(format!("valid output refused: {message}"))),
            }
        },
    );
    report(result);
}

fn report<T: fmt::Debug>(result: Result<(), TestError<T>>) {
    match result {
        Ok(()) => {}
        Err(TestError::Fail(reason, input)) => panic!("{reason}\nminimal failing input: {input:?}"),
        Err(TestError::Abort(reason)) => panic!("aborted: {reason}"),
    }
}

/// The `notify-rooms` guest: record type `NOTE`, no grants beyond it.
fn notify_rooms() -> LoadedPlugin {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let engine = Runtime::new(Default::default(), Dialect::Sqlite, Default::default(), None).unwrap();
        let plugin = engine.load(std::fs::read(integration_tests::NOTIFY_ROOMS).unwrap()).await.unwrap();
        assert_eq!(plugin.descriptor.record_type, "NOTE");
        assert!(plugin.descriptor.grants.write.is_empty(), "the properties assume no write grants");
        plugin
    })
}

/// A `Response` whose `Debug` stays short however large its parts are: long strings are cut,
/// and of long lists (up to the caps) only the first items are shown.
#[derive(Clone)]
struct Output(Response);

impl fmt::Debug for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Response { status, body, writes, notifications, .. } = &self.0;
        let first = |items: Vec<String>, len: usize| format!("{len} in all, first {items:?}");
        let writes =
            first(writes.iter().take(3).map(|w| abbreviate_to(&format!("{w:?}"), 600)).collect(), writes.len());
        let notifications = first(
            notifications.iter().take(3).map(|n| abbreviate_to(&format!("{n:?}"), 600)).collect(),
            notifications.len(),
        );
        f.debug_struct("Response")
            .field("status", status)
            .field("body", &body.as_deref().map(abbreviate))
            .field("writes", &format_args!("{writes}"))
            .field("notifications", &format_args!("{notifications}"))
            .finish()
    }
}

fn request() -> impl Strategy<Value = Request> {
    prop_oneof![4 => signed_in_request(), 1 => anonymous_request()]
}

fn anonymous_request() -> impl Strategy<Value = Request> {
    request_by(Just(Actor::Anonymous))
}

fn signed_in_request() -> impl Strategy<Value = Request> {
    let role = prop_oneof![Just(Role::User), Just(Role::Admin)];
    request_by(role.prop_map(|role| Actor::User(User { id: "caller".into(), role, session_id: CALLER_SESSION.into() })))
}

fn request_by(actor: impl Strategy<Value = Actor>) -> impl Strategy<Value = Request> {
    (actor, prop::option::of("[a-zA-Z0-9_-]{1,20}")).prop_map(|(actor, socket_id)| Request {
        actor,
        action: "create".into(),
        params: Vec::new(),
        query: Vec::new(),
        body: Some("{}".into()),
        now: "2026-01-01T00:00:00.000Z".into(),
        socket_id,
        upload: None,
        cursor: None,
    })
}

fn record_type() -> impl Strategy<Value = String> {
    prop_oneof![
        12 => Just("NOTE".to_owned()),
        1 => Just("DEPARTMENT".to_owned()),
        1 => Just(String::new()),
        1 => Just("note".to_owned()),
        1 => Just("NOTE ".to_owned()),
        1 => "[A-Z_]{1,12}",
        1 => ".{0,16}",
    ]
}

fn id() -> impl Strategy<Value = String> {
    prop_oneof![
        12 => "[a-z0-9-]{1,40}",
        1 => Just(String::new()),
        1 => "[a-z]{126,130}",
        1 => "é{60,70}",
        1 => "[a-z]{0,4}[\\x00-\\x1f\\u{7f}-\\u{9f}][a-z]{0,4}",
        1 => ".{1,32}",
        1 => (1000..20_000usize).prop_map(|n| "x".repeat(n)),
    ]
}

/// JSON text for a record: mostly an object carrying `id`, sometimes not an object, not JSON,
/// or near the size cap.
fn record_json(id: String) -> impl Strategy<Value = String> {
    prop_oneof![
        12 => "[a-z ]{0,16}".prop_map(move |text| json!({ "id": id, "text": text }).to_string()),
        1 => Just(json!({ "id": "someone-else" }).to_string()),
        1 => Just(json!({ "id": 42 }).to_string()),
        1 => Just("{}".to_owned()),
        1 => Just("[]".to_owned()),
        1 => Just("null".to_owned()),
        1 => Just("{\"id\": ".to_owned()),
        1 => ".{0,16}",
        1 => ((MAX_RECORD_BYTES - 40)..(MAX_RECORD_BYTES + 8)).prop_map(|n| {
            let pad = n.saturating_sub(20);
            json!({ "id": "big", "pad": "p".repeat(pad) }).to_string()
        }),
    ]
}

fn write() -> impl Strategy<Value = Write> {
    (record_type(), id(), prop::option::of(any::<u64>()), any::<bool>()).prop_flat_map(
        |(record_type, id, expected_version, upsert)| {
            if upsert {
                record_json(id.clone())
                    .prop_map(move |data| {
                        Write::Upsert(Upsert {
                            record_type: record_type.clone(),
                            id: id.clone(),
                            data,
                            expected_version,
                        })
                    })
                    .boxed()
            } else {
                Just(Write::Delete(Delete { record_type, id, expected_version })).boxed()
            }
        },
    )
}

fn target() -> impl Strategy<Value = Target> {
    prop_oneof![
        3 => Just(Target::All),
        2 => Just(Target::Admins),
        2 => id().prop_map(Target::User),
        2 => Just(Target::Session(CALLER_SESSION.into())),
        1 => prop_oneof![Just(String::new()), Just("other-session".to_owned()), ".{0,40}"].prop_map(Target::Session),
    ]
}

fn notification() -> impl Strategy<Value = Notification> {
    let change = prop_oneof![Just(Change::Created), Just(Change::Changed), Just(Change::Deleted)];
    // Target lists of a few, or around the cap of 100.
    let targets = (prop::collection::vec(target(), 0..4), prop_oneof![8 => Just(0usize), 1 => 95..=105usize]);
    (change, record_type(), id(), targets, any::<bool>(), 0..8u8).prop_flat_map(
        |(change, record_type, id, (mut targets, padding), to_self, record_kind)| {
            targets.extend(std::iter::repeat_n(Target::All, padding));
            let record = match record_kind {
                0 => Just(None).boxed(),
                _ => record_json(id.clone()).prop_map(Some).boxed(),
            };
            record.prop_map(move |record| Notification {
                change,
                record_type: record_type.clone(),
                id: id.clone(),
                record,
                targets: targets.clone(),
                to_self,
            })
        },
    )
}

fn body() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        4 => Just(None),
        8 => any_json().prop_map(|v| Some(v.to_string())),
        1 => ".{0,32}".prop_map(Some),
        1 => Just(Some("1e400".to_owned())),
        1 => Just(Some("{\"a\":".to_owned())),
        1 => ((MAX_BODY_BYTES - 8)..(MAX_BODY_BYTES + 8)).prop_map(|n| Some(format!("\"{}\"", "b".repeat(n - 2)))),
    ]
}

fn status() -> impl Strategy<Value = u16> {
    prop_oneof![8 => 200..300u16, 1 => 195..205u16, 1 => 295..305u16, 1 => any::<u16>()]
}

/// Arbitrary output: lists of a few writes and notifications, each valid or arbitrary, and
/// sometimes padded with copies of a valid one to around the caps of 1,000. Biased towards
/// valid parts so that both outcomes are common.
fn any_response() -> impl Strategy<Value = Output> {
    let padding = prop_oneof![10 => Just(0usize), 1 => 995..=1005usize];
    let writes = prop::collection::vec(prop_oneof![3 => valid_write(), 1 => write()], 0..4);
    let notifications = prop::collection::vec(prop_oneof![3 => valid_notification(), 1 => notification()], 0..4);
    (status(), body(), (writes, padding.clone()), (notifications, padding)).prop_map(
        |(status, body, (mut writes, write_padding), (mut notifications, notification_padding))| {
            if let Some(copy) = writes.first().cloned().filter(|_| write_padding > 0) {
                writes.extend(std::iter::repeat_n(copy, write_padding));
            }
            if let Some(copy) = notifications.first().cloned().filter(|_| notification_padding > 0) {
                notifications.extend(std::iter::repeat_n(copy, notification_padding));
            }
            Output(Response { status, body, writes, notifications, tasks: Vec::new(), next: None })
        },
    )
}

/// Output that obeys every rule, up to the caps, for a signed-in caller.
fn valid_response() -> impl Strategy<Value = Output> {
    // A few, or exactly the cap.
    let count = |cap: usize| prop_oneof![4 => 0..4usize, 1 => Just(cap)];
    let writes = (count(MAX_WRITES), prop::collection::vec(valid_write(), 1..4));
    let notifications = (count(MAX_NOTIFICATIONS), prop::collection::vec(valid_notification(), 1..4));
    (200..300u16, prop::option::of(any_json()), writes, notifications).prop_map(
        |(status, body, (writes, write_pool), (notifications, notification_pool))| {
            Output(Response {
                status,
                body: body.map(|b| b.to_string()),
                writes: write_pool.iter().cycle().take(writes).cloned().collect(),
                notifications: notification_pool.iter().cycle().take(notifications).cloned().collect(),
                tasks: Vec::new(),
                next: None,
            })
        },
    )
}

const VALID_ID: &str = "[a-zA-Z0-9_.:-]{1,128}";

fn valid_write() -> impl Strategy<Value = Write> {
    let field = any_json().prop_filter("no record holds U+0000", |field| !has_nul(field));
    (VALID_ID, prop::option::of(any::<u64>()), any::<bool>(), field).prop_map(
        |(id, expected_version, upsert, field)| {
            let record_type = "NOTE".to_owned();
            if upsert {
                // The host drops `id`, `createdAt` and `updatedAt` from the data.
                let data = json!({ "id": "ignored", "field": field }).to_string();
                Write::Upsert(Upsert { record_type, id, data, expected_version })
            } else {
                Write::Delete(Delete { record_type, id, expected_version })
            }
        },
    )
}

/// Valid for a signed-in caller (it may name the caller's session).
fn valid_notification() -> impl Strategy<Value = Notification> {
    let target = prop_oneof![
        Just(Target::All),
        Just(Target::Admins),
        VALID_ID.prop_map(Target::User),
        Just(Target::Session(CALLER_SESSION.into())),
    ];
    let targets = prop_oneof![
        4 => prop::collection::vec(target.clone(), 1..4),
        1 => prop::collection::vec(target, MAX_TARGETS - 2..=MAX_TARGETS),
    ];
    let change = prop_oneof![Just(Change::Created), Just(Change::Changed), Just(Change::Deleted)];
    (change, VALID_ID, targets, any::<bool>(), any_json()).prop_map(|(change, id, targets, to_self, field)| {
        Notification {
            change,
            record_type: "NOTE".into(),
            record: match change {
                Change::Deleted => None,
                _ => Some(json!({ "id": id, "field": field }).to_string()),
            },
            id,
            targets,
            to_self,
        }
    })
}

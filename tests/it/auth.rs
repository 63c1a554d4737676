//! Sessions and users over HTTP: login, rotation, logout, the login throttle (behind a trusted
//! proxy, so that `X-Forwarded-For` names many clients on loopback), user creation, and the
//! request guards (Origin, content type, body size).

use std::sync::Arc;
use std::time::Duration;

use host::sessions::client_addr::parse_trusted_proxy;
use host::sessions::throttle::{ACCOUNT_LIMIT, ACCOUNT_WINDOW, FREE_ACROSS_ACCOUNTS, FREE_ON_ONE_ACCOUNT};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, ORIGIN, RETRY_AFTER, SET_COOKIE};
use serde_json::json;

use crate::support::{ADMIN_EMAIL, ADMIN_PASSWORD, Backend, Client, TestHost, both_backends};

both_backends!(
    login_sets_a_hardened_cookie_and_never_says_which_part_was_wrong,
    login_rotates_and_logout_ends_the_session,
    users_are_created_by_admins_with_unique_emails,
    request_guards_refuse_bad_requests,
    only_admins_change_roles_and_the_change_applies_at_once,
    a_failing_client_waits_longer_each_time_while_others_sign_in,
    unknown_accounts_are_throttled_exactly_like_known_ones,
    distributed_guessing_is_bounded_per_account_except_for_addresses_that_signed_in,
    behind_a_trusted_proxy_the_throttle_counts_each_forwarded_client,
    without_trusted_proxies_x_forwarded_for_is_ignored,
    sessions_expire_when_idle,
    events_api_global_routes_answer_as_the_original,
);

async fn events_api_global_routes_answer_as_the_original(backend: Backend) {
    let host = TestHost::start(backend).await;
    let (status, welcome) = host.anonymous().get("/api/v1").await;
    assert_eq!((status, welcome), (StatusCode::OK, json!("Welcome to the EVENTES-API V1.0")));
    assert_eq!(host.anonymous().get("/api/v1/checklogin").await.0, StatusCode::UNAUTHORIZED);
    let (user, _) = host.user("USER").await;
    assert_eq!(user.get("/api/v1/checklogin").await, (StatusCode::OK, json!("OK")));
    assert_eq!(user.post("/api/v1/logout", &json!({})).await.0, StatusCode::NO_CONTENT);
    assert_eq!(user.get("/api/v1/checklogin").await.0, StatusCode::UNAUTHORIZED);
    host.stop().await;
}

/// A login attempt as forwarded by a proxy for `client`, as the client sees it.
async fn login_forwarded_for(client: &str, host: &TestHost, email: &str, password: &str) -> Answer {
    let body = json!({ "email": email, "password": password });
    let http = host.anonymous().http;
    let res = http.post(host.url("/api/v1/auth/login")).header("x-forwarded-for", client).json(&body).send().await;
    let res = res.unwrap();
    let retry_after = res.headers().get(RETRY_AFTER).map(|v| v.to_str().unwrap().to_owned());
    let (status, body) = Client::read(res).await;
    Answer { status, retry_after, body }
}

#[derive(Debug, PartialEq)]
struct Answer {
    status: StatusCode,
    retry_after: Option<String>,
    body: serde_json::Value,
}

impl Answer {
    /// The wait it asks for, in whole seconds.
    fn wait(&self) -> Duration {
        Duration::from_secs(self.retry_after.as_deref().expect("Retry-After").parse().unwrap())
    }
}

/// A server behind a proxy on 127.0.0.1, the test client's address, so that `X-Forwarded-For`
/// names the clients.
async fn behind_a_proxy(backend: Backend) -> TestHost {
    TestHost::start_with(backend, |config| {
        config.trusted_proxies = vec![parse_trusted_proxy("127.0.0.1").unwrap()];
    })
    .await
}

async fn a_failing_client_waits_longer_each_time_while_others_sign_in(backend: Backend) {
    let host = behind_a_proxy(backend).await;
    let (a, b) = ("203.0.113.7", "198.51.100.20");
    for _ in 0..FREE_ON_ONE_ACCOUNT {
        assert_eq!(login_forwarded_for(a, &host, ADMIN_EMAIL, "wrong password").await.status, StatusCode::UNAUTHORIZED);
    }
    let limited = login_forwarded_for(a, &host, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    assert_eq!(
        limited,
        Answer {
            status: StatusCode::TOO_MANY_REQUESTS,
            retry_after: Some("1".into()),
            body: json!({ "error": "too many attempts; try again later" }),
        },
        "client A waits, even with the right password"
    );
    assert_eq!(login_forwarded_for(b, &host, ADMIN_EMAIL, ADMIN_PASSWORD).await.status, StatusCode::OK, "B does not");
    let elsewhere = login_forwarded_for(a, &host, "someone@example.com", "wrong password").await;
    assert_eq!(elsewhere.status, StatusCode::UNAUTHORIZED, "A waits only on the account it failed on");

    tokio::time::sleep(limited.wait()).await;
    assert_eq!(login_forwarded_for(a, &host, ADMIN_EMAIL, "wrong password").await.status, StatusCode::UNAUTHORIZED);
    let longer = login_forwarded_for(a, &host, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    assert_eq!(
        (longer.status, longer.retry_after.as_deref()),
        (StatusCode::TOO_MANY_REQUESTS, Some("2")),
        "each further failure doubles the wait"
    );

    tokio::time::sleep(longer.wait()).await;
    assert_eq!(login_forwarded_for(a, &host, ADMIN_EMAIL, ADMIN_PASSWORD).await.status, StatusCode::OK);
    for _ in 0..FREE_ON_ONE_ACCOUNT {
        let after = login_forwarded_for(a, &host, ADMIN_EMAIL, "wrong password").await;
        assert_eq!(after.status, StatusCode::UNAUTHORIZED, "signing in cleared A's failures");
    }
    host.stop().await;
}

async fn unknown_accounts_are_throttled_exactly_like_known_ones(backend: Backend) {
    let host = behind_a_proxy(backend).await;
    // One client fails until it waits; then another client tries the same account.
    let transcript = async |email: &str, attacker: &str, bystander: &str| {
        let mut answers = Vec::new();
        for _ in 0..=FREE_ON_ONE_ACCOUNT {
            answers.push(login_forwarded_for(attacker, &host, email, "wrong password").await);
        }
        answers.push(login_forwarded_for(bystander, &host, email, "wrong password").await);
        answers
    };
    let known = transcript(ADMIN_EMAIL, "203.0.113.1", "198.51.100.1").await;
    let unknown = transcript("nobody@example.com", "203.0.113.2", "198.51.100.2").await;
    let statuses: Vec<_> = known.iter().map(|a| (a.status, a.retry_after.as_deref())).collect();
    let mut expected = vec![(StatusCode::UNAUTHORIZED, None); FREE_ON_ONE_ACCOUNT as usize];
    expected.extend([(StatusCode::TOO_MANY_REQUESTS, Some("1")), (StatusCode::UNAUTHORIZED, None)]);
    assert_eq!(statuses, expected);
    assert_eq!(known, unknown, "statuses, bodies and Retry-After alike");
    host.stop().await;
}

async fn distributed_guessing_is_bounded_per_account_except_for_addresses_that_signed_in(backend: Backend) {
    let host = Arc::new(behind_a_proxy(backend).await);
    let owner = "198.51.100.20";
    assert_eq!(login_forwarded_for(owner, &host, ADMIN_EMAIL, ADMIN_PASSWORD).await.status, StatusCode::OK);
    // Each bot stays within its free failures; together they reach the account's limit.
    let mut bots = tokio::task::JoinSet::new();
    for bot in 0..ACCOUNT_LIMIT / FREE_ON_ONE_ACCOUNT {
        let host = Arc::clone(&host);
        bots.spawn(async move {
            for _ in 0..FREE_ON_ONE_ACCOUNT {
                let answer = login_forwarded_for(&format!("10.0.{bot}.1"), &host, ADMIN_EMAIL, "guess").await;
                assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
            }
        });
    }
    bots.join_all().await;
    let newcomer = login_forwarded_for("192.0.2.1", &host, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    assert_eq!(newcomer.status, StatusCode::TOO_MANY_REQUESTS, "an address new to the account waits");
    assert!(newcomer.wait() <= ACCOUNT_WINDOW, "until the window ends: {:?}", newcomer.retry_after);
    let owner_again = login_forwarded_for(owner, &host, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    assert_eq!(owner_again.status, StatusCode::OK, "an address that signed in before does not");
    Arc::into_inner(host).expect("the bots are done").stop().await;
}

async fn behind_a_trusted_proxy_the_throttle_counts_each_forwarded_client(backend: Backend) {
    let host = behind_a_proxy(backend).await;
    let (a, b) = ("203.0.113.7", "198.51.100.20");
    // Different accounts each time, so that only the address's failures across accounts count.
    for i in 0..FREE_ACROSS_ACCOUNTS {
        let email = format!("guess{i}@example.com");
        assert_eq!(login_forwarded_for(a, &host, &email, "wrong password").await.status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(
        login_forwarded_for(a, &host, ADMIN_EMAIL, ADMIN_PASSWORD).await.status,
        StatusCode::TOO_MANY_REQUESTS,
        "client A is throttled"
    );
    // A spoofed hop left of what the proxy appended does not give A a fresh budget.
    let spoofed = format!("{b}, {a}");
    let answer = login_forwarded_for(&spoofed, &host, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    assert_eq!(answer.status, StatusCode::TOO_MANY_REQUESTS);
    let answer = login_forwarded_for(b, &host, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    assert_eq!(answer.status, StatusCode::OK, "client B is not");
    host.stop().await;
}

async fn without_trusted_proxies_x_forwarded_for_is_ignored(backend: Backend) {
    let host = TestHost::start(backend).await;
    assert!(host.config.trusted_proxies.is_empty(), "none trusted by default");
    // Every attempt claims another address; all are counted against the peer.
    for i in 0..FREE_ACROSS_ACCOUNTS {
        let (client, email) = (format!("203.0.113.{i}"), format!("guess{i}@example.com"));
        let answer = login_forwarded_for(&client, &host, &email, "wrong password").await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(
        login_forwarded_for("198.51.100.20", &host, ADMIN_EMAIL, ADMIN_PASSWORD).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    host.stop().await;
}

async fn only_admins_change_roles_and_the_change_applies_at_once(backend: Backend) {
    let host = TestHost::start(backend).await;
    let admin = host.admin().await;
    let (user, created) = host.user("USER").await;
    let id = created["id"].as_str().unwrap();
    let path = format!("/api/v1/users/{id}/set_role");
    let logged = host.logged_notifications().await;

    assert_eq!(user.put(&path, &json!({ "data": { "role": "ADMIN" } })).await.0, StatusCode::FORBIDDEN);
    assert_eq!(admin.put(&path, &json!({ "data": { "role": "ROOT" } })).await.0, StatusCode::BAD_REQUEST);
    assert_eq!(
        admin.put("/api/v1/users/nobody/set_role", &json!({ "data": { "role": "ADMIN" } })).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(user.get("/api/v1/user").await.1["role"], "USER");
    assert_eq!(host.logged_notifications().await, logged, "refused role changes log nothing");

    let (status, changed) = admin.put(&path, &json!({ "data": { "role": "ADMIN" } })).await;
    assert_eq!((status, changed["role"].as_str()), (StatusCode::OK, Some("ADMIN")));
    assert_eq!(user.get("/api/v1/user").await.1["role"], "ADMIN", "the open session sees the new role");
    assert_eq!(user.post("/api/v1/departments", &json!({ "name": "now allowed" })).await.0, StatusCode::CREATED);
    assert_eq!(host.logged_notifications().await, logged + 2, "the role change and the department were logged");
    host.stop().await;
}

async fn login_sets_a_hardened_cookie_and_never_says_which_part_was_wrong(backend: Backend) {
    let host = TestHost::start(backend).await;
    let http = reqwest::Client::new();
    let res = http
        .post(host.url("/api/v1/auth/login"))
        .json(&json!({ "email": ADMIN_EMAIL.to_uppercase(), "password": ADMIN_PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK, "e-mails compare case-insensitively");
    let cookie = res.headers().get(SET_COOKIE).unwrap().to_str().unwrap().to_owned();
    assert!(cookie.starts_with("tidings_session="), "{cookie}");
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"), "{cookie}");
    let user: serde_json::Value = res.json().await.unwrap();
    assert_eq!(user["role"], "ADMIN");
    assert!(user.get("passwordHash").is_none() && user.get("password").is_none());

    let wrong_password =
        host.anonymous().post("/api/v1/auth/login", &json!({ "email": ADMIN_EMAIL, "password": "nope-nope" })).await;
    let unknown_user = host
        .anonymous()
        .post("/api/v1/auth/login", &json!({ "email": "who@example.com", "password": "nope-nope" }))
        .await;
    assert_eq!(wrong_password.0, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong_password, unknown_user, "the answer does not reveal which part was wrong");
    host.stop().await;
}

async fn login_rotates_and_logout_ends_the_session(backend: Backend) {
    let host = TestHost::start(backend).await;
    let client = host.admin().await;
    let (status, me) = client.get("/api/v1/user").await;
    assert_eq!((status, me["email"].as_str()), (StatusCode::OK, Some(ADMIN_EMAIL)));

    // Log in again with the old cookie: the old one must stop working.
    let old_cookie = cookie_of(&client, &host).await;
    client.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let stale =
        reqwest::Client::new().get(host.url("/api/v1/user")).header("cookie", &old_cookie).send().await.unwrap();
    assert_eq!(stale.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(client.get("/api/v1/user").await.0, StatusCode::OK);

    let (status, _) = client.post("/api/v1/logout", &json!({})).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(client.get("/api/v1/user").await.0, StatusCode::UNAUTHORIZED);
    host.stop().await;
}

/// The `tidings_session=…` pair the client currently sends.
async fn cookie_of(client: &crate::support::Client, host: &TestHost) -> String {
    let res = client
        .http
        .post(host.url("/api/v1/auth/login"))
        .json(&json!({ "email": ADMIN_EMAIL, "password": ADMIN_PASSWORD }))
        .send()
        .await
        .unwrap();
    let set = res.headers().get(SET_COOKIE).unwrap().to_str().unwrap();
    set.split(';').next().unwrap().to_owned()
}

async fn users_are_created_by_admins_with_unique_emails(backend: Backend) {
    let host = TestHost::start(backend).await;
    let admin = host.admin().await;
    let body = json!({ "email": "ada@example.com", "password": "password123", "role": "USER", "firstName": "Ada", "lastName": "L" });
    let (status, user) = admin.post("/api/v1/users", &body).await;
    assert_eq!(status, StatusCode::CREATED, "{user}");
    assert_eq!((user["firstName"].as_str(), user["role"].as_str()), (Some("Ada"), Some("USER")));
    assert!(uuid::Uuid::parse_str(user["id"].as_str().unwrap()).is_ok());

    let (status, _) =
        admin.post("/api/v1/users", &json!({ "email": "ADA@example.com", "password": "password123" })).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _) = admin.post("/api/v1/users", &json!({ "email": "bob@example.com", "password": "short" })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = admin
        .post("/api/v1/users", &json!({ "email": "bob@example.com", "password": "password123", "role": "ROOT" }))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let ada = host.anonymous();
    ada.login("ada@example.com", "password123").await;
    let (status, _) =
        ada.post("/api/v1/users", &json!({ "email": "eve@example.com", "password": "password123" })).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let eve = host
        .anonymous()
        .post("/api/v1/auth/login", &json!({ "email": "eve@example.com", "password": "password123" }))
        .await;
    assert_eq!(eve.0, StatusCode::UNAUTHORIZED, "the refused user was not created");
    host.stop().await;
}

async fn request_guards_refuse_bad_requests(backend: Backend) {
    let host = TestHost::start_with(backend, |c| c.max_body_bytes = 4096).await;
    let admin = host.admin().await;
    let url = admin.url("/api/v1/departments");

    let foreign =
        admin.http.post(&url).header(ORIGIN, "http://evil.example").json(&json!({ "name": "x" })).send().await.unwrap();
    assert_eq!(foreign.status(), StatusCode::FORBIDDEN);
    let cross = admin
        .http
        .post(&url)
        .header("sec-fetch-site", "cross-site")
        .json(&json!({ "name": "x" }))
        .send()
        .await
        .unwrap();
    assert_eq!(cross.status(), StatusCode::FORBIDDEN);
    let own =
        admin.http.post(&url).header(ORIGIN, host.server.url()).json(&json!({ "name": "own" })).send().await.unwrap();
    assert_eq!(own.status(), StatusCode::CREATED);

    let text = admin.http.post(&url).header(CONTENT_TYPE, "text/plain").body("{\"name\":\"t\"}").send().await.unwrap();
    assert_eq!(text.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let malformed =
        admin.http.post(&url).header(CONTENT_TYPE, "application/json").body("{\"name\":").send().await.unwrap();
    assert_eq!(malformed.status(), StatusCode::BAD_REQUEST);
    let (status, body) = crate::support::Client::read(malformed).await;
    assert!(body["error"].as_str().is_some_and(|m| m.contains("JSON")), "{status} {body}");
    let huge = admin.http.post(&url).json(&json!({ "name": "x".repeat(10_000) })).send().await.unwrap();
    assert_eq!(huge.status(), StatusCode::PAYLOAD_TOO_LARGE);

    assert_eq!(host.stored("DEPARTMENT").await, 1, "only the same-origin request created a record");
    host.stop().await;
}

async fn sessions_expire_when_idle(backend: Backend) {
    let host = TestHost::start(backend).await;
    let admin = host.admin().await;
    let (user, _) = host.user("USER").await;
    // Pinning the host clock is itself a request: it is authenticated at the old instant.
    let pin = async |client: &crate::support::Client, days: i64| {
        let now = (chrono::Utc::now() + chrono::Duration::days(days)).to_rfc3339();
        assert_eq!(
            client.put("/api/v1/admin/clock", &json!({ "now": now })).await.0,
            StatusCode::NO_CONTENT,
            "day {days}"
        );
    };

    pin(&admin, 6).await;
    assert_eq!(user.get("/api/v1/user").await.0, StatusCode::OK, "6 days idle: still signed in");
    pin(&admin, 12).await;
    pin(&admin, 20).await;
    assert_eq!(user.get("/api/v1/user").await.0, StatusCode::UNAUTHORIZED, "14 days idle: the session ended");

    // In constant use, a session still ends 30 days after sign-in.
    let admin = host.admin().await; // signed in at day 20
    for day in [26, 32, 38, 44, 50] {
        pin(&admin, day).await;
    }
    assert_eq!(admin.get("/api/v1/user").await.0, StatusCode::UNAUTHORIZED, "30 days after sign-in");
    host.stop().await;
}

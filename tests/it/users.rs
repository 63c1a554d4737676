//! The USER record type: the host's accounts mirrored as `USER` records, served by the bundled
//! `user` plugin under `/api/v1/users` (events-api's `tests/integration/user.spec.ts` cases that
//! need neither Untis nor ICS files), and the host's rule that no plugin changes an account.

use reqwest::StatusCode;
use serde_json::json;

use crate::support::{Backend, TestHost, both_backends};

both_backends!(
    users_are_listed_found_and_updated_like_events_api,
    set_role_notifies_the_target_and_a_user_cannot,
    no_plugin_can_change_an_account_field_of_a_user,
);

async fn users_are_listed_found_and_updated_like_events_api(backend: Backend) {
    let host = TestHost::start(backend).await;
    let admin = host.admin().await;
    let (user, me) = host.user("USER").await;
    let (other, them) = host.user("USER").await;
    let (my_id, their_id) = (me["id"].as_str().unwrap(), them["id"].as_str().unwrap());

    // Every account has a USER record with events-api's profile defaults.
    let (status, found) = user.get(&format!("/api/v1/users/{my_id}")).await;
    assert_eq!(status, StatusCode::OK, "{found}");
    assert_eq!((found["email"].clone(), found["role"].clone()), (me["email"].clone(), json!("USER")));
    assert_eq!(found["notifyOnEventUpdate"], false);
    assert_eq!(found["untisId"], json!(null));
    let (status, list) = user.get("/api/v1/users").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list.as_array().unwrap().len(), 3, "the admin and both users: {list}");
    let (status, missing) = user.get("/api/v1/users/no-such-user").await;
    assert_eq!((status, missing), (StatusCode::OK, json!(null)), "the original answers null, not 404");
    assert_eq!(host.anonymous().get("/api/v1/users").await.0, StatusCode::UNAUTHORIZED);

    // Self: 200, CHANGED_RECORD to the caller; only the flags change.
    let position = host.log_position().await;
    let body = json!({ "data": { "notifyOnEventUpdate": true, "role": "ADMIN", "email": "x@example.com" } });
    let (status, updated) = user.put(&format!("/api/v1/users/{my_id}"), &body).await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!((updated["notifyOnEventUpdate"].clone(), updated["role"].clone()), (json!(true), json!("USER")));
    assert_eq!(updated["email"], me["email"]);
    assert_eq!(
        host.notified_since(position).await,
        vec![json!({ "event": "CHANGED_RECORD", "message": { "type": "USER", "record": updated },
                     "to": [my_id], "toSelf": false })]
    );

    // Another user: 403, nothing changed or notified. An admin: 200, notified to the admin.
    let position = host.log_position().await;
    let body = json!({ "data": { "notifyOnEventUpdate": true } });
    assert_eq!(other.put(&format!("/api/v1/users/{my_id}"), &body).await.0, StatusCode::FORBIDDEN);
    assert_eq!(user.put(&format!("/api/v1/users/{their_id}"), &body).await.0, StatusCode::FORBIDDEN);
    assert!(host.notified_since(position).await.is_empty());
    let (status, updated) = admin.put(&format!("/api/v1/users/{their_id}"), &body).await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    let (_, admin_user) = admin.get("/api/v1/user").await;
    let notified = host.notified_since(position).await;
    assert_eq!(notified.len(), 1);
    assert_eq!(notified[0]["to"], json!([admin_user["id"]]), "to the caller, not the target (the original's rule)");
    host.stop().await;
}

async fn set_role_notifies_the_target_and_a_user_cannot(backend: Backend) {
    let host = TestHost::start(backend).await;
    let admin = host.admin().await;
    let (user, me) = host.user("USER").await;
    let id = me["id"].as_str().unwrap();

    let position = host.log_position().await;
    let body = json!({ "data": { "role": "ADMIN" } });
    assert_eq!(user.put(&format!("/api/v1/users/{id}/set_role"), &body).await.0, StatusCode::FORBIDDEN);
    assert!(host.notified_since(position).await.is_empty());
    let (status, updated) = admin.put(&format!("/api/v1/users/{id}/set_role"), &body).await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["role"], "ADMIN");
    assert_eq!(
        host.notified_since(position).await,
        vec![json!({ "event": "CHANGED_RECORD", "message": { "type": "USER", "record": updated },
                     "to": [id], "toSelf": false })]
    );
    // The USER record follows: the plugin serves the new role.
    let (_, found) = user.get(&format!("/api/v1/users/{id}")).await;
    assert_eq!(found["role"], "ADMIN");
    host.stop().await;
}

async fn no_plugin_can_change_an_account_field_of_a_user(backend: Backend) {
    let host = TestHost::start(backend).await;
    let (user, me) = host.user("USER").await;
    let position = host.log_position().await;
    let (status, error) = user.post("/api/v1/faults/escalate", &json!({})).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{error}");
    let (_, found) = user.get(&format!("/api/v1/users/{}", me["id"].as_str().unwrap())).await;
    assert_eq!(found["role"], "USER");
    let (_, session_user) = user.get("/api/v1/user").await;
    assert_eq!(session_user["role"], "USER");
    assert!(host.notified_since(position).await.is_empty());
    host.stop().await;
}

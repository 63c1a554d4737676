//! A small HTTP client for the operator commands (`tidings plugin install|list|rollback|logs`):
//! signs in as an ADMIN and calls the admin API of a running server. Plain HTTP only; put a
//! TLS-terminating proxy in front for remote servers.

use anyhow::{Context, bail};
use serde_json::{Value, json};

/// A signed-in admin session on a server.
pub struct AdminClient {
    http: reqwest::Client,
    server: String,
}

impl AdminClient {
    /// Sign in with `email` and `password`.
    pub async fn sign_in(server: &str, email: &str, password: &str) -> anyhow::Result<AdminClient> {
        let http = reqwest::Client::builder().cookie_store(true).build()?;
        let server = server.trim_end_matches('/').to_owned();
        let res = http
            .post(format!("{server}/api/v1/auth/login"))
            .json(&json!({ "email": email, "password": password }))
            .send()
            .await
            .with_context(|| format!("connecting to {server}"))?;
        check(res).await.context("signing in")?;
        Ok(AdminClient { http, server })
    }

    pub async fn install(&self, name: &str, component: Vec<u8>, approve_grants: bool) -> anyhow::Result<Value> {
        let res = self
            .http
            .put(format!("{}/api/v1/admin/plugins/{name}?approveGrants={approve_grants}", self.server))
            .header("content-type", "application/wasm")
            .body(component)
            .send()
            .await?;
        check(res).await
    }

    pub async fn list(&self) -> anyhow::Result<Value> {
        check(self.http.get(format!("{}/api/v1/admin/plugins", self.server)).send().await?).await
    }

    /// The plugin's journal entries after `since`; with `error_id`, only that fault.
    pub async fn logs(&self, name: &str, since: Option<u64>, error_id: Option<&str>) -> anyhow::Result<Value> {
        let mut query = form_urlencoded::Serializer::new(String::new());
        if let Some(since) = since {
            query.append_pair("since", &since.to_string());
        }
        if let Some(id) = error_id {
            query.append_pair("errorId", id);
        }
        let url = format!("{}/api/v1/admin/plugins/{name}/logs?{}", self.server, query.finish());
        check(self.http.get(url).send().await?).await
    }

    pub async fn rollback(&self, name: &str) -> anyhow::Result<Value> {
        check(self.http.post(format!("{}/api/v1/admin/plugins/{name}/rollback", self.server)).send().await?).await
    }
}

async fn check(res: reqwest::Response) -> anyhow::Result<Value> {
    let status = res.status();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        let message = body.get("error").and_then(Value::as_str).unwrap_or("no message");
        bail!("{status}: {message}");
    }
    Ok(body)
}

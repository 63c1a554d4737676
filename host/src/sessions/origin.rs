//! The Origin rule shared by HTTP and Socket.IO: a browser request is trusted only from the
//! server's own origin or an origin the operator allowed. Requests without `Origin` (curl,
//! Node, Python clients) are allowed; cookies are what authenticates them.

use axum::http::HeaderMap;
use axum::http::header::{HOST, ORIGIN};

/// Whether the request's `Origin` (if any) is allowed.
pub fn origin_allowed(headers: &HeaderMap, allowed: &[String], secure: bool) -> bool {
    let Some(origin) = headers.get(ORIGIN) else { return true };
    let Ok(origin) = origin.to_str() else { return false };
    let origin = origin.trim_end_matches('/');
    if allowed.iter().any(|a| a == origin) {
        return true;
    }
    // The server's own origin, as the client addressed it.
    let Some(host) = headers.get(HOST).and_then(|h| h.to_str().ok()) else { return false };
    let scheme = if secure { "https" } else { "http" };
    origin == format!("{scheme}://{host}")
}

/// Whether the browser says the request comes from another site (`Sec-Fetch-Site`).
pub fn cross_site(headers: &HeaderMap) -> bool {
    headers.get("sec-fetch-site").is_some_and(|v| v == "cross-site")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(origin: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(HOST, "127.0.0.1:3002".parse().unwrap());
        if let Some(o) = origin {
            h.insert(ORIGIN, o.parse().unwrap());
        }
        h
    }

    #[test]
    fn own_listed_and_absent_origins_pass_others_fail() {
        let allowed = vec!["https://app.example".to_owned()];
        assert!(origin_allowed(&headers(None), &allowed, false));
        assert!(origin_allowed(&headers(Some("http://127.0.0.1:3002")), &allowed, false));
        assert!(origin_allowed(&headers(Some("https://app.example")), &allowed, false));
        assert!(!origin_allowed(&headers(Some("http://evil.example")), &allowed, false));
        assert!(!origin_allowed(&headers(Some("https://127.0.0.1:3002")), &allowed, false));
        assert!(!origin_allowed(&headers(Some("null")), &allowed, false));
    }
}

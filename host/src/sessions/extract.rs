//! HTTP extractors for the session: [`CurrentUser`] (401 without a session) and
//! [`MaybeUser`] (anonymous allowed).

use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum_extra::extract::CookieJar;

use crate::clock::Clock;
use crate::db::Db;
use crate::sessions::{AuthError, COOKIE_NAME, Session, authenticate};

/// The signed-in caller; rejects with 401 when there is no live session.
pub struct CurrentUser(pub Arc<Session>);

/// The caller's session, if any.
pub struct MaybeUser(pub Option<Arc<Session>>);

impl<S> FromRequestParts<S> for MaybeUser
where
    Db: FromRef<S>,
    Clock: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = AuthError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        // Resolved once per request, however many extractors ask.
        if let Some(cached) = parts.extensions.get::<Option<Arc<Session>>>() {
            return Ok(MaybeUser(cached.clone()));
        }
        let jar = CookieJar::from_headers(&parts.headers);
        let session = match jar.get(COOKIE_NAME) {
            Some(cookie) => authenticate(&Db::from_ref(state), &Clock::from_ref(state), cookie.value()).await?,
            None => None,
        };
        parts.extensions.insert(session.clone());
        Ok(MaybeUser(session))
    }
}

impl<S> FromRequestParts<S> for CurrentUser
where
    Db: FromRef<S>,
    Clock: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = AuthError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match MaybeUser::from_request_parts(parts, state).await? {
            MaybeUser(Some(session)) => Ok(CurrentUser(session)),
            MaybeUser(None) => Err(AuthError::Unauthorized),
        }
    }
}

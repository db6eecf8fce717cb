//! The bearer-token extractor: every `/api/v1` handler takes a [`Caller`].

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use super::problem::Problem;
use crate::Orchestrator;
use crate::admin::{AdminError, Caller};

/// The authenticated caller of a request.
pub struct Auth(pub Caller);

impl FromRequestParts<Arc<Orchestrator>> for Auth {
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<Orchestrator>,
    ) -> Result<Self, Problem> {
        let header = parts.headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok());
        let token = header.and_then(|h| h.strip_prefix("Bearer ")).map(str::trim);
        let Some(token) = token else {
            return Err(AdminError::Unauthenticated.into());
        };
        let caller = state.authenticate(token).await?;
        Ok(Auth(caller))
    }
}

//! `/api/v1/whoami`, `/api/v1/api-tokens` and `/api/v1/audit`: who may act, and
//! what they did.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::{Json, Router, routing::get, routing::post};
use serde::Deserialize;
use serde_json::json;

use super::auth::Auth;
use super::problem::{ApiJson, ApiQuery, Problem};
use crate::Orchestrator;
use crate::admin::page_size;
use crate::domain::Role;

type AppState = State<Arc<Orchestrator>>;

pub(super) fn routes() -> Router<Arc<Orchestrator>> {
    Router::new()
        .route("/whoami", get(whoami))
        .route("/api-tokens", get(list_tokens).post(create_token))
        .route("/api-tokens/{id}/revoke", post(revoke_token))
        .route("/audit", get(audit))
        .route("/audit/verify", get(verify))
}

/// The caller's own token: its id, name and role (so a client can show only what
/// the role may do). Any valid token may ask.
async fn whoami(Auth(caller): Auth) -> impl IntoResponse {
    Json(json!({ "id": caller.token_id, "name": caller.name, "role": caller.role }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateToken {
    name: String,
    role: Role,
}

async fn create_token(
    State(o): AppState,
    Auth(caller): Auth,
    ApiJson(req): ApiJson<CreateToken>,
) -> Result<impl IntoResponse, Problem> {
    let (token, secret) = o.create_api_token(&caller, &req.name, req.role).await?;
    Ok((StatusCode::CREATED, Json(json!({ "token": token, "secret": secret }))))
}

async fn list_tokens(State(o): AppState, Auth(caller): Auth) -> Result<impl IntoResponse, Problem> {
    Ok(Json(json!({ "items": o.list_api_tokens(&caller).await? })))
}

async fn revoke_token(
    State(o): AppState,
    Auth(caller): Auth,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, Problem> {
    o.revoke_api_token(&caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    after: Option<u64>,
    limit: Option<u32>,
}

async fn audit(
    State(o): AppState,
    Auth(caller): Auth,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> Result<impl IntoResponse, Problem> {
    let limit = page_size(q.limit)?;
    let items = o.audit(&caller, q.after.unwrap_or(0), limit).await?;
    let next = (items.len() == limit as usize).then(|| items.last().map(|e| e.seq)).flatten();
    Ok(Json(json!({ "items": items, "next": next })))
}

async fn verify(State(o): AppState, Auth(caller): Auth) -> Result<impl IntoResponse, Problem> {
    Ok(Json(o.verify_audit(&caller).await?))
}

//! `/api/v1/consumers`: register, list, show, relabel, revoke, issue tokens.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::{Json, Router, routing::get, routing::post};
use serde::{Deserialize, Serialize};

use super::auth::Auth;
use super::problem::{ApiJson, ApiQuery, Problem};
use crate::Orchestrator;
use crate::admin::{IssuedToken, page_size};
use crate::domain::{ConsumerState, Invalid, Labels, Selector};
use crate::store::{Consumer, ConsumerQuery};

type AppState = State<Arc<Orchestrator>>;

pub(super) fn routes() -> Router<Arc<Orchestrator>> {
    Router::new()
        .route("/consumers", get(list).post(register))
        .route("/consumers/{id}", get(show).patch(relabel))
        .route("/consumers/{id}/revoke", post(revoke))
        .route("/consumers/{id}/enrollment-tokens", post(issue_token))
        .route("/fleet/summary", get(summary))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    selector: Option<String>,
    name: Option<String>,
    state: Option<String>,
    after: Option<String>,
    limit: Option<u32>,
}

fn parse_query(q: ListQuery) -> Result<ConsumerQuery, Invalid> {
    let selector: Selector = q.selector.as_deref().unwrap_or("").parse()?;
    let state = match q.state.as_deref() {
        None => None,
        Some(s) => Some(ConsumerState::parse(s).ok_or_else(|| {
            Invalid::new("state", "one of pending_enrollment, enrolled, revoked")
        })?),
    };
    if q.name.as_ref().is_some_and(|n| n.len() > 128) {
        return Err(Invalid::new("name", "at most 128 characters"));
    }
    Ok(ConsumerQuery {
        selector,
        name_contains: q.name,
        state,
        after: q.after,
        limit: page_size(q.limit)?,
        exclude_suite: None,
    })
}

async fn list(
    State(o): AppState,
    Auth(caller): Auth,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<impl IntoResponse, Problem> {
    let query = parse_query(q)?;
    Ok(Json(o.list_consumers(&caller, &query).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegisterRequest {
    name: String,
    #[serde(default)]
    labels: Labels,
    token_ttl_secs: Option<u64>,
}

#[derive(Serialize)]
struct Registered {
    consumer: Consumer,
    enrollment: IssuedToken,
}

async fn register(
    State(o): AppState,
    Auth(caller): Auth,
    ApiJson(req): ApiJson<RegisterRequest>,
) -> Result<impl IntoResponse, Problem> {
    let (consumer, enrollment) =
        o.register_consumer(&caller, &req.name, req.labels, req.token_ttl_secs).await?;
    Ok((StatusCode::CREATED, Json(Registered { consumer, enrollment })))
}

async fn show(
    State(o): AppState,
    Auth(caller): Auth,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, Problem> {
    Ok(Json(o.consumer(&caller, &id).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RelabelRequest {
    labels: Labels,
}

async fn relabel(
    State(o): AppState,
    Auth(caller): Auth,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<RelabelRequest>,
) -> Result<impl IntoResponse, Problem> {
    Ok(Json(o.set_labels(&caller, &id, req.labels).await?))
}

async fn revoke(
    State(o): AppState,
    Auth(caller): Auth,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, Problem> {
    Ok(Json(o.revoke_consumer(&caller, &id).await?))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct TokenRequest {
    token_ttl_secs: Option<u64>,
}

async fn issue_token(
    State(o): AppState,
    Auth(caller): Auth,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<TokenRequest>,
) -> Result<impl IntoResponse, Problem> {
    let issued = o.issue_enrollment_token(&caller, &id, req.token_ttl_secs).await?;
    Ok((StatusCode::CREATED, Json(issued)))
}

async fn summary(State(o): AppState, Auth(caller): Auth) -> Result<impl IntoResponse, Problem> {
    Ok(Json(o.fleet_summary(&caller).await?))
}

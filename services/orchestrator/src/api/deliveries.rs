//! `/api/v1/campaigns/{id}/deliveries` and `/timeline`: who a campaign reached,
//! who failed and why, and when deliveries ended.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::IntoResponse;
use axum::{Json, Router, routing::get};
use serde::Deserialize;

use super::auth::Auth;
use super::problem::{ApiQuery, Problem};
use crate::Orchestrator;
use crate::admin::page_size;
use crate::delivery::DeliveryState;
use crate::domain::Invalid;
use crate::store::DeliveryQuery;

type AppState = State<Arc<Orchestrator>>;

pub(super) fn routes() -> Router<Arc<Orchestrator>> {
    Router::new()
        .route("/campaigns/{id}/deliveries", get(list))
        .route("/campaigns/{id}/timeline", get(timeline))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    state: Option<String>,
    after: Option<String>,
    limit: Option<u32>,
}

fn parse_state(state: Option<&str>) -> Result<Option<DeliveryState>, Invalid> {
    let Some(name) = state else { return Ok(None) };
    DeliveryState::parse(name).map(Some).ok_or_else(|| {
        let names: Vec<_> = DeliveryState::ALL.iter().map(|s| s.as_str()).collect();
        Invalid::new("state", format!("one of {}", names.join(", ")))
    })
}

async fn list(
    State(o): AppState,
    Auth(caller): Auth,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<impl IntoResponse, Problem> {
    let query = DeliveryQuery {
        campaign_id: id,
        state: parse_state(q.state.as_deref())?,
        after: q.after,
        limit: page_size(q.limit)?,
    };
    Ok(Json(o.deliveries(&caller, &query).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TimelineQuery {
    bucket_secs: Option<u32>,
}

async fn timeline(
    State(o): AppState,
    Auth(caller): Auth,
    Path(id): Path<String>,
    ApiQuery(q): ApiQuery<TimelineQuery>,
) -> Result<impl IntoResponse, Problem> {
    Ok(Json(o.timeline(&caller, &id, q.bucket_secs).await?))
}

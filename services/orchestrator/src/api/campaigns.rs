//! `/api/v1/campaigns`: escape plans, their preview, arming, firing and steering.

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
use crate::campaign::{CampaignRequest, Transition};
use crate::domain::{Invalid, Selector};

type AppState = State<Arc<Orchestrator>>;

pub(super) fn routes() -> Router<Arc<Orchestrator>> {
    Router::new()
        .route("/campaigns", get(list).post(create))
        .route("/campaigns/preview", post(preview))
        .route("/campaigns/{id}", get(show))
        .route("/campaigns/{id}/preview", get(campaign_preview))
        .route("/campaigns/{id}/manifest", get(manifest))
        .route("/campaigns/{id}/progress", get(progress))
        .route("/campaigns/{id}/events", get(events))
        .route("/campaigns/{id}/arm", post(arm))
        .route("/campaigns/{id}/fire", post(fire))
        .route("/campaigns/{id}/pause", post(pause))
        .route("/campaigns/{id}/resume", post(resume))
        .route("/campaigns/{id}/cancel", post(cancel))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    after: Option<String>,
    limit: Option<u32>,
}

async fn list(
    State(o): AppState,
    Auth(caller): Auth,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<impl IntoResponse, Problem> {
    let limit = page_size(q.limit)?;
    Ok(Json(o.list_campaigns(&caller, q.after.as_deref(), limit).await?))
}

async fn create(
    State(o): AppState,
    Auth(caller): Auth,
    ApiJson(req): ApiJson<CampaignRequest>,
) -> Result<impl IntoResponse, Problem> {
    Ok((StatusCode::CREATED, Json(o.create_campaign(&caller, req).await?)))
}

async fn show(
    State(o): AppState,
    Auth(caller): Auth,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, Problem> {
    Ok(Json(o.campaign(&caller, &id).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PreviewRequest {
    #[serde(default)]
    selector: String,
    target_suite: String,
    #[serde(default = "hundred")]
    first_wave_percent: u8,
}

fn hundred() -> u8 {
    100
}

async fn preview(
    State(o): AppState,
    Auth(caller): Auth,
    ApiJson(req): ApiJson<PreviewRequest>,
) -> Result<impl IntoResponse, Problem> {
    let selector: Selector = req.selector.parse()?;
    let suite = pqescape_message::types::Suite::from_name(&req.target_suite)
        .filter(|s| s.is_post_quantum())
        .ok_or_else(|| Invalid::new("target_suite", "x25519-mlkem768 or x25519-mlkem1024"))?;
    if !(1..=100).contains(&req.first_wave_percent) {
        return Err(Invalid::new("first_wave_percent", "between 1 and 100").into());
    }
    Ok(Json(o.preview(&caller, &selector, suite, req.first_wave_percent).await?))
}

async fn campaign_preview(
    State(o): AppState,
    Auth(caller): Auth,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, Problem> {
    Ok(Json(o.campaign_preview(&caller, &id).await?))
}

async fn manifest(
    State(o): AppState,
    Auth(caller): Auth,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, Problem> {
    let bytes = o.campaign_manifest(&caller, &id).await?;
    let digest = hex::encode(pqescape_message::campaign::manifest_digest(&bytes));
    Ok(Json(json!({ "manifest": hex::encode(&bytes), "digest": digest })))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FireRequest {
    confirm: Option<String>,
}

async fn step(
    o: &Orchestrator,
    caller: &crate::admin::Caller,
    id: &str,
    t: Transition,
) -> Result<Json<crate::campaign::Campaign>, Problem> {
    Ok(Json(o.transition(caller, id, t, None).await?))
}

async fn arm(
    State(o): AppState,
    Auth(caller): Auth,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, Problem> {
    step(&o, &caller, &id, Transition::Arm).await
}

async fn fire(
    State(o): AppState,
    Auth(caller): Auth,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<FireRequest>,
) -> Result<impl IntoResponse, Problem> {
    Ok(Json(o.transition(&caller, &id, Transition::Fire, req.confirm.as_deref()).await?))
}

async fn pause(
    State(o): AppState,
    Auth(caller): Auth,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, Problem> {
    step(&o, &caller, &id, Transition::Pause).await
}

async fn resume(
    State(o): AppState,
    Auth(caller): Auth,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, Problem> {
    step(&o, &caller, &id, Transition::Resume).await
}

async fn cancel(
    State(o): AppState,
    Auth(caller): Auth,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, Problem> {
    step(&o, &caller, &id, Transition::Cancel).await
}

async fn progress(
    State(o): AppState,
    Auth(caller): Auth,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, Problem> {
    Ok(Json(o.progress(&caller, &id).await?))
}

/// Server-sent events: a `progress` event whenever the progress changes (checked
/// every half second), ending after the campaign reaches a final state.
async fn events(
    State(o): AppState,
    Auth(caller): Auth,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, Problem> {
    use axum::response::sse::{Event, KeepAlive, Sse};
    // Unknown campaigns and callers without access are answered before streaming.
    o.progress(&caller, &id).await?;
    let stream = futures::stream::unfold(
        (o, caller, id, None::<crate::campaigns::Progress>, false),
        |(o, caller, id, last, done)| async move {
            if done {
                return None;
            }
            loop {
                let Ok(now) = o.progress(&caller, &id).await else { return None };
                if last.as_ref() != Some(&now) {
                    let finished = matches!(
                        now.state,
                        crate::campaign::CampaignState::Completed
                            | crate::campaign::CampaignState::Cancelled
                    );
                    let event =
                        Event::default().event("progress").json_data(&now).unwrap_or_default();
                    return Some((
                        Ok::<_, std::convert::Infallible>(event),
                        (o, caller, id, Some(now), finished),
                    ));
                }
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
        },
    );
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

//! The clinic's access log, readable by its owner. (The audit issue hash-chains it and adds
//! encrypted client-side details.)

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use optovault_shared::wire::{AccessEventPage, DocumentGenerated, Role};
use serde::Deserialize;
use uuid::Uuid;

use crate::clinics::{clinic_event, require_member};
use crate::error::{ApiError, ApiResult};
use crate::http::{ApiJson, ApiPath, ApiQuery};
use crate::session::Authenticated;
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/clinics/{clinic_id}/access-events", get(list))
        .route(
            "/api/clinics/{clinic_id}/documents",
            post(document_generated),
        )
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// Sequence number of the last event already seen (0 for the start).
    pub since: Option<u64>,
    /// Page size, 1 to 1000 (default 200).
    pub limit: Option<u32>,
}

#[utoipa::path(get, path = "/api/clinics/{clinic_id}/access-events", params(("clinic_id" = Uuid, Path), EventsQuery),
    responses((status = 200, body = AccessEventPage), (status = 403, body = optovault_shared::wire::ApiErrorBody),
    (status = 404, body = optovault_shared::wire::ApiErrorBody)), tag = "events")]
pub async fn list(
    State(state): State<AppState>,
    auth: Authenticated,
    ApiPath(clinic_id): ApiPath<Uuid>,
    ApiQuery(q): ApiQuery<EventsQuery>,
) -> ApiResult<Json<AccessEventPage>> {
    let limit = match q.limit {
        None => 200,
        Some(n) if (1..=1000).contains(&n) => n as usize,
        Some(_) => {
            return Err(ApiError::bad_request(
                "invalid_limit",
                "limit must be between 1 and 1000",
            ))
        }
    };
    let member = require_member(&state, &auth, clinic_id).await?;
    if member.role != Role::Owner {
        return Err(ApiError::forbidden(
            "Only the clinic owner reads the access log.",
        ));
    }
    let since = q.since.unwrap_or(0);
    let events = state.store.events(Some(clinic_id), since, limit).await?;
    let cursor = events.last().map(|e| e.seq).unwrap_or(since);
    let more = events.len() == limit;
    Ok(Json(AccessEventPage {
        events,
        cursor,
        more,
    }))
}

/// Logs that a member's browser made a document from a chart (a printed prescription, a referral
/// letter, a FHIR export, the reminder list): durable before the answer, so the client prints or
/// downloads only what is on record.
#[utoipa::path(post, path = "/api/clinics/{clinic_id}/documents", params(("clinic_id" = Uuid, Path)),
    request_body = DocumentGenerated, responses((status = 204), (status = 403, body = optovault_shared::wire::ApiErrorBody),
    (status = 404, body = optovault_shared::wire::ApiErrorBody)), tag = "events")]
pub async fn document_generated(
    State(state): State<AppState>,
    auth: Authenticated,
    ApiPath(clinic_id): ApiPath<Uuid>,
    ApiJson(req): ApiJson<DocumentGenerated>,
) -> ApiResult<StatusCode> {
    require_member(&state, &auth, clinic_id).await?;
    state
        .store
        .append_event(
            clinic_event(&auth, clinic_id, req.document.action(), req.chart_id, 1),
            true,
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

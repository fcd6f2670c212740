//! The encrypted record store and change feed of a clinic. The server checks envelope headers
//! (ids, versions, author, compartment, sizes) and roles; it cannot open a ciphertext.

use std::collections::HashSet;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use optovault_shared::limits;
use optovault_shared::wire::{
    BatchWriteRequest, BatchWriteResponse, ChangeHeader, ChangeHeaderPage, ChangesPage,
    ReadRecordsRequest, ReadRecordsResponse, RecordPage, RecordWrite, ReportedEvent, StoredRecord,
    WriteResult,
};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use uuid::Uuid;

use crate::charts::ChartAcl;
use crate::clinics::{clinic_event, require_member};
use crate::error::{ApiError, ApiResult};
use crate::http::{ApiJson, ApiPath, ApiQuery};
use crate::session::Authenticated;
use crate::store::{MemberRow, RecordRow, RecordWriteRow, StoreError, WriteGuard};
use crate::{now, AppState};

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/clinics/{clinic_id}/records",
            get(list).post(batch_write),
        )
        .route(
            "/api/clinics/{clinic_id}/records/{record_id}",
            put(write_one).get(show),
        )
        .route("/api/clinics/{clinic_id}/records/read", post(read_many))
        .route(
            "/api/clinics/{clinic_id}/records/{record_id}/versions",
            get(versions),
        )
        .route("/api/clinics/{clinic_id}/changes", get(changes))
        .route(
            "/api/clinics/{clinic_id}/change-headers",
            get(change_headers),
        )
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Return records with ids after this one.
    pub after: Option<Uuid>,
    /// Page size, 1 to 1000 (default 100).
    pub limit: Option<u32>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ChangesQuery {
    /// The cursor of the previous page (0 for a first sync).
    pub since: Option<u64>,
    /// Page size, 1 to 1000 (default 500).
    pub limit: Option<u32>,
}

fn page_limit(limit: Option<u32>, default: usize) -> ApiResult<usize> {
    match limit {
        None => Ok(default),
        Some(n) if n >= 1 && n as usize <= limits::MAX_PAGE => Ok(n as usize),
        Some(_) => Err(ApiError::bad_request(
            "invalid_limit",
            format!("limit must be between 1 and {}", limits::MAX_PAGE),
        )),
    }
}

/// Validates one write against the caller and turns it into a store row.
/// The checks every write gets whatever key it uses: structure, version arithmetic, author,
/// role; turns it into a store row.
pub fn check_write_shape(w: RecordWrite, member: &MemberRow) -> ApiResult<RecordWriteRow> {
    let env = &w.envelope;
    env.check_structure()
        .map_err(|e| ApiError::bad_request("invalid_envelope", e.to_string()))?;
    if env.version != w.expected_version.saturating_add(1) {
        return Err(ApiError::bad_request(
            "invalid_version",
            "The envelope's version must be expected_version + 1.",
        ));
    }
    if env.author != member.account_id {
        return Err(ApiError::bad_request(
            "invalid_author",
            "The envelope's author must be you.",
        ));
    }
    if env.record_id == member.clinic_id {
        return Err(ApiError::bad_request(
            "invalid_envelope",
            "A record cannot take the clinic's own id.",
        ));
    }
    if !member.role.grants(env.compartment) {
        return Err(ApiError::forbidden(
            "Your role does not grant this compartment.",
        ));
    }
    Ok(RecordWriteRow {
        record_id: env.record_id,
        chart_id: env.chart_id,
        expected_version: w.expected_version,
        compartment: env.compartment,
        envelope: serde_json::to_vec(env).expect("envelope serialises"),
        guard: Some(WriteGuard {
            author: env.author,
            sealed_epoch: env.epoch,
        }),
        deleted: env.deleted,
    })
}

/// Validates one write against the caller: its shape, then that it is sealed under the current
/// key of its chart (the chart's own key for a restricted chart, which only its care team may
/// write, else the clinic's key of the current epoch).
pub fn check_write(
    w: RecordWrite,
    member: &MemberRow,
    key_epoch: u32,
    acl: &ChartAcl,
) -> ApiResult<RecordWriteRow> {
    let (chart_id, epoch, key_id, compartment) = (
        w.envelope.chart_id,
        w.envelope.epoch,
        w.envelope.key_id,
        w.envelope.compartment,
    );
    let (want_chart, want_epoch) = match acl.get(&chart_id) {
        Some(chart) if !chart.care_team.contains(&member.account_id) => {
            return Err(ApiError::new(
                axum::http::StatusCode::FORBIDDEN,
                "restricted_chart",
                "This chart is restricted to its care team.",
            ))
        }
        Some(chart) => (Some(chart_id), chart.key_epoch),
        None => (None, key_epoch),
    };
    let row = check_write_shape(w, member)?;
    if epoch != want_epoch {
        return Err(ApiError::new(
            axum::http::StatusCode::CONFLICT,
            "stale_key_epoch",
            format!(
                "The keys were rotated: seal with epoch {want_epoch}, not {epoch}. Reload the clinic."
            ),
        ));
    }
    if !member.wrapped_keys.iter().any(|k| {
        k.key_id == key_id
            && k.compartment == compartment
            && k.epoch == epoch
            && k.chart_id == want_chart
    }) {
        return Err(ApiError::bad_request(
            "unknown_key",
            "The envelope names a key you do not hold for this chart, compartment and epoch.",
        ));
    }
    Ok(row)
}

/// Ids of the current records of a chart (a scan of the clinic's feed: restricting a chart is
/// rare; an index by chart can replace this when clinics grow).
pub async fn chart_record_ids(
    state: &AppState,
    clinic_id: Uuid,
    chart_id: Uuid,
) -> ApiResult<std::collections::BTreeSet<Uuid>> {
    let mut out = std::collections::BTreeSet::new();
    let mut since = 0;
    loop {
        let (rows, _) = state
            .store
            .changes(clinic_id, since, limits::MAX_PAGE)
            .await?;
        let Some(last) = rows.last() else { break };
        since = last.seq;
        out.extend(
            rows.iter()
                .filter(|r| r.chart_id == chart_id)
                .map(|r| r.record_id),
        );
    }
    Ok(out)
}

async fn write(
    state: &AppState,
    auth: &Authenticated,
    clinic_id: Uuid,
    writes: Vec<RecordWrite>,
    report: Option<ReportedEvent>,
) -> ApiResult<Vec<WriteResult>> {
    let member = require_member(state, auth, clinic_id).await?;
    if writes.is_empty() || writes.len() > limits::MAX_BATCH {
        return Err(ApiError::bad_request(
            "invalid_batch",
            format!("A batch holds 1 to {} writes.", limits::MAX_BATCH),
        ));
    }
    let key_epoch = state
        .store
        .roster_head(clinic_id)
        .await?
        .ok_or(StoreError::Corrupt("roster_heads"))?
        .key_epoch;
    let acl = ChartAcl::load(state, clinic_id).await?;
    let mut ids = HashSet::new();
    let rows = writes
        .into_iter()
        .map(|w| {
            if !ids.insert(w.envelope.record_id) {
                return Err(ApiError::bad_request(
                    "invalid_batch",
                    "A record appears twice in one batch.",
                ));
            }
            check_write(w, &member, key_epoch, &acl)
        })
        .collect::<ApiResult<Vec<_>>>()?;
    let target = (rows.len() == 1).then(|| rows[0].record_id);
    // A batch of tombstones only is a deletion; the server sees the flag, not the content.
    let action = if rows.iter().all(|r| r.deleted) {
        "records_deleted"
    } else {
        "records_written"
    };
    let event = clinic_event(auth, clinic_id, action, target, rows.len() as u32);
    let mut events = vec![event];
    if let Some(r) = report {
        events.push(
            crate::audit::reported_entry(
                state,
                auth,
                clinic_id,
                r.action.action(),
                r.target,
                r.detail,
            )
            .await?,
        );
    }
    let out = state
        .store
        .write_records(clinic_id, rows, now(), events)
        .await
        .map_err(|e| match e {
            // A rotation or membership change committed between the checks above and this write.
            StoreError::Conflict(what) if what == "keys rotated" => ApiError::new(
                axum::http::StatusCode::CONFLICT,
                "stale_key_epoch",
                "The keys were rotated while you wrote; reload the clinic and write again.",
            ),
            StoreError::Conflict(what) => ApiError::new(
                axum::http::StatusCode::CONFLICT,
                "membership_changed",
                format!("{what}; nothing was written."),
            ),
            e => e.into(),
        })?;
    Ok(out
        .into_iter()
        .map(|o| WriteResult {
            record_id: o.record_id,
            version: o.version,
            seq: o.seq,
        })
        .collect())
}

#[utoipa::path(post, path = "/api/clinics/{clinic_id}/records", params(("clinic_id" = Uuid, Path)),
    request_body = BatchWriteRequest,
    responses((status = 200, body = BatchWriteResponse), (status = 400, body = optovault_shared::wire::ApiErrorBody),
    (status = 404, body = optovault_shared::wire::ApiErrorBody), (status = 409, body = optovault_shared::wire::ApiErrorBody)), tag = "records")]
pub async fn batch_write(
    State(state): State<AppState>,
    auth: Authenticated,
    ApiPath(clinic_id): ApiPath<Uuid>,
    ApiJson(req): ApiJson<BatchWriteRequest>,
) -> ApiResult<Json<BatchWriteResponse>> {
    let results = write(&state, &auth, clinic_id, req.writes, req.report).await?;
    Ok(Json(BatchWriteResponse { results }))
}

#[utoipa::path(put, path = "/api/clinics/{clinic_id}/records/{record_id}",
    params(("clinic_id" = Uuid, Path), ("record_id" = Uuid, Path)), request_body = RecordWrite,
    responses((status = 200, body = WriteResult), (status = 400, body = optovault_shared::wire::ApiErrorBody),
    (status = 404, body = optovault_shared::wire::ApiErrorBody), (status = 409, body = optovault_shared::wire::ApiErrorBody)), tag = "records")]
pub async fn write_one(
    State(state): State<AppState>,
    auth: Authenticated,
    ApiPath((clinic_id, record_id)): ApiPath<(Uuid, Uuid)>,
    ApiJson(req): ApiJson<RecordWrite>,
) -> ApiResult<Json<WriteResult>> {
    if req.envelope.record_id != record_id {
        return Err(ApiError::bad_request(
            "invalid_envelope",
            "The envelope's record id differs from the URL's.",
        ));
    }
    let mut results = write(&state, &auth, clinic_id, vec![req], None).await?;
    results
        .pop()
        .map(Json)
        .ok_or_else(|| ApiError::Store(StoreError::Backend("write returned no result".into())))
}

/// Whether a member may be sent a stored record: its role grants the compartment and, for a
/// restricted chart, it is on the care team. Every read path (one record, listing, feed, headers,
/// reads by id) filters with this one rule.
fn readable(member: &MemberRow, acl: &ChartAcl, row: &RecordRow) -> bool {
    member.role.grants(row.compartment) && acl.allows(&row.chart_id, &member.account_id)
}

/// A stored record serialised without re-encoding its envelope (stored as canonical JSON).
#[derive(Serialize)]
struct RawStored<'a> {
    seq: u64,
    updated_at: i64,
    envelope: &'a RawValue,
}

fn raw(row: &RecordRow) -> ApiResult<RawStored<'_>> {
    Ok(RawStored {
        seq: row.seq,
        updated_at: row.updated_at,
        envelope: serde_json::from_slice(&row.envelope).map_err(|_| StoreError::Corrupt("feed"))?,
    })
}

fn json_response(body: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

#[utoipa::path(get, path = "/api/clinics/{clinic_id}/records/{record_id}",
    params(("clinic_id" = Uuid, Path), ("record_id" = Uuid, Path)),
    responses((status = 200, body = StoredRecord), (status = 403, body = optovault_shared::wire::ApiErrorBody),
    (status = 404, body = optovault_shared::wire::ApiErrorBody)), tag = "records")]
pub async fn show(
    State(state): State<AppState>,
    auth: Authenticated,
    ApiPath((clinic_id, record_id)): ApiPath<(Uuid, Uuid)>,
) -> ApiResult<Response> {
    let row = readable_row(&state, &auth, clinic_id, record_id).await?;
    state
        .store
        .append_event(
            clinic_event(&auth, clinic_id, "records_read", Some(record_id), 1),
            false,
        )
        .await?;
    Ok(json_response(
        serde_json::to_vec(&raw(&row)?).expect("serialises"),
    ))
}

/// One stored record the caller may read, or why not: 404 when it does not exist, 403 when its
/// chart is restricted without the caller or the role does not grant its compartment.
async fn readable_row(
    state: &AppState,
    auth: &Authenticated,
    clinic_id: Uuid,
    record_id: Uuid,
) -> ApiResult<RecordRow> {
    let member = require_member(state, auth, clinic_id).await?;
    let row = state
        .store
        .record(clinic_id, record_id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    if !ChartAcl::load(state, clinic_id)
        .await?
        .allows(&row.chart_id, &auth.account_id)
    {
        return Err(ApiError::new(
            axum::http::StatusCode::FORBIDDEN,
            "restricted_chart",
            "This chart is restricted to its care team.",
        ));
    }
    if !member.role.grants(row.compartment) {
        return Err(ApiError::forbidden(
            "Your role does not grant this record's compartment.",
        ));
    }
    Ok(row)
}

#[derive(Serialize)]
struct RawHistory<'a> {
    versions: Vec<RawStored<'a>>,
}

/// Every version of a record, oldest first, the current one last: each as its author sealed and
/// signed it, so the browser shows who wrote what and can restore an old version as a new one.
#[utoipa::path(get, path = "/api/clinics/{clinic_id}/records/{record_id}/versions",
    params(("clinic_id" = Uuid, Path), ("record_id" = Uuid, Path)),
    responses((status = 200, body = optovault_shared::wire::RecordHistory), (status = 403, body = optovault_shared::wire::ApiErrorBody),
    (status = 404, body = optovault_shared::wire::ApiErrorBody)), tag = "records")]
pub async fn versions(
    State(state): State<AppState>,
    auth: Authenticated,
    ApiPath((clinic_id, record_id)): ApiPath<(Uuid, Uuid)>,
) -> ApiResult<Response> {
    let current = readable_row(&state, &auth, clinic_id, record_id).await?;
    let mut rows = state.store.record_versions(clinic_id, record_id).await?;
    rows.push(current);
    state
        .store
        .append_event(
            clinic_event(
                &auth,
                clinic_id,
                "record_history_read",
                Some(record_id),
                rows.len() as u32,
            ),
            false,
        )
        .await?;
    let body = RawHistory {
        versions: rows.iter().map(raw).collect::<ApiResult<_>>()?,
    };
    Ok(json_response(
        serde_json::to_vec(&body).expect("serialises"),
    ))
}

#[derive(Serialize)]
struct RawRecordPage<'a> {
    records: Vec<RawStored<'a>>,
    next_after: Option<Uuid>,
}

#[utoipa::path(get, path = "/api/clinics/{clinic_id}/records", params(("clinic_id" = Uuid, Path), ListQuery),
    responses((status = 200, body = RecordPage), (status = 404, body = optovault_shared::wire::ApiErrorBody)), tag = "records")]
pub async fn list(
    State(state): State<AppState>,
    auth: Authenticated,
    ApiPath(clinic_id): ApiPath<Uuid>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Response> {
    let limit = page_limit(q.limit, 100)?;
    let member = require_member(&state, &auth, clinic_id).await?;
    let acl = ChartAcl::load(&state, clinic_id).await?;
    let rows = state.store.records(clinic_id, q.after, limit).await?;
    let next_after = (rows.len() == limit)
        .then(|| rows.last().map(|r| r.record_id))
        .flatten();
    let visible: Vec<&RecordRow> = rows.iter().filter(|r| readable(&member, &acl, r)).collect();
    state
        .store
        .append_event(
            clinic_event(&auth, clinic_id, "records_read", None, visible.len() as u32),
            false,
        )
        .await?;
    let page = RawRecordPage {
        records: visible.into_iter().map(raw).collect::<ApiResult<_>>()?,
        next_after,
    };
    Ok(json_response(
        serde_json::to_vec(&page).expect("serialises"),
    ))
}

#[derive(Serialize)]
struct RawRecords<'a> {
    records: Vec<RawStored<'a>>,
}

/// The access event of a read of several records: `chart_read` naming the chart when they all
/// belong to one patient's chart (a chart being opened), else `records_read` with the count.
fn read_event(
    auth: &Authenticated,
    clinic_id: Uuid,
    rows: &[&RecordRow],
) -> crate::store::EventDraft {
    let charts: HashSet<Uuid> = rows.iter().map(|r| r.chart_id).collect();
    match (charts.len(), charts.iter().next()) {
        (1, Some(chart)) if *chart != clinic_id => clinic_event(
            auth,
            clinic_id,
            "chart_read",
            Some(*chart),
            rows.len() as u32,
        ),
        _ => clinic_event(auth, clinic_id, "records_read", None, rows.len() as u32),
    }
}

/// Several records by id, in the order asked; ids that do not exist, or that the caller's role
/// or a chart restriction keeps from them, are left out (the caller learns nothing more than from
/// the change feed, which leaves out the same records).
#[utoipa::path(post, path = "/api/clinics/{clinic_id}/records/read", params(("clinic_id" = Uuid, Path)),
    request_body = ReadRecordsRequest,
    responses((status = 200, body = ReadRecordsResponse), (status = 400, body = optovault_shared::wire::ApiErrorBody),
    (status = 404, body = optovault_shared::wire::ApiErrorBody)), tag = "records")]
pub async fn read_many(
    State(state): State<AppState>,
    auth: Authenticated,
    ApiPath(clinic_id): ApiPath<Uuid>,
    ApiJson(req): ApiJson<ReadRecordsRequest>,
) -> ApiResult<Response> {
    if req.record_ids.is_empty() || req.record_ids.len() > limits::MAX_PAGE {
        return Err(ApiError::bad_request(
            "invalid_batch",
            format!("Ask for 1 to {} records at a time.", limits::MAX_PAGE),
        ));
    }
    let member = require_member(&state, &auth, clinic_id).await?;
    let acl = ChartAcl::load(&state, clinic_id).await?;
    let mut seen = HashSet::new();
    let mut rows = Vec::new();
    for id in req.record_ids {
        if !seen.insert(id) {
            continue;
        }
        if let Some(row) = state.store.record(clinic_id, id).await? {
            rows.push(row);
        }
    }
    let visible: Vec<&RecordRow> = rows.iter().filter(|r| readable(&member, &acl, r)).collect();
    if !visible.is_empty() {
        state
            .store
            .append_event(read_event(&auth, clinic_id, &visible), false)
            .await?;
    }
    let body = RawRecords {
        records: visible.into_iter().map(raw).collect::<ApiResult<_>>()?,
    };
    Ok(json_response(
        serde_json::to_vec(&body).expect("serialises"),
    ))
}

/// The change feed without ciphertexts: what changed, for a client that fetches the records it
/// needs now with `records/read` (a clinic opens from its patient index and loads a chart's
/// clinical records when the chart is opened). Paged and filtered exactly like `changes`; no
/// ciphertext is sent, so no read event is recorded.
#[utoipa::path(get, path = "/api/clinics/{clinic_id}/change-headers", params(("clinic_id" = Uuid, Path), ChangesQuery),
    responses((status = 200, body = ChangeHeaderPage), (status = 404, body = optovault_shared::wire::ApiErrorBody)), tag = "records")]
pub async fn change_headers(
    State(state): State<AppState>,
    auth: Authenticated,
    ApiPath(clinic_id): ApiPath<Uuid>,
    ApiQuery(q): ApiQuery<ChangesQuery>,
) -> ApiResult<Json<ChangeHeaderPage>> {
    let limit = page_limit(q.limit, limits::MAX_PAGE)?;
    let since = q.since.unwrap_or(0);
    let member = require_member(&state, &auth, clinic_id).await?;
    let acl = ChartAcl::load(&state, clinic_id).await?;
    let (rows, head) = state.store.changes(clinic_id, since, limit).await?;
    let cursor = rows.last().map(|r| r.seq).unwrap_or(since);
    let more = rows.len() == limit && cursor < head;
    let changes = rows
        .iter()
        .filter(|r| readable(&member, &acl, r))
        .map(|r| ChangeHeader {
            seq: r.seq,
            record_id: r.record_id,
            chart_id: r.chart_id,
            version: r.version,
            compartment: r.compartment,
        })
        .collect();
    Ok(Json(ChangeHeaderPage {
        changes,
        cursor,
        head,
        more,
    }))
}

#[derive(Serialize)]
struct RawChangesPage<'a> {
    changes: Vec<RawStored<'a>>,
    cursor: u64,
    head: u64,
    more: bool,
}

/// Records changed after `since`. The cursor advances past records the caller's role may not
/// see, so paging always terminates; `head` lets a client draw progress and notice a server that
/// went backwards (head below its own cursor).
#[utoipa::path(get, path = "/api/clinics/{clinic_id}/changes", params(("clinic_id" = Uuid, Path), ChangesQuery),
    responses((status = 200, body = ChangesPage), (status = 404, body = optovault_shared::wire::ApiErrorBody)), tag = "records")]
pub async fn changes(
    State(state): State<AppState>,
    auth: Authenticated,
    ApiPath(clinic_id): ApiPath<Uuid>,
    ApiQuery(q): ApiQuery<ChangesQuery>,
) -> ApiResult<Response> {
    let limit = page_limit(q.limit, 500)?;
    let since = q.since.unwrap_or(0);
    let member = require_member(&state, &auth, clinic_id).await?;
    let acl = ChartAcl::load(&state, clinic_id).await?;
    let (rows, head) = state.store.changes(clinic_id, since, limit).await?;
    let cursor = rows.last().map(|r| r.seq).unwrap_or(since);
    let more = rows.len() == limit && cursor < head;
    let visible: Vec<&RecordRow> = rows.iter().filter(|r| readable(&member, &acl, r)).collect();
    if !visible.is_empty() {
        state
            .store
            .append_event(
                clinic_event(&auth, clinic_id, "records_read", None, visible.len() as u32),
                false,
            )
            .await?;
    }
    let page = RawChangesPage {
        changes: visible.into_iter().map(raw).collect::<ApiResult<_>>()?,
        cursor,
        head,
        more,
    };
    Ok(json_response(
        serde_json::to_vec(&page).expect("serialises"),
    ))
}

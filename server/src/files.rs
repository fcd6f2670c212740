//! Encrypted files (fundus photos, OCT scans, visual fields, scanned consents). The browser seals
//! a file in chunks (each chunk AES-256-GCM with its index and a final flag in the associated
//! data); the server stores the chunk ciphertexts as it gets them and enforces who may upload and
//! download them, with the same rules as records: membership, the role's compartments,
//! restricted charts, the current key epoch. The file's name and metadata live in an encrypted
//! record the client writes; the server never sees them.
//!
//! An upload is started (`POST …/files`), its chunks are PUT in any order and may be re-sent
//! while the file is incomplete (resumable: `GET …/files/{file_id}` lists what is stored), then
//! completed (`POST …/complete`), which re-checks the uploader's membership and key epoch in the
//! same transaction, like a record write, and makes the file immutable and downloadable.
//! Incomplete uploads are swept after a day (`Store::purge_expired`). Deletion is left to the
//! audit work (deletions must stay traceable).

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use optovault_shared::wire::{ApiErrorBody, FileStatus, FileUploadStart};
use uuid::Uuid;

use crate::charts::ChartAcl;
use crate::clinics::{clinic_event, require_member};
use crate::error::{ApiError, ApiResult};
use crate::http::{ApiJson, ApiPath};
use crate::session::Authenticated;
use crate::store::{file_conflict, FileRow, MemberRow, StoreError, WriteGuard};
use crate::{now, AppState};

/// Largest plaintext of one file.
pub const MAX_FILE_BYTES: u64 = 50 * 1024 * 1024;
/// Largest plaintext of one chunk.
pub const MAX_CHUNK_PLAINTEXT: u32 = 1024 * 1024;
/// What sealing may add to a chunk: the 16-byte GCM tag plus room for a small per-chunk header
/// (e.g. a 12-byte nonce or a stream header).
pub const CHUNK_OVERHEAD: u32 = 64;
/// Largest stored (ciphertext) chunk, and the body limit of the chunk upload route.
pub const MAX_CHUNK_BYTES: u32 = MAX_CHUNK_PLAINTEXT + CHUNK_OVERHEAD;
/// Most chunks in one file (so a status lists at most this many indices, and chunks of a
/// 50 MiB file are at least 50 KiB).
pub const MAX_FILE_CHUNKS: u32 = 1024;
/// A download's access event is not repeated for the same reader and file within this time.
const READ_LOG_WINDOW_SECS: i64 = 15 * 60;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/clinics/{clinic_id}/files", post(start))
        .route("/api/clinics/{clinic_id}/files/{file_id}", get(status))
        .route(
            "/api/clinics/{clinic_id}/files/{file_id}/complete",
            post(complete),
        )
        .route(
            "/api/clinics/{clinic_id}/files/{file_id}/chunks/{index}",
            // The chunk route's own body limit (tighter than the JSON API's): it overrides the
            // application-wide `DefaultBodyLimit` set in `app`.
            get(download_chunk)
                .put(upload_chunk)
                .layer(DefaultBodyLimit::max(MAX_CHUNK_BYTES as usize)),
        )
}

/// The stored size limit of a file of `chunk_count` chunks.
fn max_total(chunk_count: u32) -> u64 {
    MAX_FILE_BYTES + u64::from(chunk_count) * u64::from(CHUNK_OVERHEAD)
}

/// Checks the declared sizes: a consistent chunking within the limits.
fn check_sizes(req: &FileUploadStart) -> ApiResult<()> {
    let invalid = |m: String| Err(ApiError::bad_request("invalid_file_size", m));
    if req.chunk_count == 0 || req.chunk_count > MAX_FILE_CHUNKS {
        return invalid(format!(
            "chunk_count must be between 1 and {MAX_FILE_CHUNKS}."
        ));
    }
    if req.chunk_size == 0 || req.chunk_size > MAX_CHUNK_BYTES {
        return invalid(format!(
            "chunk_size must be between 1 and {MAX_CHUNK_BYTES} bytes."
        ));
    }
    if req.total_size == 0 {
        return invalid("A file cannot be empty.".into());
    }
    if req.total_size > max_total(req.chunk_count) {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "file_too_large",
            format!("A file holds at most {MAX_FILE_BYTES} bytes before encryption."),
        ));
    }
    if req.total_size.div_ceil(u64::from(req.chunk_size)) != u64::from(req.chunk_count) {
        return invalid(
            "chunk_count must be ceil(total_size / chunk_size): every chunk but the last is \
             exactly chunk_size bytes."
                .into(),
        );
    }
    Ok(())
}

fn restricted() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "restricted_chart",
        "This chart is restricted to its care team.",
    )
}

fn not_uploader() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "not_uploader",
        "Only the member who started this upload may add to it or complete it.",
    )
}

fn file_complete() -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "file_complete",
        "This file is complete and can no longer change.",
    )
}

/// Whether `member` may read or write the file's compartment and chart.
fn authorise(member: &MemberRow, acl: &ChartAcl, file: &FileRow) -> ApiResult<()> {
    if !acl.allows(&file.chart_id, &member.account_id) {
        return Err(restricted());
    }
    if !member.role.grants(file.compartment) {
        return Err(ApiError::forbidden(
            "Your role does not grant this file's compartment.",
        ));
    }
    Ok(())
}

/// Turns a store refusal of a file operation into the API's error.
fn store_error(e: StoreError) -> ApiError {
    let StoreError::Conflict(what) = &e else {
        return e.into();
    };
    match what.as_str() {
        file_conflict::EXISTS => ApiError::new(
            StatusCode::CONFLICT,
            "file_exists",
            "A file with this id exists with other parameters; start with a new id.",
        ),
        file_conflict::NO_SUCH_FILE => ApiError::not_found(),
        file_conflict::COMPLETE => file_complete(),
        file_conflict::NOT_UPLOADER => not_uploader(),
        file_conflict::INCOMPLETE => ApiError::new(
            StatusCode::CONFLICT,
            "file_incomplete",
            "Chunks are missing; GET the file's status for the ones to send.",
        ),
        file_conflict::BAD_CHUNK => ApiError::bad_request(
            "invalid_chunk_size",
            "The chunk's index or length does not match the file.",
        ),
        "keys rotated" => ApiError::new(
            StatusCode::CONFLICT,
            "stale_key_epoch",
            "The keys were rotated during the upload; reload the clinic and upload the file \
             again under the new keys.",
        ),
        _ => ApiError::new(
            StatusCode::CONFLICT,
            "membership_changed",
            format!("{what}; nothing was written."),
        ),
    }
}

async fn load(state: &AppState, clinic_id: Uuid, file_id: Uuid) -> ApiResult<FileRow> {
    state
        .store
        .file(clinic_id, file_id)
        .await?
        .ok_or_else(ApiError::not_found)
}

async fn file_status(state: &AppState, clinic_id: Uuid, row: FileRow) -> ApiResult<FileStatus> {
    let received = state
        .store
        .file_chunk_indices(clinic_id, row.file_id)
        .await?;
    Ok(row.status(received))
}

/// Starts an upload, or answers a retried start (same id, parameters and uploader) with the
/// stored status (200 instead of 201).
#[utoipa::path(post, path = "/api/clinics/{clinic_id}/files", operation_id = "start_file_upload", params(("clinic_id" = Uuid, Path)),
    request_body = FileUploadStart,
    responses((status = 201, body = FileStatus, description = "upload started"),
    (status = 200, body = FileStatus, description = "the same upload was started before (a retry)"),
    (status = 400, body = ApiErrorBody), (status = 403, body = ApiErrorBody),
    (status = 404, body = ApiErrorBody), (status = 409, body = ApiErrorBody),
    (status = 413, body = ApiErrorBody)), tag = "files")]
pub async fn start(
    State(state): State<AppState>,
    auth: Authenticated,
    ApiPath(clinic_id): ApiPath<Uuid>,
    ApiJson(req): ApiJson<FileUploadStart>,
) -> ApiResult<Response> {
    let member = require_member(&state, &auth, clinic_id).await?;
    if req.file_id.is_nil() || req.file_id.get_version_num() != 4 || req.file_id == clinic_id {
        return Err(ApiError::bad_request(
            "invalid_file_id",
            "File ids must be random UUIDv4.",
        ));
    }
    if req.chart_id.is_nil() {
        return Err(ApiError::bad_request(
            "invalid_chart_id",
            "A file belongs to a chart.",
        ));
    }
    check_sizes(&req)?;
    if !member.role.grants(req.compartment) {
        return Err(ApiError::forbidden(
            "Your role does not grant this compartment.",
        ));
    }
    // The same key rules as a record write: a restricted chart's files are sealed under the
    // chart's own key, which only its care team holds; others under the clinic's current key.
    let acl = ChartAcl::load(&state, clinic_id).await?;
    let (want_chart, want_epoch) = match acl.get(&req.chart_id) {
        Some(chart) if !chart.care_team.contains(&auth.account_id) => return Err(restricted()),
        Some(chart) => (Some(req.chart_id), chart.key_epoch),
        None => {
            let head = state
                .store
                .roster_head(clinic_id)
                .await?
                .ok_or(StoreError::Corrupt("roster_heads"))?;
            (None, head.key_epoch)
        }
    };
    if req.epoch != want_epoch {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "stale_key_epoch",
            format!(
                "The keys were rotated: seal with epoch {want_epoch}, not {}. Reload the clinic.",
                req.epoch
            ),
        ));
    }
    if !member.wrapped_keys.iter().any(|k| {
        k.key_id == req.key_id
            && k.compartment == req.compartment
            && k.epoch == req.epoch
            && k.chart_id == want_chart
    }) {
        return Err(ApiError::bad_request(
            "unknown_key",
            "The file names a key you do not hold for this chart, compartment and epoch.",
        ));
    }
    let row = FileRow {
        file_id: req.file_id,
        chart_id: req.chart_id,
        compartment: req.compartment,
        key_id: req.key_id,
        epoch: req.epoch,
        chunk_count: req.chunk_count,
        chunk_size: req.chunk_size,
        total_size: req.total_size,
        uploaded_by: auth.account_id,
        created_at: now(),
        completed_at: None,
    };
    let guard = WriteGuard {
        author: auth.account_id,
        sealed_epoch: req.epoch,
    };
    let (row, created) = state
        .store
        .create_file(clinic_id, row, guard)
        .await
        .map_err(store_error)?;
    let status = file_status(&state, clinic_id, row).await?;
    let code = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((code, Json(status)).into_response())
}

/// The file's parameters and stored chunks (to resume an upload), for members who may read it.
#[utoipa::path(get, path = "/api/clinics/{clinic_id}/files/{file_id}", operation_id = "file_status",
    params(("clinic_id" = Uuid, Path), ("file_id" = Uuid, Path)),
    responses((status = 200, body = FileStatus), (status = 400, body = ApiErrorBody),
    (status = 403, body = ApiErrorBody), (status = 404, body = ApiErrorBody)), tag = "files")]
pub async fn status(
    State(state): State<AppState>,
    auth: Authenticated,
    ApiPath((clinic_id, file_id)): ApiPath<(Uuid, Uuid)>,
) -> ApiResult<Json<FileStatus>> {
    let member = require_member(&state, &auth, clinic_id).await?;
    let row = load(&state, clinic_id, file_id).await?;
    authorise(&member, &ChartAcl::load(&state, clinic_id).await?, &row)?;
    Ok(Json(file_status(&state, clinic_id, row).await?))
}

/// A raw chunk body: `application/octet-stream`, within the route's body limit.
pub struct ChunkBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for ChunkBody {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let octets = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/octet-stream"));
        if !octets {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "Send chunks as application/octet-stream.",
            ));
        }
        match Bytes::from_request(req, state).await {
            Ok(b) => Ok(ChunkBody(b)),
            Err(r) if r.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "chunk_too_large",
                format!("A chunk holds at most {MAX_CHUNK_BYTES} bytes."),
            )),
            Err(r) => Err(ApiError::new(r.status(), "invalid_body", r.body_text())),
        }
    }
}

/// The binary body of a chunk, for the OpenAPI document.
#[derive(utoipa::ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct ChunkBytes(pub Vec<u8>);

fn invalid_index(row: &FileRow) -> ApiError {
    ApiError::bad_request(
        "invalid_chunk_index",
        format!(
            "This file has chunks 0 to {}.",
            row.chunk_count.saturating_sub(1)
        ),
    )
}

/// Stores one chunk of an incomplete upload (or replaces it: re-sending is safe). Every chunk
/// but the last is exactly `chunk_size` bytes; the last holds the rest of `total_size`. Only
/// the uploader may send chunks. Durable before the 204.
#[utoipa::path(put, path = "/api/clinics/{clinic_id}/files/{file_id}/chunks/{index}", operation_id = "upload_file_chunk",
    params(("clinic_id" = Uuid, Path), ("file_id" = Uuid, Path), ("index" = u32, Path)),
    request_body(content = ChunkBytes, content_type = "application/octet-stream",
        description = "The chunk's ciphertext"),
    responses((status = 204, description = "stored"), (status = 400, body = ApiErrorBody),
    (status = 403, body = ApiErrorBody), (status = 404, body = ApiErrorBody),
    (status = 409, body = ApiErrorBody), (status = 413, body = ApiErrorBody),
    (status = 415, body = ApiErrorBody)), tag = "files")]
pub async fn upload_chunk(
    State(state): State<AppState>,
    auth: Authenticated,
    ApiPath((clinic_id, file_id, index)): ApiPath<(Uuid, Uuid, u32)>,
    ChunkBody(bytes): ChunkBody,
) -> ApiResult<StatusCode> {
    let member = require_member(&state, &auth, clinic_id).await?;
    let row = load(&state, clinic_id, file_id).await?;
    authorise(&member, &ChartAcl::load(&state, clinic_id).await?, &row)?;
    if row.uploaded_by != auth.account_id {
        return Err(not_uploader());
    }
    if row.is_complete() {
        return Err(file_complete());
    }
    let Some(want) = row.chunk_len(index) else {
        return Err(invalid_index(&row));
    };
    let got = bytes.len() as u64;
    if got > u64::from(row.chunk_size) {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "chunk_too_large",
            format!("This file's chunks hold at most {} bytes.", row.chunk_size),
        ));
    }
    if got != want {
        return Err(ApiError::bad_request(
            "invalid_chunk_size",
            format!("Chunk {index} of this file is exactly {want} bytes, not {got}."),
        ));
    }
    state
        .store
        .put_file_chunk(clinic_id, file_id, index, auth.account_id, bytes.to_vec())
        .await
        .map_err(store_error)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Completes an upload once every chunk is stored: the uploader's membership and key epoch are
/// re-checked in the same transaction (a rotation during the upload means 409
/// `stale_key_epoch`: upload again under the new keys). Completing twice is harmless.
#[utoipa::path(post, path = "/api/clinics/{clinic_id}/files/{file_id}/complete", operation_id = "complete_file_upload",
    params(("clinic_id" = Uuid, Path), ("file_id" = Uuid, Path)),
    responses((status = 204, description = "complete"), (status = 400, body = ApiErrorBody),
    (status = 403, body = ApiErrorBody), (status = 404, body = ApiErrorBody),
    (status = 409, body = ApiErrorBody)), tag = "files")]
pub async fn complete(
    State(state): State<AppState>,
    auth: Authenticated,
    ApiPath((clinic_id, file_id)): ApiPath<(Uuid, Uuid)>,
) -> ApiResult<StatusCode> {
    let member = require_member(&state, &auth, clinic_id).await?;
    let row = load(&state, clinic_id, file_id).await?;
    authorise(&member, &ChartAcl::load(&state, clinic_id).await?, &row)?;
    if row.uploaded_by != auth.account_id {
        return Err(not_uploader());
    }
    let guard = WriteGuard {
        author: auth.account_id,
        sealed_epoch: row.epoch,
    };
    let event = clinic_event(&auth, clinic_id, "file_uploaded", Some(file_id), 1);
    state
        .store
        .complete_file(clinic_id, file_id, guard, now(), event)
        .await
        .map_err(store_error)?;
    Ok(StatusCode::NO_CONTENT)
}

/// When each (clinic, reader, file) last had a `file_read` event, to log a download once rather
/// than once per chunk. Per process: with several server processes a download may be logged
/// more than once, never less.
static RECENT_READS: LazyLock<Mutex<HashMap<ReadKey, i64>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// (clinic, reader, file).
type ReadKey = (Uuid, Uuid, Uuid);

/// Whether fetching chunk `index` of `file_id` must log a `file_read` event: always for chunk 0
/// (a download starts there), and for any other chunk unless the same reader's read of this file
/// was logged within [`READ_LOG_WINDOW_SECS`], so skipping chunk 0 does not skip the log.
fn should_log_read(clinic_id: Uuid, reader: Uuid, file_id: Uuid, index: u32, at: i64) -> bool {
    let mut recent = RECENT_READS.lock().unwrap_or_else(|p| p.into_inner());
    if recent.len() > 10_000 {
        recent.retain(|_, t| at - *t < READ_LOG_WINDOW_SECS);
        if recent.len() > 100_000 {
            // Forgetting only means logging more often.
            recent.clear();
        }
    }
    let key = (clinic_id, reader, file_id);
    let fresh = recent
        .get(&key)
        .is_some_and(|t| at - *t < READ_LOG_WINDOW_SECS);
    if index == 0 || !fresh {
        recent.insert(key, at);
        return true;
    }
    false
}

fn forget_read(clinic_id: Uuid, reader: Uuid, file_id: Uuid) {
    let mut recent = RECENT_READS.lock().unwrap_or_else(|p| p.into_inner());
    recent.remove(&(clinic_id, reader, file_id));
}

/// One chunk of a complete file, as stored. The download is logged as a `file_read` access
/// event once per download (at chunk 0, or at the first chunk fetched if chunk 0 was skipped).
#[utoipa::path(get, path = "/api/clinics/{clinic_id}/files/{file_id}/chunks/{index}", operation_id = "download_file_chunk",
    params(("clinic_id" = Uuid, Path), ("file_id" = Uuid, Path), ("index" = u32, Path)),
    responses((status = 200, body = ChunkBytes, content_type = "application/octet-stream"),
    (status = 400, body = ApiErrorBody), (status = 403, body = ApiErrorBody),
    (status = 404, body = ApiErrorBody), (status = 409, body = ApiErrorBody)), tag = "files")]
pub async fn download_chunk(
    State(state): State<AppState>,
    auth: Authenticated,
    ApiPath((clinic_id, file_id, index)): ApiPath<(Uuid, Uuid, u32)>,
) -> ApiResult<Response> {
    let member = require_member(&state, &auth, clinic_id).await?;
    let row = load(&state, clinic_id, file_id).await?;
    authorise(&member, &ChartAcl::load(&state, clinic_id).await?, &row)?;
    if !row.is_complete() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "file_incomplete",
            "This file's upload is not complete.",
        ));
    }
    if index >= row.chunk_count {
        return Err(invalid_index(&row));
    }
    let bytes = state
        .store
        .file_chunk(clinic_id, file_id, index)
        .await?
        .ok_or(StoreError::Corrupt("file_chunks"))?;
    let at = now();
    if should_log_read(clinic_id, auth.account_id, file_id, index, at) {
        let mut event = clinic_event(&auth, clinic_id, "file_read", Some(file_id), 1);
        event.at = at;
        if let Err(e) = state.store.append_event(event, false).await {
            // Not logged, so not served: the next fetch must log again.
            forget_read(clinic_id, auth.account_id, file_id);
            return Err(e.into());
        }
    }
    Ok(([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response())
}

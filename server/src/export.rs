//! A clinic's own encrypted export, for its owners: `GET /api/clinics/{id}/export` streams the
//! clinic as stored (`optovault_shared::clinic_export`). The server decrypts nothing; the owner's
//! browser checks the file with the owner's keys.
//!
//! The snapshot is first written to an unlinked temporary file (writes wait only while the rows
//! are read, never on a slow download), then streamed from it with its length, so the browser can
//! show progress.

use std::io::{BufWriter, Seek, SeekFrom};

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use optovault_shared::clinic_export;
use tokio_util::io::ReaderStream;
use uuid::Uuid;

use crate::backup::archive::{self, Item};
use crate::clinics::clinic_event;
use crate::error::{ApiError, ApiResult};
use crate::http::ApiPath;
use crate::members::require_owner;
use crate::session::Authenticated;
use crate::{now, AppState};

pub fn router() -> Router<AppState> {
    Router::new().route("/api/clinics/{clinic_id}/export", get(export))
}

#[utoipa::path(get, path = "/api/clinics/{clinic_id}/export", params(("clinic_id" = Uuid, Path)),
    responses((status = 200, description = "The clinic's encrypted archive (application/octet-stream)", content_type = "application/octet-stream"),
        (status = 403, body = optovault_shared::wire::ApiErrorBody)), tag = "backup")]
pub async fn export(
    State(state): State<AppState>,
    auth: Authenticated,
    ApiPath(clinic_id): ApiPath<Uuid>,
) -> ApiResult<Response> {
    require_owner(&state, &auth, clinic_id).await?;
    let (store, by, at) = (state.store.clone(), auth.account_id, now());
    let made = tokio::task::spawn_blocking(move || {
        let tmp = tempfile::tempfile()?;
        let mut w =
            archive::zstd_writer(BufWriter::with_capacity(1 << 20, tmp), archive::KIND_CLINIC)?;
        store.export_clinic(clinic_id, by, at, &mut |item| match item {
            Item::Tree(name) => w.begin_tree(name),
            Item::Row(k, v) => w.row(k, v),
            Item::BlockEnd => Ok(()),
        })?;
        let (header, out) = archive::finish(w)?;
        let mut file = out.into_inner().map_err(|e| e.into_error())?;
        file.seek(SeekFrom::Start(0))?;
        Ok::<_, archive::ArchiveError>((file, header))
    })
    .await
    .map_err(|_| ApiError::internal())?;
    let (file, header) = made.map_err(|e| {
        tracing::error!(clinic = %clinic_id, error = %e, "clinic export failed");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "export_failed",
            "The export could not be made; nothing was changed.",
        )
    })?;
    let rows = u32::try_from(header.rows()).unwrap_or(u32::MAX);
    state
        .store
        .append_event(
            clinic_event(&auth, clinic_id, "clinic_exported", None, rows),
            true,
        )
        .await?;
    let length = archive::HEADER_BYTES as u64 + header.content_bytes;
    let name = clinic_export::file_name(&clinic_id, at);
    let stream = ReaderStream::with_capacity(tokio::fs::File::from_std(file), 1 << 16);
    let mut res = Response::new(Body::from_stream(stream));
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(res)
}

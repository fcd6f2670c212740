//! The clinic's audit log: reading it (owners), client-reported entries with sealed details,
//! the clinic's audit key, and owners' signed checkpoints. The entries themselves are chained by
//! the store (`append_event`), in the transaction of the action they record.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use optovault_shared::audit::{
    audit_key_signing_input, checkpoint_signing_input, detail_context, detail_signing_input,
    verify_ed25519,
};
use optovault_shared::wire::{
    AppendedEntry, AuditAnchor, AuditCheckpoint, AuditCheckpointList, AuditEntry, AuditKeySetup,
    AuditKeyShare, AuditKeyView, AuditPage, DocumentGenerated, ReportedDetail, ReportedEvent, Role,
};
use optovault_shared::{UnixTime, B64};
use serde::Deserialize;
use uuid::Uuid;

use crate::clinics::{clinic_event, require_member};
use crate::error::{ApiError, ApiResult};
use crate::http::{ApiJson, ApiPath, ApiQuery};
use crate::session::Authenticated;
use crate::store::{audit_conflict, EventDraft, MemberRow, StoreError};
use crate::AppState;

/// Largest sealed detail accepted (a detail is a line and a few field changes).
const MAX_DETAIL_BYTES: usize = 16 * 1024;
/// Most entries one page request examines when filtering.
const MAX_SCAN: usize = 20_000;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/clinics/{clinic_id}/audit", get(list))
        .route("/api/clinics/{clinic_id}/audit/events", post(report))
        .route(
            "/api/clinics/{clinic_id}/audit/key",
            get(audit_key).put(set_audit_key),
        )
        .route(
            "/api/clinics/{clinic_id}/audit/key/share",
            post(share_audit_key),
        )
        .route(
            "/api/clinics/{clinic_id}/audit/checkpoints",
            get(checkpoints).post(add_checkpoint),
        )
        .route(
            "/api/clinics/{clinic_id}/documents",
            post(document_generated),
        )
}

fn require_owner(member: &MemberRow) -> ApiResult<()> {
    if member.role != Role::Owner {
        return Err(ApiError::forbidden(
            "Only the clinic owner reads and keeps the audit log.",
        ));
    }
    Ok(())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Sequence number of the last entry already seen (0 for the start).
    pub since: Option<u64>,
    /// Page size, 1 to 1000 (default 200).
    pub limit: Option<u32>,
    /// Only entries by this member.
    pub actor: Option<Uuid>,
    /// Only entries about this chart, record, member or file.
    pub target: Option<Uuid>,
    /// Only entries of this action (e.g. `chart_read`, `payment_recorded`).
    pub action: Option<String>,
    /// Only entries at or after this time (Unix seconds).
    pub from: Option<UnixTime>,
    /// Only entries before this time (Unix seconds).
    pub to: Option<UnixTime>,
}

impl AuditQuery {
    fn matches(&self, e: &AuditEntry) -> bool {
        self.actor.is_none_or(|a| e.actor == Some(a))
            && self.target.is_none_or(|t| e.target == Some(t))
            && self.action.as_deref().is_none_or(|a| e.action == a)
            && self.from.is_none_or(|f| e.at >= f)
            && self.to.is_none_or(|t| e.at < t)
    }
}

/// A page of the clinic's audit log, optionally filtered. A filtered page examines at most
/// 20,000 entries; `cursor` says how far it got.
#[utoipa::path(get, path = "/api/clinics/{clinic_id}/audit", params(("clinic_id" = Uuid, Path), AuditQuery),
    responses((status = 200, body = AuditPage), (status = 403, body = optovault_shared::wire::ApiErrorBody),
    (status = 404, body = optovault_shared::wire::ApiErrorBody)), tag = "audit")]
pub async fn list(
    State(state): State<AppState>,
    auth: Authenticated,
    ApiPath(clinic_id): ApiPath<Uuid>,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> ApiResult<Json<AuditPage>> {
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
    require_owner(&member)?;
    let (head, _) = state.store.audit_head(Some(clinic_id)).await?;
    let mut cursor = q.since.unwrap_or(0);
    let mut entries = Vec::new();
    let mut scanned = 0;
    while entries.len() < limit && scanned < MAX_SCAN && cursor < head {
        let batch = state
            .store
            .audit_entries(Some(clinic_id), cursor, 1000)
            .await?;
        let Some(last) = batch.last() else { break };
        let last_seq = last.seq;
        for e in batch {
            scanned += 1;
            cursor = e.seq;
            if q.matches(&e) {
                entries.push(e);
                if entries.len() == limit {
                    break;
                }
            }
        }
        if cursor < last_seq {
            break;
        }
    }
    Ok(Json(AuditPage {
        entries,
        cursor,
        more: cursor < head,
        head,
    }))
}

/// Checks that the caller signed `input` with the Ed25519 key of their account (a reported
/// detail, the audit key's public half, a checkpoint): 400 `bad_signature` otherwise.
async fn signed_by_caller(
    state: &AppState,
    auth: &Authenticated,
    input: &[u8],
    signature: &[u8],
    message: &'static str,
) -> ApiResult<()> {
    let account = state
        .store
        .account(auth.account_id)
        .await?
        .ok_or(StoreError::Corrupt("accounts"))?;
    if !verify_ed25519(account.public_keys.ed25519.as_slice(), input, signature) {
        return Err(ApiError::bad_request("bad_signature", message));
    }
    Ok(())
}

/// Checks a client-reported detail and makes its entry: the clinic's current audit key, sizes,
/// and the author's signature over the detail in its context (the caller is the author). The
/// server cannot read it; it can still refuse what is not well-formed or not the caller's.
pub async fn reported_entry(
    state: &AppState,
    auth: &Authenticated,
    clinic_id: Uuid,
    action: &'static str,
    target: Option<Uuid>,
    detail: ReportedDetail,
) -> ApiResult<EventDraft> {
    let key = state.store.audit_key(clinic_id).await?.ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            "no_audit_key",
            "The clinic has no audit key yet: its owner sets one up by opening the clinic.",
        )
    })?;
    if detail.key_id != key.public.key_id {
        return Err(ApiError::bad_request(
            "unknown_audit_key",
            "The detail is sealed to a key that is not the clinic's audit key.",
        ));
    }
    if detail.enc.len() != 32
        || detail.signature.len() != 64
        || detail.ciphertext.len() > MAX_DETAIL_BYTES
    {
        return Err(ApiError::bad_request(
            "invalid_detail",
            "A sealed detail has a 32-byte key, a 64-byte signature and at most 16 KiB.",
        ));
    }
    let context = detail_context(
        clinic_id,
        detail.key_id,
        detail.event_id,
        auth.account_id,
        action,
        target,
    );
    signed_by_caller(
        state,
        auth,
        &detail_signing_input(&context, &detail),
        detail.signature.as_slice(),
        "The detail is not signed by you for this entry.",
    )
    .await?;
    let mut e = clinic_event(auth, clinic_id, action, target, 1);
    e.detail = Some(detail);
    Ok(e)
}

/// Appends a client-reported entry (what only the browser knows: a payment, a changed phone
/// number) with its sealed detail; durable before the answer.
#[utoipa::path(post, path = "/api/clinics/{clinic_id}/audit/events", params(("clinic_id" = Uuid, Path)),
    request_body = ReportedEvent, responses((status = 200, body = AppendedEntry), (status = 400, body = optovault_shared::wire::ApiErrorBody),
    (status = 404, body = optovault_shared::wire::ApiErrorBody), (status = 409, body = optovault_shared::wire::ApiErrorBody)), tag = "audit")]
pub async fn report(
    State(state): State<AppState>,
    auth: Authenticated,
    ApiPath(clinic_id): ApiPath<Uuid>,
    ApiJson(req): ApiJson<ReportedEvent>,
) -> ApiResult<Json<AppendedEntry>> {
    require_member(&state, &auth, clinic_id).await?;
    let e = reported_entry(
        &state,
        &auth,
        clinic_id,
        req.action.action(),
        req.target,
        req.detail,
    )
    .await?;
    let seq = state.store.append_event(e, true).await?;
    Ok(Json(AppendedEntry { seq }))
}

/// Logs that a member's browser made a document from a chart (a printed prescription, a referral
/// letter, a FHIR export, the reminder list), with its sealed detail when the clinic has an
/// audit key: durable before the answer, so the client prints or downloads only what is on
/// record.
#[utoipa::path(post, path = "/api/clinics/{clinic_id}/documents", params(("clinic_id" = Uuid, Path)),
    request_body = DocumentGenerated, responses((status = 204), (status = 403, body = optovault_shared::wire::ApiErrorBody),
    (status = 404, body = optovault_shared::wire::ApiErrorBody)), tag = "audit")]
pub async fn document_generated(
    State(state): State<AppState>,
    auth: Authenticated,
    ApiPath(clinic_id): ApiPath<Uuid>,
    ApiJson(req): ApiJson<DocumentGenerated>,
) -> ApiResult<StatusCode> {
    require_member(&state, &auth, clinic_id).await?;
    let action = req.document.action();
    let e = match req.detail {
        Some(d) => reported_entry(&state, &auth, clinic_id, action, req.chart_id, d).await?,
        None => clinic_event(&auth, clinic_id, action, req.chart_id, 1),
    };
    state.store.append_event(e, true).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The clinic's audit key: its signed public half for every member (none before an owner made
/// it), and the wrapped secret for an owner it was wrapped to.
#[utoipa::path(get, path = "/api/clinics/{clinic_id}/audit/key", params(("clinic_id" = Uuid, Path)),
    responses((status = 200, body = AuditKeyView), (status = 404, body = optovault_shared::wire::ApiErrorBody)), tag = "audit")]
pub async fn audit_key(
    State(state): State<AppState>,
    auth: Authenticated,
    ApiPath(clinic_id): ApiPath<Uuid>,
) -> ApiResult<Json<AuditKeyView>> {
    require_member(&state, &auth, clinic_id).await?;
    Ok(Json(match state.store.audit_key(clinic_id).await? {
        None => AuditKeyView {
            public: None,
            wrapped: None,
            wrapped_to: Vec::new(),
        },
        Some(key) => AuditKeyView {
            wrapped_to: key.wrapped.iter().map(|w| w.recipient).collect(),
            wrapped: key
                .wrapped
                .into_iter()
                .find(|w| w.recipient == auth.account_id),
            public: Some(key.public),
        },
    }))
}

/// An owner sets up the clinic's audit key once: the public half signed by them, the secret
/// wrapped to every owner.
#[utoipa::path(put, path = "/api/clinics/{clinic_id}/audit/key", params(("clinic_id" = Uuid, Path)),
    request_body = AuditKeySetup, responses((status = 204), (status = 400, body = optovault_shared::wire::ApiErrorBody),
    (status = 403, body = optovault_shared::wire::ApiErrorBody), (status = 409, body = optovault_shared::wire::ApiErrorBody)), tag = "audit")]
pub async fn set_audit_key(
    State(state): State<AppState>,
    auth: Authenticated,
    ApiPath(clinic_id): ApiPath<Uuid>,
    ApiJson(req): ApiJson<AuditKeySetup>,
) -> ApiResult<StatusCode> {
    let member = require_member(&state, &auth, clinic_id).await?;
    require_owner(&member)?;
    let p = &req.public;
    if p.clinic_id != clinic_id || p.signer != auth.account_id || p.public_key.len() != 32 {
        return Err(ApiError::bad_request(
            "invalid_audit_key",
            "The audit key must be for this clinic, signed by you, with a 32-byte public key.",
        ));
    }
    signed_by_caller(
        &state,
        &auth,
        &audit_key_signing_input(p),
        p.signature.as_slice(),
        "The audit key is not signed by you.",
    )
    .await?;
    let mut owners: Vec<Uuid> = state
        .store
        .members(clinic_id)
        .await?
        .into_iter()
        .filter(|m| m.role == Role::Owner)
        .map(|m| m.account_id)
        .collect();
    owners.sort();
    let mut recipients: Vec<Uuid> = req.wrapped.iter().map(|w| w.recipient).collect();
    recipients.sort();
    if recipients != owners || req.wrapped.iter().any(|w| w.enc.len() != 32) {
        return Err(ApiError::bad_request(
            "invalid_audit_key",
            "The audit key must be wrapped to every owner of the clinic, once each.",
        ));
    }
    let event = clinic_event(&auth, clinic_id, "audit_key_created", Some(p.key_id), 1);
    state
        .store
        .set_audit_key(clinic_id, req, event)
        .await
        .map_err(|e| match e {
            StoreError::Conflict(w) if w == audit_conflict::AUDIT_KEY_EXISTS => ApiError::new(
                StatusCode::CONFLICT,
                "audit_key_exists",
                "The clinic already has an audit key.",
            ),
            e => e.into(),
        })?;
    Ok(StatusCode::NO_CONTENT)
}

/// An owner who holds the audit key wraps it to owners who have no copy (made owner since): each
/// recipient must be a current owner without one. Logged as `audit_key_shared` per recipient.
#[utoipa::path(post, path = "/api/clinics/{clinic_id}/audit/key/share", params(("clinic_id" = Uuid, Path)),
    request_body = AuditKeyShare, responses((status = 204), (status = 400, body = optovault_shared::wire::ApiErrorBody),
    (status = 403, body = optovault_shared::wire::ApiErrorBody), (status = 409, body = optovault_shared::wire::ApiErrorBody)), tag = "audit")]
pub async fn share_audit_key(
    State(state): State<AppState>,
    auth: Authenticated,
    ApiPath(clinic_id): ApiPath<Uuid>,
    ApiJson(req): ApiJson<AuditKeyShare>,
) -> ApiResult<StatusCode> {
    let member = require_member(&state, &auth, clinic_id).await?;
    require_owner(&member)?;
    let owners: Vec<Uuid> = state
        .store
        .members(clinic_id)
        .await?
        .into_iter()
        .filter(|m| m.role == Role::Owner)
        .map(|m| m.account_id)
        .collect();
    let mut seen = std::collections::HashSet::new();
    if req.wrapped.is_empty()
        || req.wrapped.iter().any(|w| {
            !owners.contains(&w.recipient) || w.enc.len() != 32 || !seen.insert(w.recipient)
        })
    {
        return Err(ApiError::bad_request(
            "invalid_share",
            "The audit key is shared with current owners only, once each.",
        ));
    }
    let events = req
        .wrapped
        .iter()
        .map(|w| clinic_event(&auth, clinic_id, "audit_key_shared", Some(w.recipient), 1))
        .collect();
    state
        .store
        .share_audit_key(clinic_id, req.wrapped, events)
        .await
        .map_err(|e| match e {
            StoreError::Conflict(w) if w == audit_conflict::AUDIT_KEY_SHARED => ApiError::new(
                StatusCode::CONFLICT,
                "audit_key_shared",
                "One of them holds the audit key already.",
            ),
            StoreError::Conflict(w) if w == audit_conflict::NO_AUDIT_KEY => ApiError::new(
                StatusCode::CONFLICT,
                "no_audit_key",
                "The clinic has no audit key yet.",
            ),
            e => e.into(),
        })?;
    Ok(StatusCode::NO_CONTENT)
}

/// The clinic's signed checkpoints, oldest first (any member may check the log's owners signed).
#[utoipa::path(get, path = "/api/clinics/{clinic_id}/audit/checkpoints", params(("clinic_id" = Uuid, Path)),
    responses((status = 200, body = AuditCheckpointList), (status = 404, body = optovault_shared::wire::ApiErrorBody)), tag = "audit")]
pub async fn checkpoints(
    State(state): State<AppState>,
    auth: Authenticated,
    ApiPath(clinic_id): ApiPath<Uuid>,
) -> ApiResult<Json<AuditCheckpointList>> {
    require_member(&state, &auth, clinic_id).await?;
    Ok(Json(AuditCheckpointList {
        checkpoints: state.store.checkpoints(clinic_id).await?,
        pruned: state
            .store
            .audit_anchor(Some(clinic_id))
            .await?
            .map(|(seq, hash)| AuditAnchor {
                seq,
                hash: B64(hash.to_vec()),
            }),
    }))
}

/// An owner's client signs the chain head it has verified: from then on no entry up to it can
/// change unnoticed.
#[utoipa::path(post, path = "/api/clinics/{clinic_id}/audit/checkpoints", params(("clinic_id" = Uuid, Path)),
    request_body = AuditCheckpoint, responses((status = 204), (status = 400, body = optovault_shared::wire::ApiErrorBody),
    (status = 403, body = optovault_shared::wire::ApiErrorBody), (status = 409, body = optovault_shared::wire::ApiErrorBody)), tag = "audit")]
pub async fn add_checkpoint(
    State(state): State<AppState>,
    auth: Authenticated,
    ApiPath(clinic_id): ApiPath<Uuid>,
    ApiJson(cp): ApiJson<AuditCheckpoint>,
) -> ApiResult<StatusCode> {
    let member = require_member(&state, &auth, clinic_id).await?;
    require_owner(&member)?;
    if cp.clinic_id != clinic_id || cp.signer != auth.account_id || cp.head_hash.len() != 32 {
        return Err(ApiError::bad_request(
            "invalid_checkpoint",
            "A checkpoint is for this clinic, signed by you, over a 32-byte hash.",
        ));
    }
    signed_by_caller(
        &state,
        &auth,
        &checkpoint_signing_input(&cp),
        cp.signature.as_slice(),
        "The checkpoint is not signed by you.",
    )
    .await?;
    let event = clinic_event(&auth, clinic_id, "audit_checkpoint", None, 1);
    state
        .store
        .add_checkpoint(clinic_id, cp, event)
        .await
        .map_err(|e| match e {
            StoreError::Conflict(w) if w == audit_conflict::CHECKPOINT_MISMATCH => ApiError::new(
                StatusCode::CONFLICT,
                "checkpoint_mismatch",
                "The checkpoint does not match the log's entry at that position.",
            ),
            StoreError::Conflict(w) if w == audit_conflict::CHECKPOINT_STALE => ApiError::new(
                StatusCode::CONFLICT,
                "checkpoint_stale",
                "A checkpoint at or after that position exists.",
            ),
            e => e.into(),
        })?;
    Ok(StatusCode::NO_CONTENT)
}

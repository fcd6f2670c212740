//! Clinics and membership. A clinic's name is sealed in its profile envelope; its keys arrive
//! wrapped to the owner. The server stores both as it gets them.

use std::collections::HashSet;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use optovault_shared::wire::{ClinicList, ClinicView, CreateClinicRequest, Role, WrappedKey};
use optovault_shared::{limits, Compartment, RecordEnvelope};
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};
use crate::http::{ApiJson, ApiPath};
use crate::session::{account_event, Authenticated};
use crate::store::{ClinicRow, EventDraft, MemberRow, StoreError};
use crate::{now, AppState};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/clinics", get(list).post(create))
        .route("/api/clinics/{clinic_id}", get(show))
}

/// The caller's membership of `clinic_id`, or 404 whether the clinic exists or not, so a
/// non-member learns nothing (not even existence). Denials are logged to the caller's account log.
pub async fn require_member(
    state: &AppState,
    auth: &Authenticated,
    clinic_id: Uuid,
) -> ApiResult<MemberRow> {
    match state.store.member(clinic_id, auth.account_id).await? {
        Some(m) => {
            crate::policy::enforce(state, auth, clinic_id).await?;
            Ok(m)
        }
        None => {
            let mut e = account_event(
                "access_denied",
                Some(auth.account_id),
                "denied",
                auth.ip.clone(),
            );
            e.target = Some(clinic_id);
            state.store.append_event(e, false).await?;
            Err(ApiError::not_found())
        }
    }
}

/// An event in a clinic's log, by the caller.
pub fn clinic_event(
    auth: &Authenticated,
    clinic_id: Uuid,
    action: &'static str,
    target: Option<Uuid>,
    count: u32,
) -> EventDraft {
    EventDraft {
        at: now(),
        actor: Some(auth.account_id),
        clinic_id: Some(clinic_id),
        action,
        target,
        count,
        outcome: "ok",
        ip: auth.ip.clone(),
        detail: None,
    }
}

async fn view(state: &AppState, clinic: ClinicRow, member: MemberRow) -> ApiResult<ClinicView> {
    let profile: RecordEnvelope =
        serde_json::from_slice(&clinic.profile).map_err(|_| StoreError::Corrupt("clinics"))?;
    let head = state
        .store
        .roster_head(clinic.clinic_id)
        .await?
        .ok_or(StoreError::Corrupt("roster_heads"))?;
    Ok(ClinicView {
        clinic_id: clinic.clinic_id,
        role: member.role,
        created_at: clinic.created_at,
        profile,
        wrapped_keys: member.wrapped_keys,
        pinned_anchor: member.pinned_anchor,
        roster_head: head.seq,
        key_epoch: head.key_epoch,
    })
}

fn invalid(code: &'static str, message: &str) -> ApiError {
    ApiError::bad_request(code, message)
}

/// Checks a new clinic: random ids, a profile envelope sealed by the caller for this clinic, and
/// one wrapped key per compartment, all addressed to the caller.
pub fn check_new_clinic(req: &CreateClinicRequest, caller: Uuid) -> ApiResult<()> {
    if req.clinic_id.is_nil() || req.clinic_id.get_version_num() != 4 {
        return Err(invalid(
            "invalid_clinic_id",
            "Clinic ids must be random UUIDv4.",
        ));
    }
    let p = &req.profile;
    p.check_structure()
        .map_err(|e| ApiError::bad_request("invalid_envelope", e.to_string()))?;
    if p.record_id != req.clinic_id
        || p.chart_id != req.clinic_id
        || p.version != 1
        || p.compartment != Compartment::Demographics
        || p.author != caller
    {
        return Err(invalid(
            "invalid_envelope",
            "The profile must be version 1 of the clinic's own demographics record, by you.",
        ));
    }
    check_wrapped_keys(&req.wrapped_keys, caller)?;
    for c in Compartment::ALL {
        if !req.wrapped_keys.iter().any(|k| k.compartment == c) {
            return Err(invalid(
                "invalid_wrapped_keys",
                "A clinic needs a key for every compartment.",
            ));
        }
    }
    if !req.wrapped_keys.iter().any(|k| k.key_id == p.key_id) {
        return Err(invalid(
            "invalid_envelope",
            "The profile is sealed under a key the clinic does not have.",
        ));
    }
    Ok(())
}

/// HPKE X25519 encapsulated key is 32 bytes; the wrapped 32-byte key plus a 16-byte tag is 48.
pub fn wrapped_key_well_formed(k: &WrappedKey) -> bool {
    k.enc.len() == 32
        && k.ciphertext.len() == 32 + 16
        && k.epoch >= 1
        && k.key_id.get_version_num() == 4
}

fn check_wrapped_keys(keys: &[WrappedKey], recipient: Uuid) -> ApiResult<()> {
    if keys.is_empty() || keys.len() > limits::MAX_WRAPPED_KEYS {
        return Err(invalid(
            "invalid_wrapped_keys",
            "Between 1 and 64 wrapped keys are required.",
        ));
    }
    let mut ids = HashSet::new();
    for k in keys {
        let well_formed =
            wrapped_key_well_formed(k) && k.recipient == recipient && ids.insert(k.key_id);
        if !well_formed {
            return Err(invalid(
                "invalid_wrapped_keys",
                "Each wrapped key must be addressed to you, have a unique random id, epoch >= 1, a 32-byte encapsulated key and a 48-byte ciphertext.",
            ));
        }
    }
    Ok(())
}

#[utoipa::path(get, path = "/api/clinics", responses((status = 200, body = ClinicList),
    (status = 401, body = optovault_shared::wire::ApiErrorBody)), tag = "clinics")]
pub async fn list(
    State(state): State<AppState>,
    auth: Authenticated,
) -> ApiResult<Json<ClinicList>> {
    let mut clinics = Vec::new();
    for (c, m) in state.store.clinics_of(auth.account_id).await? {
        clinics.push(view(&state, c, m).await?);
    }
    Ok(Json(ClinicList { clinics }))
}

#[utoipa::path(post, path = "/api/clinics", request_body = CreateClinicRequest,
    responses((status = 201, body = ClinicView), (status = 400, body = optovault_shared::wire::ApiErrorBody),
    (status = 409, body = optovault_shared::wire::ApiErrorBody)), tag = "clinics")]
pub async fn create(
    State(state): State<AppState>,
    auth: Authenticated,
    ApiJson(req): ApiJson<CreateClinicRequest>,
) -> ApiResult<(StatusCode, Json<ClinicView>)> {
    check_new_clinic(&req, auth.account_id)?;
    let account = state
        .store
        .account(auth.account_id)
        .await?
        .ok_or_else(ApiError::unauthenticated)?;
    let genesis = crate::team::check_genesis(&req, &account)?;
    crate::team::check_sealed_blob(&req.pinned_anchor)?;
    let at = now();
    let clinic = ClinicRow {
        clinic_id: req.clinic_id,
        created_at: at,
        created_by: auth.account_id,
        profile: serde_json::to_vec(&req.profile).expect("envelope serialises"),
        policy: Default::default(),
    };
    let owner = MemberRow {
        clinic_id: req.clinic_id,
        account_id: auth.account_id,
        role: Role::Owner,
        added_at: at,
        wrapped_keys: req.wrapped_keys,
        pinned_anchor: req.pinned_anchor,
    };
    match state
        .store
        .create_clinic(
            clinic.clone(),
            owner.clone(),
            genesis,
            clinic_event(
                &auth,
                req.clinic_id,
                "clinic_created",
                Some(req.clinic_id),
                1,
            ),
        )
        .await
    {
        Err(StoreError::Conflict(_)) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "clinic_exists",
                "A clinic with this id exists.",
            ))
        }
        other => other?,
    }
    Ok((
        StatusCode::CREATED,
        Json(view(&state, clinic, owner).await?),
    ))
}

#[utoipa::path(get, path = "/api/clinics/{clinic_id}", params(("clinic_id" = Uuid, Path)),
    responses((status = 200, body = ClinicView), (status = 404, body = optovault_shared::wire::ApiErrorBody)), tag = "clinics")]
pub async fn show(
    State(state): State<AppState>,
    auth: Authenticated,
    ApiPath(clinic_id): ApiPath<Uuid>,
) -> ApiResult<Json<ClinicView>> {
    let member = require_member(&state, &auth, clinic_id).await?;
    let clinic = state
        .store
        .clinic(clinic_id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    Ok(Json(view(&state, clinic, member).await?))
}

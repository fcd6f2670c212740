//! Invitations. The invitation's one-time secret stays in the link's fragment: the server keeps
//! the role, the expiry, the owner's HPKE-sealed copy of the secret and, once someone accepts,
//! their identity, public keys and MAC for the owner's client to check.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use optovault_shared::wire::{
    AcceptInvitationRequest, Acceptance, CreateInvitationRequest, InvitationInfo, InvitationList,
    InvitationStatus, InvitationView,
};
use uuid::Uuid;

use crate::clinics::clinic_event;
use crate::error::{ApiError, ApiResult};
use crate::http::{ApiJson, ApiPath};
use crate::members::require_owner;
use crate::session::Authenticated;
use crate::store::{InvitationRow, StoreError};
use crate::{now, team, AppState};

/// Most invitations a clinic keeps open at once.
pub const MAX_OPEN_INVITATIONS: usize = 100;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/clinics/{clinic_id}/invitations",
            get(list).post(create),
        )
        .route(
            "/api/clinics/{clinic_id}/invitations/{invitation_id}",
            delete(revoke),
        )
        .route(
            "/api/clinics/{clinic_id}/invitations/{invitation_id}/info",
            get(info),
        )
        .route(
            "/api/clinics/{clinic_id}/invitations/{invitation_id}/accept",
            post(accept),
        )
}

/// The status as of `at`: pending or accepted invitations past their expiry are expired.
pub fn effective_status(row: &InvitationRow, at: i64) -> InvitationStatus {
    match row.status {
        InvitationStatus::Pending | InvitationStatus::Accepted if row.expires_at <= at => {
            InvitationStatus::Expired
        }
        s => s,
    }
}

fn view(row: InvitationRow, at: i64) -> InvitationView {
    InvitationView {
        status: effective_status(&row, at),
        invitation_id: row.invitation_id,
        clinic_id: row.clinic_id,
        role: row.role,
        created_by: row.created_by,
        created_at: row.created_at,
        expires_at: row.expires_at,
        sealed_secret: row.sealed_secret,
        acceptance: row.acceptance,
    }
}

fn info_of(row: &InvitationRow, at: i64) -> InvitationInfo {
    InvitationInfo {
        invitation_id: row.invitation_id,
        clinic_id: row.clinic_id,
        role: row.role,
        expires_at: row.expires_at,
        status: effective_status(row, at),
    }
}

#[utoipa::path(post, path = "/api/clinics/{clinic_id}/invitations", params(("clinic_id" = Uuid, Path)), request_body = CreateInvitationRequest,
    responses((status = 201, body = InvitationView), (status = 400, body = optovault_shared::wire::ApiErrorBody),
    (status = 403, body = optovault_shared::wire::ApiErrorBody), (status = 409, body = optovault_shared::wire::ApiErrorBody)), tag = "invitations")]
pub async fn create(
    State(state): State<AppState>,
    auth: Authenticated,
    ApiPath(clinic_id): ApiPath<Uuid>,
    ApiJson(req): ApiJson<CreateInvitationRequest>,
) -> ApiResult<(StatusCode, Json<InvitationView>)> {
    require_owner(&state, &auth, clinic_id).await?;
    if req.invitation_id.get_version_num() != 4 {
        return Err(ApiError::bad_request(
            "invalid_invitation_id",
            "Invitation ids must be random UUIDv4.",
        ));
    }
    if !(1..=168).contains(&req.expires_in_hours) {
        return Err(ApiError::bad_request(
            "invalid_expiry",
            "An invitation lasts 1 to 168 hours.",
        ));
    }
    // HPKE X25519: 32-byte encapsulated key; a 32-byte secret plus a 16-byte tag.
    if req.sealed_secret.enc.len() != 32 || req.sealed_secret.ciphertext.len() != 48 {
        return Err(ApiError::bad_request(
            "invalid_sealed_secret",
            "Malformed sealed secret.",
        ));
    }
    let at = now();
    let open = state
        .store
        .invitations(clinic_id)
        .await?
        .iter()
        .filter(|i| {
            matches!(
                effective_status(i, at),
                InvitationStatus::Pending | InvitationStatus::Accepted
            )
        })
        .count();
    if open >= MAX_OPEN_INVITATIONS {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "too_many_invitations",
            "Revoke some open invitations first.",
        ));
    }
    let row = InvitationRow {
        invitation_id: req.invitation_id,
        clinic_id,
        role: req.role,
        created_by: auth.account_id,
        created_at: at,
        expires_at: at + i64::from(req.expires_in_hours) * 3600,
        status: InvitationStatus::Pending,
        sealed_secret: req.sealed_secret,
        acceptance: None,
        invitee_anchor: None,
    };
    let event = clinic_event(
        &auth,
        clinic_id,
        "invitation_created",
        Some(req.invitation_id),
        1,
    );
    match state.store.create_invitation(row.clone(), event).await {
        Err(StoreError::Conflict(_)) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "invitation_exists",
                "An invitation with this id exists.",
            ))
        }
        other => other?,
    }
    Ok((StatusCode::CREATED, Json(view(row, at))))
}

#[utoipa::path(get, path = "/api/clinics/{clinic_id}/invitations", params(("clinic_id" = Uuid, Path)),
    responses((status = 200, body = InvitationList), (status = 403, body = optovault_shared::wire::ApiErrorBody)), tag = "invitations")]
pub async fn list(
    State(state): State<AppState>,
    auth: Authenticated,
    ApiPath(clinic_id): ApiPath<Uuid>,
) -> ApiResult<Json<InvitationList>> {
    require_owner(&state, &auth, clinic_id).await?;
    let at = now();
    let mut invitations: Vec<InvitationView> = state
        .store
        .invitations(clinic_id)
        .await?
        .into_iter()
        .map(|r| view(r, at))
        .collect();
    invitations.sort_by_key(|i| std::cmp::Reverse(i.created_at));
    Ok(Json(InvitationList { invitations }))
}

#[utoipa::path(delete, path = "/api/clinics/{clinic_id}/invitations/{invitation_id}",
    params(("clinic_id" = Uuid, Path), ("invitation_id" = Uuid, Path)),
    responses((status = 204), (status = 403, body = optovault_shared::wire::ApiErrorBody), (status = 404, body = optovault_shared::wire::ApiErrorBody),
    (status = 409, body = optovault_shared::wire::ApiErrorBody)), tag = "invitations")]
pub async fn revoke(
    State(state): State<AppState>,
    auth: Authenticated,
    ApiPath((clinic_id, invitation_id)): ApiPath<(Uuid, Uuid)>,
) -> ApiResult<StatusCode> {
    require_owner(&state, &auth, clinic_id).await?;
    let row = state
        .store
        .invitation(clinic_id, invitation_id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let from = row.status;
    if !matches!(from, InvitationStatus::Pending | InvitationStatus::Accepted) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "invitation_closed",
            "This invitation is no longer open.",
        ));
    }
    let mut next = row;
    next.status = InvitationStatus::Revoked;
    let event = clinic_event(
        &auth,
        clinic_id,
        "invitation_revoked",
        Some(invitation_id),
        1,
    );
    state
        .store
        .transition_invitation(from, next, event)
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::CONFLICT,
                "invitation_closed",
                "This invitation changed meanwhile; reload.",
            )
        })?;
    Ok(StatusCode::NO_CONTENT)
}

async fn find(state: &AppState, clinic_id: Uuid, invitation_id: Uuid) -> ApiResult<InvitationRow> {
    state
        .store
        .invitation(clinic_id, invitation_id)
        .await?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "no_such_invitation",
                "This invitation does not exist.",
            )
        })
}

#[utoipa::path(get, path = "/api/clinics/{clinic_id}/invitations/{invitation_id}/info",
    params(("clinic_id" = Uuid, Path), ("invitation_id" = Uuid, Path)),
    responses((status = 200, body = InvitationInfo), (status = 404, body = optovault_shared::wire::ApiErrorBody)), tag = "invitations")]
pub async fn info(
    State(state): State<AppState>,
    _auth: Authenticated,
    ApiPath((clinic_id, invitation_id)): ApiPath<(Uuid, Uuid)>,
) -> ApiResult<Json<InvitationInfo>> {
    let row = find(&state, clinic_id, invitation_id).await?;
    Ok(Json(info_of(&row, now())))
}

/// The invitee accepts with a MAC over its identity and keys; the server records who accepted
/// (from the session, never from the body) so the owner's client can check the MAC.
#[utoipa::path(post, path = "/api/clinics/{clinic_id}/invitations/{invitation_id}/accept",
    params(("clinic_id" = Uuid, Path), ("invitation_id" = Uuid, Path)), request_body = AcceptInvitationRequest,
    responses((status = 200, body = InvitationInfo), (status = 400, body = optovault_shared::wire::ApiErrorBody),
    (status = 404, body = optovault_shared::wire::ApiErrorBody), (status = 409, body = optovault_shared::wire::ApiErrorBody),
    (status = 410, body = optovault_shared::wire::ApiErrorBody)), tag = "invitations")]
pub async fn accept(
    State(state): State<AppState>,
    auth: Authenticated,
    ApiPath((clinic_id, invitation_id)): ApiPath<(Uuid, Uuid)>,
    ApiJson(req): ApiJson<AcceptInvitationRequest>,
) -> ApiResult<Json<InvitationInfo>> {
    if req.mac.len() != 32 {
        return Err(ApiError::bad_request(
            "invalid_mac",
            "The MAC must be 32 bytes.",
        ));
    }
    team::check_sealed_blob(&req.pinned_anchor)?;
    let row = find(&state, clinic_id, invitation_id).await?;
    let at = now();
    match effective_status(&row, at) {
        InvitationStatus::Pending => {}
        InvitationStatus::Expired => {
            return Err(ApiError::new(
                StatusCode::GONE,
                "invitation_expired",
                "This invitation has expired; ask for a new one.",
            ))
        }
        _ => {
            return Err(ApiError::new(
                StatusCode::GONE,
                "invitation_used",
                "This invitation was already used or revoked.",
            ))
        }
    }
    if state
        .store
        .member(clinic_id, auth.account_id)
        .await?
        .is_some()
    {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "already_member",
            "You are already a member of this clinic.",
        ));
    }
    let account = state
        .store
        .account(auth.account_id)
        .await?
        .ok_or_else(ApiError::unauthenticated)?;
    let mut next = row.clone();
    next.status = InvitationStatus::Accepted;
    next.acceptance = Some(Acceptance {
        account_id: account.account_id,
        username: account.username,
        public_keys: account.public_keys,
        mac: req.mac,
        accepted_at: at,
    });
    next.invitee_anchor = Some(req.pinned_anchor);
    let event = clinic_event(
        &auth,
        clinic_id,
        "invitation_accepted",
        Some(invitation_id),
        1,
    );
    state
        .store
        .transition_invitation(InvitationStatus::Pending, next.clone(), event)
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::GONE,
                "invitation_used",
                "This invitation was already used or revoked.",
            )
        })?;
    Ok(Json(info_of(&next, at)))
}

//! The clinic roster and its members: reading the signed roster, admitting an accepted invitee,
//! and removals / role changes with an atomic key rotation.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use optovault_shared::roster::RosterChange;
use optovault_shared::wire::{
    AddMemberRequest, InvitationStatus, MemberList, MemberView, Role, RosterPage, RotationRequest,
    WrappedKey,
};
use serde::Deserialize;
use uuid::Uuid;

use crate::clinics::{clinic_event, require_member};
use crate::error::{ApiError, ApiResult};
use crate::http::{ApiJson, ApiPath, ApiQuery};
use crate::session::Authenticated;
use crate::store::{MemberChange, MemberRow, StoreError};
use crate::{now, team, AppState};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/clinics/{clinic_id}/roster", get(roster))
        .route("/api/clinics/{clinic_id}/members", get(list).post(add))
        .route("/api/clinics/{clinic_id}/rotations", post(rotate))
        .route(
            "/api/clinics/{clinic_id}/members/{account_id}/revoke-sessions",
            post(revoke_member_sessions),
        )
        .route(
            "/api/clinics/{clinic_id}/members/{account_id}/unlock",
            post(unlock_member),
        )
}

/// The caller's membership, which must be an owner's.
pub async fn require_owner(
    state: &AppState,
    auth: &Authenticated,
    clinic_id: Uuid,
) -> ApiResult<MemberRow> {
    let m = require_member(state, auth, clinic_id).await?;
    if m.role != Role::Owner {
        return Err(ApiError::forbidden(
            "Only an owner of the clinic can do this.",
        ));
    }
    Ok(m)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct RosterQuery {
    /// The roster seq already known (0 for all).
    pub since: Option<u64>,
}

#[utoipa::path(get, path = "/api/clinics/{clinic_id}/roster", params(("clinic_id" = Uuid, Path), RosterQuery),
    responses((status = 200, body = RosterPage), (status = 404, body = optovault_shared::wire::ApiErrorBody)), tag = "members")]
pub async fn roster(
    State(state): State<AppState>,
    auth: Authenticated,
    ApiPath(clinic_id): ApiPath<Uuid>,
    ApiQuery(q): ApiQuery<RosterQuery>,
) -> ApiResult<Json<RosterPage>> {
    require_member(&state, &auth, clinic_id).await?;
    let (rows, head) = state.store.roster(clinic_id, q.since.unwrap_or(0)).await?;
    Ok(Json(RosterPage {
        entries: rows.into_iter().map(|r| r.signed).collect(),
        head: head.map(|h| h.seq).unwrap_or(0),
    }))
}

fn member_view(state_accounts: &crate::store::AccountRow, m: &MemberRow) -> MemberView {
    MemberView {
        account_id: m.account_id,
        username: state_accounts.username.clone(),
        role: m.role,
        public_keys: state_accounts.public_keys.clone(),
        added_at: m.added_at,
        last_login_at: state_accounts.last_login_at,
    }
}

#[utoipa::path(get, path = "/api/clinics/{clinic_id}/members", params(("clinic_id" = Uuid, Path)),
    responses((status = 200, body = MemberList), (status = 404, body = optovault_shared::wire::ApiErrorBody)), tag = "members")]
pub async fn list(
    State(state): State<AppState>,
    auth: Authenticated,
    ApiPath(clinic_id): ApiPath<Uuid>,
) -> ApiResult<Json<MemberList>> {
    require_member(&state, &auth, clinic_id).await?;
    let mut members = Vec::new();
    for m in state.store.members(clinic_id).await? {
        if let Some(a) = state.store.account(m.account_id).await? {
            members.push(member_view(&a, &m));
        }
    }
    Ok(Json(MemberList { members }))
}

/// Admits an accepted invitee: the owner's signed roster entry must add exactly the account that
/// accepted, with the invited role and the keys the server saw at acceptance; the wrapped keys
/// must be exactly what that role grants.
#[utoipa::path(post, path = "/api/clinics/{clinic_id}/members", params(("clinic_id" = Uuid, Path)), request_body = AddMemberRequest,
    responses((status = 201, body = MemberView), (status = 400, body = optovault_shared::wire::ApiErrorBody),
    (status = 403, body = optovault_shared::wire::ApiErrorBody), (status = 409, body = optovault_shared::wire::ApiErrorBody),
    (status = 410, body = optovault_shared::wire::ApiErrorBody)), tag = "members")]
pub async fn add(
    State(state): State<AppState>,
    auth: Authenticated,
    ApiPath(clinic_id): ApiPath<Uuid>,
    ApiJson(req): ApiJson<AddMemberRequest>,
) -> ApiResult<(StatusCode, Json<MemberView>)> {
    let owner = require_owner(&state, &auth, clinic_id).await?;
    let invitation = state
        .store
        .invitation(clinic_id, req.invitation_id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let at = now();
    let (Some(acceptance), InvitationStatus::Accepted) =
        (&invitation.acceptance, invitation.status)
    else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "invitation_not_accepted",
            "Nobody has accepted this invitation yet.",
        ));
    };
    if invitation.expires_at <= at {
        return Err(ApiError::new(
            StatusCode::GONE,
            "invitation_expired",
            "This invitation has expired.",
        ));
    }
    let (rows, _) = state.store.roster(clinic_id, 0).await?;
    let roster = team::replay(clinic_id, &rows)?;
    let (_, entry, row) = team::check_next(&roster, &req.roster_entry, auth.account_id)?;
    let expected = RosterChange::Add {
        member: acceptance.account_id,
        username: acceptance.username.clone(),
        role: invitation.role,
        public_keys: acceptance.public_keys.clone(),
    };
    if entry.change != expected || entry.key_epoch != roster.key_epoch {
        return Err(ApiError::bad_request(
            "invalid_roster_entry",
            "The entry must add the account that accepted, with the invited role, its keys and the current key epoch.",
        ));
    }
    team::check_member_keys(
        &req.wrapped_keys,
        &owner,
        acceptance.account_id,
        invitation.role,
    )?;
    let member = MemberRow {
        clinic_id,
        account_id: acceptance.account_id,
        role: invitation.role,
        added_at: at,
        wrapped_keys: req.wrapped_keys,
        pinned_anchor: invitation
            .invitee_anchor
            .clone()
            .ok_or(StoreError::Corrupt("invitations"))?,
    };
    let joined = clinic_event(
        &auth,
        clinic_id,
        "member_joined",
        Some(member.account_id),
        1,
    );
    state
        .store
        .add_member(
            clinic_id,
            row,
            member.clone(),
            req.invitation_id,
            vec![joined],
        )
        .await
        .map_err(conflict)?;
    let account = state
        .store
        .account(member.account_id)
        .await?
        .ok_or(StoreError::Corrupt("accounts"))?;
    Ok((StatusCode::CREATED, Json(member_view(&account, &member))))
}

fn conflict(e: StoreError) -> ApiError {
    match e {
        StoreError::Conflict(what) => ApiError::new(
            StatusCode::CONFLICT,
            "roster_conflict",
            format!(
                "The clinic changed meanwhile ({what}); reload and try again. Nothing was changed."
            ),
        ),
        e => e.into(),
    }
}

/// Removes a member or changes a role, with a new key epoch for every compartment, in one
/// transaction; then revokes the affected member's sessions.
#[utoipa::path(post, path = "/api/clinics/{clinic_id}/rotations", params(("clinic_id" = Uuid, Path)), request_body = RotationRequest,
    responses((status = 200, body = RosterPage), (status = 400, body = optovault_shared::wire::ApiErrorBody),
    (status = 403, body = optovault_shared::wire::ApiErrorBody), (status = 409, body = optovault_shared::wire::ApiErrorBody)), tag = "members")]
pub async fn rotate(
    State(state): State<AppState>,
    auth: Authenticated,
    ApiPath(clinic_id): ApiPath<Uuid>,
    ApiJson(req): ApiJson<RotationRequest>,
) -> ApiResult<Json<RosterPage>> {
    let owner = require_owner(&state, &auth, clinic_id).await?;
    let (rows, _) = state.store.roster(clinic_id, 0).await?;
    let roster = team::replay(clinic_id, &rows)?;
    let (after, entry, row) = team::check_next(&roster, &req.roster_entry, auth.account_id)?;
    if after.key_epoch != roster.key_epoch + 1 {
        return Err(ApiError::bad_request(
            "invalid_roster_entry",
            "A rotation starts exactly the next key epoch.",
        ));
    }
    let (change, action, affected) = match entry.change {
        RosterChange::Remove { member } => (MemberChange::Remove(member), "member_removed", member),
        RosterChange::ChangeRole { member, role } => (
            MemberChange::ChangeRole(member, role),
            "role_changed",
            member,
        ),
        RosterChange::Add { .. } => {
            return Err(ApiError::bad_request(
                "invalid_roster_entry",
                "Members are added through an invitation.",
            ));
        }
    };
    let members = state.store.members(clinic_id).await?;
    let (clinic_keys, chart_keys): (Vec<WrappedKey>, Vec<WrappedKey>) = req
        .wrapped_keys
        .iter()
        .cloned()
        .partition(|k| k.chart_id.is_none());
    team::check_rotation_keys(&clinic_keys, &after, &members)?;
    let promoted = match &change {
        MemberChange::ChangeRole(member, to) => {
            roster.role_of(member).map(|from| (*member, from, *to))
        }
        MemberChange::Remove(_) => None,
    };
    team::check_promotion_keys(&clinic_keys, after.key_epoch, &owner, promoted)?;
    // Restricted charts the member is on rotate too: new chart keys for the care team that stays
    // (each member's role as it is after the change), so nothing written later opens with a chart
    // key the member held.
    let charts = crate::charts::rotate_for_member(
        &state,
        clinic_id,
        affected,
        &change,
        &members,
        &chart_keys,
    )
    .await?;
    let signed = row.signed.clone();
    let seq = row.seq;
    let events = vec![
        clinic_event(&auth, clinic_id, action, Some(affected), 1),
        clinic_event(&auth, clinic_id, "keys_rotated", None, after.key_epoch),
    ];
    state
        .store
        .rotate(clinic_id, row, change, req.wrapped_keys, charts, events)
        .await
        .map_err(conflict)?;
    let revoked = state.store.revoke_sessions_of(affected).await?;
    tracing::info!(clinic = %clinic_id, seq, sessions_revoked = revoked, "{action}; keys rotated");
    Ok(Json(RosterPage {
        entries: vec![signed],
        head: seq,
    }))
}

async fn owned_member(
    state: &AppState,
    auth: &Authenticated,
    clinic_id: Uuid,
    account_id: Uuid,
) -> ApiResult<crate::store::AccountRow> {
    require_owner(state, auth, clinic_id).await?;
    state
        .store
        .member(clinic_id, account_id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    Ok(state
        .store
        .account(account_id)
        .await?
        .ok_or(StoreError::Corrupt("accounts"))?)
}

/// The owner ends every session of a member (e.g. a lost laptop).
#[utoipa::path(post, path = "/api/clinics/{clinic_id}/members/{account_id}/revoke-sessions",
    params(("clinic_id" = Uuid, Path), ("account_id" = Uuid, Path)),
    responses((status = 204), (status = 403, body = optovault_shared::wire::ApiErrorBody), (status = 404, body = optovault_shared::wire::ApiErrorBody)), tag = "members")]
pub async fn revoke_member_sessions(
    State(state): State<AppState>,
    auth: Authenticated,
    ApiPath((clinic_id, account_id)): ApiPath<(Uuid, Uuid)>,
) -> ApiResult<StatusCode> {
    owned_member(&state, &auth, clinic_id, account_id).await?;
    let n = state.store.revoke_sessions_of(account_id).await?;
    state
        .store
        .append_event(
            clinic_event(
                &auth,
                clinic_id,
                "sessions_revoked",
                Some(account_id),
                n as u32,
            ),
            true,
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The owner clears a member's login lockout.
#[utoipa::path(post, path = "/api/clinics/{clinic_id}/members/{account_id}/unlock",
    params(("clinic_id" = Uuid, Path), ("account_id" = Uuid, Path)),
    responses((status = 204), (status = 403, body = optovault_shared::wire::ApiErrorBody), (status = 404, body = optovault_shared::wire::ApiErrorBody)), tag = "members")]
pub async fn unlock_member(
    State(state): State<AppState>,
    auth: Authenticated,
    ApiPath((clinic_id, account_id)): ApiPath<(Uuid, Uuid)>,
) -> ApiResult<StatusCode> {
    let account = owned_member(&state, &auth, clinic_id, account_id).await?;
    state
        .store
        .update_throttle(
            &crate::throttle::user_key(&account.username),
            Box::new(|_| None),
        )
        .await?;
    state
        .store
        .append_event(
            clinic_event(&auth, clinic_id, "account_unlocked", Some(account_id), 1),
            true,
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

//! A clinic's security policy (set by its owner, enforced here on every request into the
//! clinic), the owner's security checklist, and the owner's "must change password" flag.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use optovault_shared::wire::{ClinicPolicy, InvitationStatus, MemberRef, Role, SecurityChecklist};
use uuid::Uuid;

use crate::clinics::{clinic_event, require_member};
use crate::error::{ApiError, ApiResult};
use crate::http::{ApiJson, ApiPath};
use crate::invitations::effective_status;
use crate::members::require_owner;
use crate::session::Authenticated;
use crate::store::{AccountRow, StoreError};
use crate::{now, AppState};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/clinics/{clinic_id}/policy", get(show).put(set))
        .route(
            "/api/clinics/{clinic_id}/security-checklist",
            get(checklist),
        )
        .route(
            "/api/clinics/{clinic_id}/members/{account_id}/require-password-change",
            post(require_password_change),
        )
}

fn has_mfa(a: &AccountRow) -> bool {
    a.has_second_factor()
}

/// Refuses a member's request into the clinic when the clinic's policy is not met by the
/// session or the account. Called by `require_member` once membership is established.
pub async fn enforce(state: &AppState, auth: &Authenticated, clinic_id: Uuid) -> ApiResult<()> {
    let clinic = state
        .store
        .clinic(clinic_id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let p = &clinic.policy;
    let at = now();
    if at - auth.last_seen > i64::from(p.idle_minutes) * 60
        || at - auth.created_at > i64::from(p.session_hours) * 3600
    {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "session_too_old_for_clinic",
            "This clinic asks you to log in again.",
        ));
    }
    let account = state
        .store
        .account(auth.account_id)
        .await?
        .ok_or_else(ApiError::unauthenticated)?;
    if account.must_change_password {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "password_change_required",
            "The clinic's owner asks you to change your password (Account page) before you continue.",
        ));
    }
    if let Some(days) = p.max_password_age_days {
        if at - account.password_set_at > i64::from(days) * 86_400 {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "password_expired",
                "This clinic requires a new password: change it on your Account page.",
            ));
        }
    }
    if p.require_mfa && !has_mfa(&account) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "mfa_required",
            "This clinic requires a second factor: set up an authenticator on your Account page.",
        ));
    }
    Ok(())
}

#[utoipa::path(get, path = "/api/clinics/{clinic_id}/policy", params(("clinic_id" = Uuid, Path)),
    responses((status = 200, body = ClinicPolicy), (status = 404, body = optovault_shared::wire::ApiErrorBody)), tag = "policy")]
pub async fn show(
    State(state): State<AppState>,
    auth: Authenticated,
    ApiPath(clinic_id): ApiPath<Uuid>,
) -> ApiResult<Json<ClinicPolicy>> {
    require_member(&state, &auth, clinic_id).await?;
    let c = state
        .store
        .clinic(clinic_id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    Ok(Json(c.policy))
}

#[utoipa::path(put, path = "/api/clinics/{clinic_id}/policy", params(("clinic_id" = Uuid, Path)), request_body = ClinicPolicy,
    responses((status = 200, body = ClinicPolicy), (status = 400, body = optovault_shared::wire::ApiErrorBody),
    (status = 403, body = optovault_shared::wire::ApiErrorBody), (status = 409, body = optovault_shared::wire::ApiErrorBody)), tag = "policy")]
pub async fn set(
    State(state): State<AppState>,
    auth: Authenticated,
    ApiPath(clinic_id): ApiPath<Uuid>,
    ApiJson(p): ApiJson<ClinicPolicy>,
) -> ApiResult<Json<ClinicPolicy>> {
    require_owner(&state, &auth, clinic_id).await?;
    if !(5..=480).contains(&p.idle_minutes)
        || !(1..=24).contains(&p.session_hours)
        || p.max_password_age_days
            .is_some_and(|d| !(30..=730).contains(&d))
        || !(1..=3650).contains(&p.trash_days)
    {
        return Err(ApiError::bad_request(
            "invalid_policy",
            "Idle timeout 5-480 minutes, session lifetime 1-24 hours, password age 30-730 days, trash 1-3650 days.",
        ));
    }
    let me = state
        .store
        .account(auth.account_id)
        .await?
        .ok_or_else(ApiError::unauthenticated)?;
    if p.require_mfa && !has_mfa(&me) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "enroll_mfa_first",
            "Set up your own authenticator before you require one from everybody.",
        ));
    }
    let event = clinic_event(&auth, clinic_id, "policy_changed", Some(clinic_id), 1);
    state
        .store
        .set_clinic_policy(clinic_id, p.clone(), event)
        .await?;
    Ok(Json(p))
}

#[utoipa::path(get, path = "/api/clinics/{clinic_id}/security-checklist", params(("clinic_id" = Uuid, Path)),
    responses((status = 200, body = SecurityChecklist), (status = 403, body = optovault_shared::wire::ApiErrorBody)), tag = "policy")]
pub async fn checklist(
    State(state): State<AppState>,
    auth: Authenticated,
    ApiPath(clinic_id): ApiPath<Uuid>,
) -> ApiResult<Json<SecurityChecklist>> {
    require_owner(&state, &auth, clinic_id).await?;
    let at = now();
    let clinic = state
        .store
        .clinic(clinic_id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let mut out = SecurityChecklist {
        members_without_mfa: vec![],
        members_inactive_90_days: vec![],
        members_who_must_change_password: vec![],
        pending_invitations: 0,
        owner_count: 0,
        last_verified_backup: state.backups.lock().unwrap().last_success_at,
        policy: clinic.policy,
    };
    for m in state.store.members(clinic_id).await? {
        let a = state
            .store
            .account(m.account_id)
            .await?
            .ok_or(StoreError::Corrupt("accounts"))?;
        let r = MemberRef {
            account_id: a.account_id,
            username: a.username.clone(),
        };
        if m.role == Role::Owner {
            out.owner_count += 1;
        }
        if !has_mfa(&a) {
            out.members_without_mfa.push(r.clone());
        }
        if a.last_login_at.is_none_or(|t| at - t > 90 * 86_400) {
            out.members_inactive_90_days.push(r.clone());
        }
        if a.must_change_password {
            out.members_who_must_change_password.push(r);
        }
    }
    out.pending_invitations = state
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
        .count() as u32;
    Ok(Json(out))
}

/// On evidence of compromise (NIST SP 800-63B), the owner makes a member change its password
/// before it can open the clinic again; the member's sessions end too.
#[utoipa::path(post, path = "/api/clinics/{clinic_id}/members/{account_id}/require-password-change",
    params(("clinic_id" = Uuid, Path), ("account_id" = Uuid, Path)),
    responses((status = 204), (status = 403, body = optovault_shared::wire::ApiErrorBody), (status = 404, body = optovault_shared::wire::ApiErrorBody)), tag = "policy")]
pub async fn require_password_change(
    State(state): State<AppState>,
    auth: Authenticated,
    ApiPath((clinic_id, account_id)): ApiPath<(Uuid, Uuid)>,
) -> ApiResult<StatusCode> {
    require_owner(&state, &auth, clinic_id).await?;
    state
        .store
        .member(clinic_id, account_id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    state
        .store
        .update_account(
            account_id,
            Box::new(|a| {
                a.must_change_password = true;
                Ok(())
            }),
            Some(clinic_event(
                &auth,
                clinic_id,
                "password_change_required",
                Some(account_id),
                1,
            )),
        )
        .await?;
    state.store.revoke_sessions_of(account_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

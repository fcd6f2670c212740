//! The recovery kit: a user who forgot the password resets it with the recovery key (and the
//! second factor, if enrolled) without losing data. The server stores the private keys sealed
//! under the recovery key and the SHA-256 of a verifier derived from it; it never sees the key.
//! Without password and recovery key the data is gone: nobody, the operator included, can help.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Json;
use axum::Router;
use opaque_ke::{RegistrationRequest, RegistrationUpload, ServerRegistration};
use optovault_shared::opaque::Suite;
use optovault_shared::wire::{
    RecoveryFinishRequest, RecoverySetup, RecoveryStartRequest, RecoveryStartResponse,
    RecoveryStatus,
};
use optovault_shared::{normalize_username, B64};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::accounts::{check_key_material, require_recent_login};
use crate::error::{ApiError, ApiResult};
use crate::http::ApiJson;
use crate::session::{account_event, invalid_message, Authenticated, ClientIp};
use crate::store::RecoveryRow;
use crate::{mfa, now, throttle, AppState};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/account/recovery", get(status).put(setup))
        .route("/api/account/recovery/start", post(start))
        .route("/api/account/recovery/finish", post(finish))
}

fn failed() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "recovery_failed",
        "That recovery key (or code) is not right for this account.",
    )
}

#[utoipa::path(get, path = "/api/account/recovery", responses((status = 200, body = RecoveryStatus)), tag = "accounts")]
pub async fn status(
    State(state): State<AppState>,
    auth: Authenticated,
) -> ApiResult<Json<RecoveryStatus>> {
    let a = state
        .store
        .account(auth.account_id)
        .await?
        .ok_or_else(ApiError::unauthenticated)?;
    Ok(Json(RecoveryStatus {
        configured: a.recovery.is_some(),
        created_at: a.recovery.map(|r| r.created_at),
    }))
}

/// Stores (or replaces) the recovery kit.
#[utoipa::path(put, path = "/api/account/recovery", request_body = RecoverySetup,
    responses((status = 204), (status = 400, body = optovault_shared::wire::ApiErrorBody), (status = 403, body = optovault_shared::wire::ApiErrorBody)), tag = "accounts")]
pub async fn setup(
    State(state): State<AppState>,
    auth: Authenticated,
    ApiJson(req): ApiJson<RecoverySetup>,
) -> ApiResult<StatusCode> {
    require_recent_login(&auth)?;
    let a = state
        .store
        .account(auth.account_id)
        .await?
        .ok_or_else(ApiError::unauthenticated)?;
    check_key_material(&a.public_keys, &req.sealed_key_bundle)?;
    let verifier_hash: [u8; 32] = req.verifier_hash.as_slice().try_into().map_err(|_| {
        ApiError::bad_request("invalid_verifier", "The verifier hash must be 32 bytes.")
    })?;
    let row = RecoveryRow {
        sealed_key_bundle: req.sealed_key_bundle,
        verifier_hash,
        created_at: now(),
    };
    state
        .store
        .update_account(
            auth.account_id,
            Box::new(move |a| {
                a.recovery = Some(row.clone());
                Ok(())
            }),
            Some(account_event(
                "recovery_kit_created",
                Some(auth.account_id),
                "ok",
                auth.ip,
            )),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Step 1: the recovery bundle (useless without the 256-bit key) and a new OPAQUE registration.
/// Counted like a login attempt (same backoff).
#[utoipa::path(post, path = "/api/account/recovery/start", request_body = RecoveryStartRequest,
    responses((status = 200, body = RecoveryStartResponse), (status = 404, body = optovault_shared::wire::ApiErrorBody),
    (status = 429, body = optovault_shared::wire::ApiErrorBody)), tag = "accounts")]
pub async fn start(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(req): ApiJson<RecoveryStartRequest>,
) -> ApiResult<Response> {
    let username = normalize_username(&req.username)
        .map_err(|m| ApiError::bad_request("invalid_username", m))?;
    let request = RegistrationRequest::<Suite>::deserialize(req.registration_request.as_slice())
        .map_err(|_| invalid_message())?;
    if let Err(wait) = throttle::admit_attempt(&state, &username, ip.as_deref(), now()).await? {
        return Ok(wait.into_response());
    }
    let account = state.store.account_by_username(&username).await?;
    let Some((account, recovery)) = account.and_then(|a| a.recovery.clone().map(|r| (a, r))) else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no_recovery_kit",
            "There is no recovery kit for this account.",
        ));
    };
    let started = ServerRegistration::<Suite>::start(&state.opaque, request, username.as_bytes())
        .map_err(|_| invalid_message())?;
    Ok(Json(RecoveryStartResponse {
        registration_response: B64(started.message.serialize().to_vec()),
        recovery_bundle: recovery.sealed_key_bundle,
        public_keys: account.public_keys.clone(),
        second_factor_required: account.has_second_factor(),
    })
    .into_response())
}

/// Step 2: proof of the key, the second factor, the new password file and re-sealed keys.
#[utoipa::path(post, path = "/api/account/recovery/finish", request_body = RecoveryFinishRequest,
    responses((status = 204), (status = 400, body = optovault_shared::wire::ApiErrorBody), (status = 401, body = optovault_shared::wire::ApiErrorBody)), tag = "accounts")]
pub async fn finish(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(req): ApiJson<RecoveryFinishRequest>,
) -> ApiResult<StatusCode> {
    let username = normalize_username(&req.username)
        .map_err(|m| ApiError::bad_request("invalid_username", m))?;
    let upload = RegistrationUpload::<Suite>::deserialize(req.registration_upload.as_slice())
        .map_err(|_| invalid_message())?;
    let account = state
        .store
        .account_by_username(&username)
        .await?
        .ok_or_else(failed)?;
    let recovery = account.recovery.clone().ok_or_else(failed)?;
    check_key_material(&account.public_keys, &req.sealed_key_bundle)?;
    let presented: [u8; 32] = Sha256::digest(req.verifier.as_slice()).into();
    let key_ok: bool = presented.ct_eq(&recovery.verifier_hash).into();
    let second_ok = !account.has_second_factor()
        || (key_ok
            && mfa::check_second_factor(
                &state,
                &account,
                req.code.as_deref(),
                req.recovery_code.as_deref(),
            )
            .await?);
    if !key_ok || !second_ok {
        state
            .store
            .append_event(
                account_event("recovery_failed", Some(account.account_id), "denied", ip),
                true,
            )
            .await?;
        return Err(failed());
    }
    let file = ServerRegistration::<Suite>::finish(upload)
        .serialize()
        .to_vec();
    state
        .store
        .change_password(account.account_id, file, req.sealed_key_bundle, [0; 32])
        .await?;
    let at = now();
    state
        .store
        .update_account(
            account.account_id,
            Box::new(move |a| {
                a.password_set_at = at;
                a.must_change_password = false;
                Ok(())
            }),
            Some(account_event(
                "account_recovered",
                Some(account.account_id),
                "ok",
                ip.clone(),
            )),
        )
        .await?;
    throttle::succeeded(&state, &username, ip.as_deref()).await?;
    Ok(StatusCode::NO_CONTENT)
}

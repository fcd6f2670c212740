//! Account registration with OPAQUE. The server gets the OPAQUE password file, the user's public
//! keys and their private keys sealed under a key only the password can re-derive.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use opaque_ke::{RegistrationRequest, RegistrationUpload, ServerRegistration};
use optovault_shared::opaque::Suite;
use optovault_shared::wire::{
    AccountCreated, PasswordChangeFinish, PasswordChangeStart, PublicKeys, RegisterFinishRequest,
    RegisterStartRequest, RegisterStartResponse, SealedBlob,
};
use optovault_shared::{limits, normalize_username, B64};
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};
use crate::http::ApiJson;
use crate::session::{account_event, invalid_message, Authenticated, ClientIp};
use crate::store::{AccountRow, StoreError};
use crate::{now, AppState};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/accounts/register/start", post(register_start))
        .route("/api/accounts/register/finish", post(register_finish))
        .route("/api/account/password/start", post(password_start))
        .route("/api/account/password/finish", post(password_finish))
}

fn username_taken() -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "username_taken",
        "That username is taken; choose another.",
    )
}

fn username(raw: &str) -> ApiResult<String> {
    normalize_username(raw).map_err(|m| ApiError::bad_request("invalid_username", m))
}

/// Checks the shape of what the client sends besides OPAQUE (the server cannot check more: it
/// holds no key to open the bundle).
pub fn check_key_material(keys: &PublicKeys, bundle: &SealedBlob) -> ApiResult<()> {
    if keys.x25519.len() != 32 || keys.ed25519.len() != 32 {
        return Err(ApiError::bad_request(
            "invalid_public_keys",
            "Public keys must be 32 bytes each.",
        ));
    }
    if keys.x25519.as_slice().iter().all(|b| *b == 0) {
        return Err(ApiError::bad_request(
            "invalid_public_keys",
            "The X25519 public key is all zeros.",
        ));
    }
    if bundle.nonce.len() != 12
        || bundle.ciphertext.len() < 16
        || bundle.ciphertext.len() > limits::MAX_SMALL_BLOB
    {
        return Err(ApiError::bad_request(
            "invalid_key_bundle",
            "The sealed key bundle is malformed.",
        ));
    }
    Ok(())
}

#[utoipa::path(post, path = "/api/accounts/register/start", request_body = RegisterStartRequest,
    responses((status = 200, body = RegisterStartResponse), (status = 400, body = optovault_shared::wire::ApiErrorBody),
    (status = 409, body = optovault_shared::wire::ApiErrorBody)), tag = "accounts")]
pub async fn register_start(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<RegisterStartRequest>,
) -> ApiResult<Json<RegisterStartResponse>> {
    let username = username(&req.username)?;
    let request = RegistrationRequest::<Suite>::deserialize(req.registration_request.as_slice())
        .map_err(|_| invalid_message())?;
    if state.store.account_by_username(&username).await?.is_some() {
        return Err(username_taken());
    }
    let started = ServerRegistration::<Suite>::start(&state.opaque, request, username.as_bytes())
        .map_err(|_| invalid_message())?;
    Ok(Json(RegisterStartResponse {
        registration_response: B64(started.message.serialize().to_vec()),
    }))
}

#[utoipa::path(post, path = "/api/accounts/register/finish", request_body = RegisterFinishRequest,
    responses((status = 201, body = AccountCreated), (status = 400, body = optovault_shared::wire::ApiErrorBody),
    (status = 409, body = optovault_shared::wire::ApiErrorBody)), tag = "accounts")]
pub async fn register_finish(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(req): ApiJson<RegisterFinishRequest>,
) -> ApiResult<(StatusCode, Json<AccountCreated>)> {
    let username = username(&req.username)?;
    let upload = RegistrationUpload::<Suite>::deserialize(req.registration_upload.as_slice())
        .map_err(|_| invalid_message())?;
    check_key_material(&req.public_keys, &req.sealed_key_bundle)?;
    let account_id = Uuid::new_v4();
    let account = AccountRow {
        account_id,
        username,
        password_file: ServerRegistration::<Suite>::finish(upload)
            .serialize()
            .to_vec(),
        public_keys: req.public_keys,
        sealed_key_bundle: req.sealed_key_bundle,
        created_at: now(),
        last_login_at: None,
        totp: None,
        password_set_at: now(),
        must_change_password: false,
        recovery: None,
        mfa_recovery_hashes: vec![],
        passkeys: vec![],
        pending_passkey: None,
    };
    match state
        .store
        .create_account(
            account,
            Some(account_event("account_created", Some(account_id), "ok", ip)),
        )
        .await
    {
        Err(StoreError::Conflict(_)) => return Err(username_taken()),
        other => other?,
    }
    Ok((StatusCode::CREATED, Json(AccountCreated { account_id })))
}

/// A password change needs a login this recent: the caller has just proven the current password
/// (a stolen session cookie alone cannot change it).
pub const RECENT_LOGIN_SECS: i64 = 10 * 60;

pub fn require_recent_login(auth: &Authenticated) -> ApiResult<()> {
    if now() - auth.created_at > RECENT_LOGIN_SECS {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "reauthentication_required",
            "Log in again to change your password.",
        ));
    }
    Ok(())
}

/// Step 1 of a password change: a new OPAQUE registration for the same username.
#[utoipa::path(post, path = "/api/account/password/start", request_body = PasswordChangeStart,
    responses((status = 200, body = RegisterStartResponse), (status = 403, body = optovault_shared::wire::ApiErrorBody)), tag = "accounts")]
pub async fn password_start(
    State(state): State<AppState>,
    auth: Authenticated,
    ApiJson(req): ApiJson<PasswordChangeStart>,
) -> ApiResult<Json<RegisterStartResponse>> {
    require_recent_login(&auth)?;
    let account = state
        .store
        .account(auth.account_id)
        .await?
        .ok_or_else(ApiError::unauthenticated)?;
    let request = RegistrationRequest::<Suite>::deserialize(req.registration_request.as_slice())
        .map_err(|_| invalid_message())?;
    let started =
        ServerRegistration::<Suite>::start(&state.opaque, request, account.username.as_bytes())
            .map_err(|_| invalid_message())?;
    Ok(Json(RegisterStartResponse {
        registration_response: B64(started.message.serialize().to_vec()),
    }))
}

/// Step 2: the new password file and the re-sealed key bundle replace the old ones in one step;
/// every other session of the account ends.
#[utoipa::path(post, path = "/api/account/password/finish", request_body = PasswordChangeFinish,
    responses((status = 204), (status = 400, body = optovault_shared::wire::ApiErrorBody),
    (status = 403, body = optovault_shared::wire::ApiErrorBody)), tag = "accounts")]
pub async fn password_finish(
    State(state): State<AppState>,
    auth: Authenticated,
    ApiJson(req): ApiJson<PasswordChangeFinish>,
) -> ApiResult<StatusCode> {
    require_recent_login(&auth)?;
    let account = state
        .store
        .account(auth.account_id)
        .await?
        .ok_or_else(ApiError::unauthenticated)?;
    let upload = RegistrationUpload::<Suite>::deserialize(req.registration_upload.as_slice())
        .map_err(|_| invalid_message())?;
    check_key_material(&account.public_keys, &req.sealed_key_bundle)?;
    let file = ServerRegistration::<Suite>::finish(upload)
        .serialize()
        .to_vec();
    let revoked = state
        .store
        .change_password(
            auth.account_id,
            file,
            req.sealed_key_bundle,
            auth.token_hash,
        )
        .await?;
    tracing::info!(sessions_revoked = revoked, "password changed");
    let at = now();
    state
        .store
        .update_account(
            auth.account_id,
            Box::new(move |a| {
                a.password_set_at = at;
                a.must_change_password = false;
                Ok(())
            }),
            Some(account_event(
                "password_changed",
                Some(auth.account_id),
                "ok",
                auth.ip,
            )),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

//! Account registration with OPAQUE. The server gets the OPAQUE password file, the user's public
//! keys and their private keys sealed under a key only the password can re-derive.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use opaque_ke::{RegistrationRequest, RegistrationUpload, ServerRegistration};
use optovault_shared::opaque::Suite;
use optovault_shared::wire::{
    AccountCreated, PublicKeys, RegisterFinishRequest, RegisterStartRequest, RegisterStartResponse,
    SealedBlob,
};
use optovault_shared::{limits, normalize_username, B64};
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};
use crate::http::ApiJson;
use crate::session::{account_event, invalid_message, ClientIp};
use crate::store::{AccountRow, StoreError};
use crate::{now, AppState};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/accounts/register/start", post(register_start))
        .route("/api/accounts/register/finish", post(register_finish))
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
    };
    match state.store.create_account(account).await {
        Err(StoreError::Conflict(_)) => return Err(username_taken()),
        other => other?,
    }
    state
        .store
        .append_event(
            account_event("account_created", Some(account_id), "ok", ip),
            true,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(AccountCreated { account_id })))
}

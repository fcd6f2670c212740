//! Passkeys and security keys (WebAuthn, verified by webauthn-rs) as the second factor: register
//! several under names, remove them, and answer a login's second step with one. User
//! verification (PIN or biometric on the authenticator) is required, and the signature counter
//! is checked, so a cloned authenticator is refused.
//!
//! Ceremony state lives in the store, not in memory: a registration's challenge in the account
//! row, a login's challenge in the login attempt, each usable once and for five minutes.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, post};
use axum::{Json, Router};
use optovault_shared::wire::{
    PasskeyChallenge, PasskeyInfo, PasskeyLoginStart, PasskeyRegisterFinish, PasskeyRegisterStart,
    PasskeyRegistered,
};
use uuid::Uuid;
use webauthn_rs::prelude::{
    Passkey, PasskeyAuthentication, PasskeyRegistration, PublicKeyCredential,
    RegisterPublicKeyCredential, Url, Webauthn, WebauthnBuilder,
};

use crate::accounts::require_recent_login;
use crate::error::{ApiError, ApiResult};
use crate::http::ApiJson;
use crate::session::{account_event, Authenticated};
use crate::store::{AccountRow, PasskeyRow, PendingPasskey, StoreError};
use crate::{now, AppState};

/// How long a registration ceremony may take.
const CEREMONY_TTL_SECS: i64 = 300;
/// Enough for every device a person carries plus spares; bounds the account row.
pub const MAX_PASSKEYS: usize = 10;
const NAME_MAX: usize = 60;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/session/mfa/passkey", post(login_challenge))
        .route(
            "/api/account/mfa/passkeys/register/start",
            post(register_start),
        )
        .route(
            "/api/account/mfa/passkeys/register/finish",
            post(register_finish),
        )
        .route("/api/account/mfa/passkeys/{passkey_id}", delete(remove))
}

/// The relying party for `public_url`: its host is the WebAuthn RP ID, its origin the only one
/// accepted, except that for `localhost` any port is accepted (development and tests). Browsers
/// refuse IP addresses as RP IDs, so passkeys need a host name.
pub fn relying_party(public_url: &str) -> Result<Webauthn, String> {
    let url = Url::parse(public_url).map_err(|e| format!("public URL {public_url:?}: {e}"))?;
    let host = url
        .host_str()
        .ok_or_else(|| format!("public URL {public_url:?} has no host"))?
        .to_string();
    WebauthnBuilder::new(&host, &url)
        .and_then(|b| {
            b.rp_name("OptoVault")
                .allow_any_port(host == "localhost")
                .build()
        })
        .map_err(|e| format!("WebAuthn relying party for {public_url:?}: {e}"))
}

pub fn info(p: &PasskeyRow) -> PasskeyInfo {
    PasskeyInfo {
        id: p.id,
        name: p.name.clone(),
        created_at: p.created_at,
        last_used_at: p.last_used_at,
    }
}

fn stored_passkey(p: &PasskeyRow) -> Result<Passkey, StoreError> {
    serde_json::from_value(p.credential.clone()).map_err(|_| StoreError::Corrupt("accounts"))
}

fn bad_credential() -> ApiError {
    ApiError::bad_request(
        "passkey_failed",
        "The passkey's answer could not be verified; try again.",
    )
}

/// Starts registering a passkey: WebAuthn creation options, excluding the account's existing
/// credentials (so one authenticator is not registered twice).
#[utoipa::path(post, path = "/api/account/mfa/passkeys/register/start", request_body = PasskeyRegisterStart,
    responses((status = 200, body = PasskeyChallenge), (status = 400, body = optovault_shared::wire::ApiErrorBody),
    (status = 409, body = optovault_shared::wire::ApiErrorBody)), tag = "accounts")]
pub async fn register_start(
    State(state): State<AppState>,
    auth: Authenticated,
    ApiJson(req): ApiJson<PasskeyRegisterStart>,
) -> ApiResult<Json<PasskeyChallenge>> {
    let name = req.name.trim().to_string();
    if name.is_empty() || name.chars().count() > NAME_MAX || name.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "invalid_name",
            "Name the passkey (1 to 60 characters), e.g. \"Front desk YubiKey\".",
        ));
    }
    let account = state
        .store
        .account(auth.account_id)
        .await?
        .ok_or_else(ApiError::unauthenticated)?;
    if account.passkeys.len() >= MAX_PASSKEYS {
        return Err(too_many());
    }
    let exclude = account
        .passkeys
        .iter()
        .map(|p| stored_passkey(p).map(|k| k.cred_id().clone()))
        .collect::<Result<Vec<_>, _>>()?;
    let (options, registration) = state
        .webauthn
        .start_passkey_registration(
            account.account_id,
            &account.username,
            &account.username,
            Some(exclude),
        )
        .map_err(|e| {
            tracing::warn!(error = %e, "passkey registration could not start");
            ApiError::internal()
        })?;
    let pending = PendingPasskey {
        name,
        state: serde_json::to_value(&registration).map_err(|_| ApiError::internal())?,
        expires_at: now() + CEREMONY_TTL_SECS,
    };
    state
        .store
        .update_account(
            auth.account_id,
            Box::new(move |a| {
                a.pending_passkey = Some(pending.clone());
                Ok(())
            }),
            None,
        )
        .await?;
    Ok(Json(PasskeyChallenge {
        options: serde_json::to_value(&options).map_err(|_| ApiError::internal())?,
    }))
}

fn too_many() -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "too_many_passkeys",
        "This account has the most passkeys allowed (10); remove one first.",
    )
}

/// Finishes a registration: verifies the authenticator's answer against the pending challenge,
/// stores the credential and issues a fresh set of recovery codes.
#[utoipa::path(post, path = "/api/account/mfa/passkeys/register/finish", request_body = PasskeyRegisterFinish,
    responses((status = 200, body = PasskeyRegistered), (status = 400, body = optovault_shared::wire::ApiErrorBody)), tag = "accounts")]
pub async fn register_finish(
    State(state): State<AppState>,
    auth: Authenticated,
    ApiJson(req): ApiJson<PasskeyRegisterFinish>,
) -> ApiResult<Json<PasskeyRegistered>> {
    let credential: RegisterPublicKeyCredential =
        serde_json::from_value(req.credential).map_err(|_| bad_credential())?;
    let account = state
        .store
        .account(auth.account_id)
        .await?
        .ok_or_else(ApiError::unauthenticated)?;
    let pending = account
        .pending_passkey
        .clone()
        .filter(|p| p.expires_at > now())
        .ok_or_else(|| {
            ApiError::bad_request(
                "no_passkey_registration",
                "Start adding the passkey again: that step expired.",
            )
        })?;
    let registration: PasskeyRegistration = serde_json::from_value(pending.state.clone())
        .map_err(|_| StoreError::Corrupt("accounts"))?;
    let passkey = state
        .webauthn
        .finish_passkey_registration(&credential, &registration)
        .map_err(|e| {
            tracing::info!(error = %e, "passkey registration refused");
            bad_credential()
        })?;
    let row = PasskeyRow {
        id: Uuid::new_v4(),
        name: pending.name.clone(),
        credential: serde_json::to_value(&passkey).map_err(|_| ApiError::internal())?,
        created_at: now(),
        last_used_at: None,
    };
    let (codes, hashes) = crate::mfa::issue_recovery_codes();
    let stored = row.clone();
    let cred_id = passkey.cred_id().clone();
    state
        .store
        .update_account(
            auth.account_id,
            Box::new(move |a| {
                // The challenge answers once, whatever happens next.
                let Some(p) = a.pending_passkey.take() else {
                    return Err(StoreError::Conflict("no registration".into()));
                };
                if p != pending {
                    return Err(StoreError::Conflict("registration restarted".into()));
                }
                if a.passkeys.len() >= MAX_PASSKEYS {
                    return Err(StoreError::Conflict("too many".into()));
                }
                for existing in &a.passkeys {
                    if stored_passkey(existing)?.cred_id() == &cred_id {
                        return Err(StoreError::Conflict("already registered".into()));
                    }
                }
                a.passkeys.push(stored.clone());
                a.mfa_recovery_hashes = hashes.clone();
                Ok(())
            }),
            Some(account_event(
                "passkey_added",
                Some(auth.account_id),
                "ok",
                auth.ip,
            )),
        )
        .await
        .map_err(|e| match e {
            StoreError::Conflict(_) => ApiError::new(
                StatusCode::CONFLICT,
                "passkey_registration_conflict",
                "That passkey is already registered, or registration was restarted elsewhere.",
            ),
            e => e.into(),
        })?;
    Ok(Json(PasskeyRegistered {
        passkey: info(&row),
        recovery_codes: codes,
    }))
}

/// Removes a passkey. Needs a login less than 10 minutes old (a stolen session alone cannot
/// strip an account's second factor). Removing the last second factor drops the recovery codes.
#[utoipa::path(delete, path = "/api/account/mfa/passkeys/{passkey_id}", params(("passkey_id" = Uuid, Path)),
    responses((status = 204), (status = 403, body = optovault_shared::wire::ApiErrorBody), (status = 404, body = optovault_shared::wire::ApiErrorBody)), tag = "accounts")]
pub async fn remove(
    State(state): State<AppState>,
    auth: Authenticated,
    Path(passkey_id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    require_recent_login(&auth)?;
    state
        .store
        .update_account(
            auth.account_id,
            Box::new(move |a| {
                let before = a.passkeys.len();
                a.passkeys.retain(|p| p.id != passkey_id);
                if a.passkeys.len() == before {
                    return Err(StoreError::Conflict("no such passkey".into()));
                }
                if !a.has_second_factor() {
                    a.mfa_recovery_hashes.clear();
                }
                Ok(())
            }),
            Some(account_event(
                "passkey_removed",
                Some(auth.account_id),
                "ok",
                auth.ip,
            )),
        )
        .await
        .map_err(|e| match e {
            StoreError::Conflict(_) => ApiError::not_found(),
            e => e.into(),
        })?;
    Ok(StatusCode::NO_CONTENT)
}

/// A passkey challenge for a login waiting for its second factor. Asking again replaces the
/// previous challenge of that login.
#[utoipa::path(post, path = "/api/session/mfa/passkey", request_body = PasskeyLoginStart,
    responses((status = 200, body = PasskeyChallenge), (status = 401, body = optovault_shared::wire::ApiErrorBody)), tag = "session")]
pub async fn login_challenge(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<PasskeyLoginStart>,
) -> ApiResult<Response> {
    let mut attempt = state
        .store
        .take_login_attempt(req.mfa_token)
        .await?
        .filter(|a| a.awaiting_mfa && a.expires_at > now())
        .ok_or_else(crate::mfa::step_expired)?;
    let account = match attempt.account_id {
        Some(id) => state.store.account(id).await?,
        None => None,
    }
    .ok_or(StoreError::Corrupt("login_attempts"))?;
    let passkeys = account
        .passkeys
        .iter()
        .map(stored_passkey)
        .collect::<Result<Vec<_>, _>>()?;
    if passkeys.is_empty() {
        state.store.put_login_attempt(attempt).await?;
        return Err(ApiError::bad_request(
            "no_passkeys",
            "This account has no passkey; use the authenticator app or a recovery code.",
        ));
    }
    let (options, authentication) = state
        .webauthn
        .start_passkey_authentication(&passkeys)
        .map_err(|e| {
            tracing::warn!(error = %e, "passkey authentication could not start");
            ApiError::internal()
        })?;
    attempt.passkey_challenge =
        Some(serde_json::to_value(&authentication).map_err(|_| ApiError::internal())?);
    state.store.put_login_attempt(attempt).await?;
    Ok(Json(PasskeyChallenge {
        options: serde_json::to_value(&options).map_err(|_| ApiError::internal())?,
    })
    .into_response())
}

/// Verifies a passkey assertion against the challenge `challenge` issued for `account`'s
/// login, and records the use (signature counter, last used) atomically. `Ok(false)` when the
/// assertion does not verify; a counter that went backwards (a cloned authenticator) is refused.
pub async fn check_assertion(
    state: &AppState,
    account: &AccountRow,
    challenge: Option<&serde_json::Value>,
    assertion: &serde_json::Value,
) -> ApiResult<bool> {
    let Some(challenge) = challenge else {
        return Ok(false);
    };
    let Ok(credential) = serde_json::from_value::<PublicKeyCredential>(assertion.clone()) else {
        return Ok(false);
    };
    let authentication: PasskeyAuthentication = serde_json::from_value(challenge.clone())
        .map_err(|_| StoreError::Corrupt("login_attempts"))?;
    let result = match state
        .webauthn
        .finish_passkey_authentication(&credential, &authentication)
    {
        Ok(r) => r,
        Err(e) => {
            tracing::info!(error = %e, "passkey assertion refused");
            return Ok(false);
        }
    };
    let at = now();
    let updated = state
        .store
        .update_account(
            account.account_id,
            Box::new(move |a| {
                for row in a.passkeys.iter_mut() {
                    let mut key = stored_passkey(row)?;
                    if key.update_credential(&result).is_some() {
                        row.credential = serde_json::to_value(&key)
                            .map_err(|_| StoreError::Corrupt("accounts"))?;
                        row.last_used_at = Some(at);
                        return Ok(());
                    }
                }
                // The credential was removed between the challenge and the answer.
                Err(StoreError::Conflict("passkey removed".into()))
            }),
            None,
        )
        .await;
    match updated {
        Ok(_) => Ok(true),
        Err(StoreError::Conflict(_)) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

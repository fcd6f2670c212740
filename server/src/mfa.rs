//! Second factor: TOTP (RFC 6238; SHA-1, 6 digits, 30-second steps, one step of clock skew),
//! verified by the server, with ten single-use recovery codes stored as SHA-256 hashes. A login
//! of an account with TOTP gets a session only after the code: the password step answers 202
//! with a short-lived token instead.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use optovault_shared::wire::{
    MfaStatus, MfaVerifyRequest, RecoveryCodes, TotpCode, TotpDisableRequest, TotpEnrollment,
};
use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};
use totp_rs::{Algorithm, Secret, TOTP};

use crate::error::{ApiError, ApiResult};
use crate::http::ApiJson;
use crate::session::{account_event, issue_session, Authenticated, ClientIp};
use crate::store::{AccountRow, StoreError, TotpState};
use crate::{now, throttle, AppState};

pub const STEP_SECS: u64 = 30;
/// Wrong codes allowed on one login before it must start over.
pub const MAX_FAILURES_PER_LOGIN: u32 = 5;
/// Wrong codes per account before backoff (across logins).
pub const MFA_FREE_ATTEMPTS: u32 = 5;
const RECOVERY_CODES: usize = 10;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/session/mfa", post(verify))
        .route("/api/account/mfa", get(status))
        .route("/api/account/mfa/totp/enroll", post(enroll))
        .route("/api/account/mfa/totp/confirm", post(confirm))
        .route("/api/account/mfa/totp/disable", post(disable))
}

fn totp(secret: &[u8], username: &str) -> Result<TOTP, StoreError> {
    TOTP::new(
        Algorithm::SHA1,
        6,
        1,
        STEP_SECS,
        secret.to_vec(),
        Some("OptoVault".into()),
        username.to_string(),
    )
    .map_err(|_| StoreError::Corrupt("accounts"))
}

/// The time step a code belongs to, if it is valid at `now` (within one step either way) and
/// newer than `last_step` (a code is never accepted twice).
pub fn matching_step(totp: &TOTP, code: &str, now: u64, last_step: u64) -> Option<u64> {
    let code = code.trim().replace(' ', "");
    if code.len() != 6 || !code.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let current = now / STEP_SECS;
    [current.saturating_sub(1), current, current + 1]
        .into_iter()
        .filter(|step| *step > last_step)
        .find(|step| {
            let expected = totp.generate(step * STEP_SECS);
            subtle::ConstantTimeEq::ct_eq(expected.as_bytes(), code.as_bytes()).into()
        })
}

fn hash_recovery(code: &str) -> [u8; 32] {
    let normal: String = code
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect::<String>()
        .to_ascii_uppercase();
    Sha256::digest(normal.as_bytes()).into()
}

/// The second factors a login of this account can answer with.
pub fn methods(account: &AccountRow) -> Vec<String> {
    let mut m = Vec::new();
    if account.totp.as_ref().is_some_and(|t| t.confirmed) {
        m.push("totp".to_string());
    }
    if !account.passkeys.is_empty() {
        m.push("passkey".to_string());
    }
    if !account.mfa_recovery_hashes.is_empty() {
        m.push("recovery_code".to_string());
    }
    m
}

/// A fresh set of recovery codes and their hashes (issued whenever a second factor is added).
pub fn issue_recovery_codes() -> (Vec<String>, Vec<[u8; 32]>) {
    let codes = new_recovery_codes();
    let hashes = codes.iter().map(|c| hash_recovery(c)).collect();
    (codes, hashes)
}

fn new_recovery_codes() -> Vec<String> {
    (0..RECOVERY_CODES)
        .map(|_| {
            let mut b = [0u8; 10];
            OsRng.fill_bytes(&mut b);
            let s = data_encoding_base32(&b);
            format!("{}-{}", &s[..8], &s[8..16])
        })
        .collect()
}

/// 80 random bits as 16 base32 characters (RFC 4648 alphabet, no padding).
fn data_encoding_base32(b: &[u8; 10]) -> String {
    match Secret::Raw(b.to_vec()).to_encoded() {
        Secret::Encoded(s) => s,
        Secret::Raw(_) => unreachable!("to_encoded returns Encoded"),
    }
}

/// Checks a code or recovery code against an account's TOTP and records its use (the step, or
/// the recovery code removed) atomically. `Ok(false)` for a wrong code.
pub async fn check_second_factor(
    state: &AppState,
    account: &AccountRow,
    code: Option<&str>,
    recovery: Option<&str>,
) -> ApiResult<bool> {
    if !account.has_second_factor() {
        return Ok(false);
    }
    let at = now() as u64;
    let username = account.username.clone();
    let code = code.map(str::to_string);
    let recovery = recovery.map(hash_recovery);
    let result = state
        .store
        .update_account(
            account.account_id,
            Box::new(move |a| {
                if let Some(code) = &code {
                    let Some(t) = a.totp.as_mut().filter(|t| t.confirmed) else {
                        return Err(StoreError::Conflict("no authenticator app".into()));
                    };
                    let gen = totp(&t.secret, &username)?;
                    let step = matching_step(&gen, code, at, t.last_step)
                        .ok_or_else(|| StoreError::Conflict("wrong code".into()))?;
                    t.last_step = step;
                    return Ok(());
                }
                if let Some(h) = &recovery {
                    let before = a.mfa_recovery_hashes.len();
                    a.mfa_recovery_hashes.retain(|x| x != h);
                    if a.mfa_recovery_hashes.len() < before {
                        return Ok(());
                    }
                }
                Err(StoreError::Conflict("wrong code".into()))
            }),
            None,
        )
        .await;
    match result {
        Ok(_) => Ok(true),
        Err(StoreError::Conflict(_)) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

pub fn step_expired() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "mfa_expired",
        "Log in again: this sign-in step expired.",
    )
}

fn wrong_code() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "mfa_failed",
        "That code is not right (or was already used).",
    )
}

/// The second step of a login: a code, then the session.
#[utoipa::path(post, path = "/api/session/mfa", request_body = MfaVerifyRequest,
    responses((status = 200, body = optovault_shared::wire::SessionInfo), (status = 401, body = optovault_shared::wire::ApiErrorBody),
    (status = 429, body = optovault_shared::wire::ApiErrorBody)), tag = "session")]
pub async fn verify(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: axum::http::HeaderMap,
    ApiJson(req): ApiJson<MfaVerifyRequest>,
) -> ApiResult<Response> {
    let mut attempt = state
        .store
        .take_login_attempt(req.mfa_token)
        .await?
        .filter(|a| a.awaiting_mfa && a.expires_at > now())
        .ok_or_else(step_expired)?;
    let account_id = attempt
        .account_id
        .ok_or(StoreError::Corrupt("login_attempts"))?;
    let account = state
        .store
        .account(account_id)
        .await?
        .ok_or(StoreError::Corrupt("accounts"))?;
    let key = format!("mfa:{account_id}");
    let at = now();
    if let Some(row) = state.store.throttle(&key).await? {
        if row.locked_until > at {
            state.store.put_login_attempt(attempt).await?;
            return Ok(throttle::TooManyAttempts {
                retry_after: row.locked_until - at,
            }
            .into_response());
        }
    }
    state
        .store
        .update_throttle(
            &key,
            Box::new(move |r| Some(throttle::after_attempt(r, at, MFA_FREE_ATTEMPTS))),
        )
        .await?;
    // A passkey challenge answers once: the attempt is put back without it.
    let challenge = attempt.passkey_challenge.take();
    let passed = match &req.passkey {
        Some(assertion) => {
            crate::passkeys::check_assertion(&state, &account, challenge.as_ref(), assertion)
                .await?
        }
        None => {
            check_second_factor(
                &state,
                &account,
                req.code.as_deref(),
                req.recovery_code.as_deref(),
            )
            .await?
        }
    };
    if !passed {
        state
            .store
            .append_event(
                account_event("mfa_failed", Some(account_id), "denied", ip),
                true,
            )
            .await?;
        let mut again = attempt;
        again.mfa_failures += 1;
        if again.mfa_failures < MAX_FAILURES_PER_LOGIN {
            state.store.put_login_attempt(again).await?;
        }
        return Err(if req.passkey.is_some() {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "mfa_failed",
                "The passkey's answer is not right (or was already used); try again.",
            )
        } else {
            wrong_code()
        });
    }
    state
        .store
        .update_throttle(&key, Box::new(|_| None))
        .await?;
    issue_session(&state, &account, ip, &headers).await
}

#[utoipa::path(get, path = "/api/account/mfa", responses((status = 200, body = MfaStatus)), tag = "accounts")]
pub async fn status(
    State(state): State<AppState>,
    auth: Authenticated,
) -> ApiResult<Json<MfaStatus>> {
    let a = state
        .store
        .account(auth.account_id)
        .await?
        .ok_or_else(ApiError::unauthenticated)?;
    Ok(Json(MfaStatus {
        totp_enabled: a.totp.as_ref().is_some_and(|t| t.confirmed),
        recovery_codes_left: a.mfa_recovery_hashes.len() as u32,
        passkeys: a.passkeys.iter().map(crate::passkeys::info).collect(),
    }))
}

/// A new, unconfirmed TOTP secret (replacing an unconfirmed one).
#[utoipa::path(post, path = "/api/account/mfa/totp/enroll", responses((status = 200, body = TotpEnrollment),
    (status = 409, body = optovault_shared::wire::ApiErrorBody)), tag = "accounts")]
pub async fn enroll(
    State(state): State<AppState>,
    auth: Authenticated,
) -> ApiResult<Json<TotpEnrollment>> {
    let mut secret = vec![0u8; 20];
    OsRng.fill_bytes(&mut secret);
    let stored = secret.clone();
    let a = state
        .store
        .update_account(
            auth.account_id,
            Box::new(move |a| {
                if a.totp.as_ref().is_some_and(|t| t.confirmed) {
                    return Err(StoreError::Conflict("a confirmed second factor".into()));
                }
                a.totp = Some(TotpState {
                    secret: stored.clone(),
                    confirmed: false,
                    last_step: 0,
                });
                Ok(())
            }),
            None,
        )
        .await
        .map_err(|e| match e {
            StoreError::Conflict(_) => ApiError::new(
                StatusCode::CONFLICT,
                "mfa_already_enabled",
                "Turn the current authenticator off first.",
            ),
            e => e.into(),
        })?;
    let gen = totp(&secret, &a.username)?;
    Ok(Json(TotpEnrollment {
        secret_base32: gen.get_secret_base32(),
        otpauth_uri: gen.get_url(),
    }))
}

/// Confirms the pending secret with a code from the app; returns the recovery codes (once).
#[utoipa::path(post, path = "/api/account/mfa/totp/confirm", request_body = TotpCode,
    responses((status = 200, body = RecoveryCodes), (status = 400, body = optovault_shared::wire::ApiErrorBody)), tag = "accounts")]
pub async fn confirm(
    State(state): State<AppState>,
    auth: Authenticated,
    ApiJson(req): ApiJson<TotpCode>,
) -> ApiResult<Json<RecoveryCodes>> {
    let (codes, hashes) = issue_recovery_codes();
    let at = now() as u64;
    state
        .store
        .update_account(
            auth.account_id,
            Box::new(move |a| {
                let username = a.username.clone();
                let Some(t) = a.totp.as_mut().filter(|t| !t.confirmed) else {
                    return Err(StoreError::Conflict("nothing to confirm".into()));
                };
                let step = matching_step(&totp(&t.secret, &username)?, &req.code, at, 0)
                    .ok_or_else(|| StoreError::Conflict("wrong code".into()))?;
                t.confirmed = true;
                t.last_step = step;
                a.mfa_recovery_hashes = hashes.clone();
                Ok(())
            }),
            Some(account_event(
                "mfa_enabled",
                Some(auth.account_id),
                "ok",
                auth.ip,
            )),
        )
        .await
        .map_err(|e| match e {
            StoreError::Conflict(_) => ApiError::bad_request(
                "mfa_failed",
                "That code is not right; check the app's clock and try the next code.",
            ),
            e => e.into(),
        })?;
    Ok(Json(RecoveryCodes { codes }))
}

/// Turns TOTP off (with a current code or a recovery code).
#[utoipa::path(post, path = "/api/account/mfa/totp/disable", request_body = TotpDisableRequest,
    responses((status = 204), (status = 401, body = optovault_shared::wire::ApiErrorBody)), tag = "accounts")]
pub async fn disable(
    State(state): State<AppState>,
    auth: Authenticated,
    ApiJson(req): ApiJson<TotpDisableRequest>,
) -> ApiResult<StatusCode> {
    let a = state
        .store
        .account(auth.account_id)
        .await?
        .ok_or_else(ApiError::unauthenticated)?;
    if !check_second_factor(
        &state,
        &a,
        req.code.as_deref(),
        req.recovery_code.as_deref(),
    )
    .await?
    {
        return Err(wrong_code());
    }
    state
        .store
        .update_account(
            auth.account_id,
            Box::new(|a| {
                a.totp = None;
                if !a.has_second_factor() {
                    a.mfa_recovery_hashes.clear();
                }
                Ok(())
            }),
            Some(account_event(
                "mfa_disabled",
                Some(auth.account_id),
                "ok",
                auth.ip,
            )),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

//! Registration and login: the client half of OPAQUE and the user's key bundle. The password
//! stays in this module's callers' memory; only OPAQUE messages go to the server.

use optovault_shared::crypto::{
    login_finish, login_start, open_key_bundle, registration_finish, registration_start,
    seal_key_bundle, CryptoError, ExportKey, RecoveryKey, UserKeys,
};
use optovault_shared::wire::{
    LoginFinishRequest, LoginStartRequest, MfaVerifyRequest, PasskeyLoginStart,
    PasswordChangeFinish, PasswordChangeStart, RecoveryFinishRequest, RecoverySetup,
    RecoveryStartRequest, RegisterFinishRequest, RegisterStartRequest, SessionInfo,
};
use optovault_shared::B64;
use uuid::Uuid;

use crate::api::{self, ApiError};
use crate::state::Unlocked;
use crate::util::let_browser_paint;

/// The one message for every failed login of the "who are you" kind.
pub const WRONG_CREDENTIALS: &str = "Wrong username or password.";

#[derive(Debug)]
pub enum AuthError {
    /// Wrong password, unknown user, or a server answer not for this password.
    WrongCredentials,
    /// Too many attempts for this username (or from this address): the server's message says how
    /// long to wait.
    TooManyAttempts(String),
    /// The server refused or could not be reached.
    Api(ApiError),
    /// Something local went wrong (a malformed protocol message, a key bundle that does not open).
    Local(String),
    /// The second-factor step took too long (or was spent): start again with the password.
    MfaExpired(String),
}

impl std::fmt::Display for AuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AuthError::WrongCredentials => f.write_str(WRONG_CREDENTIALS),
            AuthError::TooManyAttempts(m) => f.write_str(m),
            AuthError::Api(e) => write!(f, "{e}"),
            AuthError::Local(m) | AuthError::MfaExpired(m) => f.write_str(m),
        }
    }
}

impl From<ApiError> for AuthError {
    fn from(e: ApiError) -> Self {
        AuthError::Api(e)
    }
}

fn protocol_error(_: CryptoError) -> AuthError {
    AuthError::Local("The server's answer was malformed. Please try again.".into())
}

/// Creates the account: OPAQUE registration, fresh key pairs, the key bundle sealed under a key
/// derived from OPAQUE's export key. `username` must already be normalised.
pub async fn register(username: &str, password: &str) -> Result<(), AuthError> {
    let (state, request) = registration_start(password).map_err(protocol_error)?;
    let started = api::register_start(&RegisterStartRequest {
        username: username.to_string(),
        registration_request: B64(request),
    })
    .await?;
    // Argon2id runs next and blocks the page for a moment: let the spinner paint first.
    let_browser_paint().await;
    let (upload, export_key) = registration_finish(
        state,
        password,
        username,
        started.registration_response.as_slice(),
    )
    .map_err(protocol_error)?;
    let keys = UserKeys::generate();
    let sealed_key_bundle = seal_key_bundle(&keys, &export_key, username);
    drop(export_key);
    let public_keys = keys.public_keys();
    drop(keys);
    api::register_finish(&RegisterFinishRequest {
        username: username.to_string(),
        registration_upload: B64(upload),
        public_keys,
        sealed_key_bundle,
    })
    .await?;
    Ok(())
}

/// The server's "Try again in N seconds." message, or a plain one if it sent none.
fn too_many_message(e: &ApiError) -> String {
    if e.message.starts_with("Too many login attempts") {
        e.message.clone()
    } else {
        "Too many login attempts. Wait a little and try again.".into()
    }
}

/// A login whose password was right, waiting for the second factor. Holds OPAQUE's export key
/// (zeroized when this is dropped) to open the key bundle once the code is accepted.
pub struct PendingMfa {
    pub username: String,
    pub mfa_token: Uuid,
    pub methods: Vec<String>,
    export_key: ExportKey,
}

/// How a password login ended.
pub enum LoginOutcome {
    Done(Unlocked),
    NeedsCode(PendingMfa),
}

/// Logs in with OPAQUE and opens the key bundle (or stops before the second factor).
/// `username` must already be normalised.
pub async fn login(username: &str, password: &str) -> Result<LoginOutcome, AuthError> {
    let (state, request) = login_start(password).map_err(protocol_error)?;
    let started = api::login_start(&LoginStartRequest {
        username: username.to_string(),
        credential_request: B64(request),
    })
    .await
    .map_err(|e| match e.code.as_str() {
        "invalid_username" | "login_failed" => AuthError::WrongCredentials,
        // Nothing was started on the server, so there is no login to abort.
        "too_many_attempts" => AuthError::TooManyAttempts(too_many_message(&e)),
        _ => AuthError::Api(e),
    })?;
    let_browser_paint().await;
    let (finalization, export_key) = match login_finish(
        state,
        password,
        username,
        started.credential_response.as_slice(),
    ) {
        Ok(done) => done,
        Err(_) => {
            // Tell the server, so the failure is counted and logged; the answer does not matter.
            let _ = api::login_abort(started.login_id).await;
            return Err(AuthError::WrongCredentials);
        }
    };
    let finished = api::login_finish(&LoginFinishRequest {
        login_id: started.login_id,
        credential_finalization: B64(finalization),
    })
    .await
    .map_err(|e| {
        if e.status == 401 || e.code == "login_failed" {
            AuthError::WrongCredentials
        } else if e.code == "too_many_attempts" {
            AuthError::TooManyAttempts(too_many_message(&e))
        } else {
            AuthError::Api(e)
        }
    })?;
    match finished {
        api::LoginFinished::Session(session) => {
            let opened = open_session(session, &export_key, username).await;
            drop(export_key);
            opened.map(LoginOutcome::Done)
        }
        api::LoginFinished::MfaRequired(m) => Ok(LoginOutcome::NeedsCode(PendingMfa {
            username: username.to_string(),
            mfa_token: m.mfa_token,
            methods: m.methods,
            export_key,
        })),
    }
}

/// Opens the key bundle of a new session (ending the session when it does not open).
async fn open_session(
    session: SessionInfo,
    export_key: &ExportKey,
    username: &str,
) -> Result<Unlocked, AuthError> {
    let opened = open_key_bundle(
        &session.sealed_key_bundle,
        export_key,
        username,
        &session.public_keys,
    );
    match opened {
        Ok(keys) => Ok(Unlocked::new(
            session.account_id,
            username.to_string(),
            keys,
        )),
        Err(e) => {
            // The session is useless without the keys: end it.
            let _ = api::logout().await;
            Err(AuthError::Local(match e {
                CryptoError::PublicKeyMismatch => {
                    "The server presented public keys that are not this account's. \
                     Your data was not opened."
                        .into()
                }
                _ => "Your key bundle could not be opened. Your data was not opened.".into(),
            }))
        }
    }
}

/// What the user answers the second step of a login with.
pub enum SecondFactor {
    Code(String),
    RecoveryCode(String),
    /// Ask the browser for a passkey assertion (the challenge is fetched here).
    Passkey,
}

fn mfa_error(e: api::ApiError) -> AuthError {
    if e.code == "mfa_expired" {
        AuthError::MfaExpired(format!("{} Enter your password again.", e.message))
    } else {
        AuthError::Api(e)
    }
}

/// How `sign_in` ended.
pub enum SignIn {
    /// Logged in; the keys are in the app state.
    Done,
    /// The account has a second factor: ask for a code, then call [`finish_sign_in`].
    NeedsCode(PendingMfa),
}

/// Logs in and keeps the unlocked account in the app state (replacing any previous one).
pub async fn sign_in(
    app: crate::state::AppState,
    username: &str,
    password: &str,
) -> Result<SignIn, AuthError> {
    match login(username, password).await? {
        LoginOutcome::Done(unlocked) => {
            keep(app, unlocked);
            Ok(SignIn::Done)
        }
        LoginOutcome::NeedsCode(p) => Ok(SignIn::NeedsCode(p)),
    }
}

fn keep(app: crate::state::AppState, unlocked: Unlocked) {
    use leptos::prelude::Set;
    app.lock();
    app.session.set(Some(std::sync::Arc::new(unlocked)));
}

/// The second step: a TOTP code or a recovery code for a pending login; on success the key
/// bundle is opened with the kept export key and the account goes into the app state.
pub async fn finish_sign_in(
    app: crate::state::AppState,
    pending: &PendingMfa,
    factor: SecondFactor,
) -> Result<(), AuthError> {
    let (code, recovery_code, passkey) = match factor {
        SecondFactor::Code(c) => (Some(c), None, None),
        SecondFactor::RecoveryCode(r) => (None, Some(r), None),
        SecondFactor::Passkey => {
            let challenge = api::passkey_login_challenge(&PasskeyLoginStart {
                mfa_token: pending.mfa_token,
            })
            .await
            .map_err(mfa_error)?;
            let assertion = crate::passkeys::get(challenge.options)
                .await
                .map_err(AuthError::Local)?;
            (None, None, Some(assertion))
        }
    };
    let session = api::mfa_verify(&MfaVerifyRequest {
        mfa_token: pending.mfa_token,
        code,
        recovery_code,
        passkey,
    })
    .await
    .map_err(mfa_error)?;
    let unlocked = open_session(session, &pending.export_key, &pending.username).await?;
    keep(app, unlocked);
    Ok(())
}

/// Why a password change did not go through.
pub const REAUTH_NEEDED: &str = "Log in again, then change your password within 10 minutes.";

/// Changes the password of the logged-in account: a new OPAQUE registration for the same
/// username, and the same private keys sealed under the new export key. The server replaces both
/// in one step and ends every other session. `new_password` must already pass the policy.
pub async fn change_password(me: &Unlocked, new_password: &str) -> Result<(), AuthError> {
    let (state, request) = registration_start(new_password).map_err(protocol_error)?;
    let started = api::password_start(&PasswordChangeStart {
        registration_request: B64(request),
    })
    .await?;
    // Argon2id next: let the spinner paint.
    let_browser_paint().await;
    let (upload, export_key) = registration_finish(
        state,
        new_password,
        &me.username,
        started.registration_response.as_slice(),
    )
    .map_err(protocol_error)?;
    let sealed_key_bundle = seal_key_bundle(&me.keys, &export_key, &me.username);
    drop(export_key);
    api::password_finish(&PasswordChangeFinish {
        registration_upload: B64(upload),
        sealed_key_bundle,
    })
    .await?;
    Ok(())
}

/// Creates (or replaces) the recovery kit: a fresh 256-bit recovery key, my private keys sealed
/// under it and the hash of a verifier derived from it. The key itself never leaves the browser;
/// the caller shows it once.
pub async fn create_recovery_kit(me: &Unlocked) -> Result<RecoveryKey, AuthError> {
    let key = RecoveryKey::generate();
    api::recovery_setup(&RecoverySetup {
        sealed_key_bundle: key.seal_bundle(&me.keys, &me.username),
        verifier_hash: B64(key.verifier_hash(&me.username).to_vec()),
    })
    .await?;
    Ok(key)
}

/// How a reset with the recovery key ended, short of success.
#[derive(Debug)]
pub enum RecoverError {
    /// The account has a second factor and no code was given: ask for one and try again.
    NeedsCode,
    Failed(String),
}

pub const NOT_A_RECOVERY_KEY: &str = "That is not a recovery key.";
pub const WRONG_RECOVERY_KEY: &str = "That recovery key does not fit this account.";

/// The "forgot password" flow: a new OPAQUE registration for `username`, the private keys opened
/// with the recovery key and sealed again under the new export key. `username` must be
/// normalised and `new_password` must already pass the policy. `code` is a TOTP or a recovery
/// code (told apart by its form), used only when the account has a second factor.
pub async fn reset_with_recovery_key(
    username: &str,
    typed_key: &str,
    new_password: &str,
    code: Option<&str>,
) -> Result<(), RecoverError> {
    let fail = |m: String| RecoverError::Failed(m);
    let Some(key) = RecoveryKey::parse(typed_key) else {
        return Err(fail(NOT_A_RECOVERY_KEY.into()));
    };
    let (state, request) =
        registration_start(new_password).map_err(|e| fail(protocol_error(e).to_string()))?;
    let started = api::recovery_start(&RecoveryStartRequest {
        username: username.into(),
        registration_request: B64(request),
    })
    .await
    .map_err(|e| fail(e.message))?;
    let code = code.map(str::trim).filter(|c| !c.is_empty());
    if started.second_factor_required && code.is_none() {
        return Err(RecoverError::NeedsCode);
    }
    let keys = key
        .open_bundle(&started.recovery_bundle, username, &started.public_keys)
        .map_err(|_| fail(WRONG_RECOVERY_KEY.into()))?;
    // Argon2id next: let the spinner paint.
    let_browser_paint().await;
    let (upload, export_key) = registration_finish(
        state,
        new_password,
        username,
        started.registration_response.as_slice(),
    )
    .map_err(|e| fail(protocol_error(e).to_string()))?;
    let sealed_key_bundle = seal_key_bundle(&keys, &export_key, username);
    drop(export_key);
    // A TOTP code is six digits; anything else is taken for a one-time recovery code.
    let (totp, recovery_code) = match code {
        Some(c) if started.second_factor_required => {
            let digits: String = c.chars().filter(|ch| !ch.is_whitespace()).collect();
            if digits.len() == 6 && digits.chars().all(|ch| ch.is_ascii_digit()) {
                (Some(digits), None)
            } else {
                (None, Some(c.to_string()))
            }
        }
        _ => (None, None),
    };
    api::recovery_finish(&RecoveryFinishRequest {
        username: username.into(),
        verifier: B64(key.verifier(username).to_vec()),
        code: totp,
        recovery_code,
        registration_upload: B64(upload),
        sealed_key_bundle,
    })
    .await
    .map_err(|e| fail(e.message))
}

//! OPAQUE login, session cookies, logout, and the `Authenticated` extractor.
//!
//! The session token is 256 random bits, sent only in an HttpOnly, SameSite=Strict cookie and
//! stored only as its SHA-256. SameSite=Strict plus JSON-only request bodies (a cross-site form
//! cannot send `application/json` without a CORS preflight, which this server never grants) keep
//! other sites from riding the session.

use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use opaque_ke::{
    CredentialFinalization, CredentialRequest, ServerLogin, ServerLoginParameters,
    ServerRegistration,
};
use optovault_shared::opaque::{Identifiers, Suite, SERVER_IDENTITY};
use optovault_shared::wire::{
    LoginAbortRequest, LoginFinishRequest, LoginStartRequest, LoginStartResponse, MfaRequired,
    SessionInfo, SessionList, SessionView,
};
use optovault_shared::{normalize_username, B64};
use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::error::{ApiError, ApiResult};
use crate::http::ApiJson;
use crate::store::{AccountRow, EventDraft, LoginAttempt, SessionRow};
use crate::{now, throttle, AppState};

pub const COOKIE_NAME: &str = "ov_session";
/// How long the server keeps its half of a login between the two requests.
pub const LOGIN_ATTEMPT_TTL_SECS: i64 = 60;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/session/login/start", post(login_start))
        .route("/api/session/login/finish", post(login_finish))
        .route("/api/session/login/abort", post(login_abort))
        .route("/api/session/logout", post(logout))
        .route("/api/session", get(current))
        .route("/api/sessions", get(list_sessions))
        .route(
            "/api/sessions/{session_id}",
            axum::routing::delete(revoke_session),
        )
        .route("/api/sessions/revoke-others", post(revoke_other_sessions))
}

fn identifiers(username: &str) -> Identifiers<'_> {
    Identifiers {
        client: Some(username.as_bytes()),
        server: Some(SERVER_IDENTITY),
    }
}

pub(crate) fn invalid_message() -> ApiError {
    ApiError::bad_request("invalid_message", "Malformed OPAQUE message.")
}

fn client_ip(parts: &Parts) -> Option<String> {
    parts
        .extensions
        .get::<ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip().to_string())
}

/// The caller's IP for access events, from the connection (no proxy headers are trusted).
pub struct ClientIp(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientIp(client_ip(parts)))
    }
}

/// A caller with a valid session.
#[derive(Clone, Debug)]
pub struct Authenticated {
    pub account_id: Uuid,
    pub token_hash: [u8; 32],
    pub expires_at: i64,
    pub created_at: i64,
    /// When the session was last used before this request.
    pub last_seen: i64,
    pub session_id: Uuid,
    pub ip: Option<String>,
}

/// How often a session's last-seen time is written (it also drives the idle timeout).
const TOUCH_EVERY_SECS: i64 = 60;

fn session_token(headers: &HeaderMap) -> Option<Zeroizing<Vec<u8>>> {
    // One cookie, one name: splitting the header by hand is all the parsing it needs.
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .and_then(|(_, value)| B64::decode(value).ok())
        .filter(|t| t.len() == 32)
        .map(Zeroizing::new)
}

fn hash_token(token: &[u8]) -> [u8; 32] {
    Sha256::digest(token).into()
}

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = session_token(&parts.headers).ok_or_else(ApiError::unauthenticated)?;
        let token_hash = hash_token(&token);
        let session = state
            .store
            .session(token_hash)
            .await?
            .ok_or_else(ApiError::unauthenticated)?;
        let at = now();
        let idle = at - session.last_seen.max(session.created_at);
        if session.expires_at <= at || idle > state.settings.session_idle_secs {
            state.store.delete_session(token_hash, None).await?;
            return Err(ApiError::unauthenticated());
        }
        if idle >= TOUCH_EVERY_SECS {
            state.store.touch_session(token_hash, at).await?;
        }
        Ok(Authenticated {
            account_id: session.account_id,
            token_hash,
            expires_at: session.expires_at,
            created_at: session.created_at,
            last_seen: session.last_seen.max(session.created_at),
            session_id: session.session_id,
            ip: client_ip(parts),
        })
    }
}

pub(crate) fn account_event(
    action: &'static str,
    actor: Option<Uuid>,
    outcome: &'static str,
    ip: Option<String>,
) -> EventDraft {
    EventDraft {
        at: now(),
        actor,
        clinic_id: None,
        action,
        target: actor,
        count: 1,
        outcome,
        ip,
        detail: None,
    }
}

fn session_info(account: &AccountRow, expires_at: i64) -> SessionInfo {
    SessionInfo {
        account_id: account.account_id,
        username: account.username.clone(),
        public_keys: account.public_keys.clone(),
        sealed_key_bundle: account.sealed_key_bundle.clone(),
        expires_at,
    }
}

/// Step 1: evaluate the OPRF and send KE2. Unknown usernames get a well-formed fake response
/// (opaque-ke's dummy record), so the answer does not tell whether an account exists.
#[utoipa::path(post, path = "/api/session/login/start", request_body = LoginStartRequest,
    responses((status = 200, body = LoginStartResponse), (status = 400, body = optovault_shared::wire::ApiErrorBody)), tag = "session")]
pub async fn login_start(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(req): ApiJson<LoginStartRequest>,
) -> ApiResult<Response> {
    let username = normalize_username(&req.username)
        .map_err(|m| ApiError::bad_request("invalid_username", m))?;
    let request = CredentialRequest::<Suite>::deserialize(req.credential_request.as_slice())
        .map_err(|_| invalid_message())?;
    if let Err(wait) = throttle::admit_attempt(&state, &username, ip.as_deref(), now()).await? {
        let account = state.store.account_by_username(&username).await?;
        state
            .store
            .append_event(
                account_event(
                    "login_throttled",
                    account.map(|a| a.account_id),
                    "denied",
                    ip,
                ),
                false,
            )
            .await?;
        return Ok(wait.into_response());
    }
    let account = state.store.account_by_username(&username).await?;
    let password_file = match &account {
        // An imported account has no password until its recovery kit sets one: it fails like
        // an unknown username.
        Some(a) if a.password_file.is_empty() => None,
        Some(a) => Some(
            ServerRegistration::<Suite>::deserialize(&a.password_file)
                .map_err(|_| crate::store::StoreError::Corrupt("accounts"))?,
        ),
        None => None,
    };
    let started = ServerLogin::start(
        &mut OsRng,
        &state.opaque,
        password_file,
        request,
        username.as_bytes(),
        ServerLoginParameters {
            context: None,
            identifiers: identifiers(&username),
        },
    )
    .map_err(|_| invalid_message())?;
    let login_id = Uuid::new_v4();
    state
        .store
        .put_login_attempt(LoginAttempt {
            login_id,
            account_id: account.map(|a| a.account_id),
            state: started.state.serialize().to_vec(),
            expires_at: now() + LOGIN_ATTEMPT_TTL_SECS,
            awaiting_mfa: false,
            mfa_failures: 0,
            passkey_challenge: None,
        })
        .await?;
    Ok(Json(LoginStartResponse {
        login_id,
        credential_response: B64(started.message.serialize().to_vec()),
    })
    .into_response())
}

/// Step 2: check KE3. Only now is a session issued.
#[utoipa::path(post, path = "/api/session/login/finish", request_body = LoginFinishRequest,
    responses((status = 200, body = SessionInfo), (status = 401, body = optovault_shared::wire::ApiErrorBody)), tag = "session")]
pub async fn login_finish(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    ApiJson(req): ApiJson<LoginFinishRequest>,
) -> ApiResult<Response> {
    let finalization =
        CredentialFinalization::<Suite>::deserialize(req.credential_finalization.as_slice())
            .map_err(|_| invalid_message())?;
    let attempt = state
        .store
        .take_login_attempt(req.login_id)
        .await?
        .filter(|a| a.expires_at > now() && !a.awaiting_mfa)
        .ok_or_else(ApiError::login_failed)?;
    let Some(account_id) = attempt.account_id else {
        return login_failed(&state, None, ip).await;
    };
    let Some(account) = state.store.account(account_id).await? else {
        return login_failed(&state, None, ip).await;
    };
    let server_login = ServerLogin::<Suite>::deserialize(&attempt.state)
        .map_err(|_| crate::store::StoreError::Corrupt("login_attempts"))?;
    if server_login
        .finish(
            finalization,
            ServerLoginParameters {
                context: None,
                identifiers: identifiers(&account.username),
            },
        )
        .is_err()
    {
        return login_failed(&state, Some(account_id), ip).await;
    }
    if account.has_second_factor() {
        // The password was right; the session waits for the second factor. The login backoff is
        // not cleared yet, so knowing the password does not buy unlimited code guesses.
        let mfa_token = Uuid::new_v4();
        state
            .store
            .put_login_attempt(LoginAttempt {
                login_id: mfa_token,
                account_id: Some(account_id),
                state: vec![],
                expires_at: now() + MFA_STEP_TTL_SECS,
                awaiting_mfa: true,
                mfa_failures: 0,
                passkey_challenge: None,
            })
            .await?;
        return Ok((
            StatusCode::ACCEPTED,
            Json(MfaRequired {
                mfa_token,
                methods: crate::mfa::methods(&account),
            }),
        )
            .into_response());
    }
    issue_session(&state, &account, ip, &headers).await
}

/// How long the second step of a login may take.
pub const MFA_STEP_TTL_SECS: i64 = 300;

/// Creates a session for a fully authenticated account: clears its login backoff, stores the
/// hashed token, logs `login_ok`, and answers with the session info and the cookie.
pub async fn issue_session(
    state: &AppState,
    account: &AccountRow,
    ip: Option<String>,
    headers: &HeaderMap,
) -> ApiResult<Response> {
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|ua| ua.chars().take(200).collect::<String>());
    throttle::succeeded(state, &account.username, ip.as_deref()).await?;
    let mut token = Zeroizing::new([0u8; 32]);
    OsRng.fill_bytes(token.as_mut());
    let created_at = now();
    let expires_at = created_at + state.settings.session_ttl_secs;
    state
        .store
        .put_session(
            SessionRow {
                token_hash: hash_token(token.as_ref()),
                account_id: account.account_id,
                created_at,
                expires_at,
                session_id: Uuid::new_v4(),
                last_seen: created_at,
                ip: ip.clone(),
                user_agent,
            },
            Some(account_event(
                "login_ok",
                Some(account.account_id),
                "ok",
                ip,
            )),
        )
        .await?;
    let cookie = format!(
        "{COOKIE_NAME}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        B64::encode(token.as_ref()),
        state.settings.session_ttl_secs,
        if state.settings.cookie_secure {
            "; Secure"
        } else {
            ""
        }
    );
    let mut resp = Json(session_info(account, expires_at)).into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).expect("cookie is ASCII"),
    );
    Ok(resp)
}

async fn login_failed(
    state: &AppState,
    actor: Option<Uuid>,
    ip: Option<String>,
) -> ApiResult<Response> {
    state
        .store
        .append_event(account_event("login_failed", actor, "denied", ip), true)
        .await?;
    Err(ApiError::login_failed())
}

/// A client whose OPAQUE finish failed says so, so the failure is recorded (the server cannot
/// otherwise tell a wrong password from an abandoned login).
#[utoipa::path(post, path = "/api/session/login/abort", request_body = LoginAbortRequest,
    responses((status = 204)), tag = "session")]
pub async fn login_abort(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(req): ApiJson<LoginAbortRequest>,
) -> ApiResult<StatusCode> {
    if let Some(attempt) = state.store.take_login_attempt(req.login_id).await? {
        state
            .store
            .append_event(
                account_event("login_failed", attempt.account_id, "denied", ip),
                true,
            )
            .await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/session",
    responses((status = 200, body = SessionInfo), (status = 401, body = optovault_shared::wire::ApiErrorBody)), tag = "session")]
pub async fn current(
    State(state): State<AppState>,
    auth: Authenticated,
) -> ApiResult<Json<SessionInfo>> {
    let account = state
        .store
        .account(auth.account_id)
        .await?
        .ok_or_else(ApiError::unauthenticated)?;
    Ok(Json(session_info(&account, auth.expires_at)))
}

#[utoipa::path(post, path = "/api/session/logout", responses((status = 204), (status = 401, body = optovault_shared::wire::ApiErrorBody)), tag = "session")]
pub async fn logout(State(state): State<AppState>, auth: Authenticated) -> ApiResult<Response> {
    state
        .store
        .delete_session(
            auth.token_hash,
            Some(account_event(
                "logout",
                Some(auth.account_id),
                "ok",
                auth.ip,
            )),
        )
        .await?;
    let mut resp = StatusCode::NO_CONTENT.into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("ov_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    Ok(resp)
}

fn session_view(s: &SessionRow, current: &Authenticated) -> SessionView {
    SessionView {
        session_id: s.session_id,
        created_at: s.created_at,
        last_seen: s.last_seen.max(s.created_at),
        expires_at: s.expires_at,
        ip: s.ip.clone(),
        user_agent: s.user_agent.clone(),
        current: s.token_hash == current.token_hash,
    }
}

/// My active sessions, newest first.
#[utoipa::path(get, path = "/api/sessions", responses((status = 200, body = SessionList),
    (status = 401, body = optovault_shared::wire::ApiErrorBody)), tag = "session")]
pub async fn list_sessions(
    State(state): State<AppState>,
    auth: Authenticated,
) -> ApiResult<Json<SessionList>> {
    let at = now();
    let mut sessions: Vec<SessionView> = state
        .store
        .sessions_of(auth.account_id)
        .await?
        .iter()
        .filter(|s| s.expires_at > at)
        .map(|s| session_view(s, &auth))
        .collect();
    sessions.sort_by_key(|s| std::cmp::Reverse(s.created_at));
    Ok(Json(SessionList { sessions }))
}

/// Ends one of my sessions.
#[utoipa::path(delete, path = "/api/sessions/{session_id}", params(("session_id" = Uuid, Path)),
    responses((status = 204), (status = 404, body = optovault_shared::wire::ApiErrorBody)), tag = "session")]
pub async fn revoke_session(
    State(state): State<AppState>,
    auth: Authenticated,
    crate::http::ApiPath(session_id): crate::http::ApiPath<Uuid>,
) -> ApiResult<StatusCode> {
    let target = state
        .store
        .sessions_of(auth.account_id)
        .await?
        .into_iter()
        .find(|s| s.session_id == session_id)
        .ok_or_else(ApiError::not_found)?;
    state
        .store
        .delete_session(
            target.token_hash,
            Some(account_event(
                "session_revoked",
                Some(auth.account_id),
                "ok",
                auth.ip,
            )),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Ends every session of mine but this one.
#[utoipa::path(post, path = "/api/sessions/revoke-others", responses((status = 204),
    (status = 401, body = optovault_shared::wire::ApiErrorBody)), tag = "session")]
pub async fn revoke_other_sessions(
    State(state): State<AppState>,
    auth: Authenticated,
) -> ApiResult<StatusCode> {
    for s in state.store.sessions_of(auth.account_id).await? {
        if s.token_hash != auth.token_hash {
            state.store.delete_session(s.token_hash, None).await?;
        }
    }
    state
        .store
        .append_event(
            account_event("session_revoked", Some(auth.account_id), "ok", auth.ip),
            true,
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

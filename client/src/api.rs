//! Every call to the OptoVault server: same origin, JSON bodies (the types of
//! `optovault_shared::wire`), the session cookie sent by the browser. Only ciphertext, public keys
//! and OPAQUE messages ever go through here.

use gloo_net::http::{Request, RequestBuilder, Response};
use optovault_shared::wire::{
    AcceptInvitationRequest, AccountCreated, AddMemberRequest, ApiErrorBody, BatchWriteResponse,
    CareTeamRequest, ClinicList, ClinicView, CreateClinicRequest, CreateInvitationRequest,
    InvitationInfo, InvitationList, InvitationView, LoginAbortRequest, LoginFinishRequest,
    LoginStartRequest, LoginStartResponse, MemberList, MemberView, MfaRequired, MfaVerifyRequest,
    PasswordChangeFinish, PasswordChangeStart, RecordWrite, RegisterFinishRequest,
    RegisterStartRequest, RegisterStartResponse, RestrictChartRequest, RestrictedChart,
    RestrictedChartList, RosterPage, RotationRequest, SessionInfo, SessionList, StoredRecord,
    WriteResult,
};
use optovault_shared::wire::{
    AuditCheckpoint, AuditCheckpointList, AuditKeySetup, AuditKeyView, AuditPage, ReportedEvent,
};
use optovault_shared::wire::{
    BatchWriteRequest, ChangeHeaderPage, ReadRecordsRequest, ReadRecordsResponse,
};
use optovault_shared::wire::{
    ClinicPolicy, MfaStatus, RecoveryCodes, RecoveryFinishRequest, RecoverySetup,
    RecoveryStartRequest, RecoveryStartResponse, RecoveryStatus, SecurityChecklist, TotpCode,
    TotpDisableRequest, TotpEnrollment,
};
use optovault_shared::wire::{FileStatus, FileUploadStart};
use optovault_shared::wire::{
    PasskeyChallenge, PasskeyLoginStart, PasskeyRegisterFinish, PasskeyRegisterStart,
    PasskeyRegistered,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use uuid::Uuid;

/// A failed call: the server's `{code, message}` for a non-2xx answer, or a local problem
/// (network, unreadable answer) with `status` 0.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    pub status: u16,
    pub code: String,
    pub message: String,
}

impl ApiError {
    pub fn local(code: &str, message: &str) -> ApiError {
        ApiError {
            status: 0,
            code: code.into(),
            message: message.into(),
        }
    }

    /// The session is gone (expired, revoked or never there): the user must log in again.
    pub fn is_unauthenticated(&self) -> bool {
        self.status == 401 && self.code != "login_failed"
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

fn network(_: gloo_net::Error) -> ApiError {
    ApiError::local(
        "network",
        "Could not reach the server. Check your connection and try again.",
    )
}

/// Sends a request and turns a non-2xx status into an [`ApiError`].
async fn send(req: Result<Request, gloo_net::Error>) -> ApiResult<Response> {
    let resp = req.map_err(network)?.send().await.map_err(network)?;
    if resp.ok() {
        return Ok(resp);
    }
    let status = resp.status();
    Err(match resp.json::<ApiErrorBody>().await {
        Ok(body) => ApiError {
            status,
            code: body.code,
            message: body.message,
        },
        Err(_) => ApiError {
            status,
            code: format!("http_{status}"),
            message: format!("The server answered {status} {}.", resp.status_text()),
        },
    })
}

async fn json<T: DeserializeOwned>(resp: Response) -> ApiResult<T> {
    resp.json::<T>().await.map_err(|_| {
        ApiError::local(
            "bad_response",
            "The server sent an answer this page cannot read.",
        )
    })
}

async fn get<T: DeserializeOwned>(url: &str) -> ApiResult<T> {
    json(send(Request::get(url).build()).await?).await
}

fn with_body<B: Serialize>(builder: RequestBuilder, body: &B) -> Result<Request, gloo_net::Error> {
    builder.json(body)
}

async fn post<B: Serialize, T: DeserializeOwned>(url: &str, body: &B) -> ApiResult<T> {
    json(send(with_body(Request::post(url), body)).await?).await
}

/// A POST whose answer has no body we need (204 or ignored).
async fn post_no_content<B: Serialize>(url: &str, body: &B) -> ApiResult<()> {
    send(with_body(Request::post(url), body)).await.map(|_| ())
}

// ---- accounts and sessions ----------------------------------------------------------------

pub async fn register_start(body: &RegisterStartRequest) -> ApiResult<RegisterStartResponse> {
    post("/api/accounts/register/start", body).await
}

pub async fn register_finish(body: &RegisterFinishRequest) -> ApiResult<AccountCreated> {
    post("/api/accounts/register/finish", body).await
}

pub async fn login_start(body: &LoginStartRequest) -> ApiResult<LoginStartResponse> {
    post("/api/session/login/start", body).await
}

/// What the last step of the password login answers.
pub enum LoginFinished {
    /// 200: the session is open.
    Session(SessionInfo),
    /// 202: the password was right; a second factor must follow (no session yet).
    MfaRequired(MfaRequired),
}

pub async fn login_finish(body: &LoginFinishRequest) -> ApiResult<LoginFinished> {
    let resp = send(with_body(Request::post("/api/session/login/finish"), body)).await?;
    if resp.status() == 202 {
        Ok(LoginFinished::MfaRequired(json(resp).await?))
    } else {
        Ok(LoginFinished::Session(json(resp).await?))
    }
}

/// The second step of a login with a second factor: 401 `mfa_failed` / `mfa_expired`, 429.
pub async fn mfa_verify(body: &MfaVerifyRequest) -> ApiResult<SessionInfo> {
    post("/api/session/mfa", body).await
}

pub async fn login_abort(login_id: Uuid) -> ApiResult<()> {
    post_no_content("/api/session/login/abort", &LoginAbortRequest { login_id }).await
}

pub async fn logout() -> ApiResult<()> {
    send(Request::post("/api/session/logout").build())
        .await
        .map(|_| ())
}

// ---- account security: sessions, password change ------------------------------------------

/// My active sessions, newest first (the one of this browser marked `current`).
pub async fn sessions() -> ApiResult<SessionList> {
    get("/api/sessions").await
}

pub async fn revoke_session(session_id: Uuid) -> ApiResult<()> {
    send(Request::delete(&format!("/api/sessions/{session_id}")).build())
        .await
        .map(|_| ())
}

/// Ends every session of mine but this browser's.
pub async fn revoke_other_sessions() -> ApiResult<()> {
    send(Request::post("/api/sessions/revoke-others").build())
        .await
        .map(|_| ())
}

/// Step 1 of a password change (403 `reauthentication_required` unless I logged in recently).
pub async fn password_start(body: &PasswordChangeStart) -> ApiResult<RegisterStartResponse> {
    post("/api/account/password/start", body).await
}

/// Step 2: the new password file and my key bundle sealed under the new export key.
pub async fn password_finish(body: &PasswordChangeFinish) -> ApiResult<()> {
    post_no_content("/api/account/password/finish", body).await
}

// ---- account security: the recovery kit ----------------------------------------------------

/// Whether a recovery kit exists (and since when).
pub async fn recovery_status() -> ApiResult<RecoveryStatus> {
    get("/api/account/recovery").await
}

/// Stores or replaces the kit (403 `reauthentication_required` unless I logged in recently).
pub async fn recovery_setup(body: &RecoverySetup) -> ApiResult<()> {
    send(with_body(Request::put("/api/account/recovery"), body))
        .await
        .map(|_| ())
}

/// Step 1 of a reset with the recovery key (no session needed).
pub async fn recovery_start(body: &RecoveryStartRequest) -> ApiResult<RecoveryStartResponse> {
    post("/api/account/recovery/start", body).await
}

/// Step 2: proof of the key, second factor, new password file and re-sealed keys.
pub async fn recovery_finish(body: &RecoveryFinishRequest) -> ApiResult<()> {
    post_no_content("/api/account/recovery/finish", body).await
}

// ---- account security: the second factor ----------------------------------------------------

pub async fn mfa_status() -> ApiResult<MfaStatus> {
    get("/api/account/mfa").await
}

/// A new TOTP secret (not active until confirmed); 409 `mfa_already_enabled`.
pub async fn totp_enroll() -> ApiResult<TotpEnrollment> {
    json(send(Request::post("/api/account/mfa/totp/enroll").build()).await?).await
}

/// Turns TOTP on with a first code; the recovery codes come back once.
pub async fn totp_confirm(body: &TotpCode) -> ApiResult<RecoveryCodes> {
    post("/api/account/mfa/totp/confirm", body).await
}

pub async fn totp_disable(body: &TotpDisableRequest) -> ApiResult<()> {
    post_no_content("/api/account/mfa/totp/disable", body).await
}

/// WebAuthn creation options for a new passkey named `name`.
pub async fn passkey_register_start(body: &PasskeyRegisterStart) -> ApiResult<PasskeyChallenge> {
    post("/api/account/mfa/passkeys/register/start", body).await
}

/// The authenticator's answer; a fresh set of recovery codes comes back once.
pub async fn passkey_register_finish(body: &PasskeyRegisterFinish) -> ApiResult<PasskeyRegistered> {
    post("/api/account/mfa/passkeys/register/finish", body).await
}

/// 403 `reauthentication_required` when the login is older than 10 minutes.
pub async fn passkey_remove(passkey_id: Uuid) -> ApiResult<()> {
    let url = format!("/api/account/mfa/passkeys/{passkey_id}");
    send(Request::delete(&url).build()).await.map(|_| ())
}

/// A passkey challenge for a login waiting for its second factor.
pub async fn passkey_login_challenge(body: &PasskeyLoginStart) -> ApiResult<PasskeyChallenge> {
    post("/api/session/mfa/passkey", body).await
}

// ---- clinic security policy ---------------------------------------------------------------

/// The owner sets the policy: 409 `enroll_mfa_first`, 400 `invalid_policy`.
pub async fn set_clinic_policy(clinic_id: Uuid, body: &ClinicPolicy) -> ApiResult<ClinicPolicy> {
    let url = format!("/api/clinics/{clinic_id}/policy");
    json(send(with_body(Request::put(&url), body)).await?).await
}

pub async fn security_checklist(clinic_id: Uuid) -> ApiResult<SecurityChecklist> {
    get(&format!("/api/clinics/{clinic_id}/security-checklist")).await
}

/// The owner forces a member to change the password (on evidence of compromise).
pub async fn require_password_change(clinic_id: Uuid, account_id: Uuid) -> ApiResult<()> {
    let url = format!("/api/clinics/{clinic_id}/members/{account_id}/require-password-change");
    send(Request::post(&url).build()).await.map(|_| ())
}

// ---- clinics and records --------------------------------------------------------------------

pub async fn list_clinics() -> ApiResult<ClinicList> {
    get("/api/clinics").await
}

pub async fn get_clinic(clinic_id: Uuid) -> ApiResult<ClinicView> {
    get(&format!("/api/clinics/{clinic_id}")).await
}

pub async fn create_clinic(body: &CreateClinicRequest) -> ApiResult<ClinicView> {
    post("/api/clinics", body).await
}

/// The change feed without ciphertexts.
pub async fn change_headers(
    clinic_id: Uuid,
    since: u64,
    limit: usize,
) -> ApiResult<ChangeHeaderPage> {
    get(&format!(
        "/api/clinics/{clinic_id}/change-headers?since={since}&limit={limit}"
    ))
    .await
}

/// Records by id (at most `limits::MAX_PAGE`); the ones I may not read are left out.
pub async fn read_records(clinic_id: Uuid, record_ids: Vec<Uuid>) -> ApiResult<Vec<StoredRecord>> {
    let r: ReadRecordsResponse = post(
        &format!("/api/clinics/{clinic_id}/records/read"),
        &ReadRecordsRequest { record_ids },
    )
    .await?;
    Ok(r.records)
}

/// Writes several records in one all-or-nothing batch, with what they mean for the audit log
/// (`report`, sealed to the clinic's audit key) appended in the same transaction.
pub async fn write_records(
    clinic_id: Uuid,
    writes: Vec<RecordWrite>,
    report: Option<ReportedEvent>,
) -> ApiResult<Vec<WriteResult>> {
    let r: BatchWriteResponse = post(
        &format!("/api/clinics/{clinic_id}/records"),
        &BatchWriteRequest { writes, report },
    )
    .await?;
    Ok(r.results)
}

/// Every version of a record, oldest first.
pub async fn record_history(
    clinic_id: Uuid,
    record_id: Uuid,
) -> ApiResult<optovault_shared::wire::RecordHistory> {
    get(&format!(
        "/api/clinics/{clinic_id}/records/{record_id}/versions"
    ))
    .await
}

pub async fn get_record(clinic_id: Uuid, record_id: Uuid) -> ApiResult<StoredRecord> {
    get(&format!("/api/clinics/{clinic_id}/records/{record_id}")).await
}

// ---- restricted charts ------------------------------------------------------------------------

pub async fn charts(clinic_id: Uuid) -> ApiResult<RestrictedChartList> {
    get(&format!("/api/clinics/{clinic_id}/charts")).await
}

pub async fn restrict_chart(
    clinic_id: Uuid,
    chart_id: Uuid,
    body: &RestrictChartRequest,
) -> ApiResult<BatchWriteResponse> {
    post(
        &format!("/api/clinics/{clinic_id}/charts/{chart_id}/restrict"),
        body,
    )
    .await
}

/// Erases a (restricted) chart: every version of its records, its files and its keys.
pub async fn erase_chart(
    clinic_id: Uuid,
    chart_id: Uuid,
) -> ApiResult<optovault_shared::wire::ChartErased> {
    post(
        &format!("/api/clinics/{clinic_id}/charts/{chart_id}/erase"),
        &optovault_shared::wire::EraseChartRequest { chart_id },
    )
    .await
}

pub async fn change_care_team(
    clinic_id: Uuid,
    chart_id: Uuid,
    body: &CareTeamRequest,
) -> ApiResult<RestrictedChart> {
    let url = format!("/api/clinics/{clinic_id}/charts/{chart_id}/team");
    json(send(with_body(Request::put(&url), body)).await?).await
}

// ---- the team: roster, members, invitations ---------------------------------------------------

pub async fn roster(clinic_id: Uuid, since: u64) -> ApiResult<RosterPage> {
    get(&format!("/api/clinics/{clinic_id}/roster?since={since}")).await
}

pub async fn members(clinic_id: Uuid) -> ApiResult<MemberList> {
    get(&format!("/api/clinics/{clinic_id}/members")).await
}

pub async fn add_member(clinic_id: Uuid, body: &AddMemberRequest) -> ApiResult<MemberView> {
    post(&format!("/api/clinics/{clinic_id}/members"), body).await
}

/// The owner ends every session of a member.
pub async fn revoke_member_sessions(clinic_id: Uuid, account_id: Uuid) -> ApiResult<()> {
    let url = format!("/api/clinics/{clinic_id}/members/{account_id}/revoke-sessions");
    send(Request::post(&url).build()).await.map(|_| ())
}

/// The owner clears a member's login backoff.
pub async fn unlock_member(clinic_id: Uuid, account_id: Uuid) -> ApiResult<()> {
    let url = format!("/api/clinics/{clinic_id}/members/{account_id}/unlock");
    send(Request::post(&url).build()).await.map(|_| ())
}

pub async fn rotate(clinic_id: Uuid, body: &RotationRequest) -> ApiResult<RosterPage> {
    post(&format!("/api/clinics/{clinic_id}/rotations"), body).await
}

pub async fn create_invitation(
    clinic_id: Uuid,
    body: &CreateInvitationRequest,
) -> ApiResult<InvitationView> {
    post(&format!("/api/clinics/{clinic_id}/invitations"), body).await
}

pub async fn invitations(clinic_id: Uuid) -> ApiResult<InvitationList> {
    get(&format!("/api/clinics/{clinic_id}/invitations")).await
}

pub async fn revoke_invitation(clinic_id: Uuid, invitation_id: Uuid) -> ApiResult<()> {
    let url = format!("/api/clinics/{clinic_id}/invitations/{invitation_id}");
    send(Request::delete(&url).build()).await.map(|_| ())
}

pub async fn invitation_info(clinic_id: Uuid, invitation_id: Uuid) -> ApiResult<InvitationInfo> {
    get(&format!(
        "/api/clinics/{clinic_id}/invitations/{invitation_id}/info"
    ))
    .await
}

pub async fn accept_invitation(
    clinic_id: Uuid,
    invitation_id: Uuid,
    body: &AcceptInvitationRequest,
) -> ApiResult<InvitationInfo> {
    post(
        &format!("/api/clinics/{clinic_id}/invitations/{invitation_id}/accept"),
        body,
    )
    .await
}

// ---- encrypted files ------------------------------------------------------------------------

/// Starts (or, retried with the same parameters, re-reads) an upload.
pub async fn file_start(clinic_id: Uuid, body: &FileUploadStart) -> ApiResult<FileStatus> {
    post(&format!("/api/clinics/{clinic_id}/files"), body).await
}

/// Which chunks the server holds, and whether the upload was completed.
pub async fn file_status(clinic_id: Uuid, file_id: Uuid) -> ApiResult<FileStatus> {
    get(&format!("/api/clinics/{clinic_id}/files/{file_id}")).await
}

/// Stores one sealed chunk (replacing it while the upload is incomplete).
pub async fn file_put_chunk(
    clinic_id: Uuid,
    file_id: Uuid,
    index: u32,
    sealed: &[u8],
) -> ApiResult<()> {
    let url = format!("/api/clinics/{clinic_id}/files/{file_id}/chunks/{index}");
    let bytes = js_sys::Uint8Array::from(sealed);
    let req = Request::put(&url)
        .header("content-type", "application/octet-stream")
        .body(bytes);
    send(req).await.map(|_| ())
}

/// Marks the upload complete (every chunk present); the file is immutable from then on.
pub async fn file_complete(clinic_id: Uuid, file_id: Uuid) -> ApiResult<()> {
    let url = format!("/api/clinics/{clinic_id}/files/{file_id}/complete");
    send(Request::post(&url).build()).await.map(|_| ())
}

/// One sealed chunk of a complete file.
pub async fn file_chunk(clinic_id: Uuid, file_id: Uuid, index: u32) -> ApiResult<Vec<u8>> {
    let url = format!("/api/clinics/{clinic_id}/files/{file_id}/chunks/{index}");
    let resp = send(Request::get(&url).build()).await?;
    resp.binary()
        .await
        .map_err(|_| ApiError::local("bad_response", "The file could not be downloaded."))
}

/// The clinic's export, as a response whose body the caller streams (owners only).
pub async fn export(clinic_id: Uuid) -> ApiResult<Response> {
    send(Request::get(&format!("/api/clinics/{clinic_id}/export")).build()).await
}

/// Uploads a clinic's export to this server (`POST /api/clinics/import`), signed by an owner.
/// Through `XMLHttpRequest` because `fetch` cannot report upload progress; `progress(sent,
/// total)` in bytes. The browser streams the file from disk.
pub async fn import_clinic(
    file: &web_sys::File,
    signer: Uuid,
    signature: &[u8],
    progress: impl FnMut(u64, u64) + 'static,
) -> ApiResult<optovault_shared::wire::ClinicImported> {
    use base64::Engine;
    use wasm_bindgen::closure::Closure;
    use wasm_bindgen::JsCast;
    let fail = || network(gloo_net::Error::GlooError("upload".into()));
    let xhr = web_sys::XmlHttpRequest::new().map_err(|_| fail())?;
    let signature = base64::engine::general_purpose::STANDARD.encode(signature);
    let url = format!(
        "/api/clinics/import?signer={signer}&signature={}",
        String::from(js_sys::encode_uri_component(&signature))
    );
    xhr.open("POST", &url).map_err(|_| fail())?;
    xhr.set_request_header("content-type", "application/octet-stream")
        .map_err(|_| fail())?;
    let mut progress = progress;
    let on_progress =
        Closure::<dyn FnMut(web_sys::ProgressEvent)>::new(move |e: web_sys::ProgressEvent| {
            progress(e.loaded() as u64, e.total() as u64)
        });
    let upload = xhr.upload().map_err(|_| fail())?;
    upload.set_onprogress(Some(on_progress.as_ref().unchecked_ref()));
    let finished = js_sys::Promise::new(&mut |resolve, reject| {
        xhr.set_onload(Some(&resolve));
        xhr.set_onerror(Some(&reject));
        xhr.set_onabort(Some(&reject));
    });
    xhr.send_with_opt_blob(Some(file)).map_err(|_| fail())?;
    let outcome = wasm_bindgen_futures::JsFuture::from(finished).await;
    upload.set_onprogress(None);
    drop(on_progress);
    outcome.map_err(|_| fail())?;
    let status = xhr.status().unwrap_or(0);
    let text = xhr.response_text().ok().flatten().unwrap_or_default();
    if (200..300).contains(&status) {
        return serde_json::from_str(&text).map_err(|_| {
            ApiError::local(
                "bad_response",
                "The server sent an answer this page cannot read.",
            )
        });
    }
    Err(match serde_json::from_str::<ApiErrorBody>(&text) {
        Ok(body) => ApiError {
            status,
            code: body.code,
            message: body.message,
        },
        Err(_) => ApiError {
            status,
            code: format!("http_{status}"),
            message: format!("The server answered {status}."),
        },
    })
}

/// Logs (durably) that this browser is about to print or download a document made from a chart.
pub async fn document_generated(
    clinic_id: Uuid,
    body: &optovault_shared::wire::DocumentGenerated,
) -> ApiResult<()> {
    post_no_content(&format!("/api/clinics/{clinic_id}/documents"), body).await
}

// ---- audit log --------------------------------------------------------------------------------

pub async fn audit_key(clinic_id: Uuid) -> ApiResult<AuditKeyView> {
    get(&format!("/api/clinics/{clinic_id}/audit/key")).await
}

pub async fn share_audit_key(
    clinic_id: Uuid,
    share: &optovault_shared::wire::AuditKeyShare,
) -> ApiResult<()> {
    post_no_content(&format!("/api/clinics/{clinic_id}/audit/key/share"), share).await
}

pub async fn set_audit_key(clinic_id: Uuid, setup: &AuditKeySetup) -> ApiResult<()> {
    send(with_body(
        Request::put(&format!("/api/clinics/{clinic_id}/audit/key")),
        setup,
    ))
    .await
    .map(|_| ())
}

/// A page of the audit log; `filters` is a ready query string tail (`&actor=…&action=…`).
pub async fn audit_page(
    clinic_id: Uuid,
    since: u64,
    limit: u32,
    filters: &str,
) -> ApiResult<AuditPage> {
    get(&format!(
        "/api/clinics/{clinic_id}/audit?since={since}&limit={limit}{filters}"
    ))
    .await
}

pub async fn checkpoints(clinic_id: Uuid) -> ApiResult<AuditCheckpointList> {
    get(&format!("/api/clinics/{clinic_id}/audit/checkpoints")).await
}

pub async fn add_checkpoint(clinic_id: Uuid, cp: &AuditCheckpoint) -> ApiResult<()> {
    post_no_content(&format!("/api/clinics/{clinic_id}/audit/checkpoints"), cp).await
}

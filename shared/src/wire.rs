//! JSON bodies of the HTTP API (see docs/PROTOCOL.md). Every request type rejects unknown fields.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::roster::SignedRosterEntry;
use crate::{Compartment, RecordEnvelope, UnixTime, B64};

macro_rules! wire {
    ($(#[$m:meta])* pub struct $name:ident { $($body:tt)* }) => {
        $(#[$m])*
        #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[serde(deny_unknown_fields)]
        pub struct $name { $($body)* }
    };
}

/// The body of every error response.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApiErrorBody {
    /// Machine-readable, stable: e.g. `version_conflict`, `not_found`, `unauthenticated`.
    pub code: String,
    /// For people.
    pub message: String,
}

// ---- accounts and sessions ------------------------------------------------------------------

wire! {
    pub struct RegisterStartRequest {
        pub username: String,
        /// OPAQUE RegistrationRequest.
        pub registration_request: B64,
    }
}
wire! {
    pub struct RegisterStartResponse {
        /// OPAQUE RegistrationResponse.
        pub registration_response: B64,
    }
}
wire! {
    /// A member's public keys. Stored in the clear: others wrap keys to them.
    pub struct PublicKeys {
        /// X25519 public key (32 bytes), the HPKE recipient key.
        pub x25519: B64,
        /// Ed25519 verifying key (32 bytes).
        pub ed25519: B64,
    }
}
wire! {
    /// AES-256-GCM ciphertext with its nonce; the key and AAD are given by context.
    pub struct SealedBlob {
        pub nonce: B64,
        pub ciphertext: B64,
    }
}
wire! {
    pub struct RegisterFinishRequest {
        pub username: String,
        /// OPAQUE RegistrationUpload (the password file).
        pub registration_upload: B64,
        pub public_keys: PublicKeys,
        /// The user's private keys, sealed under a key derived from OPAQUE's export key.
        pub sealed_key_bundle: SealedBlob,
    }
}
wire! {
    pub struct AccountCreated {
        pub account_id: Uuid,
    }
}
wire! {
    pub struct LoginStartRequest {
        pub username: String,
        /// OPAQUE CredentialRequest.
        pub credential_request: B64,
    }
}
wire! {
    pub struct LoginStartResponse {
        /// Names the server's half-finished login; valid for 60 seconds, once.
        pub login_id: Uuid,
        /// OPAQUE CredentialResponse.
        pub credential_response: B64,
    }
}
wire! {
    pub struct LoginFinishRequest {
        pub login_id: Uuid,
        /// OPAQUE CredentialFinalization.
        pub credential_finalization: B64,
    }
}
wire! {
    /// Sent by a client whose OPAQUE finish failed (wrong password), so the failure is recorded.
    pub struct LoginAbortRequest {
        pub login_id: Uuid,
    }
}
wire! {
    /// The logged-in account: returned by login and by `GET /api/session`.
    pub struct SessionInfo {
        pub account_id: Uuid,
        pub username: String,
        pub public_keys: PublicKeys,
        pub sealed_key_bundle: SealedBlob,
        pub expires_at: UnixTime,
    }
}

wire! {
    /// Answer (HTTP 202) of a login whose password was right but whose account has a second
    /// factor: no session yet. Send a code with the token to `/api/session/mfa` within 5 minutes.
    pub struct MfaRequired {
        pub mfa_token: Uuid,
        /// What the account can answer with: `totp`, `passkey`, `recovery_code`.
        pub methods: Vec<String>,
    }
}
wire! {
    /// The second step of a login with a second factor: a TOTP code, a recovery code, or a
    /// passkey assertion (WebAuthn `PublicKeyCredential` JSON answering the challenge from
    /// `/api/session/mfa/passkey`).
    pub struct MfaVerifyRequest {
        pub mfa_token: Uuid,
        #[serde(default)]
        pub code: Option<String>,
        #[serde(default)]
        pub recovery_code: Option<String>,
        #[serde(default)]
        #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
        pub passkey: Option<serde_json::Value>,
    }
}
wire! {
    /// Asks for a passkey challenge for the second step of a login.
    pub struct PasskeyLoginStart {
        pub mfa_token: Uuid,
    }
}
wire! {
    /// WebAuthn options for `navigator.credentials.create` (registration) or `.get` (login), as
    /// webauthn-rs produces them: `{"publicKey": {...}}` with base64url byte strings.
    pub struct PasskeyChallenge {
        #[cfg_attr(feature = "openapi", schema(value_type = Object))]
        pub options: serde_json::Value,
    }
}
wire! {
    /// Starts registering a passkey or security key under a name the user chooses.
    pub struct PasskeyRegisterStart {
        pub name: String,
    }
}
wire! {
    /// The authenticator's answer (WebAuthn `RegisterPublicKeyCredential` JSON).
    pub struct PasskeyRegisterFinish {
        #[cfg_attr(feature = "openapi", schema(value_type = Object))]
        pub credential: serde_json::Value,
    }
}
wire! {
    /// A registered passkey as its owner sees it (the credential itself stays on the server).
    pub struct PasskeyInfo {
        pub id: Uuid,
        pub name: String,
        pub created_at: UnixTime,
        pub last_used_at: Option<UnixTime>,
    }
}
wire! {
    /// A passkey was registered. Adding a second factor issues a fresh set of recovery codes
    /// (the previous set stops working); they are shown once.
    pub struct PasskeyRegistered {
        pub passkey: PasskeyInfo,
        pub recovery_codes: Vec<String>,
    }
}
wire! {
    /// A new TOTP secret to put in an authenticator app (not active until confirmed).
    pub struct TotpEnrollment {
        pub secret_base32: String,
        /// `otpauth://totp/…` for the QR code.
        pub otpauth_uri: String,
    }
}
wire! {
    pub struct TotpCode {
        pub code: String,
    }
}
wire! {
    /// Shown once, when TOTP is confirmed: each code works once instead of a TOTP code.
    pub struct RecoveryCodes {
        pub codes: Vec<String>,
    }
}
wire! {
    pub struct MfaStatus {
        pub totp_enabled: bool,
        pub recovery_codes_left: u32,
        pub passkeys: Vec<PasskeyInfo>,
    }
}
wire! {
    /// Turning TOTP off needs a current code or a recovery code.
    pub struct TotpDisableRequest {
        pub code: Option<String>,
        pub recovery_code: Option<String>,
    }
}

wire! {
    /// Store (or replace) my recovery kit: my private keys sealed under the recovery key, and the
    /// SHA-256 of the recovery verifier. Needs a login less than 10 minutes old.
    pub struct RecoverySetup {
        pub sealed_key_bundle: SealedBlob,
        pub verifier_hash: B64,
    }
}
wire! {
    pub struct RecoveryStatus {
        pub configured: bool,
        pub created_at: Option<UnixTime>,
    }
}
wire! {
    /// Step 1 of a reset with the recovery kit: a new OPAQUE registration for the username.
    pub struct RecoveryStartRequest {
        pub username: String,
        pub registration_request: B64,
    }
}
wire! {
    pub struct RecoveryStartResponse {
        pub registration_response: B64,
        /// The private keys sealed under the recovery key.
        pub recovery_bundle: SealedBlob,
        pub public_keys: PublicKeys,
        /// Whether the finish step needs a TOTP or recovery code too.
        pub second_factor_required: bool,
    }
}
wire! {
    /// Step 2: proof of the recovery key, the second factor if enrolled, the new password file
    /// and the keys sealed under the new password. Every session ends.
    pub struct RecoveryFinishRequest {
        pub username: String,
        pub verifier: B64,
        pub code: Option<String>,
        pub recovery_code: Option<String>,
        pub registration_upload: B64,
        pub sealed_key_bundle: SealedBlob,
    }
}

wire! {
    /// One of my sessions (a logged-in browser).
    pub struct SessionView {
        /// Random id of the session (not its token).
        pub session_id: Uuid,
        pub created_at: UnixTime,
        pub last_seen: UnixTime,
        pub expires_at: UnixTime,
        pub ip: Option<String>,
        pub user_agent: Option<String>,
        /// The session this request came with.
        pub current: bool,
    }
}
wire! {
    pub struct SessionList {
        pub sessions: Vec<SessionView>,
    }
}
wire! {
    /// Step 1 of a password change: a new OPAQUE registration for the same account. Allowed only
    /// within 10 minutes of logging in (the caller has just proven the current password).
    pub struct PasswordChangeStart {
        pub registration_request: B64,
    }
}
wire! {
    /// Step 2: the new password file and the same private keys sealed under the new export key.
    /// Committed in one step; every other session is revoked.
    pub struct PasswordChangeFinish {
        pub registration_upload: B64,
        pub sealed_key_bundle: SealedBlob,
    }
}

// ---- clinics and members --------------------------------------------------------------------

/// A member's role in a clinic. Only `owner` exists in practice until the team issue lands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Owner,
    Optometrist,
    Optician,
    FrontDesk,
    Billing,
}

impl Role {
    /// Compartments whose keys and records this role is granted (enforced by the server as
    /// defence in depth; the team issue makes it cryptographic by wrapping only these keys).
    pub fn grants(self, c: Compartment) -> bool {
        use Compartment::*;
        match self {
            Role::Owner | Role::Optometrist => true,
            Role::Optician => matches!(c, Demographics | Prescriptions),
            Role::FrontDesk => matches!(c, Demographics),
            Role::Billing => matches!(c, Demographics | Billing),
        }
    }
}

wire! {
    /// A clinic key (one compartment, one epoch) wrapped with HPKE to one member's X25519 key.
    pub struct WrappedKey {
        pub key_id: Uuid,
        pub compartment: Compartment,
        pub epoch: u32,
        /// Account id of the member the key is wrapped to.
        pub recipient: Uuid,
        /// Set for a restricted chart's own key (bound into the wrapping).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub chart_id: Option<Uuid>,
        /// HPKE encapsulated key (32 bytes).
        pub enc: B64,
        /// HPKE ciphertext of the 32-byte key.
        pub ciphertext: B64,
    }
}
wire! {
    pub struct CreateClinicRequest {
        /// Chosen by the client (random UUIDv4) because the wrapped keys and profile bind it.
        pub clinic_id: Uuid,
        /// The clinic's name etc., sealed under the demographics key.
        pub profile: RecordEnvelope,
        /// The clinic's keys wrapped to the owner.
        pub wrapped_keys: Vec<WrappedKey>,
        /// Roster entry 1: the owner adding themselves, self-signed.
        pub roster_genesis: SignedRosterEntry,
        /// The clinic's trust anchor (the creator's Ed25519 key) sealed by the caller to itself
        /// (`UserKeys::seal_for_self`), so a later session can check the roster against it.
        pub pinned_anchor: SealedBlob,
    }
}
wire! {
    /// A clinic as one member sees it.
    pub struct ClinicView {
        pub clinic_id: Uuid,
        pub role: Role,
        pub created_at: UnixTime,
        pub profile: RecordEnvelope,
        /// The keys wrapped to the calling member only.
        pub wrapped_keys: Vec<WrappedKey>,
        /// The caller's own sealed copy of the clinic's trust anchor.
        pub pinned_anchor: SealedBlob,
        /// Latest roster seq and the key epoch new writes must use.
        pub roster_head: u64,
        pub key_epoch: u32,
    }
}
wire! {
    pub struct ClinicList {
        pub clinics: Vec<ClinicView>,
    }
}

// ---- clinic security policy --------------------------------------------------------------------

wire! {
    /// Set by the owner; enforced by the server on every request into the clinic.
    pub struct ClinicPolicy {
        /// Every member must have a second factor to open the clinic.
        pub require_mfa: bool,
        /// A session unused this long cannot open the clinic (5 to 480).
        pub idle_minutes: u32,
        /// A session older than this cannot open the clinic (1 to 24).
        pub session_hours: u32,
        /// NIST SP 800-63B advises against periodic password changes (they lead to weaker,
        /// predictable passwords) and for a forced change on evidence of compromise, which the
        /// owner can require per member. Owners who must can still set a maximum age (30 to 730).
        pub max_password_age_days: Option<u32>,
        /// Deleted records stay in the trash, restorable, this many days (1 to 3650), then the
        /// server purges them and logs the purge.
        #[serde(default = "default_trash_days")]
        pub trash_days: u32,
    }
}

fn default_trash_days() -> u32 {
    30
}

impl Default for ClinicPolicy {
    fn default() -> Self {
        ClinicPolicy {
            require_mfa: false,
            idle_minutes: 15,
            session_hours: 12,
            max_password_age_days: None,
            trash_days: default_trash_days(),
        }
    }
}

wire! {
    pub struct MemberRef {
        pub account_id: Uuid,
        pub username: String,
    }
}
wire! {
    /// The owner's security checklist of a clinic.
    pub struct SecurityChecklist {
        pub members_without_mfa: Vec<MemberRef>,
        /// Members who have not logged in for 90 days (or never).
        pub members_inactive_90_days: Vec<MemberRef>,
        pub members_who_must_change_password: Vec<MemberRef>,
        pub pending_invitations: u32,
        pub owner_count: u32,
        /// Unix time of the last verified backup; none until backups exist.
        pub last_verified_backup: Option<UnixTime>,
        pub policy: ClinicPolicy,
    }
}

// ---- roster, invitations and members ----------------------------------------------------------

wire! {
    pub struct RosterPage {
        /// Signed entries with seq > `since`, in order.
        pub entries: Vec<SignedRosterEntry>,
        pub head: u64,
    }
}
wire! {
    /// An owner invites someone. The invitation's one-time secret never reaches the server: it
    /// travels in the link's fragment; the server keeps only the owner's HPKE-sealed copy.
    pub struct CreateInvitationRequest {
        /// Chosen by the client (random UUIDv4): the secret's sealing binds it.
        pub invitation_id: Uuid,
        pub role: Role,
        /// 1 to 168 hours.
        pub expires_in_hours: u32,
        /// The secret sealed to the inviting owner's X25519 key (HPKE; enc ‖ ciphertext).
        pub sealed_secret: SealedSecret,
    }
}
wire! {
    /// HPKE output: encapsulated key and ciphertext.
    pub struct SealedSecret {
        pub enc: B64,
        pub ciphertext: B64,
    }
}
wire! {
    /// The invitee's answer: who they are (filled in by the server from the session), their
    /// public keys, and a MAC over both with the invitation's secret.
    pub struct Acceptance {
        pub account_id: Uuid,
        pub username: String,
        pub public_keys: PublicKeys,
        pub mac: B64,
        pub accepted_at: UnixTime,
    }
}
/// Where an invitation stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum InvitationStatus {
    Pending,
    Accepted,
    Joined,
    Revoked,
    Expired,
}
wire! {
    pub struct InvitationView {
        pub invitation_id: Uuid,
        pub clinic_id: Uuid,
        pub role: Role,
        pub created_by: Uuid,
        pub created_at: UnixTime,
        pub expires_at: UnixTime,
        pub status: InvitationStatus,
        pub sealed_secret: SealedSecret,
        pub acceptance: Option<Acceptance>,
    }
}
wire! {
    pub struct InvitationList {
        pub invitations: Vec<InvitationView>,
    }
}
wire! {
    /// What an invitee may learn before joining.
    pub struct InvitationInfo {
        pub invitation_id: Uuid,
        pub clinic_id: Uuid,
        pub role: Role,
        pub expires_at: UnixTime,
        pub status: InvitationStatus,
    }
}
wire! {
    pub struct AcceptInvitationRequest {
        /// HMAC-SHA256 (see `team::invitation_mac`) over invitation, clinic, the caller's account
        /// id, username and public keys.
        pub mac: B64,
        /// The clinic's trust anchor from the link, sealed by the invitee to itself.
        pub pinned_anchor: SealedBlob,
    }
}
wire! {
    /// The owner admits an accepted invitee: the signed roster entry adding them and the keys
    /// their role grants, wrapped to them.
    pub struct AddMemberRequest {
        pub invitation_id: Uuid,
        pub roster_entry: SignedRosterEntry,
        pub wrapped_keys: Vec<WrappedKey>,
    }
}
wire! {
    /// Remove a member or change a role: the signed roster entry plus the clinic keys of the new
    /// epoch wrapped to every remaining member for what their role grants. Committed atomically.
    pub struct RotationRequest {
        pub roster_entry: SignedRosterEntry,
        pub wrapped_keys: Vec<WrappedKey>,
    }
}
wire! {
    pub struct MemberView {
        pub account_id: Uuid,
        pub username: String,
        pub role: Role,
        pub public_keys: PublicKeys,
        pub added_at: UnixTime,
        /// When the member last logged in, if ever.
        pub last_login_at: Option<UnixTime>,
    }
}
wire! {
    pub struct MemberList {
        pub members: Vec<MemberView>,
    }
}

// ---- restricted charts --------------------------------------------------------------------------

wire! {
    /// Restrict a chart to a care team: the chart's own new keys (one per compartment, epoch 1)
    /// wrapped to each team member for what its role grants, and every current record of the
    /// chart re-sealed under them. Committed atomically.
    pub struct RestrictChartRequest {
        pub care_team: Vec<Uuid>,
        pub wrapped_keys: Vec<WrappedKey>,
        pub reseal: Vec<RecordWrite>,
    }
}
wire! {
    /// Change a care team. Adding people: `key_epoch` stays and `wrapped_keys` gives each newcomer
    /// every chart key (all epochs) its role grants. Removing anyone: `key_epoch` is the next
    /// epoch and `wrapped_keys` holds the new chart keys for everyone who stays.
    pub struct CareTeamRequest {
        pub care_team: Vec<Uuid>,
        pub key_epoch: u32,
        pub wrapped_keys: Vec<WrappedKey>,
    }
}
wire! {
    /// A restricted chart as a member sees it: everyone may know it exists; only its care team
    /// learns who is on it.
    pub struct RestrictedChart {
        pub chart_id: Uuid,
        pub in_care_team: bool,
        /// Empty unless the caller is on the care team or an owner.
        pub care_team: Vec<Uuid>,
        pub key_epoch: u32,
        pub restricted_at: UnixTime,
    }
}
wire! {
    /// An owner erases a patient: the chart id again, as confirmation.
    pub struct EraseChartRequest {
        pub chart_id: Uuid,
    }
}
wire! {
    pub struct ChartErased {
        /// Records erased (every version of each).
        pub records: u32,
    }
}
wire! {
    pub struct RestrictedChartList {
        pub charts: Vec<RestrictedChart>,
    }
}

// ---- records and the change feed --------------------------------------------------------------

wire! {
    /// Create (`expected_version` 0) or update a record; the envelope's version must be
    /// `expected_version + 1`.
    pub struct RecordWrite {
        pub expected_version: u64,
        pub envelope: RecordEnvelope,
    }
}
wire! {
    pub struct BatchWriteRequest {
        pub writes: Vec<RecordWrite>,
        /// What the writes mean, as only the browser knows it (a payment, a changed phone
        /// number): appended to the audit log in the writes' transaction.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub report: Option<ReportedEvent>,
    }
}
wire! {
    pub struct WriteResult {
        pub record_id: Uuid,
        pub version: u64,
        /// The clinic change sequence number this write got.
        pub seq: u64,
    }
}
wire! {
    pub struct BatchWriteResponse {
        pub results: Vec<WriteResult>,
    }
}
wire! {
    /// A record as stored: its latest envelope and where it sits in the change feed.
    pub struct StoredRecord {
        pub seq: u64,
        pub updated_at: UnixTime,
        pub envelope: RecordEnvelope,
    }
}
wire! {
    /// Every version of one record, oldest first; the last is the current one.
    pub struct RecordHistory {
        pub versions: Vec<StoredRecord>,
    }
}
wire! {
    pub struct RecordPage {
        pub records: Vec<StoredRecord>,
        /// Pass as `after` to get the next page; absent on the last page.
        pub next_after: Option<Uuid>,
    }
}
wire! {
    /// What the change feed says about one record without its ciphertext: enough for a client to
    /// know what changed and fetch only what it needs now (`POST …/records/read`).
    pub struct ChangeHeader {
        pub seq: u64,
        pub record_id: Uuid,
        pub chart_id: Uuid,
        pub version: u64,
        pub compartment: Compartment,
    }
}
wire! {
    /// The change feed as headers only (`GET …/change-headers`); paged like [`ChangesPage`].
    pub struct ChangeHeaderPage {
        pub changes: Vec<ChangeHeader>,
        pub cursor: u64,
        pub head: u64,
        pub more: bool,
    }
}
wire! {
    /// Several records by id (a chart being opened, the patient index): at most
    /// `limits::MAX_PAGE` ids.
    pub struct ReadRecordsRequest {
        pub record_ids: Vec<Uuid>,
    }
}
wire! {
    /// The records asked for that exist and that the caller may read; the others are left out.
    pub struct ReadRecordsResponse {
        pub records: Vec<StoredRecord>,
    }
}
wire! {
    /// Records changed after a cursor, oldest change first. Each record appears once, at its
    /// latest change.
    pub struct ChangesPage {
        pub changes: Vec<StoredRecord>,
        /// Pass as `since` next time.
        pub cursor: u64,
        /// The clinic's latest sequence number now (for progress bars).
        pub head: u64,
        /// Whether more changes follow `cursor`.
        pub more: bool,
    }
}

// ---- audit log --------------------------------------------------------------------------------

wire! {
    /// One entry of a hash-chained audit log: a clinic's, or the account-level log (`clinic_id`
    /// none). The server writes it in the transaction of the action it records; `hash` chains it
    /// to the entry before (see `crate::audit`).
    pub struct AuditEntry {
        pub seq: u64,
        pub at: UnixTime,
        /// Account that acted, when known.
        pub actor: Option<Uuid>,
        pub clinic_id: Option<Uuid>,
        /// e.g. `login_ok`, `records_written`, `chart_read`, or a client-reported category such
        /// as `payment_recorded` (the operator sees the category, never the detail).
        pub action: String,
        /// Chart, record, member, file or account acted on.
        pub target: Option<Uuid>,
        /// Number of records the entry covers.
        pub count: u32,
        /// `ok` or `denied`.
        pub outcome: String,
        pub ip: Option<String>,
        /// What only the browser knew, encrypted to the clinic's audit key.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub detail: Option<ReportedDetail>,
        /// `hash` of the entry before (32 zero bytes for seq 1).
        pub prev_hash: B64,
        /// SHA-256 of this entry's fields and `prev_hash` (`crate::audit::entry_hash`).
        pub hash: B64,
    }
}
wire! {
    pub struct AuditPage {
        pub entries: Vec<AuditEntry>,
        /// The last seq examined: pass as `since` for the next page.
        pub cursor: u64,
        pub more: bool,
        /// The log's last seq now.
        pub head: u64,
    }
}

/// Categories of client-reported audit entries: things only the browser knows happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ReportedAction {
    PatientUpdated,
    RecordChanged,
    PaymentRecorded,
    RefundRecorded,
    InvoicePosted,
    CreditNoteIssued,
    RecordDeleted,
    RecordRestored,
}

impl ReportedAction {
    pub fn action(self) -> &'static str {
        match self {
            ReportedAction::PatientUpdated => "patient_updated",
            ReportedAction::RecordChanged => "record_changed",
            ReportedAction::PaymentRecorded => "payment_recorded",
            ReportedAction::RefundRecorded => "refund_recorded",
            ReportedAction::InvoicePosted => "invoice_posted",
            ReportedAction::CreditNoteIssued => "credit_note_issued",
            ReportedAction::RecordDeleted => "record_deleted",
            ReportedAction::RecordRestored => "record_restored",
        }
    }
}

wire! {
    /// The encrypted detail of a client-reported entry: HPKE-sealed to the clinic's audit key
    /// and signed by its author (`crate::audit::detail_signing_input`).
    pub struct ReportedDetail {
        /// Random UUIDv4 chosen by the reporting browser; bound into the ciphertext.
        pub event_id: Uuid,
        /// The audit key it is sealed to.
        pub key_id: Uuid,
        /// HPKE encapsulated key (32 bytes).
        pub enc: B64,
        pub ciphertext: B64,
        /// The author's Ed25519 signature (64 bytes).
        pub signature: B64,
    }
}
wire! {
    /// A client-reported entry: its category, the chart or record it concerns and its sealed
    /// detail. Sent alone (`POST …/audit/events`) or with the batch write it describes.
    pub struct ReportedEvent {
        pub action: ReportedAction,
        pub target: Option<Uuid>,
        pub detail: ReportedDetail,
    }
}
wire! {
    pub struct AppendedEntry {
        pub seq: u64,
    }
}
wire! {
    /// The public half of a clinic's audit key, signed by the owner who made it
    /// (`crate::audit::audit_key_signing_input`).
    pub struct AuditKeyPublic {
        pub clinic_id: Uuid,
        pub key_id: Uuid,
        /// X25519 public key (32 bytes).
        pub public_key: B64,
        pub created_at: UnixTime,
        pub signer: Uuid,
        pub signature: B64,
    }
}
wire! {
    /// The audit key's secret HPKE-wrapped to one owner.
    pub struct WrappedAuditKey {
        pub recipient: Uuid,
        pub enc: B64,
        pub ciphertext: B64,
    }
}
wire! {
    /// An owner sets up the clinic's audit key: its signed public half and the secret wrapped to
    /// every owner.
    pub struct AuditKeySetup {
        pub public: AuditKeyPublic,
        pub wrapped: Vec<WrappedAuditKey>,
    }
}
wire! {
    /// The clinic's audit key as one member sees it: the public half for everyone (none before an
    /// owner made it), the wrapped secret only for an owner it was wrapped to.
    pub struct AuditKeyView {
        pub public: Option<AuditKeyPublic>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub wrapped: Option<WrappedAuditKey>,
        /// The owners the secret is wrapped to (an owner added later is missing until an owner
        /// who holds it shares it).
        #[serde(default)]
        pub wrapped_to: Vec<Uuid>,
    }
}
wire! {
    /// An owner who holds the audit key shares it with owners who do not (added since).
    pub struct AuditKeyShare {
        pub wrapped: Vec<WrappedAuditKey>,
    }
}
wire! {
    /// An owner's Ed25519 signature over the chain head at `seq`
    /// (`crate::audit::checkpoint_signing_input`): entries up to `seq` can no longer change
    /// without the checkpoint failing.
    pub struct AuditCheckpoint {
        pub clinic_id: Uuid,
        pub seq: u64,
        /// `hash` of entry `seq`.
        pub head_hash: B64,
        pub at: UnixTime,
        pub signer: Uuid,
        pub signature: B64,
    }
}
wire! {
    pub struct AuditCheckpointList {
        pub checkpoints: Vec<AuditCheckpoint>,
        /// Set once entries past the retention period were pruned: the log now starts after
        /// this entry, and a check starts from its hash.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub pruned: Option<AuditAnchor>,
    }
}
wire! {
    /// The last entry pruned from a log: its seq and hash.
    pub struct AuditAnchor {
        pub seq: u64,
        pub hash: B64,
    }
}

// ---- encrypted files --------------------------------------------------------------------------

wire! {
    /// Starts (or retries the start of) an encrypted file upload. The browser seals the file in
    /// chunks; every size here is of the stored ciphertext: every chunk but the last is exactly
    /// `chunk_size` bytes, the last holds the rest, and `chunk_count = ceil(total_size /
    /// chunk_size)`. The file's name and metadata go in an encrypted record, never here.
    pub struct FileUploadStart {
        /// A random UUIDv4 chosen by the client.
        pub file_id: Uuid,
        /// The chart the file belongs to (restricted-chart rules apply as for records).
        pub chart_id: Uuid,
        pub compartment: Compartment,
        /// The key the chunks are sealed under: the clinic's current key of `compartment`, or
        /// the restricted chart's own key.
        pub key_id: Uuid,
        /// That key's epoch: it must be the current one (else 409 `stale_key_epoch`).
        pub epoch: u32,
        pub chunk_count: u32,
        pub chunk_size: u32,
        pub total_size: u64,
    }
}
wire! {
    /// An encrypted file as the server holds it: its upload parameters and which chunks are
    /// stored (to resume an upload, send the missing ones).
    pub struct FileStatus {
        pub file_id: Uuid,
        pub chart_id: Uuid,
        pub compartment: Compartment,
        pub key_id: Uuid,
        pub epoch: u32,
        pub chunk_count: u32,
        pub chunk_size: u32,
        pub total_size: u64,
        /// Indices of the chunks stored so far, ascending.
        pub received: Vec<u32>,
        /// Whether the upload was completed; a complete file is immutable and downloadable.
        pub complete: bool,
        pub uploaded_by: Uuid,
        pub created_at: UnixTime,
        /// When the upload was completed.
        pub completed_at: Option<UnixTime>,
    }
}

/// A document a member's browser made from a chart. The document stays in the browser; the
/// server only logs that it was made, by whom and for which chart (an access event).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum DocumentKind {
    SpectacleRx,
    ContactLensRx,
    ReferralLetter,
    FhirExport,
    RemindersCsv,
    RemindersPrint,
}

impl DocumentKind {
    /// The access event's action.
    pub fn action(self) -> &'static str {
        match self {
            DocumentKind::SpectacleRx => "document_spectacle_rx",
            DocumentKind::ContactLensRx => "document_contact_lens_rx",
            DocumentKind::ReferralLetter => "document_referral_letter",
            DocumentKind::FhirExport => "document_fhir_export",
            DocumentKind::RemindersCsv => "document_reminders_csv",
            DocumentKind::RemindersPrint => "document_reminders_print",
        }
    }
}

wire! {
    /// Logged before a document is printed or downloaded.
    pub struct DocumentGenerated {
        pub document: DocumentKind,
        /// The chart it was made from (none for the clinic-wide reminder list).
        #[serde(default)]
        pub chart_id: Option<Uuid>,
        /// Which document, for whom, sealed to the clinic's audit key.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub detail: Option<ReportedDetail>,
    }
}

// ---- moving a clinic to another server ---------------------------------------------------------

wire! {
    /// What `POST /api/clinics/import` made of a clinic's export.
    pub struct ClinicImported {
        pub clinic_id: Uuid,
        /// Current records and earlier versions, as in the export.
        pub records: u64,
        pub versions: u64,
        pub files: u64,
        pub audit_entries: u64,
        /// Accounts created on this server (members, and former members or authors whose public
        /// keys the records need); accounts already here with the same keys are reused.
        pub accounts_created: u32,
        /// Members who can sign in here with their recovery kit (then choose a password).
        pub members_with_recovery: Vec<String>,
        /// Members without a recovery kit: they cannot sign in here; an owner removes them and
        /// invites them again.
        pub members_without_recovery: Vec<String>,
    }
}

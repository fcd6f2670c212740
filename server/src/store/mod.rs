//! Storage behind one trait, so handlers and domain logic never touch a database type.
//!
//! Every row that belongs to a clinic is keyed by the clinic id first (`clinic_id ‖ …`), so a
//! backend on a distributed SQL engine can place each clinic on one shard. Accounts, sessions and
//! login attempts are per account, not per clinic, and are the only global rows.
//!
//! Contract (checked by [`suite`] against every implementation):
//! * writes are durable (flushed) before the method returns;
//! * `write_records` is all-or-nothing: a version conflict in any write writes none of them;
//! * per-clinic change sequence numbers are gapless and strictly increasing;
//! * `changes` returns each record once, at its latest change, ordered by sequence number;
//! * a file's chunks can be added only while the file is incomplete, and only by its uploader;
//!   completion (all chunks present, guard re-checked) is atomic and final.

pub mod pg_archive;
pub mod pg_store;
pub mod recovering;
pub mod sled_store;
pub mod suite;

use async_trait::async_trait;
use optovault_shared::roster::SignedRosterEntry;
use optovault_shared::wire::{
    Acceptance, AuditCheckpoint, AuditEntry, AuditKeySetup, ClinicPolicy, InvitationStatus,
    PublicKeys, ReportedDetail, Role, SealedBlob, SealedSecret, WrappedAuditKey, WrappedKey,
};
use optovault_shared::{Compartment, UnixTime};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use optovault_shared::archive::{ArchiveError, Item as ArchiveItem};
pub use pg_store::PgStore;
pub use recovering::RecoveringStore;
pub use sled_store::SledStore;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} already exists")]
    Conflict(String),
    #[error("record {record_id} is at version {current}")]
    VersionConflict { record_id: Uuid, current: u64 },
    #[error("database error: {0}")]
    Backend(String),
    #[error("corrupt row in {0}")]
    Corrupt(&'static str),
    /// The disk cannot be written (full, read-only, over quota, failing) or the database is being
    /// reopened after such a failure. Nothing was saved; the same request may succeed later. The
    /// string is the technical cause, for the log only.
    #[error("storage unavailable (is the disk full or read-only?): {0}")]
    Unavailable(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// What [`SledStore::check_records`] found.
#[derive(Clone, Debug, Default)]
pub struct RecordsCheck {
    pub clinics: u64,
    /// Records at their latest version.
    pub current: u64,
    /// Replaced versions kept as history.
    pub versions: u64,
    /// File chunks present at their listed length.
    pub chunks: u64,
    /// How many problems, and the first few of them.
    pub problem_count: u64,
    pub problems: Vec<String>,
}

impl RecordsCheck {
    fn problem(&mut self, p: String) {
        self.problem_count += 1;
        if self.problems.len() < 20 {
            self.problems.push(p);
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AccountRow {
    pub account_id: Uuid,
    /// Normalised username (the OPAQUE credential identifier).
    pub username: String,
    /// OPAQUE password file (ServerRegistration), not a password hash: useless without the
    /// server's OPRF key and still costs an Argon2id run per guess with it.
    pub password_file: Vec<u8>,
    pub public_keys: PublicKeys,
    pub sealed_key_bundle: SealedBlob,
    pub created_at: UnixTime,
    /// When the account last logged in (shown to clinic owners as last activity).
    #[serde(default)]
    pub last_login_at: Option<UnixTime>,
    /// The TOTP second factor, if enrolled (server-side, like every TOTP verifier).
    #[serde(default)]
    pub totp: Option<TotpState>,
    /// When the password was last set (registration or change).
    #[serde(default)]
    pub password_set_at: UnixTime,
    /// Set by a clinic owner on evidence of compromise; cleared by a password change.
    #[serde(default)]
    pub must_change_password: bool,
    /// The recovery kit: private keys sealed under the recovery key, and the SHA-256 of the
    /// recovery verifier (the key itself never reaches the server).
    #[serde(default)]
    pub recovery: Option<RecoveryRow>,
    /// SHA-256 of each unused second-factor recovery code. A fresh set is issued whenever a
    /// second factor is added; the set is dropped when the last one is removed.
    #[serde(default)]
    pub mfa_recovery_hashes: Vec<[u8; 32]>,
    /// Registered passkeys and security keys (WebAuthn), usable as the second factor.
    #[serde(default)]
    pub passkeys: Vec<PasskeyRow>,
    /// A passkey registration between its two requests.
    #[serde(default)]
    pub pending_passkey: Option<PendingPasskey>,
}

impl AccountRow {
    /// Whether a login must pass a second factor after the password.
    pub fn has_second_factor(&self) -> bool {
        self.totp.as_ref().is_some_and(|t| t.confirmed) || !self.passkeys.is_empty()
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PasskeyRow {
    pub id: Uuid,
    pub name: String,
    /// webauthn-rs's `Passkey` (credential id, public key, counter) as JSON: that type has no
    /// `PartialEq`, and its own serialisation is its documented storage format.
    pub credential: serde_json::Value,
    pub created_at: UnixTime,
    pub last_used_at: Option<UnixTime>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PendingPasskey {
    pub name: String,
    /// webauthn-rs's `PasskeyRegistration` (the challenge) as JSON.
    pub state: serde_json::Value,
    pub expires_at: UnixTime,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecoveryRow {
    pub sealed_key_bundle: SealedBlob,
    pub verifier_hash: [u8; 32],
    pub created_at: UnixTime,
}

/// The server's half of an OPAQUE login between its two requests.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LoginAttempt {
    pub login_id: Uuid,
    /// `None` for an unknown username: the attempt can never succeed.
    pub account_id: Option<Uuid>,
    pub state: Vec<u8>,
    pub expires_at: UnixTime,
    /// What the attempt waits for: the OPAQUE finish (false) or, after a good password, the
    /// second factor (true; `state` is then empty).
    #[serde(default)]
    pub awaiting_mfa: bool,
    /// Wrong second-factor codes tried on this attempt.
    #[serde(default)]
    pub mfa_failures: u32,
    /// The passkey challenge issued for this attempt (webauthn-rs's `PasskeyAuthentication`
    /// as JSON); each challenge answers once.
    #[serde(default)]
    pub passkey_challenge: Option<serde_json::Value>,
}

/// A confirmed or pending TOTP second factor (RFC 6238: SHA-1, 6 digits, 30 s).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TotpState {
    pub secret: Vec<u8>,
    /// False until the user proved the authenticator app has it, by entering a code.
    pub confirmed: bool,
    /// Highest time step accepted so far: a code is never accepted twice.
    pub last_step: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SessionRow {
    /// SHA-256 of the cookie token; the token itself is never stored.
    pub token_hash: [u8; 32],
    pub account_id: Uuid,
    pub created_at: UnixTime,
    pub expires_at: UnixTime,
    /// Random id shown in session lists (never the token).
    #[serde(default)]
    pub session_id: Uuid,
    #[serde(default)]
    pub last_seen: UnixTime,
    #[serde(default)]
    pub ip: Option<String>,
    #[serde(default)]
    pub user_agent: Option<String>,
}

/// Failed or unfinished login attempts for one username or one client address.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThrottleRow {
    /// Attempts since the last success.
    pub attempts: u32,
    pub last_attempt: UnixTime,
    /// No new attempt is accepted before this time.
    pub locked_until: UnixTime,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClinicRow {
    pub clinic_id: Uuid,
    pub created_at: UnixTime,
    pub created_by: Uuid,
    /// The clinic profile envelope (its name, sealed), as canonical JSON.
    pub profile: Vec<u8>,
    #[serde(default)]
    pub policy: ClinicPolicy,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MemberRow {
    pub clinic_id: Uuid,
    pub account_id: Uuid,
    pub role: Role,
    pub added_at: UnixTime,
    /// Clinic keys wrapped to this member (ciphertext only).
    pub wrapped_keys: Vec<WrappedKey>,
    /// The member's own sealed copy of the clinic's trust anchor (opaque to the server).
    pub pinned_anchor: SealedBlob,
}

/// One signed roster entry with what the store needs to chain the next one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RosterRow {
    pub seq: u64,
    /// `roster::entry_hash` of `signed`.
    pub hash: [u8; 32],
    pub key_epoch: u32,
    pub signed: SignedRosterEntry,
}

/// The latest roster entry of a clinic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RosterHead {
    pub seq: u64,
    pub hash: [u8; 32],
    pub key_epoch: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InvitationRow {
    pub invitation_id: Uuid,
    pub clinic_id: Uuid,
    pub role: Role,
    pub created_by: Uuid,
    pub created_at: UnixTime,
    pub expires_at: UnixTime,
    /// Stored status; `Expired` is derived from `expires_at` when read.
    pub status: InvitationStatus,
    pub sealed_secret: SealedSecret,
    pub acceptance: Option<Acceptance>,
    /// The invitee's sealed anchor, moved into its member row when it is admitted.
    pub invitee_anchor: Option<SealedBlob>,
}

/// A restricted chart: only its care team may fetch its records, and its records are sealed
/// under the chart's own keys, wrapped only to the care team.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ChartRow {
    pub chart_id: Uuid,
    pub care_team: Vec<Uuid>,
    /// Epoch of the chart's own keys; raised when someone leaves the care team.
    pub key_epoch: u32,
    pub restricted_by: Uuid,
    pub restricted_at: UnixTime,
}

/// What a rotation does to the member it concerns.
#[derive(Clone, Debug, PartialEq)]
pub enum MemberChange {
    Remove(Uuid),
    ChangeRole(Uuid, Role),
}

/// What must still hold when a write commits, re-checked inside its transaction: the author is
/// still a member (and on the care team of a restricted chart), and the write is sealed under the
/// key epoch in force (the chart's for a restricted chart, else the clinic's). Without it, a write
/// checked just before a rotation could land after it under keys a removed member holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WriteGuard {
    pub author: Uuid,
    pub sealed_epoch: u32,
}

/// One record version to write.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordWriteRow {
    pub record_id: Uuid,
    /// The chart the record belongs to (from its envelope header), kept beside it so reads can
    /// apply restricted-chart rules without parsing envelopes.
    pub chart_id: Uuid,
    pub expected_version: u64,
    pub compartment: Compartment,
    /// The envelope as canonical JSON; opaque to the store.
    pub envelope: Vec<u8>,
    /// Checked at commit when present (always, for writes from the API).
    pub guard: Option<WriteGuard>,
    /// A tombstone (the envelope's `deleted` flag): the record goes to the trash.
    pub deleted: bool,
}

/// A record's latest version as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordRow {
    pub record_id: Uuid,
    pub chart_id: Uuid,
    pub seq: u64,
    pub version: u64,
    pub updated_at: UnixTime,
    pub compartment: Compartment,
    pub envelope: Vec<u8>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WriteOutcome {
    pub record_id: Uuid,
    pub version: u64,
    pub seq: u64,
}

/// An audit entry before the store numbers and chains it.
#[derive(Clone, Debug, PartialEq)]
pub struct EventDraft {
    pub at: UnixTime,
    pub actor: Option<Uuid>,
    /// `None` for account-level events (login, logout, registration).
    pub clinic_id: Option<Uuid>,
    pub action: &'static str,
    pub target: Option<Uuid>,
    pub count: u32,
    pub outcome: &'static str,
    pub ip: Option<String>,
    /// A client-reported detail, sealed to the clinic's audit key (opaque to the server).
    pub detail: Option<ReportedDetail>,
}

impl EventDraft {
    /// The entry numbered `seq` and chained after `prev_hash`, with its own hash: what every
    /// backend stores (its log head becomes `(seq, hash)`).
    pub fn chain(&self, seq: u64, prev_hash: [u8; 32]) -> AuditEntry {
        let mut row = AuditEntry {
            seq,
            at: self.at,
            actor: self.actor,
            clinic_id: self.clinic_id,
            action: self.action.to_string(),
            target: self.target,
            count: self.count,
            outcome: self.outcome.to_string(),
            ip: self.ip.clone(),
            detail: self.detail.clone(),
            prev_hash: optovault_shared::B64(prev_hash.to_vec()),
            hash: optovault_shared::B64(Vec::new()),
        };
        row.hash = optovault_shared::B64(optovault_shared::audit::entry_hash(&row).to_vec());
        row
    }
}

/// An encrypted file (image, scan, document): its upload parameters as the client declared them.
/// The server stores its chunks as opaque ciphertext; names and metadata live in an encrypted
/// record written by the client.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRow {
    pub file_id: Uuid,
    pub chart_id: Uuid,
    pub compartment: Compartment,
    /// The key the chunks are sealed under (clinic key, or a restricted chart's own key).
    pub key_id: Uuid,
    pub epoch: u32,
    pub chunk_count: u32,
    /// Stored (ciphertext) size of every chunk but the last.
    pub chunk_size: u32,
    /// Stored (ciphertext) size of the whole file: the sum of its chunks.
    pub total_size: u64,
    pub uploaded_by: Uuid,
    pub created_at: UnixTime,
    /// Set once, when every chunk is present; the file is immutable from then on.
    pub completed_at: Option<UnixTime>,
}

impl FileRow {
    pub fn is_complete(&self) -> bool {
        self.completed_at.is_some()
    }

    /// The API's view of the upload, given the chunks stored so far.
    pub fn status(&self, received: Vec<u32>) -> optovault_shared::wire::FileStatus {
        optovault_shared::wire::FileStatus {
            file_id: self.file_id,
            chart_id: self.chart_id,
            compartment: self.compartment,
            key_id: self.key_id,
            epoch: self.epoch,
            chunk_count: self.chunk_count,
            chunk_size: self.chunk_size,
            total_size: self.total_size,
            received,
            complete: self.is_complete(),
            uploaded_by: self.uploaded_by,
            created_at: self.created_at,
            completed_at: self.completed_at,
        }
    }

    /// Whether `other` describes the same upload (a retried start), ignoring timestamps.
    pub fn same_upload(&self, other: &FileRow) -> bool {
        (
            self.file_id,
            self.chart_id,
            self.compartment,
            self.key_id,
            self.epoch,
            self.chunk_count,
            self.chunk_size,
            self.total_size,
            self.uploaded_by,
        ) == (
            other.file_id,
            other.chart_id,
            other.compartment,
            other.key_id,
            other.epoch,
            other.chunk_count,
            other.chunk_size,
            other.total_size,
            other.uploaded_by,
        )
    }

    /// The exact stored length of chunk `index`: `chunk_size` for every chunk but the last, the
    /// remainder of `total_size` for the last; `None` when `index` is out of range or the row's
    /// sizes are inconsistent.
    pub fn chunk_len(&self, index: u32) -> Option<u64> {
        if index >= self.chunk_count {
            return None;
        }
        let size = u64::from(self.chunk_size);
        if index + 1 < self.chunk_count {
            return Some(size);
        }
        let before = u64::from(self.chunk_count - 1).checked_mul(size)?;
        self.total_size
            .checked_sub(before)
            .filter(|&last| last >= 1 && last <= size)
    }
}

/// How long an incomplete upload is kept: `purge_expired` removes one this old (from its start).
pub const INCOMPLETE_FILE_TTL_SECS: i64 = 24 * 3600;

/// The reasons (as `StoreError::Conflict`) a file operation is refused.
pub mod erase_conflict {
    pub const NOT_RESTRICTED: &str = "chart not restricted";
    pub const CHART_CHANGED: &str = "chart changed";
}

pub mod audit_conflict {
    /// A checkpoint whose hash is not that of the entry it names (or names no entry).
    pub const CHECKPOINT_MISMATCH: &str = "checkpoint mismatch";
    /// A checkpoint at or before the clinic's last one.
    pub const CHECKPOINT_STALE: &str = "checkpoint stale";
    /// The clinic already has an audit key.
    pub const AUDIT_KEY_EXISTS: &str = "audit key";
    /// Sharing the audit key with someone who has a copy.
    pub const AUDIT_KEY_SHARED: &str = "audit key shared";
    /// Sharing an audit key the clinic does not have.
    pub const NO_AUDIT_KEY: &str = "no audit key";
}

pub mod file_conflict {
    /// Creating a file whose id exists with other parameters or by someone else.
    pub const EXISTS: &str = "file";
    /// The file is not there (e.g. swept between the caller's checks and the write).
    pub const NO_SUCH_FILE: &str = "no such file";
    /// Adding a chunk to a completed (immutable) file.
    pub const COMPLETE: &str = "file complete";
    /// Completing a file with chunks missing.
    pub const INCOMPLETE: &str = "file incomplete";
    /// Adding a chunk to, or completing, someone else's upload.
    pub const NOT_UPLOADER: &str = "not the uploader";
    /// A chunk index out of range or a chunk of the wrong length.
    pub const BAD_CHUNK: &str = "bad chunk";
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Returns the stored OPAQUE server setup, storing `fresh` first if there is none.
    async fn server_setup_or_init(&self, fresh: Vec<u8>) -> StoreResult<Vec<u8>>;

    /// Creates an account; `Conflict` if the username is taken.
    async fn create_account(
        &self,
        account: AccountRow,
        event: Option<EventDraft>,
    ) -> StoreResult<()>;
    async fn account(&self, account_id: Uuid) -> StoreResult<Option<AccountRow>>;
    async fn account_by_username(&self, username: &str) -> StoreResult<Option<AccountRow>>;

    /// Changes an account atomically with `f`, which may refuse (its error is returned and
    /// nothing is written), appending `event` (if any) to the audit log in the same transaction;
    /// returns the new row.
    async fn update_account(
        &self,
        account_id: Uuid,
        f: Box<dyn for<'r> Fn(&'r mut AccountRow) -> StoreResult<()> + Send + Sync>,
        event: Option<EventDraft>,
    ) -> StoreResult<AccountRow>;

    async fn put_login_attempt(&self, attempt: LoginAttempt) -> StoreResult<()>;
    /// Removes and returns the attempt (each is usable once).
    async fn take_login_attempt(&self, login_id: Uuid) -> StoreResult<Option<LoginAttempt>>;

    /// Removes login attempts and sessions that expired before `now`, and incomplete file
    /// uploads started [`INCOMPLETE_FILE_TTL_SECS`] or more before `now` (with their chunks);
    /// returns how many rows (attempts, sessions, files) were removed.
    async fn purge_expired(&self, now: UnixTime) -> StoreResult<usize>;
    /// Purges records deleted longer ago than their clinic's `trash_days` (every version, the
    /// index and feed rows), appending a `record_purged` entry to the clinic's audit log in the
    /// same transaction. A record restored meanwhile is kept. Returns how many were purged.
    async fn purge_trash(&self, now: UnixTime) -> StoreResult<usize>;
    /// The records of a clinic in the trash: (record id, deleted at).
    async fn trash(&self, clinic_id: Uuid) -> StoreResult<Vec<(Uuid, UnixTime)>>;

    /// Stores a new session and records the login time on the account.
    async fn put_session(&self, session: SessionRow, event: Option<EventDraft>) -> StoreResult<()>;
    async fn session(&self, token_hash: [u8; 32]) -> StoreResult<Option<SessionRow>>;
    /// Ends a session, appending `event` (if any) in the same transaction.
    async fn delete_session(
        &self,
        token_hash: [u8; 32],
        event: Option<EventDraft>,
    ) -> StoreResult<()>;

    /// Creates a clinic with its first member (the owner) and roster entry 1 atomically;
    /// `Conflict` if the id exists.
    async fn create_clinic(
        &self,
        clinic: ClinicRow,
        owner: MemberRow,
        genesis: RosterRow,
        event: EventDraft,
    ) -> StoreResult<()>;
    /// Every member of a clinic.
    async fn members(&self, clinic_id: Uuid) -> StoreResult<Vec<MemberRow>>;
    /// Roster entries with seq > `since`, in order, and the head.
    async fn roster(
        &self,
        clinic_id: Uuid,
        since: u64,
    ) -> StoreResult<(Vec<RosterRow>, Option<RosterHead>)>;
    async fn roster_head(&self, clinic_id: Uuid) -> StoreResult<Option<RosterHead>>;

    /// Stores a new invitation and appends `event`, in one transaction; `Conflict` if the id
    /// exists.
    async fn create_invitation(
        &self,
        invitation: InvitationRow,
        event: EventDraft,
    ) -> StoreResult<()>;
    async fn invitation(
        &self,
        clinic_id: Uuid,
        invitation_id: Uuid,
    ) -> StoreResult<Option<InvitationRow>>;
    async fn invitations(&self, clinic_id: Uuid) -> StoreResult<Vec<InvitationRow>>;
    /// Replaces an invitation only if its stored status is still `from` (so two acceptances, or
    /// an acceptance and a revocation, cannot both win); `Conflict` otherwise.
    async fn transition_invitation(
        &self,
        from: InvitationStatus,
        next: InvitationRow,
        event: EventDraft,
    ) -> StoreResult<()>;

    /// Admits a member atomically: appends the roster entry (which must follow the current head),
    /// adds the member, marks the invitation joined (it must still be accepted) and appends
    /// `events` to the audit log.
    async fn add_member(
        &self,
        clinic_id: Uuid,
        entry: RosterRow,
        member: MemberRow,
        invitation_id: Uuid,
        events: Vec<EventDraft>,
    ) -> StoreResult<()>;
    /// Removes a member or changes a role and installs a new key epoch, atomically: appends the
    /// roster entry (which must follow the current head), applies `change`, and adds `new_keys`
    /// to the members they are wrapped to. A changed role keeps only the keys it still grants.
    /// `charts` are the restricted charts the change touches, with their new care team and key
    /// epoch (their new keys are among `new_keys`). `events` go to the audit log in the same
    /// transaction.
    async fn rotate(
        &self,
        clinic_id: Uuid,
        entry: RosterRow,
        change: MemberChange,
        new_keys: Vec<WrappedKey>,
        charts: Vec<ChartRow>,
        events: Vec<EventDraft>,
    ) -> StoreResult<()>;
    /// The clinic's restricted charts.
    async fn charts(&self, clinic_id: Uuid) -> StoreResult<Vec<ChartRow>>;
    /// Restricts a chart atomically: records its care team, gives the team its wrapped chart
    /// keys, and writes the chart's records re-sealed under those keys (all or nothing);
    /// `Conflict` if the chart is restricted already.
    async fn restrict_chart(
        &self,
        clinic_id: Uuid,
        chart: ChartRow,
        wraps: Vec<WrappedKey>,
        writes: Vec<RecordWriteRow>,
        now: UnixTime,
        event: EventDraft,
    ) -> StoreResult<Vec<WriteOutcome>>;
    /// Replaces a chart's care team atomically if its key epoch is still `expected_epoch`:
    /// strips the chart's keys from `removed`, adds `wraps`.
    async fn update_care_team(
        &self,
        clinic_id: Uuid,
        chart: ChartRow,
        expected_epoch: u32,
        removed: Vec<Uuid>,
        wraps: Vec<WrappedKey>,
        event: EventDraft,
    ) -> StoreResult<()>;

    /// Erases a restricted chart (a patient's right to erasure): every version of every record
    /// filed under it, its files, its trash rows, its restriction and every copy of its keys
    /// wrapped to members, and appends `event`, in one transaction. `Conflict(NOT_RESTRICTED)`
    /// if the chart is not restricted, `Conflict(CHART_CHANGED)` if a record of it was written
    /// meanwhile. Returns how many records were erased.
    async fn erase_chart(
        &self,
        clinic_id: Uuid,
        chart_id: Uuid,
        event: EventDraft,
    ) -> StoreResult<u32>;

    /// Every session of an account.
    async fn sessions_of(&self, account_id: Uuid) -> StoreResult<Vec<SessionRow>>;
    /// Records that a session was used at `at` (not flushed: last-seen is advisory).
    async fn touch_session(&self, token_hash: [u8; 32], at: UnixTime) -> StoreResult<()>;
    /// Replaces an account's OPAQUE password file and sealed key bundle and deletes every
    /// session of it except `keep`, atomically; returns how many sessions were revoked.
    async fn change_password(
        &self,
        account_id: Uuid,
        password_file: Vec<u8>,
        sealed_key_bundle: SealedBlob,
        keep: [u8; 32],
    ) -> StoreResult<usize>;

    /// Login throttling state for a key (`user:<name>` or `ip:<address>`).
    async fn throttle(&self, key: &str) -> StoreResult<Option<ThrottleRow>>;
    /// Updates a throttle row with `f` atomically and returns the new row.
    async fn update_throttle(
        &self,
        key: &str,
        f: Box<dyn Fn(Option<ThrottleRow>) -> Option<ThrottleRow> + Send + Sync>,
    ) -> StoreResult<Option<ThrottleRow>>;

    /// Deletes every session of an account; returns how many.
    async fn revoke_sessions_of(&self, account_id: Uuid) -> StoreResult<usize>;
    async fn clinic(&self, clinic_id: Uuid) -> StoreResult<Option<ClinicRow>>;
    /// Sets a clinic's policy and appends `event`, in one transaction.
    async fn set_clinic_policy(
        &self,
        clinic_id: Uuid,
        policy: ClinicPolicy,
        event: EventDraft,
    ) -> StoreResult<()>;
    async fn member(&self, clinic_id: Uuid, account_id: Uuid) -> StoreResult<Option<MemberRow>>;
    /// The clinics an account belongs to, with its membership in each.
    async fn clinics_of(&self, account_id: Uuid) -> StoreResult<Vec<(ClinicRow, MemberRow)>>;

    /// Writes record versions atomically (all or none), appends `events` to the audit log in the
    /// same transaction, and flushes before returning.
    async fn write_records(
        &self,
        clinic_id: Uuid,
        writes: Vec<RecordWriteRow>,
        now: UnixTime,
        events: Vec<EventDraft>,
    ) -> StoreResult<Vec<WriteOutcome>>;
    async fn record(&self, clinic_id: Uuid, record_id: Uuid) -> StoreResult<Option<RecordRow>>;
    /// Every replaced version of a record, oldest first (the current one is `record`).
    async fn record_versions(
        &self,
        clinic_id: Uuid,
        record_id: Uuid,
    ) -> StoreResult<Vec<RecordRow>>;
    /// Records ordered by id, starting after `after`.
    async fn records(
        &self,
        clinic_id: Uuid,
        after: Option<Uuid>,
        limit: usize,
    ) -> StoreResult<Vec<RecordRow>>;
    /// Records whose latest change has `seq > since`, by seq; and the clinic's head seq.
    async fn changes(
        &self,
        clinic_id: Uuid,
        since: u64,
        limit: usize,
    ) -> StoreResult<(Vec<RecordRow>, u64)>;

    /// Appends an entry to the audit log of its clinic (or the account-level log), chained to
    /// the one before. With `durable`, it is flushed before returning; otherwise it is flushed by
    /// the backend's periodic flush (read events, which are frequent).
    async fn append_event(&self, event: EventDraft, durable: bool) -> StoreResult<u64>;
    /// Streams one clinic's export (`optovault_shared::clinic_export`: its sections in order) to
    /// `sink`, as a consistent snapshot: no write of any clinic commits while the rows are read
    /// (file chunks, which never change once complete, are read after writes resume).
    /// Blocking: call it on the blocking pool.
    fn export_clinic(
        &self,
        clinic_id: Uuid,
        exported_by: Uuid,
        at: UnixTime,
        sink: &mut dyn FnMut(ArchiveItem<'_>) -> Result<(), ArchiveError>,
    ) -> Result<(), ArchiveError>;
    /// Entries of one clinic's log (or the account-level log with `None`) with `seq > since`.
    async fn audit_entries(
        &self,
        clinic_id: Option<Uuid>,
        since: u64,
        limit: usize,
    ) -> StoreResult<Vec<AuditEntry>>;
    /// The last seq and hash of a log (0 and the genesis hash when empty).
    async fn audit_head(&self, clinic_id: Option<Uuid>) -> StoreResult<(u64, [u8; 32])>;
    /// Deletes, from every log, the entries older than `before` (the retention period), keeping
    /// the last one's seq and hash as the log's anchor so the rest still verifies, and appends an
    /// `audit_pruned` entry in the same transaction. Returns how many entries were pruned.
    async fn prune_audit(&self, before: UnixTime, now: UnixTime) -> StoreResult<usize>;
    /// Where a pruned log now starts: the seq and hash of its last pruned entry.
    async fn audit_anchor(&self, clinic_id: Option<Uuid>) -> StoreResult<Option<(u64, [u8; 32])>>;
    /// Every log that has entries: `None` for the account-level log, then clinics by id.
    async fn audit_logs(&self) -> StoreResult<Vec<Option<Uuid>>>;
    /// Stores the clinic's audit key and appends `event`, in one transaction; `Conflict` if the
    /// clinic has one.
    async fn set_audit_key(
        &self,
        clinic_id: Uuid,
        key: AuditKeySetup,
        event: EventDraft,
    ) -> StoreResult<()>;
    async fn audit_key(&self, clinic_id: Uuid) -> StoreResult<Option<AuditKeySetup>>;
    /// Adds wrapped copies of the audit key's secret for owners who have none, appending
    /// `events` in the same transaction; `Conflict(AUDIT_KEY_SHARED)` if one of them has a copy
    /// already, `Conflict(NO_AUDIT_KEY)` if there is no key.
    async fn share_audit_key(
        &self,
        clinic_id: Uuid,
        wrapped: Vec<WrappedAuditKey>,
        events: Vec<EventDraft>,
    ) -> StoreResult<()>;
    /// Stores a signed checkpoint after checking, in one transaction with appending `event`,
    /// that it names an existing entry by its hash (`Conflict(CHECKPOINT_MISMATCH)`) past the
    /// clinic's last checkpoint (`Conflict(CHECKPOINT_STALE)`).
    async fn add_checkpoint(
        &self,
        clinic_id: Uuid,
        checkpoint: AuditCheckpoint,
        event: EventDraft,
    ) -> StoreResult<()>;
    /// A clinic's checkpoints, oldest first.
    async fn checkpoints(&self, clinic_id: Uuid) -> StoreResult<Vec<AuditCheckpoint>>;
    /// Starts a file upload: stores `file` (incomplete) after re-checking `guard` (author =
    /// `file.uploaded_by`, sealed epoch = `file.epoch`, against `file.chart_id`) in the same
    /// transaction. If the id exists and describes the same upload by the same uploader (a retried
    /// start), returns the stored row unchanged with `false`; otherwise `Conflict(EXISTS)`.
    /// Returns the stored row and whether it was created.
    async fn create_file(
        &self,
        clinic_id: Uuid,
        file: FileRow,
        guard: WriteGuard,
    ) -> StoreResult<(FileRow, bool)>;
    async fn file(&self, clinic_id: Uuid, file_id: Uuid) -> StoreResult<Option<FileRow>>;
    /// Indices of the chunks stored so far, ascending.
    async fn file_chunk_indices(&self, clinic_id: Uuid, file_id: Uuid) -> StoreResult<Vec<u32>>;
    /// Stores (or replaces) chunk `index` of an incomplete file, atomically with the checks that
    /// the file exists (`NO_SUCH_FILE`), is incomplete (`COMPLETE`), was started by `uploader`
    /// (`NOT_UPLOADER`) and that the chunk has exactly its expected length (`BAD_CHUNK`).
    async fn put_file_chunk(
        &self,
        clinic_id: Uuid,
        file_id: Uuid,
        index: u32,
        uploader: Uuid,
        bytes: Vec<u8>,
    ) -> StoreResult<()>;
    /// One stored chunk, as stored (whether or not the file is complete: callers check).
    async fn file_chunk(
        &self,
        clinic_id: Uuid,
        file_id: Uuid,
        index: u32,
    ) -> StoreResult<Option<Vec<u8>>>;
    /// Completes a file: checks that `guard.author` is its uploader (`NOT_UPLOADER`), that every
    /// chunk is present with sizes summing to `total_size` (`INCOMPLETE`), re-checks `guard`
    /// against the file's chart, sets `completed_at = now` and appends `event`, in one
    /// transaction. Completing a complete file returns it unchanged and appends nothing.
    async fn complete_file(
        &self,
        clinic_id: Uuid,
        file_id: Uuid,
        guard: WriteGuard,
        now: UnixTime,
        event: EventDraft,
    ) -> StoreResult<FileRow>;

    /// Stores bulk rows of a clinic being imported (`crate::import`). The clinic has no clinic
    /// row, member rows, heads or account links until [`finish_import`](Self::finish_import), so
    /// nothing can reach these rows before then. Conflict `clinic` if the clinic exists.
    async fn import_rows(&self, clinic_id: Uuid, batch: ImportBatch) -> StoreResult<()>;
    /// Makes an imported clinic exist, in one transaction: its clinic row, members and their
    /// account links, roster and head, charts, audit key, anchor, checkpoints and head, trash,
    /// files, record head, the accounts it names (created, or kept when the same id with the same
    /// username and public keys is already here), and `event` chained after the imported log.
    /// Conflicts, with nothing written: `clinic` (it exists), `username` (taken by another
    /// account), `account` (the id exists with another username or other keys).
    async fn finish_import(&self, import: ImportedClinic) -> StoreResult<()>;
    /// Removes every row [`import_rows`](Self::import_rows) left for a clinic that does not
    /// exist (an import that failed or was interrupted). Conflict `clinic` if the clinic exists.
    async fn discard_import(&self, clinic_id: Uuid) -> StoreResult<()>;
}

/// Bulk rows of a clinic being imported, in file order.
#[derive(Clone, Debug, PartialEq)]
pub enum ImportBatch {
    /// Audit entries as exported: numbered and chained already.
    Events(Vec<AuditEntry>),
    /// Current versions (with the record index).
    Records(Vec<RecordRow>),
    /// Replaced versions (history).
    Versions(Vec<RecordRow>),
    /// File chunks: file id, index, ciphertext.
    Chunks(Vec<(Uuid, u32, Vec<u8>)>),
}

/// The rest of an imported clinic, written at once by [`Store::finish_import`].
#[derive(Clone, Debug, PartialEq)]
pub struct ImportedClinic {
    pub clinic: ClinicRow,
    pub members: Vec<MemberRow>,
    pub accounts: Vec<AccountRow>,
    pub roster: Vec<RosterRow>,
    pub charts: Vec<ChartRow>,
    pub audit_key: Option<AuditKeySetup>,
    /// Seq and hash of the last entry pruned before the export, if any.
    pub audit_anchor: Option<(u64, [u8; 32])>,
    pub checkpoints: Vec<AuditCheckpoint>,
    /// Records whose latest version is a tombstone, with when.
    pub trash: Vec<(Uuid, UnixTime)>,
    pub files: Vec<FileRow>,
    /// The last change sequence number.
    pub record_head: u64,
    /// Seq and hash of the last imported audit entry.
    pub audit_head: (u64, [u8; 32]),
    /// Appended to the clinic's log, after the imported entries.
    pub event: EventDraft,
}

//! A clinic's own export: everything the server holds for one clinic, as stored (ciphertext,
//! wrapped keys, signed roster, audit log), in the [`crate::archive`] format with one "tree" per
//! section below, written in this order so a reader meets the keys before the records.
//!
//! The server makes it for an owner (`GET /api/clinics/{id}/export`) and never decrypts
//! anything for it; the owner's browser checks it with the owner's keys. Values are the JSON of
//! the types below (or of wire types); `file_chunks` values are the chunk ciphertext. Keys order
//! the rows: big-endian seq, or ids.
//!
//! Left out on purpose: accounts' OPAQUE password files (bound to this server's OPRF key, and
//! an offline guessing target for whoever holds them), TOTP secrets, passkeys, sessions and
//! pending invitations. Each current member's recovery kit *is* in (the private keys sealed under
//! the member's 256-bit recovery key, and the SHA-256 of its verifier): useless without that
//! key, and what lets the member sign in again on a server the export is imported into
//! (`POST /api/clinics/import`).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::envelope::RecordEnvelope;
use crate::wire::{ClinicPolicy, PublicKeys, Role, SealedBlob, WrappedKey};
use crate::UnixTime;

/// Section names, in file order. Values:
/// `clinic`: [`ExportedClinic`] (one row); `members`: [`ExportedMember`]; `roster`:
/// `SignedRosterEntry` (key: seq); `charts`: [`ExportedChart`]; `audit_key`: `AuditKeySetup` (at
/// most one row); `audit_anchor`: `AuditAnchor` (at most one); `audit_checkpoints`:
/// `AuditCheckpoint` (key: seq); `audit`: `AuditEntry` (key: seq); `trash`: [`TrashRow`]; `files`:
/// `FileStatus`; `records`: `StoredRecord`, the current version of each record (key: seq);
/// `versions`: `StoredRecord`, every replaced version (key: record id ‖ version); `accounts`:
/// [`ExportedAccount`], everyone the sections before name (after them, so the server reads each
/// record once); `file_chunks`: chunk bytes (key: file id ‖ index).
pub const SECTIONS: [&str; 14] = [
    "clinic",
    "members",
    "roster",
    "charts",
    "audit_key",
    "audit_anchor",
    "audit_checkpoints",
    "audit",
    "trash",
    "files",
    "records",
    "versions",
    "accounts",
    "file_chunks",
];

/// The file name browsers save an export under.
pub fn file_name(clinic_id: &Uuid, at: UnixTime) -> String {
    format!("optovault-clinic-{}-{at}.ovbk", clinic_id.simple())
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportedClinic {
    pub clinic_id: Uuid,
    pub created_at: UnixTime,
    pub created_by: Uuid,
    /// The clinic profile (its name, sealed).
    pub profile: RecordEnvelope,
    pub policy: ClinicPolicy,
    /// The clinic's last change sequence number.
    pub record_head: u64,
    pub exported_at: UnixTime,
    pub exported_by: Uuid,
}

/// Public facts about an account that appears in the clinic (member now or once).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportedAccount {
    pub account_id: Uuid,
    pub username: String,
    pub public_keys: PublicKeys,
    /// The recovery kit of a current member who has one (see the module comment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery: Option<ExportedRecovery>,
}

/// A member's recovery kit as the server stores it: nothing here opens without the key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportedRecovery {
    /// The member's private keys sealed under the recovery key (`RecoveryKey::seal_bundle`).
    pub sealed_key_bundle: SealedBlob,
    /// SHA-256 of the recovery verifier (32 bytes).
    pub verifier_hash: crate::B64,
    pub created_at: UnixTime,
}

/// What an owner signs (Ed25519, the key in the clinic's roster) to import an export into a
/// server: the clinic and the exact file, by the SHA-256 of its content (from its header).
pub fn import_signing_input(clinic_id: &Uuid, content_sha256: &[u8; 32]) -> Vec<u8> {
    let mut m = b"optovault/v1/clinic-import\0".to_vec();
    m.extend_from_slice(clinic_id.as_bytes());
    m.extend_from_slice(content_sha256);
    m
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportedMember {
    pub account_id: Uuid,
    pub role: Role,
    pub added_at: UnixTime,
    /// The clinic's (and restricted charts') keys wrapped to this member.
    pub wrapped_keys: Vec<WrappedKey>,
    /// The member's own sealed copy of the clinic's trust anchor.
    pub pinned_anchor: SealedBlob,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportedChart {
    pub chart_id: Uuid,
    pub care_team: Vec<Uuid>,
    pub key_epoch: u32,
    pub restricted_by: Uuid,
    pub restricted_at: UnixTime,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrashRow {
    pub record_id: Uuid,
    pub deleted_at: UnixTime,
}

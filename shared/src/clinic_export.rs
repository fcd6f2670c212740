//! A clinic's own export: everything the server holds for one clinic, as stored (ciphertext,
//! wrapped keys, signed roster, audit log), in the [`crate::archive`] format with one "tree" per
//! section below, written in this order so a reader meets the keys before the records.
//!
//! The server makes it for an owner (`GET /api/clinics/{id}/export`) and never decrypts
//! anything for it; the owner's browser checks it with the owner's keys. Values are the JSON of
//! the types below (or of wire types); `file_chunks` values are the chunk ciphertext. Keys order
//! the rows: big-endian seq, or ids.
//!
//! Left out on purpose: accounts' OPAQUE password files, TOTP secrets, passkeys, sessions and
//! recovery data (the server's secrets about each member, which an owner must not carry away),
//! and pending invitations.

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

//! The record envelope: what the server stores and serves for every encrypted record.
//!
//! The header (ids, compartment, version, key id and epoch, author) is visible to the server so it
//! can enforce tenancy, roles and versions; the record's content, kind and everything about the
//! patient are inside `ciphertext`. The header fields are all bound into the AEAD's associated data
//! ([`RecordEnvelope::aad`]) and covered by the author's Ed25519 signature
//! ([`RecordEnvelope::signing_input`]), so a server that moves a ciphertext to another record,
//! chart, clinic, version, key or author makes it fail to open.
//!
//! Nothing here encrypts: the cipher lives in `crate::crypto` behind the `client` feature.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::B64;

/// Current envelope format. A reader refuses any other value.
pub const ENVELOPE_FORMAT: u8 = 1;
/// AES-256-GCM nonce length.
pub const NONCE_LEN: usize = 12;
/// Ed25519 signature length.
pub const SIGNATURE_LEN: usize = 64;
/// AES-GCM tag length: the smallest possible ciphertext.
pub const TAG_LEN: usize = 16;

/// Which key a record is encrypted under. Each compartment of a clinic has its own key, so a role
/// that is not granted a compartment never holds the key to read it (team issue).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Compartment {
    /// Demographics and scheduling.
    Demographics,
    /// Exams, clinical notes, diagnoses, images.
    Clinical,
    /// Invoices, payments, insurance.
    Billing,
    /// Spectacle and contact-lens prescriptions: what an optician needs to dispense, split from
    /// the clinical record so an optician never holds the key to exams and notes.
    Prescriptions,
}

impl Compartment {
    pub const ALL: [Compartment; 4] = [
        Compartment::Demographics,
        Compartment::Clinical,
        Compartment::Billing,
        Compartment::Prescriptions,
    ];
    /// One stable byte per compartment, used in AAD, HPKE info and storage rows.
    pub fn code(self) -> u8 {
        match self {
            Compartment::Demographics => 1,
            Compartment::Clinical => 2,
            Compartment::Billing => 3,
            Compartment::Prescriptions => 4,
        }
    }
    pub fn from_code(c: u8) -> Option<Self> {
        Compartment::ALL.into_iter().find(|x| x.code() == c)
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Compartment::Demographics => "demographics",
            Compartment::Clinical => "clinical",
            Compartment::Billing => "billing",
            Compartment::Prescriptions => "prescriptions",
        }
    }
}

/// What an envelope holds, so one kind of ciphertext can never be opened as another (a clinic's
/// profile presented as a patient record fails). Part of the AAD, not of the wire header: the
/// reader supplies the purpose it expects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// A record of the clinic's data (patient, exam, ...).
    Record,
    /// The clinic's own profile (its name), `record_id == chart_id == clinic_id`.
    ClinicProfile,
}

impl Purpose {
    fn label(self) -> &'static [u8] {
        match self {
            Purpose::Record => b"optovault/v1/record",
            Purpose::ClinicProfile => b"optovault/v1/clinic-profile",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RecordEnvelope {
    /// Envelope format, currently 1.
    pub format: u8,
    pub record_id: Uuid,
    /// The chart (patient) the record belongs to; a patient record is its own chart root
    /// (`chart_id == record_id`).
    pub chart_id: Uuid,
    pub compartment: Compartment,
    /// 1 for a new record, then +1 on every write. Bound into the AAD: an old version cannot be
    /// replayed as a new one.
    pub version: u64,
    /// Which clinic key (compartment key of one epoch) sealed the record.
    pub key_id: Uuid,
    /// The key epoch; a new epoch starts when the key is rotated (team issue).
    pub epoch: u32,
    /// Account id of the member who wrote this version.
    pub author: Uuid,
    pub nonce: B64,
    pub ciphertext: B64,
    /// Ed25519 signature by `author` over [`RecordEnvelope::signing_input`].
    pub signature: B64,
    /// A tombstone: this version deletes the record. Its content is the version it deletes, so
    /// the record can be restored from the trash. Bound into the AAD (a server cannot turn a
    /// write into a deletion or back); the server sees it, to keep and later purge the trash.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
}

/// Why an envelope header is not acceptable. Checked by the server on every write (structure
/// only) and by the client before it tries to open anything.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EnvelopeError {
    #[error("unsupported envelope format {0}")]
    Format(u8),
    #[error("nonce must be {NONCE_LEN} bytes")]
    Nonce,
    #[error("signature must be {SIGNATURE_LEN} bytes")]
    Signature,
    #[error("ciphertext must be between {TAG_LEN} and {max} bytes", max = crate::limits::MAX_CIPHERTEXT_BYTES)]
    CiphertextSize,
    #[error("version must be at least 1")]
    Version,
    #[error("ids must be random (UUID version 4) and not nil")]
    Id,
}

fn random_id(id: &Uuid) -> bool {
    !id.is_nil() && id.get_version_num() == 4
}

impl RecordEnvelope {
    /// Structural checks any reader can make without a key.
    pub fn check_structure(&self) -> Result<(), EnvelopeError> {
        if self.format != ENVELOPE_FORMAT {
            return Err(EnvelopeError::Format(self.format));
        }
        if self.nonce.len() != NONCE_LEN {
            return Err(EnvelopeError::Nonce);
        }
        if self.signature.len() != SIGNATURE_LEN {
            return Err(EnvelopeError::Signature);
        }
        if self.ciphertext.len() < TAG_LEN
            || self.ciphertext.len() > crate::limits::MAX_CIPHERTEXT_BYTES
        {
            return Err(EnvelopeError::CiphertextSize);
        }
        if self.version == 0 {
            return Err(EnvelopeError::Version);
        }
        if ![self.record_id, self.chart_id, self.key_id, self.author]
            .iter()
            .all(random_id)
        {
            return Err(EnvelopeError::Id);
        }
        Ok(())
    }

    /// The associated data of the AEAD: a fixed-layout encoding of every header field plus the
    /// clinic id (which is in the URL, not in the envelope) and the purpose label.
    pub fn aad(&self, clinic_id: &Uuid, purpose: Purpose) -> Vec<u8> {
        let mut aad = record_aad(
            purpose,
            clinic_id,
            &self.chart_id,
            &self.record_id,
            self.compartment,
            self.version,
            &self.key_id,
            self.epoch,
            &self.author,
        );
        // After the fixed-length layout, so it cannot be confused with any other field.
        if self.deleted {
            aad.extend_from_slice(b"\0tombstone");
        }
        aad
    }

    /// The bytes the author signs: the AAD, the nonce and the ciphertext, each length-prefixed.
    pub fn signing_input(&self, clinic_id: &Uuid, purpose: Purpose) -> Vec<u8> {
        let aad = self.aad(clinic_id, purpose);
        let mut out = Vec::with_capacity(aad.len() + self.ciphertext.len() + 64);
        out.extend_from_slice(b"optovault/v1/record-signature");
        for part in [&aad[..], self.nonce.as_slice(), self.ciphertext.as_slice()] {
            out.extend_from_slice(&(part.len() as u64).to_be_bytes());
            out.extend_from_slice(part);
        }
        out
    }
}

/// See [`RecordEnvelope::aad`]. Fixed layout: label, 0x00, clinic, chart, record (16 bytes each),
/// compartment (1), version (8, big endian), key id (16), epoch (4, big endian), author (16).
#[allow(clippy::too_many_arguments)]
pub fn record_aad(
    purpose: Purpose,
    clinic_id: &Uuid,
    chart_id: &Uuid,
    record_id: &Uuid,
    compartment: Compartment,
    version: u64,
    key_id: &Uuid,
    epoch: u32,
    author: &Uuid,
) -> Vec<u8> {
    let label = purpose.label();
    let mut aad = Vec::with_capacity(label.len() + 1 + 16 * 5 + 1 + 8 + 4);
    aad.extend_from_slice(label);
    aad.push(0);
    aad.extend_from_slice(clinic_id.as_bytes());
    aad.extend_from_slice(chart_id.as_bytes());
    aad.extend_from_slice(record_id.as_bytes());
    aad.push(compartment.code());
    aad.extend_from_slice(&version.to_be_bytes());
    aad.extend_from_slice(key_id.as_bytes());
    aad.extend_from_slice(&epoch.to_be_bytes());
    aad.extend_from_slice(author.as_bytes());
    aad
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> RecordEnvelope {
        RecordEnvelope {
            format: 1,
            record_id: Uuid::new_v4(),
            chart_id: Uuid::new_v4(),
            compartment: Compartment::Demographics,
            version: 1,
            key_id: Uuid::new_v4(),
            epoch: 1,
            author: Uuid::new_v4(),
            nonce: B64(vec![0; 12]),
            ciphertext: B64(vec![0; 40]),
            signature: B64(vec![0; 64]),
            deleted: false,
        }
    }

    #[test]
    fn a_tombstone_has_its_own_aad_and_an_ordinary_write_keeps_the_old_one() {
        let live = sample();
        let clinic = Uuid::new_v4();
        let dead = RecordEnvelope {
            deleted: true,
            ..live.clone()
        };
        assert_ne!(
            live.aad(&clinic, Purpose::Record),
            dead.aad(&clinic, Purpose::Record)
        );
        assert!(!serde_json::to_string(&live).unwrap().contains("deleted"));
        assert!(serde_json::to_string(&dead)
            .unwrap()
            .contains("\"deleted\":true"));
    }

    #[test]
    fn structure_checks() {
        assert_eq!(sample().check_structure(), Ok(()));
        let mut e = sample();
        e.format = 2;
        assert_eq!(e.check_structure(), Err(EnvelopeError::Format(2)));
        let mut e = sample();
        e.nonce = B64(vec![0; 11]);
        assert_eq!(e.check_structure(), Err(EnvelopeError::Nonce));
        let mut e = sample();
        e.ciphertext = B64(vec![0; 15]);
        assert_eq!(e.check_structure(), Err(EnvelopeError::CiphertextSize));
        let mut e = sample();
        e.version = 0;
        assert_eq!(e.check_structure(), Err(EnvelopeError::Version));
        let mut e = sample();
        e.record_id = Uuid::nil();
        assert_eq!(e.check_structure(), Err(EnvelopeError::Id));
    }

    #[test]
    fn aad_changes_with_every_bound_field() {
        let e = sample();
        let c = Uuid::new_v4();
        let base = e.aad(&c, Purpose::Record);
        assert_ne!(base, e.aad(&Uuid::new_v4(), Purpose::Record));
        assert_ne!(base, e.aad(&c, Purpose::ClinicProfile));
        let mut v = e.clone();
        v.version = 2;
        assert_ne!(base, v.aad(&c, Purpose::Record));
        let mut v = e.clone();
        v.epoch = 2;
        assert_ne!(base, v.aad(&c, Purpose::Record));
        let mut v = e.clone();
        v.compartment = Compartment::Clinical;
        assert_ne!(base, v.aad(&c, Purpose::Record));
    }

    #[test]
    fn unknown_fields_rejected() {
        let mut j = serde_json::to_value(sample()).unwrap();
        j["extra"] = serde_json::json!(1);
        assert!(serde_json::from_value::<RecordEnvelope>(j).is_err());
    }
}

//! The clinic's compact patient index: what the patient list, search, calendars and work lists
//! need of every patient (names, date of birth, contact details, chart number, status, recall
//! date), so a clinic opens by decrypting a few hundred index records instead of every record.
//!
//! The index is split into [`INDEX_SHARDS`] shards by the first byte of the patient's id. Each
//! shard is an ordinary record (kind `patient_index`, compartment `demographics`, chart = the
//! clinic itself) at a record id every member derives from the clinic id, sealed and signed like
//! any other record. A patient write and its shard write go in one batch, so the index never
//! lags the records it summarises. Each entry names the patient record's version, so a client can
//! tell from the change feed's headers alone which patients the index already covers and fetch
//! only the others. Patients of restricted charts are never in the index: everyone holding the
//! demographics key can read it, and a restricted chart is for its care team only.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::{Patient, PatientStatus};

/// Shards of the index. 256 keeps a shard near 25 KB at 50,000 patients and under the record
/// size limit up to about 500,000.
pub const INDEX_SHARDS: u16 = 256;

/// The shard a patient's entry lives in.
pub fn shard_of(patient_id: &Uuid) -> u16 {
    u16::from(patient_id.as_bytes()[0]) % INDEX_SHARDS
}

/// The record id of one shard of a clinic's index: name-based (UUID v5 under the clinic id), so
/// every member finds it, then marked version 4 like every record id (the envelope accepts only
/// those; the server can compute these ids too, which docs/SECURITY.md says).
pub fn shard_record_id(clinic_id: &Uuid, shard: u16) -> Uuid {
    let named = Uuid::new_v5(
        clinic_id,
        format!("optovault/patient-index/{shard}").as_bytes(),
    );
    uuid::Builder::from_random_bytes(*named.as_bytes()).into_uuid()
}

/// The record ids of every shard, in shard order.
pub fn shard_record_ids(clinic_id: &Uuid) -> Vec<Uuid> {
    (0..INDEX_SHARDS)
        .map(|s| shard_record_id(clinic_id, s))
        .collect()
}

/// Which shard a record id is, if it is one of the clinic's index shards.
pub fn shard_number(clinic_id: &Uuid, record_id: &Uuid) -> Option<u16> {
    (0..INDEX_SHARDS).find(|s| shard_record_id(clinic_id, *s) == *record_id)
}

/// One patient as the index shows them. Field names are short: the index is read whole at
/// every clinic opening.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndexEntry {
    /// The patient's record id (= chart id).
    #[serde(rename = "i")]
    pub id: Uuid,
    /// The version of the patient record this entry summarises.
    #[serde(rename = "v")]
    pub version: u64,
    #[serde(rename = "g")]
    pub given_name: String,
    #[serde(rename = "f")]
    pub family_name: String,
    #[serde(rename = "b")]
    pub date_of_birth: String,
    #[serde(rename = "p", default, skip_serializing_if = "String::is_empty")]
    pub phone: String,
    #[serde(rename = "e", default, skip_serializing_if = "String::is_empty")]
    pub email: String,
    #[serde(rename = "m", default, skip_serializing_if = "String::is_empty")]
    pub insurance_member_id: String,
    #[serde(rename = "c", default, skip_serializing_if = "String::is_empty")]
    pub chart_number: String,
    #[serde(rename = "s", default, skip_serializing_if = "is_active")]
    pub status: PatientStatus,
    #[serde(rename = "r", default, skip_serializing_if = "Option::is_none")]
    pub recall_due: Option<String>,
}

fn is_active(s: &PatientStatus) -> bool {
    *s == PatientStatus::Active
}

impl IndexEntry {
    /// The entry for one version of a patient record.
    pub fn summarise(id: Uuid, version: u64, p: &Patient) -> IndexEntry {
        IndexEntry {
            id,
            version,
            given_name: p.given_name.clone(),
            family_name: p.family_name.clone(),
            date_of_birth: p.date_of_birth.clone(),
            phone: p.phone.clone(),
            email: p.email.clone(),
            insurance_member_id: p.insurance_member_id.clone(),
            chart_number: p.chart_number.clone(),
            status: p.status,
            recall_due: p.recall_due.clone(),
        }
    }

    /// The patient as far as the index knows them (every other field empty): enough for lists,
    /// search, calendars and work lists, not for editing.
    pub fn to_patient(&self) -> Patient {
        Patient {
            given_name: self.given_name.clone(),
            family_name: self.family_name.clone(),
            date_of_birth: self.date_of_birth.clone(),
            phone: self.phone.clone(),
            email: self.email.clone(),
            insurance_member_id: self.insurance_member_id.clone(),
            chart_number: self.chart_number.clone(),
            status: self.status,
            recall_due: self.recall_due.clone(),
            ..Default::default()
        }
    }
}

/// One shard: the entries of the patients whose ids fall in it, ordered by id.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatientIndexShard {
    pub shard: u16,
    pub entries: Vec<IndexEntry>,
}

/// Why a shard is not accepted.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum IndexError {
    #[error("shard {0} does not exist")]
    NoSuchShard(u16),
    #[error("the shard is stored under another shard's record id")]
    Misplaced,
    #[error("patient {0} does not belong in this shard")]
    WrongShard(Uuid),
    #[error("entries are not in id order or repeat an id")]
    Order,
    #[error("patient {0} has version 0")]
    NoVersion(Uuid),
}

impl PatientIndexShard {
    pub fn new(shard: u16) -> PatientIndexShard {
        PatientIndexShard {
            shard,
            entries: Vec::new(),
        }
    }

    /// Checks the shard as read from record `record_id` of `clinic_id`: it sits at its own
    /// record id, and every entry belongs in it, once, in id order.
    pub fn check(&self, clinic_id: &Uuid, record_id: &Uuid) -> Result<(), IndexError> {
        if self.shard >= INDEX_SHARDS {
            return Err(IndexError::NoSuchShard(self.shard));
        }
        if shard_record_id(clinic_id, self.shard) != *record_id {
            return Err(IndexError::Misplaced);
        }
        for e in &self.entries {
            if shard_of(&e.id) != self.shard {
                return Err(IndexError::WrongShard(e.id));
            }
            if e.version == 0 {
                return Err(IndexError::NoVersion(e.id));
            }
        }
        if self.entries.windows(2).any(|w| w[0].id >= w[1].id) {
            return Err(IndexError::Order);
        }
        Ok(())
    }

    pub fn get(&self, id: &Uuid) -> Option<&IndexEntry> {
        self.entries
            .binary_search_by(|e| e.id.cmp(id))
            .ok()
            .map(|i| &self.entries[i])
    }

    /// Puts an entry in (replacing an older one); returns whether the shard changed. An entry
    /// older than the one held is ignored.
    pub fn upsert(&mut self, entry: IndexEntry) -> bool {
        debug_assert_eq!(shard_of(&entry.id), self.shard);
        match self.entries.binary_search_by(|e| e.id.cmp(&entry.id)) {
            Ok(i) if self.entries[i].version > entry.version || self.entries[i] == entry => false,
            Ok(i) => {
                self.entries[i] = entry;
                true
            }
            Err(i) => {
                self.entries.insert(i, entry);
                true
            }
        }
    }

    /// Takes a patient out; returns whether they were in.
    pub fn remove(&mut self, id: &Uuid) -> bool {
        match self.entries.binary_search_by(|e| e.id.cmp(id)) {
            Ok(i) => {
                self.entries.remove(i);
                true
            }
            Err(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn patient(name: &str) -> Patient {
        Patient {
            given_name: name.into(),
            family_name: "Doe".into(),
            date_of_birth: "1980-02-03".into(),
            phone: "555 0100".into(),
            chart_number: "A-7".into(),
            recall_due: Some("2027-01-01".into()),
            notes: "never in the index".into(),
            ..Default::default()
        }
    }

    fn id_in(shard: u16, n: u8) -> Uuid {
        let mut b = *Uuid::new_v4().as_bytes();
        b[0] = shard as u8;
        b[15] = n;
        Uuid::from_bytes(b)
    }

    #[test]
    fn shard_ids_are_stable_distinct_and_per_clinic() {
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let ids = shard_record_ids(&a);
        assert_eq!(ids.len(), INDEX_SHARDS as usize);
        let set: std::collections::BTreeSet<_> = ids.iter().collect();
        assert_eq!(set.len(), ids.len());
        assert_eq!(shard_record_id(&a, 7), ids[7]);
        assert_ne!(shard_record_id(&b, 7), ids[7]);
        assert_eq!(shard_number(&a, &ids[200]), Some(200));
        assert_eq!(shard_number(&b, &ids[200]), None);
        assert_eq!(shard_number(&a, &a), None);
        assert!(ids.iter().all(|id| id.get_version_num() == 4));
    }

    #[test]
    fn entries_carry_the_summary_and_nothing_else() {
        let id = id_in(3, 1);
        let p = patient("Jane");
        let e = IndexEntry::summarise(id, 4, &p);
        let back = e.to_patient();
        assert_eq!(back.given_name, "Jane");
        assert_eq!(back.chart_number, "A-7");
        assert_eq!(back.recall_due.as_deref(), Some("2027-01-01"));
        assert_eq!(back.notes, "");
        assert_eq!(
            back.search_key(),
            p.search_key(),
            "search sees the same text"
        );
        let json = serde_json::to_string(&e).unwrap();
        assert!(!json.contains("never in the index"));
        assert!(
            !json.contains("\"s\""),
            "active is the default and left out"
        );
        assert_eq!(serde_json::from_str::<IndexEntry>(&json).unwrap(), e);
    }

    #[test]
    fn upsert_keeps_order_and_the_newest_version() {
        let mut s = PatientIndexShard::new(9);
        let (a, b, c) = (id_in(9, 3), id_in(9, 1), id_in(9, 2));
        let clinic = Uuid::new_v4();
        for (id, v) in [(a, 2), (b, 1), (c, 1)] {
            assert!(s.upsert(IndexEntry::summarise(id, v, &patient("x"))));
        }
        assert!(s.check(&clinic, &shard_record_id(&clinic, 9)).is_ok());
        assert!(!s.upsert(IndexEntry::summarise(a, 1, &patient("old"))));
        assert!(!s.upsert(IndexEntry::summarise(a, 2, &patient("x"))));
        assert!(s.upsert(IndexEntry::summarise(a, 3, &patient("new"))));
        assert_eq!(s.get(&a).unwrap().given_name, "new");
        assert!(s.remove(&b));
        assert!(!s.remove(&b));
        assert_eq!(s.entries.len(), 2);
    }

    #[test]
    fn check_rejects_misplaced_and_malformed_shards() {
        let clinic = Uuid::new_v4();
        let mut s = PatientIndexShard::new(1);
        s.upsert(IndexEntry::summarise(id_in(1, 1), 1, &patient("a")));
        assert_eq!(
            s.check(&clinic, &shard_record_id(&clinic, 2)),
            Err(IndexError::Misplaced)
        );
        let mut wrong = s.clone();
        let stranger = id_in(5, 1);
        wrong
            .entries
            .push(IndexEntry::summarise(stranger, 1, &patient("b")));
        assert_eq!(
            wrong.check(&clinic, &shard_record_id(&clinic, 1)),
            Err(IndexError::WrongShard(stranger))
        );
        let mut twice = s.clone();
        twice.entries.push(twice.entries[0].clone());
        assert_eq!(
            twice.check(&clinic, &shard_record_id(&clinic, 1)),
            Err(IndexError::Order)
        );
        let mut v0 = s.clone();
        v0.entries[0].version = 0;
        assert!(matches!(
            v0.check(&clinic, &shard_record_id(&clinic, 1)),
            Err(IndexError::NoVersion(_))
        ));
        let far = PatientIndexShard::new(INDEX_SHARDS);
        assert_eq!(
            far.check(&clinic, &Uuid::nil()),
            Err(IndexError::NoSuchShard(INDEX_SHARDS))
        );
    }

    proptest! {
        #[test]
        fn any_sequence_of_upserts_and_removals_stays_valid(ops in proptest::collection::vec((0u8..16, 1u64..5, any::<bool>()), 0..60)) {
            let clinic = Uuid::new_v4();
            let mut s = PatientIndexShard::new(4);
            let mut model = std::collections::BTreeMap::new();
            for (n, v, keep) in ops {
                let mut bytes = [0u8; 16];
                (bytes[0], bytes[15]) = (4, n);
                let id = Uuid::from_bytes(bytes);
                if keep {
                    s.upsert(IndexEntry::summarise(id, v, &patient("p")));
                    let e = model.entry(id).or_insert(v);
                    *e = (*e).max(v);
                } else {
                    s.remove(&id);
                    model.remove(&id);
                }
            }
            prop_assert!(s.check(&clinic, &shard_record_id(&clinic, 4)).is_ok());
            let got: Vec<(Uuid, u64)> = s.entries.iter().map(|e| (e.id, e.version)).collect();
            let want: Vec<(Uuid, u64)> = model.into_iter().collect();
            prop_assert_eq!(got, want);
        }
    }
}

//! The client-side patient store of one clinic and its incremental sync.
//!
//! The server's change feed is read from the store's cursor onwards, so after the first sync only
//! what changed is fetched. Every envelope is verified and decrypted here; the highest version
//! seen of each record is kept, and a record whose version goes backwards or that fails to open
//! is flagged, never shown as valid.

use std::collections::BTreeMap;
use std::sync::Arc;

use leptos::prelude::*;
use optovault_shared::crypto::{open_record, ClinicKeyring, CryptoError};
use optovault_shared::domain::{Patient, RecordBody};
use optovault_shared::envelope::Purpose;
use optovault_shared::{Compartment, RecordEnvelope};
use uuid::Uuid;

use crate::api::{self, ApiError};
use crate::state::{Clinic, Unlocked};
use crate::util::sleep;

/// Changes asked for per request.
pub const PAGE_SIZE: usize = 500;

#[derive(Default)]
pub struct PatientStore {
    /// Where the next sync starts (`since`).
    pub cursor: u64,
    /// The clinic's latest sequence number at the last sync.
    pub head: u64,
    /// Record id -> (highest version seen, patient).
    pub patients: BTreeMap<Uuid, (u64, Patient)>,
    /// Record id -> why the record is not trusted (failed to open, or went backwards).
    pub errors: BTreeMap<Uuid, String>,
    /// `(cursor, head)` while a sync spans more than one page.
    pub progress: Option<(u64, u64)>,
    /// A sync is running (only one runs at a time per clinic).
    pub syncing: bool,
    /// At least one sync has completed.
    pub synced: bool,
}

/// What one change of the feed turned out to be.
pub enum Opened {
    Patient(Patient),
    /// Not a patient record (another kind of record, or the clinic's profile): ignored here.
    Skip,
    /// Could not be trusted, and why.
    Bad(String),
}

impl PatientStore {
    pub fn apply(&mut self, record_id: Uuid, version: u64, opened: Opened) {
        match opened {
            Opened::Skip => {}
            Opened::Bad(why) => {
                self.errors.insert(record_id, why);
            }
            Opened::Patient(p) => match self.patients.get(&record_id).map(|(v, _)| *v) {
                Some(known) if version < known => {
                    self.errors.insert(
                        record_id,
                        format!(
                            "The server sent version {version} after version {known} \
                             (an old version replayed)."
                        ),
                    );
                }
                Some(known) if version == known => {
                    self.errors.remove(&record_id);
                }
                _ => {
                    self.patients.insert(record_id, (version, p));
                    self.errors.remove(&record_id);
                }
            },
        }
    }

    /// Records a version this client has just written itself.
    pub fn saved(&mut self, record_id: Uuid, version: u64, patient: Patient) {
        self.apply(record_id, version, Opened::Patient(patient));
    }
}

fn describe(e: CryptoError) -> String {
    match e {
        CryptoError::UnknownAuthor(_) => "Written by an unverified author: not trusted.".into(),
        CryptoError::Signature => "The author's signature does not verify.".into(),
        CryptoError::UnknownKey(_) => "Sealed with a key this account does not hold.".into(),
        CryptoError::Envelope(_) => "The record is malformed.".into(),
        _ => "The record could not be decrypted: it was altered, moved or replayed.".into(),
    }
}

/// Verifies and decrypts one envelope of the change feed as a patient record.
pub fn open_change(
    clinic_id: &Uuid,
    me: &Unlocked,
    keyring: &ClinicKeyring,
    env: &RecordEnvelope,
) -> Opened {
    // A patient record is its own chart root in the demographics compartment; the clinic's
    // profile (record id = clinic id) is opened by the clinics page, not here.
    if env.compartment != Compartment::Demographics
        || env.chart_id != env.record_id
        || &env.record_id == clinic_id
    {
        return Opened::Skip;
    }
    match open_record(clinic_id, Purpose::Record, env, keyring, |a| {
        me.author_key(a)
    }) {
        Ok(plain) => match serde_json::from_slice::<RecordBody>(&plain) {
            Ok(RecordBody::Patient(p)) => Opened::Patient(p),
            Err(_) => Opened::Bad("The record's content is not a readable patient.".into()),
        },
        Err(e) => Opened::Bad(describe(e)),
    }
}

/// Brings the store up to date with the server: asks for changes since the store's cursor, page
/// after page while there are more. Only one sync of a clinic runs at a time; a second caller
/// waits for the first and then asks for anything newer.
pub async fn sync(
    me: Arc<Unlocked>,
    clinic: Arc<Clinic>,
    store: ArcRwSignal<PatientStore>,
) -> Result<(), ApiError> {
    while store.with_untracked(|s| s.syncing) {
        sleep(40).await;
    }
    store.update(|s| s.syncing = true);
    let result = sync_pages(&me, &clinic, &store).await;
    store.update(|s| {
        s.syncing = false;
        s.progress = None;
        if result.is_ok() {
            s.synced = true;
        }
    });
    result
}

async fn sync_pages(
    me: &Unlocked,
    clinic: &Clinic,
    store: &ArcRwSignal<PatientStore>,
) -> Result<(), ApiError> {
    let Some(keyring) = clinic.keyring.as_ref() else {
        return Err(ApiError::local(
            "no_keys",
            "This clinic's keys could not be opened with your account.",
        ));
    };
    loop {
        let since = store.with_untracked(|s| s.cursor);
        let page = api::changes(clinic.id, since, PAGE_SIZE).await?;
        let opened: Vec<(Uuid, u64, Opened)> = page
            .changes
            .iter()
            .map(|c| {
                let env = &c.envelope;
                (
                    env.record_id,
                    env.version,
                    open_change(&clinic.id, me, keyring, env),
                )
            })
            .collect();
        // A cursor that does not move forward ends the loop (never ask for the same page twice).
        let more = page.more && page.cursor > since;
        store.update(|s| {
            for (id, version, o) in opened {
                s.apply(id, version, o);
            }
            s.cursor = s.cursor.max(page.cursor);
            s.head = page.head.max(s.cursor);
            s.progress = more.then_some((s.cursor, s.head));
        });
        if !more {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use optovault_shared::crypto::{seal_record, ClinicKeyring, RecordSlot, UserKeys};

    fn patient(name: &str) -> Patient {
        Patient {
            given_name: name.into(),
            family_name: "Doe".into(),
            date_of_birth: "1980-01-01".into(),
            ..Default::default()
        }
    }

    #[test]
    fn keeps_the_highest_version_and_flags_rollbacks() {
        let mut s = PatientStore::default();
        let id = Uuid::new_v4();
        s.apply(id, 2, Opened::Patient(patient("v2")));
        s.apply(id, 1, Opened::Patient(patient("v1")));
        assert_eq!(s.patients[&id].0, 2);
        assert_eq!(s.patients[&id].1.given_name, "v2");
        assert!(
            s.errors.contains_key(&id),
            "an older version after a newer one is flagged"
        );
        s.apply(id, 3, Opened::Patient(patient("v3")));
        assert_eq!(s.patients[&id].1.given_name, "v3");
        assert!(!s.errors.contains_key(&id));
        s.apply(id, 4, Opened::Bad("tampered".into()));
        assert_eq!(
            s.patients[&id].0, 3,
            "a record that fails to open never replaces a good one"
        );
        assert!(s.errors.contains_key(&id));
        s.apply(Uuid::new_v4(), 1, Opened::Skip);
        assert_eq!(s.patients.len(), 1);
        assert_eq!(s.errors.len(), 1);
    }

    #[test]
    fn opens_own_records_and_rejects_tampered_or_foreign_ones() {
        let me = Unlocked::new(Uuid::new_v4(), "jane".into(), UserKeys::generate());
        let clinic_id = Uuid::new_v4();
        let keyring = ClinicKeyring::generate();
        let id = Uuid::new_v4();
        let body = serde_json::to_vec(&RecordBody::Patient(patient("Jane"))).unwrap();
        let slot = RecordSlot {
            clinic_id,
            chart_id: id,
            record_id: id,
            version: 1,
            purpose: Purpose::Record,
        };
        let env = seal_record(
            slot,
            Compartment::Demographics,
            &keyring,
            &me.account_id,
            &me.keys,
            &body,
        )
        .unwrap();
        assert!(
            matches!(open_change(&clinic_id, &me, &keyring, &env), Opened::Patient(p) if p.given_name == "Jane")
        );

        let mut tampered = env.clone();
        tampered.ciphertext.0[0] ^= 1;
        assert!(matches!(
            open_change(&clinic_id, &me, &keyring, &tampered),
            Opened::Bad(_)
        ));
        let mut replayed = env.clone();
        replayed.version = 2;
        assert!(matches!(
            open_change(&clinic_id, &me, &keyring, &replayed),
            Opened::Bad(_)
        ));
        assert!(matches!(
            open_change(&Uuid::new_v4(), &me, &keyring, &env),
            Opened::Bad(_)
        ));

        let stranger = Unlocked::new(Uuid::new_v4(), "mallory".into(), UserKeys::generate());
        let foreign = seal_record(
            slot,
            Compartment::Demographics,
            &keyring,
            &stranger.account_id,
            &stranger.keys,
            &body,
        )
        .unwrap();
        assert!(
            matches!(open_change(&clinic_id, &me, &keyring, &foreign), Opened::Bad(why) if why.contains("unverified")),
            "records by authors outside the roster are not trusted"
        );
    }
}

//! App-wide state, provided as context by `App`: the unlocked account (private keys), the clinics
//! with their keyrings and the per-clinic patient stores. All of it lives in memory only and is
//! dropped on logout or reload; nothing here is ever written to browser storage.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use leptos::prelude::*;
use optovault_shared::crypto::{ClinicKeyring, UserKeys};
use optovault_shared::wire::{PublicKeys, Role};
use uuid::Uuid;

use crate::store::PatientStore;

/// A logged-in account whose private keys are open. Dropping the last `Arc` zeroizes the keys.
pub struct Unlocked {
    pub account_id: Uuid,
    pub username: String,
    pub keys: UserKeys,
    pub public_keys: PublicKeys,
}

impl Unlocked {
    pub fn new(account_id: Uuid, username: String, keys: UserKeys) -> Unlocked {
        let public_keys = keys.public_keys();
        Unlocked {
            account_id,
            username,
            keys,
            public_keys,
        }
    }

    /// The Ed25519 key of an author whose records this client trusts. Until the team roster
    /// exists, the only member of a clinic is its owner: this account itself. Anyone else is an
    /// unknown author, and their records are shown as unverified.
    pub fn author_key(&self, author: &Uuid) -> Option<Vec<u8>> {
        (author == &self.account_id).then(|| self.public_keys.ed25519.0.clone())
    }
}

/// A clinic as this member holds it: the keys unwrapped, the profile opened and verified.
pub struct Clinic {
    pub id: Uuid,
    pub role: Role,
    /// The verified clinic name, or why it is not trusted.
    pub name: Result<String, String>,
    /// The clinic's keys, when they could be unwrapped. Wiped when dropped.
    pub keyring: Option<ClinicKeyring>,
}

#[derive(Clone, Copy)]
pub struct AppState {
    pub session: RwSignal<Option<Arc<Unlocked>>>,
    pub clinics: RwSignal<BTreeMap<Uuid, Arc<Clinic>>>,
    stores: StoredValue<HashMap<Uuid, ArcRwSignal<PatientStore>>>,
    /// A one-off message for the next page (e.g. "Your session has ended").
    pub notice: RwSignal<Option<String>>,
}

impl AppState {
    pub fn new() -> AppState {
        AppState {
            session: RwSignal::new(None),
            clinics: RwSignal::new(BTreeMap::new()),
            stores: StoredValue::new(HashMap::new()),
            notice: RwSignal::new(None),
        }
    }

    /// The unlocked account, if any (not tracked: pages read it once when they are built).
    pub fn me(&self) -> Option<Arc<Unlocked>> {
        self.session.get_untracked()
    }

    pub fn clinic(&self, id: &Uuid) -> Option<Arc<Clinic>> {
        self.clinics.with_untracked(|m| m.get(id).cloned())
    }

    /// The patient store of a clinic, created empty (cursor 0) the first time.
    pub fn store(&self, clinic_id: Uuid) -> ArcRwSignal<PatientStore> {
        self.stores.update_value(|m| {
            m.entry(clinic_id).or_default();
        });
        self.stores
            .with_value(|m| m.get(&clinic_id).cloned())
            .expect("inserted above")
    }

    /// Forgets everything: private keys, clinic keys, decrypted patients.
    pub fn lock(&self) {
        self.session.set(None);
        self.clinics.set(BTreeMap::new());
        self.stores.update_value(|m| m.clear());
    }

    /// Called when the server says the session is gone: lock and explain on the login page.
    pub fn session_ended(&self) {
        self.lock();
        self.notice
            .set(Some("Your session has ended. Please log in again.".into()));
    }
}

impl Default for AppState {
    fn default() -> Self {
        Self::new()
    }
}

pub fn use_app() -> AppState {
    expect_context::<AppState>()
}

//! App-wide state, provided as context by `App`: the unlocked account (private keys), the clinics
//! with their keyrings and verified rosters, and the per-clinic record stores. All of it lives in
//! memory only and is dropped on logout or reload; nothing here is ever written to browser storage.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use leptos::prelude::*;
use optovault_shared::crypto::{ClinicKeyring, UserKeys};
use optovault_shared::roster::Roster;
use optovault_shared::wire::{PublicKeys, Role};
use optovault_shared::Compartment;
use uuid::Uuid;

use crate::store::RecordStore;

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
}

/// Who signed a record, as the clinic's verified roster knows them.
#[derive(Clone, Debug, PartialEq)]
pub enum Author {
    Member {
        username: String,
        key: Vec<u8>,
    },
    /// Removed from the clinic since; what they wrote before stays verifiable.
    Former {
        username: String,
        key: Vec<u8>,
    },
}

impl Author {
    pub fn key(&self) -> &[u8] {
        match self {
            Author::Member { key, .. } | Author::Former { key, .. } => key,
        }
    }
    pub fn username(&self) -> &str {
        match self {
            Author::Member { username, .. } | Author::Former { username, .. } => username,
        }
    }
    pub fn is_former(&self) -> bool {
        matches!(self, Author::Former { .. })
    }
}

/// A clinic as this member holds it: the keys unwrapped, the roster and profile verified.
pub struct Clinic {
    pub id: Uuid,
    pub role: Role,
    /// The verified clinic name, or why the clinic is not trusted.
    pub name: Result<String, String>,
    /// The clinic's keys, when they could be unwrapped. Wiped when dropped.
    pub keyring: Option<ClinicKeyring>,
    /// The roster chain, verified against my pinned anchor; `None` when it did not check out
    /// (the reason is in `name`).
    pub roster: Option<Roster>,
}

impl Clinic {
    /// The author of a record: a current member, or a removed one.
    pub fn author(&self, id: &Uuid) -> Option<Author> {
        let roster = self.roster.as_ref()?;
        if let Some(m) = roster.members.get(id) {
            return Some(Author::Member {
                username: m.username.clone(),
                key: m.public_keys.ed25519.0.clone(),
            });
        }
        roster.removed.get(id).map(|(m, _)| Author::Former {
            username: m.username.clone(),
            key: m.public_keys.ed25519.0.clone(),
        })
    }

    /// The Ed25519 key this client trusts for records by `id` (for `open_record`).
    pub fn author_key(&self, id: &Uuid) -> Option<Vec<u8>> {
        self.author(id).map(|a| a.key().to_vec())
    }

    /// The keyring and roster, or why this clinic cannot be used.
    pub fn trusted(&self) -> Result<(&ClinicKeyring, &Roster), String> {
        match (&self.name, &self.keyring, &self.roster) {
            (Err(why), _, _) => Err(why.clone()),
            (Ok(_), Some(k), Some(r)) => Ok((k, r)),
            _ => Err("This clinic's keys could not be opened with your account.".into()),
        }
    }

    /// Whether my keyring holds a key of this compartment (what my role is granted).
    pub fn holds(&self, c: Compartment) -> bool {
        self.keyring
            .as_ref()
            .is_some_and(|k| k.current(c).is_some())
    }

    /// Whether the verified roster lists me as an owner.
    pub fn is_owner(&self, me: &Uuid) -> bool {
        self.roster
            .as_ref()
            .and_then(|r| r.role_of(me))
            .is_some_and(|r| r == Role::Owner)
    }
}

#[derive(Clone, Copy)]
pub struct AppState {
    pub session: RwSignal<Option<Arc<Unlocked>>>,
    pub clinics: RwSignal<BTreeMap<Uuid, Arc<Clinic>>>,
    stores: StoredValue<HashMap<Uuid, ArcRwSignal<RecordStore>>>,
    /// The highest roster seq seen per clinic in this session: a lower one later is a rollback.
    roster_heads: StoredValue<HashMap<Uuid, u64>>,
    /// Each clinic's trusted audit key (its secret only for owners), for this session.
    audit_keys: StoredValue<HashMap<Uuid, Arc<crate::audit::TrustedAuditKey>>>,
    /// Clinics whose audit log an owner's visit has already checkpointed this session.
    audit_visits: StoredValue<std::collections::HashSet<Uuid>>,
    /// The furthest point of each clinic's audit chain this session has verified: a later check
    /// must pass through it (a log cut back, with its checkpoints, is caught).
    audit_witness: StoredValue<HashMap<Uuid, optovault_shared::audit::ChainPoint>>,
    /// A one-off message for the next page (e.g. "Your session has ended").
    pub notice: RwSignal<Option<String>>,
    /// Where to go after logging in or registering (an invitation link, with its fragment).
    pub return_to: StoredValue<Option<String>>,
    /// Set when the idle lock dropped the keys: who was logged in, and where.
    pub locked: RwSignal<Option<IdleLocked>>,
    /// The server's message when a clinic's policy keeps this account out (no second factor, a
    /// password to change): shown under the header with a link to the account page.
    pub policy_block: RwSignal<Option<String>>,
    /// Set right after registration: the new account has no recovery kit yet, and the header asks
    /// for one until it is made (or the session ends).
    pub recovery_reminder: RwSignal<bool>,
}

/// What the lock screen needs after an idle lock: no key, only who to log in again and where to
/// go back to.
#[derive(Clone, Debug, PartialEq)]
pub struct IdleLocked {
    pub username: String,
    /// The page the user was on (path, query and fragment).
    pub return_to: String,
}

impl AppState {
    pub fn new() -> AppState {
        AppState {
            session: RwSignal::new(None),
            clinics: RwSignal::new(BTreeMap::new()),
            stores: StoredValue::new(HashMap::new()),
            roster_heads: StoredValue::new(HashMap::new()),
            audit_keys: StoredValue::new(HashMap::new()),
            audit_visits: StoredValue::new(Default::default()),
            audit_witness: StoredValue::new(HashMap::new()),
            notice: RwSignal::new(None),
            return_to: StoredValue::new(None),
            locked: RwSignal::new(None),
            policy_block: RwSignal::new(None),
            recovery_reminder: RwSignal::new(false),
        }
    }

    /// The unlocked account, if any (not tracked: pages read it once when they are built).
    pub fn me(&self) -> Option<Arc<Unlocked>> {
        self.session.get_untracked()
    }

    pub fn clinic(&self, id: &Uuid) -> Option<Arc<Clinic>> {
        self.clinics.with_untracked(|m| m.get(id).cloned())
    }

    /// The clinic, tracked: a view using it re-renders when the clinic is refreshed.
    pub fn clinic_tracked(&self, id: &Uuid) -> Option<Arc<Clinic>> {
        self.clinics.with(|m| m.get(id).cloned())
    }

    /// Whether `me` is still the unlocked account: a task that started before a logout or an
    /// idle lock must not put keys back into the app state when it finishes.
    pub fn is_current(&self, me: &Unlocked) -> bool {
        self.session.with_untracked(|s| {
            s.as_ref()
                .is_some_and(|u| std::ptr::eq(Arc::as_ptr(u), me as *const Unlocked))
        })
    }

    /// Keeps a clinic opened by `me` (ignored once `me` has logged out or been locked).
    pub fn put_clinic(&self, me: &Unlocked, clinic: Arc<Clinic>) {
        if !self.is_current(me) {
            return;
        }
        self.clinics.update(|m| {
            m.insert(clinic.id, clinic);
        });
    }

    /// The record store of a clinic, created empty (cursor 0) the first time.
    pub fn store(&self, clinic_id: Uuid) -> ArcRwSignal<RecordStore> {
        self.stores.update_value(|m| {
            m.entry(clinic_id).or_default();
        });
        self.stores
            .with_value(|m| m.get(&clinic_id).cloned())
            .expect("inserted above")
    }

    pub fn known_roster_head(&self, clinic_id: &Uuid) -> Option<u64> {
        self.roster_heads.with_value(|m| m.get(clinic_id).copied())
    }

    pub fn saw_roster_head(&self, clinic_id: Uuid, seq: u64) {
        self.roster_heads.update_value(|m| {
            let e = m.entry(clinic_id).or_insert(seq);
            *e = (*e).max(seq);
        });
    }

    pub fn audit_key(&self, clinic_id: &Uuid) -> Option<Arc<crate::audit::TrustedAuditKey>> {
        self.audit_keys.with_value(|m| m.get(clinic_id).cloned())
    }

    pub fn keep_audit_key(&self, clinic_id: Uuid, key: Arc<crate::audit::TrustedAuditKey>) {
        self.audit_keys.update_value(|m| {
            m.insert(clinic_id, key);
        });
    }

    pub fn audit_witness(&self, clinic_id: &Uuid) -> Option<optovault_shared::audit::ChainPoint> {
        self.audit_witness.with_value(|m| m.get(clinic_id).copied())
    }

    /// Remembers a verified point of the clinic's chain (the furthest one wins).
    pub fn saw_audit_point(&self, clinic_id: Uuid, point: optovault_shared::audit::ChainPoint) {
        self.audit_witness.update_value(|m| {
            let e = m.entry(clinic_id).or_insert(point);
            if point.seq > e.seq {
                *e = point;
            }
        });
    }

    /// True the first time in this session an owner's visit to `clinic_id` asks.
    pub fn first_audit_visit(&self, clinic_id: Uuid) -> bool {
        self.audit_visits
            .try_update_value(|m| m.insert(clinic_id))
            .unwrap_or(false)
    }

    /// Forgets everything: private keys, clinic keys, decrypted records.
    pub fn lock(&self) {
        self.policy_block.set(None);
        self.recovery_reminder.set(false);
        self.session.set(None);
        self.clinics.set(BTreeMap::new());
        self.stores.update_value(|m| m.clear());
        self.roster_heads.update_value(|m| m.clear());
        self.audit_keys.update_value(|m| m.clear());
        self.audit_visits.update_value(|m| m.clear());
        self.audit_witness.update_value(|m| m.clear());
    }

    /// The idle lock: the same as logout's local part (every key and decrypted record dropped),
    /// without telling the server; the lock screen asks for the password again.
    pub fn idle_lock(&self, return_to: String) {
        let Some(me) = self.session.get_untracked() else {
            return;
        };
        self.locked.set(Some(IdleLocked {
            username: me.username.clone(),
            return_to,
        }));
        drop(me);
        self.lock();
    }

    /// Called when the server says the session is gone: lock and explain on the login page.
    pub fn session_ended(&self) {
        self.locked.set(None);
        self.lock();
        self.notice
            .set(Some("Your session has ended. Please log in again.".into()));
    }

    /// Where to go after logging in: a remembered page (taken), or the clinics.
    pub fn take_return_to(&self) -> String {
        self.return_to
            .try_update_value(|r| r.take())
            .flatten()
            .unwrap_or_else(|| "/clinics".into())
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

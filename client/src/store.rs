//! The client-side record store of one clinic and its incremental sync.
//!
//! The server's change feed is read from the store's cursor onwards, so after the first sync only
//! what changed is fetched. Every envelope is verified against the clinic's roster and decrypted
//! here; patients are kept by id, every other record (exams, prescriptions, appointments,
//! invoices, payments, notes, attachments) under its chart. The highest version seen
//! of each record is kept, and a record whose version goes backwards or that fails to open is
//! flagged, never shown as valid. A record of a kind or compartment this client does not handle
//! (or whose compartment my role is not granted) is ignored.
//!
//! Restricted charts: each sync also asks which charts are restricted. The server never sends the
//! records of a restricted chart to anyone off its care team, so the store drops what it holds of
//! such a chart (it was on the team before, or read the chart before it was restricted) and only
//! counts them; when I am put back on a care team the store syncs again from the start.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use leptos::prelude::*;
use optovault_shared::crypto::{open_record, CryptoError};
use optovault_shared::domain::{Patient, RecordBody, SearchKey};
use optovault_shared::envelope::Purpose;
use optovault_shared::limits;
use optovault_shared::patient_index::{shard_record_ids, PatientIndexShard};
use optovault_shared::wire::{ChangeHeader, RestrictedChart, StoredRecord};
use optovault_shared::{Compartment, RecordEnvelope};
use uuid::Uuid;

use crate::api::{self, ApiError};
use crate::clinic::refresh_clinic;
use crate::state::{AppState, Author, Clinic, Unlocked};
use crate::util::sleep;

/// A record of a chart other than the patient record itself, as this client holds it.
#[derive(Clone, Debug, PartialEq)]
pub struct Item {
    pub id: Uuid,
    pub version: u64,
    /// Position in the clinic's change feed (lists are shown in this order).
    pub seq: u64,
    pub body: RecordBody,
    /// Username of whoever wrote this version.
    pub author: String,
    /// Written by someone removed from the clinic since.
    pub former: bool,
}

/// A clinical note as shown on its patient's page.
#[derive(Clone, Debug, PartialEq)]
pub struct Note {
    pub id: Uuid,
    pub version: u64,
    /// Position in the clinic's change feed: notes are listed in this order.
    pub seq: u64,
    pub text: String,
    pub author: String,
    /// Written by someone removed from the clinic since.
    pub former: bool,
}

#[derive(Default)]
pub struct RecordStore {
    /// Where the next sync starts (`since`).
    pub cursor: u64,
    /// The clinic's latest sequence number at the last sync.
    pub head: u64,
    /// Record id -> (highest version seen, patient).
    pub patients: BTreeMap<Uuid, (u64, Patient)>,
    /// Record id -> the patient's search text, prepared once per version.
    pub search: BTreeMap<Uuid, SearchKey>,
    /// Chart (patient record id) -> record id -> every other record of the chart.
    pub items: BTreeMap<Uuid, BTreeMap<Uuid, Item>>,
    /// Highest trusted version of every record kept above.
    versions: BTreeMap<Uuid, u64>,
    /// Record id -> username of the former member who wrote the version shown.
    pub former: BTreeMap<Uuid, String>,
    /// Record id -> why the record is not trusted (failed to open, or went backwards).
    pub errors: BTreeMap<Uuid, String>,
    /// `(cursor, head)` while a sync spans more than one page.
    pub progress: Option<(u64, u64)>,
    /// A sync is running (only one runs at a time per clinic).
    pub syncing: bool,
    /// At least one sync has completed.
    pub synced: bool,
    /// The clinic's restricted charts, as of the last sync.
    pub charts: BTreeMap<Uuid, RestrictedChart>,
    /// Chart -> every record of it the feed has sent (whatever its kind), so a chart can be
    /// re-sealed whole and dropped whole.
    chart_records: BTreeMap<Uuid, BTreeSet<Uuid>>,
    /// Charts whose records were dropped because I am not on their care team.
    purged: BTreeSet<Uuid>,
    /// The patient index as last read: shard number -> (version, shard).
    pub shards: BTreeMap<u16, (u64, PatientIndexShard)>,
    /// Record id -> shard number, for this clinic's shard record ids.
    shard_ids: BTreeMap<Uuid, u16>,
    /// The index has been read at least once.
    pub index_loaded: bool,
    /// Patients shown from their index entry only (their record is fetched with their chart).
    pub summaries: BTreeSet<Uuid>,
    /// Chart -> record -> version the feed announced: records not fetched yet, because they are
    /// clinical or prescriptions (needed only when the chart is opened) or a patient the index
    /// already covers at that version.
    pending: BTreeMap<Uuid, BTreeMap<Uuid, u64>>,
    /// Charts whose every record is fetched (opened in this session): their changes are fetched
    /// as they come.
    loaded_charts: BTreeSet<Uuid>,
    /// Chart -> deleted records (their latest version is a tombstone), restorable until the
    /// clinic's trash period ends.
    pub trash: BTreeMap<Uuid, BTreeMap<Uuid, Item>>,
}

/// What to do about one change the feed announces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plan {
    /// Fetch and open it now.
    Fetch,
    /// Remember it; fetch it when its chart is opened.
    Defer,
    /// Nothing to do (not mine to open, or already held at that version).
    Skip,
}

/// What one change of the feed turned out to be.
#[derive(Debug)]
pub enum Opened {
    Patient(Patient),
    /// A shard of the clinic's patient index.
    Index(PatientIndexShard),
    /// Any other record of a chart.
    Item {
        chart_id: Uuid,
        body: RecordBody,
    },
    /// A tombstone: the record was deleted; `body` is the content it deleted (for the trash).
    Deleted {
        chart_id: Uuid,
        body: RecordBody,
    },
    /// Not a record this client shows (the clinic's profile, an unknown kind, a compartment my
    /// role is not granted): ignored.
    Skip,
    /// Could not be trusted, and why.
    Bad(String),
}

/// A chart's records, in the order of the clinic's change feed.
fn in_feed_order(records: Option<&BTreeMap<Uuid, Item>>) -> Vec<Item> {
    let mut items: Vec<Item> = records
        .map(|m| m.values().cloned().collect())
        .unwrap_or_default();
    items.sort_by_key(|n| (n.seq, n.id));
    items
}

/// One change of the feed, opened.
pub struct Change {
    pub record_id: Uuid,
    pub version: u64,
    pub seq: u64,
    pub author: Option<Author>,
    pub opened: Opened,
}

impl RecordStore {
    pub fn apply(&mut self, c: Change) {
        let id = c.record_id;
        let opened = match c.opened {
            Opened::Skip => return,
            Opened::Bad(why) => {
                self.errors.insert(id, why);
                return;
            }
            o => o,
        };
        // A patient shown from the index gets its full record at the same version.
        let fills_summary = self.summaries.contains(&id) && matches!(opened, Opened::Patient(_));
        match self.versions.get(&id).copied() {
            Some(known) if c.version < known => {
                self.errors.insert(
                    id,
                    format!(
                        "The server sent version {} after version {known} \
                         (an old version replayed).",
                        c.version
                    ),
                );
                return;
            }
            Some(known) if c.version == known && !fills_summary => {
                self.errors.remove(&id);
                if let Opened::Item { chart_id, .. } = opened {
                    // Our own write seen again: take its place in the feed.
                    if let Some(n) = self.items.get_mut(&chart_id).and_then(|m| m.get_mut(&id)) {
                        n.seq = c.seq;
                    }
                }
                return;
            }
            _ => {}
        }
        self.versions.insert(id, c.version);
        self.errors.remove(&id);
        match c.author.as_ref().filter(|a| a.is_former()) {
            Some(a) => self.former.insert(id, a.username().to_string()),
            None => self.former.remove(&id),
        };
        let (author, former) = c
            .author
            .as_ref()
            .map(|a| (a.username().to_string(), a.is_former()))
            .unwrap_or_default();
        match &opened {
            Opened::Patient(_) => {
                self.trash.get_mut(&id).map(|t| t.remove(&id));
            }
            Opened::Item { chart_id, .. } => {
                self.trash.get_mut(chart_id).map(|t| t.remove(&id));
            }
            _ => {}
        }
        match opened {
            Opened::Deleted { chart_id, body } => {
                if chart_id == id {
                    self.patients.remove(&id);
                    self.search.remove(&id);
                    self.summaries.remove(&id);
                } else if let Some(m) = self.items.get_mut(&chart_id) {
                    m.remove(&id);
                }
                self.trash.entry(chart_id).or_default().insert(
                    id,
                    Item {
                        id,
                        version: c.version,
                        seq: c.seq,
                        body,
                        author,
                        former,
                    },
                );
            }
            Opened::Patient(p) => {
                self.summaries.remove(&id);
                self.search.insert(id, p.search_key());
                self.patients.insert(id, (c.version, p));
            }
            Opened::Index(shard) => self.apply_shard(c.version, shard),
            Opened::Item { chart_id, body } => {
                self.items.entry(chart_id).or_default().insert(
                    id,
                    Item {
                        id,
                        version: c.version,
                        seq: c.seq,
                        body,
                        author,
                        former,
                    },
                );
            }
            Opened::Skip | Opened::Bad(_) => unreachable!("handled above"),
        }
    }

    /// Takes a verified shard of the patient index: each patient not held at that version or
    /// newer is shown from its entry until its chart is opened. Patients of restricted charts
    /// I am not on are never shown (a correct index does not hold them anyway).
    fn apply_shard(&mut self, version: u64, shard: PatientIndexShard) {
        for e in &shard.entries {
            if self.charts.get(&e.id).is_some_and(|c| !c.in_care_team) {
                continue;
            }
            if self.versions.get(&e.id).is_some_and(|v| *v >= e.version) {
                continue;
            }
            let p = e.to_patient();
            self.versions.insert(e.id, e.version);
            self.search.insert(e.id, p.search_key());
            self.patients.insert(e.id, (e.version, p));
            self.summaries.insert(e.id);
            self.chart_records.entry(e.id).or_default().insert(e.id);
        }
        self.shards.insert(shard.shard, (version, shard));
    }

    /// Records a shard version this client has just written itself.
    pub fn saved_shard(&mut self, record_id: Uuid, version: u64, shard: PatientIndexShard) {
        self.versions.insert(record_id, version);
        self.shards.insert(shard.shard, (version, shard));
    }

    /// The shard number of a record id of this clinic, if it is an index shard.
    pub fn shard_of_record(&mut self, clinic_id: &Uuid, record_id: &Uuid) -> Option<u16> {
        if self.shard_ids.is_empty() {
            self.shard_ids = shard_record_ids(clinic_id)
                .into_iter()
                .zip(0u16..)
                .collect();
        }
        self.shard_ids.get(record_id).copied()
    }

    /// Whether every record of a chart has been fetched.
    pub fn chart_loaded(&self, chart_id: &Uuid) -> bool {
        self.loaded_charts.contains(chart_id)
    }

    /// Decides what to do about a change the feed announced; `holds` says whether my keys open
    /// its compartment.
    pub fn plan(&mut self, clinic_id: &Uuid, h: &ChangeHeader, holds: bool) -> Plan {
        if h.record_id == *clinic_id || !holds {
            return Plan::Skip;
        }
        if h.chart_id == *clinic_id {
            let newer = self
                .versions
                .get(&h.record_id)
                .is_none_or(|v| *v < h.version);
            return match self.shard_of_record(clinic_id, &h.record_id) {
                Some(_) if newer => Plan::Fetch,
                _ => Plan::Skip,
            };
        }
        self.filed(h.chart_id, h.record_id);
        let known = self.versions.get(&h.record_id).copied();
        let root = h.chart_id == h.record_id;
        let summary = root && self.summaries.contains(&h.record_id);
        if known.is_some_and(|v| v >= h.version) && !summary {
            return Plan::Skip;
        }
        let deferrable = if root {
            summary && known == Some(h.version)
        } else {
            matches!(
                h.compartment,
                Compartment::Clinical | Compartment::Prescriptions
            )
        };
        if deferrable && !self.loaded_charts.contains(&h.chart_id) {
            self.pending
                .entry(h.chart_id)
                .or_default()
                .insert(h.record_id, h.version);
            Plan::Defer
        } else {
            Plan::Fetch
        }
    }

    /// What to fetch to open a chart: its deferred records and, if it is shown from the index,
    /// its patient record, each with the version announced.
    pub fn chart_to_fetch(&self, chart_id: &Uuid) -> Vec<(Uuid, u64)> {
        let mut out: Vec<(Uuid, u64)> = self
            .pending
            .get(chart_id)
            .map(|m| m.iter().map(|(id, v)| (*id, *v)).collect())
            .unwrap_or_default();
        if self.summaries.contains(chart_id) && !out.iter().any(|(id, _)| id == chart_id) {
            out.push((*chart_id, self.versions.get(chart_id).copied().unwrap_or(1)));
        }
        out
    }

    /// Marks a chart as fetched whole.
    pub fn loaded(&mut self, chart_id: Uuid) {
        self.pending.remove(&chart_id);
        self.loaded_charts.insert(chart_id);
    }

    /// Undoes [`RecordStore::loaded`] after a failed fetch: the chart's records not yet held at
    /// the version announced are deferred again.
    pub fn unload(&mut self, chart_id: Uuid, wanted: &[(Uuid, u64)]) {
        self.loaded_charts.remove(&chart_id);
        for (id, v) in wanted {
            if self.versions.get(id).is_none_or(|have| have < v) || self.summaries.contains(id) {
                self.pending.entry(chart_id).or_default().insert(*id, *v);
            }
        }
    }

    /// Flags a record the server announced at `announced` but sent at an older version.
    pub fn check_announced(&mut self, record_id: Uuid, announced: u64) {
        if let Some(v) = self.versions.get(&record_id).copied() {
            if v < announced && !self.errors.contains_key(&record_id) {
                self.errors.insert(
                    record_id,
                    format!(
                        "The server announced version {announced} but sent version {v} \
                         (an old version replayed)."
                    ),
                );
            }
        }
    }

    /// Notes that `record_id` belongs to `chart_id` (from the record's header).
    pub fn filed(&mut self, chart_id: Uuid, record_id: Uuid) {
        self.chart_records
            .entry(chart_id)
            .or_default()
            .insert(record_id);
    }

    /// Every record of a chart the feed has sent me: its patient record, its other records, and
    /// any record of a kind this client does not show.
    pub fn records_of_chart(&self, chart_id: &Uuid) -> BTreeSet<Uuid> {
        let mut ids = self
            .chart_records
            .get(chart_id)
            .cloned()
            .unwrap_or_default();
        if self.patients.contains_key(chart_id) {
            ids.insert(*chart_id);
        }
        if let Some(items) = self.items.get(chart_id) {
            ids.extend(items.keys().copied());
        }
        ids
    }

    /// The chart's restriction, if it is restricted.
    pub fn restriction(&self, chart_id: &Uuid) -> Option<&RestrictedChart> {
        self.charts.get(chart_id)
    }

    /// How many restricted charts I am not on (their names are never sent to me).
    pub fn hidden_charts(&self) -> usize {
        self.charts.values().filter(|c| !c.in_care_team).count()
    }

    /// Forgets an erased chart altogether (its records, its trash, its restriction).
    pub fn erased(&mut self, chart_id: Uuid) {
        self.purge(chart_id);
        self.trash.remove(&chart_id);
        self.charts.remove(&chart_id);
    }

    /// Drops everything held of a chart (its patient and every other record of it).
    fn purge(&mut self, chart_id: Uuid) {
        for id in self.records_of_chart(&chart_id) {
            self.patients.remove(&id);
            self.search.remove(&id);
            self.versions.remove(&id);
            self.errors.remove(&id);
            self.former.remove(&id);
        }
        self.items.remove(&chart_id);
        self.chart_records.remove(&chart_id);
        self.summaries.remove(&chart_id);
        self.pending.remove(&chart_id);
        self.loaded_charts.remove(&chart_id);
    }

    /// Takes the clinic's restricted charts: drops the charts I am not on; returns whether the
    /// feed must be read again from the start (I was put back on a chart I had dropped).
    pub fn set_charts(&mut self, charts: Vec<RestrictedChart>) -> bool {
        let mut again = false;
        for c in &charts {
            if c.in_care_team {
                again |= self.purged.remove(&c.chart_id);
            } else {
                self.purge(c.chart_id);
                self.purged.insert(c.chart_id);
            }
        }
        self.charts = charts.into_iter().map(|c| (c.chart_id, c)).collect();
        if again {
            self.cursor = 0;
            self.index_loaded = false;
        }
        again
    }

    /// Records a patient version this client has just written itself.
    pub fn saved_patient(
        &mut self,
        record_id: Uuid,
        version: u64,
        seq: u64,
        patient: Patient,
        me: &Unlocked,
    ) {
        self.filed(record_id, record_id);
        self.apply(Change {
            record_id,
            version,
            seq,
            author: Some(me_as_author(me)),
            opened: Opened::Patient(patient),
        });
    }

    /// Records a tombstone this client has just written itself.
    pub fn deleted_item(
        &mut self,
        chart_id: Uuid,
        record_id: Uuid,
        version: u64,
        seq: u64,
        body: RecordBody,
        me: &Unlocked,
    ) {
        self.apply(Change {
            record_id,
            version,
            seq,
            author: Some(me_as_author(me)),
            opened: Opened::Deleted { chart_id, body },
        });
    }

    /// The deleted records of a chart, most recently deleted first.
    pub fn trash_of(&self, chart_id: &Uuid) -> Vec<Item> {
        let mut items = in_feed_order(self.trash.get(chart_id));
        items.reverse();
        items
    }

    /// Records a version of a chart record this client has just written itself.
    pub fn saved_item(
        &mut self,
        chart_id: Uuid,
        record_id: Uuid,
        version: u64,
        seq: u64,
        body: RecordBody,
        me: &Unlocked,
    ) {
        self.filed(chart_id, record_id);
        self.apply(Change {
            record_id,
            version,
            seq,
            author: Some(me_as_author(me)),
            opened: Opened::Item { chart_id, body },
        });
    }

    /// The records of a chart, in feed order.
    pub fn items_of(&self, chart_id: &Uuid) -> Vec<Item> {
        in_feed_order(self.items.get(chart_id))
    }

    /// One record of a chart.
    pub fn item(&self, chart_id: &Uuid, record_id: &Uuid) -> Option<&Item> {
        self.items.get(chart_id).and_then(|m| m.get(record_id))
    }

    /// Every chart record of the clinic with its chart id (calendars and work lists).
    pub fn all_items(&self) -> impl Iterator<Item = (Uuid, &Item)> {
        self.items
            .iter()
            .flat_map(|(chart, m)| m.values().map(move |i| (*chart, i)))
    }

    /// The notes of a chart, oldest first.
    pub fn notes_of(&self, chart_id: &Uuid) -> Vec<Note> {
        self.items_of(chart_id)
            .into_iter()
            .filter_map(|i| match i.body {
                RecordBody::ClinicalNote(n) => Some(Note {
                    id: i.id,
                    version: i.version,
                    seq: i.seq,
                    text: n.text,
                    author: i.author,
                    former: i.former,
                }),
                _ => None,
            })
            .collect()
    }
}

fn me_as_author(me: &Unlocked) -> Author {
    Author::Member {
        username: me.username.clone(),
        key: me.public_keys.ed25519.0.clone(),
    }
}

fn describe(e: CryptoError) -> String {
    match e {
        CryptoError::UnknownAuthor(_) => {
            "Written by someone who is not in the clinic's signed member list: not trusted.".into()
        }
        CryptoError::Signature => "The author's signature does not verify.".into(),
        CryptoError::UnknownKey(_) => "Sealed with a key this account does not hold.".into(),
        CryptoError::Envelope(_) => "The record is malformed.".into(),
        _ => "The record could not be decrypted: it was altered, moved or replayed.".into(),
    }
}

/// Whether an envelope is a chart's record (not the clinic's profile, which the clinics page
/// opens).
fn is_chart_record(clinic_id: &Uuid, env: &RecordEnvelope) -> bool {
    &env.record_id != clinic_id
}

/// Whether a decrypted record sits where it claims to: its kind's compartment is the envelope's,
/// and only a patient record is its chart's root (`chart_id == record_id`). The envelope's header
/// is authenticated, so a record moved to another compartment or chart would not have opened; this
/// catches a record sealed in the wrong place by a faulty or hostile client.
pub fn filed_correctly(body: &RecordBody, env: &RecordEnvelope) -> bool {
    let root = env.chart_id == env.record_id;
    body.compartment() == env.compartment && root == matches!(body, RecordBody::Patient(_))
}

/// Verifies and decrypts one envelope of the change feed; the author's key comes from the
/// clinic's verified roster (current members, and former ones for what they wrote before).
pub fn open_change(clinic: &Clinic, env: &RecordEnvelope) -> (Opened, Option<Author>) {
    if !is_chart_record(&clinic.id, env) {
        return (Opened::Skip, None);
    }
    let Some(keyring) = clinic
        .keyring
        .as_ref()
        .filter(|_| clinic.holds(env.compartment))
    else {
        return (Opened::Skip, None);
    };
    let author = clinic.author(&env.author);
    let plain = match open_record(&clinic.id, Purpose::Record, env, keyring, |a| {
        clinic.author_key(a)
    }) {
        Ok(p) => p,
        Err(e) => return (Opened::Bad(describe(e)), author),
    };
    let opened = match serde_json::from_slice::<RecordBody>(&plain) {
        Ok(RecordBody::PatientIndex(shard)) => {
            match (
                env.chart_id == clinic.id,
                shard.check(&clinic.id, &env.record_id),
            ) {
                (true, Ok(())) => Opened::Index(shard),
                _ => Opened::Bad("The patient index record is misfiled.".into()),
            }
        }
        Ok(_) if env.chart_id == clinic.id => {
            Opened::Bad("A patient's record is filed under the clinic itself.".into())
        }
        Ok(body) if !filed_correctly(&body, env) => {
            Opened::Bad("The record's content does not match where it is filed.".into())
        }
        Ok(body) if env.deleted => Opened::Deleted {
            chart_id: env.chart_id,
            body,
        },
        Ok(RecordBody::Patient(p)) => Opened::Patient(p),
        Ok(body) => Opened::Item {
            chart_id: env.chart_id,
            body,
        },
        Err(_) => {
            // A kind from a newer client is ignored; a known kind that does not parse is not.
            let tag = serde_json::from_slice::<serde_json::Value>(&plain)
                .ok()
                .and_then(|v| v.get("kind").and_then(|k| k.as_str()).map(str::to_string));
            match tag.as_deref() {
                Some(k) if !RecordBody::KINDS.contains(&k) => Opened::Skip,
                _ => Opened::Bad("The record's content is unreadable.".into()),
            }
        }
    };
    (opened, author)
}

/// Whether a page of changes holds something the clinic as I hold it cannot open yet: an author
/// missing from my copy of the roster, or a key I do not hold (of a newer epoch, or a restricted
/// chart's key given to me since) in a compartment my role is granted.
fn needs_refresh(clinic: &Clinic, envs: &[&RecordEnvelope]) -> bool {
    let Some(keyring) = clinic.keyring.as_ref() else {
        return false;
    };
    envs.iter().any(|env| {
        is_chart_record(&clinic.id, env)
            && (clinic.author(&env.author).is_none()
                || (clinic.holds(env.compartment) && keyring.by_id(&env.key_id).is_none()))
    })
}

/// Whether my keys disagree with the restricted charts: a chart I am on whose current keys I do
/// not hold, or a chart I am off whose keys I still hold.
fn chart_keys_stale(clinic: &Clinic, charts: &[RestrictedChart]) -> bool {
    let Some(keyring) = clinic.keyring.as_ref() else {
        return false;
    };
    charts.iter().any(|c| {
        if c.in_care_team {
            !keyring
                .keys()
                .iter()
                .any(|k| k.chart_id == Some(c.chart_id) && k.epoch >= c.key_epoch)
        } else {
            keyring.has_chart(&c.chart_id)
        }
    })
}

/// Brings the store up to date with the server: asks for changes since the store's cursor, page
/// after page while there are more. Only one sync of a clinic runs at a time; a second caller
/// waits for the first and then asks for anything newer.
pub async fn sync(
    app: AppState,
    me: Arc<Unlocked>,
    clinic: Arc<Clinic>,
    store: ArcRwSignal<RecordStore>,
) -> Result<(), ApiError> {
    while store.with_untracked(|s| s.syncing) {
        sleep(40).await;
    }
    store.update(|s| s.syncing = true);
    let clinic_id = clinic.id;
    let result = sync_pages(app, &me, clinic, &store).await;
    store.update(|s| {
        s.syncing = false;
        s.progress = None;
        if result.is_ok() {
            s.synced = true;
        }
    });
    if result.is_ok() {
        if let Some(clinic) = app.clinic(&clinic_id) {
            // An index that lags what I hold is mended here; failing to mend it is not an error
            // of the sync (the next sync, mine or another member's, tries again).
            let _ = crate::patient_index::repair(app, &me, clinic).await;
        }
    }
    result
}

/// Opens fetched records (refreshing the clinic once if they need keys or authors my copy does
/// not have yet) and takes them into the store; returns the clinic as it now stands.
async fn take_records(
    app: AppState,
    me: &Unlocked,
    mut clinic: Arc<Clinic>,
    store: &ArcRwSignal<RecordStore>,
    records: &[StoredRecord],
    refreshed: &mut bool,
) -> Result<Arc<Clinic>, ApiError> {
    let envs: Vec<&RecordEnvelope> = records.iter().map(|r| &r.envelope).collect();
    if !*refreshed && needs_refresh(&clinic, &envs) {
        // Once per sync: a new member's records, or keys rotated since I opened the clinic.
        *refreshed = true;
        clinic = refresh_clinic(app, me, clinic.id).await?;
        clinic
            .trusted()
            .map_err(|why| ApiError::local("untrusted_clinic", &why))?;
    }
    let changes: Vec<Change> = records
        .iter()
        .map(|r| {
            let (opened, author) = open_change(&clinic, &r.envelope);
            Change {
                record_id: r.envelope.record_id,
                version: r.envelope.version,
                seq: r.seq,
                author,
                opened,
            }
        })
        .collect();
    store.update(|s| {
        for r in records {
            if r.envelope.record_id != clinic.id && r.envelope.chart_id != clinic.id {
                s.filed(r.envelope.chart_id, r.envelope.record_id);
            }
        }
        for c in changes {
            s.apply(c);
        }
    });
    Ok(clinic)
}

/// Fetches records by id (with the version the feed announced for each) in pages, opens them,
/// and flags any the server sent older than it announced.
async fn fetch_records(
    app: AppState,
    me: &Unlocked,
    mut clinic: Arc<Clinic>,
    store: &ArcRwSignal<RecordStore>,
    wanted: &[(Uuid, u64)],
    refreshed: &mut bool,
) -> Result<Arc<Clinic>, ApiError> {
    for chunk in wanted.chunks(limits::MAX_PAGE) {
        let ids = chunk.iter().map(|(id, _)| *id).collect();
        let records = api::read_records(clinic.id, ids).await?;
        clinic = take_records(app, me, clinic, store, &records, refreshed).await?;
        store.update(|s| {
            for (id, v) in chunk {
                s.check_announced(*id, *v);
            }
        });
    }
    Ok(clinic)
}

/// Fetches the given records now (the index shard a write conflicted on, say) and takes them in.
pub async fn fetch_now(
    app: AppState,
    me: &Unlocked,
    clinic: Arc<Clinic>,
    store: &ArcRwSignal<RecordStore>,
    wanted: &[(Uuid, u64)],
) -> Result<Arc<Clinic>, ApiError> {
    let mut refreshed = false;
    fetch_records(app, me, clinic, store, wanted, &mut refreshed).await
}

async fn sync_pages(
    app: AppState,
    me: &Unlocked,
    mut clinic: Arc<Clinic>,
    store: &ArcRwSignal<RecordStore>,
) -> Result<(), ApiError> {
    let untrusted = |why: String| ApiError::local("untrusted_clinic", &why);
    clinic.trusted().map_err(untrusted)?;
    let mut refreshed = false;
    let charts = api::charts(clinic.id).await?.charts;
    if chart_keys_stale(&clinic, &charts) {
        // Put on (or taken off) a care team, or a chart's keys rotated, since I opened the clinic.
        refreshed = true;
        clinic = refresh_clinic(app, me, clinic.id).await?;
        clinic.trusted().map_err(untrusted)?;
    }
    store.update(|s| {
        s.set_charts(charts);
    });
    // The patient index first: the list and search work from it while the feed is read.
    if !store.with_untracked(|s| s.index_loaded) {
        if clinic.holds(Compartment::Demographics) {
            let ids = shard_record_ids(&clinic.id);
            let records = api::read_records(clinic.id, ids).await?;
            clinic = take_records(app, me, clinic, store, &records, &mut refreshed).await?;
        }
        store.update(|s| s.index_loaded = true);
    }
    // Pages of headers that fetch nothing change nothing on screen but the progress bar; telling
    // the page after every one would recompute the patient list (tens of thousands of rows) for
    // each, so it is told at most every 250 ms.
    let mut shown_at = js_sys::Date::now();
    loop {
        let since = store.with_untracked(|s| s.cursor);
        let page = api::change_headers(clinic.id, since, limits::MAX_PAGE).await?;
        let wanted: Vec<(Uuid, u64)> = store
            .try_update_untracked(|s| {
                page.changes
                    .iter()
                    .filter(|h| s.plan(&clinic.id, h, clinic.holds(h.compartment)) == Plan::Fetch)
                    .map(|h| (h.record_id, h.version))
                    .collect()
            })
            .unwrap_or_default();
        clinic = fetch_records(app, me, clinic, store, &wanted, &mut refreshed).await?;
        // A cursor that does not move forward ends the loop (never ask for the same page twice).
        let more = page.more && page.cursor > since;
        store.update_untracked(|s| {
            s.cursor = s.cursor.max(page.cursor);
            s.head = page.head.max(s.cursor);
            s.progress = more.then_some((s.cursor, s.head));
        });
        let now = js_sys::Date::now();
        if !more || now - shown_at >= 250.0 {
            store.notify();
            shown_at = now;
        }
        if !more {
            return Ok(());
        }
    }
}

/// Fetches every record of a chart not fetched yet (its clinical records and prescriptions, and
/// its full patient record if it is shown from the index), so the chart can be shown and edited.
/// Waits for a running sync, and keeps others waiting meanwhile, so nothing the feed announces
/// while the chart loads is missed.
pub async fn load_chart(
    app: AppState,
    me: Arc<Unlocked>,
    clinic: Arc<Clinic>,
    store: ArcRwSignal<RecordStore>,
    chart_id: Uuid,
) -> Result<(), ApiError> {
    if store.with_untracked(|s| s.chart_loaded(&chart_id)) {
        return Ok(());
    }
    // Marked loaded and its deferred records taken in one step: a sync running meanwhile fetches
    // whatever the feed announces for the chart from now on, and nothing announced before is
    // missed (the store is only touched between awaits). No need to wait for that sync.
    let wanted = store.try_update_untracked(|s| {
        let wanted = s.chart_to_fetch(&chart_id);
        s.loaded(chart_id);
        wanted
    });
    let wanted = wanted.unwrap_or_default();
    let mut refreshed = false;
    let result = fetch_records(app, &me, clinic, &store, &wanted, &mut refreshed).await;
    if result.is_err() {
        // Not loaded after all: what was deferred waits for the next attempt.
        store.update(|s| s.unload(chart_id, &wanted));
    }
    result.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use optovault_shared::crypto::{seal_record, ClinicKeyring, RecordSlot, UserKeys};
    use optovault_shared::domain::ClinicalNote;
    use optovault_shared::roster::{Roster, RosterChange};
    use optovault_shared::team::{genesis_entry, next_entry, sign_entry, verify_roster};
    use optovault_shared::wire::Role;
    use optovault_shared::Compartment;

    fn patient(name: &str) -> Patient {
        Patient {
            given_name: name.into(),
            family_name: "Doe".into(),
            date_of_birth: "1980-01-01".into(),
            ..Default::default()
        }
    }

    fn change(id: Uuid, version: u64, opened: Opened) -> Change {
        Change {
            record_id: id,
            version,
            seq: version,
            author: None,
            opened,
        }
    }

    #[test]
    fn a_tombstone_moves_a_record_to_the_trash_and_a_later_version_brings_it_back() {
        let mut s = RecordStore::default();
        let (chart, note) = (Uuid::new_v4(), Uuid::new_v4());
        let body = RecordBody::ClinicalNote(ClinicalNote {
            text: "to delete".into(),
        });
        let item = |body: &RecordBody| Opened::Item {
            chart_id: chart,
            body: body.clone(),
        };
        s.apply(change(chart, 1, Opened::Patient(patient("Ann"))));
        s.apply(change(note, 1, item(&body)));
        assert_eq!(s.items_of(&chart).len(), 1);
        s.apply(change(
            note,
            2,
            Opened::Deleted {
                chart_id: chart,
                body: body.clone(),
            },
        ));
        assert!(
            s.items_of(&chart).is_empty(),
            "deleted: gone from the chart"
        );
        assert_eq!(s.trash_of(&chart).len(), 1);
        assert_eq!(s.trash_of(&chart)[0].version, 2);
        // The tombstone replayed older than a later version is refused like any rollback.
        s.apply(change(note, 3, item(&body)));
        assert_eq!(s.items_of(&chart).len(), 1, "restored");
        assert!(s.trash_of(&chart).is_empty());
        s.apply(change(
            note,
            2,
            Opened::Deleted {
                chart_id: chart,
                body: body.clone(),
            },
        ));
        assert_eq!(s.items_of(&chart).len(), 1);
        assert!(s.errors.contains_key(&note));
        // A deleted patient leaves the list.
        s.apply(change(
            chart,
            2,
            Opened::Deleted {
                chart_id: chart,
                body: RecordBody::Patient(patient("Ann")),
            },
        ));
        assert!(!s.patients.contains_key(&chart));
        assert_eq!(s.trash_of(&chart).len(), 1);
    }

    #[test]
    fn keeps_the_highest_version_and_flags_rollbacks() {
        let mut s = RecordStore::default();
        let id = Uuid::new_v4();
        s.apply(change(id, 2, Opened::Patient(patient("v2"))));
        s.apply(change(id, 1, Opened::Patient(patient("v1"))));
        assert_eq!(s.patients[&id].0, 2);
        assert_eq!(s.patients[&id].1.given_name, "v2");
        assert!(
            s.errors.contains_key(&id),
            "an older version after a newer one is flagged"
        );
        s.apply(change(id, 3, Opened::Patient(patient("v3"))));
        assert_eq!(s.patients[&id].1.given_name, "v3");
        assert!(!s.errors.contains_key(&id));
        s.apply(change(id, 4, Opened::Bad("tampered".into())));
        assert_eq!(
            s.patients[&id].0, 3,
            "a record that fails to open never replaces a good one"
        );
        assert!(s.errors.contains_key(&id));
        s.apply(change(Uuid::new_v4(), 1, Opened::Skip));
        assert_eq!(s.patients.len(), 1);
        assert_eq!(s.errors.len(), 1);
    }

    #[test]
    fn keeps_notes_per_chart_in_feed_order() {
        let mut s = RecordStore::default();
        let (chart, other) = (Uuid::new_v4(), Uuid::new_v4());
        let (a, b, c) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let note = |text: &str, chart_id| Opened::Item {
            chart_id,
            body: RecordBody::ClinicalNote(ClinicalNote { text: text.into() }),
        };
        s.apply(Change {
            seq: 9,
            ..change(b, 1, note("second", chart))
        });
        s.apply(Change {
            seq: 4,
            ..change(a, 1, note("first", chart))
        });
        s.apply(Change {
            seq: 5,
            ..change(c, 1, note("elsewhere", other))
        });
        let texts: Vec<String> = s.notes_of(&chart).into_iter().map(|n| n.text).collect();
        assert_eq!(texts, ["first", "second"]);
        assert_eq!(s.notes_of(&other).len(), 1);
        assert!(s.patients.is_empty());
    }

    fn header(chart_id: Uuid, record_id: Uuid, version: u64, c: Compartment) -> ChangeHeader {
        ChangeHeader {
            seq: version,
            record_id,
            chart_id,
            version,
            compartment: c,
        }
    }

    fn shard_with(entries: &[(Uuid, u64, &str)]) -> PatientIndexShard {
        use optovault_shared::patient_index::{shard_of, IndexEntry};
        let mut shard = PatientIndexShard::new(shard_of(&entries[0].0));
        for (id, v, name) in entries {
            shard.upsert(IndexEntry::summarise(*id, *v, &patient(name)));
        }
        shard
    }

    fn in_shard_of(other: Uuid) -> Uuid {
        let mut b = *Uuid::new_v4().as_bytes();
        b[0] = other.as_bytes()[0];
        Uuid::from_bytes(b)
    }

    #[test]
    fn the_index_shows_patients_until_their_chart_is_opened() {
        use optovault_shared::patient_index::{shard_of, shard_record_id};
        let clinic = Uuid::new_v4();
        let (a, note) = (Uuid::new_v4(), Uuid::new_v4());
        let b = in_shard_of(a);
        let mut s = RecordStore::default();
        let shard_id = shard_record_id(&clinic, shard_of(&a));
        s.apply(change(
            shard_id,
            1,
            Opened::Index(shard_with(&[(a, 2, "Ann"), (b, 1, "Bo")])),
        ));
        assert_eq!(s.patients[&a], (2, patient("Ann")));
        assert!(s.summaries.contains(&a) && s.summaries.contains(&b));
        assert_eq!(s.search[&a], patient("Ann").search_key());

        // The feed: a's record at the version the index covers waits; b's newer version and the
        // shard itself (already held) are fetched / skipped; a's exam waits for the chart.
        let demo = Compartment::Demographics;
        assert_eq!(s.plan(&clinic, &header(a, a, 2, demo), true), Plan::Defer);
        assert_eq!(s.plan(&clinic, &header(b, b, 2, demo), true), Plan::Fetch);
        assert_eq!(
            s.plan(&clinic, &header(a, note, 1, Compartment::Clinical), true),
            Plan::Defer
        );
        assert_eq!(
            s.plan(
                &clinic,
                &header(a, Uuid::new_v4(), 1, Compartment::Billing),
                true
            ),
            Plan::Fetch
        );
        assert_eq!(
            s.plan(&clinic, &header(clinic, shard_id, 1, demo), true),
            Plan::Skip
        );
        assert_eq!(
            s.plan(&clinic, &header(clinic, shard_id, 2, demo), true),
            Plan::Fetch
        );
        assert_eq!(
            s.plan(&clinic, &header(a, note, 1, Compartment::Clinical), false),
            Plan::Skip,
            "not my compartment"
        );
        assert_eq!(
            s.plan(&clinic, &header(clinic, clinic, 9, demo), true),
            Plan::Skip
        );

        // Opening a's chart fetches its exam and its full record; a failed fetch defers them again.
        let mut want = s.chart_to_fetch(&a);
        want.sort();
        let mut expected = vec![(a, 2), (note, 1)];
        expected.sort();
        assert_eq!(want, expected);
        s.loaded(a);
        s.unload(a, &want);
        assert!(!s.chart_loaded(&a));
        let mut again = s.chart_to_fetch(&a);
        again.sort();
        assert_eq!(again, expected);
        let full = Patient {
            notes: "full record".into(),
            ..patient("Ann")
        };
        s.apply(change(a, 2, Opened::Patient(full.clone())));
        assert_eq!(
            s.patients[&a].1, full,
            "the full record replaces the summary"
        );
        assert!(!s.summaries.contains(&a));
        assert!(!s.errors.contains_key(&a));
        s.loaded(a);
        assert!(s.chart_loaded(&a));
        assert!(s.chart_to_fetch(&a).is_empty());
        // From now on a's changes are fetched as they come.
        assert_eq!(
            s.plan(
                &clinic,
                &header(a, Uuid::new_v4(), 1, Compartment::Clinical),
                true
            ),
            Plan::Fetch
        );
        // An older shard version never replaces a full record, nor a newer shard.
        s.apply(change(
            shard_id,
            3,
            Opened::Index(shard_with(&[(a, 1, "Old")])),
        ));
        assert_eq!(s.patients[&a].1, full);
        s.apply(change(
            shard_id,
            2,
            Opened::Index(shard_with(&[(b, 1, "Old")])),
        ));
        assert!(
            s.errors.contains_key(&shard_id),
            "a shard going backwards is flagged"
        );
    }

    #[test]
    fn a_record_sent_older_than_announced_is_flagged() {
        let mut s = RecordStore::default();
        let a = Uuid::new_v4();
        s.apply(change(a, 3, Opened::Patient(patient("Ann"))));
        s.check_announced(a, 3);
        assert!(!s.errors.contains_key(&a));
        s.check_announced(a, 4);
        assert!(s.errors[&a].contains("announced version 4"));
    }

    #[test]
    fn index_entries_of_charts_i_am_not_on_are_never_shown() {
        use optovault_shared::patient_index::{shard_of, shard_record_id};
        let clinic = Uuid::new_v4();
        let hidden = Uuid::new_v4();
        let open = in_shard_of(hidden);
        let mut s = RecordStore::default();
        s.set_charts(vec![restricted(hidden, false)]);
        let shard_id = shard_record_id(&clinic, shard_of(&hidden));
        s.apply(change(
            shard_id,
            1,
            Opened::Index(shard_with(&[(hidden, 1, "Secret"), (open, 1, "Open")])),
        ));
        assert!(!s.patients.contains_key(&hidden));
        assert!(s.patients.contains_key(&open));
    }

    fn restricted(chart_id: Uuid, in_care_team: bool) -> RestrictedChart {
        RestrictedChart {
            chart_id,
            in_care_team,
            care_team: vec![],
            key_epoch: 1,
            restricted_at: 1,
        }
    }

    #[test]
    fn drops_charts_i_am_not_on_and_syncs_again_when_put_back() {
        let mut s = RecordStore::default();
        let (hidden, open) = (Uuid::new_v4(), Uuid::new_v4());
        let (note, other) = (Uuid::new_v4(), Uuid::new_v4());
        s.apply(change(hidden, 1, Opened::Patient(patient("Hidden"))));
        s.apply(change(open, 1, Opened::Patient(patient("Open"))));
        s.apply(change(
            note,
            1,
            Opened::Item {
                chart_id: hidden,
                body: RecordBody::ClinicalNote(ClinicalNote { text: "x".into() }),
            },
        ));
        // A record of a kind this client does not show, filed on the chart.
        s.filed(hidden, other);
        assert_eq!(
            s.records_of_chart(&hidden),
            BTreeSet::from([hidden, note, other])
        );
        s.cursor = 9;

        assert!(!s.set_charts(vec![restricted(hidden, false)]));
        assert_eq!(s.patients.keys().copied().collect::<Vec<_>>(), [open]);
        assert!(s.notes_of(&hidden).is_empty());
        assert!(s.records_of_chart(&hidden).is_empty());
        assert_eq!(s.hidden_charts(), 1);
        assert_eq!(s.cursor, 9, "dropping a chart keeps the cursor");

        // Put back on the team: the feed is read again from the start.
        assert!(s.set_charts(vec![restricted(hidden, true)]));
        assert_eq!(s.cursor, 0);
        assert_eq!(s.hidden_charts(), 0);
        assert!(s.restriction(&hidden).is_some_and(|c| c.in_care_team));
        s.apply(change(hidden, 2, Opened::Patient(patient("Hidden"))));
        assert!(
            !s.errors.contains_key(&hidden),
            "its versions were forgotten with it: no false rollback"
        );
        // Already on it: nothing to read again.
        s.cursor = 12;
        assert!(!s.set_charts(vec![restricted(hidden, true)]));
        assert_eq!(s.cursor, 12);
    }

    struct Team {
        clinic_id: Uuid,
        owner: Unlocked,
        member: Unlocked,
        keyring: ClinicKeyring,
        /// Roster with the member added; the same after their removal.
        added: Roster,
        removed: Roster,
    }

    fn team() -> Team {
        let clinic_id = Uuid::new_v4();
        let owner = Unlocked::new(Uuid::new_v4(), "owner".into(), UserKeys::generate());
        let member = Unlocked::new(Uuid::new_v4(), "optom".into(), UserKeys::generate());
        let genesis = genesis_entry(clinic_id, owner.account_id, "owner", &owner.keys, 1);
        let r1 = verify_roster(clinic_id, std::slice::from_ref(&genesis), None, None).unwrap();
        let add = sign_entry(
            &next_entry(
                &r1,
                owner.account_id,
                RosterChange::Add {
                    member: member.account_id,
                    username: "optom".into(),
                    role: Role::Optometrist,
                    public_keys: member.public_keys.clone(),
                },
                1,
                2,
            ),
            &owner.keys,
        );
        let added = Roster::apply_unverified(Some(&r1), clinic_id, &add)
            .unwrap()
            .0;
        let remove = sign_entry(
            &next_entry(
                &added,
                owner.account_id,
                RosterChange::Remove {
                    member: member.account_id,
                },
                2,
                3,
            ),
            &owner.keys,
        );
        let removed = verify_roster(clinic_id, &[genesis, add, remove], None, None).unwrap();
        Team {
            clinic_id,
            owner,
            member,
            keyring: ClinicKeyring::generate(),
            added,
            removed,
        }
    }

    fn clinic(t: &Team, roster: &Roster, keyring: ClinicKeyring) -> Clinic {
        Clinic {
            id: t.clinic_id,
            role: Role::Owner,
            name: Ok("Lakeside".into()),
            keyring: Some(keyring),
            roster: Some(roster.clone()),
        }
    }

    fn seal(
        t: &Team,
        author: &Unlocked,
        chart: Uuid,
        id: Uuid,
        c: Compartment,
        body: &RecordBody,
    ) -> RecordEnvelope {
        let slot = RecordSlot {
            clinic_id: t.clinic_id,
            chart_id: chart,
            record_id: id,
            version: 1,
            purpose: Purpose::Record,
        };
        let plain = serde_json::to_vec(body).unwrap();
        seal_record(
            slot,
            c,
            &t.keyring,
            &author.account_id,
            &author.keys,
            &plain,
        )
        .unwrap()
    }

    #[test]
    fn opens_records_of_members_and_rejects_tampered_or_foreign_ones() {
        let t = team();
        let c = clinic(&t, &t.added, t.keyring.clone());
        let id = Uuid::new_v4();
        let body = RecordBody::Patient(patient("Jane"));
        let env = seal(&t, &t.owner, id, id, Compartment::Demographics, &body);
        assert!(matches!(open_change(&c, &env).0, Opened::Patient(p) if p.given_name == "Jane"));

        let by_member = seal(&t, &t.member, id, id, Compartment::Demographics, &body);
        let (opened, author) = open_change(&c, &by_member);
        assert!(matches!(opened, Opened::Patient(_)));
        assert_eq!(author.map(|a| a.is_former()), Some(false));

        let mut tampered = env.clone();
        tampered.ciphertext.0[0] ^= 1;
        assert!(matches!(open_change(&c, &tampered).0, Opened::Bad(_)));
        let mut replayed = env.clone();
        replayed.version = 2;
        assert!(matches!(open_change(&c, &replayed).0, Opened::Bad(_)));
        let elsewhere = Clinic {
            id: Uuid::new_v4(),
            ..clinic(&t, &t.added, t.keyring.clone())
        };
        assert!(matches!(
            open_change(&elsewhere, &env).0,
            Opened::Bad(_) | Opened::Skip
        ));

        let stranger = Unlocked::new(Uuid::new_v4(), "mallory".into(), UserKeys::generate());
        let foreign = seal(&t, &stranger, id, id, Compartment::Demographics, &body);
        assert!(
            matches!(open_change(&c, &foreign).0, Opened::Bad(why) if why.contains("member list")),
            "records by authors outside the roster are not trusted"
        );
    }

    #[test]
    fn former_members_records_stay_readable_and_are_marked() {
        let t = team();
        let c = clinic(&t, &t.removed, t.keyring.clone());
        let (chart, id) = (Uuid::new_v4(), Uuid::new_v4());
        let body = RecordBody::ClinicalNote(ClinicalNote {
            text: "IOP 18/19".into(),
        });
        let env = seal(&t, &t.member, chart, id, Compartment::Clinical, &body);
        let (opened, author) = open_change(&c, &env);
        assert!(
            matches!(opened, Opened::Item { chart_id, body: RecordBody::ClinicalNote(ref n) } if chart_id == chart && n.text == "IOP 18/19")
        );
        let mut s = RecordStore::default();
        s.apply(Change {
            record_id: id,
            version: 1,
            seq: 3,
            author,
            opened,
        });
        let notes = s.notes_of(&chart);
        assert_eq!(notes.len(), 1);
        assert!(notes[0].former);
        assert_eq!(notes[0].author, "optom");
    }

    #[test]
    fn ignores_what_the_role_or_client_cannot_handle() {
        let t = team();
        // A front-desk keyring: demographics only.
        let mut front_desk = ClinicKeyring::default();
        let _ = front_desk.rotate(&[Compartment::Demographics], 1);
        let c = clinic(&t, &t.added, front_desk);
        let (chart, id) = (Uuid::new_v4(), Uuid::new_v4());
        let note = RecordBody::ClinicalNote(ClinicalNote { text: "x".into() });
        let env = seal(&t, &t.owner, chart, id, Compartment::Clinical, &note);
        assert!(matches!(open_change(&c, &env).0, Opened::Skip));
        let full = clinic(&t, &t.added, t.keyring.clone());
        let billing = seal(&t, &t.owner, chart, id, Compartment::Billing, &note);
        // Every compartment has kinds now: a note sealed into billing is misfiled, not skipped.
        assert!(matches!(open_change(&full, &billing).0, Opened::Bad(_)));
        // A kind from a newer client.
        let slot = RecordSlot {
            clinic_id: t.clinic_id,
            chart_id: id,
            record_id: id,
            version: 1,
            purpose: Purpose::Record,
        };
        let future = seal_record(
            slot,
            Compartment::Demographics,
            &t.keyring,
            &t.owner.account_id,
            &t.owner.keys,
            br#"{"kind":"hologram_session","at":1}"#,
        )
        .unwrap();
        assert!(matches!(open_change(&full, &future).0, Opened::Skip));
        // A note filed as a patient is not.
        let misfiled = seal(&t, &t.owner, id, id, Compartment::Demographics, &note);
        assert!(matches!(open_change(&full, &misfiled).0, Opened::Bad(_)));
    }
}

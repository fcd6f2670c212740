//! The hash-chained audit log end to end against the real server and its operator tool:
//!
//! - tampering with the database files (an edited, deleted, swapped or re-hashed entry, a
//!   truncated and re-appended tail, a forged detail signature) is named by
//!   `optovault-server verify-audit`, down to the entry;
//! - the actions the server performs leave their entry with the right action, actor and target;
//! - client-reported entries carry a detail sealed to the owners' audit key: the owner reads it,
//!   nobody else does (not the API's JSON, not the operator's listing, not the database files);
//!   the server refuses details not signed by the caller for that very entry;
//! - owners' checkpoints are checked by the server before they are stored;
//! - `GET /audit` filters.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use optovault_shared::audit::{
    detail_context, entry_hash, unix_now, AuditDetail, ChainError, ChainPoint, ChainSummary,
    ChainVerifier, FieldChange, GENESIS_HASH,
};
use optovault_shared::crypto::{self, AuditKey, UserKeys};
use optovault_shared::roster::RosterChange;
use optovault_shared::wire::*;
use optovault_shared::{Compartment, B64};
use optovault_tests::team::clinical_note_write;
use optovault_tests::*;
use uuid::Uuid;

// ---- a clinic and its team ------------------------------------------------------------------------

struct Team {
    server: TestServer,
    oc: Client,
    owner: Session,
    owner_name: String,
    clinic: Clinic,
}

fn team(clinic_name: &str) -> Team {
    let server = TestServer::start();
    let oc = server.client();
    let owner_name = unique_username("owner");
    let owner = oc.signup(&owner_name, &strong_password());
    let clinic = oc.create_clinic(&owner, clinic_name).unwrap();
    Team {
        server,
        oc,
        owner,
        owner_name,
        clinic,
    }
}

/// Registers an account and brings it into the clinic with `role` (invitation, acceptance,
/// admission), as team.rs does.
fn join(t: &Team, name: &str, role: Role) -> (Client, Session, Clinic) {
    let c = t.server.client();
    let s = c.signup(&unique_username(name), &strong_password());
    let link = t.oc.invite(&t.owner, &t.clinic, role).unwrap();
    c.accept(&s, &link).unwrap();
    let member =
        t.oc.admit(&t.owner, &t.clinic, link.invitation_id)
            .unwrap()
            .unwrap();
    assert_eq!((member.account_id, member.role), (s.account_id, role));
    let clinic = c.join_view(&s, t.clinic.id);
    (c, s, clinic)
}

// ---- the audit API --------------------------------------------------------------------------------

fn audit_raw(c: &Client, clinic_id: Uuid, query: &str) -> Raw {
    c.get(&format!("/api/clinics/{clinic_id}/audit?{query}"))
}

/// Every entry of the clinic's log matching `filters` (a query string, may be empty), following
/// the cursor with pages of `limit`.
fn audit_paged(c: &Client, clinic_id: Uuid, filters: &str, limit: u32) -> Vec<AuditEntry> {
    let mut out: Vec<AuditEntry> = Vec::new();
    let mut since = 0;
    for _ in 0..10_000 {
        let sep = if filters.is_empty() { "" } else { "&" };
        let raw = audit_raw(
            c,
            clinic_id,
            &format!("{filters}{sep}since={since}&limit={limit}"),
        );
        assert_eq!(raw.status, 200, "{raw:?}");
        let page: AuditPage = raw.parse();
        assert!(page.entries.len() <= limit as usize);
        assert!(page.cursor >= since, "the cursor went backwards: {page:?}");
        for e in &page.entries {
            assert!(
                e.seq > since && e.seq <= page.cursor,
                "entry out of page: {e:?}"
            );
            assert!(out.last().map_or(true, |l| l.seq < e.seq));
        }
        out.extend(page.entries);
        since = page.cursor;
        if !page.more {
            assert_eq!(page.cursor, page.head, "the last page ends at the head");
            return out;
        }
    }
    panic!("the audit log never ended");
}

fn audit_all(c: &Client, clinic_id: Uuid) -> Vec<AuditEntry> {
    audit_paged(c, clinic_id, "", 1000)
}

fn h32(b: &B64) -> [u8; 32] {
    b.as_slice().try_into().expect("a 32-byte hash")
}

/// Checks a log as an owner's browser would: chain from genesis and the given checkpoints.
fn verify_chain(
    clinic_id: Uuid,
    entries: &[AuditEntry],
    checkpoints: &[AuditCheckpoint],
) -> Result<ChainSummary, ChainError> {
    let cps = checkpoints
        .iter()
        .map(|cp| (cp.seq, h32(&cp.head_hash)))
        .collect();
    let mut v = ChainVerifier::new(Some(clinic_id), ChainPoint::GENESIS, cps);
    for e in entries {
        v.push(e)?;
    }
    v.finish()
}

/// The owner makes the clinic's audit key, signs its public half, wraps it to itself (the only
/// owner) and stores it.
fn set_up_audit_key(c: &Client, owner: &Session, clinic_id: Uuid) -> (AuditKey, AuditKeyPublic) {
    let (key, setup) = audit_key_setup(owner, clinic_id);
    let raw = c.put(&format!("/api/clinics/{clinic_id}/audit/key"), &setup);
    assert_eq!(raw.status, 204, "{raw:?}");
    (key, setup.public)
}

fn audit_key_setup(owner: &Session, clinic_id: Uuid) -> (AuditKey, AuditKeySetup) {
    let key = AuditKey::generate();
    let public = key.public(clinic_id, owner.account_id, &owner.keys, unix_now());
    let wrapped = key
        .wrap_to(
            &clinic_id,
            owner.account_id,
            owner.keys.public_keys().x25519.as_slice(),
        )
        .unwrap();
    (
        key,
        AuditKeySetup {
            public,
            wrapped: vec![wrapped],
        },
    )
}

fn audit_key_view(c: &Client, clinic_id: Uuid) -> AuditKeyView {
    let raw = c.get(&format!("/api/clinics/{clinic_id}/audit/key"));
    assert_eq!(raw.status, 200, "{raw:?}");
    raw.parse()
}

fn detail(summary: &str) -> AuditDetail {
    AuditDetail {
        summary: summary.into(),
        patient: Some("Ada Okafor".into()),
        changes: vec![FieldChange {
            field: "balance".into(),
            from: "120.00".into(),
            to: "0.00".into(),
        }],
    }
}

fn seal(
    author: &Session,
    key: &AuditKeyPublic,
    action: &str,
    target: Option<Uuid>,
    d: &AuditDetail,
) -> ReportedDetail {
    crypto::seal_audit_detail(author.account_id, &author.keys, key, action, target, d).unwrap()
}

fn report(
    c: &Client,
    clinic_id: Uuid,
    action: ReportedAction,
    target: Option<Uuid>,
    detail: ReportedDetail,
) -> Raw {
    c.post(
        &format!("/api/clinics/{clinic_id}/audit/events"),
        &ReportedEvent {
            action,
            target,
            detail,
        },
    )
}

fn post_checkpoint(c: &Client, clinic_id: Uuid, cp: &AuditCheckpoint) -> Raw {
    c.post(&format!("/api/clinics/{clinic_id}/audit/checkpoints"), cp)
}

fn checkpoints(c: &Client, clinic_id: Uuid) -> Vec<AuditCheckpoint> {
    let raw = c.get(&format!("/api/clinics/{clinic_id}/audit/checkpoints"));
    assert_eq!(raw.status, 200, "{raw:?}");
    raw.parse::<AuditCheckpointList>().checkpoints
}

/// The owner verifies the log it is served and signs its head; returns the checkpoint.
fn sign_head(c: &Client, owner: &Session, clinic_id: Uuid) -> AuditCheckpoint {
    let entries = audit_all(c, clinic_id);
    verify_chain(clinic_id, &entries, &checkpoints(c, clinic_id))
        .expect("the served log verifies before the owner signs it");
    let head = entries.last().expect("a log with entries");
    let cp = crypto::sign_checkpoint(
        clinic_id,
        head.seq,
        h32(&head.hash),
        unix_now(),
        owner.account_id,
        &owner.keys,
    );
    let raw = post_checkpoint(c, clinic_id, &cp);
    assert_eq!(raw.status, 204, "{raw:?}");
    cp
}

#[track_caller]
fn expect_code(raw: &Raw, status: u16, code: &str) {
    let e = raw.expect_error(&[status]);
    assert_eq!(e.code, code, "{raw:?}");
}

fn head_of(c: &Client, clinic_id: Uuid) -> u64 {
    let raw = audit_raw(c, clinic_id, "limit=1");
    assert_eq!(raw.status, 200, "{raw:?}");
    raw.parse::<AuditPage>().head
}

// ---- the operator's tool and the database files -----------------------------------------------------

/// What `optovault-server verify-audit` printed and how it exited.
struct Verdict {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {:?}\n--- stdout ---\n{}--- stderr ---\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

impl Verdict {
    /// The summary line of a clinic's log.
    fn line_for(&self, clinic_id: Uuid) -> &str {
        let prefix = format!("clinic {clinic_id}: ");
        let lines: Vec<&str> = self
            .stdout
            .lines()
            .filter(|l| l.starts_with(&prefix))
            .collect();
        assert_eq!(lines.len(), 1, "one line for clinic {clinic_id}:\n{self}");
        lines[0]
    }
}

fn verify_audit(data_dir: &Path, extra: &[&str]) -> Verdict {
    let out = Command::new(server_bin("debug"))
        .arg("--data-dir")
        .arg(data_dir)
        .arg("verify-audit")
        .args(extra)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run optovault-server verify-audit");
    Verdict {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[track_caller]
fn assert_intact(case: &str, v: &Verdict, clinic_id: Uuid, entries: u64, checkpoints: &str) {
    assert_eq!(v.code, Some(0), "{case}: verify-audit must pass\n{v}");
    assert_eq!(
        v.line_for(clinic_id),
        format!("clinic {clinic_id}: {entries} entries, {checkpoints}: intact"),
        "{case}\n{v}"
    );
    assert!(
        v.stdout.lines().last() == Some("2 logs checked, all intact"),
        "{case}\n{v}"
    );
}

/// Exit 1, the clinic's log named broken after `good` entries with `problem` (the start of the
/// message naming the entry), and the account-level log still intact.
#[track_caller]
fn assert_broken(case: &str, v: &Verdict, clinic_id: Uuid, good: u64, problem: &str) {
    assert_eq!(v.code, Some(1), "{case}: verify-audit must exit 1\n{v}");
    let want = format!("clinic {clinic_id}: BROKEN after {good} good entries: {problem}");
    let line = v.line_for(clinic_id);
    assert!(
        line.starts_with(&want),
        "{case}:\n want `{want}…`\n  got `{line}`\n{v}"
    );
    assert!(
        v.stdout
            .lines()
            .any(|l| l.starts_with("account log: ") && l.ends_with(": intact")),
        "{case}: the account log was not touched\n{v}"
    );
    assert_eq!(
        v.stdout.lines().last(),
        Some("2 logs checked, TAMPERING DETECTED"),
        "{case}\n{v}"
    );
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let dest = to.join(entry.file_name());
        let kind = entry.file_type().unwrap();
        if kind.is_dir() {
            copy_dir(&entry.path(), &dest);
        } else if kind.is_file() {
            // Not the server's admin socket.
            fs::copy(entry.path(), &dest).unwrap();
        }
    }
}

/// A fresh copy of a stopped server's database, opened with sled directly: one log's entries,
/// its head and the clinic's checkpoints, to rewrite as someone with the files would.
struct Forger {
    dir: tempfile::TempDir,
    db: sled::Db,
    events: sled::Tree,
    heads: sled::Tree,
    checkpoints: sled::Tree,
    scope: Uuid,
}

impl Forger {
    fn open_copy(data_dir: &Path, clinic_id: Option<Uuid>) -> Forger {
        let dir = tempfile::Builder::new()
            .prefix("optovault-audit-forgery-")
            .tempdir()
            .unwrap();
        copy_dir(data_dir, &dir.path().join("data"));
        let db = sled::Config::new()
            .path(dir.path().join("data"))
            .open()
            .expect("open the copy with sled");
        Forger {
            events: db.open_tree("events").unwrap(),
            heads: db.open_tree("event_heads").unwrap(),
            checkpoints: db.open_tree("audit_checkpoints").unwrap(),
            db,
            dir,
            scope: clinic_id.unwrap_or(Uuid::nil()),
        }
    }

    fn key(&self, seq: u64) -> Vec<u8> {
        let mut k = self.scope.as_bytes().to_vec();
        k.extend_from_slice(&seq.to_be_bytes());
        k
    }

    /// Every stored (key seq, entry) of the log, in key order.
    fn rows(&self) -> Vec<(u64, AuditEntry)> {
        self.events
            .scan_prefix(self.scope.as_bytes())
            .map(|kv| {
                let (k, v) = kv.unwrap();
                let seq = u64::from_be_bytes(k[16..].try_into().unwrap());
                (seq, serde_json::from_slice(&v).expect("an entry"))
            })
            .collect()
    }

    fn entries(&self) -> Vec<AuditEntry> {
        self.rows().into_iter().map(|(_, e)| e).collect()
    }

    fn get(&self, seq: u64) -> AuditEntry {
        let v = self.events.get(self.key(seq)).unwrap().expect("the entry");
        serde_json::from_slice(&v).unwrap()
    }

    fn put(&self, seq: u64, e: &AuditEntry) {
        self.events
            .insert(self.key(seq), serde_json::to_vec(e).unwrap())
            .unwrap();
    }

    fn remove(&self, seq: u64) {
        assert!(self.events.remove(self.key(seq)).unwrap().is_some());
    }

    /// Edits an entry's stored JSON in place, leaving its stored hash as it was.
    fn edit_json(&self, seq: u64, f: impl FnOnce(&mut serde_json::Value)) {
        let v = self.events.get(self.key(seq)).unwrap().expect("the entry");
        let mut json: serde_json::Value = serde_json::from_slice(&v).unwrap();
        let before = json.clone();
        f(&mut json);
        assert_ne!(json, before, "the edit changed nothing");
        self.events
            .insert(self.key(seq), serde_json::to_vec(&json).unwrap())
            .unwrap();
    }

    fn head(&self) -> (u64, [u8; 32]) {
        let v = self.heads.get(self.scope.as_bytes()).unwrap().unwrap();
        (
            u64::from_be_bytes(v[..8].try_into().unwrap()),
            v[8..].try_into().unwrap(),
        )
    }

    fn set_head(&self, seq: u64, hash: [u8; 32]) {
        let mut v = seq.to_be_bytes().to_vec();
        v.extend_from_slice(&hash);
        self.heads.insert(self.scope.as_bytes(), v).unwrap();
    }

    /// A careful forger: re-links and re-hashes every entry from key `from` on, and moves the
    /// head to the new last hash.
    fn rehash_from(&self, from: u64) {
        let rows = self.rows();
        let mut prev = rows
            .iter()
            .rev()
            .find(|(k, _)| *k < from)
            .map_or(GENESIS_HASH, |(_, e)| h32(&e.hash));
        let mut last = None;
        for (k, mut e) in rows.into_iter().filter(|(k, _)| *k >= from) {
            e.prev_hash = B64(prev.to_vec());
            prev = entry_hash(&e);
            e.hash = B64(prev.to_vec());
            self.put(k, &e);
            last = Some(e.seq);
        }
        self.set_head(last.expect("entries to re-hash"), prev);
    }

    /// Removes every entry from `from` on and moves the head back to the one before.
    fn truncate_from(&self, from: u64) {
        for (k, _) in self.rows().into_iter().filter(|(k, _)| *k >= from) {
            self.remove(k);
        }
        let before = self.get(from - 1);
        self.set_head(before.seq, h32(&before.hash));
    }

    /// Appends an entry with a valid link and hash, as the server would.
    fn append(&self, mut e: AuditEntry) {
        let (seq, prev) = self.head();
        e.seq = seq + 1;
        e.prev_hash = B64(prev.to_vec());
        let hash = entry_hash(&e);
        e.hash = B64(hash.to_vec());
        self.put(e.seq, &e);
        self.set_head(e.seq, hash);
    }

    fn edit_checkpoint(&self, seq: u64, f: impl FnOnce(&mut AuditCheckpoint)) {
        let key = self.key(seq);
        let v = self.checkpoints.get(&key).unwrap().expect("the checkpoint");
        let mut cp: AuditCheckpoint = serde_json::from_slice(&v).unwrap();
        f(&mut cp);
        self.checkpoints
            .insert(key, serde_json::to_vec(&cp).unwrap())
            .unwrap();
    }

    /// Closes the copy (flushed, unlocked) and runs the operator's tool on it.
    fn verify(self, extra: &[&str]) -> Verdict {
        let Forger {
            dir,
            db,
            events,
            heads,
            checkpoints,
            ..
        } = self;
        db.flush().unwrap();
        drop((events, heads, checkpoints));
        drop(db);
        let v = verify_audit(&dir.path().join("data"), extra);
        drop(dir);
        v
    }
}

// ---- 1. tampering with the files ----------------------------------------------------------------

/// A clinic with some history: owner writes and reads, a front-desk member, the audit key, a
/// batch with a reported entry, a signed checkpoint, then more (a reported payment, reads).
struct History {
    team: Team,
    entries: Vec<AuditEntry>,
    /// The checkpoint's entry.
    cp: u64,
    /// The reported entry before the checkpoint (patient_updated) and after it (payment).
    reported_before: u64,
    reported_after: u64,
}

fn history() -> History {
    let t = team("Tamper-Evident Optics");
    let cid = t.clinic.id;
    let patients: Vec<Uuid> = (0..8).map(|_| Uuid::new_v4()).collect();
    for (i, id) in patients.iter().enumerate() {
        t.oc.put_patient(&t.owner, &t.clinic, *id, 0, &sample_patient(i))
            .unwrap();
    }
    for id in &patients[..4] {
        t.oc.get_record(cid, *id).unwrap();
    }
    let (dc, desk, desk_clinic) = join(&t, "desk", Role::FrontDesk);
    let (_, key) = set_up_audit_key(&t.oc, &t.owner, cid);
    // The front desk updates a phone number, reported with the write.
    let mut p = sample_patient(0);
    p.phone = "+1 555 0199".into();
    let write = patient_write(&desk, cid, &desk_clinic.keyring, patients[0], 1, &p);
    let d = seal(
        &desk,
        &key,
        "patient_updated",
        Some(patients[0]),
        &detail("Phone changed"),
    );
    let raw = dc.post(
        &format!("/api/clinics/{cid}/records"),
        &BatchWriteRequest {
            writes: vec![write],
            report: Some(ReportedEvent {
                action: ReportedAction::PatientUpdated,
                target: Some(patients[0]),
                detail: d,
            }),
        },
    );
    assert_eq!(raw.status, 200, "{raw:?}");
    for id in &patients[4..7] {
        dc.get_record(cid, *id).unwrap();
    }
    let cp = sign_head(&t.oc, &t.owner, cid);
    let d = seal(
        &desk,
        &key,
        "payment_recorded",
        Some(patients[1]),
        &detail("Payment of 120.00 recorded"),
    );
    let raw = report(
        &dc,
        cid,
        ReportedAction::PaymentRecorded,
        Some(patients[1]),
        d,
    );
    assert_eq!(raw.status, 200, "{raw:?}");
    let reported_after = raw.parse::<AppendedEntry>().seq;
    for id in &patients[6..] {
        t.oc.get_record(cid, *id).unwrap();
    }
    let entries = audit_all(&t.oc, cid);
    verify_chain(cid, &entries, std::slice::from_ref(&cp)).expect("the served log verifies");
    let reported_before = entries
        .iter()
        .find(|e| e.action == "patient_updated")
        .expect("the reported update")
        .seq;
    assert!(reported_before < cp.seq, "{entries:#?}");
    assert!(cp.seq + 1 < reported_after && reported_after + 2 == entries.len() as u64);
    assert!(
        entries.len() >= 25,
        "a log of some length: {}",
        entries.len()
    );
    History {
        team: t,
        entries,
        cp: cp.seq,
        reported_before,
        reported_after,
    }
}

#[test]
fn tampering_with_the_database_files_is_named_by_verify_audit() {
    let mut h = history();
    let cid = h.team.clinic.id;
    let n = h.entries.len() as u64;
    let cp = h.cp;
    h.team.server.stop();
    let data = h.team.server.data_dir.clone();
    let open = || Forger::open_copy(&data, Some(cid));
    let cp_text = format!("1 signed checkpoints (last at entry {cp})");

    // (f) Untouched (opened with sled and closed again): intact, every entry counted.
    let v = open().verify(&[]);
    assert_intact("untouched copy", &v, cid, n, &cp_text);
    // The original too, and one clinic alone.
    assert_intact("original", &verify_audit(&data, &[]), cid, n, &cp_text);
    let v = verify_audit(&data, &["--clinic", &cid.to_string()]);
    assert_eq!(v.code, Some(0), "{v}");
    assert_eq!(
        v.line_for(cid),
        format!("clinic {cid}: {n} entries, {cp_text}: intact")
    );

    // (a) A field of entry k changed in the stored JSON, its stored hash kept.
    let k = 7;
    let f = open();
    assert_eq!(f.get(k).action, "records_written");
    f.edit_json(k, |j| j["count"] = serde_json::json!(40));
    assert_broken(
        "(a) edited field",
        &f.verify(&[]),
        cid,
        k - 1,
        &format!("entry {k} was altered"),
    );
    // Another field (the actor), another entry.
    let f = open();
    let k2 = h.reported_before - 1;
    f.edit_json(k2, |j| j["actor"] = serde_json::json!(Uuid::new_v4()));
    assert_broken(
        "(a) edited actor",
        &f.verify(&[]),
        cid,
        k2 - 1,
        &format!("entry {k2} was altered"),
    );

    // (a') The entry re-hashed after the edit, but not the entries after it: the next one no
    // longer links.
    let f = open();
    let mut e = f.get(k);
    e.count = 40;
    e.hash = B64(entry_hash(&e).to_vec());
    f.put(k, &e);
    assert_broken(
        "(a') re-hashed alone",
        &f.verify(&[]),
        cid,
        k,
        &format!("entry {} does not link to the entry before it", k + 1),
    );

    // (b) A careful forger: field changed, that hash and every later hash, prev_hash and the head
    // recomputed. The chain alone is consistent again; the owner's checkpoint is not.
    let f = open();
    let k = 4;
    let mut e = f.get(k);
    e.target = Some(Uuid::new_v4());
    f.put(k, &e);
    f.rehash_from(k);
    let forged = f.entries();
    assert_eq!(forged.len() as u64, n);
    assert!(
        verify_chain(cid, &forged, &[]).is_ok(),
        "the forgery is a consistent chain without the checkpoint"
    );
    assert_ne!(f.head().1, h32(&h.entries[n as usize - 1].hash));
    assert_broken(
        "(b) re-hashed forgery",
        &f.verify(&[]),
        cid,
        cp - 1,
        &format!("checkpoint at entry {cp} does not match that entry"),
    );

    // (c) An entry deleted: the entry after it is named.
    let f = open();
    let k = 10;
    f.remove(k);
    assert_broken(
        "(c) deleted",
        &f.verify(&[]),
        cid,
        k - 1,
        &format!("entry {} where {k} was expected", k + 1),
    );

    // (d) Two entries' values swapped.
    let f = open();
    let (a, b) = (5, 9);
    let (ea, eb) = (f.get(a), f.get(b));
    f.put(a, &eb);
    f.put(b, &ea);
    assert_broken(
        "(d) swapped",
        &f.verify(&[]),
        cid,
        a - 1,
        &format!("entry {b} where {a} was expected"),
    );

    // (e) Entry k dropped and the rest re-appended renumbered with valid hashes (and the head
    // moved): a consistent chain, but not the one the owner signed.
    let f = open();
    let k = 6;
    let rest: Vec<AuditEntry> = f
        .rows()
        .into_iter()
        .map(|(_, e)| e)
        .skip(k as usize)
        .collect();
    f.truncate_from(k);
    for e in rest {
        f.append(e);
    }
    let forged = f.entries();
    assert_eq!(forged.len() as u64, n - 1);
    assert!(verify_chain(cid, &forged, &[]).is_ok());
    assert_broken(
        "(e) truncated and re-appended",
        &f.verify(&[]),
        cid,
        cp - 1,
        &format!("checkpoint at entry {cp} does not match that entry"),
    );
    // Truncated before the checkpoint, head moved back, nothing re-appended.
    let f = open();
    f.truncate_from(k);
    assert_broken(
        "(e) truncated",
        &f.verify(&[]),
        cid,
        k - 1,
        &format!(
            "checkpoint at entry {cp} names an entry past the end of the log (which ends at {}: \
             truncated)",
            k - 1
        ),
    );
    // The last entry (after the checkpoint) removed, the stored head left as it was.
    let f = open();
    f.remove(n);
    assert_broken(
        "(e) last entry removed",
        &f.verify(&[]),
        cid,
        n - 1,
        &format!(
            "the log's head says entry {n} but its last entry is {}",
            n - 1
        ),
    );

    // A reported detail's signature flipped, every hash recomputed: the chain and the checkpoint
    // (which is before it) pass; the author's signature does not.
    let r = h.reported_after;
    assert!(r > cp);
    let f = open();
    let mut e = f.get(r);
    assert_eq!(e.action, "payment_recorded");
    e.detail.as_mut().expect("a sealed detail").signature.0[5] ^= 0x20;
    f.put(r, &e);
    f.rehash_from(r);
    assert_broken(
        "detail signature flipped",
        &f.verify(&[]),
        cid,
        r - 1,
        &format!("entry {r}: its reported detail is not signed by its actor"),
    );
    // The detail moved to another category (a payment shown as a refund), re-hashed.
    let f = open();
    let mut e = f.get(r);
    e.action = "refund_recorded".into();
    f.put(r, &e);
    f.rehash_from(r);
    assert_broken(
        "detail moved to another action",
        &f.verify(&[]),
        cid,
        r - 1,
        &format!("entry {r}: its reported detail is not signed by its actor"),
    );
    // ... or attributed to someone else.
    let f = open();
    let mut e = f.get(r);
    e.actor = Some(h.team.owner.account_id);
    f.put(r, &e);
    f.rehash_from(r);
    assert_broken(
        "detail attributed to the owner",
        &f.verify(&[]),
        cid,
        r - 1,
        &format!("entry {r}: its reported detail is not signed by its actor"),
    );

    // The stored checkpoint's signature altered: it is not trusted, and that is reported.
    let f = open();
    f.edit_checkpoint(cp, |c| c.signature.0[0] ^= 1);
    assert_broken(
        "checkpoint signature",
        &f.verify(&[]),
        cid,
        0,
        &format!("checkpoint at entry {cp} has a bad signature"),
    );
    // A forger moving the checkpoint to the forged head (keeping its signature) is caught too.
    let f = open();
    f.edit_checkpoint(cp, |c| c.head_hash.0[0] ^= 1);
    assert_broken(
        "checkpoint hash replaced",
        &f.verify(&[]),
        cid,
        0,
        &format!("checkpoint at entry {cp} has a bad signature"),
    );
}

// ---- 2. server-side entries -----------------------------------------------------------------------

/// Reads the entries appended since the last call and checks each expected one is there exactly
/// once: (action, actor, target, count when it matters).
struct Tail<'a> {
    c: &'a Client,
    clinic_id: Uuid,
    seen: u64,
}

type Want<'a> = (&'a str, Uuid, Option<Uuid>, Option<u32>);

impl Tail<'_> {
    #[track_caller]
    fn expect(&mut self, what: &str, wants: &[Want]) -> Vec<AuditEntry> {
        let new: Vec<AuditEntry> = audit_all(self.c, self.clinic_id)
            .into_iter()
            .filter(|e| e.seq > self.seen)
            .collect();
        for &(action, actor, target, count) in wants {
            let found: Vec<&AuditEntry> = new
                .iter()
                .filter(|e| {
                    e.action == action
                        && e.actor == Some(actor)
                        && e.target == target
                        && count.map_or(true, |c| e.count == c)
                })
                .collect();
            assert_eq!(
                found.len(),
                1,
                "{what}: one `{action}` by {actor} on {target:?} (count {count:?}) expected \
                 among the new entries:\n{new:#?}"
            );
            let e = found[0];
            assert_eq!(e.clinic_id, Some(self.clinic_id));
            assert_eq!(e.outcome, "ok", "{e:?}");
            assert!(e.ip.is_some(), "the caller's address is recorded: {e:?}");
            assert!((e.at - unix_now()).abs() < 120, "{e:?}");
        }
        if let Some(last) = new.last() {
            self.seen = last.seq;
        }
        new
    }
}

#[test]
fn every_server_action_leaves_its_entry() {
    let mut t = team("Traceable Eyes");
    let cid = t.clinic.id;
    let owner = t.owner.account_id;
    let mut tail = Tail {
        c: &t.oc,
        clinic_id: cid,
        seen: 0,
    };
    tail.expect(
        "clinic created",
        &[("clinic_created", owner, Some(cid), None)],
    );

    // A failed login (wrong password, reported by the client) on the owner's account.
    let other = t.server.client();
    assert!(matches!(
        other.login(&t.owner_name, "lilac otter wrong password 77"),
        Err(LoginError::Crypto(_))
    ));

    // Writes: one record names it; a batch counts them.
    let p1 = Uuid::new_v4();
    t.oc.put_patient(&t.owner, &t.clinic, p1, 0, &sample_patient(1))
        .unwrap();
    tail.expect(
        "single write",
        &[("records_written", owner, Some(p1), Some(1))],
    );
    let (p2, p3) = (Uuid::new_v4(), Uuid::new_v4());
    t.oc.batch(
        cid,
        vec![
            patient_write(&t.owner, cid, &t.clinic.keyring, p2, 0, &sample_patient(2)),
            patient_write(&t.owner, cid, &t.clinic.keyring, p3, 0, &sample_patient(3)),
        ],
    )
    .unwrap();
    tail.expect("batch write", &[("records_written", owner, None, Some(2))]);

    // Reads: one record, a chart opened, the list and the feed.
    t.oc.get_record(cid, p1).unwrap();
    tail.expect("record read", &[("records_read", owner, Some(p1), Some(1))]);
    let note = clinical_note_write(&t.owner, cid, &t.clinic.keyring, p2, "IOP 21/22");
    t.oc.batch(cid, vec![note.clone()]).unwrap();
    tail.expect(
        "note written",
        &[(
            "records_written",
            owner,
            Some(note.envelope.record_id),
            Some(1),
        )],
    );
    let got =
        t.oc.read_records(cid, &[p2, note.envelope.record_id])
            .unwrap();
    assert_eq!(got.len(), 2);
    tail.expect("chart opened", &[("chart_read", owner, Some(p2), Some(2))]);
    t.oc.list_records(cid, None, Some(100)).unwrap();
    tail.expect("records listed", &[("records_read", owner, None, Some(4))]);
    t.oc.changes(cid, 0, 100).unwrap();
    tail.expect("feed pulled", &[("records_read", owner, None, Some(4))]);

    // Files: the completed upload, then its download.
    let key = t.clinic.keyring.current(Compartment::Clinical).unwrap();
    let file = FileUploadStart {
        file_id: Uuid::new_v4(),
        chart_id: p1,
        compartment: Compartment::Clinical,
        key_id: key.key_id,
        epoch: key.epoch,
        chunk_count: 1,
        chunk_size: 64,
        total_size: 64,
    };
    t.oc.start_file(cid, &file).unwrap();
    assert_eq!(
        t.oc.put_file_chunk(cid, file.file_id, 0, &[7u8; 64]).status,
        204
    );
    assert_eq!(t.oc.complete_file(cid, file.file_id).status, 204);
    tail.expect(
        "file uploaded",
        &[("file_uploaded", owner, Some(file.file_id), None)],
    );
    assert_eq!(
        t.oc.get_file_chunk(cid, file.file_id, 0).body,
        vec![7u8; 64]
    );
    tail.expect(
        "file read",
        &[("file_read", owner, Some(file.file_id), None)],
    );

    // The team: invited, accepted, admitted; role changed; removed; keys rotated each time.
    let mc = t.server.client();
    let member = mc.signup(&unique_username("member"), &strong_password());
    let m = member.account_id;
    let link = t.oc.invite(&t.owner, &t.clinic, Role::FrontDesk).unwrap();
    let inv = Some(link.invitation_id);
    tail.expect("invitation", &[("invitation_created", owner, inv, None)]);
    mc.accept(&member, &link).unwrap();
    tail.expect("accepted", &[("invitation_accepted", m, inv, None)]);
    t.oc.admit(&t.owner, &t.clinic, link.invitation_id)
        .unwrap()
        .unwrap();
    tail.expect("member added", &[("member_joined", owner, Some(m), None)]);
    let (req, keyring) = t.oc.rotation_request(
        &t.owner,
        &t.clinic,
        RosterChange::ChangeRole {
            member: m,
            role: Role::Optometrist,
        },
    );
    t.oc.rotate(cid, &req).unwrap();
    t.clinic.keyring = keyring;
    tail.expect(
        "role changed",
        &[
            ("role_changed", owner, Some(m), None),
            ("keys_rotated", owner, None, Some(2)),
        ],
    );
    let (req, keyring) =
        t.oc.rotation_request(&t.owner, &t.clinic, RosterChange::Remove { member: m });
    t.oc.rotate(cid, &req).unwrap();
    t.clinic.keyring = keyring;
    tail.expect(
        "member removed",
        &[
            ("member_removed", owner, Some(m), None),
            ("keys_rotated", owner, None, Some(3)),
        ],
    );
    // The owner writes with the new keys: the epoch moved on.
    t.oc.put_patient(&t.owner, &t.clinic, p1, 1, &sample_patient(11))
        .unwrap();
    tail.expect(
        "write after rotation",
        &[("records_written", owner, Some(p1), Some(1))],
    );
    // A record's history (both versions).
    let raw =
        t.oc.get(&format!("/api/clinics/{cid}/records/{p1}/versions"));
    assert_eq!(raw.status, 200, "{raw:?}");
    assert_eq!(raw.parse::<RecordHistory>().versions.len(), 2);
    tail.expect(
        "history read",
        &[("record_history_read", owner, Some(p1), Some(2))],
    );

    // Documents made in the browser.
    for (kind, chart) in [
        (DocumentKind::SpectacleRx, Some(p1)),
        (DocumentKind::ReferralLetter, Some(p2)),
        (DocumentKind::RemindersCsv, None),
    ] {
        let raw = t.oc.post(
            &format!("/api/clinics/{cid}/documents"),
            &DocumentGenerated {
                document: kind,
                chart_id: chart,
                detail: None,
            },
        );
        assert_eq!(raw.status, 204, "{raw:?}");
        tail.expect("document", &[(kind.action(), owner, chart, Some(1))]);
    }

    // The audit key and a checkpoint.
    let (_, public) = set_up_audit_key(&t.oc, &t.owner, cid);
    tail.expect(
        "audit key",
        &[("audit_key_created", owner, Some(public.key_id), None)],
    );
    let cp = sign_head(&t.oc, &t.owner, cid);
    let new = tail.expect("checkpoint", &[("audit_checkpoint", owner, None, None)]);
    assert_eq!(new[0].seq, cp.seq + 1, "the checkpoint's entry follows it");

    // A stranger's attempt at the log: refused, and logged to the stranger's own account log.
    let sc = t.server.client();
    let stranger = sc.signup(&unique_username("stranger"), &strong_password());
    audit_raw(&sc, cid, "").expect_error(&[404]);
    assert!(
        tail.expect("stranger", &[]).is_empty(),
        "nothing of the stranger's in the clinic's log"
    );
    t.oc.logout().unwrap();

    // The account-level log (no endpoint reads it): in the database, checked by the tool.
    t.server.stop();
    let v = verify_audit(&t.server.data_dir, &[]);
    assert_eq!(v.code, Some(0), "{v}");
    assert!(
        v.stdout.contains("account log: ") && v.stdout.contains("all intact"),
        "{v}"
    );
    let accounts = Forger::open_copy(&t.server.data_dir, None).entries();
    let find = |action: &str, actor: Uuid| -> Vec<&AuditEntry> {
        accounts
            .iter()
            .filter(|e| e.action == action && e.actor == Some(actor))
            .collect()
    };
    let failed = find("login_failed", owner);
    assert_eq!(failed.len(), 1, "one failed login: {accounts:#?}");
    assert_eq!(
        (failed[0].outcome.as_str(), failed[0].target),
        ("denied", Some(owner))
    );
    let ok = find("login_ok", owner);
    assert_eq!(ok.len(), 1, "one successful login: {accounts:#?}");
    assert_eq!(ok[0].outcome, "ok");
    assert!(ok[0].seq < failed[0].seq, "the signup's login came first");
    assert_eq!(find("login_ok", m).len(), 1);
    assert_eq!(find("account_created", owner).len(), 1);
    assert_eq!(find("logout", owner).len(), 1);
    let denied = find("access_denied", stranger.account_id);
    assert_eq!(denied.len(), 1, "{accounts:#?}");
    assert_eq!(
        (denied[0].outcome.as_str(), denied[0].target),
        ("denied", Some(cid))
    );
    assert!(accounts.iter().all(|e| e.clinic_id.is_none()));
}

// ---- 3. client-reported entries -----------------------------------------------------------------

#[test]
fn reported_details_are_sealed_to_the_owners_and_signed_by_their_authors() {
    let mut t = team("Sealed Ledger Optics");
    let cid = t.clinic.id;
    let chart = Uuid::new_v4();
    t.oc.put_patient(&t.owner, &t.clinic, chart, 0, &sample_patient(4))
        .unwrap();
    let (dc, desk, _) = join(&t, "desk", Role::FrontDesk);
    let (doc_c, doc, doc_clinic) = join(&t, "doc", Role::Optometrist);
    let canary = format!("CANARY-{}", random_hex(24));

    // Before the owner sets up the key, nothing can be reported.
    let early = AuditKey::generate().public(cid, t.owner.account_id, &t.owner.keys, unix_now());
    let d = seal(&desk, &early, "payment_recorded", Some(chart), &detail("x"));
    expect_code(
        &report(&dc, cid, ReportedAction::PaymentRecorded, Some(chart), d),
        409,
        "no_audit_key",
    );
    assert_eq!(
        audit_key_view(&dc, cid),
        AuditKeyView {
            public: None,
            wrapped: None,
            wrapped_to: vec![],
        }
    );

    // Only an owner sets it up; the front desk cannot.
    let (_, desk_setup) = audit_key_setup(&desk, cid);
    dc.put(&format!("/api/clinics/{cid}/audit/key"), &desk_setup)
        .expect_error(&[403]);
    // A key whose public half is signed by someone else is refused.
    let (_, mut forged) = audit_key_setup(&t.owner, cid);
    forged.public.signature = B64(doc
        .keys
        .sign(&optovault_shared::audit::audit_key_signing_input(
            &forged.public,
        ))
        .to_vec());
    expect_code(
        &t.oc.put(&format!("/api/clinics/{cid}/audit/key"), &forged),
        400,
        "bad_signature",
    );
    let (_, public) = set_up_audit_key(&t.oc, &t.owner, cid);
    // Once: a second key is refused.
    let (_, second) = audit_key_setup(&t.owner, cid);
    expect_code(
        &t.oc.put(&format!("/api/clinics/{cid}/audit/key"), &second),
        409,
        "audit_key_exists",
    );

    // Members see the signed public half, not the wrapped secret.
    let desk_view = audit_key_view(&dc, cid);
    assert_eq!(desk_view.public.as_ref(), Some(&public));
    assert!(desk_view.wrapped.is_none());
    let desk_public = desk_view.public.expect("the public half");
    assert!(crypto::verify_audit_key(&desk_public, &t.owner.ed25519()));

    // The front desk records a payment, with the canary in its detail.
    let payment = detail(&format!("Payment of 120.00 recorded {canary}"));
    let d = seal(
        &desk,
        &desk_public,
        "payment_recorded",
        Some(chart),
        &payment,
    );
    let raw = report(
        &dc,
        cid,
        ReportedAction::PaymentRecorded,
        Some(chart),
        d.clone(),
    );
    assert_eq!(raw.status, 200, "{raw:?}");
    let payment_seq = raw.parse::<AppendedEntry>().seq;

    // The optometrist changes a record, reported with the batch that writes it.
    let note = clinical_note_write(&doc, cid, &doc_clinic.keyring, chart, "Amended plan");
    let note_id = note.envelope.record_id;
    let change = AuditDetail {
        summary: format!("Plan amended {canary}"),
        patient: None,
        changes: vec![FieldChange {
            field: "plan".into(),
            from: "Recall in 12 months".into(),
            to: format!("Recall in 6 months {canary}"),
        }],
    };
    let rd = seal(&doc, &public, "record_changed", Some(chart), &change);
    let raw = doc_c.post(
        &format!("/api/clinics/{cid}/records"),
        &BatchWriteRequest {
            writes: vec![note],
            report: Some(ReportedEvent {
                action: ReportedAction::RecordChanged,
                target: Some(chart),
                detail: rd,
            }),
        },
    );
    assert_eq!(raw.status, 200, "{raw:?}");

    // A document with its detail.
    let rx = detail(&format!("Spectacle Rx printed {canary}"));
    let dd = seal(&doc, &public, "document_spectacle_rx", Some(chart), &rx);
    let raw = doc_c.post(
        &format!("/api/clinics/{cid}/documents"),
        &DocumentGenerated {
            document: DocumentKind::SpectacleRx,
            chart_id: Some(chart),
            detail: Some(dd),
        },
    );
    assert_eq!(raw.status, 204, "{raw:?}");

    // Refused: a detail signed by someone else, moved to another target or category, sealed to
    // another key, malformed. None of them leaves an entry.
    let head = head_of(&t.oc, cid);
    let by_doc = seal(&doc, &public, "payment_recorded", Some(chart), &detail("x"));
    expect_code(
        &report(
            &dc,
            cid,
            ReportedAction::PaymentRecorded,
            Some(chart),
            by_doc,
        ),
        400,
        "bad_signature",
    );
    let other_chart = Uuid::new_v4();
    expect_code(
        &report(
            &dc,
            cid,
            ReportedAction::PaymentRecorded,
            Some(other_chart),
            d.clone(),
        ),
        400,
        "bad_signature",
    );
    expect_code(
        &report(&dc, cid, ReportedAction::PaymentRecorded, None, d.clone()),
        400,
        "bad_signature",
    );
    expect_code(
        &report(
            &dc,
            cid,
            ReportedAction::RefundRecorded,
            Some(chart),
            d.clone(),
        ),
        400,
        "bad_signature",
    );
    let mut altered = d.clone();
    altered.ciphertext.0[0] ^= 1;
    expect_code(
        &report(
            &dc,
            cid,
            ReportedAction::PaymentRecorded,
            Some(chart),
            altered,
        ),
        400,
        "bad_signature",
    );
    let elsewhere = seal(&desk, &early, "payment_recorded", Some(chart), &detail("x"));
    expect_code(
        &report(
            &dc,
            cid,
            ReportedAction::PaymentRecorded,
            Some(chart),
            elsewhere,
        ),
        400,
        "unknown_audit_key",
    );
    let mut short = d.clone();
    short.signature = B64(vec![0; 10]);
    expect_code(
        &report(
            &dc,
            cid,
            ReportedAction::PaymentRecorded,
            Some(chart),
            short,
        ),
        400,
        "invalid_detail",
    );
    // A batch whose report fails writes nothing either.
    let lost = Uuid::new_v4();
    let w = patient_write(&desk, cid, &t.clinic.keyring, lost, 0, &sample_patient(5));
    let bad = seal(&doc, &public, "patient_updated", Some(lost), &detail("x"));
    expect_code(
        &dc.post(
            &format!("/api/clinics/{cid}/records"),
            &BatchWriteRequest {
                writes: vec![w],
                report: Some(ReportedEvent {
                    action: ReportedAction::PatientUpdated,
                    target: Some(lost),
                    detail: bad,
                }),
            },
        ),
        400,
        "bad_signature",
    );
    assert_eq!(
        head_of(&t.oc, cid),
        head,
        "a refused report leaves no entry"
    );
    t.oc.get(&format!("/api/clinics/{cid}/records/{lost}"))
        .expect_error(&[404]);

    // Nobody but an owner reads the log.
    for c in [&dc, &doc_c] {
        expect_code(&audit_raw(c, cid, ""), 403, "forbidden");
    }

    // The owner reads the entries, categories in the clear, and opens each detail.
    let entries = audit_all(&t.oc, cid);
    verify_chain(cid, &entries, &[]).expect("the served log verifies");
    let pay = entries
        .iter()
        .find(|e| e.seq == payment_seq)
        .expect("the payment entry");
    assert_eq!(
        (pay.action.as_str(), pay.actor, pay.target, pay.count),
        ("payment_recorded", Some(desk.account_id), Some(chart), 1)
    );
    let written = entries
        .iter()
        .find(|e| e.action == "records_written" && e.target == Some(note_id))
        .expect("the note's write");
    let changed = entries
        .iter()
        .find(|e| e.action == "record_changed")
        .expect("the reported change");
    assert_eq!(
        (changed.actor, changed.target, changed.seq),
        (Some(doc.account_id), Some(chart), written.seq + 1),
        "the reported entry is appended with the write it describes"
    );
    let printed = entries
        .iter()
        .find(|e| e.action == "document_spectacle_rx")
        .expect("the document");
    let owner_view = audit_key_view(&t.oc, cid);
    let wrapped = owner_view
        .wrapped
        .as_ref()
        .expect("the owner's wrapped key");
    assert_eq!(wrapped.recipient, t.owner.account_id);
    let key = AuditKey::unwrap(
        &cid,
        owner_view.public.as_ref().expect("the public half"),
        wrapped,
        &t.owner.account_id,
        &t.owner.keys,
    )
    .expect("the owner unwraps the audit key");
    for (e, author, want) in [
        (pay, &desk, &payment),
        (changed, &doc, &change),
        (printed, &doc, &rx),
    ] {
        let d = e.detail.as_ref().expect("a sealed detail");
        let context = detail_context(
            cid,
            d.key_id,
            d.event_id,
            e.actor.unwrap(),
            &e.action,
            e.target,
        );
        assert!(crypto::verify_reported_detail(
            &context,
            d,
            &author.ed25519()
        ));
        assert_eq!(&key.open_detail(&context, d).unwrap(), want);
        assert!(key
            .open_detail(&context, d)
            .unwrap()
            .summary
            .contains(&canary));
        // Shown under another category, it does not open.
        let moved = detail_context(
            cid,
            d.key_id,
            d.event_id,
            e.actor.unwrap(),
            "refund_recorded",
            e.target,
        );
        assert!(key.open_detail(&moved, d).is_err());
    }

    // The canary is nowhere in the clear: not the API's JSON ...
    let needles = vec![("canary".to_string(), needle_variants(&canary))];
    let raw = audit_raw(&t.oc, cid, "limit=1000");
    assert_eq!(raw.status, 200);
    for (label, needle) in &needles[0].1 {
        assert!(
            find_bytes(&raw.body, needle).is_none(),
            "the canary ({label}) is in GET /audit"
        );
    }
    // ... nor the operator's listing, which still shows the categories ...
    t.server.stop();
    let v = verify_audit(&t.server.data_dir, &["--list"]);
    assert_eq!(v.code, Some(0), "{v}");
    assert!(
        !v.stdout.contains(&canary) && !v.stderr.contains(&canary),
        "{v}"
    );
    for (label, needle) in &needles[0].1 {
        assert!(
            find_bytes(v.stdout.as_bytes(), needle).is_none(),
            "the canary ({label}) is in the listing"
        );
    }
    let listed: Vec<&str> = v
        .stdout
        .lines()
        .filter(|l| l.contains("[sealed detail]"))
        .collect();
    assert_eq!(listed.len(), 3, "{v}");
    assert!(
        listed[0].contains("payment_recorded") && listed[0].contains(&desk.account_id.to_string())
    );
    assert!(listed[1].contains("record_changed"));
    assert!(listed[2].contains("document_spectacle_rx"));
    // ... nor any file of the database.
    let hits = scan_files(&all_files(&t.server.data_dir), &needles);
    assert!(
        hits.is_empty(),
        "the canary is in the database files: {hits:?}"
    );
}

fn find_bytes(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(haystack, needle)
}

// ---- 4. checkpoints -----------------------------------------------------------------------------

#[test]
fn the_server_checks_checkpoints_before_storing_them() {
    let t = team("Signed Head Optics");
    let cid = t.clinic.id;
    for i in 0..3 {
        t.oc.put_patient(&t.owner, &t.clinic, Uuid::new_v4(), 0, &sample_patient(i))
            .unwrap();
    }
    let (dc, desk, _) = join(&t, "desk", Role::FrontDesk);
    let entries = audit_all(&t.oc, cid);
    let head = entries.last().unwrap();
    let before = &entries[entries.len() - 2];
    let sign = |seq: u64, hash: &B64, signer: &Session, keys: &UserKeys| {
        crypto::sign_checkpoint(cid, seq, h32(hash), unix_now(), signer.account_id, keys)
    };

    // Not the entry's hash; past the end of the log.
    expect_code(
        &post_checkpoint(
            &t.oc,
            cid,
            &sign(head.seq, &before.hash, &t.owner, &t.owner.keys),
        ),
        409,
        "checkpoint_mismatch",
    );
    expect_code(
        &post_checkpoint(
            &t.oc,
            cid,
            &sign(head.seq + 3, &head.hash, &t.owner, &t.owner.keys),
        ),
        409,
        "checkpoint_mismatch",
    );
    // Signed by another key, or changed after signing.
    expect_code(
        &post_checkpoint(
            &t.oc,
            cid,
            &sign(head.seq, &head.hash, &t.owner, &UserKeys::generate()),
        ),
        400,
        "bad_signature",
    );
    expect_code(
        &post_checkpoint(
            &t.oc,
            cid,
            &sign(head.seq, &head.hash, &t.owner, &desk.keys),
        ),
        400,
        "bad_signature",
    );
    let mut moved = sign(before.seq, &before.hash, &t.owner, &t.owner.keys);
    moved.seq = head.seq;
    moved.head_hash = head.hash.clone();
    expect_code(&post_checkpoint(&t.oc, cid, &moved), 400, "bad_signature");
    // A non-owner, with its own valid signature; an owner posting someone else's.
    let desks = sign(head.seq, &head.hash, &desk, &desk.keys);
    expect_code(&post_checkpoint(&dc, cid, &desks), 403, "forbidden");
    post_checkpoint(&t.oc, cid, &desks).expect_error(&[400]);
    // A stranger.
    let sc = t.server.client();
    sc.signup(&unique_username("stranger"), &strong_password());
    post_checkpoint(
        &sc,
        cid,
        &sign(head.seq, &head.hash, &t.owner, &t.owner.keys),
    )
    .expect_error(&[404]);
    // Nothing refused was stored or logged.
    assert!(checkpoints(&t.oc, cid).is_empty());
    assert_eq!(audit_all(&t.oc, cid), entries);

    // The owner's checkpoint over the head: stored, listed to members, logged.
    let cp = sign(head.seq, &head.hash, &t.owner, &t.owner.keys);
    assert_eq!(post_checkpoint(&t.oc, cid, &cp).status, 204);
    assert_eq!(checkpoints(&dc, cid), vec![cp.clone()]);
    assert!(crypto::verify_checkpoint(&cp, &t.owner.ed25519()));
    let after = audit_all(&t.oc, cid);
    let logged = after.last().unwrap();
    assert_eq!(
        (logged.seq, logged.action.as_str(), logged.actor),
        (cp.seq + 1, "audit_checkpoint", Some(t.owner.account_id))
    );
    // The same seq again, or an earlier one, is stale.
    let again = sign(head.seq, &head.hash, &t.owner, &t.owner.keys);
    expect_code(
        &post_checkpoint(&t.oc, cid, &again),
        409,
        "checkpoint_stale",
    );
    expect_code(
        &post_checkpoint(
            &t.oc,
            cid,
            &sign(before.seq, &before.hash, &t.owner, &t.owner.keys),
        ),
        409,
        "checkpoint_stale",
    );
    assert_eq!(checkpoints(&t.oc, cid).len(), 1);
    // A later one is fine; the log verifies against both.
    let cp2 = sign(logged.seq, &logged.hash, &t.owner, &t.owner.keys);
    assert_eq!(post_checkpoint(&t.oc, cid, &cp2).status, 204);
    let cps = checkpoints(&t.oc, cid);
    assert_eq!(cps, vec![cp, cp2]);
    let all = audit_all(&t.oc, cid);
    assert_eq!(
        verify_chain(cid, &all, &cps).unwrap().head.seq,
        all.last().unwrap().seq
    );
}

// ---- 5. filters -----------------------------------------------------------------------------------

#[test]
fn the_owner_filters_the_log_by_actor_target_action_and_time() {
    let t = team("Filtered Optics");
    let cid = t.clinic.id;
    let (p1, p2) = (Uuid::new_v4(), Uuid::new_v4());
    t.oc.put_patient(&t.owner, &t.clinic, p1, 0, &sample_patient(1))
        .unwrap();
    t.oc.put_patient(&t.owner, &t.clinic, p2, 0, &sample_patient(2))
        .unwrap();
    let (dc, desk, _) = join(&t, "desk", Role::FrontDesk);
    dc.get_record(cid, p1).unwrap();
    // The next entries are at a later second.
    let first = audit_all(&t.oc, cid);
    let last_at = first.last().unwrap().at;
    while unix_now() <= last_at {
        std::thread::sleep(Duration::from_millis(100));
    }
    dc.get_record(cid, p2).unwrap();
    dc.get_record(cid, p1).unwrap();
    t.oc.get_record(cid, p2).unwrap();
    let raw = dc.post(
        &format!("/api/clinics/{cid}/documents"),
        &DocumentGenerated {
            document: DocumentKind::ContactLensRx,
            chart_id: Some(p1),
            detail: None,
        },
    );
    assert_eq!(raw.status, 204);

    let all = audit_all(&t.oc, cid);
    let later = all.iter().find(|e| e.at > last_at).unwrap().at;
    #[track_caller]
    fn check(
        c: &Client,
        cid: Uuid,
        all: &[AuditEntry],
        query: &str,
        keep: impl Fn(&AuditEntry) -> bool,
    ) {
        let want: Vec<AuditEntry> = all.iter().filter(|e| keep(e)).cloned().collect();
        assert!(
            !want.is_empty() && want.len() < all.len(),
            "`{query}` must select some entries but not all"
        );
        assert_eq!(audit_paged(c, cid, query, 1000), want, "{query}");
        // Paged by one, the same entries.
        assert_eq!(audit_paged(c, cid, query, 1), want, "{query}, pages of 1");
    }
    let desk_id = desk.account_id;
    check(&t.oc, cid, &all, &format!("actor={desk_id}"), |e| {
        e.actor == Some(desk_id)
    });
    check(&t.oc, cid, &all, &format!("target={p1}"), |e| {
        e.target == Some(p1)
    });
    check(&t.oc, cid, &all, "action=records_read", |e| {
        e.action == "records_read"
    });
    check(&t.oc, cid, &all, &format!("from={later}"), |e| {
        e.at >= later
    });
    check(&t.oc, cid, &all, &format!("to={later}"), |e| e.at < later);
    check(
        &t.oc,
        cid,
        &all,
        &format!("actor={desk_id}&action=records_read&target={p1}&from={later}"),
        |e| {
            e.actor == Some(desk_id)
                && e.action == "records_read"
                && e.target == Some(p1)
                && e.at >= later
        },
    );
    check(
        &t.oc,
        cid,
        &all,
        &format!("from={}&to={later}", all[0].at),
        |e| e.at >= all[0].at && e.at < later,
    );
    // No match: an empty last page.
    let none = audit_raw(&t.oc, cid, "action=payment_recorded");
    assert_eq!(none.status, 200);
    let page: AuditPage = none.parse();
    assert!(page.entries.is_empty() && !page.more);
    assert_eq!(page.head, all.last().unwrap().seq);
    // Bad parameters.
    audit_raw(&t.oc, cid, "limit=0").expect_error(&[400]);
    audit_raw(&t.oc, cid, "actor=nobody").expect_error(&[400]);
    // The front desk cannot filter its way in.
    expect_code(
        &audit_raw(&dc, cid, &format!("actor={desk_id}")),
        403,
        "forbidden",
    );
}

/// An owner added after the audit key was made gets a copy from an owner who holds it, and can
/// then open the details; only current owners without a copy can be given one, once.
#[test]
fn an_owner_added_later_is_given_the_audit_key() {
    let t = team("Shared Key Optometry");
    let (key, public) = set_up_audit_key(&t.oc, &t.owner, t.clinic.id);
    let (dc, desk, _) = join(&t, "desk", Role::FrontDesk);
    let (c2, owner2, _) = join(&t, "owner2", Role::Owner);
    let view = audit_key_view(&c2, t.clinic.id);
    assert!(view.wrapped.is_none(), "no copy yet");
    assert_eq!(view.wrapped_to, vec![t.owner.account_id]);
    let path = format!("/api/clinics/{}/audit/key/share", t.clinic.id);
    let wrap_for = |who: &Session| {
        key.wrap_to(
            &t.clinic.id,
            who.account_id,
            who.keys.public_keys().x25519.as_slice(),
        )
        .unwrap()
    };
    // Only to owners, only by owners.
    let to_desk = AuditKeyShare {
        wrapped: vec![wrap_for(&desk)],
    };
    expect_code(&t.oc.post(&path, &to_desk), 400, "invalid_share");
    let to_owner2 = AuditKeyShare {
        wrapped: vec![wrap_for(&owner2)],
    };
    expect_code(&dc.post(&path, &to_owner2), 403, "forbidden");
    let before = head_of(&t.oc, t.clinic.id);
    assert_eq!(t.oc.post(&path, &to_owner2).status, 204);
    expect_code(&t.oc.post(&path, &to_owner2), 409, "audit_key_shared");
    let shared = audit_all(&t.oc, t.clinic.id)
        .into_iter()
        .filter(|e| e.seq > before && e.action == "audit_key_shared")
        .collect::<Vec<_>>();
    assert_eq!(shared.len(), 1);
    assert_eq!(shared[0].target, Some(owner2.account_id));
    // The new owner opens a detail reported before it was shared.
    let view = audit_key_view(&c2, t.clinic.id);
    let mine = AuditKey::unwrap(
        &t.clinic.id,
        view.public.as_ref().unwrap(),
        view.wrapped.as_ref().unwrap(),
        &owner2.account_id,
        &owner2.keys,
    )
    .unwrap();
    assert_eq!(mine.public_key(), public.public_key.0);
}

//! Backups proven by restoring them, against the real server binary and its commands:
//!
//! - a restore drill: a populated clinic is backed up, restored into a new directory, a second
//!   server started on it answers every API request exactly as the first one (same ids,
//!   versions, change sequences, envelopes, file bytes, roster, audit chain), and the old
//!   session and password both work there;
//! - `backup` while the server serves writes: the snapshot verifies, and no all-or-nothing
//!   batch is ever torn in it;
//! - a damaged file (flipped bytes, truncation) fails `verify` with the byte offset, and
//!   `restore` refuses it and leaves nothing behind; `restore` never overwrites a directory;
//! - the scheduled job: backup, verify, copy to a second location, retention, the audit entry,
//!   `/api/health` and the owners' checklist.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use optovault_shared::wire::*;
use optovault_shared::{archive, clinic_export, Compartment};
use optovault_tests::*;
use uuid::Uuid;

fn cli(data_dir: Option<&Path>, args: &[&str]) -> Output {
    let mut cmd = Command::new(server_bin("debug"));
    if let Some(d) = data_dir {
        cmd.arg("--data-dir").arg(d);
    }
    cmd.args(args).output().expect("run optovault-server")
}

/// `optovault-server restore FILE --into DIR [extra…]`.
fn restore(file: &Path, into: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "restore",
        file.to_str().unwrap(),
        "--into",
        into.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    cli(None, &args)
}

/// `optovault-server --data-dir DIR backup --out FILE` (through the server's socket if it runs).
fn backup(data_dir: &Path, out: &Path) -> Output {
    cli(Some(data_dir), &["backup", "--out", out.to_str().unwrap()])
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

struct Clinic1 {
    server: TestServer,
    c: Client,
    owner: Session,
    owner_name: String,
    password: String,
    clinic: Clinic,
    records: Vec<Uuid>,
    file_id: Uuid,
    chunk_count: u32,
    /// The optometrist (none in `populated_with`).
    member: Option<Session>,
}

/// A clinic with a second member, patients (some updated twice), a deleted record, an encrypted
/// file and a pending invitation.
fn populated() -> Clinic1 {
    let server = TestServer::start();
    let c = server.client();
    let owner_name = unique_username("owner");
    let password = strong_password();
    let owner = c.signup(&owner_name, &password);
    let clinic = c.create_clinic(&owner, "Restore Drill Optics").unwrap();
    // A second member, admitted with their role.
    let mc = server.client();
    let ms = mc.signup(&unique_username("optom"), &strong_password());
    let link = c.invite(&owner, &clinic, Role::Optometrist).unwrap();
    mc.accept(&ms, &link).unwrap();
    c.admit(&owner, &clinic, link.invitation_id)
        .unwrap()
        .unwrap();
    c.invite(&owner, &clinic, Role::FrontDesk).unwrap();
    let mut records = Vec::new();
    for i in 0..30 {
        let id = Uuid::new_v4();
        c.put_patient(&owner, &clinic, id, 0, &sample_patient(i))
            .unwrap();
        records.push(id);
    }
    for (n, id) in records.iter().take(10).enumerate() {
        c.put_patient(&owner, &clinic, *id, 1, &sample_patient(100 + n))
            .unwrap();
        c.put_patient(&owner, &clinic, *id, 2, &sample_patient(200 + n))
            .unwrap();
    }
    // A deletion: a signed tombstone as version 2 of record 20.
    let tomb = optovault_shared::crypto::seal_tombstone(
        optovault_shared::crypto::RecordSlot {
            clinic_id: clinic.id,
            chart_id: records[20],
            record_id: records[20],
            version: 2,
            purpose: optovault_shared::envelope::Purpose::Record,
        },
        Compartment::Demographics,
        &clinic.keyring,
        &owner.account_id,
        &owner.keys,
        &serde_json::to_vec(&sample_patient(20)).unwrap(),
    )
    .unwrap();
    c.batch(
        clinic.id,
        vec![RecordWrite {
            expected_version: 1,
            envelope: tomb,
        }],
    )
    .unwrap();
    // An encrypted file of three chunks.
    let key = clinic.keyring.current(Compartment::Clinical).unwrap();
    let parts: Vec<Vec<u8>> = (0..3)
        .map(|i| vec![i as u8 ^ 0xa5; if i == 2 { 39_000 } else { 40_000 }])
        .collect();
    let req = FileUploadStart {
        file_id: Uuid::new_v4(),
        chart_id: records[0],
        compartment: Compartment::Clinical,
        key_id: key.key_id,
        epoch: key.epoch,
        chunk_count: 3,
        chunk_size: parts[0].len() as u32,
        total_size: parts.iter().map(|p| p.len() as u64).sum(),
    };
    c.start_file(clinic.id, &req).unwrap();
    for (i, p) in parts.iter().enumerate() {
        assert_eq!(
            c.put_file_chunk(clinic.id, req.file_id, i as u32, p).status,
            204
        );
    }
    assert_eq!(c.complete_file(clinic.id, req.file_id).status, 204);
    Clinic1 {
        server,
        c,
        owner,
        owner_name,
        password,
        clinic,
        records,
        file_id: req.file_id,
        chunk_count: 3,
        member: Some(ms),
    }
}

/// Every read the owner can make of the clinic, as (path, status, body).
fn answers(c: &Client, t: &Clinic1) -> Vec<(String, u16, Vec<u8>)> {
    let id = t.clinic.id;
    let mut paths = vec![
        "/api/clinics".to_string(),
        format!("/api/clinics/{id}"),
        format!("/api/clinics/{id}/changes?since=0&limit=1000"),
        format!("/api/clinics/{id}/change-headers?since=0&limit=1000"),
        format!("/api/clinics/{id}/records?limit=1000"),
        format!("/api/clinics/{id}/roster"),
        format!("/api/clinics/{id}/members"),
        format!("/api/clinics/{id}/invitations"),
        format!("/api/clinics/{id}/charts"),
        format!("/api/clinics/{id}/policy"),
        format!("/api/clinics/{id}/audit/key"),
        format!("/api/clinics/{id}/audit/checkpoints"),
        format!("/api/clinics/{id}/files/{}", t.file_id),
        "/api/account/mfa".to_string(),
        "/api/account/recovery".to_string(),
    ];
    for r in &t.records {
        paths.push(format!("/api/clinics/{id}/records/{r}"));
        paths.push(format!("/api/clinics/{id}/records/{r}/versions"));
    }
    for i in 0..t.chunk_count {
        paths.push(format!("/api/clinics/{id}/files/{}/chunks/{i}", t.file_id));
    }
    paths
        .into_iter()
        .map(|p| {
            let raw = c.get(&p);
            (p, raw.status, raw.body.to_vec())
        })
        .collect()
}

/// The clinic's audit entries, and the head seq.
fn audit(c: &Client, clinic_id: Uuid) -> Vec<AuditEntry> {
    c.access_events(clinic_id, 0, 1000).unwrap().entries
}

#[test]
fn restore_drill_a_second_server_answers_exactly_as_the_first() {
    let mut t = populated();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("drill.ovbk");

    // Online: the backup goes through the running server's admin socket.
    let o = backup(&t.server.data_dir, &file);
    assert!(o.status.success(), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("backup written to"));
    // The running server made it (its log reaches the file through a pipe: allow a moment).
    let deadline = Instant::now() + Duration::from_secs(10);
    while !t
        .server
        .log_text()
        .contains("backup requested on the admin socket")
    {
        assert!(Instant::now() < deadline, "the running server made it");
        std::thread::sleep(Duration::from_millis(50));
    }
    let head = fs::read(&file).unwrap();
    assert!(head.starts_with(b"optovault-backup v1\n{\"format\":1,\"kind\":\"server-backup\","));

    // Nothing else changes the clinic's log or data between the backup and the comparison, but
    // reads add access entries: compare the log up to the backup's last entry.
    let before = audit(&t.c, t.clinic.id);
    let backup_head = before.last().unwrap().seq;
    let first = answers(&t.c, &t);
    for (p, status, _) in &first {
        assert_eq!(*status, 200, "{p} on the original server");
    }

    let o = cli(None, &["verify", file.to_str().unwrap()]);
    let report = text(&o);
    assert!(o.status.success(), "{report}");
    assert!(report.contains("VERIFIED"), "{report}");
    assert!(
        report.contains("row counts: every tree matches the header"),
        "{report}"
    );
    // 30 patients current (one a tombstone), 20 earlier versions of the 10 updated twice plus
    // the deleted one's first version.
    assert!(
        report.contains(
            "1 clinics, 30 current records, 21 earlier versions, 3 file chunks; 0 problems"
        ),
        "{report}"
    );
    assert!(
        report.contains(&format!("audit clinic {}", t.clinic.id)),
        "{report}"
    );
    assert!(report.contains("account log"), "{report}");

    let restored = dir.path().join("restored");
    let o = restore(&file, &restored, &[]);
    assert!(o.status.success(), "{}", text(&o));

    let second = TestServer::start_with(ServerOptions {
        data_dir: Some(restored.clone()),
        ..Default::default()
    });
    // The same browser (same cookie store, same session) pointed at the new server.
    let mut c2 = t.c.clone();
    c2.base = second.base.clone();
    let session = c2.get("/api/session");
    assert_eq!(
        session.status, 200,
        "the session survives a restore: {session:?}"
    );
    let again = answers(&c2, &t);
    assert_eq!(first.len(), again.len());
    for ((p, s1, b1), (_, s2, b2)) in first.iter().zip(&again) {
        assert_eq!(s1, s2, "{p}: status");
        assert!(b1 == b2, "{p}: the restored server answers differently");
    }
    let after = audit(&c2, t.clinic.id);
    let upto = |v: &[AuditEntry]| -> Vec<AuditEntry> {
        v.iter().filter(|e| e.seq <= backup_head).cloned().collect()
    };
    assert_eq!(upto(&after), upto(&before), "the audit chain is the same");
    // The password works too: the OPAQUE server setup was restored with the accounts.
    let fresh = second.client();
    fresh
        .login(&t.owner_name, &t.password)
        .expect("log in on the restored server");
    // And the restored server takes new writes after the restored sequence.
    let w = c2
        .put_patient(&t.owner, &t.clinic, Uuid::new_v4(), 0, &sample_patient(999))
        .unwrap();
    let (feed, _, _) = t.c.all_changes(t.clinic.id, 0, 1000, 10).unwrap();
    assert_eq!(w.seq, feed.iter().map(|r| r.seq).max().unwrap() + 1);

    // `restore` never overwrites: not a non-empty directory, nor one a server runs on.
    let o = restore(&file, &restored, &[]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("is not empty"), "{}", text(&o));
    let o = restore(&file, &restored, &["--replace"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("stop its server first"), "{}", text(&o));
    drop(second);
    // Stopped, `--replace` moves the old contents aside and never deletes them.
    let o = restore(&file, &restored, &["--replace"]);
    assert!(o.status.success(), "{}", text(&o));
    let aside: Vec<PathBuf> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains("restored.replaced-"))
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");

    // Offline: with the server stopped, `backup` opens the database itself.
    t.server.stop();
    let offline = dir.path().join("offline.ovbk");
    let o = backup(&t.server.data_dir, &offline);
    assert!(o.status.success(), "{}", text(&o));
    let o = cli(None, &["verify", offline.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
}

#[test]
fn a_backup_taken_under_write_load_is_consistent() {
    let t = populated();
    let stop = Arc::new(AtomicBool::new(false));
    let acked: Arc<Mutex<Vec<Batch>>> = Default::default();
    let writers: Vec<_> = (0..3)
        .map(|w| {
            let c = t.server.client();
            let s = c.login(&t.owner_name, &t.password).unwrap();
            let clinic = t.clinic.clone();
            let (stop, acked) = (stop.clone(), acked.clone());
            std::thread::spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    // Five records in one all-or-nothing batch.
                    let ids: Vec<Uuid> = (0..5).map(|_| Uuid::new_v4()).collect();
                    let writes = ids
                        .iter()
                        .map(|id| {
                            patient_write(
                                &s,
                                clinic.id,
                                &clinic.keyring,
                                *id,
                                0,
                                &sample_patient(w * 10_000 + n),
                            )
                        })
                        .collect();
                    let r = c.batch(clinic.id, writes).unwrap();
                    let seq = r.results.iter().map(|x| x.seq).max().unwrap();
                    acked.lock().unwrap().push((ids, seq));
                    n += 1;
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for i in 0..3 {
        let before: Vec<Batch> = acked.lock().unwrap().clone();
        let file = dir.path().join(format!("load-{i}.ovbk"));
        let o = backup(&t.server.data_dir, &file);
        assert!(o.status.success(), "{}", text(&o));
        files.push((file, before));
        std::thread::sleep(Duration::from_millis(200));
    }
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    let total = acked.lock().unwrap().len();
    assert!(total >= 10, "the load wrote {total} batches");
    for (file, acked_before) in files {
        let restored = dir.path().join(format!(
            "{}.db",
            file.file_name().unwrap().to_string_lossy()
        ));
        let o = restore(&file, &restored, &[]);
        assert!(o.status.success(), "{}", text(&o));
        let server = TestServer::start_with(ServerOptions {
            data_dir: Some(restored),
            ..Default::default()
        });
        let mut c = t.c.clone();
        c.base = server.base.clone();
        let (feed, _, _) = c.all_changes(t.clinic.id, 0, 1000, 100).unwrap();
        let present: BTreeMap<Uuid, u64> =
            feed.iter().map(|r| (r.envelope.record_id, r.seq)).collect();
        let mut seqs: Vec<u64> = feed.iter().map(|r| r.seq).collect();
        seqs.sort();
        seqs.dedup();
        assert_eq!(seqs.len(), feed.len(), "a seq appears twice");
        // Every batch acknowledged before the backup started is in it, and no batch is torn.
        for (ids, _) in &acked_before {
            assert!(
                ids.iter().all(|id| present.contains_key(id)),
                "an acknowledged batch is missing"
            );
        }
        for (ids, _) in acked.lock().unwrap().iter() {
            let n = ids.iter().filter(|id| present.contains_key(id)).count();
            assert!(
                n == 0 || n == 5,
                "a batch of 5 is torn in the backup: {n} present"
            );
        }
    }
}

/// The ids of one acknowledged batch, and its highest seq.
type Batch = (Vec<Uuid>, u64);

fn flip(file: &Path, at: u64, out: &Path) {
    let mut b = fs::read(file).unwrap();
    b[at as usize] ^= 0x40;
    fs::write(out, b).unwrap();
}

#[test]
fn a_damaged_backup_fails_verify_with_its_location_and_restore_refuses_it() {
    let t = populated();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("good.ovbk");
    let o = backup(&t.server.data_dir, &file);
    assert!(o.status.success(), "{}", text(&o));
    let len = fs::metadata(&file).unwrap().len();
    let bad = dir.path().join("bad.ovbk");
    let cases: Vec<(String, Box<dyn Fn()>)> = vec![
        ("a byte of the header".into(), {
            let (f, b) = (file.clone(), bad.clone());
            Box::new(move || flip(&f, 40, &b))
        }),
        ("a byte of the first block".into(), {
            let (f, b) = (file.clone(), bad.clone());
            Box::new(move || flip(&f, 4096 + 100, &b))
        }),
        ("a byte near the end".into(), {
            let (f, b) = (file.clone(), bad.clone());
            Box::new(move || flip(&f, len - 3, &b))
        }),
        ("truncated in half".into(), {
            let (f, b) = (file.clone(), bad.clone());
            Box::new(move || {
                let bytes = fs::read(&f).unwrap();
                fs::write(&b, &bytes[..bytes.len() / 2]).unwrap();
            })
        }),
        ("the last byte cut".into(), {
            let (f, b) = (file.clone(), bad.clone());
            Box::new(move || {
                let bytes = fs::read(&f).unwrap();
                fs::write(&b, &bytes[..bytes.len() - 1]).unwrap();
            })
        }),
        ("not a backup".into(), {
            let b = bad.clone();
            Box::new(move || fs::write(&b, b"hello").unwrap())
        }),
    ];
    for (case, damage) in cases {
        damage();
        let o = cli(None, &["verify", bad.to_str().unwrap()]);
        let out = text(&o);
        assert_eq!(o.status.code(), Some(1), "{case}: {out}");
        assert!(
            out.contains("FAILED") && out.contains("byte "),
            "{case}: {out}"
        );
        let into = dir.path().join("never");
        let o = restore(&bad, &into, &[]);
        assert_eq!(o.status.code(), Some(2), "{case}: {}", text(&o));
        assert!(!into.exists(), "{case}: restore left a directory behind");
        assert!(!dir.path().join("never.restoring").exists());
    }
    // The good file still verifies.
    let o = cli(None, &["verify", file.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}", text(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["current_records"], 30);
}

fn health(c: &Client) -> serde_json::Value {
    c.get("/api/health").json().unwrap()
}

#[test]
fn scheduled_backups_are_verified_copied_pruned_logged_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let backups = dir.path().join("backups");
    let copies = dir.path().join("offsite");
    fs::create_dir_all(&backups).unwrap();
    fs::create_dir_all(&copies).unwrap();
    // Ten days of older backups (any content: retention goes by name) and a file that is not one.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    for day in 1..=10 {
        let name = backup_name(now - day * 86_400);
        fs::write(backups.join(&name), b"old").unwrap();
        fs::write(copies.join(&name), b"old").unwrap();
    }
    fs::write(backups.join("README.txt"), b"operator's notes").unwrap();
    let first_data = dir.path().join("data");
    let t = populated_with(ServerOptions {
        data_dir: Some(first_data),
        args: vec![
            "--backup-dir".into(),
            backups.to_str().unwrap().into(),
            "--backup-copy-to".into(),
            copies.to_str().unwrap().into(),
            "--backup-keep-daily".into(),
            "3".into(),
            "--backup-keep-weekly".into(),
            "0".into(),
            // The newest old backup is a day old: with a 1-hour interval, one runs at start.
            "--backup-every-hours".into(),
            "1".into(),
        ],
        ..Default::default()
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let h = loop {
        let h = health(&t.c);
        if h["backups"]["last_outcome"].is_string() {
            break h;
        }
        assert!(Instant::now() < deadline, "no backup within 60 s: {h}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(
        h["backups"]["last_outcome"],
        "verified",
        "{h}\n{}",
        t.server.log_text()
    );
    assert_eq!(h["backups"]["scheduled"], true);
    let at = h["backups"]["last_success_at"].as_i64().unwrap();
    assert!((at - now).abs() < 120, "{h}");
    let newest = backup_name(at);
    // Kept: today's new one and the two newest old days; the rest are gone in both places.
    for place in [&backups, &copies] {
        let mut names: Vec<String> = fs::read_dir(place)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        let ours: Vec<&String> = names.iter().filter(|n| n.ends_with(".ovbk")).collect();
        assert_eq!(ours.len(), 3, "{place:?}: {names:?}");
        assert!(names.contains(&newest), "{names:?}");
    }
    assert!(
        backups.join("README.txt").exists(),
        "other files are never touched"
    );
    assert_eq!(
        fs::read(backups.join(&newest)).unwrap(),
        fs::read(copies.join(&newest)).unwrap()
    );
    let o = cli(None, &["verify", copies.join(&newest).to_str().unwrap()]);
    assert!(
        o.status.success(),
        "the off-site copy verifies: {}",
        text(&o)
    );
    // The owners' checklist shows it.
    let list: SecurityChecklist =
        Client::typed(t.c.get(&format!("/api/clinics/{}/security-checklist", t.clinic.id)))
            .unwrap();
    assert_eq!(list.last_verified_backup, Some(at));
    // The server's own log records it (checked with the operator's tool once stopped).
    let mut server = t.server;
    server.stop();
    let o = cli(Some(&server.data_dir), &["verify-audit", "--list"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("backup_verified"), "{}", text(&o));

    // A second location that cannot be written: the backup is kept, the failure is loud and
    // shown, and the last success stays the earlier one.
    let blocked = dir.path().join("blocked");
    fs::write(&blocked, b"a file where a directory should be").unwrap();
    let broken = TestServer::start_with(ServerOptions {
        data_dir: Some(server.data_dir.clone()),
        args: vec![
            "--backup-dir".into(),
            dir.path().join("backups2").to_str().unwrap().into(),
            "--backup-copy-to".into(),
            blocked.join("sub").to_str().unwrap().into(),
        ],
        ..Default::default()
    });
    let c = broken.client();
    let deadline = Instant::now() + Duration::from_secs(60);
    let h = loop {
        let h = health(&c);
        if h["backups"]["last_outcome"].is_string() {
            break h;
        }
        assert!(Instant::now() < deadline, "no backup within 60 s: {h}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(h["backups"]["last_outcome"], "copy_failed", "{h}");
    assert!(h["backups"]["last_success_at"].is_null(), "{h}");
    assert!(broken.log_text().contains("BACKUP COPY FAILED"));
}

fn populated_with(opts: ServerOptions) -> Clinic1 {
    let server = TestServer::start_with(opts);
    let c = server.client();
    let owner_name = unique_username("owner");
    let password = strong_password();
    let owner = c.signup(&owner_name, &password);
    let clinic = c.create_clinic(&owner, "Scheduled Optics").unwrap();
    Clinic1 {
        server,
        c,
        member: None,
        owner,
        owner_name,
        password,
        clinic,
        records: vec![],
        file_id: Uuid::nil(),
        chunk_count: 0,
    }
}

/// The scheduler's file name for a UTC time: `optovault-YYYYMMDDTHHMMSSZ.ovbk`.
fn backup_name(at: i64) -> String {
    let o = Command::new("date")
        .args([
            "-u",
            "-d",
            &format!("@{at}"),
            "+optovault-%Y%m%dT%H%M%SZ.ovbk",
        ])
        .output()
        .unwrap();
    String::from_utf8(o.stdout).unwrap().trim().to_string()
}

// ---- the clinic's own export ----------------------------------------------------------------------

fn unzstd(packed: &[u8], len: usize) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let mut out = Vec::with_capacity(len);
    ruzstd::decoding::StreamingDecoder::new(packed)
        .map_err(|e| e.to_string())?
        .read_to_end(&mut out)
        .map_err(|e| e.to_string())?;
    Ok(out)
}

/// Every row of an export, by section, in file order.
/// A section of an export: its name and its (key, value) rows.
type Section = (String, Vec<(Vec<u8>, Vec<u8>)>);

fn read_export(bytes: &[u8]) -> (archive::Header, Vec<Section>) {
    let mut sections: Vec<Section> = Vec::new();
    let header = archive::read_archive(
        &mut std::io::Cursor::new(bytes),
        unzstd,
        |item| {
            match item {
                archive::Item::Tree(t) => sections.push((t.to_string(), vec![])),
                archive::Item::Row(k, v) => sections
                    .last_mut()
                    .unwrap()
                    .1
                    .push((k.to_vec(), v.to_vec())),
                archive::Item::BlockEnd => {}
            }
            Ok(())
        },
        |_, _| {},
    )
    .expect("the export reads and checks");
    (header, sections)
}

fn rows_of<'a>(sections: &'a [Section], name: &str) -> &'a [(Vec<u8>, Vec<u8>)] {
    &sections.iter().find(|s| s.0 == name).unwrap().1
}

#[test]
fn an_owner_exports_the_clinic_as_stored_and_nothing_of_anyone_else() {
    let t = populated();
    let id = t.clinic.id;
    // Another clinic on the same server, with a canary in its patient's name.
    let oc = t.server.client();
    let os = oc.signup(&unique_username("other"), &strong_password());
    let other = oc.create_clinic(&os, "Other Optics").unwrap();
    let mut canary = sample_patient(5);
    canary.given_name = "Zyxwvutsrq".into();
    oc.put_patient(&os, &other, Uuid::new_v4(), 0, &canary)
        .unwrap();

    let raw = t.c.get(&format!("/api/clinics/{id}/export"));
    assert_eq!(raw.status, 200, "{raw:?}");
    assert_eq!(raw.header("content-type"), Some("application/octet-stream"));
    assert_eq!(
        raw.header("content-length")
            .map(|l| l.parse::<usize>().unwrap()),
        Some(raw.body.len())
    );
    assert!(raw
        .header("content-disposition")
        .unwrap()
        .contains(&format!("optovault-clinic-{}", id.simple())));
    let (header, sections) = read_export(&raw.body);
    let names: Vec<&str> = sections.iter().map(|s| s.0.as_str()).collect();
    assert_eq!(names, optovault_shared::clinic_export::SECTIONS.to_vec());

    let info: clinic_export::ExportedClinic =
        serde_json::from_slice(&rows_of(&sections, "clinic")[0].1).unwrap();
    assert_eq!((info.clinic_id, info.exported_by), (id, t.owner.account_id));
    // Records: as the feed serves them, byte for byte after parsing.
    let (feed, _, _) = t.c.all_changes(id, 0, 1000, 10).unwrap();
    let records: Vec<StoredRecord> = rows_of(&sections, "records")
        .iter()
        .map(|r| serde_json::from_slice(&r.1).unwrap())
        .collect();
    assert_eq!(records, feed);
    assert_eq!(info.record_head, feed.iter().map(|r| r.seq).max().unwrap());
    assert_eq!(rows_of(&sections, "versions").len(), 21);
    // The owner opens a patient with the keys in the export (not the ones in memory).
    let members: Vec<clinic_export::ExportedMember> = rows_of(&sections, "members")
        .iter()
        .map(|r| serde_json::from_slice(&r.1).unwrap())
        .collect();
    assert_eq!(members.len(), 2);
    let mine = members
        .iter()
        .find(|m| m.account_id == t.owner.account_id)
        .unwrap();
    let keyring = optovault_shared::crypto::unwrap_keyring(
        &id,
        &mine.wrapped_keys,
        &t.owner.account_id,
        &t.owner.keys,
    )
    .unwrap();
    let newest = records
        .iter()
        .find(|r| r.envelope.record_id == t.records[0])
        .unwrap();
    assert_eq!(
        open_patient(&t.owner, id, &keyring, &newest.envelope).unwrap(),
        sample_patient(200)
    );
    // The roster, the audit log and the file, as the API serves them.
    let roster = t.c.roster(id).unwrap();
    let exported_roster: Vec<optovault_shared::roster::SignedRosterEntry> =
        rows_of(&sections, "roster")
            .iter()
            .map(|r| serde_json::from_slice(&r.1).unwrap())
            .collect();
    assert_eq!(exported_roster, roster.entries);
    let log = audit(&t.c, id);
    let exported_log: Vec<AuditEntry> = rows_of(&sections, "audit")
        .iter()
        .map(|r| serde_json::from_slice(&r.1).unwrap())
        .collect();
    assert_eq!(exported_log[..], log[..exported_log.len()]);
    assert!(
        log.iter()
            .any(|e| e.action == "clinic_exported" && e.actor == Some(t.owner.account_id)),
        "the export is in the audit log"
    );
    let chunks = rows_of(&sections, "file_chunks");
    assert_eq!(chunks.len(), 3);
    for (i, (k, v)) in chunks.iter().enumerate() {
        assert_eq!(k[..16], *t.file_id.as_bytes());
        assert_eq!(v[..], t.c.get_file_chunk(id, t.file_id, i as u32).body[..]);
    }
    // Accounts: public facts only, never the server's secrets about members.
    let accounts: Vec<serde_json::Value> = rows_of(&sections, "accounts")
        .iter()
        .map(|r| serde_json::from_slice(&r.1).unwrap())
        .collect();
    assert_eq!(accounts.len(), 2);
    for a in &accounts {
        let keys: Vec<&String> = a.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["account_id", "public_keys", "username"]);
    }
    assert!(
        header.trees.iter().all(|t| t.rows > 0
            || [
                "charts",
                "audit_key",
                "audit_anchor",
                "audit_checkpoints",
                "trash"
            ]
            .contains(&t.name.as_str())),
        "{header:?}"
    );
    // Nothing of the other clinic: not its id, not its owner, not its patient.
    let everything: Vec<u8> = sections
        .iter()
        .flat_map(|s| {
            s.1.iter()
                .flat_map(|(k, v)| k.iter().chain(v.iter()).copied())
        })
        .collect();
    for needle in [
        other.id.to_string().into_bytes(),
        other.id.as_bytes().to_vec(),
        os.account_id.to_string().into_bytes(),
        b"Zyxwvutsrq".to_vec(),
    ] {
        assert!(
            !everything.windows(needle.len()).any(|w| w == needle),
            "{:?} is in the export",
            String::from_utf8_lossy(&needle)
        );
    }

    // The operator's tools refuse it: it is not a server backup.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("clinic.ovbk");
    fs::write(&file, &raw.body).unwrap();
    let o = cli(None, &["verify", file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("not a server backup"), "{}", text(&o));

    // Only owners: an outsider gets what it gets for any foreign clinic.
    let stranger = t.server.client();
    stranger.signup(&unique_username("stranger"), &strong_password());
    let raw = stranger.get(&format!("/api/clinics/{id}/export"));
    assert!(matches!(raw.status, 403 | 404), "{raw:?}");
}

// ---- moving a clinic to another server -------------------------------------------------------

/// The owner's recovery kit (what the browser's account page stores).
fn recovery_kit(c: &Client, me: &Session) -> optovault_shared::crypto::RecoveryKey {
    let key = optovault_shared::crypto::RecoveryKey::generate();
    let r = c.put(
        "/api/account/recovery",
        &RecoverySetup {
            sealed_key_bundle: key.seal_bundle(&me.keys, &me.username),
            verifier_hash: optovault_shared::B64(key.verifier_hash(&me.username).to_vec()),
        },
    );
    assert_eq!(r.status, 204, "{r:?}");
    key
}

/// "Forgot password" with the recovery kit, as the browser runs it; returns the finish answer.
fn reset_with_kit(
    c: &Client,
    username: &str,
    key: &optovault_shared::crypto::RecoveryKey,
    new_password: &str,
) -> Raw {
    use optovault_shared::crypto;
    let (state, req) = crypto::registration_start(new_password).unwrap();
    let start: RecoveryStartResponse = c
        .post(
            "/api/account/recovery/start",
            &RecoveryStartRequest {
                username: username.into(),
                registration_request: optovault_shared::B64(req),
            },
        )
        .parse();
    let keys = key
        .open_bundle(&start.recovery_bundle, username, &start.public_keys)
        .unwrap();
    let (upload, export) = crypto::registration_finish(
        state,
        new_password,
        username,
        start.registration_response.as_slice(),
    )
    .unwrap();
    c.post(
        "/api/account/recovery/finish",
        &RecoveryFinishRequest {
            username: username.into(),
            verifier: optovault_shared::B64(key.verifier(username).to_vec()),
            code: None,
            recovery_code: None,
            registration_upload: optovault_shared::B64(upload),
            sealed_key_bundle: crypto::seal_key_bundle(&keys, &export, username),
        },
    )
}

/// `POST /api/clinics/import` with a signature by `signer` over `file`'s checksum (as read from
/// `signed`'s header, to sign one file and send another).
fn import(c: &Client, file: &[u8], signed: &[u8], clinic_id: Uuid, signer: &Session) -> Raw {
    use base64::Engine;
    let digest = archive::parse_header(signed)
        .unwrap()
        .content_digest()
        .unwrap();
    let sig = signer
        .keys
        .sign(&clinic_export::import_signing_input(&clinic_id, &digest));
    let sig = base64::engine::general_purpose::STANDARD
        .encode(sig)
        .replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D");
    c.post_raw(
        &format!(
            "/api/clinics/import?signer={}&signature={sig}",
            signer.account_id
        ),
        file.to_vec(),
        "application/octet-stream",
    )
}

/// Rewrites an export row by row through `edit` with fresh, valid checksums: what someone
/// with the file but no keys can make.
fn forge(bytes: &[u8], mut edit: impl FnMut(&str, &mut Vec<u8>, &mut Vec<u8>)) -> Vec<u8> {
    let compress = |raw: &[u8]| -> std::io::Result<Vec<u8>> {
        Ok(ruzstd::encoding::compress_to_vec(
            raw,
            ruzstd::encoding::CompressionLevel::Fastest,
        ))
    };
    let mut w = archive::ArchiveWriter::new(
        std::io::Cursor::new(Vec::new()),
        compress,
        "zstd",
        archive::KIND_CLINIC,
    )
    .unwrap();
    let mut section = String::new();
    archive::read_archive(
        &mut std::io::Cursor::new(bytes),
        unzstd,
        |item| {
            match item {
                archive::Item::Tree(t) => {
                    section = t.to_string();
                    w.begin_tree(t)?;
                }
                archive::Item::Row(k, v) => {
                    let (mut k, mut v) = (k.to_vec(), v.to_vec());
                    edit(&section, &mut k, &mut v);
                    w.row(&k, &v)?;
                }
                archive::Item::BlockEnd => {}
            }
            Ok(())
        },
        |_, _| {},
    )
    .unwrap();
    w.finish(0, "forger").unwrap().1.into_inner()
}

fn error_code(raw: &Raw) -> String {
    serde_json::from_slice::<serde_json::Value>(&raw.body).unwrap()["code"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn an_export_imported_into_a_fresh_server_works_there_with_the_same_members_and_keys() {
    let t = populated();
    let id = t.clinic.id;
    let member = t.member.as_ref().unwrap();
    let owner_kit = recovery_kit(&t.c, &t.owner);
    let first = answers(&t.c, &t);
    let raw = t.c.get(&format!("/api/clinics/{id}/export"));
    assert_eq!(raw.status, 200, "{raw:?}");
    let export = raw.body.to_vec();
    let (_, sections) = read_export(&export);
    let exported_log = rows_of(&sections, "audit").len() as u64;
    let log_before: Vec<AuditEntry> = audit(&t.c, id)
        .into_iter()
        .filter(|e| e.seq <= exported_log)
        .collect();
    // The owner's recovery kit travels (sealed); the optometrist has none.
    let accounts: Vec<clinic_export::ExportedAccount> = rows_of(&sections, "accounts")
        .iter()
        .map(|r| serde_json::from_slice(&r.1).unwrap())
        .collect();
    let mine = accounts
        .iter()
        .find(|a| a.account_id == t.owner.account_id)
        .unwrap();
    assert!(mine.recovery.is_some());
    assert!(accounts
        .iter()
        .all(|a| a.account_id == t.owner.account_id || a.recovery.is_none()));

    let b = TestServer::start();
    let bc = b.client();
    // Refused, with nothing left behind: the file signed by a member who is not an owner, or
    // signed for another file; a damaged file; a server backup; a forged record.
    let r = import(&bc, &export, &export, id, member);
    assert_eq!(
        (r.status, error_code(&r)),
        (403, "import_not_authorized".into()),
        "{r:?}"
    );
    let other = forge(&export, |_, _, _| {});
    let r = import(&bc, &export, &other, id, &t.owner);
    assert_eq!(
        (r.status, error_code(&r)),
        (403, "import_not_authorized".into()),
        "{r:?}"
    );
    let mut damaged = export.clone();
    let n = damaged.len();
    damaged[n - 100] ^= 0x40;
    let r = import(&bc, &damaged, &export, id, &t.owner);
    assert_eq!(
        (r.status, error_code(&r)),
        (400, "invalid_archive".into()),
        "{r:?}"
    );
    assert!(String::from_utf8_lossy(&r.body).contains("byte "), "{r:?}");
    let dir = tempfile::tempdir().unwrap();
    let server_backup = dir.path().join("server.ovbk");
    assert!(backup(&t.server.data_dir, &server_backup).status.success());
    let server_backup = fs::read(&server_backup).unwrap();
    let r = import(&bc, &server_backup, &server_backup, id, &t.owner);
    assert_eq!(
        (r.status, error_code(&r)),
        (400, "not_a_clinic_export".into()),
        "{r:?}"
    );
    let forged = forge(&export, |section, _, v| {
        if section == "records" && v.windows(8).any(|w| w == b"\"author\"") {
            let mut r: StoredRecord = serde_json::from_slice(v).unwrap();
            if r.envelope.record_id == t.records[5] {
                let mut ct = r.envelope.ciphertext.0.clone();
                ct[0] ^= 1;
                r.envelope.ciphertext = optovault_shared::B64(ct);
                *v = serde_json::to_vec(&r).unwrap();
            }
        }
    });
    let r = import(&bc, &forged, &forged, id, &t.owner);
    assert_eq!(
        (r.status, error_code(&r)),
        (400, "invalid_export".into()),
        "{r:?}"
    );
    assert!(
        String::from_utf8_lossy(&r.body).contains("signature does not verify"),
        "{r:?}"
    );

    // An audit entry edited (its hashes recomputed would break the next entry's link) and a
    // member's role changed in the roster: refused as inconsistent.
    let edited_log = forge(&export, |section, _, v| {
        if section == "audit" {
            let mut e: AuditEntry = serde_json::from_slice(v).unwrap();
            if e.seq == 3 {
                e.count += 1;
                *v = serde_json::to_vec(&e).unwrap();
            }
        }
    });
    let r = import(&bc, &edited_log, &edited_log, id, &t.owner);
    assert_eq!(
        (r.status, error_code(&r)),
        (400, "invalid_export".into()),
        "{r:?}"
    );
    assert!(
        String::from_utf8_lossy(&r.body).contains("audit log is broken at entry 3"),
        "{r:?}"
    );
    let promoted = forge(&export, |section, _, v| {
        if section == "members" {
            let mut m: clinic_export::ExportedMember = serde_json::from_slice(v).unwrap();
            if m.account_id == member.account_id {
                m.role = Role::Owner;
                *v = serde_json::to_vec(&m).unwrap();
            }
        }
    });
    let r = import(&bc, &promoted, &promoted, id, member);
    assert_eq!(
        (r.status, error_code(&r)),
        (400, "invalid_export".into()),
        "{r:?}"
    );
    assert!(
        String::from_utf8_lossy(&r.body).contains("differ from the signed roster"),
        "{r:?}"
    );

    // The honest file, signed by the owner.
    let r = import(&bc, &export, &export, id, &t.owner);
    assert_eq!(r.status, 201, "{r:?}");
    let done: ClinicImported = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(done.clinic_id, id);
    assert_eq!((done.records, done.versions, done.files), (30, 21, 1));
    assert_eq!(done.audit_entries, exported_log);
    assert_eq!(done.accounts_created, 2);
    assert_eq!(done.members_with_recovery, vec![t.owner_name.clone()]);
    assert_eq!(done.members_without_recovery, vec![member.username.clone()]);
    let r = import(&bc, &export, &export, id, &t.owner);
    assert_eq!(
        (r.status, error_code(&r)),
        (409, "clinic_exists".into()),
        "{r:?}"
    );

    // No password yet: signing in fails like a wrong password, until the recovery kit sets one.
    assert!(bc.login(&t.owner_name, &t.password).is_err());
    assert!(bc.login(&member.username, "anything at all 123").is_err());
    let new_password = strong_password();
    let r = reset_with_kit(&bc, &t.owner_name, &owner_kit, &new_password);
    assert_eq!(r.status, 204, "{r:?}");
    let owner_b = bc.login(&t.owner_name, &new_password).unwrap();
    assert_eq!(owner_b.account_id, t.owner.account_id);
    assert_eq!(owner_b.keys.public_keys(), t.owner.keys.public_keys());

    // The clinic answers as it did on the first server: records, versions, history, roster,
    // members' keys, charts, policy, audit key and the file, byte for byte. Only what is not
    // carried differs: pending invitations, and the account's own second factors and kit.
    let again = answers(&bc, &t);
    let not_carried = [
        format!("/api/clinics/{id}/invitations"),
        format!("/api/clinics/{id}/members"),
        "/api/clinics".to_string(),
        "/api/account/mfa".to_string(),
        "/api/account/recovery".to_string(),
    ];
    assert_eq!(first.len(), again.len());
    for ((p, s1, b1), (_, s2, b2)) in first.iter().zip(&again) {
        assert_eq!(s1, s2, "{p}: status");
        if !not_carried.contains(p) {
            assert!(b1 == b2, "{p}: the new server answers differently");
        }
    }
    let members: serde_json::Value = serde_json::from_slice(&again[6].2).unwrap();
    assert_eq!(members["members"].as_array().unwrap().len(), 2, "{members}");
    // The audit chain goes on: every exported entry, then the import, chained to them.
    let log = audit(&bc, id);
    assert_eq!(log[..log_before.len()], log_before[..]);
    let imported = &log[log_before.len()];
    assert_eq!(imported.action, "clinic_imported");
    assert_eq!(imported.actor, Some(t.owner.account_id));
    assert_eq!(imported.prev_hash, log_before.last().unwrap().hash);
    // The keys in the export open the patients there, and new writes follow the sequence.
    let newest: StoredRecord = bc
        .get(&format!("/api/clinics/{id}/records/{}", t.records[0]))
        .parse();
    let view = bc.join_view(&owner_b, id);
    assert_eq!(
        open_patient(&owner_b, id, &view.keyring, &newest.envelope).unwrap(),
        sample_patient(200)
    );
    let w = bc
        .put_patient(&owner_b, &view, Uuid::new_v4(), 0, &sample_patient(777))
        .unwrap();
    let (feed, _, _) = t.c.all_changes(id, 0, 1000, 10).unwrap();
    assert_eq!(w.seq, feed.iter().map(|r| r.seq).max().unwrap() + 1);
    // The new server's database checks out from the outside, audit chains included.
    drop(bc);
    let mut b = b;
    b.stop();
    let o = cli(Some(&b.data_dir), &["verify-audit"]);
    assert!(o.status.success(), "{}", text(&o));
}

// ---- moving between sled and PostgreSQL -------------------------------------------------------

/// The API answers that an import does not carry (pending invitations, the members' list with
/// their sign-in state, the account's own second factors and kit).
fn carried(p: &str, id: Uuid) -> bool {
    ![
        format!("/api/clinics/{id}/invitations"),
        format!("/api/clinics/{id}/members"),
        "/api/clinics".to_string(),
        "/api/account/mfa".to_string(),
        "/api/account/recovery".to_string(),
    ]
    .iter()
    .any(|n| n == p)
}

fn same_answers(
    a: &[(String, u16, Vec<u8>)],
    b: &[(String, u16, Vec<u8>)],
    keep: impl Fn(&str) -> bool,
    what: &str,
) {
    assert_eq!(a.len(), b.len(), "{what}");
    for ((p, s1, b1), (_, s2, b2)) in a.iter().zip(b) {
        assert_eq!(s1, s2, "{what}: {p}: status");
        if keep(p) {
            assert!(b1 == b2, "{what}: {p} answers differently");
        }
    }
}

/// Imports `export` into `to` as the owner, sets the password with the recovery kit, signs in;
/// returns the signed-in client.
fn import_and_sign_in(
    to: &TestServer,
    export: &[u8],
    t: &Clinic1,
    kit: &optovault_shared::crypto::RecoveryKey,
) -> Client {
    let c = to.client();
    let r = import(&c, export, export, t.clinic.id, &t.owner);
    assert_eq!(r.status, 201, "{r:?}");
    let password = strong_password();
    let r = reset_with_kit(&c, &t.owner_name, kit, &password);
    assert_eq!(r.status, 204, "{r:?}");
    let me = c.login(&t.owner_name, &password).unwrap();
    assert_eq!(me.account_id, t.owner.account_id);
    c
}

/// A clinic moves from a server on sled to one on PostgreSQL with its export, and from there to
/// another server on sled: each answers as the first (records, versions, history, roster,
/// members' keys, charts, file chunks, byte for byte), each audit log starts with the exported
/// one, and PostgreSQL's export holds exactly the rows sled's did (plus the log's new entries).
#[test]
fn a_clinic_moves_from_sled_to_postgres_and_back_with_its_export() {
    let Some(db) = optovault_tests::pg::pg_database("ov_move") else {
        return;
    };
    let url = db.url.clone();
    let t = populated();
    let id = t.clinic.id;
    let kit = recovery_kit(&t.c, &t.owner);
    let first = answers(&t.c, &t);
    let from_sled = t.c.get(&format!("/api/clinics/{id}/export")).body.to_vec();
    let (_, sled_sections) = read_export(&from_sled);
    let exported_log = rows_of(&sled_sections, "audit").len();
    let log_before: Vec<AuditEntry> = audit(&t.c, id)[..exported_log].to_vec();

    let pg = optovault_tests::pg::server_on_postgres(&url);
    let pc = import_and_sign_in(&pg, &from_sled, &t, &kit);
    same_answers(
        &first,
        &answers(&pc, &t),
        |p| carried(p, id),
        "sled → PostgreSQL",
    );
    let log = audit(&pc, id);
    assert_eq!(log[..exported_log], log_before[..]);
    assert_eq!(log[exported_log].action, "clinic_imported");
    assert_eq!(log[exported_log].prev_hash, log_before.last().unwrap().hash);

    // PostgreSQL's export of it: every section as sled's, the log longer by what happened here.
    let from_pg = pc.get(&format!("/api/clinics/{id}/export")).body.to_vec();
    let (_, pg_sections) = read_export(&from_pg);
    assert_eq!(
        pg_sections.iter().map(|s| &s.0).collect::<Vec<_>>(),
        sled_sections.iter().map(|s| &s.0).collect::<Vec<_>>()
    );
    for ((name, a), (_, b)) in sled_sections.iter().zip(&pg_sections) {
        match name.as_str() {
            "audit" => assert_eq!(b[..a.len()], a[..], "the log's exported entries"),
            "clinic" => {
                let strip = |v: &[u8]| {
                    let mut j: serde_json::Value = serde_json::from_slice(v).unwrap();
                    j.as_object_mut().unwrap().remove("exported_at");
                    j
                };
                assert_eq!(strip(&a[0].1), strip(&b[0].1));
            }
            _ => assert!(a == b, "section {name} differs between sled and PostgreSQL"),
        }
    }

    // And on to sled again.
    let back = TestServer::start();
    let bc = import_and_sign_in(&back, &from_pg, &t, &kit);
    same_answers(
        &first,
        &answers(&bc, &t),
        |p| carried(p, id),
        "PostgreSQL → sled",
    );
    let log_pg: Vec<AuditEntry> = audit(&pc, id);
    let exported_pg = rows_of(&pg_sections, "audit").len();
    assert_eq!(audit(&bc, id)[..exported_pg], log_pg[..exported_pg]);
    drop(back);
    let o = cli(None, &["--store", &url, "verify-audit"]);
    assert!(o.status.success(), "{}", text(&o));
}

/// The whole server moves from sled to PostgreSQL with a backup (`restore --into-store`), and
/// back (`--store … backup`, `restore --into`): every answer the same byte for byte, the same
/// session cookie and the same password work (the OPAQUE server setup travels), audit chains
/// intact, and new writes continue the sequences.
#[test]
fn a_whole_server_moves_from_sled_to_postgres_and_back_with_a_backup() {
    let Some(db) = optovault_tests::pg::pg_database("ov_move") else {
        return;
    };
    let url = db.url.clone();
    let t = populated();
    let id = t.clinic.id;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sled.ovbk");
    let o = backup(&t.server.data_dir, &file);
    assert!(o.status.success(), "{}", text(&o));
    let before = audit(&t.c, id);
    let head = before.last().unwrap().seq;
    let first = answers(&t.c, &t);

    let o = cli(
        None,
        &["restore", file.to_str().unwrap(), "--into-store", &url],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("VERIFIED"), "{}", text(&o));
    // Only into an empty database.
    let o = cli(
        None,
        &["restore", file.to_str().unwrap(), "--into-store", &url],
    );
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("not empty"), "{}", text(&o));

    let pg = optovault_tests::pg::server_on_postgres(&url);
    let mut pc = t.c.clone();
    pc.base = pg.base.clone();
    assert_eq!(pc.get("/api/session").status, 200, "the session travels");
    same_answers(&first, &answers(&pc, &t), |_| true, "sled → PostgreSQL");
    let upto = |v: Vec<AuditEntry>, n: u64| -> Vec<AuditEntry> {
        v.into_iter().filter(|e| e.seq <= n).collect()
    };
    assert_eq!(upto(audit(&pc, id), head), upto(before, head));
    pg.client()
        .login(&t.owner_name, &t.password)
        .expect("the password works on PostgreSQL");
    let w = pc
        .put_patient(&t.owner, &t.clinic, Uuid::new_v4(), 0, &sample_patient(321))
        .unwrap();
    let (feed, _, _) = t.c.all_changes(id, 0, 1000, 10).unwrap();
    assert_eq!(w.seq, feed.iter().map(|r| r.seq).max().unwrap() + 1);

    // Back: a backup of PostgreSQL (while its server runs) restores into sled.
    let file2 = dir.path().join("pg.ovbk");
    let o = cli(
        None,
        &["--store", &url, "backup", "--out", file2.to_str().unwrap()],
    );
    assert!(o.status.success(), "{}", text(&o));
    let o = cli(None, &["verify", file2.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    let report = text(&o);
    assert!(
        report.contains(
            "1 clinics, 31 current records, 21 earlier versions, 3 file chunks; 0 problems"
        ),
        "{report}"
    );
    let before = audit(&pc, id);
    let head = before.last().unwrap().seq;
    let on_pg = answers(&pc, &t);
    let restored = dir.path().join("restored");
    let o = restore(&file2, &restored, &[]);
    assert!(o.status.success(), "{}", text(&o));
    let back = TestServer::start_with(ServerOptions {
        data_dir: Some(restored),
        ..Default::default()
    });
    let mut bc = t.c.clone();
    bc.base = back.base.clone();
    same_answers(&on_pg, &answers(&bc, &t), |_| true, "PostgreSQL → sled");
    assert_eq!(upto(audit(&bc, id), head), upto(before, head));
    back.client()
        .login(&t.owner_name, &t.password)
        .expect("the password works on sled again");
    let w2 = bc
        .put_patient(&t.owner, &t.clinic, Uuid::new_v4(), 0, &sample_patient(654))
        .unwrap();
    assert_eq!(w2.seq, w.seq + 1);
}

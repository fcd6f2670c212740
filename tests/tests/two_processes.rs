//! Two server processes on one PostgreSQL database (`--store postgres://…`), as behind a load
//! balancer: a login started on one finishes on the other, clients write one clinic through both
//! at once, and afterwards both serve the same gapless change feed and the same intact audit
//! chain with every acknowledged write in it. Then one process is killed with SIGKILL during the
//! load: the other keeps serving and no acknowledged write is lost.
//!
//! Needs `OPTOVAULT_TEST_PG_URL` (a role that may create databases; `scripts/pg-cluster.sh start`
//! prints one, `scripts/test.sh` exports it). Without it the test is skipped, unless `CI` is set:
//! then it fails.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use optovault_shared::audit::{ChainPoint, ChainVerifier};
use optovault_shared::wire::*;
use optovault_shared::B64;
use optovault_tests::shared::crypto;
use optovault_tests::*;
use uuid::Uuid;

/// The same browser (cookie jar) talking to another server process.
fn through(c: &Client, server: &TestServer) -> Client {
    let mut other = c.clone();
    other.base = server.base.clone();
    other
}

/// Every entry of a clinic's audit log, page by page.
fn audit_all(c: &Client, clinic_id: Uuid) -> Vec<AuditEntry> {
    let mut out = Vec::new();
    let mut since = 0;
    loop {
        let page = c.access_events(clinic_id, since, 1000).unwrap();
        out.extend(page.entries);
        since = page.cursor;
        if !page.more {
            return out;
        }
    }
}

/// What each process serves afterwards: the same feed, gapless up to its head, holding every
/// acknowledged write at its acknowledged seq (or a later version of it), and the same chain.
fn check_both(clients: &[&Client], clinic_id: Uuid, acknowledged: &BTreeMap<Uuid, WriteResult>) {
    let mut first: Option<(Vec<StoredRecord>, Vec<AuditEntry>)> = None;
    for c in clients {
        let (changes, cursor, _) = c.all_changes(clinic_id, 0, 500, 1000).unwrap();
        let head = c.changes(clinic_id, 0, 1).unwrap().head;
        assert_eq!(cursor, head);
        // One row per record, at its latest change; the acknowledged seqs are all distinct.
        let by_record: BTreeMap<Uuid, &StoredRecord> =
            changes.iter().map(|r| (r.envelope.record_id, r)).collect();
        assert_eq!(by_record.len(), changes.len(), "each record once");
        for (id, w) in acknowledged {
            let r = by_record
                .get(id)
                .unwrap_or_else(|| panic!("acknowledged write of {id} is missing"));
            assert!(
                r.envelope.version >= w.version && r.seq >= w.seq,
                "{id}: acknowledged v{}@{}, found v{}@{}",
                w.version,
                w.seq,
                r.envelope.version,
                r.seq
            );
        }
        let mut seqs: Vec<u64> = acknowledged.values().map(|w| w.seq).collect();
        seqs.sort_unstable();
        seqs.dedup();
        assert!(seqs.last().copied().unwrap_or(0) <= head);
        let entries = audit_all(c, clinic_id);
        let mut chain = ChainVerifier::new(Some(clinic_id), ChainPoint::GENESIS, vec![]);
        for e in &entries {
            chain
                .push(e)
                .unwrap_or_else(|e| panic!("the audit chain breaks: {e}"));
        }
        chain.finish().unwrap();
        match &first {
            None => first = Some((changes, entries)),
            Some((c0, e0)) => {
                assert_eq!(
                    c0.iter().map(|r| r.seq).collect::<Vec<_>>(),
                    changes.iter().map(|r| r.seq).collect::<Vec<_>>(),
                    "both processes serve the same feed"
                );
                // Reading the log is itself logged, so the second read has more entries: the
                // first read's entries are its prefix.
                assert!(entries.len() >= e0.len());
                assert_eq!(&entries[..e0.len()], &e0[..]);
            }
        }
    }
}

#[test]
fn two_processes_share_one_database() {
    let Some(db) = pg::pg_database("ov_two") else {
        return;
    };
    let a = pg::server_on_postgres(&db.url);
    let b = pg::server_on_postgres(&db.url);
    let ca = a.client();
    let cb = through(&ca, &b);

    // OPAQUE login: started on A, finished on B (the server's half lives in the database).
    let user = unique_username("two");
    let pw = strong_password();
    ca.register(&user, &pw).unwrap();
    let (state, start) = ca.login_start(&user, &pw).unwrap();
    let (fin, export) =
        crypto::login_finish(state, &pw, &user, start.credential_response.as_slice()).unwrap();
    let raw = cb.post(
        "/api/session/login/finish",
        &LoginFinishRequest {
            login_id: start.login_id,
            credential_finalization: B64(fin),
        },
    );
    let s = cb.session_from(raw, &export, &user).unwrap();
    // The session made on B works on A; the clinic made on A is there on B.
    let clinic = ca.create_clinic(&s, "Two Process Optics").unwrap();
    assert_eq!(cb.clinic(clinic.id).unwrap().clinic_id, clinic.id);

    // Four writers, two per process, each creating patients and updating its previous one.
    let writes_per_thread = 25;
    let acknowledged: Vec<(Uuid, WriteResult)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let c = if t % 2 == 0 { ca.clone() } else { cb.clone() };
                let (s, clinic) = (&s, &clinic);
                scope.spawn(move || {
                    let mut done = Vec::new();
                    let mut last: Option<(Uuid, u64)> = None;
                    for i in 0..writes_per_thread {
                        let (id, expected) = match last {
                            Some((id, v)) if i % 3 == 2 => (id, v),
                            _ => (Uuid::new_v4(), 0),
                        };
                        let p = sample_patient(t * 100 + i);
                        let w = c.put_patient(s, clinic, id, expected, &p).unwrap();
                        last = Some((id, w.version));
                        done.push((id, w));
                    }
                    done
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    assert_eq!(acknowledged.len(), 4 * writes_per_thread);
    let mut seqs: Vec<u64> = acknowledged.iter().map(|(_, w)| w.seq).collect();
    seqs.sort_unstable();
    assert_eq!(
        seqs,
        (1..=seqs.len() as u64).collect::<Vec<_>>(),
        "every write got its own seq, none missing"
    );
    let mut latest: BTreeMap<Uuid, WriteResult> = BTreeMap::new();
    for (id, w) in acknowledged {
        let e = latest.entry(id).or_insert(w.clone());
        if w.version > e.version {
            *e = w;
        }
    }
    check_both(&[&ca, &cb], clinic.id, &latest);
    // The same record updated through both at once: one wins, the other gets 409.
    let (id, w) = latest.iter().next().map(|(k, v)| (*k, v.clone())).unwrap();
    let wa = patient_write(
        &s,
        clinic.id,
        &clinic.keyring,
        id,
        w.version,
        &sample_patient(1),
    );
    let wb = patient_write(
        &s,
        clinic.id,
        &clinic.keyring,
        id,
        w.version,
        &sample_patient(2),
    );
    let (ra, rb) = std::thread::scope(|scope| {
        let ha = scope.spawn(|| ca.put(&format!("/api/clinics/{}/records/{id}", clinic.id), &wa));
        let hb = scope.spawn(|| cb.put(&format!("/api/clinics/{}/records/{id}", clinic.id), &wb));
        (ha.join().unwrap(), hb.join().unwrap())
    });
    assert_eq!(
        [ra.is_success(), rb.is_success()]
            .iter()
            .filter(|x| **x)
            .count(),
        1,
        "{ra:?} {rb:?}"
    );
    let loser = if ra.is_success() { &rb } else { &ra };
    assert_eq!(loser.expect_error(&[409]).code, "version_conflict");
    let winner: WriteResult = if ra.is_success() {
        ra.parse()
    } else {
        rb.parse()
    };
    latest.insert(id, winner);

    // Kill B with SIGKILL while both take writes: A keeps serving, nothing acknowledged is lost.
    let mut b = b;
    let stop = AtomicBool::new(false);
    let more: Vec<(Uuid, WriteResult)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let c = if t % 2 == 0 { ca.clone() } else { cb.clone() };
                let (s, clinic, stop) = (&s, &clinic, &stop);
                scope.spawn(move || {
                    let mut done = Vec::new();
                    let started = Instant::now();
                    let mut i = 0;
                    while !stop.load(Ordering::Relaxed)
                        && started.elapsed() < Duration::from_secs(20)
                    {
                        let w = patient_write(
                            s,
                            clinic.id,
                            &clinic.keyring,
                            Uuid::new_v4(),
                            0,
                            &sample_patient(1000 + t * 1000 + i),
                        );
                        i += 1;
                        let path = format!(
                            "/api/clinics/{}/records/{}",
                            clinic.id, w.envelope.record_id
                        );
                        match c.try_send(
                            Method::PUT,
                            &path,
                            Some((serde_json::to_vec(&w).unwrap(), "application/json")),
                            &[],
                        ) {
                            Ok(raw) if raw.is_success() => {
                                done.push((w.envelope.record_id, raw.parse::<WriteResult>()))
                            }
                            // The killed process: refused connections, cut responses.
                            _ if t % 2 == 1 => break,
                            Ok(raw) => panic!("A failed a write: {raw:?}"),
                            Err(e) => panic!("A failed a write: {e}"),
                        }
                    }
                    done
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(700));
        b.kill_hard();
        std::thread::sleep(Duration::from_millis(700));
        stop.store(true, Ordering::Relaxed);
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    assert!(
        !more.is_empty(),
        "writes were acknowledged during the kill phase"
    );
    eprintln!(
        "kill phase: {} writes acknowledged (both processes, B killed after 0.7 s)",
        more.len()
    );
    let ids: HashSet<Uuid> = more.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids.len(), more.len());
    latest.extend(more);
    check_both(&[&ca], clinic.id, &latest);
    // B comes back on the same database and serves the same.
    b.start_again();
    check_both(&[&ca, &cb], clinic.id, &latest);
    let head = ca.changes(clinic.id, 0, 1).unwrap().head;
    let (all, _, _) = ca.all_changes(clinic.id, 0, 500, 1000).unwrap();
    let mut seqs: Vec<u64> = all.iter().map(|r| r.seq).collect();
    seqs.sort_unstable();
    // Updates leave holes in the feed (a record's old row moves to its history), never past
    // the head.
    assert!(seqs.last().copied().unwrap_or(0) <= head);
    let mut a = a;
    a.stop();
    b.stop();
    db.drop_database();
}

//! Races: optimistic concurrency must hold under simultaneous writers, sequence numbers must be
//! unique and gap-free, and a client syncing with `changes since` while others write must not miss
//! a change.

use std::collections::{HashMap, HashSet};
use std::sync::{Barrier, Mutex};

use optovault_shared::wire::*;
use optovault_tests::*;
use uuid::Uuid;

#[test]
fn simultaneous_updates_of_one_record_exactly_one_wins() {
    let server = TestServer::start();
    let c = server.client();
    let s = c.signup(&unique_username("race"), &strong_password());
    let clinic = c.create_clinic(&s, "Race Optics").unwrap();
    let id = Uuid::new_v4();
    const THREADS: usize = 6;

    for round in 0..6u64 {
        // round 0 races creates (expected 0), later rounds race updates of version `round`.
        let head_before = c.changes(clinic.id, 0, 1).unwrap().head;
        let writes: Vec<RecordWrite> = (0..THREADS)
            .map(|t| {
                patient_write(
                    &s,
                    clinic.id,
                    &clinic.keyring,
                    id,
                    round,
                    &sample_patient(t + 10 * round as usize),
                )
            })
            .collect();
        let barrier = Barrier::new(THREADS);
        let outcomes: Vec<(usize, Raw)> = std::thread::scope(|scope| {
            let handles: Vec<_> = writes
                .iter()
                .enumerate()
                .map(|(t, w)| {
                    let c = c.clone();
                    let barrier = &barrier;
                    scope.spawn(move || {
                        barrier.wait();
                        (
                            t,
                            c.put(&format!("/api/clinics/{}/records/{id}", clinic.id), w),
                        )
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let winners: Vec<&(usize, Raw)> = outcomes.iter().filter(|(_, r)| r.is_success()).collect();
        assert_eq!(
            winners.len(),
            1,
            "round {round}: exactly one of {THREADS} racing writes may succeed: {outcomes:#?}"
        );
        for (_, r) in outcomes.iter().filter(|(_, r)| !r.is_success()) {
            assert_eq!(r.expect_error(&[409]).code, "version_conflict", "{r:?}");
        }
        let (winner, raw) = winners[0];
        let res: WriteResult = raw.parse();
        assert_eq!(res.version, round + 1);
        let stored = c.get_record(clinic.id, id).unwrap();
        assert_eq!(
            stored.envelope, writes[*winner].envelope,
            "the stored version is the winner's"
        );
        assert_eq!(stored.seq, res.seq);
        assert_eq!(
            c.changes(clinic.id, 0, 1).unwrap().head,
            head_before + 1,
            "one change per round"
        );
    }
}

#[test]
fn concurrent_writers_get_unique_gap_free_sequence_numbers() {
    let server = TestServer::start();
    let c = server.client();
    let s = c.signup(&unique_username("seq"), &strong_password());
    let clinic = c.create_clinic(&s, "Sequence Optics").unwrap();
    const THREADS: usize = 4;
    const OPS: usize = 25;
    let seqs = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for t in 0..THREADS {
            let c = c.clone();
            let (s, clinic, seqs) = (&s, &clinic, &seqs);
            scope.spawn(move || {
                for i in 0..OPS {
                    if i % 5 == 4 {
                        let writes = (0..3)
                            .map(|j| {
                                patient_write(
                                    s,
                                    clinic.id,
                                    &clinic.keyring,
                                    Uuid::new_v4(),
                                    0,
                                    &sample_patient(t * 1000 + i * 10 + j),
                                )
                            })
                            .collect();
                        let r = c.batch(clinic.id, writes).unwrap();
                        seqs.lock().unwrap().extend(r.results.iter().map(|r| r.seq));
                    } else {
                        let r = c
                            .put_patient(
                                s,
                                clinic,
                                Uuid::new_v4(),
                                0,
                                &sample_patient(t * 1000 + i),
                            )
                            .unwrap();
                        seqs.lock().unwrap().push(r.seq);
                    }
                }
            });
        }
    });
    let mut seqs = seqs.into_inner().unwrap();
    seqs.sort();
    let n = seqs.len() as u64;
    assert_eq!(n, (THREADS * (OPS - OPS / 5 + 3 * (OPS / 5))) as u64);
    assert_eq!(
        seqs,
        (1..=n).collect::<Vec<u64>>(),
        "sequence numbers must be unique and gap-free"
    );
    let page = c.changes(clinic.id, 0, 1000).unwrap();
    assert_eq!(page.head, n);
    assert_eq!(page.changes.len() as u64, n);
}

#[test]
fn incremental_sync_during_concurrent_writes_misses_nothing() {
    let server = TestServer::start();
    let c = server.client();
    let s = c.signup(&unique_username("sync"), &strong_password());
    let clinic = c.create_clinic(&s, "Sync Optics").unwrap();
    const WRITERS: usize = 3;
    const OPS: usize = 40;
    let done = std::sync::atomic::AtomicUsize::new(0);
    // record id -> latest version, as the writers know it
    let truth: Mutex<HashMap<Uuid, u64>> = Mutex::new(HashMap::new());

    let seen: HashMap<Uuid, (u64, u64)> = std::thread::scope(|scope| {
        for t in 0..WRITERS {
            let c = c.clone();
            let (s, clinic, truth, done) = (&s, &clinic, &truth, &done);
            scope.spawn(move || {
                let mut mine: Vec<(Uuid, u64)> = Vec::new();
                for i in 0..OPS {
                    if i % 3 == 2 && !mine.is_empty() {
                        let k = (i * 7) % mine.len();
                        let (id, v) = mine[k];
                        c.put_patient(s, clinic, id, v, &sample_patient(t * 1000 + i))
                            .unwrap();
                        mine[k].1 = v + 1;
                        truth.lock().unwrap().insert(id, v + 1);
                    } else {
                        let id = Uuid::new_v4();
                        c.put_patient(s, clinic, id, 0, &sample_patient(t * 1000 + i))
                            .unwrap();
                        mine.push((id, 1));
                        truth.lock().unwrap().insert(id, 1);
                    }
                }
                done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            });
        }
        // The syncing client: small pages, polling as fast as it can until the writers finish,
        // then one final drain.
        let c = c.clone();
        let clinic_id = clinic.id;
        let done = &done;
        scope
            .spawn(move || {
                let mut seen: HashMap<Uuid, (u64, u64)> = HashMap::new();
                let mut cursor = 0u64;
                let mut polls = 0;
                let pull = |cursor: &mut u64, seen: &mut HashMap<Uuid, (u64, u64)>| loop {
                    let p = c.changes(clinic_id, *cursor, 7).unwrap();
                    for r in p.changes {
                        seen.insert(r.envelope.record_id, (r.envelope.version, r.seq));
                    }
                    *cursor = p.cursor;
                    if !p.more {
                        break;
                    }
                };
                while done.load(std::sync::atomic::Ordering::SeqCst) < WRITERS && polls < 5000 {
                    polls += 1;
                    pull(&mut cursor, &mut seen);
                }
                pull(&mut cursor, &mut seen);
                seen
            })
            .join()
            .unwrap()
    });

    let truth = truth.into_inner().unwrap();
    let mut missing = Vec::new();
    for (id, v) in &truth {
        match seen.get(id) {
            Some((sv, _)) if sv == v => {}
            other => missing.push(format!("{id}: latest v{v}, incremental sync has {other:?}")),
        }
    }
    assert!(
        missing.is_empty(),
        "incremental sync missed {} of {} records:\n{}",
        missing.len(),
        truth.len(),
        missing.join("\n")
    );
    let ids: HashSet<&Uuid> = seen.keys().collect();
    assert_eq!(ids.len(), truth.len());
}

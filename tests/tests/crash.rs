//! Crash consistency under load: the server is killed (SIGKILL, as a crash or power cut would)
//! at a random moment while several writers create and update records through the HTTP API,
//! then started again on the same data, round after round. Every write the server acknowledged
//! must be there afterwards, byte for byte at its version and sequence number (or superseded by a
//! later version, with the acknowledged one in the record's history); the database must open;
//! sessions must still work (or cleanly ask for a new login); and every change sequence number
//! from 1 to the head must belong to exactly one record version.
//!
//! `OV_CRASH_ROUNDS` sets the number of rounds (default 50); `OV_CRASH_SEED` replays a run (the
//! seed is printed).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use optovault_shared::wire::*;
use optovault_shared::RecordEnvelope;
use optovault_tests::*;
use uuid::Uuid;

const WRITERS: usize = 3;

/// SplitMix64: small, seedable, good enough to pick delays and operations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// One write the server acknowledged.
#[derive(Clone, Debug)]
struct Acked {
    record_id: Uuid,
    version: u64,
    seq: u64,
    envelope: RecordEnvelope,
}

/// What a writer keeps between rounds: its records and their current versions.
#[derive(Default)]
struct Writer {
    records: Vec<(Uuid, u64)>,
    written: usize,
}

/// Writes until the server goes away (a transport error) or `stop`; pushes every acknowledged
/// write into `acked`.
#[allow(clippy::too_many_arguments)]
fn write_until_killed(
    index: usize,
    mut me: Writer,
    c: Client,
    s: Arc<Session>,
    clinic: Arc<Clinic>,
    seed: u64,
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<Acked>>>,
) -> Writer {
    let mut rng = Rng(seed);
    while !stop.load(Ordering::SeqCst) {
        let update = !me.records.is_empty() && rng.below(3) == 0;
        let (slot, record_id, expected) = if update {
            let slot = rng.below(me.records.len() as u64) as usize;
            (Some(slot), me.records[slot].0, me.records[slot].1)
        } else {
            (None, Uuid::new_v4(), 0)
        };
        let n = index * 1_000_000 + me.written;
        me.written += 1;
        let w = patient_write(
            &s,
            clinic.id,
            &clinic.keyring,
            record_id,
            expected,
            &sample_patient(n),
        );
        let body = serde_json::to_vec(&w).unwrap();
        let path = format!("/api/clinics/{}/records/{record_id}", clinic.id);
        let raw = match c.try_send(Method::PUT, &path, Some((body, "application/json")), &[]) {
            Ok(raw) => raw,
            Err(_) => break, // killed mid-request: not acknowledged, may or may not be stored
        };
        assert!(
            raw.is_success(),
            "writer {index}: a write to a live server failed: {raw:?}"
        );
        let result: WriteResult = raw.parse();
        assert_eq!(result.record_id, record_id);
        assert_eq!(result.version, expected + 1, "{raw:?}");
        acked.lock().unwrap().push(Acked {
            record_id,
            version: result.version,
            seq: result.seq,
            envelope: w.envelope,
        });
        match slot {
            Some(i) => me.records[i].1 = result.version,
            None => me.records.push((record_id, result.version)),
        }
    }
    me
}

fn history(c: &Client, clinic_id: Uuid, record_id: Uuid) -> Vec<StoredRecord> {
    Client::typed::<RecordHistory>(c.get(&format!(
        "/api/clinics/{clinic_id}/records/{record_id}/versions"
    )))
    .unwrap_or_else(|e| panic!("history of {record_id}: {e}"))
    .versions
}

#[test]
fn acknowledged_writes_survive_random_crashes_under_load() {
    let rounds: usize = std::env::var("OV_CRASH_ROUNDS")
        .ok()
        .map(|v| v.parse().expect("OV_CRASH_ROUNDS is a number"))
        .unwrap_or(50);
    let seed: u64 = std::env::var("OV_CRASH_SEED")
        .ok()
        .map(|v| v.parse().expect("OV_CRASH_SEED is a number"))
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("crash test: seed {seed} (OV_CRASH_SEED={seed} replays the same delays)");
    let mut rng = Rng(seed);
    let started = Instant::now();

    let mut server = TestServer::start();
    let c = Client::with_timeout(&server.base, Duration::from_secs(30));
    let user = unique_username("crashload");
    let pw = strong_password();
    let s = Arc::new(c.signup(&user, &pw));
    let clinic = Arc::new(c.create_clinic(&s, "Crash Load Optics").unwrap());

    let mut writers: Vec<Writer> = (0..WRITERS).map(|_| Writer::default()).collect();
    let mut all_acked: Vec<Acked> = Vec::new();
    // Every (version, seq) of every record, as read back from the server after a restart.
    let mut versions: HashMap<Uuid, Vec<(u64, u64)>> = HashMap::new();
    let mut lost: Vec<String> = Vec::new();
    let mut relogins = 0;
    let mut sessions_kept = 0;
    let mut head = 0;

    for round in 0..rounds {
        // The server is running: started above, or again after the last round's crash.
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(Mutex::new(Vec::new()));
        let threads: Vec<_> = writers
            .drain(..)
            .enumerate()
            .map(|(i, w)| {
                let (c, s, clinic, stop, acked) = (
                    c.clone(),
                    s.clone(),
                    clinic.clone(),
                    stop.clone(),
                    acked.clone(),
                );
                let seed = rng.next();
                std::thread::spawn(move || {
                    write_until_killed(i, w, c, s, clinic, seed, stop, acked)
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(20 + rng.below(381)));
        server.kill_hard();
        stop.store(true, Ordering::SeqCst);
        writers = threads
            .into_iter()
            .map(|t| t.join().expect("writer thread"))
            .collect();
        let acked: Vec<Acked> = std::mem::take(&mut *acked.lock().unwrap());

        // The database opens (start_again panics with the log if not).
        server.start_again();
        match c.session() {
            Ok(info) => {
                assert_eq!(info.account_id, s.account_id);
                sessions_kept += 1;
            }
            Err(e) => {
                assert_eq!(e.status, 401, "session after a crash: {e}");
                c.login(&user, &pw)
                    .unwrap_or_else(|e| panic!("login after crash {round}: {e:?}"));
                relogins += 1;
            }
        }

        // The feed: each record once, in strictly increasing seq, up to the head.
        let (feed, cursor, _) = c.all_changes(clinic.id, 0, 1000, 1000).unwrap();
        head = c.changes(clinic.id, 0, 1).unwrap().head;
        assert_eq!(cursor, head, "round {round}: feed cursor and head differ");
        for pair in feed.windows(2) {
            assert!(
                pair[0].seq < pair[1].seq,
                "round {round}: feed seq not strictly increasing: {} then {}",
                pair[0].seq,
                pair[1].seq
            );
        }
        if let Some(last) = feed.last() {
            assert_eq!(last.seq, head, "round {round}: the head has no feed row");
        }
        let current: BTreeMap<Uuid, StoredRecord> = feed
            .into_iter()
            .map(|r| (r.envelope.record_id, r))
            .collect();

        // Refresh the versions of records that changed since last round (new, updated, or
        // written by a request the crash cut off).
        for (id, r) in &current {
            let known = versions.get(id).and_then(|v| v.last()).map(|v| v.0);
            if known != Some(r.envelope.version) {
                let vs: Vec<(u64, u64)> = if r.envelope.version == 1 {
                    vec![(1, r.seq)]
                } else {
                    history(&c, clinic.id, *id)
                        .iter()
                        .map(|v| (v.envelope.version, v.seq))
                        .collect()
                };
                versions.insert(*id, vs);
            }
        }
        for id in versions.keys() {
            if !current.contains_key(id) {
                lost.push(format!("round {round}: record {id} vanished"));
            }
        }
        // Every seq 1..=head belongs to exactly one record version: no gaps, no duplicates.
        let mut owners: BTreeMap<u64, (Uuid, u64)> = BTreeMap::new();
        for (id, vs) in &versions {
            for &(version, seq) in vs {
                if let Some(prev) = owners.insert(seq, (*id, version)) {
                    panic!("round {round}: seq {seq} used twice: {prev:?} and ({id}, {version})");
                }
            }
        }
        let seqs: Vec<u64> = owners.keys().copied().collect();
        assert_eq!(
            seqs,
            (1..=head).collect::<Vec<u64>>(),
            "round {round}: the record versions' seqs are not exactly 1..={head}"
        );

        // Every acknowledged write of this round: there, identical, or superseded with the
        // acknowledged version in the history.
        for a in &acked {
            let Some(cur) = current.get(&a.record_id) else {
                lost.push(format!("round {round}: {a:?} missing"));
                continue;
            };
            if cur.envelope.version < a.version {
                lost.push(format!(
                    "round {round}: {} at version {} after version {} was acknowledged",
                    a.record_id, cur.envelope.version, a.version
                ));
            } else if cur.envelope.version == a.version {
                if cur.seq != a.seq || cur.envelope != a.envelope {
                    lost.push(format!("round {round}: {a:?} changed into {cur:?}"));
                }
            } else {
                let h = history(&c, clinic.id, a.record_id);
                match h.iter().find(|v| v.envelope.version == a.version) {
                    Some(v) if v.seq == a.seq && v.envelope == a.envelope => {}
                    other => lost.push(format!(
                        "round {round}: {a:?} superseded, history has {other:?}"
                    )),
                }
            }
        }
        // Writers continue from what the server has (a cut-off update may have landed).
        for w in &mut writers {
            for (id, version) in &mut w.records {
                if let Some(cur) = current.get(id) {
                    *version = cur.envelope.version;
                }
            }
        }
        all_acked.extend(acked);
    }

    // Finally every acknowledged write of every round, against the full histories.
    for a in &all_acked {
        let ok = versions
            .get(&a.record_id)
            .is_some_and(|vs| vs.contains(&(a.version, a.seq)));
        if !ok {
            lost.push(format!("end: {a:?} not in the record's versions"));
        }
    }
    let mut envelopes_checked = 0;
    let updated: Vec<Uuid> = versions
        .iter()
        .filter(|(_, vs)| vs.len() > 1)
        .map(|(id, _)| *id)
        .collect();
    let mut by_id: HashMap<Uuid, Vec<&Acked>> = HashMap::new();
    for a in &all_acked {
        by_id.entry(a.record_id).or_default().push(a);
    }
    for id in updated {
        let h = history(&c, clinic.id, id);
        for a in by_id.get(&id).into_iter().flatten() {
            envelopes_checked += 1;
            if !h
                .iter()
                .any(|v| v.envelope.version == a.version && v.envelope == a.envelope)
            {
                lost.push(format!("end: envelope of {a:?} not in the history"));
            }
        }
    }
    println!(
        "crash test: {rounds} rounds, {} writes acknowledged, {} lost, {} records, head seq {head}, \
         sessions kept {sessions_kept} / re-logins {relogins}, {envelopes_checked} superseded \
         envelopes re-checked, {:.1} s, seed {seed}",
        all_acked.len(),
        lost.len(),
        versions.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        lost.is_empty(),
        "{} acknowledged writes lost or changed (seed {seed}):\n{}",
        lost.len(),
        lost.iter().take(20).cloned().collect::<Vec<_>>().join("\n")
    );
    assert!(
        all_acked.len() >= rounds,
        "too few writes acknowledged ({}) to mean anything",
        all_acked.len()
    );
}

//! Clinics, records and the change feed against the real server, read back and decrypted with the
//! shared crypto.

use std::collections::{BTreeMap, HashMap, HashSet};

use optovault_shared::domain::Patient;
use optovault_shared::envelope::Purpose;
use optovault_shared::wire::*;
use optovault_shared::{crypto, Compartment, B64};
use optovault_tests::*;
use uuid::Uuid;

struct Fixture {
    server: TestServer,
    c: Client,
    s: Session,
    clinic: Clinic,
}

fn fixture() -> Fixture {
    let server = TestServer::start();
    let c = server.client();
    let s = c.signup(&unique_username("owner"), &strong_password());
    let clinic = c
        .create_clinic(&s, "Clear View Optometry")
        .expect("create clinic");
    Fixture {
        server,
        c,
        s,
        clinic,
    }
}

fn head(f: &Fixture) -> u64 {
    f.c.changes(f.clinic.id, 0, 1).expect("changes").head
}

#[test]
fn create_clinic_and_read_it_back() {
    let f = fixture();
    let v = &f.clinic.view;
    assert_eq!(v.clinic_id, f.clinic.id);
    assert_eq!(v.role, Role::Owner);
    assert!(v.created_at > 1_700_000_000);
    assert_eq!(v.wrapped_keys.len(), Compartment::ALL.len());
    assert!(v.wrapped_keys.iter().all(|w| w.recipient == f.s.account_id));

    // GET the clinic: the profile decrypts to the name, the wrapped keys unwrap to the keyring
    // that was generated.
    let got = f.c.clinic(f.clinic.id).expect("GET clinic");
    assert_eq!(got.clinic_id, f.clinic.id);
    assert_eq!(
        got.profile, v.profile,
        "profile envelope stored byte for byte"
    );
    let (profile, ring) = open_clinic(&f.s, &got).expect("open clinic as its owner");
    assert_eq!(profile.name, "Clear View Optometry");
    for c in Compartment::ALL {
        assert_eq!(
            ring.current(c).map(|k| k.key_id),
            f.clinic.keyring.current(c).map(|k| k.key_id)
        );
    }
    // A record sealed with the original keyring opens with the unwrapped one.
    let p = sample_patient(1);
    let env = seal_patient(&f.s, f.clinic.id, &f.clinic.keyring, Uuid::new_v4(), 1, &p);
    assert_eq!(open_patient(&f.s, f.clinic.id, &ring, &env).unwrap(), p);

    let list = f.c.clinics().expect("GET /api/clinics");
    assert_eq!(list.clinics.len(), 1);
    assert_eq!(list.clinics[0].clinic_id, f.clinic.id);

    // The same clinic id again: 409 clinic_exists, and the first clinic is unchanged.
    let (req, _) = clinic_request_for(&f.s, f.clinic.id, "Impostor");
    let raw = f.c.post("/api/clinics", &req);
    assert_eq!(raw.expect_error(&[409]).code, "clinic_exists", "{raw:?}");
    let again = f.c.clinic(f.clinic.id).unwrap();
    assert_eq!(again.profile, v.profile);
    assert_eq!(again.wrapped_keys, got.wrapped_keys);

    // A second clinic of the same owner.
    let second = f.c.create_clinic(&f.s, "Second Sight").unwrap();
    let ids: HashSet<Uuid> =
        f.c.clinics()
            .unwrap()
            .clinics
            .iter()
            .map(|c| c.clinic_id)
            .collect();
    assert_eq!(ids, HashSet::from([f.clinic.id, second.id]));
}

#[test]
fn create_clinic_validation() {
    let f = fixture();
    // Profile not bound to the clinic id (record id differs from the clinic id).
    let (mut req, _) = clinic_request(&f.s, "Bad");
    req.profile.record_id = Uuid::new_v4();
    f.c.post("/api/clinics", &req).expect_error(&[400]);
    // Wrapped keys addressed to someone else only.
    let (mut req, _) = clinic_request(&f.s, "Bad");
    for w in &mut req.wrapped_keys {
        w.recipient = Uuid::new_v4();
    }
    f.c.post("/api/clinics", &req).expect_error(&[400]);
    // No wrapped keys at all.
    let (mut req, _) = clinic_request(&f.s, "Bad");
    req.wrapped_keys.clear();
    f.c.post("/api/clinics", &req).expect_error(&[400]);
    // Nil clinic id.
    let (mut req, _) = clinic_request(&f.s, "Bad");
    req.clinic_id = Uuid::nil();
    f.c.post("/api/clinics", &req).expect_error(&[400]);
    // None of these created anything.
    assert_eq!(f.c.clinics().unwrap().clinics.len(), 1);
}

#[test]
fn create_get_update_and_decrypt() {
    let f = fixture();
    let (cid, ring) = (f.clinic.id, &f.clinic.keyring);
    assert_eq!(head(&f), 0, "a new clinic has an empty change feed");

    // Batch create three patients.
    let ids: Vec<Uuid> = (0..3).map(|_| Uuid::new_v4()).collect();
    let patients: Vec<Patient> = (0..3).map(sample_patient).collect();
    let writes: Vec<RecordWrite> = ids
        .iter()
        .zip(&patients)
        .map(|(id, p)| patient_write(&f.s, cid, ring, *id, 0, p))
        .collect();
    let resp = f.c.batch(cid, writes.clone()).expect("batch create");
    assert_eq!(resp.results.len(), 3);
    for (r, id) in resp.results.iter().zip(&ids) {
        assert_eq!((r.record_id, r.version), (*id, 1));
    }
    let seqs: Vec<u64> = resp.results.iter().map(|r| r.seq).collect();
    assert!(
        seqs[0] >= 1 && seqs.windows(2).all(|w| w[0] < w[1]),
        "batch seqs increase: {seqs:?}"
    );

    // Single create.
    let single_id = Uuid::new_v4();
    let single = sample_patient(3);
    let r =
        f.c.put_patient(&f.s, &f.clinic, single_id, 0, &single)
            .expect("single create");
    assert_eq!((r.record_id, r.version), (single_id, 1));
    assert!(r.seq > seqs[2]);
    assert_eq!(head(&f), r.seq);

    // Get each back: the stored envelope is byte for byte what was written, and decrypts.
    for ((id, p), w) in ids.iter().zip(&patients).zip(&writes) {
        let got = f.c.get_record(cid, *id).expect("GET record");
        assert_eq!(got.envelope, w.envelope);
        assert_eq!(&open_patient(&f.s, cid, ring, &got.envelope).unwrap(), p);
    }
    let got = f.c.get_record(cid, single_id).unwrap();
    assert_eq!(got.seq, r.seq);
    assert_eq!(
        open_patient(&f.s, cid, ring, &got.envelope).unwrap(),
        single
    );

    // Update with the right expected version.
    let mut changed = single.clone();
    changed.phone = "+1 555 0199 999".into();
    let u =
        f.c.put_patient(&f.s, &f.clinic, single_id, 1, &changed)
            .expect("update");
    assert_eq!(u.version, 2);
    assert!(u.seq > r.seq);
    let got = f.c.get_record(cid, single_id).unwrap();
    assert_eq!(got.envelope.version, 2);
    assert_eq!(got.seq, u.seq);
    assert_eq!(
        open_patient(&f.s, cid, ring, &got.envelope).unwrap(),
        changed
    );

    // Unknown record: 404 not_found.
    let raw =
        f.c.get(&format!("/api/clinics/{cid}/records/{}", Uuid::new_v4()));
    assert_eq!(raw.expect_error(&[404]).code, "not_found");
}

#[test]
fn stale_expected_version_is_409_and_writes_nothing() {
    let f = fixture();
    let (cid, ring) = (f.clinic.id, &f.clinic.keyring);
    let id = Uuid::new_v4();
    f.c.put_patient(&f.s, &f.clinic, id, 0, &sample_patient(0))
        .unwrap();
    f.c.put_patient(&f.s, &f.clinic, id, 1, &sample_patient(1))
        .unwrap();
    let before = f.c.get_record(cid, id).unwrap();
    let head_before = head(&f);
    assert_eq!(before.envelope.version, 2);

    // Another device still at version 1 writes its edit.
    let stale = patient_write(&f.s, cid, ring, id, 1, &sample_patient(2));
    let raw = f.c.put(&format!("/api/clinics/{cid}/records/{id}"), &stale);
    assert_eq!(raw.expect_error(&[409]).code, "version_conflict", "{raw:?}");
    // Creating it again (expected 0) conflicts too.
    let recreate = patient_write(&f.s, cid, ring, id, 0, &sample_patient(3));
    let raw =
        f.c.put(&format!("/api/clinics/{cid}/records/{id}"), &recreate);
    assert_eq!(raw.expect_error(&[409]).code, "version_conflict", "{raw:?}");
    // Expected version ahead of the stored one.
    let ahead = patient_write(&f.s, cid, ring, id, 5, &sample_patient(4));
    let raw = f.c.put(&format!("/api/clinics/{cid}/records/{id}"), &ahead);
    assert_eq!(raw.expect_error(&[409]).code, "version_conflict", "{raw:?}");

    let after = f.c.get_record(cid, id).unwrap();
    assert_eq!(
        after.envelope, before.envelope,
        "record unchanged after conflicts"
    );
    assert_eq!(after.seq, before.seq);
    assert_eq!(
        head(&f),
        head_before,
        "change head unchanged after conflicts"
    );
    assert_eq!(
        open_patient(&f.s, cid, ring, &after.envelope).unwrap(),
        sample_patient(1)
    );
}

#[test]
fn batch_with_one_conflict_writes_none() {
    let f = fixture();
    let (cid, ring) = (f.clinic.id, &f.clinic.keyring);
    let existing = Uuid::new_v4();
    f.c.put_patient(&f.s, &f.clinic, existing, 0, &sample_patient(0))
        .unwrap();
    let before = f.c.get_record(cid, existing).unwrap();
    let head_before = head(&f);

    let new_a = Uuid::new_v4();
    let new_b = Uuid::new_v4();
    let writes = vec![
        patient_write(&f.s, cid, ring, new_a, 0, &sample_patient(1)),
        // conflicting: the record exists at version 1, the write claims a create
        patient_write(&f.s, cid, ring, existing, 0, &sample_patient(2)),
        patient_write(&f.s, cid, ring, new_b, 0, &sample_patient(3)),
    ];
    let raw = f.c.post(
        &format!("/api/clinics/{cid}/records"),
        &BatchWriteRequest {
            writes,
            report: None,
        },
    );
    assert_eq!(raw.expect_error(&[409]).code, "version_conflict", "{raw:?}");
    for id in [new_a, new_b] {
        let raw = f.c.get(&format!("/api/clinics/{cid}/records/{id}"));
        assert_eq!(
            raw.status, 404,
            "no write of a failed batch may land: {raw:?}"
        );
    }
    assert_eq!(
        f.c.get_record(cid, existing).unwrap().envelope,
        before.envelope
    );
    assert_eq!(head(&f), head_before);
    let (all, _, _) = f.c.all_changes(cid, 0, 1000, 10).unwrap();
    assert_eq!(all.len(), 1);

    // The conflict last in the batch (after valid writes): still nothing.
    let writes = vec![
        patient_write(&f.s, cid, ring, new_a, 0, &sample_patient(1)),
        patient_write(&f.s, cid, ring, new_b, 0, &sample_patient(3)),
        patient_write(&f.s, cid, ring, existing, 3, &sample_patient(2)),
    ];
    let raw = f.c.post(
        &format!("/api/clinics/{cid}/records"),
        &BatchWriteRequest {
            writes,
            report: None,
        },
    );
    assert_eq!(raw.expect_error(&[409]).code, "version_conflict", "{raw:?}");
    assert_eq!(
        f.c.get(&format!("/api/clinics/{cid}/records/{new_a}"))
            .status,
        404
    );
    assert_eq!(head(&f), head_before);

    // The same batch without the conflict goes through as a whole.
    let writes = vec![
        patient_write(&f.s, cid, ring, new_a, 0, &sample_patient(1)),
        patient_write(&f.s, cid, ring, new_b, 0, &sample_patient(3)),
        patient_write(&f.s, cid, ring, existing, 1, &sample_patient(2)),
    ];
    let resp = f.c.batch(cid, writes).expect("valid batch");
    assert_eq!(
        resp.results
            .iter()
            .map(|r| (r.record_id, r.version))
            .collect::<Vec<_>>(),
        vec![(new_a, 1), (new_b, 1), (existing, 2)]
    );
}

#[test]
fn batch_with_one_invalid_envelope_writes_none() {
    let f = fixture();
    let (cid, ring) = (f.clinic.id, &f.clinic.keyring);
    let head_before = head(&f);
    let good = Uuid::new_v4();
    let mut bad = patient_write(&f.s, cid, ring, Uuid::new_v4(), 0, &sample_patient(1));
    bad.envelope.nonce = B64(vec![0; 11]);
    let writes = vec![
        patient_write(&f.s, cid, ring, good, 0, &sample_patient(0)),
        bad,
    ];
    let raw = f.c.post(
        &format!("/api/clinics/{cid}/records"),
        &BatchWriteRequest {
            writes,
            report: None,
        },
    );
    raw.expect_error(&[400]);
    assert_eq!(
        f.c.get(&format!("/api/clinics/{cid}/records/{good}"))
            .status,
        404
    );
    assert_eq!(head(&f), head_before);

    // Two creates of the same record in one batch: applied in order the second conflicts with the
    // first, so the batch fails as a whole (409), or the server refuses duplicates (400).
    let dup = Uuid::new_v4();
    let writes = vec![
        patient_write(&f.s, cid, ring, dup, 0, &sample_patient(2)),
        patient_write(&f.s, cid, ring, dup, 0, &sample_patient(3)),
    ];
    let raw = f.c.post(
        &format!("/api/clinics/{cid}/records"),
        &BatchWriteRequest {
            writes,
            report: None,
        },
    );
    assert!(raw.status < 500, "{raw:?}");
    if raw.is_success() {
        panic!("two creates of the same record in one batch were both accepted: {raw:?}");
    }
    raw.expect_error(&[400, 409]);
    assert_eq!(
        f.c.get(&format!("/api/clinics/{cid}/records/{dup}")).status,
        404
    );

    // Empty batch: accepted with no results, or refused; never writes.
    let raw = f.c.post(
        &format!("/api/clinics/{cid}/records"),
        &BatchWriteRequest {
            writes: vec![],
            report: None,
        },
    );
    assert!(raw.status < 500, "{raw:?}");
    if raw.is_success() {
        assert!(raw.parse::<BatchWriteResponse>().results.is_empty());
    } else {
        raw.expect_error(&[400]);
    }
    assert_eq!(head(&f), head_before);
}

#[test]
fn list_with_pagination() {
    let f = fixture();
    let (cid, ring) = (f.clinic.id, &f.clinic.keyring);
    let mut written: BTreeMap<Uuid, Patient> = BTreeMap::new();
    let writes: Vec<RecordWrite> = (0..7)
        .map(|i| {
            let id = Uuid::new_v4();
            written.insert(id, sample_patient(i));
            patient_write(&f.s, cid, ring, id, 0, &written[&id])
        })
        .collect();
    f.c.batch(cid, writes).unwrap();

    let mut seen = Vec::new();
    let mut after = None;
    let mut pages = 0;
    loop {
        pages += 1;
        assert!(pages <= 10, "pagination does not terminate");
        let page = f.c.list_records(cid, after, Some(3)).expect("list");
        assert!(
            page.records.len() <= 3,
            "page larger than limit: {}",
            page.records.len()
        );
        for r in &page.records {
            seen.push(r.envelope.record_id);
            let p = open_patient(&f.s, cid, ring, &r.envelope).unwrap();
            assert_eq!(p, written[&r.envelope.record_id]);
        }
        match page.next_after {
            Some(n) => {
                assert_eq!(
                    Some(&n),
                    seen.last(),
                    "next_after is the last id of the page"
                );
                after = Some(n);
            }
            None => break,
        }
    }
    assert_eq!(pages, 3, "7 records in pages of 3");
    let expected: Vec<Uuid> = written.keys().copied().collect();
    assert_eq!(seen, expected, "every record once, ordered by record id");

    // Without a limit (server default), everything fits.
    let all = f.c.list_records(cid, None, None).unwrap();
    assert_eq!(all.records.len(), 7);
    assert_eq!(all.next_after, None);
    // after = the greatest id: empty last page.
    let last =
        f.c.list_records(cid, Some(*expected.last().unwrap()), Some(3))
            .unwrap();
    assert!(last.records.is_empty() && last.next_after.is_none());
    // after = an id that is not a record: the records greater than it.
    let probe = expected[3];
    let just_before = Uuid::from_u128(probe.as_u128() - 1);
    let page =
        f.c.list_records(cid, Some(just_before), Some(1000))
            .unwrap();
    assert_eq!(
        page.records.first().map(|r| r.envelope.record_id),
        Some(probe)
    );
}

#[test]
fn changes_since_pages_and_cursors() {
    let f = fixture();
    let (cid, ring) = (f.clinic.id, &f.clinic.keyring);
    let empty = f.c.changes(cid, 0, 100).unwrap();
    assert!(empty.changes.is_empty());
    assert_eq!((empty.cursor, empty.head, empty.more), (0, 0, false));

    // N = 12 creates (a batch and singles), then M = 5 updates (two of one record).
    let mut latest: HashMap<Uuid, (u64, Patient)> = HashMap::new();
    let ids: Vec<Uuid> = (0..12).map(|_| Uuid::new_v4()).collect();
    let writes: Vec<RecordWrite> = ids[..8]
        .iter()
        .enumerate()
        .map(|(i, id)| patient_write(&f.s, cid, ring, *id, 0, &sample_patient(i)))
        .collect();
    f.c.batch(cid, writes).unwrap();
    for (i, id) in ids.iter().enumerate() {
        latest.insert(*id, (1, sample_patient(i)));
    }
    for (i, id) in ids[8..].iter().enumerate() {
        f.c.put_patient(&f.s, &f.clinic, *id, 0, &sample_patient(8 + i))
            .unwrap();
    }
    let head_after_creates = head(&f);
    assert_eq!(
        head_after_creates, 12,
        "the clinic's own change sequence: one number per write, starting at 1"
    );

    let updates = [
        (ids[0], 100),
        (ids[5], 105),
        (ids[9], 109),
        (ids[0], 200),
        (ids[11], 111),
    ];
    for (id, n) in updates {
        let v = latest[&id].0;
        f.c.put_patient(&f.s, &f.clinic, id, v, &sample_patient(n))
            .unwrap();
        latest.insert(id, (v + 1, sample_patient(n)));
    }

    // Since 0 in one page: each record once, at its latest version, oldest change first.
    let page = f.c.changes(cid, 0, 1000).unwrap();
    assert!(!page.more);
    assert_eq!(page.head, 17);
    assert_eq!(page.cursor, page.head);
    assert_eq!(page.changes.len(), 12, "each record once");
    check_feed(&f, &page.changes, &latest);

    // Since 0 in pages of 5: the same set, cursors advance, `more` until the end.
    let mut all = Vec::new();
    let mut cursor = 0;
    let mut pages = 0;
    loop {
        pages += 1;
        assert!(pages <= 10);
        let p = f.c.changes(cid, cursor, 5).unwrap();
        assert!(p.changes.len() <= 5);
        assert!(p.cursor >= cursor, "cursor never goes back");
        assert!(p
            .changes
            .iter()
            .all(|c| c.seq > cursor && c.seq <= p.cursor));
        all.extend(p.changes);
        cursor = p.cursor;
        if !p.more {
            break;
        }
    }
    assert_eq!(cursor, 17);
    assert_eq!(all.len(), 12);
    check_feed(&f, &all, &latest);

    // Since the head after the creates: only the updated records.
    let p = f.c.changes(cid, head_after_creates, 1000).unwrap();
    let got: HashSet<Uuid> = p.changes.iter().map(|c| c.envelope.record_id).collect();
    assert_eq!(got, HashSet::from([ids[0], ids[5], ids[9], ids[11]]));
    assert!(p.changes.iter().all(|c| c.seq > head_after_creates));
    check_feed(&f, &p.changes, &latest);

    // Since the head: nothing, cursor stays.
    let p = f.c.changes(cid, 17, 1000).unwrap();
    assert!(p.changes.is_empty());
    assert_eq!((p.cursor, p.head, p.more), (17, 17, false));
    // Since beyond the head: nothing, never an error.
    let p = f.c.changes(cid, 1_000_000, 10).unwrap();
    assert!(p.changes.is_empty() && !p.more);
}

/// Each change: the latest version of its record, ascending seq, decrypting to what was written.
fn check_feed(f: &Fixture, changes: &[StoredRecord], latest: &HashMap<Uuid, (u64, Patient)>) {
    let seqs: Vec<u64> = changes.iter().map(|c| c.seq).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "oldest change first: {seqs:?}"
    );
    let mut seen = HashSet::new();
    for c in changes {
        let id = c.envelope.record_id;
        assert!(seen.insert(id), "record {id} listed twice");
        let (v, p) = &latest[&id];
        assert_eq!(
            c.envelope.version, *v,
            "record {id} not at its latest version"
        );
        assert_eq!(
            &open_patient(&f.s, f.clinic.id, &f.clinic.keyring, &c.envelope).unwrap(),
            p
        );
        let got = f.c.get_record(f.clinic.id, id).unwrap();
        assert_eq!(got.seq, c.seq, "feed seq equals the record's seq");
    }
}

#[test]
fn envelope_header_must_agree_with_the_request() {
    let f = fixture();
    let (cid, ring) = (f.clinic.id, &f.clinic.keyring);
    let id = Uuid::new_v4();
    let path = format!("/api/clinics/{cid}/records/{id}");

    // Record id in the envelope differs from the URL.
    let w = patient_write(&f.s, cid, ring, Uuid::new_v4(), 0, &sample_patient(0));
    f.c.put(&path, &w).expect_error(&[400]);
    // Version is not expected_version + 1.
    let mut w = patient_write(&f.s, cid, ring, id, 0, &sample_patient(0));
    w.envelope = seal_patient(&f.s, cid, ring, id, 2, &sample_patient(0));
    f.c.put(&path, &w).expect_error(&[400]);
    let mut w = patient_write(&f.s, cid, ring, id, 0, &sample_patient(0));
    w.expected_version = 1; // envelope says 1: 1 != 1 + 1
    let raw = f.c.put(&path, &w);
    assert!(
        matches!(raw.status, 400 | 409) && raw.error_body().is_some(),
        "version == expected_version must be refused: {raw:?}"
    );
    // Malformed nonce, signature, ciphertext, format, nil ids.
    type Mutation = Box<dyn Fn(&mut RecordWrite)>;
    let bad_cases: Vec<(&str, Mutation)> = vec![
        (
            "nonce 11 bytes",
            Box::new(|w| w.envelope.nonce = B64(vec![1; 11])),
        ),
        (
            "nonce 13 bytes",
            Box::new(|w| w.envelope.nonce = B64(vec![1; 13])),
        ),
        (
            "signature 63 bytes",
            Box::new(|w| w.envelope.signature.0.truncate(63)),
        ),
        (
            "ciphertext 15 bytes",
            Box::new(|w| w.envelope.ciphertext = B64(vec![1; 15])),
        ),
        (
            "ciphertext > 256 KiB",
            Box::new(|w| w.envelope.ciphertext = B64(vec![1; 256 * 1024 + 1])),
        ),
        ("format 2", Box::new(|w| w.envelope.format = 2)),
        (
            "nil chart id",
            Box::new(|w| w.envelope.chart_id = Uuid::nil()),
        ),
        ("nil key id", Box::new(|w| w.envelope.key_id = Uuid::nil())),
        (
            "version 0",
            Box::new(|w| {
                w.envelope.version = 0;
            }),
        ),
    ];
    for (name, mutate) in bad_cases {
        let mut w = patient_write(&f.s, cid, ring, id, 0, &sample_patient(0));
        mutate(&mut w);
        let raw = f.c.put(&path, &w);
        assert!(
            matches!(raw.status, 400 | 413 | 422) && raw.error_body().is_some(),
            "{name}: expected a 400 JSON error, got {raw:?}"
        );
    }
    // The same checks in a batch.
    let mut w = patient_write(&f.s, cid, ring, id, 0, &sample_patient(0));
    w.envelope.version = 3;
    f.c.post(
        &format!("/api/clinics/{cid}/records"),
        &BatchWriteRequest {
            writes: vec![w],
            report: None,
        },
    )
    .expect_error(&[400]);
    // Nothing was written by any of these.
    assert_eq!(f.c.get(&path).status, 404);
    assert_eq!(head(&f), 0);
}

#[test]
fn envelope_author_must_be_the_caller() {
    // Defence in depth: the server knows who is writing; an envelope claiming another author
    // (e.g. a member forging authorship in the header) is refused. Readers would reject it
    // anyway (signature), but the server must not store it as the other member's write.
    let f = fixture();
    let (cid, ring) = (f.clinic.id, &f.clinic.keyring);
    let id = Uuid::new_v4();
    let mut w = patient_write(&f.s, cid, ring, id, 0, &sample_patient(0));
    w.envelope.author = Uuid::new_v4();
    let raw = f.c.put(&format!("/api/clinics/{cid}/records/{id}"), &w);
    assert!(
        matches!(raw.status, 400 | 403) && raw.error_body().is_some(),
        "an envelope whose author is not the caller must be refused: {raw:?}"
    );
    assert_eq!(
        f.c.get(&format!("/api/clinics/{cid}/records/{id}")).status,
        404
    );
}

#[test]
fn profile_purpose_and_records_do_not_mix() {
    // The server stores whatever ciphertext it is given; the client's purpose binding must make
    // a clinic profile served as a record fail to open.
    let f = fixture();
    let profile = f.c.clinic(f.clinic.id).unwrap().profile;
    let r = crypto::open_record(
        &f.clinic.id,
        Purpose::Record,
        &profile,
        &f.clinic.keyring,
        |_| Some(f.s.ed25519()),
    );
    assert!(r.is_err());
}

#[test]
fn big_batch_within_limits_is_accepted() {
    // limits::MAX_BATCH writes in one request of several MiB (below MAX_BODY_BYTES): accepted.
    let f = fixture();
    let (cid, ring) = (f.clinic.id, &f.clinic.keyring);
    let n = optovault_shared::limits::MAX_BATCH;
    let filler = "x".repeat(6 * 1024);
    let writes: Vec<RecordWrite> = (0..n)
        .map(|i| {
            let mut p = sample_patient(i);
            p.notes = filler.clone();
            patient_write(&f.s, cid, ring, Uuid::new_v4(), 0, &p)
        })
        .collect();
    let body_len = serde_json::to_vec(&BatchWriteRequest {
        report: None,
        writes: writes.clone(),
    })
    .unwrap()
    .len();
    assert!(
        body_len > 4 * 1024 * 1024 && body_len < optovault_shared::limits::MAX_BODY_BYTES,
        "test body is {body_len} bytes"
    );
    let resp =
        f.c.batch(cid, writes)
            .expect("a batch of MAX_BATCH records under MAX_BODY_BYTES");
    assert_eq!(resp.results.len(), n);
    assert_eq!(head(&f), n as u64);
    // One more than MAX_BATCH is refused.
    let writes: Vec<RecordWrite> = (0..n + 1)
        .map(|i| patient_write(&f.s, cid, ring, Uuid::new_v4(), 0, &sample_patient(i)))
        .collect();
    let raw = f.c.post(
        &format!("/api/clinics/{cid}/records"),
        &BatchWriteRequest {
            writes,
            report: None,
        },
    );
    raw.expect_error(&[400, 413]);
    assert_eq!(head(&f), n as u64);
    drop(f.server);
}

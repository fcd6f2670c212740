//! Tenant isolation: an account of clinic B tries every endpoint of clinic A; anonymous callers
//! try everything. Nothing of A may be read, listed, counted, changed or inferred.

use optovault_shared::wire::*;
use optovault_tests::*;
use uuid::Uuid;

struct Tenant {
    c: Client,
    s: Session,
    clinic: Clinic,
    records: Vec<Uuid>,
}

fn tenant(server: &TestServer, name: &str, n: usize) -> Tenant {
    let c = server.client();
    let s = c.signup(&unique_username(name), &strong_password());
    let clinic = c.create_clinic(&s, &format!("{name} eye care")).unwrap();
    let records: Vec<Uuid> = (0..n).map(|_| Uuid::new_v4()).collect();
    let writes = records
        .iter()
        .enumerate()
        .map(|(i, id)| patient_write(&s, clinic.id, &clinic.keyring, *id, 0, &sample_patient(i)))
        .collect();
    c.batch(clinic.id, writes).unwrap();
    // One update, so versions differ.
    c.put_patient(&s, &clinic, records[0], 1, &sample_patient(99))
        .unwrap();
    Tenant {
        c,
        s,
        clinic,
        records,
    }
}

/// Everything of A that must never appear in a response to anyone else.
fn secrets_of(a: &Tenant) -> Vec<(String, String)> {
    let mut out = vec![
        ("A's account id".to_string(), a.s.account_id.to_string()),
        ("A's username".to_string(), a.s.username.clone()),
    ];
    let view = a.c.clinic(a.clinic.id).unwrap();
    out.push((
        "A's profile ciphertext".into(),
        optovault_shared::B64::encode(view.profile.ciphertext.as_slice()),
    ));
    for w in &view.wrapped_keys {
        out.push((
            "A's wrapped key".into(),
            optovault_shared::B64::encode(w.ciphertext.as_slice()),
        ));
        out.push(("A's key id".into(), w.key_id.to_string()));
    }
    for id in &a.records {
        let r = a.c.get_record(a.clinic.id, *id).unwrap();
        out.push((format!("A's record id {id}"), id.to_string()));
        out.push((
            format!("ciphertext of {id}"),
            optovault_shared::B64::encode(r.envelope.ciphertext.as_slice()),
        ));
        out.push((
            format!("signature of {id}"),
            optovault_shared::B64::encode(r.envelope.signature.as_slice()),
        ));
    }
    out
}

/// A's state as A sees it (excluding the access log, which grows with every read).
fn snapshot(a: &Tenant) -> (String, String, String, Vec<String>) {
    let cid = a.clinic.id;
    let clinic = a.c.get(&format!("/api/clinics/{cid}"));
    let changes =
        a.c.get(&format!("/api/clinics/{cid}/changes?since=0&limit=1000"));
    let list = a.c.get(&format!("/api/clinics/{cid}/records?limit=1000"));
    assert!(clinic.is_success() && changes.is_success() && list.is_success());
    let records = a
        .records
        .iter()
        .map(|id| a.c.get(&format!("/api/clinics/{cid}/records/{id}")).text())
        .collect();
    (clinic.text(), changes.text(), list.text(), records)
}

#[test]
fn another_tenant_cannot_touch_clinic_a() {
    let server = TestServer::start();
    let a = tenant(&server, "alpha", 4);
    let b = tenant(&server, "beta", 2);
    let (acid, rid) = (a.clinic.id, a.records[0]);
    let before = snapshot(&a);
    let secrets = secrets_of(&a);
    let head_a = a.c.changes(acid, 0, 1).unwrap().head;

    // Writes B could try: its own sealed envelopes aimed at A's clinic.
    let update = patient_write(&b.s, acid, &b.clinic.keyring, rid, 2, &sample_patient(7));
    let new_id = Uuid::new_v4();
    let create = patient_write(&b.s, acid, &b.clinic.keyring, new_id, 0, &sample_patient(8));
    let batch = BatchWriteRequest {
        report: None,
        writes: vec![
            patient_write(
                &b.s,
                acid,
                &b.clinic.keyring,
                Uuid::new_v4(),
                0,
                &sample_patient(9),
            ),
            update.clone(),
        ],
    };

    let attempts: Vec<(String, Raw)> = vec![
        (
            "GET clinic".into(),
            b.c.get(&format!("/api/clinics/{acid}")),
        ),
        (
            "GET record".into(),
            b.c.get(&format!("/api/clinics/{acid}/records/{rid}")),
        ),
        (
            "PUT record (update)".into(),
            b.c.put(&format!("/api/clinics/{acid}/records/{rid}"), &update),
        ),
        (
            "PUT record (create)".into(),
            b.c.put(&format!("/api/clinics/{acid}/records/{new_id}"), &create),
        ),
        (
            "POST batch".into(),
            b.c.post(&format!("/api/clinics/{acid}/records"), &batch),
        ),
        (
            "GET list".into(),
            b.c.get(&format!("/api/clinics/{acid}/records")),
        ),
        (
            "GET list with limit".into(),
            b.c.get(&format!("/api/clinics/{acid}/records?limit=1000")),
        ),
        (
            "GET changes".into(),
            b.c.get(&format!("/api/clinics/{acid}/changes?since=0&limit=1000")),
        ),
        (
            "GET audit".into(),
            b.c.get(&format!("/api/clinics/{acid}/audit?since=0&limit=1000")),
        ),
    ];
    for (what, raw) in &attempts {
        raw.expect_error(&[403, 404]);
        let body = raw.text();
        for (name, secret) in &secrets {
            // The record id B put in the URL itself is not a leak.
            if raw.path.contains(secret.as_str()) {
                continue;
            }
            assert!(
                !body.contains(secret.as_str()),
                "{what}: response contains {name}: {raw:?}"
            );
        }
    }

    // No existence oracle: a foreign clinic answers exactly like a clinic that does not exist.
    let ghost = Uuid::new_v4();
    let ghost_rec = Uuid::new_v4();
    for (what, path) in [
        ("GET clinic", "/api/clinics/{}".to_string()),
        (
            "GET record",
            format!("/api/clinics/{{}}/records/{ghost_rec}"),
        ),
        ("GET list", "/api/clinics/{}/records".to_string()),
        (
            "GET changes",
            "/api/clinics/{}/changes?since=0&limit=10".to_string(),
        ),
        (
            "GET audit",
            "/api/clinics/{}/audit?since=0&limit=10".to_string(),
        ),
    ] {
        let foreign = b.c.get(&path.replace("{}", &acid.to_string()));
        let missing = b.c.get(&path.replace("{}", &ghost.to_string()));
        let (fe, me) = (
            foreign.expect_error(&[403, 404]),
            missing.expect_error(&[403, 404]),
        );
        assert_eq!(
            (foreign.status, fe.code),
            (missing.status, me.code),
            "{what}: a foreign clinic must be indistinguishable from a missing one"
        );
    }
    // The doc is explicit for GET clinic: 404 not_found.
    let raw = b.c.get(&format!("/api/clinics/{acid}"));
    assert_eq!(
        (raw.status, raw.expect_error(&[404]).code.as_str()),
        (404, "not_found")
    );

    // B "creates" a clinic under A's id (a correctly bound request): refused, A untouched, B
    // not made a member.
    let (takeover, _) = clinic_request_for(&b.s, acid, "takeover");
    let raw = b.c.post("/api/clinics", &takeover);
    assert_eq!(raw.expect_error(&[409]).code, "clinic_exists", "{raw:?}");
    b.c.get(&format!("/api/clinics/{acid}"))
        .expect_error(&[404]);

    // B's own views hold nothing of A.
    let mine = b.c.clinics().unwrap();
    assert_eq!(
        mine.clinics.iter().map(|c| c.clinic_id).collect::<Vec<_>>(),
        vec![b.clinic.id]
    );
    let feed_b = b.c.get(&format!(
        "/api/clinics/{}/changes?since=0&limit=1000",
        b.clinic.id
    ));
    assert!(feed_b.is_success());
    for (name, secret) in &secrets {
        assert!(
            !feed_b.text().contains(secret.as_str()),
            "B's feed contains {name}"
        );
    }

    // A record of A's id does not exist in B's clinic; B may create its own record under that id
    // (ids are scoped by clinic) without touching A's, and without learning that A has one.
    let raw =
        b.c.get(&format!("/api/clinics/{}/records/{rid}", b.clinic.id));
    assert_eq!(raw.expect_error(&[404]).code, "not_found", "{raw:?}");
    let w =
        b.c.put_patient(&b.s, &b.clinic, rid, 0, &sample_patient(50))
            .expect("B creates a record in its own clinic under an id A also uses");
    assert_eq!(w.version, 1);
    let mine = b.c.get_record(b.clinic.id, rid).unwrap();
    assert_eq!(
        open_patient(&b.s, b.clinic.id, &b.clinic.keyring, &mine.envelope).unwrap(),
        sample_patient(50)
    );

    // A's data is exactly as before; B's activity did not move A's change sequence.
    assert_eq!(snapshot(&a), before, "A's data changed after B's attempts");
    assert_eq!(a.c.changes(acid, 0, 1).unwrap().head, head_a);
    let r = a.c.get_record(acid, rid).unwrap();
    assert_eq!(
        open_patient(&a.s, acid, &a.clinic.keyring, &r.envelope).unwrap(),
        sample_patient(99)
    );
    // A's new record id from B's attempted create does not exist.
    assert_eq!(
        a.c.get(&format!("/api/clinics/{acid}/records/{new_id}"))
            .status,
        404
    );
}

#[test]
fn change_sequences_are_per_clinic() {
    // A global sequence would let B count A's writes from gaps in its own feed.
    let server = TestServer::start();
    let a = tenant(&server, "alpha", 3);
    let b = tenant(&server, "beta", 3);
    let head_b = b.c.changes(b.clinic.id, 0, 1).unwrap().head;
    for i in 0..5 {
        a.c.put_patient(&a.s, &a.clinic, Uuid::new_v4(), 0, &sample_patient(i))
            .unwrap();
    }
    let w =
        b.c.put_patient(&b.s, &b.clinic, Uuid::new_v4(), 0, &sample_patient(0))
            .unwrap();
    assert_eq!(w.seq, head_b + 1, "B's next seq must not reveal A's writes");
    let seqs: Vec<u64> =
        b.c.changes(b.clinic.id, 0, 1000)
            .unwrap()
            .changes
            .iter()
            .map(|c| c.seq)
            .collect();
    assert_eq!(seqs.len(), 4);
    assert_eq!(*seqs.last().unwrap(), head_b + 1);
}

#[test]
fn unauthenticated_calls_are_401() {
    let server = TestServer::start();
    let a = tenant(&server, "alpha", 1);
    let (acid, rid) = (a.clinic.id, a.records[0]);
    let anon = server.client();
    let write = patient_write(
        &a.s,
        acid,
        &a.clinic.keyring,
        Uuid::new_v4(),
        0,
        &sample_patient(1),
    );
    let (create, _) = clinic_request(&a.s, "anon clinic");
    let batch = BatchWriteRequest {
        report: None,
        writes: vec![write.clone()],
    };
    let head_before = a.c.changes(acid, 0, 1).unwrap().head;
    let attempts = vec![
        anon.get("/api/session"),
        anon.get("/api/clinics"),
        anon.post("/api/clinics", &create),
        anon.get(&format!("/api/clinics/{acid}")),
        anon.get(&format!("/api/clinics/{acid}/records/{rid}")),
        anon.put(
            &format!("/api/clinics/{acid}/records/{}", write.envelope.record_id),
            &write,
        ),
        anon.post(&format!("/api/clinics/{acid}/records"), &batch),
        anon.get(&format!("/api/clinics/{acid}/records")),
        anon.get(&format!("/api/clinics/{acid}/changes?since=0&limit=10")),
        anon.get(&format!("/api/clinics/{acid}/audit?since=0&limit=10")),
        // A random clinic: still 401 first, not 404.
        anon.get(&format!("/api/clinics/{}/records", Uuid::new_v4())),
    ];
    for raw in &attempts {
        assert_eq!(raw.expect_error(&[401]).code, "unauthenticated", "{raw:?}");
        assert!(!raw.text().contains(&a.s.account_id.to_string()));
    }
    assert_eq!(a.c.changes(acid, 0, 1).unwrap().head, head_before);
    assert_eq!(a.c.clinics().unwrap().clinics.len(), 1);
    assert_eq!(
        a.c.get(&format!("/api/clinics/{}", create.clinic_id))
            .status,
        404,
        "the anonymous clinic creation must not have happened"
    );
}

//! Durability: everything written is there after a restart of the server process on the same data
//! directory, with the same versions and sequence numbers; acknowledged writes survive a crash.

use std::collections::BTreeMap;

use optovault_shared::wire::*;
use optovault_tests::*;
use uuid::Uuid;

/// What a client can see of one clinic: its view and every record, with the feed's head.
#[derive(Debug, PartialEq)]
struct State {
    clinic: ClinicView,
    records: BTreeMap<Uuid, StoredRecord>,
    head: u64,
}

fn state(c: &Client, clinic_id: Uuid) -> State {
    let clinic = c.clinic(clinic_id).unwrap();
    let (changes, cursor, _) = c.all_changes(clinic_id, 0, 1000, 100).unwrap();
    let head = c.changes(clinic_id, 0, 1).unwrap().head;
    assert_eq!(cursor, head);
    let records: BTreeMap<Uuid, StoredRecord> = changes
        .into_iter()
        .map(|r| (r.envelope.record_id, r))
        .collect();
    // The list endpoint agrees with the feed.
    let listed = c.list_records(clinic_id, None, Some(1000)).unwrap();
    assert_eq!(listed.records.len(), records.len());
    for r in &listed.records {
        assert_eq!(Some(r), records.get(&r.envelope.record_id));
    }
    State {
        clinic,
        records,
        head,
    }
}

fn write_some(c: &Client, s: &Session, clinic: &Clinic, n: usize, offset: usize) -> Vec<Uuid> {
    let ids: Vec<Uuid> = (0..n).map(|_| Uuid::new_v4()).collect();
    let writes = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            patient_write(
                s,
                clinic.id,
                &clinic.keyring,
                *id,
                0,
                &sample_patient(offset + i),
            )
        })
        .collect();
    c.batch(clinic.id, writes).unwrap();
    ids
}

#[test]
fn everything_survives_a_restart() {
    let mut server = TestServer::start();
    let c = server.client();
    let user = unique_username("durable");
    let pw = strong_password();
    let s = c.signup(&user, &pw);
    let clinic = c.create_clinic(&s, "Persistent Vision").unwrap();
    let ids = write_some(&c, &s, &clinic, 20, 0);
    c.put_patient(&s, &clinic, ids[3], 1, &sample_patient(300))
        .unwrap();
    c.put_patient(&s, &clinic, ids[3], 2, &sample_patient(301))
        .unwrap();
    let single = Uuid::new_v4();
    c.put_patient(&s, &clinic, single, 0, &sample_patient(400))
        .unwrap();
    let before = state(&c, clinic.id);
    assert_eq!(before.records.len(), 21);
    assert_eq!(before.head, 23);
    let events_before = c.access_events(clinic.id, 0, 1000).unwrap();

    server.restart();

    // Log in again (sessions may or may not survive a restart; the account must).
    let c2 = server.client();
    let s2 = c2
        .login(&user, &pw)
        .expect("login after restart: OPAQUE server setup and password file persisted");
    assert_eq!(s2.account_id, s.account_id);
    assert_eq!(s2.keys.public_keys(), s.keys.public_keys());
    let after = state(&c2, clinic.id);
    assert_eq!(after, before, "state differs after restart");
    let (profile, ring) = open_clinic(&s2, &after.clinic).unwrap();
    assert_eq!(profile.name, "Persistent Vision");
    let r = &after.records[&ids[3]];
    assert_eq!(r.envelope.version, 3);
    assert_eq!(
        open_patient(&s2, clinic.id, &ring, &r.envelope).unwrap(),
        sample_patient(301)
    );

    // The sequence continues where it was, and versions keep checking.
    let w = c2
        .put_patient(&s2, &clinic, Uuid::new_v4(), 0, &sample_patient(500))
        .unwrap();
    assert_eq!(
        w.seq,
        before.head + 1,
        "sequence numbers must continue after a restart"
    );
    let stale = patient_write(
        &s2,
        clinic.id,
        &clinic.keyring,
        ids[3],
        2,
        &sample_patient(9),
    );
    assert_eq!(
        c2.put(
            &format!("/api/clinics/{}/records/{}", clinic.id, ids[3]),
            &stale
        )
        .expect_error(&[409])
        .code,
        "version_conflict"
    );
    // The access log survived too, and continues.
    let events_after = c2.access_events(clinic.id, 0, 1000).unwrap();
    assert!(events_after.entries.len() >= events_before.entries.len());
    assert_eq!(
        &events_after.entries[..events_before.entries.len()],
        &events_before.entries[..],
        "access log entries changed across a restart"
    );
    // Usernames stay taken.
    assert_eq!(c2.register(&user, &pw).unwrap_err().status, 409);
    // Sessions issued before the restart are either still valid or cleanly 401.
    let old = c.session();
    match old {
        Ok(info) => assert_eq!(info.account_id, s.account_id),
        Err(e) => assert_eq!(e.status, 401, "{e}"),
    }
}

#[test]
fn acknowledged_writes_survive_a_crash() {
    let mut server = TestServer::start();
    let c = server.client();
    let user = unique_username("crash");
    let pw = strong_password();
    let s = c.signup(&user, &pw);
    let clinic = c.create_clinic(&s, "Crash Test Optics").unwrap();
    let ids = write_some(&c, &s, &clinic, 10, 0);
    let last = Uuid::new_v4();
    let w = c
        .put_patient(&s, &clinic, last, 0, &sample_patient(77))
        .unwrap();
    c.put_patient(&s, &clinic, ids[0], 1, &sample_patient(78))
        .unwrap();
    let before = state(&c, clinic.id);

    // Power cut right after the last acknowledgement: no graceful shutdown, no flush on exit.
    server.kill_hard();
    server.start_again();

    let c2 = server.client();
    let s2 = c2.login(&user, &pw).expect("the account survives a crash");
    let after = state(&c2, clinic.id);
    assert_eq!(
        after, before,
        "acknowledged writes lost or changed by a crash"
    );
    assert!(after.records.contains_key(&last));
    assert_eq!(after.records[&last].seq, w.seq);
    assert_eq!(
        open_patient(
            &s2,
            clinic.id,
            &clinic.keyring,
            &after.records[&ids[0]].envelope
        )
        .unwrap(),
        sample_patient(78)
    );
}

#[test]
fn sigterm_after_serving_shuts_down_cleanly() {
    let mut server = TestServer::start();
    let c = server.client();
    assert_eq!(c.health().status, 200);
    let status = server.stop().expect("was running");
    use std::os::unix::process::ExitStatusExt;
    assert!(
        status.success(),
        "SIGTERM should shut the server down gracefully with exit code 0, got {status:?} (signal {:?})",
        status.signal()
    );
}

#[test]
fn sigterm_right_after_the_ready_line_shuts_down_cleanly() {
    // Scripts and orchestrators treat `listening on` as "ready": from then on a SIGTERM must take
    // the graceful path (flush, exit 0), not the default action. This races the server's signal
    // handler installation, so a failure here is timing-dependent but always real.
    use std::os::unix::process::ExitStatusExt;
    for _ in 0..5 {
        let mut server = TestServer::start();
        let status = server.stop().expect("was running");
        assert!(
            status.success(),
            "SIGTERM right after `listening on` killed the server: {status:?} (signal {:?}); \
             install the SIGTERM/SIGINT handlers before printing the ready line",
            status.signal()
        );
    }
}

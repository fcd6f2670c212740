//! Restricted charts against a real server: only the care team fetches and decrypts a restricted
//! chart; everyone else learns only that it exists; leaving the care team rotates its keys.

use optovault_shared::crypto::{self, CryptoError};
use optovault_shared::envelope::Purpose;
use optovault_shared::team;
use optovault_shared::wire::*;
use optovault_shared::Compartment;
use optovault_tests::team::{clinical_note_write, wrap_chart_keys};
use optovault_tests::*;
use uuid::Uuid;

struct Fx {
    server: TestServer,
    oc: Client,
    owner: Session,
    clinic: Clinic,
    patient: Uuid,
    doc: (Client, Session),
    desk: (Client, Session),
}

fn join(
    server: &TestServer,
    oc: &Client,
    owner: &Session,
    clinic: &Clinic,
    role: Role,
) -> (Client, Session) {
    let c = server.client();
    let s = c.signup(&unique_username("m"), &strong_password());
    let link = oc.invite(owner, clinic, role).unwrap();
    c.accept(&s, &link).unwrap();
    oc.admit(owner, clinic, link.invitation_id)
        .unwrap()
        .unwrap();
    (c, s)
}

fn fixture() -> Fx {
    let server = TestServer::start();
    let oc = server.client();
    let owner = oc.signup(&unique_username("owner"), &strong_password());
    let clinic = oc.create_clinic(&owner, "Quiet Lane Optometry").unwrap();
    let patient = Uuid::new_v4();
    oc.put_patient(&owner, &clinic, patient, 0, &sample_patient(7))
        .unwrap();
    let doc = join(&server, &oc, &owner, &clinic, Role::Optometrist);
    let desk = join(&server, &oc, &owner, &clinic, Role::FrontDesk);
    Fx {
        server,
        oc,
        owner,
        clinic,
        patient,
        doc,
        desk,
    }
}

#[test]
fn a_restricted_chart_is_for_its_care_team_only() {
    let f = fixture();
    let (doc_c, doc) = &f.doc;
    let (desk_c, desk) = &f.desk;
    // A clinical note on the chart before restriction.
    let doc_clinic = doc_c.join_view(doc, f.clinic.id);
    doc_c
        .batch(
            f.clinic.id,
            vec![clinical_note_write(
                doc,
                f.clinic.id,
                &doc_clinic.keyring,
                f.patient,
                "before",
            )],
        )
        .unwrap();

    let ring =
        f.oc.restrict_chart(
            &f.owner,
            &f.clinic,
            f.patient,
            &[f.owner.account_id, doc.account_id],
            &[&f.owner, doc],
        )
        .unwrap();
    assert!(ring.has_chart(&f.patient));

    // Front desk: the patient record is refused and gone from its feed; it sees only that a
    // restricted chart exists, not who is on it.
    let r = desk_c.get(&format!(
        "/api/clinics/{}/records/{}",
        f.clinic.id, f.patient
    ));
    assert_eq!(r.expect_error(&[403]).code, "restricted_chart");
    let (feed, _, _) = desk_c.all_changes(f.clinic.id, 0, 100, 10).unwrap();
    assert!(feed.iter().all(|r| r.envelope.chart_id != f.patient));
    let list = desk_c.restricted_charts(f.clinic.id).unwrap();
    assert_eq!(list.charts.len(), 1);
    assert_eq!(
        (list.charts[0].chart_id, list.charts[0].in_care_team),
        (f.patient, false)
    );
    assert!(list.charts[0].care_team.is_empty());
    // Nor can it write to the chart.
    let desk_view = desk_c.join_view(desk, f.clinic.id);
    let w = patient_write(
        desk,
        f.clinic.id,
        &desk_view.keyring,
        f.patient,
        2,
        &sample_patient(8),
    );
    assert_eq!(
        desk_c.put_record(f.clinic.id, &w).unwrap_err().code,
        "restricted_chart"
    );

    // The optometrist (on the team) reads every record of the chart with the chart keys only.
    let doc_view = doc_c.join_view(doc, f.clinic.id);
    assert!(doc_view.keyring.has_chart(&f.patient));
    let (feed, _, _) = doc_c.all_changes(f.clinic.id, 0, 100, 10).unwrap();
    let on_chart: Vec<_> = feed
        .iter()
        .filter(|r| r.envelope.chart_id == f.patient)
        .collect();
    assert_eq!(on_chart.len(), 2, "the patient and the note, re-sealed");
    for r in &on_chart {
        assert!(doc_view.keyring.by_id(&r.envelope.key_id).unwrap().chart_id == Some(f.patient));
        crypto::open_record(
            &f.clinic.id,
            Purpose::Record,
            &r.envelope,
            &doc_view.keyring,
            |id| {
                [&f.owner, doc]
                    .iter()
                    .find(|s| &s.account_id == id)
                    .map(|s| s.ed25519())
            },
        )
        .unwrap();
    }
    // Front desk's keys cannot open the re-sealed patient either.
    let p = f.oc.get_record(f.clinic.id, f.patient).unwrap();
    assert!(matches!(
        crypto::open_record(
            &f.clinic.id,
            Purpose::Record,
            &p.envelope,
            &desk_view.keyring,
            |_| Some(f.owner.ed25519())
        ),
        Err(CryptoError::UnknownKey(_))
    ));
    // Writing to the chart with a clinic-wide key is refused even for the team.
    let w = patient_write(
        doc,
        f.clinic.id,
        &doc_clinic.keyring,
        f.patient,
        p.envelope.version,
        &sample_patient(9),
    );
    assert_eq!(
        doc_c.put_record(f.clinic.id, &w).unwrap_err().code,
        "unknown_key"
    );
    // With the chart key it works.
    let w = patient_write(
        doc,
        f.clinic.id,
        &doc_view.keyring,
        f.patient,
        p.envelope.version,
        &sample_patient(9),
    );
    doc_c.put_record(f.clinic.id, &w).unwrap();
    // Restricting twice: 409.
    let again = f.oc.post(
        &format!("/api/clinics/{}/charts/{}/restrict", f.clinic.id, f.patient),
        &RestrictChartRequest {
            care_team: vec![f.owner.account_id],
            wrapped_keys: vec![],
            reseal: vec![],
        },
    );
    assert_eq!(again.expect_error(&[409]).code, "chart_restricted");
    // Front desk cannot restrict a chart.
    let other = Uuid::new_v4();
    f.oc.put_patient(&f.owner, &f.clinic, other, 0, &sample_patient(3))
        .unwrap();
    let r = desk_c.post(
        &format!("/api/clinics/{}/charts/{other}/restrict", f.clinic.id),
        &RestrictChartRequest {
            care_team: vec![desk.account_id],
            wrapped_keys: vec![],
            reseal: vec![],
        },
    );
    assert_eq!(r.status, 403);
}

#[test]
fn leaving_the_care_team_rotates_the_chart_keys() {
    let f = fixture();
    let (doc_c, doc) = &f.doc;
    let (desk_c, desk) = &f.desk;
    f.oc.restrict_chart(
        &f.owner,
        &f.clinic,
        f.patient,
        &[f.owner.account_id, doc.account_id],
        &[&f.owner],
    )
    .unwrap();
    let doc_old = doc_c.join_view(doc, f.clinic.id);
    let owner_view = f.oc.join_view(&f.owner, f.clinic.id);
    let anchor = f.owner.keys.public_keys().ed25519.0;
    let roster = f.oc.verified_roster(f.clinic.id, &anchor);

    // Adding front desk: it receives the existing chart key its role grants (demographics).
    let add = wrap_chart_keys(
        &roster,
        &owner_view.keyring,
        f.clinic.id,
        f.patient,
        1,
        &[desk.account_id],
    );
    let team3 = vec![f.owner.account_id, doc.account_id, desk.account_id];
    f.oc.change_care_team(
        f.clinic.id,
        f.patient,
        &CareTeamRequest {
            care_team: team3.clone(),
            key_epoch: 1,
            wrapped_keys: add,
        },
    )
    .unwrap();
    desk_c.get_record(f.clinic.id, f.patient).unwrap();
    let desk_view = desk_c.join_view(desk, f.clinic.id);
    assert_eq!(
        desk_view
            .keyring
            .keys()
            .iter()
            .filter(|k| k.chart_id == Some(f.patient))
            .count(),
        1
    );

    // Removing the optometrist without new keys: refused.
    let team2 = vec![f.owner.account_id, desk.account_id];
    let r = f.oc.change_care_team(
        f.clinic.id,
        f.patient,
        &CareTeamRequest {
            care_team: team2.clone(),
            key_epoch: 1,
            wrapped_keys: vec![],
        },
    );
    assert_eq!(r.unwrap_err().code, "invalid_epoch");
    // With epoch 2 keys for those who stay: accepted; the optometrist is shut out.
    let mut ring2 = owner_view.keyring.clone();
    ring2.add_chart_keys(f.patient, &Compartment::ALL, 2);
    let keys2 = wrap_chart_keys(&roster, &ring2, f.clinic.id, f.patient, 2, &team2);
    f.oc.change_care_team(
        f.clinic.id,
        f.patient,
        &CareTeamRequest {
            care_team: team2,
            key_epoch: 2,
            wrapped_keys: keys2,
        },
    )
    .unwrap();
    let r = doc_c.get(&format!(
        "/api/clinics/{}/records/{}",
        f.clinic.id, f.patient
    ));
    assert_eq!(r.expect_error(&[403]).code, "restricted_chart");
    assert!(
        !doc_c
            .join_view(doc, f.clinic.id)
            .keyring
            .has_chart(&f.patient),
        "its chart keys were withdrawn"
    );

    // New writes need epoch 2; what is written now does not open with the optometrist's old keys.
    let p = f.oc.get_record(f.clinic.id, f.patient).unwrap();
    let stale = patient_write(
        &f.owner,
        f.clinic.id,
        &owner_view.keyring,
        f.patient,
        p.envelope.version,
        &sample_patient(10),
    );
    assert_eq!(
        f.oc.put_record(f.clinic.id, &stale).unwrap_err().code,
        "stale_key_epoch"
    );
    let owner_view2 = f.oc.join_view(&f.owner, f.clinic.id);
    let fresh = patient_write(
        &f.owner,
        f.clinic.id,
        &owner_view2.keyring,
        f.patient,
        p.envelope.version,
        &sample_patient(10),
    );
    f.oc.put_record(f.clinic.id, &fresh).unwrap();
    let stored = f.oc.get_record(f.clinic.id, f.patient).unwrap();
    assert_eq!(stored.envelope.epoch, 2);
    assert!(matches!(
        crypto::open_record(
            &f.clinic.id,
            Purpose::Record,
            &stored.envelope,
            &doc_old.keyring,
            |_| Some(f.owner.ed25519())
        ),
        Err(CryptoError::UnknownKey(_))
    ));
    // Front desk, still on the team, reads it.
    let desk_view = desk_c.join_view(desk, f.clinic.id);
    let got = open_patient_by(
        &[&f.owner],
        f.clinic.id,
        &desk_view.keyring,
        &desk_c.get_record(f.clinic.id, f.patient).unwrap().envelope,
    )
    .unwrap();
    assert_eq!(got, sample_patient(10).normalized());
    let _ = team::fingerprint(&desk.keys.public_keys());
}

#[test]
fn a_newly_admitted_member_gets_no_chart_keys() {
    let f = fixture();
    f.oc.restrict_chart(
        &f.owner,
        &f.clinic,
        f.patient,
        &[f.owner.account_id],
        &[&f.owner],
    )
    .unwrap();
    let owner_view = f.oc.join_view(&f.owner, f.clinic.id);
    assert!(owner_view.keyring.has_chart(&f.patient));
    let c = f.server.client();
    let newbie = c.signup(&unique_username("newbie"), &strong_password());
    let link =
        f.oc.invite(&f.owner, &owner_view, Role::Optometrist)
            .unwrap();
    c.accept(&newbie, &link).unwrap();
    // An admission that smuggles the chart's keys in is refused.
    let anchor = f.owner.keys.public_keys().ed25519.0;
    let roster = f.oc.verified_roster(f.clinic.id, &anchor);
    let entry = team::sign_entry(
        &team::next_entry(
            &roster,
            f.owner.account_id,
            optovault_shared::roster::RosterChange::Add {
                member: newbie.account_id,
                username: newbie.username.clone(),
                role: Role::Optometrist,
                public_keys: newbie.keys.public_keys(),
            },
            roster.key_epoch,
            1,
        ),
        &f.owner.keys,
    );
    let mut keys = team::wrap_for_member(
        &f.clinic.id,
        &owner_view.keyring,
        Role::Optometrist,
        &newbie.account_id,
        &newbie.keys.public_keys(),
    )
    .unwrap();
    assert!(
        keys.iter().all(|k| k.chart_id.is_none()),
        "role keys never include chart keys"
    );
    keys.extend(
        wrap_chart_keys(
            &roster,
            &owner_view.keyring,
            f.clinic.id,
            f.patient,
            1,
            &[f.owner.account_id],
        )
        .into_iter()
        .map(|mut k| {
            k.recipient = newbie.account_id;
            k
        }),
    );
    let r = f.oc.post(
        &format!("/api/clinics/{}/members", f.clinic.id),
        &AddMemberRequest {
            invitation_id: link.invitation_id,
            roster_entry: entry,
            wrapped_keys: keys,
        },
    );
    assert_eq!(r.expect_error(&[400]).code, "invalid_wrapped_keys");
    // The normal admission gives only the role's clinic keys.
    f.oc.admit(&f.owner, &owner_view, link.invitation_id)
        .unwrap()
        .unwrap();
    let view = c.join_view(&newbie, f.clinic.id);
    assert!(!view.keyring.has_chart(&f.patient));
    assert_eq!(view.keyring.keys().len(), Compartment::ALL.len());
}

#[test]
fn removing_a_care_team_member_from_the_clinic_rotates_its_charts_too() {
    let f = fixture();
    let (doc_c, doc) = &f.doc;
    f.oc.restrict_chart(
        &f.owner,
        &f.clinic,
        f.patient,
        &[f.owner.account_id, doc.account_id],
        &[&f.owner],
    )
    .unwrap();
    let doc_old = doc_c.join_view(doc, f.clinic.id);
    assert!(doc_old.keyring.has_chart(&f.patient));
    let owner_now = f.oc.join_view(&f.owner, f.clinic.id);

    // A rotation that leaves the chart's keys alone is refused whole.
    let (mut without, _) = f.oc.rotation_request(
        &f.owner,
        &owner_now,
        optovault_shared::roster::RosterChange::Remove {
            member: doc.account_id,
        },
    );
    without.wrapped_keys.retain(|k| k.chart_id.is_none());
    assert_eq!(
        f.oc.rotate(f.clinic.id, &without).unwrap_err().code,
        "invalid_wrapped_keys"
    );
    assert!(doc_c.session().is_ok());

    let (req, _) = f.oc.rotation_request(
        &f.owner,
        &owner_now,
        optovault_shared::roster::RosterChange::Remove {
            member: doc.account_id,
        },
    );
    f.oc.rotate(f.clinic.id, &req).unwrap();
    let chart = &f.oc.restricted_charts(f.clinic.id).unwrap().charts[0];
    assert_eq!(
        (chart.key_epoch, chart.care_team.clone()),
        (2, vec![f.owner.account_id])
    );

    // The owner writes the chart under its epoch-2 key; the removed member's keys do not open it.
    let owner_view = f.oc.join_view(&f.owner, f.clinic.id);
    let p = f.oc.get_record(f.clinic.id, f.patient).unwrap();
    let w = patient_write(
        &f.owner,
        f.clinic.id,
        &owner_view.keyring,
        f.patient,
        p.envelope.version,
        &sample_patient(11),
    );
    f.oc.put_record(f.clinic.id, &w).unwrap();
    let stored = f.oc.get_record(f.clinic.id, f.patient).unwrap();
    assert_eq!(stored.envelope.epoch, 2);
    assert!(
        owner_view
            .keyring
            .by_id(&stored.envelope.key_id)
            .unwrap()
            .chart_id
            == Some(f.patient)
    );
    assert!(matches!(
        crypto::open_record(
            &f.clinic.id,
            Purpose::Record,
            &stored.envelope,
            &doc_old.keyring,
            |_| Some(f.owner.ed25519())
        ),
        Err(CryptoError::UnknownKey(_))
    ));
}

/// The change feed as headers and reads by id (how a browser opens a clinic from its patient
/// index and loads a chart when it is opened) leave out exactly what the full feed leaves out:
/// other roles' compartments and restricted charts the caller is not on.
#[test]
fn headers_and_reads_by_id_follow_roles_and_restrictions() {
    let f = fixture();
    let (doc_c, doc) = &f.doc;
    let (desk_c, _) = &f.desk;
    let doc_clinic = doc_c.join_view(doc, f.clinic.id);
    let note = clinical_note_write(doc, f.clinic.id, &doc_clinic.keyring, f.patient, "IOP 31");
    let note_id = note.envelope.record_id;
    doc_c.batch(f.clinic.id, vec![note]).unwrap();
    let open = Uuid::new_v4();
    f.oc.put_patient(&f.owner, &f.clinic, open, 0, &sample_patient(4))
        .unwrap();

    // The owner's index shards (as a browser writes them) are accepted and read back by id.
    let writes = index_writes(
        &f.owner,
        f.clinic.id,
        &f.clinic.keyring,
        &[(open, 1, sample_patient(4))],
    );
    let shard_id = writes[0].envelope.record_id;
    f.oc.batch(f.clinic.id, writes).unwrap();
    let got = desk_c.read_records(f.clinic.id, &[shard_id]).unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].envelope.chart_id, f.clinic.id);

    // Headers carry what the full feed carries, without ciphertext, for every role.
    for c in [&f.oc, doc_c, desk_c] {
        let (full, _, _) = c.all_changes(f.clinic.id, 0, 1000, 10).unwrap();
        let heads = c.change_headers(f.clinic.id, 0, 1000).unwrap();
        assert!(!heads.more);
        let want: Vec<_> = full
            .iter()
            .map(|r| {
                (
                    r.seq,
                    r.envelope.record_id,
                    r.envelope.chart_id,
                    r.envelope.version,
                    r.envelope.compartment,
                )
            })
            .collect();
        let got: Vec<_> = heads
            .changes
            .iter()
            .map(|h| (h.seq, h.record_id, h.chart_id, h.version, h.compartment))
            .collect();
        assert_eq!(got, want);
    }
    let desk_heads = desk_c.change_headers(f.clinic.id, 0, 1000).unwrap();
    assert!(
        desk_heads.changes.iter().all(|h| h.record_id != note_id),
        "front desk is not sent the clinical note's header"
    );
    // Paging by one ends at the head.
    let mut since = 0;
    let mut seen = 0;
    loop {
        let p = f.oc.change_headers(f.clinic.id, since, 1).unwrap();
        seen += p.changes.len();
        since = p.cursor;
        if !p.more {
            break;
        }
    }
    assert_eq!(seen, 4);

    // Reads by id: the order asked, repeats and unknown ids left out, the chart's read logged.
    let unknown = Uuid::new_v4();
    let got = doc_c
        .read_records(f.clinic.id, &[note_id, unknown, f.patient, note_id])
        .unwrap();
    let ids: Vec<Uuid> = got.iter().map(|r| r.envelope.record_id).collect();
    assert_eq!(ids, [note_id, f.patient]);
    let events = f.oc.access_events(f.clinic.id, 0, 1000).unwrap().entries;
    let last = events
        .iter()
        .rev()
        .find(|e| e.actor == Some(doc.account_id) && e.action == "chart_read")
        .expect("opening a chart is logged as chart_read");
    assert_eq!((last.target, last.count), (Some(f.patient), 2));
    // Front desk: the clinical note is not theirs to read.
    let got = desk_c
        .read_records(f.clinic.id, &[note_id, f.patient])
        .unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].envelope.record_id, f.patient);

    // Once restricted to the owner and the optometrist, front desk reads nothing of the chart.
    f.oc.restrict_chart(
        &f.owner,
        &f.clinic,
        f.patient,
        &[f.owner.account_id, doc.account_id],
        &[&f.owner, doc],
    )
    .unwrap();
    let got = desk_c
        .read_records(f.clinic.id, &[f.patient, note_id, open])
        .unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].envelope.record_id, open);
    let heads = desk_c.change_headers(f.clinic.id, 0, 1000).unwrap();
    assert!(heads.changes.iter().all(|h| h.chart_id != f.patient));
    assert_eq!(
        doc_c
            .read_records(f.clinic.id, &[f.patient, note_id])
            .unwrap()
            .len(),
        2
    );

    // Bad requests: nothing, or too much, at once.
    let r = desk_c.post(
        &format!("/api/clinics/{}/records/read", f.clinic.id),
        &ReadRecordsRequest { record_ids: vec![] },
    );
    assert_eq!(r.expect_error(&[400]).code, "invalid_batch");
    let r = desk_c.post(
        &format!("/api/clinics/{}/records/read", f.clinic.id),
        &ReadRecordsRequest {
            record_ids: (0..1001).map(|_| Uuid::new_v4()).collect(),
        },
    );
    assert_eq!(r.expect_error(&[400]).code, "invalid_batch");
    // Outsiders learn nothing.
    let stranger = f.server.client();
    stranger.signup(&unique_username("x"), &strong_password());
    assert_eq!(
        stranger
            .read_records(f.clinic.id, &[open])
            .unwrap_err()
            .code,
        "not_found"
    );
    assert_eq!(
        stranger
            .change_headers(f.clinic.id, 0, 10)
            .unwrap_err()
            .code,
        "not_found"
    );
}

/// Erasure (GDPR Art. 17): only an owner erases, only a restricted chart; afterwards nothing of
/// the chart is served, every copy of its keys is gone (so a copy of its ciphertext taken before
/// can no longer be opened, even by the owner), other charts are untouched, and the audit log
/// keeps the fact and the chart's random id, nothing identifying.
#[test]
fn an_erased_chart_can_no_longer_be_opened_by_anyone() {
    let f = fixture();
    let (doc_c, doc) = &f.doc;
    let path = format!("/api/clinics/{}/charts/{}/erase", f.clinic.id, f.patient);
    let confirm = EraseChartRequest {
        chart_id: f.patient,
    };
    // A second patient, who must survive.
    let other = Uuid::new_v4();
    f.oc.put_patient(&f.owner, &f.clinic, other, 0, &sample_patient(8))
        .unwrap();
    // Not restricted yet: refused, so nothing is erased that is sealed under the clinic's keys.
    assert_eq!(
        f.oc.post(&path, &confirm).expect_error(&[409]).code,
        "restrict_first"
    );
    let doc_clinic = doc_c.join_view(doc, f.clinic.id);
    doc_c
        .batch(
            f.clinic.id,
            vec![clinical_note_write(
                doc,
                f.clinic.id,
                &doc_clinic.keyring,
                f.patient,
                "to be erased",
            )],
        )
        .unwrap();
    let ring =
        f.oc.restrict_chart(
            &f.owner,
            &f.clinic,
            f.patient,
            &[f.owner.account_id, doc.account_id],
            &[&f.owner, doc],
        )
        .unwrap();
    // What a copy of the database (or a backup) would hold of the chart, taken before.
    let kept = f.oc.get_record(f.clinic.id, f.patient).unwrap().envelope;
    let author_key = |id: &Uuid| (id == &f.owner.account_id).then(|| f.owner.ed25519());
    assert!(crypto::open_record(&f.clinic.id, Purpose::Record, &kept, &ring, author_key).is_ok());

    // Only an owner, and only with the chart's id as confirmation.
    assert_eq!(
        doc_c.post(&path, &confirm).expect_error(&[403]).code,
        "forbidden"
    );
    let wrong = EraseChartRequest { chart_id: other };
    assert_eq!(
        f.oc.post(&path, &wrong).expect_error(&[400]).code,
        "confirmation_mismatch"
    );
    let erased: ChartErased = f.oc.post(&path, &confirm).parse();
    assert_eq!(erased.records, 2, "the patient and the note");

    // Nothing of the chart is served any more, to anyone.
    for c in [&f.oc, doc_c] {
        let r = c.get(&format!(
            "/api/clinics/{}/records/{}",
            f.clinic.id, f.patient
        ));
        assert_eq!(r.status, 404);
        let (feed, _, _) = c.all_changes(f.clinic.id, 0, 100, 10).unwrap();
        assert!(feed.iter().all(|r| r.envelope.chart_id != f.patient));
        assert!(c.restricted_charts(f.clinic.id).unwrap().charts.is_empty());
    }
    let history = f.oc.get(&format!(
        "/api/clinics/{}/records/{}/versions",
        f.clinic.id, f.patient
    ));
    assert_eq!(history.status, 404);
    // The chart's keys are gone from every member: the copy taken before no longer opens.
    for (c, who) in [(&f.oc, &f.owner), (doc_c, doc)] {
        let now = c.join_view(who, f.clinic.id);
        assert!(!now.keyring.has_chart(&f.patient));
        assert_eq!(
            crypto::open_record(
                &f.clinic.id,
                Purpose::Record,
                &kept,
                &now.keyring,
                author_key
            ),
            Err(CryptoError::UnknownKey(kept.key_id))
        );
    }
    // The other patient is untouched.
    assert!(f.oc.get_record(f.clinic.id, other).is_ok());
    // The log keeps the fact: the chart's random id and how many records, no detail.
    let log = f.oc.access_events(f.clinic.id, 0, 1000).unwrap().entries;
    let e = log
        .iter()
        .find(|e| e.action == "chart_erased")
        .expect("logged");
    assert_eq!(
        (e.target, e.count, e.actor),
        (Some(f.patient), 2, Some(f.owner.account_id))
    );
    assert!(e.detail.is_none());
    // Erasing again finds nothing restricted.
    assert_eq!(
        f.oc.post(&path, &confirm).expect_error(&[409]).code,
        "restrict_first"
    );
}

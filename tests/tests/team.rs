//! The clinic team end to end against a real server: invitations, the signed roster, roles as
//! keys, removal with key rotation, and what the server refuses on the way.

use optovault_shared::crypto::{self, CryptoError};
use optovault_shared::envelope::Purpose;
use optovault_shared::roster::RosterChange;
use optovault_shared::team;
use optovault_shared::wire::*;
use optovault_shared::Compartment;
use optovault_tests::team::clinical_note_write;
use optovault_tests::*;
use uuid::Uuid;

struct Team {
    server: TestServer,
    owner_c: Client,
    owner: Session,
    clinic: Clinic,
    patient: Uuid,
}

fn clinic_with_patient() -> Team {
    let server = TestServer::start();
    let owner_c = server.client();
    let owner = owner_c.signup(&unique_username("owner"), &strong_password());
    let clinic = owner_c.create_clinic(&owner, "Harbour Eye Care").unwrap();
    let patient = Uuid::new_v4();
    owner_c
        .put_patient(&owner, &clinic, patient, 0, &sample_patient(1))
        .unwrap();
    Team {
        server,
        owner_c,
        owner,
        clinic,
        patient,
    }
}

/// Registers an account and brings it into the clinic with `role`.
fn join(t: &Team, name: &str, role: Role) -> (Client, Session, Clinic) {
    let c = t.server.client();
    let s = c.signup(&unique_username(name), &strong_password());
    let link = t.owner_c.invite(&t.owner, &t.clinic, role).unwrap();
    let info = c.accept(&s, &link).unwrap();
    assert_eq!((info.role, info.status), (role, InvitationStatus::Accepted));
    let member = t
        .owner_c
        .admit(&t.owner, &t.clinic, link.invitation_id)
        .unwrap()
        .unwrap();
    assert_eq!((member.account_id, member.role), (s.account_id, role));
    let clinic = c.join_view(&s, t.clinic.id);
    (c, s, clinic)
}

fn authors(sessions: &[&Session]) -> impl Fn(&Uuid) -> Option<Vec<u8>> {
    let keys: Vec<(Uuid, Vec<u8>)> = sessions
        .iter()
        .map(|s| (s.account_id, s.ed25519()))
        .collect();
    move |id| keys.iter().find(|(k, _)| k == id).map(|(_, v)| v.clone())
}

#[test]
fn roles_are_keys_and_the_server_enforces_them_too() {
    let t = clinic_with_patient();
    let (desk_c, desk, desk_clinic) = join(&t, "desk", Role::FrontDesk);
    let (doc_c, doc, doc_clinic) = join(&t, "doc", Role::Optometrist);

    // Key sets: front desk holds the demographics key only; the optometrist all three.
    let comps = |c: &Clinic| {
        let mut v: Vec<Compartment> = c.keyring.keys().iter().map(|k| k.compartment).collect();
        v.sort();
        v
    };
    assert_eq!(comps(&desk_clinic), vec![Compartment::Demographics]);
    assert_eq!(comps(&doc_clinic), Compartment::ALL.to_vec());

    // Both read the patient.
    for (c, s, k) in [(&desk_c, &desk, &desk_clinic), (&doc_c, &doc, &doc_clinic)] {
        let r = c.get_record(t.clinic.id, t.patient).unwrap();
        let p = open_patient_by(&[&t.owner, s], t.clinic.id, &k.keyring, &r.envelope).unwrap();
        assert_eq!(p, sample_patient(1).normalized());
    }

    // The optometrist writes a clinical note.
    let note = clinical_note_write(
        &doc,
        t.clinic.id,
        &doc_clinic.keyring,
        t.patient,
        "IOP 24/25, suspect glaucoma",
    );
    let note_id = note.envelope.record_id;
    doc_c.batch(t.clinic.id, vec![note.clone()]).unwrap();

    // Front desk: the server refuses the note (403), leaves it out of the feed, and refuses a
    // clinical write; and the note's envelope does not open with front desk's keys anyway.
    let denied = desk_c.get(&format!("/api/clinics/{}/records/{note_id}", t.clinic.id));
    assert_eq!(denied.expect_error(&[403]).code, "forbidden");
    let (feed, _, _) = desk_c.all_changes(t.clinic.id, 0, 100, 10).unwrap();
    assert!(feed
        .iter()
        .all(|r| r.envelope.compartment == Compartment::Demographics));
    assert!(feed.iter().all(|r| r.envelope.record_id != note_id));
    let (owner_feed, _, _) = t.owner_c.all_changes(t.clinic.id, 0, 100, 10).unwrap();
    assert!(owner_feed.iter().any(|r| r.envelope.record_id == note_id));
    assert_eq!(
        crypto::open_record(
            &t.clinic.id,
            Purpose::Record,
            &note.envelope,
            &desk_clinic.keyring,
            authors(&[&doc])
        )
        .unwrap_err(),
        CryptoError::UnknownKey(note.envelope.key_id)
    );
    let desk_note = desk_c.post(
        &format!("/api/clinics/{}/records", t.clinic.id),
        &BatchWriteRequest {
            report: None,
            writes: vec![clinical_note_write(
                &desk,
                t.clinic.id,
                &doc_clinic.keyring,
                t.patient,
                "x",
            )],
        },
    );
    assert_eq!(desk_note.status, 403);

    // The owner reads the note, verifying the author against the verified roster.
    let anchor = t.owner.keys.public_keys().ed25519.0;
    let roster = t.owner_c.verified_roster(t.clinic.id, &anchor);
    assert_eq!(roster.head_seq, 3);
    let r = t.owner_c.get_record(t.clinic.id, note_id).unwrap();
    let pt = crypto::open_record(
        &t.clinic.id,
        Purpose::Record,
        &r.envelope,
        &t.clinic.keyring,
        |id| roster.signing_key(id).map(|k| k.to_vec()),
    )
    .unwrap();
    assert!(String::from_utf8_lossy(&pt).contains("suspect glaucoma"));

    // Members see the member list; only owners manage invitations.
    let members = desk_c.members(t.clinic.id).unwrap().members;
    assert_eq!(members.len(), 3);
    assert!(
        members.iter().all(|m| m.last_login_at.is_some()),
        "last activity is known for everyone who logged in"
    );
    assert_eq!(
        desk_c
            .get(&format!("/api/clinics/{}/invitations", t.clinic.id))
            .status,
        403
    );
    // A member verifies the roster from its own pinned anchor.
    let desk_anchor =
        team::open_pinned_anchor(&desk.keys, &t.clinic.id, &desk_clinic.view.pinned_anchor)
            .unwrap();
    assert_eq!(desk_anchor, anchor);
    assert_eq!(
        desk_c
            .verified_roster(t.clinic.id, &desk_anchor)
            .role_of(&desk.account_id),
        Some(Role::FrontDesk)
    );
}

#[test]
fn invitations_are_single_use_revocable_and_bound_to_the_invitee() {
    let t = clinic_with_patient();
    let c = t.server.client();
    let alice = c.signup(&unique_username("alice"), &strong_password());
    let c2 = t.server.client();
    let mallory = c2.signup(&unique_username("mallory"), &strong_password());

    // Revoked: cannot be accepted.
    let link = t
        .owner_c
        .invite(&t.owner, &t.clinic, Role::Billing)
        .unwrap();
    assert_eq!(
        t.owner_c
            .delete(&format!(
                "/api/clinics/{}/invitations/{}",
                t.clinic.id, link.invitation_id
            ))
            .status,
        204
    );
    assert_eq!(
        c.accept_raw(&alice, &link).expect_error(&[410]).code,
        "invitation_used"
    );

    // Used: the second acceptance loses.
    let link = t
        .owner_c
        .invite(&t.owner, &t.clinic, Role::Billing)
        .unwrap();
    c.accept(&alice, &link).unwrap();
    assert_eq!(
        c2.accept_raw(&mallory, &link).expect_error(&[410]).code,
        "invitation_used"
    );

    // Someone who holds the invitation id but not the secret (the operator, say) accepts first:
    // the owner's client finds the MAC wrong and does not admit.
    let link = t
        .owner_c
        .invite(&t.owner, &t.clinic, Role::Optometrist)
        .unwrap();
    let mut forged = link.clone();
    forged.secret = [9u8; 32];
    c2.accept(&mallory, &forged).unwrap();
    assert_eq!(
        t.owner_c
            .admit(&t.owner, &t.clinic, link.invitation_id)
            .unwrap_err(),
        "the acceptance's MAC does not verify"
    );
    assert_eq!(t.owner_c.members(t.clinic.id).unwrap().members.len(), 1);

    // Already a member: 409.
    let link = t
        .owner_c
        .invite(&t.owner, &t.clinic, Role::Optician)
        .unwrap();
    assert_eq!(
        t.owner_c
            .accept_raw(&t.owner, &link)
            .expect_error(&[409])
            .code,
        "already_member"
    );

    // Unknown invitation: 404; malformed MAC: 400.
    let mut unknown = link.clone();
    unknown.invitation_id = Uuid::new_v4();
    assert_eq!(
        c.accept_raw(&alice, &unknown).expect_error(&[404]).code,
        "no_such_invitation"
    );
    let bad = c.post(
        &format!("/api/clinics/{}/invitations/{}/accept", t.clinic.id, link.invitation_id),
        &serde_json::json!({"mac": "AAAA", "pinned_anchor": {"nonce": "AAAAAAAAAAAAAAAA", "ciphertext": "AAAAAAAAAAAAAAAAAAAAAA"}}),
    );
    assert_eq!(bad.expect_error(&[400]).code, "invalid_mac");
}

#[test]
fn the_server_refuses_an_admission_that_does_not_match_the_acceptance() {
    let t = clinic_with_patient();
    let c = t.server.client();
    let bob = c.signup(&unique_username("bob"), &strong_password());
    let link = t
        .owner_c
        .invite(&t.owner, &t.clinic, Role::FrontDesk)
        .unwrap();
    c.accept(&bob, &link).unwrap();
    let anchor = t.owner.keys.public_keys().ed25519.0;
    let roster = t.owner_c.verified_roster(t.clinic.id, &anchor);
    let post = |change: RosterChange, keys: Vec<WrappedKey>| {
        let entry = team::sign_entry(
            &team::next_entry(&roster, t.owner.account_id, change, 1, 1),
            &t.owner.keys,
        );
        t.owner_c.post(
            &format!("/api/clinics/{}/members", t.clinic.id),
            &AddMemberRequest {
                invitation_id: link.invitation_id,
                roster_entry: entry,
                wrapped_keys: keys,
            },
        )
    };
    let good_keys = team::wrap_for_member(
        &t.clinic.id,
        &t.clinic.keyring,
        Role::FrontDesk,
        &bob.account_id,
        &bob.keys.public_keys(),
    )
    .unwrap();
    // Substituted public keys.
    let other_keys = optovault_shared::crypto::UserKeys::generate().public_keys();
    let r = post(
        RosterChange::Add {
            member: bob.account_id,
            username: bob.username.clone(),
            role: Role::FrontDesk,
            public_keys: other_keys,
        },
        good_keys.clone(),
    );
    assert_eq!(r.expect_error(&[400]).code, "invalid_roster_entry");
    // A higher role than invited.
    let r = post(
        RosterChange::Add {
            member: bob.account_id,
            username: bob.username.clone(),
            role: Role::Owner,
            public_keys: bob.keys.public_keys(),
        },
        good_keys.clone(),
    );
    assert_eq!(r.expect_error(&[400]).code, "invalid_roster_entry");
    // Keys the role does not grant (the clinical key to front desk).
    let too_many = team::wrap_for_member(
        &t.clinic.id,
        &t.clinic.keyring,
        Role::Optometrist,
        &bob.account_id,
        &bob.keys.public_keys(),
    )
    .unwrap();
    let r = post(
        RosterChange::Add {
            member: bob.account_id,
            username: bob.username.clone(),
            role: Role::FrontDesk,
            public_keys: bob.keys.public_keys(),
        },
        too_many,
    );
    assert_eq!(r.expect_error(&[400]).code, "invalid_wrapped_keys");
    assert_eq!(
        t.owner_c.members(t.clinic.id).unwrap().members.len(),
        1,
        "nothing was added"
    );
    assert_eq!(t.owner_c.roster(t.clinic.id).unwrap().head, 1);
    // Non-owners cannot admit.
    let r = c.post(
        &format!("/api/clinics/{}/members", t.clinic.id),
        &serde_json::json!({}),
    );
    assert!(
        r.status == 404 || r.status == 422 || r.status == 400,
        "{r:?}"
    );
}

#[test]
fn removal_rotates_keys_revokes_sessions_and_locks_out_new_data() {
    let t = clinic_with_patient();
    let (doc_c, doc, doc_clinic) = join(&t, "doc", Role::Optometrist);
    let (desk_c, desk, _) = join(&t, "desk", Role::FrontDesk);
    let old_note = clinical_note_write(
        &doc,
        t.clinic.id,
        &doc_clinic.keyring,
        t.patient,
        "before removal",
    );
    doc_c.batch(t.clinic.id, vec![old_note.clone()]).unwrap();

    // A rotation that forgets a remaining member's key is refused whole.
    let (mut bad, _) = t.owner_c.rotation_request(
        &t.owner,
        &t.clinic,
        RosterChange::Remove {
            member: doc.account_id,
        },
    );
    bad.wrapped_keys.retain(|k| k.recipient != desk.account_id);
    assert_eq!(
        t.owner_c.rotate(t.clinic.id, &bad).unwrap_err().code,
        "invalid_wrapped_keys"
    );
    assert!(
        doc_c.session().is_ok(),
        "nothing happened: the member's session lives"
    );
    assert_eq!(t.owner_c.roster(t.clinic.id).unwrap().head, 3);

    // The real removal.
    let (req, new_ring) = t.owner_c.rotation_request(
        &t.owner,
        &t.clinic,
        RosterChange::Remove {
            member: doc.account_id,
        },
    );
    t.owner_c.rotate(t.clinic.id, &req).unwrap();
    assert_eq!(
        doc_c.session().unwrap_err().status,
        401,
        "the removed member's session is dead at once"
    );
    assert!(doc_c.members(t.clinic.id).is_err());

    // Writes must use the new epoch now.
    let stale = t.owner_c.post(
        &format!("/api/clinics/{}/records", t.clinic.id),
        &BatchWriteRequest {
            report: None,
            writes: vec![clinical_note_write(
                &t.owner,
                t.clinic.id,
                &t.clinic.keyring,
                t.patient,
                "stale",
            )],
        },
    );
    assert_eq!(stale.expect_error(&[409]).code, "stale_key_epoch");
    let owner_view = t.owner_c.join_view(&t.owner, t.clinic.id);
    assert_eq!(owner_view.view.key_epoch, 2);
    let new_note = clinical_note_write(
        &t.owner,
        t.clinic.id,
        &owner_view.keyring,
        t.patient,
        "after removal",
    );
    t.owner_c
        .batch(t.clinic.id, vec![new_note.clone()])
        .unwrap();
    assert_eq!(new_note.envelope.epoch, 2);
    assert!(new_ring.by_id(&new_note.envelope.key_id).is_some());

    // With every key it ever held, the removed member cannot read what was written after.
    let stored = t
        .owner_c
        .get_record(t.clinic.id, new_note.envelope.record_id)
        .unwrap();
    assert!(matches!(
        crypto::open_record(
            &t.clinic.id,
            Purpose::Record,
            &stored.envelope,
            &doc_clinic.keyring,
            authors(&[&t.owner])
        ),
        Err(CryptoError::UnknownKey(_))
    ));
    // The remaining members read old and new (front desk: new demographics only).
    let all = [&t.owner, &doc];
    for id in [old_note.envelope.record_id, new_note.envelope.record_id] {
        let r = t.owner_c.get_record(t.clinic.id, id).unwrap();
        crypto::open_record(
            &t.clinic.id,
            Purpose::Record,
            &r.envelope,
            &owner_view.keyring,
            authors(&all),
        )
        .unwrap();
    }
    let desk_view = desk_c.join_view(&desk, t.clinic.id);
    assert_eq!(
        desk_view.keyring.keys().len(),
        2,
        "front desk: demographics of epochs 1 and 2"
    );
    assert!(desk_view
        .keyring
        .keys()
        .iter()
        .all(|k| k.compartment == Compartment::Demographics));

    // The verified roster shows the removal at epoch 2; the removed member's old signatures stay
    // attributable.
    let anchor = t.owner.keys.public_keys().ed25519.0;
    let roster = desk_c.verified_roster(t.clinic.id, &anchor);
    assert_eq!((roster.head_seq, roster.key_epoch), (4, 2));
    assert!(roster.role_of(&doc.account_id).is_none());
    assert!(roster.removed.contains_key(&doc.account_id));
}

#[test]
fn lowering_a_role_takes_its_keys_away() {
    let t = clinic_with_patient();
    let c = t.server.client();
    let password = strong_password();
    let doc = c.signup(&unique_username("doc"), &password);
    let link = t
        .owner_c
        .invite(&t.owner, &t.clinic, Role::Optometrist)
        .unwrap();
    c.accept(&doc, &link).unwrap();
    t.owner_c
        .admit(&t.owner, &t.clinic, link.invitation_id)
        .unwrap()
        .unwrap();
    assert_eq!(
        c.join_view(&doc, t.clinic.id).keyring.keys().len(),
        Compartment::ALL.len()
    );

    let (req, _) = t.owner_c.rotation_request(
        &t.owner,
        &t.clinic,
        RosterChange::ChangeRole {
            member: doc.account_id,
            role: Role::FrontDesk,
        },
    );
    t.owner_c.rotate(t.clinic.id, &req).unwrap();
    assert_eq!(
        c.session().unwrap_err().status,
        401,
        "sessions are revoked on a lowered role"
    );

    // Logged in again, the member holds demographics keys only (epochs 1 and 2).
    let doc = c.login(&doc.username, &password).unwrap();
    let view = c.join_view(&doc, t.clinic.id);
    assert_eq!(view.view.role, Role::FrontDesk);
    assert_eq!(view.keyring.keys().len(), 2);
    assert!(view
        .keyring
        .keys()
        .iter()
        .all(|k| k.compartment == Compartment::Demographics));
    let anchor = t.owner.keys.public_keys().ed25519.0;
    assert_eq!(
        c.verified_roster(t.clinic.id, &anchor)
            .role_of(&doc.account_id),
        Some(Role::FrontDesk)
    );
}

#[test]
fn a_promoted_member_reads_what_was_written_before() {
    let t = clinic_with_patient();
    let c = t.server.client();
    let password = strong_password();
    let desk = c.signup(&unique_username("desk"), &password);
    let link = t
        .owner_c
        .invite(&t.owner, &t.clinic, Role::FrontDesk)
        .unwrap();
    c.accept(&desk, &link).unwrap();
    t.owner_c
        .admit(&t.owner, &t.clinic, link.invitation_id)
        .unwrap()
        .unwrap();
    assert_eq!(c.join_view(&desk, t.clinic.id).keyring.keys().len(), 1);
    let owner_view = t.owner_c.join_view(&t.owner, t.clinic.id);
    let note = clinical_note_write(
        &t.owner,
        t.clinic.id,
        &owner_view.keyring,
        t.patient,
        "written at epoch 1",
    );
    t.owner_c.batch(t.clinic.id, vec![note.clone()]).unwrap();

    // Promotion without the older clinical key: refused.
    let change = RosterChange::ChangeRole {
        member: desk.account_id,
        role: Role::Optometrist,
    };
    let (mut bare, _) = t
        .owner_c
        .rotation_request(&t.owner, &owner_view, change.clone());
    bare.wrapped_keys.retain(|k| k.epoch == 2);
    assert_eq!(
        t.owner_c.rotate(t.clinic.id, &bare).unwrap_err().code,
        "invalid_wrapped_keys"
    );
    // An older key the role does not gain (demographics of epoch 1 again): refused.
    let (mut extra, _) = t
        .owner_c
        .rotation_request(&t.owner, &owner_view, change.clone());
    let demo = owner_view
        .keyring
        .current(Compartment::Demographics)
        .unwrap();
    extra.wrapped_keys.push(
        crypto::wrap_clinic_key(
            &t.clinic.id,
            demo,
            &desk.account_id,
            desk.keys.public_keys().x25519.as_slice(),
        )
        .unwrap(),
    );
    assert_eq!(
        t.owner_c.rotate(t.clinic.id, &extra).unwrap_err().code,
        "invalid_wrapped_keys"
    );
    // With them: the promoted member, logged in again, reads the note written before.
    let (req, _) = t.owner_c.rotation_request(&t.owner, &owner_view, change);
    t.owner_c.rotate(t.clinic.id, &req).unwrap();
    let desk = c.login(&desk.username, &password).unwrap();
    let view = c.join_view(&desk, t.clinic.id);
    assert_eq!(view.view.role, Role::Optometrist);
    let stored = c.get_record(t.clinic.id, note.envelope.record_id).unwrap();
    let pt = crypto::open_record(
        &t.clinic.id,
        Purpose::Record,
        &stored.envelope,
        &view.keyring,
        authors(&[&t.owner]),
    )
    .unwrap();
    assert!(String::from_utf8_lossy(&pt).contains("written at epoch 1"));
}

//! Roster and invitation cryptography, including what a malicious server would try: substituting
//! a member's key, replaying an old roster, dropping an entry, fabricating a roster, and serving a
//! record signed by a non-member.

use optovault_shared::crypto::{
    open_record, seal_record, ClinicKeyring, CryptoError, RecordSlot, UserKeys,
};
use optovault_shared::envelope::Purpose;
use optovault_shared::roster::{
    entry_hash, RosterChange, RosterEntry, RosterError, SignedRosterEntry,
};
use optovault_shared::team::*;
use optovault_shared::wire::Role;
use optovault_shared::{Compartment, B64};
use uuid::Uuid;

struct Person {
    id: Uuid,
    name: String,
    keys: UserKeys,
}

fn person(name: &str) -> Person {
    Person {
        id: Uuid::new_v4(),
        name: name.into(),
        keys: UserKeys::generate(),
    }
}

fn entry(
    clinic: Uuid,
    prev: Option<&SignedRosterEntry>,
    seq: u64,
    signer: &Person,
    change: RosterChange,
    epoch: u32,
) -> RosterEntry {
    RosterEntry {
        clinic_id: clinic,
        seq,
        prev_hash: B64(prev.map(|p| entry_hash(p).to_vec()).unwrap_or(vec![0; 32])),
        at: 1_800_000_000 + seq as i64,
        signer: signer.id,
        change,
        key_epoch: epoch,
    }
}

fn add(p: &Person, role: Role) -> RosterChange {
    RosterChange::Add {
        member: p.id,
        username: p.name.clone(),
        role,
        public_keys: p.keys.public_keys(),
    }
}

/// owner creates the clinic, adds front desk (2) and an optometrist (3).
fn clinic_with_team() -> (Uuid, Person, Person, Person, Vec<SignedRosterEntry>) {
    let clinic = Uuid::new_v4();
    let owner = person("owner");
    let desk = person("desk");
    let doc = person("doc");
    let e1 = sign_entry(
        &entry(clinic, None, 1, &owner, add(&owner, Role::Owner), 1),
        &owner.keys,
    );
    let e2 = sign_entry(
        &entry(clinic, Some(&e1), 2, &owner, add(&desk, Role::FrontDesk), 1),
        &owner.keys,
    );
    let e3 = sign_entry(
        &entry(
            clinic,
            Some(&e2),
            3,
            &owner,
            add(&doc, Role::Optometrist),
            1,
        ),
        &owner.keys,
    );
    (clinic, owner, desk, doc, vec![e1, e2, e3])
}

#[test]
fn a_valid_roster_verifies() {
    let (clinic, owner, desk, doc, chain) = clinic_with_team();
    let anchor = owner.keys.public_keys().ed25519.0;
    let r = verify_roster(clinic, &chain, Some(&anchor), Some(3)).unwrap();
    assert_eq!(r.head_seq, 3);
    assert_eq!(r.role_of(&desk.id), Some(Role::FrontDesk));
    assert_eq!(r.role_of(&doc.id), Some(Role::Optometrist));
    assert_eq!(r.role_of(&owner.id), Some(Role::Owner));
    assert_eq!(r.key_epoch, 1);
}

#[test]
fn a_substituted_member_key_is_detected() {
    let (clinic, owner, _desk, _doc, mut chain) = clinic_with_team();
    // The server rewrites entry 2 to carry its own keys for the front-desk member.
    let mut e: RosterEntry = serde_json::from_slice(chain[1].entry.as_slice()).unwrap();
    let RosterChange::Add { public_keys, .. } = &mut e.change else {
        panic!()
    };
    *public_keys = UserKeys::generate().public_keys();
    chain[1].entry = B64(serde_json::to_vec(&e).unwrap());
    let anchor = owner.keys.public_keys().ed25519.0;
    assert_eq!(
        verify_roster(clinic, &chain, Some(&anchor), None),
        Err(RosterError::Signature(2))
    );
}

#[test]
fn a_dropped_or_reordered_entry_is_detected() {
    let (clinic, _owner, _desk, _doc, chain) = clinic_with_team();
    let dropped = vec![chain[0].clone(), chain[2].clone()];
    assert_eq!(
        verify_roster(clinic, &dropped, None, None),
        Err(RosterError::Sequence { want: 2, got: 3 })
    );
    let reordered = vec![chain[0].clone(), chain[2].clone(), chain[1].clone()];
    assert!(verify_roster(clinic, &reordered, None, None).is_err());
}

#[test]
fn an_old_roster_replayed_is_detected() {
    let (clinic, owner, _desk, _doc, chain) = clinic_with_team();
    let anchor = owner.keys.public_keys().ed25519.0;
    // The client has seen entry 3; the server serves the roster as of entry 2.
    assert_eq!(
        verify_roster(clinic, &chain[..2], Some(&anchor), Some(3)),
        Err(RosterError::Rollback {
            known: 3,
            served: 2
        })
    );
}

#[test]
fn a_fabricated_roster_fails_the_anchor() {
    let (clinic, owner, desk, _doc, _chain) = clinic_with_team();
    // The server makes up a clinic history with itself as the owner, including the real member.
    let fake_owner = person("server");
    let f1 = sign_entry(
        &entry(
            clinic,
            None,
            1,
            &fake_owner,
            add(&fake_owner, Role::Owner),
            1,
        ),
        &fake_owner.keys,
    );
    let f2 = sign_entry(
        &entry(
            clinic,
            Some(&f1),
            2,
            &fake_owner,
            add(&desk, Role::FrontDesk),
            1,
        ),
        &fake_owner.keys,
    );
    let anchor = owner.keys.public_keys().ed25519.0;
    assert_eq!(
        verify_roster(clinic, &[f1, f2], Some(&anchor), None),
        Err(RosterError::Anchor)
    );
}

#[test]
fn only_owners_sign_and_rules_hold() {
    let (clinic, owner, desk, doc, chain) = clinic_with_team();
    // Front desk tries to promote itself.
    let bad = sign_entry(
        &entry(
            clinic,
            chain.last(),
            4,
            &desk,
            RosterChange::ChangeRole {
                member: desk.id,
                role: Role::Owner,
            },
            1,
        ),
        &desk.keys,
    );
    let mut c = chain.clone();
    c.push(bad);
    assert_eq!(
        verify_roster(clinic, &c, None, None),
        Err(RosterError::NotOwner(4))
    );
    // A removal without a new key epoch is refused.
    let no_rotation = sign_entry(
        &entry(
            clinic,
            chain.last(),
            4,
            &owner,
            RosterChange::Remove { member: doc.id },
            1,
        ),
        &owner.keys,
    );
    let mut c = chain.clone();
    c.push(no_rotation);
    assert!(matches!(
        verify_roster(clinic, &c, None, None),
        Err(RosterError::Invalid(4, _))
    ));
    // With a new epoch it is accepted, and the removed member is no longer a member.
    let removal = sign_entry(
        &entry(
            clinic,
            chain.last(),
            4,
            &owner,
            RosterChange::Remove { member: doc.id },
            2,
        ),
        &owner.keys,
    );
    let mut c = chain.clone();
    c.push(removal);
    let r = verify_roster(clinic, &c, None, None).unwrap();
    assert_eq!(r.role_of(&doc.id), None);
    assert_eq!(r.key_epoch, 2);
    // The last owner cannot remove itself.
    let suicide = sign_entry(
        &entry(
            clinic,
            c.last(),
            5,
            &owner,
            RosterChange::Remove { member: owner.id },
            3,
        ),
        &owner.keys,
    );
    c.push(suicide);
    assert!(matches!(
        verify_roster(clinic, &c, None, None),
        Err(RosterError::Invalid(5, _))
    ));
}

#[test]
fn a_record_signed_by_a_non_member_is_refused() {
    let (clinic, owner, _desk, doc, chain) = clinic_with_team();
    let roster = verify_roster(clinic, &chain, None, None).unwrap();
    let keyring = ClinicKeyring::generate();
    let stranger = person("stranger");
    let rid = Uuid::new_v4();
    let slot = RecordSlot {
        clinic_id: clinic,
        chart_id: rid,
        record_id: rid,
        version: 1,
        purpose: Purpose::Record,
    };
    let by_member = |id: &Uuid| roster.signing_key(id).map(|k| k.to_vec());
    // A member's record opens.
    let env = seal_record(
        slot,
        Compartment::Clinical,
        &keyring,
        &doc.id,
        &doc.keys,
        b"exam",
    )
    .unwrap();
    assert_eq!(
        &open_record(&clinic, Purpose::Record, &env, &keyring, by_member).unwrap()[..],
        b"exam"
    );
    // The server (holding a clinic key from a past member, say) writes as a stranger: refused.
    let forged = seal_record(
        slot,
        Compartment::Clinical,
        &keyring,
        &stranger.id,
        &stranger.keys,
        b"forged",
    )
    .unwrap();
    assert_eq!(
        open_record(&clinic, Purpose::Record, &forged, &keyring, by_member).unwrap_err(),
        CryptoError::UnknownAuthor(stranger.id)
    );
    // Or claims a member's id with its own key: the signature fails.
    let mut impostor = seal_record(
        slot,
        Compartment::Clinical,
        &keyring,
        &owner.id,
        &stranger.keys,
        b"forged",
    )
    .unwrap();
    impostor.author = owner.id;
    assert_eq!(
        open_record(&clinic, Purpose::Record, &impostor, &keyring, by_member).unwrap_err(),
        CryptoError::Signature
    );
}

#[test]
fn invitation_macs_bind_the_invitee_and_its_keys() {
    let secret = [7u8; 32];
    let (inv, clinic, who) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let keys = UserKeys::generate().public_keys();
    let tag = invitation_mac(&secret, &inv, &clinic, &who, "newbie", &keys);
    assert!(verify_invitation_mac(
        &secret, &inv, &clinic, &who, "newbie", &keys, &tag
    ));
    let other_keys = UserKeys::generate().public_keys();
    assert!(!verify_invitation_mac(
        &secret,
        &inv,
        &clinic,
        &who,
        "newbie",
        &other_keys,
        &tag
    ));
    assert!(!verify_invitation_mac(
        &[8u8; 32], &inv, &clinic, &who, "newbie", &keys, &tag
    ));
    assert!(!verify_invitation_mac(
        &secret,
        &Uuid::new_v4(),
        &clinic,
        &who,
        "newbie",
        &keys,
        &tag
    ));
    assert!(!verify_invitation_mac(
        &secret,
        &inv,
        &clinic,
        &Uuid::new_v4(),
        "newbie",
        &keys,
        &tag
    ));
    assert!(!verify_invitation_mac(
        &secret, &inv, &clinic, &who, "mallory", &keys, &tag
    ));
}

#[test]
fn safety_numbers_agree_and_differ() {
    let (a, b, c) = (
        UserKeys::generate().public_keys(),
        UserKeys::generate().public_keys(),
        UserKeys::generate().public_keys(),
    );
    let ab = safety_number(&a, &b);
    assert_eq!(ab, safety_number(&b, &a), "both sides see the same number");
    assert_ne!(ab, safety_number(&a, &c));
    assert_eq!(ab.split(' ').count(), 12);
    assert!(ab
        .split(' ')
        .all(|g| g.len() == 5 && g.chars().all(|c| c.is_ascii_digit())));
    assert_ne!(fingerprint(&a), fingerprint(&b));
}

#[test]
fn role_keys_and_rotation() {
    let mut ring = ClinicKeyring::generate();
    assert_eq!(ring.for_role(Role::FrontDesk).len(), 1);
    assert_eq!(ring.for_role(Role::Billing).len(), 2);
    assert_eq!(ring.for_role(Role::Optician).len(), 2);
    assert_eq!(ring.for_role(Role::Owner).len(), 4);
    let old = ring.current(Compartment::Demographics).unwrap().key_id;
    let fresh = ring.rotate(&[Compartment::Demographics], 2);
    assert_eq!(fresh.len(), 1);
    assert_ne!(ring.current(Compartment::Demographics).unwrap().key_id, old);
    assert!(
        ring.by_id(&old).is_some(),
        "old epochs stay for old records"
    );
    assert_eq!(ring.for_role(Role::FrontDesk).len(), 2);
}

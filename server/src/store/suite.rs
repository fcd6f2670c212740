//! The behaviour every `Store` must have, as a suite that takes any implementation. The sled
//! backend runs it in its unit tests; a later backend (PostgreSQL) runs the same functions.
//! Envelopes here are opaque bytes: the store never interprets them.

use std::collections::BTreeSet;

use optovault_shared::roster::SignedRosterEntry;
use optovault_shared::wire::{
    Acceptance, InvitationStatus, PublicKeys, Role, SealedBlob, SealedSecret, WrappedKey,
};
use optovault_shared::{Compartment, UnixTime, B64};
use uuid::Uuid;

use super::*;

fn account(username: &str) -> AccountRow {
    AccountRow {
        account_id: Uuid::new_v4(),
        username: username.to_string(),
        password_file: vec![1, 2, 3],
        public_keys: PublicKeys {
            x25519: B64(vec![9; 32]),
            ed25519: B64(vec![8; 32]),
        },
        sealed_key_bundle: SealedBlob {
            nonce: B64(vec![0; 12]),
            ciphertext: B64(vec![7; 80]),
        },
        created_at: 1_700_000_000,
        last_login_at: None,
        totp: None,
        password_set_at: 1_700_000_000,
        must_change_password: false,
        recovery: None,
        mfa_recovery_hashes: vec![],
        passkeys: vec![],
        pending_passkey: None,
    }
}

fn event(clinic_id: Option<Uuid>, action: &'static str) -> EventDraft {
    EventDraft {
        at: 1_700_000_000,
        actor: None,
        clinic_id,
        action,
        target: None,
        count: 1,
        outcome: "ok",
        ip: None,
        detail: None,
    }
}

fn sealed() -> SealedBlob {
    SealedBlob {
        nonce: B64(vec![1; 12]),
        ciphertext: B64(vec![2; 48]),
    }
}

/// A roster row; the store treats the signed entry as opaque.
fn roster_row(seq: u64, key_epoch: u32) -> RosterRow {
    RosterRow {
        seq,
        hash: [seq as u8; 32],
        key_epoch,
        signed: SignedRosterEntry {
            entry: B64(format!("entry {seq}").into_bytes()),
            signature: B64(vec![0; 64]),
        },
    }
}

fn member(clinic_id: Uuid, account_id: Uuid, role: Role, keys: Vec<WrappedKey>) -> MemberRow {
    MemberRow {
        clinic_id,
        account_id,
        role,
        added_at: 1,
        wrapped_keys: keys,
        pinned_anchor: sealed(),
    }
}

fn wrapped(key_id: Uuid, compartment: Compartment, epoch: u32, recipient: Uuid) -> WrappedKey {
    WrappedKey {
        key_id,
        compartment,
        epoch,
        recipient,
        chart_id: None,
        enc: B64(vec![3; 32]),
        ciphertext: B64(vec![4; 48]),
    }
}

fn write(record_id: Uuid, expected_version: u64, body: &str) -> RecordWriteRow {
    RecordWriteRow {
        record_id,
        chart_id: record_id,
        expected_version,
        compartment: Compartment::Demographics,
        envelope: body.as_bytes().to_vec(),
        guard: None,
        deleted: false,
    }
}

async fn new_clinic(store: &dyn Store) -> (Uuid, Uuid) {
    let owner = account(&format!("owner-{}", Uuid::new_v4()));
    store.create_account(owner.clone(), None).await.unwrap();
    let clinic_id = Uuid::new_v4();
    store
        .create_clinic(
            ClinicRow {
                clinic_id,
                created_at: 1,
                created_by: owner.account_id,
                profile: b"profile".to_vec(),
                policy: Default::default(),
            },
            member(clinic_id, owner.account_id, Role::Owner, vec![]),
            roster_row(1, 1),
            event(Some(clinic_id), "clinic_created"),
        )
        .await
        .unwrap();
    (clinic_id, owner.account_id)
}

/// Runs every check below against `store` (which may already hold data of other tests).
pub async fn run_all(store: &dyn Store) {
    server_setup_is_written_once(store).await;
    accounts(store).await;
    login_attempts_are_single_use(store).await;
    sessions(store).await;
    expired_rows_are_purged(store).await;
    clinics_and_members(store).await;
    record_writes_and_conflicts(store).await;
    every_version_is_kept(store).await;
    deleted_records_wait_in_the_trash_then_are_purged(store).await;
    erasing_a_chart_takes_every_version_and_every_key(store).await;
    audit_entries_chain_and_checkpoints(store).await;
    batch_is_all_or_nothing(store).await;
    a_batch_may_write_a_record_twice(store).await;
    change_feed(store).await;
    record_listing(store).await;
    clinics_are_isolated(store).await;
    events_are_appended_per_clinic(store).await;
    concurrent_writes_keep_sequence_gapless(store).await;
    invitations_change_state_once(store).await;
    admitting_a_member_is_atomic(store).await;
    rotation_is_atomic(store).await;
    sessions_of_an_account_are_revoked(store).await;
    restricting_a_chart_is_atomic(store).await;
    guarded_writes_recheck_membership_and_epoch(store).await;
    file_creation_is_idempotent_and_conflicts(store).await;
    file_chunks_until_completion(store).await;
    file_completion_rechecks_the_guard(store).await;
    files_are_isolated_between_clinics(store).await;
    importing_a_clinic_makes_it_exist_at_once(store).await;
    // Last among the file checks: it sweeps every stale incomplete upload in the store.
    incomplete_files_are_swept(store).await;
    // Last of all: it prunes every log in the store.
    pruning_keeps_the_rest_of_the_log_verifiable(store).await;
}

const FILE_T0: UnixTime = 1_700_000_000;

/// A file of `chunk_count` chunks of `chunk_size` bytes, the last `last` bytes.
fn file_row(uploader: Uuid, chunk_count: u32, chunk_size: u32, last: u64) -> FileRow {
    FileRow {
        file_id: Uuid::new_v4(),
        chart_id: Uuid::new_v4(),
        compartment: Compartment::Clinical,
        key_id: Uuid::new_v4(),
        epoch: 1,
        chunk_count,
        chunk_size,
        total_size: u64::from(chunk_count - 1) * u64::from(chunk_size) + last,
        uploaded_by: uploader,
        created_at: FILE_T0,
        completed_at: None,
    }
}

fn guard(author: Uuid, sealed_epoch: u32) -> WriteGuard {
    WriteGuard {
        author,
        sealed_epoch,
    }
}

fn is_conflict<T: std::fmt::Debug>(r: StoreResult<T>, what: &str) -> bool {
    matches!(r, Err(StoreError::Conflict(w)) if w == what)
}

pub async fn file_creation_is_idempotent_and_conflicts(store: &dyn Store) {
    let (clinic, owner) = new_clinic(store).await;
    let f = file_row(owner, 3, 8, 5);
    let (row, created) = store
        .create_file(clinic, f.clone(), guard(owner, 1))
        .await
        .unwrap();
    assert!(created);
    assert_eq!(row, f);
    assert_eq!(
        store.file(clinic, f.file_id).await.unwrap(),
        Some(f.clone())
    );
    // A retried start (same parameters, another timestamp) returns the stored row.
    let retry = FileRow {
        created_at: FILE_T0 + 5,
        ..f.clone()
    };
    let (row, created) = store
        .create_file(clinic, retry, guard(owner, 1))
        .await
        .unwrap();
    assert!(!created);
    assert_eq!(row, f, "the first start's row, unchanged");
    // Other parameters, or another uploader: a conflict, and nothing changes.
    let other_size = FileRow {
        total_size: f.total_size + 1,
        ..f.clone()
    };
    let other_chart = FileRow {
        chart_id: Uuid::new_v4(),
        ..f.clone()
    };
    let intruder = Uuid::new_v4();
    let other_uploader = FileRow {
        uploaded_by: intruder,
        ..f.clone()
    };
    for (row, g) in [
        (other_size, guard(owner, 1)),
        (other_chart, guard(owner, 1)),
        (other_uploader, guard(intruder, 1)),
    ] {
        assert!(is_conflict(
            store.create_file(clinic, row, g).await,
            file_conflict::EXISTS
        ));
    }
    assert_eq!(
        store.file(clinic, f.file_id).await.unwrap(),
        Some(f.clone())
    );
    // A start by a non-member or under a stale epoch is refused at commit.
    let g = file_row(intruder, 1, 8, 8);
    assert!(matches!(
        store
            .create_file(clinic, g.clone(), guard(intruder, 1))
            .await,
        Err(StoreError::Conflict(_))
    ));
    let h = file_row(owner, 1, 8, 8);
    assert!(is_conflict(
        store.create_file(clinic, h.clone(), guard(owner, 2)).await,
        "keys rotated"
    ));
    assert_eq!(store.file(clinic, g.file_id).await.unwrap(), None);
    assert_eq!(store.file(clinic, h.file_id).await.unwrap(), None);
}

pub async fn file_chunks_until_completion(store: &dyn Store) {
    let (clinic, owner) = new_clinic(store).await;
    let f = file_row(owner, 3, 8, 5);
    store
        .create_file(clinic, f.clone(), guard(owner, 1))
        .await
        .unwrap();
    let id = f.file_id;
    let chunks = [vec![1u8; 8], vec![2u8; 8], vec![3u8; 5]];
    assert!(store
        .file_chunk_indices(clinic, id)
        .await
        .unwrap()
        .is_empty());
    store
        .put_file_chunk(clinic, id, 2, owner, chunks[2].clone())
        .await
        .unwrap();
    store
        .put_file_chunk(clinic, id, 0, owner, vec![9u8; 8])
        .await
        .unwrap();
    // Re-sending a chunk of an incomplete file replaces it.
    store
        .put_file_chunk(clinic, id, 0, owner, chunks[0].clone())
        .await
        .unwrap();
    assert_eq!(
        store.file_chunk_indices(clinic, id).await.unwrap(),
        vec![0, 2]
    );
    assert_eq!(
        store.file_chunk(clinic, id, 0).await.unwrap(),
        Some(chunks[0].clone())
    );
    assert_eq!(store.file_chunk(clinic, id, 1).await.unwrap(), None);
    // Wrong lengths, out-of-range indices, someone else's chunks, unknown files.
    for (index, len) in [(1, 7), (1, 9), (2, 8), (2, 0), (3, 8), (u32::MAX, 8)] {
        assert!(
            is_conflict(
                store
                    .put_file_chunk(clinic, id, index, owner, vec![0; len])
                    .await,
                file_conflict::BAD_CHUNK
            ),
            "chunk {index} of {len} bytes"
        );
    }
    assert!(is_conflict(
        store
            .put_file_chunk(clinic, id, 1, Uuid::new_v4(), chunks[1].clone())
            .await,
        file_conflict::NOT_UPLOADER
    ));
    assert!(is_conflict(
        store
            .put_file_chunk(clinic, Uuid::new_v4(), 0, owner, vec![0; 8])
            .await,
        file_conflict::NO_SUCH_FILE
    ));
    // Completion only when every chunk is there, only by the uploader.
    assert!(is_conflict(
        store
            .complete_file(
                clinic,
                id,
                guard(owner, 1),
                FILE_T0 + 10,
                event(Some(clinic), "f")
            )
            .await,
        file_conflict::INCOMPLETE
    ));
    store
        .put_file_chunk(clinic, id, 1, owner, chunks[1].clone())
        .await
        .unwrap();
    assert!(is_conflict(
        store
            .complete_file(
                clinic,
                id,
                guard(Uuid::new_v4(), 1),
                FILE_T0 + 10,
                event(Some(clinic), "f")
            )
            .await,
        file_conflict::NOT_UPLOADER
    ));
    let events_before = store
        .audit_entries(Some(clinic), 0, 100)
        .await
        .unwrap()
        .len();
    let done = store
        .complete_file(
            clinic,
            id,
            guard(owner, 1),
            FILE_T0 + 10,
            event(Some(clinic), "file_uploaded"),
        )
        .await
        .unwrap();
    assert_eq!(done.completed_at, Some(FILE_T0 + 10));
    assert!(done.is_complete());
    assert_eq!(store.file(clinic, id).await.unwrap(), Some(done.clone()));
    let events = store.audit_entries(Some(clinic), 0, 100).await.unwrap();
    assert_eq!(events.len(), events_before + 1);
    assert_eq!(events.last().unwrap().action, "file_uploaded");
    // Completing again is harmless: same row, no second event.
    let again = store
        .complete_file(
            clinic,
            id,
            guard(owner, 1),
            FILE_T0 + 20,
            event(Some(clinic), "f"),
        )
        .await
        .unwrap();
    assert_eq!(again, done);
    assert_eq!(
        store
            .audit_entries(Some(clinic), 0, 100)
            .await
            .unwrap()
            .len(),
        events_before + 1
    );
    // Immutable: no chunk can be added or replaced.
    assert!(is_conflict(
        store
            .put_file_chunk(clinic, id, 0, owner, vec![7u8; 8])
            .await,
        file_conflict::COMPLETE
    ));
    for (i, c) in chunks.iter().enumerate() {
        assert_eq!(
            store
                .file_chunk(clinic, id, i as u32)
                .await
                .unwrap()
                .as_ref(),
            Some(c)
        );
    }
    assert_eq!(
        store.file_chunk_indices(clinic, id).await.unwrap(),
        vec![0, 1, 2]
    );
}

/// Completion re-checks the uploader's membership and key epoch, like a guarded record write.
pub async fn file_completion_rechecks_the_guard(store: &dyn Store) {
    let (clinic, owner) = new_clinic(store).await;
    let f = file_row(owner, 1, 16, 16);
    store
        .create_file(clinic, f.clone(), guard(owner, 1))
        .await
        .unwrap();
    store
        .put_file_chunk(clinic, f.file_id, 0, owner, vec![5; 16])
        .await
        .unwrap();
    store
        .rotate(
            clinic,
            roster_row(2, 2),
            MemberChange::ChangeRole(owner, Role::Owner),
            vec![],
            vec![],
            vec![],
        )
        .await
        .unwrap();
    assert!(is_conflict(
        store
            .complete_file(
                clinic,
                f.file_id,
                guard(owner, 1),
                FILE_T0,
                event(Some(clinic), "f")
            )
            .await,
        "keys rotated"
    ));
    assert!(!store
        .file(clinic, f.file_id)
        .await
        .unwrap()
        .unwrap()
        .is_complete());
}

pub async fn files_are_isolated_between_clinics(store: &dyn Store) {
    let (a, owner_a) = new_clinic(store).await;
    let (b, owner_b) = new_clinic(store).await;
    let fa = file_row(owner_a, 1, 8, 8);
    let id = fa.file_id;
    store
        .create_file(a, fa.clone(), guard(owner_a, 1))
        .await
        .unwrap();
    store
        .put_file_chunk(a, id, 0, owner_a, b"secret-a".to_vec())
        .await
        .unwrap();
    store
        .complete_file(a, id, guard(owner_a, 1), FILE_T0, event(Some(a), "f"))
        .await
        .unwrap();
    // Clinic B sees nothing under the same file id ...
    assert_eq!(store.file(b, id).await.unwrap(), None);
    assert_eq!(store.file_chunk(b, id, 0).await.unwrap(), None);
    assert!(store.file_chunk_indices(b, id).await.unwrap().is_empty());
    assert!(is_conflict(
        store.put_file_chunk(b, id, 0, owner_a, vec![0; 8]).await,
        file_conflict::NO_SUCH_FILE
    ));
    // ... and the same id in clinic B is a different file.
    let fb = FileRow {
        uploaded_by: owner_b,
        total_size: 4,
        chunk_size: 4,
        ..fa.clone()
    };
    let (_, created) = store.create_file(b, fb, guard(owner_b, 1)).await.unwrap();
    assert!(created);
    store
        .put_file_chunk(b, id, 0, owner_b, b"bbbb".to_vec())
        .await
        .unwrap();
    assert!(!store.file(b, id).await.unwrap().unwrap().is_complete());
    assert_eq!(
        store.file_chunk(a, id, 0).await.unwrap(),
        Some(b"secret-a".to_vec())
    );
    assert_eq!(store.file(a, id).await.unwrap().unwrap().total_size, 8);
}

/// Incomplete uploads are swept a day after they started; complete files stay.
pub async fn incomplete_files_are_swept(store: &dyn Store) {
    let (clinic, owner) = new_clinic(store).await;
    let t0 = FILE_T0 + 1_000_000;
    let mk = |created_at| FileRow {
        created_at,
        ..file_row(owner, 2, 4, 4)
    };
    let (stale, fresh, done) = (mk(t0), mk(t0 + 10), mk(t0));
    for f in [&stale, &fresh, &done] {
        store
            .create_file(clinic, f.clone(), guard(owner, 1))
            .await
            .unwrap();
        store
            .put_file_chunk(clinic, f.file_id, 0, owner, vec![1; 4])
            .await
            .unwrap();
    }
    store
        .put_file_chunk(clinic, done.file_id, 1, owner, vec![2; 4])
        .await
        .unwrap();
    store
        .complete_file(
            clinic,
            done.file_id,
            guard(owner, 1),
            t0,
            event(Some(clinic), "f"),
        )
        .await
        .unwrap();
    let purged = store
        .purge_expired(t0 + INCOMPLETE_FILE_TTL_SECS)
        .await
        .unwrap();
    assert!(purged >= 1);
    assert_eq!(store.file(clinic, stale.file_id).await.unwrap(), None);
    assert_eq!(
        store.file_chunk(clinic, stale.file_id, 0).await.unwrap(),
        None
    );
    assert!(store
        .file_chunk_indices(clinic, stale.file_id)
        .await
        .unwrap()
        .is_empty());
    assert!(store.file(clinic, fresh.file_id).await.unwrap().is_some());
    assert_eq!(
        store
            .file_chunk_indices(clinic, fresh.file_id)
            .await
            .unwrap(),
        vec![0]
    );
    assert!(store
        .file(clinic, done.file_id)
        .await
        .unwrap()
        .unwrap()
        .is_complete());
    assert_eq!(
        store.file_chunk(clinic, done.file_id, 1).await.unwrap(),
        Some(vec![2; 4])
    );
}

/// A guarded write commits only if, at commit, its author is a member (on the care team of a
/// restricted chart) and it is sealed under the epoch in force.
pub async fn guarded_writes_recheck_membership_and_epoch(store: &dyn Store) {
    let (clinic, owner) = new_clinic(store).await;
    let guarded = |author, epoch| RecordWriteRow {
        guard: Some(WriteGuard {
            author,
            sealed_epoch: epoch,
        }),
        ..write(Uuid::new_v4(), 0, "g")
    };
    assert!(store
        .write_records(
            clinic,
            vec![guarded(owner, 1)],
            1,
            vec![event(Some(clinic), "w")]
        )
        .await
        .is_ok());
    assert!(matches!(
        store
            .write_records(
                clinic,
                vec![guarded(Uuid::new_v4(), 1)],
                1,
                vec![event(Some(clinic), "w")]
            )
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store
            .write_records(
                clinic,
                vec![guarded(owner, 2)],
                1,
                vec![event(Some(clinic), "w")]
            )
            .await,
        Err(StoreError::Conflict(_))
    ));
    // After a rotation to epoch 2, epoch-1 writes are refused at commit.
    store
        .rotate(
            clinic,
            roster_row(2, 2),
            MemberChange::ChangeRole(owner, Role::Owner),
            vec![],
            vec![],
            vec![],
        )
        .await
        .unwrap();
    assert!(store
        .write_records(
            clinic,
            vec![guarded(owner, 1)],
            1,
            vec![event(Some(clinic), "w")]
        )
        .await
        .is_err());
    assert!(store
        .write_records(
            clinic,
            vec![guarded(owner, 2)],
            1,
            vec![event(Some(clinic), "w")]
        )
        .await
        .is_ok());
    // A restricted chart: its own epoch, its care team only.
    let chart_id = Uuid::new_v4();
    store
        .write_records(
            clinic,
            vec![write(chart_id, 0, "p")],
            1,
            vec![event(Some(clinic), "w")],
        )
        .await
        .unwrap();
    let row = ChartRow {
        chart_id,
        care_team: vec![owner],
        key_epoch: 1,
        restricted_by: owner,
        restricted_at: 1,
    };
    store
        .restrict_chart(clinic, row, vec![], vec![], 1, event(Some(clinic), "r"))
        .await
        .unwrap();
    let on_chart = |epoch| RecordWriteRow {
        chart_id,
        guard: Some(WriteGuard {
            author: owner,
            sealed_epoch: epoch,
        }),
        ..write(Uuid::new_v4(), 0, "c")
    };
    assert!(store
        .write_records(clinic, vec![on_chart(2)], 1, vec![event(Some(clinic), "w")])
        .await
        .is_err());
    assert!(store
        .write_records(clinic, vec![on_chart(1)], 1, vec![event(Some(clinic), "w")])
        .await
        .is_ok());
}

pub async fn restricting_a_chart_is_atomic(store: &dyn Store) {
    let (clinic, owner) = new_clinic(store).await;
    let doc = Uuid::new_v4();
    let inv = invitation(clinic, Role::Optometrist);
    store
        .create_invitation(inv.clone(), event(Some(clinic), "invitation_created"))
        .await
        .unwrap();
    store
        .transition_invitation(
            InvitationStatus::Pending,
            accepted(inv.clone(), doc),
            event(Some(clinic), "invitation_accepted"),
        )
        .await
        .unwrap();
    store
        .add_member(
            clinic,
            roster_row(2, 1),
            member(clinic, doc, Role::Optometrist, vec![]),
            inv.invitation_id,
            vec![],
        )
        .await
        .unwrap();
    let chart_id = Uuid::new_v4();
    store
        .write_records(
            clinic,
            vec![write(chart_id, 0, "patient v1")],
            1,
            vec![event(Some(clinic), "w")],
        )
        .await
        .unwrap();
    let row = ChartRow {
        chart_id,
        care_team: vec![owner, doc],
        key_epoch: 1,
        restricted_by: owner,
        restricted_at: 2,
    };
    let chart_key = |recipient| WrappedKey {
        chart_id: Some(chart_id),
        ..wrapped(Uuid::new_v4(), Compartment::Demographics, 1, recipient)
    };
    // A wrap to a non-member fails the whole restriction: no chart, no re-sealed record.
    let bad = store
        .restrict_chart(
            clinic,
            row.clone(),
            vec![chart_key(owner), chart_key(Uuid::new_v4())],
            vec![write(chart_id, 1, "patient v2")],
            2,
            event(Some(clinic), "r"),
        )
        .await;
    assert!(bad.is_err());
    assert!(store.charts(clinic).await.unwrap().is_empty());
    assert_eq!(
        store
            .record(clinic, chart_id)
            .await
            .unwrap()
            .unwrap()
            .version,
        1
    );
    // A stale re-sealed record also fails it whole.
    assert!(store
        .restrict_chart(
            clinic,
            row.clone(),
            vec![chart_key(owner)],
            vec![write(chart_id, 0, "x")],
            2,
            event(Some(clinic), "r")
        )
        .await
        .is_err());
    assert!(store.charts(clinic).await.unwrap().is_empty());
    // The good one commits whole.
    let out = store
        .restrict_chart(
            clinic,
            row.clone(),
            vec![chart_key(owner), chart_key(doc)],
            vec![write(chart_id, 1, "patient v2")],
            2,
            event(Some(clinic), "r"),
        )
        .await
        .unwrap();
    assert_eq!(out[0].version, 2);
    assert_eq!(store.charts(clinic).await.unwrap(), vec![row.clone()]);
    assert_eq!(
        store
            .member(clinic, doc)
            .await
            .unwrap()
            .unwrap()
            .wrapped_keys
            .len(),
        1
    );
    assert!(matches!(
        store
            .restrict_chart(
                clinic,
                row.clone(),
                vec![],
                vec![],
                3,
                event(Some(clinic), "r")
            )
            .await,
        Err(StoreError::Conflict(_))
    ));
    // The care team shrinks: a stale epoch loses; the right one strips the chart's keys.
    let smaller = ChartRow {
        care_team: vec![owner],
        key_epoch: 2,
        ..row.clone()
    };
    let epoch2 = WrappedKey {
        chart_id: Some(chart_id),
        ..wrapped(Uuid::new_v4(), Compartment::Demographics, 2, owner)
    };
    assert!(store
        .update_care_team(
            clinic,
            smaller.clone(),
            7,
            vec![doc],
            vec![epoch2.clone()],
            event(Some(clinic), "care_team_changed")
        )
        .await
        .is_err());
    assert_eq!(
        store
            .member(clinic, doc)
            .await
            .unwrap()
            .unwrap()
            .wrapped_keys
            .len(),
        1
    );
    store
        .update_care_team(
            clinic,
            smaller.clone(),
            1,
            vec![doc],
            vec![epoch2.clone()],
            event(Some(clinic), "care_team_changed"),
        )
        .await
        .unwrap();
    assert!(store
        .member(clinic, doc)
        .await
        .unwrap()
        .unwrap()
        .wrapped_keys
        .is_empty());
    assert!(store
        .member(clinic, owner)
        .await
        .unwrap()
        .unwrap()
        .wrapped_keys
        .contains(&epoch2));
    assert_eq!(store.charts(clinic).await.unwrap(), vec![smaller]);
}

fn invitation(clinic_id: Uuid, role: Role) -> InvitationRow {
    InvitationRow {
        invitation_id: Uuid::new_v4(),
        clinic_id,
        role,
        created_by: Uuid::new_v4(),
        created_at: 1,
        expires_at: 2_000_000_000,
        status: InvitationStatus::Pending,
        sealed_secret: SealedSecret {
            enc: B64(vec![1; 32]),
            ciphertext: B64(vec![2; 48]),
        },
        acceptance: None,
        invitee_anchor: None,
    }
}

fn accepted(mut inv: InvitationRow, account_id: Uuid) -> InvitationRow {
    inv.status = InvitationStatus::Accepted;
    inv.acceptance = Some(Acceptance {
        account_id,
        username: "invitee".into(),
        public_keys: PublicKeys {
            x25519: B64(vec![5; 32]),
            ed25519: B64(vec![6; 32]),
        },
        mac: B64(vec![7; 32]),
        accepted_at: 2,
    });
    inv.invitee_anchor = Some(sealed());
    inv
}

pub async fn invitations_change_state_once(store: &dyn Store) {
    let (clinic, _) = new_clinic(store).await;
    let inv = invitation(clinic, Role::FrontDesk);
    store
        .create_invitation(inv.clone(), event(Some(clinic), "invitation_created"))
        .await
        .unwrap();
    assert!(matches!(
        store
            .create_invitation(inv.clone(), event(Some(clinic), "invitation_created"))
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store.invitation(clinic, inv.invitation_id).await.unwrap(),
        Some(inv.clone())
    );
    let a = accepted(inv.clone(), Uuid::new_v4());
    store
        .transition_invitation(
            InvitationStatus::Pending,
            a.clone(),
            event(Some(clinic), "invitation_accepted"),
        )
        .await
        .unwrap();
    // A second acceptance (from pending) loses.
    let b = accepted(inv.clone(), Uuid::new_v4());
    assert!(store
        .transition_invitation(
            InvitationStatus::Pending,
            b,
            event(Some(clinic), "invitation_accepted")
        )
        .await
        .is_err());
    assert_eq!(
        store.invitation(clinic, inv.invitation_id).await.unwrap(),
        Some(a)
    );
    assert_eq!(store.invitations(clinic).await.unwrap().len(), 1);
    let (other, _) = new_clinic(store).await;
    assert!(store.invitations(other).await.unwrap().is_empty());
    assert_eq!(
        store.invitation(other, inv.invitation_id).await.unwrap(),
        None
    );
}

pub async fn admitting_a_member_is_atomic(store: &dyn Store) {
    let (clinic, owner) = new_clinic(store).await;
    let newbie = Uuid::new_v4();
    let inv = invitation(clinic, Role::Optometrist);
    store
        .create_invitation(inv.clone(), event(Some(clinic), "invitation_created"))
        .await
        .unwrap();
    let row = member(clinic, newbie, Role::Optometrist, vec![]);
    // Not accepted yet: refused, nothing written.
    assert!(store
        .add_member(
            clinic,
            roster_row(2, 1),
            row.clone(),
            inv.invitation_id,
            vec![]
        )
        .await
        .is_err());
    store
        .transition_invitation(
            InvitationStatus::Pending,
            accepted(inv.clone(), newbie),
            event(Some(clinic), "invitation_accepted"),
        )
        .await
        .unwrap();
    // A roster entry that does not follow the head: refused, nothing written.
    assert!(store
        .add_member(
            clinic,
            roster_row(3, 1),
            row.clone(),
            inv.invitation_id,
            vec![]
        )
        .await
        .is_err());
    assert_eq!(store.member(clinic, newbie).await.unwrap(), None);
    assert_eq!(store.roster_head(clinic).await.unwrap().unwrap().seq, 1);
    store
        .add_member(
            clinic,
            roster_row(2, 1),
            row.clone(),
            inv.invitation_id,
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        store.member(clinic, newbie).await.unwrap(),
        Some(row.clone())
    );
    assert_eq!(store.clinics_of(newbie).await.unwrap().len(), 1);
    assert_eq!(store.members(clinic).await.unwrap().len(), 2);
    assert_eq!(
        store
            .invitation(clinic, inv.invitation_id)
            .await
            .unwrap()
            .unwrap()
            .status,
        InvitationStatus::Joined
    );
    let (rows, head) = store.roster(clinic, 0).await.unwrap();
    assert_eq!(rows.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![1, 2]);
    assert_eq!(head.unwrap().seq, 2);
    assert_eq!(store.roster(clinic, 1).await.unwrap().0.len(), 1);
    // The invitation cannot be used twice.
    assert!(store
        .add_member(clinic, roster_row(3, 1), row, inv.invitation_id, vec![])
        .await
        .is_err());
    let _ = owner;
}

pub async fn rotation_is_atomic(store: &dyn Store) {
    let (clinic, owner) = new_clinic(store).await;
    let (doc, desk) = (Uuid::new_v4(), Uuid::new_v4());
    for (who, role, seq) in [(doc, Role::Optometrist, 2), (desk, Role::FrontDesk, 3)] {
        let inv = invitation(clinic, role);
        store
            .create_invitation(inv.clone(), event(Some(clinic), "invitation_created"))
            .await
            .unwrap();
        store
            .transition_invitation(
                InvitationStatus::Pending,
                accepted(inv.clone(), who),
                event(Some(clinic), "invitation_accepted"),
            )
            .await
            .unwrap();
        let keys = vec![wrapped(Uuid::new_v4(), Compartment::Demographics, 1, who)];
        store
            .add_member(
                clinic,
                roster_row(seq, 1),
                member(clinic, who, role, keys),
                inv.invitation_id,
                vec![],
            )
            .await
            .unwrap();
    }
    let new_demo = Uuid::new_v4();
    let new_keys = vec![
        wrapped(new_demo, Compartment::Demographics, 2, owner),
        wrapped(new_demo, Compartment::Demographics, 2, desk),
    ];
    // A rotation naming a recipient who is not a member fails whole: no roster entry, no removal.
    let mut bad = new_keys.clone();
    bad.push(wrapped(
        new_demo,
        Compartment::Demographics,
        2,
        Uuid::new_v4(),
    ));
    let log_before = store.audit_head(Some(clinic)).await.unwrap();
    assert!(store
        .rotate(
            clinic,
            roster_row(4, 2),
            MemberChange::Remove(doc),
            bad,
            vec![],
            vec![event(Some(clinic), "member_removed")],
        )
        .await
        .is_err());
    assert_eq!(
        store.audit_head(Some(clinic)).await.unwrap(),
        log_before,
        "a failed rotation leaves no audit entry"
    );
    assert!(store.member(clinic, doc).await.unwrap().is_some());
    assert_eq!(store.roster_head(clinic).await.unwrap().unwrap().seq, 3);
    assert_eq!(
        store
            .member(clinic, desk)
            .await
            .unwrap()
            .unwrap()
            .wrapped_keys
            .len(),
        1
    );
    // The good one commits whole.
    store
        .rotate(
            clinic,
            roster_row(4, 2),
            MemberChange::Remove(doc),
            new_keys,
            vec![],
            vec![event(Some(clinic), "member_removed")],
        )
        .await
        .unwrap();
    assert_eq!(
        store.audit_head(Some(clinic)).await.unwrap().0,
        log_before.0 + 1,
        "the rotation's entry committed with it"
    );
    assert_eq!(store.member(clinic, doc).await.unwrap(), None);
    assert!(store.clinics_of(doc).await.unwrap().is_empty());
    assert_eq!(
        store.roster_head(clinic).await.unwrap().unwrap().key_epoch,
        2
    );
    let desk_keys = store
        .member(clinic, desk)
        .await
        .unwrap()
        .unwrap()
        .wrapped_keys;
    assert_eq!(desk_keys.len(), 2, "old epoch kept, new epoch added");
    // A role change keeps only the keys the new role grants.
    let clinical = wrapped(Uuid::new_v4(), Compartment::Clinical, 3, desk);
    store
        .rotate(
            clinic,
            roster_row(5, 3),
            MemberChange::ChangeRole(desk, Role::Optometrist),
            vec![clinical.clone()],
            vec![],
            vec![],
        )
        .await
        .unwrap();
    let m = store.member(clinic, desk).await.unwrap().unwrap();
    assert_eq!(m.role, Role::Optometrist);
    assert!(m.wrapped_keys.contains(&clinical));
    store
        .rotate(
            clinic,
            roster_row(6, 4),
            MemberChange::ChangeRole(desk, Role::Billing),
            vec![],
            vec![],
            vec![],
        )
        .await
        .unwrap();
    let m = store.member(clinic, desk).await.unwrap().unwrap();
    assert!(m
        .wrapped_keys
        .iter()
        .all(|k| k.compartment != Compartment::Clinical));
    assert_eq!(m.wrapped_keys.len(), 2);
}

pub async fn sessions_of_an_account_are_revoked(store: &dyn Store) {
    let account = Uuid::new_v4();
    let other = Uuid::new_v4();
    let mk = |account_id| SessionRow {
        token_hash: *Uuid::new_v4()
            .as_bytes()
            .repeat(2)
            .first_chunk::<32>()
            .unwrap(),
        account_id,
        created_at: 0,
        expires_at: 2_000_000_000,
        session_id: Uuid::new_v4(),
        last_seen: 0,
        ip: None,
        user_agent: None,
    };
    let (a1, a2, b) = (mk(account), mk(account), mk(other));
    for s in [&a1, &a2, &b] {
        store.put_session(s.clone(), None).await.unwrap();
    }
    assert_eq!(store.revoke_sessions_of(account).await.unwrap(), 2);
    assert_eq!(store.session(a1.token_hash).await.unwrap(), None);
    assert_eq!(store.session(a2.token_hash).await.unwrap(), None);
    assert_eq!(store.session(b.token_hash).await.unwrap(), Some(b));
    assert_eq!(store.revoke_sessions_of(account).await.unwrap(), 0);
}

pub async fn server_setup_is_written_once(store: &dyn Store) {
    let first = store.server_setup_or_init(vec![1; 8]).await.unwrap();
    let second = store.server_setup_or_init(vec![2; 8]).await.unwrap();
    assert_eq!(first, second, "server setup must never be replaced");
}

pub async fn accounts(store: &dyn Store) {
    let name = format!("jane-{}", Uuid::new_v4());
    let a = account(&name);
    store.create_account(a.clone(), None).await.unwrap();
    assert_eq!(store.account(a.account_id).await.unwrap(), Some(a.clone()));
    assert_eq!(
        store.account_by_username(&name).await.unwrap(),
        Some(a.clone())
    );
    let dup = account(&name);
    assert!(matches!(
        store.create_account(dup.clone(), None).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.account(dup.account_id).await.unwrap(), None);
    assert_eq!(
        store.account_by_username("nobody-here").await.unwrap(),
        None
    );
}

pub async fn login_attempts_are_single_use(store: &dyn Store) {
    let at = LoginAttempt {
        login_id: Uuid::new_v4(),
        account_id: Some(Uuid::new_v4()),
        state: vec![5; 40],
        expires_at: 2_000_000_000,
        awaiting_mfa: false,
        mfa_failures: 0,
        passkey_challenge: None,
    };
    store.put_login_attempt(at.clone()).await.unwrap();
    assert_eq!(
        store.take_login_attempt(at.login_id).await.unwrap(),
        Some(at.clone())
    );
    assert_eq!(store.take_login_attempt(at.login_id).await.unwrap(), None);
}

pub async fn sessions(store: &dyn Store) {
    let s = SessionRow {
        token_hash: *Uuid::new_v4()
            .as_bytes()
            .repeat(2)
            .first_chunk::<32>()
            .unwrap(),
        account_id: Uuid::new_v4(),
        created_at: 1,
        expires_at: 2,
        session_id: Uuid::new_v4(),
        last_seen: 0,
        ip: None,
        user_agent: None,
    };
    store.put_session(s.clone(), None).await.unwrap();
    assert_eq!(store.session(s.token_hash).await.unwrap(), Some(s.clone()));
    // A session of a real account records the login on it.
    let a = account(&format!("login-{}", Uuid::new_v4()));
    store.create_account(a.clone(), None).await.unwrap();
    let s2 = SessionRow {
        account_id: a.account_id,
        created_at: 1_800_000_123,
        ..s.clone()
    };
    store.put_session(s2.clone(), None).await.unwrap();
    assert_eq!(
        store
            .account(a.account_id)
            .await
            .unwrap()
            .unwrap()
            .last_login_at,
        Some(1_800_000_123)
    );
    store.delete_session(s2.token_hash, None).await.unwrap();
    store.delete_session(s.token_hash, None).await.unwrap();
    assert_eq!(store.session(s.token_hash).await.unwrap(), None);
}

pub async fn expired_rows_are_purged(store: &dyn Store) {
    let now = 1_900_000_000;
    let attempt = |expires_at| LoginAttempt {
        login_id: Uuid::new_v4(),
        account_id: None,
        state: vec![1],
        expires_at,
        awaiting_mfa: false,
        mfa_failures: 0,
        passkey_challenge: None,
    };
    let session = |expires_at| SessionRow {
        token_hash: *Uuid::new_v4()
            .as_bytes()
            .repeat(2)
            .first_chunk::<32>()
            .unwrap(),
        account_id: Uuid::new_v4(),
        created_at: 0,
        expires_at,
        session_id: Uuid::new_v4(),
        last_seen: 0,
        ip: None,
        user_agent: None,
    };
    let (old_a, live_a) = (attempt(now - 1), attempt(now + 60));
    let (old_s, live_s) = (session(now), session(now + 3600));
    for a in [&old_a, &live_a] {
        store.put_login_attempt(a.clone()).await.unwrap();
    }
    for s in [&old_s, &live_s] {
        store.put_session(s.clone(), None).await.unwrap();
    }
    assert!(store.purge_expired(now).await.unwrap() >= 2);
    assert_eq!(
        store.take_login_attempt(old_a.login_id).await.unwrap(),
        None
    );
    assert_eq!(store.session(old_s.token_hash).await.unwrap(), None);
    assert_eq!(
        store.take_login_attempt(live_a.login_id).await.unwrap(),
        Some(live_a)
    );
    assert_eq!(
        store.session(live_s.token_hash).await.unwrap(),
        Some(live_s)
    );
}

pub async fn clinics_and_members(store: &dyn Store) {
    let (clinic_id, owner) = new_clinic(store).await;
    let m = store.member(clinic_id, owner).await.unwrap().unwrap();
    assert_eq!(m.role, Role::Owner);
    let mine = store.clinics_of(owner).await.unwrap();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0].0.clinic_id, clinic_id);
    // Creating the same clinic id again fails and changes nothing.
    let intruder = Uuid::new_v4();
    let again = store
        .create_clinic(
            ClinicRow {
                clinic_id,
                created_at: 2,
                created_by: intruder,
                profile: b"other".to_vec(),
                policy: Default::default(),
            },
            member(clinic_id, intruder, Role::Owner, vec![]),
            roster_row(1, 1),
            event(Some(clinic_id), "clinic_created"),
        )
        .await;
    assert!(matches!(again, Err(StoreError::Conflict(_))));
    assert_eq!(store.member(clinic_id, intruder).await.unwrap(), None);
    assert!(store.clinics_of(intruder).await.unwrap().is_empty());
    assert_eq!(
        store.clinic(clinic_id).await.unwrap().unwrap().profile,
        b"profile".to_vec()
    );
}

pub async fn every_version_is_kept(store: &dyn Store) {
    let (clinic, _) = new_clinic(store).await;
    let (r, other) = (Uuid::new_v4(), Uuid::new_v4());
    for (v, body) in ["v1", "v2", "v3"].iter().enumerate() {
        store
            .write_records(
                clinic,
                vec![write(r, v as u64, body)],
                10 + v as i64,
                vec![],
            )
            .await
            .unwrap();
    }
    store
        .write_records(clinic, vec![write(other, 0, "other")], 20, vec![])
        .await
        .unwrap();
    // A refused write adds no version.
    assert!(store
        .write_records(clinic, vec![write(r, 1, "stale")], 30, vec![])
        .await
        .is_err());
    let history = store.record_versions(clinic, r).await.unwrap();
    let got: Vec<(u64, &[u8], i64)> = history
        .iter()
        .map(|h| (h.version, h.envelope.as_slice(), h.updated_at))
        .collect();
    assert_eq!(
        got,
        vec![(1, b"v1".as_slice(), 10), (2, b"v2".as_slice(), 11)]
    );
    assert_eq!(store.record(clinic, r).await.unwrap().unwrap().version, 3);
    assert!(store
        .record_versions(clinic, other)
        .await
        .unwrap()
        .is_empty());
    // Another clinic's history of the same id is its own.
    let (clinic_b, _) = new_clinic(store).await;
    assert!(store.record_versions(clinic_b, r).await.unwrap().is_empty());
}

pub async fn deleted_records_wait_in_the_trash_then_are_purged(store: &dyn Store) {
    let (clinic, _) = new_clinic(store).await;
    let (r, kept) = (Uuid::new_v4(), Uuid::new_v4());
    let tombstone = |v| RecordWriteRow {
        deleted: true,
        ..write(r, v, "gone")
    };
    let day = 86_400;
    store
        .write_records(
            clinic,
            vec![write(r, 0, "v1"), write(kept, 0, "k")],
            100,
            vec![],
        )
        .await
        .unwrap();
    store
        .write_records(clinic, vec![tombstone(1)], 100, vec![])
        .await
        .unwrap();
    assert_eq!(store.trash(clinic).await.unwrap(), vec![(r, 100)]);
    // Within the default 30 days: kept, restorable.
    assert_eq!(store.purge_trash(100 + 29 * day).await.unwrap(), 0);
    store
        .write_records(clinic, vec![write(r, 2, "restored")], 200, vec![])
        .await
        .unwrap();
    assert!(
        store.trash(clinic).await.unwrap().is_empty(),
        "restored: out of the trash"
    );
    assert_eq!(store.purge_trash(200 + 365 * day).await.unwrap(), 0);
    store
        .write_records(clinic, vec![tombstone(3)], 300, vec![])
        .await
        .unwrap();
    let (log_before, _) = store.audit_head(Some(clinic)).await.unwrap();
    assert_eq!(store.purge_trash(300 + 30 * day).await.unwrap(), 1);
    assert_eq!(store.record(clinic, r).await.unwrap(), None);
    assert!(store.record_versions(clinic, r).await.unwrap().is_empty());
    assert!(store.trash(clinic).await.unwrap().is_empty());
    assert!(
        store.record(clinic, kept).await.unwrap().is_some(),
        "only the deleted record goes"
    );
    let (rows, _) = store.changes(clinic, 0, 100).await.unwrap();
    assert_eq!(
        rows.iter().map(|r| r.record_id).collect::<Vec<_>>(),
        vec![kept]
    );
    // The purge is itself on record.
    let log = store
        .audit_entries(Some(clinic), log_before, 10)
        .await
        .unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(
        (log[0].action.as_str(), log[0].target, log[0].count),
        ("record_purged", Some(r), 4)
    );
    assert_eq!(store.purge_trash(300 + 60 * day).await.unwrap(), 0);
}

pub async fn pruning_keeps_the_rest_of_the_log_verifiable(store: &dyn Store) {
    use optovault_shared::audit::{ChainPoint, ChainVerifier};
    let (clinic, _) = new_clinic(store).await;
    // Entry 1 is the clinic's creation (at 1_700_000_000), then four reads at times 10..13.
    let (head0, _) = store.audit_head(Some(clinic)).await.unwrap();
    for t in 0..4 {
        let mut e = event(Some(clinic), "records_read");
        e.at = 10 + t;
        store.append_event(e, true).await.unwrap();
    }
    let entries = store.audit_entries(Some(clinic), 0, 100).await.unwrap();
    // Only a leading run of old entries goes: the creation entry (newest) stops a cut at 12.
    assert_eq!(store.prune_audit(12, 12).await.unwrap(), 0);
    let cut = 1_800_000_000;
    let last = entries.last().unwrap().clone();
    // Every log in the store is pruned; this clinic's share is its whole log.
    assert!(store.prune_audit(cut, cut).await.unwrap() >= entries.len());
    let anchor = store.audit_anchor(Some(clinic)).await.unwrap().unwrap();
    assert_eq!(anchor.0, last.seq);
    assert_eq!(anchor.1.as_slice(), last.hash.as_slice());
    let rest = store.audit_entries(Some(clinic), 0, 100).await.unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].action, "audit_pruned");
    assert_eq!(rest[0].count as usize, entries.len());
    assert_eq!(rest[0].seq, head0 + 5);
    let mut chain = ChainVerifier::new(
        Some(clinic),
        ChainPoint {
            seq: anchor.0,
            hash: anchor.1,
        },
        vec![],
    );
    chain.push(&rest[0]).unwrap();
    chain.finish().unwrap();
    // Nothing older is left: a second pass prunes nothing.
    assert_eq!(store.prune_audit(1_700_000_000, cut).await.unwrap(), 0);
}

pub async fn erasing_a_chart_takes_every_version_and_every_key(store: &dyn Store) {
    let (clinic, owner) = new_clinic(store).await;
    let chart = Uuid::new_v4();
    let (patient, exam, other) = (chart, Uuid::new_v4(), Uuid::new_v4());
    let in_chart = |id, v, body: &str| RecordWriteRow {
        chart_id: chart,
        ..write(id, v, body)
    };
    store
        .write_records(
            clinic,
            vec![
                in_chart(patient, 0, "p1"),
                in_chart(exam, 0, "e1"),
                write(other, 0, "o1"),
            ],
            1,
            vec![],
        )
        .await
        .unwrap();
    store
        .write_records(clinic, vec![in_chart(exam, 1, "e2")], 2, vec![])
        .await
        .unwrap();
    let not_yet = store
        .erase_chart(clinic, chart, event(Some(clinic), "chart_erased"))
        .await;
    assert!(
        is_conflict(not_yet, erase_conflict::NOT_RESTRICTED),
        "restricted first"
    );
    let chart_key = |epoch| WrappedKey {
        chart_id: Some(chart),
        ..wrapped(Uuid::new_v4(), Compartment::Clinical, epoch, owner)
    };
    let row = ChartRow {
        chart_id: chart,
        care_team: vec![owner],
        key_epoch: 1,
        restricted_by: owner,
        restricted_at: 3,
    };
    store
        .restrict_chart(
            clinic,
            row,
            vec![chart_key(1)],
            vec![],
            3,
            event(Some(clinic), "r"),
        )
        .await
        .unwrap();
    let keys_before = store
        .member(clinic, owner)
        .await
        .unwrap()
        .unwrap()
        .wrapped_keys;
    assert!(keys_before.iter().any(|k| k.chart_id == Some(chart)));
    let (log_before, _) = store.audit_head(Some(clinic)).await.unwrap();
    let n = store
        .erase_chart(clinic, chart, event(Some(clinic), "chart_erased"))
        .await
        .unwrap();
    assert_eq!(n, 2);
    for id in [patient, exam] {
        assert_eq!(store.record(clinic, id).await.unwrap(), None);
        assert!(store.record_versions(clinic, id).await.unwrap().is_empty());
    }
    assert!(
        store.record(clinic, other).await.unwrap().is_some(),
        "other charts stay"
    );
    assert!(store.charts(clinic).await.unwrap().is_empty());
    let keys_after = store
        .member(clinic, owner)
        .await
        .unwrap()
        .unwrap()
        .wrapped_keys;
    assert!(
        keys_after.iter().all(|k| k.chart_id != Some(chart)),
        "every chart key gone"
    );
    assert_eq!(
        keys_after.len(),
        keys_before.len() - 1,
        "the clinic's keys stay"
    );
    let log = store
        .audit_entries(Some(clinic), log_before, 10)
        .await
        .unwrap();
    assert_eq!(
        log.iter()
            .map(|e| (e.action.as_str(), e.target, e.count))
            .collect::<Vec<_>>(),
        vec![("chart_erased", None, 2)]
    );
}

pub async fn audit_entries_chain_and_checkpoints(store: &dyn Store) {
    use optovault_shared::audit::{ChainPoint, ChainVerifier};
    let (clinic, _) = new_clinic(store).await;
    let (start, _) = store.audit_head(Some(clinic)).await.unwrap();
    for _ in 0..5 {
        store
            .append_event(event(Some(clinic), "records_read"), true)
            .await
            .unwrap();
    }
    let entries = store.audit_entries(Some(clinic), 0, 100).await.unwrap();
    let mut chain = ChainVerifier::new(Some(clinic), ChainPoint::GENESIS, vec![]);
    for e in &entries {
        chain.push(e).unwrap();
    }
    let summary = chain.finish().unwrap();
    let (head, head_hash) = store.audit_head(Some(clinic)).await.unwrap();
    assert_eq!((summary.head.seq, summary.head.hash), (head, head_hash));
    assert_eq!(head, start + 5);
    assert!(store.audit_logs().await.unwrap().contains(&Some(clinic)));
    let cp = |seq: u64, hash: [u8; 32]| optovault_shared::wire::AuditCheckpoint {
        clinic_id: clinic,
        seq,
        head_hash: B64(hash.to_vec()),
        at: 1,
        signer: Uuid::new_v4(),
        signature: B64(vec![0; 64]),
    };
    let third: [u8; 32] = entries[2].hash.0.clone().try_into().unwrap();
    assert!(is_conflict(
        store
            .add_checkpoint(
                clinic,
                cp(3, [7; 32]),
                event(Some(clinic), "audit_checkpoint")
            )
            .await,
        audit_conflict::CHECKPOINT_MISMATCH
    ));
    assert!(is_conflict(
        store
            .add_checkpoint(
                clinic,
                cp(head + 9, third),
                event(Some(clinic), "audit_checkpoint")
            )
            .await,
        audit_conflict::CHECKPOINT_MISMATCH
    ));
    assert_eq!(
        store.audit_head(Some(clinic)).await.unwrap().0,
        head,
        "refused: no entry"
    );
    store
        .add_checkpoint(
            clinic,
            cp(3, third),
            event(Some(clinic), "audit_checkpoint"),
        )
        .await
        .unwrap();
    assert_eq!(store.audit_head(Some(clinic)).await.unwrap().0, head + 1);
    assert!(is_conflict(
        store
            .add_checkpoint(
                clinic,
                cp(3, third),
                event(Some(clinic), "audit_checkpoint")
            )
            .await,
        audit_conflict::CHECKPOINT_STALE
    ));
    assert_eq!(store.checkpoints(clinic).await.unwrap().len(), 1);
}

pub async fn record_writes_and_conflicts(store: &dyn Store) {
    let (clinic, _) = new_clinic(store).await;
    let r = Uuid::new_v4();
    let out = store
        .write_records(
            clinic,
            vec![write(r, 0, "v1")],
            10,
            vec![event(Some(clinic), "w")],
        )
        .await
        .unwrap();
    assert_eq!(
        out,
        vec![WriteOutcome {
            record_id: r,
            version: 1,
            seq: 1
        }]
    );
    // A second create of the same id conflicts.
    let err = store
        .write_records(
            clinic,
            vec![write(r, 0, "again")],
            11,
            vec![event(Some(clinic), "w")],
        )
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        StoreError::VersionConflict { current: 1, .. }
    ));
    let out = store
        .write_records(
            clinic,
            vec![write(r, 1, "v2")],
            12,
            vec![event(Some(clinic), "w")],
        )
        .await
        .unwrap();
    assert_eq!(out[0].version, 2);
    assert_eq!(out[0].seq, 2);
    // A stale update conflicts and writes nothing.
    let err = store
        .write_records(
            clinic,
            vec![write(r, 1, "stale")],
            13,
            vec![event(Some(clinic), "w")],
        )
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        StoreError::VersionConflict { current: 2, .. }
    ));
    let row = store.record(clinic, r).await.unwrap().unwrap();
    assert_eq!((row.version, row.seq, row.updated_at), (2, 2, 12));
    assert_eq!(row.envelope, b"v2".to_vec());
    assert_eq!(store.changes(clinic, 0, 100).await.unwrap().1, 2);
    assert_eq!(store.record(clinic, Uuid::new_v4()).await.unwrap(), None);
}

/// A batch that names a record more than once plays its writes in order: each sees the one
/// before (version + 1), the replaced versions of the batch are in the history, the feed holds
/// each record once at its last write, and the trash follows the last write.
pub async fn a_batch_may_write_a_record_twice(store: &dyn Store) {
    let (clinic, _) = new_clinic(store).await;
    let (e, n, d) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let tombstone = |id, v| RecordWriteRow {
        deleted: true,
        ..write(id, v, "gone")
    };
    let first = store
        .write_records(clinic, vec![write(e, 0, "e1")], 1, vec![])
        .await
        .unwrap();
    let base = first[0].seq;
    let out = store
        .write_records(
            clinic,
            vec![
                write(e, 1, "e2"),
                write(n, 0, "n1"),
                tombstone(e, 2),
                write(n, 1, "n2"),
                write(d, 0, "d1"),
                tombstone(d, 1),
                write(e, 3, "e4"),
            ],
            2,
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        out.iter()
            .map(|o| (o.record_id, o.version, o.seq - base))
            .collect::<Vec<_>>(),
        vec![
            (e, 2, 1),
            (n, 1, 2),
            (e, 3, 3),
            (n, 2, 4),
            (d, 1, 5),
            (d, 2, 6),
            (e, 4, 7)
        ]
    );
    let history = |id| async move {
        store
            .record_versions(clinic, id)
            .await
            .unwrap()
            .into_iter()
            .map(|h| (h.version, h.seq - base, h.envelope, h.updated_at))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        history(e).await,
        vec![
            (1, 0, b"e1".to_vec(), 1),
            (2, 1, b"e2".to_vec(), 2),
            (3, 3, b"gone".to_vec(), 2)
        ]
    );
    assert_eq!(history(n).await, vec![(1, 2, b"n1".to_vec(), 2)]);
    assert_eq!(history(d).await, vec![(1, 5, b"d1".to_vec(), 2)]);
    let latest = store.record(clinic, e).await.unwrap().unwrap();
    assert_eq!(
        (
            latest.version,
            latest.seq - base,
            latest.envelope.as_slice()
        ),
        (4, 7, b"e4".as_slice())
    );
    let (rows, head) = store.changes(clinic, 0, 100).await.unwrap();
    assert_eq!(
        rows.iter()
            .map(|r| (r.record_id, r.version, r.seq - base))
            .collect::<Vec<_>>(),
        vec![(n, 2, 4), (d, 2, 6), (e, 4, 7)]
    );
    assert_eq!(head, base + 7);
    assert_eq!(store.trash(clinic).await.unwrap(), vec![(d, 2)]);

    // Deleted and restored in one batch: out of the trash; restored then deleted: in it.
    store
        .write_records(
            clinic,
            vec![
                tombstone(n, 2),
                write(n, 3, "n4"),
                write(d, 2, "d3"),
                tombstone(d, 3),
            ],
            3,
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(store.trash(clinic).await.unwrap(), vec![(d, 3)]);

    // The second write of a record at the version the first started from conflicts (with the
    // version the first made), and nothing of the batch is written.
    let a = Uuid::new_v4();
    let r = store
        .write_records(
            clinic,
            vec![
                write(a, 0, "a1"),
                write(e, 4, "e5"),
                write(a, 0, "a1 again"),
            ],
            4,
            vec![event(Some(clinic), "w")],
        )
        .await;
    assert!(
        matches!(r, Err(StoreError::VersionConflict { record_id, current: 1 }) if record_id == a),
        "{r:?}"
    );
    // The first conflict in input order is the one named.
    let r = store
        .write_records(
            clinic,
            vec![write(e, 4, "e5"), write(e, 4, "e5 again"), write(a, 3, "a")],
            4,
            vec![],
        )
        .await;
    assert!(
        matches!(r, Err(StoreError::VersionConflict { record_id, current: 5 }) if record_id == e),
        "{r:?}"
    );
    assert_eq!(store.record(clinic, a).await.unwrap(), None);
    assert_eq!(store.record(clinic, e).await.unwrap().unwrap().version, 4);
    let (_, head_after) = store.changes(clinic, 0, 100).await.unwrap();
    assert_eq!(head_after, base + 11);
}

pub async fn batch_is_all_or_nothing(store: &dyn Store) {
    let (clinic, _) = new_clinic(store).await;
    let existing = Uuid::new_v4();
    store
        .write_records(
            clinic,
            vec![write(existing, 0, "a")],
            1,
            vec![event(Some(clinic), "w")],
        )
        .await
        .unwrap();
    let events_before = store
        .audit_entries(Some(clinic), 0, 1000)
        .await
        .unwrap()
        .len();
    let fresh: Vec<Uuid> = (0..5).map(|_| Uuid::new_v4()).collect();
    let mut batch: Vec<_> = fresh.iter().map(|id| write(*id, 0, "new")).collect();
    batch.push(write(existing, 7, "conflicting"));
    assert!(store
        .write_records(clinic, batch, 2, vec![event(Some(clinic), "w")])
        .await
        .is_err());
    for id in &fresh {
        assert_eq!(store.record(clinic, *id).await.unwrap(), None);
    }
    let (changes, head) = store.changes(clinic, 0, 100).await.unwrap();
    assert_eq!((changes.len(), head), (1, 1));
    assert_eq!(
        store
            .audit_entries(Some(clinic), 0, 1000)
            .await
            .unwrap()
            .len(),
        events_before,
        "a failed write appends no event"
    );
    // The same batch without the conflict writes all, with consecutive seqs.
    let batch: Vec<_> = fresh.iter().map(|id| write(*id, 0, "new")).collect();
    let out = store
        .write_records(clinic, batch, 3, vec![event(Some(clinic), "w")])
        .await
        .unwrap();
    assert_eq!(
        out.iter().map(|o| o.seq).collect::<Vec<_>>(),
        vec![2, 3, 4, 5, 6]
    );
}

pub async fn change_feed(store: &dyn Store) {
    let (clinic, _) = new_clinic(store).await;
    let ids: Vec<Uuid> = (0..10).map(|_| Uuid::new_v4()).collect();
    store
        .write_records(
            clinic,
            ids.iter().map(|id| write(*id, 0, "v1")).collect(),
            1,
            vec![event(Some(clinic), "w")],
        )
        .await
        .unwrap();
    // Update records 0 and 5: they move to the end of the feed.
    for i in [0, 5] {
        store
            .write_records(
                clinic,
                vec![write(ids[i], 1, "v2")],
                2,
                vec![event(Some(clinic), "w")],
            )
            .await
            .unwrap();
    }
    let (all, head) = store.changes(clinic, 0, 1000).await.unwrap();
    assert_eq!(head, 12);
    assert_eq!(all.len(), 10, "each record once");
    let seqs: Vec<u64> = all.iter().map(|r| r.seq).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "ordered by seq");
    assert_eq!(all[8].record_id, ids[0]);
    assert_eq!((all[9].record_id, all[9].version), (ids[5], 2));
    // Paging: since a cursor, only later changes.
    let (page, _) = store.changes(clinic, 0, 3).await.unwrap();
    assert_eq!(page.len(), 3);
    let (rest, _) = store.changes(clinic, page[2].seq, 1000).await.unwrap();
    assert_eq!(rest.len(), 7);
    let (tail, _) = store.changes(clinic, 11, 1000).await.unwrap();
    assert_eq!(tail.len(), 1);
    assert_eq!(tail[0].record_id, ids[5]);
    assert!(store.changes(clinic, 12, 1000).await.unwrap().0.is_empty());
    assert!(store
        .changes(clinic, u64::MAX, 10)
        .await
        .unwrap()
        .0
        .is_empty());
}

pub async fn record_listing(store: &dyn Store) {
    let (clinic, _) = new_clinic(store).await;
    let ids: BTreeSet<Uuid> = (0..25).map(|_| Uuid::new_v4()).collect();
    store
        .write_records(
            clinic,
            ids.iter().map(|id| write(*id, 0, "x")).collect(),
            1,
            vec![event(Some(clinic), "w")],
        )
        .await
        .unwrap();
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store.records(clinic, after, 10).await.unwrap();
        if page.is_empty() {
            break;
        }
        after = Some(page.last().unwrap().record_id);
        seen.extend(page.into_iter().map(|r| r.record_id));
    }
    assert_eq!(
        seen,
        ids.into_iter().collect::<Vec<_>>(),
        "all, in id order, once"
    );
}

pub async fn clinics_are_isolated(store: &dyn Store) {
    let (a, _) = new_clinic(store).await;
    let (b, _) = new_clinic(store).await;
    let r = Uuid::new_v4();
    store
        .write_records(
            a,
            vec![write(r, 0, "secret-a")],
            1,
            vec![event(Some(a), "w")],
        )
        .await
        .unwrap();
    assert_eq!(store.record(b, r).await.unwrap(), None);
    assert!(store.records(b, None, 100).await.unwrap().is_empty());
    assert_eq!(store.changes(b, 0, 100).await.unwrap(), (vec![], 0));
    // The same record id in clinic B is a different record.
    let out = store
        .write_records(b, vec![write(r, 0, "b")], 1, vec![event(Some(b), "w")])
        .await
        .unwrap();
    assert_eq!((out[0].version, out[0].seq), (1, 1));
    assert_eq!(
        store.record(a, r).await.unwrap().unwrap().envelope,
        b"secret-a"
    );
}

pub async fn events_are_appended_per_clinic(store: &dyn Store) {
    let (clinic, _) = new_clinic(store).await;
    let s1 = store
        .append_event(event(Some(clinic), "records_read"), false)
        .await
        .unwrap();
    let s2 = store
        .append_event(event(Some(clinic), "records_read"), true)
        .await
        .unwrap();
    assert_eq!(s2, s1 + 1);
    store
        .write_records(
            clinic,
            vec![write(Uuid::new_v4(), 0, "x")],
            1,
            vec![event(Some(clinic), "records_written")],
        )
        .await
        .unwrap();
    let evs = store.audit_entries(Some(clinic), 0, 100).await.unwrap();
    // Entry 1 is the clinic's creation, committed with it.
    assert_eq!(
        evs.iter().map(|e| e.action.as_str()).collect::<Vec<_>>(),
        vec![
            "clinic_created",
            "records_read",
            "records_read",
            "records_written"
        ]
    );
    assert_eq!(
        evs.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![1, 2, 3, 4]
    );
    assert!(evs.iter().all(|e| e.clinic_id == Some(clinic)));
    assert_eq!(
        store
            .audit_entries(Some(clinic), 3, 100)
            .await
            .unwrap()
            .len(),
        1
    );
    let (other, _) = new_clinic(store).await;
    assert_eq!(
        store
            .audit_entries(Some(other), 0, 100)
            .await
            .unwrap()
            .iter()
            .map(|e| e.action.as_str())
            .collect::<Vec<_>>(),
        vec!["clinic_created"],
        "another clinic's log holds only its own creation"
    );
}

pub async fn concurrent_writes_keep_sequence_gapless(store: &dyn Store) {
    let (clinic, _) = new_clinic(store).await;
    let results = futures_join(store, clinic).await;
    let mut seqs: Vec<u64> = results.into_iter().flatten().map(|o| o.seq).collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
    assert_eq!(
        store.changes(clinic, 0, 1000).await.unwrap().1,
        seqs.len() as u64
    );
}

async fn futures_join(store: &dyn Store, clinic: Uuid) -> Vec<Vec<WriteOutcome>> {
    // Four writers interleaved on one clinic, 25 writes each.
    let writer = |n: usize| async move {
        let mut out = Vec::new();
        for _ in 0..25 {
            let o = store
                .write_records(
                    clinic,
                    vec![write(Uuid::new_v4(), 0, "c")],
                    n as i64,
                    vec![event(Some(clinic), "w")],
                )
                .await
                .unwrap();
            out.extend(o);
        }
        out
    };
    let (a, b, c, d) = tokio::join!(writer(1), writer(2), writer(3), writer(4));
    vec![a, b, c, d]
}

/// Part one of the reopen check: writes data and returns the clinic id.
pub async fn seed_for_reopen(store: &dyn Store) -> Uuid {
    let (clinic, _) = new_clinic(store).await;
    let r = Uuid::new_v4();
    store
        .write_records(
            clinic,
            vec![write(r, 0, "persisted")],
            5,
            vec![event(Some(clinic), "w")],
        )
        .await
        .unwrap();
    clinic
}

/// Part two: after reopening, the data is there and the sequence continues.
pub async fn check_after_reopen(store: &dyn Store, clinic: Uuid) {
    let (rows, head) = store.changes(clinic, 0, 10).await.unwrap();
    assert_eq!(head, 1);
    assert_eq!(rows[0].envelope, b"persisted".to_vec());
    let out = store
        .write_records(
            clinic,
            vec![write(Uuid::new_v4(), 0, "next")],
            6,
            vec![event(Some(clinic), "w")],
        )
        .await
        .unwrap();
    assert_eq!(out[0].seq, 2);
}

/// Two handles on one database (for PostgreSQL, two connection pools: what two server processes
/// are), writing one clinic at once: sequence numbers and the audit chain stay gapless and
/// chained, every acknowledged write is there, and of two writes of the same record at the same
/// version exactly one wins while the other gets `VersionConflict` with nothing written. Not
/// part of [`run_all`], which takes one handle.
pub async fn concurrent_writes_through_two_handles(a: &dyn Store, b: &dyn Store) {
    use optovault_shared::audit::{ChainPoint, ChainVerifier};
    let (clinic, _) = new_clinic(a).await;
    let writer = |store: &'static str, n: usize| {
        let s: &dyn Store = if store == "a" { a } else { b };
        async move {
            let mut out = Vec::new();
            for _ in 0..30 {
                let o = s
                    .write_records(
                        clinic,
                        vec![write(Uuid::new_v4(), 0, "two")],
                        n as i64,
                        vec![event(Some(clinic), "records_written")],
                    )
                    .await
                    .unwrap();
                out.extend(o);
                s.append_event(event(Some(clinic), "records_read"), n % 2 == 0)
                    .await
                    .unwrap();
            }
            out
        }
    };
    let (w1, w2, w3, w4) = tokio::join!(
        writer("a", 1),
        writer("b", 2),
        writer("a", 3),
        writer("b", 4)
    );
    let acknowledged: Vec<WriteOutcome> = [w1, w2, w3, w4].into_iter().flatten().collect();
    let mut seqs: Vec<u64> = acknowledged.iter().map(|o| o.seq).collect();
    seqs.sort_unstable();
    assert_eq!(
        seqs,
        (1..=120).collect::<Vec<u64>>(),
        "gapless, no seq twice"
    );
    for store in [a, b] {
        let (rows, head) = store.changes(clinic, 0, 1000).await.unwrap();
        assert_eq!(head, 120);
        assert_eq!(rows.len(), 120);
        for o in &acknowledged {
            let r = store.record(clinic, o.record_id).await.unwrap().unwrap();
            assert_eq!((r.seq, r.version), (o.seq, 1));
        }
        let entries = store.audit_entries(Some(clinic), 0, 10_000).await.unwrap();
        assert_eq!(entries.len(), 1 + 240, "creation, 120 writes, 120 reads");
        let mut chain = ChainVerifier::new(Some(clinic), ChainPoint::GENESIS, vec![]);
        for e in &entries {
            chain.push(e).unwrap();
        }
        chain.finish().unwrap();
        let (head_seq, head_hash) = store.audit_head(Some(clinic)).await.unwrap();
        assert_eq!(head_seq, 241);
        assert_eq!(head_hash.to_vec(), entries.last().unwrap().hash.0);
    }

    // The same record written through both at version 0: one wins, the other writes nothing.
    for _ in 0..10 {
        let r = Uuid::new_v4();
        let (before, _) = a.audit_head(Some(clinic)).await.unwrap();
        let one = |s: &'static str| {
            let st: &dyn Store = if s == "a" { a } else { b };
            async move {
                st.write_records(
                    clinic,
                    vec![write(r, 0, s)],
                    9,
                    vec![event(Some(clinic), "records_written")],
                )
                .await
            }
        };
        let (ra, rb) = tokio::join!(one("a"), one("b"));
        let (won, lost) = match (ra, rb) {
            (Ok(w), Err(l)) | (Err(l), Ok(w)) => (w, l),
            other => panic!("exactly one write must win: {other:?}"),
        };
        assert!(
            matches!(lost, StoreError::VersionConflict { record_id, current: 1 } if record_id == r),
            "{lost:?}"
        );
        let row = b.record(clinic, r).await.unwrap().unwrap();
        assert_eq!((row.version, row.seq), (1, won[0].seq));
        assert!(b.record_versions(clinic, r).await.unwrap().is_empty());
        assert_eq!(a.audit_head(Some(clinic)).await.unwrap().0, before + 1);
    }
    let (_, head) = a.changes(clinic, 0, 0).await.unwrap();
    assert_eq!(head, 130);
}

fn chained_entries(clinic_id: Uuid, n: u64) -> Vec<AuditEntry> {
    let mut prev = optovault_shared::audit::GENESIS_HASH;
    (1..=n)
        .map(|seq| {
            let mut e = AuditEntry {
                seq,
                at: 1_600_000_000 + seq as i64,
                actor: None,
                clinic_id: Some(clinic_id),
                action: "records_written".into(),
                target: None,
                count: 1,
                outcome: "ok".into(),
                ip: None,
                detail: None,
                prev_hash: B64(prev.to_vec()),
                hash: B64(vec![]),
            };
            prev = optovault_shared::audit::entry_hash(&e);
            e.hash = B64(prev.to_vec());
            e
        })
        .collect()
}

fn import_of(clinic_id: Uuid, owner: &AccountRow, others: &[AccountRow]) -> ImportedClinic {
    let log = chained_entries(clinic_id, 3);
    let last = log.last().unwrap();
    let mut accounts = vec![owner.clone()];
    accounts.extend(others.iter().cloned());
    ImportedClinic {
        clinic: ClinicRow {
            clinic_id,
            created_at: 5,
            created_by: owner.account_id,
            profile: b"imported profile".to_vec(),
            policy: Default::default(),
        },
        members: accounts
            .iter()
            .map(|a| member(clinic_id, a.account_id, Role::Owner, vec![]))
            .collect(),
        accounts,
        roster: vec![roster_row(1, 1), roster_row(2, 2)],
        charts: vec![],
        audit_key: None,
        audit_anchor: None,
        checkpoints: vec![],
        trash: vec![],
        files: vec![],
        record_head: 7,
        audit_head: (last.seq, last.hash.as_slice().try_into().unwrap()),
        event: event(Some(clinic_id), "clinic_imported"),
    }
}

fn imported_record(record_id: Uuid, seq: u64, version: u64) -> RecordRow {
    RecordRow {
        record_id,
        chart_id: record_id,
        seq,
        version,
        updated_at: 10 + seq as i64,
        compartment: Compartment::Demographics,
        envelope: format!("imported v{version}").into_bytes(),
    }
}

pub async fn importing_a_clinic_makes_it_exist_at_once(store: &dyn Store) {
    let clinic_id = Uuid::new_v4();
    let mut owner = account(&format!("moved-{}", Uuid::new_v4()));
    owner.password_file = vec![];
    // Someone already here (a member of another imported clinic): kept as they are.
    let known = account(&format!("known-{}", Uuid::new_v4()));
    store.create_account(known.clone(), None).await.unwrap();
    let (r1, r2) = (Uuid::new_v4(), Uuid::new_v4());
    let mut file = file_row(owner.account_id, 2, 10, 4);
    file.completed_at = Some(FILE_T0 + 1);
    let batches = vec![
        ImportBatch::Events(chained_entries(clinic_id, 3)),
        ImportBatch::Records(vec![imported_record(r2, 5, 1), imported_record(r1, 7, 3)]),
        ImportBatch::Versions(vec![imported_record(r1, 1, 1), imported_record(r1, 3, 2)]),
        ImportBatch::Chunks(vec![
            (file.file_id, 0, vec![1; 10]),
            (file.file_id, 1, vec![2; 4]),
        ]),
    ];
    for b in batches {
        store.import_rows(clinic_id, b).await.unwrap();
    }
    // Nothing of it exists as a clinic until the finish.
    assert_eq!(store.clinic(clinic_id).await.unwrap(), None);
    assert!(store.members(clinic_id).await.unwrap().is_empty());
    assert_eq!(store.account(owner.account_id).await.unwrap(), None);

    let mut import = import_of(clinic_id, &owner, std::slice::from_ref(&known));
    import.files = vec![file.clone()];
    import.trash = vec![(r2, 11)];
    store.finish_import(import.clone()).await.unwrap();
    let c = store.clinic(clinic_id).await.unwrap().unwrap();
    assert_eq!(c.profile, b"imported profile".to_vec());
    assert_eq!(store.members(clinic_id).await.unwrap().len(), 2);
    assert_eq!(store.clinics_of(owner.account_id).await.unwrap().len(), 1);
    assert_eq!(store.clinics_of(known.account_id).await.unwrap().len(), 1);
    assert_eq!(
        store.account_by_username(&owner.username).await.unwrap(),
        Some(owner.clone())
    );
    assert_eq!(
        store.account(known.account_id).await.unwrap(),
        Some(known.clone())
    );
    assert_eq!(store.roster_head(clinic_id).await.unwrap().unwrap().seq, 2);
    assert_eq!(store.roster(clinic_id, 0).await.unwrap().0.len(), 2);
    let (feed, head) = store.changes(clinic_id, 0, 100).await.unwrap();
    assert_eq!(head, 7);
    assert_eq!(
        feed.iter()
            .map(|r| (r.record_id, r.seq, r.version))
            .collect::<Vec<_>>(),
        vec![(r2, 5, 1), (r1, 7, 3)]
    );
    let history = store.record_versions(clinic_id, r1).await.unwrap();
    assert_eq!(
        history
            .iter()
            .map(|r| (r.seq, r.version))
            .collect::<Vec<_>>(),
        vec![(1, 1), (3, 2)]
    );
    assert_eq!(history[1].envelope, b"imported v2".to_vec());
    assert_eq!(store.trash(clinic_id).await.unwrap(), vec![(r2, 11)]);
    assert_eq!(
        store.file(clinic_id, file.file_id).await.unwrap(),
        Some(file.clone())
    );
    assert_eq!(
        store
            .file_chunk_indices(clinic_id, file.file_id)
            .await
            .unwrap(),
        vec![0, 1]
    );
    assert_eq!(
        store.file_chunk(clinic_id, file.file_id, 1).await.unwrap(),
        Some(vec![2; 4])
    );
    // The log goes on from the imported head: the import's own entry is 4, chained to 3.
    let log = store.audit_entries(Some(clinic_id), 0, 100).await.unwrap();
    assert_eq!(log.len(), 4);
    assert_eq!(log[3].action, "clinic_imported");
    assert_eq!(log[3].prev_hash, log[2].hash);
    assert_eq!(store.audit_head(Some(clinic_id)).await.unwrap().0, 4);
    // And the change sequence goes on from the imported head.
    let w = store
        .write_records(clinic_id, vec![write(r2, 1, "next")], 20, vec![])
        .await
        .unwrap();
    assert_eq!((w[0].seq, w[0].version), (8, 2));

    // The clinic exists now: no second import, no stray rows, no discarding it.
    assert!(matches!(
        store.finish_import(import.clone()).await,
        Err(StoreError::Conflict(w)) if w == "clinic"
    ));
    assert!(matches!(
        store
            .import_rows(clinic_id, ImportBatch::Events(vec![]))
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store.discard_import(clinic_id).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.changes(clinic_id, 0, 100).await.unwrap().0.len(), 2);

    // Conflicting accounts refuse the whole import, and discarding removes its rows.
    let other = Uuid::new_v4();
    store
        .import_rows(other, ImportBatch::Records(vec![imported_record(r1, 1, 1)]))
        .await
        .unwrap();
    store
        .import_rows(
            other,
            ImportBatch::Chunks(vec![(file.file_id, 0, vec![9; 10])]),
        )
        .await
        .unwrap();
    let mut squatter = account(&owner.username);
    squatter.account_id = Uuid::new_v4();
    let taken = store.finish_import(import_of(other, &squatter, &[])).await;
    assert!(
        matches!(taken, Err(StoreError::Conflict(ref w)) if w == "username"),
        "{taken:?}"
    );
    let mut other_keys = known.clone();
    other_keys.public_keys.ed25519 = B64(vec![1; 32]);
    let fresh = account(&format!("fresh-{}", Uuid::new_v4()));
    let clash = store
        .finish_import(import_of(other, &fresh, &[other_keys]))
        .await;
    assert!(
        matches!(clash, Err(StoreError::Conflict(ref w)) if w == "account"),
        "{clash:?}"
    );
    assert_eq!(store.clinic(other).await.unwrap(), None);
    assert_eq!(store.account(fresh.account_id).await.unwrap(), None);
    assert_eq!(
        store.account_by_username(&fresh.username).await.unwrap(),
        None
    );
    store.discard_import(other).await.unwrap();
    assert_eq!(store.record(other, r1).await.unwrap(), None);
    assert_eq!(store.changes(other, 0, 100).await.unwrap().0.len(), 0);
    assert_eq!(
        store.file_chunk(other, file.file_id, 0).await.unwrap(),
        None
    );
    assert_eq!(
        store
            .audit_entries(Some(other), 0, 100)
            .await
            .unwrap()
            .len(),
        0
    );
}

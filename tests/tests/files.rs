//! Encrypted files against the real server: chunked, resumable uploads; downloads byte for byte;
//! who may upload and download (roles, clinics, the uploader); the key epoch; hostile requests.
//! Random bytes stand in for the chunk ciphertexts: the server must store them untransformed.

use std::fs;

use optovault_shared::roster::RosterChange;
use optovault_shared::wire::*;
use optovault_shared::Compartment;
use optovault_tests::*;
use rand_core::{OsRng, RngCore};
use serde_json::json;
use uuid::Uuid;

/// Mirrors the server's limits (`optovault_server::files`).
const MAX_CHUNK_BYTES: usize = 1024 * 1024 + 64;
const MAX_FILE_BYTES: u64 = 50 * 1024 * 1024;

struct Team {
    server: TestServer,
    owner_c: Client,
    owner: Session,
    clinic: Clinic,
}

fn team() -> Team {
    let server = TestServer::start();
    let owner_c = server.client();
    let owner = owner_c.signup(&unique_username("owner"), &strong_password());
    let clinic = owner_c.create_clinic(&owner, "Fundus & Co").unwrap();
    Team {
        server,
        owner_c,
        owner,
        clinic,
    }
}

/// Registers an account and brings it into the clinic with `role`.
fn join(t: &Team, name: &str, role: Role) -> (Client, Session, Clinic) {
    let c = t.server.client();
    let s = c.signup(&unique_username(name), &strong_password());
    let link = t.owner_c.invite(&t.owner, &t.clinic, role).unwrap();
    c.accept(&s, &link).unwrap();
    t.owner_c
        .admit(&t.owner, &t.clinic, link.invitation_id)
        .unwrap()
        .unwrap();
    let clinic = c.join_view(&s, t.clinic.id);
    (c, s, clinic)
}

fn random_bytes(n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    OsRng.fill_bytes(&mut v);
    v
}

/// Random "ciphertext" chunks: `count - 1` chunks of `size` bytes, then one of `last`.
fn chunks(count: usize, size: usize, last: usize) -> Vec<Vec<u8>> {
    (0..count)
        .map(|i| random_bytes(if i + 1 == count { last } else { size }))
        .collect()
}

/// The start of an upload of `parts` on a new chart, sealed under the current key of
/// `compartment` in `keyring`.
fn start_req(clinic: &Clinic, compartment: Compartment, parts: &[Vec<u8>]) -> FileUploadStart {
    let key = clinic
        .keyring
        .current(compartment)
        .expect("a key of the compartment");
    FileUploadStart {
        file_id: Uuid::new_v4(),
        chart_id: Uuid::new_v4(),
        compartment,
        key_id: key.key_id,
        epoch: key.epoch,
        chunk_count: parts.len() as u32,
        chunk_size: parts[0].len() as u32,
        total_size: parts.iter().map(|p| p.len() as u64).sum(),
    }
}

/// Starts, uploads every chunk and completes.
fn upload(c: &Client, clinic_id: Uuid, req: &FileUploadStart, parts: &[Vec<u8>]) {
    c.start_file(clinic_id, req).expect("start");
    for (i, p) in parts.iter().enumerate() {
        let raw = c.put_file_chunk(clinic_id, req.file_id, i as u32, p);
        assert_eq!(raw.status, 204, "{raw:?}");
    }
    let raw = c.complete_file(clinic_id, req.file_id);
    assert_eq!(raw.status, 204, "{raw:?}");
}

#[track_caller]
fn expect_code(raw: &Raw, status: u16, code: &str) {
    let e = raw.expect_error(&[status]);
    assert_eq!(e.code, code, "{raw:?}");
}

fn file_events(c: &Client, clinic_id: Uuid, file_id: Uuid) -> Vec<AuditEntry> {
    c.access_events(clinic_id, 0, 1000)
        .expect("access events")
        .entries
        .into_iter()
        .filter(|e| e.target == Some(file_id))
        .collect()
}

#[test]
fn upload_resume_and_download_byte_for_byte() {
    let mut t = team();
    let cid = t.clinic.id;
    let parts = chunks(3, 64 * 1024, 10_000);
    let req = start_req(&t.clinic, Compartment::Clinical, &parts);
    let fid = req.file_id;

    let raw = t.owner_c.start_file_raw(cid, &req);
    assert_eq!(raw.status, 201, "{raw:?}");
    let started: FileStatus = raw.parse();
    assert_eq!(
        (started.file_id, started.chart_id, started.compartment),
        (fid, req.chart_id, Compartment::Clinical)
    );
    assert_eq!(
        (started.chunk_count, started.chunk_size, started.total_size),
        (3, 64 * 1024, 2 * 64 * 1024 + 10_000)
    );
    assert_eq!(started.uploaded_by, t.owner.account_id);
    assert!(started.received.is_empty() && !started.complete);
    // A retried start is answered with the same upload (200, not a conflict).
    let raw = t.owner_c.start_file_raw(cid, &req);
    assert_eq!(raw.status, 200, "{raw:?}");
    assert_eq!(raw.parse::<FileStatus>(), started);

    // Chunk 1 is "lost" on the way.
    for i in [0u32, 2] {
        let raw = t.owner_c.put_file_chunk(cid, fid, i, &parts[i as usize]);
        assert_eq!(raw.status, 204, "{raw:?}");
        assert!(raw.body.is_empty());
    }
    let status = t.owner_c.file_status(cid, fid).unwrap();
    assert_eq!(status.received, vec![0, 2]);
    assert!(!status.complete);
    expect_code(&t.owner_c.complete_file(cid, fid), 409, "file_incomplete");
    expect_code(
        &t.owner_c.get_file_chunk(cid, fid, 0),
        409,
        "file_incomplete",
    );

    // Resume: send what the status says is missing (twice: re-sending is harmless).
    let missing: Vec<u32> = (0..status.chunk_count)
        .filter(|i| !status.received.contains(i))
        .collect();
    assert_eq!(missing, vec![1]);
    for _ in 0..2 {
        let raw = t.owner_c.put_file_chunk(cid, fid, 1, &parts[1]);
        assert_eq!(raw.status, 204, "{raw:?}");
    }
    assert_eq!(t.owner_c.complete_file(cid, fid).status, 204);
    assert_eq!(
        t.owner_c.complete_file(cid, fid).status,
        204,
        "completing again is harmless"
    );
    let status = t.owner_c.file_status(cid, fid).unwrap();
    assert_eq!(status.received, vec![0, 1, 2]);
    assert!(status.complete && status.completed_at.is_some());

    // The download equals the upload, byte for byte.
    for (i, p) in parts.iter().enumerate() {
        let raw = t.owner_c.get_file_chunk(cid, fid, i as u32);
        assert_eq!(raw.status, 200, "{raw:?}");
        assert_eq!(
            raw.content_type.as_deref(),
            Some("application/octet-stream")
        );
        assert!(raw.body == *p, "chunk {i} differs from what was uploaded");
    }
    // Complete means immutable.
    expect_code(
        &t.owner_c.put_file_chunk(cid, fid, 1, &parts[1]),
        409,
        "file_complete",
    );
    expect_code(
        &t.owner_c
            .put_file_chunk(cid, fid, 1, &random_bytes(parts[1].len())),
        409,
        "file_complete",
    );

    // The server stored the bytes as they came (the client encrypts; the server transforms
    // nothing): every chunk is in the data directory verbatim.
    let stored: Vec<Vec<u8>> = all_files(&t.server.data_dir)
        .iter()
        .filter_map(|p| fs::read(p).ok())
        .collect();
    for (i, p) in parts.iter().enumerate() {
        assert!(
            stored.iter().any(|f| memchr::memmem::find(f, p).is_some()),
            "chunk {i} is not stored verbatim in {}",
            t.server.data_dir.display()
        );
    }

    // Access events: one upload; one read for the whole download; chunk 0 again is a new
    // download, another chunk soon after is not.
    let events = file_events(&t.owner_c, cid, fid);
    let actions: Vec<&str> = events.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, vec!["file_uploaded", "file_read"], "{events:?}");
    assert!(events.iter().all(|e| e.actor == Some(t.owner.account_id)));
    assert_eq!(t.owner_c.get_file_chunk(cid, fid, 2).status, 200);
    assert_eq!(file_events(&t.owner_c, cid, fid).len(), 2);
    assert_eq!(t.owner_c.get_file_chunk(cid, fid, 0).status, 200);
    assert_eq!(file_events(&t.owner_c, cid, fid).len(), 3);

    // Durable: after a restart the file is still complete and identical.
    t.server.restart();
    assert!(t.owner_c.file_status(cid, fid).unwrap().complete);
    for (i, p) in parts.iter().enumerate() {
        let raw = t.owner_c.get_file_chunk(cid, fid, i as u32);
        assert!(
            raw.status == 200 && raw.body == *p,
            "chunk {i} after restart"
        );
    }
}

#[test]
fn roles_clinics_and_uploaders_are_enforced() {
    let t = team();
    let cid = t.clinic.id;
    let (desk_c, _desk, desk_clinic) = join(&t, "desk", Role::FrontDesk);
    let (doc_c, _doc, _) = join(&t, "doc", Role::Optometrist);
    let out_c = t.server.client();
    let out = out_c.signup(&unique_username("outsider"), &strong_password());
    let out_clinic = out_c.create_clinic(&out, "Elsewhere Optics").unwrap();

    let parts = chunks(2, 4096, 100);
    let req = start_req(&t.clinic, Compartment::Clinical, &parts);
    let fid = req.file_id;
    t.owner_c.start_file(cid, &req).unwrap();
    assert_eq!(t.owner_c.put_file_chunk(cid, fid, 0, &parts[0]).status, 204);

    // Front desk (no clinical compartment): no clinical upload, no access to a clinical file.
    let desk_req = FileUploadStart {
        file_id: Uuid::new_v4(),
        ..req.clone()
    };
    expect_code(&desk_c.start_file_raw(cid, &desk_req), 403, "forbidden");
    desk_c
        .put_file_chunk(cid, fid, 1, &parts[1])
        .expect_error(&[403]);
    desk_c.complete_file(cid, fid).expect_error(&[403]);
    desk_c
        .get(&format!("/api/clinics/{cid}/files/{fid}"))
        .expect_error(&[403]);
    // ... but a demographics file (a scanned ID card, say) is front desk's to upload.
    let scan = chunks(1, 300, 300);
    let scan_req = start_req(&desk_clinic, Compartment::Demographics, &scan);
    upload(&desk_c, cid, &scan_req, &scan);
    assert_eq!(
        desk_c.get_file_chunk(cid, scan_req.file_id, 0).body,
        scan[0]
    );

    // Another member with the compartment may read the file but not add to someone's upload.
    assert_eq!(doc_c.file_status(cid, fid).unwrap().received, vec![0]);
    expect_code(
        &doc_c.put_file_chunk(cid, fid, 1, &parts[1]),
        403,
        "not_uploader",
    );
    expect_code(&doc_c.complete_file(cid, fid), 403, "not_uploader");

    // A member of another clinic learns nothing, under either clinic's id.
    out_c
        .get(&format!("/api/clinics/{cid}/files/{fid}"))
        .expect_error(&[404]);
    out_c
        .put_file_chunk(cid, fid, 1, &parts[1])
        .expect_error(&[404]);
    out_c.complete_file(cid, fid).expect_error(&[404]);
    out_c
        .get(&format!("/api/clinics/{}/files/{fid}", out_clinic.id))
        .expect_error(&[404]);
    out_c
        .put_file_chunk(out_clinic.id, fid, 1, &parts[1])
        .expect_error(&[404]);

    // The uploader finishes.
    assert_eq!(t.owner_c.put_file_chunk(cid, fid, 1, &parts[1]).status, 204);
    assert_eq!(t.owner_c.complete_file(cid, fid).status, 204);
    for (i, p) in parts.iter().enumerate() {
        let raw = doc_c.get_file_chunk(cid, fid, i as u32);
        assert!(raw.status == 200 && raw.body == *p, "{raw:?}");
        expect_code(&desk_c.get_file_chunk(cid, fid, i as u32), 403, "forbidden");
        out_c
            .get_file_chunk(cid, fid, i as u32)
            .expect_error(&[404]);
        out_c
            .get_file_chunk(out_clinic.id, fid, i as u32)
            .expect_error(&[404]);
    }
    // The same file id in the outsider's own clinic is a different file.
    let own = chunks(1, 10, 10);
    let own_req = FileUploadStart {
        file_id: fid,
        ..start_req(&out_clinic, Compartment::Clinical, &own)
    };
    upload(&out_c, out_clinic.id, &own_req, &own);
    assert_eq!(out_c.get_file_chunk(out_clinic.id, fid, 0).body, own[0]);
    assert_eq!(t.owner_c.get_file_chunk(cid, fid, 0).body, parts[0]);
    // Anonymous: 401.
    t.server
        .client()
        .get_file_chunk(cid, fid, 0)
        .expect_error(&[401]);
}

#[test]
fn uploads_need_the_current_key_epoch() {
    let t = team();
    let cid = t.clinic.id;
    let (_desk_c, desk, _) = join(&t, "desk", Role::FrontDesk);
    let parts = chunks(1, 512, 512);

    // A key the member does not hold.
    let unknown = FileUploadStart {
        key_id: Uuid::new_v4(),
        ..start_req(&t.clinic, Compartment::Clinical, &parts)
    };
    expect_code(&t.owner_c.start_file_raw(cid, &unknown), 400, "unknown_key");
    // A key of another compartment.
    let wrong = FileUploadStart {
        compartment: Compartment::Billing,
        ..start_req(&t.clinic, Compartment::Clinical, &parts)
    };
    expect_code(&t.owner_c.start_file_raw(cid, &wrong), 400, "unknown_key");

    // An upload under epoch 1 is under way when the owner removes a member (epoch 2).
    let req = start_req(&t.clinic, Compartment::Clinical, &parts);
    assert_eq!(req.epoch, 1);
    t.owner_c.start_file(cid, &req).unwrap();
    assert_eq!(
        t.owner_c
            .put_file_chunk(cid, req.file_id, 0, &parts[0])
            .status,
        204
    );
    let (rotation, new_ring) = t.owner_c.rotation_request(
        &t.owner,
        &t.clinic,
        RosterChange::Remove {
            member: desk.account_id,
        },
    );
    t.owner_c.rotate(cid, &rotation).unwrap();
    // Completion re-checks the epoch: the file was sealed under keys the removed member holds.
    expect_code(
        &t.owner_c.complete_file(cid, req.file_id),
        409,
        "stale_key_epoch",
    );
    expect_code(
        &t.owner_c.get_file_chunk(cid, req.file_id, 0),
        409,
        "file_incomplete",
    );
    // New uploads under epoch 1 are refused; under epoch 2 they work.
    let stale = start_req(&t.clinic, Compartment::Clinical, &parts);
    expect_code(
        &t.owner_c.start_file_raw(cid, &stale),
        409,
        "stale_key_epoch",
    );
    let rotated = Clinic {
        id: cid,
        keyring: new_ring,
        view: t.clinic.view.clone(),
    };
    let fresh = start_req(&rotated, Compartment::Clinical, &parts);
    assert_eq!(fresh.epoch, 2);
    upload(&t.owner_c, cid, &fresh, &parts);
    assert_eq!(
        t.owner_c.get_file_chunk(cid, fresh.file_id, 0).body,
        parts[0]
    );
}

#[test]
fn hostile_file_requests_get_json_errors() {
    let mut t = team();
    let cid = t.clinic.id;
    let parts = chunks(2, 1000, 500);
    let req = start_req(&t.clinic, Compartment::Clinical, &parts);
    let fid = req.file_id;
    t.owner_c.start_file(cid, &req).unwrap();
    let c = &t.owner_c;
    let chunk_path = |index: &str| format!("/api/clinics/{cid}/files/{fid}/chunks/{index}");

    // Sizes: over the file's chunk size, over the route's limit, wrong, empty.
    expect_code(
        &c.put_file_chunk(cid, fid, 0, &random_bytes(1001)),
        413,
        "chunk_too_large",
    );
    expect_code(
        &c.put_file_chunk(cid, fid, 0, &random_bytes(MAX_CHUNK_BYTES + 1)),
        413,
        "chunk_too_large",
    );
    match c.try_send(
        Method::PUT,
        &chunk_path("0"),
        Some((vec![0u8; 8 * 1024 * 1024], "application/octet-stream")),
        &[],
    ) {
        Ok(raw) => expect_code(&raw, 413, "chunk_too_large"),
        // The server may answer 413 and close before reading the whole upload.
        Err(e) => eprintln!("oversized chunk ended with a transport error: {e}"),
    }
    expect_code(
        &c.put_file_chunk(cid, fid, 0, &random_bytes(999)),
        400,
        "invalid_chunk_size",
    );
    expect_code(
        &c.put_file_chunk(cid, fid, 1, &random_bytes(1000)),
        400,
        "invalid_chunk_size",
    );
    expect_code(
        &c.put_file_chunk(cid, fid, 1, &random_bytes(499)),
        400,
        "invalid_chunk_size",
    );
    expect_code(
        &c.put_file_chunk(cid, fid, 0, &[]),
        400,
        "invalid_chunk_size",
    );
    // Indices: out of range, beyond u32, negative, not a number.
    expect_code(
        &c.put_file_chunk(cid, fid, 2, &parts[0]),
        400,
        "invalid_chunk_index",
    );
    expect_code(
        &c.put_file_chunk(cid, fid, u32::MAX, &parts[0]),
        400,
        "invalid_chunk_index",
    );
    for index in [
        "4294967296",
        "99999999999999999999",
        "-1",
        "abc",
        "1.5",
        "%00",
    ] {
        let raw = c.put_raw(
            &chunk_path(index),
            parts[0].clone(),
            "application/octet-stream",
        );
        expect_code(&raw, 400, "invalid_path");
        expect_code(&c.get(&chunk_path(index)), 400, "invalid_path");
    }
    // Ids that are not UUIDs.
    for path in [
        format!("/api/clinics/{cid}/files/not-a-uuid"),
        format!("/api/clinics/not-a-uuid/files/{fid}"),
        format!("/api/clinics/{cid}/files/{fid}x/chunks/0"),
    ] {
        expect_code(&c.get(&path), 400, "invalid_path");
    }
    // Content types.
    for ct in ["application/json", "text/plain", "multipart/form-data"] {
        expect_code(
            &c.put_raw(&chunk_path("0"), parts[0].clone(), ct),
            415,
            "unsupported_media_type",
        );
    }
    let raw = c.send(Method::PUT, &chunk_path("0"), None, &[]);
    expect_code(&raw, 415, "unsupported_media_type");
    // None of that stored anything.
    assert!(c.file_status(cid, fid).unwrap().received.is_empty());
    // With a charset parameter it is still octets.
    let raw = c.put_raw(
        &chunk_path("0"),
        parts[0].clone(),
        "Application/Octet-Stream; charset=binary",
    );
    assert_eq!(raw.status, 204, "{raw:?}");
    // An unknown file, and a download by index of an unknown file.
    expect_code(
        &c.put_file_chunk(cid, Uuid::new_v4(), 0, &parts[0]),
        404,
        "not_found",
    );
    expect_code(&c.get_file_chunk(cid, Uuid::new_v4(), 0), 404, "not_found");
    expect_code(&c.complete_file(cid, Uuid::new_v4()), 404, "not_found");

    // Starts: inconsistent or excessive sizes, bad ids, conflicting parameters, bad JSON.
    let bad = |f: &dyn Fn(&mut FileUploadStart)| {
        let mut r = FileUploadStart {
            file_id: Uuid::new_v4(),
            ..req.clone()
        };
        f(&mut r);
        c.start_file_raw(cid, &r)
    };
    expect_code(&bad(&|r| r.chunk_count = 0), 400, "invalid_file_size");
    expect_code(&bad(&|r| r.chunk_count = 3), 400, "invalid_file_size");
    expect_code(&bad(&|r| r.chunk_count = 1), 400, "invalid_file_size");
    expect_code(&bad(&|r| r.chunk_size = 0), 400, "invalid_file_size");
    expect_code(&bad(&|r| r.total_size = 0), 400, "invalid_file_size");
    expect_code(
        &bad(&|r| r.chunk_size = MAX_CHUNK_BYTES as u32 + 1),
        400,
        "invalid_file_size",
    );
    expect_code(
        &bad(&|r| {
            r.chunk_count = 100_000;
            r.chunk_size = 1024;
            r.total_size = 100_000 * 1024;
        }),
        400,
        "invalid_file_size",
    );
    expect_code(
        &bad(&|r| {
            r.chunk_size = 1024 * 1024;
            r.total_size = MAX_FILE_BYTES + 2 * 1024 * 1024;
            r.chunk_count = 52;
        }),
        413,
        "file_too_large",
    );
    expect_code(
        &bad(&|r| {
            r.chunk_size = u32::MAX;
            r.total_size = u64::MAX;
            r.chunk_count = u32::MAX;
        }),
        400,
        "invalid_file_size",
    );
    expect_code(&bad(&|r| r.file_id = Uuid::nil()), 400, "invalid_file_id");
    expect_code(&bad(&|r| r.file_id = cid), 400, "invalid_file_id");
    expect_code(&bad(&|r| r.chart_id = Uuid::nil()), 400, "invalid_chart_id");
    expect_code(&bad(&|r| r.epoch = 0), 409, "stale_key_epoch");
    let conflicting = FileUploadStart {
        total_size: req.total_size - 1,
        ..req.clone()
    };
    expect_code(&c.start_file_raw(cid, &conflicting), 409, "file_exists");
    let mut extra = serde_json::to_value(&req).unwrap();
    extra["name"] = json!("fundus-left.jpg");
    let raw = c.post(&format!("/api/clinics/{cid}/files"), &extra);
    raw.expect_error(&[400, 422]);
    let raw = c.post_raw(
        &format!("/api/clinics/{cid}/files"),
        b"{not json".to_vec(),
        "application/json",
    );
    raw.expect_error(&[400]);

    // Still serving, and no handler panicked.
    assert!(t.server.is_running());
    assert_eq!(c.health().status, 200);
    assert!(!t.server.log_text().contains("panicked"));
}

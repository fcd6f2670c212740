//! Confidentiality at rest (threat model property 1) and no password at the server (property 2):
//! canary strings in every field of a patient and in the clinic's name, written through the real
//! client crypto, must appear nowhere in the server's data directory or logs, in plain bytes, hex
//! or base64 at any alignment. (UTF-16 encodings are not searched: nothing in the server produces
//! them.) A positive control proves the scan reads the files the server wrote.

use optovault_shared::chart::{Attachment, AttachmentCategory};
use optovault_shared::crypto::{
    file_chunk_count, seal_file_chunk, FileContext, FileKey, FILE_CHUNK_BYTES, FILE_CHUNK_OVERHEAD,
};
use optovault_shared::domain::{Address, Guardian, Insurance, Patient, RecordBody, Sex};
use optovault_shared::wire::FileUploadStart;
use optovault_shared::{Compartment, B64};
use optovault_tests::*;
use uuid::Uuid;

fn canary(field: &str) -> String {
    format!("CANARY-{field}-{}", random_hex(24))
}

fn canary_patient() -> Patient {
    Patient {
        given_name: canary("GIVEN"),
        family_name: canary("FAMILY"),
        date_of_birth: canary("DOB"),
        sex: Sex::Other,
        phone: canary("PHONE"),
        email: format!("{}@example.org", canary("EMAIL")),
        address: Address {
            line1: canary("LINE1"),
            line2: canary("LINE2"),
            city: canary("CITY"),
            region: canary("REGION"),
            postal_code: canary("POSTAL"),
            country: canary("COUNTRY"),
        },
        insurance_member_id: canary("MEMBERID"),
        notes: format!("{}\nsecond line {}", canary("NOTES"), canary("NOTES2")),
        chart_number: canary("CHARTNO"),
        guardian: Some(Guardian {
            name: canary("GUARDIAN"),
            relationship: canary("RELATION"),
            phone: canary("GPHONE"),
        }),
        insurance: vec![Insurance {
            payer: canary("PAYER"),
            member_id: canary("PLANID"),
            group: canary("GROUP"),
        }],
        ..Default::default()
    }
}

fn field_canaries(p: &Patient) -> Vec<(String, String)> {
    let mut v = vec![
        ("given_name", p.given_name.clone()),
        ("family_name", p.family_name.clone()),
        ("date_of_birth", p.date_of_birth.clone()),
        ("phone", p.phone.clone()),
        ("email", p.email.split('@').next().unwrap().to_string()),
        ("address.line1", p.address.line1.clone()),
        ("address.line2", p.address.line2.clone()),
        ("address.city", p.address.city.clone()),
        ("address.region", p.address.region.clone()),
        ("address.postal_code", p.address.postal_code.clone()),
        ("address.country", p.address.country.clone()),
        ("insurance_member_id", p.insurance_member_id.clone()),
        ("chart_number", p.chart_number.clone()),
        ("guardian.name", p.guardian.as_ref().unwrap().name.clone()),
        (
            "guardian.relationship",
            p.guardian.as_ref().unwrap().relationship.clone(),
        ),
        ("guardian.phone", p.guardian.as_ref().unwrap().phone.clone()),
        ("insurance.payer", p.insurance[0].payer.clone()),
        ("insurance.member_id", p.insurance[0].member_id.clone()),
        ("insurance.group", p.insurance[0].group.clone()),
        ("notes", p.notes.lines().next().unwrap().to_string()),
        (
            "notes line 2",
            p.notes
                .lines()
                .nth(1)
                .unwrap()
                .trim_start_matches("second line ")
                .to_string(),
        ),
    ];
    v.iter_mut()
        .for_each(|(_, s)| assert!(s.starts_with("CANARY-")));
    v.into_iter().map(|(k, s)| (k.to_string(), s)).collect()
}

#[test]
fn no_plaintext_or_password_in_data_dir_or_logs() {
    // Verbose logging, so anything the server might log is in the log.
    let mut server = TestServer::start_with(ServerOptions {
        rust_log: Some("trace".into()),
        ..Default::default()
    });
    let c = server.client();
    let user = unique_username("canary");
    let password = format!("CANARY-PASSWORD-{} lilac otter", random_hex(20));
    let s = c.signup(&user, &password);
    // A wrong password attempt too (its bytes must not reach the server either).
    let wrong_password = format!("CANARY-WRONGPW-{} lilac otter", random_hex(20));
    assert!(matches!(
        c.login(&user, &wrong_password),
        Err(LoginError::Crypto(_))
    ));
    let s = {
        // log in again for a fresh session after the failure
        drop(s);
        c.login(&user, &password).unwrap()
    };
    let clinic_name = canary("CLINICNAME");
    let clinic = c.create_clinic(&s, &clinic_name).unwrap();

    // Patients: one by PUT, one in a batch, and an update of the first with new canaries.
    let p1 = canary_patient();
    let p2 = canary_patient();
    let p3 = canary_patient();
    let (id1, id2) = (Uuid::new_v4(), Uuid::new_v4());
    c.put_patient(&s, &clinic, id1, 0, &p1).unwrap();
    c.batch(
        clinic.id,
        vec![patient_write(&s, clinic.id, &clinic.keyring, id2, 0, &p2)],
    )
    .unwrap();
    c.put_patient(&s, &clinic, id1, 1, &p3).unwrap();
    // Chart records of every compartment: an exam, an appointment, an invoice, with canaries.
    let mut exam = sample_exam(1, 0, s.account_id);
    exam.history.chief_complaint = canary("COMPLAINT");
    exam.plan = canary("PLAN");
    let mut appt = optovault_shared::chart::Appointment {
        provider: exam.provider.clone().unwrap(),
        start: "2026-12-01T09:30".into(),
        duration_minutes: 30,
        ..Default::default()
    };
    appt.reason = canary("REASON");
    let invoice = optovault_shared::chart::Invoice {
        number: 1,
        date: "2026-11-26".into(),
        lines: vec![optovault_shared::chart::InvoiceLine {
            code: "92004".into(),
            description: canary("LINEDESC"),
            quantity: 1,
            unit_price_cents: 12000,
            insurance_share_cents: 0,
        }],
        ..Default::default()
    };
    let chart_canaries = vec![
        ("exam chief complaint", exam.history.chief_complaint.clone()),
        ("exam plan", exam.plan.clone()),
        ("appointment reason", appt.reason.clone()),
        ("invoice line", invoice.lines[0].description.clone()),
    ];
    let chart_writes: Vec<_> = [
        RecordBody::Exam(exam),
        RecordBody::Appointment(appt),
        RecordBody::Invoice(invoice),
    ]
    .iter()
    .map(|b| chart_write(&s, clinic.id, &clinic.keyring, id1, Uuid::new_v4(), b))
    .collect();
    c.batch(clinic.id, chart_writes).unwrap();
    // A file: its name in the metadata record, its bytes sealed chunk by chunk.
    let file_text = format!("{} ", canary("FILEBYTES")).repeat(40_000);
    let file_name = format!("{}.txt", canary("FILENAME"));
    let file_id = Uuid::new_v4();
    let key = FileKey::generate();
    let chunks = file_chunk_count(file_text.len() as u64);
    let meta = RecordBody::Attachment(Attachment {
        file_name: file_name.clone(),
        mime_type: "text/plain".into(),
        size_bytes: file_text.len() as u64,
        category: AttachmentCategory::Other,
        chunk_count: chunks,
        file_key: key.to_b64(),
        sha256: B64(vec![0; 32]),
        ..Default::default()
    });
    c.batch(
        clinic.id,
        vec![chart_write(
            &s,
            clinic.id,
            &clinic.keyring,
            id1,
            file_id,
            &meta,
        )],
    )
    .unwrap();
    let gate = clinic
        .keyring
        .sealing_key(&id1, Compartment::Clinical)
        .unwrap();
    c.start_file(
        clinic.id,
        &FileUploadStart {
            file_id,
            chart_id: id1,
            compartment: Compartment::Clinical,
            key_id: gate.key_id,
            epoch: gate.epoch,
            chunk_count: chunks,
            chunk_size: (FILE_CHUNK_BYTES + FILE_CHUNK_OVERHEAD) as u32,
            total_size: file_text.len() as u64 + u64::from(chunks) * FILE_CHUNK_OVERHEAD as u64,
        },
    )
    .unwrap();
    let ctx = FileContext {
        clinic_id: clinic.id,
        chart_id: id1,
        file_id,
    };
    for (i, part) in file_text.as_bytes().chunks(FILE_CHUNK_BYTES).enumerate() {
        let sealed = seal_file_chunk(&key, &ctx, i as u32, i as u32 + 1 == chunks, part).unwrap();
        let r = c.put_file_chunk(clinic.id, file_id, i as u32, &sealed);
        assert_eq!(r.status, 204, "{r:?}");
    }
    assert_eq!(c.complete_file(clinic.id, file_id).status, 204);
    assert_eq!(c.get_file_chunk(clinic.id, file_id, 0).status, 200);
    // Read everything back through every read path (and check it decrypts to the canaries).
    let r1 = c.get_record(clinic.id, id1).unwrap();
    assert_eq!(
        open_patient(&s, clinic.id, &clinic.keyring, &r1.envelope).unwrap(),
        p3
    );
    let (all, _, _) = c.all_changes(clinic.id, 0, 100, 10).unwrap();
    assert_eq!(
        all.len(),
        6,
        "two patients, three chart records and a file record"
    );
    c.list_records(clinic.id, None, Some(10)).unwrap();
    let view = c.clinic(clinic.id).unwrap();
    assert_eq!(open_clinic(&s, &view).unwrap().0.name, clinic_name);
    c.access_events(clinic.id, 0, 100).unwrap();
    c.logout().unwrap();

    // Stop the server so everything is flushed and the log is complete.
    server.stop();

    let mut needles: Vec<(String, Variants)> = Vec::new();
    for (i, p) in [&p1, &p2, &p3].iter().enumerate() {
        for (field, value) in field_canaries(p) {
            needles.push((
                format!("patient {} {field}", i + 1),
                needle_variants(&value),
            ));
        }
    }
    for (what, value) in &chart_canaries {
        needles.push(((*what).into(), needle_variants(value)));
    }
    needles.push(("file name".into(), needle_variants(&file_name)));
    needles.push(("file bytes".into(), needle_variants(&file_text[..60])));
    // Record kinds exist only inside ciphertext.
    needles.push(("record kind".into(), needle_variants("\"kind\":\"exam\"")));
    needles.push(("clinic name".into(), needle_variants(&clinic_name)));
    needles.push(("password".into(), needle_variants(&password)));
    needles.push(("wrong password".into(), needle_variants(&wrong_password)));
    // Field names exist only in the plaintext JSON of a patient.
    needles.push((
        "patient field name".into(),
        needle_variants("insurance_member_id"),
    ));
    needles.push((
        "patient field name".into(),
        needle_variants("date_of_birth"),
    ));
    // Common prefix of every canary (catches fragments).
    needles.push((
        "canary prefix".into(),
        vec![("plain".into(), b"CANARY-".to_vec())],
    ));

    let mut files = all_files(&server.data_dir);
    assert!(
        !files.is_empty(),
        "the server wrote nothing under {}",
        server.data_dir.display()
    );
    let data_bytes: u64 = files
        .iter()
        .map(|f| std::fs::metadata(f).unwrap().len())
        .sum();
    files.push(server.log_path.clone());
    let log_len = std::fs::metadata(&server.log_path).unwrap().len();

    let hits = scan_files(&files, &needles);
    assert!(
        hits.is_empty(),
        "plaintext or password found at the server ({} hits):\n{}",
        hits.len(),
        hits.iter()
            .take(40)
            .map(|h| format!(
                "  {} ({}) in {} at {}",
                h.needle,
                h.variant,
                h.file.display(),
                h.offset
            ))
            .collect::<Vec<_>>()
            .join("\n")
    );

    // Positive control: the scan does see what the server stores. A 48-byte slice from the
    // middle of a stored ciphertext must be found, raw or base64-encoded.
    let ct = r1.envelope.ciphertext.as_slice();
    assert!(ct.len() > 100);
    let slice = &ct[ct.len() / 2 - 24..ct.len() / 2 + 24];
    let mut control = vec![("raw".to_string(), slice.to_vec())];
    for (variant, n) in needle_variants_bytes(slice) {
        control.push((variant, n));
    }
    let data_files = all_files(&server.data_dir);
    let control_hits = scan_files(&data_files, &[("ciphertext slice".into(), control)]);
    assert!(
        !control_hits.is_empty(),
        "positive control failed: a stored ciphertext was not found in {} files ({data_bytes} bytes) \
         under {}; the scan would not see plaintext either",
        data_files.len(),
        server.data_dir.display()
    );
    // The log is non-empty (the server did log at trace level), so scanning it meant something.
    assert!(log_len > 0, "server log is empty");
}

/// Base64 variants of arbitrary bytes (as `needle_variants` does for strings).
fn needle_variants_bytes(b: &[u8]) -> Variants {
    use base64::Engine as _;
    let mut out = Vec::new();
    let engines: [(&str, &base64::engine::GeneralPurpose); 2] = [
        ("base64", &base64::engine::general_purpose::STANDARD_NO_PAD),
        (
            "base64url",
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        ),
    ];
    for (name, engine) in engines {
        for shift in 0..3usize {
            let mut buf = vec![0u8; shift];
            buf.extend_from_slice(b);
            let enc = engine.encode(&buf);
            let skip = [0, 2, 3][shift];
            let usable = (buf.len() / 3) * 4;
            out.push((
                format!("{name}@{shift}"),
                enc.as_bytes()[skip..usable].to_vec(),
            ));
        }
    }
    out
}

//! The chart's record kinds as a whole: serde shape (tag, unknown fields, old records), the
//! compartment each kind is filed under, validation of the samples, the extended patient, JSON
//! round trips of generated records, and (feature `client`) a trip through the record envelope.
//!
//! Run with `cargo test -p optovault-shared --features client`.

mod common;

use common::*;
use optovault_shared::chart::*;
use optovault_shared::domain::{Guardian, Patient, PatientStatus, RecordBody};
use optovault_shared::Compartment;
use proptest::prelude::*;
use serde_json::json;

#[test]
fn every_sample_is_valid_and_warning_free() {
    for body in every_body() {
        assert_eq!(body.validate(TODAY), Ok(()), "{}", body.kind());
        assert!(body.warnings().is_empty(), "{}", body.kind());
    }
}

#[test]
fn kinds_and_compartments() {
    let bodies = every_body();
    let kinds: Vec<&str> = bodies.iter().map(RecordBody::kind).collect();
    assert_eq!(kinds, RecordBody::KINDS);
    let expected = [
        ("patient", Compartment::Demographics),
        ("clinical_note", Compartment::Clinical),
        ("exam", Compartment::Clinical),
        ("spectacle_rx", Compartment::Prescriptions),
        ("contact_lens_rx", Compartment::Prescriptions),
        ("appointment", Compartment::Demographics),
        ("reminder_contact", Compartment::Demographics),
        ("invoice", Compartment::Billing),
        ("payment", Compartment::Billing),
        ("attachment", Compartment::Clinical),
        ("patient_index", Compartment::Demographics),
    ];
    for (body, (kind, compartment)) in bodies.iter().zip(expected) {
        assert_eq!(body.kind(), kind);
        assert_eq!(body.compartment(), compartment, "{kind}");
    }
}

#[test]
fn json_round_trip_of_every_variant() {
    for body in every_body() {
        let v = serde_json::to_value(&body).unwrap();
        assert_eq!(v["kind"], body.kind());
        let text = serde_json::to_string(&body).unwrap();
        // Exactly one top-level "kind": no record has a field that would clash with the tag.
        assert_eq!(
            v.as_object()
                .unwrap()
                .keys()
                .filter(|k| *k == "kind")
                .count(),
            1
        );
        let back: RecordBody = serde_json::from_str(&text).unwrap();
        assert_eq!(back, body);
        let back: RecordBody = serde_json::from_slice(&serde_json::to_vec(&v).unwrap()).unwrap();
        assert_eq!(back, body);
        // Unknown fields are refused at the top level of every kind.
        let mut extra = v.clone();
        extra["surprise"] = json!(1);
        assert!(
            serde_json::from_value::<RecordBody>(extra).is_err(),
            "{}",
            body.kind()
        );
    }
}

#[test]
fn unknown_nested_fields_and_kinds_refused() {
    let mut v = serde_json::to_value(RecordBody::SpectacleRx(spectacles())).unwrap();
    v["od"]["tint"] = json!("brown");
    assert!(serde_json::from_value::<RecordBody>(v).is_err());
    let mut v = serde_json::to_value(RecordBody::Exam(exam())).unwrap();
    v["iop"][0]["unit"] = json!("kPa");
    assert!(serde_json::from_value::<RecordBody>(v).is_err());
    assert!(serde_json::from_value::<RecordBody>(json!({ "kind": "referral_letter" })).is_err());
}

#[test]
fn units_are_integers_in_json() {
    let v = serde_json::to_value(spectacles()).unwrap();
    assert_eq!(v["os"]["sphere"], json!(-100));
    assert_eq!(v["os"]["cylinder"], json!(-50));
    assert_eq!(v["os"]["prism"][0], json!({ "amount": 50, "base": "up" }));
    assert_eq!(v["pd"], json!({ "type": "binocular", "mm": 6350 }));
    let v = serde_json::to_value(&exam().visual_acuity[0]).unwrap();
    assert_eq!(
        v,
        json!({
            "eye": "od", "distance": "distance", "correction": "sc",
            "notation": "snellen_feet", "entered": "20/40", "logmar": 301
        })
    );
}

#[test]
fn old_patient_json_still_parses() {
    // A patient as written before the chart fields existed.
    let old = json!({
        "kind": "patient",
        "given_name": "Jane",
        "family_name": "Doe",
        "date_of_birth": "1980-02-29",
        "sex": "female",
        "phone": "+1 (555) 010-2030",
        "email": "jane@example.org",
        "address": {
            "line1": "", "line2": "", "city": "", "region": "", "postal_code": "", "country": ""
        },
        "insurance_member_id": "VSP-12345",
        "notes": ""
    });
    let RecordBody::Patient(p) = serde_json::from_value::<RecordBody>(old).unwrap() else {
        panic!("not a patient");
    };
    assert_eq!(p.given_name, "Jane");
    assert_eq!(p.status, PatientStatus::Active);
    assert_eq!(p.guardian, None);
    assert!(p.insurance.is_empty() && p.consents.is_empty());
    assert_eq!(p.chart_number, "");
    assert_eq!(p.recall_due, None);
    assert_eq!(p.validate(TODAY), Ok(()));
}

fn patient_fields(p: &Patient) -> Vec<&'static str> {
    p.validate(TODAY)
        .err()
        .unwrap_or_default()
        .into_iter()
        .map(|e| e.field)
        .collect()
}

#[test]
fn minors_need_a_guardian() {
    let mut p = patient();
    p.guardian = None;
    assert!(p.is_minor(TODAY));
    assert_eq!(patient_fields(&p), vec!["guardian.name"]);
    // 18 on the day: an adult.
    p.date_of_birth = "2008-11-26".into();
    assert!(!p.is_minor(TODAY));
    assert_eq!(patient_fields(&p), Vec::<&str>::new());
    p.date_of_birth = "2008-11-27".into();
    assert_eq!(patient_fields(&p), vec!["guardian.name"]);
    let mut p = patient();
    p.guardian = Some(Guardian {
        name: " ".into(),
        relationship: String::new(),
        phone: "123".into(),
    });
    assert_eq!(
        patient_fields(&p),
        vec!["guardian.name", "guardian.relationship", "guardian.phone"]
    );
}

#[test]
fn patient_chart_fields() {
    let mut p = patient();
    p.chart_number = "C 1042".into();
    p.insurance[0].member_id.clear();
    p.insurance[0].payer.clear();
    p.consents[0].signed_at = "2026-11-27".into();
    p.recall_due = Some("next year".into());
    assert_eq!(
        patient_fields(&p),
        vec![
            "chart_number",
            "insurance.payer",
            "insurance.member_id",
            "consents.signed_at",
            "recall_due"
        ]
    );
    let errs = p.validate(TODAY).unwrap_err();
    assert!(errs[1].message.starts_with("Insurance 1: "));
    assert!(patient().matches("c-1042"));
    let p = patient().normalized();
    assert_eq!(p, patient());
}

// ---- generated records -----------------------------------------------------------------------

fn base() -> impl Strategy<Value = PrismBase> {
    prop_oneof![
        Just(PrismBase::Up),
        Just(PrismBase::Down),
        Just(PrismBase::In),
        Just(PrismBase::Out)
    ]
}

fn arb_eye() -> impl Strategy<Value = EyeRefraction> {
    (
        any::<i32>(),
        any::<i32>(),
        proptest::option::of(any::<u16>()),
        proptest::option::of(any::<i32>()),
        proptest::collection::vec((any::<i32>(), base()), 0..3),
    )
        .prop_map(|(s, c, axis, add, prisms)| EyeRefraction {
            sphere: Diopters(s),
            cylinder: Diopters(c),
            axis,
            add: add.map(Diopters),
            prism: prisms
                .into_iter()
                .map(|(a, base)| Prism {
                    amount: Centi(a),
                    base,
                })
                .collect(),
        })
}

fn arb_body() -> impl Strategy<Value = RecordBody> {
    prop_oneof![
        (
            proptest::option::of(arb_eye()),
            proptest::option::of(arb_eye()),
            0usize..4,
            any::<String>(),
            proptest::option::of((any::<i32>(), any::<i32>())),
        )
            .prop_map(|(od, os, lt, notes, pd)| {
                RecordBody::SpectacleRx(SpectacleRx {
                    od,
                    os,
                    lens_type: LensType::ALL[lt],
                    notes,
                    pd: pd.map(|(a, b)| Pd::Monocular {
                        od: Centi(a),
                        os: Centi(b),
                    }),
                    ..spectacles()
                })
            }),
        (
            proptest::collection::vec(
                (any::<String>(), any::<u32>(), any::<i64>(), any::<i64>()),
                0..4
            ),
            any::<u32>(),
            any::<bool>(),
        )
            .prop_map(|(lines, number, posted)| {
                RecordBody::Invoice(Invoice {
                    number,
                    lines: lines
                        .into_iter()
                        .map(|(description, quantity, unit, share)| InvoiceLine {
                            code: String::new(),
                            description,
                            quantity,
                            unit_price_cents: unit,
                            insurance_share_cents: share,
                        })
                        .collect(),
                    status: if posted {
                        InvoiceStatus::Posted
                    } else {
                        InvoiceStatus::Draft
                    },
                    credit_note_for: posted.then(|| id(31)),
                    ..invoice()
                })
            }),
        (any::<i64>(), any::<bool>(), any::<String>()).prop_map(|(amount, refund, reference)| {
            RecordBody::Payment(Payment {
                amount_cents: amount,
                refund_of: refund.then(|| id(32)),
                reference,
                ..payment()
            })
        }),
        (
            proptest::collection::vec(
                (
                    any::<u16>(),
                    any::<bool>(),
                    proptest::option::of("[0-9:]{0,5}")
                ),
                0..4
            ),
            proptest::collection::vec((any::<String>(), any::<i32>()), 0..3),
            any::<String>(),
            proptest::option::of(any::<u16>()),
        )
            .prop_map(|(iop, va, plan, cd)| {
                let mut e = exam();
                e.iop = iop
                    .into_iter()
                    .map(|(mmhg, right, time)| IopReading {
                        eye: if right { Side::Od } else { Side::Os },
                        mmhg,
                        method: IopMethod::TonoPen,
                        time,
                    })
                    .collect();
                e.visual_acuity = va
                    .into_iter()
                    .map(|(entered, logmar)| VisualAcuity {
                        entered,
                        logmar: LogMar(logmar),
                        ..Default::default()
                    })
                    .collect();
                e.plan = plan;
                e.cup_disc.os = cd.map(CupDisc);
                RecordBody::Exam(e)
            }),
        (any::<String>(), any::<String>(), any::<u64>(), any::<u32>()).prop_map(
            |(file_name, mime_type, size_bytes, chunk_count)| {
                RecordBody::Attachment(Attachment {
                    file_name,
                    mime_type,
                    size_bytes,
                    chunk_count,
                    ..attachment()
                })
            }
        ),
        (
            any::<String>(),
            any::<String>(),
            proptest::option::of(any::<String>())
        )
            .prop_map(|(given_name, chart_number, recall_due)| {
                RecordBody::Patient(Patient {
                    given_name,
                    chart_number,
                    recall_due,
                    ..patient()
                })
            }),
    ]
}

proptest! {
    /// Any record, valid or not, survives JSON unchanged, and validating it never panics.
    #[test]
    fn generated_records_round_trip(body in arb_body()) {
        let text = serde_json::to_string(&body).unwrap();
        let back: RecordBody = serde_json::from_str(&text).unwrap();
        prop_assert_eq!(&back, &body);
        let _ = body.validate(TODAY);
        let _ = body.validate("not a date");
        let _ = body.warnings();
    }
}

// ---- through the record envelope ---------------------------------------------------------------

#[cfg(feature = "client")]
#[test]
fn every_variant_through_the_envelope() {
    use optovault_shared::crypto::{open_record, seal_record, ClinicKeyring, RecordSlot, UserKeys};
    use optovault_shared::envelope::Purpose;
    use uuid::Uuid;

    let keyring = ClinicKeyring::generate();
    let author = UserKeys::generate();
    let author_id = Uuid::new_v4();
    let author_key = author.public_keys().ed25519.0;
    let clinic = Uuid::new_v4();
    let chart = Uuid::new_v4();
    for body in every_body() {
        let record_id = if matches!(body, RecordBody::Patient(_)) {
            chart
        } else {
            Uuid::new_v4()
        };
        let slot = RecordSlot {
            clinic_id: clinic,
            chart_id: chart,
            record_id,
            version: 1,
            purpose: Purpose::Record,
        };
        let plain = serde_json::to_vec(&body).unwrap();
        let env = seal_record(
            slot,
            body.compartment(),
            &keyring,
            &author_id,
            &author,
            &plain,
        )
        .unwrap();
        assert_eq!(env.compartment, body.compartment());
        assert!(env.ciphertext.len() <= optovault_shared::limits::MAX_CIPHERTEXT_BYTES);
        let opened = open_record(&clinic, Purpose::Record, &env, &keyring, |a| {
            (a == &author_id).then(|| author_key.clone())
        })
        .unwrap();
        let back: RecordBody = serde_json::from_slice(&opened).unwrap();
        assert_eq!(back, body, "{}", body.kind());
        // Filed under another compartment's key, the same header does not open.
        let mut moved = env.clone();
        moved.compartment = match body.compartment() {
            Compartment::Clinical => Compartment::Prescriptions,
            _ => Compartment::Clinical,
        };
        assert!(
            open_record(&clinic, Purpose::Record, &moved, &keyring, |a| {
                (a == &author_id).then(|| author_key.clone())
            })
            .is_err()
        );
    }
}

proptest! {
    /// A guardian is required exactly while the patient is under 18: before the day whose
    /// (year + 18, month, day) the patient was born on.
    #[test]
    fn guardian_required_for_minors(y in 1990i32..=2026, m in 1u8..=12, d in 1u8..=28) {
        let dob = format!("{y:04}-{m:02}-{d:02}");
        prop_assume!(dob.as_str() <= TODAY);
        let p = Patient { date_of_birth: dob, guardian: None, ..patient() };
        let minor = (y + 18, m, d) > (2026, 11, 26);
        prop_assert_eq!(p.is_minor(TODAY), minor);
        prop_assert_eq!(patient_fields(&p).contains(&"guardian.name"), minor);
        prop_assert_eq!(p.validate(TODAY).is_ok(), !minor);
    }
}

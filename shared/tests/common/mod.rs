//! Sample chart records shared by the integration tests (one valid instance of every kind).
#![allow(dead_code)]

use optovault_shared::chart::*;
use optovault_shared::domain::{
    Address, ClinicalNote, Consent, ConsentType, Guardian, Insurance, Patient, PatientStatus,
    RecordBody, Sex,
};
use optovault_shared::B64;
use uuid::Uuid;

pub const TODAY: &str = "2026-11-26";

pub fn id(n: u8) -> Uuid {
    // Fixed, valid v4 ids so the tests are deterministic.
    uuid::Builder::from_random_bytes([n; 16]).into_uuid()
}

pub fn doctor() -> StaffRef {
    StaffRef {
        account_id: id(1),
        name: "Dr Iris Lens".into(),
    }
}

pub fn patient() -> Patient {
    Patient {
        given_name: "Mia".into(),
        family_name: "Okafor".into(),
        date_of_birth: "2012-03-14".into(),
        sex: Sex::Female,
        phone: "+1 555 010 2030".into(),
        email: "mia.parent@example.org".into(),
        address: Address {
            line1: "1 Lens Street".into(),
            city: "Springfield".into(),
            region: "IL".into(),
            postal_code: "62701".into(),
            country: "US".into(),
            ..Default::default()
        },
        insurance_member_id: "VSP-12345".into(),
        notes: "Prefers morning appointments.".into(),
        chart_number: "C-1042".into(),
        status: PatientStatus::Active,
        guardian: Some(Guardian {
            name: "Ada Okafor".into(),
            relationship: "mother".into(),
            phone: "+1 555 010 2031".into(),
        }),
        insurance: vec![Insurance {
            payer: "VSP".into(),
            member_id: "VSP-12345".into(),
            group: "G-77".into(),
        }],
        consents: vec![Consent {
            consent_type: ConsentType::Treatment,
            signed_at: "2026-01-10".into(),
            document: Some(id(9)),
        }],
        recall_due: Some("2027-11-20".into()),
    }
}

pub fn exam() -> Exam {
    Exam {
        exam_type: ExamType::Comprehensive,
        provider: Some(doctor()),
        date: "2026-11-20".into(),
        history: History {
            chief_complaint: "Blurred board at school".into(),
            allergies: "None known".into(),
            ..Default::default()
        },
        visual_acuity: vec![
            VisualAcuity::new(
                EyeSel::Od,
                VaDistance::Distance,
                VaCorrection::Sc,
                VaNotation::SnellenFeet,
                "20/40",
            )
            .unwrap(),
            VisualAcuity::new(
                EyeSel::Os,
                VaDistance::Distance,
                VaCorrection::Sc,
                VaNotation::SnellenMetres,
                "6/9",
            )
            .unwrap(),
            VisualAcuity::new(
                EyeSel::Ou,
                VaDistance::Near,
                VaCorrection::Cc,
                VaNotation::Decimal,
                "1.0",
            )
            .unwrap(),
        ],
        refractions: vec![Refraction {
            refraction_type: RefractionType::Cycloplegic,
            od: Some(EyeRefraction {
                sphere: Diopters(-200),
                ..Default::default()
            }),
            os: Some(EyeRefraction {
                sphere: Diopters(-100),
                cylinder: Diopters(-50),
                axis: Some(180),
                ..Default::default()
            }),
            notes: String::new(),
        }],
        keratometry: PerEye {
            od: Some(KReading {
                k1: Diopters(4300),
                k1_axis: 180,
                k2: Diopters(4412),
                k2_axis: 90,
            }),
            os: None,
        },
        iop: vec![
            IopReading {
                eye: Side::Od,
                mmhg: 16,
                method: IopMethod::Rebound,
                time: Some("09:40".into()),
            },
            IopReading {
                eye: Side::Os,
                mmhg: 23,
                method: IopMethod::Goldmann,
                time: None,
            },
        ],
        cct_um: PerEye {
            od: Some(545),
            os: Some(552),
        },
        slit_lamp: PerEye {
            od: "Clear".into(),
            os: "Clear".into(),
        },
        fundus: PerEye {
            od: "Healthy disc".into(),
            os: "Healthy disc".into(),
        },
        cup_disc: PerEye {
            od: Some(CupDisc(30)),
            os: Some(CupDisc(35)),
        },
        dilation: Some(Dilation {
            agent: "cyclopentolate 1%".into(),
            time: "09:45".into(),
        }),
        diagnoses: vec![Diagnosis {
            code: "H52.13".into(),
            description: "Myopia, bilateral".into(),
            laterality: Laterality::Both,
        }],
        plan: "Spectacles for full-time wear. Review in 1 year.".into(),
        signed: Some(Signature {
            by: doctor(),
            at: "2026-11-20T11:15".into(),
        }),
        amendments: vec![Amendment {
            by: doctor(),
            at: "2026-11-21T08:00".into(),
            text: "OS IOP repeated: 19 mmHg.".into(),
        }],
    }
}

pub fn spectacles() -> SpectacleRx {
    SpectacleRx {
        status: RxStatus::Active,
        issued: "2026-11-20".into(),
        expiry: None,
        lens_type: LensType::Progressive,
        od: Some(EyeRefraction {
            sphere: Diopters(-200),
            add: Some(Diopters(200)),
            prism: vec![Prism {
                amount: Centi(50),
                base: PrismBase::Down,
            }],
            ..Default::default()
        }),
        os: Some(EyeRefraction {
            sphere: Diopters(-100),
            cylinder: Diopters(-50),
            axis: Some(180),
            add: Some(Diopters(200)),
            prism: vec![Prism {
                amount: Centi(50),
                base: PrismBase::Up,
            }],
        }),
        pd: Some(Pd::Binocular { mm: Centi(6350) }),
        near_pd: Some(Centi(6000)),
        segment_height: Some(Centi(1800)),
        vertex_distance: Some(Centi(1200)),
        notes: "Anti-reflection coating.".into(),
        prescriber: Prescriber {
            account_id: Some(doctor().account_id),
            name: doctor().name,
            licence: "OD-4471".into(),
        },
        source_exam: Some(id(20)),
    }
}

pub fn contacts() -> ContactLensRx {
    let eye = |cyl: i32| ClEye {
        power: Diopters(-275),
        cylinder: Diopters(cyl),
        axis: Some(160),
        add: Some(Diopters(175)),
        base_curve: Centi(870),
        diameter: Centi(1400),
        color: "green".into(),
    };
    ContactLensRx {
        status: RxStatus::Active,
        issued: "2026-11-20".into(),
        expiry: Some("2027-11-20".into()),
        brand: "OphthaGuard".into(),
        manufacturer: "Lens Works".into(),
        material: "silicone hydrogel".into(),
        od: Some(eye(-225)),
        os: Some(eye(-350)),
        replacement: Some(Replacement::Monthly),
        prescriber: Prescriber {
            account_id: None,
            name: "Dr Outside Practice".into(),
            licence: "X-1".into(),
        },
        notes: "Shade treatment for extreme light sensitivity".into(),
        source_exam: None,
    }
}

pub fn appointment() -> Appointment {
    Appointment {
        provider: doctor(),
        start: "2026-12-01T09:30".into(),
        duration_minutes: 45,
        appointment_type: AppointmentType::ContactLens,
        status: AppointmentStatus::Booked,
        reason: "Contact lens check".into(),
        notes: String::new(),
    }
}

pub fn reminder() -> ReminderContact {
    ReminderContact {
        about: ReminderAbout::Recall {
            due: "2027-11-20".into(),
        },
        channel: ContactChannel::Email,
        outcome: ContactOutcome::Sent,
        notes: String::new(),
        at: "2026-11-25T16:00".into(),
        by: StaffRef {
            account_id: id(2),
            name: "Front Desk".into(),
        },
    }
}

pub fn invoice() -> Invoice {
    Invoice {
        number: 1042,
        date: "2026-11-20".into(),
        lines: vec![InvoiceLine {
            code: "92004".into(),
            description: "Comprehensive eye exam, new patient".into(),
            quantity: 1,
            unit_price_cents: 15_000,
            insurance_share_cents: 12_000,
        }],
        status: InvoiceStatus::Posted,
        credit_note_for: None,
        notes: String::new(),
    }
}

pub fn payment() -> Payment {
    Payment {
        invoice_id: id(30),
        amount_cents: 3_000,
        method: PaymentMethod::Card,
        date: "2026-11-20".into(),
        refund_of: None,
        reference: "slip 0031".into(),
    }
}

pub fn attachment() -> Attachment {
    Attachment {
        file_name: "fundus-od.jpg".into(),
        mime_type: "image/jpeg".into(),
        size_bytes: 1_234_567,
        category: AttachmentCategory::FundusPhoto,
        taken: Some("2026-11-20".into()),
        chunk_count: 2,
        thumbnail: Some(Thumbnail {
            mime_type: "image/jpeg".into(),
            data: B64(vec![0xff, 0xd8, 0xff, 0xe0]),
        }),
        eye: Some(EyeSel::Od),
        description: "Optic disc centred".into(),
        file_key: B64(vec![7; 39]),
        sha256: B64(vec![9; 32]),
    }
}

/// One valid record of every kind, in `RecordBody::KINDS` order.
pub fn every_body() -> Vec<RecordBody> {
    vec![
        RecordBody::Patient(patient()),
        RecordBody::ClinicalNote(ClinicalNote {
            text: "Phoned about lens care.".into(),
        }),
        RecordBody::Exam(exam()),
        RecordBody::SpectacleRx(spectacles()),
        RecordBody::ContactLensRx(contacts()),
        RecordBody::Appointment(appointment()),
        RecordBody::ReminderContact(reminder()),
        RecordBody::Invoice(invoice()),
        RecordBody::Payment(payment()),
        RecordBody::Attachment(attachment()),
        RecordBody::PatientIndex(index_shard()),
    ]
}

/// A shard of the patient index holding `patient()`.
pub fn index_shard() -> optovault_shared::patient_index::PatientIndexShard {
    use optovault_shared::patient_index::*;
    let id = uuid::Uuid::from_bytes([7; 16]);
    let mut shard = PatientIndexShard::new(shard_of(&id));
    shard.upsert(IndexEntry::summarise(id, 1, &patient()));
    shard
}

//! FHIR R4 interchange for the optometry chart, as plain `serde_json::Value`s (no FHIR crate).
//!
//! * [`export_patient_bundle`]: a `Bundle` of type `collection` with the Patient, the
//!   Practitioners it mentions, every spectacle and contact-lens prescription as a
//!   `VisionPrescription`, and visual acuity and intraocular pressure as `Observation`s. Resources
//!   are identified by `urn:uuid:` full URLs (record ids where there is one, otherwise ids derived
//!   deterministically from the record id), and refer to each other by those URLs.
//! * [`import_vision_prescription`]: reads one R4 `VisionPrescription`, enforcing the R4 rules
//!   (required elements, `eye`, prism `base`, status codes, UCUM durations), and maps it to a
//!   [`SpectacleRx`] and/or [`ContactLensRx`]. The result is *not* validated against the clinic's
//!   own rules (an imported contact-lens prescription typically lacks a manufacturer and
//!   material): call `validate` on it before saving.
//!
//! What R4 `VisionPrescription` cannot carry and is therefore not exported: expiry, PD, near PD,
//! segment height, vertex distance, the contact lens manufacturer and material, the source exam.
//! The spectacle lens type is written as a note `Lens type: progressive` and recognised again on
//! import. Visual acuity is coded with the SNOMED CT observable entities the HL7 eye-care
//! guides use (distance 251739003, near 251743004, pinhole 419475002, distance binocular
//! 251742009), its body site with SNOMED CT "Entire right eye" 362502000 / "Entire left eye"
//! 362503005 (both eyes: text), its value a logMAR `Quantity` (UCUM `{logMAR}`); the correction
//! and the notation it was entered in are in the text and a note. Intraocular pressure uses LOINC
//! 56844-4 and UCUM `mm[Hg]`. IOP methods are text only. Observation times are dates: the chart keeps
//! clinic-local times without a time zone, which a FHIR `dateTime` with a time would need.

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::chart::{Centi, Diopters};
use crate::chart::{
    ClEye, ContactLensRx, Exam, EyeRefraction, EyeSel, LensType, Prescriber, Prism, PrismBase,
    Replacement, RxStatus, Side, SpectacleRx, StaffRef, VaCorrection, VaDistance, VisualAcuity,
};
use crate::domain::{parse_date, Patient, PatientStatus, Sex};

pub const PRODUCT_SYSTEM: &str =
    "http://terminology.hl7.org/CodeSystem/ex-visionprescriptionproduct";
pub const UCUM: &str = "http://unitsofmeasure.org";
pub const LOINC: &str = "http://loinc.org";
pub const SNOMED: &str = "http://snomed.info/sct";
pub const OBSERVATION_CATEGORY: &str = "http://terminology.hl7.org/CodeSystem/observation-category";
/// LOINC "Intraocular pressure of Eye".
pub const LOINC_IOP: &str = "56844-4";
/// Prefix of the note that carries the spectacle lens type.
pub const LENS_TYPE_NOTE: &str = "Lens type: ";

/// Why a FHIR resource was refused. `path` is a FHIRPath-like location such as
/// `lensSpecification[1].prism[0].base`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FhirError {
    #[error("expected resourceType {expected}, found {found}")]
    ResourceType {
        expected: &'static str,
        found: String,
    },
    #[error("{0} is required")]
    Missing(String),
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
    #[error("{path}: not supported: {message}")]
    Unsupported { path: String, message: String },
}

fn invalid(path: impl Into<String>, message: impl Into<String>) -> FhirError {
    FhirError::Invalid {
        path: path.into(),
        message: message.into(),
    }
}

fn unsupported(path: impl Into<String>, message: impl Into<String>) -> FhirError {
    FhirError::Unsupported {
        path: path.into(),
        message: message.into(),
    }
}

// ---- export ----------------------------------------------------------------------------------

fn urn(id: &Uuid) -> String {
    format!("urn:uuid:{id}")
}

fn reference(id: &Uuid, display: &str) -> Value {
    let mut r = Map::new();
    r.insert("reference".into(), Value::String(urn(id)));
    if !display.trim().is_empty() {
        r.insert("display".into(), Value::String(display.trim().to_string()));
    }
    Value::Object(r)
}

/// A random-looking (version 4 shaped) UUID that is a pure function of `parts`, so exporting the
/// same chart twice gives the same bundle.
pub fn derived_uuid(parts: &[&[u8]]) -> Uuid {
    let mut h = Sha256::new();
    h.update(b"optovault/v1/fhir-id");
    for p in parts {
        h.update((p.len() as u64).to_be_bytes());
        h.update(p);
    }
    let digest = h.finalize();
    let mut bytes = [0u8; 16];
    for (b, d) in bytes.iter_mut().zip(digest.iter()) {
        *b = *d;
    }
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

/// The Practitioner id of a prescriber: their account id, or one derived from name and licence.
pub fn prescriber_id(p: &Prescriber) -> Uuid {
    match p.account_id {
        Some(id) if !id.is_nil() => id,
        _ => derived_uuid(&[
            b"practitioner",
            p.name.trim().as_bytes(),
            p.licence.trim().as_bytes(),
        ]),
    }
}

fn staff_id(s: &StaffRef) -> Uuid {
    if s.account_id.is_nil() {
        derived_uuid(&[b"practitioner", s.name.trim().as_bytes(), b""])
    } else {
        s.account_id
    }
}

fn practitioner(id: &Uuid, name: &str, licence: &str) -> Value {
    let mut p = Map::new();
    p.insert("resourceType".into(), json!("Practitioner"));
    p.insert("id".into(), json!(id.to_string()));
    if !licence.trim().is_empty() {
        p.insert(
            "identifier".into(),
            json!([{ "type": { "text": "Licence" }, "value": licence.trim() }]),
        );
    }
    if !name.trim().is_empty() {
        p.insert("name".into(), json!([{ "text": name.trim() }]));
    }
    Value::Object(p)
}

fn put_str(m: &mut Map<String, Value>, key: &str, value: &str) {
    let v = value.trim();
    if !v.is_empty() {
        m.insert(key.into(), Value::String(v.to_string()));
    }
}

/// A number of hundredths as a FHIR decimal (`-225` → `-2.25`).
fn decimal(hundredths: i32) -> Value {
    json!(f64::from(hundredths) / 100.0)
}

/// The FHIR Patient resource.
pub fn patient_resource(id: &Uuid, p: &Patient) -> Value {
    let mut r = Map::new();
    r.insert("resourceType".into(), json!("Patient"));
    r.insert("id".into(), json!(id.to_string()));
    if !p.chart_number.trim().is_empty() {
        r.insert(
            "identifier".into(),
            json!([{ "type": { "text": "Chart number" }, "value": p.chart_number.trim() }]),
        );
    }
    r.insert("active".into(), json!(p.status == PatientStatus::Active));
    let mut name = Map::new();
    name.insert("use".into(), json!("official"));
    put_str(&mut name, "family", &p.family_name);
    if !p.given_name.trim().is_empty() {
        name.insert("given".into(), json!([p.given_name.trim()]));
    }
    if name.len() > 1 {
        r.insert("name".into(), json!([Value::Object(name)]));
    }
    let mut telecom = Vec::new();
    if !p.phone.trim().is_empty() {
        telecom.push(json!({ "system": "phone", "value": p.phone.trim() }));
    }
    if !p.email.trim().is_empty() {
        telecom.push(json!({ "system": "email", "value": p.email.trim() }));
    }
    if !telecom.is_empty() {
        r.insert("telecom".into(), Value::Array(telecom));
    }
    let gender = match p.sex {
        Sex::Female => "female",
        Sex::Male => "male",
        Sex::Other => "other",
        Sex::Unknown => "unknown",
    };
    r.insert("gender".into(), json!(gender));
    if parse_date(&p.date_of_birth).is_some() {
        r.insert("birthDate".into(), json!(p.date_of_birth));
    }
    if p.status == PatientStatus::Deceased {
        r.insert("deceasedBoolean".into(), json!(true));
    }
    let a = &p.address;
    let mut addr = Map::new();
    let lines: Vec<&str> = [a.line1.trim(), a.line2.trim()]
        .into_iter()
        .filter(|l| !l.is_empty())
        .collect();
    if !lines.is_empty() {
        addr.insert("line".into(), json!(lines));
    }
    put_str(&mut addr, "city", &a.city);
    put_str(&mut addr, "state", &a.region);
    put_str(&mut addr, "postalCode", &a.postal_code);
    put_str(&mut addr, "country", &a.country);
    if !addr.is_empty() {
        r.insert("address".into(), json!([Value::Object(addr)]));
    }
    if let Some(g) = &p.guardian {
        let mut c = Map::new();
        if !g.relationship.trim().is_empty() {
            c.insert(
                "relationship".into(),
                json!([{ "text": g.relationship.trim() }]),
            );
        }
        if !g.name.trim().is_empty() {
            c.insert("name".into(), json!({ "text": g.name.trim() }));
        }
        if !g.phone.trim().is_empty() {
            c.insert(
                "telecom".into(),
                json!([{ "system": "phone", "value": g.phone.trim() }]),
            );
        }
        if !c.is_empty() {
            r.insert("contact".into(), json!([Value::Object(c)]));
        }
    }
    Value::Object(r)
}

fn product(code: &str) -> Value {
    json!({ "coding": [{ "system": PRODUCT_SYSTEM, "code": code }] })
}

fn eye_code(side: Side) -> &'static str {
    match side {
        Side::Od => "right",
        Side::Os => "left",
    }
}

fn notes_json(texts: &[String]) -> Option<Value> {
    let notes: Vec<Value> = texts
        .iter()
        .map(|t| t.trim())
        .filter(|t| !t.is_empty())
        .map(|t| json!({ "text": t }))
        .collect();
    (!notes.is_empty()).then_some(Value::Array(notes))
}

fn vision_prescription(
    id: &Uuid,
    status: RxStatus,
    issued: &str,
    patient: &Uuid,
    prescriber: &Prescriber,
    lenses: Vec<Value>,
) -> Value {
    let mut r = Map::new();
    r.insert("resourceType".into(), json!("VisionPrescription"));
    r.insert("id".into(), json!(id.to_string()));
    r.insert("status".into(), json!(status.fhir_code()));
    r.insert("created".into(), json!(issued));
    r.insert("patient".into(), json!({ "reference": urn(patient) }));
    r.insert("dateWritten".into(), json!(issued));
    r.insert(
        "prescriber".into(),
        reference(&prescriber_id(prescriber), &prescriber.name),
    );
    r.insert("lensSpecification".into(), Value::Array(lenses));
    Value::Object(r)
}

fn spectacle_lens(side: Side, e: &EyeRefraction, notes: &[String]) -> Value {
    let mut l = Map::new();
    l.insert("product".into(), product("lens"));
    l.insert("eye".into(), json!(eye_code(side)));
    l.insert("sphere".into(), decimal(e.sphere.0));
    if !e.cylinder.is_zero() {
        l.insert("cylinder".into(), decimal(e.cylinder.0));
        if let Some(a) = e.axis {
            l.insert("axis".into(), json!(a));
        }
    }
    if !e.prism.is_empty() {
        let prisms: Vec<Value> = e
            .prism
            .iter()
            .map(|p| json!({ "amount": decimal(p.amount.0), "base": p.base.as_str() }))
            .collect();
        l.insert("prism".into(), Value::Array(prisms));
    }
    if let Some(add) = e.add {
        l.insert("add".into(), decimal(add.0));
    }
    if let Some(n) = notes_json(notes) {
        l.insert("note".into(), n);
    }
    Value::Object(l)
}

/// A spectacle prescription as a `VisionPrescription` (`product` lens). `None` when it has no
/// valid issue date or no eye (R4 requires both).
pub fn spectacle_rx_resource(id: &Uuid, rx: &SpectacleRx, patient: &Uuid) -> Option<Value> {
    parse_date(&rx.issued)?;
    let mut notes = vec![format!("{LENS_TYPE_NOTE}{}", rx.lens_type.as_str())];
    if !rx.notes.trim().is_empty() {
        notes.insert(0, rx.notes.clone());
    }
    let lenses: Vec<Value> = [Side::Od, Side::Os]
        .into_iter()
        .filter_map(|s| rx.eye(s).map(|e| spectacle_lens(s, e, &notes)))
        .collect();
    if lenses.is_empty() {
        return None;
    }
    Some(vision_prescription(
        id,
        rx.status,
        &rx.issued,
        patient,
        &rx.prescriber,
        lenses,
    ))
}

fn contact_lens(side: Side, e: &ClEye, rx: &ContactLensRx) -> Value {
    let mut l = Map::new();
    l.insert("product".into(), product("contact"));
    l.insert("eye".into(), json!(eye_code(side)));
    if !e.cylinder.is_zero() {
        l.insert("cylinder".into(), decimal(e.cylinder.0));
        if let Some(a) = e.axis {
            l.insert("axis".into(), json!(a));
        }
    }
    if let Some(add) = e.add {
        l.insert("add".into(), decimal(add.0));
    }
    l.insert("power".into(), decimal(e.power.0));
    l.insert("backCurve".into(), decimal(e.base_curve.0));
    l.insert("diameter".into(), decimal(e.diameter.0));
    if let Some(r) = rx.replacement {
        let (value, code, unit) = r.fhir_duration();
        l.insert(
            "duration".into(),
            json!({ "value": value, "unit": unit, "system": UCUM, "code": code }),
        );
    }
    put_str(&mut l, "color", &e.color);
    put_str(&mut l, "brand", &rx.brand);
    if let Some(n) = notes_json(std::slice::from_ref(&rx.notes)) {
        l.insert("note".into(), n);
    }
    Value::Object(l)
}

/// A contact-lens prescription as a `VisionPrescription` (`product` contact). `None` when it has
/// no valid issue date or no eye.
pub fn contact_lens_rx_resource(id: &Uuid, rx: &ContactLensRx, patient: &Uuid) -> Option<Value> {
    parse_date(&rx.issued)?;
    let lenses: Vec<Value> = [Side::Od, Side::Os]
        .into_iter()
        .filter_map(|s| rx.eye(s).map(|e| contact_lens(s, e, rx)))
        .collect();
    if lenses.is_empty() {
        return None;
    }
    Some(vision_prescription(
        id,
        rx.status,
        &rx.issued,
        patient,
        &rx.prescriber,
        lenses,
    ))
}

fn observation_base(id: &Uuid, exam: &Exam, patient: &Uuid, code: Value) -> Map<String, Value> {
    let mut o = Map::new();
    o.insert("resourceType".into(), json!("Observation"));
    o.insert("id".into(), json!(id.to_string()));
    let status = if exam.signed.is_some() {
        "final"
    } else {
        "preliminary"
    };
    o.insert("status".into(), json!(status));
    o.insert(
        "category".into(),
        json!([{ "coding": [{ "system": OBSERVATION_CATEGORY, "code": "exam", "display": "Exam" }] }]),
    );
    o.insert("code".into(), code);
    o.insert("subject".into(), json!({ "reference": urn(patient) }));
    if parse_date(&exam.date).is_some() {
        o.insert("effectiveDateTime".into(), json!(exam.date));
    }
    if let Some(p) = &exam.provider {
        o.insert(
            "performer".into(),
            json!([reference(&staff_id(p), &p.name)]),
        );
    }
    o
}

fn va_observation(id: &Uuid, exam: &Exam, patient: &Uuid, va: &VisualAcuity) -> Value {
    let dist = match va.distance {
        VaDistance::Distance => "distance",
        VaDistance::Near => "near",
    };
    let corr = match va.correction {
        VaCorrection::Sc => "without correction",
        VaCorrection::Cc => "with correction",
        VaCorrection::Pinhole => "pinhole",
    };
    let eye = va.eye.label();
    let text = format!("Visual acuity, {eye}, {dist}, {corr} (logMAR)");
    let (code, display) = match (va.distance, va.correction, va.eye) {
        (VaDistance::Distance, VaCorrection::Pinhole, _) => ("419475002", "Pinhole visual acuity"),
        (VaDistance::Distance, _, EyeSel::Ou) => {
            ("251742009", "Distance visual acuity - binocular")
        }
        (VaDistance::Distance, _, _) => ("251739003", "Distance visual acuity"),
        (VaDistance::Near, _, _) => ("251743004", "Near visual acuity"),
    };
    let mut o = observation_base(
        id,
        exam,
        patient,
        json!({ "coding": [{ "system": SNOMED, "code": code, "display": display }], "text": text }),
    );
    o.insert(
        "valueQuantity".into(),
        json!({
            "value": va.logmar.as_f64(),
            "unit": "logMAR",
            "system": UCUM,
            "code": "{logMAR}"
        }),
    );
    let site = match va.eye {
        EyeSel::Od => {
            json!({ "coding": [{ "system": SNOMED, "code": "362502000", "display": "Entire right eye" }], "text": eye })
        }
        EyeSel::Os => {
            json!({ "coding": [{ "system": SNOMED, "code": "362503005", "display": "Entire left eye" }], "text": eye })
        }
        EyeSel::Ou => json!({ "text": eye }),
    };
    o.insert("bodySite".into(), site);
    let mut note = format!("Entered as {} ({}).", va.entered, va.notation.label());
    if let Some(lv) = va.low_vision() {
        note = format!(
            "Entered as {} ({}); logMAR {} is a conventional equivalent, not a measurement.",
            lv.code(),
            lv.label(),
            lv.logmar().logmar_string()
        );
    }
    o.insert("note".into(), json!([{ "text": note }]));
    Value::Object(o)
}

fn iop_observation(id: &Uuid, exam: &Exam, patient: &Uuid, r: &crate::chart::IopReading) -> Value {
    let code = json!({
        "coding": [{ "system": LOINC, "code": LOINC_IOP, "display": "Intraocular pressure of Eye" }],
        "text": format!("Intraocular pressure, {}", r.eye.label())
    });
    let mut o = observation_base(id, exam, patient, code);
    o.insert(
        "valueQuantity".into(),
        json!({ "value": r.mmhg, "unit": "mmHg", "system": UCUM, "code": "mm[Hg]" }),
    );
    o.insert("bodySite".into(), json!({ "text": r.eye.label() }));
    o.insert("method".into(), json!({ "text": r.method.label() }));
    if let Some(t) = r.time.as_deref().filter(|t| !t.trim().is_empty()) {
        o.insert(
            "note".into(),
            json!([{ "text": format!("Measured at {} (clinic local time).", t.trim()) }]),
        );
    }
    Value::Object(o)
}

fn entry(id: &Uuid, resource: Value) -> Value {
    json!({ "fullUrl": urn(id), "resource": resource })
}

/// A FHIR R4 `Bundle` (type `collection`) of one patient's chart: the Patient, Practitioners,
/// one `VisionPrescription` per prescription, and `Observation`s for each visual acuity and IOP
/// reading of the exams. Each slice pairs a record id with its record. Prescriptions without a
/// valid issue date or without any eye are left out (they would not be valid R4); validate
/// records before exporting them.
pub fn export_patient_bundle(
    patient_id: &Uuid,
    patient: &Patient,
    exams: &[(Uuid, Exam)],
    spectacle_rxs: &[(Uuid, SpectacleRx)],
    cl_rxs: &[(Uuid, ContactLensRx)],
) -> Value {
    let mut entries = vec![entry(patient_id, patient_resource(patient_id, patient))];
    let mut practitioners: Vec<(Uuid, Value)> = Vec::new();
    let mut add_practitioner = |id: Uuid, name: &str, licence: &str| {
        if !practitioners.iter().any(|(p, _)| *p == id) {
            practitioners.push((id, practitioner(&id, name, licence)));
        }
    };
    for (_, rx) in spectacle_rxs {
        let p = &rx.prescriber;
        add_practitioner(prescriber_id(p), &p.name, &p.licence);
    }
    for (_, rx) in cl_rxs {
        let p = &rx.prescriber;
        add_practitioner(prescriber_id(p), &p.name, &p.licence);
    }
    for (_, exam) in exams {
        if let Some(p) = &exam.provider {
            add_practitioner(staff_id(p), &p.name, "");
        }
    }
    for (id, resource) in practitioners {
        entries.push(entry(&id, resource));
    }
    for (id, rx) in spectacle_rxs {
        if let Some(r) = spectacle_rx_resource(id, rx, patient_id) {
            entries.push(entry(id, r));
        }
    }
    for (id, rx) in cl_rxs {
        if let Some(r) = contact_lens_rx_resource(id, rx, patient_id) {
            entries.push(entry(id, r));
        }
    }
    for (exam_id, exam) in exams {
        for (i, va) in exam.visual_acuity.iter().enumerate() {
            let id = derived_uuid(&[b"va", exam_id.as_bytes(), &(i as u64).to_be_bytes()]);
            entries.push(entry(&id, va_observation(&id, exam, patient_id, va)));
        }
        for (i, r) in exam.iop.iter().enumerate() {
            let id = derived_uuid(&[b"iop", exam_id.as_bytes(), &(i as u64).to_be_bytes()]);
            entries.push(entry(&id, iop_observation(&id, exam, patient_id, r)));
        }
    }
    json!({
        "resourceType": "Bundle",
        "id": derived_uuid(&[b"bundle", patient_id.as_bytes()]).to_string(),
        "type": "collection",
        "entry": entries
    })
}

// ---- import ----------------------------------------------------------------------------------

/// A `VisionPrescription` read into the chart's types.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportedRx {
    /// The resource's `id`, if any.
    pub fhir_id: Option<String>,
    /// The first `identifier.value`, if any (the issuer's prescription number).
    pub identifier: Option<String>,
    /// `patient.reference` (or its display).
    pub patient_reference: String,
    /// `prescriber.reference` (or its display).
    pub prescriber_reference: String,
    /// The spectacle lenses (`product` lens), if any.
    pub spectacles: Option<SpectacleRx>,
    /// The contact lenses (`product` contact), if any.
    pub contact_lenses: Option<ContactLensRx>,
    /// What the import had to assume or leave out, for the user to review.
    pub notices: Vec<String>,
}

fn required<'a>(v: &'a Value, key: &str, path: &str) -> Result<&'a Value, FhirError> {
    match v.get(key) {
        None | Some(Value::Null) => Err(FhirError::Missing(path.to_string())),
        Some(x) => Ok(x),
    }
}

fn string_at<'a>(v: &'a Value, key: &str, path: &str) -> Result<Option<&'a str>, FhirError> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(Some(s.as_str())),
        Some(_) => Err(invalid(path, "must be a non-empty string")),
    }
}

/// A FHIR `date`/`dateTime` with at least a full date; returns the `YYYY-MM-DD` part.
fn fhir_date(v: &Value, path: &str) -> Result<String, FhirError> {
    let s = v
        .as_str()
        .ok_or_else(|| invalid(path, "must be a date or dateTime string"))?;
    let day = s
        .get(..10)
        .filter(|d| parse_date(d).is_some())
        .ok_or_else(|| {
            if s.len() < 10 && s.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
                unsupported(path, "a partial date (year or month only)")
            } else {
                invalid(path, "must be YYYY-MM-DD or a dateTime")
            }
        })?;
    match s.as_bytes().get(10) {
        None | Some(b'T') => Ok(day.to_string()),
        Some(_) => Err(invalid(path, "must be YYYY-MM-DD or a dateTime")),
    }
}

/// A Reference: needs a `reference`, an `identifier` or a `display`. Returns the reference (or
/// the display, or the identifier's value).
fn fhir_reference(v: &Value, path: &str) -> Result<String, FhirError> {
    if !v.is_object() {
        return Err(invalid(path, "must be a Reference object"));
    }
    if let Some(r) = string_at(v, "reference", &format!("{path}.reference"))? {
        return Ok(r.to_string());
    }
    if let Some(d) = string_at(v, "display", &format!("{path}.display"))? {
        return Ok(d.to_string());
    }
    if let Some(i) = v
        .get("identifier")
        .and_then(|i| i.get("value"))
        .and_then(Value::as_str)
    {
        if !i.trim().is_empty() {
            return Ok(i.to_string());
        }
    }
    Err(FhirError::Missing(format!("{path}.reference")))
}

/// A FHIR decimal with at most two decimals, as hundredths.
fn hundredths(v: &Value, path: &str) -> Result<i32, FhirError> {
    let x = v
        .as_f64()
        .filter(|x| x.is_finite())
        .ok_or_else(|| invalid(path, "must be a number"))?;
    let scaled = x * 100.0;
    let r = scaled.round();
    if (scaled - r).abs() > 1e-6 {
        return Err(unsupported(path, "more than two decimals"));
    }
    if r.abs() > 10_000_000.0 {
        return Err(invalid(path, "out of range"));
    }
    Ok(r as i32)
}

fn opt_hundredths(l: &Value, key: &str, path: &str) -> Result<Option<i32>, FhirError> {
    match l.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => hundredths(v, &format!("{path}.{key}")).map(Some),
    }
}

struct Lens {
    contact: bool,
    side: Side,
    sphere: Option<i32>,
    power: Option<i32>,
    cylinder: Option<i32>,
    axis: Option<u16>,
    add: Option<i32>,
    prism: Vec<Prism>,
    back_curve: Option<i32>,
    diameter: Option<i32>,
    duration: Option<(u32, String)>,
    color: String,
    brand: String,
    notes: Vec<String>,
}

fn read_lens(l: &Value, path: &str) -> Result<Lens, FhirError> {
    if !l.is_object() {
        return Err(invalid(path, "must be an object"));
    }
    let product = required(l, "product", &format!("{path}.product"))?;
    let codes: Vec<&str> = product
        .get("coding")
        .and_then(Value::as_array)
        .map(|c| {
            c.iter()
                .filter(|c| {
                    c.get("system")
                        .and_then(Value::as_str)
                        .map_or(true, |s| s == PRODUCT_SYSTEM)
                })
                .filter_map(|c| c.get("code").and_then(Value::as_str))
                .collect()
        })
        .unwrap_or_default();
    let contact = if codes.contains(&"lens") {
        false
    } else if codes.contains(&"contact") {
        true
    } else {
        return Err(unsupported(
            format!("{path}.product"),
            "only the products lens and contact are understood",
        ));
    };
    let eye_path = format!("{path}.eye");
    let side = match required(l, "eye", &eye_path)?.as_str() {
        Some("right") => Side::Od,
        Some("left") => Side::Os,
        _ => return Err(invalid(eye_path, "must be right or left")),
    };
    let axis = match l.get("axis") {
        None | Some(Value::Null) => None,
        Some(v) => {
            let p = format!("{path}.axis");
            let a = v
                .as_i64()
                .or_else(|| v.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
                .ok_or_else(|| invalid(&p, "must be an integer"))?;
            Some(u16::try_from(a).map_err(|_| invalid(&p, "must be 0 to 180"))?)
        }
    };
    let mut prism = Vec::new();
    if let Some(ps) = l.get("prism") {
        let ps = ps
            .as_array()
            .ok_or_else(|| invalid(format!("{path}.prism"), "must be an array"))?;
        for (i, p) in ps.iter().enumerate() {
            let pp = format!("{path}.prism[{i}]");
            let amount_path = format!("{pp}.amount");
            let amount = hundredths(required(p, "amount", &amount_path)?, &amount_path)?;
            let base_path = format!("{pp}.base");
            let base = required(p, "base", &base_path)?
                .as_str()
                .and_then(PrismBase::parse)
                .ok_or_else(|| invalid(&base_path, "must be up, down, in or out"))?;
            prism.push(Prism {
                amount: Centi(amount),
                base,
            });
        }
    }
    let duration = match l.get("duration") {
        None | Some(Value::Null) => None,
        Some(d) => {
            let dp = format!("{path}.duration");
            if let Some(sys) = d.get("system") {
                if sys.as_str() != Some(UCUM) {
                    return Err(invalid(&dp, format!("system must be {UCUM}")));
                }
            }
            let code = string_at(d, "code", &format!("{dp}.code"))?
                .ok_or_else(|| FhirError::Missing(format!("{dp}.code")))?;
            if !["d", "wk", "mo", "a", "h", "min"].contains(&code) {
                return Err(invalid(
                    format!("{dp}.code"),
                    "must be a UCUM time unit (d, wk, mo, a)",
                ));
            }
            let value = required(d, "value", &format!("{dp}.value"))?;
            let value = value
                .as_u64()
                .or_else(|| {
                    value
                        .as_f64()
                        .filter(|f| f.fract() == 0.0 && *f >= 0.0)
                        .map(|f| f as u64)
                })
                .and_then(|v| u32::try_from(v).ok())
                .ok_or_else(|| unsupported(format!("{dp}.value"), "not a whole number"))?;
            Some((value, code.to_string()))
        }
    };
    let mut notes = Vec::new();
    if let Some(ns) = l.get("note").and_then(Value::as_array) {
        for n in ns {
            if let Some(t) = n.get("text").and_then(Value::as_str) {
                if !t.trim().is_empty() {
                    notes.push(t.trim().to_string());
                }
            }
        }
    }
    Ok(Lens {
        contact,
        side,
        sphere: opt_hundredths(l, "sphere", path)?,
        power: opt_hundredths(l, "power", path)?,
        cylinder: opt_hundredths(l, "cylinder", path)?,
        axis,
        add: opt_hundredths(l, "add", path)?,
        prism,
        back_curve: opt_hundredths(l, "backCurve", path)?,
        diameter: opt_hundredths(l, "diameter", path)?,
        duration,
        color: string_at(l, "color", &format!("{path}.color"))?
            .unwrap_or_default()
            .to_string(),
        brand: string_at(l, "brand", &format!("{path}.brand"))?
            .unwrap_or_default()
            .to_string(),
        notes,
    })
}

fn push_unique(into: &mut Vec<String>, items: &[String]) {
    for n in items {
        if !into.contains(n) {
            into.push(n.clone());
        }
    }
}

/// Reads and checks one R4 `VisionPrescription` (see the module documentation).
pub fn import_vision_prescription(v: &Value) -> Result<ImportedRx, FhirError> {
    let rt = v.get("resourceType").and_then(Value::as_str).unwrap_or("");
    if rt != "VisionPrescription" {
        return Err(FhirError::ResourceType {
            expected: "VisionPrescription",
            found: rt.to_string(),
        });
    }
    let status = required(v, "status", "status")?
        .as_str()
        .and_then(RxStatus::from_fhir)
        .ok_or_else(|| {
            invalid(
                "status",
                "must be active, cancelled, draft or entered-in-error",
            )
        })?;
    fhir_date(required(v, "created", "created")?, "created")?;
    let patient_reference = fhir_reference(required(v, "patient", "patient")?, "patient")?;
    let issued = fhir_date(required(v, "dateWritten", "dateWritten")?, "dateWritten")?;
    let prescriber_v = required(v, "prescriber", "prescriber")?;
    let prescriber_reference = fhir_reference(prescriber_v, "prescriber")?;
    let prescriber_name = prescriber_v
        .get("display")
        .and_then(Value::as_str)
        .filter(|d| !d.trim().is_empty())
        .unwrap_or(&prescriber_reference)
        .to_string();
    let specs = required(v, "lensSpecification", "lensSpecification")?
        .as_array()
        .ok_or_else(|| invalid("lensSpecification", "must be an array"))?;
    if specs.is_empty() {
        return Err(FhirError::Missing("lensSpecification".into()));
    }
    let mut lenses = Vec::with_capacity(specs.len());
    for (i, l) in specs.iter().enumerate() {
        lenses.push(read_lens(l, &format!("lensSpecification[{i}]"))?);
    }
    for (i, a) in lenses.iter().enumerate() {
        if lenses
            .iter()
            .take(i)
            .any(|b| b.contact == a.contact && b.side == a.side)
        {
            return Err(unsupported(
                format!("lensSpecification[{i}]"),
                "two lenses of the same product for the same eye",
            ));
        }
    }
    let prescriber = Prescriber {
        account_id: None,
        name: prescriber_name,
        licence: String::new(),
    };
    let mut notices = Vec::new();

    let spectacle_lenses: Vec<&Lens> = lenses.iter().filter(|l| !l.contact).collect();
    let spectacles = if spectacle_lenses.is_empty() {
        None
    } else {
        let mut notes = Vec::new();
        let mut lens_type = None;
        for l in &spectacle_lenses {
            for n in &l.notes {
                match n.strip_prefix(LENS_TYPE_NOTE).and_then(LensType::parse) {
                    Some(t) => lens_type = Some(t),
                    None => push_unique(&mut notes, std::slice::from_ref(n)),
                }
            }
        }
        let has_add = spectacle_lenses.iter().any(|l| l.add.is_some());
        let lens_type = lens_type.unwrap_or_else(|| {
            if has_add {
                notices.push(
                    "The lens type is not part of a FHIR prescription: progressive assumed \
                     because there is an add. Please check."
                        .into(),
                );
                LensType::Progressive
            } else {
                LensType::SingleVision
            }
        });
        let eye = |side: Side| {
            spectacle_lenses
                .iter()
                .find(|l| l.side == side)
                .map(|l| EyeRefraction {
                    sphere: Diopters(l.sphere.or(l.power).unwrap_or(0)),
                    cylinder: Diopters(l.cylinder.unwrap_or(0)),
                    axis: l.axis,
                    add: l.add.map(Diopters),
                    prism: l.prism.clone(),
                })
        };
        Some(SpectacleRx {
            status,
            issued: issued.clone(),
            expiry: None,
            lens_type,
            od: eye(Side::Od),
            os: eye(Side::Os),
            pd: None,
            near_pd: None,
            segment_height: None,
            vertex_distance: None,
            notes: notes.join("\n"),
            prescriber: prescriber.clone(),
            source_exam: None,
        })
    };

    let contact_lenses_v: Vec<&Lens> = lenses.iter().filter(|l| l.contact).collect();
    let contact_lenses = if contact_lenses_v.is_empty() {
        None
    } else {
        let mut brands: Vec<String> = Vec::new();
        let mut notes = Vec::new();
        let mut durations: Vec<(u32, String)> = Vec::new();
        for l in &contact_lenses_v {
            if !l.brand.is_empty() {
                push_unique(&mut brands, std::slice::from_ref(&l.brand));
            }
            push_unique(&mut notes, &l.notes);
            if let Some(d) = &l.duration {
                if !durations.contains(d) {
                    durations.push(d.clone());
                }
            }
        }
        if brands.len() > 1 {
            return Err(unsupported(
                "lensSpecification.brand",
                "a different brand for each eye",
            ));
        }
        let replacement = match durations.as_slice() {
            [] => None,
            [(value, code)] => {
                let r = Replacement::from_duration(*value, code);
                if r.is_none() {
                    notices.push(format!(
                        "Replacement every {value} {code} has no matching schedule; left empty."
                    ));
                }
                r
            }
            _ => {
                return Err(unsupported(
                    "lensSpecification.duration",
                    "a different replacement schedule for each eye",
                ))
            }
        };
        notices.push(
            "The manufacturer and material are not part of a FHIR prescription: please enter them."
                .into(),
        );
        let eye = |side: Side| {
            contact_lenses_v
                .iter()
                .find(|l| l.side == side)
                .map(|l| ClEye {
                    power: Diopters(l.power.or(l.sphere).unwrap_or(0)),
                    cylinder: Diopters(l.cylinder.unwrap_or(0)),
                    axis: l.axis,
                    add: l.add.map(Diopters),
                    base_curve: Centi(l.back_curve.unwrap_or(0)),
                    diameter: Centi(l.diameter.unwrap_or(0)),
                    color: l.color.clone(),
                })
        };
        if contact_lenses_v.iter().any(|l| !l.prism.is_empty()) {
            notices.push("Prism on a contact lens is not kept.".into());
        }
        Some(ContactLensRx {
            status,
            issued: issued.clone(),
            expiry: None,
            brand: brands.into_iter().next().unwrap_or_default(),
            manufacturer: String::new(),
            material: String::new(),
            od: eye(Side::Od),
            os: eye(Side::Os),
            replacement,
            prescriber,
            notes: notes.join("\n"),
            source_exam: None,
        })
    };

    let identifier = v
        .get("identifier")
        .and_then(Value::as_array)
        .and_then(|ids| {
            ids.iter()
                .find_map(|i| i.get("value").and_then(Value::as_str))
        })
        .map(str::to_string);
    Ok(ImportedRx {
        fhir_id: v.get("id").and_then(Value::as_str).map(str::to_string),
        identifier,
        patient_reference,
        prescriber_reference,
        spectacles,
        contact_lenses,
        notices,
    })
}

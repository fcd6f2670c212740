//! FHIR R4 import and export, against the two official VisionPrescription examples (HL7 33123
//! spectacles, 33124 contact lenses), copied into `tests/fixtures/fhir/` from the design material
//! beside the checkout so a clean clone has them.
//!
//! Set `OPTOVAULT_FHIR_SAMPLE_OUT=/path/bundle.json` to have `write_sample_bundle` write an
//! exported example Bundle there (for an external validator).

mod common;

use std::path::PathBuf;

use common::*;
use optovault_shared::chart::*;
use optovault_shared::fhir::*;
use proptest::prelude::*;
use serde_json::{json, Value};

fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/fhir")
}

fn fixture(name: &str) -> Value {
    let path = fixtures_dir().join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read fixture {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn spectacles_fixture() -> Value {
    fixture("VisionPrescription-33123-spectacles.json")
}

fn contacts_fixture() -> Value {
    fixture("VisionPrescription-33124-contacts.json")
}

#[test]
fn imports_the_spectacle_example() {
    let rx = import_vision_prescription(&spectacles_fixture()).unwrap();
    assert_eq!(rx.fhir_id.as_deref(), Some("33123"));
    assert_eq!(rx.identifier.as_deref(), Some("15013"));
    assert_eq!(rx.patient_reference, "Patient/example");
    assert_eq!(rx.prescriber_reference, "Practitioner/example");
    assert!(rx.contact_lenses.is_none());
    let s = rx.spectacles.unwrap();
    assert_eq!(s.status, RxStatus::Active);
    assert_eq!(s.issued, "2014-06-15");
    // OD -2.00 SPH, +2.00 add, 0.5 prism base down.
    assert_eq!(
        s.od,
        Some(EyeRefraction {
            sphere: Diopters(-200),
            cylinder: Diopters(0),
            axis: None,
            add: Some(Diopters(200)),
            prism: vec![Prism {
                amount: Centi(50),
                base: PrismBase::Down
            }],
        })
    );
    // OS -1.00 -0.50 x 180, +2.00 add, 0.5 prism base up.
    assert_eq!(
        s.os,
        Some(EyeRefraction {
            sphere: Diopters(-100),
            cylinder: Diopters(-50),
            axis: Some(180),
            add: Some(Diopters(200)),
            prism: vec![Prism {
                amount: Centi(50),
                base: PrismBase::Up
            }],
        })
    );
    // R4 has no lens type: assumed from the add, and said so.
    assert_eq!(s.lens_type, LensType::Progressive);
    assert_eq!(rx.notices.len(), 1);
    assert_eq!(s.prescriber.name, "Practitioner/example");
    assert_eq!(s.prescriber.account_id, None);
    // The imported prescription meets the clinic's rules.
    assert_eq!(s.validate(TODAY), Ok(()));
    assert_eq!(s.effective_expiry().as_deref(), Some("2016-06-15"));
}

#[test]
fn imports_the_contact_lens_example() {
    let rx = import_vision_prescription(&contacts_fixture()).unwrap();
    assert_eq!(rx.fhir_id.as_deref(), Some("33124"));
    assert_eq!(rx.identifier.as_deref(), Some("15014"));
    assert!(rx.spectacles.is_none());
    let c = rx.contact_lenses.unwrap();
    assert_eq!(c.status, RxStatus::Active);
    assert_eq!(c.issued, "2014-06-15");
    assert_eq!(c.brand, "OphthaGuard");
    let eye = |cylinder: i32| ClEye {
        power: Diopters(-275),
        cylinder: Diopters(cylinder),
        axis: Some(160),
        add: Some(Diopters(175)),
        base_curve: Centi(870),
        diameter: Centi(1400),
        color: "green".into(),
    };
    assert_eq!(c.od, Some(eye(-225)));
    assert_eq!(c.os, Some(eye(-350)));
    // "unit": "month" on the left lens, but the UCUM code "mo" is what counts.
    assert_eq!(c.replacement, Some(Replacement::Monthly));
    assert_eq!(c.notes, "Shade treatment for extreme light sensitivity");
    // Manufacturer and material are not in R4: the clinic's rules ask for them.
    let fields: Vec<_> = c
        .validate(TODAY)
        .unwrap_err()
        .into_iter()
        .map(|e| e.field)
        .collect();
    assert_eq!(fields, vec!["manufacturer", "material"]);
    assert!(rx.notices.iter().any(|n| n.contains("manufacturer")));
}

const CLINICAL_KEYS: [&str; 9] = [
    "sphere",
    "cylinder",
    "axis",
    "add",
    "power",
    "backCurve",
    "diameter",
    "color",
    "brand",
];

fn product_code(l: &Value) -> &str {
    l["product"]["coding"][0]["code"].as_str().unwrap()
}

/// The clinical values of each lensSpecification of `exported` equal those of `original`.
fn assert_same_lenses(original: &Value, exported: &Value) {
    let a = original["lensSpecification"].as_array().unwrap();
    let b = exported["lensSpecification"].as_array().unwrap();
    assert_eq!(a.len(), b.len());
    for la in a {
        let lb = b
            .iter()
            .find(|lb| lb["eye"] == la["eye"] && product_code(lb) == product_code(la))
            .unwrap_or_else(|| panic!("no exported lens for {}", la["eye"]));
        assert_eq!(
            lb["product"]["coding"][0]["system"],
            la["product"]["coding"][0]["system"]
        );
        for key in CLINICAL_KEYS {
            match (&la[key], &lb[key]) {
                (Value::Number(x), Value::Number(y)) => {
                    assert_eq!(x.as_f64(), y.as_f64(), "{} {key}", la["eye"])
                }
                (x, y) => assert_eq!(x, y, "{} {key}", la["eye"]),
            }
        }
        let prisms = |l: &Value| -> Vec<(f64, String)> {
            l["prism"]
                .as_array()
                .map(|ps| {
                    ps.iter()
                        .map(|p| {
                            (
                                p["amount"].as_f64().unwrap(),
                                p["base"].as_str().unwrap().to_string(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default()
        };
        assert_eq!(prisms(la), prisms(lb));
        assert_eq!(
            la["duration"]["value"].as_f64(),
            lb["duration"]["value"].as_f64()
        );
        assert_eq!(la["duration"]["code"], lb["duration"]["code"]);
        if la["duration"].is_object() {
            assert_eq!(lb["duration"]["system"], json!(UCUM));
        }
        // The fixture's notes are carried (the export may add the lens type).
        for n in la["note"].as_array().into_iter().flatten() {
            assert!(
                lb["note"].as_array().unwrap().contains(n),
                "note {n} missing"
            );
        }
    }
    for key in ["status", "created", "dateWritten"] {
        assert_eq!(original[key], exported[key], "{key}");
    }
}

#[test]
fn export_carries_the_spectacle_example_values() {
    let original = spectacles_fixture();
    let imported = import_vision_prescription(&original).unwrap();
    let rx = imported.spectacles.unwrap();
    let exported = spectacle_rx_resource(&id(40), &rx, &id(41)).unwrap();
    assert_same_lenses(&original, &exported);
    assert_eq!(
        exported["patient"]["reference"],
        json!(format!("urn:uuid:{}", id(41)))
    );
    // Spherical values as decimals.
    assert_eq!(exported["lensSpecification"][0]["sphere"], json!(-2.0));
    assert_eq!(exported["lensSpecification"][1]["cylinder"], json!(-0.5));
    // And back again: the same prescription, lens type included.
    let again = import_vision_prescription(&exported).unwrap();
    assert_eq!(again.spectacles.unwrap(), as_imported(rx));
    assert!(again.notices.is_empty());
}

/// The prescription with the prescriber as the import sees an exported one (name only).
fn as_imported(mut rx: SpectacleRx) -> SpectacleRx {
    rx.prescriber = Prescriber {
        account_id: None,
        name: rx.prescriber.name.clone(),
        licence: String::new(),
    };
    rx
}

#[test]
fn export_carries_the_contact_lens_example_values() {
    let original = contacts_fixture();
    let imported = import_vision_prescription(&original).unwrap();
    let rx = imported.contact_lenses.unwrap();
    let exported = contact_lens_rx_resource(&id(42), &rx, &id(41)).unwrap();
    assert_same_lenses(&original, &exported);
    assert_eq!(exported["lensSpecification"][0]["power"], json!(-2.75));
    assert_eq!(exported["lensSpecification"][0]["backCurve"], json!(8.7));
    let again = import_vision_prescription(&exported).unwrap();
    let back = again.contact_lenses.unwrap();
    assert_eq!(back.od, rx.od);
    assert_eq!(back.os, rx.os);
    assert_eq!(back.replacement, rx.replacement);
    assert_eq!(back.brand, rx.brand);
    assert_eq!(back.notes, rx.notes);
}

#[test]
fn our_prescriptions_round_trip() {
    let s = spectacles();
    let v = spectacle_rx_resource(&id(50), &s, &id(51)).unwrap();
    let back = import_vision_prescription(&v).unwrap().spectacles.unwrap();
    // Only what R4 cannot carry is lost.
    let expected = SpectacleRx {
        pd: None,
        near_pd: None,
        segment_height: None,
        vertex_distance: None,
        source_exam: None,
        prescriber: Prescriber {
            account_id: None,
            name: s.prescriber.name.clone(),
            licence: String::new(),
        },
        ..s.clone()
    };
    assert_eq!(back, expected);
    let c = contacts();
    let v = contact_lens_rx_resource(&id(52), &c, &id(51)).unwrap();
    let back = import_vision_prescription(&v)
        .unwrap()
        .contact_lenses
        .unwrap();
    assert_eq!(
        back,
        ContactLensRx {
            expiry: None,
            manufacturer: String::new(),
            material: String::new(),
            prescriber: Prescriber {
                account_id: None,
                name: c.prescriber.name.clone(),
                licence: String::new(),
            },
            ..c.clone()
        }
    );
}

fn refused(mutate: impl FnOnce(&mut Value)) -> FhirError {
    let mut v = spectacles_fixture();
    mutate(&mut v);
    import_vision_prescription(&v).unwrap_err()
}

fn refused_contacts(mutate: impl FnOnce(&mut Value)) -> FhirError {
    let mut v = contacts_fixture();
    mutate(&mut v);
    import_vision_prescription(&v).unwrap_err()
}

fn remove(v: &mut Value, key: &str) {
    v.as_object_mut().unwrap().remove(key);
}

#[test]
fn r4_rules_are_enforced() {
    for key in [
        "status",
        "created",
        "patient",
        "dateWritten",
        "prescriber",
        "lensSpecification",
    ] {
        assert_eq!(
            refused(|v| remove(v, key)),
            FhirError::Missing(key.into()),
            "{key}"
        );
    }
    assert_eq!(
        refused(|v| v["lensSpecification"] = json!([])),
        FhirError::Missing("lensSpecification".into())
    );
    assert!(matches!(
        refused(|v| v["status"] = json!("completed")),
        FhirError::Invalid { path, .. } if path == "status"
    ));
    assert!(matches!(
        refused(|v| v["status"] = json!("entered_in_error")),
        FhirError::Invalid { path, .. } if path == "status"
    ));
    assert_eq!(
        refused(|v| remove(&mut v["lensSpecification"][1]["prism"][0], "base")),
        FhirError::Missing("lensSpecification[1].prism[0].base".into())
    );
    assert_eq!(
        refused(|v| remove(&mut v["lensSpecification"][0]["prism"][0], "amount")),
        FhirError::Missing("lensSpecification[0].prism[0].amount".into())
    );
    assert!(matches!(
        refused(|v| v["lensSpecification"][0]["prism"][0]["base"] = json!("left")),
        FhirError::Invalid { path, .. } if path == "lensSpecification[0].prism[0].base"
    ));
    for bad_eye in [json!("both"), json!("RIGHT"), json!(1), json!(null)] {
        let e = refused(|v| v["lensSpecification"][0]["eye"] = bad_eye.clone());
        assert!(
            matches!(&e, FhirError::Invalid { path, .. } | FhirError::Missing(path)
                if path == "lensSpecification[0].eye"),
            "{e:?}"
        );
    }
    assert_eq!(
        refused(|v| remove(&mut v["lensSpecification"][1], "product")),
        FhirError::Missing("lensSpecification[1].product".into())
    );
    assert!(matches!(
        refused(|v| v["resourceType"] = json!("Patient")),
        FhirError::ResourceType { .. }
    ));
    assert!(matches!(
        refused(|v| v["prescriber"] = json!({})),
        FhirError::Missing(path) if path == "prescriber.reference"
    ));
    assert!(matches!(
        refused(|v| v["dateWritten"] = json!("15/06/2014")),
        FhirError::Invalid { path, .. } if path == "dateWritten"
    ));
    assert!(matches!(
        refused(|v| v["lensSpecification"][0]["sphere"] = json!("-2.00")),
        FhirError::Invalid { .. }
    ));
    assert!(matches!(
        refused(|v| v["lensSpecification"][0]["sphere"] = json!(-2.125)),
        FhirError::Unsupported { .. }
    ));
    assert!(matches!(
        refused(|v| v["lensSpecification"][1]["eye"] = json!("right")),
        FhirError::Unsupported { .. }
    ));
    // Durations need a UCUM code.
    assert_eq!(
        refused_contacts(|v| remove(&mut v["lensSpecification"][0]["duration"], "code")),
        FhirError::Missing("lensSpecification[0].duration.code".into())
    );
    assert!(matches!(
        refused_contacts(|v| v["lensSpecification"][0]["duration"]["code"] = json!("month")),
        FhirError::Invalid { path, .. } if path == "lensSpecification[0].duration.code"
    ));
    assert!(matches!(
        refused_contacts(
            |v| v["lensSpecification"][0]["duration"]["system"] = json!("http://example.org")
        ),
        FhirError::Invalid { .. }
    ));
    assert!(matches!(
        refused_contacts(|v| v["lensSpecification"][1]["brand"] = json!("Other")),
        FhirError::Unsupported { .. }
    ));
    // A dateTime with a time is fine; only the date is kept.
    let mut v = spectacles_fixture();
    v["dateWritten"] = json!("2014-06-15T10:30:00+02:00");
    assert_eq!(
        import_vision_prescription(&v)
            .unwrap()
            .spectacles
            .unwrap()
            .issued,
        "2014-06-15"
    );
}

fn entries(bundle: &Value) -> &Vec<Value> {
    bundle["entry"].as_array().unwrap()
}

fn resources<'a>(bundle: &'a Value, rt: &str) -> Vec<&'a Value> {
    entries(bundle)
        .iter()
        .map(|e| &e["resource"])
        .filter(|r| r["resourceType"] == rt)
        .collect()
}

/// FHIR forbids empty strings, arrays and objects anywhere in a resource.
fn assert_no_empty(v: &Value, path: &str) {
    match v {
        Value::String(s) => assert!(!s.trim().is_empty(), "empty string at {path}"),
        Value::Array(a) => {
            assert!(!a.is_empty(), "empty array at {path}");
            for (i, x) in a.iter().enumerate() {
                assert_no_empty(x, &format!("{path}[{i}]"));
            }
        }
        Value::Object(o) => {
            assert!(!o.is_empty(), "empty object at {path}");
            for (k, x) in o {
                assert_no_empty(x, &format!("{path}.{k}"));
            }
        }
        Value::Null => panic!("null at {path}"),
        _ => {}
    }
}

fn collect_references(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(o) => {
            for (k, x) in o {
                if k == "reference" {
                    out.push(x.as_str().unwrap().to_string());
                } else {
                    collect_references(x, out);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| collect_references(x, out)),
        _ => {}
    }
}

fn sample_bundle() -> Value {
    export_patient_bundle(
        &id(60),
        &patient(),
        &[(id(61), exam())],
        &[(id(62), spectacles())],
        &[(id(63), contacts())],
    )
}

#[test]
fn patient_bundle() {
    let b = sample_bundle();
    assert_eq!(b["resourceType"], "Bundle");
    assert_eq!(b["type"], "collection");
    assert_no_empty(&b, "Bundle");
    // Every entry: urn:uuid full URL matching the resource id; every reference resolves.
    let mut urls = Vec::new();
    for e in entries(&b) {
        let url = e["fullUrl"].as_str().unwrap();
        assert_eq!(
            url,
            format!("urn:uuid:{}", e["resource"]["id"].as_str().unwrap())
        );
        assert!(!urls.contains(&url.to_string()), "duplicate {url}");
        urls.push(url.to_string());
    }
    let mut refs = Vec::new();
    collect_references(&b, &mut refs);
    assert!(!refs.is_empty());
    for r in &refs {
        assert!(urls.contains(r), "dangling reference {r}");
    }
    // Patient.
    let p = resources(&b, "Patient");
    assert_eq!(p.len(), 1);
    assert_eq!(p[0]["birthDate"], "2012-03-14");
    assert_eq!(p[0]["gender"], "female");
    assert_eq!(p[0]["name"][0]["family"], "Okafor");
    assert_eq!(p[0]["contact"][0]["relationship"][0]["text"], "mother");
    // Two practitioners: the exam's doctor (who also wrote the spectacles) and the outside one.
    assert_eq!(resources(&b, "Practitioner").len(), 2);
    // Prescriptions, and they import back.
    let vps = resources(&b, "VisionPrescription");
    assert_eq!(vps.len(), 2);
    for vp in &vps {
        import_vision_prescription(vp).unwrap();
    }
    let contact = vps
        .iter()
        .find(|v| product_code(&v["lensSpecification"][0]) == "contact")
        .unwrap();
    assert_eq!(
        contact["lensSpecification"][0]["duration"],
        json!({ "value": 1, "unit": "month", "system": UCUM, "code": "mo" })
    );
    // Observations: 3 visual acuities, 2 IOPs.
    let obs = resources(&b, "Observation");
    assert_eq!(obs.len(), 5);
    let iop: Vec<_> = obs
        .iter()
        .filter(|o| o["code"]["coding"][0]["code"] == LOINC_IOP)
        .collect();
    assert_eq!(iop.len(), 2);
    assert_eq!(iop[0]["code"]["coding"][0]["system"], LOINC);
    assert_eq!(
        iop[1]["valueQuantity"],
        json!({ "value": 23, "unit": "mmHg", "system": UCUM, "code": "mm[Hg]" })
    );
    assert_eq!(iop[1]["method"]["text"], "Goldmann applanation tonometry");
    assert_eq!(iop[1]["bodySite"]["text"], "left eye");
    assert_eq!(iop[0]["status"], "final");
    let va: Vec<_> = obs
        .iter()
        .filter(|o| o["valueQuantity"]["code"] == "{logMAR}")
        .collect();
    assert_eq!(va.len(), 3);
    assert_eq!(va[0]["valueQuantity"]["value"], json!(0.301));
    assert_eq!(va[2]["valueQuantity"]["value"], json!(0.0));
    assert_eq!(va[0]["effectiveDateTime"], "2026-11-20");
    // Coded with the SNOMED CT observable entities and body sites of the HL7 eye-care guides.
    for o in &va {
        let text = o["code"]["text"].as_str().unwrap();
        let want = if text.contains("pinhole") {
            "419475002"
        } else if text.contains("near") {
            "251743004"
        } else if text.contains("both eyes") {
            "251742009"
        } else {
            "251739003"
        };
        assert_eq!(
            o["code"]["coding"][0]["system"], "http://snomed.info/sct",
            "{text}"
        );
        assert_eq!(o["code"]["coding"][0]["code"], want, "{text}");
        let site = o["bodySite"]["coding"][0]["code"].clone();
        match o["bodySite"]["text"].as_str().unwrap() {
            "right eye" => assert_eq!(site, "362502000"),
            "left eye" => assert_eq!(site, "362503005"),
            _ => assert!(site.is_null()),
        }
    }
    assert!(va
        .iter()
        .any(|o| o["bodySite"]["coding"][0]["code"] == "362502000"));
    // Deterministic.
    assert_eq!(sample_bundle(), b);
}

/// Writes the example Bundle for an external validator when `OPTOVAULT_FHIR_SAMPLE_OUT` is set
/// (to the output file's path); otherwise only checks that it serialises.
#[test]
fn write_sample_bundle() {
    let text = serde_json::to_string_pretty(&sample_bundle()).unwrap();
    if let Ok(path) = std::env::var("OPTOVAULT_FHIR_SAMPLE_OUT") {
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("cannot write {path}: {e}"));
    }
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|i| json!(i)),
        any::<f64>().prop_map(|f| json!(f)),
        "[a-z]{0,6}".prop_map(Value::String),
        Just(json!("right")),
        Just(json!("mo")),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map("[a-z]{1,6}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    /// Import never panics, whatever replaces any element of either example.
    #[test]
    fn import_never_panics(
        contacts in any::<bool>(),
        lens in 0usize..3,
        key in prop_oneof![
            Just("status"), Just("created"), Just("patient"), Just("prescriber"),
            Just("sphere"), Just("cylinder"), Just("axis"), Just("add"), Just("prism"),
            Just("power"), Just("backCurve"), Just("diameter"), Just("duration"),
            Just("eye"), Just("product"), Just("note"), Just("brand"), Just("lensSpecification"),
        ],
        value in arb_json(),
    ) {
        let mut v = if contacts { contacts_fixture() } else { spectacles_fixture() };
        if v.get(key).is_some() || lens == 2 {
            v[key] = value.clone();
        } else if let Some(l) = v["lensSpecification"].get_mut(lens) {
            l[key] = value;
        }
        let _ = import_vision_prescription(&v);
    }

    /// Any valid spectacle prescription exports and imports back with the same eyes.
    #[test]
    fn spectacle_values_survive_fhir(
        s in -120i32..=120, c in -40i32..=40, axis in 1u16..=180,
        add in proptest::option::of(2i32..=16), prism in proptest::option::of(1i32..=80),
    ) {
        let eye = EyeRefraction {
            sphere: Diopters(s * 25),
            cylinder: Diopters(c * 25),
            axis: (c != 0).then_some(axis),
            add: add.map(|a| Diopters(a * 25)),
            prism: prism.map(|p| vec![Prism { amount: Centi(p * 25), base: PrismBase::In }]).unwrap_or_default(),
        };
        let rx = SpectacleRx {
            od: Some(eye.clone()),
            os: None,
            lens_type: if add.is_some() { LensType::Bifocal } else { LensType::SingleVision },
            ..spectacles()
        };
        let v = spectacle_rx_resource(&id(70), &rx, &id(71)).unwrap();
        let back = import_vision_prescription(&v).unwrap().spectacles.unwrap();
        prop_assert_eq!(back.od, Some(eye));
        prop_assert_eq!(back.os, None);
        prop_assert_eq!(back.lens_type, rx.lens_type);
    }
}

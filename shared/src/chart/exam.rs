//! The eye exam record (compartment `clinical`): history, visual acuity, refractions,
//! keratometry, intraocular pressure, pachymetry, slit lamp and fundus findings, cup/disc ratio,
//! dilation, diagnoses, plan; signing and amendments.
//!
//! Once signed, an exam is frozen: the only change allowed is appending an amendment
//! ([`check_exam_edit`]).

use serde::{Deserialize, Serialize};
use std::fmt;

use super::refraction::{eye_fields, EyeRefraction};
use super::units::{parse_scaled, Diopters};
use super::va::VisualAcuity;
use super::{parse_date, parse_time, Checks, PerEye, Side, StaffRef, LINE_MAX, NOTES_MAX};
use crate::domain::FieldError;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExamType {
    #[default]
    Comprehensive,
    ContactLens,
    Medical,
    FollowUp,
}

impl ExamType {
    pub const ALL: [ExamType; 4] = [
        ExamType::Comprehensive,
        ExamType::ContactLens,
        ExamType::Medical,
        ExamType::FollowUp,
    ];
    pub fn label(self) -> &'static str {
        match self {
            ExamType::Comprehensive => "Comprehensive",
            ExamType::ContactLens => "Contact lens",
            ExamType::Medical => "Medical",
            ExamType::FollowUp => "Follow-up",
        }
    }
}

/// The history taken at the start of the exam (free text).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct History {
    pub chief_complaint: String,
    pub ocular_history: String,
    pub medical_history: String,
    pub medications: String,
    pub allergies: String,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefractionType {
    Auto,
    Retinoscopy,
    #[default]
    Manifest,
    Cycloplegic,
}

impl RefractionType {
    pub fn label(self) -> &'static str {
        match self {
            RefractionType::Auto => "autorefraction",
            RefractionType::Retinoscopy => "retinoscopy",
            RefractionType::Manifest => "manifest",
            RefractionType::Cycloplegic => "cycloplegic",
        }
    }
}

/// One refraction of the exam (both eyes).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Refraction {
    pub refraction_type: RefractionType,
    #[serde(default)]
    pub od: Option<EyeRefraction>,
    #[serde(default)]
    pub os: Option<EyeRefraction>,
    #[serde(default)]
    pub notes: String,
}

/// Keratometry of one eye: the two principal corneal powers and their meridians.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KReading {
    pub k1: Diopters,
    pub k1_axis: u16,
    pub k2: Diopters,
    pub k2_axis: u16,
}

/// Corneal powers accepted (keratoconus can exceed 60 D).
pub const K_MIN: i32 = 2000;
pub const K_MAX: i32 = 8000;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IopMethod {
    #[default]
    Goldmann,
    NonContact,
    Rebound,
    TonoPen,
}

impl IopMethod {
    pub fn label(self) -> &'static str {
        match self {
            IopMethod::Goldmann => "Goldmann applanation tonometry",
            IopMethod::NonContact => "Non-contact (air-puff) tonometry",
            IopMethod::Rebound => "Rebound tonometry",
            IopMethod::TonoPen => "Tono-Pen tonometry",
        }
    }
}

/// Upper limit of normal intraocular pressure; above it is elevated.
pub const IOP_NORMAL_MAX: u16 = 21;
pub const IOP_MAX: u16 = 80;

/// One intraocular pressure reading, in whole mmHg (the resolution of Goldmann and Tono-Pen
/// readings as charted).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IopReading {
    pub eye: Side,
    pub mmhg: u16,
    pub method: IopMethod,
    /// Time of day, `HH:MM`.
    #[serde(default)]
    pub time: Option<String>,
}

impl IopReading {
    /// Above 21 mmHg.
    pub fn is_elevated(&self) -> bool {
        self.mmhg > IOP_NORMAL_MAX
    }
}

/// Central corneal thickness accepted, µm.
pub const CCT_MIN: u16 = 300;
pub const CCT_MAX: u16 = 800;

/// Vertical cup-to-disc ratio in hundredths (`35` is 0.35), 0..=1 in 0.05 steps.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct CupDisc(pub u16);

impl CupDisc {
    pub fn parse(s: &str) -> Result<CupDisc, String> {
        parse_scaled(s, 2, false)
            .and_then(|v| u16::try_from(v).ok())
            .map(CupDisc)
            .ok_or_else(|| "Write the ratio as a decimal, e.g. 0.35.".into())
    }
    pub fn is_valid(self) -> bool {
        self.0 <= 100 && self.0 % 5 == 0
    }
}

impl fmt::Display for CupDisc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:02}", self.0 / 100, self.0 % 100)
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dilation {
    /// E.g. "tropicamide 1%".
    pub agent: String,
    /// Time of instillation, `HH:MM`.
    pub time: String,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Laterality {
    Right,
    Left,
    Both,
    #[default]
    #[serde(rename = "na")]
    NotApplicable,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Diagnosis {
    /// ICD-10 code, e.g. `H52.4` or `H40.11X1` (upper case, see [`is_icd10_shape`]).
    pub code: String,
    #[serde(default)]
    pub description: String,
    pub laterality: Laterality,
}

/// Whether `s` has the shape of an ICD-10 code: a letter, a digit, a digit (or, as in
/// ICD-10-CM's C4A/D3A/M1A, a letter), then optionally a dot and 1 to 4 letters or digits. Upper
/// case only (see [`normalize_icd10`]). Checks the shape, not that the code exists.
pub fn is_icd10_shape(s: &str) -> bool {
    let b = s.as_bytes();
    let head_ok = b.len() >= 3
        && b[0].is_ascii_uppercase()
        && b[1].is_ascii_digit()
        && (b[2].is_ascii_digit() || b[2].is_ascii_uppercase());
    if !head_ok {
        return false;
    }
    match b.get(3..) {
        Some([]) => true,
        Some([b'.', rest @ ..]) => {
            (1..=4).contains(&rest.len())
                && rest
                    .iter()
                    .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase())
        }
        _ => false,
    }
}

/// Trims and upper-cases an ICD-10 code as typed.
pub fn normalize_icd10(s: &str) -> String {
    s.trim().to_ascii_uppercase()
}

/// Who signed the exam, and when (`YYYY-MM-DDTHH:MM`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signature {
    pub by: StaffRef,
    pub at: String,
}

/// A correction or addendum to a signed exam.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Amendment {
    pub by: StaffRef,
    /// `YYYY-MM-DDTHH:MM`.
    pub at: String,
    pub text: String,
}

/// An eye exam.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Exam {
    pub exam_type: ExamType,
    /// The examining clinician; required before signing.
    #[serde(default)]
    pub provider: Option<StaffRef>,
    /// `YYYY-MM-DD`.
    pub date: String,
    #[serde(default)]
    pub history: History,
    #[serde(default)]
    pub visual_acuity: Vec<VisualAcuity>,
    #[serde(default)]
    pub refractions: Vec<Refraction>,
    #[serde(default)]
    pub keratometry: PerEye<Option<KReading>>,
    #[serde(default)]
    pub iop: Vec<IopReading>,
    /// Central corneal thickness, µm.
    #[serde(default)]
    pub cct_um: PerEye<Option<u16>>,
    #[serde(default)]
    pub slit_lamp: PerEye<String>,
    #[serde(default)]
    pub fundus: PerEye<String>,
    #[serde(default)]
    pub cup_disc: PerEye<Option<CupDisc>>,
    #[serde(default)]
    pub dilation: Option<Dilation>,
    #[serde(default)]
    pub diagnoses: Vec<Diagnosis>,
    #[serde(default)]
    pub plan: String,
    #[serde(default)]
    pub signed: Option<Signature>,
    #[serde(default)]
    pub amendments: Vec<Amendment>,
}

fn side_field(side: Side, od: &'static str, os: &'static str) -> &'static str {
    match side {
        Side::Od => od,
        Side::Os => os,
    }
}

fn check_amendment(a: &Amendment, c: &mut Checks) {
    c.staff("amendments", &a.by, "The amending clinician");
    c.datetime("amendments", &a.at, "The amendment time");
    if a.text.trim().is_empty() {
        c.err("amendments", "The amendment text is empty.");
    }
    c.text("amendments", &a.text, NOTES_MAX, true);
}

impl Exam {
    fn checks(&self, today: Option<&str>) -> Checks {
        let mut c = Checks::default();
        let today = today.and_then(parse_date);
        c.date("date", &self.date, "The exam date", today, true);
        if let Some(p) = &self.provider {
            c.staff("provider", p, "The provider");
        }
        for (field, value) in [
            ("history.chief_complaint", &self.history.chief_complaint),
            ("history.ocular_history", &self.history.ocular_history),
            ("history.medical_history", &self.history.medical_history),
            ("history.medications", &self.history.medications),
            ("history.allergies", &self.history.allergies),
        ] {
            c.text(field, value, NOTES_MAX, true);
        }
        for (i, va) in self.visual_acuity.iter().enumerate() {
            c.nested(&format!("Visual acuity {}: ", i + 1), |c| {
                va.check("visual_acuity", c)
            });
        }
        for (i, r) in self.refractions.iter().enumerate() {
            c.nested(
                &format!("Refraction {} ({}): ", i + 1, r.refraction_type.label()),
                |c| {
                    if r.od.is_none() && r.os.is_none() {
                        c.err("refractions", "Enter at least one eye.");
                    }
                    if let Some(e) = &r.od {
                        e.check(&eye_fields!("refractions.od"), c);
                    }
                    if let Some(e) = &r.os {
                        e.check(&eye_fields!("refractions.os"), c);
                    }
                    c.text("refractions.notes", &r.notes, NOTES_MAX, true);
                },
            );
        }
        for (side, k) in self.keratometry.sides() {
            let Some(k) = k else { continue };
            let field = side_field(side, "keratometry.od", "keratometry.os");
            if !(K_MIN..=K_MAX).contains(&k.k1.0) || !(K_MIN..=K_MAX).contains(&k.k2.0) {
                c.err(field, "K readings must be between 20.00 and 80.00 D.");
            }
            if !(1..=180).contains(&k.k1_axis) || !(1..=180).contains(&k.k2_axis) {
                c.err(field, "K axes must be whole numbers from 1 to 180.");
            }
        }
        for (i, r) in self.iop.iter().enumerate() {
            c.nested(
                &format!("IOP {} ({}): ", i + 1, r.eye.as_str().to_uppercase()),
                |c| {
                    if r.mmhg > IOP_MAX {
                        c.err("iop.mmhg", "IOP must be between 0 and 80 mmHg.");
                    }
                    if let Some(t) = &r.time {
                        if parse_time(t).is_none() {
                            c.err("iop.time", "Time must be HH:MM.");
                        }
                    }
                },
            );
        }
        for (side, cct) in self.cct_um.sides() {
            if cct.is_some_and(|v| !(CCT_MIN..=CCT_MAX).contains(&v)) {
                c.err(
                    side_field(side, "cct_um.od", "cct_um.os"),
                    "Central corneal thickness must be between 300 and 800 µm.",
                );
            }
        }
        for (side, text) in self.slit_lamp.sides() {
            c.text(
                side_field(side, "slit_lamp.od", "slit_lamp.os"),
                text,
                NOTES_MAX,
                true,
            );
        }
        for (side, text) in self.fundus.sides() {
            c.text(
                side_field(side, "fundus.od", "fundus.os"),
                text,
                NOTES_MAX,
                true,
            );
        }
        for (side, cd) in self.cup_disc.sides() {
            if cd.is_some_and(|v| !v.is_valid()) {
                c.err(
                    side_field(side, "cup_disc.od", "cup_disc.os"),
                    "Cup/disc ratio must be 0 to 1 in 0.05 steps.",
                );
            }
        }
        if let Some(d) = &self.dilation {
            c.required_text("dilation.agent", &d.agent, "The dilating agent", LINE_MAX);
            if parse_time(&d.time).is_none() {
                c.err("dilation.time", "Dilation time is required, as HH:MM.");
            }
        }
        for (i, d) in self.diagnoses.iter().enumerate() {
            c.nested(&format!("Diagnosis {}: ", i + 1), |c| {
                if !is_icd10_shape(&d.code) {
                    c.err(
                        "diagnoses.code",
                        "ICD-10 code must look like H52.4 or H40.11X1.",
                    );
                }
                c.text("diagnoses.description", &d.description, LINE_MAX, false);
            });
        }
        c.text("plan", &self.plan, NOTES_MAX, true);
        if let Some(sig) = &self.signed {
            c.staff("signed", &sig.by, "The signing clinician");
            c.datetime("signed", &sig.at, "The signing time");
            if !self.provider.as_ref().is_some_and(StaffRef::is_complete) {
                c.err("provider", "A signed exam needs its provider.");
            }
        } else if !self.amendments.is_empty() {
            c.err("amendments", "Only a signed exam can be amended.");
        }
        for (i, a) in self.amendments.iter().enumerate() {
            c.nested(&format!("Amendment {}: ", i + 1), |c| check_amendment(a, c));
        }
        c
    }

    /// Every error; `today` is the caller's date (`YYYY-MM-DD`): the exam cannot be later.
    pub fn validate(&self, today: &str) -> Result<(), Vec<FieldError>> {
        self.checks(Some(today)).result()
    }

    /// Values worth a second look (sphere beyond ±20 D, unusual adds).
    pub fn warnings(&self) -> Vec<FieldError> {
        self.checks(None).warnings
    }

    /// Whether any IOP reading is above 21 mmHg.
    pub fn has_elevated_iop(&self) -> bool {
        self.iop.iter().any(IopReading::is_elevated)
    }

    /// The exam signed by `by` at `at` (`YYYY-MM-DDTHH:MM`), refused as [`check_exam_edit`]
    /// would.
    pub fn sign(&self, by: StaffRef, at: &str) -> Result<Exam, FieldError> {
        let mut signed = self.clone();
        signed.signed = Some(Signature {
            by,
            at: at.to_string(),
        });
        check_exam_edit(self, &signed)?;
        Ok(signed)
    }

    /// The signed exam with one more amendment.
    pub fn amend(&self, by: StaffRef, at: &str, text: &str) -> Result<Exam, FieldError> {
        let mut amended = self.clone();
        amended.amendments.push(Amendment {
            by,
            at: at.to_string(),
            text: text.to_string(),
        });
        check_exam_edit(self, &amended)?;
        Ok(amended)
    }
}

fn edit_error(field: &'static str, message: &str) -> FieldError {
    FieldError {
        field,
        message: message.to_string(),
    }
}

/// Whether `new` may replace `old`. A signed exam may only gain amendments at the end (the
/// existing ones unchanged, each new one complete); signing requires the provider and a valid
/// exam date and signature.
pub fn check_exam_edit(old: &Exam, new: &Exam) -> Result<(), FieldError> {
    if old.signed.is_some() {
        if new.signed != old.signed {
            return Err(edit_error(
                "signed",
                "A signed exam cannot be unsigned or signed again.",
            ));
        }
        let kept = new.amendments.get(..old.amendments.len());
        if kept != Some(old.amendments.as_slice()) {
            return Err(edit_error(
                "amendments",
                "Existing amendments cannot be changed or removed.",
            ));
        }
        let mut same = new.clone();
        same.amendments.clone_from(&old.amendments);
        if &same != old {
            return Err(edit_error(
                "signed",
                "A signed exam cannot be changed; add an amendment instead.",
            ));
        }
        for a in new.amendments.iter().skip(old.amendments.len()) {
            let mut c = Checks::default();
            check_amendment(a, &mut c);
            if let Some(e) = c.errors.into_iter().next() {
                return Err(e);
            }
        }
        return Ok(());
    }
    if let Some(sig) = &new.signed {
        if !new.provider.as_ref().is_some_and(StaffRef::is_complete) {
            return Err(edit_error(
                "provider",
                "The exam needs its provider before signing.",
            ));
        }
        if parse_date(&new.date).is_none() {
            return Err(edit_error(
                "date",
                "The exam needs its date before signing.",
            ));
        }
        if !sig.by.is_complete() || super::parse_datetime(&sig.at).is_none() {
            return Err(edit_error(
                "signed",
                "The signature needs the signing clinician and time.",
            ));
        }
        if !new.amendments.is_empty() {
            return Err(edit_error(
                "amendments",
                "Only a signed exam can be amended.",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chart::va::{VaCorrection, VaDistance, VaNotation};
    use crate::chart::EyeSel;
    use proptest::prelude::*;
    use uuid::Uuid;

    fn doc() -> StaffRef {
        StaffRef {
            account_id: Uuid::new_v4(),
            name: "Dr Iris Lens".into(),
        }
    }

    pub(crate) fn sample_exam() -> Exam {
        Exam {
            exam_type: ExamType::Comprehensive,
            provider: Some(doc()),
            date: "2026-11-20".into(),
            history: History {
                chief_complaint: "Blurred distance vision".into(),
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
                    VaCorrection::Cc,
                    VaNotation::SnellenFeet,
                    "CF",
                )
                .unwrap(),
            ],
            refractions: vec![Refraction {
                refraction_type: RefractionType::Manifest,
                od: Some(EyeRefraction {
                    sphere: Diopters(-200),
                    ..Default::default()
                }),
                os: Some(EyeRefraction {
                    sphere: Diopters(-100),
                    cylinder: Diopters(-50),
                    axis: Some(180),
                    add: Some(Diopters(200)),
                    prism: vec![],
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
            iop: vec![IopReading {
                eye: Side::Od,
                mmhg: 16,
                method: IopMethod::Goldmann,
                time: Some("09:40".into()),
            }],
            cct_um: PerEye {
                od: Some(545),
                os: Some(552),
            },
            cup_disc: PerEye {
                od: Some(CupDisc(35)),
                os: Some(CupDisc(40)),
            },
            dilation: Some(Dilation {
                agent: "tropicamide 1%".into(),
                time: "09:45".into(),
            }),
            diagnoses: vec![Diagnosis {
                code: "H52.13".into(),
                description: "Myopia, bilateral".into(),
                laterality: Laterality::Both,
            }],
            plan: "Spectacles; review in 2 years.".into(),
            ..Default::default()
        }
    }

    fn fields(e: &Exam) -> Vec<&'static str> {
        e.validate("2026-11-26")
            .err()
            .unwrap_or_default()
            .into_iter()
            .map(|e| e.field)
            .collect()
    }

    #[test]
    fn valid_exam() {
        assert_eq!(sample_exam().validate("2026-11-26"), Ok(()));
        assert!(sample_exam().warnings().is_empty());
    }

    #[test]
    fn field_names() {
        let mut e = sample_exam();
        e.date = "2026-11-27".into();
        assert_eq!(fields(&e), vec!["date"]);
        let mut e = sample_exam();
        e.refractions[0].os.as_mut().unwrap().axis = None;
        let errs = e.validate("2026-11-26").unwrap_err();
        assert_eq!(errs[0].field, "refractions.os.axis");
        assert!(errs[0].message.starts_with("Refraction 1 (manifest): "));
        let mut e = sample_exam();
        e.refractions[0].od = None;
        e.refractions[0].os = None;
        assert_eq!(fields(&e), vec!["refractions"]);
        let mut e = sample_exam();
        e.keratometry.od.as_mut().unwrap().k2_axis = 0;
        assert_eq!(fields(&e), vec!["keratometry.od"]);
        let mut e = sample_exam();
        e.iop[0].time = Some("9:40".into());
        assert_eq!(fields(&e), vec!["iop.time"]);
        let mut e = sample_exam();
        e.cct_um.os = Some(299);
        assert_eq!(fields(&e), vec!["cct_um.os"]);
        let mut e = sample_exam();
        e.cct_um.os = Some(801);
        assert_eq!(fields(&e), vec!["cct_um.os"]);
        let mut e = sample_exam();
        e.dilation.as_mut().unwrap().time = String::new();
        assert_eq!(fields(&e), vec!["dilation.time"]);
        let mut e = sample_exam();
        e.diagnoses[0].code = "h52.13".into();
        assert_eq!(fields(&e), vec!["diagnoses.code"]);
        let mut e = sample_exam();
        e.visual_acuity[0].entered = "20/".into();
        assert_eq!(fields(&e), vec!["visual_acuity"]);
        let mut e = sample_exam();
        e.amendments.push(Amendment {
            by: doc(),
            at: "2026-11-21T10:00".into(),
            text: "x".into(),
        });
        assert_eq!(fields(&e), vec!["amendments"]);
        let mut e = sample_exam();
        e.refractions[0].od.as_mut().unwrap().sphere = Diopters(-2200);
        assert_eq!(e.warnings()[0].field, "refractions.od.sphere");
    }

    #[test]
    fn icd10_shapes() {
        for ok in ["H40.11X1", "H52.4", "H52", "E11.3553", "C4A.1", "Z01.00"] {
            assert!(is_icd10_shape(ok), "{ok}");
        }
        for bad in [
            "",
            "H5",
            "H524",
            "H52.",
            "H52.12345",
            "h52.4",
            "452.4",
            "HH2.4",
            "H52-4",
            "H52.4 ",
            "H52..4",
            "H52.4é",
        ] {
            assert!(!is_icd10_shape(bad), "{bad}");
        }
        assert_eq!(normalize_icd10(" h40.11x1 "), "H40.11X1");
    }

    #[test]
    fn iop_elevation_edges() {
        let r = |mmhg| IopReading {
            mmhg,
            ..Default::default()
        };
        assert!(!r(21).is_elevated());
        assert!(r(22).is_elevated());
        let mut e = sample_exam();
        e.iop[0].mmhg = 80;
        assert!(fields(&e).is_empty());
        assert!(e.has_elevated_iop());
        e.iop[0].mmhg = 81;
        assert_eq!(fields(&e), vec!["iop.mmhg"]);
    }

    #[test]
    fn signing_and_amendments() {
        let draft = sample_exam();
        // Unsigned: anything goes.
        let mut edited = draft.clone();
        edited.plan = "Changed".into();
        assert_eq!(check_exam_edit(&draft, &edited), Ok(()));
        // Signing needs provider and date.
        let mut no_provider = draft.clone();
        no_provider.provider = None;
        assert_eq!(
            no_provider
                .sign(doc(), "2026-11-20T11:00")
                .unwrap_err()
                .field,
            "provider"
        );
        let mut no_date = draft.clone();
        no_date.date = String::new();
        assert_eq!(
            no_date.sign(doc(), "2026-11-20T11:00").unwrap_err().field,
            "date"
        );
        assert_eq!(draft.sign(doc(), "yesterday").unwrap_err().field, "signed");
        let signed = draft.sign(doc(), "2026-11-20T11:00").unwrap();
        assert_eq!(signed.validate("2026-11-26"), Ok(()));
        // Signed: no edits, no unsigning.
        let mut changed = signed.clone();
        changed.plan = "Changed".into();
        assert_eq!(
            check_exam_edit(&signed, &changed).unwrap_err().field,
            "signed"
        );
        let mut unsigned = signed.clone();
        unsigned.signed = None;
        assert_eq!(
            check_exam_edit(&signed, &unsigned).unwrap_err().field,
            "signed"
        );
        // Amendments append only.
        let a1 = signed
            .amend(doc(), "2026-11-21T09:00", "IOP OS was 18, not 16.")
            .unwrap();
        let a2 = a1.amend(doc(), "2026-11-22T09:00", "Second.").unwrap();
        assert_eq!(a2.amendments.len(), 2);
        assert_eq!(a2.validate("2026-11-26"), Ok(()));
        let mut rewritten = a2.clone();
        rewritten.amendments[0].text = "Rewritten".into();
        assert_eq!(
            check_exam_edit(&a2, &rewritten).unwrap_err().field,
            "amendments"
        );
        let mut dropped = a2.clone();
        dropped.amendments.remove(0);
        assert_eq!(
            check_exam_edit(&a2, &dropped).unwrap_err().field,
            "amendments"
        );
        assert_eq!(
            a1.amend(doc(), "2026-11-22T09:00", "  ").unwrap_err().field,
            "amendments"
        );
        // Amending while changing something else is refused.
        let mut sneaky = a1.clone();
        sneaky.amendments.push(Amendment {
            by: doc(),
            at: "2026-11-22T09:00".into(),
            text: "ok".into(),
        });
        sneaky.plan = "Changed".into();
        assert_eq!(check_exam_edit(&a1, &sneaky).unwrap_err().field, "signed");
    }

    proptest! {
        #[test]
        fn cup_disc_steps(h in 0u16..=200) {
            let mut e = sample_exam();
            e.cup_disc.od = Some(CupDisc(h));
            let ok = h <= 100 && h % 5 == 0;
            prop_assert_eq!(fields(&e).is_empty(), ok);
            prop_assert_eq!(CupDisc::parse(&CupDisc(h).to_string()), Ok(CupDisc(h)));
        }

        #[test]
        fn iop_range(mmhg in 0u16..=200) {
            let mut e = sample_exam();
            e.iop[0].mmhg = mmhg;
            prop_assert_eq!(fields(&e).is_empty(), mmhg <= 80);
            prop_assert_eq!(e.iop[0].is_elevated(), mmhg >= 22);
        }

        #[test]
        fn cct_range(um in 0u16..=1200) {
            let mut e = sample_exam();
            e.cct_um.od = Some(um);
            prop_assert_eq!(fields(&e).is_empty(), (300..=800).contains(&um));
        }

        #[test]
        fn k_range(k in 0i32..=10000, axis in 0u16..=200) {
            let mut e = sample_exam();
            e.keratometry.os = Some(KReading { k1: Diopters(k), k1_axis: axis, k2: Diopters(4400), k2_axis: 90 });
            let ok = (2000..=8000).contains(&k) && (1..=180).contains(&axis);
            prop_assert_eq!(fields(&e).is_empty(), ok);
        }

        #[test]
        fn icd10_shape_matches_definition(s in "[A-Z0-9a-z.]{0,9}") {
            let b = s.as_bytes();
            let expected = b.len() >= 3
                && b[0].is_ascii_uppercase()
                && b[1].is_ascii_digit()
                && (b[2].is_ascii_digit() || b[2].is_ascii_uppercase())
                && (b.len() == 3
                    || (b[3] == b'.'
                        && (5..=8).contains(&b.len())
                        && b[4..].iter().all(|c| c.is_ascii_digit() || c.is_ascii_uppercase())));
            prop_assert_eq!(is_icd10_shape(&s), expected);
        }

        #[test]
        fn icd10_never_panics(s in "\\PC{0,12}") {
            let _ = is_icd10_shape(&s);
        }

        /// Only appending complete amendments is accepted on a signed exam.
        #[test]
        fn signed_exam_frozen(plan in "[a-z ]{0,12}", text in "[a-z ]{0,12}") {
            let signed = sample_exam().sign(doc(), "2026-11-20T11:00").unwrap();
            let mut edited = signed.clone();
            edited.plan = plan.clone();
            prop_assert_eq!(check_exam_edit(&signed, &edited).is_ok(), plan == signed.plan);
            let amended = signed.amend(doc(), "2026-11-21T09:00", &text);
            prop_assert_eq!(amended.is_ok(), !text.trim().is_empty());
        }
    }
}

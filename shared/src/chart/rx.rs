//! Spectacle and contact-lens prescriptions (compartment `prescriptions`): what an optician needs
//! to dispense.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::refraction::{
    check_add, check_cylinder_axis, check_sphere, EyeFields, EyeRefraction, OD, OS,
};
use super::units::{Centi, Diopters};
use super::{format_date, parse_date, Checks, Prescriber, Side, NAME_MAX, NOTES_MAX};
use crate::domain::FieldError;

/// Life cycle of a prescription (FHIR's `financial-resource-status-codes`, as VisionPrescription
/// uses).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RxStatus {
    Draft,
    #[default]
    Active,
    Cancelled,
    EnteredInError,
}

impl RxStatus {
    pub const ALL: [RxStatus; 4] = [
        RxStatus::Draft,
        RxStatus::Active,
        RxStatus::Cancelled,
        RxStatus::EnteredInError,
    ];
    /// The FHIR code: `draft`, `active`, `cancelled`, `entered-in-error`.
    pub fn fhir_code(self) -> &'static str {
        match self {
            RxStatus::Draft => "draft",
            RxStatus::Active => "active",
            RxStatus::Cancelled => "cancelled",
            RxStatus::EnteredInError => "entered-in-error",
        }
    }
    pub fn from_fhir(code: &str) -> Option<RxStatus> {
        RxStatus::ALL.into_iter().find(|s| s.fhir_code() == code)
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LensType {
    #[default]
    SingleVision,
    Bifocal,
    Trifocal,
    Progressive,
}

impl LensType {
    pub const ALL: [LensType; 4] = [
        LensType::SingleVision,
        LensType::Bifocal,
        LensType::Trifocal,
        LensType::Progressive,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            LensType::SingleVision => "single_vision",
            LensType::Bifocal => "bifocal",
            LensType::Trifocal => "trifocal",
            LensType::Progressive => "progressive",
        }
    }
    pub fn parse(s: &str) -> Option<LensType> {
        LensType::ALL.into_iter().find(|l| l.as_str() == s)
    }
    /// Multifocal lenses need a reading addition.
    pub fn needs_add(self) -> bool {
        self != LensType::SingleVision
    }
}

/// Pupillary distance, in hundredths of a millimetre: one binocular value or one per eye
/// (monocular, from the bridge of the nose).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Pd {
    Binocular { mm: Centi },
    Monocular { od: Centi, os: Centi },
}

impl Pd {
    /// The binocular distance (sum of the monocular values), saturating.
    pub fn total(self) -> Centi {
        match self {
            Pd::Binocular { mm } => mm,
            Pd::Monocular { od, os } => Centi(od.0.saturating_add(os.0)),
        }
    }
}

/// Default validity of a spectacle prescription, years.
pub const SPECTACLE_RX_YEARS: i32 = 2;
/// Default validity of a contact-lens prescription, years.
pub const CONTACT_LENS_RX_YEARS: i32 = 1;

/// `date` (`YYYY-MM-DD`) plus whole years; 29 February becomes 28 February in a common year.
/// `None` if the date does not parse or the result is out of range.
pub fn add_years(date: &str, years: i32) -> Option<String> {
    let d = parse_date(date)?;
    let year = d.year().checked_add(years)?;
    let moved = d
        .replace_year(year)
        .or_else(|_| d.replace_day(28).and_then(|d| d.replace_year(year)))
        .ok()?;
    Some(format_date(moved))
}

fn check_dates(c: &mut Checks, issued: &str, expiry: Option<&String>, today: Option<time::Date>) {
    let issued = c.date("issued", issued, "The issue date", today, true);
    if let Some(e) = expiry {
        match parse_date(e) {
            None => c.err("expiry", "The expiry date must be YYYY-MM-DD."),
            Some(e) => {
                if issued.is_some_and(|i| e <= i) {
                    c.err("expiry", "The expiry date must be after the issue date.");
                }
            }
        }
    }
}

fn check_prescriber(c: &mut Checks, p: &Prescriber) {
    c.required_text("prescriber", &p.name, "The prescriber", NAME_MAX);
    if p.account_id.is_some_and(|a| a.is_nil()) {
        c.err("prescriber", "The prescriber's account id is not valid.");
    }
    c.text("prescriber", &p.licence, 40, false);
}

/// A spectacle prescription.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpectacleRx {
    pub status: RxStatus,
    /// `YYYY-MM-DD`.
    pub issued: String,
    /// `YYYY-MM-DD`; `None` means the default, issued + 2 years ([`Self::effective_expiry`]).
    #[serde(default)]
    pub expiry: Option<String>,
    pub lens_type: LensType,
    #[serde(default)]
    pub od: Option<EyeRefraction>,
    #[serde(default)]
    pub os: Option<EyeRefraction>,
    #[serde(default)]
    pub pd: Option<Pd>,
    /// Near PD, hundredths of a mm.
    #[serde(default)]
    pub near_pd: Option<Centi>,
    /// Segment (or fitting) height, hundredths of a mm.
    #[serde(default)]
    pub segment_height: Option<Centi>,
    /// Back vertex distance, hundredths of a mm.
    #[serde(default)]
    pub vertex_distance: Option<Centi>,
    #[serde(default)]
    pub notes: String,
    pub prescriber: Prescriber,
    /// The exam (record id) the prescription comes from.
    #[serde(default)]
    pub source_exam: Option<Uuid>,
}

impl SpectacleRx {
    pub fn eye(&self, side: Side) -> Option<&EyeRefraction> {
        match side {
            Side::Od => self.od.as_ref(),
            Side::Os => self.os.as_ref(),
        }
    }

    /// The stated expiry, or issued + 2 years.
    pub fn effective_expiry(&self) -> Option<String> {
        self.expiry
            .clone()
            .or_else(|| add_years(&self.issued, SPECTACLE_RX_YEARS))
    }

    /// Whether the prescription has expired on `today` (`YYYY-MM-DD`; it is valid through its
    /// expiry date). `false` when the dates do not parse.
    pub fn is_expired(&self, today: &str) -> bool {
        match (
            self.effective_expiry().as_deref().and_then(parse_date),
            parse_date(today),
        ) {
            (Some(e), Some(t)) => t > e,
            _ => false,
        }
    }

    fn checks(&self, today: Option<&str>) -> Checks {
        let mut c = Checks::default();
        check_dates(
            &mut c,
            &self.issued,
            self.expiry.as_ref(),
            today.and_then(parse_date),
        );
        if self.od.is_none() && self.os.is_none() {
            c.err("od", "Enter at least one eye.");
        }
        for (side, f) in [(Side::Od, OD), (Side::Os, OS)] {
            let Some(e) = self.eye(side) else { continue };
            e.check(&f, &mut c);
            if self.lens_type.needs_add() && e.add.is_none() {
                c.err(
                    f.add,
                    "An add is required for bifocal, trifocal and progressive lenses.",
                );
            }
            if !self.lens_type.needs_add() && e.add.is_some() {
                c.warn(
                    f.add,
                    "An add on a single-vision prescription: check the lens type.",
                );
            }
        }
        match self.pd {
            None => {}
            Some(Pd::Binocular { mm }) => {
                if !(4000..=8000).contains(&mm.0) {
                    c.err("pd", "PD must be between 40 and 80 mm.");
                } else if !(5000..=7500).contains(&mm.0) {
                    c.warn("pd", "PD outside 50 to 75 mm: please check.");
                }
            }
            Some(Pd::Monocular { od, os }) => {
                if !(2000..=4000).contains(&od.0) {
                    c.err("pd.od", "Monocular PD must be between 20 and 40 mm.");
                }
                if !(2000..=4000).contains(&os.0) {
                    c.err("pd.os", "Monocular PD must be between 20 and 40 mm.");
                }
            }
        }
        if let Some(n) = self.near_pd {
            if !(3500..=8000).contains(&n.0) {
                c.err("near_pd", "Near PD must be between 35 and 80 mm.");
            } else if self.pd.is_some_and(|pd| n > pd.total()) {
                c.warn(
                    "near_pd",
                    "Near PD is larger than the distance PD: please check.",
                );
            }
        }
        if let Some(h) = self.segment_height {
            if !(500..=4000).contains(&h.0) {
                c.err(
                    "segment_height",
                    "Segment height must be between 5 and 40 mm.",
                );
            } else if !self.lens_type.needs_add() {
                c.warn(
                    "segment_height",
                    "A segment height on a single-vision prescription: check the lens type.",
                );
            }
        }
        if let Some(v) = self.vertex_distance {
            if !(500..=3000).contains(&v.0) {
                c.err(
                    "vertex_distance",
                    "Vertex distance must be between 5 and 30 mm.",
                );
            }
        }
        check_prescriber(&mut c, &self.prescriber);
        c.text("notes", &self.notes, NOTES_MAX, true);
        c
    }

    pub fn validate(&self, today: &str) -> Result<(), Vec<FieldError>> {
        self.checks(Some(today)).result()
    }

    pub fn warnings(&self) -> Vec<FieldError> {
        self.checks(None).warnings
    }
}

/// How often contact lenses are replaced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Replacement {
    Daily,
    Weekly,
    TwoWeekly,
    Monthly,
    Quarterly,
    SixMonthly,
    Yearly,
}

impl Replacement {
    pub const ALL: [Replacement; 7] = [
        Replacement::Daily,
        Replacement::Weekly,
        Replacement::TwoWeekly,
        Replacement::Monthly,
        Replacement::Quarterly,
        Replacement::SixMonthly,
        Replacement::Yearly,
    ];
    /// As a FHIR `Quantity`: value, UCUM code (`d`, `wk`, `mo`) and human unit.
    pub fn fhir_duration(self) -> (u32, &'static str, &'static str) {
        match self {
            Replacement::Daily => (1, "d", "day"),
            Replacement::Weekly => (1, "wk", "week"),
            Replacement::TwoWeekly => (2, "wk", "weeks"),
            Replacement::Monthly => (1, "mo", "month"),
            Replacement::Quarterly => (3, "mo", "months"),
            Replacement::SixMonthly => (6, "mo", "months"),
            Replacement::Yearly => (12, "mo", "months"),
        }
    }
    /// From a UCUM duration (`d`, `wk`, `mo`, `a`): the schedule of exactly that length.
    pub fn from_duration(value: u32, ucum: &str) -> Option<Replacement> {
        let days: u32 = match ucum {
            "d" => value,
            "wk" => value.checked_mul(7)?,
            "mo" => value.checked_mul(30)?,
            "a" => value.checked_mul(360)?,
            _ => return None,
        };
        match days {
            1 => Some(Replacement::Daily),
            7 => Some(Replacement::Weekly),
            14 => Some(Replacement::TwoWeekly),
            30 => Some(Replacement::Monthly),
            90 => Some(Replacement::Quarterly),
            180 => Some(Replacement::SixMonthly),
            360 | 365 => Some(Replacement::Yearly),
            _ => None,
        }
    }
}

/// One eye's contact lens.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClEye {
    /// Back vertex (sphere) power.
    pub power: Diopters,
    #[serde(default)]
    pub cylinder: Diopters,
    #[serde(default)]
    pub axis: Option<u16>,
    #[serde(default)]
    pub add: Option<Diopters>,
    /// Base curve radius, hundredths of a mm (6.00..=10.00 mm).
    pub base_curve: Centi,
    /// Diameter, hundredths of a mm (8.00..=16.00 mm).
    pub diameter: Centi,
    /// Tint, free text.
    #[serde(default)]
    pub color: String,
}

struct ClFields {
    eye: EyeFields,
    base_curve: &'static str,
    diameter: &'static str,
    color: &'static str,
}

macro_rules! cl_fields {
    ($p:literal) => {
        ClFields {
            eye: EyeFields {
                sphere: concat!($p, ".power"),
                cylinder: concat!($p, ".cylinder"),
                axis: concat!($p, ".axis"),
                add: concat!($p, ".add"),
                prism: concat!($p, ".prism"),
            },
            base_curve: concat!($p, ".base_curve"),
            diameter: concat!($p, ".diameter"),
            color: concat!($p, ".color"),
        }
    };
}

impl ClEye {
    fn check(&self, f: &ClFields, c: &mut Checks) {
        check_sphere(c, f.eye.sphere, "Power", self.power);
        check_cylinder_axis(c, &f.eye, self.cylinder, self.axis);
        check_add(c, f.eye.add, self.add);
        if !(600..=1000).contains(&self.base_curve.0) {
            c.err(
                f.base_curve,
                "Base curve must be between 6.00 and 10.00 mm.",
            );
        }
        if !(800..=1600).contains(&self.diameter.0) {
            c.err(f.diameter, "Diameter must be between 8.00 and 16.00 mm.");
        }
        c.text(f.color, &self.color, 40, false);
    }
}

/// A contact-lens prescription.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContactLensRx {
    pub status: RxStatus,
    /// `YYYY-MM-DD`.
    pub issued: String,
    /// `YYYY-MM-DD`; `None` means the default, issued + 1 year.
    #[serde(default)]
    pub expiry: Option<String>,
    pub brand: String,
    pub manufacturer: String,
    pub material: String,
    #[serde(default)]
    pub od: Option<ClEye>,
    #[serde(default)]
    pub os: Option<ClEye>,
    #[serde(default)]
    pub replacement: Option<Replacement>,
    pub prescriber: Prescriber,
    #[serde(default)]
    pub notes: String,
    #[serde(default)]
    pub source_exam: Option<Uuid>,
}

impl ContactLensRx {
    pub fn eye(&self, side: Side) -> Option<&ClEye> {
        match side {
            Side::Od => self.od.as_ref(),
            Side::Os => self.os.as_ref(),
        }
    }

    /// The stated expiry, or issued + 1 year.
    pub fn effective_expiry(&self) -> Option<String> {
        self.expiry
            .clone()
            .or_else(|| add_years(&self.issued, CONTACT_LENS_RX_YEARS))
    }

    pub fn is_expired(&self, today: &str) -> bool {
        match (
            self.effective_expiry().as_deref().and_then(parse_date),
            parse_date(today),
        ) {
            (Some(e), Some(t)) => t > e,
            _ => false,
        }
    }

    fn checks(&self, today: Option<&str>) -> Checks {
        let mut c = Checks::default();
        check_dates(
            &mut c,
            &self.issued,
            self.expiry.as_ref(),
            today.and_then(parse_date),
        );
        c.required_text("brand", &self.brand, "The brand", NAME_MAX);
        c.required_text(
            "manufacturer",
            &self.manufacturer,
            "The manufacturer",
            NAME_MAX,
        );
        c.required_text("material", &self.material, "The material", NAME_MAX);
        if self.od.is_none() && self.os.is_none() {
            c.err("od", "Enter at least one eye.");
        }
        if let Some(e) = &self.od {
            e.check(&cl_fields!("od"), &mut c);
        }
        if let Some(e) = &self.os {
            e.check(&cl_fields!("os"), &mut c);
        }
        check_prescriber(&mut c, &self.prescriber);
        c.text("notes", &self.notes, NOTES_MAX, true);
        c
    }

    pub fn validate(&self, today: &str) -> Result<(), Vec<FieldError>> {
        self.checks(Some(today)).result()
    }

    pub fn warnings(&self) -> Vec<FieldError> {
        self.checks(None).warnings
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::chart::refraction::{Prism, PrismBase};
    use proptest::prelude::*;

    pub(crate) fn sample_spectacles() -> SpectacleRx {
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
            pd: Some(Pd::Monocular {
                od: Centi(3150),
                os: Centi(3200),
            }),
            near_pd: Some(Centi(6000)),
            segment_height: Some(Centi(1800)),
            vertex_distance: Some(Centi(1200)),
            notes: "Anti-reflection coating.".into(),
            prescriber: Prescriber {
                account_id: Some(Uuid::new_v4()),
                name: "Dr Iris Lens".into(),
                licence: "OD-4471".into(),
            },
            source_exam: Some(Uuid::new_v4()),
        }
    }

    pub(crate) fn sample_contacts() -> ContactLensRx {
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
                name: "Dr Iris Lens".into(),
                licence: String::new(),
            },
            notes: "Shade treatment for extreme light sensitivity".into(),
            source_exam: None,
        }
    }

    fn fields_s(r: &SpectacleRx) -> Vec<&'static str> {
        r.validate("2026-11-26")
            .err()
            .unwrap_or_default()
            .into_iter()
            .map(|e| e.field)
            .collect()
    }

    fn fields_c(r: &ContactLensRx) -> Vec<&'static str> {
        r.validate("2026-11-26")
            .err()
            .unwrap_or_default()
            .into_iter()
            .map(|e| e.field)
            .collect()
    }

    #[test]
    fn valid_samples() {
        assert_eq!(sample_spectacles().validate("2026-11-26"), Ok(()));
        assert!(sample_spectacles().warnings().is_empty());
        assert_eq!(sample_contacts().validate("2026-11-26"), Ok(()));
    }

    #[test]
    fn expiry_defaults() {
        let s = sample_spectacles();
        assert_eq!(s.effective_expiry().as_deref(), Some("2028-11-20"));
        assert!(!s.is_expired("2028-11-20"));
        assert!(s.is_expired("2028-11-21"));
        let mut c = sample_contacts();
        c.expiry = None;
        assert_eq!(c.effective_expiry().as_deref(), Some("2027-11-20"));
        assert_eq!(add_years("2024-02-29", 2).as_deref(), Some("2026-02-28"));
        assert_eq!(add_years("2024-02-29", 4).as_deref(), Some("2028-02-29"));
        assert_eq!(add_years("9999-01-01", 1), None);
        assert_eq!(add_years("nope", 1), None);
        let mut s = sample_spectacles();
        s.expiry = Some("2026-11-20".into());
        assert_eq!(fields_s(&s), vec!["expiry"]);
        s.issued = "2026-11-27".into();
        assert!(fields_s(&s).contains(&"issued"));
    }

    #[test]
    fn spectacle_rules() {
        let mut s = sample_spectacles();
        s.os.as_mut().unwrap().add = None;
        assert_eq!(fields_s(&s), vec!["os.add"]);
        s.lens_type = LensType::SingleVision;
        assert!(fields_s(&s).is_empty());
        // Add on a single-vision Rx and a segment height: warnings only.
        let w: Vec<_> = s.warnings().into_iter().map(|w| w.field).collect();
        assert_eq!(w, vec!["od.add", "segment_height"]);
        let mut s = sample_spectacles();
        s.od = None;
        s.os = None;
        assert_eq!(fields_s(&s), vec!["od"]);
        let mut s = sample_spectacles();
        s.pd = Some(Pd::Monocular {
            od: Centi(1999),
            os: Centi(4001),
        });
        assert_eq!(fields_s(&s), vec!["pd.od", "pd.os"]);
        let mut s = sample_spectacles();
        s.prescriber.name.clear();
        assert_eq!(fields_s(&s), vec!["prescriber"]);
        let mut s = sample_spectacles();
        s.vertex_distance = Some(Centi(400));
        s.segment_height = Some(Centi(4100));
        s.near_pd = Some(Centi(3400));
        assert_eq!(
            fields_s(&s),
            vec!["near_pd", "segment_height", "vertex_distance"]
        );
        let mut s = sample_spectacles();
        s.near_pd = Some(Centi(6400));
        assert_eq!(s.warnings()[0].field, "near_pd");
    }

    #[test]
    fn contact_lens_rules() {
        let mut c = sample_contacts();
        c.brand.clear();
        c.manufacturer = "  ".into();
        c.material.clear();
        assert_eq!(fields_c(&c), vec!["brand", "manufacturer", "material"]);
        let mut c = sample_contacts();
        c.od.as_mut().unwrap().base_curve = Centi(599);
        c.os.as_mut().unwrap().diameter = Centi(1601);
        assert_eq!(fields_c(&c), vec!["od.base_curve", "os.diameter"]);
        let mut c = sample_contacts();
        c.od.as_mut().unwrap().axis = None;
        c.os.as_mut().unwrap().power = Diopters(-3025);
        assert_eq!(fields_c(&c), vec!["od.axis", "os.power"]);
    }

    #[test]
    fn replacement_durations() {
        for r in Replacement::ALL {
            let (v, code, _) = r.fhir_duration();
            assert_eq!(Replacement::from_duration(v, code), Some(r));
        }
        assert_eq!(
            Replacement::from_duration(14, "d"),
            Some(Replacement::TwoWeekly)
        );
        assert_eq!(
            Replacement::from_duration(1, "a"),
            Some(Replacement::Yearly)
        );
        assert_eq!(Replacement::from_duration(5, "d"), None);
        assert_eq!(Replacement::from_duration(1, "month"), None);
        assert_eq!(Replacement::from_duration(u32::MAX, "mo"), None);
        assert_eq!(
            RxStatus::from_fhir("entered-in-error"),
            Some(RxStatus::EnteredInError)
        );
        assert_eq!(RxStatus::from_fhir("entered_in_error"), None);
    }

    proptest! {
        #[test]
        fn binocular_pd(mm in 0i32..=10_000) {
            let mut s = sample_spectacles();
            s.pd = Some(Pd::Binocular { mm: Centi(mm) });
            s.near_pd = None;
            prop_assert_eq!(fields_s(&s).is_empty(), (4000..=8000).contains(&mm));
            prop_assert_eq!(
                s.warnings().iter().any(|w| w.field == "pd"),
                (4000..=8000).contains(&mm) && !(5000..=7500).contains(&mm)
            );
        }

        #[test]
        fn monocular_pd(od in 0i32..=5000, os in 0i32..=5000) {
            let mut s = sample_spectacles();
            s.pd = Some(Pd::Monocular { od: Centi(od), os: Centi(os) });
            s.near_pd = None;
            let ok = (2000..=4000).contains(&od) && (2000..=4000).contains(&os);
            prop_assert_eq!(fields_s(&s).is_empty(), ok);
        }

        #[test]
        fn cl_base_curve_and_diameter(bc in 0i32..=2000, dia in 0i32..=2000) {
            let mut c = sample_contacts();
            c.od.as_mut().unwrap().base_curve = Centi(bc);
            c.od.as_mut().unwrap().diameter = Centi(dia);
            let ok = (600..=1000).contains(&bc) && (800..=1600).contains(&dia);
            prop_assert_eq!(fields_c(&c).is_empty(), ok);
        }

        #[test]
        fn multifocal_needs_add(lt in 0usize..4, has_add in any::<bool>()) {
            let mut s = sample_spectacles();
            s.lens_type = LensType::ALL[lt];
            s.segment_height = None;
            for e in [s.od.as_mut().unwrap(), s.os.as_mut().unwrap()] {
                e.add = has_add.then_some(Diopters(200));
            }
            prop_assert_eq!(fields_s(&s).is_empty(), has_add || lt == 0);
        }

        #[test]
        fn add_years_never_panics(y in any::<i32>(), s in "[0-9-]{0,12}") {
            let _ = add_years(&s, y);
            let _ = add_years("2024-02-29", y);
        }
    }
}

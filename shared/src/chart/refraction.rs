//! One eye's refraction (sphere, cylinder, axis, add, prism), its rules, and transposition
//! between plus- and minus-cylinder form.
//!
//! Rules (errors unless marked warn):
//! * sphere −30.00…+30.00 D in 0.25 D steps (warn beyond ±20.00 D);
//! * cylinder −10.00…+10.00 D in 0.25 D steps;
//! * axis a whole number 1…180, required when the cylinder is not zero; with no cylinder the axis
//!   is ignored (and dropped by [`EyeRefraction::normalized`]);
//! * add +0.50…+4.00 D in 0.25 D steps (warn outside +0.75…+3.50 D);
//! * prism 0.25…20.00 Δ (any hundredth), base up/down/in/out; at most one vertical (up or down)
//!   and one horizontal (in or out) component per eye.

use serde::{Deserialize, Serialize};

use super::units::{Centi, Diopters};
use super::{Checks, Side};
use crate::domain::FieldError;

pub const SPHERE_MAX: i32 = 3000;
pub const SPHERE_WARN: i32 = 2000;
pub const CYLINDER_MAX: i32 = 1000;
pub const ADD_MIN: i32 = 50;
pub const ADD_MAX: i32 = 400;
pub const ADD_WARN_MIN: i32 = 75;
pub const ADD_WARN_MAX: i32 = 350;
pub const PRISM_MIN: i32 = 25;
pub const PRISM_MAX: i32 = 2000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrismBase {
    Up,
    Down,
    In,
    Out,
}

impl PrismBase {
    pub const ALL: [PrismBase; 4] = [
        PrismBase::Up,
        PrismBase::Down,
        PrismBase::In,
        PrismBase::Out,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            PrismBase::Up => "up",
            PrismBase::Down => "down",
            PrismBase::In => "in",
            PrismBase::Out => "out",
        }
    }
    pub fn parse(s: &str) -> Option<PrismBase> {
        PrismBase::ALL.into_iter().find(|b| b.as_str() == s)
    }
    pub fn is_vertical(self) -> bool {
        matches!(self, PrismBase::Up | PrismBase::Down)
    }
}

/// One prism component: amount in hundredths of a prism diopter and the base direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Prism {
    pub amount: Centi,
    pub base: PrismBase,
}

/// One eye's refraction or spectacle correction.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EyeRefraction {
    pub sphere: Diopters,
    /// Zero when there is no astigmatism correction.
    #[serde(default)]
    pub cylinder: Diopters,
    /// Degrees 1..=180; only meaningful with a cylinder.
    #[serde(default)]
    pub axis: Option<u16>,
    #[serde(default)]
    pub add: Option<Diopters>,
    #[serde(default)]
    pub prism: Vec<Prism>,
}

/// The form field names of one eye's values (`od.sphere`, `refractions.os.axis`, ...).
#[derive(Clone, Copy, Debug)]
pub(crate) struct EyeFields {
    pub sphere: &'static str,
    pub cylinder: &'static str,
    pub axis: &'static str,
    pub add: &'static str,
    pub prism: &'static str,
}

/// `eye_fields!("od")` gives the field names `od.sphere`, `od.cylinder`, ... .
macro_rules! eye_fields {
    ($p:literal) => {
        $crate::chart::refraction::EyeFields {
            sphere: concat!($p, ".sphere"),
            cylinder: concat!($p, ".cylinder"),
            axis: concat!($p, ".axis"),
            add: concat!($p, ".add"),
            prism: concat!($p, ".prism"),
        }
    };
}
pub(crate) use eye_fields;

pub(crate) const OD: EyeFields = eye_fields!("od");
pub(crate) const OS: EyeFields = eye_fields!("os");

pub(crate) fn fields_of(side: Side) -> EyeFields {
    match side {
        Side::Od => OD,
        Side::Os => OS,
    }
}

/// A sphere (or contact-lens power, named by `what`).
pub(crate) fn check_sphere(c: &mut Checks, field: &'static str, what: &str, v: Diopters) {
    if v.0.unsigned_abs() > SPHERE_MAX as u32 {
        c.err(
            field,
            format!("{what} must be between -30.00 and +30.00 D."),
        );
    } else if v.0.unsigned_abs() > SPHERE_WARN as u32 {
        c.warn(field, format!("{what} beyond ±20.00 D: please check."));
    }
    if !v.is_quarter_step() {
        c.err(field, format!("{what} must be in 0.25 D steps."));
    }
}

pub(crate) fn check_cylinder_axis(
    c: &mut Checks,
    f: &EyeFields,
    cylinder: Diopters,
    axis: Option<u16>,
) {
    if cylinder.0.unsigned_abs() > CYLINDER_MAX as u32 {
        c.err(f.cylinder, "Cylinder must be between -10.00 and +10.00 D.");
    }
    if !cylinder.is_quarter_step() {
        c.err(f.cylinder, "Cylinder must be in 0.25 D steps.");
    }
    if !cylinder.is_zero() {
        match axis {
            None => c.err(f.axis, "Axis is required when there is a cylinder."),
            Some(a) if !(1..=180).contains(&a) => {
                c.err(f.axis, "Axis must be a whole number from 1 to 180.")
            }
            Some(_) => {}
        }
    }
}

pub(crate) fn check_add(c: &mut Checks, field: &'static str, add: Option<Diopters>) {
    let Some(add) = add else { return };
    if !(ADD_MIN..=ADD_MAX).contains(&add.0) {
        c.err(field, "Add must be between +0.50 and +4.00 D.");
    } else if !(ADD_WARN_MIN..=ADD_WARN_MAX).contains(&add.0) {
        c.warn(field, "Add outside +0.75 to +3.50 D: please check.");
    }
    if !add.is_quarter_step() {
        c.err(field, "Add must be in 0.25 D steps.");
    }
}

pub(crate) fn check_prisms(c: &mut Checks, field: &'static str, prisms: &[Prism]) {
    for p in prisms {
        if !(PRISM_MIN..=PRISM_MAX).contains(&p.amount.0) {
            c.err(field, "Prism must be between 0.25 and 20.00 Δ.");
        }
    }
    if prisms.iter().filter(|p| p.base.is_vertical()).count() > 1 {
        c.err(
            field,
            "At most one vertical (base up or down) prism per eye.",
        );
    }
    if prisms.iter().filter(|p| !p.base.is_vertical()).count() > 1 {
        c.err(
            field,
            "At most one horizontal (base in or out) prism per eye.",
        );
    }
}

/// An axis in degrees brought into 1..=180 (0 and 180 are the same meridian; 180 is written).
pub fn normalize_axis(a: i32) -> u16 {
    let r = a.rem_euclid(180);
    if r == 0 {
        180
    } else {
        r as u16
    }
}

/// Transposition between plus- and minus-cylinder form, which describe the same lens:
/// sphere' = sphere + cyl, cyl' = −cyl, axis' = axis ± 90 (kept in 1..=180). Applying it twice
/// gives back the original (up to axis normalisation). The axis is rotated when present.
pub fn transpose(
    sphere: Diopters,
    cylinder: Diopters,
    axis: Option<u16>,
) -> (Diopters, Diopters, Option<u16>) {
    (
        Diopters(sphere.0.saturating_add(cylinder.0)),
        Diopters(cylinder.0.saturating_neg()),
        axis.map(|a| normalize_axis(i32::from(a) + 90)),
    )
}

/// Minus-cylinder form: transposes a plus cylinder, leaves anything else as it is.
pub fn to_minus_cylinder(
    sphere: Diopters,
    cylinder: Diopters,
    axis: Option<u16>,
) -> (Diopters, Diopters, Option<u16>) {
    if cylinder.0 > 0 {
        transpose(sphere, cylinder, axis)
    } else {
        (sphere, cylinder, axis)
    }
}

impl EyeRefraction {
    /// Without a cylinder, the axis is dropped.
    pub fn normalized(mut self) -> EyeRefraction {
        if self.cylinder.is_zero() {
            self.axis = None;
        }
        self
    }

    /// The same correction in the other cylinder form (add and prism unchanged).
    pub fn transposed(&self) -> EyeRefraction {
        let (sphere, cylinder, axis) = transpose(self.sphere, self.cylinder, self.axis);
        EyeRefraction {
            sphere,
            cylinder,
            axis,
            ..self.clone()
        }
    }

    /// The same correction in minus-cylinder form.
    pub fn to_minus_cylinder(&self) -> EyeRefraction {
        let (sphere, cylinder, axis) = to_minus_cylinder(self.sphere, self.cylinder, self.axis);
        EyeRefraction {
            sphere,
            cylinder,
            axis,
            ..self.clone()
        }
    }

    /// Spherical equivalent (sphere + cyl / 2) in thousandths of a diopter, exact.
    pub fn spherical_equivalent_milli(&self) -> i64 {
        i64::from(self.sphere.0) * 10 + i64::from(self.cylinder.0) * 5
    }

    /// The two principal meridians (degrees 1..=180) and their powers: the axis meridian has the
    /// sphere's power, the one 90° away sphere + cylinder. `None` without an axis.
    pub fn principal_meridians(&self) -> Option<[(u16, i64); 2]> {
        let axis = self.axis?;
        Some([
            (normalize_axis(i32::from(axis)), i64::from(self.sphere.0)),
            (
                normalize_axis(i32::from(axis) + 90),
                i64::from(self.sphere.0) + i64::from(self.cylinder.0),
            ),
        ])
    }

    /// Power in diopters along the meridian at `degrees`: S + C·sin²(θ − axis).
    pub fn power_at_meridian(&self, degrees: f64) -> f64 {
        let axis = f64::from(self.axis.unwrap_or(180));
        let s = (degrees - axis).to_radians().sin();
        self.sphere.as_f64() + self.cylinder.as_f64() * s * s
    }

    pub(crate) fn check(&self, f: &EyeFields, c: &mut Checks) {
        check_sphere(c, f.sphere, "Sphere", self.sphere);
        check_cylinder_axis(c, f, self.cylinder, self.axis);
        check_add(c, f.add, self.add);
        check_prisms(c, f.prism, &self.prism);
    }

    fn checks(&self, side: Side) -> Checks {
        let mut c = Checks::default();
        self.check(&fields_of(side), &mut c);
        c
    }

    /// Errors with field names `od.sphere`, `os.axis`, ... .
    pub fn validate(&self, side: Side) -> Result<(), Vec<FieldError>> {
        self.checks(side).result()
    }

    pub fn warnings(&self, side: Side) -> Vec<FieldError> {
        self.checks(side).warnings
    }

    /// `-1.00 / -0.50 x 180 add +2.00 0.50 Δ BU`.
    pub fn summary(&self) -> String {
        let mut s = self.sphere.sphere_label();
        if !self.cylinder.is_zero() {
            s.push_str(&format!(" / {}", self.cylinder));
            if let Some(a) = self.axis {
                s.push_str(&format!(" x {a}"));
            }
        } else {
            s.push_str(" DS");
        }
        if let Some(add) = self.add {
            s.push_str(&format!(" add {add}"));
        }
        for p in &self.prism {
            let b = match p.base {
                PrismBase::Up => "BU",
                PrismBase::Down => "BD",
                PrismBase::In => "BI",
                PrismBase::Out => "BO",
            };
            s.push_str(&format!(" {} Δ {b}", p.amount));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn eye(sphere: i32, cylinder: i32, axis: Option<u16>) -> EyeRefraction {
        EyeRefraction {
            sphere: Diopters(sphere),
            cylinder: Diopters(cylinder),
            axis,
            ..Default::default()
        }
    }

    fn fields(e: &EyeRefraction) -> Vec<&'static str> {
        e.validate(Side::Od)
            .err()
            .unwrap_or_default()
            .into_iter()
            .map(|e| e.field)
            .collect()
    }

    fn prism(amount: i32, base: PrismBase) -> Prism {
        Prism {
            amount: Centi(amount),
            base,
        }
    }

    #[test]
    fn edges() {
        assert!(fields(&eye(-3000, 0, None)).is_empty());
        assert!(fields(&eye(3000, 0, None)).is_empty());
        assert_eq!(fields(&eye(-3025, 0, None)), vec!["od.sphere"]);
        assert_eq!(fields(&eye(3025, 0, None)), vec!["od.sphere"]);
        assert_eq!(fields(&eye(-110, 0, None)), vec!["od.sphere"]);
        assert!(fields(&eye(0, -1000, Some(1))).is_empty());
        assert!(fields(&eye(0, 1000, Some(180))).is_empty());
        assert_eq!(fields(&eye(0, -1025, Some(90))), vec!["od.cylinder"]);
        assert_eq!(fields(&eye(0, -30, Some(90))), vec!["od.cylinder"]);
        assert_eq!(fields(&eye(0, -50, Some(0))), vec!["od.axis"]);
        assert_eq!(fields(&eye(0, -50, Some(181))), vec!["od.axis"]);
        assert_eq!(fields(&eye(0, -50, None)), vec!["od.axis"]);
        // No cylinder: the axis is ignored, even a nonsense one.
        assert!(fields(&eye(-100, 0, Some(999))).is_empty());
        assert_eq!(eye(-100, 0, Some(999)).normalized().axis, None);
        // Warnings past ±20.
        assert!(eye(2000, 0, None).warnings(Side::Od).is_empty());
        assert_eq!(eye(-2025, 0, None).warnings(Side::Os)[0].field, "os.sphere");
    }

    #[test]
    fn add_edges() {
        let with_add = |a: i32| EyeRefraction {
            add: Some(Diopters(a)),
            ..eye(0, 0, None)
        };
        assert!(fields(&with_add(50)).is_empty());
        assert!(fields(&with_add(400)).is_empty());
        assert_eq!(fields(&with_add(25)), vec!["od.add"]);
        assert_eq!(fields(&with_add(425)), vec!["od.add"]);
        assert_eq!(fields(&with_add(0)), vec!["od.add"]);
        assert_eq!(fields(&with_add(-100)), vec!["od.add"]);
        assert_eq!(fields(&with_add(110)), vec!["od.add"]);
        assert_eq!(with_add(50).warnings(Side::Od).len(), 1);
        assert!(with_add(75).warnings(Side::Od).is_empty());
        assert!(with_add(350).warnings(Side::Od).is_empty());
        assert_eq!(with_add(375).warnings(Side::Od).len(), 1);
    }

    #[test]
    fn prism_rules() {
        let with = |p: Vec<Prism>| EyeRefraction {
            prism: p,
            ..eye(0, 0, None)
        };
        assert!(fields(&with(vec![
            prism(25, PrismBase::Up),
            prism(2000, PrismBase::In)
        ]))
        .is_empty());
        assert_eq!(
            fields(&with(vec![prism(24, PrismBase::Up)])),
            vec!["od.prism"]
        );
        assert_eq!(
            fields(&with(vec![prism(2001, PrismBase::Out)])),
            vec!["od.prism"]
        );
        assert_eq!(
            fields(&with(vec![
                prism(100, PrismBase::Up),
                prism(100, PrismBase::Down)
            ])),
            vec!["od.prism"]
        );
        assert_eq!(
            fields(&with(vec![
                prism(100, PrismBase::Up),
                prism(50, PrismBase::Up)
            ])),
            vec!["od.prism"]
        );
        assert_eq!(
            fields(&with(vec![
                prism(100, PrismBase::In),
                prism(100, PrismBase::Out)
            ])),
            vec!["od.prism"]
        );
    }

    #[test]
    fn transposition_examples() {
        // +1.00 / +0.50 x 90  ==  +1.50 / -0.50 x 180
        assert_eq!(
            to_minus_cylinder(Diopters(100), Diopters(50), Some(90)),
            (Diopters(150), Diopters(-50), Some(180))
        );
        assert_eq!(
            to_minus_cylinder(Diopters(-200), Diopters(125), Some(180)),
            (Diopters(-75), Diopters(-125), Some(90))
        );
        // Already minus: unchanged.
        assert_eq!(
            to_minus_cylinder(Diopters(-100), Diopters(-50), Some(45)),
            (Diopters(-100), Diopters(-50), Some(45))
        );
        assert_eq!(normalize_axis(0), 180);
        assert_eq!(normalize_axis(270), 90);
        assert_eq!(normalize_axis(-90), 90);
        assert_eq!(eye(-100, -50, Some(180)).summary(), "-1.00 / -0.50 x 180");
        assert_eq!(eye(0, 0, None).summary(), "plano DS");
    }

    fn arb_eye() -> impl Strategy<Value = EyeRefraction> {
        (-120i32..=120, -40i32..=40, 1u16..=180)
            .prop_map(|(s, c, a)| eye(s * 25, c * 25, if c == 0 { None } else { Some(a) }))
    }

    fn base() -> impl Strategy<Value = PrismBase> {
        prop_oneof![
            Just(PrismBase::Up),
            Just(PrismBase::Down),
            Just(PrismBase::In),
            Just(PrismBase::Out)
        ]
    }

    proptest! {
        #[test]
        fn transpose_is_an_involution(e in arb_eye()) {
            prop_assert_eq!(e.transposed().transposed(), e.clone());
            // Minus-cylinder form has no plus cylinder, and is idempotent.
            let m = e.to_minus_cylinder();
            prop_assert!(m.cylinder.0 <= 0);
            prop_assert_eq!(m.to_minus_cylinder(), m.clone());
        }

        #[test]
        fn transpose_keeps_axis_in_range(a in any::<u16>(), s in any::<i32>(), c in any::<i32>()) {
            let (_, _, axis) = transpose(Diopters(s), Diopters(c), Some(a));
            prop_assert!((1..=180).contains(&axis.unwrap()));
        }

        #[test]
        fn transpose_preserves_optics(e in arb_eye(), theta in 0.0f64..180.0) {
            let t = e.transposed();
            prop_assert_eq!(t.spherical_equivalent_milli(), e.spherical_equivalent_milli());
            if let (Some(mut a), Some(mut b)) = (e.principal_meridians(), t.principal_meridians()) {
                a.sort();
                b.sort();
                prop_assert_eq!(a, b);
            }
            prop_assert!((t.power_at_meridian(theta) - e.power_at_meridian(theta)).abs() < 1e-9);
        }

        /// Every in-range quarter step is accepted; every off-step or out-of-range value refused.
        #[test]
        fn sphere_rule(h in -4000i32..=4000) {
            let ok = (-3000..=3000).contains(&h) && h % 25 == 0;
            prop_assert_eq!(fields(&eye(h, 0, None)).is_empty(), ok);
            prop_assert_eq!(
                eye(h, 0, None).warnings(Side::Od).is_empty(),
                !((2001..=3000).contains(&h.abs()))
            );
        }

        #[test]
        fn cylinder_axis_rule(h in -1500i32..=1500, axis in proptest::option::of(0u16..=200)) {
            let cyl_ok = (-1000..=1000).contains(&h) && h % 25 == 0;
            let axis_ok = h == 0 || axis.is_some_and(|a| (1..=180).contains(&a));
            let f = fields(&eye(0, h, axis));
            prop_assert_eq!(f.contains(&"od.cylinder"), !cyl_ok);
            prop_assert_eq!(f.contains(&"od.axis"), !axis_ok);
        }

        #[test]
        fn add_rule(h in -100i32..=600) {
            let e = EyeRefraction { add: Some(Diopters(h)), ..eye(0, 0, None) };
            prop_assert_eq!(fields(&e).is_empty(), (50..=400).contains(&h) && h % 25 == 0);
        }

        #[test]
        fn prism_rule(ps in proptest::collection::vec((0i32..=2500, base()), 0..4)) {
            let prisms: Vec<Prism> = ps.iter().map(|(a, b)| prism(*a, *b)).collect();
            let e = EyeRefraction { prism: prisms.clone(), ..eye(0, 0, None) };
            let amounts_ok = prisms.iter().all(|p| (25..=2000).contains(&p.amount.0));
            let v = prisms.iter().filter(|p| p.base.is_vertical()).count();
            let h = prisms.len() - v;
            prop_assert_eq!(fields(&e).is_empty(), amounts_ok && v <= 1 && h <= 1);
        }

        #[test]
        fn validation_never_panics(s in any::<i32>(), c in any::<i32>(), a in proptest::option::of(any::<u16>()),
                                   add in proptest::option::of(any::<i32>()),
                                   ps in proptest::collection::vec((any::<i32>(), base()), 0..4)) {
            let e = EyeRefraction {
                sphere: Diopters(s), cylinder: Diopters(c), axis: a, add: add.map(Diopters),
                prism: ps.into_iter().map(|(a, b)| prism(a, b)).collect(),
            };
            let _ = e.validate(Side::Os);
            let _ = e.warnings(Side::Os);
            let _ = e.summary();
            let _ = e.transposed().to_minus_cylinder().spherical_equivalent_milli();
            let _ = e.principal_meridians();
        }
    }
}

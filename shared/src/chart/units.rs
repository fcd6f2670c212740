//! Fixed-point units: optical power, millimetres and prism diopters, logMAR.
//!
//! Why integers: powers are prescribed in exact decimal steps (0.25 D) and compared, stepped and
//! summed (transposition, spherical equivalent). Binary floating point cannot represent most of
//! those decimals exactly, so `-0.1 + 0.2`-style errors would leak into step checks and equality.
//!
//! Why hundredths of a diopter rather than quarter-diopters: hundredths represent every step in
//! use exactly (0.25 D refraction, 0.12/0.125-style keratometry readings written to 0.01, FHIR
//! decimals such as 0.5 prism) while the 0.25 D rule stays a one-line validation
//! (`value % 25 == 0`). Quarter units would make any non-quarter value unrepresentable, so an
//! imported or keratometry value could not even be stored to be shown as wrong.
//!
//! In JSON these are plain integers (`"sphere": -225` is −2.25 D).

use serde::{Deserialize, Serialize};
use std::fmt;

/// Parses an optionally signed decimal with at most `decimals` significant fractional digits
/// (further digits must be zeros) into an integer scaled by `10^decimals`. Accepts `+`, `-` and
/// the Unicode minus sign; `.5` and `5.` are accepted. At most 6 integer digits.
pub(crate) fn parse_scaled(s: &str, decimals: u32, allow_sign: bool) -> Option<i64> {
    let s = s.trim();
    let (negative, rest) = if let Some(r) = s.strip_prefix('-') {
        (true, r)
    } else if let Some(r) = s.strip_prefix('\u{2212}') {
        (true, r)
    } else if let Some(r) = s.strip_prefix('+') {
        (false, r)
    } else {
        (false, s)
    };
    if !allow_sign && rest.len() != s.len() {
        return None;
    }
    let (int_part, frac_part) = match rest.split_once('.') {
        Some((i, f)) => (i, f),
        None => (rest, ""),
    };
    if int_part.is_empty() && frac_part.is_empty() {
        return None;
    }
    if int_part.len() > 6
        || frac_part.len() > 12
        || !int_part.bytes().all(|b| b.is_ascii_digit())
        || !frac_part.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let mut value: i64 = 0;
    for b in int_part.bytes() {
        value = value * 10 + i64::from(b - b'0');
    }
    let mut frac_digits = frac_part.bytes();
    for _ in 0..decimals {
        let d = frac_digits.next().map_or(0, |b| i64::from(b - b'0'));
        value = value * 10 + d;
    }
    if frac_digits.any(|b| b != b'0') {
        return None;
    }
    Some(if negative { -value } else { value })
}

/// Formats `value / 10^decimals` with exactly `decimals` fractional digits and a sign only when
/// negative.
pub(crate) fn format_scaled(value: i64, decimals: u32) -> String {
    let scale = 10u64.pow(decimals);
    let abs = value.unsigned_abs();
    let sign = if value < 0 { "-" } else { "" };
    if decimals == 0 {
        return format!("{sign}{abs}");
    }
    format!(
        "{sign}{}.{:0width$}",
        abs / scale,
        abs % scale,
        width = decimals as usize
    )
}

/// Trims trailing zeros of a formatted decimal but keeps at least `keep` fractional digits.
pub(crate) fn trim_zeros(s: String, keep: usize) -> String {
    let Some(dot) = s.find('.') else {
        return s;
    };
    let mut out = s;
    while out.len() > dot + 1 + keep && out.ends_with('0') {
        out.pop();
    }
    if out.ends_with('.') {
        out.pop();
    }
    out
}

/// Optical power in hundredths of a diopter (`-225` is −2.25 D).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Diopters(pub i32);

impl Diopters {
    pub const ZERO: Diopters = Diopters(0);

    pub fn from_hundredths(h: i32) -> Diopters {
        Diopters(h)
    }
    pub fn hundredths(self) -> i32 {
        self.0
    }
    pub fn is_zero(self) -> bool {
        self.0 == 0
    }
    /// Whether the power is a whole number of quarter diopters.
    pub fn is_quarter_step(self) -> bool {
        self.0 % 25 == 0
    }
    pub fn as_f64(self) -> f64 {
        f64::from(self.0) / 100.0
    }

    /// Parses what a clinician types: `+1.25`, `-0.50`, `1.5`, `−2` (Unicode minus), `.75`,
    /// `plano`, `pl` or `DS`/`sph` (all zero). At most two significant decimals.
    pub fn parse(s: &str) -> Result<Diopters, String> {
        let t = s.trim();
        if ["plano", "pl", "ds", "sph"]
            .iter()
            .any(|w| t.eq_ignore_ascii_case(w))
        {
            return Ok(Diopters(0));
        }
        let v = parse_scaled(t, 2, true).ok_or_else(|| {
            format!("“{t}” is not a power in diopters, e.g. +1.25, -0.50, plano.")
        })?;
        i32::try_from(v)
            .map(Diopters)
            .map_err(|_| format!("“{t}” is too large."))
    }

    /// As a sphere is written: `plano` for zero, else like [`fmt::Display`].
    pub fn sphere_label(self) -> String {
        if self.0 == 0 {
            "plano".into()
        } else {
            self.to_string()
        }
    }
}

/// `+1.25`, `-0.50`, `0.00`: always two decimals, `+` on positive powers.
impl fmt::Display for Diopters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plus = if self.0 > 0 { "+" } else { "" };
        write!(f, "{plus}{}", format_scaled(i64::from(self.0), 2))
    }
}

/// A non-negative quantity in hundredths: millimetres (PD, base curve, diameter) or prism
/// diopters. `870` is 8.70 mm.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Centi(pub i32);

impl Centi {
    pub fn from_hundredths(h: i32) -> Centi {
        Centi(h)
    }
    pub fn hundredths(self) -> i32 {
        self.0
    }
    pub fn as_f64(self) -> f64 {
        f64::from(self.0) / 100.0
    }
    /// Parses an unsigned decimal with at most two significant decimals: `8.7`, `14`, `63.5`.
    pub fn parse(s: &str) -> Result<Centi, String> {
        let t = s.trim();
        let v = parse_scaled(t, 2, false).ok_or_else(|| format!("“{t}” is not a number."))?;
        i32::try_from(v)
            .map(Centi)
            .map_err(|_| format!("“{t}” is too large."))
    }
}

/// `8.7`, `14.0`, `0.25`: at least one decimal, no trailing zeros beyond it.
impl fmt::Display for Centi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&trim_zeros(format_scaled(i64::from(self.0), 2), 1))
    }
}

/// Visual acuity as thousandths of logMAR (`97` is logMAR 0.097, about 20/25). Thousandths keep
/// the round trip Snellen → logMAR → Snellen exact for every Snellen denominator up to 20/400
/// and within one display digit beyond (ETDRS letters are 0.02 apart).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct LogMar(pub i32);

impl LogMar {
    pub fn thousandths(self) -> i32 {
        self.0
    }
    pub fn as_f64(self) -> f64 {
        f64::from(self.0) / 1000.0
    }
    /// From a logMAR value, rounded to thousandths (saturating on absurd input).
    pub fn from_f64(v: f64) -> LogMar {
        if !v.is_finite() {
            return LogMar(if v > 0.0 { i32::MAX } else { 0 });
        }
        LogMar((v * 1000.0).round() as i32)
    }
    /// Decimal acuity (`1.0` for 20/20): 10^−logMAR.
    pub fn decimal(self) -> f64 {
        10f64.powf(-self.as_f64())
    }
    /// `20/25`: the Snellen fraction at 20 feet, denominator rounded to a whole number.
    pub fn snellen_feet(self) -> String {
        let den = (20.0 * 10f64.powf(self.as_f64())).round();
        format!("20/{}", den as i64)
    }
    /// `6/7.5`: the Snellen fraction at 6 metres, denominator rounded to 0.1.
    pub fn snellen_metres(self) -> String {
        let tenths = (60.0 * 10f64.powf(self.as_f64())).round() as i64;
        format!("6/{}", trim_zeros(format_scaled(tenths, 1), 0))
    }
    /// `1.0`, `0.8`, `0.63`, `0.05`: two decimals (three below 0.1), trailing zeros trimmed.
    pub fn decimal_string(self) -> String {
        let d = self.decimal();
        if d >= 0.095 {
            trim_zeros(format_scaled((d * 100.0).round() as i64, 2), 1)
        } else {
            trim_zeros(format_scaled((d * 1000.0).round() as i64, 3), 1)
        }
    }
    /// `0.10`, `-0.12`: logMAR to two decimals (rounded half away from zero).
    pub fn logmar_string(self) -> String {
        let v = i64::from(self.0);
        let hundredths = if v >= 0 { (v + 5) / 10 } else { (v - 5) / 10 };
        format_scaled(hundredths, 2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn diopter_parse_examples() {
        let p = |s: &str| Diopters::parse(s).map(|d| d.0);
        assert_eq!(p("+1.25"), Ok(125));
        assert_eq!(p("-0.50"), Ok(-50));
        assert_eq!(p("−2"), Ok(-200));
        assert_eq!(p(".75"), Ok(75));
        assert_eq!(p("-.25"), Ok(-25));
        assert_eq!(p("3."), Ok(300));
        assert_eq!(p("plano"), Ok(0));
        assert_eq!(p("PL"), Ok(0));
        assert_eq!(p("1.250"), Ok(125));
        assert!(p("1.255").is_err());
        assert!(p("").is_err());
        assert!(p("+").is_err());
        assert!(p(".").is_err());
        assert!(p("1,25").is_err());
        assert!(p("--1").is_err());
        assert!(p("1e3").is_err());
        assert!(p("9999999").is_err());
        assert_eq!(Diopters(125).to_string(), "+1.25");
        assert_eq!(Diopters(-50).to_string(), "-0.50");
        assert_eq!(Diopters(0).to_string(), "0.00");
        assert_eq!(Diopters(0).sphere_label(), "plano");
        assert_eq!(Diopters(i32::MIN).to_string(), "-21474836.48");
    }

    #[test]
    fn centi_examples() {
        assert_eq!(Centi::parse("8.7"), Ok(Centi(870)));
        assert_eq!(Centi::parse("14"), Ok(Centi(1400)));
        assert!(Centi::parse("-1").is_err());
        assert_eq!(Centi(870).to_string(), "8.7");
        assert_eq!(Centi(1400).to_string(), "14.0");
        assert_eq!(Centi(25).to_string(), "0.25");
    }

    #[test]
    fn logmar_strings() {
        assert_eq!(LogMar(0).snellen_feet(), "20/20");
        assert_eq!(LogMar(1000).snellen_feet(), "20/200");
        assert_eq!(LogMar(97).snellen_feet(), "20/25");
        assert_eq!(LogMar(97).snellen_metres(), "6/7.5");
        assert_eq!(LogMar(0).snellen_metres(), "6/6");
        assert_eq!(LogMar(0).decimal_string(), "1.0");
        assert_eq!(LogMar(97).decimal_string(), "0.8");
        assert_eq!(LogMar(1301).decimal_string(), "0.05");
        assert_eq!(LogMar(97).logmar_string(), "0.10");
        assert_eq!(LogMar(-125).logmar_string(), "-0.13");
        assert_eq!(LogMar::from_f64(f64::NAN), LogMar(0));
    }

    proptest! {
        #[test]
        fn diopter_format_parse_round_trip(h in -100_000i32..=100_000) {
            let d = Diopters(h);
            prop_assert_eq!(Diopters::parse(&d.to_string()), Ok(d));
            prop_assert_eq!(Diopters::parse(&d.sphere_label()), Ok(d));
        }

        #[test]
        fn diopter_format_shape(h in any::<i32>()) {
            let s = Diopters(h).to_string();
            let digits_after_dot = s.rsplit_once('.').map(|(_, f)| f.len());
            prop_assert_eq!(digits_after_dot, Some(2));
            prop_assert_eq!(s.starts_with('+'), h > 0);
            prop_assert_eq!(s.starts_with('-'), h < 0);
        }

        #[test]
        fn diopter_parse_never_panics(s in "\\PC{0,12}") {
            let _ = Diopters::parse(&s);
            let _ = Centi::parse(&s);
        }

        #[test]
        fn diopter_parse_numeric_strings(i in 0u32..=99, f in 0u32..=99, neg in any::<bool>()) {
            let s = format!("{}{}.{:02}", if neg { "-" } else { "+" }, i, f);
            let want = (i * 100 + f) as i32 * if neg { -1 } else { 1 };
            prop_assert_eq!(Diopters::parse(&s), Ok(Diopters(want)));
        }

        #[test]
        fn centi_round_trip(h in 0i32..=10_000_000) {
            prop_assert_eq!(Centi::parse(&Centi(h).to_string()), Ok(Centi(h)));
        }

        #[test]
        fn logmar_strings_never_panic(v in any::<i32>()) {
            let l = LogMar(v);
            let _ = (l.snellen_feet(), l.snellen_metres(), l.decimal_string(), l.logmar_string());
        }
    }
}

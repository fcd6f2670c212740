//! Visual acuity: entered in the notation the clinic uses (Snellen feet `20/20`, Snellen metres
//! `6/6`, decimal `1.0`, logMAR `0.00`, or one of the low-vision codes CF, HM, LP, NLP), stored as
//! entered *and* normalised to logMAR so entries in different notations can be compared and
//! exported.
//!
//! logMAR = −log10(decimal acuity), decimal = numerator / denominator of the Snellen fraction.
//!
//! The low-vision codes have no measured logMAR. By a widely used convention (and only a
//! convention: the literature varies) they are given: counting fingers (CF) 1.9, hand motion (HM)
//! 2.3, light perception (LP) 2.7, no light perception (NLP) 3.0. They always display as entered.

use serde::{Deserialize, Serialize};

use super::units::{parse_scaled, LogMar};
use super::{Checks, EyeSel};
use crate::domain::FieldError;

/// How an acuity was written down.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VaNotation {
    /// `20/20`
    #[default]
    SnellenFeet,
    /// `6/6`
    SnellenMetres,
    /// `1.0`
    Decimal,
    /// `0.00`
    #[serde(rename = "logmar")]
    LogMar,
}

impl VaNotation {
    pub const ALL: [VaNotation; 4] = [
        VaNotation::SnellenFeet,
        VaNotation::SnellenMetres,
        VaNotation::Decimal,
        VaNotation::LogMar,
    ];
    pub fn label(self) -> &'static str {
        match self {
            VaNotation::SnellenFeet => "Snellen (feet)",
            VaNotation::SnellenMetres => "Snellen (metres)",
            VaNotation::Decimal => "decimal",
            VaNotation::LogMar => "logMAR",
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VaDistance {
    #[default]
    Distance,
    Near,
}

/// sc: without correction, cc: with correction, pinhole.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VaCorrection {
    #[default]
    Sc,
    Cc,
    Pinhole,
}

/// The non-numeric low-vision acuities.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LowVision {
    /// Counting fingers.
    Cf,
    /// Hand motion.
    Hm,
    /// Light perception.
    Lp,
    /// No light perception.
    Nlp,
}

impl LowVision {
    pub const ALL: [LowVision; 4] = [LowVision::Cf, LowVision::Hm, LowVision::Lp, LowVision::Nlp];
    pub fn code(self) -> &'static str {
        match self {
            LowVision::Cf => "CF",
            LowVision::Hm => "HM",
            LowVision::Lp => "LP",
            LowVision::Nlp => "NLP",
        }
    }
    pub fn label(self) -> &'static str {
        match self {
            LowVision::Cf => "counting fingers",
            LowVision::Hm => "hand motion",
            LowVision::Lp => "light perception",
            LowVision::Nlp => "no light perception",
        }
    }
    /// The conventional logMAR equivalent (see the module documentation).
    pub fn logmar(self) -> LogMar {
        LogMar(match self {
            LowVision::Cf => 1900,
            LowVision::Hm => 2300,
            LowVision::Lp => 2700,
            LowVision::Nlp => 3000,
        })
    }
    /// `CF`, `cf`, `counting fingers`, `count fingers`, `hand motion(s)`, `PL`... .
    pub fn parse(s: &str) -> Option<LowVision> {
        let t = s.trim().to_ascii_lowercase();
        let t = t.split_whitespace().collect::<Vec<_>>().join(" ");
        match t.as_str() {
            "cf" | "counting fingers" | "count fingers" | "fc" => Some(LowVision::Cf),
            "hm" | "hand motion" | "hand motions" | "hand movements" => Some(LowVision::Hm),
            "lp" | "pl" | "light perception" | "perception of light" => Some(LowVision::Lp),
            "nlp" | "npl" | "no light perception" | "no perception of light" => {
                Some(LowVision::Nlp)
            }
            _ => None,
        }
    }
}

/// Most and least acuity accepted as a measurement (logMAR −0.5 ≈ 20/6, 2.0 = 20/2000); worse
/// than that is one of the low-vision codes.
pub const LOGMAR_MIN: LogMar = LogMar(-500);
pub const LOGMAR_MAX: LogMar = LogMar(2000);

/// An entry understood.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VaReading {
    /// A Snellen fraction (either notation), both parts in hundredths (`6/7.5` is 600/750).
    Fraction {
        numerator: i64,
        denominator: i64,
    },
    /// Decimal acuity in thousandths.
    Decimal(i64),
    LogMar(LogMar),
    LowVision(LowVision),
}

impl VaReading {
    /// Parses `text` written in `notation`. Low-vision codes are accepted in every notation.
    pub fn parse(notation: VaNotation, text: &str) -> Result<VaReading, String> {
        let t = text.trim();
        if t.is_empty() {
            return Err("Visual acuity is required.".into());
        }
        if let Some(lv) = LowVision::parse(t) {
            return Ok(VaReading::LowVision(lv));
        }
        let reading = match notation {
            VaNotation::SnellenFeet | VaNotation::SnellenMetres => {
                let example = if notation == VaNotation::SnellenFeet {
                    "20/25"
                } else {
                    "6/7.5"
                };
                let bad =
                    || format!("Write a Snellen fraction such as {example}, or CF, HM, LP, NLP.");
                let (n, d) = t.split_once('/').ok_or_else(bad)?;
                let numerator = parse_scaled(n, 2, false).ok_or_else(bad)?;
                let denominator = parse_scaled(d, 2, false).ok_or_else(bad)?;
                if numerator <= 0 || denominator <= 0 {
                    return Err("Both parts of the fraction must be more than zero.".into());
                }
                if numerator > 4000 {
                    return Err("The test distance (first number) is at most 40.".into());
                }
                VaReading::Fraction {
                    numerator,
                    denominator,
                }
            }
            VaNotation::Decimal => {
                let v = parse_scaled(t, 3, false)
                    .ok_or("Write a decimal acuity such as 1.0 or 0.63, or CF, HM, LP, NLP.")?;
                if v <= 0 {
                    return Err("Decimal acuity must be more than zero.".into());
                }
                VaReading::Decimal(v)
            }
            VaNotation::LogMar => {
                let v = parse_scaled(t, 3, true)
                    .ok_or("Write a logMAR value such as 0.10 or -0.08, or CF, HM, LP, NLP.")?;
                VaReading::LogMar(LogMar(v as i32))
            }
        };
        let lm = reading.logmar();
        if lm < LOGMAR_MIN || lm > LOGMAR_MAX {
            return Err(format!(
                "Visual acuity must be between logMAR {} and {} (20/6 to 20/2000); use CF, HM, LP or NLP beyond.",
                LOGMAR_MIN.logmar_string(),
                LOGMAR_MAX.logmar_string()
            ));
        }
        Ok(reading)
    }

    /// The normalised logMAR value, rounded to thousandths.
    pub fn logmar(&self) -> LogMar {
        match *self {
            VaReading::Fraction {
                numerator,
                denominator,
            } => LogMar::from_f64((denominator as f64).log10() - (numerator as f64).log10()),
            VaReading::Decimal(milli) => LogMar::from_f64(3.0 - (milli as f64).log10()),
            VaReading::LogMar(l) => l,
            VaReading::LowVision(lv) => lv.logmar(),
        }
    }
}

/// One visual acuity measurement.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VisualAcuity {
    pub eye: EyeSel,
    pub distance: VaDistance,
    pub correction: VaCorrection,
    pub notation: VaNotation,
    /// Exactly what was entered (trimmed): shown as is.
    pub entered: String,
    /// [`Self::entered`] normalised; must agree with it.
    pub logmar: LogMar,
}

impl VisualAcuity {
    /// Parses and normalises an entry.
    pub fn new(
        eye: EyeSel,
        distance: VaDistance,
        correction: VaCorrection,
        notation: VaNotation,
        text: &str,
    ) -> Result<VisualAcuity, String> {
        let reading = VaReading::parse(notation, text)?;
        Ok(VisualAcuity {
            eye,
            distance,
            correction,
            notation,
            entered: text.trim().to_string(),
            logmar: reading.logmar(),
        })
    }

    /// The entry understood, if it parses.
    pub fn reading(&self) -> Option<VaReading> {
        VaReading::parse(self.notation, &self.entered).ok()
    }

    pub fn low_vision(&self) -> Option<LowVision> {
        match self.reading() {
            Some(VaReading::LowVision(lv)) => Some(lv),
            _ => None,
        }
    }

    /// The acuity written in `notation`: as entered when that is the notation it was entered in
    /// (or a low-vision code), else converted from logMAR.
    pub fn display_in(&self, notation: VaNotation) -> String {
        if let Some(lv) = self.low_vision() {
            return lv.code().to_string();
        }
        if notation == self.notation {
            return self.entered.clone();
        }
        match notation {
            VaNotation::SnellenFeet => self.logmar.snellen_feet(),
            VaNotation::SnellenMetres => self.logmar.snellen_metres(),
            VaNotation::Decimal => self.logmar.decimal_string(),
            VaNotation::LogMar => self.logmar.logmar_string(),
        }
    }

    /// `OD cc distance 20/25`.
    pub fn summary(&self) -> String {
        let corr = match self.correction {
            VaCorrection::Sc => "sc",
            VaCorrection::Cc => "cc",
            VaCorrection::Pinhole => "ph",
        };
        let dist = match self.distance {
            VaDistance::Distance => "distance",
            VaDistance::Near => "near",
        };
        format!("{} {corr} {dist} {}", self.eye.as_str(), self.entered)
    }

    pub(crate) fn check(&self, field: &'static str, c: &mut Checks) {
        c.text(field, &self.entered, 40, false);
        match VaReading::parse(self.notation, &self.entered) {
            Err(e) => c.err(field, e),
            Ok(r) => {
                if r.logmar() != self.logmar {
                    c.err(
                        field,
                        "The stored logMAR value does not match the entry; enter it again.",
                    );
                }
            }
        }
    }

    pub fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut c = Checks::default();
        self.check("visual_acuity", &mut c);
        c.result()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chart::units::format_scaled;
    use proptest::prelude::*;

    fn lm(n: VaNotation, s: &str) -> i32 {
        VaReading::parse(n, s).unwrap().logmar().0
    }

    #[test]
    fn equivalences_are_exact() {
        assert_eq!(lm(VaNotation::SnellenFeet, "20/20"), 0);
        assert_eq!(lm(VaNotation::SnellenMetres, "6/6"), 0);
        assert_eq!(lm(VaNotation::Decimal, "1.0"), 0);
        assert_eq!(lm(VaNotation::LogMar, "0.00"), 0);
        assert_eq!(lm(VaNotation::SnellenFeet, "20/200"), 1000);
        assert_eq!(lm(VaNotation::SnellenMetres, "6/60"), 1000);
        assert_eq!(lm(VaNotation::Decimal, "0.1"), 1000);
        assert_eq!(lm(VaNotation::LogMar, "1.00"), 1000);
        assert_eq!(
            lm(VaNotation::SnellenFeet, "20/40"),
            lm(VaNotation::SnellenMetres, "6/12")
        );
        assert_eq!(lm(VaNotation::SnellenFeet, "20/25"), 97);
        assert_eq!(lm(VaNotation::SnellenMetres, "6/7.5"), 97);
        assert_eq!(lm(VaNotation::SnellenFeet, "20/10"), -301);
    }

    #[test]
    fn low_vision_codes() {
        for n in VaNotation::ALL {
            assert_eq!(lm(n, "CF"), 1900);
            assert_eq!(lm(n, "hm"), 2300);
            assert_eq!(lm(n, "LP"), 2700);
            assert_eq!(lm(n, " NLP "), 3000);
        }
        let va = VisualAcuity::new(
            EyeSel::Od,
            VaDistance::Distance,
            VaCorrection::Sc,
            VaNotation::SnellenMetres,
            "cf",
        )
        .unwrap();
        assert_eq!(va.display_in(VaNotation::SnellenFeet), "CF");
        assert_eq!(va.display_in(VaNotation::LogMar), "CF");
        assert_eq!(va.entered, "cf");
        assert_eq!(va.validate(), Ok(()));
    }

    #[test]
    fn refused_entries() {
        for (n, s) in [
            (VaNotation::SnellenFeet, ""),
            (VaNotation::SnellenFeet, "20"),
            (VaNotation::SnellenFeet, "20/0"),
            (VaNotation::SnellenFeet, "0/20"),
            (VaNotation::SnellenFeet, "20/20/20"),
            (VaNotation::SnellenFeet, "-20/20"),
            (VaNotation::SnellenFeet, "20/4000"),
            (VaNotation::SnellenFeet, "100/20"),
            (VaNotation::Decimal, "0"),
            (VaNotation::Decimal, "-1"),
            (VaNotation::Decimal, "abc"),
            (VaNotation::LogMar, "2.1"),
            (VaNotation::LogMar, "-0.6"),
            (VaNotation::LogMar, "0.1234"),
        ] {
            assert!(VaReading::parse(n, s).is_err(), "{n:?} {s}");
        }
    }

    #[test]
    fn display_conversions() {
        let va = VisualAcuity::new(
            EyeSel::Ou,
            VaDistance::Near,
            VaCorrection::Cc,
            VaNotation::SnellenFeet,
            "20/25",
        )
        .unwrap();
        assert_eq!(va.display_in(VaNotation::SnellenFeet), "20/25");
        assert_eq!(va.display_in(VaNotation::SnellenMetres), "6/7.5");
        assert_eq!(va.display_in(VaNotation::Decimal), "0.8");
        assert_eq!(va.display_in(VaNotation::LogMar), "0.10");
        assert_eq!(va.summary(), "OU cc near 20/25");
    }

    #[test]
    fn tampered_logmar_refused() {
        let mut va = VisualAcuity::new(
            EyeSel::Od,
            VaDistance::Distance,
            VaCorrection::Sc,
            VaNotation::LogMar,
            "0.3",
        )
        .unwrap();
        assert_eq!(va.logmar, LogMar(300));
        va.logmar = LogMar(0);
        assert!(va.validate().is_err());
    }

    proptest! {
        /// 20/D → logMAR → 20/D' with |D' − D| within display rounding: the logMAR is rounded
        /// to 0.001 (a factor 10^0.0005 ≈ 1.00115), so D' is D whenever that error is below
        /// half a unit (every D ≤ 434).
        #[test]
        fn snellen_feet_round_trip(d in 7u32..=2000) {
            let l = lm(VaNotation::SnellenFeet, &format!("20/{d}"));
            let back = LogMar(l).snellen_feet();
            let back: f64 = back.strip_prefix("20/").unwrap().parse().unwrap();
            let tol = f64::from(d) * 0.00116 + 0.5;
            prop_assert!((back - f64::from(d)).abs() <= tol, "20/{} -> {} -> 20/{}", d, l, back);
            if d <= 434 {
                prop_assert_eq!(back, f64::from(d));
            }
        }

        #[test]
        fn snellen_metres_round_trip(tenths in 20u32..=1200) {
            let entered = format_scaled(i64::from(tenths), 1);
            let l = lm(VaNotation::SnellenMetres, &format!("6/{entered}"));
            let back = LogMar(l).snellen_metres();
            let back: f64 = back.strip_prefix("6/").unwrap().parse().unwrap();
            let d = f64::from(tenths) / 10.0;
            prop_assert!((back - d).abs() <= d * 0.00116 + 0.05 + 1e-9, "6/{} -> 6/{}", d, back);
        }

        #[test]
        fn decimal_round_trip(hundredths in 1u32..=300) {
            let d = f64::from(hundredths) / 100.0;
            let l = lm(VaNotation::Decimal, &format_scaled(i64::from(hundredths), 2));
            let back: f64 = LogMar(l).decimal_string().parse().unwrap();
            // Two decimals shown (three below 0.1).
            let unit = if d >= 0.1 { 0.01 } else { 0.001 };
            prop_assert!((back - d).abs() <= d * 0.00116 + unit / 2.0 + 1e-9, "{} -> {}", d, back);
        }

        #[test]
        fn logmar_text_round_trip(l in -500i32..=2000) {
            // logMAR in, logMAR string out (two decimals): within 0.005.
            let entered = format_scaled(i64::from(l), 3);
            let got = lm(VaNotation::LogMar, &entered);
            prop_assert_eq!(got, l);
            let shown: f64 = LogMar(l).logmar_string().parse().unwrap();
            prop_assert!((shown - f64::from(l) / 1000.0).abs() <= 0.005 + 1e-9);
        }

        /// Any notation converted to another and parsed back lands within display rounding of
        /// the original logMAR.
        #[test]
        fn cross_notation(l in -300i32..=1700) {
            let lmar = LogMar(l);
            for (n, s) in [
                (VaNotation::SnellenFeet, lmar.snellen_feet()),
                (VaNotation::SnellenMetres, lmar.snellen_metres()),
                (VaNotation::Decimal, lmar.decimal_string()),
                (VaNotation::LogMar, lmar.logmar_string()),
            ] {
                let back = lm(n, &s);
                // Coarsest display step: decimal acuity to 0.01 near 0.1 (~0.043 logMAR),
                // Snellen metres to 0.1 near 6/6 (~0.0072), logMAR to 0.005.
                prop_assert!((back - l).abs() <= 45, "{:?} {} -> {} -> {}", n, l, s, back);
            }
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,16}", n in 0usize..4) {
            let _ = VaReading::parse(VaNotation::ALL[n], &s);
        }
    }
}

//! The optometry chart: plaintext record types beyond the patient's demographics, their
//! validation, and the unit conversions optometry needs. Like [`crate::domain`], these exist only
//! in the browser (and in native tests); they are sealed into envelopes before leaving it.
//!
//! Conventions shared by every record here:
//!
//! * Validation: `validate(today)` returns *all* errors at once as [`FieldError`]s whose `field`
//!   names the form field (`od.sphere`, `lines.quantity`, ...). Where an error belongs to one
//!   entry of a list (the 2nd refraction, the 3rd invoice line) the field name is the list's
//!   (`refractions.od.axis`) and the message starts with the entry's number ("Refraction 2: ...").
//!   `warnings()` returns problems that do not block saving ("Sphere beyond ±20.00 D: check").
//! * Dates are ISO `YYYY-MM-DD` strings ([`crate::domain::parse_date`]). Points in time are the
//!   clinic's local wall-clock time as `YYYY-MM-DDTHH:MM` (what an HTML `datetime-local` input
//!   gives; see [`parse_datetime`]); a time of day within an exam's date is `HH:MM`
//!   ([`parse_time`]). No time zone is stored: a record is read in the clinic where it was written.
//!   `today` is always passed in by the caller (no clock is read here, so this runs in WASM).
//! * Money is integer cents (`i64`), always with checked arithmetic.
//! * Optical powers are integer hundredths of a diopter ([`Diopters`]); lengths in millimetres
//!   and prism diopters are integer hundredths too ([`Centi`]); visual acuity is normalised to
//!   integer thousandths of logMAR ([`LogMar`]). See [`units`] for why.
//! * Nothing here panics on any input: no `unwrap` on user data, no slicing, saturating or
//!   checked integer arithmetic.

pub mod attachment;
pub mod billing;
pub mod exam;
pub mod refraction;
pub mod rx;
pub mod schedule;
pub mod units;
pub mod va;

pub use attachment::{Attachment, AttachmentCategory, Thumbnail};
pub use billing::{
    check_invoice_edit, check_refund, invoice_balance, next_invoice_number, Balance, Invoice,
    InvoiceLine, InvoiceStatus, InvoiceTotals, Payment, PaymentMethod,
};
pub use exam::{
    check_exam_edit, is_icd10_shape, Amendment, CupDisc, Diagnosis, Dilation, Exam, ExamType,
    History, IopMethod, IopReading, KReading, Laterality, Refraction, RefractionType, Signature,
};
pub use refraction::{
    normalize_axis, to_minus_cylinder, transpose, EyeRefraction, Prism, PrismBase,
};
pub use rx::{
    add_years, ClEye, ContactLensRx, LensType, Pd, Replacement, RxStatus, SpectacleRx,
    CONTACT_LENS_RX_YEARS, SPECTACLE_RX_YEARS,
};
pub use schedule::{
    check_appointment_edit, Appointment, AppointmentStatus, AppointmentType, ContactChannel,
    ContactOutcome, ReminderAbout, ReminderContact,
};
pub use units::{Centi, Diopters, LogMar};
pub use va::{LowVision, VaCorrection, VaDistance, VaNotation, VaReading, VisualAcuity};

use serde::{Deserialize, Serialize};
use time::macros::format_description;
use time::{Date, PrimitiveDateTime, Time};
use uuid::Uuid;

use crate::domain::{parse_date, FieldError};

/// A member of the clinic (an account) as a record names them: the account id and the display
/// name at the time of writing (kept so the record stays readable after the account is gone).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaffRef {
    pub account_id: Uuid,
    pub name: String,
}

impl StaffRef {
    /// Both the account id and the name are present.
    pub fn is_complete(&self) -> bool {
        !self.account_id.is_nil() && !self.name.trim().is_empty()
    }
}

/// Who wrote a prescription. `account_id` is `None` for a prescriber outside the clinic (an
/// imported or transcribed prescription).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Prescriber {
    #[serde(default)]
    pub account_id: Option<Uuid>,
    pub name: String,
    /// Licence or registration number, free text.
    #[serde(default)]
    pub licence: String,
}

/// One eye. `od` (oculus dexter) is the right eye, `os` (oculus sinister) the left.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    #[default]
    Od,
    Os,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Od => "od",
            Side::Os => "os",
        }
    }
    pub fn label(self) -> &'static str {
        match self {
            Side::Od => "right eye",
            Side::Os => "left eye",
        }
    }
}

/// One eye or both (`ou`, oculus uterque), for measurements such as binocular visual acuity.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EyeSel {
    #[default]
    Od,
    Os,
    Ou,
}

impl EyeSel {
    pub fn as_str(self) -> &'static str {
        match self {
            EyeSel::Od => "OD",
            EyeSel::Os => "OS",
            EyeSel::Ou => "OU",
        }
    }
    pub fn label(self) -> &'static str {
        match self {
            EyeSel::Od => "right eye",
            EyeSel::Os => "left eye",
            EyeSel::Ou => "both eyes",
        }
    }
}

/// A value per eye.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PerEye<T> {
    pub od: T,
    pub os: T,
}

impl<T> PerEye<T> {
    pub fn get(&self, side: Side) -> &T {
        match side {
            Side::Od => &self.od,
            Side::Os => &self.os,
        }
    }
    /// Both eyes with their side, right first.
    pub fn sides(&self) -> [(Side, &T); 2] {
        [(Side::Od, &self.od), (Side::Os, &self.os)]
    }
}

/// Parses a clinic-local point in time, `YYYY-MM-DDTHH:MM`.
pub fn parse_datetime(s: &str) -> Option<PrimitiveDateTime> {
    PrimitiveDateTime::parse(
        s,
        format_description!("[year]-[month]-[day]T[hour]:[minute]"),
    )
    .ok()
}

/// Parses a time of day, `HH:MM` (24 hours).
pub fn parse_time(s: &str) -> Option<Time> {
    Time::parse(s, format_description!("[hour]:[minute]")).ok()
}

/// Formats a date as `YYYY-MM-DD` (years 0..=9999, which is all `parse_date` gives).
pub fn format_date(d: Date) -> String {
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

/// `date` moved by `days` (negative: back), for calendars and work lists; `None` for a date
/// that does not parse or a result outside the calendar.
pub fn add_days(date: &str, days: i64) -> Option<String> {
    let d = parse_date(date)?;
    let moved = d.checked_add(time::Duration::days(days))?;
    (0..=9999)
        .contains(&moved.year())
        .then(|| format_date(moved))
}

/// The Monday of the week `date` falls in (ISO weeks).
pub fn week_start(date: &str) -> Option<String> {
    let d = parse_date(date)?;
    add_days(date, -i64::from(d.weekday().number_days_from_monday()))
}

/// The weekday's short English name ("Mon" … "Sun").
pub fn weekday_name(date: &str) -> Option<&'static str> {
    const NAMES: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    let d = parse_date(date)?;
    NAMES
        .get(usize::from(d.weekday().number_days_from_monday()))
        .copied()
}

/// Whole years from `born` to `on` (the age on that day).
pub fn age_on(born: Date, on: Date) -> i32 {
    let mut years = on.year() - born.year();
    if (u8::from(on.month()), on.day()) < (u8::from(born.month()), born.day()) {
        years -= 1;
    }
    years
}

/// Errors and warnings collected by one validation pass.
#[derive(Debug, Default)]
pub(crate) struct Checks {
    pub errors: Vec<FieldError>,
    pub warnings: Vec<FieldError>,
}

impl Checks {
    pub fn err(&mut self, field: &'static str, message: impl Into<String>) {
        self.errors.push(FieldError {
            field,
            message: message.into(),
        });
    }
    pub fn warn(&mut self, field: &'static str, message: impl Into<String>) {
        self.warnings.push(FieldError {
            field,
            message: message.into(),
        });
    }
    /// Runs `f` on a fresh collector and copies its findings here with `prefix` before each
    /// message (for entries of a list: "Refraction 2: ").
    pub fn nested(&mut self, prefix: &str, f: impl FnOnce(&mut Checks)) {
        let mut inner = Checks::default();
        f(&mut inner);
        for mut e in inner.errors {
            e.message = format!("{prefix}{}", e.message);
            self.errors.push(e);
        }
        for mut w in inner.warnings {
            w.message = format!("{prefix}{}", w.message);
            self.warnings.push(w);
        }
    }
    pub fn result(self) -> Result<(), Vec<FieldError>> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(self.errors)
        }
    }

    /// Free text: at most `max` characters, no control characters (newlines and tabs allowed
    /// when `multiline`).
    pub fn text(&mut self, field: &'static str, value: &str, max: usize, multiline: bool) {
        if value.chars().count() > max {
            self.err(field, format!("At most {max} characters."));
        }
        if value
            .chars()
            .any(|c| c.is_control() && !(multiline && (c == '\n' || c == '\t')))
        {
            self.err(field, "Control characters are not allowed.");
        }
    }

    /// A required one-line text.
    pub fn required_text(&mut self, field: &'static str, value: &str, what: &str, max: usize) {
        if value.trim().is_empty() {
            self.err(field, format!("{what} is required."));
        }
        self.text(field, value, max, false);
    }

    /// A date `YYYY-MM-DD`, not after `today` when `not_future` (and `today` parses).
    pub fn date(
        &mut self,
        field: &'static str,
        value: &str,
        what: &str,
        today: Option<Date>,
        not_future: bool,
    ) -> Option<Date> {
        match parse_date(value) {
            None => {
                self.err(field, format!("{what} is required, as YYYY-MM-DD."));
                None
            }
            Some(d) => {
                if not_future && today.is_some_and(|t| d > t) {
                    self.err(field, format!("{what} cannot be in the future."));
                }
                Some(d)
            }
        }
    }

    /// A point in time `YYYY-MM-DDTHH:MM`.
    pub fn datetime(
        &mut self,
        field: &'static str,
        value: &str,
        what: &str,
    ) -> Option<PrimitiveDateTime> {
        let parsed = parse_datetime(value);
        if parsed.is_none() {
            self.err(field, format!("{what} is required, as YYYY-MM-DDTHH:MM."));
        }
        parsed
    }

    /// A reference to a clinic member.
    pub fn staff(&mut self, field: &'static str, who: &StaffRef, what: &str) {
        if !who.is_complete() {
            self.err(field, format!("{what} (account and name) is required."));
        }
        self.text(field, &who.name, NAME_MAX, false);
    }
}

/// Longest name (person, brand, payer...).
pub(crate) const NAME_MAX: usize = 100;
/// Longest one-line text other than names.
pub(crate) const LINE_MAX: usize = 200;
/// Longest free text (notes, findings, plan).
pub(crate) const NOTES_MAX: usize = 4000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetime_and_time_formats() {
        assert!(parse_datetime("2026-11-26T09:30").is_some());
        assert!(parse_datetime("2026-11-26 09:30").is_none());
        assert!(parse_datetime("2026-11-26T24:00").is_none());
        assert!(parse_time("23:59").is_some());
        assert!(parse_time("7:05").is_none());
        assert!(parse_time("").is_none());
    }

    #[test]
    fn ages() {
        let d = |s: &str| parse_date(s).unwrap();
        assert_eq!(age_on(d("2008-11-27"), d("2026-11-26")), 17);
        assert_eq!(age_on(d("2008-11-26"), d("2026-11-26")), 18);
        assert_eq!(age_on(d("2008-02-29"), d("2026-02-28")), 17);
        assert_eq!(age_on(d("2008-02-29"), d("2026-03-01")), 18);
        assert_eq!(format_date(d("0987-01-02")), "0987-01-02");
    }
}

#[cfg(test)]
mod calendar_tests {
    use super::*;

    #[test]
    fn days_move_across_months_years_and_leap_days() {
        assert_eq!(add_days("2026-11-30", 1).as_deref(), Some("2026-12-01"));
        assert_eq!(add_days("2026-12-31", 1).as_deref(), Some("2027-01-01"));
        assert_eq!(add_days("2028-02-28", 1).as_deref(), Some("2028-02-29"));
        assert_eq!(add_days("2026-03-01", -1).as_deref(), Some("2026-02-28"));
        assert_eq!(add_days("9999-12-31", 1), None);
        assert_eq!(add_days("not a date", 1), None);
    }

    #[test]
    fn weeks_start_on_monday() {
        // 2026-11-26 is a Thursday.
        assert_eq!(weekday_name("2026-11-26"), Some("Thu"));
        assert_eq!(week_start("2026-11-26").as_deref(), Some("2026-11-23"));
        assert_eq!(week_start("2026-11-23").as_deref(), Some("2026-11-23"));
        assert_eq!(week_start("2026-11-29").as_deref(), Some("2026-11-23"));
    }
}

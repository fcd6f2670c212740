//! Plaintext domain records. These exist only in the browser (and in native tests): they are
//! serialised to JSON and sealed before anything leaves the client.

use serde::{Deserialize, Serialize};
use time::macros::format_description;
use time::Date;

/// A validation problem tied to one form field, so the UI can show it beside the field.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
}

/// What kind of record a decrypted payload is. Inside the ciphertext, so the server never learns
/// it (only the compartment is visible).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RecordBody {
    /// Compartment `demographics`; the chart root (`chart_id == record_id`).
    Patient(Patient),
    /// Compartment `clinical`; `chart_id` is the patient's record id. A stand-in for the
    /// optometry chart (exams, prescriptions) until that issue lands.
    ClinicalNote(ClinicalNote),
}

/// A free-text clinical note on a patient's chart.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClinicalNote {
    pub text: String,
}

impl ClinicalNote {
    pub fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut errors = Vec::new();
        if self.text.trim().is_empty() {
            errors.push(FieldError {
                field: "note",
                message: "The note is empty.".into(),
            });
        }
        too_long(&mut errors, "note", &self.text, NOTES_MAX);
        if has_control(&self.text, true) {
            errors.push(FieldError {
                field: "note",
                message: "Control characters are not allowed.".into(),
            });
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

/// Administrative sex as in FHIR's AdministrativeGender.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sex {
    Female,
    Male,
    Other,
    #[default]
    Unknown,
}

impl Sex {
    pub const ALL: [Sex; 4] = [Sex::Female, Sex::Male, Sex::Other, Sex::Unknown];
    pub fn as_str(self) -> &'static str {
        match self {
            Sex::Female => "female",
            Sex::Male => "male",
            Sex::Other => "other",
            Sex::Unknown => "unknown",
        }
    }
    pub fn parse(s: &str) -> Option<Sex> {
        Sex::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Address {
    pub line1: String,
    pub line2: String,
    pub city: String,
    pub region: String,
    pub postal_code: String,
    pub country: String,
}

/// A patient's demographics: the chart root record (compartment `demographics`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Patient {
    pub given_name: String,
    pub family_name: String,
    /// ISO 8601 calendar date, `YYYY-MM-DD`.
    pub date_of_birth: String,
    pub sex: Sex,
    pub phone: String,
    pub email: String,
    pub address: Address,
    pub insurance_member_id: String,
    pub notes: String,
}

const NAME_MAX: usize = 100;
const LINE_MAX: usize = 200;
const NOTES_MAX: usize = 4000;

fn too_long(errors: &mut Vec<FieldError>, field: &'static str, value: &str, max: usize) {
    if value.chars().count() > max {
        errors.push(FieldError {
            field,
            message: format!("At most {max} characters."),
        });
    }
}

fn has_control(s: &str, allow_newlines: bool) -> bool {
    s.chars()
        .any(|c| c.is_control() && !(allow_newlines && (c == '\n' || c == '\t')))
}

/// Parses `YYYY-MM-DD` into a calendar date.
pub fn parse_date(s: &str) -> Option<Date> {
    Date::parse(s, format_description!("[year]-[month]-[day]")).ok()
}

impl Patient {
    /// Trims surrounding white space of every field (what the form does before validating).
    pub fn normalized(mut self) -> Patient {
        for f in [
            &mut self.given_name,
            &mut self.family_name,
            &mut self.date_of_birth,
            &mut self.phone,
            &mut self.email,
            &mut self.insurance_member_id,
            &mut self.address.line1,
            &mut self.address.line2,
            &mut self.address.city,
            &mut self.address.region,
            &mut self.address.postal_code,
            &mut self.address.country,
        ] {
            *f = f.trim().to_string();
        }
        self.notes = self.notes.trim_end().to_string();
        self
    }

    /// Checks every field; `today` is the caller's current date (`YYYY-MM-DD`).
    pub fn validate(&self, today: &str) -> Result<(), Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut err = |field: &'static str, message: &str| {
            errors.push(FieldError {
                field,
                message: message.to_string(),
            })
        };
        if self.given_name.is_empty() {
            err("given_name", "Given name is required.");
        }
        if self.family_name.is_empty() {
            err("family_name", "Family name is required.");
        }
        match parse_date(&self.date_of_birth) {
            None => err("date_of_birth", "Date of birth is required, as YYYY-MM-DD."),
            Some(dob) => {
                if let Some(today) = parse_date(today) {
                    if dob > today {
                        err("date_of_birth", "Date of birth cannot be in the future.");
                    } else if today.year() - dob.year() > 130 {
                        err("date_of_birth", "Date of birth is more than 130 years ago.");
                    }
                }
            }
        }
        if !self.phone.is_empty() {
            let digits = self.phone.chars().filter(|c| c.is_ascii_digit()).count();
            let allowed = self
                .phone
                .chars()
                .all(|c| c.is_ascii_digit() || " +-().".contains(c));
            if !allowed || !(7..=15).contains(&digits) || self.phone.len() > 25 {
                err(
                    "phone",
                    "Phone must have 7 to 15 digits (spaces, + - ( ) . allowed).",
                );
            }
        }
        if !self.email.is_empty() && !valid_email(&self.email) {
            err("email", "Email must look like name@example.org.");
        }
        if !self.insurance_member_id.is_empty() {
            let ok = self.insurance_member_id.len() <= 40
                && self
                    .insurance_member_id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == ' ');
            if !ok {
                err(
                    "insurance_member_id",
                    "Member id: up to 40 letters, digits, spaces or dashes.",
                );
            }
        }
        too_long(&mut errors, "given_name", &self.given_name, NAME_MAX);
        too_long(&mut errors, "family_name", &self.family_name, NAME_MAX);
        too_long(&mut errors, "address.line1", &self.address.line1, LINE_MAX);
        too_long(&mut errors, "address.line2", &self.address.line2, LINE_MAX);
        too_long(&mut errors, "address.city", &self.address.city, NAME_MAX);
        too_long(
            &mut errors,
            "address.region",
            &self.address.region,
            NAME_MAX,
        );
        too_long(
            &mut errors,
            "address.postal_code",
            &self.address.postal_code,
            20,
        );
        too_long(
            &mut errors,
            "address.country",
            &self.address.country,
            NAME_MAX,
        );
        too_long(&mut errors, "notes", &self.notes, NOTES_MAX);
        for (field, value) in [
            ("given_name", &self.given_name),
            ("family_name", &self.family_name),
            ("address.line1", &self.address.line1),
            ("address.line2", &self.address.line2),
            ("address.city", &self.address.city),
            ("address.region", &self.address.region),
            ("address.postal_code", &self.address.postal_code),
            ("address.country", &self.address.country),
        ] {
            if has_control(value, false) {
                errors.push(FieldError {
                    field,
                    message: "Control characters are not allowed.".into(),
                });
            }
        }
        if has_control(&self.notes, true) {
            errors.push(FieldError {
                field: "notes",
                message: "Control characters are not allowed.".into(),
            });
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// "Family, Given" for lists.
    pub fn display_name(&self) -> String {
        format!("{}, {}", self.family_name, self.given_name)
    }

    /// Whether every word of `query` occurs (case-insensitively) in the name, date of birth,
    /// phone, email or member id. An empty query matches everything.
    pub fn matches(&self, query: &str) -> bool {
        let hay = format!(
            "{} {} {} {} {} {}",
            self.given_name,
            self.family_name,
            self.date_of_birth,
            self.phone,
            self.email,
            self.insurance_member_id
        )
        .to_lowercase();
        let phone_digits: String = self.phone.chars().filter(|c| c.is_ascii_digit()).collect();
        query.split_whitespace().all(|w| {
            let w = w.to_lowercase();
            hay.contains(&w) || (w.chars().all(|c| c.is_ascii_digit()) && phone_digits.contains(&w))
        })
    }
}

fn valid_email(s: &str) -> bool {
    if s.len() > 254 || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    let Some((local, domain)) = s.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && !local.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jane() -> Patient {
        Patient {
            given_name: "Jane".into(),
            family_name: "Doe".into(),
            date_of_birth: "1980-02-29".into(),
            sex: Sex::Female,
            phone: "+1 (555) 010-2030".into(),
            email: "jane@example.org".into(),
            insurance_member_id: "VSP-12345".into(),
            ..Default::default()
        }
    }

    #[test]
    fn valid_patient() {
        assert_eq!(jane().validate("2026-11-26"), Ok(()));
    }

    #[test]
    fn field_errors() {
        let fields = |p: Patient| -> Vec<&'static str> {
            p.validate("2026-11-26")
                .unwrap_err()
                .into_iter()
                .map(|e| e.field)
                .collect()
        };
        let mut p = jane();
        p.given_name.clear();
        assert_eq!(fields(p), vec!["given_name"]);
        let mut p = jane();
        p.date_of_birth = "1981-02-29".into(); // not a leap year
        assert_eq!(fields(p), vec!["date_of_birth"]);
        let mut p = jane();
        p.date_of_birth = "2026-11-27".into();
        assert_eq!(fields(p), vec!["date_of_birth"]);
        let mut p = jane();
        p.date_of_birth = "1890-01-01".into();
        assert_eq!(fields(p), vec!["date_of_birth"]);
        let mut p = jane();
        p.phone = "12345".into();
        assert_eq!(fields(p), vec!["phone"]);
        let mut p = jane();
        p.email = "jane@localhost".into();
        assert_eq!(fields(p), vec!["email"]);
        let mut p = jane();
        p.insurance_member_id = "x;DROP".into();
        assert_eq!(fields(p), vec!["insurance_member_id"]);
        let mut p = jane();
        p.notes = "n".repeat(4001);
        assert_eq!(fields(p), vec!["notes"]);
        let mut p = jane();
        p.family_name = "Doe\u{0}".into();
        assert_eq!(fields(p), vec!["family_name"]);
    }

    #[test]
    fn search_matches_words_and_phone_digits() {
        let p = jane();
        assert!(p.matches(""));
        assert!(p.matches("doe jan"));
        assert!(p.matches("5550102030"));
        assert!(p.matches("1980-02"));
        assert!(!p.matches("smith"));
    }

    #[test]
    fn body_is_tagged() {
        let j = serde_json::to_value(RecordBody::Patient(jane())).unwrap();
        assert_eq!(j["kind"], "patient");
    }
}

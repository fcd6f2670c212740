//! Plaintext domain records. These exist only in the browser (and in native tests): they are
//! serialised to JSON and sealed before anything leaves the client.

use serde::{Deserialize, Serialize};
use time::macros::format_description;
use time::Date;
use uuid::Uuid;

use crate::chart::{
    age_on, Appointment, Attachment, ContactLensRx, Exam, Invoice, Payment, ReminderContact,
    SpectacleRx,
};
use crate::envelope::Compartment;
use crate::patient_index::PatientIndexShard;

/// A validation problem tied to one form field, so the UI can show it beside the field.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
}

/// What kind of record a decrypted payload is. Inside the ciphertext, so the server never learns
/// it (only the compartment is visible). Every record but the patient has `chart_id` = the
/// patient's record id. The serde tag is `kind` (see [`RecordBody::kind`]), so no record type
/// has a top-level field of that name.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[allow(clippy::large_enum_variant)]
pub enum RecordBody {
    /// `patient`, compartment `demographics`; the chart root (`chart_id == record_id`).
    Patient(Patient),
    /// `clinical_note`, compartment `clinical`: free text.
    ClinicalNote(ClinicalNote),
    /// `exam`, compartment `clinical`.
    Exam(Exam),
    /// `spectacle_rx`, compartment `prescriptions`.
    SpectacleRx(SpectacleRx),
    /// `contact_lens_rx`, compartment `prescriptions`.
    ContactLensRx(ContactLensRx),
    /// `appointment`, compartment `demographics`.
    Appointment(Appointment),
    /// `reminder_contact`, compartment `demographics`: one recall or appointment reminder.
    ReminderContact(ReminderContact),
    /// `invoice`, compartment `billing` (also credit notes).
    Invoice(Invoice),
    /// `payment`, compartment `billing` (also refunds).
    Payment(Payment),
    /// `attachment`, compartment `clinical`: metadata of an uploaded file.
    Attachment(Attachment),
    /// `patient_index`, compartment `demographics`: one shard of the clinic's patient index
    /// (chart = the clinic, record id from [`crate::patient_index::shard_record_id`]).
    PatientIndex(PatientIndexShard),
}

impl RecordBody {
    /// Every `kind` tag, in declaration order.
    pub const KINDS: [&'static str; 11] = [
        "patient",
        "clinical_note",
        "exam",
        "spectacle_rx",
        "contact_lens_rx",
        "appointment",
        "reminder_contact",
        "invoice",
        "payment",
        "attachment",
        "patient_index",
    ];

    /// The serde tag of this record (`"patient"`, `"spectacle_rx"`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            RecordBody::Patient(_) => "patient",
            RecordBody::ClinicalNote(_) => "clinical_note",
            RecordBody::Exam(_) => "exam",
            RecordBody::SpectacleRx(_) => "spectacle_rx",
            RecordBody::ContactLensRx(_) => "contact_lens_rx",
            RecordBody::Appointment(_) => "appointment",
            RecordBody::ReminderContact(_) => "reminder_contact",
            RecordBody::Invoice(_) => "invoice",
            RecordBody::Payment(_) => "payment",
            RecordBody::Attachment(_) => "attachment",
            RecordBody::PatientIndex(_) => "patient_index",
        }
    }

    /// Whether the record may no longer be changed by writing an earlier content again: a signed
    /// exam (only amendments), a posted invoice (only credit notes), a prescription past draft
    /// (only its status moves on). Restoring an old version is refused for these.
    pub fn is_locked(&self) -> bool {
        use crate::chart::billing::InvoiceStatus;
        use crate::chart::rx::RxStatus;
        match self {
            RecordBody::Exam(e) => e.signed.is_some(),
            RecordBody::Invoice(i) => i.status == InvoiceStatus::Posted,
            RecordBody::SpectacleRx(r) => r.status != RxStatus::Draft,
            RecordBody::ContactLensRx(r) => r.status != RxStatus::Draft,
            _ => false,
        }
    }

    /// The compartment (and so the key) the record is sealed under.
    pub fn compartment(&self) -> Compartment {
        match self {
            RecordBody::Patient(_)
            | RecordBody::Appointment(_)
            | RecordBody::ReminderContact(_)
            | RecordBody::PatientIndex(_) => Compartment::Demographics,
            RecordBody::Exam(_) | RecordBody::ClinicalNote(_) | RecordBody::Attachment(_) => {
                Compartment::Clinical
            }
            RecordBody::SpectacleRx(_) | RecordBody::ContactLensRx(_) => Compartment::Prescriptions,
            RecordBody::Invoice(_) | RecordBody::Payment(_) => Compartment::Billing,
        }
    }

    /// Validates whatever record this is; `today` is the caller's date (`YYYY-MM-DD`).
    pub fn validate(&self, today: &str) -> Result<(), Vec<FieldError>> {
        match self {
            RecordBody::Patient(p) => p.validate(today),
            RecordBody::ClinicalNote(n) => n.validate(),
            RecordBody::Exam(e) => e.validate(today),
            RecordBody::SpectacleRx(r) => r.validate(today),
            RecordBody::ContactLensRx(r) => r.validate(today),
            RecordBody::Appointment(a) => a.validate(),
            RecordBody::ReminderContact(r) => r.validate(),
            RecordBody::Invoice(i) => i.validate(today),
            RecordBody::Payment(p) => p.validate(today),
            RecordBody::Attachment(a) => a.validate(today),
            // Checked against where it is stored when it is opened (`PatientIndexShard::check`).
            RecordBody::PatientIndex(_) => Ok(()),
        }
    }

    /// Non-blocking warnings (records without warning rules have none).
    pub fn warnings(&self) -> Vec<FieldError> {
        match self {
            RecordBody::Exam(e) => e.warnings(),
            RecordBody::SpectacleRx(r) => r.warnings(),
            RecordBody::ContactLensRx(r) => r.warnings(),
            _ => Vec::new(),
        }
    }
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

/// Whether the patient is seen at the clinic.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PatientStatus {
    #[default]
    Active,
    Inactive,
    Deceased,
}

/// A parent or legal guardian; required for a patient under 18.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Guardian {
    pub name: String,
    /// "mother", "legal guardian", ...
    pub relationship: String,
    pub phone: String,
}

/// One insurance plan.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Insurance {
    pub payer: String,
    pub member_id: String,
    #[serde(default)]
    pub group: String,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentType {
    #[default]
    Treatment,
    Privacy,
    DataSharing,
    Telehealth,
    Photography,
    /// Being contacted for recalls and reminders.
    Reminders,
    Other,
}

/// A consent the patient (or guardian) signed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Consent {
    pub consent_type: ConsentType,
    /// `YYYY-MM-DD`.
    pub signed_at: String,
    /// Record id of the scanned form (an attachment), if any.
    #[serde(default)]
    pub document: Option<Uuid>,
}

/// A patient's demographics: the chart root record (compartment `demographics`).
///
/// Fields after `notes` were added with the optometry chart; each has a serde default so records
/// written before still open.
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
    /// The primary plan's member id (kept from before `insurance`; shown in lists and search).
    pub insurance_member_id: String,
    pub notes: String,
    /// The clinic's own chart number, free form (empty if unused).
    #[serde(default)]
    pub chart_number: String,
    #[serde(default)]
    pub status: PatientStatus,
    /// Required while the patient is under 18.
    #[serde(default)]
    pub guardian: Option<Guardian>,
    #[serde(default)]
    pub insurance: Vec<Insurance>,
    #[serde(default)]
    pub consents: Vec<Consent>,
    /// When the patient is next due for a recall exam, `YYYY-MM-DD`.
    #[serde(default)]
    pub recall_due: Option<String>,
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
        self.chart_number = self.chart_number.trim().to_string();
        if let Some(g) = &mut self.guardian {
            for f in [&mut g.name, &mut g.relationship, &mut g.phone] {
                *f = f.trim().to_string();
            }
        }
        for i in &mut self.insurance {
            for f in [&mut i.payer, &mut i.member_id, &mut i.group] {
                *f = f.trim().to_string();
            }
        }
        if let Some(r) = &mut self.recall_due {
            *r = r.trim().to_string();
        }
        self
    }

    /// Whether the patient is under 18 on `today` (`YYYY-MM-DD`); `false` if either date does
    /// not parse.
    pub fn is_minor(&self, today: &str) -> bool {
        match (parse_date(&self.date_of_birth), parse_date(today)) {
            (Some(dob), Some(today)) => dob <= today && age_on(dob, today) < 18,
            _ => false,
        }
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
        if !self.phone.is_empty() && !valid_phone(&self.phone) {
            err("phone", PHONE_RULE);
        }
        if !self.email.is_empty() && !valid_email(&self.email) {
            err("email", "Email must look like name@example.org.");
        }
        if !self.insurance_member_id.is_empty() && !valid_member_id(&self.insurance_member_id) {
            err("insurance_member_id", MEMBER_ID_RULE);
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
        self.validate_chart_fields(today, &mut errors);
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// The fields added with the optometry chart.
    fn validate_chart_fields(&self, today: &str, errors: &mut Vec<FieldError>) {
        let mut err =
            |field: &'static str, message: String| errors.push(FieldError { field, message });
        let one_line = |s: &str, max: usize| s.chars().count() <= max && !has_control(s, false);
        if !self.chart_number.is_empty() {
            let ok = self.chart_number.len() <= 20
                && self
                    .chart_number
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-/.".contains(c));
            if !ok {
                err(
                    "chart_number",
                    "Chart number: up to 20 letters, digits or - / .".into(),
                );
            }
        }
        match &self.guardian {
            None => {
                if self.is_minor(today) {
                    err(
                        "guardian.name",
                        "A parent or guardian is required for a patient under 18.".into(),
                    );
                }
            }
            Some(g) => {
                if g.name.trim().is_empty() {
                    err("guardian.name", "The guardian's name is required.".into());
                } else if !one_line(&g.name, NAME_MAX) {
                    err(
                        "guardian.name",
                        format!("At most {NAME_MAX} characters, no control characters."),
                    );
                }
                if g.relationship.trim().is_empty() {
                    err(
                        "guardian.relationship",
                        "The relationship to the patient is required.".into(),
                    );
                } else if !one_line(&g.relationship, 50) {
                    err(
                        "guardian.relationship",
                        "At most 50 characters, no control characters.".into(),
                    );
                }
                if g.phone.is_empty() {
                    err("guardian.phone", "The guardian's phone is required.".into());
                } else if !valid_phone(&g.phone) {
                    err("guardian.phone", PHONE_RULE.into());
                }
            }
        }
        for (i, ins) in self.insurance.iter().enumerate() {
            let n = i + 1;
            if ins.payer.trim().is_empty() || !one_line(&ins.payer, NAME_MAX) {
                err(
                    "insurance.payer",
                    format!(
                        "Insurance {n}: the payer is required (at most {NAME_MAX} characters)."
                    ),
                );
            }
            if !valid_member_id(&ins.member_id) {
                err(
                    "insurance.member_id",
                    format!("Insurance {n}: {MEMBER_ID_RULE} Required."),
                );
            }
            if !ins.group.is_empty() && !valid_member_id(&ins.group) {
                err(
                    "insurance.group",
                    format!("Insurance {n}: group: up to 40 letters, digits, spaces or dashes."),
                );
            }
        }
        let today = parse_date(today);
        for (i, c) in self.consents.iter().enumerate() {
            let n = i + 1;
            match parse_date(&c.signed_at) {
                None => err(
                    "consents.signed_at",
                    format!("Consent {n}: the signing date is required, as YYYY-MM-DD."),
                ),
                Some(d) if today.is_some_and(|t| d > t) => err(
                    "consents.signed_at",
                    format!("Consent {n}: the signing date cannot be in the future."),
                ),
                Some(_) => {}
            }
            if c.document.is_some_and(|d| d.is_nil()) {
                err(
                    "consents.document",
                    format!("Consent {n}: choose the scanned form."),
                );
            }
        }
        if let Some(r) = &self.recall_due {
            if parse_date(r).is_none() {
                err("recall_due", "The recall date must be YYYY-MM-DD.".into());
            }
        }
    }

    /// "Family, Given" for lists.
    pub fn display_name(&self) -> String {
        format!("{}, {}", self.family_name, self.given_name)
    }

    /// Whether every word of `query` occurs (case-insensitively) in the name, date of birth,
    /// phone, email, member id or chart number, allowing a typo in names. An empty query matches
    /// everything.
    pub fn matches(&self, query: &str) -> bool {
        self.search_rank(query).is_some()
    }

    /// How well the patient matches `query`, for ordering results as the user types: `Some(0)`
    /// when every word occurs as typed, `Some(1)` when a word only matches a name with a typo
    /// (one edit for words of 4 to 7 letters, two from 8: a swap, a missing, extra or wrong
    /// letter), `None` when some word matches nothing.
    pub fn search_rank(&self, query: &str) -> Option<u8> {
        self.search_key().rank(&query_words(query))
    }

    /// The patient's searchable text, lower-cased once (a list searches on every keystroke).
    pub fn search_key(&self) -> SearchKey {
        SearchKey {
            hay: format!(
                "{} {} {} {} {} {} {}",
                self.given_name,
                self.family_name,
                self.date_of_birth,
                self.phone,
                self.email,
                self.insurance_member_id,
                self.chart_number
            )
            .to_lowercase(),
            digits: self.phone.chars().filter(|c| c.is_ascii_digit()).collect(),
            names: format!("{} {}", self.given_name, self.family_name).to_lowercase(),
        }
    }
}

/// The words of a search, lower-cased.
pub fn query_words(query: &str) -> Vec<String> {
    query.split_whitespace().map(str::to_lowercase).collect()
}

/// What search looks at in one patient record, prepared once per version.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SearchKey {
    hay: String,
    digits: String,
    names: String,
}

impl SearchKey {
    /// See [`Patient::search_rank`]; `words` from [`query_words`].
    pub fn rank(&self, words: &[String]) -> Option<u8> {
        let mut rank = 0;
        for w in words {
            let exact = self.hay.contains(w.as_str())
                || (w.chars().all(|c| c.is_ascii_digit()) && self.digits.contains(w.as_str()));
            if exact {
                continue;
            }
            if self
                .names
                .split(|c: char| c.is_whitespace() || c == '-' || c == '\'')
                .any(|token| near(w, token))
            {
                rank = 1;
                continue;
            }
            return None;
        }
        Some(rank)
    }
}

/// Whether a typed word is a name token, or the start of one, with a typo or two (Damerau-
/// Levenshtein over characters, so a swapped pair counts once). Short words must match exactly:
/// with three letters almost everything is one edit away.
fn near(word: &str, token: &str) -> bool {
    let n = word.chars().count();
    let allowed = match n {
        0..=3 => return false,
        4..=7 => 1,
        _ => 2,
    };
    if token.is_empty() {
        return false;
    }
    // Against the whole token, and against its start (the user is still typing).
    let start: String = token.chars().take(n).collect();
    strsim::damerau_levenshtein(word, token) <= allowed
        || strsim::damerau_levenshtein(word, &start) <= allowed
}

const PHONE_RULE: &str = "Phone must have 7 to 15 digits (spaces, + - ( ) . allowed).";
const MEMBER_ID_RULE: &str = "Member id: up to 40 letters, digits, spaces or dashes.";

fn valid_phone(s: &str) -> bool {
    let digits = s.chars().filter(|c| c.is_ascii_digit()).count();
    let allowed = s
        .chars()
        .all(|c| c.is_ascii_digit() || " +-().".contains(c));
    allowed && (7..=15).contains(&digits) && s.len() <= 25
}

fn valid_member_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 40
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == ' ')
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
    #[test]
    fn signed_posted_and_issued_records_are_locked_against_restoring() {
        use crate::chart::billing::{Invoice, InvoiceStatus};
        use crate::chart::exam::Exam;
        use crate::chart::rx::{RxStatus, SpectacleRx};
        let mut exam = Exam::default();
        assert!(!RecordBody::Exam(exam.clone()).is_locked());
        exam.signed = Some(Default::default());
        assert!(RecordBody::Exam(exam).is_locked());
        let mut inv = Invoice::default();
        assert!(!RecordBody::Invoice(inv.clone()).is_locked());
        inv.status = InvoiceStatus::Posted;
        assert!(RecordBody::Invoice(inv).is_locked());
        let mut rx = SpectacleRx {
            status: RxStatus::Draft,
            ..Default::default()
        };
        assert!(!RecordBody::SpectacleRx(rx.clone()).is_locked());
        rx.status = RxStatus::Active;
        assert!(RecordBody::SpectacleRx(rx).is_locked());
        assert!(!RecordBody::Patient(Patient::default()).is_locked());
    }

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

#[cfg(test)]
mod search_tests {
    use super::*;

    fn p() -> Patient {
        Patient {
            given_name: "Margaret".into(),
            family_name: "O'Sullivan-Hayes".into(),
            date_of_birth: "1948-03-09".into(),
            phone: "+1 (312) 555-0142".into(),
            email: "maggie@example.org".into(),
            chart_number: "C-10442".into(),
            ..Default::default()
        }
    }

    #[test]
    fn exact_words_rank_first() {
        assert_eq!(p().search_rank("marg"), Some(0));
        assert_eq!(p().search_rank("sullivan 1948"), Some(0));
        assert_eq!(
            p().search_rank("3125550142"),
            Some(0),
            "digits typed without the formatting"
        );
        assert_eq!(
            p().search_rank("3125550143"),
            None,
            "numbers are never fuzzy"
        );
        assert_eq!(p().search_rank("5550142"), Some(0));
        assert_eq!(p().search_rank("c-10442"), Some(0));
        assert_eq!(p().search_rank(""), Some(0));
    }

    #[test]
    fn names_tolerate_a_typo_while_typing() {
        assert_eq!(p().search_rank("margret"), Some(1), "a missing letter");
        assert_eq!(p().search_rank("mragaret"), Some(1), "a swapped pair");
        assert_eq!(p().search_rank("sulivan"), Some(1));
        assert_eq!(p().search_rank("hayse"), Some(1));
        assert_eq!(
            p().search_rank("osullivan"),
            Some(1),
            "the apostrophe left out"
        );
        assert_eq!(
            p().search_rank("sollevann"),
            None,
            "three edits is too many"
        );
        assert_eq!(
            p().search_rank("mrg"),
            None,
            "three letters must match exactly"
        );
        assert_eq!(p().search_rank("smith"), None);
        assert_eq!(p().search_rank("margret 1948"), Some(1));
        assert_eq!(
            p().search_rank("margret 1949"),
            None,
            "dates are never fuzzy"
        );
    }
}

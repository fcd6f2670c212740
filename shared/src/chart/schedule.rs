//! Scheduling (compartment `demographics`): appointments and the log of reminder contacts.
//!
//! Both live in a patient's chart (the envelope's `chart_id` is the patient's record id), so
//! neither names the patient again: a second copy could only disagree with the envelope.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{parse_date, Checks, StaffRef, LINE_MAX, NOTES_MAX};
use crate::domain::FieldError;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AppointmentType {
    #[default]
    Comprehensive,
    ContactLens,
    FollowUp,
    Medical,
    Dispensing,
    Other,
}

/// Where an appointment stands.
///
/// ```text
/// booked ──► arrived ──► in_exam ──► completed
///   │  ▲        │  ▲        │            ▲
///   │  └────────┘  └────────┘            │
///   │   (undo)   (undo)   arrived ───────┘
///   ├──► cancelled      (arrived ──► cancelled too)
///   └──► no_show
/// ```
/// `completed`, `cancelled` and `no_show` are final: to see the patient again, book a new
/// appointment ([`Appointment::rebook`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AppointmentStatus {
    #[default]
    Booked,
    Arrived,
    InExam,
    Completed,
    NoShow,
    Cancelled,
}

impl AppointmentStatus {
    pub const ALL: [AppointmentStatus; 6] = [
        AppointmentStatus::Booked,
        AppointmentStatus::Arrived,
        AppointmentStatus::InExam,
        AppointmentStatus::Completed,
        AppointmentStatus::NoShow,
        AppointmentStatus::Cancelled,
    ];

    pub fn is_final(self) -> bool {
        matches!(
            self,
            AppointmentStatus::Completed | AppointmentStatus::NoShow | AppointmentStatus::Cancelled
        )
    }

    /// Whether the status may change from `self` to `next` (staying the same is allowed).
    pub fn can_become(self, next: AppointmentStatus) -> bool {
        use AppointmentStatus::*;
        self == next
            || matches!(
                (self, next),
                (Booked, Arrived | Cancelled | NoShow)
                    | (Arrived, Booked | InExam | Completed | Cancelled)
                    | (InExam, Arrived | Completed)
            )
    }
}

/// Shortest and longest appointment, minutes.
pub const DURATION_MIN: u16 = 5;
pub const DURATION_MAX: u16 = 480;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Appointment {
    pub provider: StaffRef,
    /// Clinic-local start, `YYYY-MM-DDTHH:MM`.
    pub start: String,
    pub duration_minutes: u16,
    pub appointment_type: AppointmentType,
    pub status: AppointmentStatus,
    #[serde(default)]
    pub reason: String,
    #[serde(default)]
    pub notes: String,
}

impl Appointment {
    pub fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut c = Checks::default();
        c.staff("provider", &self.provider, "The provider");
        c.datetime("start", &self.start, "The start");
        if !(DURATION_MIN..=DURATION_MAX).contains(&self.duration_minutes) {
            c.err(
                "duration_minutes",
                "Duration must be between 5 and 480 minutes.",
            );
        }
        c.text("reason", &self.reason, LINE_MAX, false);
        c.text("notes", &self.notes, NOTES_MAX, true);
        c.result()
    }

    /// A new booked appointment like this one at `start` (for a cancelled or missed one).
    pub fn rebook(&self, start: &str) -> Appointment {
        Appointment {
            start: start.to_string(),
            status: AppointmentStatus::Booked,
            notes: String::new(),
            ..self.clone()
        }
    }
}

/// Whether `new` may replace `old`: the status change must be allowed, and a final appointment
/// (completed, cancelled, no-show) cannot be changed at all except its notes.
pub fn check_appointment_edit(old: &Appointment, new: &Appointment) -> Result<(), FieldError> {
    if !old.status.can_become(new.status) {
        return Err(FieldError {
            field: "status",
            message: if old.status.is_final() {
                "This appointment is closed; book a new one instead.".into()
            } else {
                format!(
                    "The status cannot change from {:?} to {:?}.",
                    old.status, new.status
                )
            },
        });
    }
    if old.status.is_final() {
        let mut same = new.clone();
        same.notes.clone_from(&old.notes);
        if &same != old {
            return Err(FieldError {
                field: "status",
                message: "This appointment is closed; only its notes can change.".into(),
            });
        }
    }
    Ok(())
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContactChannel {
    #[default]
    Phone,
    Sms,
    Email,
    Letter,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContactOutcome {
    /// Spoke to the patient (or guardian).
    Reached,
    LeftMessage,
    NoAnswer,
    WrongNumber,
    /// A message or letter was sent.
    #[default]
    Sent,
    /// It came back undelivered.
    Bounced,
    Booked,
    Declined,
    Other,
}

/// What a reminder was about.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ReminderAbout {
    /// An appointment (its record id).
    Appointment { appointment_id: Uuid },
    /// The patient's recall, due on `due` (`YYYY-MM-DD`).
    Recall { due: String },
}

impl Default for ReminderAbout {
    fn default() -> Self {
        ReminderAbout::Recall { due: String::new() }
    }
}

/// One attempt to contact a patient about an appointment or a recall.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReminderContact {
    pub about: ReminderAbout,
    pub channel: ContactChannel,
    pub outcome: ContactOutcome,
    #[serde(default)]
    pub notes: String,
    /// `YYYY-MM-DDTHH:MM`.
    pub at: String,
    pub by: StaffRef,
}

impl ReminderContact {
    pub fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut c = Checks::default();
        match &self.about {
            ReminderAbout::Appointment { appointment_id } => {
                if appointment_id.is_nil() {
                    c.err("about", "Choose the appointment.");
                }
            }
            ReminderAbout::Recall { due } => {
                if parse_date(due).is_none() {
                    c.err("about", "The recall due date is required, as YYYY-MM-DD.");
                }
            }
        }
        c.datetime("at", &self.at, "The time of contact");
        c.staff("by", &self.by, "Who made contact");
        c.text("notes", &self.notes, NOTES_MAX, true);
        c.result()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;
    use AppointmentStatus::*;

    pub(crate) fn sample_appointment() -> Appointment {
        Appointment {
            provider: StaffRef {
                account_id: Uuid::new_v4(),
                name: "Dr Iris Lens".into(),
            },
            start: "2026-12-01T09:30".into(),
            duration_minutes: 30,
            appointment_type: AppointmentType::Comprehensive,
            status: Booked,
            reason: "Annual exam".into(),
            notes: String::new(),
        }
    }

    pub(crate) fn sample_reminder() -> ReminderContact {
        ReminderContact {
            about: ReminderAbout::Appointment {
                appointment_id: Uuid::new_v4(),
            },
            channel: ContactChannel::Phone,
            outcome: ContactOutcome::LeftMessage,
            notes: "Voicemail".into(),
            at: "2026-11-28T14:05".into(),
            by: StaffRef {
                account_id: Uuid::new_v4(),
                name: "Front Desk".into(),
            },
        }
    }

    #[test]
    fn validation() {
        assert_eq!(sample_appointment().validate(), Ok(()));
        let mut a = sample_appointment();
        a.start = "2026-12-01 09:30".into();
        a.duration_minutes = 4;
        a.provider.account_id = Uuid::nil();
        let f: Vec<_> = a
            .validate()
            .unwrap_err()
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(f, vec!["provider", "start", "duration_minutes"]);
        assert_eq!(sample_reminder().validate(), Ok(()));
        let mut r = sample_reminder();
        r.about = ReminderAbout::Recall { due: "soon".into() };
        assert_eq!(r.validate().unwrap_err()[0].field, "about");
        r.about = ReminderAbout::Recall {
            due: "2027-01-01".into(),
        };
        assert_eq!(r.validate(), Ok(()));
    }

    #[test]
    fn transitions() {
        assert!(Booked.can_become(Arrived));
        assert!(Arrived.can_become(InExam));
        assert!(InExam.can_become(Completed));
        assert!(Arrived.can_become(Booked));
        assert!(!Completed.can_become(Booked));
        assert!(!Completed.can_become(InExam));
        assert!(!Cancelled.can_become(Booked));
        assert!(!NoShow.can_become(Booked));
        assert!(!Booked.can_become(Completed));
        assert!(!InExam.can_become(Cancelled));
        let old = Appointment {
            status: Cancelled,
            ..sample_appointment()
        };
        let mut new = old.clone();
        new.notes = "Patient called back".into();
        assert_eq!(check_appointment_edit(&old, &new), Ok(()));
        new.start = "2026-12-02T09:30".into();
        assert_eq!(
            check_appointment_edit(&old, &new).unwrap_err().field,
            "status"
        );
        let re = old.rebook("2026-12-02T09:30");
        assert_eq!(re.status, Booked);
        assert_eq!(re.validate(), Ok(()));
    }

    proptest! {
        #[test]
        fn duration_range(m in 0u16..=1000) {
            let a = Appointment { duration_minutes: m, ..sample_appointment() };
            prop_assert_eq!(a.validate().is_ok(), (5..=480).contains(&m));
        }

        /// Final states have no way out; nothing goes back to booked from in_exam or later.
        #[test]
        fn final_states_are_final(i in 0usize..6, j in 0usize..6) {
            let (a, b) = (AppointmentStatus::ALL[i], AppointmentStatus::ALL[j]);
            if a.is_final() {
                prop_assert_eq!(a.can_become(b), a == b);
            }
            if matches!(a, InExam | Completed) {
                prop_assert!(!a.can_become(Booked));
            }
            let old = Appointment { status: a, ..sample_appointment() };
            let new = Appointment { status: b, ..old.clone() };
            prop_assert_eq!(check_appointment_edit(&old, &new).is_ok(), a.can_become(b));
        }
    }
}

//! Export and documents of one chart, on the patient's page: the chart as a FHIR R4 Bundle
//! (downloaded as a file) and the referral letters that can be printed from its exams.
//!
//! The bundle is built here, in the browser, from the decrypted records in the clinic's store,
//! so it holds exactly what my keyring opens: the front desk (demographics only) exports the
//! patient alone, an optician the patient and the prescriptions, an optometrist everything. The
//! file never passes through the server.

use leptos::prelude::*;
use optovault_shared::chart::{ContactLensRx, Exam, SpectacleRx};
use optovault_shared::domain::{Patient, RecordBody};
use optovault_shared::fhir::export_patient_bundle;
use optovault_shared::Compartment;
use uuid::Uuid;

use crate::state::use_app;
use crate::store::RecordStore;

/// What goes into one export.
#[derive(Debug, Default)]
pub struct ChartRecords {
    pub exams: Vec<(Uuid, Exam)>,
    pub spectacles: Vec<(Uuid, SpectacleRx)>,
    pub contacts: Vec<(Uuid, ContactLensRx)>,
}

/// The chart's exams and prescriptions in the store, in feed order, each kind only if `holds`
/// its compartment. The store already skips what my role cannot open; checking again keeps the
/// export right even if a record of a compartment I lost was still held.
pub fn chart_records(
    store: &RecordStore,
    chart_id: &Uuid,
    holds: impl Fn(Compartment) -> bool,
) -> ChartRecords {
    let mut out = ChartRecords::default();
    for i in store.items_of(chart_id) {
        if !holds(i.body.compartment()) {
            continue;
        }
        match i.body {
            RecordBody::Exam(e) => out.exams.push((i.id, e)),
            RecordBody::SpectacleRx(r) => out.spectacles.push((i.id, r)),
            RecordBody::ContactLensRx(r) => out.contacts.push((i.id, r)),
            _ => {}
        }
    }
    out
}

/// `patient-<chart number>-fhir.json`, or the record id when the clinic does not number its
/// charts. Only letters, digits, `-` and `_` are kept, so a chart number cannot make a path.
pub fn file_name(patient: &Patient, chart_id: &Uuid) -> String {
    let number: String = patient
        .chart_number
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let number = number.trim_matches('-');
    if number.is_empty() {
        format!("patient-{chart_id}-fhir.json")
    } else {
        format!("patient-{number}-fhir.json")
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// What the file holds, in words (so a user sees what their role left out).
pub fn summary(r: &ChartRecords) -> String {
    format!(
        "the patient, {}, {}",
        plural(r.exams.len(), "exam", "exams"),
        plural(
            r.spectacles.len() + r.contacts.len(),
            "prescription",
            "prescriptions"
        )
    )
}

/// The print page of a referral letter built from an exam.
pub fn referral_href(clinic_id: Uuid, chart_id: Uuid, exam_id: Uuid) -> String {
    format!("/clinics/{clinic_id}/patients/{chart_id}/rx/{exam_id}/print?doc=referral")
}

/// An exam a referral letter can be printed from.
#[derive(Clone, Debug, PartialEq)]
struct ExamLink {
    id: Uuid,
    date: String,
    kind: &'static str,
}

#[component]
pub fn ChartExport(
    clinic_id: Uuid,
    /// The patient's record id.
    chart_id: Uuid,
    /// The patient is loaded and found.
    #[prop(into)]
    ready: Signal<bool>,
) -> impl IntoView {
    let app = use_app();
    let store: RwSignal<RecordStore> = app.store(clinic_id).into();
    let notice = RwSignal::new(None::<String>);
    let error = RwSignal::new(None::<String>);

    let holds = move |c: Compartment| app.clinic_tracked(&clinic_id).is_some_and(|k| k.holds(c));
    let exams = Memo::new(move |_| {
        let mut list: Vec<ExamLink> = store.with(|s| {
            s.items_of(&chart_id)
                .into_iter()
                .filter_map(|i| match i.body {
                    RecordBody::Exam(e) => Some(ExamLink {
                        id: i.id,
                        date: e.date,
                        kind: e.exam_type.label(),
                    }),
                    _ => None,
                })
                .collect()
        });
        list.sort_by(|a, b| b.date.cmp(&a.date));
        list
    });

    let export = move |_| {
        notice.set(None);
        error.set(None);
        let Some(clinic) = app.clinic(&clinic_id) else {
            error.set(Some("This clinic's keys are not loaded.".into()));
            return;
        };
        let built = store.with_untracked(|s| {
            let (_, patient) = s.patients.get(&chart_id)?;
            let r = chart_records(s, &chart_id, |c| clinic.holds(c));
            let bundle =
                export_patient_bundle(&chart_id, patient, &r.exams, &r.spectacles, &r.contacts);
            Some((file_name(patient, &chart_id), bundle, summary(&r)))
        });
        let Some((name, bundle, what)) = built else {
            error.set(Some("The patient is not loaded yet.".into()));
            return;
        };
        let text = serde_json::to_string_pretty(&bundle).unwrap_or_default();
        // The export is an access event, logged before the file is handed over.
        let summary = format!("FHIR export downloaded: {what}");
        leptos::task::spawn_local(async move {
            let Some(me) = app.me() else { return };
            let logged = crate::audit::log_document(
                app,
                &me,
                clinic_id,
                optovault_shared::wire::DocumentKind::FhirExport,
                Some(chart_id),
                summary,
            )
            .await;
            if let Err(e) = logged {
                error.set(Some(e.message));
                return;
            }
            match crate::files::save_text(&text, "application/fhir+json", &name) {
                Ok(()) => notice.set(Some(format!("Downloaded {name}: {what}."))),
                Err(e) => error.set(Some(e.message)),
            }
        });
    };

    view! {
        <Show when=move || ready.get() && holds(Compartment::Demographics)>
            <section id="chart-export" class="card chart-export" aria-labelledby="export-title">
                <h2 id="export-title">"Export and documents"</h2>
                <p class="help">
                    "A FHIR R4 file of this chart (patient, prescriptions, visual acuity and eye pressure), "
                    "built in this browser from what your role can open."
                </p>
                <div class="actions">
                    <button id="fhir-export" type="button" class="button secondary" on:click=export>
                        "Export FHIR (JSON)"
                    </button>
                </div>
                {move || notice.get().map(|n| view! { <p id="fhir-export-notice" class="notice" role="status">{n}</p> })}
                {move || error.get().map(|e| view! { <p id="fhir-export-error" class="error" role="alert">{e}</p> })}
                <Show when=move || holds(Compartment::Clinical) && !exams.with(Vec::is_empty)>
                    <h3>"Referral letters"</h3>
                    <ul class="referral-list">
                        <For each=move || exams.get() key=|e| e.id let:exam>
                            <li>
                                <a class="referral-link" href=referral_href(clinic_id, chart_id, exam.id)>
                                    {format!("Referral letter from the {} exam of {}", exam.kind.to_lowercase(), exam.date)}
                                </a>
                            </li>
                        </For>
                    </ul>
                </Show>
            </section>
        </Show>
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Change, Opened};
    use optovault_shared::domain::ClinicalNote;

    fn store_with(chart: Uuid, bodies: Vec<RecordBody>) -> RecordStore {
        let mut s = RecordStore::default();
        for (n, body) in bodies.into_iter().enumerate() {
            s.apply(Change {
                record_id: Uuid::new_v4(),
                version: 1,
                seq: n as u64 + 1,
                author: None,
                opened: Opened::Item {
                    chart_id: chart,
                    body,
                },
            });
        }
        s
    }

    #[test]
    fn exports_only_the_compartments_held() {
        let chart = Uuid::new_v4();
        let s = store_with(
            chart,
            vec![
                RecordBody::Exam(Exam::default()),
                RecordBody::SpectacleRx(SpectacleRx::default()),
                RecordBody::ContactLensRx(ContactLensRx::default()),
                RecordBody::ClinicalNote(ClinicalNote { text: "x".into() }),
            ],
        );
        let all = chart_records(&s, &chart, |_| true);
        assert_eq!(
            (all.exams.len(), all.spectacles.len(), all.contacts.len()),
            (1, 1, 1)
        );
        assert_eq!(summary(&all), "the patient, 1 exam, 2 prescriptions");
        let front_desk = chart_records(&s, &chart, |c| c == Compartment::Demographics);
        assert_eq!(
            summary(&front_desk),
            "the patient, 0 exams, 0 prescriptions"
        );
        let optician = chart_records(&s, &chart, |c| c == Compartment::Prescriptions);
        assert!(optician.exams.is_empty());
        assert_eq!(optician.spectacles.len(), 1);
        assert!(chart_records(&s, &Uuid::new_v4(), |_| true)
            .exams
            .is_empty());
    }

    #[test]
    fn file_names_are_safe() {
        let id = Uuid::nil();
        let mut p = Patient::default();
        assert_eq!(
            file_name(&p, &id),
            "patient-00000000-0000-0000-0000-000000000000-fhir.json"
        );
        p.chart_number = " A-1042 ".into();
        assert_eq!(file_name(&p, &id), "patient-A-1042-fhir.json");
        p.chart_number = "../../etc/passwd".into();
        assert_eq!(file_name(&p, &id), "patient-etc-passwd-fhir.json");
        p.chart_number = "///".into();
        assert!(file_name(&p, &id).contains("00000000"));
    }
}

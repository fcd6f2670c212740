//! Printable documents of a chart, at `/clinics/:clinic_id/patients/:patient_id/rx/:record_id/print`:
//! a spectacle or contact-lens prescription to hand to the patient (or an optician elsewhere),
//! and with `?doc=referral` a referral letter built from an exam.
//!
//! The page is laid out for paper: `@media print` in the stylesheet hides the app's header and
//! the buttons, and what is typed on screen (the addressee of a letter) prints as plain text.
//! Everything is decrypted here; opened directly (a link, after logging in again) it opens the
//! clinic and syncs, like the patient's page. It always syncs once, so a prescription cancelled
//! meanwhile by a colleague is not printed as valid.

use std::sync::Arc;

use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::components::Redirect;
use leptos_router::hooks::{use_navigate, use_params_map, use_query_map};
use optovault_shared::chart::{
    ClEye, ContactLensRx, Exam, EyeRefraction, Laterality, RefractionType, RxStatus, Side,
    SpectacleRx,
};
use optovault_shared::domain::{Patient, RecordBody};
use optovault_shared::wire::DocumentKind;
use uuid::Uuid;

use crate::clinic::ensure_clinic;
use crate::components::app_header::AppHeader;
use crate::components::prescriptions::{
    base_label, lens_type_label, pd_text, power, prescriber_text, replacement_label, sphere,
    status_label,
};
use crate::components::spinner::Spinner;
use crate::pages::not_found::NotFound;
use crate::pages::report_error;
use crate::state::{use_app, Unlocked};
use crate::store::{load_chart, sync, RecordStore};
use crate::util::today;

#[component]
pub fn PrintRxPage() -> impl IntoView {
    let app = use_app();
    let Some(me) = app.me() else {
        return view! { <Redirect path="/login" /> }.into_any();
    };
    let params = use_params_map();
    let query = use_query_map();
    let ids = Memo::new(move |_| {
        let p = params.read();
        let id = |k: &str| p.get(k).and_then(|s| Uuid::parse_str(&s).ok());
        Some((id("clinic_id")?, id("patient_id")?, id("record_id")?))
    });
    let referral = Memo::new(move |_| query.read().get("doc").as_deref() == Some("referral"));
    (move || match ids.get() {
        Some((clinic_id, chart_id, record_id)) => view! {
            <PrintDocument me=me.clone() clinic_id=clinic_id chart_id=chart_id record_id=record_id
                referral=referral.get() />
        }
        .into_any(),
        None => view! { <NotFound /> }.into_any(),
    })
    .into_any()
}

/// What is to be printed, from the store.
#[derive(Clone, Debug, PartialEq)]
struct Source {
    patient: Option<Patient>,
    body: Option<RecordBody>,
}

#[component]
fn PrintDocument(
    me: Arc<Unlocked>,
    clinic_id: Uuid,
    chart_id: Uuid,
    record_id: Uuid,
    /// A referral letter from an exam, rather than a prescription.
    referral: bool,
) -> impl IntoView {
    let app = use_app();
    let navigate = use_navigate();
    let store_arc = app.store(clinic_id);
    let store: RwSignal<RecordStore> = store_arc.clone().into();
    let error = RwSignal::new(None::<String>);
    let cached = app.clinic(&clinic_id).is_some()
        && store.with_untracked(|s| {
            s.chart_loaded(&chart_id) && s.item(&chart_id, &record_id).is_some()
        });
    // What is in memory shows at once; the sync below only brings it up to date.
    let loading = RwSignal::new(!cached);
    {
        let me = me.clone();
        spawn_local(async move {
            let opened = match ensure_clinic(app, &me, clinic_id).await {
                Ok(clinic) => {
                    match sync(app, me.clone(), clinic.clone(), store_arc.clone()).await {
                        Ok(()) => load_chart(app, me, clinic, store_arc, chart_id).await,
                        Err(e) => Err(e),
                    }
                }
                Err(e) => Err(e),
            };
            if let Err(e) = opened {
                report_error(app, &navigate, error, e);
            }
            loading.set(false);
        });
    }
    let source = Memo::new(move |_| {
        store.with(|s| Source {
            patient: s.patients.get(&chart_id).map(|(_, p)| p.clone()),
            body: s.item(&chart_id, &record_id).map(|i| i.body.clone()),
        })
    });
    let clinic_name = Signal::derive(move || {
        app.clinic_tracked(&clinic_id)
            .and_then(|c| c.name.clone().ok())
    });
    // Kept here, so a re-render after a sync does not lose what was typed.
    let letter = LetterInputs {
        to: RwSignal::new(String::new()),
        reason: RwSignal::new(String::new()),
    };
    let me_name = me.username.clone();
    let me_for_log = StoredValue::new(me.clone());
    let printable = move || {
        source.with(|s| match (&s.patient, &s.body) {
            (Some(_), Some(RecordBody::Exam(_))) => referral,
            (Some(_), Some(RecordBody::SpectacleRx(_) | RecordBody::ContactLensRx(_))) => !referral,
            _ => false,
        })
    };
    // Each printout is an access event, logged before the print dialog opens.
    let print_error = RwSignal::new(None::<String>);
    let print = move |_| {
        let document = source.with_untracked(|s| match &s.body {
            Some(RecordBody::ContactLensRx(_)) => DocumentKind::ContactLensRx,
            Some(RecordBody::Exam(_)) => DocumentKind::ReferralLetter,
            _ => DocumentKind::SpectacleRx,
        });
        print_error.set(None);
        let summary = match document {
            DocumentKind::ContactLensRx => "Contact-lens Rx printed",
            DocumentKind::ReferralLetter => "Referral letter printed",
            _ => "Spectacle Rx printed",
        }
        .to_string();
        let me = me_for_log.get_value();
        leptos::task::spawn_local(async move {
            let logged =
                crate::audit::log_document(app, &me, clinic_id, document, Some(chart_id), summary)
                    .await;
            match logged {
                Ok(()) => {
                    if let Some(w) = web_sys::window() {
                        let _ = w.print();
                    }
                }
                Err(e) => print_error.set(Some(e.message)),
            }
        });
    };

    view! {
        <AppHeader />
        <main class="page print-page">
            {move || print_error.get().map(|e| view! { <p id="print-error" class="error no-print" role="alert">{e}</p> })}
            <div class="print-toolbar">
                <a id="print-back" class="button secondary"
                    href=format!("/clinics/{clinic_id}/patients/{chart_id}")>
                    "Back to the patient"
                </a>
                <button id="print-button" type="button" class="button primary" on:click=print
                    disabled=move || loading.get() || !printable()>
                    "Print"
                </button>
            </div>
            <Show when=move || loading.get()>
                <Spinner label="Opening the record…" />
            </Show>
            {move || error.get().map(|e| view! { <p id="print-error" class="error" role="alert">{e}</p> })}
            {move || (!loading.get()).then(|| {
                let Source { patient, body } = source.get();
                document(patient, body, referral, clinic_name, &me_name, letter)
            })}
        </main>
    }
}

/// The document for what the store holds, or why there is none.
fn document(
    patient: Option<Patient>,
    body: Option<RecordBody>,
    referral: bool,
    clinic: Signal<Option<String>>,
    me_name: &str,
    letter: LetterInputs,
) -> AnyView {
    match (patient, body, referral) {
        (Some(patient), Some(RecordBody::SpectacleRx(rx)), false) => {
            view! { <SpectaclePrint rx=rx patient=patient clinic=clinic /> }.into_any()
        }
        (Some(patient), Some(RecordBody::ContactLensRx(rx)), false) => {
            view! { <ContactPrint rx=rx patient=patient clinic=clinic /> }.into_any()
        }
        (Some(patient), Some(RecordBody::Exam(exam)), true) => view! {
            <ReferralLetter exam=exam patient=patient clinic=clinic me_name=me_name.to_string()
                letter=letter />
        }
        .into_any(),
        _ => view! {
            <p id="print-missing" class="error" role="alert">
                "This document is not in the chart, or your role cannot open it."
            </p>
        }
        .into_any(),
    }
}

// ---- pieces every document has ---------------------------------------------------------------

#[component]
fn Letterhead(clinic: Signal<Option<String>>, title: &'static str) -> impl IntoView {
    view! {
        <header class="print-letterhead">
            <p id="print-clinic" class="print-clinic">{move || clinic.get().unwrap_or_default()}</p>
            <h1 id="print-title">{title}</h1>
        </header>
    }
}

/// The address on as few lines as it takes: street lines, then `postal code city, region`,
/// then the country.
pub fn address_lines(p: &Patient) -> Vec<String> {
    let a = &p.address;
    let town = [a.postal_code.trim(), a.city.trim()]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let town = [town.as_str(), a.region.trim()]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(", ");
    [
        a.line1.trim(),
        a.line2.trim(),
        town.as_str(),
        a.country.trim(),
    ]
    .into_iter()
    .filter(|s| !s.is_empty())
    .map(str::to_string)
    .collect()
}

#[component]
fn PatientBlock(patient: Patient) -> impl IntoView {
    let name = format!(
        "{} {}",
        patient.given_name.trim(),
        patient.family_name.trim()
    );
    let address = address_lines(&patient);
    let chart = patient.chart_number.trim().to_string();
    view! {
        <dl id="print-patient" class="print-facts print-patient">
            <dt>"Patient"</dt>
            <dd id="print-patient-name">{name}</dd>
            <dt>"Date of birth"</dt>
            <dd>{patient.date_of_birth.clone()}</dd>
            {(!address.is_empty()).then(|| view! {
                <dt>"Address"</dt>
                <dd class="print-address">
                    {address.into_iter().map(|l| view! { <span class="line">{l}</span> }).collect_view()}
                </dd>
            })}
            {(!chart.is_empty()).then(|| view! { <dt>"Chart number"</dt> <dd>{chart}</dd> })}
        </dl>
    }
}

/// Why a prescription must not be dispensed, if it must not.
fn not_valid(status: RxStatus, expired: bool, expiry: &str) -> Option<String> {
    match status {
        RxStatus::Draft => Some("DRAFT: not valid for dispensing until it is activated.".into()),
        RxStatus::Cancelled => Some("CANCELLED: not valid.".into()),
        RxStatus::EnteredInError => Some("ENTERED IN ERROR: void.".into()),
        RxStatus::Active if expired => {
            Some(format!("EXPIRED on {expiry}: not valid for dispensing."))
        }
        RxStatus::Active => None,
    }
}

#[component]
fn ValidityBanner(status: RxStatus, expiry: Option<String>, expired: bool) -> impl IntoView {
    let expiry = expiry.unwrap_or_default();
    not_valid(status, expired, &expiry).map(|why| {
        view! { <p id="print-status" class="print-banner" data-status=status.fhir_code()>{why}</p> }
    })
}

/// Prescriber, signature line and date.
#[component]
fn Signature(
    /// "Prescriber", "Optometrist" …
    label: &'static str,
    who: String,
    #[prop(optional)] date: Option<String>,
) -> impl IntoView {
    view! {
        <div class="print-signature">
            <div class="sig-box">
                <span class="sig-line"></span>
                <p>"Signature"</p>
            </div>
            <div class="sig-box">
                <p class="sig-label">{label}</p>
                <p id="print-prescriber" class="sig-name">{who}</p>
                <p>{date.map(|d| format!("Date: {d}"))}</p>
            </div>
        </div>
    }
}

#[component]
fn Notes(text: String) -> impl IntoView {
    (!text.trim().is_empty()).then(|| {
        view! {
            <h2>"Notes"</h2>
            <p id="print-notes" class="print-notes">{text}</p>
        }
    })
}

fn dash() -> String {
    "—".into()
}

// ---- spectacles --------------------------------------------------------------------------------

/// One spectacle eye's cells: sphere, cylinder, axis, add, prism amounts, prism bases.
pub fn spectacle_cells(e: Option<&EyeRefraction>) -> [String; 6] {
    let Some(e) = e else {
        return [
            "not prescribed".into(),
            dash(),
            dash(),
            dash(),
            dash(),
            dash(),
        ];
    };
    let cyl = !e.cylinder.is_zero();
    let join = |f: &dyn Fn(&optovault_shared::chart::Prism) -> String| {
        if e.prism.is_empty() {
            dash()
        } else {
            e.prism.iter().map(f).collect::<Vec<_>>().join(" / ")
        }
    };
    [
        sphere(e.sphere),
        if cyl { power(e.cylinder) } else { "DS".into() },
        e.axis
            .filter(|_| cyl)
            .map_or_else(dash, |a| format!("{a}°")),
        e.add.map_or_else(dash, power),
        join(&|p| p.amount.to_string()),
        join(&|p| base_label(p.base).trim_start_matches("base ").to_string()),
    ]
}

#[component]
fn EyeRow(side: Side, cells: Vec<String>) -> impl IntoView {
    let label = match side {
        Side::Od => "OD (right)",
        Side::Os => "OS (left)",
    };
    view! {
        <tr class=format!("print-eye-{}", side.as_str())>
            <th scope="row">{label}</th>
            {cells.into_iter().map(|c| view! { <td>{c}</td> }).collect_view()}
        </tr>
    }
}

#[component]
fn SpectaclePrint(
    rx: SpectacleRx,
    patient: Patient,
    clinic: Signal<Option<String>>,
) -> impl IntoView {
    let expiry = rx.effective_expiry();
    let expired = rx.is_expired(&today());
    let mm = |c: Option<optovault_shared::chart::Centi>| c.map(|c| format!("{c} mm"));
    let facts: Vec<(&str, String)> = [
        ("Lens type", Some(lens_type_label(rx.lens_type).to_string())),
        ("PD", rx.pd.map(pd_text)),
        ("Near PD", mm(rx.near_pd)),
        ("Segment height", mm(rx.segment_height)),
        ("Vertex distance", mm(rx.vertex_distance)),
        ("Issued", Some(rx.issued.clone())),
        ("Expires", expiry.clone()),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.map(|v| (k, v)))
    .collect();
    view! {
        <article id="print-doc" class="print-doc" data-kind="spectacle_rx">
            <Letterhead clinic=clinic title="Spectacle prescription" />
            <ValidityBanner status=rx.status expiry=expiry expired=expired />
            <PatientBlock patient=patient />
            <table id="print-rx-table" class="print-table">
                <thead>
                    <tr>
                        <th scope="col"><span class="visually-hidden">"Eye"</span></th>
                        <th scope="col">"Sphere (D)"</th>
                        <th scope="col">"Cylinder (D)"</th>
                        <th scope="col">"Axis (°)"</th>
                        <th scope="col">"Add (D)"</th>
                        <th scope="col">"Prism (Δ)"</th>
                        <th scope="col">"Base"</th>
                    </tr>
                </thead>
                <tbody>
                    <EyeRow side=Side::Od cells=spectacle_cells(rx.od.as_ref()).to_vec() />
                    <EyeRow side=Side::Os cells=spectacle_cells(rx.os.as_ref()).to_vec() />
                </tbody>
            </table>
            <Facts id="print-facts" facts=facts />
            <Notes text=rx.notes.clone() />
            <Signature label="Prescriber" who=prescriber_text(&rx.prescriber) date=rx.issued.clone() />
            <p class="print-footer">"Status: " {status_label(rx.status)}</p>
        </article>
    }
}

#[component]
fn Facts(id: &'static str, facts: Vec<(&'static str, String)>) -> impl IntoView {
    view! {
        <dl id=id class="print-facts">
            {facts.into_iter().map(|(k, v)| view! { <dt>{k}</dt> <dd>{v}</dd> }).collect_view()}
        </dl>
    }
}

// ---- contact lenses ------------------------------------------------------------------------------

/// One contact lens's cells: power, cylinder, axis, add, base curve, diameter, tint.
pub fn contact_cells(e: Option<&ClEye>) -> [String; 7] {
    let Some(e) = e else {
        return [
            "not prescribed".into(),
            dash(),
            dash(),
            dash(),
            dash(),
            dash(),
            dash(),
        ];
    };
    let cyl = !e.cylinder.is_zero();
    [
        power(e.power),
        if cyl { power(e.cylinder) } else { dash() },
        e.axis
            .filter(|_| cyl)
            .map_or_else(dash, |a| format!("{a}°")),
        e.add.map_or_else(dash, power),
        e.base_curve.to_string(),
        e.diameter.to_string(),
        if e.color.trim().is_empty() {
            dash()
        } else {
            e.color.clone()
        },
    ]
}

#[component]
fn ContactPrint(
    rx: ContactLensRx,
    patient: Patient,
    clinic: Signal<Option<String>>,
) -> impl IntoView {
    let expiry = rx.effective_expiry();
    let expired = rx.is_expired(&today());
    let facts: Vec<(&str, String)> = [
        ("Brand", Some(rx.brand.clone())),
        ("Manufacturer", Some(rx.manufacturer.clone())),
        ("Material", Some(rx.material.clone())),
        (
            "Replacement",
            rx.replacement.map(|r| replacement_label(r).to_string()),
        ),
        ("Issued", Some(rx.issued.clone())),
        ("Expires", expiry.clone()),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.filter(|v| !v.trim().is_empty()).map(|v| (k, v)))
    .collect();
    view! {
        <article id="print-doc" class="print-doc" data-kind="contact_lens_rx">
            <Letterhead clinic=clinic title="Contact lens prescription" />
            <ValidityBanner status=rx.status expiry=expiry expired=expired />
            <PatientBlock patient=patient />
            <table id="print-rx-table" class="print-table">
                <thead>
                    <tr>
                        <th scope="col"><span class="visually-hidden">"Eye"</span></th>
                        <th scope="col">"Power (D)"</th>
                        <th scope="col">"Cylinder (D)"</th>
                        <th scope="col">"Axis (°)"</th>
                        <th scope="col">"Add (D)"</th>
                        <th scope="col">"Base curve (mm)"</th>
                        <th scope="col">"Diameter (mm)"</th>
                        <th scope="col">"Tint"</th>
                    </tr>
                </thead>
                <tbody>
                    <EyeRow side=Side::Od cells=contact_cells(rx.od.as_ref()).to_vec() />
                    <EyeRow side=Side::Os cells=contact_cells(rx.os.as_ref()).to_vec() />
                </tbody>
            </table>
            <Facts id="print-facts" facts=facts />
            <Notes text=rx.notes.clone() />
            <Signature label="Prescriber" who=prescriber_text(&rx.prescriber) date=rx.issued.clone() />
            <p class="print-footer">"Status: " {status_label(rx.status)}</p>
        </article>
    }
}

// ---- referral letter -------------------------------------------------------------------------------

/// What is typed on the letter before printing.
#[derive(Clone, Copy)]
struct LetterInputs {
    to: RwSignal<String>,
    reason: RwSignal<String>,
}

fn laterality(l: Laterality) -> &'static str {
    match l {
        Laterality::Right => " (right eye)",
        Laterality::Left => " (left eye)",
        Laterality::Both => " (both eyes)",
        Laterality::NotApplicable => "",
    }
}

/// The exam's findings worth a referral, as (heading, lines); empty sections are left out.
pub fn referral_sections(exam: &Exam) -> Vec<(&'static str, Vec<String>)> {
    let diagnoses = exam
        .diagnoses
        .iter()
        .map(|d| {
            let desc = d.description.trim();
            let sep = if desc.is_empty() { "" } else { " " };
            format!("{}{sep}{desc}{}", d.code, laterality(d.laterality))
        })
        .collect();
    let va = exam.visual_acuity.iter().map(|v| v.summary()).collect();
    let iop = exam
        .iop
        .iter()
        .map(|r| {
            let at = r
                .time
                .as_deref()
                .map(|t| format!(" at {t}"))
                .unwrap_or_default();
            let high = if r.is_elevated() { " (elevated)" } else { "" };
            format!(
                "{} {} mmHg{high}, {}{at}",
                r.eye.as_str().to_uppercase(),
                r.mmhg,
                r.method.label()
            )
        })
        .collect();
    let manifest = exam
        .refractions
        .iter()
        .rev()
        .find(|r| r.refraction_type == RefractionType::Manifest)
        .map(|r| {
            [(Side::Od, &r.od), (Side::Os, &r.os)]
                .into_iter()
                .filter_map(|(s, e)| {
                    e.as_ref().map(|e| {
                        format!(
                            "{} {}",
                            s.as_str().to_uppercase(),
                            crate::components::prescriptions::eye_summary(e)
                        )
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let mut findings = Vec::new();
    for (what, per_eye) in [("Slit lamp", &exam.slit_lamp), ("Fundus", &exam.fundus)] {
        for (side, text) in per_eye.sides() {
            if !text.trim().is_empty() {
                findings.push(format!(
                    "{what} {}: {}",
                    side.as_str().to_uppercase(),
                    text.trim()
                ));
            }
        }
    }
    for (side, cd) in exam.cup_disc.sides() {
        if let Some(cd) = cd {
            findings.push(format!("Cup/disc {}: {cd}", side.as_str().to_uppercase()));
        }
    }
    // The plan is free text written as a paragraph: kept whole (its line breaks print).
    let plan = Some(exam.plan.trim())
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .into_iter()
        .collect();
    [
        ("Diagnoses", diagnoses),
        ("Visual acuity", va),
        ("Intraocular pressure", iop),
        ("Manifest refraction", manifest),
        ("Findings", findings),
        ("Plan", plan),
    ]
    .into_iter()
    .filter(|(_, lines)| !lines.is_empty())
    .collect()
}

/// One line as a paragraph (free text keeps its line breaks), several as a list.
fn section_body(mut lines: Vec<String>) -> AnyView {
    if lines.len() == 1 {
        let text = lines.pop().unwrap_or_default();
        view! { <p class="print-notes">{text}</p> }.into_any()
    } else {
        view! {
            <ul class="print-list">
                {lines.into_iter().map(|l| view! { <li>{l}</li> }).collect_view()}
            </ul>
        }
        .into_any()
    }
}

/// A text box that prints as its text (form controls print poorly and show their frame).
#[component]
fn LetterBox(id: &'static str, label: &'static str, value: RwSignal<String>) -> impl IntoView {
    view! {
        <div class="field wide no-print">
            <label for=id>{label}</label>
            <textarea id=id name=id rows="3"
                prop:value=move || value.get()
                on:input=move |ev| value.set(event_target_value(&ev))></textarea>
        </div>
        <p id=format!("{id}-print") class="print-only print-typed">{move || value.get()}</p>
    }
}

#[component]
fn ReferralLetter(
    exam: Exam,
    patient: Patient,
    clinic: Signal<Option<String>>,
    me_name: String,
    letter: LetterInputs,
) -> impl IntoView {
    let sections = referral_sections(&exam);
    let about = format!("{} exam of {}", exam.exam_type.label(), exam.date);
    let signer = exam
        .signed
        .as_ref()
        .map(|s| s.by.name.clone())
        .or_else(|| exam.provider.as_ref().map(|p| p.name.clone()))
        .unwrap_or(me_name);
    view! {
        <article id="print-doc" class="print-doc" data-kind="referral">
            <Letterhead clinic=clinic title="Referral letter" />
            <p class="print-date">"Date: " {today()}</p>
            <LetterBox id="referral-to" label="To (name and address of the practitioner)" value=letter.to />
            <PatientBlock patient=patient />
            <p class="print-about">"Re: " {about}</p>
            <LetterBox id="referral-reason" label="Reason for referral" value=letter.reason />
            {sections.into_iter().map(|(heading, lines)| view! {
                <h2>{heading}</h2>
                {section_body(lines)}
            }).collect_view()}
            <Signature label="Yours sincerely," who=signer />
        </article>
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use optovault_shared::chart::{
        Centi, Diagnosis, Diopters, ExamType, IopMethod, IopReading, Prism, PrismBase, Refraction,
    };
    use optovault_shared::domain::Address;

    #[test]
    fn writes_each_eye_with_its_units() {
        let e = EyeRefraction {
            sphere: Diopters(-225),
            cylinder: Diopters(-50),
            axis: Some(180),
            add: Some(Diopters(200)),
            prism: vec![
                Prism {
                    amount: Centi(50),
                    base: PrismBase::Up,
                },
                Prism {
                    amount: Centi(100),
                    base: PrismBase::In,
                },
            ],
        };
        assert_eq!(
            spectacle_cells(Some(&e)),
            [
                "\u{2212}2.25",
                "\u{2212}0.50",
                "180°",
                "+2.00",
                "0.5 / 1.0",
                "up / in"
            ]
        );
        assert_eq!(spectacle_cells(None)[0], "not prescribed");
        let plano = EyeRefraction::default();
        assert_eq!(spectacle_cells(Some(&plano))[..3], ["plano", "DS", "—"]);
        let cl = ClEye {
            power: Diopters(-300),
            base_curve: Centi(860),
            diameter: Centi(1420),
            ..Default::default()
        };
        assert_eq!(
            contact_cells(Some(&cl)),
            ["\u{2212}3.00", "—", "—", "—", "8.6", "14.2", "—"]
        );
    }

    #[test]
    fn addresses_skip_empty_parts() {
        let p = Patient {
            address: Address {
                line1: "1 Lake Road".into(),
                city: "Springfield".into(),
                postal_code: "12345".into(),
                region: "IL".into(),
                ..Default::default()
            },
            ..Default::default()
        };
        assert_eq!(address_lines(&p), ["1 Lake Road", "12345 Springfield, IL"]);
        assert!(address_lines(&Patient::default()).is_empty());
    }

    #[test]
    fn only_invalid_prescriptions_get_a_banner() {
        assert!(not_valid(RxStatus::Active, false, "2030-01-01").is_none());
        assert!(not_valid(RxStatus::Active, true, "2020-01-01")
            .unwrap()
            .contains("2020-01-01"));
        for s in [
            RxStatus::Draft,
            RxStatus::Cancelled,
            RxStatus::EnteredInError,
        ] {
            assert!(not_valid(s, false, "").is_some());
        }
    }

    #[test]
    fn referral_sections_leave_out_what_is_empty() {
        assert!(referral_sections(&Exam::default()).is_empty());
        let exam = Exam {
            exam_type: ExamType::Medical,
            date: "2026-11-20".into(),
            diagnoses: vec![Diagnosis {
                code: "H40.11X1".into(),
                description: "Primary open-angle glaucoma".into(),
                laterality: Laterality::Both,
            }],
            iop: vec![IopReading {
                eye: Side::Od,
                mmhg: 27,
                method: IopMethod::Goldmann,
                time: Some("10:30".into()),
            }],
            refractions: vec![Refraction {
                refraction_type: RefractionType::Manifest,
                od: Some(EyeRefraction {
                    sphere: Diopters(-100),
                    ..Default::default()
                }),
                os: None,
                notes: String::new(),
            }],
            plan: "Refer to glaucoma clinic.\n\nReview in 3 months.".into(),
            ..Default::default()
        };
        let s = referral_sections(&exam);
        let headings: Vec<&str> = s.iter().map(|(h, _)| *h).collect();
        assert_eq!(
            headings,
            [
                "Diagnoses",
                "Intraocular pressure",
                "Manifest refraction",
                "Plan"
            ]
        );
        assert_eq!(s[0].1, ["H40.11X1 Primary open-angle glaucoma (both eyes)"]);
        assert_eq!(
            s[1].1,
            ["OD 27 mmHg (elevated), Goldmann applanation tonometry at 10:30"]
        );
        assert_eq!(s[2].1, ["OD \u{2212}1.00 DS"]);
        assert_eq!(s[3].1, ["Refer to glaucoma clinic.\n\nReview in 3 months."]);
    }
}

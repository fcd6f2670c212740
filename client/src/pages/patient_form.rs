use std::sync::Arc;

use leptos::ev::SubmitEvent;
use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::components::Redirect;
use leptos_router::hooks::{use_navigate, use_params_map};
use optovault_shared::domain::{
    Address, Consent, ConsentType, FieldError, Guardian, Insurance, Patient, PatientStatus, Sex,
};
use uuid::Uuid;
use wasm_bindgen::JsCast;

use crate::clinic::ensure_clinic;
use crate::components::app_header::AppHeader;
use crate::components::appointments::Appointments;
use crate::components::attachments::Attachments;
use crate::components::billing::Billing;
use crate::components::chart_access::ChartAccess;
use crate::components::chart_erase::ChartErase;
use crate::components::chart_export::ChartExport;
use crate::components::chart_trash::ChartTrash;
use crate::components::chart_viewers::ChartViewers;
use crate::components::clinical_notes::ClinicalNotes;
use crate::components::exams::Exams;
use crate::components::field::{input_id, FieldMessage, TextArea, TextField};
use crate::components::prescriptions::Prescriptions;
use crate::components::record_history::RecordHistory;
use crate::components::spinner::Spinner;
use crate::components::trends::Trends;
use crate::pages::not_found::NotFound;
use crate::pages::patients::clinic_id_param;
use crate::pages::report_error;
use crate::patient_index::save_patient;
use crate::state::{use_app, Unlocked};
use crate::store::{load_chart, sync, RecordStore};
use crate::util::today;

pub const CONFLICT: &str = "Someone else changed this patient; reloaded the latest version.";

#[component]
pub fn PatientFormPage() -> impl IntoView {
    let app = use_app();
    let Some(me) = app.me() else {
        return view! { <Redirect path="/login" /> }.into_any();
    };
    let clinic_id = clinic_id_param();
    let params = use_params_map();
    // `None`: the path is not valid; `Some(None)`: a new patient; `Some(Some(id))`: an edit.
    let patient_id = Memo::new(move |_| {
        params.read().get("patient_id").and_then(|s| {
            if s == "new" {
                Some(None)
            } else {
                Uuid::parse_str(&s).ok().map(Some)
            }
        })
    });
    (move || match (clinic_id.get(), patient_id.get()) {
        (Some(cid), Some(pid)) => {
            view! { <PatientEditor me=me.clone() clinic_id=cid patient_id=pid /> }.into_any()
        }
        _ => view! { <NotFound /> }.into_any(),
    })
    .into_any()
}

/// The form's fields, one signal each.
#[derive(Clone, Copy)]
struct Form {
    given_name: RwSignal<String>,
    family_name: RwSignal<String>,
    date_of_birth: RwSignal<String>,
    sex: RwSignal<Sex>,
    phone: RwSignal<String>,
    email: RwSignal<String>,
    line1: RwSignal<String>,
    line2: RwSignal<String>,
    city: RwSignal<String>,
    region: RwSignal<String>,
    postal_code: RwSignal<String>,
    country: RwSignal<String>,
    insurance_member_id: RwSignal<String>,
    notes: RwSignal<String>,
    chart_number: RwSignal<String>,
    status: RwSignal<PatientStatus>,
    recall_due: RwSignal<String>,
    guardian_name: RwSignal<String>,
    guardian_relationship: RwSignal<String>,
    guardian_phone: RwSignal<String>,
    /// Further plans (the primary plan's member id is `insurance_member_id`).
    insurance: RwSignal<Vec<Insurance>>,
    consents: RwSignal<Vec<Consent>>,
}

impl Form {
    fn new() -> Form {
        let s = || RwSignal::new(String::new());
        Form {
            given_name: s(),
            family_name: s(),
            date_of_birth: s(),
            sex: RwSignal::new(Sex::Unknown),
            phone: s(),
            email: s(),
            line1: s(),
            line2: s(),
            city: s(),
            region: s(),
            postal_code: s(),
            country: s(),
            insurance_member_id: s(),
            notes: s(),
            chart_number: s(),
            status: RwSignal::new(PatientStatus::Active),
            recall_due: s(),
            guardian_name: s(),
            guardian_relationship: s(),
            guardian_phone: s(),
            insurance: RwSignal::new(vec![]),
            consents: RwSignal::new(vec![]),
        }
    }

    fn fill(&self, p: &Patient) {
        self.given_name.set(p.given_name.clone());
        self.family_name.set(p.family_name.clone());
        self.date_of_birth.set(p.date_of_birth.clone());
        self.sex.set(p.sex);
        self.phone.set(p.phone.clone());
        self.email.set(p.email.clone());
        self.line1.set(p.address.line1.clone());
        self.line2.set(p.address.line2.clone());
        self.city.set(p.address.city.clone());
        self.region.set(p.address.region.clone());
        self.postal_code.set(p.address.postal_code.clone());
        self.country.set(p.address.country.clone());
        self.insurance_member_id.set(p.insurance_member_id.clone());
        self.notes.set(p.notes.clone());
        self.chart_number.set(p.chart_number.clone());
        self.status.set(p.status);
        self.recall_due
            .set(p.recall_due.clone().unwrap_or_default());
        let g = p.guardian.clone().unwrap_or_default();
        self.guardian_name.set(g.name);
        self.guardian_relationship.set(g.relationship);
        self.guardian_phone.set(g.phone);
        self.insurance.set(p.insurance.clone());
        self.consents.set(p.consents.clone());
    }

    fn read(&self) -> Patient {
        Patient {
            given_name: self.given_name.get_untracked(),
            family_name: self.family_name.get_untracked(),
            date_of_birth: self.date_of_birth.get_untracked(),
            sex: self.sex.get_untracked(),
            phone: self.phone.get_untracked(),
            email: self.email.get_untracked(),
            address: Address {
                line1: self.line1.get_untracked(),
                line2: self.line2.get_untracked(),
                city: self.city.get_untracked(),
                region: self.region.get_untracked(),
                postal_code: self.postal_code.get_untracked(),
                country: self.country.get_untracked(),
            },
            insurance_member_id: self.insurance_member_id.get_untracked(),
            notes: self.notes.get_untracked(),
            chart_number: self.chart_number.get_untracked().trim().to_string(),
            status: self.status.get_untracked(),
            recall_due: Some(self.recall_due.get_untracked()).filter(|d| !d.trim().is_empty()),
            guardian: {
                let g = Guardian {
                    name: self.guardian_name.get_untracked().trim().to_string(),
                    relationship: self
                        .guardian_relationship
                        .get_untracked()
                        .trim()
                        .to_string(),
                    phone: self.guardian_phone.get_untracked().trim().to_string(),
                };
                (g != Guardian::default()).then_some(g)
            },
            insurance: self
                .insurance
                .get_untracked()
                .into_iter()
                .filter(|i| i != &Insurance::default())
                .collect(),
            consents: self.consents.get_untracked(),
        }
    }
}

fn sex_label(s: Sex) -> &'static str {
    match s {
        Sex::Female => "Female",
        Sex::Male => "Male",
        Sex::Other => "Other",
        Sex::Unknown => "Unknown",
    }
}

/// Moves keyboard focus to the first field with an error.
fn focus_first(errors: &[FieldError]) {
    let Some(first) = errors.first() else { return };
    let el = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.get_element_by_id(&input_id(first.field)))
        .and_then(|e| e.dyn_into::<web_sys::HtmlElement>().ok());
    if let Some(el) = el {
        let _ = el.focus();
    }
}

#[component]
fn PatientEditor(me: Arc<Unlocked>, clinic_id: Uuid, patient_id: Option<Uuid>) -> impl IntoView {
    let app = use_app();
    let navigate = use_navigate();
    let store = app.store(clinic_id);
    let form = Form::new();
    // A new patient gets its id now, so a retried save writes the same record.
    let record_id = patient_id.unwrap_or_else(Uuid::new_v4);
    let is_new = patient_id.is_none();
    // The version this form was loaded from (0: not on the server yet).
    let known_version = RwSignal::new(0u64);
    let errors = RwSignal::new(Vec::<FieldError>::new());
    let form_error = RwSignal::new(None::<String>);
    let saving = RwSignal::new(false);
    let found = RwSignal::new(true);
    let today = today();
    let list_href = format!("/clinics/{clinic_id}/patients");
    let notes_me = me.clone();
    let access_me = me.clone();
    let store_sig: RwSignal<RecordStore> = store.clone().into();
    let restricted = move || !is_new && store_sig.with(|s| s.restriction(&record_id).is_some());

    // Usually everything is in memory already (coming from the list): fill the form at once.
    // Otherwise (a reload of the list, a direct link) load the clinic and sync first.
    let cached = if is_new {
        None
    } else {
        // A patient shown from the index only is not enough to edit: its chart is loaded first.
        store.with_untracked(|s| {
            s.chart_loaded(&record_id)
                .then(|| s.patients.get(&record_id).cloned())
                .flatten()
        })
    };
    // The patient as loaded at `known_version`.
    let loaded = StoredValue::new(None::<Patient>);
    if let Some((version, p)) = &cached {
        form.fill(p);
        known_version.set(*version);
        loaded.set_value(Some(p.clone()));
    }
    // A newer version with the same content (the chart was restricted and its records re-sealed
    // meanwhile) becomes the version this form edits; a different content is left to the conflict
    // check when saving.
    if !is_new {
        let store = store.clone();
        Effect::new(move |_| {
            let Some((v, p)) = store.with(|s| s.patients.get(&record_id).cloned()) else {
                return;
            };
            // A store change can reach this effect after the page is gone: nothing to update then.
            let newer = known_version.try_get_untracked().is_some_and(|k| v > k);
            if newer && loaded.try_with_value(|l| l.as_ref() == Some(&p)) == Some(true) {
                known_version.set(v);
            }
        });
    }
    // After an old version was restored from the history: the form shows it, as the new version.
    let refill = {
        let store = store.clone();
        move || {
            if let Some((v, p)) = store.with_untracked(|s| s.patients.get(&record_id).cloned()) {
                form.fill(&p);
                known_version.set(v);
                loaded.set_value(Some(p));
            }
        }
    };
    let ready = app.clinic(&clinic_id).is_some() && (is_new || cached.is_some());
    let loading = RwSignal::new(!ready);
    if !ready {
        let (me, store, navigate) = (me.clone(), store.clone(), navigate.clone());
        spawn_local(async move {
            let clinic = match ensure_clinic(app, &me, clinic_id).await {
                Ok(c) => c,
                Err(e) => {
                    found.set(false);
                    loading.set(false);
                    return report_error(app, &navigate, form_error, e);
                }
            };
            if !is_new {
                let synced = store.with_untracked(|s| s.synced);
                let fetched = match synced {
                    true => Ok(()),
                    false => sync(app, me.clone(), clinic.clone(), store.clone()).await,
                };
                let fetched = match fetched {
                    Ok(()) => load_chart(app, me.clone(), clinic, store.clone(), record_id).await,
                    Err(e) => Err(e),
                };
                if let Err(e) = fetched {
                    found.set(false);
                    loading.set(false);
                    return report_error(app, &navigate, form_error, e);
                }
                match store.with_untracked(|s| s.patients.get(&record_id).cloned()) {
                    Some((version, p)) => {
                        form.fill(&p);
                        known_version.set(version);
                        loaded.set_value(Some(p));
                    }
                    None => {
                        found.set(false);
                        form_error.set(Some("Patient not found.".into()));
                    }
                }
            }
            loading.set(false);
        });
    }

    let on_submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        if saving.get_untracked() || loading.get_untracked() || !found.get_untracked() {
            return;
        }
        let patient = form.read().normalized();
        form.fill(&patient);
        if let Err(errs) = patient.validate(&crate::util::today()) {
            focus_first(&errs);
            errors.set(errs);
            form_error.set(Some("Please correct the fields marked below.".into()));
            return;
        }
        errors.set(Vec::new());
        form_error.set(None);
        let Some(clinic) = app.clinic(&clinic_id) else {
            form_error.set(Some(
                "This clinic's keys are not loaded. Go back and try again.".into(),
            ));
            return;
        };
        let expected_version = known_version.get_untracked();
        saving.set(true);
        let (me, store, navigate) = (me.clone(), store.clone(), navigate.clone());
        spawn_local(async move {
            match save_patient(app, &me, clinic, record_id, expected_version, &patient).await {
                Ok((done, clinic)) => {
                    store.update(|s| {
                        s.saved_patient(record_id, done.version, done.seq, patient, &me)
                    });
                    if let Err(e) = sync(app, me, clinic, store).await {
                        if e.is_unauthenticated() {
                            return report_error(app, &navigate, form_error, e);
                        }
                    }
                    navigate(
                        &format!("/clinics/{clinic_id}/patients"),
                        Default::default(),
                    );
                }
                Err(e) if e.code == "version_conflict" => {
                    let clinic = app.clinic(&clinic_id);
                    let synced = match clinic {
                        Some(c) => sync(app, me, c, store.clone()).await,
                        None => Ok(()),
                    };
                    if let Some((v, p)) =
                        store.with_untracked(|s| s.patients.get(&record_id).cloned())
                    {
                        form.fill(&p);
                        known_version.set(v);
                        loaded.set_value(Some(p));
                    }
                    saving.set(false);
                    match synced {
                        Ok(()) => form_error.set(Some(CONFLICT.into())),
                        Err(e) => report_error(app, &navigate, form_error, e),
                    }
                }
                Err(e) => {
                    saving.set(false);
                    report_error(app, &navigate, form_error, e);
                }
            }
        });
    };

    let errs = Signal::from(errors);
    view! {
        <AppHeader />
        <main class="page">
            <nav class="crumbs" aria-label="Breadcrumb">
                <a href="/clinics">"Clinics"</a>
                " / "
                <a href=list_href.clone() id="back-to-patients">"Patients"</a>
            </nav>
            <h1>
                {if is_new {
                    "New patient".to_string()
                } else {
                    "Edit patient".to_string()
                }}
                <Show when=restricted>
                    <span class="badge restricted-badge" title="Only its care team can open this chart">
                        "Restricted to its care team"
                    </span>
                </Show>
            </h1>
            <Show when=move || loading.get()>
                <Spinner label="Opening the record…" />
            </Show>
            {move || form_error.get().map(|e| view! { <p id="form-error" class="error" role="alert">{e}</p> })}
            // Shown once the record is loaded, so nothing can be typed into a form about to be filled.
            <form class="card patient-form" on:submit=on_submit novalidate hidden=move || loading.get() || !found.get()>
                <fieldset>
                    <legend>"Patient"</legend>
                    <div class="grid">
                        <TextField field="given_name" label="Given name" value=form.given_name errors=errs
                            required=true autocomplete="off" />
                        <TextField field="family_name" label="Family name" value=form.family_name errors=errs
                            required=true autocomplete="off" />
                        <TextField field="date_of_birth" label="Date of birth" value=form.date_of_birth errors=errs
                            kind="date" required=true max=today.clone() />
                        <div class="field">
                            <label for="sex">"Sex"</label>
                            <select id="sex" name="sex"
                                on:change=move |ev| form.sex.set(Sex::parse(&event_target_value(&ev)).unwrap_or_default())>
                                {Sex::ALL
                                    .into_iter()
                                    .map(|s| {
                                        view! {
                                            <option value=s.as_str() prop:selected=move || form.sex.get() == s>
                                                {sex_label(s)}
                                            </option>
                                        }
                                    })
                                    .collect_view()}
                            </select>
                            <FieldMessage field="sex" errors=errs />
                        </div>
                    </div>
                </fieldset>
                <fieldset>
                    <legend>"Contact"</legend>
                    <div class="grid">
                        <TextField field="phone" label="Phone" value=form.phone errors=errs kind="tel"
                            autocomplete="off" />
                        <TextField field="email" label="Email" value=form.email errors=errs kind="email"
                            autocomplete="off" />
                        <TextField field="address.line1" label="Address line 1" value=form.line1 errors=errs
                            autocomplete="off" class="wide" />
                        <TextField field="address.line2" label="Address line 2" value=form.line2 errors=errs
                            autocomplete="off" class="wide" />
                        <TextField field="address.city" label="City" value=form.city errors=errs autocomplete="off" />
                        <TextField field="address.region" label="Region / state" value=form.region errors=errs
                            autocomplete="off" />
                        <TextField field="address.postal_code" label="Postal code" value=form.postal_code
                            errors=errs autocomplete="off" />
                        <TextField field="address.country" label="Country" value=form.country errors=errs
                            autocomplete="off" />
                    </div>
                </fieldset>
                <fieldset>
                    <legend>"Chart"</legend>
                    <div class="grid">
                        <TextField field="chart_number" label="Chart number" value=form.chart_number
                            errors=errs autocomplete="off" />
                        <div class="field">
                            <label for="status">"Status"</label>
                            <select id="status" name="status"
                                on:change=move |ev| form.status.set(match event_target_value(&ev).as_str() {
                                    "inactive" => PatientStatus::Inactive,
                                    "deceased" => PatientStatus::Deceased,
                                    _ => PatientStatus::Active,
                                })>
                                <option value="active" prop:selected=move || form.status.get() == PatientStatus::Active>"Active"</option>
                                <option value="inactive" prop:selected=move || form.status.get() == PatientStatus::Inactive>"Inactive"</option>
                                <option value="deceased" prop:selected=move || form.status.get() == PatientStatus::Deceased>"Deceased"</option>
                            </select>
                        </div>
                        <TextField field="recall_due" label="Recall due" value=form.recall_due errors=errs kind="date" />
                    </div>
                </fieldset>
                <fieldset>
                    <legend>"Parent or guardian (required under 18)"</legend>
                    <div class="grid">
                        <TextField field="guardian.name" label="Name" value=form.guardian_name errors=errs autocomplete="off" />
                        <TextField field="guardian.relationship" label="Relationship" value=form.guardian_relationship
                            errors=errs autocomplete="off" />
                        <TextField field="guardian.phone" label="Phone" value=form.guardian_phone errors=errs kind="tel"
                            autocomplete="off" />
                    </div>
                </fieldset>
                <fieldset>
                    <legend>"Insurance"</legend>
                    <div class="grid">
                        <TextField field="insurance_member_id" label="Primary plan member id"
                            value=form.insurance_member_id errors=errs autocomplete="off" />
                    </div>
                    <InsuranceRows plans=form.insurance errors=errs />
                </fieldset>
                <fieldset>
                    <legend>"Consents"</legend>
                    <ConsentRows consents=form.consents errors=errs />
                </fieldset>
                <fieldset>
                    <legend>"Notes"</legend>
                    <div class="grid">
                        <TextArea field="notes" label="Notes" value=form.notes errors=errs />
                    </div>
                </fieldset>
                <div class="actions">
                    <button id="save-patient" type="submit" class="button primary"
                        disabled=move || saving.get() || loading.get() || !found.get()>
                        {move || if saving.get() { "Saving…" } else { "Save patient" }}
                    </button>
                    <a class="button secondary" href=list_href>"Cancel"</a>
                </div>
            </form>
            {(!is_new).then(|| {
                let ready = Signal::derive(move || !loading.get() && found.get());
                view! {
                    <RecordHistory me=notes_me.clone() clinic_id=clinic_id chart_id=record_id record_id=record_id id="patient"
                        on_restored=Callback::new(move |()| refill()) />
                    <Appointments me=notes_me.clone() clinic_id=clinic_id chart_id=record_id ready=ready />
                    <Trends clinic_id=clinic_id chart_id=record_id ready=ready />
                    <Exams me=notes_me.clone() clinic_id=clinic_id chart_id=record_id ready=ready />
                    <Prescriptions me=notes_me.clone() clinic_id=clinic_id chart_id=record_id ready=ready />
                    <ChartExport clinic_id=clinic_id chart_id=record_id ready=ready />
                    <Billing me=notes_me.clone() clinic_id=clinic_id chart_id=record_id ready=ready />
                    <ClinicalNotes me=notes_me.clone() clinic_id=clinic_id chart_id=record_id ready=ready />
                    <Attachments me=notes_me.clone() clinic_id=clinic_id chart_id=record_id ready=ready />
                    <ChartAccess me=access_me.clone() clinic_id=clinic_id chart_id=record_id ready=ready />
                    <ChartTrash me=notes_me.clone() clinic_id=clinic_id chart_id=record_id ready=ready />
                    <ChartViewers me=access_me.clone() clinic_id=clinic_id chart_id=record_id ready=ready />
                    <ChartErase me=access_me.clone() clinic_id=clinic_id chart_id=record_id ready=ready />
                }
            })}
        </main>
    }
}

/// The patient's insurance plans: payer, member id and group per row; rows can be added and
/// removed (an empty row is dropped on save).
#[component]
fn InsuranceRows(
    plans: RwSignal<Vec<Insurance>>,
    errors: Signal<Vec<FieldError>>,
) -> impl IntoView {
    let set = move |i: usize, f: fn(&mut Insurance, String), v: String| {
        plans.update(|p| {
            if let Some(x) = p.get_mut(i) {
                f(x, v)
            }
        })
    };
    view! {
        <ul class="plan-list">
            {move || (0..plans.with(|p| p.len())).map(|i| {
                let get = move |f: fn(&Insurance) -> String| plans.with(|p| p.get(i).map(f).unwrap_or_default());
                view! {
                    <li class="plan-row">
                        <input id=format!("ins-payer-{i}") type="text" placeholder="Payer" aria-label="Payer"
                            prop:value=move || get(|x| x.payer.clone())
                            on:change=move |ev| set(i, |x, v| x.payer = v, event_target_value(&ev)) />
                        <input id=format!("ins-member-{i}") type="text" placeholder="Member id" aria-label="Member id"
                            prop:value=move || get(|x| x.member_id.clone())
                            on:change=move |ev| set(i, |x, v| x.member_id = v, event_target_value(&ev)) />
                        <input id=format!("ins-group-{i}") type="text" placeholder="Group" aria-label="Group"
                            prop:value=move || get(|x| x.group.clone())
                            on:change=move |ev| set(i, |x, v| x.group = v, event_target_value(&ev)) />
                        <button type="button" class="button small secondary"
                            on:click=move |_| plans.update(|p| { if i < p.len() { p.remove(i); } })>"Remove"</button>
                    </li>
                }
            }).collect_view()}
        </ul>
        <FieldMessage field="insurance.payer" errors=errors />
        <FieldMessage field="insurance.member_id" errors=errors />
        <FieldMessage field="insurance.group" errors=errors />
        <button id="ins-add" type="button" class="button small secondary"
            on:click=move |_| plans.update(|p| p.push(Insurance::default()))>"Add a plan"</button>
    }
}

const CONSENT_TYPES: [(ConsentType, &str, &str); 7] = [
    (ConsentType::Treatment, "treatment", "Treatment"),
    (ConsentType::Privacy, "privacy", "Privacy notice"),
    (ConsentType::DataSharing, "data_sharing", "Data sharing"),
    (ConsentType::Telehealth, "telehealth", "Telehealth"),
    (ConsentType::Photography, "photography", "Photography"),
    (ConsentType::Reminders, "reminders", "Reminders and recalls"),
    (ConsentType::Other, "other", "Other"),
];

/// Consents signed: type and date per row (a scanned form is attached under images and
/// documents).
#[component]
fn ConsentRows(consents: RwSignal<Vec<Consent>>, errors: Signal<Vec<FieldError>>) -> impl IntoView {
    view! {
        <ul class="consent-list">
            {move || (0..consents.with(|c| c.len())).map(|i| {
                let kind = move || consents.with(|c| c.get(i).map(|x| x.consent_type).unwrap_or_default());
                view! {
                    <li class="consent-row">
                        <select id=format!("consent-type-{i}") aria-label="Consent"
                            on:change=move |ev| {
                                let v = event_target_value(&ev);
                                if let Some((t, _, _)) = CONSENT_TYPES.iter().find(|(_, k, _)| *k == v) {
                                    consents.update(|c| if let Some(x) = c.get_mut(i) { x.consent_type = *t });
                                }
                            }>
                            {CONSENT_TYPES.iter().map(|(t, k, l)| {
                                let t = *t;
                                view! { <option value=*k prop:selected=move || kind() == t>{*l}</option> }
                            }).collect_view()}
                        </select>
                        <input id=format!("consent-date-{i}") type="date" aria-label="Signed on"
                            prop:value=move || consents.with(|c| c.get(i).map(|x| x.signed_at.clone()).unwrap_or_default())
                            on:change=move |ev| {
                                let v = event_target_value(&ev);
                                consents.update(|c| if let Some(x) = c.get_mut(i) { x.signed_at = v });
                            } />
                        <button type="button" class="button small secondary"
                            on:click=move |_| consents.update(|c| { if i < c.len() { c.remove(i); } })>"Remove"</button>
                    </li>
                }
            }).collect_view()}
        </ul>
        <FieldMessage field="consents.signed_at" errors=errors />
        <button id="consent-add" type="button" class="button small secondary"
            on:click=move |_| consents.update(|c| c.push(Consent { signed_at: today(), ..Default::default() }))>
            "Add a consent"
        </button>
    }
}

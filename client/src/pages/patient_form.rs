use std::sync::Arc;

use leptos::ev::SubmitEvent;
use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::components::Redirect;
use leptos_router::hooks::{use_navigate, use_params_map};
use optovault_shared::domain::{Address, FieldError, Patient, RecordBody, Sex};
use optovault_shared::Compartment;
use uuid::Uuid;
use wasm_bindgen::JsCast;

use crate::clinic::ensure_clinic;
use crate::components::app_header::AppHeader;
use crate::components::chart_access::ChartAccess;
use crate::components::clinical_notes::ClinicalNotes;
use crate::components::exams::Exams;
use crate::components::field::{input_id, FieldMessage, TextArea, TextField};
use crate::components::prescriptions::Prescriptions;
use crate::components::spinner::Spinner;
use crate::components::trends::Trends;
use crate::pages::not_found::NotFound;
use crate::pages::patients::clinic_id_param;
use crate::pages::report_error;
use crate::records::{write_record, Draft};
use crate::state::{use_app, Unlocked};
use crate::store::{sync, RecordStore};
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
            ..Default::default()
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
        store.with_untracked(|s| s.patients.get(&record_id).cloned())
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
            if v > known_version.get_untracked() && loaded.with_value(|l| l.as_ref() == Some(&p)) {
                known_version.set(v);
            }
        });
    }
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
                if let Err(e) = sync(app, me.clone(), clinic, store.clone()).await {
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
            let body = RecordBody::Patient(patient.clone());
            let draft = Draft {
                record_id,
                chart_id: record_id,
                expected_version,
                compartment: Compartment::Demographics,
                body: &body,
            };
            match write_record(app, &me, clinic, &draft).await {
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
                    <legend>"Insurance and notes"</legend>
                    <div class="grid">
                        <TextField field="insurance_member_id" label="Insurance member id"
                            value=form.insurance_member_id errors=errs autocomplete="off" />
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
                    <Trends clinic_id=clinic_id chart_id=record_id ready=ready />
                    <Exams me=notes_me.clone() clinic_id=clinic_id chart_id=record_id ready=ready />
                    <Prescriptions me=notes_me.clone() clinic_id=clinic_id chart_id=record_id ready=ready />
                    <ClinicalNotes me=notes_me.clone() clinic_id=clinic_id chart_id=record_id ready=ready />
                    <ChartAccess me=access_me.clone() clinic_id=clinic_id chart_id=record_id ready=ready />
                }
            })}
        </main>
    }
}

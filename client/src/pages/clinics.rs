use std::sync::Arc;

use leptos::ev::SubmitEvent;
use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::components::Redirect;
use leptos_router::hooks::use_navigate;

use crate::clinic::{check_name, create_clinic, load_clinics};
use crate::components::app_header::AppHeader;
use crate::components::spinner::Spinner;
use crate::pages::report_error;
use crate::state::{use_app, Clinic};
use crate::team::role_label;

#[component]
pub fn ClinicsPage() -> impl IntoView {
    let app = use_app();
    let Some(me) = app.me() else {
        return view! { <Redirect path="/login" /> }.into_any();
    };
    let navigate = use_navigate();
    let loading = RwSignal::new(true);
    let load_error = RwSignal::new(None::<String>);
    let name = RwSignal::new(String::new());
    let create_error = RwSignal::new(None::<String>);
    let creating = RwSignal::new(false);

    {
        let (me, navigate) = (me.clone(), navigate.clone());
        spawn_local(async move {
            if let Err(e) = load_clinics(app, &me).await {
                report_error(app, &navigate, load_error, e);
            }
            loading.set(false);
        });
    }

    // Verified clinics by name, then the ones that did not check out.
    let clinics = move || {
        let mut list: Vec<Arc<Clinic>> = app.clinics.with(|m| m.values().cloned().collect());
        list.sort_by_cached_key(|c| match &c.name {
            Ok(n) => (0, n.to_lowercase(), c.id),
            Err(_) => (1, String::new(), c.id),
        });
        list
    };

    let on_create = move |ev: SubmitEvent| {
        ev.prevent_default();
        if creating.get_untracked() {
            return;
        }
        let clinic_name = match check_name(&name.get_untracked()) {
            Ok(n) => n,
            Err(e) => {
                create_error.set(Some(e));
                return;
            }
        };
        create_error.set(None);
        creating.set(true);
        let (me, navigate) = (me.clone(), navigate.clone());
        spawn_local(async move {
            match create_clinic(app, &me, clinic_name).await {
                Ok(clinic) => {
                    app.put_clinic(&me, clinic);
                    name.set(String::new());
                }
                Err(e) => report_error(app, &navigate, create_error, e),
            }
            creating.set(false);
        });
    };

    view! {
        <AppHeader />
        <main class="page">
            <h1>"Clinics"</h1>
            {move || load_error.get().map(|e| view! { <p class="error" role="alert">{e}</p> })}
            <Show when=move || loading.get() && clinics().is_empty()>
                <Spinner label="Opening your clinics…" />
            </Show>
            <Show when=move || !loading.get() && clinics().is_empty()>
                <p class="empty">"You are not a member of any clinic yet. Create your first one below."</p>
            </Show>
            <ul class="clinic-list">
                <For each=clinics key=|c| c.id let:clinic>
                    <ClinicItem clinic=clinic />
                </For>
            </ul>

            <form class="card inline-form" on:submit=on_create novalidate>
                <h2>"New clinic"</h2>
                <div class="field">
                    <label for="clinic-name">"Clinic name"</label>
                    <input id="clinic-name" name="clinic-name" type="text" required autocomplete="off"
                        aria-describedby="clinic-name-help" bind:value=name />
                    <p class="help" id="clinic-name-help">
                        "Encrypted in this browser; the server never sees it."
                    </p>
                </div>
                {move || create_error.get().map(|e| view! { <p id="clinic-error" class="error" role="alert">{e}</p> })}
                <div class="actions">
                    <button id="create-clinic" type="submit" class="button primary"
                        disabled=move || creating.get()>
                        "Create clinic"
                    </button>
                    <Show when=move || creating.get()>
                        <Spinner label="Creating keys…" />
                    </Show>
                </div>
            </form>
        </main>
    }
    .into_any()
}

#[component]
fn ClinicItem(clinic: Arc<Clinic>) -> impl IntoView {
    match &clinic.name {
        Ok(name) => view! {
            <li>
                <a class="clinic-item" href=format!("/clinics/{}/patients", clinic.id)>{name.clone()}</a>
                <span class="role">{role_label(clinic.role)}</span>
            </li>
        }
        .into_any(),
        Err(why) => view! {
            <li class="clinic-unverified" data-id=clinic.id.to_string()>
                <span class="badge warn">"Unverified"</span>
                " Clinic " {clinic.id.to_string()} ": " {why.clone()}
            </li>
        }
        .into_any(),
    }
}

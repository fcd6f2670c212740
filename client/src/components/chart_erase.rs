//! Erasing a patient (GDPR Art. 17), on the patient's page, for the clinic's owners: after the
//! owner types the patient's name, the chart is restricted to them (if it was not), then every
//! version of its records, its files and every copy of its keys are deleted. What was sealed under
//! those keys can no longer be opened by anyone, wherever a copy survives. The audit log keeps
//! that a chart was erased, and when, but nothing that identifies the patient.

use std::sync::Arc;

use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::hooks::use_navigate;
use uuid::Uuid;

use crate::pages::report_error;
use crate::state::{use_app, Unlocked};

#[component]
pub fn ChartErase(
    me: Arc<Unlocked>,
    clinic_id: Uuid,
    chart_id: Uuid,
    #[prop(into)] ready: Signal<bool>,
) -> impl IntoView {
    let app = use_app();
    let nav = StoredValue::new(use_navigate());
    let me_id = me.account_id;
    let me = StoredValue::new(me);
    let owner = Memo::new(move |_| {
        app.clinic_tracked(&clinic_id)
            .is_some_and(|c| c.is_owner(&me_id))
    });
    let name = Memo::new(move |_| {
        app.store(clinic_id)
            .with(|s| s.patients.get(&chart_id).map(|(_, p)| p.display_name()))
            .unwrap_or_default()
    });
    let typed = RwSignal::new(String::new());
    let busy = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);
    let matches = move || !name.get().is_empty() && typed.get().trim() == name.get();
    let erase = move |_| {
        if busy.get_untracked() || !matches() {
            return;
        }
        busy.set(true);
        error.set(None);
        let (me, navigate) = (me.get_value(), nav.get_value());
        spawn_local(async move {
            match crate::charts::erase(app, me, clinic_id, chart_id).await {
                Ok(n) => {
                    app.notice.set(Some(format!(
                        "The patient was erased: {n} records and their keys are gone."
                    )));
                    navigate(
                        &format!("/clinics/{clinic_id}/patients"),
                        Default::default(),
                    );
                }
                Err(e) => {
                    report_error(app, &navigate, error, e);
                    busy.set(false);
                }
            }
        });
    };
    view! {
        <Show when=move || ready.get() && owner.get()>
            <section id="chart-erase" class="card danger" aria-labelledby="erase-title">
                <h2 id="erase-title">"Erase this patient"</h2>
                <p class="help">
                    "Erasure deletes every version of every record of this chart and its files, \
                     and destroys the chart's keys: nothing of it can be opened again, by anyone. \
                     It cannot be undone. The audit log keeps that a chart was erased and when, \
                     but nothing that identifies the patient."
                </p>
                <label for="erase-confirm">{move || format!("Type the patient's name ({}) to confirm", name.get())}</label>
                <input id="erase-confirm" type="text" autocomplete="off"
                    on:input=move |ev| typed.set(event_target_value(&ev)) />
                {move || error.get().map(|e| view! { <p id="erase-error" class="error" role="alert">{e}</p> })}
                <button id="erase-chart" type="button" class="button danger"
                    disabled=move || busy.get() || !matches() on:click=erase>
                    "Erase permanently"
                </button>
            </section>
        </Show>
    }
}

//! The chart's trash, on its patient's page: records deleted from this chart (their latest
//! version is a signed tombstone), who deleted them, and a way to restore each. The server purges
//! them after the clinic's trash period and logs the purge.

use std::sync::Arc;

use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::hooks::use_navigate;
use optovault_shared::domain::RecordBody;
use uuid::Uuid;

use crate::pages::report_error;
use crate::state::{use_app, Unlocked};
use crate::store::{Item, RecordStore};

/// One line saying what a deleted record was.
fn describe(body: &RecordBody) -> String {
    match body {
        RecordBody::Appointment(a) => {
            format!("Appointment {} ({})", a.start.replace('T', " "), a.reason)
        }
        RecordBody::ClinicalNote(_) => "Clinical note".into(),
        RecordBody::Exam(e) => format!("Exam of {}", e.date),
        RecordBody::Attachment(a) => format!("File {}", a.file_name),
        other => other.kind().replace('_', " "),
    }
}

#[component]
pub fn ChartTrash(
    me: Arc<Unlocked>,
    clinic_id: Uuid,
    chart_id: Uuid,
    #[prop(into)] ready: Signal<bool>,
) -> impl IntoView {
    let app = use_app();
    let navigate = use_navigate();
    let store: RwSignal<RecordStore> = app.store(clinic_id).into();
    let deleted = Memo::new(move |_| store.with(|s| s.trash_of(&chart_id)));
    let busy = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);
    let restore = move |id: Uuid| {
        if busy.get_untracked() {
            return;
        }
        busy.set(true);
        error.set(None);
        let (me, navigate) = (me.clone(), navigate.clone());
        spawn_local(async move {
            if let Err(e) = crate::records::restore_item(app, me, clinic_id, chart_id, id).await {
                report_error(app, &navigate, error, e);
            }
            busy.set(false);
        });
    };
    let row = move |i: Item| {
        let restore = restore.clone();
        view! {
            <li class="trash-item" data-id=i.id.to_string() data-kind=i.body.kind()>
                <span class="trash-what">{describe(&i.body)}</span>
                <span class="help">{format!(" · deleted by {}", i.author)}</span>
                <button type="button" class="button small secondary trash-restore" disabled=move || busy.get()
                    on:click=move |_| restore(i.id)>"Restore"</button>
            </li>
        }
    };
    view! {
        <Show when=move || ready.get() && deleted.with(|d| !d.is_empty())>
            <section id="chart-trash" class="card" aria-labelledby="trash-title">
                <h2 id="trash-title">"Deleted records"</h2>
                <p class="help">"Kept in the trash for the clinic's trash period (30 days unless its owner set another), then purged; the purge is logged."</p>
                {move || error.get().map(|e| view! { <p class="error" role="alert">{e}</p> })}
                <ul class="trash-list">
                    {
                        let row = row.clone();
                        move || deleted.get().into_iter().map(row.clone()).collect_view()
                    }
                </ul>
            </section>
        </Show>
    }
}

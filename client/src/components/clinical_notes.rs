//! The clinical notes of one chart, on the patient's page: listed oldest first, and a box to add
//! one. Shown only when my keyring holds a clinical key (front desk and billing never get one).

use std::sync::Arc;

use leptos::ev::SubmitEvent;
use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::hooks::use_navigate;
use optovault_shared::domain::{ClinicalNote, RecordBody};
use optovault_shared::Compartment;
use uuid::Uuid;

use crate::components::delete_button::DeleteButton;
use crate::pages::report_error;
use crate::records::{write_record, Draft};
use crate::state::{use_app, Unlocked};
use crate::store::{sync, Note, RecordStore};

#[component]
pub fn ClinicalNotes(
    me: Arc<Unlocked>,
    clinic_id: Uuid,
    /// The patient's record id.
    chart_id: Uuid,
    /// The patient is loaded and found.
    #[prop(into)]
    ready: Signal<bool>,
) -> impl IntoView {
    let app = use_app();
    let navigate = use_navigate();
    let store_arc = app.store(clinic_id);
    let store: RwSignal<RecordStore> = store_arc.clone().into();
    let text = RwSignal::new(String::new());
    let error = RwSignal::new(None::<String>);
    let saving = RwSignal::new(false);
    // Chosen once per note, so a retried save writes the same record.
    let draft_id = RwSignal::new(Uuid::new_v4());

    let allowed = move || {
        app.clinic_tracked(&clinic_id)
            .is_some_and(|c| c.holds(Compartment::Clinical))
    };
    let notes = Memo::new(move |_| store.with(|s| s.notes_of(&chart_id)));
    let item_me = StoredValue::new(me.clone());

    let on_submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        if saving.get_untracked() {
            return;
        }
        let note = ClinicalNote {
            text: text.get_untracked().trim().to_string(),
        };
        if let Err(errs) = note.validate() {
            let msg: Vec<String> = errs.into_iter().map(|e| e.message).collect();
            error.set(Some(msg.join(" ")));
            return;
        }
        let Some(clinic) = app.clinic(&clinic_id) else {
            error.set(Some("This clinic's keys are not loaded.".into()));
            return;
        };
        error.set(None);
        saving.set(true);
        let (me, store_arc, navigate) = (me.clone(), store_arc.clone(), navigate.clone());
        spawn_local(async move {
            let record_id = draft_id.get_untracked();
            let body = RecordBody::ClinicalNote(note.clone());
            let draft = Draft {
                record_id,
                chart_id,
                expected_version: 0,
                compartment: Compartment::Clinical,
                body: &body,
                previous: None,
                intent: crate::records::Intent::Save,
            };
            match write_record(app, &me, clinic, &draft).await {
                Ok((done, clinic)) => {
                    store_arc.update(|s| s.saved_item(chart_id, record_id, 1, done.seq, body, &me));
                    text.set(String::new());
                    draft_id.set(Uuid::new_v4());
                    if let Err(e) = sync(app, me, clinic, store_arc).await {
                        report_error(app, &navigate, error, e);
                    }
                }
                Err(e) => report_error(app, &navigate, error, e),
            }
            saving.set(false);
        });
    };

    view! {
        <Show when=move || ready.get() && allowed()>
            <section id="clinical-notes" class="card notes" aria-labelledby="notes-title">
                <h2 id="notes-title">"Clinical notes"</h2>
                <Show when=move || notes.with(|n| n.is_empty())>
                    <p class="empty">"No clinical notes yet."</p>
                </Show>
                <ul class="note-list">
                    <For each=move || notes.get() key=|n| (n.id, n.version) let:note>
                        <NoteItem note=note me=item_me.get_value() clinic_id=clinic_id chart_id=chart_id />
                    </For>
                </ul>
                <form class="note-form" on:submit=on_submit.clone() novalidate>
                    <div class="field wide">
                        <label for="note-text">"New note"</label>
                        <textarea id="note-text" name="note-text" rows="3"
                            prop:value=move || text.get()
                            on:input=move |ev| text.set(event_target_value(&ev))></textarea>
                    </div>
                    {move || error.get().map(|e| view! { <p id="note-error" class="error" role="alert">{e}</p> })}
                    <div class="actions">
                        <button id="note-save" type="submit" class="button primary"
                            disabled=move || saving.get()>
                            {move || if saving.get() { "Saving…" } else { "Add note" }}
                        </button>
                    </div>
                </form>
            </section>
        </Show>
    }
}

#[component]
fn NoteItem(note: Note, me: Arc<Unlocked>, clinic_id: Uuid, chart_id: Uuid) -> impl IntoView {
    view! {
        <li class="clinical-note" data-id=note.id.to_string()>
            <p class="note-text">{note.text}</p>
            <p class="note-meta">
                "By " <span class="note-author">{note.author}</span>
                {note.former.then(|| view! { <span class="badge former">"Written by a former member"</span> })}
                " "
                <DeleteButton me=me clinic_id=clinic_id chart_id=chart_id record_id=note.id class="note-delete" />
            </p>
        </li>
    }
}

//! "Delete" on a chart record: writes its signed tombstone, so the record moves to the chart's
//! trash (restorable there until the clinic's trash period ends).

use std::sync::Arc;

use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::hooks::use_navigate;
use uuid::Uuid;

use crate::pages::report_error;
use crate::state::{use_app, Unlocked};

#[component]
pub fn DeleteButton(
    me: Arc<Unlocked>,
    clinic_id: Uuid,
    chart_id: Uuid,
    record_id: Uuid,
    /// Class naming the button for its list (e.g. `appt-delete`).
    class: &'static str,
) -> impl IntoView {
    let app = use_app();
    let nav = StoredValue::new(use_navigate());
    let me = StoredValue::new(me);
    let busy = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);
    let delete = move |_| {
        if busy.get_untracked() {
            return;
        }
        busy.set(true);
        error.set(None);
        let (me, navigate) = (me.get_value(), nav.get_value());
        spawn_local(async move {
            if let Err(e) =
                crate::records::delete_item(app, me, clinic_id, chart_id, record_id).await
            {
                report_error(app, &navigate, error, e);
            }
            busy.set(false);
        });
    };
    view! {
        <button type="button" class=format!("button small secondary {class}")
            disabled=move || busy.get() on:click=delete>"Delete"</button>
        {move || error.get().map(|e| view! { <span class="error" role="alert">{e}</span> })}
    }
}

//! A read-only text field with a copy button (for links that must be passed on exactly).

use leptos::prelude::*;
use wasm_bindgen::JsCast;

#[component]
pub fn CopyField(
    id: &'static str,
    label: &'static str,
    #[prop(into)] value: Signal<String>,
) -> impl IntoView {
    let copied = RwSignal::new(false);
    let copy = move |_| {
        let Some(window) = web_sys::window() else {
            return;
        };
        // Selected as well, so it can be copied by hand where the clipboard is not available.
        if let Some(input) = window
            .document()
            .and_then(|d| d.get_element_by_id(id))
            .and_then(|e| e.dyn_into::<web_sys::HtmlInputElement>().ok())
        {
            input.select();
        }
        let _ = window
            .navigator()
            .clipboard()
            .write_text(&value.get_untracked());
        copied.set(true);
    };
    Effect::new(move |_| {
        value.track();
        copied.set(false);
    });
    view! {
        <div class="field copy-field">
            <label for=id>{label}</label>
            <div class="copy-row">
                <input id=id type="text" readonly prop:value=move || value.get() spellcheck="false" />
                <button type="button" class="button secondary" id=format!("{id}-copy") on:click=copy>
                    {move || if copied.get() { "Copied" } else { "Copy" }}
                </button>
            </div>
        </div>
    }
}

//! Labelled form fields that show their validation errors beside them.

use leptos::prelude::*;
use optovault_shared::domain::FieldError;

/// The element id of the input for a `FieldError::field` name (`address.line1` -> `address-line1`).
pub fn input_id(field: &str) -> String {
    field.replace('.', "-")
}

fn message(errors: &[FieldError], field: &str) -> Option<String> {
    let msgs: Vec<&str> = errors
        .iter()
        .filter(|e| e.field == field)
        .map(|e| e.message.as_str())
        .collect();
    (!msgs.is_empty()).then(|| msgs.join(" "))
}

/// The error text of one field (nothing when it has none).
#[component]
pub fn FieldMessage(
    field: &'static str,
    #[prop(into)] errors: Signal<Vec<FieldError>>,
) -> impl IntoView {
    let error_id = format!("{}-error", input_id(field));
    move || {
        errors.with(|e| message(e, field)).map(|m| {
            view! {
                <p class="field-error" data-field=field id=error_id.clone()>
                    {m}
                </p>
            }
        })
    }
}

fn described_by(
    errors: Signal<Vec<FieldError>>,
    field: &'static str,
) -> impl Fn() -> Option<String> {
    move || {
        errors
            .with(|e| e.iter().any(|x| x.field == field))
            .then(|| format!("{}-error", input_id(field)))
    }
}

/// A text-like `<input>` with its label and error.
#[component]
pub fn TextField(
    /// Name of the field as in `FieldError::field`; the input's id is derived from it.
    field: &'static str,
    label: &'static str,
    value: RwSignal<String>,
    #[prop(into)] errors: Signal<Vec<FieldError>>,
    #[prop(default = "text")] kind: &'static str,
    #[prop(optional)] autocomplete: Option<&'static str>,
    #[prop(optional)] required: bool,
    #[prop(optional)] maxlength: Option<u32>,
    #[prop(optional, into)] max: Option<String>,
    #[prop(optional)] class: Option<&'static str>,
) -> impl IntoView {
    let id = input_id(field);
    let invalid = move || errors.with(|e| e.iter().any(|x| x.field == field));
    view! {
        <div class=format!("field {}", class.unwrap_or_default())>
            <label for=id.clone()>
                {label}
                {required.then_some(view! { <span class="req" aria-hidden="true">" *"</span> })}
            </label>
            <input
                id=id
                name=field
                type=kind
                autocomplete=autocomplete
                required=required
                maxlength=maxlength.map(|m| m.to_string())
                max=max
                aria-invalid=move || invalid().then_some("true")
                aria-describedby=described_by(errors, field)
                prop:value=move || value.get()
                on:input=move |ev| value.set(event_target_value(&ev))
            />
            <FieldMessage field=field errors=errors />
        </div>
    }
}

/// A `<textarea>` with its label and error.
#[component]
pub fn TextArea(
    field: &'static str,
    label: &'static str,
    value: RwSignal<String>,
    #[prop(into)] errors: Signal<Vec<FieldError>>,
    #[prop(optional)] maxlength: Option<u32>,
) -> impl IntoView {
    let id = input_id(field);
    let invalid = move || errors.with(|e| e.iter().any(|x| x.field == field));
    view! {
        <div class="field wide">
            <label for=id.clone()>{label}</label>
            <textarea
                id=id
                name=field
                rows="4"
                maxlength=maxlength.map(|m| m.to_string())
                aria-invalid=move || invalid().then_some("true")
                aria-describedby=described_by(errors, field)
                prop:value=move || value.get()
                on:input=move |ev| value.set(event_target_value(&ev))
            ></textarea>
            <FieldMessage field=field errors=errors />
        </div>
    }
}

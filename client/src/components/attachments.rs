//! Images and documents of one chart (clinical compartment): attach a file (encrypted in this
//! browser, uploaded with a progress bar), see thumbnails, download and decrypt, and finish an
//! upload that was interrupted.

use std::sync::Arc;

use base64::Engine;
use leptos::ev::SubmitEvent;
use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::hooks::use_navigate;
use optovault_shared::chart::attachment::{Attachment, AttachmentCategory};
use optovault_shared::chart::EyeSel;
use optovault_shared::domain::RecordBody;
use optovault_shared::Compartment;
use uuid::Uuid;
use wasm_bindgen::JsCast;

use crate::api;
use crate::components::delete_button::DeleteButton;
use crate::files::{self, Describe, Progress};
use crate::pages::report_error;
use crate::state::{use_app, Unlocked};
use crate::store::RecordStore;
use crate::util::today;

const CATEGORIES: [(AttachmentCategory, &str, &str); 5] = [
    (
        AttachmentCategory::FundusPhoto,
        "fundus_photo",
        "Fundus photo",
    ),
    (AttachmentCategory::Oct, "oct", "OCT"),
    (
        AttachmentCategory::VisualField,
        "visual_field",
        "Visual field",
    ),
    (AttachmentCategory::Consent, "consent", "Scanned consent"),
    (AttachmentCategory::Other, "other", "Other"),
];

fn category_label(c: AttachmentCategory) -> &'static str {
    CATEGORIES
        .iter()
        .find(|(x, _, _)| *x == c)
        .map(|(_, _, label)| *label)
        .unwrap_or("Other")
}

/// "2.4 MB" style sizes (decimal units, as file managers show them).
pub fn human_size(bytes: u64) -> String {
    match bytes {
        b if b >= 1_000_000 => format!("{:.1} MB", b as f64 / 1_000_000.0),
        b if b >= 1_000 => format!("{} kB", b / 1_000),
        b => format!("{b} bytes"),
    }
}

/// The file chosen in an `<input type=file>`.
fn picked(input_id: &str) -> Option<web_sys::File> {
    web_sys::window()?
        .document()?
        .get_element_by_id(input_id)?
        .dyn_into::<web_sys::HtmlInputElement>()
        .ok()?
        .files()?
        .get(0)
}

#[component]
pub fn Attachments(
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
    let store: RwSignal<RecordStore> = app.store(clinic_id).into();
    let category = RwSignal::new(AttachmentCategory::FundusPhoto);
    let eye = RwSignal::new(None::<EyeSel>);
    let description = RwSignal::new(String::new());
    let progress = RwSignal::new(None::<Progress>);
    let error = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);
    // file id -> whether the server holds it complete (None until asked).
    let complete = RwSignal::new(std::collections::BTreeMap::<Uuid, bool>::new());

    let allowed = move || {
        app.clinic_tracked(&clinic_id)
            .is_some_and(|c| c.holds(Compartment::Clinical))
    };
    let attachments = Memo::new(move |_| {
        store.with(|s| {
            let mut v: Vec<(Uuid, Attachment)> = s
                .items_of(&chart_id)
                .into_iter()
                .filter_map(|i| match i.body {
                    RecordBody::Attachment(a) => Some((i.id, a)),
                    _ => None,
                })
                .collect();
            v.reverse();
            v
        })
    });
    // Ask the server once per file whether its upload was completed.
    Effect::new(move |_| {
        for (id, _) in attachments.get() {
            if complete.with_untracked(|m| m.contains_key(&id)) {
                continue;
            }
            complete.update(|m| {
                m.insert(id, true);
            });
            spawn_local(async move {
                if let Ok(s) = api::file_status(clinic_id, id).await {
                    complete.update(|m| {
                        m.insert(id, s.complete);
                    });
                }
            });
        }
    });

    let on_attach = {
        let (me, navigate) = (me.clone(), navigate.clone());
        move |ev: SubmitEvent| {
            ev.prevent_default();
            if busy.get_untracked() {
                return;
            }
            let Some(file) = picked("file-input") else {
                error.set(Some("Choose a file first.".into()));
                return;
            };
            let about = Describe {
                category: category.get_untracked(),
                eye: eye.get_untracked(),
                taken: Some(today()),
                description: description.get_untracked().trim().to_string(),
            };
            busy.set(true);
            error.set(None);
            let (me, navigate) = (me.clone(), navigate.clone());
            spawn_local(async move {
                let result =
                    files::attach(app, me, clinic_id, chart_id, file, about, &today(), |p| {
                        progress.set(Some(p))
                    })
                    .await;
                match result {
                    Ok(id) => {
                        complete.update(|m| {
                            m.insert(id, true);
                        });
                        description.set(String::new());
                        if let Some(input) = web_sys::window()
                            .and_then(|w| w.document())
                            .and_then(|d| d.get_element_by_id("file-input"))
                            .and_then(|e| e.dyn_into::<web_sys::HtmlInputElement>().ok())
                        {
                            input.set_value("");
                        }
                    }
                    Err(e) => report_error(app, &navigate, error, e),
                }
                busy.set(false);
            });
        }
    };

    let download = move |id: Uuid, a: Attachment| {
        if busy.get_untracked() {
            return;
        }
        busy.set(true);
        error.set(None);
        spawn_local(async move {
            match files::fetch(clinic_id, chart_id, id, &a, |p| progress.set(Some(p))).await {
                Ok(blob) => {
                    if let Err(e) = files::save_as(&blob, &a.file_name) {
                        error.set(Some(e.message));
                    }
                }
                Err(e) => error.set(Some(e.message)),
            }
            busy.set(false);
        });
    };

    let resume = {
        let (me, navigate) = (me.clone(), navigate.clone());
        move |id: Uuid, a: Attachment| {
            if busy.get_untracked() {
                return;
            }
            let input = format!("resume-{id}");
            let Some(file) = picked(&input) else {
                error.set(Some(format!(
                    "Choose {} again to finish its upload.",
                    a.file_name
                )));
                return;
            };
            busy.set(true);
            error.set(None);
            let (me, navigate) = (me.clone(), navigate.clone());
            spawn_local(async move {
                match files::resume(app, me, clinic_id, chart_id, id, &a, file, |p| {
                    progress.set(Some(p))
                })
                .await
                {
                    Ok(()) => complete.update(|m| {
                        m.insert(id, true);
                    }),
                    Err(e) => report_error(app, &navigate, error, e),
                }
                busy.set(false);
            });
        }
    };

    let row_me = StoredValue::new(me.clone());
    let row = move |(id, a): (Uuid, Attachment)| {
        let thumb = a.thumbnail.as_ref().map(|t| {
            format!(
                "data:{};base64,{}",
                t.mime_type,
                base64::engine::general_purpose::STANDARD.encode(t.data.as_slice())
            )
        });
        let (a_dl, a_resume) = (a.clone(), a.clone());
        let resume = resume.clone();
        let is_complete = move || complete.with(|m| m.get(&id).copied().unwrap_or(true));
        let input_id = format!("resume-{id}");
        view! {
            <li class="attachment" data-id=id.to_string()>
                {thumb.map(|src| view! { <img class="thumbnail" src=src alt="" width="80" /> })}
                <div class="attachment-info">
                    <span class="attachment-name">{a.file_name.clone()}</span>
                    <span class="help">
                        {format!(
                            " · {} · {}{}{}",
                            category_label(a.category),
                            human_size(a.size_bytes),
                            a.eye.map(|e| format!(" · {}", e.as_str())).unwrap_or_default(),
                            a.taken.clone().map(|t| format!(" · {t}")).unwrap_or_default(),
                        )}
                    </span>
                    {(!a.description.is_empty()).then(|| view! { <p class="attachment-description">{a.description.clone()}</p> })}
                </div>
                <Show
                    when=is_complete
                    fallback=move || {
                        let (resume, a) = (resume.clone(), a_resume.clone());
                        let input_id = input_id.clone();
                        view! {
                            <span class="badge warning">"Upload not finished"</span>
                            <input id=input_id.clone() type="file" class="resume-input" />
                            <button type="button" class="button secondary small attachment-resume"
                                disabled=move || busy.get()
                                on:click=move |_| resume(id, a.clone())>"Finish upload"</button>
                        }
                    }
                >
                    {
                        let a = a_dl.clone();
                        view! {
                            <button type="button" class="button secondary small attachment-download"
                                disabled=move || busy.get()
                                on:click=move |_| download(id, a.clone())>"Download"</button>
                        }
                    }
                </Show>
                // Its chunks go when the trash is purged.
                <DeleteButton me=row_me.get_value() clinic_id=clinic_id chart_id=chart_id
                    record_id=id class="attachment-delete" />
            </li>
        }
    };

    view! {
        <Show when=move || ready.get() && allowed()>
            <section id="attachments" class="card attachments" aria-labelledby="attachments-title">
                <h2 id="attachments-title">"Images and documents"</h2>
                <p class="help">
                    "Encrypted in this browser before upload (up to 50 MB each); the file name stays \
                     inside the encrypted record."
                </p>
                <ul class="attachment-list">
                    {
                        let row = row.clone();
                        move || attachments.get().into_iter().map(row.clone()).collect_view()
                    }
                </ul>
                <Show when=move || attachments.with(|a| a.is_empty())>
                    <p class="empty">"No images or documents yet."</p>
                </Show>
                <form id="attach-form" class="inline-form attach-form" on:submit=on_attach.clone() novalidate>
                    <div class="field">
                        <label for="file-input">"File"</label>
                        <input id="file-input" type="file" />
                    </div>
                    <div class="field">
                        <label for="file-category">"Kind"</label>
                        <select id="file-category" on:change=move |ev| {
                            let v = event_target_value(&ev);
                            if let Some((c, _, _)) = CATEGORIES.iter().find(|(_, key, _)| *key == v) {
                                category.set(*c);
                            }
                        }>
                            {CATEGORIES.iter().map(|(c, key, label)| {
                                let c = *c;
                                view! { <option value=*key prop:selected=move || category.get() == c>{*label}</option> }
                            }).collect_view()}
                        </select>
                    </div>
                    <div class="field">
                        <label for="file-eye">"Eye"</label>
                        <select id="file-eye" on:change=move |ev| eye.set(match event_target_value(&ev).as_str() {
                            "od" => Some(EyeSel::Od),
                            "os" => Some(EyeSel::Os),
                            "ou" => Some(EyeSel::Ou),
                            _ => None,
                        })>
                            <option value="">"—"</option>
                            <option value="od">"OD (right)"</option>
                            <option value="os">"OS (left)"</option>
                            <option value="ou">"OU (both)"</option>
                        </select>
                    </div>
                    <div class="field wide">
                        <label for="file-description">"Description"</label>
                        <input id="file-description" type="text" maxlength="200" bind:value=description />
                    </div>
                    <button id="file-attach" type="submit" class="button primary" disabled=move || busy.get()>
                        "Encrypt and upload"
                    </button>
                </form>
                {move || progress.get().map(|p| view! {
                    <div class="upload-progress" role="status">
                        <progress id="file-progress" max="100" value=p.percent()></progress>
                        <span id="file-progress-label">{p.label()}</span>
                    </div>
                })}
                {move || error.get().map(|e| view! { <p id="file-error" class="error" role="alert">{e}</p> })}
            </section>
        </Show>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_a_file_manager() {
        assert_eq!(human_size(999), "999 bytes");
        assert_eq!(human_size(20_971_520), "21.0 MB");
        assert_eq!(human_size(4_500), "4 kB");
        assert_eq!(category_label(AttachmentCategory::Oct), "OCT");
    }
}

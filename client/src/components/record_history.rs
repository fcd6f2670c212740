//! A record's history: every version the server kept, each verified (its author's signature and
//! seal) before it is shown, with who wrote it, when, and what changed from the version before,
//! field by field. An old version can be restored: it is saved again as a new version (the
//! history only ever grows).

use std::sync::Arc;

use leptos::prelude::*;
use leptos::task::spawn_local;
use optovault_shared::audit::{field_changes, FieldChange};
use optovault_shared::domain::RecordBody;
use uuid::Uuid;

use crate::api;
use crate::state::{use_app, Unlocked};
use crate::store::{open_change, Opened};
use crate::util::local_time;

/// One version as shown.
#[derive(Clone, Debug, PartialEq)]
struct Version {
    version: u64,
    at: i64,
    author: String,
    /// The opened body, or why it is not trusted.
    body: Result<RecordBody, String>,
    /// What changed from the version before (all fields for the first).
    changes: Vec<FieldChange>,
}

fn as_json(b: &RecordBody) -> serde_json::Value {
    serde_json::to_value(b).unwrap_or_default()
}

/// Opens every version and checks each is this record's, in order.
fn open_versions(
    clinic: &crate::state::Clinic,
    record_id: Uuid,
    stored: Vec<optovault_shared::wire::StoredRecord>,
) -> Vec<Version> {
    let mut out: Vec<Version> = Vec::new();
    for (i, s) in stored.into_iter().enumerate() {
        let env = &s.envelope;
        let (opened, author) = open_change(clinic, env);
        let body = if env.record_id != record_id || env.version != i as u64 + 1 {
            Err("out of place: not this record's next version".to_string())
        } else {
            match opened {
                Opened::Patient(p) => Ok(RecordBody::Patient(p)),
                Opened::Item { body, .. } => Ok(body),
                Opened::Deleted { .. } => {
                    Err("deleted in this version (see the trash)".to_string())
                }
                Opened::Bad(why) => Err(why),
                Opened::Index(_) | Opened::Skip => Err("not a version you can open".to_string()),
            }
        };
        let previous = out
            .iter()
            .rev()
            .find_map(|v| v.body.as_ref().ok().map(as_json));
        let changes = match &body {
            Ok(b) => field_changes(previous.as_ref(), &as_json(b)),
            Err(_) => Vec::new(),
        };
        out.push(Version {
            version: env.version,
            at: s.updated_at,
            author: author
                .map(|a| a.username().to_string())
                .unwrap_or_else(|| "unknown author".into()),
            body,
            changes,
        });
    }
    out
}

/// Saves `body` again as the next version of the record.
async fn restore(
    app: crate::state::AppState,
    me: Arc<Unlocked>,
    clinic_id: Uuid,
    chart_id: Uuid,
    record_id: Uuid,
    current: u64,
    body: RecordBody,
) -> Result<(), api::ApiError> {
    match body {
        RecordBody::Patient(p) => {
            let clinic = crate::clinic::ensure_clinic(app, &me, clinic_id).await?;
            let (done, clinic) =
                crate::patient_index::save_patient(app, &me, clinic, record_id, current, &p)
                    .await?;
            let store = app.store(clinic_id);
            store.update(|s| s.saved_patient(record_id, done.version, done.seq, p, &me));
            crate::store::sync(app, me, clinic, store).await
        }
        body => crate::records::save_item(app, me, clinic_id, chart_id, record_id, current, body)
            .await
            .map(|_| ()),
    }
}

#[component]
pub fn RecordHistory(
    me: Arc<Unlocked>,
    clinic_id: Uuid,
    chart_id: Uuid,
    record_id: Uuid,
    /// Prefix of element ids (several histories can be on one page).
    #[prop(into)]
    id: String,
    /// Called once an old version is saved again (a form showing the record refills from it).
    #[prop(optional)]
    on_restored: Option<Callback<()>>,
) -> impl IntoView {
    let app = use_app();
    let open = RwSignal::new(false);
    let versions = RwSignal::new(None::<Result<Vec<Version>, String>>);
    let notice = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);
    let me_stored = StoredValue::new(me);
    let (toggle_id, notice_id) = (
        format!("{id}-history-toggle"),
        format!("{id}-history-notice"),
    );
    let load = move || {
        versions.set(None);
        spawn_local(async move {
            let Some(clinic) = app.clinic(&clinic_id) else {
                versions.set(Some(Err("The clinic is not open.".into())));
                return;
            };
            versions.set(Some(
                api::record_history(clinic_id, record_id)
                    .await
                    .map(|h| open_versions(&clinic, record_id, h.versions))
                    .map_err(|e| e.message),
            ));
        });
    };
    let toggle = move |_| {
        let now = !open.get_untracked();
        open.set(now);
        notice.set(None);
        if now {
            load();
        }
    };
    let restore_version = move |v: Version| {
        let Ok(body) = v.body.clone() else { return };
        let current = versions
            .with_untracked(|vs| {
                vs.as_ref()
                    .and_then(|r| r.as_ref().ok())
                    .and_then(|l| l.last().map(|x| x.version))
            })
            .unwrap_or(0);
        busy.set(true);
        notice.set(None);
        let me = me_stored.get_value();
        spawn_local(async move {
            match restore(app, me, clinic_id, chart_id, record_id, current, body).await {
                Ok(()) => {
                    if let Some(cb) = on_restored {
                        let _ = cb.try_run(());
                    }
                    notice.set(Some(format!(
                        "Version {} restored as version {}.",
                        v.version,
                        current + 1
                    )));
                    load();
                }
                Err(e) => notice.set(Some(e.message)),
            }
            busy.set(false);
        });
    };

    view! {
        <div class="record-history" id=format!("{id}-history")>
            <button type="button" class="button secondary" id=toggle_id on:click=toggle>
                {move || if open.get() { "Hide history" } else { "History" }}
            </button>
            {move || notice.get().map(|n| view! { <p class="notice" id=notice_id.clone()>{n}</p> })}
            <Show when=move || open.get()>
                {move || match versions.get() {
                    None => view! { <p class="muted">"Loading history…"</p> }.into_any(),
                    Some(Err(why)) => view! { <p class="error" role="alert">{why}</p> }.into_any(),
                    Some(Ok(list)) => {
                        let last = list.last().map(|v| v.version).unwrap_or(0);
                        let locked = list
                            .last()
                            .is_some_and(|v| v.body.as_ref().is_ok_and(RecordBody::is_locked));
                        view! {
                            <ol class="history-list" reversed>
                                {list.into_iter().rev().map(|v| {
                                    let restorable = !locked && v.version != last && v.body.is_ok();
                                    let bad = v.body.as_ref().err().cloned();
                                    let changes = v.changes.clone();
                                    let header = format!("Version {} — {} — {}", v.version, v.author, local_time(v.at));
                                    let for_restore = v.clone();
                                    view! {
                                        <li class="history-version" data-version=v.version.to_string()>
                                            <strong>{header}</strong>
                                            {(v.version == last).then(|| view! { <span class="badge">" current"</span> })}
                                            {bad.map(|why| view! { <p class="error">{format!("Not shown: {why}")}</p> })}
                                            <ul class="history-changes">
                                                {changes.into_iter().map(|c| view! {
                                                    <li class="history-change" data-field=c.field.clone()>
                                                        {format!("{}: “{}” → “{}”", c.field, c.from, c.to)}
                                                    </li>
                                                }).collect_view()}
                                            </ul>
                                            {restorable.then(|| view! {
                                                <button type="button" class="button secondary history-restore"
                                                    disabled=move || busy.get()
                                                    on:click=move |_| restore_version(for_restore.clone())>
                                                    "Restore this version"
                                                </button>
                                            })}
                                        </li>
                                    }
                                }).collect_view()}
                            </ol>
                        }.into_any()
                    }
                }}
            </Show>
        </div>
    }
}

use std::sync::Arc;

use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::components::Redirect;
use leptos_router::hooks::{use_navigate, use_params_map};
use uuid::Uuid;

use crate::clinic::ensure_clinic;
use crate::components::app_header::AppHeader;
use crate::components::spinner::Spinner;
use crate::pages::not_found::NotFound;
use crate::pages::report_error;
use crate::state::{use_app, Clinic, Unlocked};
use crate::store::{sync, RecordStore};

/// The `:clinic_id` route parameter.
pub fn clinic_id_param() -> Memo<Option<Uuid>> {
    let params = use_params_map();
    Memo::new(move |_| {
        params
            .read()
            .get("clinic_id")
            .and_then(|s| Uuid::parse_str(&s).ok())
    })
}

#[component]
pub fn PatientsPage() -> impl IntoView {
    let app = use_app();
    let Some(me) = app.me() else {
        return view! { <Redirect path="/login" /> }.into_any();
    };
    let clinic_id = clinic_id_param();
    (move || match clinic_id.get() {
        Some(id) => view! { <PatientList me=me.clone() clinic_id=id /> }.into_any(),
        None => view! { <NotFound /> }.into_any(),
    })
    .into_any()
}

/// One line of the table.
#[derive(Clone, PartialEq)]
struct Row {
    id: Uuid,
    version: u64,
    name: String,
    date_of_birth: String,
    phone: String,
    member_id: String,
    /// Why this record is not trusted, if it is not.
    flag: Option<String>,
    /// The former member who wrote this version, if it was one.
    former: Option<String>,
    /// The chart is restricted to a care team (I am on it, or I would not have it).
    restricted: bool,
}

/// Patients put in the table at a time.
const PAGE_ROWS: usize = 100;

fn rows(s: &RecordStore, query: &str) -> Vec<Row> {
    let words = optovault_shared::domain::query_words(query);
    let mut rows: Vec<(String, Row)> = s
        .patients
        .iter()
        .filter_map(|(id, (version, p))| {
            let rank = match s.search.get(id) {
                Some(key) => key.rank(&words),
                None => p.search_rank(query),
            };
            rank.map(|rank| (id, version, p, rank))
        })
        .map(|(id, version, p, rank)| {
            // Exact matches first, then those found despite a typo; by name within each.
            let sort = format!(
                "{rank}\u{0}{}\u{0}{}",
                p.family_name.to_lowercase(),
                p.given_name.to_lowercase()
            );
            let row = Row {
                id: *id,
                version: *version,
                name: p.display_name(),
                date_of_birth: p.date_of_birth.clone(),
                phone: p.phone.clone(),
                member_id: p.insurance_member_id.clone(),
                flag: s.errors.get(id).cloned(),
                former: s.former.get(id).cloned(),
                restricted: s.restriction(id).is_some(),
            };
            (sort, row)
        })
        .collect();
    rows.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.id.cmp(&b.1.id)));
    rows.into_iter().map(|(_, r)| r).collect()
}

#[component]
fn PatientList(me: Arc<Unlocked>, clinic_id: Uuid) -> impl IntoView {
    let app = use_app();
    let navigate = use_navigate();
    let store_arc = app.store(clinic_id);
    let store: RwSignal<RecordStore> = store_arc.clone().into();
    let clinic = RwSignal::new(None::<Arc<Clinic>>);
    let error = RwSignal::new(None::<String>);
    let query = RwSignal::new(String::new());
    let me_id = me.account_id;
    // A message from the page that sent us here (e.g. a patient erased).
    let notice = app.notice.get_untracked();
    if notice.is_some() {
        app.notice.set(None);
    }

    // Fetches what changed since the store's cursor (the whole clinic only the first time).
    let sync_now = move || {
        let (me, store_arc, navigate) = (me.clone(), store_arc.clone(), navigate.clone());
        spawn_local(async move {
            let c = match ensure_clinic(app, &me, clinic_id).await {
                Ok(c) => c,
                Err(e) if e.status == 404 => {
                    error.set(Some("Clinic not found.".into()));
                    return;
                }
                Err(e) => return report_error(app, &navigate, error, e),
            };
            clinic.set(Some(c.clone()));
            error.set(None);
            if let Err(e) = sync(app, me.clone(), c.clone(), store_arc).await {
                return report_error(app, &navigate, error, e);
            }
            // An owner's visit signs the audit log's head (once per session).
            crate::audit::on_owner_open(app, me, c).await;
        });
    };
    sync_now();
    let refresh = {
        let sync_now = sync_now.clone();
        move |_| sync_now()
    };

    let matching = Memo::new(move |_| query.with(|q| store.with(|s| rows(s, q))));
    // Rows put in the page: a large clinic has tens of thousands of patients, and the table only
    // needs the first page; "Show more" adds another.
    let limit = RwSignal::new(PAGE_ROWS);
    Effect::new(move |_| {
        query.track();
        limit.set(PAGE_ROWS);
    });
    let shown = Memo::new(move |_| {
        let n = limit.get();
        matching.with(|r| r.iter().take(n).cloned().collect::<Vec<_>>())
    });
    // Records that could not be opened at all (no trusted version to show).
    let problems = Memo::new(move |_| {
        store.with(|s| {
            s.errors
                .iter()
                .filter(|(id, _)| !s.patients.contains_key(id))
                .map(|(id, why)| (*id, why.clone()))
                .collect::<Vec<_>>()
        })
    });
    let title = move || match clinic.get() {
        None => "Patients".to_string(),
        Some(c) => c
            .name
            .clone()
            .unwrap_or_else(|_| "Unverified clinic".into()),
    };
    let new_href = format!("/clinics/{clinic_id}/patients/new");
    let members_href = format!("/clinics/{clinic_id}/members");
    let total = move || store.with(|s| s.patients.len());

    view! {
        <AppHeader />
        <main class="page">
            <nav class="crumbs" aria-label="Breadcrumb">
                <a href="/clinics" id="back-to-clinics">"← Clinics"</a>
            </nav>
            <div class="page-title">
                <h1>{title}</h1>
                <div class="toolbar">
                    <button id="refresh" type="button" class="button secondary" on:click=refresh
                        disabled=move || store.with(|s| s.syncing)>
                        "Refresh"
                    </button>
                    <a id="calendar-link" class="button secondary" href=format!("/clinics/{clinic_id}/calendar")>"Calendar"</a>
                    <a id="worklist-link" class="button secondary" href=format!("/clinics/{clinic_id}/worklist")>"Reminders"</a>
                    <a id="members-link" class="button secondary" href=members_href>"Team"</a>
                    {move || clinic.get().filter(|c| c.is_owner(&me_id)).map(|_| view! {
                        <a id="audit-link" class="button secondary" href=format!("/clinics/{clinic_id}/audit")>"Audit log"</a>
                        <a id="backup-link" class="button secondary" href=format!("/clinics/{clinic_id}/backup")>"Backup"</a>
                    })}
                    <a id="new-patient" class="button primary" href=new_href>"New patient"</a>
                </div>
            </div>
            {move || error.get().map(|e| view! { <p id="list-error" class="error" role="alert">{e}</p> })}
            {notice.map(|n| view! { <p id="list-notice" class="notice" role="status">{n}</p> })}
            {move || {
                store
                    .with(|s| s.progress)
                    .map(|(cursor, head)| {
                        view! {
                            <div class="sync">
                                <label for="sync-progress">"Decrypting records…"</label>
                                <progress id="sync-progress" max=head.to_string() value=cursor.to_string()>
                                    {format!("{cursor} of {head}")}
                                </progress>
                            </div>
                        }
                    })
            }}
            <Show when=move || store.with(|s| s.syncing && !s.synced)>
                <Spinner label="Loading patients…" />
            </Show>
            <div class="field search">
                <label for="search">"Search patients"</label>
                <input id="search" type="search" autocomplete="off" spellcheck="false"
                    placeholder="Name, date of birth, phone, member id or chart number" bind:value=query />
            </div>
            <p class="count" aria-live="polite">
                <span id="patient-count"
                    data-synced=move || store.with(|s| (s.synced && !s.syncing).to_string())>
                    {move || matching.with(|r| r.len())}
                </span>
                {move || {
                    let n = total();
                    if query.with(|q| q.trim().is_empty()) {
                        if n == 1 { " patient".to_string() } else { " patients".to_string() }
                    } else {
                        format!(" of {n} patients match")
                    }
                }}
            </p>
            {move || {
                let n = store.with(|s| s.hidden_charts());
                (n > 0).then(|| view! {
                    <p id="restricted-count" class="notice restricted-count">
                        {if n == 1 {
                            "1 restricted chart you are not on".to_string()
                        } else {
                            format!("{n} restricted charts you are not on")
                        }}
                    </p>
                })
            }}
            <table class="patients">
                <thead>
                    <tr>
                        <th scope="col">"Name"</th>
                        <th scope="col">"Date of birth"</th>
                        <th scope="col">"Phone"</th>
                        <th scope="col">"Member id"</th>
                    </tr>
                </thead>
                <tbody>
                    <For each=move || shown.get() key=|r| (r.id, r.version, r.flag.clone(), r.former.clone(), r.restricted) let:row>
                        <PatientRow clinic_id=clinic_id row=row />
                    </For>
                </tbody>
            </table>
            <Show when=move || { matching.with(|m| m.len()) > limit.get() }>
                <button id="show-more" type="button" class="button secondary"
                    on:click=move |_| limit.update(|l| *l += PAGE_ROWS)>
                    {move || format!("Show more ({} not shown)", matching.with(|m| m.len()).saturating_sub(limit.get()))}
                </button>
            </Show>
            <Show when=move || store.with(|s| s.synced && s.patients.is_empty() && s.hidden_charts() == 0)>
                <p class="empty">"No patients yet. Add the first with “New patient”."</p>
            </Show>
            <Show when=move || problems.with(|p| !p.is_empty())>
                <section class="problems-box" aria-labelledby="problems-title">
                    <h2 id="problems-title">"Records that could not be trusted"</h2>
                    <ul>
                        {move || {
                            problems
                                .get()
                                .into_iter()
                                .map(|(id, why)| {
                                    view! {
                                        <li class="record-problem" data-id=id.to_string()>
                                            <code>{id.to_string()}</code>": "{why}
                                        </li>
                                    }
                                })
                                .collect_view()
                        }}
                    </ul>
                </section>
            </Show>
        </main>
    }
}

#[component]
fn PatientRow(clinic_id: Uuid, row: Row) -> impl IntoView {
    let href = format!("/clinics/{clinic_id}/patients/{}", row.id);
    let flagged = row.flag.is_some();
    view! {
        <tr class="patient-row" class:flagged=flagged data-id=row.id.to_string()
            data-flagged=flagged.then_some("true")>
            <td>
                <a class="patient-link" href=href>{row.name}</a>
                {row.flag.map(|why| {
                    let title = why.clone();
                    view! { <span class="badge warn" title=title>"Not trusted: " {why}</span> }
                })}
                {row.restricted.then(|| view! {
                    <span class="badge restricted-badge" title="Only its care team can open this chart">
                        "Restricted to its care team"
                    </span>
                })}
                {row.former.map(|who| {
                    view! {
                        <span class="badge former" title=format!("Last changed by {who}")>
                            "Written by a former member"
                        </span>
                    }
                })}
            </td>
            <td>{row.date_of_birth}</td>
            <td>{row.phone}</td>
            <td>{row.member_id}</td>
        </tr>
    }
}

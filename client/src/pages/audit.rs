//! The clinic's audit log, for its owners: who did what, when and from where, with the details
//! only browsers knew (sealed to the clinic's audit key) opened here; filters by member, patient,
//! action and dates; a check of the whole chain and its signed checkpoints; CSV and JSON export.

use std::sync::Arc;

use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::components::Redirect;
use leptos_router::hooks::use_navigate;
use serde::Serialize;
use uuid::Uuid;

use crate::api;
use crate::audit::{self, ShownEntry};
use crate::components::app_header::AppHeader;
use crate::pages::not_found::NotFound;
use crate::pages::patients::clinic_id_param;
use crate::pages::worklist::csv_cell;
use crate::pages::{open_clinic_and_sync, report_error};
use crate::state::{use_app, Clinic, Unlocked};
use crate::store::RecordStore;
use crate::util::{local_midnight, local_time};

/// Actions offered in the filter (any other can still be seen unfiltered).
const ACTIONS: [&str; 29] = [
    "chart_read",
    "records_read",
    "record_history_read",
    "records_written",
    "records_deleted",
    "record_deleted",
    "record_restored",
    "record_purged",
    "chart_erased",
    "patient_updated",
    "record_changed",
    "payment_recorded",
    "refund_recorded",
    "invoice_posted",
    "credit_note_issued",
    "document_spectacle_rx",
    "document_contact_lens_rx",
    "document_referral_letter",
    "document_fhir_export",
    "document_reminders_csv",
    "document_reminders_print",
    "file_uploaded",
    "file_read",
    "member_added",
    "role_changed",
    "member_removed",
    "keys_rotated",
    "audit_checkpoint",
    "audit_pruned",
];

#[component]
pub fn AuditPage() -> impl IntoView {
    let app = use_app();
    let Some(me) = app.me() else {
        return view! { <Redirect path="/login" /> }.into_any();
    };
    let clinic_id = clinic_id_param();
    (move || match clinic_id.get() {
        Some(id) => view! { <AuditLog me=me.clone() clinic_id=id /> }.into_any(),
        None => view! { <NotFound /> }.into_any(),
    })
    .into_any()
}

/// The filters as the form holds them.
#[derive(Clone, Copy)]
struct Filters {
    member: RwSignal<String>,
    patient: RwSignal<String>,
    action: RwSignal<String>,
    from: RwSignal<String>,
    to: RwSignal<String>,
}

/// The query string tail for the filters; the patient is found by name among the patients this
/// browser holds (an error when none or several match).
fn query(f: &Filters, store: &RecordStore) -> Result<String, String> {
    let mut q = String::new();
    let member = f.member.get_untracked();
    if !member.is_empty() {
        q.push_str(&format!("&actor={member}"));
    }
    let patient = f.patient.get_untracked();
    if !patient.trim().is_empty() {
        let words = optovault_shared::domain::query_words(&patient);
        let hits: Vec<Uuid> = store
            .patients
            .iter()
            .filter(|(id, (_, p))| match store.search.get(id) {
                Some(k) => k.rank(&words) == Some(0),
                None => p.search_rank(&patient) == Some(0),
            })
            .map(|(id, _)| *id)
            .take(2)
            .collect();
        match hits.as_slice() {
            [one] => q.push_str(&format!("&target={one}")),
            [] => return Err(format!("No patient matches “{}”.", patient.trim())),
            _ => {
                return Err(format!(
                    "Several patients match “{}”: type more of the name.",
                    patient.trim()
                ))
            }
        }
    }
    let action = f.action.get_untracked();
    if !action.is_empty() {
        q.push_str(&format!("&action={action}"));
    }
    for (name, day, next) in [
        ("from", f.from.get_untracked(), false),
        ("to", f.to.get_untracked(), true),
    ] {
        if day.trim().is_empty() {
            continue;
        }
        let t =
            local_midnight(&day).ok_or_else(|| format!("“{day}” is not a date (YYYY-MM-DD)."))?;
        // "to" includes its whole day.
        q.push_str(&format!("&{name}={}", if next { t + 86_400 } else { t }));
    }
    Ok(q)
}

/// What the viewer shows of an entry's target: a patient's name when it is a chart held here.
fn target_label(store: &RecordStore, e: &ShownEntry) -> String {
    match e.entry.target {
        None => String::new(),
        Some(t) => store
            .patients
            .get(&t)
            .map(|(_, p)| p.display_name())
            .unwrap_or_else(|| t.to_string()),
    }
}

fn detail_text(e: &ShownEntry) -> String {
    match &e.detail {
        None => String::new(),
        Some(Err(why)) => format!("(detail not shown: {why})"),
        Some(Ok(d)) => {
            let mut s = d.summary.clone();
            if let Some(p) = &d.patient {
                s.push_str(&format!(" — {p}"));
            }
            for c in &d.changes {
                s.push_str(&format!("; {}: “{}” → “{}”", c.field, c.from, c.to));
            }
            s
        }
    }
}

#[derive(Serialize)]
struct ExportRow<'a> {
    seq: u64,
    at: i64,
    actor_id: Option<Uuid>,
    actor: &'a str,
    action: &'a str,
    target: Option<Uuid>,
    target_label: String,
    count: u32,
    outcome: &'a str,
    ip: Option<&'a str>,
    detail: Option<&'a optovault_shared::audit::AuditDetail>,
    hash: String,
}

fn export_rows<'a>(store: &RecordStore, rows: &'a [ShownEntry]) -> Vec<ExportRow<'a>> {
    rows.iter()
        .map(|e| ExportRow {
            seq: e.entry.seq,
            at: e.entry.at,
            actor_id: e.entry.actor,
            actor: &e.actor,
            action: &e.entry.action,
            target: e.entry.target,
            target_label: target_label(store, e),
            count: e.entry.count,
            outcome: &e.entry.outcome,
            ip: e.entry.ip.as_deref(),
            detail: e.detail.as_ref().and_then(|d| d.as_ref().ok()),
            hash: e.entry.hash.0.iter().map(|b| format!("{b:02x}")).collect(),
        })
        .collect()
}

fn to_csv(store: &RecordStore, rows: &[ShownEntry]) -> String {
    let mut out = String::from("seq,time,member,action,target,count,outcome,ip,detail\r\n");
    for e in rows {
        let cells = [
            e.entry.seq.to_string(),
            local_time(e.entry.at),
            e.actor.clone(),
            e.entry.action.clone(),
            target_label(store, e),
            e.entry.count.to_string(),
            e.entry.outcome.clone(),
            e.entry.ip.clone().unwrap_or_default(),
            detail_text(e),
        ];
        out.push_str(
            &cells
                .iter()
                .map(|c| csv_cell(c))
                .collect::<Vec<_>>()
                .join(","),
        );
        out.push_str("\r\n");
    }
    out
}

#[component]
fn AuditLog(me: Arc<Unlocked>, clinic_id: Uuid) -> impl IntoView {
    let app = use_app();
    let navigate = use_navigate();
    let store: RwSignal<RecordStore> = app.store(clinic_id).into();
    let clinic = RwSignal::new(None::<Arc<Clinic>>);
    let error = RwSignal::new(None::<String>);
    open_clinic_and_sync(app, me.clone(), clinic_id, clinic, error, navigate.clone());
    let filters = Filters {
        member: RwSignal::new(String::new()),
        patient: RwSignal::new(String::new()),
        action: RwSignal::new(String::new()),
        from: RwSignal::new(String::new()),
        to: RwSignal::new(String::new()),
    };
    let rows = RwSignal::new(Vec::<ShownEntry>::new());
    let cursor = RwSignal::new(0u64);
    let more = RwSignal::new(false);
    let loading = RwSignal::new(false);
    let check = RwSignal::new(None::<Result<String, String>>);
    let check_progress = RwSignal::new(None::<(u64, u64)>);
    let me_stored = StoredValue::new(me.clone());
    let nav = StoredValue::new(navigate.clone());

    // Loads a page (from the start when `fresh`) with the filters as they are.
    let load = move |fresh: bool| {
        let Some(c) = clinic.get_untracked() else {
            return;
        };
        let q = match store.with_untracked(|s| query(&filters, s)) {
            Ok(q) => q,
            Err(why) => {
                error.set(Some(why));
                return;
            }
        };
        error.set(None);
        loading.set(true);
        let since = if fresh { 0 } else { cursor.get_untracked() };
        let me = me_stored.get_value();
        let navigate = nav.get_value();
        spawn_local(async move {
            let key = match audit::audit_key(app, &me, &c).await {
                Ok(k) => k,
                Err(e) => {
                    error.set(Some(e.message));
                    None
                }
            };
            match api::audit_page(c.id, since, 200, &q).await {
                Ok(page) => {
                    let shown = audit::show(&c, key.as_deref(), page.entries);
                    rows.update(|r| {
                        if fresh {
                            r.clear();
                        }
                        r.extend(shown);
                    });
                    cursor.set(page.cursor);
                    more.set(page.more);
                }
                Err(e) => report_error(app, &navigate, error, e),
            }
            loading.set(false);
        });
    };
    // The first page once the clinic is open.
    Effect::new(move |done: Option<bool>| {
        if done == Some(true) {
            return true;
        }
        if clinic.get().is_some() {
            load(true);
            return true;
        }
        false
    });

    let verify = move |_| {
        let Some(c) = clinic.get_untracked() else {
            return;
        };
        check.set(None);
        check_progress.set(Some((0, 0)));
        spawn_local(async move {
            let r = audit::verify(app, &c, true, |done, of| {
                check_progress.set(Some((done, of)))
            })
            .await;
            check_progress.set(None);
            check.set(Some(match r {
                Ok(Ok(ok)) => Ok(format!(
                    "The log is intact: {} entries checked from the first, {} signed checkpoint{} verified.",
                    ok.checked,
                    ok.checkpoints,
                    if ok.checkpoints == 1 { "" } else { "s" }
                )),
                Ok(Err(broken)) => Err(format!("The log does not verify: {broken}.")),
                Err(e) => Err(e.message),
            }));
        });
    };

    let export_csv = move |_| {
        let text = store.with_untracked(|s| rows.with_untracked(|r| to_csv(s, r)));
        if let Err(e) = crate::files::save_text(&text, "text/csv;charset=utf-8", "audit-log.csv") {
            error.set(Some(e.message));
        }
    };
    let export_json = move |_| {
        let text = store.with_untracked(|s| {
            rows.with_untracked(|r| {
                serde_json::to_string_pretty(&export_rows(s, r)).unwrap_or_default()
            })
        });
        if let Err(e) = crate::files::save_text(&text, "application/json", "audit-log.json") {
            error.set(Some(e.message));
        }
    };

    let members = move || {
        clinic
            .get()
            .and_then(|c| c.roster.clone())
            .map(|r| {
                let mut m: Vec<(Uuid, String)> = r
                    .members
                    .iter()
                    .map(|(id, m)| (*id, m.username.clone()))
                    .chain(
                        r.removed
                            .iter()
                            .map(|(id, (m, _))| (*id, format!("{} (removed)", m.username))),
                    )
                    .collect();
                m.sort_by(|a, b| a.1.cmp(&b.1));
                m
            })
            .unwrap_or_default()
    };
    let is_owner = {
        let me = me.clone();
        move || clinic.get().is_some_and(|c| c.is_owner(&me.account_id))
    };

    view! {
        <AppHeader />
        <main class="page wide-page audit-page">
            <nav class="crumbs" aria-label="Breadcrumb">
                <a href=format!("/clinics/{clinic_id}/patients")>"← Patients"</a>
            </nav>
            <h1>"Audit log"</h1>
            <Show when=move || clinic.get().is_some() && !is_owner()>
                <p id="audit-not-owner" class="error" role="alert">"Only the clinic's owners read the audit log."</p>
            </Show>
            {move || error.get().map(|e| view! { <p id="audit-error" class="error" role="alert">{e}</p> })}
            <form class="audit-filters" on:submit=move |ev| { ev.prevent_default(); load(true); }>
                <label>"Member"
                    <select id="audit-member" on:change=move |ev| filters.member.set(event_target_value(&ev))>
                        <option value="">"Anyone"</option>
                        {move || members().into_iter().map(|(id, name)| view! { <option value=id.to_string()>{name}</option> }).collect_view()}
                    </select>
                </label>
                <label>"Patient"
                    <input id="audit-patient" type="search" placeholder="Name"
                        prop:value=move || filters.patient.get()
                        on:input=move |ev| filters.patient.set(event_target_value(&ev)) />
                </label>
                <label>"Action"
                    <select id="audit-action" on:change=move |ev| filters.action.set(event_target_value(&ev))>
                        <option value="">"Any"</option>
                        {ACTIONS.iter().map(|a| view! { <option value=*a>{a.replace('_', " ")}</option> }).collect_view()}
                    </select>
                </label>
                <label>"From"
                    <input id="audit-from" type="date" on:input=move |ev| filters.from.set(event_target_value(&ev)) />
                </label>
                <label>"To"
                    <input id="audit-to" type="date" on:input=move |ev| filters.to.set(event_target_value(&ev)) />
                </label>
                <button id="audit-apply" type="submit" class="button primary" disabled=move || loading.get()>"Show"</button>
            </form>
            <div class="toolbar">
                <button id="audit-verify" type="button" class="button secondary" on:click=verify
                    disabled=move || check_progress.get().is_some()>"Check the whole log"</button>
                <button id="audit-export-csv" type="button" class="button secondary" on:click=export_csv>"Export CSV"</button>
                <button id="audit-export-json" type="button" class="button secondary" on:click=export_json>"Export JSON"</button>
            </div>
            {move || check_progress.get().map(|(done, of)| view! {
                <progress id="audit-verify-progress" max=of.max(1).to_string() value=done.to_string()>{format!("{done} of {of}")}</progress>
            })}
            {move || check.get().map(|r| match r {
                Ok(msg) => view! { <p id="audit-verify-result" class="notice" data-ok="true">{msg}</p> }.into_any(),
                Err(msg) => view! { <p id="audit-verify-result" class="error" role="alert" data-ok="false">{msg}</p> }.into_any(),
            })}
            <table id="audit-table" class="audit-table" data-count=move || rows.with(|r| r.len()).to_string()>
                <thead><tr><th>"#"</th><th>"When"</th><th>"Member"</th><th>"Action"</th><th>"Patient / target"</th><th>"Detail"</th><th>"Outcome"</th><th>"Address"</th></tr></thead>
                <tbody>
                    {move || rows.with(|r| store.with(|s| r.iter().map(|e| {
                        let target = target_label(s, e);
                        let detail = detail_text(e);
                        let bad = matches!(e.detail, Some(Err(_)));
                        view! {
                            <tr class="audit-row" data-action=e.entry.action.clone() data-seq=e.entry.seq.to_string()>
                                <td>{e.entry.seq}</td>
                                <td>{local_time(e.entry.at)}</td>
                                <td class="audit-actor">{e.actor.clone()}</td>
                                <td class="audit-action">{e.entry.action.replace('_', " ")}</td>
                                <td class="audit-target">{target}</td>
                                <td class="audit-detail" class:error=bad>{detail}</td>
                                <td>{e.entry.outcome.clone()}</td>
                                <td>{e.entry.ip.clone().unwrap_or_default()}</td>
                            </tr>
                        }
                    }).collect_view()))}
                </tbody>
            </table>
            <Show when=move || more.get()>
                <button id="audit-more" type="button" class="button secondary" on:click=move |_| load(false)
                    disabled=move || loading.get()>"Show more"</button>
            </Show>
        </main>
    }
}

//! The owner's backup page: download the clinic's encrypted copy, and check a copy with my keys.

use std::sync::Arc;

use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::components::Redirect;
use leptos_router::hooks::use_navigate;
use uuid::Uuid;
use wasm_bindgen::JsCast;

use crate::components::app_header::AppHeader;
use crate::export::{self, ExportReport};
use crate::pages::not_found::NotFound;
use crate::pages::patients::clinic_id_param;
use crate::pages::report_error;
use crate::state::{use_app, Clinic, Unlocked};
use crate::util::local_time;

#[component]
pub fn BackupPage() -> impl IntoView {
    let app = use_app();
    let Some(me) = app.me() else {
        return view! { <Redirect path="/login" /> }.into_any();
    };
    let clinic_id = clinic_id_param();
    (move || match clinic_id.get() {
        Some(id) => view! { <Backup me=me.clone() clinic_id=id /> }.into_any(),
        None => view! { <NotFound /> }.into_any(),
    })
    .into_any()
}

pub fn mib(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1_000_000.0)
}

#[component]
fn Backup(me: Arc<Unlocked>, clinic_id: Uuid) -> impl IntoView {
    let app = use_app();
    let navigate = use_navigate();
    let clinic = RwSignal::new(None::<Arc<Clinic>>);
    let error = RwSignal::new(None::<String>);
    {
        let (me, navigate) = (me.clone(), navigate.clone());
        spawn_local(async move {
            match crate::clinic::ensure_clinic(app, &me, clinic_id).await {
                Ok(c) => clinic.set(Some(c)),
                Err(e) => report_error(app, &navigate, error, e),
            }
        });
    }
    let my_id = me.account_id;
    let is_owner = move || clinic.get().is_some_and(|c| c.is_owner(&my_id));

    // Download.
    let download_progress = RwSignal::new(None::<(u64, u64)>);
    let downloaded = RwSignal::new(None::<u64>);
    let download = {
        let navigate = navigate.clone();
        move |_| {
            let navigate = navigate.clone();
            error.set(None);
            downloaded.set(None);
            download_progress.set(Some((0, 0)));
            spawn_local(async move {
                let result = export::download(clinic_id, |done, total| {
                    download_progress.try_set(Some((done, total)));
                })
                .await;
                download_progress.try_set(None);
                match result {
                    Ok(bytes) => {
                        downloaded.try_set(Some(bytes));
                    }
                    Err(e) => report_error(app, &navigate, error, e),
                }
            });
        }
    };

    // Check.
    let check_progress = RwSignal::new(None::<(u64, u64)>);
    let report = RwSignal::new(None::<Result<ExportReport, String>>);
    let me_stored = StoredValue::new(me.clone());
    let check = move |ev: leptos::ev::Event| {
        let Some(file) = ev
            .target()
            .and_then(|t| t.dyn_into::<web_sys::HtmlInputElement>().ok())
            .and_then(|i| i.files())
            .and_then(|f| f.get(0))
        else {
            return;
        };
        let me = me_stored.get_value();
        report.set(None);
        check_progress.set(Some((0, file.size() as u64)));
        spawn_local(async move {
            let result = export::check_file(me, clinic_id, &file, |done, total| {
                check_progress.try_set(Some((done, total)));
            })
            .await;
            check_progress.try_set(None);
            report.try_set(Some(result));
        });
    };

    view! {
        <AppHeader />
        <main class="page backup-page">
            <nav class="crumbs" aria-label="Breadcrumb">
                <a href=format!("/clinics/{clinic_id}/patients")>"← Patients"</a>
            </nav>
            <h1>"Backup"</h1>
            <Show when=move || clinic.get().is_some() && !is_owner()>
                <p id="backup-not-owner" class="error" role="alert">"Only the clinic's owners make and check its copies."</p>
            </Show>
            {move || error.get().map(|e| view! { <p id="backup-error" class="error" role="alert">{e}</p> })}
            <section class="backup-section">
                <h2>"Download an encrypted copy"</h2>
                <p>"The whole clinic as the server stores it: every record, earlier version and file, encrypted with the clinic's keys, with the member list and the audit log. Nobody can read it without a member's keys, so it can be kept anywhere: a USB disk, another office, a cloud drive."</p>
                <button id="export-download" type="button" class="button primary" on:click=download
                    disabled=move || download_progress.get().is_some() || !is_owner()>"Download a copy"</button>
                {move || download_progress.get().map(|(done, total)| view! {
                    <progress id="export-progress" max=total.max(1).to_string() value=done.to_string()>
                        {format!("{} of {}", mib(done), mib(total))}
                    </progress>
                    <span class="muted">{format!(" {} of {}", mib(done), mib(total))}</span>
                })}
                {move || downloaded.get().map(|b| view! {
                    <p id="export-done" class="notice" role="status" data-bytes=b.to_string()>
                        {format!("Saved a copy of {}. Check it below to be sure it can be restored.", mib(b))}
                    </p>
                })}
            </section>
            <section class="backup-section">
                <h2>"Check a copy"</h2>
                <p>"Pick a copy you downloaded. Your browser reads it piece by piece, opens every record and file with your keys, and checks the member list and the audit log. Nothing is uploaded."</p>
                <input id="export-check-file" type="file" accept=".ovbk" on:change=check
                    disabled=move || check_progress.get().is_some() || !is_owner() />
                {move || check_progress.get().map(|(done, total)| view! {
                    <progress id="export-check-progress" max=total.max(1).to_string() value=done.to_string()>
                        {format!("{} of {}", mib(done), mib(total))}
                    </progress>
                })}
                {move || report.get().map(|r| match r {
                    Ok(r) => view! { <ReportView report=r /> }.into_any(),
                    Err(why) => view! {
                        <p id="export-check-result" class="error" role="alert" data-ok="false">
                            {format!("This copy is damaged or cannot be checked: {why}")}
                        </p>
                    }.into_any(),
                })}
            </section>
        </main>
    }
    .into_any()
}

#[component]
pub fn ReportView(report: ExportReport) -> impl IntoView {
    let ok = report.ok();
    let r = report;
    view! {
        <div id="export-check-result" class=if ok { "notice" } else { "error" } role="status"
            data-ok=ok.to_string() data-records=r.records_opened.to_string()
            data-versions=r.versions_opened.to_string() data-files=r.files_checked.to_string()
            data-audit=r.audit_entries.to_string()>
            <p><strong>{if ok { "This copy is complete and opens with your keys." } else { "This copy has problems." }}</strong></p>
            <dl class="export-report">
                <dt>"Clinic"</dt><dd>{r.clinic_name.clone().unwrap_or_else(|| "(name does not open)".into())}</dd>
                <dt>"Made"</dt><dd>{format!("{} by {}", local_time(r.exported_at), r.exported_by)}</dd>
                <dt>"Size"</dt><dd>{mib(r.file_bytes)}</dd>
                <dt>"Members"</dt><dd>{format!("{} ({} signed member-list entries, verified)", r.members, r.roster_entries)}</dd>
                <dt>"Records"</dt><dd id="export-records">{format!("{} of {} opened and verified", r.records_opened, r.records)}
                    {(r.sealed_for_care_team > 0).then(|| format!("; {} in restricted charts you are not on (present, sealed for their care team)", r.sealed_for_care_team))}</dd>
                <dt>"Earlier versions"</dt><dd>{format!("{} of {} opened and verified", r.versions_opened, r.versions)}</dd>
                <dt>"Files"</dt><dd id="export-files">{format!("{} of {} decrypted and matching their checksum ({} chunks)", r.files_checked, r.files, r.chunks)}</dd>
                <dt>"Audit log"</dt><dd id="export-audit">{format!("{} entries, chain {} through {} signed checkpoints; {} signed details", r.audit_entries,
                    if r.problems.iter().any(|p| p.starts_with("audit log")) { "BROKEN" } else { "intact" }, r.checkpoints, r.details_signed)}</dd>
            </dl>
            {(!r.problems.is_empty()).then(|| view! {
                <ul id="export-problems">{r.problems.iter().map(|p| view! { <li>{p.clone()}</li> }).collect_view()}</ul>
            })}
        </div>
    }
}

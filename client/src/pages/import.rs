//! Moving a clinic to this server: an owner picks the clinic's copy (downloaded from the old
//! server's Backup page), types their username, recovery key and a new password. The browser
//! reads the copy, opens the owner's keys from the recovery kit inside it, checks every record,
//! file and the audit log with them, signs the file and uploads it; then it sets the owner's new
//! password with the same kit and signs in. Nothing is decrypted on the server, and a copy that
//! does not check out is never uploaded.

use std::sync::Arc;

use leptos::ev::SubmitEvent;
use leptos::prelude::*;
use leptos::task::spawn_local;
use optovault_shared::clinic_export::import_signing_input;
use optovault_shared::crypto::RecoveryKey;
use optovault_shared::normalize_username;
use optovault_shared::password::{check_new_password, check_password};
use optovault_shared::wire::ClinicImported;
use wasm_bindgen::JsCast;
use zeroize::{Zeroize, Zeroizing};

use crate::auth::{reset_with_recovery_key, sign_in, RecoverError, SignIn, WRONG_RECOVERY_KEY};
use crate::components::spinner::Spinner;
use crate::components::strength_meter::StrengthMeter;
use crate::export::{self, ExportReport};
use crate::pages::backup::{mib, ReportView};
use crate::state::{use_app, Unlocked};

/// Where the import is.
#[derive(Clone, Debug, PartialEq)]
enum Step {
    Reading(u64, u64),
    Checking(u64, u64),
    Uploading(u64, u64),
    Storing,
    SettingPassword,
}

impl Step {
    fn label(&self) -> &'static str {
        match self {
            Step::Reading(..) => "Reading the copy and checking its checksums",
            Step::Checking(..) => "Opening every record and file with your keys",
            Step::Uploading(..) => "Uploading",
            Step::Storing => "The server is checking and storing the clinic…",
            Step::SettingPassword => "Setting your new password…",
        }
    }
    fn bytes(&self) -> Option<(u64, u64)> {
        match *self {
            Step::Reading(d, t) | Step::Checking(d, t) | Step::Uploading(d, t) => Some((d, t)),
            _ => None,
        }
    }
}

#[component]
pub fn ImportPage() -> impl IntoView {
    let app = use_app();
    let file = StoredValue::new_local(None::<web_sys::File>);
    let username = RwSignal::new(String::new());
    let key = RwSignal::new(String::new());
    let password = RwSignal::new(String::new());
    let confirm = RwSignal::new(String::new());
    let error = RwSignal::new(None::<String>);
    let step = RwSignal::new(None::<Step>);
    let report = RwSignal::new(None::<ExportReport>);
    let done = RwSignal::new(None::<(ClinicImported, bool)>);

    let strength = Memo::new(move |_| {
        password.with(|p| username.with(|u| check_password(p, &u.trim().to_lowercase())))
    });
    let typed = Signal::derive(move || password.with(|p| !p.is_empty()));
    let pick = move |ev: leptos::ev::Event| {
        let picked = ev
            .target()
            .and_then(|t| t.dyn_into::<web_sys::HtmlInputElement>().ok())
            .and_then(|i| i.files())
            .and_then(|f| f.get(0));
        file.set_value(picked);
    };

    let on_submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        if step.get_untracked().is_some() {
            return;
        }
        let Some(picked) = file.get_value() else {
            error.set(Some("Pick the clinic's copy (an .ovbk file).".into()));
            return;
        };
        let name = match normalize_username(&username.get_untracked()) {
            Ok(n) => n,
            Err(e) => {
                error.set(Some(e));
                return;
            }
        };
        let typed_key = Zeroizing::new(key.get_untracked());
        let Some(recovery_key) = RecoveryKey::parse(&typed_key) else {
            error.set(Some(
                "Enter the recovery key from your recovery kit.".into(),
            ));
            return;
        };
        let pw = Zeroizing::new(password.get_untracked());
        if let Err(problem) = confirm.with_untracked(|c| check_new_password(&pw, c, &name)) {
            error.set(Some(problem));
            return;
        }
        error.set(None);
        report.set(None);
        step.set(Some(Step::Reading(0, picked.size() as u64)));
        spawn_local(async move {
            let outcome = run(&picked, &name, &recovery_key, &typed_key, &pw, step, report).await;
            step.try_set(None);
            match outcome {
                Ok(mut summary) => {
                    // The importer has just set their password; the list is for the others.
                    summary.members_with_recovery.retain(|m| *m != name);
                    password.update(|p| p.zeroize());
                    confirm.update(|p| p.zeroize());
                    key.update(|k| k.zeroize());
                    // Signed in when the account has no second factor here (imported accounts
                    // have none); otherwise the login page asks.
                    let signed_in = matches!(sign_in(app, &name, &pw).await, Ok(SignIn::Done));
                    done.try_set(Some((summary, signed_in)));
                }
                Err(m) => {
                    error.try_set(Some(m));
                }
            }
        });
    };

    view! {
        <main class="page narrow">
            <h1 class="logo">"OptoVault"</h1>
            <Show when=move || done.get().is_none() fallback=move || view! { <Imported done=done /> }>
                <form class="card" on:submit=on_submit novalidate>
                    <h2>"Move a clinic to this server"</h2>
                    <p class="help">
                        "Bring a clinic here from another OptoVault server with the encrypted copy an "
                        "owner downloaded from its Backup page. You need an owner's recovery kit: the "
                        "copy is checked with your keys in this browser before it is uploaded, and "
                        "the same kit sets your password here. Members sign in with their own "
                        "recovery kits (\"Forgot password?\")."
                    </p>
                    <div class="field">
                        <label for="import-file">"The clinic's copy"</label>
                        <input id="import-file" name="file" type="file" accept=".ovbk" on:change=pick />
                    </div>
                    <div class="field">
                        <label for="import-username">"Your username"</label>
                        <input id="import-username" name="username" type="text" autocomplete="username"
                            autocapitalize="none" spellcheck="false" required bind:value=username />
                    </div>
                    <div class="field">
                        <label for="import-key">"Your recovery key"</label>
                        <input id="import-key" name="recovery-key" type="text" autocomplete="off"
                            autocapitalize="characters" spellcheck="false" required bind:value=key />
                    </div>
                    <div class="field">
                        <label for="import-password">"New password on this server"</label>
                        <input id="import-password" name="new-password" type="password"
                            autocomplete="new-password" required bind:value=password />
                        <StrengthMeter strength=strength typed=typed />
                    </div>
                    <div class="field">
                        <label for="import-password-confirm">"Confirm the new password"</label>
                        <input id="import-password-confirm" name="new-password-confirm" type="password"
                            autocomplete="new-password" required bind:value=confirm />
                    </div>
                    {move || error.get().map(|e| view! { <p id="import-error" class="error" role="alert">{e}</p> })}
                    {move || report.get().filter(|r| !r.ok()).map(|r| view! { <ReportView report=r /> })}
                    <div class="actions">
                        <button id="import-submit" type="submit" class="button primary"
                            disabled=move || step.get().is_some()>"Check and import"</button>
                    </div>
                    {move || step.get().map(|s| {
                        let label = s.label();
                        match s.bytes() {
                            Some((d, t)) => view! {
                                <div class="busy" role="status">
                                    <span id="import-step">{label}</span>
                                    <progress id="import-progress" max=t.max(1).to_string() value=d.to_string()></progress>
                                    <span class="muted">{format!(" {} of {}", mib(d), mib(t))}</span>
                                </div>
                            }.into_any(),
                            None => view! { <Spinner label=label /> }.into_any(),
                        }
                    })}
                </form>
            </Show>
            <p class="aside"><a href="/login">"Back to log in"</a></p>
        </main>
    }
}

/// The whole import, step by step; `Err` with what to tell the owner.
async fn run(
    file: &web_sys::File,
    username: &str,
    recovery_key: &RecoveryKey,
    typed_key: &str,
    new_password: &str,
    step: RwSignal<Option<Step>>,
    report: RwSignal<Option<ExportReport>>,
) -> Result<ClinicImported, String> {
    let damaged = |why: String| format!("This copy is damaged or cannot be used: {why}");
    let ticket = export::find_importer(file, username, |d, t| {
        step.try_set(Some(Step::Reading(d, t)));
    })
    .await
    .map_err(damaged)?;
    let kit = ticket
        .account
        .recovery
        .as_ref()
        .expect("checked by find_importer");
    let keys = recovery_key
        .open_bundle(
            &kit.sealed_key_bundle,
            username,
            &ticket.account.public_keys,
        )
        .map_err(|_| WRONG_RECOVERY_KEY.to_string())?;
    let me = Arc::new(Unlocked::new(
        ticket.account.account_id,
        username.into(),
        keys,
    ));
    let checked = export::check_file(me.clone(), ticket.clinic_id, file, |d, t| {
        step.try_set(Some(Step::Checking(d, t)));
    })
    .await
    .map_err(damaged)?;
    if !checked.ok() {
        report.try_set(Some(checked));
        return Err("This copy has problems (below); it was not uploaded.".into());
    }
    let signature = me.keys.sign(&import_signing_input(
        &ticket.clinic_id,
        &ticket.content_sha256,
    ));
    drop(me);
    step.try_set(Some(Step::Uploading(0, file.size() as u64)));
    let summary =
        crate::api::import_clinic(file, ticket.account.account_id, &signature, move |d, t| {
            step.try_set(Some(if d >= t && t > 0 {
                Step::Storing
            } else {
                Step::Uploading(d, t)
            }));
        })
        .await
        .map_err(|e| format!("The server refused the copy: {}", e.message))?;
    step.try_set(Some(Step::SettingPassword));
    match reset_with_recovery_key(username, typed_key, new_password, None).await {
        Ok(()) => Ok(summary),
        Err(RecoverError::NeedsCode) => Err(
            "The clinic was imported, but your account here already has a second factor: set \
             your password with \"Forgot password?\"."
                .into(),
        ),
        Err(RecoverError::Failed(m)) => Err(format!(
            "The clinic was imported, but setting your password failed: {m}. Use \"Forgot \
             password?\" with your recovery kit."
        )),
    }
}

#[component]
fn Imported(done: RwSignal<Option<(ClinicImported, bool)>>) -> impl IntoView {
    move || {
        done.get().map(|(s, signed_in)| {
            let href = if signed_in {
                format!("/clinics/{}/patients", s.clinic_id)
            } else {
                "/login".to_string()
            };
            view! {
                <div class="card">
                    <p id="import-done" class="notice" role="status" data-records=s.records.to_string()
                        data-files=s.files.to_string()>
                        {format!("The clinic is here: {} records, {} earlier versions, {} files and {} audit-log entries, as they were.",
                            s.records, s.versions, s.files, s.audit_entries)}
                    </p>
                    {(!s.members_with_recovery.is_empty()).then(|| view! {
                        <p id="import-with-kit">{format!("The other members sign in with their own recovery kit (\"Forgot password?\" on the login page): {}.",
                            s.members_with_recovery.join(", "))}</p>
                    })}
                    {(!s.members_without_recovery.is_empty()).then(|| view! {
                        <p id="import-no-kit" class="warning">{format!(
                            "These members had no recovery kit, so they cannot sign in here: {}. Remove them on the Members page and invite them again.",
                            s.members_without_recovery.join(", "))}</p>
                    })}
                    <p><a id="import-open" class="button primary" href=href>
                        {if signed_in { "Open the clinic" } else { "Log in" }}</a></p>
                </div>
            }
        })
    }
}

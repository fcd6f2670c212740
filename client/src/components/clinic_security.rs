//! The owner's security box on the members page: the clinic's checklist (who has no second
//! factor, who has been away, who must change the password, open invitations, how many owners)
//! and the policy the server enforces on every request into the clinic.

use leptos::ev::SubmitEvent;
use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::hooks::use_navigate;
use optovault_shared::wire::{ClinicPolicy, MemberRef, SecurityChecklist};
use uuid::Uuid;

use crate::api;
use crate::pages::report_error;
use crate::state::use_app;

fn names(list: &[MemberRef]) -> String {
    if list.is_empty() {
        "none".into()
    } else {
        list.iter()
            .map(|m| m.username.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[component]
pub fn ClinicSecurity(
    clinic_id: Uuid,
    /// Bumped by the page when something changed (a member added, a refresh).
    #[prop(into)]
    version: Signal<u32>,
) -> impl IntoView {
    let app = use_app();
    let navigate = use_navigate();
    let checklist = RwSignal::new(None::<SecurityChecklist>);
    let load_error = RwSignal::new(None::<String>);
    let error = RwSignal::new(None::<String>);
    let note = RwSignal::new(None::<&'static str>);
    let busy = RwSignal::new(false);
    let require_mfa = RwSignal::new(false);
    let idle = RwSignal::new(String::new());
    let hours = RwSignal::new(String::new());
    let max_age = RwSignal::new(String::new());
    let trash_days = RwSignal::new(String::new());

    let fill = move |p: &ClinicPolicy| {
        require_mfa.set(p.require_mfa);
        idle.set(p.idle_minutes.to_string());
        hours.set(p.session_hours.to_string());
        trash_days.set(p.trash_days.to_string());
        max_age.set(
            p.max_password_age_days
                .map(|d| d.to_string())
                .unwrap_or_default(),
        );
    };

    let reload = {
        let navigate = navigate.clone();
        move |refill: bool| {
            let navigate = navigate.clone();
            spawn_local(async move {
                match api::security_checklist(clinic_id).await {
                    Ok(c) => {
                        if refill {
                            fill(&c.policy);
                        }
                        load_error.set(None);
                        checklist.set(Some(c));
                    }
                    Err(e) => report_error(app, &navigate, load_error, e),
                }
            });
        }
    };
    {
        let reload = reload.clone();
        let first = StoredValue::new(true);
        Effect::new(move |_| {
            version.track();
            let refill = first.get_value();
            first.set_value(false);
            reload(refill);
        });
    }

    let save = {
        let (navigate, reload) = (navigate.clone(), reload.clone());
        move |ev: SubmitEvent| {
            ev.prevent_default();
            if busy.get_untracked() {
                return;
            }
            let number = |s: String, what: &str| -> Result<u32, String> {
                s.trim()
                    .parse::<u32>()
                    .map_err(|_| format!("Enter the {what} as a whole number."))
            };
            let parsed = (|| {
                Ok::<_, String>(ClinicPolicy {
                    require_mfa: require_mfa.get_untracked(),
                    idle_minutes: number(idle.get_untracked(), "idle timeout")?,
                    session_hours: number(hours.get_untracked(), "session lifetime")?,
                    max_password_age_days: match max_age.get_untracked().trim() {
                        "" => None,
                        s => Some(number(s.to_string(), "maximum password age")?),
                    },
                    trash_days: number(trash_days.get_untracked(), "trash period")?,
                })
            })();
            let policy = match parsed {
                Ok(p) => p,
                Err(m) => {
                    error.set(Some(m));
                    return;
                }
            };
            busy.set(true);
            error.set(None);
            note.set(None);
            let (navigate, reload) = (navigate.clone(), reload.clone());
            spawn_local(async move {
                match api::set_clinic_policy(clinic_id, &policy).await {
                    Ok(p) => {
                        fill(&p);
                        note.set(Some("Policy saved."));
                        reload(false);
                    }
                    Err(e) => report_error(app, &navigate, error, e),
                }
                busy.set(false);
            });
        }
    };

    view! {
        <section id="clinic-security" class="card clinic-security" aria-labelledby="security-title">
            <h2 id="security-title">"Security"</h2>
            {move || load_error.get().map(|e| view! { <p class="error" role="alert">{e}</p> })}
            {move || checklist.get().map(|c| view! {
                <dl id="security-checklist" class="security-checklist">
                    <dt>"Members without a second factor"</dt>
                    <dd id="checklist-no-mfa" class:warn=!c.members_without_mfa.is_empty()>{names(&c.members_without_mfa)}</dd>
                    <dt>"Not logged in for 90 days"</dt>
                    <dd id="checklist-inactive" class:warn=!c.members_inactive_90_days.is_empty()>{names(&c.members_inactive_90_days)}</dd>
                    <dt>"Must change their password"</dt>
                    <dd id="checklist-password" class:warn=!c.members_who_must_change_password.is_empty()>{names(&c.members_who_must_change_password)}</dd>
                    <dt>"Open invitations"</dt>
                    <dd id="checklist-invitations">{c.pending_invitations}</dd>
                    <dt>"Last verified server backup"</dt>
                    <dd id="checklist-backup" class:warn=c.last_verified_backup.map_or(true, |t| crate::util::now() - t > 2 * 86_400)>
                        {match c.last_verified_backup {
                            Some(t) => crate::util::local_time(t),
                            None => "none on record: ask your server's operator to turn on verified backups".into(),
                        }}
                    </dd>
                    <dt>"Owners"</dt>
                    <dd id="checklist-owners" class:warn=c.owner_count < 2>
                        {c.owner_count}
                        {(c.owner_count < 2).then_some(" (a second owner keeps the clinic manageable if one is unavailable)")}
                    </dd>
                </dl>
            })}
            <form id="policy-form" class="policy-form" on:submit=save novalidate>
                <h3>"Policy"</h3>
                <div class="field checkbox">
                    <label>
                        <input id="policy-require-mfa" type="checkbox" bind:checked=require_mfa />
                        " Every member needs a second factor (authenticator app)"
                    </label>
                </div>
                <div class="field">
                    <label for="policy-idle-minutes">"Idle timeout (minutes, 5–480)"</label>
                    <input id="policy-idle-minutes" type="number" min="5" max="480" bind:value=idle />
                </div>
                <div class="field">
                    <label for="policy-session-hours">"Session lifetime (hours, 1–24)"</label>
                    <input id="policy-session-hours" type="number" min="1" max="24" bind:value=hours />
                </div>
                <div class="field">
                    <label for="policy-max-password-age">"Maximum password age (days, 30–730; empty for none)"</label>
                    <input id="policy-max-password-age" type="number" min="30" max="730"
                        aria-describedby="policy-password-help" bind:value=max_age />
                    <p id="policy-password-help" class="help">
                        "NIST SP 800-63B advises against forced periodic password changes: they lead \
                         to weaker, predictable passwords. When there is evidence that a password is \
                         compromised, use \"Require password change\" on that member instead."
                    </p>
                </div>
                <div class="field">
                    <label for="policy-trash-days">"Keep deleted records in the trash (days, 1–3650)"</label>
                    <input id="policy-trash-days" type="number" min="1" max="3650" bind:value=trash_days />
                    <p class="help">"Until then they can be restored; the server then purges them and logs the purge."</p>
                </div>
                {move || error.get().map(|e| view! { <p id="policy-error" class="error" role="alert">{e}</p> })}
                {move || note.get().map(|n| view! { <p id="policy-note" class="notice" role="status">{n}</p> })}
                <div class="actions">
                    <button id="policy-save" type="submit" class="button primary" disabled=move || busy.get()>
                        "Save policy"
                    </button>
                </div>
            </form>
        </section>
    }
}

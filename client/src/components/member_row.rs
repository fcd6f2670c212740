//! One member on the members page: who they are, their role and key fingerprint, checked against
//! the signed roster. Owners can change the role or remove the member; both rotate every clinic
//! key, so each asks for confirmation first. Owners can also sign a member out everywhere (a lost
//! laptop) and clear a member's login lockout.

use std::sync::Arc;

use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::hooks::use_navigate;
use optovault_shared::team::fingerprint;
use optovault_shared::wire::MemberView;
use uuid::Uuid;

use crate::api;
use crate::components::spinner::Spinner;
use crate::pages::report_error;
use crate::state::{use_app, Unlocked};
use crate::team::{change_member, parse_role, role_code, role_label, MemberChange, ROLES};

/// What the members page works out for a row.
#[derive(Clone)]
pub struct MemberRowData {
    pub member: MemberView,
    /// The server's entry matches the signed roster (role and keys).
    pub in_roster: bool,
    /// I am an owner and may change this member.
    pub manageable: bool,
    /// This is me, the clinic's only owner: I can neither leave nor step down.
    pub last_owner_self: bool,
}

#[component]
pub fn MemberRow(
    me: Arc<Unlocked>,
    clinic_id: Uuid,
    data: MemberRowData,
    on_changed: Callback<()>,
) -> impl IntoView {
    let app = use_app();
    let navigate = use_navigate();
    let security_navigate = navigate.clone();
    let m = data.member;
    let member_id = m.account_id;
    let current = m.role;
    let chosen = RwSignal::new(current);
    // The change waiting for confirmation.
    let pending = RwSignal::new(None::<MemberChange>);
    let busy = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);
    let is_me = member_id == me.account_id;
    let name = m.username.clone();
    // The last sign-out / unlock that went through, shown in the row.
    let security_note = RwSignal::new(None::<&'static str>);
    let security_busy = RwSignal::new(false);

    let confirm = move |_| {
        let Some(change) = pending.get_untracked() else {
            return;
        };
        if busy.get_untracked() {
            return;
        }
        busy.set(true);
        error.set(None);
        let (me, navigate) = (me.clone(), navigate.clone());
        spawn_local(async move {
            match change_member(app, &me, clinic_id, member_id, change).await {
                Ok(()) => {
                    pending.set(None);
                    let _ = on_changed.try_run(());
                }
                Err(e) => report_error(app, &navigate, error, e),
            }
            busy.set(false);
        });
    };
    let question = {
        let name = name.clone();
        move || {
            pending.get().map(|c| match c {
                MemberChange::Remove => format!(
                    "Remove {name}? Their sessions end now, and every clinic key is replaced: \
                     they cannot read anything written from now on."
                ),
                MemberChange::Role(r) => format!(
                    "Make {name} {}? Every clinic key is replaced; they keep only what the new \
                     role grants.",
                    role_label(r)
                ),
            })
        }
    };
    let last_owner_note = (data.manageable && data.last_owner_self).then(|| {
        view! {
            <p class="help last-owner">
                "You are the only owner: make someone else an owner before you leave or step down."
            </p>
        }
    });
    let actions = (data.manageable && !data.last_owner_self).then(|| {
        view! {
            <div class="member-actions">
                <label class="visually-hidden" for=format!("role-{member_id}")>"Role"</label>
                <select class="member-role" id=format!("role-{member_id}")
                    on:change=move |ev| {
                        if let Some(r) = parse_role(&event_target_value(&ev)) {
                            chosen.set(r);
                        }
                    }>
                    {ROLES
                        .into_iter()
                        .map(|r| view! {
                            <option value=role_code(r) prop:selected=move || chosen.get() == r>
                                {role_label(r)}
                            </option>
                        })
                        .collect_view()}
                </select>
                <button type="button" class="button secondary member-role-save"
                    disabled=move || chosen.get() == current || busy.get()
                    on:click=move |_| pending.set(Some(MemberChange::Role(chosen.get_untracked())))>
                    "Change role"
                </button>
                <button type="button" class="button danger member-remove"
                    disabled=move || busy.get()
                    on:click=move |_| pending.set(Some(MemberChange::Remove))>
                    {if is_me { "Leave" } else { "Remove" }}
                </button>
            </div>
        }
    });

    // Account security for another member: not a roster change, no key rotation.
    let security = (data.manageable && !is_me).then(|| {
        let run = {
            let navigate = security_navigate;
            // 0: sign out everywhere, 1: clear the lockout, 2: require a password change.
            move |action: u8| {
                if security_busy.get_untracked() {
                    return;
                }
                security_busy.set(true);
                security_note.set(None);
                error.set(None);
                let navigate = navigate.clone();
                spawn_local(async move {
                    let result = match action {
                        1 => api::unlock_member(clinic_id, member_id).await,
                        2 => api::require_password_change(clinic_id, member_id).await,
                        _ => api::revoke_member_sessions(clinic_id, member_id).await,
                    };
                    match result {
                        Ok(()) => security_note.set(Some(match action {
                            1 => "Login lockout cleared: they can log in now.",
                            2 => "Signed out: they must choose a new password before opening \
                                  this clinic again.",
                            _ => "Signed out everywhere.",
                        })),
                        Err(e) => report_error(app, &navigate, error, e),
                    }
                    security_busy.set(false);
                });
            }
        };
        let run = StoredValue::new(run);
        view! {
            <div class="member-actions member-security">
                <button type="button" class="button secondary member-revoke-sessions"
                    title="End every session of this member (for example a lost laptop)"
                    disabled=move || security_busy.get() || busy.get()
                    on:click=move |_| run.with_value(|r| r(0))>
                    "Sign out everywhere"
                </button>
                <button type="button" class="button secondary member-unlock"
                    title="Let this member log in again at once after too many attempts"
                    disabled=move || security_busy.get() || busy.get()
                    on:click=move |_| run.with_value(|r| r(1))>
                    "Clear login lockout"
                </button>
                <button type="button" class="button secondary member-require-password-change"
                    title="On evidence of compromise: sign this member out and make them choose a new password"
                    disabled=move || security_busy.get() || busy.get()
                    on:click=move |_| run.with_value(|r| r(2))>
                    "Require password change"
                </button>
            </div>
        }
    });

    view! {
        <tr class="member-row" data-id=member_id.to_string() data-role=role_code(current)>
            <td>
                <span class="member-name">{name.clone()}</span>
                {is_me.then(|| view! { <span class="badge">"you"</span> })}
                {(!data.in_roster).then(|| view! {
                    <span class="badge warn">"Not in the signed member list"</span>
                })}
            </td>
            <td class="member-role-label">{role_label(current)}</td>
            <td><code class="fingerprint">{fingerprint(&m.public_keys)}</code></td>
            <td class="member-last-login">
                {m.last_login_at.map(crate::util::local_time).unwrap_or_else(|| "never".to_string())}
            </td>
            <td>
                {actions}
                {security}
                {move || security_note.get().map(|n| view! { <p class="member-note" role="status">{n}</p> })}
                {last_owner_note}
                {move || question().map(|q| view! {
                    <div class="confirm" role="alertdialog" aria-label="Confirm">
                        <p>{q}</p>
                        <button type="button" class="button danger member-confirm" on:click=confirm.clone()
                            disabled=move || busy.get()>
                            "Yes, rotate the keys"
                        </button>
                        <button type="button" class="button secondary member-cancel"
                            disabled=move || busy.get()
                            on:click=move |_| pending.set(None)>
                            "Cancel"
                        </button>
                    </div>
                })}
                <Show when=move || busy.get()>
                    <Spinner label="Rotating the clinic keys…" />
                </Show>
                {move || error.get().map(|e| view! { <p class="error" role="alert">{e}</p> })}
            </td>
        </tr>
    }
}

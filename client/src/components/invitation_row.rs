//! One open invitation on the owner's members page. An accepted one is checked here: the
//! invitee's MAC with the secret only the link carried, then the safety number both people
//! compare before the owner adds them.

use std::sync::Arc;

use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::hooks::use_navigate;
use optovault_shared::wire::{InvitationStatus, InvitationView};
use uuid::Uuid;

use crate::api;
use crate::components::spinner::Spinner;
use crate::pages::report_error;
use crate::state::{use_app, Unlocked};
use crate::team::{admit, check_acceptance, role_label, AcceptanceCheck};
use crate::util::local_time;

pub const TAMPERED: &str = "This acceptance was tampered with; do not admit.";

fn status_label(s: InvitationStatus) -> &'static str {
    match s {
        InvitationStatus::Pending => "Waiting for the invitee",
        InvitationStatus::Accepted => "Accepted",
        InvitationStatus::Joined => "Joined",
        InvitationStatus::Revoked => "Revoked",
        InvitationStatus::Expired => "Expired",
    }
}

#[component]
pub fn InvitationRow(
    me: Arc<Unlocked>,
    clinic_id: Uuid,
    inv: InvitationView,
    on_changed: Callback<()>,
) -> impl IntoView {
    let app = use_app();
    let navigate = use_navigate();
    let error = RwSignal::new(None::<String>);
    let busy = RwSignal::new(None::<&'static str>);
    let check = check_acceptance(&me, &inv);
    let invitation_id = inv.invitation_id;
    let who = inv
        .acceptance
        .as_ref()
        .map(|a| a.username.clone())
        .unwrap_or_else(|| "—".into());

    let revoke = {
        let navigate = navigate.clone();
        move |_| {
            if busy.get_untracked().is_some() {
                return;
            }
            busy.set(Some("Revoking…"));
            let navigate = navigate.clone();
            spawn_local(async move {
                match api::revoke_invitation(clinic_id, invitation_id).await {
                    Ok(()) => {
                        // The component may be gone by now (the user moved on): nothing to tell then.
                        let _ = on_changed.try_run(());
                    }
                    Err(e) => report_error(app, &navigate, error, e),
                }
                busy.set(None);
            });
        }
    };
    let do_admit = {
        let (me, inv) = (me.clone(), inv.clone());
        move |_| {
            if busy.get_untracked().is_some() {
                return;
            }
            busy.set(Some("Adding and sharing the keys…"));
            let (me, inv, navigate) = (me.clone(), inv.clone(), navigate.clone());
            spawn_local(async move {
                match admit(app, &me, clinic_id, &inv).await {
                    Ok(()) => {
                        // The component may be gone by now (the user moved on): nothing to tell then.
                        let _ = on_changed.try_run(());
                    }
                    Err(e) => report_error(app, &navigate, error, e),
                }
                busy.set(None);
            });
        }
    };

    let verdict = match check {
        None => None,
        Some(AcceptanceCheck::Genuine { safety_number }) => Some(
            view! {
                <div class="acceptance genuine">
                    <p>"Safety number — compare it with " {who.clone()} ":"</p>
                    <p class="safety-number">{safety_number}</p>
                    <button type="button" class="button primary invitation-admit" on:click=do_admit
                        disabled=move || busy.get().is_some()>
                        "The numbers match — add"
                    </button>
                </div>
            }
            .into_any(),
        ),
        Some(AcceptanceCheck::Tampered) => Some(
            view! { <p class="acceptance tampered error" role="alert">{TAMPERED}</p> }.into_any(),
        ),
        Some(AcceptanceCheck::NotMine) => Some(
            view! {
                <p class="acceptance help">
                    "Only the owner who created this invitation can check and add the invitee."
                </p>
            }
            .into_any(),
        ),
    };

    view! {
        <tr class="invitation-row" data-id=invitation_id.to_string()
            data-status=format!("{:?}", inv.status).to_lowercase()>
            <td>{role_label(inv.role)}</td>
            <td class="invitation-status">{status_label(inv.status)}</td>
            <td>{local_time(inv.expires_at)}</td>
            <td class="invitee">{who.clone()}</td>
            <td>
                {verdict}
                {move || error.get().map(|e| view! { <p class="error" role="alert">{e}</p> })}
                {move || busy.get().map(|label| view! { <Spinner label=label /> })}
                <button type="button" class="button secondary invitation-revoke" on:click=revoke
                    disabled=move || busy.get().is_some()>
                    "Revoke"
                </button>
            </td>
        </tr>
    }
}

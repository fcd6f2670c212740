//! The owner's form to invite someone: a role and how long the link stays valid. The link shown
//! afterwards carries the invitation's secret in its fragment; the server never sees it.

use std::sync::Arc;

use leptos::ev::SubmitEvent;
use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::hooks::use_navigate;
use optovault_shared::wire::Role;
use uuid::Uuid;

use crate::components::copy_field::CopyField;
use crate::components::spinner::Spinner;
use crate::pages::report_error;
use crate::state::{use_app, Unlocked};
use crate::team::{
    create_invitation, parse_role, role_code, role_label, INVITE_HOURS_DEFAULT, INVITE_HOURS_MAX,
    ROLES,
};

#[component]
pub fn InviteForm(
    me: Arc<Unlocked>,
    clinic_id: Uuid,
    /// Called after an invitation was created (to refresh the list).
    on_created: Callback<()>,
) -> impl IntoView {
    let app = use_app();
    let navigate = use_navigate();
    let role = RwSignal::new(Role::Optometrist);
    let hours = RwSignal::new(INVITE_HOURS_DEFAULT.to_string());
    let link = RwSignal::new(None::<String>);
    let error = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);

    let on_submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        if busy.get_untracked() {
            return;
        }
        let h = match hours.get_untracked().trim().parse::<u32>() {
            Ok(h) if (1..=INVITE_HOURS_MAX).contains(&h) => h,
            _ => {
                error.set(Some(format!(
                    "The link can be valid for 1 to {INVITE_HOURS_MAX} hours."
                )));
                return;
            }
        };
        let Some(clinic) = app.clinic(&clinic_id) else {
            error.set(Some("This clinic is not loaded yet.".into()));
            return;
        };
        error.set(None);
        busy.set(true);
        let (me, navigate) = (me.clone(), navigate.clone());
        spawn_local(async move {
            match create_invitation(&me, &clinic, role.get_untracked(), h).await {
                Ok(url) => {
                    link.set(Some(url));
                    let _ = on_created.try_run(());
                }
                Err(e) => report_error(app, &navigate, error, e),
            }
            busy.set(false);
        });
    };

    view! {
        <form class="card invite-form" on:submit=on_submit novalidate>
            <h2>"Invite someone"</h2>
            <div class="grid">
                <div class="field">
                    <label for="invite-role">"Role"</label>
                    <select id="invite-role" name="invite-role"
                        on:change=move |ev| {
                            if let Some(r) = parse_role(&event_target_value(&ev)) {
                                role.set(r);
                            }
                        }>
                        {ROLES
                            .into_iter()
                            .map(|r| {
                                view! {
                                    <option value=role_code(r) prop:selected=move || role.get() == r>
                                        {role_label(r)}
                                    </option>
                                }
                            })
                            .collect_view()}
                    </select>
                </div>
                <div class="field">
                    <label for="invite-hours">"Link valid for (hours)"</label>
                    <input id="invite-hours" name="invite-hours" type="number" min="1"
                        max=INVITE_HOURS_MAX.to_string() bind:value=hours />
                </div>
            </div>
            {move || error.get().map(|e| view! { <p id="invite-create-error" class="error" role="alert">{e}</p> })}
            <div class="actions">
                <button id="invite-create" type="submit" class="button primary" disabled=move || busy.get()>
                    "Create invitation link"
                </button>
                <Show when=move || busy.get()>
                    <Spinner label="Creating the invitation…" />
                </Show>
            </div>
            <Show when=move || link.with(Option::is_some)>
                <CopyField id="invite-link" label="Invitation link"
                    value=Signal::derive(move || link.get().unwrap_or_default()) />
                <p class="help">
                    "Send this link to the person you invite, over a channel you trust. "
                    "It works once. After they accept, compare the safety number with them "
                    "before you add them."
                </p>
            </Show>
        </form>
    }
}

//! The account page's passkeys: register one or several (each under a name), see when each was
//! last used, remove one. Any of them answers a login's second step.

use leptos::ev::SubmitEvent;
use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::hooks::use_navigate;
use optovault_shared::wire::{MfaStatus, PasskeyInfo, PasskeyRegisterFinish, PasskeyRegisterStart};
use uuid::Uuid;

use crate::api;
use crate::pages::report_error;
use crate::state::use_app;
use crate::util::local_time;

#[component]
pub fn PasskeySettings(
    status: RwSignal<Option<MfaStatus>>,
    /// Set to the fresh recovery codes when a passkey is added.
    recovery_codes: RwSignal<Option<Vec<String>>>,
    /// Reload the second-factor status after a change.
    #[prop(into)]
    on_change: Callback<()>,
) -> impl IntoView {
    let app = use_app();
    let navigate = use_navigate();
    let name = RwSignal::new(String::new());
    let error = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);

    let add = {
        let navigate = navigate.clone();
        move |ev: SubmitEvent| {
            ev.prevent_default();
            if busy.get_untracked() {
                return;
            }
            let chosen = name.get_untracked().trim().to_string();
            if chosen.is_empty() {
                error.set(Some(
                    "Name the passkey, e.g. \"Reception YubiKey\" or \"My phone\".".into(),
                ));
                return;
            }
            busy.set(true);
            error.set(None);
            let navigate = navigate.clone();
            spawn_local(async move {
                let added = async {
                    let challenge =
                        api::passkey_register_start(&PasskeyRegisterStart { name: chosen })
                            .await
                            .map_err(Err)?;
                    let credential = crate::passkeys::create(challenge.options)
                        .await
                        .map_err(Ok)?;
                    api::passkey_register_finish(&PasskeyRegisterFinish { credential })
                        .await
                        .map_err(Err)
                }
                .await;
                match added {
                    Ok(done) => {
                        name.set(String::new());
                        recovery_codes.set(Some(done.recovery_codes));
                        let _ = on_change.try_run(());
                    }
                    Err(Ok(local)) => error.set(Some(local)),
                    Err(Err(e)) => report_error(app, &navigate, error, e),
                }
                busy.set(false);
            });
        }
    };

    let remove = {
        let navigate = navigate.clone();
        move |id: Uuid| {
            if busy.get_untracked() {
                return;
            }
            busy.set(true);
            error.set(None);
            let navigate = navigate.clone();
            spawn_local(async move {
                match api::passkey_remove(id).await {
                    Ok(()) => {
                        // The component may be gone by now (the user moved on): nothing to tell then.
                        let _ = on_change.try_run(());
                    }
                    Err(e) if e.code == "reauthentication_required" => error.set(Some(
                        "To remove a passkey, log out and in again first (your login must be \
                         less than 10 minutes old)."
                            .into(),
                    )),
                    Err(e) => report_error(app, &navigate, error, e),
                }
                busy.set(false);
            });
        }
    };

    let row = move |p: PasskeyInfo| {
        let remove = remove.clone();
        let id = p.id;
        let used = p
            .last_used_at
            .map(|t| format!("last used {}", local_time(t)))
            .unwrap_or_else(|| "not used yet".into());
        view! {
            <li class="passkey" data-passkey-id=id.to_string()>
                <span class="passkey-name">{p.name.clone()}</span>
                <span class="help">{format!(" · added {} · {used}", local_time(p.created_at))}</span>
                <button type="button" class="button danger small passkey-remove"
                    on:click=move |_| remove(id) disabled=move || busy.get()>"Remove"</button>
            </li>
        }
    };

    view! {
        <div id="passkeys" class="passkeys">
            <h3>"Passkeys and security keys"</h3>
            <p class="help">
                "A passkey (on this computer, a phone, or a USB security key) answers the second \
                 step of a login with a touch or PIN instead of a code. Register more than one, so \
                 losing one does not lock you out."
            </p>
            {move || error.get().map(|e| view! { <p id="passkey-error" class="error" role="alert">{e}</p> })}
            <ul id="passkey-list" class="passkey-list">
                {move || status.get().map(|s| s.passkeys.into_iter().map(row.clone()).collect_view())}
            </ul>
            <form id="passkey-add-form" class="inline-form" on:submit=add novalidate>
                <div class="field">
                    <label for="passkey-name">"Name of the new passkey"</label>
                    <input id="passkey-name" type="text" maxlength="60" autocomplete="off"
                        bind:value=name />
                </div>
                <button id="passkey-add" type="submit" class="button primary"
                    disabled=move || busy.get()>"Add a passkey"</button>
            </form>
        </div>
    }
}

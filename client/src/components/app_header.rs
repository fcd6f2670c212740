use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::hooks::use_navigate;

use crate::api;
use crate::state::use_app;

/// The bar on top of every page that needs keys: who is signed in, their account page, and the
/// logout button.
#[component]
pub fn AppHeader() -> impl IntoView {
    let app = use_app();
    let navigate = use_navigate();
    let username = app.me().map(|m| m.username.clone()).unwrap_or_default();
    let leaving = RwSignal::new(false);
    // A policy message belongs to the page that met it: every page starts without one.
    app.policy_block.set(None);
    let logout = move |_| {
        if leaving.get_untracked() {
            return;
        }
        leaving.set(true);
        let navigate = navigate.clone();
        spawn_local(async move {
            // Revoke the session on the server, then forget every key and every decrypted record.
            let _ = api::logout().await;
            app.lock();
            app.return_to.set_value(None);
            navigate("/login", Default::default());
        });
    };
    view! {
        <header class="app-header">
            <a class="brand" href="/clinics">"OptoVault"</a>
            <div class="who">
                <span class="username">{username}</span>
                <a id="account-link" class="account-link" href="/account">"Account"</a>
                <button
                    id="logout"
                    type="button"
                    class="button secondary"
                    on:click=logout
                    disabled=move || leaving.get()
                >
                    "Log out"
                </button>
            </div>
        </header>
        <Show when=move || app.recovery_reminder.get()>
            <div id="recovery-reminder" class="recovery-reminder" role="note">
                <p>
                    <strong>"Create your recovery kit now. "</strong>
                    "Without your password and a recovery kit your data is gone: nobody, not the "
                    "clinic and not the server's operator, can recover it."
                </p>
                <a id="go-to-recovery" class="button primary" href="/account#recovery">"Create the recovery kit"</a>
            </div>
        </Show>
        {move || app.policy_block.get().map(|m| view! {
            <div id="policy-block" class="policy-block" role="alert">
                <p>{m}</p>
                <a id="go-to-account" class="button primary" href="/account">"Go to your account"</a>
            </div>
        })}
    }
}

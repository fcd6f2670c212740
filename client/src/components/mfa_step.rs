//! The second step of a login with a second factor (login page and lock screen): a passkey, a
//! TOTP code, or one of the recovery codes. The pending login keeps OPAQUE's export key in memory until this
//! step ends (dropping it zeroizes the key).

use std::sync::Arc;

use leptos::ev::SubmitEvent;
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::auth::{finish_sign_in, AuthError, PendingMfa, SecondFactor};
use crate::components::spinner::Spinner;
use crate::state::use_app;

#[component]
pub fn MfaStep(
    pending: Arc<PendingMfa>,
    /// Logged in: the keys are in the app state.
    #[prop(into)]
    on_done: Callback<()>,
    /// Back to the password step, with a message (the token expired or was spent).
    #[prop(into)]
    on_restart: Callback<String>,
) -> impl IntoView {
    let app = use_app();
    let code = RwSignal::new(String::new());
    let recovery = RwSignal::new(String::new());
    let use_recovery = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);
    let has_passkey = pending.methods.iter().any(|m| m == "passkey");
    let has_totp = pending.methods.iter().any(|m| m == "totp");
    // Without an authenticator app, the form below is for recovery codes only.
    if !has_totp {
        use_recovery.set(true);
    }

    let finish = move |factor: SecondFactor, pending: Arc<PendingMfa>| {
        error.set(None);
        busy.set(true);
        spawn_local(async move {
            match finish_sign_in(app, &pending, factor).await {
                Ok(()) => {
                    drop(pending);
                    on_done.run(());
                }
                Err(AuthError::MfaExpired(m)) => {
                    drop(pending);
                    on_restart.run(m);
                }
                Err(e) => {
                    code.set(String::new());
                    error.set(Some(e.to_string()));
                    busy.set(false);
                }
            }
        });
    };

    let use_passkey = {
        let pending = pending.clone();
        move |_| {
            if !busy.get_untracked() {
                finish(SecondFactor::Passkey, pending.clone());
            }
        }
    };

    let on_submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        if busy.get_untracked() {
            return;
        }
        let factor = if use_recovery.get_untracked() {
            let r = recovery.get_untracked().trim().to_string();
            if r.is_empty() {
                error.set(Some("Enter one of your recovery codes.".into()));
                return;
            }
            SecondFactor::RecoveryCode(r)
        } else {
            let c: String = code
                .get_untracked()
                .chars()
                .filter(|c| !c.is_whitespace())
                .collect();
            if c.is_empty() {
                error.set(Some("Enter the code from your authenticator app.".into()));
                return;
            }
            SecondFactor::Code(c)
        };
        finish(factor, pending.clone());
    };

    let toggle = move |_| {
        use_recovery.update(|u| *u = !*u);
        error.set(None);
    };

    view! {
        <form id="mfa-form" class="card" on:submit=on_submit novalidate>
            <h2>"Second factor"</h2>
            {has_passkey.then(|| view! {
                <div class="actions passkey-step">
                    <button id="use-passkey" type="button" class="button primary" on:click=use_passkey
                        disabled=move || busy.get()>"Use a passkey or security key"</button>
                </div>
                <p class="help">"Or:"</p>
            })}
            <Show
                when=move || use_recovery.get()
                fallback=move || view! {
                    <div class="field">
                        <label for="mfa-code">"Code from your authenticator app"</label>
                        <input id="mfa-code" name="code" type="text" inputmode="numeric"
                            autocomplete="one-time-code" maxlength="10" autofocus bind:value=code />
                    </div>
                }
            >
                <div class="field">
                    <label for="recovery-code">"Recovery code"</label>
                    <input id="recovery-code" name="recovery-code" type="text"
                        autocomplete="off" autocapitalize="none" spellcheck="false"
                        bind:value=recovery />
                    <p class="help">"Each recovery code works once."</p>
                </div>
            </Show>
            {move || error.get().map(|e| view! { <p id="mfa-error" class="error" role="alert">{e}</p> })}
            <div class="actions">
                <button id="mfa-submit" type="submit" class="button primary" disabled=move || busy.get()>
                    "Continue"
                </button>
                {has_totp.then(|| view! {
                    <button id="use-recovery" type="button" class="button secondary" on:click=toggle
                        disabled=move || busy.get()>
                        {move || if use_recovery.get() { "Use the authenticator app" } else { "Use a recovery code" }}
                    </button>
                })}
                <Show when=move || busy.get()>
                    <Spinner label="Unlocking your keys…" />
                </Show>
            </div>
        </form>
    }
}

//! "Forgot password": a new password set with the recovery key (and the second factor, if the
//! account has one). The private keys are opened with the recovery key and sealed again under the
//! new password, so no record is lost. Without a recovery kit nothing can be done.

use leptos::ev::SubmitEvent;
use leptos::prelude::*;
use leptos::task::spawn_local;
use optovault_shared::normalize_username;
use optovault_shared::password::{check_new_password, check_password};
use zeroize::{Zeroize, Zeroizing};

use crate::auth::{reset_with_recovery_key, RecoverError};
use crate::components::spinner::Spinner;
use crate::components::strength_meter::StrengthMeter;

#[component]
pub fn RecoverPage() -> impl IntoView {
    let username = RwSignal::new(String::new());
    let key = RwSignal::new(String::new());
    let password = RwSignal::new(String::new());
    let confirm = RwSignal::new(String::new());
    let code = RwSignal::new(String::new());
    let needs_code = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);
    let done = RwSignal::new(false);

    let strength = Memo::new(move |_| {
        password.with(|p| username.with(|u| check_password(p, &u.trim().to_lowercase())))
    });
    let typed = Signal::derive(move || password.with(|p| !p.is_empty()));

    let on_submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        if busy.get_untracked() {
            return;
        }
        let name = match normalize_username(&username.get_untracked()) {
            Ok(n) => n,
            Err(e) => {
                error.set(Some(e));
                return;
            }
        };
        if key.with_untracked(|k| k.trim().is_empty()) {
            error.set(Some("Enter your recovery key.".into()));
            return;
        }
        let pw = Zeroizing::new(password.get_untracked());
        if let Err(problem) = confirm.with_untracked(|c| check_new_password(&pw, c, &name)) {
            error.set(Some(problem));
            return;
        }
        let typed_key = Zeroizing::new(key.get_untracked());
        let typed_code = code.get_untracked();
        error.set(None);
        busy.set(true);
        spawn_local(async move {
            let c = needs_code.get_untracked().then_some(typed_code.as_str());
            match reset_with_recovery_key(&name, &typed_key, &pw, c).await {
                Ok(()) => {
                    password.update(|p| p.zeroize());
                    confirm.update(|p| p.zeroize());
                    key.update(|k| k.zeroize());
                    code.set(String::new());
                    done.set(true);
                }
                Err(RecoverError::NeedsCode) => {
                    needs_code.set(true);
                    error.set(Some(
                        "This account has a second factor: enter a code from your authenticator \
                         app (or one of your recovery codes)."
                            .into(),
                    ));
                }
                Err(RecoverError::Failed(m)) => error.set(Some(m)),
            }
            busy.set(false);
        });
    };

    view! {
        <main class="page narrow">
            <h1 class="logo">"OptoVault"</h1>
            <Show when=move || done.get()
                fallback=move || view! {
                    <form class="card" on:submit=on_submit novalidate>
                        <h2>"Forgot your password?"</h2>
                        <p class="help">
                            "Set a new password with the recovery key from your recovery kit. Your "
                            "records stay as they are. Without the recovery kit nobody can reset "
                            "the password: OptoVault never had it."
                        </p>
                        <div class="field">
                            <label for="recover-username">"Username"</label>
                            <input id="recover-username" name="username" type="text" autocomplete="username"
                                autocapitalize="none" spellcheck="false" required bind:value=username />
                        </div>
                        <div class="field">
                            <label for="recover-key">"Recovery key"</label>
                            <input id="recover-key" name="recovery-key" type="text" autocomplete="off"
                                autocapitalize="characters" spellcheck="false" required bind:value=key />
                            <p class="help">"As printed on the kit; dashes and spaces do not matter."</p>
                        </div>
                        <div class="field">
                            <label for="recover-new-password">"New password"</label>
                            <input id="recover-new-password" name="new-password" type="password"
                                autocomplete="new-password" required aria-describedby="password-problems"
                                bind:value=password />
                            <StrengthMeter strength=strength typed=typed />
                        </div>
                        <div class="field">
                            <label for="recover-new-password-confirm">"Confirm the new password"</label>
                            <input id="recover-new-password-confirm" name="new-password-confirm" type="password"
                                autocomplete="new-password" required bind:value=confirm />
                        </div>
                        <Show when=move || needs_code.get()>
                            <div class="field">
                                <label for="recover-code">"Second-factor code"</label>
                                <input id="recover-code" name="code" type="text" autocomplete="one-time-code"
                                    spellcheck="false" bind:value=code />
                                <p class="help">"From your authenticator app, or one of your recovery codes."</p>
                            </div>
                        </Show>
                        {move || error.get().map(|e| view! { <p id="recover-error" class="error" role="alert">{e}</p> })}
                        <div class="actions">
                            <button id="recover-submit" type="submit" class="button primary"
                                disabled=move || busy.get()>
                                "Set the new password"
                            </button>
                            <Show when=move || busy.get()>
                                <Spinner label="Opening your keys with the recovery key…" />
                            </Show>
                        </div>
                    </form>
                }>
                <div class="card">
                    <p id="recover-done" class="notice" role="status">
                        "Password reset. Log in with the new password."
                    </p>
                    <p><a id="recover-login" class="button primary" href="/login">"Log in"</a></p>
                </div>
            </Show>
            <p class="aside"><a href="/login">"Back to log in"</a></p>
        </main>
    }
}

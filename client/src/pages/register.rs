use leptos::ev::SubmitEvent;
use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::hooks::use_navigate;
use optovault_shared::normalize_username;
use optovault_shared::password::{check_new_password, check_password};
use zeroize::{Zeroize, Zeroizing};

use crate::auth::{register, sign_in, AuthError};
use crate::components::spinner::Spinner;
use crate::components::strength_meter::StrengthMeter;
use crate::state::use_app;

#[component]
pub fn RegisterPage() -> impl IntoView {
    let app = use_app();
    let navigate = use_navigate();
    let username = RwSignal::new(String::new());
    let password = RwSignal::new(String::new());
    let confirm = RwSignal::new(String::new());
    let error = RwSignal::new(None::<String>);
    let busy = RwSignal::new(None::<&'static str>);

    // Re-evaluated on every keystroke in either field (the username is a context word).
    let strength = Memo::new(move |_| {
        password.with(|p| username.with(|u| check_password(p, &u.trim().to_lowercase())))
    });
    let typed = Signal::derive(move || password.with(|p| !p.is_empty()));

    let on_submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        if busy.get_untracked().is_some() {
            return;
        }
        let name = match normalize_username(&username.get_untracked()) {
            Ok(n) => n,
            Err(e) => {
                error.set(Some(e));
                return;
            }
        };
        let pw = Zeroizing::new(password.get_untracked());
        if let Err(problem) = confirm.with_untracked(|c| check_new_password(&pw, c, &name)) {
            error.set(Some(problem));
            return;
        }
        error.set(None);
        busy.set(Some("Creating your account and keys…"));
        let navigate = navigate.clone();
        spawn_local(async move {
            if let Err(e) = register(&name, &pw).await {
                error.set(Some(match e {
                    AuthError::Api(e) if e.code == "username_taken" => {
                        "That username is taken. Choose another.".to_string()
                    }
                    other => other.to_string(),
                }));
                busy.set(None);
                return;
            }
            busy.set(Some("Logging in…"));
            match sign_in(app, &name, &pw).await {
                // A new account has no second factor yet.
                Ok(_) => {
                    password.update(|p| p.zeroize());
                    app.recovery_reminder.set(true);
                    confirm.update(|p| p.zeroize());
                    navigate(&app.take_return_to(), Default::default());
                }
                Err(e) => {
                    error.set(Some(format!(
                        "Your account was created, but logging in failed: {e} Please log in."
                    )));
                    busy.set(None);
                }
            }
        });
    };

    view! {
        <main class="page narrow">
            <h1 class="logo">"OptoVault"</h1>
            <form class="card" on:submit=on_submit novalidate>
                <h2>"Create an account"</h2>
                <div class="field">
                    <label for="username">"Username"</label>
                    <input id="username" name="username" type="text" autocomplete="username"
                        autocapitalize="none" spellcheck="false" required maxlength="64"
                        aria-describedby="username-help" bind:value=username />
                    <p class="help" id="username-help">
                        "3 to 64 characters: letters, digits and . _ - @"
                    </p>
                </div>
                <div class="field">
                    <label for="password">"Password"</label>
                    <input id="password" name="password" type="password" autocomplete="new-password"
                        required aria-describedby="password-problems" bind:value=password />
                    <StrengthMeter strength=strength typed=typed />
                </div>
                <div class="field">
                    <label for="password-confirm">"Confirm password"</label>
                    <input id="password-confirm" name="password-confirm" type="password"
                        autocomplete="new-password" required bind:value=confirm />
                </div>
                <p class="warning" role="note">
                    <strong>"Remember this password. "</strong>
                    "It is the only key to your data: OptoVault never sees it and cannot reset it. "
                    "If you forget it and have no recovery kit, your records are gone: nobody, not "
                    "the clinic and not the server's operator, can recover them. After creating the "
                    "account, make a recovery kit on your account page."
                </p>
                {move || error.get().map(|e| view! { <p id="register-error" class="error" role="alert">{e}</p> })}
                <div class="actions">
                    <button id="register-submit" type="submit" class="button primary"
                        disabled=move || busy.get().is_some()>
                        "Create account"
                    </button>
                    {move || busy.get().map(|label| view! { <Spinner label=label /> })}
                </div>
            </form>
            <p class="aside">"Already have an account? " <a href="/login">"Log in"</a></p>
        </main>
    }
}

//! Shown instead of every page after the idle lock dropped the keys: the username and a password
//! field. Unlocking ends the session of before the lock and runs a normal OPAQUE login for that
//! username (a new session); then the app goes back to the page the user was on.

use leptos::ev::SubmitEvent;
use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::hooks::use_navigate;
use leptos_router::NavigateOptions;
use zeroize::{Zeroize, Zeroizing};

use crate::api;
use std::sync::Arc;

use crate::auth::{sign_in, PendingMfa, SignIn};
use crate::components::mfa_step::MfaStep;
use crate::components::spinner::Spinner;
use crate::idle::timeout_text;
use crate::state::use_app;

#[component]
pub fn LockScreen() -> impl IntoView {
    let app = use_app();
    let navigate = use_navigate();
    let locked = app.locked.get_untracked();
    let username = locked
        .as_ref()
        .map(|l| l.username.clone())
        .unwrap_or_default();
    let password = RwSignal::new(String::new());
    let error = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);
    // Set when the account asks for a second factor after the password.
    let pending = RwSignal::new(None::<Arc<PendingMfa>>);

    // Back to the page of before the lock, once the keys are open again.
    let go_back = {
        let navigate = navigate.clone();
        move || {
            let back = app
                .locked
                .get_untracked()
                .map(|l| l.return_to)
                .unwrap_or_else(|| "/clinics".into());
            // The pages come back, at the page of before the lock (in place of
            // wherever Back or Forward went meanwhile).
            app.locked.set(None);
            navigate(
                &back,
                NavigateOptions {
                    replace: true,
                    ..Default::default()
                },
            );
        }
    };

    let on_submit = {
        let (username, go_back) = (username.clone(), go_back.clone());
        move |ev: SubmitEvent| {
            ev.prevent_default();
            if busy.get_untracked() {
                return;
            }
            let pw = Zeroizing::new(password.get_untracked());
            if pw.is_empty() {
                error.set(Some("Enter your password.".into()));
                return;
            }
            error.set(None);
            busy.set(true);
            let (username, go_back) = (username.clone(), go_back.clone());
            spawn_local(async move {
                // The session of before the lock is of no use without its keys: end it, so only
                // the new one stays (the answer does not matter; it may have expired already).
                let _ = api::logout().await;
                match sign_in(app, &username, &pw).await {
                    Ok(SignIn::Done) => {
                        password.update(|p| p.zeroize());
                        go_back();
                    }
                    Ok(SignIn::NeedsCode(p)) => {
                        password.update(|p| p.zeroize());
                        busy.set(false);
                        pending.set(Some(Arc::new(p)));
                    }
                    Err(e) => {
                        error.set(Some(e.to_string()));
                        busy.set(false);
                    }
                }
            });
        }
    };

    let log_out = move |_| {
        if busy.get_untracked() {
            return;
        }
        busy.set(true);
        let navigate = navigate.clone();
        spawn_local(async move {
            // The server session of before the lock may still be there: end it.
            let _ = api::logout().await;
            password.update(|p| p.zeroize());
            app.lock();
            app.locked.set(None);
            app.return_to.set_value(None);
            navigate("/login", Default::default());
        });
    };

    let on_done = Callback::new(move |()| {
        pending.set(None);
        go_back();
    });
    let on_restart = Callback::new(move |m: String| {
        pending.set(None);
        error.set(Some(m));
    });
    let password_form = move || {
        view! {
                <form class="card" on:submit=on_submit.clone() novalidate>
                    <h2>"Locked"</h2>
                    <p class="notice" role="status">
                        {format!(
                            "Nobody used this page for {}, so every key was removed from it. \
                             Enter your password to continue.",
                            timeout_text()
                        )}
                    </p>
                    <div class="field">
                        <label for="unlock-username">"Username"</label>
                        <input id="unlock-username" name="username" type="text" autocomplete="username"
                            readonly value=username.clone() />
                    </div>
                    <div class="field">
                        <label for="unlock-password">"Password"</label>
                        <input id="unlock-password" name="password" type="password"
                            autocomplete="current-password" required autofocus bind:value=password />
                    </div>
                    {move || error.get().map(|e| view! { <p id="unlock-error" class="error" role="alert">{e}</p> })}
                    <div class="actions">
                        <button id="unlock-submit" type="submit" class="button primary"
                            disabled=move || busy.get()>
                            "Unlock"
                        </button>
                        <button id="lock-logout" type="button" class="button secondary"
                            on:click=log_out.clone() disabled=move || busy.get()>
                            "Log out"
                        </button>
                        <Show when=move || busy.get()>
                            <Spinner label="Unlocking your keys…" />
                        </Show>
                    </div>
                </form>
        }
    };

    view! {
        <main id="lock-screen" class="page narrow lock-screen">
            <h1 class="logo">"OptoVault"</h1>
            {move || match pending.get() {
                Some(p) => view! { <MfaStep pending=p on_done=on_done on_restart=on_restart /> }.into_any(),
                None => password_form().into_any(),
            }}
        </main>
    }
}

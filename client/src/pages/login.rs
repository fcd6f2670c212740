use leptos::ev::SubmitEvent;
use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::hooks::use_navigate;
use optovault_shared::normalize_username;
use zeroize::{Zeroize, Zeroizing};

use std::sync::Arc;

use crate::auth::{sign_in, PendingMfa, SignIn, WRONG_CREDENTIALS};
use crate::components::mfa_step::MfaStep;
use crate::components::spinner::Spinner;
use crate::state::use_app;

#[component]
pub fn LoginPage() -> impl IntoView {
    let app = use_app();
    let navigate = use_navigate();
    let username = RwSignal::new(String::new());
    let password = RwSignal::new(String::new());
    let error = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);
    // Set when the password was right and the account asks for a second factor.
    let pending = RwSignal::new(None::<Arc<PendingMfa>>);
    // A message left by the previous page (e.g. an expired session), shown once.
    let notice = app.notice.get_untracked();
    app.notice.set(None);

    let on_submit = {
        let navigate = navigate.clone();
        move |ev: SubmitEvent| {
            ev.prevent_default();
            if busy.get_untracked() {
                return;
            }
            let raw = username.get_untracked();
            let pw = Zeroizing::new(password.get_untracked());
            if raw.trim().is_empty() || pw.is_empty() {
                error.set(Some("Enter your username and password.".into()));
                return;
            }
            // A name that cannot exist gets the same answer as a wrong password.
            let Ok(name) = normalize_username(&raw) else {
                error.set(Some(WRONG_CREDENTIALS.into()));
                return;
            };
            error.set(None);
            busy.set(true);
            let navigate = navigate.clone();
            spawn_local(async move {
                match sign_in(app, &name, &pw).await {
                    Ok(SignIn::Done) => {
                        password.update(|p| p.zeroize());
                        navigate(&app.take_return_to(), Default::default());
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

    let on_done = {
        let navigate = navigate.clone();
        move |()| {
            pending.set(None);
            navigate(&app.take_return_to(), Default::default());
        }
    };
    let on_restart = move |m: String| {
        pending.set(None);
        error.set(Some(m));
    };
    let on_done = Callback::new(on_done);
    let on_restart = Callback::new(on_restart);
    let password_form = move || {
        view! {
                <form class="card" on:submit=on_submit.clone() novalidate>
                    <h2>"Log in"</h2>
                    <div class="field">
                        <label for="username">"Username"</label>
                        <input id="username" name="username" type="text" autocomplete="username"
                            autocapitalize="none" spellcheck="false" required bind:value=username />
                    </div>
                    <div class="field">
                        <label for="password">"Password"</label>
                        <input id="password" name="password" type="password"
                            autocomplete="current-password" required bind:value=password />
                    </div>
                    {move || error.get().map(|e| view! { <p id="login-error" class="error" role="alert">{e}</p> })}
                    <div class="actions">
                        <button id="login-submit" type="submit" class="button primary" disabled=move || busy.get()>
                            "Log in"
                        </button>
                        <Show when=move || busy.get()>
                            <Spinner label="Unlocking your keys…" />
                        </Show>
                    </div>
                </form>
        }
    };

    view! {
        <main class="page narrow">
            <h1 class="logo">"OptoVault"</h1>
            <p class="lede">"Encrypted patient records. Your password never leaves this browser."</p>
            {notice.map(|n| view! { <p class="notice" role="status">{n}</p> })}
            {move || match pending.get() {
                Some(p) => view! { <MfaStep pending=p on_done=on_done on_restart=on_restart /> }.into_any(),
                None => password_form().into_any(),
            }}
            <p class="aside">
                <a id="forgot-password" href="/recover">"Forgot password?"</a>
                " · No account yet? " <a href="/register">"Create one"</a>
            </p>
            <p class="aside">
                "Moving your clinic to this server? " <a id="import-link" href="/import">"Import its copy"</a>
            </p>
        </main>
    }
}

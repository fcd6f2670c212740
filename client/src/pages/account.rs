//! The account page: where this account is logged in (and ending those sessions), the recovery
//! kit (made and shown once, for a reset when the password is forgotten), and changing the
//! password. A password change is a new OPAQUE registration plus the same private keys sealed
//! under the new export key; the server takes it only within 10 minutes of logging in.

use std::sync::Arc;

use leptos::ev::SubmitEvent;
use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::components::Redirect;
use leptos_router::hooks::use_navigate;
use optovault_shared::password::{check_new_password, check_password};
use optovault_shared::wire::{RecoveryStatus, SessionView};
use optovault_shared::UnixTime;
use uuid::Uuid;
use zeroize::{Zeroize, Zeroizing};

use crate::api;
use crate::auth::{change_password, create_recovery_kit, AuthError, REAUTH_NEEDED};
use crate::components::app_header::AppHeader;
use crate::components::mfa_settings::MfaSettings;
use crate::components::spinner::Spinner;
use crate::components::strength_meter::StrengthMeter;
use crate::pages::report_error;
use crate::state::{use_app, Unlocked};
use crate::util::{local_time, now};

/// How long after logging in the server accepts a password change (its `RECENT_LOGIN_SECS`).
const RECENT_LOGIN_SECS: UnixTime = 10 * 60;

#[component]
pub fn AccountPage() -> impl IntoView {
    let app = use_app();
    let Some(me) = app.me() else {
        return view! { <Redirect path="/login" /> }.into_any();
    };
    // Shared by both sections: the password section needs this session's login time.
    let sessions = RwSignal::new(None::<Vec<SessionView>>);
    view! {
        <AppHeader />
        <main class="page account-page">
            <nav class="crumbs" aria-label="Breadcrumb">
                <a href="/clinics">"← Clinics"</a>
            </nav>
            <h1>"Your account"</h1>
            <p class="lede">"Logged in as " <strong id="account-username">{me.username.clone()}</strong></p>
            <Sessions sessions=sessions />
            <MfaSettings />
            <RecoveryKit me=me.clone() />
            <PasswordChange me=me sessions=sessions />
        </main>
    }
    .into_any()
}

/// "Chrome on Linux" from a user agent; the full string is in the row's tooltip.
fn device(ua: Option<&str>) -> String {
    let Some(ua) = ua.filter(|u| !u.trim().is_empty()) else {
        return "Unknown browser".into();
    };
    let browser = if ua.contains("Edg/") {
        "Edge"
    } else if ua.contains("OPR/") {
        "Opera"
    } else if ua.contains("Firefox/") {
        "Firefox"
    } else if ua.contains("Chrome/") || ua.contains("Chromium/") || ua.contains("CriOS/") {
        "Chrome"
    } else if ua.contains("Safari/") {
        "Safari"
    } else {
        "Another program"
    };
    let os = if ua.contains("Android") {
        Some("Android")
    } else if ua.contains("iPhone") || ua.contains("iPad") {
        Some("iOS")
    } else if ua.contains("Windows") {
        Some("Windows")
    } else if ua.contains("Mac OS X") || ua.contains("Macintosh") {
        Some("macOS")
    } else if ua.contains("CrOS") {
        Some("ChromeOS")
    } else if ua.contains("Linux") {
        Some("Linux")
    } else {
        None
    };
    match os {
        Some(os) => format!("{browser} on {os}"),
        None => browser.into(),
    }
}

#[component]
fn Sessions(sessions: RwSignal<Option<Vec<SessionView>>>) -> impl IntoView {
    let app = use_app();
    let navigate = use_navigate();
    let error = RwSignal::new(None::<String>);
    let note = RwSignal::new(None::<&'static str>);
    let busy = RwSignal::new(false);

    let reload = {
        let navigate = navigate.clone();
        move || {
            let navigate = navigate.clone();
            busy.set(true);
            spawn_local(async move {
                match api::sessions().await {
                    Ok(list) => sessions.set(Some(list.sessions)),
                    Err(e) => report_error(app, &navigate, error, e),
                }
                busy.set(false);
            });
        }
    };
    reload();

    // Ends one other session (`Some`) or all of them (`None`), then lists again.
    let revoke = {
        let reload = reload.clone();
        move |target: Option<Uuid>| {
            if busy.get_untracked() {
                return;
            }
            busy.set(true);
            error.set(None);
            note.set(None);
            let (navigate, reload) = (navigate.clone(), reload.clone());
            spawn_local(async move {
                let result = match target {
                    Some(id) => api::revoke_session(id).await,
                    None => api::revoke_other_sessions().await,
                };
                match result {
                    Ok(()) => {
                        note.set(Some(if target.is_some() {
                            "That session was signed out."
                        } else {
                            "Every other session was signed out."
                        }));
                        reload();
                    }
                    // Already gone (it expired or was ended elsewhere): just list again.
                    Err(e) if e.status == 404 => reload(),
                    Err(e) => {
                        report_error(app, &navigate, error, e);
                        busy.set(false);
                    }
                }
            });
        }
    };
    let revoke = StoredValue::new(revoke);

    let list = move || sessions.get().unwrap_or_default();
    let others = move || {
        sessions.with(|s| {
            s.as_ref()
                .map_or(0, |s| s.iter().filter(|v| !v.current).count())
        })
    };

    view! {
        <section class="card account-sessions" aria-labelledby="sessions-title">
            <div class="page-title">
                <h2 id="sessions-title">"Where you are logged in"</h2>
                <div class="toolbar">
                    <Show when=move || busy.get()>
                        <Spinner label="Working…" />
                    </Show>
                    <button id="sessions-refresh" type="button" class="button secondary"
                        disabled=move || busy.get() on:click={
                            let reload = reload.clone();
                            move |_| reload()
                        }>
                        "Refresh"
                    </button>
                    <button id="revoke-others" type="button" class="button danger"
                        disabled=move || busy.get() || others() == 0
                        on:click=move |_| revoke.with_value(|r| r(None))>
                        "Sign out all other sessions"
                    </button>
                </div>
            </div>
            {move || error.get().map(|e| view! { <p id="sessions-error" class="error" role="alert">{e}</p> })}
            {move || note.get().map(|n| view! { <p id="sessions-note" class="notice" role="status">{n}</p> })}
            <table class="sessions">
                <thead>
                    <tr>
                        <th scope="col">"Browser"</th>
                        <th scope="col">"Address"</th>
                        <th scope="col">"Logged in"</th>
                        <th scope="col">"Last active"</th>
                        <th scope="col">"Ends at the latest"</th>
                        <th scope="col"><span class="visually-hidden">"Actions"</span></th>
                    </tr>
                </thead>
                <tbody>
                    <For each=list key=|s| (s.session_id, s.last_seen, s.current) let:s>
                        <tr class="session-row" class:current=s.current data-id=s.session_id.to_string()
                            data-current=s.current.then_some("true")>
                            <td title=s.user_agent.clone().unwrap_or_default()>
                                {device(s.user_agent.as_deref())}
                                {s.current.then(|| view! { <span class="badge current-badge">"this browser"</span> })}
                            </td>
                            <td>{s.ip.clone().unwrap_or_else(|| "unknown".into())}</td>
                            <td>{local_time(s.created_at)}</td>
                            <td>{local_time(s.last_seen)}</td>
                            <td>{local_time(s.expires_at)}</td>
                            <td>
                                {(!s.current).then(|| {
                                    let id = s.session_id;
                                    view! {
                                        <button type="button" class="button secondary session-revoke"
                                            disabled=move || busy.get()
                                            on:click=move |_| revoke.with_value(|r| r(Some(id)))>
                                            "Sign out"
                                        </button>
                                    }
                                })}
                            </td>
                        </tr>
                    </For>
                </tbody>
            </table>
            <p class="help">
                "A session ends when you log out, after a while without use, and at the latest at the time shown. "
                "Signing out a session there removes its access at once; the keys in that browser are "
                "dropped at its next request."
            </p>
        </section>
    }
}

/// The recovery kit shown once, right after it was made.
#[derive(Clone)]
struct ShownKit {
    key: String,
    date: String,
}

/// Whether a recovery kit exists; making (or replacing) one and showing it once for printing.
#[component]
fn RecoveryKit(me: Arc<Unlocked>) -> impl IntoView {
    let app = use_app();
    let navigate = use_navigate();
    let status = RwSignal::new(None::<RecoveryStatus>);
    let error = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);
    let shown = RwSignal::new(None::<ShownKit>);
    let username = me.username.clone();

    {
        let navigate = navigate.clone();
        spawn_local(async move {
            match api::recovery_status().await {
                Ok(s) => {
                    if s.configured {
                        app.recovery_reminder.set(false);
                    }
                    status.set(Some(s));
                }
                Err(e) => report_error(app, &navigate, error, e),
            }
        });
    }

    let create = {
        let (me, navigate) = (me.clone(), navigate.clone());
        move |_| {
            if busy.get_untracked() {
                return;
            }
            busy.set(true);
            error.set(None);
            let (me, navigate) = (me.clone(), navigate.clone());
            spawn_local(async move {
                match create_recovery_kit(&me).await {
                    Ok(key) => {
                        app.recovery_reminder.set(false);
                        shown.set(Some(ShownKit {
                            key: key.to_display(),
                            date: local_time(now()),
                        }));
                        status.set(Some(RecoveryStatus {
                            configured: true,
                            created_at: Some(now()),
                        }));
                    }
                    Err(AuthError::Api(e)) if e.code == "reauthentication_required" => {
                        error.set(Some(
                            "Log in again, then create your recovery kit within 10 minutes.".into(),
                        ));
                    }
                    Err(AuthError::Api(e)) => report_error(app, &navigate, error, e),
                    Err(e) => error.set(Some(e.to_string())),
                }
                busy.set(false);
            });
        }
    };

    let print = move |_| {
        if let Some(w) = web_sys::window() {
            let _ = w.print();
        }
    };

    let state_text = move || match status.get() {
        None => "Checking…".to_string(),
        Some(RecoveryStatus {
            configured: true,
            created_at,
        }) => match created_at {
            Some(t) => format!("You have a recovery kit, made {}.", local_time(t)),
            None => "You have a recovery kit.".to_string(),
        },
        Some(_) => {
            "You have no recovery kit. If you forget your password, your data is gone.".to_string()
        }
    };
    let configured = move || status.with(|s| s.as_ref().is_some_and(|s| s.configured));

    view! {
        <section id="recovery" class="card account-recovery" aria-labelledby="recovery-title">
            <h2 id="recovery-title">"Recovery kit"</h2>
            <p id="recovery-status" class="help" data-configured=move || configured().then_some("true")>
                {state_text}
            </p>
            <p class="help">
                "The recovery kit holds a key that lets you set a new password if you forget yours, "
                "without losing any records. It is shown once: print it or write it down, and keep it "
                "somewhere safe. Making a new kit replaces the old one."
            </p>
            {move || error.get().map(|e| view! { <p id="recovery-error" class="error" role="alert">{e}</p> })}
            {move || shown.get().map(|k| {
                let username = username.clone();
                view! {
                    <div id="recovery-kit" class="recovery-kit">
                        <h3>"OptoVault recovery kit"</h3>
                        <dl>
                            <dt>"Username"</dt>
                            <dd id="recovery-username">{username}</dd>
                            <dt>"Made on"</dt>
                            <dd id="recovery-date">{k.date}</dd>
                            <dt>"Recovery key"</dt>
                            <dd><code id="recovery-key" class="recovery-key">{k.key}</code></dd>
                        </dl>
                        <p class="warning" role="note">
                            "Anyone with this key and your second factor can reset your password. "
                            "Without your password and this key your data is gone: nobody, not the "
                            "clinic and not the server's operator, can recover it."
                        </p>
                        <p class="help no-print">"This key is shown only now. Print it or write it down before you leave this page."</p>
                        <div class="actions no-print">
                            <button id="recovery-print" type="button" class="button secondary" on:click=print>
                                "Print the kit"
                            </button>
                        </div>
                    </div>
                }
            })}
            <div class="actions">
                <button id="recovery-create" type="button" class="button primary"
                    disabled=move || busy.get() || status.get().is_none() on:click=create>
                    {move || if configured() { "Replace my recovery kit" } else { "Create a recovery kit" }}
                </button>
                <Show when=move || busy.get()>
                    <Spinner label="Sealing your keys under the recovery key…" />
                </Show>
            </div>
        </section>
    }
}

#[component]
fn PasswordChange(
    me: Arc<Unlocked>,
    sessions: RwSignal<Option<Vec<SessionView>>>,
) -> impl IntoView {
    let app = use_app();
    let navigate = use_navigate();
    let password = RwSignal::new(String::new());
    let confirm = RwSignal::new(String::new());
    let error = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);
    let changed = RwSignal::new(false);
    let username = me.username.clone();

    let strength = {
        let username = username.clone();
        Memo::new(move |_| password.with(|p| check_password(p, &username)))
    };
    let typed = Signal::derive(move || password.with(|p| !p.is_empty()));
    // When this session logged in, as the server counts it.
    let logged_in_at = move || {
        sessions.with(|s| {
            s.as_ref()
                .and_then(|s| s.iter().find(|v| v.current).map(|v| v.created_at))
        })
    };

    let on_submit = {
        let (me, navigate) = (me.clone(), navigate.clone());
        move |ev: SubmitEvent| {
            ev.prevent_default();
            if busy.get_untracked() {
                return;
            }
            changed.set(false);
            let pw = Zeroizing::new(password.get_untracked());
            if let Err(problem) =
                confirm.with_untracked(|c| check_new_password(&pw, c, &me.username))
            {
                error.set(Some(problem));
                return;
            }
            error.set(None);
            busy.set(true);
            let (me, navigate) = (me.clone(), navigate.clone());
            spawn_local(async move {
                match change_password(&me, &pw).await {
                    Ok(()) => {
                        password.update(|p| p.zeroize());
                        confirm.update(|p| p.zeroize());
                        changed.set(true);
                        // The other sessions are gone now: list again.
                        if let Ok(list) = api::sessions().await {
                            sessions.set(Some(list.sessions));
                        }
                    }
                    Err(AuthError::Api(e)) if e.code == "reauthentication_required" => {
                        error.set(Some(REAUTH_NEEDED.into()));
                    }
                    Err(AuthError::Api(e)) => report_error(app, &navigate, error, e),
                    Err(e) => error.set(Some(e.to_string())),
                }
                busy.set(false);
            });
        }
    };

    // Log out and back in, then come back here.
    let reauthenticate = move |_| {
        if busy.get_untracked() {
            return;
        }
        busy.set(true);
        let navigate = navigate.clone();
        spawn_local(async move {
            let _ = api::logout().await;
            app.lock();
            app.return_to.set_value(Some("/account".into()));
            app.notice.set(Some(
                "Log in again, then change your password within 10 minutes.".into(),
            ));
            navigate("/login", Default::default());
        });
    };

    let window_note = move || {
        let why = "Changing your password needs a login in the last 10 minutes: logging in \
                   proves the current password, so a session left open cannot be used to change \
                   it.";
        match logged_in_at() {
            None => why.to_string(),
            Some(t) if now() - t < RECENT_LOGIN_SECS => format!(
                "{why} You logged in at {}: change it before {}, or log in again first.",
                local_time(t),
                local_time(t + RECENT_LOGIN_SECS)
            ),
            Some(t) => format!(
                "{why} You logged in at {}, more than 10 minutes ago: log in again first.",
                local_time(t)
            ),
        }
    };
    let window_closed = move || logged_in_at().is_some_and(|t| now() - t >= RECENT_LOGIN_SECS);

    view! {
        <form class="card account-password" on:submit=on_submit novalidate aria-labelledby="password-title">
            <h2 id="password-title">"Change your password"</h2>
            <p id="current-password-note" class="help">{window_note}</p>
            <Show when=window_closed>
                <p>
                    <button id="reauth" type="button" class="button secondary"
                        on:click=reauthenticate.clone() disabled=move || busy.get()>
                        "Log out and log in again"
                    </button>
                </p>
            </Show>
            // For password managers: which account this new password belongs to.
            <input class="visually-hidden" type="text" name="username" autocomplete="username"
                readonly tabindex="-1" aria-hidden="true" value=username.clone() />
            <div class="field">
                <label for="new-password">"New password"</label>
                <input id="new-password" name="new-password" type="password" autocomplete="new-password"
                    required aria-describedby="password-problems" bind:value=password />
                <StrengthMeter strength=strength typed=typed />
            </div>
            <div class="field">
                <label for="new-password-confirm">"Confirm the new password"</label>
                <input id="new-password-confirm" name="new-password-confirm" type="password"
                    autocomplete="new-password" required bind:value=confirm />
            </div>
            <p class="warning" role="note">
                <strong>"Remember the new password. "</strong>
                "It replaces the old one as the only key to your data; OptoVault cannot reset it. "
                "Your other sessions are signed out."
            </p>
            {move || error.get().map(|e| view! { <p id="password-error" class="error" role="alert">{e}</p> })}
            <Show when=move || changed.get()>
                <p id="password-changed" class="notice" role="status">
                    "Password changed. Other sessions were signed out."
                </p>
            </Show>
            <div class="actions">
                <button id="change-password" type="submit" class="button primary"
                    disabled=move || busy.get()>
                    "Change password"
                </button>
                <Show when=move || busy.get()>
                    <Spinner label="Sealing your keys under the new password…" />
                </Show>
            </div>
        </form>
    }
}

#[cfg(test)]
mod tests {
    use super::device;

    #[test]
    fn user_agents_are_named() {
        let chrome = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) \
                      HeadlessChrome/120.0.0.0 Safari/537.36";
        assert_eq!(device(Some(chrome)), "Chrome on Linux");
        assert_eq!(device(None), "Unknown browser");
        assert_eq!(
            device(Some(
                "Mozilla/5.0 (Windows NT 10.0; rv:121.0) Gecko/20100101 Firefox/121.0"
            )),
            "Firefox on Windows"
        );
    }
}

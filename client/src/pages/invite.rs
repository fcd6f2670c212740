//! The invitee's side of an invitation link `/invite/{clinic}/{invitation}#k=…&a=…&oe=…&ox=…`.
//! The fragment never reaches the server. Accepting sends a MAC (keyed by the link's secret) over
//! who I am and my public keys; then both people compare the safety number before the owner adds
//! me.

use std::sync::Arc;

use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::hooks::{use_navigate, use_params_map};
use optovault_shared::wire::{InvitationInfo, InvitationStatus};
use uuid::Uuid;

use crate::api::ApiError;
use crate::components::app_header::AppHeader;
use crate::components::spinner::Spinner;
use crate::pages::not_found::NotFound;
use crate::pages::report_error;
use crate::state::{use_app, Unlocked};
use crate::team::{accept, invitee_safety_number, role_label, InviteLink};
use crate::util::local_time;

/// The link's fragment: from the address bar, or (after logging in on the way) from memory.
fn fragment(path: &str, remembered: Option<String>) -> String {
    let here = web_sys::window()
        .and_then(|w| w.location().hash().ok())
        .unwrap_or_default();
    if !here.trim_start_matches('#').is_empty() {
        return here;
    }
    remembered
        .and_then(|r| {
            r.strip_prefix(path)
                .and_then(|rest| rest.strip_prefix('#'))
                .map(str::to_string)
        })
        .unwrap_or_default()
}

#[component]
pub fn InvitePage() -> impl IntoView {
    let params = use_params_map();
    let ids = Memo::new(move |_| {
        params.with(|p| {
            let get = |k: &str| p.get(k).and_then(|s| Uuid::parse_str(&s).ok());
            get("clinic_id").zip(get("invitation_id"))
        })
    });
    move || match ids.get() {
        Some((clinic_id, invitation_id)) => {
            view! { <Invitation clinic_id=clinic_id invitation_id=invitation_id /> }.into_any()
        }
        None => view! { <NotFound /> }.into_any(),
    }
}

#[component]
fn Invitation(clinic_id: Uuid, invitation_id: Uuid) -> impl IntoView {
    let app = use_app();
    let path = format!("/invite/{clinic_id}/{invitation_id}");
    let frag = fragment(&path, app.return_to.get_value());
    let link = InviteLink::parse(&frag).map(Arc::new);
    match (app.me(), link) {
        (_, Err(why)) => view! {
            <main class="page narrow">
                <h1>"Invitation"</h1>
                <p id="invite-error" class="error" role="alert">{why}</p>
            </main>
        }
        .into_any(),
        (None, Ok(_)) => {
            // Come back here, fragment included, once logged in (in-app navigation: no reload).
            app.return_to
                .set_value(Some(format!("{path}#{}", frag.trim_start_matches('#'))));
            view! {
                <main class="page narrow">
                    <h1 class="logo">"OptoVault"</h1>
                    <div class="card">
                        <h2>"You are invited to join a clinic"</h2>
                        <p>
                            "Log in, or create an account, to accept this invitation. "
                            "You will come back to this page."
                        </p>
                        <div class="actions">
                            <a id="invite-login" class="button primary" href="/login">"Log in"</a>
                            <a id="invite-register" class="button secondary" href="/register">
                                "Create an account"
                            </a>
                        </div>
                    </div>
                </main>
            }
            .into_any()
        }
        (Some(me), Ok(link)) => {
            view! { <Accept me=me clinic_id=clinic_id invitation_id=invitation_id link=link /> }
                .into_any()
        }
    }
}

fn describe(e: &ApiError) -> String {
    match e.code.as_str() {
        "invitation_expired" => "This invitation has expired. Ask the owner for a new link.".into(),
        "invitation_used" => {
            "This invitation was already used. Ask the owner for a new link.".into()
        }
        "already_member" => "You are already a member of this clinic.".into(),
        "not_found" => "This invitation does not exist (or was revoked).".into(),
        _ => e.message.clone(),
    }
}

fn status_problem(s: InvitationStatus) -> Option<&'static str> {
    match s {
        InvitationStatus::Pending => None,
        InvitationStatus::Accepted | InvitationStatus::Joined => {
            Some("This invitation was already used. Ask the owner for a new link.")
        }
        InvitationStatus::Revoked => Some("This invitation was revoked."),
        InvitationStatus::Expired => {
            Some("This invitation has expired. Ask the owner for a new link.")
        }
    }
}

#[component]
fn Accept(
    me: Arc<Unlocked>,
    clinic_id: Uuid,
    invitation_id: Uuid,
    link: Arc<InviteLink>,
) -> impl IntoView {
    let app = use_app();
    let navigate = use_navigate();
    let info = RwSignal::new(None::<InvitationInfo>);
    let error = RwSignal::new(None::<String>);
    let busy = RwSignal::new(true);
    let accepted = RwSignal::new(false);
    let safety = invitee_safety_number(&me, &link);

    {
        let navigate = navigate.clone();
        spawn_local(async move {
            match crate::api::invitation_info(clinic_id, invitation_id).await {
                Ok(i) if i.clinic_id != clinic_id || i.invitation_id != invitation_id => {
                    error.set(Some("The server answered about another invitation.".into()));
                }
                Ok(i) => {
                    error.set(status_problem(i.status).map(str::to_string));
                    info.set(Some(i));
                }
                Err(e) if e.is_unauthenticated() => report_error(app, &navigate, error, e),
                Err(e) => error.set(Some(describe(&e))),
            }
            busy.set(false);
        });
    }

    let on_accept = move |_| {
        if busy.get_untracked() || accepted.get_untracked() {
            return;
        }
        busy.set(true);
        error.set(None);
        let (me, link, navigate) = (me.clone(), link.clone(), navigate.clone());
        spawn_local(async move {
            match accept(&me, clinic_id, invitation_id, &link).await {
                Ok(_) => accepted.set(true),
                Err(e) if e.is_unauthenticated() => report_error(app, &navigate, error, e),
                Err(e) => error.set(Some(describe(&e))),
            }
            busy.set(false);
        });
    };
    let can_accept = move || {
        !accepted.get()
            && error.with(Option::is_none)
            && info.with(|i| {
                i.as_ref()
                    .is_some_and(|i| i.status == InvitationStatus::Pending)
            })
    };

    view! {
        <AppHeader />
        <main class="page narrow">
            <h1>"Invitation to a clinic"</h1>
            <div class="card">
                {move || info.get().map(|i| view! {
                    <p id="invite-role-info">
                        "Role: " <strong>{role_label(i.role)}</strong>
                        " · link valid until " {local_time(i.expires_at)}
                    </p>
                })}
                {move || error.get().map(|e| view! { <p id="invite-error" class="error" role="alert">{e}</p> })}
                <Show when=move || busy.get()>
                    <Spinner label="Working…" />
                </Show>
                <Show when=can_accept>
                    <p>"Accepting shares your username and public keys with the clinic's owner."</p>
                    <div class="actions">
                        <button id="invite-accept" type="button" class="button primary"
                            on:click=on_accept.clone() disabled=move || busy.get()>
                            "Accept the invitation"
                        </button>
                    </div>
                </Show>
                <Show when=move || accepted.get()>
                    <p>"Your safety number:"</p>
                    <p id="invite-safety-number" class="safety-number">{safety.clone()}</p>
                    <p class="notice" role="status">
                        "Compare this number with the owner; you will see the clinic once they add you."
                    </p>
                    <p><a href="/clinics" id="invite-to-clinics">"Go to your clinics"</a></p>
                </Show>
            </div>
        </main>
    }
}

//! The clinic's team: every member with role and key fingerprint, checked against the signed
//! roster. Owners also invite, check acceptances, add, change roles and remove here.

use std::sync::Arc;

use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::components::Redirect;
use leptos_router::hooks::use_navigate;
use optovault_shared::wire::{InvitationStatus, InvitationView, MemberView, Role};
use uuid::Uuid;

use crate::api::{self, ApiError};
use crate::clinic::refresh_clinic;
use crate::components::app_header::AppHeader;
use crate::components::clinic_security::ClinicSecurity;
use crate::components::invitation_row::InvitationRow;
use crate::components::invite_form::InviteForm;
use crate::components::member_row::{MemberRow, MemberRowData};
use crate::components::spinner::Spinner;
use crate::pages::not_found::NotFound;
use crate::pages::patients::clinic_id_param;
use crate::pages::report_error;
use crate::state::{use_app, AppState, Clinic, Unlocked};
use crate::team::role_code;

#[component]
pub fn MembersPage() -> impl IntoView {
    let app = use_app();
    let Some(me) = app.me() else {
        return view! { <Redirect path="/login" /> }.into_any();
    };
    let clinic_id = clinic_id_param();
    (move || match clinic_id.get() {
        Some(id) => view! { <Members me=me.clone() clinic_id=id /> }.into_any(),
        None => view! { <NotFound /> }.into_any(),
    })
    .into_any()
}

/// Everything the page shows, loaded together.
#[derive(Clone)]
struct Loaded {
    clinic: Arc<Clinic>,
    members: Vec<MemberView>,
    invitations: Vec<InvitationView>,
}

async fn load(app: AppState, me: &Unlocked, clinic_id: Uuid) -> Result<Loaded, ApiError> {
    let clinic = refresh_clinic(app, me, clinic_id).await?;
    let members = api::members(clinic_id).await?.members;
    let invitations = if clinic.is_owner(&me.account_id) {
        api::invitations(clinic_id)
            .await?
            .invitations
            .into_iter()
            .filter(|i| {
                matches!(
                    i.status,
                    InvitationStatus::Pending | InvitationStatus::Accepted
                )
            })
            .collect()
    } else {
        Vec::new()
    };
    Ok(Loaded {
        clinic,
        members,
        invitations,
    })
}

fn rows(me: &Unlocked, l: &Loaded) -> Vec<MemberRowData> {
    let owner = l.clinic.is_owner(&me.account_id) && l.clinic.trusted().is_ok();
    let owners = l
        .clinic
        .roster
        .as_ref()
        .map(|r| r.owner_count())
        .unwrap_or(0);
    let mut rows: Vec<MemberRowData> = l
        .members
        .iter()
        .map(|m| {
            let in_roster = l.clinic.roster.as_ref().is_some_and(|r| {
                r.members
                    .get(&m.account_id)
                    .is_some_and(|rm| rm.role == m.role && rm.public_keys == m.public_keys)
            });
            let last_owner_self =
                m.account_id == me.account_id && m.role == Role::Owner && owners <= 1;
            MemberRowData {
                member: m.clone(),
                in_roster,
                manageable: owner && in_roster,
                last_owner_self,
            }
        })
        .collect();
    rows.sort_by_cached_key(|r| (r.member.role != Role::Owner, r.member.username.clone()));
    rows
}

#[component]
fn Members(me: Arc<Unlocked>, clinic_id: Uuid) -> impl IntoView {
    let app = use_app();
    let navigate = use_navigate();
    let loaded = RwSignal::new(None::<Loaded>);
    let error = RwSignal::new(None::<String>);
    let loading = RwSignal::new(false);
    // Bumped after every load, so the owner's security box refreshes with the list.
    let version = RwSignal::new(0u32);

    let reload = {
        let me = me.clone();
        move || {
            let (me, navigate) = (me.clone(), navigate.clone());
            loading.set(true);
            spawn_local(async move {
                match load(app, &me, clinic_id).await {
                    Ok(l) => {
                        error.set(l.clinic.trusted().err());
                        loaded.set(Some(l));
                        version.update(|v| *v += 1);
                    }
                    Err(e) if e.status == 404 => error.set(Some("Clinic not found.".into())),
                    Err(e) => report_error(app, &navigate, error, e),
                }
                loading.set(false);
            });
        }
    };
    reload();
    let on_changed = Callback::new(move |()| reload());

    let is_owner = {
        let me = me.clone();
        move || {
            loaded.with(|l| {
                l.as_ref()
                    .is_some_and(|l| l.clinic.is_owner(&me.account_id))
            })
        }
    };
    let title = move || {
        loaded.with(|l| match l.as_ref().map(|l| &l.clinic.name) {
            Some(Ok(n)) => n.clone(),
            Some(Err(_)) => "Unverified clinic".into(),
            None => "Clinic".into(),
        })
    };
    let member_rows = {
        let me = me.clone();
        move || loaded.with(|l| l.as_ref().map(|l| rows(&me, l)).unwrap_or_default())
    };
    let invitations = move || {
        loaded.with(|l| {
            l.as_ref()
                .map(|l| l.invitations.clone())
                .unwrap_or_default()
        })
    };
    let patients_href = format!("/clinics/{clinic_id}/patients");
    // Copy handles, for the views below that are rebuilt.
    let me_sv = StoredValue::new(me.clone());

    view! {
        <AppHeader />
        <main class="page members-page">
            <nav class="crumbs" aria-label="Breadcrumb">
                <a href="/clinics">"Clinics"</a>
                " / "
                <a href=patients_href id="back-to-patients">"Patients"</a>
            </nav>
            <div class="page-title">
                <h1>{title} " — team"</h1>
                <div class="toolbar">
                    <Show when=move || loading.get()>
                        <Spinner label="Checking the member list…" />
                    </Show>
                    <button id="members-refresh" type="button" class="button secondary"
                        on:click=move |_| on_changed.run(()) disabled=move || loading.get()>
                        "Refresh"
                    </button>
                </div>
            </div>
            {move || error.get().map(|e| view! { <p id="members-error" class="error" role="alert">{e}</p> })}
            <table class="members">
                <thead>
                    <tr>
                        <th scope="col">"Member"</th>
                        <th scope="col">"Role"</th>
                        <th scope="col">"Key fingerprint"</th>
                        <th scope="col">"Last login"</th>
                        <th scope="col"><span class="visually-hidden">"Actions"</span></th>
                    </tr>
                </thead>
                <tbody>
                    <For
                        each=member_rows
                        key=|r| (r.member.account_id, role_code(r.member.role), r.manageable, r.last_owner_self, r.in_roster)
                        let:data
                    >
                        <MemberRow me=me_sv.get_value() clinic_id=clinic_id data=data on_changed=on_changed />
                    </For>
                </tbody>
            </table>
            <Show when=is_owner.clone()>
                <ClinicSecurity clinic_id=clinic_id version=version />
            </Show>
            <Show when=is_owner.clone()>
                <InviteForm me=me_sv.get_value() clinic_id=clinic_id on_created=on_changed />
                <section class="invitations-box" aria-labelledby="invitations-title">
                    <h2 id="invitations-title">"Open invitations"</h2>
                    <Show when=move || invitations().is_empty()>
                        <p class="empty">"No open invitations."</p>
                    </Show>
                    <table class="invitations">
                        <thead>
                            <tr>
                                <th scope="col">"Role"</th>
                                <th scope="col">"Status"</th>
                                <th scope="col">"Expires"</th>
                                <th scope="col">"Invitee"</th>
                                <th scope="col"><span class="visually-hidden">"Actions"</span></th>
                            </tr>
                        </thead>
                        <tbody>
                            <For
                                each=invitations
                                key=|i| (i.invitation_id, format!("{:?}", i.status), i.acceptance.as_ref().map(|a| (a.account_id, a.accepted_at)))
                                let:inv
                            >
                                <InvitationRow me=me_sv.get_value() clinic_id=clinic_id inv=inv on_changed=on_changed />
                            </For>
                        </tbody>
                    </table>
                </section>
            </Show>
        </main>
    }
}

//! A patient's appointments (demographics compartment, so the front desk books them): upcoming
//! and past, a booking form, and the day's status steps (arrived, in exam, completed, no-show,
//! cancelled). Closed appointments are kept; a missed one is re-booked as a new appointment.

use std::sync::Arc;

use leptos::ev::SubmitEvent;
use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::hooks::use_navigate;
use optovault_shared::chart::schedule::{
    check_appointment_edit, Appointment, AppointmentStatus, AppointmentType,
};
use optovault_shared::chart::StaffRef;
use optovault_shared::domain::RecordBody;
use optovault_shared::wire::Role;
use optovault_shared::Compartment;
use uuid::Uuid;

use crate::components::delete_button::DeleteButton;
use crate::pages::report_error;
use crate::records::save_item;
use crate::state::{use_app, AppState, Clinic, Unlocked};
use crate::store::RecordStore;
use crate::util::today;

pub const TYPES: [(AppointmentType, &str, &str); 6] = [
    (
        AppointmentType::Comprehensive,
        "comprehensive",
        "Comprehensive exam",
    ),
    (AppointmentType::ContactLens, "contact_lens", "Contact lens"),
    (AppointmentType::FollowUp, "follow_up", "Follow-up"),
    (AppointmentType::Medical, "medical", "Medical"),
    (AppointmentType::Dispensing, "dispensing", "Dispensing"),
    (AppointmentType::Other, "other", "Other"),
];

pub fn type_label(t: AppointmentType) -> &'static str {
    TYPES
        .iter()
        .find(|(x, _, _)| *x == t)
        .map(|(_, _, l)| *l)
        .unwrap_or("Other")
}

pub fn status_label(s: AppointmentStatus) -> &'static str {
    match s {
        AppointmentStatus::Booked => "Booked",
        AppointmentStatus::Arrived => "Arrived",
        AppointmentStatus::InExam => "In exam",
        AppointmentStatus::Completed => "Completed",
        AppointmentStatus::NoShow => "No-show",
        AppointmentStatus::Cancelled => "Cancelled",
    }
}

pub fn status_class(s: AppointmentStatus) -> &'static str {
    match s {
        AppointmentStatus::Booked => "status-booked",
        AppointmentStatus::Arrived => "status-arrived",
        AppointmentStatus::InExam => "status-in-exam",
        AppointmentStatus::Completed => "status-completed",
        AppointmentStatus::NoShow => "status-no-show",
        AppointmentStatus::Cancelled => "status-cancelled",
    }
}

/// The steps offered from a status: forward moves only (the model also allows stepping back one
/// step, which the desk does not need a button for).
pub fn next_steps(s: AppointmentStatus) -> Vec<(AppointmentStatus, &'static str)> {
    use AppointmentStatus::*;
    [
        (Arrived, "Check in"),
        (InExam, "In exam"),
        (Completed, "Complete"),
        (NoShow, "No-show"),
        (Cancelled, "Cancel"),
    ]
    .into_iter()
    .filter(|(next, _)| *next != s && s.can_become(*next))
    .filter(|(next, _)| !(s == InExam && *next == Arrived))
    .collect()
}

/// Members who see patients: owners, optometrists and opticians (dispensing), by name.
pub fn providers(clinic: &Clinic) -> Vec<StaffRef> {
    let Some(roster) = clinic.roster.as_ref() else {
        return vec![];
    };
    let mut v: Vec<StaffRef> = roster
        .members
        .iter()
        .filter(|(_, m)| matches!(m.role, Role::Owner | Role::Optometrist | Role::Optician))
        .map(|(id, m)| StaffRef {
            account_id: *id,
            name: m.username.clone(),
        })
        .collect();
    v.sort_by(|a, b| a.name.cmp(&b.name));
    v
}

/// "2026-11-27T09:30" as "2026-11-27 09:30".
pub fn when(start: &str) -> String {
    start.replacen('T', " ", 1)
}

/// Saves a new status for an appointment, checked against the model's transitions.
pub async fn set_status(
    app: AppState,
    me: Arc<Unlocked>,
    clinic_id: Uuid,
    chart_id: Uuid,
    record_id: Uuid,
    version: u64,
    old: &Appointment,
    next: AppointmentStatus,
) -> Result<(), String> {
    let new = Appointment {
        status: next,
        ..old.clone()
    };
    check_appointment_edit(old, &new).map_err(|e| e.message)?;
    save_item(
        app,
        me,
        clinic_id,
        chart_id,
        record_id,
        version,
        RecordBody::Appointment(new),
    )
    .await
    .map(|_| ())
    .map_err(|e| e.message)
}

#[component]
pub fn Appointments(
    me: Arc<Unlocked>,
    clinic_id: Uuid,
    /// The patient's record id.
    chart_id: Uuid,
    /// The patient is loaded and found.
    #[prop(into)]
    ready: Signal<bool>,
) -> impl IntoView {
    let app = use_app();
    let navigate = use_navigate();
    let store: RwSignal<RecordStore> = app.store(clinic_id).into();
    let error = RwSignal::new(None::<String>);
    let busy = RwSignal::new(false);
    let date = RwSignal::new(today());
    let time = RwSignal::new("09:00".to_string());
    let duration = RwSignal::new("30".to_string());
    let kind = RwSignal::new(AppointmentType::Comprehensive);
    let provider = RwSignal::new(None::<Uuid>);
    let reason = RwSignal::new(String::new());
    // Chosen once per booking, so a retried save writes the same record.
    let draft_id = RwSignal::new(Uuid::new_v4());

    let allowed = move || {
        app.clinic_tracked(&clinic_id)
            .is_some_and(|c| c.holds(Compartment::Demographics))
    };
    let staff = Memo::new(move |_| {
        app.clinic_tracked(&clinic_id)
            .map(|c| providers(&c))
            .unwrap_or_default()
    });
    let appointments = Memo::new(move |_| {
        store.with(|s| {
            let mut v: Vec<(Uuid, u64, Appointment)> = s
                .items_of(&chart_id)
                .into_iter()
                .filter_map(|i| match i.body {
                    RecordBody::Appointment(a) => Some((i.id, i.version, a)),
                    _ => None,
                })
                .collect();
            v.sort_by(|a, b| b.2.start.cmp(&a.2.start));
            v
        })
    });

    let book = {
        let (me, navigate) = (me.clone(), navigate.clone());
        move |ev: SubmitEvent| {
            ev.prevent_default();
            if busy.get_untracked() {
                return;
            }
            let staff_list = staff.get_untracked();
            let chosen = provider
                .get_untracked()
                .or_else(|| staff_list.first().map(|s| s.account_id));
            let Some(who) = staff_list
                .into_iter()
                .find(|s| Some(s.account_id) == chosen)
            else {
                error.set(Some("Choose the provider.".into()));
                return;
            };
            let appt = Appointment {
                provider: who,
                start: format!("{}T{}", date.get_untracked(), time.get_untracked()),
                duration_minutes: duration.get_untracked().trim().parse().unwrap_or(0),
                appointment_type: kind.get_untracked(),
                status: AppointmentStatus::Booked,
                reason: reason.get_untracked().trim().to_string(),
                notes: String::new(),
            };
            if let Err(errs) = appt.validate() {
                let msg: Vec<String> = errs.into_iter().map(|e| e.message).collect();
                error.set(Some(msg.join(" ")));
                return;
            }
            busy.set(true);
            error.set(None);
            let (me, navigate) = (me.clone(), navigate.clone());
            spawn_local(async move {
                let id = draft_id.get_untracked();
                match save_item(
                    app,
                    me,
                    clinic_id,
                    chart_id,
                    id,
                    0,
                    RecordBody::Appointment(appt),
                )
                .await
                {
                    Ok(_) => {
                        draft_id.set(Uuid::new_v4());
                        reason.set(String::new());
                    }
                    Err(e) => report_error(app, &navigate, error, e),
                }
                busy.set(false);
            });
        }
    };

    let step = {
        let me = me.clone();
        move |id: Uuid, version: u64, old: Appointment, next: AppointmentStatus| {
            if busy.get_untracked() {
                return;
            }
            busy.set(true);
            error.set(None);
            let me = me.clone();
            spawn_local(async move {
                if let Err(m) =
                    set_status(app, me, clinic_id, chart_id, id, version, &old, next).await
                {
                    error.set(Some(m));
                }
                busy.set(false);
            });
        }
    };

    let row_me = StoredValue::new(me.clone());
    let row = move |(id, version, a): (Uuid, u64, Appointment)| {
        let steps = next_steps(a.status);
        let step = step.clone();
        view! {
            <li class="appointment" data-id=id.to_string() data-status=status_label(a.status)>
                <span class="appt-when">{when(&a.start)}</span>
                <span class="appt-what">{format!(" · {} · {} min · {}", type_label(a.appointment_type), a.duration_minutes, a.provider.name)}</span>
                <span class=format!("badge {}", status_class(a.status))>{status_label(a.status)}</span>
                {(!a.reason.is_empty()).then(|| view! { <span class="help">{format!(" · {}", a.reason)}</span> })}
                <span class="appt-actions">
                    {steps.into_iter().map(|(next, label)| {
                        let (step, a) = (step.clone(), a.clone());
                        let class = format!("button small secondary appt-step appt-{}", status_class(next));
                        view! {
                            <button type="button" class=class disabled=move || busy.get()
                                on:click=move |_| step(id, version, a.clone(), next)>{label}</button>
                        }
                    }).collect_view()}
                    // A booking made by mistake goes to the chart's trash (restorable there).
                    <DeleteButton me=row_me.get_value() clinic_id=clinic_id chart_id=chart_id
                        record_id=id class="appt-delete" />
                </span>
            </li>
        }
    };

    view! {
        <Show when=move || ready.get() && allowed()>
            <section id="appointments" class="card appointments" aria-labelledby="appointments-title">
                <h2 id="appointments-title">"Appointments"</h2>
                <ul class="appointment-list">
                    {
                        let row = row.clone();
                        move || appointments.get().into_iter().map(row.clone()).collect_view()
                    }
                </ul>
                <Show when=move || appointments.with(|a| a.is_empty())>
                    <p class="empty">"No appointments yet."</p>
                </Show>
                <form id="appt-form" class="inline-form appt-form" on:submit=book.clone() novalidate>
                    <div class="field">
                        <label for="appt-date">"Date"</label>
                        <input id="appt-date" type="date" bind:value=date />
                    </div>
                    <div class="field">
                        <label for="appt-time">"Time"</label>
                        <input id="appt-time" type="time" step="300" bind:value=time />
                    </div>
                    <div class="field">
                        <label for="appt-duration">"Minutes"</label>
                        <input id="appt-duration" type="number" min="5" max="480" step="5" bind:value=duration />
                    </div>
                    <div class="field">
                        <label for="appt-type">"Type"</label>
                        <select id="appt-type" on:change=move |ev| {
                            let v = event_target_value(&ev);
                            if let Some((t, _, _)) = TYPES.iter().find(|(_, k, _)| *k == v) {
                                kind.set(*t);
                            }
                        }>
                            {TYPES.iter().map(|(t, k, l)| {
                                let t = *t;
                                view! { <option value=*k prop:selected=move || kind.get() == t>{*l}</option> }
                            }).collect_view()}
                        </select>
                    </div>
                    <div class="field">
                        <label for="appt-provider">"Provider"</label>
                        <select id="appt-provider" on:change=move |ev| provider.set(Uuid::parse_str(&event_target_value(&ev)).ok())>
                            {move || staff.get().into_iter().map(|s| {
                                let id = s.account_id;
                                view! { <option value=id.to_string() prop:selected=move || provider.get() == Some(id)>{s.name}</option> }
                            }).collect_view()}
                        </select>
                    </div>
                    <div class="field wide">
                        <label for="appt-reason">"Reason"</label>
                        <input id="appt-reason" type="text" maxlength="200" bind:value=reason />
                    </div>
                    <button id="appt-book" type="submit" class="button primary" disabled=move || busy.get()>"Book"</button>
                </form>
                {move || error.get().map(|e| view! { <p id="appt-error" class="error" role="alert">{e}</p> })}
            </section>
        </Show>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_desk_is_offered_forward_steps_only() {
        use AppointmentStatus::*;
        let labels = |s| {
            next_steps(s)
                .into_iter()
                .map(|(_, l)| l)
                .collect::<Vec<_>>()
        };
        assert_eq!(labels(Booked), ["Check in", "No-show", "Cancel"]);
        assert_eq!(labels(Arrived), ["In exam", "Complete", "Cancel"]);
        assert_eq!(labels(InExam), ["Complete"]);
        assert!(labels(Completed).is_empty());
        assert!(labels(Cancelled).is_empty());
        assert_eq!(when("2026-11-27T09:30"), "2026-11-27 09:30");
    }
}

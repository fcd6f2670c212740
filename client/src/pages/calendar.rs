//! The clinic's calendar: one day (a column per provider) or one week (a column per day), with
//! a provider filter. Built from the decrypted appointments in this browser: the server never
//! learns who comes when.

use std::collections::BTreeMap;
use std::sync::Arc;

use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::components::Redirect;
use leptos_router::hooks::use_navigate;
use optovault_shared::chart::schedule::{Appointment, AppointmentStatus};
use optovault_shared::chart::{add_days, week_start, weekday_name};
use optovault_shared::domain::RecordBody;
use uuid::Uuid;

use crate::components::app_header::AppHeader;
use crate::components::appointments::{
    next_steps, providers, set_status, status_class, status_label, type_label,
};
use crate::pages::not_found::NotFound;
use crate::pages::open_clinic_and_sync;
use crate::pages::patients::clinic_id_param;
use crate::state::{use_app, Clinic, Unlocked};
use crate::store::RecordStore;
use crate::util::today;

/// One appointment on the calendar, with its patient's name.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub id: Uuid,
    pub version: u64,
    pub chart_id: Uuid,
    pub patient: String,
    pub appointment: Appointment,
}

/// The appointments whose start falls on `first ..= last` (dates), earliest first; cancelled ones
/// only if asked for; one provider's only when `provider` is set.
pub fn entries(
    s: &RecordStore,
    first: &str,
    last: &str,
    provider: Option<Uuid>,
    with_cancelled: bool,
) -> Vec<Entry> {
    let mut v: Vec<Entry> = s
        .all_items()
        .filter_map(|(chart_id, i)| match &i.body {
            RecordBody::Appointment(a) => Some((chart_id, i, a)),
            _ => None,
        })
        .filter(|(_, _, a)| {
            let day = a.start.get(..10).unwrap_or("");
            day >= first && day <= last
        })
        .filter(|(_, _, a)| provider.is_none_or(|p| a.provider.account_id == p))
        .filter(|(_, _, a)| with_cancelled || a.status != AppointmentStatus::Cancelled)
        .map(|(chart_id, i, a)| Entry {
            id: i.id,
            version: i.version,
            chart_id,
            patient: s
                .patients
                .get(&chart_id)
                .map(|(_, p)| p.display_name())
                .unwrap_or_else(|| "(restricted chart)".into()),
            appointment: a.clone(),
        })
        .collect();
    v.sort_by(|a, b| {
        (a.appointment.start.as_str(), a.patient.as_str())
            .cmp(&(b.appointment.start.as_str(), b.patient.as_str()))
    });
    v
}

#[component]
pub fn CalendarPage() -> impl IntoView {
    let app = use_app();
    let Some(me) = app.me() else {
        return view! { <Redirect path="/login" /> }.into_any();
    };
    let clinic_id = clinic_id_param();
    (move || match clinic_id.get() {
        Some(id) => view! { <Calendar me=me.clone() clinic_id=id /> }.into_any(),
        None => view! { <NotFound /> }.into_any(),
    })
    .into_any()
}

#[component]
fn Calendar(me: Arc<Unlocked>, clinic_id: Uuid) -> impl IntoView {
    let app = use_app();
    let navigate = use_navigate();
    let store: RwSignal<RecordStore> = app.store(clinic_id).into();
    let clinic = RwSignal::new(None::<Arc<Clinic>>);
    let error = RwSignal::new(None::<String>);
    let week = RwSignal::new(false);
    let day = RwSignal::new(today());
    let provider = RwSignal::new(None::<Uuid>);
    let show_cancelled = RwSignal::new(false);
    let busy = RwSignal::new(false);
    open_clinic_and_sync(app, me.clone(), clinic_id, clinic, error, navigate);

    let staff = Memo::new(move |_| clinic.get().map(|c| providers(&c)).unwrap_or_default());
    // The dates shown: the day, or Monday to Sunday of its week.
    let days = Memo::new(move |_| {
        let d = day.get();
        if week.get() {
            let monday = week_start(&d).unwrap_or(d);
            (0..7)
                .filter_map(|i| add_days(&monday, i))
                .collect::<Vec<_>>()
        } else {
            vec![d]
        }
    });
    let shown = Memo::new(move |_| {
        let ds = days.get();
        let (first, last) = (
            ds.first().cloned().unwrap_or_default(),
            ds.last().cloned().unwrap_or_default(),
        );
        store.with(|s| entries(s, &first, &last, provider.get(), show_cancelled.get()))
    });
    let move_by = move |n: i64| {
        let step = if week.get_untracked() { 7 * n } else { n };
        if let Some(d) = add_days(&day.get_untracked(), step) {
            day.set(d);
        }
    };
    let step = {
        let me = me.clone();
        move |e: Entry, next: AppointmentStatus| {
            if busy.get_untracked() {
                return;
            }
            busy.set(true);
            let me = me.clone();
            spawn_local(async move {
                if let Err(m) = set_status(
                    app,
                    me,
                    clinic_id,
                    e.chart_id,
                    e.id,
                    e.version,
                    &e.appointment,
                    next,
                )
                .await
                {
                    error.set(Some(m));
                }
                busy.set(false);
            });
        }
    };

    // A column: a provider on the day view, a date on the week view.
    let columns = Memo::new(move |_| {
        let entries = shown.get();
        let mut cols: BTreeMap<(u8, String), (String, Vec<Entry>)> = BTreeMap::new();
        if week.get() {
            for (i, d) in days.get().into_iter().enumerate() {
                let title = format!("{} {}", weekday_name(&d).unwrap_or(""), d);
                let list = entries
                    .iter()
                    .filter(|e| e.appointment.start.starts_with(&d))
                    .cloned()
                    .collect();
                cols.insert((i as u8, d.clone()), (title, list));
            }
        } else {
            for s in staff
                .get()
                .into_iter()
                .filter(|s| provider.get().is_none_or(|p| p == s.account_id))
            {
                let list = entries
                    .iter()
                    .filter(|e| e.appointment.provider.account_id == s.account_id)
                    .cloned()
                    .collect();
                cols.insert((0, s.name.clone()), (s.name.clone(), list));
            }
        }
        cols.into_values().collect::<Vec<_>>()
    });

    let card = move |e: Entry| {
        let href = format!("/clinics/{clinic_id}/patients/{}", e.chart_id);
        let a = e.appointment.clone();
        let time = a.start.get(11..16).unwrap_or("").to_string();
        let step = step.clone();
        view! {
            <li class=format!("cal-appt {}", status_class(a.status)) data-id=e.id.to_string()
                data-status=status_label(a.status)>
                <span class="cal-time">{time}</span>
                " "
                <a class="cal-patient" href=href>{e.patient.clone()}</a>
                <span class="help">{format!(" · {} · {} min · {}", type_label(a.appointment_type), a.duration_minutes, a.provider.name)}</span>
                <span class=format!("badge {}", status_class(a.status))>{status_label(a.status)}</span>
                <span class="appt-actions">
                    {next_steps(a.status).into_iter().map(|(next, label)| {
                        let (step, e) = (step.clone(), e.clone());
                        view! {
                            <button type="button" class=format!("button small secondary appt-step appt-{}", status_class(next))
                                disabled=move || busy.get() on:click=move |_| step(e.clone(), next)>{label}</button>
                        }
                    }).collect_view()}
                </span>
            </li>
        }
    };

    let back = format!("/clinics/{clinic_id}/patients");
    view! {
        <AppHeader />
        <main class="page wide-page">
            <nav class="crumbs" aria-label="Breadcrumb">
                <a href=back>"← Patients"</a>
            </nav>
            <div class="page-title">
                <h1>"Calendar"</h1>
                <div class="toolbar">
                    <button id="cal-prev" type="button" class="button secondary" on:click=move |_| move_by(-1)>"‹ Previous"</button>
                    <button id="cal-today" type="button" class="button secondary" on:click=move |_| day.set(today())>"Today"</button>
                    <button id="cal-next" type="button" class="button secondary" on:click=move |_| move_by(1)>"Next ›"</button>
                    <input id="cal-date" type="date" aria-label="Go to date" bind:value=day />
                    <button id="cal-day" type="button" class="button" class:primary=move || !week.get()
                        on:click=move |_| week.set(false)>"Day"</button>
                    <button id="cal-week" type="button" class="button" class:primary=move || week.get()
                        on:click=move |_| week.set(true)>"Week"</button>
                    <select id="cal-provider" aria-label="Provider"
                        on:change=move |ev| provider.set(Uuid::parse_str(&event_target_value(&ev)).ok())>
                        <option value="">"All providers"</option>
                        {move || staff.get().into_iter().map(|s| view! { <option value=s.account_id.to_string()>{s.name}</option> }).collect_view()}
                    </select>
                    <label class="check">
                        <input id="cal-cancelled" type="checkbox" bind:checked=show_cancelled />
                        " Show cancelled"
                    </label>
                </div>
            </div>
            {move || error.get().map(|e| view! { <p id="cal-error" class="error" role="alert">{e}</p> })}
            <p id="cal-count" class="count">{move || {
                let n = shown.with(|s| s.len());
                format!("{n} appointment{}", if n == 1 { "" } else { "s" })
            }}</p>
            <div class="calendar" class:week=move || week.get()>
                {
                    let card = card.clone();
                    move || columns.get().into_iter().map(|(title, list)| {
                        let card = card.clone();
                        view! {
                            <section class="cal-column">
                                <h2 class="cal-column-title">{title}</h2>
                                <ul class="cal-list">
                                    {list.into_iter().map(card).collect_view()}
                                </ul>
                            </section>
                        }
                    }).collect_view()
                }
            </div>
        </main>
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Change, Opened};
    use optovault_shared::chart::StaffRef;
    use optovault_shared::domain::Patient;

    fn appt(start: &str, provider: Uuid, status: AppointmentStatus) -> RecordBody {
        RecordBody::Appointment(Appointment {
            provider: StaffRef {
                account_id: provider,
                name: "dr".into(),
            },
            start: start.into(),
            duration_minutes: 30,
            status,
            ..Default::default()
        })
    }

    #[test]
    fn entries_are_the_days_appointments_in_time_order() {
        let mut s = RecordStore::default();
        let (chart, dr, other) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        s.apply(Change {
            record_id: chart,
            version: 1,
            seq: 1,
            author: None,
            opened: Opened::Patient(Patient {
                given_name: "Ann".into(),
                family_name: "Lee".into(),
                ..Default::default()
            }),
        });
        for (seq, body) in [
            appt("2026-11-27T10:00", dr, AppointmentStatus::Booked),
            appt("2026-11-27T09:00", other, AppointmentStatus::Booked),
            appt("2026-11-27T11:00", dr, AppointmentStatus::Cancelled),
            appt("2026-11-28T09:00", dr, AppointmentStatus::Booked),
        ]
        .into_iter()
        .enumerate()
        {
            s.apply(Change {
                record_id: Uuid::new_v4(),
                version: 1,
                seq: seq as u64 + 2,
                author: None,
                opened: Opened::Item {
                    chart_id: chart,
                    body,
                },
            });
        }
        let day = entries(&s, "2026-11-27", "2026-11-27", None, false);
        let times: Vec<&str> = day.iter().map(|e| e.appointment.start.as_str()).collect();
        assert_eq!(times, ["2026-11-27T09:00", "2026-11-27T10:00"]);
        assert_eq!(day[0].patient, "Lee, Ann");
        assert_eq!(
            entries(&s, "2026-11-27", "2026-11-27", Some(dr), true).len(),
            2
        );
        assert_eq!(
            entries(&s, "2026-11-23", "2026-11-29", None, false).len(),
            3
        );
    }
}

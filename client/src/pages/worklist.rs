//! The front desk's reminder work list for a day (tomorrow by default): that day's appointments
//! and the recalls falling due, each with its contact log and a form to log a call, message or
//! letter. A print view and a CSV for a mail merge are made here in the browser: patients'
//! contact details and appointment times never reach the server in the clear, so the server
//! sends no reminders itself (docs/SECURITY.md says what an automatic sender would have to learn).

use std::sync::Arc;

use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::components::Redirect;
use leptos_router::hooks::use_navigate;
use optovault_shared::chart::schedule::{
    ContactChannel, ContactOutcome, ReminderAbout, ReminderContact,
};
use optovault_shared::chart::{add_days, StaffRef};
use optovault_shared::domain::{Patient, PatientStatus, RecordBody};
use optovault_shared::wire::DocumentKind;
use uuid::Uuid;

use crate::components::app_header::AppHeader;
use crate::components::appointments::{type_label, when};
use crate::pages::calendar::entries;
use crate::pages::not_found::NotFound;
use crate::pages::patients::clinic_id_param;
use crate::pages::{open_clinic_and_sync, report_error};
use crate::records::save_item;
use crate::state::{use_app, Clinic, Unlocked};
use crate::store::RecordStore;
use crate::util::today;

const CHANNELS: [(ContactChannel, &str, &str); 4] = [
    (ContactChannel::Phone, "phone", "Phone"),
    (ContactChannel::Sms, "sms", "Text message"),
    (ContactChannel::Email, "email", "E-mail"),
    (ContactChannel::Letter, "letter", "Letter"),
];

const OUTCOMES: [(ContactOutcome, &str, &str); 9] = [
    (ContactOutcome::Reached, "reached", "Reached"),
    (
        ContactOutcome::LeftMessage,
        "left_message",
        "Left a message",
    ),
    (ContactOutcome::NoAnswer, "no_answer", "No answer"),
    (ContactOutcome::WrongNumber, "wrong_number", "Wrong number"),
    (ContactOutcome::Sent, "sent", "Sent"),
    (ContactOutcome::Bounced, "bounced", "Came back undelivered"),
    (ContactOutcome::Booked, "booked", "Booked"),
    (ContactOutcome::Declined, "declined", "Declined"),
    (ContactOutcome::Other, "other", "Other"),
];

fn outcome_label(o: ContactOutcome) -> &'static str {
    OUTCOMES
        .iter()
        .find(|(x, _, _)| *x == o)
        .map(|(_, _, l)| *l)
        .unwrap_or("Other")
}

fn channel_label(c: ContactChannel) -> &'static str {
    CHANNELS
        .iter()
        .find(|(x, _, _)| *x == c)
        .map(|(_, _, l)| *l)
        .unwrap_or("Phone")
}

/// One thing to remind a patient of.
#[derive(Clone, Debug, PartialEq)]
pub struct Task {
    pub chart_id: Uuid,
    pub patient: Patient,
    pub about: ReminderAbout,
    /// For people: "Appointment 2026-11-27 09:30, Comprehensive exam with dr" / "Recall due …".
    pub what: String,
    pub provider: String,
    /// Contacts logged about this, oldest first: (channel, outcome, at, by).
    pub contacts: Vec<ReminderContact>,
}

/// The day's appointments (not cancelled) and the active patients whose recall is due by
/// `recall_until`, each with the contacts already logged about it.
pub fn tasks(s: &RecordStore, day: &str, recall_until: &str) -> Vec<Task> {
    let logged = |chart: &Uuid, about: &ReminderAbout| -> Vec<ReminderContact> {
        let mut v: Vec<ReminderContact> = s
            .items_of(chart)
            .into_iter()
            .filter_map(|i| match i.body {
                RecordBody::ReminderContact(c) if &c.about == about => Some(c),
                _ => None,
            })
            .collect();
        v.sort_by(|a, b| a.at.cmp(&b.at));
        v
    };
    let mut out = Vec::new();
    for e in entries(s, day, day, None, false) {
        let Some((_, patient)) = s.patients.get(&e.chart_id) else {
            continue;
        };
        let about = ReminderAbout::Appointment {
            appointment_id: e.id,
        };
        let a = &e.appointment;
        out.push(Task {
            chart_id: e.chart_id,
            patient: patient.clone(),
            contacts: logged(&e.chart_id, &about),
            about,
            what: format!(
                "Appointment {}, {}",
                when(&a.start),
                type_label(a.appointment_type)
            ),
            provider: a.provider.name.clone(),
        });
    }
    let mut recalls: Vec<(&Uuid, &Patient, &String)> = s
        .patients
        .iter()
        .filter(|(_, (_, p))| p.status == PatientStatus::Active)
        .filter_map(|(id, (_, p))| p.recall_due.as_ref().map(|d| (id, p, d)))
        .filter(|(_, _, due)| due.as_str() <= recall_until)
        .collect();
    recalls.sort_by(|a, b| (a.2, a.1.display_name()).cmp(&(b.2, b.1.display_name())));
    for (id, p, due) in recalls {
        let about = ReminderAbout::Recall { due: due.clone() };
        out.push(Task {
            chart_id: *id,
            patient: p.clone(),
            contacts: logged(id, &about),
            about,
            what: format!("Recall due {due}"),
            provider: String::new(),
        });
    }
    out
}

/// A CSV cell: quoted, quotes doubled, and a leading `= + - @` (or tab/CR) defused with an
/// apostrophe so a spreadsheet never runs a patient-supplied value as a formula.
pub fn csv_cell(v: &str) -> String {
    let risky = v.starts_with(['=', '+', '-', '@', '\t', '\r']);
    let v = if risky {
        format!("'{v}")
    } else {
        v.to_string()
    };
    format!("\"{}\"", v.replace('"', "\"\""))
}

/// The work list as CSV for a mail merge (one row per task, UTF-8, CRLF line ends).
pub fn to_csv(tasks: &[Task]) -> String {
    let header = [
        "kind",
        "family_name",
        "given_name",
        "phone",
        "email",
        "address_line1",
        "address_line2",
        "city",
        "region",
        "postal_code",
        "country",
        "what",
        "provider",
    ];
    let mut out = header.map(csv_cell).join(",");
    out.push_str("\r\n");
    for t in tasks {
        let p = &t.patient;
        let kind = match t.about {
            ReminderAbout::Appointment { .. } => "appointment",
            ReminderAbout::Recall { .. } => "recall",
        };
        let row = [
            kind,
            &p.family_name,
            &p.given_name,
            &p.phone,
            &p.email,
            &p.address.line1,
            &p.address.line2,
            &p.address.city,
            &p.address.region,
            &p.address.postal_code,
            &p.address.country,
            &t.what,
            &t.provider,
        ];
        out.push_str(&row.map(csv_cell).join(","));
        out.push_str("\r\n");
    }
    out
}

#[component]
pub fn WorklistPage() -> impl IntoView {
    let app = use_app();
    let Some(me) = app.me() else {
        return view! { <Redirect path="/login" /> }.into_any();
    };
    let clinic_id = clinic_id_param();
    (move || match clinic_id.get() {
        Some(id) => view! { <Worklist me=me.clone() clinic_id=id /> }.into_any(),
        None => view! { <NotFound /> }.into_any(),
    })
    .into_any()
}

#[component]
fn Worklist(me: Arc<Unlocked>, clinic_id: Uuid) -> impl IntoView {
    let app = use_app();
    let navigate = use_navigate();
    let store: RwSignal<RecordStore> = app.store(clinic_id).into();
    let clinic = RwSignal::new(None::<Arc<Clinic>>);
    let error = RwSignal::new(None::<String>);
    let day = RwSignal::new(add_days(&today(), 1).unwrap_or_else(today));
    let recall_days = RwSignal::new(30i64);
    let busy = RwSignal::new(false);
    open_clinic_and_sync(app, me.clone(), clinic_id, clinic, error, navigate.clone());

    let list = Memo::new(move |_| {
        let d = day.get();
        let until = add_days(&d, recall_days.get()).unwrap_or_else(|| d.clone());
        store.with(|s| tasks(s, &d, &until))
    });

    // The CSV and the printout hold patients' contact details: each is an access event first.
    let me_for_log = StoredValue::new(me.clone());
    let logged_then = move |document: DocumentKind, then: Box<dyn FnOnce()>| {
        let me = me_for_log.get_value();
        let summary = format!(
            "Reminder list {} for {} ({} tasks)",
            if document == DocumentKind::RemindersCsv {
                "downloaded as CSV"
            } else {
                "printed"
            },
            day.get_untracked(),
            list.with_untracked(|l| l.len())
        );
        spawn_local(async move {
            match crate::audit::log_document(app, &me, clinic_id, document, None, summary).await {
                Ok(()) => then(),
                Err(e) => error.set(Some(e.message)),
            }
        });
    };
    let save_csv = move || {
        let csv = to_csv(&list.get_untracked());
        let name = format!("reminders-{}.csv", day.get_untracked());
        let saved = crate::files::save_text(&csv, "text/csv;charset=utf-8", &name);
        if let Err(e) = saved {
            error.set(Some(e.message));
        }
    };
    let download_csv = move |_| {
        logged_then(DocumentKind::RemindersCsv, Box::new(save_csv));
    };
    let print = move |_| {
        logged_then(
            DocumentKind::RemindersPrint,
            Box::new(|| {
                if let Some(w) = web_sys::window() {
                    let _ = w.print();
                }
            }),
        );
    };

    let log = {
        let (me, navigate) = (me.clone(), navigate.clone());
        move |t: Task, idx: usize| {
            if busy.get_untracked() {
                return;
            }
            let read = |id: String| {
                web_sys::window()
                    .and_then(|w| w.document())
                    .and_then(|d| d.get_element_by_id(&id))
                    .map(|e| {
                        use wasm_bindgen::JsCast;
                        e.dyn_ref::<web_sys::HtmlSelectElement>()
                            .map(|s| s.value())
                            .or_else(|| e.dyn_ref::<web_sys::HtmlInputElement>().map(|i| i.value()))
                            .unwrap_or_default()
                    })
                    .unwrap_or_default()
            };
            let channel = read(format!("contact-channel-{idx}"));
            let outcome = read(format!("contact-outcome-{idx}"));
            let notes = read(format!("contact-notes-{idx}"));
            let contact = ReminderContact {
                about: t.about.clone(),
                channel: CHANNELS
                    .iter()
                    .find(|(_, k, _)| *k == channel)
                    .map(|c| c.0)
                    .unwrap_or_default(),
                outcome: OUTCOMES
                    .iter()
                    .find(|(_, k, _)| *k == outcome)
                    .map(|c| c.0)
                    .unwrap_or_default(),
                notes: notes.trim().to_string(),
                at: now_local(),
                by: StaffRef {
                    account_id: me.account_id,
                    name: me.username.clone(),
                },
            };
            if let Err(errs) = contact.validate() {
                error.set(Some(
                    errs.into_iter()
                        .map(|e| e.message)
                        .collect::<Vec<_>>()
                        .join(" "),
                ));
                return;
            }
            busy.set(true);
            error.set(None);
            let (me, navigate) = (me.clone(), navigate.clone());
            spawn_local(async move {
                let saved = save_item(
                    app,
                    me,
                    clinic_id,
                    t.chart_id,
                    Uuid::new_v4(),
                    0,
                    RecordBody::ReminderContact(contact),
                )
                .await;
                if let Err(e) = saved {
                    report_error(app, &navigate, error, e);
                }
                busy.set(false);
            });
        }
    };

    let row = move |(idx, t): (usize, Task)| {
        let href = format!("/clinics/{clinic_id}/patients/{}", t.chart_id);
        let last = t.contacts.last().map(|c| {
            format!(
                "{} · {} · {} · {}",
                c.at.replacen('T', " ", 1),
                channel_label(c.channel),
                outcome_label(c.outcome),
                c.by.name
            )
        });
        let log = log.clone();
        let t2 = t.clone();
        let p = &t.patient;
        let address = [
            &p.address.line1,
            &p.address.line2,
            &p.address.city,
            &p.address.postal_code,
        ]
        .into_iter()
        .filter(|s| !s.is_empty())
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
        view! {
            <tr class="task-row" data-chart=t.chart_id.to_string()>
                <td><a href=href class="task-patient">{p.display_name()}</a></td>
                <td class="task-what">{t.what.clone()}{(!t.provider.is_empty()).then(|| format!(" · {}", t.provider))}</td>
                <td>{p.phone.clone()}<br />{p.email.clone()}<br /><span class="help">{address}</span></td>
                <td class="task-last">{last.unwrap_or_else(|| "Not contacted yet".into())}</td>
                <td class="no-print">
                    <select id=format!("contact-channel-{idx}") aria-label="Channel">
                        {CHANNELS.iter().map(|(_, k, l)| view! { <option value=*k>{*l}</option> }).collect_view()}
                    </select>
                    <select id=format!("contact-outcome-{idx}") aria-label="Outcome">
                        {OUTCOMES.iter().map(|(_, k, l)| view! { <option value=*k>{*l}</option> }).collect_view()}
                    </select>
                    <input id=format!("contact-notes-{idx}") type="text" maxlength="200" placeholder="Notes" aria-label="Notes" />
                    <button type="button" class="button small secondary contact-log" disabled=move || busy.get()
                        on:click=move |_| log(t2.clone(), idx)>"Log"</button>
                </td>
            </tr>
        }
    };

    let back = format!("/clinics/{clinic_id}/patients");
    view! {
        <AppHeader />
        <main class="page wide-page worklist">
            <nav class="crumbs no-print" aria-label="Breadcrumb">
                <a href=back>"← Patients"</a>
            </nav>
            <div class="page-title">
                <h1>"Reminders for " <span id="worklist-day">{move || day.get()}</span></h1>
                <div class="toolbar no-print">
                    <input id="worklist-date" type="date" aria-label="Day" bind:value=day />
                    <label for="worklist-recall">"Recalls due within"</label>
                    <select id="worklist-recall" on:change=move |ev| recall_days.set(event_target_value(&ev).parse().unwrap_or(30))>
                        <option value="0">"that day"</option>
                        <option value="7">"7 days"</option>
                        <option value="30" selected>"30 days"</option>
                        <option value="90">"90 days"</option>
                    </select>
                    <button id="worklist-print" type="button" class="button secondary" on:click=print>"Print"</button>
                    <button id="worklist-csv" type="button" class="button secondary" on:click=download_csv>"CSV for mail merge"</button>
                </div>
            </div>
            {move || error.get().map(|e| view! { <p id="worklist-error" class="error" role="alert">{e}</p> })}
            <p id="worklist-count" class="count">{move || format!("{} to contact", list.with(|l| l.len()))}</p>
            <table class="worklist-table">
                <thead>
                    <tr>
                        <th scope="col">"Patient"</th>
                        <th scope="col">"About"</th>
                        <th scope="col">"Contact"</th>
                        <th scope="col">"Last contact"</th>
                        <th scope="col" class="no-print">"Log a contact"</th>
                    </tr>
                </thead>
                <tbody>
                    {
                        let row = row.clone();
                        move || list.get().into_iter().enumerate().map(row.clone()).collect_view()
                    }
                </tbody>
            </table>
        </main>
    }
}

/// Now as clinic-local `YYYY-MM-DDTHH:MM` (the browser's clock and time zone).
fn now_local() -> String {
    let d = js_sys::Date::new_0();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}",
        d.get_full_year(),
        d.get_month() + 1,
        d.get_date(),
        d.get_hours(),
        d.get_minutes()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_are_quoted_and_formulas_defused() {
        assert_eq!(csv_cell("Lee"), "\"Lee\"");
        assert_eq!(csv_cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_cell("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(csv_cell("+1 555"), "\"'+1 555\"");
        assert_eq!(csv_cell("a,b\nc"), "\"a,b\nc\"");
    }

    #[test]
    fn recalls_due_are_listed_for_active_patients_only() {
        use crate::store::{Change, Opened};
        let mut s = RecordStore::default();
        let mk = |name: &str, due: Option<&str>, status| Patient {
            given_name: name.into(),
            family_name: "X".into(),
            recall_due: due.map(str::to_string),
            status,
            ..Default::default()
        };
        for (i, p) in [
            mk("Due", Some("2026-12-01"), PatientStatus::Active),
            mk("Later", Some("2027-06-01"), PatientStatus::Active),
            mk("Gone", Some("2026-11-01"), PatientStatus::Inactive),
            mk("None", None, PatientStatus::Active),
        ]
        .into_iter()
        .enumerate()
        {
            s.apply(Change {
                record_id: Uuid::new_v4(),
                version: 1,
                seq: i as u64 + 1,
                author: None,
                opened: Opened::Patient(p),
            });
        }
        let t = tasks(&s, "2026-11-27", "2026-12-27");
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].what, "Recall due 2026-12-01");
        let csv = to_csv(&t);
        assert!(csv.starts_with("\"kind\",\"family_name\""), "{csv}");
        assert!(csv.contains("\"recall\",\"X\",\"Due\""), "{csv}");
    }
}

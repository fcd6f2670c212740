//! Who may read a chart, on its patient's page. For a chart that is not restricted: restricting it
//! to a care team (owners and roles with clinical access). For a restricted chart: its care team,
//! with adding and removing members (owners and clinical roles who are on the team). Names and
//! roles come from the verified roster.

use std::collections::BTreeSet;
use std::sync::Arc;

use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::hooks::use_navigate;
use optovault_shared::wire::{RestrictedChart, Role};
use uuid::Uuid;

use crate::charts::{add_to_team, may_manage, remove_from_team, restrict};
use crate::components::spinner::Spinner;
use crate::pages::report_error;
use crate::state::{use_app, Unlocked};
use crate::store::RecordStore;
use crate::team::role_label;

/// A member of the clinic as the verified roster knows it.
#[derive(Clone, Debug, PartialEq)]
pub struct Person {
    pub id: Uuid,
    pub username: String,
    pub role: Role,
}

#[component]
pub fn ChartAccess(
    me: Arc<Unlocked>,
    clinic_id: Uuid,
    /// The patient's record id.
    chart_id: Uuid,
    /// The patient is loaded and found.
    #[prop(into)]
    ready: Signal<bool>,
) -> impl IntoView {
    let app = use_app();
    let store: RwSignal<RecordStore> = app.store(clinic_id).into();
    let me_id = me.account_id;
    let restriction = Memo::new(move |_| store.with(|s| s.restriction(&chart_id).cloned()));
    let people = Memo::new(move |_| {
        app.clinic_tracked(&clinic_id)
            .and_then(|c| {
                c.roster.as_ref().map(|r| {
                    let mut v: Vec<Person> = r
                        .members
                        .iter()
                        .map(|(id, m)| Person {
                            id: *id,
                            username: m.username.clone(),
                            role: m.role,
                        })
                        .collect();
                    v.sort_by_cached_key(|p| (p.id != me_id, p.username.clone()));
                    v
                })
            })
            .unwrap_or_default()
    });
    let manager = Memo::new(move |_| {
        app.clinic_tracked(&clinic_id)
            .is_some_and(|c| c.trusted().is_ok() && may_manage(&c, &me_id))
    });
    let me = StoredValue::new(me);
    move || {
        if !ready.get() {
            return ().into_any();
        }
        match restriction.get() {
            Some(chart) if chart.in_care_team && manager.get() => view! {
                <CareTeam me=me.get_value() clinic_id=clinic_id chart_id=chart_id chart=chart
                    people=people.get() />
            }
            .into_any(),
            Some(_) => ().into_any(),
            None if manager.get() => view! {
                <RestrictChart me=me.get_value() clinic_id=clinic_id chart_id=chart_id
                    people=people.get() />
            }
            .into_any(),
            None => ().into_any(),
        }
    }
}

fn describe(p: &Person) -> String {
    format!("{} — {}", p.username, role_label(p.role))
}

#[component]
fn RestrictChart(
    me: Arc<Unlocked>,
    clinic_id: Uuid,
    chart_id: Uuid,
    people: Vec<Person>,
) -> impl IntoView {
    let app = use_app();
    let navigate = use_navigate();
    let me_id = me.account_id;
    let chosen = RwSignal::new(BTreeSet::from([me_id]));
    let busy = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);

    let on_restrict = move |_| {
        if busy.get_untracked() {
            return;
        }
        let team: Vec<Uuid> = chosen.get_untracked().into_iter().collect();
        busy.set(true);
        error.set(None);
        let (me, navigate) = (me.clone(), navigate.clone());
        spawn_local(async move {
            if let Err(e) = restrict(app, me, clinic_id, chart_id, team).await {
                report_error(app, &navigate, error, e);
            }
            busy.set(false);
        });
    };
    let items = people
        .into_iter()
        .map(|p| {
            let id = p.id;
            let is_me = id == me_id;
            let input_id = format!("care-team-{id}");
            view! {
                <li>
                    <input type="checkbox" class="care-team-member" id=input_id.clone()
                        value=id.to_string() disabled=is_me
                        prop:checked=move || chosen.with(|c| c.contains(&id))
                        on:change=move |ev| {
                            let on = event_target_checked(&ev);
                            chosen.update(|c| {
                                if on || is_me {
                                    c.insert(id);
                                } else {
                                    c.remove(&id);
                                }
                            });
                        } />
                    <label for=input_id>
                        {describe(&p)}
                        {is_me.then(|| view! { <span class="badge">"you"</span> })}
                    </label>
                </li>
            }
        })
        .collect_view();

    view! {
        <section id="restrict-chart" class="card chart-access" aria-labelledby="restrict-title">
            <h2 id="restrict-title">"Restrict chart"</h2>
            <p class="help">
                "Only the care team you choose will be able to open this chart: it gets keys of its \
                 own, and its records are encrypted again under them. Everyone else in the clinic \
                 learns only that a restricted chart exists, never whose it is."
            </p>
            <fieldset class="care-team-choice">
                <legend>"Care team"</legend>
                <ul class="checklist">{items}</ul>
            </fieldset>
            {move || error.get().map(|e| view! { <p id="restrict-error" class="error" role="alert">{e}</p> })}
            <div class="actions">
                <button id="restrict-save" type="button" class="button primary"
                    on:click=on_restrict disabled=move || busy.get()>
                    "Restrict to this care team"
                </button>
                <Show when=move || busy.get()>
                    <Spinner label="Re-encrypting the chart…" />
                </Show>
            </div>
        </section>
    }
}

/// A change of the care team.
#[derive(Clone, Copy)]
enum Op {
    Add(Uuid),
    Remove(Uuid),
}

#[component]
fn CareTeam(
    me: Arc<Unlocked>,
    clinic_id: Uuid,
    chart_id: Uuid,
    chart: RestrictedChart,
    people: Vec<Person>,
) -> impl IntoView {
    let app = use_app();
    let navigate = use_navigate();
    let me_id = me.account_id;
    let busy = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);

    let run = move |op: Op| {
        if busy.get_untracked() {
            return;
        }
        busy.set(true);
        error.set(None);
        let (me, navigate) = (me.clone(), navigate.clone());
        spawn_local(async move {
            let done = match op {
                Op::Add(id) => add_to_team(app, me, clinic_id, chart_id, id).await,
                Op::Remove(id) => remove_from_team(app, me, clinic_id, chart_id, id).await,
            };
            if let Err(e) = done {
                report_error(app, &navigate, error, e);
            }
            busy.set(false);
        });
    };

    let entries = chart
        .care_team
        .iter()
        .map(|id| {
            let id = *id;
            let label = people
                .iter()
                .find(|p| p.id == id)
                .map(describe)
                .unwrap_or_else(|| "Someone not in the signed member list".into());
            let run = run.clone();
            let remove = (id != me_id).then(move || {
                view! {
                    <button type="button" class="button danger care-team-remove"
                        disabled=move || busy.get() on:click=move |_| run(Op::Remove(id))>
                        "Remove"
                    </button>
                }
            });
            view! {
                <li class="care-team-entry" data-id=id.to_string()>
                    <span class="care-team-name">
                        {label}
                        {(id == me_id).then(|| view! { <span class="badge">"you"</span> })}
                    </span>
                    {remove}
                </li>
            }
        })
        .collect_view();
    let candidates: Vec<Person> = people
        .into_iter()
        .filter(|p| !chart.care_team.contains(&p.id))
        .collect();
    let choice = RwSignal::new(candidates.first().map(|p| p.id));
    let options = candidates
        .iter()
        .map(|p| view! { <option value=p.id.to_string()>{describe(p)}</option> })
        .collect_view();
    let can_add = !candidates.is_empty();
    let on_add = move |_| {
        if let Some(id) = choice.get_untracked() {
            run(Op::Add(id));
        }
    };

    view! {
        <section id="care-team" class="card chart-access" aria-labelledby="care-team-title">
            <h2 id="care-team-title">"Care team"</h2>
            <p class="help">
                "Only these members can open this chart. Removing someone gives the chart new keys, \
                 so nothing written from now on opens with theirs."
            </p>
            <ul class="care-team-list">{entries}</ul>
            {can_add.then(|| view! {
                <div class="care-team-add">
                    <div class="field">
                        <label for="care-team-add">"Add to the care team"</label>
                        <select id="care-team-add"
                            on:change=move |ev| choice.set(event_target_value(&ev).parse().ok())>
                            {options}
                        </select>
                    </div>
                    <button id="care-team-add-save" type="button" class="button secondary"
                        on:click=on_add disabled=move || busy.get()>
                        "Add"
                    </button>
                </div>
            })}
            {move || error.get().map(|e| view! { <p id="care-team-error" class="error" role="alert">{e}</p> })}
            <Show when=move || busy.get()>
                <Spinner label="Updating the care team…" />
            </Show>
        </section>
    }
}

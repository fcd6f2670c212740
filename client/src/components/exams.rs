//! The exams of one chart (clinical compartment), on the patient's page: listed newest first with
//! their key values (IOP flagged above 21 mmHg, the manifest refraction), each opening to all its
//! values read-only; the exam form for a new exam or a draft; signing a draft; and amendments to a
//! signed exam, which is otherwise frozen (the shared `check_exam_edit` is the rule).

use std::sync::Arc;

use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::hooks::use_navigate;
use optovault_shared::chart::{
    Exam, EyeSel, IopReading, RefractionType, Side, StaffRef, VaCorrection, VaDistance,
    VisualAcuity,
};
use optovault_shared::domain::RecordBody;
use optovault_shared::Compartment;
use uuid::Uuid;

use crate::components::exam_form::{
    iop_method_short, laterality_label, now_datetime, rx_type_title, ExamForm,
};
use crate::components::record_history::RecordHistory;
use crate::pages::report_error;
use crate::records::save_item;
use crate::state::{use_app, Unlocked};
use crate::store::RecordStore;

/// One exam of the chart, as held in the store.
#[derive(Clone, Debug, PartialEq)]
pub struct ExamEntry {
    pub id: Uuid,
    pub version: u64,
    /// Position in the clinic's change feed.
    pub seq: u64,
    pub exam: Exam,
    /// Username of whoever wrote this version.
    pub author: String,
}

/// Newest first: by exam date, then the one written last (ISO dates sort as text).
pub fn sort_newest_first(list: &mut [ExamEntry]) {
    list.sort_by(|a, b| {
        b.exam
            .date
            .cmp(&a.exam.date)
            .then(b.seq.cmp(&a.seq))
            .then(b.id.cmp(&a.id))
    });
}

/// The chart's exams, newest first.
pub fn chart_exams(store: &RecordStore, chart_id: &Uuid) -> Vec<ExamEntry> {
    let mut list: Vec<ExamEntry> = store
        .items_of(chart_id)
        .into_iter()
        .filter_map(|i| match i.body {
            RecordBody::Exam(exam) => Some(ExamEntry {
                id: i.id,
                version: i.version,
                seq: i.seq,
                exam,
                author: i.author,
            }),
            _ => None,
        })
        .collect();
    sort_newest_first(&mut list);
    list
}

/// The IOP of one eye in an exam: its highest reading (the one that matters for glaucoma risk
/// when an eye was measured more than once).
pub fn iop_of(exam: &Exam, side: Side) -> Option<&IopReading> {
    exam.iop
        .iter()
        .filter(|r| r.eye == side)
        .max_by_key(|r| r.mmhg)
}

/// The distance acuity of one eye: with correction when measured, else without.
pub fn distance_va(exam: &Exam, eye: EyeSel) -> Option<&VisualAcuity> {
    let find = |c: VaCorrection| {
        exam.visual_acuity
            .iter()
            .find(|v| v.eye == eye && v.distance == VaDistance::Distance && v.correction == c)
    };
    find(VaCorrection::Cc).or_else(|| find(VaCorrection::Sc))
}

/// `OD -1.00 / -0.50 x 90 · OS plano DS` for the exam's (first) manifest refraction.
pub fn manifest_summary(exam: &Exam) -> Option<String> {
    let r = exam
        .refractions
        .iter()
        .find(|r| r.refraction_type == RefractionType::Manifest)?;
    let eyes: Vec<String> = [("OD", &r.od), ("OS", &r.os)]
        .into_iter()
        .filter_map(|(n, e)| e.as_ref().map(|e| format!("{n} {}", e.summary())))
        .collect();
    (!eyes.is_empty()).then(|| eyes.join(" · "))
}

/// `2026-11-20 11:05` from `2026-11-20T11:05`.
pub fn at_label(at: &str) -> String {
    at.replacen('T', " ", 1)
}

/// One value of one eye in the exam's detail; `flag` marks it as out of range.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cell {
    pub text: String,
    pub flag: bool,
}

fn cell(text: impl Into<String>) -> Cell {
    Cell {
        text: text.into(),
        flag: false,
    }
}

/// A row of the exam's detail with the right and left eye side by side.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EyeRow {
    pub label: String,
    pub od: Cell,
    pub os: Cell,
}

fn va_label(v: &VisualAcuity) -> String {
    let dist = match v.distance {
        VaDistance::Distance => "distance",
        VaDistance::Near => "near",
    };
    let corr = match v.correction {
        VaCorrection::Sc => "sc",
        VaCorrection::Cc => "cc",
        VaCorrection::Pinhole => "pinhole",
    };
    format!("VA {dist} {corr}")
}

fn va_text(v: &VisualAcuity) -> String {
    format!("{} (logMAR {})", v.entered, v.logmar.logmar_string())
}

/// Puts `value` in the row labelled `label` (a new row when there is none, or when that eye of
/// it is taken: a second reading gets a row of its own).
fn put(rows: &mut Vec<EyeRow>, label: String, side: Side, value: Cell) {
    let free = rows.iter_mut().find(|r| {
        r.label == label
            && match side {
                Side::Od => r.od.text.is_empty(),
                Side::Os => r.os.text.is_empty(),
            }
    });
    let row = match free {
        Some(r) => r,
        None => {
            rows.push(EyeRow {
                label,
                od: Cell::default(),
                os: Cell::default(),
            });
            let Some(r) = rows.last_mut() else { return };
            r
        }
    };
    match side {
        Side::Od => row.od = value,
        Side::Os => row.os = value,
    }
}

/// Everything measured per eye, OD and OS side by side.
pub fn eye_rows(exam: &Exam) -> Vec<EyeRow> {
    let mut rows = Vec::new();
    for v in &exam.visual_acuity {
        let side = match v.eye {
            EyeSel::Od => Side::Od,
            EyeSel::Os => Side::Os,
            EyeSel::Ou => continue,
        };
        put(&mut rows, va_label(v), side, cell(va_text(v)));
    }
    for r in &exam.refractions {
        let label = rx_type_title(r.refraction_type);
        let summary = |e: &Option<optovault_shared::chart::EyeRefraction>| {
            cell(e.as_ref().map(|e| e.summary()).unwrap_or_default())
        };
        rows.push(EyeRow {
            label,
            od: summary(&r.od),
            os: summary(&r.os),
        });
    }
    for (side, k) in exam.keratometry.sides() {
        if let Some(k) = k {
            let text = format!(
                "K1 {:.2} D @ {}°, K2 {:.2} D @ {}°",
                k.k1.as_f64(),
                k.k1_axis,
                k.k2.as_f64(),
                k.k2_axis
            );
            put(&mut rows, "Keratometry".into(), side, cell(text));
        }
    }
    for r in &exam.iop {
        let mut text = format!("{} mmHg ({}", r.mmhg, iop_method_short(r.method));
        if let Some(t) = &r.time {
            text.push_str(&format!(", {t}"));
        }
        text.push(')');
        if r.is_elevated() {
            text.push_str(" elevated");
        }
        let value = Cell {
            text,
            flag: r.is_elevated(),
        };
        put(&mut rows, "IOP".into(), r.eye, value);
    }
    for (side, c) in exam.cct_um.sides() {
        if let Some(c) = c {
            put(&mut rows, "CCT".into(), side, cell(format!("{c} µm")));
        }
    }
    for (label, per_eye) in [("Slit lamp", &exam.slit_lamp), ("Fundus", &exam.fundus)] {
        for (side, text) in per_eye.sides() {
            if !text.is_empty() {
                put(&mut rows, label.into(), side, cell(text.clone()));
            }
        }
    }
    for (side, cd) in exam.cup_disc.sides() {
        if let Some(cd) = cd {
            put(&mut rows, "Cup/disc".into(), side, cell(cd.to_string()));
        }
    }
    rows
}

/// Everything else of the exam, label and value, in chart order (empty values left out).
pub fn general_rows(exam: &Exam) -> Vec<(String, String)> {
    let mut rows: Vec<(String, String)> = Vec::new();
    let mut add = |label: &str, value: String| {
        if !value.trim().is_empty() {
            rows.push((label.to_string(), value));
        }
    };
    let h = &exam.history;
    add("Chief complaint", h.chief_complaint.clone());
    add("Ocular history", h.ocular_history.clone());
    add("Medical history", h.medical_history.clone());
    add("Medications", h.medications.clone());
    add("Allergies", h.allergies.clone());
    for v in exam.visual_acuity.iter().filter(|v| v.eye == EyeSel::Ou) {
        add(&format!("{} OU", va_label(v)), va_text(v));
    }
    for r in exam.refractions.iter().filter(|r| !r.notes.is_empty()) {
        add(
            &format!("{} notes", rx_type_title(r.refraction_type)),
            r.notes.clone(),
        );
    }
    if let Some(d) = &exam.dilation {
        add("Dilation", format!("{} at {}", d.agent, d.time));
    }
    for d in &exam.diagnoses {
        let mut text = format!("{} ({})", d.code, laterality_label(d.laterality));
        if !d.description.is_empty() {
            text.push_str(&format!(" {}", d.description));
        }
        add("Diagnosis", text);
    }
    add("Plan", exam.plan.clone());
    rows
}

/// What the section shows above the list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Editing {
    Closed,
    New,
    Draft(Uuid),
}

fn staff_of(me: &Unlocked) -> StaffRef {
    StaffRef {
        account_id: me.account_id,
        name: me.username.clone(),
    }
}

#[component]
pub fn Exams(
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
    let allowed = move || {
        app.clinic_tracked(&clinic_id)
            .is_some_and(|c| c.holds(Compartment::Clinical))
    };
    let exams = Memo::new(move |_| store.with(|s| chart_exams(s, &chart_id)));
    let editing = RwSignal::new(Editing::Closed);
    // The exam whose values are shown (one at a time, so its action buttons have fixed ids).
    let selected = RwSignal::new(None::<Uuid>);
    let on_close = Callback::new(move |saved: Option<Uuid>| {
        editing.set(Editing::Closed);
        if saved.is_some() {
            selected.set(saved);
        }
    });

    let form_me = me.clone();
    // Copy, so the rows of the list (built inside other views) can each take it.
    let row_me = StoredValue::new(me);
    // Re-runs only when `editing` changes: a sync meanwhile must not reset what is being typed.
    let form = move || {
        let draft = match editing.get() {
            Editing::Closed => return None,
            Editing::New => None,
            Editing::Draft(id) => {
                let entry = exams.with_untracked(|l| l.iter().find(|e| e.id == id).cloned())?;
                // A signed exam never opens in the form.
                if entry.exam.signed.is_some() {
                    return None;
                }
                Some((entry.id, entry.version, entry.exam))
            }
        };
        Some(view! {
            <ExamForm me=form_me.clone() clinic_id=clinic_id chart_id=chart_id draft=draft on_close=on_close />
        })
    };

    view! {
        <Show when=move || ready.get() && allowed()>
            <section id="exams" class="card exams" aria-labelledby="exams-title">
                <div class="section-head">
                    <h2 id="exams-title">"Exams"</h2>
                    <button id="exam-new" type="button" class="button primary"
                        disabled=move || editing.get() != Editing::Closed
                        on:click=move |_| {
                            selected.set(None);
                            editing.set(Editing::New);
                        }>
                        "New exam"
                    </button>
                </div>
                {form.clone()}
                <Show when=move || exams.with(Vec::is_empty) && editing.get() == Editing::Closed>
                    <p class="empty">"No exams yet."</p>
                </Show>
                <ul class="exam-list">
                    <For each=move || exams.get() key=|e| (e.id, e.version) let:entry>
                        <ExamRow entry=entry me=row_me.get_value() clinic_id=clinic_id chart_id=chart_id
                            selected=selected editing=editing />
                    </For>
                </ul>
            </section>
        </Show>
    }
}

/// One exam in the list: its summary, which opens its values and actions.
#[component]
fn ExamRow(
    entry: ExamEntry,
    me: Arc<Unlocked>,
    clinic_id: Uuid,
    chart_id: Uuid,
    selected: RwSignal<Option<Uuid>>,
    editing: RwSignal<Editing>,
) -> impl IntoView {
    let id = entry.id;
    let exam = entry.exam.clone();
    let exam = &exam;
    let open = move || selected.get() == Some(id);
    let toggle = move |_| selected.update(|s| *s = if *s == Some(id) { None } else { Some(id) });
    let provider = exam
        .provider
        .as_ref()
        .map(|p| p.name.clone())
        .unwrap_or_else(|| entry.author.clone());
    let status = match &exam.signed {
        Some(sig) => view! {
            <span class="badge signed-badge">"Signed"</span>
            <span class="exam-signer">{format!("by {}, {}", sig.by.name, at_label(&sig.at))}</span>
        }
        .into_any(),
        None => view! { <span class="badge draft-badge">"Draft"</span> }.into_any(),
    };
    let iop: Vec<_> = [Side::Od, Side::Os]
        .into_iter()
        .filter_map(|side| iop_of(exam, side).map(|r| (side, r.mmhg, r.is_elevated())))
        .collect();
    let iop_view = (!iop.is_empty()).then(|| {
        view! {
            <span class="exam-iop">
                "IOP "
                {iop.into_iter().map(|(side, mmhg, high)| view! {
                    <span class="iop-value" class:elevated=high data-eye=side.as_str()>
                        {format!("{} {mmhg}", side.as_str().to_uppercase())}
                        {high.then(|| view! { <span class="badge elevated-badge">"elevated"</span> })}
                    </span>
                }).collect_view()}
                " mmHg"
            </span>
        }
    });
    let rx_view = manifest_summary(exam).map(|s| view! { <span class="exam-rx">"Rx " {s}</span> });
    let detail_id = format!("exam-detail-{id}");
    let signed = exam.signed.is_some();
    view! {
        <li class="exam-item" class:open=open data-id=id.to_string() data-signed=signed.to_string()>
            <button type="button" class="exam-summary" on:click=toggle
                aria-expanded=move || open().to_string() aria-controls=detail_id.clone()>
                <span class="exam-date">{exam.date.clone()}</span>
                <span class="exam-type">{exam.exam_type.label()}</span>
                <span class="exam-provider">{provider}</span>
                {status}
                {iop_view}
                {rx_view}
            </button>
            <Show when=open>
                <ExamDetail entry=entry.clone() me=me.clone() clinic_id=clinic_id chart_id=chart_id
                    selected=selected editing=editing />
                <RecordHistory me=me.clone() clinic_id=clinic_id chart_id=chart_id record_id=id
                    id=format!("exam-{id}") />
            </Show>
        </li>
    }
}

/// All values of one exam, read-only, and what can be done with it: edit or sign a draft, amend
/// a signed exam.
#[component]
fn ExamDetail(
    entry: ExamEntry,
    me: Arc<Unlocked>,
    clinic_id: Uuid,
    chart_id: Uuid,
    selected: RwSignal<Option<Uuid>>,
    editing: RwSignal<Editing>,
) -> impl IntoView {
    let app = use_app();
    let navigate = use_navigate();
    let id = entry.id;
    let exam = entry.exam.clone();
    let eyes = eye_rows(&exam);
    let general = general_rows(&exam);
    let busy = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);
    let confirming = RwSignal::new(false);
    let amending = RwSignal::new(false);
    let amendment = RwSignal::new(String::new());

    // Writes the next version of this exam (signed, or with one more amendment).
    let save = {
        let (me, navigate) = (me.clone(), navigate.clone());
        move |next: Exam, done: Box<dyn FnOnce() + Send>| {
            busy.set(true);
            error.set(None);
            let (me, navigate) = (me.clone(), navigate.clone());
            let body = RecordBody::Exam(next);
            spawn_local(async move {
                match save_item(app, me, clinic_id, chart_id, id, entry.version, body).await {
                    Ok(_) => done(),
                    Err(e) => report_error(app, &navigate, error, e),
                }
                busy.set(false);
            });
        }
    };

    let sign = {
        let (me, exam, save) = (me.clone(), exam.clone(), save.clone());
        move |_| {
            if busy.get_untracked() {
                return;
            }
            // Only a complete, valid exam is signed (the draft was valid when saved, but "today"
            // or the rules may have moved since).
            if let Err(errs) = exam.validate(&crate::util::today()) {
                let msgs: Vec<String> = errs.into_iter().map(|e| e.message).collect();
                error.set(Some(format!(
                    "This exam cannot be signed yet: {} Edit the draft first.",
                    msgs.join(" ")
                )));
                return;
            }
            match exam.sign(staff_of(&me), &now_datetime()) {
                Ok(signed) => save(signed, Box::new(move || confirming.set(false))),
                Err(e) => error.set(Some(e.message)),
            }
        }
    };

    let amend = {
        let (me, exam, save) = (me.clone(), exam.clone(), save.clone());
        move |_| {
            if busy.get_untracked() {
                return;
            }
            let text = amendment.get_untracked().trim().to_string();
            if text.is_empty() {
                error.set(Some("Write the amendment first.".into()));
                return;
            }
            // `amend` appends the attributed, timestamped amendment and checks the result with
            // `check_exam_edit` (a signed exam may only gain amendments).
            match exam.amend(staff_of(&me), &now_datetime(), &text) {
                Ok(amended) => save(
                    amended,
                    Box::new(move || {
                        amendment.set(String::new());
                        amending.set(false);
                    }),
                ),
                Err(e) => error.set(Some(e.message)),
            }
        }
    };

    let edit = move |_| {
        selected.set(None);
        editing.set(Editing::Draft(id));
    };

    let signed = exam.signed.clone();
    let amendments = exam.amendments.clone();
    let actions = if signed.is_some() {
        view! {
            <div class="actions">
                <button id="exam-amend" type="button" class="button secondary"
                    aria-expanded=move || amending.get().to_string()
                    on:click=move |_| amending.update(|a| *a = !*a)>
                    "Add amendment"
                </button>
            </div>
            <Show when=move || amending.get()>
                <div class="amendment-form">
                    <label for="amendment-text">"Amendment (added to the signed exam, which stays unchanged)"</label>
                    <textarea id="amendment-text" rows="3" maxlength="4000"
                        prop:value=move || amendment.get()
                        on:input=move |ev| amendment.set(event_target_value(&ev))></textarea>
                    <div class="actions">
                        <button id="amendment-save" type="button" class="button primary"
                            disabled=move || busy.get() on:click=amend.clone()>
                            {move || if busy.get() { "Saving…" } else { "Save amendment" }}
                        </button>
                        <button id="amendment-cancel" type="button" class="button secondary"
                            on:click=move |_| amending.set(false)>
                            "Cancel"
                        </button>
                    </div>
                </div>
            </Show>
        }
        .into_any()
    } else {
        let who = me.username.clone();
        view! {
            <div class="actions">
                <button id="exam-edit" type="button" class="button secondary exam-edit" on:click=edit
                    disabled=move || editing.get() != Editing::Closed>
                    "Edit draft"
                </button>
                <button id="exam-sign" type="button" class="button primary"
                    // Not while this draft is open in the form (its save would then conflict).
                    disabled=move || confirming.get() || editing.get() == Editing::Draft(id)
                    on:click=move |_| confirming.set(true)>
                    "Sign exam"
                </button>
            </div>
            <Show when=move || confirming.get()>
                <div class="confirm" role="alertdialog" aria-label="Confirm signing">
                    <p>
                        {format!("Sign this exam as {who}? ")}
                        "A signed exam can no longer be changed; corrections are added as amendments."
                    </p>
                    <button id="exam-sign-confirm" type="button" class="button primary"
                        disabled=move || busy.get() on:click=sign.clone()>
                        {move || if busy.get() { "Signing…" } else { "Yes, sign" }}
                    </button>
                    <button id="exam-sign-cancel" type="button" class="button secondary"
                        disabled=move || busy.get() on:click=move |_| confirming.set(false)>
                        "Cancel"
                    </button>
                </div>
            </Show>
        }
        .into_any()
    };

    view! {
        <div class="exam-detail" id=format!("exam-detail-{id}")>
            {(!eyes.is_empty()).then(|| view! {
                <div class="table-scroll">
                    <table class="exam-table exam-values">
                        <thead>
                            <tr>
                                <th scope="col"></th>
                                <th scope="col">"OD (right)"</th>
                                <th scope="col">"OS (left)"</th>
                            </tr>
                        </thead>
                        <tbody>
                            {eyes.into_iter().map(|r| view! {
                                <tr>
                                    <th scope="row">{r.label}</th>
                                    <td class:flag=r.od.flag>{r.od.text}</td>
                                    <td class:flag=r.os.flag>{r.os.text}</td>
                                </tr>
                            }).collect_view()}
                        </tbody>
                    </table>
                </div>
            })}
            <dl class="exam-general">
                {general.into_iter().map(|(label, value)| view! {
                    <div class="exam-general-row">
                        <dt>{label}</dt>
                        <dd>{value}</dd>
                    </div>
                }).collect_view()}
            </dl>
            {signed.map(|s| view! {
                <p class="exam-signature">
                    {format!("Signed by {} on {}.", s.by.name, at_label(&s.at))}
                </p>
            })}
            {(!amendments.is_empty()).then(|| view! {
                <div class="amendments">
                    <h4>"Amendments"</h4>
                    <ol class="amendment-list">
                        {amendments.into_iter().map(|a| view! {
                            <li class="amendment">
                                <p class="amendment-text">{a.text}</p>
                                <p class="amendment-meta">{format!("{}, {}", a.by.name, at_label(&a.at))}</p>
                            </li>
                        }).collect_view()}
                    </ol>
                </div>
            })}
            {move || error.get().map(|e| view! { <p id="exam-action-error" class="error" role="alert">{e}</p> })}
            {actions}
        </div>
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use optovault_shared::chart::{
        Diopters, EyeRefraction, IopMethod, PerEye, Refraction, VaNotation,
    };

    fn exam(date: &str) -> Exam {
        Exam {
            date: date.into(),
            ..Default::default()
        }
    }

    fn entry(date: &str, seq: u64) -> ExamEntry {
        ExamEntry {
            id: Uuid::from_u128(u128::from(seq)),
            version: 1,
            seq,
            exam: exam(date),
            author: "iris".into(),
        }
    }

    fn reading(eye: Side, mmhg: u16) -> IopReading {
        IopReading {
            eye,
            mmhg,
            method: IopMethod::Goldmann,
            time: Some("09:40".into()),
        }
    }

    #[test]
    fn newest_first() {
        let mut l = vec![
            entry("2025-01-02", 1),
            entry("2026-03-04", 2),
            entry("2025-01-02", 3),
        ];
        sort_newest_first(&mut l);
        let seqs: Vec<u64> = l.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, [2, 3, 1]);
    }

    #[test]
    fn summaries() {
        let mut e = exam("2026-11-20");
        e.iop = vec![
            reading(Side::Od, 19),
            reading(Side::Od, 23),
            reading(Side::Os, 12),
        ];
        assert_eq!(iop_of(&e, Side::Od).map(|r| r.mmhg), Some(23));
        assert_eq!(iop_of(&e, Side::Os).map(|r| r.mmhg), Some(12));
        assert_eq!(manifest_summary(&e), None);
        e.refractions = vec![
            Refraction {
                refraction_type: RefractionType::Auto,
                od: Some(EyeRefraction::default()),
                ..Default::default()
            },
            Refraction {
                refraction_type: RefractionType::Manifest,
                od: Some(EyeRefraction {
                    sphere: Diopters(-100),
                    cylinder: Diopters(-50),
                    axis: Some(90),
                    ..Default::default()
                }),
                os: None,
                notes: String::new(),
            },
        ];
        assert_eq!(
            manifest_summary(&e).as_deref(),
            Some("OD -1.00 / -0.50 x 90")
        );
        assert_eq!(at_label("2026-11-20T11:05"), "2026-11-20 11:05");
    }

    #[test]
    fn distance_va_prefers_corrected() {
        let va = |eye, correction, text| {
            VisualAcuity::new(
                eye,
                VaDistance::Distance,
                correction,
                VaNotation::SnellenFeet,
                text,
            )
            .unwrap()
        };
        let mut e = exam("2026-11-20");
        e.visual_acuity = vec![
            va(EyeSel::Od, VaCorrection::Sc, "20/80"),
            va(EyeSel::Od, VaCorrection::Cc, "20/20"),
            va(EyeSel::Os, VaCorrection::Sc, "20/40"),
            va(EyeSel::Os, VaCorrection::Pinhole, "20/25"),
        ];
        assert_eq!(
            distance_va(&e, EyeSel::Od).map(|v| v.entered.as_str()),
            Some("20/20")
        );
        assert_eq!(
            distance_va(&e, EyeSel::Os).map(|v| v.entered.as_str()),
            Some("20/40")
        );
        assert_eq!(distance_va(&e, EyeSel::Ou), None);
    }

    #[test]
    fn detail_rows_pair_the_eyes() {
        let mut e = exam("2026-11-20");
        e.iop = vec![
            reading(Side::Od, 23),
            reading(Side::Os, 18),
            reading(Side::Od, 20),
        ];
        e.cct_um = PerEye {
            od: None,
            os: Some(552),
        };
        e.plan = "Review".into();
        let rows = eye_rows(&e);
        let labels: Vec<&str> = rows.iter().map(|r| r.label.as_str()).collect();
        assert_eq!(labels, ["IOP", "IOP", "CCT"]);
        assert_eq!(rows[0].od.text, "23 mmHg (Goldmann, 09:40) elevated");
        assert!(rows[0].od.flag);
        assert_eq!(rows[0].os.text, "18 mmHg (Goldmann, 09:40)");
        assert!(!rows[0].os.flag);
        assert_eq!(rows[1].od.text, "20 mmHg (Goldmann, 09:40)");
        assert_eq!(rows[1].os, Cell::default());
        assert_eq!(rows[2].os.text, "552 µm");
        assert_eq!(
            general_rows(&e),
            [("Plan".to_string(), "Review".to_string())]
        );
    }
}

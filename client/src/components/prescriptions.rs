//! Spectacle and contact-lens prescriptions of one chart (prescriptions compartment), on the
//! patient's page: one list per kind, newest first, with their life cycle (draft → active →
//! cancelled or entered in error) and the forms to write them ([`super::rx_form`]).
//!
//! Shown only when my keyring holds the prescriptions key (opticians and optometrists; the front
//! desk never gets it). The display helpers here are shared with the print page, so the list and
//! the printed prescription write values the same way.

use std::sync::Arc;

use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::hooks::use_navigate;
use optovault_shared::chart::{
    ClEye, ContactLensRx, Diopters, EyeRefraction, LensType, Pd, Prescriber, Prism, PrismBase,
    Replacement, RxStatus, Side, SpectacleRx,
};
use optovault_shared::domain::{FieldError, RecordBody};
use optovault_shared::Compartment;
use uuid::Uuid;

use crate::components::record_history::RecordHistory;
use crate::components::rx_form::{ContactLensRxForm, SpectacleRxForm};
use crate::components::spinner::Spinner;
use crate::pages::report_error;
use crate::records::save_item;
use crate::state::{use_app, Unlocked};
use crate::store::{Item, RecordStore};
use crate::util::today;

// ---- how values are written ------------------------------------------------------------------

/// A power as printed: always signed, two decimals, with a true minus sign (−2.25, +0.50), which
/// reads unambiguously on paper where a hyphen can vanish.
pub fn power(d: Diopters) -> String {
    d.to_string().replacen('-', "\u{2212}", 1)
}

/// A sphere as printed: `plano` for zero.
pub fn sphere(d: Diopters) -> String {
    if d.is_zero() {
        "plano".into()
    } else {
        power(d)
    }
}

pub fn base_label(b: PrismBase) -> &'static str {
    match b {
        PrismBase::Up => "base up",
        PrismBase::Down => "base down",
        PrismBase::In => "base in",
        PrismBase::Out => "base out",
    }
}

/// `0.5 Δ base up`.
pub fn prism(p: &Prism) -> String {
    format!("{} Δ {}", p.amount, base_label(p.base))
}

/// A summary cut where a line may break: each part with the separator before it. Lists keep
/// each part on one line (a power never wraps between its sign and its digits, nor an axis away
/// from its cylinder).
pub type Parts = Vec<(&'static str, String)>;

pub fn joined(parts: &Parts) -> String {
    parts.iter().map(|(sep, p)| format!("{sep}{p}")).collect()
}

/// Sphere / cylinder × axis (`DS` when there is no cylinder).
fn power_part(sph: String, cylinder: Diopters, axis: Option<u16>, ds: bool) -> String {
    if cylinder.is_zero() {
        return if ds { format!("{sph} DS") } else { sph };
    }
    match axis {
        Some(a) => format!("{sph} / {} × {a}", power(cylinder)),
        None => format!("{sph} / {}", power(cylinder)),
    }
}

/// One spectacle eye: `−2.25 / −0.50 × 180`, `add +2.00`, `0.5 Δ base up`.
pub fn eye_parts(e: &EyeRefraction) -> Parts {
    let mut parts = vec![("", power_part(sphere(e.sphere), e.cylinder, e.axis, true))];
    if let Some(add) = e.add {
        parts.push((" ", format!("add {}", power(add))));
    }
    parts.extend(e.prism.iter().map(|p| (", ", prism(p))));
    parts
}

/// One spectacle eye on one line: `−2.25 / −0.50 × 180 add +2.00, 0.5 Δ base up`.
pub fn eye_summary(e: &EyeRefraction) -> String {
    joined(&eye_parts(e))
}

/// One contact lens: `−3.00 / −0.75 × 90`, `add +1.50`, `BC 8.6 mm`, `Ø 14.2 mm`.
pub fn cl_eye_parts(e: &ClEye) -> Parts {
    let mut parts = vec![("", power_part(power(e.power), e.cylinder, e.axis, false))];
    if let Some(add) = e.add {
        parts.push((" ", format!("add {}", power(add))));
    }
    parts.push((", ", format!("BC {} mm", e.base_curve)));
    parts.push((", ", format!("Ø {} mm", e.diameter)));
    parts
}

pub fn status_label(s: RxStatus) -> &'static str {
    match s {
        RxStatus::Draft => "draft",
        RxStatus::Active => "active",
        RxStatus::Cancelled => "cancelled",
        RxStatus::EnteredInError => "entered in error",
    }
}

pub fn lens_type_label(l: LensType) -> &'static str {
    match l {
        LensType::SingleVision => "Single vision",
        LensType::Bifocal => "Bifocal",
        LensType::Trifocal => "Trifocal",
        LensType::Progressive => "Progressive",
    }
}

pub fn replacement_label(r: Replacement) -> &'static str {
    match r {
        Replacement::Daily => "Daily",
        Replacement::Weekly => "Weekly",
        Replacement::TwoWeekly => "Two-weekly",
        Replacement::Monthly => "Monthly",
        Replacement::Quarterly => "Quarterly",
        Replacement::SixMonthly => "Six-monthly",
        Replacement::Yearly => "Yearly",
    }
}

/// `63.0 mm`, or `R 31.5 mm / L 32.0 mm` for a monocular PD.
pub fn pd_text(pd: Pd) -> String {
    match pd {
        Pd::Binocular { mm } => format!("{mm} mm"),
        Pd::Monocular { od, os } => format!("R {od} mm / L {os} mm"),
    }
}

/// `Dr Lens (licence OD-4471)`, or the name alone.
pub fn prescriber_text(p: &Prescriber) -> String {
    if p.licence.trim().is_empty() {
        p.name.clone()
    } else {
        format!("{} (licence {})", p.name, p.licence.trim())
    }
}

// ---- the chart's prescriptions ---------------------------------------------------------------

/// A prescription of either kind.
#[derive(Clone, Debug, PartialEq)]
pub enum Rx {
    Spectacle(SpectacleRx),
    Contact(ContactLensRx),
}

impl Rx {
    pub fn from_body(body: &RecordBody) -> Option<Rx> {
        match body {
            RecordBody::SpectacleRx(r) => Some(Rx::Spectacle(r.clone())),
            RecordBody::ContactLensRx(r) => Some(Rx::Contact(r.clone())),
            _ => None,
        }
    }

    pub fn status(&self) -> RxStatus {
        match self {
            Rx::Spectacle(r) => r.status,
            Rx::Contact(r) => r.status,
        }
    }

    pub fn issued(&self) -> &str {
        match self {
            Rx::Spectacle(r) => &r.issued,
            Rx::Contact(r) => &r.issued,
        }
    }

    pub fn effective_expiry(&self) -> Option<String> {
        match self {
            Rx::Spectacle(r) => r.effective_expiry(),
            Rx::Contact(r) => r.effective_expiry(),
        }
    }

    pub fn is_expired(&self, today: &str) -> bool {
        match self {
            Rx::Spectacle(r) => r.is_expired(today),
            Rx::Contact(r) => r.is_expired(today),
        }
    }

    pub fn prescriber(&self) -> &Prescriber {
        match self {
            Rx::Spectacle(r) => &r.prescriber,
            Rx::Contact(r) => &r.prescriber,
        }
    }

    /// The lens type, or the contact lens's brand and manufacturer.
    pub fn lens_label(&self) -> String {
        match self {
            Rx::Spectacle(r) => lens_type_label(r.lens_type).into(),
            Rx::Contact(r) if r.manufacturer.trim().is_empty() => r.brand.clone(),
            Rx::Contact(r) => format!("{} ({})", r.brand, r.manufacturer),
        }
    }

    /// One eye, if the prescription has that eye.
    pub fn eye_parts(&self, side: Side) -> Option<Parts> {
        match self {
            Rx::Spectacle(r) => r.eye(side).map(eye_parts),
            Rx::Contact(r) => r.eye(side).map(cl_eye_parts),
        }
    }

    pub fn validate(&self, today: &str) -> Result<(), Vec<FieldError>> {
        match self {
            Rx::Spectacle(r) => r.validate(today),
            Rx::Contact(r) => r.validate(today),
        }
    }

    /// The record with another status (everything else unchanged).
    pub fn with_status(&self, status: RxStatus) -> RecordBody {
        match self {
            Rx::Spectacle(r) => RecordBody::SpectacleRx(SpectacleRx {
                status,
                ..r.clone()
            }),
            Rx::Contact(r) => RecordBody::ContactLensRx(ContactLensRx {
                status,
                ..r.clone()
            }),
        }
    }

    /// A prescription that may be handed to a patient or printed: drafts are printed marked as
    /// such (to check before activating), void ones are not offered.
    pub fn printable(&self) -> bool {
        matches!(self.status(), RxStatus::Draft | RxStatus::Active)
    }
}

/// A prescription of the chart as this client holds it.
#[derive(Clone, Debug, PartialEq)]
pub struct RxEntry {
    pub id: Uuid,
    pub version: u64,
    pub seq: u64,
    pub rx: Rx,
}

/// The chart's spectacle and contact-lens prescriptions, each list newest first (by issue date,
/// then by when it was written).
pub fn prescriptions_of(items: &[Item]) -> (Vec<RxEntry>, Vec<RxEntry>) {
    let mut entries: Vec<RxEntry> = items
        .iter()
        .filter_map(|i| {
            Rx::from_body(&i.body).map(|rx| RxEntry {
                id: i.id,
                version: i.version,
                seq: i.seq,
                rx,
            })
        })
        .collect();
    entries.sort_by(|a, b| (b.rx.issued(), b.seq, b.id).cmp(&(a.rx.issued(), a.seq, a.id)));
    entries
        .into_iter()
        .partition(|e| matches!(e.rx, Rx::Spectacle(_)))
}

/// The address of a prescription's print page.
pub fn print_href(clinic_id: Uuid, chart_id: Uuid, record_id: Uuid) -> String {
    format!("/clinics/{clinic_id}/patients/{chart_id}/rx/{record_id}/print")
}

/// Which form is open (one at a time: their field ids would otherwise repeat).
#[derive(Clone, Debug, PartialEq)]
enum Open {
    Nothing,
    Spectacle(Option<RxEntry>),
    Contact(Option<RxEntry>),
}

#[component]
pub fn Prescriptions(
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
    let me = StoredValue::new(me);
    let open = RwSignal::new(Open::Nothing);
    let notice = RwSignal::new(None::<String>);
    let error = RwSignal::new(None::<String>);

    let allowed = move || {
        app.clinic_tracked(&clinic_id)
            .is_some_and(|c| c.holds(Compartment::Prescriptions))
    };
    let lists = Memo::new(move |_| store.with(|s| prescriptions_of(&s.items_of(&chart_id))));
    let spectacles = Signal::derive(move || lists.with(|l| l.0.clone()));
    let contacts = Signal::derive(move || lists.with(|l| l.1.clone()));

    let on_edit = Callback::new(move |e: RxEntry| {
        notice.set(None);
        open.set(match e.rx {
            Rx::Spectacle(_) => Open::Spectacle(Some(e)),
            Rx::Contact(_) => Open::Contact(Some(e)),
        });
    });
    let on_close = Callback::new(move |saved: Option<String>| {
        open.set(Open::Nothing);
        notice.set(saved);
    });
    let start = move |what: Open| {
        notice.set(None);
        error.set(None);
        open.set(what);
    };
    let ctx = RowCtx {
        me,
        clinic_id,
        chart_id,
        on_edit,
        error,
        notice,
    };

    view! {
        <Show when=move || ready.get() && allowed()>
            <section id="prescriptions" class="card prescriptions" aria-labelledby="rx-title">
                <h2 id="rx-title">"Prescriptions"</h2>
                {move || notice.get().map(|n| view! { <p id="rx-notice" class="notice" role="status">{n}</p> })}
                {move || error.get().map(|e| view! { <p id="rx-section-error" class="error" role="alert">{e}</p> })}

                <div class="rx-heading">
                    <h3>"Spectacles"</h3>
                    <button id="srx-new" type="button" class="button secondary"
                        disabled=move || open.with(|o| *o != Open::Nothing)
                        on:click=move |_| start(Open::Spectacle(None))>
                        "New spectacle Rx"
                    </button>
                </div>
                <RxTable id="srx-list" entries=spectacles ctx=ctx
                    empty="No spectacle prescriptions yet." />
                {move || match open.get() {
                    Open::Spectacle(existing) => view! {
                        <SpectacleRxForm me=me.get_value() clinic_id=clinic_id chart_id=chart_id
                            existing=existing on_close=on_close />
                    }.into_any(),
                    _ => ().into_any(),
                }}

                <div class="rx-heading">
                    <h3>"Contact lenses"</h3>
                    <button id="clrx-new" type="button" class="button secondary"
                        disabled=move || open.with(|o| *o != Open::Nothing)
                        on:click=move |_| start(Open::Contact(None))>
                        "New contact lens Rx"
                    </button>
                </div>
                <RxTable id="clrx-list" entries=contacts ctx=ctx
                    empty="No contact lens prescriptions yet." />
                {move || match open.get() {
                    Open::Contact(existing) => view! {
                        <ContactLensRxForm me=me.get_value() clinic_id=clinic_id chart_id=chart_id
                            existing=existing on_close=on_close />
                    }.into_any(),
                    _ => ().into_any(),
                }}
            </section>
        </Show>
    }
}

/// What every row needs from the section.
#[derive(Clone, Copy)]
struct RowCtx {
    me: StoredValue<Arc<Unlocked>>,
    clinic_id: Uuid,
    chart_id: Uuid,
    on_edit: Callback<RxEntry>,
    /// Where a row's failed action is explained.
    error: RwSignal<Option<String>>,
    notice: RwSignal<Option<String>>,
}

#[component]
fn RxTable(
    id: &'static str,
    #[prop(into)] entries: Signal<Vec<RxEntry>>,
    ctx: RowCtx,
    empty: &'static str,
) -> impl IntoView {
    view! {
        <Show when=move || !entries.with(Vec::is_empty)
            fallback=move || view! { <p class="empty">{empty}</p> }>
            <div class="table-scroll">
                <table id=id class="rx-table">
                    <thead>
                        <tr>
                            <th scope="col">"Status"</th>
                            <th scope="col">"Issued"</th>
                            <th scope="col">"Expires"</th>
                            <th scope="col">"Lens"</th>
                            <th scope="col">"OD (right)"</th>
                            <th scope="col">"OS (left)"</th>
                            <th scope="col">"Prescriber"</th>
                            <th scope="col"><span class="visually-hidden">"Actions"</span></th>
                        </tr>
                    </thead>
                    <tbody>
                        <For each=move || entries.get() key=|e| (e.id, e.version) let:entry>
                            <RxRow entry=entry ctx=ctx />
                        </For>
                    </tbody>
                </table>
            </div>
        </Show>
    }
}

/// How a status change is asked and reported.
struct Wording {
    /// The confirmation question (only cancelling and voiding are confirmed).
    question: &'static str,
    /// The confirming button.
    yes: &'static str,
    done: &'static str,
}

fn wording(to: RxStatus) -> Wording {
    match to {
        RxStatus::Cancelled => Wording {
            question: "Cancel this prescription? It stays in the chart, marked cancelled, and can \
                       no longer be printed.",
            yes: "Yes, cancel the prescription",
            done: "Prescription cancelled.",
        },
        RxStatus::EnteredInError => Wording {
            question: "Mark this prescription as entered in error? It stays in the chart as void \
                       and can no longer be printed.",
            yes: "Yes, mark it entered in error",
            done: "Prescription marked as entered in error.",
        },
        RxStatus::Active => Wording {
            question: "",
            yes: "",
            done: "Prescription activated.",
        },
        RxStatus::Draft => Wording {
            question: "",
            yes: "",
            done: "Prescription saved.",
        },
    }
}

#[component]
fn RxRow(entry: RxEntry, ctx: RowCtx) -> impl IntoView {
    let app = use_app();
    let navigate = use_navigate();
    let RowCtx {
        me,
        clinic_id,
        chart_id,
        on_edit,
        error,
        notice,
    } = ctx;
    let today = today();
    let status = entry.rx.status();
    let busy = RwSignal::new(false);
    // A cancel / entered-in-error waiting for confirmation.
    let pending = RwSignal::new(None::<RxStatus>);
    let stored = StoredValue::new(entry.clone());

    // Writes the next version with another status; activation re-checks the prescription, since
    // rules depending on today's date (issue date in the future) may have changed since it was
    // saved as a draft.
    let change = move |to: RxStatus| {
        if busy.get_untracked() {
            return;
        }
        let e = stored.get_value();
        if to == RxStatus::Active {
            if let Err(errs) = e.rx.validate(&crate::util::today()) {
                let msg: Vec<String> = errs.into_iter().map(|e| e.message).collect();
                error.set(Some(format!(
                    "This draft cannot be activated yet: {} Edit it first.",
                    msg.join(" ")
                )));
                return;
            }
        }
        busy.set(true);
        error.set(None);
        notice.set(None);
        let navigate = navigate.clone();
        spawn_local(async move {
            let body = e.rx.with_status(to);
            let saved = save_item(
                app,
                me.get_value(),
                clinic_id,
                chart_id,
                e.id,
                e.version,
                body,
            )
            .await;
            busy.set(false);
            pending.set(None);
            match saved {
                Ok(_) => notice.set(Some(wording(to).done.into())),
                Err(err) => report_error(app, &navigate, error, err),
            }
        });
    };
    let change = StoredValue::new(change);

    let expiry = entry.rx.effective_expiry().unwrap_or_default();
    let is_draft = status == RxStatus::Draft;
    let open = matches!(status, RxStatus::Draft | RxStatus::Active);
    // A void prescription is not "expired": it was never valid.
    let expired = open && entry.rx.is_expired(&today);
    let print = entry
        .rx
        .printable()
        .then(|| print_href(clinic_id, chart_id, entry.id));
    let eye = |side| match entry.rx.eye_parts(side) {
        Some(parts) => parts
            .into_iter()
            .map(|(sep, p)| view! { {sep} <span class="rx-part">{p}</span> })
            .collect_view()
            .into_any(),
        None => "—".into_any(),
    };
    let edit_entry = entry.clone();

    view! {
        <tr class="rx-row" data-id=entry.id.to_string() data-status=status.fhir_code()>
            <td class="rx-status">
                <span class=format!("badge rx-badge status-{}", status.fhir_code())>
                    {status_label(status)}
                </span>
            </td>
            <td class="rx-issued">{entry.rx.issued().to_string()}</td>
            <td class="rx-expiry">
                {expiry}
                {expired.then(|| view! { <span class="badge warn rx-expired">"expired"</span> })}
            </td>
            <td class="rx-lens">{entry.rx.lens_label()}</td>
            <td class="rx-od">{eye(Side::Od)}</td>
            <td class="rx-os">{eye(Side::Os)}</td>
            <td class="rx-prescriber">{prescriber_text(entry.rx.prescriber())}</td>
            <td class="rx-actions-cell"><div class="rx-actions">
                {print.map(|href| view! {
                    <a class="button secondary rx-print" href=href>"Print"</a>
                })}
                {is_draft.then(|| view! {
                    <button type="button" class="button secondary rx-edit"
                        disabled=move || busy.get()
                        on:click=move |_| on_edit.run(edit_entry.clone())>
                        "Edit"
                    </button>
                    <button type="button" class="button primary rx-activate"
                        disabled=move || busy.get()
                        on:click=move |_| change.with_value(|c| c(RxStatus::Active))>
                        "Activate"
                    </button>
                })}
                {open.then(|| view! {
                    <button type="button" class="button secondary rx-cancel"
                        disabled=move || busy.get()
                        on:click=move |_| pending.set(Some(RxStatus::Cancelled))>
                        "Cancel Rx"
                    </button>
                })}
                {(status != RxStatus::EnteredInError).then(|| view! {
                    <button type="button" class="button secondary rx-void"
                        disabled=move || busy.get()
                        on:click=move |_| pending.set(Some(RxStatus::EnteredInError))>
                        "Entered in error"
                    </button>
                })}
                {move || pending.get().map(|to| view! {
                    <div class="confirm" role="alertdialog" aria-label="Confirm">
                        <p>{wording(to).question}</p>
                        <button type="button" class="button danger rx-confirm"
                            disabled=move || busy.get()
                            on:click=move |_| change.with_value(|c| c(to))>
                            {wording(to).yes}
                        </button>
                        <button type="button" class="button secondary rx-keep"
                            disabled=move || busy.get()
                            on:click=move |_| pending.set(None)>
                            "Keep it"
                        </button>
                    </div>
                })}
                <Show when=move || busy.get()>
                    <Spinner label="Saving…" />
                </Show>
                <RecordHistory me=me.get_value() clinic_id=clinic_id chart_id=chart_id
                    record_id=entry.id id=format!("rx-{}", entry.id) />
            </div></td>
        </tr>
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use optovault_shared::chart::Centi;

    fn item(seq: u64, body: RecordBody) -> Item {
        Item {
            id: Uuid::new_v4(),
            version: 1,
            seq,
            body,
            author: "optom".into(),
            former: false,
        }
    }

    fn spectacles(issued: &str) -> SpectacleRx {
        SpectacleRx {
            issued: issued.into(),
            od: Some(EyeRefraction {
                sphere: Diopters(-225),
                cylinder: Diopters(-50),
                axis: Some(180),
                add: Some(Diopters(200)),
                prism: vec![Prism {
                    amount: Centi(50),
                    base: PrismBase::Up,
                }],
            }),
            ..Default::default()
        }
    }

    #[test]
    fn writes_powers_with_a_true_minus_and_units() {
        assert_eq!(power(Diopters(-225)), "\u{2212}2.25");
        assert_eq!(power(Diopters(50)), "+0.50");
        assert_eq!(sphere(Diopters(0)), "plano");
        let rx = spectacles("2026-01-01");
        assert_eq!(
            eye_summary(rx.od.as_ref().unwrap()),
            "\u{2212}2.25 / \u{2212}0.50 × 180 add +2.00, 0.5 Δ base up"
        );
        let plain = EyeRefraction {
            sphere: Diopters(125),
            ..Default::default()
        };
        assert_eq!(eye_summary(&plain), "+1.25 DS");
        let cl = ClEye {
            power: Diopters(-300),
            base_curve: Centi(860),
            diameter: Centi(1420),
            ..Default::default()
        };
        assert_eq!(
            joined(&cl_eye_parts(&cl)),
            "\u{2212}3.00, BC 8.6 mm, Ø 14.2 mm"
        );
        assert_eq!(pd_text(Pd::Binocular { mm: Centi(6300) }), "63.0 mm");
        assert_eq!(
            pd_text(Pd::Monocular {
                od: Centi(3150),
                os: Centi(3200)
            }),
            "R 31.5 mm / L 32.0 mm"
        );
    }

    #[test]
    fn lists_each_kind_newest_first_and_ignores_other_records() {
        let items = vec![
            item(1, RecordBody::SpectacleRx(spectacles("2025-03-01"))),
            item(2, RecordBody::SpectacleRx(spectacles("2026-03-01"))),
            item(3, RecordBody::ContactLensRx(ContactLensRx::default())),
            item(
                4,
                RecordBody::ClinicalNote(optovault_shared::domain::ClinicalNote {
                    text: "x".into(),
                }),
            ),
            // Same issue date as the second: the later write first.
            item(5, RecordBody::SpectacleRx(spectacles("2026-03-01"))),
        ];
        let (s, c) = prescriptions_of(&items);
        let seqs: Vec<u64> = s.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, [5, 2, 1]);
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn status_changes_keep_everything_else() {
        let rx = Rx::Spectacle(spectacles("2026-01-01"));
        let RecordBody::SpectacleRx(changed) = rx.with_status(RxStatus::Cancelled) else {
            panic!("kind kept");
        };
        assert_eq!(changed.status, RxStatus::Cancelled);
        assert_eq!(changed.od, spectacles("2026-01-01").od);
        assert!(!Rx::Spectacle(changed).printable());
    }
}

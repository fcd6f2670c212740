//! The exam form: history, visual acuity, refractions, keratometry, IOP and pachymetry, slit lamp
//! and fundus, cup/disc, dilation, diagnoses and plan, with the right and left eye side by side.
//!
//! What is typed is kept as text ([`FormValues`]) and turned into an [`Exam`] by [`check`] on
//! every change: a value that does not parse becomes a [`Problem`] beside its input, and the built
//! exam is checked with the shared `validate(today)` and `warnings()`, whose field names are
//! mapped back to the inputs by [`anchor_of`]. Errors show once a save was attempted (not while the
//! first value is still being typed); warnings show at once and never block a save. Refractions
//! typed in plus-cylinder form are saved transposed to minus cylinder.
//!
//! Only drafts are edited here: a signed exam is read-only (see `exams.rs`).

use std::ops::{Index, IndexMut};
use std::sync::Arc;

use leptos::ev::SubmitEvent;
use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::hooks::use_navigate;
use optovault_shared::chart::exam::normalize_icd10;
use optovault_shared::chart::{
    Centi, CupDisc, Diagnosis, Dilation, Diopters, Exam, ExamType, EyeRefraction, EyeSel, History,
    IopMethod, IopReading, KReading, Laterality, PerEye, Prism, PrismBase, Refraction,
    RefractionType, Side, StaffRef, VaCorrection, VaDistance, VaNotation, VaReading, VisualAcuity,
};
use optovault_shared::domain::{FieldError, RecordBody};
use uuid::Uuid;
use wasm_bindgen::JsCast;

use crate::pages::report_error;
use crate::records::save_item;
use crate::state::{use_app, Unlocked};

// ---------------------------------------------------------------------------------------------
// Values as typed
// ---------------------------------------------------------------------------------------------

/// Both eyes, indexable by [`Side`] (the shared `PerEye` has no `&mut` access by side, which the
/// form's bindings need).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Eyes<T> {
    pub od: T,
    pub os: T,
}

impl<T> Index<Side> for Eyes<T> {
    type Output = T;
    fn index(&self, side: Side) -> &T {
        match side {
            Side::Od => &self.od,
            Side::Os => &self.os,
        }
    }
}

impl<T> IndexMut<Side> for Eyes<T> {
    fn index_mut(&mut self, side: Side) -> &mut T {
        match side {
            Side::Od => &mut self.od,
            Side::Os => &mut self.os,
        }
    }
}

/// Right eye first, the order every chart uses.
pub const SIDES: [Side; 2] = [Side::Od, Side::Os];

/// How a plain number typed as visual acuity is read: decimal (`0.8`) or logMAR (`0.10`). A
/// fraction is always Snellen, a negative number always logMAR, and `logMAR` after the number
/// overrides this.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum VaNumbers {
    #[default]
    Decimal,
    LogMar,
}

/// One input of the visual acuity grid.
#[derive(Debug)]
pub struct VaCell {
    /// Element id (`va-od-entered` is the right eye's distance acuity with correction, the one
    /// measured at every visit).
    pub id: &'static str,
    pub eye: EyeSel,
    pub distance: VaDistance,
    pub correction: VaCorrection,
    /// Accessible name of the input.
    pub label: &'static str,
}

const fn cell(
    id: &'static str,
    eye: EyeSel,
    distance: VaDistance,
    correction: VaCorrection,
    label: &'static str,
) -> VaCell {
    VaCell {
        id,
        eye,
        distance,
        correction,
        label,
    }
}

use VaCorrection::{Cc, Pinhole, Sc};
use VaDistance::{Distance, Near};

/// The grid, row by row (OD, OS, OU), columns: distance sc, cc, pinhole, near sc, cc. Pinhole is
/// a distance test only, so near has no pinhole column.
#[rustfmt::skip]
pub static VA_CELLS: [VaCell; VA_CELL_COUNT] = [
    cell("va-od-dist-sc", EyeSel::Od, Distance, Sc, "OD distance sc"),
    cell("va-od-entered", EyeSel::Od, Distance, Cc, "OD distance cc"),
    cell("va-od-dist-ph", EyeSel::Od, Distance, Pinhole, "OD distance pinhole"),
    cell("va-od-near-sc", EyeSel::Od, Near, Sc, "OD near sc"),
    cell("va-od-near-cc", EyeSel::Od, Near, Cc, "OD near cc"),
    cell("va-os-dist-sc", EyeSel::Os, Distance, Sc, "OS distance sc"),
    cell("va-os-entered", EyeSel::Os, Distance, Cc, "OS distance cc"),
    cell("va-os-dist-ph", EyeSel::Os, Distance, Pinhole, "OS distance pinhole"),
    cell("va-os-near-sc", EyeSel::Os, Near, Sc, "OS near sc"),
    cell("va-os-near-cc", EyeSel::Os, Near, Cc, "OS near cc"),
    cell("va-ou-dist-sc", EyeSel::Ou, Distance, Sc, "OU distance sc"),
    cell("va-ou-entered", EyeSel::Ou, Distance, Cc, "OU distance cc"),
    cell("va-ou-dist-ph", EyeSel::Ou, Distance, Pinhole, "OU distance pinhole"),
    cell("va-ou-near-sc", EyeSel::Ou, Near, Sc, "OU near sc"),
    cell("va-ou-near-cc", EyeSel::Ou, Near, Cc, "OU near cc"),
];

/// Cells per row of the grid.
pub const VA_COLUMNS: usize = 5;
/// Cells of the grid: OD, OS and OU rows.
pub const VA_CELL_COUNT: usize = 3 * VA_COLUMNS;

/// One eye of a refraction, as typed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RxEye {
    pub sphere: String,
    pub cylinder: String,
    pub axis: String,
    pub add: String,
    /// Prism amount, Δ.
    pub prism: String,
    /// `up`, `down`, `in`, `out` or empty.
    pub base: String,
}

impl RxEye {
    fn is_empty(&self) -> bool {
        [
            &self.sphere,
            &self.cylinder,
            &self.axis,
            &self.add,
            &self.prism,
        ]
        .iter()
        .all(|s| s.trim().is_empty())
    }
}

/// One refraction block (manifest, auto, retinoscopy, cycloplegic).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RxBlock {
    /// Stable while rows above it come and go (inputs are keyed by it).
    pub key: u32,
    pub kind: RefractionType,
    /// Cylinders typed as plus cylinders: transposed to minus cylinder when saved.
    pub plus_cyl: bool,
    pub eyes: Eyes<RxEye>,
    pub notes: String,
}

/// Keratometry of one eye, as typed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KValues {
    pub k1: String,
    pub k1_axis: String,
    pub k2: String,
    pub k2_axis: String,
}

impl KValues {
    fn is_empty(&self) -> bool {
        [&self.k1, &self.k1_axis, &self.k2, &self.k2_axis]
            .iter()
            .all(|s| s.trim().is_empty())
    }
}

/// One diagnosis row, as typed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DxRow {
    pub key: u32,
    pub code: String,
    pub laterality: Laterality,
    pub description: String,
}

/// Everything the form holds, as typed.
#[derive(Clone, Debug, PartialEq)]
pub struct FormValues {
    pub exam_type: ExamType,
    pub date: String,
    pub history: History,
    pub va_numbers: VaNumbers,
    /// One text per [`VA_CELLS`] entry.
    pub va: [String; VA_CELL_COUNT],
    pub rx: Vec<RxBlock>,
    pub k: Eyes<KValues>,
    pub iop: Eyes<String>,
    pub iop_method: IopMethod,
    /// `HH:MM`, for both eyes' readings.
    pub iop_time: String,
    pub cct: Eyes<String>,
    pub slit_lamp: Eyes<String>,
    pub fundus: Eyes<String>,
    pub cup_disc: Eyes<String>,
    pub dilation_agent: String,
    pub dilation_time: String,
    pub dx: Vec<DxRow>,
    pub plan: String,
    /// Key of the next row added.
    pub next_key: u32,
}

impl FormValues {
    /// A blank exam dated `date`, IOP time `time`: one manifest refraction, one diagnosis row.
    pub fn new(date: &str, time: &str) -> FormValues {
        FormValues {
            exam_type: ExamType::Comprehensive,
            date: date.to_string(),
            history: History::default(),
            va_numbers: VaNumbers::Decimal,
            va: Default::default(),
            rx: vec![RxBlock {
                key: 0,
                kind: RefractionType::Manifest,
                ..Default::default()
            }],
            k: Eyes::default(),
            iop: Eyes::default(),
            iop_method: IopMethod::Goldmann,
            iop_time: time.to_string(),
            cct: Eyes::default(),
            slit_lamp: Eyes::default(),
            fundus: Eyes::default(),
            cup_disc: Eyes::default(),
            dilation_agent: String::new(),
            dilation_time: String::new(),
            dx: vec![DxRow {
                key: 1,
                ..Default::default()
            }],
            plan: String::new(),
            next_key: 2,
        }
    }

    /// The form of a saved draft. Refractions are shown as saved (minus cylinder). The form has
    /// one input per VA cell, one IOP per eye and one prism per eye: further entries of those are
    /// not shown (an exam written by this form never has them).
    pub fn from_exam(e: &Exam) -> FormValues {
        let mut v = FormValues::new(&e.date, "");
        v.exam_type = e.exam_type;
        v.history = e.history.clone();
        let logmar_only = e
            .visual_acuity
            .iter()
            .any(|a| a.notation == VaNotation::LogMar)
            && !e
                .visual_acuity
                .iter()
                .any(|a| a.notation == VaNotation::Decimal);
        v.va_numbers = if logmar_only {
            VaNumbers::LogMar
        } else {
            VaNumbers::Decimal
        };
        for a in &e.visual_acuity {
            let Some(i) = VA_CELLS.iter().position(|c| {
                c.eye == a.eye && c.distance == a.distance && c.correction == a.correction
            }) else {
                continue;
            };
            if let Some(slot) = v.va.get_mut(i).filter(|s| s.is_empty()) {
                // A logMAR entry read back with decimal numbers must say so.
                *slot = if a.notation == VaNotation::LogMar && !logmar_only {
                    format!("{} logMAR", a.entered)
                } else {
                    a.entered.clone()
                };
            }
        }
        v.rx = e
            .refractions
            .iter()
            .zip(0u32..)
            .map(|(r, key)| RxBlock {
                key,
                kind: r.refraction_type,
                plus_cyl: false,
                eyes: Eyes {
                    od: r.od.as_ref().map(rx_eye_text).unwrap_or_default(),
                    os: r.os.as_ref().map(rx_eye_text).unwrap_or_default(),
                },
                notes: r.notes.clone(),
            })
            .collect();
        if v.rx.is_empty() {
            v.rx.push(RxBlock::default());
        }
        for side in SIDES {
            if let Some(k) = e.keratometry.get(side) {
                v.k[side] = KValues {
                    k1: k_text(k.k1),
                    k1_axis: k.k1_axis.to_string(),
                    k2: k_text(k.k2),
                    k2_axis: k.k2_axis.to_string(),
                };
            }
            if let Some(r) = e.iop.iter().find(|r| r.eye == side) {
                v.iop[side] = r.mmhg.to_string();
            }
            v.cct[side] = e
                .cct_um
                .get(side)
                .map(|c| c.to_string())
                .unwrap_or_default();
            v.slit_lamp[side] = e.slit_lamp.get(side).clone();
            v.fundus[side] = e.fundus.get(side).clone();
            v.cup_disc[side] = e
                .cup_disc
                .get(side)
                .map(|c| c.to_string())
                .unwrap_or_default();
        }
        if let Some(r) = e.iop.first() {
            v.iop_method = r.method;
            v.iop_time = r.time.clone().unwrap_or_default();
        }
        if let Some(d) = &e.dilation {
            v.dilation_agent = d.agent.clone();
            v.dilation_time = d.time.clone();
        }
        let first_dx = v.rx.len() as u32;
        v.dx = e
            .diagnoses
            .iter()
            .zip(first_dx..)
            .map(|(d, key)| DxRow {
                key,
                code: d.code.clone(),
                laterality: d.laterality,
                description: d.description.clone(),
            })
            .collect();
        if v.dx.is_empty() {
            v.dx.push(DxRow {
                key: first_dx,
                ..Default::default()
            });
        }
        v.next_key = first_dx + v.dx.len() as u32 + 1;
        v.plan = e.plan.clone();
        v
    }

    fn take_key(&mut self) -> u32 {
        let k = self.next_key;
        self.next_key = self.next_key.saturating_add(1);
        k
    }

    /// Adds an empty refraction block of `kind`.
    pub fn add_rx(&mut self, kind: RefractionType) {
        let key = self.take_key();
        self.rx.push(RxBlock {
            key,
            kind,
            ..Default::default()
        });
    }

    /// Removes a refraction block; the last one left stays (cleared instead).
    pub fn remove_rx(&mut self, key: u32) {
        if self.rx.len() > 1 {
            self.rx.retain(|b| b.key != key);
        } else if let Some(b) = self.rx.first_mut() {
            *b = RxBlock {
                key: b.key,
                kind: b.kind,
                ..Default::default()
            };
        }
    }

    pub fn add_dx(&mut self) {
        let key = self.take_key();
        self.dx.push(DxRow {
            key,
            ..Default::default()
        });
    }

    /// Removes a diagnosis row; the last one left is cleared instead, so there is always a row
    /// to type into.
    pub fn remove_dx(&mut self, key: u32) {
        if self.dx.len() > 1 {
            self.dx.retain(|d| d.key != key);
        } else if let Some(d) = self.dx.first_mut() {
            *d = DxRow {
                key: d.key,
                ..Default::default()
            };
        }
    }
}

fn rx_eye_text(e: &EyeRefraction) -> RxEye {
    let prism = e.prism.first();
    RxEye {
        sphere: e.sphere.to_string(),
        cylinder: if e.cylinder.is_zero() {
            String::new()
        } else {
            e.cylinder.to_string()
        },
        axis: e.axis.map(|a| a.to_string()).unwrap_or_default(),
        add: e.add.map(|a| a.to_string()).unwrap_or_default(),
        prism: prism.map(|p| p.amount.to_string()).unwrap_or_default(),
        base: prism
            .map(|p| p.base.as_str().to_string())
            .unwrap_or_default(),
    }
}

/// A corneal power as typed: `43.25` (no plus sign, unlike a lens power).
fn k_text(d: Diopters) -> String {
    let h = d.hundredths();
    let sign = if h < 0 { "-" } else { "" };
    format!(
        "{sign}{}.{:02}",
        h.unsigned_abs() / 100,
        h.unsigned_abs() % 100
    )
}

/// Element id of an input of the refraction block at `position`: `rx-od-sphere` for the first
/// block, `rx1-od-sphere` for the second, ...
pub fn rx_id(position: usize, what: &str) -> String {
    if position == 0 {
        format!("rx-{what}")
    } else {
        format!("rx{position}-{what}")
    }
}

/// Element id of an input of the diagnosis row at `position`: `dx-code-0`, `dx-laterality-0`.
pub fn dx_id(position: usize, what: &str) -> String {
    format!("dx-{what}-{position}")
}

// ---------------------------------------------------------------------------------------------
// Visual acuity as typed
// ---------------------------------------------------------------------------------------------

/// The notation of a typed acuity and the text to parse in it (see [`VaNumbers`]).
pub fn infer_va(text: &str, numbers: VaNumbers) -> (VaNotation, String) {
    let t = text.trim();
    // `0.10 logMAR`: the suffix is ASCII, so the byte offset is a char boundary.
    if t.to_ascii_lowercase().ends_with("logmar") {
        let number = t.get(..t.len() - "logmar".len()).unwrap_or_default();
        return (VaNotation::LogMar, number.trim().to_string());
    }
    if let Some((numerator, _)) = t.split_once('/') {
        // 6/6, 3/60 (metres) against 20/20, 10/10 (feet): only the test distance tells them
        // apart; both give the same logMAR.
        let metres = numerator
            .trim()
            .parse::<f64>()
            .is_ok_and(|n| n > 0.0 && n < 10.0);
        let notation = if metres {
            VaNotation::SnellenMetres
        } else {
            VaNotation::SnellenFeet
        };
        return (notation, t.to_string());
    }
    // Decimal acuity is never negative.
    if t.starts_with('-') || t.starts_with('\u{2212}') || numbers == VaNumbers::LogMar {
        return (VaNotation::LogMar, t.to_string());
    }
    (VaNotation::Decimal, t.to_string())
}

/// The acuity typed in `cell`, if anything is typed: parsed, normalised and checked as the shared
/// rules check a saved one.
pub fn parse_va(
    cell: &VaCell,
    text: &str,
    numbers: VaNumbers,
) -> Option<Result<VisualAcuity, String>> {
    if text.trim().is_empty() {
        return None;
    }
    let (notation, t) = infer_va(text, numbers);
    Some(
        VisualAcuity::new(cell.eye, cell.distance, cell.correction, notation, &t).and_then(|va| {
            match va.validate() {
                Ok(()) => Ok(va),
                Err(errs) => Err(join(errs.iter().map(|e| e.message.as_str()))),
            }
        }),
    )
}

/// What shows beside a VA input while typing: its logMAR value, or why it does not parse.
pub fn va_readout(cell: &VaCell, text: &str, numbers: VaNumbers) -> Option<Result<String, String>> {
    parse_va(cell, text, numbers).map(|r| {
        r.map(|va| match va.reading() {
            Some(VaReading::LowVision(lv)) => {
                format!("≈ logMAR {} ({})", va.logmar.logmar_string(), lv.label())
            }
            _ => format!("logMAR {}", va.logmar.logmar_string()),
        })
    })
}

fn join<'a>(parts: impl Iterator<Item = &'a str>) -> String {
    parts.collect::<Vec<_>>().join(" ")
}

// ---------------------------------------------------------------------------------------------
// From values to an exam, and problems back to inputs
// ---------------------------------------------------------------------------------------------

/// An error or warning, and the element id of the input it belongs to (`None`: the form as a
/// whole).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub anchor: Option<String>,
    pub message: String,
}

impl Problem {
    fn at(anchor: impl Into<String>, message: impl Into<String>) -> Problem {
        Problem {
            anchor: Some(anchor.into()),
            message: message.into(),
        }
    }
}

/// Where each list entry of the built exam came from, to put the shared errors about "the 2nd
/// refraction" next to the right inputs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Layout {
    /// Per visual acuity entry: its index in [`VA_CELLS`].
    pub va: Vec<usize>,
    /// Per refraction: the position of its block in the form.
    pub rx: Vec<usize>,
    /// Per IOP reading: its eye.
    pub iop: Vec<Side>,
    /// Per diagnosis: the position of its row in the form.
    pub dx: Vec<usize>,
}

/// The exam as typed (plus cylinders not yet transposed), where its entries came from, and what
/// did not parse. A value that does not parse is left out or replaced by a harmless one (an
/// unreadable sphere by plano), so the shared checks do not report it a second time; such an
/// exam is never saved, since a parse problem is an error.
#[derive(Clone, Debug, PartialEq)]
pub struct Built {
    pub exam: Exam,
    pub layout: Layout,
    pub problems: Vec<Problem>,
}

/// Parses an optional value: empty gives `None`, else `parse`'s answer, with a problem at
/// `anchor` when it fails.
fn opt<T>(
    text: &str,
    anchor: &str,
    problems: &mut Vec<Problem>,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Option<T> {
    let t = text.trim();
    if t.is_empty() {
        return None;
    }
    match parse(t) {
        Ok(v) => Some(v),
        Err(m) => {
            problems.push(Problem::at(anchor, m));
            None
        }
    }
}

fn whole(t: &str, what: &str) -> Result<u16, String> {
    t.parse::<u16>()
        .map_err(|_| format!("{what} must be a whole number."))
}

fn parse_axis(t: &str) -> Result<u16, String> {
    t.trim_end_matches('°')
        .trim()
        .parse::<u16>()
        .map_err(|_| "Axis must be a whole number from 1 to 180.".to_string())
}

fn trimmed(s: &str) -> String {
    s.trim().to_string()
}

fn build_eye(
    v: &RxEye,
    id: &dyn Fn(&str) -> String,
    problems: &mut Vec<Problem>,
) -> Option<EyeRefraction> {
    if v.is_empty() {
        return None;
    }
    let sphere = if v.sphere.trim().is_empty() {
        problems.push(Problem::at(
            id("sphere"),
            "Sphere is required; write plano for 0.00.",
        ));
        None
    } else {
        opt(&v.sphere, &id("sphere"), problems, Diopters::parse)
    };
    let cylinder = opt(&v.cylinder, &id("cylinder"), problems, Diopters::parse);
    let axis_typed = !v.axis.trim().is_empty();
    let axis = opt(&v.axis, &id("axis"), problems, parse_axis);
    let add = opt(&v.add, &id("add"), problems, Diopters::parse);
    let amount = opt(&v.prism, &id("prism"), problems, Centi::parse);
    let mut prism = Vec::new();
    if let Some(amount) = amount {
        match PrismBase::parse(v.base.trim()) {
            Some(base) => prism.push(Prism { amount, base }),
            None => problems.push(Problem::at(id("base"), "Choose the prism base.")),
        }
    }
    Some(
        EyeRefraction {
            sphere: sphere.unwrap_or(Diopters::ZERO),
            cylinder: cylinder.unwrap_or(Diopters::ZERO),
            // An unreadable axis is already reported: stand in a valid one.
            axis: if axis_typed && axis.is_none() {
                Some(180)
            } else {
                axis
            },
            add,
            prism,
        }
        .normalized(),
    )
}

fn build_k(v: &KValues, side: Side, problems: &mut Vec<Problem>) -> Option<KReading> {
    if v.is_empty() {
        return None;
    }
    let anchor = format!("k-{}", side.as_str());
    let mut missing = false;
    let mut power = |t: &str, p: &mut Vec<Problem>| {
        missing |= t.trim().is_empty();
        opt(t, &anchor, p, Diopters::parse)
    };
    let k1 = power(&v.k1, problems);
    let k2 = power(&v.k2, problems);
    let mut axis = |t: &str, p: &mut Vec<Problem>| {
        missing |= t.trim().is_empty();
        opt(t, &anchor, p, parse_axis)
    };
    let k1_axis = axis(&v.k1_axis, problems);
    let k2_axis = axis(&v.k2_axis, problems);
    if missing {
        problems.push(Problem::at(
            &anchor,
            "Enter K1 and K2 with their axes, or leave all four empty.",
        ));
    }
    Some(KReading {
        k1: k1?,
        k1_axis: k1_axis?,
        k2: k2?,
        k2_axis: k2_axis?,
    })
}

/// Builds the exam from what is typed; `provider` is the examining clinician.
pub fn build(v: &FormValues, provider: Option<StaffRef>) -> Built {
    let mut problems = Vec::new();
    let mut layout = Layout::default();
    let mut exam = Exam {
        exam_type: v.exam_type,
        provider,
        date: trimmed(&v.date),
        history: History {
            chief_complaint: trimmed(&v.history.chief_complaint),
            ocular_history: trimmed(&v.history.ocular_history),
            medical_history: trimmed(&v.history.medical_history),
            medications: trimmed(&v.history.medications),
            allergies: trimmed(&v.history.allergies),
        },
        plan: trimmed(&v.plan),
        ..Default::default()
    };
    for (i, (c, text)) in VA_CELLS.iter().zip(&v.va).enumerate() {
        match parse_va(c, text, v.va_numbers) {
            None => {}
            Some(Ok(va)) => {
                exam.visual_acuity.push(va);
                layout.va.push(i);
            }
            Some(Err(m)) => problems.push(Problem::at(c.id, m)),
        }
    }
    for (position, b) in v.rx.iter().enumerate() {
        let od = build_eye(
            &b.eyes.od,
            &|w| rx_id(position, &format!("od-{w}")),
            &mut problems,
        );
        let os = build_eye(
            &b.eyes.os,
            &|w| rx_id(position, &format!("os-{w}")),
            &mut problems,
        );
        let notes = trimmed(&b.notes);
        // An untouched block is not a refraction.
        if od.is_none() && os.is_none() && notes.is_empty() {
            continue;
        }
        exam.refractions.push(Refraction {
            refraction_type: b.kind,
            od,
            os,
            notes,
        });
        layout.rx.push(position);
    }
    let mut k = PerEye::<Option<KReading>>::default();
    let mut cct = PerEye::<Option<u16>>::default();
    let mut cup_disc = PerEye::<Option<CupDisc>>::default();
    for side in SIDES {
        let s = side.as_str();
        let kr = build_k(&v.k[side], side, &mut problems);
        let c = opt(&v.cct[side], &format!("cct-{s}"), &mut problems, |t| {
            whole(t, "Central corneal thickness (µm)")
        });
        let cd = opt(
            &v.cup_disc[side],
            &format!("cd-{s}"),
            &mut problems,
            CupDisc::parse,
        );
        match side {
            Side::Od => (k.od, cct.od, cup_disc.od) = (kr, c, cd),
            Side::Os => (k.os, cct.os, cup_disc.os) = (kr, c, cd),
        }
        let mmhg = opt(&v.iop[side], &format!("iop-{s}"), &mut problems, |t| {
            whole(t, "IOP (mmHg)")
        });
        if let Some(mmhg) = mmhg {
            let time = trimmed(&v.iop_time);
            exam.iop.push(IopReading {
                eye: side,
                mmhg,
                method: v.iop_method,
                time: (!time.is_empty()).then_some(time),
            });
            layout.iop.push(side);
        }
    }
    exam.keratometry = k;
    exam.cct_um = cct;
    exam.cup_disc = cup_disc;
    exam.slit_lamp = PerEye {
        od: trimmed(&v.slit_lamp.od),
        os: trimmed(&v.slit_lamp.os),
    };
    exam.fundus = PerEye {
        od: trimmed(&v.fundus.od),
        os: trimmed(&v.fundus.os),
    };
    let (agent, time) = (trimmed(&v.dilation_agent), trimmed(&v.dilation_time));
    if !agent.is_empty() || !time.is_empty() {
        exam.dilation = Some(Dilation { agent, time });
    }
    for (position, d) in v.dx.iter().enumerate() {
        let code = normalize_icd10(&d.code);
        let description = trimmed(&d.description);
        if code.is_empty() && description.is_empty() {
            continue;
        }
        exam.diagnoses.push(Diagnosis {
            code,
            description,
            laterality: d.laterality,
        });
        layout.dx.push(position);
    }
    Built {
        exam,
        layout,
        problems,
    }
}

/// The number `n` (1-based) of "Refraction n (...): ..." as a 0-based index.
fn entry(message: &str, prefix: &str) -> Option<usize> {
    let rest = message.strip_prefix(prefix)?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse::<usize>().ok()?.checked_sub(1)
}

/// The element id of the input a shared validation error is about; `None` for what has no
/// input (the provider, the signature) or a field this form does not know.
pub fn anchor_of(e: &FieldError, layout: &Layout) -> Option<String> {
    let fixed = match e.field {
        "date" => Some("exam-date"),
        "history.chief_complaint" => Some("exam-chief-complaint"),
        "history.ocular_history" => Some("exam-ocular-history"),
        "history.medical_history" => Some("exam-medical-history"),
        "history.medications" => Some("exam-medications"),
        "history.allergies" => Some("exam-allergies"),
        "keratometry.od" => Some("k-od"),
        "keratometry.os" => Some("k-os"),
        "iop.time" => Some("iop-time"),
        "cct_um.od" => Some("cct-od"),
        "cct_um.os" => Some("cct-os"),
        "slit_lamp.od" => Some("slit-od"),
        "slit_lamp.os" => Some("slit-os"),
        "fundus.od" => Some("fundus-od"),
        "fundus.os" => Some("fundus-os"),
        "cup_disc.od" => Some("cd-od"),
        "cup_disc.os" => Some("cd-os"),
        "dilation.agent" => Some("dilation-agent"),
        "dilation.time" => Some("dilation-time"),
        "plan" => Some("exam-plan"),
        _ => None,
    };
    if let Some(id) = fixed {
        return Some(id.to_string());
    }
    let msg = e.message.as_str();
    match e.field {
        "visual_acuity" => {
            let cell = layout.va.get(entry(msg, "Visual acuity ")?)?;
            VA_CELLS.get(*cell).map(|c| c.id.to_string())
        }
        "iop.mmhg" => {
            let side = layout.iop.get(entry(msg, "IOP ")?)?;
            Some(format!("iop-{}", side.as_str()))
        }
        "diagnoses.code" | "diagnoses.description" => {
            let position = *layout.dx.get(entry(msg, "Diagnosis ")?)?;
            let what = if e.field == "diagnoses.code" {
                "code"
            } else {
                "desc"
            };
            Some(dx_id(position, what))
        }
        f if f == "refractions" || f.starts_with("refractions.") => {
            let position = *layout.rx.get(entry(msg, "Refraction ")?)?;
            let what = f
                .strip_prefix("refractions.")
                .map_or_else(|| "block".to_string(), |w| w.replace('.', "-"));
            Some(rx_id(position, &what))
        }
        _ => None,
    }
}

/// The exam to save (plus cylinders transposed) and everything wrong or unusual in it.
#[derive(Clone, Debug, PartialEq)]
pub struct Checked {
    pub exam: Exam,
    pub errors: Vec<Problem>,
    pub warnings: Vec<Problem>,
}

fn push_unique(list: &mut Vec<Problem>, p: Problem) {
    if !list.contains(&p) {
        list.push(p);
    }
}

/// Parses, transposes and validates the form; `today` is `YYYY-MM-DD`.
pub fn check(v: &FormValues, provider: Option<StaffRef>, today: &str) -> Checked {
    let built = build(v, provider);
    let mut saved = built.exam.clone();
    let mut warnings = Vec::new();
    for (r, position) in saved.refractions.iter_mut().zip(&built.layout.rx) {
        if !v.rx.get(*position).is_some_and(|b| b.plus_cyl) {
            continue;
        }
        for (side, eye) in [(Side::Od, &mut r.od), (Side::Os, &mut r.os)] {
            let Some(e) = eye.as_mut() else { continue };
            if e.cylinder.hundredths() < 0 {
                warnings.push(Problem::at(
                    rx_id(*position, &format!("{}-cylinder", side.as_str())),
                    "Minus cylinder typed with plus-cylinder entry ticked: saved as typed.",
                ));
            }
            *e = e.to_minus_cylinder();
        }
    }
    let mut errors = built.problems;
    // The form as typed (errors name what the clinician wrote, e.g. a plus cylinder's axis 0)
    // and as it will be saved (a sphere pushed out of range by the transposition).
    for exam in [&built.exam, &saved] {
        for e in exam.validate(today).err().unwrap_or_default() {
            let anchor = anchor_of(&e, &built.layout);
            push_unique(
                &mut errors,
                Problem {
                    anchor,
                    message: e.message,
                },
            );
        }
        for w in exam.warnings() {
            let anchor = anchor_of(&w, &built.layout);
            push_unique(
                &mut warnings,
                Problem {
                    anchor,
                    message: w.message,
                },
            );
        }
    }
    Checked {
        exam: saved,
        errors,
        warnings,
    }
}

// ---------------------------------------------------------------------------------------------
// Labels
// ---------------------------------------------------------------------------------------------

pub fn exam_type_value(t: ExamType) -> &'static str {
    match t {
        ExamType::Comprehensive => "comprehensive",
        ExamType::ContactLens => "contact_lens",
        ExamType::Medical => "medical",
        ExamType::FollowUp => "follow_up",
    }
}

pub const RX_TYPES: [RefractionType; 4] = [
    RefractionType::Manifest,
    RefractionType::Auto,
    RefractionType::Retinoscopy,
    RefractionType::Cycloplegic,
];

pub fn rx_type_value(t: RefractionType) -> &'static str {
    match t {
        RefractionType::Auto => "auto",
        RefractionType::Retinoscopy => "retinoscopy",
        RefractionType::Manifest => "manifest",
        RefractionType::Cycloplegic => "cycloplegic",
    }
}

/// `Manifest`, `Autorefraction`, ...
pub fn rx_type_title(t: RefractionType) -> String {
    let l = t.label();
    let mut c = l.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

pub const IOP_METHODS: [IopMethod; 4] = [
    IopMethod::Goldmann,
    IopMethod::NonContact,
    IopMethod::Rebound,
    IopMethod::TonoPen,
];

pub fn iop_method_value(m: IopMethod) -> &'static str {
    match m {
        IopMethod::Goldmann => "goldmann",
        IopMethod::NonContact => "non_contact",
        IopMethod::Rebound => "rebound",
        IopMethod::TonoPen => "tono_pen",
    }
}

/// The short name used on the form and in lists.
pub fn iop_method_short(m: IopMethod) -> &'static str {
    match m {
        IopMethod::Goldmann => "Goldmann",
        IopMethod::NonContact => "Non-contact",
        IopMethod::Rebound => "Rebound",
        IopMethod::TonoPen => "Tono-Pen",
    }
}

pub const LATERALITIES: [Laterality; 4] = [
    Laterality::Right,
    Laterality::Left,
    Laterality::Both,
    Laterality::NotApplicable,
];

pub fn laterality_value(l: Laterality) -> &'static str {
    match l {
        Laterality::Right => "right",
        Laterality::Left => "left",
        Laterality::Both => "both",
        Laterality::NotApplicable => "na",
    }
}

pub fn laterality_label(l: Laterality) -> &'static str {
    match l {
        Laterality::Right => "Right eye (OD)",
        Laterality::Left => "Left eye (OS)",
        Laterality::Both => "Both eyes (OU)",
        Laterality::NotApplicable => "Not applicable",
    }
}

// ---------------------------------------------------------------------------------------------
// Clock (browser only)
// ---------------------------------------------------------------------------------------------

/// The browser's local time now, `YYYY-MM-DDTHH:MM` (signatures and amendments).
pub fn now_datetime() -> String {
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

/// The browser's local time of day now, `HH:MM` (the IOP time's default).
pub fn now_time() -> String {
    let d = js_sys::Date::new_0();
    format!("{:02}:{:02}", d.get_hours(), d.get_minutes())
}

// ---------------------------------------------------------------------------------------------
// The component
// ---------------------------------------------------------------------------------------------

/// Reads and writes one value of the form.
#[derive(Clone)]
struct Bind<T> {
    form: RwSignal<FormValues>,
    get: Arc<dyn Fn(&FormValues) -> T + Send + Sync>,
    set: Arc<dyn Fn(&mut FormValues, T) + Send + Sync>,
}

impl<T: 'static> Bind<T> {
    fn get(&self) -> T {
        self.form.with(|f| (self.get)(f))
    }
    fn set(&self, v: T) {
        self.form.update(|f| (self.set)(f, v));
    }
}

/// `bind!(form, |f| f.history.plan)`: a [`Bind`] of a place in the form's values.
macro_rules! bind {
    ($form:expr, |$f:ident| $place:expr) => {
        Bind {
            form: $form,
            get: Arc::new(move |$f: &FormValues| $place.clone()),
            set: Arc::new(move |$f: &mut FormValues, v| $place = v),
        }
    };
}

/// `bind_row!(form, rx[key], |b| b.notes)`: a [`Bind`] of a place in the row with `key` of a
/// list (rows are found by key, so a removed row is simply not there any more).
macro_rules! bind_row {
    ($form:expr, $list:ident[$key:expr], |$r:ident| $place:expr) => {
        Bind {
            form: $form,
            get: Arc::new(move |f: &FormValues| {
                f.$list
                    .iter()
                    .find(|x| x.key == $key)
                    .map(|$r| $place.clone())
                    .unwrap_or_default()
            }),
            set: Arc::new(move |f: &mut FormValues, v| {
                if let Some($r) = f.$list.iter_mut().find(|x| x.key == $key) {
                    $place = v;
                }
            }),
        }
    };
}

/// The form's errors (once a save was attempted) and warnings, shown beside their inputs.
#[derive(Clone, Copy)]
struct Notes {
    errors: Signal<Vec<Problem>>,
    warnings: Signal<Vec<Problem>>,
}

fn messages_at(list: &[Problem], anchor: &str) -> Option<String> {
    let found: Vec<&str> = list
        .iter()
        .filter(|p| p.anchor.as_deref() == Some(anchor))
        .map(|p| p.message.as_str())
        .collect();
    (!found.is_empty()).then(|| found.join(" "))
}

impl Notes {
    fn invalid(&self, anchor: &str) -> bool {
        self.errors
            .with(|e| e.iter().any(|p| p.anchor.as_deref() == Some(anchor)))
    }
    /// `aria-describedby` of an input: its error and warning, when shown.
    fn described_by(&self, anchor: &str) -> Option<String> {
        let mut ids = Vec::new();
        if self.invalid(anchor) {
            ids.push(format!("{anchor}-error"));
        }
        if self
            .warnings
            .with(|w| w.iter().any(|p| p.anchor.as_deref() == Some(anchor)))
        {
            ids.push(format!("{anchor}-warning"));
        }
        (!ids.is_empty()).then(|| ids.join(" "))
    }
}

/// The error and warning of one input (or one group of inputs), if any.
#[component]
fn FieldNotes(#[prop(into)] anchor: Signal<String>, notes: Notes) -> impl IntoView {
    view! {
        {move || {
            let id = anchor.get();
            notes.errors.with(|e| messages_at(e, &id)).map(|m| {
                view! { <p class="field-error" id=format!("{id}-error")>{m}</p> }
            })
        }}
        {move || {
            let id = anchor.get();
            notes.warnings.with(|w| messages_at(w, &id)).map(|m| {
                view! { <p class="field-warning" id=format!("{id}-warning")>{m}</p> }
            })
        }}
    }
}

/// A one-line input bound to the form, with its notes under it. `label`: its accessible name
/// when no `<label>` names it (inputs in a table).
#[component]
fn TextIn(
    bind: Bind<String>,
    #[prop(into)] id: Signal<String>,
    notes: Notes,
    #[prop(optional, into)] label: Option<Signal<String>>,
    #[prop(default = "text")] kind: &'static str,
    #[prop(optional)] inputmode: Option<&'static str>,
    #[prop(optional)] placeholder: Option<&'static str>,
    #[prop(optional)] maxlength: Option<u32>,
) -> impl IntoView {
    let read = bind.clone();
    view! {
        <input
            id=move || id.get()
            type=kind
            inputmode=inputmode
            placeholder=placeholder
            autocomplete="off"
            maxlength=maxlength.map(|m| m.to_string())
            aria-label=move || label.map(|l| l.get())
            aria-invalid=move || notes.invalid(&id.get()).then_some("true")
            aria-describedby=move || notes.described_by(&id.get())
            prop:value=move || read.get()
            on:input=move |ev| bind.set(event_target_value(&ev))
        />
        <FieldNotes anchor=id notes=notes />
    }
}

/// A textarea bound to the form, with its notes under it.
#[component]
fn TextBox(
    bind: Bind<String>,
    #[prop(into)] id: Signal<String>,
    notes: Notes,
    #[prop(optional, into)] label: Option<Signal<String>>,
    #[prop(default = 2)] rows: u32,
) -> impl IntoView {
    let read = bind.clone();
    view! {
        <textarea
            id=move || id.get()
            rows=rows.to_string()
            maxlength="4000"
            aria-label=move || label.map(|l| l.get())
            aria-invalid=move || notes.invalid(&id.get()).then_some("true")
            aria-describedby=move || notes.described_by(&id.get())
            prop:value=move || read.get()
            on:input=move |ev| bind.set(event_target_value(&ev))
        ></textarea>
        <FieldNotes anchor=id notes=notes />
    }
}

/// A labelled field holding one input.
#[component]
fn Labelled(
    #[prop(into)] id: String,
    label: &'static str,
    #[prop(optional)] class: &'static str,
    children: Children,
) -> impl IntoView {
    view! {
        <div class=format!("field {class}")>
            <label for=id>{label}</label>
            {children()}
        </div>
    }
}

/// Moves keyboard focus to the first input marked invalid, once the marks are drawn.
fn focus_first_invalid() {
    spawn_local(async {
        crate::util::sleep(0).await;
        let el = web_sys::window()
            .and_then(|w| w.document())
            .and_then(|d| {
                d.query_selector("#exam-form [aria-invalid='true']")
                    .ok()
                    .flatten()
            })
            .and_then(|e| e.dyn_into::<web_sys::HtmlElement>().ok());
        if let Some(el) = el {
            let _ = el.focus();
        }
    });
}

/// The exam form, for a new exam or a draft.
#[component]
pub fn ExamForm(
    me: Arc<Unlocked>,
    clinic_id: Uuid,
    chart_id: Uuid,
    /// The draft to edit (record id, version, exam); `None` for a new exam.
    draft: Option<(Uuid, u64, Exam)>,
    /// Called when the form is done: with the exam's record id after a save, `None` on cancel.
    on_close: Callback<Option<Uuid>>,
) -> impl IntoView {
    let app = use_app();
    let navigate = use_navigate();
    let today = crate::util::today();
    let is_new = draft.is_none();
    // A new exam's id is chosen once, so a retried save writes the same record.
    let record_id = draft.as_ref().map_or_else(Uuid::new_v4, |d| d.0);
    let version = RwSignal::new(draft.as_ref().map_or(0, |d| d.1));
    // A draft keeps its provider; a new exam is mine.
    let provider = draft
        .as_ref()
        .and_then(|d| d.2.provider.clone())
        .unwrap_or_else(|| StaffRef {
            account_id: me.account_id,
            name: me.username.clone(),
        });
    let provider_name = provider.name.clone();
    let mut initial = match &draft {
        Some((_, _, exam)) => FormValues::from_exam(exam),
        None => FormValues::new(&today, &now_time()),
    };
    // A draft saved without IOP gets the time of now too, should pressures be added.
    if initial.iop_time.is_empty() {
        initial.iop_time = now_time();
    }
    let values = RwSignal::new(initial);
    let attempted = RwSignal::new(false);
    let saving = RwSignal::new(false);
    let form_error = RwSignal::new(None::<String>);

    let checked = Memo::new(move |_| values.with(|v| check(v, Some(provider.clone()), &today)));
    let notes = Notes {
        errors: Signal::derive(move || {
            if attempted.get() {
                checked.with(|c| c.errors.clone())
            } else {
                Vec::new()
            }
        }),
        warnings: Signal::derive(move || checked.with(|c| c.warnings.clone())),
    };

    let on_submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        if saving.get_untracked() {
            return;
        }
        let c = checked.get_untracked();
        if !c.errors.is_empty() {
            attempted.set(true);
            form_error.set(None);
            focus_first_invalid();
            return;
        }
        saving.set(true);
        form_error.set(None);
        let (me, navigate) = (me.clone(), navigate.clone());
        spawn_local(async move {
            let expected = version.get_untracked();
            let body = RecordBody::Exam(c.exam);
            match save_item(app, me, clinic_id, chart_id, record_id, expected, body).await {
                Ok(v) => {
                    version.set(v);
                    saving.set(false);
                    let _ = on_close.try_run(Some(record_id));
                }
                Err(e) => {
                    if e.code == "version_conflict" {
                        reload_latest(
                            app, clinic_id, chart_id, record_id, values, version, on_close,
                        );
                    }
                    saving.set(false);
                    report_error(app, &navigate, form_error, e);
                }
            }
        });
    };

    let f = values;
    let error_count = move || notes.errors.with(Vec::len);
    let general_errors = move || {
        notes.errors.with(|e| {
            e.iter()
                .filter(|p| p.anchor.is_none())
                .cloned()
                .collect::<Vec<_>>()
        })
    };

    view! {
        <form id="exam-form" class="exam-form" on:submit=on_submit novalidate
            aria-labelledby="exam-form-title">
            <h3 id="exam-form-title">{if is_new { "New exam" } else { "Edit draft exam" }}</h3>
            <Show when=move || { error_count() > 0 }>
                <div id="exam-errors" class="error" role="alert">
                    <p>
                        {move || match error_count() {
                            1 => "Please correct the problem marked below.".to_string(),
                            n => format!("Please correct the {n} problems marked below."),
                        }}
                    </p>
                    <ul>
                        <For each=general_errors key=|p| p.message.clone() let:p>
                            <li>{p.message}</li>
                        </For>
                    </ul>
                </div>
            </Show>
            {move || form_error.get().map(|e| view! { <p id="exam-form-error" class="error" role="alert">{e}</p> })}

            <fieldset>
                <legend>"Exam"</legend>
                <div class="exam-grid">
                    <Labelled id="exam-type" label="Type">
                        <select id="exam-type"
                            on:change=move |ev| {
                                let v = event_target_value(&ev);
                                if let Some(t) = ExamType::ALL.into_iter().find(|t| exam_type_value(*t) == v) {
                                    f.update(|x| x.exam_type = t);
                                }
                            }>
                            {ExamType::ALL.into_iter().map(|t| view! {
                                <option value=exam_type_value(t)
                                    prop:selected=move || f.with(|x| x.exam_type == t)>{t.label()}</option>
                            }).collect_view()}
                        </select>
                    </Labelled>
                    <Labelled id="exam-date" label="Date">
                        <TextIn bind=bind!(f, |x| x.date) id="exam-date" notes=notes kind="date" />
                    </Labelled>
                    <div class="field">
                        <span class="label">"Provider"</span>
                        <span id="exam-provider" class="readonly-value">{provider_name}</span>
                    </div>
                </div>
            </fieldset>

            <fieldset>
                <legend>"History"</legend>
                <div class="exam-grid">
                    <Labelled id="exam-chief-complaint" label="Chief complaint" class="wide">
                        <TextBox bind=bind!(f, |x| x.history.chief_complaint) id="exam-chief-complaint" notes=notes />
                    </Labelled>
                    <Labelled id="exam-ocular-history" label="Ocular history">
                        <TextBox bind=bind!(f, |x| x.history.ocular_history) id="exam-ocular-history" notes=notes />
                    </Labelled>
                    <Labelled id="exam-medical-history" label="Medical history">
                        <TextBox bind=bind!(f, |x| x.history.medical_history) id="exam-medical-history" notes=notes />
                    </Labelled>
                    <Labelled id="exam-medications" label="Medications">
                        <TextBox bind=bind!(f, |x| x.history.medications) id="exam-medications" notes=notes />
                    </Labelled>
                    <Labelled id="exam-allergies" label="Allergies">
                        <TextBox bind=bind!(f, |x| x.history.allergies) id="exam-allergies" notes=notes />
                    </Labelled>
                </div>
            </fieldset>

            <VaSection form=f />
            <RefractionSection form=f notes=notes />
            <KeratometrySection form=f notes=notes />
            <PressureSection form=f notes=notes />
            <SegmentsSection form=f notes=notes />
            <DiagnosesSection form=f notes=notes />

            <fieldset>
                <legend>"Plan"</legend>
                <Labelled id="exam-plan" label="Plan" class="wide">
                    <TextBox bind=bind!(f, |x| x.plan) id="exam-plan" notes=notes rows=3 />
                </Labelled>
            </fieldset>

            <Show when=move || notes.warnings.with(|w| !w.is_empty())>
                <div id="exam-warnings" class="warning" role="status">
                    <p>"Please check (saving is still possible):"</p>
                    <ul>
                        <For each=move || notes.warnings.get() key=|p| (p.anchor.clone(), p.message.clone()) let:p>
                            <li>{p.message}</li>
                        </For>
                    </ul>
                </div>
            </Show>
            <div class="actions">
                <button id="exam-save" type="submit" class="button primary" disabled=move || saving.get()>
                    {move || if saving.get() { "Saving…" } else { "Save draft" }}
                </button>
                <button id="exam-cancel" type="button" class="button secondary"
                    disabled=move || saving.get()
                    on:click=move |_| on_close.run(None)>
                    "Cancel"
                </button>
            </div>
        </form>
    }
}

/// After a version conflict (the store was synced by `save_item`): the form takes the latest
/// version, or closes when the exam was signed meanwhile.
fn reload_latest(
    app: crate::state::AppState,
    clinic_id: Uuid,
    chart_id: Uuid,
    record_id: Uuid,
    values: RwSignal<FormValues>,
    version: RwSignal<u64>,
    on_close: Callback<Option<Uuid>>,
) {
    let store = app.store(clinic_id);
    let latest = store.with_untracked(|s| s.item(&chart_id, &record_id).cloned());
    if let Some(item) = latest {
        if let RecordBody::Exam(exam) = item.body {
            if exam.signed.is_some() {
                let _ = on_close.try_run(Some(record_id));
                return;
            }
            values.set(FormValues::from_exam(&exam));
            version.set(item.version);
        }
    }
}

/// Visual acuity: a grid of OD, OS, OU by distance/near and sc/cc/pinhole; each input shows its
/// logMAR value as it is typed, or why it does not parse.
#[component]
fn VaSection(form: RwSignal<FormValues>) -> impl IntoView {
    let f = form;
    let rows = [("OD", 0usize), ("OS", 1), ("OU", 2)];
    view! {
        <fieldset>
            <legend>"Visual acuity"</legend>
            <div class="field va-numbers">
                <label for="va-numbers">"Numbers without a slash are"</label>
                <select id="va-numbers"
                    on:change=move |ev| {
                        let n = if event_target_value(&ev) == "logmar" { VaNumbers::LogMar } else { VaNumbers::Decimal };
                        f.update(|x| x.va_numbers = n);
                    }>
                    <option value="decimal" prop:selected=move || f.with(|x| x.va_numbers == VaNumbers::Decimal)>
                        "decimal (1.0, 0.8)"
                    </option>
                    <option value="logmar" prop:selected=move || f.with(|x| x.va_numbers == VaNumbers::LogMar)>
                        "logMAR (0.00, 0.10)"
                    </option>
                </select>
                <p class="help">"Type 20/20, 6/6, 1.0, 0.10 logMAR, or CF, HM, LP, NLP."</p>
            </div>
            <div class="table-scroll">
                <table class="exam-table va-table">
                    <thead>
                        <tr>
                            <th scope="col"></th>
                            <th scope="col">"Distance sc"</th>
                            <th scope="col">"Distance cc"</th>
                            <th scope="col">"Distance pinhole"</th>
                            <th scope="col">"Near sc"</th>
                            <th scope="col">"Near cc"</th>
                        </tr>
                    </thead>
                    <tbody>
                        {rows.into_iter().map(|(eye, row)| view! {
                            <tr>
                                <th scope="row">{eye}</th>
                                {(0..VA_COLUMNS).map(|col| view! { <VaInput form=f index=row * VA_COLUMNS + col /> }).collect_view()}
                            </tr>
                        }).collect_view()}
                    </tbody>
                </table>
            </div>
        </fieldset>
    }
}

#[component]
fn VaInput(form: RwSignal<FormValues>, index: usize) -> impl IntoView {
    let Some(c) = VA_CELLS.get(index) else {
        return ().into_any();
    };
    let read = move || form.with(|x| x.va.get(index).cloned().unwrap_or_default());
    let readout =
        move || form.with(|x| va_readout(c, x.va.get(index).map_or("", |s| s), x.va_numbers));
    let invalid = move || readout().is_some_and(|r| r.is_err());
    view! {
        <td>
            <input id=c.id type="text" autocomplete="off" maxlength="40" class="va-input"
                aria-label=c.label
                aria-invalid=move || invalid().then_some("true")
                aria-describedby=format!("{}-logmar", c.id)
                prop:value=read
                on:input=move |ev| {
                    let v = event_target_value(&ev);
                    form.update(|x| {
                        if let Some(s) = x.va.get_mut(index) {
                            *s = v;
                        }
                    });
                } />
            <span id=format!("{}-logmar", c.id)
                class=move || if invalid() { "va-norm field-error" } else { "va-norm" }>
                {move || match readout() {
                    None => String::new(),
                    Some(Ok(s)) | Some(Err(s)) => s,
                }}
            </span>
        </td>
    }
    .into_any()
}

/// Refraction blocks: the manifest first, then any autorefraction, retinoscopy or cycloplegic
/// refraction added.
#[component]
fn RefractionSection(form: RwSignal<FormValues>, notes: Notes) -> impl IntoView {
    let f = form;
    let add_kind = RwSignal::new(RefractionType::Auto);
    view! {
        <fieldset>
            <legend>"Refraction"</legend>
            <ForEnumerate each=move || f.with(|x| x.rx.iter().map(|b| b.key).collect::<Vec<_>>())
                key=|k| *k
                children=move |index, key| view! { <RxBlockView form=f key=key index=index notes=notes /> } />
            <div class="refraction-add">
                <label for="rx-add-type">"Add a refraction"</label>
                <select id="rx-add-type"
                    on:change=move |ev| {
                        let v = event_target_value(&ev);
                        if let Some(t) = RX_TYPES.into_iter().find(|t| rx_type_value(*t) == v) {
                            add_kind.set(t);
                        }
                    }>
                    {RX_TYPES.into_iter().map(|t| view! {
                        <option value=rx_type_value(t) prop:selected=move || add_kind.get() == t>{rx_type_title(t)}</option>
                    }).collect_view()}
                </select>
                <button id="rx-add" type="button" class="button secondary"
                    on:click=move |_| f.update(|x| x.add_rx(add_kind.get_untracked()))>
                    "Add"
                </button>
            </div>
        </fieldset>
    }
}

#[component]
fn RxBlockView(
    form: RwSignal<FormValues>,
    key: u32,
    index: ReadSignal<usize>,
    notes: Notes,
) -> impl IntoView {
    let f = form;
    let id = move |what: String| Signal::derive(move || rx_id(index.get(), &what));
    let kind = bind_row!(f, rx[key], |b| b.kind);
    let (kind_read, kind_opts) = (kind.clone(), kind.clone());
    let plus = bind_row!(f, rx[key], |b| b.plus_cyl);
    let plus_read = plus.clone();
    let several = move || f.with(|x| x.rx.len() > 1);
    let title = move || rx_type_title(kind_read.get());
    let eye_row = move |side: Side| {
        let s = side.as_str();
        let name = s.to_uppercase();
        let input = move |what: &'static str,
                          unit: &'static str,
                          mode: &'static str,
                          bind: Bind<String>| {
            let label = format!("{} {what} ({unit})", s.to_uppercase());
            view! {
                <td><TextIn bind=bind id=id(format!("{s}-{what}")) notes=notes label=label inputmode=mode /></td>
            }
        };
        let base = bind_row!(f, rx[key], |b| b.eyes[side].base);
        let (base_none, base_opts) = (base.clone(), base.clone());
        let base_id = id(format!("{s}-base"));
        view! {
            <tr>
                <th scope="row">{name.clone()}</th>
                {input("sphere", "D", "decimal", bind_row!(f, rx[key], |b| b.eyes[side].sphere))}
                {input("cylinder", "D", "decimal", bind_row!(f, rx[key], |b| b.eyes[side].cylinder))}
                {input("axis", "°", "numeric", bind_row!(f, rx[key], |b| b.eyes[side].axis))}
                {input("add", "D", "decimal", bind_row!(f, rx[key], |b| b.eyes[side].add))}
                {input("prism", "Δ", "decimal", bind_row!(f, rx[key], |b| b.eyes[side].prism))}
                <td>
                    <select id=move || base_id.get() aria-label=format!("{name} prism base")
                        aria-invalid=move || notes.invalid(&base_id.get()).then_some("true")
                        on:change=move |ev| base.set(event_target_value(&ev))>
                        <option value="" prop:selected=move || base_none.get().is_empty()>"–"</option>
                        {PrismBase::ALL.into_iter().map(|b| {
                            let r = base_opts.clone();
                            view! {
                                <option value=b.as_str() prop:selected=move || r.get() == b.as_str()>{b.as_str()}</option>
                            }
                        }).collect_view()}
                    </select>
                    <FieldNotes anchor=base_id notes=notes />
                </td>
            </tr>
        }
    };
    // With plus-cylinder entry, what will be saved, so the transposition is visible before it
    // happens.
    let preview = move || {
        f.with(|x| {
            let position = index.get();
            let block = x.rx.iter().find(|b| b.key == key)?;
            if !block.plus_cyl {
                return None;
            }
            let mut problems = Vec::new();
            let text: Vec<String> = SIDES
                .into_iter()
                .filter_map(|side| {
                    let e = build_eye(&block.eyes[side], &|w| rx_id(position, w), &mut problems)?;
                    Some(format!(
                        "{} {}",
                        side.as_str().to_uppercase(),
                        e.to_minus_cylinder().summary()
                    ))
                })
                .collect();
            (problems.is_empty() && !text.is_empty()).then(|| text.join("; "))
        })
    };
    let kind_id = id("type".into());
    let plus_id = id("plus-cyl".into());
    let notes_id = id("notes".into());
    let block_id = id("block".into());
    view! {
        <div class="refraction-block" id=move || block_id.get()>
            <div class="refraction-head">
                <h4>{title}</h4>
                <div class="field inline">
                    <label for=move || kind_id.get()>"Type"</label>
                    <select id=move || kind_id.get()
                        on:change=move |ev| {
                            let v = event_target_value(&ev);
                            if let Some(t) = RX_TYPES.into_iter().find(|t| rx_type_value(*t) == v) {
                                kind.set(t);
                            }
                        }>
                        {RX_TYPES.into_iter().map(|t| {
                            let r = kind_opts.clone();
                            view! {
                                <option value=rx_type_value(t) prop:selected=move || r.get() == t>{rx_type_title(t)}</option>
                            }
                        }).collect_view()}
                    </select>
                </div>
                <label class="checkbox">
                    <input type="checkbox" id=move || plus_id.get()
                        prop:checked=move || plus_read.get()
                        on:change=move |ev| plus.set(event_target_checked(&ev)) />
                    " Plus-cylinder entry (saved as minus cylinder)"
                </label>
                <Show when=several>
                    <button type="button" class="button secondary small refraction-remove"
                        on:click=move |_| f.update(|x| x.remove_rx(key))>
                        "Remove"
                    </button>
                </Show>
            </div>
            <FieldNotes anchor=block_id notes=notes />
            <div class="table-scroll">
                <table class="exam-table refraction-table">
                    <thead>
                        <tr>
                            <th scope="col"></th>
                            <th scope="col">"Sphere (D)"</th>
                            <th scope="col">"Cylinder (D)"</th>
                            <th scope="col">"Axis (°)"</th>
                            <th scope="col">"Add (D)"</th>
                            <th scope="col">"Prism (Δ)"</th>
                            <th scope="col">"Base"</th>
                        </tr>
                    </thead>
                    <tbody>
                        {eye_row(Side::Od)}
                        {eye_row(Side::Os)}
                    </tbody>
                </table>
            </div>
            {move || preview().map(|p| view! { <p class="help refraction-preview">"Will be saved as: " {p}</p> })}
            <div class="field">
                <label for=move || notes_id.get()>"Notes"</label>
                <TextIn bind=bind_row!(f, rx[key], |b| b.notes) id=notes_id notes=notes maxlength=4000 />
            </div>
        </div>
    }
}

#[component]
fn KeratometrySection(form: RwSignal<FormValues>, notes: Notes) -> impl IntoView {
    let f = form;
    let row = move |side: Side| {
        let s = side.as_str();
        let name = s.to_uppercase();
        let cell = move |id: String, label: String, mode: &'static str, bind: Bind<String>| {
            view! { <td><TextIn bind=bind id=id label=label notes=notes inputmode=mode /></td> }
        };
        view! {
            <tr>
                <th scope="row">{name.clone()}</th>
                {cell(format!("k-{s}-k1"), format!("{name} K1 (D)"), "decimal", bind!(f, |x| x.k[side].k1))}
                {cell(format!("k-{s}-k1-axis"), format!("{name} K1 axis (°)"), "numeric", bind!(f, |x| x.k[side].k1_axis))}
                {cell(format!("k-{s}-k2"), format!("{name} K2 (D)"), "decimal", bind!(f, |x| x.k[side].k2))}
                {cell(format!("k-{s}-k2-axis"), format!("{name} K2 axis (°)"), "numeric", bind!(f, |x| x.k[side].k2_axis))}
                <td class="row-notes"><FieldNotes anchor=format!("k-{s}") notes=notes /></td>
            </tr>
        }
    };
    view! {
        <fieldset>
            <legend>"Keratometry " <span class="optional">"(optional)"</span></legend>
            <div class="table-scroll">
                <table class="exam-table k-table">
                    <thead>
                        <tr>
                            <th scope="col"></th>
                            <th scope="col">"K1 (D)"</th>
                            <th scope="col">"Axis (°)"</th>
                            <th scope="col">"K2 (D)"</th>
                            <th scope="col">"Axis (°)"</th>
                            <th scope="col"></th>
                        </tr>
                    </thead>
                    <tbody>{row(Side::Od)}{row(Side::Os)}</tbody>
                </table>
            </div>
        </fieldset>
    }
}

/// IOP with its method and time, and central corneal thickness (which IOP is read against).
#[component]
fn PressureSection(form: RwSignal<FormValues>, notes: Notes) -> impl IntoView {
    let f = form;
    let elevated = move |side: Side| {
        move || {
            f.with(|x| x.iop[side].trim().parse::<u16>().ok())
                .filter(|v| *v > optovault_shared::chart::exam::IOP_NORMAL_MAX)
                .map(|_| view! { <span class="badge elevated-badge">"elevated"</span> })
        }
    };
    view! {
        <fieldset>
            <legend>"Intraocular pressure and pachymetry"</legend>
            <div class="eye-pair">
                <Labelled id="iop-od" label="IOP OD (mmHg)">
                    <div class="with-badge">
                        <TextIn bind=bind!(f, |x| x.iop.od) id="iop-od" notes=notes inputmode="numeric" />
                        {elevated(Side::Od)}
                    </div>
                </Labelled>
                <Labelled id="iop-os" label="IOP OS (mmHg)">
                    <div class="with-badge">
                        <TextIn bind=bind!(f, |x| x.iop.os) id="iop-os" notes=notes inputmode="numeric" />
                        {elevated(Side::Os)}
                    </div>
                </Labelled>
                <Labelled id="iop-method" label="Method">
                    <select id="iop-method"
                        on:change=move |ev| {
                            let v = event_target_value(&ev);
                            if let Some(m) = IOP_METHODS.into_iter().find(|m| iop_method_value(*m) == v) {
                                f.update(|x| x.iop_method = m);
                            }
                        }>
                        {IOP_METHODS.into_iter().map(|m| view! {
                            <option value=iop_method_value(m) title=m.label()
                                prop:selected=move || f.with(|x| x.iop_method == m)>{iop_method_short(m)}</option>
                        }).collect_view()}
                    </select>
                </Labelled>
                <Labelled id="iop-time" label="Time">
                    <TextIn bind=bind!(f, |x| x.iop_time) id="iop-time" notes=notes kind="time" />
                </Labelled>
                <Labelled id="cct-od" label="CCT OD (µm)">
                    <TextIn bind=bind!(f, |x| x.cct.od) id="cct-od" notes=notes inputmode="numeric" />
                </Labelled>
                <Labelled id="cct-os" label="CCT OS (µm)">
                    <TextIn bind=bind!(f, |x| x.cct.os) id="cct-os" notes=notes inputmode="numeric" />
                </Labelled>
            </div>
        </fieldset>
    }
}

/// Slit lamp, fundus, cup/disc and dilation.
#[component]
fn SegmentsSection(form: RwSignal<FormValues>, notes: Notes) -> impl IntoView {
    let f = form;
    view! {
        <fieldset>
            <legend>"Anterior and posterior segment"</legend>
            <div class="eye-pair">
                <Labelled id="slit-od" label="Slit lamp OD">
                    <TextBox bind=bind!(f, |x| x.slit_lamp.od) id="slit-od" notes=notes />
                </Labelled>
                <Labelled id="slit-os" label="Slit lamp OS">
                    <TextBox bind=bind!(f, |x| x.slit_lamp.os) id="slit-os" notes=notes />
                </Labelled>
                <Labelled id="fundus-od" label="Fundus OD">
                    <TextBox bind=bind!(f, |x| x.fundus.od) id="fundus-od" notes=notes />
                </Labelled>
                <Labelled id="fundus-os" label="Fundus OS">
                    <TextBox bind=bind!(f, |x| x.fundus.os) id="fundus-os" notes=notes />
                </Labelled>
                <Labelled id="cd-od" label="Cup/disc OD (vertical)">
                    <TextIn bind=bind!(f, |x| x.cup_disc.od) id="cd-od" notes=notes inputmode="decimal" placeholder="0.35" />
                </Labelled>
                <Labelled id="cd-os" label="Cup/disc OS (vertical)">
                    <TextIn bind=bind!(f, |x| x.cup_disc.os) id="cd-os" notes=notes inputmode="decimal" placeholder="0.35" />
                </Labelled>
                <Labelled id="dilation-agent" label="Dilation agent (optional)">
                    <TextIn bind=bind!(f, |x| x.dilation_agent) id="dilation-agent" notes=notes
                        placeholder="tropicamide 1%" maxlength=200 />
                </Labelled>
                <Labelled id="dilation-time" label="Dilation time">
                    <TextIn bind=bind!(f, |x| x.dilation_time) id="dilation-time" notes=notes kind="time" />
                </Labelled>
            </div>
        </fieldset>
    }
}

#[component]
fn DiagnosesSection(form: RwSignal<FormValues>, notes: Notes) -> impl IntoView {
    let f = form;
    view! {
        <fieldset>
            <legend>"Diagnoses"</legend>
            <div class="table-scroll">
                <table class="exam-table dx-table">
                    <thead>
                        <tr>
                            <th scope="col">"ICD-10 code"</th>
                            <th scope="col">"Eye"</th>
                            <th scope="col">"Description"</th>
                            <th scope="col"></th>
                        </tr>
                    </thead>
                    <tbody>
                        <ForEnumerate each=move || f.with(|x| x.dx.iter().map(|d| d.key).collect::<Vec<_>>())
                            key=|k| *k
                            children=move |index, key| view! { <DxRowView form=f key=key index=index notes=notes /> } />
                    </tbody>
                </table>
            </div>
            <button id="dx-add" type="button" class="button secondary" on:click=move |_| f.update(FormValues::add_dx)>
                "Add diagnosis"
            </button>
        </fieldset>
    }
}

#[component]
fn DxRowView(
    form: RwSignal<FormValues>,
    key: u32,
    index: ReadSignal<usize>,
    notes: Notes,
) -> impl IntoView {
    let f = form;
    let id = move |what: &'static str| Signal::derive(move || dx_id(index.get(), what));
    let lat = bind_row!(f, dx[key], |d| d.laterality);
    let lat_opts = lat.clone();
    let lat_id = id("laterality");
    let number = move || index.get() + 1;
    view! {
        <tr class="dx-row">
            <td>
                <TextIn bind=bind_row!(f, dx[key], |d| d.code) id=id("code") notes=notes
                    label=Signal::derive(move || format!("Diagnosis {} ICD-10 code", number()))
                    placeholder="H52.13" maxlength=10 />
            </td>
            <td>
                <select id=move || lat_id.get()
                    aria-label=move || format!("Diagnosis {} eye", number())
                    on:change=move |ev| {
                        let v = event_target_value(&ev);
                        if let Some(l) = LATERALITIES.into_iter().find(|l| laterality_value(*l) == v) {
                            lat.set(l);
                        }
                    }>
                    {LATERALITIES.into_iter().map(|l| {
                        let r = lat_opts.clone();
                        view! { <option value=laterality_value(l) prop:selected=move || r.get() == l>{laterality_label(l)}</option> }
                    }).collect_view()}
                </select>
            </td>
            <td>
                <TextIn bind=bind_row!(f, dx[key], |d| d.description) id=id("desc") notes=notes
                    label=Signal::derive(move || format!("Diagnosis {} description", number()))
                    maxlength=200 />
            </td>
            <td>
                <button type="button" class="button secondary small dx-remove"
                    aria-label=move || format!("Remove diagnosis {}", number())
                    on:click=move |_| f.update(|x| x.remove_dx(key))>
                    "Remove"
                </button>
            </td>
        </tr>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc() -> Option<StaffRef> {
        Some(StaffRef {
            account_id: Uuid::from_u128(7),
            name: "iris".into(),
        })
    }

    fn blank() -> FormValues {
        FormValues::new("2026-11-20", "09:30")
    }

    fn set_va(v: &mut FormValues, id: &str, text: &str) {
        let i = VA_CELLS.iter().position(|c| c.id == id).unwrap();
        v.va[i] = text.into();
    }

    fn anchors(list: &[Problem]) -> Vec<&str> {
        list.iter().filter_map(|p| p.anchor.as_deref()).collect()
    }

    #[test]
    fn va_notation_is_inferred() {
        use VaNotation::*;
        let n = |t: &str| infer_va(t, VaNumbers::Decimal);
        assert_eq!(n("20/20"), (SnellenFeet, "20/20".into()));
        assert_eq!(n(" 6/7.5 "), (SnellenMetres, "6/7.5".into()));
        assert_eq!(n("1.0"), (Decimal, "1.0".into()));
        assert_eq!(n("0.00 logMAR"), (LogMar, "0.00".into()));
        assert_eq!(n("0.3LOGMAR"), (LogMar, "0.3".into()));
        assert_eq!(n("-0.10"), (LogMar, "-0.10".into()));
        assert_eq!(infer_va("0.30", VaNumbers::LogMar), (LogMar, "0.30".into()));
        assert_eq!(n("logmar").1, "");
        // Never panics on odd input.
        for t in ["/", "é/", "logmarlogmar", "−", "ĺogmar", "20/"] {
            let _ = infer_va(t, VaNumbers::Decimal);
        }
    }

    #[test]
    fn va_readouts() {
        let c = &VA_CELLS[1];
        let r = |t: &str| va_readout(c, t, VaNumbers::Decimal);
        assert_eq!(r(""), None);
        assert_eq!(r("20/40"), Some(Ok("logMAR 0.30".into())));
        assert_eq!(r("6/6"), Some(Ok("logMAR 0.00".into())));
        assert_eq!(r("1.0"), Some(Ok("logMAR 0.00".into())));
        assert_eq!(r("0.30 logMAR"), Some(Ok("logMAR 0.30".into())));
        assert!(r("CF").unwrap().unwrap().contains("counting fingers"));
        assert!(r("20/").unwrap().is_err());
        assert!(r("banana").unwrap().is_err());
        assert!(r(&"1".repeat(60)).unwrap().is_err());
    }

    #[test]
    fn blank_form_builds_an_empty_valid_exam() {
        let c = check(&blank(), doc(), "2026-11-26");
        assert_eq!(c.errors, vec![]);
        assert_eq!(c.warnings, vec![]);
        assert!(c.exam.refractions.is_empty());
        assert!(c.exam.iop.is_empty());
        assert!(c.exam.diagnoses.is_empty());
        assert_eq!(c.exam.date, "2026-11-20");
    }

    #[test]
    fn full_form_builds_the_exam() {
        let mut v = blank();
        v.history.chief_complaint = "  Blur at distance ".into();
        set_va(&mut v, "va-od-entered", "20/20");
        set_va(&mut v, "va-os-entered", "6/9");
        set_va(&mut v, "va-ou-near-cc", "0.10 logMAR");
        v.rx[0].eyes.od = RxEye {
            sphere: "-1.00".into(),
            cylinder: "-0.50".into(),
            axis: "90".into(),
            add: "+2.00".into(),
            prism: "1".into(),
            base: "up".into(),
        };
        v.rx[0].eyes.os.sphere = "plano".into();
        v.k.od = KValues {
            k1: "43.00".into(),
            k1_axis: "180".into(),
            k2: "44.25".into(),
            k2_axis: "90".into(),
        };
        v.iop.od = "23".into();
        v.iop.os = "19".into();
        v.iop_method = IopMethod::TonoPen;
        v.cct.od = "545".into();
        v.cup_disc.os = "0.4".into();
        v.dilation_agent = "tropicamide 1%".into();
        v.dilation_time = "09:45".into();
        v.dx[0].code = " h40.11x1 ".into();
        v.dx[0].laterality = Laterality::Right;
        v.plan = "Review 3 months".into();
        let c = check(&v, doc(), "2026-11-26");
        assert_eq!(c.errors, vec![]);
        let e = &c.exam;
        assert_eq!(e.history.chief_complaint, "Blur at distance");
        assert_eq!(e.visual_acuity.len(), 3);
        assert_eq!(e.visual_acuity[1].notation, VaNotation::SnellenMetres);
        assert_eq!(e.visual_acuity[2].notation, VaNotation::LogMar);
        assert_eq!(e.visual_acuity[2].eye, EyeSel::Ou);
        let od = e.refractions[0].od.as_ref().unwrap();
        assert_eq!(od.summary(), "-1.00 / -0.50 x 90 add +2.00 1.0 Δ BU");
        assert_eq!(e.refractions[0].os.as_ref().unwrap().sphere, Diopters(0));
        assert_eq!(e.keratometry.od.unwrap().k2, Diopters(4425));
        assert_eq!(e.iop.len(), 2);
        assert!(e.iop[0].is_elevated());
        assert_eq!(e.iop[1].time.as_deref(), Some("09:30"));
        assert_eq!(e.cct_um.od, Some(545));
        assert_eq!(e.cup_disc.os, Some(CupDisc(40)));
        assert_eq!(e.diagnoses[0].code, "H40.11X1");
        // And back: the form of the saved exam builds the same exam.
        let again = check(&FormValues::from_exam(e), doc(), "2026-11-26");
        assert_eq!(again.errors, vec![]);
        assert_eq!(&again.exam, e);
    }

    #[test]
    fn plus_cylinder_entry_is_saved_transposed() {
        let mut v = blank();
        v.rx[0].plus_cyl = true;
        v.rx[0].eyes.od = RxEye {
            sphere: "-2.00".into(),
            cylinder: "+1.00".into(),
            axis: "90".into(),
            ..Default::default()
        };
        let c = check(&v, doc(), "2026-11-26");
        assert_eq!(c.errors, vec![]);
        let od = c.exam.refractions[0].od.as_ref().unwrap();
        assert_eq!(
            (od.sphere, od.cylinder, od.axis),
            (Diopters(-100), Diopters(-100), Some(180))
        );
        // A minus cylinder with the box ticked is kept, with a warning.
        v.rx[0].eyes.od.cylinder = "-1.00".into();
        let c = check(&v, doc(), "2026-11-26");
        assert_eq!(anchors(&c.warnings), ["rx-od-cylinder"]);
        assert_eq!(
            c.exam.refractions[0].od.as_ref().unwrap().cylinder,
            Diopters(-100)
        );
    }

    #[test]
    fn bad_axis_is_reported_beside_the_axis_even_in_plus_cylinder_form() {
        for plus in [false, true] {
            for axis in ["", "0", "181"] {
                let mut v = blank();
                v.rx[0].plus_cyl = plus;
                v.rx[0].eyes.os = RxEye {
                    sphere: "-1.00".into(),
                    cylinder: if plus { "+0.75" } else { "-0.75" }.into(),
                    axis: axis.into(),
                    ..Default::default()
                };
                let c = check(&v, doc(), "2026-11-26");
                assert_eq!(
                    anchors(&c.errors),
                    ["rx-os-axis"],
                    "plus {plus} axis {axis:?}"
                );
            }
        }
    }

    #[test]
    fn parse_problems_are_reported_once() {
        let mut v = blank();
        v.rx[0].eyes.od = RxEye {
            sphere: "minus two".into(),
            cylinder: "-0.50".into(),
            axis: "ninety".into(),
            ..Default::default()
        };
        v.rx[0].eyes.os.cylinder = "-0.50".into();
        v.rx[0].eyes.os.axis = "90".into();
        v.iop.os = "high".into();
        v.cct.od = "5o0".into();
        v.cup_disc.od = "0.3.5".into();
        v.k.os.k1 = "43".into();
        set_va(&mut v, "va-od-near-sc", "20/");
        v.rx[0].eyes.od.prism = "2".into();
        let c = check(&v, doc(), "2026-11-26");
        assert_eq!(
            anchors(&c.errors),
            [
                "va-od-near-sc",
                "rx-od-sphere",
                "rx-od-axis",
                "rx-od-base",
                "rx-os-sphere",
                "cct-od",
                "cd-od",
                "k-os",
                "iop-os",
            ]
        );
        assert!(c.errors.iter().all(|p| p.anchor.is_some()));
    }

    #[test]
    fn shared_errors_and_warnings_land_beside_their_inputs() {
        let mut v = blank();
        v.date = "2026-12-01".into();
        v.add_rx(RefractionType::Cycloplegic);
        v.rx[1].eyes.od = RxEye {
            sphere: "-22.00".into(),
            cylinder: "-0.30".into(),
            axis: "10".into(),
            add: "+0.50".into(),
            ..Default::default()
        };
        v.iop.os = "95".into();
        v.cct.os = "900".into();
        v.cup_disc.od = "0.33".into();
        v.dilation_agent = "tropicamide".into();
        v.add_dx();
        v.dx[1].code = "H5".into();
        let c = check(&v, doc(), "2026-11-26");
        assert_eq!(
            anchors(&c.errors),
            [
                "exam-date",
                "rx1-od-cylinder",
                "iop-os",
                "cct-os",
                "cd-od",
                "dilation-time",
                "dx-code-1"
            ]
        );
        assert_eq!(anchors(&c.warnings), ["rx1-od-sphere", "rx1-od-add"]);
        assert!(c.warnings[0].message.contains("±20.00"));
    }

    #[test]
    fn unknown_fields_go_to_the_summary() {
        let layout = Layout::default();
        let e = |field, message: &str| FieldError {
            field,
            message: message.into(),
        };
        assert_eq!(anchor_of(&e("provider", "x"), &layout), None);
        assert_eq!(
            anchor_of(
                &e("refractions.od.axis", "Refraction 3 (manifest): x"),
                &layout
            ),
            None
        );
        assert_eq!(
            anchor_of(&e("refractions.od.axis", "garbled"), &layout),
            None
        );
        assert_eq!(anchor_of(&e("iop.mmhg", "IOP 0 (OD): x"), &layout), None);
        let layout = Layout {
            rx: vec![0, 2],
            ..Default::default()
        };
        assert_eq!(
            anchor_of(
                &e(
                    "refractions",
                    "Refraction 2 (auto): Enter at least one eye."
                ),
                &layout
            ),
            Some("rx2-block".into())
        );
    }

    #[test]
    fn rows_are_added_and_removed_by_key() {
        let mut v = blank();
        v.add_dx();
        v.add_dx();
        v.dx[1].code = "H52.4".into();
        let kept = v.dx[1].key;
        v.remove_dx(v.dx[0].key);
        assert_eq!(v.dx.len(), 2);
        assert_eq!(v.dx[0].key, kept);
        v.remove_dx(v.dx[1].key);
        v.remove_dx(kept);
        assert_eq!(v.dx.len(), 1, "the last row is cleared, not removed");
        assert_eq!(v.dx[0].code, "");
        v.add_rx(RefractionType::Auto);
        assert_eq!(v.rx.len(), 2);
        let keys: Vec<u32> =
            v.rx.iter()
                .map(|b| b.key)
                .chain(v.dx.iter().map(|d| d.key))
                .collect();
        let mut unique = keys.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(keys.len(), unique.len(), "keys are unique");
        v.remove_rx(v.rx[0].key);
        assert_eq!(v.rx[0].kind, RefractionType::Auto);
        v.remove_rx(v.rx[0].key);
        assert_eq!(v.rx.len(), 1);
    }

    #[test]
    fn a_logmar_entry_reads_back_as_logmar() {
        let mut v = blank();
        set_va(&mut v, "va-od-entered", "0.30 logMAR");
        set_va(&mut v, "va-os-entered", "0.8");
        let e = check(&v, doc(), "2026-11-26").exam;
        let back = FormValues::from_exam(&e);
        assert_eq!(check(&back, doc(), "2026-11-26").exam, e);
        let mut v = blank();
        v.va_numbers = VaNumbers::LogMar;
        set_va(&mut v, "va-od-entered", "0.30");
        let e = check(&v, doc(), "2026-11-26").exam;
        let back = FormValues::from_exam(&e);
        assert_eq!(back.va_numbers, VaNumbers::LogMar);
        assert_eq!(check(&back, doc(), "2026-11-26").exam, e);
    }
}

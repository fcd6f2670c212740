//! The forms that write a spectacle or a contact-lens prescription.
//!
//! What is typed is kept as text ([`SpectacleText`], [`ContactText`]) and parsed into the shared
//! record types only when checked: a clinician types `-2.25`, `−2.25`, `plano` or `180°`, and a
//! half-typed value must stay on screen as typed rather than be rewritten. Parse errors and the
//! shared `validate(today)` errors carry the same field names (`od.axis`), so both show beside
//! the field they concern; the shared `warnings()` show the same way but never block a save.
//! Errors show once a save has been tried and then follow the typing; warnings show at once.
//!
//! The prescriber is whoever saves (their account id and username), with an optional licence
//! number remembered from their previous prescription.

use std::sync::Arc;

use leptos::ev::SubmitEvent;
use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::hooks::use_navigate;
use optovault_shared::chart::{
    add_years, Centi, ClEye, ContactLensRx, Diopters, EyeRefraction, LensType, Pd, Prescriber,
    Prism, PrismBase, Refraction, RefractionType, Replacement, RxStatus, Side, SpectacleRx,
    CONTACT_LENS_RX_YEARS, SPECTACLE_RX_YEARS,
};
use optovault_shared::domain::{FieldError, RecordBody};
use optovault_shared::Compartment;
use uuid::Uuid;
use wasm_bindgen::JsCast;

use crate::api::ApiError;
use crate::components::prescriptions::{lens_type_label, replacement_label, Rx, RxEntry};
use crate::components::spinner::Spinner;
use crate::pages::report_error;
use crate::records::save_item;
use crate::state::{use_app, Unlocked};
use crate::store::{Item, RecordStore};
use crate::util::today;

const FIX_FIELDS: &str = "Please correct the fields marked below.";

// ---- parsing what was typed ------------------------------------------------------------------

fn err(field: &'static str, message: impl Into<String>) -> FieldError {
    FieldError {
        field,
        message: message.into(),
    }
}

/// A power; blank is `None`.
fn opt_power(field: &'static str, s: &str, errs: &mut Vec<FieldError>) -> Option<Diopters> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    Diopters::parse(s)
        .map_err(|m| errs.push(err(field, m)))
        .ok()
}

/// A length in mm or a prism amount in Δ; blank is `None`.
fn opt_centi(field: &'static str, s: &str, errs: &mut Vec<FieldError>) -> Option<Centi> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    Centi::parse(s)
        .map_err(|m| errs.push(err(field, format!("{m} Write it like 14.2."))))
        .ok()
}

/// An axis in whole degrees (`180` or `180°`); blank is `None`. The range is the shared rules'.
fn opt_axis(field: &'static str, s: &str, errs: &mut Vec<FieldError>) -> Option<u16> {
    let s = s.trim().trim_end_matches('°').trim();
    if s.is_empty() {
        return None;
    }
    s.parse::<u16>()
        .map_err(|_| errs.push(err(field, "Axis must be a whole number from 1 to 180.")))
        .ok()
}

/// A value required once its eye has any value.
fn required<T>(
    v: Option<T>,
    typed: &str,
    field: &'static str,
    what: &str,
    errs: &mut Vec<FieldError>,
) -> Option<T> {
    if typed.trim().is_empty() {
        errs.push(err(field, format!("Enter the {what}.")));
    }
    v
}

/// The expiry to store: `None` when it is the default (issued + `years`), so the record says
/// "the default" rather than repeating a date.
fn expiry_of(issued: &str, expiry: &str, years: i32) -> Option<String> {
    let e = expiry.trim();
    if e.is_empty() || add_years(issued.trim(), years).as_deref() == Some(e) {
        None
    } else {
        Some(e.to_string())
    }
}

fn prescriber_with(me: &Prescriber, licence: &str) -> Prescriber {
    Prescriber {
        licence: licence.trim().to_string(),
        ..me.clone()
    }
}

/// Field names of one spectacle eye, as the shared validation names them.
struct EyeNames {
    sphere: &'static str,
    cylinder: &'static str,
    axis: &'static str,
    add: &'static str,
    prism: &'static str,
}

const SRX_OD: EyeNames = EyeNames {
    sphere: "od.sphere",
    cylinder: "od.cylinder",
    axis: "od.axis",
    add: "od.add",
    prism: "od.prism",
};
const SRX_OS: EyeNames = EyeNames {
    sphere: "os.sphere",
    cylinder: "os.cylinder",
    axis: "os.axis",
    add: "os.add",
    prism: "os.prism",
};

fn srx_names(side: Side) -> &'static EyeNames {
    match side {
        Side::Od => &SRX_OD,
        Side::Os => &SRX_OS,
    }
}

/// One spectacle eye as typed; up to one vertical and one horizontal prism (the most the rules
/// allow per eye).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EyeText {
    pub sphere: String,
    pub cylinder: String,
    pub axis: String,
    pub add: String,
    pub prism_v: String,
    pub prism_v_base: PrismBase,
    pub prism_h: String,
    pub prism_h_base: PrismBase,
}

impl Default for EyeText {
    fn default() -> Self {
        EyeText {
            sphere: String::new(),
            cylinder: String::new(),
            axis: String::new(),
            add: String::new(),
            prism_v: String::new(),
            prism_v_base: PrismBase::Up,
            prism_h: String::new(),
            prism_h_base: PrismBase::In,
        }
    }
}

impl EyeText {
    pub fn from_eye(e: &EyeRefraction) -> EyeText {
        let vertical = e.prism.iter().find(|p| p.base.is_vertical());
        let horizontal = e.prism.iter().find(|p| !p.base.is_vertical());
        let cyl = !e.cylinder.is_zero();
        EyeText {
            sphere: e.sphere.sphere_label(),
            cylinder: if cyl {
                e.cylinder.to_string()
            } else {
                String::new()
            },
            axis: e
                .axis
                .filter(|_| cyl)
                .map(|a| a.to_string())
                .unwrap_or_default(),
            add: e.add.map(|a| a.to_string()).unwrap_or_default(),
            prism_v: vertical.map(|p| p.amount.to_string()).unwrap_or_default(),
            prism_v_base: vertical.map_or(PrismBase::Up, |p| p.base),
            prism_h: horizontal.map(|p| p.amount.to_string()).unwrap_or_default(),
            prism_h_base: horizontal.map_or(PrismBase::In, |p| p.base),
        }
    }

    fn is_blank(&self) -> bool {
        [
            &self.sphere,
            &self.cylinder,
            &self.axis,
            &self.add,
            &self.prism_v,
            &self.prism_h,
        ]
        .iter()
        .all(|s| s.trim().is_empty())
    }

    /// `None` when nothing was typed for this eye (a prescription for one eye only).
    pub fn parse(&self, side: Side) -> Result<Option<EyeRefraction>, Vec<FieldError>> {
        if self.is_blank() {
            return Ok(None);
        }
        let n = srx_names(side);
        let mut errs = Vec::new();
        let sphere = opt_power(n.sphere, &self.sphere, &mut errs);
        let sphere = required(
            sphere,
            &self.sphere,
            n.sphere,
            "sphere (or plano)",
            &mut errs,
        );
        let cylinder = opt_power(n.cylinder, &self.cylinder, &mut errs).unwrap_or_default();
        let axis = opt_axis(n.axis, &self.axis, &mut errs);
        let add = opt_power(n.add, &self.add, &mut errs);
        let mut prism = Vec::new();
        for (amount, base) in [
            (&self.prism_v, self.prism_v_base),
            (&self.prism_h, self.prism_h_base),
        ] {
            if let Some(amount) = opt_centi(n.prism, amount, &mut errs) {
                prism.push(Prism { amount, base });
            }
        }
        match sphere {
            Some(sphere) if errs.is_empty() => Ok(Some(
                EyeRefraction {
                    sphere,
                    cylinder,
                    axis,
                    add,
                    prism,
                }
                .normalized(),
            )),
            _ => Err(errs),
        }
    }
}

/// A spectacle prescription as typed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpectacleText {
    pub status: RxStatus,
    pub issued: String,
    pub expiry: String,
    pub lens_type: LensType,
    pub od: EyeText,
    pub os: EyeText,
    pub pd_monocular: bool,
    pub pd: String,
    pub pd_od: String,
    pub pd_os: String,
    pub near_pd: String,
    pub segment_height: String,
    pub vertex_distance: String,
    pub notes: String,
    pub licence: String,
    pub source_exam: Option<Uuid>,
}

impl SpectacleText {
    /// A new draft issued `today`, expiring after the default two years.
    pub fn new(today: &str) -> SpectacleText {
        SpectacleText {
            status: RxStatus::Draft,
            issued: today.to_string(),
            expiry: add_years(today, SPECTACLE_RX_YEARS).unwrap_or_default(),
            lens_type: LensType::SingleVision,
            od: EyeText::default(),
            os: EyeText::default(),
            pd_monocular: false,
            pd: String::new(),
            pd_od: String::new(),
            pd_os: String::new(),
            near_pd: String::new(),
            segment_height: String::new(),
            vertex_distance: String::new(),
            notes: String::new(),
            licence: String::new(),
            source_exam: None,
        }
    }

    pub fn from_rx(rx: &SpectacleRx) -> SpectacleText {
        let mm = |c: Option<Centi>| c.map(|c| c.to_string()).unwrap_or_default();
        let (pd_monocular, pd, pd_od, pd_os) = match rx.pd {
            None => (false, None, None, None),
            Some(Pd::Binocular { mm }) => (false, Some(mm), None, None),
            Some(Pd::Monocular { od, os }) => (true, None, Some(od), Some(os)),
        };
        SpectacleText {
            status: rx.status,
            issued: rx.issued.clone(),
            expiry: rx.effective_expiry().unwrap_or_default(),
            lens_type: rx.lens_type,
            od: rx.od.as_ref().map(EyeText::from_eye).unwrap_or_default(),
            os: rx.os.as_ref().map(EyeText::from_eye).unwrap_or_default(),
            pd_monocular,
            pd: mm(pd),
            pd_od: mm(pd_od),
            pd_os: mm(pd_os),
            near_pd: mm(rx.near_pd),
            segment_height: mm(rx.segment_height),
            vertex_distance: mm(rx.vertex_distance),
            notes: rx.notes.clone(),
            licence: rx.prescriber.licence.clone(),
            source_exam: rx.source_exam,
        }
    }

    fn parse_pd(&self, errs: &mut Vec<FieldError>) -> Option<Pd> {
        if !self.pd_monocular {
            return opt_centi("pd", &self.pd, errs).map(|mm| Pd::Binocular { mm });
        }
        let od = opt_centi("pd.od", &self.pd_od, errs);
        let os = opt_centi("pd.os", &self.pd_os, errs);
        match (od, os) {
            (Some(od), Some(os)) => Some(Pd::Monocular { od, os }),
            (None, None) if self.pd_od.trim().is_empty() && self.pd_os.trim().is_empty() => None,
            _ => {
                for (f, t) in [("pd.od", &self.pd_od), ("pd.os", &self.pd_os)] {
                    if t.trim().is_empty() {
                        errs.push(err(f, "Enter both monocular PDs, or neither."));
                    }
                }
                None
            }
        }
    }

    /// The record as typed, prescribed by `me`; errors for what does not parse. The shared rules
    /// are not applied here (see [`check_spectacles`]).
    pub fn parse(&self, me: &Prescriber) -> Result<SpectacleRx, Vec<FieldError>> {
        let mut errs = Vec::new();
        let od = self.od.parse(Side::Od).map_err(|e| errs.extend(e));
        let os = self.os.parse(Side::Os).map_err(|e| errs.extend(e));
        let pd = self.parse_pd(&mut errs);
        let near_pd = opt_centi("near_pd", &self.near_pd, &mut errs);
        let segment_height = opt_centi("segment_height", &self.segment_height, &mut errs);
        let vertex_distance = opt_centi("vertex_distance", &self.vertex_distance, &mut errs);
        let (Ok(od), Ok(os), true) = (od, os, errs.is_empty()) else {
            return Err(errs);
        };
        Ok(SpectacleRx {
            status: self.status,
            issued: self.issued.trim().to_string(),
            expiry: expiry_of(&self.issued, &self.expiry, SPECTACLE_RX_YEARS),
            lens_type: self.lens_type,
            od,
            os,
            pd,
            near_pd,
            segment_height,
            vertex_distance,
            notes: self.notes.trim().to_string(),
            prescriber: prescriber_with(me, &self.licence),
            source_exam: self.source_exam,
        })
    }
}

/// Parses and applies the shared rules as of `today`.
pub fn check_spectacles(
    t: &SpectacleText,
    me: &Prescriber,
    today: &str,
) -> Result<SpectacleRx, Vec<FieldError>> {
    let rx = t.parse(me)?;
    rx.validate(today)?;
    Ok(rx)
}

/// One contact lens as typed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClEyeText {
    pub power: String,
    pub cylinder: String,
    pub axis: String,
    pub add: String,
    pub base_curve: String,
    pub diameter: String,
    pub color: String,
}

struct ClNames {
    power: &'static str,
    cylinder: &'static str,
    axis: &'static str,
    add: &'static str,
    base_curve: &'static str,
    diameter: &'static str,
    color: &'static str,
}

const CL_OD: ClNames = ClNames {
    power: "od.power",
    cylinder: "od.cylinder",
    axis: "od.axis",
    add: "od.add",
    base_curve: "od.base_curve",
    diameter: "od.diameter",
    color: "od.color",
};
const CL_OS: ClNames = ClNames {
    power: "os.power",
    cylinder: "os.cylinder",
    axis: "os.axis",
    add: "os.add",
    base_curve: "os.base_curve",
    diameter: "os.diameter",
    color: "os.color",
};

fn cl_names(side: Side) -> &'static ClNames {
    match side {
        Side::Od => &CL_OD,
        Side::Os => &CL_OS,
    }
}

impl ClEyeText {
    pub fn from_eye(e: &ClEye) -> ClEyeText {
        let cyl = !e.cylinder.is_zero();
        ClEyeText {
            power: e.power.to_string(),
            cylinder: if cyl {
                e.cylinder.to_string()
            } else {
                String::new()
            },
            axis: e
                .axis
                .filter(|_| cyl)
                .map(|a| a.to_string())
                .unwrap_or_default(),
            add: e.add.map(|a| a.to_string()).unwrap_or_default(),
            base_curve: e.base_curve.to_string(),
            diameter: e.diameter.to_string(),
            color: e.color.clone(),
        }
    }

    fn is_blank(&self) -> bool {
        [
            &self.power,
            &self.cylinder,
            &self.axis,
            &self.add,
            &self.base_curve,
            &self.diameter,
            &self.color,
        ]
        .iter()
        .all(|s| s.trim().is_empty())
    }

    /// `None` when nothing was typed for this eye.
    pub fn parse(&self, side: Side) -> Result<Option<ClEye>, Vec<FieldError>> {
        if self.is_blank() {
            return Ok(None);
        }
        let n = cl_names(side);
        let mut errs = Vec::new();
        let power = opt_power(n.power, &self.power, &mut errs);
        let power = required(power, &self.power, n.power, "power", &mut errs);
        let cylinder = opt_power(n.cylinder, &self.cylinder, &mut errs).unwrap_or_default();
        let axis = opt_axis(n.axis, &self.axis, &mut errs);
        let add = opt_power(n.add, &self.add, &mut errs);
        let bc = opt_centi(n.base_curve, &self.base_curve, &mut errs);
        let bc = required(bc, &self.base_curve, n.base_curve, "base curve", &mut errs);
        let dia = opt_centi(n.diameter, &self.diameter, &mut errs);
        let dia = required(dia, &self.diameter, n.diameter, "diameter", &mut errs);
        match (power, bc, dia) {
            (Some(power), Some(base_curve), Some(diameter)) if errs.is_empty() => Ok(Some(ClEye {
                power,
                cylinder,
                // Without a cylinder an axis means nothing (the shared rules ignore it too).
                axis: axis.filter(|_| !cylinder.is_zero()),
                add,
                base_curve,
                diameter,
                color: self.color.trim().to_string(),
            })),
            _ => Err(errs),
        }
    }
}

/// A contact-lens prescription as typed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContactText {
    pub status: RxStatus,
    pub issued: String,
    pub expiry: String,
    pub brand: String,
    pub manufacturer: String,
    pub material: String,
    pub od: ClEyeText,
    pub os: ClEyeText,
    pub replacement: Option<Replacement>,
    pub notes: String,
    pub licence: String,
    pub source_exam: Option<Uuid>,
}

impl ContactText {
    /// A new draft issued `today`, expiring after the default year.
    pub fn new(today: &str) -> ContactText {
        ContactText {
            status: RxStatus::Draft,
            issued: today.to_string(),
            expiry: add_years(today, CONTACT_LENS_RX_YEARS).unwrap_or_default(),
            brand: String::new(),
            manufacturer: String::new(),
            material: String::new(),
            od: ClEyeText::default(),
            os: ClEyeText::default(),
            replacement: None,
            notes: String::new(),
            licence: String::new(),
            source_exam: None,
        }
    }

    pub fn from_rx(rx: &ContactLensRx) -> ContactText {
        ContactText {
            status: rx.status,
            issued: rx.issued.clone(),
            expiry: rx.effective_expiry().unwrap_or_default(),
            brand: rx.brand.clone(),
            manufacturer: rx.manufacturer.clone(),
            material: rx.material.clone(),
            od: rx.od.as_ref().map(ClEyeText::from_eye).unwrap_or_default(),
            os: rx.os.as_ref().map(ClEyeText::from_eye).unwrap_or_default(),
            replacement: rx.replacement,
            notes: rx.notes.clone(),
            licence: rx.prescriber.licence.clone(),
            source_exam: rx.source_exam,
        }
    }

    pub fn parse(&self, me: &Prescriber) -> Result<ContactLensRx, Vec<FieldError>> {
        let mut errs = Vec::new();
        let od = self.od.parse(Side::Od).map_err(|e| errs.extend(e));
        let os = self.os.parse(Side::Os).map_err(|e| errs.extend(e));
        let (Ok(od), Ok(os)) = (od, os) else {
            return Err(errs);
        };
        Ok(ContactLensRx {
            status: self.status,
            issued: self.issued.trim().to_string(),
            expiry: expiry_of(&self.issued, &self.expiry, CONTACT_LENS_RX_YEARS),
            brand: self.brand.trim().to_string(),
            manufacturer: self.manufacturer.trim().to_string(),
            material: self.material.trim().to_string(),
            od,
            os,
            replacement: self.replacement,
            prescriber: prescriber_with(me, &self.licence),
            notes: self.notes.trim().to_string(),
            source_exam: self.source_exam,
        })
    }
}

pub fn check_contacts(
    t: &ContactText,
    me: &Prescriber,
    today: &str,
) -> Result<ContactLensRx, Vec<FieldError>> {
    let rx = t.parse(me)?;
    rx.validate(today)?;
    Ok(rx)
}

/// The manifest refraction to copy into a new spectacle prescription: the last manifest
/// refraction of the newest exam (by exam date, then by when it was written) that has one.
/// Returns the exam's record id and date with it.
pub fn latest_manifest(items: &[Item]) -> Option<(Uuid, String, Refraction)> {
    items
        .iter()
        .filter_map(|i| match &i.body {
            RecordBody::Exam(e) => e
                .refractions
                .iter()
                .rev()
                .find(|r| {
                    r.refraction_type == RefractionType::Manifest
                        && (r.od.is_some() || r.os.is_some())
                })
                .map(|r| (e.date.clone(), i.seq, i.id, r.clone())),
            _ => None,
        })
        .max_by(|a, b| (a.0.as_str(), a.1).cmp(&(b.0.as_str(), b.1)))
        .map(|(date, _, id, r)| (id, date, r))
}

/// The licence number of my latest prescription in this clinic, to spare retyping it.
pub fn my_licence(store: &RecordStore, me: Uuid) -> String {
    store
        .all_items()
        .filter_map(|(_, i)| {
            let p = match &i.body {
                RecordBody::SpectacleRx(r) => &r.prescriber,
                RecordBody::ContactLensRx(r) => &r.prescriber,
                _ => return None,
            };
            (p.account_id == Some(me)).then(|| (i.seq, p.licence.clone()))
        })
        .max_by_key(|(seq, _)| *seq)
        .map(|(_, l)| l)
        .unwrap_or_default()
}

// ---- element ids -----------------------------------------------------------------------------

fn dom_id(prefix: &str, field: &str) -> String {
    format!("{prefix}-{}", field.replace(['.', '_'], "-"))
}

/// The input a spectacle field's problems belong to (`od.axis` → `srx-od-axis`).
fn srx_id(field: &str) -> String {
    match field {
        "od" => "srx-od-sphere".into(),
        "os" => "srx-os-sphere".into(),
        "od.prism" => "srx-od-prism-v".into(),
        "os.prism" => "srx-os-prism-v".into(),
        "prescriber" => "srx-licence".into(),
        f => dom_id("srx", f),
    }
}

/// The input a contact-lens field's problems belong to (`od.base_curve` → `clrx-od-bc`).
fn clrx_id(field: &str) -> String {
    let side = field.split('.').next().unwrap_or_default();
    match field {
        "od" | "os" => format!("clrx-{field}-power"),
        "prescriber" => "clrx-licence".into(),
        f if f.ends_with(".base_curve") => format!("clrx-{side}-bc"),
        f if f.ends_with(".diameter") => format!("clrx-{side}-dia"),
        f => dom_id("clrx", f),
    }
}

/// Moves keyboard focus to the input of the first problem.
fn focus_first(errors: &[FieldError], id_of: fn(&str) -> String) {
    let Some(first) = errors.first() else { return };
    let el = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.get_element_by_id(&id_of(first.field)))
        .and_then(|e| e.dyn_into::<web_sys::HtmlElement>().ok());
    if let Some(el) = el {
        let _ = el.focus();
    }
}

// ---- shared pieces of the forms ----------------------------------------------------------------

/// The errors and warnings on screen.
#[derive(Clone, Debug, Default, PartialEq)]
struct Problems {
    errors: Vec<FieldError>,
    warnings: Vec<FieldError>,
}

impl Problems {
    fn of<T>(parsed: Result<T, Vec<FieldError>>, check: impl Fn(&T) -> Problems) -> Problems {
        match parsed {
            Ok(rx) => check(&rx),
            Err(errors) => Problems {
                errors,
                warnings: Vec::new(),
            },
        }
    }
}

fn joined(list: &[FieldError], field: &str) -> Option<String> {
    let msgs: Vec<&str> = list
        .iter()
        .filter(|e| e.field == field)
        .map(|e| e.message.as_str())
        .collect();
    (!msgs.is_empty()).then(|| msgs.join(" "))
}

/// The problems of what is typed, following the typing: warnings at once, errors only once a
/// save has been tried (a form is not red before anything was typed).
fn problems_of<T>(
    text: Memo<T>,
    attempted: RwSignal<bool>,
    check: impl Fn(&T) -> Problems + Send + Sync + 'static,
) -> Signal<Problems>
where
    T: Send + Sync + 'static,
{
    Memo::new(move |_| {
        let mut p = text.with(&check);
        if !attempted.get() {
            p.errors.clear();
        }
        p
    })
    .into()
}

/// A field's errors (`{id}-error`) and warnings (`{id}-warning`).
#[component]
fn Messages(id: String, field: &'static str, problems: Signal<Problems>) -> impl IntoView {
    let error_id = format!("{id}-error");
    let warning_id = format!("{id}-warning");
    view! {
        {move || problems.with(|p| joined(&p.errors, field)).map(|m| view! {
            <p class="field-error" id=error_id.clone() data-field=field>{m}</p>
        })}
        {move || problems.with(|p| joined(&p.warnings, field)).map(|m| view! {
            <p class="field-warning" id=warning_id.clone() data-field=field>{m}</p>
        })}
    }
}

/// A labelled text input with its unit and its problems.
#[component]
fn RxField(
    id: String,
    label: &'static str,
    value: RwSignal<String>,
    problems: Signal<Problems>,
    /// The field whose problems show here (`od.sphere`).
    #[prop(optional)]
    field: Option<&'static str>,
    #[prop(optional)] unit: Option<&'static str>,
    #[prop(default = "text")] kind: &'static str,
    /// The on-screen keyboard (`decimal` for powers and lengths).
    #[prop(optional)]
    inputmode: Option<&'static str>,
    #[prop(optional)] placeholder: Option<&'static str>,
    #[prop(optional, into)] max: Option<String>,
    #[prop(optional)] class: Option<&'static str>,
    /// Runs after each keystroke, with the new value.
    #[prop(optional)]
    on_input: Option<Callback<String>>,
) -> impl IntoView {
    let has = move |warn: bool| {
        field.is_some_and(|f| {
            problems.with(|p| {
                let list = if warn { &p.warnings } else { &p.errors };
                list.iter().any(|e| e.field == f)
            })
        })
    };
    let described = {
        let id = id.clone();
        move || {
            let mut ids = Vec::new();
            if has(false) {
                ids.push(format!("{id}-error"));
            }
            if has(true) {
                ids.push(format!("{id}-warning"));
            }
            (!ids.is_empty()).then(|| ids.join(" "))
        }
    };
    view! {
        <div class=format!("field {}", class.unwrap_or_default())>
            <label for=id.clone()>
                {label}
                {unit.map(|u| view! { " " <span class="unit">"("{u}")"</span> })}
            </label>
            <input id=id.clone() name=id.clone() type=kind inputmode=inputmode autocomplete="off"
                placeholder=placeholder max=max
                aria-invalid=move || has(false).then_some("true")
                aria-describedby=described
                prop:value=move || value.get()
                on:input=move |ev| {
                    let v = event_target_value(&ev);
                    value.set(v.clone());
                    if let Some(cb) = on_input {
                        cb.run(v);
                    }
                } />
            {field.map(|f| view! { <Messages id=id.clone() field=f problems=problems /> })}
        </div>
    }
}

/// The issue and expiry dates: the expiry follows the issue date (plus the default validity)
/// until it is changed by hand.
#[component]
fn RxDates(
    prefix: &'static str,
    issued: RwSignal<String>,
    expiry: RwSignal<String>,
    /// The expiry still follows the issue date.
    expiry_auto: RwSignal<bool>,
    years: i32,
    problems: Signal<Problems>,
) -> impl IntoView {
    let follow = Callback::new(move |v: String| {
        if expiry_auto.get_untracked() {
            expiry.set(add_years(&v, years).unwrap_or_default());
        }
    });
    let pin = Callback::new(move |_: String| expiry_auto.set(false));
    view! {
        <RxField id=format!("{prefix}-issued") label="Issued" kind="date" value=issued field="issued"
            problems=problems max=today() on_input=follow />
        <RxField id=format!("{prefix}-expiry") label="Expires" kind="date" value=expiry field="expiry"
            problems=problems on_input=pin />
    }
}

/// Draft or active (cancelling and voiding are done from the list).
#[component]
fn StatusSelect(id: &'static str, status: RwSignal<RxStatus>) -> impl IntoView {
    view! {
        <div class="field">
            <label for=id>"Status"</label>
            <select id=id name=id
                on:change=move |ev| status.set(if event_target_value(&ev) == "active" {
                    RxStatus::Active
                } else {
                    RxStatus::Draft
                })>
                <option value="draft" prop:selected=move || status.get() == RxStatus::Draft>"Draft"</option>
                <option value="active" prop:selected=move || status.get() == RxStatus::Active>"Active"</option>
            </select>
        </div>
    }
}

/// A notes box with its problems.
#[component]
fn NotesBox(
    id: &'static str,
    value: RwSignal<String>,
    problems: Signal<Problems>,
) -> impl IntoView {
    view! {
        <div class="field wide">
            <label for=id>"Notes"</label>
            <textarea id=id name=id rows="3"
                prop:value=move || value.get()
                on:input=move |ev| value.set(event_target_value(&ev))></textarea>
            <Messages id=id.to_string() field="notes" problems=problems />
        </div>
    }
}

/// What to tell the user after a save.
fn saved_message(status: RxStatus) -> String {
    match status {
        RxStatus::Active => "Prescription saved and active.".into(),
        _ => "Draft prescription saved.".into(),
    }
}

/// Explains a failed save. After a version conflict the store holds the latest version: the form
/// takes it (so the next save does not conflict again), unless it is no longer a draft.
fn after_failure<T>(
    e: ApiError,
    latest: Option<(u64, T, RxStatus)>,
    version: RwSignal<u64>,
    refill: impl Fn(&T),
    locked: RwSignal<bool>,
) -> ApiError {
    if e.code != "version_conflict" {
        return e;
    }
    match latest {
        Some((v, body, RxStatus::Draft)) => {
            refill(&body);
            version.set(v);
            e
        }
        Some(_) => {
            locked.set(true);
            ApiError::local(
                "version_conflict",
                "Someone else changed this prescription meanwhile and it is no longer a draft: \
                 close this form.",
            )
        }
        None => e,
    }
}

// ---- the spectacle form ----------------------------------------------------------------------

/// One spectacle eye's inputs.
#[derive(Clone, Copy)]
struct EyeInputs {
    sphere: RwSignal<String>,
    cylinder: RwSignal<String>,
    axis: RwSignal<String>,
    add: RwSignal<String>,
    prism_v: RwSignal<String>,
    prism_v_base: RwSignal<PrismBase>,
    prism_h: RwSignal<String>,
    prism_h_base: RwSignal<PrismBase>,
}

impl EyeInputs {
    fn new(t: &EyeText) -> EyeInputs {
        EyeInputs {
            sphere: RwSignal::new(t.sphere.clone()),
            cylinder: RwSignal::new(t.cylinder.clone()),
            axis: RwSignal::new(t.axis.clone()),
            add: RwSignal::new(t.add.clone()),
            prism_v: RwSignal::new(t.prism_v.clone()),
            prism_v_base: RwSignal::new(t.prism_v_base),
            prism_h: RwSignal::new(t.prism_h.clone()),
            prism_h_base: RwSignal::new(t.prism_h_base),
        }
    }

    fn fill(&self, t: &EyeText) {
        self.sphere.set(t.sphere.clone());
        self.cylinder.set(t.cylinder.clone());
        self.axis.set(t.axis.clone());
        self.add.set(t.add.clone());
        self.prism_v.set(t.prism_v.clone());
        self.prism_v_base.set(t.prism_v_base);
        self.prism_h.set(t.prism_h.clone());
        self.prism_h_base.set(t.prism_h_base);
    }

    /// What is typed (tracked: read inside a memo).
    fn text(&self) -> EyeText {
        EyeText {
            sphere: self.sphere.get(),
            cylinder: self.cylinder.get(),
            axis: self.axis.get(),
            add: self.add.get(),
            prism_v: self.prism_v.get(),
            prism_v_base: self.prism_v_base.get(),
            prism_h: self.prism_h.get(),
            prism_h_base: self.prism_h_base.get(),
        }
    }
}

#[derive(Clone, Copy)]
struct SpectacleInputs {
    status: RwSignal<RxStatus>,
    issued: RwSignal<String>,
    expiry: RwSignal<String>,
    expiry_auto: RwSignal<bool>,
    lens_type: RwSignal<LensType>,
    od: EyeInputs,
    os: EyeInputs,
    pd_monocular: RwSignal<bool>,
    pd: RwSignal<String>,
    pd_od: RwSignal<String>,
    pd_os: RwSignal<String>,
    near_pd: RwSignal<String>,
    segment_height: RwSignal<String>,
    vertex_distance: RwSignal<String>,
    notes: RwSignal<String>,
    licence: RwSignal<String>,
    source_exam: RwSignal<Option<Uuid>>,
}

impl SpectacleInputs {
    fn new(t: &SpectacleText, expiry_auto: bool) -> SpectacleInputs {
        let s = |v: &String| RwSignal::new(v.clone());
        SpectacleInputs {
            status: RwSignal::new(t.status),
            issued: s(&t.issued),
            expiry: s(&t.expiry),
            expiry_auto: RwSignal::new(expiry_auto),
            lens_type: RwSignal::new(t.lens_type),
            od: EyeInputs::new(&t.od),
            os: EyeInputs::new(&t.os),
            pd_monocular: RwSignal::new(t.pd_monocular),
            pd: s(&t.pd),
            pd_od: s(&t.pd_od),
            pd_os: s(&t.pd_os),
            near_pd: s(&t.near_pd),
            segment_height: s(&t.segment_height),
            vertex_distance: s(&t.vertex_distance),
            notes: s(&t.notes),
            licence: s(&t.licence),
            source_exam: RwSignal::new(t.source_exam),
        }
    }

    fn fill(&self, t: &SpectacleText) {
        self.status.set(t.status);
        self.issued.set(t.issued.clone());
        self.expiry.set(t.expiry.clone());
        self.lens_type.set(t.lens_type);
        self.od.fill(&t.od);
        self.os.fill(&t.os);
        self.pd_monocular.set(t.pd_monocular);
        self.pd.set(t.pd.clone());
        self.pd_od.set(t.pd_od.clone());
        self.pd_os.set(t.pd_os.clone());
        self.near_pd.set(t.near_pd.clone());
        self.segment_height.set(t.segment_height.clone());
        self.vertex_distance.set(t.vertex_distance.clone());
        self.notes.set(t.notes.clone());
        self.licence.set(t.licence.clone());
        self.source_exam.set(t.source_exam);
    }

    fn text(&self) -> SpectacleText {
        SpectacleText {
            status: self.status.get(),
            issued: self.issued.get(),
            expiry: self.expiry.get(),
            lens_type: self.lens_type.get(),
            od: self.od.text(),
            os: self.os.text(),
            pd_monocular: self.pd_monocular.get(),
            pd: self.pd.get(),
            pd_od: self.pd_od.get(),
            pd_os: self.pd_os.get(),
            near_pd: self.near_pd.get(),
            segment_height: self.segment_height.get(),
            vertex_distance: self.vertex_distance.get(),
            notes: self.notes.get(),
            licence: self.licence.get(),
            source_exam: self.source_exam.get(),
        }
    }
}

fn me_as_prescriber(me: &Unlocked) -> Prescriber {
    Prescriber {
        account_id: Some(me.account_id),
        name: me.username.clone(),
        licence: String::new(),
    }
}

#[component]
pub fn SpectacleRxForm(
    me: Arc<Unlocked>,
    clinic_id: Uuid,
    chart_id: Uuid,
    /// The draft being edited; `None` for a new prescription.
    existing: Option<RxEntry>,
    /// Called when the form closes: what to tell the user after a save, `None` when cancelled.
    on_close: Callback<Option<String>>,
) -> impl IntoView {
    let app = use_app();
    let navigate = use_navigate();
    let store: RwSignal<RecordStore> = app.store(clinic_id).into();
    let prescriber = me_as_prescriber(&me);
    let (record_id, version, start, auto) = match &existing {
        Some(RxEntry {
            id,
            version,
            rx: Rx::Spectacle(rx),
            ..
        }) => (
            *id,
            *version,
            SpectacleText::from_rx(rx),
            rx.expiry.is_none(),
        ),
        // Chosen once per form, so a retried save writes the same record.
        _ => {
            let licence = store.with_untracked(|s| my_licence(s, me.account_id));
            let t = SpectacleText {
                licence,
                ..SpectacleText::new(&today())
            };
            (Uuid::new_v4(), 0, t, true)
        }
    };
    let editing = existing.is_some();
    let version = RwSignal::new(version);
    let inputs = SpectacleInputs::new(&start, auto);
    let text = Memo::new(move |_| inputs.text());
    let attempted = RwSignal::new(false);
    let problems = problems_of(text, attempted, {
        let (prescriber, today) = (prescriber.clone(), today());
        move |t: &SpectacleText| {
            Problems::of(t.parse(&prescriber), |rx| Problems {
                errors: rx.validate(&today).err().unwrap_or_default(),
                warnings: rx.warnings(),
            })
        }
    });
    let form_error = RwSignal::new(None::<String>);
    let saving = RwSignal::new(false);
    let locked = RwSignal::new(false);
    let me = StoredValue::new(me);

    let save = move |activate: bool| {
        if saving.get_untracked() || locked.get_untracked() {
            return;
        }
        attempted.set(true);
        let mut t = text.get_untracked();
        if activate {
            t.status = RxStatus::Active;
        }
        let rx = match check_spectacles(&t, &prescriber, &today()) {
            Ok(rx) => rx,
            Err(errs) => {
                form_error.set(Some(FIX_FIELDS.into()));
                focus_first(&errs, srx_id);
                return;
            }
        };
        form_error.set(None);
        saving.set(true);
        let navigate = navigate.clone();
        spawn_local(async move {
            let status = rx.status;
            let body = RecordBody::SpectacleRx(rx);
            let expected = version.get_untracked();
            match save_item(
                app,
                me.get_value(),
                clinic_id,
                chart_id,
                record_id,
                expected,
                body,
            )
            .await
            {
                Ok(_) => {
                    // The component may be gone by now (the user moved on): nothing to tell then.
                    let _ = on_close.try_run(Some(saved_message(status)));
                }
                Err(e) => {
                    // `try_`: the form may be gone by now (an idle lock), and then there is nothing to refill.
                    let latest = store
                        .try_with_untracked(|s| match s.item(&chart_id, &record_id) {
                            Some(Item {
                                version,
                                body: RecordBody::SpectacleRx(rx),
                                ..
                            }) => Some((*version, rx.clone(), rx.status)),
                            _ => None,
                        })
                        .flatten();
                    let refill = |rx: &SpectacleRx| inputs.fill(&SpectacleText::from_rx(rx));
                    let e = after_failure(e, latest, version, refill, locked);
                    saving.set(false);
                    report_error(app, &navigate, form_error, e);
                }
            }
        });
    };
    let save = StoredValue::new(save);
    let on_submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        save.with_value(|s| s(false));
    };

    view! {
        <form id="srx-form" class="rx-form" on:submit=on_submit novalidate
            aria-labelledby="srx-form-title">
            <h3 id="srx-form-title">
                {if editing { "Edit draft spectacle prescription" } else { "New spectacle prescription" }}
            </h3>
            {move || form_error.get().map(|e| view! { <p id="srx-form-error" class="error" role="alert">{e}</p> })}
            <div class="grid">
                <StatusSelect id="srx-status" status=inputs.status />
                <RxDates prefix="srx" issued=inputs.issued expiry=inputs.expiry
                    expiry_auto=inputs.expiry_auto years=SPECTACLE_RX_YEARS problems=problems />
                <LensTypeSelect lens_type=inputs.lens_type />
            </div>
            <CopyFromExam clinic_id=clinic_id chart_id=chart_id inputs=inputs />
            <Messages id="srx-eyes".to_string() field="od" problems=problems />
            <div class="eye-pair">
                <SpectacleEye side=Side::Od eye=inputs.od problems=problems />
                <SpectacleEye side=Side::Os eye=inputs.os problems=problems />
            </div>
            <PdFields inputs=inputs problems=problems />
            <div class="grid">
                <RxField id="srx-licence".into() label="Your licence / registration number"
                    value=inputs.licence field="prescriber" problems=problems />
                <NotesBox id="srx-notes" value=inputs.notes problems=problems />
            </div>
            <p class="help">"Prescriber: " {me.with_value(|m| m.username.clone())}</p>
            <FormActions prefix="srx" saving=saving locked=locked save=save on_close=on_close />
        </form>
    }
}

/// Save (with the chosen status), save and activate, cancel.
#[component]
fn FormActions<F>(
    prefix: &'static str,
    saving: RwSignal<bool>,
    locked: RwSignal<bool>,
    save: StoredValue<F>,
    on_close: Callback<Option<String>>,
) -> impl IntoView
where
    F: Fn(bool) + Send + Sync + 'static,
{
    let off = move || saving.get() || locked.get();
    view! {
        <div class="actions">
            <button id=format!("{prefix}-save") type="submit" class="button primary" disabled=off>
                {move || if saving.get() { "Saving…" } else { "Save" }}
            </button>
            <button id=format!("{prefix}-save-activate") type="button" class="button primary"
                disabled=off on:click=move |_| save.with_value(|s| s(true))>
                "Save and activate"
            </button>
            <button id=format!("{prefix}-cancel") type="button" class="button secondary"
                disabled=move || saving.get() on:click=move |_| on_close.run(None)>
                "Cancel"
            </button>
            <Show when=move || saving.get()>
                <Spinner label="Encrypting and saving…" />
            </Show>
        </div>
    }
}

#[component]
fn LensTypeSelect(lens_type: RwSignal<LensType>) -> impl IntoView {
    view! {
        <div class="field">
            <label for="srx-lens-type">"Lens type"</label>
            <select id="srx-lens-type" name="srx-lens-type"
                on:change=move |ev| {
                    if let Some(l) = LensType::parse(&event_target_value(&ev)) {
                        lens_type.set(l);
                    }
                }>
                {LensType::ALL.into_iter().map(|l| view! {
                    <option value=l.as_str() prop:selected=move || lens_type.get() == l>
                        {lens_type_label(l)}
                    </option>
                }).collect_view()}
            </select>
        </div>
    }
}

/// Fills both eyes from the chart's latest manifest refraction. Disabled, with the reason, when
/// there is none or my role cannot read exams.
#[component]
fn CopyFromExam(clinic_id: Uuid, chart_id: Uuid, inputs: SpectacleInputs) -> impl IntoView {
    let app = use_app();
    let store: RwSignal<RecordStore> = app.store(clinic_id).into();
    let source = Memo::new(move |_| store.with(|s| latest_manifest(&s.items_of(&chart_id))));
    let copied = RwSignal::new(None::<String>);
    let reads_exams = move || {
        app.clinic_tracked(&clinic_id)
            .is_some_and(|c| c.holds(Compartment::Clinical))
    };
    let hint = move || match (copied.get(), source.get()) {
        (Some(date), _) => format!("Copied from the exam of {date}: check every value."),
        (None, Some((_, date, _))) => {
            format!("From the manifest refraction of the exam of {date}.")
        }
        (None, None) if !reads_exams() => "Your role cannot read exams.".into(),
        (None, None) => "No exam with a manifest refraction in this chart yet.".into(),
    };
    let copy = move |_| {
        let Some((exam_id, date, r)) = source.get_untracked() else {
            return;
        };
        let eye = |e: &Option<EyeRefraction>| e.as_ref().map(EyeText::from_eye).unwrap_or_default();
        inputs.od.fill(&eye(&r.od));
        inputs.os.fill(&eye(&r.os));
        inputs.source_exam.set(Some(exam_id));
        copied.set(Some(date));
    };
    view! {
        <div class="rx-copy">
            <button id="srx-from-exam" type="button" class="button secondary"
                aria-describedby="srx-from-exam-hint"
                disabled=move || source.with(Option::is_none) on:click=copy>
                "Copy from the latest exam"
            </button>
            <span id="srx-from-exam-hint" class="help">{hint}</span>
        </div>
    }
}

#[component]
fn SpectacleEye(side: Side, eye: EyeInputs, problems: Signal<Problems>) -> impl IntoView {
    let n = srx_names(side);
    let p = side.as_str();
    let legend = match side {
        Side::Od => "OD · right eye",
        Side::Os => "OS · left eye",
    };
    view! {
        <fieldset class=format!("eye eye-{p}")>
            <legend>{legend}</legend>
            <div class="eye-grid">
                <RxField id=srx_id(n.sphere) label="Sphere" unit="D" value=eye.sphere field=n.sphere
                    problems=problems inputmode="decimal" placeholder="plano" />
                <RxField id=srx_id(n.cylinder) label="Cylinder" unit="D" value=eye.cylinder
                    field=n.cylinder problems=problems inputmode="decimal" />
                <RxField id=srx_id(n.axis) label="Axis" unit="°" value=eye.axis field=n.axis
                    problems=problems inputmode="numeric" />
                <RxField id=srx_id(n.add) label="Add" unit="D" value=eye.add field=n.add
                    problems=problems inputmode="decimal" />
                <PrismInput id=format!("srx-{p}-prism-v") label="Vertical prism" amount=eye.prism_v
                    base=eye.prism_v_base bases=[PrismBase::Up, PrismBase::Down] />
                <PrismInput id=format!("srx-{p}-prism-h") label="Horizontal prism" amount=eye.prism_h
                    base=eye.prism_h_base bases=[PrismBase::In, PrismBase::Out] />
            </div>
            <Messages id=format!("srx-{p}-prism") field=n.prism problems=problems />
        </fieldset>
    }
}

/// A prism amount (Δ) and its base (`{id}-base`).
#[component]
fn PrismInput(
    id: String,
    label: &'static str,
    amount: RwSignal<String>,
    base: RwSignal<PrismBase>,
    bases: [PrismBase; 2],
) -> impl IntoView {
    let base_id = format!("{id}-base");
    view! {
        <div class="field prism-field">
            <label for=id.clone()>{label} " " <span class="unit">"(Δ)"</span></label>
            <div class="prism-row">
                <input id=id.clone() name=id.clone() type="text" inputmode="decimal" autocomplete="off"
                    prop:value=move || amount.get()
                    on:input=move |ev| amount.set(event_target_value(&ev)) />
                <label class="visually-hidden" for=base_id.clone()>{label} " base"</label>
                <select id=base_id.clone() name=base_id
                    on:change=move |ev| {
                        if let Some(b) = PrismBase::parse(&event_target_value(&ev)) {
                            base.set(b);
                        }
                    }>
                    {bases.into_iter().map(|b| view! {
                        <option value=b.as_str() prop:selected=move || base.get() == b>
                            {format!("base {}", b.as_str())}
                        </option>
                    }).collect_view()}
                </select>
            </div>
        </div>
    }
}

/// Pupillary distance (binocular or monocular), near PD, segment height, vertex distance.
#[component]
fn PdFields(inputs: SpectacleInputs, problems: Signal<Problems>) -> impl IntoView {
    let mono = inputs.pd_monocular;
    view! {
        <fieldset class="pd-fields">
            <legend>"Fitting"</legend>
            <div class="radio-row" role="radiogroup" aria-label="Pupillary distance">
                <label class="radio">
                    <input id="srx-pd-binocular" type="radio" name="srx-pd-mode" value="binocular"
                        prop:checked=move || !mono.get() on:change=move |_| mono.set(false) />
                    " Binocular PD"
                </label>
                <label class="radio">
                    <input id="srx-pd-monocular" type="radio" name="srx-pd-mode" value="monocular"
                        prop:checked=move || mono.get() on:change=move |_| mono.set(true) />
                    " Monocular PD"
                </label>
            </div>
            <div class="grid">
                <Show when=move || !mono.get()
                    fallback=move || view! {
                        <RxField id="srx-pd-od".into() label="PD right (OD)" unit="mm" value=inputs.pd_od
                            field="pd.od" problems=problems inputmode="decimal" />
                        <RxField id="srx-pd-os".into() label="PD left (OS)" unit="mm" value=inputs.pd_os
                            field="pd.os" problems=problems inputmode="decimal" />
                    }>
                    <RxField id="srx-pd".into() label="PD" unit="mm" value=inputs.pd field="pd"
                        problems=problems inputmode="decimal" />
                </Show>
                <RxField id="srx-near-pd".into() label="Near PD" unit="mm" value=inputs.near_pd
                    field="near_pd" problems=problems inputmode="decimal" />
                <RxField id="srx-segment-height".into() label="Segment height" unit="mm"
                    value=inputs.segment_height field="segment_height" problems=problems
                    inputmode="decimal" />
                <RxField id="srx-vertex-distance".into() label="Vertex distance" unit="mm"
                    value=inputs.vertex_distance field="vertex_distance" problems=problems
                    inputmode="decimal" />
            </div>
        </fieldset>
    }
}

// ---- the contact-lens form -------------------------------------------------------------------

#[derive(Clone, Copy)]
struct ClEyeInputs {
    power: RwSignal<String>,
    cylinder: RwSignal<String>,
    axis: RwSignal<String>,
    add: RwSignal<String>,
    base_curve: RwSignal<String>,
    diameter: RwSignal<String>,
    color: RwSignal<String>,
}

impl ClEyeInputs {
    fn new(t: &ClEyeText) -> ClEyeInputs {
        let s = |v: &String| RwSignal::new(v.clone());
        ClEyeInputs {
            power: s(&t.power),
            cylinder: s(&t.cylinder),
            axis: s(&t.axis),
            add: s(&t.add),
            base_curve: s(&t.base_curve),
            diameter: s(&t.diameter),
            color: s(&t.color),
        }
    }

    fn fill(&self, t: &ClEyeText) {
        self.power.set(t.power.clone());
        self.cylinder.set(t.cylinder.clone());
        self.axis.set(t.axis.clone());
        self.add.set(t.add.clone());
        self.base_curve.set(t.base_curve.clone());
        self.diameter.set(t.diameter.clone());
        self.color.set(t.color.clone());
    }

    fn text(&self) -> ClEyeText {
        ClEyeText {
            power: self.power.get(),
            cylinder: self.cylinder.get(),
            axis: self.axis.get(),
            add: self.add.get(),
            base_curve: self.base_curve.get(),
            diameter: self.diameter.get(),
            color: self.color.get(),
        }
    }
}

#[derive(Clone, Copy)]
struct ContactInputs {
    status: RwSignal<RxStatus>,
    issued: RwSignal<String>,
    expiry: RwSignal<String>,
    expiry_auto: RwSignal<bool>,
    brand: RwSignal<String>,
    manufacturer: RwSignal<String>,
    material: RwSignal<String>,
    od: ClEyeInputs,
    os: ClEyeInputs,
    replacement: RwSignal<Option<Replacement>>,
    notes: RwSignal<String>,
    licence: RwSignal<String>,
    source_exam: RwSignal<Option<Uuid>>,
}

impl ContactInputs {
    fn new(t: &ContactText, expiry_auto: bool) -> ContactInputs {
        let s = |v: &String| RwSignal::new(v.clone());
        ContactInputs {
            status: RwSignal::new(t.status),
            issued: s(&t.issued),
            expiry: s(&t.expiry),
            expiry_auto: RwSignal::new(expiry_auto),
            brand: s(&t.brand),
            manufacturer: s(&t.manufacturer),
            material: s(&t.material),
            od: ClEyeInputs::new(&t.od),
            os: ClEyeInputs::new(&t.os),
            replacement: RwSignal::new(t.replacement),
            notes: s(&t.notes),
            licence: s(&t.licence),
            source_exam: RwSignal::new(t.source_exam),
        }
    }

    fn fill(&self, t: &ContactText) {
        self.status.set(t.status);
        self.issued.set(t.issued.clone());
        self.expiry.set(t.expiry.clone());
        self.brand.set(t.brand.clone());
        self.manufacturer.set(t.manufacturer.clone());
        self.material.set(t.material.clone());
        self.od.fill(&t.od);
        self.os.fill(&t.os);
        self.replacement.set(t.replacement);
        self.notes.set(t.notes.clone());
        self.licence.set(t.licence.clone());
        self.source_exam.set(t.source_exam);
    }

    fn text(&self) -> ContactText {
        ContactText {
            status: self.status.get(),
            issued: self.issued.get(),
            expiry: self.expiry.get(),
            brand: self.brand.get(),
            manufacturer: self.manufacturer.get(),
            material: self.material.get(),
            od: self.od.text(),
            os: self.os.text(),
            replacement: self.replacement.get(),
            notes: self.notes.get(),
            licence: self.licence.get(),
            source_exam: self.source_exam.get(),
        }
    }
}

/// The value of a replacement schedule in the select.
fn replacement_code(r: Replacement) -> &'static str {
    match r {
        Replacement::Daily => "daily",
        Replacement::Weekly => "weekly",
        Replacement::TwoWeekly => "two_weekly",
        Replacement::Monthly => "monthly",
        Replacement::Quarterly => "quarterly",
        Replacement::SixMonthly => "six_monthly",
        Replacement::Yearly => "yearly",
    }
}

#[component]
pub fn ContactLensRxForm(
    me: Arc<Unlocked>,
    clinic_id: Uuid,
    chart_id: Uuid,
    /// The draft being edited; `None` for a new prescription.
    existing: Option<RxEntry>,
    /// Called when the form closes: what to tell the user after a save, `None` when cancelled.
    on_close: Callback<Option<String>>,
) -> impl IntoView {
    let app = use_app();
    let navigate = use_navigate();
    let store: RwSignal<RecordStore> = app.store(clinic_id).into();
    let prescriber = me_as_prescriber(&me);
    let (record_id, version, start, auto) = match &existing {
        Some(RxEntry {
            id,
            version,
            rx: Rx::Contact(rx),
            ..
        }) => (*id, *version, ContactText::from_rx(rx), rx.expiry.is_none()),
        _ => {
            let licence = store.with_untracked(|s| my_licence(s, me.account_id));
            let t = ContactText {
                licence,
                ..ContactText::new(&today())
            };
            (Uuid::new_v4(), 0, t, true)
        }
    };
    let editing = existing.is_some();
    let version = RwSignal::new(version);
    let inputs = ContactInputs::new(&start, auto);
    let text = Memo::new(move |_| inputs.text());
    let attempted = RwSignal::new(false);
    let problems = problems_of(text, attempted, {
        let (prescriber, today) = (prescriber.clone(), today());
        move |t: &ContactText| {
            Problems::of(t.parse(&prescriber), |rx| Problems {
                errors: rx.validate(&today).err().unwrap_or_default(),
                warnings: rx.warnings(),
            })
        }
    });
    let form_error = RwSignal::new(None::<String>);
    let saving = RwSignal::new(false);
    let locked = RwSignal::new(false);
    let me = StoredValue::new(me);

    let save = move |activate: bool| {
        if saving.get_untracked() || locked.get_untracked() {
            return;
        }
        attempted.set(true);
        let mut t = text.get_untracked();
        if activate {
            t.status = RxStatus::Active;
        }
        let rx = match check_contacts(&t, &prescriber, &today()) {
            Ok(rx) => rx,
            Err(errs) => {
                form_error.set(Some(FIX_FIELDS.into()));
                focus_first(&errs, clrx_id);
                return;
            }
        };
        form_error.set(None);
        saving.set(true);
        let navigate = navigate.clone();
        spawn_local(async move {
            let status = rx.status;
            let body = RecordBody::ContactLensRx(rx);
            let expected = version.get_untracked();
            match save_item(
                app,
                me.get_value(),
                clinic_id,
                chart_id,
                record_id,
                expected,
                body,
            )
            .await
            {
                Ok(_) => {
                    // The component may be gone by now (the user moved on): nothing to tell then.
                    let _ = on_close.try_run(Some(saved_message(status)));
                }
                Err(e) => {
                    // `try_`: the form may be gone by now (an idle lock), and then there is nothing to refill.
                    let latest = store
                        .try_with_untracked(|s| match s.item(&chart_id, &record_id) {
                            Some(Item {
                                version,
                                body: RecordBody::ContactLensRx(rx),
                                ..
                            }) => Some((*version, rx.clone(), rx.status)),
                            _ => None,
                        })
                        .flatten();
                    let refill = |rx: &ContactLensRx| inputs.fill(&ContactText::from_rx(rx));
                    let e = after_failure(e, latest, version, refill, locked);
                    saving.set(false);
                    report_error(app, &navigate, form_error, e);
                }
            }
        });
    };
    let save = StoredValue::new(save);
    let on_submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        save.with_value(|s| s(false));
    };

    view! {
        <form id="clrx-form" class="rx-form" on:submit=on_submit novalidate
            aria-labelledby="clrx-form-title">
            <h3 id="clrx-form-title">
                {if editing { "Edit draft contact lens prescription" } else { "New contact lens prescription" }}
            </h3>
            {move || form_error.get().map(|e| view! { <p id="clrx-form-error" class="error" role="alert">{e}</p> })}
            <div class="grid">
                <StatusSelect id="clrx-status" status=inputs.status />
                <RxDates prefix="clrx" issued=inputs.issued expiry=inputs.expiry
                    expiry_auto=inputs.expiry_auto years=CONTACT_LENS_RX_YEARS problems=problems />
                <ReplacementSelect replacement=inputs.replacement />
            </div>
            <div class="grid">
                <RxField id="clrx-brand".into() label="Brand" value=inputs.brand field="brand"
                    problems=problems />
                <RxField id="clrx-manufacturer".into() label="Manufacturer" value=inputs.manufacturer
                    field="manufacturer" problems=problems />
                <RxField id="clrx-material".into() label="Material" value=inputs.material
                    field="material" problems=problems placeholder="e.g. silicone hydrogel" />
            </div>
            <Messages id="clrx-eyes".to_string() field="od" problems=problems />
            <div class="eye-pair">
                <ContactEye side=Side::Od eye=inputs.od problems=problems />
                <ContactEye side=Side::Os eye=inputs.os problems=problems />
            </div>
            <div class="grid">
                <RxField id="clrx-licence".into() label="Your licence / registration number"
                    value=inputs.licence field="prescriber" problems=problems />
                <NotesBox id="clrx-notes" value=inputs.notes problems=problems />
            </div>
            <p class="help">"Prescriber: " {me.with_value(|m| m.username.clone())}</p>
            <FormActions prefix="clrx" saving=saving locked=locked save=save on_close=on_close />
        </form>
    }
}

#[component]
fn ReplacementSelect(replacement: RwSignal<Option<Replacement>>) -> impl IntoView {
    view! {
        <div class="field">
            <label for="clrx-replacement">"Replacement"</label>
            <select id="clrx-replacement" name="clrx-replacement"
                on:change=move |ev| {
                    let v = event_target_value(&ev);
                    replacement.set(Replacement::ALL.into_iter().find(|r| replacement_code(*r) == v));
                }>
                <option value="" prop:selected=move || replacement.get().is_none()>"Not stated"</option>
                {Replacement::ALL.into_iter().map(|r| view! {
                    <option value=replacement_code(r) prop:selected=move || replacement.get() == Some(r)>
                        {replacement_label(r)}
                    </option>
                }).collect_view()}
            </select>
        </div>
    }
}

#[component]
fn ContactEye(side: Side, eye: ClEyeInputs, problems: Signal<Problems>) -> impl IntoView {
    let n = cl_names(side);
    let p = side.as_str();
    let legend = match side {
        Side::Od => "OD · right eye",
        Side::Os => "OS · left eye",
    };
    view! {
        <fieldset class=format!("eye eye-{p}")>
            <legend>{legend}</legend>
            <div class="eye-grid">
                <RxField id=clrx_id(n.power) label="Power" unit="D" value=eye.power field=n.power
                    problems=problems inputmode="decimal" />
                <RxField id=clrx_id(n.cylinder) label="Cylinder" unit="D" value=eye.cylinder
                    field=n.cylinder problems=problems inputmode="decimal" />
                <RxField id=clrx_id(n.axis) label="Axis" unit="°" value=eye.axis field=n.axis
                    problems=problems inputmode="numeric" />
                <RxField id=clrx_id(n.add) label="Add" unit="D" value=eye.add field=n.add
                    problems=problems inputmode="decimal" />
                <RxField id=clrx_id(n.base_curve) label="Base curve" unit="mm" value=eye.base_curve
                    field=n.base_curve problems=problems inputmode="decimal" placeholder="8.6" />
                <RxField id=clrx_id(n.diameter) label="Diameter" unit="mm" value=eye.diameter
                    field=n.diameter problems=problems inputmode="decimal" placeholder="14.2" />
                <RxField id=clrx_id(n.color) label="Tint" value=eye.color field=n.color
                    problems=problems />
            </div>
        </fieldset>
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use optovault_shared::chart::Exam;

    fn me() -> Prescriber {
        Prescriber {
            account_id: Some(Uuid::new_v4()),
            name: "optom".into(),
            licence: String::new(),
        }
    }

    fn fields(errs: &[FieldError]) -> Vec<&'static str> {
        errs.iter().map(|e| e.field).collect()
    }

    fn typed_eye(sphere: &str, cyl: &str, axis: &str, add: &str) -> EyeText {
        EyeText {
            sphere: sphere.into(),
            cylinder: cyl.into(),
            axis: axis.into(),
            add: add.into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_blank_eye_is_no_eye_and_a_typed_one_parses() {
        assert_eq!(EyeText::default().parse(Side::Od), Ok(None));
        let e = typed_eye("−2.25", "-0.50", "180°", "+2")
            .parse(Side::Od)
            .unwrap()
            .unwrap();
        assert_eq!(e.sphere, Diopters(-225));
        assert_eq!(e.cylinder, Diopters(-50));
        assert_eq!(e.axis, Some(180));
        assert_eq!(e.add, Some(Diopters(200)));
        // No cylinder: the axis is dropped rather than stored meaningless.
        let e = typed_eye("plano", "", "90", "")
            .parse(Side::Os)
            .unwrap()
            .unwrap();
        assert_eq!((e.sphere, e.axis), (Diopters(0), None));
    }

    #[test]
    fn what_does_not_parse_is_named_by_field() {
        let errs = typed_eye("", "-0.5x", "abc", "")
            .parse(Side::Os)
            .unwrap_err();
        assert_eq!(fields(&errs), ["os.sphere", "os.cylinder", "os.axis"]);
        let mut e = typed_eye("-1", "", "", "");
        e.prism_v = "1,5".into();
        assert_eq!(fields(&e.parse(Side::Od).unwrap_err()), ["od.prism"]);
        e.prism_v = "1.5".into();
        e.prism_v_base = PrismBase::Down;
        e.prism_h = "2".into();
        let p = e.parse(Side::Od).unwrap().unwrap().prism;
        assert_eq!(p.len(), 2);
        assert_eq!((p[0].amount, p[0].base), (Centi(150), PrismBase::Down));
        assert_eq!((p[1].amount, p[1].base), (Centi(200), PrismBase::In));
    }

    #[test]
    fn a_missing_axis_is_refused_by_the_shared_rules() {
        let mut t = SpectacleText::new("2026-01-10");
        t.od = typed_eye("-2.25", "-0.50", "", "");
        let errs = check_spectacles(&t, &me(), "2026-01-10").unwrap_err();
        assert_eq!(fields(&errs), ["od.axis"]);
        t.od.axis = "180".into();
        assert!(check_spectacles(&t, &me(), "2026-01-10").is_ok());
        // Nothing typed for either eye.
        let errs = check_spectacles(&SpectacleText::new("2026-01-10"), &me(), "2026-01-10");
        assert_eq!(fields(&errs.unwrap_err()), ["od"]);
    }

    #[test]
    fn spectacle_text_round_trips_and_keeps_the_default_expiry_implicit() {
        let mut t = SpectacleText::new("2026-01-10");
        assert_eq!(t.expiry, "2028-01-10");
        t.lens_type = LensType::Progressive;
        t.od = typed_eye("-2.25", "-0.50", "180", "+2.00");
        t.os = typed_eye("-1.75", "", "", "+2.00");
        t.pd_monocular = true;
        t.pd_od = "31.5".into();
        t.pd_os = "32".into();
        t.segment_height = "18".into();
        t.licence = " OD-4471 ".into();
        let rx = check_spectacles(&t, &me(), "2026-01-10").unwrap();
        assert_eq!(rx.expiry, None, "the default expiry is not repeated");
        assert_eq!(rx.prescriber.licence, "OD-4471");
        assert_eq!(
            rx.pd,
            Some(Pd::Monocular {
                od: Centi(3150),
                os: Centi(3200)
            })
        );
        let again = SpectacleText::from_rx(&rx).parse(&rx.prescriber).unwrap();
        assert_eq!(again, rx);
        t.expiry = "2027-06-30".into();
        assert_eq!(
            t.parse(&me()).unwrap().expiry.as_deref(),
            Some("2027-06-30")
        );
    }

    #[test]
    fn monocular_pd_needs_both_values() {
        let mut t = SpectacleText::new("2026-01-10");
        t.od = typed_eye("-1", "", "", "");
        t.pd_monocular = true;
        t.pd_od = "31".into();
        assert_eq!(fields(&t.parse(&me()).unwrap_err()), ["pd.os"]);
        t.pd_od.clear();
        assert_eq!(t.parse(&me()).unwrap().pd, None);
        // A binocular PD of 48 mm passes with a warning only.
        t.pd_monocular = false;
        t.pd = "48".into();
        let rx = check_spectacles(&t, &me(), "2026-01-10").unwrap();
        assert_eq!(fields(&rx.warnings()), ["pd"]);
    }

    fn typed_lens(bc: &str) -> ContactText {
        let mut t = ContactText::new("2026-01-10");
        t.brand = "Acuvue Oasys".into();
        t.manufacturer = "Johnson & Johnson".into();
        t.material = "senofilcon A".into();
        t.od = ClEyeText {
            power: "-3.00".into(),
            base_curve: bc.into(),
            diameter: "14.2".into(),
            ..Default::default()
        };
        t
    }

    #[test]
    fn contact_lens_base_curve_rules() {
        let errs = check_contacts(&typed_lens("5.0"), &me(), "2026-01-10").unwrap_err();
        assert_eq!(fields(&errs), ["od.base_curve"]);
        assert_eq!(clrx_id(errs[0].field), "clrx-od-bc");
        let rx = check_contacts(&typed_lens("8.6"), &me(), "2026-01-10").unwrap();
        let od = rx.od.as_ref().unwrap();
        assert_eq!((od.base_curve, od.diameter), (Centi(860), Centi(1420)));
        assert_eq!(rx.expiry, None);
        assert_eq!(ContactText::from_rx(&rx).parse(&rx.prescriber).unwrap(), rx);
        let mut t = typed_lens("");
        t.material.clear();
        let errs = t.parse(&me()).unwrap_err();
        assert_eq!(fields(&errs), ["od.base_curve"]);
        t.od.base_curve = "8.6".into();
        let errs = check_contacts(&t, &me(), "2026-01-10").unwrap_err();
        assert_eq!(fields(&errs), ["material"]);
    }

    #[test]
    fn ids_match_what_the_page_uses() {
        assert_eq!(srx_id("od.sphere"), "srx-od-sphere");
        assert_eq!(srx_id("near_pd"), "srx-near-pd");
        assert_eq!(srx_id("os.prism"), "srx-os-prism-v");
        assert_eq!(srx_id("lens_type"), "srx-lens-type");
        assert_eq!(clrx_id("os.diameter"), "clrx-os-dia");
        assert_eq!(clrx_id("os"), "clrx-os-power");
        assert_eq!(clrx_id("brand"), "clrx-brand");
    }

    fn exam(date: &str, refractions: Vec<Refraction>) -> RecordBody {
        RecordBody::Exam(Exam {
            date: date.into(),
            refractions,
            ..Default::default()
        })
    }

    fn refraction(kind: RefractionType, sphere: i32) -> Refraction {
        Refraction {
            refraction_type: kind,
            od: Some(EyeRefraction {
                sphere: Diopters(sphere),
                ..Default::default()
            }),
            os: None,
            notes: String::new(),
        }
    }

    #[test]
    fn copies_the_newest_manifest_refraction() {
        let item = |seq, body| Item {
            id: Uuid::new_v4(),
            version: 1,
            seq,
            body,
            author: "optom".into(),
            former: false,
        };
        assert!(latest_manifest(&[]).is_none());
        let items = vec![
            item(
                1,
                exam(
                    "2025-05-01",
                    vec![refraction(RefractionType::Manifest, -100)],
                ),
            ),
            // Newer, but only an autorefraction: skipped.
            item(
                2,
                exam("2026-01-01", vec![refraction(RefractionType::Auto, -300)]),
            ),
            // Written later but dated earlier.
            item(
                3,
                exam(
                    "2024-01-01",
                    vec![refraction(RefractionType::Manifest, -500)],
                ),
            ),
            item(
                4,
                exam(
                    "2025-05-01",
                    vec![
                        refraction(RefractionType::Manifest, -125),
                        refraction(RefractionType::Manifest, -150),
                    ],
                ),
            ),
        ];
        let (id, date, r) = latest_manifest(&items).unwrap();
        assert_eq!(id, items[3].id);
        assert_eq!(date, "2025-05-01");
        assert_eq!(r.od.unwrap().sphere, Diopters(-150), "the exam's final one");
    }
}

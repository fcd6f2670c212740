//! IOP and visual acuity over time, per eye, drawn as SVG on the patient's page.
//!
//! One point per eye per exam (signed or not), placed by exam date. IOP is the eye's highest
//! reading of the exam, against a dashed line at 21 mmHg (the upper limit of normal). Visual
//! acuity is the distance acuity with correction, else without, in logMAR with the axis turned so
//! that better vision is up, labelled in Snellen. The drawing is plain functions (scales, ticks,
//! label thinning, point lists) tested natively; the component only lays out what they compute.
//! No script: the SVG is built with Leptos elements (the CSP allows no inline style or script).

use leptos::prelude::*;
use optovault_shared::chart::exam::IOP_NORMAL_MAX;
use optovault_shared::chart::{Exam, EyeSel, LogMar, LowVision, Side};
use optovault_shared::domain::parse_date;
use optovault_shared::Compartment;
use uuid::Uuid;

use crate::components::exams::{chart_exams, distance_va, iop_of};
use crate::state::use_app;
use crate::store::RecordStore;

/// One point of a series.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pt {
    /// Julian day of the exam date (the x position).
    pub day: i32,
    pub date: String,
    /// mmHg, or logMAR thousandths.
    pub value: i32,
    /// As the clinician wrote it (`23 mmHg`, `20/40`, `CF`).
    pub text: String,
}

/// The points of the right and left eye, oldest first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Series {
    pub od: Vec<Pt>,
    pub os: Vec<Pt>,
}

impl Series {
    pub fn is_empty(&self) -> bool {
        self.od.is_empty() && self.os.is_empty()
    }
    fn all(&self) -> impl Iterator<Item = &Pt> {
        self.od.iter().chain(self.os.iter())
    }
    /// The distinct exam days of both eyes, with their dates, in order.
    pub fn days(&self) -> Vec<(i32, String)> {
        let mut d: Vec<(i32, String)> = self.all().map(|p| (p.day, p.date.clone())).collect();
        d.sort();
        d.dedup_by_key(|x| x.0);
        d
    }
}

/// Builds a series from the exams (any order): `value_of` gives an eye's value and text, if
/// measured. Exams without a valid date are left out (they cannot be placed).
fn series(exams: &[Exam], value_of: impl Fn(&Exam, Side) -> Option<(i32, String)>) -> Series {
    let mut s = Series::default();
    for e in exams {
        let Some(day) = parse_date(&e.date).map(|d| d.to_julian_day()) else {
            continue;
        };
        for side in [Side::Od, Side::Os] {
            if let Some((value, text)) = value_of(e, side) {
                let list = match side {
                    Side::Od => &mut s.od,
                    Side::Os => &mut s.os,
                };
                list.push(Pt {
                    day,
                    date: e.date.clone(),
                    value,
                    text,
                });
            }
        }
    }
    // Stable: exams of the same day keep the order they were given in.
    s.od.sort_by_key(|p| p.day);
    s.os.sort_by_key(|p| p.day);
    s
}

pub fn iop_series(exams: &[Exam]) -> Series {
    series(exams, |e, side| {
        iop_of(e, side).map(|r| (i32::from(r.mmhg), format!("{} mmHg", r.mmhg)))
    })
}

pub fn va_series(exams: &[Exam]) -> Series {
    series(exams, |e, side| {
        let eye = match side {
            Side::Od => EyeSel::Od,
            Side::Os => EyeSel::Os,
        };
        distance_va(e, eye).map(|v| {
            let text = format!("{} (logMAR {})", v.entered, v.logmar.logmar_string());
            (v.logmar.thousandths(), text)
        })
    })
}

/// A linear map from data to drawing coordinates.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Scale {
    pub d0: f64,
    pub d1: f64,
    pub r0: f64,
    pub r1: f64,
}

impl Scale {
    /// An empty domain (one date only) maps to the middle of the range.
    pub fn map(&self, v: f64) -> f64 {
        let span = self.d1 - self.d0;
        if span.abs() < f64::EPSILON {
            return (self.r0 + self.r1) / 2.0;
        }
        self.r0 + (v - self.d0) / span * (self.r1 - self.r0)
    }
}

/// Top of the IOP axis: 40 mmHg, or the highest value rounded up to 10.
pub fn iop_max(values: impl Iterator<Item = i32>) -> i32 {
    let top = values.max().unwrap_or(0);
    40.max((top + 9) / 10 * 10)
}

/// `lo, lo + step, ...` up to `hi`.
pub fn ticks(lo: i32, hi: i32, step: i32) -> Vec<i32> {
    if step <= 0 {
        return Vec::new();
    }
    (0..)
        .map(|i| lo.saturating_add(i * step))
        .take_while(|t| *t <= hi)
        .take(100)
        .collect()
}

/// The logMAR range shown (thousandths): at least −0.10 (20/16) to 1.00 (20/200), widened to
/// whole tenths around the data.
pub fn va_domain(values: impl Iterator<Item = i32>) -> (i32, i32) {
    let (mut lo, mut hi) = (-100, 1000);
    for v in values {
        lo = lo.min(v.div_euclid(100) * 100);
        hi = hi.max(-((-v).div_euclid(100) * 100));
    }
    (lo, hi)
}

/// Acuity lines worth labelling, most useful first: 20/20, 20/40 (driving), 20/200 (legal
/// blindness), then the rest of the chart, then the low-vision codes.
const VA_TICKS: [i32; 14] = [
    0, 300, 1000, 700, 500, 200, 100, -100, 400, 600, -300, 1300, 1600, 2000,
];

/// Snellen label of a logMAR line (`20/40`), or the low-vision code at its conventional value.
pub fn snellen_label(thousandths: i32) -> String {
    LowVision::ALL
        .into_iter()
        .find(|lv| lv.logmar().thousandths() == thousandths)
        .map_or_else(
            || LogMar(thousandths).snellen_feet(),
            |lv| lv.code().to_string(),
        )
}

/// The acuity lines to label on a VA axis over `lo..=hi` drawn by `y`: by usefulness, leaving
/// out any closer than `min_gap` to one already chosen; sorted best first.
pub fn va_ticks(lo: i32, hi: i32, y: &Scale, min_gap: f64) -> Vec<i32> {
    let low_vision = LowVision::ALL.map(|lv| lv.logmar().thousandths());
    let mut chosen: Vec<i32> = Vec::new();
    for t in VA_TICKS.into_iter().chain(low_vision) {
        let fits = (lo..=hi).contains(&t);
        let clear = chosen
            .iter()
            .all(|c| (y.map(f64::from(*c)) - y.map(f64::from(t))).abs() >= min_gap);
        if fits && clear {
            chosen.push(t);
        }
    }
    chosen.sort_unstable();
    chosen
}

/// Which of the x positions (in order) get a date label: from the left, each at least `min_gap`
/// from the last one labelled; the last position is always labelled (the latest exam), dropping
/// labels too close to it.
pub fn pick_labels(xs: &[f64], min_gap: f64) -> Vec<usize> {
    let mut picked: Vec<usize> = Vec::new();
    for (i, x) in xs.iter().enumerate() {
        if picked.last().is_none_or(|&p| x - xs[p] >= min_gap) {
            picked.push(i);
        }
    }
    if let Some(last) = xs.len().checked_sub(1) {
        if picked.last() != Some(&last) {
            while picked.last().is_some_and(|&p| xs[last] - xs[p] < min_gap) {
                picked.pop();
            }
            picked.push(last);
        }
    }
    picked
}

/// SVG `points` of a polyline.
pub fn polyline(points: &[(f64, f64)]) -> String {
    points
        .iter()
        .map(|(x, y)| format!("{x:.1},{y:.1}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The chart area inside the SVG's view box.
const WIDTH: f64 = 520.0;
const HEIGHT: f64 = 230.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 30.0;
const BOTTOM: f64 = 40.0;
/// Keeps the first and last points off the axes.
const PAD: f64 = 18.0;

fn x_scale(days: &[(i32, String)]) -> Scale {
    let first = days.first().map_or(0, |d| d.0);
    let last = days.last().map_or(0, |d| d.0);
    Scale {
        d0: f64::from(first),
        d1: f64::from(last),
        r0: LEFT + PAD,
        r1: WIDTH - RIGHT - PAD,
    }
}

fn n(v: f64) -> String {
    format!("{v:.1}")
}

/// Values of one eye for the chart's description: `16 (2024-11-20), 19 (2025-11-18)`.
fn describe(points: &[Pt]) -> String {
    if points.is_empty() {
        return "none".into();
    }
    points
        .iter()
        .map(|p| format!("{} ({})", p.text, p.date))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Grid, date labels, legend and both eyes' lines and points of one chart.
fn plot(s: &Series, y: Scale, flag: impl Fn(&Pt) -> bool) -> impl IntoView {
    let days = s.days();
    let x = x_scale(&days);
    let xs: Vec<f64> = days.iter().map(|d| x.map(f64::from(d.0))).collect();
    let labels = pick_labels(&xs, 78.0);
    let date_labels = labels
        .into_iter()
        .filter_map(|i| Some((*xs.get(i)?, days.get(i)?.1.clone())))
        .map(|(px, date)| {
            view! {
                <text class="date-label" x=n(px) y=n(HEIGHT - BOTTOM + 18.0) text-anchor="middle">{date}</text>
            }
        })
        .collect_view();
    let line = |pts: &[Pt]| {
        polyline(
            &pts.iter()
                .map(|p| (x.map(f64::from(p.day)), y.map(f64::from(p.value))))
                .collect::<Vec<_>>(),
        )
    };
    let od_points =
        s.od.iter()
            .map(|p| {
                let (cx, cy) = (x.map(f64::from(p.day)), y.map(f64::from(p.value)));
                view! {
                    <circle class="pt pt-od" class:flag=flag(p) cx=n(cx) cy=n(cy) r="5">
                        <title>{format!("OD {}: {}", p.date, p.text)}</title>
                    </circle>
                }
            })
            .collect_view();
    // OS: squares, so the eyes differ by shape as well as colour.
    let os_points = s
        .os
        .iter()
        .map(|p| {
            let (cx, cy) = (x.map(f64::from(p.day)), y.map(f64::from(p.value)));
            view! {
                <rect class="pt pt-os" class:flag=flag(p) x=n(cx - 4.5) y=n(cy - 4.5) width="9" height="9">
                    <title>{format!("OS {}: {}", p.date, p.text)}</title>
                </rect>
            }
        })
        .collect_view();
    let (od_line, os_line) = (line(&s.od), line(&s.os));
    view! {
        <line class="axis" x1=n(LEFT) y1=n(TOP) x2=n(LEFT) y2=n(HEIGHT - BOTTOM) />
        <line class="axis" x1=n(LEFT) y1=n(HEIGHT - BOTTOM) x2=n(WIDTH - RIGHT) y2=n(HEIGHT - BOTTOM) />
        {date_labels}
        <polyline class="line line-od" points=od_line />
        <polyline class="line line-os" points=os_line />
        {od_points}
        {os_points}
        <g class="legend">
            <circle class="key-od" cx=n(WIDTH - 170.0) cy="14" r="5" />
            <text class="legend-label" x=n(WIDTH - 160.0) y="18">"OD (right)"</text>
            <rect class="key-os" x=n(WIDTH - 90.0) y="9.5" width="9" height="9" />
            <text class="legend-label" x=n(WIDTH - 76.0) y="18">"OS (left)"</text>
        </g>
    }
}

/// Horizontal grid lines with their labels at the left.
fn y_grid(y: Scale, marks: Vec<(i32, String)>) -> impl IntoView {
    marks
        .into_iter()
        .map(|(v, label)| {
            let py = y.map(f64::from(v));
            view! {
                <g class="tick">
                    <line class="grid" x1=n(LEFT) y1=n(py) x2=n(WIDTH - RIGHT) y2=n(py) />
                    <text class="tick-label" x=n(LEFT - 6.0) y=n(py + 4.0) text-anchor="end">{label}</text>
                </g>
            }
        })
        .collect_view()
}

fn iop_chart(s: Series) -> impl IntoView {
    let max = iop_max(s.all().map(|p| p.value));
    let y = Scale {
        d0: 0.0,
        d1: f64::from(max),
        r0: HEIGHT - BOTTOM,
        r1: TOP,
    };
    let marks = ticks(0, max, 10)
        .into_iter()
        .map(|t| (t, t.to_string()))
        .collect();
    let limit = i32::from(IOP_NORMAL_MAX);
    let ly = y.map(f64::from(limit));
    let label = format!(
        "Intraocular pressure in mmHg by exam date. Right eye (OD): {}. Left eye (OS): {}. \
         The dashed line marks {limit} mmHg, the upper limit of normal.",
        describe(&s.od),
        describe(&s.os)
    );
    view! {
        <svg class="trend trend-iop" viewBox=format!("0 0 {WIDTH} {HEIGHT}") role="img" aria-label=label>
            {y_grid(y, marks)}
            <text class="axis-title" x="4" y="16">"mmHg"</text>
            <line class="threshold" x1=n(LEFT) y1=n(ly) x2=n(WIDTH - RIGHT) y2=n(ly) />
            // Named in the legend rather than on the line, where it would cover points.
            <g class="legend">
                <line class="key-threshold" x1=n(WIDTH - 265.0) y1="14" x2=n(WIDTH - 243.0) y2="14" />
                <text class="legend-label" x=n(WIDTH - 238.0) y="18">{format!("{limit} mmHg")}</text>
            </g>
            {plot(&s, y, move |p| p.value > limit)}
        </svg>
    }
}

fn va_chart(s: Series) -> impl IntoView {
    let (lo, hi) = va_domain(s.all().map(|p| p.value));
    // Better acuity (lower logMAR) at the top.
    let y = Scale {
        d0: f64::from(lo),
        d1: f64::from(hi),
        r0: TOP,
        r1: HEIGHT - BOTTOM,
    };
    let marks = va_ticks(lo, hi, &y, 15.0)
        .into_iter()
        .map(|t| (t, snellen_label(t)))
        .collect();
    let label = format!(
        "Distance visual acuity by exam date, better vision higher. Right eye (OD): {}. \
         Left eye (OS): {}.",
        describe(&s.od),
        describe(&s.os)
    );
    view! {
        <svg class="trend trend-va" viewBox=format!("0 0 {WIDTH} {HEIGHT}") role="img" aria-label=label>
            {y_grid(y, marks)}
            <text class="axis-title" x="4" y="16">"Snellen"</text>
            {plot(&s, y, |_| false)}
        </svg>
    }
}

#[component]
pub fn Trends(
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
    // Oldest first (the list is newest first).
    let exams = Memo::new(move |_| {
        store.with(|s| {
            chart_exams(s, &chart_id)
                .into_iter()
                .rev()
                .map(|e| e.exam)
                .collect::<Vec<_>>()
        })
    });
    let iop = Memo::new(move |_| exams.with(|e| iop_series(e)));
    let va = Memo::new(move |_| exams.with(|e| va_series(e)));
    view! {
        <Show when=move || ready.get() && allowed() && exams.with(|e| !e.is_empty())>
            <section id="trends" class="card trends" aria-labelledby="trends-title">
                <h2 id="trends-title">"Trends"</h2>
                <div class="trend-grid">
                    <figure class="trend-figure">
                        <figcaption>"Intraocular pressure (mmHg)"</figcaption>
                        {move || {
                            let s = iop.get();
                            if s.is_empty() {
                                view! { <p class="empty">"No IOP recorded yet."</p> }.into_any()
                            } else {
                                iop_chart(s).into_any()
                            }
                        }}
                    </figure>
                    <figure class="trend-figure">
                        <figcaption>"Distance visual acuity (logMAR, better is up)"</figcaption>
                        {move || {
                            let s = va.get();
                            if s.is_empty() {
                                view! { <p class="empty">"No distance visual acuity recorded yet."</p> }.into_any()
                            } else {
                                va_chart(s).into_any()
                            }
                        }}
                    </figure>
                </div>
            </section>
        </Show>
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use optovault_shared::chart::{
        IopMethod, IopReading, VaCorrection, VaDistance, VaNotation, VisualAcuity,
    };

    fn exam(date: &str, od: Option<u16>, os: Option<u16>) -> Exam {
        let reading = |eye, mmhg| IopReading {
            eye,
            mmhg,
            method: IopMethod::Goldmann,
            time: None,
        };
        Exam {
            date: date.into(),
            iop: od
                .map(|v| reading(Side::Od, v))
                .into_iter()
                .chain(os.map(|v| reading(Side::Os, v)))
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn one_point_per_eye_per_exam_sorted_by_date() {
        let exams = [
            exam("2026-11-20", Some(23), Some(22)),
            exam("2024-11-20", Some(16), Some(17)),
            exam("not a date", Some(30), None),
            exam("2025-11-18", Some(19), None),
        ];
        let s = iop_series(&exams);
        let od: Vec<i32> = s.od.iter().map(|p| p.value).collect();
        let os: Vec<i32> = s.os.iter().map(|p| p.value).collect();
        assert_eq!(od, [16, 19, 23]);
        assert_eq!(os, [17, 22]);
        assert_eq!(s.od[2].text, "23 mmHg");
        let days: Vec<String> = s.days().into_iter().map(|d| d.1).collect();
        assert_eq!(days, ["2024-11-20", "2025-11-18", "2026-11-20"]);
        assert!(iop_series(&[]).is_empty());
    }

    #[test]
    fn va_points_are_logmar_of_the_distance_acuity() {
        let mut e = exam("2026-11-20", None, None);
        e.visual_acuity = vec![
            VisualAcuity::new(
                EyeSel::Od,
                VaDistance::Distance,
                VaCorrection::Cc,
                VaNotation::SnellenFeet,
                "20/40",
            )
            .unwrap(),
            VisualAcuity::new(
                EyeSel::Os,
                VaDistance::Near,
                VaCorrection::Cc,
                VaNotation::SnellenFeet,
                "20/20",
            )
            .unwrap(),
        ];
        let s = va_series(&[e]);
        assert_eq!(s.od.len(), 1);
        assert_eq!(s.od[0].value, 301);
        assert_eq!(s.od[0].text, "20/40 (logMAR 0.30)");
        assert!(s.os.is_empty(), "near acuity is not charted");
    }

    #[test]
    fn scales() {
        let y = Scale {
            d0: 0.0,
            d1: 40.0,
            r0: 190.0,
            r1: 30.0,
        };
        assert_eq!(y.map(0.0), 190.0);
        assert_eq!(y.map(40.0), 30.0);
        assert_eq!(y.map(20.0), 110.0);
        let single = Scale {
            d0: 5.0,
            d1: 5.0,
            r0: 0.0,
            r1: 100.0,
        };
        assert_eq!(single.map(5.0), 50.0, "one date sits in the middle");
    }

    #[test]
    fn iop_axis() {
        assert_eq!(iop_max([16, 23].into_iter()), 40);
        assert_eq!(iop_max([41].into_iter()), 50);
        assert_eq!(iop_max([50].into_iter()), 50);
        assert_eq!(iop_max(std::iter::empty()), 40);
        assert_eq!(ticks(0, 40, 10), [0, 10, 20, 30, 40]);
        assert_eq!(ticks(0, 40, 0), Vec::<i32>::new());
    }

    #[test]
    fn va_axis_is_labelled_in_snellen_better_up() {
        assert_eq!(va_domain([0, 301].into_iter()), (-100, 1000));
        assert_eq!(va_domain([-180, 1900].into_iter()), (-200, 1900));
        assert_eq!(va_domain([1050].into_iter()), (-100, 1100));
        assert_eq!(snellen_label(0), "20/20");
        assert_eq!(snellen_label(300), "20/40");
        assert_eq!(snellen_label(1000), "20/200");
        assert_eq!(snellen_label(1900), "CF");
        let y = Scale {
            d0: -100.0,
            d1: 1000.0,
            r0: 30.0,
            r1: 190.0,
        };
        assert!(y.map(0.0) < y.map(300.0), "20/20 is drawn above 20/40");
        let t = va_ticks(-100, 1000, &y, 15.0);
        assert!(t.contains(&0) && t.contains(&300) && t.contains(&1000));
        assert!(t
            .windows(2)
            .all(|w| y.map(f64::from(w[1])) - y.map(f64::from(w[0])) >= 15.0));
        let wide = Scale { d1: 3000.0, ..y };
        let t = va_ticks(-100, 3000, &wide, 15.0);
        assert!(t.contains(&1900) || t.contains(&2000));
        assert!(t.iter().all(|v| (-100..=3000).contains(v)));
    }

    #[test]
    fn date_labels_do_not_overlap_and_keep_the_latest() {
        assert_eq!(pick_labels(&[], 78.0), Vec::<usize>::new());
        assert_eq!(pick_labels(&[100.0], 78.0), [0]);
        assert_eq!(pick_labels(&[0.0, 100.0, 200.0], 78.0), [0, 1, 2]);
        assert_eq!(pick_labels(&[0.0, 10.0, 20.0, 200.0], 78.0), [0, 3]);
        assert_eq!(pick_labels(&[0.0, 100.0, 150.0], 78.0), [0, 2]);
        assert_eq!(pick_labels(&[0.0, 30.0], 78.0), [1]);
    }

    #[test]
    fn polyline_points() {
        assert_eq!(polyline(&[(1.0, 2.0), (3.04, 4.0)]), "1.0,2.0 3.0,4.0");
        assert_eq!(polyline(&[]), "");
    }
}

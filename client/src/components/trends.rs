//! IOP and visual acuity over time, per eye, drawn as SVG on the patient's page.

use leptos::prelude::*;
use uuid::Uuid;

#[component]
pub fn Trends(
    clinic_id: Uuid,
    /// The patient's record id.
    chart_id: Uuid,
    /// The patient is loaded and found.
    #[prop(into)]
    ready: Signal<bool>,
) -> impl IntoView {
    let _ = (clinic_id, chart_id, ready);
}

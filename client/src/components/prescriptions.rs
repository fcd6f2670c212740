//! Spectacle and contact-lens prescriptions of one chart (prescriptions compartment).

use std::sync::Arc;

use leptos::prelude::*;
use uuid::Uuid;

use crate::state::Unlocked;

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
    let _ = (me, clinic_id, chart_id, ready);
}

pub mod account;
pub mod audit;
pub mod backup;
pub mod calendar;
pub mod clinics;
pub mod import;
pub mod invite;
pub mod login;
pub mod members;
pub mod not_found;
pub mod patient_form;
pub mod patients;
pub mod print_rx;
pub mod recover;
pub mod register;
pub mod worklist;

use leptos::prelude::*;
use leptos_router::NavigateOptions;

use crate::api::ApiError;
use crate::state::AppState;

/// Shows an API error in `target`, or, when the session is gone, locks and goes to the login page.
pub fn report_error(
    app: AppState,
    navigate: &impl Fn(&str, NavigateOptions),
    target: RwSignal<Option<String>>,
    e: ApiError,
) {
    if e.is_unauthenticated() {
        app.session_ended();
        navigate("/login", Default::default());
    } else if crate::clinic::is_policy_block(&e) {
        // The clinic's policy, not a failure: the header explains and links to the account page.
        target.set(None);
        app.policy_block.set(Some(e.message));
    } else {
        target.set(Some(e.message));
    }
}

/// Opens a clinic (keys, roster) and syncs its store, for pages reached directly (a reload or a
/// link): the clinic goes into `clinic`, problems into `error`.
pub fn open_clinic_and_sync(
    app: AppState,
    me: std::sync::Arc<crate::state::Unlocked>,
    clinic_id: uuid::Uuid,
    clinic: RwSignal<Option<std::sync::Arc<crate::state::Clinic>>>,
    error: RwSignal<Option<String>>,
    navigate: impl Fn(&str, NavigateOptions) + Clone + 'static,
) {
    let store = app.store(clinic_id);
    leptos::task::spawn_local(async move {
        let c = match crate::clinic::ensure_clinic(app, &me, clinic_id).await {
            Ok(c) => c,
            Err(e) if e.status == 404 => {
                error.set(Some("Clinic not found.".into()));
                return;
            }
            Err(e) => return report_error(app, &navigate, error, e),
        };
        clinic.set(Some(c.clone()));
        if let Err(e) = crate::store::sync(app, me, c, store).await {
            report_error(app, &navigate, error, e);
        }
    });
}

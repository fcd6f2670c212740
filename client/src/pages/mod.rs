pub mod account;
pub mod clinics;
pub mod invite;
pub mod login;
pub mod members;
pub mod not_found;
pub mod patient_form;
pub mod patients;
pub mod recover;
pub mod register;

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

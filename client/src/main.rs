//! OptoVault's browser client: a Leptos single-page app. Every record is encrypted and signed
//! here before it is sent, and verified and decrypted here after it is fetched; the password and
//! all private and clinic keys stay in this page's memory only.

mod api;
mod auth;
mod charts;
mod clinic;
mod components;
mod pages;
mod records;
mod state;
mod store;
mod team;
mod util;

use leptos::prelude::*;
use leptos_router::components::{Route, Router, Routes};
use leptos_router::path;

use pages::clinics::ClinicsPage;
use pages::invite::InvitePage;
use pages::login::LoginPage;
use pages::members::MembersPage;
use pages::not_found::NotFound;
use pages::patient_form::PatientFormPage;
use pages::patients::PatientsPage;
use pages::register::RegisterPage;
use state::AppState;

#[component]
fn App() -> impl IntoView {
    provide_context(AppState::new());
    view! {
        <Router>
            <Routes fallback=NotFound>
                <Route path=path!("/") view=LoginPage />
                <Route path=path!("/login") view=LoginPage />
                <Route path=path!("/register") view=RegisterPage />
                <Route path=path!("/clinics") view=ClinicsPage />
                <Route path=path!("/clinics/:clinic_id/patients") view=PatientsPage />
                // `new` or a patient's record id.
                <Route path=path!("/clinics/:clinic_id/patients/:patient_id") view=PatientFormPage />
                <Route path=path!("/clinics/:clinic_id/members") view=MembersPage />
                <Route path=path!("/invite/:clinic_id/:invitation_id") view=InvitePage />
            </Routes>
        </Router>
    }
}

fn main() {
    console_error_panic_hook::set_once();
    leptos::mount::mount_to_body(App);
}

//! OptoVault's browser client: a Leptos single-page app. Every record is encrypted and signed
//! here before it is sent, and verified and decrypted here after it is fetched; the password and
//! all private and clinic keys stay in this page's memory only.

mod api;
mod audit;
mod auth;
mod charts;
mod clinic;
mod components;
mod export;
mod files;
mod idle;
mod pages;
mod passkeys;
mod patient_index;
mod records;
mod state;
mod store;
mod team;
mod util;

use leptos::prelude::*;
use leptos_router::components::{Route, Router, Routes};
use leptos_router::path;

use components::lock_screen::LockScreen;
use pages::account::AccountPage;
use pages::audit::AuditPage;
use pages::backup::BackupPage;
use pages::calendar::CalendarPage;
use pages::clinics::ClinicsPage;
use pages::import::ImportPage;
use pages::invite::InvitePage;
use pages::login::LoginPage;
use pages::members::MembersPage;
use pages::not_found::NotFound;
use pages::patient_form::PatientFormPage;
use pages::patients::PatientsPage;
use pages::print_rx::PrintRxPage;
use pages::recover::RecoverPage;
use pages::register::RegisterPage;
use pages::worklist::WorklistPage;
use state::AppState;

#[component]
fn App() -> impl IntoView {
    let app = AppState::new();
    provide_context(app);
    idle::watch(app);
    let unlocked = move || app.locked.with(Option::is_none);
    view! {
        <Router>
            // After an idle lock no page is mounted (none holds a key); every address shows the
            // lock screen until the password is entered again.
            <Show when=unlocked fallback=|| view! { <LockScreen /> }>
                <Routes fallback=NotFound>
                    <Route path=path!("/") view=LoginPage />
                    <Route path=path!("/login") view=LoginPage />
                    <Route path=path!("/register") view=RegisterPage />
                    <Route path=path!("/recover") view=RecoverPage />
                    <Route path=path!("/import") view=ImportPage />
                    <Route path=path!("/clinics") view=ClinicsPage />
                    <Route path=path!("/clinics/:clinic_id/patients") view=PatientsPage />
                    // `new` or a patient's record id.
                    <Route path=path!("/clinics/:clinic_id/patients/:patient_id") view=PatientFormPage />
                    <Route path=path!("/clinics/:clinic_id/members") view=MembersPage />
                    <Route path=path!("/clinics/:clinic_id/patients/:patient_id/rx/:record_id/print") view=PrintRxPage />
                    <Route path=path!("/clinics/:clinic_id/calendar") view=CalendarPage />
                    <Route path=path!("/clinics/:clinic_id/worklist") view=WorklistPage />
                    <Route path=path!("/clinics/:clinic_id/audit") view=AuditPage />
                    <Route path=path!("/clinics/:clinic_id/backup") view=BackupPage />
                    <Route path=path!("/invite/:clinic_id/:invitation_id") view=InvitePage />
                    <Route path=path!("/account") view=AccountPage />
                </Routes>
            </Show>
        </Router>
    }
}

fn main() {
    console_error_panic_hook::set_once();
    leptos::mount::mount_to_body(App);
}

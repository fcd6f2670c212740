//! The OpenAPI 3.1 document, generated from the handlers' annotations and the wire types.

use axum::http::header;
use axum::response::IntoResponse;
use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "OptoVault API",
        description = "Zero-knowledge records server: every record body is ciphertext sealed in the browser."
    ),
    paths(
        crate::accounts::register_start,
        crate::accounts::register_finish,
        crate::session::login_start,
        crate::session::login_finish,
        crate::session::login_abort,
        crate::session::current,
        crate::session::logout,
        crate::clinics::list,
        crate::clinics::create,
        crate::clinics::show,
        crate::records::batch_write,
        crate::records::write_one,
        crate::records::show,
        crate::records::versions,
        crate::records::list,
        crate::records::changes,
        crate::records::read_many,
        crate::records::change_headers,
        crate::audit::list,
        crate::export::export,
        crate::import::import,
        crate::audit::report,
        crate::audit::document_generated,
        crate::audit::audit_key,
        crate::audit::set_audit_key,
        crate::audit::share_audit_key,
        crate::audit::checkpoints,
        crate::audit::add_checkpoint,
        crate::members::roster,
        crate::members::list,
        crate::members::add,
        crate::members::rotate,
        crate::invitations::create,
        crate::invitations::list,
        crate::invitations::revoke,
        crate::invitations::info,
        crate::invitations::accept,
        crate::charts::list,
        crate::charts::erase,
        crate::recovery::status,
        crate::recovery::setup,
        crate::recovery::start,
        crate::recovery::finish,
        crate::policy::show,
        crate::policy::set,
        crate::policy::checklist,
        crate::policy::require_password_change,
        crate::mfa::verify,
        crate::mfa::status,
        crate::mfa::enroll,
        crate::mfa::confirm,
        crate::mfa::disable,
        crate::passkeys::register_start,
        crate::passkeys::register_finish,
        crate::passkeys::remove,
        crate::passkeys::login_challenge,
        crate::session::list_sessions,
        crate::session::revoke_session,
        crate::session::revoke_other_sessions,
        crate::accounts::password_start,
        crate::accounts::password_finish,
        crate::members::revoke_member_sessions,
        crate::members::unlock_member,
        crate::charts::restrict,
        crate::charts::change_team,
        crate::files::start,
        crate::files::status,
        crate::files::upload_chunk,
        crate::files::complete,
        crate::files::download_chunk,
    ),
    components(schemas(optovault_shared::wire::ApiErrorBody, crate::files::ChunkBytes))
)]
pub struct ApiDoc;

pub async fn serve() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        ApiDoc::openapi().to_json().unwrap_or_else(|_| "{}".into()),
    )
}

//! The OptoVault server: accounts with OPAQUE, sessions, clinics, membership and an encrypted
//! record store. It never sees a password, a private key or a plaintext record: it stores and
//! serves ciphertext, and enforces who may fetch which ciphertext.
//!
//! A router per resource (`accounts`, `session`, `clinics`, `records`, `events`); handlers are thin
//! and call plain functions; storage is behind [`store::Store`].

pub mod accounts;
pub mod audit;
pub mod audit_verify;
pub mod backup;
pub mod charts;
pub mod clinics;
pub mod config;
pub mod error;
pub mod export;
pub mod files;
pub mod http;
pub mod import;
pub mod invitations;
pub mod members;
pub mod mfa;
pub mod openapi;
pub mod passkeys;
pub mod policy;
pub mod records;
pub mod recovery;
pub mod session;
pub mod store;
pub mod team;
pub mod throttle;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderValue};
use axum::routing::get;
use axum::{Json, Router};
use opaque_ke::ServerSetup;
use optovault_shared::opaque::Suite;
use rand_core::OsRng;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::services::{ServeDir, ServeFile};
use tower_http::set_header::SetResponseHeaderLayer;

use crate::error::ApiError;
use crate::store::{Store, StoreError};

/// Settings the handlers need (the rest of the config is for `main`).
#[derive(Clone, Debug)]
pub struct Settings {
    /// Add `Secure` to the session cookie (always, when served over TLS).
    pub cookie_secure: bool,
    /// Absolute session lifetime in seconds.
    pub session_ttl_secs: i64,
    /// A session unused for this long ends (seconds).
    pub session_idle_secs: i64,
    /// The address people open in the browser; its host is the passkeys' relying party ID.
    pub public_url: String,
    /// The largest clinic export an import accepts (0: imports are refused).
    pub import_max_bytes: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            cookie_secure: false,
            session_ttl_secs: 12 * 3600,
            session_idle_secs: 15 * 60,
            public_url: "http://localhost:8080".into(),
            import_max_bytes: 16 << 30,
        }
    }
}

#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub opaque: Arc<ServerSetup<Suite>>,
    pub settings: Arc<Settings>,
    /// The WebAuthn relying party (passkeys), built from `settings.public_url`.
    pub webauthn: Arc<webauthn_rs::Webauthn>,
    /// The backup job's last outcome (health endpoint, owners' checklist).
    pub backups: backup::schedule::SharedBackupStatus,
    /// Held by the import that is running: one at a time.
    pub imports: Arc<tokio::sync::Mutex<()>>,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Config(String),
}

impl AppState {
    /// Loads the OPAQUE server setup from the store, creating it on first start.
    pub async fn new(store: Arc<dyn Store>, settings: Settings) -> Result<AppState, StartError> {
        let webauthn = passkeys::relying_party(&settings.public_url).map_err(StartError::Config)?;
        let fresh = ServerSetup::<Suite>::new(&mut OsRng).serialize().to_vec();
        let bytes = store.server_setup_or_init(fresh).await?;
        let setup =
            ServerSetup::<Suite>::deserialize(&bytes).map_err(|_| StoreError::Corrupt("meta"))?;
        Ok(AppState {
            store,
            opaque: Arc::new(setup),
            settings: Arc::new(settings),
            webauthn: Arc::new(webauthn),
            backups: Default::default(),
            imports: Default::default(),
        })
    }
}

pub fn now() -> optovault_shared::UnixTime {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Liveness, and when the last verified backup was made (for monitoring: a stale time there
/// means backups have stopped).
async fn health(State(state): State<AppState>) -> Json<serde_json::Value> {
    let backups = state.backups.lock().unwrap().clone();
    Json(serde_json::json!({ "status": "ok", "backups": backups }))
}

async fn api_not_found() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::NOT_FOUND,
        "no_such_endpoint",
        "No such API endpoint.",
    )
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "This endpoint does not accept that method.",
    )
}

/// The whole application: API routes, the static client (if a directory is given), security
/// headers, body limits and a last-resort panic guard that still answers in JSON.
pub fn app(state: AppState, static_dir: Option<&std::path::Path>) -> Router {
    let api = Router::new()
        .merge(accounts::router())
        .merge(session::router())
        .merge(passkeys::router())
        .merge(clinics::router())
        .merge(records::router())
        .merge(files::router())
        .merge(audit::router())
        .merge(export::router())
        .merge(import::router())
        .merge(members::router())
        .merge(invitations::router())
        .merge(charts::router())
        .merge(mfa::router())
        .merge(policy::router())
        .merge(recovery::router())
        .route("/api/health", get(health))
        .route("/api/openapi.json", get(openapi::serve))
        .route("/api", axum::routing::any(api_not_found))
        .route("/api/{*rest}", axum::routing::any(api_not_found))
        .method_not_allowed_fallback(method_not_allowed)
        .layer(SetResponseHeaderLayer::overriding(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
        .with_state(state);
    let mut app = api;
    if let Some(dir) = static_dir {
        let index = dir.join("index.html");
        // The build stores a gzip copy of each asset beside it (scripts/build-client.sh): the
        // 5 MiB wasm goes out as about 2 MiB without compressing on every request.
        app = app.fallback_service(
            ServeDir::new(dir)
                .precompressed_gzip()
                .fallback(ServeFile::new(index)),
        );
    }
    // The JSON API's body limit. The file chunk route sets its own, tighter one
    // (`files::MAX_CHUNK_BYTES`), which takes precedence over this outer layer.
    let mut app = app
        .layer(DefaultBodyLimit::max(
            optovault_shared::limits::MAX_BODY_BYTES,
        ))
        .layer(CatchPanicLayer::custom(|_| {
            axum::response::IntoResponse::into_response(ApiError::new(
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                "The server failed; nothing was changed.",
            ))
        }));
    for layer in http::security_headers() {
        app = app.layer(layer);
    }
    app
}

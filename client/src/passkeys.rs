//! The browser's side of passkeys (WebAuthn): turn the server's options into
//! `navigator.credentials.create` / `.get` calls and the authenticator's answer back into JSON.
//! webauthn-rs-proto does the conversions between its JSON types and the browser's objects; the
//! server verifies everything, this module only carries it.

use serde_json::Value;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use webauthn_rs_proto::{
    CreationChallengeResponse, PublicKeyCredential, RegisterPublicKeyCredential,
    RequestChallengeResponse,
};

const UNREADABLE: &str = "The server sent passkey options this page cannot read.";

fn credentials() -> Result<web_sys::CredentialsContainer, String> {
    web_sys::window()
        .map(|w| w.navigator().credentials())
        .ok_or_else(|| "This browser cannot use passkeys here.".to_string())
}

/// What a failed `navigator.credentials` call means for the user.
fn explain(e: wasm_bindgen::JsValue) -> String {
    let name = e
        .dyn_ref::<web_sys::DomException>()
        .map(|d| d.name())
        .unwrap_or_default();
    match name.as_str() {
        "NotAllowedError" => "The passkey request was cancelled or timed out.".into(),
        "InvalidStateError" => "This authenticator is already registered to your account.".into(),
        "SecurityError" => {
            "Passkeys need the address the server was configured with (a host name, not an IP \
             address)."
                .into()
        }
        "NotSupportedError" => "This browser or authenticator does not support passkeys.".into(),
        _ => "The passkey request failed.".into(),
    }
}

/// Registers a new credential: `options` is the server's `CreationChallengeResponse`; the
/// answer is a `RegisterPublicKeyCredential` as JSON.
pub async fn create(options: Value) -> Result<Value, String> {
    let ccr: CreationChallengeResponse =
        serde_json::from_value(options).map_err(|_| UNREADABLE.to_string())?;
    let opts = web_sys::CredentialCreationOptions::from(ccr);
    let promise = credentials()?.create_with_options(&opts).map_err(explain)?;
    let answer = JsFuture::from(promise).await.map_err(explain)?;
    let credential: web_sys::PublicKeyCredential = answer
        .dyn_into()
        .map_err(|_| "The authenticator gave no credential.".to_string())?;
    serde_json::to_value(RegisterPublicKeyCredential::from(credential))
        .map_err(|_| "The authenticator's answer could not be read.".to_string())
}

/// Signs a login challenge: `options` is the server's `RequestChallengeResponse`; the answer is
/// a `PublicKeyCredential` (assertion) as JSON.
pub async fn get(options: Value) -> Result<Value, String> {
    let rcr: RequestChallengeResponse =
        serde_json::from_value(options).map_err(|_| UNREADABLE.to_string())?;
    let opts = web_sys::CredentialRequestOptions::from(rcr);
    let promise = credentials()?.get_with_options(&opts).map_err(explain)?;
    let answer = JsFuture::from(promise).await.map_err(explain)?;
    let credential: web_sys::PublicKeyCredential = answer
        .dyn_into()
        .map_err(|_| "The authenticator gave no credential.".to_string())?;
    serde_json::to_value(PublicKeyCredential::from(credential))
        .map_err(|_| "The authenticator's answer could not be read.".to_string())
}

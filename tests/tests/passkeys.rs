//! Passkeys against a real server, for what needs no authenticator: the ceremonies refuse
//! answers they did not ask for, forged assertions, bad names, and removal from a stale login.
//! The full ceremony with an authenticator is in tests/browser/passkeys.test.mjs (Chromium's
//! virtual authenticator).

use optovault_shared::wire::*;
use optovault_tests::*;
use serde_json::json;

/// A plausible-looking but unsigned WebAuthn assertion.
fn forged_assertion() -> serde_json::Value {
    json!({
        "id": "AAAA",
        "rawId": "AAAA",
        "response": {
            "authenticatorData": "SZYN5YgOjGh0NBcPZHZgW4_krrmihjLHmVzzuoMdl2MFAAAAAQ",
            "clientDataJSON": "eyJ0eXBlIjoid2ViYXV0aG4uZ2V0In0",
            "signature": "MEUCIQ",
            "userHandle": null
        },
        "type": "public-key",
        "extensions": {}
    })
}

#[test]
fn registration_refuses_what_it_did_not_ask_for() {
    let server = TestServer::start();
    let c = server.client();
    c.signup(&unique_username("pk"), &strong_password());

    // A name is required, short and printable.
    for name in ["", "   ", &"x".repeat(61), "tab\there"] {
        let r = c.post(
            "/api/account/mfa/passkeys/register/start",
            &PasskeyRegisterStart { name: name.into() },
        );
        assert_eq!(r.expect_error(&[400]).code, "invalid_name", "{name:?}");
    }
    // An answer without a started registration.
    let r = c.post(
        "/api/account/mfa/passkeys/register/finish",
        &PasskeyRegisterFinish {
            credential: json!({"id": "AAAA", "rawId": "AAAA", "type": "public-key",
                "response": {"attestationObject": "AAAA", "clientDataJSON": "AAAA"}}),
        },
    );
    assert_eq!(r.expect_error(&[400]).code, "no_passkey_registration");

    // A started registration: the options name this relying party and exclude nothing yet.
    let ch: PasskeyChallenge = c
        .post(
            "/api/account/mfa/passkeys/register/start",
            &PasskeyRegisterStart {
                name: "Laptop".into(),
            },
        )
        .parse();
    let pk = &ch.options["publicKey"];
    assert_eq!(pk["rp"]["id"], "localhost", "{pk}");
    assert_eq!(pk["authenticatorSelection"]["userVerification"], "required");
    assert!(pk["challenge"].as_str().is_some_and(|s| s.len() >= 43));
    // A garbage answer is refused and nothing is registered.
    let r = c.post(
        "/api/account/mfa/passkeys/register/finish",
        &PasskeyRegisterFinish {
            credential: json!({"id": "AAAA", "rawId": "AAAA", "type": "public-key",
                "response": {"attestationObject": "AAAA", "clientDataJSON": "AAAA"}}),
        },
    );
    assert_eq!(r.expect_error(&[400]).code, "passkey_failed");
    let r = c.post(
        "/api/account/mfa/passkeys/register/finish",
        &PasskeyRegisterFinish {
            credential: json!("not a credential"),
        },
    );
    assert_eq!(r.expect_error(&[400]).code, "passkey_failed");
    let status: MfaStatus = c.get("/api/account/mfa").parse();
    assert!(status.passkeys.is_empty());
    assert_eq!(status.recovery_codes_left, 0);

    // Removing a passkey that does not exist.
    let r = c.delete(&format!(
        "/api/account/mfa/passkeys/{}",
        uuid::Uuid::new_v4()
    ));
    assert_eq!(r.expect_error(&[404]).code, "not_found");
}

#[test]
fn passkey_endpoints_need_a_session_or_a_pending_login() {
    let server = TestServer::start();
    let anon = server.client();
    let r = anon.post(
        "/api/account/mfa/passkeys/register/start",
        &PasskeyRegisterStart {
            name: "Laptop".into(),
        },
    );
    assert_eq!(r.expect_error(&[401]).code, "unauthenticated");
    // A login challenge for a token that was never issued.
    let r = anon.post(
        "/api/session/mfa/passkey",
        &PasskeyLoginStart {
            mfa_token: uuid::Uuid::new_v4(),
        },
    );
    assert_eq!(r.expect_error(&[401]).code, "mfa_expired");
}

#[test]
fn a_forged_assertion_gets_no_session() {
    // An account with TOTP (so its login waits for a second factor) but no passkey.
    let server = TestServer::start();
    let c = server.client();
    let password = strong_password();
    let me = c.signup(&unique_username("pkf"), &password);
    let e: TotpEnrollment = c.post_empty("/api/account/mfa/totp/enroll").parse();
    let secret = totp_rs::Secret::Encoded(e.secret_base32)
        .to_bytes()
        .unwrap();
    let app =
        totp_rs::TOTP::new(totp_rs::Algorithm::SHA1, 6, 1, 30, secret, None, "t".into()).unwrap();
    let _: RecoveryCodes = c
        .post(
            "/api/account/mfa/totp/confirm",
            &TotpCode {
                code: app.generate_current().unwrap(),
            },
        )
        .parse();

    let other = server.client();
    let (raw, _, _) = other.login_password_step(&me.username, &password).unwrap();
    let m: MfaRequired = raw.parse();
    assert!(m.methods.contains(&"totp".to_string()), "{:?}", m.methods);
    assert!(
        !m.methods.contains(&"passkey".to_string()),
        "{:?}",
        m.methods
    );
    // No passkey to ask for.
    let r = other.post(
        "/api/session/mfa/passkey",
        &PasskeyLoginStart {
            mfa_token: m.mfa_token,
        },
    );
    assert_eq!(r.expect_error(&[400]).code, "no_passkeys");
    // An assertion without a challenge, and a forged one, are wrong answers: no session.
    let r = other.post(
        "/api/session/mfa",
        &MfaVerifyRequest {
            mfa_token: m.mfa_token,
            code: None,
            recovery_code: None,
            passkey: Some(forged_assertion()),
        },
    );
    assert_eq!(r.expect_error(&[401]).code, "mfa_failed");
    assert_eq!(other.get("/api/session").status, 401);
    // Nothing at all is a wrong answer too.
    let r = other.post(
        "/api/session/mfa",
        &MfaVerifyRequest {
            mfa_token: m.mfa_token,
            code: None,
            recovery_code: None,
            passkey: None,
        },
    );
    assert_eq!(r.expect_error(&[401]).code, "mfa_failed");
}

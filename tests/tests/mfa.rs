//! TOTP second factor against a real server: enrollment, the two-step login (no session before
//! the code), the acceptance window, replays, recovery codes, backoff on wrong codes, and turning
//! it off.

use optovault_shared::wire::*;
use optovault_tests::*;
use totp_rs::{Algorithm, Secret, TOTP};

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The authenticator app, from the secret the page shows.
fn app(secret_base32: &str) -> TOTP {
    TOTP::new(
        Algorithm::SHA1,
        6,
        1,
        30,
        Secret::Encoded(secret_base32.into()).to_bytes().unwrap(),
        None,
        "test".into(),
    )
    .unwrap()
}

struct Enrolled {
    server: TestServer,
    c: Client,
    username: String,
    password: String,
    app: TOTP,
    recovery: Vec<String>,
    /// When the enrollment was confirmed (its code's step is used from then on).
    confirmed_at: u64,
}

fn enrolled() -> Enrolled {
    let server = TestServer::start();
    let c = server.client();
    let password = strong_password();
    let me = c.signup(&unique_username("mfa"), &password);
    let e: TotpEnrollment = c.post_empty("/api/account/mfa/totp/enroll").parse();
    assert!(
        e.otpauth_uri.starts_with("otpauth://totp/"),
        "{}",
        e.otpauth_uri
    );
    assert!(e
        .otpauth_uri
        .contains(&format!("secret={}", e.secret_base32)));
    let app = app(&e.secret_base32);
    // Not active before it is confirmed: a login still gets a session at once.
    assert_eq!(
        server
            .client()
            .login_password_step(&me.username, &password)
            .unwrap()
            .0
            .status,
        200
    );
    // A wrong code does not confirm it.
    let wrong = c.post(
        "/api/account/mfa/totp/confirm",
        &TotpCode {
            code: "000000".into(),
        },
    );
    assert_eq!(wrong.expect_error(&[400]).code, "mfa_failed");
    let confirmed_at = unix_now();
    let codes: RecoveryCodes = c
        .post(
            "/api/account/mfa/totp/confirm",
            &TotpCode {
                code: app.generate(confirmed_at),
            },
        )
        .parse();
    assert_eq!(codes.codes.len(), 10);
    let status: MfaStatus = c.get("/api/account/mfa").parse();
    assert_eq!(
        (status.totp_enabled, status.recovery_codes_left),
        (true, 10)
    );
    Enrolled {
        server,
        c,
        username: me.username,
        password,
        app,
        recovery: codes.codes,
        confirmed_at,
    }
}

/// Logs in through the password step and returns the MFA token (asserting no session yet).
fn password_step(e: &Enrolled, c: &Client) -> (uuid::Uuid, optovault_shared::crypto::ExportKey) {
    let (raw, export, _) = c.login_password_step(&e.username, &e.password).unwrap();
    assert_eq!(raw.status, 202, "{raw:?}");
    assert!(
        raw.set_cookies
            .iter()
            .all(|c| !c.contains("ov_session=") || c.contains("Max-Age=0")),
        "no session before the code"
    );
    assert!(
        !String::from_utf8_lossy(&raw.body).contains("sealed_key_bundle"),
        "no key bundle before the code"
    );
    let m: MfaRequired = raw.parse();
    assert_eq!(
        m.methods,
        vec!["totp".to_string(), "recovery_code".to_string()]
    );
    (m.mfa_token, export)
}

#[test]
fn a_session_needs_the_code_and_codes_work_once() {
    let e = enrolled();
    // Confirming used the current step; the same code cannot log in again (replay).
    let c = e.server.client();
    let (token, export) = password_step(&e, &c);
    let now = e.confirmed_at;
    let used = e.app.generate(now);
    assert_eq!(
        c.mfa_step(token, Some(&used), None)
            .expect_error(&[401])
            .code,
        "mfa_failed"
    );
    assert_eq!(c.session().unwrap_err().status, 401);
    // The next step's code works (one step of clock skew is allowed) and gives the session.
    let next = e.app.generate(now + 30);
    let session = c
        .session_from(c.mfa_step(token, Some(&next), None), &export, &e.username)
        .unwrap();
    assert!(c.session().is_ok());
    assert_eq!(session.username, e.username);
    // The token is spent.
    assert_eq!(
        c.mfa_step(token, Some(&next), None)
            .expect_error(&[401])
            .code,
        "mfa_expired"
    );
}

#[test]
fn the_acceptance_window_is_one_step_either_way() {
    let e = enrolled();
    let now = unix_now();
    let c = e.server.client();
    let (token, _) = password_step(&e, &c);
    for far in [now.saturating_sub(90), now + 90] {
        assert_eq!(
            c.mfa_step(token, Some(&e.app.generate(far)), None).status,
            401,
            "two steps away is refused"
        );
    }
    // Step t+1 is within the window (t itself was used to confirm).
    assert_eq!(
        c.mfa_step(token, Some(&e.app.generate(now + 30)), None)
            .status,
        200
    );
    // After t+1 was used, t (older) is refused on a new login: no going back.
    let c2 = e.server.client();
    let (token2, _) = password_step(&e, &c2);
    assert_eq!(
        c2.mfa_step(token2, Some(&e.app.generate(now)), None).status,
        401
    );
    // Malformed codes are just wrong.
    assert_eq!(c2.mfa_step(token2, Some("12345a"), None).status, 401);
}

#[test]
fn recovery_codes_are_single_use_and_turning_off_needs_a_code() {
    let e = enrolled();
    let c = e.server.client();
    let (token, _) = password_step(&e, &c);
    // Case and dashes do not matter.
    let code = e.recovery[3].to_lowercase().replace('-', "");
    assert_eq!(c.mfa_step(token, None, Some(&code)).status, 200);
    let status: MfaStatus = c.get("/api/account/mfa").parse();
    assert_eq!(status.recovery_codes_left, 9);
    let c2 = e.server.client();
    let (token2, _) = password_step(&e, &c2);
    assert_eq!(
        c2.mfa_step(token2, None, Some(&e.recovery[3])).status,
        401,
        "a recovery code works once"
    );
    // Turning TOTP off needs a valid code; then logins are one step again.
    let off = c.post(
        "/api/account/mfa/totp/disable",
        &TotpDisableRequest {
            code: Some("000000".into()),
            recovery_code: None,
        },
    );
    assert_eq!(off.status, 401);
    let off = c.post(
        "/api/account/mfa/totp/disable",
        &TotpDisableRequest {
            code: None,
            recovery_code: Some(e.recovery[0].clone()),
        },
    );
    assert_eq!(off.status, 204);
    assert_eq!(
        e.server
            .client()
            .login_password_step(&e.username, &e.password)
            .unwrap()
            .0
            .status,
        200
    );
    let _ = &e.c;
}

#[test]
fn wrong_codes_back_off_and_end_the_login() {
    let e = enrolled();
    let c = e.server.client();
    let (token, _) = password_step(&e, &c);
    let mut statuses = Vec::new();
    for _ in 0..7 {
        statuses.push(c.mfa_step(token, Some("000000"), None).status);
    }
    // Five wrong codes end this login (the token is spent); backoff answers 429 after that.
    assert_eq!(&statuses[..5], &[401, 401, 401, 401, 401]);
    assert!(
        statuses[5..].iter().all(|s| *s == 401 || *s == 429),
        "{statuses:?}"
    );
    // The account's backoff holds across logins: one more wrong code on a new login starts it,
    // and then even the right code must wait.
    let (token2, _) = password_step(&e, &e.server.client());
    assert_eq!(c.mfa_step(token2, Some("000000"), None).status, 401);
    let r = c.mfa_step(token2, Some(&e.app.generate(unix_now() + 30)), None);
    assert_eq!(r.expect_error(&[429]).code, "too_many_attempts");
}

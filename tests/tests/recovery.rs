//! The recovery kit against a real server: a forgotten password is reset with the recovery key
//! (plus the second factor when enrolled) and every record stays readable; a wrong key changes
//! nothing.

use optovault_shared::crypto::{self, CryptoError, RecoveryKey};
use optovault_shared::wire::*;
use optovault_shared::B64;
use optovault_tests::*;

fn setup_kit(c: &Client, me: &Session) -> RecoveryKey {
    let key = RecoveryKey::generate();
    let r = c.put(
        "/api/account/recovery",
        &RecoverySetup {
            sealed_key_bundle: key.seal_bundle(&me.keys, &me.username),
            verifier_hash: B64(key.verifier_hash(&me.username).to_vec()),
        },
    );
    assert_eq!(r.status, 204, "{r:?}");
    key
}

/// The "forgot password" flow as the browser runs it. Returns the finish answer.
fn reset(
    c: &Client,
    username: &str,
    key: &RecoveryKey,
    new_password: &str,
    code: Option<String>,
) -> Result<Raw, CryptoError> {
    let (state, req) = crypto::registration_start(new_password).unwrap();
    let start: RecoveryStartResponse = c
        .post(
            "/api/account/recovery/start",
            &RecoveryStartRequest {
                username: username.into(),
                registration_request: B64(req),
            },
        )
        .parse();
    let keys = key.open_bundle(&start.recovery_bundle, username, &start.public_keys)?;
    let (upload, export) = crypto::registration_finish(
        state,
        new_password,
        username,
        start.registration_response.as_slice(),
    )
    .unwrap();
    Ok(c.post(
        "/api/account/recovery/finish",
        &RecoveryFinishRequest {
            username: username.into(),
            verifier: B64(key.verifier(username).to_vec()),
            code,
            recovery_code: None,
            registration_upload: B64(upload),
            sealed_key_bundle: crypto::seal_key_bundle(&keys, &export, username),
        },
    ))
}

#[test]
fn a_forgotten_password_is_reset_with_the_recovery_key_and_nothing_is_lost() {
    let server = TestServer::start();
    let c = server.client();
    let old = strong_password();
    let me = c.signup(&unique_username("forgetful"), &old);
    let clinic = c.create_clinic(&me, "Recovered Clinic").unwrap();
    let rid = uuid::Uuid::new_v4();
    c.put_patient(&me, &clinic, rid, 0, &sample_patient(5))
        .unwrap();
    let status: RecoveryStatus = c.get("/api/account/recovery").parse();
    assert!(!status.configured);
    let key = setup_kit(&c, &me);
    assert!(
        c.get("/api/account/recovery")
            .parse::<RecoveryStatus>()
            .configured
    );
    // The display form round-trips (case, dashes and spaces do not matter).
    let shown = key.to_display();
    assert_eq!(shown.len(), 52 + 12);
    let typed = RecoveryKey::parse(&shown.to_lowercase().replace('-', " ")).unwrap();
    assert_eq!(
        typed.verifier_hash(&me.username),
        key.verifier_hash(&me.username)
    );

    // A wrong recovery key does not open the bundle, and a forged verifier changes nothing.
    let stranger = server.client();
    let wrong = RecoveryKey::generate();
    assert!(matches!(
        reset(&stranger, &me.username, &wrong, &strong_password(), None),
        Err(CryptoError::Bundle)
    ));
    let (state, req) = crypto::registration_start("another long passphrase 9").unwrap();
    let start: RecoveryStartResponse = stranger
        .post(
            "/api/account/recovery/start",
            &RecoveryStartRequest {
                username: me.username.clone(),
                registration_request: B64(req),
            },
        )
        .parse();
    let (upload, _) = crypto::registration_finish(
        state,
        "another long passphrase 9",
        &me.username,
        start.registration_response.as_slice(),
    )
    .unwrap();
    let forged = stranger.post(
        "/api/account/recovery/finish",
        &RecoveryFinishRequest {
            username: me.username.clone(),
            verifier: B64(wrong.verifier(&me.username).to_vec()),
            code: None,
            recovery_code: None,
            registration_upload: B64(upload),
            sealed_key_bundle: start.recovery_bundle.clone(),
        },
    );
    assert_eq!(forged.expect_error(&[401]).code, "recovery_failed");
    assert!(
        server.client().login(&me.username, &old).is_ok(),
        "nothing changed"
    );

    // The right key resets the password; every session ends; the data is all there.
    let new = strong_password();
    let r = reset(&stranger, &me.username, &typed, &new, None).unwrap();
    assert_eq!(r.status, 204, "{r:?}");
    assert_eq!(c.session().unwrap_err().status, 401);
    assert!(server.client().login(&me.username, &old).is_err());
    let fresh = server.client();
    let again = fresh.login(&me.username, &new).unwrap();
    assert_eq!(again.keys.public_keys(), me.keys.public_keys());
    let view = fresh.join_view(&again, clinic.id);
    let p = open_patient(
        &again,
        clinic.id,
        &view.keyring,
        &fresh.get_record(clinic.id, rid).unwrap().envelope,
    )
    .unwrap();
    assert_eq!(p, sample_patient(5).normalized());

    // No kit, no reset (and unknown users look the same).
    let other = server.client();
    let nokit = other.signup(&unique_username("nokit"), &strong_password());
    for name in [nokit.username.as_str(), "nobody-here-at-all"] {
        let (_, req) = crypto::registration_start("x long enough passphrase").unwrap();
        let r = other.post(
            "/api/account/recovery/start",
            &RecoveryStartRequest {
                username: name.into(),
                registration_request: B64(req),
            },
        );
        assert_eq!(r.expect_error(&[404]).code, "no_recovery_kit");
    }
}

#[test]
fn with_a_second_factor_the_reset_needs_the_code_too() {
    use totp_rs::{Algorithm, Secret, TOTP};
    let server = TestServer::start();
    let c = server.client();
    let me = c.signup(&unique_username("mfa-reset"), &strong_password());
    let key = setup_kit(&c, &me);
    let e: TotpEnrollment = c.post_empty("/api/account/mfa/totp/enroll").parse();
    let app = TOTP::new(
        Algorithm::SHA1,
        6,
        1,
        30,
        Secret::Encoded(e.secret_base32).to_bytes().unwrap(),
        None,
        "t".into(),
    )
    .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert_eq!(
        c.post(
            "/api/account/mfa/totp/confirm",
            &TotpCode {
                code: app.generate(now)
            }
        )
        .status,
        200
    );

    let s = server.client();
    let r = reset(&s, &me.username, &key, &strong_password(), None).unwrap();
    assert_eq!(r.expect_error(&[401]).code, "recovery_failed");
    let new = strong_password();
    let r = reset(&s, &me.username, &key, &new, Some(app.generate(now + 30))).unwrap();
    assert_eq!(r.status, 204, "{r:?}");
    let (raw, _, _) = server
        .client()
        .login_password_step(&me.username, &new)
        .unwrap();
    assert_eq!(raw.status, 202, "the second factor stays on after a reset");
}

//! Accounts and sessions against the real server: OPAQUE registration and login, failures that
//! must look alike, duplicate usernames, the session cookie and logout.

use optovault_shared::crypto::{self, CryptoError};
use optovault_shared::opaque::{CredentialResponse, Suite};
use optovault_shared::wire::*;
use optovault_shared::B64;
use optovault_tests::*;
use uuid::Uuid;

#[test]
fn register_and_login() {
    let server = TestServer::start();
    let c = server.client();
    let user = unique_username("jane");
    let pw = strong_password();
    let account_id = c.register(&user, &pw).expect("register");
    assert!(!account_id.is_nil());
    assert_eq!(
        account_id.get_version_num(),
        4,
        "account ids are random UUIDv4"
    );

    let s = c.login(&user, &pw).expect("login");
    assert_eq!(s.account_id, account_id);
    assert_eq!(s.info.username, user);
    // The key bundle opened with the export key and matches the presented public keys (checked
    // by open_key_bundle); the session is live.
    let info = c.session().expect("GET /api/session after login");
    assert_eq!(info.account_id, account_id);
    assert_eq!(info.username, user);
    assert_eq!(info.public_keys, s.keys.public_keys());
    assert!(
        info.expires_at > 1_700_000_000,
        "expires_at is a Unix time: {}",
        info.expires_at
    );

    // A second login (another browser) works too and gives the same keys.
    let c2 = server.client();
    let s2 = c2.login(&user, &pw).expect("second login");
    assert_eq!(s2.keys.public_keys(), s.keys.public_keys());
    assert_ne!(
        s2.cookie_pair(),
        s.cookie_pair(),
        "each login gets its own session"
    );

    // The server normalises usernames (trim, lower case): login/start with the typed form, the
    // OPAQUE identifiers with the normalised one.
    let c3 = server.client();
    let (state, start) = c3
        .login_start(&format!("  {}  ", user.to_uppercase()), &pw)
        .expect("login/start with the username in upper case and padded");
    let (fin, _) = crypto::login_finish(state, &pw, &user, start.credential_response.as_slice())
        .expect("the server must have found the account under its normalised username");
    let raw = c3.post(
        "/api/session/login/finish",
        &LoginFinishRequest {
            login_id: start.login_id,
            credential_finalization: B64(fin),
        },
    );
    assert_eq!(raw.status, 200, "{raw:?}");
    assert_eq!(raw.parse::<SessionInfo>().account_id, account_id);
}

/// Whether a response sets a non-empty session cookie.
fn sets_session(raw: &Raw) -> bool {
    raw.set_cookies.iter().any(|c| {
        let pair = c.split(';').next().unwrap_or("").trim();
        pair.starts_with("ov_session=") && pair.len() > "ov_session=".len()
    })
}

#[test]
fn wrong_password_fails_and_garbage_finalization_is_401() {
    let server = TestServer::start();
    let c = server.client();
    let user = unique_username("john");
    let pw = strong_password();
    c.register(&user, &pw).unwrap();

    match c.login(&user, "violet tractor sings WRONG ferns") {
        Err(LoginError::Crypto(CryptoError::LoginFailed)) => {}
        other => panic!("wrong password must fail client side with LoginFailed, got {other:?}"),
    }
    assert_eq!(
        c.session().unwrap_err().status,
        401,
        "no session after a failed login"
    );

    // A client that skips its own check and sends a garbage finalization of the right length.
    let (_state, start) = c.login_start(&user, &pw).unwrap();
    let raw = c.post(
        "/api/session/login/finish",
        &LoginFinishRequest {
            login_id: start.login_id,
            credential_finalization: B64(vec![0x5a; 64]),
        },
    );
    let err = raw.expect_error(&[401]);
    assert_eq!(err.code, "login_failed", "{raw:?}");
    assert!(
        !sets_session(&raw),
        "a failed login must not set a session cookie: {:?}",
        raw.set_cookies
    );
    assert_eq!(c.session().unwrap_err().status, 401);

    // A login id is good for one attempt: after the failed finish, even the right finalization
    // for it is refused.
    let (state, start) = c.login_start(&user, &pw).unwrap();
    let (fin, _) =
        crypto::login_finish(state, &pw, &user, start.credential_response.as_slice()).unwrap();
    let bad = c.post(
        "/api/session/login/finish",
        &LoginFinishRequest {
            login_id: start.login_id,
            credential_finalization: B64(vec![0x11; 64]),
        },
    );
    assert_eq!(bad.expect_error(&[401]).code, "login_failed");
    let retry = c.post(
        "/api/session/login/finish",
        &LoginFinishRequest {
            login_id: start.login_id,
            credential_finalization: B64(fin),
        },
    );
    assert_eq!(
        retry.expect_error(&[401]).code,
        "login_failed",
        "a login id must be usable once (docs/API.md): {retry:?}"
    );

    // An unknown login id.
    let raw = c.post(
        "/api/session/login/finish",
        &LoginFinishRequest {
            login_id: Uuid::new_v4(),
            credential_finalization: B64(vec![0x5a; 64]),
        },
    );
    assert_eq!(raw.expect_error(&[401]).code, "login_failed");

    // The right password still works afterwards.
    c.login(&user, &pw).expect("login with the right password");
}

#[test]
fn a_successful_finalization_cannot_be_replayed() {
    let server = TestServer::start();
    let c = server.client();
    let user = unique_username("replay");
    let pw = strong_password();
    c.register(&user, &pw).unwrap();
    let (state, start) = c.login_start(&user, &pw).unwrap();
    let (fin, _) =
        crypto::login_finish(state, &pw, &user, start.credential_response.as_slice()).unwrap();
    let req = LoginFinishRequest {
        login_id: start.login_id,
        credential_finalization: B64(fin),
    };
    let ok = c.post("/api/session/login/finish", &req);
    assert_eq!(ok.status, 200, "{ok:?}");
    // An eavesdropper replays the same finish from another client.
    let attacker = server.client();
    let replay = attacker.post("/api/session/login/finish", &req);
    assert_eq!(
        replay.expect_error(&[401]).code,
        "login_failed",
        "{replay:?}"
    );
    assert!(attacker.session().is_err());
}

#[test]
fn unknown_username_gets_a_well_formed_response_and_fails_the_same_way() {
    let server = TestServer::start();
    let c = server.client();
    let known = unique_username("known");
    let pw = strong_password();
    c.register(&known, &pw).unwrap();

    let (_, real) = c.login_start(&known, &pw).unwrap();
    let unknown = unique_username("ghost");
    let (state, fake) = c
        .login_start(&unknown, &pw)
        .expect("login/start for an unknown user must answer like for a known one");
    assert_ne!(fake.login_id, real.login_id);
    assert_eq!(
        fake.credential_response.len(),
        real.credential_response.len(),
        "fake and real credential responses must have the same size"
    );
    assert!(
        CredentialResponse::<Suite>::deserialize(fake.credential_response.as_slice()).is_ok(),
        "the fake credential response must be a well-formed OPAQUE message"
    );
    assert_eq!(
        crypto::login_finish(state, &pw, &unknown, fake.credential_response.as_slice()).err(),
        Some(CryptoError::LoginFailed)
    );
    // Through the kit's login: same client-side error as a wrong password for a known user.
    match c.login(&unknown, &pw) {
        Err(LoginError::Crypto(CryptoError::LoginFailed)) => {}
        other => panic!("unknown user must fail like a wrong password, got {other:?}"),
    }
    // And a garbage finish for the unknown user gets the same 401 login_failed.
    let (_, fake) = c.login_start(&unknown, &pw).unwrap();
    let raw = c.post(
        "/api/session/login/finish",
        &LoginFinishRequest {
            login_id: fake.login_id,
            credential_finalization: B64(vec![0x5a; 64]),
        },
    );
    assert_eq!(raw.expect_error(&[401]).code, "login_failed");
}

#[test]
fn duplicate_username_is_409_and_invalid_usernames_400() {
    let server = TestServer::start();
    let c = server.client();
    let user = unique_username("dup");
    let pw = strong_password();
    c.register(&user, &pw).unwrap();

    let err = c
        .register(&user, &strong_password())
        .expect_err("second registration of the same username must fail");
    assert_eq!(
        (err.status, err.code.as_str()),
        (409, "username_taken"),
        "{err}"
    );
    // Also when it differs only in case and surrounding space.
    let (_, req) = crypto::registration_start(&pw).unwrap();
    let raw = c.post(
        "/api/accounts/register/start",
        &RegisterStartRequest {
            username: format!(" {} ", user.to_uppercase()),
            registration_request: B64(req),
        },
    );
    assert_eq!(raw.expect_error(&[409]).code, "username_taken", "{raw:?}");

    // The original account is intact.
    c.login(&user, &pw)
        .expect("the first account still logs in with its password");

    for bad in ["ab", "has space", "semi;colon", "ünïcödé", &"x".repeat(65)] {
        let (_, req) = crypto::registration_start(&pw).unwrap();
        let raw = c.post(
            "/api/accounts/register/start",
            &RegisterStartRequest {
                username: bad.to_string(),
                registration_request: B64(req),
            },
        );
        assert_eq!(
            raw.expect_error(&[400]).code,
            "invalid_username",
            "{bad:?}: {raw:?}"
        );
    }
}

#[test]
fn register_finish_cannot_overwrite_an_existing_account() {
    let server = TestServer::start();
    let c = server.client();
    let user = unique_username("taken");
    let pw = strong_password();
    c.register(&user, &pw).unwrap();

    // A finish for an existing username (an attacker trying to overwrite its password file).
    let other = server.client();
    let (state, req) = crypto::registration_start("attacker password 123").unwrap();
    let start_for_new = other.post(
        "/api/accounts/register/start",
        &RegisterStartRequest {
            username: unique_username("fresh"),
            registration_request: B64(req),
        },
    );
    assert_eq!(start_for_new.status, 200, "{start_for_new:?}");
    let resp: RegisterStartResponse = start_for_new.parse();
    let (upload, export) = crypto::registration_finish(
        state,
        "attacker password 123",
        &user,
        resp.registration_response.as_slice(),
    )
    .unwrap();
    let keys = crypto::UserKeys::generate();
    let raw = other.post(
        "/api/accounts/register/finish",
        &RegisterFinishRequest {
            username: user.clone(),
            registration_upload: B64(upload),
            public_keys: keys.public_keys(),
            sealed_key_bundle: crypto::seal_key_bundle(&keys, &export, &user),
        },
    );
    assert!(
        (400..500).contains(&raw.status) && raw.error_body().is_some(),
        "register/finish for a taken username must be refused with a JSON 4xx: {raw:?}"
    );
    // The real owner still logs in; the attacker's password does not.
    c.login(&user, &pw).expect("owner still logs in");
    assert!(matches!(
        other.login(&user, "attacker password 123"),
        Err(LoginError::Crypto(CryptoError::LoginFailed))
    ));
}

#[test]
fn session_cookie_is_httponly_samesite_strict() {
    let server = TestServer::start();
    let c = server.client();
    let user = unique_username("cookie");
    let pw = strong_password();
    let s = c.signup(&user, &pw);
    let sc = &s.set_cookie;
    assert!(
        sc.starts_with("ov_session="),
        "login/finish must set ov_session: {sc:?}"
    );
    let value = s.cookie_pair()["ov_session=".len()..].to_string();
    assert!(
        value.len() >= 22,
        "session token too short to be unguessable: {value:?}"
    );
    let attrs: Vec<String> = sc
        .split(';')
        .skip(1)
        .map(|a| a.trim().to_ascii_lowercase())
        .collect();
    assert!(
        attrs.iter().any(|a| a == "httponly"),
        "HttpOnly missing: {sc:?}"
    );
    assert!(
        attrs.iter().any(|a| a == "samesite=strict"),
        "SameSite=Strict missing: {sc:?}"
    );
    assert!(
        attrs.iter().any(|a| a == "path=/"),
        "Path=/ missing: {sc:?}"
    );
    // The token is not the account id or username.
    assert!(!value.contains(&s.account_id.to_string()) && !value.contains(&user));
}

#[test]
fn logout_revokes_the_session_server_side() {
    let server = TestServer::start();
    let c = server.client();
    let user = unique_username("logout");
    let pw = strong_password();
    let s = c.signup(&user, &pw);
    let cookie = s.cookie_pair();
    assert!(cookie.starts_with("ov_session="));

    // The cookie works when sent by hand from a cookie-less client.
    let other = server.client();
    let with_cookie = || other.send(Method::GET, "/api/session", None, &[("cookie", &cookie)]);
    let before = with_cookie();
    assert_eq!(before.status, 200, "{before:?}");
    let info: SessionInfo = before.parse();
    assert_eq!(info.account_id, s.account_id);

    let raw = c.post_empty("/api/session/logout");
    assert_eq!(raw.status, 204, "{raw:?}");
    assert!(
        raw.set_cookies.iter().any(|c| c.starts_with("ov_session=")),
        "logout must clear the cookie: {raw:?} {:?}",
        raw.set_cookies
    );
    // Same client: logged out.
    let err = c.session().unwrap_err();
    assert_eq!(
        (err.status, err.code.as_str()),
        (401, "unauthenticated"),
        "{err}"
    );
    // The old cookie replayed by hand: revoked on the server, not just forgotten by the browser.
    let after = with_cookie();
    assert_eq!(
        after.expect_error(&[401]).code,
        "unauthenticated",
        "{after:?}"
    );
    let clinics = other.send(Method::GET, "/api/clinics", None, &[("cookie", &cookie)]);
    clinics.expect_error(&[401]);

    // Logging out twice or without a session is harmless (204 or 401, never 5xx).
    let again = c.post_empty("/api/session/logout");
    assert!(matches!(again.status, 204 | 401), "{again:?}");
    // A new login works.
    c.login(&user, &pw).expect("login after logout");
    assert!(c.session().is_ok());
}

#[test]
fn forged_or_garbage_cookies_are_401() {
    let server = TestServer::start();
    let c = server.client();
    for cookie in [
        "ov_session=",
        "ov_session=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "ov_session=%00%ff",
        "ov_session=../../etc/passwd",
    ] {
        let raw = c.send(Method::GET, "/api/session", None, &[("cookie", cookie)]);
        assert_eq!(
            raw.expect_error(&[401]).code,
            "unauthenticated",
            "{cookie}: {raw:?}"
        );
    }
}

#[test]
fn abort_of_an_unknown_login_is_harmless() {
    let server = TestServer::start();
    let c = server.client();
    let raw = c.post(
        "/api/session/login/abort",
        &LoginAbortRequest {
            login_id: Uuid::new_v4(),
        },
    );
    assert!(
        raw.status == 204 || ((400..500).contains(&raw.status) && raw.error_body().is_some()),
        "{raw:?}"
    );
    assert_eq!(c.health().status, 200);
}

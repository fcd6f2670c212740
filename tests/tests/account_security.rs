//! Account security against a real server: login backoff (and the owner clearing it), a burst of
//! 1,000 login attempts from one address while another user logs in, session lists and
//! revocation, and password change.

use std::time::{Duration, Instant};

use optovault_shared::crypto;
use optovault_shared::wire::*;
use optovault_shared::B64;
use optovault_tests::*;

fn start(c: &Client, username: &str) -> Raw {
    let (_, req) = crypto::login_start("whatever the password").unwrap();
    c.post(
        "/api/session/login/start",
        &LoginStartRequest {
            username: username.into(),
            credential_request: B64(req),
        },
    )
}

#[test]
fn repeated_attempts_back_off_and_the_owner_can_clear_it() {
    let server = TestServer::start();
    let oc = server.client();
    let owner = oc.signup(&unique_username("owner"), &strong_password());
    let clinic = oc.create_clinic(&owner, "Backoff Clinic").unwrap();
    let c = server.client();
    let password = strong_password();
    let victim = c.signup(&unique_username("victim"), &password);
    let link = oc.invite(&owner, &clinic, Role::FrontDesk).unwrap();
    c.accept(&victim, &link).unwrap();
    oc.admit(&owner, &clinic, link.invitation_id)
        .unwrap()
        .unwrap();

    // Five wrong guesses are answered normally; the sixth is answered, then a backoff starts.
    let attacker = server.client();
    for _ in 0..6 {
        assert!(attacker
            .login(&victim.username, "wrong guess number one")
            .is_err());
    }
    let r = start(&attacker, &victim.username);
    let e = r.expect_error(&[429]);
    assert_eq!(e.code, "too_many_attempts");
    assert!(e.message.contains("Try again in"), "{}", e.message);
    assert!(r.headers.iter().any(|(n, _)| n == "retry-after"));
    // The right password is refused too while the backoff runs (the backoff is per username).
    assert!(c.login(&victim.username, &password).is_err());
    // An unknown username backs off the same way: the lockout says nothing about existence.
    for _ in 0..6 {
        let _ = start(&attacker, "nobody-at-all");
    }
    assert_eq!(
        start(&attacker, "nobody-at-all").expect_error(&[429]).code,
        "too_many_attempts"
    );

    // After the wait, a login goes through and clears the count.
    std::thread::sleep(Duration::from_millis(3100));
    c.login(&victim.username, &password).unwrap();

    // Lock it again; the owner clears it; the member logs in at once.
    for _ in 0..8 {
        let _ = attacker.login(&victim.username, "wrong again");
    }
    assert_eq!(start(&attacker, &victim.username).status, 429);
    let r = oc.post_empty(&format!(
        "/api/clinics/{}/members/{}/unlock",
        clinic.id, victim.account_id
    ));
    assert_eq!(r.status, 204, "{r:?}");
    c.login(&victim.username, &password).unwrap();
    // Only an owner may unlock.
    let r = c.post_empty(&format!(
        "/api/clinics/{}/members/{}/unlock",
        clinic.id, owner.account_id
    ));
    assert_eq!(r.status, 403);
    // The failures were recorded.
    let events = oc.access_events(clinic.id, 0, 1000).unwrap();
    assert!(events
        .entries
        .iter()
        .any(|e| e.action == "account_unlocked"));
}

#[test]
fn a_burst_of_attempts_from_one_address_does_not_starve_other_users() {
    let server = TestServer::start();
    let c = server.client();
    let password = strong_password();
    let alice = c.signup(&unique_username("alice"), &password);
    c.logout().unwrap();

    // 1,000 login starts for random usernames from this address, bounded in count.
    let burst = server.client();
    let t = Instant::now();
    let (mut ok, mut throttled) = (0, 0);
    for i in 0..1000 {
        match start(&burst, &format!("burst-{i}")).status {
            200 => ok += 1,
            429 => throttled += 1,
            s => panic!("unexpected status {s}"),
        }
    }
    let burst_time = t.elapsed();
    assert!(
        throttled > 900,
        "the address is slowed down: {ok} answered, {throttled} throttled"
    );
    // The server still answers everything else promptly: health, and a login of a user from the
    // same address once the address's wait is over is out of scope here; a different user's
    // session keeps working.
    let t = Instant::now();
    assert_eq!(c.health().status, 200);
    let health = t.elapsed();
    println!(
        "burst: 1000 login starts in {:.0} ms ({ok} answered, {throttled} refused with 429); health answered in {:.1} ms afterwards",
        burst_time.as_secs_f64() * 1000.0,
        health.as_secs_f64() * 1000.0
    );
    let _ = alice;
}

#[test]
fn sessions_are_listed_and_revoked() {
    let server = TestServer::start();
    let password = strong_password();
    let (a, b, c) = (server.client(), server.client(), server.client());
    let me = a.signup(&unique_username("multi"), &password);
    b.login(&me.username, &password).unwrap();
    c.login(&me.username, &password).unwrap();
    let list: SessionList = a.get("/api/sessions").parse();
    assert_eq!(list.sessions.len(), 3);
    assert_eq!(list.sessions.iter().filter(|s| s.current).count(), 1);
    assert!(list
        .sessions
        .iter()
        .all(|s| s.ip.as_deref() == Some("127.0.0.1")));
    // Revoke b's session from a.
    let b_list: SessionList = b.get("/api/sessions").parse();
    let b_id = b_list
        .sessions
        .iter()
        .find(|s| s.current)
        .unwrap()
        .session_id;
    assert_eq!(a.delete(&format!("/api/sessions/{b_id}")).status, 204);
    assert_eq!(b.session().unwrap_err().status, 401);
    assert!(c.session().is_ok());
    // Someone else's session id is not found.
    let other = server.client();
    let stranger = other.signup(&unique_username("stranger"), &strong_password());
    let s_id = other.get("/api/sessions").parse::<SessionList>().sessions[0].session_id;
    assert_eq!(a.delete(&format!("/api/sessions/{s_id}")).status, 404);
    assert!(other.session().is_ok());
    // Revoke all others.
    assert_eq!(a.post_empty("/api/sessions/revoke-others").status, 204);
    assert_eq!(c.session().unwrap_err().status, 401);
    assert!(a.session().is_ok());
    assert_eq!(
        a.get("/api/sessions").parse::<SessionList>().sessions.len(),
        1
    );
    let _ = stranger;
}

#[test]
fn password_change_replaces_the_password_and_keeps_the_data() {
    let server = TestServer::start();
    let (a, b) = (server.client(), server.client());
    let old = strong_password();
    let me = a.signup(&unique_username("changer"), &old);
    b.login(&me.username, &old).unwrap();
    let clinic = a.create_clinic(&me, "Keeps Data").unwrap();
    let rid = uuid::Uuid::new_v4();
    a.put_patient(&me, &clinic, rid, 0, &sample_patient(4))
        .unwrap();

    let new = strong_password();
    let (state, req) = crypto::registration_start(&new).unwrap();
    let resp: RegisterStartResponse = a
        .post(
            "/api/account/password/start",
            &PasswordChangeStart {
                registration_request: B64(req),
            },
        )
        .parse();
    let (upload, export_key) = crypto::registration_finish(
        state,
        &new,
        &me.username,
        resp.registration_response.as_slice(),
    )
    .unwrap();
    let sealed = crypto::seal_key_bundle(&me.keys, &export_key, &me.username);
    let r = a.post(
        "/api/account/password/finish",
        &PasswordChangeFinish {
            registration_upload: B64(upload),
            sealed_key_bundle: sealed,
        },
    );
    assert_eq!(r.status, 204, "{r:?}");
    // The other session ended; this one lives.
    assert_eq!(b.session().unwrap_err().status, 401);
    assert!(a.session().is_ok());
    // The old password fails, the new one works and opens the same keys and data.
    let c = server.client();
    assert!(c.login(&me.username, &old).is_err());
    let again = c.login(&me.username, &new).unwrap();
    assert_eq!(again.keys.public_keys(), me.keys.public_keys());
    let view = c.join_view(&again, clinic.id);
    let p = open_patient(
        &again,
        clinic.id,
        &view.keyring,
        &c.get_record(clinic.id, rid).unwrap().envelope,
    )
    .unwrap();
    assert_eq!(p, sample_patient(4).normalized());
    // A malformed bundle is refused and changes nothing.
    let r = a.post(
        "/api/account/password/finish",
        &serde_json::json!({"registration_upload": "AAAA", "sealed_key_bundle": {"nonce": "AA", "ciphertext": "AA"}}),
    );
    assert_eq!(r.status, 400);
    assert!(server.client().login(&me.username, &new).is_ok());
}

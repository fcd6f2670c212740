//! Clinic security policy and the owner's checklist, against a real server.

use optovault_shared::crypto;
use optovault_shared::wire::*;
use optovault_shared::B64;
use optovault_tests::*;
use totp_rs::{Algorithm, Secret, TOTP};

fn enroll_totp(c: &Client) {
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
    let r = c.post(
        "/api/account/mfa/totp/confirm",
        &TotpCode {
            code: app.generate(now),
        },
    );
    assert_eq!(r.status, 200, "{r:?}");
}

fn policy(require_mfa: bool) -> ClinicPolicy {
    ClinicPolicy {
        require_mfa,
        ..Default::default()
    }
}

#[test]
fn requiring_mfa_keeps_members_without_it_out_until_they_enroll() {
    let server = TestServer::start();
    let oc = server.client();
    let owner = oc.signup(&unique_username("owner"), &strong_password());
    let clinic = oc.create_clinic(&owner, "Strict Clinic").unwrap();
    let mc = server.client();
    let member = mc.signup(&unique_username("member"), &strong_password());
    let link = oc.invite(&owner, &clinic, Role::FrontDesk).unwrap();
    mc.accept(&member, &link).unwrap();
    oc.admit(&owner, &clinic, link.invitation_id)
        .unwrap()
        .unwrap();

    let path = format!("/api/clinics/{}/policy", clinic.id);
    // The owner must have a second factor before requiring one.
    assert_eq!(
        oc.put(&path, &policy(true)).expect_error(&[409]).code,
        "enroll_mfa_first"
    );
    enroll_totp(&oc);
    let checklist: SecurityChecklist = oc
        .get(&format!("/api/clinics/{}/security-checklist", clinic.id))
        .parse();
    assert_eq!(
        checklist
            .members_without_mfa
            .iter()
            .map(|m| m.account_id)
            .collect::<Vec<_>>(),
        vec![member.account_id]
    );
    assert_eq!(checklist.owner_count, 1);
    assert!(checklist.members_inactive_90_days.is_empty());
    assert_eq!(oc.put(&path, &policy(true)).status, 200);
    // Members cannot change the policy.
    assert_eq!(mc.put(&path, &policy(false)).status, 403);

    // The member without a second factor is kept out of the clinic (but not out of its account).
    let r = mc.get(&format!("/api/clinics/{}/changes?since=0", clinic.id));
    assert_eq!(r.expect_error(&[403]).code, "mfa_required");
    assert!(mc.session().is_ok());
    enroll_totp(&mc);
    assert_eq!(
        mc.get(&format!("/api/clinics/{}/changes?since=0", clinic.id))
            .status,
        200
    );
    let checklist: SecurityChecklist = oc
        .get(&format!("/api/clinics/{}/security-checklist", clinic.id))
        .parse();
    assert!(checklist.members_without_mfa.is_empty());
    assert!(checklist.policy.require_mfa);
    // Out-of-range values are refused.
    let bad = ClinicPolicy {
        idle_minutes: 4,
        ..policy(true)
    };
    assert_eq!(
        oc.put(&path, &bad).expect_error(&[400]).code,
        "invalid_policy"
    );
    let bad = ClinicPolicy {
        max_password_age_days: Some(7),
        ..policy(true)
    };
    assert_eq!(
        oc.put(&path, &bad).expect_error(&[400]).code,
        "invalid_policy"
    );
    for trash_days in [0, 3651] {
        let bad = ClinicPolicy {
            trash_days,
            ..policy(true)
        };
        assert_eq!(
            oc.put(&path, &bad).expect_error(&[400]).code,
            "invalid_policy"
        );
    }
    // The checklist is the owner's.
    assert_eq!(
        mc.get(&format!("/api/clinics/{}/security-checklist", clinic.id))
            .status,
        403
    );
}

#[test]
fn an_owner_can_force_a_password_change_on_evidence_of_compromise() {
    let server = TestServer::start();
    let oc = server.client();
    let owner = oc.signup(&unique_username("owner"), &strong_password());
    let clinic = oc.create_clinic(&owner, "Careful Clinic").unwrap();
    let mc = server.client();
    let old = strong_password();
    let member = mc.signup(&unique_username("member"), &old);
    let link = oc.invite(&owner, &clinic, Role::Billing).unwrap();
    mc.accept(&member, &link).unwrap();
    oc.admit(&owner, &clinic, link.invitation_id)
        .unwrap()
        .unwrap();

    let r = oc.post_empty(&format!(
        "/api/clinics/{}/members/{}/require-password-change",
        clinic.id, member.account_id
    ));
    assert_eq!(r.status, 204);
    assert_eq!(
        mc.session().unwrap_err().status,
        401,
        "the member's sessions ended"
    );
    let checklist: SecurityChecklist = oc
        .get(&format!("/api/clinics/{}/security-checklist", clinic.id))
        .parse();
    assert_eq!(checklist.members_who_must_change_password.len(), 1);

    let me = mc.login(&member.username, &old).unwrap();
    let r = mc.get(&format!("/api/clinics/{}", clinic.id));
    assert_eq!(r.expect_error(&[403]).code, "password_change_required");
    // Changing the password (account-level, allowed) clears it.
    let new = strong_password();
    let (state, req) = crypto::registration_start(&new).unwrap();
    let resp: RegisterStartResponse = mc
        .post(
            "/api/account/password/start",
            &PasswordChangeStart {
                registration_request: B64(req),
            },
        )
        .parse();
    let (upload, export) = crypto::registration_finish(
        state,
        &new,
        &me.username,
        resp.registration_response.as_slice(),
    )
    .unwrap();
    let r = mc.post(
        "/api/account/password/finish",
        &PasswordChangeFinish {
            registration_upload: B64(upload),
            sealed_key_bundle: crypto::seal_key_bundle(&me.keys, &export, &me.username),
        },
    );
    assert_eq!(r.status, 204);
    assert_eq!(mc.get(&format!("/api/clinics/{}", clinic.id)).status, 200);
    // Only owners may do this.
    let r = mc.post_empty(&format!(
        "/api/clinics/{}/members/{}/require-password-change",
        clinic.id, owner.account_id
    ));
    assert_eq!(r.status, 403);
}

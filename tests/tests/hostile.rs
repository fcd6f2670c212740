//! Hostile input: malformed, oversized and out-of-range requests get a clear 4xx JSON error, never
//! a 5xx, never a crash, and the server keeps answering.

use optovault_shared::limits;
use optovault_shared::wire::*;
use optovault_shared::B64;
use optovault_tests::*;
use serde_json::json;
use uuid::Uuid;

struct Fixture {
    server: TestServer,
    c: Client,
    s: Session,
    clinic: Clinic,
}

fn fixture() -> Fixture {
    let server = TestServer::start();
    let c = server.client();
    let s = c.signup(&unique_username("hostile"), &strong_password());
    let clinic = c.create_clinic(&s, "Target Optical").unwrap();
    let id = Uuid::new_v4();
    c.put_patient(&s, &clinic, id, 0, &sample_patient(0))
        .unwrap();
    Fixture {
        server,
        c,
        s,
        clinic,
    }
}

#[track_caller]
fn assert_4xx_json(raw: &Raw) {
    assert!(
        (400..500).contains(&raw.status),
        "expected a 4xx, got {raw:?}"
    );
    assert!(
        raw.error_body().is_some(),
        "expected a JSON {{code, message}} error body, got {raw:?}"
    );
}

fn alive(f: &mut Fixture) {
    assert!(f.server.is_running(), "the server process died");
    let h = f.c.health();
    assert_eq!(h.status, 200, "{h:?}");
    assert_eq!(
        h.json().map(|j| j["status"].clone()),
        Some(json!("ok")),
        "{h:?}"
    );
}

#[test]
fn malformed_json_bodies() {
    let mut f = fixture();
    let cid = f.clinic.id;
    let rid = Uuid::new_v4();
    let endpoints = [
        ("POST", "/api/accounts/register/start".to_string()),
        ("POST", "/api/accounts/register/finish".to_string()),
        ("POST", "/api/session/login/start".to_string()),
        ("POST", "/api/session/login/finish".to_string()),
        ("POST", "/api/session/login/abort".to_string()),
        ("POST", "/api/clinics".to_string()),
        ("POST", format!("/api/clinics/{cid}/records")),
        ("PUT", format!("/api/clinics/{cid}/records/{rid}")),
    ];
    let bodies: Vec<(&str, Vec<u8>, &str)> = vec![
        ("not JSON", b"this is not json".to_vec(), "application/json"),
        (
            "truncated JSON",
            b"{\"username\": \"ab".to_vec(),
            "application/json",
        ),
        ("empty body", Vec::new(), "application/json"),
        ("JSON array", b"[1,2,3]".to_vec(), "application/json"),
        ("JSON null", b"null".to_vec(), "application/json"),
        (
            "invalid UTF-8",
            vec![b'{', b'"', 0xff, 0xfe, b'"', b':', b'1', b'}'],
            "application/json",
        ),
        (
            "deep nesting",
            [vec![b'['; 100_000], vec![b']'; 100_000]].concat(),
            "application/json",
        ),
        ("wrong content type", b"{}".to_vec(), "text/plain"),
        (
            "form body",
            b"username=x&password=y".to_vec(),
            "application/x-www-form-urlencoded",
        ),
    ];
    for (method, path) in &endpoints {
        for (what, body, ct) in &bodies {
            let m = Method::from_bytes(method.as_bytes()).unwrap();
            let raw = f.c.send(m, path, Some((body.clone(), ct)), &[]);
            assert!(
                (400..500).contains(&raw.status) && raw.error_body().is_some(),
                "{method} {path} with {what}: expected a 4xx JSON error, got {raw:?}"
            );
        }
    }
    alive(&mut f);
}

#[test]
fn unknown_fields_and_wrong_types() {
    let mut f = fixture();
    let cid = f.clinic.id;
    let ring = &f.clinic.keyring;
    let (_, req) = optovault_shared::crypto::registration_start("x y z password 1").unwrap();
    let reg = json!({"username": unique_username("u"), "registration_request": B64::encode(&req)});

    // Unknown top-level field.
    let mut v = reg.clone();
    v["is_admin"] = json!(true);
    assert_4xx_json(&f.c.post("/api/accounts/register/start", &v));
    // Unknown field inside a record envelope, in a batch.
    let w = patient_write(&f.s, cid, ring, Uuid::new_v4(), 0, &sample_patient(1));
    let mut wv = serde_json::to_value(&w).unwrap();
    wv["envelope"]["plaintext"] = json!("leak");
    assert_4xx_json(&f.c.post(
        &format!("/api/clinics/{cid}/records"),
        &json!({"writes": [wv]}),
    ));
    let mut wv2 = serde_json::to_value(&w).unwrap();
    wv2["force"] = json!(true);
    assert_4xx_json(&f.c.put(
        &format!("/api/clinics/{cid}/records/{}", w.envelope.record_id),
        &wv2,
    ));
    // Missing fields, wrong types, bad base64, padded base64, bad enum values.
    let cases = vec![
        json!({"username": "abc"}),
        json!({"username": 5, "registration_request": "AAAA"}),
        json!({"username": "abc", "registration_request": "not base64!"}),
        json!({"username": "abc", "registration_request": "AAE="}),
        json!({"username": "abc", "registration_request": ""}),
        json!({"username": "abc", "registration_request": "AAAA"}),
        json!({"username": "abc", "registration_request": B64::encode(&[0u8; 32])}),
        json!({"username": "abc", "registration_request": B64::encode(&vec![7u8; 5000])}),
    ];
    for c in cases {
        let raw = f.c.post("/api/accounts/register/start", &c);
        assert!(
            (400..500).contains(&raw.status) && raw.error_body().is_some(),
            "register/start {c}: expected 4xx JSON, got {raw:?}"
        );
    }
    let mut wv3 = serde_json::to_value(&w).unwrap();
    wv3["envelope"]["compartment"] = json!("secret_stuff");
    assert_4xx_json(&f.c.put(
        &format!("/api/clinics/{cid}/records/{}", w.envelope.record_id),
        &wv3,
    ));
    let mut wv4 = serde_json::to_value(&w).unwrap();
    wv4["expected_version"] = json!(-1);
    assert_4xx_json(&f.c.put(
        &format!("/api/clinics/{cid}/records/{}", w.envelope.record_id),
        &wv4,
    ));
    let mut wv5 = serde_json::to_value(&w).unwrap();
    wv5["expected_version"] = json!(18446744073709551615u64);
    let raw = f.c.put(
        &format!("/api/clinics/{cid}/records/{}", w.envelope.record_id),
        &wv5,
    );
    assert_4xx_json(&raw);
    // Garbage OPAQUE messages in login and registration finish.
    let raw = f.c.post(
        "/api/session/login/start",
        &json!({"username": f.s.username, "credential_request": B64::encode(&[1u8; 10])}),
    );
    assert_4xx_json(&raw);
    let raw = f.c.post(
        "/api/session/login/finish",
        &json!({"login_id": Uuid::new_v4(), "credential_finalization": B64::encode(&[1u8; 3])}),
    );
    assert!(
        matches!(raw.status, 400 | 401) && raw.error_body().is_some(),
        "{raw:?}"
    );
    let raw = f.c.post(
        "/api/accounts/register/finish",
        &json!({
            "username": unique_username("x"),
            "registration_upload": B64::encode(&[9u8; 40]),
            "public_keys": {"x25519": B64::encode(&[1u8; 32]), "ed25519": B64::encode(&[2u8; 32])},
            "sealed_key_bundle": {"nonce": B64::encode(&[0u8; 12]), "ciphertext": B64::encode(&[0u8; 80])}
        }),
    );
    assert_4xx_json(&raw);
    // Public keys of the wrong length at registration.
    let raw = f.c.post(
        "/api/accounts/register/finish",
        &json!({
            "username": unique_username("x"),
            "registration_upload": B64::encode(&[9u8; 192]),
            "public_keys": {"x25519": B64::encode(&[1u8; 31]), "ed25519": B64::encode(&[2u8; 33])},
            "sealed_key_bundle": {"nonce": B64::encode(&[0u8; 12]), "ciphertext": B64::encode(&[0u8; 80])}
        }),
    );
    assert_4xx_json(&raw);
    alive(&mut f);
}

#[test]
fn oversized_bodies() {
    let mut f = fixture();
    let cid = f.clinic.id;
    // 17 MiB of valid-looking JSON to the batch endpoint.
    let big = format!(
        "{{\"writes\": [], \"pad\": \"{}\"}}",
        "A".repeat(limits::MAX_BODY_BYTES + 1024 * 1024)
    );
    let path = format!("/api/clinics/{cid}/records");
    match f.c.try_send(
        Method::POST,
        &path,
        Some((big.into_bytes(), "application/json")),
        &[],
    ) {
        Ok(raw) => {
            assert_eq!(raw.status, 413, "{raw:?}");
            assert!(
                raw.error_body().is_some(),
                "413 without a JSON error body: {raw:?}"
            );
        }
        // A server may answer 413 and close before reading the whole upload; then the client can
        // only see the connection close. Acceptable, as long as it keeps serving.
        Err(e) => eprintln!("oversized upload ended with a transport error: {e}"),
    }
    // Oversized to an account endpoint (unauthenticated).
    let anon = f.server.client();
    let big = vec![b' '; limits::MAX_BODY_BYTES + 1];
    match anon.try_send(
        Method::POST,
        "/api/accounts/register/start",
        Some((big, "application/json")),
        &[],
    ) {
        Ok(raw) => {
            assert!((400..500).contains(&raw.status), "{raw:?}");
            assert!(raw.error_body().is_some(), "{raw:?}");
        }
        Err(e) => eprintln!("oversized upload ended with a transport error: {e}"),
    }
    // A small blob field larger than MAX_SMALL_BLOB.
    let raw = f.c.post(
        "/api/session/login/start",
        &json!({"username": "someone", "credential_request": B64::encode(&vec![0u8; limits::MAX_SMALL_BLOB + 1])}),
    );
    assert_4xx_json(&raw);
    // Too many wrapped keys at clinic creation.
    let (mut req, _) = clinic_request(&f.s, "Too many keys");
    let w = req.wrapped_keys[0].clone();
    req.wrapped_keys = vec![w; limits::MAX_WRAPPED_KEYS + 1];
    assert_4xx_json(&f.c.post("/api/clinics", &req));
    alive(&mut f);
    // The session still works after all that.
    assert!(f.c.session().is_ok());
}

#[test]
fn hostile_query_params_and_paths() {
    let mut f = fixture();
    let cid = f.clinic.id;
    let rid = Uuid::new_v4();
    let must_be_4xx_json = [
        format!("/api/clinics/{cid}/changes?since=-1&limit=10"),
        format!("/api/clinics/{cid}/changes?since=abc&limit=10"),
        format!("/api/clinics/{cid}/changes?since=0&limit=-5"),
        format!("/api/clinics/{cid}/changes?since=0&limit=1e3"),
        format!("/api/clinics/{cid}/changes?since=0&limit=18446744073709551616"),
        format!("/api/clinics/{cid}/changes?since=99999999999999999999999&limit=10"),
        format!("/api/clinics/{cid}/records?after=not-a-uuid"),
        format!("/api/clinics/{cid}/records?limit=abc"),
        format!("/api/clinics/{cid}/records?limit=-1"),
        format!("/api/clinics/{cid}/audit?since=-1&limit=10"),
        format!("/api/clinics/{cid}/audit?since=0&limit=zz"),
        "/api/clinics/not-a-uuid".to_string(),
        "/api/clinics/not-a-uuid/records".to_string(),
        "/api/clinics/not-a-uuid/changes?since=0".to_string(),
        format!("/api/clinics/{cid}/records/not-a-uuid"),
        format!("/api/clinics/{cid}/records/{rid}x"),
        "/api/clinics/%00%01".to_string(),
        "/api/clinics/..%2F..%2Fetc%2Fpasswd".to_string(),
        format!("/api/clinics/{}", "9".repeat(5000)),
    ];
    for path in &must_be_4xx_json {
        let raw = f.c.get(path);
        assert!(
            (400..500).contains(&raw.status) && raw.error_body().is_some(),
            "GET {path}: expected a 4xx JSON error, got {raw:?}"
        );
    }
    // Huge limits: refused with 4xx JSON, or served with at most MAX_PAGE items.
    for path in [
        format!("/api/clinics/{cid}/changes?since=0&limit=1000000"),
        format!("/api/clinics/{cid}/changes?since=0&limit=4294967296"),
        format!("/api/clinics/{cid}/records?limit=1000000"),
        format!("/api/clinics/{cid}/audit?since=0&limit=1000000"),
        format!("/api/clinics/{cid}/changes?since=0&limit=0"),
    ] {
        let raw = f.c.get(&path);
        if raw.is_success() {
            let v = raw.json().unwrap_or_else(|| panic!("{raw:?}"));
            let items = ["changes", "records", "events"]
                .iter()
                .find_map(|k| v.get(*k).and_then(|x| x.as_array()).map(|a| a.len()))
                .unwrap_or_else(|| panic!("GET {path}: page without items: {raw:?}"));
            assert!(items <= limits::MAX_PAGE, "GET {path}: {items} items");
        } else {
            assert!(
                (400..500).contains(&raw.status) && raw.error_body().is_some(),
                "GET {path}: expected 4xx JSON or a bounded page, got {raw:?}"
            );
        }
    }
    // PUT with invalid UUIDs in the path.
    let w = patient_write(&f.s, cid, &f.clinic.keyring, rid, 0, &sample_patient(1));
    assert_4xx_json(&f.c.put("/api/clinics/nope/records/nope", &w));
    assert_4xx_json(&f.c.put(&format!("/api/clinics/{cid}/records/nope"), &w));
    alive(&mut f);
}

#[test]
fn unknown_routes_and_methods() {
    let mut f = fixture();
    let cid = f.clinic.id;
    let raw = f.c.get("/api/does-not-exist");
    assert_eq!(raw.status, 404, "{raw:?}");
    assert!(
        raw.error_body().is_some(),
        "unknown /api route without a JSON error: {raw:?}"
    );
    let mut bad = Vec::new();
    for (m, path) in [
        (Method::DELETE, format!("/api/clinics/{cid}")),
        (Method::PATCH, format!("/api/clinics/{cid}/records")),
        (Method::GET, "/api/session/logout".to_string()),
        (Method::PUT, "/api/health".to_string()),
        (Method::POST, format!("/api/clinics/{cid}/changes")),
    ] {
        let raw = f.c.send(m.clone(), &path, None, &[]);
        if !((400..500).contains(&raw.status) && raw.error_body().is_some()) {
            bad.push(format!("{raw:?}"));
        }
    }
    assert!(
        bad.is_empty(),
        "wrong-method requests without a 4xx JSON error:\n{}",
        bad.join("\n")
    );
    alive(&mut f);
}

#[test]
fn many_bad_requests_do_not_break_the_server() {
    let mut f = fixture();
    let anon = f.server.client();
    // A bounded burst of junk: 300 requests.
    for i in 0..300u32 {
        let raw = match i % 3 {
            0 => anon.post_raw(
                "/api/session/login/start",
                vec![b'{'; (i as usize) * 7],
                "application/json",
            ),
            1 => anon.get(&format!(
                "/api/clinics/{}/changes?since={}",
                Uuid::new_v4(),
                i
            )),
            _ => anon.post(
                "/api/session/login/finish",
                &LoginFinishRequest {
                    login_id: Uuid::new_v4(),
                    credential_finalization: B64(vec![i as u8; 64]),
                },
            ),
        };
        assert!(raw.status < 500, "request {i}: {raw:?}");
    }
    alive(&mut f);
    assert!(f.c.session().is_ok());
}

#[test]
fn security_headers() {
    let f = fixture();
    // API responses: JSON, never cached, never sniffed.
    for raw in [f.c.health(), f.c.get("/api/clinics"), f.c.get("/api/nope")] {
        assert!(
            raw.header("content-type")
                .is_some_and(|v| v.starts_with("application/json")),
            "{raw:?}"
        );
        assert_eq!(raw.header("cache-control"), Some("no-store"), "{raw:?}");
        assert_eq!(
            raw.header("x-content-type-options"),
            Some("nosniff"),
            "{raw:?}"
        );
    }
    // The page: a strict CSP without inline script, no framing.
    let page = f.c.get("/");
    assert_eq!(page.status, 200, "{page:?}");
    let csp = page
        .header("content-security-policy")
        .unwrap_or_else(|| panic!("no Content-Security-Policy on the page: {:?}", page.headers));
    let directive = |name: &str| {
        csp.split(';')
            .map(str::trim)
            .find(|d| d.starts_with(name))
            .map(str::to_string)
    };
    let script = directive("script-src")
        .or_else(|| directive("default-src"))
        .unwrap_or_else(|| panic!("CSP without script-src or default-src: {csp}"));
    assert!(
        !script.contains("'unsafe-inline'"),
        "inline script allowed: {csp}"
    );
    assert!(
        !script.contains("'unsafe-eval'") || script.contains("'wasm-unsafe-eval'"),
        "eval allowed: {csp}"
    );
    assert!(!script.contains('*'), "script from anywhere: {csp}");
    let framing_blocked = directive("frame-ancestors").is_some_and(|d| d.contains("'none'"))
        || page
            .header("x-frame-options")
            .is_some_and(|v| v.eq_ignore_ascii_case("deny"));
    assert!(
        framing_blocked,
        "the page may be framed: {:?}",
        page.headers
    );
}

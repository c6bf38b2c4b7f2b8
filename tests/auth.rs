//! Authentication and roles through the real server: every way a token can be wrong gets
//! UNAUTHENTICATED and changes nothing; every role reaching an RPC not its own gets
//! PERMISSION_DENIED.

// Test code: a failed step should fail the test loudly, so expect() is the right tool here.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use common::*;
use gridcase::{
    auth::permissions::RPC_ROLES,
    domain::Role,
    proto::v1::{
        GetRegionRequest, ImportDirectoryRequest, ListCategoriesRequest,
        directory_service_client::DirectoryServiceClient,
    },
};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use prost::Message;
use tonic::{Code, Request, codegen::http::uri::PathAndQuery};

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

fn claims(overrides: serde_json::Value) -> serde_json::Value {
    let mut c = serde_json::json!({
        "sub": "ops-admin", "role": "admin", "iss": "gridcase", "aud": "gridcase",
        "exp": now() + 600, "iat": now(), "nbf": now(),
    });
    if let (Some(c), Some(o)) = (c.as_object_mut(), overrides.as_object()) {
        for (k, v) in o {
            if v.is_null() {
                c.remove(k);
            } else {
                c.insert(k.clone(), v.clone());
            }
        }
    }
    c
}

fn hs256(claims: &serde_json::Value, secret: &str) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("encode")
}

fn unsigned(claims: &serde_json::Value) -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    format!(
        "{}.{}.",
        b64.encode(br#"{"alg":"none","typ":"JWT"}"#),
        b64.encode(claims.to_string())
    )
}

/// An ImportDirectory call carrying a valid bundle: if auth let it through, the directory
/// would change, which the test checks did not happen.
async fn import_with(app: &TestApp, authorization: Option<&str>) -> tonic::Status {
    let mut client = DirectoryServiceClient::new(app.channel.clone());
    let mut request = Request::new(ImportDirectoryRequest {
        bundle: serde_json::to_vec(&small_bundle()).expect("json"),
        ..ImportDirectoryRequest::default()
    });
    if let Some(value) = authorization {
        request
            .metadata_mut()
            .insert("authorization", value.parse().expect("ascii"));
    }
    client.import_directory(request).await.expect_err("refused")
}

async fn every_bad_token_is_unauthenticated_and_changes_nothing(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let wrong_secret = "another-secret-another-secret-another-secret";
    let cases: Vec<(&str, Option<String>)> = vec![
        ("missing header", None),
        (
            "not a bearer",
            Some(format!(
                "Basic {}",
                hs256(&claims(serde_json::json!({})), TEST_SECRET)
            )),
        ),
        ("empty bearer", Some("Bearer ".into())),
        ("malformed", Some("Bearer not.a.jwt".into())),
        ("garbage", Some("Bearer abc".into())),
        (
            "expired",
            Some(format!(
                "Bearer {}",
                hs256(
                    &claims(
                        serde_json::json!({"exp": now() - 3600, "iat": now() - 7200, "nbf": now() - 7200})
                    ),
                    TEST_SECRET
                )
            )),
        ),
        (
            "not yet valid",
            Some(format!(
                "Bearer {}",
                hs256(
                    &claims(serde_json::json!({"nbf": now() + 3600})),
                    TEST_SECRET
                )
            )),
        ),
        (
            // The leeway (30 s) absorbs clock skew; a token issued 5 minutes from now does
            // not come from a clock that is merely skewed.
            "issued in the future",
            Some(format!(
                "Bearer {}",
                hs256(
                    &claims(serde_json::json!({"iat": now() + 300, "nbf": null})),
                    TEST_SECRET
                )
            )),
        ),
        (
            "wrongly signed",
            Some(format!(
                "Bearer {}",
                hs256(&claims(serde_json::json!({})), wrong_secret)
            )),
        ),
        (
            "alg none",
            Some(format!(
                "Bearer {}",
                unsigned(&claims(serde_json::json!({})))
            )),
        ),
        (
            "wrong audience",
            Some(format!(
                "Bearer {}",
                hs256(
                    &claims(serde_json::json!({"aud": "someone-else"})),
                    TEST_SECRET
                )
            )),
        ),
        (
            "wrong issuer",
            Some(format!(
                "Bearer {}",
                hs256(&claims(serde_json::json!({"iss": "evil"})), TEST_SECRET)
            )),
        ),
        (
            "no exp",
            Some(format!(
                "Bearer {}",
                hs256(&claims(serde_json::json!({"exp": null})), TEST_SECRET)
            )),
        ),
        (
            "no iss",
            Some(format!(
                "Bearer {}",
                hs256(&claims(serde_json::json!({"iss": null})), TEST_SECRET)
            )),
        ),
        (
            "no aud",
            Some(format!(
                "Bearer {}",
                hs256(&claims(serde_json::json!({"aud": null})), TEST_SECRET)
            )),
        ),
        (
            "unknown role",
            Some(format!(
                "Bearer {}",
                hs256(&claims(serde_json::json!({"role": "root"})), TEST_SECRET)
            )),
        ),
        (
            "no role",
            Some(format!(
                "Bearer {}",
                hs256(&claims(serde_json::json!({"role": null})), TEST_SECRET)
            )),
        ),
        (
            "tampered payload",
            Some({
                let token = hs256(&claims(serde_json::json!({"role": "gateway"})), TEST_SECRET);
                let parts: Vec<&str> = token.split('.').collect();
                let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
                format!(
                    "Bearer {}.{}.{}",
                    parts[0],
                    b64.encode(claims(serde_json::json!({})).to_string()),
                    parts[2]
                )
            }),
        ),
    ];
    for (name, header) in &cases {
        let status = import_with(&app, header.as_deref()).await;
        assert_eq!(status.code(), Code::Unauthenticated, "{name}: {status:?}");
    }
    // Nothing was imported by any of them.
    let token = app.token("ops-admin", Role::Admin);
    let status = DirectoryServiceClient::new(app.channel.clone())
        .get_region(authed(
            GetRegionRequest {
                code: "371100".into(),
                include_geometry: false,
            },
            &token,
        ))
        .await
        .expect_err("no directory yet");
    assert_eq!(status.code(), Code::NotFound);
    // A token issued within the leeway ahead of this clock (a skewed issuer) gets through.
    let skewed = hs256(
        &claims(serde_json::json!({"iat": now() + 10, "nbf": null})),
        TEST_SECRET,
    );
    DirectoryServiceClient::new(app.channel.clone())
        .list_categories(authed(ListCategoriesRequest {}, &skewed))
        .await
        .expect("iat within the leeway");
    // And the same valid-looking token, signed right, does get through.
    let good = hs256(&claims(serde_json::json!({})), TEST_SECRET);
    let imported = DirectoryServiceClient::new(app.channel.clone())
        .import_directory(authed(
            ImportDirectoryRequest {
                bundle: serde_json::to_vec(&small_bundle()).expect("json"),
                ..ImportDirectoryRequest::default()
            },
            &good,
        ))
        .await
        .expect("a good token imports");
    assert_eq!(imported.into_inner().regions.expect("counts").created, 6);
    app.stop().await.expect("clean stop");
}

/// Every method of the contract, with whether it streams from the server.
fn contract_methods() -> Vec<(String, bool)> {
    let fds = prost_types::FileDescriptorSet::decode(gridcase::proto::FILE_DESCRIPTOR_SET)
        .expect("descriptor set");
    let mut out = Vec::new();
    for file in fds.file {
        for service in &file.service {
            for method in &service.method {
                out.push((
                    format!("/{}.{}/{}", file.package(), service.name(), method.name()),
                    method.server_streaming(),
                ));
            }
        }
    }
    out
}

/// Calls any method with an empty message and returns the status it answers with.
async fn call_empty(app: &TestApp, path: &str, server_streaming: bool, token: &str) -> Code {
    let mut grpc = tonic::client::Grpc::new(app.channel.clone());
    grpc.ready().await.expect("ready");
    let codec = tonic_prost::ProstCodec::<(), ()>::default();
    let path = PathAndQuery::try_from(path.to_owned()).expect("path");
    let result = if server_streaming {
        grpc.server_streaming(authed((), token), path, codec)
            .await
            .map(|_| ())
    } else {
        grpc.unary(authed((), token), path, codec).await.map(|_| ())
    };
    match result {
        Ok(()) => Code::Ok,
        Err(status) => status.code(),
    }
}

async fn every_rpc_answers_each_role_as_the_role_table_says(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    import(&app, &small_bundle()).await;
    let methods = contract_methods();
    assert_eq!(methods.len(), RPC_ROLES.len(), "one row per method");
    let mut checked = 0;
    for (path, server_streaming) in &methods {
        let allowed = gridcase::auth::permissions::roles_for(path).expect("row");
        for role in Role::ALL {
            let token = app.token(subject_for(role), role);
            let code = call_empty(&app, path, *server_streaming, &token).await;
            if allowed.contains(&role) {
                assert!(
                    !matches!(code, Code::PermissionDenied | Code::Unauthenticated),
                    "{role} should reach {path}, got {code:?}"
                );
            } else {
                assert_eq!(code, Code::PermissionDenied, "{role} must not reach {path}");
            }
            checked += 1;
        }
    }
    assert_eq!(checked, methods.len() * Role::ALL.len());
    app.stop().await.expect("clean stop");
}

async fn a_person_acts_only_with_a_member_record_of_the_same_role(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    import(&app, &small_bundle()).await;
    let path = "/gridcase.v1.DirectoryService/Locate";
    // A stranger, and a grid member claiming to be a dispatcher.
    for (sub, role) in [
        ("nobody", Role::GridMember),
        (GRID_MEMBER, Role::Dispatcher),
    ] {
        let token = app.token(sub, role);
        assert_eq!(
            call_empty(&app, path, false, &token).await,
            Code::PermissionDenied,
            "{sub} as {role}"
        );
    }
    // Service identities need no record.
    for role in [Role::Gateway, Role::Admin] {
        let token = app.token("any-service", role);
        assert_ne!(
            call_empty(&app, path, false, &token).await,
            Code::PermissionDenied
        );
    }
    // The real member in their own role gets through.
    let token = app.token(GRID_MEMBER, Role::GridMember);
    assert_ne!(
        call_empty(&app, path, false, &token).await,
        Code::PermissionDenied
    );
    app.stop().await.expect("clean stop");
}

fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn eddsa(kid: Option<&str>, key_file: &str, claims: &serde_json::Value) -> String {
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = kid.map(str::to_owned);
    let pem = std::fs::read(fixture(key_file)).expect("key");
    jsonwebtoken::encode(
        &header,
        claims,
        &EncodingKey::from_ed_pem(&pem).expect("ed key"),
    )
    .expect("encode")
}

async fn eddsa_keys_are_chosen_by_kid(backend: Backend) {
    let db = TestDb::new(&backend).await;
    let app = TestApp::spawn_with(db, |s| {
        s.jwt.algorithm = gridcase::config::JwtAlgorithm::EdDSA;
        s.jwt.secret = None;
        s.jwt
            .public_keys
            .insert("k1".into(), fixture("ed25519-k1.pub.pem"));
        s.jwt.signing_key = Some(fixture("ed25519-k1.pem"));
        s.jwt.signing_kid = Some("k1".into());
    })
    .await;
    let c = claims(serde_json::json!({}));
    let cases = [
        (
            "unknown kid",
            eddsa(Some("k2"), "ed25519-k1.pem", &c),
            Code::Unauthenticated,
        ),
        (
            "no kid",
            eddsa(None, "ed25519-k1.pem", &c),
            Code::Unauthenticated,
        ),
        (
            "right kid, wrong key",
            eddsa(Some("k1"), "ed25519-other.pem", &c),
            Code::Unauthenticated,
        ),
        (
            "an HS256 token",
            hs256(&c, TEST_SECRET),
            Code::Unauthenticated,
        ),
    ];
    for (name, token, expected) in cases {
        let code = call_empty(
            &app,
            "/gridcase.v1.DirectoryService/ListCategories",
            false,
            &token,
        )
        .await;
        assert_eq!(code, expected, "{name}");
    }
    let good = eddsa(Some("k1"), "ed25519-k1.pem", &c);
    assert_eq!(
        call_empty(
            &app,
            "/gridcase.v1.DirectoryService/ListCategories",
            false,
            &good
        )
        .await,
        Code::Ok
    );
    // `gridcase token` signs with the configured key and kid, and the server takes it.
    let minted = app
        .minter
        .mint("ops-admin", Role::Admin, Duration::from_secs(60))
        .expect("mint");
    assert_eq!(
        call_empty(
            &app,
            "/gridcase.v1.DirectoryService/ListCategories",
            false,
            &minted
        )
        .await,
        Code::Ok
    );
    app.stop().await.expect("clean stop");
}

on_both_databases!(
    every_bad_token_is_unauthenticated_and_changes_nothing,
    every_rpc_answers_each_role_as_the_role_table_says,
    a_person_acts_only_with_a_member_record_of_the_same_role,
    eddsa_keys_are_chosen_by_kid,
);

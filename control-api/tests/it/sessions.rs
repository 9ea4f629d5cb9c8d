//! Signing in: passwords and their rules, sign-in throttling, access tokens (every forged, expired, foreign or
//! ended one refused), refresh, logout, key rotation, and API keys of users and service accounts.

use std::time::Duration;

use axum::http::{Method, StatusCode};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

use crate::both_engines;
use crate::harness::TestApp;
use crate::people::PASSWORD;

both_engines!(
    security_forged_expired_and_ended_sessions_are_refused,
    security_a_refresh_token_presented_again_at_once_is_only_refused,
    security_api_keys_are_shown_once_and_revoked_at_once
);

async fn refresh(app: &TestApp, token: &str) -> crate::harness::Answer {
    app.call_anonymous(Method::POST, "/api/v1/auth/refresh", json!({"refreshToken": token})).await
}

/// Two clients of one session refreshing at the same moment (two CLI commands, two tabs) present the same token:
/// the second is refused, and the session goes on.
async fn security_a_refresh_token_presented_again_at_once_is_only_refused(app: TestApp) {
    app.org("acme").await;
    app.member("acme", "ann@acme.test", "developer", None).await;
    let session = app.login("ann@acme.test", None).await;
    let first = session["refreshToken"].as_str().unwrap();
    let renewed = refresh(&app, first).await.expect(StatusCode::OK).json();
    refresh(&app, first).await.expect_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
    let access = renewed["accessToken"].as_str().unwrap();
    app.get_as(access, "/api/v1/auth/whoami").await.expect(StatusCode::OK);
    refresh(&app, renewed["refreshToken"].as_str().unwrap()).await.expect(StatusCode::OK);
}

/// A refresh token presented again after the grace was copied: whoever holds the session's current tokens (the
/// thief, or its owner) loses them, and the owner signs in again.
#[tokio::test]
async fn security_a_refresh_token_presented_again_later_ends_its_session() {
    let app = TestApp::sqlite_with(|options| options.sessions.reuse_grace = Duration::ZERO).await;
    app.org("acme").await;
    app.member("acme", "ann@acme.test", "developer", None).await;
    let stolen = app.login("ann@acme.test", None).await["refreshToken"].as_str().unwrap().to_owned();
    let thief = refresh(&app, &stolen).await.expect(StatusCode::OK).json();
    let thief_access = thief["accessToken"].as_str().unwrap();
    app.get_as(thief_access, "/api/v1/auth/whoami").await.expect(StatusCode::OK);
    // The owner's client refreshes with the token it still holds: refused, and the thief's tokens end with it.
    refresh(&app, &stolen).await.expect_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
    app.get_as(thief_access, "/api/v1/auth/whoami").await.expect_error(StatusCode::UNAUTHORIZED, "unauthorized");
    refresh(&app, thief["refreshToken"].as_str().unwrap())
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "invalid_credentials");

    // A token several swaps old ends its session too; another session of the same person goes on.
    let other = app.login("ann@acme.test", None).await;
    let session = app.login("ann@acme.test", None).await;
    let oldest = session["refreshToken"].as_str().unwrap();
    let second = refresh(&app, oldest).await.expect(StatusCode::OK).json();
    let third = refresh(&app, second["refreshToken"].as_str().unwrap()).await.expect(StatusCode::OK).json();
    refresh(&app, oldest).await.expect_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
    let third_access = third["accessToken"].as_str().unwrap();
    app.get_as(third_access, "/api/v1/auth/whoami").await.expect_error(StatusCode::UNAUTHORIZED, "unauthorized");
    app.get_as(other["accessToken"].as_str().unwrap(), "/api/v1/auth/whoami").await.expect(StatusCode::OK);
    app.finish().await;
}

fn login_body(email: &str, password: &str) -> Value {
    json!({"email": email, "password": password})
}

async fn security_forged_expired_and_ended_sessions_are_refused(app: TestApp) {
    app.org("acme").await;
    app.member("acme", "ann@acme.test", "developer", None).await;
    // Wrong password and unknown email are one answer.
    let wrong =
        app.call_anonymous(Method::POST, "/api/v1/auth/login", login_body("ann@acme.test", "not her password")).await;
    let unknown =
        app.call_anonymous(Method::POST, "/api/v1/auth/login", login_body("nobody@acme.test", PASSWORD)).await;
    assert_eq!(
        wrong.expect_error(StatusCode::UNAUTHORIZED, "invalid_credentials"),
        unknown.expect_error(StatusCode::UNAUTHORIZED, "invalid_credentials")
    );

    let session = app.login("ANN@acme.test", None).await;
    assert_eq!(
        (session["tokenType"].as_str(), session["organization"].as_str(), session["expiresIn"].as_u64()),
        (Some("Bearer"), Some("acme"), Some(300))
    );
    let access = session["accessToken"].as_str().unwrap().to_owned();
    let refresh = session["refreshToken"].as_str().unwrap().to_owned();
    let who = app.get_as(&access, "/api/v1/auth/whoami").await.expect(StatusCode::OK).json();
    assert_eq!((who["kind"].as_str(), who["role"].as_str()), (Some("user"), Some("developer")));

    // A refresh token works once.
    let renewed = app
        .call_anonymous(Method::POST, "/api/v1/auth/refresh", json!({"refreshToken": refresh}))
        .await
        .expect(StatusCode::OK)
        .json();
    app.call_anonymous(Method::POST, "/api/v1/auth/refresh", json!({"refreshToken": refresh}))
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
    let renewed_access = renewed["accessToken"].as_str().unwrap().to_owned();
    app.get_as(&renewed_access, "/api/v1/auth/whoami").await.expect(StatusCode::OK);

    // Forged tokens: tampered claims, no algorithm, another key, past expiry, another audience.
    let keys = app.store.begin().await.unwrap().signing_keys().await.unwrap();
    let key = &keys[0];
    let secret = hex::decode(&key.secret).unwrap();
    let claims = |exp_offset: i64, aud: &str| {
        let now = chrono::Utc::now().timestamp();
        let payload: Value = serde_json::from_slice(&base64_url(access.split('.').nth(1).unwrap())).unwrap();
        json!({"iss": "outrigger", "aud": aud, "sub": payload["sub"], "org": payload["org"], "sid": payload["sid"],
               "iat": now, "nbf": now - 5, "exp": now + exp_offset})
    };
    let sign = |claims: &Value, secret: &[u8], kid: &str| {
        let header = Header { kid: Some(kid.to_owned()), ..Header::new(Algorithm::HS256) };
        jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(secret)).unwrap()
    };
    // The crafted path is sound: with the real key and valid claims it passes.
    app.get_as(&sign(&claims(60, "outrigger-control-api"), &secret, &key.kid), "/api/v1/auth/whoami")
        .await
        .expect(StatusCode::OK);
    let mut tampered: Vec<String> = access.split('.').map(str::to_owned).collect();
    let mut payload: Value = serde_json::from_slice(&base64_url(&tampered[1])).unwrap();
    payload["sub"] = json!("usr_00000000000000000000000000000000");
    tampered[1] = base64_url_encode(payload.to_string().as_bytes());
    let unsigned = format!("{}.{}.", base64_url_encode(br#"{"alg":"none","typ":"JWT"}"#), tampered[1]);
    let forged = [
        tampered.join("."),
        unsigned,
        sign(&claims(60, "outrigger-control-api"), b"another secret entirely, 32 bytes", &key.kid),
        sign(&claims(-120, "outrigger-control-api"), &secret, &key.kid),
        sign(&claims(60, "someone-else"), &secret, &key.kid),
        sign(&claims(60, "outrigger-control-api"), &secret, "k-unknown"),
        "a.b.c".to_owned(),
    ];
    for token in forged {
        app.get_as(&token, "/api/v1/auth/whoami").await.expect_error(StatusCode::UNAUTHORIZED, "unauthorized");
    }

    // Logging out ends the session at once: its access token and its refresh token.
    app.post_as(&renewed_access, "/api/v1/auth/logout", json!({})).await.expect(StatusCode::NO_CONTENT);
    app.get_as(&renewed_access, "/api/v1/auth/whoami").await.expect_error(StatusCode::UNAUTHORIZED, "unauthorized");
    let refresh = renewed["refreshToken"].as_str().unwrap();
    app.call_anonymous(Method::POST, "/api/v1/auth/refresh", json!({"refreshToken": refresh}))
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "invalid_credentials");

    // Removing a member ends their sessions in the organization at once.
    let access = app.access_token("ann@acme.test", "acme").await;
    let members = app.get("/api/v1/orgs/acme/members").await.expect(StatusCode::OK).json();
    let id = members["items"][0]["id"].as_str().unwrap().to_owned();
    app.delete(&format!("/api/v1/orgs/acme/members/{id}")).await.expect(StatusCode::NO_CONTENT);
    app.get_as(&access, "/api/v1/auth/whoami").await.expect_error(StatusCode::UNAUTHORIZED, "unauthorized");
    // A user with no organization left cannot sign in to one.
    let answer = app.call_anonymous(Method::POST, "/api/v1/auth/login", login_body("ann@acme.test", PASSWORD)).await;
    answer.expect_error(StatusCode::NOT_FOUND, "not_found");
}

fn base64_url(text: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text).unwrap()
}

fn base64_url_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

async fn security_api_keys_are_shown_once_and_revoked_at_once(app: TestApp) {
    app.org("acme").await;
    app.member("acme", "ann@acme.test", "admin", None).await;
    app.member("acme", "dev@acme.test", "developer", None).await;
    let ann = app.access_token("ann@acme.test", "acme").await;
    let dev = app.access_token("dev@acme.test", "acme").await;
    app.post_as(&ann, "/api/v1/projects", json!({"name": "shop"})).await.expect(StatusCode::CREATED);

    let made = app
        .post_as(&dev, "/api/v1/orgs/acme/apikeys", json!({"name": "laptop", "expiresInDays": 30}))
        .await
        .expect(StatusCode::CREATED)
        .json();
    let key = made["key"].as_str().unwrap().to_owned();
    assert!(made["expiresAt"].is_string(), "{made}");
    // Listed without the secret: the developer sees their own, the admin everyone's.
    let own = app.get_as(&dev, "/api/v1/orgs/acme/apikeys").await.expect(StatusCode::OK);
    assert!(!String::from_utf8_lossy(&own.body).contains(&key));
    assert_eq!(own.json()["items"].as_array().unwrap().len(), 1);
    app.post_as(&ann, "/api/v1/orgs/acme/apikeys", json!({"name": "admin-key"})).await.expect(StatusCode::CREATED);
    assert_eq!(app.get_as(&dev, "/api/v1/orgs/acme/apikeys").await.json()["items"].as_array().unwrap().len(), 1);
    assert_eq!(app.get_as(&ann, "/api/v1/orgs/acme/apikeys").await.json()["items"].as_array().unwrap().len(), 2);
    // The key carries its owner's role.
    app.post_as(&key, "/api/v1/projects/shop/appids", json!({"name": "web"})).await.expect(StatusCode::CREATED);
    app.post_as(&key, "/api/v1/projects", json!({"name": "more"}))
        .await
        .expect_error(StatusCode::FORBIDDEN, "forbidden");
    // Bad input changes nothing.
    for body in
        [json!({"name": ""}), json!({"name": "x", "expiresInDays": 0}), json!({"name": "x", "expiresInDays": 99999})]
    {
        app.post_as(&dev, "/api/v1/orgs/acme/apikeys", body).await.expect(StatusCode::BAD_REQUEST);
    }
    // Revoked: refused at once; another member's key is out of a developer's reach.
    let id = made["id"].as_str().unwrap();
    let admins = app.get_as(&ann, "/api/v1/orgs/acme/apikeys").await.json();
    let admin_key = admins["items"].as_array().unwrap().iter().find(|k| k["name"] == "admin-key").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.call_as(&dev, None, Method::DELETE, &format!("/api/v1/orgs/acme/apikeys/{admin_key}"), None)
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
    app.call_as(&dev, None, Method::DELETE, &format!("/api/v1/orgs/acme/apikeys/{id}"), None)
        .await
        .expect(StatusCode::NO_CONTENT);
    app.get_as(&key, "/api/v1/auth/whoami").await.expect_error(StatusCode::UNAUTHORIZED, "unauthorized");

    // A service account: made by an admin, its keys made by an admin, its role its own.
    let bot = app
        .post_as(
            &ann,
            "/api/v1/orgs/acme/members",
            json!({"serviceAccount": "deployer", "role": "developer", "project": "shop"}),
        )
        .await
        .expect(StatusCode::CREATED)
        .json();
    assert_eq!(bot["kind"], "serviceAccount");
    let bot_id = bot["id"].as_str().unwrap();
    app.post_as(&dev, "/api/v1/orgs/acme/apikeys", json!({"name": "bot", "serviceAccount": bot_id}))
        .await
        .expect_error(StatusCode::FORBIDDEN, "forbidden");
    let bot_key = app
        .post_as(&ann, "/api/v1/orgs/acme/apikeys", json!({"name": "bot", "serviceAccount": bot_id}))
        .await
        .expect(StatusCode::CREATED)
        .json();
    let bot_key = bot_key["key"].as_str().unwrap();
    let who = app.get_as(bot_key, "/api/v1/auth/whoami").await.expect(StatusCode::OK).json();
    assert_eq!((who["kind"].as_str(), who["name"].as_str()), (Some("serviceAccount"), Some("deployer")));
    app.post_as(bot_key, "/api/v1/projects/shop/appids", json!({"name": "worker"})).await.expect(StatusCode::CREATED);
    // Removing the service account removes its keys.
    app.call_as(&ann, None, Method::DELETE, &format!("/api/v1/orgs/acme/members/{bot_id}"), None)
        .await
        .expect(StatusCode::NO_CONTENT);
    app.get_as(bot_key, "/api/v1/auth/whoami").await.expect_error(StatusCode::UNAUTHORIZED, "unauthorized");
}

#[tokio::test]
async fn passwords_follow_the_rules_and_nothing_is_made_otherwise() {
    let app = TestApp::sqlite().await;
    app.org("acme").await;
    for (password, says) in
        [("short", "at least 12"), ("aaaaaaaaaaaaaaaa", "different"), ("kim@acme.test rules", "email")]
    {
        let body = json!({"email": "kim@acme.test", "password": password, "role": "viewer"});
        let message = app
            .post_json("/api/v1/orgs/acme/members", body)
            .await
            .expect_error(StatusCode::BAD_REQUEST, "weak_password");
        assert!(message.contains(says), "{message}");
    }
    let members = app.get("/api/v1/orgs/acme/members").await.expect(StatusCode::OK).json();
    assert_eq!(members["items"], json!([]));
    for body in [
        json!({"email": "not-an-email", "role": "viewer"}),
        json!({"email": "kim@acme.test", "role": "owner"}),
        json!({"role": "viewer"}),
    ] {
        app.post_json("/api/v1/orgs/acme/members", body).await.expect(StatusCode::BAD_REQUEST);
    }
    app.finish().await;
}

#[tokio::test]
async fn security_repeated_failures_lock_sign_in_for_the_window() {
    let app = TestApp::sqlite().await;
    app.org("acme").await;
    app.member("acme", "ann@acme.test", "viewer", None).await;
    app.member("acme", "bob@acme.test", "viewer", None).await;
    for _ in 0..5 {
        let answer = app
            .call_anonymous(Method::POST, "/api/v1/auth/login", login_body("ann@acme.test", "guess guess guess"))
            .await;
        answer.expect_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
    }
    // Now even the right password is refused until the window ends; another user is not affected.
    let locked = app.call_anonymous(Method::POST, "/api/v1/auth/login", login_body("ann@acme.test", PASSWORD)).await;
    let retry_after: u64 = locked.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=900).contains(&retry_after), "{retry_after}");
    locked.expect_error(StatusCode::TOO_MANY_REQUESTS, "too_many_attempts");
    app.login("bob@acme.test", None).await;
    app.finish().await;
}

#[tokio::test]
async fn security_failed_sign_ins_count_across_replicas() {
    // Two control-API processes on one PostgreSQL database, as the distributed form runs them: failures
    // spread over both lock the email on both, rather than giving an attacker five tries per replica.
    let app = TestApp::postgres().await;
    let replica = app.replica();
    app.org("acme").await;
    app.member("acme", "ann@acme.test", "viewer", None).await;
    for attempt in 0..5 {
        let process = if attempt % 2 == 0 { &app } else { &replica };
        let answer = process
            .call_anonymous(Method::POST, "/api/v1/auth/login", login_body("ann@acme.test", "guess guess guess"))
            .await;
        answer.expect_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
    }
    for process in [&app, &replica] {
        let locked =
            process.call_anonymous(Method::POST, "/api/v1/auth/login", login_body("ann@acme.test", PASSWORD)).await;
        locked.expect_error(StatusCode::TOO_MANY_REQUESTS, "too_many_attempts");
    }
    drop(replica);
    app.finish().await;
}

#[tokio::test]
async fn a_new_signing_key_logs_no_one_out() {
    // With no rotation interval every sign-in finds the newest key too old and makes a new one.
    let app = TestApp::sqlite_with(|options| options.sessions.key_rotation = Duration::ZERO).await;
    app.org("acme").await;
    app.member("acme", "ann@acme.test", "viewer", None).await;
    let kid = |token: &str| jsonwebtoken::decode_header(token).unwrap().kid.unwrap();
    let first = app.access_token("ann@acme.test", "acme").await;
    let second = app.access_token("ann@acme.test", "acme").await;
    let third = app.access_token("ann@acme.test", "acme").await;
    assert!(kid(&first) != kid(&second) && kid(&second) != kid(&third), "each sign-in rotated the key");
    for token in [&first, &second, &third] {
        app.get_as(token, "/api/v1/auth/whoami").await.expect(StatusCode::OK);
    }
    app.finish().await;
}

#[tokio::test]
async fn an_operator_token_shaped_like_a_jwt_or_a_key_is_still_the_operator_token() {
    for token in ["my.operator.token-0123456789", "ork_operator-token-0123456789"] {
        let app = TestApp::sqlite_with(|options| options.admin_token = token.to_owned()).await;
        let who =
            app.call_as(token, None, Method::GET, "/api/v1/auth/whoami", None).await.expect(StatusCode::OK).json();
        assert_eq!(who["kind"], "operator", "{token}");
        app.finish().await;
    }
}

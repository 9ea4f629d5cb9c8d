//! Single sign-on against a real (in-test) OpenID Connect provider: the whole authorization-code flow, and every
//! ID token that must not be taken refused.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::json;

use crate::harness::{Answer, TestApp};
use outrigger_test_oidc::{Provider, Spoil, CLIENT_ID, CLIENT_SECRET, REDIRECT_URL};

async fn app_with(provider: &Provider) -> TestApp {
    app_with_issuer(provider.issuer.clone()).await
}

/// A control API whose single sign-on goes to `provider`, with organization `acme` where `sso@acme.test` (no
/// password) is a viewer, and the provider signing that user in.
async fn viewer_signing_in_through(provider: &Provider) -> TestApp {
    let app = app_with(provider).await;
    app.org("acme").await;
    app.post_json("/api/v1/orgs/acme/members", json!({"email": "sso@acme.test", "role": "viewer"}))
        .await
        .expect(StatusCode::CREATED);
    provider.sign_in_as("sso@acme.test");
    app
}

/// A control API whose single sign-on goes to `issuer`.
async fn app_with_issuer(issuer: String) -> TestApp {
    TestApp::sqlite_with(move |options| {
        options.oidc = Some(outrigger_control_api::OidcOptions {
            issuer,
            client_id: CLIENT_ID.to_owned(),
            client_secret: CLIENT_SECRET.to_owned(),
            redirect_url: REDIRECT_URL.to_owned(),
        })
    })
    .await
}

async fn get_anonymous(app: &TestApp, path: &str) -> Answer {
    app.send(Request::builder().method(Method::GET).uri(path).body(Body::empty()).unwrap()).await
}

/// Starts a login at the control API, lets the provider sign the user in, and answers the callback's URL.
async fn through_provider(app: &TestApp, query: &str) -> String {
    let start = get_anonymous(app, &format!("/api/v1/auth/oidc/login{query}")).await.expect(StatusCode::SEE_OTHER);
    let authorize = start.headers["location"].to_str().unwrap().to_owned();
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let answer = client.get(&authorize).send().await.unwrap();
    assert_eq!(answer.status(), reqwest::StatusCode::SEE_OTHER, "{}", answer.text().await.unwrap());
    let back = answer.headers()["location"].to_str().unwrap().to_owned();
    back.strip_prefix("http://control.test").expect("back to the registered redirect URL").to_owned()
}

async fn sign_in(app: &TestApp, query: &str) -> Answer {
    let callback = through_provider(app, query).await;
    get_anonymous(app, &callback).await
}

#[tokio::test]
async fn security_single_sign_on_takes_only_sound_id_tokens() {
    let provider = Provider::start().await;
    let app = app_with(&provider).await;
    app.org("acme").await;
    app.org("globex").await;
    // A user added without a password signs in through the provider only.
    app.post_json("/api/v1/orgs/acme/members", json!({"email": "sso@acme.test", "role": "developer"}))
        .await
        .expect(StatusCode::CREATED);
    app.post_json("/api/v1/orgs/globex/members", json!({"email": "sso@acme.test", "role": "viewer"}))
        .await
        .expect(StatusCode::CREATED);
    let password = app
        .call_anonymous(
            Method::POST,
            "/api/v1/auth/login",
            json!({"email": "sso@acme.test", "password": "anything at all"}),
        )
        .await;
    password.expect_error(StatusCode::UNAUTHORIZED, "invalid_credentials");

    provider.sign_in_as("SSO@acme.test");
    let session = sign_in(&app, "?organization=globex").await.expect(StatusCode::OK).json();
    assert_eq!(session["organization"], "globex");
    let access = session["accessToken"].as_str().unwrap();
    let who = app.get_as(access, "/api/v1/auth/whoami").await.expect(StatusCode::OK).json();
    assert_eq!((who["email"].as_str(), who["role"].as_str()), (Some("sso@acme.test"), Some("viewer")));

    // A callback is used once; an unknown state is refused before the provider is asked anything.
    let callback = through_provider(&app, "").await;
    get_anonymous(&app, &callback).await.expect(StatusCode::OK);
    let issued = provider.tokens_issued();
    get_anonymous(&app, &callback).await.expect_error(StatusCode::BAD_REQUEST, "invalid_state");
    get_anonymous(&app, "/api/v1/auth/oidc/callback?code=x&state=made-up")
        .await
        .expect_error(StatusCode::BAD_REQUEST, "invalid_state");
    assert_eq!(provider.tokens_issued(), issued);

    // Every spoiled ID token is refused, and starts no session.
    for spoil in [
        Spoil::Nonce,
        Spoil::Audience,
        Spoil::Issuer,
        Spoil::Expired,
        Spoil::UnverifiedEmail,
        Spoil::UnknownKey,
        Spoil::Hmac,
    ] {
        provider.spoil_next(spoil.clone());
        let message = sign_in(&app, "").await.expect_error(StatusCode::UNAUTHORIZED, "sign_in_refused");
        assert!(message.contains("not acceptable"), "{spoil:?}: {message}");
    }
    // The provider refusing (the user cancelled) is a refusal too.
    let callback = through_provider(&app, "").await;
    let state = callback.split("state=").nth(1).unwrap();
    get_anonymous(&app, &format!("/api/v1/auth/oidc/callback?error=access_denied&state={state}"))
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "sign_in_refused");
    // Someone the provider knows but no organization does.
    provider.sign_in_as("stranger@elsewhere.test");
    sign_in(&app, "").await.expect_error(StatusCode::NOT_FOUND, "not_found");
    provider.sign_in_as("sso@acme.test");
    sign_in(&app, "?organization=initech").await.expect_error(StatusCode::NOT_FOUND, "not_found");
    app.finish().await;
}

#[tokio::test]
async fn the_provider_rotating_its_keys_needs_nothing_from_the_operator() {
    let provider = Provider::start().await;
    let app = viewer_signing_in_through(&provider).await;
    sign_in(&app, "").await.expect(StatusCode::OK);
    sign_in(&app, "").await.expect(StatusCode::OK);
    assert_eq!(provider.jwks_fetches(), 1, "the keys are kept between sign-ins");
    provider.rotate_key("key-2");
    sign_in(&app, "").await.expect(StatusCode::OK);
    assert_eq!(provider.jwks_fetches(), 2, "an unknown key id fetches the keys again");
    app.finish().await;
}

#[tokio::test]
async fn without_a_provider_single_sign_on_says_how_to_turn_it_on() {
    let app = TestApp::sqlite().await;
    let message = get_anonymous(&app, "/api/v1/auth/oidc/login").await.expect_error(StatusCode::NOT_FOUND, "not_found");
    assert!(message.contains("OUTRIGGER_OIDC_ISSUER"), "{message}");
    app.finish().await;
}

#[tokio::test]
async fn an_unreachable_provider_is_named_as_such() {
    // A port nothing listens on: bound, then let go.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let app = app_with_issuer(format!("http://{closed}")).await;
    let answer = get_anonymous(&app, "/api/v1/auth/oidc/login").await;
    let message = answer.expect_error(StatusCode::BAD_GATEWAY, "identity_provider_unavailable");
    assert!(message.contains("discovery document"), "{message}");
    app.finish().await;
}

#[tokio::test]
async fn a_command_line_client_gets_a_refresh_token_on_its_loopback_only() {
    let provider = Provider::start().await;
    let app = viewer_signing_in_through(&provider).await;
    for refused in [
        "http://evil.test/cb",
        "https://127.0.0.1:9/cb",
        "http://user@127.0.0.1:9/",
        "ftp://localhost/",
        "not a url",
        "//evil.test/",
        "/elsewhere",
        "/#/x",
    ] {
        let path = format!(
            "/api/v1/auth/oidc/login?returnTo={}",
            url::form_urlencoded::byte_serialize(refused.as_bytes()).collect::<String>()
        );
        get_anonymous(&app, &path).await.expect_error(StatusCode::BAD_REQUEST, "invalid_return_to");
    }
    let callback = through_provider(&app, "?returnTo=http%3A%2F%2F127.0.0.1%3A45678%2Fdone").await;
    let answer = get_anonymous(&app, &callback).await.expect(StatusCode::SEE_OTHER);
    let location = url::Url::parse(answer.headers["location"].to_str().unwrap()).unwrap();
    assert_eq!((location.host_str(), location.port(), location.path()), (Some("127.0.0.1"), Some(45678), "/done"));
    let query: std::collections::HashMap<_, _> = location.query_pairs().into_owned().collect();
    assert_eq!(query["organization"], "acme");
    // The client swaps the refresh token at once; the copy left in the browser's history is then used up.
    let refresh = json!({"refreshToken": query["refreshToken"]});
    app.call_anonymous(Method::POST, "/api/v1/auth/refresh", refresh.clone()).await.expect(StatusCode::OK);
    app.call_anonymous(Method::POST, "/api/v1/auth/refresh", refresh)
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
    app.finish().await;
}

#[tokio::test]
async fn the_web_console_gets_its_session_in_the_fragment_of_its_own_page() {
    let provider = Provider::start().await;
    let app = viewer_signing_in_through(&provider).await;
    let callback = through_provider(&app, "?returnTo=%2F").await;
    let answer = get_anonymous(&app, &callback).await.expect(StatusCode::SEE_OTHER);
    let location = answer.headers["location"].to_str().unwrap().to_owned();
    // Relative to this server, and the token only after `#`: a fragment never reaches a server or its logs.
    let fragment = location.strip_prefix("/#/signin?").unwrap_or_else(|| panic!("{location}"));
    let pairs: std::collections::HashMap<_, _> =
        url::form_urlencoded::parse(fragment.as_bytes()).into_owned().collect();
    assert_eq!(pairs["organization"], "acme");
    let refresh = json!({"refreshToken": pairs["refreshToken"]});
    app.call_anonymous(Method::POST, "/api/v1/auth/refresh", refresh.clone()).await.expect(StatusCode::OK);
    app.call_anonymous(Method::POST, "/api/v1/auth/refresh", refresh)
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
    app.finish().await;
}

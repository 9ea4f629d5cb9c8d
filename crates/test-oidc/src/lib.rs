//! A small OpenID Connect provider for tests, on a real port: discovery, an authorization endpoint that signs in
//! whoever the test says, a token endpoint that checks the client, the redirect and PKCE, and a JWKS of ES256
//! keys it can rotate. ID tokens can be spoiled one claim at a time. The control API's tests and the CLI's use it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Form, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// The client id the provider knows the control API by.
pub const CLIENT_ID: &str = "outrigger-test";
/// Its client secret.
pub const CLIENT_SECRET: &str = "test-client-secret";
/// The only redirect URL the provider sends users back to: the control API's callback under a name tests map to
/// the server they started (`control.test` resolves nowhere else).
pub const REDIRECT_URL: &str = "http://control.test/api/v1/auth/oidc/callback";

struct Key {
    kid: String,
    encoding: EncodingKey,
    public: Value,
}

fn new_key(kid: &str) -> Key {
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let point = pair.public_key_raw();
    let public = json!({"kty": "EC", "crv": "P-256", "kid": kid, "alg": "ES256", "use": "sig",
        "x": URL_SAFE_NO_PAD.encode(&point[1..33]), "y": URL_SAFE_NO_PAD.encode(&point[33..65])});
    Key { kid: kid.to_owned(), encoding: EncodingKey::from_ec_der(&pair.serialize_der()), public }
}

/// What the next ID token gets wrong, if anything.
#[derive(Clone, Debug)]
pub enum Spoil {
    /// Another login's nonce.
    Nonce,
    /// Another client's audience.
    Audience,
    /// Another issuer.
    Issuer,
    /// Expired ten minutes ago.
    Expired,
    /// `email_verified: false`.
    UnverifiedEmail,
    /// Signed with a key the JWKS does not hold.
    UnknownKey,
    /// Labelled HS256, signed with the public key's bytes as the secret (algorithm confusion).
    Hmac,
}

struct Pending {
    nonce: String,
    challenge: String,
    redirect_uri: String,
    email: String,
}

#[derive(Default)]
struct Inner {
    keys: Vec<Key>,
    codes: HashMap<String, Pending>,
    email: String,
    spoil: Option<Spoil>,
    jwks_fetches: usize,
    issued: usize,
}

/// The running provider.
#[derive(Clone)]
pub struct Provider {
    /// Its issuer URL (`http://127.0.0.1:<port>`).
    pub issuer: String,
    inner: Arc<Mutex<Inner>>,
}

impl Provider {
    /// Starts the provider on a free port of the loopback interface, in the current tokio runtime.
    pub async fn start() -> Provider {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = format!("http://{}", listener.local_addr().unwrap());
        let inner = Arc::new(Mutex::new(Inner { keys: vec![new_key("key-1")], ..Inner::default() }));
        let provider = Provider { issuer, inner };
        let app = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/authorize", get(authorize))
            .route("/token", post(token))
            .route("/jwks", get(jwks))
            .with_state(provider.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        provider
    }

    /// Who signs in next.
    pub fn sign_in_as(&self, email: &str) {
        self.inner.lock().unwrap().email = email.to_owned();
    }

    /// Spoils the next ID token.
    pub fn spoil_next(&self, spoil: Spoil) {
        self.inner.lock().unwrap().spoil = Some(spoil);
    }

    /// Replaces the signing key with a new one (the old one leaves the JWKS).
    pub fn rotate_key(&self, kid: &str) {
        self.inner.lock().unwrap().keys = vec![new_key(kid)];
    }

    /// How often its keys were fetched.
    pub fn jwks_fetches(&self) -> usize {
        self.inner.lock().unwrap().jwks_fetches
    }

    /// How many ID tokens it issued.
    pub fn tokens_issued(&self) -> usize {
        self.inner.lock().unwrap().issued
    }
}

async fn discovery(State(provider): State<Provider>) -> Json<Value> {
    let issuer = &provider.issuer;
    Json(json!({"issuer": issuer, "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"), "jwks_uri": format!("{issuer}/jwks"),
        "response_types_supported": ["code"], "id_token_signing_alg_values_supported": ["ES256"]}))
}

async fn authorize(State(provider): State<Provider>, Query(query): Query<HashMap<String, String>>) -> Response {
    let expected = [
        ("response_type", "code"),
        ("client_id", CLIENT_ID),
        ("code_challenge_method", "S256"),
        ("redirect_uri", REDIRECT_URL),
    ];
    for (name, value) in expected {
        if query.get(name).map(String::as_str) != Some(value) {
            return (StatusCode::BAD_REQUEST, format!("{name} must be {value}")).into_response();
        }
    }
    if !query.get("scope").is_some_and(|scope| scope.split(' ').any(|scope| scope == "openid")) {
        return (StatusCode::BAD_REQUEST, "scope must hold openid").into_response();
    }
    let code = format!("code-{}", uuid::Uuid::new_v4().simple());
    let mut inner = provider.inner.lock().unwrap();
    let pending = Pending {
        nonce: query["nonce"].clone(),
        challenge: query["code_challenge"].clone(),
        redirect_uri: query["redirect_uri"].clone(),
        email: inner.email.clone(),
    };
    inner.codes.insert(code.clone(), pending);
    Redirect::to(&format!("{REDIRECT_URL}?code={code}&state={}", query["state"])).into_response()
}

async fn token(State(provider): State<Provider>, Form(form): Form<HashMap<String, String>>) -> Response {
    let refuse = |error: &str| (StatusCode::BAD_REQUEST, Json(json!({"error": error}))).into_response();
    let field = |name: &str| form.get(name).map(String::as_str).unwrap_or_default();
    if field("grant_type") != "authorization_code"
        || field("client_id") != CLIENT_ID
        || field("client_secret") != CLIENT_SECRET
    {
        return refuse("invalid_client");
    }
    let mut inner = provider.inner.lock().unwrap();
    // A code works once.
    let Some(pending) = inner.codes.remove(field("code")) else { return refuse("invalid_grant") };
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(field("code_verifier").as_bytes()));
    if pending.redirect_uri != field("redirect_uri") || pending.challenge != challenge {
        return refuse("invalid_grant");
    }
    let now = chrono::Utc::now().timestamp();
    let mut claims = json!({"iss": provider.issuer, "aud": CLIENT_ID, "sub": format!("sub-{}", pending.email),
        "email": pending.email, "email_verified": true, "nonce": pending.nonce, "iat": now, "exp": now + 300});
    let spoil = inner.spoil.take();
    match spoil {
        Some(Spoil::Nonce) => claims["nonce"] = json!("another-login"),
        Some(Spoil::Audience) => claims["aud"] = json!("another-client"),
        Some(Spoil::Issuer) => claims["iss"] = json!("http://impostor.test"),
        Some(Spoil::Expired) => {
            claims["iat"] = json!(now - 900);
            claims["exp"] = json!(now - 600);
        }
        Some(Spoil::UnverifiedEmail) => claims["email_verified"] = json!(false),
        _ => {}
    }
    let key = &inner.keys[0];
    let id_token = match spoil {
        Some(Spoil::UnknownKey) => {
            let stranger = new_key(&key.kid);
            jsonwebtoken::encode(
                &Header { kid: Some(key.kid.clone()), ..Header::new(Algorithm::ES256) },
                &claims,
                &stranger.encoding,
            )
        }
        Some(Spoil::Hmac) => {
            let secret = serde_json::to_vec(&key.public).unwrap();
            jsonwebtoken::encode(
                &Header { kid: Some(key.kid.clone()), ..Header::new(Algorithm::HS256) },
                &claims,
                &EncodingKey::from_secret(&secret),
            )
        }
        _ => jsonwebtoken::encode(
            &Header { kid: Some(key.kid.clone()), ..Header::new(Algorithm::ES256) },
            &claims,
            &key.encoding,
        ),
    }
    .unwrap();
    inner.issued += 1;
    Json(json!({"id_token": id_token, "access_token": "provider-access-token", "token_type": "Bearer", "expires_in": 300})).into_response()
}

async fn jwks(State(provider): State<Provider>) -> Json<Value> {
    let mut inner = provider.inner.lock().unwrap();
    inner.jwks_fetches += 1;
    Json(json!({"keys": inner.keys.iter().map(|key| key.public.clone()).collect::<Vec<_>>()}))
}

//! Single sign-on with any OpenID Connect provider: the authorization-code flow with PKCE.
//!
//! The provider's discovery document and signing keys (JWKS) are fetched when first needed and kept; a token
//! signed with a key not in the kept set makes the keys be fetched again, so the provider rotating its keys
//! needs nothing from the operator. (ID tokens come from the provider's token endpoint over the back channel,
//! never from the user's browser, so only the provider can make the keys be fetched again.) An ID token is
//! accepted only with an asymmetric algorithm its key is for, a valid signature, `iss` the configured issuer,
//! `aud` holding the client id, `exp`/`nbf`/`iat` within [`CLOCK_SKEW`], the `nonce` of the login it answers,
//! and a verified email. Every request to the provider goes through the egress rule.

use std::time::{Duration, Instant};

use base64::Engine;
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use outrigger_outbound::Egress;
use outrigger_store::{new_secret, OidcLogin};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;

use crate::error::ApiError;

/// How far apart the provider's clock and ours may be.
const CLOCK_SKEW: Duration = Duration::from_secs(60);
/// How long a login may take between leaving for the provider and coming back.
pub(crate) const LOGIN_WINDOW: Duration = Duration::from_secs(600);
/// How long the discovery document is kept.
const DISCOVERY_TTL: Duration = Duration::from_secs(3600);
/// How long one request to the provider may take.
const PROVIDER_TIMEOUT: Duration = Duration::from_secs(10);

/// The provider, as the operator configured it.
#[derive(Clone, Debug)]
pub struct OidcOptions {
    /// The issuer URL; its discovery document is at `<issuer>/.well-known/openid-configuration`.
    pub issuer: String,
    /// This installation's client id at the provider.
    pub client_id: String,
    /// Its client secret.
    pub client_secret: String,
    /// Where the provider sends users back: this control API's `/api/v1/auth/oidc/callback`.
    pub redirect_url: String,
}

#[derive(Clone, Debug, Deserialize)]
struct Discovery {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
}

#[derive(Deserialize)]
struct TokenAnswer {
    id_token: String,
}

#[derive(Deserialize)]
struct IdClaims {
    nonce: Option<String>,
    email: Option<String>,
    email_verified: Option<bool>,
}

#[derive(Default)]
struct Kept {
    discovery: Option<(Instant, Discovery)>,
    keys: Option<JwkSet>,
}

/// The configured provider and what was fetched from it.
pub(crate) struct Oidc {
    options: OidcOptions,
    client: reqwest::Client,
    kept: Mutex<Kept>,
}

fn unavailable(what: &str, err: impl std::fmt::Display) -> ApiError {
    tracing::warn!(error = %err, "{what}");
    ApiError::bad_gateway(format!("the identity provider could not be reached or answered wrongly ({what}): try again, or ask the operator to check OUTRIGGER_OIDC_ISSUER"))
}

impl Oidc {
    pub(crate) fn new(options: OidcOptions, egress: &Egress) -> Oidc {
        Oidc { options, client: egress.client(false), kept: Mutex::new(Kept::default()) }
    }

    async fn fetch<T: serde::de::DeserializeOwned>(&self, url: &str, what: &str) -> Result<T, ApiError> {
        let answer =
            self.client.get(url).timeout(PROVIDER_TIMEOUT).send().await.map_err(|err| unavailable(what, err))?;
        let answer = answer.error_for_status().map_err(|err| unavailable(what, err))?;
        answer.json().await.map_err(|err| unavailable(what, err))
    }

    async fn discovery(&self) -> Result<Discovery, ApiError> {
        let mut kept = self.kept.lock().await;
        if let Some((at, discovery)) = &kept.discovery {
            if at.elapsed() < DISCOVERY_TTL {
                return Ok(discovery.clone());
            }
        }
        let url = format!("{}/.well-known/openid-configuration", self.options.issuer.trim_end_matches('/'));
        let discovery: Discovery = self.fetch(&url, "discovery document").await?;
        if discovery.issuer.trim_end_matches('/') != self.options.issuer.trim_end_matches('/') {
            return Err(unavailable("discovery document", format!("it names issuer '{}'", discovery.issuer)));
        }
        kept.discovery = Some((Instant::now(), discovery.clone()));
        Ok(discovery)
    }

    /// The provider's key with this id, fetching the key set again when it is not known.
    async fn key(&self, kid: Option<&str>, jwks_uri: &str) -> Result<Option<Jwk>, ApiError> {
        let mut kept = self.kept.lock().await;
        let find = |set: &JwkSet| match kid {
            Some(kid) => set.find(kid).cloned(),
            None => (set.keys.len() == 1).then(|| set.keys[0].clone()),
        };
        if let Some(key) = kept.keys.as_ref().and_then(find) {
            return Ok(Some(key));
        }
        let set: JwkSet = self.fetch(jwks_uri, "signing keys (JWKS)").await?;
        let key = find(&set);
        kept.keys = Some(set);
        Ok(key)
    }

    /// Starts a login: where to send the user, and what to keep until they come back.
    pub(crate) async fn start(
        &self,
        organization: Option<String>,
        return_to: Option<String>,
    ) -> Result<(String, OidcLogin), ApiError> {
        let discovery = self.discovery().await?;
        let login = OidcLogin {
            state: new_secret(""),
            nonce: new_secret(""),
            code_verifier: new_secret(""),
            organization,
            return_to,
        };
        let challenge =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(login.code_verifier.as_bytes()));
        let mut url = url::Url::parse(&discovery.authorization_endpoint)
            .map_err(|err| unavailable("authorization endpoint", err))?;
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.options.client_id)
            .append_pair("redirect_uri", &self.options.redirect_url)
            .append_pair("scope", "openid email")
            .append_pair("state", &login.state)
            .append_pair("nonce", &login.nonce)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256");
        Ok((url.into(), login))
    }

    /// Finishes a login: swaps the code for an ID token, checks it, and answers the verified email.
    pub(crate) async fn finish(&self, code: &str, login: &OidcLogin) -> Result<String, ApiError> {
        let discovery = self.discovery().await?;
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", &self.options.redirect_url),
            ("client_id", &self.options.client_id),
            ("client_secret", &self.options.client_secret),
            ("code_verifier", &login.code_verifier),
        ];
        let answer = self
            .client
            .post(&discovery.token_endpoint)
            .timeout(PROVIDER_TIMEOUT)
            .form(&form)
            .send()
            .await
            .map_err(|err| unavailable("token endpoint", err))?;
        if answer.status().is_client_error() {
            let body = answer.text().await.unwrap_or_default();
            tracing::info!(answer = %body, "the identity provider refused the code");
            return Err(ApiError::sign_in_refused("the identity provider refused the sign-in code: sign in again"));
        }
        let answer: TokenAnswer = answer
            .error_for_status()
            .map_err(|err| unavailable("token endpoint", err))?
            .json()
            .await
            .map_err(|err| unavailable("token endpoint", err))?;
        self.verify(&answer.id_token, &discovery, &login.nonce).await
    }

    async fn verify(&self, id_token: &str, discovery: &Discovery, nonce: &str) -> Result<String, ApiError> {
        let refused = |why: &str| {
            tracing::info!(reason = why, "ID token refused");
            ApiError::sign_in_refused(format!(
                "the identity provider's ID token is not acceptable ({why}): sign in again, or ask the operator"
            ))
        };
        let header = jsonwebtoken::decode_header(id_token).map_err(|_| refused("not a JWT"))?;
        let key = self
            .key(header.kid.as_deref(), &discovery.jwks_uri)
            .await?
            .ok_or_else(|| refused("signed with an unknown key"))?;
        // The algorithm must fit the key's type: a public key is never used as an HMAC secret.
        let fits = match &key.algorithm {
            AlgorithmParameters::RSA(_) => matches!(
                header.alg,
                Algorithm::RS256
                    | Algorithm::RS384
                    | Algorithm::RS512
                    | Algorithm::PS256
                    | Algorithm::PS384
                    | Algorithm::PS512
            ),
            AlgorithmParameters::EllipticCurve(_) => matches!(header.alg, Algorithm::ES256 | Algorithm::ES384),
            AlgorithmParameters::OctetKeyPair(_) => header.alg == Algorithm::EdDSA,
            AlgorithmParameters::OctetKey(_) => false,
        };
        if !fits {
            return Err(refused("an algorithm its key is not for"));
        }
        let decoding = DecodingKey::from_jwk(&key).map_err(|_| refused("an unusable key"))?;
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[discovery.issuer.as_str()]);
        validation.set_audience(&[self.options.client_id.as_str()]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = CLOCK_SKEW.as_secs();
        let claims = jsonwebtoken::decode::<IdClaims>(id_token, &decoding, &validation)
            .map_err(|err| refused(&format!("{:?}", err.kind())))?
            .claims;
        if claims.nonce.as_deref() != Some(nonce) {
            return Err(refused("a nonce of another login"));
        }
        if claims.email_verified == Some(false) {
            return Err(refused("an email the provider has not verified"));
        }
        claims.email.map(|email| email.trim().to_lowercase()).ok_or_else(|| refused("no email"))
    }
}

//! Access tokens: short-lived HS256 JWTs naming a session, signed with rotating keys.
//!
//! The newest stored key signs; once it is older than the rotation interval a new one is made and the one
//! before stays, verifying the tokens it signed until they expire, so rotation logs no one out. Every
//! verification checks the algorithm (HS256 only: `none` and public-key algorithms are refused), the key
//! (`kid`), the signature, `iss`, `aud`, `exp` and `nbf` with a bounded clock skew; the caller then checks the
//! session is still live.

use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use outrigger_store::{now_millis, OrgId, PrincipalId, SigningKey, Store};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, RwLock};

use crate::error::ApiError;

const ISSUER: &str = "outrigger";
const AUDIENCE: &str = "outrigger-control-api";
/// How far apart two clocks may be when judging `exp` and `nbf`.
const CLOCK_SKEW: Duration = Duration::from_secs(30);

/// How sessions are kept.
#[derive(Clone, Copy, Debug)]
pub struct SessionOptions {
    /// How long an access token works.
    pub access_ttl: Duration,
    /// How long a session may be refreshed without signing in again.
    pub refresh_ttl: Duration,
    /// How often a new signing key takes over.
    pub key_rotation: Duration,
    /// How long after its swap a refresh token presented again is taken for its owner's second client refreshing
    /// at the same moment (refused, nothing ends); presented later, it ends its session.
    pub reuse_grace: Duration,
}

impl Default for SessionOptions {
    fn default() -> SessionOptions {
        SessionOptions {
            access_ttl: Duration::from_secs(5 * 60),
            refresh_ttl: Duration::from_secs(14 * 24 * 3600),
            key_rotation: Duration::from_secs(24 * 3600),
            reuse_grace: Duration::from_secs(10),
        }
    }
}

/// What an access token says.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Claims {
    iss: String,
    aud: String,
    /// The principal.
    pub(crate) sub: String,
    /// The organization the session works in.
    pub(crate) org: String,
    /// The session.
    pub(crate) sid: String,
    iat: u64,
    nbf: u64,
    exp: u64,
}

impl Claims {
    pub(crate) fn principal(&self) -> PrincipalId {
        PrincipalId::received(self.sub.clone())
    }

    pub(crate) fn org(&self) -> OrgId {
        OrgId::received(self.org.clone())
    }
}

/// Signs and verifies access tokens.
pub(crate) struct Signer {
    options: SessionOptions,
    /// The stored keys, newest first, as last read.
    keys: RwLock<Vec<SigningKey>>,
    /// Held while a new key is made, so one process makes one.
    rotating: Mutex<()>,
}

fn secret(key: &SigningKey) -> Vec<u8> {
    hex::decode(&key.secret).unwrap_or_default()
}

impl Signer {
    pub(crate) fn new(options: SessionOptions) -> Signer {
        Signer { options, keys: RwLock::new(Vec::new()), rotating: Mutex::new(()) }
    }

    pub(crate) fn options(&self) -> &SessionOptions {
        &self.options
    }

    /// An access token for the session, and its lifetime in seconds.
    pub(crate) async fn sign(
        &self,
        store: &Store,
        principal: &PrincipalId,
        org: &OrgId,
        session: &str,
    ) -> Result<(String, u64), ApiError> {
        let key = self.signing_key(store).await?;
        let now = u64::try_from(now_millis() / 1000).unwrap_or_default();
        let ttl = self.options.access_ttl.as_secs().max(1);
        let claims = Claims {
            iss: ISSUER.to_owned(),
            aud: AUDIENCE.to_owned(),
            sub: principal.as_str().to_owned(),
            org: org.as_str().to_owned(),
            sid: session.to_owned(),
            iat: now,
            nbf: now,
            exp: now + ttl,
        };
        let header = Header { kid: Some(key.kid.clone()), ..Header::new(Algorithm::HS256) };
        let token =
            jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(&secret(&key))).map_err(|err| {
                tracing::error!(error = %err, "cannot sign an access token");
                ApiError::internal()
            })?;
        Ok((token, ttl))
    }

    /// The claims of a valid token; `None` for anything else (bad shape, algorithm, key, signature, time).
    pub(crate) async fn verify(&self, store: &Store, token: &str) -> Result<Option<Claims>, ApiError> {
        let Ok(header) = jsonwebtoken::decode_header(token) else { return Ok(None) };
        if header.alg != Algorithm::HS256 {
            return Ok(None);
        }
        let Some(kid) = header.kid else { return Ok(None) };
        let mut key = self.keys.read().await.iter().find(|key| key.kid == kid).cloned();
        if key.is_none() {
            // Another replica may have rotated: read the stored keys once more.
            self.reload(store).await?;
            key = self.keys.read().await.iter().find(|key| key.kid == kid).cloned();
        }
        let Some(key) = key else { return Ok(None) };
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = CLOCK_SKEW.as_secs();
        Ok(jsonwebtoken::decode::<Claims>(token, &DecodingKey::from_secret(&secret(&key)), &validation)
            .ok()
            .map(|data| data.claims))
    }

    async fn reload(&self, store: &Store) -> Result<(), ApiError> {
        let keys = store.begin().await?.signing_keys().await?;
        *self.keys.write().await = keys;
        Ok(())
    }

    /// The key to sign with: the newest, or a new one once the newest is older than the rotation interval.
    async fn signing_key(&self, store: &Store) -> Result<SigningKey, ApiError> {
        let rotation = i64::try_from(self.options.key_rotation.as_millis()).unwrap_or(i64::MAX);
        let fresh = |keys: &[SigningKey]| keys.first().filter(|key| now_millis() - key.created_at < rotation).cloned();
        if let Some(key) = fresh(self.keys.read().await.as_slice()) {
            return Ok(key);
        }
        let _rotating = self.rotating.lock().await;
        self.reload(store).await?;
        if let Some(key) = fresh(self.keys.read().await.as_slice()) {
            return Ok(key);
        }
        let mut bytes = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut bytes);
        let key = SigningKey {
            kid: format!("k{}", hex::encode(&bytes[..8])),
            secret: hex::encode(bytes),
            created_at: now_millis(),
        };
        // A key is dropped once the key that took over from it is older than an access token's life: nothing
        // it signed is still valid.
        let access_ttl = i64::try_from(self.options.access_ttl.as_millis()).unwrap_or(i64::MAX);
        let mut tx = store.begin().await?;
        let keys = self.keys.read().await.clone();
        tx.add_signing_key(&key).await?;
        let superseded = std::iter::once(key.created_at).chain(keys.iter().map(|key| key.created_at));
        for (successor_created, older) in superseded.zip(&keys) {
            if now_millis() - successor_created > access_ttl + CLOCK_SKEW.as_millis() as i64 {
                tx.delete_signing_key(&older.kid).await?;
            }
        }
        tx.commit().await?;
        tracing::info!(kid = %key.kid, "new key signs access tokens");
        self.reload(store).await?;
        Ok(key)
    }
}

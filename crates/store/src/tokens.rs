//! App ID API tokens: generated high-entropy, stored only as SHA-256.
//!
//! A slow password hash buys nothing for 256-bit random secrets and would sit on the gateway's hot path;
//! SHA-256 keeps the lookup a single indexed equality.

use rand::RngCore;
use sha2::{Digest, Sha256};

/// A token as issued: the secret is in this value only, never in the database.
#[derive(Clone, Debug)]
pub struct IssuedToken {
    /// Identifier, for listing and revoking.
    pub id: String,
    /// The secret the app sends as `dapr-api-token`.
    pub token: String,
    /// Unix milliseconds.
    pub created_at: i64,
}

impl IssuedToken {
    pub(crate) fn generate(now: i64) -> IssuedToken {
        IssuedToken { id: crate::new_id("tok"), token: new_secret("ort_"), created_at: now }
    }
}

/// A new 256-bit random secret as `prefix` and 64 hex digits (App ID tokens, API keys, refresh tokens, the
/// state of a single-sign-on login): the prefix tells a leaked secret's kind at a glance.
pub fn new_secret(prefix: &str) -> String {
    let mut secret = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut secret);
    format!("{prefix}{}", hex::encode(secret))
}

/// The stored form of a token.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

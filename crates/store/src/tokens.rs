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
        let mut secret = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut secret);
        IssuedToken { id: crate::new_id("tok"), token: format!("ort_{}", hex::encode(secret)), created_at: now }
    }
}

/// The stored form of a token.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

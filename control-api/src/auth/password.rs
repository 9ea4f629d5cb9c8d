//! Users' passwords: the rules a new one must follow, and argon2id hashes in the PHC string format.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

use crate::error::ApiError;

/// Shortest password accepted.
pub(crate) const MIN_LENGTH: usize = 12;
/// Longest password accepted (argon2 takes any length; this bounds the work one request can ask for).
pub(crate) const MAX_LENGTH: usize = 256;

/// Checks a new password against the rules; the error says which one it breaks.
pub(crate) fn check_rules(password: &str, email: &str) -> Result<(), ApiError> {
    let invalid = |rule: &str| ApiError::bad_request("weak_password", format!("password: {rule}"));
    let length = password.chars().count();
    if length < MIN_LENGTH {
        return Err(invalid(&format!("use at least {MIN_LENGTH} characters (a few words make a good one)")));
    }
    if length > MAX_LENGTH {
        return Err(invalid(&format!("use at most {MAX_LENGTH} characters")));
    }
    let mut distinct: Vec<char> = password.chars().collect();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() < 5 {
        return Err(invalid("use at least 5 different characters"));
    }
    if password.to_lowercase().contains(&email.to_lowercase())
        || email
            .to_lowercase()
            .split('@')
            .next()
            .is_some_and(|local| local.len() >= 4 && password.to_lowercase().contains(local))
    {
        return Err(invalid("do not include your email address"));
    }
    Ok(())
}

/// The argon2id hash (with a fresh salt) of a password.
pub(crate) fn hash(password: &str) -> String {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 hashes any password with default parameters")
        .to_string()
}

/// Whether `password` matches the stored hash. Without a hash (an unknown user, a single-sign-on user) a hash is
/// still computed, so the answer takes as long either way and does not tell which emails exist.
pub(crate) fn verify(password: &str, stored: Option<&str>) -> bool {
    let parsed = stored.and_then(|stored| PasswordHash::new(stored).ok());
    match parsed {
        Some(parsed) => Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok(),
        None => {
            let _ = hash(password);
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_name_what_is_wrong() {
        assert!(check_rules("correct horse battery", "ann@example.com").is_ok());
        let short = check_rules("short", "ann@example.com").unwrap_err();
        assert!(short.to_string().contains("at least 12"), "{short}");
        assert!(check_rules(&"ab".repeat(10), "ann@example.com").unwrap_err().to_string().contains("different"));
        assert!(check_rules("xx ann@example.com yy", "ann@example.com").is_err());
        assert!(check_rules("my name is annabel!", "annabel@example.com").is_err());
        assert!(check_rules(&"abcdefg".repeat(40), "ann@example.com").is_err());
    }

    #[test]
    fn a_hash_verifies_its_password_only() {
        let stored = hash("correct horse battery");
        assert!(stored.starts_with("$argon2id$"), "{stored}");
        assert!(verify("correct horse battery", Some(&stored)));
        assert!(!verify("correct horse battery!", Some(&stored)));
        assert!(!verify("correct horse battery", None));
        assert!(!verify("correct horse battery", Some("not a hash")));
    }
}

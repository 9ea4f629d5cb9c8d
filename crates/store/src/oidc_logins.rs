//! Single sign-on logins under way: what the callback from the identity provider must match.

use sqlx::Row;

use crate::{now_millis, Result, Tx};

/// A login handed to the identity provider and not yet come back.
#[derive(Clone, Debug)]
pub struct OidcLogin {
    /// The `state` parameter: names the login.
    pub state: String,
    /// The `nonce` the ID token must carry.
    pub nonce: String,
    /// The PKCE code verifier, sent with the code.
    pub code_verifier: String,
    /// The organization asked for, if any.
    pub organization: Option<String>,
    /// The loopback address a command-line client waits at, if it started the login.
    pub return_to: Option<String>,
}

impl Tx {
    /// Records a login under way, first removing those started before `expired_before` (Unix milliseconds).
    pub async fn start_oidc_login(&mut self, login: &OidcLogin, expired_before: i64) -> Result<()> {
        sqlx::query("DELETE FROM oidc_logins WHERE created_at < $1")
            .bind(expired_before)
            .execute(&mut *self.tx)
            .await?;
        sqlx::query(
            "INSERT INTO oidc_logins (state, nonce, code_verifier, organization, return_to, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&login.state)
        .bind(&login.nonce)
        .bind(&login.code_verifier)
        .bind(&login.organization)
        .bind(&login.return_to)
        .bind(now_millis())
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// Takes the login `state` names, if it was started at or after `started_since`: it cannot be used again.
    pub async fn take_oidc_login(&mut self, state: &str, started_since: i64) -> Result<Option<OidcLogin>> {
        let row = sqlx::query(
            "SELECT state, nonce, code_verifier, organization, return_to FROM oidc_logins \
             WHERE state = $1 AND created_at >= $2",
        )
        .bind(state)
        .bind(started_since)
        .fetch_optional(&mut *self.tx)
        .await?;
        sqlx::query("DELETE FROM oidc_logins WHERE state = $1").bind(state).execute(&mut *self.tx).await?;
        row.map(|row| {
            Ok(OidcLogin {
                state: row.try_get("state")?,
                nonce: row.try_get("nonce")?,
                code_verifier: row.try_get("code_verifier")?,
                organization: row.try_get("organization")?,
                return_to: row.try_get("return_to")?,
            })
        })
        .transpose()
    }
}

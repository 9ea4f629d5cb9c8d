//! Signed-in sessions and the keys that sign their access tokens.
//!
//! A session holds the SHA-256 of its current refresh token; refreshing swaps it for a new one and remembers
//! the old one until the session expires, so a refresh token presented a second time — copied by someone, who
//! either used it first or will — ends its session. Access tokens name their session, which is read on every
//! control-API request: ending a session (logout, removal from the organization, a reused refresh token)
//! refuses its tokens at once.

use sqlx::Row;

use crate::orgs::OrgId;
use crate::principals::PrincipalId;
use crate::{hash_token, now_millis, Result, Tx};

/// A session as stored.
#[derive(Clone, Debug)]
pub struct Session {
    /// Identifier, named by its access tokens.
    pub id: String,
    /// Who signed in.
    pub principal: PrincipalId,
    /// The organization the session works in.
    pub org: OrgId,
    /// When the refresh token stops working (Unix milliseconds).
    pub expires_at: i64,
}

/// What presenting a refresh token did.
#[derive(Clone, Debug)]
pub enum Refreshed {
    /// It was the session's current one, now swapped.
    Renewed(Session),
    /// It had been swapped already: the session it belonged to is now ended.
    Reused { session: String },
    /// No live session has or had it, or it was swapped within the grace (refused; nothing ends).
    Unknown,
}

/// A key that signs access tokens.
#[derive(Clone, Debug)]
pub struct SigningKey {
    /// Its identifier, in each token's header.
    pub kid: String,
    /// The HMAC secret, as stored (hex).
    pub secret: String,
    /// Unix milliseconds.
    pub created_at: i64,
}

impl Tx {
    /// Starts a session whose refresh token is `refresh_token`.
    pub async fn create_session(
        &mut self,
        principal: &PrincipalId,
        org: &OrgId,
        refresh_token: &str,
        expires_at: i64,
    ) -> Result<Session> {
        let session = Session { id: crate::new_id("ses"), principal: principal.clone(), org: org.clone(), expires_at };
        sqlx::query(
            "INSERT INTO sessions (id, principal_id, org_id, refresh_hash, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&session.id)
        .bind(&principal.0)
        .bind(&org.0)
        .bind(hash_token(refresh_token))
        .bind(now_millis())
        .bind(expires_at)
        .execute(&mut *self.tx)
        .await?;
        Ok(session)
    }

    /// The live session with this identifier (not ended, refresh not expired).
    pub async fn live_session(&mut self, id: &str) -> Result<Option<Session>> {
        let row = sqlx::query(
            "SELECT id, principal_id, org_id, expires_at FROM sessions WHERE id = $1 AND ended_at IS NULL AND expires_at > $2",
        )
        .bind(id)
        .bind(now_millis())
        .fetch_optional(&mut *self.tx)
        .await?;
        row.map(|row| {
            Ok(Session {
                id: row.try_get("id")?,
                principal: PrincipalId(row.try_get("principal_id")?),
                org: OrgId(row.try_get("org_id")?),
                expires_at: row.try_get("expires_at")?,
            })
        })
        .transpose()
    }

    /// Swaps a live session's refresh token for `next`; a refresh token that was swapped already ends its
    /// session (the caller commits that too), unless it was swapped within `reuse_grace` milliseconds: that is
    /// taken for the same owner's second client refreshing at the same moment (two CLI commands at once, two
    /// tabs of one session), and only refused.
    pub async fn refresh_session(&mut self, presented: &str, next: &str, reuse_grace: i64) -> Result<Refreshed> {
        let presented = hash_token(presented);
        let now = now_millis();
        let current: Option<(String, i64)> = sqlx::query_as(
            "SELECT id, expires_at FROM sessions WHERE refresh_hash = $1 AND ended_at IS NULL AND expires_at > $2",
        )
        .bind(&presented)
        .bind(now)
        .fetch_optional(&mut *self.tx)
        .await?;
        let Some((id, expires_at)) = current else {
            let used: Option<(String, i64)> =
                sqlx::query_as("SELECT session_id, used_at FROM used_refresh_tokens WHERE refresh_hash = $1")
                    .bind(&presented)
                    .fetch_optional(&mut *self.tx)
                    .await?;
            return Ok(match used {
                Some((session, used_at)) if now - used_at >= reuse_grace => {
                    self.end_session(&session).await?;
                    Refreshed::Reused { session }
                }
                Some(_) | None => Refreshed::Unknown,
            });
        };
        sqlx::query("UPDATE sessions SET refresh_hash = $2 WHERE id = $1")
            .bind(&id)
            .bind(hash_token(next))
            .execute(&mut *self.tx)
            .await?;
        sqlx::query("DELETE FROM used_refresh_tokens WHERE expires_at < $1").bind(now).execute(&mut *self.tx).await?;
        sqlx::query(
            "INSERT INTO used_refresh_tokens (refresh_hash, session_id, used_at, expires_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(&presented)
        .bind(&id)
        .bind(now)
        .bind(expires_at)
        .execute(&mut *self.tx)
        .await?;
        Ok(self.live_session(&id).await?.map_or(Refreshed::Unknown, Refreshed::Renewed))
    }

    /// Ends a session: its refresh token and access tokens stop working.
    pub async fn end_session(&mut self, id: &str) -> Result<()> {
        sqlx::query("UPDATE sessions SET ended_at = $2 WHERE id = $1 AND ended_at IS NULL")
            .bind(id)
            .bind(now_millis())
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    /// Every stored signing key, newest first (the one signing and those whose tokens may still be valid).
    pub async fn signing_keys(&mut self) -> Result<Vec<SigningKey>> {
        let rows = sqlx::query("SELECT kid, secret, created_at FROM signing_keys ORDER BY created_at DESC, kid")
            .fetch_all(&mut *self.tx)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(SigningKey {
                    kid: row.try_get("kid")?,
                    secret: row.try_get("secret")?,
                    created_at: row.try_get("created_at")?,
                })
            })
            .collect()
    }

    /// Stores a new signing key.
    pub async fn add_signing_key(&mut self, key: &SigningKey) -> Result<()> {
        sqlx::query("INSERT INTO signing_keys (kid, secret, created_at) VALUES ($1, $2, $3)")
            .bind(&key.kid)
            .bind(&key.secret)
            .bind(key.created_at)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    /// Forgets a signing key no valid token names any more.
    pub async fn delete_signing_key(&mut self, kid: &str) -> Result<()> {
        sqlx::query("DELETE FROM signing_keys WHERE kid = $1").bind(kid).execute(&mut *self.tx).await?;
        Ok(())
    }
}

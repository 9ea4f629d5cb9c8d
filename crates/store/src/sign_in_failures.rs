//! Failed sign-ins, counted per subject (an email, a source address) in windows, in the control-plane database
//! so that every control-API replica sees the same counts. Subjects are stored hashed.

use sqlx::Row;

use crate::{hash_token, Result, Tx};

/// A subject's failed sign-ins in its current window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SignInFailures {
    /// How many.
    pub failures: u32,
    /// When the first of them was (Unix milliseconds): the window runs from there.
    pub first_at: i64,
}

impl Tx {
    /// `subject`'s failed sign-ins in a window begun at or after `window_start` (Unix milliseconds); none when
    /// it has none, or its window began earlier (and so has ended).
    pub async fn sign_in_failures(&mut self, subject: &str, window_start: i64) -> Result<Option<SignInFailures>> {
        let row = sqlx::query("SELECT failures, first_at FROM sign_in_failures WHERE subject = $1 AND first_at >= $2")
            .bind(hash_token(subject))
            .bind(window_start)
            .fetch_optional(&mut *self.tx)
            .await?;
        row.map(|row| {
            let failures: i64 = row.try_get("failures")?;
            Ok(SignInFailures {
                failures: u32::try_from(failures).unwrap_or(u32::MAX),
                first_at: row.try_get("first_at")?,
            })
        })
        .transpose()
    }

    /// Counts a failed sign-in of `subject` at `now`; a count whose window began before `window_start` starts
    /// again from this one.
    pub async fn count_sign_in_failure(&mut self, subject: &str, now: i64, window_start: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO sign_in_failures (subject, failures, first_at) VALUES ($1, 1, $2) \
             ON CONFLICT (subject) DO UPDATE SET \
             failures = CASE WHEN sign_in_failures.first_at < $3 THEN 1 ELSE sign_in_failures.failures + 1 END, \
             first_at = CASE WHEN sign_in_failures.first_at < $3 THEN $2 ELSE sign_in_failures.first_at END",
        )
        .bind(hash_token(subject))
        .bind(now)
        .bind(window_start)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// Forgets `subject`'s failed sign-ins (after a success).
    pub async fn clear_sign_in_failures(&mut self, subject: &str) -> Result<()> {
        sqlx::query("DELETE FROM sign_in_failures WHERE subject = $1")
            .bind(hash_token(subject))
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    /// Removes the counts whose window began before `window_start`: how many.
    pub async fn expire_sign_in_failures(&mut self, window_start: i64) -> Result<u64> {
        let done = sqlx::query("DELETE FROM sign_in_failures WHERE first_at < $1")
            .bind(window_start)
            .execute(&mut *self.tx)
            .await?;
        Ok(done.rows_affected())
    }
}

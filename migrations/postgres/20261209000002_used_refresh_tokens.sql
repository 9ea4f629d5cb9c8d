-- Refresh tokens already swapped for new ones, kept while their session could still be refreshed: one presented
-- again has been copied (by a thief, or by its owner after a thief used it first), so the session it belonged to
-- ends (reuse detection, as OAuth's security practice asks for rotated refresh tokens) — unless it comes within
-- seconds of its swap, which is the same owner's second client refreshing at once (it is refused, nothing ends).
-- Rows past their session's expiry are removed by the next refresh.
CREATE TABLE used_refresh_tokens (
    refresh_hash TEXT PRIMARY KEY,
    session_id   TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    used_at      BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL
);
CREATE INDEX used_refresh_tokens_expiry ON used_refresh_tokens (expires_at);

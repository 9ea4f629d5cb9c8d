-- Single sign-on logins under way: the state handed to the identity provider, with the nonce and PKCE verifier
-- the callback checks, and where a command-line client waits for the result. Used once, and removed after ten
-- minutes when not used.
CREATE TABLE oidc_logins (
    state         TEXT PRIMARY KEY,
    nonce         TEXT NOT NULL,
    code_verifier TEXT NOT NULL,
    organization  TEXT,
    return_to     TEXT,
    created_at    BIGINT NOT NULL
);
CREATE INDEX oidc_logins_expiry ON oidc_logins (created_at);

-- Control-plane tables. Timestamps are Unix milliseconds so the same queries run on SQLite and PostgreSQL.
CREATE TABLE projects (
    id              TEXT PRIMARY KEY,
    name            TEXT NOT NULL UNIQUE,
    managed_kvstore BIGINT NOT NULL, -- 0 or 1: sqlx's Any driver has no SQLite boolean
    managed_pubsub  BIGINT NOT NULL,
    created_at      BIGINT NOT NULL
);

CREATE TABLE app_ids (
    project_id            TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    name                  TEXT NOT NULL,
    app_endpoint          TEXT,
    -- Sent to the app as dapr-api-token on callbacks, so it is kept retrievable (never returned by the API).
    app_token             TEXT,
    app_protocol          TEXT NOT NULL,
    app_health_check_path TEXT,
    config                TEXT,
    created_at            BIGINT NOT NULL,
    updated_at            BIGINT NOT NULL,
    PRIMARY KEY (project_id, name)
);

CREATE TABLE api_tokens (
    id         TEXT PRIMARY KEY,
    project_id TEXT NOT NULL,
    app_name   TEXT NOT NULL,
    -- SHA-256 of the token; the token itself is shown once and never stored.
    token_hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT,
    FOREIGN KEY (project_id, app_name) REFERENCES app_ids (project_id, name) ON DELETE CASCADE
);

CREATE INDEX api_tokens_by_app ON api_tokens (project_id, app_name);

-- Dapr documents (Component, Subscription, Resiliency, Configuration, HTTPEndpoint), normalised JSON.
CREATE TABLE resources (
    project_id TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    kind       TEXT NOT NULL,
    name       TEXT NOT NULL,
    document   TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (project_id, kind, name)
);

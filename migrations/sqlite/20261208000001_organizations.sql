-- Organizations own projects; people and service accounts hold roles in them (issue 17). Existing projects move
-- into the organization `default`, where the operator token works when no organization is named.
CREATE TABLE organizations (
    id                        TEXT PRIMARY KEY,
    name                      TEXT NOT NULL UNIQUE,
    created_at                BIGINT NOT NULL,
    quota_projects            BIGINT,
    quota_app_ids             BIGINT,
    quota_requests_per_second BIGINT
);
INSERT INTO organizations (id, name, created_at) VALUES ('org_default', 'default', 0);

-- Project names become unique within their organization. SQLite cannot drop a column's UNIQUE, so the table is
-- rebuilt; the store runs migrations on a connection with foreign keys off, so dropping the old table does not
-- cascade into the tables that reference it.
CREATE TABLE projects_by_org (
    id                        TEXT PRIMARY KEY,
    org_id                    TEXT NOT NULL REFERENCES organizations (id),
    name                      TEXT NOT NULL,
    managed_kvstore           BIGINT NOT NULL,
    managed_pubsub            BIGINT NOT NULL,
    created_at                BIGINT NOT NULL,
    pool                      TEXT NOT NULL DEFAULT 'default',
    changed_at                BIGINT NOT NULL DEFAULT 0,
    quota_requests_per_second BIGINT,
    quota_app_ids             BIGINT,
    quota_components          BIGINT,
    quota_stored_bytes        BIGINT,
    UNIQUE (org_id, name)
);
INSERT INTO projects_by_org (id, org_id, name, managed_kvstore, managed_pubsub, created_at, pool, changed_at,
                             quota_requests_per_second, quota_app_ids, quota_components, quota_stored_bytes)
    SELECT id, 'org_default', name, managed_kvstore, managed_pubsub, created_at, pool, changed_at,
           quota_requests_per_second, quota_app_ids, quota_components, quota_stored_bytes
    FROM projects;
DROP TABLE projects;
ALTER TABLE projects_by_org RENAME TO projects;
CREATE INDEX projects_by_change ON projects (changed_at);

-- A user (email, argon2 password hash or none for single sign-on) belongs to no organization by itself; a
-- service account belongs to one (`org_id`) and has a name unique there.
CREATE TABLE principals (
    id            TEXT PRIMARY KEY,
    kind          TEXT NOT NULL,
    email         TEXT UNIQUE,
    name          TEXT NOT NULL,
    org_id        TEXT REFERENCES organizations (id) ON DELETE CASCADE,
    password_hash TEXT,
    created_at    BIGINT NOT NULL,
    UNIQUE (org_id, name)
);

-- A role granted on an organization (`project_id` empty) or on one of its projects.
CREATE TABLE memberships (
    org_id       TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    principal_id TEXT NOT NULL REFERENCES principals (id) ON DELETE CASCADE,
    project_id   TEXT NOT NULL DEFAULT '',
    role         TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (org_id, principal_id, project_id)
);
CREATE INDEX memberships_by_principal ON memberships (principal_id);
CREATE INDEX memberships_by_project ON memberships (project_id);

-- API keys act as their owner within one organization. Only the SHA-256 of a key is kept.
CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    org_id       TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    principal_id TEXT NOT NULL REFERENCES principals (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    key_hash     TEXT NOT NULL UNIQUE,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT,
    revoked_at   BIGINT
);
CREATE INDEX api_keys_by_org ON api_keys (org_id, id);

-- A signed-in session: its refresh token (as a SHA-256) and whether it ended. Access tokens name the session,
-- so ending it refuses them at once.
CREATE TABLE sessions (
    id           TEXT PRIMARY KEY,
    principal_id TEXT NOT NULL REFERENCES principals (id) ON DELETE CASCADE,
    org_id       TEXT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    refresh_hash TEXT NOT NULL UNIQUE,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    ended_at     BIGINT
);
CREATE INDEX sessions_by_principal ON sessions (principal_id);

-- Keys that sign access tokens; a new one is made once the newest is older than the rotation interval, and the
-- older ones keep verifying until the tokens they signed have expired.
CREATE TABLE signing_keys (
    kid        TEXT PRIMARY KEY,
    secret     TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- Every control-plane change: who, what, when, from where, and the resource before and after (secrets
-- withheld), kept per organization.
CREATE TABLE audit_events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id      TEXT NOT NULL,
    at          BIGINT NOT NULL,
    actor_kind  TEXT NOT NULL,
    actor_id    TEXT,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    project     TEXT,
    target      TEXT NOT NULL,
    status      BIGINT NOT NULL,
    before_doc  TEXT,
    after_doc   TEXT,
    source_addr TEXT
);
CREATE INDEX audit_events_by_time ON audit_events (org_id, at, id);
CREATE INDEX audit_events_expiry ON audit_events (at);

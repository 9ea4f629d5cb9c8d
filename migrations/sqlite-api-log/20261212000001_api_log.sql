-- The API log's own database (embedded form): the same two tables the control plane's database held before
-- (migrations/sqlite/20261205000001_api_calls.sql, 20261210000001_api_call_blocks.sql), and which
-- `Store::migrate` moves here from a database made before (crates/store/src/api_log_db.rs). A block's calls are
-- encoded together (see 20261210000001_api_call_blocks.sql); the per-minute counts are behind charts and usage.

CREATE TABLE api_call_blocks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id TEXT NOT NULL,
    first_at BIGINT NOT NULL,
    last_at BIGINT NOT NULL,
    calls BIGINT NOT NULL,
    app_ids TEXT NOT NULL,
    apis TEXT NOT NULL,
    statuses BIGINT NOT NULL,
    directions BIGINT NOT NULL,
    body BLOB NOT NULL
);
CREATE INDEX api_call_blocks_by_time ON api_call_blocks (project_id, last_at, id);
CREATE INDEX api_call_blocks_expiry ON api_call_blocks (first_at);

CREATE TABLE api_call_minutes (
    project_id TEXT NOT NULL,
    minute BIGINT NOT NULL,
    app_id TEXT NOT NULL,
    api TEXT NOT NULL,
    requests BIGINT NOT NULL,
    errors BIGINT NOT NULL,
    latency_us_sum BIGINT NOT NULL,
    le_250 BIGINT NOT NULL,
    le_500 BIGINT NOT NULL,
    le_1000 BIGINT NOT NULL,
    le_2500 BIGINT NOT NULL,
    le_5000 BIGINT NOT NULL,
    le_10000 BIGINT NOT NULL,
    le_25000 BIGINT NOT NULL,
    le_50000 BIGINT NOT NULL,
    le_100000 BIGINT NOT NULL,
    le_250000 BIGINT NOT NULL,
    le_1000000 BIGINT NOT NULL,
    le_inf BIGINT NOT NULL,
    PRIMARY KEY (project_id, minute, app_id, api)
);
CREATE INDEX api_call_minutes_expiry ON api_call_minutes (minute);

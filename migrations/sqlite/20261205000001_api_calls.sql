-- The API log: one row per Dapr call made by an App ID (time in Unix milliseconds, latency in microseconds).
-- `status` is the HTTP status, or for gRPC calls the HTTP status daprd pairs with `grpc_code`, so one filter
-- finds failures of both. Rows are written in batches off the request path and kept for a bounded time and
-- number per project; `(project_id, at, id)` pages a project's log newest first, `at` finds expired rows.
CREATE TABLE api_calls (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id TEXT NOT NULL,
    at BIGINT NOT NULL,
    app_id TEXT NOT NULL,
    target TEXT,
    api TEXT NOT NULL,
    protocol TEXT NOT NULL,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    component TEXT,
    status BIGINT NOT NULL,
    grpc_code BIGINT,
    latency_us BIGINT NOT NULL,
    trace_id TEXT,
    span_id TEXT,
    user_agent TEXT,
    caller_addr TEXT
);
CREATE INDEX api_calls_by_time ON api_calls (project_id, at, id);
CREATE INDEX api_calls_expiry ON api_calls (at);

-- The same calls counted per minute, App ID and API, for charts and usage: they outlive the log's rows.
-- `le_*` count calls whose latency was at most that many microseconds (and above the column before it).
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


-- The API log in blocks: one row per project per batch a process wrote, its calls encoded together in `body`
-- (MessagePack, newest first), beside what the block holds so that a listing skips blocks without decoding
-- them: the span of its calls' times (Unix milliseconds), how many, the App IDs and APIs among them (each name
-- between bars: `|cart|checkout|`), a bit per status class (1xx is bit 1 ... 5xx bit 5) and per direction
-- (from an App ID 1, to one 2). `(project_id, last_at, id)` pages a project's log newest first; `first_at`
-- finds expired blocks and those an expiry falls in.
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

-- The row-per-call log goes, with what it held (at most the retention, three days by default): its rows cannot
-- be encoded in SQL. The per-minute counts behind charts and usage stay.
DROP TABLE api_calls;

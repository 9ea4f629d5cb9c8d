-- Jobs apps scheduled through Dapr's jobs API, one row per (project, App ID, name) until its last occurrence.
-- `spec` is the job as scheduled (JSON); `due_at` is when it is next tried (an occurrence or a retry of one);
-- `occurrence_due` when the occurrence being tried fell due; a worker firing it holds it until `lease_until`
-- under `lease_owner`, so any number of workers fire each occurrence once, and a worker that dies mid-fire
-- leaves it to be fired again once its lease runs out.
CREATE TABLE jobs (
    project_id TEXT NOT NULL,
    app_id TEXT NOT NULL,
    name TEXT NOT NULL,
    spec TEXT NOT NULL,
    due_at BIGINT NOT NULL,
    occurrence_due BIGINT NOT NULL,
    fired BIGINT NOT NULL,
    tries BIGINT NOT NULL,
    failures BIGINT NOT NULL,
    lease_owner TEXT,
    lease_until BIGINT,
    last_fired_at BIGINT,
    last_outcome TEXT,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (project_id, app_id, name)
);
CREATE INDEX jobs_due ON jobs (due_at);

-- Workflow instances, their committed history, their inbox of events not yet seen by the workflow, and
-- activities waiting for a worker. Events are protobuf HistoryEvents, base64-encoded.
CREATE TABLE wf_instances (
    project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    instance_id TEXT NOT NULL,
    app_id TEXT NOT NULL,
    name TEXT NOT NULL,
    status BIGINT NOT NULL,
    input TEXT,
    output TEXT,
    custom_status TEXT,
    failure TEXT,
    execution_id TEXT NOT NULL,
    parent_instance_id TEXT,
    parent_task_id BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    completed_at BIGINT,
    lease_owner TEXT,
    lease_until BIGINT NOT NULL DEFAULT 0,
    turn_token TEXT,
    turn_started_at BIGINT NOT NULL DEFAULT 0,
    turn_inbox_upto BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (project_id, instance_id)
);
CREATE INDEX wf_instances_app ON wf_instances (project_id, app_id, lease_until);

CREATE TABLE wf_history (
    project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    instance_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    event TEXT NOT NULL,
    PRIMARY KEY (project_id, instance_id, seq)
);

CREATE TABLE wf_inbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    instance_id TEXT NOT NULL,
    event TEXT NOT NULL,
    visible_at BIGINT NOT NULL
);
CREATE INDEX wf_inbox_instance ON wf_inbox (project_id, instance_id, visible_at);

CREATE TABLE wf_activities (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,
    app_id TEXT NOT NULL,
    instance_id TEXT NOT NULL,
    request TEXT NOT NULL,
    lease_owner TEXT,
    lease_until BIGINT NOT NULL DEFAULT 0,
    token TEXT,
    created_at BIGINT NOT NULL
);
CREATE INDEX wf_activities_app ON wf_activities (project_id, app_id, lease_until);

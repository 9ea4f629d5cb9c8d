-- Items of each project's managed configuration store (`configstore`), which operators set through the control
-- API and apps read with Dapr's configuration API. `version` counts the writes of a key; `metadata` is a JSON
-- object of strings.
CREATE TABLE configuration_items (
    project_id TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    version BIGINT NOT NULL,
    metadata TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (project_id, key)
);

-- Extended metadata an app attached to itself (PUT /v1.0/metadata/{key}, gRPC SetMetadata), shown in its
-- /v1.0/metadata by whichever gateway answers. daprd keeps it in the sidecar's memory; an App ID here is served
-- by any gateway, so it is kept with the App ID and goes when the App ID does.
CREATE TABLE app_metadata (
    project_id TEXT NOT NULL,
    app_id TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (project_id, app_id, key)
);

-- Listings of a project's workflow instances, newest first.
CREATE INDEX wf_instances_created ON wf_instances (project_id, created_at, instance_id);

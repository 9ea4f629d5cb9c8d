-- The length of each instance's committed history: the next position to append at, and how a process
-- knows that the history it remembers is still the whole of it.
ALTER TABLE wf_instances ADD COLUMN history_len BIGINT NOT NULL DEFAULT 0;
UPDATE wf_instances SET history_len = (
    SELECT COUNT(*) FROM wf_history h
    WHERE h.project_id = wf_instances.project_id AND h.instance_id = wf_instances.instance_id
);
-- Claims start from the due inbox rows and look instances up by key. An index holding the lease made
-- every lease change rewrite it (and led the planner to walk every finished instance of an App ID).
DROP INDEX wf_instances_app;
-- Renewing and releasing a stream's activities; activity results name their activity by token.
CREATE INDEX wf_activities_lease_owner ON wf_activities (lease_owner);
CREATE INDEX wf_activities_token ON wf_activities (token);

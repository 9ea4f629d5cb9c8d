-- A turn is given exactly the inbox rows marked with its token (ids do not follow commit order on
-- PostgreSQL, so "every id up to the largest seen" could commit an event the workflow never saw).
ALTER TABLE wf_inbox ADD COLUMN turn_token TEXT;
ALTER TABLE wf_instances DROP COLUMN turn_inbox_upto;
-- Workers without completion tokens (the JS SDK's) name an activity by its instance and task id.
ALTER TABLE wf_activities ADD COLUMN task_id BIGINT;
CREATE INDEX wf_activities_task ON wf_activities (project_id, instance_id, task_id);

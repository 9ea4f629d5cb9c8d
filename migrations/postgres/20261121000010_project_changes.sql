-- When a project's App IDs or resources last changed (Unix milliseconds), so that a worker's safety net asks
-- only for projects changed since its last look instead of re-reading every project.
ALTER TABLE projects ADD COLUMN changed_at BIGINT NOT NULL DEFAULT 0;
CREATE INDEX projects_by_change ON projects (changed_at);

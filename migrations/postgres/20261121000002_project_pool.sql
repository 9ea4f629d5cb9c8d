-- The worker pool that serves a project's calls (a queue group on the bus).
ALTER TABLE projects ADD COLUMN pool TEXT NOT NULL DEFAULT 'default';

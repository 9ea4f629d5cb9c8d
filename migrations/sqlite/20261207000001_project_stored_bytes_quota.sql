-- The bytes a project may keep in its managed kvstore; NULL means the installation's default
-- (OUTRIGGER_QUOTA_STORED_BYTES), 0 means no limit.
ALTER TABLE projects ADD COLUMN quota_stored_bytes BIGINT;

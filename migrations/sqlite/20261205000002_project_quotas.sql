-- Quotas an operator set on a project; NULL means the installation's default (OUTRIGGER_RATE_LIMIT_PER_SECOND,
-- OUTRIGGER_QUOTA_APP_IDS, OUTRIGGER_QUOTA_COMPONENTS), 0 means no limit.
ALTER TABLE projects ADD COLUMN quota_requests_per_second BIGINT;
ALTER TABLE projects ADD COLUMN quota_app_ids BIGINT;
ALTER TABLE projects ADD COLUMN quota_components BIGINT;

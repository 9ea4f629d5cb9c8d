-- The token listing pages by (created_at, id) within one App ID: with the key in the index a page is a range
-- scan of the page's rows, not a sort of every token the App ID has. The old index is this one's prefix.
DROP INDEX api_tokens_by_app;
CREATE INDEX api_tokens_by_app ON api_tokens (project_id, app_name, created_at, id);

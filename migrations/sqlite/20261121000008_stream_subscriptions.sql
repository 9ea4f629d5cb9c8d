-- Streaming subscriptions open on some gateway, so that /v1.0/metadata lists them whichever gateway the app's
-- metadata call reaches. The holding gateway renews expires_at (Unix ms) while it runs; a row whose gateway
-- died runs out.
CREATE TABLE stream_subscriptions (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL,
    app_id TEXT NOT NULL,
    pubsub TEXT NOT NULL,
    topic TEXT NOT NULL,
    dead_letter_topic TEXT,
    holder TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX stream_subscriptions_app ON stream_subscriptions (project_id, app_id);
CREATE INDEX stream_subscriptions_holder ON stream_subscriptions (holder);

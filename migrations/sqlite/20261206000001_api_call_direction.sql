-- Which way a logged call went: `from_app` (an App ID called a Dapr API, as every row so far) or `to_app` (the
-- platform called the App ID: a pub/sub delivery, a job trigger, an input binding's event).
ALTER TABLE api_calls ADD COLUMN direction TEXT NOT NULL DEFAULT 'from_app';

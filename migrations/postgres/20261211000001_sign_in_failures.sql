-- Failed sign-ins counted per email and per source address, shared by every control-API replica (each
-- counting its own let an attacker try as many times more as there are replicas). `subject` is the SHA-256 of
-- `email:<email>` or `addr:<address>`: what was typed into the email field is not kept. A count begun more
-- than a window ago starts again at the next failure; rows of ended windows are removed after a failure, at
-- most once per window per process, so the table holds about one window of failures.
CREATE TABLE sign_in_failures (
    subject  TEXT PRIMARY KEY,
    failures INTEGER NOT NULL,
    first_at BIGINT NOT NULL
);
CREATE INDEX sign_in_failures_first_at ON sign_in_failures (first_at);

//! The `outrigger` client subcommands against a real all-in-one server, plus the server's
//! process lifecycle that the client relies on (readiness, SIGTERM, restarts, first-start token).

mod harness;

mod activity;
mod appids;
mod config;
mod deploy;
mod distributed;
mod failures;
mod helm;
mod invoke;
mod jobs;
mod lifecycle;
mod manifests;
mod people;
mod projects;
mod security;
mod security_boundary;
mod tls;
mod workflows;

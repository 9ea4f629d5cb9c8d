//! The control API, in process, on SQLite and on PostgreSQL (every test body runs on both).

mod harness;

mod activity;
mod appids;
mod apply;
mod audit;
mod configuration_items;
mod console;
mod explorers;
mod fixtures;
mod isolation;
mod jobs;
mod oidc;
mod openapi;
mod orgs;
mod people;
mod projects;
mod quotas;
mod resources;
mod roles;
mod security;
mod security_input;
mod sessions;
mod tokens_at_rest;
mod workflows;

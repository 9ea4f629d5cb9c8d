//! Integration tests of the `workers` crate. State stores run against real backends: PostgreSQL on
//! 127.0.0.1:5432 (or `TEST_POSTGRES_URL`) and Redis on 127.0.0.1:6379 (or `TEST_REDIS_URL`), as
//! `scripts/test` starts them.

/// Instantiates every case for every backend: `mod <backend> { #[tokio::test] async fn <case>() }`, each
/// test running `super::<case>` against `backends::<backend>::open()`.
macro_rules! cases_for_backends {
    (backends: [$($backend:ident),+ $(,)?], cases: $cases:tt $(,)?) => {
        $(
            mod $backend {
                cases_for_backends!(@cases $backend $cases);
            }
        )+
    };
    (@cases $backend:ident [$($case:ident),+ $(,)?]) => {
        $(
            #[tokio::test]
            async fn $case() {
                crate::backends::run(crate::backends::$backend::open(), super::$case).await;
            }
        )+
    };
}

mod backends;
mod broker_bindings;
mod busy_pool;
mod configuration_stores;
mod conformance;
mod explorer;
mod lock_conformance;
mod opening;
mod outage;
mod proxy;
mod pubsub_backends;
mod pubsub_conformance;
mod pubsub_opening;
mod pubsub_outage;
mod pubsub_sql;
mod query_api;
mod query_language;
mod query_paging;
mod redis_store;
mod registry;
mod security_boundary;
mod security_query;
mod sql_bindings;
mod sql_tables;

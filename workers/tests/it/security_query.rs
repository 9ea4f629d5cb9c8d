//! Security group (issue 14): one tenant's state query must not take the worker with it. A query used to
//! answer every matching item at once (211 MB for `{}` over 201 MiB of state); now every answer is one page of
//! at most the maximum page size, and its token continues exactly where the page stopped. Run through the
//! worker's call handler over the managed kvstore on each backend that can hold it (SQLite, PostgreSQL,
//! Redis), with a second project and a second App ID writing the same keys beside it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use outrigger_bus::{
    Concurrency, DataCall, DataError, Envelope, ExecuteTransaction, Handler, Metadata, QueryState, SaveItem, Tenant,
    TransactionOperation,
};
use outrigger_store::{NewProject, Store};
use outrigger_workers::state::{self, StateStore};
use outrigger_workers::{Limits, ManagedStores, Runtime, Worker};
use serde_json::{json, Value};
use tempfile::TempDir;

use crate::backends::{self, delete_redis_keys, drop_table, fresh_table_name, metadata, postgres_url, redis_url};

/// The largest page the worker answers (`page.limit` above it is cut to it).
const MAX_PAGE: usize = 1000;
/// The page answered when the query names no limit.
const DEFAULT_PAGE: usize = 100;
/// Items the app under test stores: more than two maximum pages.
const ITEMS: usize = 2 * MAX_PAGE + 345;
/// Items stored beside them by another project and by another App ID of the same project.
const NEIGHBOUR_ITEMS: usize = 60;

/// A worker over a fresh control plane whose managed kvstore is `kvstore`, with two projects.
struct Subject {
    worker: Worker,
    /// Whether unsorted pages come in key order (SQL stores) or in the store's own scan order (Redis).
    key_order: bool,
    alpha: Tenant,
    beta: Tenant,
    alpha_billing: Tenant,
    _dir: TempDir,
}

impl Subject {
    async fn start(kvstore: Arc<dyn StateStore>, key_order: bool) -> Subject {
        let dir = tempfile::tempdir().unwrap();
        let store =
            Store::connect(&format!("sqlite://{}?mode=rwc", dir.path().join("control.db").display())).await.unwrap();
        store.migrate().await.unwrap();
        let pubsub = outrigger_workers::pubsub::open("pubsub.in-memory", &BTreeMap::new()).await.unwrap();
        let runtime = Runtime::new(
            store.clone(),
            ManagedStores::new(kvstore, pubsub),
            Duration::from_secs(60),
            dir.path().join("projects"),
        );
        let limits = Limits { store_timeout: Duration::from_secs(30), ..Limits::default() };
        let worker = Worker::new(runtime, limits);
        let alpha = project(&store, "alpha").await;
        let beta = project(&store, "beta").await;
        let alpha_billing =
            Tenant::new(alpha.project_id.clone(), alpha.project.clone(), "billing".into(), alpha.pool.clone());
        Subject { worker, key_order, alpha, beta, alpha_billing, _dir: dir }
    }

    async fn call<C: DataCall>(&self, tenant: &Tenant, call: C) -> Result<C::Reply, DataError> {
        let reply = self.worker.handle(Envelope { tenant: tenant.clone(), call: call.into(), trace: None }).await?;
        Ok(C::reply_of(reply).unwrap_or_else(|other| panic!("a reply to {} instead", other.answers())))
    }

    /// Stores `count` items `k00000...` whose values name `owner`, in transactions of 500.
    async fn seed(&self, tenant: &Tenant, owner: &str, count: usize) {
        let items: Vec<usize> = (0..count).collect();
        for chunk in items.chunks(500) {
            let operations = chunk
                .iter()
                .map(|i| {
                    let value = json!({"owner": owner, "n": i, "parity": if i % 2 == 0 { "even" } else { "odd" }});
                    TransactionOperation::Upsert(SaveItem {
                        key: key(*i),
                        value: value.to_string().into_bytes(),
                        etag: None,
                        metadata: Metadata::new(),
                        concurrency: Concurrency::LastWrite,
                    })
                })
                .collect();
            let call = ExecuteTransaction { store: "kvstore".into(), operations };
            self.call(tenant, call).await.expect("seed");
        }
    }

    async fn query(&self, tenant: &Tenant, query: Value) -> Result<(Vec<(String, Value)>, Option<String>), DataError> {
        let page = self.call(tenant, QueryState { store: "kvstore".into(), query: query.to_string() }).await?;
        let results =
            page.results.into_iter().map(|item| (item.key, serde_json::from_slice(&item.data).expect("JSON data")));
        Ok((results.collect(), page.token.filter(|token| !token.is_empty())))
    }

    /// Follows tokens from the first page of `query` to the last; answers every page.
    async fn all_pages(&self, tenant: &Tenant, query: Value) -> Vec<Vec<(String, Value)>> {
        let mut pages = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut paged = query.clone();
            if let Some(token) = &token {
                paged["page"]["token"] = Value::String(token.clone());
            }
            let (results, next) = self.query(tenant, paged).await.expect("query");
            assert!(results.len() <= MAX_PAGE, "a page of {} results, more than the maximum {MAX_PAGE}", results.len());
            pages.push(results);
            match next {
                Some(next) => token = Some(next),
                None => return pages,
            }
            assert!(pages.len() <= ITEMS, "paging does not end");
        }
    }
}

async fn project(store: &Store, name: &str) -> Tenant {
    let mut tx = store.begin().await.unwrap();
    let created = tx
        .create_project(&NewProject {
            org_id: outrigger_store::OrgId::default_org(),
            name: name.into(),
            managed_kvstore: true,
            managed_pubsub: true,
            pool: outrigger_bus::DEFAULT_POOL.into(),
        })
        .await
        .unwrap();
    tx.commit().await.unwrap();
    Tenant::new(created.id, name.into(), "orders".into(), outrigger_bus::DEFAULT_POOL.into())
}

fn key(i: usize) -> String {
    format!("k{i:05}")
}

fn keys_of(pages: &[Vec<(String, Value)>]) -> Vec<String> {
    pages.iter().flatten().map(|(key, _)| key.clone()).collect()
}

/// Pages of more items than the largest page: each page at most the maximum, every item exactly once, and
/// nothing of the other project or the other App ID.
async fn security_query_pages_are_bounded_and_tokens_continue_exactly(s: Subject) {
    s.seed(&s.alpha, "alpha", ITEMS).await;
    s.seed(&s.beta, "beta", NEIGHBOUR_ITEMS).await;
    s.seed(&s.alpha_billing, "billing", NEIGHBOUR_ITEMS).await;

    // No limit: a default page, not everything.
    let (first, token) = s.query(&s.alpha, json!({})).await.expect("query");
    assert_eq!(first.len(), DEFAULT_PAGE, "a query without page.limit answers the default page");
    assert!(token.is_some(), "a page that stopped early carries a token");

    // A limit above the maximum is cut to it, and the tokens walk through every item once (in key order on
    // the SQL stores).
    let pages = s.all_pages(&s.alpha, json!({"page": {"limit": 5000}})).await;
    assert_eq!(pages[0].len(), MAX_PAGE);
    let expected: Vec<String> = (0..ITEMS).map(key).collect();
    let mut seen = keys_of(&pages);
    if !s.key_order {
        seen.sort();
    }
    assert_eq!(seen, expected, "every item exactly once");
    assert!(pages.iter().flatten().all(|(_, value)| value["owner"] == "alpha"), "only the caller's own items");

    // The same with a filter and a sort: the token continues after the last item of the page.
    let query = json!({"filter": {"EQ": {"parity": "odd"}}, "sort": [{"key": "n", "order": "DESC"}],
                       "page": {"limit": 700}});
    let pages = s.all_pages(&s.alpha, query).await;
    let expected: Vec<String> = (0..ITEMS).rev().filter(|i| i % 2 == 1).map(key).collect();
    assert!(pages.iter().all(|page| page.len() <= 700));
    assert_eq!(keys_of(&pages), expected, "sorted pages continue exactly where the previous stopped");

    // Filters pushed to the store stay within the caller's keys.
    let (results, _) = s.query(&s.alpha, json!({"filter": {"EQ": {"owner": "beta"}}})).await.expect("query");
    assert!(results.is_empty(), "another project's values: {results:?}");
    let (results, _) = s.query(&s.alpha, json!({"filter": {"EQ": {"owner": "billing"}}})).await.expect("query");
    assert!(results.is_empty(), "another App ID's values: {results:?}");
    let beta = s.all_pages(&s.beta, json!({"page": {"limit": 7}})).await;
    let beta_keys: BTreeSet<String> = keys_of(&beta).into_iter().collect();
    assert_eq!(beta_keys, (0..NEIGHBOUR_ITEMS).map(key).collect::<BTreeSet<_>>());
    assert!(beta.iter().flatten().all(|(_, value)| value["owner"] == "beta"));
}

/// A token the worker did not issue, or issued for another kind of query, is the caller's error.
async fn security_query_invalid_page_token_is_a_bad_request(s: Subject) {
    s.seed(&s.alpha, "alpha", 30).await;
    let (_, unsorted_token) = s.query(&s.alpha, json!({"page": {"limit": 10}})).await.expect("query");
    let unsorted_token = unsorted_token.expect("a token");
    let sorted = json!({"sort": [{"key": "n"}], "page": {"limit": 10}});
    let forged = ["not a token", "12", "eyJ2Ijo5OX0", &"A".repeat(10_000)];
    for token in forged.iter().map(|token| token.to_string()).chain([unsorted_token]) {
        let mut query = sorted.clone();
        query["page"]["token"] = Value::String(token.clone());
        match s.query(&s.alpha, query).await {
            Err(DataError::BadRequest { message, .. }) => {
                assert!(message.contains("page.token"), "{message}");
                assert!(message.len() < 1000, "the message does not echo a huge token: {} bytes", message.len());
            }
            other => panic!("token {token:.40}: {other:?}"),
        }
    }
}

/// Instantiates each case on each backend behind the managed kvstore.
macro_rules! on_every_backend {
    ($($case:ident),+ $(,)?) => {
        $(
            mod $case {
                #[tokio::test]
                async fn sqlite() {
                    super::run(super::Backend::Sqlite, super::$case).await;
                }
                #[tokio::test]
                async fn postgres() {
                    super::run(super::Backend::Postgres, super::$case).await;
                }
                #[tokio::test]
                async fn redis() {
                    super::run(super::Backend::Redis, super::$case).await;
                }
            }
        )+
    };
}

on_every_backend!(
    security_query_pages_are_bounded_and_tokens_continue_exactly,
    security_query_invalid_page_token_is_a_bad_request
);

enum Backend {
    Sqlite,
    Postgres,
    Redis,
}

async fn run<Case, Outcome>(backend: Backend, case: Case)
where
    Case: FnOnce(Subject) -> Outcome,
    Outcome: std::future::Future<Output = ()> + Send + 'static,
{
    let files = tempfile::tempdir().unwrap();
    let (kvstore, table) = match backend {
        Backend::Sqlite => {
            let path = files.path().join("kvstore.db");
            let entries = metadata(&[("connectionString", path.to_str().unwrap())]);
            (state::open("state.sqlite", &entries).await.expect("open state.sqlite"), None)
        }
        Backend::Postgres => {
            let table = fresh_table_name();
            let entries = metadata(&[("connectionString", &postgres_url()), ("tableName", &table)]);
            (state::open("state.postgresql", &entries).await.expect("open state.postgresql"), Some(table))
        }
        Backend::Redis => {
            (state::open("state.redis", &backends::redis_metadata()).await.expect("open state.redis"), None)
        }
    };
    let subject = Subject::start(kvstore, !matches!(backend, Backend::Redis)).await;
    let projects = [subject.alpha.project_id.clone(), subject.beta.project_id.clone()];
    let clean_up = async move {
        match (backend, table) {
            (Backend::Postgres, Some(table)) => drop_table(&postgres_url(), &table).await,
            (Backend::Redis, _) => {
                for project in projects {
                    delete_redis_keys(redis_url().as_str(), &format!("{project}/*")).await;
                }
            }
            _ => {}
        }
        drop(files);
    };
    backends::finally(case(subject), clean_up).await;
}

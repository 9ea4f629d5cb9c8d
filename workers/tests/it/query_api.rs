//! The query API as the worker runs it: `Query::run_on` over the store's scan of a prefix, keys stripped of
//! it. Stores with query support (SQLite, PostgreSQL, Redis) answer it; the in-memory store refuses.

use outrigger_workers::state::{PageLimits, Position, Query, QueryPage, ScanRequest, SetRequest, StateError};

use crate::backends::{put, Harness};

/// Dapr's "Query state" how-to data set, trimmed.
const EMPLOYEES: [(&str, &str); 7] = [
    ("1", r#"{"person": {"org": "Dev Ops", "id": 1036}, "city": "Seattle", "state": "WA"}"#),
    ("2", r#"{"person": {"org": "Hardware", "id": 1028}, "city": "Portland", "state": "OR"}"#),
    ("3", r#"{"person": {"org": "Finance", "id": 1071}, "city": "Sacramento", "state": "CA"}"#),
    ("4", r#"{"person": {"org": "Dev Ops", "id": 1042}, "city": "Spokane", "state": "WA"}"#),
    ("5", r#"{"person": {"org": "Hardware", "id": 1007}, "city": "Los Angeles", "state": "CA"}"#),
    ("6", r#"{"person": {"org": "Finance", "id": 1094}, "city": "San Francisco", "state": "CA"}"#),
    ("7", r#"{"person": {"org": "Dev Ops", "id": 1015}, "city": "San Francisco", "state": "CA"}"#),
];

/// Stores the employees under the test's prefix, and next to them items no query may return: one under
/// another prefix, one under the prefix whose value is not JSON, one that has already expired.
async fn seed(h: &Harness) {
    for (key, value) in EMPLOYEES {
        h.store.set(&put(&h.key(key), value)).await.expect("set");
    }
    let outside = format!("outside-{}", h.key("8"));
    h.store.set(&put(&outside, r#"{"state": "CA", "person": {"id": 1}}"#)).await.expect("set");
    h.store.set(&put(&h.key("not-json"), "CA")).await.expect("set");
    let expired = SetRequest { ttl_seconds: Some(0), ..put(&h.key("expired"), r#"{"state": "CA"}"#) };
    h.store.set(&expired).await.expect("set");
}

async fn run_query(h: &Harness, query: &str) -> QueryPage {
    let query = Query::parse(query).expect("a valid query");
    query.run_on(h.store.as_ref(), &h.prefix, &PageLimits::default()).await.expect("run")
}

/// The keys a query selects, sorted (Redis answers unsorted queries in its own scan order).
async fn keys_of(h: &Harness, query: &str) -> Vec<String> {
    let mut keys: Vec<String> = run_query(h, query).await.results.into_iter().map(|result| result.key).collect();
    keys.sort();
    keys
}

async fn query_filters_with_every_operator(h: Harness) {
    seed(&h).await;
    let cases = [
        (r#"{"filter": {"EQ": {"state": "CA"}}}"#, vec!["3", "5", "6", "7"]),
        (r#"{"filter": {"NEQ": {"state": "CA"}}}"#, vec!["1", "2", "4"]),
        (r#"{"filter": {"EQ": {"person.id": 1042}}}"#, vec!["4"]),
        (r#"{"filter": {"GT": {"person.id": 1042}}}"#, vec!["3", "6"]),
        (r#"{"filter": {"GTE": {"person.id": 1042}}}"#, vec!["3", "4", "6"]),
        (r#"{"filter": {"LT": {"person.id": 1015}}}"#, vec!["5"]),
        (r#"{"filter": {"LTE": {"person.id": 1015}}}"#, vec!["5", "7"]),
        (r#"{"filter": {"IN": {"person.org": ["Finance", "Hardware"]}}}"#, vec!["2", "3", "5", "6"]),
        (r#"{"filter": {"AND": [{"EQ": {"person.org": "Dev Ops"}}, {"EQ": {"state": "WA"}}]}}"#, vec!["1", "4"]),
        (r#"{"filter": {"OR": [{"EQ": {"city": "Seattle"}}, {"EQ": {"person.id": 1007}}]}}"#, vec!["1", "5"]),
        (
            r#"{"filter": {"AND": [{"EQ": {"state": "CA"}},
                                   {"OR": [{"EQ": {"person.org": "Finance"}}, {"EQ": {"city": "Los Angeles"}}]}]}}"#,
            vec!["3", "5", "6"],
        ),
    ];
    for (query, expected) in cases {
        assert_eq!(keys_of(&h, query).await, expected, "{query}");
    }
}

async fn query_returns_only_live_json_items_under_the_prefix(h: Harness) {
    seed(&h).await;
    assert_eq!(keys_of(&h, "{}").await, ["1", "2", "3", "4", "5", "6", "7"]);
    // Through the pre-filter the stores run themselves as well.
    assert_eq!(keys_of(&h, r#"{"filter": {"NEQ": {"state": "NY"}}}"#).await, ["1", "2", "3", "4", "5", "6", "7"]);
    let page = run_query(&h, r#"{"filter": {"EQ": {"person.id": 1036}}}"#).await;
    let item = h.store.get(&h.key("1")).await.expect("get").expect("item");
    assert_eq!(page.results.len(), 1);
    assert_eq!((&page.results[0].data, &page.results[0].etag), (&item.value, &item.etag));
    assert_eq!(page.token, None);
}

/// The keys in the order the query answers them.
async fn ordered_keys_of(h: &Harness, query: &str) -> Vec<String> {
    run_query(h, query).await.results.into_iter().map(|result| result.key).collect()
}

async fn query_sorts_on_nested_fields(h: Harness) {
    seed(&h).await;
    let descending = ordered_keys_of(&h, r#"{"sort": [{"key": "person.id", "order": "DESC"}]}"#).await;
    assert_eq!(descending, ["6", "3", "4", "1", "2", "7", "5"]);
    let ascending = ordered_keys_of(&h, r#"{"filter": {"EQ": {"state": "CA"}}, "sort": [{"key": "person.id"}]}"#).await;
    assert_eq!(ascending, ["5", "7", "3", "6"]);
    let by_org_then_city =
        ordered_keys_of(&h, r#"{"sort": [{"key": "person.org", "order": "ASC"}, {"key": "city", "order": "DESC"}]}"#)
            .await;
    assert_eq!(by_org_then_city, ["4", "1", "7", "6", "3", "2", "5"]);
}

async fn query_pages_until_exhausted(h: Harness) {
    seed(&h).await;
    let mut pages = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let token_part = token.as_ref().map(|token| format!(r#", "token": "{token}""#)).unwrap_or_default();
        let query = format!(r#"{{"sort": [{{"key": "person.id"}}], "page": {{"limit": 3{token_part}}}}}"#);
        let page = run_query(&h, &query).await;
        pages.push(page.results.into_iter().map(|result| result.key).collect::<Vec<_>>());
        token = page.token;
        if token.is_none() {
            break;
        }
        assert!(pages.len() < 10, "paging does not end");
    }
    assert_eq!(pages, [vec!["5", "7", "2"], vec!["1", "4", "3"], vec!["6"]]);
}

async fn query_matches_the_prefix_literally(h: Harness) {
    let prefix = h.key("a%_b*?[x]\\||");
    h.store.set(&put(&format!("{prefix}x"), "{}")).await.expect("set");
    // What LIKE or a glob would also match, what a case-insensitive match would, and what sorts right after
    // the prefix's range.
    for other in ["aXYb*?[x]\\||x", "a%_bZ?x]\\||x", "A%_B*?[X]\\||x", "a%_b*?[x]\\|}x"] {
        h.store.set(&put(&h.key(other), "{}")).await.expect("set");
    }
    let query = Query::parse("{}").expect("parse");
    let page = query.run_on(h.store.as_ref(), &prefix, &PageLimits::default()).await.expect("run");
    let keys: Vec<String> = page.results.into_iter().map(|result| result.key).collect();
    assert_eq!(keys, ["x"]);
}

async fn query_without_sort_pages_in_key_order(h: Harness) {
    seed(&h).await;
    let page = run_query(&h, r#"{"page": {"limit": 4}}"#).await;
    let keys: Vec<String> = page.results.into_iter().map(|result| result.key).collect();
    assert_eq!(keys, ["1", "2", "3", "4"]);
    let token = page.token.expect("a token");
    let page = run_query(&h, &format!(r#"{{"page": {{"limit": 4, "token": "{token}"}}}}"#)).await;
    let keys: Vec<String> = page.results.into_iter().map(|result| result.key).collect();
    assert_eq!((keys, page.token), (vec!["5".to_owned(), "6".to_owned(), "7".to_owned()], None));
}

async fn query_is_unsupported(h: Harness) {
    h.store.set(&put(&h.key("1"), EMPLOYEES[0].1)).await.expect("set");
    assert!(!h.store.features().query);
    let query = Query::parse("{}").expect("parse");
    let request = ScanRequest { prefix: &h.prefix, after: &Position::Start, query: &query, max_rows: 10 };
    let result = h.store.scan(&request).await;
    assert!(matches!(result, Err(StateError::Unsupported("query"))), "{result:?}");
}

cases_for_backends! {
    backends: [sqlite, postgres, redis],
    cases: [
        query_filters_with_every_operator,
        query_returns_only_live_json_items_under_the_prefix,
        query_sorts_on_nested_fields,
        query_pages_until_exhausted,
        query_matches_the_prefix_literally,
    ],
}

/// The SQL stores scan in key order; Redis in its own.
mod in_key_order {
    use super::*;

    cases_for_backends! {
        backends: [sqlite, postgres],
        cases: [query_without_sort_pages_in_key_order],
    }
}

cases_for_backends! {
    backends: [memory],
    cases: [query_is_unsupported],
}

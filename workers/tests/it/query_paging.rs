//! What bounds one query request on every backend with query support: the work budget (an unsorted page stops
//! early with a token to go on, a sorted one is refused), the page's bytes, and a store's own pre-filter,
//! which must never hold back an item the query selects.

use std::collections::BTreeSet;

use outrigger_workers::state::{PageLimits, Position, Query, QueryPage, ScanRequest, StateError, StoredItem};

use crate::backends::{put, Harness};

/// `count` items `i000...`; every tenth is `{"hit": true}`, the others `{"hit": false}`.
async fn seed_sparse(h: &Harness, count: usize) {
    for i in 0..count {
        let value = if i % 10 == 0 { r#"{"hit": true, "n": 1}"# } else { r#"{"hit": false, "n": 1}"# };
        h.store.set(&put(&h.key(&format!("i{i:03}")), value)).await.expect("set");
    }
}

async fn page(h: &Harness, query: &str, limits: &PageLimits) -> Result<QueryPage, StateError> {
    Query::parse(query).expect("a valid query").run_on(h.store.as_ref(), &h.prefix, limits).await
}

/// Follows the tokens of `query` (which must not name a page); answers each page's keys.
async fn all_pages(h: &Harness, query: &str, limits: &PageLimits) -> Vec<Vec<String>> {
    let mut pages = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut query: serde_json::Value = serde_json::from_str(query).expect("JSON");
        if let Some(token) = &token {
            query["page"] = serde_json::json!({ "token": token });
        }
        let query = query.to_string();
        let answer = page(h, &query, limits).await.expect("a page");
        pages.push(answer.results.into_iter().map(|result| result.key).collect());
        token = answer.token;
        if token.is_none() {
            return pages;
        }
        assert!(pages.len() < 1000, "paging does not end");
    }
}

async fn a_request_stops_at_its_budget_and_its_token_goes_on(h: Harness) {
    seed_sparse(&h, 200).await;
    let limits = PageLimits { max_examined_rows: 40, ..PageLimits::default() };
    let pages = all_pages(&h, r#"{"filter": {"EQ": {"hit": true}}}"#, &limits).await;
    assert!(pages.len() > 2, "every request looked at about 40 items: {pages:?}");
    assert!(pages.iter().any(Vec::is_empty) || pages.iter().all(|page| page.len() < 20), "{pages:?}");
    let mut keys: Vec<String> = pages.into_iter().flatten().collect();
    keys.sort();
    let expected: Vec<String> = (0..200).step_by(10).map(|i| format!("i{i:03}")).collect();
    assert_eq!(keys, expected, "every match exactly once across the partial pages");
}

async fn a_sorted_query_over_the_budget_is_refused(h: Harness) {
    seed_sparse(&h, 200).await;
    let limits = PageLimits { max_examined_rows: 40, ..PageLimits::default() };
    let result = page(&h, r#"{"filter": {"EQ": {"hit": true}}, "sort": [{"key": "n"}]}"#, &limits).await;
    match result {
        Err(StateError::InvalidRequest(message)) => assert!(message.contains("sorted query"), "{message}"),
        other => panic!("{other:?}"),
    }
    // Within the budget the same query answers.
    let answer = page(&h, r#"{"filter": {"EQ": {"hit": true}}, "sort": [{"key": "n"}]}"#, &PageLimits::default())
        .await
        .expect("a page");
    assert_eq!(answer.results.len(), 20);
}

async fn a_page_ends_at_its_byte_cap(h: Harness) {
    seed_sparse(&h, 30).await;
    // Each value is 22 bytes: a cap of 50 bytes ends a page at its third item.
    let limits = PageLimits { max_page_bytes: 50, ..PageLimits::default() };
    for query in [r#"{}"#, r#"{"sort": [{"key": "hit"}]}"#] {
        let pages = all_pages(&h, query, &limits).await;
        assert!(pages.iter().all(|page| page.len() <= 3), "{query}: {pages:?}");
        let keys: BTreeSet<String> = pages.iter().flatten().cloned().collect();
        assert_eq!((keys.len(), pages.iter().map(Vec::len).sum::<usize>()), (30, 30), "{query}: {pages:?}");
    }
}

/// Values where SQL's JSON and serde's could part ways.
const TRICKY: [(&str, &str); 16] = [
    ("int", r#"{"v": 1000, "s": "a"}"#),
    ("float", r#"{"v": 1000.0}"#),
    ("exp", r#"{"v": 1e3}"#),
    ("near", r#"{"v": 1000.0000001}"#),
    ("neg", r#"{"v": -0.0, "w": -5}"#),
    ("big", r#"{"v": 12345678901234567890}"#),
    ("text", r#"{"v": "1000", "s": "a\"b\u00e9\\"}"#),
    ("true", r#"{"v": true, "n": null}"#),
    ("false", r#"{"v": false}"#),
    ("null", r#"{"v": null}"#),
    ("array", r#"{"v": [1000], "a": {"0": 1}}"#),
    ("object", r#"{"v": {"x": 1}, "quo\"te": 1, "sp ace": {"d.": 2}}"#),
    ("nested", r#"{"p": {"q": {"r": "deep"}}, "v": 7}"#),
    ("through-array", r#"{"p": [{"q": 1}], "a": [1, 2]}"#),
    ("not-json", r#"{"v": 1000"#),
    ("top-level", r#"1000"#),
];

async fn pre_filters_never_hold_back_a_match(h: Harness) {
    for (key, value) in TRICKY {
        h.store.set(&put(&h.key(key), value)).await.expect("set");
    }
    let in_hand: Vec<(String, StoredItem)> = TRICKY
        .iter()
        .map(|(key, value)| {
            (key.to_string(), StoredItem { value: value.as_bytes().to_vec(), etag: "e".into(), expires_at: None })
        })
        .collect();
    let filters = [
        r#"{"EQ": {"v": 1000}}"#,
        r#"{"EQ": {"v": 1000.0000001}}"#,
        r#"{"EQ": {"v": 12345678901234567890}}"#,
        r#"{"EQ": {"v": 0}}"#,
        r#"{"EQ": {"v": "1000"}}"#,
        r#"{"EQ": {"v": true}}"#,
        r#"{"EQ": {"v": false}}"#,
        r#"{"EQ": {"v": null}}"#,
        r#"{"EQ": {"v": [1000]}}"#,
        r#"{"EQ": {"v": {"x": 1}}}"#,
        r#"{"EQ": {"s": "a\"b\u00e9\\"}}"#,
        r#"{"EQ": {"p.q.r": "deep"}}"#,
        r#"{"EQ": {"p.q": 1}}"#,
        r#"{"EQ": {"a.0": 1}}"#,
        r#"{"EQ": {"quo\"te": 1}}"#,
        r#"{"EQ": {"sp ace": {"d.": 2}}}"#,
        r#"{"NEQ": {"v": 1000}}"#,
        r#"{"NEQ": {"n": 1}}"#,
        r#"{"GT": {"v": 999.9999999}}"#,
        r#"{"GTE": {"v": 1000}}"#,
        r#"{"LT": {"v": 0}}"#,
        r#"{"LTE": {"w": -5}}"#,
        r#"{"IN": {"v": [1000, "1000", true, null]}}"#,
        r#"{"AND": [{"GTE": {"v": 1000}}, {"EQ": {"s": "a"}}]}"#,
        r#"{"OR": [{"EQ": {"quo\"te": 1}}, {"EQ": {"v": 7}}]}"#,
        r#"{"OR": [{"EQ": {"v": false}}, {"EQ": {"p.q.r": "deep"}}]}"#,
    ];
    for filter in filters {
        let query = format!(r#"{{"filter": {filter}}}"#);
        let parsed = Query::parse(&query).expect("a valid query");
        let expected: BTreeSet<String> =
            parsed.run(in_hand.clone()).expect("run").results.into_iter().map(|result| result.key).collect();
        let found = parsed.run_on(h.store.as_ref(), &h.prefix, &PageLimits::default()).await.expect("run");
        let found: BTreeSet<String> = found.results.into_iter().map(|result| result.key).collect();
        assert_eq!(found, expected, "{filter}");
    }
}

/// The SQL stores evaluate the filter themselves: values of items it cannot select stay in the database.
/// (On PostgreSQL a value that is not JSON makes its batch come back whole; see `state::sql_filter`.)
async fn sql_stores_send_only_candidate_values(h: Harness) {
    seed_sparse(&h, 50).await;
    let query = Query::parse(r#"{"filter": {"EQ": {"hit": true}}}"#).expect("parse");
    let request = ScanRequest { prefix: &h.prefix, after: &Position::Start, query: &query, max_rows: 100 };
    let batch = h.store.scan(&request).await.expect("scan");
    assert_eq!(batch.rows.len(), 50, "every item is looked at");
    let sent: Vec<&str> = batch.rows.iter().filter(|row| row.item.is_some()).map(|row| row.key.as_str()).collect();
    let hits: Vec<String> = (0..50).step_by(10).map(|i| h.key(&format!("i{i:03}"))).collect();
    assert_eq!(sent, hits);
    assert!(batch.rows.iter().all(|row| row.size > 0), "sizes are counted for every item");
}

/// The SQL stores scan in key order and filter themselves.
mod sql {
    use super::*;

    cases_for_backends! {
        backends: [sqlite, postgres],
        cases: [sql_stores_send_only_candidate_values],
    }
}

cases_for_backends! {
    backends: [sqlite, postgres, redis],
    cases: [
        a_request_stops_at_its_budget_and_its_token_goes_on,
        a_sorted_query_over_the_budget_is_refused,
        a_page_ends_at_its_byte_cap,
        pre_filters_never_hold_back_a_match,
    ],
}

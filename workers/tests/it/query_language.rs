//! The query language on its own: parsing, and evaluation over items in hand.

use outrigger_workers::state::{Query, QueryError, StoredItem};

fn items(entries: &[(&str, &str)]) -> Vec<(String, StoredItem)> {
    entries
        .iter()
        .map(|(key, value)| {
            let item = StoredItem { value: value.as_bytes().to_vec(), etag: format!("etag-{key}"), expires_at: None };
            (key.to_string(), item)
        })
        .collect()
}

fn keys(query: &str, entries: &[(&str, &str)]) -> Vec<String> {
    let page = Query::parse(query).expect("a valid query").run(items(entries)).expect("run");
    page.results.into_iter().map(|result| result.key).collect()
}

#[test]
fn malformed_queries_say_where_and_what() {
    let cases = [
        ("[1]", "query: must be a JSON object"),
        ("{\"filter\": ", "not valid JSON"),
        (r#"{"filters": {}}"#, "query: unknown field 'filters'"),
        (r#"{"filter": {"LIKE": {"a": 1}}}"#, "filter.LIKE: unknown operator 'LIKE'"),
        (r#"{"filter": {"EQ": {"a": 1}, "NEQ": {"b": 2}}}"#, "filter: must have exactly one operator, found 2"),
        (r#"{"filter": {"EQ": {"a": 1, "b": 2}}}"#, "filter.EQ: must have exactly one key, found 2"),
        (r#"{"filter": {"AND": [{"EQ": {"a": 1}}]}}"#, "filter.AND: must be an array of at least two filters"),
        (
            r#"{"filter": {"OR": [{"EQ": {"a": 1}}, {"GT": {"b": "x"}}]}}"#,
            "filter.OR[1].GT: 'b' must be compared with a number",
        ),
        (r#"{"filter": {"IN": {"a": []}}}"#, "filter.IN: the values of 'a' must be a non-empty array"),
        (r#"{"filter": {"EQ": {"a..b": 1}}}"#, "filter.EQ: 'a..b' is not a key"),
        (r#"{"sort": [{"key": "a", "order": "UP"}]}"#, "sort[0]: order must be \"ASC\" or \"DESC\""),
        (r#"{"sort": [{"order": "ASC"}]}"#, "sort[0]: key must be a string"),
        (r#"{"page": {"limit": -1}}"#, "page.limit: must be a non-negative integer"),
        (r#"{"page": {"token": 3}}"#, "page.token: must be a string"),
    ];
    for (query, expected) in cases {
        let message = Query::parse(query).expect_err(query).to_string();
        assert!(message.contains(expected), "{query}: '{message}' does not say '{expected}'");
    }
}

#[test]
fn eq_compares_json_values() {
    let entries = [
        ("a", r#"{"n": 3, "s": "3", "nested": {"deep": {"flag": true}}}"#),
        ("b", r#"{"n": 3.0, "s": 3}"#),
        ("c", r#"{"n": 4, "nested": {"deep": {"flag": false}}}"#),
    ];
    assert_eq!(keys(r#"{"filter": {"EQ": {"n": 3}}}"#, &entries), ["a", "b"]);
    assert_eq!(keys(r#"{"filter": {"EQ": {"s": "3"}}}"#, &entries), ["a"]);
    assert_eq!(keys(r#"{"filter": {"EQ": {"nested.deep.flag": true}}}"#, &entries), ["a"]);
}

#[test]
fn missing_fields_and_non_json_values_never_match() {
    let entries = [("a", r#"{"state": "CA"}"#), ("b", r#"{"city": "Seattle"}"#), ("c", "not json"), ("d", r#""CA""#)];
    assert_eq!(keys(r#"{"filter": {"NEQ": {"state": "WA"}}}"#, &entries), ["a"]);
    assert_eq!(keys("{}", &entries), ["a", "b", "d"]);
}

#[test]
fn orderings_compare_numbers() {
    let entries = [("a", r#"{"n": 9}"#), ("b", r#"{"n": 10}"#), ("c", r#"{"n": "11"}"#), ("d", r#"{"n": 10.5}"#)];
    assert_eq!(keys(r#"{"filter": {"GT": {"n": 9}}}"#, &entries), ["b", "d"]);
    assert_eq!(keys(r#"{"filter": {"GTE": {"n": 10}}}"#, &entries), ["b", "d"]);
    assert_eq!(keys(r#"{"filter": {"LT": {"n": 10}}}"#, &entries), ["a"]);
    assert_eq!(keys(r#"{"filter": {"LTE": {"n": 10}}}"#, &entries), ["a", "b"]);
}

#[test]
fn in_and_or_combine() {
    let entries = [("a", r#"{"x": 1, "y": "p"}"#), ("b", r#"{"x": 2, "y": "q"}"#), ("c", r#"{"x": 3, "y": "p"}"#)];
    assert_eq!(keys(r#"{"filter": {"IN": {"x": [1, 3, 7]}}}"#, &entries), ["a", "c"]);
    assert_eq!(keys(r#"{"filter": {"AND": [{"IN": {"x": [1, 2]}}, {"EQ": {"y": "p"}}]}}"#, &entries), ["a"]);
    assert_eq!(keys(r#"{"filter": {"OR": [{"EQ": {"x": 2}}, {"EQ": {"x": 3}}]}}"#, &entries), ["b", "c"]);
}

#[test]
fn sorting_puts_missing_fields_last_ascending_and_first_descending() {
    let entries = [("a", r#"{"n": 2}"#), ("b", r#"{}"#), ("c", r#"{"n": 1}"#), ("d", r#"{"n": 2}"#)];
    assert_eq!(keys(r#"{"sort": [{"key": "n"}]}"#, &entries), ["c", "a", "d", "b"]);
    assert_eq!(keys(r#"{"sort": [{"key": "n", "order": "DESC"}]}"#, &entries), ["b", "a", "d", "c"]);
}

#[test]
fn without_sort_results_come_in_key_order() {
    let entries = [("b", "{}"), ("c", "{}"), ("a", "{}")];
    assert_eq!(keys("{}", &entries), ["a", "b", "c"]);
}

#[test]
fn pages_follow_tokens_until_exhausted() {
    let entries = [("a", "{}"), ("b", "{}"), ("c", "{}"), ("d", "{}"), ("e", "{}")];
    let mut pages: Vec<Vec<String>> = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let token_part = token.map(|token| format!(r#", "token": "{token}""#)).unwrap_or_default();
        let query = Query::parse(&format!(r#"{{"page": {{"limit": 2{token_part}}}}}"#)).expect("parse");
        let page = query.run(items(&entries)).expect("run");
        pages.push(page.results.iter().map(|result| result.key.clone()).collect());
        if let Some(last) = page.results.last() {
            assert_eq!((last.etag.clone(), last.data.clone()), (format!("etag-{}", last.key), b"{}".to_vec()));
        }
        token = page.token;
        if token.is_none() || pages.len() > 3 {
            break;
        }
    }
    assert_eq!(pages, [vec!["a", "b"], vec!["c", "d"], vec!["e"]]);
}

#[test]
fn zero_or_no_limit_means_the_default_page_and_large_limits_the_largest() {
    let entries: Vec<(String, String)> = (0..1500).map(|i| (format!("k{i:04}"), "{}".to_owned())).collect();
    let entries: Vec<(&str, &str)> = entries.iter().map(|(key, value)| (key.as_str(), value.as_str())).collect();
    for (query, expected) in [(r#"{"page": {"limit": 0}}"#, 100), ("{}", 100), (r#"{"page": {"limit": 9999}}"#, 1000)] {
        let page = Query::parse(query).expect("parse").run(items(&entries)).expect("run");
        assert_eq!(page.results.len(), expected, "{query}");
        assert!(page.token.is_some(), "{query}: a token to go on");
    }
}

#[test]
fn unknown_token_is_refused() {
    let query = Query::parse(r#"{"page": {"limit": 2, "token": "next please"}}"#).expect("parse");
    let result = query.run(items(&[("a", "{}")]));
    assert!(matches!(&result, Err(QueryError::UnknownToken(token)) if token == "next please"), "{result:?}");
}

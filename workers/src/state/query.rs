//! Dapr's state query language (`POST /v1.0-alpha1/state/<store>/query`): parsing, and what one item's
//! value makes of a filter and a sort. Running a query over a store, page by page, is [`super::page`]'s.
//!
//! A query is `{"filter": {...}, "sort": [{"key": "...", "order": "ASC"|"DESC"}], "page": {"limit": n,
//! "token": "..."}}`, every part optional. Keys name fields of the JSON value with dots for nesting
//! (`person.org` is the `org` field of the `person` object); they start at the value's root, so a field
//! named `state` or `value` is simply that field. Filters are `EQ`, `NEQ`, `GT`, `GTE`, `LT`, `LTE` and
//! `IN` on one key, and `AND` / `OR` over at least two filters, as in Dapr.
//!
//! Where daprd's SQL stores compare the text of a field, this evaluates JSON values: `EQ {"id": 3}`
//! matches the number 3 (and 3.0), not the string "3"; `GT` and the other orderings take a number, as Dapr
//! requires, and match numeric fields only. A field that is missing never matches, not even `NEQ`, as in
//! SQL. Values that are not JSON never match anything. Stores may narrow the candidates first (see
//! [`super::sql_filter`]), but this evaluation has the last word on every item.

use std::cmp::Ordering;

use serde_json::{Map, Value};

/// A parsed query, ready to run over any number of items.
#[derive(Clone, Debug, PartialEq)]
pub struct Query {
    filter: Option<Filter>,
    sort: Vec<SortKey>,
    limit: Option<usize>,
    token: Option<String>,
}

/// Why a query cannot be parsed or run.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The body is not JSON at all.
    #[error("the query is not valid JSON: {0}")]
    NotJson(String),
    /// A part of the query is malformed.
    #[error("{at}: {problem}")]
    Invalid {
        /// Where in the query, e.g. `filter.AND[1].GT`.
        at: String,
        /// What is wrong there.
        problem: String,
    },
    /// `page.token` is not one a previous page of this query returned (the token, cut short).
    #[error(
        "page.token '{0}' is not a token this query returned; send the token of the previous page of the same \
         query, or none"
    )]
    UnknownToken(String),
    /// The query needs more work than one request may do.
    #[error("{0}")]
    TooMuchWork(String),
}

/// One page of results.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueryPage {
    /// The matching items of this page, in order.
    pub results: Vec<QueryResult>,
    /// Token for the next page; `None` when this page is the last.
    pub token: Option<String>,
}

/// One matching item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueryResult {
    /// The key as given to [`Query::run`].
    pub key: String,
    /// The stored value.
    pub data: Vec<u8>,
    /// The item's current ETag.
    pub etag: String,
}

/// A parsed filter; stores that can narrow candidates themselves read it (see [`super::sql_filter`]).
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Filter {
    Compare { path: Vec<String>, comparison: Comparison, operand: Value },
    In { path: Vec<String>, operands: Vec<Value> },
    And(Vec<Filter>),
    Or(Vec<Filter>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Comparison {
    Eq,
    Neq,
    Gt,
    Gte,
    Lt,
    Lte,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SortKey {
    pub(crate) path: Vec<String>,
    pub(crate) descending: bool,
}

fn invalid(at: &str, problem: impl Into<String>) -> QueryError {
    QueryError::Invalid { at: at.to_owned(), problem: problem.into() }
}

/// The single `name: value` entry of an object that must have exactly one.
fn single_entry<'v>(value: &'v Value, at: &str, what: &str) -> Result<(&'v String, &'v Value), QueryError> {
    let object = value.as_object().ok_or_else(|| invalid(at, format!("must be an object with one {what}")))?;
    let mut entries = object.iter();
    match (entries.next(), entries.next()) {
        (Some(entry), None) => Ok(entry),
        _ => Err(invalid(at, format!("must have exactly one {what}, found {}", object.len()))),
    }
}

fn parse_path(key: &str, at: &str) -> Result<Vec<String>, QueryError> {
    let path: Vec<String> = key.split('.').map(str::to_owned).collect();
    if path.iter().any(String::is_empty) {
        return Err(invalid(at, format!("'{key}' is not a key: use field names joined by dots, e.g. person.org")));
    }
    Ok(path)
}

impl Filter {
    fn parse(value: &Value, at: &str) -> Result<Filter, QueryError> {
        let (operator, operand) = single_entry(value, at, "operator")?;
        let at = format!("{at}.{operator}");
        let comparison = match operator.as_str() {
            "EQ" => Comparison::Eq,
            "NEQ" => Comparison::Neq,
            "GT" => Comparison::Gt,
            "GTE" => Comparison::Gte,
            "LT" => Comparison::Lt,
            "LTE" => Comparison::Lte,
            "IN" => {
                let (key, values) = single_entry(operand, &at, "key")?;
                let operands = match values.as_array() {
                    Some(values) if !values.is_empty() => values.clone(),
                    _ => return Err(invalid(&at, format!("the values of '{key}' must be a non-empty array"))),
                };
                return Ok(Filter::In { path: parse_path(key, &at)?, operands });
            }
            "AND" | "OR" => {
                let filters = match operand.as_array() {
                    Some(entries) if entries.len() >= 2 => entries
                        .iter()
                        .enumerate()
                        .map(|(index, entry)| Filter::parse(entry, &format!("{at}[{index}]")))
                        .collect::<Result<Vec<_>, _>>()?,
                    _ => return Err(invalid(&at, "must be an array of at least two filters")),
                };
                return Ok(if operator == "AND" { Filter::And(filters) } else { Filter::Or(filters) });
            }
            other => {
                return Err(invalid(
                    &at,
                    format!("unknown operator '{other}'; use EQ, NEQ, GT, GTE, LT, LTE, IN, AND or OR"),
                ))
            }
        };
        let (key, operand) = single_entry(operand, &at, "key")?;
        let orders = matches!(comparison, Comparison::Gt | Comparison::Gte | Comparison::Lt | Comparison::Lte);
        if orders && !operand.is_number() {
            return Err(invalid(&at, format!("'{key}' must be compared with a number, found {operand}")));
        }
        Ok(Filter::Compare { path: parse_path(key, &at)?, comparison, operand: operand.clone() })
    }

    pub(crate) fn matches(&self, document: &Value) -> bool {
        match self {
            Filter::Compare { path, comparison, operand } => {
                field(document, path).is_some_and(|value| comparison.holds(value, operand))
            }
            Filter::In { path, operands } => {
                field(document, path).is_some_and(|value| operands.iter().any(|operand| same_value(value, operand)))
            }
            Filter::And(filters) => filters.iter().all(|filter| filter.matches(document)),
            Filter::Or(filters) => filters.iter().any(|filter| filter.matches(document)),
        }
    }
}

impl Comparison {
    fn holds(self, value: &Value, operand: &Value) -> bool {
        let numeric_order =
            || value.as_f64().zip(operand.as_f64()).and_then(|(value, operand)| value.partial_cmp(&operand));
        match self {
            Comparison::Eq => same_value(value, operand),
            Comparison::Neq => !same_value(value, operand),
            Comparison::Gt => numeric_order() == Some(Ordering::Greater),
            Comparison::Gte => matches!(numeric_order(), Some(Ordering::Greater | Ordering::Equal)),
            Comparison::Lt => numeric_order() == Some(Ordering::Less),
            Comparison::Lte => matches!(numeric_order(), Some(Ordering::Less | Ordering::Equal)),
        }
    }
}

/// The field at `path`, descending through objects.
pub(crate) fn field<'v>(document: &'v Value, path: &[String]) -> Option<&'v Value> {
    path.iter().try_fold(document, |node, name| node.as_object()?.get(name))
}

/// JSON equality where numbers compare by value (1 = 1.0).
fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        _ => a == b,
    }
}

/// Sort order of fields: null, booleans, numbers, strings, arrays, objects, then missing fields, so that
/// missing fields come last in ascending order and first in descending order, as SQL's NULLs do.
pub(crate) fn compare_fields(a: Option<&Value>, b: Option<&Value>) -> Ordering {
    fn rank(value: Option<&Value>) -> u8 {
        match value {
            Some(Value::Null) => 0,
            Some(Value::Bool(_)) => 1,
            Some(Value::Number(_)) => 2,
            Some(Value::String(_)) => 3,
            Some(Value::Array(_)) => 4,
            Some(Value::Object(_)) => 5,
            None => 6,
        }
    }
    match (a, b) {
        (Some(Value::Bool(a)), Some(Value::Bool(b))) => a.cmp(b),
        (Some(Value::Number(a)), Some(Value::Number(b))) => {
            a.as_f64().unwrap_or(f64::NAN).total_cmp(&b.as_f64().unwrap_or(f64::NAN))
        }
        (Some(Value::String(a)), Some(Value::String(b))) => a.cmp(b),
        (Some(a @ (Value::Array(_) | Value::Object(_))), Some(b)) if rank(Some(a)) == rank(Some(b)) => {
            a.to_string().cmp(&b.to_string())
        }
        _ => rank(a).cmp(&rank(b)),
    }
}

impl SortKey {
    fn parse(value: &Value, at: &str) -> Result<SortKey, QueryError> {
        let entry = value.as_object().ok_or_else(|| invalid(at, "must be an object with key and order"))?;
        if let Some(unknown) = entry.keys().find(|name| !matches!(name.as_str(), "key" | "order")) {
            return Err(invalid(at, format!("unknown field '{unknown}'; a sort entry has key and order")));
        }
        let key = entry.get("key").and_then(Value::as_str).ok_or_else(|| invalid(at, "key must be a string"))?;
        let descending = match entry.get("order") {
            None => false,
            Some(Value::String(order)) if order.eq_ignore_ascii_case("ASC") => false,
            Some(Value::String(order)) if order.eq_ignore_ascii_case("DESC") => true,
            Some(other) => return Err(invalid(at, format!("order must be \"ASC\" or \"DESC\", found {other}"))),
        };
        Ok(SortKey { path: parse_path(key, at)?, descending })
    }
}

fn parse_page(value: &Value, query: &mut Query) -> Result<(), QueryError> {
    let page: &Map<String, Value> = value.as_object().ok_or_else(|| invalid("page", "must be an object"))?;
    for (name, value) in page {
        match name.as_str() {
            "limit" => {
                let limit = value
                    .as_u64()
                    .ok_or_else(|| invalid("page.limit", format!("must be a non-negative integer, found {value}")))?;
                // Dapr reads a limit of 0 as "no limit"; here that is the default page (see `super::page`).
                query.limit = Some(usize::try_from(limit).unwrap_or(usize::MAX)).filter(|limit| *limit > 0);
            }
            "token" => match value {
                Value::String(token) if token.is_empty() => query.token = None,
                Value::String(token) => query.token = Some(token.clone()),
                other => return Err(invalid("page.token", format!("must be a string, found {other}"))),
            },
            other => return Err(invalid("page", format!("unknown field '{other}'; a page has limit and token"))),
        }
    }
    Ok(())
}

impl Query {
    /// Parses a query document, saying where and what is wrong when it is malformed.
    pub fn parse(json: &str) -> Result<Query, QueryError> {
        let document: Value = serde_json::from_str(json).map_err(|err| QueryError::NotJson(err.to_string()))?;
        let fields = document.as_object().ok_or_else(|| invalid("query", "must be a JSON object"))?;
        let mut query = Query { filter: None, sort: Vec::new(), limit: None, token: None };
        for (name, value) in fields {
            match name.as_str() {
                // An empty filter selects everything, like no filter.
                "filter" if value.is_null() || value.as_object().is_some_and(Map::is_empty) => {}
                "filter" => query.filter = Some(Filter::parse(value, "filter")?),
                "sort" => {
                    let entries = value.as_array().ok_or_else(|| invalid("sort", "must be an array"))?;
                    query.sort = entries
                        .iter()
                        .enumerate()
                        .map(|(index, entry)| SortKey::parse(entry, &format!("sort[{index}]")))
                        .collect::<Result<_, _>>()?;
                }
                "page" => parse_page(value, &mut query)?,
                other => {
                    return Err(invalid("query", format!("unknown field '{other}'; a query has filter, sort and page")))
                }
            }
        }
        Ok(query)
    }

    /// The filter, if any.
    pub(crate) fn filter(&self) -> Option<&Filter> {
        self.filter.as_ref()
    }

    /// The sort keys, in order of precedence.
    pub(crate) fn sort(&self) -> &[SortKey] {
        &self.sort
    }

    /// `page.limit`; `None` when absent or 0.
    pub(crate) fn limit(&self) -> Option<usize> {
        self.limit
    }

    /// `page.token`; `None` when absent or empty.
    pub(crate) fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// Whether a stored value is JSON that the filter selects; answers the parsed document when it is.
    pub(crate) fn select(&self, value: &[u8]) -> Option<Value> {
        let document: Value = serde_json::from_slice(value).ok()?;
        self.filter.as_ref().is_none_or(|filter| filter.matches(&document)).then_some(document)
    }
}

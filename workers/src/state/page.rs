//! Running a query over a store, one bounded page per request.
//!
//! Daprd answers a query without `page.limit` with every match, which let one request read a whole store into
//! memory. Here every answer is a page: `page.limit` items at most, [`PageLimits::default_limit`] when the
//! query names none (or 0), never more than [`PageLimits::max_limit`] nor about
//! [`PageLimits::max_page_bytes`] of values; the token of a page continues exactly after its last item.
//!
//! The store is read in batches ([`super::scan`]) and only one batch and one page are held at a time:
//! - Without a sort, items come in the store's scan order (key order on the SQL stores) and a page ends when
//!   it is full; the token is the scan position after its last item. A request also stops after looking at
//!   [`PageLimits::max_examined_rows`] items or [`PageLimits::max_examined_bytes`] of values, and then
//!   answers what it found with a token to go on: a query that matches little in a large store answers
//!   quickly, in several pages, instead of holding the worker until it has read everything.
//! - With a sort, every page must look at every candidate. It keeps only the best `limit` of those after the
//!   previous page's last item (their sort fields and keys; values are read once the page is known), and the
//!   token is that last item's sort fields and key. A sorted query that would look at more than the budget
//!   is refused with a message saying so, rather than answered partly out of order.
//!
//! Tokens are opaque (base64url of a small JSON document) and name positions only within the caller's own
//! prefix, so a forged token can at most skip the caller's own items.

use std::cmp::Ordering;
use std::collections::HashMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::query::{compare_fields, field, Query, QueryError, QueryPage, QueryResult, SortKey};
use super::scan::{Position, ScanRequest, ScanRow};
use super::{StateError, StateStore, StoredItem};

/// How much one query request may return and do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageLimits {
    /// Page size when the query names none (daprd answers everything then).
    pub default_limit: usize,
    /// Largest page; a larger `page.limit` is cut to it (the token then continues).
    pub max_limit: usize,
    /// A page ends once its values add up to this many bytes (it always has at least one item).
    pub max_page_bytes: usize,
    /// Most items one request looks at.
    pub max_examined_rows: u64,
    /// Most bytes of values one request looks at.
    pub max_examined_bytes: u64,
}

impl Default for PageLimits {
    fn default() -> PageLimits {
        PageLimits {
            default_limit: 100,
            max_limit: 1000,
            max_page_bytes: 4 << 20,
            max_examined_rows: 100_000,
            max_examined_bytes: 64 << 20,
        }
    }
}

/// Rows of the first batch: small, since the values may be large.
const FIRST_BATCH_ROWS: usize = 16;
/// Largest batch.
const MAX_BATCH_ROWS: usize = 512;
/// Batches grow while their values stay under this, and shrink above four times it.
const BATCH_BYTES: u64 = 1 << 20;
/// Most bytes of sort fields a sorted page keeps while it scans.
const MAX_SORT_FIELD_BYTES: usize = 16 << 20;
/// Characters of a refused token quoted in the error.
const QUOTED_TOKEN_CHARS: usize = 40;
/// Version of the token format.
const TOKEN_VERSION: u8 = 1;

/// What a page token says.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Token {
    v: u8,
    #[serde(flatten)]
    resume: Resume,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Resume {
    /// An unsorted query: the scan position.
    Scan(Position),
    /// A sorted query: the last item returned, by its sort fields and key.
    Sorted { sort: Vec<SortField>, key: String },
}

/// One sort field of an item, telling a missing field from a JSON `null`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum SortField {
    Missing,
    Value(Value),
}

impl SortField {
    fn as_option(&self) -> Option<&Value> {
        match self {
            SortField::Missing => None,
            SortField::Value(value) => Some(value),
        }
    }

    /// Roughly the memory it holds, to bound what a sorted page keeps.
    fn weight(&self) -> usize {
        match self {
            SortField::Missing | SortField::Value(Value::Null | Value::Bool(_) | Value::Number(_)) => 8,
            SortField::Value(Value::String(text)) => text.len() + 8,
            SortField::Value(other) => other.to_string().len(),
        }
    }
}

fn refused_token(token: &str) -> QueryError {
    QueryError::UnknownToken(token.chars().take(QUOTED_TOKEN_CHARS).collect())
}

impl Token {
    fn encode(resume: Resume) -> String {
        let json = serde_json::to_vec(&Token { v: TOKEN_VERSION, resume }).expect("a token serializes");
        URL_SAFE_NO_PAD.encode(json)
    }

    fn decode(text: &str) -> Result<Resume, QueryError> {
        let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| refused_token(text))?;
        match serde_json::from_slice::<Token>(&bytes) {
            Ok(token) if token.v == TOKEN_VERSION => Ok(token.resume),
            _ => Err(refused_token(text)),
        }
    }
}

/// A scan position as a token holds it: keys relative to the caller's prefix.
fn position_to_token(position: Position, prefix: &str) -> String {
    let position = match position {
        Position::After(key) => Position::After(key.strip_prefix(prefix).map(str::to_owned).unwrap_or(key)),
        other => other,
    };
    Token::encode(Resume::Scan(position))
}

fn position_from_token(position: Position, prefix: &str) -> Position {
    match position {
        Position::After(key) => Position::After(format!("{prefix}{key}")),
        other => other,
    }
}

/// An item a sorted page may return: its sort fields and key.
#[derive(Clone, Debug)]
struct Ranked {
    sort: Vec<SortField>,
    key: String,
}

impl Ranked {
    fn weight(&self) -> usize {
        self.sort.iter().map(SortField::weight).sum::<usize>() + self.key.len()
    }
}

/// The order of a sorted query: its sort keys, then the key, so that no two items tie.
fn rank_order(sort: &[SortKey], a: &Ranked, b: &Ranked) -> Ordering {
    sort.iter()
        .zip(a.sort.iter().zip(&b.sort))
        .map(|(key, (a, b))| {
            let order = compare_fields(a.as_option(), b.as_option());
            if key.descending {
                order.reverse()
            } else {
                order
            }
        })
        .find(|order| order.is_ne())
        .unwrap_or_else(|| a.key.cmp(&b.key))
}

/// The best `limit` candidates after `after`, kept in at most twice `limit` entries.
struct TopRanked<'q> {
    sort: &'q [SortKey],
    after: Option<Ranked>,
    limit: usize,
    kept: Vec<Ranked>,
    weight: usize,
}

impl<'q> TopRanked<'q> {
    fn offer(&mut self, key: &str, document: &Value) -> Result<(), QueryError> {
        let sort = self
            .sort
            .iter()
            .map(|sort| field(document, &sort.path).map_or(SortField::Missing, |value| SortField::Value(value.clone())))
            .collect();
        let candidate = Ranked { sort, key: key.to_owned() };
        if self.after.as_ref().is_some_and(|after| rank_order(self.sort, &candidate, after).is_le()) {
            return Ok(());
        }
        self.weight += candidate.weight();
        self.kept.push(candidate);
        if self.kept.len() >= 2 * self.limit {
            self.trim();
        }
        if self.weight > MAX_SORT_FIELD_BYTES {
            return Err(QueryError::TooMuchWork(format!(
                "the sort fields of this page's candidates exceed {MAX_SORT_FIELD_BYTES} bytes; sort on smaller \
                 fields or ask for a smaller page"
            )));
        }
        Ok(())
    }

    fn trim(&mut self) {
        let sort = self.sort;
        self.kept.sort_unstable_by(|a, b| rank_order(sort, a, b));
        self.kept.truncate(self.limit);
        self.weight = self.kept.iter().map(Ranked::weight).sum();
    }

    fn finish(mut self) -> Vec<Ranked> {
        self.trim();
        self.kept
    }
}

/// Collects a page from sorted winners whose items are in hand; answers the page.
fn sorted_page(
    query: &Query,
    winners: Vec<Ranked>,
    limit: usize,
    max_page_bytes: usize,
    mut item_of: impl FnMut(&str) -> Option<StoredItem>,
) -> QueryPage {
    let full = winners.len() >= limit;
    let mut page = QueryPage::default();
    let mut bytes = 0usize;
    let count = winners.len();
    for (index, winner) in winners.into_iter().enumerate() {
        // Changed or deleted since the scan: it no longer belongs on the page.
        if let Some(item) = item_of(&winner.key).filter(|item| query.select(&item.value).is_some()) {
            bytes += item.value.len();
            page.results.push(QueryResult { key: winner.key.clone(), data: item.value, etag: item.etag });
        }
        let last = index + 1 == count;
        if (last && full) || (!last && bytes >= max_page_bytes) {
            page.token = Some(Token::encode(Resume::Sorted { sort: winner.sort, key: winner.key }));
            break;
        }
    }
    page
}

/// What one request has looked at so far.
#[derive(Default)]
struct Work {
    rows: u64,
    bytes: u64,
}

impl Work {
    fn over(&self, limits: &PageLimits) -> bool {
        self.rows >= limits.max_examined_rows || self.bytes >= limits.max_examined_bytes
    }
}

/// The next batch size: halve after a batch of large values, double after one of small values.
fn next_batch_rows(rows: usize, batch_bytes: u64) -> usize {
    if batch_bytes > 4 * BATCH_BYTES {
        (rows / 2).max(1)
    } else if batch_bytes < BATCH_BYTES {
        (rows * 2).min(MAX_BATCH_ROWS)
    } else {
        rows
    }
}

fn app_key<'k>(key: &'k str, prefix: &str) -> &'k str {
    key.strip_prefix(prefix).unwrap_or(key)
}

fn too_much(err: QueryError) -> StateError {
    StateError::InvalidRequest(err.to_string())
}

impl Query {
    /// The page size this query gets within `limits`.
    fn page_limit(&self, limits: &PageLimits) -> usize {
        self.limit().unwrap_or(limits.default_limit).min(limits.max_limit).max(1)
    }

    /// Answers one page of this query over the items of `store` whose keys start with `prefix`, with those
    /// keys stripped of it. Malformed tokens and queries over the budget are [`StateError::InvalidRequest`].
    pub async fn run_on(
        &self,
        store: &dyn StateStore,
        prefix: &str,
        limits: &PageLimits,
    ) -> Result<QueryPage, StateError> {
        let resume = self.token().map(Token::decode).transpose().map_err(too_much)?;
        let limit = self.page_limit(limits);
        if self.sort().is_empty() {
            let after = match resume {
                None => Position::Start,
                Some(Resume::Scan(position)) => position_from_token(position, prefix),
                Some(Resume::Sorted { .. }) => return Err(too_much(refused_token(self.token().unwrap_or_default()))),
            };
            return self.scan_page(store, prefix, after, limit, limits).await;
        }
        let after = match resume {
            None => None,
            Some(Resume::Sorted { sort, key }) if sort.len() == self.sort().len() => Some(Ranked { sort, key }),
            Some(_) => return Err(too_much(refused_token(self.token().unwrap_or_default()))),
        };
        self.sorted_page(store, prefix, after, limit, limits).await
    }

    /// An unsorted page: the matches in scan order from `after`.
    async fn scan_page(
        &self,
        store: &dyn StateStore,
        prefix: &str,
        mut after: Position,
        limit: usize,
        limits: &PageLimits,
    ) -> Result<QueryPage, StateError> {
        let mut page = QueryPage::default();
        let (mut bytes, mut work, mut batch_rows) = (0usize, Work::default(), FIRST_BATCH_ROWS);
        loop {
            let request = ScanRequest { prefix, after: &after, query: self, max_rows: batch_rows };
            let mut batch = store.scan(&request).await?;
            work.rows += batch.examined.max(batch.rows.len() as u64);
            let mut batch_bytes = 0;
            for index in 0..batch.rows.len() {
                let ScanRow { key, item, size } = &mut batch.rows[index];
                batch_bytes += *size;
                let Some(item) = item.take().filter(|item| self.select(&item.value).is_some()) else { continue };
                bytes += item.value.len();
                page.results.push(QueryResult {
                    key: app_key(key, prefix).to_owned(),
                    data: item.value,
                    etag: item.etag,
                });
                if page.results.len() >= limit || bytes >= limits.max_page_bytes {
                    page.token = batch.after(index).map(|position| position_to_token(position, prefix));
                    return Ok(page);
                }
            }
            work.bytes += batch_bytes;
            batch_rows = next_batch_rows(batch_rows, batch_bytes);
            match batch.next {
                None => return Ok(page),
                Some(next) => after = next,
            }
            if work.over(limits) {
                page.token = Some(position_to_token(after, prefix));
                return Ok(page);
            }
        }
    }

    /// A sorted page: every candidate is looked at, the best `limit` after `after` are kept.
    async fn sorted_page(
        &self,
        store: &dyn StateStore,
        prefix: &str,
        after: Option<Ranked>,
        limit: usize,
        limits: &PageLimits,
    ) -> Result<QueryPage, StateError> {
        let mut top = TopRanked { sort: self.sort(), after, limit, kept: Vec::new(), weight: 0 };
        let (mut position, mut work, mut batch_rows) = (Position::Start, Work::default(), FIRST_BATCH_ROWS);
        loop {
            let request = ScanRequest { prefix, after: &position, query: self, max_rows: batch_rows };
            let batch = store.scan(&request).await?;
            work.rows += batch.examined.max(batch.rows.len() as u64);
            let mut batch_bytes = 0;
            for row in &batch.rows {
                batch_bytes += row.size;
                if let Some(document) = row.item.as_ref().and_then(|item| self.select(&item.value)) {
                    top.offer(app_key(&row.key, prefix), &document).map_err(too_much)?;
                }
            }
            work.bytes += batch_bytes;
            batch_rows = next_batch_rows(batch_rows, batch_bytes);
            match batch.next {
                None => break,
                Some(next) => position = next,
            }
            if work.over(limits) {
                return Err(too_much(QueryError::TooMuchWork(format!(
                    "a sorted query looks at every item it may return, and this one would look at more than {} \
                     items or {} bytes in one request; narrow the filter, or leave out the sort to page through \
                     the items in key order",
                    limits.max_examined_rows, limits.max_examined_bytes
                ))));
            }
        }
        let winners = top.finish();
        let keys: Vec<String> = winners.iter().map(|winner| format!("{prefix}{}", winner.key)).collect();
        let mut items: HashMap<String, StoredItem> = HashMap::new();
        for (winner, found) in winners.iter().zip(store.bulk_get(&keys).await) {
            if let Some(item) = found? {
                items.insert(winner.key.clone(), item);
            }
        }
        Ok(sorted_page(self, winners, limit, limits.max_page_bytes, |key| items.remove(key)))
    }

    /// Answers one page of this query over items in hand (keys as the app knows them), as a store holding
    /// exactly them would, within the default [`PageLimits`].
    pub fn run(&self, mut items: Vec<(String, StoredItem)>) -> Result<QueryPage, QueryError> {
        let limits = PageLimits::default();
        let limit = self.page_limit(&limits);
        items.sort_by(|(a, _), (b, _)| a.cmp(b));
        let resume = self.token().map(Token::decode).transpose()?;
        let wrong_token = || refused_token(self.token().unwrap_or_default());
        if self.sort().is_empty() {
            let after = match resume {
                None => None,
                Some(Resume::Scan(Position::After(key))) => Some(key),
                Some(_) => return Err(wrong_token()),
            };
            let mut page = QueryPage::default();
            let mut bytes = 0usize;
            let remaining = items.into_iter().filter(|(key, _)| after.as_ref().is_none_or(|after| key > after));
            let selected: Vec<_> = remaining.filter(|(_, item)| self.select(&item.value).is_some()).collect();
            let count = selected.len();
            for (index, (key, item)) in selected.into_iter().enumerate() {
                bytes += item.value.len();
                page.results.push(QueryResult { key: key.clone(), data: item.value, etag: item.etag });
                if index + 1 < count && (page.results.len() >= limit || bytes >= limits.max_page_bytes) {
                    page.token = Some(Token::encode(Resume::Scan(Position::After(key))));
                    break;
                }
            }
            return Ok(page);
        }
        let after = match resume {
            None => None,
            Some(Resume::Sorted { sort, key }) if sort.len() == self.sort().len() => Some(Ranked { sort, key }),
            Some(_) => return Err(wrong_token()),
        };
        let mut top = TopRanked { sort: self.sort(), after, limit, kept: Vec::new(), weight: 0 };
        for (key, item) in &items {
            if let Some(document) = self.select(&item.value) {
                top.offer(key, &document)?;
            }
        }
        let mut items: HashMap<String, StoredItem> = items.into_iter().collect();
        Ok(sorted_page(self, top.finish(), limit, limits.max_page_bytes, |key| items.remove(key)))
    }
}

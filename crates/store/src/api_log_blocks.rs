//! How the API log keeps calls: in blocks, one row per project per written batch, the block's calls encoded
//! together (MessagePack, newest first) beside columns that say what the block holds (its time span, App IDs,
//! APIs, status classes and directions), so that a listing skips blocks without decoding them.
//!
//! A row per call cost SQLite more than the call it logged (binding 17 values, the statement's reset, two index
//! entries: ~19k instructions of a state GET's ~96k); a block costs one insert per project per batch. Listings
//! read blocks newest first (`(project_id, last_at, id)`) and filter the calls exactly once decoded; a
//! continuation token names a block and a position in it. Expiry and trimming remove whole blocks, and rewrite
//! the one block a boundary falls in, so a listing shows exactly the calls kept.

use sqlx::any::AnyRow;
use sqlx::Row;

use crate::api_calls::{ApiCall, ApiCallFilter, CallDirection};
use crate::paging::{self, KeyColumn, Value};
use crate::{Engine, Error, Page, PageRequest, ProjectId, Result, Store, Tx};

/// The version of the blocks' encoding, first in every block.
const BLOCK_FORMAT: u8 = 1;

/// The most calls one page examines, whatever its filters: a filter that matches few calls of a busy project
/// (a rare text above all, which no column narrows) would otherwise decode all of them for one page; a page
/// examines this many, newest first, and may come back short, or empty, with a token to continue from there.
pub const EXAMINED_PER_PAGE: u32 = 20_000;

/// Bytes a call's encoding takes, about (a state call with trace ids, user agent and address).
const ENCODED_CALL_BYTES: usize = 256;
/// Blocks inserted per statement: 9 values each stays under SQLite's 999 placeholders.
const BLOCKS_PER_INSERT: usize = 100;
/// Blocks a listing reads per statement at first; each further read takes twice as many, up to the most.
const FIRST_READ: i64 = 4;
const MOST_READ: i64 = 256;

/// The position a continuation token names: a block, and the first of its calls not yet examined.
const POSITION: &[KeyColumn] = &[KeyColumn::Number("last_at"), KeyColumn::Number("id"), KeyColumn::Number("position")];

/// One call as a block stores it: the project is the block's, the direction a flag.
#[derive(Clone, Copy, serde::Serialize, serde::Deserialize)]
struct StoredCall<'a> {
    at: i64,
    app_id: &'a str,
    target: Option<&'a str>,
    api: &'a str,
    protocol: &'a str,
    method: &'a str,
    path: &'a str,
    component: Option<&'a str>,
    status: u16,
    grpc_code: Option<i32>,
    latency_us: i64,
    trace_id: Option<&'a str>,
    span_id: Option<&'a str>,
    user_agent: Option<&'a str>,
    caller_addr: Option<&'a str>,
    to_app: bool,
}

impl<'a> StoredCall<'a> {
    fn of(call: &'a ApiCall) -> StoredCall<'a> {
        StoredCall {
            at: call.at,
            app_id: &call.app_id,
            target: call.target.as_deref(),
            api: &call.api,
            protocol: &call.protocol,
            method: &call.method,
            path: &call.path,
            component: call.component.as_deref(),
            status: call.status,
            grpc_code: call.grpc_code,
            latency_us: call.latency_us,
            trace_id: call.trace_id.as_deref(),
            span_id: call.span_id.as_deref(),
            user_agent: call.user_agent.as_deref(),
            caller_addr: call.caller_addr.as_deref(),
            to_app: call.direction == CallDirection::ToApp,
        }
    }

    fn direction(&self) -> CallDirection {
        if self.to_app {
            CallDirection::ToApp
        } else {
            CallDirection::FromApp
        }
    }

    fn to_call(self, project: &ProjectId) -> ApiCall {
        let owned = |text: Option<&str>| text.map(str::to_owned);
        ApiCall {
            project_id: project.clone(),
            at: self.at,
            app_id: self.app_id.to_owned(),
            target: owned(self.target),
            api: self.api.to_owned().into(),
            protocol: self.protocol.to_owned().into(),
            method: self.method.to_owned().into(),
            path: self.path.to_owned(),
            component: owned(self.component),
            status: self.status,
            grpc_code: self.grpc_code,
            latency_us: self.latency_us,
            trace_id: owned(self.trace_id),
            span_id: owned(self.span_id),
            user_agent: owned(self.user_agent),
            caller_addr: owned(self.caller_addr),
            direction: self.direction(),
        }
    }

    /// Whether the call passes every condition of `filter` (`text` lower-cased).
    fn matches(&self, filter: &ApiCallFilter, text: Option<&str>) -> bool {
        filter.app_id.as_deref().is_none_or(|app_id| self.app_id == app_id)
            && filter.api.as_deref().is_none_or(|api| self.api == api)
            && filter.status.is_none_or(|(from, to)| (from..to).contains(&self.status))
            && filter.direction.is_none_or(|direction| self.direction() == direction)
            && filter.since.is_none_or(|since| self.at >= since)
            && filter.until.is_none_or(|until| self.at < until)
            && text.is_none_or(|text| {
                [Some(self.path), Some(self.method), self.component, self.target, Some(self.app_id)]
                    .into_iter()
                    .flatten()
                    .any(|field| contains_lowercase(field, text))
            })
    }
}

/// Whether `field`, lower-cased, holds `text` (already lower-case); without allocating for ASCII fields.
fn contains_lowercase(field: &str, text: &str) -> bool {
    if field.is_ascii() {
        let (field, text) = (field.as_bytes(), text.as_bytes());
        text.is_empty() || field.windows(text.len()).any(|window| window.eq_ignore_ascii_case(text))
    } else {
        field.to_lowercase().contains(text)
    }
}

/// The bit a status class sets in a block's `statuses` (1xx is bit 1, 5xx bit 5).
fn status_bit(status: u16) -> i64 {
    1 << (status / 100).min(62)
}

/// The bit a direction sets in a block's `directions`.
fn direction_bit(direction: CallDirection) -> i64 {
    match direction {
        CallDirection::FromApp => 1,
        CallDirection::ToApp => 2,
    }
}

/// A value of a block's `app_ids` or `apis`: each name between bars, so a LIKE finds a whole name.
fn name_list<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let mut names: Vec<&str> = names.collect();
    names.sort_unstable();
    names.dedup();
    format!("|{}|", names.join("|"))
}

/// The LIKE pattern that finds `name` in a name list, its wildcards escaped.
fn name_pattern(name: &str) -> String {
    let mut pattern = String::from("%|");
    for c in name.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push_str("|%");
    pattern
}

/// A statement with values bound.
type Query<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;

/// A block ready to be stored: its calls, newest first, encoded, and what it holds.
struct Block {
    first_at: i64,
    last_at: i64,
    calls: i64,
    app_ids: String,
    apis: String,
    statuses: i64,
    directions: i64,
    body: Vec<u8>,
}

impl Block {
    /// The block of `calls` (newest first, at least one).
    fn of<C: Stored>(calls: &[C]) -> Block {
        // Room for a typical call's encoding from the start: growing a block of hundreds of calls by doubling
        // copied it over and over.
        let mut body = Vec::with_capacity(calls.len() * ENCODED_CALL_BYTES);
        rmp_serde::encode::write(&mut body, &(BLOCK_FORMAT, Encoded(calls))).expect("API calls encode to MessagePack");
        let stored = || calls.iter().map(Stored::stored);
        Block {
            first_at: stored().map(|call| call.at).min().unwrap_or_default(),
            last_at: stored().map(|call| call.at).max().unwrap_or_default(),
            calls: calls.len() as i64,
            app_ids: name_list(stored().map(|call| call.app_id)),
            apis: name_list(stored().map(|call| call.api)),
            statuses: stored().fold(0, |bits, call| bits | status_bit(call.status)),
            directions: stored().fold(0, |bits, call| bits | direction_bit(call.direction())),
            body,
        }
    }

    /// `query` with the block's columns bound, in the order `first_at, last_at, calls, app_ids, apis, statuses,
    /// directions, body`.
    fn bind(self, query: Query<'_>) -> Query<'_> {
        query
            .bind(self.first_at)
            .bind(self.last_at)
            .bind(self.calls)
            .bind(self.app_ids)
            .bind(self.apis)
            .bind(self.statuses)
            .bind(self.directions)
            // Moved, not borrowed: a borrowed blob is copied into the arguments.
            .bind(self.body)
    }
}

/// The calls of a stored block, newest first.
fn decode(id: i64, body: &[u8]) -> Result<Vec<StoredCall<'_>>> {
    let corrupt = |reason: String| Error::Corrupt { kind: "API log block".into(), name: id.to_string(), reason };
    let (format, calls): (u8, Vec<StoredCall<'_>>) =
        rmp_serde::from_slice(body).map_err(|err| corrupt(err.to_string()))?;
    if format == BLOCK_FORMAT {
        Ok(calls)
    } else {
        Err(corrupt(format!("written in format {format}, which this version does not read")))
    }
}

/// A call a block can hold: a recorded one, or one of a stored block that is rewritten.
trait Stored {
    fn stored(&self) -> StoredCall<'_>;
}

impl Stored for &ApiCall {
    fn stored(&self) -> StoredCall<'_> {
        StoredCall::of(self)
    }
}

impl Stored for StoredCall<'_> {
    fn stored(&self) -> StoredCall<'_> {
        *self
    }
}

/// Calls encoded as a block's sequence, each in its stored form, made as it is written rather than gathered
/// into a list first (hundreds of calls of ~200 bytes, copied as the list grew).
struct Encoded<'a, C>(&'a [C]);

impl<C: Stored> serde::Serialize for Encoded<'_, C> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(Stored::stored))
    }
}

/// A batch's blocks: one per project, its calls newest first (calls of the same millisecond, the later first).
/// The batch is ordered by reference: a stable sort of the calls in reverse arrival order, which arrive about in
/// time order, so it mostly finds them sorted already.
fn blocks_of(calls: &[ApiCall]) -> Vec<(&ProjectId, Block)> {
    let mut order: Vec<&ApiCall> = calls.iter().rev().collect();
    order.sort_by(|a, b| a.project_id.cmp(&b.project_id).then(b.at.cmp(&a.at)));
    order.chunk_by(|a, b| a.project_id == b.project_id).map(|run| (&run[0].project_id, Block::of(run))).collect()
}

/// Adds the blocks of `calls` to the log, in the caller's transaction.
pub(crate) async fn insert(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    engine: Engine,
    calls: &[ApiCall],
) -> Result<()> {
    let mut blocks = blocks_of(calls).into_iter().peekable();
    while blocks.peek().is_some() {
        let chunk: Vec<_> = blocks.by_ref().take(BLOCKS_PER_INSERT).collect();
        let rows: Vec<String> = (0..chunk.len())
            .map(|row| {
                // Anonymous on SQLite, which finds a named placeholder by walking the list of names.
                let values: Vec<String> = (1..=9)
                    .map(|column| match engine {
                        Engine::Sqlite => "?".to_owned(),
                        Engine::Postgres => format!("${}", row * 9 + column),
                    })
                    .collect();
                format!("({})", values.join(", "))
            })
            .collect();
        let sql = format!(
            "INSERT INTO api_call_blocks (project_id, first_at, last_at, calls, app_ids, apis, statuses, directions, \
             body) VALUES {}",
            rows.join(", ")
        );
        let mut query = sqlx::query(&sql);
        for (project, block) in chunk {
            query = block.bind(query.bind(project.as_str()));
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}

/// Replaces a stored block by the calls of it `keep` keeps, or removes it when none are kept.
async fn rewrite(
    executor: impl sqlx::Executor<'_, Database = sqlx::Any>,
    id: i64,
    body: &[u8],
    keep: impl FnMut(&(usize, StoredCall<'_>)) -> bool,
) -> Result<()> {
    let kept: Vec<StoredCall<'_>> = decode(id, body)?.into_iter().enumerate().filter(keep).map(|(_, c)| c).collect();
    if kept.is_empty() {
        sqlx::query("DELETE FROM api_call_blocks WHERE id = $1").bind(id).execute(executor).await?;
        return Ok(());
    }
    let block = Block::of(&kept);
    let query = sqlx::query(
        "UPDATE api_call_blocks SET first_at = $2, last_at = $3, calls = $4, app_ids = $5, apis = $6, statuses = $7, \
         directions = $8, body = $9 WHERE id = $1",
    )
    .bind(id);
    block.bind(query).execute(executor).await?;
    Ok(())
}

impl Store {
    /// Removes logged calls from before `before`: whole blocks, and the older calls of a block that holds both.
    pub(crate) async fn expire_api_call_blocks(&self, before: i64) -> Result<()> {
        sqlx::query("DELETE FROM api_call_blocks WHERE first_at < $1 AND last_at < $1")
            .bind(before)
            .execute(&self.pool)
            .await?;
        let straddling: Vec<(i64, Vec<u8>)> =
            sqlx::query_as("SELECT id, body FROM api_call_blocks WHERE first_at < $1")
                .bind(before)
                .fetch_all(&self.pool)
                .await?;
        for (id, body) in straddling {
            rewrite(&self.pool, id, &body, |(_, call)| call.at >= before).await?;
        }
        Ok(())
    }

    /// Keeps only the project's `keep` newest logged calls.
    pub async fn trim_api_calls(&self, project: &ProjectId, keep: u64) -> Result<()> {
        let keep = i64::try_from(keep).unwrap_or(i64::MAX);
        // The newest block that reaches past `keep` calls, and how many calls the blocks newer than it hold
        // (PostgreSQL sums BIGINTs as NUMERIC; the cast keeps one row type on both engines).
        let crossing: Option<(i64, i64, i64)> = sqlx::query_as(
            "SELECT last_at, id, newer FROM (SELECT last_at, id, calls, \
             CAST(SUM(calls) OVER (ORDER BY last_at DESC, id DESC) AS BIGINT) - calls AS newer \
             FROM api_call_blocks WHERE project_id = $1) AS running WHERE newer + calls > $2 \
             ORDER BY last_at DESC, id DESC LIMIT 1",
        )
        .bind(project.as_str())
        .bind(keep)
        .fetch_optional(&self.pool)
        .await?;
        let Some((last_at, id, newer)) = crossing else { return Ok(()) };
        sqlx::query("DELETE FROM api_call_blocks WHERE project_id = $1 AND (last_at, id) < ($2, $3)")
            .bind(project.as_str())
            .bind(last_at)
            .bind(id)
            .execute(&self.pool)
            .await?;
        let room = usize::try_from(keep - newer).unwrap_or_default();
        let body: Vec<u8> =
            sqlx::query_scalar("SELECT body FROM api_call_blocks WHERE id = $1").bind(id).fetch_one(&self.pool).await?;
        rewrite(&self.pool, id, &body, |(index, _)| *index < room).await
    }
}

/// A listing's statement over blocks: the conditions that select the blocks a filter can match, and their values.
struct BlockQuery {
    clauses: Vec<String>,
    values: Vec<Value>,
}

impl BlockQuery {
    fn new(project: &ProjectId, filter: &ApiCallFilter) -> BlockQuery {
        let mut query = BlockQuery { clauses: Vec::new(), values: Vec::new() };
        query.push("project_id = ?", Value::Text(project.as_str().to_owned()));
        if let Some(since) = filter.since {
            query.push("last_at >= ?", Value::Number(since));
        }
        if let Some(until) = filter.until {
            query.push("first_at < ?", Value::Number(until));
        }
        if let Some(app_id) = &filter.app_id {
            query.push("app_ids LIKE ? ESCAPE '\\'", Value::Text(name_pattern(app_id)));
        }
        if let Some(api) = &filter.api {
            query.push("apis LIKE ? ESCAPE '\\'", Value::Text(name_pattern(api)));
        }
        if let Some((from, to)) = filter.status {
            let classes =
                (from / 100..=to.saturating_sub(1) / 100).fold(0, |bits, class| bits | status_bit(class * 100));
            query.push("(statuses & ?) <> 0", Value::Number(classes));
        }
        if let Some(direction) = filter.direction {
            query.push("(directions & ?) <> 0", Value::Number(direction_bit(direction)));
        }
        query
    }

    fn push(&mut self, clause: &str, value: Value) {
        self.values.push(value);
        self.clauses.push(clause.replace('?', &format!("${}", self.values.len())));
    }

    /// Up to `count` blocks, newest first, from the block `from` names: that block itself when `from.1`, else
    /// those after it.
    async fn read(&self, tx: &mut Tx, from: Option<((i64, i64), bool)>, count: i64) -> Result<Vec<AnyRow>> {
        let mut clauses = self.clauses.clone();
        let mut values = self.values.clone();
        if let Some(((last_at, id), included)) = from {
            let beyond = if included { "<=" } else { "<" };
            clauses.push(format!("(last_at, id) {beyond} (${}, ${})", values.len() + 1, values.len() + 2));
            values.extend([Value::Number(last_at), Value::Number(id)]);
        }
        let sql = format!(
            "SELECT id, last_at, body FROM api_call_blocks WHERE {} ORDER BY last_at DESC, id DESC LIMIT {count}",
            clauses.join(" AND ")
        );
        // Planned for each run's values: a generic plan cannot tell a project of millions of calls from one of ten.
        let mut query = sqlx::query(&sql).persistent(false);
        for value in values {
            query = match value {
                Value::Text(text) => query.bind(text),
                Value::Number(number) => query.bind(number),
            };
        }
        Ok(query.fetch_all(&mut *tx.tx).await?)
    }
}

impl Tx {
    /// A page of the project's logged calls, newest first.
    pub async fn page_api_calls(
        &mut self,
        project: &ProjectId,
        filter: &ApiCallFilter,
        request: &PageRequest,
    ) -> Result<Page<ApiCall>> {
        let limit = request.limit() as usize;
        // Where the page starts: a block and the position of its first call to examine.
        let start = match &request.continuation {
            Some(token) => match paging::decode(token, POSITION)?.as_slice() {
                [Value::Number(last_at), Value::Number(id), Value::Number(position)] => {
                    Some(((*last_at, *id), usize::try_from(*position).map_err(|_| Error::InvalidContinuation)?))
                }
                _ => return Err(Error::InvalidContinuation),
            },
            None => None,
        };
        let mut from = start.map(|(block, _)| (block, true));
        let text = filter.text.as_deref().map(str::to_lowercase);
        let query = BlockQuery::new(project, filter);
        let (mut items, mut examined, mut count) = (Vec::new(), 0u32, FIRST_READ);
        loop {
            let rows = query.read(self, from, count).await?;
            let Some(last) = rows.last() else { return Ok(Page { items, continuation: None }) };
            let next = (last.try_get::<i64, _>("last_at")?, last.try_get::<i64, _>("id")?);
            let full = rows.len() as i64 == count;
            for row in &rows {
                let (id, last_at): (i64, i64) = (row.try_get("id")?, row.try_get("last_at")?);
                let body: Vec<u8> = row.try_get("body")?;
                let skip = match start {
                    Some((block, position)) if block == (last_at, id) => position,
                    _ => 0,
                };
                for (position, call) in decode(id, &body)?.iter().enumerate().skip(skip) {
                    let here = || Some(paging::encode(&[last_at, id, position as i64].map(Value::Number)));
                    if examined == EXAMINED_PER_PAGE {
                        return Ok(Page { items, continuation: here() });
                    }
                    examined += 1;
                    if call.matches(filter, text.as_deref()) {
                        // The match past the page says that another page follows, and where it starts.
                        if items.len() == limit {
                            return Ok(Page { items, continuation: here() });
                        }
                        items.push(call.to_call(project));
                    }
                }
            }
            if !full {
                return Ok(Page { items, continuation: None });
            }
            // Every block read was examined whole: the next read starts after the last.
            from = Some((next, false));
            count = (count * 2).min(MOST_READ);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_pattern_finds_whole_names_only() {
        assert_eq!(name_list(["cart", "audit", "cart"].into_iter()), "|audit|cart|");
        assert_eq!(name_pattern("order_1%"), "%|order\\_1\\%|%");
        assert!(contains_lowercase("/v1.0/state/Orders", "orders"));
        assert!(!contains_lowercase("/v1.0/state/kv", "orders"));
        assert!(contains_lowercase("Ünïcode-Orders", "ünïcode"));
    }
}

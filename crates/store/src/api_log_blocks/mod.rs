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

pub(crate) use self::batch::BatchedCall;
pub use self::batch::{CallBatch, Calls, LoggedCall};
use self::stored_call::{decode, start_block, start_call, StoredCall};
use crate::api_calls::{ApiCall, ApiCallFilter, CallDirection};
use crate::paging::{self, KeyColumn, Value};
use crate::{ApiLogTx, Engine, Error, Page, PageRequest, ProjectId, Result, Store};

mod batch;
mod pack;
mod stored_call;

/// The most calls one page examines, whatever its filters: a filter that matches few calls of a busy project
/// (a rare text above all, which no column narrows) would otherwise decode all of them for one page; a page
/// examines this many, newest first, and may come back short, or empty, with a token to continue from there.
pub const EXAMINED_PER_PAGE: u32 = 20_000;

/// Blocks inserted per statement: 9 values each stays under SQLite's 999 placeholders.
const BLOCKS_PER_INSERT: usize = 100;
/// Blocks a listing reads per statement at first; each further read takes twice as many, up to the most.
const FIRST_READ: i64 = 4;
const MOST_READ: i64 = 256;

/// The position a continuation token names: a block, and the first of its calls not yet examined.
const POSITION: &[KeyColumn] = &[KeyColumn::Number("last_at"), KeyColumn::Number("id"), KeyColumn::Number("position")];

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
fn name_list(mut names: Vec<&str>) -> String {
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
    /// The block of `run` (calls of `batch`, newest first, at least one): their encodings one after the other,
    /// and what they hold, in one pass over them.
    fn of(batch: Calls<'_>, run: &[&BatchedCall]) -> Block {
        let bytes: usize = run.iter().map(|call| batch.encoded(call).len()).sum();
        let newest_at = run.iter().map(|call| call.at).max().unwrap_or_default();
        // Beside the calls' bytes: the block's start, and each call's start (its array, and its age in a few bytes).
        let mut body = Vec::with_capacity(bytes + 16 + 6 * run.len());
        start_block(&mut body, run.len(), newest_at);
        let (mut first_at, mut last_at, mut statuses, mut directions) = (i64::MAX, i64::MIN, 0, 0);
        let (mut app_ids, mut apis) = (Vec::new(), Vec::new());
        let mut previous: Option<&BatchedCall> = None;
        for &call in run {
            start_call(&mut body, newest_at, call.at);
            body.extend_from_slice(batch.encoded(call));
            (first_at, last_at) = (first_at.min(call.at), last_at.max(call.at));
            statuses |= status_bit(call.status);
            directions |= direction_bit(call.direction);
            // A block's calls come in runs of one App ID and API: their names are listed once per run, not per
            // call (and the list loses its repeats when it is written).
            if previous.is_none_or(|previous| !batch.same_names(previous, call)) {
                app_ids.push(batch.app_id(call));
                apis.push(batch.api(call));
            }
            previous = Some(call);
        }
        Block {
            first_at,
            last_at,
            calls: run.len() as i64,
            app_ids: name_list(app_ids),
            apis: name_list(apis),
            statuses,
            directions,
            body,
        }
    }

    /// `query` with the block's columns bound, in the order `first_at, last_at, calls, app_ids, apis, statuses,
    /// directions, body`.
    fn bind<'q>(&'q self, query: Query<'q>) -> Query<'q> {
        query
            .bind(self.first_at)
            .bind(self.last_at)
            .bind(self.calls)
            // Borrowed: the `Any` driver copies an owned `String` or `Vec<u8>` into the arguments, moved or not
            // (~110 instructions per logged call for the body), and takes a borrowed one as it is.
            .bind(self.app_ids.as_str())
            .bind(self.apis.as_str())
            .bind(self.statuses)
            .bind(self.directions)
            .bind(self.body.as_slice())
    }
}

/// A batch's blocks: one per project, its calls newest first (calls of the same millisecond, the later first).
/// The batch is ordered by reference: a stable sort of the calls in reverse arrival order, which arrive about in
/// time order, so it mostly finds them sorted already.
fn blocks_of(calls: Calls<'_>) -> Vec<(&ProjectId, Block)> {
    let mut order: Vec<&BatchedCall> = calls.calls.iter().rev().collect();
    order.sort_by(|a, b| a.project_id.cmp(&b.project_id).then(b.at.cmp(&a.at)));
    order.chunk_by(|a, b| a.project_id == b.project_id).map(|run| (&run[0].project_id, Block::of(calls, run))).collect()
}

/// How many rows each of the multi-row statements writing `rows` rows takes, at most `most` each: as many of
/// `most` as there are, then what remains in powers of two, the largest first. A statement's text says how many
/// rows it takes, and a connection keeps the last 100 texts it prepared (sqlx's statement cache). With the
/// remainder in one statement, the blocks' and the counts' texts could number 100 + 52: where batches vary, texts
/// were prepared again (a prepare seen in a profile took ~400,000 instructions) and evicted statements kept for
/// other work on the same connection. Here there are at most 8 per statement (100, then 64 down to 1).
pub(crate) fn statement_rows(rows: usize, most: usize) -> impl Iterator<Item = usize> {
    let most = most.max(1);
    let rest = rows % most;
    let powers = (0..usize::BITS).rev().map(|bit| 1 << bit).filter(move |power| rest & power != 0);
    std::iter::repeat_n(most, rows / most).chain(powers)
}

/// Adds the blocks of `calls` to the log, in the caller's transaction.
pub(crate) async fn insert(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    engine: Engine,
    calls: Calls<'_>,
) -> Result<()> {
    let mut blocks = blocks_of(calls).into_iter();
    for size in statement_rows(blocks.len(), BLOCKS_PER_INSERT) {
        let chunk: Vec<_> = blocks.by_ref().take(size).collect();
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
        for (project, block) in &chunk {
            query = block.bind(query.bind(project.as_str()));
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}

/// Replaces a stored block of `project`'s by the calls of it `keep` keeps, or removes it when none are kept.
async fn rewrite(
    executor: impl sqlx::Executor<'_, Database = sqlx::Any>,
    (project, id): (&ProjectId, i64),
    body: &[u8],
    keep: impl FnMut(&(usize, StoredCall<'_>)) -> bool,
) -> Result<()> {
    let mut kept = CallBatch::default();
    for (_, call) in decode(id, body)?.into_iter().enumerate().filter(keep) {
        kept.push(&call.logged(project));
    }
    if kept.is_empty() {
        sqlx::query("DELETE FROM api_call_blocks WHERE id = $1").bind(id).execute(executor).await?;
        return Ok(());
    }
    let run: Vec<&BatchedCall> = kept.all().calls.iter().collect();
    let block = Block::of(kept.all(), &run);
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
            .execute(&self.api_log.pool)
            .await?;
        let straddling: Vec<(String, i64, Vec<u8>)> =
            sqlx::query_as("SELECT project_id, id, body FROM api_call_blocks WHERE first_at < $1")
                .bind(before)
                .fetch_all(&self.api_log.pool)
                .await?;
        for (project, id, body) in straddling {
            let project = ProjectId::of(project);
            rewrite(&self.api_log.pool, (&project, id), &body, |(_, call)| call.at >= before).await?;
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
        .fetch_optional(&self.api_log.pool)
        .await?;
        let Some((last_at, id, newer)) = crossing else { return Ok(()) };
        sqlx::query("DELETE FROM api_call_blocks WHERE project_id = $1 AND (last_at, id) < ($2, $3)")
            .bind(project.as_str())
            .bind(last_at)
            .bind(id)
            .execute(&self.api_log.pool)
            .await?;
        let room = usize::try_from(keep - newer).unwrap_or_default();
        let body: Vec<u8> = sqlx::query_scalar("SELECT body FROM api_call_blocks WHERE id = $1")
            .bind(id)
            .fetch_one(&self.api_log.pool)
            .await?;
        rewrite(&self.api_log.pool, (project, id), &body, |(index, _)| *index < room).await
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
    async fn read(&self, tx: &mut ApiLogTx, from: Option<((i64, i64), bool)>, count: i64) -> Result<Vec<AnyRow>> {
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

impl ApiLogTx {
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
pub(crate) mod tests {
    use super::*;

    /// A call of `project` at `at`, its status and latency varying with it.
    pub(crate) fn call(project: &str, at: i64, app_id: &str, api: &'static str) -> ApiCall {
        ApiCall {
            project_id: ProjectId::received(project.to_owned()),
            at,
            app_id: app_id.to_owned(),
            target: None,
            api: api.into(),
            protocol: "http".into(),
            method: "GET".into(),
            path: format!("/v1.0/{api}/x/{at}"),
            component: Some("x".to_owned()),
            status: if at % 2 == 0 { 200 } else { 500 },
            grpc_code: None,
            latency_us: at,
            span: None,
            user_agent: Some("dapr-sdk-js".to_owned()),
            caller_addr: None,
            direction: CallDirection::FromApp,
            stream_ended: false,
        }
    }

    #[test]
    fn a_batch_becomes_a_block_per_project_newest_first_naming_what_it_holds() {
        let calls = [
            call("p2", 10, "cart", "state"),
            call("p1", 11, "orders", "state"),
            call("p1", 12, "orders", "pubsub"),
            call("p2", 13, "cart", "state"),
            call("p1", 13, "audit", "state"),
        ];
        let batch = CallBatch::of(&calls);
        let blocks = blocks_of(batch.all());
        let described: Vec<_> = blocks
            .iter()
            .map(|(project, block)| {
                let read: Vec<ApiCall> =
                    decode(1, &block.body).unwrap().into_iter().map(|call| call.to_call(project)).collect();
                (project.as_str(), (block.first_at, block.last_at, block.calls), &block.app_ids, &block.apis, read)
            })
            .collect();
        let (p1, p2) = (&described[0], &described[1]);
        assert_eq!((p1.0, p1.1, p1.2.as_str(), p1.3.as_str()), ("p1", (11, 13, 3), "|audit|orders|", "|pubsub|state|"));
        assert_eq!(p1.4, [calls[4].clone(), calls[2].clone(), calls[1].clone()]);
        assert_eq!((p2.0, p2.1, p2.2.as_str(), p2.3.as_str()), ("p2", (10, 13, 2), "|cart|", "|state|"));
        assert_eq!(p2.4, [calls[3].clone(), calls[0].clone()]);
        assert_eq!(blocks[0].1.statuses, status_bit(200) | status_bit(500));
    }

    #[test]
    fn calls_logged_out_of_time_order_are_put_back_in_it() {
        // As a publish is logged after the delivery it caused has started. The two calls at 6 come out the later
        // logged first.
        let logged =
            [("p3", 5, "a"), ("p1", 3, "a"), ("p3", 4, "a"), ("p3", 6, "first"), ("p1", 1, "a"), ("p2", 2, "a")];
        let mut calls: Vec<ApiCall> =
            logged.iter().map(|(project, at, app)| call(project, *at, app, "state")).collect();
        calls.push(call("p3", 6, "second", "state"));
        let batch = CallBatch::of(&calls);
        let blocks = blocks_of(batch.all());
        let read: Vec<(&str, Vec<(i64, String)>)> = blocks
            .iter()
            .map(|(project, block)| {
                let read = decode(1, &block.body).unwrap();
                (project.as_str(), read.iter().map(|call| (call.at, call.app_id.to_owned())).collect())
            })
            .collect();
        let at = |at: i64, app: &str| (at, app.to_owned());
        assert_eq!(read[0], ("p1", vec![at(3, "a"), at(1, "a")]));
        assert_eq!(read[1], ("p2", vec![at(2, "a")]));
        assert_eq!(read[2], ("p3", vec![at(6, "second"), at(6, "first"), at(5, "a"), at(4, "a")]));
    }

    #[test]
    fn calls_have_the_same_names_whether_neighbours_or_not() {
        let names = [("a", "state"), ("a", "state"), ("a", "pubsub"), ("b", "pubsub"), ("b", "pubsub"), ("a", "state")];
        // The first two calls are of two projects: names are compared whatever the project.
        let project = |at| if at == 1 { "p2" } else { "p1" };
        let calls: Vec<ApiCall> = names
            .into_iter()
            .enumerate()
            .map(|(at, (app_id, api))| call(project(at), at as i64, app_id, api))
            .collect();
        let batch = CallBatch::of(&calls);
        let all = batch.all();
        let same = |a: usize, b: usize| all.same_names(&all.calls[a], &all.calls[b]);
        // Neighbours, either way round, then calls apart.
        assert!(same(0, 1) && same(1, 0) && same(3, 4) && same(4, 3));
        assert!(!same(1, 2) && !same(2, 1) && !same(2, 3) && !same(4, 5));
        assert!(same(0, 5) && same(5, 1) && !same(0, 2) && !same(5, 3) && same(0, 0));
    }

    #[test]
    fn rows_are_written_by_statements_of_a_few_sizes() {
        for (rows, most) in [(0, 100), (1, 100), (100, 100), (427, 52), (999, 100), (5, 1), (3, 0)] {
            let sizes: Vec<usize> = statement_rows(rows, most).collect();
            assert_eq!(sizes.iter().sum::<usize>(), rows, "{rows} rows, {most} at most");
            assert!(sizes.iter().all(|&size| (1..=most.max(1)).contains(&size)), "{sizes:?}");
            assert!(sizes.is_sorted_by(|a, b| a >= b), "{sizes:?}");
        }
        assert_eq!(statement_rows(427, 52).collect::<Vec<_>>(), [52, 52, 52, 52, 52, 52, 52, 52, 8, 2, 1]);
        // Whatever a batch holds: 100, 64, 32, 16, 8, 4, 2 or 1 rows a statement.
        let sizes: std::collections::BTreeSet<usize> = (0..=1000).flat_map(|rows| statement_rows(rows, 100)).collect();
        assert_eq!(sizes.into_iter().collect::<Vec<_>>(), [1, 2, 4, 8, 16, 32, 64, 100]);
    }

    #[test]
    fn a_name_pattern_finds_whole_names_only() {
        assert_eq!(name_list(vec!["cart", "audit", "cart"]), "|audit|cart|");
        assert_eq!(name_pattern("order_1%"), "%|order\\_1\\%|%");
    }
}

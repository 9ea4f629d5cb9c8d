//! The query scan of `state.redis`: `SCAN` over the caller's prefix, one cursor step per batch.
//!
//! Redis keeps no order of keys, so pages come in the order `SCAN` visits them. A page that ends inside a
//! cursor's batch resumes at that cursor, skipping what it already returned (by [`key_digest`], so the token
//! does not quote keys) until the scan is past that batch's end: the same cursor may cover fewer buckets the
//! next time (other keys come and go, and batch sizes differ), so the skipping lasts until the cursor the
//! batch ended at, not just one step. `SCAN` returns every key that exists from the first page to the last
//! at least once; only while Redis shrinks its table can a key come back twice. Values are read with one
//! pipeline per batch; Redis does no filtering, so the worker evaluates every value of the batch.
//!
//! Measuring a prefix's stored bytes walks the same `SCAN` to its end, asking only each value's length. Listing
//! keys ([`super::StateStore::list_keys`]) walks it a bounded number of steps per page, the cursor as position.

use std::collections::HashSet;

use redis::Value as RedisValue;

use super::keys::FOREIGN_POSITION;
use super::redis::RedisStateStore;
use super::scan::{cursor_rank, key_digest, BatchOrder, Position, ScanBatch, ScanRequest, ScanRow};
use super::time::{now_ms, within_deadline};
use super::{KeyPage, KeyPosition, ListedKey, StateError, StoredItem};

/// The `SCAN MATCH` pattern of keys starting with `prefix`: its glob characters escaped.
fn pattern(prefix: &str) -> String {
    let mut pattern = String::with_capacity(prefix.len() + 1);
    for c in prefix.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('*');
    pattern
}

fn backend_error(err: redis::RedisError) -> StateError {
    StateError::Backend(format!("{}: {err}", RedisStateStore::COMPONENT_TYPE))
}

/// The item in an `HMGET data version` and `PTTL` answer; `None` when the key is gone, expired or not a state
/// item.
fn item_of(fields: RedisValue, remaining_ms: i64) -> Option<StoredItem> {
    let (value, etag): (Option<Vec<u8>>, Option<String>) = redis::from_redis_value(fields).ok()?;
    // PTTL answers -2 for a key that is gone and -1 for one without expiry.
    if remaining_ms == -2 {
        return None;
    }
    let expires_at = (remaining_ms >= 0).then(|| now_ms() + remaining_ms);
    Some(StoredItem { value: value?, etag: etag?, expires_at })
}

/// One `SCAN` step from `cursor` over the hashes (state items) whose keys start with `prefix`, asking for about
/// `count`: the next cursor (0 at the end) and the keys found.
async fn scan_step(
    connection: &mut redis::aio::ConnectionManager,
    cursor: u64,
    prefix: &str,
    count: usize,
) -> Result<(u64, Vec<String>), StateError> {
    let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
        .arg(cursor)
        .arg("MATCH")
        .arg(pattern(prefix))
        .arg("COUNT")
        .arg(count)
        .arg("TYPE")
        .arg("hash")
        .query_async(connection)
        .await
        .map_err(backend_error)?;
    // MATCH is a glob, escaped; the prefix itself decides.
    Ok((next, keys.into_iter().filter(|key| key.starts_with(prefix)).collect()))
}

/// Keys asked of `SCAN` per step when measuring.
const MEASURE_STEP: usize = 1000;

/// The most `SCAN` steps one page of a key listing takes: the walk covers every project's keys, so a project with
/// few of them gets short (even empty) pages with a cursor rather than one long request.
const LISTING_STEPS: usize = 32;

impl RedisStateStore {
    /// Bytes of the live items under `prefix` (see [`super::StateStore::stored_bytes`]). `SCAN MATCH` walks the
    /// whole keyspace, so this takes time in proportion to every project's keys, not only `prefix`'s: it is
    /// run on demand (usage) and when a project nears its quota, never periodically.
    pub(super) async fn measure(&self, prefix: &str) -> Result<u64, StateError> {
        let mut connection = self.connection.clone();
        let (mut cursor, mut total, mut counted) = (0u64, 0u64, HashSet::new());
        loop {
            // One deadline per step: the walk as a whole may take longer than one store operation.
            let (next, lengths) = within_deadline(Self::COMPONENT_TYPE, async {
                let (next, keys) = scan_step(&mut connection, cursor, prefix, MEASURE_STEP).await?;
                let mut pipeline = redis::pipe();
                for key in &keys {
                    pipeline.cmd("HEXISTS").arg(key).arg("data").cmd("HSTRLEN").arg(key).arg("data");
                }
                let answers: Vec<u64> = if keys.is_empty() {
                    Vec::new()
                } else {
                    pipeline.query_async(&mut connection).await.map_err(backend_error)?
                };
                let lengths: Vec<(String, u64)> = keys
                    .into_iter()
                    .zip(answers.chunks(2))
                    .filter(|(_, answer)| answer[0] == 1)
                    .map(|(key, answer)| (key, answer[1]))
                    .collect();
                Ok((next, lengths))
            })
            .await?;
            for (key, length) in lengths {
                // A key the walk meets twice (while Redis resizes its table) counts once.
                if counted.insert(key_digest(&key)) {
                    total += key.len() as u64 + length;
                }
            }
            if next == 0 {
                return Ok(total);
            }
            cursor = next;
        }
    }

    /// A page of the keys under `prefix` (see [`super::StateStore::list_keys`]): `SCAN` steps asking for as many
    /// keys as the page still lacks, until it is full, the scan ends or [`LISTING_STEPS`] were taken. A step is
    /// never split (Redis cannot resume inside one), so a page may hold a few more than `limit` keys.
    pub(super) async fn list_keys_page(
        &self,
        prefix: &str,
        from: &KeyPosition,
        limit: usize,
    ) -> Result<KeyPage, StateError> {
        let mut cursor = match from {
            KeyPosition::Start => 0,
            KeyPosition::Cursor(cursor) => *cursor,
            KeyPosition::After(_) => return Err(StateError::InvalidRequest(FOREIGN_POSITION.to_owned())),
        };
        let limit = limit.max(1);
        let mut connection = self.connection.clone();
        let mut listed: Vec<ListedKey> = Vec::new();
        for _ in 0..LISTING_STEPS {
            let wanted = limit.saturating_sub(listed.len()).max(1);
            let (next, found) = within_deadline(Self::COMPONENT_TYPE, async {
                let (next, keys) = scan_step(&mut connection, cursor, prefix, wanted).await?;
                let mut pipeline = redis::pipe();
                for key in &keys {
                    pipeline
                        .cmd("HSTRLEN")
                        .arg(key)
                        .arg("data")
                        .cmd("HGET")
                        .arg(key)
                        .arg("version")
                        .cmd("PTTL")
                        .arg(key);
                }
                let answers: Vec<RedisValue> = if keys.is_empty() {
                    Vec::new()
                } else {
                    pipeline.query_async(&mut connection).await.map_err(backend_error)?
                };
                let mut answers = answers.into_iter();
                let mut found = Vec::with_capacity(keys.len());
                for key in keys {
                    let (length, version, remaining) = (answers.next(), answers.next(), answers.next());
                    let length: u64 = length.and_then(|value| redis::from_redis_value(value).ok()).unwrap_or(0);
                    let version: Option<String> = version.and_then(|value| redis::from_redis_value(value).ok());
                    let remaining: i64 = remaining.and_then(|value| redis::from_redis_value(value).ok()).unwrap_or(-2);
                    // No version: not a state item (or deleted meanwhile); -2: gone.
                    let (Some(etag), false) = (version, remaining == -2) else { continue };
                    let expires_at = (remaining >= 0).then(|| now_ms() + remaining);
                    found.push(ListedKey { key, size: length, etag, expires_at });
                }
                Ok((next, found))
            })
            .await?;
            listed.extend(found);
            cursor = next;
            if cursor == 0 || listed.len() >= limit {
                break;
            }
        }
        listed.sort_by(|a, b| a.key.cmp(&b.key));
        listed.dedup_by(|a, b| a.key == b.key);
        Ok(KeyPage { keys: listed, next: (cursor != 0).then_some(KeyPosition::Cursor(cursor)) })
    }

    /// One `SCAN` step of a query at `request.after`, with the values of the keys it found.
    pub(super) async fn scan_batch(&self, request: &ScanRequest<'_>) -> Result<ScanBatch, StateError> {
        let (cursor, seen, until) = match request.after {
            Position::Start => (0, Vec::new(), 0),
            Position::Cursor { cursor, seen, until } => (*cursor, seen.clone(), *until),
            Position::After(_) => {
                return Err(StateError::InvalidRequest(
                    "page.token was not issued by this state store; send the token of the previous page".to_owned(),
                ))
            }
        };
        let count = request.max_rows.max(1);
        let mut connection = self.connection.clone();
        within_deadline(Self::COMPONENT_TYPE, async {
            let (next, mut keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(pattern(request.prefix))
                .arg("COUNT")
                .arg(count)
                .arg("TYPE")
                .arg("hash")
                .query_async(&mut connection)
                .await
                .map_err(backend_error)?;
            let skipped: HashSet<u64> = seen.iter().copied().collect();
            keys.retain(|key| key.starts_with(request.prefix) && !skipped.contains(&key_digest(key)));
            keys.sort();
            keys.dedup();
            let mut pipeline = redis::pipe();
            for key in &keys {
                pipeline.cmd("HMGET").arg(key).arg("data").arg("version").cmd("PTTL").arg(key);
            }
            let answers: Vec<RedisValue> = if keys.is_empty() {
                Vec::new()
            } else {
                pipeline.query_async(&mut connection).await.map_err(backend_error)?
            };
            let mut answers = answers.into_iter();
            let mut rows = Vec::with_capacity(keys.len());
            for key in keys {
                let (fields, remaining) = (answers.next(), answers.next());
                let remaining: i64 = remaining.and_then(|value| redis::from_redis_value(value).ok()).unwrap_or(-2);
                let item = fields.and_then(|fields| item_of(fields, remaining));
                let size = item.as_ref().map_or(0, |item| item.value.len() as u64);
                rows.push(ScanRow { key, item, size });
            }
            // Keys returned before are skipped until the scan is past the batch they were returned from.
            let still_seen = !seen.is_empty() && cursor_rank(next) < cursor_rank(until);
            let next_position = (next != 0).then(|| match still_seen {
                true => Position::Cursor { cursor: next, seen: seen.clone(), until },
                false => Position::Cursor { cursor: next, seen: Vec::new(), until: 0 },
            });
            let until = if seen.is_empty() || cursor_rank(next) > cursor_rank(until) { next } else { until };
            let order = BatchOrder::Cursor { cursor, seen, until };
            Ok(ScanBatch { rows, next: next_position, order, examined: count as u64 })
        })
        .await
    }
}

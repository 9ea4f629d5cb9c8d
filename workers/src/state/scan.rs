//! What a store hands the query engine ([`super::page`]): its items under a key prefix, one bounded batch at a
//! time, from a position the engine can write into a page token and give back later.
//!
//! A batch is small by construction (the engine asks for a number of rows and adapts it to their size), so
//! a query never holds more than one batch and one page, whatever the store holds; and a SQL store runs one
//! short statement per batch, so other requests on the same connection go between them.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::query::Query;
use super::StoredItem;

/// Where a scan starts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Position {
    /// At the first key under the prefix.
    Start,
    /// After this key, for stores that scan in key order (the SQL stores). In a page token the key is the
    /// app's key (the prefix is the caller's own and is put back when the token is read).
    After(String),
    /// At this server-side cursor (Redis `SCAN`), skipping the keys whose [`key_digest`] is listed (returned by
    /// an earlier page that stopped inside a batch) until the scan reaches `until`.
    Cursor {
        /// The cursor as the server gave it.
        cursor: u64,
        /// Digests of keys already returned.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        seen: Vec<u64>,
        /// The cursor after the last batch that returned keys in `seen` (0: the end of the scan).
        #[serde(default)]
        until: u64,
    },
}

/// Where a `SCAN` cursor is in the scan: Redis visits buckets in the order of the cursor's bits reversed, and
/// 0 is the end.
pub fn cursor_rank(cursor: u64) -> u128 {
    if cursor == 0 {
        u128::MAX
    } else {
        u128::from(cursor.reverse_bits())
    }
}

/// A short digest of a stored key, so a token can name what it already returned without quoting it.
pub fn key_digest(key: &str) -> u64 {
    let digest = Sha256::digest(key.as_bytes());
    u64::from_be_bytes(digest[..8].try_into().expect("a SHA-256 digest has 8 bytes"))
}

/// One batch to scan.
#[derive(Clone, Copy, Debug)]
pub struct ScanRequest<'a> {
    /// Only keys starting with this (the caller's prefix); a scan never looks outside it.
    pub prefix: &'a str,
    /// Where to start.
    pub after: &'a Position,
    /// The query: stores that can evaluate part of its filter themselves leave out items it cannot select.
    pub query: &'a Query,
    /// Most items to look at.
    pub max_rows: usize,
}

/// One item looked at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScanRow {
    /// The full stored key.
    pub key: String,
    /// The item, or `None` when the store left it out (expired, or sure not to match the filter): its value
    /// never leaves the store.
    pub item: Option<StoredItem>,
    /// Bytes of the value, counted against the query's budget whether or not the value was sent.
    pub size: u64,
}

/// How positions inside a batch are written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BatchOrder {
    /// Rows in key order: the position after a row is its key.
    Keys,
    /// Rows of one server cursor's batch (Redis `SCAN`), the keys of `seen` skipped already.
    Cursor {
        /// The cursor this batch was read at.
        cursor: u64,
        /// Digests of keys that earlier pages returned, skipped until the scan reaches `until`.
        seen: Vec<u64>,
        /// The later of the `until` the batch was read with and the batch's own next cursor.
        until: u64,
    },
}

/// Items looked at in one call of [`super::StateStore::scan`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScanBatch {
    /// The rows, in scan order.
    pub rows: Vec<ScanRow>,
    /// Where the next batch starts; `None` when the scan has reached the end of the prefix.
    pub next: Option<Position>,
    /// How positions inside this batch are written.
    pub order: BatchOrder,
    /// Items the store looked at to produce this batch (at least `rows.len()`), counted against the budget.
    pub examined: u64,
}

impl ScanBatch {
    /// Where a scan resumes after the rows up to `index`; `None` when nothing follows.
    pub fn after(&self, index: usize) -> Option<Position> {
        if index + 1 >= self.rows.len() {
            return self.next.clone();
        }
        match &self.order {
            BatchOrder::Keys => Some(Position::After(self.rows[index].key.clone())),
            BatchOrder::Cursor { cursor, seen, until } => {
                let mut seen = seen.clone();
                seen.extend(self.rows[..=index].iter().map(|row| key_digest(&row.key)));
                Some(Position::Cursor { cursor: *cursor, seen, until: *until })
            }
        }
    }
}

//! Listing a store's keys under a prefix without their values, a bounded page at a time: what the console's KV
//! explorer shows of a project's managed `kvstore` (through [`crate::explorer`]).
//!
//! SQL stores read one index range (the prefix's, in byte order) of `limit + 1` rows, so a page costs the same
//! however many other projects share the table; the position is the last key answered. Redis keeps no order: a
//! page is made of whole `SCAN` steps over the prefix's `MATCH` pattern, and the position is the cursor.

/// One key found, with what it holds but not its value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListedKey {
    /// The full stored key.
    pub key: String,
    /// Bytes of the value.
    pub size: u64,
    /// The current ETag.
    pub etag: String,
    /// When the item expires (Unix milliseconds), if a TTL was set.
    pub expires_at: Option<i64>,
}

/// Where a listing starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyPosition {
    /// At the first key under the prefix.
    Start,
    /// After this full key (stores that list in key order: SQL, memory).
    After(String),
    /// At this `SCAN` cursor (Redis).
    Cursor(u64),
}

/// One page of a listing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyPage {
    /// The keys, in key order (Redis: in key order within the page).
    pub keys: Vec<ListedKey>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<KeyPosition>,
}

/// Why a position is refused by a store that does not issue that kind.
pub(crate) const FOREIGN_POSITION: &str =
    "the continuation token was not issued by this listing; start again without it";

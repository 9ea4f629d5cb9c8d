//! What a write demands and what it changes, decided once for every backend.
//!
//! A set, a delete and each operation of a transaction become a [`Write`]: the key, the [`Precondition`]
//! the item currently stored must meet (from the ETag and the concurrency mode), and the [`Change`].
//! Backends only enforce preconditions (in their own medium: a map lookup, a SQL `WHERE`, a Lua check)
//! and apply changes; none of them re-derives Dapr's rules.

use async_trait::async_trait;

use super::{Concurrency, DeleteRequest, SetRequest, StateError, TransactionOperation};

/// What the live item under a key must be for a write to go ahead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Precondition<'a> {
    /// Anything, including nothing: a last-write-wins set, or a delete without an ETag.
    None,
    /// No live item: a first-write set without an ETag.
    Absent,
    /// A live item whose ETag is exactly this one.
    Etag(&'a str),
}

impl<'a> Precondition<'a> {
    fn derive(
        etag: &'a Option<String>,
        absent_unless_etag: bool,
        is_well_formed_etag: fn(&str) -> bool,
    ) -> Result<Self, StateError> {
        // Dapr clients send "" for "no ETag".
        match etag.as_deref().filter(|etag| !etag.is_empty()) {
            Some(etag) if is_well_formed_etag(etag) => Ok(Precondition::Etag(etag)),
            Some(etag) => Err(StateError::EtagInvalid(format!("'{etag}' is not an ETag this state store issues"))),
            None if absent_unless_etag => Ok(Precondition::Absent),
            None => Ok(Precondition::None),
        }
    }

    /// Whether an item with `current_etag` (`None`: no live item) meets the precondition.
    pub(crate) fn admits(self, current_etag: Option<&str>) -> bool {
        match self {
            Precondition::None => true,
            Precondition::Absent => current_etag.is_none(),
            Precondition::Etag(expected) => current_etag == Some(expected),
        }
    }

    /// The error for a write on `key` whose precondition the stored item did not meet.
    pub(crate) fn refusal(self, key: &str) -> StateError {
        StateError::EtagMismatch(match self {
            Precondition::Absent => format!("key {key} already exists and the write is first-write without an ETag"),
            Precondition::None | Precondition::Etag(_) => {
                format!("the ETag does not match the stored item of key {key}")
            }
        })
    }
}

/// What a write does to the item.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Change<'a> {
    /// Stores the value; `ttl_seconds` as in [`SetRequest`].
    Put { value: &'a [u8], ttl_seconds: Option<u64> },
    /// Removes the item.
    Remove,
}

/// One checked write: key, precondition and change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Write<'a> {
    pub(crate) key: &'a str,
    pub(crate) precondition: Precondition<'a>,
    pub(crate) change: Change<'a>,
}

impl<'a> Write<'a> {
    fn set(request: &'a SetRequest, is_well_formed_etag: fn(&str) -> bool) -> Result<Self, StateError> {
        let first_write = request.concurrency == Concurrency::FirstWrite;
        Ok(Write {
            key: &request.key,
            precondition: Precondition::derive(&request.etag, first_write, is_well_formed_etag)?,
            change: Change::Put { value: &request.value, ttl_seconds: request.ttl_seconds },
        })
    }

    fn delete(request: &'a DeleteRequest, is_well_formed_etag: fn(&str) -> bool) -> Result<Self, StateError> {
        // Deleting without an ETag never conflicts, whatever the concurrency mode: there is nothing to overwrite.
        Ok(Write {
            key: &request.key,
            precondition: Precondition::derive(&request.etag, false, is_well_formed_etag)?,
            change: Change::Remove,
        })
    }

    fn of_operation(
        operation: &'a TransactionOperation,
        is_well_formed_etag: fn(&str) -> bool,
    ) -> Result<Self, StateError> {
        match operation {
            TransactionOperation::Upsert(request) => Write::set(request, is_well_formed_etag),
            TransactionOperation::Delete(request) => Write::delete(request, is_well_formed_etag),
        }
    }
}

/// The one thing a backend must provide for set, delete and transact.
#[async_trait]
pub(crate) trait ApplyWrites: Send + Sync {
    /// Whether `etag` has the form of the ETags this backend issues.
    fn is_well_formed_etag(etag: &str) -> bool;

    /// Applies `writes` in order, all or none: a write whose precondition fails (judged against the state
    /// the earlier writes left) makes the whole batch fail with its refusal. Returns the new ETag of every
    /// [`Change::Put`], in order.
    async fn apply(&self, writes: &[Write<'_>]) -> Result<Vec<String>, StateError>;
}

/// [`super::StateStore::set`] for any backend.
pub(crate) async fn set<S: ApplyWrites>(store: &S, request: &SetRequest) -> Result<String, StateError> {
    let write = Write::set(request, S::is_well_formed_etag)?;
    let mut etags = store.apply(&[write]).await?;
    etags.pop().ok_or_else(|| StateError::Backend(format!("the write of key {} reported no ETag", request.key)))
}

/// [`super::StateStore::delete`] for any backend.
pub(crate) async fn delete<S: ApplyWrites>(store: &S, request: &DeleteRequest) -> Result<(), StateError> {
    let write = Write::delete(request, S::is_well_formed_etag)?;
    store.apply(&[write]).await.map(drop)
}

/// [`super::StateStore::transact`] for any backend. Malformed ETags are refused before the backend is touched.
pub(crate) async fn transact<S: ApplyWrites>(store: &S, operations: &[TransactionOperation]) -> Result<(), StateError> {
    let writes = operations
        .iter()
        .map(|operation| Write::of_operation(operation, S::is_well_formed_etag))
        .collect::<Result<Vec<_>, _>>()?;
    if writes.is_empty() {
        return Ok(());
    }
    store.apply(&writes).await.map(drop)
}

/// ETag form of the backends that count versions (in-memory, Redis): a decimal number.
pub(crate) fn is_version_number(etag: &str) -> bool {
    etag.parse::<u64>().is_ok()
}

//! Paging of every list route, in the shape the workflow listing set: `limit` (1-1000, default 100) and
//! `continuationToken` in the query, `{"items": [...], "continuationToken"?}` in the answer. The store pages
//! by key (`outrigger_store::PageRequest`), so a page costs the same however many entries there are.

use outrigger_store::{PageRequest, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiError, ApiResult};

// The workflow listing pages with the same bounds, so that one sentence documents every list.
const _: () = assert!(MAX_PAGE_SIZE == outrigger_workflow::MAX_PAGE);

/// Which page of a listing.
#[derive(Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct PageQuery {
    /// Entries per page (1-1000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// Where the page starts: the `continuationToken` of the previous page.
    continuation_token: Option<String>,
}

impl PageQuery {
    /// The page to read; a limit outside 1-1000 is 400.
    pub(crate) fn request(self) -> ApiResult<PageRequest> {
        Ok(PageRequest { limit: page_limit(self.limit)?, continuation: self.continuation_token })
    }
}

/// The page size a `limit` parameter asks for: the default when absent, 400 outside 1-1000 (rather than
/// quietly answering another size than asked).
pub(crate) fn page_limit(limit: Option<u32>) -> ApiResult<u32> {
    match limit {
        None => Ok(DEFAULT_PAGE_SIZE),
        Some(limit @ 1..=MAX_PAGE_SIZE) => Ok(limit),
        Some(limit) => Err(ApiError::bad_request(
            "invalid_query",
            format!("limit {limit} is out of range: ask for 1 to {MAX_PAGE_SIZE} entries per page"),
        )),
    }
}

/// A page of a listing.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Page<T> {
    /// The entries, in the listing's order.
    pub items: Vec<T>,
    /// Pass as `continuationToken` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub continuation_token: Option<String>,
}

impl<T> Page<T> {
    /// A store page, each entry converted for the answer.
    pub(crate) fn of<S>(page: outrigger_store::Page<S>, convert: impl FnMut(S) -> T) -> Page<T> {
        let page = page.map(convert);
        Page { items: page.items, continuation_token: page.continuation }
    }
}

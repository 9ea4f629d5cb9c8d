//! Path hygiene daprd applies before routing, which SDKs rely on: Python builds
//! `DAPR_HTTP_ENDPOINT + "/v1.0/..."` verbatim, so an endpoint with a trailing slash yields `//v1.0/...`.

use axum::extract::Request;
use axum::http::uri::{PathAndQuery, Uri};

/// Collapses repeated slashes and drops a trailing slash, keeping the query.
pub fn clean_path(mut req: Request) -> Request {
    let path = req.uri().path();
    let needs_cleaning = path.contains("//") || (path.len() > 1 && path.ends_with('/'));
    if !needs_cleaning {
        return req;
    }
    let mut cleaned = String::with_capacity(path.len());
    for segment in path.split('/').filter(|segment| !segment.is_empty()) {
        cleaned.push('/');
        cleaned.push_str(segment);
    }
    if cleaned.is_empty() {
        cleaned.push('/');
    }
    if let Some(query) = req.uri().query() {
        cleaned.push('?');
        cleaned.push_str(query);
    }
    let mut parts = req.uri().clone().into_parts();
    parts.path_and_query = PathAndQuery::try_from(cleaned).ok();
    if let Ok(uri) = Uri::from_parts(parts) {
        *req.uri_mut() = uri;
    }
    req
}

//! The web console: the files of `web/`, built into the binary, served at `/` (the page) and `/console/...`
//! (its scripts and styles) beside the API they call.
//!
//! The console has no build step: `web/` holds plain ES modules and CSS, so `cargo build` is all it needs.
//! A debug build reads `web/` from disk on each request (edit and reload); a release build carries the files.
//! Every answer forbids framing and inline script (`Content-Security-Policy`), so text a tenant controls (a
//! path in the API log, a user agent) can only ever be shown, never run.

use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use rust_embed::RustEmbed;

#[derive(RustEmbed)]
#[folder = "../web/"]
struct Files;

/// No script, style, image or connection from anywhere but this origin; never inside a frame.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                      connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// `/` and `/console/{file}`. Paths of the API are not touched: they stay the API's.
pub(crate) fn router() -> Router {
    Router::new().route("/", get(|headers: HeaderMap| async move { serve("index.html", &headers) })).route(
        "/console/{*file}",
        get(|Path(file): Path<String>, headers: HeaderMap| async move { serve(&file, &headers) }),
    )
}

fn serve(file: &str, request: &HeaderMap) -> Response {
    let Some(found) = Files::get(file) else {
        return (StatusCode::NOT_FOUND, protect(HeaderMap::new()), "no such file in the console").into_response();
    };
    // Revalidated on every load (`no-cache`), answered 304 while unchanged: a new binary's console is never
    // mixed with the scripts of an old one.
    let etag = format!("\"{}\"", hex::encode(&found.metadata.sha256_hash()[..16]));
    let mut headers = protect(HeaderMap::new());
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(value) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, value);
    }
    if request.get(header::IF_NONE_MATCH).and_then(|value| value.to_str().ok()) == Some(etag.as_str()) {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    if let Ok(value) = HeaderValue::from_str(found.metadata.mimetype()) {
        headers.insert(header::CONTENT_TYPE, value);
    }
    (headers, found.data.into_owned()).into_response()
}

fn protect(mut headers: HeaderMap) -> HeaderMap {
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(POLICY));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers
}

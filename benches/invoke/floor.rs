//! The invocation's floor (`common/floor.rs`): `POST /v1.0/invoke/{app}/method/{method}` forwarded to the echo app
//! through hyper's own client, as Outrigger's invocation is (`crates/outbound/src/connect.rs`), the request's body
//! and the app's answer streamed through as they are.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// Where the floor forwards to.
struct App {
    client: Client<HttpConnector, Body>,
    /// `http://<address>/`.
    base: String,
}

/// The floor's routes, forwarding to the app at `app_addr`.
pub(crate) async fn router(app_addr: String) -> anyhow::Result<axum::Router> {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let app =
        App { client: Client::builder(TokioExecutor::new()).build(connector), base: format!("http://{app_addr}/") };
    Ok(axum::Router::new().route("/v1.0/invoke/{app}/method/{*method}", post(forward)).with_state(Arc::new(app)))
}

async fn forward(
    State(app): State<Arc<App>>,
    Path((_app_id, method)): Path<(String, String)>,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let mut forwarded = axum::http::Request::post(format!("{}{method}", app.base));
    if let Some(content_type) = parts.headers.get(CONTENT_TYPE) {
        forwarded = forwarded.header(CONTENT_TYPE, content_type);
    }
    let forwarded = match forwarded.body(body) {
        Ok(forwarded) => forwarded,
        Err(err) => return (StatusCode::BAD_REQUEST, err.to_string()).into_response(),
    };
    match app.client.request(forwarded).await {
        Ok(answer) => answer.map(Body::new).into_response(),
        Err(err) => (StatusCode::BAD_GATEWAY, err.to_string()).into_response(),
    }
}

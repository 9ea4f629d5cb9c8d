//! `outrigger login --sso`: single sign-on in a browser. The CLI waits on a loopback port; the control API's
//! OpenID Connect login sends the browser through the identity provider and back to that port with a refresh
//! token, which the CLI swaps at once for its own session (using up the copy left in the browser's history).

use std::time::Duration;

use anyhow::{bail, Context as _};
use axum::extract::{Query, State};
use axum::response::Html;
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use tokio::sync::mpsc;

use super::api::ApiClient;

/// How long the CLI waits for the browser to come back.
const WAIT: Duration = Duration::from_secs(300);

/// What the control API sends the browser back with.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Returned {
    refresh_token: String,
}

async fn returned(State(sender): State<mpsc::Sender<String>>, Query(returned): Query<Returned>) -> Html<&'static str> {
    let _ = sender.send(returned.refresh_token).await;
    Html("<!doctype html><title>Outrigger</title><p>Signed in. You can close this tab and go back to the terminal.</p>")
}

/// Signs in through the browser and answers the refresh token the control API handed back.
pub async fn refresh_token_from_browser(
    api: &ApiClient,
    org: Option<&str>,
    open_browser: bool,
) -> anyhow::Result<String> {
    let listener =
        tokio::net::TcpListener::bind("127.0.0.1:0").await.context("listening on a loopback port for the browser")?;
    let return_to = format!("http://{}/signed-in", listener.local_addr()?);
    let mut start = api.url(&["auth", "oidc", "login"]);
    start.query_pairs_mut().append_pair("returnTo", &return_to);
    if let Some(org) = org {
        start.query_pairs_mut().append_pair("organization", org);
    }
    println!("Open this address in a browser to sign in (waiting {} minutes):", WAIT.as_secs() / 60);
    println!("{start}");
    if open_browser {
        open(start.as_str());
    }
    let (sender, mut received) = mpsc::channel(1);
    let app = Router::new().route("/signed-in", get(returned)).with_state(sender);
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let token = tokio::time::timeout(WAIT, received.recv()).await;
    server.abort();
    match token {
        Ok(Some(token)) => Ok(token),
        Ok(None) => bail!("the loopback listener stopped before the browser came back"),
        Err(_) => {
            bail!("no sign-in came back within {} minutes: run `outrigger login --sso` again", WAIT.as_secs() / 60)
        }
    }
}

/// Asks the desktop to open `url`; where there is none, the address printed above is enough.
fn open(url: &str) {
    let opener = if cfg!(target_os = "macos") { "open" } else { "xdg-open" };
    let opened = std::process::Command::new(opener)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
    if opened.is_err() {
        eprintln!("note: could not start {opener}; open the address above yourself");
    }
}

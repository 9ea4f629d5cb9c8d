//! `outrigger-test-oidc EMAIL`: the test provider as a process, for tests outside Rust (the console's browser
//! tests). It listens on a free loopback port, signs in EMAIL at every authorization, prints one JSON line
//! `{"issuer": ..., "clientId": ..., "clientSecret": ..., "redirectUrl": ...}` once it listens, and runs until
//! killed.

use outrigger_test_oidc::{Provider, CLIENT_ID, CLIENT_SECRET, REDIRECT_URL};

#[tokio::main]
async fn main() {
    let Some(email) = std::env::args().nth(1) else {
        eprintln!("usage: outrigger-test-oidc EMAIL (the user every sign-in is for)");
        std::process::exit(2);
    };
    let provider = Provider::start().await;
    provider.sign_in_as(&email);
    let ready = serde_json::json!({
        "issuer": provider.issuer, "clientId": CLIENT_ID, "clientSecret": CLIENT_SECRET, "redirectUrl": REDIRECT_URL,
    });
    println!("{ready}");
    std::future::pending::<()>().await;
}

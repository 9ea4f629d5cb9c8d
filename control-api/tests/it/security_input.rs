//! Security group: hostile documents. A YAML alias bomb or a deeply nested document answers 400 at once and
//! stores nothing.

use axum::http::StatusCode;
use serde_json::json;

use crate::both_engines;
use crate::harness::TestApp;

both_engines!(security_yaml_bombs_and_deep_nesting_are_refused_without_storing_anything);

async fn security_yaml_bombs_and_deep_nesting_are_refused_without_storing_anything(app: TestApp) {
    app.project("bombed").await;
    let mut bomb = String::from("a0: &a0 [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n");
    for level in 1..10 {
        let previous = level - 1;
        bomb.push_str(&format!(
            "a{level}: &a{level} [*a{previous},*a{previous},*a{previous},*a{previous},*a{previous},*a{previous},*a{previous},*a{previous},*a{previous}]\n"
        ));
    }
    let document = format!(
        "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: bomb\nspec:\n  type: state.in-memory\n  version: v1\n{}",
        bomb.lines().map(|line| format!("  {line}\n")).collect::<String>()
    );
    let started = std::time::Instant::now();
    let answer = app.put_yaml("/api/v1/projects/bombed/components/bomb", &document).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.text());
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "the bomb was expanded");
    let answer = app.apply("bombed", "", &document).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.text());

    let nested = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let document = format!(
        "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: deep\nspec:\n  type: state.in-memory\n  version: v1\n  extra: {nested}\n"
    );
    let answer = app.put_yaml("/api/v1/projects/bombed/components/deep", &document).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.text());
    let answer = app.post_json("/api/v1/projects/bombed/appids", json!({"name": "x", "config": nested})).await;
    assert!(answer.status.is_client_error(), "{}", answer.text());
    let listed = app.get("/api/v1/projects/bombed/components").await.expect(StatusCode::OK).json();
    assert_eq!(listed["items"], json!([]), "nothing was stored");
}

//! Two projects side by side: nothing of one is reachable, or even detectable, through the other.

use axum::http::StatusCode;
use serde_json::json;

use crate::both_engines;
use crate::fixtures::{APPLICATION, STATESTORE};
use crate::harness::TestApp;

both_engines!(projects_do_not_see_each_other);

async fn projects_do_not_see_each_other(app: TestApp) {
    app.project("alpha").await;
    app.project("beta").await;
    app.apply("alpha", "", APPLICATION).await.expect(StatusCode::OK);
    let created = app
        .post_json("/api/v1/projects/alpha/appids", json!({ "name": "secret-app" }))
        .await
        .expect(StatusCode::CREATED)
        .json();
    let token_id = created["tokenId"].as_str().unwrap();

    // Alpha's names answer in beta exactly as names that exist nowhere.
    let probes = [
        ("/api/v1/projects/beta/appids/secret-app", "/api/v1/projects/beta/appids/never-existed"),
        ("/api/v1/projects/beta/appids/secret-app/tokens", "/api/v1/projects/beta/appids/never-existed/tokens"),
        ("/api/v1/projects/beta/components/orderpubsub", "/api/v1/projects/beta/components/never-existed"),
        ("/api/v1/projects/beta/subscriptions/order-routing", "/api/v1/projects/beta/subscriptions/never-existed"),
        ("/api/v1/projects/beta/configurations/appconfig", "/api/v1/projects/beta/configurations/never-existed"),
    ];
    for (alpha_name, absent) in probes {
        let through_beta = app.get(alpha_name).await;
        let nowhere = app.get(absent).await;
        assert_eq!(through_beta.status, StatusCode::NOT_FOUND, "{alpha_name}");
        let normalise = |text: String| {
            text.replace("secret-app", "X")
                .replace("orderpubsub", "X")
                .replace("order-routing", "X")
                .replace("appconfig", "X")
                .replace("never-existed", "X")
        };
        assert_eq!(normalise(through_beta.text()), normalise(nowhere.text()), "{alpha_name}");
    }
    app.delete(&format!("/api/v1/projects/beta/appids/secret-app/tokens/{token_id}"))
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
    app.delete("/api/v1/projects/beta/appids/secret-app").await.expect_error(StatusCode::NOT_FOUND, "not_found");
    app.patch_json("/api/v1/projects/beta/appids/secret-app", json!({ "appEndpoint": "http://evil.example" }))
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
    app.delete("/api/v1/projects/beta/components/orderpubsub").await.expect_error(StatusCode::NOT_FOUND, "not_found");

    // Beta cannot scope to alpha's App IDs or subscribe to alpha's broker.
    let scoped = format!("{STATESTORE}scopes:\n- secret-app\n");
    app.put_yaml("/api/v1/projects/beta/components/statestore", &scoped)
        .await
        .expect_error(StatusCode::BAD_REQUEST, "invalid_resource");
    let subscription = "apiVersion: dapr.io/v2alpha1\nkind: Subscription\nmetadata:\n  name: s\nspec:\n  pubsubname: orderpubsub\n  topic: orders\n  routes:\n    default: /x\n";
    app.put_yaml("/api/v1/projects/beta/subscriptions/s", subscription)
        .await
        .expect_error(StatusCode::BAD_REQUEST, "invalid_resource");

    // Lists and exports of beta mention nothing of alpha.
    assert_eq!(app.export("beta").await, "");
    for collection in ["appids", "components", "subscriptions", "resiliencies", "configurations", "httpendpoints"] {
        let list = app.get(&format!("/api/v1/projects/beta/{collection}")).await.expect(StatusCode::OK).json();
        assert_eq!(list["items"], json!([]), "{collection}");
    }

    // Same names in both projects are independent resources.
    app.apply("beta", "", APPLICATION).await.expect(StatusCode::OK);
    app.delete("/api/v1/projects/beta").await.expect(StatusCode::NO_CONTENT);
    app.get("/api/v1/projects/alpha/appids/secret-app").await.expect(StatusCode::OK);
    app.get("/api/v1/projects/alpha/subscriptions/order-routing").await.expect(StatusCode::OK);
    assert_eq!(app.get("/api/v1/projects/alpha/appids/secret-app/tokens").await.json()["items"][0]["id"], token_id);
}

//! Jobs in the control-plane database: claims that give each due job to one claimer at a time and fence a
//! claimer whose lease ran out, and the control API's view of an App ID's jobs.

use axum::http::StatusCode;
use outrigger_store::TryOutcome;

use crate::both_engines;
use crate::harness::TestApp;

both_engines!(
    due_jobs_are_claimed_once_and_late_claimers_are_fenced,
    the_control_api_shows_and_deletes_an_app_ids_jobs
);

const SPEC: &str = r#"{"schedule":"@every 1s","dueTime":null,"repeats":null,"ttl":null,"data":null,"failurePolicy":null,"scheduledAt":0}"#;

async fn due_jobs_are_claimed_once_and_late_claimers_are_fenced(app: TestApp) {
    app.project("shop").await;
    app.app_id("shop", "orders").await;
    let project = app.store.begin().await.unwrap().project("shop").await.unwrap();
    let mut tx = app.store.begin().await.unwrap();
    for index in 0..40 {
        tx.put_job(&project.id, "orders", &format!("job-{index:02}"), SPEC, 1_000, false).await.unwrap();
    }
    tx.put_job(&project.id, "orders", "later", SPEC, 10_000, false).await.unwrap();
    tx.commit().await.unwrap();

    // Two claimers at once: together they take every due job, never the same one, and none not yet due.
    let (first, second) = tokio::join!(
        app.store.claim_due_jobs(5_000, "a", 65_000, 25, None),
        app.store.claim_due_jobs(5_000, "b", 65_000, 25, None),
    );
    let (first, second) = (first.unwrap(), second.unwrap());
    let mut names: Vec<_> = first.iter().chain(&second).map(|job| job.name.clone()).collect();
    names.sort();
    names.dedup();
    assert_eq!((names.len(), first.len() + second.len()), (40, 40), "each due job claimed exactly once");
    assert!(app.store.claim_due_jobs(5_000, "c", 65_000, 100, None).await.unwrap().is_empty(), "leased jobs wait");
    assert_eq!(app.store.next_job_due(None).await.unwrap(), Some(1_000));

    // A lease that ran out goes to the next claimer; the first one can no longer record anything.
    let job = first[0].clone();
    let taken_over = app.store.claim_due_jobs(70_000, "c", 130_000, 100, None).await.unwrap();
    assert!(taken_over.iter().any(|claimed| claimed.name == job.name));
    let next = TryOutcome::Next {
        due_at: 2_000,
        occurrence_due: 2_000,
        fired: 1,
        tries: 0,
        failed: false,
        outcome: "delivered".into(),
    };
    assert!(!app.store.finish_job_try(&job, "a", &next).await.unwrap(), "a fenced claimer wrote");
    assert!(app.store.finish_job_try(&job, "c", &next).await.unwrap());
    let stored = app.store.begin().await.unwrap().job(&project.id, "orders", &job.name).await.unwrap().unwrap();
    assert_eq!((stored.due_at, stored.fired, stored.lease_owner.as_deref()), (2_000, 1, None));
    assert!(!app.store.finish_job_try(&stored, "c", &TryOutcome::Over).await.unwrap(), "the lease was released");

    // A pool's claimer takes only its projects' jobs.
    assert!(app.store.claim_due_jobs(200_000, "d", 260_000, 100, Some("elsewhere")).await.unwrap().is_empty());
}

async fn the_control_api_shows_and_deletes_an_app_ids_jobs(app: TestApp) {
    app.project("shop").await;
    app.app_id("shop", "orders").await;
    let project = app.store.begin().await.unwrap().project("shop").await.unwrap();
    let mut tx = app.store.begin().await.unwrap();
    tx.put_job(&project.id, "orders", "nightly", SPEC, 1_000, false).await.unwrap();
    tx.commit().await.unwrap();
    // A failed statement ends a PostgreSQL transaction: the refusal gets one of its own.
    let mut tx = app.store.begin().await.unwrap();
    let taken = tx.put_job(&project.id, "orders", "nightly", SPEC, 1_000, false).await;
    assert!(
        matches!(taken, Err(outrigger_store::Error::AlreadyExists { .. })),
        "names are unique per App ID: {taken:?}"
    );
    drop(tx);

    let listed = app.get("/api/v1/projects/shop/appids/orders/jobs").await.expect(StatusCode::OK).json();
    assert_eq!(listed["items"][0]["name"], "nightly", "{listed}");
    assert_eq!(listed["items"][0]["schedule"], "@every 1s");
    assert_eq!(listed["items"][0]["nextFire"], "1970-01-01T00:00:01Z");
    let job = app.get("/api/v1/projects/shop/appids/orders/jobs/nightly").await.expect(StatusCode::OK).json();
    assert_eq!((job["fired"].clone(), job["failures"].clone()), (serde_json::json!(0), serde_json::json!(0)));
    app.get("/api/v1/projects/shop/appids/nobody/jobs").await.expect_error(StatusCode::NOT_FOUND, "not_found");
    app.delete("/api/v1/projects/shop/appids/orders/jobs/nightly").await.expect(StatusCode::NO_CONTENT);
    app.get("/api/v1/projects/shop/appids/orders/jobs/nightly").await.expect_error(StatusCode::NOT_FOUND, "not_found");
    app.delete("/api/v1/projects/shop/appids/orders/jobs/nightly")
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
}

//! Jobs in the control-plane database: claims that give each due job to one claimer at a time and fence a
//! claimer whose lease ran out, the control API's view of an App ID's jobs, and `bindings.cron` components handed
//! to the scheduler for as long as they exist.

use axum::http::StatusCode;
use outrigger_store::TryOutcome;

use crate::both_engines;
use crate::harness::TestApp;

both_engines!(
    due_jobs_are_claimed_once_and_late_claimers_are_fenced,
    the_control_api_shows_and_deletes_an_app_ids_jobs,
    a_cron_binding_is_scheduled_while_its_component_is_one
);

const SPEC: &str = r#"{"schedule":"@every 1s","dueTime":null,"repeats":null,"ttl":null,"data":null,"failurePolicy":null,"scheduledAt":0}"#;

async fn due_jobs_are_claimed_once_and_late_claimers_are_fenced(app: TestApp) {
    app.project("shop").await;
    app.app_id("shop", "orders").await;
    let project =
        app.store.begin().await.unwrap().project(&outrigger_store::OrgId::default_org(), "shop").await.unwrap();
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
    let project =
        app.store.begin().await.unwrap().project(&outrigger_store::OrgId::default_org(), "shop").await.unwrap();
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

fn cron_component(schedule: &str) -> String {
    format!(
        "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: tick\nspec:\n  type: bindings.cron\n  \
         version: v1\n  metadata:\n  - name: schedule\n    value: \"{schedule}\"\n"
    )
}

async fn a_cron_binding_is_scheduled_while_its_component_is_one(app: TestApp) {
    app.project("shop").await;
    app.app_id("shop", "orders").await;
    let path = "/api/v1/projects/shop/components/tick";
    let refused = app.put_yaml(path, &cron_component("every minute")).await;
    let message = refused.expect_error(StatusCode::BAD_REQUEST, "invalid_resource");
    assert!(message.contains("spec.metadata.schedule"), "{message}");
    assert_eq!(app.store.next_job_due(None).await.unwrap(), None, "a refused component schedules nothing");

    let before = chrono::Utc::now().timestamp_millis();
    app.put_yaml(path, &cron_component("@every 1h")).await.expect(StatusCode::CREATED);
    let due = app.store.next_job_due(None).await.unwrap().expect("the component is scheduled");
    assert!((before + 3_600_000..before + 3_700_000).contains(&due), "first occurrence one period on: {due}");
    let claimed = app.store.claim_due_jobs(due, "scheduler", due + 60_000, 10, None).await.unwrap();
    assert_eq!(claimed.iter().map(|job| job.cron_binding()).collect::<Vec<_>>(), [Some("tick")]);
    // It is no App ID's job.
    let listed = app.get("/api/v1/projects/shop/appids/orders/jobs").await.expect(StatusCode::OK).json();
    assert_eq!(listed["items"], serde_json::json!([]), "{listed}");

    // Replaced by a component of another type, it fires no more; nor once deleted.
    let redis =
        "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: tick\nspec:\n  type: bindings.redis\n  \
                 version: v1\n  metadata:\n  - name: redisHost\n    value: 127.0.0.1:6379\n";
    app.put_yaml(path, redis).await.expect(StatusCode::OK);
    assert_eq!(app.store.next_job_due(None).await.unwrap(), None);
    app.put_yaml(path, &cron_component("*/5 * * * *")).await.expect(StatusCode::OK);
    assert!(app.store.next_job_due(None).await.unwrap().is_some());
    app.delete(path).await.expect(StatusCode::NO_CONTENT);
    assert_eq!(app.store.next_job_due(None).await.unwrap(), None);
}

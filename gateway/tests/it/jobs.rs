//! The jobs API over HTTP and gRPC, and the scheduler firing jobs at the app as daprd does (`POST /job/{name}`
//! with the job's data), retrying by the failure policy; jobs of one App ID or project unseen by another.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use dapr::dapr::proto::common::v1 as common;
use dapr::dapr::proto::runtime::v1 as pb;
use serde_json::json;
use tokio::sync::mpsc;

use crate::harness::{serve, with_token, TestGateway};

/// Long enough for a job due now to fire on a loaded machine; a scheduler that never fires fails by then.
const FIRES_WITHIN: Duration = Duration::from_secs(15);

/// An app that records `(job name, body)` of each trigger and answers `status`.
async fn app_receiving_jobs(status: StatusCode) -> (String, mpsc::UnboundedReceiver<(String, String)>) {
    let (sender, receiver) = mpsc::unbounded_channel();
    let app = Router::new()
        .route(
            "/job/{name}",
            post(
                move |State(sender): State<mpsc::UnboundedSender<(String, String)>>,
                      Path(name): Path<String>,
                      body: Bytes| async move {
                    sender.send((name, String::from_utf8_lossy(&body).into_owned())).unwrap();
                    status
                },
            ),
        )
        .with_state(sender);
    (serve(app).await, receiver)
}

async fn next_trigger(received: &mut mpsc::UnboundedReceiver<(String, String)>) -> (String, String) {
    tokio::time::timeout(FIRES_WITHIN, received.recv()).await.expect("the job fired").unwrap()
}

#[tokio::test]
async fn a_job_scheduled_over_http_fires_at_the_app_with_its_data() {
    let gateway = TestGateway::start().await;
    let (endpoint, mut received) = app_receiving_jobs(StatusCode::OK).await;
    let token = gateway.app_at("shop", "orders", Some(endpoint)).await;
    let body = json!({"dueTime": "0s", "data": {"orderId": 7}, "failurePolicy": {"drop": {}}});
    let answer = gateway.http("POST", "/v1.0-alpha1/jobs/send-receipt", Some(&token), Some(&body.to_string())).await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT, "{}", String::from_utf8_lossy(&answer.body));
    let (name, data) = next_trigger(&mut received).await;
    assert_eq!(
        (name.as_str(), serde_json::from_str::<serde_json::Value>(&data).unwrap()),
        ("send-receipt", json!({"orderId": 7}))
    );
    // A job with only a due time fires once; it is gone once the scheduler recorded the trigger.
    let deadline = tokio::time::Instant::now() + FIRES_WITHIN;
    let message = loop {
        let answer = gateway.http("GET", "/v1.0-alpha1/jobs/send-receipt", Some(&token), None).await;
        if answer.status == StatusCode::INTERNAL_SERVER_ERROR {
            break answer.dapr_error(StatusCode::INTERNAL_SERVER_ERROR, "DAPR_SCHEDULER_GET_JOB");
        }
        assert!(tokio::time::Instant::now() < deadline, "the job outlived its only occurrence");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(message.contains("not found"), "{message}");
}

#[tokio::test]
#[allow(deprecated, reason = "the Alpha1 rpcs are what older SDKs call; both names are served")]
async fn jobs_are_read_listed_and_deleted_as_scheduled() {
    let gateway = TestGateway::start().await;
    let token = gateway.app("shop", "orders").await;
    let body = json!({"schedule": "@every 1h", "repeats": 3, "ttl": "24h", "data": "nightly",
        "failurePolicy": {"constant": {"interval": "5s", "maxRetries": 2}}});
    for version in ["v1.0-alpha1", "v1.0"] {
        let path = format!("/{version}/jobs/report-{version}");
        assert_eq!(
            gateway.http("POST", &path, Some(&token), Some(&body.to_string())).await.status,
            StatusCode::NO_CONTENT
        );
    }
    let job = gateway.http("GET", "/v1.0/jobs/report-v1.0", Some(&token), None).await.json();
    assert_eq!(
        job,
        json!({
            "name": "report-v1.0", "schedule": "@every 1h", "repeats": 3, "ttl": "24h",
            "data": {"@type": "type.googleapis.com/google.protobuf.Value", "value": "nightly"},
            "failurePolicy": {"constant": {"interval": "5s", "maxRetries": 2}},
        })
    );
    let again = gateway.http("POST", "/v1.0/jobs/report-v1.0", Some(&token), Some(&body.to_string())).await;
    assert!(again.dapr_error(StatusCode::CONFLICT, "DAPR_SCHEDULER_SCHEDULE_JOB").contains("overwrite"));
    let replace = json!({"schedule": "@daily", "overwrite": true});
    assert_eq!(
        gateway.http("POST", "/v1.0/jobs/report-v1.0", Some(&token), Some(&replace.to_string())).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(gateway.http("GET", "/v1.0/jobs/report-v1.0", Some(&token), None).await.json()["schedule"], "@daily");

    let mut client = gateway.grpc_client().await;
    let listed = client.list_jobs_alpha1(with_token(pb::ListJobsRequestAlpha1 {}, &token)).await.unwrap().into_inner();
    let names: Vec<_> = listed.jobs.iter().map(|job| job.name.as_str()).collect();
    assert_eq!(names, ["report-v1.0", "report-v1.0-alpha1"]);
    let prefix = pb::DeleteJobsByPrefixRequestAlpha1 { name_prefix: Some("report-v1.0-".into()) };
    client.delete_jobs_by_prefix_alpha1(with_token(prefix, &token)).await.unwrap();
    assert_eq!(
        gateway.http("DELETE", "/v1.0/jobs/report-v1.0", Some(&token), None).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        gateway.http("DELETE", "/v1.0/jobs/report-v1.0", Some(&token), None).await.status,
        StatusCode::NO_CONTENT,
        "deleting twice succeeds"
    );
    let listed = client.list_jobs(with_token(pb::ListJobsRequest {}, &token)).await.unwrap().into_inner();
    assert!(listed.jobs.is_empty(), "{listed:?}");
}

#[tokio::test]
async fn bad_jobs_get_daprds_errors_and_nothing_is_stored() {
    let gateway = TestGateway::start().await;
    let token = gateway.app("shop", "orders").await;
    let cases = [
        (json!({"data": 1}), StatusCode::BAD_REQUEST, "DAPR_SCHEDULER_SCHEDULE_EMPTY", "Schedule is empty"),
        (
            json!({"name": "other", "dueTime": "1s"}),
            StatusCode::BAD_REQUEST,
            "DAPR_SCHEDULER_JOB_NAME",
            "Set the job name in the url only",
        ),
        (json!({"schedule": "every minute"}), StatusCode::BAD_REQUEST, "DAPR_SCHEDULER_SCHEDULE_JOB", "schedule"),
        (json!({"dueTime": "soon"}), StatusCode::BAD_REQUEST, "DAPR_SCHEDULER_SCHEDULE_JOB", "dueTime"),
        (
            json!({"schedule": "@every 1m", "ttl": "10s"}),
            StatusCode::BAD_REQUEST,
            "DAPR_SCHEDULER_SCHEDULE_JOB",
            "never fire",
        ),
        (json!({"schedule": "@hourly", "repeats": -1}), StatusCode::BAD_REQUEST, "ERR_MALFORMED_REQUEST", "repeats"),
    ];
    for (body, status, code, part) in cases {
        let message = gateway
            .http("POST", "/v1.0/jobs/bad", Some(&token), Some(&body.to_string()))
            .await
            .dapr_error(status, code);
        assert!(message.contains(part), "{body}: {message}");
    }
    let mut client = gateway.grpc_client().await;
    let err = client
        .schedule_job(with_token(pb::ScheduleJobRequest { job: None, overwrite: false }, &token))
        .await
        .unwrap_err();
    assert_eq!((err.code(), err.message()), (tonic::Code::InvalidArgument, "Job is empty"));
    let unnamed = pb::ScheduleJobRequest {
        job: Some(pb::Job { due_time: Some("1s".into()), ..Default::default() }),
        overwrite: false,
    };
    let err = client.schedule_job(with_token(unnamed, &token)).await.unwrap_err();
    assert_eq!((err.code(), err.message()), (tonic::Code::InvalidArgument, "Name is empty"));
    let err = client.get_job(with_token(pb::GetJobRequest { name: String::new() }, &token)).await.unwrap_err();
    assert_eq!(err.message(), "Name is empty");
    let listed = client.list_jobs(with_token(pb::ListJobsRequest {}, &token)).await.unwrap().into_inner();
    assert!(listed.jobs.is_empty(), "a refused job was stored: {listed:?}");
}

#[tokio::test]
#[allow(deprecated, reason = "the Alpha1 rpcs are what older SDKs call; both names are served")]
async fn a_failing_trigger_is_retried_by_the_failure_policy() {
    let gateway = TestGateway::start().await;
    let (endpoint, mut received) = app_receiving_jobs(StatusCode::INTERNAL_SERVER_ERROR).await;
    let token = gateway.app_at("shop", "orders", Some(endpoint)).await;
    let mut client = gateway.grpc_client().await;
    let policy = common::JobFailurePolicy {
        policy: Some(common::job_failure_policy::Policy::Constant(common::JobFailurePolicyConstant {
            interval: Some(prost_types::Duration { seconds: 0, nanos: 100_000_000 }),
            max_retries: Some(2),
        })),
    };
    let job = pb::Job {
        name: "flaky".into(),
        due_time: Some("0s".into()),
        failure_policy: Some(policy),
        ..Default::default()
    };
    client
        .schedule_job_alpha1(with_token(pb::ScheduleJobRequest { job: Some(job), overwrite: false }, &token))
        .await
        .unwrap();
    for _ in 0..3 {
        assert_eq!(next_trigger(&mut received).await.0, "flaky");
    }
    // Three tries in all (one and two retries), then the occurrence is given up and the job, which had one, ends.
    let more = tokio::time::timeout(Duration::from_millis(800), received.recv()).await;
    assert!(more.is_err(), "a fourth try came: {more:?}");
}

/// Jobs are the App ID's: another App ID of the project, or an App ID of the same name in another project,
/// neither sees nor deletes them.
#[tokio::test]
async fn security_jobs_are_invisible_across_app_ids_and_projects() {
    let gateway = TestGateway::start().await;
    let owner = gateway.app("shop", "orders").await;
    let neighbour = gateway.app("shop", "payments").await;
    let stranger = gateway.app("rival", "orders").await;
    let body = json!({"schedule": "@daily"}).to_string();
    assert_eq!(
        gateway.http("POST", "/v1.0/jobs/nightly", Some(&owner), Some(&body)).await.status,
        StatusCode::NO_CONTENT
    );
    for token in [&neighbour, &stranger] {
        let answer = gateway.http("GET", "/v1.0/jobs/nightly", Some(token), None).await;
        assert!(answer.dapr_error(StatusCode::INTERNAL_SERVER_ERROR, "DAPR_SCHEDULER_GET_JOB").contains("not found"));
        assert_eq!(
            gateway.http("DELETE", "/v1.0/jobs/nightly", Some(token), None).await.status,
            StatusCode::NO_CONTENT
        );
        let mut client = gateway.grpc_client().await;
        let listed = client.list_jobs(with_token(pb::ListJobsRequest {}, token)).await.unwrap().into_inner();
        assert!(listed.jobs.is_empty());
        let prefix = pb::DeleteJobsByPrefixRequest { name_prefix: None };
        client.delete_jobs_by_prefix(with_token(prefix, token)).await.unwrap();
    }
    assert_eq!(gateway.http("GET", "/v1.0/jobs/nightly", Some(&owner), None).await.json()["schedule"], "@daily");
}

//! Tests of the process's metrics.

use super::*;

/// The labels of App ID `app_id` of the project named `project`, whose id is `prj_<project>`.
pub(crate) fn tenant(project: &'static str, app_id: &'static str) -> TenantLabels<'static> {
    let project_id = Box::leak(format!("prj_{project}").into_boxed_str());
    TenantLabels::new(project, project_id, app_id)
}

#[test]
fn grpc_codes_have_their_canonical_names() {
    assert_eq!(grpc_code_name(5), "NOT_FOUND");
    assert_eq!(grpc_code_name(99), "UNKNOWN");
}

#[test]
fn pubsub_and_cache_series_keep_daprds_names() {
    let metrics = Metrics::new();
    metrics.set_tenant_limit(1);
    let elapsed = Duration::from_millis(3);
    metrics.pubsub_publish(tenant("p1", "a"), ("pubsub", "orders"), true, elapsed);
    metrics.pubsub_delivery(tenant("p1", "a"), ("pubsub", "orders"), "retry", elapsed);
    metrics.delivery_lag(tenant("p1", "a"), ("pubsub", "orders"), Duration::from_millis(40));
    // A second tenant is past the limit: its topic is not named either.
    metrics.pubsub_publish(tenant("p2", "b"), ("pubsub", "secret-topic"), false, elapsed);
    metrics.cache_lookup(CacheName::WorkerComponents, true);
    metrics.cache_lookup(CacheName::WorkerComponents, true);
    metrics.cache_lookup(CacheName::GatewayDirectory, false);
    metrics.store_timeout("state.redis");
    metrics.set_token_cache_ttl(Duration::from_secs(2));
    let text = metrics.render();
    for series in [
        r#"dapr_component_pubsub_egress_count{app_id="a",component="pubsub",project="p1",project_id="prj_p1",success="true",topic="orders"} 1"#,
        r#"dapr_component_pubsub_egress_count{app_id="other",component="pubsub",project="other",project_id="other",success="false",topic="other"} 1"#,
        r#"dapr_component_pubsub_ingress_count{app_id="a",component="pubsub",process_status="retry",project="p1",project_id="prj_p1",status="",topic="orders"} 1"#,
        r#"outrigger_pubsub_delivery_lag_seconds_bucket{app_id="a",component="pubsub",project="p1",project_id="prj_p1",topic="orders",le="0.05"} 1"#,
        r#"outrigger_cache_lookups_total{cache="worker_components",result="hit"} 2"#,
        r#"outrigger_cache_lookups_total{cache="gateway_directory",result="miss"} 1"#,
        r#"outrigger_store_timeouts_total{component_type="state.redis"} 1"#,
        "outrigger_token_cache_ttl_seconds 2",
    ] {
        assert!(text.contains(series), "{series} missing from:\n{text}");
    }
    assert!(!text.contains("secret-topic"));
}

#[test]
fn metrics_turned_off_count_nothing() {
    let metrics = Metrics::new();
    metrics.turn_off();
    metrics.http_call(tenant("p1", "a"), "GET", 200, Duration::from_micros(300));
    metrics.grpc_call(tenant("p1", "a"), "/dapr.proto.runtime.v1.Dapr/GetState", 0, Duration::from_micros(300));
    metrics.cache_lookup(CacheName::WorkerComponents, true);
    let _in_queue = metrics.worker_call("state");
    metrics.runtime().workflow_operation(tenant("p1", "a"), WorkflowOperation::CreateWorkflow, true, Duration::ZERO);
    let text = metrics.render();
    for name in [
        "dapr_http_server_request_count{",
        "dapr_grpc_io_server_completed_rpcs{",
        "outrigger_cache_lookups_total{",
        "outrigger_worker_queue_depth{",
        "dapr_runtime_workflow_operation_count{",
    ] {
        assert!(!text.contains(name), "{name} counted with metrics off:\n{text}");
    }
}

#[test]
fn tenants_past_the_limit_share_one_series() {
    let metrics = Metrics::new();
    metrics.set_tenant_limit(2);
    for app in ["a", "b", "c", "d"] {
        metrics.http_call(tenant("p1", app), "GET", 200, Duration::from_micros(300));
    }
    metrics.http_call(tenant("p1", "a"), "GET", 200, Duration::from_micros(300));
    let text = metrics.render();
    assert!(
        text.contains(
            r#"dapr_http_server_request_count{app_id="a",method="GET",project="p1",project_id="prj_p1",status="200"} 2"#
        ),
        "{text}"
    );
    assert!(text.contains(
        r#"dapr_http_server_request_count{app_id="b",method="GET",project="p1",project_id="prj_p1",status="200"} 1"#
    ));
    assert!(
        text.contains(r#"dapr_http_server_request_count{app_id="other",method="GET",project="other",project_id="other",status="200"} 2"#)
    );
    assert!(!text.contains(r#"app_id="c""#) && !text.contains(r#"app_id="d""#));
    assert!(text.contains("outrigger_metrics_tenants_folded_total 2"));
    assert!(text
        .contains(r#"dapr_http_server_latency_bucket{app_id="a",method="GET",project="p1",project_id="prj_p1",status="200",le="0.5"} 2"#));
}

#[test]
fn projects_of_one_name_in_two_organizations_keep_their_own_series() {
    let metrics = Metrics::new();
    let elapsed = Duration::from_micros(300);
    let first = TenantLabels::new("shop", "prj_first", "orders");
    let second = TenantLabels::new("shop", "prj_second", "orders");
    metrics.http_call(first, "GET", 200, elapsed);
    metrics.http_call(first, "GET", 200, elapsed);
    metrics.http_call(second, "GET", 200, elapsed);
    metrics.pubsub_publish(second, ("pubsub", "orders"), true, elapsed);
    let text = metrics.render();
    let count = |id: &str| {
        format!(
            r#"dapr_http_server_request_count{{app_id="orders",method="GET",project="shop",project_id="{id}",status="200"}}"#
        )
    };
    assert!(text.contains(&format!("{} 2", count("prj_first"))), "{text}");
    assert!(text.contains(&format!("{} 1", count("prj_second"))), "{text}");
    assert!(!text.contains(r#"project_id="prj_first",success"#), "{text}");
}

#[test]
fn tenants_past_the_limit_are_counted_in_one_cached_series_whatever_they_name() {
    let metrics = Metrics::new();
    metrics.set_tenant_limit(1);
    let elapsed = Duration::from_millis(3);
    metrics.pubsub_publish(tenant("p0", "a"), ("pubsub", "orders"), true, elapsed);
    for n in 1..=50 {
        let project = Box::leak(format!("p{n}").into_boxed_str());
        metrics.pubsub_publish(tenant(project, "b"), ("pubsub", &format!("topic-{n}")), true, elapsed);
    }
    // The first tenant's series, and one for all the folded tenants' topics: not one per topic.
    assert_eq!(metrics.pubsub_egress.cache.read().unwrap().len(), 2);
    assert_eq!(metrics.tenants.read().unwrap().len(), 1);
    let text = metrics.render();
    let folded = r#"dapr_component_pubsub_egress_count{app_id="other",component="pubsub",project="other",project_id="other",success="true",topic="other"} 50"#;
    assert!(text.contains(folded), "{text}");
    assert!(text.contains("outrigger_metrics_tenants_folded_total 50"), "{text}");
}

//! Tests of the process's runtime series.

use super::*;

fn labels(policy: PolicyKind, target: (&'static str, &'static str)) -> PolicyLabels<'static> {
    PolicyLabels { resiliency: "callee-policies", policy, direction: FlowDirection::Outbound, target }
}

#[test]
fn workflow_series_keep_daprds_names_and_labels() {
    let metrics = Metrics::new();
    let runtime = metrics.runtime();
    let ms = Duration::from_millis;
    runtime.workflow_operation("p1", "a", WorkflowOperation::CreateWorkflow, true, ms(2));
    runtime.workflow_operation("p1", "a", WorkflowOperation::AddEvent, false, ms(2));
    runtime.workflow_operation("p1", "a", WorkflowOperation::AddEvent, false, ms(3));
    runtime.workflow_execution("p1", "a", "checkout", ExecutionStatus::Success, ms(1500));
    runtime.workflow_execution("p1", "a", "checkout", ExecutionStatus::Terminated, ms(20));
    runtime.workflow_scheduling("p1", "a", "checkout", ms(7));
    runtime.activity_operation("p1", "a", "charge", ExecutionStatus::Recoverable, ms(1));
    runtime.activity_execution("p1", "a", "charge", ExecutionStatus::Failed, ms(40));
    let text = metrics.render();
    for series in [
        r#"dapr_runtime_workflow_operation_count{app_id="a",operation="create_workflow",project="p1",status="success"} 1"#,
        r#"dapr_runtime_workflow_operation_count{app_id="a",operation="add_event",project="p1",status="failed"} 2"#,
        r#"dapr_runtime_workflow_operation_latency_bucket{app_id="a",operation="add_event",project="p1",status="failed",le="2.5"} 1"#,
        r#"dapr_runtime_workflow_execution_count{app_id="a",project="p1",status="success",workflow_name="checkout"} 1"#,
        r#"dapr_runtime_workflow_execution_count{app_id="a",project="p1",status="terminated",workflow_name="checkout"} 1"#,
        r#"dapr_runtime_workflow_execution_latency_bucket{app_id="a",project="p1",status="success",workflow_name="checkout",le="1000"} 0"#,
        r#"dapr_runtime_workflow_execution_latency_bucket{app_id="a",project="p1",status="success",workflow_name="checkout",le="2500"} 1"#,
        r#"dapr_runtime_workflow_scheduling_latency_bucket{app_id="a",project="p1",workflow_name="checkout",le="10"} 1"#,
        r#"dapr_runtime_workflow_activity_operation_count{activity_name="charge",app_id="a",project="p1",status="recoverable"} 1"#,
        r#"dapr_runtime_workflow_activity_execution_count{activity_name="charge",app_id="a",project="p1",status="failed"} 1"#,
        r#"dapr_runtime_workflow_activity_execution_latency_sum{activity_name="charge",app_id="a",project="p1",status="failed"} 40"#,
    ] {
        assert!(text.contains(series), "{series} missing from:\n{text}");
    }
    // daprd's scheduling latency has no status.
    assert!(!text.contains("dapr_runtime_workflow_scheduling_latency_count{app_id=\"a\",project=\"p1\",status"));
}

#[test]
fn resiliency_series_keep_daprds_names_and_labels() {
    let metrics = Metrics::new();
    let runtime = metrics.runtime();
    let tenant = ("p1", "caller");
    runtime.resiliency(tenant, labels(PolicyKind::Retry, ("app", "callee")), None, false);
    runtime.resiliency(tenant, labels(PolicyKind::Retry, ("app", "callee")), None, true);
    runtime.resiliency(tenant, labels(PolicyKind::Retry, ("app", "callee")), None, true);
    runtime.resiliency(tenant, labels(PolicyKind::Timeout, ("Statestore", "kv")), None, true);
    let breaker = labels(PolicyKind::CircuitBreaker, ("app", "fragile"));
    runtime.resiliency(tenant, breaker, Some(BreakerState::Closed), false);
    runtime.resiliency(tenant, breaker, Some(BreakerState::Open), true);
    let inbound = PolicyLabels { direction: FlowDirection::Inbound, ..labels(PolicyKind::Retry, ("Pubsub", "ps")) };
    runtime.resiliency(tenant, inbound, None, false);
    let text = metrics.render();
    let (app, name) = (r#"app_id="caller""#, r#"name="callee-policies""#);
    for series in [
        format!(
            r#"dapr_resiliency_count{{{app},flow_direction="outbound",{name},policy="retry",project="p1",status="",target="app_callee"}} 1"#
        ),
        format!(
            r#"dapr_resiliency_activations_total{{{app},flow_direction="outbound",{name},policy="retry",project="p1",status="",target="app_callee"}} 2"#
        ),
        format!(
            r#"dapr_resiliency_activations_total{{{app},flow_direction="outbound",{name},policy="timeout",project="p1",status="",target="Statestore_kv"}} 1"#
        ),
        format!(
            r#"dapr_resiliency_count{{{app},flow_direction="outbound",{name},policy="circuitbreaker",project="p1",status="closed",target="app_fragile"}} 1"#
        ),
        format!(
            r#"dapr_resiliency_activations_total{{{app},flow_direction="outbound",{name},policy="circuitbreaker",project="p1",status="open",target="app_fragile"}} 1"#
        ),
        format!(
            r#"dapr_resiliency_cb_state{{{app},flow_direction="outbound",{name},policy="circuitbreaker",project="p1",status="open",target="app_fragile"}} 1"#
        ),
        format!(
            r#"dapr_resiliency_cb_state{{{app},flow_direction="outbound",{name},policy="circuitbreaker",project="p1",status="closed",target="app_fragile"}} 0"#
        ),
        format!(
            r#"dapr_resiliency_cb_state{{{app},flow_direction="outbound",{name},policy="circuitbreaker",project="p1",status="unknown",target="app_fragile"}} 0"#
        ),
        format!(
            r#"dapr_resiliency_count{{{app},flow_direction="inbound",{name},policy="retry",project="p1",status="",target="Pubsub_ps"}} 1"#
        ),
    ] {
        assert!(text.contains(&series), "{series} missing from:\n{text}");
    }
}

#[test]
fn tenants_past_the_limit_keep_no_names_of_their_own() {
    let metrics = Metrics::new();
    metrics.set_tenant_limit(1);
    let runtime = metrics.runtime();
    let ms = Duration::from_millis;
    runtime.workflow_execution("p1", "a", "kept-flow", ExecutionStatus::Success, ms(5));
    for (project, app) in [("p2", "b"), ("p3", "c")] {
        runtime.workflow_operation(project, app, WorkflowOperation::PurgeWorkflow, true, ms(1));
        runtime.workflow_execution(project, app, "secret-flow", ExecutionStatus::Failed, ms(5));
        runtime.workflow_scheduling(project, app, "secret-flow", ms(5));
        runtime.activity_execution(project, app, "secret-activity", ExecutionStatus::Success, ms(5));
        runtime.activity_operation(project, app, "secret-activity", ExecutionStatus::Success, ms(5));
        let policy = PolicyLabels {
            resiliency: "secret-policies",
            policy: PolicyKind::CircuitBreaker,
            direction: FlowDirection::Outbound,
            target: ("app", "secret-app"),
        };
        runtime.resiliency((project, app), policy, Some(BreakerState::HalfOpen), true);
    }
    let text = metrics.render();
    for series in [
        r#"dapr_runtime_workflow_execution_count{app_id="a",project="p1",status="success",workflow_name="kept-flow"} 1"#,
        r#"dapr_runtime_workflow_operation_count{app_id="other",operation="purge_workflow",project="other",status="success"} 2"#,
        r#"dapr_runtime_workflow_execution_count{app_id="other",project="other",status="failed",workflow_name="other"} 2"#,
        r#"dapr_runtime_workflow_scheduling_latency_count{app_id="other",project="other",workflow_name="other"} 2"#,
        r#"dapr_runtime_workflow_activity_execution_count{activity_name="other",app_id="other",project="other",status="success"} 2"#,
        r#"dapr_runtime_workflow_activity_operation_count{activity_name="other",app_id="other",project="other",status="success"} 2"#,
        r#"dapr_resiliency_activations_total{app_id="other",flow_direction="outbound",name="other",policy="circuitbreaker",project="other",status="half-open",target="other"} 2"#,
        r#"dapr_resiliency_cb_state{app_id="other",flow_direction="outbound",name="other",policy="circuitbreaker",project="other",status="half-open",target="other"} 1"#,
    ] {
        assert!(text.contains(series), "{series} missing from:\n{text}");
    }
    assert!(!text.contains("secret"), "{text}");
    assert!(!text.contains(r#"project="p2""#) && !text.contains(r#"project="p3""#));
}

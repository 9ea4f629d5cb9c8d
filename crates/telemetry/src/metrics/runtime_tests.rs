//! Tests of the process's runtime series.

use super::*;
use crate::metrics::tests::tenant;

fn labels(policy: PolicyKind, target: (&'static str, &'static str)) -> PolicyLabels<'static> {
    PolicyLabels { resiliency: "callee-policies", policy, direction: FlowDirection::Outbound, target }
}

#[test]
fn workflow_series_keep_daprds_names_and_labels() {
    let metrics = Metrics::new();
    let runtime = metrics.runtime();
    let ms = Duration::from_millis;
    runtime.workflow_operation(tenant("p1", "a"), WorkflowOperation::CreateWorkflow, true, ms(2));
    runtime.workflow_operation(tenant("p1", "a"), WorkflowOperation::AddEvent, false, ms(2));
    runtime.workflow_operation(tenant("p1", "a"), WorkflowOperation::AddEvent, false, ms(3));
    runtime.workflow_execution(tenant("p1", "a"), "checkout", ExecutionStatus::Success, ms(1500));
    runtime.workflow_execution(tenant("p1", "a"), "checkout", ExecutionStatus::Terminated, ms(20));
    runtime.workflow_scheduling(tenant("p1", "a"), "checkout", ms(7));
    runtime.activity_operation(tenant("p1", "a"), "charge", ExecutionStatus::Recoverable, ms(1));
    runtime.activity_execution(tenant("p1", "a"), "charge", ExecutionStatus::Failed, ms(40));
    let text = metrics.render();
    for series in [
        r#"dapr_runtime_workflow_operation_count{app_id="a",operation="create_workflow",project="p1",project_id="prj_p1",status="success"} 1"#,
        r#"dapr_runtime_workflow_operation_count{app_id="a",operation="add_event",project="p1",project_id="prj_p1",status="failed"} 2"#,
        r#"dapr_runtime_workflow_operation_latency_bucket{app_id="a",operation="add_event",project="p1",project_id="prj_p1",status="failed",le="2.5"} 1"#,
        r#"dapr_runtime_workflow_execution_count{app_id="a",project="p1",project_id="prj_p1",status="success",workflow_name="checkout"} 1"#,
        r#"dapr_runtime_workflow_execution_count{app_id="a",project="p1",project_id="prj_p1",status="terminated",workflow_name="checkout"} 1"#,
        r#"dapr_runtime_workflow_execution_latency_bucket{app_id="a",project="p1",project_id="prj_p1",status="success",workflow_name="checkout",le="1000"} 0"#,
        r#"dapr_runtime_workflow_execution_latency_bucket{app_id="a",project="p1",project_id="prj_p1",status="success",workflow_name="checkout",le="2500"} 1"#,
        r#"dapr_runtime_workflow_scheduling_latency_bucket{app_id="a",project="p1",project_id="prj_p1",workflow_name="checkout",le="10"} 1"#,
        r#"dapr_runtime_workflow_activity_operation_count{activity_name="charge",app_id="a",project="p1",project_id="prj_p1",status="recoverable"} 1"#,
        r#"dapr_runtime_workflow_activity_execution_count{activity_name="charge",app_id="a",project="p1",project_id="prj_p1",status="failed"} 1"#,
        r#"dapr_runtime_workflow_activity_execution_latency_sum{activity_name="charge",app_id="a",project="p1",project_id="prj_p1",status="failed"} 40"#,
    ] {
        assert!(text.contains(series), "{series} missing from:\n{text}");
    }
    // daprd's scheduling latency has no status.
    assert!(!text.contains(
        "dapr_runtime_workflow_scheduling_latency_count{app_id=\"a\",project=\"p1\",project_id=\"prj_p1\",status"
    ));
}

#[test]
fn resiliency_series_keep_daprds_names_and_labels() {
    let metrics = Metrics::new();
    let runtime = metrics.runtime();
    let caller = tenant("p1", "caller");
    runtime.resiliency(caller, labels(PolicyKind::Retry, ("app", "callee")), None, false);
    runtime.resiliency(caller, labels(PolicyKind::Retry, ("app", "callee")), None, true);
    runtime.resiliency(caller, labels(PolicyKind::Retry, ("app", "callee")), None, true);
    runtime.resiliency(caller, labels(PolicyKind::Timeout, ("Statestore", "kv")), None, true);
    let breaker = labels(PolicyKind::CircuitBreaker, ("app", "fragile"));
    runtime.resiliency(caller, breaker, Some(BreakerState::Closed), false);
    runtime.resiliency(caller, breaker, Some(BreakerState::Open), true);
    let inbound = PolicyLabels { direction: FlowDirection::Inbound, ..labels(PolicyKind::Retry, ("Pubsub", "ps")) };
    runtime.resiliency(caller, inbound, None, false);
    let text = metrics.render();
    let (app, name) = (r#"app_id="caller""#, r#"name="callee-policies""#);
    for series in [
        format!(
            r#"dapr_resiliency_count{{{app},flow_direction="outbound",{name},policy="retry",project="p1",project_id="prj_p1",status="",target="app_callee"}} 1"#
        ),
        format!(
            r#"dapr_resiliency_activations_total{{{app},flow_direction="outbound",{name},policy="retry",project="p1",project_id="prj_p1",status="",target="app_callee"}} 2"#
        ),
        format!(
            r#"dapr_resiliency_activations_total{{{app},flow_direction="outbound",{name},policy="timeout",project="p1",project_id="prj_p1",status="",target="Statestore_kv"}} 1"#
        ),
        format!(
            r#"dapr_resiliency_count{{{app},flow_direction="outbound",{name},policy="circuitbreaker",project="p1",project_id="prj_p1",status="closed",target="app_fragile"}} 1"#
        ),
        format!(
            r#"dapr_resiliency_activations_total{{{app},flow_direction="outbound",{name},policy="circuitbreaker",project="p1",project_id="prj_p1",status="open",target="app_fragile"}} 1"#
        ),
        format!(
            r#"dapr_resiliency_cb_state{{{app},flow_direction="outbound",{name},policy="circuitbreaker",project="p1",project_id="prj_p1",status="open",target="app_fragile"}} 1"#
        ),
        format!(
            r#"dapr_resiliency_cb_state{{{app},flow_direction="outbound",{name},policy="circuitbreaker",project="p1",project_id="prj_p1",status="closed",target="app_fragile"}} 0"#
        ),
        format!(
            r#"dapr_resiliency_cb_state{{{app},flow_direction="outbound",{name},policy="circuitbreaker",project="p1",project_id="prj_p1",status="unknown",target="app_fragile"}} 0"#
        ),
        format!(
            r#"dapr_resiliency_count{{{app},flow_direction="inbound",{name},policy="retry",project="p1",project_id="prj_p1",status="",target="Pubsub_ps"}} 1"#
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
    runtime.workflow_execution(tenant("p1", "a"), "kept-flow", ExecutionStatus::Success, ms(5));
    for past_limit in [tenant("p2", "b"), tenant("p3", "c")] {
        runtime.workflow_operation(past_limit, WorkflowOperation::PurgeWorkflow, true, ms(1));
        runtime.workflow_execution(past_limit, "secret-flow", ExecutionStatus::Failed, ms(5));
        runtime.workflow_scheduling(past_limit, "secret-flow", ms(5));
        runtime.activity_execution(past_limit, "secret-activity", ExecutionStatus::Success, ms(5));
        runtime.activity_operation(past_limit, "secret-activity", ExecutionStatus::Success, ms(5));
        let policy = PolicyLabels {
            resiliency: "secret-policies",
            policy: PolicyKind::CircuitBreaker,
            direction: FlowDirection::Outbound,
            target: ("app", "secret-app"),
        };
        runtime.resiliency(past_limit, policy, Some(BreakerState::HalfOpen), true);
    }
    let text = metrics.render();
    for series in [
        r#"dapr_runtime_workflow_execution_count{app_id="a",project="p1",project_id="prj_p1",status="success",workflow_name="kept-flow"} 1"#,
        r#"dapr_runtime_workflow_operation_count{app_id="other",operation="purge_workflow",project="other",project_id="other",status="success"} 2"#,
        r#"dapr_runtime_workflow_execution_count{app_id="other",project="other",project_id="other",status="failed",workflow_name="other"} 2"#,
        r#"dapr_runtime_workflow_scheduling_latency_count{app_id="other",project="other",project_id="other",workflow_name="other"} 2"#,
        r#"dapr_runtime_workflow_activity_execution_count{activity_name="other",app_id="other",project="other",project_id="other",status="success"} 2"#,
        r#"dapr_runtime_workflow_activity_operation_count{activity_name="other",app_id="other",project="other",project_id="other",status="success"} 2"#,
        r#"dapr_resiliency_activations_total{app_id="other",flow_direction="outbound",name="other",policy="circuitbreaker",project="other",project_id="other",status="half-open",target="other"} 2"#,
        r#"dapr_resiliency_cb_state{app_id="other",flow_direction="outbound",name="other",policy="circuitbreaker",project="other",project_id="other",status="half-open",target="other"} 1"#,
    ] {
        assert!(text.contains(series), "{series} missing from:\n{text}");
    }
    assert!(!text.contains("secret"), "{text}");
    assert!(
        !text.contains(r#"project="p2",project_id="prj_p2""#) && !text.contains(r#"project="p3",project_id="prj_p3""#)
    );
}

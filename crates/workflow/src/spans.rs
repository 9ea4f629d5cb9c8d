//! Workflows in traces, named as daprd's engine names them: an instance's span (`orchestration||<name>`) is
//! made when the instance starts, as the child of the call or parent workflow that started it, and exported
//! when the instance ends; each activity's span (`activity||<name>`) is a child of its instance's, timed from
//! when it was scheduled until its result arrived. The ids travel in the protocol's own fields
//! (`ExecutionStarted.parentTraceContext` and `workflowSpanID`, `TaskScheduled` and `ActivityRequest`'s
//! `parentTraceContext`), so an app's SDK sees the same trace. Nothing is recorded unless the starting call's
//! trace is sampled and this process exports spans.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use outrigger_telemetry::trace::{Hop, KeyValue, SpanIds, SpanKind};

use super::*;

/// An instance's place in a trace.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct InstanceTrace {
    /// The `traceparent` of what started the instance.
    pub(crate) parent: Option<String>,
    /// The `traceparent` of the instance's own span.
    pub(crate) own: Option<String>,
}

impl InstanceTrace {
    /// The trace of an instance started within the span `parent` names (none, or an invalid one: no trace).
    pub(crate) fn starting(parent: Option<&str>) -> InstanceTrace {
        let Some((parent, ids)) = parent.and_then(|parent| Some((parent, SpanIds::parse(parent)?))) else {
            return InstanceTrace::default();
        };
        InstanceTrace { parent: Some(parent.to_owned()), own: Some(ids.child().traceparent()) }
    }

    /// The context the instance's activities (and child workflows) descend from: its own span.
    pub(crate) fn context(&self) -> Option<pb::TraceContext> {
        self.own.as_ref().map(|own| pb::TraceContext { trace_parent: own.clone(), ..Default::default() })
    }

    /// Fills `ExecutionStarted`'s trace fields: the starter's context and the instance's span id.
    pub(crate) fn describe(&self, started: &mut pb::ExecutionStartedEvent) {
        started.parent_trace_context =
            self.parent.as_ref().map(|parent| pb::TraceContext { trace_parent: parent.clone(), ..Default::default() });
        started.workflow_span_id = self.own.as_deref().and_then(SpanIds::parse).map(|ids| ids.span_id_hex());
    }
}

/// Whose a span is: the project (by name, as every span names it) and the App ID.
pub(crate) struct SpanOwner<'a> {
    pub(crate) project: &'a str,
    pub(crate) app_id: &'a str,
}

impl SpanOwner<'_> {
    fn attributes(&self, kind: &'static str, name: &str, instance: &str) -> Vec<KeyValue> {
        vec![
            KeyValue::new("outrigger.project", self.project.to_owned()),
            KeyValue::new("outrigger.app_id", self.app_id.to_owned()),
            KeyValue::new("durabletask.type", kind),
            KeyValue::new("durabletask.task.name", name.to_owned()),
            KeyValue::new("durabletask.task.instance_id", instance.to_owned()),
        ]
    }
}

/// Exports the span of an activity whose result arrived: from `scheduled_at` (Unix milliseconds) until now.
pub(crate) fn activity_ended(owner: SpanOwner<'_>, request: &pb::ActivityRequest, scheduled_at: i64, failed: bool) {
    let Some(context) = &request.parent_trace_context else { return };
    let Some(hop) = Hop::continuing(&context.trace_parent, None).filter(Hop::recorded) else { return };
    let instance = request.workflow_instance.as_ref().map(|i| i.instance_id.as_str()).unwrap_or_default();
    let mut attributes = owner.attributes("activity", &request.name, instance);
    attributes.push(KeyValue::new("durabletask.task.task_id", i64::from(request.task_id)));
    let error = failed.then(|| format!("activity {} failed", request.name));
    hop.started_at(at(scheduled_at)).finish(format!("activity||{}", request.name), SpanKind::Server, attributes, error);
}

/// Exports the span of an instance that ended with `status`: from `created_at` (Unix milliseconds) until now.
pub(crate) fn instance_ended(
    owner: SpanOwner<'_>,
    (instance, name): (&str, &str),
    trace: &InstanceTrace,
    created_at: i64,
    status: Status,
) {
    let (Some(parent), Some(own)) = (&trace.parent, trace.own.as_deref().and_then(SpanIds::parse)) else { return };
    let Some(hop) = Hop::continuing(parent, None).filter(Hop::recorded) else { return };
    let mut attributes = owner.attributes("orchestration", name, instance);
    attributes.push(KeyValue::new("durabletask.runtime_status", status_name(status)));
    let error =
        matches!(status, Status::Failed | Status::Terminated).then(|| format!("workflow {}", status_name(status)));
    let hop = hop.with_span_id(own.span_id).started_at(at(created_at));
    hop.finish(format!("orchestration||{name}"), SpanKind::Server, attributes, error);
}

fn at(unix_millis: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(u64::try_from(unix_millis).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_instance_is_a_child_of_what_started_it() {
        let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let trace = InstanceTrace::starting(Some(parent));
        let own = SpanIds::parse(trace.own.as_deref().unwrap()).unwrap();
        let starter = SpanIds::parse(parent).unwrap();
        assert_eq!((own.trace_id, own.sampled), (starter.trace_id, true));
        assert_ne!(own.span_id, starter.span_id);
        let mut started = pb::ExecutionStartedEvent::default();
        trace.describe(&mut started);
        assert_eq!(started.parent_trace_context.unwrap().trace_parent, parent);
        assert_eq!(started.workflow_span_id, Some(own.span_id_hex()));
        assert_eq!(trace.context().unwrap().trace_parent, trace.own.clone().unwrap());

        assert_eq!(InstanceTrace::starting(Some("not a traceparent")), InstanceTrace::default());
        assert_eq!(InstanceTrace::starting(None).context(), None);
    }
}

"""Traces: one SDK call makes one connected trace, exported over OTLP to the session's receiver.

The gateway's span continues the caller's `traceparent` (or starts a trace) and is returned to the caller; the
worker's span of the bus call is its child (in another process on the distributed form); a pub/sub delivery is
a span of the publisher's trace, whose context the subscriber app receives; an input binding's event starts a
trace of its own (daprd's `bindings/<name>`), whose context the app receives; a workflow instance is a span
(`orchestration||<name>`) under the call that started it, and each of its activities one (`activity||<name>`)
under the instance's, as daprd's engine makes them (an instance purged with force before it ends is a terminated
span); an App ID whose Configuration sets
`tracing.samplingRate: "0"` records nothing; with OUTRIGGER_OTLP_PROTOCOL=http/protobuf the same spans arrive over
OTLP/HTTP.
"""

from __future__ import annotations

import re

import harness
from otlp_receiver import Receiver, Span
from support import Tenants, dapr_client, dapr_http
from test_input_bindings import apps, cron  # noqa: F401
from test_pubsub import publish_over_http, subscribed_project, subscriber_apps, wait_until_live  # noqa: F401
from test_workflow import WAIT, workflow_app

TRACEPARENT = re.compile(r'^00-([0-9a-f]{32})-([0-9a-f]{16})-(0[01])$')
SAVE_STATE = '/dapr.proto.runtime.v1.Dapr/SaveState'


def of_project(project: str, name: str):
    return lambda span: span.attributes.get('outrigger.project') == project and span.name == name


def task_span(app, name: str, instance_id: str):
    """A workflow's or activity's span (`orchestration||<name>`, `activity||<name>`) of an instance of `app`."""
    return lambda span: span.name == name \
        and span.attributes.get('durabletask.task.instance_id') == instance_id \
        and span.attributes.get('outrigger.project') == app.project


def worker_span_of(spans: Receiver, parent: Span, name: str) -> Span:
    return spans.wait_for(
        lambda span: span.name == name and span.parent_span_id == parent.span_id and span.trace_id == parent.trace_id,
        f'the worker span {name} under the gateway span {parent.span_id}',
    )


def test_an_sdk_call_makes_one_connected_trace(deployment, app, spans):
    with dapr_client(app) as client:
        client.save_state('kvstore', 'order-1', b'{"qty":1}')

    server = spans.wait_for(of_project(app.project, SAVE_STATE), f'the gateway span of {SAVE_STATE}')
    assert server.kind == 'server' and not server.error, server
    assert server.attributes['dapr.protocol'] == 'grpc' and server.attributes['dapr.api'] == SAVE_STATE, server
    assert server.attributes['outrigger.app_id'] == 'orders' and server.attributes['dapr.status_code'] == 0, server
    assert server.attributes['db.system'] == 'state' and server.attributes['db.name'] == 'kvstore', server
    worker = worker_span_of(spans, server, 'worker/SaveState')
    assert worker.attributes['outrigger.project'] == app.project, worker
    if deployment.form == 'distributed':
        # Two processes, one trace: the context crossed NATS.
        assert (server.service, worker.service) == ('outrigger-gateway', 'outrigger-worker'), (server, worker)


def test_the_callers_trace_is_continued_and_returned(app, spans):
    trace_id, caller_span = '4bf92f3577b34da6a3ce929d0e0e4736', '00f067aa0ba902b7'
    status, body, headers = dapr_http(
        app, 'GET', '/v1.0/state/kvstore/absent', None,
        {'traceparent': f'00-{trace_id}-{caller_span}-01', 'tracestate': 'vendor=opaque'},
    )
    assert status == 204, (status, body)
    returned = TRACEPARENT.match(headers.get('traceparent', ''))
    assert returned, headers
    assert returned.group(1) == trace_id and returned.group(2) != caller_span and returned.group(3) == '01', headers
    assert headers.get('tracestate') == 'vendor=opaque', headers

    server = spans.wait_for(lambda span: span.span_id == returned.group(2), 'the span the caller got back')
    assert (server.trace_id, server.parent_span_id, server.kind) == (trace_id, caller_span, 'server'), server
    assert server.name == '/v1.0/state/kvstore/absent' and server.attributes['http.request.method'] == 'GET', server
    worker_span_of(spans, server, 'worker/GetState')

    # A call without a trace starts one, and is told which.
    status, _, headers = dapr_http(app, 'GET', '/v1.0/state/kvstore/absent')
    started = TRACEPARENT.match(headers.get('traceparent', ''))
    assert status == 204 and started and started.group(1) != trace_id, headers
    root = spans.wait_for(lambda span: span.span_id == started.group(2), 'the span of a new trace')
    assert root.parent_span_id == '' and root.trace_id == started.group(1), root


def test_a_failed_call_is_a_failed_span(app, spans):
    status, _, headers = dapr_http(app, 'GET', '/v1.0/state/no-such-store/key')
    assert status == 400, status
    span_id = TRACEPARENT.match(headers['traceparent']).group(2)
    failed = spans.wait_for(lambda span: span.span_id == span_id, 'the failed call\'s span')
    assert failed.error and failed.attributes['dapr.status_code'] == 400, failed


def test_a_delivery_is_a_span_of_the_publishers_trace(tenants, subscriber_apps, spans):  # noqa: F811
    subscriber = subscriber_apps()
    orders = subscribed_project(tenants, subscriber).apps['orders']
    wait_until_live(lambda value: publish_over_http(orders, value), subscriber, 'the subscription')
    published = TRACEPARENT.match(publish_over_http(orders, {'order': 1})['traceparent'])
    push = subscriber.take_data({'order': 1})

    # The event names the publish call's span; the app is called within the delivery's span, its child.
    assert push.event['traceparent'] == published.group(0), push.event
    delivered = TRACEPARENT.match(push.headers.get('traceparent', ''))
    assert delivered and delivered.group(1) == published.group(1), push.headers
    delivery = spans.wait_for(lambda span: span.span_id == delivered.group(2), 'the delivery span')
    # daprd's internal callback spans are CLIENT spans.
    assert (delivery.name, delivery.kind) == ('pubsub/orders', 'client'), delivery
    assert delivery.parent_span_id == published.group(2), delivery
    assert delivery.attributes['messaging.destination.name'] == 'orders', delivery
    server = spans.wait_for(lambda span: span.span_id == published.group(2), 'the publish call\'s span')
    worker_span_of(spans, server, 'worker/Publish')


def test_a_binding_event_is_a_span_the_app_is_called_within(tenants, apps, spans):  # noqa: F811
    app = apps()
    project = tenants.project(apps=())
    tenants.add_app(project, 'batch', app_endpoint=app.endpoint)
    tenants.deployment.control.put_component(project.name, 'tick', cron('tick', '@every 1s'))
    (_, headers, _), *_ = app.wait_for_events(1)
    called = TRACEPARENT.match(headers.get('traceparent', ''))
    assert called and called.group(3) == '01', headers
    event = spans.wait_for(lambda span: span.span_id == called.group(2), 'the binding event\'s span')
    assert (event.name, event.kind, event.parent_span_id) == ('bindings/tick', 'client', ''), event
    assert (event.attributes['outrigger.app_id'], event.attributes['db.name']) == ('batch', 'tick'), event


def test_a_workflow_and_its_activities_are_spans_of_the_trace_that_started_it(app, spans):
    def traced_step(ctx, value):
        if value < 0:
            raise ValueError('negative')
        return value + 1

    def traced_flow(ctx, value):
        done = yield ctx.call_activity(traced_step, input=value)
        return done

    with workflow_app(app, workflows=[traced_flow], activities=[traced_step]) as client:
        instance = client.schedule_new_workflow(traced_flow, input=1)
        state = client.wait_for_workflow_completion(instance, timeout_in_seconds=WAIT)
        assert state.serialized_output == '2', state
        failing = client.schedule_new_workflow(traced_flow, input=-1)
        state = client.wait_for_workflow_completion(failing, timeout_in_seconds=WAIT)
        assert state.runtime_status.name == 'FAILED', state

    # daprd's engine names them so: the instance's span under the call that started it, the activity's under it.
    workflow = spans.wait_for(task_span(app, 'orchestration||traced_flow', instance), 'the workflow\'s span')
    start = spans.wait_for(lambda span: span.span_id == workflow.parent_span_id, 'the span of the start call')
    assert (start.trace_id, start.name) == (workflow.trace_id, '/TaskHubSidecarService/StartInstance'), start
    assert workflow.attributes['durabletask.runtime_status'] == 'COMPLETED' and not workflow.error, workflow
    assert workflow.attributes['outrigger.app_id'] == 'orders', workflow
    activity = spans.wait_for(task_span(app, 'activity||traced_step', instance), 'the activity\'s span')
    assert (activity.trace_id, activity.parent_span_id) == (workflow.trace_id, workflow.span_id), activity
    assert workflow.start <= activity.start <= activity.end <= workflow.end, (workflow, activity)
    assert not activity.error and activity.attributes['durabletask.task.task_id'] >= 0, activity

    failed = spans.wait_for(task_span(app, 'orchestration||traced_flow', failing), 'the failed workflow\'s span')
    assert failed.error and failed.attributes['durabletask.runtime_status'] == 'FAILED', failed
    failed_step = spans.wait_for(task_span(app, 'activity||traced_step', failing), 'the failed activity\'s span')
    assert failed_step.error and failed_step.parent_span_id == failed.span_id, failed_step


def test_a_workflow_purged_before_it_ends_is_a_terminated_span(deployment, app, spans):
    def held_flow(ctx, _):
        return (yield ctx.wait_for_external_event('never'))

    with workflow_app(app, workflows=[held_flow]) as client:
        instance = client.schedule_new_workflow(held_flow)
        client.wait_for_workflow_start(instance, timeout_in_seconds=WAIT)
        deployment.control.expect(204, 'DELETE', f'/projects/{app.project}/workflows/{instance}?force=true')
        assert client.get_workflow_state(instance) is None, 'the purged instance is still there'

    purged = spans.wait_for(task_span(app, 'orchestration||held_flow', instance), 'the purged workflow\'s span')
    assert purged.error and purged.attributes['durabletask.runtime_status'] == 'TERMINATED', purged
    start = spans.wait_for(lambda span: span.span_id == purged.parent_span_id, 'the span of the start call')
    assert (start.trace_id, start.name) == (purged.trace_id, '/TaskHubSidecarService/StartInstance'), start


def test_a_sampling_rate_of_zero_records_nothing(tenants, spans):
    project = tenants.project(apps=('loud',))
    tenants.deployment.control.put_resource(project.name, 'configurations', 'untraced', """
apiVersion: dapr.io/v1alpha1
kind: Configuration
metadata:
  name: untraced
spec:
  tracing:
    samplingRate: "0"
""")
    quiet = tenants.add_app(project, 'quiet', config='untraced')
    # A new trace of the quiet App ID says it is not sampled.
    status, _, started = dapr_http(quiet, 'GET', '/v1.0/state/kvstore/k')
    assert status == 204 and TRACEPARENT.match(started['traceparent']).group(3) == '00', started
    # A caller's sampled trace is continued with its flag, but not recorded (daprd: a rate of 0 turns tracing
    # off for the App ID).
    sampled = '00-5bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'
    status, _, continued = dapr_http(quiet, 'GET', '/v1.0/state/kvstore/k', None, {'traceparent': sampled})
    assert status == 204 and TRACEPARENT.match(continued['traceparent']).group(3) == '01', continued

    # Spans leave each process in order: once a later call's span is in, an earlier one would be too.
    _, _, later = dapr_http(project.apps['loud'], 'GET', '/v1.0/state/kvstore/k')
    later_span = TRACEPARENT.match(later['traceparent']).group(2)
    spans.wait_for(lambda span: span.span_id == later_span, 'the later call\'s span')
    recorded = spans.spans(lambda span: span.attributes.get('outrigger.app_id') == 'quiet'
                           and span.attributes.get('outrigger.project') == project.name)
    assert recorded == [], recorded


def test_spans_are_exported_over_otlp_http_as_well(tmp_path):
    """OUTRIGGER_OTLP_PROTOCOL=http/protobuf: the same spans, posted to the collector's /v1/traces."""
    receiver = Receiver('http/protobuf')
    deployment = harness.start_embedded({
        'OUTRIGGER_OTLP_ENDPOINT': receiver.endpoint,
        'OUTRIGGER_OTLP_PROTOCOL': 'http/protobuf',
        'OUTRIGGER_OTLP_FLUSH_MS': '100',
    })
    try:
        app = Tenants(deployment, tmp_path).project().apps['orders']
        with dapr_client(app) as client:
            client.save_state('kvstore', 'order-1', b'{"qty":1}')
        server = receiver.wait_for(of_project(app.project, SAVE_STATE), f'the gateway span of {SAVE_STATE}')
        assert server.service == 'outrigger' and server.kind == 'server', server
        worker_span_of(receiver, server, 'worker/SaveState')
    finally:
        problems = deployment.stop()
        receiver.stop()
    assert not problems, problems

"""The API log, call metrics and usage seen by an operator after an app's Python SDK calls (gRPC): every call
recorded with its App ID, API, rpc, component, status and latency, failures findable by status, the calls the
platform made to apps (deliveries, job triggers) beside them, other projects' calls never shown — on both
forms."""

from __future__ import annotations

import grpc
import pytest

import harness
from dapr.clients.grpc._jobs import Job
from dapr.clients.grpc._state import StateItem
from support import dapr_client
from test_jobs import JobApp
from test_pubsub import publish_over_http, subscribed_project, subscriber_apps, wait_until_live  # noqa: F401


def logged_calls(control, project: str, **filters) -> list[dict]:
    query = '&'.join(f'{name}={value}' for name, value in filters.items())
    return control.expect(200, 'GET', f'/projects/{project}/logs?{query}')['items']


def wait_for_calls(control, project: str, count: int, **filters) -> list[dict]:
    """The log's calls once it holds `count` of them: calls are written in batches, off the request path."""
    return harness.wait_until(
        lambda: (calls := logged_calls(control, project, **filters)) and len(calls) >= count and calls,
        timeout=30,
        what=f'{count} calls in the API log of {project}',
    )


def test_sdk_calls_are_logged_counted_and_kept_to_their_project(tenants):
    control = tenants.deployment.control
    project = tenants.project(apps=('orders',))
    other = tenants.project(apps=('orders',))
    with dapr_client(project.apps['orders']) as client:
        client.save_state('kvstore', 'order-1', 'paid')
        assert client.get_state('kvstore', 'order-1').data == b'paid'
        client.publish_event('pubsub', 'orders', '{"id": 1}', data_content_type='application/json')
        with pytest.raises(grpc.RpcError) as refused:
            client.get_state('no-such-store', 'order-1')
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    calls = wait_for_calls(control, project.name, 4)
    assert [call['method'] for call in calls[:4]] == ['GetState', 'PublishEvent', 'GetState', 'SaveState'], calls
    failed, published, read, saved = calls[:4]
    assert (saved['api'], saved['component'], saved['protocol'], saved['status']) == ('state', 'kvstore', 'grpc', 200)
    assert saved['path'] == '/dapr.proto.runtime.v1.Dapr/SaveState' and saved['appId'] == 'orders'
    assert (published['api'], published['component'], published['target']) == ('pubsub', 'pubsub', 'orders')
    assert {call['direction'] for call in calls} == {'from_app'}
    assert all(len(call['traceId']) == 32 and len(call['spanId']) == 16 for call in calls[:4]), calls
    assert (failed['component'], failed['status'], failed['grpcCode']) == ('no-such-store', 400, 3)
    assert all(call['latencyMs'] >= 0 and call['userAgent'].startswith('dapr-sdk-python') for call in calls[:4])
    assert read['time'] <= published['time']

    # Filters: by status class, by API, by text; newest first, a page at a time.
    assert [call['component'] for call in logged_calls(control, project.name, status='4xx')] == ['no-such-store']
    assert {call['api'] for call in logged_calls(control, project.name, api='pubsub')} == {'pubsub'}
    assert [call['method'] for call in logged_calls(control, project.name, q='SAVESTATE')] == ['SaveState']
    first = control.expect(200, 'GET', f'/projects/{project.name}/logs?limit=3')
    second = control.expect(200, 'GET', f'/projects/{project.name}/logs?limit=3&continuationToken={first["continuationToken"]}')
    assert [call['method'] for call in first['items'] + second['items']][:4] == [call['method'] for call in calls[:4]]

    metrics = control.expect(200, 'GET', f'/projects/{project.name}/metrics?window=1h')
    assert metrics['total']['requests'] >= 4 and metrics['total']['errors'] >= 1, metrics
    assert [entry['name'] for entry in metrics['byAppId']] == ['orders']
    state = next(entry for entry in metrics['byApi'] if entry['name'] == 'state')
    assert state['total']['requests'] >= 3 and state['total']['p95Ms'] > 0
    assert sum(point['requests'] for point in state['series']) == state['total']['requests']
    usage = control.expect(200, 'GET', f'/projects/{project.name}/usage')
    assert usage['appIds'] == 1 and usage['requests'] >= 4 and usage['publishRequests'] >= 1, usage

    # The other project, with an App ID of the same name, sees none of it.
    assert logged_calls(control, other.name) == []
    assert control.expect(200, 'GET', f'/projects/{other.name}/metrics')['total']['requests'] == 0
    assert control.expect(200, 'GET', f'/projects/{other.name}/usage')['requests'] == 0


def test_a_stored_bytes_quota_refuses_sdk_writes_past_it(tenants):
    """A project's managed kvstore holds what its quota allows: the SDK's save past it fails with
    RESOURCE_EXHAUSTED and writes nothing; overwriting and deleting still work; usage shows the bytes."""
    control = tenants.deployment.control
    project = tenants.project(apps=('orders',))
    with dapr_client(project.apps['orders']) as client:
        client.save_state('kvstore', 'cart', 'x' * 100)
        one_item = control.expect(200, 'GET', f'/projects/{project.name}/usage')['storedStateBytes']
        assert one_item > 100, one_item
        control.expect(200, 'PUT', f'/projects/{project.name}/quotas', {'storedBytes': one_item + 50})
        with pytest.raises(grpc.RpcError) as refused:
            client.save_bulk_state('kvstore', [StateItem('bags', 'y' * 100), StateItem('b', 'z')])
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, refused.value
        assert 'stored-bytes quota' in refused.value.details()
        assert client.get_state('kvstore', 'bags').data == b''
        client.save_state('kvstore', 'cart', 'w' * 100)
        client.delete_state('kvstore', 'cart')
        client.save_state('kvstore', 'bags', 'y' * 100)
    usage = control.expect(200, 'GET', f'/projects/{project.name}/usage')
    assert usage['storedStateBytes'] == one_item, usage


def test_calls_the_platform_makes_to_apps_are_logged(tenants, subscriber_apps):  # noqa: F811
    control = tenants.deployment.control
    subscriber, jobs = subscriber_apps(), JobApp(status=500)
    try:
        project = subscribed_project(tenants, subscriber)
        tenants.add_app(project, 'nightly', app_endpoint=jobs.endpoint)
        orders = project.apps['orders']
        wait_until_live(lambda value: publish_over_http(orders, value), subscriber, 'the subscription')
        with dapr_client(project.apps['nightly']) as client:
            client.schedule_job(Job(name='backup', due_time='0s'))
        jobs.wait_for(1)

        delivered = wait_for_calls(control, project.name, 1, direction='to_app', api='pubsub')[0]
        assert (delivered['appId'], delivered['target'], delivered['component']) == ('shipping', 'orders', 'pubsub')
        assert (delivered['method'], delivered['path'], delivered['status']) == ('POST', '/orders', 200), delivered
        assert delivered['direction'] == 'to_app' and len(delivered['traceId']) == 32, delivered
        # The failing trigger is there, findable by its status like any failed call.
        triggered = wait_for_calls(control, project.name, 1, direction='to_app', api='jobs')[0]
        assert (triggered['appId'], triggered['target'], triggered['path']) == ('nightly', 'backup', '/job/backup')
        assert triggered['status'] == 500, triggered
        assert any(call['target'] == 'backup' for call in logged_calls(control, project.name, status='5xx'))
        # Made by App IDs or made to them: the filter tells them apart.
        made = logged_calls(control, project.name, direction='from_app')
        assert made and all(call['direction'] == 'from_app' for call in made), made
        # Charts and usage count the calls App IDs made, not those made to them (a gateway's batch may land
        # between the two reads, so they are compared until both have seen the same batches).
        harness.wait_until(
            lambda: control.expect(200, 'GET', f'/projects/{project.name}/usage')['requests']
            == len(logged_calls(control, project.name, direction='from_app', limit=1000)),
            timeout=30, what='usage counting exactly the calls App IDs made')
    finally:
        jobs.close()


def test_a_streaming_subscription_is_logged_when_it_opens_and_when_it_ends(tenants):
    control = tenants.deployment.control
    project = tenants.project(apps=('shipping',))
    with dapr_client(project.apps['shipping']) as client:
        subscription = client.subscribe('pubsub', 'orders')
        try:
            opened = wait_for_calls(control, project.name, 1, q='SubscribeTopicEvents')[0]
        finally:
            subscription.close()
    assert (opened['api'], opened['protocol'], opened['status']) == ('pubsub', 'grpc', 200), opened
    assert opened['method'] == 'SubscribeTopicEventsAlpha1' and opened['appId'] == 'shipping', opened
    assert len(opened['traceId']) == 32 and 'streamEnded' not in opened, opened
    # The SDK's close half-closes the stream and cancels it: it ends cancelled, or done if the gateway's
    # trailers win the race.
    ended, first = wait_for_calls(control, project.name, 2, q='SubscribeTopicEvents')[:2]
    assert first == opened, (first, opened)
    assert ended['streamEnded'] is True and (ended['status'], ended['grpcCode']) in [(499, 1), (200, 0)], ended
    assert (ended['method'], ended['traceId'], ended['spanId']) == (opened['method'], opened['traceId'], opened['spanId'])
    # Its latency is the stream's life, which outlasted the opening's record being written and read.
    assert ended['latencyMs'] > opened['latencyMs'] and ended['time'] >= opened['time'], (ended, opened)
    # Charts count the stream once, at its opening.
    metrics = control.expect(200, 'GET', f'/projects/{project.name}/metrics?window=1h')
    pubsub = next(entry for entry in metrics['byApi'] if entry['name'] == 'pubsub')
    assert pubsub['total']['requests'] == 1 and pubsub['total']['errors'] == 0, metrics

"""The API log, call metrics and usage seen by an operator after an app's Python SDK calls (gRPC): every call
recorded with its App ID, API, rpc, component, status and latency, failures findable by status, other
projects' calls never shown — on both forms."""

from __future__ import annotations

import grpc
import pytest

import harness
from support import dapr_client


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
    assert (published['api'], published['component']) == ('pubsub', 'pubsub')
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

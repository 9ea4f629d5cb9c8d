"""Connecting: the three variables an app is given, the metadata API and token checks."""

import json
import re
import time

import grpc
import pytest
from dapr.clients import DaprClient
from dapr.clients.exceptions import DaprGrpcError

import harness
from support import dapr_client, dapr_environment, describe, registered_components


def test_project_endpoints_are_where_the_dapr_apis_listen(deployment, project):
    http_endpoint = project.answer.get('httpEndpoint')
    grpc_endpoint = project.answer.get('grpcEndpoint')
    if deployment.form == 'embedded':
        assert (http_endpoint, grpc_endpoint) == (deployment.dapr_http, deployment.dapr_grpc), project.answer
    else:
        # The control API runs apart from the gateways and only reports its configured public endpoints.
        for endpoint in (http_endpoint, grpc_endpoint):
            assert isinstance(endpoint, str) and re.match(r'^https?://[^/\s]+$', endpoint), project.answer


def test_client_constructs_fast_from_the_three_variables(app):
    with dapr_environment(app.http_endpoint, app.grpc_endpoint, app.token):
        started = time.monotonic()
        client = DaprClient()
        elapsed = time.monotonic() - started
    try:
        assert elapsed < 2.0, f'DaprClient() took {elapsed:.2f} s (its health probe must succeed at once)'
        # The client talks to this app's tenant: the variables were what it used.
        assert client.get_metadata().application_id == app.name
    finally:
        client.close()


def test_health_probes_answer_without_a_token(deployment):
    for path in ('/v1.0/healthz', '/v1.0/healthz/outbound'):
        status, body, _ = harness.http_request('GET', deployment.dapr_http + path)
        assert status == 204, f'GET {path} -> {status} {body!r}'


def test_metadata_names_the_app_and_lists_kvstore(app):
    with dapr_client(app) as client:
        metadata = client.get_metadata()
        assert metadata.application_id == 'orders'
        components = {component.name: component for component in metadata.registered_components}
        assert 'kvstore' in components, metadata.registered_components
        kvstore = components['kvstore']
        assert kvstore.type.startswith('state.'), kvstore.type
        # The managed store is documented as etag-, transaction-, TTL- and query-capable.
        missing = {'ETAG', 'TRANSACTIONAL', 'TTL', 'QUERY_API'} - set(kvstore.capabilities)
        assert not missing, f'kvstore capabilities {list(kvstore.capabilities)} lack {sorted(missing)}'


def test_http_metadata_names_the_app_and_lists_kvstore(app):
    status, body, headers = harness.http_request(
        'GET', app.http_endpoint + '/v1.0/metadata', headers={'dapr-api-token': app.token}
    )
    assert status == 200, f'GET /v1.0/metadata -> {status} {body!r}'
    metadata = json.loads(body)
    assert metadata.get('id') == 'orders', metadata
    names = [component.get('name') for component in metadata.get('components', [])]
    assert 'kvstore' in names, metadata


def test_metadata_lists_a_component_added_by_the_operator(tenants, project, app):
    tenants.sqlite_component(project, 'sqlstore')
    with dapr_client(app) as client:
        component = harness.wait_until(
            lambda: registered_components(client).get('sqlstore'),
            15,
            interval=0.1,
            what='sqlstore appearing in GetMetadata',
        )
        assert component.type == 'state.sqlite', component.type


@pytest.mark.parametrize('token', ['wrong', 'none'])
def test_a_wrong_or_missing_token_is_unauthenticated(app, token):
    bad_token = None if token == 'none' else 'ort_' + harness.random_token(64, '0123456789abcdef')
    # The client still constructs: its health probe needs no token.
    with dapr_client(app, token=bad_token) as client:
        calls = {
            'get_state': lambda: client.get_state('kvstore', 'k'),
            'save_state': lambda: client.save_state('kvstore', 'k', 'v'),
            'get_metadata': lambda: client.get_metadata(),
        }
        for name, call in calls.items():
            with pytest.raises(DaprGrpcError) as raised:
                call()
            assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED, f'{name}: {describe(raised.value)}'

    # Over HTTP: 401 with daprd's body.
    headers = {} if bad_token is None else {'dapr-api-token': bad_token}
    status, body, _ = harness.http_request('GET', app.http_endpoint + '/v1.0/state/kvstore/k', headers=headers)
    assert status == 401, f'GET /v1.0/state/kvstore/k -> {status} {body!r}'
    assert b'invalid api token' in body, body

    # The right token on the same client settings works, so the refusals were about the token.
    with dapr_client(app) as client:
        client.save_state('kvstore', 'k', 'v')
        assert client.get_state('kvstore', 'k').data == b'v'


def test_extended_metadata_set_by_the_app_is_its_own(tenants):
    shop = tenants.project(apps=('orders', 'billing'))
    elsewhere = tenants.project()
    orders = shop.apps['orders']
    with dapr_client(orders) as client:
        client.set_metadata('team', 'payments')
        status, body, _ = harness.http_request(
            'PUT', orders.http_endpoint + '/v1.0/metadata/tier', body=b'gold', headers={'dapr-api-token': orders.token}
        )
        assert status == 204, f'PUT /v1.0/metadata/tier -> {status} {body!r}'
        assert dict(client.get_metadata().extended_metadata) == {'team': 'payments', 'tier': 'gold'}
    # Another App ID of the project, and the App ID of the same name in another project, see none of it.
    for other in (shop.apps['billing'], elsewhere.apps['orders']):
        with dapr_client(other) as client:
            assert dict(client.get_metadata().extended_metadata) == {}, other.name

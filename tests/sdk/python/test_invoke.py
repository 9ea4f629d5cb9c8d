"""Service invocation with the Python SDK: `invoke_method` (HTTP, the SDK's default) against a FastAPI app
registered as an App ID's endpoint, the hosted anchor's quickstart form (a plain HTTP POST with
`dapr-app-id`), access control and cross-project isolation — on both forms.
"""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest
import uvicorn
from dapr.clients.exceptions import DaprHttpError, DaprInternalError
from fastapi import FastAPI, Request, Response

import harness
from support import Tenants, dapr_http, invoking_client, json_bytes


class FastApiCallee:
    """A FastAPI app on 127.0.0.1, served by uvicorn in a thread; remembers what it was called with."""

    def __init__(self):
        self.calls: list[dict] = []
        app = FastAPI()

        @app.post('/neworder')
        async def new_order(request: Request):
            order = await request.json()
            self._remember(request, order)
            return {'accepted': order['orderId'], 'caller': request.headers.get('dapr-caller-app-id')}

        @app.get('/orders/{order_id}')
        async def get_order(order_id: int, request: Request, detail: str = 'short'):
            self._remember(request, None)
            return {'orderId': order_id, 'detail': detail}

        @app.put('/fail')
        async def fail(request: Request):
            self._remember(request, None)
            return Response(content=b'no such luck', status_code=503, media_type='text/plain')

        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(('127.0.0.1', 0))
        self.endpoint = f'http://127.0.0.1:{sock.getsockname()[1]}'
        self._server = uvicorn.Server(uvicorn.Config(app, log_level='warning', lifespan='off'))
        self._thread = threading.Thread(target=self._server.run, kwargs={'sockets': [sock]}, daemon=True)
        self._thread.start()
        harness.wait_until(lambda: self._server.started, 10, what='uvicorn starting')

    def _remember(self, request: Request, body) -> None:
        self.calls.append({'path': request.url.path, 'query': request.url.query, 'method': request.method,
                           'headers': {name.lower(): value for name, value in request.headers.items()},
                           'body': body})

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)


@pytest.fixture
def callee():
    app = FastApiCallee()
    yield app
    app.stop()


def test_invoke_method_reaches_the_fastapi_app_with_its_identity(deployment, tmp_path, callee):
    tenants = Tenants(deployment, tmp_path)
    project = tenants.project(apps=('checkout',))
    tenants.add_app(project, 'orders', callee.endpoint, appToken='orders-app-token')
    checkout = project.apps['checkout']
    with invoking_client(checkout) as client:
        answer = client.invoke_method('orders', 'neworder', data=json.dumps({'orderId': 7}),
                                      content_type='application/json', http_verb='POST')
        assert answer.json() == {'accepted': 7, 'caller': 'checkout'}
        assert answer.status_code == 200
        answer = client.invoke_method('orders', 'orders/42', http_verb='GET', http_querystring=(('detail', 'full'),))
        assert answer.json() == {'orderId': 42, 'detail': 'full'}
        with pytest.raises(DaprHttpError) as failed:
            client.invoke_method('orders', 'fail', data=b'x', http_verb='PUT')
        assert failed.value.status_code == 503
    seen = callee.calls[0]
    assert (seen['method'], seen['path'], seen['body']) == ('POST', '/neworder', {'orderId': 7})
    assert seen['headers']['dapr-callee-app-id'] == 'orders'
    assert seen['headers']['dapr-api-token'] == 'orders-app-token'
    assert len(seen['headers']['traceparent']) == 55
    assert all(checkout.token not in value for call in callee.calls for value in call['headers'].values())
    assert callee.calls[1]['query'] == 'detail=full'


def test_the_quickstart_invokes_with_a_dapr_app_id_header(deployment, tmp_path, callee):
    tenants = Tenants(deployment, tmp_path)
    project = tenants.project(apps=('client',))
    tenants.add_app(project, 'server', callee.endpoint)
    client = project.apps['client']
    for order_id in range(1, 4):
        status, body, _ = dapr_http(client, 'POST', '/neworder', json_bytes({'orderId': order_id}),
                                    {'dapr-app-id': 'server', 'content-type': 'application/json'})
        assert status == 200, body
        assert json.loads(body) == {'accepted': order_id, 'caller': 'client'}
    assert [call['body']['orderId'] for call in callee.calls] == [1, 2, 3]


def test_access_control_and_projects_bound_who_may_invoke(deployment, tmp_path, callee):
    tenants = Tenants(deployment, tmp_path)
    project = tenants.project(apps=('trusted', 'untrusted'))
    deployment.control.put_resource(project.name, 'configurations', 'orders-acl', """
apiVersion: dapr.io/v1alpha1
kind: Configuration
metadata:
  name: orders-acl
spec:
  accessControl:
    defaultAction: deny
    policies:
      - appId: trusted
        defaultAction: deny
        operations:
          - name: /neworder
            httpVerb: ['POST']
            action: allow
""")
    tenants.add_app(project, 'orders', callee.endpoint, config='orders-acl')
    with invoking_client(project.apps['trusted']) as client:
        answer = client.invoke_method('orders', 'neworder', data=json_bytes({'orderId': 1}), http_verb='POST')
        assert answer.json()['accepted'] == 1
        with pytest.raises(DaprHttpError) as denied:
            client.invoke_method('orders', 'orders/1', http_verb='GET')
        assert denied.value.status_code == 403 and denied.value.error_code == 'ERR_PERMISSION_DENIED'
    with invoking_client(project.apps['untrusted']) as client:
        with pytest.raises(DaprHttpError) as denied:
            client.invoke_method('orders', 'neworder', data=json_bytes({'orderId': 2}), http_verb='POST')
        assert denied.value.status_code == 403
    assert len(callee.calls) == 1, 'denied calls never reach the app'

    # An app of another project cannot reach `orders`, and learns nothing it could not learn of a name
    # that exists nowhere.
    other = tenants.project(apps=('intruder',))
    intruder = other.apps['intruder']
    answers = []
    for target in ('orders', 'no-such-app'):
        status, body, _ = dapr_http(intruder, 'POST', f'/v1.0/invoke/{target}/method/neworder', b'{}')
        answers.append((status, json.loads(body)['errorCode'], json.loads(body)['message'].replace(target, '?')))
    assert answers[0] == answers[1] == (500, 'ERR_DIRECT_INVOKE', answers[0][2])
    status, _, _ = dapr_http(intruder, 'POST', '/neworder', b'{}', {'dapr-app-id': 'orders'})
    assert status == 500
    assert len(callee.calls) == 1


def test_an_http_endpoint_sends_headers_from_a_secret_store(deployment, tmp_path, callee):
    tenants = Tenants(deployment, tmp_path)
    project = tenants.project(apps=('checkout',))
    # The store names its file relative to the project's directory, where the test puts it first.
    secrets = 'endpoint-secrets.json'
    (deployment.project_dir(project.name, create=True) / secrets).write_text(
        json.dumps({'orders-api': {'token': 'from-the-store'}}))
    deployment.control.put_component(project.name, 'vault', f"""apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: vault
spec:
  type: secretstores.local.file
  version: v1
  metadata:
    - name: secretsFile
      value: "{secrets}"
    - name: multiValued
      value: "true"
""")
    deployment.control.put_resource(project.name, 'httpendpoints', 'legacy-orders', f"""
apiVersion: dapr.io/v1alpha1
kind: HTTPEndpoint
metadata:
  name: legacy-orders
spec:
  baseUrl: {callee.endpoint}
  headers:
    - name: x-orders-token
      secretKeyRef:
        name: orders-api
        key: token
auth:
  secretStore: vault
""")
    with invoking_client(project.apps['checkout']) as client:
        answer = client.invoke_method('legacy-orders', 'neworder', data=json_bytes({'orderId': 3}), http_verb='POST')
        assert answer.json()['accepted'] == 3
    assert callee.calls[0]['headers']['x-orders-token'] == 'from-the-store'


def test_an_app_without_an_endpoint_fails_fast(deployment, tmp_path):
    tenants = Tenants(deployment, tmp_path)
    project = tenants.project(apps=('caller', 'offline'))
    with invoking_client(project.apps['caller']) as client:
        started = time.monotonic()
        with pytest.raises((DaprHttpError, DaprInternalError)) as failed:
            client.invoke_method('offline', 'anything', data=b'', http_verb='POST')
        assert time.monotonic() - started < 5
    assert 'ERR_DIRECT_INVOKE' in str(failed.value) or getattr(failed.value, 'error_code', '') == 'ERR_DIRECT_INVOKE'

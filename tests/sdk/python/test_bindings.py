"""Output bindings with the Python SDK (gRPC `InvokeBinding`): `bindings.http` calling a real HTTP server and
`bindings.redis` on the real Redis, as Dapr's bindings quickstart uses them, and a binding scoped to another
App ID refused as unknown — on both forms."""

from __future__ import annotations

import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from support import dapr_client, wait_for_component


def component(name: str, component_type: str, fields: dict, scopes: tuple = ()) -> str:
    metadata = ''.join(f'    - name: {key}\n      value: "{value}"\n' for key, value in fields.items())
    scoped = f'scopes: [{", ".join(scopes)}]\n' if scopes else ''
    return (f'apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: {name}\nspec:\n'
            f'  type: {component_type}\n  version: v1\n  metadata:\n{metadata}{scoped}')


@pytest.fixture
def echo_server():
    """An HTTP server answering each request with its method, path and body as JSON."""

    class Handler(BaseHTTPRequestHandler):
        def answer(self):
            body = self.rfile.read(int(self.headers.get('content-length') or 0))
            reply = json.dumps({'method': self.command, 'path': self.path, 'body': body.decode()}).encode()
            self.send_response(200)
            self.send_header('content-type', 'application/json')
            self.send_header('content-length', str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        do_GET = do_POST = do_PUT = do_DELETE = answer  # noqa: N815 - the names http.server calls

        def log_message(self, *_):
            pass

    server = ThreadingHTTPServer(('127.0.0.1', 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f'http://127.0.0.1:{server.server_address[1]}'
    server.shutdown()
    server.server_close()


def test_the_http_binding_calls_the_service(tenants, echo_server):
    project = tenants.project(apps=('batch',))
    yaml = component('orders-api', 'bindings.http', {'url': echo_server})
    tenants.deployment.control.put_component(project.name, 'orders-api', yaml)
    with dapr_client(project.apps['batch']) as client:
        wait_for_component(client, 'orders-api')
        response = client.invoke_binding('orders-api', 'post', json.dumps({'orderId': 1}), {'path': '/orders'})
        assert json.loads(response.data) == {'method': 'POST', 'path': '/orders', 'body': '{"orderId": 1}'}
        assert response.binding_metadata['statusCode'] == '200'


def test_the_redis_binding_stores_what_the_app_sends(tenants):
    project = tenants.project(apps=('batch',))
    yaml = component('cache', 'bindings.redis', {'redisHost': '127.0.0.1:6379'})
    tenants.deployment.control.put_component(project.name, 'cache', yaml)
    key = f'binding-{uuid.uuid4().hex}'
    with dapr_client(project.apps['batch']) as client:
        wait_for_component(client, 'cache')
        client.invoke_binding('cache', 'create', 'hello', {'key': key})
        assert client.invoke_binding('cache', 'get', '', {'key': key}).data == b'hello'
        client.invoke_binding('cache', 'delete', '', {'key': key})
        assert client.invoke_binding('cache', 'get', '', {'key': key}).data == b''


def test_a_binding_scoped_to_another_app_is_unknown(tenants, echo_server):
    project = tenants.project(apps=('batch', 'other'))
    yaml = component('private-api', 'bindings.http', {'url': echo_server}, scopes=('other',))
    tenants.deployment.control.put_component(project.name, 'private-api', yaml)
    with dapr_client(project.apps['other']) as allowed:
        wait_for_component(allowed, 'private-api')
    with dapr_client(project.apps['batch']) as client:
        with pytest.raises(Exception) as refused:
            client.invoke_binding('private-api', 'get', '')
        assert "couldn't find output binding private-api" in str(refused.value)


def test_the_postgres_binding_runs_the_apps_sql(tenants):
    """Dapr's bindings quickstart: `bindings.postgres` inserting orders with `exec`, read back with `query`. The
    distributed form keeps its control plane in this PostgreSQL: there the binding must not reach it."""
    project = tenants.project(apps=('batch',))
    yaml = component('sqldb', 'bindings.postgres',
                     {'connectionString': 'host=127.0.0.1 user=postgres port=5432 database=postgres'})
    tenants.deployment.control.put_component(project.name, 'sqldb', yaml)
    if tenants.deployment.form == 'distributed':
        with dapr_client(project.apps['batch']) as client:
            wait_for_component(client, 'sqldb')
            with pytest.raises(Exception) as refused:
                client.invoke_binding('sqldb', 'query', '', {'sql': 'select 1'})
            assert 'own services' in str(refused.value)
        return
    table = f'orders_{uuid.uuid4().hex}'
    with dapr_client(project.apps['batch']) as client:
        wait_for_component(client, 'sqldb')
        client.invoke_binding('sqldb', 'exec', '', {
            'sql': f'CREATE TABLE {table} (orderid INT PRIMARY KEY, customer TEXT, price NUMERIC(10,2))'})
        try:
            inserted = client.invoke_binding('sqldb', 'exec', '', {
                'sql': f"insert into {table} (orderid, customer, price) values (1, 'John Smith', 100.32)"})
            assert inserted.binding_metadata['rows-affected'] == '1'
            with_params = client.invoke_binding('sqldb', 'exec', '', {
                'sql': f'insert into {table} (orderid, customer, price) values ($1, $2, $3::text::numeric)',
                'params': json.dumps([2, 'Jane Doe', '7.5'])})
            assert with_params.binding_metadata['operation'] == 'exec'
            rows = client.invoke_binding('sqldb', 'query', '', {'sql': f'select * from {table} order by orderid'})
            assert json.loads(rows.data) == [[1, 'John Smith', 100.32], [2, 'Jane Doe', 7.5]]
            with pytest.raises(Exception) as refused:
                client.invoke_binding('sqldb', 'query', '', {})
            assert 'required metadata not set: sql' in str(refused.value)
        finally:
            client.invoke_binding('sqldb', 'exec', '', {'sql': f'DROP TABLE {table}'})

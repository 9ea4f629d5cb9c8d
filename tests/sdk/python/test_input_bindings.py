"""Input bindings reaching apps as daprd delivers them — `bindings.cron` fired by the scheduler, `bindings.rabbitmq`
and `bindings.mqtt3` read by the workers — with daprd's `OPTIONS` probe of the route and `POST /{route}` per
event to each App ID the component is scoped to, on both forms. The apps are plain HTTP servers, as in Dapr's
bindings quickstart."""

from __future__ import annotations

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from harness import HttpError
from support import dapr_client, wait_for_component

# Long enough for a few occurrences of a one-second schedule on a loaded machine.
ARRIVES_WITHIN = 20


class BindingApp:
    """An app recording each request as (method, path, headers, body); `OPTIONS` answered `probe_status`."""

    def __init__(self, probe_status: int = 200):
        self.requests: list[tuple[str, str, dict, bytes]] = []
        self.arrived = threading.Condition()
        app = self

        class Handler(BaseHTTPRequestHandler):
            def record(self, status: int):
                body = self.rfile.read(int(self.headers.get('content-length') or 0))
                with app.arrived:
                    headers = {name.lower(): value for name, value in self.headers.items()}
                    app.requests.append((self.command, self.path, headers, body))
                    app.arrived.notify_all()
                self.send_response(status)
                self.send_header('content-length', '0')
                self.end_headers()

            def do_OPTIONS(self):  # noqa: N802 - the name http.server calls
                self.record(probe_status)

            def do_POST(self):  # noqa: N802
                self.record(200)

            def log_message(self, *_):
                pass

        self.server = ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.endpoint = f'http://127.0.0.1:{self.server.server_address[1]}'

    def events(self) -> list[tuple[str, dict, bytes]]:
        return [(path, headers, body) for method, path, headers, body in self.requests if method == 'POST']

    def wait_for_events(self, count: int) -> list[tuple[str, dict, bytes]]:
        with self.arrived:
            assert self.arrived.wait_for(lambda: len(self.events()) >= count, timeout=ARRIVES_WITHIN), \
                f'{count} events expected; requests: {self.requests}'
            return self.events()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def apps():
    started: list[BindingApp] = []

    def start(**kwargs) -> BindingApp:
        app = BindingApp(**kwargs)
        started.append(app)
        return app

    yield start
    for app in started:
        app.close()


def cron(name: str, schedule: str, route: str | None = None, scopes: tuple = ()) -> str:
    metadata = f'    - name: schedule\n      value: "{schedule}"\n'
    if route:
        metadata += f'    - name: route\n      value: "{route}"\n'
    scoped = f'scopes: [{", ".join(scopes)}]\n' if scopes else ''
    return (f'apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: {name}\nspec:\n'
            f'  type: bindings.cron\n  version: v1\n  metadata:\n{metadata}{scoped}')


def test_a_cron_binding_fires_at_the_apps_it_is_scoped_to(tenants, apps):
    listening, refusing, outside = apps(), apps(probe_status=404), apps()
    project = tenants.project(apps=())
    tenants.add_app(project, 'batch', app_endpoint=listening.endpoint)
    tenants.add_app(project, 'reports', app_endpoint=refusing.endpoint)
    tenants.add_app(project, 'web', app_endpoint=outside.endpoint)
    tenants.deployment.control.put_component(
        project.name, 'checkout', cron('checkout', '@every 1s', route='/batch-jobs', scopes=('batch', 'reports')))
    events = listening.wait_for_events(2)
    assert listening.requests[0][:2] == ('OPTIONS', '/batch-jobs'), 'daprd probes the route first'
    for path, headers, body in events:
        assert (path, body) == ('/batch-jobs', b'')
        assert headers['content-type'] == 'application/json'
        assert headers['timezone'] == 'UTC'
        assert headers['readtimeutc'].endswith('+0000 UTC')
    # By now every App ID in scope was probed at each occurrence: the one answering 404 takes no events, and an
    # App ID outside the component's scopes hears nothing at all.
    assert refusing.requests and all(method == 'OPTIONS' for method, *_ in refusing.requests)
    assert outside.requests == []


def test_a_cron_binding_without_a_route_posts_to_its_name(tenants, apps):
    app = apps()
    project = tenants.project(apps=())
    tenants.add_app(project, 'batch', app_endpoint=app.endpoint)
    tenants.deployment.control.put_component(project.name, 'tick', cron('tick', '* * * * * *'))
    (path, _, _), *_ = app.wait_for_events(1)
    assert path == '/tick'


def test_a_bad_schedule_is_refused_at_apply(tenants):
    project = tenants.project(apps=('batch',))
    for schedule, expected in (('every minute', 'schedule'), ('TZ=Europe/Paris 0 * * * *', 'UTC')):
        with pytest.raises(HttpError) as refused:
            tenants.deployment.control.put_component(project.name, 'tick', cron('tick', schedule))
        assert refused.value.status == 400 and expected in str(refused.value), refused.value
    tenants.deployment.control.expect(404, 'GET', f'/projects/{project.name}/components/tick')


@pytest.mark.parametrize('broker', ['rabbitmq', 'mqtt3'])
def test_what_an_app_publishes_through_a_broker_binding_reaches_the_app_reading_it(tenants, apps, broker):
    """Dapr's bindings quickstart with a broker: the output side (`create` through the SDK) publishes, the input
    side of the same component delivers each message to the app at `POST /{name}` with its metadata."""
    app = apps()
    project = tenants.project(apps=())
    tenants.add_app(project, 'batch', app_endpoint=app.endpoint)
    unique = uuid.uuid4().hex
    fields = ({'host': 'amqp://guest:guest@127.0.0.1:5672', 'queueName': f'sdk-{unique}', 'deleteWhenUnused': 'true'}
              if broker == 'rabbitmq' else {'url': 'mqtt://127.0.0.1:1883', 'topic': f'sdk/{unique}'})
    metadata = ''.join(f'    - name: {key}\n      value: "{value}"\n' for key, value in fields.items())
    yaml = (f'apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: orders\nspec:\n'
            f'  type: bindings.{broker}\n  version: v1\n  metadata:\n{metadata}')
    tenants.deployment.control.put_component(project.name, 'orders', yaml)
    with dapr_client(project.apps['batch']) as client:
        wait_for_component(client, 'orders')
        # The reader subscribes once a worker derived it from the change; an MQTT broker keeps nothing for a
        # subscription not made yet, so publish until the first message arrives.
        deadline = time.monotonic() + ARRIVES_WITHIN
        while not app.events():
            assert time.monotonic() < deadline, f'nothing arrived; requests: {app.requests}'
            client.invoke_binding('orders', 'create', 'warm-up')
            with app.arrived:
                app.arrived.wait_for(lambda: app.events(), timeout=0.5)
        seen = len(app.events())
        client.invoke_binding('orders', 'create', json.dumps({'orderId': 42}), {'kind': 'express'})
        events = app.wait_for_events(seen + 1)
    last_path, last_headers, last_body = next(event for event in events if event[2] != b'warm-up')
    assert (last_path, json.loads(last_body)) == ('/orders', {'orderId': 42})
    assert app.requests[0][:2] == ('OPTIONS', '/orders'), 'daprd probes the route first'
    if broker == 'rabbitmq':
        assert last_headers['kind'] == 'express', 'request metadata travels as AMQP headers'
    else:
        assert last_headers['topic'] == f'sdk/{unique}'

"""Pub/sub through the Python SDK (gRPC) and a push subscriber app, on the managed `pubsub` component of
fresh projects: publishing (single and bulk), streaming subscriptions (SubscribeTopicEventsAlpha1), push
delivery to an App ID's appEndpoint from declarative subscriptions and from the app's own /dapr/subscribe,
routing rules, retries, dead-letter topics, tenant isolation and topic scopes.

A push subscription starts taking messages a moment after it is created and never sees what was published
before, so push tests publish probes (`{"probe": n}`) until one is delivered before publishing what they
assert on; probes that arrive later are ignored. A streaming subscription is live once `subscribe()` has
returned (the platform answers the stream's initial request after creating its consumer group).
"""

from __future__ import annotations

import json
import queue
import re
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any, Callable, Optional

import grpc
import pytest
from dapr.clients import BulkPublishEntry
from dapr.clients.exceptions import DaprGrpcError
from dapr.clients.grpc._response import TopicEventResponse
from dapr.common.pubsub.subscription import StreamCancelledError, StreamInactiveError
from flask import Flask, Response, request
from werkzeug.serving import WSGIRequestHandler, make_server

import harness
from support import dapr_client, dapr_http, describe, error_info, json_bytes, wait_for_component

PUBSUB = 'pubsub'
# How long an event may take to arrive once its subscription is live.
DELIVERY_TIMEOUT = 20.0
# How long a new push subscription may take to go live (the deliverer rescans every 2 s).
LIVE_TIMEOUT = 30.0
TRACEPARENT = re.compile(r'^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$')


class Inbox:
    """What one subscriber received, in arrival order. `take` hands each item out once; `received` keeps all."""

    def __init__(self, describe_item: Callable[[Any], str]):
        self._describe = describe_item
        self._condition = threading.Condition()
        self._all: list[Any] = []
        self._pending: list[Any] = []
        self._failure: Optional[BaseException] = None

    def put(self, item) -> None:
        with self._condition:
            self._all.append(item)
            self._pending.append(item)
            self._condition.notify_all()

    def fail(self, error: BaseException) -> None:
        with self._condition:
            self._failure = error
            self._condition.notify_all()

    def received(self) -> list[Any]:
        with self._condition:
            return list(self._all)

    def take(self, predicate, what: str, timeout: float = DELIVERY_TIMEOUT):
        """The first item not taken yet that satisfies `predicate`, waiting up to `timeout` seconds for it."""
        deadline = time.monotonic() + timeout
        with self._condition:
            while True:
                for index, item in enumerate(self._pending):
                    if predicate(item):
                        del self._pending[index]
                        return item
                if self._failure is not None:
                    raise AssertionError(f'waiting for {what}, the subscriber failed: {self._failure!r}')
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    seen = '; '.join(self._describe(item) for item in self._all) or 'nothing'
                    raise AssertionError(f'{what} did not arrive within {timeout} s; received: {seen}')
                self._condition.wait(remaining)


# --- Streaming subscriptions ------------------------------------------------------------------------------

def describe_message(message) -> str:
    data = message.data() if message.data() is not None else message.raw_data()
    return f'[{message.topic()} id={message.id()} data={data!r}]'


class Stream:
    """A streaming subscription (`DaprClient.subscribe`) read by a thread into an Inbox of SubscriptionMessages;
    the test answers them with `subscription.respond_*`."""

    def __init__(self, client, topic: str, pubsub: str = PUBSUB, dead_letter_topic: Optional[str] = None):
        self.subscription = client.subscribe(pubsub, topic, dead_letter_topic=dead_letter_topic)
        self.inbox = Inbox(describe_message)
        self._closing = False
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while True:
            try:
                message = self.subscription.next_message()
            except (StreamInactiveError, StreamCancelledError):
                return
            except Exception as error:  # noqa: BLE001 - handed to the test waiting for a message
                if not self._closing:
                    self.inbox.fail(error)
                return
            self.inbox.put(message)

    def take(self, predicate, what: str, timeout: float = DELIVERY_TIMEOUT):
        return self.inbox.take(predicate, what, timeout)

    def take_data(self, data, timeout: float = DELIVERY_TIMEOUT):
        """The next message whose data (parsed by the SDK) is `data`."""
        return self.take(lambda message: message.data() == data, f'the event {data!r}', timeout)

    def ids(self) -> list[str]:
        return [message.id() for message in self.inbox.received()]

    def close(self) -> None:
        self._closing = True
        self.subscription.close()
        self._thread.join(timeout=10)
        assert not self._thread.is_alive(), 'the stream reader did not stop after close()'

    def __enter__(self) -> 'Stream':
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def publish_json(client, topic: str, value, pubsub: str = PUBSUB, **kwargs) -> None:
    client.publish_event(pubsub, topic, json.dumps(value), data_content_type='application/json', **kwargs)


def assert_trace_fields(event: dict, trace_id: Optional[str] = None) -> None:
    """The trace fields of daprd's envelope are there; `traceid` repeats `traceparent`, a W3C traceparent
    (carrying `trace_id` when the publisher sent one; otherwise the trace the gateway started)."""
    for name in ('traceid', 'traceparent', 'tracestate'):
        assert name in event, f'{name} missing from {event}'
    assert TRACEPARENT.match(event['traceparent']), event
    assert event['traceid'] == event['traceparent'], event
    if trace_id is not None:
        assert event['traceparent'].split('-')[1] == trace_id, f'the publisher\'s trace {trace_id} is lost: {event}'


# --- Push subscriber app ----------------------------------------------------------------------------------

@dataclass
class Push:
    """One POST the platform made to the subscriber app."""

    path: str
    headers: dict[str, str]  # names in lower case
    body: bytes
    event: Any  # the body parsed as JSON (None when it is not JSON)
    attempt: int  # how many POSTs to this path carried this event id so far, this one included
    answer: tuple[int, bytes] = (200, b'')

    @property
    def data(self):
        return self.event.get('data') if isinstance(self.event, dict) else None

    @property
    def id(self):
        return self.event.get('id') if isinstance(self.event, dict) else None


def describe_push(push: Push) -> str:
    return f'[POST {push.path} id={push.id} data={push.data!r} attempt={push.attempt} answered {push.answer[0]}]'


def verdict(status: str) -> tuple[int, bytes]:
    """A 200 answer carrying `{"status": status}`."""
    return 200, json_bytes({'status': status})


def is_probe(push: Push) -> bool:
    return isinstance(push.data, dict) and 'probe' in push.data


class QuietRequestHandler(WSGIRequestHandler):
    """Werkzeug's request handler without the access log, one request per connection (HTTP/1.0, as a
    threaded werkzeug server would otherwise keep connections alive): once `SubscriberApp.close` returns,
    nothing of the app answers the platform any more."""

    protocol_version = 'HTTP/1.0'

    def log_request(self, *args) -> None:
        pass


def reply(status: int, body: bytes) -> Response:
    """`body` with `status`, typed application/json when there is a body (an empty one carries no type)."""
    response = Response(body, status=status)
    if body:
        response.content_type = 'application/json'
    else:
        del response.headers['Content-Type']
    return response


class SubscriberApp:
    """An app the platform pushes events to: a Flask app served by werkzeug on 127.0.0.1, in a thread.

    `subscriptions` is what GET /dapr/subscribe answers (None: 404), after answering 503 to the first
    `unready_subscribe_answers` asks (an app that is not ready yet). `answer(push)` decides the reply to each
    POST, to any path, as (status, body); by default 200 with an empty body (SUCCESS). Every POST lands in
    `inbox`."""

    def __init__(self, subscriptions: Optional[list] = None):
        self.subscriptions = subscriptions
        self.unready_subscribe_answers = 0
        self.refused_subscribe_requests = 0
        self.answer: Callable[[Push], tuple[int, bytes]] = lambda push: (200, b'')
        self.inbox = Inbox(describe_push)
        self.subscribe_requests: list[dict[str, str]] = []
        self._attempts: dict[tuple[str, Optional[str]], int] = {}
        self._lock = threading.Lock()

        flask_app = Flask(__name__, static_folder=None)
        # Every path reaches the views as sent: no redirect for doubled slashes.
        flask_app.url_map.merge_slashes = False
        flask_app.add_url_rule('/', 'get', self._get, defaults={'path': ''}, methods=['GET'])
        flask_app.add_url_rule('/<path:path>', 'get', self._get, methods=['GET'])
        flask_app.add_url_rule('/', 'post', self._post, defaults={'path': ''}, methods=['POST'])
        flask_app.add_url_rule('/<path:path>', 'post', self._post, methods=['POST'])
        self.flask_app = flask_app

        self._server = make_server(host='127.0.0.1', port=0, app=flask_app, threaded=True,
                                   request_handler=QuietRequestHandler)
        self.endpoint = f'http://127.0.0.1:{self._server.server_port}'
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @staticmethod
    def _request_path() -> str:
        """The path the platform asked for, with its query string if it had one."""
        path = request.path
        if request.query_string:
            path += '?' + request.query_string.decode('latin-1')
        return path

    @staticmethod
    def _request_headers() -> dict[str, str]:
        return {name.lower(): value for name, value in request.headers.items()}

    def _get(self, path: str) -> Response:
        headers = self._request_headers()
        if self._request_path() != '/dapr/subscribe' or self.subscriptions is None:
            return reply(404, b'')
        with self._lock:
            if self.refused_subscribe_requests < self.unready_subscribe_answers:
                self.refused_subscribe_requests += 1
                return reply(503, b'')
            self.subscribe_requests.append(headers)
        return reply(200, json_bytes(self.subscriptions))

    def _post(self, path: str) -> Response:
        body = request.get_data(cache=False)
        try:
            event = json.loads(body)
        except ValueError:
            event = None
        path = self._request_path()
        key = (path, event.get('id') if isinstance(event, dict) else None)
        with self._lock:
            attempt = self._attempts.get(key, 0) + 1
            self._attempts[key] = attempt
        push = Push(path, self._request_headers(), body, event, attempt)
        try:
            push.answer = self.answer(push)
        except Exception as error:  # noqa: BLE001 - a broken answer function fails the waiting test
            self.inbox.fail(error)
            push.answer = (500, b'')
        self.inbox.put(push)
        return reply(*push.answer)

    def take(self, predicate, what: str, timeout: float = DELIVERY_TIMEOUT) -> Push:
        return self.inbox.take(predicate, what, timeout)

    def take_data(self, data, path: Optional[str] = None, timeout: float = DELIVERY_TIMEOUT) -> Push:
        where = f' at {path}' if path else ''
        return self.take(
            lambda push: push.data == data and (path is None or push.path == path), f'the event {data!r}{where}',
            timeout,
        )

    def pushes(self, include_probes: bool = False) -> list[Push]:
        return [push for push in self.inbox.received() if include_probes or not is_probe(push)]

    def close(self) -> None:
        """Stops accepting, waits for the serving thread, and closes the listening socket."""
        self._server.shutdown()
        self._thread.join(timeout=10)
        self._server.server_close()
        assert not self._thread.is_alive(), f'the subscriber app at {self.endpoint} did not stop'


@pytest.fixture
def subscriber_apps():
    """Makes SubscriberApps, all closed at the end of the test."""
    apps = []

    def make(subscriptions=None) -> SubscriberApp:
        app = SubscriberApp(subscriptions)
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.close()


def subscription_yaml(name: str, topic: str, default: Optional[str] = None, rules=(), dead_letter_topic=None,
                      scopes=(), pubsub: str = PUBSUB) -> str:
    """A dapr.io/v2alpha1 Subscription (JSON is YAML)."""
    routes: dict[str, Any] = {}
    if rules:
        routes['rules'] = [{'match': match, 'path': path} for match, path in rules]
    if default:
        routes['default'] = default
    spec: dict[str, Any] = {'pubsubname': pubsub, 'topic': topic, 'routes': routes}
    if dead_letter_topic:
        spec['deadLetterTopic'] = dead_letter_topic
    document: dict[str, Any] = {
        'apiVersion': 'dapr.io/v2alpha1',
        'kind': 'Subscription',
        'metadata': {'name': name},
        'spec': spec,
    }
    if scopes:
        document['scopes'] = list(scopes)
    return json.dumps(document, indent=2)


def wait_until_live(publish: Callable[[Any], None], app: SubscriberApp, what: str,
                    timeout: float = LIVE_TIMEOUT, path: Optional[str] = None) -> Push:
    """Publishes probes until one is delivered to `app` (at `path`, if given): the subscription is live."""
    deadline = time.monotonic() + timeout
    sent = 0
    while True:
        sent += 1
        publish({'probe': sent})
        try:
            return app.take(lambda push: is_probe(push) and (path is None or push.path == path), 'a probe',
                            timeout=max(0.0, min(1.0, deadline - time.monotonic())))
        except AssertionError:
            if time.monotonic() >= deadline:
                seen = '; '.join(describe_push(push) for push in app.inbox.received()) or 'nothing'
                raise AssertionError(
                    f'{what}: none of {sent} probes was delivered within {timeout} s; the app received: {seen}'
                ) from None


def subscribed_project(tenants, subscriber: SubscriberApp):
    """A project whose `orders` App ID publishes and whose `shipping` App ID's app, `subscriber`, receives the topic
    `orders` at `/orders` (a declarative subscription)."""
    project = tenants.project(apps=('orders',))
    tenants.add_app(project, 'shipping', app_endpoint=subscriber.endpoint)
    tenants.deployment.control.put_subscription(
        project.name, 'shipping-orders',
        subscription_yaml('shipping-orders', 'orders', default='/orders', scopes=['shipping']),
    )
    return project


def publish_over_http(app, value, headers: Optional[dict] = None) -> dict:
    """Publishes `value` as JSON to `orders` over HTTP; the answer's headers."""
    status, body, answer = dapr_http(app, 'POST', '/v1.0/publish/pubsub/orders', json_bytes(value),
                                     {'Content-Type': 'application/json', **(headers or {})})
    assert status == 204, (status, body)
    return answer


@pytest.fixture
def shop(tenants):
    """A fresh project with two App IDs: orders (publishes) and shipping (subscribes)."""
    return tenants.project(apps=('orders', 'shipping'))


# --- Streaming ------------------------------------------------------------------------------------------------

@pytest.mark.filterwarnings('ignore:metadata argument is deprecated')
def test_streaming_subscription_receives_json_events_and_redelivers_a_retry(shop):
    with dapr_client(shop.apps['orders']) as publisher, dapr_client(shop.apps['shipping']) as subscriber, \
            Stream(subscriber, 'orders') as stream:
        publish_json(publisher, 'orders', {'order': 1, 'items': ['tea', 'cake'], 'note': 'grüße ✓'})
        publish_json(publisher, 'orders', {'order': 2})
        first = stream.take_data({'order': 1, 'items': ['tea', 'cake'], 'note': 'grüße ✓'})
        second = stream.take_data({'order': 2})

        for message in (first, second):
            assert message.id(), describe_message(message)
            assert message.source() == 'orders', 'source is the publishing App ID'
            assert message.topic() == 'orders'
            assert message.pubsub_name() == PUBSUB
            assert message.type() == 'com.dapr.event.sent'
            assert message.spec_version() == '1.0'
            assert message.data_content_type() == 'application/json'
            assert json.loads(message.raw_data()) == message.data()
            extensions = message.extensions()
            assert extensions.get('time'), extensions
            assert_trace_fields(extensions)
        assert first.id() != second.id()

        stream.subscription.respond_success(first)
        stream.subscription.respond_retry(second)
        again = stream.take(lambda message: message.id() == second.id(), 'the event answered RETRY, again')
        assert again.data() == {'order': 2}
        assert again.source() == 'orders'
        stream.subscription.respond_success(again)

        # An event published after both were settled arrives, and nothing answered SUCCESS came back before it.
        # It is published with a traceparent in the gRPC metadata, which the event carries on.
        trace_id = '0af7651916cd43dd8448eb211c80319c'
        publish_json(publisher, 'orders', {'order': 3},
                     metadata=(('traceparent', f'00-{trace_id}-b7ad6b7169203331-01'),))
        third = stream.take_data({'order': 3})
        assert_trace_fields(third.extensions(), trace_id)
        stream.subscription.respond_success(third)
        ids = stream.ids()
        assert ids.count(first.id()) == 1, f'an event answered SUCCESS came again: {ids}'
        assert ids.count(second.id()) == 2, f'the event answered RETRY: {ids}'


def test_unanswered_stream_events_go_to_the_next_stream(shop):
    with dapr_client(shop.apps['orders']) as publisher, dapr_client(shop.apps['shipping']) as subscriber:
        with Stream(subscriber, 'orders') as stream:
            publish_json(publisher, 'orders', {'order': 'left open'})
            unanswered = stream.take_data({'order': 'left open'})
        # The stream closed without answering: the event goes back to the group for the next stream.
        with Stream(subscriber, 'orders') as stream:
            again = stream.take(lambda message: message.id() == unanswered.id(), 'the unanswered event, again')
            assert again.data() == {'order': 'left open'}
            stream.subscription.respond_success(again)


def test_subscribe_with_handler_gets_every_event(shop):
    received: queue.Queue = queue.Queue()

    def handler(message):
        received.put((message.topic(), message.source(), message.data()))
        return TopicEventResponse('success')

    with dapr_client(shop.apps['orders']) as publisher, dapr_client(shop.apps['shipping']) as subscriber:
        close = subscriber.subscribe_with_handler(PUBSUB, 'orders', handler)
        try:
            for n in range(5):
                publish_json(publisher, 'orders', {'n': n})
            got = []
            deadline = time.monotonic() + DELIVERY_TIMEOUT
            while len(got) < 5:
                try:
                    got.append(received.get(timeout=max(0.0, deadline - time.monotonic())))
                except queue.Empty:
                    raise AssertionError(f'5 events published, {len(got)} handled within {DELIVERY_TIMEOUT} s: {got}')
        finally:
            close()
    assert sorted(got, key=lambda item: item[2]['n']) == [('orders', 'orders', {'n': n}) for n in range(5)]


# --- Bulk publish -------------------------------------------------------------------------------------------

def test_bulk_publish_reports_no_failures_and_every_event_arrives(shop):
    plain = [json.dumps({'bulk': n}) for n in range(10)]
    entries = [
        BulkPublishEntry(json.dumps({'bulk': 'entry-json'}), content_type='application/json', entry_id='e-json'),
        BulkPublishEntry('plain words', content_type='text/plain', entry_id='e-text'),
    ]
    with dapr_client(shop.apps['orders']) as publisher, dapr_client(shop.apps['shipping']) as subscriber, \
            Stream(subscriber, 'orders') as stream:
        response = publisher.publish_events(PUBSUB, 'orders', plain, data_content_type='application/json')
        assert response.failed_entries == [], [(e.entry_id, e.error) for e in response.failed_entries]
        response = publisher.publish_events(PUBSUB, 'orders', entries)
        assert response.failed_entries == [], [(e.entry_id, e.error) for e in response.failed_entries]

        messages = [stream.take_data({'bulk': n}) for n in range(10)]
        messages.append(stream.take_data({'bulk': 'entry-json'}))
        text = stream.take_data('plain words')
        assert text.data_content_type() == 'text/plain'
        messages.append(text)
        for message in messages:
            assert message.source() == 'orders' and message.topic() == 'orders', describe_message(message)
            stream.subscription.respond_success(message)
        assert len({message.id() for message in messages}) == len(messages), 'event ids repeat'


# --- Push delivery ------------------------------------------------------------------------------------------

def test_declarative_subscription_pushes_daprs_cloudevent(tenants, subscriber_apps):
    app = subscriber_apps()
    project = subscribed_project(tenants, app)
    orders = project.apps['orders']
    with dapr_client(orders) as publisher:
        wait_until_live(lambda value: publish_json(publisher, 'orders', value), app, 'declarative subscription')
        publish_json(publisher, 'orders', {'order': 7, 'lines': [{'sku': 'tea', 'qty': 2}]})
        push = app.take_data({'order': 7, 'lines': [{'sku': 'tea', 'qty': 2}]})

    assert push.path == '/orders'
    assert push.headers.get('content-type', '').startswith('application/cloudevents+json'), push.headers
    event = push.event
    assert isinstance(event, dict), push.body
    assert isinstance(event.get('id'), str) and event['id'], event
    assert event.get('specversion') == '1.0', event
    assert event.get('datacontenttype') == 'application/json', event
    assert event.get('source') == 'orders', f'source is the publishing App ID: {event}'
    assert event.get('type') == 'com.dapr.event.sent', event
    assert event.get('topic') == 'orders', event
    assert event.get('pubsubname') == PUBSUB, event
    assert event.get('time'), event
    assert_trace_fields(event)
    assert isinstance(event['data'], dict), event

    # Published over HTTP with a traceparent: the event carries that trace.
    trace_id = '4bf92f3577b34da6a3ce929d0e0e4736'
    publish_over_http(orders, {'order': 8}, {'traceparent': f'00-{trace_id}-00f067aa0ba902b7-01'})
    traced = app.take_data({'order': 8})
    assert_trace_fields(traced.event, trace_id)
    # The app is called within the delivery's own span (daprd's `pubsub/<topic>`), a child in the same trace.
    delivered = traced.headers.get('traceparent', '')
    assert TRACEPARENT.match(delivered), traced.headers
    assert delivered.split('-')[1] == trace_id and delivered != traced.event['traceparent'], traced.headers
    assert traced.event['source'] == 'orders' and traced.event['datacontenttype'] == 'application/json'
    assert [push.data for push in app.pushes()] == [{'order': 7, 'lines': [{'sku': 'tea', 'qty': 2}]}, {'order': 8}]

    # Publishes and deliveries are counted under daprd's metric names (the embedded form's one process serves
    # them), with how long each message waited for its first delivery.
    if tenants.deployment.form == 'embedded':
        control = tenants.deployment.control
        status, text, _ = harness.http_request(
            'GET', f'{control.base_url}/metrics', None, {'Authorization': f'Bearer {control.admin_token}'})
        assert status == 200
        text = text.decode()
        project_id = project.answer['filesDir'].removeprefix('projects/')
        labels = f'project="{project.name}",project_id="{project_id}"'
        delivered = ('dapr_component_pubsub_ingress_count{app_id="shipping",component="pubsub",'
                     f'process_status="success",{labels},status="",topic="orders"}}')
        published = ('dapr_component_pubsub_egress_count{app_id="orders",component="pubsub",'
                     f'{labels},success="true",topic="orders"}}')
        waited = ('outrigger_pubsub_delivery_lag_seconds_count{app_id="shipping",component="pubsub",'
                  f'{labels},topic="orders"}}')
        for series in (delivered, published, waited):
            assert series in text, f'{series} missing from {text}'
        assert 'outrigger_cache_lookups_total{cache="worker_components",result="hit"}' in text, text


def test_routing_rules_pick_the_path_by_event_data(tenants, subscriber_apps):
    app = subscriber_apps()
    project = tenants.project(apps=('orders',))
    tenants.add_app(project, 'shipping', app_endpoint=app.endpoint)
    # Guarded with has(): daprd fails the delivery when a rule reads a field the event lacks (the probes).
    rules = [
        ('has(event.data.kind) && event.data.kind == "widget"', '/widgets'),
        ('has(event.data.priority) && event.data.priority > 5', 'urgent'),
        ('event.type == "com.dapr.event.sent" && has(event.data.kind) && event.data.kind.startsWith("gad")',
         '/gadgets'),
    ]
    tenants.deployment.control.put_subscription(
        project.name, 'routed', subscription_yaml('routed', 'orders', default='/other', rules=rules),
    )
    with dapr_client(project.apps['orders']) as publisher:
        wait_until_live(lambda value: publish_json(publisher, 'orders', value), app, 'routed subscription',
                        path='/other')
        events = {
            '/widgets': {'kind': 'widget', 'priority': 9},
            '/urgent': {'kind': 'bolt', 'priority': 7},
            '/gadgets': {'kind': 'gadget', 'priority': 1},
            '/other': {'kind': 'bolt', 'priority': 1},
        }
        for value in events.values():
            publish_json(publisher, 'orders', value)
        for path, value in events.items():
            push = app.take_data(value)
            assert push.path == path, f'{value} went to {push.path}, expected {path}'
    assert len(app.pushes()) == 4, [describe_push(push) for push in app.pushes()]


def test_programmatic_subscriptions_from_dapr_subscribe(tenants, subscriber_apps):
    app = subscriber_apps(subscriptions=[
        {'pubsubname': PUBSUB, 'topic': 'inventory', 'route': '/inventory'},
        {
            'pubsubname': PUBSUB,
            'topic': 'alerts',
            'routes': {'rules': [{'match': 'has(event.data.level) && event.data.level == "critical"',
                                  'path': '/alerts/critical'}],
                       'default': '/alerts'},
        },
    ])
    project = tenants.project(apps=('orders',))
    tenants.add_app(project, 'warehouse', app_endpoint=app.endpoint)
    with dapr_client(project.apps['orders']) as publisher:
        wait_until_live(lambda value: publish_json(publisher, 'inventory', value), app, '/dapr/subscribe inventory',
                        path='/inventory')
        wait_until_live(lambda value: publish_json(publisher, 'alerts', value), app, '/dapr/subscribe alerts',
                        path='/alerts')
        publish_json(publisher, 'inventory', {'sku': 'tea', 'stock': 3})
        publish_json(publisher, 'alerts', {'level': 'critical', 'what': 'fire'})
        publish_json(publisher, 'alerts', {'level': 'info', 'what': 'drill'})
        publish_json(publisher, 'unsubscribed', {'never': 'delivered'})
        inventory = app.take_data({'sku': 'tea', 'stock': 3}, path='/inventory')
        assert inventory.event['topic'] == 'inventory' and inventory.event['source'] == 'orders', inventory.event
        critical = app.take_data({'level': 'critical', 'what': 'fire'}, path='/alerts/critical')
        assert critical.event['topic'] == 'alerts', critical.event
        app.take_data({'level': 'info', 'what': 'drill'}, path='/alerts')
    assert app.subscribe_requests, 'the platform never asked GET /dapr/subscribe'
    assert all(push.data != {'never': 'delivered'} for push in app.pushes()), app.pushes()


def test_an_app_not_ready_at_registration_is_asked_again_promptly(tenants, subscriber_apps):
    """daprd reads /dapr/subscribe once the app is ready; an app that is not ready when its App ID is
    registered is asked again within seconds (backing off from 1 s), not at the 30 s refresh."""
    app = subscriber_apps(subscriptions=[{'pubsubname': PUBSUB, 'topic': 'inventory', 'route': '/inventory'}])
    app.unready_subscribe_answers = 2
    project = tenants.project(apps=('orders',))
    tenants.add_app(project, 'warehouse', app_endpoint=app.endpoint)
    with dapr_client(project.apps['orders']) as publisher:
        wait_until_live(lambda value: publish_json(publisher, 'inventory', value), app,
                        'the subscription of an app that answered /dapr/subscribe on its third ask', timeout=15.0,
                        path='/inventory')
    assert app.refused_subscribe_requests == 2 and app.subscribe_requests


REDIS_PUBSUB = """apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: orderpubsub
spec:
  type: pubsub.redis
  version: v1
  metadata:
    - name: redisHost
      value: "127.0.0.1:6379"
"""


@pytest.mark.parametrize('pubsub', ['orderpubsub', 'pubsub'])
def test_what_was_published_before_the_subscriber_first_answered_arrives(tenants, subscriber_apps, pubsub):
    """Dapr's pub/sub quickstart, in the order people run it: the publisher publishes at once, the subscriber's
    app starts later. daprd creates the Redis consumer group at 0, so nothing published before the subscriber's
    first answer to /dapr/subscribe is lost; nor on the managed `pubsub` (the SQL queue embedded, the JetStream
    stream distributed)."""
    app = subscriber_apps(subscriptions=[{'pubsubname': pubsub, 'topic': 'orders', 'route': '/orders'}])
    app.unready_subscribe_answers = 1
    project = tenants.project(apps=('checkout',))
    tenants.deployment.control.put_component(project.name, 'orderpubsub', REDIS_PUBSUB)
    with dapr_client(project.apps['checkout']) as publisher:
        wait_for_component(publisher, pubsub)
        for order in range(3):
            publish_json(publisher, 'orders', {'orderId': order}, pubsub=pubsub)
        tenants.add_app(project, 'order-processor', app_endpoint=app.endpoint)
        for order in range(3):
            app.take_data({'orderId': order}, path='/orders')
    assert app.refused_subscribe_requests == 1


def test_retry_then_success_is_redelivered(tenants, subscriber_apps):
    app = subscriber_apps()

    # First attempts: RETRY as a verdict, a 500, or an unknown status (retried too); then SUCCESS.
    first_answers = {'retried': verdict('RETRY'), 'failed': (500, b'{"boom":true}'), 'confused': verdict('MAYBE')}

    def answer(push: Push):
        if is_probe(push) or push.attempt > 1:
            return verdict('SUCCESS') if push.data == {'order': 'retried'} else (200, b'')
        return first_answers.get(push.data.get('order'), (200, b''))

    app.answer = answer
    project = tenants.project(apps=('orders',))
    tenants.add_app(project, 'shipping', app_endpoint=app.endpoint)
    tenants.deployment.control.put_subscription(
        project.name, 'retrying', subscription_yaml('retrying', 'orders', default='/orders'),
    )
    with dapr_client(project.apps['orders']) as publisher:
        wait_until_live(lambda value: publish_json(publisher, 'orders', value), app, 'subscription')
        for name in ('retried', 'failed', 'confused'):
            publish_json(publisher, 'orders', {'order': name})
        for name in ('retried', 'failed', 'confused'):
            first = app.take(lambda push, name=name: push.data == {'order': name} and push.attempt == 1,
                             f'the first delivery of {name}')
            second = app.take(lambda push, first=first: push.id == first.id, f'the redelivery of {name}')
            assert second.attempt == 2 and second.data == first.data
            assert second.event == first.event, 'the redelivered event changed'
        # Settled now: an event published afterwards arrives, and none of the three came a third time.
        publish_json(publisher, 'orders', {'order': 'after'})
        app.take_data({'order': 'after'})
    attempts = {}
    for push in app.pushes():
        attempts[push.data['order']] = max(attempts.get(push.data['order'], 0), push.attempt)
    assert attempts == {'retried': 2, 'failed': 2, 'confused': 2, 'after': 1}, attempts


def test_undeliverable_events_go_to_the_dead_letter_topic(tenants, subscriber_apps):
    app = subscriber_apps()

    def answer(push: Push):
        if push.path != '/orders' or is_probe(push):
            return 200, b''
        return {'missing': (404, b''), 'dropped': verdict('DROP'), 'broken': (503, b'')}[push.data['order']]

    app.answer = answer
    project = tenants.project(apps=('orders',))
    tenants.add_app(project, 'shipping', app_endpoint=app.endpoint)
    control = tenants.deployment.control
    control.put_subscription(project.name, 'orders-sub', subscription_yaml(
        'orders-sub', 'orders', default='/orders', dead_letter_topic='orders-dead', scopes=['shipping']))
    # A second subscription, on the dead-letter topic, shows what went there.
    control.put_subscription(project.name, 'dead-sub', subscription_yaml(
        'dead-sub', 'orders-dead', default='/dead', scopes=['shipping']))
    with dapr_client(project.apps['orders']) as publisher:
        wait_until_live(lambda value: publish_json(publisher, 'orders', value), app, 'orders', path='/orders')
        wait_until_live(lambda value: publish_json(publisher, 'orders-dead', value), app, 'orders-dead',
                        path='/dead')
        for name in ('missing', 'dropped', 'broken'):
            publish_json(publisher, 'orders', {'order': name})

        for name in ('missing', 'dropped'):
            refused = app.take_data({'order': name}, path='/orders')
            dead = app.take_data({'order': name}, path='/dead')
            assert dead.id == refused.id, (refused.event, dead.event)
            assert dead.event['topic'] == 'orders', 'the dead-lettered event is the original one'
            assert dead.event['source'] == 'orders', dead.event
        # Answered 503 every time: dead-lettered after 5 attempts (backoff 250 ms, 500 ms, 1 s, 2 s).
        dead = app.take_data({'order': 'broken'}, path='/dead', timeout=DELIVERY_TIMEOUT + 10)
        tries = [push for push in app.pushes() if push.path == '/orders' and push.data == {'order': 'broken'}]
        assert len(tries) == 5, [describe_push(push) for push in tries]
        assert {push.id for push in tries} == {dead.id}
    assert [push.attempt for push in app.pushes() if push.path == '/orders' and push.data != {'order': 'broken'}] \
        == [1, 1], 'a 404 or DROP was retried'


# --- Tenants and scopes -------------------------------------------------------------------------------------

def test_another_project_never_receives_the_topic(tenants, subscriber_apps):
    first, second = tenants.project(apps=('orders', 'shipping')), tenants.project(apps=('orders', 'shipping'))
    apps = {}
    for project in (first, second):
        apps[project.name] = subscriber_apps()
        tenants.add_app(project, 'warehouse', app_endpoint=apps[project.name].endpoint)
        tenants.deployment.control.put_subscription(
            project.name, 'warehouse-orders', subscription_yaml('warehouse-orders', 'orders', default='/orders'),
        )
    with ExitStack() as stack:
        clients = {
            (project.name, name): stack.enter_context(dapr_client(project.apps[name]))
            for project in (first, second) for name in ('orders', 'shipping')
        }
        streams = {
            project.name: stack.enter_context(Stream(clients[(project.name, 'shipping')], 'orders'))
            for project in (first, second)
        }
        for project in (first, second):
            publisher = clients[(project.name, 'orders')]
            wait_until_live(lambda value, publisher=publisher: publish_json(publisher, 'orders', value),
                            apps[project.name], f'push subscription of {project.name}')

        # The first project publishes; its subscribers get everything.
        for n in range(3):
            publish_json(clients[(first.name, 'orders')], 'orders', {'from': first.name, 'n': n})
        for n in range(3):
            streams[first.name].take_data({'from': first.name, 'n': n})
            apps[first.name].take_data({'from': first.name, 'n': n})
        # Then the second publishes a marker; its subscribers get the marker and nothing of the first's.
        publish_json(clients[(second.name, 'orders')], 'orders', {'from': second.name, 'marker': True})
        streams[second.name].take_data({'from': second.name, 'marker': True})
        apps[second.name].take_data({'from': second.name, 'marker': True})

        for project, other in ((second, first), (first, second)):
            leaked = [describe_message(m) for m in streams[project.name].inbox.received()
                      if isinstance(m.data(), dict) and m.data().get('from') == other.name]
            leaked += [describe_push(p) for p in apps[project.name].pushes() if p.data.get('from') == other.name]
            assert not leaked, f'project {project.name} received events of {other.name}: {leaked}'


SCOPED_PUBSUB = """apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: scoped
spec:
  type: pubsub.in-memory
  version: v1
  metadata:
    - name: publishingScopes
      value: "orders=granted"
    - name: subscriptionScopes
      value: "billing=open"
    - name: allowedTopics
      value: "granted,open"
    - name: protectedTopics
      value: "secret"
"""


def assert_forbidden(app, call, topic):
    """`call` fails over gRPC with PERMISSION_DENIED, and the same publish over HTTP with 403."""
    with pytest.raises(DaprGrpcError) as raised:
        call()
    error = raised.value
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED, describe(error)
    assert error_info(error).get('metadata', {}).get('errorCode') == 'ERR_PUBSUB_FORBIDDEN', describe(error)
    status, body, _ = dapr_http(app, 'POST', f'/v1.0/publish/scoped/{topic}', b'{"x":1}',
                                {'Content-Type': 'application/json'})
    assert status == 403, (status, body)
    assert json.loads(body).get('errorCode') == 'ERR_PUBSUB_FORBIDDEN', body


def test_topic_scopes_forbid_publishing_and_subscribing(tenants):
    project = tenants.project(apps=('orders', 'billing'))
    tenants.deployment.control.put_component(project.name, 'scoped', SCOPED_PUBSUB)
    orders, billing = project.apps['orders'], project.apps['billing']
    with dapr_client(orders) as orders_client, dapr_client(billing) as billing_client:
        wait_for_component(orders_client, 'scoped')
        wait_for_component(billing_client, 'scoped')

        # orders is listed in publishingScopes: only `granted`.
        publish_json(orders_client, 'granted', {'ok': 1}, pubsub='scoped')
        assert_forbidden(orders, lambda: publish_json(orders_client, 'open', {'x': 1}, pubsub='scoped'), 'open')
        # billing is not listed: any allowed topic, but not one outside allowedTopics, nor a protected one.
        publish_json(billing_client, 'open', {'ok': 2}, pubsub='scoped')
        assert_forbidden(billing, lambda: publish_json(billing_client, 'elsewhere', {'x': 1}, pubsub='scoped'),
                         'elsewhere')
        assert_forbidden(billing, lambda: publish_json(billing_client, 'secret', {'x': 1}, pubsub='scoped'),
                         'secret')
        with pytest.raises(DaprGrpcError) as raised:
            billing_client.publish_events('scoped', 'secret', ['{"x":1}'], data_content_type='application/json')
        assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED, describe(raised.value)

        # billing may subscribe to `open` only (subscriptionScopes).
        with Stream(billing_client, 'open', pubsub='scoped') as stream:
            publish_json(billing_client, 'open', {'subscribed': True}, pubsub='scoped')
            stream.subscription.respond_success(stream.take_data({'subscribed': True}))
        with pytest.raises(Exception) as refused:
            Stream(billing_client, 'granted', pubsub='scoped').close()
        cause = refused.value.__cause__
        assert isinstance(cause, grpc.RpcError) and cause.code() == grpc.StatusCode.PERMISSION_DENIED, \
            repr(refused.value)


def test_unknown_pubsub_is_not_found(app):
    with dapr_client(app) as client:
        with pytest.raises(DaprGrpcError) as raised:
            publish_json(client, 'orders', {'x': 1}, pubsub='no-such-pubsub')
        error = raised.value
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, describe(error)
        assert 'no-such-pubsub' in (error.details() or ''), describe(error)
        assert error_info(error).get('metadata', {}).get('errorCode') == 'ERR_PUBSUB_NOT_FOUND', describe(error)
    status, body, _ = dapr_http(app, 'POST', '/v1.0/publish/no-such-pubsub/orders', b'{}',
                                {'Content-Type': 'application/json'})
    assert status == 404, (status, body)
    assert json.loads(body).get('errorCode') == 'ERR_PUBSUB_NOT_FOUND', body

"""Jobs with the Python SDK (gRPC `ScheduleJob`, `GetJob`, `DeleteJob`): the scheduler fires each job at the
App ID's app as daprd does (`POST /job/{name}` with the job's data), retries a failing trigger by the job's
failure policy, and keeps jobs apart between projects — on both forms. The app is a plain HTTP server, as Dapr's
jobs quickstart's is."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from google.protobuf.any_pb2 import Any as GrpcAny

from dapr.clients.grpc._jobs import ConstantFailurePolicy, Job
from support import dapr_client

# Long enough for a job due now to fire on a loaded machine; a scheduler that never fires fails by then.
FIRES_WITHIN = 20


class JobApp:
    """An app receiving job triggers at `/job/{name}`, answering `status`; what it received, in order."""

    def __init__(self, status: int = 200):
        self.status = status
        self.received: list[tuple[str, bytes]] = []
        self.arrived = threading.Condition()
        app = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - the name http.server calls
                body = self.rfile.read(int(self.headers.get('content-length') or 0))
                with app.arrived:
                    app.received.append((self.path, body))
                    app.arrived.notify_all()
                self.send_response(app.status)
                self.send_header('content-length', '0')
                self.end_headers()

            def log_message(self, *_):
                pass

        self.server = ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.endpoint = f'http://127.0.0.1:{self.server.server_address[1]}'

    def wait_for(self, count: int) -> list[tuple[str, bytes]]:
        with self.arrived:
            assert self.arrived.wait_for(lambda: len(self.received) >= count, timeout=FIRES_WITHIN), \
                f'{count} triggers expected, {len(self.received)} arrived: {self.received}'
            return list(self.received)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def job_app():
    app = JobApp()
    yield app
    app.close()


def json_data(value) -> GrpcAny:
    """Job data as Dapr's Python jobs example builds it: JSON bytes in an Any."""
    return GrpcAny(value=json.dumps(value).encode())


def test_a_scheduled_job_reaches_the_app_with_its_data(tenants, job_app):
    project = tenants.project(apps=())
    tenants.add_app(project, 'orders', app_endpoint=job_app.endpoint)
    with dapr_client(project.apps['orders']) as client:
        client.schedule_job(Job(name='prod-db-backup', due_time='0s', data=json_data({'task': 'backup'})))
        (path, body), = job_app.wait_for(1)
        assert path == '/job/prod-db-backup'
        assert json.loads(body) == {'task': 'backup'}, 'the Any\'s bytes arrive as sent'

        client.schedule_job(Job(name='nightly', schedule='@daily', repeats=3, ttl='72h'))
        stored = client.get_job('nightly')
        assert (stored.name, stored.schedule, stored.repeats, stored.ttl) == ('nightly', '@daily', 3, '72h')
        client.delete_job('nightly')
        with pytest.raises(Exception) as gone:
            client.get_job('nightly')
        assert 'not found' in str(gone.value)


def test_a_failing_trigger_follows_the_failure_policy(tenants):
    failing = JobApp(status=500)
    try:
        project = tenants.project(apps=())
        tenants.add_app(project, 'orders', app_endpoint=failing.endpoint)
        with dapr_client(project.apps['orders']) as client:
            policy = ConstantFailurePolicy(max_retries=2, interval_seconds=1)
            client.schedule_job(Job(name='flaky', due_time='0s', failure_policy=policy))
            tries = failing.wait_for(3)
            assert [path for path, _ in tries] == ['/job/flaky'] * 3
    finally:
        failing.close()


def test_projects_never_see_each_others_jobs(tenants):
    first = tenants.project(apps=('orders',))
    second = tenants.project(apps=('orders',))
    with dapr_client(first.apps['orders']) as owner, dapr_client(second.apps['orders']) as stranger:
        owner.schedule_job(Job(name='nightly', schedule='@daily'))
        with pytest.raises(Exception) as hidden:
            stranger.get_job('nightly')
        assert 'not found' in str(hidden.value)
        stranger.delete_job('nightly')
        assert owner.get_job('nightly').schedule == '@daily'

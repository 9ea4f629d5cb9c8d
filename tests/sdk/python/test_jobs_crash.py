"""Fault test of the scheduler: 1,000 jobs firing every second across two `worker` processes of the distributed
form, one of them SIGKILLed twice while they fire (and started again each time). Every occurrence must reach the
app: an occurrence a killed worker had claimed is fired again once its lease runs out (at least once). The
duplicates that at-least-once allows are counted and reported.

Each job is `@every 1s` with `repeats: 10`, so its app must see its trigger at least 10 times, and the job is gone
once its 10th occurrence was fired. Kills happen at shares of the expected triggers, so each lands while
triggers are in flight. The test takes about a minute and a half: most of it is the 60 s lease of the claims the
killed worker held.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from dapr.clients.grpc._jobs import Job

import harness
from support import Tenants, dapr_client

JOBS = 1000
REPEATS = 10
EXPECTED = JOBS * REPEATS
# The first worker is killed when this share of the expected triggers arrived, started again, and killed again.
KILL_AT = (0.15, 0.4)
# How long the triggers may take to all arrive after the last kill: the 60 s lease of the killed worker's claims,
# then the catch-up of what they held, with a margin.
COMPLETION_TIMEOUT = 120.0
# How long the triggers may make no progress at all while the kills go on (the other worker keeps firing).
PROGRESS_TIMEOUT = 30.0


class CountingApp:
    """An app counting the triggers of each job (`POST /job/{name}`), answering 200."""

    def __init__(self):
        self.counts: Counter[str] = Counter()
        self.total = 0
        self.arrived = threading.Condition()
        app = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - the name http.server calls
                self.rfile.read(int(self.headers.get('content-length') or 0))
                with app.arrived:
                    app.counts[self.path.removeprefix('/job/')] += 1
                    app.total += 1
                    app.arrived.notify_all()
                self.send_response(200)
                self.send_header('content-length', '0')
                self.end_headers()

            def log_message(self, *_):
                pass

        self.server = ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.endpoint = f'http://127.0.0.1:{self.server.server_address[1]}'

    def wait_for_total(self, total: int, timeout: float) -> bool:
        with self.arrived:
            return self.arrived.wait_for(lambda: self.total >= total, timeout)

    def wait_until_every_job_fired(self, names: list[str], times: int, timeout: float) -> bool:
        with self.arrived:
            return self.arrived.wait_for(lambda: all(self.counts[name] >= times for name in names), timeout)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_no_occurrence_is_lost_when_a_worker_dies_mid_fire(crash_deployment, tmp_path):
    deployment = crash_deployment
    deployment.start_another('worker', 'worker-2')
    app = CountingApp()
    try:
        tenants = Tenants(deployment, tmp_path)
        project = tenants.project(apps=())
        tenants.add_app(project, 'orders', app_endpoint=app.endpoint)
        names = [f'tick-{index:04d}' for index in range(JOBS)]
        with dapr_client(project.apps['orders']) as client:
            for name in names:
                client.schedule_job(Job(name=name, schedule='@every 1s', repeats=REPEATS))
        for share in KILL_AT:
            target = int(EXPECTED * share)
            progressed = app.wait_for_total(target, PROGRESS_TIMEOUT + target / JOBS)
            assert progressed, f'{app.total} of {target} triggers before the kill'
            deployment.kill('worker')
            deployment.restart('worker')
        started = time.monotonic()
        every_job_fired = app.wait_until_every_job_fired(names, REPEATS, COMPLETION_TIMEOUT)
        missing = {name: REPEATS - app.counts[name] for name in names if app.counts[name] < REPEATS}
        assert every_job_fired, f'occurrences lost: {sum(missing.values())} in {len(missing)} jobs: ' \
                                f'{dict(list(missing.items())[:10])}'
        # Each job is over after its 10th occurrence: once the scheduler recorded the last ones, nothing is left.
        jobs_path = f'/projects/{project.name}/appids/orders/jobs'
        harness.wait_until(lambda: deployment.control.expect(200, 'GET', jobs_path)['items'] == [], 30.0,
                           interval=0.2, what='the finished jobs leaving the scheduler')
        duplicates = app.total - EXPECTED
        print(f'\n[jobs crash] {EXPECTED} occurrences of {JOBS} jobs across two workers, one killed '
              f'{len(KILL_AT)} times: none lost, {duplicates} fired twice '
              f'(at least once), all in {time.monotonic() - started:.1f} s after the last restart')
    finally:
        app.close()

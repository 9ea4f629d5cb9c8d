"""The workflow app the console's workflow and jobs tests watch: an app built with the official Dapr Python SDK
(`dapr` with its `dapr.ext.workflow` extension, pinned in tests/sdk/python/requirements.txt) and configured as
any Dapr app is, by DAPR_HTTP_ENDPOINT, DAPR_GRPC_ENDPOINT and DAPR_API_TOKEN.

It registers `approval_workflow`, which calls the activity `reserve_stock`, then the child workflow
`ship_order` (which calls the activity `book_courier`), sets its custom status to "awaiting approval" and
waits for the external event "approve"; it returns what it gathered. The app starts WORKFLOW_COUNT instances
(default 1), waits until each is waiting for approval (so its history holds the activity and the child
workflow), and schedules the job JOB_NAME (when set) through the SDK's jobs API: due now, then every hour.
When APP_PORT is set it also answers the job's triggers (`POST /job/{name}`) there.

It prints `READY <instanceId> [<instanceId>...]` on one line when all that is done, then keeps serving the
workflow runtime until it is killed (SIGTERM or SIGINT end it cleanly).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from dapr.clients import DaprClient
from dapr.clients.grpc._jobs import DropFailurePolicy, Job
from dapr.ext.workflow import DaprWorkflowClient, WorkflowRuntime

AWAITING = 'awaiting approval'
# How long the workflow may take to reach the approval step on a loaded machine.
START_WITHIN_SECONDS = 60


def reserve_stock(ctx, order):
    return {'order': order['id'], 'reserved': order['items']}


def book_courier(ctx, order_id):
    return f'courier booked for {order_id}'


def ship_order(ctx, order_id):
    booking = yield ctx.call_activity(book_courier, input=order_id)
    return {'shipped': order_id, 'booking': booking}


def approval_workflow(ctx, order):
    reservation = yield ctx.call_activity(reserve_stock, input=order)
    shipment = yield ctx.call_child_workflow(ship_order, input=order['id'], instance_id=f'{ctx.instance_id}-ship')
    ctx.set_custom_status(AWAITING)
    approval = yield ctx.wait_for_external_event('approve')
    return {'reservation': reservation, 'shipment': shipment, 'approval': approval}


def serve_job_triggers(port: int) -> None:
    """Answers the scheduler's job triggers with 200 (the job counts as delivered)."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - the name http.server calls
            self.rfile.read(int(self.headers.get('content-length') or 0))
            self.send_response(200)
            self.send_header('content-length', '0')
            self.end_headers()

        def log_message(self, *_):
            pass

    server = ThreadingHTTPServer(('127.0.0.1', port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()


def wait_until_awaiting(client: DaprWorkflowClient, instance_id: str) -> None:
    deadline = time.monotonic() + START_WITHIN_SECONDS
    while True:
        state = client.get_workflow_state(instance_id)
        if state is not None and state.serialized_custom_status == AWAITING:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f'instance {instance_id} did not reach "{AWAITING}" in time: {state}')
        time.sleep(0.2)


def main() -> None:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    port = os.environ.get('APP_PORT')
    if port:
        serve_job_triggers(int(port))

    runtime = WorkflowRuntime()
    runtime.register_workflow(approval_workflow)
    runtime.register_workflow(ship_order)
    runtime.register_activity(reserve_stock)
    runtime.register_activity(book_courier)
    runtime.start()
    client = DaprWorkflowClient()
    try:
        instances = []
        for _ in range(int(os.environ.get('WORKFLOW_COUNT', '1'))):
            order_id = f'order-{uuid.uuid4().hex[:8]}'
            instances.append(client.schedule_new_workflow(
                approval_workflow, input={'id': order_id, 'items': ['kayak', 'paddle']}))
        for instance_id in instances:
            wait_until_awaiting(client, instance_id)

        job_name = os.environ.get('JOB_NAME')
        if job_name:
            with DaprClient() as jobs:
                jobs.schedule_job(Job(name=job_name, schedule='@every 1h', due_time='0s', repeats=24, ttl='48h',
                                      failure_policy=DropFailurePolicy()))

        print('READY ' + ' '.join(instances), flush=True)
        stop.wait()
    finally:
        client.close()
        runtime.shutdown()


if __name__ == '__main__':
    try:
        main()
    except Exception as error:  # noqa: BLE001 - reported to the test, which shows stderr
        print(f'FAILED {error!r}', file=sys.stderr, flush=True)
        raise

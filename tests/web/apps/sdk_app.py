"""A small Dapr app for the console's end-to-end tests, written with the official Python SDK the way a
tenant writes one: it takes its sidecar from DAPR_HTTP_ENDPOINT / DAPR_GRPC_ENDPOINT and its credential from
DAPR_API_TOKEN, then

1. saves a state key in a state store (`kvstore`, the project's managed store, by default),
2. publishes one event to a topic of a pub/sub (`pubsub`, the managed one, by default),
3. runs a workflow with one activity to completion (dapr-ext-workflow: a WorkflowRuntime serving the
   workflow and its activity, and a DaprWorkflowClient scheduling it and waiting for its end),

prints what it did, one line per step, and exits 0 (1 with the reason when a step fails). Every name is
an argument so that the tests of other pages (workflows, KV explorer, topics) can run it with their own:

    python sdk_app.py --key greeting --value hello --topic orders --workflow greet --instance-id run-1

Run it with tests/sdk/.venv/bin/python (it has the pinned `dapr` and `dapr-ext-workflow`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import uuid

REQUIRED_VARIABLES = ('DAPR_GRPC_ENDPOINT', 'DAPR_API_TOKEN')


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Save a state key, publish an event, run a workflow.')
    parser.add_argument('--store', default='kvstore', help='state store to save in (default: kvstore)')
    parser.add_argument('--key', default='greeting', help='state key to save (default: greeting)')
    parser.add_argument('--value', default='hello from sdk_app', help='value saved under the key')
    parser.add_argument('--pubsub', default='pubsub', help='pub/sub component to publish on (default: pubsub)')
    parser.add_argument('--topic', default='orders', help='topic to publish to (default: orders)')
    parser.add_argument('--message', default='{"order": 1}', help='JSON event to publish')
    parser.add_argument('--workflow', default='greet_workflow', help='name the workflow is registered under')
    parser.add_argument('--activity', default='greet_activity', help='name its one activity is registered under')
    parser.add_argument('--instance-id', default=None, help='workflow instance id (default: a fresh one)')
    parser.add_argument('--input', default='world', help='input of the workflow (a string)')
    parser.add_argument('--skip', action='append', default=[], choices=['state', 'publish', 'workflow'],
                        help='leave a step out (repeatable)')
    parser.add_argument('--timeout', type=float, default=60.0, help='seconds to wait for the workflow')
    return parser.parse_args(argv)


def save_state(client, arguments: argparse.Namespace) -> None:
    client.save_state(arguments.store, arguments.key, arguments.value)
    print(f'saved state {arguments.store}/{arguments.key} = {arguments.value!r}', flush=True)


def publish(client, arguments: argparse.Namespace) -> None:
    event = json.loads(arguments.message)
    client.publish_event(arguments.pubsub, arguments.topic, json.dumps(event), data_content_type='application/json')
    print(f'published to {arguments.pubsub}/{arguments.topic}: {json.dumps(event)}', flush=True)


def start_runtime(runtime, timeout: float) -> None:
    """`runtime.start()` bounded by `timeout` (it returns once its work-item stream is open)."""
    failure: list[BaseException] = []

    def start() -> None:
        try:
            runtime.start()
        except BaseException as error:  # noqa: BLE001 - reported below
            failure.append(error)

    thread = threading.Thread(target=start, name='workflow-runtime-start', daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        runtime.shutdown()
        raise RuntimeError(f'the workflow runtime did not connect within {timeout} s')
    if failure:
        raise RuntimeError(f'the workflow runtime did not start: {failure[0]!r}') from failure[0]


def run_workflow(arguments: argparse.Namespace) -> None:
    from dapr.ext.workflow import DaprWorkflowClient, WorkflowRuntime, WorkflowStatus

    def activity(ctx, name):
        return f'hello, {name}'

    def workflow(ctx, name):
        greeting = yield ctx.call_activity(activity, input=name)
        return greeting

    runtime = WorkflowRuntime()
    runtime.register_activity(activity, name=arguments.activity)
    runtime.register_workflow(workflow, name=arguments.workflow)
    start_runtime(runtime, arguments.timeout)
    client = DaprWorkflowClient()
    try:
        instance_id = client.schedule_new_workflow(
            arguments.workflow, input=arguments.input, instance_id=arguments.instance_id or f'sdk-app-{uuid.uuid4().hex[:12]}'
        )
        print(f'started workflow {arguments.workflow} instance {instance_id}', flush=True)
        state = client.wait_for_workflow_completion(instance_id, timeout_in_seconds=int(arguments.timeout))
        if state is None or state.runtime_status != WorkflowStatus.COMPLETED:
            raise RuntimeError(f'workflow instance {instance_id} did not complete: {state}')
        print(f'workflow {instance_id} COMPLETED with output {state.serialized_output}', flush=True)
    finally:
        client.close()
        runtime.shutdown()


def main(argv: list[str]) -> int:
    arguments = parse_arguments(argv)
    missing = [name for name in REQUIRED_VARIABLES if not os.environ.get(name)]
    if missing:
        print(f'sdk_app: set {", ".join(missing)} (the App ID\'s endpoint and API token)', file=sys.stderr)
        return 2
    from dapr.clients import DaprClient

    try:
        if 'state' not in arguments.skip or 'publish' not in arguments.skip:
            with DaprClient() as client:
                if 'state' not in arguments.skip:
                    save_state(client, arguments)
                if 'publish' not in arguments.skip:
                    publish(client, arguments)
        if 'workflow' not in arguments.skip:
            run_workflow(arguments)
    except Exception as error:  # noqa: BLE001 - the test prints this line
        print(f'sdk_app failed: {error!r}', file=sys.stderr, flush=True)
        return 1
    print('sdk_app done', flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))

"""Crash test of the workflow engine on the distributed form: 200 running workflows, while the outrigger
`worker` and `gateway` processes are killed with SIGKILL at random moments five times (each time the
worker, the gateway or both, chosen at random) and started again on the same addresses with the same
settings; every instance must still complete with exactly the output its input determines.

The app is a Python `WorkflowRuntime` (`dapr.ext.workflow`) in this process, configured like every app
(DAPR_GRPC_ENDPOINT + DAPR_API_TOKEN). Nothing here helps it through the crashes: it does what a real app
does, which is to keep running. When the gateway dies, the runtime's durabletask worker sees its
`GetWorkItems` stream fail (UNAVAILABLE), retires the channel and reconnects by itself (a `Hello` on a fresh
channel, backing off 2-3 s, 4-5 s, ... up to 15 s between attempts, reset once a stream is open again);
results finished meanwhile wait up to 30 s for that new connection and are then sent on it with their
original completion token. `DaprWorkflowClient`'s channel reconnects on its own too; its calls made while
the gateway is down fail with UNAVAILABLE, and the ones this test makes then are retried.

What the engine must do: a turn or activity handed to a stream of the killed gateway (or still queued for
it) is leased to that stream; nobody renews the lease, so after `LEASE` (30 s) the work is claimed again by
the reconnected stream. A result delivered late with a token the engine has since replaced is dropped.
Activities may therefore run more than once (at-least-once), but each instance's history, and so its
output, must come out exactly as without crashes.

The engine runs in the gateway (the `TaskHubSidecarService` streams and the database rows behind them); the
`worker` process takes no part in workflows today, so killing it must simply change nothing. It is killed
anyway, as the issue asks, in case that changes.

The kill moments are random points in the workload's progress (a number of activity executions, drawn in
advance), so every kill lands while work is in flight; the random seed is printed and `SDK_CRASH_SEED`
replays a plan. When instances do not complete, the failure shows, for each, what the engine's tables hold
(status, lease, turn token, history, inbox, pending activities), read from the deployment's PostgreSQL schema
before it is dropped. The test takes about a minute: most of it is the 30 s lease after the last gateway kill.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from typing import Callable, Optional

import grpc
import pytest
from dapr.ext.workflow import DaprWorkflowClient, WorkflowRuntime, WorkflowStatus, when_all

import harness
from support import App, Tenants, constructed_for, start_runtime

INSTANCES = 200
KILLS = 5
# The workflow: three chained steps, a fan-out of FAN_OUT squares, and a final total.
FAN_OUT = 4
ACTIVITIES_PER_INSTANCE = 3 + FAN_OUT + 1
NOMINAL_ACTIVITIES = INSTANCES * ACTIVITIES_PER_INSTANCE
# Kills happen at activity-execution counts drawn from this share of the nominal total: from the chained
# steps through the fan-out to the final activities and completions (instances advance roughly in step).
KILL_WINDOW = (0.05, 0.9)
# A restarted process must have let the workload make this much progress before the next kill.
MIN_PROGRESS_BETWEEN_KILLS = 25
# How long the workload may make no progress at all while the kills go on. Work leased to a killed gateway's
# stream only comes back after the engine's 30 s lease, but the other instances keep going meanwhile.
PROGRESS_TIMEOUT = 45.0
# How long, after the last restart, all instances may take to complete: the 30 s lease plus the rest of the
# work, with a margin, and still well inside the suite's 180 s timeout per test.
COMPLETION_TIMEOUT = 90.0
START_TIMEOUT = 30.0


# --- The workload --------------------------------------------------------------------------------------------

def step_value(value: int, step: int) -> int:
    return value * 3 + step


def expected_output(n: int) -> dict:
    chain = []
    value = n
    for step in (1, 2, 3):
        value = step_value(value, step)
        chain.append(value)
    squares = [(value + i) ** 2 for i in range(FAN_OUT)]
    return {'n': n, 'chain': chain, 'squares': squares, 'total': sum(squares) + n}


class Progress:
    """What the app's activities did, shared between the worker's threads and the test."""

    def __init__(self):
        self._condition = threading.Condition()
        self.executions = 0
        self.finals: set[int] = set()

    def executed(self, final_of: Optional[int] = None) -> None:
        with self._condition:
            self.executions += 1
            if final_of is not None:
                self.finals.add(final_of)
            self._condition.notify_all()

    def wait_for(self, executions: int, timeout: float) -> bool:
        """Waits until `executions` activities ran, or every instance ran its final one: then no activity runs
        again but those a crash makes re-run, and a kill planned further on comes at once (re-runs can take the
        count past a kill's moment, and a kill's floor past what the workload will ever run)."""
        with self._condition:
            return self._condition.wait_for(
                lambda: self.executions >= executions or len(self.finals) == INSTANCES, timeout)

    def snapshot(self) -> tuple[int, int]:
        with self._condition:
            return self.executions, len(self.finals)


def workload(progress: Progress, rng: random.Random):
    """The workflow and its activities. Each activity takes a few random milliseconds, so that work is in
    flight at any moment a process is killed."""
    rng_lock = threading.Lock()

    def busy() -> None:
        with rng_lock:
            delay = rng.uniform(0, 0.02)
        time.sleep(delay)

    def crash_step(ctx, payload):
        busy()
        progress.executed()
        return step_value(payload['value'], payload['step'])

    def crash_square(ctx, value):
        busy()
        progress.executed()
        return value * value

    def crash_total(ctx, payload):
        busy()
        progress.executed(final_of=payload['n'])
        return sum(payload['squares']) + payload['n']

    def crash_workflow(ctx, n):
        chain = []
        value = n
        for step in (1, 2, 3):
            value = yield ctx.call_activity(crash_step, input={'value': value, 'step': step})
            chain.append(value)
        squares = yield when_all([ctx.call_activity(crash_square, input=value + i) for i in range(FAN_OUT)])
        total = yield ctx.call_activity(crash_total, input={'n': n, 'squares': squares})
        return {'n': n, 'chain': chain, 'squares': squares, 'total': total}

    return crash_workflow, [crash_step, crash_square, crash_total]


# --- The app's side -------------------------------------------------------------------------------------------

def retrying(call: Callable, what: str, timeout: float = 30.0):
    """`call()`, retried while the gateway is away (UNAVAILABLE: it is being restarted). Other errors fail."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return call()
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.UNAVAILABLE or time.monotonic() >= deadline:
                raise AssertionError(f'{what}: {error.code()}: {error.details()}') from error
        time.sleep(0.2)


# --- Evidence ---------------------------------------------------------------------------------------------------

def describe_event(text: str) -> str:
    """A stored HistoryEvent (base64 protobuf) as `Type(id)`, e.g. `taskCompleted(-1) for #3`."""
    import base64

    from dapr.ext.workflow._durabletask.internal import history_events_pb2

    event = history_events_pb2.HistoryEvent()
    event.ParseFromString(base64.b64decode(text))
    kind = event.WhichOneof('eventType')
    detail = getattr(event, kind) if kind else None
    scheduled = getattr(detail, 'taskScheduledId', None)
    return f'{kind}({event.eventId})' + (f' for #{scheduled}' if scheduled is not None else '')


def engine_rows(deployment: harness.Deployment, instance_ids: list[str]) -> list[str]:
    """What the engine's tables hold for `instance_ids`, read straight from the deployment's PostgreSQL schema:
    the instance's status and lease, its history, its inbox and its pending activities."""
    import psycopg

    now_ms = int(time.time() * 1000)
    lines = []
    url = deployment.process('gateway').env['OUTRIGGER_DATABASE_URL']
    with psycopg.connect(url, autocommit=True, connect_timeout=10) as connection:
        for instance_id in instance_ids:
            row = connection.execute(
                'SELECT status, lease_owner, lease_until, turn_token, turn_started_at, turn_inbox_upto, updated_at '
                'FROM wf_instances WHERE instance_id = %s', (instance_id,)).fetchone()
            if row is None:
                lines.append(f'{instance_id}: no wf_instances row')
                continue
            status, owner, until, token, turn_started, upto, updated = row
            lease = (f'leased to stream {owner} for {(until - now_ms) / 1000:.1f} s more' if until > now_ms
                     else f'not leased (lease_until {(until - now_ms) / 1000:.1f} s from now, owner {owner})')
            history = [describe_event(event) for (event,) in connection.execute(
                'SELECT event FROM wf_history WHERE instance_id = %s ORDER BY seq', (instance_id,))]
            inbox = [f'#{id_} {describe_event(event)} visible {(visible - now_ms) / 1000:+.1f} s'
                     for id_, event, visible in connection.execute(
                         'SELECT id, event, visible_at FROM wf_inbox WHERE instance_id = %s ORDER BY id', (instance_id,))]
            activities = [f'{(activity_until - now_ms) / 1000:+.1f} s lease, owner {activity_owner}, token '
                          f'{"set" if activity_token else "none"}'
                          for activity_owner, activity_until, activity_token in connection.execute(
                              'SELECT lease_owner, lease_until, token FROM wf_activities WHERE instance_id = %s',
                              (instance_id,))]
            lines.append(
                f'{instance_id}: status {status}, {lease}, turn token {"set" if token else "none"} '
                f'(turn started {(turn_started - now_ms) / 1000:+.1f} s, inbox upto #{upto}), updated '
                f'{(updated - now_ms) / 1000:+.1f} s; history ({len(history)} events) {history}; '
                f'inbox {inbox}; activities {activities}')
    return lines


# --- The crashes ------------------------------------------------------------------------------------------------

def kill_plan(rng: random.Random) -> list[tuple[int, tuple[str, ...]]]:
    """KILLS (activity-execution count, processes to kill) pairs, in order. Each kill takes the worker, the
    gateway or both; the plan kills each of the two at least once."""
    choices = (('worker',), ('gateway',), ('worker', 'gateway'))
    while True:
        targets = [rng.choice(choices) for _ in range(KILLS)]
        killed = {name for target in targets for name in target}
        if killed == {'worker', 'gateway'}:
            break
    low, high = (int(share * NOMINAL_ACTIVITIES) for share in KILL_WINDOW)
    moments = sorted(rng.sample(range(low, high), KILLS))
    return list(zip(moments, targets))


def crash(deployment: harness.Deployment, names: tuple[str, ...], rng: random.Random) -> tuple[float, float]:
    """SIGKILLs `names` (in random order), leaves them down a random moment, starts them again and waits
    until they are ready; (seconds down, seconds the restart took)."""
    order = list(names)
    rng.shuffle(order)
    for name in order:
        code = deployment.kill(name)
        assert code == -9, f'outrigger {name} exited with {code} before it was killed (expected -9, SIGKILL)'
    down = rng.uniform(0, 1.0)
    time.sleep(down)  # the outage itself, not a synchronisation
    restarting = time.monotonic()
    rng.shuffle(order)
    for name in order:
        deployment.restart(name)
    return down, time.monotonic() - restarting


# --- The test ---------------------------------------------------------------------------------------------------

def test_200_workflows_complete_through_five_sigkills_of_worker_and_gateway(crash_deployment, tmp_path, request,
                                                                            capsys):
    deployment = crash_deployment

    def say(line: str) -> None:
        """A progress line, shown as it happens (not held back by pytest's capture)."""
        with capsys.disabled():
            print(line, flush=True)

    seed = int(os.environ.get('SDK_CRASH_SEED') or random.SystemRandom().randrange(2**32))
    rng = random.Random(seed)
    plan = kill_plan(rng)
    say(f'\n[crash] seed {seed} (SDK_CRASH_SEED replays it); plan: '
          + ', '.join(f'{"+".join(names)} at {moment}' for moment, names in plan)
          + f' of {NOMINAL_ACTIVITIES} nominal activity executions')

    app = Tenants(deployment, tmp_path).project().apps['orders']
    progress = Progress()
    workflow, activities = workload(progress, random.Random(rng.random()))
    runtime = constructed_for(app, WorkflowRuntime)
    runtime.register_workflow(workflow)
    for activity in activities:
        runtime.register_activity(activity)
    began = time.monotonic()
    start_runtime(runtime, START_TIMEOUT)
    client = constructed_for(app, DaprWorkflowClient)
    try:
        prefix = harness.random_name('crash')
        instance_ids = {}
        for n in range(INSTANCES):
            instance_id = f'{prefix}-{n:03d}'
            assert client.schedule_new_workflow(workflow, input=n, instance_id=instance_id) == instance_id
            instance_ids[instance_id] = n
        say(f'[crash] {INSTANCES} instances scheduled ({prefix}-000..{INSTANCES - 1:03d}) '
              f'in {time.monotonic() - began:.1f} s')

        floor = 0
        kills: list[str] = []
        for number, (moment, names) in enumerate(plan, start=1):
            target = max(moment, floor)
            if not progress.wait_for(target, PROGRESS_TIMEOUT):
                executions, finals = progress.snapshot()
                request.node.crash_failed = True
                pytest.fail(f'before kill {number}: the workload made no progress to {target} activity executions '
                            f'within {PROGRESS_TIMEOUT} s (at {executions}, {finals} instances at their last step)')
            executions, finals = progress.snapshot()
            down, restart = crash(deployment, names, rng)
            kills.append(f'{"+".join(names)} at +{time.monotonic() - began:.1f} s')
            floor = progress.snapshot()[0] + MIN_PROGRESS_BETWEEN_KILLS
            say(f'[crash] kill {number}/{KILLS} at +{time.monotonic() - began:.1f} s, after {executions} activity '
                  f'executions ({finals}/{INSTANCES} instances at their last step): SIGKILL {" + ".join(names)}, '
                  f'down {down:.2f} s, ready again in {restart:.2f} s')
        last_restart = time.monotonic()

        # Every instance must complete, with exactly its output.
        deadline = last_restart + COMPLETION_TIMEOUT
        unfinished = []
        wrong = []
        for instance_id, n in instance_ids.items():
            remaining = max(1, int(deadline - time.monotonic()))
            try:
                state = retrying(lambda: client.wait_for_workflow_completion(instance_id, timeout_in_seconds=remaining),
                                 f'waiting for {instance_id}', timeout=remaining)
            except TimeoutError:
                unfinished.append(instance_id)
                continue
            if state is None:
                wrong.append(f'{instance_id}: no such instance (lost)')
            elif state.runtime_status != WorkflowStatus.COMPLETED:
                wrong.append(f'{instance_id}: {state.runtime_status.name} {state.failure_details}')
            elif json.loads(state.serialized_output) != expected_output(n):
                wrong.append(f'{instance_id}: output {state.serialized_output}, expected {expected_output(n)}')
        if unfinished or wrong:
            request.node.crash_failed = True
            details = []
            for instance_id in unfinished[:10]:
                state = retrying(lambda: client.get_workflow_state(instance_id), f'reading {instance_id}')
                details.append(f'{instance_id}: ' + ('no such instance' if state is None else
                                                     f'{state.runtime_status.name}, last updated '
                                                     f'{state.last_updated_at}'))
            try:
                details += engine_rows(deployment, unfinished[:10])
            except Exception as error:  # noqa: BLE001 - the evidence is a bonus, the failure stands
                details.append(f'(reading the engine tables failed: {error!r})')
            message = (f'{len(unfinished)} of {INSTANCES} instances did not complete within {COMPLETION_TIMEOUT} s '
                       f'after the last restart, {len(wrong)} ended wrong (seed {seed}; the kills: {kills}):\n'
                       + '\n'.join(details + wrong[:20]) + f'\nOutrigger output: {deployment.log.path}')
            say(message)
            pytest.fail(message)
        executions, _ = progress.snapshot()
        say(f'[crash] all {INSTANCES} instances COMPLETED with their exact output, '
              f'{time.monotonic() - last_restart:.1f} s after the last restart, {time.monotonic() - began:.1f} s '
              f'in all; {executions} activity executions for {NOMINAL_ACTIVITIES} scheduled activities '
              f'({executions - NOMINAL_ACTIVITIES} re-run after the crashes)')
    finally:
        client.close()
        runtime.shutdown()

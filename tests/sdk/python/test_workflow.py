"""Dapr Workflow through the Python SDK's workflow extension (`dapr.ext.workflow`, shipped inside
`dapr==1.19.0`): the app's `WorkflowRuntime` (a durabletask worker on the server-streaming
`/TaskHubSidecarService/GetWorkItems`) and its `DaprWorkflowClient`, both on the App ID's Dapr gRPC
endpoint with its API token — chaining, fan-out/fan-in, durable timers, external events, child workflows,
continue-as-new, activity retries and failures, terminate, suspend/resume, purge, bounded waits, and
isolation between projects — on both forms.

Both SDK objects are configured the way an app configures them: `DAPR_GRPC_ENDPOINT` (the project's
`grpcEndpoint`, `http://HOST:PORT`) and `DAPR_API_TOKEN`, which each reads once, while it is constructed
(the endpoint into its channel target, the token into the metadata `dapr-api-token` sent on every call,
including the worker's reconnects and keep-alive `Hello`s). So they are constructed inside
`dapr_environment(...)` and keep working after the variables are put back. Neither makes an HTTP call.

Each test makes a fresh project (App ID `orders`), registers its own uniquely named workflows and
activities on a new runtime, starts it (bounded: `start()` only returns once `Hello` succeeded and
`GetWorkItems` is open), and shuts it down at the end. Results are awaited with
`wait_for_workflow_completion` (the `WaitForInstanceCompletion` long poll); intermediate states are
observed by polling `get_workflow_state` (`GetInstance`).
"""

from __future__ import annotations

import json
import threading
import time
from contextlib import ExitStack, contextmanager
from datetime import timedelta
from typing import Iterator, Optional

import grpc
import pytest
from dapr.ext.workflow import (
    DaprWorkflowClient,
    RetryPolicy,
    TaskFailedError,
    WorkflowRuntime,
    WorkflowState,
    WorkflowStatus,
    when_all,
)

import harness
from support import App, constructed_for, start_runtime

# How long a workflow may take to reach the state a test waits for (they all need well under a second of
# work once the engine runs them).
WAIT = 30
# How long a bounded wait that must time out is given.
SHORT_WAIT = 2


# --- The app's side: runtime and client ------------------------------------------------------------------

@contextmanager
def workflow_client(app: App) -> Iterator[DaprWorkflowClient]:
    """A DaprWorkflowClient on `app`'s gRPC endpoint with its token (no worker)."""
    client = constructed_for(app, DaprWorkflowClient)
    try:
        yield client
    finally:
        client.close()


@contextmanager
def workflow_app(app: App, workflows=(), activities=()) -> Iterator[DaprWorkflowClient]:
    """The app: a WorkflowRuntime for `app` with `workflows` and `activities` registered (under their
    function names) and started, and a DaprWorkflowClient for `app`; the runtime is shut down at the end."""
    runtime = constructed_for(app, WorkflowRuntime)
    for workflow in workflows:
        runtime.register_workflow(workflow)
    for activity in activities:
        runtime.register_activity(activity)
    start_runtime(runtime)
    try:
        with workflow_client(app) as client:
            yield client
    finally:
        runtime.shutdown()


# --- Waiting and checking ----------------------------------------------------------------------------------

def describe(state: Optional[WorkflowState]) -> str:
    return 'no such instance' if state is None else str(state)


def finished(client: DaprWorkflowClient, instance_id: str, timeout: int = WAIT) -> WorkflowState:
    """The instance's state once it is terminal (completed, failed or terminated)."""
    state = client.wait_for_workflow_completion(instance_id, timeout_in_seconds=timeout)
    assert state is not None, f'wait_for_workflow_completion: instance {instance_id} does not exist'
    return state


def output_of(state: WorkflowState):
    return None if state.serialized_output is None else json.loads(state.serialized_output)


def assert_completed(state: WorkflowState, expected_output) -> None:
    assert state.runtime_status == WorkflowStatus.COMPLETED, describe(state)
    assert output_of(state) == expected_output, describe(state)


def wait_for_state(client: DaprWorkflowClient, instance_id: str, predicate, what: str,
                   timeout: float = WAIT) -> WorkflowState:
    """Polls get_workflow_state until `predicate(state)` holds; that state."""
    deadline = time.monotonic() + timeout
    while True:
        state = client.get_workflow_state(instance_id)
        if state is not None and predicate(state):
            return state
        if time.monotonic() >= deadline:
            raise AssertionError(f'{what} did not hold within {timeout} s; last state: {describe(state)}')
        time.sleep(0.1)


def wait_for_status(client: DaprWorkflowClient, instance_id: str, status: WorkflowStatus,
                    timeout: float = WAIT) -> WorkflowState:
    return wait_for_state(client, instance_id, lambda state: state.runtime_status == status,
                          f'instance {instance_id} being {status.name}', timeout)


def wait_for_custom_status(client: DaprWorkflowClient, instance_id: str, custom_status: str,
                           timeout: float = WAIT) -> WorkflowState:
    return wait_for_state(client, instance_id, lambda state: state.serialized_custom_status == custom_status,
                          f'instance {instance_id} having custom status {custom_status!r}', timeout)


def started(client: DaprWorkflowClient, instance_id: str) -> WorkflowState:
    """wait_for_workflow_start (WaitForInstanceStart): the instance is no longer PENDING."""
    state = client.wait_for_workflow_start(instance_id, timeout_in_seconds=WAIT)
    assert state is not None, f'wait_for_workflow_start: instance {instance_id} does not exist'
    assert state.runtime_status == WorkflowStatus.RUNNING, describe(state)
    return state


class Counter:
    """A count shared by activities (which run on the worker's threads) and the test."""

    def __init__(self):
        self._lock = threading.Lock()
        self._value = 0

    def increment(self) -> int:
        with self._lock:
            self._value += 1
            return self._value

    @property
    def value(self) -> int:
        with self._lock:
            return self._value


# --- Tests -----------------------------------------------------------------------------------------------------

def test_chained_activities_pass_each_result_on(app):
    def chain_add_one(ctx, value):
        return value + 1

    def chain_double(ctx, value):
        return value * 2

    def chain_describe(ctx, value):
        return f'result={value}'

    def chain_workflow(ctx, value):
        first = yield ctx.call_activity(chain_add_one, input=value)
        second = yield ctx.call_activity(chain_double, input=first)
        third = yield ctx.call_activity(chain_describe, input=second)
        return [first, second, third]

    with workflow_app(app, [chain_workflow], [chain_add_one, chain_double, chain_describe]) as client:
        instance_id = client.schedule_new_workflow(chain_workflow, input=4)
        state = finished(client, instance_id)
        assert_completed(state, [5, 10, 'result=10'])
        assert state.instance_id == instance_id
        assert state.name == 'chain_workflow', describe(state)
        assert json.loads(state.serialized_input) == 4, describe(state)


def test_fan_out_over_twenty_activities_and_fan_in(app):
    executions = Counter()

    def fan_square(ctx, value):
        executions.increment()
        return value * value

    def fan_workflow(ctx, count):
        tasks = [ctx.call_activity(fan_square, input=n) for n in range(1, count + 1)]
        squares = yield when_all(tasks)
        return {'sum': sum(squares), 'squares': squares}

    with workflow_app(app, [fan_workflow], [fan_square]) as client:
        instance_id = client.schedule_new_workflow(fan_workflow, input=20)
        state = finished(client, instance_id)
        assert_completed(state, {'sum': sum(n * n for n in range(1, 21)), 'squares': [n * n for n in range(1, 21)]})
        assert executions.value == 20, f'{executions.value} activity executions for 20 scheduled tasks'


def test_a_durable_timer_fires_then_the_workflow_completes(app):
    def timer_workflow(ctx, seconds):
        before = ctx.current_utc_datetime
        yield ctx.create_timer(timedelta(seconds=seconds))
        return (ctx.current_utc_datetime - before).total_seconds()

    with workflow_app(app, [timer_workflow]) as client:
        scheduled_at = time.monotonic()
        instance_id = client.schedule_new_workflow(timer_workflow, input=1)
        state = finished(client, instance_id)
        elapsed = time.monotonic() - scheduled_at
        assert state.runtime_status == WorkflowStatus.COMPLETED, describe(state)
        # The turn after the timer starts at or after its fireAt: the workflow's clock moved on by 1 s.
        assert output_of(state) >= 1.0 - 1e-6, describe(state)
        assert elapsed >= 1.0, f'the 1 s timer fired after {elapsed:.3f} s'


def test_external_events_raised_before_and_while_waiting_are_both_received(app):
    gate = threading.Event()

    def events_gate(ctx):
        # Holds the workflow back until the test has raised `early`, so that event surely comes first.
        if not gate.wait(WAIT):
            raise RuntimeError('the test never opened the gate')
        return 'open'

    def events_workflow(ctx):
        yield ctx.call_activity(events_gate)
        early = yield ctx.wait_for_external_event('early')
        ctx.set_custom_status('waiting-for-late')
        late = yield ctx.wait_for_external_event('late')
        return {'early': early, 'late': late}

    with workflow_app(app, [events_workflow], [events_gate]) as client:
        try:
            instance_id = client.schedule_new_workflow(events_workflow)
            client.raise_workflow_event(instance_id, 'early', data={'n': 1})
            gate.set()
            wait_for_custom_status(client, instance_id, 'waiting-for-late')
            client.raise_workflow_event(instance_id, 'late', data='second')
            state = finished(client, instance_id)
            assert_completed(state, {'early': {'n': 1}, 'late': 'second'})
        finally:
            gate.set()


def test_child_workflows_return_values_and_report_failures_to_the_parent(app):
    def child_increment(ctx, value):
        return value + 1

    def child_ok_workflow(ctx, value):
        incremented = yield ctx.call_activity(child_increment, input=value)
        return incremented * 10

    def child_failing_workflow(ctx, value):
        yield ctx.call_activity(child_increment, input=value)
        raise ValueError(f'child refused {value}')

    def parent_workflow(ctx, value):
        good = yield ctx.call_child_workflow(child_ok_workflow, input=value, instance_id=f'{ctx.instance_id}-ok')
        try:
            yield ctx.call_child_workflow(child_failing_workflow, input=value, instance_id=f'{ctx.instance_id}-bad')
        except TaskFailedError as error:
            return {'good': good, 'caught': str(error), 'message': error.details.message,
                    'type': error.details.error_type}
        return {'good': good, 'caught': None}

    with workflow_app(app, [parent_workflow, child_ok_workflow, child_failing_workflow], [child_increment]) as client:
        instance_id = client.schedule_new_workflow(parent_workflow, input=7)
        state = finished(client, instance_id)
        assert state.runtime_status == WorkflowStatus.COMPLETED, describe(state)
        result = output_of(state)
        assert result['good'] == 80, describe(state)
        assert result['caught'] is not None, f'the failing child did not fail the parent\'s task: {describe(state)}'
        assert 'child refused 7' in result['message'], describe(state)
        assert result['type'] == 'ValueError', describe(state)

        good_child = client.get_workflow_state(f'{instance_id}-ok')
        assert good_child is not None, 'the child workflow instance is not visible to the app'
        assert_completed(good_child, 80)
        assert good_child.name == 'child_ok_workflow', describe(good_child)
        bad_child = client.get_workflow_state(f'{instance_id}-bad')
        assert bad_child is not None, 'the failed child workflow instance is not visible to the app'
        assert bad_child.runtime_status == WorkflowStatus.FAILED, describe(bad_child)
        assert bad_child.failure_details is not None, describe(bad_child)
        assert 'child refused 7' in bad_child.failure_details.message, describe(bad_child)


def test_continue_as_new_loops_ten_times(app):
    executions = Counter()

    def loop_increment(ctx, value):
        executions.increment()
        return value + 1

    def loop_workflow(ctx, count):
        count = yield ctx.call_activity(loop_increment, input=count)
        if count < 10:
            ctx.continue_as_new(count)
            return
        return count

    with workflow_app(app, [loop_workflow], [loop_increment]) as client:
        instance_id = client.schedule_new_workflow(loop_workflow, input=0)
        state = finished(client, instance_id)
        assert_completed(state, 10)
        # The instance's input is the last generation's.
        assert json.loads(state.serialized_input) == 9, describe(state)
        assert executions.value == 10, f'{executions.value} activity executions over 10 generations'


def test_an_activity_retried_under_a_retry_policy_succeeds_on_the_third_attempt(app):
    attempts = Counter()

    def flaky_activity(ctx, value):
        attempt = attempts.increment()
        if attempt <= 2:
            raise RuntimeError(f'flaky attempt {attempt}')
        return f'{value} after {attempt} attempts'

    def retry_workflow(ctx, value):
        policy = RetryPolicy(first_retry_interval=timedelta(milliseconds=500), max_number_of_attempts=3)
        return (yield ctx.call_activity(flaky_activity, input=value, retry_policy=policy))

    with workflow_app(app, [retry_workflow], [flaky_activity]) as client:
        instance_id = client.schedule_new_workflow(retry_workflow, input='order-7')
        state = finished(client, instance_id)
        assert_completed(state, 'order-7 after 3 attempts')
        assert attempts.value == 3


def test_an_activity_that_always_fails_fails_the_workflow_with_its_message(app):
    def doomed_activity(ctx, value):
        raise ValueError(f'doomed activity refused {value}')

    def doomed_workflow(ctx, value):
        return (yield ctx.call_activity(doomed_activity, input=value))

    with workflow_app(app, [doomed_workflow], [doomed_activity]) as client:
        instance_id = client.schedule_new_workflow(doomed_workflow, input=42)
        state = finished(client, instance_id)
        assert state.runtime_status == WorkflowStatus.FAILED, describe(state)
        assert state.failure_details is not None, describe(state)
        assert 'doomed activity refused 42' in state.failure_details.message, describe(state)
        assert state.failure_details.error_type == 'TaskFailedError', describe(state)
        assert state.serialized_output is None, describe(state)


def test_terminate_ends_a_waiting_workflow_as_terminated(app):
    def terminated_workflow(ctx):
        return (yield ctx.wait_for_external_event('never'))

    with workflow_app(app, [terminated_workflow]) as client:
        instance_id = client.schedule_new_workflow(terminated_workflow)
        started(client, instance_id)
        client.terminate_workflow(instance_id, output={'reason': 'stopped by the test'})
        state = finished(client, instance_id)
        assert state.runtime_status == WorkflowStatus.TERMINATED, describe(state)
        assert output_of(state) == {'reason': 'stopped by the test'}, describe(state)


def test_suspend_then_resume_then_the_event_completes_the_workflow(app):
    def suspend_workflow(ctx):
        value = yield ctx.wait_for_external_event('proceed')
        return {'got': value}

    with workflow_app(app, [suspend_workflow]) as client:
        instance_id = client.schedule_new_workflow(suspend_workflow)
        started(client, instance_id)
        client.pause_workflow(instance_id)
        wait_for_status(client, instance_id, WorkflowStatus.SUSPENDED)
        client.resume_workflow(instance_id)
        wait_for_status(client, instance_id, WorkflowStatus.RUNNING)
        client.raise_workflow_event(instance_id, 'proceed', data='go on')
        assert_completed(finished(client, instance_id), {'got': 'go on'})


def test_an_event_raised_while_suspended_is_held_until_resume(app):
    def held_workflow(ctx):
        value = yield ctx.wait_for_external_event('proceed')
        return {'got': value}

    with workflow_app(app, [held_workflow]) as client:
        instance_id = client.schedule_new_workflow(held_workflow)
        started(client, instance_id)
        client.pause_workflow(instance_id)
        wait_for_status(client, instance_id, WorkflowStatus.SUSPENDED)
        client.raise_workflow_event(instance_id, 'proceed', data='raised while suspended')
        with pytest.raises(TimeoutError):
            client.wait_for_workflow_completion(instance_id, timeout_in_seconds=SHORT_WAIT)
        state = client.get_workflow_state(instance_id)
        assert state is not None and state.runtime_status == WorkflowStatus.SUSPENDED, describe(state)
        client.resume_workflow(instance_id)
        assert_completed(finished(client, instance_id), {'got': 'raised while suspended'})


def test_purge_removes_a_finished_instance(app):
    def purge_echo(ctx, value):
        return value

    def purge_workflow(ctx, value):
        return (yield ctx.call_activity(purge_echo, input=value))

    with workflow_app(app, [purge_workflow], [purge_echo]) as client:
        instance_id = client.schedule_new_workflow(purge_workflow, input='first')
        assert_completed(finished(client, instance_id), 'first')
        client.purge_workflow(instance_id)
        assert client.get_workflow_state(instance_id) is None, 'the purged instance is still there'
        # Nothing of it is left behind: the ID starts a new instance from scratch.
        assert client.schedule_new_workflow(purge_workflow, input='second', instance_id=instance_id) == instance_id
        state = finished(client, instance_id)
        assert_completed(state, 'second')
        assert json.loads(state.serialized_input) == 'second', describe(state)


def test_waiting_for_completion_with_a_short_timeout_raises_timeout_error(app):
    def forever_workflow(ctx):
        return (yield ctx.wait_for_external_event('never'))

    with workflow_app(app, [forever_workflow]) as client:
        instance_id = client.schedule_new_workflow(forever_workflow)
        started(client, instance_id)
        before = time.monotonic()
        with pytest.raises(TimeoutError):
            client.wait_for_workflow_completion(instance_id, timeout_in_seconds=SHORT_WAIT)
        waited = time.monotonic() - before
        assert SHORT_WAIT - 0.5 <= waited < SHORT_WAIT + 10, f'the {SHORT_WAIT} s wait took {waited:.2f} s'
        state = client.get_workflow_state(instance_id)
        assert state is not None and state.runtime_status == WorkflowStatus.RUNNING, describe(state)
        client.terminate_workflow(instance_id)
        assert finished(client, instance_id).runtime_status == WorkflowStatus.TERMINATED


def isolation_functions(label: str):
    """The same workflow and activity names for each project; the activity stamps which app's worker ran it."""

    def isolation_stamp(ctx, value):
        return f'{label}:{value}'

    def isolation_workflow(ctx, value):
        stamped = yield ctx.call_activity(isolation_stamp, input=value)
        ctx.set_custom_status('waiting')
        event = yield ctx.wait_for_external_event('go')
        return {'stamped': stamped, 'event': event}

    return isolation_workflow, isolation_stamp


def attempt(call) -> Optional[grpc.RpcError]:
    """Runs a management call made on another project's instance: refusing it (any gRPC error but one saying
    the caller is not authenticated or the call is not served) and ignoring it are both fine."""
    try:
        call()
    except grpc.RpcError as error:
        assert error.code() not in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.UNIMPLEMENTED), \
            f'{error.code()}: {error.details()}'
        return error
    return None


def test_another_projects_app_cannot_see_or_touch_an_instance(tenants):
    """Two projects whose App IDs are both `orders`, running the same workflow under the same instance ID.
    The other project's client does not see the first project's instance, and raising an event to it,
    terminating it and purging it change nothing; it can even start its own instance under that ID (a
    refusal would tell it the ID is taken). Each app's activities run on its own worker."""
    first, second = tenants.project().apps['orders'], tenants.project().apps['orders']
    first_workflow, first_stamp = isolation_functions('first')
    second_workflow, second_stamp = isolation_functions('second')
    instance_id = harness.random_name('order')
    with ExitStack() as stack:
        owner = stack.enter_context(workflow_app(first, [first_workflow], [first_stamp]))
        other = stack.enter_context(workflow_app(second, [second_workflow], [second_stamp]))

        assert owner.schedule_new_workflow(first_workflow, input='mine', instance_id=instance_id) == instance_id
        wait_for_custom_status(owner, instance_id, 'waiting')

        assert other.get_workflow_state(instance_id) is None, 'another project sees the instance'
        attempt(lambda: other.raise_workflow_event(instance_id, 'go', data='from the other project'))
        attempt(lambda: other.terminate_workflow(instance_id))
        attempt(lambda: other.purge_workflow(instance_id))
        assert other.get_workflow_state(instance_id) is None, 'the other project\'s calls made an instance appear'

        state = owner.get_workflow_state(instance_id)
        assert state is not None, 'the other project\'s calls removed the instance'
        assert state.runtime_status == WorkflowStatus.RUNNING, describe(state)
        assert state.serialized_custom_status == 'waiting', describe(state)

        # The other project's own instance under the same ID, run by its own worker.
        assert other.schedule_new_workflow(second_workflow, input='theirs', instance_id=instance_id) == instance_id
        wait_for_custom_status(other, instance_id, 'waiting')
        other.raise_workflow_event(instance_id, 'go', data='their event')
        assert_completed(finished(other, instance_id), {'stamped': 'second:theirs', 'event': 'their event'})
        other.purge_workflow(instance_id)
        assert other.get_workflow_state(instance_id) is None

        state = owner.get_workflow_state(instance_id)
        assert state is not None, 'purging the other project\'s instance removed this one'
        assert state.runtime_status == WorkflowStatus.RUNNING, describe(state)
        assert json.loads(state.serialized_input) == 'mine', describe(state)
        owner.raise_workflow_event(instance_id, 'go', data='my event')
        assert_completed(finished(owner, instance_id), {'stamped': 'first:mine', 'event': 'my event'})

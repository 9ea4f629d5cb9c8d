"""The workflow benchmark's app written with the official Python SDK (`dapr.ext.workflow`, shipped inside
`dapr==1.19.0`, pinned in tests/sdk/python/requirements.txt): a `WorkflowRuntime` (the SDK's worker, one
`GetWorkItems` stream) hosting the same workflows as the Rust worker of `cargo bench --bench workflow`, and a
`DaprWorkflowClient` that starts them, both configured the way an app is (`DAPR_GRPC_ENDPOINT`,
`DAPR_API_TOKEN`).

- `bench_chain(n)`: `n` calls of the no-op activity `bench_noop` one after another (input k, result k);
  returns n.
- `bench_fan_out(n)`: `n` calls at once, `when_all`; returns the sum of their results.

Loads: `--load in_flight` keeps `--count` instances running (a new one is started when one completes) for
`--warmup` + `--window` seconds and counts the completions within the window; `--load burst` starts
`--count` instances at once (from a pool of 32 threads) and times until the last completed. An instance
counts as completed when its workflow code returns outside a replay, i.e. in the turn whose answer completes
it (the answer is then sent by the SDK; the Rust worker counts from the engine's acknowledgement of that
answer instead). A few completed instances are checked with `get_workflow_state` after each run.

It is run by the bench (`cargo bench --bench workflow -- --python on`) with the venv's interpreter,
`tests/sdk/.venv/bin/python`, which `scripts/sdk-tests` creates. Progress goes to stderr; stdout carries one
JSON object per line for the bench: `{"event": "ready"}`, `{"event": "window_start", "run": R}`,
`{"event": "window_end", "run": R}` and `{"event": "result", "run": R, ...}`, whose `unfinished` lists the
instances that did not complete in time (the bench purges them, so they do not weigh on the next run).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

BEGIN = time.monotonic()


def log(message: str) -> None:
    print(f'[python_driver {time.monotonic() - BEGIN:6.1f}s] {message}', file=sys.stderr, flush=True)


def emit(**fields) -> None:
    print(json.dumps(fields), flush=True)


def percentile(samples: list[float], p: float):
    """Nearest rank, as the Rust side computes it; None without samples."""
    if not samples:
        return None
    ordered = sorted(samples)
    rank = math.ceil(p / 100 * len(ordered))
    return ordered[min(max(rank, 1), len(ordered)) - 1]


class Observed:
    """The instances the driver waits for, and when their workflow code returned."""

    def __init__(self):
        self._lock = threading.Lock()
        self._events: dict[str, threading.Event] = {}
        self._at: dict[str, float] = {}

    def expect(self, instance_id: str) -> threading.Event:
        event = threading.Event()
        with self._lock:
            self._events[instance_id] = event
        return event

    def returned(self, instance_id: str) -> None:
        at = time.monotonic()
        with self._lock:
            self._at[instance_id] = at
            event = self._events.pop(instance_id, None)
        if event is not None:
            event.set()

    def at(self, instance_id: str):
        with self._lock:
            return self._at.pop(instance_id, None)

    def forget(self, instance_id: str) -> None:
        with self._lock:
            self._events.pop(instance_id, None)
            self._at.pop(instance_id, None)


class Run:
    """What one run measured, guarded by a lock (slots run on threads)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.started = 0
        self.completed = 0
        self.errors = 0
        self.first_error = None
        self.latencies: list[float] = []
        self.start_calls: list[float] = []
        self.sample: list[str] = []
        self.unfinished: list[str] = []

    def error(self, message: str) -> None:
        with self.lock:
            self.errors += 1
            if self.first_error is None:
                self.first_error = message


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--endpoint', required=True, help='DAPR_GRPC_ENDPOINT, http://HOST:PORT')
    parser.add_argument('--token', required=True, help='the App ID API token (DAPR_API_TOKEN)')
    parser.add_argument('--shape', choices=['chain', 'fan_out'], required=True)
    parser.add_argument('--activities', type=int, required=True)
    parser.add_argument('--load', choices=['in_flight', 'burst'], required=True)
    parser.add_argument('--count', type=int, required=True, help='instances in flight, or in the burst')
    parser.add_argument('--warmup', type=float, default=5.0)
    parser.add_argument('--window', type=float, default=20.0)
    parser.add_argument('--runs', type=int, default=2)
    parser.add_argument('--timeout', type=float, default=300.0, help='longest a burst may take')
    parser.add_argument('--prefix', default='py')
    args = parser.parse_args()

    # Read by the SDK objects while they are constructed, as in an app started with them.
    os.environ['DAPR_GRPC_ENDPOINT'] = args.endpoint
    os.environ['DAPR_API_TOKEN'] = args.token
    from dapr.ext.workflow import DaprWorkflowClient, WorkflowRuntime, WorkflowStatus, when_all
    from dapr.ext.workflow.logger import LoggerOptions

    observed = Observed()

    def bench_noop(ctx, value):
        return value

    def bench_chain(ctx, count):
        for k in range(count):
            result = yield ctx.call_activity(bench_noop, input=k)
            if result != k:
                raise ValueError(f'activity {k} returned {result!r}')
        if not ctx.is_replaying:
            observed.returned(ctx.instance_id)
        return count

    def bench_fan_out(ctx, count):
        results = yield when_all([ctx.call_activity(bench_noop, input=k) for k in range(count)])
        if results != list(range(count)):
            raise ValueError(f'activities returned {results!r}')
        if not ctx.is_replaying:
            observed.returned(ctx.instance_id)
        return sum(results)

    workflow = bench_chain if args.shape == 'chain' else bench_fan_out
    expected_output = args.activities if args.shape == 'chain' else sum(range(args.activities))
    quiet = LoggerOptions(log_level=logging.WARNING)
    runtime = WorkflowRuntime(logger_options=quiet)
    runtime.register_workflow(bench_chain)
    runtime.register_workflow(bench_fan_out)
    runtime.register_activity(bench_noop)
    runtime.start()
    client = DaprWorkflowClient(logger_options=quiet)
    log(f'runtime started on {args.endpoint}: {args.shape}({args.activities}), {args.load} {args.count}')
    emit(event='ready')

    def start(run: Run, instance_id: str):
        """Starts `instance_id`; (its start time, what tells when it returned), or None when refused."""
        returned = observed.expect(instance_id)
        started = time.monotonic()
        try:
            client.schedule_new_workflow(workflow, input=args.activities, instance_id=instance_id)
        except Exception as error:  # noqa: BLE001 - counted, the run goes on
            observed.forget(instance_id)
            run.error(f'schedule_new_workflow {instance_id}: {error!r}')
            return None
        with run.lock:
            run.started += 1
            run.start_calls.append(time.monotonic() - started)
        return started, returned

    def finish(run: Run, instance_id: str, returned: threading.Event, deadline: float):
        """When `instance_id` returned, or None when it did not by `deadline`."""
        if not returned.wait(max(deadline - time.monotonic(), 0)):
            observed.forget(instance_id)
            run.error(f'instance {instance_id} did not complete in time')
            with run.lock:
                run.unfinished.append(instance_id)
            return None
        return observed.at(instance_id)

    try:
        for number in range(1, args.runs + 1):
            run = Run()
            prefix = f'{args.prefix}-{number}'
            begin = time.monotonic()
            if args.load == 'in_flight':
                window_from, window_until = begin + args.warmup, begin + args.warmup + args.window

                def slot(index: int) -> None:
                    sequence = 0
                    while time.monotonic() < window_until:
                        sequence += 1
                        instance_id = f'{prefix}-{index}-{sequence}'
                        began = start(run, instance_id)
                        ended = None if began is None else finish(run, instance_id, began[1], time.monotonic() + 60)
                        if ended is None:
                            time.sleep(0.1)
                            continue
                        started = began[0]
                        with run.lock:
                            run.completed += 1
                            if window_from <= ended <= window_until:
                                run.latencies.append(ended - started)
                                if len(run.sample) < 3:
                                    run.sample.append(instance_id)

                slots = [threading.Thread(target=slot, args=(index,), daemon=True) for index in range(args.count)]
                for thread in slots:
                    thread.start()
                time.sleep(max(window_from - time.monotonic(), 0))
                emit(event='window_start', run=number)
                time.sleep(max(window_until - time.monotonic(), 0))
                emit(event='window_end', run=number)
                for thread in slots:
                    thread.join()
                counted = len(run.latencies)
                rate = counted / args.window
                wall = all_started = None
            else:
                emit(event='window_start', run=number)
                deadline = begin + args.timeout
                ends = []
                with ThreadPoolExecutor(max_workers=32) as pool:
                    began = list(pool.map(lambda index: start(run, f'{prefix}-{index}'), range(args.count)))
                all_started = time.monotonic() - begin
                for index, started in enumerate(began):
                    instance_id = f'{prefix}-{index}'
                    ended = None if started is None else finish(run, instance_id, started[1], deadline)
                    if ended is not None:
                        run.completed += 1
                        ends.append(ended)
                        run.latencies.append(ended - begin)
                        if len(run.sample) < 3:
                            run.sample.append(instance_id)
                emit(event='window_end', run=number)
                counted = len(ends)
                wall = (max(ends) - begin) if counted == args.count else None
                rate = args.count / wall if wall else 0.0
            notes = []
            for instance_id in run.sample:
                state = client.get_workflow_state(instance_id, fetch_payloads=True)
                output = None if state is None or state.serialized_output is None else json.loads(
                    state.serialized_output)
                if state is None or state.runtime_status != WorkflowStatus.COMPLETED or output != expected_output:
                    notes.append(f'get_workflow_state {instance_id}: {state}; expected COMPLETED with {expected_output}')
            to_ms = lambda value: None if value is None else value * 1e3  # noqa: E731
            emit(event='result', run=number, started=run.started, completed=run.completed, counted=counted,
                 errors=run.errors, first_error=run.first_error, rate=rate, wall_s=wall, all_started_s=all_started,
                 p50_ms=to_ms(percentile(run.latencies, 50)), p99_ms=to_ms(percentile(run.latencies, 99)),
                 max_ms=to_ms(percentile(run.latencies, 100)),
                 start_p50_ms=to_ms(percentile(run.start_calls, 50)),
                 start_p99_ms=to_ms(percentile(run.start_calls, 99)), notes=notes, unfinished=run.unfinished)
            log(f'run {number}: {counted} counted, {rate:.1f} workflows/s, {run.errors} errors'
                + (f', wall {wall:.1f} s' if wall else ''))
    finally:
        client.close()
        runtime.shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main())

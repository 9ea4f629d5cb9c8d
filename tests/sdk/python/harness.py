"""Runs Outrigger the way an operator does, for black-box tests with the official Dapr SDKs.

Two forms:

* embedded: the all-in-one binary with no subcommand, on a fresh data directory;
* distributed: `outrigger migrate`, then `worker`, `gateway` and `control-api` as separate processes
  over a fresh PostgreSQL schema and NATS JetStream under a subject prefix of their own.

Every process gets a clean environment (no inherited OUTRIGGER_* or DAPR_* variable), listens on
127.0.0.1 port 0, and is awaited through the one JSON "outrigger ready" line it logs on stdout. Its
stdout and stderr are drained by threads for its whole life, kept in memory (tests attach what was
written during a failed test to the report) and written to a log file.

A tenant's file-backed components (`state.sqlite`, `secretstores.local.file`) name files relative to the
project's own directory, `<OUTRIGGER_DATA_DIR>/projects/<project id>/` of the process that runs the worker;
`Deployment.project_dir` answers it.
"""

from __future__ import annotations

import json
import os
import queue
import secrets
import signal
import string
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

REPO_ROOT = Path(__file__).resolve().parents[3]

READY_TIMEOUT_SECONDS = 60
STOP_TIMEOUT_SECONDS = 30
MIGRATE_TIMEOUT_SECONDS = 120

POSTGRES_URL = os.environ.get('SDK_TEST_POSTGRES_URL', 'postgres://postgres@127.0.0.1:5432/postgres')
NATS_URL = os.environ.get('SDK_TEST_NATS_URL', 'nats://127.0.0.1:4222')


def random_token(length: int = 40, alphabet: str = string.ascii_letters + string.digits) -> str:
    return ''.join(secrets.choice(alphabet) for _ in range(length))


def random_name(prefix: str) -> str:
    """A DNS label: lower-case letters and digits after a letter prefix."""
    return prefix + random_token(10, string.ascii_lowercase + string.digits)


def outrigger_binary() -> Path:
    configured = os.environ.get('OUTRIGGER_BIN')
    binary = Path(configured) if configured else REPO_ROOT / 'target' / 'debug' / 'outrigger'
    if not binary.is_file() or not os.access(binary, os.X_OK):
        raise RuntimeError(
            f'no outrigger binary at {binary}: run `cargo build -p outrigger` or set OUTRIGGER_BIN'
        )
    return binary


def clean_environment(extra: dict[str, str]) -> dict[str, str]:
    """This process's environment without OUTRIGGER_* and DAPR_* settings, plus `extra`."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith('OUTRIGGER_') and not name.startswith('DAPR_')
    }
    env.update(extra)
    return env


class OutputLog:
    """Every line a deployment's processes wrote, in order, each tagged with its process and stream."""

    def __init__(self, path: Path):
        self._lines: list[str] = []
        self._lock = threading.Lock()
        self._file = open(path, 'a', encoding='utf-8', errors='replace')
        self.path = path

    def append(self, line: str) -> None:
        with self._lock:
            self._lines.append(line)
            self._file.write(line + '\n')
            self._file.flush()

    def mark(self) -> int:
        with self._lock:
            return len(self._lines)

    def since(self, mark: int) -> list[str]:
        with self._lock:
            return list(self._lines[mark:])

    def close(self) -> None:
        with self._lock:
            self._file.close()


class Process:
    """One outrigger process, started at once; `wait_ready` waits for its ready line. `generation` counts
    restarts of the same process (`Deployment.restart`); its output is tagged `name#generation` after one."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log: OutputLog, generation: int = 0):
        self.name = name
        self.args = args
        self.env = env
        self.generation = generation
        self.label = name if generation == 0 else f'{name}#{generation}'
        self.log = log
        self.ready_fields: Optional[dict[str, Any]] = None
        self._ready: queue.Queue[dict[str, Any]] = queue.Queue()
        self._exited = threading.Event()
        self.popen = subprocess.Popen(
            [str(outrigger_binary()), *args],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=env.get('OUTRIGGER_DATA_DIR'),
        )
        self._threads = [
            threading.Thread(target=self._drain, args=(self.popen.stdout, 'stdout', True), daemon=True),
            threading.Thread(target=self._drain, args=(self.popen.stderr, 'stderr', False), daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _drain(self, stream, label: str, look_for_ready: bool) -> None:
        for raw in iter(stream.readline, b''):
            line = raw.decode('utf-8', errors='replace').rstrip('\n')
            self.log.append(f'[{self.label} {label}] {line}')
            if look_for_ready:
                fields = _json_fields(line)
                if fields is not None and fields.get('message') == 'outrigger ready':
                    self._ready.put(fields)
        stream.close()
        if look_for_ready:
            self._exited.set()

    def wait_ready(self, timeout: float = READY_TIMEOUT_SECONDS) -> dict[str, Any]:
        """The fields of the ready line; fails when the process exits or stays silent too long."""
        if self.ready_fields is not None:
            return self.ready_fields
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.ready_fields = self._ready.get(timeout=0.1)
                return self.ready_fields
            except queue.Empty:
                pass
            if self._exited.is_set() or self.popen.poll() is not None:
                # The ready line may have been queued just before the process exited.
                try:
                    self.ready_fields = self._ready.get_nowait()
                    return self.ready_fields
                except queue.Empty:
                    raise RuntimeError(
                        f'outrigger {self.label} exited with {self.popen.wait()} before it was ready; '
                        f'its output is in {self.log.path}'
                    ) from None
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f'outrigger {self.label} logged no "outrigger ready" line within {timeout} s; '
                    f'its output is in {self.log.path}'
                )

    def stop(self) -> int:
        """SIGTERM, then SIGKILL after STOP_TIMEOUT_SECONDS; the exit code (negative: killed)."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        for thread in self._threads:
            thread.join(timeout=5)
        return self.popen.returncode

    def kill(self) -> int:
        """SIGKILL, as a crash or an OOM kill ends a process; the exit code (-9 unless it had exited)."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGKILL)
        self.popen.wait()
        for thread in self._threads:
            thread.join(timeout=5)
        return self.popen.returncode


# The listen-address settings of a process and the fields of its ready line that say where it is bound:
# a restarted process is given the addresses its predecessor had, so that clients find it again.
_LISTEN_SETTINGS = (
    ('OUTRIGGER_HTTP_ADDR', 'dapr_http'),
    ('OUTRIGGER_GRPC_ADDR', 'dapr_grpc'),
    ('OUTRIGGER_CONTROL_API_ADDR', 'control_api'),
)


def _json_fields(line: str) -> Optional[dict[str, Any]]:
    try:
        record = json.loads(line)
    except ValueError:
        return None
    if not isinstance(record, dict) or not isinstance(record.get('fields'), dict):
        return None
    return record['fields']


class HttpError(Exception):
    def __init__(self, method: str, url: str, status: int, body: str):
        super().__init__(f'{method} {url} -> {status}: {body}')
        self.status = status
        self.body = body


def http_request(
    method: str,
    url: str,
    body: Optional[bytes] = None,
    headers: Optional[dict[str, str]] = None,
    timeout: float = 30,
) -> tuple[int, bytes, dict[str, str]]:
    """One HTTP exchange: (status, body, headers); non-2xx answers are returned, not raised."""
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read(), dict(response.headers.items())
    except urllib.error.HTTPError as error:
        return error.code, error.read(), dict(error.headers.items())


class ControlApi:
    """The operator's REST API."""

    def __init__(self, base_url: str, admin_token: str):
        self.base_url = base_url
        self.admin_token = admin_token

    def call(
        self, method: str, path: str, body: Any = None, content_type: str = 'application/json'
    ) -> tuple[int, Any]:
        url = f'{self.base_url}/api/v1{path}'
        headers = {'Authorization': f'Bearer {self.admin_token}'}
        data = None
        if body is not None:
            data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
            headers['Content-Type'] = content_type
        status, raw, _ = http_request(method, url, data, headers)
        try:
            answer = json.loads(raw) if raw else None
        except ValueError:
            answer = raw.decode(errors='replace')
        return status, answer

    def expect(self, status: int, method: str, path: str, body: Any = None, **kwargs) -> Any:
        got, answer = self.call(method, path, body, **kwargs)
        if got != status:
            raise HttpError(method, f'{self.base_url}/api/v1{path}', got, json.dumps(answer))
        return answer

    def create_project(self, name: str) -> dict[str, Any]:
        return self.expect(201, 'POST', '/projects', {'name': name})

    def create_appid(self, project: str, name: str, app_endpoint: Optional[str] = None,
                     **fields: Any) -> dict[str, Any]:
        """Creates App ID `name`; `fields` are further AppId fields (appToken, config, appHealthCheckPath)."""
        body = {'name': name, **fields}
        if app_endpoint is not None:
            body['appEndpoint'] = app_endpoint
        return self.expect(201, 'POST', f'/projects/{project}/appids', body)

    def put_resource(self, project: str, collection: str, name: str, yaml: str) -> Any:
        """Creates or replaces a Dapr document in `collection` (components, subscriptions, configurations,
        resiliencies, httpendpoints)."""
        path = f'/projects/{project}/{collection}/{name}'
        status, answer = self.call('PUT', path, yaml, content_type='application/yaml')
        if status not in (200, 201):
            raise HttpError('PUT', f'{self.base_url}/api/v1{path}', status, json.dumps(answer))
        return answer

    def put_component(self, project: str, name: str, yaml: str) -> Any:
        return self.put_resource(project, 'components', name, yaml)

    def put_subscription(self, project: str, name: str, yaml: str) -> Any:
        return self.put_resource(project, 'subscriptions', name, yaml)


@dataclass
class Deployment:
    """A running Outrigger in one form, with what a test needs to reach it."""

    form: str
    control: ControlApi
    dapr_http: str  # http://127.0.0.1:PORT, where the Dapr HTTP API is bound
    dapr_grpc: str  # http://127.0.0.1:PORT, where the Dapr gRPC API is bound
    log: OutputLog
    work_dir: Path
    data_dir: Path  # OUTRIGGER_DATA_DIR of the process that runs the worker (all-in-one, or `worker`)
    processes: list[Process] = field(default_factory=list)
    cleanups: list[Any] = field(default_factory=list)


    def project_dir(self, name: str, create: bool = False) -> Path:
        """`<data dir>/projects/<project id>/`, where the worker confines project `name`'s component files:
        a component names a file there by its path relative to this directory. The worker creates the
        directory when it opens such a component; `create` makes it now, for a file a test puts there
        before the component that reads it exists (a secrets JSON)."""
        directory = self.data_dir / self.control.expect(200, 'GET', f'/projects/{name}')['filesDir']
        if create:
            directory.mkdir(parents=True, exist_ok=True)
        return directory

    def process(self, name: str) -> Process:
        """The current process called `name` (the latest generation of it)."""
        for process in self.processes:
            if process.name == name:
                return process
        raise KeyError(f'no outrigger process {name!r} in this {self.form} deployment')

    def kill(self, name: str) -> int:
        """SIGKILLs process `name` (see `restart`); its exit code."""
        return self.process(name).kill()

    def restart(self, name: str) -> Process:
        """Starts process `name` again after it died (`kill`): same subcommand, same settings, bound to the
        same addresses as before (its ready line said where); waits until it is ready. The new process
        takes the old one's place, so `stop` stops it."""
        old = self.process(name)
        if old.popen.poll() is None:
            raise RuntimeError(f'outrigger {old.label} is still running; kill it first')
        ready = old.wait_ready()
        env = dict(old.env)
        for variable, ready_field in _LISTEN_SETTINGS:
            if variable in env and isinstance(ready.get(ready_field), str):
                env[variable] = ready[ready_field]
        new = Process(name, old.args, env, self.log, generation=old.generation + 1)
        self.processes[self.processes.index(old)] = new
        fields = new.wait_ready()
        for variable, ready_field in _LISTEN_SETTINGS:
            if variable in env and fields.get(ready_field) != ready.get(ready_field):
                raise RuntimeError(f'restarted outrigger {new.label} is bound to {fields.get(ready_field)}, '
                                   f'not {ready.get(ready_field)} as before')
        return new

    def start_another(self, like: str, name: str) -> Process:
        """Starts one more process called `name` with the subcommand and settings of process `like` (a second
        `worker`, say, which binds no address of its own); waits until it is ready. `stop` stops it too."""
        model = self.process(like)
        process = Process(name, model.args, dict(model.env), self.log)
        self.processes.append(process)
        process.wait_ready()
        return process

    def stop(self) -> list[str]:
        """Stops the processes (last started first); the problems seen, if any."""
        problems = []
        for process in reversed(self.processes):
            code = process.stop()
            if code != 0:
                problems.append(f'outrigger {process.label} exited with {code} after SIGTERM (expected 0)')
        for cleanup in reversed(self.cleanups):
            try:
                cleanup()
            except Exception as error:  # noqa: BLE001 - report every cleanup problem, go on with the rest
                problems.append(f'cleanup failed: {error!r}')
        self.log.close()
        return problems


def _work_dir(form: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f'outrigger-sdk-{form}-'))


def _address(fields: dict[str, Any], name: str, process: str) -> str:
    value = fields.get(name)
    if not isinstance(value, str) or not value.startswith('127.0.0.1:'):
        raise RuntimeError(f'the ready line of outrigger {process} has {name}={value!r}: {fields}')
    return f'http://{value}'


def start_embedded(extra_env: Optional[dict[str, str]] = None) -> Deployment:
    work_dir = _work_dir('embedded')
    data_dir = work_dir / 'data'
    data_dir.mkdir()
    log = OutputLog(work_dir / 'outrigger.log')
    admin_token = random_token()
    env = clean_environment(
        {
            'OUTRIGGER_DATA_DIR': str(data_dir),
            'OUTRIGGER_CONTROL_API_ADDR': '127.0.0.1:0',
            'OUTRIGGER_HTTP_ADDR': '127.0.0.1:0',
            'OUTRIGGER_GRPC_ADDR': '127.0.0.1:0',
            'OUTRIGGER_LOG_FORMAT': 'json',
            'OUTRIGGER_ADMIN_TOKEN': admin_token,
            **(extra_env or {}),
        }
    )
    process = Process('all-in-one', [], env, log)
    deployment = None
    try:
        fields = process.wait_ready()
        deployment = Deployment(
            form='embedded',
            control=ControlApi(_address(fields, 'control_api', 'all-in-one'), admin_token),
            dapr_http=_address(fields, 'dapr_http', 'all-in-one'),
            dapr_grpc=_address(fields, 'dapr_grpc', 'all-in-one'),
            log=log,
            work_dir=work_dir,
            data_dir=data_dir,
            processes=[process],
        )
        return deployment
    finally:
        if deployment is None:
            process.stop()
            log.close()


class PostgresSchema:
    """A throw-away schema in the test PostgreSQL, selected through the URL's search_path."""

    def __init__(self, base_url: str = POSTGRES_URL):
        import psycopg

        self._psycopg = psycopg
        self.base_url = base_url
        self.name = random_name('sdk_')
        self._execute(f'CREATE SCHEMA {self.name}')

    def _execute(self, statement: str) -> None:
        with self._psycopg.connect(self.base_url, autocommit=True, connect_timeout=10) as connection:
            connection.execute(statement)

    @property
    def url(self) -> str:
        separator = '&' if '?' in self.base_url else '?'
        return f'{self.base_url}{separator}options=-c%20search_path%3D{self.name}'

    def drop(self) -> None:
        self._execute(f'DROP SCHEMA IF EXISTS {self.name} CASCADE')


def start_distributed(extra_env: Optional[dict[str, str]] = None) -> Deployment:
    work_dir = _work_dir('distributed')
    data_dir = work_dir / 'data'
    data_dir.mkdir()
    log = OutputLog(work_dir / 'outrigger.log')
    admin_token = random_token()
    schema = PostgresSchema()
    common = {
        'OUTRIGGER_DATABASE_URL': schema.url,
        'OUTRIGGER_NATS_URL': NATS_URL,
        'OUTRIGGER_BUS_SUBJECT_PREFIX': 'sdk' + random_token(12, string.ascii_lowercase + string.digits),
        'OUTRIGGER_ADMIN_TOKEN': admin_token,
        'OUTRIGGER_LOG_FORMAT': 'json',
        'OUTRIGGER_DATA_DIR': str(data_dir),
        # The tests' apps listen on loopback, which the distributed form refuses to call by default.
        'OUTRIGGER_ALLOW_PRIVATE_ENDPOINTS': 'true',
        # The secret-store tests keep their secrets in files of this host (in the project's directory under the
        # worker's data dir), which the distributed form's workers refuse to read by default.
        'OUTRIGGER_ALLOW_HOST_SECRET_STORES': 'true',
        **(extra_env or {}),
    }
    processes: list[Process] = []
    deployment = None
    try:
        migrate = subprocess.run(
            [str(outrigger_binary()), 'migrate'],
            env=clean_environment(common),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=MIGRATE_TIMEOUT_SECONDS,
            cwd=data_dir,
        )
        for label, output in (('stdout', migrate.stdout), ('stderr', migrate.stderr)):
            for line in output.decode('utf-8', errors='replace').splitlines():
                log.append(f'[migrate {label}] {line}')
        if migrate.returncode != 0:
            raise RuntimeError(f'outrigger migrate exited with {migrate.returncode}; output in {log.path}')

        worker = Process('worker', ['worker'], clean_environment(common), log)
        processes.append(worker)
        gateway = Process(
            'gateway',
            ['gateway'],
            clean_environment(
                {**common, 'OUTRIGGER_HTTP_ADDR': '127.0.0.1:0', 'OUTRIGGER_GRPC_ADDR': '127.0.0.1:0'}
            ),
            log,
        )
        processes.append(gateway)
        control_api = Process(
            'control-api',
            ['control-api'],
            clean_environment({**common, 'OUTRIGGER_CONTROL_API_ADDR': '127.0.0.1:0'}),
            log,
        )
        processes.append(control_api)

        worker.wait_ready()
        gateway_fields = gateway.wait_ready()
        control_fields = control_api.wait_ready()
        deployment = Deployment(
            form='distributed',
            control=ControlApi(_address(control_fields, 'control_api', 'control-api'), admin_token),
            dapr_http=_address(gateway_fields, 'dapr_http', 'gateway'),
            dapr_grpc=_address(gateway_fields, 'dapr_grpc', 'gateway'),
            log=log,
            work_dir=work_dir,
            data_dir=data_dir,
            processes=processes,
            cleanups=[schema.drop],
        )
        return deployment
    finally:
        if deployment is None:
            for process in reversed(processes):
                process.stop()
            schema.drop()
            log.close()


def wait_until(predicate, timeout: float, interval: float = 0.05, what: str = 'condition'):
    """Polls `predicate` until it returns a truthy value, which is returned; fails after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f'{what} did not hold within {timeout} s')
        time.sleep(interval)

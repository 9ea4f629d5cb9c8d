"""What tests use to act as operator and as app: projects and App IDs made through the control API, and
Dapr clients configured the way an app configures them (DAPR_HTTP_ENDPOINT, DAPR_GRPC_ENDPOINT,
DAPR_API_TOKEN).

dapr 1.19.0 resolves `dapr.conf.settings` from the environment each time a setting is read (a value
assigned on `settings` wins), and DaprClient() reads the three settings while it is constructed: the
HTTP endpoint for its health probe, the gRPC endpoint for its channel and the token for the interceptor
that adds `dapr-api-token` to every call. So `dapr_client()` sets the three variables, constructs the
client, and puts the environment back; the client keeps what it read.
"""

from __future__ import annotations

import json
import os
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import harness

DAPR_VARIABLES = ('DAPR_HTTP_ENDPOINT', 'DAPR_GRPC_ENDPOINT', 'DAPR_API_TOKEN')

_environment_lock = threading.Lock()


@dataclass
class App:
    """An App ID with the three settings its app is given."""

    project: str
    name: str
    token: str
    http_endpoint: str
    grpc_endpoint: str


@dataclass
class Project:
    name: str
    answer: dict
    apps: dict[str, App] = field(default_factory=dict)


class Tenants:
    """Creates projects and App IDs on one deployment through the control API."""

    def __init__(self, deployment: harness.Deployment, tmp_path: Path):
        self.deployment = deployment
        self.tmp_path = tmp_path

    def project(self, apps=('orders',)) -> Project:
        name = harness.random_name('p')
        answer = self.deployment.control.create_project(name)
        project = Project(name=name, answer=answer)
        for app in apps:
            self.add_app(project, app)
        return project

    def add_app(self, project: Project, name: str, app_endpoint: Optional[str] = None, **fields) -> App:
        """Creates App ID `name`; `app_endpoint` is where the platform calls the app back (push delivery,
        invocation); `fields` are further AppId fields."""
        created = self.deployment.control.create_appid(project.name, name, app_endpoint, **fields)
        token = created.get('apiToken')
        assert isinstance(token, str) and token, f'no apiToken in {created}'
        if self.deployment.form == 'embedded':
            # The all-in-one server knows where it listens: the project's endpoints are the ones to use.
            http_endpoint = project.answer['httpEndpoint']
            grpc_endpoint = project.answer['grpcEndpoint']
        else:
            # The distributed control API cannot know where this test's gateway is bound.
            http_endpoint = self.deployment.dapr_http
            grpc_endpoint = self.deployment.dapr_grpc
        app = App(project.name, name, token, http_endpoint, grpc_endpoint)
        project.apps[name] = app
        return app

    def sqlite_component(self, project: Project, name: str = 'sqlstore') -> Path:
        """Adds a state.sqlite component on a fresh file `<name>.db`, named relative to the project's
        directory as a tenant must name it; the file's real path there (created when the worker opens the
        component)."""
        relative = f'{name}.db'
        self.deployment.control.put_component(project.name, name, sqlite_component_yaml(name, relative))
        return self.deployment.project_dir(project.name) / relative


def sqlite_component_yaml(name: str, path: str) -> str:
    """A state.sqlite component on `path`: relative to the project's directory, or `:memory:`."""
    return f"""apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: {name}
spec:
  type: state.sqlite
  version: v1
  metadata:
    - name: connectionString
      value: "{path}"
"""


_UNSET = object()


@contextmanager
def dapr_environment(http_endpoint: Optional[str], grpc_endpoint: Optional[str], token: Optional[str]):
    """The three DAPR_* variables set as given (None: unset) for the duration of the block."""
    values = {'DAPR_HTTP_ENDPOINT': http_endpoint, 'DAPR_GRPC_ENDPOINT': grpc_endpoint, 'DAPR_API_TOKEN': token}
    with _environment_lock:
        saved = {name: os.environ.get(name) for name in DAPR_VARIABLES}
        try:
            for name, value in values.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
            yield
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


@contextmanager
def dapr_client(app: App, token=_UNSET):
    """A DaprClient for `app`, or for `app`'s endpoints with another token (None: no token)."""
    from dapr.clients import DaprClient

    with dapr_environment(app.http_endpoint, app.grpc_endpoint, app.token if token is _UNSET else token):
        client = DaprClient()
    try:
        yield client
    finally:
        client.close()


@contextmanager
def invoking_client(app: App):
    """A DaprClient for service invocation. The SDK's HTTP invocation client reads DAPR_HTTP_ENDPOINT and
    DAPR_API_TOKEN on every call rather than when the client is constructed, so the variables stay set
    for the whole block (no other client can be made inside it)."""
    from dapr.clients import DaprClient

    with dapr_environment(app.http_endpoint, app.grpc_endpoint, app.token):
        client = DaprClient()
        try:
            yield client
        finally:
            client.close()


def error_info(error) -> dict:
    """The google.rpc.ErrorInfo of a DaprGrpcError, as a dict ({} when the status carries none)."""
    details = error.status_details()
    return (details.error_info if details is not None else None) or {}


def describe(error) -> str:
    """A DaprGrpcError as one line for assertion messages."""
    try:
        return error.json()
    except Exception:  # noqa: BLE001 - any error is worth printing somehow
        return repr(error)


def registered_components(client) -> dict[str, object]:
    """name -> RegisteredComponents, from the app's GetMetadata."""
    return {component.name: component for component in client.get_metadata().registered_components}


def wait_for_component(client, name: str, timeout: float = 15.0):
    """Waits until the app's metadata lists component `name` (a component added through the control
    API becomes visible to apps when the runtime has loaded it); its RegisteredComponents."""
    return harness.wait_until(
        lambda: registered_components(client).get(name),
        timeout,
        interval=0.1,
        what=f'component {name!r} appearing in GetMetadata',
    )


def json_bytes(value) -> bytes:
    return json.dumps(value, separators=(',', ':')).encode()


def dapr_http(app: App, method: str, path: str, body: Optional[bytes] = None,
              headers: Optional[dict] = None) -> tuple[int, bytes, dict]:
    """One call to the Dapr HTTP API at `app`'s endpoint with its token: (status, body, headers)."""
    return harness.http_request(
        method, f'{app.http_endpoint}{path}', body, {'dapr-api-token': app.token, **(headers or {})}
    )


def constructed_for(app: App, make: Callable):
    """`make()` (an SDK client or runtime) built while the environment points at `app`, as in the app's process."""
    """`make()` with the App ID's DAPR_* variables set, as an app started with them would run it."""
    with dapr_environment(app.http_endpoint, app.grpc_endpoint, app.token):
        return make()


def start_runtime(runtime, timeout: float = 30.0) -> None:
    """`WorkflowRuntime.start()`, failing the test when it has not connected (Hello, then an open
    GetWorkItems stream) within `timeout` seconds."""
    failure: list[BaseException] = []

    def start() -> None:
        try:
            runtime.start()
        except BaseException as error:  # noqa: BLE001 - handed to the test below
            failure.append(error)

    thread = threading.Thread(target=start, name='workflow-runtime-start', daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        runtime.shutdown()  # makes the waiting start() give up
        thread.join(10)
        raise AssertionError(f'WorkflowRuntime.start() did not get a GetWorkItems stream within {timeout} s '
                             '(its Hello or GetWorkItems keeps failing; see the SDK log above)')
    if failure:
        runtime.shutdown()
        raise AssertionError(f'WorkflowRuntime.start() failed: {failure[0]!r}') from failure[0]

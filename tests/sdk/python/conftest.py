"""Fixtures: Outrigger in both forms (each started once per session, on first use, exporting its spans to
one OTLP receiver of the session), every test parametrized over the two, and a fresh project per test so
that tests do not see each other's data.
"""

from __future__ import annotations

import os
import shutil
from typing import Iterator

import pytest

import harness
import otlp_receiver
from support import App, Project, Tenants

FORMS = ('embedded', 'distributed')

# A DAPR_* setting of the shell that runs the tests must not reach a client by accident.
for _name in list(os.environ):
    if _name.startswith('DAPR_'):
        del os.environ[_name]

# Lines of output attached to the report of a failed test, at most.
OUTPUT_LINES_ON_FAILURE = 300


_failures = []


def pytest_runtest_logreport(report):
    if report.failed:
        _failures.append(report.nodeid)


def _stop(deployment: harness.Deployment) -> None:
    problems = deployment.stop()
    if problems:
        pytest.fail(f'{deployment.form} Outrigger did not stop cleanly: ' + '; '.join(problems)
                    + f' (output: {deployment.log.path})')
    if _failures or os.environ.get('SDK_TESTS_KEEP_LOGS') == '1':
        print(f'\n[sdk] {deployment.form} Outrigger output kept in {deployment.log.path}')
    else:
        shutil.rmtree(deployment.work_dir, ignore_errors=True)


@pytest.fixture(scope='session')
def spans() -> Iterator[otlp_receiver.Receiver]:
    """The OTLP receiver every session deployment exports its spans to."""
    receiver = otlp_receiver.Receiver()
    yield receiver
    receiver.stop()


def _exporting_to(receiver: otlp_receiver.Receiver) -> dict[str, str]:
    # Spans leave every 100 ms, so a test waits for them briefly.
    return {'OUTRIGGER_OTLP_ENDPOINT': receiver.endpoint, 'OUTRIGGER_OTLP_FLUSH_MS': '100'}


@pytest.fixture(scope='session')
def embedded_deployment(spans) -> Iterator[harness.Deployment]:
    deployment = harness.start_embedded(_exporting_to(spans))
    yield deployment
    _stop(deployment)


@pytest.fixture(scope='session')
def distributed_deployment(spans) -> Iterator[harness.Deployment]:
    deployment = harness.start_distributed(_exporting_to(spans))
    yield deployment
    _stop(deployment)


@pytest.fixture
def crash_deployment(request):
    """A distributed Outrigger of this test's own (it kills its processes), stopped at the end; its output
    is attached to the report when the test fails and kept on disk then."""
    deployment = harness.start_distributed()
    request.node.outrigger_output = (deployment, deployment.log.mark())
    failed_before = request.session.testsfailed
    yield deployment
    problems = deployment.stop()
    failed = request.session.testsfailed > failed_before or getattr(request.node, 'crash_failed', False)
    if failed or problems or os.environ.get('SDK_TESTS_KEEP_LOGS') == '1':
        print(f'\n[crash] distributed Outrigger output kept in {deployment.log.path}')
    else:
        shutil.rmtree(deployment.work_dir, ignore_errors=True)
    if problems:
        pytest.fail('the crash test\'s Outrigger did not stop cleanly: ' + '; '.join(problems)
                    + f' (output: {deployment.log.path})')


@pytest.fixture(params=FORMS)
def deployment(request) -> harness.Deployment:
    """Outrigger in the form the test is parametrized with, started on first use in the session."""
    deployment = request.getfixturevalue(f'{request.param}_deployment')
    request.node.outrigger_output = (deployment, deployment.log.mark())
    return deployment


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.failed and hasattr(item, 'outrigger_output'):
        deployment, mark = item.outrigger_output
        lines = deployment.log.since(mark)
        if len(lines) > OUTPUT_LINES_ON_FAILURE:
            lines = [f'... {len(lines) - OUTPUT_LINES_ON_FAILURE} earlier lines in {deployment.log.path}']\
                + lines[-OUTPUT_LINES_ON_FAILURE:]
        report.sections.append((f'outrigger output ({deployment.form}) during the test', '\n'.join(lines)))
    return report


@pytest.fixture
def tenants(deployment, tmp_path) -> Tenants:
    return Tenants(deployment, tmp_path)


@pytest.fixture
def project(tenants) -> Project:
    """A fresh project with one App ID, `orders`."""
    return tenants.project()


@pytest.fixture
def app(project) -> App:
    return project.apps['orders']



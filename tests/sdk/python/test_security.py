"""File confinement (issue 14), on both forms: a tenant's file-backed component names its file relative to the
project's own directory (`<data dir>/projects/<project id>/` of the process that runs the worker). An
absolute path or one that climbs out with `..` is answered 400 naming the field when the component is
written (PUT and apply) and nothing is stored; a path that reaches the worker through a secretKeyRef, which
the control API cannot see, is refused when the component is opened and no file is made outside.
"""

from __future__ import annotations

import json

import pytest
from dapr.clients.exceptions import DaprGrpcError

from support import Tenants, dapr_client, describe, wait_for_component


def sqlite_yaml(name: str, connection_string: str) -> str:
    return f"""apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: {name}
spec:
  type: state.sqlite
  version: v1
  metadata:
    - name: connectionString
      value: "{connection_string}"
"""


def secret_file_yaml(name: str, secrets_file: str) -> str:
    return f"""apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: {name}
spec:
  type: secretstores.local.file
  version: v1
  metadata:
    - name: secretsFile
      value: "{secrets_file}"
"""


# Paths outside the project's directory; `data` stands for the deployment's data dir.
ESCAPES = {
    'the platform\'s own kvstore': lambda data: str(data / 'kvstore.db'),
    'the platform\'s own kvstore as a file: URI': lambda data: f'file:{data / "kvstore.db"}',
    'the parent directory': lambda data: '../x.db',
    'a detour out through a subdirectory': lambda data: 'nested/../../x.db',
}


def component_names(deployment, project: str) -> list[str]:
    items = deployment.control.expect(200, 'GET', f'/projects/{project}/components')['items']
    return [item['metadata']['name'] for item in items]


@pytest.mark.parametrize('escape', ESCAPES.values(), ids=ESCAPES.keys())
def test_a_sqlite_file_outside_the_project_directory_is_refused_on_write_and_not_stored(deployment, tmp_path,
                                                                                      escape):
    project = Tenants(deployment, tmp_path).project(apps=())
    path = escape(deployment.data_dir)
    document = sqlite_yaml('sneaky', path)

    status, answer = deployment.control.call('PUT', f'/projects/{project.name}/components/sneaky', document,
                                             content_type='application/yaml')
    assert status == 400, answer
    assert answer['code'] == 'invalid_resource', answer
    assert '(connectionString)' in answer['message'] and path.removeprefix('file:') in answer['message'], answer

    status, answer = deployment.control.call('POST', f'/projects/{project.name}/apply', document,
                                             content_type='application/yaml')
    assert status == 400, answer
    assert answer['code'] == 'invalid_document', answer
    assert '(connectionString)' in answer['message'] and 'nothing was applied' in answer['message'], answer

    status, answer = deployment.control.call('GET', f'/projects/{project.name}/components/sneaky')
    assert status == 404, answer
    assert component_names(deployment, project.name) == []
    # Nothing was opened either: the worker makes the project's directory only when it opens a component.
    assert not deployment.project_dir(project.name).exists()


def test_files_inside_the_project_directory_and_memory_are_accepted(deployment, tmp_path):
    project = Tenants(deployment, tmp_path).project(apps=())
    for name, path in (('plain', 'data.db'), ('nested', 'stores/orders.db'), ('uri', 'file:uri.db'),
                       ('memory', ':memory:')):
        deployment.control.put_component(project.name, name, sqlite_yaml(name, path))
    assert sorted(component_names(deployment, project.name)) == ['memory', 'nested', 'plain', 'uri']


@pytest.mark.parametrize('path', ['/etc/passwd', '../secrets.json'])
def test_a_secrets_file_outside_the_project_directory_is_refused_on_write(deployment, tmp_path, path):
    project = Tenants(deployment, tmp_path).project(apps=())
    status, answer = deployment.control.call('PUT', f'/projects/{project.name}/components/vault',
                                             secret_file_yaml('vault', path), content_type='application/yaml')
    assert status == 400, answer
    assert answer['code'] == 'invalid_resource', answer
    assert '(secretsFile)' in answer['message'] and path in answer['message'], answer
    assert component_names(deployment, project.name) == []


def test_a_path_from_a_secret_is_confined_when_the_store_opens(deployment, tmp_path):
    """The control API stores a secretKeyRef as given; the worker refuses the path the secret holds when it
    opens the store, and the app's state calls say why."""
    tenants = Tenants(deployment, tmp_path)
    project = tenants.project(apps=('orders',))
    outside = deployment.work_dir / f'{project.name}-outside.db'
    secrets = {'absolute': str(outside), 'climbing': f'../{project.name}-climbing.db'}
    (deployment.project_dir(project.name, create=True) / 'secrets.json').write_text(json.dumps(secrets))
    deployment.control.put_component(project.name, 'vault', secret_file_yaml('vault', 'secrets.json'))
    for name in secrets:
        deployment.control.put_component(project.name, name, f"""apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: {name}
spec:
  type: state.sqlite
  version: v1
  metadata:
    - name: connectionString
      secretKeyRef:
        name: {name}
auth:
  secretStore: vault
""")
    with dapr_client(project.apps['orders']) as client:
        wait_for_component(client, 'climbing')
        for name, path in secrets.items():
            with pytest.raises(DaprGrpcError) as refused:
                client.save_state(name, 'k', b'v')
            message = refused.value.details()
            assert "metadata field 'connectionString' is invalid" in message and path in message, \
                describe(refused.value)
    assert not outside.exists()
    assert not (deployment.data_dir / 'projects' / f'{project.name}-climbing.db').exists()

"""Secrets with the Python SDK (gRPC): `get_secret` / `get_bulk_secret` on a `secretstores.local.file` store,
the caller's Configuration `secrets.scopes`, isolation between projects, and a state store whose connection
string comes from a `secretKeyRef` — on both forms. The SDK's secret calls raise gRPC's own `RpcError`, not
`DaprGrpcError`.

A tenant's component names its files relative to the project's own directory (`Deployment.project_dir`): the
tests put the secrets JSON there first and name it by that relative name, never by an absolute path.
"""

from __future__ import annotations

import json

import grpc
import pytest

from support import Tenants, dapr_client, wait_for_component

SECRETS = {'db-password': 's3cret', 'api': {'key': 'k1', 'region': 'eu'}}


def write_secrets(deployment, project, secrets=SECRETS, file_name: str = 'secrets.json') -> str:
    """Writes `secrets` as JSON into the project's directory (made first: the worker makes it only when it
    opens a component); the name a component gives the file, relative to that directory."""
    (deployment.project_dir(project.name, create=True) / file_name).write_text(json.dumps(secrets))
    return file_name


def secret_store_yaml(name: str, path: str, multi_valued: bool = False) -> str:
    """A secretstores.local.file store on `path`, relative to the project's directory."""
    return f"""apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: {name}
spec:
  type: secretstores.local.file
  version: v1
  metadata:
    - name: secretsFile
      value: "{path}"
    - name: multiValued
      value: "{str(multi_valued).lower()}"
"""


def test_get_secret_and_bulk(deployment, tmp_path):
    tenants = Tenants(deployment, tmp_path)
    project = tenants.project(apps=('orders',))
    secrets_file = write_secrets(deployment, project)
    deployment.control.put_component(project.name, 'vault', secret_store_yaml('vault', secrets_file))
    deployment.control.put_component(project.name, 'grouped', secret_store_yaml('grouped', secrets_file, True))
    with dapr_client(project.apps['orders']) as client:
        wait_for_component(client, 'grouped')
        assert client.get_secret('vault', 'db-password').secret == {'db-password': 's3cret'}
        assert client.get_secret('vault', 'api:region').secret == {'api:region': 'eu'}
        assert client.get_secret('grouped', 'api').secret == {'key': 'k1', 'region': 'eu'}
        bulk = client.get_bulk_secret('grouped').secrets
        assert bulk == {'db-password': {'db-password': 's3cret'}, 'api': {'key': 'k1', 'region': 'eu'}}
        with pytest.raises(grpc.RpcError) as unknown:
            client.get_secret('nostore', 'db-password')
        assert unknown.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert unknown.value.details() == 'failed finding secret store with key nostore'
        with pytest.raises(grpc.RpcError) as missing:
            client.get_secret('vault', 'nothing')
        assert missing.value.code() == grpc.StatusCode.INTERNAL
        assert 'secret nothing not found' in missing.value.details()


def test_secret_scopes_and_projects_bound_who_may_read(deployment, tmp_path):
    tenants = Tenants(deployment, tmp_path)
    project = tenants.project(apps=('open',))
    secrets_file = write_secrets(deployment, project)
    deployment.control.put_component(project.name, 'vault', secret_store_yaml('vault', secrets_file))
    deployment.control.put_resource(project.name, 'configurations', 'limited', """
apiVersion: dapr.io/v1alpha1
kind: Configuration
metadata:
  name: limited
spec:
  secrets:
    scopes:
      - storeName: vault
        defaultAccess: allow
        deniedSecrets: ["db-password"]
""")
    scoped = tenants.add_app(project, 'scoped', config='limited')
    with dapr_client(scoped) as client:
        wait_for_component(client, 'vault')
        with pytest.raises(grpc.RpcError) as denied:
            client.get_secret('vault', 'db-password')
        assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert client.get_secret('vault', 'api:key').secret == {'api:key': 'k1'}
        assert 'db-password' not in client.get_bulk_secret('vault').secrets
    with dapr_client(project.apps['open']) as client:
        assert client.get_secret('vault', 'db-password').secret == {'db-password': 's3cret'}

    stranger = tenants.project(apps=('spy',)).apps['spy']
    with dapr_client(stranger) as client:
        with pytest.raises(grpc.RpcError) as foreign:
            client.get_secret('vault', 'db-password')
        assert foreign.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert foreign.value.details() == 'secret store is not configured'


def test_a_state_store_reads_its_connection_string_from_a_secret(deployment, tmp_path):
    tenants = Tenants(deployment, tmp_path)
    project = tenants.project(apps=('orders',))
    # The secret holds a path relative to the project's directory, as a connectionString given inline would.
    secrets = write_secrets(deployment, project, {'sqlite-path': 'orders.db'}, 'store-secrets.json')
    deployment.control.put_component(project.name, 'vault', secret_store_yaml('vault', secrets))
    deployment.control.put_component(project.name, 'orders', """apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: orders
spec:
  type: state.sqlite
  version: v1
  metadata:
    - name: connectionString
      secretKeyRef:
        name: sqlite-path
auth:
  secretStore: vault
""")
    with dapr_client(project.apps['orders']) as client:
        wait_for_component(client, 'orders')
        client.save_state('orders', 'o1', b'{"total": 7}')
        assert client.get_state('orders', 'o1').data == b'{"total": 7}'
    database = deployment.project_dir(project.name) / 'orders.db'
    assert database.exists(), 'the store opened the file its secret names, in the project\'s directory'
    status, answer = deployment.control.call('DELETE', f'/projects/{project.name}/components/vault')
    assert status == 409, answer

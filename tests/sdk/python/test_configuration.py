"""Configuration with the Python SDK (gRPC `GetConfiguration`, `SubscribeConfigurationAlpha1`,
`UnsubscribeConfigurationAlpha1`): the managed `configstore` whose items the operator sets through the control
API, and Dapr's configuration quickstart on a `configuration.redis` component whose items are set with
`redis-cli` — on both forms.

The SDK (1.19.0) sends its API token on unary and bidirectional calls only, so its server-streaming
`subscribe_configuration` reaches the sidecar without one; daprd has refused such calls since 1.10 (dapr#5929)
and so does Outrigger: the SDK's subscription answers no id. Subscriptions themselves are tested with the JS SDK
(`tests/sdk/js/configuration.test.mjs`) and in the gateway's tests."""

from __future__ import annotations

import subprocess
import uuid

from support import dapr_client, wait_for_component

REDIS_CONFIGURATION = """apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: redisconfig
spec:
  type: configuration.redis
  version: v1
  metadata:
    - name: redisHost
      value: "127.0.0.1:6379"
"""


def redis_cli(*args: str) -> str:
    return subprocess.run(['redis-cli', '-h', '127.0.0.1', '-p', '6379', *args], check=True,
                          capture_output=True, text=True).stdout.strip()


def test_the_managed_configstore_is_read(tenants):
    project = tenants.project(apps=('orders',))
    control = tenants.deployment.control
    items_path = f'/projects/{project.name}/configuration-items'
    control.expect(201, 'PUT', f'{items_path}/orderId1', {'value': '101'})
    with dapr_client(project.apps['orders']) as client:
        items = client.get_configuration('configstore', ['orderId1', 'orderId2']).items
        assert list(items) == ['orderId1']
        assert (items['orderId1'].value, items['orderId1'].version) == ('101', '1')

        control.expect(200, 'PUT', f'{items_path}/orderId1', {'value': '102'})
        control.expect(201, 'PUT', f'{items_path}/orderId2', {'value': '201'})
        items = client.get_configuration('configstore', []).items
        assert {key: (item.value, item.version) for key, item in items.items()} == {
            'orderId1': ('102', '2'), 'orderId2': ('201', '1')}
        assert not client.unsubscribe_configuration('configstore', 'no-such-subscription')


def test_the_sdks_tokenless_subscription_is_refused_as_daprd_refuses_it(project):
    with dapr_client(project.apps['orders']) as client:
        assert client.subscribe_configuration('configstore', ['orderId1'], lambda *_: None) is None


def test_the_configuration_quickstart_on_redis(tenants):
    """Dapr's configuration quickstart: items set with redis-cli as `value||version`, read as daprd reads them."""
    project = tenants.project(apps=('order-processor',))
    tenants.deployment.control.put_component(project.name, 'redisconfig', REDIS_CONFIGURATION)
    first, second = f'orderId1-{uuid.uuid4().hex}', f'orderId2-{uuid.uuid4().hex}'
    redis_cli('MSET', first, '101||1', second, '102||1')
    try:
        with dapr_client(project.apps['order-processor']) as client:
            wait_for_component(client, 'redisconfig')
            items = client.get_configuration('redisconfig', [first, second]).items
            assert {key: (item.value, item.version) for key, item in items.items()} == {
                first: ('101', '1'), second: ('102', '1')}
            redis_cli('SET', first, '103||2')
            assert client.get_configuration('redisconfig', [first]).items[first].version == '2'
    finally:
        redis_cli('DEL', first, second)


def test_projects_never_see_each_others_configuration(tenants):
    first = tenants.project(apps=('orders',))
    second = tenants.project(apps=('orders',))
    items_path = f'/projects/{first.name}/configuration-items'
    tenants.deployment.control.expect(201, 'PUT', f'{items_path}/secret-flag', {'value': 'on'})
    with dapr_client(first.apps['orders']) as owner, dapr_client(second.apps['orders']) as stranger:
        assert owner.get_configuration('configstore', ['secret-flag']).items['secret-flag'].value == 'on'
        assert dict(stranger.get_configuration('configstore', ['secret-flag']).items) == {}

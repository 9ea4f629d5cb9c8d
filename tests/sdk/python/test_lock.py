"""Distributed locks with the Python SDK (gRPC `TryLockAlpha1` / `UnlockAlpha1`): the managed `kvstore` as a
lock store, a `lock.redis` component, the SDK's `with` form that releases on exit, daprd's errors, expiry, and
locks kept apart between projects — on both forms."""

from __future__ import annotations

import time
import uuid

import grpc
import pytest
from dapr.clients.grpc._response import UnlockResponseStatus

from support import dapr_client, wait_for_component

pytestmark = pytest.mark.filterwarnings('ignore:The Distributed Lock API is an Alpha version')

REDIS_LOCK = """apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: redislock
spec:
  type: lock.redis
  version: v1
  metadata:
    - name: redisHost
      value: "127.0.0.1:6379"
"""


def unique(name: str) -> str:
    """A resource ID of this test run only (the Redis behind `lock.redis` is shared by every test)."""
    return f'{name}-{uuid.uuid4().hex}'


@pytest.mark.parametrize('store', ['kvstore', 'redislock'])
def test_one_owner_holds_a_lock_until_it_releases_it(tenants, store):
    project = tenants.project(apps=('orders',))
    tenants.deployment.control.put_component(project.name, 'redislock', REDIS_LOCK)
    resource = unique('order')
    with dapr_client(project.apps['orders']) as client:
        wait_for_component(client, 'redislock')
        assert client.try_lock(store, resource, 'alice', 60).success
        assert not client.try_lock(store, resource, 'bob', 60).success
        assert client.unlock(store, resource, 'bob').status == UnlockResponseStatus.lock_belongs_to_others
        assert client.unlock(store, resource, 'alice').status == UnlockResponseStatus.success
        assert client.unlock(store, resource, 'alice').status == UnlockResponseStatus.lock_does_not_exist
        # The SDK's `with` form releases the lock when the block ends.
        with client.try_lock(store, resource, 'bob', 60) as lock:
            assert lock
            assert not client.try_lock(store, resource, 'carol', 60)
        assert client.try_lock(store, resource, 'carol', 60)
        assert client.unlock(store, resource, 'carol').status == UnlockResponseStatus.success


def test_an_expired_lock_can_be_taken_again(project):
    resource = unique('order')
    with dapr_client(project.apps['orders']) as client:
        taken = time.monotonic()
        assert client.try_lock('kvstore', resource, 'alice', 1).success
        # The lease ending is the event: another owner asks until it gets the lock, within a bound.
        while not client.try_lock('kvstore', resource, 'bob', 60).success:
            assert time.monotonic() - taken < 3, 'a 1 s lease was still held after 3 s'
            time.sleep(0.05)
        assert client.unlock('kvstore', resource, 'alice').status == UnlockResponseStatus.lock_belongs_to_others


def test_lock_errors_are_daprds(tenants):
    project = tenants.project(apps=('orders',))
    with dapr_client(project.apps['orders']) as client:
        with pytest.raises(grpc.RpcError) as unknown:
            client.try_lock('nostore', 'order-1', 'alice', 10)
        assert unknown.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert 'lock store nostore not found' in str(unknown.value)
        with pytest.raises(grpc.RpcError) as separator:
            client.try_lock('kvstore', 'a||b', 'alice', 10)
        assert separator.value.code() == grpc.StatusCode.INTERNAL
        assert "can't contain '||'" in str(separator.value)


def test_projects_never_see_each_others_locks(tenants):
    first = tenants.project(apps=('orders',))
    second = tenants.project(apps=('orders',))
    resource = unique('order')
    with dapr_client(first.apps['orders']) as owner, dapr_client(second.apps['orders']) as stranger:
        assert owner.try_lock('kvstore', resource, 'alice', 60).success
        assert stranger.unlock('kvstore', resource, 'alice').status == UnlockResponseStatus.lock_does_not_exist
        assert stranger.try_lock('kvstore', resource, 'mallory', 60).success
        assert owner.unlock('kvstore', resource, 'alice').status == UnlockResponseStatus.success

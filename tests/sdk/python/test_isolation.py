"""Tenants do not see each other: two projects with the same two App ID names, using the same store
and key names. Every read, write, bulk call, transaction and query made with one App ID's token sees
only that App ID's data (keys are prefixed by App ID, so even two App IDs of one project are apart)."""

import json
from contextlib import ExitStack

import grpc
import pytest
from dapr.clients.exceptions import DaprGrpcError
from dapr.clients.grpc._request import TransactionalStateOperation, TransactionOperationType
from dapr.clients.grpc._state import StateItem

from support import dapr_client, describe, json_bytes, wait_for_component

pytestmark = pytest.mark.filterwarnings('ignore:The State Store Query API is an Alpha version')

APP_NAMES = ('orders', 'billing')
KEYS = ('shared', 'b1', 'b2', 't1', 'gone', 'doc1', 'doc2')


@pytest.fixture
def apps(tenants):
    """Four App IDs: orders and billing in each of two projects; (label, App) pairs."""
    projects = [tenants.project(apps=APP_NAMES) for _ in range(2)]
    return [(f'{project.name}/{name}', project.apps[name]) for project in projects for name in APP_NAMES]


@pytest.fixture
def clients(apps):
    with ExitStack() as stack:
        yield {label: stack.enter_context(dapr_client(app)) for label, app in apps}


def write_everything(client, tag):
    """Every kind of write, each value naming its writer."""
    client.save_state('kvstore', 'shared', tag)
    client.save_bulk_state('kvstore', [StateItem('b1', f'{tag}/b1'), StateItem('b2', f'{tag}/b2')])
    upsert = TransactionOperationType.upsert
    client.execute_state_transaction(
        'kvstore',
        [
            TransactionalStateOperation('t1', f'{tag}/t1', operation_type=upsert),
            TransactionalStateOperation('gone', f'{tag}/gone', operation_type=upsert),
        ],
    )
    for key in ('doc1', 'doc2'):
        client.save_state('kvstore', key, json_bytes({'kind': 'isolation', 'owner': tag, 'key': key}))


def expected_values(tag, deleted=()):
    values = {
        'shared': tag.encode(),
        'b1': f'{tag}/b1'.encode(),
        'b2': f'{tag}/b2'.encode(),
        't1': f'{tag}/t1'.encode(),
        'gone': f'{tag}/gone'.encode(),
        'doc1': json_bytes({'kind': 'isolation', 'owner': tag, 'key': 'doc1'}),
        'doc2': json_bytes({'kind': 'isolation', 'owner': tag, 'key': 'doc2'}),
    }
    for key in deleted:
        values[key] = b''
    return values


def test_tenants_and_app_ids_see_only_their_own_state(apps, clients):
    labels = [label for label, _ in apps]
    first, second, third, fourth = labels
    for label in labels:
        write_everything(clients[label], label)

    # Deletes by one App ID, through a transaction and directly, touch only its own keys.
    clients[first].execute_state_transaction(
        'kvstore', [TransactionalStateOperation('gone', operation_type=TransactionOperationType.delete)]
    )
    clients[fourth].delete_state('kvstore', 'b2')
    deleted = {first: ('gone',), fourth: ('b2',)}

    for label, app in apps:
        client = clients[label]
        expected = expected_values(label, deleted.get(label, ()))

        assert client.get_metadata().application_id == app.name

        single = {key: client.get_state('kvstore', key).data for key in KEYS}
        assert single == expected, f'{label} read another tenant\'s data with get_state'

        bulk = {item.key: item.data for item in client.get_bulk_state('kvstore', list(KEYS)).items}
        assert bulk == expected, f'{label} read another tenant\'s data with get_bulk_state'

        response = client.query_state('kvstore', json.dumps({'filter': {'EQ': {'kind': 'isolation'}}}))
        found = {item.key: json.loads(item.value)['owner'] for item in response.results}
        assert found == {'doc1': label, 'doc2': label}, f'{label} queried {found}'

        # Without a filter, a query still covers only the caller's own keys.
        everything = client.query_state('kvstore', json.dumps({}))
        keys = [item.key for item in everything.results]
        assert len(keys) == len(set(keys)), f'{label}: a query without filter returned {keys}'
        assert {'doc1', 'doc2'} <= set(keys) <= {key for key, value in expected.items() if value}, \
            f'{label}: a query without filter returned {keys}'
        for item in everything.results:
            if item.key.startswith('doc'):
                assert json.loads(item.value)['owner'] == label, (label, item.key, item.value)

def test_etags_and_query_tokens_do_not_cross_tenants(apps, clients):
    (first_label, _), (second_label, _), (third_label, _), _ = apps
    first, second, third = clients[first_label], clients[second_label], clients[third_label]
    for label in (first_label, second_label, third_label):
        for index in range(3):
            clients[label].save_state('kvstore', f'doc{index}', json_bytes({'kind': 'paged', 'owner': label}))
    # Same key name, another tenant's etag: the other tenant's record has its own etag.
    foreign_etag = first.get_state('kvstore', 'doc0').etag
    for client in (second, third):
        with pytest.raises(DaprGrpcError) as raised:
            client.save_state('kvstore', 'doc0', 'overwritten', etag=foreign_etag)
        assert raised.value.code() == grpc.StatusCode.ABORTED, describe(raised.value)
        assert json.loads(client.get_state('kvstore', 'doc0').data)['kind'] == 'paged'
    assert json.loads(first.get_state('kvstore', 'doc0').data)['owner'] == first_label

    # A paging token obtained by one tenant, replayed by others, yields only the others' own data.
    query = {'filter': {'EQ': {'kind': 'paged'}}, 'sort': [{'key': 'owner'}], 'page': {'limit': 1}}
    page = first.query_state('kvstore', json.dumps(query))
    assert [json.loads(item.value)['owner'] for item in page.results] == [first_label]
    assert page.token, 'a page that stopped at its limit carries a token'
    replay = dict(query, page={'limit': 10, 'token': page.token})
    for label, client in ((second_label, second), (third_label, third)):
        owners = {json.loads(item.value)['owner'] for item in client.query_state('kvstore', json.dumps(replay)).results}
        assert owners <= {label}, f'{label} replayed a foreign paging token and got {owners}'


def test_a_component_of_the_same_name_in_two_projects_is_two_stores(tenants):
    """Each project's `sqlstore` is its own file; in one store, each App ID sees only its own keys."""
    projects = [tenants.project(apps=APP_NAMES) for _ in range(2)]
    for project in projects:
        tenants.sqlite_component(project, 'sqlstore')
    with ExitStack() as stack:
        clients = {
            f'{project.name}/{name}': stack.enter_context(dapr_client(project.apps[name]))
            for project in projects
            for name in APP_NAMES
        }
        for label, client in clients.items():
            wait_for_component(client, 'sqlstore')
            client.save_state('sqlstore', 'x', label)
            client.save_state('sqlstore', 'doc', json_bytes({'kind': 'sql', 'owner': label}))
        for label, client in clients.items():
            assert client.get_state('sqlstore', 'x').data == label.encode()
            items = {item.key: item.data for item in client.get_bulk_state('sqlstore', ['x', 'doc']).items}
            assert items == {'x': label.encode(), 'doc': json_bytes({'kind': 'sql', 'owner': label})}
            response = client.query_state('sqlstore', json.dumps({'filter': {'EQ': {'kind': 'sql'}}}))
            found = [(item.key, json.loads(item.value)['owner']) for item in response.results]
            assert found == [('doc', label)], f'{label} queried {found}'

"""The state query API (alpha1) through the Python SDK, on the managed kvstore and on a state.sqlite
component that the operator adds to the project."""

import json

import pytest

from support import dapr_client, json_bytes, wait_for_component

pytestmark = pytest.mark.filterwarnings('ignore:The State Store Query API is an Alpha version')

# The shape of the documentation's example (docs.dapr.io, "How-To: Query state").
PEOPLE = {
    'k1': {'person': {'org': 'Dev Ops', 'id': 1036}, 'city': 'Seattle', 'state': 'WA'},
    'k2': {'person': {'org': 'Hardware', 'id': 1028}, 'city': 'Portland', 'state': 'OR'},
    'k3': {'person': {'org': 'Finance', 'id': 1071}, 'city': 'Sacramento', 'state': 'CA'},
    'k4': {'person': {'org': 'Dev Ops', 'id': 1042}, 'city': 'Spokane', 'state': 'WA'},
    'k5': {'person': {'org': 'Hardware', 'id': 1007}, 'city': 'San Francisco', 'state': 'CA'},
    'k6': {'person': {'org': 'Finance', 'id': 1094}, 'city': 'Eugene', 'state': 'OR'},
    'k7': {'person': {'org': 'Dev Ops', 'id': 1015}, 'city': 'San Diego', 'state': 'CA'},
    'k8': {'person': {'org': 'Developers', 'id': 1052}, 'city': 'Redmond', 'state': 'WA'},
}

# All eight, by state ascending and then person.id descending.
BY_STATE_THEN_ID_DESC = ['k3', 'k7', 'k5', 'k6', 'k2', 'k8', 'k4', 'k1']

FILTERS = {
    'EQ': ({'EQ': {'state': 'CA'}}, {'k3', 'k5', 'k7'}),
    'EQ nested field': ({'EQ': {'person.org': 'Finance'}}, {'k3', 'k6'}),
    'IN': ({'IN': {'state': ['CA', 'OR']}}, {'k2', 'k3', 'k5', 'k6', 'k7'}),
    'AND': ({'AND': [{'EQ': {'person.org': 'Dev Ops'}}, {'EQ': {'state': 'WA'}}]}, {'k1', 'k4'}),
    'OR': ({'OR': [{'EQ': {'person.org': 'Finance'}}, {'EQ': {'city': 'Redmond'}}]}, {'k3', 'k6', 'k8'}),
    'AND of IN and OR': (
        {
            'AND': [
                {'IN': {'state': ['CA', 'WA']}},
                {'OR': [{'EQ': {'person.org': 'Dev Ops'}}, {'EQ': {'person.org': 'Hardware'}}]},
            ]
        },
        {'k1', 'k4', 'k5', 'k7'},
    ),
    'no match': ({'EQ': {'state': 'NY'}}, set()),
}


@pytest.fixture(params=['kvstore', 'sqlite'])
def store(request, tenants, project, app):
    """The name of a store of the project, filled with PEOPLE by the app `orders`."""
    name = request.param
    with dapr_client(app) as client:
        if name == 'sqlite':
            name = 'sqlstore'
            tenants.sqlite_component(project, name)
            wait_for_component(client, name)
        for key, value in PEOPLE.items():
            client.save_state(name, key, json_bytes(value))
    return name


@pytest.fixture
def client(app):
    with dapr_client(app) as client:
        yield client


def query(client, store, **query):
    return client.query_state(store, json.dumps(query))


def check_items(response):
    """The results as key -> value, each checked against what was saved."""
    found = {}
    for item in response.results:
        assert item.key in PEOPLE, f'unexpected key {item.key!r} (keys come back without the App ID prefix)'
        assert item.key not in found, f'{item.key} returned twice'
        assert item.error == '', item.error
        assert item.etag, f'no etag for {item.key}'
        assert json.loads(item.value) == PEOPLE[item.key], item.value
        found[item.key] = item
    return found


@pytest.mark.parametrize('case', list(FILTERS))
def test_filter(client, store, case):
    query_filter, expected = FILTERS[case]
    response = query(client, store, filter=query_filter)
    assert set(check_items(response)) == expected


def test_etags_of_results_are_the_state_etags(client, store):
    response = query(client, store, filter={'EQ': {'state': 'OR'}})
    for key, item in check_items(response).items():
        assert item.etag == client.get_state(store, key).etag


def test_sort_descending(client, store):
    response = query(client, store, filter={'EQ': {'state': 'WA'}}, sort=[{'key': 'person.id', 'order': 'DESC'}])
    check_items(response)
    assert [item.key for item in response.results] == ['k8', 'k4', 'k1']


def test_sort_on_two_keys_without_filter(client, store):
    response = query(
        client, store, sort=[{'key': 'state'}, {'key': 'person.id', 'order': 'DESC'}]
    )
    check_items(response)
    assert [item.key for item in response.results] == BY_STATE_THEN_ID_DESC


def test_paging_with_token(client, store):
    sort = [{'key': 'state', 'order': 'ASC'}, {'key': 'person.id', 'order': 'DESC'}]
    limit = 3
    pages = []
    token = None
    for _ in range(len(PEOPLE) // limit + 2):
        page = {'limit': limit} if token is None else {'limit': limit, 'token': token}
        response = query(client, store, sort=sort, page=page)
        check_items(response)
        keys = [item.key for item in response.results]
        assert len(keys) <= limit, keys
        if not keys:
            break
        pages.append(keys)
        token = response.token
        if not token:
            break
    else:
        pytest.fail(f'paging did not end: {pages}')
    assert pages[:2] == [BY_STATE_THEN_ID_DESC[:3], BY_STATE_THEN_ID_DESC[3:6]], pages
    assert [key for page in pages for key in page] == BY_STATE_THEN_ID_DESC, pages


def test_paging_with_a_filter(client, store):
    query_filter = {'IN': {'state': ['CA', 'WA']}}
    sort = [{'key': 'person.id'}]
    first = query(client, store, filter=query_filter, sort=sort, page={'limit': 4})
    check_items(first)
    assert [item.key for item in first.results] == ['k5', 'k7', 'k1', 'k4']
    assert first.token, 'a page that stopped at the limit carries a token'
    second = query(client, store, filter=query_filter, sort=sort, page={'limit': 4, 'token': first.token})
    check_items(second)
    assert [item.key for item in second.results] == ['k8', 'k3']


def test_query_sees_updates_and_deletes(client, store):
    client.save_state(store, 'k9', json_bytes({'person': {'org': 'Finance', 'id': 1100}, 'city': 'Fresno',
                                                'state': 'CA'}))
    client.delete_state(store, 'k3')
    changed = dict(PEOPLE['k5'], state='NV')
    client.save_state(store, 'k5', json_bytes(changed))
    response = query(client, store, filter={'EQ': {'state': 'CA'}}, sort=[{'key': 'person.id'}])
    assert [item.key for item in response.results] == ['k7', 'k9']

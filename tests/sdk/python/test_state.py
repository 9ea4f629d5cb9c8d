"""The state API through the Python SDK (gRPC), on the managed `kvstore` of a fresh project."""

import random
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
from dapr.clients.exceptions import DaprGrpcError
from dapr.clients.grpc._request import TransactionalStateOperation, TransactionOperationType
from dapr.clients.grpc._state import Concurrency, StateItem, StateOptions

from support import dapr_client, describe, error_info

STORE = 'kvstore'
FIRST_WRITE = StateOptions(concurrency=Concurrency.first_write)


@pytest.fixture
def client(app):
    with dapr_client(app) as client:
        yield client


def assert_grpc_error(raised, code: grpc.StatusCode):
    error = raised.value
    assert error.code() == code, describe(error)


def test_save_and_get_round_trip_bytes_and_str(client):
    binary = bytes(range(256)) + b'\x00tail'
    client.save_state(STORE, 'binary', binary)
    client.save_state(STORE, 'text', 'grüße, 世界 ✓')

    assert client.get_state(STORE, 'binary').data == binary
    assert client.get_state(STORE, 'text').data == 'grüße, 世界 ✓'.encode()
    assert client.get_state(STORE, 'text').text() == 'grüße, 世界 ✓'

    # Overwrite without an etag: last write wins.
    client.save_state(STORE, 'text', 'second')
    assert client.get_state(STORE, 'text').data == b'second'


def test_get_of_a_missing_key_is_empty(client):
    missing = client.get_state(STORE, 'never-saved')
    assert missing.data == b''
    assert missing.etag == ''


def test_etag_is_returned_and_a_stale_one_is_aborted(client):
    client.save_state(STORE, 'k', 'v1')
    first = client.get_state(STORE, 'k')
    assert first.etag, 'get_state returned no etag'

    client.save_state(STORE, 'k', 'v2', etag=first.etag)
    second = client.get_state(STORE, 'k')
    assert second.data == b'v2'
    assert second.etag and second.etag != first.etag, (first.etag, second.etag)

    with pytest.raises(DaprGrpcError) as raised:
        client.save_state(STORE, 'k', 'v3-stale', etag=first.etag)
    assert_grpc_error(raised, grpc.StatusCode.ABORTED)
    assert client.get_state(STORE, 'k').data == b'v2'

    # An etag on a key that does not exist is stale too.
    with pytest.raises(DaprGrpcError) as raised:
        client.save_state(STORE, 'no-such-key', 'x', etag=first.etag)
    assert_grpc_error(raised, grpc.StatusCode.ABORTED)
    assert client.get_state(STORE, 'no-such-key').data == b''


def test_first_write_refuses_a_second_save_without_etag(client):
    client.save_state(STORE, 'fw', 'first', options=FIRST_WRITE)
    stored = client.get_state(STORE, 'fw')
    assert stored.data == b'first'

    with pytest.raises(DaprGrpcError) as raised:
        client.save_state(STORE, 'fw', 'second', options=FIRST_WRITE)
    assert_grpc_error(raised, grpc.StatusCode.ABORTED)
    assert client.get_state(STORE, 'fw').data == b'first'

    # With the current etag the write is the first one on that version, and goes through.
    client.save_state(STORE, 'fw', 'third', etag=stored.etag, options=FIRST_WRITE)
    assert client.get_state(STORE, 'fw').data == b'third'


def test_delete_with_etag(client):
    client.save_state(STORE, 'd', 'v1')
    old = client.get_state(STORE, 'd').etag
    client.save_state(STORE, 'd', 'v2')
    current = client.get_state(STORE, 'd').etag

    with pytest.raises(DaprGrpcError) as raised:
        client.delete_state(STORE, 'd', etag=old)
    assert_grpc_error(raised, grpc.StatusCode.ABORTED)
    assert client.get_state(STORE, 'd').data == b'v2'

    client.delete_state(STORE, 'd', etag=current)
    gone = client.get_state(STORE, 'd')
    assert (gone.data, gone.etag) == (b'', '')

    # Deleting a key that is not there (without etag) is not an error.
    client.delete_state(STORE, 'd')
    client.delete_state(STORE, 'never-there')


def test_save_bulk_and_get_bulk_with_a_missing_key(client):
    client.save_bulk_state(
        STORE,
        [StateItem('a', 'alpha'), StateItem('b', b'\x00beta'), StateItem('c', '{"n":3}')],
    )
    response = client.get_bulk_state(STORE, ['a', 'b', 'missing', 'c'], parallelism=2)
    items = {item.key: item for item in response.items}
    assert sorted(items) == ['a', 'b', 'c', 'missing'], [item.key for item in response.items]
    assert items['a'].data == b'alpha'
    assert items['b'].data == b'\x00beta'
    assert items['c'].data == b'{"n":3}'
    for key in 'abc':
        assert items[key].etag, f'no etag for {key}'
        assert items[key].error == '', items[key].error
        assert items[key].etag == client.get_state(STORE, key).etag
    assert items['missing'].data == b''
    assert items['missing'].etag == ''
    assert items['missing'].error == ''


def test_save_bulk_with_a_stale_etag_is_aborted(client):
    client.save_state(STORE, 'x', 'x1')
    stale = client.get_state(STORE, 'x').etag
    client.save_state(STORE, 'x', 'x2')
    with pytest.raises(DaprGrpcError) as raised:
        client.save_bulk_state(STORE, [StateItem('x', 'x3', etag=stale)])
    assert_grpc_error(raised, grpc.StatusCode.ABORTED)
    assert client.get_state(STORE, 'x').data == b'x2'


def test_transaction_applies_upserts_and_deletes_in_order(client):
    client.save_state(STORE, 'old', 'to be deleted')
    client.save_state(STORE, 'kept', 'untouched')
    upsert, delete = TransactionOperationType.upsert, TransactionOperationType.delete
    client.execute_state_transaction(
        STORE,
        [
            TransactionalStateOperation('t1', 'one', operation_type=upsert),
            TransactionalStateOperation('t2', 'two', operation_type=upsert),
            TransactionalStateOperation('t1', operation_type=delete),
            TransactionalStateOperation('t3', 'three', operation_type=upsert),
            TransactionalStateOperation('t2', 'two again', operation_type=upsert),
            TransactionalStateOperation('old', operation_type=delete),
            TransactionalStateOperation('t4', 'gone', operation_type=upsert),
            TransactionalStateOperation('t4', operation_type=delete),
            TransactionalStateOperation('t4', 'back', operation_type=upsert),
        ],
    )
    values = {key: client.get_state(STORE, key).data for key in ('t1', 't2', 't3', 't4', 'old', 'kept')}
    assert values == {
        't1': b'',
        't2': b'two again',
        't3': b'three',
        't4': b'back',
        'old': b'',
        'kept': b'untouched',
    }


def test_transaction_with_a_stale_etag_changes_nothing(client):
    client.save_state(STORE, 'guarded', 'g1')
    stale = client.get_state(STORE, 'guarded').etag
    client.save_state(STORE, 'guarded', 'g2')
    upsert = TransactionOperationType.upsert
    with pytest.raises(DaprGrpcError) as raised:
        client.execute_state_transaction(
            STORE,
            [
                TransactionalStateOperation('fresh', 'written first', operation_type=upsert),
                TransactionalStateOperation('guarded', 'g3', etag=stale, operation_type=upsert),
            ],
        )
    # daprd answers a failed transaction with INTERNAL (ERR_STATE_TRANSACTION) whatever the cause;
    # ABORTED, as for a stale etag elsewhere, says more and is accepted too.
    assert raised.value.code() in (grpc.StatusCode.INTERNAL, grpc.StatusCode.ABORTED), describe(raised.value)
    assert client.get_state(STORE, 'fresh').data == b'', 'a failed transaction left a write behind'
    assert client.get_state(STORE, 'guarded').data == b'g2'


def test_ttl_in_seconds_expires_the_value(client):
    ttl = {'ttlInSeconds': '2'}
    saved_at = time.monotonic()
    client.save_state(STORE, 'short-lived', 'soon gone', state_metadata=ttl)
    client.save_bulk_state(STORE, [StateItem('bulk-short', 'soon gone', metadata=ttl), StateItem('bulk-long', 'stays')])
    client.execute_state_transaction(
        STORE, [TransactionalStateOperation('tx-short', 'soon gone', metadata=ttl)]
    )
    client.save_state(STORE, 'long-lived', 'stays')
    short = ['short-lived', 'bulk-short', 'tx-short']
    for key in short:
        assert client.get_state(STORE, key).data == b'soon gone', key

    deadline = saved_at + 3.0
    gone_after = {}
    while len(gone_after) < len(short):
        for key in short:
            if key not in gone_after and client.get_state(STORE, key).data == b'':
                gone_after[key] = time.monotonic() - saved_at
        now = time.monotonic()
        remaining = [key for key in short if key not in gone_after]
        assert not remaining or now < deadline, f'{remaining} (2 s TTL) still there 3 s after they were saved'
        if remaining:
            time.sleep(0.1)
    for key, seconds in gone_after.items():
        assert seconds >= 1.0, f'{key}: a 2 s TTL expired after {seconds:.2f} s'
    assert client.get_state(STORE, 'long-lived').data == b'stays'
    assert client.get_state(STORE, 'bulk-long').data == b'stays'


def test_concurrent_first_writes_have_one_winner(client):
    attempts = 12

    def attempt(index):
        try:
            client.save_state(STORE, 'contended', f'writer {index}', options=FIRST_WRITE)
            return index
        except DaprGrpcError as error:
            assert error.code() == grpc.StatusCode.ABORTED, describe(error)
            return None

    with ThreadPoolExecutor(max_workers=attempts) as pool:
        winners = [index for index in pool.map(attempt, range(attempts)) if index is not None]
    assert len(winners) == 1, f'{len(winners)} first writes of one key succeeded: {winners}'
    assert client.get_state(STORE, 'contended').data == f'writer {winners[0]}'.encode()


def test_concurrent_etag_increments_lose_no_update(client):
    """Optimistic concurrency: increments that re-read and retry on ABORTED add up exactly."""
    client.save_state(STORE, 'counter', '0')
    writers, increments = 4, 8
    deadline = time.monotonic() + 60

    def increment_many(_):
        for _ in range(increments):
            while True:
                assert time.monotonic() < deadline, 'increments did not finish within 60 s'
                current = client.get_state(STORE, 'counter')
                try:
                    client.save_state(STORE, 'counter', str(int(current.data) + 1), etag=current.etag)
                    break
                except DaprGrpcError as error:
                    assert error.code() == grpc.StatusCode.ABORTED, describe(error)

    with ThreadPoolExecutor(max_workers=writers) as pool:
        list(pool.map(increment_many, range(writers)))
    assert client.get_state(STORE, 'counter').data == str(writers * increments).encode()


UNKNOWN_STORE_CALLS = {
    'get_state': lambda c: c.get_state('no-such-store', 'k'),
    'save_state': lambda c: c.save_state('no-such-store', 'k', 'v'),
    'delete_state': lambda c: c.delete_state('no-such-store', 'k'),
    'get_bulk_state': lambda c: c.get_bulk_state('no-such-store', ['k']),
    'save_bulk_state': lambda c: c.save_bulk_state('no-such-store', [StateItem('k', 'v')]),
    'execute_state_transaction': lambda c: c.execute_state_transaction(
        'no-such-store', [TransactionalStateOperation('k', 'v')]
    ),
    'query_state': lambda c: c.query_state('no-such-store', '{"filter":{"EQ":{"a":"b"}}}'),
}


@pytest.mark.filterwarnings('ignore:The State Store Query API is an Alpha version')
@pytest.mark.parametrize('call', list(UNKNOWN_STORE_CALLS))
def test_unknown_store_is_invalid_argument_naming_the_store(client, call):
    with pytest.raises(DaprGrpcError) as raised:
        UNKNOWN_STORE_CALLS[call](client)
    error = raised.value
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, describe(error)
    assert 'no-such-store' in (error.details() or ''), describe(error)
    info = error_info(error)
    assert error.error_code() == 'DAPR_STATE_NOT_FOUND', describe(error)
    assert info.get('metadata', {}).get('errorCode') == 'ERR_STATE_STORE_NOT_FOUND', describe(error)


def test_keys_with_slashes_spaces_and_unicode(client):
    keys = ['a/b c', 'ünïcødé', 'dots.and-dashes_', 'question?hash#percent%']
    for index, key in enumerate(keys):
        client.save_state(STORE, key, f'value {index}')
    for index, key in enumerate(keys):
        assert client.get_state(STORE, key).data == f'value {index}'.encode(), key
    items = {item.key: item.data for item in client.get_bulk_state(STORE, keys).items}
    assert items == {key: f'value {index}'.encode() for index, key in enumerate(keys)}


def test_a_key_with_the_prefix_separator_is_refused(client):
    # daprd refuses '||' in keys: it separates the App ID prefix from the key.
    with pytest.raises(DaprGrpcError) as raised:
        client.save_state(STORE, 'other-app||key', 'v')
    assert_grpc_error(raised, grpc.StatusCode.INVALID_ARGUMENT)


def test_a_3_mib_value_round_trips(client):
    # daprd takes gRPC messages up to 4 MiB by default; so does Outrigger's gateway
    # (max_body_bytes). A value of 3 MiB fits with room to spare.
    value = random.Random(7).randbytes(3 * 1024 * 1024)
    client.save_state(STORE, 'big', value)
    assert client.get_state(STORE, 'big').data == value
    [item] = client.get_bulk_state(STORE, ['big']).items
    assert item.data == value


def test_a_bulk_answer_over_1_mib_arrives(client):
    # Each value is well under any limit; only the answer to the bulk get is larger than 1 MiB.
    values = {key: random.Random(key).randbytes(700 * 1024) for key in ('left', 'right')}
    for key, value in values.items():
        client.save_state(STORE, key, value)
    started = time.monotonic()
    items = client.get_bulk_state(STORE, list(values)).items
    assert {item.key: item.data for item in items} == values
    assert time.monotonic() - started < 5, 'the bulk get took more than 5 s'

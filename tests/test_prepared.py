"""PostgreSQL runs the hot queries as server-side prepared statements (store.Prepared):
planned once per connection, not at every request, with the same answers."""

import threading
import urllib.parse

import pytest

import store
from conftest import ON_POSTGRESQL, ScimClient

on_postgresql = pytest.mark.skipif(not ON_POSTGRESQL, reason='PostgreSQL: set SCIMLITE_TEST_DATABASE_URL')


def prepared_here():
    """{name: statement} of the server-side statements this thread's connection holds."""
    return dict(store.database.execute_sql('SELECT name, statement FROM pg_prepared_statements').fetchall())


def lookup(client, user_name):
    query = urllib.parse.urlencode({'filter': f'userName eq "{user_name}"', 'startIndex': 1, 'count': 100})
    return client.get(f'/Users?{query}', status=200).json


def test_the_numbered_parameters_are_what_psycopg2_would_have_sent():
    assert store._numbered_parameters("a = %s AND b LIKE 'x%%y' AND c IN (%s, %s)") == (
        "a = $1 AND b LIKE 'x%y' AND c IN ($2, $3)")
    assert store._numbered_parameters('SELECT 1') == 'SELECT 1'
    assert store._numbered_parameters('a = %(name)s') is None


@on_postgresql
def test_a_lookup_is_prepared_on_its_second_run_and_answers_the_same(client):
    """Okta's lookup and a GET by id: the first run plain, then PREPAREd on this
    connection and EXECUTEd, every answer the same as the plain statement's."""
    ann = client.create_user('ann@example.com', displayName='Ann')
    group = client.create_group('Readers', [ann['id']])
    first = lookup(client, 'ANN@example.com')
    statement = store._PreparedPage.of(store.User, store.User.user_name_key).page
    name = statement.server_side[0]
    assert name not in prepared_here() or statement.calls >= store.PREPARE_AFTER_CALLS
    second, third = lookup(client, 'ann@example.com'), lookup(client, 'Ann@Example.com')
    assert name in prepared_here() and '$1' in prepared_here()[name]
    assert first == second == third and first['totalResults'] == 1
    assert first['Resources'][0]['groups'][0]['value'] == group['id']
    assert lookup(client, 'nobody@example.com')['totalResults'] == 0
    by_id = [client.get(f'/Users/{ann["id"]}', status=200).json for _ in range(3)]
    assert by_id[0] == by_id[1] == by_id[2] and by_id[0]['groups'][0]['display'] == 'Readers'
    assert store.USER_WITH_GROUPS.server_side[0] in prepared_here()


@on_postgresql
def test_a_statement_postgresql_will_not_prepare_runs_plain_and_its_transaction_goes_on(app):
    """`%s + %s` of unknown types: PREPARE refuses it. The refusal is undone in a
    savepoint, the statement runs as before, and the caller's transaction commits."""
    odd = store.Prepared(lambda: store.User.select(store.SQL('%s + %s', [store._SlotName('a'), store._SlotName('b')])))
    with store.database.atomic():
        store.database.execute_sql("CREATE TEMPORARY TABLE kept (n INTEGER)")
        answers = [odd.rows(a=2, b=3) for _ in range(3)]
        store.database.execute_sql('INSERT INTO kept VALUES (1)')
    assert answers == [[], [], []]   # no users: no rows, and no error
    assert odd.server_side[0] in store._unpreparable and odd.server_side[0] not in prepared_here()
    assert store.database.execute_sql('SELECT n FROM kept').fetchall() == [(1,)]


@on_postgresql
def test_each_connection_prepares_for_itself(app, make_app):
    """A statement prepared on one connection is prepared again on another (a thread's
    own, or the one a reopened app takes), never EXECUTEd where it does not exist."""
    client = ScimClient(app)
    ann = client.create_user('ann@example.com')
    for _ in range(3):
        client.get(f'/Users/{ann["id"]}', status=200)
    name = store.USER_WITH_GROUPS.server_side[0]
    answers, errors = [], []

    def other_thread():
        try:
            answers.extend(store.get_user(ann['id'])['id'] for _ in range(3))
            answers.append(name in prepared_here())
        except Exception as error:   # reported below
            errors.append(error)
        finally:
            store.database.close()
    thread = threading.Thread(target=other_thread)
    thread.start()
    thread.join(30)
    assert not errors and answers == [ann['id']] * 3 + [True]
    client = ScimClient(make_app())   # a new app: new connections, nothing prepared on them
    assert [client.get(f'/Users/{ann["id"]}', status=200).json['id'] for _ in range(3)] == [ann['id']] * 3

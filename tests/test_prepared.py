"""PostgreSQL runs the key lookups (a user or group by id, a page by a unique value)
as server-side prepared statements (store._ServerSide): planned once a connection,
not at every request, with the same answers, and prepared anew when their plan is
PLAN_SECONDS old, so that a plan made while a table was small does not outlive its
growth."""

import threading
import time
import urllib.parse

import pytest

import store
from conftest import ON_POSTGRESQL, ScimClient

pytestmark = pytest.mark.skipif(not ON_POSTGRESQL, reason='PostgreSQL: set SCIMLITE_TEST_DATABASE_URL')


def prepared_on(connection):
    """{name: (statement, prepare_time)} of the server-side statements `connection` holds."""
    with connection.cursor() as cursor:
        cursor.execute('SELECT name, statement, prepare_time FROM pg_prepared_statements')
        return {name: (statement, made) for name, statement, made in cursor.fetchall()}


def lookup(client, user_name):
    query = urllib.parse.urlencode({'filter': f'userName eq "{user_name}"', 'startIndex': 1, 'count': 100})
    return client.get(f'/Users?{query}', status=200).json


def plan(connection, name, *values):
    with connection.cursor() as cursor:
        cursor.execute(f'EXPLAIN EXECUTE {name}({", ".join(["%s"] * len(values))})', values)
        return '\n'.join(row[0] for row in cursor.fetchall())


def test_lookups_and_reads_by_id_answer_the_same_prepared(client):
    """Okta's lookup, GET /Users/{id} and GET /Groups/{id}, many times over: every
    answer the same as the first, which PREPAREd the statement it ran."""
    ann = client.create_user('ann@example.com', displayName='Ann')
    group = client.create_group('Readers', [ann['id']])
    lookups = [lookup(client, name) for name in ('ANN@example.com', 'ann@example.com', 'Ann@Example.com') * 3]
    assert all(answer == lookups[0] for answer in lookups) and lookups[0]['totalResults'] == 1
    assert [(one['value'], one['display']) for one in lookups[0]['Resources'][0]['groups']] == [
        (group['id'], 'Readers')]
    assert lookup(client, 'nobody@example.com')['totalResults'] == 0
    users = [client.get(f'/Users/{ann["id"]}', status=200).json for _ in range(8)]
    assert all(user == users[0] for user in users) and users[0]['groups'][0]['display'] == 'Readers'
    groups = [client.get(f'/Groups/{group["id"]}', status=200).json for _ in range(8)]
    assert all(one == groups[0] for one in groups) and groups[0]['members'][0]['value'] == ann['id']
    client.get('/Users/no-such-id', status=404)
    statements = prepared_on(store.database.connection())
    assert {store.USER_WITH_GROUPS.server_side.name, store.GROUP_BY_ID.server_side.name} <= set(statements)
    assert '$1' in statements[store.USER_WITH_GROUPS.server_side.name][0]


def test_a_plan_made_while_link_was_small_is_made_anew_once_plan_seconds_have_passed(app, monkeypatch):
    """A generic plan made with a handful of link rows scans link whole; once the
    table has grown it scans it still, until the statement is prepared again:
    PLAN_SECONDS after it was prepared, the next run prepares it anew, and its plan
    then reads link by the user's index."""
    monkeypatch.setattr(store, 'PLAN_SECONDS', 0.5)
    client = ScimClient(app)
    ann = client.create_user('ann@example.com')
    group = client.create_group('Readers', [ann['id']])
    store.database.connect(reuse_if_open=True)   # the test's own connection, kept throughout
    connection = store.database.connection()
    name = store.USER_WITH_GROUPS.server_side.name
    with connection.cursor() as cursor:   # as autovacuum would have, while the tables are small
        cursor.execute('ALTER TABLE link SET (autovacuum_enabled = false)')   # and no ANALYZE after
        cursor.execute('ANALYZE users, link, groups')
    for _ in range(8):   # PostgreSQL makes its generic plan after five runs
        assert store.get_user(ann['id'])['id'] == ann['id']
    first_plan = plan(connection, name, ann['id'], 0)
    assert 'Seq Scan on link' in first_plan, first_plan
    made = prepared_on(connection)[name][1]
    with connection.cursor() as cursor:   # 30,000 link rows of 300 users in 100 groups
        cursor.execute("INSERT INTO users (id, user_name, user_name_key, resource, created, last_modified, seat) "
                       "SELECT 'u' || n, 'u' || n, 'u' || n, '{}', '2026', '2026', 0 FROM generate_series(1, 300) n")
        cursor.execute("INSERT INTO groups (id, display_name, display_name_key, resource, created, last_modified, "
                       "seat) SELECT 'g' || n, 'g' || n, 'g' || n, '{}', '2026', '2026', 0 "
                       "FROM generate_series(1, 100) n")
        cursor.execute("INSERT INTO link (group_id, user_id) SELECT 'g' || g, 'u' || u "
                       "FROM generate_series(1, 100) g, generate_series(1, 300) u")
    assert 'Seq Scan on link' in plan(connection, name, ann['id'], 0), 'the old plan, within PLAN_SECONDS'
    time.sleep(0.6)
    for _ in range(8):
        assert store.get_user(ann['id'])['links'] == [(group['id'], 'Readers')]
    assert prepared_on(connection)[name][1] > made
    now_planned = plan(connection, name, ann['id'], 0)
    assert 'Seq Scan on link' not in now_planned and 'link_user_id' in now_planned, now_planned
    assert store.get_user('u7')['links'] and len(store.get_user('u7')['links']) == 100


def test_a_statement_postgresql_will_not_prepare_runs_plain_and_its_transaction_goes_on(app):
    """`%s + %s` of unknown types: PREPARE refuses it. Outside a transaction the
    statement then runs as it would have; inside one, the refusal is undone in a
    savepoint, the statement runs plain, and the transaction commits what it wrote."""
    def odd():
        return store.Prepared(lambda: store.User.select(store.SQL('%s + %s', [
            store._SlotName('a'), store._SlotName('b')])).limit(1), server_side=True)
    ann = ScimClient(app).create_user('ann@example.com')
    store.database.connect(reuse_if_open=True)
    outside = odd()
    assert [outside.rows(a=2, b=3) for _ in range(3)] == [[(5,)]] * 3
    assert outside.server_side.refused and outside.server_side.name not in prepared_on(store.database.connection())
    inside = odd()
    with store.database.atomic():
        store.database.execute_sql('CREATE TEMPORARY TABLE kept (n INTEGER)')
        answers = [inside.rows(a=2, b=3) for _ in range(3)]
        store.database.execute_sql('INSERT INTO kept VALUES (1)')
        assert store.get_user(ann['id'])['id'] == ann['id']   # prepared in the same transaction
    assert answers == [[(5,)]] * 3 and inside.server_side.refused
    assert store.database.execute_sql('SELECT n FROM kept').fetchall() == [(1,)]
    assert store.USER_WITH_GROUPS.server_side.name in prepared_on(store.database.connection())


def test_a_member_change_runs_prepared_statements_in_its_transaction(client):
    """Okta's member PATCH (one out, one in): the group's lock, the link rows and the
    group's update are PREPAREd inside the write's transaction, and the group reads
    back as written, every time."""
    users = [client.create_user(f'user{n}@example.com')['id'] for n in range(6)]
    group = client.create_group('Readers', users[:3])
    for out, into in zip(users[:3], users[3:], strict=True):
        client.patch(f'/Groups/{group["id"]}', [
            {'op': 'remove', 'path': f'members[value eq "{out}"]'},
            {'op': 'add', 'path': 'members', 'value': [{'value': into}]}], status=204)
    assert sorted(member['value'] for member in client.get(f'/Groups/{group["id"]}').json['members']) == sorted(
        users[3:])
    before = client.get(f'/Groups/{group["id"]}').json
    client.patch(f'/Groups/{group["id"]}', [{'op': 'add', 'path': 'members', 'value': [{'value': 'nobody'}]}],
                 status=400)
    assert client.get(f'/Groups/{group["id"]}').json == before   # refused whole, prepared or not
    names = set(prepared_on(store.database.connection()))
    assert {store.GROUP_LOCKED_BY_ID.server_side.name, store.LINK_REMOVE_ONE.server_side.name,
            store.LINK_ADD_ONE.server_side.name} <= names, names


def test_each_connection_prepares_for_itself(app, make_app):
    """A statement prepared on one connection is prepared again on another (a thread's
    own, or the one a reopened app takes), never EXECUTEd where it does not exist."""
    client = ScimClient(app)
    ann = client.create_user('ann@example.com')
    for _ in range(3):
        client.get(f'/Users/{ann["id"]}', status=200)
    name = store.USER_WITH_GROUPS.server_side.name
    answers, errors = [], []

    def other_thread():
        try:
            answers.extend(store.get_user(ann['id'])['id'] for _ in range(3))
            answers.append(name in prepared_on(store.database.connection()))
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

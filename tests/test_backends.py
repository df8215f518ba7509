"""What a client sees does not depend on the database: these run on SQLite and, in
the PostgreSQL pass, on PostgreSQL (a database with a language's collation where the
server has ICU), and hold both to the same answers."""

import secrets
import sqlite3
import threading
import time
from urllib.parse import quote, urlsplit

import pytest

import store
from conftest import (GROUP_SCHEMA, ON_POSTGRESQL, TOKEN, USER_SCHEMA, assert_scim_error,
                      empty_postgresql_database, postgresql)
from serverprocess import ServerProcess, run_server

EXTENSION = 'urn:example:scimlite:1.0:User'


def found(client, text, resource='Users', extra=''):
    listing = client.get(f'/{resource}?filter={quote(text)}{extra}', status=200).json
    return sorted(item.get('userName') or item.get('displayName') for item in listing['Resources'])


def user(client, user_name, **attributes):
    body = {'schemas': [USER_SCHEMA] + ([EXTENSION] if EXTENSION in attributes else []),
            'userName': user_name, **attributes}
    return client.post('/Users', body, status=201).json


# ---------------------------------------------------------------------------
# JSON values are compared as the JSON type the filter names
# ---------------------------------------------------------------------------

@pytest.fixture
def typed(client):
    for user_name, value in [('string-100', '100'), ('string-3', '3'), ('number-12345', 12345), ('number-1', 1),
                             ('true', True), ('false', False), ('object', {'givenName': 'x'}),
                             ('empty-array-text', '[]'), ('empty-object-text', '{}'), ('empty-text', ''),
                             ('null', None), ('array', ['a'])]:
        user(client, user_name, **{EXTENSION: {'v': value}})
    user(client, 'missing')
    return client


@pytest.mark.parametrize('text, expected', [
    (f'{EXTENSION}:v gt 3', 'number-12345'),
    (f'{EXTENSION}:v le 3', 'number-1'),
    (f'{EXTENSION}:v eq 1', 'number-1'),
    (f'{EXTENSION}:v eq "3"', 'string-3'),
    (f'{EXTENSION}:v gt "2"', 'string-3 empty-array-text empty-object-text'),
    (f'{EXTENSION}:v eq true', 'true'),
    (f'{EXTENSION}:v eq false', 'false'),
    (f'{EXTENSION}:v ne true', 'array empty-array-text empty-object-text empty-text false missing null '
                               'number-1 number-12345 object string-100 string-3'),
    (f'{EXTENSION}:v co "t"', ''),
    (f'{EXTENSION}:v co "23"', ''),
    (f'{EXTENSION}:v co "givenName"', ''),
    (f'{EXTENSION}:v co "[]"', 'empty-array-text'),
    (f'{EXTENSION}:v eq null', 'missing null'),
    (f'{EXTENSION}:v ne null', 'array empty-array-text empty-object-text empty-text false number-1 number-12345 '
                               'object string-100 string-3 true'),
    (f'{EXTENSION}:v pr', 'array empty-array-text empty-object-text false number-1 number-12345 object '
                          'string-100 string-3 true'),
])
def test_json_values_compare_only_with_values_of_their_json_type(typed, text, expected):
    assert found(typed, text) == sorted(expected.split())


def test_sorting_by_a_json_attribute_puts_numbers_first_in_numeric_order(client):
    for user_name, value in [('ten', 10), ('two', 2), ('b-text', 'B'), ('a-text', 'a'), ('minus', -1.5)]:
        user(client, user_name, **{EXTENSION: {'rank': value}})
    user(client, 'none')
    for order, expected in [('ascending', ['minus', 'two', 'ten', 'a-text', 'b-text', 'none']),
                            ('descending', ['b-text', 'a-text', 'ten', 'two', 'minus', 'none'])]:
        listing = client.get(f'/Users?sortBy={EXTENSION}:rank&sortOrder={order}', status=200).json
        assert [item['userName'] for item in listing['Resources']] == expected


# ---------------------------------------------------------------------------
# Text: case folding and order are Python's and code points', whatever the database's locale
# ---------------------------------------------------------------------------

@pytest.mark.parametrize('attribute', ['displayName', 'title', f'{EXTENSION}:v'])
@pytest.mark.parametrize('value', ['ΠΑΠΑΔΟΠΟΥΛΟΣ', 'İK', 'ÉCOLE', 'ǅemal'])
def test_any_stored_text_matches_itself_and_its_other_cases(client, attribute, value):
    name = attribute.rsplit(':', 1)[-1]
    body = {EXTENSION: {name: value}} if attribute.startswith('urn:') else {attribute: value}
    user(client, 'x@example.com', **body)
    user(client, 'other@example.com')
    for text in (value, value.upper(), value.lower()):
        assert found(client, f'{attribute} eq "{text}"') == ['x@example.com'], text
    assert found(client, f'{attribute} sw "{value[:2]}"') == ['x@example.com']
    assert found(client, f'{attribute} co "{value[1:3].upper()}"') == ['x@example.com']


@pytest.fixture
def punctuated(client):
    ids = {name: user(client, name, title=name.upper())['id'] for name in ('ab', 'a_b', 'a-c', 'ä', 'b')}
    return client, ids


def test_text_sorts_in_code_point_order(punctuated):
    client, ids = punctuated
    for sort_by in ('userName', 'title'):
        listing = client.get(f'/Users?sortBy={sort_by}', status=200).json
        assert [item['userName'] for item in listing['Resources']] == ['a-c', 'a_b', 'ab', 'b', 'ä']


@pytest.mark.parametrize('text, expected', [
    ('userName ge "a-c"', 'a-c a_b ab b ä'),
    ('userName gt "a_b"', 'ab b ä'),
    ('userName lt "b"', 'a-c a_b ab'),
    ('title lt "B"', 'a-c a_b ab'),
    ('title gt "Z"', 'ä'),
])
def test_text_compares_in_code_point_order(punctuated, text, expected):
    client, _ = punctuated
    assert found(client, text) == sorted(expected.split())


def test_members_and_groups_are_listed_in_code_point_order(punctuated):
    client, ids = punctuated
    group = client.create_group('G', members=list(ids.values()))
    assert [member['display'] for member in client.get(f'/Groups/{group["id"]}').json['members']] == [
        'a-c', 'a_b', 'ab', 'b', 'ä']
    for name in ('b_x', 'b-x', 'bx'):
        client.create_group(name, members=[ids['ab']])
    assert [ref['display'] for ref in client.get(f'/Users/{ids["ab"]}').json['groups']] == [
        'b-x', 'b_x', 'bx', 'G']   # by the lower-cased name


# ---------------------------------------------------------------------------
# Limits and races the two databases would otherwise answer differently
# ---------------------------------------------------------------------------

@pytest.mark.parametrize('resource, attribute', [
    ('Users', 'userName'), ('Users', 'externalId'), ('Groups', 'displayName'), ('Groups', 'externalId')])
def test_an_indexed_value_too_long_to_index_is_400_on_every_database(client, resource, attribute):
    schema = USER_SCHEMA if resource == 'Users' else GROUP_SCHEMA
    required = 'userName' if resource == 'Users' else 'displayName'
    body = {'schemas': [schema], required: 'fits', attribute: 'é' * 1025}   # 2,050 bytes of UTF-8
    assert_scim_error(client.post(f'/{resource}', body), 400, 'invalidValue')
    assert client.post(f'/{resource}', {**body, attribute: 'é' * 1024}, status=201)
    assert client.get(f'/{resource}?count=0').json['totalResults'] == 1


def wait_until_blocked_by(database_url, blocker_pid, timeout=10):
    """PostgreSQL: wait (polling, from a connection of its own) until a backend waits on
    a lock that `blocker_pid` holds; its current statement. Fails if none does in time."""
    watcher = postgresql(database_url)
    try:
        cursor = watcher.cursor()
        deadline = time.monotonic() + timeout
        while True:
            cursor.execute("SELECT query FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                           'AND %s = ANY(pg_blocking_pids(pid))', (blocker_pid,))
            waiting = cursor.fetchall()
            if waiting:
                return waiting[0][0]
            assert time.monotonic() < deadline, "no statement ever waited on the deleting transaction's lock"
            time.sleep(0.01)   # the interval of a poll that ends on what it waits for
    finally:
        watcher.close()


@pytest.mark.parametrize('with_ann', [True, False], ids=['two members', 'one member'])
def test_a_member_deleted_while_being_added_is_400_unknown_member(client, database_url, monkeypatch, with_ann):
    """Another process deletes the user while our PATCH adds it, and commits only once the
    PATCH is inside its write: the client hears of an unknown member, not a 500, and the
    PATCH changes nothing. On PostgreSQL the PATCH has checked the user (the delete was not
    committed yet) and its insert waits on the deleted row's lock: the foreign key decides
    (an IntegrityError, then the users looked up again). On SQLite the PATCH waits for the
    write lock, and checks the user inside its transaction, after the delete. One member
    alone is a statement of its own (store.LINK_ADD_ONE)."""
    ann, bob = user(client, 'ann@example.com'), user(client, 'bob@example.com')
    group = client.create_group('G')
    if ON_POSTGRESQL:
        other = postgresql(database_url)
        other.autocommit = False
        other.cursor().execute('DELETE FROM users WHERE id = %s', (bob['id'],))
    else:
        other = sqlite3.connect(database_url[len('sqlite:///'):], isolation_level=None)
        other.execute('PRAGMA foreign_keys = ON')
        other.execute('BEGIN IMMEDIATE')
        other.execute('DELETE FROM users WHERE id = ?', (bob['id'],))
    answers = {}

    def add():
        answers['patch'] = client.patch(f'/Groups/{group["id"]}', [
            {'op': 'add', 'path': 'members', 'value': [{'value': ann['id']}] * with_ann + [{'value': bob['id']}]}])
    adding = threading.Thread(target=add)
    # What the PATCH does, as it does it: the write it enters, and the foreign key's refusals.
    entered_write, refused_by_foreign_key = threading.Event(), []
    writing, members_deleted_meanwhile = store.writing, store._members_deleted_meanwhile

    def watched_writing():
        if threading.current_thread() is adding:
            entered_write.set()
        return writing()

    def watched_members_deleted_meanwhile(group_id, changes):
        refused_by_foreign_key.append(changes)
        return members_deleted_meanwhile(group_id, changes)
    monkeypatch.setattr(store, 'writing', watched_writing)
    monkeypatch.setattr(store, '_members_deleted_meanwhile', watched_members_deleted_meanwhile)
    adding.start()
    committed = False
    try:
        if ON_POSTGRESQL:   # the PATCH's insert waits on the row the delete locked
            blocked = wait_until_blocked_by(database_url, other.get_backend_pid()).lower()
            # One member: store.LINK_ADD_ONE, prepared, shows as its EXECUTE.
            assert 'link' in blocked or blocked.startswith(f'execute {store.LINK_ADD_ONE.server_side.name}('), blocked
        else:   # the PATCH is in its write, which cannot begin while the delete holds the lock
            assert entered_write.wait(10), 'the PATCH never began its write'
            assert adding.is_alive() and 'patch' not in answers
        other.commit() if ON_POSTGRESQL else other.execute('COMMIT')
        committed = True
    finally:
        if not committed:
            other.rollback() if ON_POSTGRESQL else other.execute('ROLLBACK')
        other.close()
        adding.join(30)
    assert not adding.is_alive()
    body = assert_scim_error(answers['patch'], 400, 'invalidValue')
    assert bob['id'] in body['detail']
    assert client.get(f'/Groups/{group["id"]}').json['members'] == []   # ann's add went with it
    assert entered_write.is_set()
    if ON_POSTGRESQL:   # the insert was refused by the foreign key, once: the race, not a plain unknown id
        assert len(refused_by_foreign_key) == 1
        assert bob['id'] in [user_id for change in refused_by_foreign_key[0] for user_id in change.added]
    else:   # SQLite's one writer: the check inside the write already saw the delete
        assert refused_by_foreign_key == []


@pytest.mark.parametrize('url', [
    'postgresql://scim:s3cret-pw@db.example:5432/scim', 'postgresql://scim@db/scim?password=s3cret-pw&sslmode=x'])
def test_a_database_url_is_printed_without_its_password(url):
    assert 's3cret-pw' not in store.masked(url)
    assert store.masked('sqlite:///scim.db') == 'sqlite:///scim.db'


@pytest.mark.skipif(not ON_POSTGRESQL, reason='a PostgreSQL URL with a password (SCIMLITE_TEST_DATABASE_URL)')
def test_the_banner_shows_the_postgresql_url_without_its_password(database_url):
    parts = urlsplit(database_url)
    with_password = parts._replace(netloc=f'{parts.username}:s3cret-pw@{parts.hostname}:{parts.port or 5432}')
    server = ServerProcess(database=with_password.geturl(), token=TOKEN)   # trust auth takes any password
    try:
        assert 'Database:' in server.output
        assert 's3cret-pw' not in server.output
    finally:
        server.stop()


@pytest.mark.skipif(not ON_POSTGRESQL, reason='PostgreSQL privileges (SCIMLITE_TEST_DATABASE_URL)')
def test_a_role_that_may_not_create_the_tables_is_a_one_line_error(database_url):
    empty_postgresql_database(database_url, drop=True)
    role = f'scimlite_reader_{secrets.token_hex(4)}'
    admin = postgresql(database_url)
    try:
        cursor = admin.cursor()
        cursor.execute(f'CREATE ROLE {role} LOGIN')
        cursor.execute(f'REVOKE CREATE ON SCHEMA public FROM PUBLIC, {role}')
        parts = urlsplit(database_url)
        url = parts._replace(netloc=f'{role}@{parts.hostname}:{parts.port or 5432}').geturl()
        process = run_server('--port', '0', '--token', TOKEN, '--database', url)
        output, _ = process.communicate(timeout=30)
        lines = [line for line in output.splitlines() if line.strip()]
        assert process.returncode != 0
        assert len(lines) == 1 and 'cannot open database' in lines[0] and 'permission denied' in lines[0], output
    finally:
        cursor.execute(f'DROP OWNED BY {role}')
        cursor.execute(f'DROP ROLE {role}')
        admin.close()

"""Member changes as set operations: a PUT or PATCH naming thousands of members is a
fixed few SQL statements, whatever their number, and gives the same answers as one
naming a few: the members added, removed or replaced exactly, an unknown id (or
another seat's user) refused with nothing changed, duplicates taken once.

Runs on SQLite and, in the PostgreSQL pass, on PostgreSQL (conftest.py)."""

import sqlite3
import threading

import pytest
from playhouse.test_utils import count_queries

import store
from conftest import (GROUP_SCHEMA, ON_POSTGRESQL, USER_SCHEMA, ScimClient, assert_scim_error, postgresql,
                      store_rows)
from test_backends import wait_until_blocked_by


def stored_users(count, prefix='member'):
    """`count` users of this thread's seat, the users rows POST /Users stores (not the
    search values beside them: these tests never search), written a thousand a
    statement (thousands of requests, or round trips, would take seconds); their
    ids, in order."""
    stamp = store.now()
    rows = [{name: value for name, value in store._user_columns(
                {'schemas': [USER_SCHEMA], 'userName': f'{prefix}{number}@example.com'}).items()
             if name in store.USER_WRITABLE}
            | dict(id=store.new_id(), seat=store.current_seat(), version=1, created=stamp, last_modified=stamp)
            for number in range(count)]
    with store.writing():
        for start in range(0, count, 1000):
            store.User.insert_many(rows[start:start + 1000]).execute()
    return [row['id'] for row in rows]


def as_members(ids):
    return [{'value': user_id} for user_id in ids]


def put_members(client, group, ids, **kwargs):
    body = {'schemas': [GROUP_SCHEMA], 'displayName': group['displayName'], 'members': as_members(ids)}
    return client.put(f'/Groups/{group["id"]}', body, **kwargs)


def add_members(client, group, ids, **kwargs):
    return client.patch(f'/Groups/{group["id"]}', [{'op': 'add', 'path': 'members', 'value': as_members(ids)}],
                        **kwargs)


def member_ids(client, group):
    return {member['value'] for member in client.get(f'/Groups/{group["id"]}', status=200).json['members']}


def version(client, group):
    return client.get(f'/Groups/{group["id"]}', status=200).headers['ETag']


@pytest.fixture
def users(app):
    """12,000 stored users' ids."""
    return stored_users(12000)


# ---------------------------------------------------------------------------
# Large lists give exactly the members asked for
# ---------------------------------------------------------------------------

def test_a_put_of_10000_members_then_of_a_half_changed_10000(client, users):
    group = client.create_group('Everyone')
    answer = put_members(client, group, users[:10000], status=200).json
    assert {member['value'] for member in answer['members']} == set(users[:10000])
    assert member_ids(client, group) == set(users[:10000])
    answer = put_members(client, group, users[5000:15000], status=200).json
    assert {member['value'] for member in answer['members']} == set(users[5000:12000])
    assert member_ids(client, group) == set(users[5000:12000])
    assert [group['value'] for group in client.get(f'/Users/{users[4999]}').json['groups']] == []
    assert [group['value'] for group in client.get(f'/Users/{users[5000]}').json['groups']] == [group['id']]


def test_a_patch_adds_1000_to_a_large_group_and_keeps_the_others(client, users):
    group = client.create_group('Everyone', users[:10000])
    add_members(client, group, users[10000:11000], status=204)
    assert member_ids(client, group) == set(users[:11000])


@pytest.mark.parametrize('form', ['value list', 'one operation each'])
def test_a_patch_removes_1000_members_and_keeps_the_others(client, users, form):
    group = client.create_group('Everyone', users[:3000])
    gone = users[1000:2000]
    if form == 'value list':   # Entra
        operations = [{'op': 'remove', 'path': 'members', 'value': as_members(gone)}]
    else:   # Okta: members[value eq "<id>"], one operation a member
        operations = [{'op': 'remove', 'path': f'members[value eq "{user_id}"]'} for user_id in gone]
    client.patch(f'/Groups/{group["id"]}', operations, status=204)
    assert member_ids(client, group) == set(users[:1000] + users[2000:3000])


def test_a_patch_replaces_all_members_with_others(client, users):
    group = client.create_group('Everyone', users[:3000])
    client.patch(f'/Groups/{group["id"]}', [
        {'op': 'replace', 'path': 'members', 'value': as_members(users[2000:5000])}], status=204)
    assert member_ids(client, group) == set(users[2000:5000])
    put_members(client, group, [], status=200)
    assert member_ids(client, group) == set()


def test_adds_and_removes_in_one_patch_apply_in_order(client, users):
    """Runs of adds and of removes are applied together, but never across each other."""
    group = client.create_group('Everyone', users[:10])
    client.patch(f'/Groups/{group["id"]}', [
        {'op': 'remove', 'path': f'members[value eq "{users[0]}"]'},
        {'op': 'remove', 'path': f'members[value eq "{users[1]}"]'},
        {'op': 'add', 'path': 'members', 'value': as_members(users[0:1])},
        {'op': 'add', 'path': 'members', 'value': as_members(users[20:22])},
        {'op': 'remove', 'path': 'members', 'value': as_members(users[20:21])},
        {'op': 'remove', 'path': f'members[value eq "{users[2]}"]'},
    ], status=204)
    assert member_ids(client, group) == {users[0], users[21], *users[3:10]}


# ---------------------------------------------------------------------------
# Unknown ids, duplicates, seats
# ---------------------------------------------------------------------------

UNKNOWN = ['no-such-user-1', 'no-such-user-2', 'no-such-user-3']


@pytest.mark.parametrize('method', ['POST', 'PUT', 'PATCH add', 'PATCH replace', 'PATCH replace filtered'])
def test_unknown_ids_among_thousands_are_named_and_change_nothing(client, users, method):
    group = client.create_group('Everyone', users[:2000])
    asked = users[1000:6000]
    asked = [UNKNOWN[0]] + asked[:2500] + [UNKNOWN[1]] + asked[2500:] + [UNKNOWN[2], UNKNOWN[2]]
    before, etag = store_rows(), version(client, group)
    path = f'/Groups/{group["id"]}'
    if method == 'POST':
        response = client.post('/Groups', {'schemas': [GROUP_SCHEMA], 'displayName': 'New',
                                           'members': as_members(asked)})
    elif method == 'PUT':
        response = put_members(client, group, asked)
    elif method == 'PATCH add':
        response = add_members(client, group, asked)
    elif method == 'PATCH replace':
        response = client.patch(path, [{'op': 'replace', 'path': 'members', 'value': as_members(asked)}])
    else:
        response = client.patch(path, [{'op': 'replace', 'path': f'members[value eq "{users[0]}"]',
                                        'value': as_members(asked)}])
    detail = assert_scim_error(response, 400, 'invalidValue')['detail']
    assert all(unknown in detail for unknown in UNKNOWN), detail
    assert not any(user_id in detail for user_id in users), 'only the unknown ids are named'
    assert store_rows() == before
    assert version(client, group) == etag


def test_duplicates_are_taken_once(client, users):
    group = client.create_group('Everyone', users[:10])
    asked = users[5:3000]
    put_members(client, group, asked + asked[::-1], status=200)
    assert member_ids(client, group) == set(asked)
    add_members(client, group, users[2000:4000] * 2, status=204)
    assert member_ids(client, group) == set(users[5:4000])


def test_naming_the_members_a_group_has_writes_nothing(client, users):
    """An IdP re-sending the members it already pushed: the version stays."""
    group = client.create_group('Everyone')
    put_members(client, group, users[:5000], status=200)
    etag = version(client, group)
    put_members(client, group, users[:5000][::-1], status=200)
    add_members(client, group, users[:5000:7], status=204)
    client.patch(f'/Groups/{group["id"]}', [{'op': 'remove', 'path': 'members', 'value': as_members(users[5000:6000])}],
                 status=204)
    assert version(client, group) == etag
    assert member_ids(client, group) == set(users[:5000])


def test_the_store_counts_the_link_rows_a_write_made(app, users):
    """`members_added`, the board's "member added", counts new link rows, not ids named."""
    group = store.create_group({'schemas': [GROUP_SCHEMA], 'displayName': 'Everyone'}, users[:100])

    def change(*member_changes):
        return store.update_group(group['id'], lambda record: (record['resource'], list(member_changes)),
                                  with_members=False)['members_added']
    assert change(store.AddMembers(tuple(users[50:150] + users[50:150]))) == 50
    assert change(store.SetMembers(tuple(users[100:300]))) == 150
    assert change(store.RemoveMembers(tuple(users[:200])), store.AddMembers(tuple(users[:10]))) == 10
    assert change(store.AddMembers(tuple(users[200:300]))) == 0
    assert change(store.SetMembers(tuple(users[:10] + users[200:300]))) == 0


def test_another_seats_user_among_thousands_is_unknown(make_app):
    app = make_app(seats=2)
    tokens = {seat['number']: seat['token'] for seat in store.seats()}
    clients = {}
    for number in (1, 2):
        clients[number] = ScimClient(app)
        clients[number].headers['Authorization'] = f'Bearer {tokens[number]}'
    with store.seat_data(1):
        stranger = stored_users(1, prefix='stranger')[0]
    with store.seat_data(2):
        mine = stored_users(3000)
    group = clients[2].create_group('Everyone', mine[:1000])
    before = store_rows()
    for response in (put_members(clients[2], group, mine + [stranger]),
                     add_members(clients[2], group, mine[1000:2000] + [stranger]),
                     clients[2].post('/Groups', {'schemas': [GROUP_SCHEMA], 'displayName': 'Stolen',
                                                 'members': as_members(mine + [stranger])})):
        detail = assert_scim_error(response, 400, 'invalidValue')['detail']
        assert stranger in detail and mine[0] not in detail
    assert store_rows() == before
    assert clients[1].get(f'/Users/{stranger}', status=200).json['groups'] == []


@pytest.mark.parametrize('method', ['PUT', 'PATCH replace'])
def test_a_user_deleted_while_thousands_are_set_is_named_and_nothing_changes(client, database_url, users, method):
    """As tests/test_backends.py's PATCH add, for a whole member list: another process
    deletes one of the users, committing only once the write has begun. PostgreSQL's
    foreign key refuses the insert of the link rows (the check before it saw the user);
    SQLite's write waits for the lock, then its check sees the user gone."""
    group = client.create_group('Everyone', users[:1000])
    doomed = users[1500]
    before = set(store_rows()['Link'])
    if ON_POSTGRESQL:
        other = postgresql(database_url)
        other.autocommit = False
        other.cursor().execute('DELETE FROM users WHERE id = %s', (doomed,))
    else:
        other = sqlite3.connect(database_url[len('sqlite:///'):], isolation_level=None)
        other.execute('PRAGMA foreign_keys = ON')
        other.execute('BEGIN IMMEDIATE')
        other.execute('DELETE FROM users WHERE id = ?', (doomed,))
    answers = {}

    def write():
        if method == 'PUT':
            answers['write'] = put_members(client, group, users[500:3000])
        else:
            answers['write'] = client.patch(f'/Groups/{group["id"]}', [
                {'op': 'replace', 'path': 'members', 'value': as_members(users[500:3000])}])
    writing = threading.Thread(target=write)
    writing.start()
    try:
        if ON_POSTGRESQL:   # the insert of the link rows waits on the row the delete locked
            blocked = wait_until_blocked_by(database_url, other.get_backend_pid()).lower()
            # store.LINKS_ADD_KNOWN: its ids come first, and the text shown may end before the INSERT
            assert 'link' in blocked or blocked.startswith('with listed as'), blocked
        other.commit() if ON_POSTGRESQL else other.execute('COMMIT')
    finally:
        other.close()
        writing.join(30)
    assert not writing.is_alive()
    detail = assert_scim_error(answers['write'], 400, 'invalidValue')['detail']
    assert doomed in detail and users[500] not in detail
    assert set(store_rows()['Link']) == before
    assert member_ids(client, group) == set(users[:1000])


# ---------------------------------------------------------------------------
# One member at a time, as Okta sends them: one-row statements
# ---------------------------------------------------------------------------

def test_one_member_added_or_removed_is_one_row_statement(client, users):
    """Okta's PATCH, one member out and one in: a statement for each, naming the user,
    no list of one unpacked into a table (json_each, json_array_elements_text)."""
    group = client.create_group('Everyone', users[:100])
    operations = [{'op': 'remove', 'path': f'members[value eq "{users[0]}"]'},
                  {'op': 'add', 'path': 'members', 'value': as_members(users[100:101])}]
    sent = statements(lambda: client.patch(f'/Groups/{group["id"]}', operations, status=204))
    assert not [sql for sql in sent if 'json_' in sql], sent
    assert len([sql for sql in sent if sql.startswith('DELETE FROM "link"')]) == 1, sent
    assert len([sql for sql in sent if sql.startswith('INSERT') and ' INTO "link"' in sql.split('(')[0]]) == 1, sent
    assert member_ids(client, group) == set(users[1:101])


def test_one_member_unknown_another_seats_or_already_there(make_app):
    """The one-row add refuses an unknown id and another seat's user, naming it and
    changing nothing, and takes a member the group has as a change of nothing."""
    app = make_app(seats=2)
    tokens = {seat['number']: seat['token'] for seat in store.seats()}
    client = ScimClient(app)
    client.headers['Authorization'] = f'Bearer {tokens[2]}'
    with store.seat_data(1):
        stranger = stored_users(1, prefix='stranger')[0]
    with store.seat_data(2):
        mine = stored_users(3)
    group = client.create_group('Everyone', mine[:2])
    etag = version(client, group)
    before = store_rows()
    for unknown in (stranger, 'no-such-user', mine[0].upper()):
        detail = assert_scim_error(add_members(client, group, [unknown]), 400, 'invalidValue')['detail']
        assert unknown in detail
    assert store_rows() == before
    add_members(client, group, mine[:1], status=204)
    client.patch(f'/Groups/{group["id"]}', [{'op': 'remove', 'path': f'members[value eq "{mine[2]}"]'}], status=204)
    assert version(client, group) == etag and store_rows() == before
    add_members(client, group, mine[2:], status=204)
    assert member_ids(client, group) == set(mine) and version(client, group) != etag


# ---------------------------------------------------------------------------
# The statements: as many for thousands of members as for ten
# ---------------------------------------------------------------------------

def statements(send):
    """The SQL statements `send()` runs on this thread (webtest serves the request on
    it), not the exchange log's writer thread, which may flush meanwhile."""
    with count_queries() as counter:
        send()
    return [query.msg[0] for query in counter.get_queries() if query.thread == threading.get_ident()]


@pytest.mark.parametrize('few, many', [(10, 1000)])
@pytest.mark.parametrize('request_kind', ['PATCH add', 'PATCH remove', 'PATCH remove one operation each',
                                          'PATCH replace'])
def test_a_patch_runs_as_many_statements_for_many_members_as_for_few(client, users, request_kind, few, many):
    def patch(group, ids):
        if request_kind == 'PATCH add':
            operations = [{'op': 'add', 'path': 'members', 'value': as_members(ids)}]
        elif request_kind == 'PATCH remove':
            operations = [{'op': 'remove', 'path': 'members', 'value': as_members(ids)}]
        elif request_kind == 'PATCH remove one operation each':
            operations = [{'op': 'remove', 'path': f'members[value eq "{user_id}"]'} for user_id in ids]
        else:
            operations = [{'op': 'replace', 'path': 'members', 'value': as_members(ids)}]
        return statements(lambda: client.patch(f'/Groups/{group["id"]}', operations, status=204))
    first_members = users[:many] if 'remove' in request_kind else users[-100:]
    small = patch(client.create_group('Small', first_members), users[:few])
    large = patch(client.create_group('Large', first_members), users[:many])
    assert large == small
    assert len(small) <= 8, small


def test_a_put_runs_as_many_statements_for_5000_members_as_for_10(client, users):
    def put(ids):
        group = client.create_group(f'Group of {len(ids)}', users[-100:])
        return statements(lambda: put_members(client, group, ids, status=200))
    small, large = put(users[:10]), put(users[:5000])
    assert large == small
    assert len(small) <= 9, small
    # As many on a create: the group, then its members.
    create = [statements(lambda count=count: client.create_group(f'Created with {count}', users[:count]))
              for count in (10, 5000)]
    assert create[0] == create[1]

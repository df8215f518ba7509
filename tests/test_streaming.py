"""Streamed group answers: a group read whose groups hold more than
store.MEMBERS_AT_ONCE members together is sent as it is read, store.MEMBER_PIECE
member rows at a time. Whatever the route (a group, a page, a search, the answer
of a write) and whatever the projection, the answer is the one the group would get
unstreamed (the same JSON, members in the same order); the exchange log records it; a failure
midway cuts it short (one log line, an incomplete answer on the wire, nothing
stored differently); and a client reading one slowly holds up no other request.

Most tests stream groups of a dozen members (MEMBERS_AT_ONCE 5, MEMBER_PIECE 2);
the real server's test streams 25,000 members with the real defaults."""

import contextlib
import http.client
import json
import logging
import os
import re
import socket
import threading
import time

import peewee
import pytest
import waitress.server

import dashboard
import scim_server
import store
from conftest import BASE, GROUP_SCHEMA, SCIM_JSON, TOKEN, USER_SCHEMA, ScimClient, store_rows
from serverprocess import ServerProcess

SEARCH = 'urn:ietf:params:scim:api:messages:2.0:SearchRequest'
AT_ONCE, PIECE = 5, 2
# userNames whose code-point order (of their lower case) differs from most
# collations' (test_backends.test_members_and_groups_are_listed_in_code_point_order).
NAMES = ('a-c', 'a_b', 'ab', 'b', 'ä', 'Zoe', 'zz', 'Émile', 'e', '0', '~x', 'Mü', 'm', '"quoted" \\ \u2028 日本')


@pytest.fixture
def pieces(monkeypatch):
    """Groups of more than AT_ONCE members together are streamed, PIECE rows at a time;
    the list of (group id, rows) each MemberStream has read so far."""
    monkeypatch.setattr(store, 'MEMBERS_AT_ONCE', AT_ONCE)
    monkeypatch.setattr(store, 'MEMBER_PIECE', PIECE)
    read = []
    original = store.MemberStream.__iter__

    def counted(stream):
        for rows in original(stream):
            read.append((stream.group_id, len(rows)))
            yield rows
    monkeypatch.setattr(store.MemberStream, '__iter__', counted)
    return read


def unstreamed(monkeypatch, ask):
    """`ask()` with no group streamed, however large; streaming stays as it was after."""
    before = store.MEMBERS_AT_ONCE
    monkeypatch.setattr(store, 'MEMBERS_AT_ONCE', 10 ** 9)
    try:
        return ask()
    finally:
        monkeypatch.setattr(store, 'MEMBERS_AT_ONCE', before)


def pieces_of(count):
    """The rows each piece of a streamed group of `count` members holds."""
    return [PIECE] * (count // PIECE) + ([count % PIECE] if count % PIECE else [])


@pytest.fixture
def people(client):
    """{userName: id} of a user for each of NAMES."""
    return {name: client.create_user(name)['id'] for name in NAMES}


def in_code_point_order(names):
    return sorted(names, key=str.lower)


def assert_same_answer(streamed, plain):
    """Two answers to one request: the same status, SCIM JSON, ETag and Location, and body."""
    assert streamed.status_int == plain.status_int
    assert streamed.headers['Content-Type'] == plain.headers['Content-Type'] == f'{SCIM_JSON}; charset=utf-8'
    for header in ('ETag', 'Location'):
        assert streamed.headers.get(header) == plain.headers.get(header), header
    assert json.loads(streamed.body) == json.loads(plain.body)


def assert_members_in_order(group, user_ids):
    """`group` lists each of these users once, as themselves, in code-point order of userName."""
    names = {user_id: name for name, user_id in user_ids.items()}
    members = group['members']
    assert [member['display'] for member in members] == in_code_point_order(user_ids)
    assert sorted(member['value'] for member in members) == sorted(user_ids.values())
    for member in members:
        assert member['display'] == names[member['value']]
        assert member['type'] == 'User'
        assert member['$ref'].endswith(f'{BASE}/Users/{member["value"]}')


# ---------------------------------------------------------------------------
# The same answer, streamed or not
# ---------------------------------------------------------------------------

def test_a_streamed_group_is_the_group_unstreamed(client, people, pieces, monkeypatch):
    group = client.create_group('Everyone', people.values())
    del pieces[:]
    path = f'/Groups/{group["id"]}'
    streamed = client.get(path, status=200)
    assert pieces == [(group['id'], rows) for rows in pieces_of(len(NAMES))]
    plain = unstreamed(monkeypatch, lambda: client.get(path, status=200))
    assert len(pieces) == len(pieces_of(len(NAMES)))   # the plain read streamed nothing
    assert_same_answer(streamed, plain)
    assert streamed.headers['ETag'] == streamed.json['meta']['version'] == 'W/"1"'
    assert streamed.headers['Location'] == streamed.json['meta']['location']
    assert_members_in_order(streamed.json, people)
    assert streamed.json['displayName'] == 'Everyone' and streamed.json['schemas'] == [GROUP_SCHEMA]


def test_sqlite_sorts_a_streamed_group_with_a_small_cache_and_sets_it_back(client, people, pieces):
    """SQLite's sorter keeps in memory as much as the page cache may hold (_small_sorter)."""
    if not store.is_sqlite():
        pytest.skip("SQLite's sorter")
    group = client.create_group('Everyone', people.values())
    connection = store.database.connection()
    cache = connection.execute('PRAGMA cache_size').fetchone()[0]
    assert cache == -16 * 1024
    statements = []
    connection.set_trace_callback(statements.append)
    try:
        streamed = client.get(f'/Groups/{group["id"]}', status=200)
    finally:
        connection.set_trace_callback(None)
    assert_members_in_order(streamed.json, people)
    members_read = next(n for n, sql in enumerate(statements) if 'ORDER BY' in sql and '"link"' in sql
                        and '"t1"."user_name"' in sql and '"t2"."group_id" = ' in sql)
    assert statements[members_read - 1] == f'PRAGMA cache_size = {-store.ADDED_THREAD_CACHE_KIB}'
    assert statements[members_read + 1] == f'PRAGMA cache_size = {cache}'
    assert store.database.connection().execute('PRAGMA cache_size').fetchone()[0] == cache


def test_a_group_of_at_most_members_at_once_is_not_streamed(client, people, pieces):
    few = dict(list(people.items())[:AT_ONCE])
    group = client.create_group('Few', few.values())
    assert_members_in_order(client.get(f'/Groups/{group["id"]}', status=200).json, few)
    assert pieces == []


def test_an_empty_group_among_streamed_ones_is_an_empty_list(client, people, pieces, monkeypatch):
    client.create_group('Everyone', people.values())
    empty = client.create_group('Empty')
    listing = client.get('/Groups?count=10', status=200)
    assert pieces
    assert [group['members'] for group in listing.json['Resources'] if group['id'] == empty['id']] == [[]]
    assert_same_answer(listing, unstreamed(monkeypatch, lambda: client.get('/Groups?count=10', status=200)))


@pytest.fixture
def groups(client, people):
    """Groups of 13, 2, 0, 8 and 1 members, in that order: {displayName: (id, {userName: id})}."""
    names = list(people)
    made = {}
    for display_name, members in (('Big', names), ('Small', names[:2]), ('Empty', []),
                                  ('Middle', names[3:11]), ('One', names[-1:])):
        chosen = {name: people[name] for name in members}
        made[display_name] = client.create_group(display_name, chosen.values())['id'], chosen
    return made


@pytest.mark.parametrize('count', [1, 2, 3, 5, 100])
def test_every_page_of_groups_is_the_page_unstreamed(client, groups, pieces, monkeypatch, count):
    """A page is streamed where its groups hold more than AT_ONCE members together
    (every group of it, then, small ones too); the pages are the same either way."""
    sizes = {group_id: len(members) for group_id, members in groups.values()}
    for start in range(1, len(groups) + 2):
        path = f'/Groups?startIndex={start}&count={count}'
        del pieces[:]
        streamed = client.get(path, status=200)
        on_page = [group['id'] for group in streamed.json['Resources']]
        if sum(sizes[group_id] for group_id in on_page) > AT_ONCE:
            assert pieces == [(group_id, rows) for group_id in on_page for rows in pieces_of(sizes[group_id])]
        else:
            assert pieces == []
        assert_same_answer(streamed, unstreamed(monkeypatch, lambda path=path: client.get(path, status=200)))
        assert streamed.json['totalResults'] == len(groups)
        assert streamed.json['itemsPerPage'] == len(on_page) == min(count, max(0, len(groups) - start + 1))
    everyone = client.get('/Groups?count=100', status=200).json['Resources']
    assert [group['displayName'] for group in everyone] == list(groups)
    for group in everyone:
        assert_members_in_order(group, groups[group['displayName']][1])


@pytest.mark.parametrize('path', ['/Groups/.search', '/.search'])
@pytest.mark.parametrize('search', [
    {'count': 100},
    {'startIndex': 2, 'count': 3},
    {'filter': 'displayName ne "Small"', 'excludedAttributes': ['externalId']},
    {'filter': 'members.value pr', 'attributes': ['members.value', 'displayName']},
])
def test_a_search_of_groups_is_the_search_unstreamed(client, groups, pieces, monkeypatch, path, search):
    """At the root, users come first: `startIndex` 2 there is the second user."""
    if path == '/.search' and 'startIndex' in search:
        search = {**search, 'startIndex': len(NAMES) + 2}
    body = {'schemas': [SEARCH], **search}
    streamed = client.post(path, body, status=200)
    assert pieces
    assert_same_answer(streamed, unstreamed(monkeypatch, lambda: client.post(path, body, status=200)))
    listed = [resource for resource in streamed.json['Resources'] if resource['schemas'] == [GROUP_SCHEMA]]
    assert listed
    for group in listed:
        if 'members' in group and 'displayName' in group and 'attributes' not in search:
            assert_members_in_order(group, groups[group['displayName']][1])


def test_a_seats_streamed_group_is_the_group_unstreamed(make_app, pieces, monkeypatch):
    app = make_app(seats=1)
    seat = ScimClient(app)
    seat.headers['Authorization'] = f'Bearer {store.seats()[0]["token"]}'
    ScimClient(app).create_user('ann')   # the server's own: another seat's, not a member
    people = {name: seat.create_user(name)['id'] for name in NAMES}
    group = seat.create_group('Everyone', people.values())
    streamed = seat.get(f'/Groups/{group["id"]}', status=200)
    assert pieces
    assert_same_answer(streamed, unstreamed(monkeypatch, lambda: seat.get(f'/Groups/{group["id"]}', status=200)))
    assert_members_in_order(streamed.json, people)


def test_a_filtered_page_of_groups_is_the_page_unstreamed(client, groups, pieces, monkeypatch):
    path = '/Groups?filter=displayName%20sw%20%22b%22%20or%20displayName%20eq%20%22middle%22&count=10'
    streamed = client.get(path, status=200)
    assert [group['displayName'] for group in streamed.json['Resources']] == ['Big', 'Middle']
    assert {group_id for group_id, _ in pieces} == {groups['Big'][0], groups['Middle'][0]}
    assert_same_answer(streamed, unstreamed(monkeypatch, lambda: client.get(path, status=200)))


def test_a_streamed_group_unchanged_since_is_304_without_a_body(client, people, pieces):
    group = client.create_group('Everyone', people.values())
    del pieces[:]
    response = client.get(f'/Groups/{group["id"]}', headers={'If-None-Match': 'W/"1"'}, status=304)
    assert response.body == b'' and response.headers['ETag'] == 'W/"1"'
    assert pieces == []


# ---------------------------------------------------------------------------
# Projections
# ---------------------------------------------------------------------------

PROJECTIONS = [
    ('attributes=members.value', ['value']),
    ('attributes=members', ['value', 'display', 'type', '$ref']),
    ('attributes=members.display', ['display']),
    ('attributes=members.$ref', ['$ref']),
    ('attributes=members.type,id', ['type']),
    ('excludedAttributes=members.value', ['display', 'type', '$ref']),
    ('attributes=MEMBERS.Value,displayName', ['value']),
    ('attributes=members.value,members.display', ['value', 'display']),
    ('excludedAttributes=members.display', ['value', 'type', '$ref']),
    ('excludedAttributes=displayName', ['value', 'display', 'type', '$ref']),
    ('attributes=displayName', None),
    ('excludedAttributes=members', None),
    ('excludedAttributes=Members,externalId', None),
]


@pytest.mark.parametrize('query,keys', PROJECTIONS, ids=[query for query, _ in PROJECTIONS])
def test_a_projection_of_a_streamed_group_is_the_projection_unstreamed(client, people, pieces, monkeypatch,
                                                                       query, keys):
    """Each member keeps the projection's keys alone; with no members shown, none is read."""
    group = client.create_group('Everyone', people.values(), externalId='ext-1')
    for path in (f'/Groups/{group["id"]}?{query}', f'/Groups?count=10&{query}'):
        del pieces[:]
        streamed = client.get(path, status=200)
        assert len(pieces) == (len(pieces_of(len(NAMES))) if keys else 0), path
        assert_same_answer(streamed, unstreamed(monkeypatch, lambda path=path: client.get(path, status=200)))
        document = streamed.json if '?count' not in path else streamed.json['Resources'][0]
        if keys is None:
            assert 'members' not in document
            continue
        assert [sorted(member) for member in document['members']] == [sorted(keys)] * len(NAMES)
        if 'value' in keys:
            assert sorted(member['value'] for member in document['members']) == sorted(people.values())
        if 'display' in keys:
            assert [member['display'] for member in document['members']] == in_code_point_order(NAMES)


# ---------------------------------------------------------------------------
# The answers of writes
# ---------------------------------------------------------------------------

def read_unstreamed(client, monkeypatch, group_id, query=''):
    return unstreamed(monkeypatch, lambda: client.get(f'/Groups/{group_id}{query}', status=200))


def test_a_create_with_many_members_answers_the_group_streamed(client, people, pieces, monkeypatch):
    response = client.post('/Groups', {'schemas': [GROUP_SCHEMA], 'displayName': 'Everyone',
                                       'members': [{'value': user_id} for user_id in people.values()]}, status=201)
    group_id = response.json['id']
    assert pieces == [(group_id, rows) for rows in pieces_of(len(NAMES))]
    assert response.headers['Location'] == response.json['meta']['location']
    assert response.headers['ETag'] == 'W/"1"'
    assert json.loads(response.body) == read_unstreamed(client, monkeypatch, group_id).json
    assert_members_in_order(response.json, people)


@pytest.mark.parametrize('query', ['', '?attributes=members.value', '?excludedAttributes=members.display'])
def test_a_patch_answering_with_the_group_answers_it_streamed(client, people, pieces, monkeypatch, query):
    names = list(people)
    group = client.create_group('Everyone', [people[name] for name in names[:-2]])
    del pieces[:]
    response = client.patch(f'/Groups/{group["id"]}{query}', [
        {'op': 'add', 'path': 'members', 'value': [{'value': people[name]} for name in names[-2:]]},
        {'op': 'remove', 'path': f'members[value eq "{people[names[0]]}"]'},
        {'op': 'replace', 'path': 'displayName', 'value': 'Almost everyone'}],
        headers={'Prefer': 'return=representation'}, status=200)
    assert pieces == [(group['id'], rows) for rows in pieces_of(len(NAMES) - 1)]
    assert response.headers['ETag'] == response.json['meta']['version'] == 'W/"2"'
    assert_same_answer(response, read_unstreamed(client, monkeypatch, group['id'], query))
    assert response.json.get('displayName', 'Almost everyone') == 'Almost everyone'
    assert sorted(member['value'] for member in response.json['members']) == sorted(
        people[name] for name in names[1:])


def test_a_patch_that_changes_nothing_answers_the_group_streamed(client, people, pieces, monkeypatch):
    group = client.create_group('Everyone', people.values())
    response = client.patch(f'/Groups/{group["id"]}', [
        {'op': 'add', 'path': 'members', 'value': [{'value': next(iter(people.values()))}]}],
        headers={'Prefer': 'return=representation'}, status=200)
    assert response.headers['ETag'] == 'W/"1"'
    assert_same_answer(response, read_unstreamed(client, monkeypatch, group['id']))
    assert_members_in_order(response.json, people)


def test_a_put_answers_the_replaced_group_streamed(client, people, pieces, monkeypatch):
    names = list(people)
    group = client.create_group('Some', [people[name] for name in names[:3]])
    kept = {name: people[name] for name in names[1:]}
    del pieces[:]
    response = client.put(f'/Groups/{group["id"]}', {
        'schemas': [GROUP_SCHEMA], 'displayName': 'Most',
        'members': [{'value': user_id} for user_id in kept.values()]}, status=200)
    assert pieces == [(group['id'], rows) for rows in pieces_of(len(kept))]
    assert response.headers['ETag'] == 'W/"2"'
    assert_same_answer(response, read_unstreamed(client, monkeypatch, group['id']))
    assert response.json['displayName'] == 'Most'
    assert_members_in_order(response.json, kept)


def test_a_patch_without_a_body_reads_no_members(client, people, pieces):
    group = client.create_group('Everyone', people.values())
    del pieces[:]
    response = client.patch(f'/Groups/{group["id"]}', [{'op': 'replace', 'path': 'displayName', 'value': 'All'}],
                            status=204)
    assert response.body == b'' and response.headers['ETag'] == 'W/"2"'
    assert pieces == []


# ---------------------------------------------------------------------------
# The exchange log
# ---------------------------------------------------------------------------

def recorded(app, method, path, newest=True):
    """The newest (or the oldest) exchange recorded for `method` `path`, whole
    (headers and bodies)."""
    app.recorder.exchanges.flush()
    shown = [exchange for exchange in store.recent_exchanges(100)
             if (exchange['method'], exchange['path']) == (method, path)]
    assert shown, store.recent_exchanges(100)
    return store.get_exchange(shown[0 if newest else -1]['id'])


def test_a_streamed_answer_is_recorded_whole_when_it_fits(app, client, people, pieces):
    group = client.create_group('Everyone', people.values())
    response = client.get(f'/Groups/{group["id"]}', status=200)
    assert pieces and len(response.body) < dashboard.MAX_LOGGED_BODY
    exchange = recorded(app, 'GET', f'{BASE}/Groups/{group["id"]}')
    assert exchange['status'] == 200
    assert exchange['response_body'] == response.body.decode('utf-8')
    headers = {name.lower(): value for name, value in json.loads(exchange['response_headers']).items()}
    assert headers['etag'] == 'W/"1"'


def test_a_streamed_answer_is_recorded_by_its_head_and_length(app, client, pieces, monkeypatch):
    """Of a long answer, the first MAX_LOGGED_BODY bytes are kept, and how many more there were."""
    monkeypatch.setattr(dashboard, 'MAX_LOGGED_BODY', 600)
    ids = [client.create_user(f'user{n:02}@example.com')['id'] for n in range(12)]
    group = client.create_group('Everyone', ids)
    listing = client.get('/Groups?count=10', status=200)
    assert pieces and len(listing.body) > 600
    exchange = recorded(app, 'GET', f'{BASE}/Groups?count=10')
    assert exchange['status'] == 200
    head, note = exchange['response_body'].split('\n', 1)
    assert head == listing.body[:600].decode('utf-8')
    assert note == f'[… {len(listing.body) - 600} more bytes not kept]'
    assert group['id'] in head


def test_a_streamed_write_answer_is_recorded(app, client, people, pieces):
    response = client.post('/Groups', {'schemas': [GROUP_SCHEMA], 'displayName': 'Everyone',
                                       'members': [{'value': user_id} for user_id in people.values()]}, status=201)
    assert pieces
    app.recorder.exchanges.flush()
    exchange = store.get_exchange(store.recent_exchanges(1)[0]['id'])
    assert (exchange['method'], exchange['path'], exchange['status']) == ('POST', f'{BASE}/Groups', 201)
    assert exchange['response_body'] == response.body.decode('utf-8')
    assert json.loads(exchange['request_body'])['displayName'] == 'Everyone'


# ---------------------------------------------------------------------------
# Cut short
# ---------------------------------------------------------------------------

FAULT = 'the member query failed'


@pytest.fixture
def failing_after_one_piece(pieces, monkeypatch):
    """Calling it makes every MemberStream give its first piece, then fail as the
    database would; the stream's own statement (a cursor, on PostgreSQL a
    transaction) is closed first. Calling what it returns undoes it."""
    counted = store.MemberStream.__iter__

    def failing(stream):
        rows = counted(stream)
        try:
            yield next(rows)
        finally:
            rows.close()
        raise peewee.OperationalError(FAULT)

    def fail():
        monkeypatch.setattr(store.MemberStream, '__iter__', failing)
        return lambda: monkeypatch.setattr(store.MemberStream, '__iter__', counted)
    return fail


def cut_short_lines(caplog):
    return [record for record in caplog.records
            if record.name == 'scimlite' and 'answer cut short' in record.getMessage()]


def test_a_failure_midway_cuts_the_answer_short_with_one_line_and_changes_nothing(
        client, people, failing_after_one_piece, caplog):
    group = client.create_group('Everyone', people.values())
    before = store_rows()
    recover = failing_after_one_piece()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger='scimlite'), pytest.raises(scim_server.AnswerCutShort):
        client.get(f'/Groups/{group["id"]}')
    lines = cut_short_lines(caplog)
    assert len(lines) == 1, [record.getMessage() for record in caplog.records]
    assert lines[0].levelno == logging.WARNING
    assert re.fullmatch(rf'GET {BASE}/Groups/{group["id"]}: answer cut short after \d+ bytes: {FAULT}',
                        lines[0].getMessage())
    assert store_rows() == before
    recover()   # the database is back: so is the answer, on the same connection
    assert_members_in_order(client.get(f'/Groups/{group["id"]}', status=200).json, people)


def test_a_failure_midway_through_a_page_cuts_it_short(client, people, failing_after_one_piece, caplog):
    client.create_group('Everyone', people.values())
    client.create_group('Also everyone', people.values())
    recover = failing_after_one_piece()
    with caplog.at_level(logging.WARNING, logger='scimlite'), pytest.raises(scim_server.AnswerCutShort):
        client.get('/Groups?count=10')
    assert len(cut_short_lines(caplog)) == 1
    recover()
    assert len(client.get('/Groups?count=10', status=200).json['Resources']) == 2


@contextlib.contextmanager
def waitress_serving(app):
    """`app` served by waitress in this process, on a free port, in a thread."""
    server = waitress.server.create_server(app, host='127.0.0.1', port=0, threads=2)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        yield server.effective_port
    finally:
        server.task_dispatcher.shutdown()
        server.close()
        thread.join(timeout=10)


def get(port, path, timeout=30):
    """(status, headers, body) of a GET over a connection of its own."""
    connection = http.client.HTTPConnection('127.0.0.1', port, timeout=timeout)
    try:
        connection.request('GET', BASE + path, headers={'Authorization': f'Bearer {TOKEN}'})
        answer = connection.getresponse()
        return answer.status, dict(answer.getheaders()), answer.read()
    finally:
        connection.close()


def test_over_http_an_answer_cut_short_is_an_incomplete_chunked_answer(app, client, people, failing_after_one_piece,
                                                                       monkeypatch, caplog):
    """What the client gets: a 200 whose chunked body ends without its last chunk,
    which HTTP clients report as incomplete, never a body that merely looks short.
    waitress logs only the AnswerCutShort that main() filters out; the exchange log
    records what was sent."""
    monkeypatch.setattr(scim_server, 'SENT_AT_ONCE', 1)   # each piece goes out as it is made
    group = client.create_group('Everyone', people.values())
    path = f'/Groups/{group["id"]}'
    recover = failing_after_one_piece()
    with caplog.at_level(logging.INFO), waitress_serving(app) as port:
        connection = http.client.HTTPConnection('127.0.0.1', port, timeout=30)
        try:
            connection.request('GET', BASE + path, headers={'Authorization': f'Bearer {TOKEN}'})
            answer = connection.getresponse()
            assert answer.status == 200
            assert answer.getheader('Transfer-Encoding') == 'chunked'
            assert answer.getheader('Content-Type') == f'{SCIM_JSON}; charset=utf-8'
            with pytest.raises(http.client.IncompleteRead) as cut:
                answer.read()
        finally:
            connection.close()
        sent = cut.value.partial
        assert sent.startswith(b'{') and group['id'].encode() in sent
        with pytest.raises(ValueError):
            json.loads(sent)
        recover()
        status, _, body = get(port, path)   # the server goes on
        assert status == 200 and len(json.loads(body)['members']) == len(NAMES)
    waitress_errors = [record for record in caplog.records
                       if record.name.startswith('waitress') and record.levelno >= logging.ERROR]
    assert all(record.exc_info and record.exc_info[0] is scim_server.AnswerCutShort
               for record in waitress_errors), [record.getMessage() for record in waitress_errors]
    exchange = recorded(app, 'GET', BASE + path, newest=False)   # the one cut short, not the read after it
    assert exchange['status'] == 200
    assert exchange['response_body'] == sent.decode('utf-8')
    lines = cut_short_lines(caplog)
    assert len(lines) == 1
    # The bytes the client had when the answer stopped, its first piece among them.
    assert lines[0].getMessage() == f'GET {BASE}{path}: answer cut short after {len(sent)} bytes: {FAULT}'


# ---------------------------------------------------------------------------
# A real server: a slow reader holds up no one
# ---------------------------------------------------------------------------

EVERYONE = 25_000


def seed_large_group(database_url, count):
    """`count` users and one group of all of them, written through the store before
    any server runs; (the group's id, a user's id)."""
    store.open_database(database_url)
    try:
        ids = []
        for start in range(0, count, 5000):
            with store.writing():
                ids += [store.create_user({'schemas': [USER_SCHEMA], 'userName': f'user{n:05}@example.com'})['id']
                        for n in range(start, min(count, start + 5000))]
        group = store.create_group({'schemas': [GROUP_SCHEMA], 'displayName': 'Everyone'}, ids)
        return group['id'], ids[count // 2]
    finally:
        store.close_database()


def split_answer(data):
    """An HTTP/1.1 answer's bytes -> (head, body), a chunked body put together."""
    head, _, body = data.partition(b'\r\n\r\n')
    if b'transfer-encoding: chunked' not in head.lower():
        return head, body
    whole, at = [], 0
    while True:
        line_end = body.index(b'\r\n', at)
        size = int(body[at:line_end].split(b';')[0], 16)
        if size == 0:
            return head, b''.join(whole)
        whole.append(body[line_end + 2:line_end + 2 + size])
        at = line_end + 2 + size + 2


def test_a_client_reading_a_streamed_group_slowly_holds_up_no_other_request(database_url, tmp_path):
    """25,000 members with the real MEMBERS_AT_ONCE and MEMBER_PIECE, read 4 KB at a
    time, on a server of one thread: reads of a user on another connection answer
    meanwhile, each within a second; then the slow answer arrives whole."""
    group_id, user_id = seed_large_group(database_url, EVERYONE)
    assert store.MEMBERS_AT_ONCE < EVERYONE   # the real defaults stream it
    config = tmp_path / 'one-thread.ini'
    config.write_text('[scimlite]\nthreads = 1\nquiet = on\n')
    server = ServerProcess('--config', str(config), database=database_url, token=TOKEN)
    slow = socket.create_connection(('127.0.0.1', server.port), timeout=60)
    try:
        # A small window: the server's sends wait for this reader (smaller still, the
        # rest of the answer would take minutes to arrive).
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 16)
        slow.sendall(f'GET {BASE}/Groups/{group_id} HTTP/1.1\r\nHost: 127.0.0.1\r\n'
                     f'Authorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n'.encode())
        received = [slow.recv(4096)]
        assert received[0].startswith(b'HTTP/1.1 200'), received[0][:200]
        times = []
        for _ in range(20):
            started = time.monotonic()
            status, _, body = get(server.port, f'/Users/{user_id}', timeout=10)
            times.append(time.monotonic() - started)
            assert status == 200 and json.loads(body)['id'] == user_id
            received.append(slow.recv(4096))   # a little more of the slow answer, now and then
            time.sleep(0.05)
        assert max(times) < 1.0, times
        while chunk := slow.recv(1 << 16):
            received.append(chunk)
    finally:
        slow.close()
        server.stop()
    head, body = split_answer(b''.join(received))
    assert b'content-type: application/scim+json' in head.lower()
    group = json.loads(body)
    assert group['id'] == group_id and group['displayName'] == 'Everyone'
    assert len(group['members']) == EVERYONE
    assert len({member['value'] for member in group['members']}) == EVERYONE
    displays = [member['display'] for member in group['members']]
    assert displays == [f'user{n:05}@example.com' for n in range(EVERYONE)]


def test_when_the_last_streamed_answer_ends_the_freed_memory_goes_back(client, people, pieces, monkeypatch):
    """A streamed answer's pieces are freed as they go; once no answer is being
    streamed, malloc is told to hand its free pages back (glibc's malloc_trim), after
    the answer's last byte and only then: not while one still streams, not for an
    answer that was not streamed."""
    released = []
    monkeypatch.setattr(scim_server, 'release_freed_memory', lambda: released.append(scim_server.STREAMS.streaming))
    group = client.create_group('Everyone', people.values())
    assert released == [0]   # the create's answer was streamed
    first = client.get(f'/Groups/{group["id"]}', status=200)
    assert released == [0, 0] and len(first.json['members']) == len(NAMES)
    client.get(f'/Groups/{group["id"]}?excludedAttributes=members', status=200)
    client.get(f'/Users/{people["b"]}', status=200)
    assert released == [0, 0]
    with scim_server.STREAMS.one():   # another answer still streaming: this one's end releases nothing
        client.get(f'/Groups/{group["id"]}', status=200)
        assert released == [0, 0]
    assert released == [0, 0, 0]


@pytest.mark.skipif(scim_server._glibc() is None, reason="glibc's malloc_trim (Linux)")
def test_freed_memory_goes_back_to_the_system_on_glibc():
    """The real call: 100 MB of blocks freed below one still held stay in the process
    (glibc gives back only the top of its heap) until release_freed_memory()."""
    def rss_mb():
        with open('/proc/self/statm') as statm:
            return int(statm.read().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 2 ** 20
    blocks = [bytearray(b'x' * 100_000) for _ in range(1000)]   # each below malloc's mmap threshold
    held = bytearray(b'y' * 100_000)   # above them in the heap
    blocks.clear()
    freed = rss_mb()
    scim_server.release_freed_memory()
    assert freed - rss_mb() > 50
    assert held[0] == ord('y')

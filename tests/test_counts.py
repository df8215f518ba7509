"""How many users and groups each seat holds, kept by database triggers in
resource_count, and what rests on it: a whole collection's totalResults, and the
keyset paging of whole collections (a page that follows one this process answered
starts after that page's last row, unless a user came or went meanwhile).

Every count is compared with COUNT(*) of the rows themselves: after writes of
every kind (those that change nothing and those refused among them), a seat's
reset, writes made beside the server in SQL, and the upgrade of a database made
before the triggers."""

import threading

import pytest
from playhouse.test_utils import count_queries

import store
from conftest import (GROUP_SCHEMA, ON_POSTGRESQL, PATCH_SCHEMA, USER_SCHEMA, ScimClient, assert_scim_error,
                      store_rows)
import test_upgrade
from test_bulk import bulk, post_group, post_user
from test_seats import seat_client, seat_tokens
from test_concurrency import call
from test_upgrade import make_old_database, start_at_once

KINDS = (store.User, store.Group)


def run_sql(database_url, *statements):
    """(sql with ? placeholders, parameters)... on a connection of the driver's own; the
    last statement's rows."""
    return test_upgrade.run_sql(database_url, statements)


def real_counts(model):
    """{seat: COUNT(*)} of the model's rows, every seat that has any."""
    table = model._meta.table_name
    return dict(store.database.execute_sql(f'SELECT seat, COUNT(*) FROM "{table}" GROUP BY seat').fetchall())


def kept_counts(model):
    """{seat: total} as resource_count holds it, seats counted at zero left out."""
    return dict(store.database.execute_sql(
        'SELECT seat, total FROM resource_count WHERE kind = ? AND total <> 0'.replace('?', store.database.param),
        (model._meta.table_name,)).fetchall())


def assert_counted(*seats):
    """resource_count holds COUNT(*) of users and of groups in every seat, and
    store.count_of answers it in each of `seats` (and the server's own)."""
    for model in KINDS:
        assert kept_counts(model) == real_counts(model), model
        for seat in {store.INSTRUCTOR, *seats}:
            with store.seat_data(seat):
                assert store.count_of(model)[0] == real_counts(model).get(seat, 0), (model, seat)


def changes(model, seat=store.INSTRUCTOR):
    with store.seat_data(seat):
        return store.count_of(model)[1]


def counted(seat=store.INSTRUCTOR):
    """(users, their changes, groups, their changes) of a seat, as count_of gives them."""
    with store.seat_data(seat):
        return (*store.count_of(store.User), *store.count_of(store.Group))


def user_body(user_name, **attributes):
    return {'schemas': [USER_SCHEMA], 'userName': user_name, **attributes}


# ---------------------------------------------------------------------------
# The counts follow every insert and delete, and nothing else
# ---------------------------------------------------------------------------

def test_an_empty_database_counts_nothing(client):
    assert counted() == (0, 0, 0, 0)
    assert_counted()


def test_creates_and_deletes_are_counted_and_each_is_a_change(client):
    users = [client.create_user(f'user{n}@example.com')['id'] for n in range(5)]
    assert counted() == (5, 5, 0, 0)
    group = client.create_group('Team', users[:3])['id']
    assert counted() == (5, 5, 1, 1)
    client.delete(f'/Users/{users[0]}', status=204)   # a member: its link goes, the group stays
    assert counted() == (4, 6, 1, 1)
    client.delete(f'/Groups/{group}', status=204)
    assert counted() == (4, 6, 0, 2)
    client.create_group('Team', users[1:])
    assert counted() == (4, 6, 1, 3)
    assert_counted()


def test_writes_that_insert_or_delete_nothing_change_no_count(client):
    users = [client.create_user(f'user{n}@example.com')['id'] for n in range(3)]
    group = client.create_group('Team', users[:2])['id']
    before = counted()
    client.put(f'/Users/{users[0]}', user_body('user0@example.com', title='Boss'), status=200)
    client.put(f'/Users/{users[0]}', user_body('user0@example.com', title='Boss'), status=200)   # no change
    client.patch(f'/Users/{users[1]}', [{'op': 'replace', 'path': 'active', 'value': False}], status=200)
    client.patch(f'/Groups/{group}', [{'op': 'add', 'path': 'members', 'value': [{'value': users[2]}]},
                                      {'op': 'replace', 'path': 'displayName', 'value': 'Crew'}])
    client.put(f'/Groups/{group}', {'schemas': [GROUP_SCHEMA], 'displayName': 'Crew', 'members': []}, status=200)
    assert counted() == before
    assert_counted()


def test_refused_writes_change_no_count(client):
    ann = client.create_user('ann@example.com')['id']
    client.create_group('Team', [ann])
    before, rows = counted(), store_rows()
    assert_scim_error(client.post('/Users', user_body('ANN@example.com')), 409, 'uniqueness')
    assert_scim_error(client.post('/Groups', {'schemas': [GROUP_SCHEMA], 'displayName': 'team'}), 409, 'uniqueness')
    assert_scim_error(client.post('/Groups', {'schemas': [GROUP_SCHEMA], 'displayName': 'Other',
                                              'members': [{'value': ann}, {'value': 'nobody'}]}), 400)
    assert_scim_error(client.delete(f'/Users/{ann}', headers={'If-Match': 'W/"7"'}), 412)
    assert_scim_error(client.delete('/Users/nobody'), 404)
    results = bulk(client, [post_user('a', 'ann@EXAMPLE.com'), post_group('g', 'Other', ['nobody']),
                            post_group('t', 'TEAM')])
    assert [result['status'] for result in results] == ['409', '400', '409']
    assert counted() == before and store_rows() == rows
    assert_counted()


def test_a_bulk_counts_what_it_made_and_not_what_it_undid(client):
    results = bulk(client, [post_user('a', 'ann@example.com'), post_user('b', 'ann@example.com'),
                            post_group('g', 'Team', ['bulkId:a', 'nobody']), post_group('h', 'Crew', ['bulkId:a']),
                            {'method': 'DELETE', 'path': '/Users/nobody'}])
    assert [result['status'] for result in results] == ['201', '409', '400', '201', '404']
    assert counted() == (1, 1, 1, 1)
    results = bulk(client, [post_user('c', 'cat@example.com'), post_user('d', 'cat@example.com'),
                            post_user('e', 'eve@example.com')], failOnErrors=1)
    assert [result['status'] for result in results] == ['201', '409']
    assert counted() == (2, 2, 1, 1)
    assert_counted()


def test_bulks_making_users_and_groups_in_opposite_orders_at_once_both_succeed(app, client):
    """Two bulk requests at once, one making a user then a group, the other a group
    then a user, with a few other writes between (all in one slice): no row either
    writes is the other's, so neither may fail for the other. On PostgreSQL, whose
    writers run at once, the count rows both change must not deadlock them."""
    fillers = {side: client.create_user(f'filler-{side}@example.com')['id'] for side in 'ab'}

    def retitled(side):
        return [{'method': 'PATCH', 'path': f'/Users/{fillers[side]}', 'data': {
            'schemas': [PATCH_SCHEMA], 'Operations': [{'op': 'replace', 'path': 'title', 'value': f'title {n}'}]}}
            for n in range(5)]

    def send(side, operations, answers, start):
        start.wait()
        answers[side] = bulk(ScimClient(app), operations)
    for turn in range(3):
        requests = {'a': [post_user('u', f'ann{turn}@example.com'), *retitled('a'), post_group('g', f'Team {turn}')],
                    'b': [post_group('g', f'Crew {turn}'), *retitled('b'), post_user('u', f'bob{turn}@example.com')]}
        answers, start = {}, threading.Barrier(2)
        threads = [threading.Thread(target=send, args=(side, operations, answers, start))
                   for side, operations in requests.items()]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        for side in requests:
            assert [result['status'] for result in answers[side]] == ['201'] + ['200'] * 5 + ['201'], (turn, side, [
                result['response']['detail'] for result in answers[side] if 'response' in result])
    assert counted() == (8, 8, 6, 6)
    assert_counted()


def test_each_seat_counts_its_own_and_a_reset_empties_its_counts_alone(make_app):
    app = make_app(seats=2)
    clients = {0: ScimClient(app), **{n: seat_client(app, token) for n, token in seat_tokens().items()}}
    for seat, client in clients.items():
        ids = [client.create_user(f'user{n}@example.com')['id'] for n in range(seat + 2)]
        client.create_group('Team', ids)
        client.delete(f'/Users/{ids[0]}', status=204)
    assert [counted(seat) for seat in clients] == [(1, 3, 1, 1), (2, 4, 1, 1), (3, 5, 1, 1)]
    assert_counted(1, 2)
    store.reset_seat(1)
    assert [counted(seat)[::2] for seat in clients] == [(1, 1), (0, 0), (3, 1)]
    assert changes(store.User, 1) > 4 and changes(store.Group, 1) > 1   # the reset's deletes are changes too
    assert_counted(1, 2)
    assert clients[1].get('/Users?count=0', status=200).json['totalResults'] == 0
    clients[1].create_user('user0@example.com')
    assert counted(1)[::2] == (1, 0)
    assert_counted(1, 2)


def test_sample_data_is_counted(make_app):
    app = make_app(seats=1, sample_users=12)
    assert_counted(1)
    for seat, client in ((0, ScimClient(app)), (1, seat_client(app, seat_tokens()[1]))):
        users = client.get('/Users?count=0', status=200).json['totalResults']
        groups = client.get('/Groups?count=0', status=200).json['totalResults']
        assert users == 12 and groups > 0
        assert counted(seat)[::2] == (users, groups)


def test_writes_made_beside_the_server_are_counted(client, database_url):
    """A tool's INSERT or DELETE in SQL: the triggers count it, the server's next answer holds it."""
    ids = [client.create_user(f'user{n}@example.com')['id'] for n in range(4)]
    run_sql(database_url, ('DELETE FROM users WHERE id IN (?, ?)', (ids[0], ids[1])))
    assert counted()[:2] == (2, 6)
    assert client.get('/Users?count=0', status=200).json['totalResults'] == 2
    run_sql(database_url, (
        'INSERT INTO users (id, seat, user_name, user_name_key, resource, version, created, last_modified) '
        'VALUES (?, 0, ?, ?, ?, 1, ?, ?)', ('tool-made', 'tool@example.com', 'tool@example.com',
                                            '{"schemas":["' + USER_SCHEMA + '"],"userName":"tool@example.com"}',
                                            '2030-01-01T00:00:00.000000Z', '2030-01-01T00:00:00.000000Z')))
    listing = client.get('/Users?count=10', status=200).json
    assert listing['totalResults'] == 3
    assert [user['id'] for user in listing['Resources']] == ids[2:] + ['tool-made']
    assert_counted()


# ---------------------------------------------------------------------------
# totalResults of a whole collection
# ---------------------------------------------------------------------------

@pytest.mark.parametrize('path', ['/Users?count=0', '/Users', '/Users?startIndex=50&count=2'])
def test_total_results_of_every_user_is_the_real_number(client, path):
    ids = [client.create_user(f'user{n}@example.com')['id'] for n in range(7)]
    assert client.get(path, status=200).json['totalResults'] == 7
    for user_id in ids[:3]:
        client.delete(f'/Users/{user_id}', status=204)
    assert client.get(path, status=200).json['totalResults'] == 4
    client.create_user('late@example.com')
    assert client.get(path, status=200).json['totalResults'] == 5
    assert_counted()


def test_total_results_of_every_group_is_the_real_number(client):
    for n in range(4):
        client.create_group(f'Group {n}')
    group = client.get('/Groups?count=1', status=200).json['Resources'][0]
    client.delete(f'/Groups/{group["id"]}', status=204)
    assert client.get('/Groups?count=0', status=200).json['totalResults'] == 3
    assert client.get('/Groups?excludedAttributes=members&count=0', status=200).json['totalResults'] == 3


# ---------------------------------------------------------------------------
# Upgrades: a database made before the triggers is counted when it opens
# ---------------------------------------------------------------------------

def drop_counting(database_url):
    """Make a current database what schema version 7 was: no triggers, no resource_count."""
    if ON_POSTGRESQL:
        run_sql(database_url, ('DROP TRIGGER users_counted ON users', ()),
                ('DROP TRIGGER groups_counted ON "groups"', ()), ('DROP FUNCTION scimlite_count()', ()))
    else:
        run_sql(database_url, *[(f'DROP TRIGGER {name}', ()) for name in store.COUNT_TRIGGER_NAMES['sqlite']])
    run_sql(database_url, ('DROP TABLE resource_count', ()), ('UPDATE scimlite_schema SET version = 7', ()))


def test_a_version_7_database_is_counted_when_it_opens_and_counts_on(make_app, database_url):
    app = make_app(seats=1)
    clients = {0: ScimClient(app), 1: seat_client(app, seat_tokens()[1])}
    made = {seat: [client.create_user(f'user{n}@example.com')['id'] for n in range(3 + seat)]
            for seat, client in clients.items()}
    clients[1].create_group('Team', made[1])
    app.close()
    drop_counting(database_url)
    # Written as a version 7 scimlite would: nothing counts it.
    run_sql(database_url, ('DELETE FROM users WHERE id = ?', (made[0][0],)))
    assert 'resource_count' not in {name for (name,) in run_sql(database_url, (
        "SELECT name FROM sqlite_master WHERE type = 'table'" if not ON_POSTGRESQL else
        'SELECT tablename FROM pg_tables WHERE schemaname = current_schema()', ()))}

    app = make_app(seats=1)
    assert run_sql(database_url, ('SELECT version FROM scimlite_schema', ())) == [(store.SCHEMA_VERSION,)]
    assert counted(0)[::2] == (2, 0) and counted(1)[::2] == (4, 1)
    assert_counted(1)
    clients = {0: ScimClient(app), 1: seat_client(app, seat_tokens()[1])}
    assert clients[0].get('/Users?count=0', status=200).json['totalResults'] == 2
    assert clients[1].get('/Users?count=0', status=200).json['totalResults'] == 4
    # The triggers are there: writes count on, in each seat.
    clients[1].create_user('more@example.com')
    clients[0].delete(f'/Users/{made[0][1]}', status=204)
    clients[1].create_group('Crew')
    assert counted(0)[::2] == (1, 0) and counted(1)[::2] == (5, 2)
    assert clients[1].get('/Users?count=0', status=200).json['totalResults'] == 5
    assert_counted(1)


def test_servers_starting_at_once_on_a_version_7_database_count_it_once(make_app, database_url):
    """One upgrades and counts, the other waits and finds the triggers made: each
    count is right, and each insert is counted once."""
    app = make_app(seats=1)
    client = ScimClient(app)
    for n in range(3):
        client.create_user(f'user{n}@example.com')
    client.create_group('Team')
    app.close()
    drop_counting(database_url)
    servers = start_at_once(database_url, flags=('--seats', '1'))
    try:
        # Every seat has both rows, made empty where it has nothing (store._count_rows_for).
        assert run_sql(database_url, ('SELECT seat, kind, total FROM resource_count ORDER BY seat, kind', ())) == [
            (0, 'groups', 1), (0, 'users', 3), (1, 'groups', 0), (1, 'users', 0)]
        assert call(servers, 'POST', '/Users', user_body('more@example.com'), via=1)[0] == 201
        status, listing = call(servers, 'GET', '/Users?count=0')
        assert (status, listing['totalResults']) == (200, 4)
    finally:
        servers.stop()
    assert run_sql(database_url, ('SELECT seat, kind, total FROM resource_count ORDER BY seat, kind', ())) == [
        (0, 'groups', 1), (0, 'users', 4), (1, 'groups', 0), (1, 'users', 0)]
    assert run_sql(database_url, ('SELECT version FROM scimlite_schema', ())) == [(store.SCHEMA_VERSION,)]


def test_a_missing_trigger_is_made_again_and_everything_recounted(make_app, database_url):
    app = make_app()
    client = ScimClient(app)
    ids = [client.create_user(f'user{n}@example.com')['id'] for n in range(4)]
    client.create_group('Team', ids)
    app.close()
    if ON_POSTGRESQL:
        run_sql(database_url, ('DROP TRIGGER groups_counted ON "groups"', ()))
    else:
        run_sql(database_url, ('DROP TRIGGER users_counted_delete', ()))
    run_sql(database_url, ('UPDATE resource_count SET total = 99', ()),
            ('DELETE FROM users WHERE id = ?', (ids[0],)))
    client = ScimClient(make_app())
    assert counted()[::2] == (3, 1)
    assert_counted()
    client.delete(f'/Users/{ids[1]}', status=204)
    client.delete(f'/Groups/{client.get("/Groups").json["Resources"][0]["id"]}', status=204)
    assert counted()[::2] == (2, 0)
    assert client.get('/Users?count=0', status=200).json['totalResults'] == 2


def test_a_version_5_database_is_counted_when_it_opens(make_app, database_url):
    make_old_database(database_url, version=5)
    client = ScimClient(make_app())
    assert counted()[::2] == (3, 1)
    assert client.get('/Users?count=0', status=200).json['totalResults'] == 3
    client.create_user('new@example.com')
    client.delete('/Users/old-user-0', status=204)
    assert counted()[::2] == (3, 1)
    assert_counted()


# ---------------------------------------------------------------------------
# Keyset paging of whole collections
# ---------------------------------------------------------------------------

def page(client, start, count=3, query=''):
    return client.get(f'/Users?startIndex={start}&count={count}{query}', status=200).json


def ids(listing):
    return [user['id'] for user in listing.get('Resources', [])]


def walk(client, count=3, query=''):
    """The ids of every page of `count`, asked for in turn by startIndex."""
    walked, start = [], 1
    while True:
        listing = page(client, start, count, query)
        assert listing['startIndex'] == start and listing['itemsPerPage'] == len(ids(listing))
        if not ids(listing):
            return walked
        walked += ids(listing)
        start += count


@pytest.fixture
def ten(client):
    """Ten users, ids in creation order (the paging order)."""
    return [client.create_user(f'user{n}@example.com')['id'] for n in range(10)]


def test_walking_the_pages_gives_every_user_once_in_order(client, ten):
    assert ids(page(client, 1, 100)) == ten
    for count in (1, 3, 4, 10):
        assert walk(client, count) == ten, count
        assert walk(client, count) == ten, count   # again, every page after the first from where it ended
    _, now = store.count_of(store.User)
    assert store.PAGE_ANCHORS.nearest(store.INSTRUCTOR, store.User, now, 4)[0] == 4   # known: not OFFSET from the start


def test_pages_at_any_depth_start_from_rows_whose_place_is_known_and_answer_as_offset_would(client):
    """Pages asked for out of order, at depths no page started at before: each is the
    slice of the paging order that startIndex names, and once a page near it has been
    answered, it starts from a row of that page, not by OFFSET from the first user."""
    everyone = [client.create_user(f'user{n:02d}@example.com')['id'] for n in range(60)]
    starts = [31, 7, 52, 33, 8, 2, 56, 30, 45, 9, 34, 1, 57, 44, 12, 31]
    for start in starts * 2:
        assert ids(page(client, start, 5)) == everyone[start - 1:start + 4], start
    with count_queries() as counter:
        assert ids(page(client, 40, 5)) == everyone[39:44]   # from 38, where 34's page ended
    run = [query.msg[0] for query in counter.get_queries() if query.thread == threading.get_ident()]
    assert any('"created" >=' in statement for statement in run), run   # from a known row
    _, now = store.count_of(store.User)
    assert store.PAGE_ANCHORS.nearest(store.INSTRUCTOR, store.User, now, 40)[0] == 40
    client.delete(f'/Users/{everyone[0]}', status=204)   # every row moves up one place
    for start in starts:
        assert ids(page(client, start, 5)) == everyone[start:start + 5], start


@pytest.mark.parametrize('deleted', [0, 1, 2, 3, 5, 9])
def test_a_user_deleted_between_pages_gives_the_next_page_by_position(client, ten, deleted):
    """startIndex counts the users there are now (RFC 7644 §3.4.2.4): after a delete
    the next page starts at that position of the new order, not after the row that
    ended the previous page."""
    assert ids(page(client, 1)) == ten[:3]
    client.delete(f'/Users/{ten[deleted]}', status=204)
    now = [user_id for user_id in ten if user_id != ten[deleted]]
    second = page(client, 4)
    assert ids(second) == now[3:6]
    assert second['totalResults'] == 9
    assert ids(page(client, 7)) == now[6:9]
    assert walk(client) == now


def test_a_user_created_between_pages_is_on_a_later_page(client, ten):
    assert ids(page(client, 1)) == ten[:3]
    assert ids(page(client, 4)) == ten[3:6]
    late = client.create_user('late@example.com')['id']
    assert page(client, 7)['totalResults'] == 11
    assert ids(page(client, 7)) == ten[6:9]
    assert ids(page(client, 10)) == [ten[9], late]
    assert walk(client) == ten + [late]


def test_a_delete_and_a_create_between_pages_leave_the_total_but_not_the_order(client, ten):
    """As many users as before, but not the same ones: the next page is by position."""
    assert ids(page(client, 1)) == ten[:3]
    client.delete(f'/Users/{ten[1]}', status=204)
    late = client.create_user('late@example.com')['id']
    now = [user_id for user_id in ten if user_id != ten[1]] + [late]
    second = page(client, 4)
    assert second['totalResults'] == 10
    assert ids(second) == now[3:6]
    assert walk(client) == now


def test_a_delete_made_beside_the_server_between_pages_is_seen(client, ten, database_url):
    assert ids(page(client, 1)) == ten[:3]
    run_sql(database_url, ('DELETE FROM users WHERE id = ?', (ten[0],)))
    assert ids(page(client, 4)) == ten[4:7]


def test_a_page_asked_for_twice_is_the_same(client, ten):
    assert ids(page(client, 1)) == ten[:3]
    assert ids(page(client, 4)) == ten[3:6]
    assert ids(page(client, 4)) == ten[3:6]
    assert ids(page(client, 1)) == ten[:3]
    assert ids(page(client, 4, 5)) == ten[3:8]
    assert ids(page(client, 2, 2)) == ten[1:3]


def test_each_seat_pages_its_own_users(make_app):
    app = make_app(seats=1)
    clients = {0: ScimClient(app), 1: seat_client(app, seat_tokens()[1])}
    made = {seat: [] for seat in clients}
    for n in range(7):   # in turns: the seats' rows interleave in time
        for seat, client in clients.items():
            made[seat].append(client.create_user(f'user{n}@example.com')['id'])
    for seat, client in clients.items():
        assert walk(client) == made[seat]
    for start in (1, 4, 7):   # one seat's pages between the other's
        for seat, client in clients.items():
            assert ids(page(client, start)) == made[seat][start - 1:start + 2]
    clients[1].delete(f'/Users/{made[1][0]}', status=204)
    assert ids(page(clients[0], 4)) == made[0][3:6]
    assert ids(page(clients[1], 4)) == made[1][4:7]


def test_filtered_and_sorted_pages_are_by_position_too(client, ten):
    client.patch(f'/Users/{ten[4]}', [{'op': 'replace', 'path': 'active', 'value': False}], status=200)
    active = '&filter=active%20eq%20true'
    now = [user_id for user_id in ten if user_id != ten[4]]
    assert walk(client, 3, active) == now
    assert walk(client, 3, '&sortBy=userName&sortOrder=descending') == ten[::-1]
    assert ids(page(client, 1, 3, active)) == now[:3]
    client.delete(f'/Users/{now[0]}', status=204)
    assert ids(page(client, 4, 3, active)) == now[4:7]


# ---------------------------------------------------------------------------
# excludedAttributes=groups
# ---------------------------------------------------------------------------

@pytest.fixture
def members(client, ten):
    """The ten users, the first six in groups (some in two)."""
    client.create_group('Team', ten[:4])
    client.create_group('Crew', ten[2:6])
    return ten


def without(document, key):
    return {name: value for name, value in document.items() if name != key}


@pytest.mark.parametrize('excluded', ['groups', 'Groups', 'GROUPS,groups'])
def test_pages_without_groups_are_the_pages_with_them_less_the_key(client, members, excluded):
    for count, start in ((3, 1), (3, 4), (3, 10), (100, 1), (4, 3)):
        whole = page(client, start, count)
        lean = page(client, start, count, f'&excludedAttributes={excluded}')
        assert without(lean, 'Resources') == without(whole, 'Resources')
        assert lean['Resources'] == [without(user, 'groups') for user in whole['Resources']]
        # The stored text less groups, not the resource taken apart and put together again: in its order.
        assert [list(user) for user in lean['Resources']] == [list(without(user, 'groups'))
                                                              for user in whole['Resources']]
        assert all('groups' not in user for user in lean['Resources'])
    assert any(user['groups'] for user in page(client, 1, 100)['Resources'])
    assert walk(client, 3, f'&excludedAttributes={excluded}') == members


def test_a_user_in_groups_shows_none_without_groups(client, members):
    user = client.get(f'/Users/{members[2]}', status=200).json
    assert [group['display'] for group in user['groups']] == ['Crew', 'Team']
    lean = client.get(f'/Users/{members[2]}?excludedAttributes=groups', status=200).json
    assert lean == without(user, 'groups')
    assert list(lean) == list(without(user, 'groups'))


def test_excluding_a_group_sub_attribute_keeps_the_groups(client, members):
    whole = page(client, 1, 100)
    lean = page(client, 1, 100, '&excludedAttributes=groups.display')
    assert lean['Resources'] == [
        {**user, 'groups': [without(group, 'display') for group in user['groups']]} for user in whole['Resources']]


def test_excluding_groups_and_another_attribute_drops_both(client, members):
    client.put(f'/Users/{members[0]}', user_body('user0@example.com', title='Boss'), status=200)
    whole = page(client, 1, 100)
    lean = page(client, 1, 100, '&excludedAttributes=groups,title')
    assert lean['Resources'] == [without(without(user, 'groups'), 'title') for user in whole['Resources']]


def test_a_page_without_groups_reads_no_link_row(client, members):
    with count_queries() as counter:
        client.get('/Users?startIndex=2&count=5&excludedAttributes=groups', status=200)
    statements = [query.msg[0] for query in counter.get_queries() if query.thread == threading.get_ident()]
    assert statements
    assert not any('"link"' in statement for statement in statements), statements
    with count_queries() as counter:
        client.get('/Users?startIndex=2&count=5', status=200)
    assert any('"link"' in query.msg[0] for query in counter.get_queries())   # the check can see one


def test_a_page_without_groups_of_users_in_no_group_is_the_same(client, ten):
    assert page(client, 1, 100, '&excludedAttributes=groups')['Resources'] == [
        without(user, 'groups') for user in page(client, 1, 100)['Resources']]

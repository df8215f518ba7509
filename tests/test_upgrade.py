"""Upgrades: a database an older scimlite made is brought up to date in place when
a newer one starts on it, and one a newer scimlite made is refused in one line."""

import json
import re
import time
from contextlib import closing
from pathlib import Path

import pytest
import webtest

import store
from conftest import (BASE, ON_POSTGRESQL, PATCH_SCHEMA, TOKEN, driver_connection, empty_postgresql_database,
                      list_tables_sql)
from serverprocess import ServerProcess, run_server
import test_concurrency
from test_concurrency import Servers, call

# schema.sql as older scimlites shipped it, by schema version.
OLD_SCHEMAS = {version: Path(__file__).with_name('data') / f'schema_v{version}.sql' for version in (1, 3, 4, 5, 6)}
STAMP = '2025-01-02T03:04:05.000000Z'
USER_SCHEMA = 'urn:ietf:params:scim:schemas:core:2.0:User'
GROUP_SCHEMA = 'urn:ietf:params:scim:schemas:core:2.0:Group'


def run_sql(database_url, statements):
    """[(sql with ? placeholders, parameters)] on a connection of the driver's own."""
    connection, placeholder = driver_connection(database_url)
    with closing(connection):
        cursor = connection.cursor()
        for sql, parameters in statements:
            cursor.execute(sql.replace('?', placeholder), parameters)
        return cursor.fetchall() if cursor.description else None


def make_old_database(database_url, version=1, groups=()):
    """The tables of schema `version` (1, 3, 4, 5 or 6), and rows written the way that scimlite
    wrote them: three users, a group of two of them, and `groups`, each
    (id, displayName, created, the numbers of the users who are its members)."""
    if ON_POSTGRESQL:
        empty_postgresql_database(database_url, drop=True)
    text = re.sub(r'--[^\n]*', '', OLD_SCHEMAS[version].read_text(encoding='utf-8'))
    statements = [(statement, ()) for statement in text.split(';') if statement.strip()]
    if version > 1:
        statements.append(('INSERT INTO scimlite_schema (version) VALUES (?)', (version,)))
    for n in range(3):
        user_name = f'Old{n}@Example.com'
        resource = {'schemas': [USER_SCHEMA], 'userName': user_name, 'title': f'Title {n}', 'active': True}
        statements.append((
            'INSERT INTO users (id, user_name, user_name_key, external_id, display_name, active, resource, '
            'version, created, last_modified) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
            (f'old-user-{n}', user_name, user_name.lower(), f'ext-{n}', None, True,
             json.dumps(resource, separators=(',', ':')), 3, STAMP, STAMP)))
    for group_id, display_name, created, members in (('old-group', 'Old Group', STAMP, (0, 2)), *groups):
        statements.append((
            'INSERT INTO "groups" (id, display_name, display_name_key, external_id, resource, version, created, '
            'last_modified) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
            (group_id, display_name, display_name.lower(), None,
             json.dumps({'schemas': [GROUP_SCHEMA], 'displayName': display_name}), 2, created, created)))
        statements += [('INSERT INTO link (group_id, user_id) VALUES (?, ?)', (group_id, f'old-user-{n}'))
                       for n in members]
    run_sql(database_url, statements)


def start_at_once(database_url, count=2, flags=()):
    """`count` server processes started at once on one database (one upgrades it, the
    others wait), once all of them listen."""
    starting = [run_server('--port', '0', '--token', test_concurrency.TOKEN, '--database', database_url, *flags)
                for _ in range(count)]
    servers = Servers(database_url, 0)
    try:
        servers.processes = [ServerProcess.attach(process) for process in starting]
    finally:
        for process in starting:   # one that did not start (attach stops only its own)
            if process.poll() is None and not any(server.process is process for server in servers.processes):
                process.kill()
                process.wait()
    return servers


def tables(database_url):
    return {row[0] for row in run_sql(database_url, [(list_tables_sql(database_url), ())])}


def test_a_database_made_by_schema_version_1_is_upgraded_in_place_and_keeps_every_row(database_url):
    make_old_database(database_url)
    assert 'scimlite_schema' not in tables(database_url)
    # Two processes starting at once on the old database: one upgrades, the other waits.
    servers = start_at_once(database_url)
    try:
        assert run_sql(database_url, [('SELECT version FROM scimlite_schema', ())]) == [(store.SCHEMA_VERSION,)]
        status, listing = call(servers, 'GET', '/Users?sortBy=userName')
        assert status == 200
        assert [(user['id'], user['userName'], user['title'], user['meta']['version'])
                for user in listing['Resources']] == [
            (f'old-user-{n}', f'Old{n}@Example.com', f'Title {n}', 'W/"3"') for n in range(3)]
        status, group = call(servers, 'GET', '/Groups/old-group', via=1)
        assert (status, sorted(member['value'] for member in group['members'])) == (200, ['old-user-0', 'old-user-2'])
        status, found = call(servers, 'GET', '/Users?filter=userName%20eq%20%22old1@example.com%22', via=1)
        assert [user['id'] for user in found['Resources']] == ['old-user-1']
        # The old rows take writes, and keep their versions counting.
        status, patched = call(servers, 'PATCH', '/Users/old-user-1', {
            'schemas': ['urn:ietf:params:scim:api:messages:2.0:PatchOp'],
            'Operations': [{'op': 'replace', 'value': {'active': False}}]})
        assert (status, patched['active'], patched['meta']['version']) == (200, False, 'W/"4"')
        status, taken = call(servers, 'POST', '/Users', {'schemas': [USER_SCHEMA], 'userName': 'OLD2@example.com'})
        assert (status, taken['scimType']) == (409, 'uniqueness')
        assert call(servers, 'POST', '/Users', {'schemas': [USER_SCHEMA], 'userName': 'new@example.com'},
                    via=1)[0] == 201
        # Version 3's table: both servers record their exchanges for the dashboard in it.
        deadline = time.monotonic() + 10
        counting = [('SELECT COUNT(*) FROM request_log', ())]
        while run_sql(database_url, counting) != [(6,)] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert run_sql(database_url, [('SELECT COUNT(*) FROM request_log', ())]) == [(6,)]
    finally:
        servers.stop()
    # Starting again on the upgraded database changes nothing.
    server = ServerProcess(database=database_url, token=TOKEN)
    try:
        assert run_sql(database_url, [('SELECT version FROM scimlite_schema', ())]) == [(store.SCHEMA_VERSION,)]
        assert run_sql(database_url, [('SELECT COUNT(*) FROM users', ())]) == [(4,)]
        assert run_sql(database_url, [('SELECT COUNT(*) FROM link', ())]) == [(2,)]
    finally:
        server.stop()


def test_a_database_a_newer_scimlite_made_is_refused_in_one_line(database_url):
    make_old_database(database_url)
    server = ServerProcess(database=database_url, token=TOKEN)
    server.stop()
    run_sql(database_url, [('UPDATE scimlite_schema SET version = ?', (store.SCHEMA_VERSION + 1,))])
    try:
        process = run_server('--port', '0', '--token', TOKEN, '--database', database_url)
        output, _ = process.communicate(timeout=30)
        assert process.returncode != 0
        lines = [line for line in output.splitlines() if line.strip()]
        assert len(lines) == 1 and 'made by a newer scimlite' in lines[0], output
        assert run_sql(database_url, [('SELECT COUNT(*) FROM users', ())]) == [(3,)]
        assert run_sql(database_url, [('SELECT version FROM scimlite_schema', ())]) == [(store.SCHEMA_VERSION + 1,)]
    finally:   # the next test may get this database (PostgreSQL)
        run_sql(database_url, [('UPDATE scimlite_schema SET version = ?', (store.SCHEMA_VERSION,))])


# Groups an older scimlite let share a name, ignoring case: (id, displayName,
# created, the numbers of the users who are its members).
SHARED_NAMES = (
    ('sales-z', 'Sales', '2025-01-01T00:00:00.000000Z', (0,)),   # the oldest "sales"
    ('sales-a', 'SALES', STAMP, (1,)),
    ('sales-b', 'sales', STAMP, (0, 1)),
    ('ops-b', 'Ops', STAMP, ()),
    ('ops-a', 'ops', STAMP, (2,)),   # as old as ops-b: the smaller id comes first
)
GROUP_ROWS = ('SELECT id, display_name, display_name_key, external_id, resource, version, created, last_modified '
              'FROM "groups" ORDER BY id', ())
LINK_ROWS = ('SELECT group_id, user_id FROM link ORDER BY group_id, user_id', ())


def group_body(display_name, members=()):
    return {'schemas': [GROUP_SCHEMA], 'displayName': display_name,
            'members': [{'value': f'old-user-{n}'} for n in members]}


def rename(display_name):
    return {'schemas': [PATCH_SCHEMA], 'Operations': [{'op': 'replace', 'path': 'displayName', 'value': display_name}]}


def read_group(servers, group_id, via=0):
    status, group = call(servers, 'GET', f'/Groups/{group_id}', via=via)
    assert status == 200, group
    return group['displayName'], sorted(member['value'] for member in group['members'])


@pytest.mark.parametrize('version', [1, 3])
def test_groups_an_older_scimlite_let_share_a_name_are_kept_and_keep_working(database_url, version):
    """Upgrading renames and drops nothing; each group that shares its name keeps
    it through PUTs, PATCHes and case changes; no new group may take the name, nor
    may a group that shared it take it back once renamed; the name is free only
    when no group holds it any more."""
    make_old_database(database_url, version, SHARED_NAMES)
    groups_before, links_before = run_sql(database_url, [GROUP_ROWS]), run_sql(database_url, [LINK_ROWS])
    servers = start_at_once(database_url)
    try:
        assert run_sql(database_url, [('SELECT version FROM scimlite_schema', ())]) == [(store.SCHEMA_VERSION,)]
        assert run_sql(database_url, [GROUP_ROWS]) == groups_before
        assert run_sql(database_url, [LINK_ROWS]) == links_before
        # The oldest group of each name (by created, then id) holds it in the unique index.
        assert run_sql(database_url, [('SELECT id, display_name_unique FROM "groups" '
                                       'WHERE display_name_unique IS NOT NULL ORDER BY id', ())]) == [
            ('old-group', 'old group'), ('ops-a', 'ops'), ('sales-z', 'sales')]
        for n, (group_id, display_name, _, members) in enumerate(SHARED_NAMES):
            assert read_group(servers, group_id, via=n) == (display_name, [f'old-user-{m}' for m in members])
        status, found = call(servers, 'GET', '/Groups?filter=displayName%20eq%20%22sALES%22', via=1)
        assert sorted(group['id'] for group in found['Resources']) == ['sales-a', 'sales-b', 'sales-z']

        # Each keeps working: a PUT keeping its name (with other members), a member PATCH.
        for n, (group_id, display_name, _, members) in enumerate(SHARED_NAMES):
            status, put = call(servers, 'PUT', f'/Groups/{group_id}', group_body(display_name, (0, 1, 2)), via=n)
            assert (status, put['displayName'], put['meta']['version']) == (200, display_name, 'W/"3"'), put
            status, _ = call(servers, 'PATCH', f'/Groups/{group_id}', {'schemas': [PATCH_SCHEMA], 'Operations': [
                {'op': 'replace', 'path': 'members', 'value': group_body('', members)['members']}]}, via=n + 1)
            assert status == 204
            assert read_group(servers, group_id) == (display_name, [f'old-user-{m}' for m in members])
        # ... and a change of its name's case.
        assert call(servers, 'PATCH', '/Groups/sales-a', rename('Sales'))[0] == 204
        assert call(servers, 'PUT', '/Groups/ops-b', group_body('OPS'), via=1)[0] == 200
        assert (read_group(servers, 'sales-a')[0], read_group(servers, 'ops-b')[0]) == ('Sales', 'OPS')

        # No new group of a name any of them holds, in any case.
        for n, taken in enumerate(('sales', 'SALES', 'Ops', 'old GROUP')):
            status, refused = call(servers, 'POST', '/Groups', group_body(taken), via=n)
            assert (status, refused['scimType']) == (409, 'uniqueness'), refused
        # A group that shared a name and was renamed holds its new name, and cannot go back.
        assert call(servers, 'PATCH', '/Groups/sales-b', rename('Marketing'))[0] == 204
        assert call(servers, 'POST', '/Groups', group_body('MARKETING'), via=1)[0] == 409
        for via, method, body in ((0, 'PATCH', rename('sales')), (1, 'PUT', group_body('Sales', (0, 1)))):
            status, refused = call(servers, method, '/Groups/sales-b', body, via=via)
            assert (status, refused['scimType']) == (409, 'uniqueness'), refused
        assert read_group(servers, 'sales-b') == ('Marketing', ['old-user-0', 'old-user-1'])
        # The holder gone, the name stays taken while another group keeps it; then it is free.
        assert call(servers, 'DELETE', '/Groups/sales-z')[0] == 204
        assert call(servers, 'POST', '/Groups', group_body('sales'), via=1)[0] == 409
        assert call(servers, 'PATCH', '/Groups/ops-a', rename('Sales'))[0] == 409
        assert call(servers, 'DELETE', '/Groups/sales-a', via=1)[0] == 204
        status, created = call(servers, 'POST', '/Groups', group_body('sales'))
        assert (status, created['displayName']) == (201, 'sales')
        status, listing = call(servers, 'GET', '/Groups?excludedAttributes=members&count=100', via=1)
        assert sorted(group['displayName'] for group in listing['Resources']) == [
            'Marketing', 'OPS', 'Old Group', 'ops', 'sales']
    finally:
        servers.stop()


@pytest.mark.parametrize('version', [1, 4])
def test_an_older_database_takes_an_unassigned_active_after_the_upgrade(database_url, version):
    """Schema version 5: users.active may be NULL, so that a PATCH `remove` of active
    leaves it unassigned (RFC 7644 §3.5.2.2) on a database an older scimlite made,
    where the column was NOT NULL, with every row and link kept."""
    make_old_database(database_url, version=version)
    servers = start_at_once(database_url)
    try:
        status, patched = call(servers, 'PATCH', '/Users/old-user-1', {
            'schemas': ['urn:ietf:params:scim:api:messages:2.0:PatchOp'],
            'Operations': [{'op': 'remove', 'path': 'active'}]})
        assert status == 200 and 'active' not in patched, patched
        status, read = call(servers, 'GET', '/Users/old-user-1', via=1)
        assert status == 200 and 'active' not in read and read['title'] == 'Title 1'
        status, found = call(servers, 'GET', '/Users?filter=not%20(active%20pr)', via=1)
        assert [user['id'] for user in found['Resources']] == ['old-user-1']
    finally:
        servers.stop()
    assert run_sql(database_url, [('SELECT version FROM scimlite_schema', ())]) == [(store.SCHEMA_VERSION,)]
    assert run_sql(database_url, [('SELECT id FROM users WHERE active IS NULL', ())]) == [('old-user-1',)]
    assert run_sql(database_url, [('SELECT COUNT(*) FROM users', ())]) == [(3,)]
    assert run_sql(database_url, [('SELECT COUNT(*) FROM link', ())]) == [(2,)]
    if not ON_POSTGRESQL:
        assert run_sql(database_url, [('PRAGMA integrity_check', ())]) == [('ok',)]


@pytest.mark.skipif(ON_POSTGRESQL, reason="SQLite's CREATE statement, as other tools write it")
@pytest.mark.parametrize('definition', [
    '"active" BOOLEAN NOT NULL DEFAULT TRUE', 'active BOOLEAN NOT NULL', 'active INTEGER NOT NULL DEFAULT 1',
    'active BOOLEAN DEFAULT TRUE NOT NULL', '[active] boolean not null default 1'])
def test_version_5_takes_users_active_however_its_not_null_is_written(database_url, definition, make_app):
    """A database browser rewrites the CREATE statement: the upgrade still finds the
    NOT NULL to drop, and reads back that it took."""
    make_old_database(database_url, version=4)
    sql = run_sql(database_url, [("SELECT sql FROM sqlite_master WHERE name = 'users'", ())])[0][0]
    rewritten = re.sub(r'active\s+BOOLEAN\s+NOT NULL DEFAULT TRUE', definition, sql)
    assert rewritten != sql
    run_sql(database_url, [('PRAGMA writable_schema = ON', ()),
                           ("UPDATE sqlite_master SET sql = ? WHERE name = 'users'", (rewritten,)),
                           ('PRAGMA writable_schema = OFF', ())])
    client = webtest.TestApp(make_app())
    headers = {'Authorization': f'Bearer {TOKEN}'}
    response = client.patch_json(f'{BASE}/Users/old-user-1', {'schemas': [PATCH_SCHEMA], 'Operations': [
        {'op': 'remove', 'path': 'active'}]}, headers=headers)
    assert response.status_int == 200 and 'active' not in response.json
    assert run_sql(database_url, [('SELECT id FROM users WHERE active IS NULL', ())]) == [('old-user-1',)]


def test_a_version_5_database_takes_seats_and_keeps_every_row_in_the_servers_own_data(database_url):
    """Schema version 6: every row there was is the server's own data (seat 0), its
    names still unique there, and seats made by two servers starting at once on it
    agree; a seat's data starts empty, with the same names free."""
    make_old_database(database_url, version=5)
    run_sql(database_url, [(
        'INSERT INTO request_log (id, received, method, path, status, duration_ms, user_agent, request_headers, '
        'request_body, response_headers, response_body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
        ('0' * 20 + 'old', STAMP, 'GET', '/scim/v2/Users', 200, 1.5, None, '{}', '', '{}', ''))])
    servers = start_at_once(database_url, flags=('--seats', '2'))
    try:
        seats = run_sql(database_url, [('SELECT number, token FROM seat ORDER BY number', ())])
        assert [number for number, _ in seats] == [1, 2] and seats[0][1] != seats[1][1]
        user = {'schemas': [USER_SCHEMA], 'userName': 'OLD0@example.com'}
        assert call(servers, 'POST', '/Users', user)[0] == 409
        status, listing = call(servers, 'GET', '/Users?filter=userName%20sw%20%22old%22', via=1)
        assert (status, listing['totalResults']) == (200, 3)
        for via, (_, token) in enumerate(seats):
            status, empty = call(servers, 'GET', '/Users', via=via, token=token)
            assert (status, empty['totalResults']) == (200, 0)
            assert call(servers, 'GET', '/Users/old-user-1', via=via, token=token)[0] == 404
        status, created = call(servers, 'POST', '/Users', user, via=1, token=seats[0][1])
        assert status == 201, created
        assert call(servers, 'POST', '/Users', user, token=seats[0][1])[0] == 409
        status, group = call(servers, 'POST', '/Groups', {'schemas': [GROUP_SCHEMA], 'displayName': 'Old Group'},
                             token=seats[0][1])
        assert status == 201, group
        status, read = call(servers, 'GET', '/Groups/old-group')
        assert status == 200 and sorted(member['value'] for member in read['members']) == ['old-user-0',
                                                                                            'old-user-2']
    finally:
        servers.stop()
    assert run_sql(database_url, [('SELECT version FROM scimlite_schema', ())]) == [(store.SCHEMA_VERSION,)]
    assert run_sql(database_url, [('SELECT seat, COUNT(*) FROM users GROUP BY seat ORDER BY seat', ())]) == [
        (0, 3), (1, 1)]
    assert run_sql(database_url, [('SELECT seat FROM request_log WHERE id = ?', ('0' * 20 + 'old',))]) == [(0,)]
    if not ON_POSTGRESQL:
        assert run_sql(database_url, [('PRAGMA integrity_check', ())]) == [('ok',)]


# The userNames the trigram index searches, lower-cased: in users on SQLite (schema
# version 13), in the side table on PostgreSQL.
SEARCHED_USER_NAMES = {'sqlite': ('SELECT user_name_key FROM users WHERE search_row IS NOT NULL ORDER BY id', ()),
                       'postgresql': ('SELECT user_name FROM user_search ORDER BY user_id', ())}


def searched_user_names():
    return [row[0] for row in store.database.execute_sql(*SEARCHED_USER_NAMES[
        'sqlite' if store.is_sqlite() else 'postgresql'])]


def test_a_version_6_database_gets_its_search_indexes_built_with_the_progress_shown(database_url, capsys):
    """Schema version 7: the sort keys and the trigram index are built from every user
    there is, the progress on the console; searches and sorts then use them."""
    make_old_database(database_url, version=6)
    store.open_database(database_url)
    try:
        printed = capsys.readouterr().err
        assert 'building search index: 3 of 3 users' in printed and 'building search index: done' in printed
        assert store._trigram_index == ('fts5' if store.is_sqlite() else 'pg_trgm')
        assert searched_user_names() == ['old0@example.com', 'old1@example.com', 'old2@example.com']
        keys = store.User.select(store.User.title_key, store.User.sort_odd).order_by(store.User.id).tuples()
        assert list(keys) == [('title 0', False), ('title 1', False), ('title 2', False)]
        total, found = store.list_users(store.F.parse_filter('userName co "ld1@exa"'), 1, 10)
        assert (total, [user['id'] for user in found]) == (1, ['old-user-1'])
        total, found = store.list_users(None, 1, 10, sort=(store.F.AttrPath('title'), True))
        assert [user['id'] for user in found] == ['old-user-2', 'old-user-1', 'old-user-0']
    finally:
        store.close_database()
    assert run_sql(database_url, [('SELECT version FROM scimlite_schema', ())]) == [(store.SCHEMA_VERSION,)]


def test_two_servers_starting_at_once_on_a_version_6_database_build_the_search_indexes_once(database_url):
    make_old_database(database_url, version=6)
    servers = start_at_once(database_url)
    try:
        for via in (0, 1):
            status, listing = call(servers, 'GET', '/Users?filter=userName%20co%20%22ld2@%22', via=via)
            assert (status, [user['id'] for user in listing['Resources']]) == (200, ['old-user-2'])
            status, listing = call(servers, 'GET', '/Users?sortBy=title&sortOrder=descending', via=via)
            assert [user['id'] for user in listing['Resources']] == ['old-user-2', 'old-user-1', 'old-user-0']
    finally:
        servers.stop()
    assert run_sql(database_url, [SEARCHED_USER_NAMES[store.backend(database_url)]]) == [
        ('old0@example.com',), ('old1@example.com',), ('old2@example.com',)]


@pytest.mark.skipif(ON_POSTGRESQL, reason="SQLite's write lock (PostgreSQL waits on its advisory lock)")
def test_a_server_starting_while_another_upgrades_waits_for_it(database_url, monkeypatch, capsys):
    """Building version 7's indexes takes minutes at a million users, far past the
    start-up's usual wait for the file's write lock: a second server waits it out."""
    import sqlite3
    import threading
    make_old_database(database_url, version=6)
    upgrading = sqlite3.connect(database_url[len('sqlite:///'):], isolation_level=None, check_same_thread=False)
    upgrading.execute('PRAGMA journal_mode = wal')
    upgrading.execute('BEGIN IMMEDIATE')
    finish = threading.Timer(1.5, lambda: (upgrading.execute('ROLLBACK'), upgrading.close()))
    monkeypatch.setattr(store, 'BUSY_TIMEOUT_MS', 300)
    finish.start()
    try:
        store.open_database(database_url)
        assert 'waiting for another scimlite to finish upgrading' in capsys.readouterr().err
        assert len(searched_user_names()) == 3
    finally:
        finish.join()
        store.close_database()


def user_indexes(database_url):
    sql = ("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'users'" if not ON_POSTGRESQL
           else "SELECT indexname FROM pg_indexes WHERE tablename = 'users'")
    return {row[0] for row in run_sql(database_url, [(sql, ())])}


def test_the_id_seat_index_goes_and_a_member_is_still_checked_against_its_seat(database_url):
    """Schema version 11 drops users (id, seat), which version 6 made: a member added to
    a seat's group must still be a user of that seat, the server's own users unknown there."""
    make_old_database(database_url, version=6)
    assert 'users_id_seat' in user_indexes(database_url)
    servers = start_at_once(database_url, count=1, flags=('--seats', '1'))
    try:
        (_, token), = run_sql(database_url, [('SELECT number, token FROM seat', ())])
        status, group = call(servers, 'POST', '/Groups', {'schemas': [GROUP_SCHEMA], 'displayName': 'Seat group'},
                             token=token)
        assert status == 201, group
        status, user = call(servers, 'POST', '/Users', {'schemas': [USER_SCHEMA], 'userName': 'seated@example.com'},
                            token=token)
        assert status == 201, user
        add = {'schemas': [PATCH_SCHEMA], 'Operations': [{'op': 'add', 'path': 'members', 'value': [
            {'value': user['id']}, {'value': 'old-user-1'}]}]}
        status, refused = call(servers, 'PATCH', f'/Groups/{group["id"]}', add, token=token)
        assert (status, refused['scimType']) == (400, 'invalidValue') and 'old-user-1' in refused['detail'], refused
        add['Operations'][0]['value'] = [{'value': user['id']}]
        status, patched = call(servers, 'PATCH', f'/Groups/{group["id"]}?attributes=members', add, token=token)
        assert status == 200 and [member['value'] for member in patched['members']] == [user['id']], patched
        add['Operations'][0]['value'] = [{'value': 'old-user-1'}]
        status, patched = call(servers, 'PATCH', '/Groups/old-group?attributes=members', add)
        assert status == 200 and sorted(member['value'] for member in patched['members']) == [
            'old-user-0', 'old-user-1', 'old-user-2'], patched
    finally:
        servers.stop()
    assert run_sql(database_url, [('SELECT version FROM scimlite_schema', ())]) == [(store.SCHEMA_VERSION,)]
    assert 'users_id_seat' not in user_indexes(database_url)

"""Upgrades: a database an older scimlite made is brought up to date in place when
a newer one starts on it, and one a newer scimlite made is refused in one line."""

import json
import re
import time
from contextlib import closing
from pathlib import Path


import store
from conftest import ON_POSTGRESQL, TOKEN, driver_connection, empty_postgresql_database, list_tables_sql
from serverprocess import ServerProcess, run_server
import test_concurrency
from test_concurrency import Servers, call

V1_SCHEMA = Path(__file__).with_name('data') / 'schema_v1.sql'
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


def make_version_1_database(database_url):
    """The tables of schema version 1, and rows written the way that scimlite wrote them."""
    if ON_POSTGRESQL:
        empty_postgresql_database(database_url, drop=True)
    text = re.sub(r'--[^\n]*', '', V1_SCHEMA.read_text(encoding='utf-8'))
    statements = [(statement, ()) for statement in text.split(';') if statement.strip()]
    for n in range(3):
        user_name = f'Old{n}@Example.com'
        resource = {'schemas': [USER_SCHEMA], 'userName': user_name, 'title': f'Title {n}', 'active': True}
        statements.append((
            'INSERT INTO users (id, user_name, user_name_key, external_id, display_name, active, resource, '
            'version, created, last_modified) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
            (f'old-user-{n}', user_name, user_name.lower(), f'ext-{n}', None, True,
             json.dumps(resource, separators=(',', ':')), 3, STAMP, STAMP)))
    statements.append((
        'INSERT INTO "groups" (id, display_name, display_name_key, external_id, resource, version, created, '
        'last_modified) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
        ('old-group', 'Old Group', 'old group', None,
         json.dumps({'schemas': [GROUP_SCHEMA], 'displayName': 'Old Group'}), 2, STAMP, STAMP)))
    for n in (0, 2):
        statements.append(('INSERT INTO link (group_id, user_id) VALUES (?, ?)', ('old-group', f'old-user-{n}')))
    run_sql(database_url, statements)


def tables(database_url):
    return {row[0] for row in run_sql(database_url, [(list_tables_sql(database_url), ())])}


def test_a_database_made_by_schema_version_1_is_upgraded_in_place_and_keeps_every_row(database_url):
    make_version_1_database(database_url)
    assert 'scimlite_schema' not in tables(database_url)
    # Two processes starting at once on the old database: one upgrades, the other waits.
    starting = [run_server('--port', '0', '--token', test_concurrency.TOKEN, '--database', database_url)
                for _ in range(2)]
    servers = Servers(database_url, 0)
    try:
        servers.processes = [ServerProcess.attach(process) for process in starting]
    finally:
        for process in starting:   # one that did not start (attach stops only its own)
            if process.poll() is None and not any(server.process is process for server in servers.processes):
                process.kill()
                process.wait()
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
    make_version_1_database(database_url)
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

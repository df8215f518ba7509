"""GET /healthz: 200 {"status": "ok"} while the database answers, 503 {"status":
"unavailable"} when it does not, without a token, and never printed or recorded.

The database is made not to answer for real, after the server has started: on
SQLite the file is replaced under it (someone "starting over" by deleting scim.db
while the server runs); on PostgreSQL its database's sessions are ended and the
database renamed away, then given back."""

import http.client
import logging
import os
import secrets
import time
from urllib.parse import urlsplit

import pytest
import webtest

import store
from conftest import ON_POSTGRESQL, TEST_SERVER_URL, TOKEN, postgresql
from serverprocess import ServerProcess


def health(app):
    answer = webtest.TestApp(app).get('/healthz', expect_errors=True)
    assert answer.content_type == 'application/json'
    assert answer.headers['Cache-Control'] == 'no-store'
    return answer.status_int, answer.json


def get(server, path, headers=None):
    connection = http.client.HTTPConnection('127.0.0.1', server.port, timeout=10)
    try:
        connection.request('GET', path, headers=headers or {})
        answer = connection.getresponse()
        return answer.status, answer.read()
    finally:
        connection.close()


def test_healthz_is_ok_without_a_token_while_the_database_answers(app):
    assert health(app) == (200, {'status': 'ok'})


@pytest.mark.parametrize('base_path', ['/scim/v2', ''])
def test_healthz_is_not_a_scim_path_whatever_the_base_path(make_app, base_path):
    """Not recorded or printed even where SCIM is served at the root."""
    app = make_app(base_path=base_path)
    assert not app.is_scim('/healthz')
    assert app.is_scim(f'{base_path}/Users')
    assert health(app) == (200, {'status': 'ok'})


def test_healthz_is_neither_printed_nor_recorded(database_url, make_app):
    """A load balancer's call every second fills neither the console nor the dashboard."""
    server = ServerProcess(database=database_url, token=TOKEN)
    try:
        for _ in range(5):
            assert get(server, '/healthz') == (200, b'{"status": "ok"}')
        assert get(server, '/scim/v2/Users', {'Authorization': f'Bearer {TOKEN}'})[0] == 200
    finally:
        server.stop()   # what was queued is printed and written first
    assert 'GET    /scim/v2/Users' in server.output
    assert '/healthz' not in server.output
    make_app()   # the store, opened on the server's database
    assert [exchange['path'] for exchange in store.recent_exchanges(50)] == ['/scim/v2/Users']


@pytest.mark.skipif(ON_POSTGRESQL, reason='SQLite: a database file replaced under the server')
def test_healthz_is_503_once_the_sqlite_file_is_replaced(app, database_url, caplog):
    path = store.sqlite_path(database_url)
    assert health(app) == (200, {'status': 'ok'})
    with open(path + '.garbage', 'wb') as garbage:
        garbage.write(os.urandom(8192))
    os.replace(path + '.garbage', path)
    time.sleep(store.FILE_CHECK_SECONDS * 1.5)
    with caplog.at_level(logging.INFO, logger='scimlite'):
        for _ in range(3):
            assert health(app) == (503, {'status': 'unavailable'})
    said = [record.getMessage() for record in caplog.records if record.getMessage().startswith('/healthz')]
    assert len(said) == 1, 'the cause is logged once, not at every poll'
    assert 'deleted or replaced' in said[0]


@pytest.fixture
def postgresql_to_take_away():
    """(URL of a throw-away PostgreSQL database, an admin connection to its server)."""
    name = f'scimlite_health_{secrets.token_hex(6)}'
    admin = postgresql(TEST_SERVER_URL)
    admin.cursor().execute(f'CREATE DATABASE {name}')
    try:
        yield urlsplit(TEST_SERVER_URL)._replace(path=f'/{name}').geturl(), name, admin
    finally:
        store.close_database()
        for each in (name, f'{name}_away'):
            admin.cursor().execute(f'DROP DATABASE IF EXISTS {each} WITH (FORCE)')
        admin.close()


@pytest.mark.skipif(not ON_POSTGRESQL, reason='PostgreSQL: set SCIMLITE_TEST_DATABASE_URL')
def test_healthz_is_503_while_the_postgresql_database_is_away(make_app, postgresql_to_take_away, caplog):
    url, name, admin = postgresql_to_take_away
    app = make_app(database=url)
    assert health(app) == (200, {'status': 'ok'})
    cursor = admin.cursor()
    cursor.execute('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s', (name,))
    cursor.execute(f'ALTER DATABASE {name} RENAME TO {name}_away')
    with caplog.at_level(logging.INFO, logger='scimlite'):
        for _ in range(3):
            assert health(app) == (503, {'status': 'unavailable'})
        cursor.execute(f'ALTER DATABASE {name}_away RENAME TO {name}')
        assert health(app) == (200, {'status': 'ok'})
    said = [record.getMessage() for record in caplog.records if record.getMessage().startswith('/healthz')]
    assert len(said) == 2, said
    assert 'does not answer' in said[0] and 'answers again' in said[1]

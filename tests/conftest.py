"""Shared fixtures: a fresh database per test, the real app, a client that speaks SCIM.

The backend is chosen by SCIMLITE_TEST_DATABASE_URL and printed in the test header:
- unset: a SQLite file in each test's own temporary folder;
- `postgresql://user@host:port/any`: a throw-away database created on that server
  for this run (emptied before each test, dropped at the end).
Tests that look at SQLite's file itself do so only when the URL is sqlite:.
"""

import json
import os
import secrets
import sqlite3
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import webtest

import scim_server
import scimschema
import store

TOKEN = 'test-token-0123456789'
BASE = '/scim/v2'
SCIM_JSON = 'application/scim+json'
USER_SCHEMA = scimschema.USER_SCHEMA
GROUP_SCHEMA = scimschema.GROUP_SCHEMA
PATCH_SCHEMA = scimschema.PATCH_SCHEMA
ERROR_SCHEMA = scimschema.ERROR_SCHEMA


TEST_SERVER_URL = os.environ.get('SCIMLITE_TEST_DATABASE_URL', '')
ON_POSTGRESQL = urlsplit(TEST_SERVER_URL).scheme in ('postgresql', 'postgres')


def postgresql(url):
    import psycopg2
    connection = psycopg2.connect(url, connect_timeout=10)
    connection.autocommit = True
    return connection


def driver_connection(url):
    """(a connection of the database's own driver, autocommitting; its placeholder), to
    look at or prepare a database beside the app."""
    if url.startswith('sqlite:'):
        return sqlite3.connect(url[len('sqlite:///'):], isolation_level=None), '?'
    return postgresql(url), '%s'


def list_tables_sql(url):
    """The query that names the tables of the database at `url`."""
    if url.startswith('sqlite:'):
        return "SELECT name FROM sqlite_master WHERE type = 'table'"
    return 'SELECT tablename FROM pg_tables WHERE schemaname = current_schema()'


def pytest_report_header(config):
    if not ON_POSTGRESQL:
        return f'scimlite backend: SQLite {sqlite3.sqlite_version} (a fresh file per test)'
    return (f'scimlite backend: PostgreSQL {server_version(TEST_SERVER_URL)} at {store.masked(TEST_SERVER_URL)} '
            '(a throw-away database for this run)')


def server_version(url):
    connection = postgresql(url)
    try:
        cursor = connection.cursor()
        cursor.execute('SHOW server_version')
        return cursor.fetchone()[0]
    finally:
        connection.close()


@pytest.fixture(scope='session')
def postgresql_database():
    """A database of its own on the test server, for this run; dropped at the end."""
    import psycopg2
    name = f'scimlite_test_{secrets.token_hex(6)}'
    admin = postgresql(TEST_SERVER_URL)
    cursor = admin.cursor()
    # A language's collation where the server has ICU (en-US orders "a_b" before
    # "a-c", unlike SQLite): scimlite must answer in code-point order all the same.
    try:
        cursor.execute(f"CREATE DATABASE {name} TEMPLATE template0 ENCODING 'UTF8' "
                       "LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'")
    except psycopg2.Error:
        cursor.execute(f"CREATE DATABASE {name} TEMPLATE template0 ENCODING 'UTF8'")
    try:
        yield urlsplit(TEST_SERVER_URL)._replace(path=f'/{name}').geturl()
    finally:
        store.close_database()
        cursor.execute(f'DROP DATABASE IF EXISTS {name} WITH (FORCE)')
        admin.close()


def empty_postgresql_database(url, drop=False):
    """Remove every row (or, with `drop`, every table) a test left behind."""
    connection = postgresql(url)
    try:
        cursor = connection.cursor()
        cursor.execute(list_tables_sql(url))
        tables = [row[0] for row in cursor.fetchall()]
        if drop and tables:
            cursor.execute('DROP TABLE ' + ', '.join(f'"{table}"' for table in tables) + ' CASCADE')
        elif tables:   # the schema version stays, as it would in a real database
            data = [f'"{table}"' for table in tables if table != 'scimlite_schema']
            cursor.execute('TRUNCATE ' + ', '.join(data) + ' CASCADE')
    finally:
        connection.close()


@pytest.fixture
def database_url(request, tmp_path):
    """A fresh, empty database for this test."""
    if not ON_POSTGRESQL:
        return f'sqlite:///{Path(tmp_path, "scim.db").as_posix()}'
    url = request.getfixturevalue('postgresql_database')
    empty_postgresql_database(url)
    return url


@pytest.fixture
def make_app(database_url):
    """A factory: `make_app(**settings)` builds the real WSGI app on this test's
    database with the known token, any setting overridden (`database` too); every
    app it made is closed at teardown, newest first.

    Tests reach scim_server.make_app only through this fixture. The app is one per
    process: making one closes the one made before it (closing an app twice is
    harmless), so a test holds one live app at a time."""
    made = []

    def make(**settings):
        application = scim_server.make_app({'database': database_url, 'token': TOKEN, **settings})
        made.append(application)
        return application
    yield make
    for application in reversed(made):
        application.close()


@pytest.fixture
def app(make_app):
    """The real WSGI app on the fresh database, with a known token."""
    return make_app()


class ScimClient:
    """webtest against the app, sending what Okta sends: the token, SCIM media types.

    Paths are relative to /scim/v2. Every response is checked to be SCIM JSON
    (or empty), so no test can pass on an HTML error page."""

    def __init__(self, app):
        self.test_app = webtest.TestApp(app)
        self.headers = {
            'Authorization': f'Bearer {TOKEN}',
            'Accept': SCIM_JSON,
            'User-Agent': 'Okta SCIM Client 1.0.0',
        }

    def request(self, method, path, body=None, status=None, headers=None, raw=None):
        all_headers = {**self.headers, **(headers or {})}
        if body is not None or raw is not None:
            all_headers.setdefault('Content-Type', 'application/scim+json; charset=utf-8')
        payload = raw if raw is not None else (json.dumps(body).encode() if body is not None else b'')
        response = self.test_app.request(
            BASE + path, method=method, body=payload, headers=all_headers,
            expect_errors=True)
        if status is not None:
            assert response.status_int == status, (method, path, response.status, response.body[:500])
        if response.body:
            assert response.content_type == SCIM_JSON, response.headers
            json.loads(response.body)
        return response

    def get(self, path, **kwargs):
        return self.request('GET', path, **kwargs)

    def post(self, path, body, **kwargs):
        return self.request('POST', path, body, **kwargs)

    def put(self, path, body, **kwargs):
        return self.request('PUT', path, body, **kwargs)

    def patch(self, path, operations, **kwargs):
        return self.request('PATCH', path, {'schemas': [PATCH_SCHEMA], 'Operations': operations}, **kwargs)

    def delete(self, path, **kwargs):
        return self.request('DELETE', path, **kwargs)

    def create_user(self, user_name, **attributes):
        body = {'schemas': [USER_SCHEMA], 'userName': user_name, **attributes}
        return self.post('/Users', body, status=201).json

    def create_group(self, display_name, members=(), **attributes):
        body = {'schemas': [GROUP_SCHEMA], 'displayName': display_name,
                'members': [{'value': member} for member in members], **attributes}
        return self.post('/Groups', body, status=201).json


@pytest.fixture
def client(app):
    """A SCIM client (see ScimClient) on a fresh database."""
    return ScimClient(app)


def assert_scim_error(response, status, scim_type=None):
    """The response is a SCIM Error body with this status (and scimType, if given)."""
    assert response.status_int == status, (response.status, response.body[:500])
    assert response.content_type == SCIM_JSON
    body = response.json
    assert body['schemas'] == [ERROR_SCHEMA]
    assert body['status'] == str(status)
    assert body.get('detail')
    if scim_type is not None:
        assert body.get('scimType') == scim_type, body
    return body


def store_rows():
    """Every row of every table, as stored: compared before and after a refused request."""
    return {model.__name__: sorted(map(repr, model.select().tuples()))
            for model in (store.User, store.Group, store.Link)}

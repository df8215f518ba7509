"""When the database cannot answer (SQLite locked by another process past its busy
timeout, PostgreSQL connections cut), the client gets a 503 SCIM error with
Retry-After, nothing half-written, and the next request works."""

import sqlite3

import pytest
import webtest

from conftest import BASE, ON_POSTGRESQL, TOKEN, USER_SCHEMA, assert_scim_error, postgresql

HEADERS = {'Authorization': f'Bearer {TOKEN}', 'Content-Type': 'application/scim+json'}


def create(client, user_name):
    return client.post_json(f'{BASE}/Users', {'schemas': [USER_SCHEMA], 'userName': user_name},
                            headers=HEADERS, expect_errors=True)


def total(client):
    return client.get(f'{BASE}/Users?count=0', headers=HEADERS).json['totalResults']


@pytest.mark.skipif(ON_POSTGRESQL, reason="SQLite's file lock, held by another process")
def test_sqlite_locked_by_another_process_past_the_lock_wait_is_503_then_works(database_url, make_app):
    client = webtest.TestApp(make_app(lock_wait=0.2))
    assert create(client, 'before@example.com').status_int == 201
    other = sqlite3.connect(database_url[len('sqlite:///'):], isolation_level=None)
    other.execute('BEGIN IMMEDIATE')   # another process holds the write lock
    try:
        response = create(client, 'while-locked@example.com')
        assert_scim_error(response, 503)
        assert response.headers['Retry-After'] == '1'
        assert total(client) == 1   # readers still read, in WAL mode
    finally:
        other.execute('ROLLBACK')
        other.close()
    assert create(client, 'while-locked@example.com').status_int == 201
    assert total(client) == 2


@pytest.mark.skipif(not ON_POSTGRESQL, reason='PostgreSQL connections (SCIMLITE_TEST_DATABASE_URL)')
def test_postgresql_connections_cut_under_the_pool_are_replaced(database_url, make_app):
    client = webtest.TestApp(make_app())
    assert create(client, 'before@example.com').status_int == 201
    admin = postgresql(database_url)
    try:
        cursor = admin.cursor()
        cursor.execute('SELECT pg_terminate_backend(pid) FROM pg_stat_activity '
                       'WHERE datname = current_database() AND pid <> pg_backend_pid()')
        assert cursor.fetchall(), 'the pool holds a connection to cut'
    finally:
        admin.close()
    first = create(client, 'after@example.com')
    if first.status_int != 201:   # the cut connection was the one taken: a 503, nothing written
        assert_scim_error(first, 503)
        assert first.headers['Retry-After'] == '1'
        assert create(client, 'after@example.com').status_int == 201
    assert total(client) == 2

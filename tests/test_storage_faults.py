"""A full disk, a read-only or vanished database file: answers, not tracebacks.

The real server (`python scim_server.py`) on a SQLite file:
- on a small tmpfs that is then filled: writes answer 507 with Retry-After, and once
  space is freed they succeed again, without a restart, every acknowledged write kept;
- on a tmpfs remounted read-only before the start: one line, a non-zero exit;
- with its -wal made immutable (chattr +i) under a running server: 503, not 500;
- with its file or -wal deleted, or replaced, under it: 503 on writes, and a log line.

Mounting needs root. CI runs as root and sets SCIMLITE_TMPFS_TESTS=required, which
turns the skip of those tests (elsewhere, when not root) into a failure.
"""

import http.client
import json
import os
import shutil
import sqlite3
import subprocess
import time
from types import SimpleNamespace
from urllib.parse import urlsplit

import peewee
import pytest

import store
from conftest import ON_POSTGRESQL, TOKEN, USER_SCHEMA, postgresql
from serverprocess import ServerProcess, run_server

REQUIRED = os.environ.get('SCIMLITE_TMPFS_TESTS', '').strip().lower() == 'required'
IS_ROOT = hasattr(os, 'geteuid') and os.geteuid() == 0
FILLER_CHUNK = 64 * 1024


def needs_root():
    if IS_ROOT:
        return
    if REQUIRED:
        pytest.fail('SCIMLITE_TMPFS_TESTS=required, but mounting a tmpfs needs root', pytrace=False)
    pytest.skip('mounting a tmpfs needs root; SCIMLITE_TMPFS_TESTS=required makes this a failure')


@pytest.fixture
def tmpfs(tmp_path):
    """A 4 MiB tmpfs of this test's own, unmounted (lazily, if still busy) at the end."""
    needs_root()
    mount_point = tmp_path / 'tmpfs'
    mount_point.mkdir()
    subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=4m,mode=0755', 'scimlite-test', str(mount_point)],
                   check=True, capture_output=True)
    try:
        yield mount_point
    finally:
        if subprocess.run(['umount', str(mount_point)], capture_output=True).returncode != 0:
            subprocess.run(['umount', '-l', str(mount_point)], check=True, capture_output=True)


def sqlite_url(path):
    return f'sqlite:///{path.as_posix()}'


class Client:
    """One keep-alive connection to the server, sending the token and SCIM JSON."""

    def __init__(self, port):
        self.http = http.client.HTTPConnection('127.0.0.1', port, timeout=30)

    def call(self, method, path, body=None):
        self.http.request(method, '/scim/v2' + path, body=json.dumps(body) if body is not None else None,
                          headers={'Authorization': f'Bearer {TOKEN}', 'Content-Type': 'application/scim+json'})
        answer = self.http.getresponse()
        raw = answer.read()
        return SimpleNamespace(status=answer.status, headers=answer, body=json.loads(raw) if raw else None)

    def create(self, user_name):
        return self.call('POST', '/Users', {'schemas': [USER_SCHEMA], 'userName': user_name})

    def close(self):
        self.http.close()


@pytest.fixture
def serve():
    """serve(database URL) -> (ServerProcess, Client); both stopped at the end."""
    running = []

    def start(url):
        server = ServerProcess('--quiet', database=url, token=TOKEN)
        client = Client(server.port)
        running.append((server, client))
        return server, client

    yield start
    for server, client in running:
        client.close()
        server.stop()


def assert_storage_error(answer, status):
    assert answer.status == status, answer.body
    assert answer.body['schemas'] == ['urn:ietf:params:scim:api:messages:2.0:Error']
    assert answer.body['status'] == str(status)
    assert int(answer.headers.getheader('Retry-After')) > 0


def assert_no_traceback(output):
    assert 'Traceback' not in output, output
    assert 'cannot rollback' not in output, output


def fill(folder):
    """Write a file until the file system is full; the file, to free the space later."""
    filler = folder / 'filler'
    handle = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        chunk = FILLER_CHUNK
        while chunk >= 512:   # down to the last crumbs
            try:
                os.write(handle, b'\0' * chunk)
            except OSError:
                chunk //= 2
    finally:
        os.close(handle)
    return filler


def test_a_full_disk_answers_507_then_recovers_without_a_restart(tmpfs, serve):
    server, client = serve(sqlite_url(tmpfs / 'scim.db'))
    acknowledged = {}
    for n in range(20):
        answer = client.create(f'before-{n}@example.com')
        assert answer.status == 201
        acknowledged[answer.body['id']] = answer.body['userName']

    filler = fill(tmpfs)
    refused = 0
    for n in range(200):   # WAL pages already there may take a few more writes
        answer = client.create(f'while-full-{n}@example.com')
        if answer.status == 201:
            acknowledged[answer.body['id']] = answer.body['userName']
            continue
        assert_storage_error(answer, 507)
        refused += 1
        if refused == 5:
            break
    assert refused == 5, 'the full disk refused writes'
    assert client.call('GET', '/Users?count=0').status == 200, 'reads go on'

    filler.unlink()
    for n in range(20):
        answer = client.create(f'after-{n}@example.com')
        assert answer.status == 201, answer.body
        acknowledged[answer.body['id']] = answer.body['userName']

    for user_id, user_name in acknowledged.items():
        answer = client.call('GET', f'/Users/{user_id}')
        assert (answer.status, answer.body['userName']) == (200, user_name)
    client.close()
    server.stop()
    faults = [line for line in server.lines if 'answered 507' in line]
    assert len(faults) == 5 and all('database or disk is full' in line for line in faults), server.output
    assert_no_traceback(server.output)

    with sqlite3.connect(tmpfs / 'scim.db') as database:   # and after the server, on the file
        assert database.execute('PRAGMA integrity_check').fetchone() == ('ok',)
        stored = dict(database.execute('SELECT id, user_name FROM users'))
    assert stored == acknowledged


def test_a_read_only_database_at_start_is_one_line(tmpfs, serve):
    server, client = serve(sqlite_url(tmpfs / 'scim.db'))
    assert client.create('ann@example.com').status == 201
    client.close()
    server.stop()
    subprocess.run(['mount', '-o', 'remount,ro', str(tmpfs)], check=True, capture_output=True)
    process = run_server('--port', '0', '--token', TOKEN, '--database', sqlite_url(tmpfs / 'scim.db'))
    try:
        output, _ = process.communicate(timeout=30)
    finally:
        process.kill()   # if it started after all
        process.wait()
    assert process.returncode != 0
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith('scimlite: cannot open database'), output
    assert 'readonly' in lines[0] or 'read-only' in lines[0] or 'unable to open' in lines[0], output


def test_a_read_only_wal_under_a_running_server_is_503(tmpfs, serve):
    """chattr +i: even root cannot open the file for writing. The serving thread opens
    its connection at its first request, after the server's start-up one: it gets
    the -wal read-only, as after a permissions change or a remount."""
    server, client = serve(sqlite_url(tmpfs / 'scim.db'))
    wal = tmpfs / 'scim.db-wal'
    subprocess.run(['chattr', '+i', str(wal)], check=True, capture_output=True)
    try:
        answer = client.create('ann@example.com')
        assert_storage_error(answer, 503)
        assert client.call('GET', '/Users?count=0').status == 200, 'reads go on'
    finally:
        subprocess.run(['chattr', '-i', str(wal)], check=True, capture_output=True)
    client.close()
    server.stop()
    assert any('answered 503: storage failed' in line for line in server.lines), server.output
    assert_no_traceback(server.output)


@pytest.mark.parametrize('how', ['delete the file', 'delete the -wal', 'replace the file'])
def test_a_database_file_deleted_under_the_server_refuses_writes(tmp_path, serve, how):
    database = tmp_path / 'scim.db'
    server, client = serve(sqlite_url(database))
    assert client.create('before@example.com').status == 201
    if how == 'delete the file':
        database.unlink()
    elif how == 'delete the -wal':
        (tmp_path / 'scim.db-wal').unlink()
    else:
        shutil.copy(database, tmp_path / 'copy.db')
        os.replace(tmp_path / 'copy.db', database)
    # The files are looked at before a write at most every FILE_CHECK_SECONDS.
    time.sleep(store.FILE_CHECK_SECONDS + 0.05)
    for user_name in ('after@example.com', 'again@example.com'):
        assert_storage_error(client.create(user_name), 503)
    client.close()
    server.stop()
    assert sum('THE DATABASE FILE' in line and 'deleted or replaced' in line for line in server.lines) == 1, \
        server.output
    assert sum('answered 503: storage failed' in line for line in server.lines) >= 2, server.output
    assert_no_traceback(server.output)


# ---------------------------------------------------------------------------
# Which errors are storage faults (the codes PostgreSQL and SQLite give)
# ---------------------------------------------------------------------------

def driver_error(pgcode=None, sqlite_errorcode=None, message='boom'):
    orig = SimpleNamespace(pgcode=pgcode) if pgcode else SimpleNamespace(sqlite_errorcode=sqlite_errorcode)
    error = peewee.OperationalError(message)
    error.orig = orig
    return error


@pytest.mark.parametrize('error, kind', [
    (driver_error(pgcode='53100', message='could not extend file "base/1/2": No space left on device'),
     store.StorageFull),
    (driver_error(pgcode='25006', message='cannot execute INSERT in a read-only transaction'), store.StorageFailed),
    (driver_error(pgcode='58030'), store.StorageFailed),
    (driver_error(sqlite_errorcode=13, message='database or disk is full'), store.StorageFull),
    (driver_error(sqlite_errorcode=10 | (3 << 8), message='disk I/O error'), store.StorageFailed),
    (driver_error(sqlite_errorcode=8, message='attempt to write a readonly database'), store.StorageFailed),
    (driver_error(sqlite_errorcode=14, message='unable to open database file'), store.StorageFailed),
    (driver_error(pgcode='23505'), None),
    (driver_error(pgcode='57P01'), None),
    (driver_error(sqlite_errorcode=5, message='database is locked'), None),
    (peewee.OperationalError('database or disk is full'), store.StorageFull),
    (ValueError('disk I/O error'), None),
])
def test_storage_faults_by_code(error, kind):
    fault = store.storage_fault(error)
    assert (type(fault) if fault is not None else None) is kind


def test_the_first_error_is_the_cause_not_the_rollback_that_followed():
    try:
        try:
            raise driver_error(sqlite_errorcode=13, message='database or disk is full')
        except peewee.OperationalError:
            raise peewee.OperationalError('cannot rollback - no transaction is active') from None
    except peewee.OperationalError as rollback:
        rollback.__suppress_context__ = False
        fault = store.storage_fault(rollback)
    assert isinstance(fault, store.StorageFull) and str(fault) == 'database or disk is full'


# ---------------------------------------------------------------------------
# PostgreSQL: a database that takes no writes (a standby, default_transaction_read_only)
# ---------------------------------------------------------------------------

@pytest.mark.skipif(not ON_POSTGRESQL, reason='a PostgreSQL database (SCIMLITE_TEST_DATABASE_URL)')
def test_a_read_only_postgresql_database_is_503_then_one_line_at_start(database_url, make_app):
    import webtest
    client = webtest.TestApp(make_app())
    name = urlsplit(database_url).path.lstrip('/')
    admin = postgresql(database_url)
    cursor = admin.cursor()

    def cut_connections():   # a setting of the database counts from the next connection
        cursor.execute('SELECT pg_terminate_backend(pid) FROM pg_stat_activity '
                       'WHERE datname = current_database() AND pid <> pg_backend_pid()')

    def create(user_name):
        return client.post_json('/scim/v2/Users', {'schemas': [USER_SCHEMA], 'userName': user_name},
                                headers={'Authorization': f'Bearer {TOKEN}'}, expect_errors=True)

    cursor.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
    try:
        cut_connections()
        create('first@example.com')   # may be the cut connection's 503 (Retry-After: 1)
        answer = create('second@example.com')
        assert answer.status_int == 503 and answer.headers['Retry-After'] == '30', answer.text
        with pytest.raises(store.CannotOpen, match='read-only transaction'):
            store.open_database(database_url)
    finally:
        cursor.execute(f'ALTER DATABASE "{name}" RESET default_transaction_read_only')
        cut_connections()
        admin.close()


# ---------------------------------------------------------------------------
# In the process: one log line, and nothing on wsgi.errors (where Bottle prints
# the traceback of an exception a route lets through)
# ---------------------------------------------------------------------------

@pytest.mark.skipif(ON_POSTGRESQL, reason="SQLite's file lock, held by another process")
def test_a_locked_database_is_one_log_line_and_no_traceback(database_url, make_app, monkeypatch, caplog):
    import io
    import webtest
    monkeypatch.setattr(store, 'BUSY_TIMEOUT_MS', 200)
    errors = io.StringIO()
    client = webtest.TestApp(make_app(token=TOKEN), extra_environ={'wsgi.errors': errors})
    other = sqlite3.connect(database_url[len('sqlite:///'):], isolation_level=None)
    other.execute('BEGIN IMMEDIATE')
    try:
        answer = client.post_json('/scim/v2/Users', {'schemas': [USER_SCHEMA], 'userName': 'ann'},
                                  headers={'Authorization': f'Bearer {TOKEN}'}, expect_errors=True)
    finally:
        other.execute('ROLLBACK')
        other.close()
    assert answer.status_int == 503 and answer.headers['Retry-After'] == '1'
    assert errors.getvalue() == ''
    logged = [record.getMessage() for record in caplog.records if record.name == 'scimlite']
    assert logged == ['POST /scim/v2/Users answered 503: database unavailable: database is locked'], logged

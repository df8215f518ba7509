"""Stopping and ports (README, Reliability > Stopping, ports and Windows): Ctrl+C and
SIGTERM stop the real server cleanly, and a port is held by one server only.

Ctrl+C is SIGINT sent to the server process, as a terminal sends it. Ctrl+Break
(SIGBREAK) exists only on Windows, where it takes the same way."""

import contextlib
import errno
import http.client
import json
import signal
import socket
import sqlite3
import threading
import time

import pytest

import scim_server
from conftest import ON_POSTGRESQL, TOKEN, USER_SCHEMA, driver_connection, postgresql
from serverprocess import ServerProcess, run_server
from test_backends import wait_until_blocked_by
from test_startup import one_line_failure

STOP_SIGNALS = [pytest.param(signal.SIGINT, id='SIGINT (Ctrl+C)'), pytest.param(signal.SIGTERM, id='SIGTERM')]


def request(port, method, path, body=None, connection=None):
    """(status, parsed body) of one request; on `connection` if given, kept open."""
    own = connection is None
    connection = connection or http.client.HTTPConnection('127.0.0.1', port, timeout=30)
    try:
        headers = {'Authorization': f'Bearer {TOKEN}', 'Content-Type': 'application/scim+json'}
        connection.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
        answer = connection.getresponse()
        return answer.status, json.loads(answer.read() or b'null')
    finally:
        if own:
            connection.close()


def create_user(port, user_name):
    return request(port, 'POST', '/scim/v2/Users', {'schemas': [USER_SCHEMA], 'userName': user_name})


def recorded_exchanges(database_url):
    """(method, path, status) of every exchange the dashboard kept, read from the database."""
    connection, _ = driver_connection(database_url)
    try:
        cursor = connection.cursor()
        cursor.execute('SELECT method, path, status FROM request_log')
        return set(cursor.fetchall())
    finally:
        connection.close()


def stopped(server, number, timeout=20):
    """Send `number` to the server; its exit code once it has exited."""
    server.process.send_signal(number)
    code = server.process.wait(timeout=timeout)
    server.stop()   # collects the rest of its output
    return code


@pytest.mark.parametrize('number', STOP_SIGNALS)
def test_a_stop_signal_says_stopped_exits_0_and_keeps_the_last_exchanges(number, database_url):
    server = ServerProcess(database=database_url, token=TOKEN)
    try:
        for user_name in ('ann@example.com', 'bob@example.com'):
            assert create_user(server.port, user_name)[0] == 201
        assert request(server.port, 'GET', '/scim/v2/Users?filter=userName%20eq%20%22ann@example.com%22')[0] == 200
    finally:
        # At once: the exchange log writes a batch every half second, so these are still queued.
        code = stopped(server, number)
    assert code == 0, server.output
    assert server.output.rstrip().endswith('scimlite stopped.'), server.output
    assert 'Traceback' not in server.output
    assert {('POST', '/scim/v2/Users', 201), ('GET', '/scim/v2/Users?filter=userName eq "ann@example.com"', 200)} \
        <= recorded_exchanges(database_url)


@pytest.mark.parametrize('number', STOP_SIGNALS)
def test_idle_keep_alive_connections_do_not_hold_up_the_stop(number, database_url):
    server = ServerProcess(database=database_url, token=TOKEN)
    idle = [http.client.HTTPConnection('127.0.0.1', server.port, timeout=30) for _ in range(5)]
    try:
        for connection in idle:
            assert request(server.port, 'GET', '/scim/v2/Users', connection=connection)[0] == 200
        started = time.monotonic()
        code = stopped(server, number)
        assert time.monotonic() - started < 3
    finally:
        for connection in idle:
            connection.close()
        server.stop()
    assert code == 0 and 'scimlite stopped.' in server.output, server.output


class WriteLock:
    """Another program holding the database's write lock (SQLite) or a lock on the users
    table that a new user's INSERT waits for (PostgreSQL): a request that writes a user
    stays in flight until release()."""

    def __init__(self, database_url):
        self.database_url = database_url
        if ON_POSTGRESQL:
            self.connection = postgresql(database_url)
            self.connection.autocommit = False
            self.connection.cursor().execute('LOCK TABLE users IN SHARE ROW EXCLUSIVE MODE')
        else:
            self.connection = sqlite3.connect(database_url[len('sqlite:///'):], isolation_level=None)
            self.connection.execute('BEGIN IMMEDIATE')

    def wait_until_a_request_waits(self):
        if ON_POSTGRESQL:
            wait_until_blocked_by(self.database_url, self.connection.get_backend_pid())
        else:   # SQLite shows no waiter: give the request the time to reach its write
            time.sleep(0.3)

    def release(self):
        if ON_POSTGRESQL:
            self.connection.rollback()
        else:
            self.connection.execute('ROLLBACK')
        self.connection.close()


def refuses_connections(port, timeout=5):
    """True once a connection to `port` is refused (within `timeout` seconds)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(('127.0.0.1', port), timeout=1).close()
        except ConnectionRefusedError:
            return True
        except ConnectionResetError:   # it reached the queue of a socket closing as it came
            pass
        except TimeoutError:   # its SYN came as the socket closed and was dropped, not refused:
            pass               # the kernel sends it again after 1 s, and a try after it is refused
        time.sleep(0.02)
    return False


@pytest.mark.parametrize('number', STOP_SIGNALS)
def test_a_request_in_flight_is_answered_before_the_server_stops(number, database_url, tmp_path):
    """A POST waits on a lock another program holds when the signal comes: the server
    stops accepting at once, answers the POST once the lock is released, keeps its
    exchange, and only then exits. The POST may wait a minute for the lock, not the
    default lock_wait's 5 s, so that slow steps on a loaded machine cannot turn it
    into a 503 (it failed once in a full run; the cause was not seen)."""
    config = tmp_path / 'patient.ini'
    config.write_text('[scimlite]\nlock_wait = 60\n')
    server = ServerProcess('--config', str(config), database=database_url, token=TOKEN)
    answers = []
    lock = WriteLock(database_url)
    released = False
    try:
        writer = threading.Thread(target=lambda: answers.append(create_user(server.port, 'slow@example.com')))
        writer.start()
        lock.wait_until_a_request_waits()
        assert not answers, 'the POST was answered while the lock was held'
        server.process.send_signal(number)
        assert refuses_connections(server.port), 'still accepting after the signal'
        assert server.process.poll() is None, 'exited with a request in flight'
        lock.release()
        released = True
        writer.join(30)
        code = server.process.wait(timeout=20)
    finally:
        if not released:
            lock.release()
        server.stop()
    assert code == 0 and server.output.rstrip().endswith('scimlite stopped.'), server.output
    assert answers and answers[0][0] == 201, answers
    assert ('POST', '/scim/v2/Users', 201) in recorded_exchanges(database_url)
    restarted = ServerProcess(database=database_url, token=TOKEN)
    try:
        status, listing = request(restarted.port, 'GET', '/scim/v2/Users')
        assert [user['userName'] for user in listing['Resources']] == ['slow@example.com']
    finally:
        restarted.stop()


def test_a_second_ctrl_c_stops_waiting_for_the_request_in_flight(database_url):
    server = ServerProcess(database=database_url, token=TOKEN)
    lock = WriteLock(database_url)
    try:
        def abandoned_create():
            with contextlib.suppress(http.client.RemoteDisconnected):   # the server exits without answering
                create_user(server.port, 'slow@example.com')
        writer = threading.Thread(target=abandoned_create, daemon=True)
        writer.start()
        lock.wait_until_a_request_waits()
        server.process.send_signal(signal.SIGINT)
        assert refuses_connections(server.port)
        started = time.monotonic()
        code = stopped(server, signal.SIGINT)
        assert time.monotonic() - started < 3, 'waited for the request after the second Ctrl+C'
    finally:
        lock.release()
        server.stop()
    assert code == 0 and 'scimlite stopped.' in server.output, server.output


# ---------------------------------------------------------------------------
# One server per port, on every OS
# ---------------------------------------------------------------------------

def test_a_second_server_on_the_same_port_is_a_one_line_error(database_url, tmp_path):
    first = ServerProcess(database=database_url, token=TOKEN)
    try:
        second = run_server('--port', str(first.port), '--token', TOKEN,
                            '--database', f'sqlite:///{(tmp_path / "second.db").as_posix()}')
        line = one_line_failure(second)
        assert f'cannot listen on 127.0.0.1:{first.port}' in line and 'another server running' in line, line
        assert request(first.port, 'GET', '/scim/v2/Users')[0] == 200, 'the first one still serves'
    finally:
        first.stop()


def test_elsewhere_the_listening_socket_reuses_the_address_as_waitress_does(monkeypatch):
    monkeypatch.setattr(scim_server, 'WINDOWS', False)
    assert scim_server.listening_options() == [(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)]


def test_on_windows_the_listening_socket_is_exclusive_and_never_reuses_the_address(monkeypatch):
    """On Windows, SO_REUSEADDR would let a second process bind the same port;
    SO_EXCLUSIVEADDRUSE refuses it."""
    monkeypatch.setattr(scim_server, 'WINDOWS', True)
    monkeypatch.setattr(socket, 'SO_EXCLUSIVEADDRUSE', -5, raising=False)   # Windows' value is ~SO_REUSEADDR
    options = scim_server.listening_options()
    assert options == [(socket.SOL_SOCKET, -5, 1)]
    assert socket.SO_REUSEADDR not in [name for _, name, _ in options]


class RecordingSocket:
    """Stands in for socket.socket: records what is done to it, in order."""

    made = []

    def __init__(self, family, kind, protocol):
        self.family, self.calls = family, []
        RecordingSocket.made.append(self)

    def setsockopt(self, *option):
        self.calls.append(('setsockopt', *option))

    def bind(self, address):
        self.calls.append(('bind', address))

    def close(self):
        self.calls.append(('close',))


def test_the_options_are_set_before_the_socket_binds(monkeypatch):
    monkeypatch.setattr(scim_server, 'listening_options', lambda: [('level', 'exclusive', 1)])
    monkeypatch.setattr(socket, 'socket', RecordingSocket)
    RecordingSocket.made = []
    sockets = scim_server.listening_sockets('127.0.0.1', 5000)
    assert sockets == RecordingSocket.made and len(sockets) == 1
    assert sockets[0].calls == [('setsockopt', 'level', 'exclusive', 1), ('bind', ('127.0.0.1', 5000))]


def test_a_port_taken_by_a_listening_socket_is_refused_with_eaddrinuse():
    first = scim_server.listening_sockets('127.0.0.1', 0)
    try:
        assert first[0].getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR) != 0
        first[0].listen()
        port = first[0].getsockname()[1]
        with pytest.raises(OSError) as refused:
            for listener in scim_server.listening_sockets('127.0.0.1', port):
                listener.listen()
                listener.close()
        assert refused.value.errno == errno.EADDRINUSE
    finally:
        for listener in first:
            listener.close()


@pytest.mark.parametrize('error, taken', [
    (OSError(errno.EADDRINUSE, 'Address already in use'), True),
    (OSError(errno.EACCES, 'Permission denied'), False),   # a port below 1024, on Linux
    (OSError(errno.EADDRNOTAVAIL, 'Cannot assign requested address'), False),
])
def test_the_port_is_said_to_be_taken_only_when_it_is(error, taken):
    assert scim_server.port_taken(error) is taken


def test_on_windows_a_port_held_exclusively_elsewhere_is_taken_too():
    """Windows answers WSAEACCES (10013) to a bind on a port that another program holds
    with SO_EXCLUSIVEADDRUSE, or that Windows reserves."""
    error = OSError(errno.EACCES, 'An attempt was made to access a socket in a way forbidden')
    error.winerror = 10013
    assert scim_server.port_taken(error)

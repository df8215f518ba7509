"""Stopping and ports (README, Reliability > Stopping, ports and Windows): Ctrl+C and
SIGTERM stop the real server cleanly, and a port is held by one server only.

Ctrl+C is SIGINT sent to the server process, as a terminal sends it. Ctrl+Break
(SIGBREAK) exists only on Windows, where it takes the same way."""

import errno
import http.client
import json
import socket

import pytest

import scim_server
from conftest import TOKEN, USER_SCHEMA, driver_connection
from serverprocess import ServerProcess, run_server
from test_startup import one_line_failure

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

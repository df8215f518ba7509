"""Workshop seats as the instructor starts them: `python scim_server.py --seats N`.

Real processes on the test's database (SQLite file, or PostgreSQL): seats made
once and kept across restarts, grown and never shrunk, agreed on by two first
starts at once; `--seat-cards` CSV; the demo token refused; `--sample-users`
filling each data set once; and concurrent creates of one userName in two seats
against one and two server processes.
"""

import contextlib
import csv
import io
import subprocess
import time

import pytest

import sampledata
from conftest import GROUP_SCHEMA, USER_SCHEMA, ScimClient
from serverprocess import ServerProcess, clean_environment, run_server
from test_concurrency import at_once
from test_concurrency import request_json as call
from test_seats import seat_client, seat_tokens

TOKEN = 'seat-process-token-0123456789'
DEMO_TOKEN = '123456789'
HEADER = ['seat', 'base_url', 'token']


def finished(*args, env=None, timeout=60):
    """Run `python scim_server.py *args` to its end: (exit status, its output)."""
    process = run_server(*args, env=env)
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:   # a server that started where it should have refused
        process.kill()
        output, _ = process.communicate()
        pytest.fail(f'still running after {timeout} s:\n{output}')
    return process.returncode, output


def seat_cards(database_url, *args, env=None):
    """`--seat-cards` on this database: its CSV rows, the header first."""
    status, output = finished('--seat-cards', '--database', database_url, '--token', TOKEN, *args, env=env)
    assert status == 0, output
    return list(csv.reader(io.StringIO(output)))


def tokens_of(rows):
    assert rows[0] == HEADER, rows
    return {int(number): token for number, _, token in rows[1:]}


def user_names(port, token):
    status, listed = call(port, token, 'GET', '/Users?count=100')
    assert status == 200, listed
    return sorted(user['userName'] for user in listed['Resources'])


# ---------------------------------------------------------------------------
# --seat-cards, and seats kept in the database
# ---------------------------------------------------------------------------

def test_seat_cards_print_one_line_per_seat_with_the_base_url_and_exit(database_url):
    rows = seat_cards(database_url, '--seats', '3',
                      env={**clean_environment(), 'SCIM_BASE_URL': 'https://workshop.example.com/scim/v2'})
    assert rows[0] == HEADER
    assert [row[:2] for row in rows[1:]] == [[str(n), 'https://workshop.example.com/scim/v2'] for n in (1, 2, 3)]
    tokens = [row[2] for row in rows[1:]]
    assert len(set(tokens)) == 3 and all(len(token) >= 32 and token.isascii() for token in tokens), tokens
    assert TOKEN not in tokens
    # Without base_url, this server's own address; the same seats, read again.
    rows = seat_cards(database_url, '--port', '8123', '--host', '0.0.0.0')
    assert rows[1:] == [[str(n), 'http://127.0.0.1:8123/scim/v2', token] for n, token in enumerate(tokens, 1)]


def test_seat_cards_of_a_database_without_seats_is_the_header_alone(database_url):
    status, output = finished('--seat-cards', '--database', database_url, '--token', TOKEN)
    assert (status, output) == (0, 'seat,base_url,token\n')


@pytest.mark.parametrize('how', ['environment', 'config file'])
def test_seats_are_asked_for_by_the_environment_or_the_config_file(database_url, tmp_path, how):
    if how == 'environment':
        rows = seat_cards(database_url, env={**clean_environment(), 'SCIM_SEATS': '2'})
    else:
        config = tmp_path / 'config.ini'
        config.write_text('[scimlite]\n# a workshop\nseats = 2\n', encoding='utf-8')
        rows = seat_cards(database_url, '--config', str(config))
    assert sorted(tokens_of(rows)) == [1, 2]


def test_more_seats_are_added_and_none_is_ever_removed(database_url):
    first = tokens_of(seat_cards(database_url, '--seats', '30'))
    assert sorted(first) == list(range(1, 31))
    grown = tokens_of(seat_cards(database_url, '--seats', '40'))
    assert sorted(grown) == list(range(1, 41))
    assert {n: grown[n] for n in first} == first
    assert len(set(grown.values())) == 40
    assert tokens_of(seat_cards(database_url, '--seats', '5')) == grown
    assert tokens_of(seat_cards(database_url)) == grown


def test_two_first_card_printings_at_once_agree_on_the_seats(database_url):
    processes = [run_server('--seat-cards', '--seats', '20', '--database', database_url, '--token', TOKEN)
                 for _ in range(2)]
    outputs = [process.communicate(timeout=60) for process in processes]
    assert [process.returncode for process in processes] == [0, 0], outputs
    assert outputs[0][0] == outputs[1][0]
    assert sorted(tokens_of(list(csv.reader(io.StringIO(outputs[0][0]))))) == list(range(1, 21))


@contextlib.contextmanager
def two_started_at_once(database_url, *flags):
    """Two servers first started at once on one database, once both listen."""
    starting = [run_server('--port', '0', '--database', database_url, '--token', TOKEN, *flags) for _ in range(2)]
    servers = []
    try:
        for process in starting:
            servers.append(ServerProcess.attach(process))
        yield servers
    finally:
        for process in starting:
            if process.poll() is None:
                process.terminate()
                process.wait(timeout=10)
        for server in servers:
            server.stop()


def test_two_servers_first_started_at_once_serve_the_same_seats(database_url):
    with two_started_at_once(database_url, '--seats', '4') as servers:
        tokens = tokens_of(seat_cards(database_url))
        assert sorted(tokens) == [1, 2, 3, 4]
        for seat, token in tokens.items():
            assert call(servers[seat % 2].port, token, 'POST', '/Users', {
                'schemas': [USER_SCHEMA], 'userName': f'seat{seat}@example.com'})[0] == 201
        for server in servers:
            for seat, token in tokens.items():
                assert user_names(server.port, token) == [f'seat{seat}@example.com']
            assert user_names(server.port, TOKEN) == []


def test_two_servers_first_started_at_once_fill_the_sample_data_once(database_url):
    """Both ask for sample users at once: the second waits for the first's fill and
    adds nothing, on SQLite and on PostgreSQL alike, and neither fails to start."""
    count = 300
    with two_started_at_once(database_url, '--seats', '2', '--sample-users', str(count)) as servers:
        for token in (TOKEN, *tokens_of(seat_cards(database_url)).values()):
            for server in servers:
                listed = call(server.port, token, 'GET', '/Users?count=0')
                assert listed[0] == 200 and listed[1]['totalResults'] == count, listed
                assert (call(server.port, token, 'GET', '/Groups?count=0')[1]['totalResults']
                        == len(sampledata.sample_groups(count)))


def test_seats_and_their_data_survive_a_restart_without_the_seats_flag(database_url):
    server = ServerProcess('--seats', '2', '--sample-users', '3', database=database_url, token=TOKEN)
    try:
        tokens = tokens_of(seat_cards(database_url))
        samples = sorted(user['userName'] for user in sampledata.sample_users(3))
        for seat, token in tokens.items():
            assert user_names(server.port, token) == samples
            assert call(server.port, token, 'POST', '/Users', {
                'schemas': [USER_SCHEMA], 'userName': 'ann@example.com', 'title': f'seat {seat}'})[0] == 201
    finally:
        server.stop()
    server = ServerProcess(database=database_url, token=TOKEN)
    try:
        assert tokens_of(seat_cards(database_url)) == tokens
        for seat, token in tokens.items():
            assert user_names(server.port, token) == sorted([*samples, 'ann@example.com'])
            _, found = call(server.port, token, 'GET', '/Users?filter=userName%20eq%20%22ann@example.com%22')
            assert [user['title'] for user in found['Resources']] == [f'seat {seat}']
        assert user_names(server.port, TOKEN) == samples
    finally:
        server.stop()


# ---------------------------------------------------------------------------
# The demo token
# ---------------------------------------------------------------------------

def test_seats_refuse_the_demo_token_in_one_line(database_url):
    status, output = finished('--port', '0', '--database', database_url, '--token', DEMO_TOKEN, '--seats', '2')
    assert status != 0
    assert len(output.strip().splitlines()) == 1 and 'demo token' in output, output
    assert tokens_of(seat_cards(database_url)) == {}   # and no seat was made


def test_a_database_with_seats_refuses_the_demo_token_without_the_seats_flag(database_url):
    assert len(tokens_of(seat_cards(database_url, '--seats', '1'))) == 1
    for extra in ((), ('--seat-cards',)):
        status, output = finished('--port', '0', '--database', database_url, '--token', DEMO_TOKEN, *extra)
        assert status != 0
        assert len(output.strip().splitlines()) == 1 and 'demo token' in output, output


# ---------------------------------------------------------------------------
# --sample-users: each data set once
# ---------------------------------------------------------------------------

def data_set(client):
    users = client.get('/Users?count=1000', status=200).json
    groups = client.get('/Groups?count=1000', status=200).json
    return (sorted(user['userName'] for user in users['Resources']),
            sorted((group['displayName'], len(group.get('members', []))) for group in groups['Resources']))


def test_sample_users_fill_each_data_set_once(make_app):
    count = 7
    samples = sorted(user['userName'] for user in sampledata.sample_users(count))
    groups = sorted((group['displayName'], len(members)) for group, members in sampledata.sample_groups(count))
    app = make_app(seats=2, sample_users=count)
    clients = {0: ScimClient(app), **{n: seat_client(app, token) for n, token in seat_tokens().items()}}
    for client in clients.values():
        assert data_set(client) == (samples, groups)
    gone = samples[3]
    [user] = clients[1].get(f'/Users?filter=userName%20eq%20%22{gone}%22', status=200).json['Resources']
    clients[1].delete(f'/Users/{user["id"]}', status=204)
    after_delete = data_set(clients[1])

    app = make_app(seats=3, sample_users=count)   # a restart with it, and a seat more
    clients = {0: ScimClient(app), **{n: seat_client(app, token) for n, token in seat_tokens().items()}}
    assert data_set(clients[1]) == after_delete
    assert gone not in after_delete[0] and len(after_delete[0]) == count - 1
    for seat in (0, 2, 3):
        assert data_set(clients[seat]) == (samples, groups)
    app = make_app(seats=3)
    assert data_set(ScimClient(app)) == (samples, groups)


# ---------------------------------------------------------------------------
# Concurrent creates: one userName per seat
# ---------------------------------------------------------------------------

CLIENTS = 16


@pytest.fixture(params=[1, 2], ids=['one process', 'two processes'])
def seated_servers(database_url, request, tmp_path):
    config = tmp_path / 'threads.ini'
    config.write_text('[scimlite]\nthreads = 8\nseats = 2\n', encoding='utf-8')
    servers = []
    try:
        for _ in range(request.param):
            servers.append(ServerProcess('--config', str(config), database=database_url, token=TOKEN))
        yield [server.port for server in servers], tokens_of(seat_cards(database_url))
    finally:
        for server in servers:
            server.stop()


@pytest.mark.parametrize('endpoint, body', [
    ('/Users', lambda n: {'schemas': [USER_SCHEMA], 'userName': 'Race@Example.com' if n % 3 else 'race@example.COM'}),
    ('/Groups', lambda n: {'schemas': [GROUP_SCHEMA], 'displayName': 'Race Team' if n % 3 else 'RACE team'}),
], ids=['userName', 'group name'])
def test_concurrent_creates_of_one_name_in_two_seats_make_one_in_each(seated_servers, endpoint, body):
    ports, tokens = seated_servers
    results = at_once(lambda n: (1 + n % 2, call(ports[n // 2 % len(ports)], tokens[1 + n % 2], 'POST', endpoint,
                                                 body(n))), CLIENTS)
    for seat in (1, 2):
        statuses = sorted(status for owner, (status, _) in results if owner == seat)
        assert statuses == [201] + [409] * (CLIENTS // 2 - 1), results
        assert all(answer['scimType'] == 'uniqueness' for owner, (status, answer) in results if status == 409)
        [winner] = [answer['id'] for owner, (status, answer) in results if owner == seat and status == 201]
        for port in ports:
            _, listed = call(port, tokens[seat], 'GET', f'{endpoint}?count=100')
            assert [resource['id'] for resource in listed['Resources']] == [winner]
    assert call(ports[0], TOKEN, 'GET', f'{endpoint}?count=0')[1]['totalResults'] == 0


def test_a_seat_made_by_another_process_is_served_within_seconds(database_url):
    """A running server learns of seats `--seat-cards --seats 3` made after it started."""
    server = ServerProcess('--seats', '2', database=database_url, token=TOKEN)
    try:
        new = tokens_of(seat_cards(database_url, '--seats', '3'))[3]
        deadline = time.monotonic() + 5
        while (status := call(server.port, new, 'GET', '/Users')[0]) == 401 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert status == 200
        created = call(server.port, new, 'POST', '/Users', {'schemas': [USER_SCHEMA], 'userName': 'x@example.com'})
        assert created[0] == 201
        assert user_names(server.port, TOKEN) == []
    finally:
        server.stop()

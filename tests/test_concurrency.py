"""Concurrent clients against real `python scim_server.py` processes: the database decides,
nothing is lost. Each race runs against one server, and against two server processes
sharing the database (the clients alternate between them), on SQLite and on PostgreSQL.
Each server serves 8 requests at once (`threads = 8`), so that a race also runs between
the threads of one process, whatever the database's default thread count."""

import http.client
import json
import threading

import pytest

from conftest import GROUP_SCHEMA, PATCH_SCHEMA, USER_SCHEMA
from serverprocess import ServerProcess

TOKEN = 'race-token-0123456789'
CLIENTS = 8


class Servers:
    """One or more server processes on one database; `via` picks one by number."""

    def __init__(self, database_url, count, config=None):
        extra = ('--config', str(config)) if config else ()
        self.processes = [ServerProcess(*extra, database=database_url, token=TOKEN) for _ in range(count)]

    def port(self, via):
        return self.processes[via % len(self.processes)].port

    def stop(self):
        for process in self.processes:
            process.stop()


@pytest.fixture(params=[1, 2], ids=['one process', 'two processes'])
def server(database_url, request, tmp_path):
    config = tmp_path / 'threads.ini'
    config.write_text(f'[scimlite]\nthreads = {CLIENTS}\n')
    running = Servers(database_url, request.param, config)
    yield running
    running.stop()


def call(server, method, path, body=None, via=0, token=TOKEN):
    return request_json(server.port(via), token, method, path, body)


def request_json(port, token, method, path, body=None):
    """(status, JSON answer) of one SCIM request to the server on `port`, with `token`."""
    connection = http.client.HTTPConnection('127.0.0.1', port, timeout=30)
    try:
        connection.request(method, '/scim/v2' + path, body=json.dumps(body) if body is not None else None,
                           headers={'Authorization': f'Bearer {token}', 'Content-Type': 'application/scim+json'})
        answer = connection.getresponse()
        raw = answer.read()
        return answer.status, json.loads(raw) if raw else None
    finally:
        connection.close()


def at_once(work, count=CLIENTS):
    """Run work(n) for n in range(count) in threads released together; their results in order."""
    results = [None] * count
    barrier = threading.Barrier(count)

    def run(n):
        barrier.wait()
        results[n] = work(n)
    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_concurrent_creates_of_one_username_make_exactly_one_user(server):
    results = at_once(lambda n: call(server, 'POST', '/Users', {
        'schemas': [USER_SCHEMA], 'userName': 'Race@Example.com' if n % 3 else 'race@example.COM'}, via=n))
    statuses = sorted(status for status, _ in results)
    assert statuses == [201] + [409] * (CLIENTS - 1), results
    assert all(body['scimType'] == 'uniqueness' for status, body in results if status == 409)
    assert call(server, 'GET', '/Users?count=0')[1]['totalResults'] == 1


def test_concurrent_creates_of_one_group_name_make_exactly_one_group(server):
    member = call(server, 'POST', '/Users', {'schemas': [USER_SCHEMA], 'userName': 'gm@example.com'})[1]['id']
    results = at_once(lambda n: call(server, 'POST', '/Groups', {
        'schemas': [GROUP_SCHEMA], 'displayName': 'Race Team' if n % 3 else 'RACE team',
        'members': [{'value': member}]}, via=n))
    statuses = sorted(status for status, _ in results)
    assert statuses == [201] + [409] * (CLIENTS - 1), results
    assert all(body['scimType'] == 'uniqueness' for status, body in results if status == 409)
    [winner] = [body for status, body in results if status == 201]
    _, listed = call(server, 'GET', '/Groups')
    assert [(group['id'], [m['value'] for m in group['members']]) for group in listed['Resources']] == [
        (winner['id'], [member])]
    _, user = call(server, 'GET', f'/Users/{member}', via=1)
    assert [group['value'] for group in user['groups']] == [winner['id']]


def test_concurrent_renames_and_creates_to_one_group_name_let_exactly_one_win(server):
    """Half the clients rename a group of their own to one name (PUT or Okta's PATCH),
    half create a group of it: one succeeds, the others are 409 and keep their names."""
    ids = [call(server, 'POST', '/Groups', {'schemas': [GROUP_SCHEMA], 'displayName': f'Before {n}'})[1]['id']
           for n in range(CLIENTS // 2)]
    wanted = ['Winner', 'WINNER', 'winner', 'wInNeR']

    def work(n):
        name = wanted[n % len(wanted)]
        if n >= len(ids):
            return call(server, 'POST', '/Groups', {'schemas': [GROUP_SCHEMA], 'displayName': name}, via=n)
        if n % 2:
            return call(server, 'PUT', f'/Groups/{ids[n]}', {'schemas': [GROUP_SCHEMA], 'displayName': name}, via=n)
        return call(server, 'PATCH', f'/Groups/{ids[n]}', {'schemas': [PATCH_SCHEMA], 'Operations': [
            {'op': 'replace', 'value': {'id': ids[n], 'displayName': name}}]}, via=n)
    results = at_once(work)
    succeeded = [n for n, (status, _) in enumerate(results) if status in (200, 201, 204)]
    assert len(succeeded) == 1, results
    assert all(body['scimType'] == 'uniqueness' for status, body in results if status == 409), results
    assert sorted(status for status, _ in results).count(409) == CLIENTS - 1, results
    _, listed = call(server, 'GET', '/Groups?excludedAttributes=members&count=100')
    names = {group['id']: group['displayName'] for group in listed['Resources']}
    assert len(names) == len(ids) + (succeeded[0] >= len(ids))   # no refused create left a group
    assert [name for name in names.values() if name.lower() == 'winner'] == [wanted[succeeded[0] % len(wanted)]]
    for n, group_id in enumerate(ids):
        if n not in succeeded:
            assert names[group_id] == f'Before {n}'


def test_concurrent_patches_of_one_user_lose_nothing(server):
    _, user = call(server, 'POST', '/Users', {'schemas': [USER_SCHEMA], 'userName': 'p@example.com'})
    results = at_once(lambda n: call(server, 'PATCH', f'/Users/{user["id"]}', {
        'schemas': [PATCH_SCHEMA],
        'Operations': [{'op': 'add', 'path': 'emails', 'value': [{'value': f'e{n}@example.com'}]}]}, via=n))
    assert [status for status, _ in results] == [200] * CLIENTS, results
    _, final = call(server, 'GET', f'/Users/{user["id"]}')
    assert sorted(email['value'] for email in final['emails']) == sorted(f'e{n}@example.com' for n in range(CLIENTS))
    assert final['meta']['version'] == f'W/"{CLIENTS + 1}"'


def test_concurrent_member_adds_to_one_group_lose_none(server):
    ids = [call(server, 'POST', '/Users', {'schemas': [USER_SCHEMA], 'userName': f'm{n}@example.com'})[1]['id']
           for n in range(CLIENTS)]
    _, group = call(server, 'POST', '/Groups', {'schemas': [GROUP_SCHEMA], 'displayName': 'Crowd'})
    results = at_once(lambda n: call(server, 'PATCH', f'/Groups/{group["id"]}', {
        'schemas': [PATCH_SCHEMA], 'Operations': [{'op': 'add', 'path': 'members', 'value': [{'value': ids[n]}]}]},
        via=n))
    assert [status for status, _ in results] == [204] * CLIENTS, results
    _, final = call(server, 'GET', f'/Groups/{group["id"]}')
    assert sorted(member['value'] for member in final['members']) == sorted(ids)


def test_concurrent_deletes_and_patches_never_fail_with_500(server):
    _, user = call(server, 'POST', '/Users', {'schemas': [USER_SCHEMA], 'userName': 'd@example.com'})

    def work(n):
        if n % 2:
            return call(server, 'PATCH', f'/Users/{user["id"]}', {
                'schemas': [PATCH_SCHEMA], 'Operations': [{'op': 'replace', 'path': 'title', 'value': str(n)}]},
                via=n)[0]
        return call(server, 'DELETE', f'/Users/{user["id"]}', via=n // 2)[0]
    statuses = at_once(work)
    assert set(statuses) <= {200, 204, 404}, statuses
    assert statuses.count(204) == 1


def test_many_concurrent_patches_of_one_user_all_succeed(server):
    """16 writers, 5 PATCHes each, one user: no 503, no lost change."""
    _, user = call(server, 'POST', '/Users', {'schemas': [USER_SCHEMA], 'userName': 'busy@example.com'})

    def work(n):
        return [call(server, 'PATCH', f'/Users/{user["id"]}', {
            'schemas': [PATCH_SCHEMA],
            'Operations': [{'op': 'add', 'path': f'urn:example:bench:1.0:User:k{n}x{i}', 'value': i}]}, via=n + i)[0]
            for i in range(5)]
    statuses = [status for batch in at_once(work, 16) for status in batch]
    assert statuses == [200] * 80
    _, final = call(server, 'GET', f'/Users/{user["id"]}')
    assert len(final['urn:example:bench:1.0:User']) == 80


def test_concurrent_puts_of_one_user_leave_exactly_one_of_the_states_sent(server):
    """Each PUT sends a whole state (several attributes that belong together): the stored
    user is one of them, all of it, and its version counts every PUT."""
    _, user = call(server, 'POST', '/Users', {'schemas': [USER_SCHEMA], 'userName': 'put@example.com'})

    def state(n):
        return {'schemas': [USER_SCHEMA], 'userName': 'put@example.com', 'displayName': f'State {n}',
                'title': f'title {n}', 'name': {'givenName': f'Given{n}', 'familyName': f'Family{n}'},
                'emails': [{'value': f's{n}@example.com', 'primary': True}], 'active': n % 2 == 0}
    results = at_once(lambda n: call(server, 'PUT', f'/Users/{user["id"]}', state(n), via=n))
    assert [status for status, _ in results] == [200] * CLIENTS, results
    _, final = call(server, 'GET', f'/Users/{user["id"]}', via=1)
    n = int(final['displayName'].split()[1])
    kept = {key: final.get(key) for key in ('displayName', 'title', 'name', 'emails', 'active')}
    assert kept == {key: value for key, value in state(n).items() if key in kept}
    assert final['meta']['version'] == f'W/"{CLIENTS + 1}"'
    assert sorted(body['meta']['version'] for _, body in results) == sorted(
        f'W/"{version}"' for version in range(2, CLIENTS + 2))


def test_two_processes_behave_as_one_server(database_url):
    """Creates, lookups, PATCHes and a group push interleaved across two processes on one
    database: each sees every write the other acknowledged, at once."""
    servers = Servers(database_url, 2)
    try:
        users = []
        for n in range(6):
            status, created = call(servers, 'POST', '/Users', {
                'schemas': [USER_SCHEMA], 'userName': f'both{n}@example.com'}, via=n)
            assert status == 201
            status, found = call(servers, 'GET', f'/Users?filter=userName%20eq%20%22both{n}@example.com%22',
                                 via=n + 1)
            assert (status, [user['id'] for user in found['Resources']]) == (200, [created['id']])
            users.append(created)
        status, taken = call(servers, 'POST', '/Users', {'schemas': [USER_SCHEMA], 'userName': 'BOTH0@example.com'},
                             via=1)
        assert (status, taken['scimType']) == (409, 'uniqueness')
        status, group = call(servers, 'POST', '/Groups', {'schemas': [GROUP_SCHEMA], 'displayName': 'Pushed',
                                                          'members': [{'value': users[0]['id']}]}, via=0)
        assert status == 201
        for n, user in enumerate(users[1:], start=1):
            status, _ = call(servers, 'PATCH', f'/Groups/{group["id"]}', {
                'schemas': [PATCH_SCHEMA], 'Operations': [{'op': 'add', 'path': 'members',
                                                           'value': [{'value': user['id']}]}]}, via=n)
            assert status == 204
        status, _ = call(servers, 'PATCH', f'/Users/{users[2]["id"]}', {
            'schemas': [PATCH_SCHEMA], 'Operations': [{'op': 'replace', 'value': {'active': False}}]}, via=0)
        assert status == 200
        status, _ = call(servers, 'PATCH', f'/Groups/{group["id"]}', {
            'schemas': [PATCH_SCHEMA],
            'Operations': [{'op': 'remove', 'path': f'members[value eq "{users[3]["id"]}"]'}]},
            via=1)
        assert status == 204
        for via in (0, 1):
            _, read = call(servers, 'GET', f'/Groups/{group["id"]}', via=via)
            assert sorted(member['value'] for member in read['members']) == sorted(
                user['id'] for n, user in enumerate(users) if n != 3)
            _, inactive = call(servers, 'GET', '/Users?filter=active%20eq%20false', via=via)
            assert [user['id'] for user in inactive['Resources']] == [users[2]['id']]
            _, member = call(servers, 'GET', f'/Users/{users[1]["id"]}', via=via)
            assert [group_ref['display'] for group_ref in member['groups']] == ['Pushed']
        status, _ = call(servers, 'DELETE', f'/Users/{users[1]["id"]}', via=0)
        assert status == 204
        assert call(servers, 'GET', f'/Users/{users[1]["id"]}', via=1)[0] == 404
        _, read = call(servers, 'GET', f'/Groups/{group["id"]}', via=1)
        assert users[1]['id'] not in {member['value'] for member in read['members']}
    finally:
        servers.stop()


def test_concurrent_member_changes_of_one_group_never_deadlock(server):
    """8 writers add and remove the same member, and add overlapping lists in opposite
    orders, on one group: every request succeeds (PostgreSQL locks the group row
    before any link row, so writers take turns instead of deadlocking)."""
    ids = [call(server, 'POST', '/Users', {'schemas': [USER_SCHEMA], 'userName': f'dl{n}@example.com'})[1]['id']
           for n in range(6)]
    _, group = call(server, 'POST', '/Groups', {'schemas': [GROUP_SCHEMA], 'displayName': 'Busy'})

    def work(n):
        statuses = []
        for i in range(6):
            if n % 2:
                members = ids if (n + i) % 2 else ids[::-1]
                operations = [{'op': 'add', 'path': 'members', 'value': [{'value': m} for m in members]}]
            else:
                operations = [{'op': 'add' if i % 2 else 'remove', 'path': 'members',
                               'value': [{'value': ids[0]}]}]
            statuses.append(call(server, 'PATCH', f'/Groups/{group["id"]}',
                                 {'schemas': [PATCH_SCHEMA], 'Operations': operations}, via=n + i)[0])
        return statuses
    statuses = [status for batch in at_once(work) for status in batch]
    assert statuses == [204] * len(statuses), statuses

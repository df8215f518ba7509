"""Concurrent clients against a real `python scim_server.py`: the database decides, nothing is lost."""

import http.client
import json
import threading

import pytest

from conftest import GROUP_SCHEMA, PATCH_SCHEMA, USER_SCHEMA
from serverprocess import ServerProcess

TOKEN = 'race-token-0123456789'
CLIENTS = 8


@pytest.fixture
def server(database_url):
    running = ServerProcess(database=database_url, token=TOKEN)
    yield running
    running.stop()


def call(server, method, path, body=None):
    connection = http.client.HTTPConnection('127.0.0.1', server.port, timeout=30)
    try:
        connection.request(method, '/scim/v2' + path, body=json.dumps(body) if body is not None else None,
                           headers={'Authorization': f'Bearer {TOKEN}', 'Content-Type': 'application/scim+json'})
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
        'schemas': [USER_SCHEMA], 'userName': 'Race@Example.com' if n % 2 else 'race@example.COM'}))
    statuses = sorted(status for status, _ in results)
    assert statuses == [201] + [409] * (CLIENTS - 1), results
    assert all(body['scimType'] == 'uniqueness' for status, body in results if status == 409)
    assert call(server, 'GET', '/Users?count=0')[1]['totalResults'] == 1


def test_concurrent_patches_of_one_user_lose_nothing(server):
    _, user = call(server, 'POST', '/Users', {'schemas': [USER_SCHEMA], 'userName': 'p@example.com'})
    results = at_once(lambda n: call(server, 'PATCH', f'/Users/{user["id"]}', {
        'schemas': [PATCH_SCHEMA],
        'Operations': [{'op': 'add', 'path': 'emails', 'value': [{'value': f'e{n}@example.com'}]}]}))
    assert [status for status, _ in results] == [200] * CLIENTS, results
    _, final = call(server, 'GET', f'/Users/{user["id"]}')
    assert sorted(email['value'] for email in final['emails']) == sorted(f'e{n}@example.com' for n in range(CLIENTS))
    assert final['meta']['version'] == f'W/"{CLIENTS + 1}"'


def test_concurrent_member_adds_to_one_group_lose_none(server):
    ids = [call(server, 'POST', '/Users', {'schemas': [USER_SCHEMA], 'userName': f'm{n}@example.com'})[1]['id']
           for n in range(CLIENTS)]
    _, group = call(server, 'POST', '/Groups', {'schemas': [GROUP_SCHEMA], 'displayName': 'Crowd'})
    results = at_once(lambda n: call(server, 'PATCH', f'/Groups/{group["id"]}', {
        'schemas': [PATCH_SCHEMA], 'Operations': [{'op': 'add', 'path': 'members', 'value': [{'value': ids[n]}]}]}))
    assert [status for status, _ in results] == [200] * CLIENTS, results
    _, final = call(server, 'GET', f'/Groups/{group["id"]}')
    assert sorted(member['value'] for member in final['members']) == sorted(ids)


def test_concurrent_deletes_and_patches_never_fail_with_500(server):
    _, user = call(server, 'POST', '/Users', {'schemas': [USER_SCHEMA], 'userName': 'd@example.com'})

    def work(n):
        if n % 2:
            return call(server, 'PATCH', f'/Users/{user["id"]}', {
                'schemas': [PATCH_SCHEMA], 'Operations': [{'op': 'replace', 'path': 'title', 'value': str(n)}]})[0]
        return call(server, 'DELETE', f'/Users/{user["id"]}')[0]
    statuses = at_once(work)
    assert set(statuses) <= {200, 204, 404}, statuses
    assert statuses.count(204) == 1


def test_many_concurrent_patches_of_one_user_all_succeed(server):
    """16 writers, 5 PATCHes each, one user: no 503, no lost change."""
    _, user = call(server, 'POST', '/Users', {'schemas': [USER_SCHEMA], 'userName': 'busy@example.com'})

    def work(n):
        return [call(server, 'PATCH', f'/Users/{user["id"]}', {
            'schemas': [PATCH_SCHEMA],
            'Operations': [{'op': 'add', 'path': f'urn:example:bench:1.0:User:k{n}x{i}', 'value': i}]})[0]
            for i in range(5)]
    statuses = [status for batch in at_once(work, 16) for status in batch]
    assert statuses == [200] * 80
    _, final = call(server, 'GET', f'/Users/{user["id"]}')
    assert len(final['urn:example:bench:1.0:User']) == 80

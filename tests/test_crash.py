"""A server killed mid-write (SIGKILL) loses no write it acknowledged, and its database stays sound.

Each round, 8 writer threads send creates, PATCHes, PUTs, member adds and deletes
over real HTTP to `python scim_server.py`; after a random 0.3-1.5 s the process is
killed (Popen.kill: SIGKILL, or TerminateProcess on Windows), a new server starts
on the same database and everything is read back. Rounds accumulate on one database.

A writer owns what it created (a later round's writer n inherits writer n's), so
nobody else writes those resources and each acknowledged state is exact. A write
that got a 2xx must be there. A write that got no answer (the kill dropped it) is
unknown: it may have landed or not, but only whole. After each check the unknowns
are resolved from what the server reads back, so the next round starts exact.
"""

import http.client
import json
import random
import re
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, field
from urllib.parse import quote

from conftest import GROUP_SCHEMA, PATCH_SCHEMA, TOKEN, USER_SCHEMA
from serverprocess import ServerProcess

WRITERS = 8
ROUNDS = 4
LOAD_SECONDS = (0.3, 1.5)
READERS = 4   # connections that read everything back after a restart
PAGE = 1000   # the server's default max_page_size


class NoAnswer(Exception):
    """The request got no complete answer: the server died while it was out."""


class Connection:
    """One keep-alive connection to the server, sending the token and SCIM JSON."""

    def __init__(self, port):
        self.http = http.client.HTTPConnection('127.0.0.1', port, timeout=30)

    def call(self, method, path, body=None):
        try:
            self.http.request(method, '/scim/v2' + path, body=json.dumps(body) if body is not None else None,
                              headers={'Authorization': f'Bearer {TOKEN}', 'Content-Type': 'application/scim+json'})
            answer = self.http.getresponse()
            raw = answer.read()
        except (OSError, http.client.HTTPException) as error:
            self.http.close()
            raise NoAnswer(repr(error)) from None
        return answer.status, json.loads(raw) if raw else None

    def close(self):
        self.http.close()


def version_of(body):
    match = re.fullmatch(r'W/"(\d+)"', body['meta']['version'])
    assert match, body['meta']
    return int(match.group(1))


def members_of(body):
    return {member['value'] for member in body.get('members') or ()}


# ---------------------------------------------------------------------------
# What the writers were told
# ---------------------------------------------------------------------------

@dataclass
class User:
    id: str
    user_name: str
    display_name: str
    active: bool = True
    version: int = 1
    alive: bool = True
    pending: tuple = None   # the write that got no answer: ('replace', displayName, active) or ('delete',)

    def state(self):
        return self.user_name, self.display_name, self.active, self.version


@dataclass
class Group:
    id: str
    display_name: str
    version: int = 1
    members: set = field(default_factory=set)
    alive: bool = True
    pending: tuple = None   # ('add', user id) or ('delete',)


class Stop(Exception):
    """The writer stops: its request got no answer, or a wrong one."""


class Writer:
    """One writer thread's resources and the log of every write acknowledged to it."""

    WEIGHTS = {'create user': 4, 'patch user': 4, 'put user': 3, 'create group': 1,
               'add member': 3, 'delete user': 1, 'delete group': 0.3}

    def __init__(self, number):
        self.number = number
        self.users = {}
        self.groups = {}
        self.acknowledged = []        # (what, id, detail, version), in the order answered
        self.unanswered_creates = []  # User/Group without an id: a create that got no answer
        self.problems = []
        self.serial = 0

    def run(self, port, round_number, killing, seed):
        self.connection = Connection(port)
        self.killing = killing
        self.round = round_number
        rng = random.Random(seed)
        kinds, weights = list(self.WEIGHTS), list(self.WEIGHTS.values())
        try:
            while not killing.is_set():
                self.serial += 1
                getattr(self, rng.choices(kinds, weights)[0].replace(' ', '_'))(rng)
        except Stop:
            pass
        except Exception as error:   # noqa: BLE001 - a bug here must fail the test, not vanish with the thread
            self.problems.append(f'writer {self.number} crashed: {error!r}')
        finally:
            self.connection.close()

    def ask(self, method, path, body, expected, unanswered):
        """The answer's body; on no answer, `unanswered()` records what may have happened."""
        try:
            status, answer = self.connection.call(method, path, body)
        except NoAnswer as error:
            if not self.killing.is_set():
                self.problems.append(f'{method} {path}: the live server dropped the connection: {error}')
            unanswered()
            raise Stop from None
        if status != expected:
            self.problems.append(f'{method} {path}: {status} (expected {expected}) {answer}')
            raise Stop
        return answer

    def check(self, condition, *what):
        if not condition:
            self.problems.append(' '.join(map(str, what)))
            raise Stop

    def name(self, prefix):
        return f'{prefix}{self.number}.r{self.round}.{self.serial}'

    def live_users(self):
        return [user for user in self.users.values() if user.alive]

    def live_groups(self):
        return [group for group in self.groups.values() if group.alive]

    # -- the writes --------------------------------------------------------

    def create_user(self, rng):
        user_name = self.name('crash') + '@example.com'
        user = User(None, user_name, f'User {self.name("")}')
        body = self.ask('POST', '/Users', {
            'schemas': [USER_SCHEMA], 'userName': user_name, 'displayName': user.display_name, 'active': True},
            201, lambda: self.unanswered_creates.append(user))
        user.id = body['id']
        self.check((body['userName'], body['displayName'], body['active'], version_of(body)) == user.state()[:3] + (1,),
                   'POST /Users answered', body)
        self.users[user.id] = user
        self.acknowledged.append(('create user', user.id, user_name, 1))

    def patch_user(self, rng):
        """Okta's path-less replace: deactivate (or, for an inactive user, reactivate)."""
        users = self.live_users()
        if not users:
            return self.create_user(rng)
        user = rng.choice(users)
        active = not user.active
        body = self.ask('PATCH', f'/Users/{user.id}', {
            'schemas': [PATCH_SCHEMA], 'Operations': [{'op': 'replace', 'value': {'active': active}}]},
            200, lambda: setattr(user, 'pending', ('replace', user.display_name, active)))
        self.replaced(user, body, user.display_name, active)

    def put_user(self, rng):
        users = self.live_users()
        if not users:
            return self.create_user(rng)
        user = rng.choice(users)
        display_name = f'Renamed {self.name("")}'
        body = self.ask('PUT', f'/Users/{user.id}', {
            'schemas': [USER_SCHEMA], 'userName': user.user_name, 'displayName': display_name,
            'active': user.active},
            200, lambda: setattr(user, 'pending', ('replace', display_name, user.active)))
        self.replaced(user, body, display_name, user.active)

    def replaced(self, user, body, display_name, active):
        version = version_of(body)
        self.check((body['userName'], body['displayName'], body['active'], version)
                   == (user.user_name, display_name, active, user.version + 1),
                   'a write of', user, 'answered', body)
        user.display_name, user.active, user.version = display_name, active, version
        self.acknowledged.append(('replace user', user.id, (display_name, active), version))

    def delete_user(self, rng):
        users = self.live_users()
        if not users:
            return self.create_user(rng)
        user = rng.choice(users)
        self.ask('DELETE', f'/Users/{user.id}', None, 204, lambda: setattr(user, 'pending', ('delete',)))
        user.alive = False
        for group in self.groups.values():
            group.members.discard(user.id)
        self.acknowledged.append(('delete user', user.id, None, None))

    def create_group(self, rng):
        group = Group(None, f'Crash group {self.name("")}')
        body = self.ask('POST', '/Groups', {'schemas': [GROUP_SCHEMA], 'displayName': group.display_name},
                        201, lambda: self.unanswered_creates.append(group))
        group.id = body['id']
        self.check((body['displayName'], version_of(body), members_of(body)) == (group.display_name, 1, set()),
                   'POST /Groups answered', body)
        self.groups[group.id] = group
        self.acknowledged.append(('create group', group.id, group.display_name, 1))

    def add_member(self, rng):
        groups = self.live_groups()
        if not groups:
            return self.create_group(rng)
        group = rng.choice(groups)
        candidates = [user for user in self.live_users() if user.id not in group.members]
        if not candidates:
            return self.create_user(rng)
        user = rng.choice(candidates)
        # A group PATCH answers 204 unless asked for the group, as here: `attributes` asks.
        body = self.ask('PATCH', f'/Groups/{group.id}?attributes=members', {
            'schemas': [PATCH_SCHEMA], 'Operations': [{'op': 'add', 'path': 'members', 'value': [{'value': user.id}]}]},
            200, lambda: setattr(group, 'pending', ('add', user.id)))
        version = version_of(body)
        self.check((members_of(body), version) == (group.members | {user.id}, group.version + 1),
                   'a member add to', group, 'answered', body)
        group.members.add(user.id)
        group.version = version
        self.acknowledged.append(('add member', group.id, user.id, version))

    def delete_group(self, rng):
        groups = self.live_groups()
        if not groups:
            return self.create_group(rng)
        group = rng.choice(groups)
        self.ask('DELETE', f'/Groups/{group.id}', None, 204, lambda: setattr(group, 'pending', ('delete',)))
        group.alive = False
        self.acknowledged.append(('delete group', group.id, None, None))


# ---------------------------------------------------------------------------
# Reading it all back
# ---------------------------------------------------------------------------

def read_all(port, paths):
    """GET every path over READERS keep-alive connections: {path: (status, body)}."""
    def read(chunk):
        connection = Connection(port)
        try:
            return {path: connection.call('GET', path) for path in chunk}
        finally:
            connection.close()
    found = {}
    with ThreadPoolExecutor(READERS) as pool:
        for part in pool.map(read, [paths[n::READERS] for n in range(READERS)]):
            found.update(part)
    return found


def listed_ids(connection, endpoint):
    """Every id the server lists, page by page."""
    ids, start = [], 1
    while True:
        status, page = connection.call('GET', f'{endpoint}?startIndex={start}&count={PAGE}'
                                              + ('&excludedAttributes=members' if endpoint == '/Groups' else ''))
        assert status == 200, page
        ids += [resource['id'] for resource in page['Resources']]
        start += len(page['Resources'])
        if not page['Resources'] or start > page['totalResults']:
            break
    assert len(ids) == len(set(ids)), f'{endpoint} lists an id twice'
    return set(ids)


def total(connection, endpoint):
    status, page = connection.call('GET', f'{endpoint}?count=0')
    assert status == 200, page
    return page['totalResults']


def find_by_name(connection, endpoint, attribute, name):
    """The resources whose `attribute` equals `name` (no more than one, as the names are unique)."""
    status, page = connection.call('GET', f'{endpoint}?filter=' + quote(f'{attribute} eq "{name}"'))
    assert status == 200, page
    assert page['totalResults'] <= 1, page
    return page['Resources']


def verify(port, writers):
    """Check every acknowledged write against what the restarted server reads back,
    then resolve the unanswered writes from it, so the model is exact again."""
    users = {user.id: user for writer in writers for user in writer.users.values()}
    groups = {group.id: group for writer in writers for group in writer.groups.values()}
    unanswered_users = [user for writer in writers for user in writer.unanswered_creates if isinstance(user, User)]
    unanswered_groups = [group for writer in writers for group in writer.unanswered_creates
                         if isinstance(group, Group)]
    # What the totals may be: the unanswered deletes may have landed, the unanswered creates too.
    user_bounds = (sum(user.alive and user.pending != ('delete',) for user in users.values()),
                   sum(user.alive for user in users.values()) + len(unanswered_users))
    group_bounds = (sum(group.alive and group.pending != ('delete',) for group in groups.values()),
                    sum(group.alive for group in groups.values()) + len(unanswered_groups))
    user_reads = read_all(port, [f'/Users/{user_id}' for user_id in users])
    group_reads = read_all(port, [f'/Groups/{group_id}' for group_id in groups])

    def user_read(user_id):
        return user_reads[f'/Users/{user_id}']

    def group_read(group_id):
        return group_reads[f'/Groups/{group_id}']

    def exists(user_id):
        return user_read(user_id)[0] == 200

    # Every acknowledged write, one by one.
    for writer in writers:
        for what, resource_id, detail, version in writer.acknowledged:
            user, group = users.get(resource_id), groups.get(resource_id)
            resource = user or group
            status, body = user_read(resource_id) if user else group_read(resource_id)
            if not resource.alive or what.startswith('delete'):
                assert status == 404, f'{resource} was deleted, yet reads back: {status} {body}'
                continue
            if status == 404:
                assert resource.pending == ('delete',), f'acknowledged {what} {detail} of {resource} lost'
                continue
            assert status == 200, (what, resource, status, body)
            assert version is None or version_of(body) >= version, \
                f'acknowledged {what} {detail} (version {version}) of {resource} lost: {body}'
            if what == 'create user':
                assert body['userName'] == detail, body
            elif what == 'create group':
                assert body['displayName'] == detail, body
            elif what == 'add member':
                assert (detail in members_of(body)) == exists(detail), \
                    f'acknowledged member add of {detail} to {resource}: {body}'

    # Each user as it was last acknowledged or, if a write to it got no answer, as that write left it.
    for user in users.values():
        if not user.alive:
            continue
        status, body = user_read(user.id)
        pending = user.pending
        if status == 404:
            assert pending == ('delete',), f'{user} is gone'
            user.alive = False
        else:
            assert status == 200, (user, body)
            found = (body['userName'], body.get('displayName'), body.get('active'), version_of(body))
            possible = [user.state()]
            if pending and pending[0] == 'replace':
                possible.append((user.user_name, pending[1], pending[2], user.version + 1))
            assert found in possible, f'{user} reads back as {found}'
            user.user_name, user.display_name, user.active, user.version = found
        user.pending = None

    # Each group likewise; its members are the ones added minus the users since deleted.
    for group in groups.values():
        if not group.alive:
            continue
        status, body = group_read(group.id)
        pending = group.pending
        if status == 404:
            assert pending == ('delete',), f'{group} is gone'
            group.alive = False
        else:
            assert status == 200, (group, body)
            members = {user_id for user_id in group.members if exists(user_id)}
            found = (body['displayName'], version_of(body), members_of(body))
            possible = [(group.display_name, group.version, members)]
            if pending and pending[0] == 'add':
                possible.append((group.display_name, group.version + 1, members | {pending[1]}))
            assert found in possible, f'{group} reads back as {found}'
            group.version, group.members = found[1], found[2]
        group.pending = None

    connection = Connection(port)
    try:
        user_total, group_total = total(connection, '/Users'), total(connection, '/Groups')
        assert user_bounds[0] <= user_total <= user_bounds[1]
        assert group_bounds[0] <= group_total <= group_bounds[1]

        for writer in writers:
            for resource in writer.unanswered_creates:
                if isinstance(resource, User):
                    for body in find_by_name(connection, '/Users', 'userName', resource.user_name):
                        assert (body['userName'], body['displayName'], body['active'], version_of(body)) \
                            == resource.state(), body
                        resource.id = body['id']
                        writer.users[resource.id] = resource
                else:
                    for body in find_by_name(connection, '/Groups', 'displayName', resource.display_name):
                        assert (version_of(body), members_of(body)) == (1, set()), body
                        resource.id = body['id']
                        writer.groups[resource.id] = resource
            writer.unanswered_creates = []

        # Every unanswered write resolved: the totals are exact.
        alive_users = {user.id for writer in writers for user in writer.users.values() if user.alive}
        alive_groups = {group.id for writer in writers for group in writer.groups.values() if group.alive}
        assert user_total == len(alive_users)
        assert group_total == len(alive_groups)
        assert listed_ids(connection, '/Users') == alive_users
        assert listed_ids(connection, '/Groups') == alive_groups
    finally:
        connection.close()


def check_database_file(database_url):
    """SQLite only: the file passes integrity_check and has no dangling foreign key."""
    if not database_url.startswith('sqlite:'):
        return
    with closing(sqlite3.connect(database_url[len('sqlite:///'):], timeout=30)) as db:
        assert db.execute('PRAGMA integrity_check').fetchall() == [('ok',)]
        assert db.execute('PRAGMA foreign_key_check').fetchall() == []


# ---------------------------------------------------------------------------
# The test
# ---------------------------------------------------------------------------

def test_a_killed_server_loses_no_acknowledged_write_and_leaves_a_sound_database(database_url):
    """Killed 4 times mid-load, the server keeps every write it answered with a 2xx, half-applies
    none it left unanswered, and leaves a database that passes integrity_check."""
    seed = random.randrange(2 ** 32)
    print(f'seed {seed}')   # shown with a failure, to replay the same mix of writes
    rng = random.Random(seed)
    writers = [Writer(number) for number in range(WRITERS)]
    server = ServerProcess(database=database_url, token=TOKEN)
    try:
        for round_number in range(1, ROUNDS + 1):
            killing = threading.Event()
            threads = [threading.Thread(target=writer.run,
                                        args=(server.port, round_number, killing, f'{seed}/{round_number}/{n}'))
                       for n, writer in enumerate(writers)]
            acknowledged_before = sum(len(writer.acknowledged) for writer in writers)
            for thread in threads:
                thread.start()
            load = rng.uniform(*LOAD_SECONDS)
            time.sleep(load)
            killing.set()
            server.process.kill()   # SIGKILL; TerminateProcess on Windows
            server.process.wait(timeout=30)
            server.stop()           # collects the rest of its output
            for thread in threads:
                thread.join(timeout=60)
            assert not any(thread.is_alive() for thread in threads), 'a writer hangs on a killed server'
            problems = [problem for writer in writers for problem in writer.problems]
            assert not problems, '\n'.join(problems[:10] + ['server output:', server.output])
            acknowledged = sum(len(writer.acknowledged) for writer in writers) - acknowledged_before
            unanswered = sum(len(writer.unanswered_creates) for writer in writers) + sum(
                resource.pending is not None
                for writer in writers for resource in [*writer.users.values(), *writer.groups.values()])
            print(f'round {round_number}: killed after {load:.2f} s, '
                  f'{acknowledged} writes acknowledged, {unanswered} unanswered')
            assert acknowledged > 0, 'no write was answered before the kill'

            server = ServerProcess(database=database_url, token=TOKEN)
            verify(server.port, writers)
            check_database_file(database_url)
    finally:
        server.stop()
